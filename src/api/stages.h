/* stages.h - what train.c's lorac_llm_train shares with the staged calls
 * of stages.c (internal to src/api). */
#ifndef LORAC_API_STAGES_H
#define LORAC_API_STAGES_H

#include "api/data.h"
#include "lora/lora.h"
#include "train/trainer.h"

/* c's size and value ranges (fn names the public call in the message). */
lorac_status lorac_api_check_config(const lorac_train_config *c, const char *fn);
/* c's LoRA fields as the internal config (the lists, layers, patterns,
 * init and target_regex parsed and checked; messages name the field). */
lorac_status lorac_api_lora_config(const lorac_train_config *c, lorac_lora_config *lc);
/* The trainer's options from c (no callbacks, run_config or stop flag). */
lorac_status lorac_api_train_opts(const lorac_train_config *c, lorac_task task, lorac_train_opts *o);

#endif
