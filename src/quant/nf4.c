/* nf4.c - NF4 quantization with double quantization (see nf4.h).
 *
 * Everything is plain fp32 arithmetic in the order bitsandbytes uses (the
 * project compiles as ISO C, so no FMA contraction), which is what makes the
 * codes and the dequantized values equal bitsandbytes' bit for bit. */
#include "quant/nf4.h"

#include "core/rng.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* bitsandbytes functional.get_4bit_type("nf4"), the float32 values. */
#define NF4_VALUES \
    X(-1.0f) \
    X(-0.6961928009986877f) \
    X(-0.5250730514526367f) \
    X(-0.39491748809814453f) \
    X(-0.28444138169288635f) \
    X(-0.18477343022823334f) \
    X(-0.09105003625154495f) \
    X(0.0f) \
    X(0.07958029955625534f) \
    X(0.16093020141124725f) \
    X(0.24611230194568634f) \
    X(0.33791524171829224f) \
    X(0.44070982933044434f) \
    X(0.5626170039176941f) \
    X(0.7229568362236023f) \
    X(1.0f) \

#define X(v) v,
const float lorac_nf4_code[16] = {NF4_VALUES};
#undef X


/* bitsandbytes functional.create_dynamic_map(signed=True, max_exponent_bits=7,
 * total_bits=8) as torch computes it in float32 (linspace(0.1, 1) midpoints
 * scaled by 10^-6 .. 10^0, both signs, plus 0 and 1, sorted), written as
 * exact hex floats; test_nf4.c checks it against the fixture. */
const float lorac_dynamic_map[256] = {
    -0x1.fc6666p-1f, -0x1.f53334p-1f, -0x1.eep-1f, -0x1.e6ccccp-1f,
    -0x1.df999ap-1f, -0x1.d86666p-1f, -0x1.d13334p-1f, -0x1.cap-1f,
    -0x1.c2ccccp-1f, -0x1.bb999ap-1f, -0x1.b46666p-1f, -0x1.ad3334p-1f,
    -0x1.a6p-1f, -0x1.9eccccp-1f, -0x1.97999ap-1f, -0x1.906666p-1f,
    -0x1.893334p-1f, -0x1.82p-1f, -0x1.7accccp-1f, -0x1.73999ap-1f,
    -0x1.6c6668p-1f, -0x1.653334p-1f, -0x1.5ep-1f, -0x1.56ccccp-1f,
    -0x1.4f999ap-1f, -0x1.486668p-1f, -0x1.413334p-1f, -0x1.3ap-1f,
    -0x1.32ccccp-1f, -0x1.2b999ap-1f, -0x1.246668p-1f, -0x1.1d3334p-1f,
    -0x1.16p-1f, -0x1.0eccccp-1f, -0x1.079998p-1f, -0x1.006666p-1f,
    -0x1.f26664p-2f, -0x1.e4p-2f, -0x1.d59998p-2f, -0x1.c73334p-2f,
    -0x1.b8ccccp-2f, -0x1.aa6666p-2f, -0x1.9cp-2f, -0x1.8d9998p-2f,
    -0x1.7f3334p-2f, -0x1.70ccccp-2f, -0x1.626666p-2f, -0x1.54p-2f,
    -0x1.459998p-2f, -0x1.373334p-2f, -0x1.28ccccp-2f, -0x1.1a6668p-2f,
    -0x1.0cp-2f, -0x1.fb3332p-3f, -0x1.de6666p-3f, -0x1.c1999ap-3f,
    -0x1.a4ccccp-3f, -0x1.88p-3f, -0x1.6b3334p-3f, -0x1.4e6666p-3f,
    -0x1.31999ap-3f, -0x1.14ccccp-3f, -0x1.fp-4f, -0x1.b66668p-4f,
    -0x1.93d70ap-4f, -0x1.8851eep-4f, -0x1.7ccccep-4f, -0x1.7147aep-4f,
    -0x1.65c29p-4f, -0x1.5a3d7p-4f, -0x1.4eb854p-4f, -0x1.433334p-4f,
    -0x1.37ae14p-4f, -0x1.2c28f6p-4f, -0x1.20a3d6p-4f, -0x1.151ebap-4f,
    -0x1.09999ap-4f, -0x1.fc28f6p-5f, -0x1.e51ebap-5f, -0x1.ce147ap-5f,
    -0x1.b70a3ep-5f, -0x1.ap-5f, -0x1.88f5c2p-5f, -0x1.71eb86p-5f,
    -0x1.5ae146p-5f, -0x1.43d70ap-5f, -0x1.2ccccep-5f, -0x1.15c29p-5f,
    -0x1.fd70a4p-6f, -0x1.cf5c2ap-6f, -0x1.a147aep-6f, -0x1.733334p-6f,
    -0x1.451ebap-6f, -0x1.170a3ep-6f, -0x1.d1eb86p-7f, -0x1.75c29p-7f,
    -0x1.3e76c8p-7f, -0x1.2c083p-7f, -0x1.19999ap-7f, -0x1.072b02p-7f,
    -0x1.e978d4p-8f, -0x1.c49ba6p-8f, -0x1.9fbe76p-8f, -0x1.7ae148p-8f,
    -0x1.56041ap-8f, -0x1.3126e8p-8f, -0x1.0c49bap-8f, -0x1.ced914p-9f,
    -0x1.851eb8p-9f, -0x1.3b645ap-9f, -0x1.e353f8p-10f, -0x1.4fdf3ap-10f,
    -0x1.eecbfep-11f, -0x1.b3d07cp-11f, -0x1.78d5p-11f, -0x1.3dd982p-11f,
    -0x1.02de02p-11f, -0x1.8fc506p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f,
    -0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f,
    -0x1.040bfep-17f, -0x1.b43528p-19f, -0x1.27476ep-21f, 0.0f,
    0x1.27476ep-21f, 0x1.b43528p-19f, 0x1.040bfep-17f, 0x1.64840cp-16f,
    0x1.6f0068p-15f, 0x1.15df66p-14f, 0x1.743e96p-14f, 0x1.47ae16p-13f,
    0x1.19ce0ap-12f, 0x1.8fc506p-12f, 0x1.02de02p-11f, 0x1.3dd982p-11f,
    0x1.78d5p-11f, 0x1.b3d07cp-11f, 0x1.eecbfep-11f, 0x1.4fdf3ap-10f,
    0x1.e353f8p-10f, 0x1.3b645ap-9f, 0x1.851eb8p-9f, 0x1.ced914p-9f,
    0x1.0c49bap-8f, 0x1.3126e8p-8f, 0x1.56041ap-8f, 0x1.7ae148p-8f,
    0x1.9fbe76p-8f, 0x1.c49ba6p-8f, 0x1.e978d4p-8f, 0x1.072b02p-7f,
    0x1.19999ap-7f, 0x1.2c083p-7f, 0x1.3e76c8p-7f, 0x1.75c29p-7f,
    0x1.d1eb86p-7f, 0x1.170a3ep-6f, 0x1.451ebap-6f, 0x1.733334p-6f,
    0x1.a147aep-6f, 0x1.cf5c2ap-6f, 0x1.fd70a4p-6f, 0x1.15c29p-5f,
    0x1.2ccccep-5f, 0x1.43d70ap-5f, 0x1.5ae146p-5f, 0x1.71eb86p-5f,
    0x1.88f5c2p-5f, 0x1.ap-5f, 0x1.b70a3ep-5f, 0x1.ce147ap-5f,
    0x1.e51ebap-5f, 0x1.fc28f6p-5f, 0x1.09999ap-4f, 0x1.151ebap-4f,
    0x1.20a3d6p-4f, 0x1.2c28f6p-4f, 0x1.37ae14p-4f, 0x1.433334p-4f,
    0x1.4eb854p-4f, 0x1.5a3d7p-4f, 0x1.65c29p-4f, 0x1.7147aep-4f,
    0x1.7ccccep-4f, 0x1.8851eep-4f, 0x1.93d70ap-4f, 0x1.b66668p-4f,
    0x1.fp-4f, 0x1.14ccccp-3f, 0x1.31999ap-3f, 0x1.4e6666p-3f,
    0x1.6b3334p-3f, 0x1.88p-3f, 0x1.a4ccccp-3f, 0x1.c1999ap-3f,
    0x1.de6666p-3f, 0x1.fb3332p-3f, 0x1.0cp-2f, 0x1.1a6668p-2f,
    0x1.28ccccp-2f, 0x1.373334p-2f, 0x1.459998p-2f, 0x1.54p-2f,
    0x1.626666p-2f, 0x1.70ccccp-2f, 0x1.7f3334p-2f, 0x1.8d9998p-2f,
    0x1.9cp-2f, 0x1.aa6666p-2f, 0x1.b8ccccp-2f, 0x1.c73334p-2f,
    0x1.d59998p-2f, 0x1.e4p-2f, 0x1.f26664p-2f, 0x1.006666p-1f,
    0x1.079998p-1f, 0x1.0eccccp-1f, 0x1.16p-1f, 0x1.1d3334p-1f,
    0x1.246668p-1f, 0x1.2b999ap-1f, 0x1.32ccccp-1f, 0x1.3ap-1f,
    0x1.413334p-1f, 0x1.486668p-1f, 0x1.4f999ap-1f, 0x1.56ccccp-1f,
    0x1.5ep-1f, 0x1.653334p-1f, 0x1.6c6668p-1f, 0x1.73999ap-1f,
    0x1.7accccp-1f, 0x1.82p-1f, 0x1.893334p-1f, 0x1.906666p-1f,
    0x1.97999ap-1f, 0x1.9eccccp-1f, 0x1.a6p-1f, 0x1.ad3334p-1f,
    0x1.b46666p-1f, 0x1.bb999ap-1f, 0x1.c2ccccp-1f, 0x1.cap-1f,
    0x1.d13334p-1f, 0x1.d86666p-1f, 0x1.df999ap-1f, 0x1.e6ccccp-1f,
    0x1.eep-1f, 0x1.f53334p-1f, 0x1.fc6666p-1f, 0x1p+0f,
};

/* Midpoints between consecutive NF4 values, in fp32 as torch computes
 * (code[:-1] + code[1:]) / 2 (constant-folded in IEEE single precision);
 * they equal the CUDA kernel's dQuantizeNF4 thresholds bit for bit. */
static const float g_nf4_mid[15] = {
    (-1.0f + -0.6961928009986877f) / 2.0f,
    (-0.6961928009986877f + -0.5250730514526367f) / 2.0f,
    (-0.5250730514526367f + -0.39491748809814453f) / 2.0f,
    (-0.39491748809814453f + -0.28444138169288635f) / 2.0f,
    (-0.28444138169288635f + -0.18477343022823334f) / 2.0f,
    (-0.18477343022823334f + -0.09105003625154495f) / 2.0f,
    (-0.09105003625154495f + 0.0f) / 2.0f,
    (0.0f + 0.07958029955625534f) / 2.0f,
    (0.07958029955625534f + 0.16093020141124725f) / 2.0f,
    (0.16093020141124725f + 0.24611230194568634f) / 2.0f,
    (0.24611230194568634f + 0.33791524171829224f) / 2.0f,
    (0.33791524171829224f + 0.44070982933044434f) / 2.0f,
    (0.44070982933044434f + 0.5626170039176941f) / 2.0f,
    (0.5626170039176941f + 0.7229568362236023f) / 2.0f,
    (0.7229568362236023f + 1.0f) / 2.0f,
};
/* torch.bucketize(s, midpoints, right=False): the number of midpoints < s. */
static inline uint8_t nf4_bucket(float s) {
    uint8_t q = 0;
    for (int i = 0; i < 15; i++) q += (uint8_t)(g_nf4_mid[i] < s);
    return q;
}

static inline float clamp1(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

/* Stochastic rounding to the NF4 codes: the code below or above s, with the
 * probabilities that make the pick unbiased (E = s). */
static inline uint8_t nf4_stochastic(float s, lorac_rng *rng) {
    int lo = 0;
    while (lo < 14 && lorac_nf4_code[lo + 1] <= s) lo++;
    const float a = lorac_nf4_code[lo], b = lorac_nf4_code[lo + 1];
    if (s <= a) return (uint8_t)lo;
    if (s >= b) return (uint8_t)(lo + 1);
    return (uint8_t)(lo + (lorac_rng_uniform(rng) < (s - a) / (b - a)));
}

static void quantize_blocks(const float *x, int64_t n, int64_t blocksize, uint8_t *codes, float *absmax, lorac_rng *rng) {
    const int64_t full = n / blocksize * blocksize;
    const int64_t nb = (n + blocksize - 1) / blocksize;
    if (n % 2) codes[n / 2] = 0;
    for (int64_t b = 0; b < nb; b++) {
        const int64_t i0 = b * blocksize, i1 = i0 + blocksize < n ? i0 + blocksize : n;
        float am = 0.0f;
        for (int64_t i = i0; i < i1; i++) am = fmaxf(am, fabsf(x[i]));
        const float amc = am < 1e-38f ? 1e-38f : am;
        const int partial = i0 >= full;
        absmax[b] = partial ? amc : am;
        const float inv = 1.0f / amc;
        for (int64_t i = i0; i < i1; i++) {
            const float s = clamp1(partial ? x[i] / amc : x[i] * inv);
            const uint8_t q = rng ? nf4_stochastic(s, rng) : nf4_bucket(s);
            if (i % 2 == 0)
                codes[i / 2] = (uint8_t)(q << 4);
            else
                codes[i / 2] |= q;
        }
    }
    if (n % 2) codes[n / 2] |= nf4_bucket(0.0f); /* bitsandbytes pads with 0.0 -> code 7 */
}

void lorac_nf4_quantize_blocks(const float *x, int64_t n, int64_t blocksize, uint8_t *codes, float *absmax) {
    quantize_blocks(x, n, blocksize, codes, absmax, NULL);
}

/* The 65536-entry lookup table of bitsandbytes' CPU 8-bit quantizer
 * (csrc/cpu_ops.cpp build_quantize_lut): entry i is the index of the first
 * map midpoint >= -1 + 2i/65535, i.e. the nearest map value, ties low. */
#define LUT_SIZE 65536
static void build_lut8(uint8_t *lut) {
    float mid[255];
    for (int i = 0; i < 255; i++) mid[i] = 0.5f * (lorac_dynamic_map[i] + lorac_dynamic_map[i + 1]);
    int c = 0;
    for (int i = 0; i < LUT_SIZE; i++) {
        const float v = -1.0f + (2.0f * (float)i) / (float)(LUT_SIZE - 1);
        while (c < 255 && mid[c] < v) c++;
        lut[i] = (uint8_t)c;
    }
}

static uint8_t g_lut8[LUT_SIZE];
static pthread_once_t g_lut8_once = PTHREAD_ONCE_INIT;
static void lut8_init(void) { build_lut8(g_lut8); }

void lorac_blockwise8_quantize(const float *x, int64_t n, int64_t blocksize, uint8_t *q, float *absmax) {
    pthread_once(&g_lut8_once, lut8_init);
    const uint8_t *lut = g_lut8;
    const int64_t nb = (n + blocksize - 1) / blocksize;
    for (int64_t b = 0; b < nb; b++) {
        const int64_t i0 = b * blocksize, i1 = i0 + blocksize < n ? i0 + blocksize : n;
        float am = 0.0f;
        for (int64_t i = i0; i < i1; i++) am = fmaxf(am, fabsf(x[i]));
        absmax[b] = am;
        if (am == 0.0f) {
            memset(q + i0, 0, (size_t)(i1 - i0));
            continue;
        }
        const float inv = 1.0f / am;
        for (int64_t i = i0; i < i1; i++) {
            const float v = clamp1(x[i] * inv);
            q[i] = lut[(uint16_t)((v + 1.0f) * 0.5f * (float)(LUT_SIZE - 1) + 0.5f)];
        }
    }
}

void lorac_blockwise8_dequantize(const uint8_t *q, const float *absmax, int64_t n, int64_t blocksize, float *out) {
    for (int64_t i = 0; i < n; i++) out[i] = lorac_dynamic_map[q[i]] * absmax[i / blocksize];
}

float lorac_nf4_mean(const float *x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return (float)s / (float)n;
}

void lorac_nf4_free(lorac_nf4 *q) {
    if (!q) return;
    free(q->codes);
    free(q->qabsmax);
    free(q->absmax2);
    memset(q, 0, sizeof *q);
}

lorac_status lorac_nf4_quantize(const float *w, int64_t rows, int64_t cols, lorac_nf4 *out) {
    return lorac_nf4_quantize_rng(w, rows, cols, NULL, out);
}

lorac_status lorac_nf4_quantize_rng(const float *w, int64_t rows, int64_t cols, lorac_rng *rng, lorac_nf4 *out) {
    memset(out, 0, sizeof *out);
    if (!w || rows < 1 || cols < 1 || rows > INT64_MAX / cols)
        return lorac_fail(LORAC_ERR_ARG, "lorac_nf4_quantize: bad shape [%lld, %lld]", (long long)rows,
                          (long long)cols);
    const int64_t n = rows * cols;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(w[i]))
            return lorac_fail(LORAC_ERR_NUMERIC, "lorac_nf4_quantize: weight [%lld, %lld] is %g; NF4 needs finite weights",
                              (long long)(i / cols), (long long)(i % cols), (double)w[i]);
    lorac_nf4 q = {.rows = rows, .cols = cols, .numel = n};
    q.nblocks = (n + LORAC_NF4_BLOCK - 1) / LORAC_NF4_BLOCK;
    q.nblocks2 = (q.nblocks + LORAC_NF4_BLOCK2 - 1) / LORAC_NF4_BLOCK2;
    float *am = NULL;
    lorac_status st = lorac_alloc((void **)&q.codes, (size_t)(n + 1) / 2, 1, "NF4 codes");
    if (!st) st = lorac_alloc((void **)&q.qabsmax, (size_t)q.nblocks, 1, "NF4 block statistics");
    if (!st) st = lorac_alloc((void **)&q.absmax2, (size_t)q.nblocks2, sizeof(float), "NF4 block statistics");
    if (!st) st = lorac_alloc((void **)&am, (size_t)q.nblocks, sizeof(float), "NF4 absmax");
    if (st) {
        free(am);
        lorac_nf4_free(&q);
        return st;
    }
    quantize_blocks(w, n, LORAC_NF4_BLOCK, q.codes, am, rng);
    q.offset = lorac_nf4_mean(am, q.nblocks);
    for (int64_t b = 0; b < q.nblocks; b++) am[b] -= q.offset;
    lorac_blockwise8_quantize(am, q.nblocks, LORAC_NF4_BLOCK2, q.qabsmax, q.absmax2);
    free(am);
    *out = q;
    return LORAC_OK;
}

lorac_status lorac_nf4_validate(const lorac_nf4 *q) {
    if (!q) return lorac_fail(LORAC_ERR_ARG, "NF4 weight: NULL");
    if (q->rows < 1 || q->cols < 1 || q->rows > INT64_MAX / q->cols || q->numel != q->rows * q->cols)
        return lorac_fail(LORAC_ERR_SHAPE, "NF4 weight: shape [%lld, %lld] does not give numel %lld",
                          (long long)q->rows, (long long)q->cols, (long long)q->numel);
    const int64_t nb = (q->numel + LORAC_NF4_BLOCK - 1) / LORAC_NF4_BLOCK;
    if (q->nblocks != nb)
        return lorac_fail(LORAC_ERR_SHAPE, "NF4 weight [%lld, %lld]: %lld blocks of %d, the shape needs %lld",
                          (long long)q->rows, (long long)q->cols, (long long)q->nblocks, LORAC_NF4_BLOCK,
                          (long long)nb);
    const int64_t nb2 = (nb + LORAC_NF4_BLOCK2 - 1) / LORAC_NF4_BLOCK2;
    if (q->nblocks2 != nb2)
        return lorac_fail(LORAC_ERR_SHAPE, "NF4 weight [%lld, %lld]: %lld second-level blocks, the shape needs %lld",
                          (long long)q->rows, (long long)q->cols, (long long)q->nblocks2, (long long)nb2);
    if (!q->codes || !q->qabsmax || !q->absmax2)
        return lorac_fail(LORAC_ERR_ARG, "NF4 weight [%lld, %lld]: missing data", (long long)q->rows,
                          (long long)q->cols);
    return LORAC_OK;
}

float lorac_nf4_block_absmax(const lorac_nf4 *q, int64_t b) {
    return lorac_dynamic_map[q->qabsmax[b]] * q->absmax2[b / LORAC_NF4_BLOCK2] + q->offset;
}

lorac_status lorac_nf4_dequantize_row(const lorac_nf4 *q, int64_t r, int64_t c0, int64_t c1, float *dst) {
    LORAC_TRY(lorac_nf4_validate(q));
    if (r < 0 || r >= q->rows || c0 < 0 || c1 < c0 || c1 > q->cols)
        return lorac_fail(LORAC_ERR_ARG, "lorac_nf4_dequantize_row: row %lld cols [%lld, %lld) outside [%lld, %lld]",
                          (long long)r, (long long)c0, (long long)c1, (long long)q->rows, (long long)q->cols);
    lorac_nf4_dequantize_range(q, r * q->cols + c0, r * q->cols + c1, dst);
    return LORAC_OK;
}

void lorac_nf4_dequantize_range(const lorac_nf4 *q, int64_t i, int64_t end, float *dst) {
    while (i < end) {
        const int64_t b = i / LORAC_NF4_BLOCK;
        const int64_t bend = (b + 1) * LORAC_NF4_BLOCK < end ? (b + 1) * LORAC_NF4_BLOCK : end;
        const float a = lorac_nf4_block_absmax(q, b);
        for (; i < bend; i++) {
            const uint8_t byte = q->codes[i / 2];
            *dst++ = lorac_nf4_code[i % 2 ? byte & 0x0F : byte >> 4] * a;
        }
    }
}

lorac_status lorac_nf4_dequantize(const lorac_nf4 *q, float *dst) {
    LORAC_TRY(lorac_nf4_validate(q));
    for (int64_t r = 0; r < q->rows; r++) LORAC_TRY(lorac_nf4_dequantize_row(q, r, 0, q->cols, dst + r * q->cols));
    return LORAC_OK;
}

size_t lorac_nf4_nbytes(const lorac_nf4 *q) {
    return (size_t)(q->numel + 1) / 2 + (size_t)q->nblocks + (size_t)q->nblocks2 * sizeof(float) + sizeof(float);
}

double lorac_nf4_bits_per_param(const lorac_nf4 *q) {
    if (!q) return 4.0 + (8.0 + 32.0 / LORAC_NF4_BLOCK2) / LORAC_NF4_BLOCK;
    return 8.0 * (double)lorac_nf4_nbytes(q) / (double)q->numel;
}
