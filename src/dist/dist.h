/* dist.h - data-parallel training over MPI: the one room that knows about
 * processes other than this one.
 *
 * Data parallelism for LoRA, in one paragraph. Every rank (process) holds
 * the whole frozen base and the same trainable tensors. A global batch of
 * B examples is cut into N shards, one per rank (lorac_dist_balance); each rank runs
 * forward and backward on its shard only, with the loss scaled by the
 * GLOBAL number of loss terms, so its gradients are its share of the global
 * batch's gradient. Summing the shares over ranks (an allreduce) gives every
 * rank the gradient one process would have formed for the whole batch, and
 * every rank then takes the same AdamW step. Only trainable gradients cross
 * the network: for LoRA a few MB per step, not the model.
 *
 * The sum is taken in rank order, (((g0 + g1) + g2) + ...), through an MPI
 * operation declared non-commutative: MPI then may not reorder the operands
 * by arrival, so the result is the same bits on every rank and in every run
 * with the same number of ranks. It differs from one process's result only
 * by the order in which the rows of the batch were summed (float rounding).
 *
 * Waiting is bounded: every collective polls its request and gives up after
 * the timeout with one error (LORAC_ERR_COMM) naming what it waited for (a
 * rank that died or a network that broke), so no rank hangs forever.
 *
 * A NULL lorac_dist is the single process: size 1, rank 0, every sum the
 * identity. The library builds without MPI (lorac_dist_available() == 0);
 * then lorac_dist_start fails when a launcher started several ranks. */
#ifndef LORAC_DIST_DIST_H
#define LORAC_DIST_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct lorac_dist lorac_dist;

/* Counters of the communication so far (per rank). */
typedef struct lorac_dist_stats {
    int64_t collectives;   /* collective calls */
    int64_t bytes;         /* payload bytes handed to allreduce (this rank's contribution) */
    double seconds;        /* wall time spent inside collectives (waiting included) */
    double wait_seconds;   /* of which waiting for the slowest rank: barriers and sums of <= 64 bytes */
} lorac_dist_stats;

/* 1 when this build has MPI. */
int lorac_dist_available(void);

/* The rank count a launcher (mpirun / mpiexec / srun) set in the
 * environment, or 1 when the process was started by hand. */
int lorac_dist_launched_size(void);
/* This process's rank as the launcher set it (0 when started by hand). */
int lorac_dist_launched_rank(void);

/* Start MPI when the process was launched with more than one rank; *out is
 * NULL (the single process) otherwise. timeout_s bounds every wait for the
 * other ranks. Fails (with a hint) when launched with several ranks by a
 * build without MPI. Call once, before any thread is started. */
lorac_status lorac_dist_start(double timeout_s, lorac_dist **out);

/* Finalize MPI (every rank must call it; d may be NULL). */
void lorac_dist_stop(lorac_dist *d);

/* End every rank of the job at once (after an error on this rank), with
 * exit code `code`. Does nothing when d is NULL. */
void lorac_dist_abort(lorac_dist *d, int code);

int lorac_dist_rank(const lorac_dist *d);  /* 0 for NULL */
int lorac_dist_size(const lorac_dist *d);  /* 1 for NULL */
/* This rank's host name (empty for NULL). */
const char *lorac_dist_host(const lorac_dist *d);

/* In place: buf[i] = sum over ranks of buf[i], summed in rank order, the
 * same bits on every rank. `what` names the data in a timeout error. */
lorac_status lorac_dist_sum_f32(lorac_dist *d, float *buf, size_t n, const char *what);
lorac_status lorac_dist_sum_f64(lorac_dist *d, double *buf, size_t n, const char *what);
/* Wait until every rank has arrived (bounded by the timeout). */
lorac_status lorac_dist_barrier(lorac_dist *d, const char *what);

void lorac_dist_get_stats(const lorac_dist *d, lorac_dist_stats *s);

/* Where the ranks run, e.g. "2 hosts: alpha (ranks 0-1), beta (ranks 2-3)":
 * a collective (every rank calls it); "1 host: NAME" for NULL. */
lorac_status lorac_dist_describe_hosts(lorac_dist *d, char *buf, size_t n);

/* Share a batch of `count` examples of lengths len[] out over `nranks`
 * ranks (count >= nranks) so that the ranks' padded work, examples x
 * longest example, is about equal: the examples sorted by length are cut
 * into nranks contiguous groups minimising the largest group's padded
 * tokens (a rank's shard is padded to its own longest example, so grouping
 * similar lengths also wastes the least on padding). rank_of[i] gets the
 * rank of example i; every rank gets at least one. Deterministic: the same
 * lengths give the same shares on every rank. Returns the largest group's
 * padded tokens. */
int64_t lorac_dist_balance(const int *len, int count, int nranks, int *rank_of);

#endif
