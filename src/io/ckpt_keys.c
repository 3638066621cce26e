/*
 * ckpt_keys.c - key-name tables for the text encoders (HF transformers and OpenCLIP
 * namings). UNet/VAE tables arrive with their models.
 *
 * HF CLIPTextModel (SD1 single file under cond_stage_model.transformer., SDXL's first
 * encoder under conditioner.embedders.0.transformer., diffusers text_encoder/ and text_encoder_2/):
 *   text_model.embeddings.{token,position}_embedding.weight,
 *   text_model.encoder.layers.N.{layer_norm1,layer_norm2,self_attn.{q,k,v,out}_proj,mlp.fc1,mlp.fc2}.*,
 *   text_model.final_layer_norm.*, text_projection.weight ([proj, d], x @ W^T).
 * OpenCLIP (SD2 under cond_stage_model.model., SDXL bigG under conditioner.embedders.1.model.):
 *   token_embedding.weight, positional_embedding, transformer.resblocks.N.{ln_1,ln_2,
 *   attn.in_proj_weight/bias,attn.out_proj,mlp.c_fc,mlp.c_proj}.*, ln_final.*,
 *   text_projection ([d, proj], used as x @ P: the transpose of the HF layout).
 */
#include "io/ckpt_keys.h"

#include "io/keys_unet.h"
#include "io/keys_vae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct key_entry {
    const char *hf;        /* NULL: not in this naming */
    const char *openclip;
} key_entry;

static const key_entry CLIP_KEYS[PD_CLIP_KEY_COUNT] = {
    [PD_CLIP_TOKEN_EMB] = {"text_model.embeddings.token_embedding.weight", "token_embedding.weight"},
    [PD_CLIP_POS_EMB] = {"text_model.embeddings.position_embedding.weight", "positional_embedding"},
    [PD_CLIP_FINAL_LN_W] = {"text_model.final_layer_norm.weight", "ln_final.weight"},
    [PD_CLIP_FINAL_LN_B] = {"text_model.final_layer_norm.bias", "ln_final.bias"},
    [PD_CLIP_PROJ] = {"text_projection.weight", "text_projection"},
    [PD_CLIP_LN1_W] = {"text_model.encoder.layers.%d.layer_norm1.weight", "transformer.resblocks.%d.ln_1.weight"},
    [PD_CLIP_LN1_B] = {"text_model.encoder.layers.%d.layer_norm1.bias", "transformer.resblocks.%d.ln_1.bias"},
    [PD_CLIP_LN2_W] = {"text_model.encoder.layers.%d.layer_norm2.weight", "transformer.resblocks.%d.ln_2.weight"},
    [PD_CLIP_LN2_B] = {"text_model.encoder.layers.%d.layer_norm2.bias", "transformer.resblocks.%d.ln_2.bias"},
    [PD_CLIP_Q_W] = {"text_model.encoder.layers.%d.self_attn.q_proj.weight", NULL},
    [PD_CLIP_Q_B] = {"text_model.encoder.layers.%d.self_attn.q_proj.bias", NULL},
    [PD_CLIP_K_W] = {"text_model.encoder.layers.%d.self_attn.k_proj.weight", NULL},
    [PD_CLIP_K_B] = {"text_model.encoder.layers.%d.self_attn.k_proj.bias", NULL},
    [PD_CLIP_V_W] = {"text_model.encoder.layers.%d.self_attn.v_proj.weight", NULL},
    [PD_CLIP_V_B] = {"text_model.encoder.layers.%d.self_attn.v_proj.bias", NULL},
    [PD_CLIP_QKV_W] = {NULL, "transformer.resblocks.%d.attn.in_proj_weight"},
    [PD_CLIP_QKV_B] = {NULL, "transformer.resblocks.%d.attn.in_proj_bias"},
    [PD_CLIP_OUT_W] = {"text_model.encoder.layers.%d.self_attn.out_proj.weight", "transformer.resblocks.%d.attn.out_proj.weight"},
    [PD_CLIP_OUT_B] = {"text_model.encoder.layers.%d.self_attn.out_proj.bias", "transformer.resblocks.%d.attn.out_proj.bias"},
    [PD_CLIP_FC1_W] = {"text_model.encoder.layers.%d.mlp.fc1.weight", "transformer.resblocks.%d.mlp.c_fc.weight"},
    [PD_CLIP_FC1_B] = {"text_model.encoder.layers.%d.mlp.fc1.bias", "transformer.resblocks.%d.mlp.c_fc.bias"},
    [PD_CLIP_FC2_W] = {"text_model.encoder.layers.%d.mlp.fc2.weight", "transformer.resblocks.%d.mlp.c_proj.weight"},
    [PD_CLIP_FC2_B] = {"text_model.encoder.layers.%d.mlp.fc2.bias", "transformer.resblocks.%d.mlp.c_proj.bias"},
};

bool pd_clip_key_name(pd_text_naming naming, pd_clip_key key, int layer, char *buf,
                      size_t buf_size) {
    if ((unsigned)key >= PD_CLIP_KEY_COUNT) return false;
    const char *fmt = naming == PD_TEXT_NAMING_HF         ? CLIP_KEYS[key].hf
                      : naming == PD_TEXT_NAMING_OPENCLIP ? CLIP_KEYS[key].openclip
                                                          : NULL;
    if (!fmt) return false;
    int n = key >= PD_CLIP_FIRST_LAYER_KEY ? snprintf(buf, buf_size, fmt, layer)
                                           : snprintf(buf, buf_size, "%s", fmt);
    return n > 0 && (size_t)n < buf_size;
}

bool pd_clip_key_optional(pd_clip_key key) { return key == PD_CLIP_PROJ; }

bool pd_clip_key_ignored(pd_text_naming naming, const char *rel_name) {
    if (naming == PD_TEXT_NAMING_HF)
        return strcmp(rel_name, "text_model.embeddings.position_ids") == 0 ||
               strcmp(rel_name, "embeddings.position_ids") == 0 ||
               strcmp(rel_name, "logit_scale") == 0;
    if (naming == PD_TEXT_NAMING_OPENCLIP)
        return strcmp(rel_name, "logit_scale") == 0 || strcmp(rel_name, "attn_mask") == 0;
    return false;
}

const pd_st_tensor *pd_clip_find(const pd_model_src *m, pd_component c, pd_clip_key key,
                                 int layer, char *name_buf, size_t name_size) {
    const pd_comp_src *cs = &m->comp[c];
    if (!pd_clip_key_name(cs->naming, key, layer, name_buf, name_size)) return NULL;
    const pd_st_tensor *t = pd_model_find(m, c, name_buf);
    static const char tm[] = "text_model.";
    if (!t && strncmp(name_buf, tm, sizeof tm - 1) == 0) {
        t = pd_model_find(m, c, name_buf + sizeof tm - 1);
        if (t) memmove(name_buf, name_buf + sizeof tm - 1, strlen(name_buf + sizeof tm - 1) + 1);
    }
    return t;
}

int pd_clip_count_layers(const pd_model_src *m, pd_component c) {
    char name[256];
    int n = 0;
    while (n < 1000 && pd_clip_find(m, c, PD_CLIP_LN1_W, n, name, sizeof name)) n++;
    return n;
}

bool pd_keys_ignored_extra(const char *full_name) {
    static const char *const exact[] = {
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
        "logvar", "model_ema.decay", "model_ema.num_updates",
    };
    for (size_t i = 0; i < PD_COUNT(exact); i++)
        if (strcmp(full_name, exact[i]) == 0) return true;
    return strncmp(full_name, "model_ema.", 10) == 0;
}

static int push_name(char ***names, int *n, int *cap, const char *s) {
    if (*n == *cap) {
        int ncap = *cap ? *cap * 2 : 64;
        char **nn = realloc(*names, (size_t)ncap * sizeof *nn);
        if (!nn) return -1;
        *names = nn;
        *cap = ncap;
    }
    char *d = strdup(s);
    if (!d) return -1;
    (*names)[(*n)++] = d;
    return 0;
}

int pd_keys_expected(const pd_model_src *m, pd_component c, char ***names) {
    *names = NULL;
    if (c == PD_COMP_UNET) return m->comp[c].present ? pd_unet_keys_expected(m, names) : 0;
    if (c == PD_COMP_VAE) return m->comp[c].present ? pd_vae_keys_expected(m, names) : 0;
    if (c != PD_COMP_TEXT1 && c != PD_COMP_TEXT2) return -1;
    const pd_comp_src *cs = &m->comp[c];
    if (!cs->present) return 0;
    int n = 0, cap = 0;
    int n_layers = pd_clip_count_layers(m, c);
    char rel[256], full[512];
    for (int key = 0; key < PD_CLIP_KEY_COUNT; key++) {
        int reps = key >= PD_CLIP_FIRST_LAYER_KEY ? n_layers : 1;
        if (pd_clip_key_optional((pd_clip_key)key)) continue;
        for (int l = 0; l < reps; l++) {
            if (!pd_clip_key_name(cs->naming, (pd_clip_key)key, l, rel, sizeof rel)) continue;
            /* Report the name as the file spells it (old HF files lack text_model.). */
            (void)pd_clip_find(m, c, (pd_clip_key)key, l, rel, sizeof rel);
            pd_model_full_name(m, c, rel, full, sizeof full);
            if (push_name(names, &n, &cap, full) != 0) goto oom;
        }
    }
    return n;
oom:
    for (int i = 0; i < n; i++) free((*names)[i]);
    free(*names);
    *names = NULL;
    return -1;
}
