/* train.c - lorac_train_config's defaults, lorac_llm_train (the stages of
 * stages.c in a row: data, prepare, fit, score) and lorac_llm_evaluate;
 * the progress callback can cancel at a step boundary. */
#include "api/stages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lorac_train_config_init(lorac_train_config *c) {
    if (!c) return;
    memset(c, 0, sizeof *c);
    c->size = sizeof *c;
    c->method = "lora";
    c->r = 8;
    c->epochs = 1;
    c->batch = 8;
    c->grad_accum = 1;
    c->lr = 1e-4f;
    c->weight_decay = 0.01f;
    c->seed = 123;
    c->loraplus_lr_embedding = 1e-6f;
    c->model_dropout = 1;
    c->keep_checkpoints = 2;
}

static lorac_status score(lorac_model *m, const lorac_api_data *d, int batch, lorac_train_report *r) {
    lorac_split_scores *s[3] = {&r->train, &r->val, &r->test};
    for (int i = 0; i < 3; i++) {
        s[i]->n = d->tok[i].n;
        s[i]->loss = 0;
        s[i]->acc = -1;
        if (d->tok[i].n) LORAC_TRY(lorac_evaluate_dist(m, &d->tok[i], d->task, batch, NULL, &s[i]->loss, &s[i]->acc));
    }
    lorac_count_params(m, &r->params_trainable, &r->params_all);
    r->n_labels = d->set[0].n ? d->set[0].n_labels : d->set[2].n_labels;
    return LORAC_OK;
}

/* The stages of stages.c in a row: data, prepare, fit, score. */
lorac_status lorac_llm_train(lorac_llm *llm, const lorac_train_config *c, lorac_train_report *res) {
    API_NEED(llm, "lorac_llm_train");
    LORAC_TRY(lorac_api_check_config(c, "lorac_llm_train"));
    if (llm->applied || llm->set.n)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_train: the llm already holds an adapter; hint: train on a freshly "
                          "opened llm");
    lorac_data d;
    LORAC_TRY(lorac_api_data_load(llm, &c->data, c->seed, &d.d));
    lorac_status st = lorac_llm_prepare(llm, c, &d, NULL);
    lorac_fit_report r = {.size = sizeof r};
    if (st == LORAC_OK) st = lorac_llm_fit(llm, c, &d, &r);
    if (st == LORAC_ERR_CANCELLED)
        st = lorac_fail(LORAC_ERR_CANCELLED, "lorac_llm_train: cancelled by the progress callback after step %d; "
                        "the adapter trained so far stays on the llm", r.steps);
    if (res) memset(res, 0, sizeof *res);
    if (st == LORAC_OK && res) {
        res->steps = r.steps;
        res->final_loss = r.final_loss;
        res->seconds = r.seconds;
        res->tokens_per_s = r.tokens_per_s;
        res->tokens = r.tokens;
        st = score(llm->m, &d.d, c->batch, res);
    }
    lorac_api_data_free(&d.d);
    return st;
}

lorac_status lorac_llm_evaluate(lorac_llm *llm, const lorac_data_config *dc, int batch, uint64_t seed,
                                lorac_train_report *res) {
    API_NEED(llm, "lorac_llm_evaluate");
    API_NEED(dc, "lorac_llm_evaluate");
    API_NEED(res, "lorac_llm_evaluate");
    if (batch < 0) return lorac_fail(LORAC_ERR_ARG, "lorac_llm_evaluate: batch %d < 0", batch);
    lorac_api_data d;
    LORAC_TRY(lorac_api_data_load(llm, dc, seed, &d));
    lorac_model *m = llm->m;
    lorac_status st = LORAC_OK;
    if (d.task == LORAC_TASK_CLS && (!m->head || !m->head->W->data))
        st = lorac_fail(LORAC_ERR_ARG, "lorac_llm_evaluate: classification needs the adapter that holds the trained head");
    const int n_labels = d.set[0].n ? d.set[0].n_labels : d.set[2].n_labels;
    if (st == LORAC_OK && d.task == LORAC_TASK_CLS && n_labels > m->n_classes)
        st = lorac_fail(LORAC_ERR_DATA, "%s has %d labels but the head has %d classes", dc->data, n_labels, m->n_classes);
    memset(res, 0, sizeof *res);
    if (st == LORAC_OK) st = score(m, &d, batch ? batch : 8, res);
    lorac_api_data_free(&d);
    return st;
}
