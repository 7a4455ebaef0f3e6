/* ggml_blocks.h - GGML block (quantized) formats: sizes, scalar reference
 * dequantizers (bit-exact with ggml-quants.c and gguf-py) and quantizers.
 *
 * A block type stores `lorac_block_size(t)` consecutive elements of a row in
 * `lorac_block_bytes(t)` bytes. Plain scalar dtypes are treated as blocks of
 * one element, so `nbytes = numel / block_size * block_bytes` holds for
 * every dtype. Layouts (all little-endian, f16 = IEEE half):
 *   Q4_0 (32 elems, 18 B):  f16 d; u8 qs[16]        x = (nibble - 8) * d
 *   Q4_1 (32 elems, 20 B):  f16 d, m; u8 qs[16]     x = nibble * d + m
 *   Q5_0 (32 elems, 22 B):  f16 d; u32 qh; u8 qs[16]     x = (q5 - 16) * d
 *   Q5_1 (32 elems, 24 B):  f16 d, m; u32 qh; u8 qs[16]  x = q5 * d + m
 *   Q8_0 (32 elems, 34 B):  f16 d; i8 qs[32]        x = q * d
 *   IQ4_NL (32 elems, 18 B): f16 d; u8 qs[16]       x = kvalues[nibble] * d
 *   Q2_K (256 elems, 84 B):  u8 scales[16]; u8 qs[64]; f16 d, dmin
 *   Q3_K (256 elems, 110 B): u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d
 *   Q4_K (256 elems, 144 B): f16 d, dmin; u8 scales[12]; u8 qs[128]
 *   Q5_K (256 elems, 176 B): f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
 *   Q6_K (256 elems, 210 B): u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d
 *   IQ4_XS (256 elems, 136 B): f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]
 * In the 4-bit formats byte j holds element j in its low nibble and element
 * j + 16 (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL) or j + 32 (Q4_K, Q5_K, per 64-element chunk)
 * in its high one; the formats from Q5_0 on are decoded through one common
 * form, x = a * level - c per group of 16 or 32 (ggml_blocks_impl.h, where
 * each layout is spelled out in ggml_grouped.c). */
#ifndef LORAC_QUANT_GGML_BLOCKS_H
#define LORAC_QUANT_GGML_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "io/tensorfile.h"

/* Elements per block (1 for scalar dtypes); 0 for an invalid dtype. */
int lorac_block_size(lorac_dtype t);
/* Bytes per block (the element size for scalar dtypes); 0 if invalid. */
size_t lorac_block_bytes(lorac_dtype t);
/* 1 for the GGML block formats (Q4_0 .. IQ4_XS), 0 otherwise. */
int lorac_is_block_type(lorac_dtype t);

/* Quantize n fp32 elements (n a multiple of the block size) into n /
 * block_size blocks of type t at dst (ggml_quant.c). Q4_0, Q4_1, Q5_0, Q5_1
 * and Q8_0 follow ggml's reference quantizers (quantize_row_*_ref) as
 * llama.cpp's gguf-py writes them, bit for bit
 * (tests/ref/make_gguf_quant_fixtures.py):
 *   Q8_0  d = amax / 127, q = roundf(x / d)
 *   Q4_0  d = -m / 8 with m the element of largest |x|, q = min(15, trunc(x / d + 8.5))
 *   Q5_0  d = -m / 16, q = min(31, trunc(x / d + 16.5))
 *   Q4_1  d = (max - min) / 15, m = min, q = min(15, trunc((x - min) / d + 0.5))
 *   Q5_1  d = (max - min) / 31, m = min, q = min(31, trunc((x - min) / d + 0.5))
 * (1 / d computed once in fp32, as those do). Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
 * IQ4_NL and IQ4_XS are lorac's own one-pass quantizers, not llama.cpp's
 * iterative searches (make_qkx2_quants / make_qx_quants / the IQ4 scale
 * refinement; gguf-py has no quantizer for them): per sub-block the scale
 * (and for Q2_K/Q4_K/Q5_K the min) that spans its values, the sub-block
 * scales quantized to 4 bits (Q2_K), 6 bits (Q3_K, Q4_K, Q5_K, IQ4_XS) or
 * 8 bits (Q6_K) against f16 super-block scales, then every value rounded to
 * the nearest level (IQ4: the nearest of its 16 non-uniform levels). Valid
 * blocks that any GGUF reader decodes, with an error a little above
 * llama.cpp's (no importance weights either); tested against round-trip
 * bounds (test_gguf_quant.c, test_gguf_grouped.c).
 * A NaN or infinity in src is LORAC_ERR_NUMERIC; a bad t or n LORAC_ERR_ARG. */
lorac_status lorac_quant_row(lorac_dtype t, const float *src, void *dst, int64_t n);
/* The same with stochastic rounding of the values to the levels (rng != NULL;
 * NULL is lorac_quant_row): each value goes to the level below or above with
 * the probabilities that make it unbiased; scales and mins are chosen as
 * above, so a value on a level stays there. For re-quantizing a merged
 * weight: a change smaller than half a step survives on average instead of
 * rounding back to the old level (lora/merge.h). */
struct lorac_rng;
lorac_status lorac_quant_row_rng(lorac_dtype t, const float *src, void *dst, int64_t n, struct lorac_rng *rng);

/* Dequantize n elements (n a multiple of the block size) of block type t
 * from `src` (n / block_size blocks, any alignment) into dst. Returns
 * LORAC_ERR_ARG for a non-block dtype or a bad n. */
lorac_status lorac_dequant_row(lorac_dtype t, const void *src, float *dst, int64_t n);

#endif
