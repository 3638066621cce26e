/*
 * resnet.c - the ResNet block shared by the UNet and the VAE (diffusers ResnetBlock2D,
 * LDM ResnetBlock / ResBlock), NHWC fp32:
 *
 *   t = conv1(silu(norm1(x)))                 // [hw, cout]  (norm fused, banded)
 *   t += temb_proj(silu(temb))  (per channel)  // UNet only
 *   t = silu(norm2(t))                         // in place
 *   out = skip(x) + conv2(t)                   // skip: 1x1 conv, or x itself
 *
 * Dropout is the identity at inference and output_scale_factor is 1 for every SD
 * model. The addition order matches diffusers: conv2(t) + bias, then + skip (the
 * kernel's bias -> act -> + res epilogue).
 *
 * Memory: besides out, one [hw, cout] temporary and the banded norm1 buffer (see
 * pd_conv_forward_gn): silu(norm1(x)) never exists at full size. With no skip conv
 * out may be x itself: conv2 reads t and adds x element by element in place. With a
 * skip conv that narrows the channels (cin >= cout) out may be x too
 * (pd_resblock_forward_inplace): the 1x1 skip runs a band of rows at a time into
 * scratch and each band is copied over rows of x already read (output row y ends at
 * float (y + 1) * w * cout, at or before where input row y + 1 begins); the 1x1 conv's
 * outputs do not depend on the band, so the bits are those of the out-of-place run.
 *
 * Traps: diffusers names the skip conv_shortcut, LDM nin_shortcut (VAE) or
 * skip_connection (UNet); the model's key table supplies the names. A block whose
 * channel count changes must have a skip conv: its absence is a load error.
 */
#include <string.h>

#include "nn/band.h"

pd_status pd_resblock_load(const pd_load_ctx *lc, const pd_kernels *kt, pd_resblock *out,
                           const pd_resblock_names *names, int cin, int cout, int temb_dim,
                           int groups, float eps, pd_error *err) {
    memset(out, 0, sizeof *out);
    out->cin = cin;
    out->cout = cout;
    pd_status st = pd_groupnorm_load(lc, &out->norm1, names->norm1_w, names->norm1_b, cin, groups, eps, err);
    if (st == PD_OK)
        st = pd_conv_load(lc, kt, &out->conv1, names->conv1_w, names->conv1_b, cout, cin, 3, 1, 1, err);
    if (st == PD_OK && temb_dim > 0) {
        const pd_st_tensor *w = pd_model_find(lc->src, lc->comp, names->temb_w);
        const pd_st_tensor *b = pd_model_find(lc->src, lc->comp, names->temb_b);
        int64_t wshape[2] = {cout, temb_dim}, bshape[1] = {cout};
        st = pd_nn_check(lc, w, names->temb_w, 2, wshape, err);
        if (st == PD_OK) st = pd_nn_check(lc, b, names->temb_b, 1, bshape, err);
        if (st == PD_OK)
            st = pd_nn_pack(lc, kt, &out->temb, w, names->temb_w, b, names->temb_b, cout, temb_dim, false, err);
        out->has_temb = st == PD_OK;
        out->temb_dim = temb_dim;
    }
    if (st == PD_OK)
        st = pd_groupnorm_load(lc, &out->norm2, names->norm2_w, names->norm2_b, cout, groups, eps, err);
    if (st == PD_OK)
        st = pd_conv_load(lc, kt, &out->conv2, names->conv2_w, names->conv2_b, cout, cout, 3, 1, 1, err);
    if (st != PD_OK) goto fail;
    if (names->skip_w && pd_model_find(lc->src, lc->comp, names->skip_w)) {
        st = pd_conv_load(lc, kt, &out->skip, names->skip_w, names->skip_b, cout, cin, 1, 1, 0, err);
        if (st != PD_OK) goto fail;
        out->has_skip = true;
    } else if (cin != cout) {
        if (names->skip_w) st = pd_nn_check(lc, NULL, names->skip_w, 0, NULL, err);   /* "missing" */
        else
            st = pd_error_set(err, PD_ERR_MISSING, "%s: block after '%s' changes channels %d -> %d "
                              "but has no skip connection", pd_component_name(lc->comp),
                              names->conv2_w, cin, cout);
        goto fail;
    }
    return PD_OK;
fail:
    pd_resblock_free(out);
    return st;
}

void pd_resblock_free(pd_resblock *r) {
    if (!r) return;
    pd_groupnorm_free(&r->norm1);
    pd_groupnorm_free(&r->norm2);
    pd_conv_free(&r->conv1);
    pd_conv_free(&r->conv2);
    pd_conv_free(&r->skip);
    pd_packed_w_free(&r->temb);
    memset(r, 0, sizeof *r);
}

size_t pd_resblock_scratch_bytes_dims(int cin, int cout, int temb_dim, int h, int w) {
    size_t hw = (size_t)h * (size_t)w;
    return pd_arena_size_for(hw * (size_t)cout * sizeof(float)) +
           (temb_dim > 0 ? pd_arena_size_for((size_t)cout * sizeof(float)) : 0) +
           pd_conv_gn_scratch_bytes(cin, 3, 1, 1, h, w);
}

/* Rows per band of the in-place skip conv: about 2 MiB of its output. */
static int skip_rows(int cout, int w) {
    const size_t row = (size_t)w * (size_t)cout * sizeof(float);
    return (int)PD_MAX((size_t)1, ((size_t)2 << 20) / (row ? row : 1));
}

size_t pd_resblock_inplace_scratch_bytes(int cin, int cout, int h, int w) {
    const size_t band = pd_arena_size_for((size_t)PD_MIN(skip_rows(cout, w), h) * (size_t)w * (size_t)cout * sizeof(float));
    return PD_MAX(pd_conv_gn_scratch_bytes(cin, 3, 1, 1, h, w), band);
}

size_t pd_resblock_scratch_bytes(const pd_resblock *r, int h, int w) {
    return pd_resblock_scratch_bytes_dims(r->cin, r->cout, r->has_temb ? r->temb_dim : 0, h, w);
}

typedef struct bias_job {
    float *t;          // [hw, c]
    const float *b;    // [c]
    int hw, c;
} bias_job;

static void bias_task(void *arg, int ith, int nth) {
    const bias_job *j = arg;
    int p0, p1;
    pd_nn_split(0, j->hw, ith, nth, &p0, &p1);
    for (int p = p0; p < p1; p++) {
        float *row = j->t + (size_t)p * (size_t)j->c;
        for (int i = 0; i < j->c; i++) row[i] += j->b[i];
    }
}

/* The block with its temporary t [hw, cout]; out may be x (in place: no skip conv, or
 * one with cin >= cout, run band by band). */
static void forward(const pd_nn *nn, const pd_resblock *r, const float *x, int h, int w, const float *temb_silu,
                    float *out, float *t, pd_arena *scratch) {
    const int hw = h * w;
    pd_arena_mark mark = pd_arena_get_mark(scratch);
    pd_conv_forward_gn(nn, &r->conv1, &r->norm1, true, x, h, w, t, PD_ACT_NONE, NULL, scratch);
    if (r->has_temb) {
        float *tp = pd_arena_alloc(scratch, (size_t)r->cout * sizeof(float));   // [cout]
        PD_ASSERT(tp != NULL);
        pd_nn_linear(nn, tp, (size_t)r->cout, temb_silu, (size_t)r->temb_dim, 1, &r->temb, PD_ACT_NONE,
                     NULL, 0);
        bias_job bj = {t, tp, hw, r->cout};
        pd_pool_run(nn->pool, bias_task, &bj);
    }
    pd_groupnorm_forward(nn, &r->norm2, t, t, hw, true);
    if (r->has_skip && out == x) {
        /* out = skip(x) over x itself, band by band: output rows [y0, y0 + n) end at
         * float (y0 + n) * w * cout <= (y0 + n) * w * cin, where the unread rows of x begin. */
        const size_t cin = (size_t)r->cin, cout = (size_t)r->cout;
        const int rows = skip_rows(r->cout, w);
        float *band = pd_arena_alloc(scratch, (size_t)PD_MIN(rows, h) * (size_t)w * cout * sizeof(float));
        PD_ASSERT(band != NULL);
        for (int y0 = 0; y0 < h; y0 += rows) {
            const int n = PD_MIN(rows, h - y0);
            pd_conv_forward(nn, &r->skip, x + (size_t)y0 * (size_t)w * cin, n, w, band, PD_ACT_NONE, NULL);
            memcpy(out + (size_t)y0 * (size_t)w * cout, band, (size_t)n * (size_t)w * cout * sizeof(float));
        }
        pd_conv_forward(nn, &r->conv2, t, h, w, out, PD_ACT_NONE, out);     // out += conv2(t)
    } else if (r->has_skip) {
        pd_conv_forward(nn, &r->skip, x, h, w, out, PD_ACT_NONE, NULL);     // out = skip(x)
        pd_conv_forward(nn, &r->conv2, t, h, w, out, PD_ACT_NONE, out);     // out += conv2(t)
    } else {
        pd_conv_forward(nn, &r->conv2, t, h, w, out, PD_ACT_NONE, x);       // out = x + conv2(t)
    }
    pd_arena_reset(scratch, mark);
}

void pd_resblock_forward(const pd_nn *nn, const pd_resblock *r, const float *x, int h, int w,
                         const float *temb_silu, float *out, pd_arena *scratch) {
    PD_ASSERT(!r->has_temb || temb_silu);
    PD_ASSERT(out != x || !r->has_skip);
    if (h <= 0 || w <= 0) return;
    pd_arena_mark mark = pd_arena_get_mark(scratch);
    float *t = pd_arena_alloc(scratch, (size_t)h * (size_t)w * (size_t)r->cout * sizeof(float));   // [hw, cout]
    PD_ASSERT(t != NULL);
    forward(nn, r, x, h, w, temb_silu, out, t, scratch);
    pd_arena_reset(scratch, mark);
}

void pd_resblock_forward_inplace(const pd_nn *nn, const pd_resblock *r, float *x, int h, int w,
                                 const float *temb_silu, float *t, pd_arena *scratch) {
    PD_ASSERT(!r->has_temb || temb_silu);
    PD_ASSERT(r->cin >= r->cout && (r->has_skip || r->cin == r->cout));
    if (h <= 0 || w <= 0) return;
    forward(nn, r, x, h, w, temb_silu, x, t, scratch);
}
