/* weights.c - building a model's modules and binding their weights to a
 * checkpoint (safetensors or GGUF) or to fresh random values.
 *
 * Names are always the Hugging Face names. For GGUF files the HF name is
 * translated to llama.cpp's ("model.layers.3.self_attn.q_proj.weight" ->
 * "blk.3.attn_q.weight"), and Llama q/k rows are put back from llama.cpp's
 * interleaved RoPE order into HF's rotate-half order, so LoRA matrices mean
 * the same thing whichever file the base came from; the names and the row
 * order are gguf_names.c's. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "models/model_internal.h"

/* ---- the weight table -------------------------------------------------- */

static lorac_weight *new_weight(lorac_model *m, const char *name, int ndim, int64_t d0, int64_t d1) {
    LORAC_ASSERT(m->n_w < m->cap_w);
    lorac_weight *w = &m->w[m->n_w++];
    snprintf(w->name, sizeof w->name, "%s", name);
    w->ndim = ndim;
    w->shape[0] = d0;
    w->shape[1] = ndim > 1 ? d1 : 1;
    w->n = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1);
    return w;
}

lorac_weight *lorac_model_find_weight(lorac_model *m, const char *name) {
    for (int i = 0; i < m->n_w; i++)
        if (!strcmp(m->w[i].name, name)) return &m->w[i];
    return NULL;
}

lorac_linear *lorac_model_find_linear(lorac_model *m, const char *name) {
    for (int i = 0; i < m->n_lin; i++)
        if (!strcmp(m->lin[i].name, name)) return &m->lin[i];
    return NULL;
}

lorac_status lorac_weight_make_trainable(lorac_weight *w) {
    if (w->quantized)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "'%s' is quantized (QLoRA base) and stays frozen; hint: train LoRA "
                          "adapters on it (--target), or load the base without --method qlora to train it in full", w->name);
    if (!w->owned) {
        float *copy;
        LORAC_TRY(lorac_alloc((void **)&copy, w->n, sizeof(float), w->name));
        memcpy(copy, w->data, w->n * sizeof(float));
        w->data = copy;
        w->owned = 1;
    }
    if (!w->grad) LORAC_TRY(lorac_alloc((void **)&w->grad, w->n, sizeof(float), w->name));
    return LORAC_OK;
}

/* A Linear whose weight is "<name>.weight" and bias "<name>.bias". */
static lorac_linear *new_linear(lorac_model *m, const char *name, int in, int out, int w_in_out, int bias) {
    LORAC_ASSERT(m->n_lin < m->cap_lin);
    lorac_linear *L = &m->lin[m->n_lin++];
    char wn[160];
    snprintf(L->name, sizeof L->name, "%s", name);
    L->in = in;
    L->out = out;
    L->w_in_out = w_in_out;
    L->fused_parts = 1;
    snprintf(wn, sizeof wn, "%s.weight", name);
    L->W = w_in_out ? new_weight(m, wn, 2, in, out) : new_weight(m, wn, 2, out, in);
    if (bias) {
        snprintf(wn, sizeof wn, "%s.bias", name);
        L->b = new_weight(m, wn, 1, out, 1);
    }
    return L;
}

static lorac_norm new_norm(lorac_model *m, const char *name, int C, int bias) {
    char wn[160];
    lorac_norm n = {0};
    snprintf(wn, sizeof wn, "%s.weight", name);
    n.g = new_weight(m, wn, 1, C, 1);
    if (bias) {
        snprintf(wn, sizeof wn, "%s.bias", name);
        n.b = new_weight(m, wn, 1, C, 1);
    }
    return n;
}

/* A checkpoint tensor by HF name. Checkpoints of the base model alone drop
 * the task model's prefix: GPT2Model ("h.0..." for "transformer.h.0..."),
 * BertModel and sentence-transformers ("encoder..." for "bert.encoder..."). */
static const lorac_tensor_desc *find_tensor(const lorac_model *m, const char *name) {
    static const char *const prefixes[] = {"transformer.", "bert.", "distilbert."};
    const lorac_tensor_desc *t = lorac_st_find(m->st, name);
    for (size_t i = 0; !t && i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if (!strncmp(name, prefixes[i], n)) t = lorac_st_find(m->st, name + n);
    }
    return t;
}

/* BERT / DistilBERT, named as BertForSequenceClassification /
 * DistilBertForSequenceClassification name them (so adapters load in PEFT
 * over AutoModelForSequenceClassification); lorac_bind_weight also finds checkpoints
 * saved without the "bert." prefix (BertModel, sentence-transformers). */
static lorac_status build_encoder(lorac_model *m) {
    const lorac_config *c = &m->cfg;
    const int C = c->dim, F = c->ffn_dim;
    const char *P = c->distil ? "distilbert" : "bert";
    char nm[160];
#define NM(...) (snprintf(nm, sizeof nm, __VA_ARGS__), nm)
    m->wte = new_weight(m, NM("%s.embeddings.word_embeddings.weight", P), 2, c->vocab, C);
    m->wpe = new_weight(m, NM("%s.embeddings.position_embeddings.weight", P), 2, c->n_ctx, C);
    if (c->type_vocab > 0) m->tte = new_weight(m, NM("%s.embeddings.token_type_embeddings.weight", P), 2, c->type_vocab, C);
    m->ln_emb = new_norm(m, NM("%s.embeddings.LayerNorm", P), C, 1);
    /* module names inside block l: q, k, v, o, ln1, fc, down, ln2 */
    static const char *const names[2][8] = {
        {"encoder.layer.%d.attention.self.query", "encoder.layer.%d.attention.self.key",
         "encoder.layer.%d.attention.self.value", "encoder.layer.%d.attention.output.dense",
         "encoder.layer.%d.attention.output.LayerNorm", "encoder.layer.%d.intermediate.dense",
         "encoder.layer.%d.output.dense", "encoder.layer.%d.output.LayerNorm"},
        {"transformer.layer.%d.attention.q_lin", "transformer.layer.%d.attention.k_lin",
         "transformer.layer.%d.attention.v_lin", "transformer.layer.%d.attention.out_lin",
         "transformer.layer.%d.sa_layer_norm", "transformer.layer.%d.ffn.lin1", "transformer.layer.%d.ffn.lin2",
         "transformer.layer.%d.output_layer_norm"}};
    const char *const *n = names[c->distil ? 1 : 0];
    char fmt[96];
    for (int l = 0; l < c->n_layer; l++) {
        lorac_layer *L = &m->layers[l];
#define BLOCK(k) (snprintf(fmt, sizeof fmt, "%%s.%s", n[k]), NM(fmt, P, l))
        L->q = new_linear(m, BLOCK(0), C, C, 0, 1);
        L->k = new_linear(m, BLOCK(1), C, C, 0, 1);
        L->v = new_linear(m, BLOCK(2), C, C, 0, 1);
        L->o = new_linear(m, BLOCK(3), C, C, 0, 1);
        L->ln1 = new_norm(m, BLOCK(4), C, 1);
        L->fc = new_linear(m, BLOCK(5), C, F, 0, 1);
        L->down = new_linear(m, BLOCK(6), F, C, 0, 1);
        L->ln2 = new_norm(m, BLOCK(7), C, 1);
#undef BLOCK
    }
    /* BERT's pooler belongs to the base model: a checkpoint saved without
     * one gets mean pooling; a config-only model (counts) gets the pooler */
    if (!c->distil && c->pool == LORAC_POOL_CLS && m->st && !find_tensor(m, "bert.pooler.dense.weight")) m->cfg.pool = LORAC_POOL_MEAN;
    if (!c->distil && c->pool == LORAC_POOL_CLS) m->pre_head = new_linear(m, "bert.pooler.dense", C, C, 0, 1);
#undef NM
    m->lm_head = NULL; /* encoders have no LM head */
    return LORAC_OK;
}

/* The norms of a model whose RMSNorms scale by (1 + w), and each one's 1 + w buffer. */
static void gemma_norms(lorac_model *m, int l, lorac_norm *out[6]) {
    lorac_layer *L = &m->layers[l];
    lorac_norm *n[6] = {&L->ln1, &L->ln2, &L->attn_post, &L->mlp_post, &L->q_norm, &L->k_norm};
    memcpy(out, n, sizeof n);
}

static lorac_status gemma_norm_buffers(lorac_model *m) {
    lorac_norm *n[6];
    for (int l = 0; l < m->cfg.n_layer; l++) {
        gemma_norms(m, l, n);
        for (int i = 0; i < 6; i++)
            if (n[i]->g) LORAC_TRY(lorac_alloc((void **)&n[i]->g1, n[i]->g->n, sizeof(float), n[i]->g->name));
    }
    return lorac_alloc((void **)&m->lnf.g1, m->lnf.g->n, sizeof(float), m->lnf.g->name);
}

/* Create the module tree for cfg (weights unbound: data == NULL). */
static lorac_status build_modules(lorac_model *m) {
    const lorac_config *c = &m->cfg;
    const int C = c->dim, D = c->head_dim, F = c->ffn_dim;
    m->cap_w = 16 * c->n_layer + 16;
    m->cap_lin = 8 * c->n_layer + 4;
    LORAC_TRY(lorac_alloc((void **)&m->w, (size_t)m->cap_w, sizeof *m->w, "weight table"));
    LORAC_TRY(lorac_alloc((void **)&m->lin, (size_t)m->cap_lin, sizeof *m->lin, "module table"));
    LORAC_TRY(lorac_alloc((void **)&m->layers, (size_t)c->n_layer, sizeof *m->layers, "layer table"));
    char nm[128];
    if (c->arch == LORAC_ARCH_BERT) return build_encoder(m);
    if (c->arch == LORAC_ARCH_GPT2) {
        m->wte = new_weight(m, "transformer.wte.weight", 2, c->vocab, C);
        m->wpe = new_weight(m, "transformer.wpe.weight", 2, c->n_ctx, C);
        for (int l = 0; l < c->n_layer; l++) {
            lorac_layer *L = &m->layers[l];
#define NM(fmt) (snprintf(nm, sizeof nm, "transformer.h.%d." fmt, l), nm)
            L->ln1 = new_norm(m, NM("ln_1"), C, 1);
            L->qkv = new_linear(m, NM("attn.c_attn"), C, 3 * C, 1, 1);
            L->qkv->fused_parts = 3;
            L->o = new_linear(m, NM("attn.c_proj"), C, C, 1, 1);
            L->ln2 = new_norm(m, NM("ln_2"), C, 1);
            L->fc = new_linear(m, NM("mlp.c_fc"), C, F, 1, 1);
            L->down = new_linear(m, NM("mlp.c_proj"), F, C, 1, 1);
#undef NM
        }
        m->lnf = new_norm(m, "transformer.ln_f", C, 1);
    } else {
        m->wte = new_weight(m, "model.embed_tokens.weight", 2, c->vocab, C);
        const int Hq = c->n_head * D, Hk = c->n_kv_head * D;
        for (int l = 0; l < c->n_layer; l++) {
            lorac_layer *L = &m->layers[l];
#define NM(fmt) (snprintf(nm, sizeof nm, "model.layers.%d." fmt, l), nm)
            L->ln1 = new_norm(m, NM("input_layernorm"), C, 0);
            if (c->fused) { /* Phi-3: q | k | v rows in one projection */
                L->qkv = new_linear(m, NM("self_attn.qkv_proj"), C, Hq + 2 * Hk, 0, c->attn_bias);
            } else {
                L->q = new_linear(m, NM("self_attn.q_proj"), C, Hq, 0, c->attn_bias);
                L->k = new_linear(m, NM("self_attn.k_proj"), C, Hk, 0, c->attn_bias);
                L->v = new_linear(m, NM("self_attn.v_proj"), C, Hk, 0, c->attn_bias);
            }
            if (c->qk_norm) {
                L->q_norm = new_norm(m, NM("self_attn.q_norm"), D, 0);
                L->k_norm = new_norm(m, NM("self_attn.k_norm"), D, 0);
            }
            L->o = new_linear(m, NM("self_attn.o_proj"), Hq, C, 0, 0);
            if (c->gemma) { /* norms on both sides of attention and of the MLP */
                L->attn_post = new_norm(m, NM("post_attention_layernorm"), C, 0);
                L->ln2 = new_norm(m, NM("pre_feedforward_layernorm"), C, 0);
                L->mlp_post = new_norm(m, NM("post_feedforward_layernorm"), C, 0);
            } else {
                L->ln2 = new_norm(m, NM("post_attention_layernorm"), C, 0);
            }
            if (c->fused) { /* Phi-3: gate | up rows in one projection */
                L->fc = new_linear(m, NM("mlp.gate_up_proj"), C, 2 * F, 0, c->mlp_bias);
            } else {
                L->fc = new_linear(m, NM("mlp.gate_proj"), C, F, 0, c->mlp_bias);
                L->up = new_linear(m, NM("mlp.up_proj"), C, F, 0, c->mlp_bias);
            }
            L->down = new_linear(m, NM("mlp.down_proj"), F, C, 0, c->mlp_bias);
#undef NM
        }
        m->lnf = new_norm(m, "model.norm", C, 0);
        if (c->gemma) LORAC_TRY(gemma_norm_buffers(m));
    }
    /* LM head: a Linear named lm_head; tied heads share wte's data. */
    LORAC_ASSERT(m->n_lin < m->cap_lin);
    lorac_linear *H = &m->lin[m->n_lin++];
    snprintf(H->name, sizeof H->name, "lm_head");
    H->in = C;
    H->out = c->vocab;
    H->fused_parts = 1;
    H->W = c->tied ? m->wte : new_weight(m, "lm_head.weight", 2, c->vocab, C);
    m->lm_head = H;
    return LORAC_OK;
}

/* ---- binding to a checkpoint ------------------------------------------ */

/* Base weights are checked once at load: a NaN or Inf would poison every output. */
#define BAD_WEIGHTS_HINT "the checkpoint is corrupt; re-download or re-convert it"

lorac_linear *lorac_linear_of_weight(const lorac_model *m, const lorac_weight *w) {
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].W == w) return &m->lin[i];
    return NULL;
}

lorac_status lorac_bind_weight(lorac_model *m, lorac_weight *w) {
    const lorac_tensor_desc *t = NULL;
    lorac_linear *L = m->st ? lorac_linear_of_weight(m, w) : NULL;
    if (L) { /* stored by bitsandbytes in 4 bits: dequantized */
        int bound;
        LORAC_TRY(lorac_bnb_nf4_bind(m, L, 0, &bound));
        if (bound) return LORAC_OK;
    }
    const char *file = m->path;
    char alt[160];
    int transposed = 0; /* GGUF GPT-2 matrices are [out,in]; HF Conv1D is [in,out] */
    if (m->st) {
        t = find_tensor(m, w->name);
        if (t) file = lorac_st_path_of(m->st, t);
    } else if (m->gguf && lorac_gguf_tensor_name(&m->cfg, w->name, alt, sizeof alt)) {
        t = lorac_gguf_find_tensor(m->gguf, alt);
        transposed = m->cfg.arch == LORAC_ARCH_GPT2 && w->ndim == 2 && strstr(w->name, ".h.") != NULL;
    }
    if (!t)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s' is missing; hint: the checkpoint does not match its config (%s)",
                          file, w->name, m->cfg.model_type);
    int64_t e0 = transposed ? w->shape[1] : w->shape[0], e1 = transposed ? w->shape[0] : w->shape[1];
    int64_t g0 = t->shape[0], g1 = t->ndim > 1 ? t->shape[1] : 1;
    if (t->ndim != w->ndim || g0 != e0 || g1 != e1)
        return lorac_fail(LORAC_ERR_SHAPE, "%s: tensor '%s' is [%lld,%lld], config expects [%lld,%lld]; hint: wrong config.json?",
                          file, t->name, (long long)g0, (long long)g1, (long long)e0, (long long)e1);
    /* llama.cpp's q/k rows need reordering (below), so they are never a view */
    const int heads = lorac_gguf_rope_heads(m, w->name), permuted = heads > 0;
    /* llama.cpp's converter stores Gemma's RMSNorm weights as 1 + w; lorac keeps Hugging Face's w */
    const int plus1 = m->gguf && m->cfg.gemma && w->ndim == 1 && strstr(w->name, "norm.weight");
    if (t->dtype == LORAC_F32 && !transposed && !permuted && !plus1 && (uintptr_t)t->data % sizeof(float) == 0) {
        w->data = (float *)t->data; /* zero-copy view into the mapping */
        w->owned = 0;
        return lorac_check_finite(w->data, w->n, file, t->name, BAD_WEIGHTS_HINT);
    }
    float *buf;
    LORAC_TRY(lorac_alloc((void **)&buf, w->n, sizeof(float), w->name));
    lorac_status st = lorac_to_f32(buf, t->data, t->dtype, (int64_t)w->n);
    if (st != LORAC_OK) {
        free(buf);
        lorac_error_prefix("%s: tensor '%s'", file, t->name);
        return st;
    }
    if (transposed) { /* [out,in] -> [in,out] */
        float *tr = malloc(sizeof(float) * w->n);
        LORAC_ASSERT(tr);
        for (int64_t i = 0; i < e0; i++)
            for (int64_t j = 0; j < e1; j++) tr[j * e0 + i] = buf[i * e1 + j];
        free(buf);
        buf = tr;
    }
    if (heads) lorac_unpermute_rope_rows(buf, heads, m->cfg.head_dim, (int)w->shape[1]);
    for (size_t i = 0; plus1 && i < w->n; i++) buf[i] -= 1.0f;
    w->data = buf;
    w->owned = 1;
    return lorac_check_finite(w->data, w->n, file, t->name, BAD_WEIGHTS_HINT);
}

/* A Linear of the transformer blocks (what QLoRA quantizes). */
int lorac_is_block_linear(const lorac_model *m, const lorac_linear *L) {
    return L != m->lm_head && L != m->head && L != m->pre_head;
}

/* defer_blocks: leave the block Linears' weights unbound (load_quantized binds them one at a time);
 * defer_embed: the token embedding too; defer_head: an untied lm_head's weight too (KEEP_HEAD). */
static lorac_status bind_all(lorac_model *m, int defer_blocks, int defer_embed, int defer_head) {
    for (int i = 0; i < m->n_w; i++) {
        lorac_weight *w = &m->w[i];
        int deferred = (defer_embed && w == m->wte) || (defer_head && m->lm_head && w == m->lm_head->W && w != m->wte);
        for (int j = 0; defer_blocks && j < m->n_lin && !deferred; j++)
            deferred = m->lin[j].W == w && lorac_is_block_linear(m, &m->lin[j]);
        if (!deferred) LORAC_TRY(lorac_bind_weight(m, w));
    }
    return LORAC_OK;
}

/* The checkpoint (st, may be NULL) is only looked at, not owned, until this succeeds. */
static lorac_status model_new(const lorac_config *cfg, lorac_st *ckpt, lorac_model **out) {
    lorac_model *m;
    *out = NULL;
    LORAC_TRY(lorac_alloc((void **)&m, 1, sizeof *m, "model"));
    m->cfg = *cfg;
    m->st = ckpt;
    lorac_rng_seed(&m->rng, 1234);
    lorac_status st = build_modules(m);
    if (st != LORAC_OK) {
        m->st = NULL;
        lorac_model_free(m);
        return st;
    }
    *out = m;
    return LORAC_OK;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* sentence-transformers checkpoints (all-MiniLM-L6-v2, ...) say in
 * modules.json + 1_Pooling/config.json how their authors pool: follow it. */
static void sentence_transformers_pooling(const char *dir, lorac_config *c) {
    char p[1200];
    if (!lorac_file_exists(lorac_path_join(p, sizeof p, dir, "modules.json"))) return;
    lorac_path_join(p, sizeof p, dir, "1_Pooling/config.json");
    char *text;
    if (lorac_read_file(p, 1 << 20, &text, NULL) != LORAC_OK) {
        lorac_clear_error();
        return;
    }
    if (strstr(text, "\"pooling_mode_mean_tokens\": true") || strstr(text, "\"pooling_mode_mean_tokens\":true")) c->pool = LORAC_POOL_MEAN;
    free(text);
}

/* A Linear of the classification head, bound to the checkpoint. */
static lorac_status bound_linear(lorac_model *m, const char *name, int in, int out, lorac_linear **L) {
    if (m->n_lin >= m->cap_lin || m->n_w + 2 > m->cap_w) return lorac_fail(LORAC_ERR_NOMEM, "module table full");
    *L = new_linear(m, name, in, out, 0, 1);
    LORAC_TRY(lorac_bind_weight(m, (*L)->W));
    return lorac_bind_weight(m, (*L)->b);
}

/* A checkpoint saved by BertForSequenceClassification /
 * DistilBertForSequenceClassification carries its head: keep it. */
static lorac_status load_encoder_head(lorac_model *m) {
    const lorac_tensor_desc *t = lorac_st_find(m->st, "classifier.weight");
    if (!t || t->ndim != 2 || t->shape[1] != m->cfg.dim || t->shape[0] < 2 || t->shape[0] > 100000) return LORAC_OK;
    if (m->cfg.distil && m->cfg.pool == LORAC_POOL_CLS) {
        if (!lorac_st_find(m->st, "pre_classifier.weight")) return LORAC_OK;
        LORAC_TRY(bound_linear(m, "pre_classifier", m->cfg.dim, m->cfg.dim, &m->pre_head));
    }
    LORAC_TRY(bound_linear(m, "classifier", m->cfg.dim, (int)t->shape[0], &m->head));
    m->n_classes = (int)t->shape[0];
    return LORAC_OK;
}


static lorac_status model_load(const char *path, int quantize, lorac_qload how, lorac_model **out) {
    lorac_config cfg;
    lorac_st *st = NULL;
    lorac_gguf *g = NULL;
    *out = NULL;
    if (ends_with(path, ".gguf")) {
        LORAC_TRY(lorac_gguf_open(path, &g));
        lorac_status s = lorac_config_from_gguf(g, &cfg);
        if (s != LORAC_OK) {
            lorac_gguf_close(g);
            return s;
        }
    } else {
        char cp[1200];
        lorac_path_join(cp, sizeof cp, path, "config.json");
        if (!lorac_file_exists(cp))
            return lorac_fail(LORAC_ERR_IO, "%s: no config.json here; hint: pass a Hugging Face model directory or a .gguf file", path);
        LORAC_TRY(lorac_config_load_json(cp, &cfg));
        LORAC_TRY(lorac_st_open(path, &st));
    }
    if (cfg.arch == LORAC_ARCH_BERT) sentence_transformers_pooling(path, &cfg);
    lorac_model *m;
    lorac_status s = model_new(&cfg, st, &m);
    if (s != LORAC_OK) {
        lorac_st_close(st);
        lorac_gguf_close(g);
        return s;
    }
    m->st = st;
    m->gguf = g;
    snprintf(m->path, sizeof m->path, "%s", path);
    s = bind_all(m, quantize, quantize && !(how & LORAC_QLOAD_EMBED_FP32), quantize && (how & LORAC_QLOAD_KEEP_HEAD));
    if (s == LORAC_OK && quantize) s = lorac_quantize_blocks_at_load(m, how);
    if (s == LORAC_OK && st && cfg.arch == LORAC_ARCH_BERT) s = load_encoder_head(m);
    if (s != LORAC_OK) {
        lorac_model_free(m);
        return s;
    }
    *out = m;
    return LORAC_OK;
}

lorac_status lorac_model_load(const char *path, lorac_model **out) { return model_load(path, 0, LORAC_QLOAD_NF4, out); }

lorac_status lorac_model_load_quantized(const char *path, lorac_qload how, lorac_model **out) {
    const int mode = how & ~(LORAC_QLOAD_EMBED_FP32 | LORAC_QLOAD_KEEP_HEAD);
    if (mode != LORAC_QLOAD_NF4 && mode != LORAC_QLOAD_KEEP) return lorac_fail(LORAC_ERR_ARG, "lorac_model_load_quantized: bad mode %d", (int)how);
    if ((how & LORAC_QLOAD_KEEP_HEAD) && mode != LORAC_QLOAD_KEEP)
        return lorac_fail(LORAC_ERR_ARG, "lorac_model_load_quantized: LORAC_QLOAD_KEEP_HEAD goes with LORAC_QLOAD_KEEP");
    return model_load(path, 1, how, out);
}

lorac_status lorac_model_create_random(const lorac_config *cfg, uint64_t seed, lorac_model **out) {
    lorac_model *m;
    LORAC_TRY(model_new(cfg, NULL, &m));
    snprintf(m->path, sizeof m->path, "(random %s)", cfg->model_type);
    lorac_rng r;
    lorac_rng_seed(&r, seed);
    for (int i = 0; i < m->n_w; i++) {
        lorac_weight *w = &m->w[i];
        lorac_status st = lorac_alloc((void **)&w->data, w->n, sizeof(float), w->name);
        if (st != LORAC_OK) {
            lorac_model_free(m);
            return st;
        }
        w->owned = 1;
        int is_norm_gain = w->ndim == 1 && (strstr(w->name, "norm") || strstr(w->name, "Norm") || strstr(w->name, "ln_")) &&
                           ends_with(w->name, ".weight");
        for (size_t j = 0; j < w->n; j++)
            w->data[j] = is_norm_gain ? 1.0f : (w->ndim == 1 ? 0.0f : 0.02f * lorac_rng_normal(&r));
    }
    *out = m;
    return LORAC_OK;
}

/* A new Linear, initialised as `init` says:
 *   TORCH: nn.Linear's default, U(-1/sqrt(in), 1/sqrt(in)) for W and b;
 *   HF:    transformers' _init_weights for a Linear, N(0, initializer_range)
 *          for W and zeros for b. */
static lorac_status fresh_linear(lorac_model *m, const char *name, int in, int out, int bias, lorac_head_init init,
                                 lorac_rng *r, lorac_linear **L) {
    if (m->n_lin >= m->cap_lin || m->n_w + 2 > m->cap_w) return lorac_fail(LORAC_ERR_NOMEM, "module table full");
    lorac_linear *H = *L = new_linear(m, name, in, out, 0, bias);
    const float bound = 1.0f / sqrtf((float)in), std = m->cfg.init_range;
    lorac_weight *ws[2] = {H->W, H->b};
    for (int k = 0; k < 2; k++) {
        if (!ws[k]) continue;
        LORAC_TRY(lorac_alloc((void **)&ws[k]->data, ws[k]->n, sizeof(float), ws[k]->name));
        ws[k]->owned = 1;
        for (size_t j = 0; j < ws[k]->n; j++)
            ws[k]->data[j] = init == LORAC_HEAD_INIT_TORCH ? (2 * lorac_rng_uniform(r) - 1) * bound
                             : k == 0                      ? std * lorac_rng_normal(r)
                                                           : 0.0f;
    }
    return LORAC_OK;
}

lorac_status lorac_model_add_head(lorac_model *m, int n_classes, int bias, lorac_head_init init, uint64_t seed) {
    if (n_classes < 2 || n_classes > 100000)
        return lorac_fail(LORAC_ERR_ARG, "classification head: %d classes; hint: need at least 2", n_classes);
    if (m->head) {
        if (m->n_classes == n_classes) return LORAC_OK; /* the checkpoint's own head */
        return lorac_fail(LORAC_ERR_ARG, "%s: the checkpoint's classifier has %d classes, the data %d; hint: use a base model "
                          "without a classifier, or data with the same labels", m->path, m->n_classes, n_classes);
    }
    lorac_rng r;
    lorac_rng_seed(&r, seed);
    const int C = m->cfg.dim;
    if (m->cfg.arch == LORAC_ARCH_BERT && m->cfg.pool == LORAC_POOL_CLS && !m->pre_head) {
        LORAC_TRY(fresh_linear(m, m->cfg.distil ? "pre_classifier" : "bert.pooler.dense", C, C, 1, init, &r, &m->pre_head));
        m->pre_head_fresh = 1;
    }
    LORAC_TRY(fresh_linear(m, m->cfg.arch == LORAC_ARCH_BERT ? "classifier" : "score", C, n_classes, bias, init, &r,
                           &m->head));
    m->head_fresh = 1;
    m->n_classes = n_classes;
    return LORAC_OK;
}

lorac_status lorac_weight_make_owned(lorac_weight *w) {
    if (w->owned) return LORAC_OK;
    float *copy;
    LORAC_TRY(lorac_alloc((void **)&copy, w->n, sizeof(float), w->name));
    memcpy(copy, w->data, w->n * sizeof(float));
    w->data = copy;
    w->owned = 1;
    return LORAC_OK;
}

void lorac_lora_free(lorac_lora *l) {
    if (!l) return;
    free(l->A.data);
    free(l->A.grad);
    free(l->B.data);
    free(l->B.grad);
    free(l->xa);
    free(l->xd);
    free(l->mask);
    free(l->dxa);
    free(l->dxd);
    free(l->M.data);
    free(l->M.grad);
    free(l->wnorm);
    free(l->mnorm);
    free(l->z);
    free(l->bd);
    free(l->A0);
    free(l->B0);
    free(l);
}

void lorac_acts_free(lorac_acts *a, int n_layer);

void lorac_model_free(lorac_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_w; i++) {
        if (m->w[i].owned) free(m->w[i].data);
        free(m->w[i].grad);
    }
    lorac_lora_free(m->wte_lora);
    for (int i = 0; i < m->n_lin; i++) {
        lorac_lora_free(m->lin[i].lora);
        if (m->lin[i].q_shared) continue;
        lorac_qweight_free(m->lin[i].q);
        free(m->lin[i].q);
    }
    lorac_qweight_free(m->wte_q);
    free(m->wte_q);
    lorac_acts_free(&m->acts, m->cfg.n_layer);
    for (int l = 0; m->layers && m->cfg.gemma && l < m->cfg.n_layer; l++) {
        lorac_norm *n[6];
        gemma_norms(m, l, n);
        for (int i = 0; i < 6; i++) free(n[i]->g1);
    }
    free(m->lnf.g1);
    free(m->w);
    free(m->lin);
    free(m->layers);
    lorac_st_close(m->st);
    lorac_gguf_close(m->gguf);
    free(m);
}
