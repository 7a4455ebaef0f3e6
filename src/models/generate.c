/* generate.c - sampling (greedy, temperature, top-k, top-p) and the
 * generation loops: over a KV cache, one or several sequences decoding
 * together (lorac_generate_batch), and the reference that recomputes the
 * whole sequence for every token (lorac_generate_recompute).
 *
 * Every loop does per step: logits of the last token -> sample -> a stop
 * token ends the sequence (not emitted) -> append, call back (non-zero ends
 * it) -> stop at max_new. The sequence the model reads is cut to its
 * context: the last n_ctx tokens. With a cache, a step appends one row to
 * the slot; when the slot is full the last n_ctx tokens are read afresh (a
 * window that slid has every position changed, so nothing cached is valid). */
#include "models/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "models/kvcache.h"

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


/* One sequence's state in a generation loop. */
typedef struct gen_state {
    int *seq, len; /* prompt then generated tokens */
    int ng;        /* generated so far (seq[len - ng ..]) */
    int active;
    lorac_rng rng;
} gen_state;

/* Sample the next token of sequence q from its logits; returns 1 while it goes on. */
static int gen_step(lorac_gen_seq *q, gen_state *g, float *logits, int V) {
    const lorac_gen_opts *o = q->opts;
    const int id = lorac_sample(logits, V, o, &g->rng);
    for (int i = 0; i < o->n_stop; i++)
        if (id == o->stop[i]) return 0;
    g->seq[g->len++] = id;
    q->out[g->ng++] = id;
    if (q->fn && q->fn(id, q->ctx)) return 0;
    return g->ng < o->max_new;
}

static lorac_status gen_begin(lorac_gen_seq *q, gen_state *g) {
    memset(g, 0, sizeof *g);
    q->out = NULL;
    q->n_out = q->n_prompt = 0;
    q->prompt_s = q->gen_s = 0;
    if (!q->prompt || q->n <= 0 || !q->opts)
        return lorac_fail(LORAC_ERR_ARG, "generation needs at least one prompt token and its options");
    const int max_new = q->opts->max_new > 0 ? q->opts->max_new : 0;
    LORAC_TRY(lorac_alloc((void **)&g->seq, (size_t)q->n + max_new, sizeof(int), "sequence"));
    LORAC_TRY(lorac_alloc((void **)&q->out, (size_t)(max_new > 0 ? max_new : 1), sizeof(int), "generated ids"));
    memcpy(g->seq, q->prompt, sizeof(int) * (size_t)q->n);
    g->len = q->n;
    g->active = max_new > 0;
    lorac_rng_seed(&g->rng, q->opts->seed);
    return LORAC_OK;
}

/* Ends the loop for every sequence: outs kept on success, freed on error. */
static void gen_end(lorac_gen_seq *q, gen_state *g, lorac_status st) {
    free(g->seq);
    g->seq = NULL;
    q->n_out = g->ng;
    if (st != LORAC_OK) {
        free(q->out);
        q->out = NULL;
        q->n_out = 0;
    }
}

lorac_status lorac_generate_batch(lorac_model *m, lorac_gen_seq *seqs, int n, lorac_lora *const *const *adapters) {
    if (!m || !seqs || n < 1) return lorac_fail(LORAC_ERR_ARG, "generate: %d sequences; hint: at least one", n);
    const int ctxlen = m->cfg.n_ctx, V = m->cfg.vocab;
    gen_state *g = calloc((size_t)n, sizeof *g);
    int *slot = malloc(sizeof(int) * (size_t)n), *offs = malloc(sizeof(int) * ((size_t)n + 1)), *which = NULL;
    int *ids = NULL;
    float *logits = NULL;
    lorac_lora *const **ads = adapters ? malloc(sizeof *ads * (size_t)n) : NULL;
    lorac_kv *kv = NULL;
    lorac_status st = g && slot && offs && (!adapters || ads) ? LORAC_OK : lorac_fail(LORAC_ERR_NOMEM, "generation state");
    int max_len = 1; /* the longest sequence the model reads: at most its context */
    for (int i = 0; i < n; i++) seqs[i].out = NULL;
    for (int i = 0; st == LORAC_OK && i < n; i++) {
        st = gen_begin(&seqs[i], &g[i]);
        const int want = st == LORAC_OK ? seqs[i].n + seqs[i].opts->max_new : 1;
        max_len = want > max_len ? (want < ctxlen ? want : ctxlen) : max_len;
    }
    if (st == LORAC_OK) st = lorac_alloc((void **)&which, (size_t)n, sizeof(int), "generation state");
    if (st == LORAC_OK) st = lorac_alloc((void **)&ids, (size_t)n * max_len, sizeof(int), "generation ids");
    if (st == LORAC_OK) st = lorac_alloc((void **)&logits, (size_t)n * V, sizeof(float), "logits");
    if (st == LORAC_OK) st = lorac_kv_create(m, n, max_len, &kv);
    const double t0 = lorac_now();
    double t_prompt = 0;
    for (int step = 0; st == LORAC_OK; step++) {
        /* the call: each active sequence's new rows (its prompt, its last token, or its window afresh) */
        int k = 0;
        offs[0] = 0;
        for (int i = 0; i < n; i++) {
            if (!g[i].active) continue;
            int from = g[i].len - 1;
            if (lorac_kv_len(kv, i) == 0 || lorac_kv_len(kv, i) == max_len) {
                lorac_kv_reset(kv, i);
                from = g[i].len > max_len ? g[i].len - max_len : 0;
            }
            memcpy(ids + offs[k], g[i].seq + from, sizeof(int) * (size_t)(g[i].len - from));
            if (step == 0) seqs[i].n_prompt = g[i].len - from;
            slot[k] = i;
            if (ads) ads[k] = adapters[i];
            which[k] = i;
            offs[k + 1] = offs[k] + g[i].len - from;
            k++;
        }
        if (k == 0) break;
        st = lorac_model_decode(m, kv, k, slot, ids, offs, ads, logits);
        if (st != LORAC_OK) break;
        const double now = lorac_now();
        if (step == 0) t_prompt = now;
        for (int j = 0; j < k; j++) {
            const int i = which[j];
            if (!gen_step(&seqs[i], &g[i], logits + (size_t)j * V, V)) {
                g[i].active = 0;
                seqs[i].gen_s = lorac_now() - t_prompt;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (g && g[i].seq) gen_end(&seqs[i], &g[i], st);
        if (t_prompt > 0) seqs[i].prompt_s = t_prompt - t0;
    }
    lorac_kv_free(kv);
    free(g), free(slot), free(offs), free(which), free(ids), free(logits), free((void *)ads);
    return st;
}

lorac_status lorac_generate(lorac_model *m, const int *prompt, int n, const lorac_gen_opts *o, lorac_token_fn fn,
                            void *ctx, int **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    lorac_gen_seq q = {.prompt = prompt, .n = n, .opts = o, .fn = fn, .ctx = ctx};
    LORAC_TRY(lorac_generate_batch(m, &q, 1, NULL));
    *out = q.out;
    *n_out = q.n_out;
    return LORAC_OK;
}

lorac_status lorac_generate_recompute(lorac_model *m, lorac_gen_seq *q) {
    gen_state g;
    lorac_status st = gen_begin(q, &g);
    const int ctxlen = m->cfg.n_ctx, was = m->training;
    m->training = 0;
    const double t0 = lorac_now();
    double t_prompt = t0;
    while (st == LORAC_OK && g.active) {
        const int start = g.len > ctxlen ? g.len - ctxlen : 0;
        st = lorac_model_forward(m, g.seq + start, NULL, 1, g.len - start, LORAC_FWD_LM_LAST);
        if (st != LORAC_OK) break;
        if (g.ng == 0) {
            t_prompt = lorac_now();
            q->n_prompt = g.len - start;
            q->prompt_s = t_prompt - t0;
        }
        g.active = gen_step(q, &g, m->acts.logits, m->cfg.vocab);
    }
    q->gen_s = lorac_now() - t_prompt;
    m->training = was;
    gen_end(q, &g, st);
    return st;
}
