/*
 * resample.c - nearest-neighbour 2x upsampling, alone and fused into the following
 * convolution (diffusers Upsample2D: F.interpolate(scale_factor=2, mode="nearest")
 * then conv 3x3 pad 1; LDM Upsample with_conv).
 *
 * Nearest 2x: out[y, x] = in[y / 2, x / 2] (integer division), exactly what torch's
 * nearest mode gives for a scale factor of 2.
 *
 * The fused form builds only the upsampled rows each output band reads (band.h): the
 * full [2h, 2w, c] tensor (the largest tensor of the SD VAE decoder, 256 MiB at
 * 512x512) is never allocated.
 *
 * Downsampling needs no code of its own: a stride-2 pd_conv (pad 1 in the UNet;
 * pad_t = pad_l = 0, pad_b = pad_r = 1 in the VAE encoder).
 */
#include <string.h>

#include "nn/band.h"

/* Writes upsampled rows [a0, a1) of a [2h, 2w, c] image into dst (row a0 first). */
static void upsample_rows(float *dst, const float *in, int w, int c, int a0, int a1) {
    const size_t px = (size_t)c * sizeof(float), row = 2 * (size_t)w * (size_t)c;
    for (int r = a0; r < a1; r++) {
        const float *src = in + (size_t)(r / 2) * (size_t)w * (size_t)c;
        float *d = dst + (size_t)(r - a0) * row;
        for (int x = 0; x < w; x++) {
            memcpy(d + (size_t)(2 * x) * (size_t)c, src + (size_t)x * (size_t)c, px);
            memcpy(d + (size_t)(2 * x + 1) * (size_t)c, src + (size_t)x * (size_t)c, px);
        }
    }
}

typedef struct up_job {
    const float *in;   // [h, w, c]
    int w, c;
    float *out;        // [2h, 2w, c] (or a band of it)
} up_job;

static void up_fill(void *ctx, float *band, int r0, int r1, int ith, int nth) {
    const up_job *j = ctx;
    int a0, a1;
    pd_nn_split(r0, r1, ith, nth, &a0, &a1);
    if (a0 < a1)
        upsample_rows(band + (size_t)(a0 - r0) * 2 * (size_t)j->w * (size_t)j->c, j->in, j->w, j->c, a0, a1);
}

typedef struct up_full_job {
    up_job j;
    int rows;   /* 2h */
} up_full_job;

static void up_full_task(void *arg, int ith, int nth) {
    const up_full_job *f = arg;
    up_fill((void *)&f->j, f->j.out, 0, f->rows, ith, nth);
}

void pd_upsample2x_nearest(const pd_nn *nn, float *out, const float *in, int h, int w, int c) {
    if (h <= 0 || w <= 0 || c <= 0) return;
    up_full_job f = {{in, w, c, out}, 2 * h};
    pd_pool_run(nn->pool, up_full_task, &f);
}

size_t pd_upsample2x_conv_scratch_bytes(int cin, int k, int pad, int h, int w) {
    return pd_nn_band_bytes(cin, k, 1, pad, pad, 2 * h, 2 * w);
}

void pd_upsample2x_conv_forward(const pd_nn *nn, const pd_conv *c, const float *in, int h, int w,
                                float *out, pd_arena *scratch) {
    PD_ASSERT(c->stride == 1);
    if (h <= 0 || w <= 0) return;
    up_job j = {in, w, c->cin, NULL};
    pd_nn_conv_banded(nn, c, 2 * h, 2 * w, up_fill, &j, out, PD_ACT_NONE, NULL, scratch);
}
