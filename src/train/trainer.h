/* trainer.h - the training loop: batches, loss, backward, AdamW, schedule,
 * clipping, gradient accumulation, evaluation, progress and JSONL metrics.
 * Deterministic: the same seed gives the same losses. */
#ifndef LORAC_TRAIN_TRAINER_H
#define LORAC_TRAIN_TRAINER_H

#include "models/model.h"
#include "train/batch.h"

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
    int warmup_steps;
    int schedule;           /* 0 constant, 1 linear decay, 2 cosine */
    uint64_t seed;          /* data order (and dropout) */
    int eval_every;         /* optimizer steps between evaluations; 0 = once per epoch */
    int skip_nonfinite;     /* 1: skip a step whose loss/grad is NaN/Inf instead of stopping */
    const char *metrics_path; /* JSONL file (appended), or NULL */
    lorac_progress_fn progress;
    void *progress_ctx;
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
} lorac_train_result;

lorac_status lorac_train(lorac_model *m, const lorac_tokenized *train, const lorac_tokenized *val,
                         const lorac_train_opts *o, lorac_train_result *res);

/* Mean loss (per example for CLS, per target token for LM) and accuracy
 * (CLS; -1 otherwise) over the set, in batches of batch_size. */
lorac_status lorac_evaluate(lorac_model *m, const lorac_tokenized *d, lorac_task task, int batch_size, double *loss,
                            double *acc);

/* Class predictions for every example of d (out: [d->n]). */
lorac_status lorac_predict(lorac_model *m, const lorac_tokenized *d, int batch_size, int *out);

#endif
