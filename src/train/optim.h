/* optim.h - AdamW with PyTorch's semantics, gradient-norm clipping,
 * gradient sanity checks, and learning-rate schedules (Hugging Face's
 * get_{constant,linear,cosine}_schedule_with_warmup).
 *
 * Usage, one training step:
 *     lorac_optim_zero_grad(opt);
 *     ... forward, backward: accumulate into each param's grad ...
 *     LORAC_TRY(lorac_optim_check_grads(opt, NULL));
 *     double norm = lorac_optim_clip_grad_norm(opt, 1.0);
 *     lorac_optim_step(opt, base_lr * lorac_lr_at(&sched, opt->step));
 *
 * Ownership: the optimizer owns its lorac_param array, each param's name copy,
 * the moments m and v, and any grad buffer it allocated (grad == NULL passed
 * to lorac_optim_add). data, and grads passed in, are borrowed: they must
 * outlive the optimizer.
 *
 * State for a checkpoint is public: step, and per param m[n] and v[n]
 * (find a param by name with lorac_optim_find). Writing those back restores
 * the optimizer exactly; lorac_optim_save / lorac_optim_load do that with a
 * safetensors file. */
#ifndef LORAC_TRAIN_OPTIM_H
#define LORAC_TRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct lorac_param {
    char *name;   /* owned copy, for messages and checkpoints ("h.3.attn.c_attn.lora_A") */
    float *data;  /* [n] trainable values, updated in place (borrowed) */
    float *grad;  /* [n] gradient, accumulated by backward (borrowed, or owned when own_grad) */
    float *m;     /* [n] AdamW first moment (owned) */
    float *v;     /* [n] AdamW second moment (owned) */
    size_t n;
    int decay;    /* 1: apply weight decay (usually matrices; 0 for biases and norms) */
    int group;    /* 1: lr_mult and wd below replace the optimizer's (a torch param group: LoRA+) */
    double lr_mult, wd; /* this param's lr = lr_mult * the scheduled lr; its weight decay */
    int own_grad; /* 1: grad was allocated by the optimizer */
} lorac_param;

/* torch.optim.AdamW's hyper-parameters. */
typedef struct lorac_adamw_cfg {
    double lr;           /* 1e-3: base learning rate (lorac_optim_step takes the scheduled one) */
    double beta1, beta2; /* 0.9, 0.999 */
    double eps;          /* 1e-8 */
    double weight_decay; /* 1e-2 */
} lorac_adamw_cfg;

#define LORAC_ADAMW_DEFAULTS {1e-3, 0.9, 0.999, 1e-8, 1e-2}

typedef struct lorac_optim {
    lorac_adamw_cfg cfg;
    lorac_param *p;   /* [n_params] */
    int n_params, cap_params;
    int64_t step;     /* steps taken so far; the next step uses t = step + 1 */
} lorac_optim;

/* cfg NULL = LORAC_ADAMW_DEFAULTS. LORAC_ERR_ARG for betas outside [0, 1),
 * negative eps / weight decay, or a non-finite value. */
lorac_status lorac_optim_create(const lorac_adamw_cfg *cfg, lorac_optim **out);
/* Accepts NULL. */
void lorac_optim_destroy(lorac_optim *o);

/* Register a parameter tensor of n floats. grad NULL: the optimizer allocates
 * a zeroed gradient buffer (own_grad). m and v start at zero. *out (optional)
 * receives the param; the pointer stays valid until the next add. */
lorac_status lorac_optim_add(lorac_optim *o, const char *name, float *data, float *grad, size_t n, int decay,
                             lorac_param **out);

/* ---- LoRA+ (Hayou et al. 2024; PEFT's create_loraplus_optimizer) -------
 * Param groups by kind, each a torch param group of its own:
 *   LoRA embedding pairs (lora_embedding_A/B)   lr = lr_embedding (absolute)
 *   lora_B and every 1-D param (biases, DoRA's   lr = base lr * ratio
 *   magnitude vectors, norm weights)
 *   everything else (lora_A, head matrices)      lr = base lr
 * weight decay = weight_decay for all but biases and norm weights (0), as
 * PEFT's loraplus_weight_decay (its default 0: LoRA+ ignores the optimizer's
 * own weight decay). Schedules scale every group alike. */
typedef struct lorac_loraplus_cfg {
    double ratio;        /* loraplus_lr_ratio (> 0; 0 = LoRA+ off) */
    double lr_embedding; /* loraplus_lr_embedding, 1e-6 in PEFT */
    double weight_decay; /* loraplus_weight_decay, 0 in PEFT */
} lorac_loraplus_cfg;
typedef enum { LORAC_PKIND_A = 0, LORAC_PKIND_B, LORAC_PKIND_EMBED, LORAC_PKIND_NODECAY } lorac_param_kind;
/* The LoRA+ kind of a trainable tensor by its name and rank: lora_embedding
 * -> EMBED; a 1-D bias or nn.LayerNorm param -> NODECAY (group B without
 * decay); lora_B or any other 1-D -> B; else A. */
lorac_param_kind lorac_loraplus_kind(const char *name, int ndim);
/* Put p in its LoRA+ group (base_lr: the optimizer's lr, to turn
 * lr_embedding into a multiplier). */
void lorac_loraplus_set(lorac_param *p, lorac_param_kind kind, const lorac_loraplus_cfg *c, double base_lr);

/* The param with this name, or NULL. */
lorac_param *lorac_optim_find(lorac_optim *o, const char *name);

/* Total number of trainable values. */
size_t lorac_optim_numel(const lorac_optim *o);

/* Set every gradient to zero. */
void lorac_optim_zero_grad(lorac_optim *o);

/* LORAC_ERR_NUMERIC when a gradient holds NaN or Inf, naming the first such
 * param and element; *bad (optional) receives its index, or -1 when all are
 * finite. */
lorac_status lorac_optim_check_grads(const lorac_optim *o, int *bad);

/* The L2 norm of all gradients together, accumulated in double. */
double lorac_optim_grad_norm(const lorac_optim *o);

/* torch.nn.utils.clip_grad_norm_(params, max_norm): with the total norm T,
 * clip_coef = max_norm / (T + 1e-6); when clip_coef < 1 every gradient is
 * multiplied by it. Returns T (before clipping). max_norm <= 0 only measures.
 * A non-finite T leaves the gradients unchanged (check them first). */
double lorac_optim_clip_grad_norm(lorac_optim *o, double max_norm);

/* One AdamW step with learning rate lr (the scheduled value), exactly as
 * torch's single-tensor, non-amsgrad AdamW. With t = ++step:
 *     p *= 1 - lr * wd                       (decay params only)
 *     m  = b1 m + (1 - b1) g
 *     v  = b2 v + (1 - b2) g^2
 *     p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
void lorac_optim_step(lorac_optim *o, double lr);

/* Checkpointing: write the moments as a safetensors file, "<name>.exp_avg"
 * and "<name>.exp_avg_sq" ([n] F32 each, torch's state names) with the step
 * in the metadata ("step"); load reads them back into the params of the same
 * names (every param must be there with n values; extra tensors are an
 * error too), restoring the optimizer exactly. */
lorac_status lorac_optim_save(const lorac_optim *o, const char *path);
lorac_status lorac_optim_load(lorac_optim *o, const char *path);

/* ---- learning-rate schedules: multipliers of the base learning rate ---- */

typedef enum lorac_sched_kind {
    LORAC_SCHED_CONSTANT = 0, /* 1 after the warm-up (get_constant_schedule_with_warmup) */
    LORAC_SCHED_LINEAR,       /* warm-up, then linear decay to 0 at total_steps */
    LORAC_SCHED_COSINE,       /* warm-up, then cosine decay (num_cycles 0.5: to 0 at total_steps) */
} lorac_sched_kind;

typedef struct lorac_sched {
    lorac_sched_kind kind;
    int warmup_steps; /* linear ramp step / warmup_steps over the first warmup_steps steps */
    int total_steps;  /* the last step (linear and cosine) */
    double num_cycles; /* cosine only; <= 0 means Hugging Face's default 0.5 */
} lorac_sched;

/* The multiplier for optimizer step `step` (0 for the first step, as
 * torch's LambdaLR): Hugging Face's formulas,
 *   step < warmup:  step / max(1, warmup)
 *   constant:       1
 *   linear:         max(0, (total - step) / max(1, total - warmup))
 *   cosine:         progress = (step - warmup) / max(1, total - warmup),
 *                   max(0, 0.5 * (1 + cos(pi * num_cycles * 2 * progress))) */
double lorac_lr_at(const lorac_sched *s, int step);

/* "constant", "linear" or "cosine" -> kind; LORAC_ERR_ARG otherwise. */
lorac_status lorac_sched_parse(const char *name, lorac_sched_kind *out);
const char *lorac_sched_name(lorac_sched_kind k);

#endif
