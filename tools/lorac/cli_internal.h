/* cli_internal.h - TRANSITIONAL: what the CLI's commands that are not on
 * the public API yet (info / modules / eval / merge: cmd_info.c, cmd_eval.c,
 * cmd_merge.c) share: they reach the model inside an llm (api/api.h) and the
 * internal headers, and call the helpers on internal types of
 * cli_internal.c. The symbols they need from liblorac.so are the
 * LORAC_PRIVATE node of src/api/lorac.map. lorac train / compare and the
 * shared CLI files no longer include it (they use lorac.h only). The goal
 * is to delete this file and cli_internal.c. */
#ifndef LORAC_CLI_INTERNAL_H
#define LORAC_CLI_INTERNAL_H

#include "cli_data.h" /* cli.h, and cli_results for the legacy calls */

#include "api/api.h"
#include "dist/dist.h"
#include "io/dataset.h"
#include "io/tokenizer.h"
#include "lora/lora.h"
#include "models/model.h"
#include "train/batch.h"
#include "train/trainer.h"

/* Add a fresh classification head of n_classes to m as --head-init (and
 * --preset) say: "hf" (default) as transformers' XxxForSequenceClassification,
 * "torch" as appendix E's nn.Linear. Exits on a bad value. */
void cli_add_head(const cli_args *a, lorac_model *m, int n_classes, uint64_t seed);
/* Build the LoRA config from the flags (after --preset). */
void cli_lora_config(const cli_args *a, lorac_lora_config *c);
/* Apply --method to a model with a LoRA config: lora, qlora (the base's
 * block Linears quantized as --qformat says, unless cli_open already
 * loaded them quantized, then exactly lora; prints one "qlora: ..." line to
 * stderr), full, last-layers:N
 * (lorac_make_last_layers_trainable) or head (plus a fresh pre_head).
 * seq_cls = 1 (train): as PEFT's task_type SEQ_CLS, LoRA on a classifier
 * also trains the head in full: unless --modules-to-save is given or the head
 * is a LoRA target, its name (and a fresh pre_head's) is added to
 * c->modules_to_save, which the adapter config then records. seq_cls = 0
 * (info): PEFT with task_type None, LoRA matrices only. */
void cli_apply_method(const cli_args *a, lorac_llm *llm, lorac_lora_config *c, int seq_cls);

/* print "trainable params: X || all params: Y || trainable%: Z" */
void cli_print_trainable(const lorac_model *m, FILE *f);

/* ---- data on internal types (lorac train uses lorac_data, cli_data.h) ---- */
struct cli_splits {
    lorac_task task;
    lorac_dataset train, val, test;
};

typedef struct cli_tokenized {
    lorac_tokenized train, val, test;
} cli_tokenized;

/* The chat format of --chat-format (see CLI_CHAT_OPT) for the llm
 * (lorac_api_chat_format); prints one "chat format: ..." line to stderr. */
void cli_chat_format(const cli_args *a, const lorac_llm *llm, lorac_chat_format *f);
/* Load --data (and --val/--test) into train / val / test as the flags say.
 * whole = 1: every row of --data goes to the test set, unsplit. */
void cli_load_splits(const cli_args *a, cli_splits *s, int whole);
void cli_splits_free(cli_splits *s);
void cli_tokenize_splits(const cli_args *a, const cli_splits *s, const lorac_llm *llm, cli_tokenized *t);
void cli_tokenized_free(cli_tokenized *t);
/* Score the splits --eval-splits asks for (lorac_evaluate_dist). */
void cli_evaluate_splits(const cli_args *a, lorac_model *m, const cli_tokenized *t, lorac_task task, int batch,
                         cli_results *r);

#endif
