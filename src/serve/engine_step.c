/* engine_step.c - the sequences of the engine's batch and the step that
 * advances them all by one token (see engine.h).
 *
 * A sequence is a job's tokens (prompt, then what was generated), its
 * sampler (lorac_sample with the request's settings and its own seeded
 * rng, as lorac_generate does) and its stop tokens (EOS; in chat also the
 * format's end-of-turn token, as lorac generate --chat stops). Tokens
 * become text with lorac_tokenizer_decode_piece, as lorac generate prints
 * them, so a greedy answer is lorac generate's output byte for byte.
 *
 * What a client may see ("ready" bytes): the text so far, less an
 * incomplete UTF-8 character at its end and less any end that could be the
 * start of a stop string; once the sequence is done, everything (a stop
 * string found is cut off with what follows it, as OpenAI does).
 *
 * The step: one lorac_model_decode (models/kvcache.h) over every running
 * sequence, each in its own cache slot with its own adapter's table: a
 * sequence that just joined feeds its whole prompt (prefill), the others
 * their last token; the base weights run once over all those rows and each
 * sequence adds its adapter's low-rank term on its rows. Then each samples
 * its next token, and under the engine's lock the text is appended. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "models/generate.h"
#include "models/kvcache.h"
#include "serve/engine_internal.h"
#include "train/batch.h"

typedef struct seq {
    int *ids;           /* [cap] prompt + generated */
    int n, cap, n_prompt;
    lorac_gen_opts gen;
    lorac_rng rng;
    int prev;           /* the last token (decode_piece joins pieces after it) */
    int slot;           /* its KV-cache slot */
    int fed;            /* ids[0..fed) are in the cache */
} seq;

lorac_status engine_step_init(lorac_engine *e) {
    LORAC_TRY(lorac_alloc((void **)&e->logits, (size_t)e->o.max_seqs * (size_t)e->m->cfg.vocab, sizeof(float), "step logits"));
    lorac_kv *kv;
    LORAC_TRY(lorac_kv_create(e->m, e->o.max_seqs, e->ctx_limit, &kv));
    e->kv = kv;
    return LORAC_OK;
}

void engine_step_free(lorac_engine *e) {
    lorac_kv_free(e->kv);
    e->kv = NULL;
    free(e->logits);
    e->logits = NULL;
    free(e->step_ids);
    e->step_ids = NULL;
}

void engine_seq_free(lorac_engine *e, lorac_job *j) {
    seq *s = j->seq;
    if (!s) return;
    lorac_kv_reset(e->kv, s->slot);
    e->slot_used[s->slot] = 0;
    free(s->ids);
    free(s);
    j->seq = NULL;
}

/* The prompt's tokens as lorac generate makes them: a completion's text
 * with the tokenizer's specials (BOS), a chat rendered in the model's
 * format (which writes its own BOS); an empty prompt is BOS (or EOS). */
static int prompt_tokens(lorac_engine *e, const lorac_req *r, int **ids, int *n, lorac_req_error *err) {
    lorac_status st;
    if (r->kind == LORAC_REQ_CHAT) {
        lorac_chat_text t = {0};
        st = lorac_chat_render(&e->chat, r->msgs, r->n_msgs, 1, &t);
        if (st != LORAC_OK) return lorac_req_fail(err, 400, "messages", "invalid_value", "%s", lorac_last_error());
        st = lorac_tokenizer_encode(e->tok, t.text, t.len, 0, ids, n);
        lorac_chat_text_free(&t);
    } else {
        st = lorac_tokenizer_encode(e->tok, r->prompt, strlen(r->prompt), 1, ids, n);
    }
    if (st != LORAC_OK) return lorac_req_fail(err, 400, "prompt", "invalid_value", "%s", lorac_last_error());
    if (*n == 0) {
        int start = lorac_tokenizer_bos(e->tok) >= 0 ? lorac_tokenizer_bos(e->tok) : lorac_tokenizer_eos(e->tok);
        if (start < 0)
            return lorac_req_fail(err, 400, "prompt", "invalid_value", "the prompt is empty and the tokenizer has no BOS token");
        free(*ids);
        if (!(*ids = malloc(sizeof(int)))) return lorac_req_fail(err, 500, NULL, "out_of_memory", "out of memory");
        (*ids)[0] = start;
        *n = 1;
    }
    return 0;
}

int engine_seq_admit(lorac_engine *e, lorac_job *j, lorac_req_error *err) {
    const lorac_req *r = &j->req;
    if (strcmp(r->model, "base") && lorac_adapters_find(&e->set, r->model) < 0)
        return lorac_req_fail(err, 404, "model", "model_not_found", "the model '%s' does not exist (unloaded?)", r->model);
    int *ids = NULL, n = 0;
    int st = prompt_tokens(e, r, &ids, &n, err);
    if (!st && n > e->o.max_prompt)
        st = lorac_req_fail(err, 400, r->kind == LORAC_REQ_CHAT ? "messages" : "prompt", "context_length_exceeded",
                            "the prompt has %d tokens; the limit is %d (lorac serve --max-prompt)", n, e->o.max_prompt);
    if (!st && n + r->max_tokens > e->ctx_limit)
        st = lorac_req_fail(err, 400, "max_tokens", "context_length_exceeded", "the prompt's %d tokens + max_tokens %d pass "
                            "the %d tokens a sequence may hold; hint: a smaller max_tokens", n, r->max_tokens, e->ctx_limit);
    seq *s = NULL;
    if (!st && (!(s = calloc(1, sizeof *s)) || !(s->ids = malloc(sizeof(int) * (size_t)(n + r->max_tokens)))))
        st = lorac_req_fail(err, 500, NULL, "out_of_memory", "out of memory for a sequence");
    if (st) {
        if (s) free(s->ids);
        free(s);
        free(ids);
        return st;
    }
    memcpy(s->ids, ids, sizeof(int) * (size_t)n);
    free(ids);
    s->n = s->n_prompt = n;
    s->cap = n + r->max_tokens;
    s->prev = s->ids[n - 1];
    lorac_gen_opts_default(&s->gen);
    s->gen.max_new = r->max_tokens;
    s->gen.temperature = r->temperature;
    s->gen.top_k = r->top_k;
    s->gen.top_p = r->top_p;
    s->gen.seed = r->seed;
    const int eos = lorac_tokenizer_eos(e->tok);
    if (eos >= 0) s->gen.stop[s->gen.n_stop++] = eos;
    if (r->kind == LORAC_REQ_CHAT && e->end_of_turn >= 0 && e->end_of_turn != eos) s->gen.stop[s->gen.n_stop++] = e->end_of_turn;
    lorac_rng_seed(&s->rng, s->gen.seed);
    s->slot = 0;
    while (e->slot_used[s->slot]) s->slot++; /* the caller admits only while a slot is free */
    e->slot_used[s->slot] = 1;
    j->seq = s;
    j->n_prompt = n;
    return 0;
}

/* Bytes at the end of t[0..n) that begin a UTF-8 character not yet complete. */
static size_t utf8_incomplete_tail(const char *t, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = (unsigned char)t[n - k];
        if ((c & 0xC0) == 0x80) continue; /* a continuation byte: look further back */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

/* Bytes at the end of j's text that could begin one of its stop strings. */
static size_t stop_prefix_tail(const lorac_job *j) {
    size_t hold = 0;
    for (int s = 0; s < j->req.n_stop; s++) {
        const char *st = j->req.stop[s];
        size_t sl = strlen(st);
        for (size_t k = sl - 1; k > hold; k--)
            if (k <= j->len && !memcmp(j->text + j->len - k, st, k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

static void finish(lorac_job *j, const char *why) {
    j->finish = why;
    j->len -= utf8_incomplete_tail(j->text, j->len); /* a character the answer ended inside of */
    if (j->text) j->text[j->len] = 0;
    j->ready = j->len;
    j->done = 1;
}

/* The first occurrence of needle[0..nn) in hay[0..nh), or NULL. */
static const char *find_bytes(const char *hay, size_t nh, const char *needle, size_t nn) {
    for (size_t i = 0; nn <= nh && i <= nh - nn; i++)
        if (!memcmp(hay + i, needle, nn)) return hay + i;
    return NULL;
}

/* Append token id to j (mutex held): text, stop strings, limits, ready bytes. */
static void take_token(lorac_engine *e, lorac_job *j, int id) {
    seq *s = j->seq;
    for (int i = 0; i < s->gen.n_stop; i++)
        if (id == s->gen.stop[i]) {
            finish(j, "stop");
            return;
        }
    char buf[256];
    size_t n = 0, old = j->len;
    if (lorac_tokenizer_decode_piece(e->tok, s->prev, id, buf, sizeof buf, &n) != LORAC_OK) n = 0;
    s->prev = id;
    s->ids[s->n++] = id;
    j->n_gen++;
    e->gen_tokens++;
    if (lorac_serve_buf_add(&j->text, &j->len, &j->cap, buf, n)) {
        lorac_req_fail(&j->err, 500, NULL, "out_of_memory", "out of memory for the answer");
        finish(j, "stop");
        return;
    }
    for (int k = 0; k < j->req.n_stop; k++) {
        const size_t sl = strlen(j->req.stop[k]), from = old + 1 > sl ? old + 1 - sl : 0;
        const char *hit = j->len >= sl ? find_bytes(j->text + from, j->len - from, j->req.stop[k], sl) : NULL;
        if (hit) {
            j->len = (size_t)(hit - j->text);
            finish(j, "stop");
            return;
        }
    }
    if (j->n_gen >= j->req.max_tokens) {
        finish(j, "length");
        return;
    }
    size_t hold = utf8_incomplete_tail(j->text, j->len), sh = stop_prefix_tail(j);
    j->ready = j->len - (sh > hold ? sh : hold);
}

/* logits[i*V ..] for each running sequence: one batched decode, each
 * sequence feeding the tokens its cache slot lacks, with its own adapter. */
static lorac_status forward_all(lorac_engine *e, lorac_job **run, int n, int *prefill) {
    int slot[ENGINE_MAX_SEQS], offs[ENGINE_MAX_SEQS + 1];
    lorac_lora *const *tables[ENGINE_MAX_SEQS];
    offs[0] = 0;
    for (int i = 0; i < n; i++) {
        const seq *s = run[i]->seq;
        slot[i] = s->slot;
        offs[i + 1] = offs[i] + s->n - s->fed;
        const int k = strcmp(run[i]->req.model, "base") ? lorac_adapters_find(&e->set, run[i]->req.model) : -1;
        tables[i] = k >= 0 ? e->set.slot[k].lora : NULL;
    }
    if ((size_t)offs[n] > e->step_cap) {
        int *p = realloc(e->step_ids, sizeof(int) * (size_t)offs[n]);
        if (!p) return lorac_fail(LORAC_ERR_NOMEM, "out of memory for a step's %d tokens", offs[n]);
        e->step_ids = p;
        e->step_cap = (size_t)offs[n];
    }
    for (int i = 0; i < n; i++) {
        const seq *s = run[i]->seq;
        memcpy(e->step_ids + offs[i], s->ids + s->fed, sizeof(int) * (size_t)(s->n - s->fed));
        if (s->n - s->fed > 1) *prefill += s->n - s->fed;
    }
    LORAC_TRY(lorac_model_decode(e->m, e->kv, n, slot, e->step_ids, offs, tables, e->logits));
    for (int i = 0; i < n; i++) ((seq *)run[i]->seq)->fed = ((seq *)run[i]->seq)->n;
    return LORAC_OK;
}

lorac_status engine_step(lorac_engine *e, lorac_job **run, int n) {
    const int V = e->m->cfg.vocab;
    int ids[ENGINE_MAX_SEQS], prefill = 0;
    LORAC_TRY(forward_all(e, run, n, &prefill));
    for (int i = 0; i < n; i++) {
        seq *s = run[i]->seq;
        ids[i] = lorac_sample(e->logits + (size_t)i * V, V, &s->gen, &s->rng);
    }
    lorac_engine_lock(e);
    e->steps++;
    e->step_rows += n;
    e->prefill_rows += prefill;
    for (int i = 0; i < n; i++) {
        lorac_job *j = run[i];
        if (j->done || j->cancelled) continue;
        take_token(e, j, ids[i]);
        pthread_cond_broadcast(&j->cv);
    }
    lorac_engine_unlock(e);
    return LORAC_OK;
}

/* ---- classification ---- */

static int classify_one(lorac_engine *e, const lorac_adapter_slot *a, const char *text, int index, cJSON *data,
                        lorac_req_error *err) {
    lorac_example ex = {0};
    ex.text = (char *)text;
    ex.label = -1;
    lorac_dataset d = {0};
    d.ex = &ex;
    d.n = 1;
    d.path = "request";
    lorac_tokenized t = {0};
    const int max_len = e->m->cfg.n_ctx < e->o.max_prompt ? e->m->cfg.n_ctx : e->o.max_prompt;
    lorac_status st = lorac_tokenize_dataset(e->tok, &d, LORAC_TASK_CLS, max_len, NULL, &t);
    if (st == LORAC_OK) st = lorac_model_forward(e->m, t.ids[0], NULL, 1, t.len[0], LORAC_FWD_CLS);
    lorac_tokenized_free(&t);
    if (st != LORAC_OK) return lorac_req_fail(err, 500, "input", "engine_error", "%s", lorac_last_error());
    const int nc = a->n_classes;
    const float *z = e->m->acts.cls_logits;
    double mx = z[0], sum = 0;
    int best = 0;
    for (int c = 1; c < nc; c++) {
        if (z[c] > mx) mx = z[c];
        if (z[c] > z[best]) best = c;
    }
    for (int c = 0; c < nc; c++) sum += exp(z[c] - mx);
    cJSON *item = cJSON_CreateObject(), *probs = cJSON_CreateObject();
    char lab[32];
    for (int c = 0; c < nc; c++) {
        snprintf(lab, sizeof lab, "LABEL_%d", c);
        cJSON_AddNumberToObject(probs, a->n_labels == nc ? a->labels[c] : lab, exp(z[c] - mx) / sum);
    }
    snprintf(lab, sizeof lab, "LABEL_%d", best);
    cJSON_AddNumberToObject(item, "index", index);
    cJSON_AddStringToObject(item, "label", a->n_labels == nc ? a->labels[best] : lab);
    cJSON_AddNumberToObject(item, "label_id", best);
    cJSON_AddItemToObject(item, "probabilities", probs);
    cJSON_AddItemToArray(data, item);
    return 0;
}

void engine_classify(lorac_engine *e, lorac_job *j) {
    const char *name = j->req.model;
    const int k = lorac_adapters_find(&e->set, name);
    if (k < 0 || e->set.slot[k].n_classes == 0) {
        if (k < 0 && strcmp(name, "base")) lorac_req_fail(&j->err, 404, "model", "model_not_found", "the model '%s' does not exist", name);
        else lorac_req_fail(&j->err, 400, "model", "no_classification_head", "the model '%s' has no classification head; "
                            "hint: an adapter trained with lorac train --task classify", name);
        return;
    }
    if (lorac_adapters_activate(&e->set, name) != LORAC_OK) {
        lorac_req_fail(&j->err, 500, "model", "engine_error", "%s", lorac_last_error());
        return;
    }
    cJSON *o = cJSON_CreateObject(), *data = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddStringToObject(o, "model", name);
    cJSON_AddItemToObject(o, "data", data);
    for (int i = 0; i < j->req.n_inputs; i++)
        if (classify_one(e, &e->set.slot[k], j->req.inputs[i], i, data, &j->err)) break;
    lorac_adapters_activate(&e->set, NULL);
    if (!j->err.status) j->result = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
}
