/* config_json.c - a Hugging Face config.json for a lorac_config: what
 * `lorac merge` writes beside the merged weights when the base had no
 * config.json of its own (a GGUF file, a random model).
 *
 * transformers picks the modeling code from model_type, and each family's
 * config class reads its own keys, so the family matters, not only the
 * sizes: Qwen2's q/k/v biases are implied by model_type "qwen2" (a Llama
 * config's attention_bias would give o_proj a bias too, which the
 * checkpoint does not have); Qwen3 and Gemma 3 RMSNorm q and k per head;
 * Gemma scales embeddings, uses (1 + w) norms, GeGLU and sliding-window
 * layers with their own RoPE base; Phi-3 has fused qkv_proj / gate_up_proj;
 * Mistral (a GGUF "llama" with a sliding window) attends within a window.
 * RoPE is written with the legacy keys (rope_theta, rope_scaling,
 * rope_local_base_freq) that transformers 4 reads and 5 converts.
 *
 * What a config.json cannot say is refused, not approximated: Llama 3.1's
 * per-frequency factors read from a GGUF's rope_freqs.weight (the
 * rope_scaling parameters they were made from are not in the file). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/config.h"

/* The shortest decimal that reads back as the same float (1e-06, not
 * 9.99999997475243e-07). */
static double shortest(float x) {
    char buf[32];
    for (int prec = 6; prec < 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) return strtod(buf, NULL);
    }
    return (double)x;
}

static void num(cJSON *j, const char *key, double v) { cJSON_AddNumberToObject(j, key, v); }
static void str(cJSON *j, const char *key, const char *v) { cJSON_AddStringToObject(j, key, v); }

/* The transformers family of a Llama-family config: its model_type and
 * *ForCausalLM class. */
typedef enum { FAM_LLAMA, FAM_MISTRAL, FAM_QWEN2, FAM_QWEN3, FAM_GEMMA2, FAM_GEMMA3, FAM_PHI3 } family;

static family family_of(const lorac_config *c) {
    if (c->fused) return FAM_PHI3;
    if (c->gemma) return c->qk_norm ? FAM_GEMMA3 : FAM_GEMMA2;
    if (c->qk_norm) return FAM_QWEN3;
    if (!strncmp(c->model_type, "qwen2", 5)) return FAM_QWEN2;
    if (c->sliding_window > 0) return FAM_MISTRAL;
    return FAM_LLAMA;
}

static void rope_keys(cJSON *j, const lorac_config *c) {
    num(j, "rope_theta", shortest(c->rope_theta));
    if (c->rope_scale_type == 1 || c->rope_scale_type == 2) {
        cJSON *rs = cJSON_AddObjectToObject(j, "rope_scaling");
        str(rs, "rope_type", c->rope_scale_type == 1 ? "linear" : "llama3");
        num(rs, "factor", shortest(c->rope_factor));
        if (c->rope_scale_type == 2) {
            num(rs, "low_freq_factor", shortest(c->rope_low_freq));
            num(rs, "high_freq_factor", shortest(c->rope_high_freq));
            num(rs, "original_max_position_embeddings", c->rope_orig_ctx);
        }
    }
}

/* layer_types: which layers attend within the sliding window. */
static void layer_types(cJSON *j, const lorac_config *c) {
    cJSON *lt = cJSON_AddArrayToObject(j, "layer_types");
    for (int l = 0; l < c->n_layer; l++)
        cJSON_AddItemToArray(lt, cJSON_CreateString(l < (int)sizeof c->local_layer && c->local_layer[l]
                                                         ? "sliding_attention"
                                                         : "full_attention"));
}

static lorac_status llama_family_json(cJSON *j, const lorac_config *c) {
    static const char *const names[][2] = {
        [FAM_LLAMA] = {"llama", "LlamaForCausalLM"},         [FAM_MISTRAL] = {"mistral", "MistralForCausalLM"},
        [FAM_QWEN2] = {"qwen2", "Qwen2ForCausalLM"},         [FAM_QWEN3] = {"qwen3", "Qwen3ForCausalLM"},
        [FAM_GEMMA2] = {"gemma2", "Gemma2ForCausalLM"},      [FAM_GEMMA3] = {"gemma3_text", "Gemma3ForCausalLM"},
        [FAM_PHI3] = {"phi3", "Phi3ForCausalLM"},
    };
    if (c->rope_scale_type == 3)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "cannot write a config.json for a base whose RoPE comes from GGUF "
                          "rope_freqs.weight (Llama 3.1 / 3.2): its rope_scaling parameters are not in the file; hint: "
                          "merge into the Hugging Face checkpoint, or write a GGUF with --requantize same");
    const family f = family_of(c);
    cJSON *arch = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(names[f][1]));
    str(j, "model_type", names[f][0]);
    str(j, f == FAM_GEMMA2 || f == FAM_GEMMA3 ? "hidden_activation" : "hidden_act",
        f == FAM_GEMMA2 || f == FAM_GEMMA3 ? "gelu_pytorch_tanh" : "silu");
    num(j, "hidden_size", c->dim);
    num(j, "intermediate_size", c->ffn_dim);
    num(j, "num_hidden_layers", c->n_layer);
    num(j, "num_attention_heads", c->n_head);
    num(j, "num_key_value_heads", c->n_kv_head);
    num(j, "head_dim", c->head_dim);
    num(j, "rms_norm_eps", shortest(c->norm_eps));
    num(j, "max_position_embeddings", c->n_ctx);
    num(j, "attention_dropout", shortest(c->attn_dropout));
    rope_keys(j, c);
    switch (f) {
    case FAM_LLAMA:
        cJSON_AddBoolToObject(j, "attention_bias", c->attn_bias);
        cJSON_AddBoolToObject(j, "mlp_bias", c->mlp_bias);
        break;
    case FAM_MISTRAL: num(j, "sliding_window", c->sliding_window); break;
    case FAM_QWEN2:
    case FAM_QWEN3:
        cJSON_AddBoolToObject(j, "use_sliding_window", 0);
        if (f == FAM_QWEN3) cJSON_AddBoolToObject(j, "attention_bias", c->attn_bias);
        break;
    case FAM_GEMMA2:
    case FAM_GEMMA3: {
        const double scale = c->attn_scale > 0 ? c->attn_scale : 1.0 / sqrt((double)c->head_dim);
        num(j, "query_pre_attn_scalar", shortest((float)(1.0 / (scale * scale))));
        num(j, "sliding_window", c->sliding_window);
        layer_types(j, c);
        if (c->rope_local_theta > 0) num(j, "rope_local_base_freq", shortest(c->rope_local_theta));
        if (c->attn_softcap > 0) num(j, "attn_logit_softcapping", shortest(c->attn_softcap));
        else cJSON_AddNullToObject(j, "attn_logit_softcapping");
        if (c->final_softcap > 0) num(j, "final_logit_softcapping", shortest(c->final_softcap));
        else cJSON_AddNullToObject(j, "final_logit_softcapping");
        break;
    }
    case FAM_PHI3:
        num(j, "original_max_position_embeddings", c->n_ctx);
        num(j, "resid_pdrop", shortest(c->hidden_dropout));
        if (c->sliding_window > 0) num(j, "sliding_window", c->sliding_window);
        else cJSON_AddNullToObject(j, "sliding_window");
        break;
    }
    return LORAC_OK;
}

static void gpt2_json(cJSON *j, const lorac_config *c) {
    cJSON_AddItemToArray(cJSON_AddArrayToObject(j, "architectures"), cJSON_CreateString("GPT2LMHeadModel"));
    str(j, "model_type", "gpt2");
    str(j, "activation_function", "gelu_new");
    num(j, "n_embd", c->dim);
    num(j, "n_layer", c->n_layer);
    num(j, "n_head", c->n_head);
    num(j, "n_inner", c->ffn_dim);
    num(j, "n_positions", c->n_ctx);
    num(j, "n_ctx", c->n_ctx);
    num(j, "layer_norm_epsilon", shortest(c->norm_eps));
    num(j, "resid_pdrop", shortest(c->hidden_dropout));
    num(j, "attn_pdrop", shortest(c->attn_dropout));
    num(j, "embd_pdrop", shortest(c->embd_dropout));
}

lorac_status lorac_config_to_hf_json(const lorac_config *c, cJSON **out) {
    *out = NULL;
    if (c->arch == LORAC_ARCH_BERT)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "cannot write a config.json for an encoder without its own; hint: "
                          "encoders are read from Hugging Face directories, whose config.json is copied");
    cJSON *j = cJSON_CreateObject();
    if (!j) return lorac_fail(LORAC_ERR_NOMEM, "out of memory building config.json");
    if (c->arch == LORAC_ARCH_GPT2) {
        gpt2_json(j, c);
    } else {
        lorac_status st = llama_family_json(j, c);
        if (st != LORAC_OK) {
            cJSON_Delete(j);
            return st;
        }
    }
    num(j, "vocab_size", c->vocab);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tied);
    if (c->bos_id >= 0) num(j, "bos_token_id", c->bos_id);
    if (c->eos_id >= 0) num(j, "eos_token_id", c->eos_id);
    if (c->pad_id >= 0) num(j, "pad_token_id", c->pad_id);
    str(j, "torch_dtype", "float32");
    *out = j;
    return LORAC_OK;
}
