/* lora_layer.c - forward and backward of a Linear module with an optional
 * LoRA adapter. This is the heart of LoRA, so the math is written out:
 *
 *   forward:  y  = x W^T + b                      (frozen base, BLAS)
 *             xd = dropout(x)                     [N, in]
 *             xa = xd A^T                         [N, parts*r]   (kept)
 *             y[:, block p] += s * xa[:, p] B_p^T  B_p = rows of B in block p
 *
 *   backward: dx += dy W                          (frozen W: no dW is formed)
 *             dxa[:, p] = dy[:, block p] B_p      [N, parts*r]
 *             dB_p += s * dy[:, block p]^T xa[:, p]
 *             dA   += s * dxa^T xd
 *             dx   += dropout_bwd(s * dxa A)
 *
 * When W or b are trainable (full fine-tuning, bias="all", modules_to_save)
 * their gradients are formed as well: dW += dy^T x, db += sum(dy).
 *
 * DoRA (l->dora, lora/dora.c): the LoRA term goes through lorac_dora_fwd,
 * which rescales each output column by m / ||W + s B A||; backward scales
 * dy the same way (the norm is a constant) and adds dm.
 *
 * QLoRA (L->q set): the frozen base term runs over the quantized weight,
 * y = x W^T + b by lorac_qlinear_fwd in training (exact fp32 activations
 * past 8 rows) or lorac_qlinear_fwd_infer at inference (int8 activations at
 * every N on GGML blocks, quant/qmatmul.h), and dx += dy W by
 * lorac_qlinear_bwd_x (tiles of W dequantized on the fly); W never has a
 * gradient, b may.
 *
 * A KV-cache decoding step (models/kvcache.c) computes the same LoRA term
 * for its few rows in one fused pass per Linear (lora/lora_infer.c).
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "lora/dora.h"
#include "lora/lora_infer.h"
#include "models/model.h"
#include "ops/ops.h"

lorac_status lorac_lora_reserve(lorac_lora *l, int in, int N) {
    if (N <= l->cap) return LORAC_OK;
    free(l->xa);
    free(l->xd);
    free(l->mask);
    free(l->dxa);
    free(l->dxd);
    l->xa = l->xd = l->dxa = l->dxd = NULL;
    l->mask = NULL;
    l->cap = 0;
    LORAC_TRY(lorac_alloc((void **)&l->xa, (size_t)N * l->parts * l->r, sizeof(float), "LoRA activations"));
    LORAC_TRY(lorac_alloc((void **)&l->dxa, (size_t)N * l->parts * l->r, sizeof(float), "LoRA gradients"));
    if (l->dropout > 0) {
        LORAC_TRY(lorac_alloc((void **)&l->xd, (size_t)N * in, sizeof(float), "LoRA dropout input"));
        LORAC_TRY(lorac_alloc((void **)&l->mask, (size_t)N * in, 1, "LoRA dropout mask"));
        LORAC_TRY(lorac_alloc((void **)&l->dxd, (size_t)N * in, sizeof(float), "LoRA dropout gradients"));
    }
    LORAC_TRY(lorac_dora_reserve(l, N));
    l->cap = N;
    return LORAC_OK;
}

/* dx += dy W over the frozen (fp32 or quantized) base */
static void base_bwd_x(const lorac_linear *L, float *dx, const float *dy, int N) {
    if (L->q) {
        lorac_status st = lorac_qlinear_bwd_x(dx, dy, L->q, N);
        LORAC_ASSERT(st == LORAC_OK);
    } else {
        op_linear_bwd_x(dx, dy, L->W->data, N, L->in, L->out, L->w_in_out);
    }
}

void lorac_linear_base_fwd(const lorac_linear *L, float *y, const float *x, int N) {
    if (L->q) { /* inference: a quantized W takes the int8 road at every N (quant/qmatmul.h) */
        lorac_status st = lorac_qlinear_fwd_infer(y, x, L->q, L->b ? L->b->data : NULL, N, 0.0f);
        LORAC_ASSERT(st == LORAC_OK); /* shapes were checked when the weight was quantized */
    } else {
        op_linear_fwd(y, x, L->W->data, L->b ? L->b->data : NULL, N, L->in, L->out, L->w_in_out, 0.0f);
    }
}

void lorac_lora_term_fwd(const lorac_linear *L, lorac_lora *l, float *y, const float *x, int N, float *xa) {
    const int R = l->parts * l->r, ob = L->out / l->parts;
    /* xa[N, R] = x[N, in] A[R, in]^T */
    op_gemm(0, 1, N, R, L->in, 1.0f, x, L->in, l->A.data, L->in, 0.0f, xa, R);
    if (l->dora) { /* y = b + g (y - b + s xa B^T), g = m / ||W + s B A|| */
        lorac_dora_infer(L, l, y, xa, N);
        return;
    }
    /* y[:, block p] += s * xa[:, p] B_p^T */
    for (int p = 0; p < l->parts; p++)
        op_gemm(0, 1, N, ob, l->r, l->scale, xa + p * l->r, R, l->B.data + (size_t)p * ob * l->r, l->r, 1.0f,
                y + p * ob, L->out);
}

void lorac_lora_add(const lorac_linear *L, lorac_lora *l, float *y, const float *xd, int N, int drop_on) {
    LORAC_ASSERT(N <= l->cap);
    if (!l->dora) {
        lorac_lora_term_fwd(L, l, y, xd, N, l->xa); /* xa is kept for backward */
        return;
    }
    /* xa[N, R] = xd[N, in] A[R, in]^T, then DoRA's terms (z kept for dm) */
    op_gemm(0, 1, N, l->parts * l->r, L->in, 1.0f, xd, L->in, l->A.data, L->in, 0.0f, l->xa, l->parts * l->r);
    lorac_dora_fwd(L, l, y, xd, N, drop_on);
}

/* The LoRA pair's input: x, or with LoRA dropout the dropped x (training;
 * replay: the first forward's masks) or a copy of x with an all-keep mask
 * (inference), which backward reads. */
static const float *lora_input(const lorac_linear *L, lorac_lora *l, const float *x, int N, lorac_rng *rng,
                               int training) {
    LORAC_ASSERT(N <= l->cap);
    const float *xd = x;
    if (l->dropout > 0 && training == LORAC_TRAIN_REPLAY) {
        op_dropout_apply(l->xd, l->mask, x, (size_t)N * L->in, l->dropout); /* the masks of the first forward */
        xd = l->xd;
    } else if (l->dropout > 0 && training) {
        op_dropout_fwd(l->xd, l->mask, x, (size_t)N * L->in, l->dropout, rng);
        xd = l->xd;
    } else if (l->dropout > 0) {
        memcpy(l->xd, x, sizeof(float) * (size_t)N * L->in);
        memset(l->mask, 1, (size_t)N * L->in);
    }
    return xd;
}

void lorac_linear_fwd(lorac_linear *L, float *y, const float *x, int N, lorac_rng *rng, int training) {
    if (training && L->q) { /* gradients follow: the exact fp32 roads for N > 8 */
        lorac_status st = lorac_qlinear_fwd(y, x, L->q, L->b ? L->b->data : NULL, N, 0.0f);
        LORAC_ASSERT(st == LORAC_OK);
    } else {
        lorac_linear_base_fwd(L, y, x, N);
    }
    lorac_lora *l = L->lora;
    if (!l || l->merged) return;
    lorac_lora_add(L, l, y, lora_input(L, l, x, N, rng, training), N, l->dropout > 0 && training);
}

void lorac_linear_infer_fwd(lorac_linear *L, float *y, const float *x, int N) {
    lorac_lora *l = L->lora;
    if (!l || l->merged) {
        lorac_linear_base_fwd(L, y, x, N);
        return;
    }
    const float *xd = lora_input(L, l, x, N, NULL, 0);
    if (l->dora) {
        lorac_linear_base_fwd(L, y, x, N);
        lorac_lora_add(L, l, y, xd, N, 0);
    } else { /* xa kept, as lorac_lora_add keeps it */
        lorac_lora_infer_linear(L, l, y, x, xd, N, l->xa);
    }
}

/* The LoRA pair's backward for an output gradient dyl (dy, or DoRA's scaled
 * dy): dB, dA, and dxd += s * (dyl B) A. */
static void lora_bwd(const lorac_linear *L, lorac_lora *l, const float *dyl, const float *xd, float *dxd, int N) {
    const int R = l->parts * l->r, ob = L->out / l->parts;
    float *dxa = l->dxa;
    for (int p = 0; p < l->parts; p++) {
        const float *Bp = l->B.data + (size_t)p * ob * l->r;
        /* dxa[:, p] = dyl[:, block p] B_p          [N, r] */
        op_gemm(0, 0, N, l->r, ob, 1.0f, dyl + p * ob, L->out, Bp, l->r, 0.0f, dxa + p * l->r, R);
        /* dB_p += s * dyl[:, block p]^T xa[:, p]    [ob, r] */
        if (l->B.grad)
            op_gemm(1, 0, ob, l->r, N, l->scale, dyl + p * ob, L->out, l->xa + p * l->r, R, 1.0f,
                    l->B.grad + (size_t)p * ob * l->r, l->r);
    }
    /* dA += s * dxa^T xd                            [R, in] */
    if (l->A.grad) op_gemm(1, 0, R, L->in, N, l->scale, dxa, R, xd, L->in, 1.0f, l->A.grad, L->in);
    if (dxd) op_gemm(0, 0, N, L->in, R, l->scale, dxa, R, l->A.data, L->in, 1.0f, dxd, L->in);
}

void lorac_linear_bwd(lorac_linear *L, float *dx, const float *dy, const float *x, int N) {
    if (L->W->grad || (L->b && L->b->grad))
        op_linear_bwd_w(L->W->grad, L->b ? L->b->grad : NULL, dy, x, N, L->in, L->out, L->w_in_out);
    lorac_lora *l = L->lora;
    const int active = l && !l->merged;
    const int drop = active && l->dropout > 0;
    LORAC_ASSERT(!active || N <= l->cap);
    if (active && l->dora) lorac_dora_bwd_m(L, l, dy, N);
    /* DoRA without dropout: y = b + g (x W^T + s x A^T B^T), so both terms see g dy */
    const float *dyl = active && l->dora && !drop ? lorac_dora_scale_dy(L, l, dy, N, 0.0f) : dy;
    if (dx) base_bwd_x(L, dx, dyl, N); /* dx += dy W (DoRA: g dy W) */
    if (!active) return;
    const float *xd = drop ? l->xd : x;
    float *dxd = drop ? l->dxd : dx;
    if (drop && dx) memset(dxd, 0, sizeof(float) * (size_t)N * L->in);
    if (l->dora && drop) { /* with dropout xd feeds (g - 1) xd W^T and g s xd A^T B^T; x feeds x W^T */
        if (dx) base_bwd_x(L, dxd, lorac_dora_scale_dy(L, l, dy, N, 1.0f), N);
        dyl = lorac_dora_scale_dy(L, l, dy, N, 0.0f);
    }
    lora_bwd(L, l, dyl, xd, dx ? dxd : NULL, N);
    if (drop && dx) op_dropout_bwd(dx, dxd, l->mask, (size_t)N * L->in, l->dropout);
}
