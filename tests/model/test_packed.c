/* test_packed - packed (padding-free) batches give the loss and the
 * gradients of padded batches.
 *
 * Five examples of 9, 1, 70, 5 and 66 tokens (so sequences straddle the
 * attention's 64-row blocks, and one has a single token) are put in one
 * batch twice: padded to 70 (lorac_batch_make, 350 rows) and packed end to
 * end (lorac_batch_make_packed, 151 rows). For each model and task, forward
 * + loss (the trainer's: summed over the loss terms, scaled by 1 / terms) +
 * backward runs on both, from the same weights:
 *   GPT-2 (learned positions, fused c_attn), Llama (RoPE, grouped-query
 *   heads; also with gradient checkpointing), in classification (last real
 *   token), language-model and instruction mode (prompt targets masked);
 *   BERT (bidirectional attention, learned positions) pooled on [CLS]
 *   through pooler + tanh, DistilBERT-style pre_classifier + ReLU, and mean
 *   pooling; in classification mode.
 * Every model has LoRA on every Linear (B nonzero, so the LoRA path shows
 * in A's gradients) and a trainable head for classification. The loss must
 * agree to 1e-6 (relative) and every trainable gradient to 1e-5 of the
 * largest gradient. Positions that do not restart per sequence, attention
 * that crosses from one sequence into the next, pooling on the wrong row or
 * targets that run into the next example all change them far more. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora.h"
#include "models/model.h"
#include "ops/ops.h"
#include "testutil.h"
#include "train/batch.h"

/* Forward + the trainer's loss + backward on batch b; gradients into *g. */
static double step(lorac_model *m, const lorac_batch *b, lorac_task task, int terms, test_grads *g) {
    const lorac_fwd_mode mode = task == LORAC_TASK_CLS ? LORAC_FWD_CLS : LORAC_FWD_LM;
    test_zero_grads(m);
    m->training = 1;
    CHECK_OK(lorac_batch_forward(m, b, mode));
    int cnt = 0;
    double loss;
    if (task == LORAC_TASK_CLS)
        loss = op_xent(m->acts.cls_logits, m->acts.cls_logits, b->labels, b->B, m->n_classes, 1.0f / terms, &cnt);
    else
        loss = op_xent(m->acts.logits, m->acts.logits, b->targets, b->N, m->cfg.vocab, 1.0f / terms, &cnt);
    CHECK(cnt == terms, "%d loss terms counted, the examples hold %d", cnt, terms);
    lorac_batch_backward(m, b, mode);
    test_collect_grads(m, g);
    return loss / terms;
}

static lorac_config tiny(lorac_arch arch) {
    lorac_config c;
    memset(&c, 0, sizeof c);
    c.arch = arch;
    c.n_ctx = 80;
    c.bos_id = c.eos_id = c.pad_id = -1;
    if (arch == LORAC_ARCH_LLAMA) {
        strcpy(c.model_type, "llama");
        c.vocab = 97, c.dim = 48, c.n_layer = 3, c.n_head = 6, c.n_kv_head = 2, c.ffn_dim = 80;
        c.norm_eps = 1e-5f, c.rope_theta = 10000, c.tied = 1;
    } else if (arch == LORAC_ARCH_GPT2) {
        strcpy(c.model_type, "gpt2");
        c.vocab = 101, c.dim = 32, c.n_layer = 3, c.n_head = 4, c.n_kv_head = 4, c.ffn_dim = 128;
        c.norm_eps = 1e-5f, c.tied = 1, c.attn_bias = c.mlp_bias = 1;
    } else {
        strcpy(c.model_type, "bert");
        c.vocab = 89, c.dim = 32, c.n_layer = 2, c.n_head = 4, c.n_kv_head = 4, c.ffn_dim = 64;
        c.norm_eps = 1e-12f, c.attn_bias = c.mlp_bias = 1, c.pool = LORAC_POOL_CLS;
    }
    CHECK_OK(lorac_config_check(&c, c.model_type));
    return c;
}

/* Five examples of 9, 1, 70, 5, 66 tokens; instruction prompts of 4, 0, 30,
 * 2, 65 tokens; labels 0..2. */
static void make_examples(lorac_tokenized *t, int vocab) {
    static const int len[] = {9, 1, 70, 5, 66}, prompt[] = {4, 0, 30, 2, 65};
    memset(t, 0, sizeof *t);
    t->n = 5;
    t->ids = calloc(5, sizeof *t->ids);
    t->len = calloc(5, sizeof(int));
    t->label = calloc(5, sizeof(int));
    t->loss_mask = calloc(5, sizeof *t->loss_mask);
    t->max_len = 70;
    t->pad_id = 0;
    for (int i = 0; i < 5; i++) {
        t->len[i] = len[i];
        t->loss_mask[i] = malloc((size_t)len[i]);
        for (int j = 0; j < len[i]; j++) t->loss_mask[i][j] = j >= prompt[i]; /* the prompt's tokens are no targets */
        t->label[i] = i % 3;
        t->ids[i] = malloc(sizeof(int) * (size_t)len[i]);
        for (int j = 0; j < len[i]; j++) t->ids[i][j] = (int)((i * 131u + j * 37u + 5u) % (unsigned)vocab);
        t->n_tokens += len[i];
    }
}

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

static void check(const char *what, lorac_config cfg, lorac_task task, int ckpt) {
    lorac_model *m;
    CHECK_OK(lorac_model_create_random(&cfg, 7, &m));
    if (task == LORAC_TASK_CLS) CHECK_OK(lorac_model_add_head(m, 3, 1, LORAC_HEAD_INIT_TORCH, 11));
    lorac_lora_config lc;
    lorac_lora_config_default(&lc);
    lc.r = 4;
    lc.alpha = 8;
    CHECK_OK(lorac_lora_parse_list("all-linear", lc.targets, &lc.n_targets, "targets"));
    CHECK_OK(lorac_lora_apply(m, &lc, NULL));
    for (int i = 0; i < m->n_lin; i++) {
        lorac_lora *l = m->lin[i].lora;
        if (!l) continue;
        for (size_t j = 0; j < l->B.n; j++) l->B.data[j] = 0.02f * (float)((int)(j % 13) - 6);
    }
    if (task == LORAC_TASK_CLS && !m->head->W->grad) CHECK_OK(lorac_weight_make_trainable(m->head->W));
    if (ckpt) CHECK_OK(lorac_model_set_grad_ckpt(m, 1));

    lorac_tokenized t;
    make_examples(&t, cfg.vocab);
    int order[5] = {0, 1, 2, 3, 4}, terms = 0;
    for (int i = 0; i < 5; i++) terms += lorac_example_terms(&t, i, task);
    lorac_batch padded = {0}, packed = {0};
    CHECK_OK(lorac_batch_make(&padded, &t, order, 0, 5, task));
    CHECK_OK(lorac_batch_make_packed(&packed, &t, order, 0, 5, task));
    CHECK(padded.N == 5 * 70 && packed.N == 151 && packed.offs[5] == 151, "%s: %d padded rows, %d packed", what,
          padded.N, packed.N);

    test_grads g0 = {0}, g1 = {0};
    const double l0 = step(m, &padded, task, terms, &g0), l1 = step(m, &packed, task, terms, &g1);
    CHECK(fabs(l1 - l0) <= 1e-6 * fabs(l0), "%s: loss %.9g packed, %.9g padded", what, l1, l0);
    CHECK(g0.n == g1.n && g0.n > 0, "%s: %zu gradient values packed, %zu padded", what, g1.n, g0.n);
    double worst = 0;
    const double scale = max_abs(g0.buf, g0.n);
    for (size_t i = 0; i < g0.n && g0.n == g1.n; i++) worst = fmax(worst, fabs((double)g1.buf[i] - g0.buf[i]));
    CHECK(worst <= 1e-5 * scale, "%s: gradients differ by %.3g (largest gradient %.3g)", what, worst, scale);
    printf("%-22s loss %.6f; %zu gradient values, max |packed - padded| = %.2g x largest; %d rows instead of %d\n",
           what, l0, g0.n, worst / scale, packed.N, padded.N);
    free(g0.buf), free(g1.buf);
    lorac_batch_free(&padded);
    lorac_batch_free(&packed);
    lorac_tokenized_free(&t);
    lorac_model_free(m);
}

int main(void) {
    static const struct { const char *name; lorac_task task; } tasks[] = {
        {"cls", LORAC_TASK_CLS}, {"lm", LORAC_TASK_LM}, {"instruct", LORAC_TASK_INSTRUCT}};
    char what[64];
    for (int i = 0; i < 3; i++) {
        snprintf(what, sizeof what, "gpt2 %s", tasks[i].name);
        check(what, tiny(LORAC_ARCH_GPT2), tasks[i].task, 0);
        snprintf(what, sizeof what, "llama %s", tasks[i].name);
        check(what, tiny(LORAC_ARCH_LLAMA), tasks[i].task, 0);
        snprintf(what, sizeof what, "llama %s checkpointed", tasks[i].name);
        check(what, tiny(LORAC_ARCH_LLAMA), tasks[i].task, 1);
    }
    lorac_config bert = tiny(LORAC_ARCH_BERT);
    check("bert cls (pooler)", bert, LORAC_TASK_CLS, 0);
    bert.distil = 1;
    check("distilbert cls", bert, LORAC_TASK_CLS, 0);
    bert.distil = 0;
    bert.pool = LORAC_POOL_MEAN;
    check("bert mean pooling", bert, LORAC_TASK_CLS, 0);
    return test_summary("packed");
}
