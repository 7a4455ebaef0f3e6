/* encoder.c - forward and backward of the BERT-family encoders (BERT,
 * DistilBERT, MiniLM), op by op like decoder.c.
 *
 * With N = B*T token rows, C = hidden, F = MLP size:
 *   x0 = LN_emb(word[id] + position[t] + token_type[0])
 *   per layer (post-LN, unlike GPT-2):
 *     a  = o(attention(q(x), k(x), v(x)))      bidirectional, padded keys masked
 *     h1 = LN1(x + a)
 *     x' = LN2(h1 + down(gelu_erf(fc(h1))))
 *   pooled = x_last[CLS]                       (BERT: tanh(pooler.dense(.)),
 *                                               DistilBERT: relu(pre_classifier(.)))
 *          or mean of x_last over real tokens  (sentence-transformers)
 *   logits = classifier(pooled)
 * In training with m->model_dropout on, the config's dropouts apply where
 * transformers puts them (hashed masks, op_dropout_hash: nothing stored,
 * backward applies the same call to the gradient):
 *   x0 = dropout_h(x0)                      after the embeddings' LayerNorm
 *   attention probabilities: dropout_a      (inside the attention op)
 *   h1 = LN1(x + dropout_h(a)),  x' = LN2(h1 + dropout_h(down(.)))
 *   classifier(dropout_c(feature))          with a pooler / pre_classifier
 *                                           (BertForSequenceClassification,
 *                                           DistilBERT); none after mean pooling
 * Otherwise (inference, or model_dropout off) there is none; LoRA dropout is
 * separate. Backward walks the list in reverse; gradients accumulate (+=) and
 * frozen weights get none. */
#include <math.h>
#include <string.h>

#include "models/model_internal.h"
#include "ops/ops.h"

static void layernorm_fwd(const lorac_model *m, const lorac_norm *n, float *y, float *mean, float *rstd, const float *x, int N) {
    op_layernorm_fwd(y, mean, rstd, x, n->g->data, n->b->data, N, m->cfg.dim, m->cfg.norm_eps);
}

static void layernorm_bwd(const lorac_model *m, const lorac_norm *n, float *dx, const float *dy, const float *x,
                          const float *mean, const float *rstd, int N) {
    op_layernorm_bwd(dx, n->g->grad, n->b->grad, dy, x, mean, rstd, n->g->data, N, m->cfg.dim);
}

/* pooled [B, C] from the last layer's output x [N, C]: the first row of
 * each sequence ([CLS]) or the mean of its real rows (rows offs[b] ..
 * offs[b+1]-1 of the last forward, padded or packed). */
static void pool_fwd(const lorac_model *m, float *pooled, const float *x) {
    const lorac_acts *a = &m->acts;
    const int C = m->cfg.dim;
    for (int b = 0; b < a->n_seq; b++) {
        float *p = pooled + (size_t)b * C;
        if (m->cfg.pool != LORAC_POOL_MEAN) {
            memcpy(p, x + (size_t)a->offs[b] * C, sizeof(float) * C);
            continue;
        }
        memset(p, 0, sizeof(float) * C);
        int n = 0;
        for (int t = a->offs[b]; t < a->offs[b + 1]; t++) {
            if (!a->keymask[t]) continue;
            op_acc(p, x + (size_t)t * C, (size_t)C);
            n++;
        }
        if (n) op_scale(p, 1.0f / (float)n, (size_t)C);
    }
}

static void pool_bwd(const lorac_model *m, float *dx, const float *dpooled) {
    const lorac_acts *a = &m->acts;
    const int C = m->cfg.dim;
    for (int b = 0; b < a->n_seq; b++) {
        const float *dp = dpooled + (size_t)b * C;
        if (m->cfg.pool != LORAC_POOL_MEAN) {
            op_acc(dx + (size_t)a->offs[b] * C, dp, (size_t)C);
            continue;
        }
        int n = 0;
        for (int t = a->offs[b]; t < a->offs[b + 1]; t++) n += a->keymask[t] != 0;
        for (int t = a->offs[b]; t < a->offs[b + 1] && n; t++) {
            if (!a->keymask[t]) continue;
            float *d = dx + (size_t)t * C;
            for (int c = 0; c < C; c++) d[c] += dp[c] / (float)n;
        }
    }
}

/* BERT's pooler uses tanh, DistilBERT's pre_classifier ReLU */
static int pre_is_tanh(const lorac_model *m) { return !m->cfg.distil; }

lorac_status lorac_encoder_forward(lorac_model *m, const int *ids, lorac_fwd_mode mode) {
    const lorac_config *c = &m->cfg;
    lorac_acts *a = &m->acts;
    const int N = a->n_rows, B = a->n_seq, C = c->dim, F = c->ffn_dim;
    if (mode == LORAC_FWD_LM || mode == LORAC_FWD_LM_LAST)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: %s is an encoder and has no language-model head; hint: use --task cls",
                          m->path, c->model_type);
    /* embeddings: word + position + token type 0, then LayerNorm */
    lorac_model_embed_tokens(m, a->emb, ids, N);
    op_embed_fwd(a->emb, m->wpe->data, a->pos, N, C, 1);
    if (m->tte)
        for (int i = 0; i < N; i++) op_acc(a->emb + (size_t)i * C, m->tte->data, (size_t)C);
    layernorm_fwd(m, &m->ln_emb, a->layer[0].x_in, a->emb_mean, a->emb_rstd, a->emb, N);
    const float ph = lorac_model_drop_p(m, c->hidden_dropout), pc = lorac_model_drop_p(m, c->cls_dropout);
    if (m->training && m->model_dropout) m->drop_seed = lorac_rng_u64(&m->rng); /* this step's masks */
    op_dropout_hash(a->layer[0].x_in, (size_t)N * C, ph, lorac_drop_key(m, -1, LORAC_DROP_EMB));

    for (int l = 0; l < c->n_layer; l++) {
        lorac_layer *L = &m->layers[l];
        lorac_layer_acts *s = &a->layer[l];
        float *x_next = l + 1 < c->n_layer ? a->layer[l + 1].x_in : a->x_out;
        qkv_view v = qkv_split(c, s->qkv, N);
        lorac_linear_fwd(L->q, v.q, s->x_in, N, &m->rng, m->training);
        lorac_linear_fwd(L->k, v.k, s->x_in, N, &m->rng, m->training);
        lorac_linear_fwd(L->v, v.v, s->x_in, N, &m->rng, m->training);
        lorac_layer_attention_fwd(m, l, 0);
        lorac_linear_fwd(L->o, s->x_mid, s->atty, N, &m->rng, m->training);
        op_dropout_hash(s->x_mid, (size_t)N * C, ph, lorac_drop_key(m, l, LORAC_DROP_ATT_OUT));
        op_acc(s->x_mid, s->x_in, (size_t)N * C);
        layernorm_fwd(m, &L->ln1, s->ln1, s->ln1_mean, s->ln1_rstd, s->x_mid, N);
        lorac_linear_fwd(L->fc, s->fc, s->ln1, N, &m->rng, m->training);
        op_gelu_erf_fwd(s->h, s->fc, (size_t)N * F);
        lorac_linear_fwd(L->down, s->ln2, s->h, N, &m->rng, m->training);
        op_dropout_hash(s->ln2, (size_t)N * C, ph, lorac_drop_key(m, l, LORAC_DROP_MLP_OUT));
        op_acc(s->ln2, s->ln1, (size_t)N * C);
        layernorm_fwd(m, &L->ln2, x_next, s->ln2_mean, s->ln2_rstd, s->ln2, N);
    }
    if (mode == LORAC_FWD_HIDDEN) {
        memcpy(a->lnf, a->x_out, sizeof(float) * (size_t)N * C);
        return LORAC_OK;
    }
    pool_fwd(m, a->pooled, a->x_out);
    const float *feat = a->pooled;
    if (m->pre_head && c->pool == LORAC_POOL_CLS) {
        lorac_linear_fwd(m->pre_head, a->pre, a->pooled, B, &m->rng, m->training);
        if (pre_is_tanh(m)) op_tanh_fwd(a->pre_act, a->pre, (size_t)B * C);
        else op_relu_fwd(a->pre_act, a->pre, (size_t)B * C);
        op_dropout_hash(a->pre_act, (size_t)B * C, pc, lorac_drop_key(m, -1, LORAC_DROP_HEAD));
        feat = a->pre_act;
    }
    lorac_linear_fwd(m->head, a->cls_logits, feat, B, &m->rng, m->training);
    return LORAC_OK;
}

static int linear_trains(const lorac_linear *L) { return L->lora || L->W->grad || (L->b && L->b->grad); }
static int norm_trains(const lorac_norm *n) { return n->g->grad || (n->b && n->b->grad); }

/* The lowest layer that has anything to train: backward stops there (head
 * only: no layer at all). n_layer when nothing below the head trains; -1
 * when the embeddings train too. */
static int lowest_trainable(const lorac_model *m) {
    if (m->wte->grad || m->wte_lora || m->wpe->grad || (m->tte && m->tte->grad) || norm_trains(&m->ln_emb)) return -1;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const lorac_layer *L = &m->layers[l];
        if (linear_trains(L->q) || linear_trains(L->k) || linear_trains(L->v) || linear_trains(L->o) ||
            linear_trains(L->fc) || linear_trains(L->down) || norm_trains(&L->ln1) || norm_trains(&L->ln2))
            return l;
    }
    return m->cfg.n_layer;
}

void lorac_encoder_backward(lorac_model *m, const int *ids) {
    const lorac_config *c = &m->cfg;
    lorac_acts *a = &m->acts;
    const int N = a->n_rows, B = a->n_seq, C = c->dim, F = c->ffn_dim;
    const size_t NC = (size_t)N * C, big = (size_t)N * (F > C ? F : C);
    float *d_res = a->d_res, *d_sum = a->d_tmp;
    float *d_h = a->d_big, *d_fc = a->d_big + big, *d_h1 = a->d_big + 2 * big;
    const float ph = lorac_model_drop_p(m, c->hidden_dropout), pc = lorac_model_drop_p(m, c->cls_dropout);

    /* head -> d(last layer output) */
    memset(a->d_pooled, 0, sizeof(float) * (size_t)B * C);
    if (m->pre_head && c->pool == LORAC_POOL_CLS) {
        memset(a->d_pre, 0, sizeof(float) * (size_t)B * C);
        lorac_linear_bwd(m->head, a->d_pre, a->cls_logits, a->pre_act, B);
        op_dropout_hash(a->d_pre, (size_t)B * C, pc, lorac_drop_key(m, -1, LORAC_DROP_HEAD));
        /* d(pre-activation), in place (pre_act may be dropped out: tanh' from pre itself then) */
        if (pre_is_tanh(m) && pc > 0) {
            for (size_t i = 0; i < (size_t)B * C; i++) {
                const float t = tanhf(a->pre[i]);
                a->d_pre[i] *= 1.0f - t * t;
            }
        } else if (pre_is_tanh(m)) {
            for (size_t i = 0; i < (size_t)B * C; i++) a->d_pre[i] *= 1.0f - a->pre_act[i] * a->pre_act[i];
        } else {
            for (size_t i = 0; i < (size_t)B * C; i++) a->d_pre[i] = a->pre[i] > 0 ? a->d_pre[i] : 0.0f;
        }
        lorac_linear_bwd(m->pre_head, a->d_pooled, a->d_pre, a->pooled, B);
    } else {
        lorac_linear_bwd(m->head, a->d_pooled, a->cls_logits, a->pooled, B);
    }
    const int lowest = lowest_trainable(m);
    if (lowest >= c->n_layer) return; /* nothing below the head trains */
    memset(d_res, 0, NC * sizeof(float));
    pool_bwd(m, d_res, a->d_pooled);

    for (int l = c->n_layer - 1; l >= (lowest > 0 ? lowest : 0); l--) {
        lorac_layer *L = &m->layers[l];
        lorac_layer_acts *s = &a->layer[l];
        /* LN2: d_res = dL/d(layer output) -> d_sum = dL/d(h1 + mlp) */
        memset(d_sum, 0, NC * sizeof(float));
        layernorm_bwd(m, &L->ln2, d_sum, d_res, s->ln2, s->ln2_mean, s->ln2_rstd, N);
        /* MLP, and the residual into h1 */
        memset(d_h, 0, (size_t)N * F * sizeof(float));
        const float *d_down = d_sum; /* the MLP output's gradient: through its dropout */
        if (ph > 0) {
            memcpy(d_h1, d_sum, NC * sizeof(float));
            op_dropout_hash(d_h1, NC, ph, lorac_drop_key(m, l, LORAC_DROP_MLP_OUT));
            d_down = d_h1;
        }
        lorac_linear_bwd(L->down, d_h, d_down, s->h, N);
        memset(d_fc, 0, (size_t)N * F * sizeof(float));
        op_gelu_erf_bwd(d_fc, d_h, s->fc, (size_t)N * F);
        memcpy(d_h1, d_sum, NC * sizeof(float));
        lorac_linear_bwd(L->fc, d_h1, d_fc, s->ln1, N);
        /* LN1: d_sum = dL/d(x + attention) */
        memset(d_sum, 0, NC * sizeof(float));
        layernorm_bwd(m, &L->ln1, d_sum, d_h1, s->x_mid, s->ln1_mean, s->ln1_rstd, N);
        /* attention, and the residual into x */
        float *d_atty = d_h;
        memset(d_atty, 0, NC * sizeof(float));
        const float *d_o = d_sum; /* the attention output's gradient: through its dropout */
        if (ph > 0) {
            memcpy(d_fc, d_sum, NC * sizeof(float));
            op_dropout_hash(d_fc, NC, ph, lorac_drop_key(m, l, LORAC_DROP_ATT_OUT));
            d_o = d_fc;
        }
        lorac_linear_bwd(L->o, d_atty, d_o, s->atty, N);
        memset(a->d_qkv, 0, (size_t)N * 3 * C * sizeof(float));
        lorac_layer_attention_bwd(m, l, a->d_qkv, d_atty, 0);
        qkv_view dv = qkv_split(c, a->d_qkv, N);
        /* dL/dx_in, unless nothing below this layer trains (then no dx is formed) */
        float *d_x = l > lowest ? d_res : NULL;
        if (d_x) memcpy(d_x, d_sum, NC * sizeof(float));
        lorac_linear_bwd(L->q, d_x, dv.q, s->x_in, N);
        lorac_linear_bwd(L->k, d_x, dv.k, s->x_in, N);
        lorac_linear_bwd(L->v, d_x, dv.v, s->x_in, N);
    }
    /* embeddings: only when something there trains (full fine-tuning) */
    if (lowest >= 0) return;
    op_dropout_hash(d_res, NC, ph, lorac_drop_key(m, -1, LORAC_DROP_EMB));
    memset(d_sum, 0, NC * sizeof(float));
    layernorm_bwd(m, &m->ln_emb, d_sum, d_res, a->emb, a->emb_mean, a->emb_rstd, N);
    if (m->wte->grad) op_embed_bwd(m->wte->grad, d_sum, ids, N, C);
    lorac_lora_embed_bwd(m, d_sum, ids, N);
    if (m->wpe->grad) op_embed_bwd(m->wpe->grad, d_sum, a->pos, N, C);
    if (m->tte && m->tte->grad)
        for (int i = 0; i < N; i++) op_acc(m->tte->grad, d_sum + (size_t)i * C, (size_t)C);
}
