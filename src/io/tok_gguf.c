/* tok_gguf.c - a tokenizer from GGUF metadata (llama.cpp's keys):
 *   tokenizer.ggml.model       "gpt2" (byte-level BPE) or "llama" (SentencePiece)
 *   tokenizer.ggml.tokens      every piece, id order
 *   tokenizer.ggml.token_type  SentencePiece numbering (1 normal, 2 unknown,
 *                              3 control, 4 user-defined, 5 unused, 6 byte)
 *   tokenizer.ggml.merges      "left right", best first ("gpt2")
 *   tokenizer.ggml.scores      piece scores ("llama": merge by score)
 *   tokenizer.ggml.pre         pre-tokenizer name ("gpt2")
 *   tokenizer.ggml.{bos,eos,padding,unknown}_token_id,
 *   tokenizer.ggml.add_bos_token / add_eos_token / add_space_prefix.
 * As in llama.cpp, control, user-defined (and for "llama" unknown) tokens
 * are matched whole in the text. */
#include <stdio.h>
#include <string.h>

#include "io/tok_internal.h"

#define KEY(k) "tokenizer.ggml." k

/* llama.cpp pre-tokenizer names (llama-vocab.cpp) lorac implements: the
 * GPT-2 regex alone, or each \p{N} character split off first and then the
 * GPT-2 regex. Others (llama3's regex, ...) are refused. */
static const struct {
    const char *name;
    int split_digits;
} k_pre[] = {
    {"default", 0}, {"gpt2", 0},      {"mpt", 0},       {"olmo", 0},      {"jais", 0},      {"smollm", 1},
    {"starcoder", 1}, {"refact", 1}, {"command-r", 1}, {"codeshell", 1}, {"exaone", 1}, {"minerva", 1},
};
enum { N_PRE = sizeof k_pre / sizeof *k_pre };

static int pre_splits_digits(const char *pre) { /* -1: not supported */
    if (!pre) return 0;
    for (int i = 0; i < N_PRE; i++)
        if (strcmp(pre, k_pre[i].name) == 0) return k_pre[i].split_digits;
    return -1;
}

/* A boolean key. gguf.h has no bool getter yet (lorac_gguf_get_int refuses
 * BOOL values), so only keys stored as integers can override the default. */
static int get_flag(const lorac_gguf *g, const char *key, int dflt) {
    int b;
    int64_t v;
    if (lorac_gguf_get_bool(g, key, &b)) return b;
    return lorac_gguf_get_int(g, key, &v) ? v != 0 : dflt; /* some writers store flags as integers */
}

static int get_id(const lorac_gguf *g, const char *key) {
    int64_t v;
    return lorac_gguf_get_int(g, key, &v) && v >= 0 && v < (1 << 24) ? (int)v : -1;
}

/* A string array of length n (or any length when n is 0); returns its length. */
static uint64_t str_array(const lorac_gguf *g, const char *key, uint64_t n) {
    lorac_gguf_type et;
    uint64_t len;
    if (!lorac_gguf_get_arr(g, key, &et, &len) || et != LORAC_GGUF_STRING || (n && len != n)) return 0;
    return len;
}

static lorac_status read_pieces(lorac_tokenizer *t, const lorac_gguf *g, uint64_t n, int has_scores) {
    lorac_gguf_type et;
    uint64_t len;
    int has_types = lorac_gguf_get_arr(g, KEY("token_type"), &et, &len) && len == n && et != LORAC_GGUF_STRING;
    int spm = t->fam == &tok_family_spm;
    for (uint64_t i = 0; i < n; i++) {
        const char *s = lorac_gguf_arr_str(g, KEY("tokens"), i);
        uint64_t sl = lorac_gguf_arr_str_len(g, KEY("tokens"), i);
        int type = has_types ? (int)lorac_gguf_arr_i64(g, KEY("token_type"), i) : TOK_NORMAL;
        if (!s)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: " KEY("tokens") "[%llu] unreadable", t->source,
                              (unsigned long long)i);
        if (type < TOK_NORMAL || type > TOK_BYTE) type = TOK_NORMAL;
        float score = has_scores ? (float)lorac_gguf_arr_f64(g, KEY("scores"), i) : 0.0f;
        LORAC_TRY(tok_set_piece(t, (int)i, s, (size_t)sl, score, type, 1));
        if (type == TOK_CONTROL || type == TOK_USER || (spm && type == TOK_UNKNOWN))
            LORAC_TRY(tok_add_token(t, (int)i, type != TOK_USER, 0, 0, 0));
    }
    return LORAC_OK;
}

static lorac_status read_merges(lorac_tokenizer *t, const lorac_gguf *g) {
    uint64_t n = str_array(g, KEY("merges"), 0);
    if (!n) return lorac_fail(LORAC_ERR_FORMAT, "%s: " KEY("merges") " missing or not a string array", t->source);
    char where[600];
    for (uint64_t i = 0; i < n; i++) {
        const char *m = lorac_gguf_arr_str(g, KEY("merges"), i);
        uint64_t ml = lorac_gguf_arr_str_len(g, KEY("merges"), i);
        const char *sp = m ? memchr(m, ' ', (size_t)ml) : NULL;
        snprintf(where, sizeof where, "%s: " KEY("merges") "[%llu]", t->source, (unsigned long long)i);
        if (!sp || sp == m || sp + 1 == m + ml)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: expected \"left right\"", where);
        if (i > (uint64_t)INT32_MAX) return lorac_fail(LORAC_ERR_FORMAT, "%s: too many merges", where);
        LORAC_TRY(tok_add_merge(t, m, (size_t)(sp - m), sp + 1, (size_t)(m + ml - sp - 1), (int)i, where));
    }
    return LORAC_OK;
}

static lorac_status build(lorac_tokenizer **out, const lorac_gguf *g, const char *path) {
    const char *model = lorac_gguf_get_str(g, KEY("model"));
    if (!model)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: no " KEY("model") "; hint: this GGUF carries no tokenizer", path);
    int gpt2 = strcmp(model, "gpt2") == 0, llama = strcmp(model, "llama") == 0;
    if (!gpt2 && !llama)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: " KEY("model") " '%s' is not supported (supported: gpt2, llama)",
                          path, model);
    uint64_t n = str_array(g, KEY("tokens"), 0);
    if (n == 0 || n > (1u << 24))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: " KEY("tokens") " missing, empty or not a string array", path);
    lorac_tokenizer *t;
    LORAC_TRY(tok_create(gpt2 ? &tok_family_bytelevel : &tok_family_spm, (int)n, path, &t));
    *out = t; /* the caller destroys it on failure */

    lorac_gguf_type et;
    uint64_t len;
    int has_scores = lorac_gguf_get_arr(g, KEY("scores"), &et, &len) && len == n && et != LORAC_GGUF_STRING;
    if (llama && !has_scores)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: " KEY("scores") " missing or not %llu numbers; SentencePiece BPE "
                          "merges by score", path, (unsigned long long)n);
    LORAC_TRY(read_pieces(t, g, n, has_scores));
    if (gpt2) {
        const char *pre = lorac_gguf_get_str(g, KEY("pre"));
        int digits = pre_splits_digits(pre);
        if (digits < 0) {
            char names[256] = "";
            for (int i = 0; i < N_PRE; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", k_pre[i].name);
            return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: " KEY("pre") " '%s' is not supported (supported: %s)", path,
                              pre, names);
        }
        t->bl.split_digits = digits;
        LORAC_TRY(read_merges(t, g));
    } else {
        /* llama.cpp's SPM tokenizer: spaces escaped, a space in front of
         * each stretch of text, no whitespace squeezing, byte fallback. */
        t->merge_by_score = 1;
        t->byte_fallback = 1;
        t->spm.sp_normalizer = 1;
        t->spm.add_dummy_prefix = get_flag(g, KEY("add_space_prefix"), 1);
        t->spm.decode_strip = t->spm.add_dummy_prefix;
        t->spm.decode_replace = t->spm.decode_bytes = 1;
        t->unk = 0;
    }
    int unk = get_id(g, KEY("unknown_token_id"));
    if (llama && unk >= 0) t->unk = unk;
    t->bos = get_id(g, KEY("bos_token_id"));
    t->eos = get_id(g, KEY("eos_token_id"));
    t->pad = get_id(g, KEY("padding_token_id"));
    tok_set_add_special(t, get_flag(g, KEY("add_bos_token"), llama), get_flag(g, KEY("add_eos_token"), 0));
    return tok_finish(t);
}

lorac_status lorac_tokenizer_from_gguf(const lorac_gguf *g, lorac_tokenizer **out) {
    if (!out) return lorac_fail(LORAC_ERR_ARG, "lorac_tokenizer_from_gguf: out is NULL");
    *out = NULL;
    if (!g) return lorac_fail(LORAC_ERR_ARG, "lorac_tokenizer_from_gguf: no GGUF");
    const char *path = lorac_gguf_path(g);
    lorac_tokenizer *t = NULL;
    lorac_status st = build(&t, g, path ? path : "(gguf)");
    if (st != LORAC_OK) {
        tok_destroy(t);
        return st;
    }
    *out = t;
    return LORAC_OK;
}
