/* test_qlora - LoRA over a quantized frozen base (QLoRA):
 *  a. tiny_llama / tiny_gpt2 with their block Linears in NF4: the logits and
 *     the LoRA gradients (one backward) equal those of an fp32 model whose
 *     Linear weights are the NF4-dequantized values (to 1e-4); quantizing at
 *     load (lorac_model_load_quantized) and after it (lorac_model_quantize)
 *     give the same NF4 bits; merging (dequantize + merge) keeps the logits;
 *  b. no block Linear keeps fp32 values, quantized weights refuse to become
 *     trainable, and the trainable parameters are the LoRA matrices alone;
 *  c. three AdamW steps on a tiny batch lower the loss;
 *  d. GGUF files built here from the tiny fixtures, with Q8_0 blocks (and
 *     again with Q5_0, Q5_1 and IQ4_NL blocks made by lorac_quant_row)
 *     (llama q/k rows in llama.cpp's interleaved order, GPT-2 matrices
 *     [out,in] as llama.cpp writes them) and F32 where a row is no whole
 *     number of blocks: kept blocks dequantize bit for bit to what the
 *     ordinary loader makes of the file, the F32 ones fall back to NF4, and
 *     the logits match;
 *  e. the SmolLM2-135M Q4_1 GGUF (skipped when not fetched) kept as Q4_1/Q8_0
 *     views gives the ordinary (dequantized-at-load) model's logits to 1e-3;
 *     the resident memory of both is printed;
 *  f. decoding over kept blocks (LORAC_BASE_GGUF / _AUTO's load) with an
 *     untied LM head in blocks too (LORAC_QLOAD_KEEP_HEAD): tiny_llama written
 *     with its embedding and lm_head in Q8_0 (and Q5_1) as well; the kept head
 *     dequantizes bit for bit to the ordinary loader's fp32 head; the KV-cache
 *     decode (a prefill past the GEMV road's 8 rows, single steps, three
 *     sequences in one call) and the full forward give the logits of that
 *     fp32-dequantized model to 1e-4 of the largest logit, and greedy ids are
 *     equal, with the base alone and with an unmerged LoRA adapter (lm_head
 *     adapted too); training the head in full (modules_to_save) turns it
 *     back to fp32. 
 * Every part runs the GEMV road (N <= 8 rows) with fp32 activations
 * (LORAC_QACT_F32): the default int8 activations round x per group of 32,
 * far above the 1e-3 / 1e-4 here (test_qdot.c bounds that road;
 * test_kvcache.c decodes SmolLM2 on it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/gguf_write.h"
#include "lora/lora.h"
#include "lora/merge.h"
#include "models/generate.h"
#include "models/kvcache.h"
#include "models/model.h"
#include "ops/ops.h"
#include "quant/qmatmul.h"
#include "quant/ggml_blocks.h"
#include "testutil.h"
#include "train/optim.h"

/* ---- helpers ------------------------------------------------------------- */

typedef struct { int B, T; int ids[64]; uint8_t mask[64]; int targets[64]; } batch;

/* B x T tokens, the second row right-padded by 2; next-token targets. */
static batch make_batch(int B, int T, int vocab) {
    batch b = {B, T, {0}, {0}, {0}};
    for (int i = 0; i < B * T; i++) {
        b.ids[i] = (int)((i * 37u + 11u) % (unsigned)vocab);
        b.mask[i] = !(i / T == 1 && i % T >= T - 2);
    }
    for (int i = 0; i < B * T; i++) b.targets[i] = (i % T < T - 1 && b.mask[i + 1]) ? b.ids[i + 1] : -1;
    return b;
}

static float *logits(lorac_model *m, const batch *b) {
    CHECK_OK(lorac_model_forward(m, b->ids, b->mask, b->B, b->T, LORAC_FWD_LM));
    size_t n = (size_t)b->B * b->T * m->cfg.vocab;
    float *y = malloc(sizeof(float) * n);
    memcpy(y, m->acts.logits, sizeof(float) * n);
    return y;
}

static void compare_rows(const char *what, const float *got, const float *want, const batch *b, int V, double tol) {
    for (int i = 0; i < b->B * b->T; i++)
        if (b->mask[i] && !test_close(what, got + (size_t)i * V, want + (size_t)i * V, (size_t)V, tol, tol)) return;
}

static void zero_grad(lorac_weight *w, void *ctx) {
    (void)ctx;
    memset(w->grad, 0, sizeof(float) * w->n);
}

/* Mean next-token loss; with backward, fresh gradients in every trainable tensor. */
static double lm_step(lorac_model *m, const batch *b, int backward) {
    const int N = b->B * b->T, V = m->cfg.vocab;
    int cnt = 0;
    for (int i = 0; i < N; i++) cnt += b->targets[i] >= 0;
    if (lorac_model_forward(m, b->ids, b->mask, b->B, b->T, LORAC_FWD_LM) != LORAC_OK) return NAN;
    double loss = op_xent(backward ? m->acts.logits : NULL, m->acts.logits, b->targets, N, V, 1.0f / cnt, &cnt) / cnt;
    if (backward) {
        lorac_for_each_trainable(m, zero_grad, NULL);
        lorac_model_backward(m, b->ids, b->B, b->T, LORAC_FWD_LM);
    }
    return loss;
}

static int is_block(const lorac_model *m, const lorac_linear *L) {
    return L != m->lm_head && L != m->head && L != m->pre_head;
}

/* ref's block Linears (and token embedding) get q's quantized weights,
 * dequantized (in ref's layout). */
static void use_dequantized(lorac_model *ref, const lorac_model *q) {
    if (q->wte_q) {
        if (!ref->wte->owned) {
            ref->wte->data = malloc(sizeof(float) * ref->wte->n);
            ref->wte->owned = 1;
        }
        CHECK_OK(lorac_qweight_dequantize(q->wte_q, ref->wte->data));
    }
    for (int i = 0; i < q->n_lin; i++) {
        const lorac_linear *QL = &q->lin[i];
        lorac_linear *L = &ref->lin[i];
        if (!QL->q) continue;
        float *d = malloc(sizeof(float) * (size_t)L->in * L->out);
        CHECK_OK(lorac_qweight_dequantize(QL->q, d));
        if (!L->W->owned) {
            L->W->data = malloc(sizeof(float) * L->W->n);
            L->W->owned = 1;
        }
        for (int o = 0; o < L->out; o++)
            for (int k = 0; k < L->in; k++)
                L->W->data[L->w_in_out ? (size_t)k * L->out + o : (size_t)o * L->in + k] = d[(size_t)o * L->in + k];
        free(d);
    }
}

static void lora_config(lorac_lora_config *c, lorac_bias_mode bias) {
    lorac_lora_config_default(c);
    c->r = 4;
    c->alpha = 8;
    c->bias = bias;
    strcpy(c->targets[c->n_targets++], "all-linear");
}

/* Non-zero B (PEFT starts at B = 0, which leaves dA = 0), the same in every model. */
static void set_B(lorac_model *m) {
    for (int i = 0; i < m->n_lin; i++) {
        lorac_lora *l = m->lin[i].lora;
        if (!l) continue;
        for (size_t j = 0; j < l->B.n; j++) l->B.data[j] = 0.05f * (float)(((j * 2654435761u + (unsigned)i) % 2001) / 1000.0 - 1.0);
    }
}

static double maxabs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

static void compare_grads(lorac_model *m, lorac_model *ref) {
    for (int i = 0; i < m->n_lin; i++) {
        lorac_lora *a = m->lin[i].lora, *b = ref->lin[i].lora;
        if (!a) continue;
        const lorac_weight *g[2][2] = {{&a->A, &b->A}, {&a->B, &b->B}};
        for (int k = 0; k < 2; k++) {
            double scale = maxabs(g[k][1]->grad, g[k][1]->n);
            CHECK(scale > 0, "%s: zero reference gradient", g[k][1]->name);
            test_close(g[k][0]->name, g[k][0]->grad, g[k][1]->grad, g[k][0]->n, 1e-4, 1e-4 * scale + 1e-12);
        }
    }
    for (int i = 0; i < m->n_w; i++) /* trainable biases (bias="all") */
        if (m->w[i].grad) test_close(m->w[i].name, m->w[i].grad, ref->w[i].grad, m->w[i].n, 1e-4, 1e-4 * maxabs(ref->w[i].grad, ref->w[i].n) + 1e-12);
}

static void same_nf4(const lorac_model *a, const lorac_model *b) {
    int diff = 0, n = 0;
    for (int i = -1; i < a->n_lin; i++) { /* -1: the token embedding */
        const lorac_qweight *x = i < 0 ? a->wte_q : a->lin[i].q, *y = i < 0 ? b->wte_q : b->lin[i].q;
        if (!x && !y) continue;
        n++;
        if (!x || !y || x->fmt != LORAC_QF_NF4 || y->fmt != LORAC_QF_NF4) {
            diff++;
            continue;
        }
        const lorac_nf4 *p = &x->nf4, *q = &y->nf4;
        diff += p->numel != q->numel || p->offset != q->offset || memcmp(p->codes, q->codes, (size_t)(p->numel + 1) / 2) ||
                memcmp(p->qabsmax, q->qabsmax, (size_t)p->nblocks) || memcmp(p->absmax2, q->absmax2, sizeof(float) * (size_t)p->nblocks2);
    }
    CHECK(n > 1 && diff == 0, "load_quantized vs load + quantize: %d of %d matrices differ", diff, n);
}

/* ---- a, b, c: NF4 over the tiny fixtures ----------------------------------- */

static void test_nf4_fixture(const char *dir, lorac_bias_mode bias) {
    fprintf(stderr, "-- NF4 base: %s (bias %s)\n", dir, bias == LORAC_BIAS_ALL ? "all" : "none");
    lorac_model *m = NULL, *m2 = NULL, *ref = NULL;
    CHECK_OK(lorac_model_load_quantized(test_src_path(dir), LORAC_QLOAD_NF4, &m));
    CHECK_OK(lorac_model_load(test_src_path(dir), &m2));
    CHECK_OK(lorac_model_load(test_src_path(dir), &ref));
    if (!m || !m2 || !ref) exit(1);
    CHECK_OK(lorac_model_quantize(m2, LORAC_QF_NF4));
    CHECK_OK(lorac_model_quantize_embedding(m2, LORAC_QF_NF4));
    same_nf4(m, m2);
    lorac_model_free(m2);
    m2 = NULL; /* the embedding left in fp32 on request */
    CHECK_OK(lorac_model_load_quantized(test_src_path(dir), LORAC_QLOAD_NF4 | LORAC_QLOAD_EMBED_FP32, &m2));
    CHECK(m2 && !m2->wte_q && m2->wte->data && m2->lin[0].q && (!m2->lm_head || !m2->lm_head->q),
          "LORAC_QLOAD_EMBED_FP32: the embedding was quantized, or the Linears were not");
    lorac_model_free(m2);

    /* b. the fp32 values are gone; quantized weights stay frozen */
    int nq = 0, bad = 0;
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        if (L == m->lm_head && m->cfg.tied) { /* through the quantized embedding */
            bad += L->q != m->wte_q || !L->q_shared || L->W->data != NULL;
            continue;
        }
        if (!is_block(m, L)) {
            bad += L->q != NULL || L->W->data == NULL;
            continue;
        }
        nq++;
        bad += !L->q || L->q->fmt != LORAC_QF_NF4 || L->W->data || L->W->owned || !L->W->quantized;
    }
    CHECK(nq > 0 && bad == 0, "%d of %d block Linears not quantized cleanly (or a head quantized)", bad, nq);
    CHECK(m->wte_q && m->wte_q->fmt == LORAC_QF_NF4 && !m->wte->data && m->wte->quantized, "token embedding not in NF4");
    lorac_status st = lorac_weight_make_trainable(m->lin[0].W);
    CHECK(st == LORAC_ERR_UNSUPPORTED && strstr(lorac_last_error(), "quantized"), "make_trainable on a quantized weight: %s",
          lorac_last_error());
    lorac_clear_error();
    lorac_qstats qs;
    lorac_model_qstats(m, &qs);
    CHECK(qs.n_linears == nq && qs.n_fmt[LORAC_QF_NF4] == nq && qs.q_bytes < qs.q_params * 0.6 && qs.q_bytes > qs.q_params * 0.5,
          "qstats: %d Linears, %lld params in %.0f bytes", qs.n_linears, (long long)qs.q_params, qs.q_bytes);
    CHECK(qs.embed_fmt == LORAC_QF_NF4 && qs.emb_params == (int64_t)m->wte->n && qs.emb_bytes < qs.emb_params * 0.6,
          "qstats: embedding %s, %lld params in %.0f bytes", lorac_qformat_name(qs.embed_fmt), (long long)qs.emb_params,
          qs.emb_bytes);

    use_dequantized(ref, m);
    lorac_lora_config lc;
    lora_config(&lc, bias);
    CHECK_OK(lorac_lora_apply(m, &lc, NULL));
    CHECK_OK(lorac_lora_apply(ref, &lc, NULL));
    set_B(m);
    set_B(ref);
    int64_t tr, all, want = 0, tr_ref, all_ref;
    lorac_count_params(m, &tr, &all);
    lorac_count_params(ref, &tr_ref, &all_ref);
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].lora) want += (int64_t)(m->lin[i].lora->A.n + m->lin[i].lora->B.n);
    if (bias == LORAC_BIAS_ALL)
        for (int i = 0; i < m->n_w; i++) want += strstr(m->w[i].name, ".bias") ? (int64_t)m->w[i].n : 0;
    CHECK(tr == want && tr == tr_ref && all == all_ref, "trainable %lld (want %lld, fp32 model %lld), all %lld vs %lld",
          (long long)tr, (long long)want, (long long)tr_ref, (long long)all, (long long)all_ref);

    /* a. forward and one backward equal the dequantized fp32 model's */
    const batch b = make_batch(2, 8, m->cfg.vocab);
    CHECK_OK(lorac_model_reserve(m, b.B, b.T));
    CHECK_OK(lorac_model_reserve(ref, b.B, b.T));
    float *yq = logits(m, &b), *yr = logits(ref, &b);
    compare_rows("NF4 logits vs dequantized fp32 model", yq, yr, &b, m->cfg.vocab, 1e-4);
    double lq = lm_step(m, &b, 1), lr = lm_step(ref, &b, 1);
    CHECK(fabs(lq - lr) < 1e-5, "loss %.8f vs %.8f", lq, lr);
    compare_grads(m, ref);

    /* merging into a quantized base: dequantize + merge, the logits stay */
    CHECK_OK(lorac_lora_merge(m));
    int still = 0;
    for (int i = 0; i < m->n_lin; i++) still += m->lin[i].lora && (m->lin[i].q || !m->lin[i].W->data);
    CHECK(still == 0, "%d adapted Linears still quantized after merge", still);
    float *ym = logits(m, &b);
    compare_rows("merged (dequantized) logits vs QLoRA logits", ym, yq, &b, m->cfg.vocab, 1e-4);
    free(ym);
    /* the embedding back in fp32 (as lorac_model_save_merged does): a tied head follows, the logits stay */
    if (m->lm_head && m->lm_head->q_shared) {
        st = lorac_linear_dequantize(m->lm_head);
        CHECK(st == LORAC_ERR_ARG && strstr(lorac_last_error(), "tied"), "dequantizing a tied head alone: %s", lorac_last_error());
        lorac_clear_error();
    }
    CHECK_OK(lorac_model_dequantize_embedding(m));
    CHECK(!m->wte_q && m->wte->data && (!m->lm_head || !m->lm_head->q), "embedding still quantized");
    ym = logits(m, &b);
    compare_rows("fp32 embedding logits vs QLoRA logits", ym, yq, &b, m->cfg.vocab, 1e-4);
    free(ym);
    free(yq);
    free(yr);
    lorac_model_free(m);
    lorac_model_free(ref);

    /* c. three AdamW steps lower the loss */
    m = NULL;
    CHECK_OK(lorac_model_load_quantized(test_src_path(dir), LORAC_QLOAD_NF4, &m));
    if (!m) exit(1);
    CHECK_OK(lorac_lora_apply(m, &lc, NULL));
    CHECK_OK(lorac_model_reserve(m, b.B, b.T));
    lorac_optim *opt = NULL;
    lorac_adamw_cfg oc = LORAC_ADAMW_DEFAULTS;
    oc.lr = 1e-2;
    CHECK_OK(lorac_optim_create(&oc, &opt));
    for (int i = 0; i < m->n_lin; i++) {
        lorac_lora *l = m->lin[i].lora;
        if (!l) continue;
        CHECK_OK(lorac_optim_add(opt, l->A.name, l->A.data, l->A.grad, l->A.n, 1, NULL));
        CHECK_OK(lorac_optim_add(opt, l->B.name, l->B.data, l->B.grad, l->B.n, 1, NULL));
    }
    for (int i = 0; i < m->n_w; i++)
        if (m->w[i].grad) CHECK_OK(lorac_optim_add(opt, m->w[i].name, m->w[i].data, m->w[i].grad, m->w[i].n, 0, NULL));
    double loss[4];
    for (int s = 0; s < 3; s++) {
        loss[s] = lm_step(m, &b, 1);
        lorac_optim_step(opt, oc.lr);
    }
    loss[3] = lm_step(m, &b, 0);
    fprintf(stderr, "   3 AdamW steps: loss %.5f -> %.5f -> %.5f -> %.5f\n", loss[0], loss[1], loss[2], loss[3]);
    CHECK(loss[3] < loss[0] - 1e-3 && loss[1] < loss[0], "loss did not go down: %.6f -> %.6f", loss[0], loss[3]);
    lorac_optim_destroy(opt);
    lorac_model_free(m);
}

/* ---- d. a GGUF with Q8_0 (Q5_0, Q5_1, IQ4_NL) blocks, built from a tiny fixture */

static void q8_0_row(const float *x, int n, uint8_t *out) {
    for (int b = 0; b < n / 32; b++, x += 32, out += 34) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        const float d = amax / 127, id = d ? 1 / d : 0;
        uint16_t h = lorac_f32_to_f16(d);
        memcpy(out, &h, 2);
        for (int i = 0; i < 32; i++) out[2 + i] = (uint8_t)(int8_t)lrintf(x[i] * id);
    }
}

/* HF name -> GGUF name for the tiny fixtures (weights.c's table, restated). */
static int gguf_name(const lorac_model *m, const char *hf, char *out, size_t n) {
    static const char *const map[][2] = {
        {"self_attn.q_proj", "attn_q"},   {"self_attn.k_proj", "attn_k"},      {"self_attn.v_proj", "attn_v"},
        {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"},   {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"},    {"input_layernorm", "attn_norm"},  {"post_attention_layernorm", "ffn_norm"},
        {"ln_1", "attn_norm"},            {"attn.c_attn", "attn_qkv"},       {"attn.c_proj", "attn_output"},
        {"ln_2", "ffn_norm"},             {"mlp.c_fc", "ffn_up"},            {"mlp.c_proj", "ffn_down"}};
    static const char *const top[][2] = {{"model.embed_tokens.weight", "token_embd.weight"}, {"transformer.wte.weight", "token_embd.weight"},
                                         {"transformer.wpe.weight", "position_embd.weight"}, {"model.norm.weight", "output_norm.weight"},
                                         {"transformer.ln_f.weight", "output_norm.weight"},  {"transformer.ln_f.bias", "output_norm.bias"},
                                         {"lm_head.weight", "output.weight"}};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (!strcmp(hf, top[i][0])) return snprintf(out, n, "%s", top[i][1]), 1;
    int layer;
    char rest[128];
    if (sscanf(hf, m->cfg.arch == LORAC_ARCH_GPT2 ? "transformer.h.%d.%127s" : "model.layers.%d.%127s", &layer, rest) != 2) return 0;
    char *dot = strrchr(rest, '.');
    *dot = 0;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(rest, map[i][0])) return snprintf(out, n, "blk.%d.%s.%s", layer, map[i][1], dot + 1), 1;
    return 0;
}

/* Rewrite the tensor info of `name` in the file image: ne = {ne0, ne1}, ggml type. */
static int patch_info(uint8_t *img, size_t len, const char *name, uint64_t ne0, uint64_t ne1, uint32_t type) {
    const uint64_t nl = strlen(name);
    for (size_t i = 0; i + 8 + nl + 4 + 16 + 4 <= len; i++) {
        if (memcmp(img + i, &nl, 8) || memcmp(img + i + 8, name, nl)) continue;
        uint8_t *p = img + i + 8 + nl;
        uint32_t nd;
        memcpy(&nd, p, 4);
        if (nd != 2) return 0;
        memcpy(p + 4, &ne0, 8);
        memcpy(p + 12, &ne1, 8);
        memcpy(p + 20, &type, 4);
        return 1;
    }
    return 0;
}

/* Writes `src` as a llama.cpp-style GGUF: block Linears [out,in] (GPT-2's
 * Conv1D transposed, llama q/k rows interleaved), in block type t (ggml type
 * number gt: Q8_0 by this file's own q8_0_row, the others by
 * lorac_quant_row) where a row is whole 32-value blocks, F32 otherwise.
 * head_too: the token embedding and an untied lm_head (output.weight) in
 * blocks as well, as llama.cpp's quantizer writes them.
 * lorac's writer only writes F32/F16, so a block tensor goes in as an F32
 * placeholder of the same byte count whose info (shape, type) is then
 * patched. Returns the number of block tensors. */
static int write_block_gguf(lorac_model *src, const char *path, lorac_dtype t, uint32_t gt, int head_too) {
    const lorac_config *c = &src->cfg;
    const char *arch = c->arch == LORAC_ARCH_GPT2 ? "gpt2" : "llama";
    lorac_gguf_writer *w = NULL;
    CHECK_OK(lorac_gguf_writer_new(&w));
    char key[128];
#define KEY(s) (snprintf(key, sizeof key, "%s." s, arch), key)
    CHECK_OK(lorac_gguf_set_str(w, "general.architecture", arch));
    CHECK_OK(lorac_gguf_set_u32(w, KEY("context_length"), (uint32_t)c->n_ctx));
    CHECK_OK(lorac_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)c->dim));
    CHECK_OK(lorac_gguf_set_u32(w, KEY("block_count"), (uint32_t)c->n_layer));
    CHECK_OK(lorac_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)c->ffn_dim));
    CHECK_OK(lorac_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)c->n_head));
    CHECK_OK(lorac_gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_head));
    CHECK_OK(lorac_gguf_set_f32(w, c->arch == LORAC_ARCH_GPT2 ? KEY("attention.layer_norm_epsilon")
                                                              : KEY("attention.layer_norm_rms_epsilon"), c->norm_eps));
    if (c->arch == LORAC_ARCH_LLAMA) CHECK_OK(lorac_gguf_set_f32(w, KEY("rope.freq_base"), c->rope_theta));
#undef KEY
    char names[256][64];
    uint64_t q8[256][2];
    int nq8 = 0;
    float *bufs[256];
    int nb = 0;
    for (int i = 0; i < src->n_w; i++) {
        const lorac_weight *wt = &src->w[i];
        char gn[64];
        if (!gguf_name(src, wt->name, gn, sizeof gn)) continue;
        const lorac_linear *L = NULL;
        for (int j = 0; j < src->n_lin; j++)
            if (src->lin[j].W == wt && (is_block(src, &src->lin[j]) || (head_too && &src->lin[j] == src->lm_head)))
                L = &src->lin[j];
        const int emb = head_too && wt == src->wte; /* [vocab, dim] as it is */
        if (!L && !emb) {
            int64_t shape[2] = {wt->shape[0], wt->shape[1]};
            CHECK_OK(lorac_gguf_add_tensor(w, gn, wt->data, wt->ndim, shape, LORAC_F32));
            continue;
        }
        const int out = L ? L->out : (int)wt->shape[0], in = L ? L->in : (int)wt->shape[1], D = c->head_dim;
        const int tr = L && L->w_in_out;
        const int heads = strstr(wt->name, "q_proj") ? c->n_head : strstr(wt->name, "k_proj") ? c->n_kv_head : 0;
        float *g = malloc(sizeof(float) * (size_t)out * in); /* [out, in] in GGUF's row order */
        for (int r = 0; r < out; r++) {
            int hf = r; /* GGUF row h*D + 2j + s  ==  HF row h*D + s*D/2 + j */
            if (heads) hf = (r / D) * D + (r % D % 2) * D / 2 + (r % D) / 2;
            for (int k = 0; k < in; k++) g[(size_t)r * in + k] = tr ? wt->data[(size_t)k * out + hf] : wt->data[(size_t)hf * in + k];
        }
        bufs[nb++] = g;
        if (in % 32) {
            int64_t shape[2] = {out, in};
            CHECK_OK(lorac_gguf_add_tensor(w, gn, g, 2, shape, LORAC_F32));
            continue;
        }
        const size_t row_bytes = (size_t)(in / 32) * lorac_block_bytes(t), bytes = (size_t)out * row_bytes;
        uint8_t *qb = calloc(1, bytes + 8); /* the placeholder holds whole 8-byte pairs of floats: zero padding */
        for (int r = 0; r < out; r++) {
            if (t == LORAC_Q8_0)
                q8_0_row(g + (size_t)r * in, in, qb + (size_t)r * row_bytes);
            else
                CHECK_OK(lorac_quant_row(t, g + (size_t)r * in, qb + (size_t)r * row_bytes, in));
        }
        bufs[nb++] = (float *)qb;
        int64_t shape[2] = {2, (int64_t)((bytes + 7) / 8)};
        CHECK_OK(lorac_gguf_add_tensor(w, gn, (const float *)qb, 2, shape, LORAC_F32));
        snprintf(names[nq8], sizeof names[0], "%s", gn);
        q8[nq8][0] = (uint64_t)in;
        q8[nq8++][1] = (uint64_t)out;
    }
    CHECK_OK(lorac_gguf_writer_write(w, path));
    lorac_gguf_writer_free(w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    char *img;
    size_t len;
    CHECK_OK(lorac_read_file(path, (size_t)1 << 28, &img, &len));
    for (int i = 0; i < nq8; i++) CHECK(patch_info((uint8_t *)img, len, names[i], q8[i][0], q8[i][1], gt), "no info for %s", names[i]);
    CHECK_OK(lorac_write_atomic(path, img, len));
    free(img);
    return nq8;
}

static void test_block_gguf(const char *dir, lorac_dtype t, uint32_t gt) {
    fprintf(stderr, "-- GGUF %s kept: %s\n", lorac_dtype_name(t), dir);
    lorac_model *src = NULL, *keep = NULL, *plain = NULL;
    CHECK_OK(lorac_model_load(test_src_path(dir), &src));
    if (!src) exit(1);
    char path[1200];
    snprintf(path, sizeof path, "%s/q8.gguf", test_tmpdir());
    const int nq8 = write_block_gguf(src, path, t, gt, 0);
    CHECK_OK(lorac_model_load_quantized(path, LORAC_QLOAD_KEEP, &keep));
    CHECK_OK(lorac_model_load(path, &plain));
    if (!keep || !plain) exit(1);
    int kept = 0, nf4 = 0, bad = 0, owned = 0;
    for (int i = 0; i < keep->n_lin; i++) {
        const lorac_linear *L = &keep->lin[i], *P = &plain->lin[i];
        if (!L->q || L->q_shared) continue; /* a tied head is the embedding, counted below */
        bad += L->W->data != NULL;
        if (L->q->fmt == LORAC_QF_NF4) {
            nf4++;
            continue;
        }
        kept += L->q->fmt == lorac_qformat_of_dtype(t);
        owned += L->q->owns;
        float *d = malloc(sizeof(float) * (size_t)L->in * L->out);
        CHECK_OK(lorac_qweight_dequantize(L->q, d));
        for (int o = 0; o < L->out; o++)
            for (int k = 0; k < L->in; k++) {
                float want = P->W->data[L->w_in_out ? (size_t)k * L->out + o : (size_t)o * L->in + k];
                bad += memcmp(&d[(size_t)o * L->in + k], &want, sizeof want) != 0;
            }
        free(d);
    }
    const int want_owned = src->cfg.arch == LORAC_ARCH_LLAMA ? 2 * src->cfg.n_layer : 0; /* the q/k row copies */
    /* the embedding is F32 in this file: NF4 too */
    CHECK(keep->wte_q && keep->wte_q->fmt == LORAC_QF_NF4, "token embedding: %s",
          keep->wte_q ? lorac_qformat_name(keep->wte_q->fmt) : "fp32");
    nf4 += keep->wte_q && keep->wte_q->fmt == LORAC_QF_NF4;
    CHECK(kept == nq8 && bad == 0 && owned == want_owned && nf4 == keep->q_fallback,
          "kept %d of %d %s tensors (%d owned, want %d), %d NF4 / %d fallbacks, %d mismatches", kept, nq8, lorac_dtype_name(t), owned,
          want_owned, nf4, keep->q_fallback, bad);
    if (src->cfg.arch == LORAC_ARCH_LLAMA) /* down_proj rows hold 56 values: F32 in the file, NF4 here */
        CHECK(nf4 == src->cfg.n_layer + 1 && strstr(keep->q_note, "F32"), "%d NF4 fallbacks: %s", nf4, keep->q_note);
    const batch b = make_batch(2, 8, src->cfg.vocab);
    CHECK_OK(lorac_model_reserve(keep, b.B, b.T));
    CHECK_OK(lorac_model_reserve(plain, b.B, b.T));
    /* (Q8_0) the file itself is right: the ordinary loader's weights are the fixture's within Q8_0's rounding
       (half a step, amax / 254, of their 32-value block, plus the scale's f16 rounding; a row or head order mix-up would be far off) */
    int far = 0;
    double worst = 0;
    for (int i = 0; i < src->n_lin && t == LORAC_Q8_0; i++) {
        const lorac_linear *S = &src->lin[i], *P = &plain->lin[i];
        if (!is_block(src, S)) continue;
        for (int o = 0; o < S->out; o++)
            for (int k0 = 0; k0 < S->in; k0 += 32) {
                const int k1 = k0 + 32 < S->in ? k0 + 32 : S->in;
                double amax = 0;
                for (int k = k0; k < k1; k++) amax = fmax(amax, fabs(S->W->data[S->w_in_out ? (size_t)k * S->out + o : (size_t)o * S->in + k]));
                for (int k = k0; k < k1; k++) {
                    const size_t at = S->w_in_out ? (size_t)k * S->out + o : (size_t)o * S->in + k;
                    const double d = fabs(P->W->data[at] - S->W->data[at]);
                    worst = fmax(worst, amax > 0 ? d / amax : d);
                    far += d > amax * (1.0 / 254 + 1.0 / 1024) + 1e-7; /* + the f16 rounding of the scale */
                }
            }
    }
    CHECK(far == 0, "%d weights off by more than Q8_0's rounding (worst %.4g of the block's amax)", far, worst);
    use_dequantized(plain, keep);
    float *yk = logits(keep, &b), *yp = logits(plain, &b);
    compare_rows("kept GGUF blocks vs the same weights in fp32", yk, yp, &b, src->cfg.vocab, 1e-4);
    free(yk);
    free(yp);
    lorac_model_free(src);
    lorac_model_free(keep);
    lorac_model_free(plain);
}

/* ---- e. SmolLM2 Q4_1 ------------------------------------------------------ */

static double rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024;
}

static void test_smollm2(void) {
    const char *path = test_cache_path("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!lorac_file_exists(path)) {
        printf("test_qlora: SmolLM2 part skipped (%s not found; run scripts/fetch-models)\n", path);
        return;
    }
    fprintf(stderr, "-- SmolLM2-135M Q4_1 GGUF kept\n");
    lorac_model *m = NULL;
    const double r0 = rss_mb();
    CHECK_OK(lorac_model_load_quantized(path, LORAC_QLOAD_KEEP, &m));
    if (!m) return;
    const batch b = make_batch(1, 8, m->cfg.vocab);
    const int V = m->cfg.vocab;
    float *yk = logits(m, &b);
    const double r1 = rss_mb();
    lorac_qstats qs;
    lorac_model_qstats(m, &qs);
    const int nlin = 7 * m->cfg.n_layer;
    CHECK(qs.n_linears == nlin && qs.n_fmt[LORAC_QF_Q4_1] + qs.n_fmt[LORAC_QF_Q8_0] == nlin && m->q_fallback == 0,
          "%d Linears kept (%d Q4_1, %d Q8_0), %d fallbacks (%s)", qs.n_linears, qs.n_fmt[LORAC_QF_Q4_1],
          qs.n_fmt[LORAC_QF_Q8_0], m->q_fallback, m->q_note);
    CHECK(qs.embed_fmt >= LORAC_QF_Q4_0 && qs.embed_fmt < LORAC_QF_BF16, "token embedding not kept in its file format (%s)",
          lorac_qformat_name(qs.embed_fmt));
    fprintf(stderr, "   kept: %d Linears (%d Q4_1, %d Q8_0), %.1f MB (%.2f bits/param); embedding %s %.1f MB; base %.1f MB "
            "(%.3f bytes/param) vs %.1f MB fp32\n", qs.n_linears, qs.n_fmt[LORAC_QF_Q4_1], qs.n_fmt[LORAC_QF_Q8_0],
            qs.q_bytes / 1e6, 8 * qs.q_bytes / qs.q_params, lorac_qformat_name(qs.embed_fmt), qs.emb_bytes / 1e6,
            qs.base_bytes / 1e6, qs.base_bytes / qs.base_params, 4e-6 * qs.base_params);
    lorac_model_free(m);
    m = NULL;
    const double r2 = rss_mb();
    CHECK_OK(lorac_model_load(path, &m));
    if (!m) return;
    float *yp = logits(m, &b);
    const double r3 = rss_mb();
    compare_rows("SmolLM2: kept Q4_1/Q8_0 vs dequantized at load", yk, yp, &b, V, 1e-3);
    fprintf(stderr, "   RSS after load + forward (B=1, T=8): kept blocks +%.0f MB, dequantized at load +%.0f MB\n", r1 - r0, r3 - r2);
    free(yk);
    free(yp);
    lorac_model_free(m);
}

/* ---- f. decoding over kept blocks, an untied head kept too ------------------ */


/* The logits of three sequences decoded in one cache: a 12-token prefill of
 * sequence 0 alone (the tiled road: more rows than the GEMV road's 8), then
 * steps of all three together (prompts of 1 and 3 tokens first). Written
 * to out[calls][3][V] (zeros where a sequence had no token in that call). */
enum { DEC_CALLS = 5 };
static float *decode_logits(lorac_model *m, const int ids[3][24]) {
    const int V = m->cfg.vocab;
    float *out = calloc((size_t)DEC_CALLS * 3 * V, sizeof(float));
    lorac_kv *kv = NULL;
    CHECK_OK(lorac_kv_create(m, 3, 24, &kv));
    if (!kv) return out;
    int have[3] = {0, 0, 0};
    const int slot0 = 0;
    const int pre[2] = {0, 12};
    CHECK_OK(lorac_model_decode(m, kv, 1, &slot0, ids[0], pre, NULL, out));
    have[0] = 12;
    for (int c = 1; c < DEC_CALLS; c++) {
        const int slots[3] = {0, 1, 2}, want[3] = {1, 1, c == 1 ? 3 : 1};
        int flat[8], offs[4] = {0};
        for (int i = 0; i < 3; i++) {
            memcpy(flat + offs[i], ids[i] + have[i], sizeof(int) * (size_t)want[i]);
            offs[i + 1] = offs[i] + want[i];
            have[i] += want[i];
        }
        CHECK_OK(lorac_model_decode(m, kv, 3, slots, flat, offs, NULL, out + (size_t)c * 3 * V));
    }
    lorac_kv_free(kv);
    return out;
}

static int *greedy(lorac_model *m, const int *prompt, int n, int max_new, int *n_out) {
    lorac_gen_opts o;
    lorac_gen_opts_default(&o);
    o.max_new = max_new;
    int *out = NULL;
    *n_out = 0;
    CHECK_OK(lorac_generate(m, prompt, n, &o, NULL, NULL, &out, n_out));
    return out;
}

/* The same LoRA pairs (values from one seed) on both models: all-linear and lm_head. */
static void same_adapter(lorac_model *a, lorac_model *b) {
    lorac_model *ms[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        lorac_lora_config c;
        lorac_lora_config_default(&c);
        c.r = 4;
        c.alpha = 8;
        strcpy(c.targets[0], "all-linear");
        strcpy(c.targets[1], "lm_head");
        c.n_targets = 2;
        CHECK_OK(lorac_lora_apply(ms[k], &c, NULL));
        lorac_rng r;
        lorac_rng_seed(&r, 77);
        for (int i = 0; i < ms[k]->n_lin; i++) {
            lorac_lora *l = ms[k]->lin[i].lora;
            for (size_t j = 0; l && j < l->B.n; j++) l->B.data[j] = 0.2f * lorac_rng_normal(&r);
            for (size_t j = 0; l && j < l->A.n; j++) l->A.data[j] = 0.2f * lorac_rng_normal(&r);
        }
    }
}

static void test_decode_kept_head(const char *dir, lorac_dtype t, uint32_t gt) {
    fprintf(stderr, "-- decode over kept %s blocks, untied head kept: %s\n", lorac_dtype_name(t), dir);
    lorac_model *src = NULL, *kept = NULL, *plain = NULL, *nohead = NULL;
    CHECK_OK(lorac_model_load(test_src_path(dir), &src));
    if (!src) exit(1);
    CHECK(!src->cfg.tied && src->lm_head && src->lm_head->W != src->wte, "%s: the fixture's head is untied", dir);
    char path[1200];
    snprintf(path, sizeof path, "%s/kept_head.gguf", test_tmpdir());
    write_block_gguf(src, path, t, gt, 1);
    CHECK_OK(lorac_model_load_quantized(path, LORAC_QLOAD_KEEP | LORAC_QLOAD_KEEP_HEAD, &kept));
    CHECK_OK(lorac_model_load_quantized(path, LORAC_QLOAD_KEEP, &nohead));
    CHECK_OK(lorac_model_load(path, &plain));
    if (!kept || !plain || !nohead) exit(1);
    const lorac_linear *H = kept->lm_head;
    const lorac_qformat f = lorac_qformat_of_dtype(t);
    CHECK(H->q && !H->q_shared && H->q->fmt == f && !H->W->data && kept->wte_q && kept->wte_q->fmt == f,
          "KEEP_HEAD: lm_head %s (shared %d, fp32 values %s), embedding %s", H->q ? lorac_qformat_name(H->q->fmt) : "fp32",
          H->q_shared, H->W->data ? "kept" : "dropped", kept->wte_q ? lorac_qformat_name(kept->wte_q->fmt) : "fp32");
    CHECK(!nohead->lm_head->q && nohead->lm_head->W->data && kept->q_fallback == nohead->q_fallback,
          "without KEEP_HEAD the head stays fp32 (%s); fallbacks %d vs %d", nohead->lm_head->q ? "quantized" : "fp32",
          kept->q_fallback, nohead->q_fallback);
    const int V = src->cfg.vocab, C = src->cfg.dim;
    if (H->q) { /* the kept blocks are the ordinary loader's values exactly */
        float *d = malloc(sizeof(float) * (size_t)V * C);
        CHECK_OK(lorac_qweight_dequantize(H->q, d));
        CHECK(!memcmp(d, plain->lm_head->W->data, sizeof(float) * (size_t)V * C),
              "the kept head dequantizes to other values than the fp32 head");
        free(d);
    }
    use_dequantized(plain, kept); /* the Linears that fell back to NF4 (rows of 56 values), the same in both */
    lorac_rng r;
    lorac_rng_seed(&r, 31);
    int ids[3][24];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 24; j++) ids[i][j] = 1 + (int)(lorac_rng_uniform(&r) * (V - 1));
    for (int with_adapter = 0; with_adapter < 2; with_adapter++) {
        const char *what = with_adapter ? "with an unmerged adapter" : "base alone";
        if (with_adapter) same_adapter(kept, plain);
        float *lk = decode_logits(kept, (const int(*)[24])ids), *lp = decode_logits(plain, (const int(*)[24])ids);
        const double e_dec = test_rel_err(lk, lp, (size_t)DEC_CALLS * 3 * V);
        free(lk), free(lp);
        CHECK_OK(lorac_model_reserve(kept, 1, 16));
        CHECK_OK(lorac_model_reserve(plain, 1, 16));
        CHECK_OK(lorac_model_forward(kept, ids[0], NULL, 1, 16, LORAC_FWD_LM));
        CHECK_OK(lorac_model_forward(plain, ids[0], NULL, 1, 16, LORAC_FWD_LM));
        const double e_fwd = test_rel_err(kept->acts.logits, plain->acts.logits, (size_t)16 * V);
        int nk = 0, np = 0;
        int *gk = greedy(kept, ids[1], 3, 40, &nk), *gp = greedy(plain, ids[1], 3, 40, &np);
        const int same = nk == 40 && np == 40 && !memcmp(gk, gp, sizeof(int) * 40);
        free(gk), free(gp);
        CHECK(e_dec <= 1e-4 && e_fwd <= 1e-4 && same,
              "%s %s: kept vs fp32-dequantized: decode logits rel err %.3g, full forward %.3g, greedy ids %s", dir, what,
              e_dec, e_fwd, same ? "equal" : "DIFFER");
        fprintf(stderr, "   %s: decode logits rel err %.2g, full forward %.2g, 40 greedy ids %s\n", what, e_dec, e_fwd,
                same ? "equal" : "differ");
    }
    /* the head trained in full: fp32 again (the same values), trainable */
    lorac_lora_config c;
    lorac_lora_config_default(&c);
    strcpy(c.modules_to_save[0], "lm_head");
    c.n_modules_to_save = 1;
    lorac_model_free(kept); /* a fresh one, without the adapter */
    CHECK_OK(lorac_model_load_quantized(path, LORAC_QLOAD_KEEP | LORAC_QLOAD_KEEP_HEAD, &kept));
    if (kept) {
        CHECK_OK(lorac_lora_apply(kept, &c, NULL));
        CHECK(!kept->lm_head->q && kept->lm_head->W->grad &&
                  !memcmp(kept->lm_head->W->data, plain->lm_head->W->data, sizeof(float) * (size_t)V * C),
              "modules_to_save lm_head over a kept head: %s", kept->lm_head->q ? "still quantized" : "other values");
    }
    lorac_model_free(src);
    lorac_model_free(kept);
    lorac_model_free(plain);
    lorac_model_free(nohead);
}

int main(void) {
    lorac_qact_force(LORAC_QACT_F32); /* see the end of the comment at the top */
    test_nf4_fixture("tests/fixtures/models/tiny_llama", LORAC_BIAS_NONE);
    test_nf4_fixture("tests/fixtures/models/tiny_gpt2", LORAC_BIAS_ALL);
    test_block_gguf("tests/fixtures/models/tiny_llama", LORAC_Q8_0, 8);
    test_block_gguf("tests/fixtures/models/tiny_gpt2", LORAC_Q8_0, 8);
    test_block_gguf("tests/fixtures/models/tiny_llama", LORAC_Q5_0, 6);
    test_block_gguf("tests/fixtures/models/tiny_gpt2", LORAC_Q5_1, 7);
    test_block_gguf("tests/fixtures/models/tiny_llama", LORAC_IQ4_NL, 20);
    test_smollm2();
    test_decode_kept_head("tests/fixtures/models/tiny_llama", LORAC_Q8_0, 8);
    test_decode_kept_head("tests/fixtures/models/tiny_llama", LORAC_Q5_1, 7);
    return test_summary("test_qlora");
}
