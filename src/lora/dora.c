/* dora.c - DoRA (Liu et al. 2024, PEFT's use_dora=True): weight-decomposed
 * LoRA. A Linear with weight W [out, in], LoRA pair A, B and scale s has a
 * trainable magnitude m [out] (PEFT's lora_magnitude_vector) and computes
 *
 *   y = b + g * (x W^T + s x A^T B^T),     g[o] = m[o] / ||W + s B A||_o
 *
 * with ||.||_o the L2 norm of output row o of W + s B A (a GPT-2 Conv1D
 * weight [in, out] is normed per output column: the same row of the
 * nn.Linear view). As PEFT does (DoRA paper, section 4.3), the norm is a
 * constant in backward: gradients reach m, A, B and x, never through the
 * norm. m starts as the norm itself (so g = 1 and the model is unchanged).
 *
 * With LoRA dropout in training PEFT feeds the dropped-out input xd to both
 * DoRA terms and keeps the base on x:
 *   y = x W^T + b + (g - 1) xd W^T + g s xd A^T B^T
 * which is the formula above when xd = x.
 *
 * This file holds the norm (s B A by GEMM in chunks of rows, W + s B A
 * squared and summed in double, W dequantized row by row for a quantized base, and cached while A, B and s are unchanged: a
 * hash of their bits keys it) and the DoRA terms of forward / backward that
 * lora_layer.c calls right beside the plain LoRA math. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "lora/dora.h"
#include "ops/ops.h"

/* FNV-1a over the bytes of A, B and the scale: the key of the cached norm. */
static uint64_t ab_key(const lorac_lora *l) {
    uint64_t h = 1469598103934665603ull;
    const float *parts[2] = {l->A.data, l->B.data};
    const size_t n[2] = {l->A.n, l->B.n};
    for (int k = 0; k < 2; k++) {
        const uint32_t *u = (const uint32_t *)(const void *)parts[k];
        for (size_t i = 0; i < n[k]; i++) h = (h ^ u[i]) * 1099511628211ull;
    }
    uint32_t sb;
    memcpy(&sb, &l->scale, sizeof sb);
    h = (h ^ sb) * 1099511628211ull;
    return h ? h : 1;
}

/* Row o of the base weight in the nn.Linear view, [in] floats into row. */
static void base_row(const lorac_linear *L, int o, float *row) {
    if (L->q) {
        lorac_status st = lorac_qweight_dequant_row(L->q, o, row);
        LORAC_ASSERT(st == LORAC_OK);
    } else if (L->w_in_out) {
        for (int i = 0; i < L->in; i++) row[i] = L->W->data[(size_t)i * L->out + o];
    } else {
        memcpy(row, L->W->data + (size_t)o * L->in, sizeof(float) * (size_t)L->in);
    }
}

lorac_status lorac_dora_row_norms(const lorac_linear *L, const lorac_lora *l, float *norm) {
    enum { CHUNK = 64 };
    float *row, *d;
    LORAC_TRY(lorac_alloc((void **)&row, (size_t)L->in, sizeof(float), "DoRA weight row"));
    lorac_status st = lorac_alloc((void **)&d, (size_t)CHUNK * L->in, sizeof(float), "DoRA delta rows");
    const int r = l->r, ob = L->out / l->parts;
    for (int p = 0; st == LORAC_OK && p < l->parts; p++)
        for (int o0 = p * ob; o0 < (p + 1) * ob; o0 += CHUNK) {
            const int n = (p + 1) * ob - o0 < CHUNK ? (p + 1) * ob - o0 : CHUNK;
            /* d[n, in] = s * B[o0 .. o0+n, :] A_p: rows of s B A, one GEMM per chunk */
            op_gemm(0, 0, n, L->in, r, l->scale, l->B.data + (size_t)o0 * r, r, l->A.data + (size_t)p * r * L->in,
                    L->in, 0.0f, d, L->in);
            for (int k = 0; k < n; k++) {
                base_row(L, o0 + k, row);
                double ss = 0;
                for (int i = 0; i < L->in; i++) {
                    const double w = (double)row[i] + d[(size_t)k * L->in + i];
                    ss += w * w;
                }
                norm[o0 + k] = (float)sqrt(ss);
            }
        }
    free(row);
    free(d);
    return st;
}

lorac_status lorac_dora_refresh(const lorac_linear *L, lorac_lora *l) {
    const uint64_t key = ab_key(l);
    if (key == l->wnorm_key) return LORAC_OK;
    LORAC_TRY(lorac_dora_row_norms(L, l, l->wnorm));
    l->wnorm_key = key;
    return LORAC_OK;
}

lorac_status lorac_dora_attach(const lorac_linear *L, lorac_lora *l, int grads) {
    l->dora = 1;
    snprintf(l->M.name, sizeof l->M.name, "%s.lora_magnitude_vector", L->name);
    l->M.ndim = 1;
    l->M.shape[0] = L->out;
    l->M.shape[1] = 1;
    l->M.n = (size_t)L->out;
    l->M.owned = 1;
    LORAC_TRY(lorac_alloc((void **)&l->M.data, l->M.n, sizeof(float), "lora_magnitude_vector"));
    LORAC_TRY(lorac_alloc((void **)&l->wnorm, l->M.n, sizeof(float), "DoRA norms"));
    LORAC_TRY(lorac_alloc((void **)&l->mnorm, l->M.n, sizeof(float), "DoRA merge norms"));
    if (grads) LORAC_TRY(lorac_alloc((void **)&l->M.grad, l->M.n, sizeof(float), "lora_magnitude_vector grad"));
    /* PEFT's DoraLinearLayer.update_layer: m = ||W + s B A|| for the A, B at hand */
    LORAC_TRY(lorac_dora_row_norms(L, l, l->M.data));
    for (int o = 0; o < L->out; o++)
        if (!(l->M.data[o] > 0))
            return lorac_fail(LORAC_ERR_NUMERIC, "%s: row %d of the weight has norm %g; hint: DoRA divides by each "
                              "row's norm, so it needs rows that are not all zero (use plain LoRA here)", L->name, o,
                              (double)l->M.data[o]);
    return LORAC_OK;
}

lorac_status lorac_dora_reserve(lorac_lora *l, int N) {
    if (!l->dora || (N <= l->cap && l->z)) return LORAC_OK;
    free(l->z);
    free(l->bd);
    l->z = l->bd = NULL;
    LORAC_TRY(lorac_alloc((void **)&l->z, (size_t)N * l->M.n, sizeof(float), "DoRA activations"));
    LORAC_TRY(lorac_alloc((void **)&l->bd, (size_t)N * l->M.n, sizeof(float), "DoRA scratch"));
    return LORAC_OK;
}

void lorac_dora_fwd(const lorac_linear *L, lorac_lora *l, float *y, const float *xd, int N, int drop_on) {
    lorac_status st = lorac_dora_refresh(L, l);
    LORAC_ASSERT(st == LORAC_OK); /* memory for the norm's row; a zero norm would have failed at attach */
    const int out = L->out, R = l->parts * l->r, ob = out / l->parts;
    const float *bias = L->b ? L->b->data : NULL;
    float *z = l->z;
    if (drop_on) { /* z = xd W^T, kept in bd too */
        if (L->q) st = lorac_qlinear_fwd(l->bd, xd, L->q, NULL, N, 0.0f);
        else op_linear_fwd(l->bd, xd, L->W->data, NULL, N, L->in, out, L->w_in_out, 0.0f);
        LORAC_ASSERT(st == LORAC_OK);
        memcpy(z, l->bd, sizeof(float) * (size_t)N * out);
    } else { /* z = y - b: the base term of this forward */
        for (size_t n = 0; n < (size_t)N; n++)
            for (int o = 0; o < out; o++) z[n * out + o] = y[n * out + o] - (bias ? bias[o] : 0.0f);
    }
    /* z[:, block p] += s * xa[:, p] B_p^T */
    for (int p = 0; p < l->parts; p++)
        op_gemm(0, 1, N, ob, l->r, l->scale, l->xa + p * l->r, R, l->B.data + (size_t)p * ob * l->r, l->r, 1.0f,
                z + p * ob, out);
    for (size_t n = 0; n < (size_t)N; n++)
        for (int o = 0; o < out; o++) {
            const float g = l->M.data[o] / l->wnorm[o];
            const size_t e = n * out + o;
            y[e] = drop_on ? y[e] + g * z[e] - l->bd[e] : (bias ? bias[o] : 0.0f) + g * z[e];
        }
}

void lorac_dora_infer(const lorac_linear *L, lorac_lora *l, float *y, const float *xa, int N) {
    if (!l->wnorm_key) {
        lorac_status st = lorac_dora_refresh(L, l);
        LORAC_ASSERT(st == LORAC_OK); /* memory for one weight row */
    }
    const int out = L->out, R = l->parts * l->r, ob = out / l->parts;
    const float *bias = L->b ? L->b->data : NULL;
    if (bias) /* y - b: the base term */
        for (size_t n = 0; n < (size_t)N; n++)
            for (int o = 0; o < out; o++) y[n * out + o] -= bias[o];
    for (int p = 0; p < l->parts; p++) /* y[:, block p] += s * xa[:, p] B_p^T */
        op_gemm(0, 1, N, ob, l->r, l->scale, xa + p * l->r, R, l->B.data + (size_t)p * ob * l->r, l->r, 1.0f,
                y + p * ob, out);
    for (size_t n = 0; n < (size_t)N; n++)
        for (int o = 0; o < out; o++)
            y[n * out + o] = (bias ? bias[o] : 0.0f) + l->M.data[o] / l->wnorm[o] * y[n * out + o];
}

void lorac_dora_invalidate(lorac_model *m) {
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].lora && m->lin[i].lora->dora) m->lin[i].lora->wnorm_key = 0;
}

void lorac_dora_bwd_m(const lorac_linear *L, lorac_lora *l, const float *dy, int N) {
    const int out = L->out;
    if (!l->M.grad) return;
    for (int o = 0; o < out; o++) { /* dm[o] += sum_n dy[n, o] z[n, o] / norm[o] */
        double s = 0;
        for (size_t n = 0; n < (size_t)N; n++) s += (double)dy[n * out + o] * l->z[n * out + o];
        l->M.grad[o] += (float)(s / l->wnorm[o]);
    }
}

float *lorac_dora_scale_dy(const lorac_linear *L, lorac_lora *l, const float *dy, int N, float sub) {
    const int out = L->out;
    for (size_t n = 0; n < (size_t)N; n++)
        for (int o = 0; o < out; o++) l->bd[n * out + o] = (l->M.data[o] / l->wnorm[o] - sub) * dy[n * out + o];
    return l->bd;
}
