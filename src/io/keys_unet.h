/*
 * keys_unet.h - UNet2DConditionModel checkpoint key names, by table, for both namings,
 * and the UNet structure read from which keys exist (and their shapes).
 *
 * Two namings of the same network (every name component-relative; pd_model_find adds
 * "model.diffusion_model." in single files, nothing in a diffusers unet/ folder):
 *
 *   site                    LDM / sgm (openaimodel.py)            diffusers
 *   conv_in                 input_blocks.0.0                      conv_in
 *   time MLP                time_embed.0 / .2                     time_embedding.linear_1 / _2
 *   LCM w projection        (none)                                time_embedding.cond_proj
 *   SDXL add MLP            label_emb.0.0 / .0.2                  add_embedding.linear_1 / _2
 *   down resnet (l, j)      input_blocks.K.0, K = 1+l*(L+1)+j     down_blocks.l.resnets.j
 *   down attention (l, j)   input_blocks.K.1                      down_blocks.l.attentions.j
 *   downsample (l)          input_blocks.(1+l*(L+1)+L).0.op       down_blocks.l.downsamplers.0.conv
 *   mid resnet 0 / attn / 1 middle_block.0 / .1 / .2              mid_block.resnets.0 / attentions.0 / resnets.1
 *   up resnet (i, j)        output_blocks.K.0, K = i*(L+1)+j      up_blocks.i.resnets.j
 *   up attention (i, j)     output_blocks.K.1                     up_blocks.i.attentions.j
 *   upsample (i)            output_blocks.(i*(L+1)+L).{1|2}.conv  up_blocks.i.upsamplers.0.conv
 *                           (.2 when that block has an attention)
 *   conv_norm_out/conv_out  out.0 / out.2                         conv_norm_out / conv_out
 *   (L = layers per block; up block i works at level n_levels-1-i.)
 * Resnets: in_layers.0 / in_layers.2 / emb_layers.1 / out_layers.0 / out_layers.3 /
 * skip_connection (LDM) = norm1 / conv1 / time_emb_proj / norm2 / conv2 / conv_shortcut.
 * Transformers (Transformer2DModel = SpatialTransformer) use the same names in both:
 * norm, proj_in, transformer_blocks.K.{norm1,attn1.to_{q,k,v},attn1.to_out.0,norm2,attn2.*,
 * norm3,ff.net.0.proj,ff.net.2}, proj_out.
 *
 * Traps:
 *   - The LDM upsampler index depends on whether the up block has attentions.
 *   - diffusers up blocks run in reverse level order: up block 0 is the deepest level.
 *   - Only tensors matter here; what shapes cannot tell (heads) is in models/unet.c.
 */
#ifndef PD_IO_KEYS_UNET_H
#define PD_IO_KEYS_UNET_H

#include <stdbool.h>
#include <stddef.h>

#include "io/model.h"

#define PD_UNET_MAX_LEVELS 6
#define PD_UNET_MAX_LAYERS 4   /* resnets per down block (up blocks have one more) */
#define PD_UNET_MAX_DEPTH 16   /* transformer blocks per Transformer2DModel (SDXL: 10) */

typedef enum pd_unet_naming {
    PD_UNET_NAMING_NONE = 0,
    PD_UNET_NAMING_LDM,        /* original LDM / sgm names (single files) */
    PD_UNET_NAMING_DIFFUSERS   /* diffusers UNet2DConditionModel names */
} pd_unet_naming;

/* Top-level tensors. */
typedef enum pd_unet_key {
    PD_UNET_CONV_IN_W = 0,
    PD_UNET_CONV_IN_B,
    PD_UNET_TIME1_W,
    PD_UNET_TIME1_B,
    PD_UNET_TIME2_W,
    PD_UNET_TIME2_B,
    PD_UNET_COND_PROJ_W,   /* LCM guidance projection (no bias); diffusers naming only */
    PD_UNET_ADD1_W,        /* SDXL text/time embedding MLP */
    PD_UNET_ADD1_B,
    PD_UNET_ADD2_W,
    PD_UNET_ADD2_B,
    PD_UNET_NORM_OUT_W,
    PD_UNET_NORM_OUT_B,
    PD_UNET_CONV_OUT_W,
    PD_UNET_CONV_OUT_B,
    PD_UNET_KEY_COUNT
} pd_unet_key;

/* Resnet tensors (suffixes after the site prefix). */
typedef enum pd_unet_res_key {
    PD_UNET_RES_NORM1_W = 0,
    PD_UNET_RES_NORM1_B,
    PD_UNET_RES_CONV1_W,
    PD_UNET_RES_CONV1_B,
    PD_UNET_RES_TEMB_W,
    PD_UNET_RES_TEMB_B,
    PD_UNET_RES_NORM2_W,
    PD_UNET_RES_NORM2_B,
    PD_UNET_RES_CONV2_W,
    PD_UNET_RES_CONV2_B,
    PD_UNET_RES_SKIP_W,    /* only when cin != cout */
    PD_UNET_RES_SKIP_B,
    PD_UNET_RES_KEY_COUNT
} pd_unet_res_key;

/* Transformer tensors (suffixes after the site prefix); per-block keys take K. */
typedef enum pd_unet_tf_key {
    PD_UNET_TF_NORM_W = 0,
    PD_UNET_TF_NORM_B,
    PD_UNET_TF_PROJ_IN_W,
    PD_UNET_TF_PROJ_IN_B,
    PD_UNET_TF_PROJ_OUT_W,
    PD_UNET_TF_PROJ_OUT_B,
    PD_UNET_TF_FIRST_BLOCK_KEY,
    PD_UNET_TF_LN1_W = PD_UNET_TF_FIRST_BLOCK_KEY,
    PD_UNET_TF_LN1_B,
    PD_UNET_TF_Q1,
    PD_UNET_TF_K1,
    PD_UNET_TF_V1,
    PD_UNET_TF_OUT1_W,
    PD_UNET_TF_OUT1_B,
    PD_UNET_TF_LN2_W,
    PD_UNET_TF_LN2_B,
    PD_UNET_TF_Q2,
    PD_UNET_TF_K2,
    PD_UNET_TF_V2,
    PD_UNET_TF_OUT2_W,
    PD_UNET_TF_OUT2_B,
    PD_UNET_TF_LN3_W,
    PD_UNET_TF_LN3_B,
    PD_UNET_TF_FF1_W,
    PD_UNET_TF_FF1_B,
    PD_UNET_TF_FF2_W,
    PD_UNET_TF_FF2_B,
    PD_UNET_TF_KEY_COUNT
} pd_unet_tf_key;

/* Where a block sits: block = level (down), up-block index (up), unused (mid);
 * index = resnet/attention index inside the block (mid: resnet 0 or 1). */
typedef enum pd_unet_site {
    PD_UNET_SITE_DOWN_RES = 0,
    PD_UNET_SITE_DOWN_ATTN,
    PD_UNET_SITE_DOWNSAMPLE,
    PD_UNET_SITE_MID_RES,
    PD_UNET_SITE_MID_ATTN,
    PD_UNET_SITE_UP_RES,
    PD_UNET_SITE_UP_ATTN,
    PD_UNET_SITE_UPSAMPLE
} pd_unet_site;

/* The UNet's structure as the checkpoint shows it (pd_unet_probe). */
typedef struct pd_unet_arch {
    pd_unet_naming naming;
    int n_levels;                 /* len(block_out_channels) */
    int layers_per_block;         /* resnets per down block; up blocks have one more */
    int in_channels, out_channels;
    int model_channels;           /* conv_in width */
    int level_channels[PD_UNET_MAX_LEVELS];      /* block_out_channels */
    bool down_attn[PD_UNET_MAX_LEVELS];          /* by level */
    bool up_attn[PD_UNET_MAX_LEVELS];            /* by up block (level n_levels-1-i) */
    bool mid_attn;
    int depth_down[PD_UNET_MAX_LEVELS][PD_UNET_MAX_LAYERS];       /* transformer blocks */
    int depth_up[PD_UNET_MAX_LEVELS][PD_UNET_MAX_LAYERS + 1];
    int depth_mid;
    bool has_cond_proj;           /* LCM time_cond_proj */
    bool has_add_embedding;       /* SDXL text_time embedding */
} pd_unet_arch;

/* Naming of the UNet component: conv_in.weight -> diffusers, input_blocks.0.0.weight
 * -> LDM, else NONE. */
pd_unet_naming pd_unet_detect_naming(const pd_model_src *m);

/* Reads the structure of m's UNet from its key names and a few shapes (levels, layers,
 * channels, where attention is, transformer depths). PD_ERR_MISSING / PD_ERR_SHAPE /
 * PD_ERR_UNSUPPORTED name the tensor or the limit. */
pd_status pd_unet_probe(const pd_model_src *m, pd_unet_arch *arch, pd_error *err);

/* Component-relative name of a top-level key. False when the naming has no such
 * tensor (the LCM projection in LDM naming) or buf is too small. */
bool pd_unet_key_name(pd_unet_naming naming, pd_unet_key key, char *buf, size_t buf_size);

/* Prefix of a site, ending in '.', e.g. "input_blocks.4.1." or
 * "down_blocks.1.attentions.0.". Downsample/upsample prefixes include the conv
 * ("input_blocks.3.0.op.", "up_blocks.0.upsamplers.0.conv."): append "weight"/"bias". */
bool pd_unet_site_prefix(const pd_unet_arch *arch, pd_unet_site site, int block, int index,
                         char *buf, size_t buf_size);

/* Resnet / transformer suffix names ("in_layers.0.weight", "transformer_blocks.3.norm1.bias"). */
bool pd_unet_res_key_name(pd_unet_naming naming, pd_unet_res_key key, char *buf,
                          size_t buf_size);
bool pd_unet_tf_key_name(pd_unet_tf_key key, int block, char *buf, size_t buf_size);

/* Input and output channels of a resnet site (diffusers channel arithmetic; up
 * resnets take the concatenation [h, skip]). */
void pd_unet_res_channels(const pd_unet_arch *arch, pd_unet_site site, int block, int index,
                          int *cin, int *cout);

/* The same contract as pd_keys_expected (ckpt_keys.h) for the UNet: the expected
 * tensor names (full checkpoint names) in a malloc'd array of malloc'd strings; returns
 * the count, 0 when the model has no UNet, -1 when its structure cannot be read (or on
 * OOM; then nothing is allocated). The caller frees each name and the array. */
int pd_unet_keys_expected(const pd_model_src *m, char ***names);

#endif
