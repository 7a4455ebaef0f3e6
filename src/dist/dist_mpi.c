/* dist_mpi.c - the MPI transport of dist.h (built only with MPI).
 *
 * Three decisions, each for a reason:
 *  - Sums go through MPI_Iallreduce with our own operation, created as NOT
 *    commutative. MPI must then combine the ranks' buffers in rank order
 *    instead of the order they happen to arrive, so the gradient sum, and with
 *    it every later step, is the same bits on every rank and in every run.
 *  - Every collective is non-blocking and polled against a deadline. A
 *    blocking MPI_Allreduce waits forever for a rank that died or a network
 *    that broke; polling turns that into one error after timeout_s.
 *  - Errors are returned (MPI_ERRORS_RETURN on our own duplicate of
 *    MPI_COMM_WORLD), never fatal inside MPI, so the caller can print one
 *    clear line before it ends the job with lorac_dist_abort. */
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "dist/dist_internal.h"

typedef struct {
    MPI_Comm comm;
    MPI_Op sum_f32, sum_f64;
} mpi_state;

#define STATE(d) ((mpi_state *)(d)->mpi)

/* inout[i] = in[i] + inout[i]. For a non-commutative operation MPI passes
 * the lower ranks' partial sum as `in`. */
static void op_sum_f32(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    const float *a = in;
    float *b = inout;
    for (int i = 0; i < *len; i++) b[i] = a[i] + b[i];
}
static void op_sum_f64(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    const double *a = in;
    double *b = inout;
    for (int i = 0; i < *len; i++) b[i] = a[i] + b[i];
}

static lorac_status mpi_fail(const lorac_dist *d, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    (void)d;
    return lorac_fail(LORAC_ERR_COMM, "MPI failed during %s: %s; hint: another rank died or the network between the "
                      "hosts broke", what, msg);
}

lorac_status lorac_dist_mpi_start(int launched, double timeout_s, lorac_dist **out) {
    int have = 0;
    MPI_Initialized(&have);
    if (!have) {
        /* FUNNELED: only the main thread calls MPI; OpenMP threads do the math */
        int provided = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return lorac_fail(LORAC_ERR_COMM, "MPI_Init failed; hint: start the ranks with mpirun, mpiexec or srun --mpi=pmix");
    }
    lorac_dist *d = calloc(1, sizeof *d);
    mpi_state *s = calloc(1, sizeof *s);
    if (!d || !s) {
        free(d);
        free(s);
        return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    }
    d->mpi = s;
    d->timeout_s = timeout_s > 0 ? timeout_s : 300;
    MPI_Comm_dup(MPI_COMM_WORLD, &s->comm);
    MPI_Comm_set_errhandler(s->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(s->comm, &d->rank);
    MPI_Comm_size(s->comm, &d->size);
    if (gethostname(d->host, sizeof d->host - 1) != 0) snprintf(d->host, sizeof d->host, "?");
    MPI_Op_create(op_sum_f32, 0, &s->sum_f32);
    MPI_Op_create(op_sum_f64, 0, &s->sum_f64);
    *out = d;
    if (d->size != launched) {
        lorac_status st = lorac_fail(LORAC_ERR_COMM, "the launcher started %d ranks but MPI sees %d; hint: under Slurm "
                                     "use srun --mpi=pmix (or mpirun inside the allocation)", launched, d->size);
        return st;
    }
    return LORAC_OK;
}

void lorac_dist_stop(lorac_dist *d) {
    if (!d) return;
    mpi_state *s = STATE(d);
    MPI_Op_free(&s->sum_f32);
    MPI_Op_free(&s->sum_f64);
    MPI_Comm_free(&s->comm);
    MPI_Finalize();
    free(s);
    free(d);
}

void lorac_dist_abort(lorac_dist *d, int code) {
    if (d) MPI_Abort(STATE(d)->comm, code);
}

/* Poll a request until it completes or the deadline passes. A non-blocking
 * collective moves data only while it is being polled (Open MPI progresses
 * it inside MPI_Test), so for the first second the rank polls without
 * sleeping, yielding the core to any other runnable thread between polls;
 * only a longer wait (a rank still computing or writing a checkpoint)
 * sleeps 100 us between polls. */
static lorac_status wait_bounded(lorac_dist *d, MPI_Request *rq, const char *what, double t0) {
    for (long polls = 1;; polls++) {
        int done = 0, rc = MPI_Test(rq, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(d, rc, what);
        if (done) return LORAC_OK;
        if (polls % 256) {
            sched_yield();
            continue;
        }
        const double waited = lorac_now() - t0;
        if (waited > d->timeout_s)
            return lorac_fail(LORAC_ERR_COMM, "no answer from the other ranks within %.0f s during %s; hint: a "
                              "rank died or hangs, or the network broke (--dist-timeout sets the limit)",
                              d->timeout_s, what);
        if (waited > 1.0) {
            struct timespec ts = {0, 100000}; /* 100 us */
            nanosleep(&ts, NULL);
        }
    }
}

/* MPI counts are int: sum in chunks of at most 2^28 values. */
static lorac_status sum_any(lorac_dist *d, void *buf, size_t n, size_t elt, MPI_Datatype type, MPI_Op op,
                            const char *what) {
    if (!d || d->size == 1 || n == 0) return LORAC_OK;
    const double t0 = lorac_now();
    const size_t chunk = (size_t)1 << 28;
    lorac_status st = LORAC_OK;
    for (size_t off = 0; off < n && st == LORAC_OK; off += chunk) {
        const int cnt = (int)(n - off < chunk ? n - off : chunk);
        MPI_Request rq;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + off * elt, cnt, type, op, STATE(d)->comm, &rq);
        st = rc == MPI_SUCCESS ? wait_bounded(d, &rq, what, t0) : mpi_fail(d, rc, what);
    }
    const double t = lorac_now() - t0;
    d->stats.collectives++;
    d->stats.bytes += (int64_t)(n * elt);
    d->stats.seconds += t;
    /* a sum of a few values (a loss) moves its bytes in microseconds: its
     * time is the wait for the other ranks to get there */
    if (n * elt <= 64) d->stats.wait_seconds += t;
    return st;
}

lorac_status lorac_dist_sum_f32(lorac_dist *d, float *buf, size_t n, const char *what) {
    return sum_any(d, buf, n, sizeof(float), MPI_FLOAT, d ? STATE(d)->sum_f32 : MPI_OP_NULL, what);
}

lorac_status lorac_dist_sum_f64(lorac_dist *d, double *buf, size_t n, const char *what) {
    return sum_any(d, buf, n, sizeof(double), MPI_DOUBLE, d ? STATE(d)->sum_f64 : MPI_OP_NULL, what);
}

lorac_status lorac_dist_barrier(lorac_dist *d, const char *what) {
    if (!d || d->size == 1) return LORAC_OK;
    const double t0 = lorac_now();
    MPI_Request rq;
    int rc = MPI_Ibarrier(STATE(d)->comm, &rq);
    lorac_status st = rc == MPI_SUCCESS ? wait_bounded(d, &rq, what, t0) : mpi_fail(d, rc, what);
    d->stats.collectives++;
    d->stats.seconds += lorac_now() - t0;
    d->stats.wait_seconds += lorac_now() - t0;
    return st;
}

lorac_status lorac_dist_describe_hosts(lorac_dist *d, char *buf, size_t n) {
    enum { W = 64 }; /* host names are cut to 63 bytes here */
    if (!d) {
        lorac_dist_describe_one_host(buf, n);
        return LORAC_OK;
    }
    char mine[W] = {0}, *all = calloc((size_t)d->size, W);
    if (!all) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    snprintf(mine, sizeof mine, "%.63s", d->host);
    MPI_Request rq;
    int rc = MPI_Iallgather(mine, W, MPI_CHAR, all, W, MPI_CHAR, STATE(d)->comm, &rq);
    lorac_status st = rc == MPI_SUCCESS ? wait_bounded(d, &rq, "the exchange of host names", lorac_now())
                                        : mpi_fail(d, rc, "the exchange of host names");
    if (st != LORAC_OK) {
        free(all);
        return st;
    }
    /* runs of consecutive ranks on one host: "alpha (ranks 0-1)" */
    int hosts = 0;
    for (int r = 0; r < d->size; r++) {
        int seen = 0;
        for (int q = 0; q < r && !seen; q++) seen = !strcmp(all + (size_t)q * W, all + (size_t)r * W);
        hosts += !seen;
    }
    size_t o = (size_t)snprintf(buf, n, "%d host%s:", hosts, hosts == 1 ? "" : "s");
    for (int r = 0; r < d->size && o < n;) {
        int e = r;
        while (e + 1 < d->size && !strcmp(all + (size_t)(e + 1) * W, all + (size_t)r * W)) e++;
        o += (size_t)snprintf(buf + o, n - o, "%s %s (rank%s %d%s", r ? "," : "", all + (size_t)r * W, e > r ? "s" : "", r,
                              e > r ? "-" : ")");
        if (e > r && o < n) o += (size_t)snprintf(buf + o, n - o, "%d)", e);
        r = e + 1;
    }
    free(all);
    return LORAC_OK;
}
