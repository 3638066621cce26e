/*
 * test_gemm_bf16.c - pd_bf16_gemm_pack, the bf16 reference and the bf16 GEMM variants
 * (AMX 32x32 and 32x16, AVX512-BF16 8x32).
 *
 *   - the pack layout (VNNI pairs, k padding, column padding) element by element, for
 *     F32/F16/BF16 sources and both panel widths, and its error paths;
 *   - the bf16 reference against the fp32 reference (pd_f32_gemm__ref) with a bf16
 *     tolerance (1e-2 of max |ref|: A and W each rounded to 8 significant bits);
 *   - every variant against the bf16 reference (identical bf16 inputs, only the fp32
 *     summation order differs: 1e-5 of max |ref|) on awkward shapes (m, n, k not
 *     multiples of the tiles), column splits (n0 > 0, n1 inside a panel, several column
 *     blocks), k over several k blocks (accumulators kept between them), padded
 *     strides, misaligned pointers, residual (separate and aliasing c), all
 *     activations, and F16/BF16/F32 weights. Every call proves it wrote nothing outside
 *     C[0..m) x [n0..n1) (sentinels).
 * A variant is skipped when the CPU or the OS lacks its ISA (AMX-BF16; AVX-512 +
 * AVX512-BF16); the variant tests PD_SKIP when none runs.
 */
#include <limits.h>

#include "base/half.h"
#include "kernel_test_util.h"
#include "kernels/act/act.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_bf16.h"

#define VAR_TOL 1e-5
#define BF16_TOL 1e-2

typedef struct variant {
    pd_isa isa;
    const char *name;
    void (*fn)(const pd_gemm_args *args);
    int nr;
} variant;

/* gemm_bf16.inc minus the reference, plus the AMX nr = 16 GEMM no table uses. */
static const variant INC_VARIANTS[] = {
#define PD_KERNEL(isa, gemm, conv, nr) {isa, #gemm, gemm, nr},
#include "kernels/gemm/gemm_bf16.inc"
#undef PD_KERNEL
#if defined(__x86_64__)
    {PD_ISA_AMX, "pd_bf16_gemm_32x16__amx", pd_bf16_gemm_32x16__amx, 16},
#endif
};
#define VARIANTS (INC_VARIANTS + 1)
#define N_VARIANTS (PD_COUNT(INC_VARIANTS) - 1)

static bool variant_ok(const variant *v) {
    if (!kt_isa_supported(v->isa)) return false;
    if (v->isa != PD_ISA_AVX512) return true;
    pd_cpu_features f;
    pd_cpu_detect(&f);
    return f.avx512bf16;
}

static bool any_ok(void) {
    for (size_t v = 0; v < N_VARIANTS; v++)
        if (variant_ok(&VARIANTS[v])) return true;
    return false;
}

enum { RES_NONE, RES_SEPARATE, RES_ALIAS };

typedef struct gemm_case {
    int m, n, k;
    int n0, n1;
    pd_act act;
    bool bias;
    int res;
    int lda_pad, ldc_pad, ldres_pad;
    int misalign;
    pd_dtype wdt;     /* source dtype of W and bias */
    float a_scale;
} gemm_case;

typedef struct gemm_data {
    gemm_case c;
    size_t lda, ldc, ldres;
    float *a, *wf, *bias, *res, *c_init;   /* wf: W as fp32 (exactly the wdt values) */
    void *wsrc, *bsrc;                      /* W and bias in the source dtype (odd offset) */
} gemm_data;

/* Source buffers in dtype dt, misaligned by 2 bytes for half types (unaligned reads). */
static void *to_dtype(const float *x, size_t n, pd_dtype dt, float *exact) {
    if (dt == PD_DTYPE_F32) {
        float *p = kt_alloc(n, 1);
        memcpy(p, x, n * sizeof(float));
        memcpy(exact, x, n * sizeof(float));
        return p;
    }
    char *raw = malloc(n * 2 + 2 + 64);
    if (!raw) abort();
    uint16_t h;
    for (size_t i = 0; i < n; i++) {
        h = dt == PD_DTYPE_BF16 ? pd_f32_to_bf16(x[i]) : pd_f32_to_f16(x[i]);
        exact[i] = dt == PD_DTYPE_BF16 ? pd_bf16_to_f32(h) : pd_f16_to_f32(h);
        memcpy(raw + 1 + 2 * i, &h, 2);
    }
    return raw + 1;
}

static void free_dtype(void *p, pd_dtype dt) {
    if (!p) return;
    if (dt == PD_DTYPE_F32) kt_free(p, 1);
    else free((char *)p - 1);
}

static void data_make(gemm_data *d, const gemm_case *c) {
    memset(d, 0, sizeof *d);
    d->c = *c;
    d->lda = (size_t)c->k + (size_t)c->lda_pad;
    d->ldc = (size_t)c->n + (size_t)c->ldc_pad;
    d->ldres = (size_t)c->n + (size_t)c->ldres_pad;
    d->a = kt_alloc((size_t)c->m * d->lda + 1, c->misalign);
    kt_fill(d->a, (size_t)c->m * d->lda + 1, c->a_scale);
    size_t nw = (size_t)c->n * (size_t)c->k;
    float *tmp = kt_alloc(nw, 0);
    kt_fill(tmp, nw, 1.0f);
    d->wf = kt_alloc(nw, 0);
    d->wsrc = to_dtype(tmp, nw, c->wdt, d->wf);
    kt_free(tmp, 0);
    if (c->bias) {
        float *bt = kt_alloc((size_t)c->n, 0);
        kt_fill(bt, (size_t)c->n, 1.0f);
        d->bias = kt_alloc((size_t)c->n, 0);
        d->bsrc = to_dtype(bt, (size_t)c->n, c->wdt, d->bias);
        kt_free(bt, 0);
    }
    if (c->res == RES_SEPARATE) {
        d->res = kt_alloc((size_t)c->m * d->ldres + 1, c->misalign);
        kt_fill(d->res, (size_t)c->m * d->ldres + 1, 2.0f);
    }
    d->c_init = kt_alloc((size_t)c->m * d->ldc + 1, 0);
    kt_fill_value(d->c_init, (size_t)c->m * d->ldc + 1, KT_SENTINEL);
    if (c->res == RES_ALIAS)
        for (int i = 0; i < c->m; i++)
            for (int j = c->n0; j < c->n1; j++) d->c_init[(size_t)i * d->ldc + j] = 2.0f * kt_rand();
}

static void data_free(gemm_data *d) {
    kt_free(d->a, d->c.misalign);
    kt_free(d->wf, 0);
    free_dtype(d->wsrc, d->c.wdt);
    kt_free(d->bias, 0);
    free_dtype(d->bsrc, d->c.wdt);
    kt_free(d->res, d->c.misalign);
    kt_free(d->c_init, 0);
}

static bool pack(pd_packed_w *pw, const gemm_data *d, int nr) {
    pd_error err;
    pd_status st = pd_bf16_gemm_pack(pw, nr, d->wsrc, d->c.wdt, (size_t)d->c.k, d->c.n, d->c.k,
                                     d->bsrc, d->c.wdt, &err);
    CHECK_MSG(st == PD_OK, "pack failed: %s", err.msg);
    return st == PD_OK;
}

/* Fills the output-related fields of a bf16 or fp32 args struct on a fresh C copy. */
static float *c_copy(const gemm_data *d) {
    size_t n = (size_t)d->c.m * d->ldc + 1;
    float *cbuf = kt_alloc(n, d->c.misalign);
    memcpy(cbuf, d->c_init, n * sizeof(float));
    return cbuf;
}

static float *run_bf16(void (*fn)(const pd_gemm_args *), const gemm_data *d, const pd_packed_w *pw) {
    const gemm_case *c = &d->c;
    float *cbuf = c_copy(d);
    pd_gemm_args g = {.m = c->m, .n0 = c->n0, .n1 = c->n1, .a = d->a, .lda = d->lda, .w = pw,
                           .c = cbuf, .ldc = d->ldc, .act = c->act};
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

static float *run_f32(const gemm_data *d, const pd_packed_w *pw) {
    const gemm_case *c = &d->c;
    float *cbuf = c_copy(d);
    pd_gemm_args g = {.m = c->m, .n0 = c->n0, .n1 = c->n1, .a = d->a, .lda = d->lda, .w = pw,
                      .c = cbuf, .ldc = d->ldc, .act = c->act};
    if (c->res == RES_SEPARATE) {
        g.res = d->res;
        g.ldres = d->ldres;
    } else if (c->res == RES_ALIAS) {
        g.res = cbuf;
        g.ldres = d->ldc;
    }
    pd_f32_gemm__ref(&g);
    return cbuf;
}

/* got vs ref on the output block (relative to max |ref|), and every other element of
 * got (including one past the end) kept its initial bits. */
static double compare(const gemm_data *d, const float *got, const float *ref, const char *name, double tol) {
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
        CHECK_MSG(err <= tol,
                  "%s m=%d n=%d k=%d [%d,%d) act=%d bias=%d res=%d wdt=%s: rel err %.3g at (%zu,%zu): %.9g vs %.9g",
                  name, c->m, c->n, c->k, c->n0, c->n1, (int)c->act, c->bias, c->res,
                  pd_dtype_name(c->wdt), err, worst / (size_t)w, worst % (size_t)w + (size_t)c->n0, g[worst],
                  r[worst]);
        free(g);
        free(r);
    }
    size_t bad = 0;
    for (int i = 0; i < c->m; i++)
        for (size_t j = 0; j < d->ldc; j++)
            if ((int)j < c->n0 || (int)j >= c->n1)
                bad += !kt_same_bits(got[(size_t)i * d->ldc + j], d->c_init[(size_t)i * d->ldc + j]);
    size_t end = (size_t)c->m * d->ldc;
    bad += !kt_same_bits(got[end], d->c_init[end]);
    CHECK_MSG(bad == 0, "%s m=%d n=%d k=%d [%d,%d): %zu elements outside the output block changed", name,
              c->m, c->n, c->k, c->n0, c->n1, bad);
    return err;
}

/* Every supported variant vs the bf16 reference on one case (packed with the
 * variant's nr; a variant whose nr does not divide n0 is skipped). */
static void check_case(const gemm_case *c) {
    gemm_data d;
    data_make(&d, c);
    for (size_t v = 0; v < N_VARIANTS; v++) {
        int nr = VARIANTS[v].nr;
        if (c->n0 % nr || !variant_ok(&VARIANTS[v])) continue;
        pd_packed_w pw;
        if (!pack(&pw, &d, nr)) continue;
        float *ref = run_bf16(pd_bf16_gemm__ref, &d, &pw);
        float *got = run_bf16(VARIANTS[v].fn, &d, &pw);
        compare(&d, got, ref, VARIANTS[v].name, VAR_TOL);
        kt_free(ref, c->misalign);
        kt_free(got, c->misalign);
        pd_packed_w_free(&pw);
    }
    data_free(&d);
}

/* ---- pack ------------------------------------------------------------------------- */

static void test_pack_layout(void) {
    const int n = 37, k = 45, ld = 50;
    static float w[37 * 50], bias[37];
    kt_seed(3);
    kt_fill(w, PD_COUNT(w), 3.0f);
    kt_fill(bias, PD_COUNT(bias), 1.0f);
    const pd_dtype dts[] = {PD_DTYPE_F32, PD_DTYPE_F16, PD_DTYPE_BF16};
    for (size_t t = 0; t < PD_COUNT(dts); t++)
        for (int nr = 16; nr <= 32; nr += 16) {
            static float wq[37 * 50], bq[37];
            void *ws = to_dtype(w, PD_COUNT(w), dts[t], wq);
            void *bs = to_dtype(bias, PD_COUNT(bias), dts[t], bq);
            pd_packed_w pw;
            CHECK(pd_bf16_gemm_pack(&pw, nr, ws, dts[t], (size_t)ld, n, k, bs, dts[t], NULL) == PD_OK);
            CHECK(pw.n == n && pw.k == k && pw.kp == 64 && pw.nr == nr && pw.bf16 && pw.bias && pw.dtype == PD_DTYPE_BF16 && !pw.data);
            CHECK(((uintptr_t)pw.bf16 & 63) == 0);
            int panels = (n + nr - 1) / nr, bad = 0;
            for (int p = 0; p < panels; p++)
                for (int kk = 0; kk < pw.kp; kk++)
                    for (int c = 0; c < nr; c++) {
                        int j = p * nr + c;
                        uint16_t want = j < n && kk < k ? pd_f32_to_bf16(wq[j * ld + kk]) : 0;
                        bad += pw.bf16[((size_t)p * pw.kp + (kk & ~1)) * nr + 2 * c + (kk & 1)] != want;
                    }
            CHECK_MSG(bad == 0, "%s nr=%d: %d packed elements wrong", pd_dtype_name(dts[t]), nr, bad);
            for (int j = 0; j < n; j++) bad += pw.bias[j] != bq[j];
            CHECK_MSG(bad == 0, "%s nr=%d: bias wrong", pd_dtype_name(dts[t]), nr);
            pd_packed_w_free(&pw);
            CHECK(pw.bf16 == NULL && pw.bias == NULL);
            free_dtype(ws, dts[t]);
            free_dtype(bs, dts[t]);
        }
    pd_packed_w_free(NULL);
}

static void test_pack_errors(void) {
    float w[16] = {0};
    uint16_t h[16] = {0};
    pd_packed_w pw;
    pd_error err;
    CHECK(pd_bf16_gemm_pack(&pw, 32, NULL, PD_DTYPE_F32, 4, 4, 4, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK(pw.bf16 == NULL && pw.bias == NULL);
    CHECK(pd_bf16_gemm_pack(&pw, 32, w, PD_DTYPE_F32, 4, 0, 4, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_bf16_gemm_pack(&pw, 32, w, PD_DTYPE_F32, 4, 4, 0, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_bf16_gemm_pack(&pw, 24, w, PD_DTYPE_F32, 4, 4, 4, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "nr=24");
    CHECK(pd_bf16_gemm_pack(&pw, 32, w, PD_DTYPE_F32, 3, 4, 4, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "stride");
    CHECK(pd_bf16_gemm_pack(&pw, 32, h, PD_DTYPE_I16, 4, 4, 4, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "I16");
    CHECK(pd_bf16_gemm_pack(&pw, 32, w, PD_DTYPE_F32, 4, 4, 4, h, PD_DTYPE_U8, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_bf16_gemm_pack(&pw, 32, w, PD_DTYPE_F32, INT_MAX, INT_MAX, INT_MAX, NULL, PD_DTYPE_F32, &err) ==
          PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "too large");
    CHECK(pd_bf16_gemm_pack(&pw, 32, w, PD_DTYPE_F32, 4, 4, 4, NULL, PD_DTYPE_F32, NULL) == PD_OK);
    pd_packed_w_free(&pw);
}

/* ---- the bf16 reference vs the fp32 reference ------------------------------------ */

static void test_ref_vs_f32(void) {
    kt_seed(7);
    const int ks[] = {1, 33, 100, 768};
    const pd_dtype dts[] = {PD_DTYPE_F32, PD_DTYPE_F16, PD_DTYPE_BF16};
    int idx = 0;
    for (size_t t = 0; t < PD_COUNT(ks); t++)
        for (size_t u = 0; u < PD_COUNT(dts); u++)
            for (int act = 0; act < PD_ACT_COUNT; act++, idx++) {
                gemm_case c = {.m = 9, .n = 45, .k = ks[t], .n0 = 0, .n1 = 45, .act = (pd_act)act,
                               .bias = idx % 2 == 0, .res = idx % 3, .lda_pad = 3, .ldc_pad = 2,
                               .ldres_pad = 1, .misalign = idx % 2, .wdt = dts[u], .a_scale = 1.0f};
                gemm_data d;
                data_make(&d, &c);
                pd_packed_w pb;
                pd_packed_w pf;
                pd_error err;
                if (pack(&pb, &d, 32) &&
                    pd_gemm_pack(&pf, PD_GEMM_REF_NR, d.wf, PD_DTYPE_F32, (size_t)c.k, c.n, c.k, d.bias,
                                 PD_DTYPE_F32, &err) == PD_OK) {
                    float *got = run_bf16(pd_bf16_gemm__ref, &d, &pb);
                    float *want = run_f32(&d, &pf);
                    compare(&d, got, want, "bf16 ref vs f32 ref", BF16_TOL);
                    kt_free(got, c.misalign);
                    kt_free(want, c.misalign);
                    pd_packed_w_free(&pf);
                    pd_packed_w_free(&pb);
                }
                data_free(&d);
            }
}

/* ---- variants ----------------------------------------------------------------------- */

static void test_variant_shapes(void) {
    if (!any_ok()) PD_SKIP("no bf16 GEMM variant runs on this CPU");
    static const int ms[] = {1, 3, 15, 16, 17, 33, 77, 100};
    static const int ns[] = {1, 15, 16, 17, 31, 32, 33, 100};
    static const int ks[] = {1, 2, 31, 32, 33, 100, 768};
    static const pd_dtype dts[] = {PD_DTYPE_F32, PD_DTYPE_F16, PD_DTYPE_BF16};
    kt_seed(11);
    int idx = 0;
    for (size_t a = 0; a < PD_COUNT(ms); a++)
        for (size_t b = 0; b < PD_COUNT(ns); b++)
            for (size_t e = 0; e < PD_COUNT(ks); e++, idx++) {
                gemm_case c = {
                    .m = ms[a], .n = ns[b], .k = ks[e], .n0 = 0, .n1 = ns[b],
                    .act = (pd_act)(idx % 4), .bias = (idx / 4) % 2 == 0, .res = (idx / 3) % 3,
                    .lda_pad = (idx % 5 == 1) ? 3 : 0, .ldc_pad = (idx % 7 == 2) ? 5 : 0,
                    .ldres_pad = (idx % 3) * 2, .misalign = (idx / 2) % 2, .wdt = dts[idx % 3],
                    .a_scale = 1.0f,
                };
                check_case(&c);
            }
}

/* n0 at panel boundaries (including the last, partial panel), n1 inside a panel, and
 * column ranges wider than one column block (NB = 256). */
static void test_variant_column_splits(void) {
    if (!any_ok()) PD_SKIP("no bf16 GEMM variant runs on this CPU");
    kt_seed(13);
    const int n = 600;
    const int ranges[][2] = {
        {0, 32}, {32, 64}, {32, 600}, {0, 31}, {32, 37}, {576, 600}, {576, 599}, {0, 1}, {32, 32},
        {0, 600}, {64, 300}, {256, 513}, {16, 48}, {592, 600},
    };
    for (size_t r = 0; r < PD_COUNT(ranges); r++) {
        gemm_case c = {.m = 35, .n = n, .k = 70, .n0 = ranges[r][0], .n1 = ranges[r][1],
                       .act = (pd_act)(r % PD_ACT_COUNT), .bias = true, .res = (int)(r % 3), .ldc_pad = 3,
                       .misalign = (int)(r % 2), .wdt = PD_DTYPE_F32, .a_scale = 1.0f};
        check_case(&c);
    }
}

static void test_variant_activations(void) {
    if (!any_ok()) PD_SKIP("no bf16 GEMM variant runs on this CPU");
    kt_seed(17);
    for (int act = 0; act < PD_ACT_COUNT; act++)
        for (int res = RES_NONE; res <= RES_ALIAS; res++) {
            gemm_case c = {.m = 40, .n = 70, .k = 64, .n0 = 0, .n1 = 70, .act = (pd_act)act,
                           .bias = true, .res = res, .lda_pad = 1, .ldc_pad = 2, .ldres_pad = 3,
                           .misalign = 1, .wdt = PD_DTYPE_BF16, .a_scale = 4.0f};
            check_case(&c);
        }
}

/* Several k blocks (k > 1600) and row blocks: accumulators kept between k blocks; a
 * wide n with long k makes several column blocks. */
static void test_variant_long_k(void) {
    if (!any_ok()) PD_SKIP("no bf16 GEMM variant runs on this CPU");
    kt_seed(19);
    gemm_case c = {.m = 70, .n = 300, .k = 1700, .n0 = 0, .n1 = 300, .act = PD_ACT_SILU, .bias = true,
                   .res = RES_ALIAS, .lda_pad = 5, .misalign = 1, .wdt = PD_DTYPE_F16, .a_scale = 1.0f};
    check_case(&c);
    gemm_case c2 = {.m = 33, .n = 200, .k = 5000, .n0 = 32, .n1 = 190, .act = PD_ACT_GELU, .bias = true,
                    .res = RES_SEPARATE, .ldres_pad = 3, .wdt = PD_DTYPE_BF16, .a_scale = 1.0f};
    check_case(&c2);
}

/* m = 0 and empty column ranges write nothing; the tiles are released after a call
 * (a second call with another config still works). */
static void test_variant_empty(void) {
    if (!any_ok()) PD_SKIP("no bf16 GEMM variant runs on this CPU");
    kt_seed(23);
    gemm_case cs[] = {
        {.m = 0, .n = 20, .k = 5, .n0 = 0, .n1 = 20, .wdt = PD_DTYPE_F32, .a_scale = 1.0f},
        {.m = 3, .n = 20, .k = 5, .n0 = 0, .n1 = 0, .wdt = PD_DTYPE_F32, .a_scale = 1.0f},
    };
    for (size_t i = 0; i < PD_COUNT(cs); i++)
        for (size_t v = 0; v < N_VARIANTS; v++) {
            if (!variant_ok(&VARIANTS[v])) continue;
            gemm_data d;
            data_make(&d, &cs[i]);
            pd_packed_w pw;
            if (pack(&pw, &d, VARIANTS[v].nr)) {
                float *got = run_bf16(VARIANTS[v].fn, &d, &pw);
                compare(&d, got, d.c_init, VARIANTS[v].name, VAR_TOL);
                kt_free(got, 0);
                pd_packed_w_free(&pw);
            }
            data_free(&d);
        }
}

int main(void) {
    PD_RUN(test_pack_layout);
    PD_RUN(test_pack_errors);
    PD_RUN(test_ref_vs_f32);
    PD_RUN(test_variant_shapes);
    PD_RUN(test_variant_column_splits);
    PD_RUN(test_variant_activations);
    PD_RUN(test_variant_long_k);
    PD_RUN(test_variant_empty);
    return pd_test_summary();
}
