/* checkpoint.h - resumable training checkpoints.
 *
 * Layout under a checkpoint root (the CLI uses OUT/checkpoints):
 *   ROOT/step-000123/trainer_state.json       step, epoch and position in it,
 *                                             RNG states, timers, the settings
 *                                             that must match on resume, the
 *                                             loss of every step so far
 *   ROOT/step-000123/trainable.safetensors    every trainable tensor, by name, F32
 *   ROOT/step-000123/optimizer.safetensors    AdamW "<name>.exp_avg" / ".exp_avg_sq"
 *   ROOT/step-000123/adapter_config.json      } written by the caller's hook (LoRA:
 *   ROOT/step-000123/adapter_model.safetensors} a PEFT adapter, usable as --adapter)
 *   ROOT/latest                               "step-000123": the newest complete one
 *
 * A checkpoint is written into "step-N.tmp", every file fsync'd, trainer_state.json
 * last; the directory is then renamed to "step-N" and `latest` replaced
 * atomically. A process killed at any moment leaves every "step-N" complete;
 * leftovers ("*.tmp", "*.old") are removed by the next save. Only the newest
 * `keep` checkpoints are kept.
 *
 * Resuming restores the trainable tensors, the optimizer, the data order (the
 * data RNG as it was before the epoch's shuffle, plus the next micro-batch),
 * the dropout RNG, the step and the schedule position: the continued run's
 * losses equal an uninterrupted run's bit for bit (same binary and thread
 * count). */
#ifndef LORAC_TRAIN_CHECKPOINT_H
#define LORAC_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "models/model.h"
#include "train/optim.h"

#define LORAC_CKPT_STATE "trainer_state.json"
#define LORAC_CKPT_LATEST "latest"

/* Where a training loop stands at a step boundary. */
typedef struct lorac_ckpt_state {
    int step;                /* optimizer steps done */
    int epoch, next_batch;   /* continue with micro-batch next_batch of epoch `epoch` (1-based) */
    int total_steps;         /* the schedule's length */
    lorac_rng data_rng;      /* the data-order RNG before epoch `epoch`'s shuffle */
    lorac_rng dropout_rng;   /* the model's dropout RNG */
    double epoch_loss;       /* sum of this epoch's step losses so far */
    int epoch_steps;
    int64_t tokens, padded_tokens;
    double train_seconds, eval_seconds;
    int have_val;
    double val_loss, val_acc;
    double *losses;          /* [step]: the mean loss of every step (owned) */
    int cap_losses;
} lorac_ckpt_state;

void lorac_ckpt_state_free(lorac_ckpt_state *s);
/* Append a step's loss to s->losses (s->step is not changed). */
lorac_status lorac_ckpt_push_loss(lorac_ckpt_state *s, int n_before, double loss);

/* The settings a resumed run must share with the checkpoint: an ordered
 * list of (name, value) strings; names are what the user would change
 * ("batch", "seed", "method", ...). */
typedef struct lorac_ckpt_config {
    char (*key)[48];
    char **val;
    int n, cap;
} lorac_ckpt_config;

lorac_status lorac_ckpt_config_add(lorac_ckpt_config *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lorac_ckpt_config_free(lorac_ckpt_config *c);

/* A 64-bit FNV-1a hash, for fingerprints of the model and the data. */
uint64_t lorac_hash_bytes(uint64_t h, const void *p, size_t n);
#define LORAC_HASH_INIT 0xcbf29ce484222325ull

/* Called with the temporary checkpoint directory to add files (the PEFT
 * adapter). Returns a status; on failure the checkpoint is abandoned. */
typedef lorac_status (*lorac_ckpt_extra_fn)(const char *dir, void *ctx);

/* Save a checkpoint of (m's trainable tensors, opt, s, cfg) as ROOT/step-N
 * and point ROOT/latest at it; keep the newest `keep` (0 = all). *saved
 * (size n, optional) receives its path. On failure nothing that existed is
 * changed and the message says which checkpoint is still the latest. */
lorac_status lorac_ckpt_save(const char *root, int keep, lorac_model *m, const lorac_optim *opt,
                             const lorac_ckpt_state *s, const lorac_ckpt_config *cfg, lorac_ckpt_extra_fn extra,
                             void *extra_ctx, char *saved, size_t n);

/* Find the checkpoint a --resume path means: a checkpoint directory itself
 * (it holds trainer_state.json), a checkpoint root (its `latest`, else its
 * highest complete step-N), or a run directory holding checkpoints/. */
lorac_status lorac_ckpt_resolve(const char *path, char *out, size_t n);

/* The run directory a checkpoint belongs to (".../RUN/checkpoints/step-N" ->
 * ".../RUN"); 0 when the path is not laid out that way. */
int lorac_ckpt_run_dir(const char *ckpt, char *out, size_t n);

/* Load the checkpoint in dir into s, after checking that its settings equal
 * cfg (LORAC_ERR_ARG naming the first that differs), and restore m's
 * trainable tensors and the optimizer. */
lorac_status lorac_ckpt_load(const char *dir, const lorac_ckpt_config *cfg, lorac_model *m, lorac_optim *opt,
                             lorac_ckpt_state *s);

/* Does root hold checkpoints (a `latest` or a step-N directory)? */
int lorac_ckpt_exists(const char *root);
/* Remove every checkpoint under root (step-N, leftovers, latest); the
 * directory itself stays. For starting a run over in the same place. */
lorac_status lorac_ckpt_clear(const char *root);

/* Keep only the lines of a metrics JSONL file whose "step" is <= step (lines
 * without one are kept; a torn last line is dropped). Atomic; a missing file
 * is fine. */
lorac_status lorac_ckpt_trim_metrics(const char *path, int step);

#endif
