/*
 * keys_unet.c - UNet key tables (LDM and diffusers namings), the structure probe, and
 * the list of expected tensors. See keys_unet.h for the name map.
 *
 * Invariants: every name built here is component-relative; a probe never reads tensor
 * data, only names and shapes; loops are bounded by the PD_UNET_MAX_* limits, so a
 * hostile checkpoint cannot make them run long.
 */
#include "io/keys_unet.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct name_pair {
    const char *ldm;         /* NULL: not in this naming */
    const char *diffusers;
} name_pair;

static const name_pair TOP_KEYS[PD_UNET_KEY_COUNT] = {
    [PD_UNET_CONV_IN_W] = {"input_blocks.0.0.weight", "conv_in.weight"},
    [PD_UNET_CONV_IN_B] = {"input_blocks.0.0.bias", "conv_in.bias"},
    [PD_UNET_TIME1_W] = {"time_embed.0.weight", "time_embedding.linear_1.weight"},
    [PD_UNET_TIME1_B] = {"time_embed.0.bias", "time_embedding.linear_1.bias"},
    [PD_UNET_TIME2_W] = {"time_embed.2.weight", "time_embedding.linear_2.weight"},
    [PD_UNET_TIME2_B] = {"time_embed.2.bias", "time_embedding.linear_2.bias"},
    [PD_UNET_COND_PROJ_W] = {NULL, "time_embedding.cond_proj.weight"},
    [PD_UNET_ADD1_W] = {"label_emb.0.0.weight", "add_embedding.linear_1.weight"},
    [PD_UNET_ADD1_B] = {"label_emb.0.0.bias", "add_embedding.linear_1.bias"},
    [PD_UNET_ADD2_W] = {"label_emb.0.2.weight", "add_embedding.linear_2.weight"},
    [PD_UNET_ADD2_B] = {"label_emb.0.2.bias", "add_embedding.linear_2.bias"},
    [PD_UNET_NORM_OUT_W] = {"out.0.weight", "conv_norm_out.weight"},
    [PD_UNET_NORM_OUT_B] = {"out.0.bias", "conv_norm_out.bias"},
    [PD_UNET_CONV_OUT_W] = {"out.2.weight", "conv_out.weight"},
    [PD_UNET_CONV_OUT_B] = {"out.2.bias", "conv_out.bias"},
};

static const name_pair RES_KEYS[PD_UNET_RES_KEY_COUNT] = {
    [PD_UNET_RES_NORM1_W] = {"in_layers.0.weight", "norm1.weight"},
    [PD_UNET_RES_NORM1_B] = {"in_layers.0.bias", "norm1.bias"},
    [PD_UNET_RES_CONV1_W] = {"in_layers.2.weight", "conv1.weight"},
    [PD_UNET_RES_CONV1_B] = {"in_layers.2.bias", "conv1.bias"},
    [PD_UNET_RES_TEMB_W] = {"emb_layers.1.weight", "time_emb_proj.weight"},
    [PD_UNET_RES_TEMB_B] = {"emb_layers.1.bias", "time_emb_proj.bias"},
    [PD_UNET_RES_NORM2_W] = {"out_layers.0.weight", "norm2.weight"},
    [PD_UNET_RES_NORM2_B] = {"out_layers.0.bias", "norm2.bias"},
    [PD_UNET_RES_CONV2_W] = {"out_layers.3.weight", "conv2.weight"},
    [PD_UNET_RES_CONV2_B] = {"out_layers.3.bias", "conv2.bias"},
    [PD_UNET_RES_SKIP_W] = {"skip_connection.weight", "conv_shortcut.weight"},
    [PD_UNET_RES_SKIP_B] = {"skip_connection.bias", "conv_shortcut.bias"},
};

static const char *const TF_KEYS[PD_UNET_TF_KEY_COUNT] = {
    [PD_UNET_TF_NORM_W] = "norm.weight",
    [PD_UNET_TF_NORM_B] = "norm.bias",
    [PD_UNET_TF_PROJ_IN_W] = "proj_in.weight",
    [PD_UNET_TF_PROJ_IN_B] = "proj_in.bias",
    [PD_UNET_TF_PROJ_OUT_W] = "proj_out.weight",
    [PD_UNET_TF_PROJ_OUT_B] = "proj_out.bias",
    [PD_UNET_TF_LN1_W] = "transformer_blocks.%d.norm1.weight",
    [PD_UNET_TF_LN1_B] = "transformer_blocks.%d.norm1.bias",
    [PD_UNET_TF_Q1] = "transformer_blocks.%d.attn1.to_q.weight",
    [PD_UNET_TF_K1] = "transformer_blocks.%d.attn1.to_k.weight",
    [PD_UNET_TF_V1] = "transformer_blocks.%d.attn1.to_v.weight",
    [PD_UNET_TF_OUT1_W] = "transformer_blocks.%d.attn1.to_out.0.weight",
    [PD_UNET_TF_OUT1_B] = "transformer_blocks.%d.attn1.to_out.0.bias",
    [PD_UNET_TF_LN2_W] = "transformer_blocks.%d.norm2.weight",
    [PD_UNET_TF_LN2_B] = "transformer_blocks.%d.norm2.bias",
    [PD_UNET_TF_Q2] = "transformer_blocks.%d.attn2.to_q.weight",
    [PD_UNET_TF_K2] = "transformer_blocks.%d.attn2.to_k.weight",
    [PD_UNET_TF_V2] = "transformer_blocks.%d.attn2.to_v.weight",
    [PD_UNET_TF_OUT2_W] = "transformer_blocks.%d.attn2.to_out.0.weight",
    [PD_UNET_TF_OUT2_B] = "transformer_blocks.%d.attn2.to_out.0.bias",
    [PD_UNET_TF_LN3_W] = "transformer_blocks.%d.norm3.weight",
    [PD_UNET_TF_LN3_B] = "transformer_blocks.%d.norm3.bias",
    [PD_UNET_TF_FF1_W] = "transformer_blocks.%d.ff.net.0.proj.weight",
    [PD_UNET_TF_FF1_B] = "transformer_blocks.%d.ff.net.0.proj.bias",
    [PD_UNET_TF_FF2_W] = "transformer_blocks.%d.ff.net.2.weight",
    [PD_UNET_TF_FF2_B] = "transformer_blocks.%d.ff.net.2.bias",
};

static const char *pick(const name_pair *p, pd_unet_naming naming) {
    return naming == PD_UNET_NAMING_LDM         ? p->ldm
           : naming == PD_UNET_NAMING_DIFFUSERS ? p->diffusers
                                                : NULL;
}

static bool fmt_ok(int n, size_t size) { return n > 0 && (size_t)n < size; }

bool pd_unet_key_name(pd_unet_naming naming, pd_unet_key key, char *buf, size_t buf_size) {
    if ((unsigned)key >= PD_UNET_KEY_COUNT) return false;
    const char *s = pick(&TOP_KEYS[key], naming);
    return s && fmt_ok(snprintf(buf, buf_size, "%s", s), buf_size);
}

bool pd_unet_res_key_name(pd_unet_naming naming, pd_unet_res_key key, char *buf,
                          size_t buf_size) {
    if ((unsigned)key >= PD_UNET_RES_KEY_COUNT) return false;
    const char *s = pick(&RES_KEYS[key], naming);
    return s && fmt_ok(snprintf(buf, buf_size, "%s", s), buf_size);
}

bool pd_unet_tf_key_name(pd_unet_tf_key key, int block, char *buf, size_t buf_size) {
    if ((unsigned)key >= PD_UNET_TF_KEY_COUNT) return false;
    int n = key >= PD_UNET_TF_FIRST_BLOCK_KEY ? snprintf(buf, buf_size, TF_KEYS[key], block)
                                              : snprintf(buf, buf_size, "%s", TF_KEYS[key]);
    return fmt_ok(n, buf_size);
}

bool pd_unet_site_prefix(const pd_unet_arch *a, pd_unet_site site, int block, int index,
                         char *buf, size_t buf_size) {
    const int L = a->layers_per_block;
    int n = -1;
    if (a->naming == PD_UNET_NAMING_LDM) {
        switch (site) {
        case PD_UNET_SITE_DOWN_RES:
            n = snprintf(buf, buf_size, "input_blocks.%d.0.", 1 + block * (L + 1) + index);
            break;
        case PD_UNET_SITE_DOWN_ATTN:
            n = snprintf(buf, buf_size, "input_blocks.%d.1.", 1 + block * (L + 1) + index);
            break;
        case PD_UNET_SITE_DOWNSAMPLE:
            n = snprintf(buf, buf_size, "input_blocks.%d.0.op.", 1 + block * (L + 1) + L);
            break;
        case PD_UNET_SITE_MID_RES:
            n = snprintf(buf, buf_size, "middle_block.%d.", index == 0 ? 0 : (a->mid_attn ? 2 : 1));
            break;
        case PD_UNET_SITE_MID_ATTN: n = snprintf(buf, buf_size, "middle_block.1."); break;
        case PD_UNET_SITE_UP_RES:
            n = snprintf(buf, buf_size, "output_blocks.%d.0.", block * (L + 1) + index);
            break;
        case PD_UNET_SITE_UP_ATTN:
            n = snprintf(buf, buf_size, "output_blocks.%d.1.", block * (L + 1) + index);
            break;
        case PD_UNET_SITE_UPSAMPLE:
            n = snprintf(buf, buf_size, "output_blocks.%d.%d.conv.", block * (L + 1) + L,
                         a->up_attn[block] ? 2 : 1);
            break;
        }
    } else if (a->naming == PD_UNET_NAMING_DIFFUSERS) {
        switch (site) {
        case PD_UNET_SITE_DOWN_RES:
            n = snprintf(buf, buf_size, "down_blocks.%d.resnets.%d.", block, index);
            break;
        case PD_UNET_SITE_DOWN_ATTN:
            n = snprintf(buf, buf_size, "down_blocks.%d.attentions.%d.", block, index);
            break;
        case PD_UNET_SITE_DOWNSAMPLE:
            n = snprintf(buf, buf_size, "down_blocks.%d.downsamplers.0.conv.", block);
            break;
        case PD_UNET_SITE_MID_RES: n = snprintf(buf, buf_size, "mid_block.resnets.%d.", index); break;
        case PD_UNET_SITE_MID_ATTN: n = snprintf(buf, buf_size, "mid_block.attentions.0."); break;
        case PD_UNET_SITE_UP_RES:
            n = snprintf(buf, buf_size, "up_blocks.%d.resnets.%d.", block, index);
            break;
        case PD_UNET_SITE_UP_ATTN:
            n = snprintf(buf, buf_size, "up_blocks.%d.attentions.%d.", block, index);
            break;
        case PD_UNET_SITE_UPSAMPLE:
            n = snprintf(buf, buf_size, "up_blocks.%d.upsamplers.0.conv.", block);
            break;
        }
    }
    return fmt_ok(n, buf_size);
}

void pd_unet_res_channels(const pd_unet_arch *a, pd_unet_site site, int block, int index,
                          int *cin, int *cout) {
    const int nl = a->n_levels, L = a->layers_per_block;
    const int *ch = a->level_channels;
    switch (site) {
    case PD_UNET_SITE_DOWN_RES: {
        int prev = block == 0 ? a->model_channels : ch[block - 1];
        *cout = ch[block];
        *cin = index == 0 ? prev : ch[block];
        return;
    }
    case PD_UNET_SITE_UP_RES: {
        /* diffusers: prev_output = reversed[i-1] (deepest for i = 0), output = reversed[i],
         * input = reversed[min(i+1, n-1)]; the last resnet's skip is `input`. */
        int level = nl - 1 - block;
        int out = ch[level];
        int prev_out = block == 0 ? ch[nl - 1] : ch[level + 1];
        int input = ch[level > 0 ? level - 1 : 0];
        int skip = index == L ? input : out;
        *cout = out;
        *cin = (index == 0 ? prev_out : out) + skip;
        return;
    }
    case PD_UNET_SITE_MID_RES:
    default:
        *cin = *cout = ch[nl - 1];
        return;
    }
}

/* ---- probing ------------------------------------------------------------------- */

static const pd_st_tensor *find_fmt(const pd_model_src *m, char *buf, size_t n, const char *fmt,
                                    ...) PD_PRINTF(4, 5);
static const pd_st_tensor *find_fmt(const pd_model_src *m, char *buf, size_t n, const char *fmt,
                                    ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (!fmt_ok(k, n)) return NULL;
    return pd_model_find(m, PD_COMP_UNET, buf);
}

pd_unet_naming pd_unet_detect_naming(const pd_model_src *m) {
    if (pd_model_find(m, PD_COMP_UNET, "conv_in.weight")) return PD_UNET_NAMING_DIFFUSERS;
    if (pd_model_find(m, PD_COMP_UNET, "input_blocks.0.0.weight")) return PD_UNET_NAMING_LDM;
    return PD_UNET_NAMING_NONE;
}

static pd_status missing(const pd_model_src *m, const char *rel, pd_error *err) {
    char full[512];
    pd_model_full_name(m, PD_COMP_UNET, rel, full, sizeof full);
    return pd_error_set(err, PD_ERR_MISSING, "unet: tensor '%s' is missing", full);
}

/* A conv weight [cout, cin, k, k] (k odd): its output and input channels. */
static pd_status conv_shape(const pd_model_src *m, const char *rel, int *cout, int *cin,
                            pd_error *err) {
    const pd_st_tensor *t = pd_model_find(m, PD_COMP_UNET, rel);
    if (!t) return missing(m, rel, err);
    if (t->ndim != 4 || t->shape[0] < 1 || t->shape[1] < 1 || t->shape[0] > 65536 ||
        t->shape[1] > 65536 || t->shape[2] != t->shape[3] || t->shape[2] % 2 == 0) {
        char full[512];
        pd_model_full_name(m, PD_COMP_UNET, rel, full, sizeof full);
        return pd_error_set(err, PD_ERR_SHAPE,
                            "unet: tensor '%s' must be a conv weight [out, in, k, k] with odd k",
                            full);
    }
    *cout = (int)t->shape[0];
    *cin = (int)t->shape[1];
    return PD_OK;
}

/* Number of transformer blocks under prefix (0 when the site has no transformer). */
static int count_depth(const pd_model_src *m, const char *prefix) {
    char name[320];
    int d = 0;
    while (d <= PD_UNET_MAX_DEPTH &&
           find_fmt(m, name, sizeof name, "%stransformer_blocks.%d.norm1.weight", prefix, d))
        d++;
    return d;
}

static pd_status probe_attn(const pd_model_src *m, const pd_unet_arch *a, pd_unet_site site,
                            int block, int index, bool *has, int *depth, pd_error *err) {
    char prefix[256], name[320];
    if (!pd_unet_site_prefix(a, site, block, index, prefix, sizeof prefix))
        return pd_error_set(err, PD_ERR_INTERNAL, "unet: site name too long");
    bool present = find_fmt(m, name, sizeof name, "%snorm.weight", prefix) != NULL;
    int d = present ? count_depth(m, prefix) : 0;
    if (present && d == 0) {
        snprintf(name, sizeof name, "%stransformer_blocks.0.norm1.weight", prefix);
        return missing(m, name, err);
    }
    if (d > PD_UNET_MAX_DEPTH)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "unet: more than %d transformer blocks under '%s'",
                            PD_UNET_MAX_DEPTH, prefix);
    if (has) *has = present;
    *depth = d;
    return PD_OK;
}

static pd_status probe_levels(const pd_model_src *m, pd_unet_arch *a, pd_error *err) {
    char name[256];
    int L = 0, nl = 0;
    if (a->naming == PD_UNET_NAMING_DIFFUSERS) {
        while (L <= PD_UNET_MAX_LAYERS && find_fmt(m, name, sizeof name, "down_blocks.0.resnets.%d.norm1.weight", L))
            L++;
        while (nl <= PD_UNET_MAX_LEVELS && find_fmt(m, name, sizeof name, "down_blocks.%d.resnets.0.norm1.weight", nl))
            nl++;
    } else {
        /* The first downsampler sits right after level 0's resnets. */
        int k = 1;
        while (k <= PD_UNET_MAX_LAYERS + 1 && !find_fmt(m, name, sizeof name, "input_blocks.%d.0.op.weight", k))
            k++;
        if (k <= PD_UNET_MAX_LAYERS + 1) {
            L = k - 1;
            nl = 1;
            while (nl <= PD_UNET_MAX_LEVELS &&
                   find_fmt(m, name, sizeof name, "input_blocks.%d.0.op.weight", 1 + nl * (L + 1) + L))
                nl++;
            nl++;   /* the last level has no downsampler */
        } else {
            while (L <= PD_UNET_MAX_LAYERS &&
                   find_fmt(m, name, sizeof name, "input_blocks.%d.0.in_layers.0.weight", 1 + L))
                L++;
            nl = 1;
        }
    }
    if (L < 1 || nl < 1) {
        const char *want = a->naming == PD_UNET_NAMING_DIFFUSERS ? "down_blocks.0.resnets.0.norm1.weight"
                                                                 : "input_blocks.1.0.in_layers.0.weight";
        return missing(m, want, err);
    }
    if (L > PD_UNET_MAX_LAYERS || nl > PD_UNET_MAX_LEVELS)
        return pd_error_set(err, PD_ERR_UNSUPPORTED,
                            "unet: %d levels of %d resnets (at most %d levels of %d supported)", nl, L,
                            PD_UNET_MAX_LEVELS, PD_UNET_MAX_LAYERS);
    a->layers_per_block = L;
    a->n_levels = nl;
    return PD_OK;
}

pd_status pd_unet_probe(const pd_model_src *m, pd_unet_arch *a, pd_error *err) {
    memset(a, 0, sizeof *a);
    if (!m->comp[PD_COMP_UNET].present)
        return pd_error_set(err, PD_ERR_MISSING, "'%s' has no unet", m->path);
    a->naming = pd_unet_detect_naming(m);
    if (a->naming == PD_UNET_NAMING_NONE) {
        char full[512];
        pd_model_full_name(m, PD_COMP_UNET, "input_blocks.0.0.weight", full, sizeof full);
        return pd_error_set(err, PD_ERR_MISSING,
                            "unet: neither '%s' (LDM names) nor 'conv_in.weight' (diffusers names) found",
                            full);
    }
    char name[256], prefix[256];
    pd_status st;
    pd_unet_key_name(a->naming, PD_UNET_CONV_IN_W, name, sizeof name);
    if ((st = conv_shape(m, name, &a->model_channels, &a->in_channels, err)) != PD_OK) return st;
    int ch_out_in = 0;
    pd_unet_key_name(a->naming, PD_UNET_CONV_OUT_W, name, sizeof name);
    if ((st = conv_shape(m, name, &a->out_channels, &ch_out_in, err)) != PD_OK) return st;

    if ((st = probe_levels(m, a, err)) != PD_OK) return st;

    for (int l = 0; l < a->n_levels; l++) {
        int cout = 0, cin = 0;
        pd_unet_site_prefix(a, PD_UNET_SITE_DOWN_RES, l, 0, prefix, sizeof prefix);
        pd_unet_res_key_name(a->naming, PD_UNET_RES_CONV1_W, name, sizeof name);
        char rel[640];
        snprintf(rel, sizeof rel, "%s%s", prefix, name);
        if ((st = conv_shape(m, rel, &cout, &cin, err)) != PD_OK) return st;
        a->level_channels[l] = cout;
    }

    for (int l = 0; l < a->n_levels; l++) {
        for (int j = 0; j < a->layers_per_block; j++) {
            bool has = false;
            st = probe_attn(m, a, PD_UNET_SITE_DOWN_ATTN, l, j, &has, &a->depth_down[l][j], err);
            if (st != PD_OK) return st;
            if (j == 0) a->down_attn[l] = has;
            if (has != a->down_attn[l]) goto uneven;
        }
        for (int j = 0; j <= a->layers_per_block; j++) {
            bool has = false;
            st = probe_attn(m, a, PD_UNET_SITE_UP_ATTN, l, j, &has, &a->depth_up[l][j], err);
            if (st != PD_OK) return st;
            if (j == 0) a->up_attn[l] = has;
            if (has != a->up_attn[l]) goto uneven;
        }
    }
    st = probe_attn(m, a, PD_UNET_SITE_MID_ATTN, 0, 0, &a->mid_attn, &a->depth_mid, err);
    if (st != PD_OK) return st;

    pd_unet_key_name(a->naming, PD_UNET_ADD1_W, name, sizeof name);
    a->has_add_embedding = pd_model_find(m, PD_COMP_UNET, name) != NULL;
    a->has_cond_proj = pd_unet_key_name(a->naming, PD_UNET_COND_PROJ_W, name, sizeof name) &&
                       pd_model_find(m, PD_COMP_UNET, name) != NULL;
    return PD_OK;
uneven:
    return pd_error_set(err, PD_ERR_UNSUPPORTED,
                        "unet: a block where only some resnets have attention is not supported");
}

/* ---- expected names -------------------------------------------------------------- */

typedef struct name_list {
    const pd_model_src *m;
    char **names;
    int n, cap;
    bool oom;
} name_list;

static void push(name_list *nl, const char *prefix, const char *rel) {
    if (nl->oom) return;
    char r[512], full[640];
    snprintf(r, sizeof r, "%s%s", prefix, rel);
    pd_model_full_name(nl->m, PD_COMP_UNET, r, full, sizeof full);
    if (nl->n == nl->cap) {
        int ncap = nl->cap ? nl->cap * 2 : 256;
        char **nn = realloc(nl->names, (size_t)ncap * sizeof *nn);
        if (!nn) {
            nl->oom = true;
            return;
        }
        nl->names = nn;
        nl->cap = ncap;
    }
    char *d = strdup(full);
    if (!d) {
        nl->oom = true;
        return;
    }
    nl->names[nl->n++] = d;
}

static void push_res(name_list *nl, const pd_unet_arch *a, pd_unet_site site, int block, int index) {
    char prefix[256], rel[128];
    int cin = 0, cout = 0;
    pd_unet_site_prefix(a, site, block, index, prefix, sizeof prefix);
    pd_unet_res_channels(a, site, block, index, &cin, &cout);
    for (int k = 0; k < PD_UNET_RES_KEY_COUNT; k++) {
        if ((k == PD_UNET_RES_SKIP_W || k == PD_UNET_RES_SKIP_B) && cin == cout) continue;
        pd_unet_res_key_name(a->naming, (pd_unet_res_key)k, rel, sizeof rel);
        push(nl, prefix, rel);
    }
}

static void push_attn(name_list *nl, const pd_unet_arch *a, pd_unet_site site, int block, int index,
                      int depth) {
    char prefix[256], rel[128];
    pd_unet_site_prefix(a, site, block, index, prefix, sizeof prefix);
    for (int k = 0; k < PD_UNET_TF_KEY_COUNT; k++) {
        int reps = k >= PD_UNET_TF_FIRST_BLOCK_KEY ? depth : 1;
        for (int d = 0; d < reps; d++) {
            pd_unet_tf_key_name((pd_unet_tf_key)k, d, rel, sizeof rel);
            push(nl, prefix, rel);
        }
    }
}

static void push_conv(name_list *nl, const pd_unet_arch *a, pd_unet_site site, int block) {
    char prefix[256];
    pd_unet_site_prefix(a, site, block, 0, prefix, sizeof prefix);
    push(nl, prefix, "weight");
    push(nl, prefix, "bias");
}

int pd_unet_keys_expected(const pd_model_src *m, char ***names) {
    *names = NULL;
    if (!m->comp[PD_COMP_UNET].present) return 0;
    pd_unet_arch a;
    if (pd_unet_probe(m, &a, NULL) != PD_OK) return -1;
    name_list nl = {m, NULL, 0, 0, false};
    char rel[128];
    for (int k = 0; k < PD_UNET_KEY_COUNT; k++) {
        if (k == PD_UNET_COND_PROJ_W && !a.has_cond_proj) continue;
        if (k >= PD_UNET_ADD1_W && k <= PD_UNET_ADD2_B && !a.has_add_embedding) continue;
        if (pd_unet_key_name(a.naming, (pd_unet_key)k, rel, sizeof rel)) push(&nl, "", rel);
    }
    const int L = a.layers_per_block, n = a.n_levels;
    for (int l = 0; l < n; l++) {
        for (int j = 0; j < L; j++) {
            push_res(&nl, &a, PD_UNET_SITE_DOWN_RES, l, j);
            if (a.down_attn[l]) push_attn(&nl, &a, PD_UNET_SITE_DOWN_ATTN, l, j, a.depth_down[l][j]);
        }
        if (l < n - 1) push_conv(&nl, &a, PD_UNET_SITE_DOWNSAMPLE, l);
    }
    push_res(&nl, &a, PD_UNET_SITE_MID_RES, 0, 0);
    if (a.mid_attn) push_attn(&nl, &a, PD_UNET_SITE_MID_ATTN, 0, 0, a.depth_mid);
    push_res(&nl, &a, PD_UNET_SITE_MID_RES, 0, 1);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j <= L; j++) {
            push_res(&nl, &a, PD_UNET_SITE_UP_RES, i, j);
            if (a.up_attn[i]) push_attn(&nl, &a, PD_UNET_SITE_UP_ATTN, i, j, a.depth_up[i][j]);
        }
        if (i < n - 1) push_conv(&nl, &a, PD_UNET_SITE_UPSAMPLE, i);
    }
    if (nl.oom) {
        for (int i = 0; i < nl.n; i++) free(nl.names[i]);
        free(nl.names);
        return -1;
    }
    *names = nl.names;
    return nl.n;
}
