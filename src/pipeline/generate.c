/*
 * generate.c - txt2img and img2img: text conditioning, the sampler loop with
 * classifier-free guidance, VAE decode to 8-bit RGB.
 *
 * Order of operations and RNG draws follow diffusers' StableDiffusion(XL)Pipeline,
 * StableDiffusion(XL)Img2ImgPipeline and LatentConsistencyModelPipeline (v0.31), so a
 * seed gives the reference's image:
 *   txt2img: noise = randn([1, 4, h, w]); latents = noise * init_noise_sigma
 *   img2img: eps = randn (VAE posterior sample), init = scaling * (mean + std * eps);
 *            noise = randn; latents = add_noise(init, noise, first kept step)
 *   each eval: x_in = scale_model_input(latents); eps = UNet([uncond, cond]);
 *              eps = eps_u + g * (eps_c - eps_u); latents = step(...) (ancestral draws)
 *   image = u8(VAE.decode(latents / scaling_factor))
 * CFG runs when guidance > 1 and the UNet has no guidance embedding (LCM: w = g - 1 is
 * embedded instead, cond only). clip skip applies to the positive prompt only (as
 * diffusers). SDXL: pooled text embeds and time ids [H, W, 0, 0, H, W]; an empty
 * negative prompt gives zero conditioning (force_zeros_for_empty_prompt).
 *
 * Memory: one scratch arena per call sized up front for the larger of the UNet pass
 * and the VAE pass, so running out of memory fails before any work; with a staged VAE
 * (pipeline/memory.h) the UNet's arena and the decode's take turns. The run's peak is
 * estimated first, and with a budget (pd_ctx_params.max_memory) the UNet's weights are
 * released to decode and then the automatic VAE tiling shrinks until it fits, or the run
 * is refused. A run that releases the UNet denoises its images (up to 64 MiB of
 * latents at a time) before it decodes them, so a batch loads the UNet once.
 */
#include "pipeline/generate.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/rng.h"
#include "sched/sampler.h"

#define MAX_SIDE 8192

pd_gen_params pd_gen_default_params(void) {
    pd_gen_params p;
    memset(&p, 0, sizeof p);
    p.prompt = "";
    p.steps = 20;
    p.cfg_scale = 7.0f;
    p.sampler = "euler_a";
    p.scheduler = "default";
    p.seed = -1;
    p.batch_count = 1;
    p.clip_skip = 1;
    p.prompt_weights = true;
    p.strength = 0.75f;
    return p;
}

void pd_result_free(pd_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n_images; i++) free(r->images[i].rgb);
    free(r->images);
    free(r);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A seed in [0, 2^32) from the OS (torch keeps the low 32 bits anyway). */
static int64_t random_seed(void) {
    uint32_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) v = 0;
        close(fd);
    }
    if (v == 0) v = (uint32_t)time(NULL) ^ (uint32_t)clock() * 2654435761u;
    return (int64_t)v;
}

static bool report_image(const pd_gen_params *p, const char *stage, int step, int n, double t0,
                         const uint8_t *preview, int w, int h) {
    if (!p->progress) return true;
    pd_progress pr = {.stage = stage, .step = step, .n_steps = n, .elapsed_s = now_s() - t0,
                      .preview = preview, .preview_width = preview ? w : 0,
                      .preview_height = preview ? h : 0};
    return p->progress(&pr, p->progress_user);
}

static bool report(const pd_gen_params *p, const char *stage, int step, int n, double t0) {
    return report_image(p, stage, step, n, t0, NULL, 0, 0);
}

/* Everything one image needs, allocated once per pd_generate call. */
typedef struct job {
    const pd_ctx *ctx;
    const pd_gen_params *p;
    const pd_gen_observer *obs;
    int width, height, lh, lw, lc;     /* image and latent sizes */
    size_t n_lat;                      /* lc * lh * lw */
    bool cfg, lcm_w;
    bool taesd_dec, taesd_enc;         /* TAESD decodes / encodes instead of the KL VAE */
    bool tiled;                        /* KL VAE decode in tiles */
    pd_vae_tiling tiling;
    pd_sampler_kind kind;
    pd_sigma_schedule schedule;
    pd_sched_config sched;             /* the model's, with the run's spacing */
    float time_ids[6];                 /* SDXL: original (h, w), crop (top, left), target (h, w) */
    pd_sched_plan *plan;
    pd_sampler *sampler;
    pd_arena scratch;
    float *latents, *x_in, *eps, *batch_in, *context, *init, *noise;
    float *text_embeds, *time_ids_batch, *guidance;
    float *image;                      /* [H, W, 3] */
    uint8_t *preview;                  /* [H, W, 3] with params.preview */
    pd_cond *cond, *uncond;
    const pd_unet *unet;               /* held from pd_ctx_unet_acquire while denoising */
    bool release_unet;                 /* free the UNet's weights to decode (the plan's choice) */
    int keep;                          /* images denoised before decoding (release_unet), else 1 */
    float *kept;                       /* [keep, n_lat] their final latents */
    pd_vae vae_tmp;                    /* a staged VAE (ctx->mem.stage_vae), loaded on first use */
    const pd_vae *vae;                 /* the VAE to run, NULL until first use */
    size_t mem_peak;                   /* the run's estimated peak (bytes) */
    bool split;                        /* staged VAE: the UNet arena is freed for the decode */
    size_t run_b, dec_b;               /* arena bytes: denoise (+ VAE encode), decode */
} job;

/* Makes j->scratch an arena of exactly `bytes` (split arenas switch between sizes). */
static pd_status job_arena(job *j, size_t bytes, pd_error *err) {
    if (j->scratch.cap == bytes && j->scratch.head) return PD_OK;
    pd_arena_free(&j->scratch);
    if (pd_arena_init(&j->scratch, bytes) != 0)
        return pd_error_set(err, PD_ERR_OOM, "out of memory: %.0f MiB of activations are needed for %dx%d",
                            (double)bytes / (1 << 20), j->width, j->height);
    return PD_OK;
}

/* The VAE's weights: the context's, or (staged) the half needed loaded now (released
 * again by the caller when the run splits its arenas). */
static pd_status job_vae(job *j, bool encoder, pd_error *err) {
    if (j->vae) return PD_OK;
    pd_status st = pd_ctx_vae_acquire(j->ctx, &j->vae_tmp, encoder, &j->vae, err);
    if (st != PD_OK) j->vae = NULL;
    else if (j->ctx->mem.stage_vae) pd_ctx_log_memory(j->ctx, "VAE load", j->mem_peak);
    return st;
}

static pd_status check_params(const pd_ctx *ctx, const pd_gen_params *p, job *j, pd_error *err) {
    if (ctx->text_only)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "the model was loaded with text_only: no UNet or VAE");
    if (!ctx->has_unet) return pd_error_set(err, PD_ERR_MISSING, "'%s' has no UNet", ctx->src->path);
    const bool taesd = ctx->has_taesd && !(p->taesd_preview_only && ctx->has_vae);
    j->taesd_dec = taesd && ctx->taesd.dec.present;
    j->taesd_enc = taesd && ctx->taesd.enc.present;
    if (!ctx->has_vae && !j->taesd_dec)
        return pd_error_set(err, PD_ERR_MISSING, "'%s' has no VAE (give a TAESD to decode with)", ctx->src->path);
    if (!p->prompt) return pd_error_set(err, PD_ERR_INVALID_ARG, "no prompt given");
    if (p->preview && !(ctx->has_taesd && ctx->taesd.dec.present))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "previews need a TAESD decoder (pd_ctx_params.taesd_path, --taesd)");
    if (p->vae_tiling < PD_VAE_TILING_AUTO || p->vae_tiling > PD_VAE_TILING_ON)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "vae_tiling %d is not a pd_vae_tiling_mode", (int)p->vae_tiling);
    int native = ctx->family == PD_FAMILY_SDXL ? 1024 : ctx->family == PD_FAMILY_SD2 ? 768 : 512;
    const int scale = ctx->has_vae ? ctx->vae.cfg.scale : ctx->taesd.scale;
    const int latent_ch = ctx->has_vae ? ctx->vae.cfg.arch.latent_channels : ctx->taesd.latent_channels;
    j->width = p->width ? p->width : p->init_image ? p->init_width : native;
    j->height = p->height ? p->height : p->init_image ? p->init_height : native;
    if (j->width <= 0 || j->height <= 0 || j->width > MAX_SIDE || j->height > MAX_SIDE ||
        j->width % scale || j->height % scale)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "size %dx%d: width and height must be multiples of %d in %d..%d",
                            j->width, j->height, scale, scale, MAX_SIDE);
    if (p->steps < 1 || p->steps > 1000)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "steps %d outside 1..1000", p->steps);
    if (!(p->cfg_scale >= 0.0f && p->cfg_scale <= 100.0f))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "cfg scale %g outside 0..100", (double)p->cfg_scale);
    if (p->batch_count < 1 || p->batch_count > 1000)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "batch count %d outside 1..1000", p->batch_count);
    if (p->init_image) {
        if (!(p->strength > 0.0f && p->strength <= 1.0f))
            return pd_error_set(err, PD_ERR_INVALID_ARG, "strength %g outside (0, 1]", (double)p->strength);
        if (p->init_width != j->width || p->init_height != j->height)
            return pd_error_set(err, PD_ERR_INVALID_ARG, "init image is %dx%d but the output is %dx%d "
                                "(resize it, or leave width/height unset)",
                                p->init_width, p->init_height, j->width, j->height);
        if (!j->taesd_enc && !(ctx->has_vae && ctx->vae.has_encoder))
            return pd_error_set(err, PD_ERR_MISSING, "this VAE has no encoder: img2img is not possible");
    }
    pd_status st = pd_sampler_kind_parse(p->sampler ? p->sampler : "euler_a", &j->kind, err);
    if (st == PD_OK) st = pd_sigma_schedule_parse(p->scheduler ? p->scheduler : "default", &j->schedule, err);
    if (st != PD_OK) return st;
    j->sched = ctx->sched;
    if (p->timestep_spacing && *p->timestep_spacing) {
        st = pd_spacing_parse(p->timestep_spacing, &j->sched.spacing, err);
        if (st != PD_OK) return st;
    }
    const int ids[6] = {p->original_height ? p->original_height : j->height,
                        p->original_width ? p->original_width : j->width,
                        p->crop_top, p->crop_left,
                        p->target_height ? p->target_height : j->height,
                        p->target_width ? p->target_width : j->width};
    for (int i = 0; i < 6; i++) {
        if (ids[i] < 0 || ids[i] > 65536)
            return pd_error_set(err, PD_ERR_INVALID_ARG, "SDXL size conditioning value %d outside 0..65536", ids[i]);
        j->time_ids[i] = (float)ids[i];
    }
    if (!pd_sampler_supports(j->kind, j->schedule))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "sampler %s has no %s schedule",
                            pd_sampler_kind_name(j->kind), pd_sigma_schedule_name(j->schedule));
    const pd_unet_config *uc = &ctx->unet_cfg;
    if (uc->arch.in_channels != latent_ch)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "this UNet takes %d input channels (an inpainting "
                            "model?); txt2img/img2img need %d", uc->arch.in_channels, latent_ch);
    j->lc = latent_ch;
    j->lh = j->height / scale;
    j->lw = j->width / scale;
    if (!j->taesd_dec) {
        j->tiling = pd_vae_tiling_fit(&ctx->vae.cfg, j->lh, j->lw);
        j->tiled = p->vae_tiling == PD_VAE_TILING_ON ||
                   (p->vae_tiling == PD_VAE_TILING_AUTO && pd_vae_tiling_auto(&ctx->vae.cfg, j->lh, j->lw));
    }
    j->n_lat = (size_t)j->lc * (size_t)j->lh * (size_t)j->lw;
    j->lcm_w = uc->time_cond_proj_dim > 0;
    j->cfg = p->cfg_scale > 1.0f && !j->lcm_w;
    return PD_OK;
}

static pd_status encode_prompts(job *j, double t0, pd_error *err) {
    const pd_gen_params *p = j->p;
    pd_text_params tp = pd_text_default_params();
    tp.prompt = p->prompt;
    tp.clip_skip = p->clip_skip;
    tp.prompt_weights = p->prompt_weights;
    pd_clip tmp[2];
    const pd_clip *e1, *e2;
    pd_status st = pd_ctx_text_acquire(j->ctx, tmp, &e1, &e2, err);
    if (st == PD_OK) st = pd_encode_text_with(j->ctx, e1, e2, &tp, &j->cond, err);
    if (st == PD_OK && j->cfg) {
        tp.prompt = p->negative_prompt ? p->negative_prompt : "";
        tp.clip_skip = 1;   /* diffusers applies clip skip to the positive prompt only */
        tp.zero_if_empty = j->ctx->family == PD_FAMILY_SDXL;
        st = pd_encode_text_with(j->ctx, e1, e2, &tp, &j->uncond, err);
    }
    if (st == PD_OK) pd_ctx_log_memory(j->ctx, "text encoding", j->ctx->mem.peak_text);
    pd_ctx_text_release(j->ctx, tmp);
    (void)t0;
    return st;
}

/* Bytes alloc_job allocates besides the arena. */
static size_t job_buffers_bytes(const job *j, int n_ctx, int dim, int pooled_dim) {
    size_t n = j->n_lat, px = (size_t)j->width * (size_t)j->height;
    return ((9 + (size_t)j->keep) * n + (size_t)2 * (size_t)n_ctx * (size_t)dim + (size_t)2 * (size_t)pooled_dim + 16) * sizeof(float) +
           px * 3 * sizeof(float) + (j->p->preview ? px * 3 : 0);
}

/* Scratch bytes of the decode as currently chosen: TAESD, or the KL VAE whole or in
 * j->tiling's tiles (previews add TAESD's). */
static size_t decode_bytes(const job *j) {
    const pd_ctx *ctx = j->ctx;
    size_t dec_b = j->taesd_dec ? pd_taesd_decode_scratch_bytes(&ctx->taesd, j->lh, j->lw)
                   : j->tiled   ? pd_vae_decode_tiled_scratch_bytes(&ctx->vae.cfg, j->lh, j->lw, &j->tiling)
                                : pd_vae_decode_scratch_bytes(&ctx->vae.cfg, j->lh, j->lw);
    if (j->p->preview) dec_b = PD_MAX(dec_b, pd_taesd_decode_scratch_bytes(&ctx->taesd, j->lh, j->lw));
    return dec_b;
}

static pd_status alloc_job(job *j, pd_error *err) {
    const pd_ctx *ctx = j->ctx;
    const pd_cond *c = j->cond, *u = j->uncond;
    int n_ctx = c->n_tokens, batch = 1;
    if (u) {
        n_ctx = PD_MAX(n_ctx, u->n_tokens);
        batch = u->n_tokens == c->n_tokens ? 2 : 1;   /* different lengths: two passes */
    }
    size_t unet_b = pd_unet_scratch_bytes(&ctx->unet_cfg, batch, j->lh, j->lw, n_ctx);
    size_t enc_b = !j->p->init_image ? 0
                   : j->taesd_enc    ? pd_taesd_encode_scratch_bytes(&ctx->taesd, j->height, j->width)
                                     : pd_vae_encode_scratch_bytes(&ctx->vae.cfg, j->height, j->width);
    /* A run that releases the UNet keeps up to 64 MiB of latents to decode after it. */
    const int group = (int)PD_MAX(1, PD_MIN((size_t)j->p->batch_count, ((size_t)64 << 20) / (j->n_lat * sizeof(float))));
    j->release_unet = ctx->mem.stage_unet;
    j->keep = j->release_unet ? group : 1;
    size_t bufs = job_buffers_bytes(j, n_ctx, c->dim, c->pooled_dim);
    j->split = ctx->mem.stage_vae && !j->taesd_dec;
    j->run_b = PD_MAX(unet_b, enc_b);
    j->dec_b = decode_bytes(j);
    pd_mem_plan plan = ctx->mem;
    plan.a_unet = j->run_b + bufs;
    plan.a_dec = j->dec_b + bufs;
    pd_mem_plan_peaks(&plan);
    j->mem_peak = pd_mem_plan_peak(&plan);
    if (ctx->max_memory > 0) {
        const size_t budget = (size_t)ctx->max_memory;
        /* The decode does not fit beside the UNet: release the UNet to decode. */
        if (plan.peak_decode > budget && !plan.stage_unet && plan.peak_decode > PD_MAX(plan.peak_text, plan.peak_denoise)) {
            j->release_unet = plan.stage_unet = true;
            j->keep = group;
            bufs = job_buffers_bytes(j, n_ctx, c->dim, c->pooled_dim);
            plan.a_unet = j->run_b + bufs;
            plan.a_dec = j->dec_b + bufs;
            pd_mem_plan_peaks(&plan);
        }
        /* Automatic tiling: tile when the untiled decode does not fit, with smaller tiles
         * while they do not either. */
        if (plan.peak_decode > budget && ctx->has_vae && !j->taesd_dec && j->p->vae_tiling == PD_VAE_TILING_AUTO) {
            /* fitted, then 2 strips, 2 x 2, 3 x 3, 4 x 4 (down x across) */
            static const int split[][2] = {{0, 0}, {2, 1}, {2, 2}, {3, 3}, {4, 4}};
            for (size_t t = 0; t < PD_COUNT(split) && plan.peak_decode > budget; t++) {
                j->tiled = true;
                j->tiling = t ? pd_vae_tiling_split(&ctx->vae.cfg, j->lh, j->lw, split[t][0], split[t][1])
                              : pd_vae_tiling_fit(&ctx->vae.cfg, j->lh, j->lw);
                j->dec_b = decode_bytes(j);
                plan.a_dec = j->dec_b + bufs;
                pd_mem_plan_peaks(&plan);
            }
        }
        j->mem_peak = pd_mem_plan_peak(&plan);
        if (j->mem_peak > budget) {
            char b[32], pk[32], w[32], a[32];
            pd_mem_str(b, sizeof b, budget);
            const size_t act = PD_MAX(plan.a_unet, plan.a_dec);
            pd_mem_str(pk, sizeof pk, j->mem_peak);
            pd_mem_str(w, sizeof w, j->mem_peak - PD_MIN(act, j->mem_peak));
            pd_mem_str(a, sizeof a, act);
            return pd_error_set(err, PD_ERR_OOM,
                                "--max-memory %s is too small for %dx%d: the run needs about %s (weights and "
                                "overhead %s, activations %s%s); try a smaller image, a smaller --weight-type "
                                "or a larger budget",
                                b, j->width, j->height, pk, w, a, j->tiled ? " with tiled VAE decoding" : "");
        }
        char pk[32];
        pd_mem_str(pk, sizeof pk, j->mem_peak);
        pd_log(&ctx->log, PD_LOG_INFO,
               "memory plan for %dx%d: activations %.0f MiB denoising, %.0f MiB decoding (VAE %s%s), estimated "
               "peak %s", j->width, j->height, (double)plan.a_unet / (1 << 20), (double)plan.a_dec / (1 << 20),
               j->taesd_dec ? "TAESD" : j->tiled ? "tiled" : "whole", j->release_unet ? ", UNet released" : "", pk);
    }
    pd_status st = job_arena(j, j->split ? j->run_b : PD_MAX(j->run_b, j->dec_b), err);
    if (st != PD_OK) return st;
    size_t n = j->n_lat;
    int dim = c->dim;
    j->latents = malloc(n * sizeof(float));
    j->x_in = malloc(n * sizeof(float));
    j->eps = malloc(2 * n * sizeof(float));
    j->batch_in = malloc(2 * n * sizeof(float));
    j->noise = malloc(n * sizeof(float));
    j->init = malloc(n * sizeof(float));
    j->context = malloc((size_t)2 * (size_t)n_ctx * (size_t)dim * sizeof(float));
    j->image = malloc((size_t)j->width * (size_t)j->height * 3 * sizeof(float));
    j->preview = j->p->preview ? malloc((size_t)j->width * (size_t)j->height * 3) : NULL;
    j->text_embeds = c->pooled_dim ? malloc((size_t)2 * (size_t)c->pooled_dim * sizeof(float)) : NULL;
    j->time_ids_batch = malloc(2 * 6 * sizeof(float));
    j->guidance = malloc(2 * sizeof(float));
    j->kept = malloc((size_t)j->keep * n * sizeof(float));
    if (!j->kept || !j->latents || !j->x_in || !j->eps || !j->batch_in || !j->noise || !j->init || !j->context ||
        !j->image || (c->pooled_dim && !j->text_embeds) || !j->time_ids_batch || !j->guidance ||
        (j->p->preview && !j->preview))
        return pd_error_set(err, PD_ERR_OOM, "out of memory for %dx%d", j->width, j->height);
    return PD_OK;
}

/* eps = guided noise prediction for x_in at timestep t. */
static pd_status predict(job *j, float t, int *evals, pd_error *err) {
    const pd_ctx *ctx = j->ctx;
    pd_nn nn = pd_ctx_nn(ctx, &ctx->kt);
    const pd_cond *c = j->cond, *u = j->uncond;
    const size_t n = j->n_lat;
    int dim = c->dim;
    /* Passes: [uncond, cond] in one batch, or separately when the contexts differ in length. */
    const pd_cond *seq[2];
    int n_pass_items[2], n_passes;
    if (!u) {
        seq[0] = c;
        n_passes = 1;
        n_pass_items[0] = 1;
    } else if (u->n_tokens == c->n_tokens) {
        seq[0] = u;
        seq[1] = c;
        n_passes = 1;
        n_pass_items[0] = 2;
    } else {
        seq[0] = u;
        seq[1] = c;
        n_passes = 2;
        n_pass_items[0] = n_pass_items[1] = 1;
    }
    int item = 0;
    for (int pass = 0; pass < n_passes; pass++) {
        int b = n_pass_items[pass];
        const pd_cond *first = seq[item];
        for (int k = 0; k < b; k++) {
            const pd_cond *ck = seq[item + k];
            memcpy(j->batch_in + (size_t)k * n, j->x_in, n * sizeof(float));
            memcpy(j->context + (size_t)k * (size_t)first->n_tokens * (size_t)dim, ck->context,
                   (size_t)ck->n_tokens * (size_t)dim * sizeof(float));
            if (j->text_embeds) memcpy(j->text_embeds + (size_t)k * ck->pooled_dim, ck->pooled, (size_t)ck->pooled_dim * sizeof(float));
            memcpy(j->time_ids_batch + 6 * k, j->time_ids, sizeof j->time_ids);
            j->guidance[k] = j->p->cfg_scale - 1.0f;
        }
        pd_unet_in in = {
            .batch = b, .h = j->lh, .w = j->lw, .sample = j->batch_in, .timestep = t,
            .context = j->context, .n_ctx = first->n_tokens,
            .text_embeds = ctx->unet_cfg.adm_in_channels ? j->text_embeds : NULL,
            .time_ids = ctx->unet_cfg.adm_in_channels ? j->time_ids_batch : NULL,
            .guidance_w = j->lcm_w ? j->guidance : NULL,
        };
        pd_status st = pd_unet_forward(j->unet, &nn, &in, j->eps + (size_t)item * n, &j->scratch, err);
        if (st != PD_OK) return st;
        *evals += b;
        item += b;
    }
    if (u) {
        /* eps = eps_u + g * (eps_c - eps_u), as the reference computes it in fp32. */
        const float g = j->p->cfg_scale;
        float *eu = j->eps, *ec = j->eps + n;
        for (size_t i = 0; i < n; i++) eu[i] = eu[i] + g * (ec[i] - eu[i]);
    }
    return PD_OK;
}

static pd_status init_latents(job *j, pd_rng *rng, pd_error *err) {
    const pd_ctx *ctx = j->ctx;
    size_t n = j->n_lat;
    if (!j->p->init_image) {
        pd_rng_randn(rng, j->noise, n);
        for (size_t i = 0; i < n; i++) j->latents[i] = j->noise[i] * j->plan->init_noise_sigma;
        return PD_OK;
    }
    pd_nn nn = pd_ctx_nn(ctx, &ctx->kt);
    size_t px = (size_t)j->width * (size_t)j->height * 3;
    pd_vae_image_from_u8(j->image, j->p->init_image, px);
    size_t nl = (size_t)j->lh * (size_t)j->lw * (size_t)j->lc;
    float *mean = malloc(nl * sizeof(float)), *logvar = malloc(nl * sizeof(float));
    pd_status st = PD_OK;
    if (!mean || !logvar) st = pd_error_set(err, PD_ERR_OOM, "out of memory");
    if (st == PD_OK && j->taesd_enc) {
        /* TAESD gives the latents themselves: no posterior sample, so the generator's
         * first draw is the initial noise. */
        st = pd_taesd_encode(&ctx->taesd, &nn, j->image, j->height, j->width, mean, &j->scratch, NULL, err);
        if (st == PD_OK) pd_nhwc_to_nchw(j->init, mean, j->lh, j->lw, j->lc);
    } else if (st == PD_OK) {
        st = job_vae(j, true, err);
        if (st == PD_OK)
            st = pd_vae_encode(j->vae, &nn, j->image, j->height, j->width, mean, logvar, &j->scratch, NULL, err);
        if (st == PD_OK) {
            pd_rng_randn(rng, j->noise, n);   /* the posterior sample's eps: the first draw */
            pd_vae_latents_from_moments(&ctx->vae.cfg, j->init, mean, logvar, j->noise, j->lh, j->lw);
        }
        if (j->split) {   /* denoising runs without the VAE */
            pd_ctx_vae_release(j->ctx, &j->vae_tmp);
            j->vae = NULL;
        }
    }
    if (st == PD_OK) {
        pd_rng_randn(rng, j->noise, n);   /* then the initial noise */
        pd_sched_add_noise(j->plan, j->plan->start, j->init, j->noise, n, j->latents);
    }
    free(mean);
    free(logvar);
    return st;
}

/* Tiled decodes report each tile as a "decode" step (and may be cancelled there). */
typedef struct tile_report {
    const pd_gen_params *p;
    double t0;
} tile_report;

static bool on_tile(void *user, int done, int total) {
    const tile_report *r = user;
    return report(r->p, "decode", done - 1, total, r->t0);
}

/* Units the "decode" stage reports: tiles of a tiled KL decode, else 1. */
static int decode_units(const job *j) {
    if (j->taesd_dec || !j->tiled) return 1;
    const pd_vae_tiling tw = pd_vae_tiling_axis(&j->tiling, true);
    return pd_vae_tile_count(j->lh, &j->tiling) * pd_vae_tile_count(j->lw, &tw);
}

/* image [H, W, 3] from latents [c, h, w] (NCHW): TAESD takes the latents as they are,
 * the KL VAE latents / scaling_factor (+ shift), whole or in tiles. */
static pd_status decode(job *j, const float *latents, pd_error *err) {
    const pd_ctx *ctx = j->ctx;
    pd_nn nn = pd_ctx_nn(ctx, &ctx->kt);
    if (j->taesd_dec) {
        pd_nchw_to_nhwc(j->x_in, latents, j->lc, j->lh, j->lw);
        return pd_taesd_decode(&ctx->taesd, &nn, j->x_in, j->lh, j->lw, j->image, &j->scratch, NULL, err);
    }
    /* Staged VAE: the UNet's arena goes before the VAE and its arena come. */
    pd_status st = j->split ? job_arena(j, j->dec_b, err) : PD_OK;
    if (st == PD_OK) st = job_vae(j, false, err);
    if (st != PD_OK) return st;
    pd_vae_z_from_latents(&j->vae->cfg, j->x_in, latents, j->lh, j->lw);
    tile_report tr = {j->p, now_s()};
    if (j->tiled)
        st = pd_vae_decode_tiled_cb(j->vae, &nn, j->x_in, j->lh, j->lw, j->image, &j->tiling, &j->scratch, on_tile,
                                    &tr, err);
    else st = pd_vae_decode(j->vae, &nn, j->x_in, j->lh, j->lw, j->image, &j->scratch, NULL, err);
    if (st == PD_OK) pd_ctx_log_memory(ctx, "decode", j->mem_peak);
    if (j->split) {   /* the next image denoises without the VAE */
        pd_ctx_vae_release(j->ctx, &j->vae_tmp);
        j->vae = NULL;
    }
    return st;
}

/* j->preview = TAESD decode of the sampler's current estimate of the clean latents
 * (the latents themselves before a sampler has one). Uses x_in and image, which are
 * free between steps. */
static pd_status make_preview(job *j, pd_error *err) {
    const pd_ctx *ctx = j->ctx;
    pd_nn nn = pd_ctx_nn(ctx, &ctx->kt);
    const float *x0 = pd_sampler_denoised(j->sampler);
    pd_nchw_to_nhwc(j->x_in, x0 ? x0 : j->latents, j->lc, j->lh, j->lw);
    pd_status st = pd_taesd_decode(&ctx->taesd, &nn, j->x_in, j->lh, j->lw, j->image, &j->scratch, NULL, err);
    if (st == PD_OK) pd_vae_image_to_u8(j->preview, j->image, (size_t)j->width * (size_t)j->height * 3);
    return st;
}

/* Denoises image number `image` (the UNet held) into final [n_lat] latents. */
static pd_status denoise_image(job *j, int image, int64_t seed, float *final, pd_timings *tm, pd_error *err) {
    const pd_gen_params *p = j->p;
    pd_rng rng;
    pd_rng_seed(&rng, (uint64_t)seed);
    double t0 = now_s();
    pd_status st = j->split ? job_arena(j, j->run_b, err) : PD_OK;
    if (st == PD_OK) st = init_latents(j, &rng, err);
    if (st != PD_OK) return st;
    pd_sampler_reset(j->sampler);
    const pd_sched_plan *plan = j->plan;
    int n_run = plan->n_evals - plan->start;
    if (!report(p, "denoise", -1, n_run, t0)) return pd_error_set(err, PD_ERR_CANCELLED, "cancelled");
    for (int i = plan->start; i < plan->n_evals; i++) {
        pd_sampler_model_input(j->sampler, i, j->latents, j->x_in);
        st = predict(j, plan->timesteps[i], &tm->unet_evals, err);
        if (st != PD_OK) return st;
        pd_sampler_step(j->sampler, i, j->latents, j->eps, &rng, j->latents);
        if (j->obs && j->obs->on_step)
            j->obs->on_step(j->obs->user, image, i - plan->start, j->latents, j->n_lat);
        if (p->preview) {
            st = make_preview(j, err);
            if (st != PD_OK) return st;
        }
        if (!report_image(p, "denoise", i - plan->start, n_run, t0, j->preview, j->width, j->height))
            return pd_error_set(err, PD_ERR_CANCELLED, "cancelled at step %d of %d", i - plan->start + 1, n_run);
    }
    if (j->obs && j->obs->on_final) j->obs->on_final(j->obs->user, image, j->latents, j->n_lat);
    memcpy(final, j->latents, j->n_lat * sizeof(float));
    tm->denoise_s += now_s() - t0;
    pd_ctx_log_memory(j->ctx, "denoising", j->mem_peak);
    return PD_OK;
}

static pd_status decode_image(job *j, const float *latents, int64_t seed, pd_image *out, pd_timings *tm,
                              pd_error *err) {
    const pd_gen_params *p = j->p;
    const double t1 = now_s();
    const int units = decode_units(j);
    if (!report(p, "decode", -1, units, t1)) return pd_error_set(err, PD_ERR_CANCELLED, "cancelled");
    pd_status st = decode(j, latents, err);
    if (st != PD_OK) return st;
    size_t px = (size_t)j->width * (size_t)j->height * 3;
    out->rgb = malloc(px);
    if (!out->rgb) return pd_error_set(err, PD_ERR_OOM, "out of memory for the image");
    pd_vae_image_to_u8(out->rgb, j->image, px);
    out->width = j->width;
    out->height = j->height;
    out->seed = seed;
    tm->decode_s += now_s() - t1;
    if (units == 1) report(p, "decode", 0, 1, t1);   /* tiles reported themselves */
    return PD_OK;
}

static void job_free(job *j) {
    pd_ctx_vae_release(j->ctx, &j->vae_tmp);
    pd_sampler_free(j->sampler);
    pd_sched_plan_free(j->plan);
    pd_arena_free(&j->scratch);
    free(j->latents);
    free(j->x_in);
    free(j->eps);
    free(j->batch_in);
    free(j->noise);
    free(j->init);
    free(j->context);
    free(j->image);
    free(j->text_embeds);
    free(j->time_ids_batch);
    free(j->preview);
    free(j->guidance);
    free(j->kept);
    pd_cond_free(j->cond);
    pd_cond_free(j->uncond);
}

pd_status pd_generate_observed(const pd_ctx *ctx, const pd_gen_params *params,
                               const pd_gen_observer *obs, pd_result **out, pd_error *err) {
    *out = NULL;
    if (!ctx || !params) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_generate: NULL argument");
    double t_start = now_s();
    job j;
    memset(&j, 0, sizeof j);
    j.ctx = ctx;
    j.p = params;
    j.obs = obs;
    pd_result *res = NULL;
    pd_status st = check_params(ctx, params, &j, err);
    if (st != PD_OK) return st;

    double t0 = now_s();
    if (!report(params, "text", -1, 1, t0)) return pd_error_set(err, PD_ERR_CANCELLED, "cancelled");
    st = encode_prompts(&j, t0, err);
    if (st != PD_OK) goto done;
    double t_text = now_s() - t0;

    st = pd_sched_plan_new(&j.sched, j.kind, j.schedule, params->steps,
                           params->init_image ? pd_sched_strength_from_float(params->strength) : 1.0,
                           &j.plan, err);
    if (st == PD_OK) st = pd_sampler_new(j.plan, j.n_lat, &j.sampler, err);
    if (st == PD_OK) st = alloc_job(&j, err);
    if (st != PD_OK) goto done;

    res = calloc(1, sizeof *res);
    if (res) res->images = calloc((size_t)params->batch_count, sizeof *res->images);
    if (!res || !res->images) {
        st = pd_error_set(err, PD_ERR_OOM, "out of memory");
        goto done;
    }
    res->timings.text_s = t_text;
    int64_t seed = params->seed >= 0 ? params->seed : random_seed();
    for (int b0 = 0; b0 < params->batch_count; b0 += j.keep) {
        const int n = PD_MIN(j.keep, params->batch_count - b0);
        double load_s = 0;
        st = pd_ctx_unet_acquire(ctx, &j.unet, &load_s, err);
        if (st != PD_OK) goto done;
        if (load_s > 0) pd_ctx_log_memory(ctx, "UNet load", j.mem_peak);
        res->timings.unet_load_s += load_s;
        for (int i = 0; i < n && st == PD_OK; i++)
            st = denoise_image(&j, b0 + i, seed + b0 + i, j.kept + (size_t)i * j.n_lat, &res->timings, err);
        pd_ctx_unet_release(ctx, j.release_unet);
        j.unet = NULL;
        if (st != PD_OK) goto done;
        if (j.release_unet) pd_ctx_log_memory(ctx, "UNet release", j.mem_peak);
        for (int i = 0; i < n; i++) {
            st = decode_image(&j, j.kept + (size_t)i * j.n_lat, seed + b0 + i, &res->images[b0 + i], &res->timings, err);
            if (st != PD_OK) goto done;
            res->n_images = b0 + i + 1;
        }
    }
    res->timings.total_s = now_s() - t_start;
    *out = res;
    res = NULL;
done:
    if (res) {
        for (int b = 0; b < params->batch_count; b++) free(res->images ? res->images[b].rgb : NULL);
        res->n_images = 0;
    }
    pd_result_free(res);
    job_free(&j);
    return st;
}

pd_status pd_generate(const pd_ctx *ctx, const pd_gen_params *params, pd_result **out,
                      pd_error *err) {
    return pd_generate_observed(ctx, params, NULL, out, err);
}
