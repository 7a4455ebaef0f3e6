/* test_grad_ckpt - gradient checkpointing gives exactly the gradients of the
 * ordinary backward.
 *
 * For a small random GPT-2 (fused c_attn, GELU) and a small random Llama
 * (GQA, RoPE, SwiGLU), each with LoRA on every Linear and LoRA dropout 0.1
 * (so the replayed forward must reuse the dropout masks), in classification
 * and language-model mode, and on a padded batch:
 *   1. forward + loss + backward with checkpointing off, then on, from the
 *      same weights and the same dropout random state;
 *   2. the losses and every trainable gradient must be bit-identical: the
 *      replay does the same arithmetic on the same inputs;
 *   3. with checkpointing on, layers above 0 share every activation buffer
 *      but their input (what makes it save memory); off, each layer owns its
 *      saved activations again, and only ln1, ln2 and h (recomputed in
 *      backward either way) are one buffer for all layers.
 * A wrong replay (a layer recomputed from the wrong input, a fresh dropout
 * mask, a stale buffer) changes the gradients and fails 2. */
#include <stdlib.h>
#include <string.h>

#include "lora/lora.h"
#include "models/model.h"
#include "ops/ops.h"
#include "testutil.h"

typedef struct {
    float *buf;
    size_t n, cap;
} grads;

static void collect(lorac_weight *w, void *ctx) {
    grads *g = ctx;
    if (g->n + w->n > g->cap) {
        g->cap = (g->n + w->n) * 2;
        g->buf = realloc(g->buf, sizeof(float) * g->cap);
    }
    memcpy(g->buf + g->n, w->grad, sizeof(float) * w->n);
    g->n += w->n;
}

static void zero(lorac_weight *w, void *ctx) {
    (void)ctx;
    memset(w->grad, 0, sizeof(float) * w->n);
}

/* One forward + loss + backward; the gradients into *g, the loss returned. */
static float step(lorac_model *m, const int *ids, const uint8_t *mask, int B, int T, lorac_fwd_mode mode,
                  const lorac_rng *rng0, grads *g) {
    lorac_for_each_trainable(m, zero, NULL);
    m->rng = *rng0;
    m->training = 1;
    CHECK_OK(lorac_model_forward(m, ids, mask, B, T, mode));
    float loss = 0;
    int cnt = 0;
    if (mode == LORAC_FWD_CLS) {
        int labels[8];
        for (int b = 0; b < B; b++) labels[b] = b % m->n_classes;
        loss = (float)op_xent(m->acts.cls_logits, m->acts.cls_logits, labels, B, m->n_classes, 1.0f / B, &cnt);
    } else {
        const int N = B * T;
        int *tg = malloc(sizeof(int) * N);
        for (int i = 0; i < N; i++) tg[i] = i + 1 < N && (!mask || mask[i + 1]) ? ids[i + 1] : -1;
        loss = (float)op_xent(m->acts.logits, m->acts.logits, tg, N, m->cfg.vocab, 1.0f / N, &cnt);
        free(tg);
    }
    lorac_model_backward(m, ids, B, T, mode);
    g->n = 0;
    lorac_for_each_trainable(m, collect, g);
    return loss;
}

static lorac_config tiny(int llama) {
    lorac_config c;
    memset(&c, 0, sizeof c);
    if (llama) {
        c.arch = LORAC_ARCH_LLAMA;
        strcpy(c.model_type, "llama");
        c.vocab = 97, c.n_ctx = 64, c.dim = 48, c.n_layer = 3, c.n_head = 6, c.n_kv_head = 2, c.ffn_dim = 80;
        c.norm_eps = 1e-5f, c.rope_theta = 10000, c.tied = 1;
    } else {
        c.arch = LORAC_ARCH_GPT2;
        strcpy(c.model_type, "gpt2");
        c.vocab = 101, c.n_ctx = 64, c.dim = 32, c.n_layer = 3, c.n_head = 4, c.n_kv_head = 4, c.ffn_dim = 128;
        c.norm_eps = 1e-5f, c.tied = 1, c.attn_bias = c.mlp_bias = 1;
    }
    c.bos_id = c.eos_id = c.pad_id = -1;
    CHECK_OK(lorac_config_check(&c, c.model_type));
    return c;
}

static void check_model(int llama, lorac_fwd_mode mode) {
    const char *what = llama ? "llama" : "gpt2";
    const char *mname = mode == LORAC_FWD_CLS ? "cls" : "lm";
    lorac_config cfg = tiny(llama);
    lorac_model *m;
    CHECK_OK(lorac_model_create_random(&cfg, 7, &m));
    if (mode == LORAC_FWD_CLS) CHECK_OK(lorac_model_add_head(m, 3, 1, LORAC_HEAD_INIT_TORCH, 11));
    lorac_lora_config lc;
    lorac_lora_config_default(&lc);
    lc.r = 4;
    lc.alpha = 8;
    lc.dropout = 0.1f;
    CHECK_OK(lorac_lora_parse_list("all-linear", lc.targets, &lc.n_targets, "targets"));
    CHECK_OK(lorac_lora_apply(m, &lc, NULL));
    /* B fresh from zero would hide the LoRA path in the gradients of A */
    for (int i = 0; i < m->n_lin; i++) {
        lorac_lora *l = m->lin[i].lora;
        if (!l) continue;
        for (size_t j = 0; j < l->B.n; j++) l->B.data[j] = 0.01f * (float)((int)(j % 13) - 6);
    }
    if (mode == LORAC_FWD_CLS && m->head->W->grad == NULL) CHECK_OK(lorac_weight_make_trainable(m->head->W));

    enum { B = 3, T = 9 };
    int ids[B * T];
    uint8_t mask[B * T];
    for (int i = 0; i < B * T; i++) {
        ids[i] = (i * 37 + 5) % cfg.vocab;
        mask[i] = (i % T) < T - 2 * (i / T); /* rows of 9, 7 and 5 real tokens */
    }
    lorac_rng rng0;
    lorac_rng_seed(&rng0, 99);
    grads g0 = {0}, g1 = {0}, g2 = {0};

    CHECK_OK(lorac_model_set_grad_ckpt(m, 0));
    const float l0 = step(m, ids, mask, B, T, mode, &rng0, &g0);
    CHECK(!m->acts.shared && m->acts.layer[1].qkv != m->acts.layer[0].qkv && m->acts.layer[1].h == m->acts.layer[0].h, "%s %s: without checkpointing each layer owns qkv, and h is one buffer for all",
          what, mname);
    CHECK_OK(lorac_model_set_grad_ckpt(m, 1));
    const float l1 = step(m, ids, mask, B, T, mode, &rng0, &g1);
    CHECK(m->acts.shared && m->acts.layer[2].qkv == m->acts.layer[0].qkv &&
              m->acts.layer[2].x_in != m->acts.layer[0].x_in,
          "%s %s: with checkpointing layers share all buffers but x_in", what, mname);
    CHECK(l0 == l1, "%s %s: loss %.9g with checkpointing, %.9g without", what, mname, l1, l0);
    CHECK(g0.n == g1.n && g0.n > 0, "%s %s: %zu gradient values, %zu without", what, mname, g1.n, g0.n);
    CHECK(g0.n == g1.n && !memcmp(g0.buf, g1.buf, sizeof(float) * g0.n),
          "%s %s: gradients with checkpointing differ from the ordinary backward", what, mname);
    /* and back off again */
    CHECK_OK(lorac_model_set_grad_ckpt(m, 0));
    step(m, ids, mask, B, T, mode, &rng0, &g2);
    CHECK(!m->acts.shared && g2.n == g0.n && !memcmp(g0.buf, g2.buf, sizeof(float) * g0.n),
          "%s %s: checkpointing switched off again: same gradients", what, mname);
    printf("%s %s: loss %.6f, %zu gradient values identical with and without checkpointing\n", what, mname, l0, g0.n);
    free(g0.buf), free(g1.buf), free(g2.buf);
    lorac_model_free(m);
}

int main(void) {
    for (int llama = 0; llama < 2; llama++) {
        check_model(llama, LORAC_FWD_CLS);
        check_model(llama, LORAC_FWD_LM);
    }
    /* encoders refuse it with a message */
    lorac_config c = tiny(0);
    lorac_model *m;
    CHECK_OK(lorac_model_create_random(&c, 1, &m));
    m->cfg.arch = LORAC_ARCH_BERT; /* only the flag is consulted */
    CHECK(lorac_model_set_grad_ckpt(m, 1) == LORAC_ERR_UNSUPPORTED, "an encoder refuses checkpointing");
    m->cfg.arch = LORAC_ARCH_GPT2;
    lorac_model_free(m);
    return test_summary("test_grad_ckpt");
}
