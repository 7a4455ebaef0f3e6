#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>

static lorac_log_fn g_fn;
static void *g_user;

void lorac_set_log(lorac_log_fn fn, void *user) {
    g_fn = fn;
    g_user = user;
}

void lorac_log(int level, const char *fmt, ...) {
    if (!g_fn) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_fn(level, buf, g_user);
}
