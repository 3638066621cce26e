/*
 * vae_config.h - the real SD VAE configuration (SD1.x, SD2.x and SDXL share its shape),
 * for tests of the scratch-memory figures without loading weights.
 */
#ifndef PD_TEST_VAE_CONFIG_H
#define PD_TEST_VAE_CONFIG_H

#include <string.h>

#include "models/vae.h"

static inline pd_vae_config real_sd_config(void) {
    pd_vae_config c;
    memset(&c, 0, sizeof c);
    c.arch.naming = PD_VAE_NAMING_LDM;
    c.arch.n_levels = 4;
    c.arch.ch[0] = 128;
    c.arch.ch[1] = 256;
    c.arch.ch[2] = 512;
    c.arch.ch[3] = 512;
    c.arch.layers_per_block = 2;
    c.arch.in_channels = c.arch.out_channels = 3;
    c.arch.latent_channels = 4;
    c.arch.has_encoder = c.arch.has_quant_conv = c.arch.has_post_quant_conv = c.arch.has_mid_attn = true;
    c.scale = 8;
    c.groups = 32;
    c.eps = 1e-6f;
    c.scaling_factor = 0.18215f;
    return c;
}

#endif
