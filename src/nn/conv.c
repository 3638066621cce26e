/*
 * conv.c - 2-D convolution blocks: loading (shape checks with named errors, packing
 * for the kernel table) and threaded forward drivers, full-size and banded (band.h).
 *
 * Threading: the output rows are split across the pool, or the weight panels (whole
 * panels of kt->gemm_nr output channels) when there are too few rows to split evenly
 * (the 8x8 latent-level convolutions of a small image). Every output element is
 * computed by one kernel call with the same taps whatever the split, so results do
 * not depend on the thread count (given kernels whose per-element summation order does
 * not depend on the tile, which test_blocks checks).
 *
 * Reference: torch.nn.Conv2d (cross-correlation, zero padding). The VAE encoder's
 * Downsample2D pads (left 0, right 1, top 0, bottom 1) then convolves with stride 2 and
 * no padding: pd_conv with pad_t = pad_l = 0 and pad_b = pad_r = 1.
 *
 * Traps:
 *   - Kernel inputs may be read 64 bytes past their end: inputs must live in arena
 *     buffers (or have that tail); caller buffers are copied first by the models.
 *   - The banded driver's halo rows must come from the transformed input (normalised,
 *     upsampled), never from a neighbouring band's leftovers: the fill writes every
 *     row the band reads.
 */
#include <string.h>

#include "kernels/quant/quant.h"
#include "nn/band.h"

/* Target size of one band buffer, and the fewest output rows a band holds (so each
 * thread of a band still gets whole rows of work). */
#define BAND_BYTES ((size_t)8 << 20)
#define BAND_MIN_OUT_ROWS 4

/* ---- loading ------------------------------------------------------------------- */

pd_status pd_conv_load(const pd_load_ctx *lc, const pd_kernels *kt, pd_conv *out,
                       const char *w_name, const char *b_name, int cout, int cin, int k,
                       int stride, int pad, pd_error *err) {
    PD_ASSERT(cout >= 1 && cin >= 1 && k >= 1 && stride >= 1 && pad >= 0);
    memset(out, 0, sizeof *out);
    const pd_st_tensor *w = pd_model_find(lc->src, lc->comp, w_name);
    const pd_st_tensor *b = b_name ? pd_model_find(lc->src, lc->comp, b_name) : NULL;
    int64_t shape4[4] = {cout, cin, k, k}, shape1[1] = {cout};
    pd_status st;
    if (w && k == 1 && w->ndim == 2) st = pd_nn_check(lc, w, w_name, 2, shape4, err);
    else st = pd_nn_check(lc, w, w_name, 4, shape4, err);
    if (st == PD_OK && b_name) st = pd_nn_check(lc, b, b_name, 1, shape1, err);
    if (st != PD_OK) return st;
    st = pd_kernels_pack_conv(kt, &out->w, w->data, w->dtype, cout, cin, k, k,
                      b ? b->data : NULL, b ? b->dtype : PD_DTYPE_F32, lc->pool, err);
    if (st != PD_OK) {
        char name[384];
        pd_model_full_name(lc->src, lc->comp, w_name, name, sizeof name);
        pd_error_prefix(err, "%s", name);
        return st;
    }
    pd_model_release(lc->src, w);   /* the packed copy replaces the mapped pages */
    out->cin = cin;
    out->cout = cout;
    out->k = k;
    out->stride = stride;
    out->pad_t = out->pad_l = out->pad_b = out->pad_r = pad;
    return PD_OK;
}

void pd_conv_free(pd_conv *c) {
    if (!c) return;
    pd_packed_w_free(&c->w);
    memset(c, 0, sizeof *c);
}

void pd_conv_out_size(const pd_conv *c, int h, int w, int *oh, int *ow) {
    *oh = (h + c->pad_t + c->pad_b - c->k) / c->stride + 1;
    *ow = (w + c->pad_l + c->pad_r - c->k) / c->stride + 1;
}

/* ---- threaded driver ------------------------------------------------------------ */

typedef struct conv_job {
    const pd_nn *nn;
    pd_conv_args a;   /* rows [oy0, oy1), all channels */
} conv_job;

/* Rows split evenly (or there are many of them, or too few panels): split rows. */
static bool split_by_rows(int rows, int panels, int nth) {
    if (nth <= 1 || rows % nth == 0 || rows >= 4 * nth) return true;
    return panels < nth;
}

static void conv_task(void *arg, int ith, int nth) {
    const conv_job *job = arg;
    pd_conv_args a = job->a;
    const int nr = a.w->nr, panels = (a.w->n + nr - 1) / nr;
    if (split_by_rows(a.oy1 - a.oy0, panels, nth)) {
        pd_nn_split(job->a.oy0, job->a.oy1, ith, nth, &a.oy0, &a.oy1);
        if (a.oy0 == a.oy1) return;
    } else {
        int p0, p1;
        pd_nn_split(0, panels, ith, nth, &p0, &p1);
        if (p0 == p1) return;
        a.n0 = p0 * nr;
        a.n1 = PD_MIN(p1 * nr, a.w->n);
    }
    const pd_kernels *kt = job->nn->kt;
    if (pd_packed_w_rows(a.w)) {
        size_t bytes;
        void *scratch = pd_nn_wscratch(job->nn, ith, nth, &bytes);
        PD_ASSERT(scratch && bytes >= pd_q_scratch_bytes(kt, a.w->k));
        pd_q_conv(kt, &a, scratch, bytes);
    } else {
        kt->conv2d_f32(&a);
    }
}

static void conv_run(const pd_nn *nn, const pd_conv_args *a) {
    PD_ASSERT(a->w->nr == nn->kt->gemm_nr);
    if (a->oy1 <= a->oy0 || a->ow <= 0) return;
    conv_job job = {nn, *a};
    pd_pool_run(nn->pool, conv_task, &job);
}

static pd_conv_args make_args(const pd_conv *c, const float *in, int h, int w, int oh, int ow,
                              float *out, pd_act act, const float *res) {
    pd_conv_args a = {
        .ih = h, .iw = w, .cin = c->cin, .oh = oh, .ow = ow, .kh = c->k, .kw = c->k,
        .stride = c->stride, .pad_t = c->pad_t, .pad_l = c->pad_l, .oy0 = 0, .oy1 = oh,
        .n0 = 0, .n1 = c->cout, .in = in, .w = &c->w, .out = out, .res = res, .act = act,
    };
    return a;
}

void pd_conv_forward(const pd_nn *nn, const pd_conv *c, const float *in, int h, int w,
                     float *out, pd_act act, const float *res) {
    int oh, ow;
    pd_conv_out_size(c, h, w, &oh, &ow);
    pd_conv_args a = make_args(c, in, h, w, oh, ow, out, act, res);
    conv_run(nn, &a);
}

/* ---- banded driver -------------------------------------------------------------- */

/* Output rows per band for an input row of w x cin floats. */
static int band_out_rows(int cin, int k, int stride, int w) {
    size_t row = (size_t)w * (size_t)cin * sizeof(float);
    size_t in_rows = row ? BAND_BYTES / row : 1;
    int ob = in_rows > (size_t)k ? (int)PD_MIN((in_rows - (size_t)k) / (size_t)stride + 1, 1 << 20) : 1;
    return PD_MAX(ob, BAND_MIN_OUT_ROWS);
}

/* Input rows of the band buffer: ob output rows read (ob - 1) * stride + k rows. */
static int band_in_rows(int k, int stride, int pad_t, int pad_b, int h, int w, int cin, int *ob_out) {
    int oh = (h + pad_t + pad_b - k) / stride + 1;
    int ob = PD_MIN(band_out_rows(cin, k, stride, w), PD_MAX(oh, 1));
    if (ob_out) *ob_out = ob;
    int64_t rows = (int64_t)(ob - 1) * stride + k;
    return (int)PD_MIN(rows, (int64_t)h);
}

size_t pd_nn_band_bytes(int cin, int k, int stride, int pad_t, int pad_b, int h, int w) {
    int rows = band_in_rows(k, stride, pad_t, pad_b, h, w, cin, NULL);
    return pd_arena_size_for((size_t)rows * (size_t)w * (size_t)cin * sizeof(float));
}

typedef struct fill_job {
    pd_nn_fill_fn fill;
    void *ctx;
    float *band;
    int r0, r1;
} fill_job;

static void fill_task(void *arg, int ith, int nth) {
    const fill_job *j = arg;
    j->fill(j->ctx, j->band, j->r0, j->r1, ith, nth);
}

void pd_nn_conv_banded(const pd_nn *nn, const pd_conv *c, int h, int w, pd_nn_fill_fn fill,
                       void *ctx, float *out, pd_act act, const float *res, pd_arena *scratch) {
    int oh, ow, ob;
    pd_conv_out_size(c, h, w, &oh, &ow);
    if (oh <= 0 || ow <= 0) return;
    const int s = c->stride, k = c->k;
    const int rows = band_in_rows(k, s, c->pad_t, c->pad_b, h, w, c->cin, &ob);
    pd_arena_mark mark = pd_arena_get_mark(scratch);
    float *band = pd_arena_alloc(scratch, (size_t)rows * (size_t)w * (size_t)c->cin * sizeof(float)); // [rows, w, cin]
    PD_ASSERT(band != NULL);   /* callers size the arena with the *_scratch_bytes functions */
    const size_t out_row = (size_t)ow * (size_t)c->cout;
    for (int y0 = 0; y0 < oh; y0 += ob) {
        const int y1 = PD_MIN(oh, y0 + ob);
        const int r0 = PD_MAX(0, y0 * s - c->pad_t);
        const int r1 = PD_MIN(h, (y1 - 1) * s + k - c->pad_t);
        PD_ASSERT(r1 > r0 && r1 - r0 <= rows);
        fill_job fj = {fill, ctx, band, r0, r1};
        pd_pool_run(nn->pool, fill_task, &fj);
        /* local input row = global row - r0: pad_t' = pad_t + r0 - y0 * s (>= 0). */
        pd_conv_args a = make_args(c, band, r1 - r0, w, y1 - y0, ow, out + (size_t)y0 * out_row, act,
                                   res ? res + (size_t)y0 * out_row : NULL);
        a.pad_t = c->pad_t + r0 - y0 * s;
        conv_run(nn, &a);
    }
    pd_arena_reset(scratch, mark);
}
