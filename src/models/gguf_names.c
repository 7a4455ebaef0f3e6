/* gguf_names.c - how llama.cpp's GGUF files name and lay out the tensors of
 * a Hugging Face model: the tensor name for each HF name (per architecture,
 * with Gemma's four norms), and the interleaved per-head row order of the q
 * and k projections in files of llama.cpp's "llama" arch, which weights.c
 * undoes so that every base is held in HF's rotate-half order. Used when
 * reading GGUF bases (weights.c, quantize.c) and writing GGUF adapters
 * (lora/export_gguf.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "models/model_internal.h"

/* HF name -> GGUF name (llama.cpp's tensor naming). */
int lorac_gguf_tensor_name(const lorac_config *c, const char *hf, char *out, size_t n) {
    static const char *const llama[][2] = {
        {"self_attn.q_proj", "attn_q"},   {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
        {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"},    {"input_layernorm", "attn_norm"}, {"post_attention_layernorm", "ffn_norm"},
        {"self_attn.q_norm", "attn_q_norm"}, {"self_attn.k_norm", "attn_k_norm"},
        {"self_attn.qkv_proj", "attn_qkv"}, {"mlp.gate_up_proj", "ffn_up"}};
    /* Gemma's four norms: llama.cpp's ffn_norm is the one before the MLP */
    static const char *const gemma[][2] = {{"post_attention_layernorm", "post_attention_norm"},
                                           {"pre_feedforward_layernorm", "ffn_norm"},
                                           {"post_feedforward_layernorm", "post_ffw_norm"}};
    static const char *const gpt2[][2] = {{"ln_1", "attn_norm"},        {"attn.c_attn", "attn_qkv"},
                                          {"attn.c_proj", "attn_output"}, {"ln_2", "ffn_norm"},
                                          {"mlp.c_fc", "ffn_up"},         {"mlp.c_proj", "ffn_down"}};
    static const char *const top[][2] = {{"model.embed_tokens.weight", "token_embd.weight"},
                                         {"transformer.wte.weight", "token_embd.weight"},
                                         {"transformer.wpe.weight", "position_embd.weight"},
                                         {"model.norm.weight", "output_norm.weight"},
                                         {"transformer.ln_f.weight", "output_norm.weight"},
                                         {"transformer.ln_f.bias", "output_norm.bias"},
                                         {"lm_head.weight", "output.weight"}};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (!strcmp(hf, top[i][0])) return snprintf(out, n, "%s", top[i][1]), 1;
    int layer;
    char rest[128];
    const char *pre = c->arch == LORAC_ARCH_GPT2 ? "transformer.h.%d.%127s" : "model.layers.%d.%127s";
    if (sscanf(hf, pre, &layer, rest) != 2) return 0;
    char *dot = strrchr(rest, '.'); /* ".weight" / ".bias" */
    if (!dot) return 0;
    *dot = 0;
    if (c->gemma)
        for (size_t i = 0; i < sizeof gemma / sizeof gemma[0]; i++)
            if (!strcmp(rest, gemma[i][0])) return snprintf(out, n, "blk.%d.%s.%s", layer, gemma[i][1], dot + 1), 1;
    const char *const(*tab)[2] = c->arch == LORAC_ARCH_GPT2 ? gpt2 : llama;
    size_t nt = c->arch == LORAC_ARCH_GPT2 ? sizeof gpt2 / sizeof gpt2[0] : sizeof llama / sizeof llama[0];
    for (size_t i = 0; i < nt; i++)
        if (!strcmp(rest, tab[i][0])) return snprintf(out, n, "blk.%d.%s.%s", layer, tab[i][1], dot + 1), 1;
    return 0;
}

/* llama.cpp stores q/k rows of each head interleaved (pairs); HF stores the
 * two rotate-half halves. GGUF row h*D + 2j + s  ==  HF row h*D + s*D/2 + j. */
void lorac_unpermute_rope_rows(float *w, int heads, int D, int in) {
    float *tmp = malloc(sizeof(float) * (size_t)D * in);
    LORAC_ASSERT(tmp);
    for (int h = 0; h < heads; h++) {
        float *blk = w + (size_t)h * D * in;
        memcpy(tmp, blk, sizeof(float) * (size_t)D * in);
        for (int j = 0; j < D / 2; j++)
            for (int s = 0; s < 2; s++)
                memcpy(blk + (size_t)(s * D / 2 + j) * in, tmp + (size_t)(2 * j + s) * in, sizeof(float) * in);
    }
    free(tmp);
}

int lorac_gguf_rope_heads(const lorac_model *m, const char *name) {
    if (!m->gguf || m->cfg.arch != LORAC_ARCH_LLAMA || !m->cfg.gguf_rope_interleaved) return 0;
    if (strstr(name, "q_proj.weight")) return m->cfg.n_head;
    if (strstr(name, "k_proj.weight")) return m->cfg.n_kv_head;
    return 0;
}
