/* test_attention_cached.c - attention with its keys held apart from its
 * queries (op_att_seq krow / klen: a KV cache) against the packed op over
 * whole sequences (test_attention_packed.c checks that one).
 *
 * Each sequence b has klen[b] tokens; its keys and values sit in a cache
 * buffer at rows krow[b] .. (slots in a shuffled order, gaps between them
 * filled with NaN that must never be read), and only its last n_b queries
 * are computed, laid end to end. Their outputs and log-sum-exps must equal
 * the rows of the full causal attention over the sequence (the same queries
 * at the same positions), to 1e-5 of the largest value: the key blocks start
 * at the same places, but the query blocks do not, so float sums may round
 * differently. Cases: one query after a long cache (a decode step), several
 * queries straddling 64-row blocks (a prefill after a cached part), a
 * sequence with nothing cached (a plain prefill), sliding windows shorter
 * and longer than a block, grouped-query heads, a custom scale, soft-capped
 * scores (Gemma 2); a decoding step of five sequences with one new query
 * each (the decoding kernel: keys on the vector lanes), with groups of 1-7
 * query heads per kv head and head sizes 8-256; every SIMD flavour this CPU
 * runs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "ops/ops.h"
#include "testutil.h"

static lorac_rng rng;

static void fill_randn(float *a, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] = lorac_rng_normal(&rng);
}

static void check_case(const char *flavour, const int *klen, const int *nnew, int B, int Hq, int Hkv, int D,
                       int window, float scale, float softcap) {
    const int HqD = Hq * D, HkD = Hkv * D, slot_rows = 200;
    int offs[9], koffs[9], krow[8];
    offs[0] = koffs[0] = 0;
    for (int b = 0; b < B; b++) {
        offs[b + 1] = offs[b] + nnew[b];
        koffs[b + 1] = koffs[b] + klen[b];
        krow[b] = ((b * 2 + 3) % B) * slot_rows + 7; /* shuffled slots, not at their starts */
    }
    const int NQ = offs[B], NK = koffs[B];
    /* the whole sequences, packed: q | k | v per row */
    float *q = malloc(sizeof(float) * NK * HqD), *k = malloc(sizeof(float) * NK * HkD), *v = malloc(sizeof(float) * NK * HkD);
    fill_randn(q, (size_t)NK * HqD);
    fill_randn(k, (size_t)NK * HkD);
    fill_randn(v, (size_t)NK * HkD);
    float *out = malloc(sizeof(float) * NK * HqD), *lse = malloc(sizeof(float) * NK * Hq);
    const op_att_seq full = {.B = B, .offs = koffs, .causal = 1, .window = window, .scale = scale, .softcap = softcap};
    op_attention_seq_fwd(out, lse, q, HqD, k, HkD, v, HkD, &full, Hq, Hkv, D);

    /* the cache: every key and value of sequence b at rows krow[b] .., NaN elsewhere */
    const size_t crow = (size_t)B * slot_rows;
    float *kc = malloc(sizeof(float) * crow * HkD), *vc = malloc(sizeof(float) * crow * HkD);
    for (size_t i = 0; i < crow * HkD; i++) kc[i] = vc[i] = NAN;
    for (int b = 0; b < B; b++) {
        memcpy(kc + (size_t)krow[b] * HkD, k + (size_t)koffs[b] * HkD, sizeof(float) * klen[b] * HkD);
        memcpy(vc + (size_t)krow[b] * HkD, v + (size_t)koffs[b] * HkD, sizeof(float) * klen[b] * HkD);
    }
    /* the last nnew[b] queries of each, end to end */
    float *qn = malloc(sizeof(float) * NQ * HqD), *on = malloc(sizeof(float) * NQ * HqD), *ln = malloc(sizeof(float) * NQ * Hq);
    for (int b = 0; b < B; b++)
        memcpy(qn + (size_t)offs[b] * HqD, q + (size_t)(koffs[b + 1] - nnew[b]) * HqD, sizeof(float) * nnew[b] * HqD);
    const op_att_seq cached = {.B = B, .offs = offs, .causal = 1, .window = window, .scale = scale,
                               .softcap = softcap, .krow = krow, .klen = klen};
    op_attention_seq_fwd(on, ln, qn, HqD, kc, HkD, vc, HkD, &cached, Hq, Hkv, D);

    double eo = 0, mo = 0, el = 0, ml = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < nnew[b]; i++) {
            const int rf = koffs[b + 1] - nnew[b] + i, rn = offs[b] + i;
            for (int c = 0; c < HqD; c++) {
                eo = fmax(eo, fabs((double)on[(size_t)rn * HqD + c] - out[(size_t)rf * HqD + c]));
                mo = fmax(mo, fabs(out[(size_t)rf * HqD + c]));
            }
            for (int h = 0; h < Hq; h++) { /* lse: [Hq, len] per sequence */
                const double a = ln[(size_t)offs[b] * Hq + (size_t)h * nnew[b] + i];
                const double r = lse[(size_t)koffs[b] * Hq + (size_t)h * klen[b] + klen[b] - nnew[b] + i];
                el = fmax(el, isfinite(a) ? fabs(a - r) : INFINITY);
                ml = fmax(ml, fabs(r));
            }
        }
    CHECK(eo <= 1e-5 * mo && el <= 1e-5 * ml,
          "%s B=%d Hq=%d Hkv=%d D=%d window=%d softcap=%g: cached queries differ from the full attention: out %.3g (max %.3g), "
          "lse %.3g (max %.3g)", flavour, B, Hq, Hkv, D, window, softcap, eo, mo, el, ml);
    free(q), free(k), free(v), free(out), free(lse), free(kc), free(vc), free(qn), free(on), free(ln);
}

int main(void) {
    lorac_rng_seed(&rng, 11);
    static const struct { op_att_isa isa; const char *name; } fl[] = {
        {OP_ATT_ISA_GENERIC, "generic"}, {OP_ATT_ISA_AVX2, "avx2"}, {OP_ATT_ISA_AVX512, "avx512"}};
    /* decode steps (1 new), a prefill after a cached part straddling blocks (70 of 150), a plain prefill (all new) */
    static const int klen[] = {150, 1, 130, 70, 9}, nnew[] = {1, 1, 70, 70, 3};
    /* a decoding step of five sequences (one new query each): the decoding kernel, keys on the lanes */
    static const int dklen[] = {150, 1, 64, 65, 9}, dnew[] = {1, 1, 1, 1, 1};
    const int B = 5;
    for (size_t f = 0; f < sizeof fl / sizeof fl[0]; f++) {
        if (!op_attention_set_isa(fl[f].isa)) {
            printf("flavour %s: not run by this CPU or build\n", fl[f].name);
            continue;
        }
        check_case(fl[f].name, klen, nnew, B, 4, 2, 8, 0, 0, 0);
        check_case(fl[f].name, klen, nnew, B, 3, 1, 64, 0, 0, 0);
        check_case(fl[f].name, klen, nnew, B, 2, 2, 16, 5, 0.3f, 0);
        check_case(fl[f].name, klen, nnew, B, 4, 1, 16, 100, 0.2f, 0);
        check_case(fl[f].name, klen, nnew, B, 4, 2, 16, 5, 0.3f, 2.0f); /* Gemma 2: soft-capped scores, a window */
        check_case(fl[f].name, klen, nnew, 1, 2, 1, 32, 0, 0, 0); /* one sequence, one step */
        check_case(fl[f].name, dklen, dnew, B, 4, 2, 8, 0, 0, 0);
        check_case(fl[f].name, dklen, dnew, B, 14, 2, 64, 0, 0, 0);   /* Qwen2.5-0.5B's group of 7 */
        check_case(fl[f].name, dklen, dnew, B, 4, 1, 256, 0, 0.0625f, 0); /* Gemma 3's head size */
        check_case(fl[f].name, dklen, dnew, B, 4, 2, 16, 5, 0.3f, 2.0f); /* a window inside a block, soft caps */
        check_case(fl[f].name, dklen, dnew, B, 2, 1, 20, 70, 0, 0);    /* a window across blocks, D off the lanes */
        printf("flavour %s: cached keys == full attention\n", fl[f].name);
    }
    op_attention_set_isa(OP_ATT_ISA_AUTO);
    return test_summary("attention_cached");
}
