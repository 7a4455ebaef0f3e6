/* test_parity - lorac's GPT-2 and Llama against transformers + PEFT.
 *
 * Fixtures (tests/ref/make_model_fixtures.py, see tests/ref/README.md) hold a
 * tiny random model, a right-padded batch, the reference logits before and
 * after LoRA, the loss, every LoRA gradient, and 5 AdamW steps. Checked here:
 *  - base logits (1e-4 relative), and that injecting LoRA (B = 0) leaves the
 *    output bit-for-bit unchanged;
 *  - logits and loss with the reference LoRA weights (1e-4 relative);
 *  - every lora_A / lora_B gradient (1e-3 relative), the head's gradient for
 *    the classification fixtures, and that no frozen weight has a gradient;
 *  - the losses of 5 AdamW steps and the weights after them. */
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
    if (cls) {
        labels = test_st_ints(st, "labels");
        CHECK_OK(lorac_model_add_head(m, 2, 1, 0));
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
    const size_t nout = cls ? (size_t)B * 2 : (size_t)B * T * V;

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
    if (cls) strcpy(lc.modules_to_save[lc.n_modules_to_save++], "score");
    int n_adapted = 0;
    CHECK_OK(lorac_lora_apply(m, &lc, &n_adapted));
    CHECK(n_adapted == (m->cfg.arch == LORAC_ARCH_GPT2 ? 4 : 7) * m->cfg.n_layer, "adapted %d modules", n_adapted);
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
    if (cls) {
        wctx hc = {st, "", "", 0};
        compare_named(st, m->head->W, "", ".grad", m->head->W->grad, 1e-3, 1e-6);
        compare_named(st, m->head->b, "", ".grad", m->head->b->grad, 1e-3, 1e-6);
        (void)hc;
    }
    int frozen_with_grad = 0;
    for (int i = 0; i < m->n_w; i++)
        if (m->w[i].grad && !(m->head && (&m->w[i] == m->head->W || &m->w[i] == m->head->b))) frozen_with_grad++;
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
        test_close("logits (cls, LoRA)", m->acts.cls_logits, want, (size_t)B * 2, 1e-4, 1e-5);
        free(want);
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
    if (cls) {
        compare_named(st, m->head->W, "", ".after5", m->head->W->data, 1e-3, 1e-6);
        compare_named(st, m->head->b, "", ".after5", m->head->b->data, 1e-3, 1e-6);
    }
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
    return test_summary("test_parity");
}
