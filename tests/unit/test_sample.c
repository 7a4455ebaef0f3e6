/* test_sample - the next-token sampler of lorac generate.
 *  - temperature 0 is argmax (first maximum, as torch.argmax);
 *  - top-k 1 and a tiny top-p reduce to argmax at any temperature;
 *  - top-k k never returns a token outside the k most likely;
 *  - top-p keeps the smallest set whose mass reaches p;
 *  - plain temperature sampling follows softmax(logits / T): frequencies
 *    over 200,000 draws within 4 standard errors of the probabilities. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/generate.h"
#include "testutil.h"

int main(void) {
    const int V = 6;
    const float base[6] = {1.0f, 3.0f, 0.5f, 3.0f, -2.0f, 2.5f};
    float z[6];
    lorac_rng rng;
    lorac_rng_seed(&rng, 7);
    lorac_gen_opts o;
    lorac_gen_opts_default(&o);

    memcpy(z, base, sizeof z);
    CHECK(lorac_sample(z, V, &o, &rng) == 1, "greedy picks the first maximum");

    o.temperature = 1.5f;
    o.top_k = 1;
    for (int i = 0; i < 100; i++) {
        memcpy(z, base, sizeof z);
        int id = lorac_sample(z, V, &o, &rng);
        if (id != 1) { CHECK(0, "top-k 1 gave %d", id); break; }
    }
    o.top_k = 0;
    o.top_p = 1e-4f;
    for (int i = 0; i < 100; i++) {
        memcpy(z, base, sizeof z);
        int id = lorac_sample(z, V, &o, &rng);
        if (id != 1) { CHECK(0, "tiny top-p gave %d", id); break; }
    }
    o.top_p = 1;
    o.top_k = 3; /* the three most likely: 1, 3 (3.0) and 5 (2.5) */
    int bad = 0;
    for (int i = 0; i < 2000; i++) {
        memcpy(z, base, sizeof z);
        int id = lorac_sample(z, V, &o, &rng);
        bad += id != 1 && id != 3 && id != 5;
    }
    CHECK(bad == 0, "top-k 3 returned a token outside the top 3 %d times", bad);

    /* top-p 0.8 at T=1: softmax sorted 1, 3 (0.353 each), 5 (0.214), 0 (0.048), 2, 4;
     * cumulative 0.353, 0.707, 0.921 >= 0.8: the set is {1, 3, 5} */
    o.top_k = 0;
    o.top_p = 0.8f;
    o.temperature = 1.0f;
    int seen[6] = {0};
    for (int i = 0; i < 20000; i++) {
        memcpy(z, base, sizeof z);
        seen[lorac_sample(z, V, &o, &rng)]++;
    }
    CHECK(seen[0] == 0 && seen[2] == 0 && seen[4] == 0, "top-p 0.8 sampled outside its set (%d, %d, %d)", seen[0], seen[2], seen[4]);
    CHECK(seen[1] > 0 && seen[3] > 0 && seen[5] > 0, "top-p 0.8 never sampled part of its set");

    /* plain sampling at T = 0.7 matches softmax(z / 0.7) */
    o.top_p = 1;
    o.temperature = 0.7f;
    double p[6], sum = 0;
    for (int i = 0; i < V; i++) sum += p[i] = exp(base[i] / 0.7);
    int cnt[6] = {0};
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        memcpy(z, base, sizeof z);
        cnt[lorac_sample(z, V, &o, &rng)]++;
    }
    for (int i = 0; i < V; i++) {
        double q = p[i] / sum, f = (double)cnt[i] / n, se = sqrt(q * (1 - q) / n);
        CHECK(fabs(f - q) <= 4 * se + 1e-9, "token %d: frequency %.5f, softmax %.5f", i, f, q);
    }
    return test_summary("test_sample");
}
