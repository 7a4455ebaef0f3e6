#include "train/batch.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

void lorac_tokenized_free(lorac_tokenized *t) {
    if (!t) return;
    if (t->ids)
        for (int i = 0; i < t->n; i++) free(t->ids[i]);
    free(t->ids);
    free(t->len);
    free(t->label);
    if (t->loss_mask)
        for (int i = 0; i < t->n; i++) free(t->loss_mask[i]);
    free(t->loss_mask);
    memset(t, 0, sizeof *t);
}

/* Append src[0..n) to dst at *len, up to cap. */
static void append(int *dst, int *len, int cap, const int *src, int n) {
    for (int i = 0; i < n && *len < cap; i++) dst[(*len)++] = src[i];
}

/* An instruction example rendered as a conversation (see lorac_tokenize_dataset):
 * its ids and loss mask, cut to max_len; *full = the length before the cut. */
static lorac_status chat_example(const lorac_tokenizer *tok, const lorac_dataset *d, const lorac_example *e,
                                 const lorac_chat_format *chat, int max_len, int *buf, uint8_t *mask, int *len,
                                 int *full) {
    lorac_chat_format alpaca;
    if (!chat) { /* messages records of a model without a template */
        lorac_chat_format_init(&alpaca, LORAC_CHAT_ALPACA);
        lorac_chat_set_tokens(&alpaca, tok);
        chat = &alpaca;
    }
    lorac_chat_text t;
    lorac_status st = lorac_chat_render(chat, e->msgs, e->n_msgs, 0, &t);
    if (st != LORAC_OK) {
        lorac_error_prefix("%s:%d", d->path ? d->path : "data", e->line);
        return st;
    }
    int *ids, n;
    uint8_t *m;
    st = lorac_chat_encode(tok, &t, &ids, &m, &n);
    lorac_chat_text_free(&t);
    if (st != LORAC_OK) return st;
    *full = n;
    *len = n < max_len ? n : max_len;
    memcpy(buf, ids, sizeof(int) * (size_t)*len);
    memcpy(mask, m, (size_t)*len);
    free(ids);
    free(m);
    return LORAC_OK;
}

lorac_status lorac_tokenize_dataset(const lorac_tokenizer *tok, const lorac_dataset *d, lorac_task task, int max_len,
                                    const lorac_chat_format *chat, lorac_tokenized *out) {
    memset(out, 0, sizeof *out);
    if (max_len < 2) return lorac_fail(LORAC_ERR_ARG, "max length %d is too small", max_len);
    out->n = d->n;
    out->max_len = max_len;
    /* BOS only where the tokenizer itself adds it (Llama / SentencePiece, not
     * GPT-2 or SmolLM2); EOS always ends an LM example so the model learns to stop */
    int bos = lorac_tokenizer_adds_bos(tok) ? lorac_tokenizer_bos(tok) : -1;
    int eos = lorac_tokenizer_eos(tok), pad = lorac_tokenizer_pad(tok);
    /* tokenizers whose special tokens wrap every input (BERT's [CLS] ... [SEP]) */
    const int wrap = bos >= 0 && eos >= 0 && lorac_tokenizer_adds_eos(tok);
    out->pad_id = pad >= 0 ? pad : (eos >= 0 ? eos : 0);
    lorac_status st;
#define TRY(x) do { st = (x); if (st != LORAC_OK) goto fail; } while (0)
    TRY(lorac_alloc((void **)&out->ids, (size_t)d->n, sizeof(int *), "token ids"));
    TRY(lorac_alloc((void **)&out->len, (size_t)d->n, sizeof(int), "token lengths"));
    TRY(lorac_alloc((void **)&out->label, (size_t)d->n, sizeof(int), "labels"));
    if (task == LORAC_TASK_INSTRUCT) TRY(lorac_alloc((void **)&out->loss_mask, (size_t)d->n, sizeof(uint8_t *), "loss masks"));
    for (int i = 0; i < d->n; i++) {
        const lorac_example *e = &d->ex[i];
        int *buf, len = 0, full = 0;
        TRY(lorac_alloc((void **)&buf, (size_t)max_len, sizeof(int), "token ids"));
        out->ids[i] = buf;
        int *a = NULL, na = 0, *r = NULL, nr = 0;
        uint8_t *mask = NULL;
        if (task == LORAC_TASK_INSTRUCT) {
            TRY(lorac_alloc((void **)&out->loss_mask[i], (size_t)max_len, 1, "loss mask"));
            mask = out->loss_mask[i];
        }
        if (task == LORAC_TASK_INSTRUCT && e->msgs && (!e->prompt || (chat && chat->family != LORAC_CHAT_ALPACA))) {
            TRY(chat_example(tok, d, e, chat, max_len, buf, mask, &len, &full));
        } else if (task == LORAC_TASK_INSTRUCT && e->prompt && e->response) {
            TRY(lorac_tokenizer_encode(tok, e->prompt, strlen(e->prompt), 0, &a, &na));
            st = lorac_tokenizer_encode(tok, e->response, strlen(e->response), 0, &r, &nr);
            if (st != LORAC_OK) {
                free(a);
                goto fail;
            }
            if (bos >= 0) append(buf, &len, max_len, &bos, 1);
            append(buf, &len, max_len, a, na);
            const int n_prompt = len;
            append(buf, &len, max_len, r, nr);
            if (eos >= 0) append(buf, &len, max_len, &eos, 1);
            memset(mask + n_prompt, 1, (size_t)(len - n_prompt)); /* the response and EOS */
            full = (bos >= 0) + na + nr + (eos >= 0);
        } else {
            TRY(lorac_tokenizer_encode(tok, e->text, strlen(e->text), 0, &a, &na));
            if (task == LORAC_TASK_CLS && wrap) {
                /* BERT: [CLS] text [SEP], the text truncated so [SEP] stays (as HF truncates) */
                append(buf, &len, max_len, &bos, 1);
                append(buf, &len, max_len - 1, a, na);
                append(buf, &len, max_len, &eos, 1);
                full = na + 2;
            } else if (task == LORAC_TASK_CLS) {
                append(buf, &len, max_len, a, na);
                full = na;
                if (na == 0) { /* an empty text still needs one token to classify */
                    buf[len++] = out->pad_id;
                }
            } else {
                if (bos >= 0) append(buf, &len, max_len, &bos, 1);
                append(buf, &len, max_len, a, na);
                if (eos >= 0) append(buf, &len, max_len, &eos, 1);
                full = (bos >= 0) + na + (eos >= 0);
                if (mask) memset(mask, 1, (size_t)len); /* plain text as instruction data: all of it */
            }
        }
        free(a);
        free(r);
        out->n_truncated += full > max_len;
        out->len[i] = len;
        out->label[i] = e->label;
        out->n_tokens += len;
    }
    return LORAC_OK;
fail:
    lorac_tokenized_free(out);
    return st;
#undef TRY
}

void lorac_batch_free(lorac_batch *b) {
    if (!b) return;
    free(b->ids);
    free(b->mask);
    free(b->targets);
    free(b->labels);
    free(b->offs);
    memset(b, 0, sizeof *b);
}

int lorac_example_terms(const lorac_tokenized *t, int ex, lorac_task task) {
    if (task == LORAC_TASK_CLS) return 1;
    const int len = t->len[ex];
    if (task != LORAC_TASK_INSTRUCT) return len > 1 ? len - 1 : 0;
    int terms = 0; /* positions j whose next token j + 1 is a target */
    for (int j = 1; j < len; j++) terms += t->loss_mask[ex][j];
    return terms;
}

/* Room for `rows` token rows and `count` examples. */
static lorac_status batch_reserve(lorac_batch *b, int rows, int count) {
    if (rows <= b->cap && count <= b->capB) return LORAC_OK;
    lorac_batch_free(b);
    LORAC_TRY(lorac_alloc((void **)&b->ids, (size_t)rows, sizeof(int), "batch"));
    LORAC_TRY(lorac_alloc((void **)&b->mask, (size_t)rows, 1, "batch"));
    LORAC_TRY(lorac_alloc((void **)&b->targets, (size_t)rows, sizeof(int), "batch"));
    LORAC_TRY(lorac_alloc((void **)&b->labels, (size_t)count, sizeof(int), "batch"));
    LORAC_TRY(lorac_alloc((void **)&b->offs, (size_t)count + 1, sizeof(int), "batch"));
    b->cap = rows;
    b->capB = count;
    return LORAC_OK;
}

/* Example ex of t into rows ids / targets / mask [0 .. T): its tokens, then
 * padding up to T. Position j predicts token j+1 when that is a target (for
 * instruction data, its loss mask is 1: not the prompt nor other turns);
 * the last token and padding predict nothing. */
static void example_rows(const lorac_tokenized *t, int ex, lorac_task task, int T, int *ids, int *targets,
                         uint8_t *mask) {
    const int len = t->len[ex];
    const int *src = t->ids[ex];
    for (int j = 0; j < T; j++) {
        ids[j] = j < len ? src[j] : t->pad_id;
        mask[j] = j < len;
        int tgt = j + 1 < len ? src[j + 1] : -1;
        if (task == LORAC_TASK_INSTRUCT && tgt >= 0 && !t->loss_mask[ex][j + 1]) tgt = -1;
        targets[j] = tgt;
    }
}

lorac_status lorac_batch_make(lorac_batch *b, const lorac_tokenized *t, const int *order, int start, int count,
                              lorac_task task) {
    int T = 1;
    for (int i = 0; i < count; i++) {
        int l = t->len[order[start + i]];
        if (l > T) T = l;
    }
    LORAC_TRY(batch_reserve(b, count * T, count));
    b->B = count;
    b->T = T;
    b->N = count * T;
    b->packed = 0;
    for (int i = 0; i < count; i++) {
        const int ex = order[start + i];
        example_rows(t, ex, task, T, b->ids + (size_t)i * T, b->targets + (size_t)i * T, b->mask + (size_t)i * T);
        b->labels[i] = t->label[ex];
    }
    return LORAC_OK;
}

lorac_status lorac_batch_make_packed(lorac_batch *b, const lorac_tokenized *t, const int *order, int start, int count,
                                     lorac_task task) {
    int N = 0, T = 1;
    for (int i = 0; i < count; i++) {
        const int l = t->len[order[start + i]] > 0 ? t->len[order[start + i]] : 1;
        N += l;
        if (l > T) T = l;
    }
    LORAC_TRY(batch_reserve(b, N, count));
    b->B = count;
    b->T = T;
    b->N = N;
    b->packed = 1;
    b->offs[0] = 0;
    for (int i = 0; i < count; i++) {
        const int ex = order[start + i], r = b->offs[i];
        const int l = t->len[ex] > 0 ? t->len[ex] : 1;
        example_rows(t, ex, task, l, b->ids + r, b->targets + r, b->mask + r);
        b->labels[i] = t->label[ex];
        b->offs[i + 1] = r + l;
    }
    return LORAC_OK;
}

lorac_status lorac_batch_forward(lorac_model *m, const lorac_batch *b, lorac_fwd_mode mode) {
    if (b->packed) return lorac_model_forward_packed(m, b->ids, b->offs, b->B, mode);
    return lorac_model_forward(m, b->ids, b->mask, b->B, b->T, mode);
}

void lorac_batch_backward(lorac_model *m, const lorac_batch *b, lorac_fwd_mode mode) {
    if (b->packed)
        lorac_model_backward_packed(m, b->ids, mode);
    else
        lorac_model_backward(m, b->ids, b->B, b->T, mode);
}
