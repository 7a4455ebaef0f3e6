/* test_kvcache - decoding over a KV cache (models/kvcache.h) against the
 * forward over whole sequences (lorac_model_forward), which the parity tests
 * check against PyTorch.
 *
 * For every decoder fixture in tests/fixtures/models (GPT-2, Llama, Llama 3
 * rope scaling, tied Llama, Qwen2, Qwen3 qk-norm, Mistral sliding window,
 * Gemma 2 soft-capping, Gemma 3 local/global layers, Phi-3 fused
 * projections), with an fp32, a bf16 and an NF4 base:
 *  a. a prompt prefilled, then 3 tokens appended in one call, then single
 *     steps: each call's logits equal the full forward's row for that
 *     position to 1e-4 (relative to the largest logit); the same with an
 *     unmerged adapter (random A and nonzero B on every block Linear) and
 *     with that adapter merged into the base;
 *  b. four sequences of different lengths in one cache (shuffled slots),
 *     with adapters X, none, Y, X: one prefill call, a call mixing a 2-token
 *     chunk with single steps, then single steps; every logit row equals the
 *     full forward of that sequence with its adapter (1e-4) and the same
 *     calls made for each sequence alone (1e-5);
 *  c. greedy ids with the cache == without it (lorac_generate_recompute),
 *     far enough to pass the context (the window slides) where it is short;
 *  d. lorac_generate_batch: three prompts with adapters X, none, Y, their
 *     own lengths, stop tokens and a callback that stops early, each equal
 *     to the same sequence generated alone.
 * Then the errors (lorac_model_decode's LORAC_ERR_ARG cases, with the cache
 * unchanged; an encoder: LORAC_ERR_UNSUPPORTED), stories260K (greedy with
 * and without the cache, base and with an unmerged adapter) and the
 * SmolLM2-135M GGUF (its Q4_1 / Q8_0 blocks kept: greedy ids with the
 * cache == without and decode-step logits against the full forward, on the
 * fp32-activation road and on the default int8 one at every ISA, AVX-512
 * VNNI, AVX2 and the scalar reference, and with an unmerged adapter), each
 * skipped when not fetched. The fixtures and stories260K have no GGML
 * blocks, so the activation road does not touch them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/tokenizer.h"
#include "lora/dora.h"
#include "lora/lora.h"
#include "lora/merge.h"
#include "models/generate.h"
#include "models/kvcache.h"
#include "models/model.h"
#include "ops/isa.h"
#include "quant/qmatmul.h"
#include "testutil.h"

static lorac_rng rng;


static void fill(float *x, size_t n, float s) {
    for (size_t i = 0; i < n; i++) x[i] = s * lorac_rng_normal(&rng);
}

/* ---- adapters -------------------------------------------------------------- */

/* Adapter X: r 4 on every block Linear (all-linear), attached as the model's own, B nonzero. */
static void attach_x(lorac_model *m) {
    lorac_lora_config c;
    lorac_lora_config_default(&c);
    c.r = 4;
    c.alpha = 8;
    strcpy(c.targets[0], "all-linear");
    c.n_targets = 1;
    CHECK_OK(lorac_lora_apply(m, &c, NULL));
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].lora) fill(m->lin[i].lora->B.data, m->lin[i].lora->B.n, 0.2f);
}

/* A table of the Linears' current pairs (NULL where none): what lorac_adapter_slot.lora holds. */
static lorac_lora **table_of(const lorac_model *m) {
    lorac_lora **t = calloc((size_t)m->n_lin, sizeof *t);
    for (int i = 0; i < m->n_lin; i++) t[i] = m->lin[i].lora;
    return t;
}

/* Adapter Y: rank 2, random A and B, on the Linears X adapts except the MLP's
 * down projection; every other one of them a DoRA pair (magnitudes moved off
 * the norms, so the rescaling matters). */
static lorac_lora **make_y(const lorac_model *m, const lorac_lora *const *x) {
    lorac_lora **t = calloc((size_t)m->n_lin, sizeof *t);
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        if (!x[i] || strstr(L->name, "down") || strstr(L->name, "mlp.c_proj")) continue;
        CHECK_OK(lorac_lora_new(L, 2, x[i]->parts, 3.0f, 1.5f, 0, 0, &t[i]));
        fill(t[i]->A.data, t[i]->A.n, 0.3f);
        fill(t[i]->B.data, t[i]->B.n, 0.3f);
        if (i % 2) continue;
        CHECK_OK(lorac_dora_attach(L, t[i], 0));
        for (size_t o = 0; o < t[i]->M.n; o++) t[i]->M.data[o] *= 1.0f + 0.5f * sinf((float)o);
    }
    return t;
}

static void free_table(const lorac_model *m, lorac_lora **t) {
    for (int i = 0; t && i < m->n_lin; i++) lorac_lora_free(t[i]);
    free(t);
}

/* The logits [T, V] of the full forward over ids with adapter table t (NULL: the base alone). */
static float *full_logits(lorac_model *m, const int *ids, int T, lorac_lora *const *t) {
    lorac_lora **own = table_of(m);
    for (int i = 0; i < m->n_lin; i++) m->lin[i].lora = t ? t[i] : NULL;
    float *out = malloc(sizeof(float) * (size_t)T * m->cfg.vocab);
    CHECK_OK(lorac_model_forward(m, ids, NULL, 1, T, LORAC_FWD_LM));
    memcpy(out, m->acts.logits, sizeof(float) * (size_t)T * m->cfg.vocab);
    for (int i = 0; i < m->n_lin; i++) m->lin[i].lora = own[i];
    free(own);
    return out;
}

static void random_ids(int *ids, int n, int vocab) {
    for (int i = 0; i < n; i++) ids[i] = 1 + (int)(lorac_rng_uniform(&rng) * (vocab - 1));
}

/* ---- a: one sequence, calls of several sizes --------------------------------- */

static void check_steps(const char *what, lorac_model *m) {
    const int V = m->cfg.vocab, T = 12;
    int ids[12];
    random_ids(ids, T, V);
    float *ref = full_logits(m, ids, T, NULL), *lg = malloc(sizeof(float) * V);
    lorac_lora **own = table_of(m);
    float *ref_own = full_logits(m, ids, T, own);
    lorac_kv *kv = NULL;
    CHECK_OK(lorac_kv_create(m, 2, T, &kv));
    /* the model's own adapter (adapters NULL), then the base alone through a table of NULLs */
    for (int pass = 0; pass < 2 && kv; pass++) {
        static lorac_lora *const *const no_adapter[1] = {NULL};
        lorac_lora *const *const *ad = pass ? no_adapter : NULL;
        const float *want = pass ? ref : ref_own;
        const int slot = pass, cuts[] = {0, 5, 8, 9, 10, 11, 12}; /* prefill 5, then 3, then single steps */
        double worst = 0;
        for (int c = 0; c + 1 < (int)(sizeof cuts / sizeof cuts[0]); c++) {
            const int offs[2] = {cuts[c], cuts[c + 1]};
            CHECK_OK(lorac_model_decode(m, kv, 1, &slot, ids, offs, ad, lg));
            worst = fmax(worst, test_rel_err(lg, want + (size_t)(cuts[c + 1] - 1) * V, (size_t)V));
        }
        CHECK(worst <= 1e-4 && lorac_kv_len(kv, slot) == T, "%s, %s: decode logits vs full forward: rel err %.3g, %d cached",
              what, pass ? "base alone" : "own adapter", worst, lorac_kv_len(kv, slot));
    }
    lorac_kv_free(kv);
    free(own), free(ref), free(ref_own), free(lg);
}

/* ---- b: a batch of sequences with different adapters ---------------------------- */

enum { NSEQ = 4, SEQ_T = 13 };

/* Tokens sequence i appends in call c: its prompt, then sequence 1 two and
 * the others one, then one each. */
static int batch_count(int c, int i) {
    static const int plen[NSEQ] = {4, 6, 1, 3}; /* 14 rows: see check_model on bf16 */
    return c == 0 ? plen[i] : (c == 1 && i == 1) ? 2 : 1;
}

static void check_batch(const char *what, lorac_model *m, lorac_lora *const *x, lorac_lora *const *y) {
    enum { CALLS = 4 };
    const int V = m->cfg.vocab;
    lorac_lora *const *tabs[NSEQ] = {x, NULL, y, x};
    const int slots[NSEQ] = {2, 0, 3, 1};
    int ids[NSEQ][SEQ_T];
    float *ref[NSEQ], *alone_lg = malloc(sizeof(float) * NSEQ * CALLS * V), *lg = malloc(sizeof(float) * NSEQ * V);
    lorac_kv *kv = NULL, *alone = NULL;
    CHECK_OK(lorac_kv_create(m, 5, 16, &kv));
    CHECK_OK(lorac_kv_create(m, 1, 16, &alone));
    /* each sequence alone in its own cache, and its full forward */
    for (int i = 0; i < NSEQ && alone; i++) {
        random_ids(ids[i], SEQ_T, V);
        ref[i] = full_logits(m, ids[i], SEQ_T, tabs[i]);
        lorac_kv_reset(alone, 0);
        for (int c = 0, done = 0, slot = 0; c < CALLS; c++) {
            const int o[2] = {done, done + batch_count(c, i)};
            CHECK_OK(lorac_model_decode(m, alone, 1, &slot, ids[i], o, &tabs[i], alone_lg + ((size_t)i * CALLS + c) * V));
            done = o[1];
        }
    }
    /* all four together */
    int have[NSEQ] = {0}, flat[NSEQ * SEQ_T], offs[NSEQ + 1];
    double e_full = 0, e_alone = 0;
    for (int c = 0; c < CALLS && kv; c++) {
        offs[0] = 0;
        for (int i = 0; i < NSEQ; i++) {
            offs[i + 1] = offs[i] + batch_count(c, i);
            memcpy(flat + offs[i], ids[i] + have[i], sizeof(int) * (size_t)batch_count(c, i));
        }
        CHECK_OK(lorac_model_decode(m, kv, NSEQ, slots, flat, offs, tabs, lg));
        for (int i = 0; i < NSEQ; i++) {
            have[i] += batch_count(c, i);
            e_full = fmax(e_full, test_rel_err(lg + (size_t)i * V, ref[i] + (size_t)(have[i] - 1) * V, (size_t)V));
            e_alone = fmax(e_alone, test_rel_err(lg + (size_t)i * V, alone_lg + ((size_t)i * CALLS + c) * V, (size_t)V));
        }
    }
    int lens_ok = kv && lorac_kv_len(kv, 4) == 0;
    for (int i = 0; i < NSEQ && kv; i++) lens_ok &= lorac_kv_len(kv, slots[i]) == have[i];
    CHECK(e_full <= 1e-4 && e_alone <= 1e-5 && lens_ok,
          "%s: batch of 4 (adapters X, none, Y, X): vs full forward rel err %.3g, vs each alone %.3g, lengths %s", what,
          e_full, e_alone, lens_ok ? "ok" : "wrong");
    lorac_kv_free(kv);
    lorac_kv_free(alone);
    for (int i = 0; i < NSEQ && alone; i++) free(ref[i]);
    free(lg), free(alone_lg);
}

/* ---- c, d: generation ------------------------------------------------------------ */

static int same_ids(const int *a, int na, const int *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, sizeof(int) * (size_t)na) == 0);
}

static void check_greedy(const char *what, lorac_model *m, int n_prompt, int max_new) {
    int prompt[64];
    random_ids(prompt, n_prompt, m->cfg.vocab);
    lorac_gen_opts o;
    lorac_gen_opts_default(&o);
    o.max_new = max_new;
    int *out = NULL, n_out = 0;
    CHECK_OK(lorac_generate(m, prompt, n_prompt, &o, NULL, NULL, &out, &n_out));
    lorac_gen_seq r = {.prompt = prompt, .n = n_prompt, .opts = &o};
    CHECK_OK(lorac_generate_recompute(m, &r));
    CHECK(n_out == max_new && same_ids(out, n_out, r.out, r.n_out),
          "%s: greedy with the cache (%d tokens) != without (%d tokens)", what, n_out, r.n_out);
    free(out);
    free(r.out);
}

static int stop_after_4(int id, void *ctx) {
    (void)id;
    return ++*(int *)ctx >= 4;
}

static void check_gen_batch(const char *what, lorac_model *m, lorac_lora *const *x, lorac_lora *const *y) {
    lorac_lora *const *tabs[3] = {x, NULL, y};
    int prompts[3][8], calls = 0, calls1 = 0;
    const int plen[3] = {3, 8, 1};
    lorac_gen_opts o[3];
    for (int i = 0; i < 3; i++) {
        random_ids(prompts[i], plen[i], m->cfg.vocab);
        lorac_gen_opts_default(&o[i]);
        o[i].max_new = 6 + 4 * i;
    }
    /* sequence 1 stops at the token its third step makes alone */
    lorac_gen_seq probe = {.prompt = prompts[1], .n = plen[1], .opts = &o[1]};
    CHECK_OK(lorac_generate_batch(m, &probe, 1, &tabs[1]));
    if (probe.n_out >= 3) o[1].stop[o[1].n_stop++] = probe.out[2];
    free(probe.out);
    lorac_gen_seq s[3], one[3];
    for (int i = 0; i < 3; i++) {
        s[i] = (lorac_gen_seq){.prompt = prompts[i], .n = plen[i], .opts = &o[i]};
        one[i] = s[i];
    }
    s[2].fn = one[2].fn = stop_after_4;
    s[2].ctx = &calls;
    one[2].ctx = &calls1;
    CHECK_OK(lorac_generate_batch(m, s, 3, tabs));
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        CHECK_OK(lorac_generate_batch(m, &one[i], 1, &tabs[i]));
        ok &= same_ids(s[i].out, s[i].n_out, one[i].out, one[i].n_out);
    }
    CHECK(ok && s[0].n_out == 6 && s[1].n_out <= 2 && s[2].n_out == 4 && calls == 4,
          "%s: generate_batch: %d %d %d tokens (want 6, <= 2, 4; %d callbacks), %s each alone", what, s[0].n_out,
          s[1].n_out, s[2].n_out, calls, ok ? "equal to" : "NOT equal to");
    for (int i = 0; i < 3; i++) free(s[i].out), free(one[i].out);
}

/* ---- per fixture ------------------------------------------------------------------ */

/* bf16: lorac_qlinear_fwd rounds the activations to bf16 too when it takes
 * oneDNN's native bf16 GEMM (16 rows or more, on CPUs with AVX512-BF16), so
 * a bf16 model's results depend on the row count of each call. Its checks
 * keep every call under 16 rows (the fp32 and NF4 runs go past the context). */
static void check_model(const char *name, lorac_model *m, int short_calls) {
    char what[128];
    snprintf(what, sizeof what, "%s base", name);
    check_steps(what, m);
    const int n_ctx = m->cfg.n_ctx, max_new = short_calls ? 9 : n_ctx <= 64 ? n_ctx + 6 : 24;
    check_greedy(what, m, 6, max_new);
    attach_x(m);
    lorac_lora **x = table_of(m), **y = make_y(m, (const lorac_lora *const *)x);
    snprintf(what, sizeof what, "%s + adapter", name);
    check_steps(what, m);
    check_batch(what, m, x, y);
    check_greedy(what, m, 6, max_new);
    check_gen_batch(what, m, x, y);
    free_table(m, y);
    free(x);
}

static void check_fixture(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/models/%s", name);
    static const char *bases[] = {"fp32", "bf16", "nf4"};
    const double t0 = lorac_now();
    for (int b = 0; b < 3; b++) {
        lorac_model *m = NULL;
        CHECK_OK(lorac_model_load(test_src_path(path), &m));
        if (!m) return;
        if (b > 0) CHECK_OK(lorac_model_quantize(m, b == 1 ? LORAC_QF_BF16 : LORAC_QF_NF4));
        char what[64];
        snprintf(what, sizeof what, "%s %s", name, bases[b]);
        check_model(what, m, b == 1);
        if (b == 0) { /* the adapter merged into the base: decoding reads it there */
            CHECK_OK(lorac_lora_merge(m));
            snprintf(what, sizeof what, "%s merged", name);
            check_steps(what, m);
        }
        lorac_model_free(m);
    }
    printf("%s: decode == full forward (fp32, bf16, nf4; adapters unmerged, merged, batched); greedy equal (%.1f s)\n", name,
           lorac_now() - t0);
}

/* ---- errors ------------------------------------------------------------------------ */

static void check_errors(void) {
    lorac_model *m = NULL, *other = NULL, *bert = NULL;
    CHECK_OK(lorac_model_load(test_src_path("tests/fixtures/models/tiny_llama"), &m));
    CHECK_OK(lorac_model_load(test_src_path("tests/fixtures/models/tiny_gpt2"), &other));
    CHECK_OK(lorac_model_load(test_src_path("tests/fixtures/models/tiny_bert"), &bert));
    if (!m || !other || !bert) return;
    lorac_kv *kv = NULL;
    CHECK(lorac_kv_create(bert, 1, 8, &kv) == LORAC_ERR_UNSUPPORTED && !kv, "an encoder is not decoded");
    CHECK(lorac_kv_create(m, 0, 8, &kv) == LORAC_ERR_ARG, "no slots");
    CHECK(lorac_kv_create(m, 1, m->cfg.n_ctx + 1, &kv) == LORAC_ERR_ARG, "max_len past n_ctx");
    CHECK_OK(lorac_kv_create(m, 2, 8, &kv));
    if (!kv) return;
    CHECK(lorac_kv_slots(kv) == 2 && lorac_kv_max_len(kv) == 8 && lorac_kv_len(kv, 1) == 0, "cache shape");
    float *lg = malloc(sizeof(float) * 2 * m->cfg.vocab);
    const int ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, one[2] = {0, 1}, two[3] = {0, 2, 4};
    const int s0 = 0, s_bad = 2, s_neg = -1, twice[2] = {1, 1};
    CHECK_OK(lorac_model_decode(m, kv, 1, &s0, ids, one, NULL, lg));
    CHECK(lorac_model_decode(m, kv, 1, &s_bad, ids, one, NULL, lg) == LORAC_ERR_ARG, "slot out of range");
    CHECK(lorac_model_decode(m, kv, 1, &s_neg, ids, one, NULL, lg) == LORAC_ERR_ARG, "negative slot");
    CHECK(lorac_model_decode(m, kv, 2, twice, ids, two, NULL, lg) == LORAC_ERR_ARG, "slot named twice");
    CHECK(lorac_model_decode(m, kv, 0, &s0, ids, one, NULL, lg) == LORAC_ERR_ARG, "n = 0");
    const int past[2] = {0, 8}; /* 1 cached + 8 > 8 */
    CHECK(lorac_model_decode(m, kv, 1, &s0, ids, past, NULL, lg) == LORAC_ERR_ARG, "past max_len");
    const int empty[2] = {1, 1};
    CHECK(lorac_model_decode(m, kv, 1, &s0, ids, empty, NULL, lg) == LORAC_ERR_ARG, "no token");
    const int bad_id[1] = {m->cfg.vocab};
    CHECK(lorac_model_decode(m, kv, 1, &s0, bad_id, one, NULL, lg) == LORAC_ERR_ARG, "id outside the vocabulary");
    CHECK(lorac_model_decode(other, kv, 1, &s0, ids, one, NULL, lg) == LORAC_ERR_ARG, "another model's cache");
    CHECK(lorac_kv_len(kv, 0) == 1 && lorac_kv_len(kv, 1) == 0, "a refused call leaves the cache as it was: %d %d",
          lorac_kv_len(kv, 0), lorac_kv_len(kv, 1));
    const int fill7[2] = {0, 7};
    CHECK_OK(lorac_model_decode(m, kv, 1, &s0, ids, fill7, NULL, lg)); /* exactly full */
    lorac_kv_reset(kv, 0);
    CHECK(lorac_kv_len(kv, 0) == 0, "reset empties the slot");
    lorac_kv_free(kv);
    lorac_kv_free(NULL);
    free(lg);
    lorac_model_free(m), lorac_model_free(other), lorac_model_free(bert);
}

/* ---- real checkpoints --------------------------------------------------------------- */

static void check_stories(void) {
    const char *dir = test_data_path("stories260K/hf");
    if (!lorac_file_exists(dir)) {
        printf("stories260K: skipped (%s not found)\n", dir);
        return;
    }
    lorac_model *m = NULL;
    CHECK_OK(lorac_model_load(dir, &m));
    if (!m) return;
    check_greedy("stories260K", m, 1, 40);
    attach_x(m);
    check_greedy("stories260K + adapter", m, 4, 40);
    lorac_model_free(m);
    printf("stories260K: greedy with the cache == without, base and with an unmerged adapter\n");
}

/* SmolLM2 with its blocks kept as the default base of a .gguf
 * (LORAC_BASE_AUTO) loads it; its head is tied (the Q8_0 embedding). On
 * activation road a: greedy ids with the cache == without, and the logits of
 * a decode step against the full forward over prompt + generated. Returns
 * the greedy ids. */
static int *smollm2_road(lorac_model *m, const int *ids, int n, lorac_qact a, double tol, const char *what) {
    lorac_qact_force(a);
    lorac_gen_opts o;
    lorac_gen_opts_default(&o);
    o.max_new = 5;
    int *out = NULL, n_out = 0;
    CHECK_OK(lorac_generate(m, ids, n, &o, NULL, NULL, &out, &n_out));
    lorac_gen_seq r = {.prompt = ids, .n = n, .opts = &o};
    CHECK_OK(lorac_generate_recompute(m, &r));
    CHECK(n_out == o.max_new && same_ids(out, n_out, r.out, r.n_out), "%s: greedy with the cache != without", what);
    free(r.out);
    if (n_out != o.max_new) return out;
    int seq[64];
    memcpy(seq, ids, sizeof(int) * n);
    memcpy(seq + n, out, sizeof(int) * n_out);
    const int T = n + n_out, V = m->cfg.vocab, slot = 0, pre[2] = {0, T - 1}, last[2] = {T - 1, T};
    float *ref = full_logits(m, seq, T, NULL), *lg = malloc(sizeof(float) * V);
    lorac_kv *kv = NULL;
    CHECK_OK(lorac_kv_create(m, 1, T, &kv));
    CHECK_OK(lorac_model_decode(m, kv, 1, &slot, seq, pre, NULL, lg));
    CHECK_OK(lorac_model_decode(m, kv, 1, &slot, seq, last, NULL, lg));
    const double e = test_rel_err(lg, ref + (size_t)(T - 1) * V, (size_t)V);
    CHECK(e <= tol, "%s: decode step logits vs full forward: rel err %.3g", what, e);
    printf("%s: greedy with the cache == without (%d tokens); decode step vs full forward rel err %.2g\n", what, n_out, e);
    lorac_kv_free(kv);
    free(ref), free(lg);
    return out;
}

/* SmolLM2 on both activation roads. fp32 activations: the decode step equals
 * the full forward to rounding (1e-4). The default int8 activations: the
 * full forward's Linears take the int8 road at every row count as the
 * cache's do, a row of x rounded to the same levels whatever rows come with
 * it (quant/qmatmul.h, lorac_qlinear_fwd_infer), so greedy ids with the
 * cache equal those without at every ISA, with and without an unmerged
 * adapter. Their logits can differ only where attention's different
 * summation order moves an activation across a rounding boundary of its
 * 8-bit level (one level of one element of a group of 32): held to the
 * fp32 road's 1e-4 (0 seen, bit for bit, at every ISA). test_qlora (e)
 * compares this model with its fp32 load. */
static void check_smollm2(void) {
    const char *path = test_cache_path("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!lorac_file_exists(path)) {
        printf("SmolLM2: skipped (%s not found)\n", path);
        return;
    }
    int *ids = NULL, n = 0;
    lorac_model *m = NULL;
    CHECK_OK(lorac_model_load_quantized(path, LORAC_QLOAD_KEEP | LORAC_QLOAD_KEEP_HEAD, &m));
    if (!m) return;
    lorac_tokenizer *tok = NULL;
    /* about 20 tokens: the full forward's Linears run 20-25 rows at once */
    const char *text = "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is";
    CHECK_OK(lorac_tokenizer_from_gguf(m->gguf, &tok));
    if (tok) CHECK_OK(lorac_tokenizer_encode(tok, text, strlen(text), 1, &ids, &n));
    lorac_tokenizer_free(tok);
    if (!ids) {
        lorac_model_free(m);
        return;
    }
    free(smollm2_road(m, ids, n, LORAC_QACT_F32, 1e-4, "SmolLM2 Q4_1 blocks kept, fp32 activations"));
    const lorac_isa best = lorac_isa_active();
    int *q8[3] = {NULL, NULL, NULL};
    for (int l = best; l >= LORAC_ISA_SCALAR; l--) {
        lorac_isa_force((lorac_isa)l);
        char what[96];
        snprintf(what, sizeof what, "SmolLM2 Q4_1 blocks kept, int8 activations, %s", lorac_isa_name((lorac_isa)l));
        q8[l] = smollm2_road(m, ids, n, LORAC_QACT_Q8, 1e-4, what);
        CHECK(q8[l] && q8[best] && same_ids(q8[l], 5, q8[best], 5), "%s: greedy ids differ from %s's", what,
              lorac_isa_name(best));
    }
    lorac_isa_force(best);
    attach_x(m);
    check_greedy("SmolLM2 + adapter, int8 activations", m, 20, 5);
    for (int l = 0; l < 3; l++) free(q8[l]);
    lorac_model_free(m);
    free(ids);
}

int main(void) {
    lorac_rng_seed(&rng, 5);
    static const char *fixtures[] = {"tiny_gpt2", "tiny_llama", "tiny_llama3", "tiny_llama_tied", "tiny_qwen2",
                                     "tiny_qwen3", "tiny_mistral", "tiny_gemma2", "tiny_gemma3", "tiny_phi3"};
    double t = lorac_now();
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) check_fixture(fixtures[i]);
    printf("fixtures: %.1f s\n", lorac_now() - t);
    check_errors();
    t = lorac_now();
    check_stories();
    printf("stories260K: %.1f s\n", lorac_now() - t);
    t = lorac_now();
    check_smollm2();
    printf("SmolLM2: %.1f s\n", lorac_now() - t);
    return test_summary("test_kvcache");
}
