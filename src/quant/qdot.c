/* qdot.c - the int8-activation GEMV road (qmatmul.h, LORAC_QACT_Q8): the
 * activation quantizer, the scalar reference kernels, and which kernel runs.
 *
 * The decode step's y = x W^T with W in GGML blocks is bound by how fast
 * the weights are unpacked and multiplied. On the fp32 road every weight is
 * converted to a float and FMA'd with an fp32 x; here x is rounded once per
 * call to int8 levels per group of 32 elements (llama.cpp's q8_0 for its
 * activations),
 *
 *     dx = max_k |x_k| / 127,  q_k = round(x_k / dx),  x~_k = dx * q_k,
 *
 * and every weight group (16 or 32 consecutive weights sharing a scale) is
 * written as w = a * v - c with small integer levels v (the form of
 * quant/ggml_blocks_impl.h). The dot product of a group of 16 with x~ is
 *
 *     sum w x~ = dx * a * (sum v q) - c * (dx * sum q)
 *
 * where sum v q is an exact integer (vpdpbusd / maddubs do 32 of those
 * products per instruction) and dx * sum q (x~ summed per 16) is computed
 * once per call with the levels. The result is exactly x~ W^T up to the
 * rounding of those few float products and their sum.
 *
 * The scalar kernels below are the reference: the same decomposition,
 * accumulated in double. qdot_x86.c has the AVX2 and AVX-512 VNNI ones. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "ops/isa.h"
#include "quant/ggml_blocks_impl.h"
#include "quant/qmatmul_impl.h"

/* ---- the switch (LORAC_QDOT) --------------------------------------------- */

static int g_qact = -1; /* -1: not read yet */

lorac_qact lorac_qact_active(void) {
    int a = __atomic_load_n(&g_qact, __ATOMIC_ACQUIRE);
    if (a < 0) {
        const char *e = getenv("LORAC_QDOT");
        int want = LORAC_QACT_Q8;
        if (e && !strcmp(e, "f32")) want = LORAC_QACT_F32;
        else if (e && *e && strcmp(e, "q8") && strcmp(e, "auto"))
            lorac_log(1, "LORAC_QDOT='%s' is not one of q8, f32; using q8", e);
        int expected = -1;
        __atomic_compare_exchange_n(&g_qact, &expected, want, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        a = __atomic_load_n(&g_qact, __ATOMIC_ACQUIRE);
    }
    return (lorac_qact)a;
}

lorac_qact lorac_qact_force(lorac_qact a) {
    const lorac_qact old = lorac_qact_active();
    __atomic_store_n(&g_qact, (int)a, __ATOMIC_RELEASE);
    return old;
}

/* ---- activation quantization --------------------------------------------- */

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

size_t qmm_xq8_bytes(int64_t N, int64_t in) {
    const size_t q = (size_t)round_up(N * in, 64);
    return q + sizeof(float) * (size_t)N * (size_t)(2 * round_up(in / 32, 8) + round_up(in / 16, 16));
}

/* One row's groups of 32 (see qmm_xq8): the scalar reference. */
static void xq8_row_scalar(const float *xn, int64_t ng, int8_t *q, float *d, float *s32, float *s) {
    for (int64_t g = 0; g < ng; g++) {
        const float *xg = xn + 32 * g;
        float amax = 0.0f;
        int finite = 1;
        for (int k = 0; k < 32; k++) {
            const float a = fabsf(xg[k]);
            finite &= a <= 3.4e38f; /* false for inf and NaN */
            amax = a > amax ? a : amax;
        }
        const float id = qmm_xq8_group_scale(amax, finite, g, q, d, s32, s);
        if (id == 0.0f) continue;
        int sum32 = 0;
        for (int h = 0; h < 2; h++) {
            int sum = 0;
            for (int k = 16 * h; k < 16 * h + 16; k++) {
                const int v = (int)lrintf(xg[k] * id); /* |v| <= 127 */
                q[32 * g + k] = (int8_t)v;
                sum += v;
            }
            s[2 * g + h] = d[g] * (float)sum;
            sum32 += sum;
        }
        s32[g] = d[g] * (float)sum32;
    }
}

void qmm_xq8_quantize(qmm_xq8 *xq, void *mem, const float *x, int64_t ldx, int64_t N, int64_t in) {
    xq->ldq = in;
    xq->ld32 = round_up(in / 32, 8);
    xq->ld16 = round_up(in / 16, 16);
    xq->q = mem;
    xq->d = (float *)((char *)mem + round_up(N * in, 64));
    xq->s32 = xq->d + N * xq->ld32;
    xq->s = xq->s32 + N * xq->ld32;
    qmm_xq8_row_fn row = lorac_isa_active() >= LORAC_ISA_AVX2 ? qmm_xq8_row_avx2() : NULL;
    if (!row) row = xq8_row_scalar;
    for (int64_t n = 0; n < N; n++) {
        float *d = xq->d + n * xq->ld32, *s32 = xq->s32 + n * xq->ld32, *s = xq->s + n * xq->ld16;
        row(x + n * ldx, in / 32, xq->q + n * xq->ldq, d, s32, s);
        for (int64_t j = in / 32; j < xq->ld32; j++) d[j] = s32[j] = 0.0f;
        for (int64_t j = in / 16; j < xq->ld16; j++) s[j] = 0.0f;
    }
}

/* ---- scalar reference ----------------------------------------------------- */

/* One block of format f as groups w = a * v - c (ggml_blocks_impl.h). The
 * seven grouped formats come from ggml_groups_decode; the others:
 *   Q4_0  g 32  v = nibble - 8    a = d          c = 0
 *   Q4_1  g 32  v = nibble        a = d          c = -m
 *   Q8_0  g 32  v = q (int8)      a = d          c = 0
 *   Q4_K  g 32  v = nibble        a = d * sc     c = dmin * mn   (per 32, ggml_k4_scale_min)
 *   Q6_K  g 16  v = q6 - 32       a = d * sc     c = 0           (sc int8, per 16) */
void qmm_q8_unpack(lorac_qformat f, const uint8_t *p, ggml_groups *G) {
    switch (f) {
    case LORAC_QF_Q4_0:
    case LORAC_QF_Q4_1: {
        const int q41 = f == LORAC_QF_Q4_1;
        const float d = ggml_half_at(p);
        const uint8_t *qs = p + (q41 ? 4 : 2);
        G->g = 32;
        G->a[0] = d;
        G->c[0] = q41 ? -ggml_half_at(p + 2) : 0.0f;
        for (int j = 0; j < 16; j++) {
            G->v[j] = (int8_t)((qs[j] & 0x0F) - (q41 ? 0 : 8));
            G->v[j + 16] = (int8_t)((qs[j] >> 4) - (q41 ? 0 : 8));
        }
        return;
    }
    case LORAC_QF_Q8_0:
        G->g = 32;
        G->a[0] = ggml_half_at(p);
        G->c[0] = 0.0f;
        memcpy(G->v, p + 2, 32);
        return;
    case LORAC_QF_Q4_K: {
        const float d = ggml_half_at(p), dmin = ggml_half_at(p + 2);
        G->g = 32;
        for (int c = 0; c < 4; c++) {
            for (int h = 0; h < 2; h++) {
                uint8_t sc, mn;
                ggml_k4_scale_min(2 * c + h, p + 4, &sc, &mn);
                G->a[2 * c + h] = d * sc;
                G->c[2 * c + h] = dmin * mn;
            }
            for (int e = 0; e < 32; e++) {
                const uint8_t b = p[16 + 32 * c + e];
                G->v[64 * c + e] = (int8_t)(b & 0x0F);
                G->v[64 * c + 32 + e] = (int8_t)(b >> 4);
            }
        }
        return;
    }
    case LORAC_QF_Q6_K: {
        const float d = ggml_half_at(p + 208);
        G->g = 16;
        for (int k = 0; k < 16; k++) {
            G->a[k] = d * (float)(int8_t)p[192 + k];
            G->c[k] = 0.0f;
        }
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = p + 64 * half, *qh = p + 128 + 32 * half;
            int8_t *v = G->v + 128 * half;
            for (int l = 0; l < 32; l++) {
                v[l] = (int8_t)(((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32);
                v[l + 32] = (int8_t)(((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32);
                v[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                v[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        return;
    }
    default: ggml_groups_decode(qmm_dtype(f), p, G); return;
    }
}

int qmm_q8_format(lorac_qformat f) { return f >= LORAC_QF_Q4_0 && f <= LORAC_QF_IQ4_XS; }

static void q8dot_scalar(lorac_qformat f, const uint8_t *blocks, int64_t nb, const qmm_xq8 *x, int N, double *acc) {
    const int bs = lorac_qformat_row_block(f);
    const size_t bb = qmm_block_bytes(f);
    ggml_groups G;
    for (int64_t i = 0; i < nb; i++) {
        qmm_q8_unpack(f, blocks + (size_t)i * bb, &G);
        for (int j = 0; j < bs / 16; j++) {  /* per 16 elements */
            const int64_t k = i * bs + 16 * j; /* first element in the row */
            const double a = G.a[16 * j / G.g], c = G.c[16 * j / G.g];
            for (int n = 0; n < N; n++) {
                const int8_t *q = x->q + n * x->ldq + k;
                int32_t dot = 0;
                for (int t = 0; t < 16; t++) dot += (int32_t)G.v[16 * j + t] * q[t];
                acc[n] += (double)x->d[n * x->ld32 + k / 32] * a * dot - c * x->s[n * x->ld16 + k / 16];
            }
        }
    }
}

#define SCALAR(NAME, F)                                                                                                \
    static void NAME(const uint8_t *b, int64_t nb, const qmm_xq8 *x, int N, double *acc) {                        \
        q8dot_scalar(F, b, nb, x, N, acc);                                                                             \
    }
SCALAR(sc_q4_0, LORAC_QF_Q4_0)
SCALAR(sc_q4_1, LORAC_QF_Q4_1)
SCALAR(sc_q8_0, LORAC_QF_Q8_0)
SCALAR(sc_q4_k, LORAC_QF_Q4_K)
SCALAR(sc_q6_k, LORAC_QF_Q6_K)
SCALAR(sc_q5_0, LORAC_QF_Q5_0)
SCALAR(sc_q5_1, LORAC_QF_Q5_1)
SCALAR(sc_q2_k, LORAC_QF_Q2_K)
SCALAR(sc_q3_k, LORAC_QF_Q3_K)
SCALAR(sc_q5_k, LORAC_QF_Q5_K)
SCALAR(sc_iq4_nl, LORAC_QF_IQ4_NL)
SCALAR(sc_iq4_xs, LORAC_QF_IQ4_XS)

static qmm_q8dot_fn q8dot_generic(lorac_qformat f) {
    switch (f) {
    case LORAC_QF_Q4_0: return sc_q4_0;
    case LORAC_QF_Q4_1: return sc_q4_1;
    case LORAC_QF_Q8_0: return sc_q8_0;
    case LORAC_QF_Q4_K: return sc_q4_k;
    case LORAC_QF_Q6_K: return sc_q6_k;
    case LORAC_QF_Q5_0: return sc_q5_0;
    case LORAC_QF_Q5_1: return sc_q5_1;
    case LORAC_QF_Q2_K: return sc_q2_k;
    case LORAC_QF_Q3_K: return sc_q3_k;
    case LORAC_QF_Q5_K: return sc_q5_k;
    case LORAC_QF_IQ4_NL: return sc_iq4_nl;
    case LORAC_QF_IQ4_XS: return sc_iq4_xs;
    default: return NULL;
    }
}

qmm_q8dot_fn qmm_q8dot_for(lorac_qisa isa, lorac_qformat f) {
    if (!qmm_q8_format(f)) return NULL;
    switch (isa) {
    case LORAC_QISA_GENERIC: return q8dot_generic(f);
    case LORAC_QISA_AVX2: return qmm_q8dot_avx2(f);
    case LORAC_QISA_AVX512: {
        qmm_q8dot_fn k = qmm_q8dot_vnni(f);
        return k ? k : qmm_q8dot_avx2(f);
    }
    default: return NULL;
    }
}
