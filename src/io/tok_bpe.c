/* tok_bpe.c - the byte-level BPE family (GPT-2, SmolLM, ...), as HF's
 * ByteLevel pre-tokenizer + BPE model + ByteLevel decoder.
 *
 * Encoding one stretch of text:
 *   1. optional HF Digits(individual_digits=true): every \p{N} character
 *      becomes its own piece (llama.cpp's pre-tokenizer "smollm");
 *   2. GPT-2's regex splits each piece into words:
 *        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   3. each word's UTF-8 bytes become one symbol each (a byte is spelled by
 *      its character in GPT-2's byte alphabet, so "Ġ" is a space) and are
 *      merged by rank (tok_merge.c).
 * Decoding maps each token's characters back to bytes. */
#include <stdlib.h>
#include <string.h>

#include "io/tok_internal.h"

enum { C_LETTER, C_NUMBER, C_SPACE, C_OTHER };

static int char_class(const char *s, size_t n, size_t i, size_t *len) {
    uint32_t cp;
    *len = tok_utf8_len_valid(s + i, n - i, &cp);
    if (tok_is_letter(cp)) return C_LETTER;
    if (tok_is_number(cp)) return C_NUMBER;
    if (tok_is_space(cp)) return C_SPACE;
    return C_OTHER;
}

/* End of the run of class-`cls` characters starting at i; *last gets the
 * start of the run's last character. */
static size_t run_end(const char *s, size_t n, size_t i, int cls, size_t *last) {
    *last = i;
    while (i < n) {
        size_t len;
        if (char_class(s, n, i, &len) != cls) break;
        *last = i;
        i += len;
    }
    return i;
}

/* Length of the GPT-2 regex match at s[i] (the alternatives in order;
 * every position matches one of them, so the result is >= 1). */
static size_t gpt2_match(const char *s, size_t n, size_t i) {
    size_t last;
    if (s[i] == '\'' && i + 1 < n) { /* 's 't 'm 'd 're 've 'll (case-sensitive) */
        char a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    if (s[i] == ' ' && i + 1 < n) { /* " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+" with the space */
        size_t len;
        int c1 = char_class(s, n, i + 1, &len);
        if (c1 != C_SPACE) return run_end(s, n, i + 1, c1, &last) - i;
    }
    size_t len;
    int c0 = char_class(s, n, i, &len);
    if (c0 != C_SPACE) return run_end(s, n, i, c0, &last) - i; /* the same without the space */
    /* \s+(?!\S): a run of spaces that reaches the end, or else all of it but
     * the last character (which then leads the next word); a lone space
     * before a word falls through to \s+. */
    size_t end = run_end(s, n, i, C_SPACE, &last);
    if (end == n || last == i) return end - i;
    return last - i;
}

/* HF BPE(ignore_merges=true): a word whose byte-alphabet spelling is itself
 * a piece is emitted whole. Returns its id or -1. */
static int whole_word_id(const lorac_tokenizer *t, const char *w, size_t n) {
    char small[512];
    char *m = 2 * n <= sizeof small ? small : malloc(2 * n + 1);
    if (!m) return -1;
    m[0] = 0; /* keeps -Wmaybe-uninitialized quiet; every byte read is written below */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += tok_utf8_encode(tok_byte_to_cp((unsigned char)w[i]), m + k);
    int id = tok_strmap_get(&t->vocab, m, k);
    if (m != small) free(m);
    return id;
}

/* BPE over the bytes of one word; appends its ids. */
static lorac_status encode_word(const lorac_tokenizer *t, const char *w, size_t n, tok_work *work, tok_ids *out) {
    if (t->ignore_merges) {
        int id = whole_word_id(t, w, n);
        if (id >= 0) return tok_ids_push(out, id);
    }
    LORAC_TRY(tok_work_reserve(work, n));
    tok_sym *s = work->sym;
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        int id = t->byte_id[(unsigned char)w[i]];
        if (id < 0) { /* byte missing from the vocabulary: HF emits unk, or drops it without one */
            if (t->unk < 0) continue;
            if (t->fuse_unk && k > 0 && s[k - 1].id == t->unk) {
                s[k - 1].len++;
                continue;
            }
            id = t->unk;
        }
        s[k] = (tok_sym){(uint32_t)i, 1, id, k - 1, k + 1};
        k++;
    }
    if (k == 0) return LORAC_OK;
    s[k - 1].next = -1;
    LORAC_TRY(tok_merge(t, w, k, work));
    for (int i = 0; i >= 0; i = s[i].next) LORAC_TRY(tok_ids_push(out, s[i].id));
    return LORAC_OK;
}

/* Step 2 + 3 on one piece of text. */
static lorac_status encode_piece(const lorac_tokenizer *t, const char *s, size_t n, tok_work *work, tok_ids *out) {
    for (size_t i = 0; i < n;) {
        size_t m = gpt2_match(s, n, i);
        LORAC_TRY(encode_word(t, s + i, m, work, out));
        i += m;
    }
    return LORAC_OK;
}

/* Step 1: with split_digits, each number character is a piece of its own
 * and the text between them is another. */
static lorac_status encode_pieces(const lorac_tokenizer *t, const char *s, size_t n, tok_work *work,
                                  tok_ids *out) {
    if (!t->bl.split_digits) return encode_piece(t, s, n, work, out);
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = tok_utf8_len_valid(s + i, n - i, &cp);
        if (tok_is_number(cp)) {
            if (start < i) LORAC_TRY(encode_piece(t, s + start, i - start, work, out));
            LORAC_TRY(encode_piece(t, s + i, len, work, out));
            start = i + len;
        }
        i += len;
    }
    return start < n ? encode_piece(t, s + start, n - start, work, out) : LORAC_OK;
}

static lorac_status bl_encode(const lorac_tokenizer *t, const char *s, size_t n, int at_start, tok_ids *out) {
    (void)at_start;
    if (n == 0) return LORAC_OK;
    tok_work work = {0};
    tok_buf pre = {0};
    lorac_status st = LORAC_OK;
    if (t->bl.add_prefix_space && s[0] != ' ') { /* ByteLevel(add_prefix_space=true) */
        st = tok_buf_putc(&pre, ' ');
        if (st == LORAC_OK) st = tok_buf_put(&pre, s, n);
        s = pre.v;
        n = pre.n;
    }
    if (st == LORAC_OK) st = encode_pieces(t, s, n, &work, out);
    tok_work_free(&work);
    free(pre.v);
    return st;
}

/* HF ByteLevel decoder, per token: if every character of the piece is in
 * the byte alphabet, the piece stands for those bytes; otherwise (an added
 * token written in plain Unicode) for its own UTF-8 text. */
static lorac_status token_bytes(const lorac_tokenizer *t, int id, tok_buf *out) {
    const char *p = t->piece[id];
    size_t n = t->piece_len[id], start = out->n;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += tok_utf8_len_valid(p + i, n - i, &cp);
        int b = tok_cp_to_byte(cp);
        if (b < 0) {
            out->n = start;
            return tok_buf_put(out, p, n);
        }
        LORAC_TRY(tok_buf_putc(out, (char)b));
    }
    return LORAC_OK;
}

static lorac_status bl_decode(const lorac_tokenizer *t, const int *ids, int n, tok_buf *out) {
    for (int i = 0; i < n; i++) LORAC_TRY(token_bytes(t, ids[i], out));
    return LORAC_OK;
}

static lorac_status bl_piece(const lorac_tokenizer *t, int prev, int id, tok_buf *out) {
    (void)prev;
    return token_bytes(t, id, out);
}

const tok_family tok_family_bytelevel = {"gpt2-bpe", bl_encode, bl_decode, bl_piece};
