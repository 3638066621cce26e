/*
 * keys_vae.c - SD VAE (AutoencoderKL) key tables for the LDM and diffusers namings,
 * and the architecture read from tensor shapes.
 *
 * LDM single file (under first_stage_model.; ldm/modules/diffusionmodules/model.py):
 *   encoder.conv_in, encoder.down.L.block.M.{norm1,conv1,norm2,conv2,nin_shortcut},
 *   encoder.down.L.downsample.conv, encoder.mid.{block_1,attn_1,block_2},
 *   attn_1.{norm,q,k,v,proj_out} (q/k/v/proj_out as 1x1 convs [c, c, 1, 1]),
 *   encoder.norm_out, encoder.conv_out, quant_conv, post_quant_conv, decoder.conv_in,
 *   decoder.mid.*, decoder.up.N.block.M, decoder.up.N.upsample.conv, decoder.norm_out,
 *   decoder.conv_out. decoder.up.N is indexed from the full-resolution level: LDM
 *   up.(n-1-L) is diffusers up_blocks.L.
 * diffusers (vae/diffusion_pytorch_model.safetensors; models/autoencoders/vae.py):
 *   encoder.down_blocks.L.resnets.M.{norm1,conv1,norm2,conv2,conv_shortcut},
 *   encoder.down_blocks.L.downsamplers.0.conv, encoder.mid_block.resnets.{0,1},
 *   encoder.mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0} (linear [c, c];
 *   diffusers < 0.15: query/key/value/proj_attn), encoder.conv_norm_out,
 *   decoder.up_blocks.L.resnets.M, decoder.up_blocks.L.upsamplers.0.conv,
 *   decoder.conv_norm_out, ...
 *
 * Traps: the decoder's reversed LDM index; the ResNet skip is nin_shortcut in LDM and
 * conv_shortcut in diffusers; the output norm is norm_out vs conv_norm_out.
 */
#include "io/keys_vae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Module name formats: [module] = {ldm, diffusers} (the old diffusers naming differs
 * only in attention part names). %d takes level then index, or index alone. */
static const char *const MODULE_FMT[PD_VAE_MODULE_COUNT][2] = {
    [PD_VAE_ENC_CONV_IN] = {"encoder.conv_in", "encoder.conv_in"},
    [PD_VAE_ENC_RESNET] = {"encoder.down.%d.block.%d", "encoder.down_blocks.%d.resnets.%d"},
    [PD_VAE_ENC_DOWNSAMPLE] = {"encoder.down.%d.downsample.conv", "encoder.down_blocks.%d.downsamplers.0.conv"},
    [PD_VAE_ENC_MID_RESNET] = {"encoder.mid.block_%d", "encoder.mid_block.resnets.%d"},
    [PD_VAE_ENC_MID_ATTN] = {"encoder.mid.attn_1", "encoder.mid_block.attentions.0"},
    [PD_VAE_ENC_NORM_OUT] = {"encoder.norm_out", "encoder.conv_norm_out"},
    [PD_VAE_ENC_CONV_OUT] = {"encoder.conv_out", "encoder.conv_out"},
    [PD_VAE_QUANT_CONV] = {"quant_conv", "quant_conv"},
    [PD_VAE_POST_QUANT_CONV] = {"post_quant_conv", "post_quant_conv"},
    [PD_VAE_DEC_CONV_IN] = {"decoder.conv_in", "decoder.conv_in"},
    [PD_VAE_DEC_MID_RESNET] = {"decoder.mid.block_%d", "decoder.mid_block.resnets.%d"},
    [PD_VAE_DEC_MID_ATTN] = {"decoder.mid.attn_1", "decoder.mid_block.attentions.0"},
    [PD_VAE_DEC_RESNET] = {"decoder.up.%d.block.%d", "decoder.up_blocks.%d.resnets.%d"},
    [PD_VAE_DEC_UPSAMPLE] = {"decoder.up.%d.upsample.conv", "decoder.up_blocks.%d.upsamplers.0.conv"},
    [PD_VAE_DEC_NORM_OUT] = {"decoder.norm_out", "decoder.conv_norm_out"},
    [PD_VAE_DEC_CONV_OUT] = {"decoder.conv_out", "decoder.conv_out"},
};

/* Part names: {ldm, diffusers, diffusers old}. */
static const char *const PART_NAME[PD_VAE_PART_COUNT][3] = {
    [PD_VAE_PART_SELF] = {"", "", ""},
    [PD_VAE_RES_NORM1] = {"norm1", "norm1", "norm1"},
    [PD_VAE_RES_CONV1] = {"conv1", "conv1", "conv1"},
    [PD_VAE_RES_NORM2] = {"norm2", "norm2", "norm2"},
    [PD_VAE_RES_CONV2] = {"conv2", "conv2", "conv2"},
    [PD_VAE_RES_SKIP] = {"nin_shortcut", "conv_shortcut", "conv_shortcut"},
    [PD_VAE_ATTN_NORM] = {"norm", "group_norm", "group_norm"},
    [PD_VAE_ATTN_Q] = {"q", "to_q", "query"},
    [PD_VAE_ATTN_K] = {"k", "to_k", "key"},
    [PD_VAE_ATTN_V] = {"v", "to_v", "value"},
    [PD_VAE_ATTN_OUT] = {"proj_out", "to_out.0", "proj_attn"},
};

static bool is_resnet(pd_vae_module m) {
    return m == PD_VAE_ENC_RESNET || m == PD_VAE_DEC_RESNET || m == PD_VAE_ENC_MID_RESNET ||
           m == PD_VAE_DEC_MID_RESNET;
}

static bool is_attn(pd_vae_module m) { return m == PD_VAE_ENC_MID_ATTN || m == PD_VAE_DEC_MID_ATTN; }

bool pd_vae_key_name(pd_vae_naming naming, int n_levels, pd_vae_key key, char *buf,
                     size_t buf_size) {
    if (naming == PD_VAE_NAMING_NONE || (unsigned)key.module >= PD_VAE_MODULE_COUNT ||
        (unsigned)key.part >= PD_VAE_PART_COUNT)
        return false;
    bool part_ok = key.part == PD_VAE_PART_SELF ? !is_resnet(key.module) && !is_attn(key.module)
                   : key.part <= PD_VAE_RES_SKIP ? is_resnet(key.module)
                                                 : is_attn(key.module);
    if (!part_ok) return false;
    const bool ldm = naming == PD_VAE_NAMING_LDM;
    const char *fmt = MODULE_FMT[key.module][ldm ? 0 : 1];
    int level = key.level, index = key.index;
    if (ldm && (key.module == PD_VAE_DEC_RESNET || key.module == PD_VAE_DEC_UPSAMPLE))
        level = n_levels - 1 - level;   /* LDM decoder.up is indexed from full resolution */
    if (ldm && (key.module == PD_VAE_ENC_MID_RESNET || key.module == PD_VAE_DEC_MID_RESNET))
        index += 1;                     /* block_1, block_2 */
    char mod[128];
    int n;
    switch (key.module) {
    case PD_VAE_ENC_RESNET:
    case PD_VAE_DEC_RESNET: n = snprintf(mod, sizeof mod, fmt, level, index); break;
    case PD_VAE_ENC_DOWNSAMPLE:
    case PD_VAE_DEC_UPSAMPLE: n = snprintf(mod, sizeof mod, fmt, level); break;
    case PD_VAE_ENC_MID_RESNET:
    case PD_VAE_DEC_MID_RESNET: n = snprintf(mod, sizeof mod, fmt, index); break;
    default: n = snprintf(mod, sizeof mod, "%s", fmt); break;
    }
    if (n <= 0 || (size_t)n >= sizeof mod) return false;
    const char *part = PART_NAME[key.part][naming == PD_VAE_NAMING_LDM ? 0 : naming == PD_VAE_NAMING_DIFFUSERS ? 1 : 2];
    n = snprintf(buf, buf_size, "%s%s%s.%s", mod, *part ? "." : "", part, key.bias ? "bias" : "weight");
    return n > 0 && (size_t)n < buf_size;
}

/* ---- architecture ------------------------------------------------------------------ */

static const pd_st_tensor *find_key(const pd_model_src *m, pd_vae_naming naming, int n_levels,
                                    pd_vae_key key, char *name, size_t name_size) {
    if (!pd_vae_key_name(naming, n_levels, key, name, name_size)) return NULL;
    return pd_model_find(m, PD_COMP_VAE, name);
}

static pd_vae_key wkey(pd_vae_module mod, int level, int index, pd_vae_part part) {
    pd_vae_key k = {mod, level, index, part, false};
    return k;
}

/* Reads dimension d of a 4-D conv weight (or 2-D linear) found under key. */
static pd_status read_dim(const pd_model_src *m, const pd_vae_arch *a, pd_vae_key key, int d,
                          int *out, pd_error *err) {
    char name[256], full[384];
    const pd_st_tensor *t = find_key(m, a->naming, a->n_levels, key, name, sizeof name);
    if (!pd_vae_key_name(a->naming, a->n_levels, key, name, sizeof name)) snprintf(name, sizeof name, "?");
    pd_model_full_name(m, PD_COMP_VAE, name, full, sizeof full);
    if (!t) return pd_error_set(err, PD_ERR_MISSING, "vae: tensor '%s' is missing", full);
    if (t->ndim != 4 || d >= t->ndim || t->shape[d] < 1 || t->shape[d] > 65536)
        return pd_error_set(err, PD_ERR_SHAPE, "vae: tensor '%s' must be a 4-D conv weight with "
                            "dimensions in [1, 65536]", full);
    *out = (int)t->shape[d];
    return PD_OK;
}

/* Consecutive levels present, counting by the raw index of the file's naming. */
static int count_levels(const pd_model_src *m, pd_vae_naming naming, bool decoder) {
    char name[256];
    int n = 0;
    while (n < PD_VAE_MAX_LEVELS + 1) {
        /* LDM decoder level L is up.(n_levels-1-L): ask for level 0 of n + 1 levels. */
        bool ldm_dec = decoder && naming == PD_VAE_NAMING_LDM;
        pd_vae_key k = wkey(decoder ? PD_VAE_DEC_RESNET : PD_VAE_ENC_RESNET, ldm_dec ? 0 : n, 0, PD_VAE_RES_CONV1);
        if (!find_key(m, naming, n + 1, k, name, sizeof name)) break;
        n++;
    }
    return n;
}

static int count_resnets(const pd_model_src *m, const pd_vae_arch *a, bool decoder) {
    char name[256];
    int n = 0;
    while (n < PD_VAE_MAX_LAYERS + 2 &&
           find_key(m, a->naming, a->n_levels, wkey(decoder ? PD_VAE_DEC_RESNET : PD_VAE_ENC_RESNET, 0, n, PD_VAE_RES_CONV1),
                    name, sizeof name))
        n++;
    return n;
}

static bool config_bool(const pd_model_src *m, const char *key, bool def) {
    const pd_json *cfg = m->comp[PD_COMP_VAE].config;
    bool v;
    return cfg && pd_json_as_bool(pd_json_get(cfg, key), &v) ? v : def;
}

pd_status pd_vae_read_arch(const pd_model_src *m, pd_vae_arch *a, pd_error *err) {
    memset(a, 0, sizeof *a);
    if (!m->comp[PD_COMP_VAE].present)
        return pd_error_set(err, PD_ERR_MISSING, "'%s' has no vae", m->path);
    char name[256];
    static const pd_vae_naming probe[] = {PD_VAE_NAMING_LDM, PD_VAE_NAMING_DIFFUSERS};
    for (size_t i = 0; i < PD_COUNT(probe) && !a->naming; i++)
        if (find_key(m, probe[i], 1, wkey(PD_VAE_DEC_MID_RESNET, 0, 0, PD_VAE_RES_CONV1), name, sizeof name))
            a->naming = probe[i];
    if (!a->naming)
        return pd_error_set(err, PD_ERR_MISSING, "vae: no decoder found in '%s' (looked for "
                            "'decoder.mid.block_1.conv1.weight' and "
                            "'decoder.mid_block.resnets.0.conv1.weight')", m->path);
    if (a->naming == PD_VAE_NAMING_DIFFUSERS &&
        (find_key(m, PD_VAE_NAMING_DIFFUSERS_OLD, 1, wkey(PD_VAE_DEC_MID_ATTN, 0, 0, PD_VAE_ATTN_Q), name, sizeof name) ||
         find_key(m, PD_VAE_NAMING_DIFFUSERS_OLD, 1, wkey(PD_VAE_ENC_MID_ATTN, 0, 0, PD_VAE_ATTN_Q), name, sizeof name)))
        a->naming = PD_VAE_NAMING_DIFFUSERS_OLD;

    a->n_levels = count_levels(m, a->naming, true);
    if (a->n_levels < 1 || a->n_levels > PD_VAE_MAX_LEVELS)
        return pd_error_set(err, a->n_levels < 1 ? PD_ERR_MISSING : PD_ERR_UNSUPPORTED,
                            "vae: %d decoder levels found (1 to %d supported)", a->n_levels, PD_VAE_MAX_LEVELS);
    int dec_res = count_resnets(m, a, true);
    if (dec_res < 2 || dec_res > PD_VAE_MAX_LAYERS + 1)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "vae: %d ResNet blocks in the first decoder level "
                            "(2 to %d supported)", dec_res, PD_VAE_MAX_LAYERS + 1);
    a->layers_per_block = dec_res - 1;
    pd_status st = PD_OK;
    for (int l = 0; l < a->n_levels && st == PD_OK; l++)   /* decoder level l = ch[n-1-l] */
        st = read_dim(m, a, wkey(PD_VAE_DEC_RESNET, l, 0, PD_VAE_RES_CONV2), 0, &a->ch[a->n_levels - 1 - l], err);
    if (st == PD_OK) st = read_dim(m, a, wkey(PD_VAE_DEC_CONV_IN, 0, 0, PD_VAE_PART_SELF), 1, &a->latent_channels, err);
    if (st == PD_OK) st = read_dim(m, a, wkey(PD_VAE_DEC_CONV_OUT, 0, 0, PD_VAE_PART_SELF), 0, &a->out_channels, err);
    if (st != PD_OK) return st;

    a->has_encoder = find_key(m, a->naming, a->n_levels, wkey(PD_VAE_ENC_CONV_IN, 0, 0, PD_VAE_PART_SELF), name, sizeof name) != NULL;
    a->in_channels = a->out_channels;
    if (a->has_encoder) {
        int enc_levels = count_levels(m, a->naming, false);
        if (enc_levels != a->n_levels)
            return pd_error_set(err, PD_ERR_SHAPE, "vae: the encoder has %d levels, the decoder %d",
                                enc_levels, a->n_levels);
        st = read_dim(m, a, wkey(PD_VAE_ENC_CONV_IN, 0, 0, PD_VAE_PART_SELF), 1, &a->in_channels, err);
        if (st != PD_OK) return st;
    }
    a->has_quant_conv = a->has_encoder && config_bool(m, "use_quant_conv", true);
    a->has_post_quant_conv = config_bool(m, "use_post_quant_conv", true);
    a->has_mid_attn = config_bool(m, "mid_block_add_attention", true);
    return PD_OK;
}

int pd_vae_level_resnets(const pd_vae_arch *a, bool decoder) {
    return a->layers_per_block + (decoder ? 1 : 0);
}

void pd_vae_resnet_channels(const pd_vae_arch *a, bool decoder, int level, int index, int *cin,
                            int *cout) {
    const int n = a->n_levels;
    if (!decoder) {
        *cout = a->ch[level];
        *cin = index > 0 ? *cout : a->ch[level > 0 ? level - 1 : 0];
    } else {
        *cout = a->ch[n - 1 - level];
        *cin = index > 0 ? *cout : a->ch[level > 0 ? n - level : n - 1];
    }
}

/* ---- expected keys ------------------------------------------------------------------ */

typedef struct name_list {
    const pd_model_src *m;
    const pd_vae_arch *a;
    char **names;
    int n, cap;
    bool oom;
} name_list;

static void push(name_list *l, pd_vae_key key) {
    char rel[256], full[512];
    for (int b = 0; b < 2 && !l->oom; b++) {
        key.bias = b == 1;
        if (!pd_vae_key_name(l->a->naming, l->a->n_levels, key, rel, sizeof rel)) continue;
        pd_model_full_name(l->m, PD_COMP_VAE, rel, full, sizeof full);
        if (l->n == l->cap) {
            int ncap = l->cap ? l->cap * 2 : 128;
            char **nn = realloc(l->names, (size_t)ncap * sizeof *nn);
            if (!nn) {
                l->oom = true;
                return;
            }
            l->names = nn;
            l->cap = ncap;
        }
        char *d = strdup(full);
        if (!d) {
            l->oom = true;
            return;
        }
        l->names[l->n++] = d;
    }
}

static void push_resnet(name_list *l, pd_vae_module mod, int level, int index, bool skip) {
    for (int p = PD_VAE_RES_NORM1; p <= PD_VAE_RES_CONV2; p++) push(l, wkey(mod, level, index, (pd_vae_part)p));
    if (skip) push(l, wkey(mod, level, index, PD_VAE_RES_SKIP));
}

static void push_mid(name_list *l, bool decoder) {
    pd_vae_module res = decoder ? PD_VAE_DEC_MID_RESNET : PD_VAE_ENC_MID_RESNET;
    push_resnet(l, res, 0, 0, false);
    if (l->a->has_mid_attn)
        for (int p = PD_VAE_ATTN_NORM; p <= PD_VAE_ATTN_OUT; p++)
            push(l, wkey(decoder ? PD_VAE_DEC_MID_ATTN : PD_VAE_ENC_MID_ATTN, 0, 0, (pd_vae_part)p));
    push_resnet(l, res, 0, 1, false);
}

static void push_side(name_list *l, bool decoder) {
    const pd_vae_arch *a = l->a;
    if (decoder) {
        push(l, wkey(PD_VAE_DEC_CONV_IN, 0, 0, PD_VAE_PART_SELF));
        push_mid(l, true);
    } else {
        push(l, wkey(PD_VAE_ENC_CONV_IN, 0, 0, PD_VAE_PART_SELF));
    }
    for (int lv = 0; lv < a->n_levels; lv++) {
        for (int i = 0; i < pd_vae_level_resnets(a, decoder); i++) {
            int cin, cout;
            pd_vae_resnet_channels(a, decoder, lv, i, &cin, &cout);
            push_resnet(l, decoder ? PD_VAE_DEC_RESNET : PD_VAE_ENC_RESNET, lv, i, cin != cout);
        }
        if (lv < a->n_levels - 1)
            push(l, wkey(decoder ? PD_VAE_DEC_UPSAMPLE : PD_VAE_ENC_DOWNSAMPLE, lv, 0, PD_VAE_PART_SELF));
    }
    if (!decoder) push_mid(l, false);
    push(l, wkey(decoder ? PD_VAE_DEC_NORM_OUT : PD_VAE_ENC_NORM_OUT, 0, 0, PD_VAE_PART_SELF));
    push(l, wkey(decoder ? PD_VAE_DEC_CONV_OUT : PD_VAE_ENC_CONV_OUT, 0, 0, PD_VAE_PART_SELF));
}

int pd_vae_keys_expected(const pd_model_src *m, char ***names) {
    *names = NULL;
    if (!m->comp[PD_COMP_VAE].present) return 0;
    pd_vae_arch a;
    if (pd_vae_read_arch(m, &a, NULL) != PD_OK) return -1;
    name_list l = {m, &a, NULL, 0, 0, false};
    if (a.has_encoder) {
        push_side(&l, false);
        if (a.has_quant_conv) push(&l, wkey(PD_VAE_QUANT_CONV, 0, 0, PD_VAE_PART_SELF));
    }
    if (a.has_post_quant_conv) push(&l, wkey(PD_VAE_POST_QUANT_CONV, 0, 0, PD_VAE_PART_SELF));
    push_side(&l, true);
    if (l.oom) {
        for (int i = 0; i < l.n; i++) free(l.names[i]);
        free(l.names);
        return -1;
    }
    *names = l.names;
    return l.n;
}
