/* model_internal.h - what decoder.c and encoder.c share; not public API. */
#ifndef LORAC_MODELS_MODEL_INTERNAL_H
#define LORAC_MODELS_MODEL_INTERNAL_H

#include "models/model.h"

/* Views of q, k, v inside a layer's qkv buffer. GPT-2 and Phi-3: one fused
 * row [q|k|v] per token; Llama and BERT: three contiguous blocks [N,HqD]
 * [N,HkD] [N,HkD]. */
typedef struct { float *q, *k, *v; int ldq, ldk, ldv; } qkv_view;

static inline qkv_view qkv_split(const lorac_config *c, float *buf, int N) {
    qkv_view v;
    const int HqD = c->n_head * c->head_dim, HkD = c->n_kv_head * c->head_dim;
    if (c->arch == LORAC_ARCH_GPT2 || c->fused) {
        v.q = buf;
        v.k = buf + HqD;
        v.v = buf + HqD + HkD;
        v.ldq = v.ldk = v.ldv = HqD + 2 * HkD;
    } else {
        v.q = buf;
        v.k = buf + (size_t)N * HqD;
        v.v = v.k + (size_t)N * HkD;
        v.ldq = HqD;
        v.ldk = v.ldv = HkD;
    }
    return v;
}

/* encoder.c: called by lorac_model_forward(_packed) / lorac_model_backward(_packed)
 * once the ids are checked and the row layout (acts.n_seq .. acts.last) is filled. */
lorac_status lorac_encoder_forward(lorac_model *m, const int *ids, lorac_fwd_mode mode);
void lorac_encoder_backward(lorac_model *m, const int *ids);

/* decoder.c: layer l's attention over the rows of the last forward (padded
 * and masked, or packed), with the layer's sliding window and the model's
 * score scale, from the q, k, v views of its qkv buffer into its atty and
 * lse; backward into the same views of d_qkv. */
void lorac_layer_attention_fwd(lorac_model *m, int l, int causal);

/* The model's own dropout (lorac_model.model_dropout) in this training
 * forward / backward: p when it applies, else 0; and the mask key of site
 * `site` of layer l (layer -1: embeddings and head), fixed for one step by
 * m->drop_seed so that backward recomputes forward's masks. */
static inline float lorac_model_drop_p(const lorac_model *m, float p) { return m->training && m->model_dropout ? p : 0.0f; }
static inline uint64_t lorac_drop_key(const lorac_model *m, int l, int site) {
    return lorac_hash64(m->drop_seed ^ ((uint64_t)(l + 2) << 8 | (uint64_t)site));
}
enum { LORAC_DROP_ATT = 0, LORAC_DROP_ATT_OUT, LORAC_DROP_MLP_OUT, LORAC_DROP_EMB, LORAC_DROP_HEAD };
void lorac_layer_attention_bwd(lorac_model *m, int l, float *d_qkv, const float *d_atty, int causal);

/* decoder.c: one decoder layer's forward over N token rows, as a forward
 * over whole sequences (m->acts) and decoding over a KV cache (decode.c)
 * both run it: the norms, MLP and residuals are the same; the Linears (one
 * adapter for all rows, or one per sequence) and the attention (over the
 * rows themselves, or over cached keys) are the caller's. */
typedef struct lorac_layer_pass lorac_layer_pass;
struct lorac_layer_pass {
    lorac_model *m;
    int N;                  /* token rows */
    const int *pos;         /* [N] position of each row in its sequence (RoPE) */
    lorac_layer_acts *s;    /* the layer's buffers: x_in (its input) .. */
    float *x_next;          /* its output, [N, C] */
    /* y [N, L->out] = L(x) for the N rows, adapters included */
    void (*linear)(lorac_layer_pass *p, lorac_linear *L, float *y, const float *x);
    /* s->atty from the q, k, v in s->qkv (normed and rotated) */
    void (*attention)(lorac_layer_pass *p, int l);
    int training;           /* lorac_linear_fwd's training argument (acts_linear) */
    void *ctx;              /* the caller's (decode.c: its batch) */
};
/* replay = 1: gradient checkpointing's re-run (decoder.c's top comment). */
void lorac_decoder_layer_fwd(lorac_layer_pass *p, int l, int replay);
/* decoder.c: LayerNorm (GPT-2; mean and rstd saved) or RMSNorm (the rest; rstd saved) of N rows of dim. */
void lorac_norm_fwd(const lorac_model *m, const lorac_norm *n, float *y, float *mean, float *rstd, const float *x, int N);

/* weights.c, shared with quantize.c */
lorac_status lorac_bind_weight(lorac_model *m, lorac_weight *w);            /* bind one weight to the checkpoint */
/* gguf_names.c: llama.cpp's names and row order */
int lorac_gguf_tensor_name(const lorac_config *c, const char *hf, char *out, size_t n); /* HF name -> GGUF name */
void lorac_unpermute_rope_rows(float *w, int heads, int D, int in);         /* llama.cpp q/k rows -> HF order */
/* weights.c */
int lorac_is_block_linear(const lorac_model *m, const lorac_linear *L);     /* not lm_head / head / pre_head */
/* quantize.c: the block Linears of a model being loaded, quantized (how: NF4 or keep GGUF blocks) */
lorac_status lorac_quantize_blocks_at_load(lorac_model *m, lorac_qload how);
/* quantize.c: L's weight stored in bitsandbytes' 4-bit NF4 serialization
 * (double quantization) in m's safetensors: *bound = 1 and the NF4 [out, in]
 * becomes L's (keep_nf4), or its fp32 dequantization (lorac_linear_dequantize);
 * *bound = 0 when the weight is stored otherwise. */
lorac_status lorac_bnb_nf4_bind(lorac_model *m, lorac_linear *L, int keep_nf4, int *bound);
/* weights.c: the Linear whose weight is w (NULL if none). */
lorac_linear *lorac_linear_of_weight(const lorac_model *m, const lorac_weight *w);
/* gguf_names.c: a GGUF Llama's q/k weight `name` has its rows interleaved per head
 * by llama.cpp: the number of heads (n_head / n_kv_head), else 0. */
int lorac_gguf_rope_heads(const lorac_model *m, const char *name);

#endif
