/* test_qdora - DoRA over a quantized frozen base (QDoRA) and DoRA's merge.
 * For tiny_llama and tiny_gpt2 (Conv1D) with the block Linears in NF4 and
 * in bf16 ("--base bf16"):
 *  - logits and one backward (lora_A, lora_B, lora_magnitude_vector) equal
 *    those of an fp32 model whose weights are the dequantized ones (1e-4):
 *    the row norms ||W + s B A|| are taken over the dequantized rows;
 *  - merging (dequantize, W' = m / ||W + s B A|| (W + s B A)) keeps the
 *    logits (1e-4), and unmerging gives back the fp32 weights (1e-5) and
 *    the logits.
 * B and m are moved off their init so that every DoRA term counts.
 * Where op_gemm_bf16 runs natively (oneDNN on an AVX512-BF16 CPU) a bf16
 * base multiplies bf16-rounded activations, as torch does in bf16, which
 * no fp32 model reproduces: the test caps oneDNN below AVX512-BF16
 * (ONEDNN_MAX_CPU_ISA, before its first use) so the bf16 weights are
 * widened and the DoRA math is compared exactly; should the cap not hold,
 * the comparison is to 5e-2 of the largest value (bf16 inputs). */
#include <stdlib.h>
#include <string.h>

#include "lora/lora.h"
#include "lora/merge.h"
#include "models/model.h"
#include "ops/gemm.h"
#include "ops/ops.h"
#include "testutil.h"

enum { B_ = 2, T_ = 8 };

static float *lm(lorac_model *m, const int *ids, const uint8_t *mask, int backward) {
    CHECK_OK(lorac_model_forward(m, ids, mask, B_, T_, LORAC_FWD_LM));
    const size_t n = (size_t)B_ * T_ * m->cfg.vocab;
    float *y = malloc(sizeof(float) * n);
    memcpy(y, m->acts.logits, sizeof(float) * n);
    if (backward) { /* loss = sum(logits * R) with a fixed R: d logits = R */
        for (size_t i = 0; i < n; i++) m->acts.logits[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
        lorac_model_backward(m, ids, B_, T_, LORAC_FWD_LM);
    }
    return y;
}

static void setup(lorac_model *m) {
    lorac_lora_config c;
    lorac_lora_config_default(&c);
    c.r = 4;
    c.alpha = 8;
    c.use_dora = 1;
    strcpy(c.targets[c.n_targets++], "all-linear");
    CHECK_OK(lorac_lora_apply(m, &c, NULL));
    for (int i = 0; i < m->n_lin; i++) {
        lorac_lora *l = m->lin[i].lora;
        if (!l) continue;
        for (size_t j = 0; j < l->B.n; j++) l->B.data[j] = 0.05f * (float)(((j * 2654435761u + (unsigned)i) % 2001) / 1000.0 - 1.0);
        for (size_t j = 0; j < l->M.n; j++) l->M.data[j] *= 1.0f + 0.1f * (float)((j * 40503u) % 7) / 7.0f;
    }
    CHECK_OK(lorac_model_reserve(m, B_, T_));
}

static double maxabs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

static void run(const char *dir, lorac_qformat fmt) {
    fprintf(stderr, "-- DoRA over %s: %s\n", lorac_qformat_name(fmt), dir);
    lorac_model *q = NULL, *ref = NULL;
    CHECK_OK(lorac_model_load(test_src_path(dir), &q));
    CHECK_OK(lorac_model_load(test_src_path(dir), &ref));
    if (!q || !ref) exit(1);
    CHECK_OK(lorac_model_quantize(q, fmt));
    for (int i = 0; i < ref->n_lin; i++) /* ref: fp32 weights = deq(quant(W)), the same rounding */
        if (q->lin[i].q) {
            CHECK_OK(lorac_linear_quantize(&ref->lin[i], fmt));
            CHECK_OK(lorac_linear_dequantize(&ref->lin[i]));
        }
    setup(q);
    setup(ref);
    int ids[B_ * T_];
    uint8_t mask[B_ * T_];
    for (int i = 0; i < B_ * T_; i++) {
        ids[i] = 1 + (i * 37) % (q->cfg.vocab - 1);
        mask[i] = !(i >= T_ && i % T_ >= T_ - 2);
    }
    const size_t nl = (size_t)B_ * T_ * q->cfg.vocab;
    float *yq = lm(q, ids, mask, 1), *yr = lm(ref, ids, mask, 1);
    const double rel = fmt == LORAC_QF_BF16 && op_gemm_bf16_native() ? 5e-2 : 0; /* bf16 activations */
    if (fmt == LORAC_QF_BF16) fprintf(stderr, "   bf16 products native: %d (tolerance %g of the largest value)\n", op_gemm_bf16_native(), rel);
    test_close("QDoRA logits vs fp32 DoRA on the dequantized weights", yq, yr, nl, 1e-4, 1e-5 + rel * maxabs(yr, nl));
    for (int i = 0; i < q->n_lin; i++) {
        lorac_lora *a = q->lin[i].lora, *b = ref->lin[i].lora;
        if (!a) continue;
        const lorac_weight *g[3][2] = {{&a->A, &b->A}, {&a->B, &b->B}, {&a->M, &b->M}};
        for (int k = 0; k < 3; k++)
            test_close(g[k][0]->name, g[k][0]->grad, g[k][1]->grad, g[k][0]->n, 1e-3, 1e-5 + rel * maxabs(g[k][1]->grad, g[k][1]->n));
    }
    /* merge into the quantized base (dequantized first), then unmerge the fp32 one */
    CHECK_OK(lorac_lora_merge(q));
    float *ym = lm(q, ids, mask, 0);
    test_close("QDoRA merged logits", ym, yq, nl, 1e-4, 1e-5 + rel * maxabs(yq, nl));
    float *w0 = malloc(sizeof(float) * ref->lin[0].W->n);
    memcpy(w0, ref->lin[0].W->data, sizeof(float) * ref->lin[0].W->n);
    CHECK_OK(lorac_lora_merge(ref));
    float *yrm = lm(ref, ids, mask, 0);
    test_close("DoRA merged logits (fp32)", yrm, yr, nl, 1e-4, 1e-5);
    lorac_lora_unmerge(ref);
    test_close("DoRA unmerge gives W back", ref->lin[0].W->data, w0, ref->lin[0].W->n, 1e-5, 1e-6);
    float *yu = lm(ref, ids, mask, 0);
    test_close("DoRA unmerged logits", yu, yr, nl, 1e-4, 1e-5);
    free(yq); free(yr); free(ym); free(yrm); free(yu); free(w0);
    lorac_model_free(q);
    lorac_model_free(ref);
}

int main(void) {
    setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE", 0);
    run("tests/fixtures/models/tiny_llama", LORAC_QF_NF4);
    run("tests/fixtures/models/tiny_gpt2", LORAC_QF_NF4);
    run("tests/fixtures/models/tiny_llama", LORAC_QF_BF16);
    run("tests/fixtures/models/tiny_gpt2", LORAC_QF_BF16);
    return test_summary("test_qdora");
}
