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
 * (the oldest tokens slide out). *out (malloc'd) receives the new tokens.
 * Decodes over a KV cache (models/kvcache.h): the prompt is read in one
 * forward, then one row per new token; once the context is full, each step
 * reads the last n_ctx tokens afresh (their positions have all moved). */
lorac_status lorac_generate(lorac_model *m, const int *prompt, int n, const lorac_gen_opts *o, lorac_token_fn fn,
                            void *ctx, int **out, int *n_out);

/* One sequence of lorac_generate_batch: its prompt, options and callback
 * in; its tokens and timings out. */
typedef struct lorac_gen_seq {
    const int *prompt;      /* [n] at least one token */
    int n;
    const lorac_gen_opts *opts;
    lorac_token_fn fn;      /* may be NULL; non-zero return ends this sequence */
    void *ctx;
    int *out;               /* out: the new tokens (malloc'd; the caller frees), stop tokens not included */
    int n_out;
    int n_prompt;           /* out: prompt tokens read (after the cut to the context) */
    double prompt_s;        /* out: seconds of the prompt's forward (shared by the batch: every sequence gets it) */
    double gen_s;           /* out: seconds from then until this sequence ended, sampling included */
} lorac_gen_seq;

/* Several prompts decoding together: one KV cache slot each, their rows
 * through the model in one batched forward per step (lorac_model_decode),
 * each finishing on its own (max_new, a stop token, its callback). adapters
 * as lorac_model_decode takes them: NULL = every sequence with the model's
 * own (active) adapter; else adapters[i] = sequence i's table [m->n_lin] or
 * NULL for the base alone. Each sequence's tokens are those lorac_generate
 * would give it alone with the same adapter (up to float rounding of
 * batched GEMMs). On error every out is freed and NULL. */
lorac_status lorac_generate_batch(lorac_model *m, lorac_gen_seq *seqs, int n, lorac_lora *const *const *adapters);

/* The reference without a cache: every step runs lorac_model_forward over
 * the whole (cut) sequence; one sequence, the model's own adapter. Fills
 * seq's outs as lorac_generate_batch does. */
lorac_status lorac_generate_recompute(lorac_model *m, lorac_gen_seq *seq);

/* Pick the next token from logits[V] (modified in place). */
int lorac_sample(float *logits, int V, const lorac_gen_opts *o, lorac_rng *rng);

#endif
