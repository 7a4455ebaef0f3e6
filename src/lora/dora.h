/* dora.h - DoRA's magnitude vector and the terms it adds to a LoRA Linear
 * (the math is in dora.c's header comment). lora_layer.c calls these; a
 * caller that applies an adapter to rows of its own (the KV-cache decode
 * path) goes through lorac_lora_term_fwd (models/model.h), which calls
 * lorac_dora_infer. */
#ifndef LORAC_LORA_DORA_H
#define LORAC_LORA_DORA_H

#include "models/model.h"

/* Make l a DoRA adapter: allocate M = lora_magnitude_vector [out] (with a
 * gradient buffer when grads) and the norm caches, and set M to
 * ||W + s B A|| of each output row (PEFT's init). LORAC_ERR_NUMERIC when a
 * row has norm 0. */
lorac_status lorac_dora_attach(const lorac_linear *L, lorac_lora *l, int grads);
/* norm[o] = ||W + s B A||_o (in double, then rounded), W dequantized row by
 * row for a quantized base. */
lorac_status lorac_dora_row_norms(const lorac_linear *L, const lorac_lora *l, float *norm);
/* l->wnorm up to date for the current A, B and scale (recomputed only when
 * their bits changed). */
lorac_status lorac_dora_refresh(const lorac_linear *L, lorac_lora *l);
/* z and the scratch for N rows of l (nothing for a plain LoRA pair). */
lorac_status lorac_dora_reserve(lorac_lora *l, int N);
/* y [N, out] holds x W^T + b and l->xa holds xd A^T: make y the DoRA output,
 * saving z = xd W^T + s xd A^T B^T for backward. drop_on: xd is a dropout of
 * x (training), so xd W^T is formed again as PEFT does. */
void lorac_dora_fwd(const lorac_linear *L, lorac_lora *l, float *y, const float *xd, int N, int drop_on);
/* Inference (no saved state): y [N, out] holds x W^T + b and xa holds
 * x A^T; y becomes b + g (x W^T + s xa B^T). The norms are computed on the
 * first call (wnorm_key 0) and reused after: whoever changes A, B or the
 * scale sets wnorm_key to 0 (lorac_dora_invalidate) or calls
 * lorac_dora_refresh. Not hashing here keeps a decoded token cheap. */
void lorac_dora_infer(const lorac_linear *L, lorac_lora *l, float *y, const float *xa, int N);
/* Forget the cached norms of every DoRA pair on m's Linears (after an
 * optimizer step changed A and B). */
void lorac_dora_invalidate(lorac_model *m);
/* dm += sum over rows of dy * z / norm. */
void lorac_dora_bwd_m(const lorac_linear *L, lorac_lora *l, const float *dy, int N);
/* l->bd = (m / norm - sub) * dy per output column; returns l->bd. */
float *lorac_dora_scale_dy(const lorac_linear *L, lorac_lora *l, const float *dy, int N, float sub);

#endif
