/* lorac/ranks.h - data-parallel ranks (mpirun / srun) for lorac_llm_fit /
 * lorac_llm_score (lorac_train_config.ranks). Part of lorac.h (its
 * conventions apply). */
#ifndef LORAC_RANKS_H
#define LORAC_RANKS_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Data-parallel ranks: under `mpirun -np N` (or srun) every process runs
 * the same program; lorac_ranks_start joins them. A NULL lorac_ranks is
 * this process alone (rank 0 of 1), valid wherever ranks are taken. */
typedef struct lorac_ranks lorac_ranks;
typedef struct lorac_ranks_stats {
    int64_t collectives;     /* collective calls so far */
    int64_t bytes;           /* bytes this rank contributed to sums */
    double seconds;          /* wall time inside collectives */
    double wait_seconds;     /* of which waiting for the slowest rank */
} lorac_ranks_stats;
/* The rank count / this rank as the launcher set them in the environment
 * (1 / 0 when started by hand), before any start. [any thread] */
LORAC_API int lorac_ranks_launched_size(void);
LORAC_API int lorac_ranks_launched_rank(void);
/* Join the ranks when launched with more than one (*out NULL otherwise);
 * timeout_s (> 0) bounds every wait for the others (LORAC_ERR_COMM then).
 * Fails with a hint in a build without MPI launched as several ranks.
 * Once per process, before starting threads. */
LORAC_API lorac_status lorac_ranks_start(double timeout_s, lorac_ranks **out);
/* Leave the job; every rank calls it. NULL is fine. */
LORAC_API void lorac_ranks_stop(lorac_ranks *r);
/* End every rank of the job at once with exit code `code` (after an error
 * on this rank); returns only for NULL. */
LORAC_API void lorac_ranks_abort(lorac_ranks *r, int code);
LORAC_API int lorac_ranks_rank(const lorac_ranks *r);        /* 0 for NULL */
LORAC_API int lorac_ranks_size(const lorac_ranks *r);        /* 1 for NULL */
LORAC_API const char *lorac_ranks_host(const lorac_ranks *r); /* this rank's host ("" for NULL) */
/* Wait until every rank arrives (`what` names the wait in a timeout error).
 * Every rank calls it. */
LORAC_API lorac_status lorac_ranks_barrier(lorac_ranks *r, const char *what);
/* Where the ranks run, "2 hosts: a (ranks 0-1), b (ranks 2-3)", into
 * buf[0..n). Every rank calls it. */
LORAC_API lorac_status lorac_ranks_describe(lorac_ranks *r, char *buf, size_t n);
/* This rank's communication so far (zeros for NULL). */
LORAC_API lorac_status lorac_ranks_get_stats(const lorac_ranks *r, lorac_ranks_stats *s);

#ifdef __cplusplus
}
#endif
#endif
