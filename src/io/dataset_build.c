/* dataset_build.c - the example builder shared by the dataset loaders:
 * growing the example array, bad-row handling (fail or skip and log), and
 * mapping label strings to class ids. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "io/dataset_internal.h"

/* Skipped rows logged one by one before only the total is reported. */
#define DS_LOG_SKIPPED 10

/* ---- the builder ---- */

static char *dup_or_null(const char *s, int *failed) {
    if (!s) return NULL;
    char *c = strdup(s);
    if (!c) *failed = 1;
    return c;
}

lorac_status ds_begin(ds_builder *b, const char *path, int skip_bad, lorac_dataset *out) {
    memset(b, 0, sizeof *b);
    memset(out, 0, sizeof *out);
    b->d = out;
    b->path = path;
    b->skip_bad = skip_bad;
    out->path = strdup(path);
    if (!out->path) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", path);
    return LORAC_OK;
}

lorac_status ds_add(ds_builder *b, int line, const char *text, const char *label, const char *prompt,
                    const char *response) {
    lorac_dataset *d = b->d;
    if (d->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 256;
        lorac_example *ex = realloc(d->ex, (size_t)cap * sizeof *ex);
        if (ex) d->ex = ex;
        char **lab = ex ? realloc(b->raw_label, (size_t)cap * sizeof *lab) : NULL;
        if (!lab) return lorac_fail(LORAC_ERR_NOMEM, "%s:%d: out of memory adding a row", b->path, line);
        b->raw_label = lab;
        b->cap = cap;
    }
    int failed = 0;
    lorac_example *e = &d->ex[d->n];
    e->text = dup_or_null(text, &failed);
    e->prompt = dup_or_null(prompt, &failed);
    e->response = dup_or_null(response, &failed);
    e->msgs = NULL; /* ds_attach_chat gives a conversation */
    e->n_msgs = 0;
    e->label = -1;
    e->line = line;
    b->raw_label[d->n] = dup_or_null(label, &failed);
    d->n++; /* counted even on failure, so that everything is freed */
    if (failed) return lorac_fail(LORAC_ERR_NOMEM, "%s:%d: out of memory adding a row", b->path, line);
    return LORAC_OK;
}

lorac_status ds_bad_row(ds_builder *b, lorac_status st, int line, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!b->skip_bad) return lorac_fail(st, "%s:%d: %s", b->path, line, msg);
    if (b->d->n_skipped++ == 0) snprintf(b->first_bad, sizeof b->first_bad, "line %d: %s", line, msg);
    if (b->d->n_skipped <= DS_LOG_SKIPPED) lorac_log(1, "%s:%d: skipping bad row: %s", b->path, line, msg);
    return LORAC_OK;
}

lorac_status ds_attach_chat(ds_builder *b, int line, const lorac_chat_msg *m, int n) {
    lorac_example *e = &b->d->ex[b->d->n - 1];
    if (lorac_chat_msgs_copy(m, n, &e->msgs) != LORAC_OK)
        return lorac_fail(LORAC_ERR_NOMEM, "%s:%d: out of memory adding a conversation", b->path, line);
    e->n_msgs = n;
    return LORAC_OK;
}

void ds_free_example(lorac_example *e) {
    free(e->text);
    free(e->prompt);
    free(e->response);
    lorac_chat_msgs_free(e->msgs, e->n_msgs);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* All of the strings parse as numbers: then they sort by value. */
static int all_numeric(char **s, int n) {
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        strtod(s[i], &end);
        if (end == s[i] || *end || errno) return 0;
    }
    return 1;
}

static int cmp_numeric(const void *a, const void *b) {
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    double u = strtod(x, NULL), v = strtod(y, NULL);
    return u < v ? -1 : u > v ? 1 : strcmp(x, y);
}

/* Give every example its label id and fill d->label_names. Rows whose label
 * is not in label_order are bad rows (skipped or fatal). */
static lorac_status map_labels(ds_builder *b, const char *const *label_order) {
    lorac_dataset *d = b->d;
    int n = d->n;
    /* the distinct label strings, sorted with strcmp (for bsearch) */
    char **uniq = malloc((size_t)(n ? n : 1) * sizeof *uniq);
    int *uniq_id = malloc((size_t)(n ? n : 1) * sizeof *uniq_id);
    if (!uniq || !uniq_id) {
        free(uniq);
        free(uniq_id);
        return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory mapping labels", b->path);
    }
    memcpy(uniq, b->raw_label, (size_t)n * sizeof *uniq);
    qsort(uniq, (size_t)n, sizeof *uniq, cmp_str);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (k == 0 || strcmp(uniq[k - 1], uniq[i]) != 0) uniq[k++] = uniq[i];

    lorac_status s = LORAC_OK;
    int n_names = 0;
    const char *const *names = NULL;
    char **order = NULL;
    if (label_order) {
        names = label_order;
        while (names[n_names]) n_names++;
        for (int j = 0; j < k; j++) {
            uniq_id[j] = -1;
            for (int i = 0; i < n_names; i++)
                if (strcmp(uniq[j], names[i]) == 0) uniq_id[j] = i;
        }
    } else {
        /* default order: sorted, numerically when every label is a number */
        order = malloc((size_t)(k ? k : 1) * sizeof *order);
        if (!order) s = lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory mapping labels", b->path);
        else {
            memcpy(order, uniq, (size_t)k * sizeof *order);
            if (all_numeric(order, k)) qsort(order, (size_t)k, sizeof *order, cmp_numeric);
            for (int i = 0; i < k; i++) {
                char **hit = bsearch(&order[i], uniq, (size_t)k, sizeof *uniq, cmp_str);
                uniq_id[hit - uniq] = i;
            }
            names = (const char *const *)order;
            n_names = k;
        }
    }
    if (s == LORAC_OK) {
        d->label_names = calloc((size_t)(n_names ? n_names : 1), sizeof *d->label_names);
        if (!d->label_names) s = lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory mapping labels", b->path);
        for (int i = 0; s == LORAC_OK && i < n_names; i++, d->n_labels++)
            if (!(d->label_names[i] = strdup(names[i])))
                s = lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory mapping labels", b->path);
    }
    /* label ids; drop rows with an unknown label when skipping */
    int w = 0;
    for (int i = 0; i < n; i++) {
        lorac_example *e = &d->ex[i];
        int id = -1;
        if (s == LORAC_OK) {
            char **hit = bsearch(&b->raw_label[i], uniq, (size_t)k, sizeof *uniq, cmp_str);
            id = uniq_id[hit - uniq];
            if (id < 0) {
                char list[256] = "";
                for (int j = 0; j < n_names && strlen(list) < 200; j++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j ? ", " : "", names[j]);
                s = ds_bad_row(b, LORAC_ERR_DATA, e->line,
                               "label '%.80s' is not one of the given labels (%s); hint: check --labels", b->raw_label[i],
                               list);
            }
        }
        if (id < 0) {
            ds_free_example(e);
            continue;
        }
        e->label = id;
        d->ex[w++] = *e;
    }
    d->n = w;
    free(order);
    free(uniq);
    free(uniq_id);
    return s;
}

lorac_status ds_finish(ds_builder *b, const char *const *label_order, lorac_status st) {
    lorac_dataset *d = b->d;
    int n_added = d->n; /* raw labels to free (map_labels may drop rows) */
    int labelled = d->n > 0 && b->raw_label[0] != NULL;
    if (st == LORAC_OK && labelled) st = map_labels(b, label_order);
    if (st == LORAC_OK && d->n == 0) {
        if (d->n_skipped)
            st = lorac_fail(LORAC_ERR_DATA, "%s: all %d rows were bad, the first at %s", b->path, d->n_skipped,
                            b->first_bad);
        else
            st = lorac_fail(LORAC_ERR_DATA, "%s: no data rows; hint: is the file empty, or only a header?", b->path);
    }
    if (st == LORAC_OK && d->n_skipped)
        lorac_log(1, "%s: skipped %d bad row%s (first at %s), kept %d", b->path, d->n_skipped,
                  d->n_skipped == 1 ? "" : "s", b->first_bad, d->n);
    for (int i = 0; i < n_added; i++) free(b->raw_label[i]);
    free(b->raw_label);
    b->raw_label = NULL;
    if (st != LORAC_OK) lorac_dataset_free(d);
    return st;
}
