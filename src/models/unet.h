/*
 * unet.h - the denoising UNet (diffusers UNet2DConditionModel; LDM/sgm UNetModel) for
 * SD1.x, SD2.x and SDXL, with the 9-channel inpainting and LCM (time_cond_proj)
 * variants, fp32.
 *
 * Structure (resolved once at load into pd_unet_config; the forward only follows it):
 *   emb  = time_embedding(sinusoid(t) [+ cond_proj(w_embedding)])      (+ SDXL add_embedding)
 *   h    = conv_in(sample)                                             -> skip
 *   down level l: layers x (resnet [+ transformer]) -> skip each; downsample -> skip
 *   mid:  resnet, transformer, resnet
 *   up block i (level n-1-i): (layers+1) x (cat[h, skip.pop()] -> resnet [+ transformer]);
 *         nearest upsample to the next skip's size + 3x3 conv
 *   out  = conv_out(silu(GroupNorm(h)))
 * What shapes tell comes from the tensors (keys_unet.h pd_unet_probe: levels, layers,
 * channels, attention levels, transformer depths; widths, context width, linear vs conv
 * projection, time/add embedding widths, LCM w width, 9 input channels for inpainting).
 * What they cannot (attention heads, the SDXL add-time width) comes from the config
 * (diffusers unet/config.json, or the "unet"/"derived" sections of <model>.config.json),
 * else from the family's known values: SD1 8 heads everywhere, SD2/SDXL head dim 64,
 * addition_time_embed_dim 256.
 *
 * Reference: diffusers models/unets/unet_2d_condition.py, unet_2d_blocks.py,
 * models/embeddings.py (get_timestep_embedding, TimestepEmbedding); LDM
 * ldm/modules/diffusionmodules/openaimodel.py; sgm (SDXL) openaimodel.py.
 */
#ifndef PD_MODELS_UNET_H
#define PD_MODELS_UNET_H

#include "base/arena.h"
#include "io/keys_unet.h"
#include "io/model.h"
#include "nn/blocks.h"
#include "nn/nn.h"
#include "nn/transformer.h"

typedef struct pd_unet_config {
    pd_unet_arch arch;          /* structure from the checkpoint's keys */
    int n_heads[PD_UNET_MAX_LEVELS];    /* per level; up block i uses level n_levels-1-i */
    int tf_inner[PD_UNET_MAX_LEVELS];   /* transformer width per level (0: no attention) */
    int tf_ff[PD_UNET_MAX_LEVELS];      /* GEGLU width per level */
    int mid_heads, mid_inner, mid_ff;
    int ctx_dim;                /* cross-attention context width (768, 1024, 2048) */
    bool linear_proj;           /* transformer proj_in/out are Linear (SD2/SDXL) */
    int time_proj_dim;          /* timestep sinusoid width (= model channels) */
    int temb_dim;               /* time embedding width (4 x model channels) */
    bool flip_sin_to_cos;       /* sinusoid order [cos | sin] (true in every SD model) */
    float freq_shift;           /* 0 in every SD model */
    int time_cond_proj_dim;     /* LCM guidance embedding width; 0 = none */
    int adm_in_channels;        /* SDXL add_embedding input width (2816); 0 = none */
    int addition_time_embed_dim;   /* sinusoid width per time id (256) */
    int n_time_ids;             /* 6: [orig h, orig w, crop top, crop left, target h, target w] */
    int text_embeds_dim;        /* pooled text width (1280) = adm_in - n_time_ids * add dim */
    int groups;                 /* GroupNorm groups (32) */
    float norm_eps;             /* resnet and output GroupNorm eps (1e-5) */
} pd_unet_config;

typedef struct pd_unet_down {
    pd_resblock res[PD_UNET_MAX_LAYERS];
    pd_transformer attn[PD_UNET_MAX_LAYERS];   /* when arch.down_attn[level] */
    pd_conv down;                               /* 3x3 stride 2 (not on the last level) */
} pd_unet_down;

typedef struct pd_unet_up {
    pd_resblock res[PD_UNET_MAX_LAYERS + 1];
    pd_transformer attn[PD_UNET_MAX_LAYERS + 1];   /* when arch.up_attn[block] */
    pd_conv up;                                     /* 3x3 after upsampling (not on the last block) */
} pd_unet_up;

typedef struct pd_unet {
    pd_unet_config cfg;
    pd_conv conv_in;
    pd_packed_w time1, time2;   /* [temb, time_proj_dim], [temb, temb] */
    pd_packed_w cond_proj;      /* [time_proj_dim, time_cond_proj_dim], no bias (LCM) */
    pd_packed_w add1, add2;     /* [temb, adm_in], [temb, temb] (SDXL) */
    pd_unet_down down[PD_UNET_MAX_LEVELS];
    pd_resblock mid_res[2];
    pd_transformer mid_attn;
    pd_unet_up up[PD_UNET_MAX_LEVELS];
    pd_groupnorm norm_out;
    pd_conv conv_out;
} pd_unet;

/* Reads the configuration of src's UNet (structure from the tensors, heads from the
 * configs or the family), without loading weights. */
pd_status pd_unet_read_config(pd_unet_config *cfg, const pd_model_src *src, pd_error *err);

/* Loads src's UNet: every tensor is checked (a missing or reshaped one fails with
 * PD_ERR_MISSING / PD_ERR_SHAPE naming it) and packed; src may be closed afterwards.
 * pool (NULL: this thread alone) packs the large weights; call it outside pool tasks. */
pd_status pd_unet_load(pd_unet *out, const pd_model_src *src, const pd_kernels *kt, pd_pool *pool,
                       pd_error *err);
void pd_unet_free(pd_unet *m);   /* NULL-tolerant; leaves *m zeroed */

typedef struct pd_unet_in {
    int batch, h, w;            /* latent size (any h, w >= 1) */
    const float *sample;        /* [batch, in_channels, h, w] NCHW */
    float timestep;             /* every item's timestep when timesteps == NULL (float: 500.5 ok) */
    const float *timesteps;     /* [batch] or NULL */
    const float *context;       /* [batch, n_ctx, ctx_dim]: text states (uncond rows, cond rows) */
    int n_ctx;                  /* context tokens: 77 x chunks (77, 154, 231, ...) */
    const float *text_embeds;   /* [batch, text_embeds_dim] pooled text (SDXL), else NULL */
    const float *time_ids;      /* [batch, n_time_ids] (SDXL), else NULL */
    const float *guidance_w;    /* [batch] LCM w = guidance_scale - 1, or NULL (no w embedding,
                                   as diffusers with timestep_cond=None) */
    const pd_nn_tap *tap;       /* debugging: module outputs under diffusers names, or NULL */
} pd_unet_in;

/* Scratch bytes pd_unet_forward needs for a batch of h x w latents and n_ctx context
 * tokens (the whole forward: skips, activations, block temporaries). */
size_t pd_unet_scratch_bytes(const pd_unet_config *cfg, int batch, int h, int w, int n_ctx);

/* eps_out [batch, out_channels, h, w] NCHW = the UNet's prediction. Fails with
 * PD_ERR_INVALID_ARG for inputs the model needs but lacks (SDXL text_embeds/time_ids)
 * and PD_ERR_OOM (naming the size) when scratch has too little room left; the arena is
 * left as found. */
pd_status pd_unet_forward(const pd_unet *m, const pd_nn *nn, const pd_unet_in *in,
                          float *eps_out, pd_arena *scratch, pd_error *err);

/* The diffusers timestep sinusoid (get_timestep_embedding) of t: out [dim]. */
void pd_unet_timestep_embedding(float *out, float t, int dim, bool flip_sin_to_cos,
                                float freq_shift);

/* The LCM guidance embedding (diffusers get_guidance_scale_embedding) of w (=
 * guidance_scale - 1): out [dim] = [sin(1000 w f_k), cos(1000 w f_k)],
 * f_k = exp(-k ln(10000) / (dim/2 - 1)). */
void pd_unet_guidance_embedding(float *out, float w, int dim);

#endif
