/*
 * keys_vae.h - checkpoint key names of the SD VAE (AutoencoderKL), by table, in the
 * LDM single-file naming and the diffusers naming, and the architecture read from the
 * tensors (how many levels, channels per level, ResNet blocks per level).
 *
 * Modules are addressed in diffusers order: encoder level L = down_blocks.L (LDM
 * encoder.down.L); decoder level L = up_blocks.L, the deepest first, which LDM stores
 * REVERSED as decoder.up.(n_levels - 1 - L). Names are component-relative
 * (pd_model_find adds "first_stage_model." in single files, "" in diffusers vae/).
 */
#ifndef PD_IO_KEYS_VAE_H
#define PD_IO_KEYS_VAE_H

#include <stdbool.h>
#include <stddef.h>

#include "io/model.h"

#define PD_VAE_MAX_LEVELS 8
#define PD_VAE_MAX_LAYERS 8   /* ResNet blocks per encoder level (the decoder has one more) */

typedef enum pd_vae_naming {
    PD_VAE_NAMING_NONE = 0,
    PD_VAE_NAMING_LDM,             /* encoder.down.L.block.M, mid.block_1 / attn_1 (1x1 convs) */
    PD_VAE_NAMING_DIFFUSERS,       /* encoder.down_blocks.L.resnets.M, mid_block.attentions.0.to_q */
    PD_VAE_NAMING_DIFFUSERS_OLD    /* diffusers < 0.15 attention: query/key/value/proj_attn */
} pd_vae_naming;

typedef enum pd_vae_module {
    PD_VAE_ENC_CONV_IN = 0,
    PD_VAE_ENC_RESNET,        /* level, index */
    PD_VAE_ENC_DOWNSAMPLE,    /* level */
    PD_VAE_ENC_MID_RESNET,    /* index 0 or 1 */
    PD_VAE_ENC_MID_ATTN,
    PD_VAE_ENC_NORM_OUT,
    PD_VAE_ENC_CONV_OUT,
    PD_VAE_QUANT_CONV,
    PD_VAE_POST_QUANT_CONV,
    PD_VAE_DEC_CONV_IN,
    PD_VAE_DEC_MID_RESNET,    /* index 0 or 1 */
    PD_VAE_DEC_MID_ATTN,
    PD_VAE_DEC_RESNET,        /* level (diffusers order), index */
    PD_VAE_DEC_UPSAMPLE,      /* level (diffusers order) */
    PD_VAE_DEC_NORM_OUT,
    PD_VAE_DEC_CONV_OUT,
    PD_VAE_MODULE_COUNT
} pd_vae_module;

typedef enum pd_vae_part {
    PD_VAE_PART_SELF = 0,     /* the module itself (a conv or a norm) */
    PD_VAE_RES_NORM1,
    PD_VAE_RES_CONV1,
    PD_VAE_RES_NORM2,
    PD_VAE_RES_CONV2,
    PD_VAE_RES_SKIP,          /* LDM nin_shortcut, diffusers conv_shortcut (1x1) */
    PD_VAE_ATTN_NORM,
    PD_VAE_ATTN_Q,
    PD_VAE_ATTN_K,
    PD_VAE_ATTN_V,
    PD_VAE_ATTN_OUT,
    PD_VAE_PART_COUNT
} pd_vae_part;

typedef struct pd_vae_key {
    pd_vae_module module;
    int level, index;
    pd_vae_part part;
    bool bias;                /* ".bias" rather than ".weight" */
} pd_vae_key;

/* Writes the component-relative name of key into buf. n_levels is needed for the
 * reversed LDM decoder indices. Returns false when the key does not exist in that
 * naming or buf is too small. */
bool pd_vae_key_name(pd_vae_naming naming, int n_levels, pd_vae_key key, char *buf,
                     size_t buf_size);

/* What the tensors (and the component config, for switches shapes cannot tell) say
 * about a VAE. */
typedef struct pd_vae_arch {
    pd_vae_naming naming;
    int n_levels;                   /* len(block_out_channels) */
    int ch[PD_VAE_MAX_LEVELS];      /* block_out_channels */
    int layers_per_block;           /* encoder ResNet blocks per level (decoder: + 1) */
    int in_channels, out_channels, latent_channels;
    bool has_encoder;               /* encoder tensors present (some files ship decoders only) */
    bool has_quant_conv, has_post_quant_conv;   /* config use_(post_)quant_conv, default true */
    bool has_mid_attn;              /* config mid_block_add_attention, default true */
} pd_vae_arch;

/* Reads the architecture of m's VAE from tensor names and shapes. Errors name the
 * tensor that is missing or malformed. */
pd_status pd_vae_read_arch(const pd_model_src *m, pd_vae_arch *arch, pd_error *err);

/* Number of ResNet blocks of a level (encoder: layers_per_block, decoder: + 1). */
int pd_vae_level_resnets(const pd_vae_arch *a, bool decoder);
/* Channels in/out of a ResNet block (encoder or decoder level, index), diffusers rules. */
void pd_vae_resnet_channels(const pd_vae_arch *a, bool decoder, int level, int index,
                            int *cin, int *cout);

/* Enumerates the tensors the engine loads from m's VAE (full checkpoint names) into a
 * malloc'd array of malloc'd strings (the caller frees each and the array). Returns
 * the count, 0 when m has no VAE, -1 when its architecture cannot be read or on OOM
 * (then nothing is allocated). Same contract as pd_keys_expected. */
int pd_vae_keys_expected(const pd_model_src *m, char ***names);

#endif
