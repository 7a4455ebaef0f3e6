/* lorac.h - the public API of liblorac: LoRA / QLoRA fine-tuning of
 * pretrained transformers in C.
 *
 * Conventions
 *  - One prefix: lorac_. Every fallible call returns lorac_status; on failure
 *    lorac_last_error() holds one line: what went wrong, where, and a hint.
 *  - Ownership: a *_create / *_open / *_load returns an object the caller
 *    owns and releases with the matching *_destroy / *_close / *_free, each of
 *    which accepts NULL.
 *  - The library never prints and never exits; progress goes through the
 *    optional log callback.
 */
#ifndef LORAC_H
#define LORAC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LORAC_VERSION "0.1.0"

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
} lorac_status;

/* The message of the last failure on this thread ("no error" if none). */
const char *lorac_last_error(void);
void lorac_clear_error(void);
/* A short name for a status ("bad file format", ...). */
const char *lorac_status_name(lorac_status st);

/* Log callback: level 0 = info, 1 = warning. NULL restores the default
 * (silence). `user` is passed back unchanged. */
typedef void (*lorac_log_fn)(int level, const char *msg, void *user);
void lorac_set_log(lorac_log_fn fn, void *user);

#ifdef __cplusplus
}
#endif
#endif
