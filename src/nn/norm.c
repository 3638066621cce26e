/*
 * norm.c - GroupNorm (+ SiLU) blocks: loading, the threaded whole-tensor norm (the
 * groupnorm_f32 kernel, split by groups), and a norm fused into the input of a banded
 * convolution (pd_conv_forward_gn), so that silu(groupnorm(x)) never exists at full
 * size (in a ResNet block it would be as large as x: 256 MiB for the SD VAE decoder's
 * last level at 512x512).
 *
 * GroupNorm (torch.nn.GroupNorm, diffusers resnet.py): group g holds channels
 * [g*c/G, (g+1)*c/G); mean and biased variance over hw x c/G values;
 * y = (x - mean) / sqrt(var + eps) * gamma + beta.
 *
 * Fused path: statistics first (one pass over x), then per channel
 *   a[ch] = gamma[ch] / sqrt(var + eps),  y = ((x - mean_hi) - mean_lo) * a + beta[ch]
 * applied row band by row band as the convolution reads them. Not x*a + (beta -
 * mean*a): with |mean| >> std that form cancels in fp32; and the mean is split into
 * fp32 hi + lo parts, so its rounding does not show either (x - mean_hi is exact when
 * x is near the mean).
 *
 * Statistics: the pixels are cut into PD_GN_CHUNKS fixed chunks (independent of the
 * thread count, so results are too); each chunk sums d = x - x[pixel 0] per channel
 * in fp32 over blocks of 64 pixels and in double across blocks. Shifting by the first
 * pixel keeps d centred, so the variance Sum d^2 / n - (Sum d / n)^2 does not cancel
 * when |mean| >> std. Chunks and channels are combined in double per group.
 *
 * Traps: eps is 1e-6 in the VAE and 1e-5 in the UNet: it comes from the model config,
 * never a constant here. GroupNorm of diffusers' attention blocks has no SiLU after it.
 */
#include <math.h>
#include <string.h>

#include "nn/band.h"

#define PD_GN_CHUNKS 16
#define PD_GN_BLOCK 64   /* pixels summed in fp32 before going to double */

/* ---- loading ------------------------------------------------------------------- */

pd_status pd_groupnorm_load(const pd_load_ctx *lc, pd_groupnorm *out, const char *w_name,
                            const char *b_name, int c, int groups, float eps, pd_error *err) {
    memset(out, 0, sizeof *out);
    if (groups < 1 || c < 1 || c % groups != 0) {
        char name[384];
        pd_model_full_name(lc->src, lc->comp, w_name, name, sizeof name);
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "%s: %d channels cannot be split into %d groups",
                            name, c, groups);
    }
    const pd_st_tensor *w = pd_model_find(lc->src, lc->comp, w_name);
    const pd_st_tensor *b = pd_model_find(lc->src, lc->comp, b_name);
    int64_t shape[1] = {c};
    pd_status st = pd_nn_check(lc, w, w_name, 1, shape, err);
    if (st == PD_OK) st = pd_nn_check(lc, b, b_name, 1, shape, err);
    if (st == PD_OK) st = pd_nn_to_f32(lc, w, w_name, &out->gamma, err);
    if (st == PD_OK) st = pd_nn_to_f32(lc, b, b_name, &out->beta, err);
    if (st != PD_OK) {
        pd_groupnorm_free(out);
        return st;
    }
    out->c = c;
    out->groups = groups;
    out->eps = eps;
    return PD_OK;
}

void pd_groupnorm_free(pd_groupnorm *g) {
    if (!g) return;
    pd_aligned_free(g->gamma);
    pd_aligned_free(g->beta);
    memset(g, 0, sizeof *g);
}

/* ---- whole-tensor norm (kernel) -------------------------------------------------- */

typedef struct gn_job {
    const pd_kernels *kt;
    const pd_groupnorm *g;
    float *y;
    const float *x;
    int hw;
    bool silu;
} gn_job;

static void gn_task(void *arg, int ith, int nth) {
    const gn_job *j = arg;
    int g0, g1;
    pd_nn_split(0, j->g->groups, ith, nth, &g0, &g1);
    if (g0 < g1)
        j->kt->groupnorm_f32(j->y, j->x, j->hw, j->g->c, j->g->groups, g0, g1, j->g->gamma,
                             j->g->beta, j->g->eps, j->silu);
}

void pd_groupnorm_forward(const pd_nn *nn, const pd_groupnorm *g, float *y, const float *x,
                          int hw, bool silu) {
    if (hw <= 0) return;
    gn_job j = {nn->kt, g, y, x, hw, silu};
    pd_pool_run(nn->pool, gn_task, &j);
}

/* ---- statistics and per-channel affine --------------------------------------------- */

typedef struct stats_job {
    const float *x;    // [hw, c]
    int hw, c;
    float *fsum;       // [chunks, 2, c] fp32 block sums
    double *dsum;      // [chunks, 2, c] chunk sums (d, d^2)
} stats_job;

static void accumulate(float *restrict s, float *restrict q, const float *restrict x,
                       const float *restrict shift, int c) {
    for (int i = 0; i < c; i++) {
        float d = x[i] - shift[i];
        s[i] += d;
        q[i] += d * d;
    }
}

static void stats_task(void *arg, int ith, int nth) {
    const stats_job *j = arg;
    const int c = j->c;
    int k0, k1;
    pd_nn_split(0, PD_GN_CHUNKS, ith, nth, &k0, &k1);
    for (int k = k0; k < k1; k++) {
        int p0, p1;
        pd_nn_split(0, j->hw, k, PD_GN_CHUNKS, &p0, &p1);
        float *fs = j->fsum + (size_t)k * 2 * (size_t)c, *fq = fs + c;
        double *ds = j->dsum + (size_t)k * 2 * (size_t)c, *dq = ds + c;
        for (int i = 0; i < c; i++) ds[i] = dq[i] = 0.0;
        for (int p = p0; p < p1; p += PD_GN_BLOCK) {
            const int pe = PD_MIN(p1, p + PD_GN_BLOCK);
            for (int i = 0; i < c; i++) fs[i] = fq[i] = 0.0f;
            for (int q = p; q < pe; q++) accumulate(fs, fq, j->x + (size_t)q * (size_t)c, j->x, c);
            for (int i = 0; i < c; i++) {
                ds[i] += fs[i];
                dq[i] += fq[i];
            }
        }
    }
}

static size_t stats_bytes(int c) {
    return pd_arena_size_for((size_t)PD_GN_CHUNKS * 2 * (size_t)c * sizeof(float)) +
           pd_arena_size_for((size_t)PD_GN_CHUNKS * 2 * (size_t)c * sizeof(double));
}

/* mu [2, c] (hi, lo), a [c]: y = ((x - hi) - lo) * a + beta is GroupNorm(x) (hi + lo
 * = the channel's group mean). Scratch: stats_bytes(c), released. */
static void gn_affine(const pd_nn *nn, const pd_groupnorm *g, const float *x, int hw, float *mu,
                      float *a, pd_arena *scratch) {
    const int c = g->c, cg = c / g->groups;
    pd_arena_mark mark = pd_arena_get_mark(scratch);
    stats_job j = {x, hw, c, pd_arena_alloc(scratch, (size_t)PD_GN_CHUNKS * 2 * (size_t)c * sizeof(float)),
                   pd_arena_alloc(scratch, (size_t)PD_GN_CHUNKS * 2 * (size_t)c * sizeof(double))};
    PD_ASSERT(j.fsum && j.dsum);
    pd_pool_run(nn->pool, stats_task, &j);
    const double n = (double)hw * cg;
    for (int grp = 0; grp < g->groups; grp++) {
        const int c0 = grp * cg;
        /* channel ch: Sum x = hw * shift + Sum d; Sum (x - M)^2 from the shifted sums. */
        double sum = 0.0;
        for (int ch = c0; ch < c0 + cg; ch++) {
            double sd = 0.0;
            for (int k = 0; k < PD_GN_CHUNKS; k++) sd += j.dsum[(size_t)k * 2 * (size_t)c + (size_t)ch];
            sum += sd + (double)hw * x[ch];
        }
        const double mean = sum / n;
        double ss = 0.0;
        for (int ch = c0; ch < c0 + cg; ch++) {
            double sd = 0.0, sq = 0.0;
            for (int k = 0; k < PD_GN_CHUNKS; k++) {
                sd += j.dsum[(size_t)k * 2 * (size_t)c + (size_t)ch];
                sq += j.dsum[(size_t)k * 2 * (size_t)c + (size_t)c + (size_t)ch];
            }
            const double off = (double)x[ch] - mean;   /* shift - mean */
            ss += sq + 2.0 * off * sd + (double)hw * off * off;
        }
        const double var = PD_MAX(ss / n, 0.0);
        const double rstd = 1.0 / sqrt(var + (double)g->eps);
        for (int ch = c0; ch < c0 + cg; ch++) {
            a[ch] = (float)((double)g->gamma[ch] * rstd);
            mu[ch] = (float)mean;
            mu[c + ch] = (float)(mean - (double)mu[ch]);
        }
    }
    pd_arena_reset(scratch, mark);
}

/* ---- norm fused into a banded convolution ------------------------------------------ */

typedef struct gn_fill {
    const pd_kernels *kt;
    const float *x;     // [h, w, c]
    int w, c;
    const float *mu, *a, *beta; // [c]
    bool silu;
} gn_fill;

static void gn_fill_rows(void *ctx, float *band, int r0, int r1, int ith, int nth) {
    const gn_fill *f = ctx;
    int a0, a1;
    pd_nn_split(r0, r1, ith, nth, &a0, &a1);
    if (a0 == a1) return;
    const size_t row = (size_t)f->w * (size_t)f->c;
    const size_t p0 = (size_t)a0 * (size_t)f->w, p1 = (size_t)a1 * (size_t)f->w;
    float *dst0 = band + (size_t)(a0 - r0) * row;
    for (size_t p = p0; p < p1; p++) {
        const float *xs = f->x + p * (size_t)f->c;
        float *ys = dst0 + (p - p0) * (size_t)f->c;
        const float *hi = f->mu, *lo = f->mu + f->c;
        for (int i = 0; i < f->c; i++) ys[i] = ((xs[i] - hi[i]) - lo[i]) * f->a[i] + f->beta[i];
    }
    if (f->silu) f->kt->act_f32(dst0, dst0, (p1 - p0) * (size_t)f->c, PD_ACT_SILU);
}

size_t pd_conv_gn_scratch_bytes(int cin, int k, int stride, int pad, int h, int w) {
    return pd_arena_size_for(2 * (size_t)cin * sizeof(float)) + pd_arena_size_for((size_t)cin * sizeof(float)) +
           PD_MAX(stats_bytes(cin), pd_nn_band_bytes(cin, k, stride, pad, pad, h, w));
}

void pd_conv_forward_gn(const pd_nn *nn, const pd_conv *c, const pd_groupnorm *g, bool silu,
                        const float *in, int h, int w, float *out, pd_act act, const float *res,
                        pd_arena *scratch) {
    PD_ASSERT(g->c == c->cin);
    if (h <= 0 || w <= 0) return;
    pd_arena_mark mark = pd_arena_get_mark(scratch);
    float *mu = pd_arena_alloc(scratch, 2 * (size_t)g->c * sizeof(float));   // [2, c] hi, lo
    float *a = pd_arena_alloc(scratch, (size_t)g->c * sizeof(float));    // [c]
    PD_ASSERT(mu && a);
    gn_affine(nn, g, in, h * w, mu, a, scratch);
    gn_fill f = {nn->kt, in, w, g->c, mu, a, g->beta, silu};
    pd_nn_conv_banded(nn, c, h, w, gn_fill_rows, &f, out, act, res, scratch);
    pd_arena_reset(scratch, mark);
}
