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
    free(t->n_prompt);
    memset(t, 0, sizeof *t);
}

/* Append src[0..n) to dst at *len, up to cap. */
static void append(int *dst, int *len, int cap, const int *src, int n) {
    for (int i = 0; i < n && *len < cap; i++) dst[(*len)++] = src[i];
}

lorac_status lorac_tokenize_dataset(const lorac_tokenizer *tok, const lorac_dataset *d, lorac_task task, int max_len,
                                    lorac_tokenized *out) {
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
    TRY(lorac_alloc((void **)&out->n_prompt, (size_t)d->n, sizeof(int), "prompt lengths"));
    for (int i = 0; i < d->n; i++) {
        const lorac_example *e = &d->ex[i];
        int *buf, len = 0, full = 0;
        TRY(lorac_alloc((void **)&buf, (size_t)max_len, sizeof(int), "token ids"));
        out->ids[i] = buf;
        int *a = NULL, na = 0, *r = NULL, nr = 0;
        if (task == LORAC_TASK_INSTRUCT && e->prompt && e->response) {
            TRY(lorac_tokenizer_encode(tok, e->prompt, strlen(e->prompt), 0, &a, &na));
            st = lorac_tokenizer_encode(tok, e->response, strlen(e->response), 0, &r, &nr);
            if (st != LORAC_OK) {
                free(a);
                goto fail;
            }
            if (bos >= 0) append(buf, &len, max_len, &bos, 1);
            append(buf, &len, max_len, a, na);
            out->n_prompt[i] = len;
            append(buf, &len, max_len, r, nr);
            if (eos >= 0) append(buf, &len, max_len, &eos, 1);
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
    int masked = task == LORAC_TASK_INSTRUCT ? t->n_prompt[ex] - 1 : 0; /* positions j with j + 1 < n_prompt */
    if (masked < 0) masked = 0;
    if (masked > len - 1) masked = len - 1;
    return len - 1 - masked;
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
 * padding up to T. Position j predicts token j+1; prompt tokens (instruction
 * data) predict nothing, nor does the last token or any padding. */
static void example_rows(const lorac_tokenized *t, int ex, lorac_task task, int T, int *ids, int *targets,
                         uint8_t *mask) {
    const int len = t->len[ex];
    const int *src = t->ids[ex];
    for (int j = 0; j < T; j++) {
        ids[j] = j < len ? src[j] : t->pad_id;
        mask[j] = j < len;
        int tgt = j + 1 < len ? src[j + 1] : -1;
        if (task == LORAC_TASK_INSTRUCT && j + 1 < t->n_prompt[ex]) tgt = -1;
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
        b->offs[i] = i * T;
    }
    b->offs[count] = count * T;
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
