/* chat.c - the public chat-template call: which format (the template of the
 * llm's tokenizer or model, or a named family, io/chat.h) and the rendered
 * conversation. lorac_api_chat_format is the one place that picks the
 * format; lorac train / eval / generate (--chat-format) and lorac_llm_train
 * (instruct data) go through it. */
#include "api/api_chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"

lorac_status lorac_api_chat_format(const lorac_llm *llm, const char *name, lorac_chat_format *f, char *where,
                                   size_t n_where) {
    lorac_chat_family fam = LORAC_CHAT_ALPACA;
    if (name && !strcmp(name, "auto")) name = NULL;
    if (name && lorac_chat_family_parse(name, &fam) != LORAC_OK)
        return lorac_fail(LORAC_ERR_ARG, "chat format '%s': expected auto, chatml, llama3, gemma, phi3, mistral, "
                          "llama2 or alpaca", name);
    const char *tp = llm->tok_path[0] ? llm->tok_path : NULL;
    char *tpl = NULL;
    lorac_gguf *tg = NULL; /* a tokenizer that is a GGUF file carries its own template */
    const size_t tl = tp ? strlen(tp) : 0;
    if (tl > 5 && !strcmp(tp + tl - 5, ".gguf")) LORAC_TRY(lorac_gguf_open_metadata(tp, &tg));
    lorac_status st = lorac_chat_template_read(tp ? tp : llm->m->path, tp ? tg : llm->m->gguf, &tpl, where, n_where);
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
    lorac_chat_set_tokens(f, llm->tok.t);
    if (!f->from_template) snprintf(where, n_where, "%s", !name ? "the model has no chat template" : "named format");
    return LORAC_OK;
}

lorac_status lorac_llm_chat(const lorac_llm *llm, const char *format, const lorac_chat_message *msgs, int n,
                            int add_generation_prompt, char **text, lorac_chat_info *info) {
    API_NEED(llm, "lorac_llm_chat");
    if (n < 0 || (n > 0 && !msgs)) return lorac_fail(LORAC_ERR_ARG, "lorac_llm_chat: %d messages at NULL", n);
    lorac_chat_format f;
    char where[1200];
    LORAC_TRY(lorac_api_chat_format(llm, format, &f, where, sizeof where));
    if (info) {
        memset(info, 0, sizeof *info);
        snprintf(info->family, sizeof info->family, "%s", lorac_chat_family_name(f.family));
        snprintf(info->source, sizeof info->source, "%s", where);
        info->from_template = f.from_template;
        snprintf(info->default_system, sizeof info->default_system, "%s", f.default_system);
        info->end_of_turn = lorac_chat_end_of_turn(&f, llm->tok.t);
        info->writes_bos = 1;
    }
    if (!text) return LORAC_OK;
    *text = NULL;
    lorac_chat_msg *m = calloc((size_t)(n ? n : 1), sizeof *m);
    if (!m) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        m[i].role = (char *)msgs[i].role;
        m[i].content = (char *)msgs[i].content;
        if (!m[i].role || !m[i].content) {
            const char *what = m[i].role ? "content" : "role";
            free(m);
            return lorac_fail(LORAC_ERR_ARG, "lorac_llm_chat: message %d has a NULL %s", i, what);
        }
    }
    lorac_chat_text t = {0};
    lorac_status st = lorac_chat_render(&f, m, n, add_generation_prompt, &t);
    free(m);
    if (st != LORAC_OK) return st;
    *text = t.text;
    t.text = NULL;
    lorac_chat_text_free(&t);
    return LORAC_OK;
}
