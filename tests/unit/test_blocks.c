/*
 * test_blocks.c - the convolutional blocks of src/nn/blocks.h against naive loops
 * (double accumulation) on small random tensors: convolution (padding, stride, the
 * VAE's asymmetric downsampling pad, 1x1 from a 2-D weight, act + residual, thread
 * counts that split rows or weight panels), GroupNorm (+ SiLU, a large common offset),
 * the fused banded norm + conv and upsample + conv (inputs wide enough for several
 * bands), ResNet blocks (skip conv, identity skip in place, time embedding), nearest
 * upsampling; quantized weights in pd_conv_forward / pd_nn_linear (per-thread dequant
 * scratch, same bits for any thread split as one pd_q_conv / pd_q_gemm call); and load
 * errors that name the tensor at fault.
 *
 * Weights come from a synthetic single-file checkpoint written to a temp folder
 * (tensors under first_stage_model., so they form the VAE component).
 */
#include <unistd.h>

#include "golden.h"
#include "io/model.h"
#include "kernels/kernels.h"
#include "kernels/quant/quant.h"
#include "models/vae.h"
#include "nn/blocks.h"

#define TOL 1e-5

/* ---- random tensors and a synthetic checkpoint ------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void) {   /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
}

static float *rand_buf(size_t n, float scale, float offset) {
    float *p = malloc(n * sizeof(float) + 64);   /* kernels may read 64 B past inputs */
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale + offset;
    return p;
}

typedef struct wt {
    char name[160];
    const char *dtype;
    int ndim;
    int64_t shape[4];
    float *data;
    size_t n;
} wt;

#define MAX_T 64
static wt tensors[MAX_T];
static int n_tensors;
static char tmpdir[64];

static float *add_t(const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, float scale) {
    PD_ASSERT(n_tensors < MAX_T);
    wt *t = &tensors[n_tensors++];
    snprintf(t->name, sizeof t->name, "first_stage_model.%s", name);
    t->dtype = "F32";
    t->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3};
    t->n = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = d[i];
        t->n *= (size_t)d[i];
    }
    t->data = rand_buf(t->n, scale, 0.0f);
    return t->data;
}

static float *add_vec(const char *name, int64_t n, float scale, float offset) {
    float *p = add_t(name, 1, n, 0, 0, 0, scale);
    for (int64_t i = 0; i < n; i++) p[i] += offset;
    return p;
}

static void clear_tensors(void) {
    for (int i = 0; i < n_tensors; i++) free(tensors[i].data);
    n_tensors = 0;
}

static bool write_file(const char *path) {
    size_t cap = 1 << 16, len = 0, off = 0;
    char *h = malloc(cap);
    len += (size_t)snprintf(h + len, cap - len, "{");
    for (int i = 0; i < n_tensors; i++) {
        const wt *t = &tensors[i];
        size_t nb = t->n * 4;
        len += (size_t)snprintf(h + len, cap - len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", t->name,
                                t->dtype);
        for (int d = 0; d < t->ndim; d++)
            len += (size_t)snprintf(h + len, cap - len, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
        off += nb;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(h);
        return false;
    }
    uint64_t hl = len;
    bool ok = fwrite(&hl, 8, 1, f) == 1 && fwrite(h, 1, len, f) == len;
    for (int i = 0; ok && i < n_tensors; i++) ok = fwrite(tensors[i].data, 4, tensors[i].n, f) == tensors[i].n;
    ok = fclose(f) == 0 && ok;
    free(h);
    return ok;
}

/* Writes the tensors added so far and opens them as a model. */
static pd_model_src *open_tensors(const char *file) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, file);
    if (!write_file(path)) {
        PD_FAIL("cannot write %s", path);
        return NULL;
    }
    pd_model_src *m = NULL;
    pd_error err = {0};
    if (pd_model_open(path, NULL, &m, &err) != PD_OK) PD_FAIL("%s: %s", path, err.msg);
    return m;
}

/* ---- naive references (double) --------------------------------------------------- */

static double silu_d(double x) { return x / (1.0 + exp(-x)); }

/* out [oh, ow, cout] from in [h, w, cin] and a PyTorch weight [cout, cin, k, k]. */
static void conv_naive(double *out, const float *in, int h, int w, int cin, const float *wt_, const float *b,
                       int cout, int k, int stride, int pt, int pl, int pb, int pr, int *oh_, int *ow_) {
    int oh = (h + pt + pb - k) / stride + 1, ow = (w + pl + pr - k) / stride + 1;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
            for (int co = 0; co < cout; co++) {
                double s = b ? b[co] : 0.0;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int iy = oy * stride + ky - pt, ix = ox * stride + kx - pl;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                        for (int ci = 0; ci < cin; ci++)
                            s += (double)in[((size_t)iy * w + ix) * cin + ci] *
                                 wt_[(((size_t)co * cin + ci) * k + ky) * k + kx];
                    }
                out[((size_t)oy * ow + ox) * cout + co] = s;
            }
    *oh_ = oh;
    *ow_ = ow;
}

static void gn_naive(double *y, const double *x, int hw, int c, int groups, const float *gamma, const float *beta,
                     double eps, bool silu) {
    int cg = c / groups;
    for (int g = 0; g < groups; g++) {
        double s = 0, q = 0, n = (double)hw * cg;
        for (int p = 0; p < hw; p++)
            for (int i = g * cg; i < (g + 1) * cg; i++) s += x[(size_t)p * c + i];
        double mean = s / n;
        for (int p = 0; p < hw; p++)
            for (int i = g * cg; i < (g + 1) * cg; i++) {
                double d = x[(size_t)p * c + i] - mean;
                q += d * d;
            }
        double rstd = 1.0 / sqrt(q / n + eps);
        for (int p = 0; p < hw; p++)
            for (int i = g * cg; i < (g + 1) * cg; i++) {
                double v = (x[(size_t)p * c + i] - mean) * rstd * gamma[i] + beta[i];
                y[(size_t)p * c + i] = silu ? silu_d(v) : v;
            }
    }
}

static double *to_d(const float *x, size_t n) {
    double *d = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static float *to_f(const double *x, size_t n) {
    float *f = malloc(n * sizeof(float) + 64);
    for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}

/* max |got - ref| / max |ref|, failing above tol. */
static double check_close(const char *what, const float *got, const double *ref, size_t n, double tol) {
    double mr = 0, md = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) mr = fmax(mr, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= md)) {
            md = isnan(d) ? INFINITY : d;
            wi = i;
        }
    }
    double e = mr > 0 ? md / mr : md;
    if (!(e <= tol))
        PD_FAIL("%s: relative error %.3g > %.3g (at %zu: %.7g vs %.7g)", what, e, tol, wi, (double)got[wi], ref[wi]);
    return e;
}

/* ---- shared setup ---------------------------------------------------------------- */

static pd_kernels kt;
static pd_pool *pools[3];   /* 1 (NULL), 2 and 3 threads */

static pd_arena big_arena(void) {
    pd_arena a;
    PD_ASSERT(pd_arena_init(&a, (size_t)256 << 20) == 0);
    return a;
}

/* ---- convolution ----------------------------------------------------------------- */

typedef struct conv_shape {
    int h, w, cin, cout, k, stride, pt, pl, pb, pr;
    bool two_d;   /* 1x1 weight stored [cout, cin] */
} conv_shape;

static void test_conv_forward(void) {
    static const conv_shape shapes[] = {
        {6, 9, 5, 7, 3, 1, 1, 1, 1, 1, false},      /* cout not a multiple of any nr */
        {8, 6, 16, 40, 3, 2, 0, 0, 1, 1, false},    /* VAE downsample: pad (0, 1, 0, 1), stride 2 */
        {7, 5, 12, 9, 3, 2, 1, 1, 1, 1, false},     /* UNet downsample: pad 1, stride 2, odd size */
        {2, 11, 24, 70, 3, 1, 1, 1, 1, 1, false},   /* 2 rows: panels split across 3 threads */
        {1, 1, 8, 130, 3, 1, 1, 1, 1, 1, false},    /* one pixel: only the centre tap */
        {5, 4, 33, 17, 1, 1, 0, 0, 0, 0, true},     /* 1x1 from a 2-D [cout, cin] weight */
    };
    pd_error err = {0};
    for (size_t si = 0; si < PD_COUNT(shapes); si++) {
        const conv_shape *s = &shapes[si];
        clear_tensors();
        float sc = 1.0f / sqrtf((float)(s->cin * s->k * s->k));
        float *w = s->two_d ? add_t("c.weight", 2, s->cout, s->cin, 0, 0, sc)
                            : add_t("c.weight", 4, s->cout, s->cin, s->k, s->k, sc);
        float *b = add_vec("c.bias", s->cout, 0.5f, 0.0f);
        pd_model_src *src = open_tensors("conv.safetensors");
        if (!src) return;
        pd_load_ctx lc = {src, PD_COMP_VAE, NULL};
        pd_conv c;
        if (pd_conv_load(&lc, &kt, &c, "c.weight", "c.bias", s->cout, s->cin, s->k, s->stride, s->pt, &err) != PD_OK) {
            PD_FAIL("shape %zu: %s", si, err.msg);
            pd_model_close(src);
            continue;
        }
        c.pad_l = s->pl;
        c.pad_b = s->pb;
        c.pad_r = s->pr;
        float *in = rand_buf((size_t)s->h * s->w * s->cin, 1.0f, 0.0f);
        int oh, ow, oh2, ow2;
        pd_conv_out_size(&c, s->h, s->w, &oh, &ow);
        size_t n_out = (size_t)oh * ow * s->cout;
        double *ref = malloc(n_out * sizeof(double));
        conv_naive(ref, in, s->h, s->w, s->cin, w, b, s->cout, s->k, s->stride, s->pt, s->pl, s->pb, s->pr, &oh2, &ow2);
        CHECK_EQ_INT(oh, oh2);
        CHECK_EQ_INT(ow, ow2);
        float *res = rand_buf(n_out, 1.0f, 0.0f);
        double *ref_act = malloc(n_out * sizeof(double));
        for (size_t i = 0; i < n_out; i++) ref_act[i] = silu_d(ref[i]) + res[i];
        float *out = malloc(n_out * sizeof(float)), *out1 = malloc(n_out * sizeof(float));
        for (int p = 0; p < 3; p++) {
            pd_nn nn = {.kt = &kt, .pool = pools[p]};
            char what[96];
            snprintf(what, sizeof what, "conv shape %zu, pool %d", si, p);
            pd_conv_forward(&nn, &c, in, s->h, s->w, out, PD_ACT_NONE, NULL);
            check_close(what, out, ref, n_out, TOL);
            /* the same values whatever the thread split */
            if (p == 0) memcpy(out1, out, n_out * sizeof(float));
            else CHECK_MSG(memcmp(out, out1, n_out * sizeof(float)) == 0, "%s: differs from 1 thread", what);
            /* act and residual, res aliasing out */
            memcpy(out, res, n_out * sizeof(float));
            pd_conv_forward(&nn, &c, in, s->h, s->w, out, PD_ACT_SILU, out);
            check_close(what, out, ref_act, n_out, TOL);
        }
        free(in);
        free(ref);
        free(ref_act);
        free(res);
        free(out);
        free(out1);
        pd_conv_free(&c);
        pd_model_close(src);
    }
    clear_tensors();
}

/* Quantized weights through the threaded drivers: each thread dequantizes into its
 * slice of nn.wscratch; the result is the single-call pd_q_conv / pd_q_gemm's. */
static void test_quant_threaded(void) {
    const int h = 7, w = 6, cin = 16, cout = 100, k = 3, m = 29, n = 150, kl = 96;
    float *wc = rand_buf((size_t)cout * cin * k * k, 0.2f, 0.0f), *bc = rand_buf((size_t)cout, 0.5f, 0.0f);
    float *wl = rand_buf((size_t)n * kl, 0.2f, 0.0f), *x = rand_buf((size_t)m * kl, 1.0f, 0.0f);
    float *in = rand_buf((size_t)h * w * cin, 1.0f, 0.0f);
    pd_error err = {0};
    pd_conv c = {.cin = cin, .cout = cout, .k = k, .stride = 1, .pad_t = 1, .pad_l = 1, .pad_b = 1, .pad_r = 1};
    pd_packed_w lw;
    CHECK(pd_kernels_pack_conv_q(&kt, &c.w, PD_DTYPE_Q4_1, wc, PD_DTYPE_F32, cout, cin, k, k, bc, PD_DTYPE_F32, &err) == PD_OK);
    CHECK(pd_kernels_pack_gemm_q(&kt, &lw, PD_DTYPE_Q8_0, wl, PD_DTYPE_F32, kl, n, kl, NULL, PD_DTYPE_F32, &err) == PD_OK);
    const size_t per = pd_q_scratch_bytes(&kt, k * k * cin), total = 3 * per + 3 * 64;
    void *scratch = malloc(total);
    float *o1 = malloc((size_t)h * w * cout * sizeof(float)), *o2 = malloc((size_t)h * w * cout * sizeof(float));
    float *y1 = malloc((size_t)m * n * sizeof(float)), *y2 = malloc((size_t)m * n * sizeof(float));
    pd_conv_args a = {.ih = h, .iw = w, .cin = cin, .oh = h, .ow = w, .kh = k, .kw = k, .stride = 1, .pad_t = 1,
                      .pad_l = 1, .oy0 = 0, .oy1 = h, .n0 = 0, .n1 = cout, .in = in, .w = &c.w, .out = o1};
    pd_q_conv(&kt, &a, scratch, total);
    pd_gemm_args g = {.m = m, .n0 = 0, .n1 = n, .a = x, .lda = kl, .w = &lw, .c = y1, .ldc = n};
    pd_q_gemm(&kt, &g, scratch, total);
    for (int p = 0; p < 3; p++) {
        pd_nn nn = {.kt = &kt, .pool = pools[p], .wscratch = scratch, .wscratch_bytes = total};
        pd_conv_forward(&nn, &c, in, h, w, o2, PD_ACT_NONE, NULL);
        CHECK_MSG(memcmp(o1, o2, (size_t)h * w * cout * sizeof(float)) == 0, "quant conv, pool %d", p);
        pd_nn_linear(&nn, y2, n, x, kl, m, &lw, PD_ACT_NONE, NULL, 0);
        CHECK_MSG(memcmp(y1, y2, (size_t)m * n * sizeof(float)) == 0, "quant linear, pool %d", p);
    }
    free(wc);
    free(bc);
    free(wl);
    free(x);
    free(in);
    free(scratch);
    free(o1);
    free(o2);
    free(y1);
    free(y2);
    pd_conv_free(&c);
    pd_packed_w_free(&lw);
}

/* ---- group norm ------------------------------------------------------------------ */

static void test_groupnorm(void) {
    const int hw = 37, c = 48, groups = 6;
    clear_tensors();
    float *gamma = add_vec("n.weight", c, 0.5f, 1.0f);
    float *beta = add_vec("n.bias", c, 0.5f, 0.0f);
    float *eye = add_t("id.weight", 4, c, c, 1, 1, 0.0f);   /* identity 1x1 conv */
    for (int i = 0; i < c; i++) eye[(size_t)i * c + i] = 1.0f;
    pd_model_src *src = open_tensors("gn.safetensors");
    if (!src) return;
    pd_load_ctx lc = {src, PD_COMP_VAE, NULL};
    pd_groupnorm g;
    pd_error err = {0};
    pd_conv id;
    if (pd_groupnorm_load(&lc, &g, "n.weight", "n.bias", c, groups, 1e-6f, &err) != PD_OK ||
        pd_conv_load(&lc, &kt, &id, "id.weight", NULL, c, c, 1, 1, 0, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        pd_model_close(src);
        return;
    }
    pd_arena scratch = big_arena();
    /* A large common offset: a naive E[x^2] - E[x]^2 in fp32 would lose it all. */
    float *x = rand_buf((size_t)hw * c, 1.0f, 300.0f);
    double *xd = to_d(x, (size_t)hw * c);
    double *ref = malloc((size_t)hw * c * sizeof(double));
    float *y = malloc((size_t)hw * c * sizeof(float));
    for (int silu = 0; silu < 2; silu++) {
        gn_naive(ref, xd, hw, c, groups, gamma, beta, 1e-6, silu);
        for (int p = 0; p < 3; p++) {
            pd_nn nn = {.kt = &kt, .pool = pools[p]};
            pd_groupnorm_forward(&nn, &g, y, x, hw, silu);
            check_close("groupnorm", y, ref, (size_t)hw * c, TOL);
            memcpy(y, x, (size_t)hw * c * sizeof(float));
            pd_groupnorm_forward(&nn, &g, y, y, hw, silu);   /* in place */
            check_close("groupnorm in place", y, ref, (size_t)hw * c, TOL);
            /* the fused statistics + affine path (through an identity conv) */
            pd_conv_forward_gn(&nn, &id, &g, silu, x, hw, 1, y, PD_ACT_NONE, NULL, &scratch);
            check_close("groupnorm fused into a conv", y, ref, (size_t)hw * c, TOL);
        }
    }
    pd_arena_free(&scratch);
    pd_conv_free(&id);
    free(x);
    free(xd);
    free(ref);
    free(y);
    pd_groupnorm_free(&g);
    pd_model_close(src);
    clear_tensors();
}

/* The fused norm + conv and upsample + conv, on rows wide enough (1 MiB) for several
 * bands, against the unfused blocks' naive references. */
static void test_banded(void) {
    const int h = 24, w = 128, cin = 2048, cout = 3, groups = 32;   /* 1 MiB rows: 4 bands */
    clear_tensors();
    float *cw = add_t("c.weight", 4, cout, cin, 3, 3, 1.0f / sqrtf(cin * 9.0f));
    float *cb = add_vec("c.bias", cout, 0.5f, 0.0f);
    float *gamma = add_vec("n.weight", cin, 0.5f, 1.0f);
    float *beta = add_vec("n.bias", cin, 0.5f, 0.0f);
    pd_model_src *src = open_tensors("band.safetensors");
    if (!src) return;
    pd_load_ctx lc = {src, PD_COMP_VAE, NULL};
    pd_conv c;
    pd_groupnorm g;
    pd_error err = {0};
    if (pd_conv_load(&lc, &kt, &c, "c.weight", "c.bias", cout, cin, 3, 1, 1, &err) != PD_OK ||
        pd_groupnorm_load(&lc, &g, "n.weight", "n.bias", cin, groups, 1e-6f, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        pd_model_close(src);
        return;
    }
    pd_arena scratch = big_arena();
    int oh, ow;
    /* norm + SiLU + conv */
    size_t n_in = (size_t)h * w * cin;
    float *x = rand_buf(n_in, 2.0f, 0.5f);
    double *xd = to_d(x, n_in);
    double *nx = malloc(n_in * sizeof(double));
    gn_naive(nx, xd, h * w, cin, groups, gamma, beta, 1e-6, true);
    float *nxf = to_f(nx, n_in);
    size_t n_out = (size_t)h * w * cout;
    double *ref = malloc(n_out * sizeof(double) * 4);
    conv_naive(ref, nxf, h, w, cin, cw, cb, cout, 3, 1, 1, 1, 1, 1, &oh, &ow);
    float *out = malloc(n_out * sizeof(float) * 4);
    CHECK(pd_conv_gn_scratch_bytes(cin, 3, 1, 1, h, w) < n_in * sizeof(float) / 2);   /* banded, not whole */
    for (int p = 0; p < 3; p++) {
        pd_nn nn = {.kt = &kt, .pool = pools[p]};
        size_t used0 = scratch.used;
        scratch.used_peak = scratch.used;
        pd_conv_forward_gn(&nn, &c, &g, true, x, h, w, out, PD_ACT_NONE, NULL, &scratch);
        check_close("norm + conv (banded)", out, ref, n_out, 1e-4);
        CHECK_EQ_INT(scratch.used, used0);
        CHECK(scratch.used_peak - used0 <= pd_conv_gn_scratch_bytes(cin, 3, 1, 1, h, w));
    }
    /* nearest 2x + conv, input [h/2, w/2]: upsampled rows are 1 MiB too */
    const int uh = h / 2, uw = w / 2;
    size_t n_up = (size_t)uh * uw * cin;
    float *u = rand_buf(n_up, 1.0f, 0.0f);
    float *uu = malloc((size_t)4 * n_up * sizeof(float) + 64);
    for (int y = 0; y < 2 * uh; y++)
        for (int xx = 0; xx < 2 * uw; xx++)
            memcpy(uu + ((size_t)y * 2 * uw + xx) * cin, u + ((size_t)(y / 2) * uw + xx / 2) * cin, cin * sizeof(float));
    conv_naive(ref, uu, 2 * uh, 2 * uw, cin, cw, cb, cout, 3, 1, 1, 1, 1, 1, &oh, &ow);
    for (int p = 0; p < 3; p++) {
        pd_nn nn = {.kt = &kt, .pool = pools[p]};
        size_t used0 = scratch.used;
        scratch.used_peak = scratch.used;
        pd_upsample2x_conv_forward(&nn, &c, u, uh, uw, out, &scratch);
        check_close("upsample + conv (banded)", out, ref, (size_t)oh * ow * cout, TOL);
        CHECK(scratch.used_peak - used0 <= pd_upsample2x_conv_scratch_bytes(cin, 3, 1, uh, uw));
        /* the plain nearest upsampling */
        float *up = malloc((size_t)4 * n_up * sizeof(float));
        pd_upsample2x_nearest(&nn, up, u, uh, uw, cin);
        CHECK(memcmp(up, uu, (size_t)4 * n_up * sizeof(float)) == 0);
        free(up);
    }
    free(x);
    free(xd);
    free(nx);
    free(nxf);
    free(ref);
    free(out);
    free(u);
    free(uu);
    pd_arena_free(&scratch);
    pd_conv_free(&c);
    pd_groupnorm_free(&g);
    pd_model_close(src);
    clear_tensors();
}

/* ---- ResNet block ---------------------------------------------------------------- */

typedef struct res_ref {
    const float *n1w, *n1b, *c1w, *c1b, *tw, *tb, *n2w, *n2b, *c2w, *c2b, *sw, *sb;
} res_ref;

static void resblock_naive(double *out, const float *x, int h, int w, int cin, int cout, int groups, double eps,
                           const res_ref *r, const float *temb_silu, int temb_dim) {
    size_t hw = (size_t)h * w;
    double *xd = to_d(x, hw * cin), *t = malloc(hw * cin * sizeof(double)), *t2 = malloc(hw * cout * sizeof(double));
    int oh, ow;
    gn_naive(t, xd, (int)hw, cin, groups, r->n1w, r->n1b, eps, true);
    float *tf = to_f(t, hw * cin);
    conv_naive(t2, tf, h, w, cin, r->c1w, r->c1b, cout, 3, 1, 1, 1, 1, 1, &oh, &ow);
    if (temb_silu)
        for (int co = 0; co < cout; co++) {
            double s = r->tb[co];
            for (int i = 0; i < temb_dim; i++) s += (double)r->tw[(size_t)co * temb_dim + i] * temb_silu[i];
            for (size_t p = 0; p < hw; p++) t2[p * cout + co] += s;
        }
    double *t3 = malloc(hw * cout * sizeof(double));
    gn_naive(t3, t2, (int)hw, cout, groups, r->n2w, r->n2b, eps, true);
    float *t3f = to_f(t3, hw * cout);
    conv_naive(out, t3f, h, w, cout, r->c2w, r->c2b, cout, 3, 1, 1, 1, 1, 1, &oh, &ow);
    if (r->sw) {
        double *s = malloc(hw * cout * sizeof(double));
        conv_naive(s, x, h, w, cin, r->sw, r->sb, cout, 1, 1, 0, 0, 0, 0, &oh, &ow);
        for (size_t i = 0; i < hw * cout; i++) out[i] += s[i];
        free(s);
    } else {
        for (size_t i = 0; i < hw * cout; i++) out[i] += x[i];
    }
    free(xd);
    free(t);
    free(t2);
    free(tf);
    free(t3);
    free(t3f);
}

/* naive: against the double reference (else only the paths against each other, for
 * shapes too large for it). */
static void run_resblock_hw(int cin, int cout, int temb_dim, bool expect_skip, int h, int w, bool naive) {
    const int groups = 4;
    clear_tensors();
    res_ref r = {0};
    r.n1w = add_vec("r.norm1.weight", cin, 0.3f, 1.0f);
    r.n1b = add_vec("r.norm1.bias", cin, 0.3f, 0.0f);
    r.c1w = add_t("r.conv1.weight", 4, cout, cin, 3, 3, 1.0f / sqrtf(cin * 9.0f));
    r.c1b = add_vec("r.conv1.bias", cout, 0.3f, 0.0f);
    if (temb_dim) {
        r.tw = add_t("r.temb.weight", 2, cout, temb_dim, 0, 0, 0.5f);
        r.tb = add_vec("r.temb.bias", cout, 0.3f, 0.0f);
    }
    r.n2w = add_vec("r.norm2.weight", cout, 0.3f, 1.0f);
    r.n2b = add_vec("r.norm2.bias", cout, 0.3f, 0.0f);
    r.c2w = add_t("r.conv2.weight", 4, cout, cout, 3, 3, 1.0f / sqrtf(cout * 9.0f));
    r.c2b = add_vec("r.conv2.bias", cout, 0.3f, 0.0f);
    if (expect_skip) {
        r.sw = add_t("r.skip.weight", 4, cout, cin, 1, 1, 1.0f / sqrtf((float)cin));
        r.sb = add_vec("r.skip.bias", cout, 0.3f, 0.0f);
    }
    pd_model_src *src = open_tensors("res.safetensors");
    if (!src) return;
    pd_load_ctx lc = {src, PD_COMP_VAE, NULL};
    pd_resblock_names names = {"r.norm1.weight", "r.norm1.bias", "r.conv1.weight", "r.conv1.bias",
                               "r.temb.weight", "r.temb.bias", "r.norm2.weight", "r.norm2.bias",
                               "r.conv2.weight", "r.conv2.bias", "r.skip.weight", "r.skip.bias"};
    pd_resblock rb;
    pd_error err = {0};
    if (pd_resblock_load(&lc, &kt, &rb, &names, cin, cout, temb_dim, groups, 1e-5f, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        pd_model_close(src);
        return;
    }
    CHECK_EQ_INT(rb.has_skip, expect_skip);
    CHECK_EQ_INT(rb.has_temb, temb_dim > 0);
    size_t hw = (size_t)h * w;
    float *x = rand_buf(hw * cin, 2.0f, 0.3f);
    float *temb = temb_dim ? rand_buf((size_t)temb_dim, 1.0f, 0.0f) : NULL;
    double *ref = naive ? malloc(hw * cout * sizeof(double)) : NULL;
    if (naive) resblock_naive(ref, x, h, w, cin, cout, groups, 1e-5, &r, temb, temb_dim);
    float *out = malloc(hw * cout * sizeof(float) + 64);
    pd_arena scratch = big_arena();
    for (int p = 0; p < 3; p++) {
        pd_nn nn = {.kt = &kt, .pool = pools[p]};
        scratch.used_peak = 0;
        pd_resblock_forward(&nn, &rb, x, h, w, temb, out, &scratch);
        char what[96];
        snprintf(what, sizeof what, "resblock %d->%d temb %d pool %d", cin, cout, temb_dim, p);
        if (naive) check_close(what, out, ref, hw * cout, TOL);
        CHECK_EQ_INT(scratch.used, 0);
        CHECK(scratch.used_peak <= pd_resblock_scratch_bytes(&rb, h, w));
        CHECK_EQ_INT(pd_resblock_scratch_bytes(&rb, h, w), pd_resblock_scratch_bytes_dims(cin, cout, temb_dim, h, w));
        if (!expect_skip) {   /* in place */
            float *y = malloc(hw * cin * sizeof(float) + 64);
            memcpy(y, x, hw * cin * sizeof(float));
            pd_resblock_forward(&nn, &rb, y, h, w, temb, y, &scratch);
            CHECK(memcmp(y, out, hw * cout * sizeof(float)) == 0);
            free(y);
        }
        if (cin >= cout) {   /* in place with an outside temporary (a narrowing skip: banded) */
            float *y = malloc(hw * cin * sizeof(float) + 64), *t = malloc(hw * cout * sizeof(float) + 64);
            memcpy(y, x, hw * cin * sizeof(float));
            scratch.used_peak = 0;
            pd_resblock_forward_inplace(&nn, &rb, y, h, w, temb, t, &scratch);
            CHECK_MSG(memcmp(y, out, hw * cout * sizeof(float)) == 0, "%s in place: not bit-identical", what);
            CHECK(scratch.used_peak <= pd_resblock_inplace_scratch_bytes(cin, cout, h, w));
            free(y);
            free(t);
        }
    }
    pd_arena_free(&scratch);
    free(x);
    free(temb);
    free(ref);
    free(out);
    pd_resblock_free(&rb);
    pd_model_close(src);
    clear_tensors();
}

static void run_resblock(int cin, int cout, int temb_dim, bool expect_skip) {
    run_resblock_hw(cin, cout, temb_dim, expect_skip, 5, 7, true);
}

static void test_resblock(void) {
    run_resblock(12, 8, 0, true);    /* VAE decoder: narrowing 1x1 skip conv (also in place) */
    /* rows of 65600 x 8 outputs (2.1 MB) are one band each of the in-place skip: 3 bands,
     * each written over rows of x already read */
    run_resblock_hw(12, 8, 0, true, 3, 65600, false);
    run_resblock(8, 12, 0, true);    /* VAE: channel change, 1x1 skip conv */
    run_resblock(12, 12, 0, false);  /* VAE: identity skip */
    run_resblock(8, 16, 6, true);    /* UNet: time embedding and skip */
    run_resblock(16, 16, 6, false);  /* UNet: time embedding, identity skip */
}

/* ---- load errors ----------------------------------------------------------------- */

static void test_load_errors(void) {
    clear_tensors();
    add_t("a.weight", 4, 8, 4, 3, 1, 1.0f);   /* should be [8, 4, 3, 3] */
    add_vec("a.bias", 8, 1.0f, 0.0f);
    add_t("b.weight", 4, 8, 4, 3, 3, 1.0f);   /* no bias */
    add_vec("n.weight", 12, 1.0f, 0.0f);
    add_vec("n.bias", 12, 1.0f, 0.0f);
    add_vec("m.weight", 10, 1.0f, 0.0f);
    add_vec("m.bias", 10, 1.0f, 0.0f);
    pd_model_src *src = open_tensors("bad.safetensors");
    if (!src) return;
    pd_load_ctx lc = {src, PD_COMP_VAE, NULL};
    pd_error err = {0};
    pd_conv c;
    CHECK_EQ_INT(pd_conv_load(&lc, &kt, &c, "a.weight", "a.bias", 8, 4, 3, 1, 1, &err), PD_ERR_SHAPE);
    CHECK_STR_CONTAINS(err.msg, "first_stage_model.a.weight");
    CHECK_STR_CONTAINS(err.msg, "[8, 4, 3, 1]");
    CHECK_STR_CONTAINS(err.msg, "[8, 4, 3, 3]");
    CHECK(c.w.data == NULL);
    CHECK_EQ_INT(pd_conv_load(&lc, &kt, &c, "b.weight", "b.bias", 8, 4, 3, 1, 1, &err), PD_ERR_MISSING);
    CHECK_STR_CONTAINS(err.msg, "first_stage_model.b.bias");
    CHECK_EQ_INT(pd_conv_load(&lc, &kt, &c, "b.weight", NULL, 8, 4, 3, 1, 1, &err), PD_OK);   /* bias-free */
    pd_conv_free(&c);
    pd_groupnorm g;
    CHECK_EQ_INT(pd_groupnorm_load(&lc, &g, "n.weight", "n.bias", 12, 5, 1e-6f, &err), PD_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.msg, "5 groups");
    CHECK_EQ_INT(pd_groupnorm_load(&lc, &g, "n.weight", "n.bias", 16, 4, 1e-6f, &err), PD_ERR_SHAPE);
    CHECK_STR_CONTAINS(err.msg, "first_stage_model.n.weight");
    CHECK_EQ_INT(pd_groupnorm_load(&lc, &g, "n.weight", "n.bias", 12, 4, 1e-6f, &err), PD_OK);
    pd_groupnorm_free(&g);
    /* A block that changes channels needs its skip conv. */
    pd_resblock_names names = {"m.weight", "m.bias", "b.weight", NULL, NULL, NULL, "n.weight", "n.bias",
                               "b.weight", NULL, "r.nin_shortcut.weight", "r.nin_shortcut.bias"};
    pd_resblock rb;
    CHECK(pd_resblock_load(&lc, &kt, &rb, &names, 10, 8, 0, 2, 1e-6f, &err) != PD_OK);   /* conv1 [8, 10] */
    CHECK_STR_CONTAINS(err.msg, "b.weight");
    pd_model_close(src);
    clear_tensors();

    add_vec("m.weight", 4, 1.0f, 0.0f);
    add_vec("m.bias", 4, 1.0f, 0.0f);
    add_t("c1.weight", 4, 8, 4, 3, 3, 1.0f);
    add_vec("n.weight", 8, 1.0f, 0.0f);
    add_vec("n.bias", 8, 1.0f, 0.0f);
    add_t("c2.weight", 4, 8, 8, 3, 3, 1.0f);
    src = open_tensors("noskip.safetensors");
    if (!src) return;
    lc.src = src;
    pd_resblock_names n2 = {"m.weight", "m.bias", "c1.weight", NULL, NULL, NULL, "n.weight", "n.bias",
                            "c2.weight", NULL, "r.nin_shortcut.weight", "r.nin_shortcut.bias"};
    CHECK_EQ_INT(pd_resblock_load(&lc, &kt, &rb, &n2, 4, 8, 0, 2, 1e-6f, &err), PD_ERR_MISSING);
    CHECK_STR_CONTAINS(err.msg, "first_stage_model.r.nin_shortcut.weight");
    pd_model_close(src);
    clear_tensors();
}

/* A VAE checkpoint with one tensor reshaped names it when loading. */
static void test_vae_load_error(void) {
    PD_REQUIRE_GOLDEN();
    char path[1024];
    pd_st_file *f = NULL;
    pd_error err = {0};
    if (pd_st_open(golden_model(path, sizeof path, "tiny-sd15.safetensors"), &f, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return;
    }
    const char *victim = "first_stage_model.decoder.up.1.block.0.conv1.weight";
    /* The VAE has more tensors than tensors[] holds: copy them straight from the file. */
    char out[256];
    snprintf(out, sizeof out, "%s/vae_bad.safetensors", tmpdir);
    size_t cap = 1 << 20, len = 0, off = 0;
    char *h = malloc(cap);
    len += (size_t)snprintf(h + len, cap - len, "{");
    bool first = true;
    for (int i = 0; i < f->n_tensors; i++) {
        const pd_st_tensor *t = &f->tensors[i];
        if (strncmp(t->name, "first_stage_model.", 18) != 0) continue;
        bool bad = strcmp(t->name, victim) == 0;
        len += (size_t)snprintf(h + len, cap - len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", first ? "" : ",",
                                t->name, pd_dtype_name(t->dtype));
        first = false;
        for (int d = 0; d < t->ndim; d++) {
            long long v = t->shape[d];
            if (bad && d == 2) v = 9;   /* [32, 32, 3, 3] -> [32, 32, 9, 1] */
            if (bad && d == 3) v = 1;
            len += (size_t)snprintf(h + len, cap - len, "%s%lld", d ? "," : "", v);
        }
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    FILE *fo = fopen(out, "wb");
    uint64_t hl = len;
    bool ok = fo && fwrite(&hl, 8, 1, fo) == 1 && fwrite(h, 1, len, fo) == len;
    for (int i = 0; ok && i < f->n_tensors; i++) {
        const pd_st_tensor *t = &f->tensors[i];
        if (strncmp(t->name, "first_stage_model.", 18) == 0 && t->nbytes) ok = fwrite(t->data, 1, t->nbytes, fo) == t->nbytes;
    }
    if (fo) ok = fclose(fo) == 0 && ok;
    free(h);
    pd_st_close(f);
    CHECK(ok);
    pd_model_src *src = NULL;
    if (pd_model_open(out, NULL, &src, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return;
    }
    pd_vae m;
    CHECK_EQ_INT(pd_vae_load(&m, src, &kt, NULL, &err), PD_ERR_SHAPE);
    CHECK_STR_CONTAINS(err.msg, victim);
    CHECK_STR_CONTAINS(err.msg, "[32, 32, 9, 1]");
    pd_model_close(src);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pd_blocks_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "cannot create a temp folder\n");
        return 1;
    }
    pd_kernels_init(&kt, PD_ISA_AUTO);
    pools[0] = NULL;
    pools[1] = pd_pool_new(2);
    pools[2] = pd_pool_new(3);
    PD_RUN(test_conv_forward);
    PD_RUN(test_quant_threaded);
    PD_RUN(test_groupnorm);
    PD_RUN(test_banded);
    PD_RUN(test_resblock);
    PD_RUN(test_load_errors);
    PD_RUN(test_vae_load_error);
    pd_pool_free(pools[1]);
    pd_pool_free(pools[2]);
    static const char *const files[] = {"conv", "gn", "band", "res", "bad", "noskip", "vae_bad"};
    for (size_t i = 0; i < PD_COUNT(files); i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s.safetensors", tmpdir, files[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    return pd_test_summary();
}
