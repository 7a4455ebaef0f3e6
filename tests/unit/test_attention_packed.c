/* test_attention_packed.c - attention over packed sequences
 * (op_attention_packed_fwd / _bwd) against the same op on each sequence
 * alone (op_attention_fwd / _bwd with B = 1, T = its length, no mask), which
 * test_attention_flash.c checks against the double reference.
 *
 * Sequences laid end to end must not see each other: every query block and
 * key block starts at the same place relative to its own sequence in both
 * runs, so the arithmetic is the same and the results must be equal bit for
 * bit: out, lse, and dq, dk, dv accumulated into a buffer that held random
 * values before (backward adds). Lengths straddle the 64-row blocks and
 * include a sequence of one token; q, k, v are strided views into one fused
 * buffer with padding columns (GPT-2's layout), which must stay untouched.
 * Causal and bidirectional, grouped-query heads, every SIMD flavour this CPU
 * runs. */
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "ops/ops.h"
#include "testutil.h"

static lorac_rng rng;

static float *frandn(size_t n) {
    float *a = malloc((n ? n : 1) * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = lorac_rng_normal(&rng);
    return a;
}

static size_t count_diff(const float *a, const float *b, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof *a) != 0;
    return d;
}

static void check_case(const char *flavour, const int *len, int B, int Hq, int Hkv, int D, int causal) {
    int *offs = malloc((size_t)(B + 1) * sizeof *offs);
    offs[0] = 0;
    for (int b = 0; b < B; b++) offs[b + 1] = offs[b] + len[b];
    const int N = offs[B], ld = (Hq + 2 * Hkv) * D + 3, HqD = Hq * D;
    const size_t nqkv = (size_t)N * ld, nout = (size_t)N * HqD, nlse = (size_t)N * Hq;
    float *qkv = frandn(nqkv), *dout = frandn(nout), *init = frandn(nqkv);
    const float *q = qkv, *k = qkv + HqD, *v = qkv + HqD + Hkv * D;
    float *out = malloc(nout * sizeof *out), *lse = malloc(nlse * sizeof *lse);
    float *d = malloc(nqkv * sizeof *d);
    memcpy(d, init, nqkv * sizeof *d);
    op_attention_packed_fwd(out, lse, q, ld, k, ld, v, ld, offs, B, Hq, Hkv, D, causal);
    op_attention_packed_bwd(d, d + HqD, d + HqD + Hkv * D, dout, out, lse, q, ld, k, ld, v, ld, offs, B, Hq, Hkv, D,
                            causal);

    /* each sequence alone, into the same places */
    float *out1 = malloc(nout * sizeof *out1), *lse1 = malloc(nlse * sizeof *lse1);
    float *d1 = malloc(nqkv * sizeof *d1);
    memcpy(d1, init, nqkv * sizeof *d1);
    for (int b = 0; b < B; b++) {
        const size_t r = (size_t)offs[b];
        float *db = d1 + r * ld;
        op_attention_fwd(out1 + r * HqD, lse1 + r * Hq, q + r * ld, ld, k + r * ld, ld, v + r * ld, ld, NULL, 1, len[b],
                         Hq, Hkv, D, causal);
        op_attention_bwd(db, db + HqD, db + HqD + Hkv * D, dout + r * HqD, out1 + r * HqD, lse1 + r * Hq, q + r * ld,
                         ld, k + r * ld, ld, v + r * ld, ld, NULL, 1, len[b], Hq, Hkv, D, causal);
    }
    const size_t bo = count_diff(out, out1, nout), bl = count_diff(lse, lse1, nlse), bd = count_diff(d, d1, nqkv);
    size_t pad = 0;
    for (size_t r = 0; r < (size_t)N; r++)
        for (int c = ld - 3; c < ld; c++) pad += d[r * ld + c] != init[r * ld + c];
    CHECK(bo == 0 && bl == 0 && bd == 0 && pad == 0,
          "%s B=%d Hq=%d Hkv=%d D=%d causal=%d: packed differs from one sequence at a time in %zu out, %zu lse, "
          "%zu grad entries; %zu padding entries written",
          flavour, B, Hq, Hkv, D, causal, bo, bl, bd, pad);
    free(offs), free(qkv), free(dout), free(init), free(out), free(lse), free(d), free(out1), free(lse1), free(d1);
}

int main(void) {
    lorac_rng_seed(&rng, 7);
    static const int len[] = {65, 1, 130, 63, 64, 2};
    const int B = (int)(sizeof len / sizeof len[0]);
    static const struct { op_att_isa isa; const char *name; } fl[] = {
        {OP_ATT_ISA_GENERIC, "generic"}, {OP_ATT_ISA_AVX2, "avx2"}, {OP_ATT_ISA_AVX512, "avx512"}};
    for (size_t f = 0; f < sizeof fl / sizeof fl[0]; f++) {
        if (!op_attention_set_isa(fl[f].isa)) {
            printf("flavour %s: not run by this CPU or build\n", fl[f].name);
            continue;
        }
        for (int causal = 0; causal <= 1; causal++) {
            check_case(fl[f].name, len, B, 4, 2, 8, causal);
            check_case(fl[f].name, len, B, 3, 1, 64, causal);
            check_case(fl[f].name, len + 1, 1, 2, 2, 16, causal); /* one sequence of one token */
        }
        printf("flavour %s: packed == one sequence at a time, bit for bit\n", fl[f].name);
    }
    op_attention_set_isa(OP_ATT_ISA_AUTO);
    return test_summary("attention_packed");
}
