/*
 * error.c - status strings and error-message formatting (no global state).
 */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *pd_status_string(pd_status st) {
    switch (st) {
    case PD_OK: return "ok";
    case PD_ERR_INVALID_ARG: return "invalid argument";
    case PD_ERR_IO: return "I/O error";
    case PD_ERR_FORMAT: return "malformed file";
    case PD_ERR_UNSUPPORTED: return "unsupported";
    case PD_ERR_MISSING: return "missing";
    case PD_ERR_SHAPE: return "wrong shape";
    case PD_ERR_OOM: return "out of memory";
    case PD_ERR_CANCELLED: return "cancelled";
    case PD_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *pd_version(void) { return PD_VERSION_STRING; }

pd_status pd_error_set(pd_error *err, pd_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void pd_error_prefix(pd_error *err, const char *fmt, ...) {
    if (!err) return;
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof err->msg - 2) return;
    size_t used = (size_t)n;
    err->msg[used++] = ':';
    err->msg[used++] = ' ';
    size_t room = sizeof err->msg - used - 1;
    size_t len = strlen(old);
    if (len > room) len = room;
    memcpy(err->msg + used, old, len);
    err->msg[used + len] = '\0';
}

void pd_error_clear(pd_error *err) {
    if (!err) return;
    err->code = PD_OK;
    err->msg[0] = '\0';
}

void pd_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "phonediffusion: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
