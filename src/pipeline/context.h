/*
 * context.h - what a loaded model (pd_ctx) holds. Internal to the library.
 *
 * Everything here is read-only after pd_ctx_load returns, so one context may serve
 * concurrent requests: each request brings its own arena (and, later, RNG and cancel
 * state). The thread pool serialises runs internally. The one exception is the UNet's
 * weights, which a memory plan may release between runs (mem.stage_unet): they live in
 * a pd_ctx_unet behind a lock and runs borrow them through pd_ctx_unet_acquire.
 */
#ifndef PD_PIPELINE_CONTEXT_H
#define PD_PIPELINE_CONTEXT_H

#include <pthread.h>

#include "base/log.h"
#include "base/threadpool.h"
#include "io/model.h"
#include "kernels/kernels.h"
#include "models/clip.h"
#include "models/unet.h"
#include "models/vae.h"
#include "models/taesd.h"
#include "pipeline/memory.h"
#include "sched/schedule.h"
#include "text/clip_tokenizer.h"

/* The UNet's weights, shared by the runs of a context: loaded with the context; with
 * mem.stage_unet (or a run's own plan) the last run holding them frees them before it
 * decodes, and the next run to denoise loads them again. */
typedef struct pd_ctx_unet {
    pthread_mutex_t lock;
    int users;                 /* runs holding the weights */
    pd_unet *w;                /* the loaded UNet, or NULL (released) */
    const pd_model_src *from;  /* where to load it from again */
} pd_ctx_unet;

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
    pd_unet_config unet_cfg;   /* the UNet's configuration (always present with has_unet) */
    pd_ctx_unet *unet;         /* its weights (see pd_ctx_unet), NULL without has_unet */
    pd_vae vae;
    bool has_taesd;          /* params.taesd_path: decodes (and encodes) instead of vae */
    pd_taesd taesd;
    pd_sched_config sched;   /* the model's scheduler config, else the family default */
    int64_t max_memory;      /* params.max_memory (0: no limit) */
    void *wscratch;          /* per-thread dequantization panels (pd_nn.wscratch), or NULL
                                when no weight is quantized */
    size_t wscratch_bytes;
    pd_mem_plan mem;         /* weights and staging; stage_text / stage_vae: text1/text2 and
                                vae hold only their configs, and the weights are loaded
                                per use through the acquire functions below */
};

/* The text encoders to run (NULL where the model has none): the resident ones, or,
 * when staged, loaded into tmp[0..1]. Release with pd_ctx_text_release(tmp). */
pd_status pd_ctx_text_acquire(const pd_ctx *ctx, pd_clip tmp[2], const pd_clip **e1,
                              const pd_clip **e2, pd_error *err);
void pd_ctx_text_release(const pd_ctx *ctx, pd_clip tmp[2]);

/* The VAE to run: the resident one, or (staged) its encoder or decoder half loaded into
 * *tmp. Release with pd_ctx_vae_release(tmp). */
pd_status pd_ctx_vae_acquire(const pd_ctx *ctx, pd_vae *tmp, bool encoder, const pd_vae **vae, pd_error *err);
void pd_ctx_vae_release(const pd_ctx *ctx, pd_vae *tmp);

/* The UNet's weights for a run, loaded again first when a previous run released them
 * (*load_s: the seconds that took, else 0). Every acquire is paired with a release;
 * drop frees the weights when no other run holds them. */
pd_status pd_ctx_unet_acquire(const pd_ctx *ctx, const pd_unet **unet, double *load_s, pd_error *err);
void pd_ctx_unet_release(const pd_ctx *ctx, bool drop);

/* pd_encode_text with the given encoders (from pd_ctx_text_acquire). */
pd_status pd_encode_text_with(const pd_ctx *ctx, const pd_clip *e1, const pd_clip *e2,
                              const pd_text_params *params, pd_cond **out, pd_error *err);

/* The execution context for kt (ctx->kt or ctx->kt_exact). */
pd_nn pd_ctx_nn(const pd_ctx *ctx, const pd_kernels *kt);

/* Logs the resident set after a stage (debug level: --verbose). */
void pd_ctx_log_memory(const pd_ctx *ctx, const char *stage, size_t estimate);

#endif
