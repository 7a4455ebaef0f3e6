/* attention_flash.c - scaled dot-product attention in float, cache-blocked
 * ("flash attention": Dao et al. 2022, FlashAttention-2, Dao 2023). The
 * op_attention_* functions of ops.h; the double twins in attention.inc are
 * the materialised reference this is tested against.
 *
 * Notation, for one sequence b and query head h (its kv head is
 * h / (Hq / Hkv)), s = 1 / sqrt(D), and key j visible to query i when
 * (j <= i or not causal) and keymask[b*T + j] != 0:
 *   S_ij = s q_i . k_j        (-inf when j is not visible to i)
 *   L_i  = log sum_j exp S_ij (the saved "lse"; +inf when i sees no key)
 *   P_ij = exp(S_ij - L_i)
 *   O_i  = sum_j P_ij v_j     (0 when i sees no key)
 * Decoding over a KV cache (op_att_seq krow / klen, forward only) keeps
 * the keys apart from the queries: sequence b's queries are the last n_b of
 * its klen[b] positions, so query i sits at position klen[b] - n_b + i for
 * the causal and window tests above.
 * The [T, T] matrices S and P are never stored: work goes in blocks of
 * 64 queries x 64 keys, small enough to stay in cache, and only L (one float
 * per query row) is kept from forward for backward.
 *
 * Forward, one task per block of queries: walk the key blocks keeping, per
 * query row, the running maximum m_i, the running sum l_i of exp(S_ij - m_i)
 * and the unnormalised output O_i ("online softmax"):
 *   S  = s Q K^T, masked          m' = max(m, rowmax S)
 *   P  = exp(S - m')              l  = exp(m - m') l + rowsum P
 *   O  = exp(m - m') O + P V      m  = m'
 * then O_i /= l_i and L_i = m_i + log l_i. Key blocks wholly above the causal
 * diagonal or wholly masked are skipped.
 *
 * Backward, one task per (sequence, kv head), FlashAttention-2 order: for
 * each key block j (K_j, V_j stay in cache) and each query block i of every
 * query head that reads it, with dO = dL/dO:
 *   P     = exp(s Q_i K_j^T - L_i)            (recomputed, masked)
 *   dV_j += P^T dO_i
 *   dP    = dO_i V_j^T
 *   dS    = P * (dP - D_i),  D_i = rowsum(dO_i * O_i) = sum_j P_ij dP_ij
 *   dQ_i += s dS K_j
 *   dK_j += s dS^T Q_i
 * The task owns dK, dV of its kv head and dQ of its query heads, so no two
 * threads write the same element and every sum runs in a fixed order: the
 * results do not depend on the number of threads.
 *
 * All products are one kernel, C (+)= alpha A B: B row-major and streamed as
 * vectors, A read by scalar broadcasts through arbitrary strides, so a
 * transposed A (P^T, dS^T) costs nothing. Forward computes the scores
 * transposed (S^T = s K Q^T, with Q^T packed once per query block), backward
 * straight (S = s Q K^T, dP = dO V^T, with K^T and V^T packed once per key
 * block), so that the B operand is always a packed or a row-major block.
 * The kernel keeps an MR x NV-vector tile of C in registers; it and the
 * other block steps are written once with GCC vector extensions in
 * attention_flash.inc and compiled three times (AVX-512, AVX2 + FMA, and a
 * 4-float baseline), the flavour picked at run time from the CPU's features
 * (as quant/qmatmul.c does). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/status.h"
#include "ops/isa.h"
#include "ops/ops.h"
#include "ops/vkern.h"

/* Let GCC fuse a * b + c into one FMA instruction (its ISO C mode does not
 * by default; clang does); the kernels are written for it. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

enum {
    BLK = 64,       /* queries or keys per block; the row stride of every block buffer */
    ATT_DMAX = 256, /* largest head size whose transposed blocks are packed (on the stack) */
    ATT_GMAX = 64,  /* most query heads per kv head the decoding kernel takes */
};

/* Below this much work (B Hq T T D multiply-adds) one thread does it all. */
#define ATT_PAR_MIN 16384.0

/* The .inc's functions: inlined, and compiled for the flavour's ISA (ATT_TARGET). */
#define ATT_INLINE static inline __attribute__((always_inline)) ATT_TARGET

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* ---- what every flavour shares ------------------------------------------ */

/* The arguments of one call, shared by all tasks. */
typedef struct {
    const float *q, *k, *v;
    size_t ldq, ldk, ldv, ldo; /* ldo: row stride of out / dout, Hq D */
    const uint8_t *keymask;
    const int *offs; /* packed sequences: sequence b is rows offs[b] .. offs[b+1]-1; NULL: B x T padded */
    int T, Hq, D, group, causal;
    int window;      /* > 0: sliding window, query i sees keys i - window < j only */
    float scale;
    float softcap;   /* > 0: scores z become softcap tanh(z / softcap) (Gemma 2) */
    const int *krow, *klen; /* keys apart from the queries (a KV cache, op_att_seq), else NULL */
    float drop;             /* attention dropout p (op_att_seq.dropout), 0 = none */
    uint64_t drop_key;
} att_args;

typedef struct {
    float *dq, *dk, *dv;
    const float *dout, *out, *lse;
} att_grads;

/* Where sequence b starts (its first row) and how many rows it has: b * T
 * and T for a padded [B, T] batch, offs[b] and offs[b+1] - offs[b] for
 * packed sequences. */
static inline size_t att_row0(const att_args *a, int b) { return a->offs ? (size_t)a->offs[b] : (size_t)b * a->T; }
static inline int att_len(const att_args *a, int b) { return a->offs ? a->offs[b + 1] - a->offs[b] : a->T; }

/* Offset of head h of token t of sequence b in a [rows, H, D] tensor of row stride ld. */
static inline size_t att_at(const att_args *a, size_t ld, int b, int t, int h) {
    return (att_row0(a, b) + t) * ld + (size_t)h * a->D;
}

/* The keys of sequence b: where they start in k / v and how many there are
 * (the query rows themselves unless they are held apart, a KV cache), and
 * the position of its first query among them. */
static inline size_t att_krow0(const att_args *a, int b) { return a->krow ? (size_t)a->krow[b] : att_row0(a, b); }
static inline int att_klen(const att_args *a, int b) { return a->klen ? a->klen[b] : att_len(a, b); }
static inline int att_qpos0(const att_args *a, int b) { return a->klen ? a->klen[b] - att_len(a, b) : 0; }

/* Offset of head h of key t of sequence b in k or v (row stride ld). */
static inline size_t att_kat(const att_args *a, size_t ld, int b, int t, int h) {
    return (att_krow0(a, b) + t) * ld + (size_t)h * a->D;
}

/* The saved log-sum-exps of query head h of sequence b: [Hq, len] per
 * sequence, sequences one after the other (for a padded batch: [B, Hq, T]). */
static inline size_t att_lse_at(const att_args *a, int b, int h) {
    return att_row0(a, b) * a->Hq + (size_t)h * att_len(a, b);
}

/* Attention dropout: multiply the tile S of queries i0.. and keys j0.. of
 * head h of sequence b (element (i, j) at S[i * si + j * sj]) by the mask's
 * 1 / (1 - p) or 0. The mask's index depends on (b, h, i, j) only, so a
 * padded and a packed batch of the same sequences draw the same masks. */
static inline void att_drop_tile(const att_args *a, float *S, int si, int sj, int nq, int nk, int b, int h, int i0,
                                 int j0) {
    const float keep_scale = a->drop < 1 ? 1.0f / (1.0f - a->drop) : 0.0f;
    /* element (i, j)'s index: (b Hq + h) << 40 | (i0 + i) << 20 | (j0 + j), run along the tile's contiguous
       direction by the kernel table's dropout_hash_run (ops/vkern.h; the same mask in every SIMD level) */
    const uint64_t bh = ((uint64_t)b * (uint64_t)a->Hq + (uint64_t)h) << 40;
    void (*run)(float *, size_t, uint64_t, uint64_t, uint64_t, float, float) = lorac_vkern_active()->dropout_hash_run;
    LORAC_ASSERT(si == 1 || sj == 1); /* forward's St [keys][queries] or backward's S [queries][keys] */
    if (si == 1) /* columns of queries */
        for (int j = 0; j < nk; j++)
            run(S + (size_t)j * sj, (size_t)nq, a->drop_key, bh | (uint64_t)i0 << 20 | (uint64_t)(j0 + j),
                (uint64_t)1 << 20, a->drop, keep_scale);
    else /* rows of keys */
        for (int i = 0; i < nq; i++)
            run(S + (size_t)i * si, (size_t)nk, a->drop_key, bh | (uint64_t)(i0 + i) << 20 | (uint64_t)j0, 1,
                a->drop, keep_scale);
}

/* The key mask of sequence b from key j0 on (NULL: every key is real). */
static inline const uint8_t *att_mask(const att_args *a, int b, int j0) {
    return a->keymask ? a->keymask + att_row0(a, b) + j0 : NULL;
}

/* Whether the mask lets any of the n keys of a block through. */
static inline int any_visible(const uint8_t *mask, int n) {
    for (int j = 0; j < n; j++)
        if (mask[j]) return 1;
    return 0;
}

/* yt [D, BLK] = Y^T for the n rows of y (row stride ldy); NULL (nothing
 * packed) when D is too large for yt: scores() then takes dot products. */
static const float *pack_transposed(float *yt, const float *y, size_t ldy, int n, int D) {
    if (D > ATT_DMAX) return NULL;
    for (int j = 0; j < n; j++)
        for (int d = 0; d < D; d++) yt[(size_t)d * BLK + j] = y[j * ldy + d];
    return yt;
}

/* C (+)= alpha A B (see the .inc) over the columns n0..N that fill no vector: plain loops. */
static void gemm_columns(int M, int n0, int N, int K, float alpha, const float *A, size_t rsa, size_t csa,
                         const float *B, size_t ldb, float *C, size_t ldc, int add) {
    for (int i = 0; i < M; i++)
        for (int n = n0; n < N; n++) {
            float acc = 0;
            for (int p = 0; p < K; p++) acc += A[i * rsa + p * csa] * B[(size_t)p * ldb + n];
            float *c = C + i * ldc + n;
            *c = add ? *c + alpha * acc : alpha * acc;
        }
}

/* Lane-wise mask ? a : b for the flavour's vf / vi (mask lanes all ones or zeros). */
#define VSELECT(mask, a, b) ((vf)(((vi)(a) & (mask)) | ((vi)(b) & ~(mask))))

/* ---- the flavours ----------------------------------------------------------
 * Register tile of C: 4 rows x 4 vectors (16 of the 32 zmm registers) with
 * AVX-512, 4 x 2 ymm (8 of 16) with AVX2, 4 x 2 xmm (8 of 16) otherwise. */
#define ATT_CAT_(a, b) a##_##b
#define ATT_CAT(a, b) ATT_CAT_(a, b)
#define ATT_FN(name) ATT_CAT(name, ATT_ISA)

#define ATT_ISA generic
#define ATT_TARGET
#define ATT_VW 4
#define ATT_MR 4
#define ATT_NV 2
#include "ops/attention_flash.inc" /* undefines the ATT_ parameters */

#if defined(__x86_64__) && defined(__GNUC__)
#define ATT_X86 1

#define ATT_ISA avx2
#define ATT_TARGET __attribute__((target("avx2,fma")))
#define ATT_VW 8
#define ATT_MR 4
#define ATT_NV 2
#include "ops/attention_flash.inc" /* undefines the ATT_ parameters */

#define ATT_ISA avx512
#define ATT_TARGET __attribute__((target("avx512f,avx512dq,avx2,fma")))
#define ATT_VW 16
#define ATT_MR 4
#define ATT_NV 4
#include "ops/attention_flash.inc" /* undefines the ATT_ parameters */
#endif

/* ---- the choice among them ------------------------------------------------ */
typedef struct {
    const char *name;
    void (*fwd)(const att_args *a, float *out, float *lse, int b, int h, int i0);
    void (*bwd)(const att_args *a, const att_grads *g, int b, int hk);
    void (*decode)(const att_args *a, float *out, float *lse, int b, int hk);
} att_kernels;

static const att_kernels att_generic = {"generic", fwd_generic, bwd_generic, fwd_decode_generic};
#ifdef ATT_X86
static const att_kernels att_avx2 = {"avx2", fwd_avx2, bwd_avx2, fwd_decode_avx2};
static const att_kernels att_avx512 = {"avx512", fwd_avx512, bwd_avx512, fwd_decode_avx512};
#endif

static const att_kernels *att_flavour(op_att_isa isa) {
    switch (isa) {
    case OP_ATT_ISA_GENERIC:
        return &att_generic;
#ifdef ATT_X86
    case OP_ATT_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &att_avx2 : NULL;
    case OP_ATT_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") ? &att_avx512 : NULL;
#endif
    case OP_ATT_ISA_AUTO: { /* the best this CPU runs, at most the level LORAC_ISA allows (ops/isa.h) */
        const lorac_isa cap = lorac_isa_active();
        const att_kernels *k = cap >= LORAC_ISA_AVX512 ? att_flavour(OP_ATT_ISA_AVX512) : NULL;
        if (!k && cap >= LORAC_ISA_AVX2) k = att_flavour(OP_ATT_ISA_AVX2);
        return k ? k : &att_generic;
    }
    default:
        return NULL;
    }
}

static op_att_isa g_att_isa = OP_ATT_ISA_AUTO;

int op_attention_set_isa(op_att_isa isa) {
    if (!att_flavour(isa)) return 0;
    g_att_isa = isa;
    return 1;
}

const char *op_attention_isa_name(void) { return att_flavour(g_att_isa)->name; }

/* ---- entry points (ops.h) ------------------------------------------------ */

/* T: the longest sequence (padded: every sequence's length). */
static att_args att_make(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv, const op_att_seq *sq,
                         int T, int Hq, int Hkv, int D) {
    LORAC_ASSERT(Hkv > 0 && Hq % Hkv == 0 && D > 0 && sq->window >= 0);
    LORAC_ASSERT(!sq->krow == !sq->klen && (!sq->krow || (sq->offs && !sq->keymask)));
    LORAC_ASSERT(!(sq->dropout > 0) || !sq->krow);
    att_args a = {q, k, v, (size_t)ldq, (size_t)ldk, (size_t)ldv, (size_t)Hq * D, sq->keymask, sq->offs, T, Hq, D,
                  Hq / Hkv, sq->causal, sq->window, sq->scale > 0 ? sq->scale : (float)(1.0 / sqrt((double)D)),
                  sq->softcap > 0 ? sq->softcap : 0.0f, sq->krow, sq->klen, sq->dropout > 0 ? sq->dropout : 0.0f,
                  sq->drop_key};
    return a;
}

/* Forward over B sequences of at most T query rows (a padded batch, or
 * packed ones through a.offs) and at most TK keys each. */
static void att_fwd_run(const att_args *a, float *out, float *lse, int B, int TK) {
    const int T = a->T, Hq = a->Hq;
    const att_kernels *K = att_flavour(g_att_isa);
    const int nqb = (T + BLK - 1) / BLK;
    const long ntask = (long)B * Hq * nqb;
    /* Tasks heaviest first (under a causal mask, the last query blocks see
       the most keys); each writes its own rows of out and lse. A packed
       sequence shorter than T has no task for its missing blocks (fwd
       returns at once). */
#pragma omp parallel for schedule(dynamic) if ((double)B * Hq * T * TK * a->D >= ATT_PAR_MIN)
    for (long t = 0; t < ntask; t++) {
        const long bh = t % ((long)B * Hq);
        const int qb = nqb - 1 - (int)(t / ((long)B * Hq));
        K->fwd(a, out, lse, (int)(bh / Hq), (int)(bh % Hq), qb * BLK);
    }
}

/* A decoding step, one query per sequence over its cached keys: B Hkv tasks
 * of fwd_decode (each a kv head's group of query heads). */
static void att_decode_run(const att_args *a, float *out, float *lse, int B, int Hkv, int TK) {
    const att_kernels *K = att_flavour(g_att_isa);
#pragma omp parallel for schedule(dynamic) if ((double)B * a->Hq * TK * a->D >= ATT_PAR_MIN)
    for (long t = 0; t < (long)B * Hkv; t++) K->decode(a, out, lse, (int)(t / Hkv), (int)(t % Hkv));
}

/* Whether the decoding kernel takes this call: keys in a cache, one query
 * per sequence, no dropout, a head and a group its buffers hold. */
static int decode_step(const op_att_seq *sq, int Hq, int Hkv, int D) {
    if (!sq->krow || sq->dropout > 0 || D > ATT_DMAX || Hq / Hkv > ATT_GMAX) return 0;
    for (int b = 0; b < sq->B; b++)
        if (sq->offs[b + 1] - sq->offs[b] != 1) return 0;
    return 1;
}

static void att_bwd_run(const att_args *a, const att_grads *g, int B, int Hkv) {
    if (!g->dq && !g->dk && !g->dv) return;
    const att_kernels *K = att_flavour(g_att_isa);
#pragma omp parallel for schedule(dynamic) if ((double)B * a->Hq * a->T * a->T * a->D >= ATT_PAR_MIN)
    for (long t = 0; t < (long)B * Hkv; t++) K->bwd(a, g, (int)(t / Hkv), (int)(t % Hkv));
}

/* The longest of B packed sequences. */
static int packed_max_len(const int *offs, int B) {
    int T = 0;
    for (int b = 0; b < B; b++) {
        LORAC_ASSERT(offs[b + 1] >= offs[b]);
        if (offs[b + 1] - offs[b] > T) T = offs[b + 1] - offs[b];
    }
    return T;
}

static int seq_max_len(const op_att_seq *sq) { return sq->offs ? packed_max_len(sq->offs, sq->B) : sq->T; }

/* The most keys of one sequence: the query rows, or those held apart. */
static int seq_max_keys(const op_att_seq *sq) {
    if (!sq->klen) return seq_max_len(sq);
    int TK = 0;
    for (int b = 0; b < sq->B; b++) {
        LORAC_ASSERT(sq->klen[b] >= sq->offs[b + 1] - sq->offs[b]); /* the queries are among the keys */
        TK = sq->klen[b] > TK ? sq->klen[b] : TK;
    }
    return TK;
}

void op_attention_seq_fwd(float *out, float *lse, const float *q, int ldq, const float *k, int ldk, const float *v,
                          int ldv, const op_att_seq *sq, int Hq, int Hkv, int D) {
    const att_args a = att_make(q, ldq, k, ldk, v, ldv, sq, seq_max_len(sq), Hq, Hkv, D);
    if (decode_step(sq, Hq, Hkv, D))
        att_decode_run(&a, out, lse, sq->B, Hkv, seq_max_keys(sq));
    else
        att_fwd_run(&a, out, lse, sq->B, seq_max_keys(sq));
}

void op_attention_seq_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                          const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                          const op_att_seq *sq, int Hq, int Hkv, int D) {
    LORAC_ASSERT(!sq->krow); /* keys apart from the queries: forward only (decoding) */
    const att_args a = att_make(q, ldq, k, ldk, v, ldv, sq, seq_max_len(sq), Hq, Hkv, D);
    const att_grads g = {dq, dk, dv, dout, out, lse};
    att_bwd_run(&a, &g, sq->B, Hkv);
}

void op_attention_fwd(float *out, float *lse, const float *q, int ldq, const float *k, int ldk, const float *v,
                      int ldv, const uint8_t *keymask, int B, int T, int Hq, int Hkv, int D, int causal) {
    const op_att_seq sq = {.B = B, .T = T, .keymask = keymask, .causal = causal};
    op_attention_seq_fwd(out, lse, q, ldq, k, ldk, v, ldv, &sq, Hq, Hkv, D);
}

void op_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                      const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                      const uint8_t *keymask, int B, int T, int Hq, int Hkv, int D, int causal) {
    const op_att_seq sq = {.B = B, .T = T, .keymask = keymask, .causal = causal};
    op_attention_seq_bwd(dq, dk, dv, dout, out, lse, q, ldq, k, ldk, v, ldv, &sq, Hq, Hkv, D);
}
