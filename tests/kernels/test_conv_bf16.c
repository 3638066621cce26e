/*
 * test_conv_bf16.c - pd_bf16_conv_pack, the bf16 reference conv and every bf16 conv
 * variant of gemm_bf16.inc (AMX, AVX512-BF16).
 *
 *   - the pack layout (VNNI pairs of the [cout, kh*kw*cin] weight with k index
 *     (ky*kw + kx)*cin + ci, k padded to kp as a whole, columns padded to the panel)
 *     element by element for F32/F16/BF16 sources and both panel widths;
 *   - pd_bf16_conv__ref against pd_f32_conv__ref at a bf16 tolerance (1e-2 of max |ref|:
 *     input and weight each rounded to 8 significant bits);
 *   - every variant against pd_bf16_conv__ref (identical bf16 inputs, only the fp32
 *     summation order differs: 1e-5 of max |ref|) on the three A sources of the driver
 *     (gemm_bf16_blocked.h): the 1x1 stride-1 GEMM path, im2col (odd cin 1/3/4/5/37,
 *     ow not a multiple of 16, several k blocks past 1600) and the direct band source (cin a
 *     multiple of 32 and ow of 16, one or several channel blocks, halves of a row block
 *     in one or two output rows, the ring of input rows that 32-pixel strips carry from
 *     one output row to the next); cout tails (not multiples of 16/32), non-square
 *     images, stride 2 with the VAE's asymmetric (0, 1, 0, 1) padding, padding wider
 *     than the kernel, output-row sub-ranges, n0 > 0 column splits and several column
 *     blocks, residual separate and aliasing the output, all activations, misaligned
 *     pointers. Every call proves it wrote nothing outside its rows x channels
 *     (sentinels, and one element past the end).
 * Variants PD_SKIP when the CPU or OS lacks their ISA (AMX-BF16; AVX-512 + AVX512-BF16).
 */
#include <limits.h>

#include "base/half.h"
#include "kernel_test_util.h"
#include "kernels/act/act.h"
#include "kernels/conv/conv.h"
#include "kernels/gemm/gemm_bf16.h"

#define VAR_TOL 1e-5
#define BF16_TOL 1e-2

typedef struct variant {
    pd_isa isa;
    const char *name;
    void (*fn)(const pd_conv_args *args);
    int nr;
} variant;

static const variant VARIANTS[] = {
#define PD_KERNEL(isa, gemm, conv, nr) {isa, #conv, conv, nr},
#include "kernels/gemm/gemm_bf16.inc"
#undef PD_KERNEL
};

static bool variant_ok(const variant *v) {
    if (!kt_isa_supported(v->isa)) return false;
    if (v->isa != PD_ISA_AVX512) return true;
    pd_cpu_features f;
    pd_cpu_detect(&f);
    return f.avx512bf16;
}

static int n_supported(void) {
    int n = 0;
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) n += variant_ok(&VARIANTS[v]);
    return n;
}

enum { RES_NONE, RES_SEPARATE, RES_ALIAS };
/* 0; k/2 on all sides; (0, 1, 0, 1); 3 on all sides (whole rows/tiles of padding) */
enum { PAD_NONE, PAD_SAME, PAD_VAE_DOWN, PAD_WIDE };

typedef struct conv_case {
    int h, w, cin, cout, k, stride, pad;   /* pad: PAD_*; k = kh = kw */
    int oy0, oy1, n0, n1;                  /* -1: the full range */
    pd_act act;
    bool bias;
    int res;                               /* RES_* */
    int misalign;                          /* 0 or 1 float */
    pd_dtype wdt;                          /* F32, F16 or BF16 source weight (0: F32) */
} conv_case;

typedef struct conv_data {
    conv_case c;
    int oh, ow, pad_t, pad_l;
    size_t in_n, out_n;
    float *in, *w, *bias, *res, *out_init;
    uint16_t *wh;   /* F16/BF16 copy of w, one byte off (w holds the widened values) */
} conv_data;

static void geometry(const conv_case *c, int *oh, int *ow, int *pt, int *pl) {
    int pb, pr;
    if (c->pad == PAD_SAME) *pt = pb = *pl = pr = c->k / 2;
    else if (c->pad == PAD_VAE_DOWN) *pt = *pl = 0, pb = pr = 1;
    else if (c->pad == PAD_WIDE) *pt = *pl = pb = pr = 3;
    else *pt = *pl = pb = pr = 0;
    *oh = c->h + *pt + pb < c->k ? 0 : (c->h + *pt + pb - c->k) / c->stride + 1;
    *ow = c->w + *pl + pr < c->k ? 0 : (c->w + *pl + pr - c->k) / c->stride + 1;
}

static pd_dtype wdt_of(const conv_case *c) { return c->wdt ? c->wdt : PD_DTYPE_F32; }

static void data_make(conv_data *d, const conv_case *c) {
    memset(d, 0, sizeof *d);
    d->c = *c;
    geometry(c, &d->oh, &d->ow, &d->pad_t, &d->pad_l);
    d->in_n = (size_t)c->h * (size_t)c->w * (size_t)c->cin;
    d->out_n = (size_t)d->oh * (size_t)d->ow * (size_t)c->cout;
    d->in = kt_alloc(d->in_n, c->misalign);
    kt_fill(d->in, d->in_n, 1.0f);
    const size_t wn = (size_t)c->cout * (size_t)c->cin * (size_t)c->k * (size_t)c->k;
    d->w = kt_alloc(wn, 0);
    kt_fill(d->w, wn, 1.0f);
    if (wdt_of(c) != PD_DTYPE_F32) {
        d->wh = malloc(wn * sizeof(uint16_t) + 2);
        if (!d->wh) abort();
        for (size_t i = 0; i < wn; i++) {
            const uint16_t h = c->wdt == PD_DTYPE_BF16 ? pd_f32_to_bf16(d->w[i]) : pd_f32_to_f16(d->w[i]);
            d->w[i] = c->wdt == PD_DTYPE_BF16 ? pd_bf16_to_f32(h) : pd_f16_to_f32(h);
            memcpy((char *)d->wh + 1 + 2 * i, &h, 2);
        }
    }
    if (c->bias) {
        d->bias = kt_alloc((size_t)c->cout, 0);
        kt_fill(d->bias, (size_t)c->cout, 1.0f);
    }
    if (c->res == RES_SEPARATE) {
        d->res = kt_alloc(d->out_n, c->misalign);
        kt_fill(d->res, d->out_n, 2.0f);
    }
    /* One element past the end checks the last store too. */
    d->out_init = kt_alloc(d->out_n + 1, 0);
    if (c->res == RES_ALIAS) kt_fill(d->out_init, d->out_n + 1, 2.0f);
    else kt_fill_value(d->out_init, d->out_n + 1, KT_SENTINEL);
}

static void data_free(conv_data *d) {
    kt_free(d->in, d->c.misalign);
    kt_free(d->w, 0);
    kt_free(d->bias, 0);
    kt_free(d->res, d->c.misalign);
    kt_free(d->out_init, 0);
    free(d->wh);
}

static bool pack_bf16(pd_packed_w *pw, const conv_data *d, int nr) {
    const conv_case *c = &d->c;
    pd_error err;
    const void *src = wdt_of(c) == PD_DTYPE_F32 ? (const void *)d->w : (const void *)((char *)d->wh + 1);
    pd_status st = pd_bf16_conv_pack(pw, nr, src, wdt_of(c), c->cout, c->cin, c->k, c->k, d->bias,
                                     PD_DTYPE_F32, &err);
    CHECK_MSG(st == PD_OK, "pack failed: %s", err.msg);
    return st == PD_OK;
}

static int range_lo(int v) { return v < 0 ? 0 : v; }
static int range_hi(int v, int full) { return v < 0 ? full : v; }

/* Runs fn on a fresh copy of the initial output (free with kt_free(out, misalign)). */
static float *run(void (*fn)(const pd_conv_args *), const conv_data *d, const pd_packed_w *pw) {
    const conv_case *c = &d->c;
    float *out = kt_alloc(d->out_n + 1, c->misalign);
    memcpy(out, d->out_init, (d->out_n + 1) * sizeof(float));
    pd_conv_args a = {
        .ih = c->h, .iw = c->w, .cin = c->cin, .oh = d->oh, .ow = d->ow, .kh = c->k, .kw = c->k,
        .stride = c->stride, .pad_t = d->pad_t, .pad_l = d->pad_l,
        .oy0 = range_lo(c->oy0), .oy1 = range_hi(c->oy1, d->oh),
        .n0 = range_lo(c->n0), .n1 = range_hi(c->n1, c->cout),
        .in = d->in, .w = pw, .out = out, .act = c->act,
        .res = c->res == RES_SEPARATE ? d->res : c->res == RES_ALIAS ? out : NULL,
    };
    fn(&a);
    return out;
}

/* got vs ref on the written block (relative to max |ref|); every other element (and
 * the one past the end) kept its initial bits. */
static void compare(const conv_data *d, const float *got, const float *ref, const char *name, double tol) {
    const conv_case *c = &d->c;
    const int y0 = range_lo(c->oy0), y1 = range_hi(c->oy1, d->oh);
    const int n0 = range_lo(c->n0), n1 = range_hi(c->n1, c->cout), nw = n1 - n0;
    char what[256];
    snprintf(what, sizeof what,
             "h=%d w=%d cin=%d cout=%d k=%d s=%d pad=%d oh=%d ow=%d rows[%d,%d) ch[%d,%d) act=%d bias=%d res=%d mis=%d",
             c->h, c->w, c->cin, c->cout, c->k, c->stride, c->pad, d->oh, d->ow, y0, y1, n0, n1, (int)c->act,
             c->bias, c->res, c->misalign);
    const size_t px = (size_t)(y1 - y0) * (size_t)d->ow, base = (size_t)y0 * (size_t)d->ow;
    if (px > 0 && nw > 0) {
        float *g = malloc(px * (size_t)nw * sizeof(float)), *r = malloc(px * (size_t)nw * sizeof(float));
        if (!g || !r) abort();
        for (size_t p = 0; p < px; p++) {
            memcpy(g + p * (size_t)nw, got + (base + p) * (size_t)c->cout + (size_t)n0, (size_t)nw * sizeof(float));
            memcpy(r + p * (size_t)nw, ref + (base + p) * (size_t)c->cout + (size_t)n0, (size_t)nw * sizeof(float));
        }
        size_t worst;
        double err = pd_test_rel_err(g, r, px * (size_t)nw, &worst);
        /* SIMD activations flush results below 1e-34 to zero (act.h). */
        if (fabs((double)g[worst] - (double)r[worst]) <= 1e-34) err = 0.0;
        CHECK_MSG(err <= tol, "%s %s: rel err %.3g at pixel %zu ch %zu: %.9g vs %.9g", name, what, err,
                  base + worst / (size_t)nw, worst % (size_t)nw + (size_t)n0, g[worst], r[worst]);
        free(g);
        free(r);
    }
    size_t bad = 0;
    for (size_t p = 0; p < (size_t)d->oh * (size_t)d->ow; p++) {
        const int oy = (int)(p / (size_t)d->ow);
        for (int co = 0; co < c->cout; co++) {
            if (oy >= y0 && oy < y1 && co >= n0 && co < n1) continue;
            const size_t i = p * (size_t)c->cout + (size_t)co;
            bad += !kt_same_bits(got[i], d->out_init[i]);
        }
    }
    bad += !kt_same_bits(got[d->out_n], d->out_init[d->out_n]);
    CHECK_MSG(bad == 0, "%s %s: %zu elements outside the output block changed", name, what, bad);
}

/* Every supported variant vs the bf16 reference on one case (packed with the variant's
 * nr; a case whose n0 is not a multiple of it is skipped for that variant). */
static void check_case(const conv_case *c) {
    conv_data d;
    data_make(&d, c);
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) {
        if (!variant_ok(&VARIANTS[v]) || (c->n0 > 0 && c->n0 % VARIANTS[v].nr)) continue;
        pd_packed_w pw;
        if (!pack_bf16(&pw, &d, VARIANTS[v].nr)) continue;
        float *ref = run(pd_bf16_conv__ref, &d, &pw);
        float *got = run(VARIANTS[v].fn, &d, &pw);
        compare(&d, got, ref, VARIANTS[v].name, VAR_TOL);
        kt_free(got, c->misalign);
        kt_free(ref, c->misalign);
        pd_packed_w_free(&pw);
    }
    data_free(&d);
}

/* ---- the pack and the reference ------------------------------------------------------ */

static void test_pack_layout(void) {
    /* W[co, ci, ky, kx] = distinct values; packed k index (ky*kw + kx)*cin + ci. */
    enum { COUT = 37, CIN = 5, KH = 3, KW = 2, K = KH * KW * CIN };
    static float w[COUT * K], bias[COUT];
    for (int i = 0; i < COUT * K; i++) w[i] = (float)(i % 251) - 125.0f;
    for (int j = 0; j < COUT; j++) bias[j] = (float)(1000 + j);
    const pd_dtype dts[] = {PD_DTYPE_F32, PD_DTYPE_F16, PD_DTYPE_BF16};
    for (size_t t = 0; t < PD_COUNT(dts); t++)
        for (int nr = 16; nr <= 32; nr += 16) {
            /* Small integers: exact in every source dtype. */
            uint16_t wh[COUT * K + 1];
            const void *src = w;
            if (dts[t] != PD_DTYPE_F32) {
                for (int i = 0; i < COUT * K; i++)
                    wh[i] = dts[t] == PD_DTYPE_BF16 ? pd_f32_to_bf16(w[i]) : pd_f32_to_f16(w[i]);
                src = wh;
            }
            pd_packed_w pw;
            CHECK(pd_bf16_conv_pack(&pw, nr, src, dts[t], COUT, CIN, KH, KW, bias, PD_DTYPE_F32, NULL) == PD_OK);
            CHECK(pw.n == COUT && pw.k == K && pw.kp == 32 && pw.nr == nr && pw.bf16 && pw.bias &&
                  pw.dtype == PD_DTYPE_BF16 && !pw.data);
            int bad = 0;
            for (int p = 0; p < (COUT + nr - 1) / nr; p++)
                for (int kk = 0; kk < pw.kp; kk++)
                    for (int c = 0; c < nr; c++) {
                        const int co = p * nr + c;
                        float want = 0.0f;
                        if (co < COUT && kk < K) {
                            const int tap = kk / CIN, ci = kk % CIN, ky = tap / KW, kx = tap % KW;
                            want = w[((co * CIN + ci) * KH + ky) * KW + kx];
                        }
                        bad += pw.bf16[((size_t)p * pw.kp + (kk & ~1)) * nr + 2 * c + (kk & 1)] != pd_f32_to_bf16(want);
                    }
            for (int j = 0; j < COUT; j++) bad += pw.bias[j] != bias[j];
            CHECK_MSG(bad == 0, "%s nr=%d: %d packed elements wrong", pd_dtype_name(dts[t]), nr, bad);
            pd_packed_w_free(&pw);
        }
}

static void test_pack_errors(void) {
    float w[16] = {0};
    pd_packed_w pw;
    pd_error err;
    CHECK(pd_bf16_conv_pack(&pw, 32, NULL, PD_DTYPE_F32, 1, 1, 3, 3, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK(pw.bf16 == NULL && pw.bias == NULL);
    CHECK(pd_bf16_conv_pack(&pw, 32, w, PD_DTYPE_F32, 0, 1, 1, 1, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "shape");
    CHECK(pd_bf16_conv_pack(&pw, 24, w, PD_DTYPE_F32, 1, 1, 1, 1, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_bf16_conv_pack(&pw, 32, w, PD_DTYPE_F32, INT_MAX, INT_MAX, 3, 3, NULL, PD_DTYPE_F32, &err) ==
          PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "too large");
    CHECK(pd_bf16_conv_pack(&pw, 32, w, PD_DTYPE_F32, 1, 1, 3, 3, NULL, PD_DTYPE_F32, NULL) == PD_OK);
    pd_packed_w_free(&pw);
}

/* The bf16 reference vs the fp32 reference over the same weight values. */
static void test_ref_vs_f32(void) {
    kt_seed(7);
    int idx = 0;
    for (int k = 1; k <= 3; k += 2)
        for (int stride = 1; stride <= 2; stride++)
            for (int pad = PAD_NONE; pad <= PAD_WIDE; pad++, idx++) {
                const conv_case c = {.h = 6 + idx % 3, .w = 7 - idx % 2, .cin = 3 + 11 * (idx % 3), .cout = 19,
                                     .k = k, .stride = stride, .pad = pad, .oy0 = idx % 3 == 0 ? 1 : -1, .oy1 = -1,
                                     .n0 = -1, .n1 = -1, .act = (pd_act)(idx % 4), .bias = idx % 5 != 4,
                                     .res = idx % 3, .misalign = idx % 2,
                                     .wdt = idx % 3 == 0 ? PD_DTYPE_F32 : idx % 3 == 1 ? PD_DTYPE_F16 : PD_DTYPE_BF16};
                conv_data d;
                data_make(&d, &c);
                if (d.oh > 0 && d.ow > 0) {
                    pd_packed_w pb, pf;
                    pd_error err;
                    const void *src = wdt_of(&c) == PD_DTYPE_F32 ? (const void *)d.w : (const void *)((char *)d.wh + 1);
                    if (pack_bf16(&pb, &d, 32) &&
                        pd_conv_pack(&pf, PD_GEMM_REF_NR, src, wdt_of(&c), c.cout, c.cin, c.k, c.k, d.bias,
                                     PD_DTYPE_F32, &err) == PD_OK) {
                        float *got = run(pd_bf16_conv__ref, &d, &pb);
                        float *want = run(pd_f32_conv__ref, &d, &pf);
                        compare(&d, got, want, "bf16 ref vs f32 ref", BF16_TOL);
                        kt_free(got, c.misalign);
                        kt_free(want, c.misalign);
                        pd_packed_w_free(&pf);
                        pd_packed_w_free(&pb);
                    }
                }
                data_free(&d);
            }
}

/* ---- variants ------------------------------------------------------------------------- */

/* The im2col and GEMM paths: odd channel counts, widths off the 16 grid. */
static void test_variants_shapes(void) {
    if (n_supported() == 0) PD_SKIP("no bf16 conv variant runs on this CPU");
    static const int hw[] = {1, 2, 3, 5, 8, 13};
    static const int cins[] = {1, 3, 4, 5, 17, 37};
    static const int couts[] = {1, 3, 16, 17, 32, 33, 70};
    kt_seed(11);
    int idx = 0;
    for (size_t a = 0; a < PD_COUNT(hw); a++)
        for (size_t ci = 0; ci < PD_COUNT(cins); ci++)
            for (size_t co = 0; co < PD_COUNT(couts); co++)
                for (int k = 1; k <= 3; k += 2, idx++) {
                    const int h = hw[a], w = hw[(a + ci + co) % PD_COUNT(hw)];
                    conv_case c = {
                        .h = h, .w = w, .cin = cins[ci], .cout = couts[co], .k = k,
                        .stride = 1 + (idx / 2) % 2, .pad = k == 1 ? (idx % 5 == 0 ? PAD_WIDE : PAD_NONE) : (idx / 4) % 4,
                        .oy0 = -1, .oy1 = -1, .n0 = -1, .n1 = -1,
                        .act = (pd_act)(idx % 4), .bias = (idx / 3) % 4 != 0, .res = (idx / 5) % 3,
                        .misalign = (idx / 7) % 2,
                        .wdt = idx % 11 == 3 ? PD_DTYPE_F16 : idx % 11 == 7 ? PD_DTYPE_BF16 : PD_DTYPE_F32,
                    };
                    int oh, ow, pt, pl;
                    geometry(&c, &oh, &ow, &pt, &pl);
                    if (oh <= 0 || ow <= 0) continue;
                    if (idx % 3 == 1 && oh > 1) {
                        c.oy0 = oh / 3;
                        c.oy1 = oh - (oh > 2);
                    }
                    check_case(&c);
                }
}

/* The direct source: cin % 32 == 0 and ow % 16 == 0 (both halves of a row block in one
 * output row when ow % 32 == 0, in two rows otherwise), stride 1 and 2, every padding,
 * one or several channel blocks, output-row sub-ranges starting anywhere. */
static void test_variants_direct(void) {
    if (n_supported() == 0) PD_SKIP("no bf16 conv variant runs on this CPU");
    kt_seed(13);
    /* h, w (input), cin, cout, k, stride, pad */
    static const int shapes[][7] = {
        {4, 16, 32, 40, 3, 1, PAD_SAME},     {3, 32, 64, 33, 3, 1, PAD_SAME},  {5, 48, 32, 17, 3, 1, PAD_SAME},
        {4, 64, 32, 64, 3, 1, PAD_SAME},     {6, 12, 96, 20, 3, 1, PAD_WIDE},  {2, 18, 32, 70, 3, 1, PAD_NONE},
        {6, 32, 32, 48, 3, 2, PAD_VAE_DOWN}, {5, 31, 64, 31, 3, 2, PAD_SAME},  {7, 96, 32, 16, 3, 2, PAD_VAE_DOWN},
        {3, 16, 640, 35, 3, 1, PAD_SAME},    {3, 48, 384, 32, 3, 1, PAD_SAME}, {4, 64, 32, 50, 1, 2, PAD_NONE},
        {3, 10, 32, 18, 1, 1, PAD_WIDE},     {5, 16, 32, 37, 1, 1, PAD_NONE},  {9, 64, 64, 40, 3, 2, PAD_VAE_DOWN},
        {6, 96, 160, 36, 3, 1, PAD_SAME},    {5, 32, 512, 32, 3, 1, PAD_SAME},
    };
    for (size_t i = 0; i < PD_COUNT(shapes); i++)
        for (int opt = 0; opt < 3; opt++) {
            const int idx = (int)i * 3 + opt;
            conv_case c = {.h = shapes[i][0], .w = shapes[i][1], .cin = shapes[i][2], .cout = shapes[i][3],
                           .k = shapes[i][4], .stride = shapes[i][5], .pad = shapes[i][6], .oy0 = -1, .oy1 = -1,
                           .n0 = -1, .n1 = -1, .act = (pd_act)(idx % 4), .bias = idx % 4 != 3, .res = idx % 3,
                           .misalign = (idx / 2) % 2, .wdt = idx % 5 == 2 ? PD_DTYPE_BF16 : PD_DTYPE_F32};
            int oh, ow, pt, pl;
            geometry(&c, &oh, &ow, &pt, &pl);
            if (opt == 1 && oh > 1) {
                c.oy0 = 1;
                c.oy1 = oh - (oh > 2);
            } else if (opt == 2 && c.cout > 32) {
                c.n0 = 32;
            }
            check_case(&c);
        }
}

/* Channel ranges at panel boundaries and inside a panel, with row ranges; a weight wide
 * in k so the driver makes several column blocks. */
static void test_variants_ranges(void) {
    if (n_supported() == 0) PD_SKIP("no bf16 conv variant runs on this CPU");
    kt_seed(17);
    const int ranges[][2] = {{0, 32}, {32, 64}, {32, 300}, {0, 31}, {32, 37}, {288, 300}, {288, 299},
                             {0, 1}, {64, 64}, {0, 300}, {96, 250}};
    for (size_t r = 0; r < PD_COUNT(ranges); r++) {
        /* K = 9 * 640: column blocks of 64 (L2 budget) -> several per call. */
        conv_case c = {.h = 3, .w = 16, .cin = r % 2 ? 640 : 190, .cout = 300, .k = 3, .stride = 1,
                       .pad = PAD_SAME, .oy0 = (int)(r % 3), .oy1 = 3 - (int)(r % 2), .n0 = ranges[r][0],
                       .n1 = ranges[r][1], .act = (pd_act)(r % PD_ACT_COUNT), .bias = true, .res = (int)(r % 3),
                       .misalign = (int)(r % 2)};
        if (c.oy0 > c.oy1) c.oy0 = c.oy1;
        check_case(&c);
    }
}

/* k blocks: im2col with kp > 1600 (two blocks), the GEMM path with k = 1700 (1x1). */
static void test_variants_long_k(void) {
    if (n_supported() == 0) PD_SKIP("no bf16 conv variant runs on this CPU");
    kt_seed(19);
    const conv_case cs[] = {
        {.h = 5, .w = 7, .cin = 190, .cout = 45, .k = 3, .stride = 1, .pad = PAD_SAME, .act = PD_ACT_SILU,
         .bias = true, .res = RES_ALIAS, .misalign = 1},
        {.h = 3, .w = 11, .cin = 1700, .cout = 40, .k = 1, .stride = 1, .pad = PAD_NONE, .act = PD_ACT_GELU,
         .bias = true, .res = RES_SEPARATE},
        {.h = 4, .w = 9, .cin = 300, .cout = 33, .k = 3, .stride = 2, .pad = PAD_VAE_DOWN, .bias = true},
    };
    for (size_t i = 0; i < PD_COUNT(cs); i++) {
        conv_case c = cs[i];
        c.oy0 = c.oy1 = c.n0 = c.n1 = -1;
        check_case(&c);
    }
}

/* Empty row and channel ranges write nothing. */
static void test_variants_empty(void) {
    if (n_supported() == 0) PD_SKIP("no bf16 conv variant runs on this CPU");
    kt_seed(23);
    const conv_case cs[] = {
        {.h = 4, .w = 16, .cin = 32, .cout = 20, .k = 3, .stride = 1, .pad = PAD_SAME, .oy0 = 2, .oy1 = 2,
         .n0 = -1, .n1 = -1},
        {.h = 4, .w = 5, .cin = 3, .cout = 20, .k = 3, .stride = 1, .pad = PAD_SAME, .oy0 = -1, .oy1 = -1,
         .n0 = 0, .n1 = 0},
    };
    for (size_t i = 0; i < PD_COUNT(cs); i++) check_case(&cs[i]);
}

/* The bf16 table's conv at each level reads the panels its GEMM's nr packs. */
static void test_dispatch_table(void) {
    kt_seed(29);
    const pd_isa levels[] = {PD_ISA_SCALAR, PD_ISA_AVX512, PD_ISA_AMX};
    for (size_t l = 0; l < PD_COUNT(levels); l++) {
        pd_kernels kt;
        const pd_isa got = pd_kernels_init_prec(&kt, levels[l], PD_PREC_BF16);
        CHECK(kt.conv2d_f32 && kt.wtype == PD_DTYPE_BF16);
        if (got != levels[l]) continue;
        const conv_case c = {.h = 7, .w = 16, .cin = 64, .cout = 70, .k = 3, .stride = 1, .pad = PAD_SAME,
                             .oy0 = -1, .oy1 = -1, .n0 = -1, .n1 = -1, .act = PD_ACT_SILU, .bias = true,
                             .res = RES_ALIAS, .wdt = PD_DTYPE_BF16};
        conv_data d;
        data_make(&d, &c);
        pd_packed_w pw;
        if (pack_bf16(&pw, &d, kt.gemm_nr)) {
            float *ref = run(pd_bf16_conv__ref, &d, &pw);
            float *out = run(kt.conv2d_f32, &d, &pw);
            compare(&d, out, ref, pd_isa_name(got), VAR_TOL);
            kt_free(ref, 0);
            kt_free(out, 0);
            pd_packed_w_free(&pw);
        }
        data_free(&d);
    }
}

static void test_variant_list(void) {
    CHECK(PD_COUNT(VARIANTS) >= 1);
    CHECK(VARIANTS[0].isa == PD_ISA_SCALAR && VARIANTS[0].fn == pd_bf16_conv__ref);
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) {
        if (!variant_ok(&VARIANTS[v])) fprintf(stderr, "  SKIP %s: CPU or OS lacks its ISA\n", VARIANTS[v].name);
        CHECK(VARIANTS[v].nr == 16 || VARIANTS[v].nr == 32);
    }
}

int main(void) {
    PD_RUN(test_variant_list);
    PD_RUN(test_pack_layout);
    PD_RUN(test_pack_errors);
    PD_RUN(test_ref_vs_f32);
    PD_RUN(test_variants_shapes);
    PD_RUN(test_variants_direct);
    PD_RUN(test_variants_ranges);
    PD_RUN(test_variants_long_k);
    PD_RUN(test_variants_empty);
    PD_RUN(test_dispatch_table);
    return pd_test_summary();
}
