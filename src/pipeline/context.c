/*
 * context.c - pd_ctx_load / pd_ctx_free: open the checkpoint, pick kernels, start the
 * thread pool, find the vocabulary and load the text encoders.
 */
#include "pipeline/context.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"

pd_ctx_params pd_ctx_default_params(void) {
    pd_ctx_params p;
    memset(&p, 0, sizeof p);
    p.n_threads = 0;
    p.isa = PD_ISA_AUTO;
    p.log_level = PD_LOG_INFO;
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool report(const pd_ctx_params *p, int step, int n_steps, double t0) {
    if (!p->progress) return true;
    pd_progress pr = {.stage = "load", .step = step, .n_steps = n_steps, .elapsed_s = now_s() - t0};
    return p->progress(&pr, p->progress_user);
}

static pd_status find_vocab(pd_ctx *ctx, const char *model_path, const char *vocab_path,
                            pd_error *err) {
    if (vocab_path) {
        snprintf(ctx->vocab_path, sizeof ctx->vocab_path, "%s", vocab_path);
    } else {
        char tried[512] = "";
        if (!pd_tokenizer_locate(model_path, ctx->vocab_path, sizeof ctx->vocab_path, tried,
                                 sizeof tried))
            return pd_error_set(err, PD_ERR_MISSING,
                                "no CLIP vocabulary beside '%s': pass --vocab with a tokenizer/ "
                                "folder (vocab.json + merges.txt) or bpe_simple_vocab_16e6.txt.gz "
                                "(looked for: %s)",
                                model_path, tried[0] ? tried : "tokenizer/ beside the model");
    }
    pd_status st = pd_tokenizer_load(ctx->vocab_path, &ctx->tok, err);
    if (st != PD_OK) pd_error_prefix(err, "vocabulary");
    return st;
}

pd_status pd_ctx_load(const char *path, const pd_ctx_params *params, pd_ctx **out,
                      pd_error *err) {
    pd_ctx_params defaults = pd_ctx_default_params();
    const pd_ctx_params *p = params ? params : &defaults;
    *out = NULL;
    double t0 = now_s();
    pd_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return pd_error_set(err, PD_ERR_OOM, "out of memory");
    ctx->log = (pd_logger){p->log, p->log_user, p->log_level};

    pd_status st = pd_model_open(path, p->config_path, &ctx->src, err);
    if (st != PD_OK) goto fail;
    ctx->family = ctx->src->family;
    if (ctx->family == PD_FAMILY_UNKNOWN) {
        st = pd_error_set(err, PD_ERR_UNSUPPORTED,
                          "'%s': not a recognised Stable Diffusion model (no SD1.x/SD2.x/SDXL "
                          "text encoder or UNet keys found)", path);
        goto fail;
    }
    const pd_prec prec = p->precision == PD_PRECISION_FP32 ? PD_PREC_FP32
                         : p->precision == PD_PRECISION_BF16 ? PD_PREC_BF16 : PD_PREC_AUTO;
    pd_isa isa = pd_kernels_init_prec(&ctx->kt, p->isa, prec);
    pd_kernels_init_prec(&ctx->kt_exact, p->isa, PD_PREC_FP32);
    const bool bf16 = ctx->kt.prec == PD_PREC_BF16;
    pd_log(&ctx->log, PD_LOG_INFO, "model: %s, %s; kernels: %s, %s (%s)", pd_family_name(ctx->family),
           pd_layout_name(ctx->src->layout), pd_isa_name(isa), bf16 ? "bf16" : "fp32", ctx->kt.gemm_name);

    ctx->pool = pd_pool_new(p->n_threads > 0 ? p->n_threads : pd_cpu_count());
    if (!ctx->pool) {
        st = pd_error_set(err, PD_ERR_OOM, "cannot start %d threads", p->n_threads);
        goto fail;
    }

    ctx->has_text1 = ctx->src->comp[PD_COMP_TEXT1].present;
    ctx->has_text2 = ctx->src->comp[PD_COMP_TEXT2].present;
    if (ctx->has_text1 || ctx->has_text2) {
        st = find_vocab(ctx, path, p->vocab_path, err);
        if (st != PD_OK) goto fail;
    }
    const pd_model_src *unet_from = ctx->src;
    if (p->unet_path) {
        st = pd_model_open(p->unet_path, NULL, &ctx->unet_src, err);
        if (st != PD_OK) goto fail;
        if (!ctx->unet_src->comp[PD_COMP_UNET].present) {
            st = pd_error_set(err, PD_ERR_MISSING, "'%s' holds no UNet", p->unet_path);
            goto fail;
        }
        unet_from = ctx->unet_src;
    }
    ctx->text_only = p->text_only;
    ctx->has_unet = !p->text_only && unet_from->comp[PD_COMP_UNET].present;
    ctx->has_vae = !p->text_only && ctx->src->comp[PD_COMP_VAE].present;
    ctx->sched = pd_sched_config_default(ctx->family);
    if (ctx->src->scheduler) {
        st = pd_sched_config_from_json(&ctx->sched, ctx->src->scheduler, err);
        if (st != PD_OK) {
            pd_error_prefix(err, "scheduler config");
            goto fail;
        }
    }
    ctx->has_taesd = !p->text_only && p->taesd_path;
    int n_steps = (int)ctx->has_text1 + (int)ctx->has_text2 + (int)ctx->has_unet + (int)ctx->has_vae +
                  (int)ctx->has_taesd;
    int step = 0;
    if (!report(p, -1, n_steps, t0)) goto cancelled;
    if (ctx->has_text1) {
        st = pd_clip_load(&ctx->text1, ctx->src, PD_COMP_TEXT1, &ctx->kt_exact, err);
        if (st != PD_OK) goto fail;
        if (!report(p, step++, n_steps, t0)) goto cancelled;
    }
    if (ctx->has_text2) {
        st = pd_clip_load(&ctx->text2, ctx->src, PD_COMP_TEXT2, &ctx->kt_exact, err);
        if (st != PD_OK) goto fail;
        if (!report(p, step++, n_steps, t0)) goto cancelled;
    }
    if (ctx->has_unet) {
        st = pd_unet_load(&ctx->unet, unet_from, &ctx->kt, err);
        if (st != PD_OK) goto fail;
        if (!report(p, step++, n_steps, t0)) goto cancelled;
    }
    if (ctx->has_vae) {
        st = pd_vae_load(&ctx->vae, ctx->src, &ctx->kt, err);
        if (st != PD_OK) goto fail;
        if (!report(p, step++, n_steps, t0)) goto cancelled;
    }
    if (ctx->has_taesd) {
        st = pd_taesd_load(&ctx->taesd, p->taesd_path, &ctx->kt, err);
        if (st != PD_OK) goto fail;
        if (ctx->has_unet && ctx->taesd.latent_channels != ctx->unet.cfg.arch.out_channels) {
            st = pd_error_set(err, PD_ERR_SHAPE, "TAESD '%s' has %d latent channels but the UNet makes %d",
                              p->taesd_path, ctx->taesd.latent_channels, ctx->unet.cfg.arch.out_channels);
            goto fail;
        }
        if (!report(p, step++, n_steps, t0)) goto cancelled;
    }
    pd_log(&ctx->log, PD_LOG_INFO, "loaded in %.2f s", now_s() - t0);
    *out = ctx;
    return PD_OK;
cancelled:
    st = pd_error_set(err, PD_ERR_CANCELLED, "loading '%s' cancelled", path);
fail:
    pd_ctx_free(ctx);
    return st;
}

void pd_ctx_free(pd_ctx *ctx) {
    if (!ctx) return;
    pd_clip_free(&ctx->text1);
    pd_clip_free(&ctx->text2);
    pd_unet_free(&ctx->unet);
    pd_vae_free(&ctx->vae);
    pd_taesd_free(&ctx->taesd);
    pd_tokenizer_free(ctx->tok);
    pd_pool_free(ctx->pool);
    pd_model_close(ctx->src);
    pd_model_close(ctx->unet_src);
    free(ctx);
}

pd_family pd_ctx_family(const pd_ctx *ctx) { return ctx ? ctx->family : PD_FAMILY_UNKNOWN; }

pd_isa pd_ctx_isa(const pd_ctx *ctx) { return ctx ? ctx->kt.isa : PD_ISA_AUTO; }

pd_precision pd_ctx_precision(const pd_ctx *ctx) {
    if (!ctx) return PD_PRECISION_AUTO;
    return ctx->kt.prec == PD_PREC_BF16 ? PD_PRECISION_BF16 : PD_PRECISION_FP32;
}

pd_status pd_tokenize(const pd_ctx *ctx, const char *text, int32_t *ids, int max_ids,
                      int *n_ids, pd_error *err) {
    *n_ids = 0;
    if (!ctx || !text) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_tokenize: NULL argument");
    if (!ctx->tok) return pd_error_set(err, PD_ERR_MISSING, "this model has no text encoder/vocabulary");
    pd_arena arena;
    if (pd_arena_init(&arena, 0) != 0) return pd_error_set(err, PD_ERR_OOM, "out of memory");
    int32_t *tmp = NULL;
    int n = 0;
    pd_status st = pd_tokenizer_encode(ctx->tok, text, strlen(text), &arena, &tmp, &n, err);
    if (st == PD_OK) {
        for (int i = 0; i < n && i < max_ids; i++) ids[i] = tmp[i];
        *n_ids = n;
    }
    pd_arena_free(&arena);
    return st;
}
