/* test_resume - checkpoints and exact resume in the training loop, on the
 * tiny Llama fixture (deterministic: the stop flag that Ctrl-C sets in the
 * CLI is raised here by the progress callback at a chosen step):
 *  - LoRA with dropout, a cosine schedule with warm-up, gradient
 *    accumulation and evaluation every 2 steps, stopped at an epoch boundary
 *    and again inside an epoch, resumed twice: every step's loss, every
 *    evaluation, the final weights and the result fields equal an
 *    uninterrupted run's, bit for bit;
 *  - full fine-tuning with a linear schedule, stopped and resumed: the same;
 *  - periodic saves keep the newest K and `latest` names the last;
 *  - a different batch size is refused naming "batch";
 *  - a save that cannot be written fails with one message, and the
 *    checkpoint the run resumed from is left byte for byte intact. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "lora/lora.h"
#include "models/model.h"
#include "testutil.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

static lorac_model *fresh(int full) {
    lorac_model *m = NULL;
    CHECK_OK(lorac_model_load(test_src_path("tests/fixtures/models/tiny_llama"), &m));
    CHECK_OK(lorac_model_add_head(m, 2, 1, LORAC_HEAD_INIT_TORCH, 3));
    if (full) {
        CHECK_OK(lorac_make_full_trainable(m));
        return m;
    }
    lorac_lora_config c;
    lorac_lora_config_default(&c);
    c.r = 4;
    c.alpha = 8;
    c.dropout = 0.2f; /* the dropout RNG must continue too */
    strcpy(c.targets[c.n_targets++], "all-linear");
    strcpy(c.modules_to_save[c.n_modules_to_save++], "score");
    CHECK_OK(lorac_lora_apply(m, &c, NULL));
    return m;
}

#define MAXS 256
typedef struct {
    double loss[MAXS], lr[MAXS], val[MAXS];
    int n_val, last_step, stop_at;
    volatile sig_atomic_t flag;
} rec;

static void on_progress(const lorac_progress *p, void *ctx) {
    rec *r = ctx;
    if (p->is_eval) {
        if (r->n_val < MAXS) r->val[r->n_val++] = p->val_loss;
        return;
    }
    if (p->step >= 1 && p->step <= MAXS) {
        r->loss[p->step - 1] = p->loss;
        r->lr[p->step - 1] = p->lr;
    }
    r->last_step = p->step;
    if (r->stop_at && p->step == r->stop_at) r->flag = 1;
}

static void opts_for(lorac_train_opts *o, int full, rec *r) {
    lorac_train_opts_default(o);
    o->task = LORAC_TASK_CLS;
    o->batch_size = 2;
    o->grad_accum = full ? 1 : 2;
    o->epochs = 3;
    o->max_steps = 12;
    o->lr = full ? 1e-3f : 5e-3f;
    o->weight_decay = 0.1f;
    o->warmup_steps = 3;
    o->schedule = full ? LORAC_SCHED_LINEAR : LORAC_SCHED_COSINE;
    o->eval_every = 2;
    o->seed = 11;
    o->clip = 1.0f;
    o->progress = on_progress;
    o->progress_ctx = r;
    o->stop = &r->flag;
}

/* Every trainable value of a and b equal, bit for bit. */
typedef struct { lorac_weight *w[512]; int n; } wlist;
static void collect(lorac_weight *w, void *ctx) {
    wlist *l = ctx;
    if (l->n < 512) l->w[l->n++] = w;
}
static int same_trainables(lorac_model *a, lorac_model *b) {
    wlist x = {0}, y = {0};
    lorac_for_each_trainable(a, collect, &x);
    lorac_for_each_trainable(b, collect, &y);
    if (x.n != y.n || x.n == 0) return 0;
    for (int i = 0; i < x.n; i++)
        if (x.w[i]->n != y.w[i]->n || memcmp(x.w[i]->data, y.w[i]->data, x.w[i]->n * sizeof(float))) return 0;
    return 1;
}

static char *slurp(const char *path, size_t *n) {
    char *t = NULL;
    if (lorac_read_file(path, 1u << 26, &t, n) != LORAC_OK) return NULL;
    return t;
}

/* Uninterrupted vs stopped at each of stops[] (0-terminated) and resumed. */
static void resume_scenario(int full, const int *stops, const char *root, const lorac_tokenized *tr,
                            const lorac_tokenized *va) {
    const char *what = full ? "full fine-tuning" : "LoRA";
    rec ref = {0};
    lorac_train_opts o;
    opts_for(&o, full, &ref);
    lorac_model *a = fresh(full);
    lorac_train_result ra;
    CHECK_OK(lorac_train(a, tr, va, &o, &ra));
    CHECK(ra.steps == 12 && ref.last_step == 12 && !ra.interrupted, "%s: reference run: %d steps", what, ra.steps);

    rec got = {0};
    lorac_model *b = NULL;
    lorac_train_result rb = {0};
    char from[1200] = "";
    for (int k = 0;; k++) {
        lorac_model_free(b);
        b = fresh(full);
        opts_for(&o, full, &got);
        got.flag = 0;
        got.stop_at = stops[k];
        o.checkpoint_dir = root;
        o.resume_from = from[0] ? from : NULL;
        lorac_status st = lorac_train(b, tr, va, &o, &rb);
        CHECK(st == LORAC_OK, "%s: segment %d: %s", what, k, lorac_last_error());
        if (st != LORAC_OK) break;
        CHECK(rb.resumed_step == (k ? stops[k - 1] : 0), "%s: segment %d resumed at step %d", what, k, rb.resumed_step);
        if (!stops[k]) break;
        CHECK(rb.interrupted && rb.steps == stops[k] && rb.checkpoint[0], "%s: stop at %d: interrupted %d, steps %d",
              what, stops[k], rb.interrupted, rb.steps);
        CHECK_OK(lorac_ckpt_resolve(root, from, sizeof from));
        CHECK(strstr(from, "step-0000") && !strcmp(from, rb.checkpoint), "%s: latest is '%s', saved '%s'", what, from,
              rb.checkpoint);
    }
    int same_loss = 1, same_lr = 1;
    for (int s = 0; s < 12; s++) {
        same_loss &= memcmp(&ref.loss[s], &got.loss[s], sizeof(double)) == 0;
        same_lr &= ref.lr[s] == got.lr[s];
        if (ref.loss[s] != got.loss[s]) fprintf(stderr, "  %s step %d: %.17g vs %.17g\n", what, s + 1, ref.loss[s], got.loss[s]);
    }
    CHECK(same_loss, "%s: per-step losses after resume differ from the uninterrupted run", what);
    CHECK(same_lr, "%s: the learning-rate schedule did not continue", what);
    /* evaluations: every 2 steps; the stopped segments evaluate exactly where the uninterrupted run did */
    CHECK(got.n_val == ref.n_val && !memcmp(got.val, ref.val, sizeof(double) * (size_t)ref.n_val),
          "%s: %d evaluations after resume, %d uninterrupted (or different losses)", what, got.n_val, ref.n_val);
    CHECK(same_trainables(a, b), "%s: final weights differ", what);
    CHECK(rb.steps == ra.steps && rb.final_loss == ra.final_loss && rb.val_loss == ra.val_loss &&
          rb.tokens == ra.tokens && rb.padded_tokens == ra.padded_tokens,
          "%s: result: steps %d/%d final loss %.17g/%.17g val %.17g/%.17g tokens %lld/%lld", what, rb.steps, ra.steps,
          rb.final_loss, ra.final_loss, rb.val_loss, ra.val_loss, (long long)rb.tokens, (long long)ra.tokens);
    lorac_model_free(a);
    lorac_model_free(b);
}

static int count_steps(const char *root) {
    int n = 0;
    char p[1200];
    for (int s = 0; s <= 12; s++) {
        char name[32];
        snprintf(name, sizeof name, "step-%06d", s);
        struct stat st;
        if (stat(lorac_path_join(p, sizeof p, root, name), &st) == 0) n++;
    }
    return n;
}

int main(void) {
    lorac_tokenized tr = test_random_tokenized(16, 103, 5), va = test_random_tokenized(6, 103, 6);
    const char *tmp = test_tmpdir();
    char root[1024], p[1200];

    /* 16 examples, batch 2 x 2 accumulated: 4 steps per epoch, 12 in all.
     * Stop at 4 (an epoch boundary), then at 7 (inside epoch 2), then run to the end. */
    const int lora_stops[] = {4, 7, 0};
    snprintf(root, sizeof root, "%s/lora/checkpoints", tmp);
    resume_scenario(0, lora_stops, root, &tr, &va);
    /* full: batch 2, no accumulation: 8 steps per epoch, --max-steps 12; stop inside epoch 1 */
    const int full_stops[] = {5, 0};
    snprintf(root, sizeof root, "%s/full/checkpoints", tmp);
    resume_scenario(1, full_stops, root, &tr, &va);

    /* periodic saves: every 5 steps and at the end (12), keeping 2 */
    rec r = {0};
    lorac_train_opts o;
    opts_for(&o, 0, &r);
    snprintf(root, sizeof root, "%s/periodic/checkpoints", tmp);
    o.checkpoint_dir = root;
    o.save_every = 5;
    o.keep_checkpoints = 2;
    lorac_model *m = fresh(0);
    lorac_train_result res;
    CHECK_OK(lorac_train(m, &tr, &va, &o, &res));
    lorac_model_free(m);
    char latest[1200];
    CHECK_OK(lorac_ckpt_resolve(root, latest, sizeof latest));
    CHECK(strstr(latest, "step-000012") != NULL, "latest is %s, want step-000012", latest);
    snprintf(p, sizeof p, "%s/step-000010/trainer_state.json", root);
    CHECK(count_steps(root) == 2 && lorac_file_exists(p), "want step-000010 and step-000012 kept, found %d", count_steps(root));

    /* a different batch size is refused, naming it */
    snprintf(p, sizeof p, "%s/step-000010", root);
    opts_for(&o, 0, &r);
    o.batch_size = 4;
    o.grad_accum = 1;
    o.resume_from = p;
    m = fresh(0);
    lorac_status st = lorac_train(m, &tr, &va, &o, &res);
    CHECK(st == LORAC_ERR_ARG && strstr(lorac_last_error(), "batch differs"), "batch mismatch: status %d, '%s'", st,
          lorac_last_error());
    lorac_model_free(m);

    /* a save that fails (the checkpoint root is under a regular file) */
    size_t n_before, n_after;
    snprintf(p, sizeof p, "%s/step-000010/optimizer.safetensors", root);
    char *before = slurp(p, &n_before);
    char blocked[1200], file[1100];
    snprintf(file, sizeof file, "%s/a-file", tmp);
    FILE *f = fopen(file, "w");
    if (f) fclose(f);
    snprintf(blocked, sizeof blocked, "%s/checkpoints", file);
    char from[1200];
    snprintf(from, sizeof from, "%s/step-000010", root);
    opts_for(&o, 0, &r);
    o.resume_from = from;
    o.checkpoint_dir = blocked;
    o.save_every = 1;
    m = fresh(0);
    st = lorac_train(m, &tr, &va, &o, &res);
    const char *e = lorac_last_error();
    CHECK(st == LORAC_ERR_IO && strstr(e, "checkpoint at step 11 not saved") && !strchr(e, '\n'),
          "blocked save: status %d, '%s'", st, e);
    lorac_model_free(m);
    char *after = slurp(p, &n_after);
    CHECK(before && after && n_before == n_after && !memcmp(before, after, n_before),
          "the checkpoint resumed from changed after a failed save");
    free(before);
    free(after);

    lorac_tokenized_free(&tr);
    lorac_tokenized_free(&va);
    return test_summary("test_resume");
}
