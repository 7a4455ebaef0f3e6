/* chat_render.c - writing a conversation in a chat format (see chat.h), and
 * tokenizing it with a mask over the assistant turns. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/chat.h"

/* ---- a growing string with the spans the loss trains on ---- */

typedef struct sbuf {
    lorac_chat_text *t;
    size_t cap;
    int span_cap;
    int oom;
} sbuf;

static void put_n(sbuf *b, const char *s, size_t n) {
    lorac_chat_text *t = b->t;
    if (b->oom) return;
    if (t->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (t->len + n + 1 > cap) cap *= 2;
        char *p = realloc(t->text, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        t->text = p;
        b->cap = cap;
    }
    memcpy(t->text + t->len, s, n);
    t->len += n;
    t->text[t->len] = 0;
}

static void put(sbuf *b, const char *s) { put_n(b, s, strlen(s)); }

/* Open (start) or close the current span at the end of the text. */
static void span_mark(sbuf *b, int start) {
    lorac_chat_text *t = b->t;
    if (b->oom) return;
    if (start) {
        if (t->n_span == b->span_cap) {
            int cap = b->span_cap ? 2 * b->span_cap : 8;
            size_t(*p)[2] = realloc(t->span, (size_t)cap * sizeof *p);
            if (!p) {
                b->oom = 1;
                return;
            }
            t->span = p;
            b->span_cap = cap;
        }
        t->span[t->n_span][0] = t->span[t->n_span][1] = t->len;
        t->n_span++;
    } else {
        t->span[t->n_span - 1][1] = t->len;
    }
}

/* Jinja's trim (Python's str.strip) for ASCII white space: what the Llama 3,
 * Gemma and Llama 2 templates do to a message's content. */
static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

static void put_trimmed(sbuf *b, const char *s, int left, int right) {
    size_t n = strlen(s);
    while (left && n && is_space(*s)) s++, n--;
    while (right && n && is_space(s[n - 1])) n--;
    put_n(b, s, n);
}

/* ---- checks ---- */

static int role_is(const lorac_chat_msg *m, const char *r) { return !strcmp(m->role, r); }

lorac_status lorac_chat_check(const lorac_chat_format *f, const lorac_chat_msg *m, int n, const char *what) {
    const int alternate = f && (f->family == LORAC_CHAT_GEMMA || f->family == LORAC_CHAT_MISTRAL ||
                                f->family == LORAC_CHAT_LLAMA2);
    const int first = n > 0 && role_is(&m[0], "system");
    if (n == 0) return lorac_fail(LORAC_ERR_DATA, "%s is empty; hint: a conversation needs messages", what);
    for (int i = 0; i < n; i++) {
        if (!role_is(&m[i], "system") && !role_is(&m[i], "user") && !role_is(&m[i], "assistant"))
            return lorac_fail(LORAC_ERR_DATA, "%s[%d]: role \"%s\" is not system, user or assistant; hint: ShareGPT's "
                              "\"from\" human / gpt / system are read as user / assistant / system", what, i, m[i].role);
        if (role_is(&m[i], "system") && i > 0)
            return lorac_fail(LORAC_ERR_DATA, "%s[%d]: a system message after the first; hint: one system message, "
                              "first", what, i);
        if (alternate && i >= first && !role_is(&m[i], (i - first) % 2 ? "assistant" : "user"))
            return lorac_fail(LORAC_ERR_DATA, "%s[%d]: role \"%s\", but the %s format wants user and assistant turns "
                              "alternating, user first (after one system message)", what, i, m[i].role,
                              lorac_chat_family_name(f->family));
    }
    return LORAC_OK;
}

/* ---- the formats ---- */

/* An assistant turn's trained part: content (trimmed as the template
 * trims) and the end marker; `after` follows outside the span. */
static void assistant(sbuf *b, const char *content, int trim, const char *end, const char *after) {
    span_mark(b, 1);
    put_trimmed(b, content, trim, trim);
    put(b, end);
    span_mark(b, 0);
    put(b, after);
}

static void render_chatml(sbuf *b, const lorac_chat_format *f, const lorac_chat_msg *m, int n, const char *sys,
                          int gen) {
    (void)f;
    if (sys) {
        put(b, "<|im_start|>system\n");
        put(b, sys);
        put(b, "<|im_end|>\n");
    }
    for (int i = 0; i < n; i++) {
        put(b, "<|im_start|>");
        put(b, m[i].role);
        put(b, "\n");
        if (role_is(&m[i], "assistant")) {
            assistant(b, m[i].content, 0, "<|im_end|>", "\n");
        } else {
            put(b, m[i].content);
            put(b, "<|im_end|>\n");
        }
    }
    if (gen) put(b, "<|im_start|>assistant\n");
}

static void llama3_header(sbuf *b, const char *role) {
    put(b, "<|start_header_id|>");
    put(b, role);
    put(b, "<|end_header_id|>\n\n");
}

static void render_llama3(sbuf *b, const lorac_chat_format *f, const lorac_chat_msg *m, int n, const char *sys,
                          int gen) {
    (void)f;
    if (sys) {
        llama3_header(b, "system");
        put_trimmed(b, sys, 1, 1);
        put(b, "<|eot_id|>");
    }
    for (int i = 0; i < n; i++) {
        llama3_header(b, m[i].role);
        if (role_is(&m[i], "assistant")) {
            assistant(b, m[i].content, 1, "<|eot_id|>", "");
        } else {
            put_trimmed(b, m[i].content, 1, 1);
            put(b, "<|eot_id|>");
        }
    }
    if (gen) llama3_header(b, "assistant");
}

/* Gemma has no system turn: the system message opens the first user turn. */
static void render_gemma(sbuf *b, const lorac_chat_format *f, const lorac_chat_msg *m, int n, const char *sys,
                         int gen) {
    (void)f;
    for (int i = 0; i < n; i++) {
        const int is_asst = role_is(&m[i], "assistant");
        put(b, "<start_of_turn>");
        put(b, is_asst ? "model" : m[i].role);
        put(b, "\n");
        if (i == 0 && sys) {
            put(b, sys);
            put(b, "\n\n");
        }
        if (is_asst) {
            assistant(b, m[i].content, 1, "<end_of_turn>", "\n");
        } else {
            put_trimmed(b, m[i].content, 1, 1);
            put(b, "<end_of_turn>\n");
        }
    }
    if (gen) put(b, "<start_of_turn>model\n");
}

static void render_phi3(sbuf *b, const lorac_chat_format *f, const lorac_chat_msg *m, int n, const char *sys,
                        int gen) {
    if (sys) {
        put(b, "<|system|>\n");
        put(b, sys);
        put(b, "<|end|>\n");
    }
    for (int i = 0; i < n; i++) {
        put(b, "<|");
        put(b, m[i].role);
        put(b, "|>\n");
        if (role_is(&m[i], "assistant")) {
            assistant(b, m[i].content, 0, "<|end|>", "\n");
        } else {
            put(b, m[i].content);
            put(b, "<|end|>\n");
        }
    }
    if (gen) put(b, "<|assistant|>\n");
    else if (f->eos_after) put(b, f->eos_token);
}

/* Mistral-7B-Instruct v0.1/v0.2: [INST] user [/INST]answer</s>; a system
 * message opens the first user turn (as llama.cpp and the v0.3 template put
 * it there). There is no generation prompt: the answer follows [/INST]. */
static void render_mistral(sbuf *b, const lorac_chat_format *f, const lorac_chat_msg *m, int n, const char *sys,
                           int gen) {
    (void)gen;
    for (int i = 0; i < n; i++) {
        if (role_is(&m[i], "assistant")) {
            assistant(b, m[i].content, 0, f->eos_token, "");
            continue;
        }
        put(b, "[INST] ");
        if (i == 0 && sys) {
            put(b, sys);
            put(b, "\n\n");
        }
        put(b, m[i].content);
        put(b, " [/INST]");
    }
}

/* Llama 2 chat: <s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] answer </s>,
 * contents stripped, BOS before every [INST] when the template has it. */
static void render_llama2(sbuf *b, const lorac_chat_format *f, const lorac_chat_msg *m, int n, const char *sys,
                          int gen) {
    (void)gen;
    for (int i = 0; i < n; i++) {
        if (role_is(&m[i], "assistant")) {
            put(b, " ");
            span_mark(b, 1);
            put_trimmed(b, m[i].content, 1, 1);
            put(b, " ");
            put(b, f->eos_token);
            span_mark(b, 0);
            continue;
        }
        if (f->bos) put(b, f->bos_token);
        put(b, "[INST] ");
        if (i == 0 && sys) {
            put(b, "<<SYS>>\n");
            put(b, sys);
            put(b, "\n<</SYS>>\n\n");
        }
        put_trimmed(b, m[i].content, !(i == 0 && sys), 1);
        put(b, " [/INST]");
    }
}

/* lorac's default without a template: the Alpaca prompt of LLMs-from-scratch
 * ch. 7 (lorac_alpaca_prompt), one "### Instruction:" / "### Response:" pair
 * per turn, each answer ended by EOS. */
static void render_alpaca(sbuf *b, const lorac_chat_format *f, const lorac_chat_msg *m, int n, const char *sys,
                          int gen) {
    put(b, sys ? sys
               : "Below is an instruction that describes a task. Write a response that appropriately completes the "
                 "request.");
    for (int i = 0; i < n; i++) {
        if (role_is(&m[i], "assistant")) {
            put(b, "\n\n### Response:\n");
            assistant(b, m[i].content, 0, f->eos_token, "");
        } else {
            put(b, "\n\n### Instruction:\n");
            put(b, m[i].content);
        }
    }
    if (gen) put(b, "\n\n### Response:\n");
}

typedef void (*render_fn)(sbuf *, const lorac_chat_format *, const lorac_chat_msg *, int, const char *, int);

lorac_status lorac_chat_render(const lorac_chat_format *f, const lorac_chat_msg *m, int n, int add_generation_prompt,
                               lorac_chat_text *out) {
    static const render_fn fns[LORAC_CHAT_N_FAMILIES] = {
        [LORAC_CHAT_ALPACA] = render_alpaca, [LORAC_CHAT_CHATML] = render_chatml, [LORAC_CHAT_LLAMA3] = render_llama3,
        [LORAC_CHAT_GEMMA] = render_gemma,   [LORAC_CHAT_PHI3] = render_phi3,     [LORAC_CHAT_MISTRAL] = render_mistral,
        [LORAC_CHAT_LLAMA2] = render_llama2,
    };
    memset(out, 0, sizeof *out);
    LORAC_TRY(lorac_chat_check(f, m, n, "messages"));
    /* the system message: the conversation's own, else the template's default */
    const char *sys = role_is(&m[0], "system") ? m[0].content : (f->default_system[0] ? f->default_system : NULL);
    const int skip = role_is(&m[0], "system");
    sbuf b = {out, 0, 0, 0};
    put(&b, ""); /* an empty conversation still has a text */
    if (f->bos && f->family != LORAC_CHAT_LLAMA2) put(&b, f->bos_token);
    fns[f->family](&b, f, m + skip, n - skip, sys, add_generation_prompt);
    if (b.oom) {
        lorac_chat_text_free(out);
        return lorac_fail(LORAC_ERR_NOMEM, "out of memory rendering a conversation");
    }
    return LORAC_OK;
}

void lorac_chat_text_free(lorac_chat_text *t) {
    if (!t) return;
    free(t->text);
    free(t->span);
    memset(t, 0, sizeof *t);
}

/* ---- tokens and their mask ---- */

/* The index of the first token of ids[0..n) at or after byte `off` of the
 * text, found by tokenizing text[0..off) and comparing: when that is a
 * prefix of ids, `off` falls between tokens; otherwise the first differing
 * token crosses `off`, and it is counted in the span (end = 1: the token
 * after it is the first outside). */
static lorac_status token_at(const lorac_tokenizer *tok, const char *text, size_t off, const int *ids, int n, int end,
                             int *out) {
    int *p, np, k = 0;
    LORAC_TRY(lorac_tokenizer_encode(tok, text, off, 0, &p, &np));
    while (k < np && k < n && p[k] == ids[k]) k++;
    free(p);
    *out = k == np || !end ? k : k + 1;
    if (*out > n) *out = n;
    return LORAC_OK;
}

lorac_status lorac_chat_encode(const lorac_tokenizer *tok, const lorac_chat_text *t, int **ids, uint8_t **mask, int *n) {
    *ids = NULL;
    *mask = NULL;
    LORAC_TRY(lorac_tokenizer_encode(tok, t->text, t->len, 0, ids, n));
    lorac_status st = lorac_alloc((void **)mask, (size_t)(*n > 0 ? *n : 1), 1, "chat mask");
    for (int s = 0; s < t->n_span && st == LORAC_OK; s++) {
        int a = 0, z = 0;
        st = token_at(tok, t->text, t->span[s][0], *ids, *n, 0, &a);
        if (st == LORAC_OK) st = token_at(tok, t->text, t->span[s][1], *ids, *n, 1, &z);
        for (int i = a; i < z && st == LORAC_OK; i++) (*mask)[i] = 1;
    }
    if (st != LORAC_OK) {
        free(*ids);
        free(*mask);
        *ids = NULL;
        *mask = NULL;
    }
    return st;
}

/* ---- messages ---- */

void lorac_chat_msgs_free(lorac_chat_msg *m, int n) {
    for (int i = 0; m && i < n; i++) {
        free(m[i].role);
        free(m[i].content);
    }
    free(m);
}

lorac_status lorac_chat_msgs_copy(const lorac_chat_msg *m, int n, lorac_chat_msg **out) {
    *out = NULL;
    if (n <= 0) return LORAC_OK;
    lorac_chat_msg *c = calloc((size_t)n, sizeof *c);
    int failed = !c;
    for (int i = 0; i < n && !failed; i++) {
        c[i].role = strdup(m[i].role);
        c[i].content = strdup(m[i].content);
        failed = !c[i].role || !c[i].content;
    }
    if (failed) {
        lorac_chat_msgs_free(c, n);
        return lorac_fail(LORAC_ERR_NOMEM, "out of memory copying a conversation");
    }
    *out = c;
    return LORAC_OK;
}
