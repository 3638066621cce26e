/*
 * test.h - a tiny test harness (in the spirit of ccv's case.h).
 *
 * A test file defines `static void test_x(void)` functions and a main() that calls
 * PD_RUN(test_x) for each, then returns pd_test_summary(). Checks record a failure
 * with file:line and continue; PD_SKIP() marks the current test skipped. The summary
 * prints "N passed, N failed, N skipped" and returns non-zero on any failure.
 *
 * Golden data: pd_test_golden_dir() is $PD_GOLDEN_DIR, else the path baked in at
 * build time (../shared/golden beside the repository). Parity tests call
 * PD_REQUIRE_GOLDEN() first: when the data is absent they are skipped, except under
 * CI (env CI set), where its absence is a failure.
 */
#ifndef PD_TEST_H
#define PD_TEST_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef PD_GOLDEN_DIR_DEFAULT
#define PD_GOLDEN_DIR_DEFAULT "../shared/golden"
#endif

static int pd_test_passed, pd_test_failed, pd_test_skipped;
static int pd_test_cur_failed, pd_test_cur_skipped;
static const char *pd_test_cur_name;

#define PD_FAIL(...)                                                              \
    do {                                                                          \
        fprintf(stderr, "  FAIL %s (%s:%d): ", pd_test_cur_name, __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__);                                             \
        fprintf(stderr, "\n");                                                    \
        pd_test_cur_failed++;                                                     \
    } while (0)

#define CHECK(cond)                                   \
    do {                                              \
        if (!(cond)) PD_FAIL("CHECK(%s)", #cond);     \
    } while (0)

#define CHECK_MSG(cond, ...)                          \
    do {                                              \
        if (!(cond)) PD_FAIL(__VA_ARGS__);            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                          \
    do {                                                                            \
        long long va_ = (long long)(a), vb_ = (long long)(b);                       \
        if (va_ != vb_) PD_FAIL("%s == %s: %lld != %lld", #a, #b, va_, vb_);        \
    } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                             \
    do {                                                                            \
        const char *h_ = (hay), *n_ = (needle);                                     \
        if (!h_ || !strstr(h_, n_)) PD_FAIL("'%s' does not contain '%s'", h_ ? h_ : "(null)", n_); \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                       \
    do {                                                                            \
        double va_ = (a), vb_ = (b);                                                \
        if (!(fabs(va_ - vb_) <= (tol))) PD_FAIL("%s ~ %s: %.9g vs %.9g (tol %.3g)", #a, #b, va_, vb_, (double)(tol)); \
    } while (0)

/* Skips the rest of the current test (call from the test function itself). */
#define PD_SKIP(...)                                        \
    do {                                                    \
        fprintf(stderr, "  SKIP %s: ", pd_test_cur_name);   \
        fprintf(stderr, __VA_ARGS__);                       \
        fprintf(stderr, "\n");                              \
        pd_test_cur_skipped = 1;                            \
        return;                                             \
    } while (0)

static inline const char *pd_test_golden_dir(void) {
    const char *e = getenv("PD_GOLDEN_DIR");
    return (e && *e) ? e : PD_GOLDEN_DIR_DEFAULT;
}

static inline bool pd_test_golden_present(void) {
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/README.md", pd_test_golden_dir());
    return stat(p, &st) == 0;
}

/* Path of a file under the golden directory (static buffer per call site use). */
static inline const char *pd_test_golden_path(char *buf, size_t n, const char *rel) {
    snprintf(buf, n, "%s/%s", pd_test_golden_dir(), rel);
    return buf;
}

#define PD_REQUIRE_GOLDEN()                                                          \
    do {                                                                             \
        if (!pd_test_golden_present()) {                                             \
            if (getenv("CI")) {                                                      \
                PD_FAIL("golden data missing at %s (required under CI)", pd_test_golden_dir()); \
                return;                                                              \
            }                                                                        \
            PD_SKIP("golden data not found at %s", pd_test_golden_dir());            \
        }                                                                            \
    } while (0)

static inline void pd_test_run(const char *name, void (*fn)(void)) {
    pd_test_cur_name = name;
    pd_test_cur_failed = 0;
    pd_test_cur_skipped = 0;
    fn();
    if (pd_test_cur_failed) {
        pd_test_failed++;
        fprintf(stderr, "[FAIL] %s\n", name);
    } else if (pd_test_cur_skipped) {
        pd_test_skipped++;
        fprintf(stderr, "[SKIP] %s\n", name);
    } else {
        pd_test_passed++;
        fprintf(stderr, "[ OK ] %s\n", name);
    }
}

#define PD_RUN(fn) pd_test_run(#fn, fn)

static inline int pd_test_summary(void) {
    printf("%d passed, %d failed, %d skipped\n", pd_test_passed, pd_test_failed, pd_test_skipped);
    return pd_test_failed ? 1 : 0;
}

/* Max |a - b| relative to max |b| over n floats; also the index of the worst one. */
static inline double pd_test_rel_err(const float *a, const float *b, size_t n, size_t *worst) {
    double maxref = 0, maxdiff = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)b[i]);
        if (r > maxref) maxref = r;
    }
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= maxdiff)) { /* also catches NaN */
            maxdiff = isnan(d) ? INFINITY : d;
            wi = i;
        }
    }
    if (worst) *worst = wi;
    return maxref > 0 ? maxdiff / maxref : maxdiff;
}

#endif
