/* batch.h - tokenized examples and the padded batches the trainer feeds to
 * the model.
 *
 * A tokenized set holds one id sequence per example (truncated to max_len,
 * with the count of truncated examples kept for reporting), its class label
 * (classification) and, for instruction data, a mask of the tokens the loss
 * trains on (the response, or every assistant turn of a conversation). Batches are either right-padded
 * to the longest sequence in the batch (padding never changes a causal
 * model's output for the real tokens) or packed end to end without padding,
 * which computes the same thing for less (see lorac_batch). */
#ifndef LORAC_TRAIN_BATCH_H
#define LORAC_TRAIN_BATCH_H

#include <stdint.h>

#include "io/dataset.h"
#include "io/tokenizer.h"
#include "models/model.h"

typedef enum { LORAC_TASK_CLS = 0, LORAC_TASK_LM = 1, LORAC_TASK_INSTRUCT = 2 } lorac_task;

typedef struct lorac_tokenized {
    int n;
    int **ids;      /* [n][len[i]] */
    int *len;       /* [n] */
    int *label;     /* [n] class id (CLS) or -1 */
    uint8_t **loss_mask; /* [n][len[i]] INSTRUCT: 1 = token j is a target (predicted at j-1);
                            NULL for other tasks, where every next token is one */
    int n_truncated;/* examples cut to max_len */
    int max_len;
    int pad_id;
    int64_t n_tokens;
} lorac_tokenized;

/* Tokenize every example of d for the task. CLS: encode(text) without special
 * tokens (appendix E) then truncate. LM: [bos] + encode(text) + [eos], with the
 * BOS only when the tokenizer adds one (as add_special_tokens=True would).
 * INSTRUCT, two ways:
 *   chat (a chat format other than alpaca is given, or the record is a
 *     "messages" conversation): the example's msgs rendered in that format
 *     (alpaca when chat is NULL) and tokenized whole (io/chat.h,
 *     lorac_chat_encode); the mask is 1 on the assistant turns' tokens
 *     (content + end-of-turn marker). The format writes any BOS; no EOS is
 *     added (the end-of-turn marker is the stop).
 *   Alpaca records without a chat format (or with alpaca): as lorac always
 *     did, [bos] + encode(prompt) + encode(response) + [eos], the mask 1 from
 *     the response on.
 * A conversation the format cannot render (e.g. Gemma's alternation) fails
 * with "<path>:<line>: messages[i]: ...". pad_id: the tokenizer's pad, else
 * its eos (GPT-2's <|endoftext|>, as appendix E pads), else 0. */
lorac_status lorac_tokenize_dataset(const lorac_tokenizer *tok, const lorac_dataset *d, lorac_task task, int max_len,
                                    const lorac_chat_format *chat, lorac_tokenized *out);
void lorac_tokenized_free(lorac_tokenized *t);

/* A batch of B examples, in one of two layouts:
 *   padded (lorac_batch_make): B rows of T tokens, each example followed by
 *     pad tokens up to the longest (mask 0 there); N = B*T;
 *   packed (lorac_batch_make_packed): the examples end to end in one stream
 *     of N = offs[B] tokens, example i at offs[i] .. offs[i+1]-1; no padding,
 *     mask unused (lorac_model_forward_packed).
 * ids and targets have N entries either way. */
typedef struct lorac_batch {
    int B, T;          /* examples; padded length (packed: the longest example) */
    int N;             /* token rows: B*T padded, offs[B] packed */
    int packed;
    int *ids;          /* [N] */
    uint8_t *mask;     /* [N] 1 = real token (padded only) */
    int *targets;      /* [N] next-token targets (LM), -1 = ignored */
    int *labels;       /* [B] class ids (CLS) */
    int *offs;         /* [B+1] first row of each example (packed only) */
    int cap;           /* allocated rows */
    int capB;
} lorac_batch;

/* The loss terms example ex of t contributes: 1 for classification, else
 * the tokens whose next token is a target (lorac_batch_make's targets >= 0):
 * len - 1, or for instruction data the masked tokens after the first. */
int lorac_example_terms(const lorac_tokenized *t, int ex, lorac_task task);

/* Fill `b` with examples order[start .. start+count) of t. */
lorac_status lorac_batch_make(lorac_batch *b, const lorac_tokenized *t, const int *order, int start, int count,
                              lorac_task task);
/* The same examples packed (see lorac_batch): the loss terms, and so the
 * loss and its gradients, are those of the padded batch; the rows are only
 * the real tokens. An example of no token (an empty text without BOS / EOS)
 * gets one pad token that predicts nothing, so every sequence has a row. */
lorac_status lorac_batch_make_packed(lorac_batch *b, const lorac_tokenized *t, const int *order, int start, int count,
                                     lorac_task task);
void lorac_batch_free(lorac_batch *b);

/* The model's forward over b, padded or packed as b is (lorac_model_forward
 * / lorac_model_forward_packed), and the backward of that forward. */
lorac_status lorac_batch_forward(lorac_model *m, const lorac_batch *b, lorac_fwd_mode mode);
void lorac_batch_backward(lorac_model *m, const lorac_batch *b, lorac_fwd_mode mode);

#endif
