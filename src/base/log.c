/*
 * log.c - formats a message and hands it to the caller's log hook.
 */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>

void pd_log(const pd_logger *lg, pd_log_level level, const char *fmt, ...) {
    if (!lg || !lg->fn || level < lg->min_level) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    lg->fn(level, buf, lg->user);
}
