/* trainer.h - the training loop: batches, loss, backward, AdamW, schedule,
 * clipping, gradient accumulation, evaluation, progress and JSONL metrics.
 * Deterministic: the same seed gives the same losses. */
#ifndef LORAC_TRAIN_TRAINER_H
#define LORAC_TRAIN_TRAINER_H

#include <signal.h>

#include "dist/dist.h"
#include "models/model.h"
#include "train/batch.h"
#include "train/checkpoint.h"

typedef struct lorac_progress {
    int epoch, epochs;      /* 1-based epoch */
    int step, total_steps;  /* optimizer steps */
    double loss;            /* mean training loss of the last step */
    double lr;
    double tokens_per_s;    /* real (non-pad) tokens per second so far */
    double elapsed, eta;    /* seconds */
    int is_eval;            /* 1: an evaluation finished (fields below) */
    double val_loss, val_acc; /* acc < 0 when not a classification task */
} lorac_progress;

typedef void (*lorac_progress_fn)(const lorac_progress *p, void *ctx);

typedef struct lorac_train_opts {
    lorac_task task;
    int epochs;             /* default 1 */
    int batch_size;         /* default 8 */
    int grad_accum;         /* micro-batches per optimizer step, default 1 */
    int max_steps;          /* stop after this many optimizer steps (0 = no limit) */
    float lr, weight_decay, beta1, beta2, eps;
    float clip;             /* max grad norm, 0 = off */
    lorac_loraplus_cfg loraplus; /* LoRA+ (train/optim.h): ratio 0 = off */
    int warmup_steps;
    int schedule;           /* 0 constant, 1 linear decay, 2 cosine */
    uint64_t seed;          /* data order (and dropout) */
    int eval_every;         /* optimizer steps between evaluations; 0 = once per epoch */
    int skip_nonfinite;     /* 1: skip a step whose loss/grad is NaN/Inf instead of stopping */
    int model_dropout;      /* 1 (default): the model's own dropout from its config applies in training, as in
                               torch's train mode (lorac_model.model_dropout; config.h says where); 0: LoRA dropout only */
    int padded;             /* 1: train on padded batches (lorac_batch_make) instead of packed ones: the same
                               loss and gradients for more work; for comparisons. Evaluation always packs. */
    const char *metrics_path; /* JSONL file (appended), or NULL */
    lorac_progress_fn progress;
    void *progress_ctx;

    /* ---- checkpoints (train/checkpoint.h) ---- */
    const char *checkpoint_dir; /* root for step-N checkpoints (OUT/checkpoints), or NULL: none */
    int save_every;           /* save every N optimizer steps and at the end; 0 = only when stopped */
    int keep_checkpoints;     /* keep the newest K; 0 = all (lorac_train_opts_default: 2) */
    const char *resume_from;  /* a checkpoint directory (lorac_ckpt_resolve) to continue from, or NULL */
    /* Settings of the caller that a resumed run must share, as NULL-terminated
     * (name, value) pairs, e.g. {"method", "lora", "r", "8", NULL}; the
     * trainer adds its own (batch, seed, data, model, ...). */
    const char *const *run_config;
    /* Called with each checkpoint's temporary directory to add files (the
     * PEFT adapter), or NULL. */
    lorac_ckpt_extra_fn checkpoint_extra;
    void *checkpoint_extra_ctx;
    /* When *stop becomes non-zero (a signal handler), training stops at the
     * next step boundary, saving a checkpoint when checkpoint_dir is set. */
    volatile sig_atomic_t *stop;

    /* ---- data parallel (dist/dist.h) ---- */
    /* NULL: one process. Otherwise this rank runs its shard (lorac_dist_balance) of
     * every global batch of batch_size examples (batch_size must be >= the
     * rank count), the loss is scaled by the global batch's loss terms, and
     * the trainable gradients are summed over the ranks before each step, so
     * every rank takes the one-process step (to within float summation
     * order). Evaluations are sharded too. Only rank 0 calls `progress`,
     * writes metrics_path and saves checkpoints; every rank reads
     * resume_from. With LoRA dropout each rank draws its own masks (rank 0
     * the one-process stream), so runs with dropout match one process in
     * distribution, not bit for bit. A stop request on any rank stops all
     * at the same step. */
    lorac_dist *dist;
} lorac_train_opts;

void lorac_train_opts_default(lorac_train_opts *o);

typedef struct lorac_train_result {
    int steps;
    double final_loss;      /* mean loss of the last epoch's steps */
    double seconds;         /* training time, evaluations excluded */
    double eval_seconds;    /* time spent in the periodic evaluations */
    int64_t tokens;         /* real tokens processed in training */
    double tokens_per_s;
    int64_t padded_tokens;  /* tokens including padding (what the model computed) */
    double val_loss, val_acc;
    int resumed_step;       /* the checkpoint's step when resumed, else 0 */
    int interrupted;        /* 1: stopped early by *stop (not an error) */
    char checkpoint[1024];  /* the last checkpoint this run saved ("" if none) */
} lorac_train_result;

/* With resume_from, the model must be built exactly as for the original
 * run (same base, method and LoRA settings); the trainable tensors, the
 * optimizer, the data order, the RNGs and the step then continue from the
 * checkpoint, and the metrics file is cut back to its step. A setting that
 * differs from the checkpoint's is LORAC_ERR_ARG naming it. */
lorac_status lorac_train(lorac_model *m, const lorac_tokenized *train, const lorac_tokenized *val,
                         const lorac_train_opts *o, lorac_train_result *res);

/* Mean loss (per example for CLS, per target token for LM) and accuracy
 * (CLS; -1 otherwise) over the set, in batches of batch_size. */
lorac_status lorac_evaluate(lorac_model *m, const lorac_tokenized *d, lorac_task task, int batch_size, double *loss,
                            double *acc);
/* The same with the set sharded over the ranks of dist (NULL: one
 * process): the batches, examples in order of length, are dealt round-robin
 * over the ranks; every rank gets the totals. */
lorac_status lorac_evaluate_dist(lorac_model *m, const lorac_tokenized *d, lorac_task task, int batch_size,
                                 lorac_dist *dist, double *loss, double *acc);

/* Class predictions for every example of d (out: [d->n]). */
lorac_status lorac_predict(lorac_model *m, const lorac_tokenized *d, int batch_size, int *out);

#endif
