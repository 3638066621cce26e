/*
 * test_groupnorm.c - GroupNorm(+SiLU): the reference against a direct formula, every
 * variant in groupnorm.inc against the reference.
 *
 * Shapes: groups in {1, 2, 32} (and cg = 1), c in {32, 64, 96, 320}, hw in {1, 7, 64,
 * 1000}, misaligned pointers, in place, group sub-ranges [g0, g1) (channels of other
 * groups must stay untouched: sentinels), SiLU on and off, NULL gamma/beta; inputs with
 * |mean| >> std (mean 1000, std 0.01 or 1; mean -300 with a per-channel offset), an
 * outlier in a group's first element (the SIMD shift), a large image (hw = 128 x 128,
 * several flush blocks) and channel runs longer than one chunk (c = 2560, groups 1).
 * Tolerance: max |diff| <= 1e-5 * max |ref| per call (fp32 SIMD vs double reference).
 */
#include "kernel_test_util.h"
#include "kernels/act/act.h"
#include "kernels/norm/groupnorm.h"

#define GN_TOL 1e-5

typedef void (*groupnorm_fn)(float *y, const float *x, int hw, int c, int groups, int g0, int g1,
                             const float *gamma, const float *beta, float eps, bool silu);

static const struct { pd_isa isa; const char *name; groupnorm_fn fn; } GN[] = {
#define PD_KERNEL(isa, fn) {isa, #fn, fn},
#include "kernels/norm/groupnorm.inc"
#undef PD_KERNEL
};

static void test_ref_direct(void) {
    /* hw = 2, c = 4, 2 groups of 2 channels. */
    const float x[8] = {1.0f, 2.0f, 10.0f, 0.0f, 3.0f, 6.0f, -2.0f, 4.0f};
    const float gamma[4] = {1.0f, 2.0f, 0.5f, 1.0f}, beta[4] = {0.0f, 1.0f, -1.0f, 0.5f};
    float y[8];
    pd_f32_groupnorm__ref(y, x, 2, 4, 2, 0, 2, gamma, beta, 1e-5f, false);
    const int idx[2][4] = {{0, 1, 4, 5}, {2, 3, 6, 7}};
    for (int g = 0; g < 2; g++) {
        double m = 0, v = 0;
        for (int i = 0; i < 4; i++) m += x[idx[g][i]];
        m /= 4;
        for (int i = 0; i < 4; i++) v += (x[idx[g][i]] - m) * (x[idx[g][i]] - m);
        v /= 4;
        for (int i = 0; i < 4; i++) {
            int e = idx[g][i], ch = e % 4;
            double want = (x[e] - m) / sqrt(v + 1e-5) * gamma[ch] + beta[ch];
            CHECK_NEAR(y[e], want, 1e-6);
        }
    }
    /* SiLU applies to the normalised value; NULL gamma/beta mean 1/0. */
    float z[8];
    pd_f32_groupnorm__ref(y, x, 2, 4, 2, 0, 2, NULL, NULL, 1e-5f, false);
    pd_f32_groupnorm__ref(z, x, 2, 4, 2, 0, 2, NULL, NULL, 1e-5f, true);
    for (int i = 0; i < 8; i++) CHECK_NEAR(z[i], pd_f32_act_scalar(y[i], PD_ACT_SILU), 1e-7);
    /* One group sub-range leaves the other untouched. */
    for (int i = 0; i < 8; i++) z[i] = KT_SENTINEL;
    pd_f32_groupnorm__ref(z, x, 2, 4, 2, 1, 2, NULL, NULL, 1e-5f, false);
    CHECK(z[0] == KT_SENTINEL && z[1] == KT_SENTINEL && z[4] == KT_SENTINEL && z[5] == KT_SENTINEL);
    CHECK(z[2] == y[2] && z[7] == y[7]);
}

enum { DIST_UNIT, DIST_OFFSET, DIST_OFFSET_WIDE, DIST_CHANNEL_OFFSET, DIST_OUTLIER };

static void check(int v, int hw, int c, int groups, int g0, int g1, int mis, bool in_place,
                  bool affine, bool silu, int dist) {
    const size_t n = (size_t)hw * (size_t)c;
    float *x = kt_alloc(n, mis), *gamma = kt_alloc((size_t)c, mis), *beta = kt_alloc((size_t)c, mis);
    for (size_t i = 0; i < n; i++) {
        const int ch = (int)(i % (size_t)c);
        switch (dist) {
        case DIST_UNIT: x[i] = kt_rand(); break;
        case DIST_OFFSET: x[i] = 1000.0f + 0.01f * kt_rand(); break;
        case DIST_OFFSET_WIDE: x[i] = 1000.0f + kt_rand(); break;
        case DIST_CHANNEL_OFFSET: x[i] = -300.0f + 0.5f * (float)(ch % 7) + 0.1f * kt_rand(); break;
        default: x[i] = 3.0f * kt_rand(); break;
        }
    }
    /* An outlier at each group's first element (the SIMD variants' shift). */
    if (dist == DIST_OUTLIER)
        for (int g = 0; g < groups; g++) x[(size_t)g * (size_t)(c / groups)] = 1e4f;
    kt_fill(gamma, (size_t)c, 2.0f);
    kt_fill(beta, (size_t)c, 1.0f);
    const float *ga = affine ? gamma : NULL, *be = affine ? beta : NULL;
    float *ref = kt_alloc(n, 0), *y = kt_alloc(n, mis);
    kt_fill_value(ref, n, KT_SENTINEL);
    pd_f32_groupnorm__ref(ref, x, hw, c, groups, g0, g1, ga, be, 1e-5f, silu);
    if (in_place) {
        memcpy(y, x, n * sizeof(float));
        GN[v].fn(y, y, hw, c, groups, g0, g1, ga, be, 1e-5f, silu);
    } else {
        kt_fill_value(y, n, KT_SENTINEL);
        GN[v].fn(y, x, hw, c, groups, g0, g1, ga, be, 1e-5f, silu);
    }
    /* Compare the computed channels; the rest must hold their initial bits. */
    const int cg = c / groups, c0 = g0 * cg, c1 = g1 * cg, w = c1 - c0;
    size_t bad = 0;
    if (w > 0) {
        float *gv = malloc((size_t)hw * (size_t)w * sizeof(float)), *rv = malloc((size_t)hw * (size_t)w * sizeof(float));
        for (int p = 0; p < hw; p++) {
            memcpy(gv + (size_t)p * w, y + (size_t)p * c + c0, (size_t)w * sizeof(float));
            memcpy(rv + (size_t)p * w, ref + (size_t)p * c + c0, (size_t)w * sizeof(float));
        }
        size_t worst;
        double err = pd_test_rel_err(gv, rv, (size_t)hw * (size_t)w, &worst);
        CHECK_MSG(err <= GN_TOL,
                  "%s hw=%d c=%d groups=%d [%d,%d) dist=%d silu=%d in_place=%d: rel err %.3g at %zu: %.9g vs %.9g",
                  GN[v].name, hw, c, groups, g0, g1, dist, silu, in_place, err, worst, gv[worst], rv[worst]);
        free(gv);
        free(rv);
    }
    for (size_t i = 0; i < n; i++) {
        const int ch = (int)(i % (size_t)c);
        if (ch >= c0 && ch < c1) continue;
        bad += !kt_same_bits(y[i], in_place ? x[i] : KT_SENTINEL);
    }
    CHECK_MSG(bad == 0, "%s hw=%d c=%d groups=%d [%d,%d): %zu elements of other groups changed", GN[v].name,
              hw, c, groups, g0, g1, bad);
    kt_free(x, mis);
    kt_free(gamma, mis);
    kt_free(beta, mis);
    kt_free(ref, 0);
    kt_free(y, mis);
}

static void test_variants(void) {
    static const int cs[] = {32, 64, 96, 320};
    static const int gs[] = {1, 2, 32};
    static const int hws[] = {1, 7, 64, 1000};
    int runnable = 0;
    kt_seed(31);
    for (size_t v = 1; v < PD_COUNT(GN); v++) {
        if (!kt_isa_supported(GN[v].isa)) {
            fprintf(stderr, "  SKIP %s: CPU lacks %s\n", GN[v].name, pd_isa_name(GN[v].isa));
            continue;
        }
        runnable++;
        int idx = 0;
        for (size_t a = 0; a < PD_COUNT(cs); a++)
            for (size_t b = 0; b < PD_COUNT(gs); b++)
                for (size_t h = 0; h < PD_COUNT(hws); h++, idx++) {
                    const int groups = gs[b];
                    /* Every other case a sub-range of groups. */
                    int g0 = 0, g1 = groups;
                    if (idx % 2 && groups > 1) {
                        g0 = groups / 4 + (idx % 3 == 0);
                        g1 = groups - groups / 3;
                    }
                    check((int)v, hws[h], cs[a], groups, g0, g1, idx % 2, idx % 3 == 1, idx % 5 != 4,
                          (idx / 2) % 2 == 0, idx % 5);
                }
        /* cg = 1 (instance-norm-like), c = 2560 in one group (chunking), a large image
         * (several flush blocks) with a big offset, single-pixel images. */
        check((int)v, 50, 40, 40, 0, 40, 1, false, true, true, DIST_UNIT);
        check((int)v, 33, 2560, 1, 0, 1, 0, true, true, true, DIST_OFFSET_WIDE);
        check((int)v, 9, 2560, 32, 3, 29, 1, false, true, false, DIST_CHANNEL_OFFSET);
        check((int)v, 128 * 128, 128, 32, 0, 32, 0, true, true, true, DIST_OFFSET);
        check((int)v, 1, 320, 32, 0, 32, 1, false, true, true, DIST_UNIT);
    }
    if (!runnable) PD_SKIP("no SIMD group norm variant runs on this CPU");
}

/* hw = 0 and empty group ranges write nothing. */
static void test_empty(void) {
    float x[64];
    kt_fill(x, 64, 1.0f);
    float y[64];
    for (size_t v = 0; v < PD_COUNT(GN); v++) {
        if (!kt_isa_supported(GN[v].isa)) continue;
        kt_fill_value(y, 64, KT_SENTINEL);
        GN[v].fn(y, x, 0, 32, 4, 0, 4, NULL, NULL, 1e-5f, true);
        GN[v].fn(y, x, 2, 32, 4, 2, 2, NULL, NULL, 1e-5f, true);
        int bad = 0;
        for (int i = 0; i < 64; i++) bad += !kt_same_bits(y[i], KT_SENTINEL);
        CHECK_MSG(bad == 0, "%s wrote on an empty range", GN[v].name);
    }
}

int main(void) {
    PD_RUN(test_empty);
    PD_RUN(test_ref_direct);
    PD_RUN(test_variants);
    return pd_test_summary();
}
