/* test_merge_quant - merging an adapter into a quantized base and
 * re-quantizing (lora/merge.h).
 * NF4 (the tiny GPT-2 and Llama fixtures, loaded as QLoRA holds them):
 *  n. the merged weights re-quantized to NF4 and written in bitsandbytes'
 *     4-bit serialization read back (lorac_model_load_quantized) as the very
 *     same NF4 bits, whose logits equal those of the merged model with the
 *     re-quantized values applied; loaded in fp32 (lorac_model_load), the
 *     same logits again; the checkpoint's quant state JSON says nf4, 64,
 *     the shape and the offset.
 * Q4_1 (the SmolLM2-135M GGUF; skipped when the model is not fetched):
 *  a. with the adapter's delta zero, re-quantizing the unchanged Q4_1 weights
 *     gives back the file's own bytes (at least 99.9% of them: the quantizer
 *     is the inverse of the bit-exact dequantizer), with nearest and with
 *     stochastic rounding; with a delta well under half a step, nearest
 *     rounding loses most of it and stochastic rounding keeps it (the
 *     reported share within 20% of all);
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
#include "io/safetensors.h"
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

/* LoRA r 4 on every Linear (of layers 0 and 1 only when `two_layers`), B
 * set to a fixed pattern times b_scale (0: no delta), then merged. */
static void adapt_and_merge(lorac_model *m, float b_scale, int two_layers) {
    lorac_lora_config c;
    lorac_lora_config_default(&c);
    c.r = 4;
    c.alpha = 8;
    strcpy(c.targets[c.n_targets++], "all-linear");
    if (two_layers) {
        c.layers[c.n_layers++] = 0;
        c.layers[c.n_layers++] = 1;
    }
    CHECK_OK(lorac_lora_apply(m, &c, NULL));
    for (int i = 0; i < m->n_lin; i++) {
        lorac_lora *l = m->lin[i].lora;
        for (size_t j = 0; l && j < l->B.n; j++) l->B.data[j] = b_scale * (float)(((j * 2654435761u + (unsigned)i) % 2001) / 1000.0 - 1.0);
    }
    CHECK_OK(lorac_lora_merge(m));
}

static lorac_model *with_adapter(const char *path, float b_scale) {
    lorac_model *m = NULL;
    CHECK_OK(lorac_model_load(path, &m));
    if (!m) exit(1);
    adapt_and_merge(m, b_scale, 1);
    return m;
}

/* a. zero delta: the file's own bytes come back */
static void test_identity(const char *path, int stochastic) {
    lorac_model *m = with_adapter(path, 0.0f);
    lorac_requant rq;
    CHECK_OK(lorac_merge_requantize(m, 0, stochastic, &rq));
    size_t same = 0, total = 0;
    for (int k = 0; k < rq.n; k++) {
        const lorac_tensor_desc *t = lorac_gguf_find_tensor(m->gguf, rq.e[k].tensor);
        CHECK(t && t->nbytes == rq.e[k].nbytes, "%s: size", rq.e[k].tensor);
        if (!t) continue;
        for (size_t j = 0; j < t->nbytes; j++) same += ((const uint8_t *)t->data)[j] == ((const uint8_t *)rq.e[k].bytes)[j];
        total += t->nbytes;
    }
    CHECK(rq.n == 14 && total > 0 && same >= 0.999 * (double)total, "zero delta (%s rounding): %zu of %zu bytes as in the "
          "file (%d tensors)", stochastic ? "stochastic" : "nearest", same, total, rq.n);
    CHECK(rq.kept == 1.0 && rq.rms_delta == 0, "zero delta: kept %g, RMS delta %g", rq.kept, rq.rms_delta);
    printf("zero delta, %s rounding: %.4f%% of %zu re-quantized bytes equal the file's; RMS error %.3g of RMS W %.3g\n",
           stochastic ? "stochastic" : "nearest", 100.0 * (double)same / (double)total, total, rq.rms_err, rq.rms_w);
    lorac_requant_free(&rq);
    lorac_model_free(m);
}

/* A delta well under half a Q4_1 step: rounded to the nearest level most of
 * it is lost; stochastic rounding keeps it on average. */
static void test_rounding(const char *path) {
    lorac_model *m = with_adapter(path, 0.05f);
    lorac_requant near, sto;
    CHECK_OK(lorac_merge_requantize(m, 0, 0, &near));
    CHECK_OK(lorac_merge_requantize(m, 0, 1, &sto));
    CHECK(near.kept < 0.5 && fabs(sto.kept - 1.0) < 0.2, "delta kept: nearest %.3f, stochastic %.3f", near.kept, sto.kept);
    printf("delta kept: nearest %.1f%%, stochastic %.1f%% (RMS error %.4g / %.4g)\n", 100 * near.kept, 100 * sto.kept,
           near.rms_err, sto.rms_err);
    lorac_requant_free(&near);
    lorac_requant_free(&sto);
    lorac_model_free(m);
}

static void test_delta(const char *path) {
    lorac_model *m = with_adapter(path, 0.05f);
    lorac_requant rq;
    CHECK_OK(lorac_merge_requantize(m, 0, 0, &rq));
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

/* n. NF4 round trip through bitsandbytes' serialization */
static void test_nf4(const char *dir) {
    fprintf(stderr, "-- NF4 merge: %s\n", dir);
    lorac_model *m = NULL;
    CHECK_OK(lorac_model_load_quantized(test_src_path(dir), LORAC_QLOAD_NF4, &m));
    if (!m) exit(1);
    adapt_and_merge(m, 0.05f, 0);
    lorac_requant rq;
    CHECK_OK(lorac_merge_requantize(m, 1, 0, &rq));
    CHECK(rq.n > 0 && rq.e[0].nf4 && rq.rms_err > 0 && rq.kept > 0 && rq.kept < 1.5, "NF4 report: %d Linears, RMS err %g, kept %g",
          rq.n, rq.rms_err, rq.kept);
    char out[1200];
    snprintf(out, sizeof out, "%s/nf4-%s", test_tmpdir(), strstr(dir, "tiny_gpt2") ? "gpt2" : "llama");
    CHECK_OK(lorac_model_save_merged_nf4(m, &rq, out, NULL));
    CHECK_OK(lorac_requant_apply(m, &rq));
    int ids[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (int)((i * 37u + 11u) % (unsigned)m->cfg.vocab);
    float *want = lm_logits(m, ids);
    const size_t nl = (size_t)B * T * m->cfg.vocab;

    lorac_model *q = NULL, *f = NULL;
    /* the embedding is fp32 in the checkpoint (bitsandbytes never quantizes it): keep it so */
    CHECK_OK(lorac_model_load_quantized(out, LORAC_QLOAD_NF4 | LORAC_QLOAD_EMBED_FP32, &q));
    CHECK_OK(lorac_model_load(out, &f));
    if (!q || !f) exit(1);
    int diff = 0;
    for (int k = 0; k < rq.n; k++) {
        const lorac_linear *L = lorac_model_find_linear(q, rq.e[k].L->name);
        const lorac_nf4 *a = L && L->q && L->q->fmt == LORAC_QF_NF4 ? &L->q->nf4 : NULL, *b = &rq.e[k].q.nf4;
        diff += !a || a->numel != b->numel || a->offset != b->offset || memcmp(a->codes, b->codes, (size_t)(a->numel + 1) / 2) ||
                memcmp(a->qabsmax, b->qabsmax, (size_t)a->nblocks) || memcmp(a->absmax2, b->absmax2, sizeof(float) * (size_t)a->nblocks2);
    }
    CHECK(diff == 0, "%d of %d NF4 Linears read back differ from what was written", diff, rq.n);
    float *gq = lm_logits(q, ids), *gf = lm_logits(f, ids);
    CHECK(test_close("NF4 checkpoint (quantized) vs merged + re-quantized", gq, want, nl, 1e-5, 1e-5), "logits");
    CHECK(test_close("NF4 checkpoint (fp32) vs merged + re-quantized", gf, want, nl, 1e-5, 1e-5), "logits");
    /* the quant state as bitsandbytes reads it */
    lorac_st *st = NULL;
    char path[1300], name[256];
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    CHECK_OK(lorac_st_open(path, &st));
    snprintf(name, sizeof name, "%s.quant_state.bitsandbytes__nf4", rq.e[0].L->W->name);
    const lorac_tensor_desc *t = st ? lorac_st_find(st, name) : NULL;
    char js[400] = "";
    if (t && t->dtype == LORAC_U8 && t->nbytes < sizeof js) memcpy(js, t->data, t->nbytes);
    char want_js[160];
    snprintf(want_js, sizeof want_js, "\"shape\": [%d, %d]", rq.e[0].L->out, rq.e[0].L->in);
    CHECK(strstr(js, "\"quant_type\": \"nf4\"") && strstr(js, "\"blocksize\": 64") && strstr(js, want_js) &&
          strstr(js, "\"nested_offset\": "), "quant state of %s: '%s'", name, js);
    lorac_st_close(st);
    free(gq);
    free(gf);
    free(want);
    lorac_model_free(q);
    lorac_model_free(f);
    lorac_requant_free(&rq);
    lorac_model_free(m);
}

/* A copy of the NF4 checkpoint in src_dir with one tensor changed by `edit`
 * (its bytes, and its element count), written to dst_dir. */
typedef void (*edit_fn)(const char *name, uint8_t *bytes, int64_t *n);

static void copy_edited(const char *src_dir, const char *dst_dir, edit_fn edit) {
    char p[1300], q[1300];
    lorac_st *st = NULL;
    snprintf(p, sizeof p, "%s/model.safetensors", src_dir);
    CHECK_OK(lorac_st_open(p, &st));
    if (!st) exit(1);
    const int n = lorac_st_count(st);
    lorac_st_entry *e = calloc((size_t)n, sizeof *e);
    uint8_t **bufs = calloc((size_t)n, sizeof *bufs);
    for (int i = 0; i < n; i++) {
        const lorac_tensor_desc *t = lorac_st_get(st, i);
        bufs[i] = calloc(1, t->nbytes + 64); /* room for an edit that lengthens it */
        memcpy(bufs[i], t->data, t->nbytes);
        int64_t numel = t->numel;
        if (t->dtype == LORAC_U8) edit(t->name, bufs[i], &numel);
        e[i] = (lorac_st_entry){t->name, (const float *)bufs[i], t->dtype == LORAC_U8 ? 1 : t->ndim, {0}, t->dtype, bufs[i]};
        for (int d = 0; d < t->ndim; d++) e[i].shape[d] = t->shape[d];
        if (t->dtype == LORAC_U8) e[i].shape[0] = numel;
    }
    CHECK_OK(lorac_mkdirs(dst_dir));
    snprintf(q, sizeof q, "%s/model.safetensors", dst_dir);
    CHECK_OK(lorac_st_write(q, e, n, NULL));
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(e);
    lorac_st_close(st);
    char *cfg;
    size_t len;
    snprintf(p, sizeof p, "%s/config.json", src_dir);
    CHECK_OK(lorac_read_file(p, 1 << 20, &cfg, &len));
    snprintf(q, sizeof q, "%s/config.json", dst_dir);
    CHECK_OK(lorac_write_atomic(q, cfg, len));
    free(cfg);
}

static const char *g_target; /* the tensor the edits below change */

static void short_absmax(const char *name, uint8_t *b, int64_t *n) {
    (void)b;
    if (!strcmp(name, g_target)) *n -= 1;
}

static void blocksize_128(const char *name, uint8_t *b, int64_t *n) {
    const char *from = "\"blocksize\": 64,", *to = "\"blocksize\": 128,";
    char *at = strstr((char *)b, from), tmp[512];
    if (strcmp(name, g_target) || !at || *n + 8 > (int64_t)sizeof tmp) return;
    snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)(at - (char *)b), (char *)b, to, at + strlen(from));
    memcpy(b, tmp, strlen(tmp));
    *n = (int64_t)strlen(tmp);
}

/* Bad 4-bit checkpoints: one clear error naming the tensor, nothing read past an end. */
static void test_nf4_malformed(void) {
    char src[1200], dst[1200], name[256];
    snprintf(src, sizeof src, "%s/nf4-llama", test_tmpdir());
    const char *w = "model.layers.0.self_attn.q_proj.weight";
    struct {
        const char *suffix;
        edit_fn fn;
        lorac_status want;
        const char *says;
    } cases[] = {{".absmax", short_absmax, LORAC_ERR_SHAPE, ".absmax"},
                 {".quant_state.bitsandbytes__nf4", blocksize_128, LORAC_ERR_UNSUPPORTED, "blocksize 64"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(name, sizeof name, "%s%s", w, cases[k].suffix);
        g_target = name;
        snprintf(dst, sizeof dst, "%s/nf4-bad%zu", test_tmpdir(), k);
        copy_edited(src, dst, cases[k].fn);
        for (int quant = 0; quant < 2; quant++) {
            lorac_model *m = NULL;
            lorac_status st = quant ? lorac_model_load_quantized(dst, LORAC_QLOAD_NF4, &m) : lorac_model_load(dst, &m);
            CHECK(st == cases[k].want && strstr(lorac_last_error(), cases[k].says) && strstr(lorac_last_error(), "q_proj"),
                  "%s (%s load): status %d, '%s'", name, quant ? "quantized" : "fp32", (int)st, lorac_last_error());
            lorac_clear_error();
            lorac_model_free(m);
        }
    }
}

int main(void) {
    test_nf4("tests/fixtures/models/tiny_gpt2");
    test_nf4("tests/fixtures/models/tiny_llama");
    test_nf4_malformed();
    const char *path = test_cache_path("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!lorac_file_exists(path)) {
        printf("test_merge_quant: skipped (%s not found; run scripts/fetch-models)\n", path);
        return test_summary("test_merge_quant");
    }
    test_identity(path, 0);
    test_identity(path, 1);
    test_rounding(path);
    test_delta(path);
    return test_summary("test_merge_quant");
}
