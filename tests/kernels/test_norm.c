/*
 * test_norm.c - layer norm and softmax: references against direct formulas, and every
 * variant in layernorm.inc / softmax.inc against the reference.
 *
 * Shapes: odd and vector-straddling column counts (1..1283, incl. 768 and 1280), row
 * strides larger than the row, misaligned pointers, in-place layer norm, NULL
 * gamma/beta, rows with a large common offset (mean 100, std 0.01) or a 1e4 outlier in
 * the first or last column; softmax rows with large magnitudes (scores x 30 and x 1e4)
 * and -inf entries (masking).
 * Tolerance: max |diff| <= 1e-5 * max |ref| per call (fp32 SIMD vs double reference).
 * Elements outside [0, rows) x [0, cols) (the stride padding) must stay untouched.
 */
#include "kernel_test_util.h"
#include "kernels/norm/norm.h"

#define NORM_TOL 1e-5

typedef void (*layernorm_fn)(float *y, size_t ldy, const float *x, size_t ldx, int rows, int cols,
                             const float *gamma, const float *beta, float eps);
typedef void (*softmax_fn)(float *x, size_t ld, int rows, int cols);

static const struct { pd_isa isa; const char *name; layernorm_fn fn; } LN[] = {
#define PD_KERNEL(isa, fn) {isa, #fn, fn},
#include "kernels/norm/layernorm.inc"
#undef PD_KERNEL
};
static const struct { pd_isa isa; const char *name; softmax_fn fn; } SM[] = {
#define PD_KERNEL(isa, fn) {isa, #fn, fn},
#include "kernels/norm/softmax.inc"
#undef PD_KERNEL
};

static const int COLS[] = {1, 2, 3, 7, 8, 15, 16, 17, 24, 31, 32, 33, 63, 64, 65, 77, 100, 320,
                           768, 1280, 1283};

/* Compares the [rows x cols] blocks of got and ref (row strides ld) and checks the
 * stride padding of got still holds KT_SENTINEL. */
static void compare_rows(const float *got, const float *ref, size_t ld, int rows, int cols,
                         const char *what, const char *name) {
    float *g = malloc((size_t)rows * (size_t)cols * sizeof(float));
    float *r = malloc((size_t)rows * (size_t)cols * sizeof(float));
    size_t untouched_bad = 0;
    for (int i = 0; i < rows; i++) {
        memcpy(g + (size_t)i * cols, got + (size_t)i * ld, (size_t)cols * sizeof(float));
        memcpy(r + (size_t)i * cols, ref + (size_t)i * ld, (size_t)cols * sizeof(float));
        for (size_t j = (size_t)cols; j < ld; j++) untouched_bad += !kt_same_bits(got[(size_t)i * ld + j], KT_SENTINEL);
    }
    size_t worst;
    double err = pd_test_rel_err(g, r, (size_t)rows * (size_t)cols, &worst);
    CHECK_MSG(err <= NORM_TOL, "%s %s rows=%d cols=%d: rel err %.3g at %zu: %.9g vs %.9g", name, what,
              rows, cols, err, worst, g[worst], r[worst]);
    CHECK_MSG(untouched_bad == 0, "%s %s cols=%d: %zu padding elements written", name, what, cols, untouched_bad);
    free(g);
    free(r);
}

static void test_layernorm_ref_direct(void) {
    const float x[5] = {1.0f, 2.0f, 3.0f, 4.0f, 10.0f};
    const float gamma[5] = {1.0f, 2.0f, 1.0f, 1.0f, 0.5f};
    const float beta[5] = {0.0f, 1.0f, 0.0f, 0.0f, -1.0f};
    float y[5];
    pd_f32_layernorm__ref(y, 5, x, 5, 1, 5, gamma, beta, 1e-5f);
    double mean = 4.0, var = (9.0 + 4.0 + 1.0 + 0.0 + 36.0) / 5.0, rstd = 1.0 / sqrt(var + 1e-5);
    for (int c = 0; c < 5; c++) CHECK_NEAR(y[c], (x[c] - mean) * rstd * gamma[c] + beta[c], 1e-6);
    pd_f32_layernorm__ref(y, 5, x, 5, 1, 5, NULL, NULL, 1e-5f);
    for (int c = 0; c < 5; c++) CHECK_NEAR(y[c], (x[c] - mean) * rstd, 1e-6);
    float one = 7.0f;
    pd_f32_layernorm__ref(&one, 1, &one, 1, 1, 1, NULL, NULL, 1e-5f);
    CHECK(one == 0.0f);
}

static void test_softmax_ref_direct(void) {
    float x[4] = {1.0f, 2.0f, 3.0f, -INFINITY};
    pd_f32_softmax__ref(x, 4, 1, 4);
    double s = exp(1.0) + exp(2.0) + exp(3.0);
    CHECK_NEAR(x[0], exp(1.0) / s, 1e-7);
    CHECK_NEAR(x[2], exp(3.0) / s, 1e-7);
    CHECK(x[3] == 0.0f);
    float big[3] = {1000.0f, 1000.0f, -1000.0f};
    pd_f32_softmax__ref(big, 3, 1, 3);
    CHECK_NEAR(big[0], 0.5, 1e-7);
    CHECK(big[2] == 0.0f);
}

static void check_layernorm(int v, int rows, int cols, int pad, int mis, bool in_place, bool affine,
                            float offset, float spread, float outlier) {
    size_t ld = (size_t)cols + (size_t)pad;
    float *x = kt_alloc((size_t)rows * ld, mis);
    float *gamma = kt_alloc((size_t)cols, mis), *beta = kt_alloc((size_t)cols, mis);
    kt_fill_value(x, (size_t)rows * ld, KT_SENTINEL);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) x[(size_t)r * ld + c] = offset + spread * kt_rand();
    /* An outlier in the first column (the SIMD variants' shift) or the last. */
    if (outlier != 0.0f)
        for (int r = 0; r < rows; r++) x[(size_t)r * ld + (r % 2 ? (size_t)cols - 1 : 0)] = outlier;
    kt_fill(gamma, (size_t)cols, 2.0f);
    kt_fill(beta, (size_t)cols, 1.0f);
    float *ref = kt_alloc((size_t)rows * ld, 0), *y = kt_alloc((size_t)rows * ld, mis);
    kt_fill_value(ref, (size_t)rows * ld, KT_SENTINEL);
    const float *g = affine ? gamma : NULL, *b = affine ? beta : NULL;
    pd_f32_layernorm__ref(ref, ld, x, ld, rows, cols, g, b, 1e-5f);
    if (in_place) {
        memcpy(y, x, (size_t)rows * ld * sizeof(float));
        LN[v].fn(y, ld, y, ld, rows, cols, g, b, 1e-5f);
    } else {
        kt_fill_value(y, (size_t)rows * ld, KT_SENTINEL);
        LN[v].fn(y, ld, x, ld, rows, cols, g, b, 1e-5f);
    }
    compare_rows(y, ref, ld, rows, cols, in_place ? "in place" : "out of place", LN[v].name);
    kt_free(x, mis);
    kt_free(gamma, mis);
    kt_free(beta, mis);
    kt_free(ref, 0);
    kt_free(y, mis);
}

static void test_layernorm_variants(void) {
    int runnable = 0;
    kt_seed(41);
    for (size_t v = 1; v < PD_COUNT(LN); v++) {
        if (!kt_isa_supported(LN[v].isa)) {
            fprintf(stderr, "  SKIP %s: CPU lacks %s\n", LN[v].name, pd_isa_name(LN[v].isa));
            continue;
        }
        runnable++;
        for (size_t c = 0; c < PD_COUNT(COLS); c++) {
            int i = (int)c;
            check_layernorm((int)v, 1 + i % 4, COLS[c], i % 3 ? 5 : 0, i % 2, i % 3 == 1, i % 4 != 3,
                            0.0f, 1.0f, 0.0f);
            check_layernorm((int)v, 2, COLS[c], 3, 1, false, true, 100.0f, 0.01f, 0.0f);
            check_layernorm((int)v, 3, COLS[c], 0, 0, true, false, -3.0f, 50.0f, 0.0f);
            check_layernorm((int)v, 2, COLS[c], 1, 1, false, true, 0.5f, 1.0f, 1e4f);
        }
    }
    if (!runnable) PD_SKIP("no SIMD layer norm variant runs on this CPU");
}

static void check_softmax(int v, int rows, int cols, int pad, int mis, float scale, bool masked) {
    size_t ld = (size_t)cols + (size_t)pad;
    float *x = kt_alloc((size_t)rows * ld, mis), *ref = kt_alloc((size_t)rows * ld, 0);
    kt_fill_value(x, (size_t)rows * ld, KT_SENTINEL);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float val = scale * kt_rand();
            /* Mask about a third of the entries, never the first (a row keeps one key). */
            if (masked && c > 0 && (kt_rng % 3) == 0) val = -INFINITY;
            x[(size_t)r * ld + c] = val;
        }
    memcpy(ref, x, (size_t)rows * ld * sizeof(float));
    pd_f32_softmax__ref(ref, ld, rows, cols);
    SM[v].fn(x, ld, rows, cols);
    compare_rows(x, ref, ld, rows, cols, masked ? "masked" : "dense", SM[v].name);
    kt_free(x, mis);
    kt_free(ref, 0);
}

static void test_softmax_variants(void) {
    static const int cols[] = {1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 64, 77, 100, 1000, 4096};
    int runnable = 0;
    kt_seed(43);
    for (size_t v = 1; v < PD_COUNT(SM); v++) {
        if (!kt_isa_supported(SM[v].isa)) {
            fprintf(stderr, "  SKIP %s: CPU lacks %s\n", SM[v].name, pd_isa_name(SM[v].isa));
            continue;
        }
        runnable++;
        for (size_t c = 0; c < PD_COUNT(cols); c++) {
            int i = (int)c;
            check_softmax((int)v, 1 + i % 3, cols[c], i % 2 ? 7 : 0, i % 2, 3.0f, false);
            check_softmax((int)v, 2, cols[c], 1, 1, 30.0f, true);
            check_softmax((int)v, 2, cols[c], 0, 0, 1e4f, false);
        }
        /* NaN anywhere in a row makes the row NaN, other rows unaffected. */
        float x[2 * 20];
        kt_fill(x, 40, 1.0f);
        x[7] = NAN;
        SM[v].fn(x, 20, 2, 20);
        int nan0 = 0, nan1 = 0;
        for (int c = 0; c < 20; c++) {
            nan0 += isnan(x[c]) != 0;
            nan1 += isnan(x[20 + c]) != 0;
        }
        CHECK_MSG(nan0 == 20 && nan1 == 0, "%s: NaN row %d/20, clean row %d NaN", SM[v].name, nan0, nan1);
    }
    if (!runnable) PD_SKIP("no SIMD softmax variant runs on this CPU");
}

/* cols = 0 (and rows = 0) read and write nothing. */
static void test_empty(void) {
    float x[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    for (size_t v = 0; v < PD_COUNT(LN); v++) {
        if (!kt_isa_supported(LN[v].isa)) continue;
        LN[v].fn(x, 4, x, 4, 1, 0, NULL, NULL, 1e-5f);
        LN[v].fn(x, 4, x, 4, 0, 4, NULL, NULL, 1e-5f);
    }
    for (size_t v = 0; v < PD_COUNT(SM); v++) {
        if (!kt_isa_supported(SM[v].isa)) continue;
        SM[v].fn(x, 4, 1, 0);
        SM[v].fn(x, 4, 0, 4);
    }
    CHECK(x[0] == 1.0f && x[1] == 2.0f && x[2] == 3.0f && x[3] == 4.0f);
}

int main(void) {
    PD_RUN(test_empty);
    PD_RUN(test_layernorm_ref_direct);
    PD_RUN(test_softmax_ref_direct);
    PD_RUN(test_layernorm_variants);
    PD_RUN(test_softmax_variants);
    return pd_test_summary();
}
