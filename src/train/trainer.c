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
#include "lora/dora.h"
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
    o->keep_checkpoints = 2;
    o->model_dropout = 1;
}

static lorac_fwd_mode mode_of(lorac_task t) { return t == LORAC_TASK_CLS ? LORAC_FWD_CLS : LORAC_FWD_LM; }

/* Forward + loss on one batch. Returns the summed loss and the number of
 * loss terms; with grad_scale > 0 the loss gradient is left in the logits
 * buffer for backward. correct (CLS) counts right predictions. */
static lorac_status batch_loss(lorac_model *m, const lorac_batch *b, lorac_task task, float grad_scale_per_term,
                               int want_grad, double *sum, int *count, int *correct, int *pred) {
    LORAC_TRY(lorac_batch_forward(m, b, mode_of(task)));
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
        *sum = op_xent(want_grad ? m->acts.logits : NULL, m->acts.logits, b->targets, b->N, m->cfg.vocab,
                       grad_scale_per_term, count);
    }
    return LORAC_OK;
}

/* The loss terms of a global batch, order[start .. start+count): every rank
 * counts them from its own copy of the data, so the scale 1 / terms is the
 * one-process scale on every rank without a message. */
static int global_terms(const lorac_tokenized *t, const int *order, int start, int count, lorac_task task) {
    int n = 0;
    for (int i = 0; i < count; i++) n += lorac_example_terms(t, order[start + i], task);
    return n;
}

/* A global batch, order[start .. start+count), shared out over the ranks.
 * One process takes it whole, in order. Several ranks share it by
 * lorac_dist_balance (about equal padded tokens each, so no rank waits long
 * for another); every rank computes the same shares from its own copy of
 * the data. mine[0 .. *n_mine) gets this rank's examples in batch order;
 * real / padded add the whole batch's tokens as the ranks compute them
 * (packed batches compute only the real ones). The shares' cost is the
 * padded one either way: for packed batches it bounds each rank's tokens.
 * scratch holds 2 x count ints. */
static void batch_share(const lorac_tokenized *t, const int *order, int start, int count, int rank, int nranks,
                        int packed, int *scratch, int *mine, int *n_mine, int64_t *real, int64_t *padded) {
    int *len = scratch, *rank_of = scratch + count, T = 1;
    int64_t tokens = 0;
    for (int i = 0; i < count; i++) {
        len[i] = t->len[order[start + i]];
        tokens += len[i];
        if (len[i] > T) T = len[i];
    }
    *real += tokens;
    if (packed) *padded += tokens;
    if (nranks == 1) {
        memcpy(mine, order + start, sizeof(int) * (size_t)count);
        *n_mine = count;
        if (!packed) *padded += (int64_t)count * T;
        return;
    }
    lorac_dist_balance(len, count, nranks, rank_of);
    *n_mine = 0;
    for (int r = 0; r < nranks; r++) {
        int n = 0, Tr = 1;
        for (int i = 0; i < count; i++)
            if (rank_of[i] == r) {
                n++;
                if (len[i] > Tr) Tr = len[i];
                if (r == rank) mine[(*n_mine)++] = order[start + i];
            }
        if (!packed) *padded += (int64_t)n * Tr;
    }
}

/* Examples by length, shortest first, ties in set order (a total order,
 * so the sort is the same everywhere). */
typedef struct { int len, ex; } len_ex;
static int by_length(const void *a, const void *b) {
    const len_ex *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->ex > y->ex) - (x->ex < y->ex);
}

/* Fast evaluation: forward only, the examples taken in order of length so
 * that a batch pads to little more than its own longest example (on real
 * text most of a padded batch is padding otherwise), the batches dealt out
 * round-robin over the ranks so each gets short and long ones alike. The
 * totals are sums over examples, so the order changes nothing but float
 * rounding in the (double) loss sum. */
lorac_status lorac_evaluate_dist(lorac_model *m, const lorac_tokenized *d, lorac_task task, int batch_size,
                                 lorac_dist *dist, double *loss, double *acc) {
    lorac_batch b = {0};
    const int rank = lorac_dist_rank(dist), nranks = lorac_dist_size(dist);
    int *order = malloc(sizeof(int) * (size_t)(d->n > 0 ? d->n : 1));
    len_ex *by = malloc(sizeof *by * (size_t)(d->n > 0 ? d->n : 1));
    if (!order || !by) {
        free(order);
        free(by);
        return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < d->n; i++) by[i] = (len_ex){d->len[i], i};
    qsort(by, (size_t)d->n, sizeof *by, by_length);
    for (int i = 0; i < d->n; i++) order[i] = by[i].ex;
    free(by);
    /* {summed loss, loss terms, right predictions}, summed over ranks below */
    double tot[3] = {0, 0, 0};
    int was = m->training;
    m->training = 0;
    lorac_status st = LORAC_OK;
    for (int s = rank * batch_size; s < d->n && st == LORAC_OK; s += nranks * batch_size) {
        int cnt = d->n - s < batch_size ? d->n - s : batch_size, k = 0, ok = 0;
        double sum = 0;
        st = lorac_batch_make_packed(&b, d, order, s, cnt, task);
        if (st == LORAC_OK) st = batch_loss(m, &b, task, 0, 0, &sum, &k, &ok, NULL);
        tot[0] += sum;
        tot[1] += k;
        tot[2] += ok;
    }
    m->training = was;
    free(order);
    lorac_batch_free(&b);
    if (st == LORAC_OK) st = lorac_dist_sum_f64(dist, tot, 3, "the evaluation's sums");
    if (st != LORAC_OK) return st;
    *loss = tot[1] > 0 ? tot[0] / tot[1] : NAN;
    *acc = task == LORAC_TASK_CLS && d->n ? tot[2] / d->n : -1;
    return LORAC_OK;
}

lorac_status lorac_evaluate(lorac_model *m, const lorac_tokenized *d, lorac_task task, int batch_size, double *loss,
                            double *acc) {
    return lorac_evaluate_dist(m, d, task, batch_size, NULL, loss, acc);
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
        st = lorac_batch_make_packed(&b, d, order, s, cnt, LORAC_TASK_CLS);
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

typedef struct { lorac_optim *opt; lorac_status st; const lorac_loraplus_cfg *lp; double lr; } add_ctx;
static void add_param(lorac_weight *w, void *ctx) {
    add_ctx *a = ctx;
    if (a->st != LORAC_OK) return;
    /* PyTorch AdamW decays every parameter it is given (the seeds and PEFT
     * pass all trainable parameters to one group); LoRA+ makes groups. */
    lorac_param *p;
    a->st = lorac_optim_add(a->opt, w->name, w->data, w->grad, w->n, 1, &p);
    if (a->st == LORAC_OK && a->lp && a->lp->ratio > 0) lorac_loraplus_set(p, lorac_loraplus_kind(w->name, w->ndim), a->lp, a->lr);
}

/* ---- what a resumed run must share with its checkpoint ---- */

static int is_fresh_head(const lorac_model *m, const lorac_weight *w) {
    if (m->head && m->head_fresh && (w == m->head->W || w == m->head->b)) return 1;
    return m->pre_head && m->pre_head_fresh && (w == m->pre_head->W || w == m->pre_head->b);
}

/* The base weights as loaded (names, shapes and up to 1024 values of each),
 * before any training: fresh heads (initialised from the seed) left out. */
static uint64_t model_hash(const lorac_model *m, int64_t *values) {
    uint64_t h = LORAC_HASH_INIT;
    *values = 0;
    for (int i = 0; i < m->n_w; i++) {
        const lorac_weight *w = &m->w[i];
        if (is_fresh_head(m, w)) continue;
        *values += (int64_t)w->n;
        h = lorac_hash_bytes(h, w->name, strlen(w->name) + 1);
        h = lorac_hash_bytes(h, w->shape, sizeof w->shape);
        if (!w->data) continue;
        size_t stride = w->n > 1024 ? w->n / 1024 : 1;
        for (size_t j = 0; j < w->n; j += stride) h = lorac_hash_bytes(h, &w->data[j], sizeof(float));
    }
    return h;
}

/* The loss mask of example i as the hash saw it before masks existed: the
 * count of leading prompt tokens (0 without a mask), then, only for masks
 * that are not "prompt, then the rest" (conversations), the mask itself.
 * So checkpoints of earlier versions still resume. */
static uint64_t hash_mask(uint64_t h, const lorac_tokenized *d, int i) {
    int lead = 0, simple = 1;
    const uint8_t *m = d->loss_mask ? d->loss_mask[i] : NULL;
    while (m && lead < d->len[i] && !m[lead]) lead++;
    for (int j = lead; m && j < d->len[i]; j++) simple &= m[j];
    h = lorac_hash_bytes(h, &lead, sizeof(int));
    return simple ? h : lorac_hash_bytes(h, m, (size_t)d->len[i]);
}

static uint64_t data_hash(const lorac_tokenized *d) {
    uint64_t h = LORAC_HASH_INIT;
    for (int i = 0; d && i < d->n; i++) {
        h = lorac_hash_bytes(h, &d->len[i], sizeof(int));
        h = lorac_hash_bytes(h, d->ids[i], sizeof(int) * (size_t)d->len[i]);
        if (d->label) h = lorac_hash_bytes(h, &d->label[i], sizeof(int));
        h = hash_mask(h, d, i);
    }
    return h;
}

static lorac_status build_config(const lorac_model *m, const lorac_optim *opt, const lorac_tokenized *train,
                                 const lorac_tokenized *val, const lorac_train_opts *o, int total,
                                 lorac_ckpt_config *c) {
    static const char *const task_names[] = {"classify", "lm", "instruct"};
    int64_t mvals;
    uint64_t mh = model_hash(m, &mvals);
    LORAC_TRY(lorac_ckpt_config_add(c, "model", "arch %d, %lld base values, fingerprint %016llx", (int)m->cfg.arch,
                                    (long long)mvals, (unsigned long long)mh));
    for (int i = 0; o->run_config && o->run_config[i] && o->run_config[i + 1]; i += 2)
        LORAC_TRY(lorac_ckpt_config_add(c, o->run_config[i], "%s", o->run_config[i + 1]));
    LORAC_TRY(lorac_ckpt_config_add(c, "task", "%s", (unsigned)o->task < 3 ? task_names[o->task] : "?"));
    LORAC_TRY(lorac_ckpt_config_add(c, "batch", "%d", o->batch_size));
    LORAC_TRY(lorac_ckpt_config_add(c, "grad-accum", "%d", o->grad_accum));
    LORAC_TRY(lorac_ckpt_config_add(c, "seed", "%llu", (unsigned long long)o->seed));
    LORAC_TRY(lorac_ckpt_config_add(c, "lr", "%.7g", o->lr));
    LORAC_TRY(lorac_ckpt_config_add(c, "weight-decay", "%.7g", o->weight_decay));
    LORAC_TRY(lorac_ckpt_config_add(c, "adam betas and eps", "%.7g %.7g %.7g", o->beta1, o->beta2, o->eps));
    LORAC_TRY(lorac_ckpt_config_add(c, "clip", "%.7g", o->clip));
    if (o->loraplus.ratio > 0)
        LORAC_TRY(lorac_ckpt_config_add(c, "loraplus (ratio, lr_embedding, weight decay)", "%.7g %.7g %.7g",
                                        o->loraplus.ratio, o->loraplus.lr_embedding, o->loraplus.weight_decay));
    LORAC_TRY(lorac_ckpt_config_add(c, "warmup", "%d", o->warmup_steps));
    LORAC_TRY(lorac_ckpt_config_add(c, "schedule", "%s", lorac_sched_name((lorac_sched_kind)o->schedule)));
    /* a decaying schedule's shape depends on its length; the constant one does
     * not, so a constant-rate run may be resumed with more epochs / max-steps */
    if (o->schedule != LORAC_SCHED_CONSTANT)
        LORAC_TRY(lorac_ckpt_config_add(c, "schedule length (epochs, max-steps)", "%d steps", total));
    LORAC_TRY(lorac_ckpt_config_add(c, "eval-every", "%d", o->eval_every));
    LORAC_TRY(lorac_ckpt_config_add(c, "skip-nonfinite", "%d", o->skip_nonfinite != 0));
    LORAC_TRY(lorac_ckpt_config_add(c, "training examples", "%d", train->n));
    LORAC_TRY(lorac_ckpt_config_add(c, "training data", "fingerprint %016llx", (unsigned long long)data_hash(train)));
    LORAC_TRY(lorac_ckpt_config_add(c, "validation examples", "%d", val ? val->n : 0));
    LORAC_TRY(lorac_ckpt_config_add(c, "validation data", "fingerprint %016llx", (unsigned long long)data_hash(val)));
    uint64_t th = LORAC_HASH_INIT;
    for (int i = 0; i < opt->n_params; i++) {
        th = lorac_hash_bytes(th, opt->p[i].name, strlen(opt->p[i].name) + 1);
        th = lorac_hash_bytes(th, &opt->p[i].n, sizeof opt->p[i].n);
    }
    LORAC_TRY(lorac_ckpt_config_add(c, "trainable tensors", "%d tensors, %zu values, fingerprint %016llx", opt->n_params,
                                    lorac_optim_numel(opt), (unsigned long long)th));
    return LORAC_OK;
}

/* The loop's state at a step boundary. data_rng: the data-order RNG as it
 * was before epoch `ep`'s shuffle (the resumed run draws that order again). */
static void snapshot(lorac_ckpt_state *cs, int step, int ep, int next_batch, int total, const lorac_rng *data_rng,
                     const lorac_model *m, double epoch_loss, int epoch_steps, const lorac_train_result *res,
                     double train_s, double eval_s) {
    cs->step = step;
    cs->epoch = ep;
    cs->next_batch = next_batch;
    cs->total_steps = total;
    cs->data_rng = *data_rng;
    cs->dropout_rng = m->rng;
    cs->epoch_loss = epoch_loss;
    cs->epoch_steps = epoch_steps;
    cs->tokens = res->tokens;
    cs->padded_tokens = res->padded_tokens;
    cs->train_seconds = train_s;
    cs->eval_seconds = eval_s;
}

/* Data parallel: sum every trainable gradient over the ranks in one
 * message, with the ranks' stop requests in its last value (so all ranks
 * stop at the same step). buf holds lorac_optim_numel(opt) + 1 floats. A
 * barrier first separates waiting for the slowest rank (uneven shards)
 * from moving the gradients in the communication figures. */
static lorac_status sum_gradients(lorac_optim *opt, lorac_dist *d, float *buf, int *stop) {
    LORAC_TRY(lorac_dist_barrier(d, "the wait for every rank's gradients"));
    size_t o = 0;
    for (int i = 0; i < opt->n_params; i++) {
        memcpy(buf + o, opt->p[i].grad, opt->p[i].n * sizeof(float));
        o += opt->p[i].n;
    }
    buf[o] = *stop ? 1.0f : 0.0f;
    LORAC_TRY(lorac_dist_sum_f32(d, buf, o + 1, "the gradient sum"));
    *stop = buf[o] > 0;
    o = 0;
    for (int i = 0; i < opt->n_params; i++) {
        memcpy(opt->p[i].grad, buf + o, opt->p[i].n * sizeof(float));
        o += opt->p[i].n;
    }
    return LORAC_OK;
}

/* Rank r's dropout stream: rank 0 draws what one process draws; the others
 * draw from streams of their own, derived from rank 0's (so a resumed run,
 * whose checkpoint holds rank 0's stream, derives the same ones). */
static void rank_dropout_rng(lorac_rng *r, int rank) {
    if (rank == 0) return;
    lorac_rng_seed(r, r->s[0] ^ r->s[2] ^ (uint64_t)rank * 0x9e3779b97f4a7c15ULL);
}

lorac_status lorac_train(lorac_model *m, const lorac_tokenized *train, const lorac_tokenized *val,
                         const lorac_train_opts *o, lorac_train_result *res) {
    memset(res, 0, sizeof *res);
    if (train->n == 0) return lorac_fail(LORAC_ERR_DATA, "the training set is empty");
    if (o->batch_size <= 0 || o->grad_accum <= 0 || o->epochs <= 0)
        return lorac_fail(LORAC_ERR_ARG, "batch size, gradient accumulation and epochs must be positive");
    if (o->task == LORAC_TASK_CLS && !m->head) return lorac_fail(LORAC_ERR_ARG, "classification needs a head");
    const int bs = o->batch_size;
    const int rank = lorac_dist_rank(o->dist), nranks = lorac_dist_size(o->dist);
    const int writer = rank == 0; /* the one rank that reports and writes */
    const char *metrics_path = writer ? o->metrics_path : NULL;
    const lorac_progress_fn progress = writer ? o->progress : NULL;
    if ((train->n < bs ? train->n : bs) < nranks)
        return lorac_fail(LORAC_ERR_ARG, "a batch of %d examples cannot be shared by %d ranks; hint: --batch (and the "
                          "training set) must be at least the number of ranks", train->n < bs ? train->n : bs, nranks);
    const int per_epoch = train->n > bs ? train->n / bs : 1;     /* drop_last */
    const int steps_per_epoch = (per_epoch + o->grad_accum - 1) / o->grad_accum;
    int total = steps_per_epoch * o->epochs;
    if (o->max_steps > 0 && o->max_steps < total) total = o->max_steps;

    lorac_optim *opt = NULL;
    lorac_adamw_cfg acfg = {o->lr, o->beta1, o->beta2, o->eps, o->weight_decay};
    LORAC_TRY(lorac_optim_create(&acfg, &opt));
    lorac_sched sched = {(lorac_sched_kind)o->schedule, o->warmup_steps, total, 0};
    add_ctx ac = {opt, LORAC_OK, &o->loraplus, o->lr};
    lorac_for_each_trainable(m, add_param, &ac);
    lorac_status st = ac.st;
    if (st == LORAC_OK && opt->n_params == 0)
        st = lorac_fail(LORAC_ERR_ARG, "nothing is trainable; hint: check --target / --method");
    if (st == LORAC_OK && o->task != LORAC_TASK_CLS) { /* a language-model set with no target left trains nothing */
        int64_t terms = 0;
        for (int i = 0; i < train->n && !terms; i++) terms += lorac_example_terms(train, i, o->task);
        if (!terms)
            st = lorac_fail(LORAC_ERR_DATA, "no training example has a token left to predict after truncation to %d "
                            "tokens%s; hint: raise --max-len", train->max_len,
                            o->task == LORAC_TASK_INSTRUCT ? " (every prompt fills the length, so no response is left)" : "");
    }

    int *order = malloc(sizeof(int) * (size_t)train->n);
    int *share = malloc(sizeof(int) * 3 * (size_t)(bs < train->n ? bs : train->n)); /* batch_share's */
    float *gbuf = NULL; /* the gradient message of a data-parallel run */
    lorac_batch b = {0};
    lorac_rng rng, epoch_rng;
    lorac_rng_seed(&rng, o->seed);
    lorac_rng_seed(&m->rng, o->seed ^ 0x5eed);
    rank_dropout_rng(&m->rng, rank);
    epoch_rng = rng;
    if ((!order || !share) && st == LORAC_OK) st = lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    if (st == LORAC_OK && nranks > 1)
        st = lorac_alloc((void **)&gbuf, lorac_optim_numel(opt) + 1, sizeof(float), "the gradient message");

    /* checkpoints: the settings to record / check, and the state to resume */
    const int checkpointing = o->checkpoint_dir != NULL;
    lorac_ckpt_config cfg = {0};
    lorac_ckpt_state cs = {0};
    if (st == LORAC_OK && (checkpointing || o->resume_from)) st = build_config(m, opt, train, val, o, total, &cfg);
    int step = 0, start_ep = 1, start_bi = 0, last_saved = -1;
    double step_loss = 0, epoch_loss = 0;
    int epoch_steps = 0;
    if (st == LORAC_OK && o->resume_from) {
        st = lorac_ckpt_load(o->resume_from, &cfg, m, opt, &cs);
        if (st == LORAC_OK && cs.step != opt->step)
            st = lorac_fail(LORAC_ERR_FORMAT, "%s: step %d but the optimizer's is %lld", o->resume_from, cs.step,
                            (long long)opt->step);
        if (st == LORAC_OK && (cs.next_batch >= per_epoch || cs.epoch > o->epochs + 1))
            st = lorac_fail(LORAC_ERR_FORMAT, "%s: position (epoch %d, batch %d) outside this run's %d batches per epoch",
                            o->resume_from, cs.epoch, cs.next_batch, per_epoch);
        if (st == LORAC_OK) {
            step = last_saved = res->resumed_step = cs.step;
            start_ep = cs.epoch;
            start_bi = cs.next_batch;
            rng = cs.data_rng;
            m->rng = cs.dropout_rng;
            rank_dropout_rng(&m->rng, rank);
            epoch_loss = cs.epoch_loss;
            epoch_steps = cs.epoch_steps;
            res->tokens = cs.tokens;
            res->padded_tokens = cs.padded_tokens;
            if (cs.have_val) {
                res->val_loss = cs.val_loss;
                res->val_acc = cs.val_acc;
            }
            st = lorac_ckpt_trim_metrics(metrics_path, step); /* drop what ran after the checkpoint */
        }
    }
    double eval_s = cs.eval_seconds; /* time spent evaluating, kept out of tokens/s */
    const double t0 = lorac_now() - cs.train_seconds - cs.eval_seconds;
    int next_ep = start_ep, next_bi = start_bi; /* where the run stands after its last step */
    int shuffled_ep = 0;                        /* the last epoch whose order was drawn */
    int micro = 0;
    m->training = 1;
    const int model_dropout_was = m->model_dropout;
    m->model_dropout = o->model_dropout;
    for (int ep = start_ep; ep <= o->epochs && st == LORAC_OK && step < total && !res->interrupted; ep++) {
        epoch_rng = rng; /* a checkpoint inside this epoch rebuilds its order from here */
        shuffled_ep = ep;
        for (int i = 0; i < train->n; i++) order[i] = i;
        lorac_rng_shuffle(&rng, order, train->n);
        int bi0 = ep == start_ep ? start_bi : 0;
        if (bi0 == 0) { /* a run resumed inside an epoch keeps the epoch's loss so far */
            epoch_loss = 0;
            epoch_steps = 0;
        }
        for (int bi = bi0; bi < per_epoch && st == LORAC_OK && step < total; bi++) {
            /* the global batch; this rank runs its share of it */
            int cnt = train->n < bs ? train->n : bs, n_mine = 0;
            int64_t real = 0, padded = 0;
            batch_share(train, order, bi * bs, cnt, rank, nranks, !o->padded, share + cnt, share, &n_mine, &real,
                        &padded);
            int terms = global_terms(train, order, bi * bs, cnt, o->task), k = 0;
            double sum = 0;
            if (terms == 0) continue;
            st = o->padded ? lorac_batch_make(&b, train, share, 0, n_mine, o->task)
                           : lorac_batch_make_packed(&b, train, share, 0, n_mine, o->task);
            if (st != LORAC_OK) break;
            st = batch_loss(m, &b, o->task, 1.0f / (float)terms / (float)o->grad_accum, 1, &sum, &k, NULL, NULL);
            if (st == LORAC_OK) st = lorac_dist_sum_f64(o->dist, &sum, 1, "the loss sum"); /* every rank decides alike */
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
            lorac_batch_backward(m, &b, mode_of(o->task));
            res->tokens += real;
            res->padded_tokens += padded;
            step_loss += loss / o->grad_accum;
            if (++micro < o->grad_accum && bi + 1 < per_epoch) continue;
            micro = 0;
            int stopping = o->stop && *o->stop;
            if (nranks > 1 && (st = sum_gradients(opt, o->dist, gbuf, &stopping)) != LORAC_OK) break;
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
            lorac_dora_invalidate(m); /* A and B moved: DoRA's cached norms are stale */
            lorac_optim_zero_grad(opt);
            if (checkpointing && (st = lorac_ckpt_push_loss(&cs, step, step_loss)) != LORAC_OK) break;
            step++;
            epoch_loss += step_loss;
            epoch_steps++;
            /* the next micro-batch: this epoch's bi + 1, or the next epoch's first */
            next_ep = bi + 1 < per_epoch ? ep : ep + 1;
            next_bi = bi + 1 < per_epoch ? bi + 1 : 0;
            double el = lorac_now() - t0 - eval_s;
            lorac_progress p = {ep, o->epochs, step, total, step_loss, lr, res->tokens / (el > 0 ? el : 1e-9), el,
                                el / step * (total - step), 0, 0, -1};
            metrics_line(metrics_path, "{\"type\":\"train\",\"epoch\":%d,\"step\":%d,\"loss\":%.6f,\"lr\":%.6g,\"tokens_per_s\":%.1f,\"elapsed_s\":%.3f}",
                         ep, step, step_loss, lr, p.tokens_per_s, el);
            if (progress) progress(&p, o->progress_ctx);
            step_loss = 0;
            int last_of_epoch = bi + o->grad_accum >= per_epoch || step == total;
            if (val && val->n > 0 && ((o->eval_every > 0 && step % o->eval_every == 0) || (o->eval_every == 0 && last_of_epoch))) {
                double vl, va, e0 = lorac_now();
                st = lorac_evaluate_dist(m, val, o->task, bs, o->dist, &vl, &va);
                eval_s += lorac_now() - e0;
                if (st != LORAC_OK) break;
                m->training = 1;
                res->val_loss = vl;
                res->val_acc = va;
                cs.have_val = 1;
                cs.val_loss = vl;
                cs.val_acc = va;
                p.is_eval = 1;
                p.val_loss = vl;
                p.val_acc = va;
                metrics_line(metrics_path, "{\"type\":\"eval\",\"epoch\":%d,\"step\":%d,\"val_loss\":%.6f,\"val_acc\":%.6f}", ep, step, vl, va);
                if (progress) progress(&p, o->progress_ctx);
            }
            /* a step boundary: save when due or asked to stop (one process:
             * a request that came during the evaluation counts too) */
            if (nranks == 1) stopping = o->stop && *o->stop;
            if (checkpointing && writer && (stopping || (o->save_every > 0 && step % o->save_every == 0))) {
                snapshot(&cs, step, next_ep, next_bi, total, next_ep == ep ? &epoch_rng : &rng, m, epoch_loss,
                         epoch_steps, res, lorac_now() - t0 - eval_s, eval_s);
                st = lorac_ckpt_save(o->checkpoint_dir, o->keep_checkpoints, m, opt, &cs, &cfg, o->checkpoint_extra,
                                     o->checkpoint_extra_ctx, res->checkpoint, sizeof res->checkpoint);
                if (st != LORAC_OK) break;
                last_saved = step;
            }
            if (stopping) {
                res->interrupted = 1;
                break;
            }
        }
    }
    /* the final checkpoint (unless the last step was just saved) */
    if (st == LORAC_OK && checkpointing && writer && o->save_every > 0 && !res->interrupted && step != last_saved &&
        step > 0) {
        snapshot(&cs, step, next_ep, next_bi, total, next_ep == shuffled_ep ? &epoch_rng : &rng, m, epoch_loss,
                 epoch_steps, res, lorac_now() - t0 - eval_s, eval_s);
        st = lorac_ckpt_save(o->checkpoint_dir, o->keep_checkpoints, m, opt, &cs, &cfg, o->checkpoint_extra,
                             o->checkpoint_extra_ctx, res->checkpoint, sizeof res->checkpoint);
    }
    m->training = 0;
    m->model_dropout = model_dropout_was;
    res->steps = step;
    res->seconds = lorac_now() - t0 - eval_s;
    res->eval_seconds = eval_s;
    res->final_loss = epoch_steps ? epoch_loss / epoch_steps : NAN;
    res->tokens_per_s = res->seconds > 0 ? res->tokens / res->seconds : 0;
    free(order);
    free(share);
    free(gbuf);
    lorac_batch_free(&b);
    lorac_optim_destroy(opt);
    lorac_ckpt_config_free(&cfg);
    lorac_ckpt_state_free(&cs);
    return st;
}
