/* export_gguf.c - LoRA adapter -> llama.cpp LoRA GGUF (see export_gguf.h).
 *
 * Conventions followed, as llama.cpp reads them:
 *  - src/llama-adapter.cpp, llama_adapter_lora_init_impl: general.type must be
 *    "adapter", general.architecture must equal the model's, adapter.type
 *    "lora", adapter.lora.alpha read as a float32; tensors must end in
 *    ".lora_a" / ".lora_b" and the rest must be a base tensor name; shapes are
 *    checked as model->ne[0] == a->ne[0], model->ne[1] == b->ne[1] and
 *    a->ne[1] == b->ne[0] ("lora_a tensor is not transposed" otherwise).
 *  - src/llama-graph.cpp, build_lora_mm: res = W cur + scale * B (A cur) with
 *    scale = alpha ? user_scale * alpha / rank : user_scale, rank = b->ne[0].
 *  - convert_lora_to_gguf.py: writes lora_A [r, in] and lora_B [out, r] as
 *    PEFT stores them (gguf-py reverses the shape into ne), names them
 *    dest_name + ".lora_a" / ".lora_b", writes lora_alpha unchanged (it does
 *    not fold rsLoRA: we do, alpha = scale * r), and refuses lm_head when the
 *    base has no output tensor of its own (tied embeddings, llama.cpp issue
 *    9065). Its tensors pass through the base converter's modify_tensors, so
 *    for Llama the q/k LoRA goes through LlamaModel.permute(w, n_head, n_kv):
 *    w.reshape(n_head, 2, rows // n_head // 2, ...).swapaxes(1, 2).reshape(w.shape),
 *    which its LoraTorchTensor applies to lora_B's rows only (A is the same
 *    for every row). We apply the same row permutation to B. For GPT-2 that
 *    script would also route the LoRA through the base's Conv1D transpose;
 *    PEFT's Conv1D LoRA is already [r, in] / [out, r], matching llama.cpp's
 *    [out, in] GPT-2 matrices, so lorac writes it untransposed. */
#include "lora/export_gguf.h"
#include "models/model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/gguf_write.h"
#include "lora/adapter_io.h"
#include "lora/lora.h"

/* ---- names ------------------------------------------------------------- */

int lorac_gguf_linear_name(const lorac_model *m, const char *module, char *out, size_t n) {
    if (m->cfg.arch == LORAC_ARCH_BERT) return 0;
    if (!strcmp(module, "lm_head")) return snprintf(out, n, "output.weight"), 1;
    /* the table GGUF bases are read with (src/models/gguf_names.c) */
    char hf[200];
    snprintf(hf, sizeof hf, "%s.weight", module);
    return lorac_gguf_tensor_name(&m->cfg, hf, out, n) && strncmp(out, "blk.", 4) == 0;
}

/* llama.cpp's architecture name for the base, and whether q/k rows are kept
 * in interleaved RoPE order there (llama and mistral, converted through
 * LlamaModel; qwen2 is converted unpermuted and run with NeoX RoPE). */
static lorac_status llama_cpp_arch(const lorac_model *m, const char **arch, int *permute_qk) {
    const char *mt = m->cfg.model_type;
    *permute_qk = 0;
    switch (m->cfg.arch) {
    case LORAC_ARCH_GPT2: *arch = "gpt2"; return LORAC_OK;
    case LORAC_ARCH_LLAMA:
        if (!strcmp(mt, "llama") || !strcmp(mt, "mistral")) {
            *arch = "llama";
            *permute_qk = 1;
            return LORAC_OK;
        }
        /* converted unpermuted, run with NeoX RoPE (config.json's model_type, or the GGUF base's arch) */
        static const char *const neox[][2] = {{"qwen2", "qwen2"},   {"qwen3", "qwen3"}, {"gemma3_text", "gemma3"},
                                              {"gemma3", "gemma3"}, {"gemma2", "gemma2"}, {"phi3", "phi3"}};
        for (size_t i = 0; i < sizeof neox / sizeof neox[0]; i++)
            if (!strcmp(mt, neox[i][0])) {
                *arch = neox[i][1];
                return LORAC_OK;
            }
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "model_type '%s' has no known llama.cpp architecture; hint: export "
                          "supports llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3 and gpt2 bases", mt);
    case LORAC_ARCH_BERT:
    default:
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s is an encoder (%s): llama.cpp's --lora applies adapters to decoder "
                          "language models only; hint: export works for llama-family and gpt2 bases; keep the PEFT "
                          "adapter for encoders", m->path, mt);
    }
}

/* ---- layout conversions -------------------------------------------------- */

/* HF rotate-half row order -> llama.cpp's interleaved order, for a matrix of
 * heads*D rows of `cols` floats: llama.cpp row h*D + 2j + s holds HF row
 * h*D + s*D/2 + j (LlamaModel.permute; the inverse of gguf_names.c's
 * unpermute_rope_rows). */
static void permute_rope_rows(float *dst, const float *src, int heads, int D, int cols) {
    for (int h = 0; h < heads; h++)
        for (int j = 0; j < D / 2; j++)
            for (int s = 0; s < 2; s++)
                memcpy(dst + ((size_t)h * D + 2 * j + s) * cols, src + ((size_t)h * D + s * D / 2 + j) * cols,
                       sizeof(float) * (size_t)cols);
}

/* lorac's split B [out, r] (block p of rows uses A's rows p*r..) -> one
 * block-diagonal [out, parts*r], times `mul`. */
static void block_diag(float *dst, const float *B, int out, int r, int parts, float mul) {
    const int ob = out / parts, R = parts * r;
    memset(dst, 0, sizeof(float) * (size_t)out * R);
    for (int o = 0; o < out; o++)
        for (int k = 0; k < r; k++) dst[(size_t)o * R + (size_t)(o / ob) * r + k] = mul * B[(size_t)o * r + k];
}

/* ---- checks -------------------------------------------------------------- */

static lorac_status check_exportable(const lorac_model *m) {
    if (m->wte_lora)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "the adapter has LoRA on the embedding '%s' (lora_embedding_A/B): lorac "
                          "writes llama.cpp LoRA GGUFs of Linear pairs only; hint: lorac merge it, or train without the "
                          "embedding in --target", m->wte->name);
    if (m->head)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "the adapter has a classification head '%s' (%d classes): llama.cpp "
                          "cannot hold a classifier; hint: export adapters trained with --task lm, or use lorac merge "
                          "for a full checkpoint", m->head->name, m->n_classes);
    for (int i = 0; i < m->n_w; i++)
        if (m->w[i].grad)
            return lorac_fail(LORAC_ERR_UNSUPPORTED, "the adapter trains base tensor '%s' in full (modules_to_save or "
                              "bias): a llama.cpp LoRA GGUF holds only lora_a/lora_b pairs; hint: train with --bias none "
                              "and no --modules-to-save, or use lorac merge", m->w[i].name);
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        if (L->lora && L == m->lm_head && m->cfg.tied)
            return lorac_fail(LORAC_ERR_UNSUPPORTED, "LoRA on lm_head, whose weight is tied to the token embedding: "
                              "llama.cpp's base has no output.weight of its own to attach it to; hint: train without "
                              "lm_head in --target, or use lorac merge");
        if (L->lora && L->lora->dora)
            return lorac_fail(LORAC_ERR_UNSUPPORTED, "'%s' is a DoRA adapter (use_dora): a llama.cpp LoRA GGUF holds "
                              "lora_a/lora_b pairs only, no lora_magnitude_vector; hint: lorac merge it into the base "
                              "instead", L->name);
        if (L->lora && L->lora->A0)
            return lorac_fail(LORAC_ERR_UNSUPPORTED, "'%s' was initialised by PiSSA/OLoRA, which changed the base weight: "
                              "its pair alone does not apply to the original base; hint: save the adapter with lorac "
                              "(it is written converted to a plain LoRA on the original base) and export that", L->name);
    }
    return LORAC_OK;
}

/* ---- export -------------------------------------------------------------- */

typedef struct owned_bufs {
    float **p;
    int n;
} owned_bufs;

static void free_bufs(owned_bufs *b) {
    for (int i = 0; i < b->n; i++) free(b->p[i]);
    free(b->p);
}

static lorac_status new_buf(owned_bufs *b, size_t n, float **out) {
    LORAC_TRY(lorac_alloc((void **)out, n, sizeof(float), "LoRA export buffer"));
    b->p[b->n++] = *out;
    return LORAC_OK;
}

/* For a GGUF base, the tensor the pair attaches to must be there with the shape. */
static lorac_status check_base_tensor(const lorac_model *m, const lorac_linear *L, const char *name) {
    if (!m->gguf) return LORAC_OK;
    const lorac_tensor_desc *t = lorac_gguf_find_tensor(m->gguf, name);
    if (!t)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: has no tensor '%s' for the LoRA on '%s'; hint: is this the adapter's "
                          "base model?", m->path, name, L->name);
    if (t->ndim != 2 || t->shape[0] != L->out || t->shape[1] != L->in)
        return lorac_fail(LORAC_ERR_SHAPE, "%s: tensor '%s' is not [%d, %d] as the LoRA on '%s' needs", m->path, name,
                          L->out, L->in, L->name);
    return LORAC_OK;
}

static lorac_status add_module(lorac_gguf_writer *w, owned_bufs *bufs, const lorac_model *m, const lorac_linear *L,
                               int permute_qk, lorac_dtype dtype, int *fused) {
    const lorac_lora *l = L->lora;
    char base[96], na[128], nb[128];
    if (!lorac_gguf_linear_name(m, L->name, base, sizeof base))
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "module '%s' has no llama.cpp tensor to attach a LoRA to; hint: "
                          "llama.cpp applies LoRA to the attention and MLP projections and the LM head", L->name);
    LORAC_TRY(check_base_tensor(m, L, base));
    snprintf(na, sizeof na, "%s.lora_a", base);
    snprintf(nb, sizeof nb, "%s.lora_b", base);
    const int R = l->parts * l->r;
    const float *B = l->B.data;
    float *Bx;
    if (l->parts > 1) { /* split q|k|v -> one block-diagonal rank parts*r pair */
        LORAC_TRY(new_buf(bufs, (size_t)L->out * R, &Bx));
        block_diag(Bx, l->B.data, L->out, l->r, l->parts, (float)l->parts);
        B = Bx;
        (*fused)++;
    }
    const int is_q = permute_qk && strstr(L->name, "self_attn.q_proj") != NULL;
    const int is_k = permute_qk && strstr(L->name, "self_attn.k_proj") != NULL;
    if (is_q || is_k) {
        const int heads = is_q ? m->cfg.n_head : m->cfg.n_kv_head, D = m->cfg.head_dim;
        if (heads * D != L->out || D % 2 != 0)
            return lorac_fail(LORAC_ERR_SHAPE, "module '%s': %d rows are not %d heads of an even head_dim %d", L->name,
                              L->out, heads, D);
        LORAC_TRY(new_buf(bufs, (size_t)L->out * R, &Bx));
        permute_rope_rows(Bx, B, heads, D, R);
        B = Bx;
    }
    const int64_t sa[2] = {R, L->in}, sb[2] = {L->out, R};
    LORAC_TRY(lorac_gguf_add_tensor(w, na, l->A.data, 2, sa, dtype));
    return lorac_gguf_add_tensor(w, nb, B, 2, sb, dtype);
}

lorac_status lorac_export_gguf_model(const lorac_model *m, const char *path, lorac_dtype dtype,
                                     lorac_gguf_export_info *info) {
    const char *arch;
    int permute_qk;
    if (dtype != LORAC_F32 && dtype != LORAC_F16)
        return lorac_fail(LORAC_ERR_ARG, "GGUF export: type %s is not supported; hint: f32 or f16", lorac_dtype_name(dtype));
    LORAC_TRY(llama_cpp_arch(m, &arch, &permute_qk));
    LORAC_TRY(check_exportable(m));
    const lorac_linear *first = NULL;
    int n_mod = 0;
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_lora *l = m->lin[i].lora;
        if (!l) continue;
        n_mod++;
        if (!first) first = &m->lin[i];
        else if (l->r != first->lora->r || l->scale != first->lora->scale)
            return lorac_fail(LORAC_ERR_UNSUPPORTED, "module '%s' has rank %d and scale %g, '%s' rank %d and scale %g: a "
                              "llama.cpp LoRA file has one alpha; hint: export adapters with one r and lora_alpha",
                              m->lin[i].name, l->r, (double)l->scale, first->name, first->lora->r,
                              (double)first->lora->scale);
    }
    if (!first) return lorac_fail(LORAC_ERR_ARG, "the model carries no LoRA adapter to export; hint: pass --adapter");
    /* llama.cpp scales by alpha / rank: alpha = scale * r reproduces lorac's
     * scale (alpha/r, or alpha/sqrt(r) with rsLoRA). Keep lora_alpha exactly
     * when that is what it comes to. */
    const lorac_lora *l0 = first->lora;
    float alpha = (float)((double)l0->scale * l0->r);
    if (fabsf(alpha - l0->alpha) <= 1e-6f * l0->alpha) alpha = l0->alpha;

    lorac_gguf_writer *w;
    LORAC_TRY(lorac_gguf_writer_new(&w));
    owned_bufs bufs = {0};
    int fused = 0;
    lorac_status st = lorac_alloc((void **)&bufs.p, (size_t)2 * n_mod + 1, sizeof *bufs.p, "LoRA export buffers");
    if (st == LORAC_OK) st = lorac_gguf_set_str(w, "general.architecture", arch);
    if (st == LORAC_OK) st = lorac_gguf_set_str(w, "general.type", "adapter");
    if (st == LORAC_OK) st = lorac_gguf_set_str(w, "general.name", "lorac LoRA adapter");
    if (st == LORAC_OK) st = lorac_gguf_set_str(w, "adapter.type", "lora");
    if (st == LORAC_OK) st = lorac_gguf_set_f32(w, "adapter.lora.alpha", alpha);
    for (int i = 0; i < m->n_lin && st == LORAC_OK; i++)
        if (m->lin[i].lora) st = add_module(w, &bufs, m, &m->lin[i], permute_qk, dtype, &fused);
    if (st == LORAC_OK) st = lorac_gguf_writer_write(w, path);
    if (st == LORAC_OK && info) {
        memset(info, 0, sizeof *info);
        snprintf(info->arch, sizeof info->arch, "%s", arch);
        info->n_modules = n_mod;
        info->n_tensors = lorac_gguf_writer_tensor_count(w);
        info->n_fused = fused;
        info->r = l0->r;
        info->alpha = alpha;
        info->bytes = lorac_gguf_writer_size(w);
    }
    free_bufs(&bufs);
    lorac_gguf_writer_free(w);
    return st;
}

lorac_status lorac_export_gguf(lorac_model *m, const char *adapter_dir, const char *path, lorac_dtype dtype,
                               lorac_gguf_export_info *info) {
    const char *arch;
    int permute_qk;
    lorac_status st = llama_cpp_arch(m, &arch, &permute_qk);
    if (st != LORAC_OK) return st;
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].lora)
            return lorac_fail(LORAC_ERR_ARG, "%s: the base already carries an adapter on '%s'; hint: export from a "
                              "freshly loaded base", m->path, m->lin[i].name);
    lorac_lora_config c;
    int n_classes = 0;
    LORAC_TRY(lorac_adapter_read_config(adapter_dir, &c, &n_classes, NULL, 0));
    if (c.n_modules_to_save > 0)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: the adapter trains '%s' in full (modules_to_save): a llama.cpp "
                          "LoRA GGUF holds only lora_a/lora_b pairs and no classifier; hint: use lorac merge for a "
                          "full checkpoint", adapter_dir, c.modules_to_save[0]);
    if (n_classes > 0)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: the adapter has a classification head (%d classes): llama.cpp "
                          "cannot hold a classifier; hint: export adapters trained with --task lm", adapter_dir,
                          n_classes);
    if (c.use_dora)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: a DoRA adapter (use_dora): llama.cpp's LoRA GGUF has no "
                          "lora_magnitude_vector; hint: lorac merge it into the base instead", adapter_dir);
    st = lorac_adapter_load(m, adapter_dir, NULL);
    if (st == LORAC_OK) {
        st = lorac_export_gguf_model(m, path, dtype, info);
        if (st == LORAC_ERR_UNSUPPORTED) lorac_error_prefix("%s", adapter_dir);
    }
    return st;
}
