/* generate.h - text generation: greedy, temperature, top-k, top-p (nucleus),
 * stop tokens, with whatever adapter the model holds. */
#ifndef LORAC_MODELS_GENERATE_H
#define LORAC_MODELS_GENERATE_H

#include "models/model.h"

typedef struct lorac_gen_opts {
    int max_new;        /* tokens to generate at most */
    float temperature;  /* 0 = greedy (argmax) */
    int top_k;          /* 0 = off */
    float top_p;        /* 1 = off */
    uint64_t seed;
    int stop[8];        /* stop token ids (not emitted) */
    int n_stop;
} lorac_gen_opts;

void lorac_gen_opts_default(lorac_gen_opts *o);

/* Called with each new token; return non-zero to stop. */
typedef int (*lorac_token_fn)(int id, void *ctx);

/* Generate after prompt[0..n). The sequence is cut to the model's context
 * (the oldest tokens slide out). *out (malloc'd) receives the new tokens. */
lorac_status lorac_generate(lorac_model *m, const int *prompt, int n, const lorac_gen_opts *o, lorac_token_fn fn,
                            void *ctx, int **out, int *n_out);

/* Pick the next token from logits[V] (modified in place). */
int lorac_sample(float *logits, int V, const lorac_gen_opts *o, lorac_rng *rng);

#endif
