/* ops.h - the operations every model is built from, forward AND backward.
 *
 * Conventions (as in llm.c):
 *  - all tensors are fp32, row-major, contiguous unless a leading dimension
 *    ("ld") is given; N = number of token rows (batch * time).
 *  - argument order: outputs, inputs, saved state, dims.
 *  - backward functions ACCUMULATE into their gradient outputs (+=), so the
 *    caller zeroes gradients once per step. A gradient pointer may be NULL
 *    when that input is frozen: nothing is computed for it.
 *  - these are the reference implementations; fast kernels elsewhere are
 *    tested against them.
 */
#ifndef LORAC_OPS_H
#define LORAC_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

/* ---- matmul (BLAS) ------------------------------------------------------
 * Linear layer y[N,out] = x[N,in] W^T + b.
 * W layout: w_in_out == 0 -> W is [out, in] (torch.nn.Linear)
 *           w_in_out == 1 -> W is [in, out] (GPT-2 Conv1D)
 * beta: 0 overwrites y, 1 accumulates into y. b may be NULL. */
void op_linear_fwd(float *y, const float *x, const float *W, const float *b, int N, int in, int out, int w_in_out,
                   float beta);
/* y[n, o] += b[o] for every row n of y[N, out] */
void op_add_bias(float *y, const float *b, int64_t N, int64_t out);
/* dx[N,in] += dy[N,out] W   (dx may be NULL) */
void op_linear_bwd_x(float *dx, const float *dy, const float *W, int N, int in, int out, int w_in_out);
/* dW (same layout as W) += dy^T x ; db[out] += sum_rows dy. Either may be NULL. */
void op_linear_bwd_w(float *dW, float *db, const float *dy, const float *x, int N, int in, int out, int w_in_out);
/* Plain GEMM helper: C[M,N] = alpha * op(A) op(B) + beta * C, row-major,
 * ta/tb = 1 means transposed. lda/ldb/ldc are row strides. */
void op_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);

/* ---- elementwise ------------------------------------------------------- */
void op_add(float *y, const float *a, const float *b, size_t n); /* y = a + b (y may alias a or b) */
void op_acc(float *y, const float *x, size_t n);                 /* y += x */
void op_scale(float *y, float s, size_t n);                      /* y *= s */

/* GELU, tanh approximation (GPT-2 "gelu_new"): y = 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))) */
void op_gelu_tanh_fwd(float *y, const float *x, size_t n);
void op_gelu_tanh_bwd(float *dx, const float *dy, const float *x, size_t n);
/* GELU, exact erf form (BERT "gelu"): y = 0.5 x (1 + erf(x / sqrt 2)) */
void op_gelu_erf_fwd(float *y, const float *x, size_t n);
void op_gelu_erf_bwd(float *dx, const float *dy, const float *x, size_t n);
void op_relu_fwd(float *y, const float *x, size_t n);
void op_relu_bwd(float *dx, const float *dy, const float *x, size_t n);
void op_tanh_fwd(float *y, const float *x, size_t n);
void op_tanh_bwd(float *dx, const float *dy, const float *y, size_t n); /* uses the OUTPUT y */
/* SwiGLU (Llama MLP): h = silu(gate) * up, silu(g) = g * sigmoid(g) */
void op_swiglu_fwd(float *h, const float *gate, const float *up, size_t n);
void op_swiglu_bwd(float *dgate, float *dup, const float *dh, const float *gate, const float *up, size_t n);

/* Inverted dropout: y = x * mask / (1 - p), mask[i] in {0,1} drawn from rng.
 * p == 0: y = x and mask is set to all ones (mask may be NULL then). */
void op_dropout_fwd(float *y, uint8_t *mask, const float *x, size_t n, float p, lorac_rng *rng);
void op_dropout_apply(float *y, const uint8_t *mask, const float *x, size_t n, float p); /* p > 0: y = x * mask / (1 - p) */
void op_dropout_bwd(float *dx, const float *dy, const uint8_t *mask, size_t n, float p);
/* Hashed dropout in place (mask from lorac_hash_keep(key, i)): forward on
 * the activations, and the same call on their gradient is its backward. */
void op_dropout_hash(float *x, size_t n, float p, uint64_t key);

/* ---- norms --------------------------------------------------------------
 * LayerNorm over the last dim C: y = (x - mean) * rstd * g + b.
 * Saves mean[N], rstd[N]. dg, db may be NULL (frozen). */
void op_layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *g, const float *b, int N, int C,
                      float eps);
void op_layernorm_bwd(float *dx, float *dg, float *db, const float *dy, const float *x, const float *mean,
                      const float *rstd, const float *g, int N, int C);
/* RMSNorm (Llama): y = x * rstd * g, rstd = 1/sqrt(mean(x^2) + eps). Saves rstd[N]. */
void op_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *g, int N, int C, float eps);
void op_rmsnorm_bwd(float *dx, float *dg, const float *dy, const float *x, const float *rstd, const float *g, int N,
                    int C);

/* ---- embeddings ---------------------------------------------------------
 * y[N,C] = table[ids[i]] (+ y if accumulate). ids are bounds-checked by the caller. */
void op_embed_fwd(float *y, const float *table, const int *ids, int N, int C, int accumulate);
void op_embed_bwd(float *dtable, const float *dy, const int *ids, int N, int C);

/* ---- rotary position embedding (Hugging Face "rotate_half" layout) -------
 * x is [B, T, H, D] with row stride ld (floats between consecutive tokens;
 * ld >= H*D). In place. pos[b*T+t] is the position of token t of sequence b
 * (NULL means pos = t). theta is the rope base (10000 for Llama-2).
 * For i < D/2, angle = pos * theta^(-2i/D):
 *   x'[i]       = x[i] cos - x[i+D/2] sin
 *   x'[i+D/2]   = x[i+D/2] cos + x[i] sin
 * inverse = 1 applies the transposed rotation, which is the backward pass
 * (dx = R^T dy), also in place. */
void op_rope(float *x, const int *pos, int B, int T, int H, int D, int ld, float theta, int inverse);
/* Added for scaled RoPE variants (e.g. Llama-3 rope_scaling): op_rope with
 * caller-supplied inverse frequencies inv_freq[D/2] (angle = pos * inv_freq[i]);
 * op_rope_inv_freq fills the standard ones, inv_freq[i] = theta^(-2i/D). */
void op_rope_inv_freq(float *inv_freq, int D, float theta);
void op_rope_freqs(float *x, const int *pos, int B, int T, int H, int D, int ld, const float *inv_freq, int inverse);

/* ---- attention ----------------------------------------------------------
 * Scaled dot-product attention with grouped-query heads, cache-blocked
 * ("flash attention", attention_flash.c): the [T, T] probabilities are never
 * stored; forward saves one log-sum-exp per query row and backward
 * recomputes them block by block.
 * q: [B, T, Hq, D] row stride ldq; k, v: [B, T, Hkv, D] row strides ldk, ldv
 * (so GPT-2 can pass views into its fused qkv buffer). Hq % Hkv == 0; query
 * head h uses kv head h / (Hq / Hkv). Scale 1/sqrt(D).
 * causal: key j visible to query i only if j <= i.
 * keymask [B*T] (may be NULL): 0 marks a padding key that no query sees.
 * out: [B, T, Hq, D] contiguous (row stride Hq*D); a query that sees no key
 * at all gets output 0 (and no gradient).
 * lse [B, Hq, T]: saved log sum_j exp(score_ij) over the visible keys (+inf
 * for a query that sees none).
 * Results do not depend on the number of threads. */
void op_attention_fwd(float *out, float *lse, const float *q, int ldq, const float *k, int ldk, const float *v,
                      int ldv, const uint8_t *keymask, int B, int T, int Hq, int Hkv, int D, int causal);
/* Accumulates into dq, dk, dv (same layouts/strides as q, k, v; each may be
 * NULL). out and lse are forward's; keymask and causal must be forward's. */
void op_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                      const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                      const uint8_t *keymask, int B, int T, int Hq, int Hkv, int D, int causal);
/* The general form of both: the sequences and the mask described by one
 * struct. Padded (offs NULL): B sequences of T rows, keymask as above.
 * Packed: B sequences laid end to end with no padding, the rows of sequence
 * b being offs[b] .. offs[b+1]-1 of q, k, v and out (keymask unused, T
 * ignored); the attention is then block-diagonal (a query sees only keys of
 * its own sequence), lse is [Hq, len_b] per sequence at lse + Hq * offs[b],
 * and each result equals the padded op on that sequence alone.
 * window > 0 is a sliding window (Mistral, Gemma's local layers): query i
 * sees keys j > i - window only. scale multiplies the scores (0: 1/sqrt(D);
 * Gemma uses query_pre_attn_scalar^-1/2). softcap > 0 (Gemma 2's
 * attn_logit_softcapping) bends each scaled score z into c tanh(z / c)
 * before the softmax, and backward multiplies dz by 1 - tanh(z / c)^2. */
typedef struct op_att_seq {
    int B, T;
    const uint8_t *keymask;
    const int *offs;
    int causal, window;
    float scale;
    float softcap;
    /* Keys held apart from the queries (a KV cache; forward only, packed
     * queries, no keymask): krow, klen non-NULL put the keys and values of
     * sequence b at rows krow[b] .. krow[b] + klen[b] - 1 of k and v, and its
     * queries (rows offs[b] .. offs[b+1]-1 of q and out) are the last of those
     * positions: query i of sequence b sits at position klen[b] - len_b + i,
     * which is what causal and window refer to. lse as for packed sequences. */
    const int *krow, *klen;
    /* Training: dropout p on the attention probabilities (0 = none), as
     * torch's attention dropout: out = (P * M / (1 - p)) V with P the
     * softmax; the mask M of (sequence b, head h, query i, key j; i and j
     * counted within the sequence) is lorac_hash_keep(drop_key, id) with
     * id = ((b * Hq + h) * 2^20 + i) * 2^20 + j (core/rng.h), recomputed in
     * backward, so forward and backward need the same drop_key. Not with
     * krow/klen. */
    float dropout;
    uint64_t drop_key;
} op_att_seq;
void op_attention_seq_fwd(float *out, float *lse, const float *q, int ldq, const float *k, int ldk, const float *v,
                          int ldv, const op_att_seq *sq, int Hq, int Hkv, int D);
void op_attention_seq_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                          const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                          const op_att_seq *sq, int Hq, int Hkv, int D);
/* The SIMD flavour of the attention kernels: AUTO (the default) is the best
 * this CPU runs, at most the level LORAC_ISA allows (ops/isa.h). Forcing one
 * is for tests; returns 0, changing nothing, when this build or CPU cannot
 * run it. Not thread-safe. */
typedef enum { OP_ATT_ISA_AUTO, OP_ATT_ISA_GENERIC, OP_ATT_ISA_AVX2, OP_ATT_ISA_AVX512 } op_att_isa;
int op_attention_set_isa(op_att_isa isa);
const char *op_attention_isa_name(void); /* of the flavour in use: "generic", "avx2", "avx512" */

/* ---- losses --------------------------------------------------------------
 * Softmax cross-entropy over rows of logits[N, V]. targets[i] < 0 means
 * "ignore this row" (Hugging Face's -100). Returns the SUM of -log p[target]
 * over valid rows and sets *count to their number. If dlogits is non-NULL
 * it is written (not accumulated) with (softmax - onehot) * grad_scale for
 * valid rows and 0 for ignored rows; dlogits may alias logits. Computed in
 * double where it matters (log-sum-exp). */
double op_xent(float *dlogits, const float *logits, const int *targets, int N, int V, float grad_scale, int *count);

/* Gradient checking helper used by tests: nothing here. */

#endif
