/* test_parity_variants - the rest of PEFT's LoRA family against PEFT 0.21
 * (fixtures: tests/ref/make_peft_variant_fixtures.py) on the tiny GPT-2,
 * Llama and BERT: DoRA (use_dora), rank_pattern / alpha_pattern, PiSSA and
 * OLoRA init, LoRA+.
 *  1. parity_run_fixture (tests/parity_common.c): logits 1e-4, every
 *     gradient (lora_magnitude_vector's too) 1e-3, 5 AdamW / LoRA+ steps;
 *     PiSSA / OLoRA: lorac's s B0 A0 and residual base weights equal PEFT's;
 *  2. the adapter PEFT saved (save_pretrained) loads in lorac with PEFT's
 *     logits (1e-4); merged, the logits stay (1e-4); unmerged, too;
 *     (merging is refused for LoRA on a tied embedding: the head would change);
 *  3. lorac's save of that adapter, loaded onto a fresh base, gives the
 *     same logits (PiSSA / OLoRA: saved converted to a plain LoRA on the
 *     original base, as PEFT's path_initial_model_for_weight_conversion). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/safetensors.h"
#include "lora/adapter_io.h"
#include "lora/merge.h"
#include "parity_common.h"
#include "testutil.h"

typedef struct { int B, T, *ids; uint8_t *mask; } batch;

static const float *run(lorac_model *m, const batch *b, int cls) {
    CHECK_OK(lorac_model_forward(m, b->ids, b->mask, b->B, b->T, cls ? LORAC_FWD_CLS : LORAC_FWD_LM));
    return cls ? m->acts.cls_logits : m->acts.logits;
}

/* atol: 1e-5, or for PiSSA (lorac's residual W - s B0 A0 from its own SVD in
 * double, PEFT's from a float32 one: they differ by ~1e-6 of |W|, which moves
 * logits near 0 by a few 1e-5) 1e-4 of the largest logit, as check_merged.py. */
static double g_atol = 1e-5;

static void same(const char *what, lorac_model *m, const batch *b, int cls, const float *want) {
    const float *y = run(m, b, cls);
    if (cls) test_close(what, y, want, (size_t)b->B * m->n_classes, 1e-4, g_atol);
    else parity_close_rows(what, y, want, b->mask, b->B, b->T, m->cfg.vocab, 1e-4, g_atol);
}

static void peft_dir(const char *model_dir, const char *adapter_dir, int cls) {
    fprintf(stderr, "-- PEFT's adapter %s\n", adapter_dir);
    char ep[1200], what[1400], saved[1200];
    lorac_model *m = NULL, *r = NULL;
    lorac_st *st = NULL;
    lorac_lora_config c;
    CHECK_OK(lorac_model_load(test_src_path(model_dir), &m));
    CHECK_OK(lorac_st_open(lorac_path_join(ep, sizeof ep, test_src_path(adapter_dir), "expected.safetensors"), &st));
    if (!m || !st) exit(1);
    const lorac_tensor_desc *d = test_st_need(st, "input_ids");
    batch b = {(int)d->shape[0], (int)d->shape[1], test_st_ints(st, "input_ids"), malloc((size_t)d->shape[0] * d->shape[1])};
    int *am = test_st_ints(st, "attention_mask");
    for (int i = 0; i < b.B * b.T; i++) b.mask[i] = (uint8_t)am[i];
    size_t nw = 0;
    float *want = test_st_f32(st, "logits", &nw);
    CHECK_OK(lorac_adapter_load(m, test_src_path(adapter_dir), &c));
    double mx = 0;
    for (size_t i = 0; i < nw; i++) mx = fmax(mx, fabs(want[i]));
    g_atol = c.init == LORAC_INIT_PISSA ? 1e-4 * mx : 1e-5;
    const char *base = strrchr(adapter_dir, '/') + 1;
    snprintf(what, sizeof what, "%s: logits with PEFT's adapter", base);
    same(what, m, &b, cls, want);
    /* 3. lorac's own save of it, onto a fresh base */
    lorac_adapter_meta meta = {NULL, cls ? "SEQ_CLS" : "CAUSAL_LM", cls ? m->n_classes : 0, NULL};
    lorac_path_join(saved, sizeof saved, test_tmpdir(), base);
    CHECK_OK(lorac_adapter_save(m, &c, &meta, saved));
    CHECK_OK(lorac_model_load(test_src_path(model_dir), &r));
    if (r) {
        CHECK_OK(lorac_adapter_load(r, saved, NULL));
        snprintf(what, sizeof what, "%s: logits with lorac's save of it on a fresh base", base);
        same(what, r, &b, cls, want);
        lorac_model_free(r);
    }
    /* 2. merge, unmerge */
    if (m->wte_lora && m->cfg.tied) {
        CHECK(lorac_lora_merge(m) == LORAC_ERR_UNSUPPORTED && strstr(lorac_last_error(), "tied"),
              "merging LoRA on a tied embedding: %s", lorac_last_error());
        lorac_clear_error();
        CHECK(!m->wte_lora->merged, "a refused merge changed the model");
        goto done;
    }
    CHECK_OK(lorac_lora_merge(m));
    snprintf(what, sizeof what, "%s: merged logits", base);
    same(what, m, &b, cls, want);
    lorac_lora_unmerge(m);
    snprintf(what, sizeof what, "%s: unmerged logits", base);
    same(what, m, &b, cls, want);
done:
    free(want);
    free(am);
    free(b.ids);
    free(b.mask);
    lorac_st_close(st);
    lorac_model_free(m);
}

int main(void) {
    static const char *const models[4] = {"tiny_gpt2", "tiny_llama", "tiny_bert", "tiny_llama_tied"};
    static const char *const features[6] = {"dora", "pattern", "pissa", "olora", "loraplus", "embed"};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 6; k++) {
            if (i == 0 && k == 3) continue; /* no OLoRA on GPT-2's Conv1D (PEFT's gives wrong shapes) */
            if (i == 3 && k != 5) continue; /* the tied Llama: LoRA on its embedding, the head keeps the plain one */
            char md[256], fx[256], ad[256];
            snprintf(md, sizeof md, "tests/fixtures/models/%s", models[i]);
            snprintf(fx, sizeof fx, "tests/fixtures/parity/variants/%s_%s.safetensors", models[i], features[k]);
            parity_run_fixture(md, fx, i == 2);
            snprintf(ad, sizeof ad, "tests/fixtures/parity/variants/%s_%s_peft", models[i], features[k]);
            if (k != 4) peft_dir(md, ad, i == 2);
        }
    return test_summary("test_parity_variants");
}
