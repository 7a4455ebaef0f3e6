/* test_parity_archs - the newer decoder architectures against transformers +
 * PEFT (issue 14): tiny random Qwen2, Qwen3, Llama 3 (llama3 RoPE scaling),
 * Mistral (sliding window), Gemma 3 (text), Gemma 2 (attention and final
 * logit soft-capping, alternating sliding / full layers) and Phi-3
 * (fused qkv_proj / gate_up_proj) written by tests/ref/make_arch_fixtures.py
 * (tests/ref/README.md says what each one exercises), checked exactly like
 * test_parity's fixtures (tests/parity_common.c: base logits, LoRA logits and
 * loss, every LoRA gradient, 5 AdamW steps, cls head for qwen2 / gemma3);
 * and the real Qwen2.5-Coder-0.5B / Gemma-3-270M Q4_K_M GGUFs (fetched by
 * scripts/fetch-models; skipped when absent) against transformers' logits of
 * the same files: the last position's full logits and the reference top-20
 * at every position.
 *
 * LORAC_PARITY_ARCHS=qwen2,gemma3 (a comma list of the names below, gguf
 * for the two real models) runs only those; unset runs all. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "parity_common.h"
#include "testutil.h"

static int enabled(const char *name) {
    const char *sel = getenv("LORAC_PARITY_ARCHS");
    if (!sel || !*sel) return 1;
    const size_t n = strlen(name);
    for (const char *p = sel; (p = strstr(p, name)) != NULL; p += n)
        if ((p == sel || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}

static void arch(const char *name, int with_cls) {
    if (!enabled(name)) return;
    char model[256], lm[256], cls[256];
    snprintf(model, sizeof model, "tests/fixtures/models/tiny_%s", name);
    snprintf(lm, sizeof lm, "tests/fixtures/parity/tiny_%s_lm.safetensors", name);
    snprintf(cls, sizeof cls, "tests/fixtures/parity/tiny_%s_cls.safetensors", name);
    parity_run_fixture(model, lm, 0);
    if (with_cls) parity_run_fixture(model, cls, 1);
}

/* A real GGUF vs transformers' logits of the same file (one unpadded row). */
static void gguf_logits(const char *what, const char *cache_rel, const char *fixture) {
    if (!enabled("gguf")) return;
    fprintf(stderr, "-- %s (%s)\n", fixture, cache_rel);
    const char *path = test_cache_path(cache_rel);
    if (!lorac_file_exists(path)) {
        printf("test_parity_archs: %s skipped (%s not found; run scripts/fetch-models)\n", what, path);
        return;
    }
    lorac_model *m = NULL;
    lorac_st *st = NULL;
    const lorac_status ls = lorac_model_load(path, &m);
    CHECK(ls == LORAC_OK, "%s: lorac_model_load(%s) -> %s", what, cache_rel, lorac_last_error());
    CHECK_OK(lorac_st_open(test_src_path(fixture), &st));
    if (!m || !st) {
        if (st) lorac_st_close(st);
        if (m) lorac_model_free(m);
        return;
    }
    const lorac_tensor_desc *tl = test_st_need(st, "logits_last"), *tk = test_st_need(st, "topk_ids");
    const int T = (int)test_st_need(st, "input_ids")->shape[0], V = (int)tl->shape[0], K = (int)tk->shape[1];
    CHECK(V == m->cfg.vocab, "%s: vocab %d, the fixture's %d", what, m->cfg.vocab, V);
    if (V != m->cfg.vocab) {
        lorac_st_close(st);
        lorac_model_free(m);
        return;
    }
    int *ids = test_st_ints(st, "input_ids"), *top = test_st_ints(st, "topk_ids");
    float *want = test_st_f32(st, "logits_last", NULL), *topv = test_st_f32(st, "topk_values", NULL);
    uint8_t *mask = malloc((size_t)T);
    memset(mask, 1, (size_t)T);
    CHECK_OK(lorac_model_forward(m, ids, mask, 1, T, LORAC_FWD_LM));
    char lab[256];
    snprintf(lab, sizeof lab, "%s: logits at the last position (t=%d)", what, T - 1);
    test_close(lab, m->acts.logits + (size_t)(T - 1) * V, want, (size_t)V, 1e-3, 1e-3);
    float *got = malloc(sizeof(float) * (size_t)T * K);
    int bad_argmax = 0;
    for (int t = 0; t < T; t++) {
        const float *row = m->acts.logits + (size_t)t * V;
        int am = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[am]) am = v;
        for (int k = 0; k < K; k++) got[t * K + k] = row[top[t * K + k]];
        /* a different argmax is only a failure when the reference's top-1 is not a near tie */
        if (am != top[t * K] && !(K > 1 && topv[t * K] - topv[t * K + 1] < 1e-3)) {
            fprintf(stderr, "   %s: t=%d argmax %d (%.5g), reference %d (%.5g)\n", what, t, am, (double)row[am], top[t * K],
                    (double)topv[t * K]);
            bad_argmax++;
        }
    }
    snprintf(lab, sizeof lab, "%s: logits of the reference top-%d ids at every position (element = t*%d + k)", what, K, K);
    test_close(lab, got, topv, (size_t)T * K, 1e-3, 1e-3);
    CHECK(bad_argmax == 0, "%s: argmax differs from transformers' at %d of %d positions", what, bad_argmax, T);
    free(got);
    free(ids);
    free(top);
    free(want);
    free(topv);
    free(mask);
    lorac_st_close(st);
    lorac_model_free(m);
}

int main(void) {
    arch("qwen2", 1);   /* q/k/v bias, GQA, tied embeddings */
    arch("qwen3", 0);   /* q_norm / k_norm per head, head_dim 8 != 24 / 4 */
    arch("llama3", 0);  /* rope_scaling llama3 (factor 8, original_max_position_embeddings 1024) */
    arch("mistral", 0); /* sliding_window 4 < T = 10 */
    arch("gemma3", 1);  /* sqrt(dim) embedding scale, (1 + w) norms, q/k norms, query_pre_attn_scalar,
                           sliding + full layers with their own RoPE theta, gelu_tanh, tied */
    arch("gemma2", 0);  /* attention scores and final logits soft-capped (50, 30), even layers sliding */
    arch("phi3", 0);    /* fused qkv_proj and gate_up_proj, LoRA on the fused modules */
    gguf_logits("Qwen2.5-Coder-0.5B-Instruct Q4_K_M", "models/qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                "tests/fixtures/parity/qwen25_gguf_logits.safetensors");
    gguf_logits("Gemma-3-270M Q4_K_M", "models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf",
                "tests/fixtures/parity/gemma3_gguf_logits.safetensors");
    return test_summary("test_parity_archs");
}
