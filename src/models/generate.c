#include "models/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

void lorac_gen_opts_default(lorac_gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_new = 64;
    o->top_p = 1.0f;
    o->seed = 42;
}

typedef struct { float p; int id; } prob_id;
static int by_prob_desc(const void *a, const void *b) {
    const prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id - y->id;
}

int lorac_sample(float *logits, int V, const lorac_gen_opts *o, lorac_rng *rng) {
    if (o->temperature <= 0) { /* greedy: first maximum, as torch.argmax */
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    /* softmax(logits / T), then the top-k and top-p filters as Hugging Face
     * applies them (top-k first, then the smallest set whose mass reaches top_p) */
    prob_id *pi = malloc(sizeof *pi * (size_t)V);
    if (!pi) return 0;
    float mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++) {
        pi[i].p = expf((logits[i] - mx) / o->temperature);
        pi[i].id = i;
        sum += pi[i].p;
    }
    qsort(pi, (size_t)V, sizeof *pi, by_prob_desc);
    int keep = V;
    if (o->top_k > 0 && o->top_k < keep) keep = o->top_k;
    double kept = 0;
    for (int i = 0; i < keep; i++) kept += pi[i].p;
    if (o->top_p > 0 && o->top_p < 1) {
        double c = 0;
        for (int i = 0; i < keep; i++) {
            c += pi[i].p / kept;
            if (c >= o->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    double tot = 0;
    for (int i = 0; i < keep; i++) tot += pi[i].p;
    double u = lorac_rng_uniform(rng) * tot, c = 0;
    int id = pi[keep - 1].id;
    for (int i = 0; i < keep; i++) {
        c += pi[i].p;
        if (u < c) {
            id = pi[i].id;
            break;
        }
    }
    (void)sum;
    free(pi);
    return id;
}

lorac_status lorac_generate(lorac_model *m, const int *prompt, int n, const lorac_gen_opts *o, lorac_token_fn fn,
                            void *ctx, int **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (n <= 0) return lorac_fail(LORAC_ERR_ARG, "generation needs at least one prompt token");
    const int ctxlen = m->cfg.n_ctx, V = m->cfg.vocab;
    int *seq, *gen;
    LORAC_TRY(lorac_alloc((void **)&seq, (size_t)(n + o->max_new), sizeof(int), "sequence"));
    lorac_status st = lorac_alloc((void **)&gen, (size_t)(o->max_new > 0 ? o->max_new : 1), sizeof(int), "generated ids");
    if (st != LORAC_OK) {
        free(seq);
        return st;
    }
    memcpy(seq, prompt, sizeof(int) * (size_t)n);
    int len = n, ng = 0, was = m->training;
    lorac_rng rng;
    lorac_rng_seed(&rng, o->seed);
    m->training = 0;
    while (ng < o->max_new) {
        int start = len > ctxlen ? len - ctxlen : 0;
        st = lorac_model_forward(m, seq + start, NULL, 1, len - start, LORAC_FWD_LM_LAST);
        if (st != LORAC_OK) break;
        int id = lorac_sample(m->acts.logits, V, o, &rng);
        int stop = 0;
        for (int i = 0; i < o->n_stop; i++) stop |= id == o->stop[i];
        if (stop) break;
        seq[len++] = id;
        gen[ng++] = id;
        if (fn && fn(id, ctx)) break;
    }
    m->training = was;
    free(seq);
    if (st != LORAC_OK) {
        free(gen);
        return st;
    }
    *out = gen;
    *n_out = ng;
    return LORAC_OK;
}
