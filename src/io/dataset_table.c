/* dataset_table.c - classification / text rows from TSV and CSV files:
 * header detection, choosing the text and label columns, checking each row. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "io/csv.h"
#include "io/dataset_internal.h"

/* A column spec that is all digits is an index. */
static int parse_index(const char *s, int *idx) {
    if (!s || !*s) return 0;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p)) return 0;
        v = v * 10 + (*p - '0');
        if (v > 1000000) return 0;
    }
    *idx = (int)v;
    return 1;
}

/* The column whose header field equals `name` (case ignored), or -1. */
static int find_named(const lorac_csv *c, const char *name) {
    for (int i = 0; i < c->n_field; i++)
        if (strcasecmp(c->field[i], name) == 0) return i;
    return -1;
}

static int find_known(const lorac_csv *c, int (*is_name)(const char *)) {
    for (int i = 0; i < c->n_field; i++)
        if (is_name(c->field[i])) return i;
    return -1;
}

/* "a, b, c" from the header fields, shortened to fit. */
static const char *header_list(const lorac_csv *c, char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; i < c->n_field; i++) {
        size_t used = strlen(buf);
        if (used + 40 > n) {
            snprintf(buf + used, n - used, ", ...");
            break;
        }
        snprintf(buf + used, n - used, "%s%.30s", i ? ", " : "", c->field[i]);
    }
    return buf;
}

/* Does the first row look like a header? */
static int looks_like_header(const lorac_csv *c, const lorac_data_opts *o) {
    int idx;
    for (int i = 0; i < c->n_field; i++) {
        const char *f = c->field[i];
        if (ds_is_text_name(f) || ds_is_label_name(f)) return 1;
        if (o->text_col && !parse_index(o->text_col, &idx) && strcasecmp(f, o->text_col) == 0) return 1;
        if (o->label_col && !parse_index(o->label_col, &idx) && strcasecmp(f, o->label_col) == 0) return 1;
    }
    return 0;
}

/* Resolve one column ("text" or "label") from the user's spec or the
 * defaults. `first` is the first row (the header when has_header). */
static lorac_status resolve_column(const char *path, const lorac_csv *first, int has_header, const char *what,
                                   const char *spec, int (*is_name)(const char *), int *col) {
    char list[256];
    if (spec && parse_index(spec, col)) {
        if (*col >= first->n_field)
            return lorac_fail(LORAC_ERR_FORMAT,
                              "%s:%d: the %s column %d is out of range: the first row has %d column%s; hint: "
                              "columns count from 0",
                              path, first->row_line, what, *col, first->n_field, first->n_field == 1 ? "" : "s");
        return LORAC_OK;
    }
    if (spec) {
        if (!has_header)
            return lorac_fail(LORAC_ERR_ARG,
                              "%s: the %s column '%s' is a name but the file has no header row; hint: give a "
                              "0-based column index instead",
                              path, what, spec);
        *col = find_named(first, spec);
        if (*col < 0)
            return lorac_fail(LORAC_ERR_FORMAT, "%s:%d: no column named '%s' in the header (%s); hint: check --%s-col",
                              path, first->row_line, spec, header_list(first, list, sizeof list), what);
        return LORAC_OK;
    }
    *col = has_header ? find_known(first, is_name) : -1;
    return LORAC_OK;
}

/* Pick the text and label columns (label_col = -1 when !want_label). */
static lorac_status choose_columns(const char *path, const lorac_csv *first, int has_header,
                                   const lorac_data_opts *o, int want_label, int *text_col, int *label_col) {
    char list[256];
    *label_col = -1;
    LORAC_TRY(resolve_column(path, first, has_header, "text", o->text_col, ds_is_text_name, text_col));
    if (want_label) LORAC_TRY(resolve_column(path, first, has_header, "label", o->label_col, ds_is_label_name, label_col));
    if (!has_header) {
        /* No header: the SMS spam layout "label<TAB>text", or a single text column. */
        if (want_label) {
            if (*label_col < 0) *label_col = (*text_col == 0) ? 1 : 0;
            if (*text_col < 0) *text_col = (*label_col == 1) ? 0 : 1;
        } else if (*text_col < 0) {
            if (first->n_field != 1)
                return lorac_fail(LORAC_ERR_FORMAT,
                                  "%s:%d: cannot tell which of the %d columns is the text; hint: add a header row "
                                  "with a 'text' column",
                                  path, first->row_line, first->n_field);
            *text_col = 0;
        }
    } else if (want_label && first->n_field == 2 && (*text_col < 0) != (*label_col < 0)) {
        /* A two-column header with one known name: the other column is the other role. */
        if (*text_col < 0) *text_col = 1 - *label_col;
        else *label_col = 1 - *text_col;
    }
    if (*text_col < 0)
        return lorac_fail(LORAC_ERR_FORMAT,
                          "%s:%d: the header (%s) names no text column (text, sentence, review, sms, message, "
                          "content); hint: use --text-col NAME or INDEX",
                          path, first->row_line, header_list(first, list, sizeof list));
    if (want_label && *label_col < 0)
        return lorac_fail(LORAC_ERR_FORMAT,
                          "%s:%d: the header (%s) names no label column (label, class, category, sentiment, "
                          "target); hint: use --label-col NAME or INDEX",
                          path, first->row_line, header_list(first, list, sizeof list));
    if (*text_col == *label_col)
        return lorac_fail(LORAC_ERR_ARG, "%s: the text and the label are both column %d; hint: check --text-col/--label-col",
                          path, *text_col);
    return LORAC_OK;
}

static int all_space(const char *s) {
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

/* Trim surrounding white space in place. */
static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

/* Check one data row and add it (or report it as bad). */
static lorac_status take_row(ds_builder *b, const lorac_csv *c, ds_format fmt, int text_col, int label_col) {
    int need = (text_col > label_col ? text_col : label_col) + 1;
    if (c->n_field < need) {
        const char *sep = fmt == DS_TSV ? "tab-separated" : "comma-separated";
        if (label_col >= 0)
            return ds_bad_row(b, LORAC_ERR_DATA, c->row_line,
                              "row has %d column%s but the label is column %d and the text column %d; hint: is the "
                              "file %s? use --text-col/--label-col",
                              c->n_field, c->n_field == 1 ? "" : "s", label_col, text_col, sep);
        return ds_bad_row(b, LORAC_ERR_DATA, c->row_line,
                          "row has %d column%s but the text is column %d; hint: is the file %s? use --text-col",
                          c->n_field, c->n_field == 1 ? "" : "s", text_col, sep);
    }
    const char *text = c->field[text_col];
    if (all_space(text))
        return ds_bad_row(b, LORAC_ERR_DATA, c->row_line,
                          "empty text (column %d); hint: remove the row or pass --skip-bad-rows", text_col);
    const char *label = NULL;
    if (label_col >= 0) {
        label = trim(c->field[label_col]);
        if (!*label)
            return ds_bad_row(b, LORAC_ERR_DATA, c->row_line,
                              "empty label (column %d); hint: every row needs a label, or pass --skip-bad-rows",
                              label_col);
    }
    return ds_add(b, c->row_line, text, label, NULL, NULL);
}

lorac_status ds_load_table(ds_builder *b, char *buf, size_t len, ds_format fmt, const lorac_data_opts *o,
                           int want_label) {
    lorac_csv c;
    lorac_csv_init(&c, buf, len, fmt == DS_TSV ? '\t' : ',', fmt == DS_CSV, b->path);
    int got, text_col = -1, label_col = -1;
    lorac_status st = lorac_csv_next(&c, &got);
    if (st == LORAC_OK && got) {
        int has_header = o->header == LORAC_HEADER_AUTO ? looks_like_header(&c, o) : o->header != LORAC_HEADER_NO;
        st = choose_columns(b->path, &c, has_header, o, want_label, &text_col, &label_col);
        if (st == LORAC_OK && !has_header) st = take_row(b, &c, fmt, text_col, label_col);
        while (st == LORAC_OK && (st = lorac_csv_next(&c, &got)) == LORAC_OK && got)
            st = take_row(b, &c, fmt, text_col, label_col);
    }
    lorac_csv_free(&c);
    return st;
}
