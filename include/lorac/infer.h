/* lorac/infer.h - running a model: raw logits, classification with the
 * head, text generation (sampling settings, a streaming callback, timings).
 * Part of lorac.h (its conventions apply). */
#ifndef LORAC_INFER_H
#define LORAC_INFER_H

#include "core.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Inference
 * ====================================================================== */

/* The model's outputs for token ids[B*T] (B sequences of T, no padding;
 * T <= the context): with a classification head its class logits
 * [B, n_classes], else the LM logits [B, T, vocab]. *out from malloc
 * (lorac_free), *n its floats. [one thread per llm] */
LORAC_API lorac_status lorac_llm_logits(lorac_llm *llm, const int *ids, int B, int T, float **out, size_t *n);

/* Classify text with the model's head (an adapter trained for
 * classification must be active). probs[0..n_probs) receives the softmax
 * over the classes (n_probs >= the class count, see lorac_llm_get_info);
 * *label the argmax (may be NULL). Uses the model's activation buffers:
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_classify(lorac_llm *llm, const char *text, float *probs, int n_probs, int *label);
/* The name of class i from the active adapter's config ("spam"), or NULL.
 * Valid until the adapter changes. [read-only] */
LORAC_API const char *lorac_llm_label(const lorac_llm *llm, int i);

typedef struct lorac_gen_params {
    size_t size;         /* sizeof(lorac_gen_params), set by lorac_gen_params_init */
    int max_new;         /* generate at most this many tokens (default 64) */
    float temperature;   /* 0 = greedy (default) */
    int top_k;           /* 0 = off (default) */
    float top_p;         /* 1 = off (default) */
    uint64_t seed;       /* sampling seed (default 42) */
    int stop[8];         /* stop token ids (not emitted); with n_stop 0 the tokenizer's EOS */
    int n_stop;
    int no_eos_stop;     /* 1: with n_stop 0, no stop token at all */
    int no_kv_cache;     /* 1: recompute the whole sequence for every token (the reference; slow) */
} lorac_gen_params;
LORAC_API void lorac_gen_params_init(lorac_gen_params *p);

/* Called with each new token: its id and its text (bytes; may be part of a
 * UTF-8 character). Return non-zero to stop (the token is kept). */
typedef int (*lorac_token_cb)(int id, const char *piece, size_t len, void *user);

typedef struct lorac_gen_stats {
    int prompt_tokens;       /* the prompt's tokens (after BOS / chat format) */
    double prompt_seconds;   /* until the first new token was known (the prompt's forward) */
    int gen_tokens;          /* new tokens */
    double gen_seconds;      /* after that, until the last */
    int stopped;             /* 0: max_new, 1: a stop token, 2: the callback */
} lorac_gen_stats;

/* Continue prompt ids[0..n) (n >= 1). *out (from malloc; lorac_free) gets
 * the new ids; out / n_out / cb / stats may be NULL; p NULL: defaults.
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_generate_ids(lorac_llm *llm, const int *ids, int n, const lorac_gen_params *p,
                                              lorac_token_cb cb, void *user, int **out, int *n_out,
                                              lorac_gen_stats *stats);
/* Continue prompt text (encoded with the model's special tokens; "" starts
 * from BOS, or EOS where there is none). *text (lorac_free) gets the new
 * text; text / cb / stats may be NULL. [one thread per llm] */
LORAC_API lorac_status lorac_llm_generate(lorac_llm *llm, const char *prompt, const lorac_gen_params *p,
                                          lorac_token_cb cb, void *user, char **text, lorac_gen_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
