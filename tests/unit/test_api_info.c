/* test_api_info.c - the public calls lorac info / modules are built on
 * (include/lorac.h): lorac_llm_apply_method (a method without a data set,
 * PEFT's task_type None), lorac_llm_module_target (what a config puts on
 * one module), lorac_llm_quantize_nf4 (QLoRA's base for a model made from
 * a config.json) and lorac_train_config_lora (a config's LoRA settings):
 *  - misuse answered by status codes and one-line messages naming the
 *    argument or field: NULL handles and pointers, wrong struct sizes, bad
 *    methods / lists / regexes / inits, unknown modules, calls in the wrong
 *    order (twice, after an adapter, fit without lorac_llm_prepare);
 *  - the per-module answers agree with what applying the config makes: the
 *    trainable count lorac_llm_get_info reports (tensors allocated by the
 *    library) equals the sum of the targeted modules' params, each module's
 *    LoRA rank is the predicted one, and the pairs' r / alpha / scale as
 *    lorac_llm_param lists them are the predicted ones;
 *  - task_type None: a head added with lorac_llm_add_head stays frozen under
 *    LoRA unless modules_to_save names it; "head" and "full" train what they
 *    say;
 *  - lorac_llm_quantize_nf4: the base is NF4 afterwards (embedding too, or
 *    not), and LoRA over it trains as many parameters as over fp32.
 * Runs on the tiny GPT-2 and Llama fixtures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorac.h"
#include "testutil.h"

static char gpt2_cfg[1024], llama_cfg[1024], tiny[1024], vocab[1024], sms[1024];

static lorac_llm *create(const char *cfg) {
    lorac_llm *llm = NULL;
    CHECK_OK(lorac_llm_create(cfg, &llm));
    return llm;
}

static lorac_train_config config(void) {
    lorac_train_config c;
    lorac_train_config_init(&c);
    return c;
}

static lorac_llm_info info(const lorac_llm *llm) {
    lorac_llm_info in = {.size = sizeof in};
    CHECK_OK(lorac_llm_get_info(llm, &in));
    return in;
}

/* The name of the token embedding's module: its parameter's name without ".weight". */
static void embedding_name(const lorac_llm *llm, char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; i < lorac_llm_param_count(llm); i++) {
        lorac_llm_param_info p = {.size = sizeof p};
        CHECK_OK(lorac_llm_param(llm, i, &p));
        if (p.kind == LORAC_PARAM_BASE && p.on_embedding) {
            snprintf(buf, n, "%.*s", (int)strlen(p.name) - 7, p.name);
            return;
        }
    }
}

static void misuse(void) {
    lorac_train_config c = config();
    CHECK_ERR(lorac_llm_apply_method(NULL, &c), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_quantize_nf4(NULL, 0), LORAC_ERR_ARG, "llm");
    lorac_llm_target_info t = {.size = sizeof t};
    CHECK_ERR(lorac_llm_module_target(NULL, &c, "x", &t), LORAC_ERR_ARG, "llm");
    lorac_train_config_lora_info li = {.size = sizeof li};
    CHECK_ERR(lorac_train_config_lora(NULL, &li), LORAC_ERR_ARG, "c is NULL");
    CHECK_ERR(lorac_train_config_lora(&c, NULL), LORAC_ERR_ARG, "out is NULL");
    lorac_train_config_lora_info bad_li = {.size = 3};
    CHECK_ERR(lorac_train_config_lora(&c, &bad_li), LORAC_ERR_ARG, "size");

    lorac_llm *llm = create(gpt2_cfg);
    if (!llm) return;
    CHECK_ERR(lorac_llm_apply_method(llm, NULL), LORAC_ERR_ARG, "c is NULL");
    CHECK_ERR(lorac_llm_module_target(llm, NULL, "lm_head", &t), LORAC_ERR_ARG, "c is NULL");
    CHECK_ERR(lorac_llm_module_target(llm, &c, NULL, &t), LORAC_ERR_ARG, "module");
    CHECK_ERR(lorac_llm_module_target(llm, &c, "lm_head", NULL), LORAC_ERR_ARG, "out");
    lorac_llm_target_info bad_t = {.size = 5};
    CHECK_ERR(lorac_llm_module_target(llm, &c, "lm_head", &bad_t), LORAC_ERR_ARG, "size");
    CHECK_ERR(lorac_llm_module_target(llm, &c, "transformer.h.0.attn.nope", &t), LORAC_ERR_ARG, "transformer.h.0.attn.nope");
    CHECK_ERR(lorac_llm_module_target(llm, &c, "", &t), LORAC_ERR_ARG, "no module");
    lorac_train_config b = c;
    b.size = 1;
    CHECK_ERR(lorac_llm_apply_method(llm, &b), LORAC_ERR_ARG, "size");
    CHECK_ERR(lorac_llm_module_target(llm, &b, "lm_head", &t), LORAC_ERR_ARG, "size");
    b = c;
    b.method = "sideways";
    CHECK_ERR(lorac_llm_apply_method(llm, &b), LORAC_ERR_ARG, "sideways");
    CHECK_ERR(lorac_train_config_lora(&b, &li), LORAC_ERR_ARG, "sideways");
    b = c;
    b.target = ",";
    CHECK_ERR(lorac_llm_apply_method(llm, &b), LORAC_ERR_ARG, "target");
    b = c;
    b.target_regex = "(";
    CHECK_ERR(lorac_llm_apply_method(llm, &b), LORAC_ERR_ARG, "regex '(' does not compile");
    CHECK_ERR(lorac_llm_module_target(llm, &b, "lm_head", &t), LORAC_ERR_ARG, "does not compile");
    b = c;
    b.init = "bogus";
    CHECK_ERR(lorac_llm_module_target(llm, &b, "lm_head", &t), LORAC_ERR_ARG, "bogus");
    b = c;
    b.rank_pattern = "c_fc";
    CHECK_ERR(lorac_train_config_lora(&b, &li), LORAC_ERR_ARG, "rank_pattern");
    b = c;
    b.layers = "x";
    CHECK_ERR(lorac_llm_apply_method(llm, &b), LORAC_ERR_ARG, "layers_to_transform");
    b = c;
    b.method = "head";
    CHECK_ERR(lorac_llm_apply_method(llm, &b), LORAC_ERR_ARG, "lorac_llm_add_head");
    b = c;
    b.target = "nothing_here"; /* found out while applying: the llm is half prepared then (closed) */
    CHECK_ERR(lorac_llm_apply_method(llm, &b), LORAC_ERR_ARG, "no module matches");
    lorac_llm_close(llm);

    /* the checks above come before anything changes: the same llm still takes a method, then no second one */
    llm = create(gpt2_cfg);
    if (!llm) return;
    b = c;
    b.target_regex = "(";
    CHECK_ERR(lorac_llm_apply_method(llm, &b), LORAC_ERR_ARG, "does not compile");
    CHECK(info(llm).params_trainable == 0, "a refused config trains nothing");
    CHECK_OK(lorac_llm_apply_method(llm, &c));
    CHECK(info(llm).params_trainable > 0, "LoRA applied after a refused config");
    CHECK_ERR(lorac_llm_apply_method(llm, &c), LORAC_ERR_ARG, "already holds");
    CHECK_ERR(lorac_llm_quantize_nf4(llm, 0), LORAC_ERR_ARG, "holds an adapter");
    CHECK_ERR(lorac_llm_add_head(llm, 2, NULL, 1), LORAC_ERR_ARG, "holds adapters");
    lorac_llm_close(llm);

    /* a bf16 base is not quantized again */
    lorac_llm_opts o;
    lorac_llm_opts_init(&o);
    o.base = LORAC_BASE_BF16;
    o.no_tokenizer = 1;
    CHECK_OK(lorac_llm_open(tiny, &o, &llm));
    if (llm) CHECK_ERR(lorac_llm_quantize_nf4(llm, 0), LORAC_ERR_ARG, "bf16");
    lorac_llm_close(llm);
}

/* Apply c to a fresh llm from cfg and compare with lorac_llm_module_target's
 * predictions, module by module and in total. Returns the trainable count. */
static int64_t predicted_matches_applied(const char *cfg, const lorac_train_config *c, const char *what,
                                         int expect_embedding) {
    lorac_llm *llm = create(cfg);
    if (!llm) return -1;
    const lorac_llm_info before = info(llm);
    lorac_llm_target_info pred[64];
    int64_t sum = 0;
    int targeted = 0;
    CHECK(before.n_modules <= 64, "%s: %d modules", what, before.n_modules);
    for (int i = 0; i < before.n_modules && i < 64; i++) {
        lorac_module_info mi;
        CHECK_OK(lorac_llm_module(llm, i, &mi));
        pred[i] = (lorac_llm_target_info){.size = sizeof pred[i]};
        CHECK_OK(lorac_llm_module_target(llm, c, mi.name, &pred[i]));
        CHECK(!pred[i].embedding, "%s: %s is no embedding", what, mi.name);
        sum += pred[i].params;
        targeted += pred[i].targeted;
    }
    char emb[128];
    embedding_name(llm, emb, sizeof emb);
    lorac_llm_target_info te = {.size = sizeof te};
    CHECK_OK(lorac_llm_module_target(llm, c, emb, &te));
    CHECK(te.embedding == 1 && te.targeted == expect_embedding && te.dora == 0, "%s: embedding %s targeted %d, want %d",
          what, emb, te.targeted, expect_embedding);
    sum += te.params;
    CHECK(targeted > 0, "%s: some module targeted", what);

    CHECK_OK(lorac_llm_apply_method(llm, c));
    const lorac_llm_info after = info(llm);
    CHECK(after.params_trainable == sum, "%s: trainable %lld, predicted %lld", what, (long long)after.params_trainable,
          (long long)sum);
    CHECK(after.params_all == before.params_all + sum, "%s: all params %lld = %lld + %lld", what,
          (long long)after.params_all, (long long)before.params_all, (long long)sum);
    for (int i = 0; i < after.n_modules && i < 64; i++) {
        lorac_module_info mi;
        CHECK_OK(lorac_llm_module(llm, i, &mi));
        CHECK(mi.lora_r == (pred[i].targeted ? pred[i].r : 0), "%s: %s has r %d, predicted %d", what, mi.name, mi.lora_r,
              pred[i].targeted ? pred[i].r : 0);
    }
    /* each pair's settings as lorac_llm_param lists them (its lora_A) */
    for (int k = 0; k < lorac_llm_param_count(llm); k++) {
        lorac_llm_param_info p = {.size = sizeof p};
        CHECK_OK(lorac_llm_param(llm, k, &p));
        if (p.kind != LORAC_PARAM_LORA_A) continue;
        const char *cut = strstr(p.name, p.on_embedding ? ".lora_embedding_A" : ".lora_A");
        char mod[256];
        snprintf(mod, sizeof mod, "%.*s", cut ? (int)(cut - p.name) : 0, p.name);
        lorac_llm_target_info t = {.size = sizeof t};
        CHECK_OK(lorac_llm_module_target(llm, c, mod, &t));
        CHECK(t.targeted && t.r == p.r && t.parts == p.parts && t.alpha == p.alpha && t.scale == p.scale,
              "%s: %s pair r %d x%d alpha %g scale %g, predicted r %d x%d alpha %g scale %g", what, mod, p.r, p.parts,
              (double)p.alpha, p.scale, t.r, t.parts, (double)t.alpha, t.scale);
    }
    lorac_llm_close(llm);
    return sum;
}

static void targets(void) {
    lorac_train_config c = config();
    /* all-linear on GPT-2: 4 Linears x 2 layers, r 8: (in + out) * 8 each */
    const int64_t all = predicted_matches_applied(gpt2_cfg, &c, "gpt2 all-linear", 0);
    const int64_t want = 2 * 8 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32));
    CHECK(all == want, "gpt2 all-linear: %lld trainable, by hand %lld", (long long)all, (long long)want);

    c.split_qkv = 1;
    c.dora = 1;
    c.rslora = 1;
    c.r = 4;
    c.alpha = 16;
    predicted_matches_applied(gpt2_cfg, &c, "gpt2 split_qkv + DoRA + rsLoRA", 0);

    c = config();
    c.target = "c_fc,transformer.wte,c_proj";
    c.rank_pattern = "c_fc=4,wte=2";
    c.alpha_pattern = "c_proj=32";
    predicted_matches_applied(gpt2_cfg, &c, "gpt2 patterns, embedding", 1);
    c.layers = "1"; /* the embedding is in no layer: layers_to_transform leaves it out */
    predicted_matches_applied(gpt2_cfg, &c, "gpt2 patterns, layers", 0);

    c = config();
    c.target_regex = "model\\.layers\\.0\\..*_proj";
    c.r = 2;
    predicted_matches_applied(llama_cfg, &c, "llama regex", 0);

    c = config();
    c.target = "all-linear,lm_head,model.embed_tokens";
    predicted_matches_applied(llama_cfg, &c, "llama all-linear + lm_head + embedding", 1);

    /* the answer for one module by hand: llama's layer-0 q_proj [32 -> 32] under a rank pattern */
    lorac_llm *llm = create(llama_cfg);
    if (!llm) return;
    c = config();
    c.target = "q_proj";
    c.rank_pattern = "layers.0.self_attn.q_proj=3";
    c.alpha = 6;
    lorac_llm_target_info t = {.size = sizeof t};
    CHECK_OK(lorac_llm_module_target(llm, &c, "model.layers.0.self_attn.q_proj", &t));
    CHECK(t.targeted && t.r == 3 && t.alpha == 6 && fabs(t.scale - 2.0) < 1e-6 && t.params == 3 * (32 + 32) && t.parts == 1,
          "q_proj: targeted %d r %d alpha %g scale %g params %lld", t.targeted, t.r, (double)t.alpha, t.scale,
          (long long)t.params);
    CHECK_OK(lorac_llm_module_target(llm, &c, "model.layers.1.self_attn.q_proj", &t));
    CHECK(t.targeted && t.r == 8, "layer-1 q_proj keeps r 8: %d", t.r);
    CHECK_OK(lorac_llm_module_target(llm, &c, "model.layers.0.self_attn.k_proj", &t));
    CHECK(!t.targeted && t.r == 0 && t.params == 0 && !t.embedding, "k_proj is not targeted");
    c.method = "full"; /* the method does not change the answer */
    CHECK_OK(lorac_llm_module_target(llm, &c, "model.layers.0.self_attn.q_proj", &t));
    CHECK(t.targeted && t.r == 3, "method full: same answer");
    lorac_llm_close(llm);
}

/* task_type None: what each method trains on a model with a head from lorac_llm_add_head. */
static void methods(void) {
    lorac_train_config c = config();
    lorac_llm *llm = create(gpt2_cfg);
    if (!llm) return;
    CHECK_OK(lorac_llm_add_head(llm, 3, NULL, 1));
    int head = -1;
    for (int i = 0; i < info(llm).n_modules; i++)
        if (lorac_llm_module_role(llm, i) == 2) head = i;
    CHECK(head >= 0, "the head is a module");
    CHECK_OK(lorac_llm_apply_method(llm, &c));
    lorac_module_info mi;
    CHECK_OK(lorac_llm_module(llm, head, &mi));
    CHECK(!mi.trainable && mi.lora_r == 0, "LoRA without data leaves the head frozen (task_type None)");
    lorac_llm_close(llm);

    llm = create(gpt2_cfg);
    if (!llm) return;
    CHECK_OK(lorac_llm_add_head(llm, 3, NULL, 1));
    c.modules_to_save = "score";
    CHECK_OK(lorac_llm_apply_method(llm, &c));
    CHECK_OK(lorac_llm_module(llm, head, &mi));
    CHECK(mi.trainable, "modules_to_save score trains the head");
    lorac_llm_close(llm);

    llm = create(gpt2_cfg);
    if (!llm) return;
    CHECK_OK(lorac_llm_add_head(llm, 3, NULL, 1));
    c = config();
    c.method = "head";
    CHECK_OK(lorac_llm_apply_method(llm, &c));
    CHECK(info(llm).params_trainable == 3 * 32, "head: trains the score head's 3 x 32 weights alone: %lld",
          (long long)info(llm).params_trainable);
    lorac_llm_close(llm);

    llm = create(gpt2_cfg);
    if (!llm) return;
    c.method = "full";
    CHECK_OK(lorac_llm_apply_method(llm, &c));
    lorac_llm_info in = info(llm);
    CHECK(in.params_trainable == in.params_all && in.params_all > 0, "full: %lld of %lld", (long long)in.params_trainable,
          (long long)in.params_all);
    lorac_llm_close(llm);

    /* no data set, no lorac_llm_fit: that needs lorac_llm_prepare */
    lorac_llm_opts o;
    lorac_llm_opts_init(&o);
    o.tokenizer = vocab;
    CHECK_OK(lorac_llm_open(tiny, &o, &llm));
    if (!llm) return;
    c = config();
    c.data.data = sms;
    CHECK_OK(lorac_llm_apply_method(llm, &c));
    lorac_data *d = NULL;
    CHECK_OK(lorac_data_load(llm, &c.data, 1, &d));
    if (d) CHECK_ERR(lorac_llm_fit(llm, &c, d, NULL), LORAC_ERR_ARG, "lorac_llm_prepare");
    lorac_data_free(d);
    lorac_llm_close(llm);
}

static void qlora_base(void) {
    lorac_llm *q = create(llama_cfg), *q_fp32emb = create(llama_cfg), *f = create(llama_cfg);
    if (!q || !q_fp32emb || !f) return;
    CHECK(info(q).base == LORAC_BASE_FP32 && info(q).quantized_linears == 0, "a created llm starts in fp32");
    CHECK_OK(lorac_llm_quantize_nf4(q, 0));
    CHECK_OK(lorac_llm_quantize_nf4(q_fp32emb, 1));
    const lorac_llm_info a = info(q), b = info(q_fp32emb);
    CHECK(a.base == LORAC_BASE_NF4 && a.quantized_linears > 0 && !strcmp(a.formats, "NF4") && !strcmp(a.embed_format, "NF4"),
          "quantized: base %d, %d Linears in %s, embedding %s", (int)a.base, a.quantized_linears, a.formats,
          a.embed_format);
    CHECK(b.base == LORAC_BASE_NF4 && b.quantized_linears == a.quantized_linears && !strcmp(b.embed_format, "fp32"),
          "embed_fp32: embedding %s", b.embed_format);
    CHECK(a.base_bytes < b.base_bytes && b.base_bytes < info(f).base_bytes, "bytes: %g < %g < %g", a.base_bytes,
          b.base_bytes, info(f).base_bytes);
    CHECK_OK(lorac_llm_quantize_nf4(q_fp32emb, 1)); /* again: nothing left to do */
    CHECK(!strcmp(info(q_fp32emb).embed_format, "fp32"), "a second call keeps the fp32 embedding");
    lorac_train_config c = config();
    CHECK_OK(lorac_llm_apply_method(q, &c)); /* QLoRA */
    CHECK_OK(lorac_llm_apply_method(f, &c)); /* LoRA */
    CHECK(info(q).params_trainable == info(f).params_trainable && info(q).params_trainable > 0,
          "QLoRA trains %lld, LoRA %lld", (long long)info(q).params_trainable, (long long)info(f).params_trainable);
    CHECK(!strcmp(info(q).embed_format, "NF4"), "QLoRA's base keeps its NF4 embedding");
    lorac_llm_close(q);
    lorac_llm_close(q_fp32emb);
    lorac_llm_close(f);
}

static void lora_settings(void) {
    lorac_train_config c = config();
    lorac_train_config_lora_info li = {.size = sizeof li};
    CHECK_OK(lorac_train_config_lora(&c, &li));
    CHECK(li.size == sizeof li && li.r == 8 && li.alpha == 8 && li.default_init && !strcmp(li.init, "true") &&
              !strcmp(li.bias, "none") && li.n_targets == 1 && !li.dora && !li.n_rank_pattern,
          "defaults: r %d alpha %g init %s bias %s targets %d", li.r, (double)li.alpha, li.init, li.bias, li.n_targets);
    c.r = 16;
    c.alpha = 0;
    c.init = "pissa_niter_04";
    c.bias = "lora_only";
    c.dora = 1;
    c.target = "q_proj, v_proj";
    c.modules_to_save = "score";
    c.layers = "0,2,3";
    c.rank_pattern = "q_proj=4,v_proj=2";
    c.alpha_pattern = "v_proj=1";
    c.method = "last-layers:2";
    CHECK_OK(lorac_train_config_lora(&c, &li));
    CHECK(li.r == 16 && li.alpha == 16 && !li.default_init && !strcmp(li.init, "pissa_niter_4") &&
              !strcmp(li.bias, "lora_only") && li.dora && li.n_targets == 2 && li.n_modules_to_save == 1 &&
              li.n_layers == 3 && li.n_rank_pattern == 2 && li.n_alpha_pattern == 1,
          "read: r %d alpha %g init %s bias %s dora %d targets %d mts %d layers %d patterns %d/%d", li.r, (double)li.alpha,
          li.init, li.bias, li.dora, li.n_targets, li.n_modules_to_save, li.n_layers, li.n_rank_pattern,
          li.n_alpha_pattern);
    c.target_regex = ".*q_proj";
    CHECK_OK(lorac_train_config_lora(&c, &li));
    CHECK(li.n_targets == 0, "target_regex: no target names (%d)", li.n_targets);
}

int main(void) {
    snprintf(gpt2_cfg, sizeof gpt2_cfg, "%s", test_src_path("tests/fixtures/models/tiny_gpt2/config.json"));
    snprintf(llama_cfg, sizeof llama_cfg, "%s", test_src_path("tests/fixtures/models/tiny_llama/config.json"));
    snprintf(tiny, sizeof tiny, "%s", test_src_path("tests/fixtures/models/tiny_gpt2"));
    test_write_sms_fixture(test_tmpdir(), vocab, sms, sizeof vocab);
    misuse();
    targets();
    methods();
    qlora_base();
    lora_settings();
    return test_summary("test_api_info");
}
