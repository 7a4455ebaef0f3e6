/* lorac/data.h - data sets: how one is read and split (lorac_data_config,
 * the data flags of lorac train / eval) and a loaded, tokenized one
 * (lorac_data). Part of lorac.h (its conventions apply). */
#ifndef LORAC_DATA_H
#define LORAC_DATA_H

#include "core.h"
#include "model.h"
#include "tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A data set and how it is split (lorac train / eval's data flags). */
typedef struct lorac_data_config {
    const char *task;        /* "classify" (default), "lm", "instruct" */
    const char *data;        /* .tsv .csv .jsonl .json .txt (.gz ok); required */
    const char *val, *test;  /* separate validation / test files (default: split from data) */
    const char *format;      /* tsv | csv | jsonl | json (default: from the file name) */
    const char *text_col, *label_col; /* header name or 0-based index */
    const char *labels;      /* label names in class order, "ham,spam" (default: sorted) */
    int skip_bad_rows;       /* skip malformed rows instead of failing */
    int balance;             /* under-sample every class to the smallest */
    double split_train, split_val; /* fractions (default 0.7, 0.1) */
    int max_examples;        /* at most N training examples (0 = all) */
    int max_eval;            /* a random N of the validation / test examples (0 = all) */
    int max_len;             /* truncate to N tokens (0: 256 or the model's context) */
    const char *chat_format; /* instruct: NULL / "auto" or a family (lorac_llm_chat) */
    int whole;               /* evaluation: every row of data is the test set, unsplit */
} lorac_data_config;

/* A data set split and tokenized for one llm (train / validation / test). */
typedef struct lorac_data lorac_data;
/* Load, split (seed: balance, shuffle, split, the max_eval sample) and
 * tokenize d for llm's tokenizer. On failure *out is NULL. The handle does
 * not refer to llm afterwards. [one thread per llm] */
LORAC_API lorac_status lorac_data_load(lorac_llm *llm, const lorac_data_config *d, uint64_t seed, lorac_data **out);
/* NULL is fine. [one thread per data] */
LORAC_API void lorac_data_free(lorac_data *data);

typedef struct lorac_data_info {
    size_t size;             /* sizeof(lorac_data_info): set it before the call */
    char task[16];           /* "classify", "lm" or "instruct" */
    int n[3];                /* examples: train, validation, test */
    int skipped[3];          /* bad rows skipped (skip_bad_rows) in data, val, test */
    int truncated[3];        /* examples cut to max_len tokens, per split */
    int max_len;             /* the token limit used */
    int n_labels;            /* classify: the classes (lorac_data_label); else 0 */
    int has_chat;            /* instruct: 1, and chat says how the examples were written */
    lorac_chat_info chat;
} lorac_data_info;
/* [read-only] */
LORAC_API lorac_status lorac_data_get_info(const lorac_data *data, lorac_data_info *info);
/* The name of class i ("spam"), and in *count (may be NULL) its training
 * examples; NULL when i is out of range. Valid until lorac_data_free.
 * [read-only] */
LORAC_API const char *lorac_data_label(const lorac_data *data, int i, int *count);

#ifdef __cplusplus
}
#endif
#endif
