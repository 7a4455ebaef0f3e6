/* llm.c - the public API's model handle: open / close, info, modules, the
 * tokenizer (lorac_tok_*), chat templates, threads, version, lorac_free.
 *
 * lorac_llm_open follows the CLI's loading (tools/lorac/cli_common.c did it
 * before this API existed): LORAC_BASE_NF4 / _GGUF load the block Linears
 * quantized (lorac_model_load_quantized; GGUF keeps an untied LM head's
 * blocks too), LORAC_BASE_BF16 rounds them after loading
 * (lorac_model_quantize); LORAC_BASE_AUTO is GGUF for a .gguf file and FP32
 * otherwise, resolved here so llm->base always names what is held. The
 * tokenizer comes from opts.tokenizer, else from the .gguf's metadata, else
 * from the model directory. */
#include "api/api.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "core/util.h"
#include "io/chat.h"
#include "io/gguf.h"
#include "ops/gemm.h"
#include "quant/qmatmul.h"

const char *lorac_version(void) { return LORAC_VERSION; }

void lorac_free(void *p) { free(p); }

void lorac_set_threads(int n) {
    if (n <= 0) {
        const char *e = getenv("OMP_NUM_THREADS");
        n = e && atoi(e) > 0 ? atoi(e) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    }
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

void lorac_llm_opts_init(lorac_llm_opts *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->base = LORAC_BASE_AUTO;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static lorac_status load_tokenizer(const char *path, const lorac_gguf *g, lorac_tokenizer **out) {
    if (g) return lorac_tokenizer_from_gguf(g, out);
    if (ends_with(path, ".gguf")) {
        lorac_gguf *mg;
        LORAC_TRY(lorac_gguf_open_metadata(path, &mg));
        lorac_status st = lorac_tokenizer_from_gguf(mg, out);
        lorac_gguf_close(mg);
        return st;
    }
    return lorac_tokenizer_load(path, out);
}

lorac_status lorac_llm_open(const char *path, const lorac_llm_opts *o, lorac_llm **out) {
    API_NEED(out, "lorac_llm_open");
    *out = NULL;
    API_NEED(path, "lorac_llm_open");
    API_SIZE(o, lorac_llm_opts, "lorac_llm_open");
    lorac_llm_opts d;
    lorac_llm_opts_init(&d);
    if (!o) o = &d;
    if (o->base < LORAC_BASE_FP32 || o->base > LORAC_BASE_AUTO)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_open: base format %d unknown; hint: LORAC_BASE_AUTO, _FP32, _BF16, "
                          "_NF4 or _GGUF", (int)o->base);
    const lorac_base_format base =
        o->base != LORAC_BASE_AUTO ? o->base : ends_with(path, ".gguf") ? LORAC_BASE_GGUF : LORAC_BASE_FP32;
    if (o->base == LORAC_BASE_GGUF && !ends_with(path, ".gguf"))
        return lorac_fail(LORAC_ERR_ARG, "%s: LORAC_BASE_GGUF keeps a .gguf file's own quantized blocks; hint: for a "
                          "safetensors model use LORAC_BASE_NF4", path);
    if (o->tokenizer && strlen(o->tokenizer) >= sizeof((lorac_llm *)0)->tok_path)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_open: tokenizer path too long");
    if (o->threads > 0) lorac_set_threads(o->threads);
    lorac_llm *llm = calloc(1, sizeof *llm);
    if (!llm) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    llm->base = base;
    llm->embed_fp32 = o->embed_fp32;
    lorac_status st;
    if (base == LORAC_BASE_NF4 || base == LORAC_BASE_GGUF)
        st = lorac_model_load_quantized(path, (base == LORAC_BASE_GGUF ? LORAC_QLOAD_KEEP | LORAC_QLOAD_KEEP_HEAD
                                                                        : LORAC_QLOAD_NF4) |
                                                  (o->embed_fp32 ? LORAC_QLOAD_EMBED_FP32 : 0), &llm->m);
    else
        st = lorac_model_load(path, &llm->m);
    if (st == LORAC_OK && base == LORAC_BASE_BF16) st = lorac_model_quantize(llm->m, LORAC_QF_BF16);
    if (st == LORAC_OK && !o->no_tokenizer) {
        if (o->tokenizer) snprintf(llm->tok_path, sizeof llm->tok_path, "%s", o->tokenizer);
        st = o->tokenizer ? load_tokenizer(o->tokenizer, NULL, &llm->tok.t)
                          : load_tokenizer(path, ends_with(path, ".gguf") ? llm->m->gguf : NULL, &llm->tok.t);
    }
    if (st != LORAC_OK) {
        lorac_llm_close(llm);
        return st;
    }
    lorac_adapters_init(&llm->set, llm->m);
    *out = llm;
    return LORAC_OK;
}

lorac_status lorac_api_wrap(lorac_model *m, lorac_llm **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    (*out)->m = m;
    lorac_adapters_init(&(*out)->set, m);
    return LORAC_OK;
}

void lorac_api_forget_applied(lorac_llm *llm) {
    for (int i = 0; i < llm->n_labels; i++) free(llm->labels[i]);
    llm->n_labels = 0;
    llm->applied = llm->applied_lora = llm->applied_classes = 0;
}

void lorac_llm_close(lorac_llm *llm) {
    if (!llm) return;
    if (llm->m) lorac_adapters_free(&llm->set);
    lorac_api_forget_applied(llm);
    lorac_api_merge_free(llm);
    lorac_tokenizer_free(llm->tok.t);
    lorac_model_free(llm->m);
    free(llm);
}

lorac_status lorac_llm_get_info(const lorac_llm *llm, lorac_llm_info *info) {
    API_NEED(llm, "lorac_llm_get_info");
    API_NEED(info, "lorac_llm_get_info");
    API_SIZE(info, lorac_llm_info, "lorac_llm_get_info");
    const lorac_model *m = llm->m;
    memset(info, 0, sizeof *info);
    info->size = sizeof *info;
    snprintf(info->arch, sizeof info->arch, "%s", m->cfg.model_type);
    info->n_layers = m->cfg.n_layer;
    info->dim = m->cfg.dim;
    info->n_heads = m->cfg.n_head;
    info->n_kv_heads = m->cfg.n_kv_head;
    info->vocab_size = m->cfg.vocab;
    info->n_ctx = m->cfg.n_ctx;
    info->n_classes = m->head && m->head->W->data ? m->n_classes : 0;
    lorac_count_params(m, &info->params_trainable, &info->params_all);
    info->n_modules = m->n_lin;
    info->n_adapters = llm->set.n;
    if (llm->set.active >= 0 && llm->set.n)
        snprintf(info->active_adapter, sizeof info->active_adapter, "%s", llm->set.slot[llm->set.active].name);
    else if (llm->applied)
        snprintf(info->active_adapter, sizeof info->active_adapter, "default");
    info->adapter_bytes = lorac_adapters_bytes(&llm->set);
    lorac_qstats q;
    lorac_model_qstats(m, &q);
    info->quantized_linears = q.n_linears;
    for (int f = 0; f < LORAC_QF_COUNT; f++) {
        if (!q.n_fmt[f]) continue;
        size_t len = strlen(info->formats);
        snprintf(info->formats + len, sizeof info->formats - len, "%s%s", len ? "+" : "", lorac_qformat_name((lorac_qformat)f));
    }
    snprintf(info->embed_format, sizeof info->embed_format, "%s", q.embed_fmt ? lorac_qformat_name(q.embed_fmt) : "fp32");
    info->base_params = q.base_params;
    info->quantized_params = q.q_params;
    info->base_bytes = q.base_bytes;
    info->quantized_bytes = q.q_bytes;
    info->fallback = m->q_fallback;
    snprintf(info->fallback_note, sizeof info->fallback_note, "%s", m->q_note);
    info->bf16_native = op_gemm_bf16_native();
    snprintf(info->path, sizeof info->path, "%s", m->path);
    info->head_dim = m->cfg.head_dim;
    info->ffn_dim = m->cfg.ffn_dim;
    info->tied = m->cfg.tied;
    info->base = llm->base;
    if (m->lm_head)
        snprintf(info->head_format, sizeof info->head_format, "%s",
                 m->lm_head->q ? lorac_qformat_name(m->lm_head->q->fmt) : "fp32");
    return LORAC_OK;
}

lorac_status lorac_llm_module(const lorac_llm *llm, int i, lorac_module_info *out) {
    API_NEED(llm, "lorac_llm_module");
    API_NEED(out, "lorac_llm_module");
    if (i < 0 || i >= llm->m->n_lin)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_module: index %d outside 0..%d", i, llm->m->n_lin - 1);
    const lorac_linear *L = &llm->m->lin[i];
    out->name = L->name;
    out->in = L->in;
    out->out = L->out;
    out->lora_r = L->lora ? L->lora->r : 0;
    out->trainable = L->W->grad != NULL;
    return LORAC_OK;
}

/* ---- tokenizers ---- */

const lorac_tok *lorac_llm_tok(const lorac_llm *llm) { return llm && llm->tok.t ? &llm->tok : NULL; }

lorac_status lorac_tok_open(const char *path, lorac_tok **out) {
    API_NEED(out, "lorac_tok_open");
    *out = NULL;
    API_NEED(path, "lorac_tok_open");
    lorac_tok *t = calloc(1, sizeof *t);
    if (!t) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    lorac_status st = load_tokenizer(path, NULL, &t->t);
    if (st != LORAC_OK) {
        free(t);
        return st;
    }
    t->owned = 1;
    *out = t;
    return LORAC_OK;
}

void lorac_tok_close(lorac_tok *t) {
    if (!t || !t->owned) return; /* a borrowed one belongs to its llm */
    lorac_tokenizer_free(t->t);
    free(t);
}

lorac_status lorac_tok_encode(const lorac_tok *t, const char *text, size_t len, int add_special, int **ids, int *n) {
    API_NEED(t, "lorac_tok_encode");
    API_NEED(ids, "lorac_tok_encode");
    API_NEED(n, "lorac_tok_encode");
    if (!text && len) return lorac_fail(LORAC_ERR_ARG, "lorac_tok_encode: text is NULL");
    return lorac_tokenizer_encode(t->t, text ? text : "", len, add_special, ids, n);
}

lorac_status lorac_tok_decode(const lorac_tok *t, const int *ids, int n, int skip_special, char **text, size_t *len) {
    API_NEED(t, "lorac_tok_decode");
    API_NEED(text, "lorac_tok_decode");
    if (n < 0 || (n > 0 && !ids)) return lorac_fail(LORAC_ERR_ARG, "lorac_tok_decode: %d ids at %p", n, (const void *)ids);
    size_t l;
    return lorac_tokenizer_decode(t->t, ids, n, skip_special, text, len ? len : &l);
}

lorac_status lorac_tok_decode_piece(const lorac_tok *t, int prev, int id, char *buf, size_t cap, size_t *len) {
    API_NEED(t, "lorac_tok_decode_piece");
    API_NEED(buf, "lorac_tok_decode_piece");
    API_NEED(len, "lorac_tok_decode_piece");
    return lorac_tokenizer_decode_piece(t->t, prev, id, buf, cap, len);
}

int lorac_tok_vocab_size(const lorac_tok *t) { return t ? lorac_tokenizer_vocab_size(t->t) : 0; }
int lorac_tok_bos(const lorac_tok *t) { return t ? lorac_tokenizer_bos(t->t) : -1; }
int lorac_tok_eos(const lorac_tok *t) { return t ? lorac_tokenizer_eos(t->t) : -1; }
int lorac_tok_find(const lorac_tok *t, const char *piece) { return t && piece ? lorac_tokenizer_find(t->t, piece) : -1; }
