/* request.h - the JSON bodies `lorac serve` accepts, parsed and checked by
 * one pure function: bytes in, a request struct or a 4xx error out.
 *
 * The bodies are OpenAI's (https://platform.openai.com/docs/api-reference):
 *   POST /v1/completions       {model, prompt, max_tokens, temperature, top_p, seed, stream, stop, n}
 *   POST /v1/chat/completions  {model, messages: [{role, content}], max_tokens | max_completion_tokens, ...}
 * and lorac's own:
 *   POST /v1/classify          {model, input: "text" | ["text", ...]}
 *   POST /v1/adapters          {name, path}
 * plus `top_k` (an extension llama.cpp's and vLLM's servers take too).
 * Unknown fields are ignored, as OpenAI's API ignores them; fields lorac
 * cannot honour (n > 1, logprobs, echo, best_of, suffix, tools, logit_bias)
 * are a 400 naming the field, never silently dropped.
 *
 * Errors carry what OpenAI's error object carries ({"error": {"message",
 * "type", "param", "code"}}): the HTTP status (400 malformed or invalid,
 * 404 unknown model, 413 body too large), a message naming the field and
 * a hint, the field (param), and a short machine code.
 *
 * Defaults follow OpenAI: temperature 1, top_p 1, max_tokens 16 for
 * completions and the server's limit for chat; seed 42 when none is given
 * (so a request repeated gives the same answer, as lorac generate does).
 *
 * Ownership: lorac_req_parse fills *out with malloc'd strings that
 * lorac_req_free releases (also after a failed parse). */
#ifndef LORAC_SERVE_REQUEST_H
#define LORAC_SERVE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "io/chat.h"

typedef enum lorac_req_kind {
    LORAC_REQ_COMPLETION = 0,
    LORAC_REQ_CHAT,
    LORAC_REQ_CLASSIFY,
    LORAC_REQ_ADAPTER_LOAD,
} lorac_req_kind;

#define LORAC_REQ_MAX_STOP 4     /* OpenAI's limit on `stop` strings */
#define LORAC_REQ_MAX_INPUTS 64  /* texts in one classification request */

typedef struct lorac_req {
    lorac_req_kind kind;
    char model[64];          /* "base" or an adapter's name ("" for adapter loads) */
    char *prompt;            /* completion: the prompt text */
    lorac_chat_msg *msgs;    /* chat: the conversation */
    int n_msgs;
    char **inputs;           /* classify: the texts */
    int n_inputs;
    int max_tokens;
    float temperature, top_p;
    int top_k;
    uint64_t seed;
    int stream;
    char *stop[LORAC_REQ_MAX_STOP];
    int n_stop;
    char name[64];           /* adapter load: the new adapter's name */
    char *path;              /* ... and its directory */
} lorac_req;

typedef struct lorac_req_limits {
    size_t max_body;         /* bytes of a body (413 above) */
    int max_tokens;          /* largest max_tokens (and chat's default) */
    /* 1 when `name` names a loaded model ("base" or an adapter); NULL: any name */
    int (*model_known)(const char *name, void *ctx);
    void *ctx;
} lorac_req_limits;

typedef struct lorac_req_error {
    int status;              /* HTTP status: 400, 404, 413 */
    char message[384];
    const char *type;        /* "invalid_request_error" */
    char param[48];          /* the field at fault ("" when none) */
    const char *code;        /* "invalid_json", "model_not_found", ... */
} lorac_req_error;

/* Parse body[0..len) as a request of `kind`. Returns 0 with *out filled, or
 * the HTTP status of the error (err filled, *out holds nothing to use but
 * may be passed to lorac_req_free). Never reads past len; body needs no NUL. */
int lorac_req_parse(lorac_req_kind kind, const char *body, size_t len, const lorac_req_limits *lim, lorac_req *out,
                    lorac_req_error *err);
void lorac_req_free(lorac_req *r);

/* Fill err (and return status): for errors found outside the parser, in
 * the same shape. */
int lorac_req_fail(lorac_req_error *err, int status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* 1 when name may name an adapter: 1..63 of [A-Za-z0-9._-], not "base" or "none". */
int lorac_req_name_ok(const char *name);

#endif
