/*
 * taesd.h - TAESD / TAESDXL, the tiny autoencoder (diffusers AutoencoderTiny, Ollin
 * Boer Bohan's madebyollin/taesd): encoder (image -> latents) and decoder (latents ->
 * image), fp32, NHWC. A drop-in replacement for the SD VAE at a fraction of its cost.
 *
 * Reference: diffusers models/autoencoders/autoencoder_tiny.py and vae.py (EncoderTiny,
 * DecoderTiny, AutoencoderTinyBlock); madebyollin/taesd taesd.py.
 *
 * Architecture (the published one, C = 64 hidden channels; convs 3x3 pad 1):
 *   decoder: x = tanh(z / 3) * 3
 *            0 conv L->C, 1 relu, 2-4 Block, 5 up, 6 conv*, 7-9 Block, 10 up, 11 conv*,
 *            12-14 Block, 15 up, 16 conv*, 17 Block, 18 conv C->3;  image = 2 out - 1
 *   encoder: x = (image + 1) / 2
 *            0 conv 3->C, 1 Block, 2 conv*s2, 3-5 Block, 6 conv*s2, 7-9 Block,
 *            10 conv*s2, 11-13 Block, 14 conv C->L = latents
 *   Block(x) = relu(conv3(relu(conv2(relu(conv1(x))))) + x); up = nearest 2x;
 *   conv* = no bias; s2 = stride 2 (pad 1 on every side, unlike the KL VAE).
 * C, the latent channels L and the image channels come from the tensor shapes; the
 * layer sequence is fixed (a file with other layers or skip convs is rejected).
 *
 * Files (the layout is told from the tensor names, never from file names):
 *   - a diffusers AutoencoderTiny folder (config.json + diffusion_pytorch_model
 *     .safetensors: encoder.layers.N.*, decoder.layers.N.*), or that file alone;
 *   - the original files: taesd[xl]_encoder.safetensors (N.*, the same N) and
 *     taesd[xl]_decoder.safetensors ((N+1).*: its index 0 is a parameter-free clamp);
 *     a folder may hold one of each (a second encoder or decoder is an error).
 *   Either part may be absent (decode-only or encode-only weights).
 *
 * Conventions:
 *   - Latents are UNet-space latents, unscaled: TAESD's scaling factor is 1.0 (do not
 *     divide by 0.18215 / 0.13025 as with the KL VAE) and the encoder returns latents,
 *     not a distribution.
 *   - Images are NHWC floats in ~[-1, 1] (pd_vae_image_to_u8 / _from_u8 convert).
 *   - One image per call; batches loop outside.
 *
 * Memory (exact upper bounds from pd_taesd_*_scratch_bytes): three activation buffers
 * of the largest activation [H, W, C] (a Block needs its input for the residual and
 * two temporaries) plus the input copy or an upsampling band. With C = 64:
 *     decode 512x512 (64x64 latent):  201 MiB    encode 512x512:   196 MiB
 *     decode 1024x1024:               777 MiB    encode 1024x1024: 781 MiB
 * (checked by test_taesd; MiB = 2^20 bytes). The upsampled tensors never exist at full
 * size: upsampling is fused into the following convolution.
 */
#ifndef PD_MODELS_TAESD_H
#define PD_MODELS_TAESD_H

#include "base/arena.h"
#include "models/vae.h"   /* pd_vae_tap */
#include "nn/blocks.h"

#define PD_TAESD_MAX_LAYERS 24

typedef enum pd_taesd_op {
    PD_TAESD_OP_CONV = 0,   /* conv[0] */
    PD_TAESD_OP_RELU,
    PD_TAESD_OP_BLOCK,      /* conv[0..2] = diffusers conv.0, conv.2, conv.4 */
    PD_TAESD_OP_UPSAMPLE    /* nearest 2x, fused into the next layer (a conv) */
} pd_taesd_op;

typedef struct pd_taesd_layer {
    pd_taesd_op op;
    pd_conv conv[3];
} pd_taesd_layer;

typedef struct pd_taesd_coder {
    bool present;
    int channels;           /* hidden width C */
    int n_layers;
    pd_taesd_layer layer[PD_TAESD_MAX_LAYERS];   /* diffusers indices */
} pd_taesd_coder;

typedef struct pd_taesd {
    int latent_channels;    /* L (4 for TAESD / TAESDXL) */
    int image_channels;     /* 3 */
    int scale;              /* image pixels per latent pixel: 8 */
    pd_taesd_coder enc, dec;
} pd_taesd;

/* Loads path: a folder or a .safetensors file (see above). Weights are packed for kt;
 * no file stays open. Errors name the file and the tensor. */
pd_status pd_taesd_load(pd_taesd *out, const char *path, const pd_kernels *kt, pd_error *err);
void pd_taesd_free(pd_taesd *m);   /* NULL-tolerant */

/* Scratch bytes for decoding a lat_h x lat_w latent / encoding an img_h x img_w image
 * (0 when that part is absent or the size is not positive). */
size_t pd_taesd_decode_scratch_bytes(const pd_taesd *m, int lat_h, int lat_w);
size_t pd_taesd_encode_scratch_bytes(const pd_taesd *m, int img_h, int img_w);

/* image [lat_h * scale, lat_w * scale, image_channels] from latents [lat_h, lat_w,
 * latent_channels]. Fails up front (PD_ERR_OOM, naming the size) when the scratch arena
 * has less room than pd_taesd_decode_scratch_bytes; PD_ERR_UNSUPPORTED without a
 * decoder. The tap (NULL: none) sees "decoder.clamped_input", "decoder.layers.N" (all
 * but the upsampling layers, whose output is never materialised) and
 * "decoder.layers.N.conv" (a Block's three-conv path before the residual add; computed
 * for the tap only). */
pd_status pd_taesd_decode(const pd_taesd *m, const pd_nn *nn, const float *latents, int lat_h,
                          int lat_w, float *image, pd_arena *scratch, const pd_vae_tap *tap,
                          pd_error *err);

/* latents [img_h / scale, img_w / scale, latent_channels] from image [img_h, img_w,
 * image_channels] in [-1, 1]; img_h and img_w multiples of scale. Tap names
 * "encoder.layers.N" and "encoder.layers.N.conv". */
pd_status pd_taesd_encode(const pd_taesd *m, const pd_nn *nn, const float *image, int img_h,
                          int img_w, float *latents, pd_arena *scratch, const pd_vae_tap *tap,
                          pd_error *err);

#endif
