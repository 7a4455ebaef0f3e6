/* lorac/model.h - lorac_llm: open / close a model, what it holds (info,
 * Linear modules, the parameter tree in PEFT's order, their roles), a model
 * of a config.json's shapes, a fresh classification head, holding the base
 * in NF4. Part of lorac.h (its conventions apply). */
#ifndef LORAC_MODEL_H
#define LORAC_MODEL_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Models: lorac_llm = a base model, its tokenizer and its adapters
 * ====================================================================== */

typedef struct lorac_llm lorac_llm;
typedef struct lorac_tok lorac_tok;

/* How the frozen base's block Linears are held.
 *
 * LORAC_BASE_AUTO (lorac_llm_opts_init's default) picks by the file: a .gguf
 * opens as LORAC_BASE_GGUF, an HF directory as LORAC_BASE_FP32. Decoding a
 * GGUF then reads its own 4- to 8-bit blocks (dequantized on the fly, the
 * values exact) instead of an fp32 copy 4 to 8 times larger: a decoding step
 * streams every weight once, so that is what sets its speed. Under AUTO /
 * GGUF an untied LM head in a block format (output.weight) is kept in its
 * blocks too; a tied head is the token embedding, kept as the embedding is.
 * lorac_llm_get_info says what was chosen. Training LoRA over such a base is
 * QLoRA (as LORAC_BASE_GGUF always was); merging, saving the whole model and
 * training base weights (full, last-layers) need LORAC_BASE_FP32. */
typedef enum lorac_base_format {
    LORAC_BASE_FP32 = 0,  /* as loaded, fp32 (a .gguf: dequantized at load) */
    LORAC_BASE_BF16 = 1,  /* rounded to bf16: half the memory, bf16 products with fp32 accumulation */
    LORAC_BASE_NF4 = 2,   /* QLoRA: bitsandbytes NF4, quantized while loading */
    LORAC_BASE_GGUF = 3,  /* a .gguf's own GGML blocks (Q4_0 .. Q6_K, IQ4_*) kept, the untied LM head's too */
    LORAC_BASE_AUTO = 4,  /* default: GGUF for a .gguf file, FP32 for a Hugging Face directory */
} lorac_base_format;

typedef struct lorac_llm_opts {
    size_t size;            /* sizeof(lorac_llm_opts), set by lorac_llm_opts_init */
    const char *tokenizer;  /* tokenizer file or directory; NULL: the model's own */
    lorac_base_format base; /* default LORAC_BASE_AUTO */
    int embed_fp32;         /* NF4 / GGUF bases: keep the token embedding fp32 (bitsandbytes' way); default 0 */
    int threads;            /* > 0: lorac_set_threads(threads) first; default 0 (leave as is) */
    int no_tokenizer;       /* 1: read no tokenizer (export, merge); lorac_llm_tok then returns NULL */
} lorac_llm_opts;

LORAC_API void lorac_llm_opts_init(lorac_llm_opts *o);

/* Open a model: a Hugging Face directory (config.json + *.safetensors) or a
 * .gguf file, with its tokenizer. o may be NULL (defaults). On failure *out
 * is NULL. [any thread; o->threads > 0 sets the process-wide threads] */
LORAC_API lorac_status lorac_llm_open(const char *path, const lorac_llm_opts *o, lorac_llm **out);
/* Free the model, its tokenizer and every adapter. NULL is fine. Every
 * later use of llm, its tokenizer or strings it returned is invalid.
 * [one thread per llm: no other call on it may be running] */
LORAC_API void lorac_llm_close(lorac_llm *llm);

/* What a model holds. [read-only] */
typedef struct lorac_llm_info {
    size_t size;             /* sizeof(lorac_llm_info): set it before the call */
    char arch[32];           /* "llama", "gpt2", "bert", "qwen2", "gemma3", ... */
    int n_layers, dim, n_heads, n_kv_heads, vocab_size, n_ctx;
    int n_classes;           /* classification head's classes, 0 = none */
    int64_t params_trainable, params_all;
    int n_modules;           /* Linear modules (lorac_llm_module) */
    int n_adapters;          /* adapters loaded by name (lorac_llm_adapter_load) */
    char active_adapter[64]; /* "" = none (or "default": one applied with lorac_llm_adapter_apply / trained) */
    size_t adapter_bytes;    /* bytes held by named adapters */
    /* the frozen base as held (LORAC_BASE_BF16 / _NF4 / _GGUF) */
    int quantized_linears;   /* Linears held as bf16 / NF4 / GGML blocks */
    char formats[96];        /* their formats, "+"-joined ("nf4", "q4_1+q8_0"); "" = none */
    char embed_format[16];   /* the token embedding's format ("fp32" unless quantized) */
    int64_t base_params, quantized_params; /* every base weight / the quantized Linears' */
    double base_bytes, quantized_bytes;    /* their storage */
    int fallback;            /* LORAC_BASE_GGUF: Linears that could not keep the file's format (went to NF4) */
    char fallback_note[256]; /* ... and why, for the first */
    int bf16_native;         /* 1: bf16 products run natively (oneDNN, AVX512-BF16); 0: widened to fp32 */
    char path[1024];         /* where it was read from (lorac_llm_create: the config.json) */
    int head_dim, ffn_dim;   /* attention head size, MLP hidden size */
    int tied;                /* 1: the LM head is the token embedding */
    lorac_base_format base;  /* the base as opened (LORAC_BASE_AUTO resolved: GGUF or FP32) */
    char head_format[16];    /* the LM head's weight format ("fp32", "q6_k"; a tied head: the embedding's; "" = none) */
} lorac_llm_info;
LORAC_API lorac_status lorac_llm_get_info(const lorac_llm *llm, lorac_llm_info *info);

/* One Linear module: its full name ("model.layers.0.self_attn.q_proj"),
 * shape and whether an adapter (LoRA rank r > 0) sits on it. name stays
 * valid until lorac_llm_close. [read-only] */
typedef struct lorac_module_info {
    const char *name;
    int in, out;
    int lora_r;   /* 0: no LoRA on it now */
    int trainable;/* its weight is trained in full */
} lorac_module_info;
LORAC_API lorac_status lorac_llm_module(const lorac_llm *llm, int i, lorac_module_info *out);

/* ---- Inspecting (lorac info / modules) ----
 * What the CLI's info and modules are built on, with lorac_llm_module_target
 * and lorac_llm_apply_method (lorac/train.h). */


/* A model of config.json's shapes with random weights and no tokenizer
 * (nothing else is read): module trees and parameter counts without the
 * checkpoint. lorac_llm_close frees it. [any thread] */
LORAC_API lorac_status lorac_llm_create(const char *config_json, lorac_llm **out);

/* Add a fresh classification head of n_classes (>= 1) on the last token
 * ("score"; an encoder's classifier), as lorac_llm_train adds one: init
 * "hf" (NULL; transformers' N(0, initializer_range), decoders' score
 * without bias) or "torch" (nn.Linear with bias); a head read from the
 * checkpoint with n_classes is kept. Refused once adapters are held.
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_add_head(lorac_llm *llm, int n_classes, const char *init, uint64_t seed);

/* The parameters in the order PEFT's named_parameters lists them: every
 * base weight, each followed by the adapter tensors that sit on it
 * (lora_A, lora_B, a DoRA magnitude; lora_embedding_A / _B on the token
 * embedding). Count with lorac_llm_param_count (-1 for NULL). name stays
 * valid until the adapters change or lorac_llm_close. [read-only] */
typedef enum lorac_llm_param_kind {
    LORAC_PARAM_BASE = 0,   /* a weight of the model itself */
    LORAC_PARAM_LORA_A = 1, /* lora_A (lora_embedding_A on the embedding) */
    LORAC_PARAM_LORA_B = 2,
    LORAC_PARAM_DORA_M = 3, /* DoRA's magnitude vector */
} lorac_llm_param_kind;
typedef struct lorac_llm_param_info {
    size_t size;           /* sizeof(lorac_llm_param_info): set it before the call */
    const char *name;      /* Hugging Face / PEFT name */
    int ndim;              /* 1 or 2 */
    int64_t shape[2];
    int trainable;
    lorac_llm_param_kind kind;
    int on_lm_head;        /* an adapter tensor on the output layer (lm_head) */
    int on_embedding;      /* the token embedding, or an adapter tensor on it */
    /* adapter tensors: their pair's settings */
    int r;                 /* rank (per part) */
    int parts;             /* 3: one pair per q / k / v inside a fused Linear (split_qkv), else 1 */
    float alpha;
    double scale;          /* alpha / r (rsLoRA: alpha / sqrt(r)) */
    int residual_init;     /* PiSSA / OLoRA: the base weight is the residual of the init */
} lorac_llm_param_info;
LORAC_API int lorac_llm_param_count(const lorac_llm *llm);
LORAC_API lorac_status lorac_llm_param(const lorac_llm *llm, int i, lorac_llm_param_info *out);
/* What Linear module i (lorac_llm_module) is: 0 a block's (or a
 * pre-classifier's), 1 the output layer (lm_head), 2 the classification
 * head; neither 1 nor 2 is in PEFT's all-linear. -1 for a NULL llm or a
 * bad i. [read-only] */
LORAC_API int lorac_llm_module_role(const lorac_llm *llm, int i);

/* Hold the frozen base's Linears in NF4 from now on (QLoRA's base), as
 * opening with lorac_llm_opts.base = LORAC_BASE_NF4 does: every Linear not
 * quantized yet goes to NF4 (Linears in NF4 or a GGUF's blocks keep them),
 * and the token embedding too unless embed_fp32 (a quantized one stays
 * so). For a model from lorac_llm_create or opened in fp32: QLoRA's memory
 * (lorac_llm_get_info) and parameter counts without reopening. Afterwards
 * lorac_llm_get_info's base is LORAC_BASE_NF4 (a GGUF base stays
 * LORAC_BASE_GGUF) and LoRA over it is QLoRA. Refused (LORAC_ERR_ARG) for
 * a bf16 base and once the llm holds an adapter or was prepared or merged.
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_quantize_nf4(lorac_llm *llm, int embed_fp32);

#ifdef __cplusplus
}
#endif
#endif
