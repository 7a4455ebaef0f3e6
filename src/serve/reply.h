/* reply.h - the JSON bodies lorac serve answers with, in OpenAI's shapes:
 *
 *   error             {"error": {"message", "type", "param", "code"}}
 *   text_completion   {"id": "cmpl-..", "object": "text_completion", "created", "model",
 *                      "choices": [{"index": 0, "text", "logprobs": null, "finish_reason"}],
 *                      "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}
 *   chat.completion   {"id": "chatcmpl-..", "object": "chat.completion", ...,
 *                      "choices": [{"index": 0, "message": {"role": "assistant", "content"},
 *                                   "logprobs": null, "finish_reason"}], "usage": {...}}
 *   stream chunks     the same with "object": "text_completion" / "chat.completion.chunk",
 *                     one choice holding the new "text" / "delta": {"content"} (the first
 *                     chat chunk "delta": {"role": "assistant", "content": ""}) and
 *                     "finish_reason": null until the last, each sent as
 *                     "data: <json>\n\n"; the stream ends with "data: [DONE]\n\n".
 * Every function returns a malloc'd NUL-terminated string (NULL when out of memory). */
#ifndef LORAC_SERVE_REPLY_H
#define LORAC_SERVE_REPLY_H

#include <stddef.h>

#include "serve/request.h"

typedef struct reply_meta {
    const char *id;       /* "cmpl-..." or "chatcmpl-..." */
    long created;
    const char *model;
    int chat;             /* chat.completion shapes */
} reply_meta;

char *reply_error(const lorac_req_error *err);
/* The whole answer: text[0..n), why it ended, token counts. */
char *reply_answer(const reply_meta *m, const char *text, size_t n, const char *finish, int n_prompt, int n_gen);
/* One server-sent event with a chunk: text[0..n) (role: the chat's opening
 * chunk; finish: the last chunk's reason, else NULL), "data: ...\n\n". */
char *reply_chunk_event(const reply_meta *m, const char *text, size_t n, int role, const char *finish);
/* An error inside a stream: "data: {"error": ...}\n\n". */
char *reply_error_event(const lorac_req_error *err);

#endif
