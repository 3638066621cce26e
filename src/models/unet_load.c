/*
 * unet_load.c - the UNet's configuration (tensor shapes + configs + family values) and
 * weight loading: key tables -> struct tree, once. The forward is in unet.c.
 *
 * Configuration sources, in order:
 *   structure and widths   the tensors (pd_unet_probe, then shapes of the time/add
 *                          embeddings and of each level's first transformer)
 *   attention heads        unet config "num_attention_heads", else "attention_head_dim"
 *                          (which diffusers uses as the number of heads: SD1 8, SD2
 *                          [5,10,20,20], SDXL [5,10,20]), else LDM-style "num_heads" /
 *                          "num_head_channels", else derived.unet_num_heads_per_level,
 *                          else the family: SD1 8 heads, SD2/SDXL head dim 64.
 *   add-time width         "addition_time_embed_dim", else 256 (SDXL)
 *   GroupNorm              "norm_num_groups" (32), "norm_eps" (1e-5)
 *   sinusoid               "flip_sin_to_cos" (true), "freq_shift" (0)
 * A config that asks for something this engine does not implement (another time
 * embedding type, class embeddings, scale-shift resnets, cross-attention-only blocks)
 * is refused by name rather than silently mis-run.
 *
 * Traps:
 *   - The mid block uses the heads of the last level, even when that level has no
 *     attention of its own (SD1: level 3); a null per-level entry falls back to the
 *     family rule.
 *   - The tiny test models do not follow the real head conventions: trust the config.
 *   - Up block i is level n_levels-1-i for heads and widths.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet.h"

/* ---- configuration -------------------------------------------------------------- */

static pd_status shape_error(const pd_model_src *src, const char *rel, const char *what,
                             pd_error *err) {
    char full[512];
    pd_model_full_name(src, PD_COMP_UNET, rel, full, sizeof full);
    return pd_error_set(err, PD_ERR_SHAPE, "unet: tensor '%s' %s", full, what);
}

static pd_status missing(const pd_model_src *src, const char *rel, pd_error *err) {
    char full[512];
    pd_model_full_name(src, PD_COMP_UNET, rel, full, sizeof full);
    return pd_error_set(err, PD_ERR_MISSING, "unet: tensor '%s' is missing", full);
}

/* A 2-D tensor's dims (each in 1..65536). */
static pd_status dims2(const pd_model_src *src, const char *rel, int *d0, int *d1, pd_error *err) {
    const pd_st_tensor *t = pd_model_find(src, PD_COMP_UNET, rel);
    if (!t) return missing(src, rel, err);
    if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1 || t->shape[0] > 65536 || t->shape[1] > 65536)
        return shape_error(src, rel, "must be a 2-D Linear weight", err);
    *d0 = (int)t->shape[0];
    *d1 = (int)t->shape[1];
    return PD_OK;
}

/* Transformer widths at a site: inner (proj_in rows), GEGLU width, context width,
 * whether the projections are Linear. */
static pd_status tf_dims(const pd_model_src *src, const pd_unet_arch *a, pd_unet_site site,
                         int block, int index, int *inner, int *ff, int *ctx, bool *linear,
                         pd_error *err) {
    char prefix[256], rel[384];
    pd_unet_site_prefix(a, site, block, index, prefix, sizeof prefix);
    snprintf(rel, sizeof rel, "%sproj_in.weight", prefix);
    const pd_st_tensor *p = pd_model_find(src, PD_COMP_UNET, rel);
    if (!p) return missing(src, rel, err);
    if ((p->ndim != 2 && p->ndim != 4) || p->shape[0] < 1 || p->shape[0] > 65536)
        return shape_error(src, rel, "must be [inner, c] or [inner, c, 1, 1]", err);
    *inner = (int)p->shape[0];
    *linear = p->ndim == 2;
    int d0 = 0, d1 = 0;
    snprintf(rel, sizeof rel, "%stransformer_blocks.0.ff.net.0.proj.weight", prefix);
    pd_status st = dims2(src, rel, &d0, &d1, err);
    if (st != PD_OK) return st;
    if (d0 % 2 != 0) return shape_error(src, rel, "must have an even number of rows (GEGLU)", err);
    *ff = d0 / 2;
    snprintf(rel, sizeof rel, "%stransformer_blocks.0.attn2.to_k.weight", prefix);
    st = dims2(src, rel, &d0, ctx, err);
    return st;
}

/* Integer i of a config value that is a number or an array (per level); 0 when absent,
 * null or not a positive integer. */
static int per_level_int(const pd_json *v, int level) {
    int64_t x = 0;
    if (!v) return 0;
    if (v->type == PD_JSON_ARRAY) v = pd_json_at(v, (size_t)level);
    if (!v || !pd_json_as_int64(v, &x) || x < 1 || x > 65536) return 0;
    return (int)x;
}

static bool json_present(const pd_json *v) { return v && v->type != PD_JSON_NULL; }

/* Heads of a transformer `inner` wide at `level`. */
static int resolve_heads(const pd_model_src *src, const pd_unet_config *cfg, int level, int inner) {
    const pd_json *jc = src->comp[PD_COMP_UNET].config;
    int h = 0;
    if (jc) {
        const pd_json *v = pd_json_get(jc, "num_attention_heads");
        if (!json_present(v)) v = pd_json_get(jc, "attention_head_dim");
        h = per_level_int(v, level);
        if (!h) h = per_level_int(pd_json_get(jc, "num_heads"), level);
        if (!h) {
            int hd = per_level_int(pd_json_get(jc, "num_head_channels"), level);
            if (hd > 0 && inner % hd == 0) h = inner / hd;
        }
    }
    if (!h && src->derived) h = per_level_int(pd_json_get(src->derived, "unet_num_heads_per_level"), level);
    if (!h) {
        bool sd1 = src->family == PD_FAMILY_SD1 ||
                   (src->family == PD_FAMILY_UNKNOWN && cfg->ctx_dim == 768);
        h = sd1 ? 8 : (inner >= 64 ? inner / 64 : 1);
    }
    return h;
}

/* Refuses config settings the forward does not implement. */
static pd_status check_config(const pd_json *jc, pd_error *err) {
    if (!jc) return PD_OK;
    static const struct {
        const char *key, *want;
    } strs[] = {
        {"time_embedding_type", "positional"}, {"resnet_time_scale_shift", "default"},
        {"act_fn", "silu"},                    {"attention_type", "default"},
    };
    for (size_t i = 0; i < PD_COUNT(strs); i++) {
        const char *s = pd_json_get_string(jc, strs[i].key, NULL);
        if (s && strcmp(s, strs[i].want) != 0)
            return pd_error_set(err, PD_ERR_UNSUPPORTED, "unet: config %s \"%s\" is not supported (only \"%s\")",
                                strs[i].key, s, strs[i].want);
    }
    static const char *const must_be_null[] = {"class_embed_type", "encoder_hid_dim_type",
                                               "time_embedding_act_fn", "timestep_post_act"};
    for (size_t i = 0; i < PD_COUNT(must_be_null); i++)
        if (json_present(pd_json_get(jc, must_be_null[i])))
            return pd_error_set(err, PD_ERR_UNSUPPORTED, "unet: config %s is set; not supported",
                                must_be_null[i]);
    const char *add = pd_json_get_string(jc, "addition_embed_type", NULL);
    if (add && strcmp(add, "text_time") != 0)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "unet: config addition_embed_type \"%s\" is not supported "
                            "(only \"text_time\")", add);
    bool b = false;
    if (pd_json_as_bool(pd_json_get(jc, "only_cross_attention"), &b) && b)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "unet: config only_cross_attention is not supported");
    if (pd_json_as_bool(pd_json_get(jc, "dual_cross_attention"), &b) && b)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "unet: config dual_cross_attention is not supported");
    return PD_OK;
}

pd_status pd_unet_read_config(pd_unet_config *cfg, const pd_model_src *src, pd_error *err) {
    memset(cfg, 0, sizeof *cfg);
    pd_unet_arch *a = &cfg->arch;
    pd_status st = pd_unet_probe(src, a, err);
    if (st != PD_OK) return st;
    const pd_json *jc = src->comp[PD_COMP_UNET].config;
    if ((st = check_config(jc, err)) != PD_OK) return st;
    char rel[256];

    /* Time embedding: linear_1 [temb, sinusoid width]. */
    pd_unet_key_name(a->naming, PD_UNET_TIME1_W, rel, sizeof rel);
    if ((st = dims2(src, rel, &cfg->temb_dim, &cfg->time_proj_dim, err)) != PD_OK) return st;
    bool flip = true;
    cfg->flip_sin_to_cos = jc && pd_json_as_bool(pd_json_get(jc, "flip_sin_to_cos"), &flip) ? flip : true;
    cfg->freq_shift = jc ? (float)pd_json_get_double(jc, "freq_shift", 0.0) : 0.0f;

    if (a->has_cond_proj) {
        int d0 = 0;
        pd_unet_key_name(a->naming, PD_UNET_COND_PROJ_W, rel, sizeof rel);
        if ((st = dims2(src, rel, &d0, &cfg->time_cond_proj_dim, err)) != PD_OK) return st;
        if (d0 != cfg->time_proj_dim) return shape_error(src, rel, "rows must equal the timestep sinusoid width", err);
    }
    if (a->has_add_embedding) {
        int d0 = 0;
        pd_unet_key_name(a->naming, PD_UNET_ADD1_W, rel, sizeof rel);
        if ((st = dims2(src, rel, &d0, &cfg->adm_in_channels, err)) != PD_OK) return st;
        int64_t add_dim = jc ? pd_json_get_int(jc, "addition_time_embed_dim", 256) : 256;
        cfg->addition_time_embed_dim = add_dim >= 1 && add_dim <= 65536 ? (int)add_dim : 256;
        cfg->n_time_ids = 6;
        cfg->text_embeds_dim = cfg->adm_in_channels - cfg->n_time_ids * cfg->addition_time_embed_dim;
        if (cfg->text_embeds_dim < 1)
            return pd_error_set(err, PD_ERR_UNSUPPORTED,
                                "unet: add embedding input width %d is too small for %d time ids of %d "
                                "(set addition_time_embed_dim in the config)",
                                cfg->adm_in_channels, cfg->n_time_ids, cfg->addition_time_embed_dim);
    }

    int64_t groups = jc ? pd_json_get_int(jc, "norm_num_groups", 0) : 0;
    if (groups < 1 && src->derived) groups = pd_json_get_int(src->derived, "unet_groupnorm_groups", 0);
    cfg->groups = groups >= 1 && groups <= 65536 ? (int)groups : 32;
    cfg->norm_eps = jc ? (float)pd_json_get_double(jc, "norm_eps", 1e-5) : 1e-5f;

    /* Transformer widths and heads per level (from the first transformer there). */
    bool have_ctx = false;
    for (int l = 0; l < a->n_levels; l++) {
        int up = a->n_levels - 1 - l;
        pd_unet_site site;
        int block;
        if (a->down_attn[l]) site = PD_UNET_SITE_DOWN_ATTN, block = l;
        else if (a->up_attn[up]) site = PD_UNET_SITE_UP_ATTN, block = up;
        else continue;
        int ctx = 0;
        bool lin = false;
        st = tf_dims(src, a, site, block, 0, &cfg->tf_inner[l], &cfg->tf_ff[l], &ctx, &lin, err);
        if (st != PD_OK) return st;
        if (have_ctx && (ctx != cfg->ctx_dim || lin != cfg->linear_proj))
            return pd_error_set(err, PD_ERR_SHAPE, "unet: transformers disagree on the context width "
                                "(%d vs %d) or projection kind", ctx, cfg->ctx_dim);
        cfg->ctx_dim = ctx;
        cfg->linear_proj = lin;
        have_ctx = true;
    }
    if (a->mid_attn) {
        int ctx = 0;
        bool lin = false;
        st = tf_dims(src, a, PD_UNET_SITE_MID_ATTN, 0, 0, &cfg->mid_inner, &cfg->mid_ff, &ctx, &lin, err);
        if (st != PD_OK) return st;
        if (have_ctx && ctx != cfg->ctx_dim)
            return pd_error_set(err, PD_ERR_SHAPE, "unet: mid-block context width %d differs from %d",
                                ctx, cfg->ctx_dim);
        cfg->ctx_dim = ctx;
        cfg->linear_proj = lin;
        have_ctx = true;
    }
    for (int l = 0; l < a->n_levels; l++)
        cfg->n_heads[l] = resolve_heads(src, cfg, l, cfg->tf_inner[l] ? cfg->tf_inner[l] : a->level_channels[l]);
    if (a->mid_attn) cfg->mid_heads = resolve_heads(src, cfg, a->n_levels - 1, cfg->mid_inner);
    return PD_OK;
}

/* ---- loading ------------------------------------------------------------------ */

typedef struct unet_loader {
    pd_load_ctx lc;
    const pd_kernels *kt;
    const pd_unet_config *cfg;
} unet_loader;

static pd_status load_linear(unet_loader *ld, pd_unet_key wkey, int bkey, int n, int k,
                             pd_packed_w *out, pd_error *err) {
    char wn[128], bn[128] = "";
    pd_unet_naming naming = ld->cfg->arch.naming;
    pd_unet_key_name(naming, wkey, wn, sizeof wn);
    const pd_st_tensor *w = pd_model_find(ld->lc.src, PD_COMP_UNET, wn), *b = NULL;
    int64_t wshape[2] = {n, k}, bshape[1] = {n};
    pd_status st = pd_nn_check(&ld->lc, w, wn, 2, wshape, err);
    if (st == PD_OK && bkey >= 0) {
        pd_unet_key_name(naming, (pd_unet_key)bkey, bn, sizeof bn);
        b = pd_model_find(ld->lc.src, PD_COMP_UNET, bn);
        st = pd_nn_check(&ld->lc, b, bn, 1, bshape, err);
    }
    if (st == PD_OK) st = pd_nn_pack(&ld->lc, ld->kt, out, w, wn, b, bn, n, k, false, err);
    return st;
}

static pd_status load_res(unet_loader *ld, pd_resblock *r, pd_unet_site site, int block, int index,
                          pd_error *err) {
    const pd_unet_config *cfg = ld->cfg;
    char prefix[256];
    char names[PD_UNET_RES_KEY_COUNT][384];
    pd_unet_site_prefix(&cfg->arch, site, block, index, prefix, sizeof prefix);
    for (int k = 0; k < PD_UNET_RES_KEY_COUNT; k++) {
        char rel[128];
        pd_unet_res_key_name(cfg->arch.naming, (pd_unet_res_key)k, rel, sizeof rel);
        snprintf(names[k], sizeof names[k], "%s%s", prefix, rel);
    }
    pd_resblock_names rn = {
        names[PD_UNET_RES_NORM1_W], names[PD_UNET_RES_NORM1_B], names[PD_UNET_RES_CONV1_W],
        names[PD_UNET_RES_CONV1_B], names[PD_UNET_RES_TEMB_W], names[PD_UNET_RES_TEMB_B],
        names[PD_UNET_RES_NORM2_W], names[PD_UNET_RES_NORM2_B], names[PD_UNET_RES_CONV2_W],
        names[PD_UNET_RES_CONV2_B], names[PD_UNET_RES_SKIP_W], names[PD_UNET_RES_SKIP_B],
    };
    int cin = 0, cout = 0;
    pd_unet_res_channels(&cfg->arch, site, block, index, &cin, &cout);
    return pd_resblock_load(&ld->lc, ld->kt, r, &rn, cin, cout, cfg->temb_dim, cfg->groups,
                            cfg->norm_eps, err);
}

static pd_status load_attn(unet_loader *ld, pd_transformer *t, pd_unet_site site, int block,
                           int index, int level, pd_error *err) {
    const pd_unet_config *cfg = ld->cfg;
    const bool mid = site == PD_UNET_SITE_MID_ATTN;
    char prefix[256];
    pd_unet_site_prefix(&cfg->arch, site, block, index, prefix, sizeof prefix);
    int c = cfg->arch.level_channels[level];
    int heads = mid ? cfg->mid_heads : cfg->n_heads[level];
    pd_status st = pd_transformer_load(&ld->lc, ld->kt, t, prefix, c, heads, cfg->groups, err);
    if (st != PD_OK) return st;
    int want_inner = mid ? cfg->mid_inner : cfg->tf_inner[level];
    int want_ff = mid ? cfg->mid_ff : cfg->tf_ff[level];
    if (t->inner != want_inner || t->ff_inner != want_ff || t->ctx_dim != cfg->ctx_dim) {
        char full[512];
        pd_model_full_name(ld->lc.src, PD_COMP_UNET, prefix, full, sizeof full);
        st = pd_error_set(err, PD_ERR_SHAPE,
                          "unet: transformer '%s' is %d wide (GEGLU %d, context %d); this level has %d (%d, %d)",
                          full, t->inner, t->ff_inner, t->ctx_dim, want_inner, want_ff, cfg->ctx_dim);
        pd_transformer_free(t);
    }
    return st;
}

static pd_status load_conv(unet_loader *ld, pd_conv *c, pd_unet_site site, int block, int ch,
                           int stride, pd_error *err) {
    char prefix[256], wn[320], bn[320];
    pd_unet_site_prefix(&ld->cfg->arch, site, block, 0, prefix, sizeof prefix);
    snprintf(wn, sizeof wn, "%sweight", prefix);
    snprintf(bn, sizeof bn, "%sbias", prefix);
    return pd_conv_load(&ld->lc, ld->kt, c, wn, bn, ch, ch, 3, stride, 1, err);
}

static pd_status load_top_conv(unet_loader *ld, pd_conv *c, pd_unet_key wkey, pd_unet_key bkey,
                               int cout, int cin, pd_error *err) {
    char wn[128], bn[128];
    pd_unet_key_name(ld->cfg->arch.naming, wkey, wn, sizeof wn);
    pd_unet_key_name(ld->cfg->arch.naming, bkey, bn, sizeof bn);
    return pd_conv_load(&ld->lc, ld->kt, c, wn, bn, cout, cin, 3, 1, 1, err);
}

pd_status pd_unet_load(pd_unet *out, const pd_model_src *src, const pd_kernels *kt, pd_pool *pool,
                       pd_error *err) {
    memset(out, 0, sizeof *out);
    pd_unet_config *cfg = &out->cfg;
    pd_status st = pd_unet_read_config(cfg, src, err);
    if (st != PD_OK) return st;
    const pd_unet_arch *a = &cfg->arch;
    unet_loader ld = {{src, PD_COMP_UNET, pool}, kt, cfg};
    /* The time and added-condition embeddings steer every block (a few M parameters):
     * they stay unquantized under a quantized weight type (as stored when a file holds
     * them quantized). */
    pd_kernels kt_embed = *kt;
    kt_embed.wquant = PD_DTYPE_INVALID;
    unet_loader le = {{src, PD_COMP_UNET, pool}, &kt_embed, cfg};
    const int n = a->n_levels, L = a->layers_per_block, t = cfg->temb_dim;

    st = load_top_conv(&ld, &out->conv_in, PD_UNET_CONV_IN_W, PD_UNET_CONV_IN_B, a->model_channels,
                       a->in_channels, err);
    if (st == PD_OK) st = load_linear(&le, PD_UNET_TIME1_W, PD_UNET_TIME1_B, t, cfg->time_proj_dim, &out->time1, err);
    if (st == PD_OK) st = load_linear(&le, PD_UNET_TIME2_W, PD_UNET_TIME2_B, t, t, &out->time2, err);
    if (st == PD_OK && cfg->time_cond_proj_dim > 0)
        st = load_linear(&le, PD_UNET_COND_PROJ_W, -1, cfg->time_proj_dim, cfg->time_cond_proj_dim,
                         &out->cond_proj, err);
    if (st == PD_OK && cfg->adm_in_channels > 0) {
        st = load_linear(&le, PD_UNET_ADD1_W, PD_UNET_ADD1_B, t, cfg->adm_in_channels, &out->add1, err);
        if (st == PD_OK) st = load_linear(&le, PD_UNET_ADD2_W, PD_UNET_ADD2_B, t, t, &out->add2, err);
    }
    if (st != PD_OK) goto fail;

    for (int l = 0; l < n; l++) {
        pd_unet_down *D = &out->down[l];
        for (int j = 0; j < L && st == PD_OK; j++) {
            st = load_res(&ld, &D->res[j], PD_UNET_SITE_DOWN_RES, l, j, err);
            if (st == PD_OK && a->down_attn[l])
                st = load_attn(&ld, &D->attn[j], PD_UNET_SITE_DOWN_ATTN, l, j, l, err);
        }
        if (st == PD_OK && l < n - 1)
            st = load_conv(&ld, &D->down, PD_UNET_SITE_DOWNSAMPLE, l, a->level_channels[l], 2, err);
        if (st != PD_OK) goto fail;
    }
    st = load_res(&ld, &out->mid_res[0], PD_UNET_SITE_MID_RES, 0, 0, err);
    if (st == PD_OK && a->mid_attn) st = load_attn(&ld, &out->mid_attn, PD_UNET_SITE_MID_ATTN, 0, 0, n - 1, err);
    if (st == PD_OK) st = load_res(&ld, &out->mid_res[1], PD_UNET_SITE_MID_RES, 0, 1, err);
    if (st != PD_OK) goto fail;
    for (int i = 0; i < n; i++) {
        pd_unet_up *U = &out->up[i];
        int level = n - 1 - i;
        for (int j = 0; j <= L && st == PD_OK; j++) {
            st = load_res(&ld, &U->res[j], PD_UNET_SITE_UP_RES, i, j, err);
            if (st == PD_OK && a->up_attn[i])
                st = load_attn(&ld, &U->attn[j], PD_UNET_SITE_UP_ATTN, i, j, level, err);
        }
        if (st == PD_OK && i < n - 1)
            st = load_conv(&ld, &U->up, PD_UNET_SITE_UPSAMPLE, i, a->level_channels[level], 1, err);
        if (st != PD_OK) goto fail;
    }
    {
        char wn[128], bn[128];
        pd_unet_key_name(a->naming, PD_UNET_NORM_OUT_W, wn, sizeof wn);
        pd_unet_key_name(a->naming, PD_UNET_NORM_OUT_B, bn, sizeof bn);
        st = pd_groupnorm_load(&ld.lc, &out->norm_out, wn, bn, a->level_channels[0], cfg->groups,
                               cfg->norm_eps, err);
    }
    if (st == PD_OK)
        st = load_top_conv(&ld, &out->conv_out, PD_UNET_CONV_OUT_W, PD_UNET_CONV_OUT_B, a->out_channels,
                           a->level_channels[0], err);
    if (st != PD_OK) goto fail;
    return PD_OK;
fail:
    pd_unet_free(out);
    return st;
}

void pd_unet_free(pd_unet *m) {
    if (!m) return;
    pd_conv_free(&m->conv_in);
    pd_packed_w_free(&m->time1);
    pd_packed_w_free(&m->time2);
    pd_packed_w_free(&m->cond_proj);
    pd_packed_w_free(&m->add1);
    pd_packed_w_free(&m->add2);
    for (int l = 0; l < PD_UNET_MAX_LEVELS; l++) {
        for (int j = 0; j < PD_UNET_MAX_LAYERS; j++) {
            pd_resblock_free(&m->down[l].res[j]);
            pd_transformer_free(&m->down[l].attn[j]);
        }
        pd_conv_free(&m->down[l].down);
        for (int j = 0; j <= PD_UNET_MAX_LAYERS; j++) {
            pd_resblock_free(&m->up[l].res[j]);
            pd_transformer_free(&m->up[l].attn[j]);
        }
        pd_conv_free(&m->up[l].up);
    }
    pd_resblock_free(&m->mid_res[0]);
    pd_resblock_free(&m->mid_res[1]);
    pd_transformer_free(&m->mid_attn);
    pd_groupnorm_free(&m->norm_out);
    pd_conv_free(&m->conv_out);
    memset(m, 0, sizeof *m);
}
