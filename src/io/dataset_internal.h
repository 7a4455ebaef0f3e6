/* dataset_internal.h - what the dataset_*.c files share: reading a file,
 * detecting its format, and a builder that collects examples, maps label
 * strings to ids and handles bad rows. Not part of the public API. */
#ifndef LORAC_IO_DATASET_INTERNAL_H
#define LORAC_IO_DATASET_INTERNAL_H

#include <stddef.h>

#include "io/dataset.h"

typedef enum ds_format { DS_TSV, DS_CSV, DS_JSONL, DS_JSON, DS_TXT } ds_format;

/* Read a whole file, decompressing .gz, into a malloc'd NUL-terminated buffer
 * (free with free()). Drops a UTF-8 BOM; refuses NUL bytes and invalid UTF-8
 * with "<path>:<line>: ..." (LORAC_ERR_FORMAT). */
lorac_status ds_read_file(const char *path, char **buf, size_t *len);

/* The file's format: from `name` when given ("tsv", "csv", "jsonl", "json",
 * "txt"), else the extension (after any .gz), else sniffed from the content.
 * `fallback_txt`: an unknown extension means plain text instead of sniffing. */
lorac_status ds_detect_format(const char *path, const char *name, const char *buf, int fallback_txt,
                              ds_format *out);

/* 1-based line number of byte offset `off` in buf. */
int ds_line_of(const char *buf, size_t off);

/* Case-insensitive membership in the built-in column-name lists. */
int ds_is_text_name(const char *s);
int ds_is_label_name(const char *s);

/* Collects examples for one dataset. */
typedef struct ds_builder {
    lorac_dataset *d;   /* the dataset being filled (its ex array grows) */
    int cap;            /* capacity of d->ex */
    char **raw_label;   /* [cap] label strings, parallel to d->ex; NULL entries when unlabelled */
    const char *path;
    int skip_bad;
    char first_bad[600]; /* the first skipped row's message */
} ds_builder;

/* Start: out is zeroed and gets a copy of the path. */
lorac_status ds_begin(ds_builder *b, const char *path, int skip_bad, lorac_dataset *out);

/* Append an example: copies text and label (label may be NULL for unlabelled
 * data, prompt/response NULL unless instruction data). */
lorac_status ds_add(ds_builder *b, int line, const char *text, const char *label, const char *prompt,
                    const char *response);

/* Give the example ds_add appended last a copy of the conversation m[0..n). */
lorac_status ds_attach_chat(ds_builder *b, int line, const lorac_chat_msg *m, int n);

/* A bad row at `line`: with skip_bad it is counted and logged and LORAC_OK is
 * returned (the caller moves on); otherwise the formatted message becomes the
 * error, prefixed by "<path>:<line>: ", and `st` is returned. */
lorac_status ds_bad_row(ds_builder *b, lorac_status st, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Finish: refuses an empty result, maps label strings to ids (sorted or in
 * `label_order`), logs the number of skipped rows. On failure the dataset is
 * freed. Always releases the builder's own memory. */
lorac_status ds_finish(ds_builder *b, const char *const *label_order, lorac_status st);

/* Free the strings of one example. */
void ds_free_example(lorac_example *e);

/* Loaders per format family (dataset_table.c, dataset_json.c). want_label:
 * classification (label required) or plain text (labels ignored). */
lorac_status ds_load_table(ds_builder *b, char *buf, size_t len, ds_format fmt, const lorac_data_opts *o,
                           int want_label);
lorac_status ds_load_json(ds_builder *b, const char *buf, size_t len, ds_format fmt, const lorac_data_opts *o,
                          int want_label, int instructions);

#endif
