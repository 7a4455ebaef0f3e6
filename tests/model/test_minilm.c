/* test_minilm - the real all-MiniLM-L6-v2 (sentence-transformers, BERT
 * family; fetched by scripts/fetch-models) against transformers' BertModel
 * on the same files (tests/ref/make_minilm_fixture.py):
 *  - lorac's WordPiece ids for the fixture's sentences equal
 *    BertTokenizerFast's (padded batch, [CLS] ... [SEP]);
 *  - the last hidden state of every row agrees to 1e-4;
 *  - the mean-pooled sentence embedding (the checkpoint's own pooling, read
 *    from its modules.json) agrees to 1e-4. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "models/model.h"
#include "testutil.h"

int main(void) {
    const char *dir = test_cache_path("models/all-minilm-l6-v2");
    char probe[1200];
    if (!lorac_file_exists(lorac_path_join(probe, sizeof probe, dir, "model.safetensors"))) {
        printf("test_minilm: skipped (%s not found; run scripts/fetch-models)\n", probe);
        return test_summary("test_minilm");
    }
    lorac_model *m = NULL;
    lorac_tokenizer *tok = NULL;
    lorac_st *st = NULL;
    CHECK_OK(lorac_model_load(dir, &m));
    CHECK_OK(lorac_tokenizer_load(dir, &tok));
    CHECK_OK(lorac_st_open(test_src_path("tests/fixtures/parity/minilm_hidden.safetensors"), &st));
    if (!m || !tok || !st) return test_summary("test_minilm");
    CHECK(m->cfg.arch == LORAC_ARCH_BERT && m->cfg.n_layer == 6 && m->cfg.dim == 384 && m->cfg.pool == LORAC_POOL_MEAN,
          "config: arch %d, %d layers, dim %d, pooling %d", m->cfg.arch, m->cfg.n_layer, m->cfg.dim, m->cfg.pool);
    const lorac_tensor_desc *ti = test_st_need(st, "input_ids");
    const int B = (int)ti->shape[0], T = (int)ti->shape[1], C = m->cfg.dim;
    int *ids = test_st_ints(st, "input_ids"), *am = test_st_ints(st, "attention_mask");
    uint8_t *mask = malloc((size_t)B * T);
    for (int i = 0; i < B * T; i++) mask[i] = (uint8_t)am[i];

    /* tokenizer: the unpadded ids of each sentence */
    cJSON *sents = cJSON_Parse(lorac_st_metadata(st, "sentences"));
    CHECK(cJSON_GetArraySize(sents) == B, "fixture has %d sentences for %d rows", cJSON_GetArraySize(sents), B);
    for (int b = 0; b < B && b < cJSON_GetArraySize(sents); b++) {
        const char *s = cJSON_GetArrayItem(sents, b)->valuestring;
        int *got, n, want_n = 0;
        CHECK_OK(lorac_tokenizer_encode(tok, s, strlen(s), 1, &got, &n));
        for (int t = 0; t < T; t++) want_n += mask[b * T + t];
        CHECK(n == want_n, "sentence %d: %d ids, reference %d", b, n, want_n);
        for (int t = 0; t < n && t < want_n; t++)
            CHECK(got[t] == ids[b * T + t], "sentence %d token %d: id %d, reference %d", b, t, got[t], ids[b * T + t]);
        free(got);
    }
    cJSON_Delete(sents);

    /* forward: last hidden state, every row */
    CHECK_OK(lorac_model_forward(m, ids, mask, B, T, LORAC_FWD_HIDDEN));
    float *want = test_st_f32(st, "last_hidden_state", NULL);
    test_close("MiniLM last_hidden_state", m->acts.lnf, want, (size_t)B * T * C, 1e-4, 1e-4);
    double md = 0;
    for (size_t i = 0; i < (size_t)B * T * C; i++) {
        double d = fabs((double)m->acts.lnf[i] - want[i]);
        if (d > md) md = d;
    }
    printf("MiniLM last hidden state, %d sentences x %d tokens x %d: max |lorac - transformers| = %.2e\n", B, T, C, md);
    free(want);
    /* the pooled vector the classifier sees: a 2-class head on mean pooling */
    CHECK_OK(lorac_model_add_head(m, 2, 1, LORAC_HEAD_INIT_TORCH, 7));
    CHECK(m->pre_head == NULL, "mean pooling should use no pooler");
    CHECK_OK(lorac_model_forward(m, ids, mask, B, T, LORAC_FWD_CLS));
    want = test_st_f32(st, "mean_pooled", NULL);
    test_close("MiniLM mean-pooled embedding", m->acts.pooled, want, (size_t)B * C, 1e-4, 1e-4);
    free(want);

    free(ids);
    free(am);
    free(mask);
    lorac_st_close(st);
    lorac_tokenizer_free(tok);
    lorac_model_free(m);
    return test_summary("test_minilm");
}
