/*
 * context.h - what a loaded model (pd_ctx) holds. Internal to the library.
 *
 * Everything here is read-only after pd_ctx_load returns, so one context may serve
 * concurrent requests: each request brings its own arena (and, later, RNG and cancel
 * state). The thread pool serialises runs internally.
 */
#ifndef PD_PIPELINE_CONTEXT_H
#define PD_PIPELINE_CONTEXT_H

#include "base/log.h"
#include "base/threadpool.h"
#include "io/model.h"
#include "kernels/kernels.h"
#include "models/clip.h"
#include "models/unet.h"
#include "models/vae.h"
#include "models/taesd.h"
#include "sched/schedule.h"
#include "text/clip_tokenizer.h"

struct pd_ctx {
    pd_model_src *src;
    pd_model_src *unet_src;   /* a separate UNet (params.unet_path), or NULL */
    pd_family family;
    pd_kernels kt;        /* UNet and VAE: the requested precision */
    pd_kernels kt_exact;   /* text encoders: always fp32 (13 GFLOP for CLIP-L: cheap, and
                             CFG amplifies any error in the conditioning) */
    pd_pool *pool;
    pd_logger log;
    pd_tokenizer *tok;
    char vocab_path[512];
    bool has_text1, has_text2;
    pd_clip text1;   /* CLIP-L (SD1, SDXL) or OpenCLIP ViT-H (SD2) */
    pd_clip text2;   /* SDXL: OpenCLIP bigG */
    bool text_only;          /* loaded with params.text_only */
    bool has_unet, has_vae;
    pd_unet unet;
    pd_vae vae;
    bool has_taesd;          /* params.taesd_path: decodes (and encodes) instead of vae */
    pd_taesd taesd;
    pd_sched_config sched;   /* the model's scheduler config, else the family default */
};

#endif
