/* cli_data.h - data flags shared by train and eval: loading a file, the
 * appendix-E protocol (balance, shuffle, split), tokenizing, evaluating the
 * splits, and printing / writing the results. */
#ifndef LORAC_CLI_DATA_H
#define LORAC_CLI_DATA_H

#include "cli_internal.h"
#include "io/dataset.h"
#include "train/batch.h"

#define CLI_DATA_OPTS                                                                                             \
    {"task", "T", "classify | lm | instruct (default classify)"},                                                \
    {"data", "FILE", "training data (or the whole set, split with --split): .tsv .csv .jsonl .json .txt, .gz ok"}, \
    {"val", "FILE", "validation data (default: split from --data)"},                                             \
    {"test", "FILE", "test data (default: split from --data)"},                                                  \
    {"format", "F", "tsv | csv | jsonl | json (default: from the file name)"},                                   \
    {"text-col", "COL", "text column: header name or 0-based index"},                                           \
    {"label-col", "COL", "label column: header name or 0-based index"},                                         \
    {"labels", "LIST", "label names in class-id order, e.g. ham,spam (default: sorted)"},                        \
    {"skip-bad-rows", NULL, "skip malformed rows (counted) instead of failing"},                                \
    {"balance", NULL, "under-sample every class to the smallest (appendix E)"},                                  \
    {"split", "TR,VA", "train and validation fractions when splitting --data (default 0.7,0.1; with --test, the rest is dropped)"},                \
    {"max-examples", "N", "use at most N training examples"},                                                   \
    {"max-eval", "N", "use a random N of the validation and of the test examples"},                             \
    {"max-len", "N", "truncate sequences to N tokens (default 256)"},                                          \
    CLI_CHAT_OPT,                                                                                                \
    {"eval-splits", "LIST", "the splits scored at the end: any of train,val,test (default all three)"}

typedef struct cli_splits {
    lorac_task task;
    lorac_dataset train, val, test;
} cli_splits;

typedef struct cli_tokenized {
    lorac_tokenized train, val, test;
} cli_tokenized;

typedef struct cli_results {
    double acc[3], loss[3]; /* train, val, test; acc < 0 when not classification; loss NAN when empty */
    int n[3];
    int scored[3];           /* 1: the split was scored (--eval-splits) */
    double eval_seconds;     /* the final evaluation of the scored splits */
    double train_seconds, tokens_per_s;
    int steps;
    int64_t trainable, all;
    size_t peak_rss;         /* of this process (rank 0 in a data-parallel run) */
    int ranks;               /* data-parallel ranks (0 or 1: one process) */
    double comm_seconds;     /* rank 0's time in collectives while training */
    double comm_wait_seconds; /* of which waiting for the slowest rank (barriers) */
    double comm_bytes_per_step; /* bytes each rank contributed to the sums per optimizer step */
} cli_results;

/* The chat format of --chat-format (see CLI_CHAT_OPT) for the llm
 * (lorac_api_chat_format): auto reads the template of --tokenizer's
 * directory when given, else of the model (GGUF metadata or directory); a
 * template of no known family is an error (exit 1). A named format
 * keeps the template's details (default system message) when the template
 * is of that family. Prints one "chat format: ..." line to stderr. */
void cli_chat_format(const cli_args *a, const lorac_llm *llm, lorac_chat_format *f);

/* Load --data (and --val/--test) into train / val / test as the flags say.
 * whole = 1: every row of --data goes to the test set, unsplit. */
void cli_load_splits(const cli_args *a, cli_splits *s, int whole);
void cli_splits_free(cli_splits *s);
void cli_tokenize_splits(const cli_args *a, const cli_splits *s, const lorac_llm *llm, cli_tokenized *t);
void cli_tokenized_free(cli_tokenized *t);
/* --eval-splits as flags for train / val / test (all 1 when absent); a bad
 * list is a usage error. Called early to check the flag, and by
 * cli_evaluate_splits, which scores only the splits asked for (forward only,
 * examples in order of length: lorac_evaluate_dist). */
void cli_eval_splits(const cli_args *a, int want[3]);
void cli_evaluate_splits(const cli_args *a, lorac_model *m, const cli_tokenized *t, lorac_task task, int batch,
                         cli_results *r);
void cli_print_results(const cli_args *a, const cli_results *r, const cli_splits *s);
void cli_write_results(const cli_args *a, const char *dir, const cli_results *r, const cli_splits *s);

#endif
