/* gemm.c - op_gemm and op_gemm_bf16 on oneDNN or OpenBLAS (see gemm.h).
 *
 * oneDNN computes C = alpha op(A) op(B) + beta C as a "matmul primitive":
 * memory descriptors give the shapes and strides (a transposed operand is
 * just swapped strides), an attribute carries alpha (output scale) and beta
 * (a "sum" post-op), and creating the primitive JIT-compiles a kernel for
 * exactly that problem; a bias row (op_gemm_bias, for a Linear's y = x W^T
 * + b) goes in as the primitive's bias operand, added as the product is
 * written, not in a second pass over C. Creation costs far more than a small product, so
 * primitives are kept in a small cache keyed by everything that defines
 * them; a training step repeats the same few dozen shapes every step. */
#include "ops/gemm.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "ops/ops.h"
#include "ops/vkern.h"

#ifdef LORAC_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

/* Products below this many multiply-adds go to cblas_sgemm directly. */
#define GEMM_DNNL_MIN_MACS (1 << 20)

/* ---- bf16 conversion ------------------------------------------------------
 * The loops are elementwise kernels (ops/vkern.h): scalar, AVX2 and AVX-512
 * versions, all bit-identical, the one of the active SIMD level is used. */

/* run(dst + i, src + i, len) over chunks of n elements, spread over the threads. */
#define CVT_CHUNK 65536
#define CVT_PARALLEL(run, dst, src, n)                                                                      \
    do {                                                                                                    \
        const long nchunks_ = (long)(((n) + CVT_CHUNK - 1) / CVT_CHUNK);                                    \
        _Pragma("omp parallel for if (nchunks_ > 1)") for (long c_ = 0; c_ < nchunks_; c_++) {              \
            const size_t i_ = (size_t)c_ * CVT_CHUNK;                                                       \
            run((dst) + i_, (src) + i_, (n) - i_ < CVT_CHUNK ? (n) - i_ : CVT_CHUNK);                       \
        }                                                                                                   \
    } while (0)

void op_f32_to_bf16(lorac_bf16 *dst, const float *src, size_t n) {
    CVT_PARALLEL(lorac_vkern_active()->f32_to_bf16_run, dst, src, n);
}

void op_bf16_to_f32(float *dst, const lorac_bf16 *src, size_t n) {
    CVT_PARALLEL(lorac_vkern_active()->bf16_to_f32_run, dst, src, n);
}

/* ---- OpenBLAS ----------------------------------------------------------- */

static void blas_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
                lda, B, ldb, beta, C, ldc);
}

/* C[m, :] += bias for each of the M rows of C (row stride ldc) */
static void add_bias_rows(float *C, int ldc, const float *bias, int M, int N) {
#pragma omp parallel for if ((int64_t)M * N >= 16384 && !omp_in_parallel())
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) C[(size_t)m * ldc + n] += bias[n];
}

/* blas_gemm, then the bias row (may be NULL) added to every row of C */
static void blas_gemm_bias(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                           int ldb, const float *bias, float beta, float *C, int ldc) {
    blas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (bias) add_bias_rows(C, ldc, bias, M, N);
}

/* ---- oneDNN --------------------------------------------------------------- */

/* Everything that defines a product (and so a cached oneDNN primitive);
 * op_gemm builds one with or without oneDNN. */
typedef struct gemm_key {
    int bf16, ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    int bias; /* 1: a bias row [N] is added to every row of C */
} gemm_key;

#ifdef LORAC_HAVE_DNNL

/* One cached primitive: the problem it was made for, and memory objects whose
 * data pointers are set before each run. prim == NULL marks a problem oneDNN
 * declined (it then goes to the fallback without asking again). */

typedef struct gemm_entry {
    gemm_key key;
    int used;
    unsigned long stamp;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, bias;
} gemm_entry;

#define GEMM_CACHE 256
static gemm_entry g_cache[GEMM_CACHE];
static unsigned long g_clock;
static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* The logical [rows, cols] operand; stored transposed (as [cols, rows] with
 * row stride ld) when trans. */
static int md_init(dnnl_memory_desc_t *md, int rows, int cols, int ld, int trans, dnnl_data_type_t dt) {
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {trans ? 1 : ld, trans ? ld : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides) == dnnl_success;
}

static void entry_clear(gemm_entry *e) {
    if (e->prim) dnnl_primitive_destroy(e->prim);
    if (e->a) dnnl_memory_destroy(e->a);
    if (e->b) dnnl_memory_destroy(e->b);
    if (e->c) dnnl_memory_destroy(e->c);
    if (e->bias) dnnl_memory_destroy(e->bias);
    memset(e, 0, sizeof *e);
}

/* Make e's primitive for e->key; leaves e->prim NULL when oneDNN declines. */
static void entry_make(gemm_entry *e) {
    const gemm_key *k = &e->key;
    const dnnl_data_type_t dt = k->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t ma, mb, mc, mbias;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int ok = md_init(&ma, k->M, k->K, k->lda, k->ta, dt) && md_init(&mb, k->K, k->N, k->ldb, k->tb, dt) &&
             md_init(&mc, k->M, k->N, k->ldc, 0, dnnl_f32) && md_init(&mbias, 1, k->N, k->N, 0, dnnl_f32) &&
             dnnl_matmul_desc_init(&desc, &ma, &mb, k->bias ? &mbias : NULL, &mc) == dnnl_success &&
             dnnl_primitive_attr_create(&attr) == dnnl_success;
    if (ok && k->alpha != 1.0f) ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha) == dnnl_success;
    if (ok && k->beta != 0.0f)
        ok = dnnl_post_ops_create(&po) == dnnl_success && dnnl_post_ops_append_sum(po, k->beta) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(&pd, &desc, attr, g_engine, NULL) == dnnl_success &&
         dnnl_primitive_create(&e->prim, pd) == dnnl_success &&
         dnnl_memory_create(&e->a, &ma, g_engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&e->b, &mb, g_engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&e->c, &mc, g_engine, DNNL_MEMORY_NONE) == dnnl_success &&
         (!k->bias || dnnl_memory_create(&e->bias, &mbias, g_engine, DNNL_MEMORY_NONE) == dnnl_success);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (!ok) {
        gemm_key keep = e->key;
        entry_clear(e);
        e->key = keep;
    }
    e->used = 1;
}

/* The cache entry for key (made on a miss, in the least recently used slot). */
static gemm_entry *entry_get(const gemm_key *key) {
    gemm_entry *victim = &g_cache[0];
    for (int i = 0; i < GEMM_CACHE; i++) {
        gemm_entry *e = &g_cache[i];
        if (e->used && !memcmp(&e->key, key, sizeof *key)) {
            e->stamp = ++g_clock;
            return e;
        }
        if (!e->used || (victim->used && e->stamp < victim->stamp)) victim = e;
    }
    entry_clear(victim);
    victim->key = *key;
    victim->stamp = ++g_clock;
    entry_make(victim);
    return victim;
}

/* 0 = not decided, 1 = oneDNN, -1 = OpenBLAS only. */
static int g_backend;
/* 1: round a product's row count up to its bucket (gemm_rows_step); 0:
 * LORAC_GEMM_ROWS=exact, every row count its own primitive (for A/B runs). */
static int g_bucket = 1;
/* Row-padded copies of A and C for a bucketed product (under g_lock). */
static float *g_pad;
static size_t g_pad_cap;

static int dnnl_on(void) {
    if (g_backend) return g_backend > 0;
    pthread_mutex_lock(&g_lock);
    if (!g_backend) {
        const char *env = getenv("LORAC_GEMM");
        int want = !(env && !strcmp(env, "openblas"));
        if (want && dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success) want = 0;
        if (want && dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags) != dnnl_success) {
            dnnl_engine_destroy(g_engine);
            want = 0;
        }
        g_backend = want ? 1 : -1;
        const char *rows = getenv("LORAC_GEMM_ROWS");
        g_bucket = !(rows && !strcmp(rows, "exact"));
    }
    pthread_mutex_unlock(&g_lock);
    return g_backend > 0;
}

/* Run the product on oneDNN with g_lock held: 1 when done, 0 when the
 * caller must fall back. bias: the row [N] when key->bias. */
static int onednn_gemm_locked(const gemm_key *key, const void *A, const void *B, const float *bias, float *C) {
    gemm_entry *e = entry_get(key);
    if (!e->prim) return 0;
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}, {DNNL_ARG_BIAS, e->bias}};
    return dnnl_memory_set_data_handle(e->a, (void *)A) == dnnl_success &&
           dnnl_memory_set_data_handle(e->b, (void *)B) == dnnl_success &&
           dnnl_memory_set_data_handle(e->c, C) == dnnl_success &&
           (!key->bias || dnnl_memory_set_data_handle(e->bias, (void *)bias) == dnnl_success) &&
           dnnl_primitive_execute(e->prim, g_stream, key->bias ? 4 : 3, args) == dnnl_success &&
           dnnl_stream_wait(g_stream) == dnnl_success;
}

/* Run the product on oneDNN: 1 when done, 0 when the caller must fall back. */
static int onednn_gemm(const gemm_key *key, const void *A, const void *B, const float *bias, float *C) {
    if (!dnnl_on() || omp_in_parallel()) return 0;
    pthread_mutex_lock(&g_lock);
    const int done = onednn_gemm_locked(key, A, B, bias, C);
    pthread_mutex_unlock(&g_lock);
    return done;
}

/* The bucket step for a product of M rows (see gemm.h): its row count runs
 * rounded up to a multiple of it; 0 below 17 rows (M runs as it is). Each
 * step divides the next, so a multiple of M's step is a bucket size. */
static int gemm_rows_step(int M) {
    if (M <= 16) return 0; /* a decoding step's rows (one per sequence): a few shapes, each used often */
    const int step = M <= 64 ? 8 : M <= 256 ? 16 : M <= 1024 ? 64 : 256;
    return M > (1 << 30) - step ? 0 : step;
}

/* onednn_gemm for an fp32 product whose A is not transposed and whose M rows
 * are fewer than a step (the rows after a bucket): A's M rows and (when
 * beta != 0) C's are copied into scratch of Mb rows, M rounded up to its own
 * step or, below 17 rows, to a multiple of 8 (so that these remainders make
 * few shapes: at most 8 below 64 rows), the extra rows of A zero; the
 * product runs there, and C's M rows are copied back. The scratch is kept
 * (under g_lock) for the next call. */
static int onednn_gemm_padded(const gemm_key *key, const float *A, const float *B, const float *bias, float *C) {
    const int M = key->M, step = M <= 16 ? 8 : gemm_rows_step(M), Mb = step ? (M + step - 1) / step * step : M;
    if (Mb == M) return onednn_gemm(key, A, B, bias, C);
    const size_t K = (size_t)key->K, N = (size_t)key->N, need = (size_t)Mb * (K + N);
    int done = 0;
    pthread_mutex_lock(&g_lock);
    if (need > g_pad_cap) {
        free(g_pad);
        g_pad_cap = 0;
        if ((g_pad = malloc(sizeof(float) * need)) != NULL) g_pad_cap = need;
    }
    if (g_pad) {
        float *a = g_pad, *c = g_pad + (size_t)Mb * K;
        for (int i = 0; i < M; i++) memcpy(a + i * K, A + (size_t)i * key->lda, sizeof(float) * K);
        memset(a + (size_t)M * K, 0, sizeof(float) * (size_t)(Mb - M) * K);
        if (key->beta != 0.0f)
            for (int i = 0; i < M; i++) memcpy(c + i * N, C + (size_t)i * key->ldc, sizeof(float) * N);
        gemm_key kb = *key;
        kb.M = Mb;
        kb.lda = key->K;
        kb.ldc = key->N;
        done = onednn_gemm_locked(&kb, a, B, bias, c);
        if (done)
            for (int i = 0; i < M; i++) memcpy(C + (size_t)i * key->ldc, c + i * N, sizeof(float) * N);
    }
    pthread_mutex_unlock(&g_lock);
    return done;
}

/* onednn_gemm with A's rows bucketed (A not transposed): the first M0 rows,
 * M rounded down to its step (a bucket size), run in place; only the
 * remaining M - M0 < step rows go through onednn_gemm_padded's copies. A
 * packed batch of ~1000 rows thus copies at most 63 of them, not all (the
 * copies of every row took ~5% of an encoder's training step). */
static int onednn_gemm_rows(const gemm_key *key, const float *A, const float *B, const float *bias, float *C) {
    if (!dnnl_on() || omp_in_parallel()) return 0;
    const int M = key->M, step = g_bucket && !key->ta ? gemm_rows_step(M) : 0, M0 = step ? M / step * step : M;
    if (M0 == M) return onednn_gemm(key, A, B, bias, C);
    gemm_key head = *key, tail = *key;
    head.M = M0;
    tail.M = M - M0;
    if (M0 > 0 && !onednn_gemm(&head, A, B, bias, C)) return 0; /* nothing written: the caller falls back */
    const float *At = A + (size_t)M0 * key->lda;
    float *Ct = C + (size_t)M0 * key->ldc;
    if (!onednn_gemm_padded(&tail, At, B, bias, Ct)) /* the head is done: the tail alone falls back */
        blas_gemm_bias(0, key->tb, tail.M, key->N, key->K, key->alpha, At, key->lda, B, key->ldb, bias, key->beta, Ct,
                       key->ldc);
    return 1;
}

const char *op_gemm_backend(void) { return dnnl_on() ? "onednn" : "openblas"; }

int op_gemm_bf16_native(void) { return dnnl_on() && dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core_bf16; }

void op_gemm_release(void) {
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < GEMM_CACHE; i++) entry_clear(&g_cache[i]);
    free(g_pad);
    g_pad = NULL;
    g_pad_cap = 0;
    pthread_mutex_unlock(&g_lock);
}

#else /* no oneDNN in this build */

static int onednn_gemm(const gemm_key *key, const void *A, const void *B, const float *bias, float *C) { return 0; }
static int onednn_gemm_rows(const gemm_key *key, const float *A, const float *B, const float *bias, float *C) {
    return 0;
}
const char *op_gemm_backend(void) { return "openblas"; }
int op_gemm_bf16_native(void) { return 0; }
void op_gemm_release(void) {}

#endif

/* ---- small-M products (GEMV, see gemm.h) ----------------------------------
 * The dot kernels: M rows of A against a W row. Each row m keeps its own
 * fp32 vector accumulator (two for M <= 2, so that the FMA latency is
 * hidden when there are few rows), widened into double lanes every
 * OP_GEMV_KC elements; the lanes are added at the end. The scalar one keeps
 * 8 lane sums the same way, so every level has the same accuracy (the
 * order of additions differs between levels). */

static void dot_rows_scalar(int64_t K, const float *w, const float *a, int64_t lda, int M, double *acc) {
    for (int m = 0; m < M; m++) {
        const float *am = a + m * lda;
        for (int64_t k0 = 0; k0 < K; k0 += OP_GEMV_KC) {
            const int64_t k1 = k0 + OP_GEMV_KC < K ? k0 + OP_GEMV_KC : K;
            float s[8] = {0};
            int64_t k = k0;
            for (; k + 8 <= k1; k += 8)
                for (int l = 0; l < 8; l++) s[l] += w[k + l] * am[k + l];
            for (int l = 0; k < k1; k++, l++) s[l] += w[k] * am[k];
            double t = 0;
            for (int l = 0; l < 8; l++) t += s[l];
            acc[m] += t;
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define T_AVX2 __attribute__((target("avx2,fma")))
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define INLINE_ALWAYS inline __attribute__((always_inline))

/* R rows (a compile-time constant after inlining) of the AVX-512 kernel:
 * per chunk of OP_GEMV_KC elements fp32 lane sums, widened into double
 * lanes; the lanes added at the end. */
T_AVX512 static INLINE_ALWAYS void dot_r512(int64_t K, const float *w, const float *a, int64_t lda, const int R,
                                            double *acc) {
    __m512d dd[4];
    for (int r = 0; r < R; r++) dd[r] = _mm512_setzero_pd();
    for (int64_t k0 = 0; k0 < K; k0 += OP_GEMV_KC) {
        const int64_t k1 = k0 + OP_GEMV_KC < K ? k0 + OP_GEMV_KC : K;
        __m512 s[4], t[4];
        for (int r = 0; r < R; r++) s[r] = t[r] = _mm512_setzero_ps();
        int64_t k = k0;
        if (R <= 2)
            for (; k + 32 <= k1; k += 32) {
                const __m512 w0 = _mm512_loadu_ps(w + k), w1 = _mm512_loadu_ps(w + k + 16);
                for (int r = 0; r < R; r++) {
                    s[r] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(a + r * lda + k), s[r]);
                    t[r] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(a + r * lda + k + 16), t[r]);
                }
            }
        for (; k + 16 <= k1; k += 16) {
            const __m512 w0 = _mm512_loadu_ps(w + k);
            for (int r = 0; r < R; r++) s[r] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(a + r * lda + k), s[r]);
        }
        if (k < k1) {
            const __mmask16 mk = (__mmask16)((1u << (k1 - k)) - 1);
            const __m512 w0 = _mm512_maskz_loadu_ps(mk, w + k);
            for (int r = 0; r < R; r++) t[r] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(mk, a + r * lda + k), t[r]);
        }
        for (int r = 0; r < R; r++) {
            const __m512 v = _mm512_add_ps(s[r], t[r]);
            dd[r] = _mm512_add_pd(dd[r], _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
            dd[r] = _mm512_add_pd(dd[r], _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
        }
    }
    for (int r = 0; r < R; r++) acc[r] += _mm512_reduce_add_pd(dd[r]);
}

T_AVX512 static void dot_rows_avx512(int64_t K, const float *w, const float *a, int64_t lda, int M, double *acc) {
    for (int m = 0; m < M; m += 4, a += 4 * lda, acc += 4) {
        switch (M - m) {
        case 1: dot_r512(K, w, a, lda, 1, acc); break;
        case 2: dot_r512(K, w, a, lda, 2, acc); break;
        case 3: dot_r512(K, w, a, lda, 3, acc); break;
        default: dot_r512(K, w, a, lda, 4, acc); break;
        }
    }
}

T_AVX2 static INLINE_ALWAYS void dot_r256(int64_t K, const float *w, const float *a, int64_t lda, const int R,
                                          double *acc) {
    __m256d dd[4];
    for (int r = 0; r < R; r++) dd[r] = _mm256_setzero_pd();
    double tail[4] = {0};
    for (int64_t k0 = 0; k0 < K; k0 += OP_GEMV_KC) {
        const int64_t k1 = k0 + OP_GEMV_KC < K ? k0 + OP_GEMV_KC : K;
        __m256 s[4], t[4];
        for (int r = 0; r < R; r++) s[r] = t[r] = _mm256_setzero_ps();
        int64_t k = k0;
        if (R <= 2)
            for (; k + 16 <= k1; k += 16) {
                const __m256 w0 = _mm256_loadu_ps(w + k), w1 = _mm256_loadu_ps(w + k + 8);
                for (int r = 0; r < R; r++) {
                    s[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(a + r * lda + k), s[r]);
                    t[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(a + r * lda + k + 8), t[r]);
                }
            }
        for (; k + 8 <= k1; k += 8) {
            const __m256 w0 = _mm256_loadu_ps(w + k);
            for (int r = 0; r < R; r++) s[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(a + r * lda + k), s[r]);
        }
        for (int r = 0; r < R; r++) {
            float tl = 0;
            for (int64_t j = k; j < k1; j++) tl += w[j] * a[r * lda + j];
            tail[r] += tl;
            const __m256 v = _mm256_add_ps(s[r], t[r]);
            dd[r] = _mm256_add_pd(dd[r], _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
            dd[r] = _mm256_add_pd(dd[r], _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
        }
    }
    for (int r = 0; r < R; r++) {
        const __m128d e = _mm_add_pd(_mm256_castpd256_pd128(dd[r]), _mm256_extractf128_pd(dd[r], 1));
        acc[r] += _mm_cvtsd_f64(_mm_add_sd(e, _mm_unpackhi_pd(e, e))) + tail[r];
    }
}

T_AVX2 static void dot_rows_avx2(int64_t K, const float *w, const float *a, int64_t lda, int M, double *acc) {
    for (int m = 0; m < M; m += 4, a += 4 * lda, acc += 4) {
        switch (M - m) {
        case 1: dot_r256(K, w, a, lda, 1, acc); break;
        case 2: dot_r256(K, w, a, lda, 2, acc); break;
        case 3: dot_r256(K, w, a, lda, 3, acc); break;
        default: dot_r256(K, w, a, lda, 4, acc); break;
        }
    }
}
#endif

op_dot_rows_fn op_dot_rows_for(lorac_isa isa) {
    if (isa > lorac_isa_best()) isa = lorac_isa_best();
#if defined(__x86_64__) && defined(__GNUC__)
    if (isa == LORAC_ISA_AVX512) return dot_rows_avx512;
    if (isa == LORAC_ISA_AVX2) return dot_rows_avx2;
#endif
    return dot_rows_scalar;
}

/* W rows per task, and the least multiply-adds per call worth a parallel region. */
#define GEMV_BAND 16
#define GEMV_PAR_MACS (1 << 16)

void op_gemv_rows(int M, int64_t rows, int64_t K, float alpha, const float *A, int64_t lda, op_gemv_row_fn row,
                  const void *ctx, const float *bias, float beta, float *C, int64_t ldc) {
    LORAC_ASSERT(M >= 0 && M <= OP_GEMV_MAX_M);
    if (M == 0 || rows <= 0) return;
    const int64_t nbands = (rows + GEMV_BAND - 1) / GEMV_BAND;
#pragma omp parallel for schedule(static) if (nbands > 1 && (double)M * rows * K >= GEMV_PAR_MACS && !omp_in_parallel())
    for (int64_t t = 0; t < nbands; t++) {
        const int64_t r1 = (t + 1) * GEMV_BAND < rows ? (t + 1) * GEMV_BAND : rows;
        for (int64_t r = t * GEMV_BAND; r < r1; r++) {
            double acc[OP_GEMV_MAX_M] = {0};
            row(ctx, r, A, lda, M, acc);
            for (int m = 0; m < M; m++) {
                float *c = C + m * ldc + r;
                double v = (double)alpha * acc[m];
                if (bias) v += bias[r];
                if (beta != 0.0f) v += (double)beta * *c;
                *c = (float)v;
            }
        }
    }
}

typedef struct gemv_f32_ctx {
    const float *B;
    int64_t ldb, K;
    op_dot_rows_fn dot;
} gemv_f32_ctx;

static void gemv_f32_row(const void *ctx, int64_t r, const float *A, int64_t lda, int M, double *acc) {
    const gemv_f32_ctx *c = ctx;
    c->dot(c->K, c->B + r * c->ldb, A, lda, M, acc);
}

void op_gemv_nt(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                int ldc) {
    const gemv_f32_ctx c = {B, ldb, K, op_dot_rows_for(lorac_isa_active())};
    op_gemv_rows(M, N, K, alpha, A, lda, gemv_f32_row, &c, NULL, beta, C, ldc);
}

/* ---- entry points -------------------------------------------------------
 * One row against a transposed B (a decoding step's y = x W^T, M = 1):
 * bench_qmatmul decode measured oneDNN's / OpenBLAS's sgemm, OpenBLAS's
 * cblas_sgemv and op_gemv_nt on the Linears of SmolLM2-135M and
 * Qwen2.5-0.5B (1 thread, Zen 4): cblas_sgemv is the fastest up to the
 * blocks' largest matrices (17 MB, 4864 x 896), op_gemv_nt on the
 * vocabulary-sized LM heads (113 MB: 7.9 ms against 10.7 for sgemv and
 * 11.6 for oneDNN; 545 MB: 32 against 44 and 54), whose rows stream from
 * memory once. For M >= 2 the backends' register blocking beat
 * op_gemv_nt's per-row dot products (at M = 8 by 1.2-1.9x), so they keep
 * those. */
#define GEMV_HAND_MIN_BYTES (32.0 * 1024 * 1024)

/* The backend's product with an optional bias row (small-M road left to the caller). */
static void gemm_backend(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                         int ldb, const float *bias, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K > 0 && (double)M * N * K >= GEMM_DNNL_MIN_MACS) {
        const gemm_key key = {0, ta, tb, M, N, K, lda, ldb, ldc, alpha, beta, bias != NULL};
        if (onednn_gemm_rows(&key, A, B, bias, C)) return;
    }
    blas_gemm_bias(ta, tb, M, N, K, alpha, A, lda, B, ldb, bias, beta, C, ldc);
}

/* op_gemm and op_gemm_bias: one row of A against a transposed B (y = x W^T
 * for one row x) takes a GEMV, see GEMV_HAND_MIN_BYTES; the rest the backend. */
static void gemm_dispatch(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                          int ldb, const float *bias, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (M == 1 && !ta && tb && K > 0) {
        if ((double)N * K * sizeof(float) >= GEMV_HAND_MIN_BYTES)
            op_gemv_nt(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        else
            cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, A, 1, beta, C, 1);
        if (bias) add_bias_rows(C, ldc, bias, M, N);
        return;
    }
    gemm_backend(ta, tb, M, N, K, alpha, A, lda, B, ldb, bias, beta, C, ldc);
}

void op_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc) {
    gemm_dispatch(ta, tb, M, N, K, alpha, A, lda, B, ldb, NULL, beta, C, ldc);
}

void op_gemm_bias(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  const float *bias, float beta, float *C, int ldc) {
    gemm_dispatch(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, bias, beta, C, ldc);
}

void op_gemm_backend_only(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                          int ldb, float beta, float *C, int ldc) {
    gemm_backend(ta, tb, M, N, K, alpha, A, lda, B, ldb, NULL, beta, C, ldc);
}

/* Widen a [rows, cols] bf16 matrix with row stride ld to a contiguous fp32 one. */
static float *widen(const lorac_bf16 *src, int rows, int cols, int ld) {
    float *dst = malloc(sizeof(float) * ((size_t)rows * cols + 1));
    LORAC_ASSERT(dst);
    for (int i = 0; i < rows; i++) op_bf16_to_f32(dst + (size_t)i * cols, src + (size_t)i * ld, (size_t)cols);
    return dst;
}

void op_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const lorac_bf16 *A, int lda, const lorac_bf16 *B,
                  int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K > 0) {
        const gemm_key key = {1, ta, tb, M, N, K, lda, ldb, ldc, alpha, beta, 0};
        if (onednn_gemm(&key, A, B, NULL, C)) return;
    }
    /* fallback: exact widening, then the fp32 product */
    const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    float *a = widen(A, ar, ac, lda), *b = widen(B, br, bc, ldb);
    blas_gemm(ta, tb, M, N, K, alpha, a, ac > 0 ? ac : 1, b, bc > 0 ? bc : 1, beta, C, ldc);
    free(a);
    free(b);
}
