/* cli_dist.c - the CLI's side of a data-parallel run (lorac.h's lorac_ranks_*).
 *
 * Under `mpirun -np N lorac train ...` every rank runs this same program.
 * Rank 0 speaks for the job: it alone prints progress and results and
 * writes files. The other ranks are silent (their stdout and stderr go to
 * /dev/null) except for an error, which each rank prints as one line on the
 * stderr it was started with before it ends the whole job.
 *
 * When another rank fails, the launcher ends this one with SIGTERM; the
 * handler prints one line saying so (a checkpoint is written whole or not
 * at all, so the newest one on disk is intact) and exits. */
#define _POSIX_C_SOURCE 200809L /* sigaction (the build defines it too; a file compiles on its own) */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

lorac_ranks *cli_ranks;
static int err_fd = 2;        /* where this rank's error line goes */
static char term_msg[1024];   /* the SIGTERM line, made before it is needed */

int cli_err_fd(void) { return err_fd; }

static volatile sig_atomic_t said; /* this rank has printed its own error: end quietly */

static void on_sigterm(int sig) {
    if (!said) {
        ssize_t w = write(err_fd, term_msg, strlen(term_msg));
        (void)w;
    }
    _exit(128 + sig);
}

void cli_dist_start(const cli_args *a, const char *ckpt_hint) {
    const double timeout = cli_num(a, "dist-timeout", 300, 1, 1e7);
    cli_check(a->cmd, lorac_ranks_start(timeout, &cli_ranks));
    if (!cli_ranks) return;
    const int rank = lorac_ranks_rank(cli_ranks), size = lorac_ranks_size(cli_ranks);
    snprintf(term_msg, sizeof term_msg, "lorac %s: rank %d of %d (%s): stopped by the launcher: another rank failed or "
             "the job was cancelled; %s\n", a->cmd, rank, size, lorac_ranks_host(cli_ranks),
             ckpt_hint ? ckpt_hint : "nothing was saved (no --save-every / --out)");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigterm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    if (rank == 0) return;
    int keep = dup(2), null = open("/dev/null", O_WRONLY);
    if (keep < 0 || null < 0) return; /* then this rank simply stays talkative */
    fflush(stdout);
    fflush(stderr);
    err_fd = keep;
    dup2(null, 1);
    dup2(null, 2);
    close(null);
}

int cli_is_writer(void) { return lorac_ranks_rank(cli_ranks) == 0; }

void cli_dist_end(void) {
    lorac_ranks_stop(cli_ranks);
    cli_ranks = NULL;
}

/* A usage error comes from the command line, which every rank shares, so
 * every rank meets it: each ends by itself (rank 0 alone has printed it).
 * Any other error may be this rank's alone, and ends the whole job. */
int cli_dist_quiet_error(int code) { return cli_ranks && code == EXIT_USAGE && lorac_ranks_rank(cli_ranks) != 0; }

void cli_dist_fail(int code) {
    if (!cli_ranks) return;
    said = 1; /* the launcher's SIGTERM, which MPI_Abort brings, adds no second line */
    if (code == EXIT_USAGE) {
        /* every rank meets it; none leaves before rank 0 has said it (a rank
         * that exits first may make the launcher stop the others) */
        lorac_ranks_barrier(cli_ranks, "the ranks' exit after a usage error");
        cli_dist_end();
    }
    else lorac_ranks_abort(cli_ranks, code);
}

const char *cli_dist_where(void) {
    static char buf[512];
    if (!cli_ranks) return "";
    snprintf(buf, sizeof buf, "rank %d of %d (%s): ", lorac_ranks_rank(cli_ranks), lorac_ranks_size(cli_ranks),
             lorac_ranks_host(cli_ranks));
    return buf;
}

int cli_dist_refuse(const char *cmd) {
    /* under mpirun / srun with several ranks, only training is shared out;
     * any other command would run N times over, writing the same files */
    if (lorac_ranks_launched_size() <= 1 || !strcmp(cmd, "train")) return -1;
    if (lorac_ranks_launched_rank() != 0) return EXIT_USAGE; /* rank 0 says it */
    fprintf(stderr, "lorac %s: launched as %d ranks, but only 'lorac train' runs data-parallel; hint: run it "
            "without mpirun / srun\n", cmd, lorac_ranks_launched_size());
    return EXIT_USAGE;
}
