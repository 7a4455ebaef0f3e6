/* cli_internal.h - TRANSITIONAL: the one corner of the CLI not on the
 * public API yet: lorac info / modules (cmd_info.c) build the internal
 * lorac_lora_config from the LoRA flags and ask the model inside an llm
 * (api/api.h) which modules a config targets. The symbols they need from
 * liblorac.so are the LORAC_PRIVATE_0 node of src/api/lorac.map. The goal
 * is to delete this file and cli_internal.c. */
#ifndef LORAC_CLI_INTERNAL_H
#define LORAC_CLI_INTERNAL_H

#include "cli.h"

#include "api/api.h"
#include "io/tokenizer.h"
#include "lora/lora.h"
#include "models/model.h"
#include "train/trainer.h"

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

#endif
