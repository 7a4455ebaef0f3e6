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

#endif
