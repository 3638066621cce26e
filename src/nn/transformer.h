/*
 * transformer.h - the UNet's spatial transformer (diffusers Transformer2DModel with
 * BasicTransformerBlocks; LDM SpatialTransformer), fp32, NHWC.
 *
 *   x_in [B, hw, c]
 *   h = proj_in(GroupNorm(x_in))                      (1x1 conv in SD1, Linear in SD2/SDXL:
 *                                                      the same GEMM on NHWC rows)
 *   depth times:
 *     h += attn1(LN1(h))                              (self-attention)
 *     h += attn2(LN2(h), context)                     (cross-attention: k, v from the context)
 *     h += ff2(geglu(ff1(LN3(h))))                    (GEGLU feed-forward)
 *   out = proj_out(h) + x_in
 * Attention: q/k/v without bias, to_out with bias, softmax(q k^T / sqrt(head_dim)) v per
 * head, flash-style (no tokens x tokens matrix). Residual adds are fused into the GEMM
 * epilogues. GroupNorm eps 1e-6, LayerNorm eps 1e-5 (diffusers defaults for the UNet).
 *
 * Reference: diffusers models/transformers/transformer_2d.py, models/attention.py
 * (BasicTransformerBlock, FeedForward, GEGLU), models/attention_processor.py (Attention);
 * LDM ldm/modules/attention.py (SpatialTransformer).
 *
 * Names: the tensors are found under a component-relative prefix ("input_blocks.1.1.",
 * "down_blocks.0.attentions.0.") with the same suffixes in both namings (keys_unet.h).
 */
#ifndef PD_NN_TRANSFORMER_H
#define PD_NN_TRANSFORMER_H

#include "base/arena.h"
#include "nn/blocks.h"
#include "nn/nn.h"

/* A debugging hook: called with module outputs while a forward runs. data is NHWC
 * [batch, h, w, c] (vectors: h = w = 1); it is only valid during the call. */
typedef struct pd_nn_tap {
    void (*fn)(void *user, const char *name, const float *data, int batch, int h, int w, int c);
    void *user;
} pd_nn_tap;

typedef struct pd_transformer_block {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b, *ln3_w, *ln3_b;   /* [inner] */
    pd_packed_w qkv;    /* [3*inner, inner]: attn1 to_q | to_k | to_v, no bias */
    pd_packed_w out1;   /* [inner, inner] + bias: attn1.to_out.0 */
    pd_packed_w q2;     /* [inner, inner]: attn2.to_q */
    pd_packed_w kv2;    /* [2*inner, ctx_dim]: attn2 to_k | to_v */
    pd_packed_w out2;   /* [inner, inner] + bias */
    pd_packed_w ff1;    /* [2*ff_inner, inner] + bias: value half | gate half */
    pd_packed_w ff2;    /* [inner, ff_inner] + bias */
} pd_transformer_block;

typedef struct pd_transformer {
    int c;           /* channels in and out */
    int inner;       /* heads * head_dim: width of the token stream */
    int n_heads, head_dim;
    int depth;       /* transformer blocks */
    int ctx_dim;     /* cross-attention context width */
    int ff_inner;    /* GEGLU width (4 * inner in every SD model) */
    bool linear_proj;   /* proj_in/out stored as Linear (use_linear_projection) */
    float ln_eps;
    pd_groupnorm norm;
    pd_packed_w proj_in;    /* [inner, c] + bias */
    pd_packed_w proj_out;   /* [c, inner] + bias */
    pd_transformer_block *blocks;   /* [depth] */
} pd_transformer;

/* Loads the transformer under prefix. Depth, inner width, context width and GEGLU width
 * come from the tensors; n_heads must divide the inner width (head_dim <=
 * PD_ATTN_MAX_HEAD_DIM). groups: its GroupNorm groups (32). */
pd_status pd_transformer_load(const pd_load_ctx *lc, const pd_kernels *kt, pd_transformer *out,
                              const char *prefix, int c, int n_heads, int groups, pd_error *err);
void pd_transformer_free(pd_transformer *t);   /* NULL-tolerant; leaves *t zeroed */

/* Scratch bytes of one forward over batch images of hw pixels with n_ctx context tokens. */
size_t pd_transformer_scratch_bytes(int c, int inner, int ff_inner, int batch, int hw, int n_ctx);

/* x [batch, h*w, c] (NHWC) is replaced by the transformer's output. ctx [batch, n_ctx,
 * ctx_dim]. Temporaries come from scratch (sized by pd_transformer_scratch_bytes; a
 * smaller arena is a programmer error and asserts), which is left as found. tap
 * (optional) receives "<tap_prefix>.norm", ".proj_in", ".transformer_blocks.K.attn1",
 * ".attn2", ".ff" and ".transformer_blocks.K"; with a tap the residual adds are not
 * fused (slower, same results up to rounding). */
void pd_transformer_forward(const pd_nn *nn, const pd_transformer *t, float *x, int batch, int h,
                            int w, const float *ctx, int n_ctx, pd_arena *scratch,
                            const pd_nn_tap *tap, const char *tap_prefix);

#endif
