/* merge_quant.c - merging into a quantized base: the error it costs, and a
 * re-quantized GGUF.
 *
 * Merging an adapter into a quantized base W_q can go two ways:
 *   fp32:        W' = deq(W_q) + s B A, kept in fp32 (lorac_lora_merge +
 *                lorac_model_save_merged): exact up to one float rounding;
 *   requantized: W'' = deq(quant(W')) in the base's own format: as small as
 *                the base, but quant() rounds every weight to its grid again,
 *                and an adapter delta smaller than half a grid step mostly
 *                rounds away.
 * lorac_merge_requantize measures the second against W' for every adapted
 * Linear: RMS and max error, the RMS of W' and of the delta s B A, and how
 * much of the delta survives: kept = <W'' - deq(W_q), D> / <D, D> (1 =
 * all of it, 0 = rounded away), where deq(W_q) = W' - D. It also holds the
 * re-quantized bytes, in the GGUF file's row order, for lorac_gguf_write_requantized. */
#include "lora/merge.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "models/model_internal.h"
#include "quant/ggml_blocks.h"

/* The file format a merged weight goes back to: its GGUF tensor's dtype. */
static lorac_status target_tensor(const lorac_model *m, const lorac_linear *L, const lorac_tensor_desc **t) {
    char gn[160];
    *t = NULL;
    if (!m->gguf)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: re-quantizing a merged model needs a GGUF base (its tensors say which "
                          "format each weight goes back to); hint: merge without --requantize for a fp32 checkpoint", m->path);
    if (!lorac_gguf_tensor_name(&m->cfg, L->W->name, gn, sizeof gn) || !(*t = lorac_gguf_find_tensor(m->gguf, gn)))
        return LORAC_OK; /* a module the file does not have (a classification head): the caller skips it */
    const lorac_dtype d = (*t)->dtype;
    if (!lorac_is_block_type(d) && d != LORAC_F32 && d != LORAC_F16)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: tensor '%s' is %s: lorac writes F32, F16 and the GGML block formats "
                          "Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL IQ4_XS; hint: merge without "
                          "--requantize", m->path, gn, lorac_dtype_name(d));
    if ((*t)->ndim != 2 || (*t)->shape[0] != L->out || (*t)->shape[1] != L->in)
        return lorac_fail(LORAC_ERR_SHAPE, "%s: tensor '%s' is not [%d, %d]", m->path, gn, L->out, L->in);
    return LORAC_OK;
}

/* n values of type d (F32, F16 or a block type) from x; block types with
 * stochastic rounding when rng != NULL. */
static lorac_status encode_row(lorac_dtype d, const float *x, uint8_t *dst, int64_t n, lorac_rng *rng) {
    if (d == LORAC_F32) {
        memcpy(dst, x, sizeof(float) * (size_t)n);
        return LORAC_OK;
    }
    if (d == LORAC_F16) {
        for (int64_t i = 0; i < n; i++) {
            const uint16_t h = lorac_f32_to_f16(x[i]);
            dst[2 * i] = (uint8_t)(h & 0xFF);
            dst[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return LORAC_OK;
    }
    return lorac_quant_row_rng(d, x, dst, n, rng);
}

static lorac_status decode_row(lorac_dtype d, const uint8_t *src, float *y, int64_t n) {
    if (d == LORAC_F32) {
        memcpy(y, src, sizeof(float) * (size_t)n);
        return LORAC_OK;
    }
    if (d == LORAC_F16) {
        for (int64_t i = 0; i < n; i++) y[i] = lorac_f16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
        return LORAC_OK;
    }
    return lorac_dequant_row(d, src, y, n);
}

/* GGUF row of HF row r: llama.cpp stores Llama's q/k rows interleaved per
 * head (HF row h*D + s*D/2 + j is GGUF row h*D + 2j + s). */
static int gguf_row(const lorac_model *m, const lorac_linear *L, int r) {
    if (!lorac_gguf_rope_heads(m, L->W->name)) return r;
    const int D = m->cfg.head_dim, h = r / D, s = (r % D) / (D / 2), j = r % (D / 2);
    return h * D + 2 * j + s;
}

/* One adapted Linear: its merged fp32 W' (HF layout) re-quantized, to NF4
 * (to_nf4) or to its GGUF tensor's format (skipped, e->L == NULL, when the
 * file has no such tensor). */
static lorac_status requant_one(const lorac_model *m, const lorac_linear *L, int to_nf4, int stochastic,
                                lorac_requant_entry *e) {
    lorac_rng rng; /* seeded by the weight's name: the same file every run */
    uint64_t h = 1469598103934665603ull;
    for (const char *c = L->W->name; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ull;
    lorac_rng_seed(&rng, h);
    lorac_rng *r = stochastic ? &rng : NULL;
    const lorac_tensor_desc *t = NULL;
    if (!to_nf4) {
        LORAC_TRY(target_tensor(m, L, &t));
        if (!t) return LORAC_OK;
    }
    const int out = L->out, in = L->in;
    const size_t row_bytes = t ? t->nbytes / (size_t)out : 0;
    float *w = NULL, *y = NULL;
    double *dd = NULL;
    lorac_status st = lorac_alloc((void **)&w, (size_t)in * out, sizeof *w, L->W->name); /* W' as [out, in] */
    if (st == LORAC_OK) st = lorac_alloc((void **)&y, (size_t)in, sizeof *y, "merge row");
    if (st == LORAC_OK) st = lorac_alloc((void **)&dd, (size_t)in, sizeof *dd, "merge row");
    for (int o = 0; o < out && st == LORAC_OK; o++)
        for (int i = 0; i < in; i++) w[(size_t)o * in + i] = L->W->data[L->w_in_out ? (size_t)i * out + o : (size_t)o * in + i];
    e->L = L;
    if (t) {
        e->dtype = t->dtype;
        e->file_offset = lorac_gguf_tensor_file_offset(m->gguf, t);
        e->nbytes = t->nbytes;
        snprintf(e->tensor, sizeof e->tensor, "%s", t->name);
        if (st == LORAC_OK) st = lorac_alloc((void **)&e->bytes, t->nbytes, 1, t->name);
        for (int o = 0; o < out && st == LORAC_OK; o++)
            st = encode_row(t->dtype, w + (size_t)o * in, (uint8_t *)e->bytes + (size_t)gguf_row(m, L, o) * row_bytes, in, r);
    } else {
        e->nf4 = 1;
        snprintf(e->tensor, sizeof e->tensor, "%.63s", L->W->name);
        lorac_nf4 q4;
        if (st == LORAC_OK) st = lorac_nf4_quantize_rng(w, out, in, r, &q4);
        if (st == LORAC_OK) st = lorac_qweight_from_nf4(&e->q, &q4);
    }
    double sw = 0, sd = 0, se = 0, num = 0, mx = 0;
    const double s = L->lora->scale;
    for (int o = 0; o < out && st == LORAC_OK; o++) {
        const float *wo = w + (size_t)o * in;
        /* the delta row, as merging formed it: s B A, or for DoRA W' - W with W = W' / f - s B A */
        const double f = L->lora->dora ? (double)L->lora->M.data[o] / L->lora->mnorm[o] : 1.0;
        for (int i = 0; i < in; i++) {
            const double d = s * lorac_lora_ba(L, o, i);
            dd[i] = L->lora->dora ? (double)wo[i] - ((double)wo[i] / f - d) : d;
        }
        st = t ? decode_row(t->dtype, (const uint8_t *)e->bytes + (size_t)gguf_row(m, L, o) * row_bytes, y, in)
               : lorac_qweight_dequant_row(&e->q, o, y);
        for (int i = 0; i < in && st == LORAC_OK; i++) {
            const double err = (double)y[i] - wo[i], base = (double)wo[i] - dd[i];
            sw += (double)wo[i] * wo[i];
            sd += dd[i] * dd[i];
            se += err * err;
            num += ((double)y[i] - base) * dd[i];
            mx = fmax(mx, fabs(err));
        }
    }
    free(w);
    free(y);
    free(dd);
    if (st != LORAC_OK) {
        lorac_error_prefix("re-quantizing '%s' to %s", L->W->name, t ? lorac_dtype_name(t->dtype) : "NF4");
        return st;
    }
    const double n = (double)out * in;
    e->rms_w = sqrt(sw / n);
    e->rms_delta = sqrt(sd / n);
    e->rms_err = sqrt(se / n);
    e->max_err = mx;
    e->kept = sd > 0 ? num / sd : 1.0;
    e->sum_delta2 = sd;
    e->sum_err2 = se;
    e->sum_w2 = sw;
    e->sum_kept = num;
    return LORAC_OK;
}

void lorac_requant_free(lorac_requant *rq) {
    for (int i = 0; rq->e && i <= rq->n; i++) { /* [n]: one that failed or was skipped */
        free(rq->e[i].bytes);
        lorac_qweight_free(&rq->e[i].q);
    }
    free(rq->e);
    memset(rq, 0, sizeof *rq);
}

lorac_status lorac_merge_requantize(const lorac_model *m, int to_nf4, int stochastic, lorac_requant *rq) {
    if (!to_nf4 && !m->gguf)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: re-quantizing to the base's own formats needs a GGUF base (its tensors "
                          "say which format each weight goes back to); hint: NF4 (bitsandbytes) is the other choice", m->path);
    memset(rq, 0, sizeof *rq);
    int n = 0;
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        if (!L->lora || (to_nf4 && !lorac_is_block_linear(m, L))) continue;
        if (!L->lora->merged || L->q || !L->W->data)
            return lorac_fail(LORAC_ERR_ARG, "lorac_merge_requantize: '%s' is not merged in fp32; hint: lorac_lora_merge first",
                              L->name);
        n++;
    }
    if (!n) return lorac_fail(LORAC_ERR_ARG, "lorac_merge_requantize: no adapter on a Linear of the blocks to re-quantize");
    LORAC_TRY(lorac_alloc((void **)&rq->e, (size_t)n + 1, sizeof *rq->e, "re-quantized weights")); /* zeroed; +1 for the free below */
    double sw = 0, sd = 0, se = 0, num = 0, n_el = 0;
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        if (!L->lora) continue;
        lorac_requant_entry *e = &rq->e[rq->n];
        lorac_status st = to_nf4 && !lorac_is_block_linear(m, L) ? LORAC_OK : requant_one(m, L, to_nf4, stochastic, e);
        if (st != LORAC_OK) {
            lorac_requant_free(rq);
            return st;
        }
        if (!e->L) { /* not in the file, or no block Linear (NF4 covers those, as bitsandbytes does) */
            if (!rq->n_skipped++) snprintf(rq->skipped, sizeof rq->skipped, "%s", L->name);
            continue;
        }
        rq->n++;
        sw += e->sum_w2;
        sd += e->sum_delta2;
        se += e->sum_err2;
        num += e->sum_kept;
        n_el += (double)L->in * L->out;
        rq->max_err = fmax(rq->max_err, e->max_err);
    }
    if (!rq->n) {
        lorac_requant_free(rq);
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: none of the adapted modules is a tensor of the GGUF file", m->path);
    }
    rq->rms_w = sqrt(sw / n_el);
    rq->rms_delta = sqrt(sd / n_el);
    rq->rms_err = sqrt(se / n_el);
    rq->kept = sd > 0 ? num / sd : 1.0;
    return LORAC_OK;
}

lorac_status lorac_requant_apply(lorac_model *m, const lorac_requant *rq) {
    for (int k = 0; k < rq->n; k++) {
        const lorac_requant_entry *e = &rq->e[k];
        lorac_linear *L = lorac_model_find_linear(m, e->L->name);
        if (!L || L != e->L || !L->W->owned)
            return lorac_fail(LORAC_ERR_ARG, "lorac_requant_apply: '%s' is not the merged Linear measured", e->L->name);
        const int out = L->out, in = L->in;
        const size_t row_bytes = e->nbytes / (size_t)out;
        float *y;
        LORAC_TRY(lorac_alloc((void **)&y, (size_t)in, sizeof *y, "merge row"));
        for (int o = 0; o < out; o++) {
            lorac_status st = e->nf4 ? lorac_qweight_dequant_row(&e->q, o, y)
                                     : decode_row(e->dtype, (const uint8_t *)e->bytes + (size_t)gguf_row(m, L, o) * row_bytes, y, in);
            if (st != LORAC_OK) {
                free(y);
                return st;
            }
            for (int i = 0; i < in; i++) L->W->data[L->w_in_out ? (size_t)i * out + o : (size_t)o * in + i] = y[i];
        }
        free(y);
    }
    return LORAC_OK;
}

lorac_status lorac_gguf_write_requantized(const lorac_model *m, const lorac_requant *rq, const char *path) {
    if (!m->gguf || (rq->n && rq->e[0].nf4))
        return lorac_fail(LORAC_ERR_ARG, "lorac_gguf_write_requantized: the base is no GGUF file, or the weights are NF4");
    const char *src = lorac_gguf_path(m->gguf);
    char *img;
    size_t len;
    LORAC_TRY(lorac_read_file(src, (size_t)1 << 40, &img, &len));
    for (int k = 0; k < rq->n; k++) {
        const lorac_requant_entry *e = &rq->e[k];
        if (e->file_offset > len || e->nbytes > len - e->file_offset) {
            free(img);
            return lorac_fail(LORAC_ERR_IO, "%s: changed while merging (tensor '%s' is past its end)", src, e->tensor);
        }
        memcpy(img + e->file_offset, e->bytes, e->nbytes);
    }
    lorac_status st = lorac_write_atomic(path, img, len);
    free(img);
    return st;
}
