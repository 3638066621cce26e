/*
 * blocks.h - convolutional blocks shared by the UNet and the VAE (NHWC, fp32).
 *
 * Every block is a struct of packed weights loaded once (by explicit checkpoint names
 * that the model's key table supplies, so the blocks know nothing about LDM vs
 * diffusers naming) and an imperative forward over the kernel table and thread pool.
 * Activations are single images [h, w, c] (dense NHWC); batches loop outside.
 * Forward functions take their temporaries from the scratch arena and leave it as they
 * found it (mark/reset); pd_*_scratch_bytes tell how much they need.
 *
 * Reference: diffusers models/resnet.py (ResnetBlock2D, Upsample2D, Downsample2D),
 * models/normalization; LDM ldm/modules/diffusionmodules/openaimodel.py and model.py.
 */
#ifndef PD_NN_BLOCKS_H
#define PD_NN_BLOCKS_H

#include "base/arena.h"
#include "nn/nn.h"

/* ---- convolution ---------------------------------------------------------------- */

typedef struct pd_conv {
    pd_packed_w w;       /* [cout, k*k*cin] packed by pd_conv_pack; bias inside */
    int cin, cout, k, stride;
    int pad_t, pad_l, pad_b, pad_r;   /* the VAE encoder's downsampling pads (0, 1, 0, 1):
                                         set them after pd_conv_load */
} pd_conv;

/* Loads a conv weight [cout, cin, k, k] (+ bias [cout], required when b_name != NULL).
 * A 2-D [cout, cin] tensor is accepted for k == 1 (diffusers linear proj_in/out and
 * VAE attention q/k/v stored either way). Symmetric padding pad on all sides. */
pd_status pd_conv_load(const pd_load_ctx *lc, const pd_kernels *kt, pd_conv *out,
                       const char *w_name, const char *b_name, int cout, int cin, int k,
                       int stride, int pad, pd_error *err);
void pd_conv_free(pd_conv *c);

/* Output size: oh = (h + pad_t + pad_b - k) / stride + 1, likewise ow. */
void pd_conv_out_size(const pd_conv *c, int h, int w, int *oh, int *ow);

/* out [oh, ow, cout] = act(conv(in [h, w, cin]) + bias) (+ res). res may alias out.
 * Split across threads by output rows (and channel panels when there are few rows). */
void pd_conv_forward(const pd_nn *nn, const pd_conv *c, const float *in, int h, int w,
                     float *out, pd_act act, const float *res);

/* ---- group norm ------------------------------------------------------------------ */

typedef struct pd_groupnorm {
    float *gamma, *beta;   /* [c] */
    int c, groups;
    float eps;
} pd_groupnorm;

pd_status pd_groupnorm_load(const pd_load_ctx *lc, pd_groupnorm *out, const char *w_name,
                            const char *b_name, int c, int groups, float eps, pd_error *err);
void pd_groupnorm_free(pd_groupnorm *g);
/* y = GroupNorm(x) (+ SiLU), x and y [hw, c]; y may equal x. Threads split groups. */
void pd_groupnorm_forward(const pd_nn *nn, const pd_groupnorm *g, float *y, const float *x,
                          int hw, bool silu);

/* (addition) out [oh, ow, cout] = act(conv(silu?(GroupNorm(in [h, w, cin])))) (+ res),
 * without a full-size normalised copy of in: statistics first, then the normalised
 * input row band by row band as the convolution reads it. res may alias out; in must
 * not overlap out. Scratch: pd_conv_gn_scratch_bytes (for a k x k conv, symmetric pad). */
void pd_conv_forward_gn(const pd_nn *nn, const pd_conv *c, const pd_groupnorm *g, bool silu,
                        const float *in, int h, int w, float *out, pd_act act, const float *res,
                        pd_arena *scratch);
size_t pd_conv_gn_scratch_bytes(int cin, int k, int stride, int pad, int h, int w);

/* ---- resnet block ------------------------------------------------------------------
 *   h = conv1(silu(norm1(x)));  h += temb_proj(silu(temb))  (UNet only, per channel)
 *   h = conv2(silu(norm2(h)));  out = skip(x) + h           (skip = 1x1 conv when
 *                                                             cin != cout, else x)
 * (dropout is identity at inference; output_scale_factor 1). */
typedef struct pd_resblock_names {
    const char *norm1_w, *norm1_b, *conv1_w, *conv1_b;
    const char *temb_w, *temb_b;            /* NULL for the VAE */
    const char *norm2_w, *norm2_b, *conv2_w, *conv2_b;
    const char *skip_w, *skip_b;            /* looked up; absent means identity */
} pd_resblock_names;

typedef struct pd_resblock {
    int cin, cout, temb_dim;
    pd_groupnorm norm1, norm2;
    pd_conv conv1, conv2;
    bool has_skip;
    pd_conv skip;          /* 1x1 */
    bool has_temb;
    pd_packed_w temb;      /* [cout, temb_dim] */
} pd_resblock;

/* temb_dim 0: no time embedding projection. groups/eps: the model's GroupNorm settings. */
pd_status pd_resblock_load(const pd_load_ctx *lc, const pd_kernels *kt, pd_resblock *out,
                           const pd_resblock_names *names, int cin, int cout, int temb_dim,
                           int groups, float eps, pd_error *err);
void pd_resblock_free(pd_resblock *r);
size_t pd_resblock_scratch_bytes(const pd_resblock *r, int h, int w);
/* (addition) The same from the block's dimensions alone (sizing before loading). */
size_t pd_resblock_scratch_bytes_dims(int cin, int cout, int temb_dim, int h, int w);
/* out [h, w, cout] from x [h, w, cin]; temb_silu = silu(time embedding) [temb_dim]
 * (required when the block has a temb projection, else ignored). out must not overlap
 * x, except that out == x (in place) is allowed when the block has no skip conv. */
void pd_resblock_forward(const pd_nn *nn, const pd_resblock *r, const float *x, int h, int w,
                         const float *temb_silu, float *out, pd_arena *scratch);

/* (addition) In place, x [h, w, cin] -> x [h, w, cout] for a block with cin >= cout (no
 * skip conv, or one that narrows the channels: computed a band of rows at a time and
 * written over rows of x already read), with the [hw, cout] temporary at t (which must
 * not overlap x) instead of from scratch: the same bits as pd_resblock_forward. Scratch:
 * pd_resblock_inplace_scratch_bytes. */
void pd_resblock_forward_inplace(const pd_nn *nn, const pd_resblock *r, float *x, int h, int w,
                                 const float *temb_silu, float *t, pd_arena *scratch);
size_t pd_resblock_inplace_scratch_bytes(int cin, int cout, int h, int w);

/* ---- resampling ----------------------------------------------------------------- */

/* Nearest-neighbour 2x upsampling: out [2h, 2w, c] from in [h, w, c]. */
void pd_upsample2x_nearest(const pd_nn *nn, float *out, const float *in, int h, int w, int c);

/* (addition) Upsample2D: out [2h, 2w, cout] = conv(nearest2x(in [h, w, cin])) for a
 * stride-1 conv, without the full-size upsampled tensor (built row band by row band).
 * Scratch: pd_upsample2x_conv_scratch_bytes(cin, k, pad, h, w) (h, w of the input). */
void pd_upsample2x_conv_forward(const pd_nn *nn, const pd_conv *c, const float *in, int h, int w,
                                float *out, pd_arena *scratch);
size_t pd_upsample2x_conv_scratch_bytes(int cin, int k, int pad, int h, int w);

#endif
