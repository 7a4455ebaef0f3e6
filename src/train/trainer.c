/* trainer.c - the training loop.
 *
 * For each optimizer step: grad_accum micro-batches of forward, loss,
 * backward (gradients accumulate, each micro-batch's loss scaled by
 * 1/grad_accum), then optional clipping of the global grad norm, the
 * learning rate from the schedule, and one AdamW update of the trainable
 * tensors only. The data order is a seeded shuffle per epoch; the last
 * incomplete batch of an epoch is dropped when the set has more than one
 * batch (as appendix E's DataLoader(drop_last=True)). */
#include "train/trainer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "lora/lora.h"
#include "ops/ops.h"
#include "train/optim.h"

void lorac_train_opts_default(lorac_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 1;
    o->batch_size = 8;
    o->grad_accum = 1;
    o->lr = 1e-4f;
    o->weight_decay = 0.01f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->schedule = 0;
    o->seed = 123;
}

static lorac_fwd_mode mode_of(lorac_task t) { return t == LORAC_TASK_CLS ? LORAC_FWD_CLS : LORAC_FWD_LM; }

/* Forward + loss on one batch. Returns the summed loss and the number of
 * loss terms; with grad_scale > 0 the loss gradient is left in the logits
 * buffer for backward. correct (CLS) counts right predictions. */
static lorac_status batch_loss(lorac_model *m, const lorac_batch *b, lorac_task task, float grad_scale_per_term,
                               int want_grad, double *sum, int *count, int *correct, int *pred) {
    LORAC_TRY(lorac_model_forward(m, b->ids, b->mask, b->B, b->T, mode_of(task)));
    if (task == LORAC_TASK_CLS) {
        const int nc = m->n_classes;
        int ok = 0;
        for (int i = 0; i < b->B; i++) {
            const float *z = m->acts.cls_logits + (size_t)i * nc;
            int best = 0;
            for (int k = 1; k < nc; k++)
                if (z[k] > z[best]) best = k;
            ok += best == b->labels[i];
            if (pred) pred[i] = best;
            if (b->labels[i] < 0 || b->labels[i] >= nc)
                return lorac_fail(LORAC_ERR_DATA, "label %d outside the head's %d classes", b->labels[i], nc);
        }
        if (correct) *correct = ok;
        *sum = op_xent(want_grad ? m->acts.cls_logits : NULL, m->acts.cls_logits, b->labels, b->B, nc,
                       grad_scale_per_term, count);
    } else {
        const int N = b->B * b->T;
        *sum = op_xent(want_grad ? m->acts.logits : NULL, m->acts.logits, b->targets, N, m->cfg.vocab,
                       grad_scale_per_term, count);
    }
    return LORAC_OK;
}

static int count_terms(const lorac_batch *b, lorac_task task) {
    if (task == LORAC_TASK_CLS) return b->B;
    int n = 0;
    for (int i = 0; i < b->B * b->T; i++) n += b->targets[i] >= 0;
    return n;
}

lorac_status lorac_evaluate(lorac_model *m, const lorac_tokenized *d, lorac_task task, int batch_size, double *loss,
                            double *acc) {
    lorac_batch b = {0};
    int *order = malloc(sizeof(int) * (size_t)(d->n > 0 ? d->n : 1));
    if (!order) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < d->n; i++) order[i] = i;
    double total = 0;
    long terms = 0, correct = 0;
    int was = m->training;
    m->training = 0;
    lorac_status st = LORAC_OK;
    for (int s = 0; s < d->n && st == LORAC_OK; s += batch_size) {
        int cnt = d->n - s < batch_size ? d->n - s : batch_size, k = 0, ok = 0;
        double sum = 0;
        st = lorac_batch_make(&b, d, order, s, cnt, task);
        if (st == LORAC_OK) st = batch_loss(m, &b, task, 0, 0, &sum, &k, &ok, NULL);
        total += sum;
        terms += k;
        correct += ok;
    }
    m->training = was;
    free(order);
    lorac_batch_free(&b);
    if (st != LORAC_OK) return st;
    *loss = terms ? total / (double)terms : NAN;
    *acc = task == LORAC_TASK_CLS && d->n ? (double)correct / d->n : -1;
    return LORAC_OK;
}

lorac_status lorac_predict(lorac_model *m, const lorac_tokenized *d, int batch_size, int *out) {
    lorac_batch b = {0};
    int *order = malloc(sizeof(int) * (size_t)(d->n > 0 ? d->n : 1));
    if (!order) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < d->n; i++) order[i] = i;
    int was = m->training;
    m->training = 0;
    lorac_status st = LORAC_OK;
    for (int s = 0; s < d->n && st == LORAC_OK; s += batch_size) {
        int cnt = d->n - s < batch_size ? d->n - s : batch_size, k;
        double sum;
        st = lorac_batch_make(&b, d, order, s, cnt, LORAC_TASK_CLS);
        for (int i = 0; i < cnt; i++) b.labels[i] = 0; /* unknown labels: loss is ignored */
        if (st == LORAC_OK) st = batch_loss(m, &b, LORAC_TASK_CLS, 0, 0, &sum, &k, NULL, out + s);
    }
    m->training = was;
    free(order);
    lorac_batch_free(&b);
    return st;
}

static void metrics_line(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void metrics_line(const char *path, const char *fmt, ...) {
    if (!path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}


typedef struct { lorac_optim *opt; lorac_status st; } add_ctx;
static void add_param(lorac_weight *w, void *ctx) {
    add_ctx *a = ctx;
    if (a->st != LORAC_OK) return;
    /* PyTorch AdamW decays every parameter it is given (the seeds and PEFT
     * pass all trainable parameters to one group). */
    a->st = lorac_optim_add(a->opt, w->name, w->data, w->grad, w->n, 1, NULL);
}

lorac_status lorac_train(lorac_model *m, const lorac_tokenized *train, const lorac_tokenized *val,
                         const lorac_train_opts *o, lorac_train_result *res) {
    memset(res, 0, sizeof *res);
    if (train->n == 0) return lorac_fail(LORAC_ERR_DATA, "the training set is empty");
    if (o->batch_size <= 0 || o->grad_accum <= 0 || o->epochs <= 0)
        return lorac_fail(LORAC_ERR_ARG, "batch size, gradient accumulation and epochs must be positive");
    if (o->task == LORAC_TASK_CLS && !m->head) return lorac_fail(LORAC_ERR_ARG, "classification needs a head");
    const int bs = o->batch_size;
    const int per_epoch = train->n > bs ? train->n / bs : 1;     /* drop_last */
    const int steps_per_epoch = (per_epoch + o->grad_accum - 1) / o->grad_accum;
    int total = steps_per_epoch * o->epochs;
    if (o->max_steps > 0 && o->max_steps < total) total = o->max_steps;

    lorac_optim *opt = NULL;
    lorac_adamw_cfg acfg = {o->lr, o->beta1, o->beta2, o->eps, o->weight_decay};
    LORAC_TRY(lorac_optim_create(&acfg, &opt));
    lorac_sched sched = {(lorac_sched_kind)o->schedule, o->warmup_steps, total, 0};
    add_ctx ac = {opt, LORAC_OK};
    lorac_for_each_trainable(m, add_param, &ac);
    lorac_status st = ac.st;
    if (st == LORAC_OK && opt->n_params == 0)
        st = lorac_fail(LORAC_ERR_ARG, "nothing is trainable; hint: check --target / --method");

    int *order = malloc(sizeof(int) * (size_t)train->n);
    lorac_batch b = {0};
    lorac_rng rng;
    lorac_rng_seed(&rng, o->seed);
    lorac_rng_seed(&m->rng, o->seed ^ 0x5eed);
    if (!order && st == LORAC_OK) st = lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    const double t0 = lorac_now();
    int step = 0, micro = 0;
    double eval_s = 0; /* time spent evaluating, kept out of tokens/s */
    double step_loss = 0, epoch_loss = 0;
    int epoch_steps = 0;
    m->training = 1;
    for (int ep = 1; ep <= o->epochs && st == LORAC_OK && step < total; ep++) {
        for (int i = 0; i < train->n; i++) order[i] = i;
        lorac_rng_shuffle(&rng, order, train->n);
        epoch_loss = 0;
        epoch_steps = 0;
        for (int bi = 0; bi < per_epoch && st == LORAC_OK && step < total; bi++) {
            int cnt = train->n < bs ? train->n : bs;
            st = lorac_batch_make(&b, train, order, bi * bs, cnt, o->task);
            if (st != LORAC_OK) break;
            int terms = count_terms(&b, o->task), k = 0;
            double sum = 0;
            if (terms == 0) continue;
            st = batch_loss(m, &b, o->task, 1.0f / (float)terms / (float)o->grad_accum, 1, &sum, &k, NULL, NULL);
            if (st != LORAC_OK) break;
            double loss = sum / terms;
            if (!isfinite(loss)) {
                if (!o->skip_nonfinite) {
                    st = lorac_fail(LORAC_ERR_NUMERIC, "loss is %g at step %d (epoch %d); hint: lower --lr, or pass --skip-nonfinite", loss, step + 1, ep);
                    break;
                }
                lorac_optim_zero_grad(opt);
                micro = 0;
                step_loss = 0;
                continue;
            }
            lorac_model_backward(m, b.ids, b.B, b.T, mode_of(o->task));
            for (int j = 0; j < b.B * b.T; j++) res->tokens += b.mask[j];
            res->padded_tokens += (int64_t)b.B * b.T;
            step_loss += loss / o->grad_accum;
            if (++micro < o->grad_accum && bi + 1 < per_epoch) continue;
            micro = 0;
            int bad_i = -1;
            if (lorac_optim_check_grads(opt, &bad_i) != LORAC_OK) {
                const char *bad = bad_i >= 0 ? opt->p[bad_i].name : "?";
                if (!o->skip_nonfinite) {
                    st = lorac_fail(LORAC_ERR_NUMERIC, "gradient of '%s' is not finite at step %d (epoch %d); hint: lower --lr or set --clip", bad, step + 1, ep);
                    break;
                }
                lorac_optim_zero_grad(opt);
                step_loss = 0;
                continue;
            }
            if (o->clip > 0) lorac_optim_clip_grad_norm(opt, o->clip);
            double lr = o->lr * lorac_lr_at(&sched, step);
            lorac_optim_step(opt, lr);
            lorac_optim_zero_grad(opt);
            step++;
            epoch_loss += step_loss;
            epoch_steps++;
            double el = lorac_now() - t0 - eval_s;
            lorac_progress p = {ep, o->epochs, step, total, step_loss, lr, res->tokens / (el > 0 ? el : 1e-9), el,
                                el / step * (total - step), 0, 0, -1};
            metrics_line(o->metrics_path, "{\"type\":\"train\",\"epoch\":%d,\"step\":%d,\"loss\":%.6f,\"lr\":%.6g,\"tokens_per_s\":%.1f,\"elapsed_s\":%.3f}",
                         ep, step, step_loss, lr, p.tokens_per_s, el);
            if (o->progress) o->progress(&p, o->progress_ctx);
            step_loss = 0;
            int last_of_epoch = bi + o->grad_accum >= per_epoch || step == total;
            if (val && val->n > 0 && ((o->eval_every > 0 && step % o->eval_every == 0) || (o->eval_every == 0 && last_of_epoch))) {
                double vl, va, e0 = lorac_now();
                st = lorac_evaluate(m, val, o->task, bs, &vl, &va);
                eval_s += lorac_now() - e0;
                if (st != LORAC_OK) break;
                m->training = 1;
                res->val_loss = vl;
                res->val_acc = va;
                p.is_eval = 1;
                p.val_loss = vl;
                p.val_acc = va;
                metrics_line(o->metrics_path, "{\"type\":\"eval\",\"epoch\":%d,\"step\":%d,\"val_loss\":%.6f,\"val_acc\":%.6f}", ep, step, vl, va);
                if (o->progress) o->progress(&p, o->progress_ctx);
            }
        }
    }
    m->training = 0;
    res->steps = step;
    res->seconds = lorac_now() - t0 - eval_s;
    res->eval_seconds = eval_s;
    res->final_loss = epoch_steps ? epoch_loss / epoch_steps : NAN;
    res->tokens_per_s = res->seconds > 0 ? res->tokens / res->seconds : 0;
    free(order);
    lorac_batch_free(&b);
    lorac_optim_destroy(opt);
    return st;
}
