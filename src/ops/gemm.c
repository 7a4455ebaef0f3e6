/* gemm.c - op_gemm and op_gemm_bf16 on oneDNN or OpenBLAS (see gemm.h).
 *
 * oneDNN computes C = alpha op(A) op(B) + beta C as a "matmul primitive":
 * memory descriptors give the shapes and strides (a transposed operand is
 * just swapped strides), an attribute carries alpha (output scale) and beta
 * (a "sum" post-op), and creating the primitive JIT-compiles a kernel for
 * exactly that problem. Creation costs far more than a small product, so
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

/* ---- oneDNN --------------------------------------------------------------- */

/* Everything that defines a product (and so a cached oneDNN primitive);
 * op_gemm builds one with or without oneDNN. */
typedef struct gemm_key {
    int bf16, ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
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
    dnnl_memory_t a, b, c;
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
    memset(e, 0, sizeof *e);
}

/* Make e's primitive for e->key; leaves e->prim NULL when oneDNN declines. */
static void entry_make(gemm_entry *e) {
    const gemm_key *k = &e->key;
    const dnnl_data_type_t dt = k->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t ma, mb, mc;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int ok = md_init(&ma, k->M, k->K, k->lda, k->ta, dt) && md_init(&mb, k->K, k->N, k->ldb, k->tb, dt) &&
             md_init(&mc, k->M, k->N, k->ldc, 0, dnnl_f32) &&
             dnnl_matmul_desc_init(&desc, &ma, &mb, NULL, &mc) == dnnl_success &&
             dnnl_primitive_attr_create(&attr) == dnnl_success;
    if (ok && k->alpha != 1.0f) ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha) == dnnl_success;
    if (ok && k->beta != 0.0f)
        ok = dnnl_post_ops_create(&po) == dnnl_success && dnnl_post_ops_append_sum(po, k->beta) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(&pd, &desc, attr, g_engine, NULL) == dnnl_success &&
         dnnl_primitive_create(&e->prim, pd) == dnnl_success &&
         dnnl_memory_create(&e->a, &ma, g_engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&e->b, &mb, g_engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&e->c, &mc, g_engine, DNNL_MEMORY_NONE) == dnnl_success;
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
    }
    pthread_mutex_unlock(&g_lock);
    return g_backend > 0;
}

/* Run the product on oneDNN: 1 when done, 0 when the caller must fall back. */
static int onednn_gemm(const gemm_key *key, const void *A, const void *B, float *C) {
    if (!dnnl_on() || omp_in_parallel()) return 0;
    pthread_mutex_lock(&g_lock);
    gemm_entry *e = entry_get(key);
    int done = 0;
    if (e->prim) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
        done = dnnl_memory_set_data_handle(e->a, (void *)A) == dnnl_success &&
               dnnl_memory_set_data_handle(e->b, (void *)B) == dnnl_success &&
               dnnl_memory_set_data_handle(e->c, C) == dnnl_success &&
               dnnl_primitive_execute(e->prim, g_stream, 3, args) == dnnl_success &&
               dnnl_stream_wait(g_stream) == dnnl_success;
    }
    pthread_mutex_unlock(&g_lock);
    return done;
}

const char *op_gemm_backend(void) { return dnnl_on() ? "onednn" : "openblas"; }

int op_gemm_bf16_native(void) { return dnnl_on() && dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core_bf16; }

void op_gemm_release(void) {
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < GEMM_CACHE; i++) entry_clear(&g_cache[i]);
    pthread_mutex_unlock(&g_lock);
}

#else /* no oneDNN in this build */

static int onednn_gemm(const gemm_key *key, const void *A, const void *B, float *C) { return 0; }
const char *op_gemm_backend(void) { return "openblas"; }
int op_gemm_bf16_native(void) { return 0; }
void op_gemm_release(void) {}

#endif

/* ---- entry points ------------------------------------------------------- */

void op_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K > 0 && (double)M * N * K >= GEMM_DNNL_MIN_MACS) {
        const gemm_key key = {0, ta, tb, M, N, K, lda, ldb, ldc, alpha, beta};
        if (onednn_gemm(&key, A, B, C)) return;
    }
    blas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
        const gemm_key key = {1, ta, tb, M, N, K, lda, ldb, ldc, alpha, beta};
        if (onednn_gemm(&key, A, B, C)) return;
    }
    /* fallback: exact widening, then the fp32 product */
    const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    float *a = widen(A, ar, ac, lda), *b = widen(B, br, bc, ldb);
    blas_gemm(ta, tb, M, N, K, alpha, a, ac > 0 ? ac : 1, b, bc > 0 ? bc : 1, beta, C, ldc);
    free(a);
    free(b);
}
