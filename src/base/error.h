/*
 * error.h - status codes, caller-owned error messages and always-on assertions.
 *
 * Environmental failures (bad file, OOM, cancel) return pd_status and describe
 * themselves in a caller-owned pd_error (NULL allowed). Programmer errors use
 * PD_ASSERT, which is always on and aborts with file:line.
 */
#ifndef PD_BASE_ERROR_H
#define PD_BASE_ERROR_H

#include "phonediffusion.h"

#if defined(__GNUC__)
#define PD_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define PD_PRINTF(fmt_idx, arg_idx)
#endif

/* Sets err (if not NULL) to code and a printf-formatted message; returns code, so a
 * caller can write `return pd_error_set(err, PD_ERR_IO, "...", ...);`.
 * The message is truncated to fit pd_error.msg. */
pd_status pd_error_set(pd_error *err, pd_status code, const char *fmt, ...) PD_PRINTF(3, 4);

/* Prefixes an existing message: "<prefix>: <old message>" (truncated to fit). */
void pd_error_prefix(pd_error *err, const char *fmt, ...) PD_PRINTF(2, 3);

/* Clears err to PD_OK and an empty message. */
void pd_error_clear(pd_error *err);

_Noreturn void pd_assert_fail(const char *expr, const char *file, int line);

#define PD_ASSERT(x) ((x) ? (void)0 : pd_assert_fail(#x, __FILE__, __LINE__))

#define PD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PD_MAX(a, b) ((a) > (b) ? (a) : (b))
#define PD_COUNT(arr) (sizeof(arr) / sizeof((arr)[0]))

#endif
