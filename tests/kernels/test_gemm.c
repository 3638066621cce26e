/*
 * test_gemm.c - pd_gemm_pack and every GEMM variant in gemm.inc against the reference.
 *
 * The reference itself is checked against a direct double-precision product over the
 * unpacked weight (which also proves the pack layout); every SIMD variant is checked
 * against the reference on awkward shapes (m, n, k not multiples of the tile), padded
 * strides, misaligned pointers, column splits (n0 > 0, n1 inside a panel), all
 * activations, bias, residual (separate and aliasing c), and F16/BF16 packed weights.
 * Every call also proves it wrote nothing outside C[0..m) x [n0..n1) (sentinels).
 *
 * Tolerance: fp32 variants vs the double-accumulating reference, max |diff| <= 1e-5 *
 * max |ref| over the checked block (k <= 333 with inputs in [-1, 1]).
 */
#include <limits.h>

#include "base/half.h"
#include "kernel_test_util.h"
#include "kernels/act/act.h"
#include "kernels/gemm/gemm.h"

#define GEMM_TOL 1e-5

typedef struct variant {
    pd_isa isa;
    const char *name;
    void (*fn)(const pd_gemm_args *args);
    int mr, nr;
} variant;

static const variant VARIANTS[] = {
#define PD_KERNEL(isa, fn, mr, nr) {isa, #fn, fn, mr, nr},
#include "kernels/gemm/gemm.inc"
#undef PD_KERNEL
};

enum { RES_NONE, RES_SEPARATE, RES_ALIAS };

typedef struct gemm_case {
    int m, n, k;
    int n0, n1;
    pd_act act;
    bool bias;
    int res;        /* RES_* */
    int lda_pad, ldc_pad, ldres_pad;
    int misalign;   /* 0 or 1 float */
    float a_scale;
} gemm_case;

/* Inputs of one case, independent of the variant (W unpacked). */
typedef struct gemm_data {
    gemm_case c;
    size_t lda, ldc, ldres;
    float *a, *w, *bias, *res, *c_init;
} gemm_data;

static void data_make(gemm_data *d, const gemm_case *c) {
    memset(d, 0, sizeof *d);
    d->c = *c;
    d->lda = (size_t)c->k + (size_t)c->lda_pad;
    d->ldc = (size_t)c->n + (size_t)c->ldc_pad;
    d->ldres = (size_t)c->n + (size_t)c->ldres_pad;
    d->a = kt_alloc((size_t)c->m * d->lda, c->misalign);
    kt_fill(d->a, (size_t)c->m * d->lda, c->a_scale);
    d->w = kt_alloc((size_t)c->n * (size_t)c->k, 0);
    kt_fill(d->w, (size_t)c->n * (size_t)c->k, 1.0f);
    if (c->bias) {
        d->bias = kt_alloc((size_t)c->n, 0);
        kt_fill(d->bias, (size_t)c->n, 1.0f);
    }
    if (c->res == RES_SEPARATE) {
        d->res = kt_alloc((size_t)c->m * d->ldres, c->misalign);
        kt_fill(d->res, (size_t)c->m * d->ldres, 2.0f);
    }
    /* Initial C: sentinels, except the aliased residual's block. */
    d->c_init = kt_alloc((size_t)c->m * d->ldc, 0);
    kt_fill_value(d->c_init, (size_t)c->m * d->ldc, KT_SENTINEL);
    if (c->res == RES_ALIAS)
        for (int i = 0; i < c->m; i++)
            for (int j = c->n0; j < c->n1; j++) d->c_init[(size_t)i * d->ldc + j] = 2.0f * kt_rand();
}

static void data_free(gemm_data *d) {
    kt_free(d->a, d->c.misalign);
    kt_free(d->w, 0);
    kt_free(d->bias, 0);
    kt_free(d->res, d->c.misalign);
    kt_free(d->c_init, 0);
}

static bool pack(pd_packed_w *pw, const gemm_data *d, int nr) {
    pd_error err;
    pd_status st = pd_gemm_pack(pw, nr, d->w, PD_DTYPE_F32, (size_t)d->c.k, d->c.n, d->c.k,
                                d->bias, PD_DTYPE_F32, &err);
    CHECK_MSG(st == PD_OK, "pack failed: %s", err.msg);
    return st == PD_OK;
}

/* Runs fn on a fresh copy of the initial C; returns the C buffer (misaligned as the
 * case says; free with kt_free(c, misalign)). */
static float *run(void (*fn)(const pd_gemm_args *), const gemm_data *d, const pd_packed_w *pw) {
    const gemm_case *c = &d->c;
    float *cbuf = kt_alloc((size_t)c->m * d->ldc, c->misalign);
    memcpy(cbuf, d->c_init, (size_t)c->m * d->ldc * sizeof(float));
    pd_gemm_args g = {
        .m = c->m, .n0 = c->n0, .n1 = c->n1, .a = d->a, .lda = d->lda, .w = pw,
        .c = cbuf, .ldc = d->ldc, .act = c->act,
    };
    if (c->res == RES_SEPARATE) {
        g.res = d->res;
        g.ldres = d->ldres;
    } else if (c->res == RES_ALIAS) {
        g.res = cbuf;
        g.ldres = d->ldc;
    }
    fn(&g);
    return cbuf;
}

/* Compares got vs ref on the output block and checks every other element of got kept
 * its initial bits. Returns the relative error. */
static double compare(const gemm_data *d, const float *got, const float *ref, const char *name) {
    const gemm_case *c = &d->c;
    int w = c->n1 - c->n0;
    double err = 0.0;
    if (c->m > 0 && w > 0) {
        float *g = malloc((size_t)c->m * (size_t)w * sizeof(float));
        float *r = malloc((size_t)c->m * (size_t)w * sizeof(float));
        for (int i = 0; i < c->m; i++) {
            memcpy(g + (size_t)i * w, got + (size_t)i * d->ldc + c->n0, (size_t)w * sizeof(float));
            memcpy(r + (size_t)i * w, ref + (size_t)i * d->ldc + c->n0, (size_t)w * sizeof(float));
        }
        size_t worst;
        err = pd_test_rel_err(g, r, (size_t)c->m * (size_t)w, &worst);
        CHECK_MSG(err <= GEMM_TOL,
                  "%s m=%d n=%d k=%d [%d,%d) act=%d bias=%d res=%d: rel err %.3g at (%zu,%zu): %.9g vs %.9g",
                  name, c->m, c->n, c->k, c->n0, c->n1, (int)c->act, c->bias, c->res, err,
                  worst / (size_t)w, worst % (size_t)w + (size_t)c->n0, g[worst], r[worst]);
        free(g);
        free(r);
    }
    size_t bad = 0;
    for (int i = 0; i < c->m; i++)
        for (size_t j = 0; j < d->ldc; j++)
            if ((int)j < c->n0 || (int)j >= c->n1)
                bad += !kt_same_bits(got[(size_t)i * d->ldc + j], d->c_init[(size_t)i * d->ldc + j]);
    CHECK_MSG(bad == 0, "%s m=%d n=%d k=%d [%d,%d): %zu elements outside the output block changed",
              name, c->m, c->n, c->k, c->n0, c->n1, bad);
    return err;
}

/* Runs the reference and every supported variant on one case. */
static void check_case(const gemm_case *c) {
    gemm_data d;
    data_make(&d, c);
    pd_packed_w ref_w;
    if (!pack(&ref_w, &d, PD_GEMM_REF_NR)) {
        data_free(&d);
        return;
    }
    float *ref = run(pd_f32_gemm__ref, &d, &ref_w);
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) {
        if (!kt_isa_supported(VARIANTS[v].isa)) continue;
        pd_packed_w pw;
        if (!pack(&pw, &d, VARIANTS[v].nr)) continue;
        float *got = run(VARIANTS[v].fn, &d, &pw);
        compare(&d, got, ref, VARIANTS[v].name);
        kt_free(got, c->misalign);
        pd_packed_w_free(&pw);
    }
    kt_free(ref, c->misalign);
    pd_packed_w_free(&ref_w);
    data_free(&d);
}

static int n_supported_simd(void) {
    int n = 0;
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) n += kt_isa_supported(VARIANTS[v].isa);
    return n;
}

/* ---- the reference and the pack layout ------------------------------------------ */

static void test_pack_layout(void) {
    const int n = 37, k = 5, ld = 9;
    float w[37 * 9], bias[37];
    for (int i = 0; i < n * ld; i++) w[i] = (float)(i + 1);
    for (int j = 0; j < n; j++) bias[j] = (float)(1000 + j);
    const int nrs[] = {1, 8, 16, 24, 32, 64};
    for (size_t t = 0; t < PD_COUNT(nrs); t++) {
        int nr = nrs[t];
        pd_packed_w pw;
        CHECK(pd_gemm_pack(&pw, nr, w, PD_DTYPE_F32, ld, n, k, bias, PD_DTYPE_F32, NULL) == PD_OK);
        CHECK(pw.n == n && pw.k == k && pw.nr == nr && pw.data && pw.bias);
        CHECK(((uintptr_t)pw.data & 63) == 0);
        int panels = (n + nr - 1) / nr, bad = 0;
        for (int p = 0; p < panels; p++)
            for (int kk = 0; kk < k; kk++)
                for (int c = 0; c < nr; c++) {
                    int j = p * nr + c;
                    float want = j < n ? w[j * ld + kk] : 0.0f;
                    bad += pw.data[((size_t)p * k + kk) * nr + c] != want;
                }
        CHECK_MSG(bad == 0, "nr=%d: %d packed elements wrong", nr, bad);
        for (int j = 0; j < n; j++) bad += pw.bias[j] != bias[j];
        CHECK_MSG(bad == 0, "nr=%d: bias wrong", nr);
        pd_packed_w_free(&pw);
        CHECK(pw.data == NULL && pw.bias == NULL);
    }
    pd_packed_w_free(NULL);
}

static void test_pack_errors(void) {
    float w[16] = {0};
    uint16_t h[16] = {0};
    pd_packed_w pw;
    pd_error err;
    CHECK(pd_gemm_pack(&pw, 16, NULL, PD_DTYPE_F32, 4, 4, 4, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK(pw.data == NULL && pw.bias == NULL);
    CHECK(pd_gemm_pack(&pw, 16, w, PD_DTYPE_F32, 4, 0, 4, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_gemm_pack(&pw, 16, w, PD_DTYPE_F32, 4, 4, 0, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_gemm_pack(&pw, 0, w, PD_DTYPE_F32, 4, 4, 4, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_gemm_pack(&pw, 16, w, PD_DTYPE_F32, 3, 4, 4, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "stride");
    CHECK(pd_gemm_pack(&pw, 16, h, PD_DTYPE_I16, 4, 4, 4, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "I16");
    CHECK(pd_gemm_pack(&pw, 16, w, PD_DTYPE_F32, 4, 4, 4, h, PD_DTYPE_U8, &err) == PD_ERR_INVALID_ARG);
    /* 2^31 x 2^31 floats: refused as too large before any allocation. */
    CHECK(pd_gemm_pack(&pw, 16, w, PD_DTYPE_F32, INT_MAX, INT_MAX, INT_MAX, NULL, PD_DTYPE_F32,
                       &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "too large");
    CHECK(pw.data == NULL);
    CHECK(pd_gemm_pack(&pw, 16, w, PD_DTYPE_F32, 4, 4, 4, NULL, PD_DTYPE_F32, NULL) == PD_OK);
    pd_packed_w_free(&pw);
}

/* The reference against C = act(A W^T + b) + res computed directly from the unpacked
 * W in double, for several panel widths (the reference reads any nr). */
static void test_ref_vs_direct(void) {
    kt_seed(7);
    const int nrs[] = {1, 5, 16, 32, 64};
    for (size_t t = 0; t < PD_COUNT(nrs); t++) {
        for (int act = 0; act < PD_ACT_COUNT; act++) {
            gemm_case c = {.m = 9, .n = 45, .k = 70, .n0 = 0, .n1 = 45, .act = (pd_act)act,
                           .bias = true, .res = RES_SEPARATE, .lda_pad = 3, .ldc_pad = 2,
                           .ldres_pad = 1, .a_scale = 1.0f};
            gemm_data d;
            data_make(&d, &c);
            pd_packed_w pw;
            if (pack(&pw, &d, nrs[t])) {
                float *got = run(pd_f32_gemm__ref, &d, &pw);
                float *want = kt_alloc((size_t)c.m * d.ldc, 0);
                memcpy(want, d.c_init, (size_t)c.m * d.ldc * sizeof(float));
                for (int i = 0; i < c.m; i++)
                    for (int j = 0; j < c.n; j++) {
                        double s = 0;
                        for (int kk = 0; kk < c.k; kk++)
                            s += (double)d.a[(size_t)i * d.lda + kk] * d.w[(size_t)j * c.k + kk];
                        float v = pd_f32_act_scalar((float)s + d.bias[j], c.act);
                        want[(size_t)i * d.ldc + j] = v + d.res[(size_t)i * d.ldres + j];
                    }
                compare(&d, got, want, "ref vs direct");
                kt_free(want, 0);
                kt_free(got, 0);
                pd_packed_w_free(&pw);
            }
            data_free(&d);
        }
    }
}

/* ---- variants --------------------------------------------------------------------- */

/* Every m x n x k combination; the other options rotate with the case index so every
 * one meets many shapes. */
static void test_variants_shapes(void) {
    if (n_supported_simd() == 0) PD_SKIP("no SIMD GEMM variant runs on this CPU");
    static const int ms[] = {1, 2, 3, 5, 7, 13, 77, 100};
    static const int ns[] = {1, 3, 15, 16, 17, 24, 31, 33, 64, 100};
    static const int ks[] = {1, 2, 7, 24, 64, 100, 333};
    kt_seed(11);
    int idx = 0;
    for (size_t a = 0; a < PD_COUNT(ms); a++)
        for (size_t b = 0; b < PD_COUNT(ns); b++)
            for (size_t e = 0; e < PD_COUNT(ks); e++, idx++) {
                gemm_case c = {
                    .m = ms[a], .n = ns[b], .k = ks[e], .n0 = 0, .n1 = ns[b],
                    .act = (pd_act)(idx % 4), .bias = (idx / 4) % 2 == 0, .res = (idx / 3) % 3,
                    .lda_pad = (idx % 5 == 1) ? 3 : 0, .ldc_pad = (idx % 7 == 2) ? 5 : 0,
                    .ldres_pad = (idx % 3) * 2, .misalign = (idx / 2) % 2, .a_scale = 1.0f,
                };
                check_case(&c);
            }
}

/* Column ranges: n0 at panel boundaries (including the last, partial panel) and n1
 * inside a panel; unions of ranges must reproduce the full product. */
static void test_variants_column_splits(void) {
    if (n_supported_simd() == 0) PD_SKIP("no SIMD GEMM variant runs on this CPU");
    kt_seed(13);
    const int n = 150;
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) {
        if (!kt_isa_supported(VARIANTS[v].isa)) continue;
        int nr = VARIANTS[v].nr;
        const int ranges[][2] = {
            {0, nr}, {nr, 2 * nr}, {nr, n}, {0, nr - 1}, {nr, nr + 5}, {(n / nr) * nr, n},
            {(n / nr) * nr, n - 1}, {0, 1}, {nr, nr}, {0, n},
        };
        for (size_t r = 0; r < PD_COUNT(ranges); r++) {
            if (ranges[r][1] > n || ranges[r][0] > ranges[r][1]) continue;
            gemm_case c = {.m = 11, .n = n, .k = 50, .n0 = ranges[r][0], .n1 = ranges[r][1],
                           .act = (pd_act)(r % PD_ACT_COUNT), .bias = true, .res = (int)(r % 3),
                           .ldc_pad = 3, .misalign = (int)(r % 2), .a_scale = 1.0f};
            gemm_data d;
            data_make(&d, &c);
            pd_packed_w ref_w, pw;
            /* The reference reads any nr: pack it like the variant so n0 is legal for both. */
            if (pack(&ref_w, &d, nr) && pack(&pw, &d, nr)) {
                float *ref = run(pd_f32_gemm__ref, &d, &ref_w);
                float *got = run(VARIANTS[v].fn, &d, &pw);
                compare(&d, got, ref, VARIANTS[v].name);
                kt_free(ref, c.misalign);
                kt_free(got, c.misalign);
            }
            pd_packed_w_free(&ref_w);
            pd_packed_w_free(&pw);
            data_free(&d);
        }
    }
}

/* Every activation with bias and residual, on inputs large enough to reach the tails
 * (GELU/SiLU saturation, sigmoid underflow) in the epilogue. */
static void test_variants_activations(void) {
    if (n_supported_simd() == 0) PD_SKIP("no SIMD GEMM variant runs on this CPU");
    kt_seed(17);
    for (int act = 0; act < PD_ACT_COUNT; act++)
        for (int res = RES_NONE; res <= RES_ALIAS; res++) {
            gemm_case c = {.m = 13, .n = 33, .k = 64, .n0 = 0, .n1 = 33, .act = (pd_act)act,
                           .bias = true, .res = res, .lda_pad = 1, .ldc_pad = 2, .ldres_pad = 3,
                           .misalign = 1, .a_scale = 4.0f};
            check_case(&c);
        }
}

/* Long k, big tiles: accumulation error and the A-block (MC) loop with several blocks. */
static void test_variants_long_k(void) {
    if (n_supported_simd() == 0) PD_SKIP("no SIMD GEMM variant runs on this CPU");
    kt_seed(19);
    gemm_case c = {.m = 150, .n = 70, .k = 2900, .n0 = 0, .n1 = 70, .act = PD_ACT_SILU,
                   .bias = true, .res = RES_ALIAS, .a_scale = 1.0f};
    check_case(&c);
}

/* m = 0 and empty column ranges write nothing. */
static void test_variants_empty(void) {
    kt_seed(23);
    for (size_t v = 0; v < PD_COUNT(VARIANTS); v++) {
        if (!kt_isa_supported(VARIANTS[v].isa)) continue;
        gemm_case cs[] = {
            {.m = 0, .n = 20, .k = 5, .n0 = 0, .n1 = 20, .a_scale = 1.0f},
            {.m = 3, .n = 20, .k = 5, .n0 = 0, .n1 = 0, .a_scale = 1.0f},
        };
        for (size_t i = 0; i < PD_COUNT(cs); i++) {
            gemm_data d;
            data_make(&d, &cs[i]);
            pd_packed_w pw;
            if (pack(&pw, &d, VARIANTS[v].nr)) {
                float *got = run(VARIANTS[v].fn, &d, &pw);
                compare(&d, got, d.c_init, VARIANTS[v].name);
                kt_free(got, 0);
                pd_packed_w_free(&pw);
            }
            data_free(&d);
        }
    }
}

/* F16 / BF16 weights and bias: exactly representable values pack exactly; others
 * pack as the widened half value; the GEMM on them equals the GEMM on the widened
 * fp32 weights bit for bit (same packed data). */
static void test_pack_half(void) {
    kt_seed(29);
    const int n = 21, k = 19;
    float wf[21 * 19], bf[21], wq[21 * 19], bq[21];
    uint16_t wh[21 * 19], bh[21];
    for (int half = 0; half < 2; half++) {
        pd_dtype dt = half ? PD_DTYPE_BF16 : PD_DTYPE_F16;
        for (int exact = 0; exact < 2; exact++) {
            for (int i = 0; i < n * k; i++) {
                /* Exact: small multiples of 1/64 fit both formats' mantissas. */
                wf[i] = exact ? (float)((int)(kt_rand() * 256.0f)) / 64.0f : kt_rand() * 3.0f;
                wh[i] = half ? pd_f32_to_bf16(wf[i]) : pd_f32_to_f16(wf[i]);
                wq[i] = half ? pd_bf16_to_f32(wh[i]) : pd_f16_to_f32(wh[i]);
            }
            for (int j = 0; j < n; j++) {
                bf[j] = exact ? (float)j / 4.0f : kt_rand();
                bh[j] = half ? pd_f32_to_bf16(bf[j]) : pd_f32_to_f16(bf[j]);
                bq[j] = half ? pd_bf16_to_f32(bh[j]) : pd_f16_to_f32(bh[j]);
            }
            int differs = 0;
            for (int i = 0; i < n * k; i++) differs += wq[i] != wf[i];
            if (exact) CHECK_MSG(differs == 0, "dtype %d: %d exact values changed", (int)dt, differs);
            else CHECK_MSG(differs > 0, "dtype %d: rounding test has no rounded values", (int)dt);

            for (size_t v = 0; v < PD_COUNT(VARIANTS); v++) {
                if (!kt_isa_supported(VARIANTS[v].isa)) continue;
                int nr = VARIANTS[v].nr;
                pd_packed_w ph, pq;
                pd_error err;
                CHECK(pd_gemm_pack(&ph, nr, wh, dt, (size_t)k, n, k, bh, dt, &err) == PD_OK);
                CHECK(pd_gemm_pack(&pq, nr, wq, PD_DTYPE_F32, (size_t)k, n, k, bq, PD_DTYPE_F32, &err) == PD_OK);
                size_t cnt = (size_t)((n + nr - 1) / nr) * (size_t)nr * (size_t)k;
                CHECK_MSG(memcmp(ph.data, pq.data, cnt * sizeof(float)) == 0, "%s: half pack differs",
                          VARIANTS[v].name);
                CHECK(memcmp(ph.bias, pq.bias, (size_t)n * sizeof(float)) == 0);
                float a[5 * 19], c1[5 * 21], c2[5 * 21];
                kt_fill(a, PD_COUNT(a), 1.0f);
                pd_gemm_args g = {.m = 5, .n0 = 0, .n1 = n, .a = a, .lda = (size_t)k, .w = &ph,
                                  .c = c1, .ldc = (size_t)n, .act = PD_ACT_GELU};
                VARIANTS[v].fn(&g);
                g.w = &pq;
                g.c = c2;
                VARIANTS[v].fn(&g);
                CHECK_MSG(memcmp(c1, c2, sizeof c1) == 0, "%s: GEMM on half weights differs",
                          VARIANTS[v].name);
                pd_packed_w_free(&ph);
                pd_packed_w_free(&pq);
            }
        }
    }
}

static void test_variant_list(void) {
    CHECK(PD_COUNT(VARIANTS) >= 1);
    CHECK(VARIANTS[0].isa == PD_ISA_SCALAR && VARIANTS[0].fn == pd_f32_gemm__ref);
    for (size_t v = 0; v < PD_COUNT(VARIANTS); v++) {
        if (!kt_isa_supported(VARIANTS[v].isa))
            fprintf(stderr, "  SKIP %s: CPU lacks %s\n", VARIANTS[v].name, pd_isa_name(VARIANTS[v].isa));
        CHECK(VARIANTS[v].nr >= 1 && VARIANTS[v].mr >= 1);
    }
}

int main(void) {
    PD_RUN(test_variant_list);
    PD_RUN(test_pack_layout);
    PD_RUN(test_pack_errors);
    PD_RUN(test_pack_half);
    PD_RUN(test_ref_vs_direct);
    PD_RUN(test_variants_shapes);
    PD_RUN(test_variants_column_splits);
    PD_RUN(test_variants_activations);
    PD_RUN(test_variants_long_k);
    PD_RUN(test_variants_empty);
    return pd_test_summary();
}
