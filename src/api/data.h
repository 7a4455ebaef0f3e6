/* data.h - a lorac_data_config (lorac.h) made into train / validation /
 * test sets, tokenized for the llm: the appendix-E protocol of lorac train
 * (balance, shuffle, split, caps) in the library. */
#ifndef LORAC_API_DATA_H
#define LORAC_API_DATA_H

#include "api/api.h"
#include "train/batch.h"

typedef struct lorac_api_data {
    lorac_task task;
    lorac_dataset set[3];    /* train, val, test */
    lorac_tokenized tok[3];
} lorac_api_data;

/* Parse d->task ("classify" / NULL, "lm", "instruct"). */
lorac_status lorac_api_task(const char *task, lorac_task *out);
/* Load and split d (seed: balance, shuffle, split, the --max-eval sample),
 * then tokenize every non-empty split for llm. On failure nothing is held. */
lorac_status lorac_api_data_load(lorac_llm *llm, const lorac_data_config *d, uint64_t seed, lorac_api_data *out);
void lorac_api_data_free(lorac_api_data *s);

#endif
