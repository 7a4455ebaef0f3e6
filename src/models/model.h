/* model.h - a pretrained transformer as lorac holds it: frozen base weights
 * (views into the checkpoint where possible), the Linear modules under their
 * Hugging Face names, optional LoRA adapters on those modules, optional
 * task heads, and the activations a training step keeps for backward.
 *
 * Ownership: lorac_model_load / lorac_model_create_random return a model the
 * caller frees with lorac_model_free. Weight data is either a view into the
 * mmap'd checkpoint (owned == 0) or malloc'd (owned == 1). */
#ifndef LORAC_MODELS_MODEL_H
#define LORAC_MODELS_MODEL_H

#include <stdint.h>

#include "core/rng.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "models/config.h"
#include "quant/qmatmul.h"

/* One named parameter tensor. grad != NULL means "trainable". */
typedef struct lorac_weight {
    char name[160];   /* Hugging Face name, e.g. "transformer.h.0.ln_1.weight" */
    int ndim;
    int64_t shape[2]; /* as stored in the HF checkpoint */
    size_t n;         /* element count */
    float *data;
    float *grad;      /* [n], allocated when the weight is made trainable */
    int owned;        /* data is malloc'd (else a read-only view) */
    int quantized;    /* the Linear holding it keeps it as a lorac_qweight (QLoRA): data is NULL, always frozen */
} lorac_weight;

/* A LoRA adapter on one Linear (Hu et al. 2021):
 *   y += scale * B (A dropout(x))        A [parts*r, in], B [out, r]
 * parts > 1 splits a fused projection (GPT-2's c_attn = q|k|v) into that many
 * equal output blocks, each with its own rank-r pair: block p uses rows
 * p*r..p*r+r-1 of A and rows p*out/parts.. of B. This is loralib's
 * MergedLinear and what appendix E gets with separate W_query/W_key/W_value.
 * It equals one rank parts*r LoRA with a block-diagonal B. */
typedef struct lorac_lora {
    int r, parts;
    float alpha, scale, dropout;
    lorac_weight A, B;
    int merged;     /* folded into the base W (lora/merge.h): fwd/bwd skip it */
    /* DoRA (use_dora, lora/dora.c): y = b + (M / ||W + s B A||_row) (x W^T + s x A^T B^T),
     * the row norm a constant in backward. NULL / 0 for plain LoRA. */
    int dora;
    lorac_weight M;     /* lora_magnitude_vector [out] (trainable) */
    float *wnorm;       /* [out] ||W + s B A|| of each output row, for the A, B hashed in wnorm_key */
    uint64_t wnorm_key; /* 0 = not computed */
    float *mnorm;       /* [out] the norm a merge used (unmerge divides by M / mnorm) */
    float *z;           /* [N, out]  saved: xd W^T + s xd A^T B^T (the output before M / norm) */
    float *bd;          /* [N, out]  scratch: xd W^T (dropout on) / backward: dL/dy scaled */
    /* PiSSA / OLoRA (lora/lora_init.c) move s B0 A0 out of the base W: the
     * initial pair is kept so a saved adapter can be converted into a plain
     * LoRA on the original base, as PEFT's path_initial_model_for_weight_conversion. */
    float *A0, *B0;     /* [parts*r, in], [out, r]; NULL for inits that leave W alone */
    /* saved by forward for backward (capacity cap rows): */
    float *xa;      /* [N, parts*r]  dropout(x) A^T */
    float *xd;      /* [N, in]       dropout(x) (only when dropout > 0) */
    uint8_t *mask;  /* [N, in]       dropout mask (only when dropout > 0) */
    float *dxa;     /* [N, parts*r]  backward scratch: dL/d(xa) */
    float *dxd;     /* [N, in]       backward scratch: dL/d(dropout(x)) (only when dropout > 0) */
    int cap;
} lorac_lora;

/* A Linear module: y = x W^T + b, with W [out,in] (nn.Linear) or [in,out]
 * (GPT-2's Conv1D, w_in_out = 1).
 * QLoRA: q != NULL holds the frozen weight quantized, always [out,in] (a
 * Conv1D weight is transposed before quantizing); W then keeps only its
 * name and shape (W->data == NULL, W->quantized == 1) and forward /
 * backward-to-inputs run lorac_qlinear_fwd / lorac_qlinear_bwd_x. */
typedef struct lorac_linear {
    char name[112];   /* module name: "transformer.h.3.attn.c_attn" */
    int in, out, w_in_out;
    int fused_parts;  /* 3 for a fused q|k|v projection, else 1 */
    lorac_weight *W, *b; /* b may be NULL */
    lorac_lora *lora;    /* NULL unless targeted */
    lorac_qweight *q;    /* owned; NULL unless the base is quantized */
    int q_shared;        /* q is the model's quantized token embedding (a tied lm_head): not freed here */
} lorac_linear;

typedef struct lorac_norm {
    lorac_weight *g, *b; /* b NULL for RMSNorm; g NULL for a norm the architecture does not have */
    float *g1;           /* Gemma's RMSNorm scales by (1 + g): 1 + g->data, refreshed by every forward (owned) */
} lorac_norm;

/* One block. Decoders are pre-LN: ln1/ln2 come before attention / MLP.
 * Encoders (BERT) are post-LN: ln1 = attention.output.LayerNorm (DistilBERT
 * sa_layer_norm) after the attention residual, ln2 = output.LayerNorm
 * (output_layer_norm) after the MLP residual; fc = intermediate.dense /
 * ffn.lin1, down = output.dense / ffn.lin2. */
typedef struct lorac_layer {
    lorac_norm ln1, ln2;      /* before attention / before the MLP (Gemma: input_ / pre_feedforward_layernorm) */
    lorac_norm q_norm, k_norm;/* Qwen3, Gemma 3: RMSNorm over each head of q / k */
    lorac_norm attn_post, mlp_post; /* Gemma: post_attention_ / post_feedforward_layernorm */
    lorac_linear *qkv;        /* GPT-2 fused c_attn, Phi-3 qkv_proj (else NULL) */
    lorac_linear *q, *k, *v;  /* Llama */
    lorac_linear *o;          /* c_proj / o_proj */
    lorac_linear *fc, *up;    /* c_fc / gate_proj (Phi-3: gate_up_proj, gate | up rows) ; up_proj (Llama) */
    lorac_linear *down;       /* mlp.c_proj / down_proj */
} lorac_layer;

/* Activations of one layer, kept by forward for backward. N = B*T rows. */
typedef struct lorac_layer_acts {
    float *x_in;     /* [N, C]   residual stream entering the layer */
    float *ln1;      /* [N, C]   normed input to attention */
    float *ln1_mean, *ln1_rstd; /* [N] */
    float *qkv;      /* [N, (Hq + 2 Hkv) D] q | k | v per row (after RoPE for Llama) */
                     /* encoders: ln1 holds LN1's output, x_mid its input (x_in + attention),
                        ln2 holds LN2's input (ln1 + MLP); LN2's output is the next x_in */
    float *lse;      /* [Hq, len] per sequence: log-sum-exp of each query's attention scores (op_attention_fwd) */
    float *atty;     /* [N, Hq D]  attention output before o_proj */
    float *x_mid;    /* [N, C]   residual after attention */
    float *ln2;      /* [N, C] */
    float *ln2_mean, *ln2_rstd; /* [N] */
    float *fc;       /* [N, F]   c_fc output (pre-GELU) / gate_proj output */
    float *up;       /* [N, F]   up_proj output (Llama) */
    float *h;        /* [N, F]   GELU(fc) / silu(gate) * up */
    float *qk_raw, *qk_rstd; /* qk-norm: q | k before their norms [N, (Hq + Hkv) D], rstd [N (Hq + Hkv)] */
    float *attn_o, *attn_o_rstd, *mlp_o, *mlp_o_rstd; /* Gemma: o_proj / down_proj outputs [N, C] before their post-norms */
} lorac_layer_acts;

typedef struct lorac_acts {
    int cap_B, cap_T;
    int shared;      /* gradient checkpointing: layers > 0 alias layer 0's buffers except x_in */
    lorac_layer_acts *layer; /* [n_layer] */
    float *x_out;    /* [N, C] residual after the last layer */
    float *lnf;      /* [N, C] final norm output */
    float *lnf_mean, *lnf_rstd;
    float *logits;   /* [N, V] (LM) */
    float *logit_slope; /* [N, V] d(capped logit)/d(logit) (Gemma 2's final soft cap only) */
    float *pooled;   /* [B, C] hidden of the last real token (classification) */
    float *cls_logits; /* [B, n_classes] */
    int cap_classes;   /* cls_logits holds cap_B x cap_classes */
    /* backward scratch */
    float *d_res, *d_tmp, *d_big, *d_qkv, *d_h2, *d_pooled;
    /* The token rows of the last forward: n_seq sequences, either padded
     * (sequence b is rows b*T .. b*T+T-1, padding after its real tokens,
     * keymask 0 there) or packed (sequence b is rows offs[b] .. offs[b+1]-1,
     * all real: lorac_model_forward_packed). */
    int n_seq, n_rows, packed;
    int T;           /* padded length (0 when packed) */
    int *offs;       /* [B + 1] first row of each sequence (padded: b*T); offs[n_seq] = n_rows */
    int *pos;        /* [N] position of each row in its sequence */
    uint8_t *keymask;/* [N] 1 = real token */
    int *last;       /* [B] row of the last real token of each sequence */
    /* encoders */
    float *emb, *emb_mean, *emb_rstd; /* [N, C] summed embeddings before their LayerNorm */
    float *pre, *pre_act, *d_pre;     /* [B, C] pre_head output before / after tanh or ReLU */
} lorac_acts;

typedef struct lorac_model {
    lorac_config cfg;
    lorac_weight *w; int n_w, cap_w;   /* every base weight */
    lorac_linear *lin; int n_lin, cap_lin;
    lorac_layer *layers;
    lorac_weight *wte, *wpe;           /* wpe: GPT-2 only */
    lorac_lora *wte_lora;              /* LoRA on the token embedding (lora/lora_embed.c), or NULL */
    lorac_qweight *wte_q;              /* QLoRA: the token embedding quantized (owned; wte->data is then NULL);
                                          a tied lm_head computes through it too (q_shared) */
    lorac_norm lnf;
    lorac_linear *lm_head;             /* tied: W points at wte */
    lorac_linear *head; int n_classes; /* classification head: "score" (decoders), "classifier" (encoders); NULL if none */
    lorac_linear *pre_head;            /* encoders: pooler.dense (tanh) or pre_classifier (ReLU); NULL if none */
    int head_fresh, pre_head_fresh;    /* created by lorac_model_add_head, not read from the checkpoint */
    lorac_weight *tte;                 /* BERT token-type embeddings (every token uses type 0) */
    lorac_norm ln_emb;                 /* encoders: embeddings.LayerNorm */
    lorac_st *st; lorac_gguf *gguf;    /* checkpoint sources (kept open: views) */
    char path[1024];
    lorac_acts acts;
    lorac_rng rng;                     /* dropout */
    int training;                      /* dropout on */
    int model_dropout;                 /* 1: in training the config's own dropouts apply too (config.h: encoders'
                                          hidden, attention, classifier; GPT-2's resid, attn, embd; torch's train mode); 0 (default): LoRA's only */
    uint64_t drop_seed;                /* the model dropout's key for the current training forward / backward */
    int grad_ckpt;                     /* gradient checkpointing (decoder.c); set by lorac_model_set_grad_ckpt */
    int q_fallback;                    /* lorac_model_load_quantized KEEP: Linears not kept in the file's format */
    char q_note[256];                  /* ... and why, for the first of them */
} lorac_model;

/* Load a checkpoint: a directory with config.json + *.safetensors, or a
 * .gguf file. */
lorac_status lorac_model_load(const char *path, lorac_model **out);
/* A model with the shapes of `cfg` and N(0, 0.02) weights (for parameter
 * counts and benchmarks from a config alone). */
lorac_status lorac_model_create_random(const lorac_config *cfg, uint64_t seed, lorac_model **out);
void lorac_model_free(lorac_model *m);

/* ---- QLoRA: a frozen base with its Linears quantized -------------------
 * "Block Linears" are the Linear modules of the transformer blocks: every
 * m->lin but lm_head, the classification head and pre_head (embeddings and
 * norms are no Linears). Quantized weights are frozen for good
 * (lorac_weight_make_trainable refuses them); biases stay fp32 and may be
 * trained (bias="all"); LoRA A/B are fp32 as always. */

/* Quantize every block Linear of a loaded model to `fmt` (LORAC_QF_NF4:
 * bitsandbytes' NF4 with double quantization; LORAC_QF_BF16: rounded to
 * bfloat16, the "--base bf16" frozen base; LORAC_QF_Q4_0 .. IQ4_XS: GGML
 * blocks made by quant/ggml_blocks.h's quantizers, for rows that are a whole
 * number of blocks, else LORAC_ERR_SHAPE), from its fp32 values, freeing
 * each fp32 copy (or dropping each view) right after its Linear is done.
 * Linears already quantized are left as they are. LORAC_ERR_ARG when a block
 * Linear's weight is trainable or its adapter merged. */
lorac_status lorac_model_quantize(lorac_model *m, lorac_qformat fmt);

typedef enum lorac_qload {
    LORAC_QLOAD_NF4 = 0, /* NF4 from the fp32 values, whatever the file stores */
    LORAC_QLOAD_KEEP,    /* GGUF: keep the file's own GGML blocks (Q4_0 .. IQ4_XS) as views into the mapping
                            (llama q/k rows reordered into an owned copy); other tensors NF4 (q_fallback) */
    LORAC_QLOAD_EMBED_FP32 = 0x100, /* flag, OR'd into either: leave the token embedding in fp32 (as bitsandbytes
                                       does) instead of quantizing it like the Linears */
    LORAC_QLOAD_KEEP_HEAD = 0x200,  /* flag, with KEEP: an untied lm_head (GGUF output.weight) in a GGML block
                                       format is kept as a view too, so decoding reads its blocks; any other head
                                       (another format, F16/F32, rows of no whole blocks) is loaded fp32 as
                                       without the flag. A tied head follows the embedding either way. */
} lorac_qload;
/* lorac_model_load with the block Linears quantized while loading: no block
 * Linear is ever held in fp32 all at once (one at a time while it is
 * converted), and with KEEP those in a GGML block format are never
 * dequantized. On a safetensors directory KEEP is the same as NF4. Unless
 * LORAC_QLOAD_EMBED_FP32 is set the token embedding is quantized the same
 * way (lorac_model_quantize_embedding). */
lorac_status lorac_model_load_quantized(const char *path, lorac_qload how, lorac_model **out);

/* Quantize one Linear's fp32 weight to any format lorac_model_quantize takes
 * ([out, in]; the fp32 copy is dropped). LORAC_ERR_ARG when it is quantized
 * already. */
lorac_status lorac_linear_quantize(lorac_linear *L, lorac_qformat fmt);
/* Replace L's quantized weight by its fp32 dequantization (W owned again,
 * [in,out] for Conv1D); nothing to do when L is not quantized.
 * LORAC_ERR_ARG for a tied lm_head over a quantized embedding: that is
 * lorac_model_dequantize_embedding's. */
lorac_status lorac_linear_dequantize(lorac_linear *L);

/* The token embedding [vocab, dim] quantized too (QLoRA's whole base in 4
 * bits, which bitsandbytes does not do): LORAC_QF_NF4 (or any format
 * lorac_model_quantize takes) from its fp32 values.
 * Lookups dequantize one row per token; a tied lm_head multiplies by the
 * same quantized matrix (quant/qmatmul.h). Nothing to do when it is already
 * quantized. LORAC_ERR_ARG when it is trainable. */
lorac_status lorac_model_quantize_embedding(lorac_model *m, lorac_qformat fmt);
/* Back to fp32 (wte owned again; a tied lm_head follows). */
lorac_status lorac_model_dequantize_embedding(lorac_model *m);
/* x[n, :] = wte[ids[n], :] for n < N, from fp32 or quantized rows, plus the
 * embedding's LoRA term when it has one (m->wte_lora). */
void lorac_model_embed_tokens(const lorac_model *m, float *x, const int *ids, int N);

/* What a quantized base holds. */
typedef struct lorac_qstats {
    int n_linears;              /* quantized Linears */
    lorac_qformat embed_fmt;    /* the token embedding's format (LORAC_QF_NONE: fp32) */
    int n_fmt[LORAC_QF_COUNT];  /* ... per format */
    int64_t q_params;           /* their weight parameters (the Linears') */
    double q_bytes;             /* their storage (lorac_qweight_nbytes) */
    int64_t emb_params;         /* the token embedding's parameters */
    double emb_bytes;           /* ... and storage (4 bytes each in fp32) */
    int64_t base_params;        /* every base weight, quantized or not (tied weights once) */
    double base_bytes;          /* q_bytes + emb_bytes + 4 bytes for every other base parameter */
} lorac_qstats;
void lorac_model_qstats(const lorac_model *m, lorac_qstats *s);

/* Add a fresh classification head: "score" = Linear(dim, n_classes) for
 * decoders, "classifier" for encoders (DistilBERT also gets a fresh
 * pre_classifier Linear(dim, dim); BERT a fresh pooler.dense when the
 * checkpoint has none), initialised from `seed` as `init` says, with a
 * bias or not (`bias`; the fresh pre_classifier / pooler always has one).
 * Hugging Face's XxxForSequenceClassification makes decoders' "score"
 * without bias and encoders' "classifier" with one, both LORAC_HEAD_INIT_HF;
 * LLMs-from-scratch appendix E swaps in a torch.nn.Linear(dim, n) with bias.
 * A head read from the checkpoint with the same class count is kept. */
typedef enum lorac_head_init {
    LORAC_HEAD_INIT_HF = 0, /* transformers' _init_weights: W ~ N(0, initializer_range), b = 0 */
    LORAC_HEAD_INIT_TORCH,  /* a plain torch.nn.Linear: W, b ~ U(-1/sqrt(in), 1/sqrt(in)) (appendix E) */
} lorac_head_init;
lorac_status lorac_model_add_head(lorac_model *m, int n_classes, int bias, lorac_head_init init, uint64_t seed);

lorac_linear *lorac_model_find_linear(lorac_model *m, const char *name);
lorac_weight *lorac_model_find_weight(lorac_model *m, const char *name);

/* Copy a read-only view into malloc'd memory so it may be changed (no
 * gradient buffer; nothing to do when it is owned already). */
lorac_status lorac_weight_make_owned(lorac_weight *w);
/* Make a weight trainable: copies a view into owned memory, allocates grad.
 * LORAC_ERR_UNSUPPORTED for a quantized weight (QLoRA keeps it frozen). */
lorac_status lorac_weight_make_trainable(lorac_weight *w);

/* Size activations for up to B x T tokens (allocates once; grows if asked for more). */
lorac_status lorac_model_reserve(lorac_model *m, int B, int T);

/* Forward pass over ids [B, T] with mask [B, T] (1 = real token, right
 * padding; NULL = all real). mode LM computes logits [B*T, V]; mode CLS
 * computes cls_logits [B, n_classes] from the last real token. */
typedef enum {
    LORAC_FWD_LM = 0,      /* logits for every row: acts.logits [B*T, V] */
    LORAC_FWD_CLS = 1,     /* head on the last real token: acts.cls_logits [B, n_classes] */
    LORAC_FWD_HIDDEN = 2,  /* stop after the final norm: acts.lnf [B*T, C] */
    LORAC_FWD_LM_LAST = 3, /* logits of the last real token only: acts.logits [B, V] (generation) */
} lorac_fwd_mode;
lorac_status lorac_model_forward(lorac_model *m, const int *ids, const uint8_t *mask, int B, int T, lorac_fwd_mode mode);
/* Backward from d_logits (LM: [B*T, V] in acts.logits, overwritten in place;
 * CLS: [B, n_classes] in acts.cls_logits). Accumulates into every trainable
 * weight's grad. Frozen weights receive nothing. ids, B, T and mode are the
 * last forward's. */
void lorac_model_backward(lorac_model *m, const int *ids, int B, int T, lorac_fwd_mode mode);

/* Packed (padding-free) batches: B sequences laid end to end in one stream
 * of N = offs[B] token rows, sequence b being ids[offs[b] .. offs[b+1]-1]
 * (offs[0] = 0, every sequence at least one token and at most n_ctx). Each
 * sequence is computed exactly as if it were alone: attention is
 * block-diagonal (a query sees keys of its own sequence only), positions
 * restart at 0 for each, the classification head reads each sequence's last
 * token (decoders) or its first / the mean of its tokens (encoders). LM mode
 * gives logits [N, V]. No row is padding, so no work is spent on any. */
lorac_status lorac_model_forward_packed(lorac_model *m, const int *ids, const int *offs, int B, lorac_fwd_mode mode);
/* Backward of the last forward, which was lorac_model_forward_packed(m, ids, ., ., mode). */
void lorac_model_backward_packed(lorac_model *m, const int *ids, lorac_fwd_mode mode);

/* Linear module forward/backward (with its LoRA). x: [N, in]. */
/* training: 0 = inference, 1 = training (LoRA dropout draws its masks from
 * rng), LORAC_TRAIN_REPLAY = the same forward again for gradient
 * checkpointing (dropout reuses the masks drawn last time). */
#define LORAC_TRAIN_REPLAY 2
void lorac_linear_fwd(lorac_linear *L, float *y, const float *x, int N, lorac_rng *rng, int training);
/* lorac_linear_fwd(L, y, x, N, NULL, 0) with a plain LoRA pair's term
 * computed as a KV-cache decoding step computes it (lora/lora_infer.h:
 * fused, each row the same bits whatever N), so that a decoder's forward
 * without the cache gives the rows decoding gives (greedy text with the
 * cache == without). xa is kept as lorac_linear_fwd keeps it. */
void lorac_linear_infer_fwd(lorac_linear *L, float *y, const float *x, int N);
/* Its two halves at inference (no dropout), for callers that give different
 * rows different adapters (models/kvcache.h): the base y = x W^T + b over
 * all N rows (fp32 or quantized W; L->lora not read), and one adapter's term
 * over some rows: y += s (x A^T) B^T, or for a DoRA pair y turned into its
 * DoRA output (lora/dora.c; its norms are computed on first use and cached:
 * lorac_dora_refresh). l is any LoRA pair of L's shape; xa [N, l->parts * l->r]
 * is scratch. */
void lorac_linear_base_fwd(const lorac_linear *L, float *y, const float *x, int N);
void lorac_lora_term_fwd(const lorac_linear *L, lorac_lora *l, float *y, const float *x, int N, float *xa);
/* The adapter term of training's forward: as lorac_lora_term_fwd, with l
 * reserved (lorac_lora_reserve) for N rows, its xa (and DoRA's z) kept for
 * backward. drop_on: xd is a dropout of the base's input; 0 when xd is x. */
void lorac_lora_add(const lorac_linear *L, lorac_lora *l, float *y, const float *xd, int N, int drop_on);
/* Gradient checkpointing on (1) or off (0) for the next forward: decoders
 * (GPT-2, Llama) only; LORAC_ERR_UNSUPPORTED for encoders. */
lorac_status lorac_model_set_grad_ckpt(lorac_model *m, int on);
/* dx += dy W (+ LoRA path); grads of trainable W/b and of LoRA A/B accumulate.
 * dx may be NULL. */
void lorac_linear_bwd(lorac_linear *L, float *dx, const float *dy, const float *x, int N);
/* The embedding's LoRA term (lora/lora_embed.c; nothing without one):
 * x[n, :] += s B A[:, ids[n]], and its backward from dL/dx into dA, dB. */
void lorac_lora_embed_fwd(const lorac_model *m, float *x, const int *ids, int N);
void lorac_lora_embed_bwd(lorac_model *m, const float *dx, const int *ids, int N);
/* Free one LoRA pair and its buffers (NULL is fine). */
void lorac_lora_free(lorac_lora *l);
/* Make sure L->lora buffers hold N rows. */
lorac_status lorac_lora_reserve(lorac_lora *l, int in, int N);

#endif
