/* decoder_blocks.h - the pieces by which the Llama family's members differ
 * (decoder_blocks.c explains each); used by decoder.c. Not public API. */
#ifndef LORAC_MODELS_DECODER_BLOCKS_H
#define LORAC_MODELS_DECODER_BLOCKS_H

#include "models/model.h"

/* RMSNorm of rows x dim with n's gain (g, or 1 + g for Gemma); backward
 * accumulates into dx and into n's gain gradient when it trains. */
void lorac_rms_fwd(const lorac_model *m, const lorac_norm *n, float *y, float *rstd, const float *x, int rows, int dim);
void lorac_rms_bwd(const lorac_norm *n, float *dx, const float *dy, const float *x, const float *rstd, int rows,
                   int dim);

/* The MLP's activation h [N, F] from its projections' outputs (fc [N, F],
 * or [N, 2F] gate | up for Phi-3; up [N, F] or unused); backward adds into
 * dfc and dup, which the caller zeroes, and may overwrite dh (Gemma). */
void lorac_mlp_act_fwd(const lorac_model *m, const lorac_layer *L, float *h, const float *fc, const float *up, int N);
void lorac_mlp_act_bwd(const lorac_model *m, const lorac_layer *L, float *dfc, float *dup, float *dh, const float *fc,
                       const float *up, int N);

/* Qwen3 / Gemma 3: q and k RMSNormed per head, in place; raw [N, (Hq+Hkv) D]
 * and rstd [N (Hq+Hkv)] keep what backward needs. Backward turns the
 * gradients of the normed q, k into those of the raw ones, in place
 * (scratch: N Hq D floats). */
void lorac_qk_norm_fwd(const lorac_model *m, const lorac_layer *L, float *q, float *k, float *raw, float *rstd, int N);
void lorac_qk_norm_bwd(const lorac_model *m, const lorac_layer *L, float *dq, float *dk, const float *raw,
                       const float *rstd, float *scratch, int N);

/* Gemma 2's final_logit_softcapping (cfg.final_softcap > 0): logits[n]
 * become c tanh(logits / c), in place; slope (may be NULL) receives
 * 1 - tanh^2, by which backward multiplies the logits' gradient
 * (lorac_logit_softcap_bwd). Nothing happens when the model has no cap. */
void lorac_logit_softcap(const lorac_config *c, float *logits, float *slope, size_t n);
void lorac_logit_softcap_bwd(const lorac_config *c, float *dlogits, const float *slope, size_t n);

/* RoPE's inverse frequencies [head_dim / 2] for a global (local = 0) or local layer. */
void lorac_rope_table(const lorac_config *c, int local, float *inv_freq);

#endif
