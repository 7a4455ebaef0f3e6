/* merge.c - LoRA merge / unmerge and writing a merged checkpoint.
 *
 *   merge:    W[o, i] += s * sum_k B[o, k] A[p*r + k, i]    p = o / (out/parts)
 *   unmerge:  W[o, i] -= the same delta
 *
 * (Conv1D, w_in_out = 1, stores W[i, o]: the same delta lands transposed.)
 * The delta is summed in double, so unmerge gives back W to within one float
 * rounding of each element.
 *
 * DoRA (PEFT's DoraLinearVariant.merge / unmerge): with n[o] = ||W + s B A||_o
 * of the unmerged W (kept for unmerge, as PEFT caches it),
 *   merge:    W'[o, :] = (m[o] / n[o]) (W[o, :] + s (B A)[o, :])
 *   unmerge:  W[o, :]  = W'[o, :] / (m[o] / n[o]) - s (B A)[o, :]
 *
 * A quantized base (QLoRA): merging first dequantizes each adapted Linear's
 * weight into fp32 (lorac_linear_dequantize; it stays fp32, unmerge leaves
 * the dequantized values), as PEFT merges into a bitsandbytes 4-bit layer's
 * dequantized weight; lorac_model_save_merged dequantizes every Linear still
 * quantized, so the checkpoint written is plain fp32. */
#include "lora/merge.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/safetensors.h"
#include "lora/dora.h"
#include "models/model_internal.h"

double lorac_lora_ba(const lorac_linear *L, int o, int i) {
    const lorac_lora *l = L->lora;
    const int r = l->r, p = o / (L->out / l->parts);
    const float *Bo = l->B.data + (size_t)o * r;              /* row o of B      [r]  */
    const float *Ap = l->A.data + (size_t)p * r * L->in;      /* block p of A    [r, in] */
    double d = 0;
    for (int k = 0; k < r; k++) d += (double)Bo[k] * Ap[(size_t)k * L->in + i];
    return d;
}

/* Merge (sign +1): W' = f (W + s B A), f[o] = 1 for LoRA, m[o] / ||W + s B A||_o
 * for DoRA (that norm kept in mnorm); unmerge (sign -1): W = W' / f - s B A. */
static void add_delta(lorac_linear *L, double sign) {
    const lorac_lora *l = L->lora;
    const double s = (double)l->scale;
    float *W = L->W->data;
    for (int o = 0; o < L->out; o++) {
        const double f = l->dora ? (double)l->M.data[o] / l->mnorm[o] : 1.0;
        for (int i = 0; i < L->in; i++) {
            float *w = L->w_in_out ? &W[(size_t)i * L->out + o] : &W[(size_t)o * L->in + i];
            const double d = s * lorac_lora_ba(L, o, i);
            *w = (float)(sign > 0 ? f * ((double)*w + d) : (double)*w / f - d);
        }
    }
}

/* The embedding's pair: E[t, c] += sign * s * sum_k B[c, k] A[k, t]. */
static void embed_delta(lorac_model *m, double sign) {
    const lorac_lora *l = m->wte_lora;
    const int V = m->cfg.vocab, C = m->cfg.dim;
    for (int t = 0; t < V; t++)
        for (int c = 0; c < C; c++) {
            double d = 0;
            for (int k = 0; k < l->r; k++) d += (double)l->B.data[(size_t)c * l->r + k] * l->A.data[(size_t)k * V + t];
            float *e = &m->wte->data[(size_t)t * C + c];
            *e = (float)((double)*e + sign * l->scale * d);
        }
}

lorac_status lorac_lora_merge(lorac_model *m) {
    if (m->wte_lora && !m->wte_lora->merged) {
        if (m->cfg.tied)
            return lorac_fail(LORAC_ERR_UNSUPPORTED, "cannot merge the LoRA on the embedding '%s': it is tied to lm_head, "
                              "which would change too (the unmerged head uses the plain embedding); hint: keep the "
                              "adapter separate", m->wte->name);
        LORAC_TRY(lorac_model_dequantize_embedding(m));
        LORAC_TRY(lorac_weight_make_owned(m->wte));
    }
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        if (L->lora && !L->lora->merged && L == m->lm_head && m->cfg.tied)
            return lorac_fail(LORAC_ERR_UNSUPPORTED,
                              "cannot merge the adapter on lm_head: its weight is tied to the token embedding; "
                              "hint: keep the adapter separate (lorac generate --adapter)");
    }
    for (int i = 0; i < m->n_lin; i++) {
        if (!m->lin[i].lora || m->lin[i].lora->merged) continue;
        LORAC_TRY(lorac_linear_dequantize(&m->lin[i]));
        LORAC_TRY(lorac_weight_make_owned(m->lin[i].W));
        if (m->lin[i].lora->dora) /* of the unmerged W */ LORAC_TRY(lorac_dora_row_norms(&m->lin[i], m->lin[i].lora, m->lin[i].lora->mnorm));
    }
    for (int i = 0; i < m->n_lin; i++) {
        lorac_linear *L = &m->lin[i];
        if (!L->lora || L->lora->merged) continue;
        add_delta(L, +1.0);
        L->lora->merged = 1;
    }
    if (m->wte_lora && !m->wte_lora->merged) {
        embed_delta(m, +1.0);
        m->wte_lora->merged = 1;
    }
    return LORAC_OK;
}

void lorac_lora_unmerge(lorac_model *m) {
    if (m->wte_lora && m->wte_lora->merged) {
        embed_delta(m, -1.0);
        m->wte_lora->merged = 0;
    }
    for (int i = 0; i < m->n_lin; i++) {
        lorac_linear *L = &m->lin[i];
        if (!L->lora || !L->lora->merged) continue;
        add_delta(L, -1.0);
        L->lora->merged = 0;
    }
}

/* ---- writing the merged checkpoint ---------------------------------------- */

static lorac_status write_json(const char *path, cJSON *j) {
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    if (!txt) return lorac_fail(LORAC_ERR_NOMEM, "out of memory writing %s", path);
    lorac_status st = lorac_write_atomic(path, txt, strlen(txt));
    free(txt);
    return st;
}

/* Whether write_config can describe m: checked before any file is written,
 * so a refusal leaves --out as it was. */
static lorac_status config_writable(const lorac_model *m) {
    char src[1200];
    lorac_path_join(src, sizeof src, m->path, "config.json");
    if (!m->gguf && lorac_file_exists(src)) return LORAC_OK;
    cJSON *j = NULL;
    LORAC_TRY(lorac_config_to_hf_json(&m->cfg, &j));
    cJSON_Delete(j);
    return LORAC_OK;
}

/* config.json: the base directory's own (torch_dtype set to the float32 we
 * write), else one generated from the config; with a quantization_config
 * when qc != NULL (taken over). */
static lorac_status write_config(const lorac_model *m, const char *out_dir, cJSON *qc) {
    char src[1200], dst[1200];
    lorac_path_join(dst, sizeof dst, out_dir, "config.json");
    lorac_path_join(src, sizeof src, m->path, "config.json");
    cJSON *j = NULL;
    if (!m->gguf && lorac_file_exists(src)) {
        char *txt;
        LORAC_TRY(lorac_read_file(src, 1u << 24, &txt, NULL));
        j = cJSON_Parse(txt);
        free(txt);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            return lorac_fail(LORAC_ERR_FORMAT, "%s: not a JSON object", src);
        }
        cJSON_DeleteItemFromObjectCaseSensitive(j, "torch_dtype");
        cJSON_AddStringToObject(j, "torch_dtype", "float32");
    } else {
        LORAC_TRY(lorac_config_to_hf_json(&m->cfg, &j));
    }
    if (j && m->head && m->cfg.arch != LORAC_ARCH_BERT) { /* a decoder with its classification head: *ForSequenceClassification */
        cJSON *arch = cJSON_CreateArray();
        cJSON_AddItemToArray(arch, cJSON_CreateString(m->cfg.arch == LORAC_ARCH_GPT2 ? "GPT2ForSequenceClassification"
                                                                                     : "LlamaForSequenceClassification"));
        cJSON_DeleteItemFromObjectCaseSensitive(j, "architectures");
        cJSON_AddItemToObject(j, "architectures", arch);
        cJSON *id2label = cJSON_CreateObject(), *label2id = cJSON_CreateObject();
        for (int k = 0; k < m->n_classes; k++) {
            char key[16], val[24];
            snprintf(key, sizeof key, "%d", k);
            snprintf(val, sizeof val, "LABEL_%d", k);
            cJSON_AddStringToObject(id2label, key, val);
            cJSON_AddNumberToObject(label2id, val, k);
        }
        cJSON_DeleteItemFromObjectCaseSensitive(j, "id2label");
        cJSON_DeleteItemFromObjectCaseSensitive(j, "label2id");
        cJSON_AddItemToObject(j, "id2label", id2label);
        cJSON_AddItemToObject(j, "label2id", label2id);
    }
    if (j && qc) {
        cJSON_DeleteItemFromObjectCaseSensitive(j, "quantization_config");
        cJSON_AddItemToObject(j, "quantization_config", qc);
    } else {
        cJSON_Delete(qc);
    }
    if (!j) return lorac_fail(LORAC_ERR_NOMEM, "out of memory building config.json");
    return write_json(dst, j);
}

static lorac_status write_weights(const lorac_model *m, const char *out_dir) {
    lorac_st_entry *e;
    LORAC_TRY(lorac_alloc((void **)&e, (size_t)m->n_w, sizeof *e, "checkpoint entries"));
    for (int i = 0; i < m->n_w; i++) { /* a tied lm_head is no entry of m->w: written once, as wte */
        const lorac_weight *w = &m->w[i];
        e[i].name = w->name;
        e[i].data = w->data;
        e[i].ndim = w->ndim;
        e[i].shape[0] = w->shape[0];
        e[i].shape[1] = w->shape[1];
        e[i].dtype = LORAC_F32;
    }
    char path[1200];
    const char *md[] = {"format", "pt", "created_by", "lorac " LORAC_VERSION, NULL};
    lorac_status st = lorac_st_write(lorac_path_join(path, sizeof path, out_dir, "model.safetensors"), e, m->n_w, md);
    free(e);
    return st;
}

static lorac_status copy_tokenizer(const char *src_dir, const char *out_dir) {
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "vocab.json",
                                        "merges.txt",     "tokenizer.model",       "special_tokens_map.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char src[1200], dst[1200], *buf;
        size_t len;
        lorac_path_join(src, sizeof src, src_dir, files[i]);
        if (!lorac_file_exists(src)) continue;
        LORAC_TRY(lorac_read_file(src, (size_t)1 << 30, &buf, &len));
        lorac_status st = lorac_write_atomic(lorac_path_join(dst, sizeof dst, out_dir, files[i]), buf, len);
        free(buf);
        LORAC_TRY(st);
    }
    return LORAC_OK;
}

/* The tokenizer files beside the weights (none for a random model; a GGUF
 * base keeps its tokenizer inside the .gguf unless tokenizer_src says). */
static lorac_status finish_checkpoint(const lorac_model *m, const char *out_dir, const char *tokenizer_src) {
    if (!tokenizer_src && !m->gguf && !m->st) return LORAC_OK;
    if (!tokenizer_src && m->gguf) return LORAC_OK;
    return copy_tokenizer(tokenizer_src ? tokenizer_src : m->path, out_dir);
}

lorac_status lorac_model_save_merged(lorac_model *m, const char *out_dir, const char *tokenizer_src) {
    LORAC_TRY(config_writable(m));
    LORAC_TRY(lorac_model_dequantize_embedding(m));
    for (int i = 0; i < m->n_lin; i++) LORAC_TRY(lorac_linear_dequantize(&m->lin[i]));
    LORAC_TRY(lorac_mkdirs(out_dir));
    LORAC_TRY(write_weights(m, out_dir));
    LORAC_TRY(write_config(m, out_dir, NULL));
    return finish_checkpoint(m, out_dir, tokenizer_src);
}

/* ---- bitsandbytes' 4-bit serialization ------------------------------------ */

/* The six tensors of one NF4 Linear, and what they point at. */
typedef struct nf4_linear {
    const lorac_nf4 *q;
    char json[320];
    char names[6][192];
    int64_t words;          /* bytes of codes */
} nf4_linear;

static lorac_status nf4_of(lorac_linear *L, const lorac_requant *rq, nf4_linear *x) {
    for (int k = 0; k < rq->n; k++)
        if (rq->e[k].nf4 && rq->e[k].L == L) x->q = &rq->e[k].q.nf4;
    if (!x->q && (!L->q || L->q->fmt != LORAC_QF_NF4)) { /* fp32 (or another format, through fp32) -> NF4 */
        LORAC_TRY(lorac_linear_dequantize(L));
        LORAC_TRY(lorac_linear_quantize(L, LORAC_QF_NF4));
    }
    if (!x->q) x->q = &L->q->nf4;
    snprintf(x->json, sizeof x->json,
             "{\"quant_type\": \"nf4\", \"blocksize\": %d, \"dtype\": \"float32\", \"shape\": [%d, %d], "
             "\"nested_blocksize\": %d, \"nested_dtype\": \"float32\", \"nested_offset\": %.17g}",
             LORAC_NF4_BLOCK, L->out, L->in, LORAC_NF4_BLOCK2, (double)x->q->offset);
    static const char *const suffix[6] = {"", ".absmax", ".nested_absmax", ".quant_map", ".nested_quant_map",
                                          ".quant_state.bitsandbytes__nf4"};
    for (int k = 0; k < 6; k++) snprintf(x->names[k], sizeof x->names[k], "%s%s", L->W->name, suffix[k]);
    x->words = (x->q->numel + 1) / 2;
    return LORAC_OK;
}

static lorac_st_entry st_u8(const char *name, const void *bytes, int64_t n, int two_d) {
    lorac_st_entry e = {name, NULL, two_d ? 2 : 1, {n, 1}, LORAC_U8, bytes};
    return e;
}

static lorac_st_entry st_f32(const char *name, const float *data, int64_t n) {
    lorac_st_entry e = {name, data, 1, {n}, LORAC_F32, NULL};
    return e;
}

lorac_status lorac_model_save_merged_nf4(lorac_model *m, const lorac_requant *rq, const char *out_dir,
                                         const char *tokenizer_src) {
    LORAC_TRY(config_writable(m));
    LORAC_TRY(lorac_model_dequantize_embedding(m));
    for (int i = 0; i < m->n_lin; i++) /* heads: fp32 */
        if (!lorac_is_block_linear(m, &m->lin[i])) LORAC_TRY(lorac_linear_dequantize(&m->lin[i]));
    nf4_linear *x;
    lorac_st_entry *e;
    LORAC_TRY(lorac_alloc((void **)&x, (size_t)m->n_lin, sizeof *x, "NF4 checkpoint"));
    lorac_status st = lorac_alloc((void **)&e, (size_t)m->n_w + 5 * (size_t)m->n_lin, sizeof *e, "checkpoint entries");
    int n = 0;
    for (int i = 0; i < m->n_w && st == LORAC_OK; i++) {
        const lorac_weight *w = &m->w[i];
        lorac_linear *L = lorac_linear_of_weight(m, w);
        const int li = L && lorac_is_block_linear(m, L) ? (int)(L - m->lin) : -1;
        if (li < 0) {
            e[n++] = (lorac_st_entry){w->name, w->data, w->ndim, {w->shape[0], w->shape[1]}, LORAC_F32, NULL};
            continue;
        }
        nf4_linear *q = &x[li];
        st = nf4_of(&m->lin[li], rq, q);
        if (st != LORAC_OK) break;
        e[n++] = st_u8(q->names[0], q->q->codes, q->words, 1);
        e[n++] = st_u8(q->names[1], q->q->qabsmax, q->q->nblocks, 0);
        e[n++] = st_f32(q->names[2], q->q->absmax2, q->q->nblocks2);
        e[n++] = st_f32(q->names[3], lorac_nf4_code, 16);
        e[n++] = st_f32(q->names[4], lorac_dynamic_map, 256);
        e[n++] = st_u8(q->names[5], q->json, (int64_t)strlen(q->json), 0);
    }
    if (st == LORAC_OK) st = lorac_mkdirs(out_dir);
    if (st == LORAC_OK) {
        char path[1200];
        const char *md[] = {"format", "pt", "created_by", "lorac " LORAC_VERSION, NULL};
        st = lorac_st_write(lorac_path_join(path, sizeof path, out_dir, "model.safetensors"), e, n, md);
    }
    free(x);
    free(e);
    LORAC_TRY(st);
    cJSON *qc = cJSON_CreateObject();
    if (qc) {
        cJSON_AddStringToObject(qc, "quant_method", "bitsandbytes");
        cJSON_AddBoolToObject(qc, "load_in_4bit", 1);
        cJSON_AddBoolToObject(qc, "load_in_8bit", 0);
        cJSON_AddBoolToObject(qc, "_load_in_4bit", 1);
        cJSON_AddBoolToObject(qc, "_load_in_8bit", 0);
        cJSON_AddStringToObject(qc, "bnb_4bit_quant_type", "nf4");
        cJSON_AddBoolToObject(qc, "bnb_4bit_use_double_quant", 1);
        cJSON_AddStringToObject(qc, "bnb_4bit_compute_dtype", "float32");
        cJSON_AddStringToObject(qc, "bnb_4bit_quant_storage", "uint8");
        cJSON_AddBoolToObject(qc, "llm_int8_enable_fp32_cpu_offload", 0);
        cJSON_AddBoolToObject(qc, "llm_int8_has_fp16_weight", 0);
        cJSON_AddNullToObject(qc, "llm_int8_skip_modules");
        cJSON_AddRawToObject(qc, "llm_int8_threshold", "6.0"); /* a float to Python (cJSON prints 6.0 as 6) */
    }
    LORAC_TRY(write_config(m, out_dir, qc));
    return finish_checkpoint(m, out_dir, tokenizer_src);
}
