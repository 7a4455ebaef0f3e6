/* test_merge_quant - merging an adapter into the SmolLM2-135M Q4_1 GGUF and
 * re-quantizing (lora/merge.h; skipped when the model is not fetched):
 *  a. with the adapter's delta zero, re-quantizing the unchanged Q4_1 weights
 *     gives back the file's own bytes (at least 99.9% of them: the quantizer
 *     is the inverse of the bit-exact dequantizer);
 *  b. with a real delta (LoRA on q/k/v/o/gate/up/down of layers 0 and 1,
 *     B non-zero), each re-quantized tensor, decoded and put back into HF row
 *     order, is within one Q4_1 step of its block of the merged fp32 weight
 *     (a wrong row order, e.g. the q/k RoPE interleave, is far off), and the
 *     reported errors are consistent (0 < RMS error <= max error, delta kept
 *     between 0 and 1.5);
 *  c. the written file is the base byte for byte outside the re-quantized
 *     tensors, which hold exactly the bytes reported; loaded as a model it
 *     computes the same logits as the merged model with the re-quantized
 *     values applied (lorac_requant_apply), bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/gguf.h"
#include "lora/lora.h"
#include "lora/merge.h"
#include "models/model.h"
#include "quant/ggml_blocks.h"
#include "testutil.h"

enum { B = 1, T = 12 };

static float *lm_logits(lorac_model *m, const int *ids) {
    CHECK_OK(lorac_model_reserve(m, B, T));
    CHECK_OK(lorac_model_forward(m, ids, NULL, B, T, LORAC_FWD_LM));
    const size_t n = (size_t)B * T * m->cfg.vocab;
    float *y = malloc(sizeof(float) * n);
    memcpy(y, m->acts.logits, sizeof(float) * n);
    return y;
}

static lorac_model *with_adapter(const char *path, float b_scale) {
    lorac_model *m = NULL;
    CHECK_OK(lorac_model_load(path, &m));
    if (!m) exit(1);
    lorac_lora_config c;
    lorac_lora_config_default(&c);
    c.r = 4;
    c.alpha = 8;
    strcpy(c.targets[c.n_targets++], "all-linear");
    c.layers[c.n_layers++] = 0;
    c.layers[c.n_layers++] = 1;
    CHECK_OK(lorac_lora_apply(m, &c, NULL));
    for (int i = 0; i < m->n_lin; i++) {
        lorac_lora *l = m->lin[i].lora;
        if (!l) continue;
        for (size_t j = 0; j < l->B.n; j++) l->B.data[j] = b_scale * (float)(((j * 2654435761u + (unsigned)i) % 2001) / 1000.0 - 1.0);
    }
    CHECK_OK(lorac_lora_merge(m));
    return m;
}

/* a. zero delta: the file's own bytes come back */
static void test_identity(const char *path) {
    lorac_model *m = with_adapter(path, 0.0f);
    lorac_requant rq;
    CHECK_OK(lorac_merge_requantize(m, 0, &rq));
    size_t same = 0, total = 0;
    for (int k = 0; k < rq.n; k++) {
        const lorac_tensor_desc *t = lorac_gguf_find_tensor(m->gguf, rq.e[k].tensor);
        CHECK(t && t->nbytes == rq.e[k].nbytes, "%s: size", rq.e[k].tensor);
        if (!t) continue;
        for (size_t j = 0; j < t->nbytes; j++) same += ((const uint8_t *)t->data)[j] == ((const uint8_t *)rq.e[k].bytes)[j];
        total += t->nbytes;
    }
    CHECK(rq.n == 14 && total > 0 && same >= 0.999 * (double)total, "zero delta: %zu of %zu bytes as in the file (%d tensors)",
          same, total, rq.n);
    CHECK(rq.kept == 1.0 && rq.rms_delta == 0, "zero delta: kept %g, RMS delta %g", rq.kept, rq.rms_delta);
    printf("zero delta: %.4f%% of %zu re-quantized bytes equal the file's; RMS error %.3g of RMS W %.3g\n",
           100.0 * (double)same / (double)total, total, rq.rms_err, rq.rms_w);
    lorac_requant_free(&rq);
    lorac_model_free(m);
}

static void test_delta(const char *path) {
    lorac_model *m = with_adapter(path, 0.05f);
    lorac_requant rq;
    CHECK_OK(lorac_merge_requantize(m, 0, &rq));
    /* b. each tensor within one step of its block */
    int far = 0;
    for (int k = 0; k < rq.n; k++) {
        const lorac_requant_entry *e = &rq.e[k];
        const lorac_linear *L = e->L;
        CHECK(e->dtype == LORAC_Q4_1, "%s is %s", e->tensor, lorac_dtype_name(e->dtype));
        const size_t rb = e->nbytes / (size_t)L->out;
        float *y = malloc(sizeof(float) * (size_t)L->in);
        /* every file row decoded; HF row o is file row fr (llama.cpp's q/k interleave) */
        float *rows = malloc(sizeof(float) * (size_t)L->in * L->out);
        for (int r = 0; r < L->out; r++) CHECK_OK(lorac_dequant_row(e->dtype, (const uint8_t *)e->bytes + (size_t)r * rb, rows + (size_t)r * L->in, L->in));
        const int heads = strstr(L->W->name, "q_proj") ? m->cfg.n_head : strstr(L->W->name, "k_proj") ? m->cfg.n_kv_head : 0;
        const int D = m->cfg.head_dim;
        for (int o = 0; o < L->out; o++) {
            const int fr = heads ? (o / D) * D + 2 * (o % (D / 2)) + (o % D) / (D / 2) : o;
            memcpy(y, rows + (size_t)fr * L->in, sizeof(float) * (size_t)L->in);
            for (int b0 = 0; b0 < L->in; b0 += 32) {
                float lo = INFINITY, hi = -INFINITY;
                for (int i = b0; i < b0 + 32; i++) {
                    lo = fminf(lo, L->W->data[(size_t)o * L->in + i]);
                    hi = fmaxf(hi, L->W->data[(size_t)o * L->in + i]);
                }
                const double step = (hi - lo) / 15.0;
                /* half a step, plus the f16 rounding of the block's d and min */
                const double tol = 0.5 * step + ldexp(fabs(lo) + fabs(hi), -10) + 1e-7;
                for (int i = b0; i < b0 + 32; i++) far += fabs((double)y[i] - L->W->data[(size_t)o * L->in + i]) > tol;
            }
        }
        free(rows);
        free(y);
    }
    CHECK(rq.n == 14 && far == 0, "%d re-quantized weights further than half a Q4_1 step from the merged fp32 weight", far);
    CHECK(rq.rms_err > 0 && rq.rms_err <= rq.max_err && rq.kept > 0 && rq.kept < 1.5 && rq.rms_delta > 0,
          "report: RMS err %g, max %g, kept %g, RMS delta %g", rq.rms_err, rq.max_err, rq.kept, rq.rms_delta);
    printf("delta: RMS W' %.4g, RMS delta %.4g, re-quantization RMS error %.4g (max %.4g), delta kept %.1f%%\n", rq.rms_w,
           rq.rms_delta, rq.rms_err, rq.max_err, 100 * rq.kept);

    /* c. the file */
    char out[1200];
    snprintf(out, sizeof out, "%s/requant.gguf", test_tmpdir());
    CHECK_OK(lorac_gguf_write_requantized(m, &rq, out));
    lorac_gguf *g0 = NULL, *g1 = NULL;
    CHECK_OK(lorac_gguf_open(path, &g0));
    CHECK_OK(lorac_gguf_open(out, &g1));
    if (!g0 || !g1) exit(1);
    CHECK(lorac_gguf_kv_count(g0) == lorac_gguf_kv_count(g1) && lorac_gguf_tensor_count(g0) == lorac_gguf_tensor_count(g1),
          "metadata or tensor count changed");
    int wrong = 0, changed = 0;
    for (int i = 0; i < lorac_gguf_tensor_count(g0); i++) {
        const lorac_tensor_desc *a = lorac_gguf_tensor(g0, i), *b = lorac_gguf_find_tensor(g1, a->name);
        if (!b || b->dtype != a->dtype || b->nbytes != a->nbytes) {
            wrong++;
            continue;
        }
        const void *want = a->data;
        for (int k = 0; k < rq.n; k++)
            if (!strcmp(rq.e[k].tensor, a->name)) want = rq.e[k].bytes;
        changed += want != a->data;
        wrong += memcmp(b->data, want, a->nbytes) != 0;
    }
    CHECK(wrong == 0 && changed == rq.n, "%d tensors differ from what they should hold (%d re-quantized)", wrong, changed);
    lorac_gguf_close(g0);
    lorac_gguf_close(g1);

    int ids[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (int)((i * 7919u + 13u) % (unsigned)m->cfg.vocab);
    CHECK_OK(lorac_requant_apply(m, &rq));
    float *want = lm_logits(m, ids);
    lorac_model *r = NULL;
    CHECK_OK(lorac_model_load(out, &r));
    if (r) {
        float *got = lm_logits(r, ids);
        const size_t n = (size_t)B * T * m->cfg.vocab;
        CHECK(!memcmp(got, want, sizeof(float) * n), "the written GGUF's logits differ from the measured model's");
        free(got);
        lorac_model_free(r);
    }
    free(want);
    lorac_requant_free(&rq);
    lorac_model_free(m);
}

int main(void) {
    const char *path = test_cache_path("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!lorac_file_exists(path)) {
        printf("test_merge_quant: skipped (%s not found; run scripts/fetch-models)\n", path);
        return test_summary("test_merge_quant");
    }
    test_identity(path);
    test_delta(path);
    return test_summary("test_merge_quant");
}
