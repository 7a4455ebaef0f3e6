/* test_model_dropout - a model's own dropout in training
 * (lorac_model.model_dropout, where transformers applies it: encoders'
 * hidden, attention and classifier dropout, encoder.c; GPT-2's and Phi-3's
 * residual, attention and embedding dropout, decoder.c).
 *
 * On tiny BERT models (pooler + tanh on [CLS], DistilBERT's pre_classifier +
 * ReLU, mean pooling; dropout probabilities 0.2 / 0.3 / 0.25) and tiny
 * decoders (GPT-2 with resid / attn / embd 0.2 / 0.3 / 0.25, with and
 * without gradient checkpointing, which replays the masks; a Llama with
 * attention_dropout 0.3 and GQA; a Phi-3 with resid_pdrop 0.2 and
 * attention_dropout 0.3), with LoRA on every Linear (B nonzero), a trainable
 * head (and GPT-2's trainable position embeddings, which only the embedding
 * dropout's backward reaches):
 *  1. backward is the gradient of forward with the masks fixed: the
 *     directional derivative g . u along random directions u of all the
 *     trainable values against the central difference
 *     (L(w + e u) - L(w - e u)) / 2e in float (e = STEP / |u|_2), to 2%
 *     of the larger; the masks are fixed by restoring the model's RNG
 *     before each forward (the step's key is drawn from it);
 *  2. dropout does something in training: the loss with model_dropout on
 *     differs from the loss with it off, and a second step (new key) differs
 *     again;
 *  3. it does nothing at inference: training off, the logits with
 *     model_dropout on equal those with it off bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora.h"
#include "models/model.h"
#include "ops/ops.h"
#include "testutil.h"
#include "train/batch.h"

#define STEP 1e-3 /* the central difference's step, as a length in the space of trainable values */

typedef struct {
    const float *u; /* the direction, over all trainable values in lorac_for_each_trainable's order */
    size_t at;
    float step;
    double dot; /* sum of grad * u */
} walk;

static void move_one(lorac_weight *w, void *ctx) {
    walk *k = ctx;
    for (size_t i = 0; i < w->n; i++) w->data[i] += k->step * k->u[k->at + i];
    k->at += w->n;
}

static void dot_one(lorac_weight *w, void *ctx) {
    walk *k = ctx;
    for (size_t i = 0; i < w->n; i++) k->dot += (double)w->grad[i] * k->u[k->at + i];
    k->at += w->n;
}

static void count_one(lorac_weight *w, void *ctx) { *(size_t *)ctx += w->n; }

static void move(lorac_model *m, const float *u, float step) {
    walk k = {u, 0, step, 0};
    lorac_for_each_trainable(m, move_one, &k);
}

/* The mean cross-entropy of batch b, the model's RNG restored to r first
 * (so the step's dropout key, and with it every mask, is the same). */
static double loss_at(lorac_model *m, const lorac_batch *b, const lorac_rng *r, int backward) {
    m->rng = *r;
    if (backward) test_zero_grads(m);
    CHECK_OK(lorac_batch_forward(m, b, LORAC_FWD_CLS));
    int cnt = 0;
    const double loss = op_xent(backward ? m->acts.cls_logits : NULL, m->acts.cls_logits, b->labels, b->B, m->n_classes,
                                1.0f / b->B, &cnt);
    if (backward) lorac_batch_backward(m, b, LORAC_FWD_CLS);
    return loss / b->B;
}

static lorac_config tiny_bert(int distil, lorac_pool pool) {
    lorac_config c;
    memset(&c, 0, sizeof c);
    c.arch = LORAC_ARCH_BERT;
    strcpy(c.model_type, distil ? "distilbert" : "bert");
    c.n_ctx = 40;
    c.bos_id = c.eos_id = c.pad_id = -1;
    c.vocab = 89, c.dim = 32, c.n_layer = 2, c.n_head = 4, c.n_kv_head = 4, c.ffn_dim = 64;
    c.norm_eps = 1e-12f, c.attn_bias = c.mlp_bias = 1, c.pool = pool, c.distil = distil;
    c.hidden_dropout = 0.2f, c.attn_dropout = 0.3f, c.cls_dropout = 0.25f;
    CHECK_OK(lorac_config_check(&c, c.model_type));
    return c;
}

static lorac_config tiny_decoder(const char *type) {
    lorac_config c;
    memset(&c, 0, sizeof c);
    strcpy(c.model_type, type);
    c.n_ctx = 40;
    c.bos_id = c.eos_id = c.pad_id = -1;
    c.vocab = 89, c.dim = 32, c.n_layer = 2, c.n_head = 4, c.n_kv_head = 4, c.ffn_dim = 64, c.norm_eps = 1e-5f;
    if (!strcmp(type, "gpt2")) {
        c.arch = LORAC_ARCH_GPT2;
        c.attn_bias = c.mlp_bias = 1;
        c.hidden_dropout = 0.2f, c.attn_dropout = 0.3f, c.embd_dropout = 0.25f;
    } else {
        c.arch = LORAC_ARCH_LLAMA;
        c.rope_theta = 10000;
        c.n_kv_head = 2;
        c.attn_dropout = 0.3f;
        c.fused = !strcmp(type, "phi3");
        if (c.fused) c.hidden_dropout = 0.2f;
    }
    CHECK_OK(lorac_config_check(&c, c.model_type));
    return c;
}

static void check(const char *what, lorac_config cfg, int grad_ckpt) {
    lorac_model *m;
    CHECK_OK(lorac_model_create_random(&cfg, 5, &m));
    if (grad_ckpt) CHECK_OK(lorac_model_set_grad_ckpt(m, 1));
    if (m->wpe) CHECK_OK(lorac_weight_make_trainable(m->wpe));
    CHECK_OK(lorac_model_add_head(m, 3, 1, LORAC_HEAD_INIT_TORCH, 9));
    lorac_lora_config lc;
    lorac_lora_config_default(&lc);
    lc.r = 4;
    lc.alpha = 8;
    CHECK_OK(lorac_lora_parse_list("all-linear", lc.targets, &lc.n_targets, "targets"));
    CHECK_OK(lorac_lora_apply(m, &lc, NULL));
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].lora)
            for (size_t j = 0; j < m->lin[i].lora->B.n; j++) m->lin[i].lora->B.data[j] = 0.05f * (float)((int)(j % 11) - 5);
    if (!m->head->W->grad) CHECK_OK(lorac_weight_make_trainable(m->head->W));

    lorac_tokenized t = test_random_tokenized(6, cfg.vocab, 3);
    int order[6] = {0, 1, 2, 3, 4, 5};
    lorac_batch b = {0};
    CHECK_OK(lorac_batch_make_packed(&b, &t, order, 0, 6, LORAC_TASK_CLS));

    size_t n = 0;
    lorac_for_each_trainable(m, count_one, &n);
    float *u = malloc(n * sizeof *u);
    lorac_rng dir, r0;
    lorac_rng_seed(&dir, 77);
    lorac_rng_seed(&r0, 1234);

    /* 2. on vs off in training, and a new key per step */
    m->training = 1;
    m->model_dropout = 0;
    const double off = loss_at(m, &b, &r0, 0);
    m->model_dropout = 1;
    const double on = loss_at(m, &b, &r0, 0);
    lorac_rng r1;
    lorac_rng_seed(&r1, 4321);
    const double on2 = loss_at(m, &b, &r1, 0);
    CHECK(on != off && on2 != on, "%s: training loss with dropout %.9g, again with a new key %.9g, without %.9g", what,
          on, on2, off);

    /* 1. directional derivatives with the masks fixed */
    double worst = 0;
    for (int trial = 0; trial < 3; trial++) {
        for (size_t i = 0; i < n; i++) u[i] = lorac_rng_normal(&dir);
        (void)loss_at(m, &b, &r0, 1);
        walk k = {u, 0, 0, 0};
        lorac_for_each_trainable(m, dot_one, &k);
        double unorm = 0;
        for (size_t i = 0; i < n; i++) unorm += (double)u[i] * u[i];
        const float e = (float)(STEP / sqrt(unorm));
        move(m, u, e);
        const double lp = loss_at(m, &b, &r0, 0);
        move(m, u, -2 * e);
        const double lm = loss_at(m, &b, &r0, 0);
        move(m, u, e);
        const double fd = (lp - lm) / (2.0 * e), rel = fabs(fd - k.dot) / fmax(fabs(fd), fabs(k.dot));
        worst = fmax(worst, rel);
        CHECK(rel <= 2e-2, "%s: direction %d: backward %.6g, central difference %.6g", what, trial, k.dot, fd);
    }

    /* 3. inference: no dropout whatever model_dropout says */
    m->training = 0;
    CHECK_OK(lorac_batch_forward(m, &b, LORAC_FWD_CLS));
    float *z1 = malloc(sizeof(float) * 6 * 3);
    memcpy(z1, m->acts.cls_logits, sizeof(float) * 6 * 3);
    m->model_dropout = 0;
    CHECK_OK(lorac_batch_forward(m, &b, LORAC_FWD_CLS));
    CHECK(!memcmp(z1, m->acts.cls_logits, sizeof(float) * 6 * 3), "%s: inference logits change with model_dropout", what);
    printf("%-20s loss %.5f without dropout, %.5f / %.5f with (two keys); %zu values, worst |fd - grad| %.2g\n", what,
           off, on, on2, n, worst);
    free(u), free(z1);
    lorac_batch_free(&b);
    lorac_tokenized_free(&t);
    lorac_model_free(m);
}

int main(void) {
    check("bert pooler", tiny_bert(0, LORAC_POOL_CLS), 0);
    check("distilbert", tiny_bert(1, LORAC_POOL_CLS), 0);
    check("bert mean pooling", tiny_bert(0, LORAC_POOL_MEAN), 0);
    check("gpt2", tiny_decoder("gpt2"), 0);
    check("gpt2 checkpointed", tiny_decoder("gpt2"), 1);
    check("llama attention", tiny_decoder("llama"), 0);
    check("phi3", tiny_decoder("phi3"), 0);
    return test_summary("model_dropout");
}
