/* tok_hfconfig.c - the transformers side files next to a tokenizer:
 * special_tokens_map.json and tokenizer_config.json. They name the special
 * tokens (bos_token, eos_token, pad_token, unk_token,
 * additional_special_tokens), may add tokens (added_tokens_decoder) and say
 * whether BOS / EOS are added (add_bos_token, add_eos_token). The second file
 * wins where both speak, as in transformers. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "io/tok_internal.h"

/* A token given as "text" or {"content": "text", ...}; NULL otherwise. */
static const char *token_text(const cJSON *j) {
    if (cJSON_IsString(j)) return j->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

static int flag(const cJSON *obj, const char *key) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, key)); }

/* added_tokens_decoder: {"50256": {"content": "<|endoftext|>", "special": true, ...}}.
 * transformers adds these through HF's AddedVocabulary, so ids follow its
 * rule (tok_add_text); a listed id that disagrees gets a warning. */
static lorac_status apply_added_decoder(lorac_tokenizer *t, const cJSON *dec, const char *path) {
    for (const cJSON *e = dec ? dec->child : NULL; e; e = e->next) {
        const char *content = token_text(e);
        if (!content || !*content)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: added_tokens_decoder entry '%s' has no content", path, e->string);
        int id;
        LORAC_TRY(tok_add_text(t, content, strlen(content), flag(e, "special"), flag(e, "lstrip"), flag(e, "rstrip"),
                               flag(e, "single_word"), &id));
        if (strtol(e->string, NULL, 10) != id)
            lorac_log(1, "%s: added token '%s' is listed with id %s but gets id %d", path, content, e->string, id);
    }
    return LORAC_OK;
}

/* A named special token: its id becomes *slot and it is marked special. An
 * explicit null clears the slot; a name missing from the vocabulary is
 * ignored with a warning. */
static lorac_status apply_special(lorac_tokenizer *t, const cJSON *root, const char *key, int *slot,
                                  const char *path) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j) return LORAC_OK;
    if (cJSON_IsNull(j)) {
        if (slot) *slot = -1;
        return LORAC_OK;
    }
    const char *text = token_text(j);
    if (!text) return lorac_fail(LORAC_ERR_FORMAT, "%s: %s should be a string or {\"content\": ...}", path, key);
    int id = tok_lookup(t, text, strlen(text));
    if (id < 0) { /* transformers would grow the vocabulary past the model's embeddings */
        lorac_log(1, "%s: %s '%s' is not in the vocabulary; ignored", path, key, text);
        return LORAC_OK;
    }
    if (slot) *slot = id;
    return tok_add_token(t, id, 1, 0, 0, 0);
}

static lorac_status apply_file(lorac_tokenizer *t, const char *path, int *add_bos, int *add_eos) {
    char *text;
    size_t len;
    LORAC_TRY(lorac_read_file(path, (size_t)1 << 28, &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lorac_fail(LORAC_ERR_FORMAT, "%s: not a JSON object", path);
    }
    int unk = -1;
    lorac_status st = apply_added_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens_decoder"), path);
    if (st == LORAC_OK) st = apply_special(t, root, "bos_token", &t->bos, path);
    if (st == LORAC_OK) st = apply_special(t, root, "eos_token", &t->eos, path);
    if (st == LORAC_OK) st = apply_special(t, root, "pad_token", &t->pad, path);
    if (st == LORAC_OK) st = apply_special(t, root, "unk_token", &unk, path);
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(root, "additional_special_tokens");
    for (const cJSON *e = cJSON_IsArray(extra) ? extra->child : NULL; st == LORAC_OK && e; e = e->next) {
        const char *s = token_text(e);
        int id = s ? tok_lookup(t, s, strlen(s)) : -1;
        if (id < 0)
            lorac_log(1, "%s: additional special token '%s' is not in the vocabulary; ignored", path, s ? s : "?");
        else
            st = tok_add_token(t, id, 1, 0, 0, 0);
    }
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(root, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(root, "add_eos_token");
    if (cJSON_IsBool(ab)) *add_bos = cJSON_IsTrue(ab);
    if (cJSON_IsBool(ae)) *add_eos = cJSON_IsTrue(ae);
    cJSON_Delete(root);
    return st;
}

lorac_status tok_apply_hf_config(lorac_tokenizer *t, const char *dir, int use_add_flags) {
    int add_bos = lorac_tokenizer_adds_bos(t), add_eos = lorac_tokenizer_adds_eos(t);
    const char *names[] = {"special_tokens_map.json", "tokenizer_config.json"};
    for (int k = 0; k < 2; k++) {
        char path[4096];
        lorac_path_join(path, sizeof path, dir, names[k]);
        if (lorac_file_exists(path)) LORAC_TRY(apply_file(t, path, &add_bos, &add_eos));
    }
    if (use_add_flags) tok_set_add_special(t, add_bos, add_eos);
    return LORAC_OK;
}
