/*
 * test_vae.c - the SD VAE (AutoencoderKL encoder and decoder) against the reference
 * (diffusers 0.31, fp32).
 *
 * For every vae_decode_* / vae_encode_* golden case, with both model layouts (single
 * file with LDM keys, diffusers folder): the image (decode) or the moments, mean,
 * logvar and std (encode) within 1e-4 of max |ref|; image_u8 within +-1 on >= 99.9 % of
 * the values; every inter.* intermediate of the 8x8 cases (module outputs, '.ch0-3'
 * slices, conv_norm_out recomputed from the block before it) within 1e-4 too, so a
 * failure points at the module. The two layouts must agree bit for bit. Also: the
 * expected-key table covers exactly the VAE tensors of each file, the scratch sizes
 * documented in vae.h for the real SD shapes, and the up-front OOM error.
 */
#include "golden.h"
#include "io/keys_vae.h"
#include "io/model.h"
#include "kernels/kernels.h"
#include "models/vae.h"
#include "parity/vae_config.h"

#define TOL 1e-4

typedef struct vae_case {
    const char *name;
    const char *model;   /* "tiny-sd15" -> tiny-sd15.safetensors and tiny-sd15/ */
    bool decode;
} vae_case;

static const vae_case CASES[] = {
    {"vae_decode_tiny-sd15_8x8", "tiny-sd15", true},   {"vae_decode_tiny-sd15_12x8", "tiny-sd15", true},
    {"vae_decode_tiny-sdxl_8x8", "tiny-sdxl", true},   {"vae_decode_tiny-sdxl_12x8", "tiny-sdxl", true},
    {"vae_encode_tiny-sd15_8x8", "tiny-sd15", false},  {"vae_encode_tiny-sd15_12x8", "tiny-sd15", false},
    {"vae_encode_tiny-sdxl_8x8", "tiny-sdxl", false},  {"vae_encode_tiny-sdxl_12x8", "tiny-sdxl", false},
};

static double worst_err, worst_inter;
static int worst_u8_off;
static size_t u8_off1, u8_total;

/* ---- comparisons -------------------------------------------------------------------- */

typedef struct tap_state {
    const char *label;
    const pd_st_file *g;
    const pd_vae *m;
    const pd_nn *nn;
    int n_compared;
    char seen[32][128];
    int n_seen;
    float *quant;   /* copy of the moments (encode) */
} tap_state;

static void mark_seen(tap_state *ts, const char *name) {
    if (ts->n_seen < 32) snprintf(ts->seen[ts->n_seen++], sizeof ts->seen[0], "%s", name);
}

/* Compares x with golden "inter.<name>" or "inter.<name>.ch0-3" when present. */
static void compare_inter(tap_state *ts, const char *name, const float *x, int h, int w, int c) {
    char key[128];
    snprintf(key, sizeof key, "inter.%s", name);
    int c_ref = c;
    if (!pd_st_find(ts->g, key)) {
        snprintf(key, sizeof key, "inter.%s.ch0-3", name);
        c_ref = 4;
        if (!pd_st_find(ts->g, key)) return;
    }
    double e = golden_check_nhwc(ts->label, ts->g, key, x, h, w, c, c_ref, TOL);
    if (e > worst_inter) worst_inter = e;
    ts->n_compared++;
    mark_seen(ts, key);
}

static void on_tap(void *user, const char *name, const float *x, int h, int w, int c) {
    tap_state *ts = user;
    compare_inter(ts, name, x, h, w, c);
    const pd_vae_arch *a = &ts->m->cfg.arch;
    char last[64];
    snprintf(last, sizeof last, "decoder.up_blocks.%d", a->n_levels - 1);
    bool dec_end = strcmp(name, last) == 0, enc_end = strcmp(name, "encoder.mid_block") == 0;
    if (dec_end || enc_end) {
        /* conv_norm_out (GroupNorm, no SiLU) is fused into conv_out: recompute it. */
        const pd_groupnorm *gn = dec_end ? &ts->m->dec.norm_out : &ts->m->enc.norm_out;
        float *y = malloc((size_t)h * w * c * sizeof(float) + 64);
        pd_groupnorm_forward(ts->nn, gn, y, x, h * w, false);
        compare_inter(ts, dec_end ? "decoder.conv_norm_out" : "encoder.conv_norm_out", y, h, w, c);
        free(y);
    }
    if (strcmp(name, "quant_conv") == 0 && pd_st_find(ts->g, "moments")) {
        double e = golden_check_nhwc(ts->label, ts->g, "moments", x, h, w, c, c, TOL);
        if (e > worst_err) worst_err = e;
        ts->n_compared++;
    }
}

/* Every inter.* tensor of the case was compared. */
static void check_all_inter_seen(const tap_state *ts) {
    for (int i = 0; i < ts->g->n_tensors; i++) {
        const char *n = ts->g->tensors[i].name;
        if (strncmp(n, "inter.", 6) != 0) continue;
        bool found = false;
        for (int j = 0; j < ts->n_seen && !found; j++) found = strcmp(ts->seen[j], n) == 0;
        CHECK_MSG(found, "%s: intermediate %s was never produced", ts->label, n);
    }
}

static void check_u8(const char *label, const pd_st_file *g, const float *image, int h, int w, int c) {
    const pd_st_tensor *t = pd_st_find(g, "image_u8");
    if (!t || t->dtype != PD_DTYPE_U8 || t->numel != (int64_t)h * w * c) {
        PD_FAIL("%s: golden image_u8 missing or of the wrong size", label);
        return;
    }
    size_t n = (size_t)t->numel;
    uint8_t *mine = malloc(n);
    pd_vae_image_to_u8(mine, image, n);   /* NHWC float -> HWC u8, the golden order */
    const uint8_t *ref = t->data;
    size_t off1 = 0, bad = 0;
    int max_off = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)mine[i] - (int)ref[i]);
        if (d > max_off) max_off = d;
        if (d == 1) off1++;
        if (d > 1) bad++;
    }
    if (max_off > worst_u8_off) worst_u8_off = max_off;
    u8_off1 += off1;
    u8_total += n;
    CHECK_MSG(bad == 0, "%s image_u8: %zu values off by more than 1 (max %d)", label, bad, max_off);
    CHECK_MSG((double)off1 <= 0.001 * (double)n, "%s image_u8: %zu of %zu values off by 1", label, off1, n);
    free(mine);
}

/* ---- one case ----------------------------------------------------------------------- */

/* Runs case cc on the model at path; *out gets a malloc'd copy of the main output. */
static void run_case(const vae_case *cc, const char *path, const pd_kernels *kt, pd_pool *pool,
                     float **out, size_t *out_n) {
    pd_error err = {0};
    pd_model_src *src = NULL;
    pd_vae m;
    memset(&m, 0, sizeof m);
    pd_st_file *g = NULL;
    float *in = NULL, *in_nhwc = NULL, *res = NULL, *res2 = NULL;
    pd_arena scratch = {0};
    if (pd_model_open(path, NULL, &src, &err) != PD_OK) {
        PD_FAIL("%s: %s", path, err.msg);
        return;
    }
    if (pd_vae_load(&m, src, kt, NULL, &err) != PD_OK) {
        PD_FAIL("%s: load: %s", path, err.msg);
        goto done;
    }
    g = golden_open(cc->name);
    if (!g) goto done;
    const pd_vae_config *cfg = &m.cfg;
    const pd_st_tensor *ti = pd_st_find(g, cc->decode ? "z" : "image");
    if (!ti || ti->ndim != 4) {
        PD_FAIL("%s: input tensor missing", cc->name);
        goto done;
    }
    const int c_in = (int)ti->shape[1], h = (int)ti->shape[2], w = (int)ti->shape[3];
    in = golden_f32(g, cc->decode ? "z" : "image", NULL);
    in_nhwc = malloc((size_t)c_in * h * w * sizeof(float));
    pd_nchw_to_nhwc(in_nhwc, in, c_in, h, w);
    char label[600];
    snprintf(label, sizeof label, "%s [%s, %s kernels]", cc->name, path, pd_isa_name(kt->isa));
    pd_nn nn = {.kt = kt, .pool = pool};
    tap_state ts = {label, g, &m, &nn, 0, {{0}}, 0, NULL};
    pd_vae_tap tap = {on_tap, &ts};
    size_t need = cc->decode ? pd_vae_decode_scratch_bytes(cfg, h, w) : pd_vae_encode_scratch_bytes(cfg, h, w);
    if (pd_arena_init(&scratch, need) != 0) {
        PD_FAIL("out of memory");
        goto done;
    }
    if (cc->decode) {
        CHECK_EQ_INT(c_in, cfg->arch.latent_channels);
        const int oh = h * cfg->scale, ow = w * cfg->scale, oc = cfg->arch.out_channels;
        *out_n = (size_t)oh * ow * oc;
        res = malloc(*out_n * sizeof(float));
        if (pd_vae_decode(&m, &nn, in_nhwc, h, w, res, &scratch, &tap, &err) != PD_OK) {
            PD_FAIL("%s: decode: %s", label, err.msg);
            goto done;
        }
        double e = golden_check_nhwc(label, g, "image", res, oh, ow, oc, oc, TOL);
        if (e > worst_err) worst_err = e;
        check_u8(label, g, res, oh, ow, oc);
    } else {
        CHECK_EQ_INT(c_in, cfg->arch.in_channels);
        const int lh = h / cfg->scale, lw = w / cfg->scale, lc = cfg->arch.latent_channels;
        *out_n = (size_t)2 * lh * lw * lc;
        res = malloc(*out_n * sizeof(float));   /* mean | logvar */
        float *mean = res, *logvar = res + (size_t)lh * lw * lc;
        if (pd_vae_encode(&m, &nn, in_nhwc, h, w, mean, logvar, &scratch, &tap, &err) != PD_OK) {
            PD_FAIL("%s: encode: %s", label, err.msg);
            goto done;
        }
        double e1 = golden_check_nhwc(label, g, "mean", mean, lh, lw, lc, lc, TOL);
        double e2 = golden_check_nhwc(label, g, "logvar", logvar, lh, lw, lc, lc, TOL);
        res2 = malloc((size_t)lh * lw * lc * sizeof(float));
        for (size_t i = 0; i < (size_t)lh * lw * lc; i++) res2[i] = expf(0.5f * logvar[i]);
        double e3 = golden_check_nhwc(label, g, "std", res2, lh, lw, lc, lc, TOL);
        worst_err = fmax(worst_err, fmax(e1, fmax(e2, e3)));
    }
    CHECK_MSG(scratch.used_peak <= need, "%s: scratch peak %zu > planned %zu", label, scratch.used_peak, need);
    CHECK_EQ_INT(scratch.used, 0);   /* the arena is left as found */
    if (strstr(cc->name, "_8x8")) {
        CHECK_MSG(ts.n_compared >= 9, "%s: only %d intermediates compared", label, ts.n_compared);
        check_all_inter_seen(&ts);
    }
    *out = res;
    res = NULL;
done:
    pd_arena_free(&scratch);
    free(in);
    free(in_nhwc);
    free(res);
    free(res2);
    pd_st_close(g);
    pd_vae_free(&m);
    pd_model_close(src);
}

static void run_all(pd_isa isa, bool quick) {
    PD_REQUIRE_GOLDEN();
    pd_kernels kt;
    pd_isa got = pd_kernels_init(&kt, isa);
    if (isa != PD_ISA_AUTO && got != isa) PD_SKIP("%s kernels not available here", pd_isa_name(isa));
    pd_pool *pool = pd_pool_new(2);
    worst_err = worst_inter = 0;
    worst_u8_off = 0;
    u8_off1 = u8_total = 0;
    for (size_t i = 0; i < PD_COUNT(CASES); i++) {
        const vae_case *cc = &CASES[i];
        if (quick && !strstr(cc->name, "_8x8")) continue;   /* the scalar kernels are slow under ASan */
        char p1[1024], p2[1024], file[128];
        snprintf(file, sizeof file, "%s.safetensors", cc->model);
        float *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        run_case(cc, golden_model(p1, sizeof p1, file), &kt, pool, &a, &na);
        if (!quick) run_case(cc, golden_model(p2, sizeof p2, cc->model), &kt, pool, &b, &nb);
        if (a && b)
            CHECK_MSG(na == nb && memcmp(a, b, na * sizeof(float)) == 0,
                      "%s: single file and diffusers folder differ", cc->name);
        free(a);
        free(b);
    }
    fprintf(stderr, "  vae parity (%s kernels): worst relative error %.3g (outputs), %.3g (intermediates), "
            "image_u8 max |diff| %d (%zu of %zu values off by 1)\n", pd_isa_name(got), worst_err, worst_inter,
            worst_u8_off, u8_off1, u8_total);
    pd_pool_free(pool);
}

static void test_vae_parity_best(void) { run_all(PD_ISA_AUTO, false); }
static void test_vae_parity_scalar(void) { run_all(PD_ISA_SCALAR, true); }
static void test_vae_parity_avx2(void) { run_all(PD_ISA_AVX2, false); }

/* ---- key table, configuration ------------------------------------------------------- */

static void check_keys(const char *rel, pd_vae_naming naming) {
    char path[1024];
    pd_error err = {0};
    pd_model_src *src = NULL;
    if (pd_model_open(golden_model(path, sizeof path, rel), NULL, &src, &err) != PD_OK) {
        PD_FAIL("%s: %s", rel, err.msg);
        return;
    }
    pd_vae_config cfg;
    if (pd_vae_read_config(&cfg, src, &err) != PD_OK) {
        PD_FAIL("%s: %s", rel, err.msg);
        pd_model_close(src);
        return;
    }
    CHECK_EQ_INT(cfg.arch.naming, naming);
    CHECK_EQ_INT(cfg.arch.n_levels, 4);
    CHECK_EQ_INT(cfg.arch.layers_per_block, 2);
    CHECK_EQ_INT(cfg.arch.latent_channels, 4);
    CHECK_EQ_INT(cfg.arch.in_channels, 3);
    CHECK_EQ_INT(cfg.arch.out_channels, 3);
    CHECK_EQ_INT(cfg.scale, 8);
    CHECK_EQ_INT(cfg.groups, 32);
    bool xl = strstr(rel, "sdxl") != NULL;
    CHECK(cfg.scaling_factor == (xl ? 0.13025f : 0.18215f));
    CHECK_EQ_INT(cfg.arch.ch[2], xl ? 64 : 32);
    CHECK(cfg.arch.has_encoder && cfg.arch.has_quant_conv && cfg.arch.has_post_quant_conv && cfg.arch.has_mid_attn);

    char **names = NULL;
    int n = pd_vae_keys_expected(src, &names);
    CHECK(n > 0);
    /* Every expected name exists, and every VAE tensor of the file is expected. */
    int n_file = 0;
    const pd_comp_src *cs = &src->comp[PD_COMP_VAE];
    size_t pl = strlen(cs->prefix);
    for (int f = 0; f < cs->n_files; f++)
        for (int i = 0; i < cs->files[f]->n_tensors; i++) {
            char tn[512];
            if (strncmp(cs->files[f]->tensors[i].name, cs->prefix, pl) != 0) continue;
            pd_model_full_name(src, PD_COMP_VAE, cs->files[f]->tensors[i].name + pl, tn, sizeof tn);
            n_file++;
            bool found = false;
            for (int j = 0; j < n && !found; j++) found = strcmp(names[j], tn) == 0;
            CHECK_MSG(found, "%s: tensor %s is not in the expected-key table", rel, tn);
        }
    for (int j = 0; j < n; j++) {
        bool found = false;
        for (int f = 0; f < cs->n_files && !found; f++)
            for (int i = 0; i < cs->files[f]->n_tensors && !found; i++) {
                char tn[512];
                if (strncmp(cs->files[f]->tensors[i].name, cs->prefix, pl) != 0) continue;
                pd_model_full_name(src, PD_COMP_VAE, cs->files[f]->tensors[i].name + pl, tn, sizeof tn);
                found = strcmp(tn, names[j]) == 0;
            }
        CHECK_MSG(found, "%s: expected tensor %s is absent", rel, names[j]);
        free(names[j]);
    }
    free(names);
    CHECK_EQ_INT(n, n_file);
    pd_model_close(src);
}

static void test_vae_keys(void) {
    PD_REQUIRE_GOLDEN();
    check_keys("tiny-sd15.safetensors", PD_VAE_NAMING_LDM);
    check_keys("tiny-sd15", PD_VAE_NAMING_DIFFUSERS);
    check_keys("tiny-sdxl.safetensors", PD_VAE_NAMING_LDM);
    check_keys("tiny-sdxl", PD_VAE_NAMING_DIFFUSERS);
}

/* The reversed LDM decoder index and the namings, spelled out. */
static void test_vae_key_names(void) {
    char buf[256];
    pd_vae_key k = {PD_VAE_DEC_RESNET, 0, 2, PD_VAE_RES_SKIP, false};
    CHECK(pd_vae_key_name(PD_VAE_NAMING_LDM, 4, k, buf, sizeof buf));
    CHECK(strcmp(buf, "decoder.up.3.block.2.nin_shortcut.weight") == 0);
    CHECK(pd_vae_key_name(PD_VAE_NAMING_DIFFUSERS, 4, k, buf, sizeof buf));
    CHECK(strcmp(buf, "decoder.up_blocks.0.resnets.2.conv_shortcut.weight") == 0);
    pd_vae_key up = {PD_VAE_DEC_UPSAMPLE, 1, 0, PD_VAE_PART_SELF, true};
    CHECK(pd_vae_key_name(PD_VAE_NAMING_LDM, 4, up, buf, sizeof buf));
    CHECK(strcmp(buf, "decoder.up.2.upsample.conv.bias") == 0);
    pd_vae_key at = {PD_VAE_ENC_MID_ATTN, 0, 0, PD_VAE_ATTN_OUT, false};
    CHECK(pd_vae_key_name(PD_VAE_NAMING_LDM, 4, at, buf, sizeof buf));
    CHECK(strcmp(buf, "encoder.mid.attn_1.proj_out.weight") == 0);
    CHECK(pd_vae_key_name(PD_VAE_NAMING_DIFFUSERS, 4, at, buf, sizeof buf));
    CHECK(strcmp(buf, "encoder.mid_block.attentions.0.to_out.0.weight") == 0);
    CHECK(pd_vae_key_name(PD_VAE_NAMING_DIFFUSERS_OLD, 4, at, buf, sizeof buf));
    CHECK(strcmp(buf, "encoder.mid_block.attentions.0.proj_attn.weight") == 0);
    pd_vae_key mid = {PD_VAE_DEC_MID_RESNET, 0, 1, PD_VAE_RES_NORM1, false};
    CHECK(pd_vae_key_name(PD_VAE_NAMING_LDM, 4, mid, buf, sizeof buf));
    CHECK(strcmp(buf, "decoder.mid.block_2.norm1.weight") == 0);
    pd_vae_key no = {PD_VAE_DEC_NORM_OUT, 0, 0, PD_VAE_PART_SELF, false};
    CHECK(pd_vae_key_name(PD_VAE_NAMING_DIFFUSERS, 4, no, buf, sizeof buf));
    CHECK(strcmp(buf, "decoder.conv_norm_out.weight") == 0);
    pd_vae_key bad = {PD_VAE_DEC_CONV_IN, 0, 0, PD_VAE_RES_CONV1, false};
    CHECK(!pd_vae_key_name(PD_VAE_NAMING_LDM, 4, bad, buf, sizeof buf));
}

/* ---- memory ------------------------------------------------------------------------- */

/* The figures documented in vae.h (MiB, rounded up). */
static void test_vae_scratch_sizes(void) {
    pd_vae_config c = real_sd_config();
    size_t d512 = pd_vae_decode_scratch_bytes(&c, 64, 64), d1024 = pd_vae_decode_scratch_bytes(&c, 128, 128);
    size_t e512 = pd_vae_encode_scratch_bytes(&c, 512, 512), e1024 = pd_vae_encode_scratch_bytes(&c, 1024, 1024);
    const size_t mib = (size_t)1 << 20;
    fprintf(stderr, "  real SD VAE scratch: decode 512x512 %zu MiB, 1024x1024 %zu MiB; encode 512x512 %zu MiB, "
            "1024x1024 %zu MiB\n", (d512 + mib - 1) / mib, (d1024 + mib - 1) / mib, (e512 + mib - 1) / mib,
            (e1024 + mib - 1) / mib);
    CHECK_EQ_INT((d512 + mib - 1) / mib, 417);
    CHECK_EQ_INT((d1024 + mib - 1) / mib, 1665);
    CHECK_EQ_INT((e512 + mib - 1) / mib, 297);
    CHECK_EQ_INT((e1024 + mib - 1) / mib, 1161);
    /* The activations alone: 512x512x256 (the upsampled input of the last level, which its
     * first ResNet block narrows to 128 channels in place) and one 512x512x128 ResNet
     * temporary (in the other buffer). */
    CHECK(d512 >= (size_t)512 * 512 * (256 + 128) * 4);
}

/* A too-small fixed arena fails up front with a clear message, nothing is run. */
static void test_vae_scratch_oom(void) {
    PD_REQUIRE_GOLDEN();
    char path[1024];
    pd_error err = {0};
    pd_model_src *src = NULL;
    if (pd_model_open(golden_model(path, sizeof path, "tiny-sd15.safetensors"), NULL, &src, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return;
    }
    pd_kernels kt;
    pd_kernels_init(&kt, PD_ISA_AUTO);
    pd_vae m;
    if (pd_vae_load(&m, src, &kt, NULL, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        pd_model_close(src);
        return;
    }
    pd_arena scratch;
    size_t need = pd_vae_decode_scratch_bytes(&m.cfg, 64, 64);
    pd_arena_init(&scratch, need / 2);
    static float z[64 * 64 * 4];
    float *img = malloc((size_t)512 * 512 * 3 * sizeof(float));
    pd_nn nn = {.kt = &kt, .pool = NULL};
    CHECK_EQ_INT(pd_vae_decode(&m, &nn, z, 64, 64, img, &scratch, NULL, &err), PD_ERR_OOM);
    CHECK_STR_CONTAINS(err.msg, "MiB");
    CHECK_STR_CONTAINS(err.msg, "64x64");
    CHECK_EQ_INT(scratch.used, 0);
    CHECK_EQ_INT(pd_vae_encode(&m, &nn, img, 100, 64, z, z, &scratch, NULL, &err), PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "multiple of 8");
    CHECK_EQ_INT(pd_vae_decode(&m, &nn, z, 0, 64, img, &scratch, NULL, &err), PD_ERR_INVALID_ARG);
    free(img);
    pd_arena_free(&scratch);
    pd_vae_free(&m);
    pd_model_close(src);
}

/* ---- conversions -------------------------------------------------------------------- */

static void test_vae_conversions(void) {
    const float x[8] = {-1.0f, 1.0f, 0.0f, -2.0f, 3.0f, NAN, 0.00196078f, -0.5f};
    uint8_t u[8];
    pd_vae_image_to_u8(u, x, 8);
    CHECK_EQ_INT(u[0], 0);
    CHECK_EQ_INT(u[1], 255);
    CHECK_EQ_INT(u[2], 128);   /* 127.5 rounds to even */
    CHECK_EQ_INT(u[3], 0);
    CHECK_EQ_INT(u[4], 255);
    CHECK_EQ_INT(u[5], 0);
    CHECK_EQ_INT(u[6], 128);
    CHECK_EQ_INT(u[7], 64);
    uint8_t all[256];
    float f[256];
    uint8_t back[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    pd_vae_image_from_u8(f, all, 256);
    CHECK(f[0] == -1.0f && f[255] == 1.0f);
    pd_vae_image_to_u8(back, f, 256);
    CHECK(memcmp(all, back, 256) == 0);   /* the round trip is exact */

    pd_vae_config c = real_sd_config();
    float lat[2 * 3 * 4], z[2 * 3 * 4], mean[24], logvar[24], eps[24], out[24], chw[24];
    for (int i = 0; i < 24; i++) {
        lat[i] = (float)i;
        mean[i] = 0.5f * (float)i;
        logvar[i] = 0.0f;
        eps[i] = 1.0f;
    }
    pd_vae_z_from_latents(&c, z, lat, 2, 3);   /* [4, 2, 3] -> [2, 3, 4] / 0.18215 */
    CHECK(z[1] == 6.0f / 0.18215f);            /* pixel 0, channel 1 = lat[1 * 6 + 0] */
    pd_nhwc_to_nchw(chw, z, 2, 3, 4);
    pd_nchw_to_nhwc(out, chw, 4, 2, 3);
    CHECK(memcmp(out, z, sizeof z) == 0);
    pd_vae_latents_from_moments(&c, out, mean, logvar, eps, 2, 3);
    CHECK(out[6] == (mean[1] + 1.0f) * 0.18215f);   /* channel 1, pixel 0 */
}

int main(void) {
    PD_RUN(test_vae_key_names);
    PD_RUN(test_vae_keys);
    PD_RUN(test_vae_conversions);
    PD_RUN(test_vae_scratch_sizes);
    PD_RUN(test_vae_scratch_oom);
    PD_RUN(test_vae_parity_best);
    PD_RUN(test_vae_parity_avx2);
    PD_RUN(test_vae_parity_scalar);
    return pd_test_summary();
}
