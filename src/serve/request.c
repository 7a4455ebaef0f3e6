/* request.c - parsing and checking request bodies (see request.h).
 *
 * Order of checks: size, UTF-8 of the raw bytes, JSON syntax, the top-level
 * object, then each field in the order the docs list them. The first fault
 * wins; every message names the field and says what was expected. */
#include "serve/request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/tok_internal.h" /* tok_utf8_valid */

int lorac_req_fail(lorac_req_error *err, int status, const char *param, const char *code, const char *fmt, ...) {
    err->status = status;
    err->type = "invalid_request_error";
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return status;
}

int lorac_req_name_ok(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > 63 || !strcmp(name, "base") || !strcmp(name, "none")) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

void lorac_req_free(lorac_req *r) {
    free(r->prompt);
    lorac_chat_msgs_free(r->msgs, r->n_msgs);
    for (int i = 0; i < r->n_inputs; i++) free(r->inputs[i]);
    free(r->inputs);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->path);
    memset(r, 0, sizeof *r);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static int no_memory(lorac_req_error *err) {
    err->status = 500;
    err->type = "server_error";
    err->param[0] = 0;
    err->code = "out_of_memory";
    snprintf(err->message, sizeof err->message, "out of memory while reading the request");
    return 500;
}

/* A JSON string field; NUL inside (from \u0000) or ill-formed UTF-8 (from a
 * lone surrogate escape) is refused. *s NULL when absent. */
static int get_string(const cJSON *o, const char *key, const char *param, const char **s, lorac_req_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *s = NULL;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v) || !v->valuestring)
        return lorac_req_fail(err, 400, param, "invalid_type", "'%s' must be a string", param);
    if (!tok_utf8_valid(v->valuestring, strlen(v->valuestring)))
        return lorac_req_fail(err, 400, param, "invalid_utf8", "'%s' is not valid UTF-8 text", param);
    *s = v->valuestring;
    return 0;
}

/* An integer field in [lo, hi]; *present 0 when absent or null. */
static int get_int(const cJSON *o, const char *key, double lo, double hi, double *out, int *present, lorac_req_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *present = 0;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || !isfinite(v->valuedouble))
        return lorac_req_fail(err, 400, key, "invalid_type", "'%s' must be an integer", key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return lorac_req_fail(err, 400, key, "invalid_value", "'%s' is %.0f; expected %.0f to %.0f", key, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    *present = 1;
    return 0;
}

static int get_num(const cJSON *o, const char *key, double lo, double hi, float *out, lorac_req_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return lorac_req_fail(err, 400, key, "invalid_type", "'%s' must be a number", key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return lorac_req_fail(err, 400, key, "invalid_value", "'%s' is %g; expected %g to %g", key, v->valuedouble, lo, hi);
    *out = (float)v->valuedouble;
    return 0;
}

/* OpenAI fields lorac cannot honour: present and not null / false / 1 (n) is a 400. */
static int refuse_unsupported(const cJSON *o, lorac_req_error *err) {
    static const char *const keys[] = {"logprobs", "top_logprobs", "echo", "best_of", "suffix", "tools", "functions",
                                       "logit_bias", "response_format", "tool_choice"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (v && !cJSON_IsNull(v) && !cJSON_IsFalse(v) && !(cJSON_IsNumber(v) && !strcmp(keys[i], "best_of") && v->valuedouble == 1))
            return lorac_req_fail(err, 400, keys[i], "unsupported_parameter", "'%s' is not supported by lorac serve; hint: "
                                  "leave it out", keys[i]);
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "n");
    if (n && !cJSON_IsNull(n) && !(cJSON_IsNumber(n) && n->valuedouble == 1))
        return lorac_req_fail(err, 400, "n", "unsupported_parameter", "'n' must be 1 (one choice per request); hint: send "
                              "several requests");
    return 0;
}

static int parse_model(const cJSON *o, const lorac_req_limits *lim, lorac_req *r, lorac_req_error *err) {
    const char *s;
    int e = get_string(o, "model", "model", &s, err);
    if (e) return e;
    if (!s) return lorac_req_fail(err, 400, "model", "missing_field", "'model' is required: \"base\" or a loaded adapter's "
                                  "name; hint: GET /v1/models lists them");
    if (strlen(s) >= sizeof r->model || (lim->model_known && !lim->model_known(s, lim->ctx)))
        return lorac_req_fail(err, 404, "model", "model_not_found", "the model '%.64s' does not exist; hint: GET /v1/models "
                              "lists \"base\" and the loaded adapters", s);
    snprintf(r->model, sizeof r->model, "%s", s);
    return 0;
}

/* stop: a string or an array of up to 4 non-empty strings */
static int parse_stop(const cJSON *o, lorac_req *r, lorac_req_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "stop");
    if (!v || cJSON_IsNull(v)) return 0;
    const cJSON *one[1] = {v};
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
    if (!cJSON_IsArray(v) && !cJSON_IsString(v))
        return lorac_req_fail(err, 400, "stop", "invalid_type", "'stop' must be a string or an array of strings");
    if (n > LORAC_REQ_MAX_STOP)
        return lorac_req_fail(err, 400, "stop", "invalid_value", "'stop' has %d strings; at most %d", n, LORAC_REQ_MAX_STOP);
    for (int i = 0; i < n; i++) {
        const cJSON *s = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, i) : one[0];
        if (!cJSON_IsString(s) || !s->valuestring || !s->valuestring[0] ||
            !tok_utf8_valid(s->valuestring, strlen(s->valuestring)))
            return lorac_req_fail(err, 400, "stop", "invalid_value", "'stop'[%d] must be a non-empty UTF-8 string", i);
        if (!(r->stop[r->n_stop] = dup_str(s->valuestring))) return no_memory(err);
        r->n_stop++;
    }
    return 0;
}

/* The sampling fields shared by completions and chat. */
static int parse_sampling(const cJSON *o, const lorac_req_limits *lim, int chat, lorac_req *r, lorac_req_error *err) {
    int e, have;
    double d;
    r->max_tokens = chat ? lim->max_tokens : (lim->max_tokens < 16 ? lim->max_tokens : 16);
    const char *mt = chat && cJSON_GetObjectItemCaseSensitive(o, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if ((e = get_int(o, mt, 1, lim->max_tokens, &d, &have, err))) return e;
    if (have) r->max_tokens = (int)d;
    r->temperature = 1.0f;
    r->top_p = 1.0f;
    if ((e = get_num(o, "temperature", 0, 2, &r->temperature, err))) return e;
    if ((e = get_num(o, "top_p", 0, 1, &r->top_p, err))) return e;
    if (r->top_p <= 0) return lorac_req_fail(err, 400, "top_p", "invalid_value", "'top_p' must be above 0 (1 = off)");
    if ((e = get_int(o, "top_k", 0, 1e9, &d, &have, err))) return e;
    if (have) r->top_k = (int)d;
    r->seed = 42;
    if ((e = get_int(o, "seed", -9007199254740991.0, 9007199254740991.0, &d, &have, err))) return e;
    if (have) r->seed = (uint64_t)(int64_t)d;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "stream");
    if (st && !cJSON_IsNull(st) && !cJSON_IsBool(st))
        return lorac_req_fail(err, 400, "stream", "invalid_type", "'stream' must be true or false");
    r->stream = cJSON_IsTrue(st);
    if ((e = refuse_unsupported(o, err))) return e;
    return parse_stop(o, r, err);
}

static int parse_completion(const cJSON *o, lorac_req *r, lorac_req_error *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    if (!p || cJSON_IsNull(p))
        return lorac_req_fail(err, 400, "prompt", "missing_field", "'prompt' is required (a string)");
    if (cJSON_IsArray(p)) { /* ["one prompt"]: what clients send for a batch of one */
        if (cJSON_GetArraySize(p) != 1 || !cJSON_IsString(cJSON_GetArrayItem(p, 0)))
            return lorac_req_fail(err, 400, "prompt", "invalid_value", "'prompt' must be a string or an array of one string; "
                                  "hint: send one request per prompt");
        p = cJSON_GetArrayItem(p, 0);
    }
    if (!cJSON_IsString(p) || !p->valuestring)
        return lorac_req_fail(err, 400, "prompt", "invalid_type", "'prompt' must be a string");
    if (!tok_utf8_valid(p->valuestring, strlen(p->valuestring)))
        return lorac_req_fail(err, 400, "prompt", "invalid_utf8", "'prompt' is not valid UTF-8 text");
    if (!(r->prompt = dup_str(p->valuestring))) return no_memory(err);
    return 0;
}

/* content: a string, or an array of {"type": "text", "text": ...} parts (joined) */
static int message_content(const cJSON *c, int i, char **out, lorac_req_error *err) {
    if (cJSON_IsString(c) && c->valuestring) {
        if (!tok_utf8_valid(c->valuestring, strlen(c->valuestring)))
            return lorac_req_fail(err, 400, "messages", "invalid_utf8", "'messages'[%d].content is not valid UTF-8 text", i);
        return (*out = dup_str(c->valuestring)) ? 0 : no_memory(err);
    }
    if (!cJSON_IsArray(c))
        return lorac_req_fail(err, 400, "messages", "invalid_type", "'messages'[%d].content must be a string or an array of "
                              "text parts", i);
    size_t total = 1;
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "type"), *x = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "text") || !cJSON_IsString(x) || !x->valuestring)
            return lorac_req_fail(err, 400, "messages", "invalid_value", "'messages'[%d].content: only {\"type\": \"text\", "
                                  "\"text\": ...} parts are supported", i);
        if (!tok_utf8_valid(x->valuestring, strlen(x->valuestring)))
            return lorac_req_fail(err, 400, "messages", "invalid_utf8", "'messages'[%d].content is not valid UTF-8 text", i);
        total += strlen(x->valuestring);
    }
    if (!(*out = malloc(total))) return no_memory(err);
    (*out)[0] = 0;
    cJSON_ArrayForEach(part, c) strcat(*out, cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring);
    return 0;
}

static int parse_chat(const cJSON *o, lorac_req *r, lorac_req_error *err) {
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (!ms || cJSON_IsNull(ms)) return lorac_req_fail(err, 400, "messages", "missing_field", "'messages' is required");
    if (!cJSON_IsArray(ms)) return lorac_req_fail(err, 400, "messages", "invalid_type", "'messages' must be an array");
    int n = cJSON_GetArraySize(ms);
    if (n == 0)
        return lorac_req_fail(err, 400, "messages", "invalid_value", "'messages' is empty; hint: at least one user message");
    if (!(r->msgs = calloc((size_t)n, sizeof *r->msgs))) return no_memory(err);
    for (int i = 0; i < n; i++) {
        const cJSON *m = cJSON_GetArrayItem(ms, i);
        if (!cJSON_IsObject(m))
            return lorac_req_fail(err, 400, "messages", "invalid_type", "'messages'[%d] must be an object {role, content}", i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role) || !role->valuestring)
            return lorac_req_fail(err, 400, "messages", "invalid_type", "'messages'[%d].role must be a string", i);
        const char *rs = !strcmp(role->valuestring, "developer") ? "system" : role->valuestring; /* OpenAI's newer name */
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant"))
            return lorac_req_fail(err, 400, "messages", "invalid_value", "'messages'[%d].role '%.32s' is not system, user or "
                                  "assistant", i, role->valuestring);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!c || cJSON_IsNull(c))
            return lorac_req_fail(err, 400, "messages", "missing_field", "'messages'[%d].content is required", i);
        if (!(r->msgs[i].role = dup_str(rs))) return no_memory(err);
        r->n_msgs = i + 1;
        int e = message_content(c, i, &r->msgs[i].content, err);
        if (e) return e;
    }
    if (strcmp(r->msgs[n - 1].role, "user"))
        return lorac_req_fail(err, 400, "messages", "invalid_value", "'messages': the last message is '%s'; hint: end with a user message "
                              "for the assistant to answer", r->msgs[n - 1].role);
    if (lorac_chat_check(NULL, r->msgs, r->n_msgs, "messages") != LORAC_OK)
        return lorac_req_fail(err, 400, "messages", "invalid_value", "%s", lorac_last_error());
    return 0;
}

static int parse_classify(const cJSON *o, lorac_req *r, lorac_req_error *err) {
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "input");
    if (!in || cJSON_IsNull(in)) return lorac_req_fail(err, 400, "input", "missing_field", "'input' is required (a string or "
                                                       "an array of strings)");
    const int arr = cJSON_IsArray(in);
    const int n = arr ? cJSON_GetArraySize(in) : 1;
    if (!arr && !cJSON_IsString(in))
        return lorac_req_fail(err, 400, "input", "invalid_type", "'input' must be a string or an array of strings");
    if (n < 1 || n > LORAC_REQ_MAX_INPUTS)
        return lorac_req_fail(err, 400, "input", "invalid_value", "'input' has %d texts; expected 1 to %d", n, LORAC_REQ_MAX_INPUTS);
    if (!(r->inputs = calloc((size_t)n, sizeof *r->inputs))) return no_memory(err);
    for (int i = 0; i < n; i++) {
        const cJSON *s = arr ? cJSON_GetArrayItem(in, i) : in;
        if (!cJSON_IsString(s) || !s->valuestring)
            return lorac_req_fail(err, 400, "input", "invalid_type", "'input'[%d] must be a string", i);
        if (!tok_utf8_valid(s->valuestring, strlen(s->valuestring)))
            return lorac_req_fail(err, 400, "input", "invalid_utf8", "'input'[%d] is not valid UTF-8 text", i);
        if (!(r->inputs[i] = dup_str(s->valuestring))) return no_memory(err);
        r->n_inputs = i + 1;
    }
    return 0;
}

static int parse_adapter_load(const cJSON *o, lorac_req *r, lorac_req_error *err) {
    const char *name, *path;
    int e = get_string(o, "name", "name", &name, err);
    if (!e) e = get_string(o, "path", "path", &path, err);
    if (e) return e;
    if (!name || !lorac_req_name_ok(name))
        return lorac_req_fail(err, 400, "name", "invalid_value", "'name' must be 1 to 63 of A-Z a-z 0-9 . _ -, not \"base\" "
                              "or \"none\"");
    if (!path || !path[0])
        return lorac_req_fail(err, 400, "path", "missing_field", "'path' is required: the adapter's directory on the server");
    snprintf(r->name, sizeof r->name, "%s", name);
    return (r->path = dup_str(path)) ? 0 : no_memory(err);
}

/* 1 when the JSON text holds the escape \u0000 (C strings would end there). */
static int has_nul_escape(const char *b, size_t n) {
    for (size_t i = 0; i + 6 <= n; i++) {
        if (b[i] != '\\' || b[i + 1] != 'u' || memcmp(b + i + 2, "0000", 4)) continue;
        size_t k = 0; /* backslashes before: an odd count escapes this one */
        while (k < i && b[i - 1 - k] == '\\') k++;
        if (k % 2 == 0) return 1;
    }
    return 0;
}

int lorac_req_parse(lorac_req_kind kind, const char *body, size_t len, const lorac_req_limits *lim, lorac_req *out,
                    lorac_req_error *err) {
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    out->kind = kind;
    if (len > lim->max_body)
        return lorac_req_fail(err, 413, NULL, "body_too_large", "the request body is %zu bytes; the limit is %zu "
                              "(lorac serve --max-body)", len, lim->max_body);
    if (!tok_utf8_valid(body, len))
        return lorac_req_fail(err, 400, NULL, "invalid_utf8", "the request body is not valid UTF-8");
    if (has_nul_escape(body, len))
        return lorac_req_fail(err, 400, NULL, "invalid_value", "the request body holds a NUL character (\\u0000), which "
                              "text here cannot carry");
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!o) {
        size_t at = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        return lorac_req_fail(err, 400, NULL, "invalid_json", "the request body is not valid JSON (at byte %zu); hint: "
                              "send one JSON object with Content-Type: application/json", at);
    }
    while (end < body + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) end++;
    int e = 0;
    if (end != body + len) {
        e = lorac_req_fail(err, 400, NULL, "invalid_json", "the request body has bytes after its JSON object (at byte %zu)",
                           (size_t)(end - body));
    } else if (!cJSON_IsObject(o)) {
        e = lorac_req_fail(err, 400, NULL, "invalid_json", "the request body must be a JSON object");
    } else if (kind == LORAC_REQ_ADAPTER_LOAD) {
        e = parse_adapter_load(o, out, err);
    } else {
        e = parse_model(o, lim, out, err);
        if (!e && kind == LORAC_REQ_COMPLETION) e = parse_completion(o, out, err);
        if (!e && kind == LORAC_REQ_CHAT) e = parse_chat(o, out, err);
        if (!e && kind != LORAC_REQ_CLASSIFY) e = parse_sampling(o, lim, kind == LORAC_REQ_CHAT, out, err);
        if (!e && kind == LORAC_REQ_CLASSIFY) e = parse_classify(o, out, err);
    }
    cJSON_Delete(o);
    return e;
}
