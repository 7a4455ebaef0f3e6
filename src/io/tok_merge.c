/* tok_merge.c - the BPE merge loop shared by every BPE tokenizer.
 *
 * Rule (HF tokenizers' Word::merge_all and sentencepiece's bpe_model.cc are
 * the same algorithm with different priorities): keep every adjacent pair of
 * symbols that the model can merge in a priority queue; repeatedly take the
 * best pair, merge it, and queue the two new pairs it forms with its
 * neighbours. Best means
 *   rank mode  (HF, merges list):       lowest merge rank,
 *   score mode (sentencepiece, scores): highest score of the merged piece,
 * and on ties the leftmost pair. A queued pair is stale when either side has
 * changed since; it is recognised because the two sides no longer add up to
 * the length it was queued with, and skipped.
 *
 * Cost: O(m log m) per word for m symbols, so long runs (a line of 10,000
 * '=' characters) stay cheap. */
#include <stdlib.h>

#include "io/tok_internal.h"

struct tok_cand {
    double key;      /* lower is better: rank, or -score */
    int left, right; /* symbol indices */
    uint32_t size;   /* left.len + right.len when queued */
    int id;          /* the merged piece */
};

static int better(const tok_cand *a, const tok_cand *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static lorac_status heap_push(tok_work *w, tok_cand c) {
    if (w->heap_n == w->heap_cap) {
        size_t cap = w->heap_cap ? 2 * w->heap_cap : 64;
        tok_cand *h = realloc(w->heap, cap * sizeof *h);
        if (!h) return lorac_fail(LORAC_ERR_NOMEM, "tokenizer: out of memory in the merge queue");
        w->heap = h;
        w->heap_cap = cap;
    }
    size_t i = w->heap_n++;
    while (i > 0) { /* sift up */
        size_t p = (i - 1) / 2;
        if (!better(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
    return LORAC_OK;
}

static tok_cand heap_pop(tok_work *w) {
    tok_cand top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) { /* sift down */
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && better(&w->heap[c + 1], &w->heap[c])) c++;
        if (!better(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* Can symbols l and r (adjacent) merge? If so, set its priority and result. */
static int mergeable(const lorac_tokenizer *t, const char *text, const tok_sym *s, int l, int r, double *key,
                     int *id) {
    if (t->merge_by_score) {
        /* sentencepiece: the concatenation must be a piece that merges may
         * produce (normal, user-defined or unused; never control or byte). */
        int m = tok_strmap_get(&t->vocab, text + s[l].start, (size_t)s[l].len + s[r].len);
        if (m < 0) return 0;
        int a = t->attr[m];
        if (a != TOK_NORMAL && a != TOK_USER && a != TOK_UNUSED) return 0;
        *key = -(double)t->score[m];
        *id = m;
        return 1;
    }
    if (s[l].id < 0 || s[r].id < 0) return 0;
    int rank;
    int m = tok_pairmap_get(&t->merges, s[l].id, s[r].id, &rank);
    if (m < 0) return 0;
    *key = rank;
    *id = m;
    return 1;
}

static lorac_status queue_pair(const lorac_tokenizer *t, const char *text, tok_work *w, int l, int r) {
    if (l < 0 || r < 0) return LORAC_OK;
    double key;
    int id;
    if (!mergeable(t, text, w->sym, l, r, &key, &id)) return LORAC_OK;
    return heap_push(w, (tok_cand){key, l, r, w->sym[l].len + w->sym[r].len, id});
}

/* sentencepiece splits a merged piece of type UNUSED back into the two
 * pieces it was made of; remember where such merges happened. */
static lorac_status note_unused(tok_work *w, uint32_t start, uint32_t len, uint32_t left_len) {
    if (w->unused_n + 3 > w->unused_cap) {
        size_t cap = w->unused_cap ? 2 * w->unused_cap : 48;
        uint32_t *u = realloc(w->unused, cap * sizeof *u);
        if (!u) return lorac_fail(LORAC_ERR_NOMEM, "tokenizer: out of memory");
        w->unused = u;
        w->unused_cap = cap;
    }
    w->unused[w->unused_n++] = start;
    w->unused[w->unused_n++] = len;
    w->unused[w->unused_n++] = left_len;
    return LORAC_OK;
}

lorac_status tok_work_reserve(tok_work *w, size_t n_sym) {
    if (n_sym <= w->sym_cap) return LORAC_OK;
    size_t cap = w->sym_cap ? w->sym_cap : 64;
    while (cap < n_sym) cap *= 2;
    tok_sym *s = realloc(w->sym, cap * sizeof *s);
    if (!s) return lorac_fail(LORAC_ERR_NOMEM, "tokenizer: out of memory for %zu symbols", n_sym);
    w->sym = s;
    w->sym_cap = cap;
    return LORAC_OK;
}

void tok_work_free(tok_work *w) {
    free(w->sym);
    free(w->heap);
    free(w->unused);
    *w = (tok_work){0};
}

lorac_status tok_merge(const lorac_tokenizer *t, const char *text, int n, tok_work *w) {
    tok_sym *s = w->sym;
    w->heap_n = 0;
    w->unused_n = 0;
    for (int i = 0; i + 1 < n; i++) LORAC_TRY(queue_pair(t, text, w, i, i + 1));
    while (w->heap_n) {
        tok_cand c = heap_pop(w);
        int l = c.left, r = c.right;
        if (s[l].len == 0 || s[r].len == 0 || s[l].len + s[r].len != c.size) continue; /* stale */
        if (t->merge_by_score && t->attr[c.id] == TOK_UNUSED) LORAC_TRY(note_unused(w, s[l].start, c.size, s[l].len));
        s[l].len += s[r].len;
        s[l].id = c.id;
        s[r].len = 0;
        s[l].next = s[r].next;
        if (s[r].next >= 0) s[s[r].next].prev = l;
        LORAC_TRY(queue_pair(t, text, w, s[l].prev, l));
        LORAC_TRY(queue_pair(t, text, w, l, s[l].next));
    }
    return LORAC_OK;
}
