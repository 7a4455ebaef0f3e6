/* engine.c - the engine thread, its job queue, control jobs (adapter load /
 * unload, classification), and the counters /metrics shows (see engine.h).
 *
 * The loop: wait for work; drop sequences whose clients left; run the
 * queued jobs that can run now, in order (control jobs at once, an unload
 * once no running sequence uses its adapter, a generation when a slot is
 * free: admitted, it joins the next step); then one batched step over the
 * running sequences (engine_step.c). The mutex is never held across model
 * work, so HTTP threads can always queue, cancel and read. */
#include "serve/engine.h"

#include <malloc.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <cjson/cJSON.h>

#include "core/util.h"
#include "serve/engine_internal.h"

void openblas_set_num_threads(int n);

int lorac_serve_buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n + 1) c *= 2;
        char *p = realloc(*buf, c);
        if (!p) return -1;
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

void lorac_engine_lock(lorac_engine *e) { pthread_mutex_lock(&e->mu); }
void lorac_engine_unlock(lorac_engine *e) { pthread_mutex_unlock(&e->mu); }
long lorac_engine_created(const lorac_engine *e) { return e->created; }

/* ---- jobs ---- */

lorac_job *lorac_job_new(lorac_job_kind kind, lorac_req *req) {
    lorac_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->kind = kind;
    j->req = *req;
    memset(req, 0, sizeof *req);
    j->refs = 1;
    j->t_submit = lorac_now();
    pthread_cond_init(&j->cv, NULL);
    return j;
}

static void job_free(lorac_job *j) {
    lorac_req_free(&j->req);
    free(j->text);
    free(j->result);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* Drop one reference (mutex held). */
static void job_unref(lorac_job *j) {
    if (--j->refs == 0) job_free(j);
}

void lorac_job_release(lorac_engine *e, lorac_job *j) {
    if (!j) return;
    lorac_engine_lock(e);
    job_unref(j);
    lorac_engine_unlock(e);
}

/* Mark j done (mutex held): with an error when status != 0. */
static void job_finish(lorac_job *j, const lorac_req_error *err) {
    if (err && err->status) j->err = *err;
    j->done = 1;
    j->ready = j->len;
    pthread_cond_broadcast(&j->cv);
}

int lorac_engine_submit(lorac_engine *e, lorac_job *j, lorac_req_error *err) {
    lorac_engine_lock(e);
    int st = 0;
    if (e->draining || e->stop)
        st = lorac_req_fail(err, 503, NULL, "server_shutting_down", "the server is shutting down; hint: retry elsewhere");
    else if (e->n_queued >= e->o.max_queue)
        st = lorac_req_fail(err, 429, NULL, "queue_full", "%d requests are waiting already (lorac serve --max-queue); hint: "
                            "retry later", e->n_queued);
    if (st) {
        err->type = st == 503 ? "server_error" : "rate_limit_error";
        lorac_engine_unlock(e);
        return st;
    }
    j->refs++;
    j->next = NULL;
    if (e->tail) e->tail->next = j;
    else e->head = j;
    e->tail = j;
    e->n_queued++;
    pthread_cond_signal(&e->wake);
    lorac_engine_unlock(e);
    return 0;
}

void lorac_job_wait(lorac_engine *e, lorac_job *j, size_t ready, int started, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    lorac_engine_lock(e);
    while (!j->done && j->ready <= ready && (started || !j->started))
        if (pthread_cond_timedwait(&j->cv, &e->mu, &ts)) break;
}

void lorac_job_cancel(lorac_engine *e, lorac_job *j) {
    lorac_engine_lock(e);
    if (!j->done) {
        j->cancelled = 1;
        e->disconnects++;
        pthread_cond_signal(&e->wake);
    }
    lorac_engine_unlock(e);
}

/* ---- names, for the HTTP threads ---- */

static void names_refresh(lorac_engine *e) { /* mutex held */
    char (*p)[64] = realloc(e->names, sizeof *p * (size_t)(e->set.n ? e->set.n : 1));
    if (!p) return;
    e->names = p;
    for (int i = 0; i < e->set.n; i++) snprintf(e->names[i], 64, "%s", e->set.slot[i].name);
    e->n_names = e->set.n;
}

int lorac_engine_model_known(const char *name, void *engine) {
    lorac_engine *e = engine;
    if (!strcmp(name, "base")) return 1;
    int found = 0;
    lorac_engine_lock(e);
    for (int i = 0; i < e->n_names && !found; i++) found = !strcmp(e->names[i], name) && strcmp(e->unloading, name);
    lorac_engine_unlock(e);
    return found;
}

char *lorac_engine_models_json(lorac_engine *e) {
    cJSON *o = cJSON_CreateObject(), *data = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToObject(o, "data", data);
    lorac_engine_lock(e);
    for (int i = -1; i < e->n_names; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", i < 0 ? "base" : e->names[i]);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)e->created);
        cJSON_AddStringToObject(m, "owned_by", "lorac");
        if (i >= 0) cJSON_AddStringToObject(m, "parent", "base");
        cJSON_AddItemToArray(data, m);
    }
    lorac_engine_unlock(e);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

void lorac_engine_req_limits(lorac_engine *e, lorac_req_limits *lim) {
    lim->max_body = e->o.max_body;
    lim->max_tokens = e->o.max_tokens;
    lim->model_known = lorac_engine_model_known;
    lim->ctx = e;
}

/* ---- counters ---- */

void lorac_engine_count_request(lorac_engine *e, const char *endpoint, int status, double seconds) {
    lorac_engine_lock(e);
    int k = 0;
    while (k < e->n_counts && (e->counts[k].status != status || strcmp(e->counts[k].endpoint, endpoint))) k++;
    if (k == e->n_counts && k < ENGINE_MAX_COUNTS) {
        snprintf(e->counts[k].endpoint, sizeof e->counts[k].endpoint, "%s", endpoint);
        e->counts[k].status = status;
        e->n_counts++;
    }
    if (k < e->n_counts) e->counts[k].n++;
    e->req_done++;
    e->req_seconds += seconds;
    lorac_engine_unlock(e);
}

void lorac_engine_count_disconnect(lorac_engine *e) {
    lorac_engine_lock(e);
    e->disconnects++;
    lorac_engine_unlock(e);
}

/* The process's resident set (VmRSS), from /proc/self/statm; 0 when unreadable. */
static size_t rss_now(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* One metric: its HELP and TYPE lines, then the sample (value printed with
 * fmt); a metric with labelled samples prints them after this. */
#define METRIC(name, type, help) "# HELP " name " " help "\n# TYPE " name " " type "\n"

char *lorac_engine_metrics(lorac_engine *e) {
    char *b = NULL, line[512];
    size_t len = 0, cap = 0;
#define OUT(...) (snprintf(line, sizeof line, __VA_ARGS__), lorac_serve_buf_add(&b, &len, &cap, line, strlen(line)))
    lorac_engine_lock(e);
    OUT(METRIC("lorac_requests_total", "counter", "HTTP requests answered, by endpoint and status."));
    for (int k = 0; k < e->n_counts; k++)
        OUT("lorac_requests_total{endpoint=\"%s\",status=\"%d\"} %ld\n", e->counts[k].endpoint, e->counts[k].status, e->counts[k].n);
    OUT(METRIC("lorac_request_duration_seconds", "summary", "Time from a request's headers to its last byte.")
        "lorac_request_duration_seconds_sum %.6f\nlorac_request_duration_seconds_count %ld\n", e->req_seconds, e->req_done);
    OUT(METRIC("lorac_client_disconnects_total", "counter", "Clients that left before their answer was complete.")
        "lorac_client_disconnects_total %ld\n", e->disconnects);
    OUT(METRIC("lorac_prompt_tokens_total", "counter", "Prompt tokens of the generations admitted.")
        "lorac_prompt_tokens_total %ld\n", e->prompt_tokens);
    OUT(METRIC("lorac_generated_tokens_total", "counter", "Tokens generated.") "lorac_generated_tokens_total %ld\n",
        e->gen_tokens);
    OUT(METRIC("lorac_classified_texts_total", "counter", "Texts classified.") "lorac_classified_texts_total %ld\n",
        e->cls_texts);
    OUT(METRIC("lorac_engine_steps_total", "counter", "Batched forward steps; sequences / steps is the mean batch.")
        "lorac_engine_steps_total %ld\n", e->steps);
    OUT(METRIC("lorac_engine_step_sequences_total", "counter", "Sequences over all steps.")
        "lorac_engine_step_sequences_total %ld\n", e->step_rows);
    OUT(METRIC("lorac_engine_prefill_tokens_total", "counter", "Prompt tokens fed by prefill over all steps.")
        "lorac_engine_prefill_tokens_total %ld\n", e->prefill_rows);
    OUT(METRIC("lorac_engine_step_seconds_total", "counter", "Seconds spent in batched steps.")
        "lorac_engine_step_seconds_total %.6f\n", e->step_seconds);
    OUT(METRIC("lorac_running_sequences", "gauge", "Sequences in the batch now.") "lorac_running_sequences %d\n", e->n_run);
    OUT(METRIC("lorac_queued_requests", "gauge", "Requests waiting for a sequence slot.") "lorac_queued_requests %d\n",
        e->n_queued);
    OUT(METRIC("lorac_adapters_loaded", "gauge", "Adapters loaded.") "lorac_adapters_loaded %d\n", e->n_names);
    OUT(METRIC("lorac_max_sequences", "gauge", "Sequences a batch may hold (--max-seqs).") "lorac_max_sequences %d\n",
        e->o.max_seqs);
    lorac_engine_unlock(e);
    /* memory, so that a resident set that creeps under load shows from outside */
    OUT(METRIC("process_resident_memory_bytes", "gauge", "Resident memory of the server process (VmRSS).")
        "process_resident_memory_bytes %zu\n", rss_now());
    const struct mallinfo2 mi = mallinfo2(); /* glibc >= 2.33: sums over every malloc arena */
    OUT(METRIC("lorac_malloc_heap_bytes", "gauge", "malloc: bytes obtained with sbrk / mmap for arenas (mallinfo2 arena).")
        "lorac_malloc_heap_bytes %zu\n", mi.arena);
    OUT(METRIC("lorac_malloc_mmap_bytes", "gauge", "malloc: bytes in blocks mmap'd one by one (mallinfo2 hblkhd).")
        "lorac_malloc_mmap_bytes %zu\n", mi.hblkhd);
    OUT(METRIC("lorac_malloc_in_use_bytes", "gauge", "malloc: bytes allocated and not freed, arenas + mmap'd (uordblks + hblkhd).")
        "lorac_malloc_in_use_bytes %zu\n", mi.uordblks + mi.hblkhd);
    OUT(METRIC("lorac_malloc_free_bytes", "gauge", "malloc: free bytes held in the arenas (mallinfo2 fordblks).")
        "lorac_malloc_free_bytes %zu\n", mi.fordblks);
#undef OUT
    return b;
}

/* ---- control jobs (engine thread, mutex not held) ---- */

static char *json_text(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static char *model_json(const char *name, const char *path) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", name);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddStringToObject(o, "owned_by", "lorac");
    if (path) cJSON_AddStringToObject(o, "path", path);
    else cJSON_AddBoolToObject(o, "deleted", 1);
    return json_text(o);
}

static void run_load(lorac_engine *e, lorac_job *j, lorac_req_error *err) {
    if (lorac_adapters_find(&e->set, j->req.name) >= 0) {
        lorac_req_fail(err, 409, "name", "adapter_exists", "an adapter named '%s' is loaded already; hint: DELETE "
                       "/v1/adapters/%s first", j->req.name, j->req.name);
        return;
    }
    if (lorac_adapters_load(&e->set, j->req.name, j->req.path) != LORAC_OK) {
        lorac_req_fail(err, 400, "path", "adapter_load_failed", "%s", lorac_last_error());
        return;
    }
    j->result = model_json(j->req.name, j->req.path);
}

static void run_unload(lorac_engine *e, lorac_job *j, lorac_req_error *err) {
    if (lorac_adapters_unload(&e->set, j->req.name) != LORAC_OK)
        lorac_req_fail(err, 404, "model", "model_not_found", "%s", lorac_last_error());
    else
        j->result = model_json(j->req.name, NULL);
}

/* Run control job j (engine thread, mutex held on entry and exit). */
static void run_control(lorac_engine *e, lorac_job *j) {
    lorac_req_error err = {0};
    lorac_engine_unlock(e);
    if (j->kind == LORAC_JOB_LOAD) run_load(e, j, &err);
    else if (j->kind == LORAC_JOB_UNLOAD) run_unload(e, j, &err);
    else engine_classify(e, j);
    lorac_engine_lock(e);
    if (j->kind != LORAC_JOB_CLASSIFY) names_refresh(e);
    if (j->kind == LORAC_JOB_UNLOAD) e->unloading[0] = 0;
    if (j->kind == LORAC_JOB_CLASSIFY && !j->err.status) e->cls_texts += j->req.n_inputs;
    if (!err.status && !j->result && !j->err.status)
        lorac_req_fail(&err, 500, NULL, "out_of_memory", "out of memory writing the answer");
    job_finish(j, err.status ? &err : NULL);
}

static int adapter_in_use(const lorac_engine *e, const char *name) {
    for (int i = 0; i < e->n_run; i++)
        if (!strcmp(e->run[i]->req.model, name)) return 1;
    return 0;
}

/* Take the first queued job that can run now out of the queue (mutex held). */
static lorac_job *next_runnable(lorac_engine *e) {
    lorac_job *prev = NULL;
    for (lorac_job *j = e->head; j; prev = j, j = j->next) {
        int ok = j->cancelled || j->kind == LORAC_JOB_LOAD || j->kind == LORAC_JOB_CLASSIFY;
        if (j->kind == LORAC_JOB_UNLOAD) {
            if (!e->unloading[0]) snprintf(e->unloading, sizeof e->unloading, "%s", j->req.name);
            ok |= !adapter_in_use(e, j->req.name);
        }
        if (j->kind == LORAC_JOB_GENERATE) ok |= e->n_run < e->o.max_seqs;
        if (!ok) continue;
        if (prev) prev->next = j->next;
        else e->head = j->next;
        if (e->tail == j) e->tail = prev;
        e->n_queued--;
        return j;
    }
    return NULL;
}

/* Admit generation j to the batch, or finish it with its error (mutex held). */
static void admit(lorac_engine *e, lorac_job *j) {
    lorac_req_error err = {0};
    int st = j->cancelled ? 499 : 0;
    if (!st && !strcmp(e->unloading, j->req.model))
        st = lorac_req_fail(&err, 404, "model", "model_not_found", "the adapter '%s' is being unloaded", j->req.model);
    if (!st) {
        lorac_engine_unlock(e);
        st = engine_seq_admit(e, j, &err);
        lorac_engine_lock(e);
    }
    if (st) {
        job_finish(j, st == 499 ? NULL : &err);
        job_unref(j);
        return;
    }
    j->started = 1;
    e->prompt_tokens += j->n_prompt;
    e->run[e->n_run++] = j;
    pthread_cond_broadcast(&j->cv);
}

/* Remove finished and cancelled sequences from the batch (mutex held). */
static void reap(lorac_engine *e) {
    int k = 0;
    for (int i = 0; i < e->n_run; i++) {
        lorac_job *j = e->run[i];
        if (!j->done && !j->cancelled) {
            e->run[k++] = j;
            continue;
        }
        engine_seq_free(e, j);
        if (!j->done) job_finish(j, NULL);
        job_unref(j);
    }
    e->n_run = k;
}

static void *engine_main(void *arg) {
    lorac_engine *e = arg;
    if (e->o.threads > 0) {
        omp_set_num_threads(e->o.threads);
        openblas_set_num_threads(e->o.threads);
    }
    lorac_job *batch[ENGINE_MAX_SEQS];
    lorac_engine_lock(e);
    for (;;) {
        while (!e->stop && !e->head && e->n_run == 0) {
            pthread_cond_broadcast(&e->idle);
            pthread_cond_wait(&e->wake, &e->mu);
        }
        if (e->stop) break;
        reap(e);
        for (lorac_job *j; (j = next_runnable(e)) != NULL;) {
            if (j->kind == LORAC_JOB_GENERATE) {
                admit(e, j);
            } else if (j->cancelled) {
                if (j->kind == LORAC_JOB_UNLOAD && !strcmp(e->unloading, j->req.name)) e->unloading[0] = 0;
                job_finish(j, NULL);
                job_unref(j);
            } else {
                run_control(e, j);
                job_unref(j);
            }
        }
        int n = e->n_run;
        if (n == 0) continue;
        memcpy(batch, e->run, sizeof *batch * (size_t)n);
        lorac_engine_unlock(e);
        double t0 = lorac_now();
        lorac_status st = engine_step(e, batch, n);
        lorac_engine_lock(e);
        e->step_seconds += lorac_now() - t0;
        if (st != LORAC_OK) {
            lorac_req_error err = {0};
            lorac_req_fail(&err, 500, NULL, "engine_error", "%s", lorac_last_error());
            err.type = "server_error";
            for (int i = 0; i < n; i++)
                if (!batch[i]->done) job_finish(batch[i], &err);
        }
        reap(e);
    }
    /* stopping: whatever is left ends with a 503 */
    lorac_req_error err = {0};
    lorac_req_fail(&err, 503, NULL, "server_shutting_down", "the server stopped before this request ran");
    err.type = "server_error";
    for (int i = 0; i < e->n_run; i++) {
        engine_seq_free(e, e->run[i]);
        if (!e->run[i]->done) job_finish(e->run[i], &err);
        job_unref(e->run[i]);
    }
    e->n_run = 0;
    while (e->head) {
        lorac_job *j = e->head;
        e->head = j->next;
        job_finish(j, &err);
        job_unref(j);
    }
    e->tail = NULL;
    e->n_queued = 0;
    pthread_cond_broadcast(&e->idle);
    lorac_engine_unlock(e);
    return NULL;
}

/* ---- life cycle ---- */

/* The model's chat format (io/chat.h picks it, as for lorac generate --chat)
 * and its end-of-turn token, where a chat answer stops. */
static lorac_status load_chat_format(lorac_engine *e) {
    char where[1200];
    LORAC_TRY(lorac_chat_format_pick(e->o.tokenizer, e->m->path, e->m->gguf, e->tok, NULL, &e->chat, where, sizeof where));
    e->end_of_turn = lorac_chat_end_of_turn(&e->chat, e->tok);
    return LORAC_OK;
}

static lorac_status engine_load(lorac_engine *e) {
    const lorac_serve_opts *o = &e->o;
    const size_t ml = strlen(o->model);
    const int is_gguf = ml > 5 && !strcmp(o->model + ml - 5, ".gguf");
    const char *base = o->base ? o->base : "auto";
    if (strcmp(base, "auto") && strcmp(base, "fp32") && strcmp(base, "gguf"))
        return lorac_fail(LORAC_ERR_ARG, "base '%s': expected auto, fp32 or gguf", base);
    if (!strcmp(base, "gguf") && !is_gguf)
        return lorac_fail(LORAC_ERR_ARG, "%s: base gguf keeps a .gguf file's blocks, and this is not one; hint: base "
                          "auto or fp32", o->model);
    if (is_gguf && strcmp(base, "fp32")) /* the file's own blocks, decoded by the quantized GEMV kernels */
        LORAC_TRY(lorac_model_load_quantized(o->model, LORAC_QLOAD_KEEP | LORAC_QLOAD_KEEP_HEAD, &e->m));
    else
        LORAC_TRY(lorac_model_load(o->model, &e->m));
    if (o->tokenizer) LORAC_TRY(lorac_tokenizer_load(o->tokenizer, &e->tok));
    else if (is_gguf) LORAC_TRY(lorac_tokenizer_from_gguf(e->m->gguf, &e->tok));
    else LORAC_TRY(lorac_tokenizer_load(o->model, &e->tok));
    if (e->m->cfg.arch == LORAC_ARCH_BERT)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s is an encoder; lorac serve generates text with decoders", o->model);
    LORAC_TRY(load_chat_format(e));
    lorac_adapters_init(&e->set, e->m);
    for (int i = 0; i < o->n_adapters; i++) {
        if (!lorac_req_name_ok(o->adapter_names[i]))
            return lorac_fail(LORAC_ERR_ARG, "adapter name '%s': use 1 to 63 of A-Z a-z 0-9 . _ -, not base or none",
                              o->adapter_names[i]);
        LORAC_TRY(lorac_adapters_load(&e->set, o->adapter_names[i], o->adapter_dirs[i]));
    }
    e->ctx_limit = e->m->cfg.n_ctx;
    if (e->ctx_limit > o->max_prompt + o->max_tokens) e->ctx_limit = o->max_prompt + o->max_tokens;
    return engine_step_init(e);
}

lorac_status lorac_engine_create(const lorac_serve_opts *o, lorac_engine **out) {
    *out = NULL;
    if (o->max_seqs < 1 || o->max_seqs > ENGINE_MAX_SEQS || o->max_queue < 0 || o->max_tokens < 1 || o->max_prompt < 1)
        return lorac_fail(LORAC_ERR_ARG, "serve limits: max_seqs 1..%d, max_queue >= 0, max_tokens and max_prompt >= 1",
                          ENGINE_MAX_SEQS);
    lorac_engine *e = calloc(1, sizeof *e);
    if (!e) return lorac_fail(LORAC_ERR_NOMEM, "out of memory for the engine");
    e->o = *o;
    e->created = (long)time(NULL);
    e->end_of_turn = -1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->idle, NULL);
    lorac_status st = engine_load(e);
    if (st == LORAC_OK) {
        names_refresh(e);
        if (pthread_create(&e->thread, NULL, engine_main, e)) st = lorac_fail(LORAC_ERR_NOMEM, "cannot start the engine thread");
        else e->thread_started = 1;
    }
    if (st != LORAC_OK) {
        lorac_engine_free(e);
        return st;
    }
    *out = e;
    return LORAC_OK;
}

int lorac_engine_draining(lorac_engine *e) {
    lorac_engine_lock(e);
    int d = e->draining;
    lorac_engine_unlock(e);
    return d;
}

void lorac_engine_drain(lorac_engine *e) {
    lorac_engine_lock(e);
    e->draining = 1;
    while (e->head || e->n_run) pthread_cond_wait(&e->idle, &e->mu);
    lorac_engine_unlock(e);
}

void lorac_engine_free(lorac_engine *e) {
    if (!e) return;
    if (e->thread_started) {
        lorac_engine_lock(e);
        e->stop = 1;
        pthread_cond_signal(&e->wake);
        lorac_engine_unlock(e);
        pthread_join(e->thread, NULL);
    }
    engine_step_free(e);
    if (e->m) lorac_adapters_free(&e->set);
    lorac_tokenizer_free(e->tok);
    lorac_model_free(e->m);
    free(e->names);
    pthread_cond_destroy(&e->idle);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->mu);
    free(e);
}
