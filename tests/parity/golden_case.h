/*
 * golden_case.h - a golden txt2img/img2img case as pd_gen_params: the case's JSON
 * params (diffusers conventions mapped to ours) and its init image, for the pipeline
 * tests.
 *
 * Mapping: diffusers clip_skip c = our c + 1; diffusers tokenizes the text as it is
 * (no A1111 weights); "<sampler>_karras" = sampler + the karras schedule;
 * scheduler_overrides.timestep_spacing = timestep_spacing.
 */
#ifndef PD_TEST_GOLDEN_CASE_H
#define PD_TEST_GOLDEN_CASE_H

#include <dirent.h>

#include "base/arena.h"
#include "base/file.h"
#include "base/json.h"
#include "golden.h"
#include "phonediffusion.h"

typedef struct golden_case {
    pd_gen_params gp;
    pd_st_file *g;        /* the case's tensors */
    char sampler[64];
    char spacing[16];
    char *text;           /* JSON text (the strings of gp point into arena) */
    pd_arena arena;
    uint8_t *init;        /* init image copy (img2img) or NULL */
} golden_case;

/* Loads case_name; false (with a test failure) when it cannot. Free with
 * golden_case_free either way. */
static inline bool golden_case_load(const char *case_name, golden_case *gc) {
    memset(gc, 0, sizeof *gc);
    pd_arena_init(&gc->arena, 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/cases/%s.json", pd_test_golden_dir(), case_name);
    size_t len = 0;
    pd_error err = {0};
    const pd_json *root = NULL;
    if (pd_file_read_all(path, 1 << 24, &gc->text, &len, &err) != PD_OK ||
        pd_json_parse(gc->text, len, &gc->arena, &root, &err) != PD_OK) {
        PD_FAIL("%s: %s", path, err.msg);
        return false;
    }
    const pd_json *p = pd_json_get(root, "params");
    pd_gen_params *gp = &gc->gp;
    *gp = pd_gen_default_params();
    gp->prompt = pd_json_get_string(p, "prompt", "");
    gp->negative_prompt = pd_json_get_string(p, "negative_prompt", NULL);
    gp->seed = pd_json_get_int(p, "seed", 0);
    gp->steps = (int)pd_json_get_int(p, "steps", 0);
    gp->cfg_scale = (float)pd_json_get_double(p, "cfg_scale", 7.5);
    gp->width = (int)pd_json_get_int(p, "width", 0);
    gp->height = (int)pd_json_get_int(p, "height", 0);
    gp->clip_skip = (int)pd_json_get_int(p, "clip_skip", 0) + 1;
    gp->prompt_weights = false;
    snprintf(gc->sampler, sizeof gc->sampler, "%s", pd_json_get_string(p, "sampler", ""));
    char *k = strstr(gc->sampler, "_karras");
    if (k) *k = '\0';
    gp->sampler = gc->sampler;
    gp->scheduler = k ? "karras" : "default";
    const char *spacing = pd_json_get_string(pd_json_get(p, "scheduler_overrides"), "timestep_spacing", NULL);
    if (spacing) {
        snprintf(gc->spacing, sizeof gc->spacing, "%s", spacing);
        gp->timestep_spacing = gc->spacing;
    }
    gc->g = golden_open(case_name);
    if (!gc->g) return false;
    const pd_st_tensor *t = pd_st_find(gc->g, "init_image_u8");
    if (t) {
        gc->init = malloc(t->nbytes);
        if (!gc->init) return false;
        memcpy(gc->init, t->data, t->nbytes);
        gp->init_image = gc->init;
        gp->init_height = (int)t->shape[0];
        gp->init_width = (int)t->shape[1];
        gp->strength = (float)pd_json_get_double(p, "strength", 0.75);
    }
    return true;
}

static inline int golden_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Case names (malloc'd) in cases/ starting with prefix + model ("txt2img_" +
 * "tiny-sd15_" ...), sorted; at most max. */
static inline int golden_list_cases(const char *prefix, const char *model, char **out, int max) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/cases", pd_test_golden_dir());
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    char want[128];
    snprintf(want, sizeof want, "%s%s", prefix, model);
    while ((e = readdir(d)) && n < max) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, want, strlen(want)) || l < 5 || strcmp(e->d_name + l - 5, ".json")) continue;
        out[n] = strndup(e->d_name, l - 5);
        if (out[n]) n++;
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof *out, golden_cmp_str);
    return n;
}

static inline void golden_case_free(golden_case *gc) {
    free(gc->init);
    pd_st_close(gc->g);
    pd_arena_free(&gc->arena);
    free(gc->text);
    memset(gc, 0, sizeof *gc);
}

/* A context for golden model `rel` (cp NULL: defaults); NULL after recording a failure. */
static inline pd_ctx *golden_ctx(const char *rel, const pd_ctx_params *cp) {
    char path[1024];
    pd_ctx *ctx = NULL;
    pd_error err = {0};
    if (pd_ctx_load(golden_model(path, sizeof path, rel), cp, &ctx, &err) != PD_OK) PD_FAIL("%s: %s", rel, err.msg);
    return ctx;
}

/* One image from the model file at `path` (any path) with cp, on a fresh context: a
 * 64x64 run of `steps` steps of the default sampler for prompt and seed. NULL after
 * recording a failure. */
static inline pd_result *golden_image(const char *path, const pd_ctx_params *cp, const char *prompt, int steps,
                                      int64_t seed) {
    pd_ctx *ctx = NULL;
    pd_error err = {0};
    pd_result *r = NULL;
    if (pd_ctx_load(path, cp, &ctx, &err) != PD_OK) {
        PD_FAIL("%s: %s", path, err.msg);
        return NULL;
    }
    pd_gen_params gp = pd_gen_default_params();
    gp.prompt = prompt;
    gp.width = gp.height = 64;
    gp.steps = steps;
    gp.seed = seed;
    if (pd_generate(ctx, &gp, &r, &err) != PD_OK) PD_FAIL("%s: %s", path, err.msg);
    pd_ctx_free(ctx);
    return r;
}

#endif
