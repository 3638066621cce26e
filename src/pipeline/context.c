/*
 * context.c - pd_ctx_load / pd_ctx_free: open the checkpoint, pick kernels, start the
 * thread pool, find the vocabulary and load the text encoders.
 */
#include "pipeline/context.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "base/cpu.h"
#include "base/sysmem.h"
#include "kernels/quant/quant.h"

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

static const char *const WEIGHT_TYPE_NAMES[] = {"auto", "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"};

const char *pd_weight_type_name(pd_weight_type t) {
    return (unsigned)t < PD_COUNT(WEIGHT_TYPE_NAMES) ? WEIGHT_TYPE_NAMES[t] : "?";
}

bool pd_weight_type_from_name(const char *s, pd_weight_type *out) {
    for (size_t i = 0; s && i < PD_COUNT(WEIGHT_TYPE_NAMES); i++)
        if (strcmp(s, WEIGHT_TYPE_NAMES[i]) == 0) {
            *out = (pd_weight_type)i;
            return true;
        }
    return false;
}

pd_nn pd_ctx_nn(const pd_ctx *ctx, const pd_kernels *kt) {
    return (pd_nn){.kt = kt, .pool = ctx->pool, .wscratch = ctx->wscratch, .wscratch_bytes = ctx->wscratch_bytes};
}

/* The longest weight row (k of a Linear, cin*kh*kw of a conv) among m's tensors. */
static int64_t max_row(const pd_model_src *m) {
    int64_t k = 0;
    for (int f = 0; m && f < m->n_files; f++)
        for (int i = 0; i < m->files[f]->n_tensors; i++) {
            const pd_st_tensor *t = &m->files[f]->tensors[i];
            if (t->ndim >= 2 && t->shape[0] > 0 && t->numel / t->shape[0] > k) k = t->numel / t->shape[0];
        }
    return k;
}

/* The quantized type most of m's stored bytes use (GGUF files), else INVALID. */
static pd_dtype stored_quant(const pd_model_src *m) {
    size_t bytes[PD_DTYPE_COUNT] = {0};
    for (int f = 0; m && f < m->n_files; f++)
        for (int i = 0; i < m->files[f]->n_tensors; i++) {
            const pd_st_tensor *t = &m->files[f]->tensors[i];
            if (pd_dtype_is_quant(t->dtype)) bytes[t->dtype] += t->nbytes;
        }
    pd_dtype best = PD_DTYPE_INVALID;
    for (int d = 0; d < PD_DTYPE_COUNT; d++)
        if (bytes[d] && (best == PD_DTYPE_INVALID || bytes[d] > bytes[best])) best = (pd_dtype)d;
    return best;
}

/* Whether m stores any weight in F16 (rows the fp32 tables keep as they are). */
static bool stored_f16(const pd_model_src *m) {
    for (int f = 0; m && f < m->n_files; f++)
        for (int i = 0; i < m->files[f]->n_tensors; i++)
            if (m->files[f]->tensors[i].dtype == PD_DTYPE_F16 && m->files[f]->tensors[i].ndim >= 2) return true;
    return false;
}

void pd_ctx_log_memory(const pd_ctx *ctx, const char *stage, size_t estimate) {
    char rss[32], peak[32], est[32];
    pd_mem_str(rss, sizeof rss, pd_rss_bytes());
    pd_mem_str(peak, sizeof peak, pd_peak_rss_bytes());
    pd_mem_str(est, sizeof est, estimate);
    pd_log(&ctx->log, PD_LOG_INFO, "memory after %s: resident %s, peak so far %s (plan: %s)", stage, rss,
           peak, est);
}

/* The memory plan at the family's native size (the run re-checks at its own size). */
static pd_status plan_memory(pd_ctx *ctx, const pd_model_src *unet_from, const pd_ctx_params *p,
                             pd_error *err) {
    pd_mem_plan *m = &ctx->mem;
    m->w_text = pd_mem_weights(ctx->src, PD_COMP_TEXT1, &ctx->kt_exact) +
                pd_mem_weights(ctx->src, PD_COMP_TEXT2, &ctx->kt_exact);
    m->w_unet = ctx->has_unet ? pd_mem_weights(unet_from, PD_COMP_UNET, &ctx->kt) : 0;
    m->w_vae = ctx->has_vae ? pd_mem_weights(ctx->src, PD_COMP_VAE, &ctx->kt) : 0;
    m->w_vae_dec = ctx->has_vae ? pd_mem_weights_part(ctx->src, PD_COMP_VAE, &ctx->kt, true) : 0;
    m->w_taesd = ctx->has_taesd ? (size_t)16 << 20 : 0;   /* ~2.5 M parameters each way */
    /* Activations at the native size (the run re-plans at its own): the text encoders on
     * one 77-token chunk (a few MiB; 16 MiB covers bigG), the UNet with CFG (batch 2),
     * the decode (tiled as pd_vae_tiling_auto decides), and the run's image buffers. */
    const int side = ctx->family == PD_FAMILY_SDXL ? 1024 : ctx->family == PD_FAMILY_SD2 ? 768 : 512;
    const int lat = side / 8;
    const size_t bufs = (size_t)side * side * 3 * sizeof(float) + ((size_t)4 << 20);
    m->a_text = (size_t)16 << 20;
    m->a_unet = (ctx->has_unet ? pd_unet_scratch_bytes(&ctx->unet_cfg, 2, lat, lat, PD_CLIP_CONTEXT) : 0) + bufs;
    size_t tiled[4];
    int n_tiled = 0;
    if (ctx->has_taesd) {
        m->a_dec = pd_taesd_decode_scratch_bytes(&ctx->taesd, lat, lat);
    } else if (ctx->has_vae) {
        const pd_vae_config *vc = &ctx->vae.cfg;
        pd_vae_tiling t[4] = {pd_vae_tiling_fit(vc, lat, lat), pd_vae_tiling_split(vc, lat, lat, 2, 1),
                              pd_vae_tiling_split(vc, lat, lat, 2, 2), pd_vae_tiling_split(vc, lat, lat, 3, 3)};
        m->a_dec = pd_vae_tiling_auto(vc, lat, lat) ? pd_vae_decode_tiled_scratch_bytes(vc, lat, lat, &t[0])
                                                    : pd_vae_decode_scratch_bytes(vc, lat, lat);
        for (int i = 0; i < 4; i++) tiled[n_tiled++] = pd_vae_decode_tiled_scratch_bytes(vc, lat, lat, &t[i]) + bufs;
    }
    m->a_dec += bufs;
    m->stage_text = m->stage_vae = m->stage_unet = p->low_memory;
    pd_mem_plan_peaks(m);
    const size_t budget = (size_t)p->max_memory;
    if (budget == 0) return PD_OK;
    const bool fits = pd_mem_plan_fit(m, budget, tiled, n_tiled);
    char b[32], wu[32], wt[32], wv[32], pk[32];
    pd_mem_str(b, sizeof b, budget);
    pd_mem_str(wu, sizeof wu, m->w_unet);
    pd_mem_str(wt, sizeof wt, m->w_text);
    pd_mem_str(wv, sizeof wv, m->w_vae);
    pd_mem_str(pk, sizeof pk, pd_mem_plan_peak(m));
    /* Weights alone over the budget: nothing can run. Activations depend on the run (its
     * size, CFG batch, tiling): each run re-plans and refuses what cannot fit. */
    const size_t floor = PD_MEM_OVERHEAD + m->w_unet + m->w_taesd +
                         PD_MAX(m->w_text, m->w_vae_dec ? m->w_vae_dec : m->w_vae);
    if (floor > budget) {
        pd_mem_str(pk, sizeof pk, floor);
        return pd_error_set(err, PD_ERR_OOM,
                            "--max-memory %s is too small: the weights alone need %s (UNet %s, text encoders %s, "
                            "VAE %s, each loaded per use, + %.0f MiB overhead); use a smaller --weight-type "
                            "(q8_0, q4_0) or a larger budget",
                            b, pk, wu, wt, wv, (double)PD_MEM_OVERHEAD / (1 << 20));
    }
    if (!fits)
        pd_log(&ctx->log, PD_LOG_WARN,
               "--max-memory %s: a %dx%d CFG run is estimated at %s; smaller or CFG-1 runs may fit (each run "
               "checks its own)", b, side, side, pk);
    pd_log(&ctx->log, PD_LOG_INFO,
           "memory plan for %s: weights UNet %s (%s), text %s (%s), VAE %s (%s); estimated peak %s at %dx%d",
           b, wu, m->stage_unet ? "released to decode" : "resident", wt,
           m->stage_text ? "loaded per prompt" : "resident", wv, m->stage_vae ? "loaded per decode" : "resident",
           pk, side, side);
    return PD_OK;
}

pd_status pd_ctx_text_acquire(const pd_ctx *ctx, pd_clip tmp[2], const pd_clip **e1,
                              const pd_clip **e2, pd_error *err) {
    memset(tmp, 0, 2 * sizeof *tmp);
    *e1 = ctx->has_text1 ? &ctx->text1 : NULL;
    *e2 = ctx->has_text2 ? &ctx->text2 : NULL;
    if (!ctx->mem.stage_text) return PD_OK;
    pd_status st = PD_OK;
    if (ctx->has_text1) {
        st = pd_clip_load(&tmp[0], ctx->src, PD_COMP_TEXT1, &ctx->kt_exact, ctx->pool, err);
        *e1 = &tmp[0];
    }
    if (st == PD_OK && ctx->has_text2) {
        st = pd_clip_load(&tmp[1], ctx->src, PD_COMP_TEXT2, &ctx->kt_exact, ctx->pool, err);
        *e2 = &tmp[1];
    }
    if (st != PD_OK) pd_ctx_text_release(ctx, tmp);
    return st;
}

/* Gives freed heap memory back to the OS. glibc keeps freed blocks below its (adaptive,
 * up to 32 MiB) mmap threshold in the heap: a staged text encoder's few-MiB weight
 * blocks would otherwise stay resident after release. */
static void trim_heap(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

void pd_ctx_text_release(const pd_ctx *ctx, pd_clip tmp[2]) {
    const bool had = tmp[0].layers || tmp[1].layers;
    pd_clip_free(&tmp[0]);
    pd_clip_free(&tmp[1]);
    if (!had) return;
    pd_model_release_component(ctx->src, PD_COMP_TEXT1);   /* rows used in place from a GGUF */
    pd_model_release_component(ctx->src, PD_COMP_TEXT2);
    trim_heap();
}

pd_status pd_ctx_vae_acquire(const pd_ctx *ctx, pd_vae *tmp, bool encoder, const pd_vae **vae, pd_error *err) {
    memset(tmp, 0, sizeof *tmp);
    *vae = &ctx->vae;
    if (!ctx->mem.stage_vae || !ctx->has_vae) return PD_OK;
    pd_status st = pd_vae_load_parts(tmp, ctx->src, &ctx->kt, encoder, !encoder, ctx->pool, err);
    *vae = &tmp[0];
    return st;
}

pd_status pd_ctx_unet_acquire(const pd_ctx *ctx, const pd_unet **unet, double *load_s, pd_error *err) {
    pd_ctx_unet *u = ctx->unet;
    *unet = NULL;
    *load_s = 0;
    if (!u) return pd_error_set(err, PD_ERR_MISSING, "'%s' has no UNet", ctx->src->path);
    pd_status st = PD_OK;
    pthread_mutex_lock(&u->lock);
    if (!u->w) {
        /* Released by an earlier run: load again (other runs wait on the lock). */
        const double t0 = now_s();
        pd_unet *w = malloc(sizeof *w);
        if (!w) st = pd_error_set(err, PD_ERR_OOM, "out of memory");
        else st = pd_unet_load(w, u->from, &ctx->kt, ctx->pool, err);
        if (st == PD_OK) u->w = w;
        else free(w);
        *load_s = now_s() - t0;
        if (st == PD_OK) pd_log(&ctx->log, PD_LOG_INFO, "UNet loaded again in %.2f s", *load_s);
    }
    if (st == PD_OK) {
        u->users++;
        *unet = u->w;
    }
    pthread_mutex_unlock(&u->lock);
    return st;
}

void pd_ctx_unet_release(const pd_ctx *ctx, bool drop) {
    pd_ctx_unet *u = ctx->unet;
    pd_unet *w = NULL;
    pthread_mutex_lock(&u->lock);
    PD_ASSERT(u->users > 0);
    if (--u->users == 0 && drop) {
        w = u->w;
        u->w = NULL;
    }
    pthread_mutex_unlock(&u->lock);
    if (w) {
        pd_unet_free(w);
        free(w);
        pd_model_release_component(u->from, PD_COMP_UNET);   /* rows used in place from a GGUF */
        trim_heap();
    }
}

static void unet_slot_free(pd_ctx_unet *u) {
    if (!u) return;
    PD_ASSERT(u->users == 0);
    pd_unet_free(u->w);
    free(u->w);
    pthread_mutex_destroy(&u->lock);
    free(u);
}

void pd_ctx_vae_release(const pd_ctx *ctx, pd_vae *tmp) {
    const bool had = tmp->dec.conv_in.w.n > 0 || tmp->has_encoder;
    pd_vae_free(tmp);
    if (!had) return;
    pd_model_release_component(ctx->src, PD_COMP_VAE);
    trim_heap();
}

/* Staged components keep their configs (what planning and the encode/decode set-up
 * read) and drop their weights: loading them once validated the model up front. */
static void drop_clip_weights(const pd_ctx *ctx, pd_clip *c, pd_component comp) {
    pd_clip_config cfg = c->cfg;
    pd_clip_free(c);
    c->cfg = cfg;
    pd_model_release_component(ctx->src, comp);
    trim_heap();
}

static void drop_vae_weights(const pd_ctx *ctx, pd_vae *v) {
    pd_vae_config cfg = v->cfg;
    bool enc = v->has_encoder;
    pd_vae_free(v);
    v->cfg = cfg;
    v->has_encoder = enc;
    pd_model_release_component(ctx->src, PD_COMP_VAE);
    trim_heap();
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
    if ((unsigned)p->weight_type > PD_WEIGHT_Q4_1) {
        st = pd_error_set(err, PD_ERR_INVALID_ARG, "weight type %d is not a pd_weight_type", (int)p->weight_type);
        goto fail;
    }
    pd_prec want_prec = prec;
    if (prec == PD_PREC_AUTO && p->weight_type == PD_WEIGHT_BF16) want_prec = PD_PREC_BF16;
    if (prec == PD_PREC_AUTO && p->weight_type == PD_WEIGHT_F32) want_prec = PD_PREC_FP32;
    pd_isa isa = pd_kernels_init_prec(&ctx->kt, p->isa, want_prec);
    pd_kernels_init_prec(&ctx->kt_exact, p->isa, PD_PREC_FP32);
    {
        const pd_dtype wq = p->weight_type == PD_WEIGHT_Q8_0   ? PD_DTYPE_Q8_0
                            : p->weight_type == PD_WEIGHT_Q4_0 ? PD_DTYPE_Q4_0
                            : p->weight_type == PD_WEIGHT_Q4_1 ? PD_DTYPE_Q4_1
                            : p->weight_type == PD_WEIGHT_AUTO ? stored_quant(ctx->src)
                                                               : PD_DTYPE_INVALID;
        ctx->kt.wquant = ctx->kt_exact.wquant = wq;
        /* fp32 tables keep F16-stored Linear weights as F16 rows (exact, half the memory). */
        ctx->kt.half_rows = ctx->kt_exact.half_rows = true;
    }
    const bool bf16 = ctx->kt.prec == PD_PREC_BF16;
    pd_log(&ctx->log, PD_LOG_INFO, "model: %s, %s; kernels: %s, %s (%s); weights: %s",
           pd_family_name(ctx->family), pd_layout_name(ctx->src->layout), pd_isa_name(isa), bf16 ? "bf16" : "fp32",
           ctx->kt.gemm_name, pd_dtype_is_quant(ctx->kt.wquant) ? pd_dtype_name(ctx->kt.wquant) : (bf16 ? "bf16" : "fp32"));

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
    if (p->max_memory < 0) {
        st = pd_error_set(err, PD_ERR_INVALID_ARG, "max_memory %lld is negative", (long long)p->max_memory);
        goto fail;
    }
    ctx->max_memory = p->max_memory;
    if (p->max_memory > 0 && ctx->has_unet) {
        /* Fail before loading anything when the UNet alone cannot fit. */
        const size_t wu = pd_mem_weights(unet_from, PD_COMP_UNET, &ctx->kt);
        if (PD_MEM_OVERHEAD + wu > (size_t)p->max_memory) {
            char b[32], w[32];
            pd_mem_str(b, sizeof b, (size_t)p->max_memory);
            pd_mem_str(w, sizeof w, wu);
            st = pd_error_set(err, PD_ERR_OOM,
                              "--max-memory %s is too small: the UNet's weights alone need %s (+ %.0f MiB of "
                              "overhead); use a smaller --weight-type (q8_0, q4_0) or a larger budget",
                              b, w, (double)PD_MEM_OVERHEAD / (1 << 20));
            goto fail;
        }
    }

    if (pd_dtype_is_quant(ctx->kt.wquant) || stored_quant(ctx->src) != PD_DTYPE_INVALID ||
        stored_quant(ctx->unet_src) != PD_DTYPE_INVALID || stored_f16(ctx->src) || stored_f16(ctx->unet_src)) {
        /* Quantized weights and F16 rows run through per-thread panels of the longest row. */
        int64_t k = PD_MAX(max_row(ctx->src), max_row(ctx->unet_src));
        if (k > (1 << 20)) {
            st = pd_error_set(err, PD_ERR_UNSUPPORTED, "'%s': a weight row of %lld elements", path, (long long)k);
            goto fail;
        }
        size_t per = PD_MAX(pd_q_scratch_bytes(&ctx->kt, (int)k), pd_q_scratch_bytes(&ctx->kt_exact, (int)k));
        per = PD_MAX(per, (size_t)PD_Q_CHUNK_BYTES) + 64;
        ctx->wscratch_bytes = per * (size_t)pd_pool_size(ctx->pool);
        ctx->wscratch = pd_aligned_alloc(ctx->wscratch_bytes);
        if (!ctx->wscratch) {
            st = pd_error_set(err, PD_ERR_OOM, "out of memory for %zu bytes of dequantization panels", ctx->wscratch_bytes);
            goto fail;
        }
    }
    int n_steps = (int)ctx->has_text1 + (int)ctx->has_text2 + (int)ctx->has_unet + (int)ctx->has_vae +
                  (int)ctx->has_taesd;
    int step = 0;
    if (!report(p, -1, n_steps, t0)) goto cancelled;
    if (ctx->has_unet) {
        pd_ctx_unet *u = calloc(1, sizeof *u);
        if (u && pthread_mutex_init(&u->lock, NULL) != 0) {
            free(u);
            u = NULL;
        }
        if (u) u->w = malloc(sizeof *u->w);
        if (!u || !u->w) {
            if (u) pthread_mutex_destroy(&u->lock);
            free(u);
            st = pd_error_set(err, PD_ERR_OOM, "out of memory");
            goto fail;
        }
        u->from = unet_from;
        ctx->unet = u;
        st = pd_unet_load(u->w, unet_from, &ctx->kt, ctx->pool, err);
        if (st != PD_OK) {
            free(u->w);   /* pd_unet_load left it zeroed */
            u->w = NULL;
            goto fail;
        }
        ctx->unet_cfg = u->w->cfg;
        if (!report(p, step++, n_steps, t0)) goto cancelled;
    }
    if (ctx->has_vae) {
        st = pd_vae_load(&ctx->vae, ctx->src, &ctx->kt, ctx->pool, err);
        if (st != PD_OK) goto fail;
        if (!report(p, step++, n_steps, t0)) goto cancelled;
    }
    if (ctx->has_taesd) {
        /* TAESD (2.5 M parameters each way) is never quantized: nothing to gain. */
        pd_kernels kt_taesd = ctx->kt;
        kt_taesd.wquant = PD_DTYPE_INVALID;
        st = pd_taesd_load(&ctx->taesd, p->taesd_path, &kt_taesd, err);
        if (st != PD_OK) goto fail;
        if (ctx->has_unet && ctx->taesd.latent_channels != ctx->unet_cfg.arch.out_channels) {
            st = pd_error_set(err, PD_ERR_SHAPE, "TAESD '%s' has %d latent channels but the UNet makes %d",
                              p->taesd_path, ctx->taesd.latent_channels, ctx->unet_cfg.arch.out_channels);
            goto fail;
        }
        if (!report(p, step++, n_steps, t0)) goto cancelled;
    }
    /* The plan needs the UNet's and the VAE's configs; staged components then drop their
     * weights (loading them validated the model). */
    st = plan_memory(ctx, unet_from, p, err);
    if (st != PD_OK) goto fail;
    if (ctx->mem.stage_vae) drop_vae_weights(ctx, &ctx->vae);
    if (ctx->has_text1) {
        st = pd_clip_load(&ctx->text1, ctx->src, PD_COMP_TEXT1, &ctx->kt_exact, ctx->pool, err);
        if (st != PD_OK) goto fail;
        if (ctx->mem.stage_text) drop_clip_weights(ctx, &ctx->text1, PD_COMP_TEXT1);
        if (!report(p, step++, n_steps, t0)) goto cancelled;
    }
    if (ctx->has_text2) {
        st = pd_clip_load(&ctx->text2, ctx->src, PD_COMP_TEXT2, &ctx->kt_exact, ctx->pool, err);
        if (st != PD_OK) goto fail;
        if (ctx->mem.stage_text) drop_clip_weights(ctx, &ctx->text2, PD_COMP_TEXT2);
        if (!report(p, step++, n_steps, t0)) goto cancelled;
    }
    pd_log(&ctx->log, PD_LOG_INFO, "loaded in %.2f s", now_s() - t0);
    pd_ctx_log_memory(ctx, "load", PD_MEM_OVERHEAD + ctx->mem.w_unet + ctx->mem.w_taesd +
                                       (ctx->mem.stage_text ? 0 : ctx->mem.w_text) +
                                       (ctx->mem.stage_vae ? 0 : ctx->mem.w_vae));
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
    unet_slot_free(ctx->unet);
    pd_vae_free(&ctx->vae);
    pd_taesd_free(&ctx->taesd);
    pd_tokenizer_free(ctx->tok);
    pd_pool_free(ctx->pool);
    pd_aligned_free(ctx->wscratch);
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
