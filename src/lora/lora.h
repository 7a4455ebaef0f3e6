/* lora.h - PEFT's LoraConfig in C: which modules get an adapter, how it is
 * initialised and scaled, and what else becomes trainable.
 *
 * Matching follows PEFT (peft.tuners.tuners_utils.check_target_module_exists):
 *  - target_regex set: the module name must match it in full;
 *  - otherwise a module is targeted if its name equals a target or ends with
 *    "." + target; the target "all-linear" stands for every Linear inside the
 *    transformer blocks (not lm_head, not the classification head);
 *  - layers_to_transform keeps only modules whose name has ".<layers|h|layer>.<i>."
 *    with i in the list.
 * Initialisation as PEFT's default: A ~ kaiming_uniform(a=sqrt(5)) =
 * U(-1/sqrt(in), 1/sqrt(in)), B = 0, so the model is unchanged before
 * training. scale = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora. */
#ifndef LORAC_LORA_LORA_H
#define LORAC_LORA_LORA_H

#include <stdint.h>

#include "models/model.h"

#define LORAC_MAX_TARGETS 32

typedef enum { LORAC_BIAS_NONE = 0, LORAC_BIAS_ALL, LORAC_BIAS_LORA_ONLY } lorac_bias_mode;

/* init_lora_weights: True (PEFT's default), "gaussian", "pissa" /
 * "pissa_niter_K", "olora", False (lora/lora_init.c). */
typedef enum {
    LORAC_INIT_DEFAULT = 0, /* A kaiming_uniform(a=sqrt 5), B = 0 */
    LORAC_INIT_GAUSSIAN,    /* A ~ N(0, 1/r), B = 0 */
    LORAC_INIT_PISSA,       /* A, B from the top r singular triplets of W; W -= s B A (pissa_niter > 0: randomized SVD) */
    LORAC_INIT_OLORA,       /* A, B from W = Q R: B = Q[:, :r], A = R[:r]; W -= s B A */
    LORAC_INIT_FALSE,       /* A and B both nn.Linear's default (kaiming_uniform(a=sqrt 5)): not an identity start */
} lorac_lora_init;

#define LORAC_MAX_PATTERNS 64
/* One rank_pattern / alpha_pattern entry: PEFT's get_pattern_key matches a
 * key against a module name as re.match(r"(.*\.)?(key)$", name); the first
 * key (in the config's order) that matches wins. */
typedef struct lorac_pattern { char key[128]; float value; } lorac_pattern;

typedef struct lorac_lora_config {
    int r;
    float alpha;
    float dropout;
    char targets[LORAC_MAX_TARGETS][96]; int n_targets;
    char target_regex[256];            /* used when non-empty */
    lorac_bias_mode bias;
    char modules_to_save[LORAC_MAX_TARGETS][96]; int n_modules_to_save;
    int use_rslora;
    int layers[256]; int n_layers;     /* layers_to_transform (empty = all) */
    int split_fused;                   /* lorac extension: one rank-r pair per part of a fused q|k|v */
    int use_dora;                      /* DoRA: a magnitude vector per module (lora/dora.c) */
    lorac_pattern rank_pattern[LORAC_MAX_PATTERNS]; int n_rank_pattern;   /* per-module r */
    lorac_pattern alpha_pattern[LORAC_MAX_PATTERNS]; int n_alpha_pattern; /* per-module lora_alpha */
    lorac_lora_init init;              /* init_lora_weights */
    int pissa_niter;                   /* "pissa_niter_K": K subspace iterations of a randomized SVD (0: exact SVD) */
    uint64_t seed;
} lorac_lora_config;

/* Defaults: r 8, alpha 8, dropout 0, bias none, seed 42, no targets. */
void lorac_lora_config_default(lorac_lora_config *c);
/* Parse "q_proj,v_proj" / "all-linear" into c->targets (appends). */
lorac_status lorac_lora_parse_list(const char *s, char (*out)[96], int *n, const char *what);
lorac_status lorac_lora_parse_layers(const char *s, lorac_lora_config *c);

/* The r and lora_alpha of module `name` under c's rank_pattern / alpha_pattern. */
void lorac_lora_module_r_alpha(const lorac_lora_config *c, const char *name, int *r, float *alpha);
/* Parse "key=value,key=value" into a pattern list (appends); what names the flag. */
lorac_status lorac_lora_parse_patterns(const char *s, lorac_pattern *out, int *n, int integer, const char *what);

/* c->target_regex (if any) compiles as the POSIX extended regex lorac_lora_targets
 * matches with; ARG naming it otherwise. */
lorac_status lorac_lora_check_regex(const lorac_lora_config *c);

/* Does module `name` get an adapter under c? (exposed for `lorac modules`) */
int lorac_lora_targets(const lorac_lora_config *c, const lorac_model *m, const lorac_linear *L);

/* Inject adapters and mark trainable weights. Errors when no module matches
 * (naming the targets and a hint to run `lorac modules`). *n_adapted may be NULL. */
lorac_status lorac_lora_apply(lorac_model *m, const lorac_lora_config *c, int *n_adapted);
/* One LoRA pair for L, zero-filled: A [parts*r, in], B [out, r], with
 * gradient buffers when grads != 0 (not attached to L). */
lorac_status lorac_lora_new(const lorac_linear *L, int r, int parts, float alpha, float scale, float dropout, int grads,
                            lorac_lora **out);

/* LoRA on the token embedding (lora/lora_embed.c): does c target it (by its
 * module name, "model.embed_tokens"; all-linear does not), and give it a
 * pair (m->wte_lora: lora_embedding_A [r, vocab] = 0, lora_embedding_B
 * [dim, r] ~ N(0, 1), as PEFT). */
int lorac_lora_embed_targeted(const lorac_lora_config *c, const lorac_model *m);
lorac_status lorac_lora_embed_apply(lorac_model *m, const lorac_lora_config *c, lorac_rng *rng);
lorac_status lorac_lora_embed_new(lorac_model *m, int r, float alpha, float scale, int grads, lorac_lora **out);

/* Other training methods (the seeds' comparison): make everything trainable
 * (full), or only the last n modules/layers (last-layers:N), or only the head. */
lorac_status lorac_make_full_trainable(lorac_model *m);
/* Make the last n Linear modules of the forward order (m->lin, lm_head
 * excluded) trainable in full, weights and biases: for a classifier the head
 * comes last (after an encoder's pre_head), so last-layers:1 is the head.
 * LORAC_ERR_ARG when n < 1 or the model has fewer Linears. */
lorac_status lorac_make_last_layers_trainable(lorac_model *m, int n);

/* Parameter counts as PEFT's print_trainable_parameters: every parameter
 * tensor once (tied weights once), LoRA matrices included. */
void lorac_count_params(const lorac_model *m, int64_t *trainable, int64_t *all);

/* Visit every trainable tensor (base weights with grads, then LoRA A/B). */
typedef void (*lorac_param_fn)(lorac_weight *w, void *ctx);
void lorac_for_each_trainable(lorac_model *m, lorac_param_fn fn, void *ctx);

#endif
