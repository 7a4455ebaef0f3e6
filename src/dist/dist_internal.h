/* dist_internal.h - the lorac_dist handle, shared by dist.c and dist_mpi.c. */
#ifndef LORAC_DIST_INTERNAL_H
#define LORAC_DIST_INTERNAL_H

#include "dist/dist.h"

struct lorac_dist {
    int rank, size;
    double timeout_s;        /* bound on every wait for the other ranks */
    char host[256];
    lorac_dist_stats stats;
    void *mpi;               /* dist_mpi.c's state (communicator, operations) */
};

/* "1 host: NAME" (this machine): lorac_dist_describe_hosts of the single process. */
void lorac_dist_describe_one_host(char *buf, size_t n);

#ifdef LORAC_HAVE_MPI
lorac_status lorac_dist_mpi_start(int launched, double timeout_s, lorac_dist **out);
#endif

#endif
