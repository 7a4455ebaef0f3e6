/* serve.c - lorac_serve_run: engine + HTTP server, until SIGTERM / SIGINT
 * (see lorac_serve.h).
 *
 * Shutdown: the signals are blocked in every thread (the mask is set
 * before any thread starts, and threads inherit it) and this thread takes
 * the first with sigwait, so no handler runs in signal context. Then: no
 * new connections (quiesce), new requests on open connections get 503,
 * queued and running jobs run to their end (lorac_engine_drain), their
 * answers are sent (up to 30 s), and everything is freed. */
#include "lorac_serve.h"

#include <signal.h>
#include <stdio.h>

#include "core/log.h"
#include "core/status.h"
#include "serve/engine.h"
#include "serve/http.h"

void lorac_serve_opts_default(lorac_serve_opts *o) {
    *o = (lorac_serve_opts){0};
    o->host = "127.0.0.1";
    o->port = 8080;
    o->max_body = (size_t)1 << 20;
    o->max_prompt = 2048;
    o->max_tokens = 512;
    o->max_seqs = 8;
    o->max_queue = 64;
    o->timeout_s = 60;
}

lorac_status lorac_serve_run(const lorac_serve_opts *o) {
    if (!o || !o->model) return lorac_fail(LORAC_ERR_ARG, "lorac_serve_run: no model given; hint: --model PATH");
    if (!o->host) return lorac_fail(LORAC_ERR_ARG, "lorac_serve_run: no host given");
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    lorac_engine *e = NULL;
    lorac_http *h = NULL;
    int port = 0;
    lorac_status st = lorac_engine_create(o, &e);
    if (st == LORAC_OK) st = lorac_http_start(e, o, &h, &port);
    if (st == LORAC_OK) {
        if (o->ready_fn) o->ready_fn(port, o->ready_user);
        lorac_log(0, "lorac serve: listening on http://%s:%d", o->host, port);
        int sig = 0;
        sigwait(&sigs, &sig);
        lorac_log(0, "lorac serve: %s: finishing the requests in flight", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        lorac_http_quiesce(h);
        lorac_engine_drain(e);
        lorac_http_stop(h, 30);
    }
    lorac_engine_free(e);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return st;
}
