/* http.c - lorac serve's HTTP layer on GNU libmicrohttpd (see lorac_serve.h
 * for the endpoints).
 *
 * One thread per connection (MHD_USE_THREAD_PER_CONNECTION): a request's
 * handler may block waiting for its job, and a stream's reader blocks
 * until the next tokens are final. While it waits, it peeks at the socket
 * every 100 ms: a client that closed its end has its job cancelled, which
 * frees the sequence's slot before the engine's next step.
 *
 * Bodies are gathered up to max_body bytes; beyond that the rest is read
 * and dropped (up to 16 x max_body, then the connection is closed) and the
 * answer is a 413. Every answer other than a stream is JSON (the errors in
 * OpenAI's shape, reply.h), /metrics excepted (Prometheus text). */
#include "serve/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <microhttpd.h>

#include "core/util.h"
#include "serve/engine.h"
#include "serve/reply.h"

struct lorac_http {
    struct MHD_Daemon *d;
    lorac_engine *e;
    size_t max_body;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight;              /* requests begun and not completed */
    MHD_socket quiesced;        /* the listening socket once quiesced (closed at stop), else MHD_INVALID_SOCKET */
    unsigned long next_id;
};

typedef struct conn {
    lorac_http *h;
    char endpoint[40];          /* for the counters */
    char *body;
    size_t len, cap, seen;      /* seen: every byte received, kept or not */
    int status;                 /* the status answered */
    double t0;
} conn;

typedef struct stream {
    lorac_engine *e;
    lorac_job *job;
    reply_meta meta;
    char id[48], model[64];
    int fd;
    char *buf;                  /* events not yet handed to MHD */
    size_t len, off;
    size_t sent;                /* bytes of the job's text sent */
    int role_sent, finished;
} stream;

/* 1 when the peer of fd closed its end (or the socket failed). */
static int client_gone(int fd) {
    if (fd < 0) return 0;
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static enum MHD_Result answer(conn *k, struct MHD_Connection *c, int status, char *body, const char *type) {
    if (!body) { /* out of memory building it */
        static char oom[] = "{\"error\": {\"message\": \"out of memory\", \"type\": \"server_error\", \"param\": null, "
                            "\"code\": \"out_of_memory\"}}";
        status = 500;
        body = strdup(oom);
        if (!body) return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type ? type : "application/json");
    k->status = status;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result answer_error(conn *k, struct MHD_Connection *c, const lorac_req_error *err) {
    return answer(k, c, err->status, reply_error(err), NULL);
}

static enum MHD_Result fail(conn *k, struct MHD_Connection *c, int status, const char *code, const char *fmt, const char *arg) {
    lorac_req_error err;
    lorac_req_fail(&err, status, NULL, code, fmt, arg);
    if (status >= 500) err.type = "server_error";
    return answer_error(k, c, &err);
}

/* ---- streams ---- */

static void stream_add(stream *s, char *ev) {
    if (!ev) return;
    size_t n = strlen(ev);
    char *p = realloc(s->buf, s->len + n + 1);
    if (p) {
        memcpy(p + s->len, ev, n + 1);
        s->buf = p;
        s->len += n;
    }
    free(ev);
}

/* Turn the job's news into events (mutex held). */
static void stream_collect(stream *s) {
    lorac_job *j = s->job;
    if (s->meta.chat && !s->role_sent) {
        stream_add(s, reply_chunk_event(&s->meta, "", 0, 1, NULL));
        s->role_sent = 1;
    }
    if (j->ready > s->sent) {
        stream_add(s, reply_chunk_event(&s->meta, j->text + s->sent, j->ready - s->sent, 0, NULL));
        s->sent = j->ready;
    }
    if (j->done) {
        if (j->err.status) stream_add(s, reply_error_event(&j->err));
        else stream_add(s, reply_chunk_event(&s->meta, "", 0, 0, j->finish ? j->finish : "stop"));
        stream_add(s, strdup("data: [DONE]\n\n"));
        s->finished = 1;
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
    stream *s = cls;
    (void)pos;
    for (;;) {
        if (s->off < s->len) {
            size_t n = s->len - s->off < max ? s->len - s->off : max;
            memcpy(out, s->buf + s->off, n);
            s->off += n;
            if (s->off == s->len) s->off = s->len = 0;
            return (ssize_t)n;
        }
        if (s->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        lorac_job_wait(s->e, s->job, s->sent, 1, 100);
        stream_collect(s);
        lorac_engine_unlock(s->e);
        if (s->len == 0 && client_gone(s->fd)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void stream_free(void *cls) {
    stream *s = cls;
    lorac_job_cancel(s->e, s->job); /* no-op when it is done */
    lorac_job_release(s->e, s->job);
    free(s->buf);
    free(s);
}

/* ---- generation, classification, adapters ---- */

static void make_id(lorac_http *h, char *id, size_t n, int chat) {
    pthread_mutex_lock(&h->mu);
    unsigned long k = ++h->next_id;
    pthread_mutex_unlock(&h->mu);
    snprintf(id, n, "%s-%lx%06lx", chat ? "chatcmpl" : "cmpl", (unsigned long)time(NULL), k);
}

/* Wait for a job to be done (or, with started, to start); 0 when the client left first. */
static int wait_job(lorac_engine *e, lorac_job *j, int fd, int started) {
    for (;;) {
        lorac_job_wait(e, j, (size_t)-1, !started, 100);
        int ok = j->done || (started && j->started);
        lorac_engine_unlock(e);
        if (ok) return 1;
        if (client_gone(fd)) {
            lorac_job_cancel(e, j);
            return 0;
        }
    }
}

static enum MHD_Result run_job(conn *k, struct MHD_Connection *c, lorac_job_kind kind, lorac_req *req) {
    lorac_engine *e = k->h->e;
    lorac_job *j = lorac_job_new(kind, req);
    if (!j) return fail(k, c, 500, "out_of_memory", "%s", "out of memory for the request");
    lorac_req_error err;
    if (lorac_engine_submit(e, j, &err)) {
        lorac_job_release(e, j);
        return answer_error(k, c, &err);
    }
    const int fd = conn_fd(c), gen = kind == LORAC_JOB_GENERATE, streaming = gen && j->req.stream;
    if (!wait_job(e, j, fd, streaming)) {
        lorac_job_release(e, j);
        k->status = 499; /* nginx's "client closed request" */
        return MHD_NO;
    }
    lorac_engine_lock(e);
    const int failed = j->err.status != 0 && (!streaming || !j->started);
    lorac_engine_unlock(e);
    enum MHD_Result ret;
    if (failed) {
        ret = answer_error(k, c, &j->err);
    } else if (!gen) {
        ret = answer(k, c, 200, strdup(j->result), NULL);
    } else {
        char id[48];
        make_id(k->h, id, sizeof id, j->req.kind == LORAC_REQ_CHAT);
        reply_meta meta = {id, (long)time(NULL), j->req.model, j->req.kind == LORAC_REQ_CHAT};
        if (!streaming) { /* done: the engine writes to the job no more */
            ret = answer(k, c, 200, reply_answer(&meta, j->text ? j->text : "", j->len, j->finish, j->n_prompt, j->n_gen), NULL);
            lorac_job_release(e, j);
            return ret;
        }
        stream *s = calloc(1, sizeof *s);
        if (!s) {
            lorac_job_cancel(e, j);
            lorac_job_release(e, j);
            return fail(k, c, 500, "out_of_memory", "%s", "out of memory for the stream");
        }
        s->e = e;
        s->job = j; /* the stream takes the reference */
        s->fd = fd;
        snprintf(s->id, sizeof s->id, "%s", id);
        snprintf(s->model, sizeof s->model, "%s", j->req.model);
        s->meta = meta;
        s->meta.id = s->id;
        s->meta.model = s->model;
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
        if (!r) {
            stream_free(s);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        k->status = 200;
        ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    lorac_job_release(e, j);
    return ret;
}

static enum MHD_Result post_request(conn *k, struct MHD_Connection *c, lorac_req_kind kind) {
    lorac_req_limits lim;
    lorac_engine_req_limits(k->h->e, &lim);
    lorac_req req;
    lorac_req_error err;
    memset(&req, 0, sizeof req);
    size_t len = k->seen > k->len ? k->seen : k->len; /* a body cut at the limit still counts whole */
    int st = len > lim.max_body ? lorac_req_fail(&err, 413, NULL, "body_too_large", "the request body is %zu bytes; the "
                                                 "limit is %zu (lorac serve --max-body)", len, lim.max_body)
                                : lorac_req_parse(kind, k->body ? k->body : "", k->len, &lim, &req, &err);
    if (st) {
        lorac_req_free(&req);
        return answer_error(k, c, &err);
    }
    lorac_job_kind jk = kind == LORAC_REQ_CLASSIFY ? LORAC_JOB_CLASSIFY : kind == LORAC_REQ_ADAPTER_LOAD ? LORAC_JOB_LOAD
                                                                                                          : LORAC_JOB_GENERATE;
    return run_job(k, c, jk, &req);
}

static enum MHD_Result delete_adapter(conn *k, struct MHD_Connection *c, const char *name) {
    lorac_req req;
    memset(&req, 0, sizeof req);
    req.kind = LORAC_REQ_ADAPTER_LOAD;
    if (!lorac_req_name_ok(name) || !lorac_engine_model_known(name, k->h->e))
        return fail(k, c, 404, "model_not_found", "no adapter named '%.64s' is loaded; hint: GET /v1/models", name);
    snprintf(req.name, sizeof req.name, "%s", name);
    snprintf(req.model, sizeof req.model, "%s", name);
    return run_job(k, c, LORAC_JOB_UNLOAD, &req);
}

/* ---- routing ---- */

static enum MHD_Result route(conn *k, struct MHD_Connection *c, const char *url, const char *method) {
    lorac_engine *e = k->h->e;
    const int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    static const struct { const char *path; lorac_req_kind kind; } posts[] = {
        {"/v1/completions", LORAC_REQ_COMPLETION}, {"/v1/chat/completions", LORAC_REQ_CHAT},
        {"/v1/classify", LORAC_REQ_CLASSIFY}, {"/v1/adapters", LORAC_REQ_ADAPTER_LOAD}};
    for (size_t i = 0; i < sizeof posts / sizeof posts[0]; i++)
        if (!strcmp(url, posts[i].path)) {
            snprintf(k->endpoint, sizeof k->endpoint, "%s", url);
            if (!post) return fail(k, c, 405, "method_not_allowed", "%s takes POST", url);
            return post_request(k, c, posts[i].kind);
        }
    if (!strncmp(url, "/v1/adapters/", 13)) {
        snprintf(k->endpoint, sizeof k->endpoint, "/v1/adapters/NAME");
        if (strcmp(method, "DELETE")) return fail(k, c, 405, "method_not_allowed", "%s takes DELETE", "/v1/adapters/NAME");
        return delete_adapter(k, c, url + 13);
    }
    snprintf(k->endpoint, sizeof k->endpoint, "%s", !strcmp(url, "/health") || !strcmp(url, "/metrics") ||
             !strcmp(url, "/v1/models") ? url : "other");
    if (!strcmp(url, "/health") || !strcmp(url, "/metrics") || !strcmp(url, "/v1/models")) {
        if (!get) return fail(k, c, 405, "method_not_allowed", "%s takes GET", url);
        if (!strcmp(url, "/metrics")) return answer(k, c, 200, lorac_engine_metrics(e), "text/plain; version=0.0.4");
        if (!strcmp(url, "/v1/models")) return answer(k, c, 200, lorac_engine_models_json(e), NULL);
        if (lorac_engine_draining(e)) return answer(k, c, 503, strdup("{\"status\":\"draining\"}"), NULL);
        return answer(k, c, 200, strdup("{\"status\":\"ok\"}"), NULL);
    }
    return fail(k, c, 404, "not_found", "no endpoint %.200s; hint: /v1/completions, /v1/chat/completions, /v1/models, "
                "/v1/classify, /v1/adapters, /health, /metrics", url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *size, void **ctx) {
    lorac_http *h = cls;
    conn *k = *ctx;
    (void)version;
    if (!k) { /* the headers: set up, then MHD sends the body */
        if (!(k = calloc(1, sizeof *k))) return MHD_NO;
        k->h = h;
        k->t0 = lorac_now();
        snprintf(k->endpoint, sizeof k->endpoint, "other");
        *ctx = k;
        pthread_mutex_lock(&h->mu);
        h->in_flight++;
        pthread_mutex_unlock(&h->mu);
        return MHD_YES;
    }
    if (*size) { /* a piece of the body */
        k->seen += *size;
        if (k->seen > 16 * h->max_body) return MHD_NO; /* far past the limit: close */
        if (k->len + *size <= h->max_body && lorac_serve_buf_add(&k->body, &k->len, &k->cap, data, *size)) return MHD_NO;
        *size = 0;
        return MHD_YES;
    }
    return route(k, c, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode why) {
    lorac_http *h = cls;
    conn *k = *ctx;
    (void)c;
    if (!k) return;
    int status = k->status ? k->status : 499;
    if (why != MHD_REQUEST_TERMINATED_COMPLETED_OK && status == 200) status = 499;
    lorac_engine_count_request(h->e, k->endpoint, status, lorac_now() - k->t0);
    free(k->body);
    free(k);
    *ctx = NULL;
    pthread_mutex_lock(&h->mu);
    h->in_flight--;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

lorac_status lorac_http_start(lorac_engine *e, const lorac_serve_opts *o, lorac_http **out, int *port) {
    *out = NULL;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        return lorac_fail(LORAC_ERR_ARG, "--host '%s' is not an IPv4 address; hint: 127.0.0.1 or 0.0.0.0", o->host);
    lorac_http *h = calloc(1, sizeof *h);
    if (!h) return lorac_fail(LORAC_ERR_NOMEM, "out of memory for the HTTP server");
    h->e = e;
    h->max_body = o->max_body;
    h->quiesced = MHD_INVALID_SOCKET;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    const unsigned limit = (unsigned)(o->max_seqs + o->max_queue + 32);
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC,
                            (uint16_t)o->port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_CONNECTION_LIMIT, limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout_s, MHD_OPTION_END);
    if (!h->d) {
        lorac_http_stop(h, 0);
        return lorac_fail(LORAC_ERR_IO, "cannot listen on %s:%d (%s); hint: another --port, or --port 0 for any free one",
                          o->host, o->port, errno ? strerror(errno) : "libmicrohttpd refused");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : o->port;
    *out = h;
    return LORAC_OK;
}

void lorac_http_quiesce(lorac_http *h) {
    if (h && h->d && h->quiesced == MHD_INVALID_SOCKET) h->quiesced = MHD_quiesce_daemon(h->d);
}

void lorac_http_stop(lorac_http *h, double wait_s) {
    if (!h) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)wait_s;
    pthread_mutex_lock(&h->mu);
    while (h->in_flight > 0 && wait_s > 0)
        if (pthread_cond_timedwait(&h->cv, &h->mu, &ts)) break;
    pthread_mutex_unlock(&h->mu);
    if (h->d) MHD_stop_daemon(h->d);
    if (h->quiesced != MHD_INVALID_SOCKET) close(h->quiesced);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
