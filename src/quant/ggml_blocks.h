/* ggml_blocks.h - GGML block (quantized) formats: sizes and scalar
 * reference dequantizers, bit-exact with ggml-quants.c.
 *
 * A block type stores `lorac_block_size(t)` consecutive elements of a row in
 * `lorac_block_bytes(t)` bytes. Plain scalar dtypes are treated as blocks of
 * one element, so `nbytes = numel / block_size * block_bytes` holds for
 * every dtype. Layouts (all little-endian, f16 = IEEE half):
 *   Q4_0 (32 elems, 18 B):  f16 d; u8 qs[16]        x = (nibble - 8) * d
 *   Q4_1 (32 elems, 20 B):  f16 d, m; u8 qs[16]     x = nibble * d + m
 *   Q8_0 (32 elems, 34 B):  f16 d; i8 qs[32]        x = q * d
 *   Q4_K (256 elems, 144 B): f16 d, dmin; u8 scales[12]; u8 qs[128]
 *   Q6_K (256 elems, 210 B): u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d
 * In the 4-bit formats byte j holds element j in its low nibble and element
 * j + 16 (Q4_0/Q4_1) or j + 32 (Q4_K, per 64-element chunk) in its high one. */
#ifndef LORAC_QUANT_GGML_BLOCKS_H
#define LORAC_QUANT_GGML_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "io/tensorfile.h"

/* Elements per block (1 for scalar dtypes); 0 for an invalid dtype. */
int lorac_block_size(lorac_dtype t);
/* Bytes per block (the element size for scalar dtypes); 0 if invalid. */
size_t lorac_block_bytes(lorac_dtype t);
/* 1 for the GGML block formats (Q4_0 .. Q6_K), 0 otherwise. */
int lorac_is_block_type(lorac_dtype t);

/* Quantize n fp32 elements (n a multiple of the block size) into n /
 * block_size blocks of type t at dst. Q4_0, Q4_1 and Q8_0 follow ggml's
 * reference quantizers (quantize_row_*_ref) as llama.cpp's gguf-py writes
 * them, bit for bit (tests/ref/make_gguf_quant_fixtures.py):
 *   Q8_0  d = amax / 127, q = roundf(x / d)
 *   Q4_0  d = -m / 8 with m the element of largest |x|, q = min(15, trunc(x / d + 8.5))
 *   Q4_1  d = (max - min) / 15, m = min, q = min(15, trunc((x - min) / d + 0.5))
 * (1 / d computed once in fp32, as those do). Q4_K and Q6_K are lorac's own
 * one-pass quantizers, not llama.cpp's iterative search (make_qkx2_quants /
 * make_qx_quants): per sub-block the scale (and for Q4_K the min) that spans
 * its values, the sub-block scales quantized to 6 bits (Q4_K) or 8 bits
 * (Q6_K) against one f16 super-block scale, then every value rounded to
 * the nearest level. Valid blocks that any GGUF reader decodes, with an
 * error a little above llama.cpp's; tested against round-trip bounds.
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
