/*
 * test_act.c - activations: the reference against known values, and every variant in
 * act.inc against the reference element by element.
 *
 * Inputs: special values (+-0, +-inf, NaN, +-100, tiny and denormal, the polynomial
 * interval edges of the GELU fit), a sweep over magnitudes 1e-6..1e3 of both signs,
 * lengths around the vector widths (tails), in-place use and misaligned pointers.
 * Tolerance (per element): |y - ref| <= 1e-6 * |ref| + 1e-34 (measured: <= 4 ulp, i.e.
 * ~2.4e-7, for results above 1e-34; smaller ones may be flushed to zero, see act.h);
 * NaN exactly where the reference is NaN, infinities equal.
 * Elements past n must stay untouched.
 */
#include <float.h>

#include "kernel_test_util.h"
#include "kernels/act/act.h"

typedef struct variant {
    pd_isa isa;
    const char *name;
    void (*fn)(float *y, const float *x, size_t n, pd_act act);
} variant;

static const variant VARIANTS[] = {
#define PD_KERNEL(isa, fn) {isa, #fn, fn},
#include "kernels/act/act.inc"
#undef PD_KERNEL
};

static const char *const ACT_NAMES[PD_ACT_COUNT] = {"none", "gelu", "quick_gelu", "silu", "relu"};

static bool close_enough(float y, float r) {
    if (isnan(r)) return isnan(y);
    if (isinf(r)) return y == r;
    return fabs((double)y - r) <= 1e-6 * fabs((double)r) + 1e-34;
}

/* Checks fn on x[0..n) against the reference; y (out of place, misaligned by mis) and
 * in place. */
static void check(const variant *v, const float *x, size_t n, pd_act act, int mis) {
    float *ref = kt_alloc(n + 1, 0);
    float *y = kt_alloc(n + 8, mis);
    float *inplace = kt_alloc(n + 8, mis);
    pd_f32_act__ref(ref, x, n, act);
    kt_fill_value(y, n + 8, KT_SENTINEL);
    memcpy(inplace, x, n * sizeof(float));
    kt_fill_value(inplace + n, 8, KT_SENTINEL);
    v->fn(y, x, n, act);
    v->fn(inplace, inplace, n, act);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (!close_enough(y[i], ref[i]) || !kt_same_bits(y[i], inplace[i])) {
            if (!bad) first = i;
            bad++;
        }
    CHECK_MSG(bad == 0, "%s %s n=%zu: %zu wrong, first x=%.9g: got %.9g (in place %.9g), ref %.9g",
              v->name, ACT_NAMES[act], n, bad, bad ? x[first] : 0.0, bad ? y[first] : 0.0,
              bad ? inplace[first] : 0.0, bad ? ref[first] : 0.0);
    for (size_t i = n; i < n + 8; i++) {
        CHECK_MSG(kt_same_bits(y[i], KT_SENTINEL), "%s n=%zu: wrote y[%zu]", v->name, n, i);
        CHECK_MSG(kt_same_bits(inplace[i], KT_SENTINEL), "%s n=%zu: wrote x[%zu]", v->name, n, i);
    }
    kt_free(ref, 0);
    kt_free(y, mis);
    kt_free(inplace, mis);
}

static void test_ref_known_values(void) {
    const struct { float x; double gelu, silu, quick; } T[] = {
        {1.0f, 0.84134474606854295, 0.73105857863000488, 0.84579576879363597},
        {-1.0f, -0.15865525393145705, -0.26894142136999512, -0.15420423120636403},
        {3.0f, 2.9959503059051097, 2.8577223804672997, 2.9819286893329156},
        {-3.0f, -0.0040496940948902836, -0.14227761953270034, -0.018071310667084439},
        {-10.0f, -7.6198530241605261e-23, -0.00045397868702434395, -4.0579594372685479e-7},
    };
    for (size_t i = 0; i < PD_COUNT(T); i++) {
        CHECK_NEAR(pd_f32_act_scalar(T[i].x, PD_ACT_GELU), T[i].gelu, 1e-7 * fabs(T[i].gelu));
        CHECK_NEAR(pd_f32_act_scalar(T[i].x, PD_ACT_SILU), T[i].silu, 1e-7 * fabs(T[i].silu));
        CHECK_NEAR(pd_f32_act_scalar(T[i].x, PD_ACT_QUICK_GELU), T[i].quick, 1e-6 * fabs(T[i].quick));
        CHECK(pd_f32_act_scalar(T[i].x, PD_ACT_NONE) == T[i].x);
    }
    for (int a = 1; a < PD_ACT_COUNT; a++) {
        if (a == PD_ACT_RELU) continue;   /* below */
        CHECK(pd_f32_act_scalar(INFINITY, (pd_act)a) == INFINITY);
        float z = pd_f32_act_scalar(-INFINITY, (pd_act)a);
        CHECK(z == 0.0f && signbit(z));
        CHECK(isnan(pd_f32_act_scalar(NAN, (pd_act)a)));
        CHECK(pd_f32_act_scalar(100.0f, (pd_act)a) == 100.0f);
        CHECK(fabsf(pd_f32_act_scalar(-100.0f, (pd_act)a)) < 1e-39f);
        CHECK(pd_f32_act_scalar(0.0f, (pd_act)a) == 0.0f);
    }
    /* RELU: exact, NaN and -0 pass through, negatives (and -inf) give +0. */
    CHECK(pd_f32_act_scalar(2.5f, PD_ACT_RELU) == 2.5f);
    CHECK(pd_f32_act_scalar(1e-45f, PD_ACT_RELU) == 1e-45f);
    CHECK(pd_f32_act_scalar(INFINITY, PD_ACT_RELU) == INFINITY);
    float r = pd_f32_act_scalar(-3.0f, PD_ACT_RELU);
    CHECK(r == 0.0f && !signbit(r));
    r = pd_f32_act_scalar(-INFINITY, PD_ACT_RELU);
    CHECK(r == 0.0f && !signbit(r));
    r = pd_f32_act_scalar(-0.0f, PD_ACT_RELU);
    CHECK(r == 0.0f && signbit(r));
    CHECK(isnan(pd_f32_act_scalar(NAN, PD_ACT_RELU)));
}

static void test_variants_special_values(void) {
    const float sp[] = {
        0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 100.0f, -100.0f, 1e-30f, -1e-30f, 1e-45f,
        -1e-45f, 1e-38f, -3e-39f, 88.0f, -88.0f, 88.8f, -88.8f, 89.5f, -89.5f, 104.0f, -104.0f,
        FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN,
        /* GELU fit interval edges (|x| = 1, 2, 3, 4, 6, 8, 11, 12.5) and around them. */
        1.0f, -1.0f, 2.0f, -2.0f, 3.0f, -3.0f, 4.0f, -4.0f, 6.0f, -6.0f, 8.0f, -8.0f, 11.0f,
        -11.0f, 12.49f, -12.49f, 12.5f, -12.5f, 12.51f, -12.51f, 13.0f, -13.0f, 16.1f, -16.1f,
        0.999999f, -5.99999f,
        /* sigmoid / quick-GELU underflow region */
        -50.0f, -52.0f, -60.0f, -87.0f, -87.5f,
    };
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) {
        if (!kt_isa_supported(VARIANTS[v].isa)) continue;
        for (int a = 0; a < PD_ACT_COUNT; a++) check(&VARIANTS[v], sp, PD_COUNT(sp), (pd_act)a, 1);
    }
}

static void test_variants_sweep(void) {
    const size_t n = 20000;
    float *x = kt_alloc(n, 0);
    kt_seed(3);
    /* Log-uniform magnitudes 1e-6 .. 1e3, random sign, plus a dense band in [-20, 20]. */
    for (size_t i = 0; i < n; i++) {
        double u = 0.5 * (kt_rand() + 1.0);
        x[i] = i % 2 ? (float)(pow(10.0, -6.0 + 9.0 * u) * (kt_rand() < 0 ? -1 : 1)) : 20.0f * kt_rand();
    }
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) {
        if (!kt_isa_supported(VARIANTS[v].isa)) continue;
        for (int a = 0; a < PD_ACT_COUNT; a++) check(&VARIANTS[v], x, n, (pd_act)a, 0);
    }
    kt_free(x, 0);
}

static void test_variants_lengths(void) {
    static const size_t lens[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000};
    float x[1000];
    kt_seed(5);
    kt_fill(x, 1000, 8.0f);
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) {
        if (!kt_isa_supported(VARIANTS[v].isa)) continue;
        for (size_t l = 0; l < PD_COUNT(lens); l++)
            for (int a = 0; a < PD_ACT_COUNT; a++) check(&VARIANTS[v], x, lens[l], (pd_act)a, (int)(l % 2));
    }
}

static void test_variant_list(void) {
    CHECK(VARIANTS[0].isa == PD_ISA_SCALAR && VARIANTS[0].fn == pd_f32_act__ref);
    int runnable = 0;
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) {
        if (kt_isa_supported(VARIANTS[v].isa)) runnable++;
        else fprintf(stderr, "  SKIP %s: CPU lacks %s\n", VARIANTS[v].name, pd_isa_name(VARIANTS[v].isa));
    }
    if (!runnable) PD_SKIP("no SIMD activation variant runs on this CPU");
}

int main(void) {
    PD_RUN(test_variant_list);
    PD_RUN(test_ref_known_values);
    PD_RUN(test_variants_special_values);
    PD_RUN(test_variants_sweep);
    PD_RUN(test_variants_lengths);
    return pd_test_summary();
}
