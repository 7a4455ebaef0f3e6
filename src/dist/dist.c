/* dist.c - what every build has: the launcher's rank count, the rule that
 * shares a batch out (lorac_dist_balance) and the single-process (NULL) answers. The MPI transport itself is in
 * dist_mpi.c, compiled only when CMake found MPI (LORAC_HAVE_MPI). */
#include "dist/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dist/dist_internal.h"

int lorac_dist_available(void) {
#ifdef LORAC_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

/* The launchers name the job's size before MPI_Init: Open MPI's mpirun
 * (OMPI_COMM_WORLD_SIZE), MPICH / Intel MPI's Hydra and Slurm's PMI (PMI_SIZE),
 * and Slurm's srun itself (SLURM_STEP_NUM_TASKS). */
static int env_int(const char *const *vars, int n_vars, int def) {
    for (int i = 0; i < n_vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            long n = strtol(v, NULL, 10);
            if (n >= 0 && n < (1L << 24)) return (int)n;
        }
    }
    return def;
}

int lorac_dist_launched_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"};
    const int n = env_int(vars, 3, 1);
    return n >= 1 ? n : 1;
}

int lorac_dist_launched_rank(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"};
    return env_int(vars, 3, 0);
}

lorac_status lorac_dist_start(double timeout_s, lorac_dist **out) {
    *out = NULL;
    const int n = lorac_dist_launched_size();
    if (n <= 1) return LORAC_OK; /* started by hand (or one rank): the single process */
#ifdef LORAC_HAVE_MPI
    return lorac_dist_mpi_start(n, timeout_s, out);
#else
    (void)timeout_s;
    return lorac_fail(LORAC_ERR_UNSUPPORTED,
                      "launched as %d ranks, but this lorac was built without MPI, so each rank would train alone; "
                      "hint: apt-get install libopenmpi-dev openmpi-bin, then rebuild (cmake finds MPI by itself)", n);
#endif
}

int lorac_dist_rank(const lorac_dist *d) { return d ? d->rank : 0; }
int lorac_dist_size(const lorac_dist *d) { return d ? d->size : 1; }
const char *lorac_dist_host(const lorac_dist *d) { return d ? d->host : ""; }

void lorac_dist_describe_one_host(char *buf, size_t n) {
    char h[64] = "?";
    gethostname(h, sizeof h - 1);
    snprintf(buf, n, "1 host: %s", h);
}

void lorac_dist_get_stats(const lorac_dist *d, lorac_dist_stats *s) {
    if (d) *s = d->stats;
    else *s = (lorac_dist_stats){0, 0, 0, 0};
}

/* ---- balancing a batch over the ranks ---- */

typedef struct { int len, pos; } len_pos;

static int by_len(const void *a, const void *b) { /* longest first; ties by position, so the order is total */
    const len_pos *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Greedy over e[0..n) sorted longest first: each group takes as many of
 * the next examples as keep (members x its first, longest, length) <= cap.
 * Writes each example's group to grp (may be NULL); returns the groups used.
 * For a cap, this gives the fewest contiguous groups. */
static int greedy_groups(const len_pos *e, int n, int64_t cap, int *grp) {
    int g = 0;
    for (int i = 0; i < n; g++) {
        const int64_t L = e[i].len > 0 ? e[i].len : 1;
        int64_t k = cap / L;
        if (k < 1) k = 1;
        for (int j = 0; j < k && i < n; j++, i++)
            if (grp) grp[i] = g;
    }
    return g;
}

int64_t lorac_dist_balance(const int *len, int count, int nranks, int *rank_of) {
    if (count <= 0) return 0;
    len_pos *e = malloc(sizeof *e * (size_t)count);
    int *grp = malloc(sizeof *grp * (size_t)count);
    if (!e || !grp || nranks <= 1 || count < nranks) { /* one rank (or no memory): everything to rank 0 */
        int64_t mx = 0;
        for (int i = 0; i < count; i++) {
            rank_of[i] = 0;
            if (len[i] > mx) mx = len[i];
        }
        free(e);
        free(grp);
        return mx * count;
    }
    for (int i = 0; i < count; i++) e[i] = (len_pos){len[i] > 0 ? len[i] : 1, i};
    qsort(e, (size_t)count, sizeof *e, by_len);
    /* the smallest cap (padded tokens of the largest group) that nranks groups meet */
    int64_t lo = e[0].len, hi = (int64_t)e[0].len * count;
    while (lo < hi) { /* greedy_groups falls as the cap rises: bisect */
        const int64_t mid = lo + (hi - lo) / 2;
        if (greedy_groups(e, count, mid, NULL) <= nranks) hi = mid;
        else lo = mid + 1;
    }
    int g = greedy_groups(e, count, lo, grp);
    /* fewer groups than ranks: split the group with the most members (its
     * last, shortest member becomes a group of its own) until every rank has
     * one; splitting never raises a group's padded tokens */
    while (g < nranks) {
        int best = -1, best_n = 1;
        for (int q = 0, i = 0; q < g; q++) {
            int n = 0;
            while (i < count && grp[i] == q) n++, i++;
            if (n > best_n) best = q, best_n = n;
        }
        int last = 0;
        for (int i = 0; i < count; i++)
            if (grp[i] == best) last = i;
        for (int i = last + 1; i < count; i++) grp[i]++; /* renumber the groups after it */
        grp[last] = best + 1;
        g++;
    }
    int64_t worst = 0;
    for (int i = 0, q = 0; q < g; q++) {
        const int first = i;
        while (i < count && grp[i] == q) rank_of[e[i].pos] = q, i++;
        const int64_t cost = (int64_t)(i - first) * e[first].len;
        if (cost > worst) worst = cost;
    }
    free(e);
    free(grp);
    return worst;
}

#ifndef LORAC_HAVE_MPI
/* Without MPI there is only ever the single process: d is always NULL. */
void lorac_dist_stop(lorac_dist *d) { (void)d; }
void lorac_dist_abort(lorac_dist *d, int code) { (void)d, (void)code; }
lorac_status lorac_dist_sum_f32(lorac_dist *d, float *buf, size_t n, const char *what) {
    (void)d, (void)buf, (void)n, (void)what;
    return LORAC_OK;
}
lorac_status lorac_dist_sum_f64(lorac_dist *d, double *buf, size_t n, const char *what) {
    (void)d, (void)buf, (void)n, (void)what;
    return LORAC_OK;
}
lorac_status lorac_dist_barrier(lorac_dist *d, const char *what) {
    (void)d, (void)what;
    return LORAC_OK;
}
lorac_status lorac_dist_describe_hosts(lorac_dist *d, char *buf, size_t n) {
    (void)d;
    lorac_dist_describe_one_host(buf, n);
    return LORAC_OK;
}
#endif
