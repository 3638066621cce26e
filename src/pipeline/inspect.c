/*
 * inspect.c - pd_inspect: what a checkpoint holds, without loading weights.
 *
 * Reports the detected family and layout, per component the tensor count, parameters,
 * bytes and dtypes, an architecture summary, and the names of expected-but-missing
 * and present-but-unclaimed tensors. Succeeds on any well-formed input (even an
 * incomplete or unknown model); fails only when a file cannot be read or parsed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ckpt_keys.h"
#include "io/keys_unet.h"
#include "io/model.h"
#include "models/clip.h"
#include "text/clip_tokenizer.h"

#define MAX_LISTED 100000

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool push(char ***list, int *n, const char *s) {
    if (*n >= MAX_LISTED) return true;
    char **nl = realloc(*list, (size_t)(*n + 1) * sizeof *nl);
    if (!nl) return false;
    *list = nl;
    char *d = strdup(s);
    if (!d) return false;
    nl[(*n)++] = d;
    return true;
}

static void add_dtype(pd_component_info *ci, pd_dtype dt) {
    const char *name = pd_dtype_name(dt);
    char token[16];
    snprintf(token, sizeof token, "%s", name);
    /* already listed? */
    const char *p = ci->dtypes;
    size_t tl = strlen(token);
    while ((p = strstr(p, token)) != NULL) {
        if ((p == ci->dtypes || p[-1] == ',') && (p[tl] == '\0' || p[tl] == ',')) return;
        p += tl;
    }
    size_t used = strlen(ci->dtypes);
    snprintf(ci->dtypes + used, sizeof ci->dtypes - used, "%s%s", used ? "," : "", token);
}

static void describe_text(const pd_model_src *m, pd_component c, pd_component_info *ci) {
    pd_clip_config cfg;
    pd_error e;
    if (pd_clip_read_config(&cfg, m, c, &e) != PD_OK) {
        snprintf(ci->arch, sizeof ci->arch, "unreadable: %.80s", e.msg);
        return;
    }
    const char *kind = cfg.naming == PD_TEXT_NAMING_OPENCLIP ? "OpenCLIP" : "CLIP";
    snprintf(ci->arch, sizeof ci->arch, "%s %d layers x %d wide, %d heads, %s%s", kind,
             cfg.n_layers, cfg.d_model, cfg.n_heads,
             cfg.act == PD_ACT_GELU ? "gelu" : "quick_gelu",
             cfg.proj_dim ? ", projection" : "");
}

/* "channels 320,640,1280, transformers 0,2,10 (mid 10), +time ids" from the probe (per
 * level; uneven depths as "2/1" per block, and the up blocks' when they differ), or
 * the conv_in shape when the structure cannot be read. */
static void describe_unet(const pd_model_src *m, pd_component_info *ci) {
    pd_unet_arch a;
    if (pd_unet_probe(m, &a, NULL) == PD_OK) {
        char ch[48] = "", tf[48] = "", up[48] = "";
        size_t nc = 0, nt = 0, nu = 0;
        bool uneven_up = false;
        for (int l = 0; l < a.n_levels; l++) {
            nc += (size_t)snprintf(ch + nc, sizeof ch - nc, "%s%d", l ? "," : "", a.level_channels[l]);
            if (nc >= sizeof ch) nc = sizeof ch - 1;
            /* Down blocks of the level: one depth, or each block's ("2/1") when they differ
             * (SSD-1B, Vega). */
            const int d0 = a.down_attn[l] ? a.depth_down[l][0] : 0;
            nt += (size_t)snprintf(tf + nt, sizeof tf - nt, "%s%d", l ? "," : "", d0);
            for (int j = 1; a.down_attn[l] && j < a.layers_per_block; j++)
                if (a.depth_down[l][j] != d0) {
                    nt += (size_t)snprintf(tf + nt, sizeof tf - nt, "/%d", a.depth_down[l][j]);
                    if (nt >= sizeof tf) nt = sizeof tf - 1;
                }
            if (nt >= sizeof tf) nt = sizeof tf - 1;
            const int i = a.n_levels - 1 - l;   /* the up block at level l */
            for (int j = 0; j <= a.layers_per_block; j++) {
                const int du = a.up_attn[i] ? a.depth_up[i][j] : 0;
                uneven_up |= du != d0;
                nu += (size_t)snprintf(up + nu, sizeof up - nu, "%s%d", j ? "/" : l ? "," : "", du);
                if (nu >= sizeof up) nu = sizeof up - 1;
            }
        }
        char up_txt[64] = "";
        if (uneven_up) snprintf(up_txt, sizeof up_txt, ", up %s", up);
        const int len = snprintf(ci->arch, sizeof ci->arch, "%d in, channels %s, transformers %s (mid %d)%s%s%s",
                                 a.in_channels, ch, tf, a.mid_attn ? a.depth_mid : 0, up_txt,
                                 a.has_add_embedding ? ", size cond" : "", a.has_cond_proj ? ", LCM w-cond" : "");
        (void)len;   /* a summary: truncation of an exotic UNet's long lists is fine */
        return;
    }
    const pd_st_tensor *t = pd_model_find(m, PD_COMP_UNET, "input_blocks.0.0.weight");
    if (!t) t = pd_model_find(m, PD_COMP_UNET, "conv_in.weight");
    if (t && t->ndim == 4)
        snprintf(ci->arch, sizeof ci->arch, "%lld input channels, %lld base channels",
                 (long long)t->shape[1], (long long)t->shape[0]);
}

static void describe_vae(const pd_model_src *m, pd_component_info *ci) {
    const pd_st_tensor *t = pd_model_find(m, PD_COMP_VAE, "decoder.conv_in.weight");
    if (t && t->ndim == 4)
        snprintf(ci->arch, sizeof ci->arch, "%lld latent channels, decoder width %lld",
                 (long long)t->shape[1], (long long)t->shape[0]);
}

void pd_model_info_free(pd_model_info *info) {
    if (!info) return;
    for (int i = 0; i < info->n_missing; i++) free(info->missing[i]);
    for (int i = 0; i < info->n_unexpected; i++) free(info->unexpected[i]);
    free(info->missing);
    free(info->unexpected);
    free(info);
}

pd_status pd_inspect(const char *path, pd_model_info **out, pd_error *err) {
    *out = NULL;
    pd_model_src *m = NULL;
    pd_status st = pd_model_open(path, NULL, &m, err);
    if (st != PD_OK) return st;
    pd_model_info *info = calloc(1, sizeof *info);
    char **expected[PD_COMP_COUNT] = {0};
    int n_expected[PD_COMP_COUNT] = {0};
    if (!info) {
        st = pd_error_set(err, PD_ERR_OOM, "out of memory");
        goto done;
    }
    info->family = m->family;
    info->layout = m->layout;
    snprintf(info->path, sizeof info->path, "%s", path);
    info->n_files = m->n_files;
    info->n_components = PD_COMP_COUNT;
    for (int c = 0; c < PD_COMP_COUNT; c++) {
        pd_component_info *ci = &info->components[c];
        ci->name = pd_component_name((pd_component)c);
        ci->present = m->comp[c].present;
        n_expected[c] = ci->present ? pd_keys_expected(m, (pd_component)c, &expected[c]) : -1;
        if (n_expected[c] > 0) qsort(expected[c], (size_t)n_expected[c], sizeof(char *), cmp_str);
    }

    /* Walk every tensor once: attribute it to a component, check it is expected. */
    for (int f = 0; f < m->n_files; f++) {
        const pd_st_file *sf = m->files[f];
        info->n_tensors += sf->n_tensors;
        for (int i = 0; i < sf->n_tensors; i++) {
            const pd_st_tensor *t = &sf->tensors[i];
            info->n_bytes += (int64_t)t->nbytes;
            pd_component c = pd_model_owner(m, sf, t->name);
            if (c == PD_COMP_COUNT) {
                if (!pd_keys_ignored_extra(t->name) && !push(&info->unexpected, &info->n_unexpected, t->name))
                    goto oom;
                continue;
            }
            pd_component_info *ci = &info->components[c];
            ci->n_tensors++;
            ci->n_params += t->numel;
            ci->n_bytes += (int64_t)t->nbytes;
            add_dtype(ci, t->dtype);
            if (n_expected[c] < 0) continue;   /* no key map for this component yet */
            char full[512];
            pd_model_full_name(m, c, t->name + strlen(m->comp[c].prefix), full, sizeof full);
            const char *key = full;
            bool known = bsearch(&key, expected[c], (size_t)n_expected[c], sizeof(char *), cmp_str) != NULL;
            const char *rel = t->name + strlen(m->comp[c].prefix);
            char proj[256];
            bool is_proj = pd_clip_key_name(m->comp[c].naming, PD_CLIP_PROJ, 0, proj, sizeof proj) &&
                           strcmp(rel, proj) == 0;
            if (!known && !is_proj && !pd_clip_key_ignored(m->comp[c].naming, rel) &&
                !push(&info->unexpected, &info->n_unexpected, t->name))
                goto oom;
        }
    }
    /* Expected names not found. */
    for (int c = 0; c < PD_COMP_COUNT; c++) {
        for (int i = 0; i < n_expected[c]; i++) {
            const char *full = expected[c][i];
            const char *rel = full;
            if (m->layout == PD_LAYOUT_DIFFUSERS_FOLDER) {
                const char *slash = strchr(full, '/');
                rel = slash ? slash + 1 : full;
            }
            rel += strlen(m->comp[c].prefix);
            if (!pd_model_find(m, (pd_component)c, rel)) {
                info->components[c].n_missing++;
                if (!push(&info->missing, &info->n_missing, full)) goto oom;
            }
        }
        if (info->components[c].present) {
            if (c == PD_COMP_TEXT1 || c == PD_COMP_TEXT2) describe_text(m, (pd_component)c, &info->components[c]);
            else if (c == PD_COMP_UNET) describe_unet(m, &info->components[c]);
            else describe_vae(m, &info->components[c]);
        }
    }
    if (m->comp[PD_COMP_TEXT1].present || m->comp[PD_COMP_TEXT2].present)
        pd_tokenizer_locate(path, info->vocab_path, sizeof info->vocab_path, NULL, 0);
    *out = info;
    info = NULL;
    goto done;
oom:
    st = pd_error_set(err, PD_ERR_OOM, "out of memory inspecting '%s'", path);
done:
    for (int c = 0; c < PD_COMP_COUNT; c++) {
        for (int i = 0; i < n_expected[c]; i++) free(expected[c][i]);
        free(expected[c]);
    }
    pd_model_info_free(info);
    pd_model_close(m);
    return st;
}
