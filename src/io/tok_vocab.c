/* tok_vocab.c - the piece table every tokenizer is built on: growable
 * buffers, hash maps for pieces and merges, and the build steps loaders call
 * (tok_create, tok_set_piece, tok_add_merge, tok_add_token, tok_finish). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/tok_internal.h"

/* ------------------------------------------------ buffers */
static lorac_status grow(void **v, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return LORAC_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    size_t bytes;
    if (!lorac_mul_ok(c, elem, &bytes)) return lorac_fail(LORAC_ERR_NOMEM, "tokenizer: buffer size overflow");
    void *p = realloc(*v, bytes);
    if (!p) return lorac_fail(LORAC_ERR_NOMEM, "tokenizer: out of memory (%zu bytes)", bytes);
    *v = p;
    *cap = c;
    return LORAC_OK;
}

lorac_status tok_ids_push(tok_ids *a, int id) {
    LORAC_TRY(grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v));
    a->v[a->n++] = id;
    return LORAC_OK;
}

lorac_status tok_buf_put(tok_buf *b, const void *p, size_t n) {
    LORAC_TRY(grow((void **)&b->v, &b->cap, b->n + n + 1, 1)); /* +1: room for a NUL */
    if (n) memcpy(b->v + b->n, p, n);
    b->n += n;
    return LORAC_OK;
}

lorac_status tok_buf_putc(tok_buf *b, char c) { return tok_buf_put(b, &c, 1); }

/* ------------------------------------------------ string map */
/* FNV-1a over the bytes; open addressing with linear probing, kept at most
 * half full. Keys are borrowed: they live in the tokenizer's piece table,
 * which is only ever appended to. */
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static lorac_status strmap_rehash(tok_strmap *m, size_t cap) {
    tok_str_entry *e = calloc(cap, sizeof *e);
    if (!e) return lorac_fail(LORAC_ERR_NOMEM, "tokenizer: out of memory for the vocabulary index");
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->e[i].key) continue;
        size_t j = hash_bytes(m->e[i].key, m->e[i].len) & (cap - 1);
        while (e[j].key) j = (j + 1) & (cap - 1);
        e[j] = m->e[i];
    }
    free(m->e);
    m->e = e;
    m->cap = cap;
    return LORAC_OK;
}

lorac_status tok_strmap_put(tok_strmap *m, const char *key, size_t len, int val) {
    if (2 * (m->n + 1) > m->cap) LORAC_TRY(strmap_rehash(m, m->cap ? 2 * m->cap : 64));
    size_t j = hash_bytes(key, len) & (m->cap - 1);
    while (m->e[j].key) {
        if (m->e[j].len == len && memcmp(m->e[j].key, key, len) == 0) {
            m->e[j].key = key; /* later entries win, as in HF's vocab dicts */
            m->e[j].val = val;
            return LORAC_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->e[j] = (tok_str_entry){key, (uint32_t)len, val};
    m->n++;
    return LORAC_OK;
}

int tok_strmap_get(const tok_strmap *m, const char *key, size_t len) {
    if (!m->cap) return -1;
    size_t j = hash_bytes(key, len) & (m->cap - 1);
    while (m->e[j].key) {
        if (m->e[j].len == len && memcmp(m->e[j].key, key, len) == 0) return m->e[j].val;
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->e);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------ pair map */
static uint64_t mix64(uint64_t x) { /* splitmix64 finalizer */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t pair_key(int a, int b) { return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1; }

static lorac_status pairmap_rehash(tok_pairmap *m, size_t cap) {
    tok_pair_entry *e = calloc(cap, sizeof *e);
    if (!e) return lorac_fail(LORAC_ERR_NOMEM, "tokenizer: out of memory for the merge table");
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->e[i].key) continue;
        size_t j = mix64(m->e[i].key) & (cap - 1);
        while (e[j].key) j = (j + 1) & (cap - 1);
        e[j] = m->e[i];
    }
    free(m->e);
    m->e = e;
    m->cap = cap;
    return LORAC_OK;
}

lorac_status tok_pairmap_put(tok_pairmap *m, int a, int b, int rank, int id) {
    if (2 * (m->n + 1) > m->cap) LORAC_TRY(pairmap_rehash(m, m->cap ? 2 * m->cap : 64));
    uint64_t k = pair_key(a, b);
    size_t j = mix64(k) & (m->cap - 1);
    while (m->e[j].key && m->e[j].key != k) j = (j + 1) & (m->cap - 1);
    if (!m->e[j].key) m->n++;
    m->e[j] = (tok_pair_entry){k, rank, id}; /* a repeated merge keeps its later rank, as in HF */
    return LORAC_OK;
}

int tok_pairmap_get(const tok_pairmap *m, int a, int b, int *rank) {
    if (!m->cap) return -1;
    uint64_t k = pair_key(a, b);
    size_t j = mix64(k) & (m->cap - 1);
    while (m->e[j].key) {
        if (m->e[j].key == k) {
            *rank = m->e[j].rank;
            return m->e[j].id;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void tok_pairmap_free(tok_pairmap *m) {
    free(m->e);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------ paths */
void tok_dir_of(const char *path, char *dir, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, cap, ".");
    else if (slash == path)
        snprintf(dir, cap, "/");
    else
        snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

/* ------------------------------------------------ building */
lorac_status tok_create(const tok_family *fam, int n_vocab, const char *source, lorac_tokenizer **out) {
    *out = NULL;
    lorac_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", source);
    t->fam = fam;
    t->bos = t->eos = t->pad = t->unk = -1;
    t->max_added_id = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    size_t sl = strlen(source);
    char *src = malloc(sl + 1);
    if (!src) {
        free(t);
        return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", source);
    }
    memcpy(src, source, sl + 1);
    t->source = src;
    lorac_status st = tok_resize(t, n_vocab);
    if (st != LORAC_OK) {
        tok_destroy(t);
        return st;
    }
    *out = t;
    return LORAC_OK;
}

lorac_status tok_resize(lorac_tokenizer *t, int n_vocab) {
    if (n_vocab <= t->n_vocab) return LORAC_OK;
    size_t n = (size_t)n_vocab, old = (size_t)t->n_vocab;
    char **p = realloc(t->piece, n * sizeof *p);
    if (p) t->piece = p;
    uint32_t *pl = p ? realloc(t->piece_len, n * sizeof *pl) : NULL;
    if (pl) t->piece_len = pl;
    float *sc = pl ? realloc(t->score, n * sizeof *sc) : NULL;
    if (sc) t->score = sc;
    uint8_t *at = sc ? realloc(t->attr, n) : NULL;
    if (at) t->attr = at;
    uint8_t *fl = at ? realloc(t->flags, n) : NULL;
    if (!fl) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory for %d tokens", t->source, n_vocab);
    t->flags = fl;
    for (size_t i = old; i < n; i++) {
        t->piece[i] = NULL;
        t->piece_len[i] = 0;
        t->score[i] = 0;
        t->attr[i] = 0;
        t->flags[i] = 0;
    }
    t->n_vocab = n_vocab;
    return LORAC_OK;
}

lorac_status tok_check_sparse(const char *path, const char *what, int max_id, int n_entries) {
    if ((int64_t)max_id >= 2 * (int64_t)n_entries + 1024)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: %s has %d entries but ids up to %d (mostly unused ids); hint: the "
                          "file is corrupt", path, what, n_entries, max_id);
    return LORAC_OK;
}

lorac_status tok_set_piece(lorac_tokenizer *t, int id, const char *s, size_t len, float score, int attr, int in_model) {
    if (id < 0 || id >= t->n_vocab)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: token id %d out of range [0, %d)", t->source, id, t->n_vocab);
    if (len > UINT32_MAX) return lorac_fail(LORAC_ERR_FORMAT, "%s: token %d is too long", t->source, id);
    if (t->piece[id] && t->piece_len[id] == len && memcmp(t->piece[id], s, len) == 0) {
        t->score[id] = score;
        t->attr[id] = (uint8_t)attr;
        return in_model ? tok_strmap_put(&t->vocab, t->piece[id], len, id) : LORAC_OK;
    }
    char *c = malloc(len + 1);
    if (!c) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", t->source);
    memcpy(c, s, len);
    c[len] = 0;
    /* An added token may rename a model id; the model's spelling stays a key
     * of the vocab map, so its storage is kept until tok_destroy. */
    char *old = t->piece[id];
    if (old && tok_strmap_get(&t->vocab, old, t->piece_len[id]) == id) {
        char **r = realloc(t->retired, (size_t)(t->n_retired + 1) * sizeof *r);
        if (!r) {
            free(c);
            return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", t->source);
        }
        t->retired = r;
        r[t->n_retired++] = old;
    } else {
        free(old);
    }
    t->piece[id] = c;
    t->piece_len[id] = (uint32_t)len;
    t->score[id] = score;
    t->attr[id] = (uint8_t)attr;
    return in_model ? tok_strmap_put(&t->vocab, c, len, id) : LORAC_OK;
}

lorac_status tok_add_merge(lorac_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, int rank,
                           const char *where) {
    int ia = tok_strmap_get(&t->vocab, a, alen);
    int ib = tok_strmap_get(&t->vocab, b, blen);
    const char *missing = ia < 0 ? a : ib < 0 ? b : NULL;
    size_t mlen = ia < 0 ? alen : blen;
    if (missing)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: merge '%.*s %.*s' uses '%.*s', which is not in the vocabulary", where,
                          (int)alen, a, (int)blen, b, (int)mlen, missing);
    char small[256];
    char *ab = alen + blen <= sizeof small ? small : malloc(alen + blen);
    if (!ab) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", where);
    memcpy(ab, a, alen);
    memcpy(ab + alen, b, blen);
    int im = tok_strmap_get(&t->vocab, ab, alen + blen);
    if (ab != small) free(ab);
    if (im < 0)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: merge '%.*s %.*s' makes '%.*s%.*s', which is not in the vocabulary",
                          where, (int)alen, a, (int)blen, b, (int)alen, a, (int)blen, b);
    return tok_pairmap_put(&t->merges, ia, ib, rank, im);
}

lorac_status tok_add_token(lorac_tokenizer *t, int id, int special, int lstrip, int rstrip, int single_word) {
    if (id < 0 || id >= t->n_vocab || !t->piece[id])
        return lorac_fail(LORAC_ERR_FORMAT, "%s: added token id %d has no piece", t->source, id);
    if (t->flags[id] & TOK_F_ADDED) { /* already one; naming it special (bos_token, ...) makes it special */
        if (special) t->flags[id] |= TOK_F_SPECIAL;
        return LORAC_OK;
    }
    if (t->piece_len[id] == 0) return LORAC_OK; /* an empty token can never be matched */
    if (t->n_added % 64 == 0) {
        tok_added *a = realloc(t->added, (size_t)(t->n_added + 64) * sizeof *a);
        if (!a) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", t->source);
        t->added = a;
    }
    t->added[t->n_added++] =
        (tok_added){id, 0, (uint8_t)!!lstrip, (uint8_t)!!rstrip, (uint8_t)!!single_word};
    t->flags[id] |= TOK_F_ADDED | (special ? TOK_F_SPECIAL : 0);
    if (id > t->max_added_id) t->max_added_id = id;
    return LORAC_OK;
}

lorac_status tok_add_text(lorac_tokenizer *t, const char *s, size_t len, int special, int lstrip, int rstrip,
                          int single_word, int *id) {
    *id = tok_lookup(t, s, len);
    if (*id < 0) {
        int model_size = (int)t->vocab.n;
        *id = t->max_added_id >= model_size ? t->max_added_id + 1 : model_size;
        LORAC_TRY(tok_resize(t, *id + 1));
        LORAC_TRY(tok_set_piece(t, *id, s, len, 0, special ? TOK_CONTROL : TOK_USER, 0));
    }
    return tok_add_token(t, *id, special, lstrip, rstrip, single_word);
}

int tok_lookup(const lorac_tokenizer *t, const char *s, size_t len) {
    int id = tok_strmap_get(&t->vocab, s, len);
    if (id >= 0) return id;
    for (int i = 0; i < t->n_added; i++) {
        int a = t->added[i].id;
        if (t->piece_len[a] == len && memcmp(t->piece[a], s, len) == 0) return a;
    }
    return -1;
}

void tok_set_add_special(lorac_tokenizer *t, int add_bos, int add_eos) {
    t->n_prefix = t->n_suffix = 0;
    if (add_bos && t->bos >= 0) t->prefix[t->n_prefix++] = t->bos;
    if (add_eos && t->eos >= 0) t->suffix[t->n_suffix++] = t->eos;
}

/* Longer added tokens first, so the first match at a position is the
 * longest (HF matches leftmost-longest); equal lengths in id order. */
static int cmp_added(const void *pa, const void *pb) {
    const tok_added *a = pa, *b = pb;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* The added-token index tokenizer.c matches the text with: text -> entry
 * (the first in sorted order wins, so equal texts keep the lowest id) and
 * the distinct lengths, longest first (added[] is sorted that way). */
static lorac_status index_added(lorac_tokenizer *t) {
    tok_strmap_free(&t->added_map);
    free(t->added_lens);
    t->added_lens = NULL;
    t->n_added_lens = 0;
    if (!t->n_added) return LORAC_OK;
    t->added_lens = malloc((size_t)t->n_added * sizeof *t->added_lens);
    if (!t->added_lens) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", t->source);
    for (int i = 0; i < t->n_added; i++) {
        const tok_added *a = &t->added[i];
        if (tok_strmap_get(&t->added_map, t->piece[a->id], a->len) < 0)
            LORAC_TRY(tok_strmap_put(&t->added_map, t->piece[a->id], a->len, i));
        if (!t->n_added_lens || t->added_lens[t->n_added_lens - 1] != a->len) t->added_lens[t->n_added_lens++] = a->len;
    }
    return LORAC_OK;
}

lorac_status tok_finish(lorac_tokenizer *t) {
    for (int i = 0; i < t->n_vocab; i++)
        if (!t->piece[i]) LORAC_TRY(tok_set_piece(t, i, "", 0, 0, TOK_UNUSED, 0)); /* a hole in the ids */
    for (int i = 0; i < t->n_added; i++) t->added[i].len = t->piece_len[t->added[i].id];
    if (t->n_added) qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_added);
    memset(t->added_first, 0, sizeof t->added_first);
    for (int i = 0; i < t->n_added; i++) t->added_first[(unsigned char)t->piece[t->added[i].id][0]] = 1;
    LORAC_TRY(index_added(t));
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t n;
        if (t->fam == &tok_family_bytelevel) {
            n = tok_utf8_encode(tok_byte_to_cp((unsigned)b), s);
        } else {
            snprintf(s, sizeof s, "<0x%02X>", b);
            n = 6;
        }
        t->byte_id[b] = tok_strmap_get(&t->vocab, s, n);
    }
    int *ids[] = {&t->bos, &t->eos, &t->pad, &t->unk};
    const char *names[] = {"bos", "eos", "pad", "unk"};
    for (int k = 0; k < 4; k++)
        if (*ids[k] >= t->n_vocab)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: %s token id %d out of range [0, %d)", t->source, names[k],
                              *ids[k], t->n_vocab);
    for (int k = 0; k < t->n_prefix; k++)
        if (t->prefix[k] < 0 || t->prefix[k] >= t->n_vocab)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: special token id %d out of range", t->source, t->prefix[k]);
    for (int k = 0; k < t->n_suffix; k++)
        if (t->suffix[k] < 0 || t->suffix[k] >= t->n_vocab)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: special token id %d out of range", t->source, t->suffix[k]);
    return LORAC_OK;
}

lorac_status tok_hand_over(lorac_tokenizer *t, lorac_status st, lorac_tokenizer **out) {
    if (st == LORAC_OK) st = tok_finish(t);
    if (st != LORAC_OK) {
        tok_destroy(t);
        return st;
    }
    *out = t;
    return LORAC_OK;
}

void tok_destroy(lorac_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_vocab; i++) free(t->piece[i]);
    for (int i = 0; i < t->n_retired; i++) free(t->retired[i]);
    free(t->retired);
    free(t->piece);
    free(t->piece_len);
    free(t->score);
    free(t->attr);
    free(t->flags);
    free(t->added);
    tok_strmap_free(&t->vocab);
    tok_pairmap_free(&t->merges);
    tok_pretok_free(&t->pre);
    tok_strmap_free(&t->added_map);
    free(t->added_lens);
    free((char *)t->source);
    free(t);
}
