/* tok_bpe.c - the byte-level BPE family (GPT-2, SmolLM, Llama 3, Qwen2,
 * ...), as HF's byte-level pipeline: a pre-tokenizer + BPE model +
 * ByteLevel decoder.
 *
 * Encoding one stretch of text:
 *   1. the pre-tokenizer (tok_split.c) cuts it into words: GPT-2's regex
 *        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *      (HF ByteLevel(use_regex=true)), or the Split regexes of newer models
 *      such as Llama 3's, which keeps numbers in groups of up to three and
 *      a newline run on its own
 *        (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *        ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *      (Qwen2's is the same with single digits, \p{N});
 *   2. each word's UTF-8 bytes become one symbol each (a byte is spelled by
 *      its character in GPT-2's byte alphabet, so "Ġ" is a space) and are
 *      merged by rank (tok_merge.c).
 * Decoding maps each token's characters back to bytes. */
#include <stdlib.h>
#include <string.h>

#include "io/tok_internal.h"

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

static lorac_status bl_encode(const lorac_tokenizer *t, const char *s, size_t n, int at_start, tok_ids *out) {
    (void)at_start;
    tok_work work = {0};
    lorac_status st = tok_encode_words(t, s, n, encode_word, &work, out);
    tok_work_free(&work);
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
