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
    int skipped[3];          /* bad rows skipped in data, val, test */
    int max_len;             /* the token limit used */
    int has_chat;            /* instruct: chat is the format the examples were written in */
    lorac_chat_info chat;
} lorac_api_data;

/* The public data handle (lorac_data_load) is the same thing on the heap. */
struct lorac_data {
    lorac_api_data d;
};

/* Load and split c's files into s[0..3) = train, val, test (nothing
 * tokenized); skipped[0..3) = bad rows skipped in c->data, c->val, c->test
 * (c->skip_bad_rows). The library half of lorac train / eval's data flags:
 * the CLI checks the flags' syntax first, with messages naming them. */
lorac_status lorac_api_split(const lorac_data_config *c, lorac_task task, uint64_t seed, lorac_dataset s[3],
                             int skipped[3]);
/* Parse d->task ("classify" / NULL, "lm", "instruct"). */
lorac_status lorac_api_task(const char *task, lorac_task *out);
/* Load and split d (seed: balance, shuffle, split, the --max-eval sample),
 * then tokenize every non-empty split for llm. On failure nothing is held. */
lorac_status lorac_api_data_load(lorac_llm *llm, const lorac_data_config *d, uint64_t seed, lorac_api_data *out);
void lorac_api_data_free(lorac_api_data *s);

#endif
