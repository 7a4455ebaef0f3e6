/* evalset.c - lorac_evalset: a data file loaded, split and tokenized once,
 * then scored as often as needed (lorac eval scores the splits asked for;
 * lorac merge scores the test split with the adapter unmerged, merged and
 * re-quantized). The split is lorac_api_split's, so a seed gives the test
 * set training held out; what the loading did (rows skipped, examples
 * truncated, the chat format) is kept for lorac_evalset_get_info, since the
 * library never prints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_chat.h"
#include "api/data.h"
#include "train/trainer.h"

struct lorac_evalset {
    lorac_api_data d;     /* sets and their tokenized forms */
    int skipped[3];
    int max_len;
    int n_ctx;            /* of the llm it was tokenized for: lorac_llm_score checks it */
    lorac_chat_info chat; /* instruct only */
    char data[1024];      /* the data file, for messages */
};

static const char *const task_names[] = {"classify", "lm", "instruct"};

lorac_status lorac_evalset_open(const lorac_llm *llm, const lorac_data_config *dc, uint64_t seed, lorac_evalset **out) {
    API_NEED(out, "lorac_evalset_open");
    *out = NULL;
    API_NEED(llm, "lorac_evalset_open");
    API_NEED(dc, "lorac_evalset_open");
    if (!dc->data) return lorac_fail(LORAC_ERR_ARG, "lorac_evalset_open: data is NULL; hint: the data file to score");
    if (!llm->tok.t)
        return lorac_fail(LORAC_ERR_ARG, "lorac_evalset_open: the llm has no tokenizer (opened with no_tokenizer, or "
                          "lorac_llm_create); hint: open it with its tokenizer");
    lorac_evalset *s = calloc(1, sizeof *s);
    if (!s) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    snprintf(s->data, sizeof s->data, "%s", dc->data);
    lorac_status st = lorac_api_task(dc->task, &s->d.task);
    const int n_ctx = llm->m->cfg.n_ctx;
    s->n_ctx = n_ctx;
    s->max_len = dc->max_len > 0 ? dc->max_len : 256 < n_ctx ? 256 : n_ctx;
    if (st == LORAC_OK && (s->max_len < 2 || s->max_len > n_ctx))
        st = lorac_fail(LORAC_ERR_ARG, "max_len %d: expected 2..%d (the model's context)", s->max_len, n_ctx);
    lorac_chat_format chat;
    if (st == LORAC_OK && s->d.task == LORAC_TASK_INSTRUCT) {
        char where[1200];
        st = lorac_api_chat_format(llm, dc->chat_format, &chat, where, sizeof where);
        if (st == LORAC_OK) { /* as lorac_llm_chat describes it */
            snprintf(s->chat.family, sizeof s->chat.family, "%s", lorac_chat_family_name(chat.family));
            snprintf(s->chat.source, sizeof s->chat.source, "%s", where);
            s->chat.from_template = chat.from_template;
            snprintf(s->chat.default_system, sizeof s->chat.default_system, "%s", chat.default_system);
            s->chat.end_of_turn = lorac_chat_end_of_turn(&chat, llm->tok.t);
            s->chat.writes_bos = 1;
        }
    }
    if (st == LORAC_OK) st = lorac_api_split(dc, s->d.task, seed, s->d.set, s->skipped);
    for (int i = 0; i < 3 && st == LORAC_OK; i++)
        if (s->d.set[i].n)
            st = lorac_tokenize_dataset(llm->tok.t, &s->d.set[i], s->d.task, s->max_len,
                                        s->d.task == LORAC_TASK_INSTRUCT ? &chat : NULL, &s->d.tok[i]);
    if (st != LORAC_OK) {
        lorac_evalset_close(s);
        return st;
    }
    *out = s;
    return LORAC_OK;
}

void lorac_evalset_close(lorac_evalset *s) {
    if (!s) return;
    lorac_api_data_free(&s->d);
    free(s);
}

lorac_status lorac_evalset_get_info(const lorac_evalset *s, lorac_evalset_info *info) {
    API_NEED(s, "lorac_evalset_get_info");
    API_NEED(info, "lorac_evalset_get_info");
    API_SIZE(info, lorac_evalset_info, "lorac_evalset_get_info");
    memset(info, 0, sizeof *info);
    info->size = sizeof *info;
    snprintf(info->task, sizeof info->task, "%s", task_names[s->d.task]);
    for (int i = 0; i < 3; i++) {
        info->n[i] = s->d.set[i].n;
        info->skipped[i] = s->skipped[i];
        info->truncated[i] = s->d.tok[i].n_truncated;
    }
    info->max_len = s->max_len;
    /* the training split's classes; an unsplit set (whole) has only a test split */
    info->n_labels = s->d.set[0].n ? s->d.set[0].n_labels : s->d.set[2].n_labels;
    if (s->d.task == LORAC_TASK_INSTRUCT) info->chat = s->chat;
    else info->chat.end_of_turn = -1;
    return LORAC_OK;
}

const char *lorac_evalset_label(const lorac_evalset *s, int i, int *count) {
    if (count) *count = 0;
    if (!s) return NULL;
    const lorac_dataset *d = s->d.set[0].n ? &s->d.set[0] : &s->d.set[2];
    if (i < 0 || i >= d->n_labels) return NULL;
    if (count) *count = s->d.set[0].n ? lorac_dataset_count(&s->d.set[0], i) : 0;
    return d->label_names[i];
}

lorac_status lorac_llm_score(lorac_llm *llm, const lorac_evalset *s, int split, int batch, lorac_split_scores *out) {
    API_NEED(out, "lorac_llm_score");
    memset(out, 0, sizeof *out);
    out->loss = NAN;
    out->acc = -1;
    API_NEED(llm, "lorac_llm_score");
    API_NEED(s, "lorac_llm_score");
    if (split < 0 || split > 2)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_score: split %d: expected 0 (train), 1 (val) or 2 (test)", split);
    if (batch < 0 || batch > 65536) return lorac_fail(LORAC_ERR_ARG, "lorac_llm_score: batch %d: expected 0..65536", batch);
    lorac_model *m = llm->m;
    if (s->max_len > m->cfg.n_ctx)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_score: the set was tokenized to %d tokens, beyond this model's "
                          "context %d; hint: open the set for this llm", s->max_len, m->cfg.n_ctx);
    if (s->d.task == LORAC_TASK_CLS && (!m->head || !m->head->W->data))
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_score: classification needs the adapter that holds the trained head");
    lorac_evalset_info in = {.size = sizeof in};
    (void)lorac_evalset_get_info(s, &in);
    if (s->d.task == LORAC_TASK_CLS && in.n_labels > m->n_classes)
        return lorac_fail(LORAC_ERR_DATA, "%s has %d labels but the head has %d classes", s->data, in.n_labels, m->n_classes);
    const lorac_tokenized *t = &s->d.tok[split];
    out->n = t->n;
    if (t->n == 0) return LORAC_OK;
    return lorac_evaluate(m, t, s->d.task, batch ? batch : 8, &out->loss, &out->acc);
}
