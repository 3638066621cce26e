/*
 * unet.c - the UNet forward pass (fp32, NHWC inside, NCHW at the API boundary) and its
 * scratch sizing. Loading and configuration are in unet_load.c.
 *
 * Forward (diffusers UNet2DConditionModel.forward; shapes for one batch of B images):
 *   t_emb = sinusoid(t)                          // [B, tproj]   (+ cond_proj(w_emb), LCM)
 *   emb   = linear_2(silu(linear_1(t_emb)))      // [B, temb]
 *   emb  += add_2(silu(add_1([text_embeds, sinusoid(time_ids)])))   (SDXL)
 *   h = conv_in(sample)                           -> skip 0
 *   down level l: L x (h = resnet(h, emb) [h = transformer(h, ctx)]) -> skip; downsample -> skip
 *   mid: resnet, transformer, resnet
 *   up block i: (L+1) x (h = resnet(cat[h, skip.pop()]) [transformer]); upsample to the
 *               size of the next skip (nearest) + conv
 *   eps = conv_out(silu(GroupNorm(h)))
 * Buffers (one arena plan, pd_unet_scratch_bytes): the NHWC input, one buffer per skip
 * (written in place by the block that produces it, read by the up pass), two ping-pong
 * activation buffers, one concat buffer (also the nearest-resize buffer), the embedding
 * vectors, and the largest block temporary (resnet, transformer, fused norm+conv or
 * fused upsample+conv; they run one at a time and rewind the arena).
 * Peak scratch (batch 2 = CFG, 77 context tokens; pd_unet_scratch_bytes, reached exactly
 * by the forward): SD1.5 512x512 (64x64 latents) 176 MiB; SDXL 1024x1024 (128x128
 * latents) 586 MiB. The largest parts at SDXL size: the skips (204 MB), the two
 * ping-pong buffers (2 x 84 MB: the level-1 upsampler's output), the concat buffer
 * (126 MB) and the level-1 transformer's temporaries (116 MB).
 *
 * Traps:
 *   - Latent sizes that do not halve evenly (e.g. 12 -> 6 -> 3 -> 2): the stride-2 conv
 *     rounds up and diffusers then upsamples to the *skip's* size with nearest
 *     interpolation (torch: src = floor(dst * in / out)), not to twice the size.
 *   - Up-block concatenation order is [h, skip] (h first).
 *   - The timestep sinusoid is computed in fp32 exactly as diffusers does
 *     (exponent = -ln(10000) * k / (half - shift), then exp, then t * e), cos first.
 *   - SDXL time ids go through their own sinusoid (addition_time_embed_dim each, flattened
 *     per item, after the pooled text embedding).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "models/unet.h"

#define MAX_SKIPS (1 + PD_UNET_MAX_LEVELS * (PD_UNET_MAX_LAYERS + 1))
#define MAX_LATENT 4096          /* latent side (32768 px): far beyond any SD model */
#define MAX_CONTEXT (77 * 64)

/* ---- embeddings ------------------------------------------------------------------ */

void pd_unet_timestep_embedding(float *out, float t, int dim, bool flip_sin_to_cos,
                                float freq_shift) {
    const int half = dim / 2;
    const float neg_log = (float)-9.210340371976184;   /* -ln(10000), as torch's fp32 scalar */
    const float denom = (float)half - freq_shift;
    for (int k = 0; k < half; k++) {
        float e = expf(neg_log * (float)k / denom);
        float a = t * e;
        out[flip_sin_to_cos ? k : half + k] = cosf(a);
        out[flip_sin_to_cos ? half + k : k] = sinf(a);
    }
    if (dim % 2) out[dim - 1] = 0.0f;
}

void pd_unet_guidance_embedding(float *out, float w, int dim) {
    const int half = dim / 2;
    const float x = w * 1000.0f;
    const float step = logf(10000.0f) / (float)(half - 1);
    for (int k = 0; k < half; k++) {
        float a = x * expf((float)k * -step);
        out[k] = sinf(a);
        out[half + k] = cosf(a);
    }
    if (dim % 2) out[dim - 1] = 0.0f;
}

/* ---- the memory plan ---------------------------------------------------------------- */

typedef struct plan {
    int lh[PD_UNET_MAX_LEVELS], lw[PD_UNET_MAX_LEVELS];   /* spatial size per level */
    int n_skips;
    int skip_h[MAX_SKIPS], skip_w[MAX_SKIPS], skip_c[MAX_SKIPS];
    size_t act;     /* floats of each ping-pong buffer */
    size_t cat;     /* floats of the concat / resize buffer */
    size_t block;   /* bytes of the largest block temporary */
} plan;

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

static void push_skip(plan *p, int h, int w, int c) {
    PD_ASSERT(p->n_skips < MAX_SKIPS);
    p->skip_h[p->n_skips] = h;
    p->skip_w[p->n_skips] = w;
    p->skip_c[p->n_skips] = c;
    p->n_skips++;
}

static size_t tf_bytes(int c, int inner, int ff, int batch, int hw, int n_ctx) {
    return pd_transformer_scratch_bytes(c, inner, ff, batch, hw, n_ctx);
}

static void make_plan(const pd_unet_config *cfg, int batch, int h, int w, int n_ctx, plan *p) {
    const pd_unet_arch *a = &cfg->arch;
    const int n = a->n_levels, L = a->layers_per_block, B = batch;
    memset(p, 0, sizeof *p);
    p->lh[0] = h;
    p->lw[0] = w;
    for (int l = 1; l < n; l++) {   /* 3x3 stride 2 pad 1 */
        p->lh[l] = (p->lh[l - 1] - 1) / 2 + 1;
        p->lw[l] = (p->lw[l - 1] - 1) / 2 + 1;
    }
    push_skip(p, h, w, a->model_channels);
    for (int l = 0; l < n; l++) {
        const int hh = p->lh[l], ww = p->lw[l];
        for (int j = 0; j < L; j++) {
            int cin, cout;
            pd_unet_res_channels(a, PD_UNET_SITE_DOWN_RES, l, j, &cin, &cout);
            p->block = zmax(p->block, pd_resblock_scratch_bytes_dims(cin, cout, cfg->temb_dim, hh, ww));
            if (a->down_attn[l])
                p->block = zmax(p->block, tf_bytes(cout, cfg->tf_inner[l], cfg->tf_ff[l], B, hh * ww, n_ctx));
            push_skip(p, hh, ww, cout);
        }
        if (l < n - 1) push_skip(p, p->lh[l + 1], p->lw[l + 1], a->level_channels[l]);
    }
    {
        const int hh = p->lh[n - 1], ww = p->lw[n - 1], c = a->level_channels[n - 1];
        p->act = zmax(p->act, (size_t)B * hh * ww * c);
        p->block = zmax(p->block, pd_resblock_scratch_bytes_dims(c, c, cfg->temb_dim, hh, ww));
        if (a->mid_attn)
            p->block = zmax(p->block, tf_bytes(c, cfg->mid_inner, cfg->mid_ff, B, hh * ww, n_ctx));
    }
    int top = p->n_skips, cur_c = a->level_channels[n - 1];
    for (int i = 0; i < n; i++) {
        const int level = n - 1 - i, hh = p->lh[level], ww = p->lw[level];
        for (int j = 0; j <= L; j++) {
            int sc = p->skip_c[--top], cin, cout;
            PD_ASSERT(p->skip_h[top] == hh && p->skip_w[top] == ww);
            pd_unet_res_channels(a, PD_UNET_SITE_UP_RES, i, j, &cin, &cout);
            PD_ASSERT(cin == cur_c + sc);
            p->cat = zmax(p->cat, (size_t)B * hh * ww * cin);
            p->act = zmax(p->act, (size_t)B * hh * ww * cout);
            p->block = zmax(p->block, pd_resblock_scratch_bytes_dims(cin, cout, cfg->temb_dim, hh, ww));
            if (a->up_attn[i])
                p->block = zmax(p->block, tf_bytes(cout, cfg->tf_inner[level], cfg->tf_ff[level], B, hh * ww, n_ctx));
            cur_c = cout;
        }
        if (i < n - 1) {
            const int th = p->lh[level - 1], tw = p->lw[level - 1];
            p->act = zmax(p->act, (size_t)B * th * tw * cur_c);
            if (th == 2 * hh && tw == 2 * ww)
                p->block = zmax(p->block, pd_upsample2x_conv_scratch_bytes(cur_c, 3, 1, hh, ww));
            else
                p->cat = zmax(p->cat, (size_t)B * th * tw * cur_c);
        }
    }
    PD_ASSERT(top == 0);
    p->act = zmax(p->act, (size_t)B * h * w * zmax((size_t)a->level_channels[0], (size_t)a->out_channels));
    p->block = zmax(p->block, pd_conv_gn_scratch_bytes(a->level_channels[0], 3, 1, 1, h, w));
}

/* Embedding vectors: t_emb, w_emb, hidden, emb, silu(emb), time-id sinusoids, add input
 * (floats per part into parts[7]). */
static size_t vec_floats(const pd_unet_config *cfg, int B, size_t *parts) {
    parts[0] = (size_t)B * cfg->time_proj_dim;
    parts[1] = (size_t)B * (cfg->time_cond_proj_dim > 0 ? cfg->time_cond_proj_dim : 1);
    parts[2] = parts[3] = parts[4] = (size_t)B * cfg->temb_dim;
    parts[5] = (size_t)B * (cfg->n_time_ids > 0 ? cfg->n_time_ids * cfg->addition_time_embed_dim : 1);
    /* the add-embedding input, also the add MLP's output when a tap wants it alone */
    parts[6] = (size_t)B * (cfg->adm_in_channels > 0 ? zmax((size_t)cfg->adm_in_channels, (size_t)cfg->temb_dim) : 1);
    size_t s = 0;
    for (int i = 0; i < 7; i++) s += parts[i];
    return s;
}

static size_t plan_bytes(const pd_unet_config *cfg, const plan *p, int B, int h, int w) {
    size_t parts[7];
    vec_floats(cfg, B, parts);
    size_t b = pd_arena_size_for((size_t)B * h * w * cfg->arch.in_channels * sizeof(float));
    for (int i = 0; i < 7; i++) b += pd_arena_size_for(parts[i] * sizeof(float));
    for (int s = 0; s < p->n_skips; s++)
        b += pd_arena_size_for((size_t)B * p->skip_h[s] * p->skip_w[s] * p->skip_c[s] * sizeof(float));
    b += 2 * pd_arena_size_for(p->act * sizeof(float));
    b += pd_arena_size_for(p->cat * sizeof(float));
    b += p->block;
    return b;
}

size_t pd_unet_scratch_bytes(const pd_unet_config *cfg, int batch, int h, int w, int n_ctx) {
    if (batch < 1 || h < 1 || w < 1 || n_ctx < 1) return 0;
    plan p;
    make_plan(cfg, batch, h, w, n_ctx, &p);
    return plan_bytes(cfg, &p, batch, h, w);
}

/* ---- small helpers ------------------------------------------------------------------ */

static void tap(const pd_unet_in *in, const float *data, int B, int h, int w, int c, const char *fmt, ...)
    PD_PRINTF(7, 8);
static void tap(const pd_unet_in *in, const float *data, int B, int h, int w, int c, const char *fmt, ...) {
    if (!in->tap || !in->tap->fn) return;
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    in->tap->fn(in->tap->user, name, data, B, h, w, c);
}

typedef struct cat_job {
    float *out;          /* [px, ca + cb] */
    const float *a, *b;  /* [px, ca], [px, cb] */
    size_t px;
    int ca, cb;
} cat_job;

static void cat_task(void *arg, int ith, int nth) {
    const cat_job *j = arg;
    size_t p0 = j->px * (size_t)ith / (size_t)nth, p1 = j->px * (size_t)(ith + 1) / (size_t)nth;
    const size_t co = (size_t)j->ca + (size_t)j->cb;
    for (size_t p = p0; p < p1; p++) {
        memcpy(j->out + p * co, j->a + p * (size_t)j->ca, (size_t)j->ca * sizeof(float));
        memcpy(j->out + p * co + j->ca, j->b + p * (size_t)j->cb, (size_t)j->cb * sizeof(float));
    }
}

/* torch F.interpolate(mode="nearest", size=(oh, ow)) of one NHWC image. */
static void resize_nearest(float *out, int oh, int ow, const float *in, int h, int w, int c) {
    const float sy = (float)h / (float)oh, sx = (float)w / (float)ow;
    for (int y = 0; y < oh; y++) {
        int iy = PD_MIN((int)floorf((float)y * sy), h - 1);
        for (int x = 0; x < ow; x++) {
            int ix = PD_MIN((int)floorf((float)x * sx), w - 1);
            memcpy(out + ((size_t)y * ow + x) * c, in + ((size_t)iy * w + ix) * c, (size_t)c * sizeof(float));
        }
    }
}

/* ---- forward ------------------------------------------------------------------------ */

typedef struct fwd {
    const pd_unet *m;
    const pd_nn *nn;
    const pd_unet_in *in;
    pd_arena *scratch;
    int B, n_ctx;
    const float *esilu;   /* [B, temb] silu(emb) */
} fwd;

/* out [B, h, w, cout] = resnet(x [B, h, w, cin]) per image. */
static void run_res(const fwd *f, const pd_resblock *r, const float *x, float *out, int h, int w) {
    const size_t hw = (size_t)h * w;
    for (int b = 0; b < f->B; b++)
        pd_resblock_forward(f->nn, r, x + b * hw * r->cin, h, w,
                            f->esilu + (size_t)b * f->m->cfg.temb_dim, out + b * hw * r->cout, f->scratch);
}

static void run_attn(const fwd *f, const pd_transformer *t, float *x, int h, int w, const char *name) {
    pd_transformer_forward(f->nn, t, x, f->B, h, w, f->in->context, f->n_ctx, f->scratch, f->in->tap, name);
}

static void run_conv(const fwd *f, const pd_conv *c, const float *x, int h, int w, float *out) {
    int oh, ow;
    pd_conv_out_size(c, h, w, &oh, &ow);
    for (int b = 0; b < f->B; b++)
        pd_conv_forward(f->nn, c, x + (size_t)b * h * w * c->cin, h, w,
                        out + (size_t)b * oh * ow * c->cout, PD_ACT_NONE, NULL);
}

/* emb [B, temb] and esilu = silu(emb). */
static void time_embedding(const fwd *f, float *tsin, float *wemb, float *hid, float *emb,
                           float *esilu, float *tids, float *addin) {
    const pd_unet *m = f->m;
    const pd_unet_config *cfg = &m->cfg;
    const pd_unet_in *in = f->in;
    const pd_nn *nn = f->nn;
    const int B = f->B, tp = cfg->time_proj_dim, te = cfg->temb_dim;
    for (int b = 0; b < B; b++)
        pd_unet_timestep_embedding(tsin + (size_t)b * tp, in->timesteps ? in->timesteps[b] : in->timestep,
                                   tp, cfg->flip_sin_to_cos, cfg->freq_shift);
    tap(in, tsin, B, 1, 1, tp, "time_proj");
    if (cfg->time_cond_proj_dim > 0 && in->guidance_w) {
        const int cd = cfg->time_cond_proj_dim;
        for (int b = 0; b < B; b++) pd_unet_guidance_embedding(wemb + (size_t)b * cd, in->guidance_w[b], cd);
        pd_nn_linear(nn, tsin, (size_t)tp, wemb, (size_t)cd, B, &m->cond_proj, PD_ACT_NONE, tsin, (size_t)tp);
    }
    pd_nn_linear(nn, hid, (size_t)te, tsin, (size_t)tp, B, &m->time1, PD_ACT_SILU, NULL, 0);
    pd_nn_linear(nn, emb, (size_t)te, hid, (size_t)te, B, &m->time2, PD_ACT_NONE, NULL, 0);
    tap(in, emb, B, 1, 1, te, "time_embedding");
    if (cfg->adm_in_channels > 0) {
        const int ad = cfg->addition_time_embed_dim, nt = cfg->n_time_ids, td = cfg->text_embeds_dim;
        const int adm = cfg->adm_in_channels;
        for (int i = 0; i < B * nt; i++)
            pd_unet_timestep_embedding(tids + (size_t)i * ad, in->time_ids[i], ad, cfg->flip_sin_to_cos,
                                       cfg->freq_shift);
        tap(in, tids, B * nt, 1, 1, ad, "add_time_proj");
        for (int b = 0; b < B; b++) {   /* [text_embeds | time-id sinusoids] */
            memcpy(addin + (size_t)b * adm, in->text_embeds + (size_t)b * td, (size_t)td * sizeof(float));
            memcpy(addin + (size_t)b * adm + td, tids + (size_t)b * nt * ad, (size_t)nt * ad * sizeof(float));
        }
        pd_nn_linear(nn, hid, (size_t)te, addin, (size_t)adm, B, &m->add1, PD_ACT_SILU, NULL, 0);
        if (in->tap && in->tap->fn) {   /* unfused so the add embedding can be seen alone */
            pd_nn_linear(nn, addin, (size_t)te, hid, (size_t)te, B, &m->add2, PD_ACT_NONE, NULL, 0);
            tap(in, addin, B, 1, 1, te, "add_embedding");
            for (size_t i = 0; i < (size_t)B * te; i++) emb[i] += addin[i];
        } else {
            pd_nn_linear(nn, emb, (size_t)te, hid, (size_t)te, B, &m->add2, PD_ACT_NONE, emb, (size_t)te);
        }
    }
    nn->kt->act_f32(esilu, emb, (size_t)B * te, PD_ACT_SILU);
}

static pd_status check_input(const pd_unet *m, const pd_unet_in *in, const float *eps_out, pd_error *err) {
    const pd_unet_config *cfg = &m->cfg;
    if (!in || !eps_out || !in->sample || !in->context)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "unet: sample, context and output are required");
    if (in->batch < 1 || in->batch > 64 || in->h < 1 || in->w < 1 || in->h > MAX_LATENT || in->w > MAX_LATENT)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "unet: batch %d of %dx%d latents is out of range",
                            in->batch, in->h, in->w);
    if (in->n_ctx < 1 || in->n_ctx > MAX_CONTEXT)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "unet: %d context tokens (1..%d)", in->n_ctx, MAX_CONTEXT);
    if (cfg->adm_in_channels > 0 && (!in->text_embeds || !in->time_ids))
        return pd_error_set(err, PD_ERR_INVALID_ARG,
                            "unet: this model (SDXL) needs text_embeds [batch, %d] and time_ids [batch, %d]",
                            cfg->text_embeds_dim, cfg->n_time_ids);
    return PD_OK;
}

pd_status pd_unet_forward(const pd_unet *m, const pd_nn *nn, const pd_unet_in *in,
                          float *eps_out, pd_arena *scratch, pd_error *err) {
    pd_status st = check_input(m, in, eps_out, err);
    if (st != PD_OK) return st;
    const pd_unet_config *cfg = &m->cfg;
    const pd_unet_arch *a = &cfg->arch;
    const int B = in->batch, H = in->h, W = in->w, n = a->n_levels, L = a->layers_per_block;
    plan p;
    make_plan(cfg, B, H, W, in->n_ctx, &p);
    const size_t need = plan_bytes(cfg, &p, B, H, W);
    if (scratch->cap > 0 && scratch->cap - scratch->used < need)
        return pd_error_set(err, PD_ERR_OOM,
                            "unet: scratch arena has %zu bytes free, %zu needed (batch %d, %dx%d latents, "
                            "%d context tokens)", scratch->cap - scratch->used, need, B, H, W, in->n_ctx);

    pd_arena_mark mark = pd_arena_get_mark(scratch);
    size_t parts[7];
    vec_floats(cfg, B, parts);
    float *vec[7];
    bool ok = true;
    for (int i = 0; i < 7; i++) ok &= (vec[i] = pd_arena_alloc(scratch, parts[i] * sizeof(float))) != NULL;
    float *xin = pd_arena_alloc(scratch, (size_t)B * H * W * a->in_channels * sizeof(float)); /* [B, H, W, cin] */
    float *skip[MAX_SKIPS];
    for (int s = 0; s < p.n_skips; s++)
        ok &= (skip[s] = pd_arena_alloc(scratch, (size_t)B * p.skip_h[s] * p.skip_w[s] * p.skip_c[s] *
                                                     sizeof(float))) != NULL;
    float *P = pd_arena_alloc(scratch, p.act * sizeof(float));     /* ping-pong [B, h, w, c] */
    float *Q = pd_arena_alloc(scratch, p.act * sizeof(float));
    float *CAT = pd_arena_alloc(scratch, p.cat * sizeof(float));   /* [B, h, w, c + c_skip] */
    if (!ok || !xin || !P || !Q || !CAT) {
        pd_arena_reset(scratch, mark);
        return pd_error_set(err, PD_ERR_OOM, "unet: out of scratch memory (%zu bytes needed)", need);
    }
    fwd f = {m, nn, in, scratch, B, in->n_ctx, vec[4]};

    /* Embeddings. */
    time_embedding(&f, vec[0], vec[1], vec[2], vec[3], vec[4], vec[5], vec[6]);

    /* NCHW -> NHWC   // xin [B, H, W, cin] */
    const size_t HW = (size_t)H * W;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < a->in_channels; c++) {
            const float *src = in->sample + ((size_t)b * a->in_channels + c) * HW;
            float *dst = xin + (size_t)b * HW * a->in_channels + c;
            for (size_t i = 0; i < HW; i++) dst[i * a->in_channels] = src[i];
        }

    /* conv_in -> skip 0   // [B, H, W, ch0] */
    int ns = 0;
    run_conv(&f, &m->conv_in, xin, H, W, skip[ns]);
    tap(in, skip[ns], B, H, W, a->model_channels, "conv_in");
    float *cur = skip[ns++];

    /* Down levels: every output lands in its skip buffer. */
    char name[96];
    for (int l = 0; l < n; l++) {
        const int hh = p.lh[l], ww = p.lw[l];
        const pd_unet_down *D = &m->down[l];
        for (int j = 0; j < L; j++) {
            float *out = skip[ns++];   /* [B, hh, ww, ch_l] */
            run_res(&f, &D->res[j], cur, out, hh, ww);
            tap(in, out, B, hh, ww, D->res[j].cout, "down_blocks.%d.resnets.%d", l, j);
            if (a->down_attn[l]) {
                snprintf(name, sizeof name, "down_blocks.%d.attentions.%d", l, j);
                run_attn(&f, &D->attn[j], out, hh, ww, name);
                tap(in, out, B, hh, ww, D->attn[j].c, "%s", name);
            }
            cur = out;
        }
        if (l < n - 1) {
            float *out = skip[ns++];   /* [B, hh/2, ww/2, ch_l] */
            run_conv(&f, &D->down, cur, hh, ww, out);
            tap(in, out, B, p.lh[l + 1], p.lw[l + 1], D->down.cout, "down_blocks.%d.downsamplers.0", l);
            cur = out;
        }
        tap(in, cur, B, p.lh[l < n - 1 ? l + 1 : l], p.lw[l < n - 1 ? l + 1 : l], a->level_channels[l],
            "down_blocks.%d", l);
    }
    PD_ASSERT(ns == p.n_skips);

    /* Mid block   // [B, h_n, w_n, ch_n] */
    {
        const int hh = p.lh[n - 1], ww = p.lw[n - 1];
        run_res(&f, &m->mid_res[0], cur, P, hh, ww);
        if (a->mid_attn) run_attn(&f, &m->mid_attn, P, hh, ww, "mid_block.attentions.0");
        run_res(&f, &m->mid_res[1], P, Q, hh, ww);
        cur = Q;
        tap(in, cur, B, hh, ww, m->mid_res[1].cout, "mid_block");
    }

    /* Up blocks: cat[h, skip] -> resnet (-> transformer), then upsample. */
    int cur_c = a->level_channels[n - 1];
    for (int i = 0; i < n; i++) {
        const int level = n - 1 - i, hh = p.lh[level], ww = p.lw[level];
        const pd_unet_up *U = &m->up[i];
        for (int j = 0; j <= L; j++) {
            const int s = --ns, sc = p.skip_c[s];
            cat_job cj = {CAT, cur, skip[s], (size_t)B * hh * ww, cur_c, sc};
            pd_pool_run(nn->pool, cat_task, &cj);   /* CAT [B, hh, ww, cur_c + sc] */
            float *out = cur == P ? Q : P;
            run_res(&f, &U->res[j], CAT, out, hh, ww);
            cur_c = U->res[j].cout;
            tap(in, out, B, hh, ww, cur_c, "up_blocks.%d.resnets.%d", i, j);
            if (a->up_attn[i]) {
                snprintf(name, sizeof name, "up_blocks.%d.attentions.%d", i, j);
                run_attn(&f, &U->attn[j], out, hh, ww, name);
                tap(in, out, B, hh, ww, cur_c, "%s", name);
            }
            cur = out;
        }
        if (i < n - 1) {
            const int th = p.lh[level - 1], tw = p.lw[level - 1];
            float *out = cur == P ? Q : P;   /* [B, th, tw, cur_c] */
            for (int b = 0; b < B; b++) {
                const float *x = cur + (size_t)b * hh * ww * cur_c;
                float *o = out + (size_t)b * th * tw * cur_c;
                if (th == 2 * hh && tw == 2 * ww) {
                    pd_upsample2x_conv_forward(nn, &U->up, x, hh, ww, o, scratch);
                } else {   /* upsample to the skip's size (odd latent sizes) */
                    resize_nearest(CAT, th, tw, x, hh, ww, cur_c);
                    pd_conv_forward(nn, &U->up, CAT, th, tw, o, PD_ACT_NONE, NULL);
                }
            }
            cur = out;
            tap(in, cur, B, th, tw, cur_c, "up_blocks.%d.upsamplers.0", i);
        }
        tap(in, cur, B, i < n - 1 ? p.lh[level - 1] : hh, i < n - 1 ? p.lw[level - 1] : ww, cur_c,
            "up_blocks.%d", i);
    }
    PD_ASSERT(ns == 0);

    /* eps = conv_out(silu(GroupNorm(h)))   // [B, H, W, cout] */
    float *out = cur == P ? Q : P;
    const int c0 = a->level_channels[0], co = a->out_channels;
    if (in->tap && in->tap->fn) {   /* GroupNorm alone, for inspection */
        for (int b = 0; b < B; b++)
            pd_groupnorm_forward(nn, &m->norm_out, out + (size_t)b * HW * c0, cur + (size_t)b * HW * c0, (int)HW, false);
        tap(in, out, B, H, W, c0, "conv_norm_out");
    }
    for (int b = 0; b < B; b++)
        pd_conv_forward_gn(nn, &m->conv_out, &m->norm_out, true, cur + (size_t)b * HW * c0, H, W,
                           out + (size_t)b * HW * co, PD_ACT_NONE, NULL, scratch);
    tap(in, out, B, H, W, co, "conv_out");

    /* NHWC -> NCHW   // eps_out [B, cout, H, W] */
    for (int b = 0; b < B; b++)
        for (int c = 0; c < co; c++) {
            const float *src = out + (size_t)b * HW * co + c;
            float *dst = eps_out + ((size_t)b * co + c) * HW;
            for (size_t i = 0; i < HW; i++) dst[i] = src[i * co];
        }
    pd_arena_reset(scratch, mark);
    return PD_OK;
}
