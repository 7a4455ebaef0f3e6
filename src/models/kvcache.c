/* kvcache.c - the key/value cache and lorac_model_decode (kvcache.h).
 *
 * A call with n sequences lays their new tokens out as N rows, sequences
 * that share an adapter table next to each other (a stable sort by table),
 * each sequence's rows together in token order. Row r of sequence i sits at
 * position p = len_i + t (t-th new token, len_i tokens cached before). Each
 * layer then runs decoder.c's lorac_decoder_layer_fwd over the N rows with
 * two steps of its own:
 *
 *   Linear     y = x W^T + b over all N rows (one GEMM: lorac_linear_base_fwd),
 *              then for each run of rows whose sequences use the same LoRA
 *              pair on this Linear, y[run] += s (x[run] A^T) B^T
 *              (lorac_lora_infer_term: fused passes on this thread over
 *              chunks of up to 8 rows, row for row what the full forward
 *              computes at inference): S-LoRA's grouped adapter term. When
 *              every row has the same pair (one sequence, or one adapter),
 *              the term runs inside the base's parallel region instead
 *              (lorac_lora_infer_linear), with the same result.
 *   attention  the new rows' k and v (after qk-norm and RoPE at their
 *              positions) are written into the cache at rows len_i .. of
 *              the slot; then each new query attends to the slot's keys
 *              0 .. len_i + n_i - 1 causally (key j visible to the query at
 *              position p when j <= p, and with the layer's sliding window
 *              when p - window < j), grouped-query heads: the flash kernel
 *              with its keys apart from its queries (op_att_seq krow / klen).
 *
 * The last row of each sequence then goes through the final norm and the LM
 * head (with the sequence's adapter on it, if any) into its logits (Gemma 2:
 * soft-capped, as are its attention scores). The
 * cache lengths grow only once the whole call has been checked. */
#include "models/kvcache.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "lora/lora_infer.h"
#include "models/decoder_blocks.h"
#include "models/model_internal.h"
#include "ops/ops.h"

struct lorac_kv {
    const lorac_model *m;
    int n_slots, max_len;
    int hkd;            /* floats per cached row: n_kv_head * head_dim */
    int *len;           /* [n_slots] tokens cached */
    float **k, **v;     /* [n_layer] each [n_slots * max_len, hkd]: slot s's token t at row s * max_len + t */
    /* scratch for one call, grown to the largest seen */
    int cap_rows, cap_seq, cap_xa;
    lorac_layer_acts s; /* one layer's buffers, reused by every layer (x_in and x_out swap) */
    float *x_out, *lse, *xa, *last;
    int *pos, *ids, *order, *offs, *krow, *klen, *iota; /* iota[i] = i */
};

/* ---- the cache ---------------------------------------------------------- */

static int kv_width(const lorac_config *c) { return c->n_kv_head * c->head_dim; }

lorac_status lorac_kv_create(const lorac_model *m, int n_slots, int max_len, lorac_kv **out) {
    *out = NULL;
    const lorac_config *c = &m->cfg;
    if (c->arch == LORAC_ARCH_BERT)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "KV-cache decoding: %s is an encoder; hint: decoders only (GPT-2, "
                          "Llama, Qwen, Mistral, Gemma 3, Phi-3)", c->model_type);
    if (n_slots < 1 || max_len < 1 || max_len > c->n_ctx)
        return lorac_fail(LORAC_ERR_ARG, "KV cache of %d slots x %d tokens; hint: at least one slot, and 1 .. %d tokens "
                          "(the model's positions)", n_slots, max_len, c->n_ctx);
    lorac_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return lorac_fail(LORAC_ERR_NOMEM, "KV cache");
    kv->m = m;
    kv->n_slots = n_slots;
    kv->max_len = max_len;
    kv->hkd = kv_width(c);
    size_t rows;
    lorac_status st = lorac_alloc((void **)&kv->len, (size_t)n_slots, sizeof(int), "KV cache lengths");
    if (st == LORAC_OK) st = lorac_alloc((void **)&kv->k, (size_t)c->n_layer, sizeof(float *), "KV cache");
    if (st == LORAC_OK) st = lorac_alloc((void **)&kv->v, (size_t)c->n_layer, sizeof(float *), "KV cache");
    if (st == LORAC_OK && !lorac_mul_ok((size_t)n_slots * max_len, (size_t)kv->hkd, &rows))
        st = lorac_fail(LORAC_ERR_NOMEM, "KV cache of %d x %d tokens: too large", n_slots, max_len);
    /* malloc, not calloc: only rows written by a forward are ever read */
    for (int l = 0; st == LORAC_OK && l < c->n_layer; l++) {
        st = lorac_alloc((void **)&kv->k[l], rows, sizeof(float), "KV cache keys");
        if (st == LORAC_OK) st = lorac_alloc((void **)&kv->v[l], rows, sizeof(float), "KV cache values");
    }
    if (st != LORAC_OK) {
        lorac_kv_free(kv);
        return st;
    }
    *out = kv;
    return LORAC_OK;
}

static void free_scratch(lorac_kv *kv) {
    lorac_layer_acts *s = &kv->s;
    float *bufs[] = {s->x_in, s->ln1, s->ln1_mean, s->ln1_rstd, s->qkv, s->atty, s->x_mid, s->ln2, s->ln2_mean,
                     s->ln2_rstd, s->fc, s->up, s->h, s->qk_raw, s->qk_rstd, s->attn_o, s->attn_o_rstd, s->mlp_o,
                     s->mlp_o_rstd, kv->x_out, kv->lse, kv->last};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    memset(s, 0, sizeof *s);
    kv->x_out = kv->lse = kv->last = NULL;
    kv->cap_rows = 0;
}

static void free_seq_scratch(lorac_kv *kv) {
    int *bufs[] = {kv->pos, kv->ids, kv->order, kv->offs, kv->krow, kv->klen, kv->iota};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    kv->pos = kv->ids = kv->order = kv->offs = kv->krow = kv->klen = kv->iota = NULL;
    kv->cap_seq = 0;
}

void lorac_kv_free(lorac_kv *kv) {
    if (!kv) return;
    for (int l = 0; l < kv->m->cfg.n_layer; l++) {
        if (kv->k) free(kv->k[l]);
        if (kv->v) free(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    free(kv->len);
    free_scratch(kv);
    free_seq_scratch(kv);
    free(kv->xa);
    free(kv);
}

void lorac_kv_reset(lorac_kv *kv, int slot) {
    if (kv && slot >= 0 && slot < kv->n_slots) kv->len[slot] = 0;
}
int lorac_kv_len(const lorac_kv *kv, int slot) { return kv && slot >= 0 && slot < kv->n_slots ? kv->len[slot] : 0; }
int lorac_kv_slots(const lorac_kv *kv) { return kv ? kv->n_slots : 0; }
int lorac_kv_max_len(const lorac_kv *kv) { return kv ? kv->max_len : 0; }

/* ---- scratch -------------------------------------------------------------- */

#define ALLOC(p, n, what) LORAC_TRY(lorac_alloc((void **)&(p), (size_t)(n), sizeof *(p), what))

/* One layer's buffers for N rows (decoder.c's lorac_model_reserve holds the same per layer). */
static lorac_status reserve_rows(lorac_kv *kv, int N) {
    if (N <= kv->cap_rows) return LORAC_OK;
    free_scratch(kv);
    const lorac_config *c = &kv->m->cfg;
    const size_t C = c->dim, F = c->ffn_dim, HqD = (size_t)c->n_head * c->head_dim;
    const size_t W = HqD + 2 * (size_t)kv_width(c), H = (size_t)c->n_head + c->n_kv_head;
    lorac_layer_acts *s = &kv->s;
    ALLOC(s->x_in, N * C, "decode buffers");
    ALLOC(kv->x_out, N * C, "decode buffers");
    ALLOC(kv->last, N * C, "decode buffers"); /* the last row of each sequence: at most N */
    ALLOC(s->ln1, N * C, "decode buffers");
    ALLOC(s->ln1_mean, N, "decode buffers");
    ALLOC(s->ln1_rstd, N, "decode buffers");
    ALLOC(s->qkv, N * W, "decode buffers");
    ALLOC(s->atty, N * HqD, "decode buffers");
    ALLOC(kv->lse, N * (size_t)c->n_head, "decode buffers");
    ALLOC(s->x_mid, N * C, "decode buffers");
    ALLOC(s->ln2, N * C, "decode buffers");
    ALLOC(s->ln2_mean, N, "decode buffers");
    ALLOC(s->ln2_rstd, N, "decode buffers");
    ALLOC(s->fc, N * F * (c->fused ? 2 : 1), "decode buffers");
    if (c->arch == LORAC_ARCH_LLAMA && !c->fused) ALLOC(s->up, N * F, "decode buffers");
    ALLOC(s->h, N * F, "decode buffers");
    if (c->qk_norm) {
        ALLOC(s->qk_raw, N * H * c->head_dim, "decode buffers");
        ALLOC(s->qk_rstd, N * H, "decode buffers");
    }
    if (c->gemma) {
        ALLOC(s->attn_o, N * C, "decode buffers");
        ALLOC(s->attn_o_rstd, N, "decode buffers");
        ALLOC(s->mlp_o, N * C, "decode buffers");
        ALLOC(s->mlp_o_rstd, N, "decode buffers");
    }
    kv->cap_rows = N;
    return LORAC_OK;
}

/* Per-sequence and per-row index arrays for n sequences of N rows. */
static lorac_status reserve_seqs(lorac_kv *kv, int n, int N) {
    if (N <= kv->cap_seq && n <= kv->cap_seq) return LORAC_OK;
    free_seq_scratch(kv);
    const int cap = N > n ? N : n;
    ALLOC(kv->pos, cap, "decode positions");
    ALLOC(kv->ids, cap, "decode ids");
    ALLOC(kv->order, cap, "decode order");
    ALLOC(kv->offs, cap + 1, "decode offsets");
    ALLOC(kv->krow, cap, "decode offsets");
    ALLOC(kv->klen, cap, "decode offsets");
    ALLOC(kv->iota, cap + 1, "decode offsets");
    for (int i = 0; i <= cap; i++) kv->iota[i] = i;
    kv->cap_seq = cap;
    return LORAC_OK;
}

/* ---- one call --------------------------------------------------------------- */

/* The rows of one pass: the sequence at each place and the rows it holds. */
typedef struct decode_batch {
    lorac_kv *kv;
    lorac_lora *const *const *adapters;
    int n;            /* places (sequences) */
    const int *seq;   /* [n] the caller's index of the sequence at each place */
    const int *row0;  /* [n + 1] first row of each place */
    const int *slot;  /* the caller's slots */
} decode_batch;

/* Sequence i's LoRA pair on Linear L, NULL for none (or one already merged into W). */
static lorac_lora *seq_lora(const lorac_model *m, lorac_lora *const *const *adapters, int i, const lorac_linear *L) {
    lorac_lora *l = L->lora;
    if (adapters) l = adapters[i] ? adapters[i][L - m->lin] : NULL;
    return l && !l->merged ? l : NULL;
}

static void batch_linear(lorac_layer_pass *p, lorac_linear *L, float *y, const float *x) {
    const decode_batch *b = p->ctx;
    lorac_lora *l0 = b->n ? seq_lora(p->m, b->adapters, b->seq[0], L) : NULL;
    int same = 1; /* every place on one pair (or none): the term joins the base's threads */
    for (int i = 1; i < b->n && same; i++) same = seq_lora(p->m, b->adapters, b->seq[i], L) == l0;
    if (same) {
        lorac_lora_infer_linear(L, l0, y, x, x, p->N, b->kv->xa);
        return;
    }
    lorac_linear_base_fwd(L, y, x, p->N);
    for (int i = 0; i < b->n;) { /* runs of places with the same pair */
        lorac_lora *l = seq_lora(p->m, b->adapters, b->seq[i], L);
        int j = i + 1;
        while (j < b->n && seq_lora(p->m, b->adapters, b->seq[j], L) == l) j++;
        if (l) {
            const size_t r0 = (size_t)b->row0[i];
            lorac_lora_infer_term(L, l, y + r0 * L->out, x + r0 * L->in, b->row0[j] - b->row0[i], b->kv->xa);
        }
        i = j;
    }
}

static void cache_attention(lorac_layer_pass *p, int l) {
    const decode_batch *b = p->ctx;
    lorac_kv *kv = b->kv;
    const lorac_config *c = &p->m->cfg;
    const qkv_view v = qkv_split(c, p->s->qkv, p->N);
    const size_t hkd = (size_t)kv->hkd;
    for (int i = 0; i < b->n; i++) { /* the new keys and values after the cached ones */
        const int s = b->slot[b->seq[i]];
        for (int r = b->row0[i]; r < b->row0[i + 1]; r++) {
            const size_t at = ((size_t)s * kv->max_len + kv->len[s] + (r - b->row0[i])) * hkd;
            memcpy(kv->k[l] + at, v.k + (size_t)r * v.ldk, hkd * sizeof(float));
            memcpy(kv->v[l] + at, v.v + (size_t)r * v.ldv, hkd * sizeof(float));
        }
    }
    const op_att_seq sq = {.B = b->n, .offs = b->row0, .causal = 1, .scale = c->attn_scale, .softcap = c->attn_softcap,
                           .window = c->local_layer[l] ? c->sliding_window : 0, .krow = kv->krow, .klen = kv->klen};
    op_attention_seq_fwd(p->s->atty, kv->lse, v.q, v.ldq, kv->k[l], (int)hkd, kv->v[l], (int)hkd, &sq, c->n_head,
                         c->n_kv_head, c->head_dim);
}

/* Everything LORAC_ERR_ARG is about, before anything changes. */
static lorac_status check_call(const lorac_model *m, const lorac_kv *kv, int n, const int *slot, const int *ids,
                               const int *offs) {
    if (kv->m != m) return lorac_fail(LORAC_ERR_ARG, "decode: the KV cache was made for another model; hint: lorac_kv_create with this one");
    if (n < 1 || n > kv->n_slots)
        return lorac_fail(LORAC_ERR_ARG, "decode: %d sequences; hint: 1 .. %d (the cache's slots)", n, kv->n_slots);
    for (int i = 0; i < n; i++) {
        if (slot[i] < 0 || slot[i] >= kv->n_slots)
            return lorac_fail(LORAC_ERR_ARG, "decode: sequence %d names slot %d; hint: slots are 0 .. %d", i, slot[i], kv->n_slots - 1);
        for (int j = 0; j < i; j++)
            if (slot[j] == slot[i])
                return lorac_fail(LORAC_ERR_ARG, "decode: sequences %d and %d both name slot %d; hint: one sequence per slot per call", j, i, slot[i]);
        const int cnt = offs[i + 1] - offs[i];
        if (cnt < 1 || offs[i] < 0)
            return lorac_fail(LORAC_ERR_ARG, "decode: sequence %d has %d new tokens (offs %d .. %d); hint: at least one each", i, cnt, offs[i], offs[i + 1]);
        if (kv->len[slot[i]] + cnt > kv->max_len)
            return lorac_fail(LORAC_ERR_ARG, "decode: sequence %d: %d cached + %d new tokens pass the cache's %d; hint: "
                              "lorac_kv_reset the slot and prefill the tail", i, kv->len[slot[i]], cnt, kv->max_len);
        for (int t = offs[i]; t < offs[i + 1]; t++)
            if (ids[t] < 0 || ids[t] >= m->cfg.vocab)
                return lorac_fail(LORAC_ERR_ARG, "decode: sequence %d: token id %d outside the vocabulary (0..%d); hint: "
                                  "tokenizer and model do not match", i, ids[t], m->cfg.vocab - 1);
    }
    return LORAC_OK;
}

/* The places in adapter-table order (stable), so that sequences sharing an adapter are neighbours. */
static void order_by_adapter(int *order, int n, lorac_lora *const *const *adapters) {
    for (int i = 0; i < n; i++) order[i] = i;
    if (!adapters) return;
    for (int i = 1; i < n; i++) { /* insertion sort: n is small */
        const int o = order[i];
        int j = i;
        for (; j > 0 && (uintptr_t)adapters[order[j - 1]] > (uintptr_t)adapters[o]; j--) order[j] = order[j - 1];
        order[j] = o;
    }
}

/* The largest adapter rank (parts * r) any sequence uses on any Linear: the size of xa per row. */
static int max_rank(const lorac_model *m, int n, lorac_lora *const *const *adapters) {
    int R = 0;
    for (int li = 0; li < m->n_lin; li++)
        for (int i = 0; i < (adapters ? n : 1); i++) {
            const lorac_lora *l = seq_lora(m, adapters, i, &m->lin[li]);
            if (l && l->parts * l->r > R) R = l->parts * l->r;
        }
    return R;
}

lorac_status lorac_model_decode(lorac_model *m, lorac_kv *kv, int n, const int *slot, const int *ids, const int *offs,
                                lorac_lora *const *const *adapters, float *logits) {
    if (!m || !kv || !slot || !ids || !offs || !logits)
        return lorac_fail(LORAC_ERR_ARG, "decode: NULL argument; hint: model, cache, slots, ids, offsets and logits are all needed");
    LORAC_TRY(check_call(m, kv, n, slot, ids, offs));
    const lorac_config *c = &m->cfg;
    const int C = c->dim;
    const int N = offs[n] - offs[0];
    LORAC_TRY(reserve_rows(kv, N));
    LORAC_TRY(reserve_seqs(kv, n, N));
    const int R = max_rank(m, n, adapters);
    if ((size_t)N * R > (size_t)kv->cap_xa) {
        free(kv->xa);
        kv->xa = NULL;
        kv->cap_xa = 0;
        ALLOC(kv->xa, (size_t)N * R, "decode LoRA buffer");
        kv->cap_xa = N * R;
    }

    /* the row layout: places in adapter order, each place's rows in token order */
    order_by_adapter(kv->order, n, adapters);
    kv->offs[0] = 0;
    for (int i = 0; i < n; i++) {
        const int q = kv->order[i], s = slot[q], cnt = offs[q + 1] - offs[q];
        kv->offs[i + 1] = kv->offs[i] + cnt;
        kv->krow[i] = s * kv->max_len;
        kv->klen[i] = kv->len[s] + cnt;
        for (int t = 0; t < cnt; t++) {
            kv->ids[kv->offs[i] + t] = ids[offs[q] + t];
            kv->pos[kv->offs[i] + t] = kv->len[s] + t;
        }
    }
    decode_batch b = {kv, adapters, n, kv->order, kv->offs, slot};

    /* embeddings */
    float *x = kv->s.x_in, *y = kv->x_out;
    lorac_model_embed_tokens(m, x, kv->ids, N);
    if (m->wpe) op_embed_fwd(x, m->wpe->data, kv->pos, N, C, 1);
    if (c->gemma) op_scale(x, sqrtf((float)C), (size_t)N * C);
    /* the layers, x_in and x_out swapping */
    lorac_layer_pass p = {.m = m, .N = N, .pos = kv->pos, .s = &kv->s, .linear = batch_linear,
                          .attention = cache_attention, .ctx = &b};
    for (int l = 0; l < c->n_layer; l++) {
        kv->s.x_in = x;
        p.x_next = y;
        lorac_decoder_layer_fwd(&p, l, 0);
        float *t = x;
        x = y;
        y = t;
    }
    kv->s.x_in = y; /* both buffers stay owned: one as x_in, one as x_out */
    kv->x_out = x;
    for (int i = 0; i < n; i++) {
        const int s = slot[kv->order[i]];
        kv->len[s] += kv->offs[i + 1] - kv->offs[i];
    }

    /* the last row of each sequence, in the caller's order: final norm, LM head */
    for (int i = 0; i < n; i++) {
        const int place_row = kv->offs[i + 1] - 1; /* the last row of place i is sequence order[i]'s */
        memcpy(kv->last + (size_t)kv->order[i] * C, x + (size_t)place_row * C, sizeof(float) * C);
    }
    lorac_norm_fwd(m, &m->lnf, kv->s.ln1, kv->s.ln1_mean, kv->s.ln1_rstd, kv->last, n);
    const decode_batch hb = {kv, adapters, n, kv->iota, kv->iota, slot}; /* sequence i at place i, on row i */
    lorac_layer_pass hp = {.m = m, .N = n, .ctx = (void *)&hb};
    batch_linear(&hp, m->lm_head, logits, kv->s.ln1);
    lorac_logit_softcap(c, logits, NULL, (size_t)n * c->vocab); /* Gemma 2; nothing for the others */
    return LORAC_OK;
}
