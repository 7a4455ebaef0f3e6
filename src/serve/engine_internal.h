/* engine_internal.h - the engine's state, shared by engine.c (thread, queue,
 * control jobs, counters) and engine_step.c (sequences and the batched
 * step). Nothing outside src/serve/engine*.c includes it. */
#ifndef LORAC_SERVE_ENGINE_INTERNAL_H
#define LORAC_SERVE_ENGINE_INTERNAL_H

#include "io/chat.h"
#include "io/tokenizer.h"
#include "lora/adapter_set.h"
#include "models/model.h"
#include "serve/engine.h"

#define ENGINE_MAX_SEQS 256
#define ENGINE_MAX_COUNTS 64

typedef struct engine_count {
    char endpoint[40];
    int status;
    long n;
} engine_count;

struct lorac_engine {
    lorac_serve_opts o;
    lorac_model *m;
    lorac_tokenizer *tok;
    lorac_chat_format chat;
    int end_of_turn;               /* the chat format's end-of-turn token (-1: none) */
    int ctx_limit;                 /* prompt + max_tokens of one sequence at most */
    lorac_adapter_set set;         /* engine thread only (the names are mirrored below for HTTP threads) */
    void *kv;                      /* the KV cache (engine_step.c), engine thread only */
    float *logits;                 /* [max_seqs, vocab] step output, engine thread only */
    int *step_ids;                 /* a step's new tokens, [step_cap] */
    size_t step_cap;
    unsigned char slot_used[ENGINE_MAX_SEQS]; /* cache slots held by running sequences */
    long created;
    pthread_t thread;
    int thread_started;
    /* ---- guarded by mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t wake;           /* the engine: a job arrived, was cancelled, or stop */
    pthread_cond_t idle;           /* drain: the queue and the batch emptied */
    lorac_job *head, *tail;        /* queued jobs, FIFO */
    int n_queued;
    lorac_job *run[ENGINE_MAX_SEQS];
    int n_run;
    int stop, draining;
    char (*names)[64];             /* loaded adapters' names, [n_names] */
    int n_names;
    char unloading[64];            /* an adapter waiting to be unloaded ("" none): new requests for it get 404 */
    /* counters */
    engine_count counts[ENGINE_MAX_COUNTS];
    int n_counts;
    double req_seconds;
    long req_done, disconnects, prompt_tokens, gen_tokens, steps, step_rows, prefill_rows, cls_texts;
    double step_seconds;
};

/* ---- engine_step.c: sequences (called on the engine thread) ---- */
/* Make the KV cache and step buffers for o's limits. */
lorac_status engine_step_init(lorac_engine *e);
void engine_step_free(lorac_engine *e);
/* Prepare job j (a generation) to join the batch: adapter, tokens, limits.
 * Without the lock. 0, or the HTTP status of the error put in *err. */
int engine_seq_admit(lorac_engine *e, lorac_job *j, lorac_req_error *err);
/* One batched step over run[0..n) (without the lock), then, under the lock,
 * each sequence's new token appended to its job; finished jobs are marked
 * done (the caller removes them). */
lorac_status engine_step(lorac_engine *e, lorac_job **run, int n);
/* Free a sequence's state and give back its cache slot (engine thread). */
void engine_seq_free(lorac_engine *e, lorac_job *j);
/* Classify j's inputs with its adapter's head; the answer in j->result or j->err. */
void engine_classify(lorac_engine *e, lorac_job *j);

#endif
