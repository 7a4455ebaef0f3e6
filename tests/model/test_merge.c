/* test_merge - LoRA merge / unmerge, merged checkpoints, and PEFT-written
 * adapters, against the parity fixtures (tests/ref/README.md):
 *  a. merging gives the fixture's "<W>.merged" tensor (PEFT's merge, incl.
 *     GPT-2's Conv1D [in,out] layout), the merged model's logits equal the
 *     unmerged LoRA logits, and unmerging restores every base weight;
 *  b. split q|k|v adapters (split_fused) merge to the same logits;
 *  c. adapters written by PEFT's save_pretrained load and give logits_lora;
 *  d. a merged model saved with lorac_model_save_merged reloads and gives the
 *     same logits as the merged model in memory;
 *  e. a model without a config.json of its own (GGUF, random) is saved with
 *     one generated from its config, and reloads to the same logits. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/safetensors.h"
#include "lora/adapter_io.h"
#include "lora/lora.h"
#include "lora/merge.h"
#include "models/model.h"
#include "testutil.h"

/* A fixture's batch: ids [B, T] and mask [B, T]. */
typedef struct { int B, T; int *ids; uint8_t *mask; } batch;

static batch read_batch(const lorac_st *st) {
    const lorac_tensor_desc *t = test_st_need(st, "input_ids"), *am = test_st_need(st, "attention_mask");
    batch b = {(int)t->shape[0], (int)t->shape[1], NULL, NULL};
    b.ids = malloc(sizeof(int) * (size_t)t->numel);
    b.mask = malloc((size_t)t->numel);
    for (int64_t i = 0; i < t->numel; i++) { /* I64, not necessarily aligned: copy out */
        int64_t v, k;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        memcpy(&k, (const char *)am->data + 8 * i, 8);
        b.ids[i] = (int)v;
        b.mask[i] = (uint8_t)k;
    }
    return b;
}

static void free_batch(batch *b) {
    free(b->ids);
    free(b->mask);
}

/* LM logits [B*T, V] of m on the batch, copied out (caller frees). */
static float *logits(lorac_model *m, const batch *b) {
    CHECK_OK(lorac_model_forward(m, b->ids, b->mask, b->B, b->T, LORAC_FWD_LM));
    size_t n = (size_t)b->B * b->T * m->cfg.vocab;
    float *y = malloc(sizeof(float) * n);
    memcpy(y, m->acts.logits, sizeof(float) * n);
    return y;
}

/* Compare the rows of real tokens only (padded rows are left undefined). */
static void compare_rows(const char *what, const float *got, const float *want, const batch *b, int V, double rtol) {
    int ok = 1;
    for (int i = 0; i < b->B * b->T && ok; i++)
        if (b->mask[i]) ok = test_close(what, got + (size_t)i * V, want + (size_t)i * V, V, rtol, 1e-5);
}

/* Inject LoRA as the fixture's LoraConfig and load its A / B. */
static void apply_fixture_lora(lorac_model *m, const lorac_st *st) {
    lorac_lora_config lc;
    lorac_lora_config_default(&lc);
    lc.r = atoi(lorac_st_metadata(st, "r"));
    lc.alpha = (float)atof(lorac_st_metadata(st, "lora_alpha"));
    if (m->cfg.arch == LORAC_ARCH_GPT2) {
        const char *t[] = {"c_attn", "c_proj", "c_fc"};
        for (int i = 0; i < 3; i++) strcpy(lc.targets[lc.n_targets++], t[i]);
    } else {
        const char *t[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
        for (int i = 0; i < 7; i++) strcpy(lc.targets[lc.n_targets++], t[i]);
    }
    CHECK_OK(lorac_lora_apply(m, &lc, NULL));
    for (int i = 0; i < m->n_lin; i++) {
        lorac_lora *l = m->lin[i].lora;
        if (!l) continue;
        lorac_weight *ab[2] = {&l->A, &l->B};
        for (int k = 0; k < 2; k++) {
            char key[256];
            snprintf(key, sizeof key, "base_model.model.%s.lora_%c.weight", m->lin[i].name, k ? 'B' : 'A');
            size_t n;
            float *x = test_st_f32(st, key, &n);
            CHECK(n == ab[k]->n, "%s: %zu elements, lorac %zu", key, n, ab[k]->n);
            memcpy(ab[k]->data, x, sizeof(float) * (n < ab[k]->n ? n : ab[k]->n));
            free(x);
        }
    }
}

/* Copies of every base weight (to check that unmerge restores them). */
static float **snapshot(const lorac_model *m) {
    float **s = malloc(sizeof(float *) * (size_t)m->n_w);
    for (int i = 0; i < m->n_w; i++) {
        s[i] = malloc(sizeof(float) * m->w[i].n);
        memcpy(s[i], m->w[i].data, sizeof(float) * m->w[i].n);
    }
    return s;
}

static void free_snapshot(float **s, int n) {
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* a (and d for save_dir != NULL) */
static void test_fixture_merge(const char *model_dir, const char *fixture, const char *merged_name, const char *save_dir) {
    fprintf(stderr, "-- merge %s\n", fixture);
    lorac_model *m = NULL;
    lorac_st *st = NULL;
    CHECK_OK(lorac_model_load(test_src_path(model_dir), &m));
    CHECK_OK(lorac_st_open(test_src_path(fixture), &st));
    if (!m || !st) exit(1);
    batch b = read_batch(st);
    const int V = m->cfg.vocab;
    CHECK_OK(lorac_model_reserve(m, b.B, b.T));
    apply_fixture_lora(m, st);
    float **orig = snapshot(m);
    float *y_lora = logits(m, &b);

    CHECK_OK(lorac_lora_merge(m));
    char key[256];
    snprintf(key, sizeof key, "%s.merged", merged_name);
    const lorac_weight *w = lorac_model_find_weight(m, merged_name);
    CHECK(w != NULL, "no weight %s", merged_name);
    if (w) {
        size_t n;
        float *want = test_st_f32(st, key, &n);
        CHECK(n == w->n, "%s: %zu elements, lorac %zu", key, n, w->n);
        test_close(key, w->data, want, n < w->n ? n : w->n, 1e-5, 1e-5);
        free(want);
    }
    float *y_merged = logits(m, &b);
    compare_rows("merged logits vs LoRA logits", y_merged, y_lora, &b, V, 1e-4);

    if (save_dir) { /* d. save, reload, same logits */
        CHECK_OK(lorac_model_save_merged(m, save_dir, NULL));
        lorac_model *r = NULL;
        CHECK_OK(lorac_model_load(save_dir, &r));
        if (r) {
            CHECK_OK(lorac_model_reserve(r, b.B, b.T));
            float *y_reload = logits(r, &b);
            compare_rows("reloaded merged checkpoint vs merged model", y_reload, y_merged, &b, V, 1e-6);
            free(y_reload);
            lorac_model_free(r);
        }
        lorac_st *out = NULL;
        CHECK_OK(lorac_st_open(save_dir, &out));
        if (out) {
            CHECK(lorac_st_count(out) == m->n_w, "merged file has %d tensors, model %d", lorac_st_count(out), m->n_w);
            CHECK(!m->cfg.tied || !lorac_st_find(out, "lm_head.weight"), "tied lm_head written twice");
            lorac_st_close(out);
        }
    }

    lorac_lora_unmerge(m);
    int ok = 1;
    for (int i = 0; i < m->n_w && ok; i++) ok = test_close(m->w[i].name, m->w[i].data, orig[i], m->w[i].n, 0, 1e-6);
    float *y_unmerged = logits(m, &b);
    compare_rows("unmerged logits vs LoRA logits", y_unmerged, y_lora, &b, V, 1e-4);
    free(y_unmerged);
    free(y_merged);
    free(y_lora);
    free_snapshot(orig, m->n_w);
    free_batch(&b);
    lorac_st_close(st);
    lorac_model_free(m);
}

/* b. split q|k|v adapters on GPT-2's fused c_attn, random nonzero B */
static void test_split_fused(void) {
    fprintf(stderr, "-- merge split q|k|v\n");
    lorac_model *m = NULL;
    lorac_st *st = NULL;
    CHECK_OK(lorac_model_load(test_src_path("tests/fixtures/models/tiny_gpt2"), &m));
    CHECK_OK(lorac_st_open(test_src_path("tests/fixtures/parity/tiny_gpt2_lm.safetensors"), &st));
    if (!m || !st) exit(1);
    batch b = read_batch(st);
    CHECK_OK(lorac_model_reserve(m, b.B, b.T));
    lorac_lora_config lc;
    lorac_lora_config_default(&lc);
    lc.r = 3;
    lc.alpha = 5;
    lc.split_fused = 1;
    strcpy(lc.targets[lc.n_targets++], "all-linear");
    CHECK_OK(lorac_lora_apply(m, &lc, NULL));
    const lorac_linear *qkv = lorac_model_find_linear(m, "transformer.h.0.attn.c_attn");
    CHECK(qkv && qkv->lora && qkv->lora->parts == 3, "c_attn is not split into 3 parts");
    lorac_rng rng;
    lorac_rng_seed(&rng, 7);
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].lora)
            for (size_t k = 0; k < m->lin[i].lora->B.n; k++) m->lin[i].lora->B.data[k] = 0.2f * (2 * lorac_rng_uniform(&rng) - 1);
    float *y_lora = logits(m, &b);
    CHECK_OK(lorac_lora_merge(m));
    float *y_merged = logits(m, &b);
    compare_rows("split merged vs unmerged", y_merged, y_lora, &b, m->cfg.vocab, 1e-4);
    free(y_merged);
    free(y_lora);
    free_batch(&b);
    lorac_st_close(st);
    lorac_model_free(m);
}

/* c. adapter directories written by PEFT's save_pretrained */
static void test_peft_adapter(const char *model_dir, const char *fixture, const char *adapter_dir, int n_targets) {
    fprintf(stderr, "-- PEFT adapter %s\n", adapter_dir);
    lorac_lora_config c;
    int n_classes = -1;
    CHECK_OK(lorac_adapter_read_config(test_src_path(adapter_dir), &c, &n_classes, NULL, 0));
    CHECK(c.r == 4 && c.alpha == 8 && c.n_targets == n_targets && n_classes == 0 && !c.split_fused,
          "config: r %d alpha %g targets %d classes %d", c.r, c.alpha, c.n_targets, n_classes);
    lorac_model *m = NULL;
    lorac_st *st = NULL;
    CHECK_OK(lorac_model_load(test_src_path(model_dir), &m));
    CHECK_OK(lorac_st_open(test_src_path(fixture), &st));
    if (!m || !st) exit(1);
    batch b = read_batch(st);
    CHECK_OK(lorac_model_reserve(m, b.B, b.T));
    CHECK_OK(lorac_adapter_load(m, test_src_path(adapter_dir), NULL));
    float *y = logits(m, &b), *want = test_st_f32(st, "logits_lora", NULL);
    compare_rows("logits with the PEFT adapter", y, want, &b, m->cfg.vocab, 1e-4);
    free(y);
    free(want);
    free_batch(&b);
    lorac_st_close(st);
    lorac_model_free(m);
}

/* d. PEFT adapters with everything in the mix (tests/ref/make_peft_mix_fixture.py):
 * lora_dropout 0.1 (off at inference), bias="lora_only", use_rslora and
 * modules_to_save (lm_head / the BERT classifier), each perturbed so that it
 * changes the output; logits of PeftModel in eval mode. */
static void test_peft_mix(const char *model_dir, const char *adapter_dir, int cls) {
    fprintf(stderr, "-- PEFT adapter with dropout, bias=lora_only, rsLoRA, modules_to_save: %s\n", adapter_dir);
    char ep[1200];
    lorac_model *m = NULL;
    lorac_st *st = NULL;
    lorac_lora_config c;
    CHECK_OK(lorac_model_load(test_src_path(model_dir), &m));
    CHECK_OK(lorac_st_open(lorac_path_join(ep, sizeof ep, test_src_path(adapter_dir), "expected.safetensors"), &st));
    if (!m || !st) exit(1);
    batch b = read_batch(st);
    CHECK_OK(lorac_adapter_load(m, test_src_path(adapter_dir), &c));
    CHECK(c.use_rslora && c.bias == LORAC_BIAS_LORA_ONLY && c.dropout > 0.09f && c.n_modules_to_save == 1,
          "config read as rslora %d bias %d dropout %g modules_to_save %d", c.use_rslora, c.bias, (double)c.dropout,
          c.n_modules_to_save);
    float *want = test_st_f32(st, "logits", NULL);
    if (cls) {
        CHECK_OK(lorac_model_forward(m, b.ids, b.mask, b.B, b.T, LORAC_FWD_CLS));
        test_close("classifier logits with the PEFT adapter", m->acts.cls_logits, want, (size_t)b.B * m->n_classes, 1e-4, 1e-5);
    } else {
        float *y = logits(m, &b);
        compare_rows("logits with the PEFT adapter", y, want, &b, m->cfg.vocab, 1e-4);
        free(y);
    }
    free(want);
    free_batch(&b);
    lorac_st_close(st);
    lorac_model_free(m);
}

/* e. config.json generated from m->cfg (the path a GGUF base takes) */
static void test_generated_config(const char *model_dir, const char *out_dir) {
    fprintf(stderr, "-- generated config.json (%s)\n", model_dir);
    lorac_model *base = NULL, *m = NULL, *r = NULL;
    CHECK_OK(lorac_model_load(test_src_path(model_dir), &base));
    if (!base) exit(1);
    CHECK_OK(lorac_model_create_random(&base->cfg, 11, &m));
    lorac_model_free(base);
    if (!m) exit(1);
    batch b = {1, 5, malloc(sizeof(int) * 5), NULL};
    for (int i = 0; i < 5; i++) b.ids[i] = 1 + 7 * i;
    CHECK_OK(lorac_model_save_merged(m, out_dir, NULL));
    CHECK_OK(lorac_model_load(out_dir, &r));
    if (r) {
        const lorac_config *a = &m->cfg, *c = &r->cfg;
        CHECK(a->arch == c->arch && a->dim == c->dim && a->n_layer == c->n_layer && a->n_head == c->n_head &&
                  a->n_kv_head == c->n_kv_head && a->head_dim == c->head_dim && a->ffn_dim == c->ffn_dim &&
                  a->vocab == c->vocab && a->n_ctx == c->n_ctx && a->tied == c->tied && a->norm_eps == c->norm_eps,
              "reloaded config differs from the saved model's");
        float *want = logits(m, &b), *got = logits(r, &b);
        test_close("reloaded random model", got, want, (size_t)5 * m->cfg.vocab, 1e-6, 1e-7);
        free(want);
        free(got);
        lorac_model_free(r);
    }
    free(b.ids);
    lorac_model_free(m);
}

int main(void) {
    char gpt2_out[1200], llama_out[1200];
    lorac_path_join(gpt2_out, sizeof gpt2_out, test_tmpdir(), "gpt2_merged");
    lorac_path_join(llama_out, sizeof llama_out, test_tmpdir(), "llama_merged");
    test_fixture_merge("tests/fixtures/models/tiny_gpt2", "tests/fixtures/parity/tiny_gpt2_lm.safetensors",
                       "transformer.h.0.attn.c_attn.weight", gpt2_out);
    test_fixture_merge("tests/fixtures/models/tiny_llama", "tests/fixtures/parity/tiny_llama_lm.safetensors",
                       "model.layers.0.self_attn.q_proj.weight", llama_out);
    test_split_fused();
    test_peft_adapter("tests/fixtures/models/tiny_gpt2", "tests/fixtures/parity/tiny_gpt2_lm.safetensors",
                      "tests/fixtures/parity/tiny_gpt2_peft_adapter", 3);
    test_peft_adapter("tests/fixtures/models/tiny_llama", "tests/fixtures/parity/tiny_llama_lm.safetensors",
                      "tests/fixtures/parity/tiny_llama_peft_adapter", 7);
    test_peft_mix("tests/fixtures/models/tiny_llama", "tests/fixtures/parity/peft_mix_llama", 0);
    test_peft_mix("tests/fixtures/models/tiny_bert", "tests/fixtures/parity/peft_mix_bert", 1);
    lorac_path_join(gpt2_out, sizeof gpt2_out, test_tmpdir(), "gpt2_random");
    lorac_path_join(llama_out, sizeof llama_out, test_tmpdir(), "llama_random");
    test_generated_config("tests/fixtures/models/tiny_gpt2", gpt2_out);
    test_generated_config("tests/fixtures/models/tiny_llama", llama_out);
    return test_summary("test_merge");
}
