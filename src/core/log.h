/* log.h - the library's only way to say something: through the user's callback. */
#ifndef LORAC_CORE_LOG_H
#define LORAC_CORE_LOG_H
#include "lorac.h"
void lorac_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
