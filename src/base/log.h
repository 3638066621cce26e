/*
 * log.h - logging through a caller-supplied hook (no global logger).
 *
 * A pd_logger is a value carried in the context; a NULL fn makes logging a no-op.
 */
#ifndef PD_BASE_LOG_H
#define PD_BASE_LOG_H

#include "base/error.h"

typedef struct pd_logger {
    pd_log_fn fn;
    void *user;
    pd_log_level min_level;
} pd_logger;

void pd_log(const pd_logger *lg, pd_log_level level, const char *fmt, ...) PD_PRINTF(3, 4);

#endif
