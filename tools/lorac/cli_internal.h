/* cli_internal.h - what the CLI's commands that are not on the public API
 * yet share: they reach the model inside an llm (api/api.h) and the
 * internal headers. Each command file that includes this says why in its
 * header comment; the symbols they need from liblorac.so are the
 * LORAC_PRIVATE node of src/api/lorac.map. The goal is to delete this file. */
#ifndef LORAC_CLI_INTERNAL_H
#define LORAC_CLI_INTERNAL_H

#include "cli.h"

#include "api/api.h"
#include "dist/dist.h"
#include "io/tokenizer.h"
#include "lora/lora.h"
#include "models/model.h"
#include "train/trainer.h"

/* ---- data-parallel runs (cli_dist.c) ---- */
/* The job's ranks when lorac train runs under mpirun / srun, else NULL. */
extern lorac_dist *cli_dist;
/* Start the ranks (--dist-timeout S bounds each wait for the others); rank
 * 0 goes on as usual, the others are silent but for errors. ckpt_hint ends
 * the line a rank prints when the launcher stops it (SIGTERM). */
void cli_dist_start(const cli_args *a, const char *ckpt_hint);
/* 1 on the rank that prints and writes (rank 0, or the single process). */
int cli_is_writer(void);
/* Finalize the ranks (every rank calls it at the end). */
void cli_dist_end(void);
/* (cli_dist_fail, cli_dist_quiet_error, cli_err_fd: cli.h) */

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

/* lorac train's options; lorac compare accepts them all and passes them on. */
extern const cli_opt cli_train_opts[];

/* print "trainable params: X || all params: Y || trainable%: Z" */
void cli_print_trainable(const lorac_model *m, FILE *f);

/* Progress reporter for lorac_train: a bar on a terminal, plain lines otherwise. */
void cli_progress(const lorac_progress *p, void *ctx);

#endif
