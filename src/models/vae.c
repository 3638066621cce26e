/*
 * vae.c - the SD VAE (AutoencoderKL): configuration, load (key table -> struct, once),
 * encoder and decoder forward passes (fp32, NHWC, one image).
 *
 * Encoder (diffusers Encoder, double_z):
 *   x = conv_in(image)
 *   per level L: layers_per_block ResNet blocks (ch[L-1] -> ch[L]); all but the last
 *                level end with Downsample2D (pad right/bottom by 1, conv 3x3 stride 2)
 *   mid: ResNet, attention, ResNet (channels ch[n-1])
 *   moments = quant_conv(conv_out(silu(norm_out(x))))   // [h/8, w/8, 2 * latent]
 *   mean = moments[..., :latent], logvar = clamp(moments[..., latent:], -30, 20)
 * Decoder:
 *   x = conv_in(post_quant_conv(z)); mid (as above)
 *   per level L (deepest first): layers_per_block + 1 ResNet blocks; all but the last
 *                level end with Upsample2D (nearest 2x, conv 3x3)
 *   image = conv_out(silu(norm_out(x)))
 * Mid attention (diffusers Attention with group_norm, one head of dim c over all
 * pixels): x += to_out(softmax(q k^T / sqrt(c)) v), q/k/v = to_q/k/v(GroupNorm(x)).
 *
 * Memory plan: two ping-pong activation buffers (buf[0], buf[1]) sized by a dry run of
 * the same walk (plan_decode / plan_encode), plus the largest temporary of one block
 * on top (blocks take theirs from the arena and give it back). Blocks that keep the
 * channel count run in place; a channel change or a resampling writes the other buffer.
 *
 * Traps:
 *   - LDM decoder.up.N is reversed relative to diffusers up_blocks (io/keys_vae.c).
 *   - LDM attention q/k/v/proj_out are [c, c, 1, 1] convs, diffusers ones [c, c]
 *     linears: pd_conv_load accepts both for k = 1.
 *   - Kernels may read 64 bytes past an input: caller buffers (z, image) are copied
 *     into the arena before a convolution reads them.
 *   - The decoder's input is z = latents / scaling_factor, not the sampler's latents.
 */
#include "models/vae.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define VAE_MAX_SIDE 16384   /* image pixels per side */

/* ---- configuration -------------------------------------------------------------- */

static double derived_num(const pd_model_src *src, const char *key, double def) {
    double v;
    return src->derived && pd_json_as_double(pd_json_get(src->derived, key), &v) ? v : def;
}

pd_status pd_vae_read_config(pd_vae_config *cfg, const pd_model_src *src, pd_error *err) {
    memset(cfg, 0, sizeof *cfg);
    pd_status st = pd_vae_read_arch(src, &cfg->arch, err);
    if (st != PD_OK) return st;
    const pd_json *jc = src->comp[PD_COMP_VAE].config;
    const char *act = jc ? pd_json_get_string(jc, "act_fn", "silu") : "silu";
    if (strcmp(act, "silu") != 0 && strcmp(act, "swish") != 0)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "vae: activation \"%s\" is not supported (silu)", act);

    double sf = src->family == PD_FAMILY_SDXL ? 0.13025 : 0.18215;
    sf = derived_num(src, "vae_scaling_factor", sf);
    double v;
    if (jc && pd_json_as_double(pd_json_get(jc, "scaling_factor"), &v)) sf = v;
    if (!(sf > 0.0 && sf < 1e6))
        return pd_error_set(err, PD_ERR_FORMAT, "vae: scaling_factor %g is not a positive number", sf);
    cfg->scaling_factor = (float)sf;
    cfg->shift_factor = jc && pd_json_as_double(pd_json_get(jc, "shift_factor"), &v) ? (float)v : 0.0f;

    int64_t groups = (int64_t)derived_num(src, "vae_groupnorm_groups", 32);
    if (jc) groups = pd_json_get_int(jc, "norm_num_groups", groups);
    const pd_vae_arch *a = &cfg->arch;
    for (int l = 0; l < a->n_levels; l++)
        if (groups < 1 || a->ch[l] % groups != 0)
            return pd_error_set(err, PD_ERR_UNSUPPORTED, "vae: GroupNorm with %lld groups does not divide "
                                "level %d's %d channels", (long long)groups, l, a->ch[l]);
    cfg->groups = (int)groups;
    cfg->eps = 1e-6f;
    cfg->scale = 1 << (a->n_levels - 1);
    if (a->ch[a->n_levels - 1] > PD_ATTN_MAX_HEAD_DIM && a->has_mid_attn)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "vae: mid-block attention over %d channels "
                            "(at most %d supported)", a->ch[a->n_levels - 1], PD_ATTN_MAX_HEAD_DIM);
    return PD_OK;
}

/* ---- loading ------------------------------------------------------------------- */

typedef struct loader {
    pd_load_ctx lc;
    const pd_kernels *kt;
    const pd_vae_config *cfg;
    char w[256], b[256];
} loader;

static void names(loader *ld, pd_vae_module mod, int level, int index, pd_vae_part part) {
    pd_vae_key k = {mod, level, index, part, false};
    const pd_vae_arch *a = &ld->cfg->arch;
    if (!pd_vae_key_name(a->naming, a->n_levels, k, ld->w, sizeof ld->w)) snprintf(ld->w, sizeof ld->w, "?");
    k.bias = true;
    if (!pd_vae_key_name(a->naming, a->n_levels, k, ld->b, sizeof ld->b)) snprintf(ld->b, sizeof ld->b, "?");
}

static pd_status load_conv(loader *ld, pd_vae_module mod, int level, pd_vae_part part, int cout,
                           int cin, int k, int stride, int pad, pd_conv *out, pd_error *err) {
    names(ld, mod, level, 0, part);
    return pd_conv_load(&ld->lc, ld->kt, out, ld->w, ld->b, cout, cin, k, stride, pad, err);
}

static pd_status load_norm(loader *ld, pd_vae_module mod, pd_vae_part part, int c, pd_groupnorm *out,
                           pd_error *err) {
    names(ld, mod, 0, 0, part);
    return pd_groupnorm_load(&ld->lc, out, ld->w, ld->b, c, ld->cfg->groups, ld->cfg->eps, err);
}

static pd_status load_res(loader *ld, pd_vae_module mod, int level, int index, int cin, int cout,
                          pd_resblock *out, pd_error *err) {
    char n[10][256];
    static const pd_vae_part parts[5] = {PD_VAE_RES_NORM1, PD_VAE_RES_CONV1, PD_VAE_RES_NORM2,
                                         PD_VAE_RES_CONV2, PD_VAE_RES_SKIP};
    for (int i = 0; i < 5; i++) {
        names(ld, mod, level, index, parts[i]);
        memcpy(n[2 * i], ld->w, sizeof ld->w);
        memcpy(n[2 * i + 1], ld->b, sizeof ld->b);
    }
    pd_resblock_names rn = {n[0], n[1], n[2], n[3], NULL, NULL, n[4], n[5], n[6], n[7], n[8], n[9]};
    pd_status st = pd_resblock_load(&ld->lc, ld->kt, out, &rn, cin, cout, 0, ld->cfg->groups, ld->cfg->eps, err);
    if (st == PD_OK && out->has_skip != (cin != cout)) {
        char full[384];
        pd_model_full_name(ld->lc.src, ld->lc.comp, n[8], full, sizeof full);
        st = pd_error_set(err, PD_ERR_SHAPE, "vae: unexpected tensor '%s' (the block keeps %d channels)", full, cin);
        pd_resblock_free(out);
    }
    return st;
}

static pd_status load_attn(loader *ld, pd_vae_module mod, int c, pd_vae_attn *out, pd_error *err) {
    out->c = c;
    pd_status st = load_norm(ld, mod, PD_VAE_ATTN_NORM, c, &out->norm, err);
    if (st == PD_OK) st = load_conv(ld, mod, 0, PD_VAE_ATTN_Q, c, c, 1, 1, 0, &out->q, err);
    if (st == PD_OK) st = load_conv(ld, mod, 0, PD_VAE_ATTN_K, c, c, 1, 1, 0, &out->k, err);
    if (st == PD_OK) st = load_conv(ld, mod, 0, PD_VAE_ATTN_V, c, c, 1, 1, 0, &out->v, err);
    if (st == PD_OK) st = load_conv(ld, mod, 0, PD_VAE_ATTN_OUT, c, c, 1, 1, 0, &out->out, err);
    return st;
}

static pd_status load_mid(loader *ld, bool decoder, pd_vae_coder *co, pd_error *err) {
    const pd_vae_arch *a = &ld->cfg->arch;
    const int c = a->ch[a->n_levels - 1];
    pd_vae_module res = decoder ? PD_VAE_DEC_MID_RESNET : PD_VAE_ENC_MID_RESNET;
    pd_status st = load_res(ld, res, 0, 0, c, c, &co->mid_res[0], err);
    if (st == PD_OK && a->has_mid_attn) {
        st = load_attn(ld, decoder ? PD_VAE_DEC_MID_ATTN : PD_VAE_ENC_MID_ATTN, c, &co->attn, err);
        co->has_attn = true;   /* partially loaded parts are freed too */
    }
    if (st == PD_OK) st = load_res(ld, res, 0, 1, c, c, &co->mid_res[1], err);
    return st;
}

static pd_status load_coder(loader *ld, bool decoder, pd_vae_coder *co, pd_error *err) {
    const pd_vae_arch *a = &ld->cfg->arch;
    const int n = a->n_levels, deep = a->ch[n - 1];
    pd_status st;
    if (decoder) {
        st = load_conv(ld, PD_VAE_DEC_CONV_IN, 0, PD_VAE_PART_SELF, deep, a->latent_channels, 3, 1, 1, &co->conv_in, err);
        if (st == PD_OK) st = load_mid(ld, true, co, err);
    } else {
        st = load_conv(ld, PD_VAE_ENC_CONV_IN, 0, PD_VAE_PART_SELF, a->ch[0], a->in_channels, 3, 1, 1, &co->conv_in, err);
    }
    for (int l = 0; l < n && st == PD_OK; l++) {
        pd_vae_level *lv = &co->level[l];
        int cin = 0, cout = 0;
        for (int i = 0; i < pd_vae_level_resnets(a, decoder) && st == PD_OK; i++) {
            pd_vae_resnet_channels(a, decoder, l, i, &cin, &cout);
            st = load_res(ld, decoder ? PD_VAE_DEC_RESNET : PD_VAE_ENC_RESNET, l, i, cin, cout, &lv->res[i], err);
            if (st == PD_OK) lv->n_res = i + 1;
        }
        if (st == PD_OK && l < n - 1) {
            if (decoder) {
                st = load_conv(ld, PD_VAE_DEC_UPSAMPLE, l, PD_VAE_PART_SELF, cout, cout, 3, 1, 1, &lv->resample, err);
            } else {
                st = load_conv(ld, PD_VAE_ENC_DOWNSAMPLE, l, PD_VAE_PART_SELF, cout, cout, 3, 2, 0, &lv->resample, err);
                lv->resample.pad_b = lv->resample.pad_r = 1;   /* F.pad(x, (0, 1, 0, 1)) */
            }
            lv->has_resample = st == PD_OK;
        }
    }
    if (st == PD_OK && !decoder) st = load_mid(ld, false, co, err);
    const int c0 = decoder ? a->ch[0] : deep;
    if (st == PD_OK)
        st = load_norm(ld, decoder ? PD_VAE_DEC_NORM_OUT : PD_VAE_ENC_NORM_OUT, PD_VAE_PART_SELF, c0, &co->norm_out, err);
    if (st == PD_OK)
        st = load_conv(ld, decoder ? PD_VAE_DEC_CONV_OUT : PD_VAE_ENC_CONV_OUT, 0, PD_VAE_PART_SELF,
                       decoder ? a->out_channels : 2 * a->latent_channels, c0, 3, 1, 1, &co->conv_out, err);
    return st;
}

pd_status pd_vae_load(pd_vae *out, const pd_model_src *src, const pd_kernels *kt, pd_pool *pool, pd_error *err) {
    return pd_vae_load_parts(out, src, kt, true, true, pool, err);
}

pd_status pd_vae_load_parts(pd_vae *out, const pd_model_src *src, const pd_kernels *kt, bool encoder,
                            bool decoder, pd_pool *pool, pd_error *err) {
    memset(out, 0, sizeof *out);
    pd_status st = pd_vae_read_config(&out->cfg, src, err);
    if (st != PD_OK) return st;
    loader ld = {{src, PD_COMP_VAE, pool}, kt, &out->cfg, "", ""};
    const pd_vae_arch *a = &out->cfg.arch;
    if (a->has_encoder && encoder) {
        out->has_encoder = true;
        st = load_coder(&ld, false, &out->enc, err);
        if (st == PD_OK && a->has_quant_conv) {
            st = load_conv(&ld, PD_VAE_QUANT_CONV, 0, PD_VAE_PART_SELF, 2 * a->latent_channels,
                           2 * a->latent_channels, 1, 1, 0, &out->quant_conv, err);
            out->has_quant = st == PD_OK;
        }
    }
    if (st == PD_OK && decoder && a->has_post_quant_conv) {
        st = load_conv(&ld, PD_VAE_POST_QUANT_CONV, 0, PD_VAE_PART_SELF, a->latent_channels,
                       a->latent_channels, 1, 1, 0, &out->post_quant_conv, err);
        out->has_post_quant = st == PD_OK;
    }
    if (st == PD_OK && decoder) st = load_coder(&ld, true, &out->dec, err);
    if (st != PD_OK) pd_vae_free(out);
    return st;
}

static void free_coder(pd_vae_coder *co) {
    pd_conv_free(&co->conv_in);
    for (int l = 0; l < PD_VAE_MAX_LEVELS; l++) {
        for (int i = 0; i < PD_VAE_MAX_LAYERS + 1; i++) pd_resblock_free(&co->level[l].res[i]);
        pd_conv_free(&co->level[l].resample);
    }
    pd_resblock_free(&co->mid_res[0]);
    pd_resblock_free(&co->mid_res[1]);
    pd_groupnorm_free(&co->attn.norm);
    pd_conv_free(&co->attn.q);
    pd_conv_free(&co->attn.k);
    pd_conv_free(&co->attn.v);
    pd_conv_free(&co->attn.out);
    pd_groupnorm_free(&co->norm_out);
    pd_conv_free(&co->conv_out);
}

void pd_vae_free(pd_vae *m) {
    if (!m) return;
    free_coder(&m->enc);
    free_coder(&m->dec);
    pd_conv_free(&m->quant_conv);
    pd_conv_free(&m->post_quant_conv);
    memset(m, 0, sizeof *m);
}

/* ---- memory plan ----------------------------------------------------------------- */

typedef struct vae_plan {
    size_t cap[2];     /* floats of the ping-pong buffers */
    size_t block;      /* bytes of the largest block temporary */
    int cur;           /* buffer holding the current activation (dry run) */
    uint64_t inplace;  /* bit i: the i-th ResNet block of the pass runs in place */
    int n_res;
} vae_plan;

static size_t fbytes(size_t n) { return pd_arena_size_for(n * sizeof(float)); }

static void plan_block(vae_plan *p, size_t bytes) { p->block = PD_MAX(p->block, bytes); }

/* The next activation (n floats) goes to the other buffer. */
static void plan_swap(vae_plan *p, size_t n) {
    p->cur ^= 1;
    p->cap[p->cur] = PD_MAX(p->cap[p->cur], n);
}

static size_t attn_bytes(int c, int hw) {
    return fbytes((size_t)hw * (size_t)c) + fbytes((size_t)hw * 3 * (size_t)c);
}

/* A block with cin >= cout runs in place with its temporary in the other buffer when
 * that buffer, as sized so far, holds it, or (grow: the decoder, whose activations only
 * grow, so the buffers end up holding them anyway) after growing it; any other block
 * writes the other buffer, or itself when the channels stay, with its temporary from
 * the block region. The choice is recorded for the pass to replay. Decoder at 512x512:
 * 417 MiB instead of 521 (the last level's [hw, 128] temporaries live in the buffer of
 * the first upsampling outputs); encoder: growing would cost 32 MiB, so it does not. */
static void plan_resnet(vae_plan *p, int cin, int cout, int h, int w, bool grow) {
    const size_t n = (size_t)h * (size_t)w * (size_t)cout;
    PD_ASSERT(p->n_res < 64);
    if (cin >= cout && (grow || n <= p->cap[p->cur ^ 1])) {
        p->cap[p->cur ^ 1] = PD_MAX(p->cap[p->cur ^ 1], n);
        p->inplace |= (uint64_t)1 << p->n_res++;
        plan_block(p, pd_resblock_inplace_scratch_bytes(cin, cout, h, w));
    } else if (cin == cout) {
        p->n_res++;
        plan_block(p, pd_resblock_scratch_bytes_dims(cin, cout, 0, h, w));
    } else {
        p->n_res++;
        plan_block(p, pd_resblock_scratch_bytes_dims(cin, cout, 0, h, w));
        plan_swap(p, n);
    }
}

static void plan_mid(vae_plan *p, const pd_vae_config *cfg, int h, int w, bool grow) {
    const int c = cfg->arch.ch[cfg->arch.n_levels - 1];
    plan_resnet(p, c, c, h, w, grow);
    if (cfg->arch.has_mid_attn) plan_block(p, attn_bytes(c, h * w));
    plan_resnet(p, c, c, h, w, grow);
}

static vae_plan plan_decode(const pd_vae_config *cfg, int h, int w) {
    const pd_vae_arch *a = &cfg->arch;
    const size_t lat = (size_t)h * (size_t)w * (size_t)a->latent_channels;
    vae_plan p = {{0, 0}, 0, 1, 0, 0};
    plan_block(&p, (a->has_post_quant_conv ? 2 : 1) * fbytes(lat));   /* z copy (+ post_quant_conv) */
    plan_swap(&p, (size_t)h * (size_t)w * (size_t)a->ch[a->n_levels - 1]);   /* conv_in */
    plan_mid(&p, cfg, h, w, true);
    for (int l = 0; l < a->n_levels; l++) {
        int cin = 0, cout = 0;
        for (int i = 0; i < pd_vae_level_resnets(a, true); i++) {
            pd_vae_resnet_channels(a, true, l, i, &cin, &cout);
            plan_resnet(&p, cin, cout, h, w, true);
        }
        if (l < a->n_levels - 1) {
            plan_block(&p, pd_upsample2x_conv_scratch_bytes(cout, 3, 1, h, w));
            h *= 2;
            w *= 2;
            plan_swap(&p, (size_t)h * (size_t)w * (size_t)cout);
        }
    }
    plan_block(&p, pd_conv_gn_scratch_bytes(a->ch[0], 3, 1, 1, h, w));   /* norm_out + conv_out */
    return p;
}

static vae_plan plan_encode(const pd_vae_config *cfg, int h, int w) {
    const pd_vae_arch *a = &cfg->arch;
    vae_plan p = {{0, 0}, 0, 1, 0, 0};
    plan_block(&p, fbytes((size_t)h * (size_t)w * (size_t)a->in_channels));   /* image copy */
    plan_swap(&p, (size_t)h * (size_t)w * (size_t)a->ch[0]);                  /* conv_in */
    for (int l = 0; l < a->n_levels; l++) {
        int cin = 0, cout = 0;
        for (int i = 0; i < pd_vae_level_resnets(a, false); i++) {
            pd_vae_resnet_channels(a, false, l, i, &cin, &cout);
            plan_resnet(&p, cin, cout, h, w, false);
        }
        if (l < a->n_levels - 1) {
            h /= 2;
            w /= 2;
            plan_swap(&p, (size_t)h * (size_t)w * (size_t)cout);
        }
    }
    plan_mid(&p, cfg, h, w, false);
    const size_t moments = (size_t)h * (size_t)w * 2 * (size_t)a->latent_channels;
    plan_block(&p, pd_conv_gn_scratch_bytes(a->ch[a->n_levels - 1], 3, 1, 1, h, w));
    plan_swap(&p, moments);                            /* conv_out */
    if (a->has_quant_conv) plan_swap(&p, moments);     /* quant_conv */
    return p;
}

static size_t plan_bytes(const vae_plan *p) {
    return fbytes(PD_MAX(p->cap[0], 1)) + fbytes(PD_MAX(p->cap[1], 1)) + p->block;
}

size_t pd_vae_decode_scratch_bytes(const pd_vae_config *cfg, int lat_h, int lat_w) {
    if (lat_h < 1 || lat_w < 1) return 0;
    vae_plan p = plan_decode(cfg, lat_h, lat_w);
    return plan_bytes(&p);
}

size_t pd_vae_encode_scratch_bytes(const pd_vae_config *cfg, int img_h, int img_w) {
    if (img_h < 1 || img_w < 1) return 0;
    vae_plan p = plan_encode(cfg, img_h, img_w);
    return plan_bytes(&p);
}

/* ---- forward ---------------------------------------------------------------------- */

/* The activation buffers of one pass. */
typedef struct acts {
    float *buf[2];
    size_t cap[2];
    int cur;
    uint64_t inplace;   /* the plan's choices (vae_plan), replayed block by block */
    int res;
} acts;

static float *cur_buf(acts *s) { return s->buf[s->cur]; }

/* The other buffer, for an activation of n floats (becomes current after swap()). */
static float *other_buf(acts *s, size_t n) {
    PD_ASSERT(n <= s->cap[s->cur ^ 1]);
    return s->buf[s->cur ^ 1];
}

static void swap(acts *s) { s->cur ^= 1; }

static void tap_call(const pd_vae_tap *tap, const char *name, const float *x, int h, int w, int c) {
    if (tap && tap->fn) tap->fn(tap->user, name, x, h, w, c);
}

static void tap_fmt(const pd_vae_tap *tap, const float *x, int h, int w, int c, const char *fmt, int a, int b) {
    if (!tap || !tap->fn) return;
    char name[96];
    snprintf(name, sizeof name, fmt, a, b);
    tap->fn(tap->user, name, x, h, w, c);
}

/* x [hw, c] += attention(GroupNorm(x)), in place. */
static void attn_forward(const pd_nn *nn, const pd_vae_attn *at, float *x, int hw, pd_arena *scratch) {
    const int c = at->c;
    const size_t ld3 = 3 * (size_t)c;
    pd_arena_mark mark = pd_arena_get_mark(scratch);
    float *t = pd_arena_alloc(scratch, (size_t)hw * (size_t)c * sizeof(float));     // [hw, c]
    float *qkv = pd_arena_alloc(scratch, (size_t)hw * ld3 * sizeof(float));          // [hw, 3c] q | k | v
    PD_ASSERT(t && qkv);
    pd_groupnorm_forward(nn, &at->norm, t, x, hw, false);
    pd_nn_linear(nn, qkv, ld3, t, (size_t)c, hw, &at->q.w, PD_ACT_NONE, NULL, 0);
    pd_nn_linear(nn, qkv + c, ld3, t, (size_t)c, hw, &at->k.w, PD_ACT_NONE, NULL, 0);
    pd_nn_linear(nn, qkv + 2 * c, ld3, t, (size_t)c, hw, &at->v.w, PD_ACT_NONE, NULL, 0);
    pd_attn_args a = {
        .n_q = hw, .n_kv = hw, .head_dim = c, .q0 = 0, .q1 = hw, .h0 = 0, .h1 = 1,
        .q = qkv, .q_ld = ld3, .q_hs = 0, .k = qkv + c, .k_ld = ld3, .k_hs = 0,
        .v = qkv + 2 * c, .v_ld = ld3, .v_hs = 0, .o = t, .o_ld = (size_t)c, .o_hs = 0,
        .scale = 1.0f / sqrtf((float)c), .causal = false,
    };
    pd_nn_attention(nn, &a);   /* t = softmax(q k^T / sqrt(c)) v   // [hw, c] */
    pd_nn_linear(nn, x, (size_t)c, t, (size_t)c, hw, &at->out.w, PD_ACT_NONE, x, (size_t)c);
    pd_arena_reset(scratch, mark);
}

/* One ResNet block as the plan chose (plan_resnet): in place with its temporary in the
 * other buffer, in place, or into the other buffer. */
static void resnet_step(const pd_nn *nn, const pd_resblock *r, acts *s, int h, int w, pd_arena *scratch) {
    const size_t n = (size_t)h * (size_t)w * (size_t)r->cout;
    const bool inplace = (s->inplace >> s->res++) & 1;
    if (inplace) {
        pd_resblock_forward_inplace(nn, r, cur_buf(s), h, w, NULL, other_buf(s, n), scratch);
    } else if (!r->has_skip) {
        pd_resblock_forward(nn, r, cur_buf(s), h, w, NULL, cur_buf(s), scratch);
    } else {
        pd_resblock_forward(nn, r, cur_buf(s), h, w, NULL, other_buf(s, n), scratch);
        swap(s);
    }
}

static void mid_forward(const pd_nn *nn, const pd_vae_coder *co, acts *s, int h, int w, const char *side,
                        pd_arena *scratch, const pd_vae_tap *tap) {
    const int c = co->mid_res[0].cout;
    char name[64];
    resnet_step(nn, &co->mid_res[0], s, h, w, scratch);
    snprintf(name, sizeof name, "%s.mid_block.resnets.0", side);
    tap_call(tap, name, cur_buf(s), h, w, c);
    if (co->has_attn) {
        attn_forward(nn, &co->attn, cur_buf(s), h * w, scratch);
        snprintf(name, sizeof name, "%s.mid_block.attentions.0", side);
        tap_call(tap, name, cur_buf(s), h, w, c);
    }
    resnet_step(nn, &co->mid_res[1], s, h, w, scratch);
    snprintf(name, sizeof name, "%s.mid_block", side);
    tap_call(tap, name, cur_buf(s), h, w, c);
}

/* Allocates the ping-pong buffers of plan p, after checking the arena has room. */
static pd_status acts_init(acts *s, const vae_plan *p, pd_arena *scratch, const char *what, int h, int w,
                           pd_error *err) {
    size_t need = plan_bytes(p);
    if (scratch->cap > 0 && scratch->cap - PD_MIN(scratch->used, scratch->cap) < need)
        return pd_error_set(err, PD_ERR_OOM, "vae: %s %dx%d needs %zu MiB of scratch memory, the arena "
                            "has %zu MiB free", what, w, h, (need + (1 << 20) - 1) >> 20,
                            (scratch->cap - PD_MIN(scratch->used, scratch->cap)) >> 20);
    for (int i = 0; i < 2; i++) {
        s->cap[i] = PD_MAX(p->cap[i], 1);
        s->buf[i] = pd_arena_alloc(scratch, s->cap[i] * sizeof(float));
        if (!s->buf[i])
            return pd_error_set(err, PD_ERR_OOM, "vae: out of memory for %s %dx%d (%zu MiB of activations)",
                                what, w, h, (s->cap[i] * sizeof(float)) >> 20);
    }
    s->cur = 0;
    s->inplace = p->inplace;
    s->res = 0;
    return PD_OK;
}

pd_status pd_vae_decode(const pd_vae *m, const pd_nn *nn, const float *z, int lat_h, int lat_w,
                        float *image, pd_arena *scratch, const pd_vae_tap *tap, pd_error *err) {
    const pd_vae_config *cfg = &m->cfg;
    const pd_vae_arch *a = &cfg->arch;
    if (lat_h < 1 || lat_w < 1 || lat_h > VAE_MAX_SIDE / cfg->scale || lat_w > VAE_MAX_SIDE / cfg->scale)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "vae decode: latent size %dx%d outside 1..%d",
                            lat_w, lat_h, VAE_MAX_SIDE / cfg->scale);
    vae_plan p = plan_decode(cfg, lat_h, lat_w);
    pd_arena_mark mark = pd_arena_get_mark(scratch);
    acts s;
    pd_status st = acts_init(&s, &p, scratch, "decode of latent", lat_h, lat_w, err);
    if (st != PD_OK) goto done;
    int h = lat_h, w = lat_w;
    const int lc = a->latent_channels, deep = a->ch[a->n_levels - 1];

    {   /* z (caller memory) -> arena copy -> post_quant_conv -> conv_in */
        pd_arena_mark m2 = pd_arena_get_mark(scratch);
        const size_t n = (size_t)h * (size_t)w * (size_t)lc;
        float *zc = pd_arena_alloc(scratch, n * sizeof(float));   // [h, w, lc]
        PD_ASSERT(zc != NULL);
        memcpy(zc, z, n * sizeof(float));
        if (m->has_post_quant) {
            float *pq = pd_arena_alloc(scratch, n * sizeof(float));   // [h, w, lc]
            PD_ASSERT(pq != NULL);
            pd_conv_forward(nn, &m->post_quant_conv, zc, h, w, pq, PD_ACT_NONE, NULL);
            tap_call(tap, "post_quant_conv", pq, h, w, lc);
            zc = pq;
        }
        pd_conv_forward(nn, &m->dec.conv_in, zc, h, w, cur_buf(&s), PD_ACT_NONE, NULL);   // [h, w, deep]
        pd_arena_reset(scratch, m2);
    }
    tap_call(tap, "decoder.conv_in", cur_buf(&s), h, w, deep);
    mid_forward(nn, &m->dec, &s, h, w, "decoder", scratch, tap);

    int c = deep;
    for (int l = 0; l < a->n_levels; l++) {
        const pd_vae_level *lv = &m->dec.level[l];
        for (int i = 0; i < lv->n_res; i++) {
            resnet_step(nn, &lv->res[i], &s, h, w, scratch);
            c = lv->res[i].cout;
            tap_fmt(tap, cur_buf(&s), h, w, c, "decoder.up_blocks.%d.resnets.%d", l, i);
        }
        if (lv->has_resample) {
            float *dst = other_buf(&s, (size_t)4 * (size_t)h * (size_t)w * (size_t)c);   // [2h, 2w, c]
            pd_upsample2x_conv_forward(nn, &lv->resample, cur_buf(&s), h, w, dst, scratch);
            swap(&s);
            h *= 2;
            w *= 2;
        }
        tap_fmt(tap, cur_buf(&s), h, w, c, "decoder.up_blocks.%d", l, 0);
    }
    /* image = conv_out(silu(norm_out(x)))   // [h, w, out_channels] */
    pd_conv_forward_gn(nn, &m->dec.conv_out, &m->dec.norm_out, true, cur_buf(&s), h, w, image, PD_ACT_NONE,
                       NULL, scratch);
    tap_call(tap, "decoder.conv_out", image, h, w, a->out_channels);
done:
    pd_arena_reset(scratch, mark);
    return st;
}

pd_status pd_vae_encode(const pd_vae *m, const pd_nn *nn, const float *image, int img_h, int img_w,
                        float *mean, float *logvar, pd_arena *scratch, const pd_vae_tap *tap,
                        pd_error *err) {
    const pd_vae_config *cfg = &m->cfg;
    const pd_vae_arch *a = &cfg->arch;
    if (!m->has_encoder)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "vae: this VAE has no encoder (decoder-only weights)");
    if (img_h < cfg->scale || img_w < cfg->scale || img_h > VAE_MAX_SIDE || img_w > VAE_MAX_SIDE ||
        img_h % cfg->scale != 0 || img_w % cfg->scale != 0)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "vae encode: image size %dx%d must be a multiple of "
                            "%d between %d and %d", img_w, img_h, cfg->scale, cfg->scale, VAE_MAX_SIDE);
    vae_plan p = plan_encode(cfg, img_h, img_w);
    pd_arena_mark mark = pd_arena_get_mark(scratch);
    acts s;
    pd_status st = acts_init(&s, &p, scratch, "encode of image", img_h, img_w, err);
    if (st != PD_OK) goto done;
    int h = img_h, w = img_w;
    const int lc = a->latent_channels;

    {   /* image (caller memory) -> arena copy -> conv_in */
        pd_arena_mark m2 = pd_arena_get_mark(scratch);
        const size_t n = (size_t)h * (size_t)w * (size_t)a->in_channels;
        float *ic = pd_arena_alloc(scratch, n * sizeof(float));   // [h, w, in_channels]
        PD_ASSERT(ic != NULL);
        memcpy(ic, image, n * sizeof(float));
        pd_conv_forward(nn, &m->enc.conv_in, ic, h, w, cur_buf(&s), PD_ACT_NONE, NULL);   // [h, w, ch0]
        pd_arena_reset(scratch, m2);
    }
    tap_call(tap, "encoder.conv_in", cur_buf(&s), h, w, a->ch[0]);
    for (int l = 0; l < a->n_levels; l++) {
        const pd_vae_level *lv = &m->enc.level[l];
        int c = 0;
        for (int i = 0; i < lv->n_res; i++) {
            resnet_step(nn, &lv->res[i], &s, h, w, scratch);
            c = lv->res[i].cout;
            tap_fmt(tap, cur_buf(&s), h, w, c, "encoder.down_blocks.%d.resnets.%d", l, i);
        }
        if (lv->has_resample) {
            int oh, ow;
            pd_conv_out_size(&lv->resample, h, w, &oh, &ow);
            float *dst = other_buf(&s, (size_t)oh * (size_t)ow * (size_t)c);   // [h/2, w/2, c]
            pd_conv_forward(nn, &lv->resample, cur_buf(&s), h, w, dst, PD_ACT_NONE, NULL);
            swap(&s);
            h = oh;
            w = ow;
        }
        tap_fmt(tap, cur_buf(&s), h, w, c, "encoder.down_blocks.%d", l, 0);
    }
    mid_forward(nn, &m->enc, &s, h, w, "encoder", scratch, tap);
    /* moments = quant_conv(conv_out(silu(norm_out(x))))   // [h, w, 2 lc] */
    const size_t n_mom = (size_t)h * (size_t)w * 2 * (size_t)lc;
    pd_conv_forward_gn(nn, &m->enc.conv_out, &m->enc.norm_out, true, cur_buf(&s), h, w, other_buf(&s, n_mom),
                       PD_ACT_NONE, NULL, scratch);
    swap(&s);
    tap_call(tap, "encoder.conv_out", cur_buf(&s), h, w, 2 * lc);
    if (m->has_quant) {
        pd_conv_forward(nn, &m->quant_conv, cur_buf(&s), h, w, other_buf(&s, n_mom), PD_ACT_NONE, NULL);
        swap(&s);
        tap_call(tap, "quant_conv", cur_buf(&s), h, w, 2 * lc);
    }
    {
        const float *mom = cur_buf(&s);
        for (size_t px = 0; px < (size_t)h * (size_t)w; px++) {
            const float *mp = mom + px * 2 * (size_t)lc;
            for (int i = 0; i < lc; i++) {
                mean[px * (size_t)lc + (size_t)i] = mp[i];
                float lv = mp[lc + i];
                logvar[px * (size_t)lc + (size_t)i] = lv < -30.0f ? -30.0f : lv > 20.0f ? 20.0f : lv;
            }
        }
    }
done:
    pd_arena_reset(scratch, mark);
    return st;
}

/* ---- conversions ------------------------------------------------------------------- */

void pd_nchw_to_nhwc(float *dst, const float *src, int c, int h, int w) {
    const size_t hw = (size_t)h * (size_t)w;
    for (size_t p = 0; p < hw; p++)
        for (int i = 0; i < c; i++) dst[p * (size_t)c + (size_t)i] = src[(size_t)i * hw + p];
}

void pd_nhwc_to_nchw(float *dst, const float *src, int h, int w, int c) {
    const size_t hw = (size_t)h * (size_t)w;
    for (size_t p = 0; p < hw; p++)
        for (int i = 0; i < c; i++) dst[(size_t)i * hw + p] = src[p * (size_t)c + (size_t)i];
}

void pd_vae_z_from_latents(const pd_vae_config *cfg, float *z, const float *latents, int h, int w) {
    const int c = cfg->arch.latent_channels;
    const size_t hw = (size_t)h * (size_t)w;
    for (size_t p = 0; p < hw; p++)
        for (int i = 0; i < c; i++) {
            float v = latents[(size_t)i * hw + p] / cfg->scaling_factor;
            z[p * (size_t)c + (size_t)i] = cfg->shift_factor != 0.0f ? v + cfg->shift_factor : v;
        }
}

void pd_vae_latents_from_moments(const pd_vae_config *cfg, float *latents, const float *mean,
                                 const float *logvar, const float *eps, int h, int w) {
    const int c = cfg->arch.latent_channels;
    const size_t hw = (size_t)h * (size_t)w;
    for (size_t p = 0; p < hw; p++)
        for (int i = 0; i < c; i++) {
            const size_t o = (size_t)i * hw + p, q = p * (size_t)c + (size_t)i;
            float std = expf(0.5f * logvar[q]);
            float x = mean[q] + std * eps[o];
            if (cfg->shift_factor != 0.0f) x -= cfg->shift_factor;
            latents[o] = x * cfg->scaling_factor;
        }
}

void pd_vae_image_to_u8(uint8_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = src[i] / 2.0f + 0.5f;
        v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f;   /* NaN -> 0 */
        dst[i] = (uint8_t)rintf(v * 255.0f);
    }
}

void pd_vae_image_from_u8(float *dst, const uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)src[i] / 255.0f * 2.0f - 1.0f;
}
