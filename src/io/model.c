/*
 * model.c - opens a checkpoint (single file or diffusers folder), detects its layout
 * and family, and assigns components to key prefixes and files.
 *
 * Single-file prefixes (original LDM / sgm names):
 *   unet   model.diffusion_model.
 *   vae    first_stage_model.
 *   text1  cond_stage_model.transformer.      (SD1, HF CLIP-L names: text_model.*)
 *          cond_stage_model.model.            (SD2, OpenCLIP ViT-H)
 *          conditioner.embedders.0.transformer.  (SDXL, HF CLIP-L)
 *   text2  conditioner.embedders.1.model.              (SDXL, OpenCLIP bigG)
 *          conditioner.embedders.0.model.              (SDXL refiner: bigG only)
 * Diffusers folders: <component>/{config.json, *.safetensors}; for each component the
 * plain weights file is preferred to a ".fp16" variant; sharded files
 * ("-00001-of-00002") are all opened. A folder holding only config.json + weights
 * (a lone UNet or VAE, e.g. an LCM UNet) is accepted as a one-component model.
 */
#include "io/model.h"
#include "io/tensor_file.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONFIG_BYTES ((size_t)16 << 20)

static const char *const COMPONENT_NAMES[PD_COMP_COUNT] = {"unet", "vae", "text_encoder",
                                                           "text_encoder_2"};

const char *pd_component_name(pd_component c) {
    return (unsigned)c < PD_COMP_COUNT ? COMPONENT_NAMES[c] : "?";
}

const char *pd_family_name(pd_family f) {
    switch (f) {
    case PD_FAMILY_SD1: return "SD1.x";
    case PD_FAMILY_SD2: return "SD2.x";
    case PD_FAMILY_SDXL: return "SDXL";
    case PD_FAMILY_UNKNOWN: break;
    }
    return "unknown";
}

const char *pd_layout_name(pd_layout l) {
    switch (l) {
    case PD_LAYOUT_LDM_SINGLE_FILE: return "single file (LDM keys)";
    case PD_LAYOUT_DIFFUSERS_FOLDER: return "diffusers folder";
    case PD_LAYOUT_UNKNOWN: break;
    }
    return "unknown";
}

static bool starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* True when any tensor of f starts with prefix (tensors are sorted by name, so the
 * first candidate is found by binary search). */
static bool file_has_prefix(const pd_st_file *f, const char *prefix) {
    int lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(f->tensors[mid].name, prefix) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < f->n_tensors && starts_with(f->tensors[lo].name, prefix);
}

const pd_st_tensor *pd_model_find(const pd_model_src *m, pd_component c, const char *name) {
    const pd_comp_src *cs = &m->comp[c];
    if (!cs->present) return NULL;
    char full[512];
    int n = snprintf(full, sizeof full, "%s%s", cs->prefix, name);
    if (n < 0 || (size_t)n >= sizeof full) return NULL;
    for (int i = 0; i < cs->n_files; i++) {
        const pd_st_tensor *t = pd_st_find(cs->files[i], full);
        if (t) return t;
    }
    return NULL;
}

void pd_model_release(const pd_model_src *m, const pd_st_tensor *t) {
    if (!t || !t->data) return;
    const unsigned char *d = t->data;
    for (int i = 0; i < m->n_files; i++) {
        const pd_mapped_file *map = &m->files[i]->map;
        if (map->data && d >= map->data && d + t->nbytes <= map->data + map->size) {
            pd_st_release(m->files[i], t);
            return;
        }
    }
}

void pd_model_release_component(const pd_model_src *m, pd_component c) {
    const pd_comp_src *cs = &m->comp[c];
    for (int f = 0; cs->present && f < cs->n_files; f++) {
        const pd_st_file *sf = cs->files[f];
        for (int i = 0; i < sf->n_tensors; i++)
            if (pd_model_owner(m, sf, sf->tensors[i].name) == c) pd_st_release(sf, &sf->tensors[i]);
    }
}

void pd_model_full_name(const pd_model_src *m, pd_component c, const char *name, char *buf,
                        size_t buf_size) {
    const pd_comp_src *cs = &m->comp[c];
    if (m->layout == PD_LAYOUT_DIFFUSERS_FOLDER)
        snprintf(buf, buf_size, "%s/%s%s", pd_component_name(c), cs->prefix, name);
    else
        snprintf(buf, buf_size, "%s%s", cs->prefix, name);
}

pd_component pd_model_owner(const pd_model_src *m, const pd_st_file *f, const char *name) {
    /* Longest matching prefix wins (text1 "cond_stage_model.transformer." must not
     * claim nothing else, and prefixes never nest across components). */
    pd_component best = PD_COMP_COUNT;
    size_t best_len = 0;
    for (int c = 0; c < PD_COMP_COUNT; c++) {
        const pd_comp_src *cs = &m->comp[c];
        if (!cs->present) continue;
        bool in_file = false;
        for (int i = 0; i < cs->n_files; i++) in_file |= cs->files[i] == f;
        if (!in_file) continue;
        size_t len = strlen(cs->prefix);
        if (starts_with(name, cs->prefix) && (best == PD_COMP_COUNT || len > best_len)) {
            best = (pd_component)c;
            best_len = len;
        }
    }
    return best;
}

static pd_status add_file(pd_model_src *m, const char *path, pd_st_file **out, pd_error *err) {
    if (m->n_files >= PD_MODEL_MAX_FILES)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "'%s': more than %d safetensors files",
                            m->path, PD_MODEL_MAX_FILES);
    pd_st_file *f = NULL;
    pd_status st = pd_tensor_file_open(path, &f, err);
    if (st != PD_OK) return st;
    m->files[m->n_files++] = f;
    *out = f;
    return PD_OK;
}

static pd_status load_json_file(pd_model_src *m, const char *path, const pd_json **out,
                                pd_error *err) {
    char *text = NULL;
    size_t len = 0;
    pd_status st = pd_file_read_all(path, MAX_CONFIG_BYTES, &text, &len, err);
    if (st != PD_OK) return st;
    st = pd_json_parse_config(text, len, &m->arena, out, err);
    free(text);
    if (st != PD_OK) {
        pd_error_prefix(err, "'%s'", path);
        return st;
    }
    if ((*out)->type != PD_JSON_OBJECT)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': expected a JSON object", path);
    return PD_OK;
}

/* ---- single file -------------------------------------------------------------- */

static void set_comp(pd_model_src *m, pd_component c, pd_st_file *f, const char *prefix,
                     pd_text_naming naming) {
    pd_comp_src *cs = &m->comp[c];
    cs->present = true;
    snprintf(cs->prefix, sizeof cs->prefix, "%s", prefix);
    cs->naming = naming;
    cs->n_files = 1;
    cs->files[0] = f;
}

static void assign_single_file(pd_model_src *m, pd_st_file *f) {
    if (file_has_prefix(f, "model.diffusion_model."))
        set_comp(m, PD_COMP_UNET, f, "model.diffusion_model.", PD_TEXT_NAMING_NONE);
    if (file_has_prefix(f, "first_stage_model."))
        set_comp(m, PD_COMP_VAE, f, "first_stage_model.", PD_TEXT_NAMING_NONE);

    /* HF names start with "text_model." (very old files omit it; the CLIP loader
     * retries without it). */
    if (file_has_prefix(f, "cond_stage_model.transformer."))
        set_comp(m, PD_COMP_TEXT1, f, "cond_stage_model.transformer.", PD_TEXT_NAMING_HF);
    else if (file_has_prefix(f, "cond_stage_model.model."))
        set_comp(m, PD_COMP_TEXT1, f, "cond_stage_model.model.", PD_TEXT_NAMING_OPENCLIP);
    else if (file_has_prefix(f, "conditioner.embedders.0.transformer."))
        set_comp(m, PD_COMP_TEXT1, f, "conditioner.embedders.0.transformer.", PD_TEXT_NAMING_HF);

    if (file_has_prefix(f, "conditioner.embedders.1.model."))
        set_comp(m, PD_COMP_TEXT2, f, "conditioner.embedders.1.model.", PD_TEXT_NAMING_OPENCLIP);
    else if (!m->comp[PD_COMP_TEXT1].present && file_has_prefix(f, "conditioner.embedders.0.model."))
        set_comp(m, PD_COMP_TEXT2, f, "conditioner.embedders.0.model.", PD_TEXT_NAMING_OPENCLIP);
}

static pd_status open_single_file(pd_model_src *m, const char *path, pd_error *err) {
    pd_st_file *f = NULL;
    pd_status st = add_file(m, path, &f, err);
    if (st != PD_OK) return st;
    m->layout = PD_LAYOUT_LDM_SINGLE_FILE;
    assign_single_file(m, f);
    return PD_OK;
}

/* ---- diffusers folder ---------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* Picks the weight files of one component folder: "<base>.safetensors" over
 * "<base>.fp16.safetensors", or every shard "<base>-NNNNN-of-NNNNN.safetensors".
 * Writes up to max names (malloc'd) into names; returns the count. */
static int list_weight_files(const char *dir, char **names, int max) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char *plain[PD_COMP_MAX_FILES], *fp16[PD_COMP_MAX_FILES];
    int n_plain = 0, n_fp16 = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (n[0] == '.' || !ends_with(n, ".safetensors")) continue;
        bool is_fp16 = ends_with(n, ".fp16.safetensors") || strstr(n, ".fp16-") != NULL;
        if (is_fp16 && n_fp16 < PD_COMP_MAX_FILES) fp16[n_fp16++] = strdup(n);
        else if (!is_fp16 && n_plain < PD_COMP_MAX_FILES) plain[n_plain++] = strdup(n);
    }
    closedir(d);
    char **pick = n_plain ? plain : fp16;
    int n_pick = n_plain ? n_plain : n_fp16;
    char **drop = n_plain ? fp16 : plain;
    int n_drop = n_plain ? n_fp16 : n_plain;
    for (int i = 0; i < n_drop; i++) free(drop[i]);
    qsort(pick, (size_t)n_pick, sizeof *pick, cmp_str);
    int n = 0;
    for (int i = 0; i < n_pick; i++) {
        if (pick[i] && n < max) names[n++] = pick[i];
        else free(pick[i]);
    }
    return n;
}

static pd_status open_component_folder(pd_model_src *m, pd_component c, const char *dir,
                                       pd_error *err) {
    pd_comp_src *cs = &m->comp[c];
    char path[1024];
    pd_status st = PD_OK;
    if (pd_path_join(path, sizeof path, dir, "config.json") && pd_path_is_file(path)) {
        st = load_json_file(m, path, &cs->config, err);
        if (st != PD_OK) return st;
    }
    char *names[PD_COMP_MAX_FILES];
    int n = list_weight_files(dir, names, PD_COMP_MAX_FILES);
    if (n == 0) {
        if (pd_path_join(path, sizeof path, dir, "diffusion_pytorch_model.bin") &&
            (pd_path_is_file(path) ||
             (pd_path_join(path, sizeof path, dir, "pytorch_model.bin") && pd_path_is_file(path))))
            return pd_error_set(err, PD_ERR_UNSUPPORTED,
                                "'%s' holds PyTorch .bin weights; only .safetensors is supported "
                                "(convert them, e.g. with diffusers' save_pretrained(safe_serialization=True))",
                                dir);
        return PD_OK;   /* no weights: component absent */
    }
    for (int i = 0; i < n && st == PD_OK; i++) {
        pd_st_file *f = NULL;
        if (!pd_path_join(path, sizeof path, dir, names[i])) {
            st = pd_error_set(err, PD_ERR_INVALID_ARG, "path too long: '%s/%s'", dir, names[i]);
            break;
        }
        st = add_file(m, path, &f, err);
        if (st == PD_OK) cs->files[cs->n_files++] = f;
    }
    for (int i = 0; i < n; i++) free(names[i]);
    if (st != PD_OK) return st;
    cs->present = true;
    if (c == PD_COMP_TEXT1 || c == PD_COMP_TEXT2) {
        /* transformers CLIPTextModel(WithProjection): text_model.* (+ text_projection). */
        cs->naming = PD_TEXT_NAMING_HF;
        cs->prefix[0] = '\0';
    }
    return PD_OK;
}

static pd_status open_folder(pd_model_src *m, const char *dir, pd_error *err) {
    char path[1024];
    m->layout = PD_LAYOUT_DIFFUSERS_FOLDER;
    bool has_index = pd_path_join(path, sizeof path, dir, "model_index.json") && pd_path_is_file(path);
    if (has_index) {
        const pd_json *index = NULL;
        pd_status st = load_json_file(m, path, &index, err);
        if (st != PD_OK) return st;
        m->config_root = NULL;
        const char *cls = pd_json_get_string(index, "_class_name", "");
        if (strstr(cls, "XL")) m->family = PD_FAMILY_SDXL;
        for (int c = 0; c < PD_COMP_COUNT; c++) {
            char sub[1024];
            if (!pd_path_join(sub, sizeof sub, dir, COMPONENT_NAMES[c]) || !pd_path_is_dir(sub))
                continue;
            st = open_component_folder(m, (pd_component)c, sub, err);
            if (st != PD_OK) return st;
        }
        if (pd_path_join(path, sizeof path, dir, "scheduler/scheduler_config.json") && pd_path_is_file(path)) {
            st = load_json_file(m, path, &m->scheduler, err);
            if (st != PD_OK) return st;
        }
        return PD_OK;
    }
    /* A lone component folder: config.json names the class. */
    const pd_json *cfg = NULL;
    if (!(pd_path_join(path, sizeof path, dir, "config.json") && pd_path_is_file(path)))
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s' is a folder without model_index.json or config.json: not a "
                            "diffusers model folder", dir);
    pd_status st = load_json_file(m, path, &cfg, err);
    if (st != PD_OK) return st;
    const char *cls = pd_json_get_string(cfg, "_class_name", "");
    pd_component c;
    if (strcmp(cls, "UNet2DConditionModel") == 0) c = PD_COMP_UNET;
    else if (strncmp(cls, "Autoencoder", 11) == 0) c = PD_COMP_VAE;
    else if (strcmp(cls, "CLIPTextModelWithProjection") == 0) c = PD_COMP_TEXT2;
    else if (strcmp(cls, "CLIPTextModel") == 0) c = PD_COMP_TEXT1;
    else
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "'%s': unknown model class \"%s\" in config.json",
                            dir, cls);
    return open_component_folder(m, c, dir, err);
}

/* ---- configs and family --------------------------------------------------------- */

static pd_status load_side_config(pd_model_src *m, const char *path, const char *config_path,
                                  pd_error *err) {
    char guess[1024];
    const char *cfg = config_path;
    if (!cfg && m->layout == PD_LAYOUT_LDM_SINGLE_FILE) {
        char stem[1024];
        if (pd_path_strip_ext(stem, sizeof stem, path) &&
            snprintf(guess, sizeof guess, "%s.config.json", stem) < (int)sizeof guess &&
            pd_path_is_file(guess))
            cfg = guess;
    }
    if (!cfg) return PD_OK;
    pd_status st = load_json_file(m, cfg, &m->config_root, err);
    if (st != PD_OK) return st;
    size_t cl = strlen(cfg);
    if (cl >= sizeof m->config_path) cl = sizeof m->config_path - 1;
    memcpy(m->config_path, cfg, cl);
    m->config_path[cl] = '\0';
    m->derived = pd_json_get(m->config_root, "derived");
    const pd_json *sched = pd_json_get(m->config_root, "scheduler");
    if (sched && sched->type == PD_JSON_OBJECT) m->scheduler = sched;
    for (int c = 0; c < PD_COMP_COUNT; c++) {
        const pd_json *sec = pd_json_get(m->config_root, COMPONENT_NAMES[c]);
        if (sec && sec->type == PD_JSON_OBJECT) m->comp[c].config = sec;
    }
    return PD_OK;
}

/* Width of the cross-attention context the UNet expects (0 when unknown). */
static int64_t unet_context_dim(const pd_model_src *m) {
    static const char *const names[] = {
        "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",   /* LDM, SD1/2 */
        "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight",   /* LDM, SDXL */
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
        "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight",
        "middle_block.1.transformer_blocks.0.attn2.to_k.weight",
    };
    for (size_t i = 0; i < PD_COUNT(names); i++) {
        const pd_st_tensor *t = pd_model_find(m, PD_COMP_UNET, names[i]);
        if (t && t->ndim == 2) return t->shape[1];
    }
    return 0;
}

static pd_family detect_family(const pd_model_src *m) {
    if (m->comp[PD_COMP_TEXT2].present) return PD_FAMILY_SDXL;
    if (pd_model_find(m, PD_COMP_UNET, "label_emb.0.0.weight") ||
        pd_model_find(m, PD_COMP_UNET, "add_embedding.linear_1.weight"))
        return PD_FAMILY_SDXL;
    const pd_comp_src *t1 = &m->comp[PD_COMP_TEXT1];
    if (t1->present) {
        if (t1->naming == PD_TEXT_NAMING_OPENCLIP) return PD_FAMILY_SD2;
        const char *act = t1->config ? pd_json_get_string(t1->config, "hidden_act", NULL) : NULL;
        if (act) return strcmp(act, "gelu") == 0 ? PD_FAMILY_SD2 : PD_FAMILY_SD1;
        const pd_st_tensor *emb =
            pd_model_find(m, PD_COMP_TEXT1, "text_model.embeddings.token_embedding.weight");
        if (emb && emb->ndim == 2 && emb->shape[1] == 1024) return PD_FAMILY_SD2;
        return PD_FAMILY_SD1;
    }
    switch (unet_context_dim(m)) {
    case 768: return PD_FAMILY_SD1;
    case 1024: return PD_FAMILY_SD2;
    case 2048: return PD_FAMILY_SDXL;
    default: break;
    }
    const char *kind = m->config_root ? pd_json_get_string(m->config_root, "kind", "") : "";
    if (strncmp(kind, "sd1", 3) == 0) return PD_FAMILY_SD1;
    if (strncmp(kind, "sd2", 3) == 0) return PD_FAMILY_SD2;
    if (strncmp(kind, "sdxl", 4) == 0) return PD_FAMILY_SDXL;
    return PD_FAMILY_UNKNOWN;
}

/* *out = an empty source for path (checked). */
static pd_status model_new(const char *path, pd_model_src **out, pd_error *err) {
    *out = NULL;
    if (!path || !*path) return pd_error_set(err, PD_ERR_INVALID_ARG, "no model path given");
    if (strlen(path) >= sizeof((pd_model_src *)0)->path)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "model path too long: '%.64s...'", path);
    pd_model_src *m = calloc(1, sizeof *m);
    if (!m || pd_arena_init(&m->arena, 0) != 0) {
        free(m);
        return pd_error_set(err, PD_ERR_OOM, "out of memory opening '%s'", path);
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    *out = m;
    return PD_OK;
}

pd_status pd_model_open_component_file(const char *path, pd_component c, pd_model_src **out,
                                       pd_error *err) {
    *out = NULL;
    PD_ASSERT((unsigned)c < PD_COMP_COUNT);
    pd_model_src *m = NULL;
    pd_status st = model_new(path, &m, err);
    if (st != PD_OK) return st;
    pd_st_file *f = NULL;
    st = pd_path_is_file(path) ? add_file(m, path, &f, err)
                               : pd_error_set(err, PD_ERR_IO, "cannot open '%s': not a file", path);
    if (st != PD_OK) {
        pd_model_close(m);
        return st;
    }
    m->layout = PD_LAYOUT_UNKNOWN;
    set_comp(m, c, f, "", PD_TEXT_NAMING_NONE);
    *out = m;
    return PD_OK;
}

pd_status pd_model_open(const char *path, const char *config_path, pd_model_src **out,
                        pd_error *err) {
    *out = NULL;
    pd_model_src *m = NULL;
    pd_status st = model_new(path, &m, err);
    if (st != PD_OK) return st;

    if (pd_path_is_dir(path)) st = open_folder(m, path, err);
    else if (pd_path_is_file(path)) st = open_single_file(m, path, err);
    else st = pd_error_set(err, PD_ERR_IO, "cannot open '%s': no such file or folder", path);
    if (st != PD_OK) goto fail;

    st = load_side_config(m, path, config_path, err);
    if (st != PD_OK) goto fail;

    {
        pd_family fam = detect_family(m);
        if (fam != PD_FAMILY_UNKNOWN || m->family == PD_FAMILY_UNKNOWN) m->family = fam;
    }
    *out = m;
    return PD_OK;
fail:
    pd_model_close(m);
    return st;
}

void pd_model_close(pd_model_src *m) {
    if (!m) return;
    for (int i = 0; i < m->n_files; i++) pd_st_close(m->files[i]);
    pd_arena_free(&m->arena);
    free(m);
}
