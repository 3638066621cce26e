/*
 * vae.h - the Stable Diffusion VAE (diffusers AutoencoderKL, LDM AutoencoderKL):
 * encoder (image -> posterior moments) and decoder (latent -> image), fp32, NHWC.
 *
 * Reference: diffusers models/autoencoders/autoencoder_kl.py and vae.py (Encoder,
 * Decoder, UNetMidBlock2D), models/resnet.py, models/attention_processor.py.
 *
 * Sizes come from the tensors (block_out_channels, layers_per_block, latent / image
 * channels); what shapes cannot tell comes from the component config (diffusers
 * vae/config.json, or the "vae" section of <model>.config.json): scaling_factor,
 * shift_factor, norm_num_groups, use_quant_conv, use_post_quant_conv,
 * mid_block_add_attention; else the "derived" section (vae_scaling_factor,
 * vae_groupnorm_groups); else the family's values (scaling 0.18215 for SD1/SD2,
 * 0.13025 for SDXL; 32 groups). GroupNorm eps is 1e-6 (diffusers fixes it for the VAE).
 *
 * Conventions:
 *   - pd_vae_decode takes z = latents / scaling_factor (+ shift_factor), exactly what
 *     AutoencoderKL.decode takes (and what the golden vae_decode cases store as `z`);
 *     pd_vae_z_from_latents makes it from the sampler's NCHW latents.
 *   - pd_vae_encode returns the posterior moments: mean and logvar (clamped to
 *     [-30, 20]); pd_vae_latents_from_moments does scaling * (mean + exp(logvar/2) * eps).
 *   - Images are NHWC floats in ~[-1, 1]; pd_vae_image_to_u8 / _from_u8 convert from/to
 *     uint8 HWC as diffusers' VaeImageProcessor does.
 *   - One image per call; batches loop outside.
 *
 * Memory (pd_vae_decode_scratch_bytes / pd_vae_encode_scratch_bytes, exact upper
 * bounds): two ping-pong activation buffers plus the largest block temporary. With the
 * SD channels [128, 256, 512, 512] (SD1.x, SD2.x and SDXL share them):
 *     decode 512x512 (64x64 latent):    417 MiB      encode 512x512:    297 MiB
 *     decode 1024x1024 (128x128):      1665 MiB      encode 1024x1024: 1161 MiB
 * (checked by test_vae; MiB = 2^20 bytes). Decode peak at 512x512: the last level's
 * first ResNet block, x [512, 512, 256] (256 MiB) narrowed in place to [512, 512, 128]
 * (its 1x1 skip conv a band of rows at a time over rows already read), with one
 * [512, 512, 128] temporary (128 MiB) in the other buffer and the block region's bands.
 * Blocks that keep or narrow the channels run in place like that in the decoder (521
 * MiB before); the encoder's only where the other buffer already has room. The
 * nearest-2x upsampled tensors and the GroupNorm+SiLU outputs never exist at full size:
 * upsampling and the first norm of each block are fused into the convolutions that
 * read them.
 */
#ifndef PD_MODELS_VAE_H
#define PD_MODELS_VAE_H

#include <stdint.h>

#include "base/arena.h"
#include "io/keys_vae.h"
#include "io/model.h"
#include "nn/blocks.h"

typedef struct pd_vae_config {
    pd_vae_arch arch;       /* levels, channels, blocks, namings, switches */
    int scale;              /* image pixels per latent pixel: 2^(n_levels - 1) */
    int groups;             /* GroupNorm groups */
    float eps;              /* GroupNorm eps */
    float scaling_factor;
    float shift_factor;     /* 0 for SD1/SD2/SDXL */
} pd_vae_config;

typedef struct pd_vae_attn {
    int c;
    pd_groupnorm norm;
    pd_conv q, k, v, out;   /* 1x1 convs = linear layers [c, c] */
} pd_vae_attn;

typedef struct pd_vae_level {
    int n_res;
    pd_resblock res[PD_VAE_MAX_LAYERS + 1];
    bool has_resample;      /* encoder: downsample; decoder: upsample */
    pd_conv resample;
} pd_vae_level;

typedef struct pd_vae_coder {
    pd_conv conv_in;
    pd_vae_level level[PD_VAE_MAX_LEVELS];   /* diffusers order */
    pd_resblock mid_res[2];
    bool has_attn;
    pd_vae_attn attn;
    pd_groupnorm norm_out;
    pd_conv conv_out;
} pd_vae_coder;

typedef struct pd_vae {
    pd_vae_config cfg;
    bool has_encoder;
    pd_vae_coder enc, dec;
    bool has_quant, has_post_quant;
    pd_conv quant_conv, post_quant_conv;
} pd_vae;

/* Reads the configuration of src's VAE from tensor shapes and configs, without
 * loading weights. */
pd_status pd_vae_read_config(pd_vae_config *cfg, const pd_model_src *src, pd_error *err);

/* Loads src's VAE (packed copies; src may be closed afterwards). pool (NULL: this
 * thread alone) packs the large weights; call it outside pool tasks. */
pd_status pd_vae_load(pd_vae *out, const pd_model_src *src, const pd_kernels *kt, pd_pool *pool, pd_error *err);
/* As pd_vae_load with only the encoder (+ quant_conv) and/or only the decoder
 * (+ post_quant_conv) loaded: the staged pipeline loads the half it runs. has_encoder
 * tells whether the encoder was loaded. */
pd_status pd_vae_load_parts(pd_vae *out, const pd_model_src *src, const pd_kernels *kt, bool encoder,
                            bool decoder, pd_pool *pool, pd_error *err);
void pd_vae_free(pd_vae *m);   /* NULL-tolerant */

/* Optional observer of intermediate tensors (tests, debugging): called with diffusers
 * module names ("decoder.mid_block", "encoder.down_blocks.1", "post_quant_conv", ...)
 * and the tensor [h, w, c] NHWC, valid during the call only. NULL: none. */
typedef struct pd_vae_tap {
    void (*fn)(void *user, const char *name, const float *x, int h, int w, int c);
    void *user;
} pd_vae_tap;

/* Scratch bytes for decoding a lat_h x lat_w latent / encoding an img_h x img_w image. */
size_t pd_vae_decode_scratch_bytes(const pd_vae_config *cfg, int lat_h, int lat_w);
size_t pd_vae_encode_scratch_bytes(const pd_vae_config *cfg, int img_h, int img_w);

/* image [lat_h*scale, lat_w*scale, out_channels] from z [lat_h, lat_w, latent_channels]
 * (z = latents / scaling_factor + shift_factor). Fails up front (PD_ERR_OOM, naming
 * the size) when the fixed-size scratch arena has less room than
 * pd_vae_decode_scratch_bytes. */
pd_status pd_vae_decode(const pd_vae *m, const pd_nn *nn, const float *z, int lat_h, int lat_w,
                        float *image, pd_arena *scratch, const pd_vae_tap *tap, pd_error *err);

/* mean, logvar [img_h/scale, img_w/scale, latent_channels] from image
 * [img_h, img_w, in_channels] in [-1, 1]; img_h and img_w multiples of cfg->scale. */
pd_status pd_vae_encode(const pd_vae *m, const pd_nn *nn, const float *image, int img_h,
                        int img_w, float *mean, float *logvar, pd_arena *scratch,
                        const pd_vae_tap *tap, pd_error *err);

/* ---- tiled decoding (vae_tiled.c) ------------------------------------------------- */

/*
 * Large images are decoded tile by tile so that decode memory depends on the tile size,
 * not on the image (diffusers AutoencoderKL.tiled_decode; stable-diffusion.cpp's VAE
 * tiling). Each tile is an ordinary pd_vae_decode of a tile x tile latent crop, with its
 * own GroupNorm statistics and mid-block attention, as in diffusers; the tiles are then
 * cross-faded into the image.
 *
 * Placement, per axis, for n latent pixels: one tile of min(tile, n) when n <= tile;
 * else k = 1 + ceil((n - tile) / (tile - overlap)) tiles of exactly `tile`, the first at
 * 0, the last ending at n, the starts in between spread evenly (rounded), so every pair
 * of neighbours shares at least `overlap` latent pixels and all tiles have one size.
 * Blending: inside the pixels two neighbours share (in image pixels), the weight of each
 * falls linearly towards its own edge ((d + 0.5) / shared, d = pixels from the edge); an
 * edge on the image border gets no ramp. Weights are products of the two axes' ramps,
 * normalised by their sum at every pixel (a partition of unity; where only two tiles
 * meet it is diffusers' blend_v / blend_h cross-fade). A single tile is pd_vae_decode
 * itself, bit for bit.
 *
 * Defaults (pd_vae_tiling_default): tiles of 512 image pixels (64 latents for the SD VAEs)
 * sharing 128 (16 latents), diffusers' tile_latent_min_size = 64 with overlap factor
 * 0.25 (diffusers' SDXL VAE config would tile at 128 latents; 64 bounds memory).
 * Policy (pd_vae_tiling_auto): untiled up to 768x768 image pixels (what SD1.x at 512 and
 * SD2.x at 768 need), tiled above (SDXL at 1024x1024 and beyond).
 *
 * Memory (pd_vae_decode_tiled_scratch_bytes, exact upper bound; the caller owns the
 * image): one tile's pd_vae_decode scratch plus the tile's latent crop, its decoded
 * pixels and one row of column weights. SD VAE channels:
 *     decode 1024x1024 (128x128), untiled: 1665 MiB   default tiles (3x3, starts 0/32/64): 420 MiB
 *     decode 2048x2048 (256x256), untiled: 6657 MiB   default tiles (5x5):                 420 MiB
 *     tiles of 32 latents, overlap 8, any image over 256x256:                              105 MiB
 *     largest untiled by the policy, 768x768 (96x96):   937 MiB
 * (checked by test_vae_tiled). Time: the 3x3 tiles of 64 at 1024x1024 decode 2.25x the
 * pixels of one untiled pass.
 *
 * Fidelity: a tiled image is not the untiled one, since each tile normalises and attends
 * over itself only. On the golden tiny models (random weights, noise latents) tiled vs
 * untiled measured 30-37 dB PSNR with tiles of 16 latents, 34-37 with 24, 37.5-40 with 32,
 * and with the pipeline's fitted tiles (pd_vae_tiling_fit: 2 x 2 of 72 at 128x128, 2 x 3
 * of 64 at 88x160) 43.5-48.2 dB (test_vae_tiled asserts >= 40 dB for them); the center of a tile decoded alone is no closer, so this is the
 * statistics, not the blending. Not measured on real SD weights. No seams: the error
 * jumps across tile edges no more than across other pixel lines (a hard stitch does).
 */
typedef struct pd_vae_tiling {
    int tile;      /* tile side in latent pixels, >= 2 (the height when tile_w is set) */
    int overlap;   /* latent pixels shared by neighbouring tiles, 1 .. tile - 1 */
    int tile_w;    /* tile width when not square (e.g. full-width strips), 0: = tile */
} pd_vae_tiling;

/* The tiling along one axis as a square one (tile_w resolved), for the per-axis
 * placement functions below. */
pd_vae_tiling pd_vae_tiling_axis(const pd_vae_tiling *t, bool width);

/* {512 / scale, 128 / scale} latent pixels ({64, 16} for the SD VAEs). */
pd_vae_tiling pd_vae_tiling_default(const pd_vae_config *cfg);

/* The tiling the pipeline uses for a lat_h x lat_w latent: per axis as few tiles of at
 * most 640 image pixels (80 latents) sharing 128 (16) as cover it, then each as small as
 * that count allows (k tiles of ceil((n + (k - 1) * overlap) / k)). At 1024x1024 (128x128
 * latents): 2 x 2 tiles of 72, 1.27x the pixels of one pass and 531 MiB of scratch,
 * where fixed tiles of 64 decode 3 x 3 (2.25x, 420 MiB). */
pd_vae_tiling pd_vae_tiling_fit(const pd_vae_config *cfg, int lat_h, int lat_w);

/* Smaller tiles for a memory budget: ny tiles down and nx across (>= 1 each; nx = 1:
 * full-width strips), the fitted overlap (at most a quarter of a split side); the fitted
 * tiling when that is not smaller. Activations shrink with the tile's area, work grows
 * with the overlap: at 64x64 latents, 2 x 1 strips of 37 cost 1.16x the decode work for
 * 58 % of the activations, 2 x 2 tiles of 37 1.34x for 34 %. */
pd_vae_tiling pd_vae_tiling_split(const pd_vae_config *cfg, int lat_h, int lat_w, int ny, int nx);

/* Whether a lat_h x lat_w latent should be decoded in tiles: true above 768x768 image
 * pixels (lat_h * lat_w * scale^2 > 768 * 768). */
bool pd_vae_tiling_auto(const pd_vae_config *cfg, int lat_h, int lat_w);

/* PD_ERR_INVALID_ARG (naming the values) unless 2 <= tile, 1 <= overlap < tile and
 * tile_w is 0 or likewise valid. */
pd_status pd_vae_tiling_check(const pd_vae_tiling *t, pd_error *err);

/* Tiles per axis (pd_vae_decode_tiled's placement), and where tile i starts (latent
 * pixels); for tests and progress reporting. 0 for invalid arguments. */
int pd_vae_tile_count(int n, const pd_vae_tiling *t);
int pd_vae_tile_start(int n, const pd_vae_tiling *t, int i);

/* Scratch bytes for pd_vae_decode_tiled (t NULL: the defaults); depends on the image
 * size only through min(tile, lat_h) and min(tile, lat_w). 0 for invalid arguments. */
size_t pd_vae_decode_tiled_scratch_bytes(const pd_vae_config *cfg, int lat_h, int lat_w,
                                         const pd_vae_tiling *t);

/* pd_vae_decode in tiles: image [lat_h*scale, lat_w*scale, out_channels] from z
 * [lat_h, lat_w, latent_channels]; t NULL means pd_vae_tiling_default. Fails up front
 * with PD_ERR_OOM when the arena has less room than pd_vae_decode_tiled_scratch_bytes,
 * PD_ERR_INVALID_ARG for bad sizes or tiling. After a failure in a tile the image holds
 * part of the result. The arena is left as found. */
pd_status pd_vae_decode_tiled(const pd_vae *m, const pd_nn *nn, const float *z, int lat_h, int lat_w,
                              float *image, const pd_vae_tiling *t, pd_arena *scratch, pd_error *err);

/* As pd_vae_decode_tiled, calling on_tile(user, done, total) after each of the total
 * tiles (done = 1 .. total; not called for a single-tile decode); on_tile returning
 * false stops the decode with PD_ERR_CANCELLED. */
typedef bool (*pd_vae_tile_fn)(void *user, int done, int total);
pd_status pd_vae_decode_tiled_cb(const pd_vae *m, const pd_nn *nn, const float *z, int lat_h, int lat_w,
                                 float *image, const pd_vae_tiling *t, pd_arena *scratch, pd_vae_tile_fn on_tile,
                                 void *user, pd_error *err);

/* ---- layout and value conversions for the pipeline --------------------------------- */

/* dst [h, w, c] from src [c, h, w], and back. */
void pd_nchw_to_nhwc(float *dst, const float *src, int c, int h, int w);
void pd_nhwc_to_nchw(float *dst, const float *src, int h, int w, int c);

/* z [h, w, latent_channels] = latents [latent_channels, h, w] / scaling_factor + shift. */
void pd_vae_z_from_latents(const pd_vae_config *cfg, float *z, const float *latents, int h, int w);

/* latents [c, h, w] = scaling_factor * (mean + exp(0.5 * logvar) * eps - shift) with
 * mean, logvar [h, w, c] (pd_vae_encode's outputs) and eps [c, h, w] (torch.randn
 * order), c = latent_channels. diffusers DiagonalGaussianDistribution.sample. */
void pd_vae_latents_from_moments(const pd_vae_config *cfg, float *latents, const float *mean,
                                 const float *logvar, const float *eps, int h, int w);

/* u8 = round_half_even(clamp(x / 2 + 0.5, 0, 1) * 255) elementwise in fp32 (diffusers
 * postprocess + numpy round); NaN gives 0. Same element order in and out (NHWC = HWC). */
void pd_vae_image_to_u8(uint8_t *dst, const float *src, size_t n);
/* x = (u8 / 255) * 2 - 1 in fp32 (diffusers preprocess). */
void pd_vae_image_from_u8(float *dst, const uint8_t *src, size_t n);

#endif
