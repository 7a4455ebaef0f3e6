/* tok_spm.c - the SentencePiece BPE family (Llama 2, stories*, TinyLlama).
 *
 * Encoding one stretch of text:
 *   1. normalize: spaces become "▁" (U+2581) and a "▁" is put in front,
 *      either by sentencepiece's own rules (tokenizer.model, GGUF) or by
 *      the HF normalizer / Metaspace steps a tokenizer.json lists;
 *   2. one symbol per character; merge (tok_merge.c) by piece score
 *      (sentencepiece) or by merge rank (HF tokenizer.json);
 *   3. a character or piece missing from the vocabulary becomes its UTF-8
 *      bytes as <0xXX> pieces (byte fallback), or <unk> without them.
 * Decoding is HF's decoder chain: "▁" -> " ", runs of <0xXX> pieces ->
 * their bytes (one U+FFFD per byte if the run is not valid UTF-8), and the
 * leading space of the dummy prefix stripped. */
#include <stdlib.h>
#include <string.h>

#include "io/tok_internal.h"

#define SPACE_MARK "\xE2\x96\x81" /* "▁" */

static int ends_with_mark(const tok_buf *b) { return b->n >= 3 && memcmp(b->v + b->n - 3, SPACE_MARK, 3) == 0; }

/* sentencepiece's Normalizer::Normalize with an identity character map:
 * with remove_extra_whitespaces, leading and trailing spaces are dropped and
 * runs of spaces count as one; text that is empty after that gives nothing;
 * otherwise add_dummy_prefix puts "▁" first and every ' ' becomes "▁". Only
 * U+0020 is a space here (tabs and newlines are ordinary characters). */
static lorac_status sp_normalize(const lorac_tokenizer *t, const char *s, size_t n, tok_buf *out) {
    int squeeze = t->spm.remove_extra_ws;
    size_t i = 0;
    if (squeeze)
        while (i < n && s[i] == ' ') i++;
    if (i == n) return LORAC_OK;
    if (t->spm.add_dummy_prefix) LORAC_TRY(tok_buf_put(out, SPACE_MARK, 3));
    int prev_space = squeeze;
    for (; i < n; i++) {
        if (s[i] != ' ') {
            LORAC_TRY(tok_buf_putc(out, s[i]));
            prev_space = 0;
        } else if (!(squeeze && prev_space)) {
            LORAC_TRY(tok_buf_put(out, SPACE_MARK, 3));
            prev_space = squeeze;
        }
    }
    if (squeeze)
        while (ends_with_mark(out)) out->n -= 3;
    return LORAC_OK;
}

/* HF's steps, in pipeline order: normalizer Prepend("▁") (non-empty text
 * only) and Replace(" ", "▁"); then pre-tokenizer Metaspace: ' ' -> "▁" and a
 * "▁" in front unless there already is one (scheme "first": only for the
 * stretch that begins the input). */
static lorac_status hf_normalize(const lorac_tokenizer *t, const char *s, size_t n, int at_start, tok_buf *out) {
    if (n == 0) return LORAC_OK;
    int replace = t->spm.replace_space || t->spm.metaspace;
    int lead_space = replace ? s[0] == ' ' : 0;
    int starts_with_mark = (n >= 3 && memcmp(s, SPACE_MARK, 3) == 0) || lead_space;
    if (t->spm.add_dummy_prefix) {
        LORAC_TRY(tok_buf_put(out, SPACE_MARK, 3));
        starts_with_mark = 1;
    }
    int ms = t->spm.metaspace;
    if ((ms == TOK_PREPEND_ALWAYS || (ms == TOK_PREPEND_FIRST && at_start)) && !starts_with_mark)
        LORAC_TRY(tok_buf_put(out, SPACE_MARK, 3));
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ' && replace)
            LORAC_TRY(tok_buf_put(out, SPACE_MARK, 3));
        else
            LORAC_TRY(tok_buf_putc(out, s[i]));
    }
    return LORAC_OK;
}

/* Push the ids of a symbol that is not a usable piece: its bytes as <0xXX>
 * pieces, or one <unk>. */
static lorac_status push_unknown(const lorac_tokenizer *t, const char *s, size_t n, tok_ids *out) {
    int bytes_ok = t->byte_fallback;
    for (size_t i = 0; bytes_ok && i < n; i++) bytes_ok = t->byte_id[(unsigned char)s[i]] >= 0;
    if (bytes_ok) {
        for (size_t i = 0; i < n; i++) LORAC_TRY(tok_ids_push(out, t->byte_id[(unsigned char)s[i]]));
        return LORAC_OK;
    }
    if (t->unk < 0) return LORAC_OK; /* HF drops what it cannot spell */
    if (t->fuse_unk && out->n && out->v[out->n - 1] == t->unk) return LORAC_OK;
    return tok_ids_push(out, t->unk);
}

/* Score mode output: a merged piece of type UNUSED is split back into the
 * two pieces it was merged from (sentencepiece's resegmentation). */
static lorac_status push_piece(const lorac_tokenizer *t, const char *text, uint32_t start, uint32_t len,
                               const tok_work *w, int depth, tok_ids *out) {
    int id = tok_strmap_get(&t->vocab, text + start, len);
    if (id >= 0 && t->attr[id] == TOK_UNUSED && depth < 64) {
        for (size_t k = 0; k + 2 < w->unused_n; k += 3)
            if (w->unused[k] == start && w->unused[k + 1] == len) {
                uint32_t left = w->unused[k + 2];
                LORAC_TRY(push_piece(t, text, start, left, w, depth + 1, out));
                return push_piece(t, text, start + left, len - left, w, depth + 1, out);
            }
    }
    if (id < 0 || t->attr[id] == TOK_UNKNOWN) return push_unknown(t, text + start, len, out);
    return tok_ids_push(out, id);
}

/* HF BPE meets a character missing from the vocabulary before merging:
 * it becomes one symbol per byte (<0xXX> pieces), else <unk> (joined to an
 * <unk> just before it with fuse_unk), else nothing. */
static void unknown_symbols(const lorac_tokenizer *t, const char *s, size_t i, size_t len, tok_sym *sym, int *k) {
    int bytes_ok = t->byte_fallback;
    for (size_t j = 0; bytes_ok && j < len; j++) bytes_ok = t->byte_id[(unsigned char)s[i + j]] >= 0;
    if (bytes_ok) {
        for (size_t j = 0; j < len; j++, (*k)++)
            sym[*k] = (tok_sym){(uint32_t)(i + j), 1, t->byte_id[(unsigned char)s[i + j]], *k - 1, *k + 1};
        return;
    }
    if (t->unk < 0) return;
    if (t->fuse_unk && *k > 0 && sym[*k - 1].id == t->unk) {
        sym[*k - 1].len += (uint32_t)len;
        return;
    }
    sym[*k] = (tok_sym){(uint32_t)i, (uint32_t)len, t->unk, *k - 1, *k + 1};
    (*k)++;
}

/* Steps 2 and 3 on one word (the whole normalized stretch unless
 * Metaspace(split=true) cut it at each "▁"). */
static lorac_status encode_word(const lorac_tokenizer *t, const char *s, size_t n, tok_work *w, tok_ids *out) {
    if (t->ignore_merges && !t->merge_by_score) { /* HF: a word that is itself a piece is not merged */
        int id = tok_strmap_get(&t->vocab, s, n);
        if (id >= 0) return tok_ids_push(out, id);
    }
    LORAC_TRY(tok_work_reserve(w, n));
    tok_sym *sym = w->sym;
    int k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = tok_utf8_len_valid(s + i, n - i, &cp);
        int id = tok_strmap_get(&t->vocab, s + i, len);
        if (id < 0 && !t->merge_by_score) {
            unknown_symbols(t, s, i, len, sym, &k);
        } else { /* sentencepiece keeps unknown characters as symbols (id -1) until the end */
            sym[k] = (tok_sym){(uint32_t)i, (uint32_t)len, id, k - 1, k + 1};
            k++;
        }
        i += len;
    }
    if (k == 0) return LORAC_OK;
    sym[k - 1].next = -1;
    LORAC_TRY(tok_merge(t, s, k, w));
    for (int i = 0; i >= 0; i = sym[i].next) {
        if (t->merge_by_score)
            LORAC_TRY(push_piece(t, s, sym[i].start, sym[i].len, w, 0, out));
        else
            LORAC_TRY(tok_ids_push(out, sym[i].id));
    }
    return LORAC_OK;
}

/* Normalize, cut into words (at each "▁" with Metaspace(split=true), then
 * by any Split steps), encode each word. */
static lorac_status spm_encode(const lorac_tokenizer *t, const char *s, size_t n, int at_start, tok_ids *out) {
    tok_buf norm = {0};
    tok_work work = {0};
    lorac_status st = t->spm.sp_normalizer ? sp_normalize(t, s, n, &norm) : hf_normalize(t, s, n, at_start, &norm);
    size_t start = 0;
    for (size_t i = 1; st == LORAC_OK && t->spm.metaspace_split && i + 3 <= norm.n; i++)
        if (memcmp(norm.v + i, SPACE_MARK, 3) == 0) { /* words begin at each "▁" */
            st = tok_encode_words(t, norm.v + start, i - start, encode_word, &work, out);
            start = i;
        }
    if (st == LORAC_OK && start < norm.n) st = tok_encode_words(t, norm.v + start, norm.n - start, encode_word, &work, out);
    tok_work_free(&work);
    free(norm.v);
    return st;
}

/* "<0xAB>" -> 0xAB (HF ByteFallback's test: six characters, "<0x", two hex
 * digits, ">"); -1 for any other piece. */
static int byte_piece(const char *p, size_t n) {
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A piece's text with every "▁" turned into ' ' (when `replace`). */
static lorac_status put_spaced(const char *p, size_t n, int replace, tok_buf *out) {
    if (!replace) return tok_buf_put(out, p, n);
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && memcmp(p + i, SPACE_MARK, 3) == 0) {
            LORAC_TRY(tok_buf_putc(out, ' '));
            i += 3;
        } else {
            LORAC_TRY(tok_buf_putc(out, p[i]));
            i++;
        }
    }
    return LORAC_OK;
}

/* ByteFallback: a run of byte pieces becomes its bytes if they are valid
 * UTF-8, else one U+FFFD per byte. */
static lorac_status flush_bytes(tok_buf *bytes, tok_buf *out) {
    if (tok_utf8_valid(bytes->v, bytes->n)) {
        LORAC_TRY(tok_buf_put(out, bytes->v, bytes->n));
    } else {
        for (size_t i = 0; i < bytes->n; i++) LORAC_TRY(tok_buf_put(out, "\xEF\xBF\xBD", 3));
    }
    bytes->n = 0;
    return LORAC_OK;
}

static lorac_status spm_decode(const lorac_tokenizer *t, const int *ids, int n, tok_buf *out) {
    tok_buf bytes = {0};
    size_t start = out->n;
    lorac_status st = LORAC_OK;
    for (int i = 0; i < n && st == LORAC_OK; i++) {
        const char *p = t->piece[ids[i]];
        size_t len = t->piece_len[ids[i]];
        int b = t->spm.decode_bytes ? byte_piece(p, len) : -1;
        if (b >= 0) {
            char c = (char)b;
            st = tok_buf_put(&bytes, &c, 1);
            continue;
        }
        if (bytes.n) st = flush_bytes(&bytes, out);
        if (i == 0 && t->spm.decode_metaspace && len >= 3 && memcmp(p, SPACE_MARK, 3) == 0) { /* Metaspace decoder */
            p += 3;
            len -= 3;
        }
        if (st == LORAC_OK) st = put_spaced(p, len, t->spm.decode_replace, out);
    }
    if (st == LORAC_OK && bytes.n) st = flush_bytes(&bytes, out);
    free(bytes.v);
    /* Strip(" ", k, 0) decoder: up to k leading spaces of the whole text */
    size_t cut = 0;
    while (st == LORAC_OK && (int)cut < t->spm.decode_strip && start + cut < out->n && out->v[start + cut] == ' ')
        cut++;
    if (cut) {
        memmove(out->v + start, out->v + start + cut, out->n - start - cut);
        out->n -= cut;
    }
    return st;
}

/* Streaming: a byte piece is its raw byte; otherwise the text with "▁" as
 * ' ', minus the dummy-prefix space right after BOS (or at the start). */
static lorac_status spm_piece(const lorac_tokenizer *t, int prev, int id, tok_buf *out) {
    const char *p = t->piece[id];
    size_t len = t->piece_len[id];
    int b = t->spm.decode_bytes ? byte_piece(p, len) : -1;
    if (b >= 0) return tok_buf_putc(out, (char)b);
    int strip = (t->spm.decode_strip > 0 || t->spm.decode_metaspace) && (prev < 0 || prev == t->bos);
    if (strip && len >= 3 && memcmp(p, SPACE_MARK, 3) == 0) {
        p += 3;
        len -= 3;
    }
    return put_spaced(p, len, t->spm.decode_replace, out);
}

const tok_family tok_family_spm = {"sentencepiece-bpe", spm_encode, spm_decode, spm_piece};
