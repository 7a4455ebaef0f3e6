#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_err[1024];

lorac_status lorac_fail(lorac_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return st;
}

void lorac_error_prefix(const char *fmt, ...) {
    char pre[512], old[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    size_t n = strlen(pre);
    if (n > sizeof g_err - 3) n = sizeof g_err - 3;
    memcpy(g_err, pre, n);
    memcpy(g_err + n, ": ", 2);
    size_t room = sizeof g_err - n - 3, ol = strlen(old);
    if (ol > room) ol = room;
    memcpy(g_err + n + 2, old, ol);
    g_err[n + 2 + ol] = 0;
}

const char *lorac_last_error(void) { return g_err[0] ? g_err : "no error"; }

void lorac_clear_error(void) { g_err[0] = 0; }

const char *lorac_status_name(lorac_status st) {
    switch (st) {
    case LORAC_OK: return "ok";
    case LORAC_ERR_IO: return "i/o error";
    case LORAC_ERR_FORMAT: return "bad file format";
    case LORAC_ERR_SHAPE: return "shape mismatch";
    case LORAC_ERR_ARG: return "bad argument";
    case LORAC_ERR_NOMEM: return "out of memory";
    case LORAC_ERR_UNSUPPORTED: return "unsupported";
    case LORAC_ERR_NUMERIC: return "numerical error";
    case LORAC_ERR_DATA: return "bad data";
    case LORAC_ERR_COMM: return "communication failure";
    case LORAC_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

void lorac_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "lorac: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}
