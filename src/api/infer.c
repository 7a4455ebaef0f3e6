/* infer.c - the public inference calls: classification (softmax over the
 * head's classes for one text, tokenized exactly as training tokenizes a
 * classification example: lorac_tokenize_dataset) and generation
 * (models/generate.h) with per-token text streaming, early stop and the
 * prompt / generation timings. */
#include "api/api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "models/generate.h"
#include "train/batch.h"

lorac_status lorac_llm_classify(lorac_llm *llm, const char *text, float *probs, int n_probs, int *label) {
    API_NEED(llm, "lorac_llm_classify");
    API_NEED(text, "lorac_llm_classify");
    lorac_model *m = llm->m;
    if (!m->head || !m->head->W->data || m->n_classes < 1)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_classify: the model has no classification head; hint: activate "
                          "an adapter trained for classification (lorac train --task classify)");
    const int C = m->n_classes;
    if (probs && n_probs < C)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_classify: probs holds %d values, the head has %d classes", n_probs, C);
    lorac_example ex = {.text = (char *)text, .label = 0};
    lorac_dataset d = {.ex = &ex, .n = 1, .n_labels = C};
    lorac_tokenized t;
    const int max_len = m->cfg.n_ctx;
    LORAC_TRY(lorac_tokenize_dataset(llm->tok.t, &d, LORAC_TASK_CLS, max_len, NULL, &t));
    const int offs[2] = {0, t.len[0]};
    const int was = m->training;
    m->training = 0;
    lorac_status st = lorac_model_forward_packed(m, t.ids[0], offs, 1, LORAC_FWD_CLS);
    m->training = was;
    lorac_tokenized_free(&t);
    if (st != LORAC_OK) return st;
    const float *z = m->acts.cls_logits;
    int best = 0;
    double mx = z[0], sum = 0;
    for (int c = 1; c < C; c++)
        if (z[c] > mx) mx = z[best = c];
    for (int c = 0; c < C; c++) sum += exp((double)z[c] - mx);
    for (int c = 0; probs && c < C; c++) probs[c] = (float)(exp((double)z[c] - mx) / sum);
    if (label) *label = best;
    return LORAC_OK;
}

void lorac_gen_params_init(lorac_gen_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    p->max_new = 64;
    p->top_p = 1;
    p->seed = 42;
}

typedef struct {
    const lorac_llm *llm;
    lorac_token_cb cb;
    void *user;
    int prev, stopped_by_cb;
} stream_ctx;

static int on_token(int id, void *vctx) {
    stream_ctx *c = vctx;
    int stop = 0;
    if (c->cb) {
        char buf[256];
        size_t n = 0;
        if (lorac_tokenizer_decode_piece(c->llm->tok.t, c->prev, id, buf, sizeof buf, &n) != LORAC_OK) n = 0;
        stop = c->cb(id, buf, n, c->user) != 0;
    }
    c->prev = id;
    c->stopped_by_cb |= stop;
    return stop;
}

lorac_status lorac_llm_generate_ids(lorac_llm *llm, const int *ids, int n, const lorac_gen_params *p, lorac_token_cb cb,
                                    void *user, int **out, int *n_out, lorac_gen_stats *stats) {
    API_NEED(llm, "lorac_llm_generate_ids");
    API_NEED(ids, "lorac_llm_generate_ids");
    API_SIZE(p, lorac_gen_params, "lorac_llm_generate_ids");
    if (out) *out = NULL;
    if (n_out) *n_out = 0;
    lorac_gen_params dp;
    lorac_gen_params_init(&dp);
    if (!p) p = &dp;
    if (n < 1) return lorac_fail(LORAC_ERR_ARG, "lorac_llm_generate_ids: the prompt needs at least one token (n = %d)", n);
    const int V = llm->m->cfg.vocab;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return lorac_fail(LORAC_ERR_ARG, "lorac_llm_generate_ids: prompt token %d is id %d, outside the vocabulary "
                              "0..%d", i, ids[i], V - 1);
    if (p->max_new < 0 || p->temperature < 0 || p->top_k < 0 || !(p->top_p >= 0 && p->top_p <= 1) || p->n_stop < 0 ||
        p->n_stop > 8)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_generate_ids: bad sampling settings (max_new %d, temperature %g, "
                          "top_k %d, top_p %g, n_stop %d); hint: lorac_gen_params_init gives valid defaults", p->max_new,
                          (double)p->temperature, p->top_k, (double)p->top_p, p->n_stop);
    lorac_gen_opts o;
    lorac_gen_opts_default(&o);
    o.max_new = p->max_new;
    o.temperature = p->temperature;
    o.top_k = p->top_k;
    o.top_p = p->top_p;
    o.seed = p->seed;
    for (int i = 0; i < p->n_stop; i++) o.stop[o.n_stop++] = p->stop[i];
    if (!p->n_stop && !p->no_eos_stop && lorac_tokenizer_eos(llm->tok.t) >= 0) o.stop[o.n_stop++] = lorac_tokenizer_eos(llm->tok.t);
    stream_ctx sc = {llm, cb, user, ids[n - 1], 0};
    lorac_gen_seq q = {.prompt = ids, .n = n, .opts = &o, .fn = on_token, .ctx = &sc};
    /* the KV cache (one slot, the model's active adapter), or the reference without it */
    LORAC_TRY(p->no_kv_cache ? lorac_generate_recompute(llm->m, &q) : lorac_generate_batch(llm->m, &q, 1, NULL));
    int *gen = q.out, ng = q.n_out;
    if (stats) {
        memset(stats, 0, sizeof *stats);
        stats->prompt_tokens = q.n_prompt;
        stats->prompt_seconds = q.prompt_s;
        stats->gen_tokens = ng;
        stats->gen_seconds = q.gen_s;
        stats->stopped = sc.stopped_by_cb ? 2 : ng < o.max_new ? 1 : 0;
    }
    if (out) *out = gen;
    else free(gen);
    if (n_out) *n_out = ng;
    return LORAC_OK;
}

lorac_status lorac_llm_generate(lorac_llm *llm, const char *prompt, const lorac_gen_params *p, lorac_token_cb cb,
                                void *user, char **text, lorac_gen_stats *stats) {
    API_NEED(llm, "lorac_llm_generate");
    API_NEED(prompt, "lorac_llm_generate");
    API_SIZE(p, lorac_gen_params, "lorac_llm_generate");
    if (text) *text = NULL;
    int *ids = NULL, n = 0;
    LORAC_TRY(lorac_tokenizer_encode(llm->tok.t, prompt, strlen(prompt), 1, &ids, &n));
    if (n == 0) { /* nothing to condition on: start from BOS (or EOS as GPT-2 does) */
        const lorac_tokenizer *t = llm->tok.t;
        const int start = lorac_tokenizer_bos(t) >= 0 ? lorac_tokenizer_bos(t) : lorac_tokenizer_eos(t);
        free(ids);
        if (start < 0) return lorac_fail(LORAC_ERR_ARG, "lorac_llm_generate: empty prompt and the tokenizer has no BOS token");
        ids = malloc(sizeof(int));
        if (!ids) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
        ids[0] = start;
        n = 1;
    }
    int *gen = NULL, ng = 0;
    lorac_status st = lorac_llm_generate_ids(llm, ids, n, p, cb, user, &gen, &ng, stats);
    free(ids);
    if (st == LORAC_OK && text) {
        size_t len;
        st = lorac_tokenizer_decode(llm->tok.t, gen, ng, 1, text, &len);
    }
    free(gen);
    return st;
}
