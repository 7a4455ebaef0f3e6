/* dataset.h - training data: classification rows (TSV, CSV, JSONL, JSON),
 * plain text for causal-LM fine-tuning, and instruction/response records.
 *
 * Files are read whole; a name ending in ".gz" is decompressed on the fly
 * (zlib), so `imdb_train.tsv.gz` can be passed as it is. Every file is
 * treated as hostile: it must be UTF-8 (a leading BOM is dropped) with no
 * NUL bytes, and a bad row gives one error line
 *     "<path>:<line>: <problem>; hint: <what to try>"
 * with LORAC_ERR_DATA (a row's content) or LORAC_ERR_FORMAT (the file's
 * structure: quoting, JSON syntax, encoding, header). With skip_bad set, bad
 * rows are skipped instead, counted in n_skipped and reported through
 * lorac_log (core/log.h); structural errors stay fatal.
 *
 * Ownership: a lorac_dataset owns everything it points to (every string of
 * every example, the label names, the path copy). Datasets made from another
 * one (split, subset) are deep copies that own their own strings, so each is
 * released on its own with lorac_dataset_free, in any order. */
#ifndef LORAC_IO_DATASET_H
#define LORAC_IO_DATASET_H

#include <stdint.h>

#include "core/status.h"
#include "io/chat.h"

typedef struct lorac_example {
    char *text;     /* classification / plain-text input; for instruction data
                       the full training text, prompt followed by response */
    int label;      /* class id in [0, n_labels), or -1 when there is none */
    char *prompt;   /* instruction data: the Alpaca prompt, else NULL */
    char *response; /* instruction data: the expected output, else NULL */
    lorac_chat_msg *msgs; /* instruction data as a conversation (io/chat.h), else NULL: */
    int n_msgs;           /* a "messages" record's own, or an Alpaca record's user + assistant pair */
    int line;       /* 1-based line of the source file where the row starts */
} lorac_example;

typedef struct lorac_dataset {
    lorac_example *ex;  /* [n] */
    int n;
    char **label_names; /* [n_labels]: label_names[id] is the label's text */
    int n_labels;       /* 0 for unlabelled data */
    char *path;         /* the file it was read from */
    int n_skipped;      /* bad rows skipped (skip_bad) */
} lorac_dataset;

/* Values of lorac_data_opts.header. */
#define LORAC_HEADER_AUTO (-1)
#define LORAC_HEADER_NO 0
#define LORAC_HEADER_YES 1

typedef struct lorac_data_opts {
    /* "tsv", "csv", "jsonl" or "json"; NULL = from the extension (.tsv .csv
     * .jsonl .json, after any .gz), else sniffed from the content: '[' starts
     * a JSON array, '{' a JSONL file, a tab in the first line means TSV and a
     * comma CSV. TSV has no quoting; CSV follows RFC 4180. */
    const char *format;
    /* Columns (TSV/CSV): a header name or a 0-based index written as a number
     * ("1"). JSON: a key. NULL = defaults: without a header label is column 0
     * and text column 1 (the SMS spam layout "label\ttext"); with a header or
     * in JSON, the first column named text/sentence/review/sms/message/content
     * and the first named label/class/category/sentiment/target (case
     * ignored). */
    const char *text_col;
    const char *label_col;
    /* LORAC_HEADER_AUTO (-1): the first row is a header when one of its
     * fields is a known or requested column name; LORAC_HEADER_NO (0);
     * LORAC_HEADER_YES (1). Note that a zeroed struct means "no header":
     * start from LORAC_DATA_OPTS_DEFAULT instead. */
    int header;
    /* Optional label names in id order, NULL-terminated, e.g.
     * {"ham", "spam", NULL}. A label outside the list is a bad row. Default:
     * the distinct labels sorted, numerically when all are numbers ("ham"=0,
     * "spam"=1; "2" before "10"). */
    const char *const *label_order;
    int skip_bad; /* 1: skip bad rows (counted, logged) instead of failing */
} lorac_data_opts;

#define LORAC_DATA_OPTS_DEFAULT {NULL, NULL, NULL, LORAC_HEADER_AUTO, NULL, 0}

/* Load a classification file: every example gets text and label. `o` may be
 * NULL (defaults). On failure *out is left empty (safe to free). */
lorac_status lorac_dataset_load(const char *path, const lorac_data_opts *o, lorac_dataset *out);

/* Load plain text for causal-LM training (label -1). A .txt file (or any
 * name that is not .tsv/.csv/.jsonl/.json) is split into documents on blank
 * lines, each document's lines joined by '\n'; a TSV/CSV with a header or a
 * JSONL/JSON file gives one document per row from its text column. */
lorac_status lorac_dataset_load_text(const char *path, lorac_dataset *out);

/* Load instruction data: a JSON array or JSONL of records of two shapes,
 * which may be mixed:
 *   Alpaca  {"instruction": s, "input": s (optional), "output": s}: the
 *           example gets
 *             prompt   = lorac_alpaca_prompt(instruction, input)
 *             response = output
 *             text     = prompt + response
 *           exactly as LLMs-from-scratch ch. 7 builds its training text, and
 *           as a conversation msgs = [user: instruction, or instruction +
 *           "\n\n" + input when there is one; assistant: output];
 *   chat    {"messages": [{"role": r, "content": s}, ...]} (the usual chat
 *           dataset shape; r is system, user or assistant, a system message
 *           only first) or ShareGPT's {"conversations": [{"from": f,
 *           "value": s}, ...]} (f human, gpt or system; role / content also
 *           read there): msgs, with prompt = response = NULL and text = "".
 *           A record needs at least one assistant message.
 * A bad record is one error naming the file, line and field ("messages"[2].role).
 * label is -1. */
lorac_status lorac_dataset_load_instructions(const char *path, lorac_dataset *out);

/* The Alpaca prompt of LLMs-from-scratch ch. 7 (format_input + the response
 * header):
 *   "Below is an instruction that describes a task. Write a response that
 *   appropriately completes the request.\n\n### Instruction:\n{instruction}"
 *   + "\n\n### Input:\n{input}" when input is non-empty
 *   + "\n\n### Response:\n".
 * input may be NULL. Returns a malloc'd string (caller frees) or NULL when
 * out of memory. */
char *lorac_alpaca_prompt(const char *instruction, const char *input);

/* Release everything the dataset owns and zero it. Accepts NULL and an
 * already freed or zeroed dataset. */
void lorac_dataset_free(lorac_dataset *d);

/* Number of examples with this label. */
int lorac_dataset_count(const lorac_dataset *d, int label);

/* Under-sample every class to the size of the smallest non-empty class
 * (LLMs-from-scratch appendix E, create_balanced_dataset): the kept examples
 * of each class are a seeded random choice; they stay in file order. In
 * place. LORAC_ERR_ARG if an example has no label. */
lorac_status lorac_dataset_balance(lorac_dataset *d, uint64_t seed);

/* Shuffle the examples in place (seeded Fisher-Yates, core/rng.h). */
void lorac_dataset_shuffle(lorac_dataset *d, uint64_t seed);

/* Split into train / validation / test as appendix E's random_split does:
 * optionally shuffle (seeded), then with n examples
 *   train_end = (int)(n * train_frac), val_end = train_end + (int)(n * val_frac),
 * train = [0, train_end), val = [train_end, val_end), test = the rest.
 * (1,494 balanced SMS rows, 0.7 / 0.1 -> 1045 / 149 / 300.) Each part is a
 * new dataset (a deep copy with the same label names); val and test may be
 * NULL when not wanted. d is not changed. */
lorac_status lorac_dataset_split(const lorac_dataset *d, double train_frac, double val_frac, uint64_t seed,
                                 int shuffle, lorac_dataset *train, lorac_dataset *val, lorac_dataset *test);

/* A deep copy of the first max_n examples (all when max_n < 0 or > n). */
lorac_status lorac_dataset_subset(const lorac_dataset *d, int max_n, lorac_dataset *out);

#endif
