/* engine.h - the one thread that owns the model, and the jobs it runs.
 *
 * HTTP threads turn requests into jobs and submit them; the engine thread
 * runs them:
 *  - generation (completion / chat) by continuous batching: each step, the
 *    running sequences, each with its own adapter, get one new token each
 *    from one batched forward (engine_step.c); a new sequence joins the
 *    batch as soon as a slot is free (its prompt is prefilled in the step
 *    it joins), a finished or abandoned one leaves at once;
 *  - classification, adapter loading and unloading, between steps.
 * Limits: at most max_seqs sequences run, at most max_queue jobs wait
 * (submit answers 429 beyond), a prompt of at most max_prompt tokens, and
 * prompt + max_tokens within the context.
 *
 * Threads and ownership: every field of a job below "guarded" is read and
 * written under the engine's mutex (lorac_engine_lock); the HTTP side
 * waits for news with lorac_job_wait. A job is reference-counted: the
 * submitter holds one reference, the engine one while the job is queued or
 * running; lorac_job_release drops one, the last frees it. A submitter
 * whose client left calls lorac_job_cancel: the engine drops the sequence
 * (and its cache slot) before its next step. */
#ifndef LORAC_SERVE_ENGINE_H
#define LORAC_SERVE_ENGINE_H

#include <pthread.h>
#include <stddef.h>

#include "lorac_serve.h"
#include "serve/request.h"

typedef struct lorac_engine lorac_engine;

typedef enum lorac_job_kind {
    LORAC_JOB_GENERATE = 0,  /* completion or chat (req.kind says which) */
    LORAC_JOB_CLASSIFY,
    LORAC_JOB_LOAD,          /* req.name, req.path */
    LORAC_JOB_UNLOAD,        /* req.name */
} lorac_job_kind;

typedef struct lorac_job {
    lorac_job_kind kind;
    lorac_req req;           /* owned; read-only once submitted */
    double t_submit;
    /* ---- guarded by the engine's mutex ---- */
    int refs;
    int started;             /* generation: the prompt was accepted (its tokens counted) */
    int done;                /* finished: no more output */
    int cancelled;           /* the client left */
    lorac_req_error err;     /* err.status != 0: failed with this error */
    char *text;              /* generation: the answer so far (UTF-8) */
    size_t len, cap;         /* bytes in text; ... */
    size_t ready;            /* ... of which text[0..ready) are final (safe to send) */
    int n_prompt, n_gen;     /* tokens */
    const char *finish;      /* "stop" or "length" when done */
    char *result;            /* classify / load / unload: the JSON answer (malloc'd) */
    pthread_cond_t cv;       /* signalled on news */
    struct lorac_job *next;  /* the engine's queue */
    /* ---- the engine thread's own ---- */
    void *seq;               /* running sequence state (engine_step.c) */
} lorac_job;

/* Load the model, tokenizer, chat format and adapters o names, then start
 * the engine thread. */
lorac_status lorac_engine_create(const lorac_serve_opts *o, lorac_engine **out);
/* Stop the thread (jobs still queued or running end with a 503) and free
 * everything. Accepts NULL. */
void lorac_engine_free(lorac_engine *e);

/* A new job of `kind` holding req (moved in: *req is zeroed). One reference. */
lorac_job *lorac_job_new(lorac_job_kind kind, lorac_req *req);
/* Queue the job. 0, or the HTTP status of a refusal with err filled: 429
 * (queue full), 503 (draining). */
int lorac_engine_submit(lorac_engine *e, lorac_job *j, lorac_req_error *err);
/* Wait (up to timeout_ms) until the job is done or has more than `ready`
 * final bytes / has started (when started == 0). Returns with the mutex
 * HELD: read the guarded fields, then lorac_engine_unlock. */
void lorac_job_wait(lorac_engine *e, lorac_job *j, size_t ready, int started, int timeout_ms);
void lorac_job_cancel(lorac_engine *e, lorac_job *j);
void lorac_job_release(lorac_engine *e, lorac_job *j);

void lorac_engine_lock(lorac_engine *e);
void lorac_engine_unlock(lorac_engine *e);

/* 1 when name is "base" or a loaded adapter (for lorac_req_limits.model_known). */
int lorac_engine_model_known(const char *name, void *engine);
/* The /v1/models list as JSON (malloc'd). */
char *lorac_engine_models_json(lorac_engine *e);
/* Prometheus text exposition of the counters (malloc'd). */
char *lorac_engine_metrics(lorac_engine *e);
/* Count a finished HTTP request: endpoint (e.g. "/v1/completions"), status, seconds. */
void lorac_engine_count_request(lorac_engine *e, const char *endpoint, int status, double seconds);
void lorac_engine_count_disconnect(lorac_engine *e);

/* 1 once lorac_engine_drain began. */
int lorac_engine_draining(lorac_engine *e);
/* Append s[0..n) to a malloc'd growing NUL-terminated buffer; 0 on success. */
int lorac_serve_buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n);
/* Refuse new jobs (503) from now on; wait until none is queued or running. */
void lorac_engine_drain(lorac_engine *e);
/* The parser's limits (max_body, max_tokens, model_known). */
void lorac_engine_req_limits(lorac_engine *e, lorac_req_limits *lim);
/* Created (UNIX seconds) of the server, for the "created" fields. */
long lorac_engine_created(const lorac_engine *e);

#endif
