/* tokenizer.c - the public tokenizer API: choosing a loader for a path,
 * cutting the text at added tokens, special tokens around the ids, and
 * decoding. The work inside one stretch of text is the family's
 * (tok_bpe.c, tok_spm.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "core/util.h"
#include "io/tok_internal.h"

/* ------------------------------------------------ loading */
static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static lorac_status load_dir(const char *dir, lorac_tokenizer **out) {
    char a[4096], b[4096];
    if (lorac_file_exists(lorac_path_join(a, sizeof a, dir, "tokenizer.json"))) return tok_load_json(a, out);
    lorac_path_join(a, sizeof a, dir, "vocab.json");
    lorac_path_join(b, sizeof b, dir, "merges.txt");
    if (lorac_file_exists(a) && lorac_file_exists(b)) return tok_load_vocab_merges(a, b, out);
    if (lorac_file_exists(lorac_path_join(a, sizeof a, dir, "tokenizer.model"))) return tok_load_spm_model(a, out);
    if (lorac_file_exists(lorac_path_join(a, sizeof a, dir, "vocab.txt"))) return tok_load_wordpiece_vocab(a, out);
    return lorac_fail(LORAC_ERR_IO,
                      "%s: no tokenizer here; hint: the directory needs tokenizer.json, vocab.json + merges.txt, "
                      "tokenizer.model or vocab.txt",
                      dir);
}

lorac_status lorac_tokenizer_load(const char *path, lorac_tokenizer **out) {
    if (!out) return lorac_fail(LORAC_ERR_ARG, "lorac_tokenizer_load: out is NULL");
    *out = NULL;
    if (!path || !*path) return lorac_fail(LORAC_ERR_ARG, "lorac_tokenizer_load: empty path");
    struct stat sb;
    if (stat(path, &sb) != 0) return lorac_fail(LORAC_ERR_IO, "%s: no such file or directory", path);
    if (S_ISDIR(sb.st_mode)) return load_dir(path, out);

    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char dir[4096], other[4096];
    tok_dir_of(path, dir, sizeof dir);
    if (strcmp(base, "vocab.json") == 0 || strcmp(base, "merges.txt") == 0) {
        int is_vocab = base[0] == 'v';
        lorac_path_join(other, sizeof other, dir, is_vocab ? "merges.txt" : "vocab.json");
        if (!lorac_file_exists(other))
            return lorac_fail(LORAC_ERR_IO, "%s: %s needs %s next to it", path, base,
                              is_vocab ? "merges.txt" : "vocab.json");
        return is_vocab ? tok_load_vocab_merges(path, other, out) : tok_load_vocab_merges(other, path, out);
    }
    if (strcmp(base, "vocab.txt") == 0) return tok_load_wordpiece_vocab(path, out); /* BERT WordPiece */
    if (ends_with(base, ".json")) return tok_load_json(path, out);
    if (ends_with(base, ".model")) return tok_load_spm_model(path, out);
    /* Unknown name: JSON starts with '{' (after blanks); otherwise protobuf. */
    FILE *f = fopen(path, "rb");
    if (!f) return lorac_fail(LORAC_ERR_IO, "%s: cannot open", path);
    int c;
    while ((c = fgetc(f)) == ' ' || c == '\t' || c == '\n' || c == '\r') {}
    fclose(f);
    return c == '{' ? tok_load_json(path, out) : tok_load_spm_model(path, out);
}

void lorac_tokenizer_free(lorac_tokenizer *t) { tok_destroy(t); }

/* ------------------------------------------------ added tokens */
/* Rust regex's \w, used by HF for single_word: letters, digits, marks, '_'. */
static int is_word_char(uint32_t cp) {
    return cp == '_' || tok_is_letter(cp) || tok_is_number(cp) || (cp >= 0x300 && cp <= 0x36F);
}

/* Start of the character that ends just before s[i] (i > 0, valid UTF-8). */
static size_t prev_char(const char *s, size_t i, uint32_t *cp) {
    size_t j = i - 1;
    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
    tok_utf8_len_valid(s + j, i - j, cp);
    return j;
}

/* The longest added token written at s[i], or NULL: one hash lookup per
 * distinct added-token length, longest first (Gemma has 6,000 added
 * tokens but a few dozen lengths). */
static const tok_added *added_at(const lorac_tokenizer *t, const char *s, size_t n, size_t i) {
    for (int k = 0; k < t->n_added_lens; k++) {
        if (t->added_lens[k] > n - i) continue;
        int a = tok_strmap_get(&t->added_map, s + i, t->added_lens[k]);
        if (a >= 0) return &t->added[a];
    }
    return NULL;
}

/* One stretch of ordinary text to the family, after the Unicode
 * normalizer if the tokenizer has one (HF NFC / NFKC / NFD / NFKD, which
 * utf8proc implements from the same Unicode tables). */
static lorac_status encode_stretch(const lorac_tokenizer *t, const char *s, size_t n, int at_start, tok_ids *out) {
    static const int opts[] = {0, UTF8PROC_COMPOSE, UTF8PROC_COMPOSE | UTF8PROC_COMPAT, UTF8PROC_DECOMPOSE,
                               UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT};
    if (!t->unicode_nf || n == 0) return t->fam->encode(t, s, n, at_start, out);
    utf8proc_uint8_t *norm = NULL;
    utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &norm,
                                        (utf8proc_option_t)(UTF8PROC_STABLE | opts[t->unicode_nf]));
    if (len < 0)
        return lorac_fail(LORAC_ERR_DATA, "tokenizer: Unicode normalization failed: %s",
                          utf8proc_errmsg(len));
    lorac_status st = t->fam->encode(t, (const char *)norm, (size_t)len, at_start, out);
    free(norm);
    return st;
}

/* HF's AddedVocabulary split: scan left to right for the leftmost-longest
 * added token; a single_word token only counts with no word character
 * touching it; lstrip / rstrip widen the match over neighbouring
 * whitespace (never back into an earlier match). The text between matches
 * goes to the family. */
static lorac_status encode_text(const lorac_tokenizer *t, const char *s, size_t n, tok_ids *out) {
    size_t seg = 0, i = 0; /* s[seg..i) is ordinary text not yet encoded */
    while (i < n) {
        const tok_added *a = t->added_first[(unsigned char)s[i]] ? added_at(t, s, n, i) : NULL;
        if (!a) {
            i++;
            continue;
        }
        size_t start = i, stop = i + a->len;
        uint32_t cp = 0;
        if (a->single_word) {
            int word_before = start > 0 && (prev_char(s, start, &cp), is_word_char(cp));
            int word_after = stop < n && (tok_utf8_len_valid(s + stop, n - stop, &cp), is_word_char(cp));
            if (word_before || word_after) {
                i = stop; /* HF's matcher has consumed it; the text stays ordinary */
                continue;
            }
        }
        while (a->lstrip && start > seg) {
            size_t j = prev_char(s, start, &cp);
            if (!tok_is_space(cp)) break;
            start = j;
        }
        while (a->rstrip && stop < n) {
            size_t len = tok_utf8_len_valid(s + stop, n - stop, &cp);
            if (!tok_is_space(cp)) break;
            stop += len;
        }
        if (seg < start) LORAC_TRY(encode_stretch(t, s + seg, start - seg, seg == 0, out));
        LORAC_TRY(tok_ids_push(out, a->id));
        seg = i = stop;
    }
    return seg < n ? encode_stretch(t, s + seg, n - seg, seg == 0, out) : LORAC_OK;
}

/* ------------------------------------------------ encode / decode */
lorac_status lorac_tokenizer_encode(const lorac_tokenizer *t, const char *text, size_t len, int add_special, int **ids,
                                    int *n) {
    if (!ids || !n) return lorac_fail(LORAC_ERR_ARG, "lorac_tokenizer_encode: ids or n is NULL");
    *ids = NULL;
    *n = 0;
    if (!t || (!text && len)) return lorac_fail(LORAC_ERR_ARG, "lorac_tokenizer_encode: NULL tokenizer or text");
    tok_buf clean = {0};
    tok_ids out = {0};
    lorac_status st = LORAC_OK;
    if (!tok_utf8_valid(text, len)) { /* as Python's bytes.decode("utf-8", "replace") */
        st = tok_utf8_sanitize(text, len, &clean);
        text = clean.v;
        len = clean.n;
    }
    for (int k = 0; st == LORAC_OK && add_special && k < t->n_prefix; k++) st = tok_ids_push(&out, t->prefix[k]);
    if (st == LORAC_OK) st = encode_text(t, text ? text : "", len, &out);
    for (int k = 0; st == LORAC_OK && add_special && k < t->n_suffix; k++) st = tok_ids_push(&out, t->suffix[k]);
    if (st == LORAC_OK && out.n > (size_t)INT32_MAX)
        st = lorac_fail(LORAC_ERR_ARG, "lorac_tokenizer_encode: text too long (%zu tokens)", out.n);
    if (st == LORAC_OK && !out.v) { /* a valid pointer even when there are no ids */
        st = tok_ids_push(&out, 0);
        out.n = 0;
    }
    free(clean.v);
    if (st != LORAC_OK) {
        free(out.v);
        return st;
    }
    *ids = out.v;
    *n = (int)out.n;
    return LORAC_OK;
}

int lorac_tokenizer_is_special(const lorac_tokenizer *t, int id) {
    return id >= 0 && id < t->n_vocab && (t->flags[id] & TOK_F_SPECIAL);
}

lorac_status lorac_tokenizer_decode(const lorac_tokenizer *t, const int *ids, int n, int skip_special, char **text,
                                    size_t *len) {
    if (!text) return lorac_fail(LORAC_ERR_ARG, "lorac_tokenizer_decode: text is NULL");
    *text = NULL;
    if (len) *len = 0;
    if (!t || n < 0 || (!ids && n)) return lorac_fail(LORAC_ERR_ARG, "lorac_tokenizer_decode: bad arguments");
    int *keep = malloc(((size_t)n + 1) * sizeof *keep);
    if (!keep) return lorac_fail(LORAC_ERR_NOMEM, "lorac_tokenizer_decode: out of memory for %d ids", n);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) {
            free(keep);
            return lorac_fail(LORAC_ERR_ARG, "lorac_tokenizer_decode: token id %d (position %d) out of range [0, %d)",
                              ids[i], i, t->n_vocab);
        }
        if (!(skip_special && lorac_tokenizer_is_special(t, ids[i]))) keep[k++] = ids[i];
    }
    tok_buf raw = {0}, clean = {0};
    lorac_status st = t->fam->decode(t, keep, k, &raw);
    free(keep);
    if (st == LORAC_OK) st = tok_utf8_sanitize(raw.v ? raw.v : "", raw.n, &clean); /* as Rust's from_utf8_lossy */
    if (st == LORAC_OK) st = tok_buf_put(&clean, "", 0); /* makes sure the buffer exists */
    free(raw.v);
    if (st != LORAC_OK) {
        free(clean.v);
        return st;
    }
    clean.v[clean.n] = 0;
    *text = clean.v;
    if (len) *len = clean.n;
    return LORAC_OK;
}

lorac_status lorac_tokenizer_decode_piece(const lorac_tokenizer *t, int prev, int id, char *buf, size_t cap,
                                          size_t *len) {
    if (!t || !buf || !len) return lorac_fail(LORAC_ERR_ARG, "lorac_tokenizer_decode_piece: NULL argument");
    *len = 0;
    if (id < 0 || id >= t->n_vocab)
        return lorac_fail(LORAC_ERR_ARG, "lorac_tokenizer_decode_piece: token id %d out of range [0, %d)", id,
                          t->n_vocab);
    tok_buf b = {0};
    lorac_status st = t->fam->piece(t, prev, id, &b);
    if (st == LORAC_OK && b.n > cap)
        st = lorac_fail(LORAC_ERR_ARG, "lorac_tokenizer_decode_piece: token %d needs %zu bytes, buffer has %zu", id,
                        b.n, cap);
    if (st == LORAC_OK) {
        if (b.n) memcpy(buf, b.v, b.n);
        if (b.n < cap) buf[b.n] = 0;
        *len = b.n;
    }
    free(b.v);
    return st;
}

/* ------------------------------------------------ queries */
int lorac_tokenizer_vocab_size(const lorac_tokenizer *t) { return t->n_vocab; }
int lorac_tokenizer_bos(const lorac_tokenizer *t) { return t->bos; }
int lorac_tokenizer_eos(const lorac_tokenizer *t) { return t->eos; }
int lorac_tokenizer_pad(const lorac_tokenizer *t) { return t->pad; }
const char *lorac_tokenizer_kind(const lorac_tokenizer *t) { return t->fam->kind; }

int lorac_tokenizer_find(const lorac_tokenizer *t, const char *piece) {
    return piece ? tok_lookup(t, piece, strlen(piece)) : -1;
}

const char *lorac_tokenizer_piece(const lorac_tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->piece_len[id];
    return t->piece[id];
}

int lorac_tokenizer_adds_bos(const lorac_tokenizer *t) {
    for (int k = 0; k < t->n_prefix; k++)
        if (t->prefix[k] == t->bos) return 1;
    return 0;
}

int lorac_tokenizer_adds_eos(const lorac_tokenizer *t) {
    for (int k = 0; k < t->n_suffix; k++)
        if (t->suffix[k] == t->eos) return 1;
    return 0;
}
