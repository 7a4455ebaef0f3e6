/* test_smollm2 - the real SmolLM2-135M-Instruct Q4_1 GGUF (fetched by
 * scripts/fetch-models) against transformers loading the same file
 * (tests/ref/make_smollm2_fixture.py): GGUF metadata -> config, Q4_1/Q8_0
 * dequantization, llama.cpp's q/k row order undone, GQA, tied head. The
 * logits at each row's last real token must agree to 1e-3. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "testutil.h"

int main(void) {
    const char *path = test_cache_path("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!lorac_file_exists(path)) {
        printf("test_smollm2: skipped (%s not found; run scripts/fetch-models)\n", path);
        return test_summary("test_smollm2");
    }
    lorac_model *m = NULL;
    lorac_st *st = NULL;
    CHECK_OK(lorac_model_load(path, &m));
    CHECK_OK(lorac_st_open(test_src_path("tests/fixtures/parity/smollm2_logits.safetensors"), &st));
    if (!m || !st) return test_summary("test_smollm2");
    CHECK(m->cfg.n_layer == 30 && m->cfg.dim == 576 && m->cfg.n_head == 9 && m->cfg.n_kv_head == 3 && m->cfg.tied,
          "config: %d layers, dim %d, heads %d/%d", m->cfg.n_layer, m->cfg.dim, m->cfg.n_head, m->cfg.n_kv_head);
    const lorac_tensor_desc *ti = lorac_st_find(st, "input_ids"), *tm = lorac_st_find(st, "attention_mask"),
                            *tl = lorac_st_find(st, "logits_last");
    const int B = (int)ti->shape[0], T = (int)ti->shape[1], V = (int)tl->shape[1];
    int *ids = malloc(sizeof(int) * B * T);
    uint8_t *mask = malloc((size_t)B * T);
    for (int i = 0; i < B * T; i++) {
        int64_t a, b; /* safetensors does not align data: copy values out */
        memcpy(&a, (const char *)ti->data + 8 * i, 8);
        memcpy(&b, (const char *)tm->data + 8 * i, 8);
        ids[i] = (int)a;
        mask[i] = (uint8_t)b;
    }
    CHECK(V == m->cfg.vocab, "vocab %d vs %d", V, m->cfg.vocab);
    CHECK_OK(lorac_model_forward(m, ids, mask, B, T, LORAC_FWD_LM_LAST));
    float *want = malloc(sizeof(float) * (size_t)B * V);
    memcpy(want, tl->data, sizeof(float) * (size_t)B * V);
    for (int b = 0; b < B; b++) {
        const float *got = m->acts.logits + (size_t)b * V, *w = want + (size_t)b * V;
        test_close("SmolLM2 logits at the last real token", got, w, (size_t)V, 1e-3, 1e-3);
        int ga = 0, wa = 0;
        for (int v = 1; v < V; v++) {
            if (got[v] > got[ga]) ga = v;
            if (w[v] > w[wa]) wa = v;
        }
        CHECK(ga == wa, "row %d: argmax %d vs reference %d", b, ga, wa);
    }
    free(want);
    free(ids);
    free(mask);
    lorac_st_close(st);
    lorac_model_free(m);
    return test_summary("test_smollm2");
}
