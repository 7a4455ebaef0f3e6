/* harness_serve.c - fuzz entry point for lorac serve's request parser
 * (src/serve/request.c): lorac_req_parse is a pure function of the body
 * bytes, so the input goes to it directly, no file written.
 *
 * Input: one selector byte (low two bits: completion, chat, classify,
 * adapter load), then the body. The limits are small (max_body 64 KiB,
 * max_tokens 512) and the models "base" and "a" are known. An accepted
 * request is walked (every string read) so a bad pointer shows up under
 * the sanitizers; errors must come with a status, message, type and code. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "serve/request.h"

static int known(const char *name, void *ctx) {
    (void)ctx;
    return !strcmp(name, "base") || !strcmp(name, "a");
}

int lorac_fuzz_serve_request(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const lorac_req_kind kinds[4] = {LORAC_REQ_COMPLETION, LORAC_REQ_CHAT, LORAC_REQ_CLASSIFY, LORAC_REQ_ADAPTER_LOAD};
    const lorac_req_limits lim = {(size_t)64 << 10, 512, known, NULL};
    lorac_req r;
    lorac_req_error err;
    int st = lorac_req_parse(kinds[data[0] & 3], (const char *)data + 1, size - 1, &lim, &r, &err);
    if (st) {
        if (st != err.status || !err.message[0] || !err.type || !err.code || st < 400 || st > 500) abort();
    } else {
        size_t sum = strlen(r.model) + strlen(r.name);
        if (r.prompt) sum += strlen(r.prompt);
        if (r.path) sum += strlen(r.path);
        for (int i = 0; i < r.n_msgs; i++) sum += strlen(r.msgs[i].role) + strlen(r.msgs[i].content);
        for (int i = 0; i < r.n_inputs; i++) sum += strlen(r.inputs[i]);
        for (int i = 0; i < r.n_stop; i++) sum += strlen(r.stop[i]);
        if (r.max_tokens < 0 || r.max_tokens > 512 || sum == (size_t)-1) abort();
    }
    lorac_req_free(&r);
    return 0;
}
