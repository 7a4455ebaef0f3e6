/* decoder_blocks.c - the pieces by which the Llama family's members differ,
 * used by decoder.c's layer forward and backward:
 *
 *   norms      RMSNorm scales by g (Llama, Qwen, Phi-3) or by 1 + g (Gemma,
 *              whose weights are stored centred on 0);
 *   MLP        GPT-2: h = gelu_tanh(fc)
 *              Llama / Qwen / Mistral: h = silu(gate) * up          (SwiGLU)
 *              Gemma: h = gelu_tanh(gate) * up                      (GeGLU)
 *              Phi-3: SwiGLU with gate | up as the two halves of one row of
 *              gate_up_proj's output;
 *   qk-norm    Qwen3 and Gemma 3 RMSNorm each head of q and of k (over its D
 *              values, one weight vector per projection) before RoPE;
 *   RoPE       one table of inverse frequencies per layer: Gemma 3's local
 *              layers have their own base, Llama 3.1 rescales long wavelengths
 *              (rope_scaling "llama3", or a GGUF's rope_freqs.weight divisors),
 *              others divide positions ("linear");
 *   soft caps  Gemma 2 bends its final logits into c tanh(logits / c) (its
 *              attention scores too: op_att_seq.softcap).
 */
#include <math.h>
#include <string.h>

#include "models/decoder_blocks.h"
#include "ops/ops.h"

/* ---- norms ---------------------------------------------------------------- */

/* The gain a norm multiplies by: g, or for Gemma 1 + g (computed afresh,
 * since training may have changed g). */
static const float *norm_gain(const lorac_norm *n) {
    if (!n->g1) return n->g->data;
    for (size_t i = 0; i < n->g->n; i++) n->g1[i] = 1.0f + n->g->data[i];
    return n->g1;
}

void lorac_rms_fwd(const lorac_model *m, const lorac_norm *n, float *y, float *rstd, const float *x, int rows,
                   int dim) {
    op_rmsnorm_fwd(y, rstd, x, norm_gain(n), rows, dim, m->cfg.norm_eps);
}

/* d(1 + g)/dg = 1: the gradient of g is that of the gain. */
void lorac_rms_bwd(const lorac_norm *n, float *dx, const float *dy, const float *x, const float *rstd, int rows,
                   int dim) {
    op_rmsnorm_bwd(dx, n->g->grad, dy, x, rstd, n->g1 ? n->g1 : n->g->data, rows, dim);
}

/* ---- MLP activation --------------------------------------------------------- */

/* GeGLU: h = gelu_tanh(gate) * up. */
static void geglu_fwd(float *h, const float *gate, const float *up, size_t n) {
    op_gelu_tanh_fwd(h, gate, n);
    for (size_t i = 0; i < n; i++) h[i] *= up[i];
}

/* dup += dh gelu(gate); dgate = gelu'(gate) dh up, using dgate as scratch
 * first (so the caller's dgate must be zero only for the sum below) and
 * overwriting dh with dh up. */
static void geglu_bwd(float *dgate, float *dup, float *dh, const float *gate, const float *up, size_t n) {
    op_gelu_tanh_fwd(dgate, gate, n);
    for (size_t i = 0; i < n; i++) {
        dup[i] += dh[i] * dgate[i];
        dh[i] *= up[i];
    }
    memset(dgate, 0, n * sizeof *dgate);
    op_gelu_tanh_bwd(dgate, dh, gate, n);
}

void lorac_mlp_act_fwd(const lorac_model *m, const lorac_layer *L, float *h, const float *fc, const float *up, int N) {
    const size_t F = (size_t)m->cfg.ffn_dim, n = (size_t)N * F;
    if (m->cfg.fused) /* Phi-3: each row of fc is gate | up */
        for (int r = 0; r < N; r++) op_swiglu_fwd(h + r * F, fc + 2 * r * F, fc + 2 * r * F + F, F);
    else if (m->cfg.gemma)
        geglu_fwd(h, fc, up, n);
    else if (L->up)
        op_swiglu_fwd(h, fc, up, n);
    else
        op_gelu_tanh_fwd(h, fc, n);
}

void lorac_mlp_act_bwd(const lorac_model *m, const lorac_layer *L, float *dfc, float *dup, float *dh, const float *fc,
                       const float *up, int N) {
    const size_t F = (size_t)m->cfg.ffn_dim, n = (size_t)N * F;
    if (m->cfg.fused)
        for (int r = 0; r < N; r++)
            op_swiglu_bwd(dfc + 2 * r * F, dfc + 2 * r * F + F, dh + r * F, fc + 2 * r * F, fc + 2 * r * F + F, F);
    else if (m->cfg.gemma)
        geglu_bwd(dfc, dup, dh, fc, up, n);
    else if (L->up)
        op_swiglu_bwd(dfc, dup, dh, fc, up, n);
    else
        op_gelu_tanh_bwd(dfc, dh, fc, n);
}

/* ---- qk-norm ----------------------------------------------------------------
 * q is [N, Hq, D] contiguous, k [N, Hkv, D] right after it (qkv_split's
 * unfused layout): N*Hq rows of D, then N*Hkv rows. raw keeps q | k as the
 * projections made them, rstd one value per row, for backward. */

void lorac_qk_norm_fwd(const lorac_model *m, const lorac_layer *L, float *q, float *k, float *raw, float *rstd, int N) {
    const lorac_config *c = &m->cfg;
    const size_t nq = (size_t)N * c->n_head, nk = (size_t)N * c->n_kv_head, D = (size_t)c->head_dim;
    memcpy(raw, q, sizeof(float) * nq * D);
    memcpy(raw + nq * D, k, sizeof(float) * nk * D);
    lorac_rms_fwd(m, &L->q_norm, q, rstd, raw, (int)nq, (int)D);
    lorac_rms_fwd(m, &L->k_norm, k, rstd + nq, raw + nq * D, (int)nk, (int)D);
}

/* dq, dk: gradients of the normed q, k in; of the raw ones out (in place). */
void lorac_qk_norm_bwd(const lorac_model *m, const lorac_layer *L, float *dq, float *dk, const float *raw,
                       const float *rstd, float *scratch, int N) {
    const lorac_config *c = &m->cfg;
    const size_t nq = (size_t)N * c->n_head, nk = (size_t)N * c->n_kv_head, D = (size_t)c->head_dim;
    memset(scratch, 0, sizeof(float) * nq * D);
    lorac_rms_bwd(&L->q_norm, scratch, dq, raw, rstd, (int)nq, (int)D);
    memcpy(dq, scratch, sizeof(float) * nq * D);
    memset(scratch, 0, sizeof(float) * nk * D);
    lorac_rms_bwd(&L->k_norm, scratch, dk, raw + nq * D, rstd + nq, (int)nk, (int)D);
    memcpy(dk, scratch, sizeof(float) * nk * D);
}

/* ---- RoPE --------------------------------------------------------------------- */

void lorac_logit_softcap(const lorac_config *c, float *logits, float *slope, size_t n) {
    const float cap = c->final_softcap;
    if (cap <= 0) return;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float t = tanhf(logits[i] / cap);
        logits[i] = cap * t;
        if (slope) slope[i] = 1.0f - t * t;
    }
}

void lorac_logit_softcap_bwd(const lorac_config *c, float *dlogits, const float *slope, size_t n) {
    if (c->final_softcap <= 0) return;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dlogits[i] *= slope[i];
}

void lorac_rope_table(const lorac_config *c, int local, float *inv_freq) {
    const int D = c->head_dim, half = D / 2;
    const double theta = local && c->rope_local_theta > 0 ? c->rope_local_theta : c->rope_theta;
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow(theta, 2.0 * i / D);
        if (!local && c->rope_scale_type == 3) {
            f /= c->rope_freq_factor[i]; /* GGUF rope_freqs.weight */
        } else if (!local && c->rope_scale_type == 1) {
            f /= c->rope_factor;
        } else if (!local && c->rope_scale_type == 2) {
            /* Llama 3.1: wavelengths longer than orig / low_freq_factor slowed by factor,
               shorter than orig / high_freq_factor kept, a linear blend in between */
            const double wavelen = 2 * 3.14159265358979323846 / f, lo = c->rope_orig_ctx / c->rope_low_freq,
                         hi = c->rope_orig_ctx / c->rope_high_freq;
            if (wavelen > lo) {
                f /= c->rope_factor;
            } else if (wavelen >= hi) {
                const double smooth = (c->rope_orig_ctx / wavelen - c->rope_low_freq) /
                                      (c->rope_high_freq - c->rope_low_freq);
                f = (1 - smooth) * f / c->rope_factor + smooth * f;
            }
        }
        inv_freq[i] = (float)f;
    }
}
