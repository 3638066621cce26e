/*
 * test_conv.c - pd_conv_pack and every conv2d variant in conv.inc against the reference.
 *
 * The reference is checked against a direct double-precision convolution over the
 * unpacked PyTorch weight [cout, cin, kh, kw] (which also proves the pack layout and
 * its k order (ky*kw + kx)*cin + ci); every SIMD variant is checked against the
 * reference on awkward shapes: h, w in {1, 2, 3, 5, 8, 13} (non-square), cin in
 * {1, 3, 4, 5, 17, 32, 64}, cout in {1, 3, 4, 8, 12, 16, 17, 32, 33, 64, 100}, k in {1, 3},
 * stride 1 and 2, padding 0, 1 and the VAE encoder's (0, 1, 0, 1), output-row and
 * channel sub-ranges (everything outside stays untouched: sentinels), residual
 * separate or aliasing the output, all activations, F16/BF16-packed weights,
 * misaligned pointers.
 *
 * Tolerance: fp32 variants vs the double-accumulating reference, max |diff| <= 1e-5 *
 * max |ref| over the written block (K <= 9 * 300 with inputs in [-1, 1]), or <= 1e-34
 * absolute (SIMD activations flush tiny results to zero).
 */
#include <limits.h>

#include "base/half.h"
#include "kernel_test_util.h"
#include "kernels/act/act.h"
#include "kernels/conv/conv.h"

#define CONV_TOL 1e-5

typedef struct variant {
    pd_isa isa;
    const char *name;
    void (*fn)(const pd_conv_args *args);
    int mr, nr;
} variant;

static const variant VARIANTS[] = {
#define PD_KERNEL(isa, fn, mr, nr) {isa, #fn, fn, mr, nr},
#include "kernels/conv/conv.inc"
#undef PD_KERNEL
};

enum { RES_NONE, RES_SEPARATE, RES_ALIAS };
/* 0; k/2 on all sides; (0, 1, 0, 1); 3 on all sides (whole tiles of padding) */
enum { PAD_NONE, PAD_SAME, PAD_VAE_DOWN, PAD_WIDE };

typedef struct conv_case {
    int h, w, cin, cout, k, stride, pad;   /* pad: PAD_*; k = kh */
    int oy0, oy1, n0, n1;                  /* -1: the full range */
    pd_act act;
    bool bias;
    int res;                               /* RES_* */
    int misalign;                          /* 0 or 1 float */
    pd_dtype wdt;                          /* F32, F16 or BF16 source weight */
    int kw;                                /* 0: = k */
} conv_case;

static int kw_of(const conv_case *c) { return c->kw ? c->kw : c->k; }

/* Inputs of one case, independent of the variant (W unpacked, PyTorch layout). */
typedef struct conv_data {
    conv_case c;
    int oh, ow, pad_t, pad_l;
    size_t in_n, out_n;
    float *in, *w, *bias, *res, *out_init;
    uint16_t *wh;   /* F16/BF16 copy of w (w holds the widened values) */
} conv_data;

static void geometry(const conv_case *c, int *oh, int *ow, int *pt, int *pl) {
    int pb, pr;
    const int kw = kw_of(c);
    if (c->pad == PAD_SAME) *pt = pb = c->k / 2, *pl = pr = kw / 2;
    else if (c->pad == PAD_VAE_DOWN) *pt = *pl = 0, pb = pr = 1;
    else if (c->pad == PAD_WIDE) *pt = *pl = pb = pr = 3;
    else *pt = *pl = pb = pr = 0;
    *oh = (c->h + *pt + pb - c->k) / c->stride + 1;
    *ow = (c->w + *pl + pr - kw) / c->stride + 1;
    if (c->h + *pt + pb < c->k) *oh = 0;
    if (c->w + *pl + pr < kw) *ow = 0;
}

static void data_make(conv_data *d, const conv_case *c) {
    memset(d, 0, sizeof *d);
    d->c = *c;
    geometry(c, &d->oh, &d->ow, &d->pad_t, &d->pad_l);
    d->in_n = (size_t)c->h * (size_t)c->w * (size_t)c->cin;
    d->out_n = (size_t)d->oh * (size_t)d->ow * (size_t)c->cout;
    d->in = kt_alloc(d->in_n, c->misalign);
    kt_fill(d->in, d->in_n, 1.0f);
    size_t wn = (size_t)c->cout * (size_t)c->cin * (size_t)c->k * (size_t)kw_of(c);
    d->w = kt_alloc(wn, 0);
    kt_fill(d->w, wn, 1.0f);
    if (c->wdt != PD_DTYPE_F32) {
        d->wh = malloc(wn * sizeof(uint16_t) + 2);
        for (size_t i = 0; i < wn; i++) {
            uint16_t h = c->wdt == PD_DTYPE_BF16 ? pd_f32_to_bf16(d->w[i]) : pd_f32_to_f16(d->w[i]);
            d->w[i] = c->wdt == PD_DTYPE_BF16 ? pd_bf16_to_f32(h) : pd_f16_to_f32(h);
            /* Stored one byte off: the source of a pack may be unaligned. */
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
    /* Initial output: sentinels, except the aliased residual (everywhere: elements
     * outside the ranges must keep it too). */
    d->out_init = kt_alloc(d->out_n, 0);
    if (c->res == RES_ALIAS) kt_fill(d->out_init, d->out_n, 2.0f);
    else kt_fill_value(d->out_init, d->out_n, KT_SENTINEL);
}

static void data_free(conv_data *d) {
    kt_free(d->in, d->c.misalign);
    kt_free(d->w, 0);
    kt_free(d->bias, 0);
    kt_free(d->res, d->c.misalign);
    kt_free(d->out_init, 0);
    free(d->wh);
}

static bool pack(pd_packed_w *pw, const conv_data *d, int nr) {
    const conv_case *c = &d->c;
    pd_error err;
    const void *src = c->wdt == PD_DTYPE_F32 ? (const void *)d->w : (const void *)((char *)d->wh + 1);
    pd_status st = pd_conv_pack(pw, nr, src, c->wdt, c->cout, c->cin, c->k, kw_of(c), d->bias,
                                PD_DTYPE_F32, &err);
    CHECK_MSG(st == PD_OK, "pack failed: %s", err.msg);
    return st == PD_OK;
}

static int range_lo(int v) { return v < 0 ? 0 : v; }
static int range_hi(int v, int full) { return v < 0 ? full : v; }

/* Runs fn on a fresh copy of the initial output; returns the buffer (free with
 * kt_free(out, misalign)). */
static float *run(void (*fn)(const pd_conv_args *), const conv_data *d, const pd_packed_w *pw) {
    const conv_case *c = &d->c;
    float *out = kt_alloc(d->out_n, c->misalign);
    memcpy(out, d->out_init, d->out_n * sizeof(float));
    pd_conv_args a = {
        .ih = c->h, .iw = c->w, .cin = c->cin, .oh = d->oh, .ow = d->ow, .kh = c->k, .kw = kw_of(c),
        .stride = c->stride, .pad_t = d->pad_t, .pad_l = d->pad_l,
        .oy0 = range_lo(c->oy0), .oy1 = range_hi(c->oy1, d->oh),
        .n0 = range_lo(c->n0), .n1 = range_hi(c->n1, c->cout),
        .in = d->in, .w = pw, .out = out, .act = c->act,
        .res = c->res == RES_SEPARATE ? d->res : c->res == RES_ALIAS ? out : NULL,
    };
    fn(&a);
    return out;
}

static void describe(char *buf, size_t n, const conv_case *c, const conv_data *d) {
    snprintf(buf, n, "h=%d w=%d cin=%d cout=%d k=%dx%d s=%d pad=%d oh=%d ow=%d rows[%d,%d) ch[%d,%d) act=%d bias=%d res=%d mis=%d wdt=%s",
             c->h, c->w, c->cin, c->cout, c->k, kw_of(c), c->stride, c->pad, d->oh, d->ow, c->oy0, c->oy1,
             c->n0, c->n1, (int)c->act, c->bias, c->res, c->misalign, pd_dtype_name(c->wdt));
}

/* Compares got vs ref on the written block and checks every other element of got kept
 * its initial bits. */
static void compare(const conv_data *d, const float *got, const float *ref, const char *name) {
    const conv_case *c = &d->c;
    const int y0 = range_lo(c->oy0), y1 = range_hi(c->oy1, d->oh);
    const int n0 = range_lo(c->n0), n1 = range_hi(c->n1, c->cout), nw = n1 - n0;
    char what[256];
    describe(what, sizeof what, c, d);
    const size_t px = (size_t)(y1 - y0) * (size_t)d->ow;
    if (px > 0 && nw > 0) {
        float *g = malloc(px * (size_t)nw * sizeof(float)), *r = malloc(px * (size_t)nw * sizeof(float));
        const size_t base = (size_t)y0 * (size_t)d->ow;
        for (size_t p = 0; p < px; p++) {
            memcpy(g + p * (size_t)nw, got + (base + p) * (size_t)c->cout + (size_t)n0, (size_t)nw * sizeof(float));
            memcpy(r + p * (size_t)nw, ref + (base + p) * (size_t)c->cout + (size_t)n0, (size_t)nw * sizeof(float));
        }
        size_t worst;
        double err = pd_test_rel_err(g, r, px * (size_t)nw, &worst);
        /* SIMD activations flush results below 1e-34 to zero (act.h): a block whose
         * largest value is that small (e.g. one GELU(-40) pixel) compares absolutely. */
        if (fabs((double)g[worst] - (double)r[worst]) <= 1e-34) err = 0.0;
        CHECK_MSG(err <= CONV_TOL, "%s %s: rel err %.3g at pixel %zu ch %zu: %.9g vs %.9g", name, what,
                  err, base + worst / (size_t)nw, worst % (size_t)nw + (size_t)n0, g[worst], r[worst]);
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
    CHECK_MSG(bad == 0, "%s %s: %zu elements outside the output block changed", name, what, bad);
}

/* Runs the reference and every supported variant on one case (each packed for its own
 * nr; the reference packed like the variant so the n0 split is legal for both). */
static void check_case(const conv_case *c) {
    conv_data d;
    data_make(&d, c);
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) {
        if (!kt_isa_supported(VARIANTS[v].isa)) continue;
        if (c->n0 > 0 && c->n0 % VARIANTS[v].nr) continue;
        pd_packed_w pw;
        if (!pack(&pw, &d, VARIANTS[v].nr)) continue;
        float *ref = run(pd_f32_conv__ref, &d, &pw);
        float *got = run(VARIANTS[v].fn, &d, &pw);
        compare(&d, got, ref, VARIANTS[v].name);
        kt_free(got, c->misalign);
        kt_free(ref, c->misalign);
        pd_packed_w_free(&pw);
    }
    data_free(&d);
}

static int n_supported_simd(void) {
    int n = 0;
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) n += kt_isa_supported(VARIANTS[v].isa);
    return n;
}

/* ---- the reference and the pack ----------------------------------------------------- */

/* The reference against the direct convolution over the PyTorch-layout weight, in
 * double, for several panel widths (the reference reads any nr), every padding mode,
 * stride, activation, residual kind and F16/BF16 source weights. */
static void test_ref_vs_direct(void) {
    kt_seed(7);
    const int nrs[] = {1, 5, 16, 32, 64};
    int idx = 0;
    for (size_t t = 0; t < PD_COUNT(nrs); t++)
        for (int k = 1; k <= 5; k += 2)
            for (int stride = 1; stride <= 2; stride++)
                for (int pad = PAD_NONE; pad <= PAD_WIDE; pad++, idx++) {
                    conv_case c = {.h = 5 + idx % 3, .w = 7 - idx % 2, .cin = 3 + idx % 4,
                                   .cout = 9 + idx % 5, .k = k, .kw = k == 5 ? 2 : k, .stride = stride, .pad = pad,
                                   .oy0 = idx % 3 == 0 ? 1 : -1, .oy1 = -1, .n0 = -1, .n1 = -1,
                                   .act = (pd_act)(idx % 4), .bias = idx % 5 != 4, .res = idx % 3,
                                   .misalign = idx % 2,
                                   .wdt = idx % 3 == 0 ? PD_DTYPE_F32 : idx % 3 == 1 ? PD_DTYPE_F16 : PD_DTYPE_BF16};
                    conv_data d;
                    data_make(&d, &c);
                    pd_packed_w pw;
                    if (pack(&pw, &d, nrs[t])) {
                        float *got = run(pd_f32_conv__ref, &d, &pw);
                        float *want = kt_alloc(d.out_n, 0);
                        memcpy(want, d.out_init, d.out_n * sizeof(float));
                        const float *res = c.res == RES_SEPARATE ? d.res : c.res == RES_ALIAS ? d.out_init : NULL;
                        for (int oy = range_lo(c.oy0); oy < d.oh; oy++)
                            for (int ox = 0; ox < d.ow; ox++)
                                for (int co = 0; co < c.cout; co++) {
                                    double s = 0;
                                    for (int ci = 0; ci < c.cin; ci++)
                                        for (int ky = 0; ky < k; ky++)
                                            for (int kx = 0; kx < kw_of(&c); kx++) {
                                                int iy = oy * stride + ky - d.pad_t, ix = ox * stride + kx - d.pad_l;
                                                if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
                                                s += (double)d.in[((size_t)iy * c.w + ix) * c.cin + ci] *
                                                     d.w[(((size_t)co * c.cin + ci) * k + ky) * kw_of(&c) + kx];
                                            }
                                    float v = (float)s + (c.bias ? d.bias[co] : 0.0f);
                                    v = pd_f32_act_scalar(v, c.act);
                                    size_t o = ((size_t)oy * d.ow + ox) * c.cout + co;
                                    want[o] = res ? v + res[o] : v;
                                }
                        compare(&d, got, want, "ref vs direct");
                        kt_free(want, 0);
                        kt_free(got, c.misalign);
                        pd_packed_w_free(&pw);
                    }
                    data_free(&d);
                }
}

static void test_pack_layout(void) {
    /* W[co, ci, ky, kx] = distinct integers; packed k index (ky*kw + kx)*cin + ci. */
    const int cout = 19, cin = 3, kh = 3, kw = 2, k = kh * kw * cin;
    float w[19 * 3 * 3 * 2], bias[19];
    for (int i = 0; i < cout * k; i++) w[i] = (float)(i + 1);
    for (int j = 0; j < cout; j++) bias[j] = (float)(1000 + j);
    const int nrs[] = {1, 8, 16, 32, 64};
    for (size_t t = 0; t < PD_COUNT(nrs); t++) {
        const int nr = nrs[t];
        pd_packed_w pw;
        CHECK(pd_conv_pack(&pw, nr, w, PD_DTYPE_F32, cout, cin, kh, kw, bias, PD_DTYPE_F32, NULL) == PD_OK);
        CHECK(pw.n == cout && pw.k == k && pw.nr == nr && pw.data && pw.bias);
        int bad = 0;
        for (int p = 0; p < (cout + nr - 1) / nr; p++)
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++)
                    for (int ci = 0; ci < cin; ci++)
                        for (int c = 0; c < nr; c++) {
                            int co = p * nr + c, kk = (ky * kw + kx) * cin + ci;
                            float want = co < cout ? w[((co * cin + ci) * kh + ky) * kw + kx] : 0.0f;
                            bad += pw.data[((size_t)p * k + kk) * nr + c] != want;
                        }
        for (int j = 0; j < cout; j++) bad += pw.bias[j] != bias[j];
        CHECK_MSG(bad == 0, "nr=%d: %d packed elements wrong", nr, bad);
        pd_packed_w_free(&pw);
    }
}

static void test_pack_errors(void) {
    float w[16] = {0};
    uint16_t h[16] = {0};
    pd_packed_w pw;
    pd_error err;
    CHECK(pd_conv_pack(&pw, 16, NULL, PD_DTYPE_F32, 1, 1, 3, 3, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK(pw.data == NULL && pw.bias == NULL);
    CHECK(pd_conv_pack(&pw, 16, w, PD_DTYPE_F32, 0, 1, 1, 1, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "shape");
    CHECK(pd_conv_pack(&pw, 16, w, PD_DTYPE_F32, 1, 1, 0, 3, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_conv_pack(&pw, 16, h, PD_DTYPE_I16, 1, 1, 3, 3, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "I16");
    CHECK(pd_conv_pack(&pw, 16, w, PD_DTYPE_F32, 1, 1, 1, 1, h, PD_DTYPE_U8, &err) == PD_ERR_INVALID_ARG);
    /* K = 3 * 3 * INT_MAX overflows an int: refused before any allocation. */
    CHECK(pd_conv_pack(&pw, 16, w, PD_DTYPE_F32, INT_MAX, INT_MAX, 3, 3, NULL, PD_DTYPE_F32, &err) ==
          PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "too large");
    CHECK(pd_conv_pack(&pw, 16, w, PD_DTYPE_F32, INT_MAX, 64, 3, 3, NULL, PD_DTYPE_F32, &err) ==
          PD_ERR_INVALID_ARG);
    CHECK(pw.data == NULL);
    CHECK(pd_conv_pack(&pw, 16, w, PD_DTYPE_F32, 1, 1, 3, 3, NULL, PD_DTYPE_F32, NULL) == PD_OK);
    pd_packed_w_free(&pw);
}

/* ---- variants --------------------------------------------------------------------- */

/* The shape grid; the options (stride, padding, activation, residual, ranges, weight
 * dtype, misalignment) rotate with the case index so each meets many shapes. */
static void test_variants_shapes(void) {
    if (n_supported_simd() == 0) PD_SKIP("no SIMD conv variant runs on this CPU");
    static const int hw[] = {1, 2, 3, 5, 8, 13};
    static const int cins[] = {1, 3, 4, 5, 17, 32, 64};
    static const int couts[] = {1, 3, 4, 8, 12, 16, 17, 32, 33, 64, 100};
    kt_seed(11);
    int idx = 0;
    for (size_t a = 0; a < PD_COUNT(hw); a++)
        for (size_t ci = 0; ci < PD_COUNT(cins); ci++)
            for (size_t co = 0; co < PD_COUNT(couts); co++)
                for (int k = 1; k <= 3; k += 2, idx++) {
                    const int h = hw[a], w = hw[(a + ci + co) % PD_COUNT(hw)];
                    conv_case c = {
                        .h = h, .w = w, .cin = cins[ci], .cout = couts[co], .k = k,
                        .stride = 1 + (idx / 2) % 2, .pad = k == 1 ? PAD_NONE : (idx / 4) % 3,
                        .oy0 = -1, .oy1 = -1, .n0 = -1, .n1 = -1,
                        .act = (pd_act)(idx % 4), .bias = (idx / 3) % 4 != 0, .res = (idx / 5) % 3,
                        .misalign = (idx / 7) % 2,
                        .wdt = idx % 11 == 3 ? PD_DTYPE_F16 : idx % 11 == 7 ? PD_DTYPE_BF16 : PD_DTYPE_F32,
                    };
                    int oh, ow, pt, pl;
                    geometry(&c, &oh, &ow, &pt, &pl);
                    if (oh <= 0 || ow <= 0) continue;
                    /* Every third case computes a row sub-range. */
                    if (idx % 3 == 1 && oh > 1) {
                        c.oy0 = oh / 3;
                        c.oy1 = oh - (oh > 2);
                    }
                    check_case(&c);
                }
}

/* Channel ranges at panel boundaries (including the last, partial panel) and n1 inside
 * a panel, with row ranges; the residual aliases the output in some. */
static void test_variants_ranges(void) {
    if (n_supported_simd() == 0) PD_SKIP("no SIMD conv variant runs on this CPU");
    kt_seed(13);
    const int cout = 150;
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) {
        if (!kt_isa_supported(VARIANTS[v].isa)) continue;
        const int nr = VARIANTS[v].nr;
        const int ranges[][2] = {
            {0, nr}, {nr, 2 * nr}, {nr, cout}, {0, nr - 1}, {nr, nr + 5}, {(cout / nr) * nr, cout},
            {(cout / nr) * nr, cout - 1}, {0, 1}, {nr, nr}, {0, cout},
        };
        for (size_t r = 0; r < PD_COUNT(ranges); r++) {
            if (ranges[r][1] > cout || ranges[r][0] > ranges[r][1]) continue;
            conv_case c = {.h = 9, .w = 11, .cin = 7, .cout = cout, .k = 3, .stride = 1 + (int)(r % 2),
                           .pad = (int)(r % 3), .oy0 = (int)(r % 4), .oy1 = -1, .n0 = ranges[r][0],
                           .n1 = ranges[r][1], .act = (pd_act)(r % PD_ACT_COUNT), .bias = true, .res = (int)(r % 3),
                           .misalign = (int)(r % 2), .wdt = PD_DTYPE_F32};
            int oh, ow, pt, pl;
            geometry(&c, &oh, &ow, &pt, &pl);
            c.oy1 = oh - (int)(r % 2);
            if (c.oy0 > c.oy1) c.oy0 = c.oy1;
            check_case(&c);
        }
    }
}

/* Real-model-like corners: wide rows (interior tiles, several row tiles), long K,
 * tiny cin (conv_in), tiny cout (conv_out), the VAE downsampling conv. */
static void test_variants_model_like(void) {
    if (n_supported_simd() == 0) PD_SKIP("no SIMD conv variant runs on this CPU");
    kt_seed(17);
    const conv_case cs[] = {
        {.h = 6, .w = 40, .cin = 4, .cout = 64, .k = 3, .stride = 1, .pad = PAD_SAME, .act = PD_ACT_NONE, .bias = true},
        {.h = 5, .w = 37, .cin = 64, .cout = 3, .k = 3, .stride = 1, .pad = PAD_SAME, .bias = true},
        {.h = 4, .w = 33, .cin = 32, .cout = 8, .k = 3, .stride = 1, .pad = PAD_SAME, .bias = true},
        {.h = 12, .w = 30, .cin = 16, .cout = 40, .k = 3, .stride = 2, .pad = PAD_VAE_DOWN, .bias = true},
        {.h = 11, .w = 29, .cin = 16, .cout = 40, .k = 3, .stride = 2, .pad = PAD_SAME, .bias = true},
        {.h = 3, .w = 21, .cin = 300, .cout = 70, .k = 3, .stride = 1, .pad = PAD_SAME, .act = PD_ACT_SILU,
         .bias = true, .res = RES_ALIAS},
        {.h = 7, .w = 45, .cin = 130, .cout = 96, .k = 1, .stride = 1, .pad = PAD_NONE, .bias = true,
         .res = RES_SEPARATE},
        {.h = 7, .w = 45, .cin = 33, .cout = 96, .k = 1, .stride = 2, .pad = PAD_NONE, .bias = true},
        /* Several row blocks of every variant; a bottom/right padding implied by oh/ow. */
        {.h = 13, .w = 41, .cin = 9, .cout = 20, .k = 3, .stride = 1, .pad = PAD_SAME, .act = PD_ACT_GELU,
         .bias = true, .res = RES_ALIAS},
        /* Whole tiles of padding (no tap inside the image), 1x1 and 3x3. */
        {.h = 3, .w = 4, .cin = 5, .cout = 70, .k = 3, .stride = 1, .pad = PAD_WIDE, .act = PD_ACT_SILU, .bias = true},
        {.h = 3, .w = 4, .cin = 5, .cout = 7, .k = 1, .stride = 2, .pad = PAD_WIDE, .bias = true, .res = RES_SEPARATE},
        /* Kernels of more than 9 taps (several tap chunks), non-square. */
        {.h = 9, .w = 10, .cin = 6, .cout = 40, .k = 5, .kw = 4, .stride = 1, .pad = PAD_SAME, .bias = true},
        {.h = 12, .w = 12, .cin = 70, .cout = 17, .k = 7, .stride = 2, .pad = PAD_WIDE, .bias = true,
         .res = RES_ALIAS},
    };
    for (size_t i = 0; i < PD_COUNT(cs); i++) {
        conv_case c = cs[i];
        c.oy0 = c.oy1 = c.n0 = c.n1 = -1;
        if (c.wdt == 0) c.wdt = PD_DTYPE_F32;
        check_case(&c);
    }
}

/* Empty row and channel ranges write nothing. */
static void test_variants_empty(void) {
    kt_seed(23);
    for (size_t v = 0; v < PD_COUNT(VARIANTS); v++) {
        if (!kt_isa_supported(VARIANTS[v].isa)) continue;
        conv_case cs[] = {
            {.h = 4, .w = 5, .cin = 3, .cout = 20, .k = 3, .stride = 1, .pad = PAD_SAME, .oy0 = 2,
             .oy1 = 2, .n0 = -1, .n1 = -1, .wdt = PD_DTYPE_F32},
            {.h = 4, .w = 5, .cin = 3, .cout = 20, .k = 3, .stride = 1, .pad = PAD_SAME, .oy0 = -1,
             .oy1 = -1, .n0 = 0, .n1 = 0, .wdt = PD_DTYPE_F32},
        };
        for (size_t i = 0; i < PD_COUNT(cs); i++) {
            conv_data d;
            data_make(&d, &cs[i]);
            pd_packed_w pw;
            if (pack(&pw, &d, VARIANTS[v].nr)) {
                float *got = run(VARIANTS[v].fn, &d, &pw);
                CHECK_MSG(memcmp(got, d.out_init, d.out_n * sizeof(float)) == 0, "%s wrote on an empty range",
                          VARIANTS[v].name);
                kt_free(got, 0);
                pd_packed_w_free(&pw);
            }
            data_free(&d);
        }
    }
}

/* The dispatched table's conv reads the panels its GEMM's nr packs, at every level. */
static void test_dispatch_table(void) {
    kt_seed(29);
    const pd_isa levels[] = {PD_ISA_SCALAR, PD_ISA_AVX2, PD_ISA_AVX512, PD_ISA_AMX};
    for (size_t l = 0; l < PD_COUNT(levels); l++) {
        pd_kernels kt;
        pd_isa got = pd_kernels_init(&kt, levels[l]);
        CHECK(kt.conv2d_f32 && kt.groupnorm_f32 && kt.geglu_f32);
        if (got != levels[l]) continue;
        conv_case c = {.h = 7, .w = 9, .cin = 13, .cout = 70, .k = 3, .stride = 1, .pad = PAD_SAME,
                       .oy0 = -1, .oy1 = -1, .n0 = -1, .n1 = -1, .act = PD_ACT_SILU, .bias = true,
                       .res = RES_ALIAS, .wdt = PD_DTYPE_BF16};
        conv_data d;
        data_make(&d, &c);
        pd_packed_w pw;
        if (pack(&pw, &d, kt.gemm_nr)) {
            float *ref = run(pd_f32_conv__ref, &d, &pw);
            float *out = run(kt.conv2d_f32, &d, &pw);
            compare(&d, out, ref, pd_isa_name(got));
            kt_free(ref, 0);
            kt_free(out, 0);
            pd_packed_w_free(&pw);
        }
        data_free(&d);
    }
}

static void test_variant_list(void) {
    CHECK(PD_COUNT(VARIANTS) >= 1);
    CHECK(VARIANTS[0].isa == PD_ISA_SCALAR && VARIANTS[0].fn == pd_f32_conv__ref);
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
    PD_RUN(test_ref_vs_direct);
    PD_RUN(test_variants_shapes);
    PD_RUN(test_variants_ranges);
    PD_RUN(test_variants_model_like);
    PD_RUN(test_variants_empty);
    PD_RUN(test_dispatch_table);
    return pd_test_summary();
}
