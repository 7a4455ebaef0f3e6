/* cli_evalset.h - lorac eval / merge's data flags (CLI_DATA_OPTS, cli_data.h)
 * made into a public lorac_data_config and a lorac_evalset, printing what
 * lorac train prints while loading (rows skipped, labels, split sizes, the
 * chat format, truncation). On the public API only. */
#ifndef LORAC_CLI_EVALSET_H
#define LORAC_CLI_EVALSET_H

#include "cli.h"

/* The data flags as a lorac_data_config (strings point into argv); a bad
 * flag is a usage error naming it, before anything is read. whole = 1:
 * every row of --data is the test set, unsplit (the split flags unread).
 * max_len: --max-len, checked against the model's context n_ctx. */
void cli_data_config(const cli_args *a, int whole, int n_ctx, lorac_data_config *c);

/* Load, split and tokenize the data flags' files for llm (lorac_evalset_open,
 * seed --seed, default 123) and print to stderr, as lorac train does: bad
 * rows skipped, the labels with their counts and the split sizes (or
 * "examples: test N (every row of FILE)"), the chat format (instruct),
 * examples truncated. Exits on an error: a classification set on a model
 * without a trained head is a usage error saying no_head; check_classes = 1:
 * more labels than the head's classes is an error (exit 1). */
lorac_evalset *cli_evalset_open(const cli_args *a, const lorac_llm *llm, int whole, const char *no_head,
                                int check_classes);

/* The task of an open set: 1 for classify. */
int cli_evalset_is_cls(const lorac_evalset *s);

#endif
