/* lorac/train.h - training and evaluation: the config (the fields of
 * `lorac train --help`), lorac_llm_train in one call or in stages
 * (prepare / fit / score, or a method applied without a data set), what a
 * config's LoRA settings mean per module, checkpoints. Part of lorac.h
 * (its conventions apply). */
#ifndef LORAC_TRAIN_H
#define LORAC_TRAIN_H

#include <signal.h> /* sig_atomic_t: lorac_train_config.stop */
#include "core.h"
#include "model.h"
#include "data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Training and evaluation (the fields of `lorac train --help`)
 * ====================================================================== */


/* data-parallel ranks (lorac/ranks.h) */
struct lorac_ranks;

typedef struct lorac_train_progress {
    int epoch, epochs, step, total_steps;
    double loss, lr, tokens_per_s, elapsed, eta;
    int is_eval;             /* 1: an evaluation finished: val_loss, val_acc (acc < 0 if not classification) */
    double val_loss, val_acc;
} lorac_train_progress;
/* Return non-zero to cancel: training stops at the end of this step and
 * lorac_llm_train returns LORAC_ERR_CANCELLED (the adapter trained so far
 * stays on the llm). */
typedef int (*lorac_train_cb)(const lorac_train_progress *p, void *user);

/* Every field a one-line addition: lorac_train_config_init sets the
 * defaults; 0 / NULL mean "default" where noted. */
typedef struct lorac_train_config {
    size_t size;                 /* sizeof(lorac_train_config), set by lorac_train_config_init */
    lorac_data_config data;
    /* method */
    const char *method;          /* "lora" (default; over an NF4 / GGUF base: QLoRA), "full", "head", "last-layers:N" */
    int r;                       /* LoRA rank (8) */
    float alpha;                 /* lora_alpha (0: = r) */
    float dropout;               /* lora_dropout (0) */
    const char *target;          /* target_modules, comma list or "all-linear" (default) */
    const char *target_regex;    /* instead: one regex over full module names */
    const char *bias;            /* "none" (default), "all", "lora_only" */
    const char *modules_to_save; /* comma list */
    int rslora;                  /* scale alpha / sqrt(r) */
    const char *layers;          /* layers_to_transform, "0,1,2" */
    int split_qkv;               /* GPT-2: one pair for each of q, k, v */
    const char *head_init;       /* a new classification head: "hf" (default) or "torch" */
    /* optimizer */
    int epochs;                  /* 1 */
    int batch;                   /* 8 */
    int grad_accum;              /* 1 */
    int max_steps;               /* 0 = no limit */
    float lr;                    /* 1e-4 */
    float weight_decay;          /* 0.01 */
    int warmup;                  /* linear warm-up steps (0) */
    const char *schedule;        /* "constant" (default), "linear", "cosine" */
    float clip;                  /* global grad-norm clip, 0 = off */
    int eval_every;              /* steps between evaluations (0: each epoch) */
    int skip_nonfinite;          /* skip a NaN / Inf step instead of failing */
    int padded_batches;          /* pad instead of packing (comparisons) */
    uint64_t seed;               /* 123 */
    int gradient_checkpointing;  /* recompute activations in backward (decoders) */
    /* output */
    const char *metrics_path;    /* append one JSON line per step / evaluation (NULL: none) */
    lorac_train_cb progress;     /* may be NULL */
    void *user;
    /* PEFT family (lorac train's --dora ... --model-dropout) */
    int dora;                    /* use_dora: a trained magnitude per output row */
    const char *rank_pattern;    /* rank_pattern "K=R,..": r per module (key: the name ends in .K or is K) */
    const char *alpha_pattern;   /* alpha_pattern "K=A,..": lora_alpha per module */
    const char *init;            /* init_lora_weights: "true" (default), "false", "gaussian", "pissa", "pissa_niter_K",
                                    "olora" */
    float loraplus_ratio;        /* LoRA+: lora_B (and 1-D params) learn at lr * ratio; 0 = off (default) */
    float loraplus_lr_embedding; /* LoRA+: lr of embedding LoRA pairs (1e-6) */
    float loraplus_weight_decay; /* LoRA+: weight decay of its groups (0; weight_decay is then unused, as PEFT) */
    int model_dropout;           /* 1 (default): the model's own dropout rates from config.json apply in training
                                    (BERT's, GPT-2's, ... as torch's train mode); 0: off (LoRA dropout only) */
    /* checkpoints (lorac_llm_fit) */
    const char *checkpoint_dir;  /* write resumable checkpoints DIR/step-N here (NULL: none); one is always
                                    written when training stops early (stop / cancel) */
    int save_every;              /* ... and every N optimizer steps and at the end (0: only when stopped early) */
    int keep_checkpoints;        /* keep the newest K (2); 0 keeps all */
    const char *resume_from;     /* a checkpoint (lorac_checkpoint_find) to continue from, step for step; the
                                    llm must be prepared as for the run that wrote it */
    const char *const *run_config; /* more (name, value) pairs, NULL-terminated, that a resumed run must share
                                    (the library records the method and LoRA settings itself); may be NULL */
    volatile sig_atomic_t *stop; /* may be NULL; when *stop becomes non-zero (a signal handler may set it),
                                    training stops at the next step boundary (lorac_llm_fit) */
    struct lorac_ranks *ranks;   /* data parallel (lorac_ranks_start): NULL = this process alone */
} lorac_train_config;
LORAC_API void lorac_train_config_init(lorac_train_config *c);

typedef struct lorac_split_scores {
    int n;                   /* examples (0: the split is empty) */
    double loss;             /* mean loss (per example for classify, per target token otherwise) */
    double acc;              /* classify: accuracy; else -1 */
} lorac_split_scores;

typedef struct lorac_train_report {
    int steps;
    double final_loss, seconds, tokens_per_s;
    int64_t tokens;
    int64_t params_trainable, params_all;
    lorac_split_scores train, val, test; /* scored after training */
    int n_labels;
} lorac_train_report;

/* Load c->data, add a classification head (classify), apply the method,
 * train, and score the train / validation / test splits. The trained
 * adapter stays on the llm (lorac_llm_adapter_save writes it; classify and
 * generate use it). The llm must hold no adapter yet. res may be NULL.
 * On LORAC_ERR_CANCELLED the adapter trained so far stays too.
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_train(lorac_llm *llm, const lorac_train_config *c, lorac_train_report *res);

/* Score the model as it is (with its active adapter) on d: every row of
 * d->data when d->whole, else the splits as training made them (same seed).
 * batch 0: 8. res->train / val / test. [one thread per llm] */
LORAC_API lorac_status lorac_llm_evaluate(lorac_llm *llm, const lorac_data_config *d, int batch, uint64_t seed,
                                          lorac_train_report *res);

/* ---- training in stages, data-parallel ranks, checkpoints (the training share of the CLI) ----
 *
 * lorac_llm_train in steps a program can watch and steer, as lorac train
 * does: load the data (lorac_data_load), prepare the llm for a method
 * (lorac_llm_prepare: a classification head, LoRA / QLoRA / full /
 * last-layers / head), train (lorac_llm_fit: checkpoints, resume, a stop
 * flag, data-parallel ranks), then score splits (lorac_llm_score). The
 * trainable-parameter count is lorac_llm_get_info's params_trainable. */


/* Check c before anything slow: its size, value ranges, the method, the
 * LoRA lists and patterns, init. No model needed. [any thread] */
LORAC_API lorac_status lorac_train_config_check(const lorac_train_config *c);

/* Make a freshly opened llm trainable for c->method on data: a new
 * classification head for classify data (c->head_init, seeded by c->seed),
 * then LoRA from c's fields (QLoRA over an NF4 / GGUF base: its token
 * embedding quantized too unless opened with embed_fp32), full,
 * last-layers:N or head; c->gradient_checkpointing. As PEFT's SEQ_CLS, LoRA
 * on a classifier trains the new head in full (*head_in_full = 1, may be
 * NULL) unless c->modules_to_save is given or the head is a LoRA target.
 * Refused when the llm holds an adapter; a failure may leave it half
 * prepared (close it). [one thread per llm] */
LORAC_API lorac_status lorac_llm_prepare(lorac_llm *llm, const lorac_train_config *c, const lorac_data *data,
                                         int *head_in_full);

/* lorac_llm_prepare without a data set, as PEFT's get_peft_model with
 * task_type None: c->method on the llm as it is, for inspecting what a
 * method trains (lorac_llm_param's tree, lorac_llm_get_info's counts) or
 * saving the adapter it makes. No head is added; a head added with
 * lorac_llm_add_head is not put into modules_to_save (LoRA trains its
 * matrices only, and the head only when c->modules_to_save names it or it
 * is a target); "head" trains it, and is refused without one. Over an NF4 /
 * GGUF base (lorac_llm_quantize_nf4) LoRA is QLoRA. c's data and optimizer
 * fields are not used, but c is checked as lorac_train_config_check does.
 * lorac_llm_fit needs lorac_llm_prepare instead. Refused when the llm holds
 * an adapter; a failure may leave it half prepared (close it).
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_apply_method(lorac_llm *llm, const lorac_train_config *c);

/* c's LoRA settings as the library reads them (lorac info's "LoRA kind"
 * line): after lorac_train_config_check's checks (c->method included), the
 * values PEFT's LoraConfig would hold. [any thread] */
typedef struct lorac_train_config_lora_info {
    size_t size;             /* sizeof(lorac_train_config_lora_info): set it before the call */
    int r;
    float alpha;             /* c->alpha, or r when 0 */
    float dropout;
    int rslora, dora, split_qkv;
    char init[32];           /* init_lora_weights as PEFT writes it: "true", "false", "gaussian", "pissa",
                                "pissa_niter_K", "olora" */
    int default_init;        /* 1: "true" (A Kaiming-uniform, B zero) */
    char bias[16];           /* "none", "all" or "lora_only" */
    int n_targets;           /* names in target (0 with target_regex) */
    int n_modules_to_save, n_layers, n_rank_pattern, n_alpha_pattern;
} lorac_train_config_lora_info;
LORAC_API lorac_status lorac_train_config_lora(const lorac_train_config *c, lorac_train_config_lora_info *out);

/* What c's LoRA fields would put on one module, without changing the llm
 * (lorac modules' arrows): module is a Linear module's name
 * (lorac_llm_module) or the token embedding's (its lorac_llm_param name
 * without ".weight": "model.embed_tokens", "transformer.wte"). Matching is
 * PEFT's: c->target_regex in full, else each c->target name exactly or as
 * a suffix after a "." ("all-linear": every Linear in the blocks, not
 * lm_head, not a classification head, never the embedding), then
 * c->layers; r and alpha after c->rank_pattern / alpha_pattern. c->method
 * is not looked at (any method's c gives the same answer). c is checked
 * as lorac_train_config_check checks its LoRA fields. An unknown module
 * name is LORAC_ERR_ARG. [read-only] */
typedef struct lorac_llm_target_info {
    size_t size;           /* sizeof(lorac_llm_target_info): set it before the call */
    int targeted;          /* 1: c puts a LoRA pair on the module; 0: r, parts, alpha, scale, dora, params are 0 */
    int embedding;         /* 1: the module is the token embedding (lora_embedding_A / _B) */
    int r;                 /* its rank (rank_pattern applied; per part) */
    int parts;             /* 3: one pair per q / k / v inside a fused Linear (split_qkv), else 1 */
    float alpha;           /* its lora_alpha (alpha_pattern applied) */
    double scale;          /* alpha / r (rsLoRA: alpha / sqrt(r)) */
    int dora;              /* 1: with a DoRA magnitude (c->dora; Linears only) */
    int64_t params;        /* trainable parameters the pair adds: lora_A, lora_B (and the DoRA magnitude) */
} lorac_llm_target_info;
LORAC_API lorac_status lorac_llm_module_target(const lorac_llm *llm, const lorac_train_config *c, const char *module,
                                               lorac_llm_target_info *out);

typedef struct lorac_fit_report {
    size_t size;             /* sizeof(lorac_fit_report): set it before the call */
    int steps;               /* optimizer steps done (a resumed run counts the checkpoint's too) */
    double final_loss;       /* mean loss of the last epoch's steps */
    double seconds;          /* training time, periodic evaluations excluded */
    double eval_seconds;     /* time in the periodic evaluations */
    int64_t tokens, padded_tokens; /* real tokens trained on; with padding (what was computed) */
    double tokens_per_s;
    int resumed_step;        /* the checkpoint's step when resumed, else 0 */
    int stopped;             /* 1: stopped early by c->stop or the progress callback (LORAC_ERR_CANCELLED) */
    char checkpoint[1024];   /* the last checkpoint written ("" if none) */
} lorac_fit_report;
/* Train the llm lorac_llm_prepare made on data's training split
 * (evaluations on its validation split), as c's optimizer, checkpoint and
 * ranks fields say; c's method and LoRA fields must be those given to
 * lorac_llm_prepare. Stopped early: LORAC_ERR_CANCELLED with rep->stopped =
 * 1 and the checkpoint saved (checkpoint_dir). With c->ranks every rank
 * calls it with the same arguments; rank 0 alone calls c->progress and
 * writes files. rep may be NULL. [one thread per llm] */
LORAC_API lorac_status lorac_llm_fit(lorac_llm *llm, const lorac_train_config *c, lorac_data *data,
                                     lorac_fit_report *rep);
/* Score split 0 (train), 1 (validation) or 2 (test) of data with the model
 * as it is (active adapter, merged or re-quantized weights): mean loss per
 * example (classify) or per target token, accuracy for classify (else -1);
 * out->n = 0 and loss NAN for an empty split. batch 0: 8. ranks: the split is shared out
 * over them (NULL: this process). [one thread per llm] */
LORAC_API lorac_status lorac_llm_score(lorac_llm *llm, const lorac_data *data, int split, int batch,
                                       struct lorac_ranks *ranks, lorac_split_scores *out);


/* Checkpoints (lorac_train_config.checkpoint_dir): DIR/step-N directories,
 * DIR/latest naming the newest; written whole or not at all. [any thread] */
/* The checkpoint `path` means: a checkpoint itself, a checkpoint directory
 * (its newest) or a run directory holding checkpoints/; into ckpt[0..n).
 * run_dir (may be NULL) gets the run directory it belongs to
 * (".../RUN/checkpoints/step-N" -> ".../RUN"), "" if not laid out so. */
LORAC_API lorac_status lorac_checkpoint_find(const char *path, char *ckpt, size_t n, char *run_dir, size_t n_run);
/* 1 when dir holds a complete checkpoint, else 0. */
LORAC_API int lorac_checkpoint_exists(const char *dir);
/* Remove every checkpoint under dir (the directory stays): starting over. */
LORAC_API lorac_status lorac_checkpoint_clear(const char *dir);

#ifdef __cplusplus
}
#endif
#endif
