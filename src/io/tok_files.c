/* tok_files.c - GPT-2's original tokenizer files: vocab.json (an object
 * mapping each piece, spelled in the byte alphabet, to its id) and
 * merges.txt (one merge "left right" per line, best first, after an optional
 * "#version" line). Read as HF tokenizers' BPE::from_file does. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/tok_internal.h"

#define TOK_MAX_FILE ((size_t)1 << 30)
#define TOK_MAX_ID (1 << 24)

static const char *json_kind(const cJSON *j) {
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    return "an object";
}

/* vocab.json -> a tokenizer holding the pieces (no merges yet). */
static lorac_status load_vocab(const char *path, lorac_tokenizer **out) {
    cJSON *root;
    LORAC_TRY(tok_read_json(path, TOK_MAX_FILE, &root));
    lorac_status st = LORAC_OK;
    if (!cJSON_IsObject(root))
        st = lorac_fail(LORAC_ERR_FORMAT, "%s: expected a JSON object mapping tokens to ids, found %s", path,
                        json_kind(root));
    int max_id = -1;
    for (const cJSON *e = root->child; st == LORAC_OK && e; e = e->next) {
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(v >= 0 && v < TOK_MAX_ID && v == (double)(int)v))
            st = lorac_fail(LORAC_ERR_FORMAT, "%s: token '%s' has id %s, expected an integer in [0, %d)", path,
                            e->string, cJSON_IsNumber(e) ? "out of range" : json_kind(e), TOK_MAX_ID);
        else if ((int)v > max_id)
            max_id = (int)v;
    }
    lorac_tokenizer *t = NULL;
    if (st == LORAC_OK) st = tok_check_sparse(path, "vocab", max_id, cJSON_GetArraySize(root));
    if (st == LORAC_OK) st = tok_create(&tok_family_bytelevel, max_id + 1, path, &t);
    for (const cJSON *e = root->child; st == LORAC_OK && e; e = e->next)
        st = tok_set_piece(t, e->valueint, e->string, strlen(e->string), 0, TOK_NORMAL, 1);
    cJSON_Delete(root);
    if (st != LORAC_OK) {
        tok_destroy(t);
        return st;
    }
    *out = t;
    return LORAC_OK;
}

/* merges.txt: lines "left right"; a first line starting "#version" and
 * blank lines are skipped; the n-th merge has rank n. Line ends may be
 * "\n" or "\r\n". */
static lorac_status load_merges(lorac_tokenizer *t, const char *path) {
    char *text;
    size_t len;
    LORAC_TRY(lorac_read_file(path, TOK_MAX_FILE, &text, &len));
    {
        lorac_status bad = tok_check_utf8(path, text, len);
        if (bad != LORAC_OK) {
            free(text);
            return bad;
        }
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    lorac_status st = LORAC_OK;
    int rank = 0, line = 0;
    for (size_t i = 0; i < len && st == LORAC_OK;) {
        size_t end = i;
        while (end < len && text[end] != '\n') end++;
        size_t next = end + 1;
        line++;
        if (end > i && text[end - 1] == '\r') end--;
        const char *s = text + i;
        size_t n = end - i;
        i = next;
        if (n == 0 || (n >= 8 && memcmp(s, "#version", 8) == 0)) continue;
        const char *sp = memchr(s, ' ', n);
        char where[512];
        snprintf(where, sizeof where, "%s:%d", path, line);
        if (!sp || sp == s || sp + 1 == s + n || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
            st = lorac_fail(LORAC_ERR_FORMAT, "%s: expected two pieces separated by one space, found '%.*s' (%s)",
                            where, (int)(n > 60 ? 60 : n), s, base);
        else
            st = tok_add_merge(t, s, (size_t)(sp - s), sp + 1, (size_t)(s + n - sp - 1), rank++, where);
    }
    free(text);
    return st;
}

lorac_status tok_load_vocab_merges(const char *vocab_path, const char *merges_path, lorac_tokenizer **out) {
    *out = NULL;
    lorac_tokenizer *t = NULL;
    LORAC_TRY(load_vocab(vocab_path, &t));
    lorac_status st = load_merges(t, merges_path);
    if (st == LORAC_OK) /* GPT2Tokenizer: the GPT-2 regex cuts the words */
        st = tok_pretok_add_regex(&t->pre, TOK_RE_GPT2, TOK_SPLIT_ISOLATED, 0, vocab_path);
    /* GPT2Tokenizer's defaults: <|endoftext|> is bos, eos and unk, and special. */
    int eot = tok_lookup(t, "<|endoftext|>", 13);
    if (st == LORAC_OK && eot >= 0) {
        t->bos = t->eos = eot;
        st = tok_add_token(t, eot, 1, 0, 0, 0);
    }
    char dir[4096];
    tok_dir_of(vocab_path, dir, sizeof dir);
    if (st == LORAC_OK) st = tok_apply_hf_config(t, dir, 1);
    return tok_hand_over(t, st, out);
}
