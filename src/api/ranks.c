/* ranks.c - the public data-parallel calls (lorac_ranks_*, lorac.h): a thin
 * handle over dist/dist.h's lorac_dist, so that a program (the CLI's
 * `mpirun -np N lorac train`) can join the ranks, ask who it is, wait for
 * the others and end the job without the internal header. A NULL handle is
 * the single process, as a NULL lorac_dist is. */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"

static lorac_dist *D(const lorac_ranks *r) { return r ? r->d : NULL; }

int lorac_ranks_launched_size(void) { return lorac_dist_launched_size(); }
int lorac_ranks_launched_rank(void) { return lorac_dist_launched_rank(); }

lorac_status lorac_ranks_start(double timeout_s, lorac_ranks **out) {
    API_NEED(out, "lorac_ranks_start");
    *out = NULL;
    if (!(timeout_s > 0))
        return lorac_fail(LORAC_ERR_ARG, "lorac_ranks_start: timeout %g s; hint: a positive number of seconds", timeout_s);
    lorac_dist *d = NULL;
    LORAC_TRY(lorac_dist_start(timeout_s, &d));
    if (!d) return LORAC_OK; /* one process: the NULL handle */
    lorac_ranks *r = calloc(1, sizeof *r);
    if (!r) {
        lorac_dist_stop(d);
        return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    }
    r->d = d;
    *out = r;
    return LORAC_OK;
}

void lorac_ranks_stop(lorac_ranks *r) {
    if (!r) return;
    lorac_dist_stop(r->d);
    free(r);
}

void lorac_ranks_abort(lorac_ranks *r, int code) { lorac_dist_abort(D(r), code); }

int lorac_ranks_rank(const lorac_ranks *r) { return lorac_dist_rank(D(r)); }
int lorac_ranks_size(const lorac_ranks *r) { return lorac_dist_size(D(r)); }
const char *lorac_ranks_host(const lorac_ranks *r) { return lorac_dist_host(D(r)); }

lorac_status lorac_ranks_barrier(lorac_ranks *r, const char *what) {
    return lorac_dist_barrier(D(r), what ? what : "a barrier");
}

lorac_status lorac_ranks_describe(lorac_ranks *r, char *buf, size_t n) {
    API_NEED(buf, "lorac_ranks_describe");
    if (n == 0) return lorac_fail(LORAC_ERR_ARG, "lorac_ranks_describe: buffer of 0 bytes");
    return lorac_dist_describe_hosts(D(r), buf, n);
}

lorac_status lorac_ranks_get_stats(const lorac_ranks *r, lorac_ranks_stats *s) {
    API_NEED(s, "lorac_ranks_get_stats");
    lorac_dist_stats ds;
    lorac_dist_get_stats(D(r), &ds);
    s->collectives = ds.collectives;
    s->bytes = ds.bytes;
    s->seconds = ds.seconds;
    s->wait_seconds = ds.wait_seconds;
    return LORAC_OK;
}
