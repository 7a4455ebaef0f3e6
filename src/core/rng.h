/* rng.h - deterministic random numbers (xoshiro256**, seeded by splitmix64).
 * The whole state is the struct: copy it to checkpoint it. */
#ifndef LORAC_CORE_RNG_H
#define LORAC_CORE_RNG_H

#include <stdint.h>

typedef struct lorac_rng {
    uint64_t s[4];
} lorac_rng;

void lorac_rng_seed(lorac_rng *r, uint64_t seed);
uint64_t lorac_rng_u64(lorac_rng *r);
/* uniform in [0, 1) with 24 random bits */
float lorac_rng_uniform(lorac_rng *r);
/* standard normal (Box-Muller) */
float lorac_rng_normal(lorac_rng *r);
/* uniform integer in [0, n) */
uint64_t lorac_rng_below(lorac_rng *r, uint64_t n);
/* Fisher-Yates shuffle of an int array */
void lorac_rng_shuffle(lorac_rng *r, int *a, int n);

/* Counter-based draws, for dropout masks that forward and backward (and any
 * thread) recompute instead of storing: element i of the mask keyed `key`
 * is kept when 24 bits of splitmix64's finalizer of key + (i + 1) * golden
 * ratio, read as u in [0, 1), satisfy u >= p (the same test as
 * op_dropout_fwd's, so P(keep) = 1 - p up to 2^-24). */
static inline uint64_t lorac_hash64(uint64_t z) { /* splitmix64's finalizer */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline int lorac_hash_keep(uint64_t key, uint64_t i, float p) {
    const uint64_t z = lorac_hash64(key + (i + 1) * 0x9E3779B97F4A7C15ull);
    return (float)(z >> 40) * (1.0f / 16777216.0f) >= p;
}

#endif
