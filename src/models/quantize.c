/* quantize.c - QLoRA's frozen base: the Linears of the transformer blocks
 * kept as NF4 (bitsandbytes' double quantization) or as the GGUF file's own
 * Q4/Q8/K blocks, computed by the on-the-fly dequantizing kernels of
 * quant/qmatmul.h; and the token embedding with them (row lookups
 * dequantize one row; a tied LM head multiplies through the same matrix).
 * Split from weights.c, whose binding it reuses. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "models/model_internal.h"
#include "ops/ops.h"
#include "quant/ggml_blocks.h"

/* ---- QLoRA: quantized block Linears and token embedding ---------------- */

/* w's fp32 values are gone: a quantized copy stands in for them. */
static void drop_fp32(lorac_weight *w) {
    if (w->owned) free(w->data);
    w->data = NULL;
    w->owned = 0;
    w->quantized = 1;
}

static void attach_q(lorac_linear *L, lorac_qweight *q) {
    drop_fp32(L->W);
    L->q = q;
}

/* The other way: buf (owned, fp32 in w's layout) replaces the quantized copy *q. */
static void take_fp32(lorac_weight *w, lorac_qweight **q, float *buf) {
    lorac_qweight_free(*q);
    free(*q);
    *q = NULL;
    w->data = buf;
    w->owned = 1;
    w->quantized = 0;
}

/* NF4, bf16 or a GGML block format of the bound fp32 weight w holding a
 * [rows, cols] matrix, stored [cols, rows] when `transposed` (a Conv1D
 * weight is transposed first). The caller drops the fp32 values. */
static lorac_status quantize_matrix(const lorac_weight *w, int rows, int cols, int transposed, lorac_qformat fmt,
                                    lorac_qweight **out) {
    const float *src = w->data;
    float *tr = NULL;
    lorac_qweight *q = NULL;
    if (fmt <= LORAC_QF_F32 || fmt >= LORAC_QF_COUNT)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "quantizing '%s' to %s: no such format", w->name, lorac_qformat_name(fmt));
    if (!src) return lorac_fail(LORAC_ERR_ARG, "'%s' has no values to quantize", w->name);
    LORAC_TRY(lorac_alloc((void **)&q, 1, sizeof *q, "quantized weight"));
    if (transposed) {
        lorac_status st = lorac_alloc((void **)&tr, (size_t)rows * cols, sizeof(float), w->name);
        if (st != LORAC_OK) {
            free(q);
            return st;
        }
        for (int i = 0; i < cols; i++)
            for (int o = 0; o < rows; o++) tr[(size_t)o * cols + i] = src[(size_t)i * rows + o];
        src = tr;
    }
    lorac_status st = fmt == LORAC_QF_BF16  ? lorac_qweight_from_f32_bf16(q, src, rows, cols)
                      : fmt == LORAC_QF_NF4 ? lorac_qweight_quantize_nf4(q, src, rows, cols)
                                            : lorac_qweight_quantize_ggml(q, fmt, src, rows, cols);
    free(tr);
    if (st != LORAC_OK) {
        free(q);
        lorac_error_prefix("quantizing '%s' to %s", w->name, lorac_qformat_name(fmt));
        return st;
    }
    *out = q;
    return LORAC_OK;
}

/* NF4 (or bf16) of L's bound fp32 weight, as [out, in]; the fp32 values are
 * released right after. */
lorac_status lorac_linear_quantize(lorac_linear *L, lorac_qformat fmt) {
    if (L->q) return lorac_fail(LORAC_ERR_ARG, "'%s' is quantized already", L->name);
    lorac_qweight *q = NULL;
    LORAC_TRY(quantize_matrix(L->W, L->out, L->in, L->w_in_out, fmt, &q));
    attach_q(L, q);
    return LORAC_OK;
}

/* A Linear whose file format could not be kept: counted, logged, and the
 * first reason kept for the caller (the library prints nothing itself). */
static void fallback_note(lorac_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fallback_note(lorac_model *m, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m->q_fallback++ == 0) snprintf(m->q_note, sizeof m->q_note, "%s", msg);
    lorac_log(1, "%s", msg);
}

/* KEEP: the [rows, cols] weight w as a view of the GGUF file's own blocks.
 * *q stays NULL when the tensor is no GGML block type or its rows are no
 * whole number of blocks (the caller then quantizes it to NF4); errors for a
 * wrong shape or byte count. GGUF matrices are [out, in] for nn.Linear and
 * for GPT-2's Conv1D alike (llama.cpp's converter transposes Conv1D weights;
 * lorac_bind_weight transposes them back for the fp32 path), i.e. exactly a
 * qweight's [rows = out, cols = in]; the token embedding is [vocab, dim].
 * heads > 0: Llama q/k rows, reordered from llama.cpp's interleaved RoPE
 * order to HF's rotate-half order (lorac_unpermute_rope_rows); a row is a
 * whole number of blocks, so that is a copy of byte ranges. */
static lorac_status keep_gguf_tensor(lorac_model *m, const lorac_weight *w, int rows, int cols, int heads, int note,
                                     lorac_qweight **out) {
    char alt[160];
    *out = NULL;
    if (!lorac_gguf_tensor_name(&m->cfg, w->name, alt, sizeof alt)) return LORAC_OK; /* lorac_bind_weight reports it */
    const lorac_tensor_desc *t = lorac_gguf_find_tensor(m->gguf, alt);
    if (!t) return LORAC_OK;
    const lorac_qformat f = lorac_qformat_of_dtype(t->dtype);
    if (f < LORAC_QF_Q4_0 || f >= LORAC_QF_COUNT) {
        if (note)
            fallback_note(m, "%s: %s is %s, not a GGML block format: quantized to NF4", m->path, t->name,
                          lorac_dtype_name(t->dtype));
        return LORAC_OK;
    }
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return lorac_fail(LORAC_ERR_SHAPE, "%s: tensor '%s' is [%lld,%lld], config expects [%d,%d]; hint: wrong config?",
                          m->path, t->name, (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 1), rows, cols);
    const int bs = lorac_block_size(t->dtype);
    if (bs <= 0 || cols % bs) {
        if (note)
            fallback_note(m, "%s: rows of %s (%s) hold %d values, not a whole number of %d-value blocks: quantized to NF4",
                          m->path, t->name, lorac_dtype_name(t->dtype), cols, bs);
        return LORAC_OK;
    }
    const size_t row_bytes = (size_t)(cols / bs) * lorac_block_bytes(t->dtype), need = row_bytes * (size_t)rows;
    if (t->nbytes != need)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s' (%s [%d,%d]) holds %zu bytes, its shape needs %zu; hint: "
                          "truncated or corrupt file?", m->path, t->name, lorac_dtype_name(t->dtype), rows, cols,
                          t->nbytes, need);
    const void *data = t->data;
    uint8_t *own = NULL;
    if (heads) {
        const int D = m->cfg.head_dim;
        if (heads * D != rows || D % 2)
            return lorac_fail(LORAC_ERR_SHAPE, "%s: tensor '%s' has %d rows, not %d heads of %d", m->path, t->name, rows,
                              heads, D);
        LORAC_TRY(lorac_alloc((void **)&own, need, 1, t->name));
        const uint8_t *src = t->data;
        /* GGUF row h*D + 2j + s  ==  HF row h*D + s*D/2 + j */
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < D / 2; j++)
                for (int s = 0; s < 2; s++)
                    memcpy(own + (size_t)(h * D + s * D / 2 + j) * row_bytes, src + (size_t)(h * D + 2 * j + s) * row_bytes,
                           row_bytes);
        data = own;
    }
    lorac_qweight *q = NULL;
    lorac_status st = lorac_alloc((void **)&q, 1, sizeof *q, "quantized weight");
    if (st == LORAC_OK) st = lorac_qweight_view(q, f, data, need, rows, cols);
    if (st != LORAC_OK) {
        free(own);
        free(q);
        lorac_error_prefix("%s: tensor '%s'", m->path, t->name);
        return st;
    }
    q->owns = own != NULL;
    *out = q;
    return LORAC_OK;
}

/* KEEP for a block Linear (*kept = 0: not kept, see keep_gguf_tensor). */
static lorac_status keep_gguf_blocks(lorac_model *m, lorac_linear *L, int *kept) {
    lorac_qweight *q = NULL;
    LORAC_TRY(keep_gguf_tensor(m, L->W, L->out, L->in, lorac_gguf_rope_heads(m, L->W->name), 1, &q));
    *kept = q != NULL;
    if (q) attach_q(L, q);
    return LORAC_OK;
}

/* The token embedding's quantized copy takes its place (and a tied head's). */
static void attach_embedding(lorac_model *m, lorac_qweight *q) {
    drop_fp32(m->wte);
    m->wte_q = q;
    if (m->lm_head && m->lm_head->W == m->wte) {
        m->lm_head->q = q;
        m->lm_head->q_shared = 1;
    }
}

lorac_status lorac_model_quantize_embedding(lorac_model *m, lorac_qformat fmt) {
    if (m->wte_q) return LORAC_OK;
    if (m->wte->grad)
        return lorac_fail(LORAC_ERR_ARG, "'%s' is trainable and cannot be quantized; hint: quantize the base before "
                          "making anything trainable", m->wte->name);
    if (m->lm_head && m->lm_head->W == m->wte && m->lm_head->lora && m->lm_head->lora->merged)
        return lorac_fail(LORAC_ERR_ARG, "the tied lm_head holds a merged adapter; hint: unmerge before quantizing");
    lorac_qweight *q = NULL;
    LORAC_TRY(quantize_matrix(m->wte, (int)m->wte->shape[0], (int)m->wte->shape[1], 0, fmt, &q));
    attach_embedding(m, q);
    return LORAC_OK;
}

/* At load: the embedding was left unbound by bind_all; kept in the GGUF
 * file's blocks (KEEP) or bound to fp32 and quantized to NF4 at once. */
static lorac_status quantize_embedding_at_load(lorac_model *m, int keep) {
    lorac_qweight *q = NULL;
    if (keep && m->gguf) LORAC_TRY(keep_gguf_tensor(m, m->wte, (int)m->wte->shape[0], (int)m->wte->shape[1], 0, 1, &q));
    if (q) {
        attach_embedding(m, q);
        return LORAC_OK;
    }
    LORAC_TRY(lorac_bind_weight(m, m->wte));
    return lorac_model_quantize_embedding(m, LORAC_QF_NF4);
}

lorac_status lorac_model_dequantize_embedding(lorac_model *m) {
    if (!m->wte_q) return LORAC_OK;
    float *buf;
    LORAC_TRY(lorac_alloc((void **)&buf, m->wte->n, sizeof(float), m->wte->name));
    lorac_status st = lorac_qweight_dequantize(m->wte_q, buf);
    if (st != LORAC_OK) {
        free(buf);
        lorac_error_prefix("dequantizing '%s'", m->wte->name);
        return st;
    }
    if (m->lm_head && m->lm_head->q_shared) {
        m->lm_head->q = NULL;
        m->lm_head->q_shared = 0;
    }
    take_fp32(m->wte, &m->wte_q, buf);
    return LORAC_OK;
}

void lorac_model_embed_tokens(const lorac_model *m, float *x, const int *ids, int N) {
    const int C = m->cfg.dim;
    if (!m->wte_q) {
        op_embed_fwd(x, m->wte->data, ids, N, C, 0);
        lorac_lora_embed_fwd(m, x, ids, N);
        return;
    }
#pragma omp parallel for schedule(static) if ((size_t)N * C >= 65536)
    for (int n = 0; n < N; n++) {
        lorac_status st = lorac_qweight_dequant_row(m->wte_q, ids[n], x + (size_t)n * C);
        LORAC_ASSERT(st == LORAC_OK); /* ids were checked against the vocabulary by the caller */
    }
    lorac_lora_embed_fwd(m, x, ids, N);
}

/* KEEP_HEAD: an untied lm_head, left unbound by bind_all, as a view of the
 * file's blocks, so a decoding step reads output.weight in its 4 to 8 bits
 * instead of 32 (the largest matrix of a small model: Qwen2.5-0.5B's is
 * 151936 x 896). A head the file holds otherwise is bound to fp32 as
 * without the flag: no NF4 here, the head is no QLoRA block Linear, and
 * nothing is counted as a fallback. */
static lorac_status keep_head_at_load(lorac_model *m) {
    lorac_linear *L = m->lm_head;
    lorac_qweight *q = NULL;
    if (m->gguf) LORAC_TRY(keep_gguf_tensor(m, L->W, L->out, L->in, 0, 0, &q));
    if (!q) return lorac_bind_weight(m, L->W);
    attach_q(L, q);
    return LORAC_OK;
}

/* The block Linears' weights were left unbound by bind_all: each is kept
 * (KEEP, GGUF block formats) or bound to fp32 and quantized to NF4 at once,
 * so at most one block Linear is in fp32 at any time. */
lorac_status lorac_quantize_blocks_at_load(lorac_model *m, lorac_qload how) {
    const int keep = (how & ~(LORAC_QLOAD_EMBED_FP32 | LORAC_QLOAD_KEEP_HEAD)) == LORAC_QLOAD_KEEP;
    if (!(how & LORAC_QLOAD_EMBED_FP32)) LORAC_TRY(quantize_embedding_at_load(m, keep));
    if ((how & LORAC_QLOAD_KEEP_HEAD) && m->lm_head && m->lm_head->W != m->wte) LORAC_TRY(keep_head_at_load(m));
    for (int i = 0; i < m->n_lin; i++) {
        lorac_linear *L = &m->lin[i];
        if (!lorac_is_block_linear(m, L)) continue;
        int kept = 0;
        if (keep && m->gguf) LORAC_TRY(keep_gguf_blocks(m, L, &kept));
        if (kept) continue;
        LORAC_TRY(lorac_bnb_nf4_bind(m, L, 1, &kept)); /* a bitsandbytes 4-bit checkpoint: its NF4 as it is */
        if (kept) continue;
        LORAC_TRY(lorac_bind_weight(m, L->W));
        LORAC_TRY(lorac_linear_quantize(L, LORAC_QF_NF4));
    }
    return LORAC_OK;
}

lorac_status lorac_model_quantize(lorac_model *m, lorac_qformat fmt) {
    if (fmt <= LORAC_QF_F32 || fmt >= LORAC_QF_COUNT)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "quantizing a base to %s: no such format", lorac_qformat_name(fmt));
    const int bs = lorac_qformat_row_block(fmt);
    for (int i = 0; i < m->n_lin; i++) /* every row a whole number of blocks, before anything changes */
        if (lorac_is_block_linear(m, &m->lin[i]) && !m->lin[i].q && m->lin[i].in % bs)
            return lorac_fail(LORAC_ERR_SHAPE, "quantizing '%s' to %s: its rows hold %d values, not a whole number of %d-value "
                              "blocks; hint: NF4 takes any shape", m->lin[i].name, lorac_qformat_name(fmt), m->lin[i].in, bs);
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        if (!lorac_is_block_linear(m, L) || L->q) continue;
        if (L->W->grad)
            return lorac_fail(LORAC_ERR_ARG, "'%s' is trainable and cannot be quantized; hint: quantize the base before "
                              "making anything trainable", L->W->name);
        if (L->lora && L->lora->merged)
            return lorac_fail(LORAC_ERR_ARG, "'%s' holds a merged adapter; hint: unmerge before quantizing", L->name);
    }
    for (int i = 0; i < m->n_lin; i++) {
        lorac_linear *L = &m->lin[i];
        if (lorac_is_block_linear(m, L) && !L->q) LORAC_TRY(lorac_linear_quantize(L, fmt));
    }
    return LORAC_OK;
}

lorac_status lorac_linear_dequantize(lorac_linear *L) {
    if (!L->q) return LORAC_OK;
    if (L->q_shared)
        return lorac_fail(LORAC_ERR_ARG, "'%s' is tied to the quantized token embedding; hint: "
                          "lorac_model_dequantize_embedding", L->name);
    const size_t n = (size_t)L->in * L->out;
    float *buf;
    LORAC_TRY(lorac_alloc((void **)&buf, n, sizeof(float), L->W->name));
    lorac_status st = lorac_qweight_dequantize(L->q, buf);
    if (st != LORAC_OK) {
        free(buf);
        lorac_error_prefix("dequantizing '%s'", L->W->name);
        return st;
    }
    if (L->w_in_out) { /* [out, in] -> Conv1D's [in, out] */
        float *tr;
        st = lorac_alloc((void **)&tr, n, sizeof(float), L->W->name);
        if (st != LORAC_OK) {
            free(buf);
            return st;
        }
        for (int o = 0; o < L->out; o++)
            for (int i = 0; i < L->in; i++) tr[(size_t)i * L->out + o] = buf[(size_t)o * L->in + i];
        free(buf);
        buf = tr;
    }
    take_fp32(L->W, &L->q, buf);
    return LORAC_OK;
}

void lorac_model_qstats(const lorac_model *m, lorac_qstats *s) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < m->n_w; i++) s->base_params += (int64_t)m->w[i].n;
    int64_t fp32 = s->base_params;
    if (m->wte) {
        s->emb_params = (int64_t)m->wte->n;
        s->embed_fmt = m->wte_q ? m->wte_q->fmt : LORAC_QF_NONE;
        s->emb_bytes = m->wte_q ? (double)lorac_qweight_nbytes(m->wte_q) : 4.0 * (double)m->wte->n;
        fp32 -= (int64_t)m->wte->n;
    }
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        if (!L->q || L->q_shared) continue;
        s->n_linears++;
        s->n_fmt[L->q->fmt]++;
        s->q_params += (int64_t)L->W->n;
        s->q_bytes += (double)lorac_qweight_nbytes(L->q);
        fp32 -= (int64_t)L->W->n;
    }
    s->base_bytes = s->q_bytes + s->emb_bytes + 4.0 * (double)fp32;
}

/* ---- bitsandbytes 4-bit checkpoints ---------------------------------------
 * transformers' save_pretrained of a load_in_4bit model stores each quantized
 * Linear's weight "X.weight" as packed U8 codes beside "X.weight.absmax",
 * ".nested_absmax", ".quant_map", ".nested_quant_map" and
 * ".quant_state.bitsandbytes__nf4" (JSON bytes: quant_type, blocksize, dtype,
 * shape, nested_blocksize, nested_dtype, nested_offset). With double
 * quantization that is exactly lorac's NF4 (quant/nf4.h): read as it is. */

static const lorac_tensor_desc *bnb_part(const lorac_model *m, const char *w, const char *suffix, lorac_dtype dt,
                                         int64_t numel, lorac_status *st) {
    char name[256];
    snprintf(name, sizeof name, "%s%s", w, suffix);
    const lorac_tensor_desc *t = lorac_st_find(m->st, name);
    if (*st != LORAC_OK) return t;
    if (!t)
        *st = lorac_fail(LORAC_ERR_FORMAT, "%s: bitsandbytes weight '%s' has no '%s'; hint: an incomplete 4-bit checkpoint?",
                         m->path, w, name);
    else if (t->dtype != dt || (numel >= 0 && t->numel != numel))
        *st = lorac_fail(LORAC_ERR_SHAPE, "%s: '%s' is %s with %lld values, expected %s with %lld; hint: a corrupt 4-bit "
                         "checkpoint?", lorac_st_path_of(m->st, t), name, lorac_dtype_name(t->dtype), (long long)t->numel,
                         lorac_dtype_name(dt), (long long)numel);
    return t;
}

static int json_int_is(const cJSON *j, const char *key, double want) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) && v->valuedouble == want;
}

/* L's weight as stored by bitsandbytes: *out = that NF4 [out, in] (owning),
 * or NULL when the checkpoint stores it otherwise. */
static lorac_status bnb_nf4_read(const lorac_model *m, const lorac_linear *L, lorac_qweight **out) {
    const lorac_weight *w = L->W;
    *out = NULL;
    if (!m->st) return LORAC_OK;
    char name[256];
    snprintf(name, sizeof name, "%s.quant_state.bitsandbytes__fp4", w->name);
    if (lorac_st_find(m->st, name))
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: '%s' is bitsandbytes FP4; lorac reads NF4 4-bit checkpoints only", m->path,
                          w->name);
    snprintf(name, sizeof name, "%s.quant_state.bitsandbytes__nf4", w->name);
    const lorac_tensor_desc *js = lorac_st_find(m->st, name);
    if (!js) return LORAC_OK;
    const char *file = lorac_st_path_of(m->st, js);
    if (js->dtype != LORAC_U8)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: '%s' is %s, not U8 JSON bytes", file, name, lorac_dtype_name(js->dtype));
    cJSON *j = cJSON_ParseWithLength(js->data, js->nbytes);
    const cJSON *qt = cJSON_GetObjectItemCaseSensitive(j, "quant_type"), *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "nested_offset");
    lorac_status st = LORAC_OK;
    int64_t rows = 0, cols = 0;
    if (!cJSON_IsObject(j) || !cJSON_IsString(qt) || strcmp(qt->valuestring, "nf4") || !cJSON_IsArray(shape) ||
        cJSON_GetArraySize(shape) != 2)
        st = lorac_fail(LORAC_ERR_FORMAT, "%s: '%s' is no NF4 quant state (quant_type, shape); hint: a corrupt 4-bit checkpoint?",
                        file, name);
    else if (!json_int_is(j, "blocksize", LORAC_NF4_BLOCK) || !cJSON_IsNumber(off) ||
             !json_int_is(j, "nested_blocksize", LORAC_NF4_BLOCK2))
        st = lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: '%s': lorac reads NF4 with blocksize 64 and double quantization "
                        "(bnb_4bit_use_double_quant=True, nested blocks of 256) only", file, w->name);
    if (st == LORAC_OK) {
        rows = (int64_t)cJSON_GetArrayItem(shape, 0)->valuedouble;
        cols = (int64_t)cJSON_GetArrayItem(shape, 1)->valuedouble;
        if (rows != L->out || cols != L->in) /* [out, in], a Conv1D's too */
            st = lorac_fail(LORAC_ERR_SHAPE, "%s: '%s' holds a [%lld,%lld] NF4 matrix, config expects [out,in] = [%d,%d]; hint: "
                            "wrong config.json?", file, w->name, (long long)rows, (long long)cols, L->out, L->in);
    }
    const double offset = st == LORAC_OK ? off->valuedouble : 0;
    cJSON_Delete(j);
    LORAC_TRY(st);
    const int64_t numel = rows * cols, nb = (numel + LORAC_NF4_BLOCK - 1) / LORAC_NF4_BLOCK,
                  nb2 = (nb + LORAC_NF4_BLOCK2 - 1) / LORAC_NF4_BLOCK2;
    const lorac_tensor_desc *codes = bnb_part(m, w->name, "", LORAC_U8, (numel + 1) / 2, &st);
    const lorac_tensor_desc *qa = bnb_part(m, w->name, ".absmax", LORAC_U8, nb, &st);
    const lorac_tensor_desc *a2 = bnb_part(m, w->name, ".nested_absmax", LORAC_F32, nb2, &st);
    const lorac_tensor_desc *map = bnb_part(m, w->name, ".quant_map", LORAC_F32, 16, &st);
    const lorac_tensor_desc *map2 = bnb_part(m, w->name, ".nested_quant_map", LORAC_F32, 256, &st);
    LORAC_TRY(st);
    if (memcmp(map->data, lorac_nf4_code, sizeof lorac_nf4_code) || memcmp(map2->data, lorac_dynamic_map, sizeof lorac_dynamic_map))
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: '%s' uses another code table than bitsandbytes' NF4 and signed dynamic "
                          "map", file, w->name);
    lorac_nf4 q = {rows, cols, numel, nb, nb2, NULL, NULL, NULL, (float)offset};
    st = lorac_alloc((void **)&q.codes, (size_t)(numel + 1) / 2, 1, w->name);
    if (st == LORAC_OK) st = lorac_alloc((void **)&q.qabsmax, (size_t)nb, 1, w->name);
    if (st == LORAC_OK) st = lorac_alloc((void **)&q.absmax2, (size_t)nb2, sizeof(float), w->name);
    if (st == LORAC_OK) {
        memcpy(q.codes, codes->data, (size_t)(numel + 1) / 2);
        memcpy(q.qabsmax, qa->data, (size_t)nb);
        memcpy(q.absmax2, a2->data, sizeof(float) * (size_t)nb2);
        for (int64_t b = 0; b < nb2 && st == LORAC_OK; b++)
            if (!isfinite(q.absmax2[b])) st = lorac_fail(LORAC_ERR_NUMERIC, "%s: '%s.nested_absmax' holds %g", file, w->name, (double)q.absmax2[b]);
    }
    lorac_qweight *qw = NULL;
    if (st == LORAC_OK) st = lorac_alloc((void **)&qw, 1, sizeof *qw, "quantized weight");
    if (st == LORAC_OK) st = lorac_qweight_from_nf4(qw, &q);
    if (st != LORAC_OK) {
        lorac_nf4_free(&q);
        free(qw);
        return st;
    }
    *out = qw;
    return LORAC_OK;
}

lorac_status lorac_bnb_nf4_bind(lorac_model *m, lorac_linear *L, int keep_nf4, int *bound) {
    lorac_qweight *q = NULL;
    *bound = 0;
    LORAC_TRY(bnb_nf4_read(m, L, &q));
    if (!q) return LORAC_OK;
    attach_q(L, q);
    *bound = 1;
    return keep_nf4 ? LORAC_OK : lorac_linear_dequantize(L);
}
