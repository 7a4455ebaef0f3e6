/* lorac/core.h - the version, LORAC_API, status codes and the per-thread
 * error message, the log callback, threads, lorac_free: what every other
 * part of the API (lorac.h includes them all) builds on. */
#ifndef LORAC_CORE_H
#define LORAC_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LORAC_VERSION "0.1.0"
#define LORAC_VERSION_MAJOR 0
#define LORAC_VERSION_MINOR 1
#define LORAC_VERSION_PATCH 0

/* LORAC_API marks what liblorac.so exports (src/api/lorac.map lists the
 * same names; every other symbol is local). Nothing to define when using
 * the library. */
#if defined(LORAC_BUILDING_LIBRARY) && defined(__GNUC__)
#define LORAC_API __attribute__((visibility("default")))
#else
#define LORAC_API
#endif

typedef enum lorac_status {
    LORAC_OK = 0,
    LORAC_ERR_IO = 1,          /* file missing, unreadable, unwritable */
    LORAC_ERR_FORMAT = 2,      /* a file is malformed or truncated */
    LORAC_ERR_SHAPE = 3,       /* tensor shape disagrees with config / expectation */
    LORAC_ERR_ARG = 4,         /* bad argument or option value */
    LORAC_ERR_NOMEM = 5,       /* allocation failed or would be absurd */
    LORAC_ERR_UNSUPPORTED = 6, /* valid input lorac cannot handle (yet) */
    LORAC_ERR_NUMERIC = 7,     /* NaN / Inf in loss or gradients */
    LORAC_ERR_DATA = 8,        /* a bad data row */
    LORAC_ERR_COMM = 9,        /* another rank of a distributed run, or the network between them, failed */
    LORAC_ERR_CANCELLED = 10,  /* a callback asked to stop (training cancelled) */
} lorac_status;

/* The message of the last failure on this thread ("no error" if none). */
LORAC_API const char *lorac_last_error(void); /* [any thread] */
LORAC_API void lorac_clear_error(void);
/* A short name for a status ("bad file format", ...). */
LORAC_API const char *lorac_status_name(lorac_status st);

/* Log callback: level 0 = info, 1 = warning. NULL restores the default
 * (silence). `user` is passed back unchanged. */
typedef void (*lorac_log_fn)(int level, const char *msg, void *user);
LORAC_API void lorac_set_log(lorac_log_fn fn, void *user);

/* The library's version string ("0.1.0"): that of the linked library,
 * which may differ from LORAC_VERSION of the header a program was built
 * with. [any thread] */
LORAC_API const char *lorac_version(void);

/* Threads for the library's OpenMP loops and BLAS (process-wide). n <= 0:
 * OMP_NUM_THREADS if set, else every online core. */
LORAC_API void lorac_set_threads(int n);

/* Release a buffer the library returned (ids, text). NULL is fine. [any thread] */
LORAC_API void lorac_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
