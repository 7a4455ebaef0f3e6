/* config.h - the hyperparameters of a transformer, read from a Hugging Face
 * config.json or from GGUF metadata. One struct describes every family; the
 * `arch` field says which blocks the forward pass uses. */
#ifndef LORAC_MODELS_CONFIG_H
#define LORAC_MODELS_CONFIG_H

#include "core/status.h"
#include "io/gguf.h"

typedef enum lorac_arch {
    LORAC_ARCH_GPT2 = 0,  /* LayerNorm, learned positions, fused c_attn (Conv1D), GELU-tanh MLP */
    LORAC_ARCH_LLAMA = 1, /* RMSNorm, RoPE (rotate-half), GQA, SwiGLU MLP */
    LORAC_ARCH_BERT = 2,  /* encoder: post-LN, learned positions, bidirectional attention, GELU (erf);
                             BERT / DistilBERT / MiniLM (cfg.distil picks DistilBERT's module names) */
} lorac_arch;

/* How an encoder turns its token states into one vector for a classifier. */
typedef enum lorac_pool {
    LORAC_POOL_LAST = 0,   /* decoders: the last real token */
    LORAC_POOL_CLS = 1,    /* the first token ([CLS]); BERT runs it through pooler.dense + tanh,
                              DistilBERT through pre_classifier + ReLU */
    LORAC_POOL_MEAN = 2,   /* mean over the real tokens (sentence-transformers) */
} lorac_pool;

/* RoPE tables hold at most this many frequencies (head_dim / 2). */
#define LORAC_ROPE_MAX_HALF 512

typedef struct lorac_config {
    lorac_arch arch;
    char model_type[32];  /* "gpt2", "llama", ... as in config.json */
    int vocab;            /* vocab_size */
    int n_ctx;            /* max positions */
    int dim;              /* hidden size */
    int n_layer;
    int n_head;           /* query heads */
    int n_kv_head;        /* key/value heads (== n_head without GQA) */
    int head_dim;         /* dim / n_head unless the config says otherwise */
    int ffn_dim;          /* MLP inner size */
    float norm_eps;
    float rope_theta;
    int tied;             /* LM head shares the token embedding */
    int attn_bias;        /* q/k/v/o projections have biases */
    int mlp_bias;
    int bos_id, eos_id, pad_id; /* -1 when absent */
    float init_range;     /* initializer_range: std of Hugging Face's normal init of new weights (default 0.02) */
    /* Llama-family variants (LORAC_ARCH_LLAMA); all 0 for plain Llama / SmolLM2:
     *   Qwen2    q/k/v biases (attn_bias), o_proj without
     *   Qwen3    qk_norm
     *   Mistral  sliding_window on every layer
     *   Llama 3  rope_scaling llama3 (rope_scale_type 2)
     *   Gemma 3  gemma: (1 + w) RMSNorms, norms before and after attention and MLP, GeGLU,
     *            embeddings x sqrt(hidden), qk_norm, attn_scale, local (sliding) and global
     *            layers with their own RoPE bases
     *   Phi-3    fused qkv_proj and gate_up_proj */
    int qk_norm;          /* RMSNorm over each head of q and of k before RoPE (q_norm, k_norm) */
    int gemma;            /* Gemma 2 / 3 blocks, as above */
    int fused;            /* Phi-3: one qkv_proj (q|k|v rows) and one gate_up_proj (gate|up rows) */
    float attn_scale;     /* attention score scale; 0 = 1/sqrt(head_dim) */
    float attn_softcap;   /* Gemma 2 attn_logit_softcapping: scores z -> c tanh(z / c); 0 = none */
    float final_softcap;  /* Gemma 2 final_logit_softcapping: LM logits y -> c tanh(y / c); 0 = none */
    int sliding_window;   /* > 0: a local layer's query sees this many most recent keys (itself included) */
    unsigned char local_layer[1024]; /* 1: layer l uses the sliding window (and rope_local_theta) */
    float rope_local_theta; /* RoPE base of local layers (Gemma 3); 0 = rope_theta */
    int rope_scale_type;  /* 0 none, 1 linear (positions / factor), 2 llama3, 3 per-frequency factors */
    float rope_factor, rope_low_freq, rope_high_freq; /* rope_scaling factor, low/high_freq_factor */
    int rope_orig_ctx;    /* rope_scaling original_max_position_embeddings (llama3) */
    /* rope_scale_type 3: frequency i is divided by rope_freq_factor[i], i < head_dim / 2 (a GGUF's
       rope_freqs.weight: llama.cpp's converter stores Llama 3.1's scaling this way) */
    float rope_freq_factor[LORAC_ROPE_MAX_HALF];
    int gguf_rope_interleaved; /* GGUF: q/k rows interleaved per head by llama.cpp (its "llama" arch) */
    /* encoders (LORAC_ARCH_BERT) */
    int distil;           /* DistilBERT names and head (pre_classifier + ReLU) */
    int type_vocab;       /* token-type embeddings (BERT: 2; DistilBERT: 0) */
    int num_labels;       /* from id2label / num_labels; 0 when the config has none */
    lorac_pool pool;      /* MEAN when a sentence-transformers modules.json says so, or a BERT checkpoint has no pooler */
    /* The model's own dropout in training (torch's train mode), where
     * transformers applies it, with its defaults when a key is absent:
     *   encoders  BERT hidden_dropout_prob (embeddings, attention and MLP
     *             outputs) / attention_probs_dropout_prob / classifier_dropout
     *             (null: the hidden one); DistilBERT dropout /
     *             attention_dropout / seq_classif_dropout;
     *   GPT-2     resid_pdrop (attention and MLP outputs, before the residual
     *             add) / attn_pdrop / embd_pdrop (wte + wpe), 0.1 each;
     *   Llama     attention_dropout (attention probabilities, 0.0), and Phi-3's
     *   family    resid_pdrop (0.0) as GPT-2's.
     * Applied only when lorac_model.model_dropout is on. */
    float hidden_dropout, attn_dropout, cls_dropout, embd_dropout;
} lorac_config;

/* Parse config.json (path to the file). Unknown model_type -> UNSUPPORTED. */
lorac_status lorac_config_load_json(const char *path, lorac_config *c);
/* Read the architecture from GGUF metadata ("<arch>.embedding_length", ...). */
lorac_status lorac_config_from_gguf(const lorac_gguf *g, lorac_config *c);
/* A Hugging Face config.json for c (what `lorac merge` writes for a GGUF
 * or random base): the transformers family's model_type, architectures and
 * keys. *out is the caller's (cJSON_Delete). UNSUPPORTED for what a
 * config.json cannot express (an encoder, GGUF rope_freqs factors). */
struct cJSON;
lorac_status lorac_config_to_hf_json(const lorac_config *c, struct cJSON **out);
/* Fill derived fields and check consistency (heads divide dim, etc.). */
lorac_status lorac_config_check(lorac_config *c, const char *where);

#endif
