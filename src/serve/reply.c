/* reply.c - OpenAI-shaped answers (see reply.h), written with cJSON. */
#include "serve/reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static char *print_free(cJSON *o) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

static cJSON *error_object(const lorac_req_error *err) {
    cJSON *o = cJSON_CreateObject(), *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "message", err->message);
    cJSON_AddStringToObject(e, "type", err->type ? err->type : "invalid_request_error");
    if (err->param[0]) cJSON_AddStringToObject(e, "param", err->param);
    else cJSON_AddNullToObject(e, "param");
    if (err->code) cJSON_AddStringToObject(e, "code", err->code);
    else cJSON_AddNullToObject(e, "code");
    cJSON_AddItemToObject(o, "error", e);
    return o;
}

char *reply_error(const lorac_req_error *err) { return print_free(error_object(err)); }

/* A string item from bytes that need not end with NUL. */
static cJSON *string_n(const char *s, size_t n) {
    char *t = malloc(n + 1);
    if (!t) return NULL;
    memcpy(t, s, n);
    t[n] = 0;
    cJSON *o = cJSON_CreateString(t);
    free(t);
    return o;
}

static cJSON *head(const reply_meta *m, const char *object) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)m->created);
    cJSON_AddStringToObject(o, "model", m->model);
    cJSON_AddStringToObject(o, "system_fingerprint", "lorac-" LORAC_VERSION);
    return o;
}

/* choices: [{"index": 0, <the text>, "logprobs": null, "finish_reason": finish}] */
static void add_choice(cJSON *o, const reply_meta *m, const char *key, cJSON *text, const char *finish) {
    cJSON *choices = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON_AddItemToObject(c, key, text);
    cJSON_AddNullToObject(c, "logprobs");
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(choices, c);
    (void)m;
}

char *reply_answer(const reply_meta *m, const char *text, size_t n, const char *finish, int n_prompt, int n_gen) {
    cJSON *o = head(m, m->chat ? "chat.completion" : "text_completion");
    if (m->chat) {
        cJSON *msg = cJSON_CreateObject();
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddItemToObject(msg, "content", string_n(text, n));
        add_choice(o, m, "message", msg, finish);
    } else {
        add_choice(o, m, "text", string_n(text, n), finish);
    }
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", n_prompt + n_gen);
    return print_free(o);
}

static char *event(char *json) {
    if (!json) return NULL;
    size_t n = strlen(json);
    char *s = malloc(n + 9);
    if (s) snprintf(s, n + 9, "data: %s\n\n", json);
    free(json);
    return s;
}

char *reply_chunk_event(const reply_meta *m, const char *text, size_t n, int role, const char *finish) {
    cJSON *o = head(m, m->chat ? "chat.completion.chunk" : "text_completion");
    if (m->chat) {
        cJSON *d = cJSON_CreateObject();
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (n || role) cJSON_AddItemToObject(d, "content", string_n(text, n));
        add_choice(o, m, "delta", d, finish);
    } else {
        add_choice(o, m, "text", string_n(text, n), finish);
    }
    return event(print_free(o));
}

char *reply_error_event(const lorac_req_error *err) { return event(reply_error(err)); }
