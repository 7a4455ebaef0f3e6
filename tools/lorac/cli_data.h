/* cli_data.h - data flags shared by train and eval: the flags made into a
 * lorac_data_config, loading the data (lorac_data_load: the appendix-E
 * protocol of balance, shuffle and split, then tokenizing) with its lines
 * on stderr, scoring the splits, and printing / writing the results. */
#ifndef LORAC_CLI_DATA_H
#define LORAC_CLI_DATA_H

#include "cli.h"

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

/* Load --data (and --val / --test) for llm as the data flags say (whole =
 * 1: every row of --data is the test set, unsplit) and print what lorac
 * train always printed: skipped rows, the labels with their counts, the
 * examples per split. Usage errors name the flag. */
lorac_data *cli_load_data(const cli_args *a, lorac_llm *llm, int whole);
/* lorac eval / merge: cli_load_data, then a classification set on a model
 * without a trained head is a usage error saying no_head, check_classes =
 * 1 makes more labels than the head's classes an error (exit 1), then the
 * lines of cli_print_tokenized. */
lorac_data *cli_load_eval_data(const cli_args *a, lorac_llm *llm, int whole, const char *no_head, int check_classes);
/* The lines of tokenizing: "chat format: ..." (instruct) and the examples
 * truncated to --max-len, per split. */
void cli_print_tokenized(const cli_args *a, const lorac_data *d);
/* --eval-splits as flags for train / val / test (all 1 when absent); a bad
 * list is a usage error. Called early to check the flag, and by
 * cli_score_splits, which scores only the splits asked for (forward only,
 * examples in order of length; shared over cli_ranks in a data-parallel run). */
void cli_eval_splits(const cli_args *a, int want[3]);
void cli_score_splits(const cli_args *a, lorac_llm *llm, const lorac_data *d, int batch, cli_results *r);
void cli_print_results(const cli_args *a, const cli_results *r);
void cli_write_results(const cli_args *a, const char *dir, const cli_results *r);

#endif
