/* merge.c - merging an applied adapter into a checkpoint file through the
 * public API (lorac merge): the fp32 merge and its rounding bound, the
 * re-quantized weights (lora/merge.h) with their error figures, switching
 * the model to them, and the three writers (HF fp32, HF NF4, the GGUF base
 * file re-quantized). Also lorac_llm_logits, the raw outputs a caller
 * compares (lorac merge's probe of unmerged vs merged outputs). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "io/tensorfile.h"
#include "lora/merge.h"

void lorac_llm_merge_opts_init(lorac_llm_merge_opts *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->format = LORAC_MERGED_FP32;
}

void lorac_api_merge_free(lorac_llm *llm) {
    if (llm->requant) {
        lorac_requant_free(llm->requant);
        free(llm->requant);
        llm->requant = NULL;
    }
}

/* The fp32 path's weight error: W' = fl(W + d) with d formed in double, so
 * |W' - (W + d)| <= 2^-24 |W'| (half an ulp); the bound's max and RMS over
 * the adapted weights. */
static void fp32_bound(const lorac_model *m, double *rms, double *max) {
    double mx = 0, se = 0, n = 0;
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        if (!L->lora || !L->W->data) continue;
        for (size_t k = 0; k < L->W->n; k++) {
            const double u = ldexp(1.0, -24) * fabs((double)L->W->data[k]);
            se += u * u;
            mx = fmax(mx, u);
            n++;
        }
    }
    *rms = n > 0 ? sqrt(se / n) : 0;
    *max = mx;
}

static void report_requant(const lorac_requant *rq, lorac_llm_merge_report *r) {
    r->requantized = 1;
    for (int k = 0; k < rq->n; k++) {
        const char *f = rq->e[k].nf4 ? "NF4" : lorac_dtype_name(rq->e[k].dtype);
        if (!strstr(r->formats, f)) {
            size_t len = strlen(r->formats);
            snprintf(r->formats + len, sizeof r->formats - len, "%s%s", len ? "+" : "", f);
        }
    }
    r->tensors = rq->n;
    r->skipped = rq->n_skipped;
    snprintf(r->first_skipped, sizeof r->first_skipped, "%s", rq->skipped);
    r->rms_w = rq->rms_w;
    r->rms_delta = rq->rms_delta;
    r->rms_err = rq->rms_err;
    r->max_err = rq->max_err;
    r->kept = rq->kept;
}

lorac_status lorac_llm_merge_requant(lorac_llm *llm, const lorac_llm_merge_opts *o, lorac_llm_merge_report *report) {
    API_NEED(llm, "lorac_llm_merge_requant");
    API_SIZE(o, lorac_llm_merge_opts, "lorac_llm_merge_requant");
    API_SIZE(report, lorac_llm_merge_report, "lorac_llm_merge_requant");
    lorac_llm_merge_opts def;
    lorac_llm_merge_opts_init(&def);
    if (!o) o = &def;
    if (o->format != LORAC_MERGED_FP32 && o->format != LORAC_MERGED_NF4 && o->format != LORAC_MERGED_GGUF)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_merge_requant: format %d: expected LORAC_MERGED_FP32, _NF4 or _GGUF",
                          (int)o->format);
    if (llm->merged)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_merge_requant: the adapter is merged already; hint: write it with "
                          "lorac_llm_save_merged, or open the base again");
    if (!llm->applied)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_merge_requant: no adapter applied on the base%s; hint: "
                          "lorac_llm_adapter_apply DIR first", llm->set.n ? " (named adapters are merged by lorac_llm_merge)" : "");
    lorac_model *m = llm->m;
    if (o->format == LORAC_MERGED_GGUF && !m->gguf)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_merge_requant: LORAC_MERGED_GGUF re-quantizes to a .gguf base's own "
                          "formats, and %s is no .gguf file; hint: LORAC_MERGED_NF4 writes NF4 from any base", m->path);
    if (o->tokenizer && strlen(o->tokenizer) >= sizeof llm->merged_tok)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_merge_requant: tokenizer path is too long");
    lorac_llm_merge_report r = {.size = sizeof r};
    for (int i = 0; i < m->n_lin; i++) r.adapted += m->lin[i].lora != NULL;
    LORAC_TRY(lorac_lora_merge(m));
    llm->merged = 1;
    llm->merged_format = o->format;
    snprintf(llm->merged_tok, sizeof llm->merged_tok, "%s", o->tokenizer ? o->tokenizer : "");
    fp32_bound(m, &r.fp32_rms, &r.fp32_max);

    /* the re-quantized figures: of the format asked for, else of the base's own (GGUF) or NF4 */
    lorac_requant *rq = calloc(1, sizeof *rq);
    if (!rq) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    const int to_nf4 = o->format == LORAC_MERGED_FP32 ? !m->gguf : o->format == LORAC_MERGED_NF4;
    const lorac_status st = lorac_merge_requantize(m, to_nf4, !o->nearest, rq);
    if (st != LORAC_OK) {
        free(rq);
        if (o->format != LORAC_MERGED_FP32) return st; /* what the caller asked to write cannot be made */
        snprintf(r.note, sizeof r.note, "%s", lorac_last_error());
        lorac_clear_error();
    } else {
        llm->requant = rq;
        report_requant(rq, &r);
    }
    if (report) *report = r;
    return LORAC_OK;
}

lorac_status lorac_llm_use_requantized(lorac_llm *llm) {
    API_NEED(llm, "lorac_llm_use_requantized");
    if (!llm->requant)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_use_requantized: no re-quantized weights; hint: "
                          "lorac_llm_merge_requant first (its report says whether it made them)");
    return lorac_requant_apply(llm->m, llm->requant);
}

lorac_status lorac_llm_save_merged(lorac_llm *llm, const char *path) {
    API_NEED(llm, "lorac_llm_save_merged");
    API_NEED(path, "lorac_llm_save_merged");
    if (!llm->merged)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_save_merged: nothing merged; hint: lorac_llm_merge_requant first");
    const char *tok = llm->merged_tok[0] ? llm->merged_tok : NULL;
    if (llm->merged_format == LORAC_MERGED_FP32) return lorac_model_save_merged(llm->m, path, tok);
    if (!llm->requant) /* lorac_llm_merge_requant fails rather than leave this */
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_save_merged: no re-quantized weights to write");
    if (llm->merged_format == LORAC_MERGED_NF4) return lorac_model_save_merged_nf4(llm->m, llm->requant, path, tok);
    return lorac_gguf_write_requantized(llm->m, llm->requant, path);
}

lorac_status lorac_llm_logits(lorac_llm *llm, const int *ids, int B, int T, float **out, size_t *n) {
    API_NEED(out, "lorac_llm_logits");
    *out = NULL;
    API_NEED(n, "lorac_llm_logits");
    *n = 0;
    API_NEED(llm, "lorac_llm_logits");
    API_NEED(ids, "lorac_llm_logits");
    lorac_model *m = llm->m;
    if (B < 1 || T < 1 || T > m->cfg.n_ctx || B > 65536)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_logits: B %d, T %d: expected B >= 1 and 1 <= T <= %d (the context)", B,
                          T, m->cfg.n_ctx);
    for (int i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab)
            return lorac_fail(LORAC_ERR_ARG, "lorac_llm_logits: ids[%d] = %d outside the vocabulary 0..%d", i, ids[i],
                              m->cfg.vocab - 1);
    const int cls = m->head && m->head->W->data;
    const size_t cnt = (size_t)B * (cls ? (size_t)m->n_classes : (size_t)T * (size_t)m->cfg.vocab);
    float *y = malloc(cnt * sizeof *y);
    if (!y) return lorac_fail(LORAC_ERR_NOMEM, "lorac_llm_logits: out of memory for %zu logits", cnt);
    const int was = m->training; /* outputs, not a training step: no dropout */
    m->training = 0;
    lorac_status st = lorac_model_reserve(m, B, T);
    if (st == LORAC_OK) st = lorac_model_forward(m, ids, NULL, B, T, cls ? LORAC_FWD_CLS : LORAC_FWD_LM);
    m->training = was;
    if (st != LORAC_OK) {
        free(y);
        return st;
    }
    memcpy(y, cls ? m->acts.cls_logits : m->acts.logits, cnt * sizeof *y);
    *out = y;
    *n = cnt;
    return LORAC_OK;
}
