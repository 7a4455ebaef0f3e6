/* test_parity - lorac's GPT-2, Llama, BERT and DistilBERT against
 * transformers + PEFT.
 *
 * Fixtures (tests/ref/make_model_fixtures.py, see tests/ref/README.md) hold a
 * tiny random model, a right-padded batch, the reference logits before and
 * after LoRA, the loss, every LoRA gradient, and 5 AdamW steps. Checked here:
 *  - base logits (1e-4 relative), and that injecting LoRA (B = 0) leaves the
 *    output bit-for-bit unchanged;
 *  - logits and loss with the reference LoRA weights (1e-4 relative);
 *  - every lora_A / lora_B gradient (1e-3 relative), the head's gradient for
 *    the classification fixtures, and that no frozen weight has a gradient;
 *  - the losses of 5 AdamW steps and the weights after them.
 * Encoders (tests/ref/make_encoder_fixtures.py) carry their classification
 * head in the checkpoint (BertForSequenceClassification /
 * DistilBertForSequenceClassification) and also check the last hidden state
 * of every row, padded rows included. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "lora/lora.h"
#include "models/model.h"
#include "ops/ops.h"
#include "testutil.h"
#include "train/optim.h"

/* Copy fixture tensor "base_model.model.<w->name><suffix>" into dst. */
static void load_named(const lorac_st *st, const lorac_weight *w, const char *prefix, const char *suffix, float *dst) {
    char key[256];
    snprintf(key, sizeof key, "%s%s%s", prefix, w->name, suffix);
    size_t n;
    float *x = test_st_f32(st, key, &n);
    CHECK(n == w->n, "%s: fixture has %zu elements, lorac %zu", key, n, w->n);
    memcpy(dst, x, sizeof(float) * (n < w->n ? n : w->n));
    free(x);
}

static void compare_named(const lorac_st *st, const lorac_weight *w, const char *prefix, const char *suffix,
                          const float *got, double rtol, double atol) {
    char key[256];
    snprintf(key, sizeof key, "%s%s%s", prefix, w->name, suffix);
    size_t n;
    float *want = test_st_f32(st, key, &n);
    test_close(key, got, want, n < w->n ? n : w->n, rtol, atol);
    free(want);
}

typedef struct { lorac_optim *opt; } optctx;
static void add_to_opt(lorac_weight *w, void *c) { lorac_optim_add(((optctx *)c)->opt, w->name, w->data, w->grad, w->n, 1, NULL); }

static double loss_and_grad(lorac_model *m, const int *ids, const uint8_t *mask, const int *targets, const int *labels,
                            int B, int T, int cls) {
    CHECK_OK(lorac_model_forward(m, ids, mask, B, T, cls ? LORAC_FWD_CLS : LORAC_FWD_LM));
    int count = 0;
    double sum;
    if (cls) {
        sum = op_xent(m->acts.cls_logits, m->acts.cls_logits, labels, B, m->n_classes, 1.0f / B, &count);
    } else {
        int valid = 0;
        for (int i = 0; i < B * T; i++) valid += targets[i] >= 0;
        sum = op_xent(m->acts.logits, m->acts.logits, targets, B * T, m->cfg.vocab, 1.0f / valid, &count);
    }
    lorac_model_backward(m, ids, B, T, cls ? LORAC_FWD_CLS : LORAC_FWD_LM);
    return sum / count;
}

static void zero_grads(lorac_weight *w, void *c) {
    (void)c;
    memset(w->grad, 0, sizeof(float) * w->n);
}

typedef struct { const lorac_st *st; const char *prefix; const char *suffix; int mode; } wctx;
static void visit_lora(lorac_model *m, void (*fn)(lorac_weight *, const wctx *), const wctx *c) {
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].lora) {
            fn(&m->lin[i].lora->A, c);
            fn(&m->lin[i].lora->B, c);
        }
}
static void set_w(lorac_weight *w, const wctx *c) { load_named(c->st, w, c->prefix, "", w->data); }
static void cmp_grad(lorac_weight *w, const wctx *c) { compare_named(c->st, w, c->prefix, ".grad", w->grad, 1e-3, 1e-6); }
static void cmp_after(lorac_weight *w, const wctx *c) { compare_named(c->st, w, c->prefix, ".after5", w->data, 1e-3, 1e-6); }

static int is_head_weight(const lorac_model *m, const lorac_weight *w) {
    const lorac_linear *hs[2] = {m->head, m->pre_head};
    for (int k = 0; k < 2; k++)
        if (hs[k] && (w == hs[k]->W || w == hs[k]->b)) return 1;
    return 0;
}

/* the head's weights (and an encoder's pre_head, trained as modules_to_save) */
static void visit_head(lorac_model *m, void (*fn)(lorac_weight *, const wctx *), const wctx *c) {
    for (int i = 0; i < m->n_w; i++)
        if (is_head_weight(m, &m->w[i]) && m->w[i].grad) fn(&m->w[i], c);
}

static void run_fixture(const char *model_dir, const char *fixture, int cls) {
    fprintf(stderr, "-- %s\n", fixture);
    lorac_model *m = NULL;
    lorac_st *st = NULL;
    CHECK_OK(lorac_model_load(test_src_path(model_dir), &m));
    CHECK_OK(lorac_st_open(test_src_path(fixture), &st));
    if (!m || !st) return;
    const lorac_tensor_desc *idt = test_st_need(st, "input_ids");
    const int B = (int)idt->shape[0], T = (int)idt->shape[1], V = m->cfg.vocab;
    int *ids = test_st_ints(st, "input_ids"), *am = test_st_ints(st, "attention_mask");
    uint8_t *mask = malloc((size_t)B * T);
    for (int i = 0; i < B * T; i++) mask[i] = (uint8_t)am[i];
    int *targets = NULL, *labels = NULL;
    const int enc = m->cfg.arch == LORAC_ARCH_BERT;
    if (cls && enc) { /* the head comes from the checkpoint; it must hold the fixture's values */
        labels = test_st_ints(st, "labels");
        CHECK(m->head != NULL && (m->cfg.distil ? m->pre_head != NULL : 1), "the checkpoint's head was not loaded");
        if (!m->head) return;
        compare_named(st, m->head->W, "", "", m->head->W->data, 0, 1e-9);
        if (m->cfg.distil) compare_named(st, m->pre_head->W, "", "", m->pre_head->W->data, 0, 1e-9);
        CHECK_OK(lorac_model_forward(m, ids, mask, B, T, LORAC_FWD_HIDDEN));
        float *h = test_st_f32(st, "hidden_base", NULL);
        test_close("hidden_base (every row)", m->acts.lnf, h, (size_t)B * T * m->cfg.dim, 1e-4, 1e-5);
        free(h);
    } else if (cls) {
        labels = test_st_ints(st, "labels");
        CHECK_OK(lorac_model_add_head(m, 2, 1, LORAC_HEAD_INIT_TORCH, 0));
        load_named(st, m->head->W, "", "", m->head->W->data);
        load_named(st, m->head->b, "", "", m->head->b->data);
    } else {
        int *lab = test_st_ints(st, "labels");
        targets = malloc(sizeof(int) * (size_t)B * T);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) targets[b * T + t] = t + 1 < T && lab[b * T + t + 1] >= 0 ? lab[b * T + t + 1] : -1;
        free(lab);
    }
    const lorac_fwd_mode mode = cls ? LORAC_FWD_CLS : LORAC_FWD_LM;
    const size_t nout = cls ? (size_t)B * m->n_classes : (size_t)B * T * V;

    /* 1. base model */
    CHECK_OK(lorac_model_forward(m, ids, mask, B, T, mode));
    float *base = malloc(sizeof(float) * nout);
    memcpy(base, cls ? m->acts.cls_logits : m->acts.logits, sizeof(float) * nout);
    float *ref = test_st_f32(st, "logits_base", NULL);
    /* padded rows of the LM logits are not compared: HF computes them with a
     * different (fully masked) attention pattern that lorac leaves undefined */
    if (cls) {
        test_close("logits_base", base, ref, nout, 1e-4, 1e-5);
    } else {
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                if (mask[b * T + t]) test_close("logits_base", base + ((size_t)b * T + t) * V, ref + ((size_t)b * T + t) * V, V, 1e-4, 1e-5);
    }
    free(ref);

    /* 2. inject LoRA like the fixture's LoraConfig: B = 0 must change nothing */
    lorac_lora_config lc;
    lorac_lora_config_default(&lc);
    lc.r = atoi(lorac_st_metadata(st, "r"));
    lc.alpha = (float)atof(lorac_st_metadata(st, "lora_alpha"));
    cJSON *tl = cJSON_Parse(lorac_st_metadata(st, "target_modules"));
    const cJSON *e;
    cJSON_ArrayForEach(e, tl) strcpy(lc.targets[lc.n_targets++], e->valuestring);
    cJSON_Delete(tl);
    const char *mts = lorac_st_metadata(st, "modules_to_save");
    if (cls && !mts) strcpy(lc.modules_to_save[lc.n_modules_to_save++], "score");
    cJSON *ml = mts ? cJSON_Parse(mts) : NULL;
    cJSON_ArrayForEach(e, ml) strcpy(lc.modules_to_save[lc.n_modules_to_save++], e->valuestring);
    cJSON_Delete(ml);
    int n_adapted = 0;
    CHECK_OK(lorac_lora_apply(m, &lc, &n_adapted));
    const int per_layer = m->cfg.arch == LORAC_ARCH_GPT2 ? 4 : m->cfg.arch == LORAC_ARCH_BERT ? 6 : 7;
    CHECK(n_adapted == per_layer * m->cfg.n_layer, "adapted %d modules", n_adapted);
    CHECK_OK(lorac_model_forward(m, ids, mask, B, T, mode));
    CHECK(memcmp(base, cls ? m->acts.cls_logits : m->acts.logits, sizeof(float) * nout) == 0,
          "output with fresh LoRA (B = 0) differs from the base model");

    /* 3. reference LoRA weights: logits, loss, gradients */
    wctx c = {st, "base_model.model.", "", 0};
    visit_lora(m, set_w, &c);
    int64_t tr, all;
    lorac_count_params(m, &tr, &all);
    optctx oc = {NULL};
    lorac_adamw_cfg acfg = {0.01, 0.9, 0.999, 1e-8, 0.1};
    CHECK_OK(lorac_optim_create(&acfg, &oc.opt));
    lorac_for_each_trainable(m, add_to_opt, &oc);
    lorac_for_each_trainable(m, zero_grads, NULL);
    double loss = loss_and_grad(m, ids, mask, targets, labels, B, T, cls);
    float *want_loss = test_st_f32(st, "loss", NULL);
    float got_loss = (float)loss;
    test_close("loss", &got_loss, want_loss, 1, 1e-4, 0);
    free(want_loss);
    visit_lora(m, cmp_grad, &c);
    wctx hc = {st, "", "", 0};
    visit_head(m, cmp_grad, &hc);
    int frozen_with_grad = 0;
    for (int i = 0; i < m->n_w; i++)
        if (m->w[i].grad && !is_head_weight(m, &m->w[i])) frozen_with_grad++;
    CHECK(frozen_with_grad == 0, "%d frozen base weights received gradient buffers", frozen_with_grad);
    if (!cls) {
        /* logits with LoRA, checked after the step above overwrote them: redo */
        CHECK_OK(lorac_model_forward(m, ids, mask, B, T, mode));
        float *want = test_st_f32(st, "logits_lora", NULL);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                if (mask[b * T + t])
                    test_close("logits_lora", m->acts.logits + ((size_t)b * T + t) * V, want + ((size_t)b * T + t) * V, V, 1e-4, 1e-5);
        free(want);
    } else {
        CHECK_OK(lorac_model_forward(m, ids, mask, B, T, mode));
        float *want = test_st_f32(st, "logits", NULL);
        test_close("logits (cls, LoRA)", m->acts.cls_logits, want, nout, 1e-4, 1e-5);
        free(want);
        if (enc) {
            CHECK_OK(lorac_model_forward(m, ids, mask, B, T, LORAC_FWD_HIDDEN));
            float *h = test_st_f32(st, "hidden", NULL);
            test_close("hidden (LoRA, every row)", m->acts.lnf, h, (size_t)B * T * m->cfg.dim, 1e-4, 1e-5);
            free(h);
        }
    }

    /* 4. five AdamW steps (lr 1e-2, wd 0.1) on the same batch */
    float losses[5];
    lorac_for_each_trainable(m, zero_grads, NULL);
    for (int s = 0; s < 5; s++) {
        losses[s] = (float)loss_and_grad(m, ids, mask, targets, labels, B, T, cls);
        lorac_optim_step(oc.opt, 0.01f);
        lorac_optim_zero_grad(oc.opt);
    }
    float *want5 = test_st_f32(st, "adamw_losses", NULL);
    test_close("adamw_losses", losses, want5, 5, 1e-4, 1e-6);
    free(want5);
    visit_lora(m, cmp_after, &c);
    visit_head(m, cmp_after, &hc);
    fprintf(stderr, "   trainable %lld of %lld params; loss %.6f\n", (long long)tr, (long long)all, loss);
    lorac_optim_destroy(oc.opt);
    free(base);
    free(ids);
    free(am);
    free(mask);
    free(targets);
    free(labels);
    lorac_st_close(st);
    lorac_model_free(m);
}

int main(void) {
    run_fixture("tests/fixtures/models/tiny_gpt2", "tests/fixtures/parity/tiny_gpt2_lm.safetensors", 0);
    run_fixture("tests/fixtures/models/tiny_llama", "tests/fixtures/parity/tiny_llama_lm.safetensors", 0);
    run_fixture("tests/fixtures/models/tiny_llama_tied", "tests/fixtures/parity/tiny_llama_tied_lm.safetensors", 0);
    run_fixture("tests/fixtures/models/tiny_gpt2", "tests/fixtures/parity/tiny_gpt2_cls.safetensors", 1);
    run_fixture("tests/fixtures/models/tiny_llama", "tests/fixtures/parity/tiny_llama_cls.safetensors", 1);
    run_fixture("tests/fixtures/models/tiny_bert", "tests/fixtures/parity/tiny_bert_cls.safetensors", 1);
    run_fixture("tests/fixtures/models/tiny_distilbert", "tests/fixtures/parity/tiny_distilbert_cls.safetensors", 1);
    return test_summary("test_parity");
}
