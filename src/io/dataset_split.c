/* dataset_split.c - class balancing, seeded shuffles, train/val/test splits
 * and subsets (LLMs-from-scratch appendix E's protocol for SMS spam). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "io/dataset_internal.h"

static lorac_status nomem(const lorac_dataset *d) {
    return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory copying %d examples", d->path ? d->path : "dataset", d->n);
}

static char *dup_or_null(const char *s, int *failed) {
    if (!s) return NULL;
    char *c = strdup(s);
    if (!c) *failed = 1;
    return c;
}

/* out = a deep copy of the examples d->ex[idx[0..n)], with d's label names
 * and path. */
static lorac_status copy_examples(const lorac_dataset *d, const int *idx, int n, lorac_dataset *out) {
    memset(out, 0, sizeof *out);
    int failed = 0;
    out->ex = calloc((size_t)(n ? n : 1), sizeof *out->ex);
    out->label_names = calloc((size_t)(d->n_labels ? d->n_labels : 1), sizeof *out->label_names);
    out->path = dup_or_null(d->path, &failed);
    if (!out->ex || !out->label_names || failed) {
        lorac_dataset_free(out);
        return nomem(d);
    }
    for (; out->n_labels < d->n_labels; out->n_labels++)
        out->label_names[out->n_labels] = dup_or_null(d->label_names[out->n_labels], &failed);
    for (; out->n < n && !failed; out->n++) {
        const lorac_example *s = &d->ex[idx[out->n]];
        lorac_example *e = &out->ex[out->n];
        e->text = dup_or_null(s->text, &failed);
        e->prompt = dup_or_null(s->prompt, &failed);
        e->response = dup_or_null(s->response, &failed);
        if (!failed && lorac_chat_msgs_copy(s->msgs, s->n_msgs, &e->msgs) == LORAC_OK) e->n_msgs = s->n_msgs;
        else failed = 1;
        e->label = s->label;
        e->line = s->line;
    }
    if (failed) {
        lorac_dataset_free(out);
        return nomem(d);
    }
    return LORAC_OK;
}

/* 0, 1, ..., n-1, shuffled with `seed` when asked. */
static int *index_array(int n, int shuffle, uint64_t seed) {
    int *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
    if (!idx) return NULL;
    for (int i = 0; i < n; i++) idx[i] = i;
    if (shuffle) {
        lorac_rng rng;
        lorac_rng_seed(&rng, seed);
        lorac_rng_shuffle(&rng, idx, n);
    }
    return idx;
}

lorac_status lorac_dataset_balance(lorac_dataset *d, uint64_t seed) {
    for (int i = 0; i < d->n; i++)
        if (d->ex[i].label < 0 || d->ex[i].label >= d->n_labels)
            return lorac_fail(LORAC_ERR_ARG, "%s:%d: cannot balance classes: this example has no label", d->path,
                              d->ex[i].line);
    if (d->n_labels == 0) return LORAC_OK;
    int *count = calloc((size_t)d->n_labels, sizeof *count);
    int *members = malloc((size_t)(d->n ? d->n : 1) * sizeof *members);
    char *keep = calloc((size_t)(d->n ? d->n : 1), 1);
    if (!count || !members || !keep) {
        free(count);
        free(members);
        free(keep);
        return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory balancing classes", d->path);
    }
    /* the size of the smallest class that has examples */
    for (int i = 0; i < d->n; i++) count[d->ex[i].label]++;
    int min = d->n;
    for (int c = 0; c < d->n_labels; c++)
        if (count[c] > 0 && count[c] < min) min = count[c];
    /* keep a seeded random `min` examples of each class */
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    for (int c = 0; c < d->n_labels; c++) {
        int m = 0;
        for (int i = 0; i < d->n; i++)
            if (d->ex[i].label == c) members[m++] = i;
        if (m > min) lorac_rng_shuffle(&rng, members, m);
        for (int i = 0; i < m && i < min; i++) keep[members[i]] = 1;
    }
    /* compact in file order, releasing the dropped examples */
    int w = 0;
    for (int i = 0; i < d->n; i++) {
        if (keep[i]) d->ex[w++] = d->ex[i];
        else ds_free_example(&d->ex[i]);
    }
    d->n = w;
    free(count);
    free(members);
    free(keep);
    return LORAC_OK;
}

/* The same swaps as lorac_rng_shuffle on an index array, so shuffling and
 * then splitting without a shuffle gives the same parts as a shuffled split
 * with the same seed. */
void lorac_dataset_shuffle(lorac_dataset *d, uint64_t seed) {
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    for (int i = d->n - 1; i > 0; i--) {
        int j = (int)lorac_rng_below(&rng, (uint64_t)i + 1);
        lorac_example t = d->ex[i];
        d->ex[i] = d->ex[j];
        d->ex[j] = t;
    }
}

lorac_status lorac_dataset_split(const lorac_dataset *d, double train_frac, double val_frac, uint64_t seed,
                                 int shuffle, lorac_dataset *train, lorac_dataset *val, lorac_dataset *test) {
    memset(train, 0, sizeof *train);
    if (val) memset(val, 0, sizeof *val);
    if (test) memset(test, 0, sizeof *test);
    if (!(train_frac >= 0 && val_frac >= 0 && train_frac + val_frac <= 1 + 1e-9))
        return lorac_fail(LORAC_ERR_ARG,
                          "split fractions train %g and validation %g must be >= 0 and add up to at most 1",
                          train_frac, val_frac);
    int n = d->n;
    int train_end = (int)(n * train_frac);
    int val_end = train_end + (int)(n * val_frac);
    if (train_end > n) train_end = n;
    if (val_end > n) val_end = n;
    int *idx = index_array(n, shuffle, seed);
    if (!idx) return nomem(d);
    lorac_status st = copy_examples(d, idx, train_end, train);
    if (st == LORAC_OK && val) st = copy_examples(d, idx + train_end, val_end - train_end, val);
    if (st == LORAC_OK && test) st = copy_examples(d, idx + val_end, n - val_end, test);
    free(idx);
    if (st != LORAC_OK) {
        lorac_dataset_free(train);
        if (val) lorac_dataset_free(val);
        if (test) lorac_dataset_free(test);
    }
    return st;
}

lorac_status lorac_dataset_subset(const lorac_dataset *d, int max_n, lorac_dataset *out) {
    int n = (max_n < 0 || max_n > d->n) ? d->n : max_n;
    int *idx = index_array(n, 0, 0);
    if (!idx) {
        memset(out, 0, sizeof *out);
        return nomem(d);
    }
    lorac_status st = copy_examples(d, idx, n, out);
    free(idx);
    return st;
}
