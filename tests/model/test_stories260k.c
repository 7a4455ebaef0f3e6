/* test_stories260k - the real pretrained stories260K (Llama 2 architecture,
 * GQA, tied head) from ../shared/data/stories260K/hf:
 *  - logits after BOS equal reference_values.json (computed by an
 *    independent forward that reproduces llama2.c byte for byte);
 *  - the tokenizer gives the reference ids for the reference sentence and
 *    the model its mean NLL;
 *  - greedy generation from BOS for 257 steps reproduces llama2.c's
 *    expected_greedy_t0_257steps.txt byte for byte. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/tokenizer.h"
#include "models/generate.h"
#include "models/model.h"
#include "ops/ops.h"
#include "testutil.h"

static int stop_at_bos(int id, void *ctx) {
    (void)ctx;
    return id == 1;
}

int main(void) {
    const char *dir = test_data_path("stories260K/hf");
    if (!lorac_file_exists(dir)) {
        printf("test_stories260k: skipped (%s not found)\n", dir);
        return test_summary("test_stories260k");
    }
    lorac_model *m = NULL;
    lorac_tokenizer *tok = NULL;
    CHECK_OK(lorac_model_load(dir, &m));
    CHECK_OK(lorac_tokenizer_load(dir, &tok));
    if (!m || !tok) return test_summary("test_stories260k");
    char *json;
    CHECK_OK(lorac_read_file(test_data_path("stories260K/reference_values.json"), 1 << 20, &json, NULL));
    cJSON *ref = cJSON_Parse(json);
    free(json);

    /* logits after BOS */
    int bos = 1;
    CHECK_OK(lorac_model_forward(m, &bos, NULL, 1, 1, LORAC_FWD_LM));
    cJSON *jl = cJSON_GetObjectItem(ref, "logits_after_bos_pos0");
    int V = cJSON_GetArraySize(jl);
    CHECK(V == m->cfg.vocab, "reference has %d logits, model vocab %d", V, m->cfg.vocab);
    float *want = malloc(sizeof(float) * V);
    for (int i = 0; i < V; i++) want[i] = (float)cJSON_GetArrayItem(jl, i)->valuedouble;
    test_close("logits after BOS", m->acts.logits, want, (size_t)V, 0, 1e-4); /* reference printed to 5 decimals */
    free(want);

    /* tokenizer + NLL of the reference sentence given BOS */
    const char *text = cJSON_GetObjectItem(ref, "text")->valuestring;
    cJSON *jids = cJSON_GetObjectItem(ref, "text_ids_with_dummy_prefix_no_bos");
    int *ids = NULL, n = 0;
    CHECK_OK(lorac_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n));
    CHECK(n == cJSON_GetArraySize(jids), "sentence: %d ids, reference %d", n, cJSON_GetArraySize(jids));
    for (int i = 0; i < n && i < cJSON_GetArraySize(jids); i++)
        CHECK(ids[i] == cJSON_GetArrayItem(jids, i)->valueint, "id %d: %d vs %d", i, ids[i], cJSON_GetArrayItem(jids, i)->valueint);
    int *seq = malloc(sizeof(int) * (n + 1)), *tgt = malloc(sizeof(int) * (n + 1));
    seq[0] = 1;
    memcpy(seq + 1, ids, sizeof(int) * n);
    for (int i = 0; i <= n; i++) tgt[i] = i < n ? ids[i] : -1;
    CHECK_OK(lorac_model_forward(m, seq, NULL, 1, n + 1, LORAC_FWD_LM));
    int cnt;
    double nll = op_xent(NULL, m->acts.logits, tgt, n + 1, V, 1, &cnt) / cnt;
    double want_nll = cJSON_GetObjectItem(ref, "mean_nll_nats_text_given_bos")->valuedouble;
    CHECK(fabs(nll - want_nll) < 1e-5, "mean NLL %.6f, reference %.5f", nll, want_nll);
    free(seq);
    free(tgt);
    free(ids);

    /* greedy generation, as llama2.c run -t 0 -n 257: stop at BOS, strip the
     * space after BOS, print a newline at the end */
    lorac_gen_opts o;
    lorac_gen_opts_default(&o);
    o.max_new = 257; /* llama2.c -n 257: 257 forward passes, each emitting one token */
    int *gen = NULL, ng = 0;
    CHECK_OK(lorac_generate(m, &bos, 1, &o, stop_at_bos, NULL, &gen, &ng));
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    int prev = 1;
    for (int i = 0; i < ng && gen[i] != 1; i++) {
        size_t k = 0;
        CHECK_OK(lorac_tokenizer_decode_piece(tok, prev, gen[i], out + len, cap - len - 2, &k));
        len += k;
        prev = gen[i];
    }
    out[len++] = '\n';
    char *expect;
    size_t elen;
    CHECK_OK(lorac_read_file(test_data_path("stories260K/expected_greedy_t0_257steps.txt"), 1 << 20, &expect, &elen));
    CHECK(len == elen && memcmp(out, expect, len) == 0, "greedy text differs from llama2.c's (%zu vs %zu bytes):\n%.*s", len, elen, (int)len, out);
    free(expect);
    free(out);
    free(gen);
    cJSON_Delete(ref);
    lorac_tokenizer_free(tok);
    lorac_model_free(m);
    return test_summary("test_stories260k");
}
