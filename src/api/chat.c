/* chat.c - the public chat-template call: which format (the template of the
 * llm's tokenizer or model, or a named family) and the rendered
 * conversation. lorac_api_chat_format is lorac_chat_format_pick (io/chat.h,
 * the one place that picks a format, lorac serve's engine calls it too) on
 * the llm's paths; lorac train / eval / generate (--chat-format) and
 * lorac_llm_train (instruct data) go through it. */
#include "api/api_chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"

lorac_status lorac_api_chat_format(const lorac_llm *llm, const char *name, lorac_chat_format *f, char *where,
                                   size_t n_where) {
    return lorac_chat_format_pick(llm->tok_path[0] ? llm->tok_path : NULL, llm->m->path, llm->m->gguf, llm->tok.t, name,
                                  f, where, n_where);
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
