/* vkern.c - the scalar table of elementwise kernels, the float-only scalar
 * references (AdamW, bf16), and the choice of table (see vkern.h). */
#include "ops/vkern.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* ---- scalar references that have no double twin ---- */

/* AdamW, torch's per-element order of operations (train/optim.h). The
 * scalars are copied to locals: w, m, v are float arrays that, as far as the
 * compiler knows, could overlap *s, which would force a reload per element. */
void op_adamw_run(float *restrict w, float *restrict m, float *restrict v, const float *restrict g, size_t n,
                  const lorac_adamw_scalars *s) {
    const float step_size = s->step_size, bc2_sqrt = s->bc2_sqrt, decay_mul = s->decay_mul, eps = s->eps;
    const float b1 = s->b1, one_minus_b1 = s->one_minus_b1, b2 = s->b2, one_minus_b2 = s->one_minus_b2;
    const int decay = s->decay;
    for (size_t j = 0; j < n; j++) {
        if (decay) w[j] *= decay_mul; /* decoupled weight decay first */
        m[j] = b1 * m[j] + one_minus_b1 * g[j];
        v[j] = b2 * v[j] + one_minus_b2 * g[j] * g[j];
        const float denom = sqrtf(v[j]) / bc2_sqrt + eps; /* eps outside the square root, after the correction */
        w[j] -= step_size * (m[j] / denom);
    }
}

/* bf16 is the top half of a float. Rounding to nearest even: add 0x7fff plus
 * the lowest kept bit, then drop the low 16 bits (a carry into the exponent
 * is correct rounding up to the next binade, or to Inf). A NaN is kept a NaN
 * by setting a mantissa bit instead of rounding (rounding could carry it
 * into Inf). */
void op_f32_to_bf16_run(uint16_t *restrict dst, const float *restrict src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t x;
        memcpy(&x, &src[i], 4);
        const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
        const uint32_t nan = (x >> 16) | 0x40u; /* quiet NaN, never rounded into Inf */
        dst[i] = (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
    }
}

void op_bf16_to_f32_run(float *restrict dst, const uint16_t *restrict src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const uint32_t x = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &x, 4);
    }
}

/* ---- the tables ---- */

#define SCALAR_ENTRY(name, params) .name = op_##name,
static const lorac_vkern g_scalar = {.name = "scalar", LORAC_VKERN_LIST(SCALAR_ENTRY)};
#undef SCALAR_ENTRY

/* Each level's table, or NULL where the CPU or the build lacks it; filled
 * once, so that lorac_vkern_active (called per op, per row for the norms)
 * is an index into it. */
static const lorac_vkern *g_tables[LORAC_ISA_LEVELS];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_tables(void) {
    const lorac_isa best = lorac_isa_best();
    g_tables[LORAC_ISA_SCALAR] = &g_scalar;
    g_tables[LORAC_ISA_AVX2] = best >= LORAC_ISA_AVX2 ? lorac_vkern_avx2() : NULL;
    g_tables[LORAC_ISA_AVX512] = best >= LORAC_ISA_AVX512 ? lorac_vkern_avx512() : NULL;
}

const lorac_vkern *lorac_vkern_for(lorac_isa isa) {
    pthread_once(&g_once, init_tables);
    return (unsigned)isa < LORAC_ISA_LEVELS ? g_tables[isa] : NULL;
}

/* lorac_isa_active() never exceeds lorac_isa_best(), so its table exists;
 * the scalar one stands in should a level be detected but not compiled. */
const lorac_vkern *lorac_vkern_active(void) {
    const lorac_vkern *k = lorac_vkern_for(lorac_isa_active());
    return k ? k : &g_scalar;
}
