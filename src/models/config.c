#include "models/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* Integer field: first of the given names that is present as a number.
 * cJSON's valueint is the number saturated to [INT_MIN, INT_MAX] (a cast of
 * valuedouble would be undefined for 1e300); lorac_config_check then refuses
 * what is out of range. */
static int json_int(const cJSON *o, int def, const char *const *names) {
    for (; *names; names++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, *names);
        if (cJSON_IsNumber(v)) return v->valueint;
    }
    return def;
}

static double json_num(const cJSON *o, double def, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static int json_bool(const cJSON *o, int def, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* eos_token_id may be a number or a list (Llama 3): take the first. */
static int json_token_id(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsNumber(v)) return v->valueint;
    if (cJSON_IsArray(v) && cJSON_IsNumber(cJSON_GetArrayItem(v, 0))) return cJSON_GetArrayItem(v, 0)->valueint;
    return -1;
}

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* BERT ("bert") and DistilBERT ("distilbert") config.json. Both use exact
 * GELU and LayerNorm eps 1e-12 (DistilBERT hard-codes it). */
static lorac_status encoder_config(const cJSON *o, const char *type, const char *path, lorac_config *c) {
    c->arch = LORAC_ARCH_BERT;
    c->distil = !strcmp(type, "distilbert");
    c->dim = json_int(o, 0, NAMES("hidden_size", "dim"));
    c->n_layer = json_int(o, 0, NAMES("num_hidden_layers", "n_layers"));
    c->n_head = json_int(o, 0, NAMES("num_attention_heads", "n_heads"));
    c->n_kv_head = c->n_head;
    c->ffn_dim = json_int(o, 0, NAMES("intermediate_size", "hidden_dim"));
    c->n_ctx = json_int(o, 512, NAMES("max_position_embeddings"));
    c->type_vocab = c->distil ? 0 : json_int(o, 2, NAMES("type_vocab_size"));
    c->norm_eps = c->distil ? 1e-12f : (float)json_num(o, 1e-12, "layer_norm_eps");
    c->attn_bias = c->mlp_bias = 1;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, c->distil ? "activation" : "hidden_act");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "gelu"))
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: activation '%s' is not supported; hint: lorac's encoders use exact GELU (\"gelu\")",
                          path, act->valuestring);
    const cJSON *pe = cJSON_GetObjectItemCaseSensitive(o, "position_embedding_type");
    if (cJSON_IsString(pe) && strcmp(pe->valuestring, "absolute"))
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: position_embedding_type '%s' is not supported; hint: only \"absolute\"",
                          path, pe->valuestring);
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(o, "id2label");
    c->num_labels = cJSON_IsObject(labels) ? cJSON_GetArraySize(labels) : json_int(o, 0, NAMES("num_labels"));
    c->pool = LORAC_POOL_CLS;
    c->hidden_dropout = (float)json_num(o, 0.1, c->distil ? "dropout" : "hidden_dropout_prob");
    c->attn_dropout = (float)json_num(o, 0.1, c->distil ? "attention_dropout" : "attention_probs_dropout_prob");
    c->cls_dropout = (float)json_num(o, c->distil ? 0.2 : c->hidden_dropout, c->distil ? "seq_classif_dropout" : "classifier_dropout");
    return LORAC_OK;
}

/* ---- the Llama family: Llama 1-3, Mistral, Qwen2 / Qwen3, Gemma 2 / 3, Phi-3 ---- */

static const char *const llama_family[] = {"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3", NULL};

static int is_llama_family(const char *type) {
    for (const char *const *t = llama_family; *t; t++)
        if (!strcmp(type, *t)) return 1;
    return 0;
}

static const cJSON *json_obj(const cJSON *o, const char *name) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
    return cJSON_IsObject(v) ? v : NULL;
}

/* RoPE: rope_theta and rope_scaling (transformers 4), or rope_parameters
 * (transformers 5: one dict, or one per layer type for Gemma 3). Scaling
 * types: none / "default", "linear" (positions divided by factor), "llama3"
 * (Llama 3.1: long wavelengths divided by factor, short ones kept, a smooth
 * blend between). */
static lorac_status rope_config(const cJSON *o, const char *path, lorac_config *c) {
    const cJSON *rp = json_obj(o, "rope_parameters"), *full = rp, *local = NULL;
    if (json_obj(rp, "full_attention")) {
        full = json_obj(rp, "full_attention");
        local = json_obj(rp, "sliding_attention");
    }
    c->rope_theta = (float)json_num(o, json_num(full, 10000.0, "rope_theta"), "rope_theta");
    c->rope_local_theta = (float)json_num(o, json_num(local, 0.0, "rope_theta"), "rope_local_base_freq");
    const cJSON *rs = json_obj(o, "rope_scaling");
    if (!rs) rs = full;
    if (!rs) return LORAC_OK;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(t)) t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    const char *type = cJSON_IsString(t) ? t->valuestring : "default";
    c->rope_factor = (float)json_num(rs, 1.0, "factor");
    if (!strcmp(type, "default")) return LORAC_OK;
    if (!strcmp(type, "linear")) {
        c->rope_scale_type = 1;
        return LORAC_OK;
    }
    if (!strcmp(type, "llama3")) {
        c->rope_scale_type = 2;
        c->rope_low_freq = (float)json_num(rs, 1.0, "low_freq_factor");
        c->rope_high_freq = (float)json_num(rs, 4.0, "high_freq_factor");
        c->rope_orig_ctx = json_int(rs, 8192, NAMES("original_max_position_embeddings"));
        return LORAC_OK;
    }
    return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: rope_scaling type '%s' is not supported; hint: lorac reads default, "
                      "linear and llama3 RoPE", path, type);
}

/* Which layers use the sliding window: layer_types (transformers 5), else
 * every layer but each sliding_window_pattern-th (Gemma 3's 6; Gemma 2,
 * whose configs may name none, 2), else every layer (Mistral). */
static void local_layers(const cJSON *o, lorac_config *c, int def_pattern) {
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(o, "layer_types");
    const int pattern = json_int(o, def_pattern, NAMES("sliding_window_pattern"));
    for (int l = 0; l < c->n_layer && l < (int)sizeof c->local_layer; l++) {
        const cJSON *e = cJSON_IsArray(lt) ? cJSON_GetArrayItem(lt, l) : NULL;
        if (cJSON_IsString(e))
            c->local_layer[l] = !strcmp(e->valuestring, "sliding_attention");
        else
            c->local_layer[l] = c->sliding_window > 0 && (pattern <= 0 || (l + 1) % pattern != 0);
    }
}

/* GPT-2's dropouts (GPT2Config's defaults, 0.1 each, also for a GGUF,
 * which carries none: transformers' gguf_file= load gets the same). */
static void gpt2_dropout(lorac_config *c, const cJSON *o) {
    c->hidden_dropout = (float)json_num(o, 0.1, "resid_pdrop");
    c->attn_dropout = (float)json_num(o, 0.1, "attn_pdrop");
    c->embd_dropout = (float)json_num(o, 0.1, "embd_pdrop");
}

static lorac_status llama_family_config(const cJSON *o, const char *type, const char *path, lorac_config *c) {
    c->arch = LORAC_ARCH_LLAMA;
    c->dim = json_int(o, 0, NAMES("hidden_size"));
    c->n_layer = json_int(o, 0, NAMES("num_hidden_layers"));
    c->n_head = json_int(o, 0, NAMES("num_attention_heads"));
    c->n_kv_head = json_int(o, c->n_head, NAMES("num_key_value_heads"));
    c->head_dim = json_int(o, 0, NAMES("head_dim"));
    c->n_ctx = json_int(o, 2048, NAMES("max_position_embeddings"));
    c->ffn_dim = json_int(o, 0, NAMES("intermediate_size"));
    c->norm_eps = (float)json_num(o, 1e-6, "rms_norm_eps");
    const int gemma = !strncmp(type, "gemma", 5);
    c->tied = json_bool(o, gemma, "tie_word_embeddings");
    c->attn_bias = json_bool(o, !strcmp(type, "qwen2"), "attention_bias");
    c->mlp_bias = json_bool(o, 0, "mlp_bias");
    c->qk_norm = !strcmp(type, "qwen3") || !strcmp(type, "gemma3_text");
    c->gemma = gemma;
    c->fused = !strcmp(type, "phi3");
    c->attn_dropout = (float)json_num(o, 0.0, "attention_dropout");
    if (c->fused) c->hidden_dropout = (float)json_num(o, 0.0, "resid_pdrop");
    LORAC_TRY(rope_config(o, path, c));
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(o, "sliding_window");
    c->sliding_window = cJSON_IsNumber(sw) ? sw->valueint : 0;
    if (!strncmp(type, "qwen", 4)) { /* Qwen's window is off unless use_sliding_window */
        if (json_bool(o, 0, "use_sliding_window"))
            return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: use_sliding_window is not supported for %s; hint: set it "
                              "to false (the released Qwen2.5 / Qwen3 models have it off)", path, type);
        c->sliding_window = 0;
    }
    if (c->fused && c->sliding_window >= c->n_ctx) c->sliding_window = 0; /* Phi-3 mini: the window spans the context */
    if (c->sliding_window < 0) c->sliding_window = 0;
    local_layers(o, c, !strcmp(type, "gemma2") ? 2 : 0); /* Gemma 2 configs without layer_types: even layers local */
    if (gemma) {
        c->attn_scale = (float)(1.0 / sqrt(json_num(o, c->head_dim > 0 ? c->head_dim : 256, "query_pre_attn_scalar")));
        /* Gemma 2's soft caps (null or absent in Gemma 3's configs) */
        c->attn_softcap = (float)json_num(o, 0, "attn_logit_softcapping");
        c->final_softcap = (float)json_num(o, 0, "final_logit_softcapping");
        if (c->attn_softcap < 0 || c->final_softcap < 0)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: attn_logit_softcapping / final_logit_softcapping must be positive "
                              "(got %g / %g); hint: null turns a cap off", path, c->attn_softcap, c->final_softcap);
    }
    const char *field = gemma ? "hidden_activation" : "hidden_act", *want = gemma ? "gelu_pytorch_tanh" : "silu";
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, field);
    if (cJSON_IsString(act) && strcmp(act->valuestring, want))
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: %s '%s' is not supported; hint: %s uses %s", path, field,
                          act->valuestring, type, want);
    return LORAC_OK;
}

lorac_status lorac_config_load_json(const char *path, lorac_config *c) {
    char *text;
    memset(c, 0, sizeof *c);
    LORAC_TRY(lorac_read_file(path, 16u << 20, &text, NULL));
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return lorac_fail(LORAC_ERR_FORMAT, "%s: not a JSON object; hint: is this a Hugging Face config.json?", path);
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "model_type");
    const char *type = cJSON_IsString(mt) ? mt->valuestring : "";
    snprintf(c->model_type, sizeof c->model_type, "%s", type);
    c->init_range = (float)json_num(o, 0.02, "initializer_range");
    if (!strcmp(type, "gpt2")) {
        c->arch = LORAC_ARCH_GPT2;
        c->dim = json_int(o, 0, NAMES("n_embd", "hidden_size"));
        c->n_layer = json_int(o, 0, NAMES("n_layer", "num_hidden_layers"));
        c->n_head = json_int(o, 0, NAMES("n_head", "num_attention_heads"));
        c->n_kv_head = c->n_head;
        c->n_ctx = json_int(o, 1024, NAMES("n_positions", "n_ctx"));
        c->ffn_dim = json_int(o, 0, NAMES("n_inner"));
        if (c->ffn_dim <= 0) c->ffn_dim = c->dim > 0 && c->dim <= (1 << 20) ? 4 * c->dim : 0; /* no int overflow */
        c->norm_eps = (float)json_num(o, 1e-5, "layer_norm_epsilon");
        c->tied = json_bool(o, 1, "tie_word_embeddings");
        c->attn_bias = c->mlp_bias = 1;
        gpt2_dropout(c, o);
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "activation_function");
        if (cJSON_IsString(act) && strcmp(act->valuestring, "gelu_new") && strcmp(act->valuestring, "gelu_pytorch_tanh")) {
            lorac_status st = lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: activation_function '%s' is not supported; hint: lorac's GPT-2 uses gelu_new", path, act->valuestring);
            cJSON_Delete(o); /* after the message: act points into o */
            return st;
        }
    } else if (is_llama_family(type)) {
        lorac_status st = llama_family_config(o, type, path, c);
        if (st != LORAC_OK) {
            cJSON_Delete(o);
            return st;
        }
    } else if (!strcmp(type, "bert") || !strcmp(type, "distilbert")) {
        lorac_status st = encoder_config(o, type, path, c);
        if (st != LORAC_OK) {
            cJSON_Delete(o);
            return st;
        }
    } else {
        lorac_status st = lorac_fail(LORAC_ERR_UNSUPPORTED,
                                     "%s: model_type '%s' is not supported; hint: lorac reads gpt2, llama-family, bert and distilbert checkpoints",
                                     path, type);
        cJSON_Delete(o); /* after the message: type points into o */
        return st;
    }
    c->vocab = json_int(o, 0, NAMES("vocab_size"));
    c->bos_id = json_token_id(o, "bos_token_id");
    c->eos_id = json_token_id(o, "eos_token_id");
    c->pad_id = json_token_id(o, "pad_token_id");
    cJSON_Delete(o);
    return lorac_config_check(c, path);
}

/* Llama 3.1's scaled RoPE in a GGUF: llama.cpp's converter turns the
 * rope_scaling parameters into one divisor per frequency, the F32 tensor
 * rope_freqs.weight [head_dim / 2] (1 for short wavelengths, factor for long
 * ones, a blend between); llama.cpp divides frequency i by element i. */
static lorac_status rope_freq_factors(const lorac_gguf *g, lorac_config *c) {
    const char *path = lorac_gguf_path(g);
    const lorac_tensor_desc *t = lorac_gguf_find_tensor(g, "rope_freqs.weight");
    if (!t) return LORAC_OK;
    const int half = c->head_dim / 2;
    if (t->dtype != LORAC_F32 || t->ndim != 1 || t->numel != half || !t->data)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: rope_freqs.weight must be F32 [head_dim / 2 = %d]; hint: the file "
                          "is damaged or not from llama.cpp's converter", path, half);
    for (int i = 0; i < half; i++) {
        float x;
        memcpy(&x, (const char *)t->data + sizeof x * (size_t)i, sizeof x); /* the mapping may be unaligned */
        if (!(x > 0 && x < 1e30f))
            return lorac_fail(LORAC_ERR_FORMAT, "%s: rope_freqs.weight[%d] = %g; hint: each factor must be a positive "
                              "number", path, i, (double)x);
        c->rope_freq_factor[i] = x;
    }
    c->rope_scale_type = 3;
    return LORAC_OK;
}

lorac_status lorac_config_from_gguf(const lorac_gguf *g, lorac_config *c) {
    memset(c, 0, sizeof *c);
    const char *path = lorac_gguf_path(g);
    const char *arch = lorac_gguf_get_str(g, "general.architecture");
    if (!arch) return lorac_fail(LORAC_ERR_FORMAT, "%s: no general.architecture key; hint: not a model GGUF?", path);
    snprintf(c->model_type, sizeof c->model_type, "%s", arch);
    char key[128];
    int64_t v;
    double f;
#define GETI(field, suffix, def)                                                                                      \
    snprintf(key, sizeof key, "%s." suffix, arch);                                                                 \
    c->field = lorac_gguf_get_int(g, key, &v) ? (int)v : (def);
    GETI(n_ctx, "context_length", 2048);
    GETI(dim, "embedding_length", 0);
    GETI(n_layer, "block_count", 0);
    GETI(ffn_dim, "feed_forward_length", 0);
    GETI(n_head, "attention.head_count", 0);
    GETI(n_kv_head, "attention.head_count_kv", c->n_head);
    GETI(head_dim, "attention.key_length", 0);
#undef GETI
    if (!strcmp(arch, "llama") || !strcmp(arch, "qwen2") || !strcmp(arch, "qwen3") || !strcmp(arch, "gemma2") ||
        !strcmp(arch, "gemma3") || !strcmp(arch, "phi3")) {
        /* llama.cpp's names for the Llama family; Mistral GGUFs are "llama" */
        c->arch = LORAC_ARCH_LLAMA;
        snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
        c->norm_eps = lorac_gguf_get_float(g, key, &f) ? (float)f : 1e-5f;
        snprintf(key, sizeof key, "%s.rope.freq_base", arch);
        c->rope_theta = lorac_gguf_get_float(g, key, &f) ? (float)f : 10000.0f;
        c->tied = lorac_gguf_find_tensor(g, "output.weight") == NULL;
        c->gguf_rope_interleaved = !strcmp(arch, "llama"); /* its converter permutes q/k rows; the others keep HF's */
        c->attn_bias = lorac_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
        c->qk_norm = lorac_gguf_find_tensor(g, "blk.0.attn_q_norm.weight") != NULL;
        c->fused = !strcmp(arch, "phi3");
        snprintf(key, sizeof key, "%s.attention.sliding_window", arch);
        c->sliding_window = lorac_gguf_get_int(g, key, &v) ? (int)v : 0;
        if (!strcmp(arch, "gemma3")) {
            /* as llama.cpp: every 6th layer global, local layers' RoPE base 10000,
               scores scaled by 1/sqrt(head_dim) */
            c->gemma = 1;
            c->rope_local_theta = 10000.0f;
            for (int l = 0; l < c->n_layer && l < (int)sizeof c->local_layer; l++) c->local_layer[l] = (l + 1) % 6 != 0;
        } else if (!strcmp(arch, "gemma2")) {
            /* as llama.cpp: even layers local, one RoPE base, soft caps from the metadata; scores scaled by
               1/sqrt(head_dim), but by 1/sqrt(dim / heads) in the 46-layer 27B (its query_pre_attn_scalar) */
            c->gemma = 1;
            for (int l = 0; l < c->n_layer && l < (int)sizeof c->local_layer; l++) c->local_layer[l] = l % 2 == 0;
            c->attn_softcap = lorac_gguf_get_float(g, "gemma2.attn_logit_softcapping", &f) ? (float)f : 0.0f;
            c->final_softcap = lorac_gguf_get_float(g, "gemma2.final_logit_softcapping", &f) ? (float)f : 0.0f;
            if (c->n_layer == 46 && c->n_head > 0) c->attn_scale = (float)(1.0 / sqrt((double)c->dim / c->n_head));
        } else {
            for (int l = 0; l < c->n_layer && l < (int)sizeof c->local_layer; l++) c->local_layer[l] = c->sliding_window > 0;
        }
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        const char *rs = lorac_gguf_get_str(g, key);
        if (rs && strcmp(rs, "none"))
            return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: %s '%s' is not supported; hint: lorac reads GGUF RoPE "
                              "without scaling or with rope_freqs.weight factors (Llama 3.1); use the Hugging Face "
                              "checkpoint", path, key, rs);
    } else if (!strcmp(arch, "gpt2")) {
        c->arch = LORAC_ARCH_GPT2;
        snprintf(key, sizeof key, "%s.attention.layer_norm_epsilon", arch);
        c->norm_eps = lorac_gguf_get_float(g, key, &f) ? (float)f : 1e-5f;
        c->tied = lorac_gguf_find_tensor(g, "output.weight") == NULL;
        c->attn_bias = c->mlp_bias = 1;
        gpt2_dropout(c, NULL);
    } else {
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported; hint: lorac reads llama, qwen2, qwen3, gemma2, gemma3, phi3 and gpt2 GGUF files", path, arch);
    }
    uint64_t n;
    lorac_gguf_type et;
    c->vocab = lorac_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n) ? (int)n : 0;
    const lorac_tensor_desc *emb = lorac_gguf_find_tensor(g, "token_embd.weight");
    if (emb && emb->ndim == 2) c->vocab = (int)emb->shape[0];
    c->bos_id = lorac_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &v) ? (int)v : -1;
    c->eos_id = lorac_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &v) ? (int)v : -1;
    c->pad_id = lorac_gguf_get_int(g, "tokenizer.ggml.padding_token_id", &v) ? (int)v : -1;
    LORAC_TRY(lorac_config_check(c, path));
    return c->arch == LORAC_ARCH_LLAMA ? rope_freq_factors(g, c) : LORAC_OK;
}

lorac_status lorac_config_check(lorac_config *c, const char *where) {
    if (!(c->init_range > 0 && c->init_range < 10)) c->init_range = 0.02f; /* absent (GGUF, random configs) or nonsense */
#define NEED(cond, what)                                                                                              \
    if (!(cond)) return lorac_fail(LORAC_ERR_FORMAT, "%s: %s; hint: is the config complete?", where, what)
    NEED(c->dim > 0 && c->dim <= 65536, "hidden size missing or out of range");
    NEED(c->n_layer > 0 && c->n_layer <= 1024, "layer count missing or out of range");
    NEED(c->n_head > 0 && c->n_head <= 1024, "head count missing or out of range");
    NEED(c->n_kv_head > 0 && c->n_head % c->n_kv_head == 0, "key/value head count must divide the head count");
    NEED(c->vocab > 0 && c->vocab <= 10000000, "vocab size missing or out of range");
    NEED(c->ffn_dim > 0 && c->ffn_dim <= 1 << 20, "MLP size missing or out of range");
    NEED(c->n_ctx > 0 && c->n_ctx <= 1 << 20, "context length out of range");
    NEED(c->head_dim <= 65536, "head_dim out of range");
    if (c->head_dim <= 0) {
        NEED(c->dim % c->n_head == 0, "hidden size is not a multiple of the head count");
        c->head_dim = c->dim / c->n_head;
    }
    NEED(c->head_dim % 2 == 0 || c->arch != LORAC_ARCH_LLAMA, "head_dim must be even for RoPE");
    NEED(c->head_dim / 2 <= LORAC_ROPE_MAX_HALF || c->arch != LORAC_ARCH_LLAMA, "head_dim above 1024 (RoPE table)");
    NEED(c->arch != LORAC_ARCH_BERT || c->head_dim * c->n_head == c->dim, "hidden size must equal heads x head_dim");
    NEED(c->type_vocab >= 0 && c->type_vocab <= 1024, "type_vocab_size out of range");
    NEED(c->arch != LORAC_ARCH_GPT2 || c->head_dim * c->n_head == c->dim, "GPT-2 needs n_embd = n_head * head_dim");
#undef NEED
    const float drop[] = {c->hidden_dropout, c->attn_dropout, c->cls_dropout, c->embd_dropout};
    for (int i = 0; i < 4; i++)
        if (!(drop[i] >= 0 && drop[i] < 1))
            return lorac_fail(LORAC_ERR_FORMAT, "%s: a dropout probability is %g, outside [0, 1); hint: check the "
                              "config's dropout keys (BERT hidden_dropout_prob / attention_probs_dropout_prob / "
                              "classifier_dropout, GPT-2 resid_pdrop / attn_pdrop / embd_pdrop, attention_dropout)",
                              where, (double)drop[i]);
    return LORAC_OK;
}
