/*
 * test_geglu.c - GEGLU: the reference against value * gelu(gate) from act's scalar
 * definition, every variant in geglu.inc against the reference.
 *
 * Shapes: odd and vector-straddling rows/cols (1..1283, incl. 1280), padded row strides
 * on both sides, misaligned pointers, in place (ldy == ldx) and compacting in place
 * (ldy == cols), gates large enough to reach the GELU tails (|x| up to 20).
 * Tolerance: max |diff| <= 1e-5 * max |ref| per call. Stride padding of y and the gate
 * half (when not in place) must stay untouched.
 */
#include "kernel_test_util.h"
#include "kernels/act/act.h"
#include "kernels/act/geglu.h"

#define GEGLU_TOL 1e-5

typedef void (*geglu_fn)(float *y, size_t ldy, const float *x, size_t ldx, int rows, int cols);

static const struct { pd_isa isa; const char *name; geglu_fn fn; } GG[] = {
#define PD_KERNEL(isa, fn) {isa, #fn, fn},
#include "kernels/act/geglu.inc"
#undef PD_KERNEL
};

static void test_ref_direct(void) {
    const float x[2 * 6] = {1.0f, -2.0f, 0.5f, 0.0f, 1.0f, -3.0f, 4.0f, 5.0f, 6.0f, 2.0f, -1.0f, 30.0f};
    float y[2 * 3];
    pd_f32_geglu__ref(y, 3, x, 6, 2, 3);
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 3; j++) {
            double g = x[r * 6 + 3 + j];
            double want = x[r * 6 + j] * (g * 0.5 * erfc(-g / sqrt(2.0)));
            CHECK_NEAR(y[r * 3 + j], want, 1e-6 * fabs(want) + 1e-30);
        }
}

enum { OUT_SEPARATE, OUT_IN_PLACE, OUT_COMPACT };

static void check(int v, int rows, int cols, int pad_x, int pad_y, int mis, int mode, float gate_scale) {
    const size_t ldx = 2 * (size_t)cols + (size_t)pad_x;
    const size_t ldy = mode == OUT_IN_PLACE ? ldx : mode == OUT_COMPACT ? (size_t)cols : (size_t)cols + (size_t)pad_y;
    const size_t nx = (size_t)rows * ldx, ny = (size_t)rows * ldy;
    float *x = kt_alloc(nx, mis), *ref = kt_alloc(nx > ny ? nx : ny, 0);
    kt_fill_value(x, nx, KT_SENTINEL);
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) {
            x[(size_t)r * ldx + (size_t)j] = 2.0f * kt_rand();
            x[(size_t)r * ldx + (size_t)cols + (size_t)j] = gate_scale * kt_rand();
        }
    float *y = mode == OUT_SEPARATE ? kt_alloc(ny, mis) : x;
    if (mode == OUT_SEPARATE) kt_fill_value(y, ny, KT_SENTINEL);
    float *xcopy = kt_alloc(nx, 0);
    memcpy(xcopy, x, nx * sizeof(float));
    pd_f32_geglu__ref(ref, (size_t)cols, xcopy, ldx, rows, cols);
    GG[v].fn(y, ldy, x, ldx, rows, cols);
    float *got = malloc((size_t)rows * (size_t)cols * sizeof(float) + 1);
    for (int r = 0; r < rows; r++) memcpy(got + (size_t)r * cols, y + (size_t)r * ldy, (size_t)cols * sizeof(float));
    size_t worst;
    double err = pd_test_rel_err(got, ref, (size_t)rows * (size_t)cols, &worst);
    CHECK_MSG(err <= GEGLU_TOL, "%s rows=%d cols=%d mode=%d: rel err %.3g at %zu: %.9g vs %.9g", GG[v].name, rows,
              cols, mode, err, worst, got[worst], ref[worst]);
    size_t bad = 0;
    if (mode == OUT_SEPARATE) {
        for (int r = 0; r < rows; r++)
            for (size_t j = (size_t)cols; j < ldy; j++) bad += !kt_same_bits(y[(size_t)r * ldy + j], KT_SENTINEL);
        bad += memcmp(x, xcopy, nx * sizeof(float)) != 0;
    } else if (mode == OUT_IN_PLACE) {
        /* The gate halves and stride padding keep their values. */
        for (int r = 0; r < rows; r++)
            for (size_t j = (size_t)cols; j < ldx; j++)
                bad += !kt_same_bits(x[(size_t)r * ldx + j], xcopy[(size_t)r * ldx + j]);
    } else {
        /* Past the compacted block, x is untouched. */
        for (size_t i = ny; i < nx; i++) bad += !kt_same_bits(x[i], xcopy[i]) && i >= ny;
    }
    CHECK_MSG(bad == 0, "%s rows=%d cols=%d mode=%d: %zu elements outside the output changed", GG[v].name, rows,
              cols, mode, bad);
    free(got);
    kt_free(xcopy, 0);
    if (mode == OUT_SEPARATE) kt_free(y, mis);
    kt_free(x, mis);
    kt_free(ref, 0);
}

static void test_variants(void) {
    static const int cols[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 65, 100, 320, 1280, 1283};
    static const int rows[] = {1, 2, 3, 5, 13};
    int runnable = 0;
    kt_seed(37);
    for (size_t v = 1; v < PD_COUNT(GG); v++) {
        if (!kt_isa_supported(GG[v].isa)) {
            fprintf(stderr, "  SKIP %s: CPU lacks %s\n", GG[v].name, pd_isa_name(GG[v].isa));
            continue;
        }
        runnable++;
        int idx = 0;
        for (size_t c = 0; c < PD_COUNT(cols); c++)
            for (size_t r = 0; r < PD_COUNT(rows); r++, idx++)
                check((int)v, rows[r], cols[c], idx % 3 ? 5 : 0, idx % 4, idx % 2, idx % 3,
                      idx % 4 == 3 ? 20.0f : 4.0f);
    }
    if (!runnable) PD_SKIP("no SIMD GEGLU variant runs on this CPU");
}

static void test_empty(void) {
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (size_t v = 0; v < PD_COUNT(GG); v++) {
        if (!kt_isa_supported(GG[v].isa)) continue;
        GG[v].fn(x, 4, x, 8, 0, 4);
        GG[v].fn(x, 4, x, 8, 1, 0);
    }
    CHECK(x[0] == 1 && x[3] == 4 && x[7] == 8);
}

int main(void) {
    PD_RUN(test_empty);
    PD_RUN(test_ref_direct);
    PD_RUN(test_variants);
    return pd_test_summary();
}
