/* nf4.h - 4-bit NormalFloat (NF4) weights with double quantization, as
 * QLoRA / bitsandbytes define them, bit for bit with bitsandbytes 0.50.2 on
 * the CPU (tests/ref/make_nf4_fixtures.py is the reference; see there for the
 * bitsandbytes code paths followed).
 *
 * Layout of a [rows, cols] row-major fp32 weight of n = rows*cols elements
 * (blocks run along the FLATTENED order, so a block may straddle two rows
 * when cols % 64 != 0, exactly as bitsandbytes on a contiguous tensor):
 *   codes[(n+1)/2]  4-bit indices into lorac_nf4_code, two per byte, element
 *                   2i in the HIGH nibble and 2i+1 in the low one (an odd n
 *                   pads the last low nibble with code 7 = 0.0);
 *   nblocks = ceil(n / 64) blocks of 64, each with one absmax a_b = max |w|;
 *   double quantization of the a_b: offset = mean(a_b) (fp32), then the
 *   values a_b - offset are 8-bit blockwise quantized in groups of 256
 *   with the signed dynamic map (lorac_dynamic_map): qabsmax[nblocks] codes
 *   and absmax2[ceil(nblocks / 256)] fp32 group absmaxes.
 * Dequantization (fp32, in this order, no FMA):
 *   a_b  = dynamic_map[qabsmax[b]] * absmax2[b / 256] + offset
 *   w[i] = nf4_code[code(i)] * a_(i / 64)
 * Storage: 4 bits + (8 + 32/256)/64 bits of statistics per weight, i.e.
 * 4.126953125 bits per parameter (plus one fp32 offset per tensor and the
 * padding of the last blocks). */
#ifndef LORAC_QUANT_NF4_H
#define LORAC_QUANT_NF4_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define LORAC_NF4_BLOCK 64   /* weights per first-level block */
#define LORAC_NF4_BLOCK2 256 /* first-level absmaxes per second-level block */

/* bitsandbytes' 16 NF4 values (functional.get_4bit_type("nf4")), ascending. */
extern const float lorac_nf4_code[16];
/* bitsandbytes' create_dynamic_map(signed=True): 256 ascending values in
 * [-0.99297, 1], index 127 = 0. */
extern const float lorac_dynamic_map[256];

typedef struct lorac_nf4 {
    int64_t rows, cols;  /* logical shape, row-major [rows, cols] */
    int64_t numel;       /* rows * cols */
    int64_t nblocks;     /* ceil(numel / 64) */
    int64_t nblocks2;    /* ceil(nblocks / 256) */
    uint8_t *codes;      /* (numel + 1) / 2 bytes */
    uint8_t *qabsmax;    /* nblocks bytes */
    float *absmax2;      /* nblocks2 floats */
    float offset;        /* mean of the first-level absmaxes */
} lorac_nf4;

/* Quantize a row-major [rows, cols] fp32 weight. Fills *out (allocations
 * owned by it; release with lorac_nf4_free). rows, cols >= 1. A NaN or
 * infinite weight is an error (LORAC_ERR_NUMERIC). */
lorac_status lorac_nf4_quantize(const float *w, int64_t rows, int64_t cols, lorac_nf4 *out);
/* The same with stochastic rounding of each scaled weight to the NF4 code
 * below or above it (unbiased; rng != NULL; NULL is lorac_nf4_quantize). Not
 * bitsandbytes' rule: for re-quantizing merged weights (lora/merge.h). */
struct lorac_rng;
lorac_status lorac_nf4_quantize_rng(const float *w, int64_t rows, int64_t cols, struct lorac_rng *rng, lorac_nf4 *out);
void lorac_nf4_free(lorac_nf4 *q);

/* Check that q's sizes agree with its shape (nblocks, nblocks2, numel) and
 * that the arrays are present: LORAC_ERR_SHAPE with a message otherwise. */
lorac_status lorac_nf4_validate(const lorac_nf4 *q);

/* The dequantized first-level absmax of block b (0 <= b < nblocks). */
float lorac_nf4_block_absmax(const lorac_nf4 *q, int64_t b);

/* Dequantize columns [c0, c1) of row r into dst[c1 - c0]. */
lorac_status lorac_nf4_dequantize_row(const lorac_nf4 *q, int64_t r, int64_t c0, int64_t c1, float *dst);
/* Elements [i, end) of the flattened matrix, unchecked (a validated q and a
 * range inside it): the loop lorac_nf4_dequantize_row and the quantized
 * linear roads share. */
void lorac_nf4_dequantize_range(const lorac_nf4 *q, int64_t i, int64_t end, float *dst);
/* Dequantize everything into dst[rows * cols]. */
lorac_status lorac_nf4_dequantize(const lorac_nf4 *q, float *dst);

/* Bits per parameter: q == NULL gives the nominal 4 + (8 + 32/256)/64 =
 * 4.126953125; otherwise the exact figure of q including its padding and
 * the fp32 offset (tends to the nominal one for large tensors). */
double lorac_nf4_bits_per_param(const lorac_nf4 *q);
/* Bytes of q's data (codes + qabsmax + absmax2 + offset). */
size_t lorac_nf4_nbytes(const lorac_nf4 *q);

/* ---- the building blocks, exposed for tests and reuse ------------------ */

/* First level: n fp32 values -> ceil(n/blocksize) absmaxes and packed 4-bit
 * codes, bitsandbytes' quantize_4bit (default backend) rule:
 *   full block:    s = clamp(x * (1 / max(absmax, 1e-38)), -1, 1)
 *   partial block: s = clamp(x / max(absmax, 1e-38), -1, 1), and the stored
 *                  absmax is the clamped one
 *   code = number of NF4 midpoints m_i = (c_i + c_{i+1}) / 2 with m_i < s
 *   (nearest code, a tie goes to the lower one). */
void lorac_nf4_quantize_blocks(const float *x, int64_t n, int64_t blocksize, uint8_t *codes, float *absmax);

/* 8-bit blockwise quantization with lorac_dynamic_map, bit for bit as
 * bitsandbytes' CPU kernel (cquantize_blockwise_cpu_fp32): per block
 * absmax = max |x|; an all-zero block gets codes 0; otherwise
 * code = lut[(uint16)(((clamp(x * (1/absmax), -1, 1) + 1) * 0.5) * 65535 + 0.5)]
 * where lut[i] is the nearest map entry to -1 + 2i/65535 (ties low). That
 * lookup approximates "nearest code" to within one 65535th of the range:
 * bitsandbytes' CUDA kernel, which searches the exact nearest code, can pick
 * the neighbouring code for values that close to a midpoint. */
void lorac_blockwise8_quantize(const float *x, int64_t n, int64_t blocksize, uint8_t *q, float *absmax);
/* out[i] = lorac_dynamic_map[q[i]] * absmax[i / blocksize] */
void lorac_blockwise8_dequantize(const uint8_t *q, const float *absmax, int64_t n, int64_t blocksize, float *out);

/* The offset of the double quantization: the fp32 mean of n values, summed
 * in double, rounded to fp32, divided by n in fp32. bitsandbytes takes
 * torch's fp32 mean (a cascade of SIMD-width partial sums, so its last bit
 * depends on torch's CPU capability): the two agree for every fixture, and
 * differ by 1-2 ulp for roughly a third of random inputs; the offset enters
 * the dequantized absmax additively, so that is a 1-2 ulp (of the offset)
 * difference, and in rare cases one 8-bit absmax code. */
float lorac_nf4_mean(const float *x, int64_t n);

#endif
