/* lorac_serve.h - serve one base model and many LoRA adapters over HTTP,
 * with an OpenAI-compatible API (lorac serve).
 *
 *   lorac_serve_opts o;
 *   lorac_serve_opts_default(&o);
 *   o.model = "SmolLM2-135M-Instruct.Q4_1.gguf";
 *   o.adapter_names[0] = "sql"; o.adapter_dirs[0] = "runs/sql"; o.n_adapters = 1;
 *   lorac_status st = lorac_serve_run(&o);   (returns after SIGTERM / SIGINT)
 *
 * Endpoints:
 *   POST /v1/completions, /v1/chat/completions  OpenAI's bodies; "model" is "base" or
 *        an adapter's name; "stream": true answers by server-sent events in OpenAI's
 *        chunk shape, ending with "data: [DONE]"
 *   GET  /v1/models                   "base" and every loaded adapter
 *   POST /v1/classify {model, input}  an adapter with a classification head:
 *        {"data": [{"label", "index", "probabilities": {label: p}}]}
 *   POST /v1/adapters {name, path}    load an adapter directory at run time
 *   DELETE /v1/adapters/NAME          unload it (after its running requests finish)
 *   GET  /health                      {"status": "ok"}; 503 while draining
 *   GET  /metrics                     Prometheus text format
 * Errors are OpenAI's {"error": {"message", "type", "param", "code"}} with a
 * 4xx status for the client's faults (400 bad body, 404 unknown model or
 * path, 413 body too large, 429 queue full) and 5xx for the server's.
 *
 * Requests for different adapters run together: every step, one forward
 * over all running sequences computes the base once over all their rows and
 * adds each sequence's own adapter on its rows (continuous batching over a
 * KV cache). Greedy answers equal lorac generate's with that adapter alone.
 *
 * Threads: lorac_serve_run blocks SIGTERM and SIGINT in the calling thread
 * (the threads it starts inherit that) and waits for one of them; then it
 * stops accepting connections, lets the requests in flight finish, and
 * returns LORAC_OK. Call it from the main thread, once at a time.
 * The server binds to `host` (127.0.0.1 by default): adapters are loaded
 * from paths on the server, so expose it only to clients you trust. */
#ifndef LORAC_SERVE_H
#define LORAC_SERVE_H

#include <stddef.h>

#include "lorac.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LORAC_SERVE_MAX_ADAPTERS 64

typedef struct lorac_serve_opts {
    const char *model;           /* Hugging Face directory or .gguf file (required) */
    const char *tokenizer;       /* NULL: the model's */
    const char *adapter_names[LORAC_SERVE_MAX_ADAPTERS];
    const char *adapter_dirs[LORAC_SERVE_MAX_ADAPTERS];
    int n_adapters;              /* loaded at start */
    const char *host;            /* "127.0.0.1" */
    int port;                    /* 8080; 0 = any free port (see ready_fn) */
    int threads;                 /* compute threads; 0 = OMP_NUM_THREADS or all cores */
    size_t max_body;             /* request body bytes (1 MiB) */
    int max_prompt;              /* prompt tokens (2048) */
    int max_tokens;              /* max_tokens of one request (512) */
    int max_seqs;                /* sequences decoding together (8) */
    int max_queue;               /* requests waiting for a slot (64) */
    int timeout_s;               /* an idle connection is closed after this (60) */
    /* Called once the server listens, with the port it got; NULL: a line on stderr. */
    void (*ready_fn)(int port, void *user);
    void *ready_user;
    /* The base's weights: "auto" (NULL: a .gguf keeps its own GGML blocks,
     * an untied lm_head's too, as lorac_llm_opts' LORAC_BASE_AUTO; a
     * directory loads fp32), "fp32" (a .gguf dequantized) or "gguf". A
     * decoding step streams the whole base, so kept 4-bit blocks make it
     * several times faster than fp32; adapters work over either. */
    const char *base;
} lorac_serve_opts;

LORAC_API void lorac_serve_opts_default(lorac_serve_opts *o);

/* Load, listen, serve until SIGTERM / SIGINT, drain, free. A failure to
 * load or to listen returns its status with lorac_last_error() set. */
LORAC_API lorac_status lorac_serve_run(const lorac_serve_opts *o);

#ifdef __cplusplus
}
#endif
#endif
