/* test_dist_balance.c - sharing a batch over data-parallel ranks
 * (lorac_dist_balance, dist/dist.h): no MPI needed, it is pure arithmetic.
 *
 * The cost of a rank is its padded work: examples x its longest example.
 * Checked on random length mixes:
 *  - every example goes to exactly one rank in [0, nranks), every rank gets
 *    at least one, and the value returned is the largest rank's cost;
 *  - on small batches, that largest cost is the optimum over ALL ways of
 *    sharing (every assignment enumerated), not only over contiguous cuts;
 *  - on larger batches it is never above the plain contiguous split by
 *    count (equal shares in batch order, the first n % nranks one larger);
 *  - the same lengths give the same shares (what every rank relies on). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "dist/dist.h"
#include "testutil.h"

static int64_t cost_of(const int *len, const int *rank_of, int count, int nranks, int *empty) {
    int64_t worst = 0;
    *empty = 0;
    for (int r = 0; r < nranks; r++) {
        int n = 0, T = 0;
        for (int i = 0; i < count; i++)
            if (rank_of[i] == r) {
                n++;
                if (len[i] > T) T = len[i];
            }
        if (!n) (*empty)++;
        if ((int64_t)n * T > worst) worst = (int64_t)n * T;
    }
    return worst;
}

/* the best largest cost over every assignment with no empty rank */
static int64_t brute_force(const int *len, int count, int nranks) {
    int as[16] = {0};
    int64_t best = INT64_MAX;
    for (;;) {
        int empty;
        int64_t c = cost_of(len, as, count, nranks, &empty);
        if (!empty && c < best) best = c;
        int i = 0;
        while (i < count && ++as[i] == nranks) as[i++] = 0;
        if (i == count) return best;
    }
}

static void random_lengths(lorac_rng *r, int *len, int count) {
    const int mode = (int)lorac_rng_below(r, 3);
    for (int i = 0; i < count; i++) {
        if (mode == 0) len[i] = 1 + (int)lorac_rng_below(r, 128);                          /* uniform */
        else if (mode == 1) len[i] = lorac_rng_below(r, 5) ? 3 + (int)lorac_rng_below(r, 10) : 120; /* a few long */
        else len[i] = 8 + (int)lorac_rng_below(r, 3);                                       /* nearly equal */
    }
}

int main(void) {
    lorac_rng r;
    lorac_rng_seed(&r, 16);
    int len[256], rank_of[256], again[256], contiguous[256];

    /* small batches: the optimum over every assignment */
    for (int trial = 0; trial < 300; trial++) {
        const int count = 2 + (int)lorac_rng_below(&r, 7), nranks = 2 + (int)lorac_rng_below(&r, count < 4 ? count - 1 : 3);
        random_lengths(&r, len, count);
        const int64_t got = lorac_dist_balance(len, count, nranks, rank_of);
        int empty;
        const int64_t real = cost_of(len, rank_of, count, nranks, &empty);
        CHECK(empty == 0, "count %d, %d ranks: %d ranks got nothing", count, nranks, empty);
        CHECK(got == real, "count %d, %d ranks: returned %lld, the shares cost %lld", count, nranks, (long long)got,
              (long long)real);
        const int64_t best = brute_force(len, count, nranks);
        CHECK(real == best, "count %d, %d ranks: largest share %lld, the best possible %lld", count, nranks,
              (long long)real, (long long)best);
    }

    /* larger batches: never worse than the contiguous split by count, and repeatable */
    double gain = 0;
    for (int trial = 0; trial < 200; trial++) {
        const int count = 8 + (int)lorac_rng_below(&r, 249), nranks = 2 + (int)lorac_rng_below(&r, 7);
        random_lengths(&r, len, count);
        const int64_t got = lorac_dist_balance(len, count, nranks, rank_of);
        int empty;
        CHECK(cost_of(len, rank_of, count, nranks, &empty) == got && empty == 0, "count %d, %d ranks", count, nranks);
        for (int q = 0, i = 0; q < nranks; q++) /* equal shares in batch order */
            for (int c = count / nranks + (q < count % nranks); c > 0; c--) contiguous[i++] = q;
        const int64_t plain = cost_of(len, contiguous, count, nranks, &empty);
        CHECK(got <= plain, "count %d, %d ranks: balanced %lld > contiguous %lld", count, nranks, (long long)got,
              (long long)plain);
        gain += (double)plain / (double)got;
        lorac_dist_balance(len, count, nranks, again);
        CHECK(!memcmp(rank_of, again, sizeof(int) * (size_t)count), "count %d, %d ranks: shares differ between calls",
              count, nranks);
    }
    printf("balanced shares: the largest rank's padded work is %.2fx smaller than with the contiguous split (mean of 200 "
           "random batches)\n", gain / 200);

    /* one rank takes everything */
    len[0] = 5, len[1] = 9, len[2] = 1;
    CHECK(lorac_dist_balance(len, 3, 1, rank_of) == 27 && rank_of[0] == 0 && rank_of[1] == 0 && rank_of[2] == 0,
          "one rank");
    return test_summary("test_dist_balance");
}
