/* test_serve_request.c - lorac serve's request parser (serve/request.h) as a
 * pure function, over the corpus in tests/serve_requests/: each file is a
 * request body, MANIFEST.tsv says which endpoint it goes to, the HTTP status
 * it must get (0 = accepted) and the field the error must name. Every error
 * must also carry a message, a type and a code (OpenAI's error object).
 * Then: a body over the size limit (413), and what accepted bodies parse to
 * (defaults, the fields read, chat messages, classification inputs). */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "serve/request.h"
#include "testutil.h"

static int known(const char *name, void *ctx) {
    (void)ctx;
    return !strcmp(name, "base") || !strcmp(name, "sql") || !strcmp(name, "chat");
}

static const lorac_req_limits LIM = {4096, 256, known, NULL};

static lorac_req_kind kind_of(const char *s) {
    if (!strcmp(s, "chat")) return LORAC_REQ_CHAT;
    if (!strcmp(s, "classify")) return LORAC_REQ_CLASSIFY;
    if (!strcmp(s, "adapter")) return LORAC_REQ_ADAPTER_LOAD;
    return LORAC_REQ_COMPLETION;
}

static int parse_file(const char *name, lorac_req_kind kind, lorac_req *r, lorac_req_error *err) {
    char path[1024], *body = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", test_src_path("tests/serve_requests"), name);
    if (lorac_read_file(path, 1 << 20, &body, &len) != LORAC_OK) {
        fprintf(stderr, "test_serve_request: cannot read %s\n", path);
        exit(2);
    }
    int st = lorac_req_parse(kind, body, len, &LIM, r, err);
    free(body);
    return st;
}

static int corpus(void) {
    char path[1024], *man = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s", test_src_path("tests/serve_requests/MANIFEST.tsv"));
    if (lorac_read_file(path, 1 << 20, &man, &len) != LORAC_OK) {
        fprintf(stderr, "test_serve_request: cannot read %s\n", path);
        exit(2);
    }
    int n = 0;
    for (char *line = strtok(man, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char file[256], ep[32], param[64];
        int want;
        if (sscanf(line, "%255s %31s %d %63s", file, ep, &want, param) != 4) {
            fprintf(stderr, "test_serve_request: bad manifest line '%s'\n", line);
            exit(2);
        }
        lorac_req r;
        lorac_req_error err;
        int got = parse_file(file, kind_of(ep), &r, &err);
        CHECK(got == want, "%s: status %d, want %d (%s)", file, got, want, got ? err.message : "accepted");
        if (got) {
            CHECK(got == err.status && err.message[0] && err.type && err.code, "%s: incomplete error object", file);
            CHECK(!strcmp(param, "-") || !strcmp(err.param, param), "%s: param '%s', want '%s' (%s)", file, err.param, param,
                  err.message);
            CHECK(strstr(err.message, strcmp(param, "-") ? param : "body"), "%s: the message does not name '%s': %s", file,
                  strcmp(param, "-") ? param : "body", err.message);
        }
        lorac_req_free(&r);
        n++;
    }
    free(man);
    return n;
}

static void accepted(void) {
    lorac_req r;
    lorac_req_error err;
    CHECK(parse_file("ok_completion.json", LORAC_REQ_COMPLETION, &r, &err) == 0, "%s", err.message);
    CHECK(!strcmp(r.model, "base") && !strcmp(r.prompt, "Hello") && r.max_tokens == 8 && r.temperature == 0 &&
          r.top_p == 1 && r.seed == 42 && !r.stream && r.n_stop == 0, "ok_completion fields");
    lorac_req_free(&r);
    CHECK(parse_file("ok_completion_array.json", LORAC_REQ_COMPLETION, &r, &err) == 0, "%s", err.message);
    CHECK(!strcmp(r.model, "sql") && !strcmp(r.prompt, "Hello") && r.max_tokens == 16 && r.temperature == 1 && r.stream &&
          r.seed == 7 && r.n_stop == 2 && !strcmp(r.stop[0], "\n") && !strcmp(r.stop[1], "END"),
          "ok_completion_array: OpenAI's defaults (max_tokens 16, temperature 1), stream, stop, seed");
    lorac_req_free(&r);
    CHECK(parse_file("ok_chat.json", LORAC_REQ_CHAT, &r, &err) == 0, "%s", err.message);
    CHECK(r.n_msgs == 2 && !strcmp(r.msgs[0].role, "system") && !strcmp(r.msgs[1].content, "Hi") && r.max_tokens == 4,
          "ok_chat: messages and max_completion_tokens");
    lorac_req_free(&r);
    CHECK(parse_file("ok_chat_parts.json", LORAC_REQ_CHAT, &r, &err) == 0, "%s", err.message);
    CHECK(r.n_msgs == 1 && !strcmp(r.msgs[0].content, "Hi there") && r.max_tokens == 256,
          "ok_chat_parts: text parts joined; chat's default max_tokens is the limit");
    lorac_req_free(&r);
    CHECK(parse_file("ok_classify.json", LORAC_REQ_CLASSIFY, &r, &err) == 0, "%s", err.message);
    CHECK(r.n_inputs == 2 && !strcmp(r.inputs[1], "b"), "ok_classify inputs");
    lorac_req_free(&r);
    CHECK(parse_file("ok_adapter.json", LORAC_REQ_ADAPTER_LOAD, &r, &err) == 0, "%s", err.message);
    CHECK(!strcmp(r.name, "new-1.b") && !strcmp(r.path, "/tmp/x"), "ok_adapter");
    lorac_req_free(&r);
    CHECK(parse_file("ok_unicode.json", LORAC_REQ_COMPLETION, &r, &err) == 0, "%s", err.message);
    CHECK(!strcmp(r.prompt, "caf\xc3\xa9 \xf0\x9f\x98\x80 na\xc3\xafve"), "escapes and UTF-8 decoded: '%s'", r.prompt);
    lorac_req_free(&r);
}

/* a body over the limit: 413 before any parsing; one at the limit parses */
static void sizes(void) {
    const size_t n = LIM.max_body + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    const char *js = "{\"model\": \"base\", \"prompt\": \"x\"}";
    memcpy(big, js, strlen(js));
    lorac_req r;
    lorac_req_error err;
    CHECK(lorac_req_parse(LORAC_REQ_COMPLETION, big, n, &LIM, &r, &err) == 413 && !strcmp(err.code, "body_too_large"),
          "huge body: %d %s", err.status, err.message);
    lorac_req_free(&r);
    CHECK(lorac_req_parse(LORAC_REQ_COMPLETION, big, n - 1, &LIM, &r, &err) == 0, "a body at the limit: %s", err.message);
    lorac_req_free(&r);
    free(big);
    CHECK(lorac_req_parse(LORAC_REQ_COMPLETION, "", 0, &LIM, &r, &err) == 400, "empty body");
    lorac_req_free(&r);
}

int main(void) {
    int n = corpus();
    CHECK(n >= 50, "the corpus has %d entries", n);
    accepted();
    sizes();
    CHECK(lorac_req_name_ok("a.b-c_1") && !lorac_req_name_ok("base") && !lorac_req_name_ok("") && !lorac_req_name_ok("a b"),
          "adapter names");
    return test_summary("test_serve_request");
}
