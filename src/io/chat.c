/* chat.c - chat formats: reading a model's chat template, recognising its
 * family by its markers (no Jinja is run) and the details it adds. The
 * rendering itself is in chat_render.c. */
#include "io/chat.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"

/* Per family: its --chat-format name and the token that ends an assistant
 * turn (NULL: the tokenizer's EOS). */
static const struct {
    const char *name;
    const char *end_of_turn;
} families[LORAC_CHAT_N_FAMILIES] = {
    [LORAC_CHAT_ALPACA] = {"alpaca", NULL},        [LORAC_CHAT_CHATML] = {"chatml", "<|im_end|>"},
    [LORAC_CHAT_LLAMA3] = {"llama3", "<|eot_id|>"}, [LORAC_CHAT_GEMMA] = {"gemma", "<end_of_turn>"},
    [LORAC_CHAT_PHI3] = {"phi3", "<|end|>"},        [LORAC_CHAT_MISTRAL] = {"mistral", NULL},
    [LORAC_CHAT_LLAMA2] = {"llama2", NULL},
};

#define FAMILY_LIST "chatml, llama3, gemma, phi3, mistral, llama2, alpaca"

const char *lorac_chat_family_name(lorac_chat_family f) {
    return f >= 0 && f < LORAC_CHAT_N_FAMILIES ? families[f].name : NULL;
}

lorac_status lorac_chat_family_parse(const char *name, lorac_chat_family *out) {
    for (int f = 0; f < LORAC_CHAT_N_FAMILIES; f++)
        if (!strcmp(name, families[f].name)) {
            *out = (lorac_chat_family)f;
            return LORAC_OK;
        }
    return lorac_fail(LORAC_ERR_ARG, "chat format '%s' is unknown; hint: one of " FAMILY_LIST, name);
}

/* ---- where a template comes from ---- */

/* "dir/name" when it is a regular file. */
static int file_in(char *buf, size_t n, const char *dir, const char *name) {
    struct stat s;
    lorac_path_join(buf, n, dir, name);
    return stat(buf, &s) == 0 && S_ISREG(s.st_mode);
}

/* tokenizer_config.json's "chat_template": a string, or a list of
 * {"name", "template"} (transformers uses the one named "default"). */
static lorac_status config_template(const char *path, char **tpl) {
    char *buf;
    size_t len;
    LORAC_TRY(lorac_read_file(path, (size_t)64 << 20, &buf, &len));
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!j) return lorac_fail(LORAC_ERR_FORMAT, "%s: invalid JSON; hint: is the file complete?", path);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
    const char *text = NULL;
    if (cJSON_IsString(t)) {
        text = t->valuestring;
    } else if (cJSON_IsArray(t)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, t) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name"), *tt = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (cJSON_IsString(nm) && cJSON_IsString(tt) && !strcmp(nm->valuestring, "default")) text = tt->valuestring;
        }
        if (!text) {
            cJSON_Delete(j);
            return lorac_fail(LORAC_ERR_FORMAT, "%s: \"chat_template\" is a list without a template named \"default\"; "
                              "hint: pick a format with --chat-format", path);
        }
    } else if (t && !cJSON_IsNull(t)) {
        cJSON_Delete(j);
        return lorac_fail(LORAC_ERR_FORMAT, "%s: \"chat_template\" is neither a string nor a list of {name, template}",
                          path);
    }
    *tpl = text ? strdup(text) : NULL;
    cJSON_Delete(j);
    if (text && !*tpl) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", path);
    return LORAC_OK;
}

lorac_status lorac_chat_template_read(const char *dir, const lorac_gguf *g, char **tpl, char *where, size_t n) {
    *tpl = NULL;
    if (g) {
        snprintf(where, n, "%s: tokenizer.chat_template", lorac_gguf_path(g));
        const char *s = lorac_gguf_get_str(g, "tokenizer.chat_template");
        if (s && !(*tpl = strdup(s))) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", where);
        return LORAC_OK;
    }
    char d[1024], path[1200];
    struct stat s;
    snprintf(d, sizeof d, "%s", dir);
    if (stat(d, &s) != 0 || !S_ISDIR(s.st_mode)) { /* a file: its directory */
        char *slash = strrchr(d, '/');
        if (slash) *slash = 0;
        else snprintf(d, sizeof d, ".");
    }
    if (file_in(path, sizeof path, d, "chat_template.jinja")) {
        snprintf(where, n, "%s", path);
        size_t len;
        return lorac_read_file(path, (size_t)16 << 20, tpl, &len);
    }
    if (file_in(path, sizeof path, d, "tokenizer_config.json")) {
        snprintf(where, n, "%s: chat_template", path);
        return config_template(path, tpl);
    }
    snprintf(where, n, "%s", d);
    return LORAC_OK;
}

lorac_status lorac_chat_format_pick(const char *tok_path, const char *model_path, const lorac_gguf *model_gguf,
                                    const lorac_tokenizer *tok, const char *name, lorac_chat_format *f, char *where,
                                    size_t n_where) {
    lorac_chat_family fam = LORAC_CHAT_ALPACA;
    if (name && !strcmp(name, "auto")) name = NULL;
    if (name && lorac_chat_family_parse(name, &fam) != LORAC_OK)
        return lorac_fail(LORAC_ERR_ARG, "chat format '%s': expected auto, " FAMILY_LIST, name);
    char *tpl = NULL;
    lorac_gguf *tg = NULL; /* a tokenizer that is a GGUF file carries its own template */
    const size_t tl = tok_path ? strlen(tok_path) : 0;
    if (tl > 5 && !strcmp(tok_path + tl - 5, ".gguf")) LORAC_TRY(lorac_gguf_open_metadata(tok_path, &tg));
    lorac_status st = lorac_chat_template_read(tok_path ? tok_path : model_path, tok_path ? tg : model_gguf, &tpl,
                                               where, n_where);
    lorac_gguf_close(tg);
    if (st != LORAC_OK) return st;
    lorac_chat_format found;
    const int have = tpl != NULL;
    st = have ? lorac_chat_detect(tpl, where, &found) : LORAC_ERR_UNSUPPORTED;
    free(tpl);
    if (!name) {
        if (have && st != LORAC_OK) return st; /* a template of no known family: say so */
        if (have) *f = found;
        else lorac_chat_format_init(f, LORAC_CHAT_ALPACA);
    } else if (st == LORAC_OK && found.family == fam) {
        *f = found;
    } else {
        lorac_chat_format_init(f, fam);
    }
    lorac_chat_set_tokens(f, tok);
    if (!f->from_template) snprintf(where, n_where, "%s", !name ? "the model has no chat template" : "named format");
    return LORAC_OK;
}

/* ---- what a template is ---- */

static int has(const char *s, const char *what) { return strstr(s, what) != NULL; }

/* A newline as the template writes it, in a Jinja string: an escaped "\n"
 * (two characters) or a real one. Returns its length at p, or 0. */
static size_t newline_at(const char *p) {
    if (p[0] == '\\' && p[1] == 'n') return 2;
    return p[0] == '\n';
}

/* The default system message a template writes as one literal, e.g. Qwen2.5's
 *   '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. ...<|im_end|>\n'
 * open + `newlines` newlines + text + close, where the text is plain (no
 * quote, brace or '+': not an expression like open + messages[0]['content']).
 * Every occurrence is tried; the first plain one wins. */
static void default_system(const char *tpl, const char *open, int newlines, const char *close, char *out, size_t n) {
    out[0] = 0;
    for (const char *p = strstr(tpl, open); p; p = strstr(p + 1, open)) {
        const char *q = p + strlen(open);
        int ok = 1;
        for (int k = 0; k < newlines && ok; k++) {
            size_t nl = newline_at(q);
            ok = nl > 0;
            q += nl;
        }
        const char *end = ok ? strstr(q, close) : NULL;
        if (!end || end == q || (size_t)(end - q) >= n) continue;
        size_t plain = strcspn(q, "'\"{}+");
        if (q + plain < end) continue;
        size_t o = 0; /* copy, unescaping \n */
        for (const char *c = q; c < end; c++) {
            if (c[0] == '\\' && c[1] == 'n') {
                out[o++] = '\n';
                c++;
            } else {
                out[o++] = *c;
            }
        }
        out[o] = 0;
        return;
    }
}

void lorac_chat_format_init(lorac_chat_format *f, lorac_chat_family family) {
    memset(f, 0, sizeof *f);
    f->family = family;
    /* the reference templates: Llama 3, Gemma 3, Mistral and Llama 2 start
     * with BOS; Phi-3-mini ends a conversation without a generation prompt
     * with EOS */
    f->bos = family == LORAC_CHAT_LLAMA3 || family == LORAC_CHAT_GEMMA || family == LORAC_CHAT_MISTRAL ||
             family == LORAC_CHAT_LLAMA2;
    f->eos_after = family == LORAC_CHAT_PHI3;
}

lorac_status lorac_chat_detect(const char *tpl, const char *where, lorac_chat_format *f) {
    lorac_chat_family fam = LORAC_CHAT_ALPACA;
    /* a template that is just a format's name, as llama.cpp allows */
    if (lorac_chat_family_parse(tpl, &fam) == LORAC_OK) {
        lorac_chat_format_init(f, fam);
        f->from_template = 1;
        return LORAC_OK;
    }
    const char *unsupported = NULL;
    /* the order of llama.cpp's llm_chat_detect_template: markers that
     * another family's template might also mention come later */
    if (has(tpl, "<|im_start|>")) {
        if (has(tpl, "<|im_sep|>")) unsupported = "Phi-4 (<|im_sep|>)";
        fam = LORAC_CHAT_CHATML;
    } else if (!strncmp(tpl, "mistral", 7) || has(tpl, "[INST]")) {
        if (has(tpl, "[SYSTEM_PROMPT]")) unsupported = "Mistral v7 ([SYSTEM_PROMPT])";
        fam = has(tpl, "<<SYS>>") ? LORAC_CHAT_LLAMA2 : LORAC_CHAT_MISTRAL;
    } else if (has(tpl, "<|assistant|>") && has(tpl, "<|end|>")) {
        fam = LORAC_CHAT_PHI3;
    } else if (has(tpl, "<start_of_turn>")) {
        fam = LORAC_CHAT_GEMMA;
    } else if (has(tpl, "<|start_header_id|>") && has(tpl, "<|end_header_id|>")) {
        /* Llama 3.1+ write a dated system header ("Cutting Knowledge Date")
         * from variables the template computes: not a fixed format */
        if (has(tpl, "Cutting Knowledge Date")) unsupported = "Llama 3.1+ (a dated system header)";
        fam = LORAC_CHAT_LLAMA3;
    } else {
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: a chat template of no family lorac knows (it looks for the "
                          "markers of ChatML, Llama 3, Gemma, Phi-3, Mistral and Llama 2); hint: pick the format "
                          "with --chat-format " FAMILY_LIST, where);
    }
    if (unsupported)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: a %s chat template, which lorac does not render; hint: pick the "
                          "closest format with --chat-format " FAMILY_LIST, where, unsupported);
    lorac_chat_format_init(f, fam);
    f->from_template = 1;
    f->bos = has(tpl, "bos_token"); /* {{ bos_token }} first (llama2: before every [INST]) */
    f->eos_after = fam == LORAC_CHAT_PHI3 && has(tpl, "eos_token");
    if (fam == LORAC_CHAT_CHATML)
        default_system(tpl, "<|im_start|>system", 1, "<|im_end|>", f->default_system, sizeof f->default_system);
    else if (fam == LORAC_CHAT_LLAMA3)
        default_system(tpl, "<|start_header_id|>system<|end_header_id|>", 2, "<|eot_id|>", f->default_system,
                       sizeof f->default_system);
    return LORAC_OK;
}

/* The text of token `id` ("" when there is none or it does not fit). */
static void token_text(const lorac_tokenizer *tok, int id, char *out, size_t n) {
    size_t len = 0;
    const char *p = id >= 0 ? lorac_tokenizer_piece(tok, id, &len) : NULL;
    out[0] = 0;
    if (p && len < n) {
        memcpy(out, p, len);
        out[len] = 0;
    }
}

void lorac_chat_set_tokens(lorac_chat_format *f, const lorac_tokenizer *tok) {
    token_text(tok, lorac_tokenizer_bos(tok), f->bos_token, sizeof f->bos_token);
    token_text(tok, lorac_tokenizer_eos(tok), f->eos_token, sizeof f->eos_token);
    if (f->family == LORAC_CHAT_ALPACA) f->bos = lorac_tokenizer_adds_bos(tok);
}

int lorac_chat_end_of_turn(const lorac_chat_format *f, const lorac_tokenizer *tok) {
    const char *eot = families[f->family].end_of_turn;
    int id = eot ? lorac_tokenizer_find(tok, eot) : -1;
    return id >= 0 ? id : lorac_tokenizer_eos(tok);
}
