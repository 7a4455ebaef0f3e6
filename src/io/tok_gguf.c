/* tok_gguf.c - a tokenizer from GGUF metadata (llama.cpp's keys):
 *   tokenizer.ggml.model       "gpt2" (byte-level BPE) or "llama" (SentencePiece)
 *   tokenizer.ggml.tokens      every piece, id order
 *   tokenizer.ggml.token_type  SentencePiece numbering (1 normal, 2 unknown,
 *                              3 control, 4 user-defined, 5 unused, 6 byte)
 *   tokenizer.ggml.merges      "left right", best first ("gpt2")
 *   tokenizer.ggml.scores      piece scores ("llama": merge by score)
 *   tokenizer.ggml.pre         pre-tokenizer name ("gpt2", "llama-bpe", "qwen2", ...)
 *   tokenizer.ggml.{bos,eos,padding,unknown}_token_id,
 *   tokenizer.ggml.add_bos_token / add_eos_token / add_space_prefix.
 * As in llama.cpp, control, user-defined (and for "llama" unknown) tokens
 * are matched whole in the text. */
#include <stdio.h>
#include <string.h>

#include "io/tok_internal.h"

#define KEY(k) "tokenizer.ggml." k

/* tokenizer.ggml.pre: which pre-tokenizer a byte-level GGUF needs. The file
 * stores only a name; llama.cpp (llama-vocab.cpp) keeps the regexes in its
 * code, and so does lorac. Each name stands for the Split regexes (all
 * Isolated, in order) of the Hugging Face tokenizer.json the GGUF was
 * converted from; lorac runs those original patterns (llama.cpp runs
 * hand-adapted equivalents, e.g. '[sS] for (?i:'s), because its regex
 * engine lacks (?i:...)). Names whose regexes are not stated here exactly
 * (falcon, deepseek-llm, deepseek-v3, ...) are refused.
 *
 * "default" is read as GPT-2's regex, as transformers' GGUF reader does;
 * llama.cpp itself runs a four-regex fallback for it and warns. */
#define RE_LLAMA3                                                                                                 \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"        \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"            \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* GPT-4o (o200k): cased words may carry a contraction, numbers in threes. */
#define RE_GPT4O                                                                                                  \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"                    \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"                    \
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"      \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* Mistral's Tekken: the same cased words without contractions, single digits. */
#define RE_TEKKEN                                                                                                 \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"                   \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}|"            \
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

static const struct {
    const char *names; /* the llama.cpp names, space-separated */
    const char *re[5]; /* Split regexes, in order; NULL-terminated */
} k_pre[] = {
    {"default gpt2 gpt-2 phi-2 mpt olmo jais", {TOK_RE_GPT2}},
    {"smollm starcoder refact command-r codeshell exaone minerva", {TOK_RE_DIGIT, TOK_RE_GPT2}},
    {"llama3 llama-v3 llama-bpe falcon3 dbrx smaug-bpe chatglm-bpe", {RE_LLAMA3}},
    {"qwen2 deepseek-r1-qwen stablelm2", {RE_QWEN2}},
    {"gpt-4o", {RE_GPT4O}},
    {"tekken", {RE_TEKKEN}},
    {"deepseek-coder", {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\xE4\xB8\x80-\xE9\xBE\xA5\xE0\xA0\x80-\xE4\xB8\x80\xEA\xB0\x80-\xED\x9F\xBF]+",
                        TOK_RE_DIGIT}},
};
enum { N_PRE = sizeof k_pre / sizeof *k_pre };

/* 1 if `name` is one of the space-separated words of `list`. */
static int in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, " ");
        if (k == n && memcmp(p, name, n) == 0) return 1;
        p += k + (p[k] == ' ');
    }
    return 0;
}

/* Set t's pre-tokenizer from tokenizer.ggml.pre (absent: GPT-2's regex). */
static lorac_status read_pre(lorac_tokenizer *t, const lorac_gguf *g, const char *path) {
    const char *pre = lorac_gguf_get_str(g, KEY("pre"));
    char where[600];
    snprintf(where, sizeof where, "%s: " KEY("pre") " '%s'", path, pre ? pre : "default");
    for (int i = 0; i < N_PRE; i++) {
        if (!in_list(k_pre[i].names, pre ? pre : "default")) continue;
        for (int k = 0; k < 5 && k_pre[i].re[k]; k++)
            LORAC_TRY(tok_pretok_add_regex(&t->pre, k_pre[i].re[k], TOK_SPLIT_ISOLATED, 0, where));
        return LORAC_OK;
    }
    char names[1024] = "";
    for (int i = 0; i < N_PRE; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? " " : "", k_pre[i].names);
    return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s is not supported (lorac knows: %s); hint: a tokenizer.json with the "
                      "model's pre_tokenizer can be given instead (--tokenizer)", where, names);
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
        LORAC_TRY(read_pre(t, g, path));
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
