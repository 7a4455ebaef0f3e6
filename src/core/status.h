/* status.h - error reporting for liblorac.
 *
 * Every fallible library call returns a lorac_status. On failure it also
 * records one human-readable line (what, where, hint) retrievable with
 * lorac_last_error(). The message is thread-local and stays valid until the
 * next failing call on the same thread. The library never prints and never
 * calls exit(). */
#ifndef LORAC_CORE_STATUS_H
#define LORAC_CORE_STATUS_H

#include "lorac.h"

/* Record a formatted error message and return `st` (so callers can write
 * `return lorac_fail(LORAC_ERR_FORMAT, "%s: bad header", path);`). */
lorac_status lorac_fail(lorac_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefix the current error message with "prefix: " (adds context on the way up). */
void lorac_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Programmer-bug assertion: aborts with file:line. Never for bad input. */
#define LORAC_ASSERT(c)                                                        \
    do {                                                                       \
        if (!(c)) lorac_assert_fail(#c, __FILE__, __LINE__);                   \
    } while (0)
void lorac_assert_fail(const char *expr, const char *file, int line);

/* Propagate a failing status. */
#define LORAC_TRY(expr)                                                        \
    do {                                                                       \
        lorac_status st_ = (expr);                                             \
        if (st_ != LORAC_OK) return st_;                                       \
    } while (0)

#endif
