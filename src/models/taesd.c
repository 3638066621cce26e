/*
 * taesd.c - TAESD (AutoencoderTiny): file discovery and layout detection, load (names
 * -> layers, once, with every shape checked), and the encoder and decoder forward
 * passes (fp32, NHWC, one image). Architecture and conventions: taesd.h.
 *
 * Both parts are a flat list of layers (diffusers nn.Sequential indices) run by one
 * walk, run_layers(): CONV (the first reads the prepared input copy, the last writes
 * the caller's output, a CONV after UPSAMPLE runs fused with it), RELU in place, and
 * BLOCK in place:
 *     t1 = relu(conv1(x)); t2 = relu(conv2(t1)); x = conv3(t2) + x; x = relu(x)
 * (conv3's residual add is fused into the convolution; the final relu is a threaded
 * pass, because the kernels apply the activation before the residual).
 *
 * Memory plan: three buffers of the largest activation: the current one and the two
 * temporaries of a Block; a conv that changes the size writes one of the others. On
 * top: the input copy and, in the decoder, the band of a fused upsampling conv.
 *
 * Traps:
 *   - The original decoder file counts from 1 (its index 0 is Clamp, which holds no
 *     weights; the clamp is tanh(z / 3) * 3, applied here before layer 0).
 *   - Both original files have tensors "1.*", "2.*", ...: they are two sources, never
 *     one component with two files (pd_model_find would mix them).
 *   - The encoder's stride-2 convs pad 1 on every side (the KL VAE pads right/bottom).
 *   - Kernels may read 64 bytes past an input: caller buffers (latents, image) are
 *     copied into the arena (transformed on the way) before a convolution reads them.
 *   - The Block's ".conv" output (before the residual add) is recomputed for the tap
 *     only; the normal path never materialises it.
 */
#include "models/taesd.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAESD_MAX_SIDE 16384   /* image pixels per side */
#define TAESD_MAX_FILES 8      /* .safetensors files looked at in a folder */
#define TAESD_MAX_NAMES 256    /* expected tensor names of one load */
#define TAESD_MAX_CH 1024      /* hidden channels accepted from a file */
#define TAESD_MAX_IO_CH 64     /* latent / image channels accepted from a file */

/* The published block counts per level (diffusers num_encoder_blocks / num_decoder_blocks). */
static const int ENC_BLOCKS[4] = {1, 3, 3, 3};
static const int DEC_BLOCKS[4] = {3, 3, 3, 1};

/* Fills co's layer ops with the published encoder or decoder sequence (taesd.h). */
static void build_ops(pd_taesd_coder *co, bool decoder) {
    int n = 0;
    pd_taesd_layer *l = co->layer;
    l[n++].op = PD_TAESD_OP_CONV;
    if (decoder) l[n++].op = PD_TAESD_OP_RELU;
    for (int lv = 0; lv < 4; lv++) {
        if (!decoder && lv > 0) l[n++].op = PD_TAESD_OP_CONV;   /* stride 2, no bias */
        for (int b = 0; b < (decoder ? DEC_BLOCKS : ENC_BLOCKS)[lv]; b++) l[n++].op = PD_TAESD_OP_BLOCK;
        if (decoder && lv < 3) {
            l[n++].op = PD_TAESD_OP_UPSAMPLE;
            l[n++].op = PD_TAESD_OP_CONV;                        /* no bias */
        }
    }
    l[n++].op = PD_TAESD_OP_CONV;
    PD_ASSERT(n <= PD_TAESD_MAX_LAYERS);
    co->n_layers = n;
}

/* ---- loading ---------------------------------------------------------------------- */

/* Where one part's tensors are: layer N is "<prefix><N + offset>.*" in src's VAE component. */
typedef struct part_src {
    const pd_model_src *src;
    const char *prefix;
    int offset;
} part_src;

typedef struct loader {
    const pd_kernels *kt;
    char (*names)[96];   /* expected names (checkpoint spelling), for the leftover check */
    int n_names;
} loader;

static void layer_name(const part_src *ps, int layer, const char *suffix, char *buf, size_t n) {
    snprintf(buf, n, "%s%d.%s", ps->prefix, layer + ps->offset, suffix);
}

static void expect(loader *ld, const char *name) {
    if (ld->n_names < TAESD_MAX_NAMES) snprintf(ld->names[ld->n_names++], sizeof ld->names[0], "%s", name);
}

/* Reads d0, d1 of the 4-D weight [d0, d1, 3, 3] of layer `layer` (checked loosely:
 * pd_conv_load checks it exactly later). */
static pd_status probe_conv(const part_src *ps, int layer, int max0, int max1, int *d0, int *d1,
                            pd_error *err) {
    char name[96];
    layer_name(ps, layer, "weight", name, sizeof name);
    const pd_st_tensor *t = pd_model_find(ps->src, PD_COMP_VAE, name);
    pd_load_ctx lc = {ps->src, PD_COMP_VAE, NULL};
    if (!t) return pd_nn_check(&lc, NULL, name, 0, NULL, err);   /* "... is missing" */
    if (t->ndim != 4 || t->shape[0] < 1 || t->shape[0] > max0 || t->shape[1] < 1 || t->shape[1] > max1 ||
        t->shape[2] != 3 || t->shape[3] != 3) {
        char shape[96] = "[";
        for (int i = 0; i < t->ndim; i++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", i ? ", " : "",
                     (long long)t->shape[i]);
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "]");
        return pd_error_set(err, PD_ERR_SHAPE, "tensor '%s' has shape %s, expected a 3x3 conv weight [out, in, 3, 3] "
                            "with out <= %d, in <= %d", name, shape, max0, max1);
    }
    *d0 = (int)t->shape[0];
    *d1 = (int)t->shape[1];
    return PD_OK;
}

static pd_status load_conv(loader *ld, const part_src *ps, int layer, const char *sub, int cout, int cin,
                           int stride, bool bias, pd_conv *out, pd_error *err) {
    char w[96], b[96], suffix[48];
    snprintf(suffix, sizeof suffix, "%sweight", sub);
    layer_name(ps, layer, suffix, w, sizeof w);
    snprintf(suffix, sizeof suffix, "%sbias", sub);
    layer_name(ps, layer, suffix, b, sizeof b);
    expect(ld, w);
    if (bias) expect(ld, b);
    pd_load_ctx lc = {ps->src, PD_COMP_VAE, NULL};   /* weights of <= 37K values: packed unthreaded */
    return pd_conv_load(&lc, ld->kt, out, w, bias ? b : NULL, cout, cin, 3, stride, 1, err);
}

/* Loads one part: channels from the first and last convs, then every layer. */
static pd_status load_part(loader *ld, const part_src *ps, bool decoder, pd_taesd_coder *co, int *lat_ch,
                           int *img_ch, pd_error *err) {
    build_ops(co, decoder);
    const int last = co->n_layers - 1;
    int c = 0, cin = 0, cout = 0, c2 = 0;
    pd_status st = probe_conv(ps, 0, TAESD_MAX_CH, TAESD_MAX_IO_CH, &c, &cin, err);
    if (st == PD_OK) st = probe_conv(ps, last, TAESD_MAX_IO_CH, TAESD_MAX_CH, &cout, &c2, err);
    if (st != PD_OK) return st;
    co->channels = c;
    *lat_ch = decoder ? cin : cout;
    *img_ch = decoder ? cout : cin;
    for (int i = 0; i < co->n_layers && st == PD_OK; i++) {
        pd_taesd_layer *l = &co->layer[i];
        if (l->op == PD_TAESD_OP_CONV) {
            const bool first = i == 0, end = i == last;
            st = load_conv(ld, ps, i, "", end ? cout : c, first ? cin : c, !decoder && !first && !end ? 2 : 1,
                           first || end, &l->conv[0], err);
        } else if (l->op == PD_TAESD_OP_BLOCK) {
            static const char *const sub[3] = {"conv.0.", "conv.2.", "conv.4."};
            for (int j = 0; j < 3 && st == PD_OK; j++) st = load_conv(ld, ps, i, sub[j], c, c, 1, true, &l->conv[j], err);
        }
    }
    if (st == PD_OK) co->present = true;
    return st;
}

/* Fails on a tensor of src that no loaded layer uses (another architecture, a skip
 * conv, a layer past the end). */
static pd_status check_leftovers(const loader *ld, const pd_model_src *src, pd_error *err) {
    const pd_comp_src *cs = &src->comp[PD_COMP_VAE];
    for (int f = 0; f < cs->n_files; f++)
        for (int i = 0; i < cs->files[f]->n_tensors; i++) {
            const char *n = cs->files[f]->tensors[i].name;
            bool found = false;
            for (int j = 0; j < ld->n_names && !found; j++) found = strcmp(ld->names[j], n) == 0;
            if (!found)
                return pd_error_set(err, PD_ERR_UNSUPPORTED, "taesd: unexpected tensor '%s' in '%s' (not part of "
                                    "the TAESD architecture: %d encoder / %d decoder layers, no skip convs)",
                                    n, cs->files[f]->path, 15, 19);
        }
    return PD_OK;
}

static bool has_prefix(const pd_model_src *src, const char *prefix) {
    const pd_comp_src *cs = &src->comp[PD_COMP_VAE];
    size_t pl = strlen(prefix);
    for (int f = 0; f < cs->n_files; f++)
        for (int i = 0; i < cs->files[f]->n_tensors; i++)
            if (strncmp(cs->files[f]->tensors[i].name, prefix, pl) == 0) return true;
    return false;
}

/* Which parts src holds, from its tensor names. */
static pd_status classify(const pd_model_src *src, part_src *enc, part_src *dec, pd_error *err) {
    part_src e = {NULL, NULL, 0}, d = {NULL, NULL, 0};
    if (has_prefix(src, "encoder.") || has_prefix(src, "decoder.")) {   /* diffusers */
        if (has_prefix(src, "encoder.")) e = (part_src){src, "encoder.layers.", 0};
        if (has_prefix(src, "decoder.")) d = (part_src){src, "decoder.layers.", 0};
    } else if (pd_model_find(src, PD_COMP_VAE, "0.weight")) {            /* original encoder */
        e = (part_src){src, "", 0};
    } else if (pd_model_find(src, PD_COMP_VAE, "1.weight")) {            /* original decoder */
        d = (part_src){src, "", 1};
    } else {
        return pd_error_set(err, PD_ERR_FORMAT, "'%s' is not a TAESD model: no encoder.layers.* / decoder.layers.* "
                            "(diffusers) or 0.weight / 1.weight (original encoder / decoder) tensors", src->path);
    }
    if ((e.src && enc->src) || (d.src && dec->src))
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "'%s' and '%s' both hold a TAESD %s: pass one file or a folder "
                            "with one encoder and one decoder", (e.src && enc->src ? enc : dec)->src->path,
                            src->path, e.src && enc->src ? "encoder" : "decoder");
    if (e.src) *enc = e;
    if (d.src) *dec = d;
    return PD_OK;
}

/* The diffusers config, when there is one, must describe the architecture loaded. */
static pd_status check_config(const pd_model_src *src, pd_error *err) {
    const pd_json *jc = src->comp[PD_COMP_VAE].config;
    if (!jc) return PD_OK;
    const char *cls = pd_json_get_string(jc, "_class_name", "AutoencoderTiny");
    if (strcmp(cls, "AutoencoderTiny") != 0)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "'%s' holds model class %s, not a TAESD (AutoencoderTiny)", src->path, cls);
    const char *act = pd_json_get_string(jc, "act_fn", "relu");
    const char *up = pd_json_get_string(jc, "upsample_fn", "nearest");
    int64_t factor = pd_json_get_int(jc, "upsampling_scaling_factor", 2);
    if (strcmp(act, "relu") != 0 || strcmp(up, "nearest") != 0 || factor != 2)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "'%s': act_fn \"%s\", upsample_fn \"%s\", upsampling_scaling_factor "
                            "%lld (supported: relu, nearest, 2)", src->path, act, up, (long long)factor);
    static const char *const keys[2] = {"num_encoder_blocks", "num_decoder_blocks"};
    for (int k = 0; k < 2; k++) {
        const pd_json *a = pd_json_get(jc, keys[k]);
        if (!a) continue;
        const int *want = k ? DEC_BLOCKS : ENC_BLOCKS;
        bool ok = a->type == PD_JSON_ARRAY && a->len == 4;
        for (size_t i = 0; ok && i < 4; i++) {
            int64_t v;
            ok = pd_json_as_int64(pd_json_at(a, i), &v) && v == want[i];
        }
        if (!ok)
            return pd_error_set(err, PD_ERR_UNSUPPORTED, "'%s': %s is not [%d, %d, %d, %d] (the published TAESD)",
                                src->path, keys[k], want[0], want[1], want[2], want[3]);
    }
    return PD_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Opens path's sources: a diffusers folder (config.json), every .safetensors file of a
 * folder without one, or a single file. */
static pd_status open_sources(const char *path, pd_model_src **srcs, int *n_srcs, pd_error *err) {
    char cfg[1024];
    *n_srcs = 0;
    if (!pd_path_is_dir(path)) {
        pd_status st = pd_model_open_component_file(path, PD_COMP_VAE, &srcs[0], err);
        if (st == PD_OK) *n_srcs = 1;
        return st;
    }
    if (pd_path_join(cfg, sizeof cfg, path, "config.json") && pd_path_is_file(cfg)) {
        pd_status st = pd_model_open(path, NULL, &srcs[0], err);
        if (st != PD_OK) return st;
        *n_srcs = 1;
        if (!srcs[0]->comp[PD_COMP_VAE].present)
            return pd_error_set(err, PD_ERR_MISSING, "'%s' holds no TAESD weights (diffusion_pytorch_model.safetensors)", path);
        return check_config(srcs[0], err);
    }
    DIR *d = opendir(path);
    if (!d) return pd_error_set(err, PD_ERR_IO, "cannot open folder '%s'", path);
    char *names[TAESD_MAX_FILES];
    int n = 0;
    pd_status st = PD_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && st == PD_OK) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 12 || strcmp(e->d_name + l - 12, ".safetensors") != 0) continue;
        if (n == TAESD_MAX_FILES) st = pd_error_set(err, PD_ERR_UNSUPPORTED, "'%s' holds more than %d .safetensors "
                                                    "files: pass the TAESD file itself", path, TAESD_MAX_FILES);
        else if (!(names[n] = strdup(e->d_name))) st = pd_error_set(err, PD_ERR_OOM, "out of memory listing '%s'", path);
        else n++;
    }
    closedir(d);
    if (st == PD_OK && n == 0)
        st = pd_error_set(err, PD_ERR_MISSING, "'%s' holds neither config.json nor .safetensors files: not a TAESD "
                          "folder", path);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n && st == PD_OK; i++) {
        char file[1024];
        if (!pd_path_join(file, sizeof file, path, names[i]))
            st = pd_error_set(err, PD_ERR_INVALID_ARG, "path too long: '%s/%s'", path, names[i]);
        else if ((st = pd_model_open_component_file(file, PD_COMP_VAE, &srcs[*n_srcs], err)) == PD_OK)
            (*n_srcs)++;
    }
    for (int i = 0; i < n; i++) free(names[i]);
    return st;
}

pd_status pd_taesd_load(pd_taesd *out, const char *path, const pd_kernels *kt, pd_error *err) {
    memset(out, 0, sizeof *out);
    pd_model_src *srcs[TAESD_MAX_FILES] = {NULL};
    int n_srcs = 0;
    loader ld = {kt, calloc(TAESD_MAX_NAMES, sizeof *ld.names), 0};
    part_src enc = {NULL, NULL, 0}, dec = {NULL, NULL, 0};
    const pd_model_src *failed = NULL;   /* whose path prefixes a tensor error */
    pd_status st = ld.names ? PD_OK : pd_error_set(err, PD_ERR_OOM, "out of memory loading '%s'", path ? path : "");
    if (st == PD_OK && (!path || !*path)) st = pd_error_set(err, PD_ERR_INVALID_ARG, "taesd: no model path given");
    if (st == PD_OK) st = open_sources(path, srcs, &n_srcs, err);
    for (int i = 0; i < n_srcs && st == PD_OK; i++) st = classify(srcs[i], &enc, &dec, err);

    int lat_e = 0, img_e = 0, lat_d = 0, img_d = 0;
    if (st == PD_OK && enc.src) {
        failed = enc.src;
        st = load_part(&ld, &enc, false, &out->enc, &lat_e, &img_e, err);
    }
    if (st == PD_OK && dec.src) {
        failed = dec.src;
        st = load_part(&ld, &dec, true, &out->dec, &lat_d, &img_d, err);
    }
    if (st != PD_OK && failed) pd_error_prefix(err, "taesd '%s'", failed->path);
    for (int i = 0; i < n_srcs && st == PD_OK; i++) st = check_leftovers(&ld, srcs[i], err);
    if (st == PD_OK && enc.src && dec.src && (lat_e != lat_d || img_e != img_d))
        st = pd_error_set(err, PD_ERR_SHAPE, "taesd '%s': the encoder maps %d image channels to %d latent channels, "
                          "the decoder %d latent channels to %d image channels", path, img_e, lat_e, lat_d, img_d);
    if (st == PD_OK) {
        out->latent_channels = enc.src ? lat_e : lat_d;
        out->image_channels = enc.src ? img_e : img_d;
        out->scale = 8;
    }
    for (int i = 0; i < n_srcs; i++) pd_model_close(srcs[i]);
    free(ld.names);
    if (st != PD_OK) pd_taesd_free(out);
    return st;
}

static void free_coder(pd_taesd_coder *co) {
    for (int i = 0; i < PD_TAESD_MAX_LAYERS; i++)
        for (int j = 0; j < 3; j++) pd_conv_free(&co->layer[i].conv[j]);
}

void pd_taesd_free(pd_taesd *m) {
    if (!m) return;
    free_coder(&m->enc);
    free_coder(&m->dec);
    memset(m, 0, sizeof *m);
}

/* ---- memory plan -------------------------------------------------------------------- */

typedef struct taesd_plan {
    size_t act;     /* floats of each of the three activation buffers */
    size_t extra;   /* bytes on top: input copy + largest upsampling band */
} taesd_plan;

static size_t fbytes(size_t n) { return pd_arena_size_for(PD_MAX(n, 1) * sizeof(float)); }

/* Walks co's layers from an h x w input of c_in channels. */
static taesd_plan plan(const pd_taesd_coder *co, int h, int w, int c_in) {
    const size_t copy = fbytes((size_t)h * (size_t)w * (size_t)c_in);
    taesd_plan p = {0, 0};
    const int c = co->channels;
    bool up = false;
    for (int i = 0; i < co->n_layers; i++) {
        const pd_taesd_layer *l = &co->layer[i];
        if (l->op == PD_TAESD_OP_UPSAMPLE) {
            up = true;
        } else if (l->op == PD_TAESD_OP_CONV) {
            if (up) p.extra = PD_MAX(p.extra, pd_upsample2x_conv_scratch_bytes(c, 3, 1, h, w));
            if (up) h *= 2, w *= 2;
            else pd_conv_out_size(&l->conv[0], h, w, &h, &w);
            up = false;
            if (i < co->n_layers - 1) p.act = PD_MAX(p.act, (size_t)h * (size_t)w * (size_t)c);
        }
    }
    p.extra += copy;   /* the input copy stays below the bands */
    return p;
}

static size_t plan_bytes(const taesd_plan *p) { return 3 * fbytes(p->act) + p->extra; }

size_t pd_taesd_decode_scratch_bytes(const pd_taesd *m, int lat_h, int lat_w) {
    if (!m->dec.present || lat_h < 1 || lat_w < 1) return 0;
    taesd_plan p = plan(&m->dec, lat_h, lat_w, m->latent_channels);
    return plan_bytes(&p);
}

size_t pd_taesd_encode_scratch_bytes(const pd_taesd *m, int img_h, int img_w) {
    if (!m->enc.present || img_h < 1 || img_w < 1) return 0;
    taesd_plan p = plan(&m->enc, img_h, img_w, m->image_channels);
    return plan_bytes(&p);
}

/* ---- forward ------------------------------------------------------------------------ */

static void tap_layer(const pd_vae_tap *tap, const char *side, int i, const char *suffix, const float *x, int h,
                      int w, int c) {
    if (!tap || !tap->fn) return;
    char name[96];
    snprintf(name, sizeof name, "%s.layers.%d%s", side, i, suffix);
    tap->fn(tap->user, name, x, h, w, c);
}

/* One Block on x [h, w, c] in place; t1, t2 are temporaries of the same size. */
static void block_forward(const pd_nn *nn, const pd_taesd_layer *l, float *x, float *t1, float *t2, int h, int w,
                          const pd_vae_tap *tap, const char *side, int index) {
    const size_t n = (size_t)h * (size_t)w * (size_t)l->conv[0].cout;
    pd_conv_forward(nn, &l->conv[0], x, h, w, t1, PD_ACT_RELU, NULL);    // [h, w, c]
    pd_conv_forward(nn, &l->conv[1], t1, h, w, t2, PD_ACT_RELU, NULL);   // [h, w, c]
    if (tap && tap->fn) {   /* the three-conv path alone, for the tap (t1 is free now) */
        pd_conv_forward(nn, &l->conv[2], t2, h, w, t1, PD_ACT_NONE, NULL);
        tap_layer(tap, side, index, ".conv", t1, h, w, l->conv[2].cout);
    }
    pd_conv_forward(nn, &l->conv[2], t2, h, w, x, PD_ACT_NONE, x);       // x = conv3(t2) + x
    pd_nn_act(nn, x, x, n, PD_ACT_RELU);
}

/* Runs co on in (an arena copy [h, w, c_in]) into out (caller memory, [oh, ow, c_out]
 * of the last conv); buf: three buffers of plan().act floats. */
static void run_layers(const pd_nn *nn, const pd_taesd_coder *co, const char *side, const float *in, int h, int w,
                       float *out, float *buf[3], pd_arena *scratch, const pd_vae_tap *tap) {
    int cur = -1;   /* buffer holding x; -1: x is `in` */
    int c = 0;
    bool up = false;
    for (int i = 0; i < co->n_layers; i++) {
        const pd_taesd_layer *l = &co->layer[i];
        switch (l->op) {
        case PD_TAESD_OP_CONV: {
            const pd_conv *cv = &l->conv[0];
            const float *x = cur < 0 ? in : buf[cur];
            const int next = (cur + 1) % 3;   /* cur == -1 -> buffer 0 */
            float *dst = i == co->n_layers - 1 ? out : buf[next];
            if (up) {
                pd_upsample2x_conv_forward(nn, cv, x, h, w, dst, scratch);   // [2h, 2w, cout]
                h *= 2;
                w *= 2;
            } else {
                int oh, ow;
                pd_conv_out_size(cv, h, w, &oh, &ow);
                pd_conv_forward(nn, cv, x, h, w, dst, PD_ACT_NONE, NULL);    // [oh, ow, cout]
                h = oh;
                w = ow;
            }
            up = false;
            c = cv->cout;
            cur = next;
            tap_layer(tap, side, i, "", dst, h, w, c);
            break;
        }
        case PD_TAESD_OP_RELU:
            pd_nn_act(nn, buf[cur], buf[cur], (size_t)h * (size_t)w * (size_t)c, PD_ACT_RELU);
            tap_layer(tap, side, i, "", buf[cur], h, w, c);
            break;
        case PD_TAESD_OP_BLOCK:
            block_forward(nn, l, buf[cur], buf[(cur + 1) % 3], buf[(cur + 2) % 3], h, w, tap, side, i);
            tap_layer(tap, side, i, "", buf[cur], h, w, c);
            break;
        case PD_TAESD_OP_UPSAMPLE:
            up = true;   /* fused into the next conv; never materialised */
            break;
        }
    }
}

/* Checks the arena has room for p, then allocates the three buffers. */
static pd_status alloc_bufs(float *buf[3], const taesd_plan *p, pd_arena *scratch, const char *what, int h, int w,
                            pd_error *err) {
    size_t need = plan_bytes(p);
    size_t avail = scratch->cap - PD_MIN(scratch->used, scratch->cap);
    if (scratch->cap > 0 && avail < need)
        return pd_error_set(err, PD_ERR_OOM, "taesd: %s %dx%d needs %zu MiB of scratch memory, the arena has %zu "
                            "MiB free", what, w, h, (need + (1 << 20) - 1) >> 20, avail >> 20);
    for (int i = 0; i < 3; i++) {
        buf[i] = pd_arena_alloc(scratch, PD_MAX(p->act, 1) * sizeof(float));
        if (!buf[i])
            return pd_error_set(err, PD_ERR_OOM, "taesd: out of memory for %s %dx%d (%zu MiB of activations)", what,
                                w, h, (PD_MAX(p->act, 1) * sizeof(float)) >> 20);
    }
    return PD_OK;
}

pd_status pd_taesd_decode(const pd_taesd *m, const pd_nn *nn, const float *latents, int lat_h, int lat_w,
                          float *image, pd_arena *scratch, const pd_vae_tap *tap, pd_error *err) {
    if (!m->dec.present)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "taesd: no decoder loaded (encoder-only weights)");
    const int max_lat = TAESD_MAX_SIDE / m->scale;
    if (lat_h < 1 || lat_w < 1 || lat_h > max_lat || lat_w > max_lat)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "taesd decode: latent size %dx%d outside 1..%d", lat_w, lat_h,
                            max_lat);
    taesd_plan p = plan(&m->dec, lat_h, lat_w, m->latent_channels);
    pd_arena_mark mark = pd_arena_get_mark(scratch);
    float *buf[3];
    pd_status st = alloc_bufs(buf, &p, scratch, "decode of latent", lat_h, lat_w, err);
    if (st == PD_OK) {
        /* x = tanh(z / 3) * 3 into an arena copy   // [lat_h, lat_w, L] */
        const size_t n = (size_t)lat_h * (size_t)lat_w * (size_t)m->latent_channels;
        float *x = pd_arena_alloc(scratch, n * sizeof(float));
        PD_ASSERT(x != NULL);   /* within plan_bytes, checked above */
        for (size_t i = 0; i < n; i++) x[i] = tanhf(latents[i] / 3.0f) * 3.0f;
        if (tap && tap->fn) tap->fn(tap->user, "decoder.clamped_input", x, lat_h, lat_w, m->latent_channels);
        run_layers(nn, &m->dec, "decoder", x, lat_h, lat_w, image, buf, scratch, tap);
        /* image = 2 * out - 1   // [8 lat_h, 8 lat_w, 3] */
        const size_t ni = (size_t)lat_h * (size_t)lat_w * (size_t)(m->scale * m->scale) * (size_t)m->image_channels;
        for (size_t i = 0; i < ni; i++) image[i] = 2.0f * image[i] - 1.0f;
    }
    pd_arena_reset(scratch, mark);
    return st;
}

pd_status pd_taesd_encode(const pd_taesd *m, const pd_nn *nn, const float *image, int img_h, int img_w,
                          float *latents, pd_arena *scratch, const pd_vae_tap *tap, pd_error *err) {
    if (!m->enc.present)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "taesd: no encoder loaded (decoder-only weights)");
    const int s = m->scale;
    if (img_h < s || img_w < s || img_h > TAESD_MAX_SIDE || img_w > TAESD_MAX_SIDE || img_h % s != 0 || img_w % s != 0)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "taesd encode: image size %dx%d must be a multiple of %d "
                            "between %d and %d", img_w, img_h, s, s, TAESD_MAX_SIDE);
    taesd_plan p = plan(&m->enc, img_h, img_w, m->image_channels);
    pd_arena_mark mark = pd_arena_get_mark(scratch);
    float *buf[3];
    pd_status st = alloc_bufs(buf, &p, scratch, "encode of image", img_h, img_w, err);
    if (st == PD_OK) {
        /* x = (image + 1) / 2 into an arena copy   // [img_h, img_w, 3] */
        const size_t n = (size_t)img_h * (size_t)img_w * (size_t)m->image_channels;
        float *x = pd_arena_alloc(scratch, n * sizeof(float));
        PD_ASSERT(x != NULL);
        for (size_t i = 0; i < n; i++) x[i] = (image[i] + 1.0f) / 2.0f;
        run_layers(nn, &m->enc, "encoder", x, img_h, img_w, latents, buf, scratch, tap);
    }
    pd_arena_reset(scratch, mark);
    return st;
}
