/* decoder.c - forward and backward of the decoder-only transformers lorac
 * reads (GPT-2 and Llama), written out op by op as in llm.c.
 *
 * One layer, with N = B*T token rows, C = hidden, F = MLP size:
 *   GPT-2: h = x + c_proj(attn(c_attn(LN1(x))))
 *          x' = h + mlp.c_proj(gelu_tanh(c_fc(LN2(h))))
 *   Llama: h = x + o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))), n = RMS1(x)
 *          x' = h + down_proj(silu(gate_proj(n2)) * up_proj(n2)),          n2 = RMS2(h)
 * Backward walks the same list in reverse. Every gradient buffer is
 * accumulated into (+=); frozen weights have grad == NULL and get nothing.
 *
 * The model's own dropout in training (m->model_dropout; config.h's rates,
 * where transformers puts them): embd_pdrop on x after the embeddings (GPT-2),
 * attention dropout on the attention probabilities, resid_pdrop on the
 * outputs of c_proj / o_proj and of the MLP before each residual add (GPT-2,
 * Phi-3). Masks are hashed from a key drawn once per forward (op_dropout_hash),
 * so backward and a checkpointed replay recompute them instead of storing.
 *
 * Gradient checkpointing (m->grad_ckpt, Hugging Face's
 * gradient_checkpointing): forward keeps only each layer's input x_in; all
 * the other activations of a layer live in one set of buffers shared by
 * every layer. Backward re-runs layer l's forward from its x_in just before
 * layer l's backward (layer_fwd with replay = 1: LoRA dropout reuses the
 * masks drawn the first time, and the down projection, whose output the
 * backward never reads, is skipped). Same arithmetic on the same inputs:
 * the gradients are identical, for about one more forward pass of time and
 * 1/n_layer of the activation memory.
 *
 * Rows: a batch is either padded (B sequences of T rows, padding masked out
 * of attention) or packed (sequences end to end, lorac_model_forward_packed).
 * Everything but attention works row by row and does not care; attention
 * (block-diagonal over the packed sequences) and the positions (restarting
 * at each sequence) read the layout the forward recorded in m->acts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "models/decoder_blocks.h"
#include "models/model_internal.h"
#include "ops/ops.h"

static int qkv_width(const lorac_config *c) { return (c->n_head + 2 * c->n_kv_head) * c->head_dim; }
static int max3(int a, int b, int c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

/* The buffers of one layer's activations, in a fixed order. */
enum { LAYER_BUFS = 20 };
static void layer_bufs(const lorac_layer_acts *x, float *out[LAYER_BUFS]) {
    float *b[LAYER_BUFS] = {x->x_in, x->ln1,  x->ln1_mean, x->ln1_rstd, x->qkv,    x->lse,         x->atty,
                            x->x_mid, x->ln2, x->ln2_mean, x->ln2_rstd, x->fc,     x->up,          x->h,
                            x->qk_raw, x->qk_rstd, x->attn_o, x->attn_o_rstd, x->mlp_o, x->mlp_o_rstd};
    memcpy(out, b, sizeof b);
}

void lorac_acts_free(lorac_acts *a, int n_layer) {
    if (a->layer) {
        /* a buffer of layer l > 0 that is layer 0's is shared (see lorac_model_reserve): freed once */
        float *own[LAYER_BUFS], *bufs[LAYER_BUFS];
        layer_bufs(&a->layer[0], own);
        for (int l = 0; l < n_layer; l++) {
            layer_bufs(&a->layer[l], bufs);
            for (int i = 0; i < LAYER_BUFS; i++)
                if (l == 0 || bufs[i] != own[i]) free(bufs[i]);
        }
    }
    float *bufs[] = {a->x_out, a->lnf, a->lnf_mean, a->lnf_rstd, a->logits, a->logit_slope, a->pooled, a->cls_logits,
                     a->d_res, a->d_tmp, a->d_big, a->d_qkv, a->d_h2, a->d_pooled,
                     a->emb, a->emb_mean, a->emb_rstd, a->pre, a->pre_act, a->d_pre};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(a->layer);
    free(a->pos);
    free(a->keymask);
    free(a->last);
    free(a->offs);
    memset(a, 0, sizeof *a);
}

#define ALLOC(p, n, what) LORAC_TRY(lorac_alloc((void **)&(p), (size_t)(n), sizeof *(p), what))

lorac_status lorac_model_reserve(lorac_model *m, int B, int T) {
    lorac_acts *a = &m->acts;
    const lorac_config *c = &m->cfg;
    if (B <= 0 || T <= 0) return lorac_fail(LORAC_ERR_ARG, "batch %d x %d: both must be positive", B, T);
    if (T > c->n_ctx)
        return lorac_fail(LORAC_ERR_ARG, "sequence length %d exceeds the model's %d positions; hint: lower --max-len", T, c->n_ctx);
    if (a->layer && m->n_classes > a->cap_classes) { /* a head was added after the buffers were made */
        free(a->cls_logits);
        a->cls_logits = NULL;
        ALLOC(a->cls_logits, (size_t)a->cap_B * m->n_classes, "activations");
        a->cap_classes = m->n_classes;
    }
    const int shared = m->grad_ckpt && c->arch != LORAC_ARCH_BERT;
    if (a->layer && a->shared != shared) { /* checkpointing switched: rebuild at the same size */
        if (a->cap_B > B) B = a->cap_B;
        if (a->cap_T > T) T = a->cap_T;
        lorac_acts_free(a, c->n_layer);
    }
    if (a->layer && B <= a->cap_B && T <= a->cap_T) {
        /* adapters may have been added since the last reserve */
        for (int i = 0; i < m->n_lin; i++)
            if (m->lin[i].lora) LORAC_TRY(lorac_lora_reserve(m->lin[i].lora, m->lin[i].in, a->cap_B * a->cap_T));
        return LORAC_OK;
    }
    if (a->layer) { /* grow: keep the larger of old and new */
        if (a->cap_B > B) B = a->cap_B;
        if (a->cap_T > T) T = a->cap_T;
    }
    lorac_acts_free(a, c->n_layer);
    const size_t N = (size_t)B * T, C = c->dim, F = c->ffn_dim, HD = (size_t)c->n_head * c->head_dim;
    ALLOC(a->layer, c->n_layer, "activations");
    /* Decoders keep per layer what backward cannot cheaply recompute; the
     * norm outputs ln1, ln2 and the MLP activation h are one buffer each for
     * all layers, recomputed in backward from x_in, x_mid and fc (+ up):
     * a third less activation memory for two norms and one activation per
     * layer. Gradient checkpointing shares everything but x_in. */
    const int dec = c->arch != LORAC_ARCH_BERT;
    a->shared = shared;
    for (int l = 0; l < c->n_layer; l++) {
        lorac_layer_acts *x = &a->layer[l];
        ALLOC(x->x_in, N * C, "activations");
        if (l > 0 && shared) {
            lorac_layer_acts keep = *x;
            *x = a->layer[0];
            x->x_in = keep.x_in;
            continue;
        }
        if (l > 0 && dec) {
            x->ln1 = a->layer[0].ln1;
            x->ln2 = a->layer[0].ln2;
            x->h = a->layer[0].h;
        } else {
            ALLOC(x->ln1, N * C, "activations");
            ALLOC(x->ln2, N * C, "activations");
            ALLOC(x->h, N * F, "activations");
        }
        ALLOC(x->ln1_mean, N, "activations");
        ALLOC(x->ln1_rstd, N, "activations");
        ALLOC(x->qkv, N * qkv_width(c), "activations");
        ALLOC(x->lse, (size_t)B * c->n_head * T, "activations");
        ALLOC(x->atty, N * HD, "activations");
        ALLOC(x->x_mid, N * C, "activations");
        ALLOC(x->ln2_mean, N, "activations");
        ALLOC(x->ln2_rstd, N, "activations");
        ALLOC(x->fc, N * F * (c->fused ? 2 : 1), "activations"); /* Phi-3: gate | up */
        if (c->arch == LORAC_ARCH_LLAMA && !c->fused) ALLOC(x->up, N * F, "activations");
        if (c->qk_norm) {
            ALLOC(x->qk_raw, N * (c->n_head + c->n_kv_head) * c->head_dim, "activations");
            ALLOC(x->qk_rstd, N * (c->n_head + c->n_kv_head), "activations");
        }
        if (c->gemma) {
            ALLOC(x->attn_o, N * C, "activations");
            ALLOC(x->attn_o_rstd, N, "activations");
            ALLOC(x->mlp_o, N * C, "activations");
            ALLOC(x->mlp_o_rstd, N, "activations");
        }
    }
    ALLOC(a->x_out, N * C, "activations");
    ALLOC(a->lnf, N * C, "activations");
    ALLOC(a->lnf_mean, N, "activations");
    ALLOC(a->lnf_rstd, N, "activations");
    ALLOC(a->pooled, (size_t)B * C, "activations");
    ALLOC(a->d_pooled, (size_t)B * C, "gradients");
    a->cap_classes = m->n_classes > 0 ? m->n_classes : 1;
    ALLOC(a->cls_logits, (size_t)B * a->cap_classes, "activations");
    ALLOC(a->d_res, N * C, "gradients");
    ALLOC(a->d_tmp, N * C, "gradients");
    ALLOC(a->d_big, 3 * N * (size_t)max3((int)F, (int)HD, (int)C), "gradients");
    ALLOC(a->d_qkv, N * qkv_width(c), "gradients");
    if (c->arch == LORAC_ARCH_BERT) {
        ALLOC(a->emb, N * C, "activations");
        ALLOC(a->emb_mean, N, "activations");
        ALLOC(a->emb_rstd, N, "activations");
        ALLOC(a->pre, (size_t)B * C, "activations");
        ALLOC(a->pre_act, (size_t)B * C, "activations");
        ALLOC(a->d_pre, (size_t)B * C, "gradients");
    }
    ALLOC(a->pos, N, "positions");
    ALLOC(a->keymask, N, "mask");
    ALLOC(a->last, B, "last-token index");
    ALLOC(a->offs, (size_t)B + 1, "sequence offsets");
    a->cap_B = B;
    a->cap_T = T;
    /* LoRA buffers hold the same number of rows */
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].lora) LORAC_TRY(lorac_lora_reserve(m->lin[i].lora, m->lin[i].in, (int)N));
    return LORAC_OK;
}

/* The logits buffer is large (N x V) and only LM mode needs it. */
static lorac_status reserve_logits(lorac_model *m, size_t N) {
    lorac_acts *a = &m->acts;
    size_t want = (size_t)a->cap_B * a->cap_T;
    if (N > want) want = N;
    if (!a->logits) ALLOC(a->logits, want * (size_t)m->cfg.vocab, "logits");
    if (m->cfg.final_softcap > 0 && !a->logit_slope) ALLOC(a->logit_slope, want * (size_t)m->cfg.vocab, "logit soft-cap slopes");
    return LORAC_OK;
}

void lorac_norm_fwd(const lorac_model *m, const lorac_norm *n, float *y, float *mean, float *rstd, const float *x, int N) {
    if (m->cfg.arch == LORAC_ARCH_GPT2)
        op_layernorm_fwd(y, mean, rstd, x, n->g->data, n->b->data, N, m->cfg.dim, m->cfg.norm_eps);
    else
        lorac_rms_fwd(m, n, y, rstd, x, N, m->cfg.dim);
}

static void norm_bwd(const lorac_model *m, const lorac_norm *n, float *dx, const float *dy, const float *x,
                     const float *mean, const float *rstd, int N) {
    if (m->cfg.arch == LORAC_ARCH_GPT2)
        op_layernorm_bwd(dx, n->g->grad, n->b->grad, dy, x, mean, rstd, n->g->data, N, m->cfg.dim);
    else
        lorac_rms_bwd(n, dx, dy, x, rstd, N, m->cfg.dim);
}

/* RoPE on layer l's q and k of N rows at positions pos (inverse = 1: on
 * their gradients, backward). */
static void rope(const lorac_config *c, int l, qkv_view v, const int *pos, int N, int inverse) {
    float inv_freq[LORAC_ROPE_MAX_HALF];
    LORAC_ASSERT(c->head_dim / 2 <= LORAC_ROPE_MAX_HALF);
    lorac_rope_table(c, c->local_layer[l], inv_freq);
    op_rope_freqs(v.q, pos, 1, N, c->n_head, c->head_dim, v.ldq, inv_freq, inverse);
    op_rope_freqs(v.k, pos, 1, N, c->n_kv_head, c->head_dim, v.ldk, inv_freq, inverse);
}

/* y = x + norm(t) (Gemma's post-norms): t's rstd into rstd; y may be x. */
static void post_norm_add(const lorac_model *m, const lorac_norm *n, float *y, const float *x, const float *t,
                          float *rstd, int N) {
    lorac_rms_fwd(m, n, y, rstd, t, N, m->cfg.dim);
    op_acc(y, x, (size_t)N * m->cfg.dim);
}

/* Residual dropout (GPT-2's and Phi-3's resid_pdrop) on a branch's output t
 * [N, C] before it joins the residual stream, in a training forward; on the
 * branch's gradient, backward applies the same mask (same key: site `site`
 * of layer l in this step). A no-op at rate 0 and at inference. */
static void resid_drop(const lorac_model *m, int training, int l, int site, float *t, int N) {
    if (training)
        op_dropout_hash(t, (size_t)N * m->cfg.dim, lorac_model_drop_p(m, m->cfg.hidden_dropout),
                        lorac_drop_key(m, l, site));
}

/* The gradient of a dropped branch: d_out = mask(d_res) in scratch, or d_res itself without dropout. */
static const float *resid_drop_bwd(const lorac_model *m, int l, int site, const float *d_res, float *scratch, int N) {
    if (!(lorac_model_drop_p(m, m->cfg.hidden_dropout) > 0)) return d_res;
    memcpy(scratch, d_res, sizeof(float) * (size_t)N * m->cfg.dim);
    resid_drop(m, 1, l, site, scratch, N);
    return scratch;
}

void lorac_decoder_layer_fwd(lorac_layer_pass *p, int l, int replay) {
    lorac_model *m = p->m;
    const lorac_config *c = &m->cfg;
    const int N = p->N, C = c->dim;
    lorac_layer *L = &m->layers[l];
    lorac_layer_acts *s = p->s;
    float *x_next = p->x_next;
    lorac_norm_fwd(m, &L->ln1, s->ln1, s->ln1_mean, s->ln1_rstd, s->x_in, N);
    qkv_view v = qkv_split(c, s->qkv, N);
    if (L->qkv) {
        p->linear(p, L->qkv, s->qkv, s->ln1);
    } else {
        p->linear(p, L->q, v.q, s->ln1);
        p->linear(p, L->k, v.k, s->ln1);
        p->linear(p, L->v, v.v, s->ln1);
    }
    if (c->qk_norm) lorac_qk_norm_fwd(m, L, v.q, v.k, s->qk_raw, s->qk_rstd, N);
    if (c->arch == LORAC_ARCH_LLAMA) rope(c, l, v, p->pos, N, 0);
    p->attention(p, l);
    if (c->gemma) { /* x_mid = x_in + norm(o_proj(attention)) */
        p->linear(p, L->o, s->attn_o, s->atty);
        post_norm_add(m, &L->attn_post, s->x_mid, s->x_in, s->attn_o, s->attn_o_rstd, N);
    } else {
        p->linear(p, L->o, s->x_mid, s->atty);
        resid_drop(m, p->training, l, LORAC_DROP_ATT_OUT, s->x_mid, N);
        op_acc(s->x_mid, s->x_in, (size_t)N * C);
    }
    lorac_norm_fwd(m, &L->ln2, s->ln2, s->ln2_mean, s->ln2_rstd, s->x_mid, N);
    p->linear(p, L->fc, s->fc, s->ln2);
    if (L->up) p->linear(p, L->up, s->up, s->ln2);
    lorac_mlp_act_fwd(m, L, s->h, s->fc, s->up, N);
    /* backward reads h and the down projection's own LoRA state, never x_next
       (Gemma: it reads the down projection's output, mlp_o, as well) */
    if (replay && !c->gemma) return;
    if (c->gemma) { /* x_next = x_mid + norm(down_proj(h)) */
        p->linear(p, L->down, s->mlp_o, s->h);
        post_norm_add(m, &L->mlp_post, x_next, s->x_mid, s->mlp_o, s->mlp_o_rstd, N);
    } else {
        p->linear(p, L->down, x_next, s->h);
        resid_drop(m, p->training, l, LORAC_DROP_MLP_OUT, x_next, N);
        op_acc(x_next, s->x_mid, (size_t)N * C);
    }
}

/* A forward over whole sequences: each Linear with its own adapter (LoRA
 * dropout when training), attention over the rows recorded in m->acts. */
static void acts_linear(lorac_layer_pass *p, lorac_linear *L, float *y, const float *x) {
    if (p->training) /* dropout, and what backward reads */
        lorac_linear_fwd(L, y, x, p->N, &p->m->rng, p->training);
    else /* the adapter's term row for row as a KV-cache step computes it (kvcache.c) */
        lorac_linear_infer_fwd(L, y, x, p->N);
}
static void acts_attention(lorac_layer_pass *p, int l) { lorac_layer_attention_fwd(p->m, l, 1); }

/* Layer l's forward from a->layer[l].x_in into the next layer's x_in (or
 * x_out). replay = 1 re-runs it for gradient checkpointing (see the top). */
static void layer_fwd(lorac_model *m, int l, int replay) {
    lorac_acts *a = &m->acts;
    lorac_layer_pass p = {.m = m, .N = a->n_rows, .pos = a->pos, .s = &a->layer[l],
                          .x_next = l + 1 < m->cfg.n_layer ? a->layer[l + 1].x_in : a->x_out,
                          .linear = acts_linear, .attention = acts_attention,
                          .training = m->training ? (replay ? LORAC_TRAIN_REPLAY : 1) : 0};
    lorac_decoder_layer_fwd(&p, l, replay);
}

/* The rows of the last forward, layer l's window and scale, as the attention ops take them. */
static op_att_seq att_seq(const lorac_model *m, int l, int causal) {
    const lorac_acts *a = &m->acts;
    const lorac_config *c = &m->cfg;
    op_att_seq sq = {.B = a->n_seq, .T = a->T, .causal = causal, .scale = c->attn_scale};
    if (a->packed)
        sq.offs = a->offs;
    else
        sq.keymask = a->keymask;
    if (c->local_layer[l]) sq.window = c->sliding_window;
    sq.softcap = c->attn_softcap;
    sq.dropout = lorac_model_drop_p(m, c->attn_dropout);
    if (sq.dropout > 0) sq.drop_key = lorac_drop_key(m, l, LORAC_DROP_ATT);
    return sq;
}

void lorac_layer_attention_fwd(lorac_model *m, int l, int causal) {
    const lorac_config *c = &m->cfg;
    lorac_layer_acts *s = &m->acts.layer[l];
    const qkv_view v = qkv_split(c, s->qkv, m->acts.n_rows);
    const op_att_seq sq = att_seq(m, l, causal);
    op_attention_seq_fwd(s->atty, s->lse, v.q, v.ldq, v.k, v.ldk, v.v, v.ldv, &sq, c->n_head, c->n_kv_head,
                         c->head_dim);
}

void lorac_layer_attention_bwd(lorac_model *m, int l, float *d_qkv, const float *d_atty, int causal) {
    const lorac_config *c = &m->cfg;
    lorac_layer_acts *s = &m->acts.layer[l];
    const qkv_view v = qkv_split(c, s->qkv, m->acts.n_rows), dv = qkv_split(c, d_qkv, m->acts.n_rows);
    const op_att_seq sq = att_seq(m, l, causal);
    op_attention_seq_bwd(dv.q, dv.k, dv.v, d_atty, s->atty, s->lse, v.q, v.ldq, v.k, v.ldk, v.v, v.ldv, &sq, c->n_head,
                         c->n_kv_head, c->head_dim);
}

/* What every forward checks before it starts: the ids and the head. */
static lorac_status check_inputs(const lorac_model *m, const int *ids, int N, lorac_fwd_mode mode) {
    const lorac_config *c = &m->cfg;
    for (int i = 0; i < N; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return lorac_fail(LORAC_ERR_ARG, "token id %d at position %d is outside the vocabulary (0..%d); hint: tokenizer and model do not match",
                              ids[i], i, c->vocab - 1);
    if (mode == LORAC_FWD_CLS && (!m->head || !m->head->W->data))
        return lorac_fail(LORAC_ERR_ARG, "classification needs a head; hint: an adapter trained for classification (--adapter)");
    return LORAC_OK;
}

/* The forward once the row layout (acts.n_seq .. acts.last) is set. */
static lorac_status forward_rows(lorac_model *m, const int *ids, lorac_fwd_mode mode) {
    const lorac_config *c = &m->cfg;
    lorac_acts *a = &m->acts;
    const int N = a->n_rows, B = a->n_seq, C = c->dim;
    if (c->arch == LORAC_ARCH_BERT) return lorac_encoder_forward(m, ids, mode);
    /* embeddings */
    float *x = a->layer[0].x_in;
    lorac_model_embed_tokens(m, x, ids, N);
    if (m->wpe) op_embed_fwd(x, m->wpe->data, a->pos, N, C, 1);
    if (c->gemma) op_scale(x, sqrtf((float)C), (size_t)N * C); /* Gemma scales its embeddings by sqrt(hidden) */
    /* the model's own dropout (GPT-2, or a config that sets attention_dropout / resid_pdrop): this step's masks */
    if (m->training && m->model_dropout && (c->hidden_dropout > 0 || c->attn_dropout > 0 || c->embd_dropout > 0))
        m->drop_seed = lorac_rng_u64(&m->rng);
    op_dropout_hash(x, (size_t)N * C, lorac_model_drop_p(m, c->embd_dropout), lorac_drop_key(m, -1, LORAC_DROP_EMB));

    for (int l = 0; l < c->n_layer; l++) layer_fwd(m, l, 0);
    lorac_norm_fwd(m, &m->lnf, a->lnf, a->lnf_mean, a->lnf_rstd, a->x_out, N);
    if (mode == LORAC_FWD_LM) {
        LORAC_TRY(reserve_logits(m, (size_t)N));
        lorac_linear_fwd(m->lm_head, a->logits, a->lnf, N, &m->rng, m->training);
        lorac_logit_softcap(c, a->logits, a->logit_slope, (size_t)N * c->vocab);
    } else if (mode == LORAC_FWD_CLS || mode == LORAC_FWD_LM_LAST) {
        for (int b = 0; b < B; b++)
            memcpy(a->pooled + (size_t)b * C, a->lnf + (size_t)a->last[b] * C, sizeof(float) * C);
        if (mode == LORAC_FWD_CLS) {
            lorac_linear_fwd(m->head, a->cls_logits, a->pooled, B, &m->rng, m->training);
        } else {
            LORAC_TRY(reserve_logits(m, (size_t)B));
            lorac_linear_fwd(m->lm_head, a->logits, a->pooled, B, &m->rng, m->training);
            lorac_logit_softcap(c, a->logits, NULL, (size_t)B * c->vocab);
        }
    }
    return LORAC_OK;
}

lorac_status lorac_model_forward(lorac_model *m, const int *ids, const uint8_t *mask, int B, int T, lorac_fwd_mode mode) {
    LORAC_TRY(lorac_model_reserve(m, B, T));
    LORAC_TRY(check_inputs(m, ids, B * T, mode));
    lorac_acts *a = &m->acts;
    a->n_seq = B;
    a->n_rows = B * T;
    a->T = T;
    a->packed = 0;
    for (int b = 0; b < B; b++) {
        int len = 0;
        for (int t = 0; t < T; t++) {
            uint8_t k = mask ? mask[b * T + t] != 0 : 1;
            a->keymask[b * T + t] = k;
            a->pos[b * T + t] = t;
            len += k;
        }
        a->offs[b] = b * T;
        a->last[b] = b * T + (len > 0 ? len - 1 : 0);
    }
    a->offs[B] = B * T;
    return forward_rows(m, ids, mode);
}

lorac_status lorac_model_forward_packed(lorac_model *m, const int *ids, const int *offs, int B, lorac_fwd_mode mode) {
    if (B <= 0 || offs[0] != 0) return lorac_fail(LORAC_ERR_ARG, "packed batch: %d sequences, first offset %d; "
                                                  "hint: B > 0 and offs[0] = 0", B, B > 0 ? offs[0] : 0);
    for (int b = 0; b < B; b++) {
        const int len = offs[b + 1] - offs[b];
        if (len < 1 || len > m->cfg.n_ctx)
            return lorac_fail(LORAC_ERR_ARG, "packed batch: sequence %d has %d tokens; hint: each needs 1 .. %d "
                              "(the model's positions; lower --max-len)", b, len, m->cfg.n_ctx);
    }
    const int N = offs[B];
    /* buffers for N rows and B sequences: [B, ceil(N / B)] holds them */
    LORAC_TRY(lorac_model_reserve(m, B, (N + B - 1) / B));
    LORAC_TRY(check_inputs(m, ids, N, mode));
    lorac_acts *a = &m->acts;
    a->n_seq = B;
    a->n_rows = N;
    a->T = 0;
    a->packed = 1;
    memcpy(a->offs, offs, sizeof(int) * ((size_t)B + 1));
    for (int b = 0; b < B; b++) {
        for (int i = offs[b]; i < offs[b + 1]; i++) {
            a->keymask[i] = 1;
            a->pos[i] = i - offs[b];
        }
        a->last[b] = offs[b + 1] - 1;
    }
    return forward_rows(m, ids, mode);
}

/* The backward of the last forward, whatever its row layout. */
static void backward_rows(lorac_model *m, const int *ids, lorac_fwd_mode mode) {
    const lorac_config *c = &m->cfg;
    lorac_acts *a = &m->acts;
    const int N = a->n_rows, B = a->n_seq, C = c->dim, F = c->ffn_dim;
    const int HqD = c->n_head * c->head_dim;
    const size_t NC = (size_t)N * C;
    float *d_res = a->d_res, *d_ln = a->d_tmp;
    const size_t big = (size_t)N * max3(F, HqD, C);
    float *d_h = a->d_big, *d_fc = a->d_big + big, *d_up = a->d_big + 2 * big;
    if (c->arch == LORAC_ARCH_BERT) {
        lorac_encoder_backward(m, ids);
        return;
    }

    /* head -> d(lnf) */
    memset(d_ln, 0, NC * sizeof(float));
    if (mode == LORAC_FWD_LM) {
        lorac_logit_softcap_bwd(c, a->logits, a->logit_slope, (size_t)N * c->vocab); /* logits hold their gradient */
        lorac_linear_bwd(m->lm_head, d_ln, a->logits, a->lnf, N);
    } else if (mode == LORAC_FWD_CLS) {
        memset(a->d_pooled, 0, (size_t)B * C * sizeof(float));
        lorac_linear_bwd(m->head, a->d_pooled, a->cls_logits, a->pooled, B);
        for (int b = 0; b < B; b++)
            memcpy(d_ln + (size_t)a->last[b] * C, a->d_pooled + (size_t)b * C, sizeof(float) * C);
    }
    memset(d_res, 0, NC * sizeof(float));
    norm_bwd(m, &m->lnf, d_res, d_ln, a->x_out, a->lnf_mean, a->lnf_rstd, N);

    for (int l = c->n_layer - 1; l >= 0; l--) {
        lorac_layer *L = &m->layers[l];
        lorac_layer_acts *s = &a->layer[l];
        if (a->shared) {
            /* checkpointing: the shared buffers still hold the last layer's forward */
            if (l + 1 < c->n_layer) layer_fwd(m, l, 1);
        } else {
            /* ln2 and h are shared by all layers: layer l's again (ln1 below) */
            lorac_norm_fwd(m, &L->ln2, s->ln2, s->ln2_mean, s->ln2_rstd, s->x_mid, N);
            lorac_mlp_act_fwd(m, L, s->h, s->fc, s->up, N);
        }
        /* MLP: d_res is dL/dx_next (Gemma: through the post-norm to its input, mlp_o) */
        const float *d_mlp_out = resid_drop_bwd(m, l, LORAC_DROP_MLP_OUT, d_res, d_ln, N);
        if (c->gemma) {
            memset(d_ln, 0, NC * sizeof(float));
            lorac_rms_bwd(&L->mlp_post, d_ln, d_res, s->mlp_o, s->mlp_o_rstd, N, C);
            d_mlp_out = d_ln;
        }
        memset(d_h, 0, (size_t)N * F * sizeof(float));
        lorac_linear_bwd(L->down, d_h, d_mlp_out, s->h, N);
        memset(d_fc, 0, (size_t)N * F * (c->fused ? 2 : 1) * sizeof(float));
        if (L->up) memset(d_up, 0, (size_t)N * F * sizeof(float));
        lorac_mlp_act_bwd(m, L, d_fc, d_up, d_h, s->fc, s->up, N);
        memset(d_ln, 0, NC * sizeof(float));
        if (L->up) lorac_linear_bwd(L->up, d_ln, d_up, s->ln2, N);
        lorac_linear_bwd(L->fc, d_ln, d_fc, s->ln2, N);
        norm_bwd(m, &L->ln2, d_res, d_ln, s->x_mid, s->ln2_mean, s->ln2_rstd, N); /* now dL/dx_mid */

        /* attention (Gemma: through the post-norm to its input, attn_o) */
        const float *d_attn_out = resid_drop_bwd(m, l, LORAC_DROP_ATT_OUT, d_res, d_ln, N);
        if (c->gemma) {
            memset(d_ln, 0, NC * sizeof(float));
            lorac_rms_bwd(&L->attn_post, d_ln, d_res, s->attn_o, s->attn_o_rstd, N, C);
            d_attn_out = d_ln;
        }
        float *d_atty = d_h;
        memset(d_atty, 0, (size_t)N * HqD * sizeof(float));
        lorac_linear_bwd(L->o, d_atty, d_attn_out, s->atty, N);
        memset(a->d_qkv, 0, (size_t)N * qkv_width(c) * sizeof(float));
        lorac_layer_attention_bwd(m, l, a->d_qkv, d_atty, 1);
        qkv_view dv = qkv_split(c, a->d_qkv, N);
        if (c->arch == LORAC_ARCH_LLAMA) rope(c, l, dv, a->pos, N, 1);
        if (c->qk_norm) lorac_qk_norm_bwd(m, L, dv.q, dv.k, s->qk_raw, s->qk_rstd, d_fc, N);
        memset(d_ln, 0, NC * sizeof(float));
        if (!a->shared) lorac_norm_fwd(m, &L->ln1, s->ln1, s->ln1_mean, s->ln1_rstd, s->x_in, N);
        if (L->qkv) {
            lorac_linear_bwd(L->qkv, d_ln, a->d_qkv, s->ln1, N);
        } else {
            lorac_linear_bwd(L->q, d_ln, dv.q, s->ln1, N);
            lorac_linear_bwd(L->k, d_ln, dv.k, s->ln1, N);
            lorac_linear_bwd(L->v, d_ln, dv.v, s->ln1, N);
        }
        norm_bwd(m, &L->ln1, d_res, d_ln, s->x_in, s->ln1_mean, s->ln1_rstd, N); /* now dL/dx_in */
    }
    op_dropout_hash(d_res, NC, lorac_model_drop_p(m, c->embd_dropout), lorac_drop_key(m, -1, LORAC_DROP_EMB));
    if (m->wte->grad || m->wte_lora) {
        if (c->gemma) op_scale(d_res, sqrtf((float)C), NC);
        if (m->wte->grad) op_embed_bwd(m->wte->grad, d_res, ids, N, C);
        lorac_lora_embed_bwd(m, d_res, ids, N);
    }
    if (m->wpe && m->wpe->grad) op_embed_bwd(m->wpe->grad, d_res, a->pos, N, C);
}

void lorac_model_backward(lorac_model *m, const int *ids, int B, int T, lorac_fwd_mode mode) {
    LORAC_ASSERT(!m->acts.packed && m->acts.n_seq == B && m->acts.T == T);
    backward_rows(m, ids, mode);
}

void lorac_model_backward_packed(lorac_model *m, const int *ids, lorac_fwd_mode mode) {
    LORAC_ASSERT(m->acts.packed);
    backward_rows(m, ids, mode);
}

lorac_status lorac_model_set_grad_ckpt(lorac_model *m, int on) {
    if (on && m->cfg.arch == LORAC_ARCH_BERT)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "gradient checkpointing: decoder models (GPT-2, Llama) only; hint: "
                          "drop --gradient-checkpointing for %s", m->cfg.model_type);
    m->grad_ckpt = on != 0; /* the next lorac_model_reserve rebuilds the buffers */
    return LORAC_OK;
}
