/*
 * test_taesd.c - TAESD / TAESDXL (AutoencoderTiny encoder and decoder) against the
 * reference (diffusers 0.31, fp32).
 *
 * For every taesd_decode_* / taesd_encode_* golden case: the image (decode) or the
 * latents (encode) within 1e-4 of max |ref|; image_u8 within +-1 on >= 99.9 % of the
 * values; every inter.* intermediate of the 8x8 cases (module outputs, Block '.conv'
 * paths, '.ch0-3' slices) within 1e-4 too, through the tap. The same weights in every
 * layout must give bit-identical results: the diffusers folder, its safetensors file
 * alone, and the original madebyollin files (written here by renaming the keys: encoder
 * N.*, decoder (N+1).*) as a folder and one by one; a run without the tap gives the
 * same bits as one with it. Also: the bf16 table stays near fp32 (PSNR), the scratch
 * sizes documented in taesd.h, the up-front OOM and argument errors, and malformed
 * files (missing tensor, wrong shape, absurd shape, extra tensor, truncated file, two
 * decoders in a folder, not a TAESD, a KL VAE folder) rejected with messages naming
 * the tensor or the file.
 * Under sanitizers (PD_SANITIZED_BUILD) the layout comparisons run on taesd-random's
 * 8x8 cases only, the AVX2 pass and the bf16 check on those cases too, and the
 * scalar pass is skipped.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "golden_case.h"
#include "kernels/kernels.h"
#include "models/taesd.h"

#define TOL 1e-4
#define MAX_CASES 32

static double worst_err, worst_inter;
static int worst_u8_off, n_cases_run;
static size_t u8_off1, u8_total;

/* ---- a minimal safetensors writer (for the original layout and malformed files) ---- */

typedef struct out_tensor {
    char name[128];
    pd_dtype dtype;
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
} out_tensor;

static bool write_st(const char *path, const out_tensor *t, int n) {
    size_t cap = (size_t)1 << 20, len = 0, off = 0;
    char *h = malloc(cap);
    if (!h) return false;
    len += (size_t)snprintf(h + len, cap - len, "{");
    for (int i = 0; i < n && len < cap - 512; i++) {
        len += (size_t)snprintf(h + len, cap - len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "",
                                t[i].name, pd_dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].ndim; d++)
            len += (size_t)snprintf(h + len, cap - len, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off, off + t[i].nbytes);
        off += t[i].nbytes;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    FILE *f = fopen(path, "wb");
    bool ok = f != NULL && len < cap - 1;
    uint64_t hl = len;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(hl >> (8 * i));
    if (ok) ok = fwrite(le, 1, 8, f) == 8 && fwrite(h, 1, len, f) == len;
    for (int i = 0; ok && i < n; i++) ok = t[i].nbytes == 0 || fwrite(t[i].data, 1, t[i].nbytes, f) == t[i].nbytes;
    if (f) ok = fclose(f) == 0 && ok;
    free(h);
    return ok;
}

/* The tensors of src named "<from><N>.<suffix>", renamed "<to><N + shift>.<suffix>";
 * returns how many. */
static int rename_tensors(const pd_st_file *src, const char *from, const char *to, int shift, out_tensor *out,
                          int max) {
    int n = 0;
    size_t fl = strlen(from);
    for (int i = 0; i < src->n_tensors && n < max; i++) {
        const pd_st_tensor *t = &src->tensors[i];
        if (strncmp(t->name, from, fl) != 0) continue;
        char *end = NULL;
        long idx = strtol(t->name + fl, &end, 10);
        out_tensor *o = &out[n++];
        snprintf(o->name, sizeof o->name, "%s%ld%s", to, idx + shift, end);
        o->dtype = t->dtype;
        o->ndim = t->ndim;
        for (int d = 0; d < t->ndim && d < 4; d++) o->shape[d] = t->shape[d];
        o->data = t->data;
        o->nbytes = t->nbytes;
    }
    return n;
}

static char tmp_dir[64];

static const char *tmp_path(char *buf, size_t n, const char *rel) {
    snprintf(buf, n, "%s/%s", tmp_dir, rel);
    return buf;
}

/* <tmp>/orig-<model>/{enc,dec}.safetensors: the original madebyollin layout. File
 * names say nothing about the content on purpose (the loader reads tensor names). */
static bool write_original(const char *model) {
    char path[1024], dir[1024], rel[256];
    pd_error err = {0};
    pd_st_file *f = NULL;
    snprintf(rel, sizeof rel, "%s/diffusion_pytorch_model.safetensors", model);
    if (pd_st_open(golden_model(path, sizeof path, rel), &f, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return false;
    }
    out_tensor *t = calloc(256, sizeof *t);
    snprintf(rel, sizeof rel, "orig-%s", model);
    tmp_path(dir, sizeof dir, rel);
    bool ok = t && mkdir(dir, 0700) == 0;
    if (ok) {
        int n = rename_tensors(f, "encoder.layers.", "", 0, t, 256);
        snprintf(rel, sizeof rel, "orig-%s/b.safetensors", model);
        ok = n > 0 && write_st(tmp_path(path, sizeof path, rel), t, n);
        n = rename_tensors(f, "decoder.layers.", "", 1, t, 256);
        snprintf(rel, sizeof rel, "orig-%s/a.safetensors", model);
        ok = ok && n > 0 && write_st(tmp_path(path, sizeof path, rel), t, n);
    }
    CHECK_MSG(ok, "cannot write the original-layout files of %s", model);
    free(t);
    pd_st_close(f);
    return ok;
}

/* ---- comparisons ------------------------------------------------------------------ */

typedef struct tap_state {
    const char *label;
    const pd_st_file *g;
    int n_compared;
    char seen[32][128];
    int n_seen;
} tap_state;

static void on_tap(void *user, const char *name, const float *x, int h, int w, int c) {
    tap_state *ts = user;
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
    if (ts->n_seen < 32) snprintf(ts->seen[ts->n_seen++], sizeof ts->seen[0], "%s", key);
}

static void check_all_inter_seen(const tap_state *ts) {
    for (int i = 0; i < ts->g->n_tensors; i++) {
        const char *n = ts->g->tensors[i].name;
        if (strncmp(n, "inter.", 6) != 0) continue;
        bool found = false;
        for (int j = 0; j < ts->n_seen && !found; j++) found = strcmp(ts->seen[j], n) == 0;
        CHECK_MSG(found, "%s: intermediate %s was never produced", ts->label, n);
    }
}

static void check_u8(const char *label, const pd_st_file *g, const float *image, size_t n) {
    const pd_st_tensor *t = pd_st_find(g, "image_u8");
    if (!t || t->dtype != PD_DTYPE_U8 || (size_t)t->numel != n) {
        PD_FAIL("%s: golden image_u8 missing or of the wrong size", label);
        return;
    }
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

typedef struct taesd_case {
    char name[128];
    char model[64];   /* "taesd-random" */
    bool decode;
} taesd_case;

/* Runs case cc on the loaded model m; returns a malloc'd copy of the output (NULL on
 * failure), *out_n values. compare: check against the golden data. */
static float *run_model(const taesd_case *cc, const pd_taesd *m, const pd_nn *nn, const char *label, bool compare,
                        bool use_tap, size_t *out_n) {
    pd_st_file *g = golden_open(cc->name);
    if (!g) return NULL;
    const char *in_name = cc->decode ? "latents" : "image";
    const pd_st_tensor *ti = pd_st_find(g, in_name);
    float *res = NULL, *in = NULL, *in_nhwc = NULL;
    pd_arena scratch = {0};
    pd_error err = {0};
    if (!ti || ti->ndim != 4) {
        PD_FAIL("%s: input tensor missing", cc->name);
        goto done;
    }
    const int c_in = (int)ti->shape[1], h = (int)ti->shape[2], w = (int)ti->shape[3];
    in = golden_f32(g, in_name, NULL);
    in_nhwc = malloc((size_t)c_in * h * w * sizeof(float));
    pd_nchw_to_nhwc(in_nhwc, in, c_in, h, w);
    tap_state ts = {label, g, 0, {{0}}, 0};
    pd_vae_tap tap = {on_tap, &ts};
    size_t need = cc->decode ? pd_taesd_decode_scratch_bytes(m, h, w) : pd_taesd_encode_scratch_bytes(m, h, w);
    if (need == 0 || pd_arena_init(&scratch, need) != 0) {
        PD_FAIL("%s: no scratch (%zu bytes)", label, need);
        goto done;
    }
    pd_status st;
    if (cc->decode) {
        CHECK_EQ_INT(c_in, m->latent_channels);
        const int oh = h * m->scale, ow = w * m->scale, oc = m->image_channels;
        *out_n = (size_t)oh * ow * oc;
        res = malloc(*out_n * sizeof(float));
        st = pd_taesd_decode(m, nn, in_nhwc, h, w, res, &scratch, use_tap ? &tap : NULL, &err);
        if (st == PD_OK && compare) {
            worst_err = fmax(worst_err, golden_check_nhwc(label, g, "image", res, oh, ow, oc, oc, TOL));
            check_u8(label, g, res, *out_n);
        }
    } else {
        CHECK_EQ_INT(c_in, m->image_channels);
        const int lh = h / m->scale, lw = w / m->scale, lc = m->latent_channels;
        *out_n = (size_t)lh * lw * lc;
        res = malloc(*out_n * sizeof(float));
        st = pd_taesd_encode(m, nn, in_nhwc, h, w, res, &scratch, use_tap ? &tap : NULL, &err);
        if (st == PD_OK && compare) worst_err = fmax(worst_err, golden_check_nhwc(label, g, "latents", res, lh, lw, lc, lc, TOL));
    }
    if (st != PD_OK) {
        PD_FAIL("%s: %s", label, err.msg);
        free(res);
        res = NULL;
        goto done;
    }
    CHECK_MSG(scratch.used_peak <= need, "%s: scratch peak %zu > planned %zu", label, scratch.used_peak, need);
    CHECK_EQ_INT(scratch.used, 0);   /* the arena is left as found */
    if (compare && use_tap && strstr(cc->name, "taesd-random_8x8")) {
        CHECK_MSG(ts.n_compared >= 9, "%s: only %d intermediates compared", label, ts.n_compared);
        check_all_inter_seen(&ts);
    }
done:
    pd_arena_free(&scratch);
    free(in);
    free(in_nhwc);
    pd_st_close(g);
    return res;
}

static float *run_path(const taesd_case *cc, const char *path, const pd_kernels *kt, pd_pool *pool, bool use_tap,
                       size_t *out_n) {
    pd_taesd m;
    pd_error err = {0};
    if (pd_taesd_load(&m, path, kt, &err) != PD_OK) {
        PD_FAIL("%s: load: %s", path, err.msg);
        return NULL;
    }
    char label[1200];
    snprintf(label, sizeof label, "%s [%s, %s kernels%s]", cc->name, path, pd_isa_name(kt->isa),
             kt->prec == PD_PREC_BF16 ? " bf16" : "");
    pd_nn nn = {.kt = kt, .pool = pool};
    float *r = run_model(cc, &m, &nn, label, kt->prec == PD_PREC_FP32, use_tap, out_n);
    pd_taesd_free(&m);
    return r;
}

/* The golden taesd_decode_* and taesd_encode_* cases. */
static int list_cases(taesd_case *out, int max) {
    int n = 0;
    for (int d = 0; d < 2; d++) {
        char *names[MAX_CASES];
        const char *prefix = d ? "taesd_encode_" : "taesd_decode_";
        int k = golden_list_cases(prefix, "", names, MAX_CASES);
        for (int i = 0; i < k; i++) {
            if (n < max) {
                taesd_case *c = &out[n++];
                snprintf(c->name, sizeof c->name, "%s", names[i]);
                const char *model = names[i] + strlen(prefix);
                const char *us = strrchr(model, '_');
                snprintf(c->model, sizeof c->model, "%.*s", us ? (int)(us - model) : 0, model);
                c->decode = d == 0;
            }
            free(names[i]);
        }
    }
    return n;
}

static bool same(const float *a, size_t na, const float *b, size_t nb) {
    return a && b && na == nb && memcmp(a, b, na * sizeof(float)) == 0;
}

static void run_all(pd_isa isa, bool quick) {
    PD_REQUIRE_GOLDEN();
    pd_kernels kt;
    pd_isa got = pd_kernels_init(&kt, isa);
    if (isa != PD_ISA_AUTO && got != isa) PD_SKIP("%s kernels not available here", pd_isa_name(isa));
    taesd_case cases[MAX_CASES];
    int n = list_cases(cases, MAX_CASES);
    CHECK_MSG(n >= 8, "only %d taesd_decode_/taesd_encode_ golden cases", n);
    pd_pool *pool = pd_pool_new(2);
    worst_err = worst_inter = 0;
    worst_u8_off = 0;
    u8_off1 = u8_total = 0;
    n_cases_run = 0;
    for (int i = 0; i < n; i++) {
        const taesd_case *cc = &cases[i];
        if (quick && !strstr(cc->name, "taesd-random_8x8")) continue;   /* scalar kernels are slow */
        char folder[1024], file[1024], rel[256], orig[1024], orig_file[1024];
        golden_model(folder, sizeof folder, cc->model);
        snprintf(rel, sizeof rel, "%s/diffusion_pytorch_model.safetensors", cc->model);
        golden_model(file, sizeof file, rel);
        snprintf(rel, sizeof rel, "orig-%s", cc->model);
        tmp_path(orig, sizeof orig, rel);
        snprintf(rel, sizeof rel, "orig-%s/%s.safetensors", cc->model, cc->decode ? "a" : "b");
        tmp_path(orig_file, sizeof orig_file, rel);
        size_t na = 0, nb = 0, nc = 0, nd = 0, ne = 0;
        float *a = run_path(cc, folder, &kt, pool, true, &na);
        n_cases_run++;
        /* Every layout for every case; under sanitizers (-O0, ~25x slower) for one model's 8x8 cases. */
        if (!quick && (!PD_SANITIZED_BUILD || strstr(cc->name, "taesd-random_8x8"))) {
            float *b = run_path(cc, file, &kt, pool, false, &nb);
            float *c = run_path(cc, orig, &kt, pool, false, &nc);
            float *d = run_path(cc, orig_file, &kt, pool, true, &nd);
            float *e = run_path(cc, folder, &kt, pool, false, &ne);
            CHECK_MSG(same(a, na, b, nb), "%s: the diffusers folder and its file alone differ", cc->name);
            CHECK_MSG(same(a, na, c, nc), "%s: the diffusers and original layouts differ", cc->name);
            CHECK_MSG(same(a, na, d, nd), "%s: the original folder and file differ", cc->name);
            CHECK_MSG(same(a, na, e, ne), "%s: runs with and without the tap differ", cc->name);
            free(b);
            free(c);
            free(d);
            free(e);
        }
        free(a);
    }
    fprintf(stderr, "  taesd parity (%s kernels, %d cases): worst relative error %.3g (outputs), %.3g "
            "(intermediates), image_u8 max |diff| %d (%zu of %zu values off by 1)\n", pd_isa_name(got),
            n_cases_run, worst_err, worst_inter, worst_u8_off, u8_off1, u8_total);
    pd_pool_free(pool);
}

static void test_taesd_parity_best(void) { run_all(PD_ISA_AUTO, false); }
static void test_taesd_parity_avx2(void) { run_all(PD_ISA_AVX2, PD_SANITIZED_BUILD); }
static void test_taesd_parity_scalar(void) {
    if (PD_SANITIZED_BUILD) PD_SKIP("the scalar kernels take minutes under sanitizers (the model code is covered above)");
    run_all(PD_ISA_SCALAR, true);
}

/* The bf16 table's decode stays close to fp32: PSNR of the u8 images >= 35 dB. */
static double psnr_u8(const float *a, const float *b, size_t n) {
    uint8_t *ua = malloc(n), *ub = malloc(n);
    pd_vae_image_to_u8(ua, a, n);
    pd_vae_image_to_u8(ub, b, n);
    double se = 0;
    for (size_t i = 0; i < n; i++) se += ((double)ua[i] - ub[i]) * ((double)ua[i] - ub[i]);
    free(ua);
    free(ub);
    return se == 0 ? 99.0 : 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

static void test_taesd_bf16(void) {
    PD_REQUIRE_GOLDEN();
    pd_kernels k32, k16;
    pd_kernels_init(&k32, PD_ISA_AUTO);
    pd_kernels_init_prec(&k16, PD_ISA_AUTO, PD_PREC_BF16);
    if (k16.prec != PD_PREC_BF16) PD_SKIP("no bf16 kernel table");
    taesd_case cases[MAX_CASES];
    int n = list_cases(cases, MAX_CASES);
    pd_pool *pool = pd_pool_new(2);
    double worst = 99;
    for (int i = 0; i < n; i++) {
        if (!cases[i].decode || (PD_SANITIZED_BUILD && !strstr(cases[i].name, "taesd-random_8x8"))) continue;
        char folder[1024];
        golden_model(folder, sizeof folder, cases[i].model);
        size_t na = 0, nb = 0;
        float *a = run_path(&cases[i], folder, &k32, pool, false, &na);
        float *b = run_path(&cases[i], folder, &k16, pool, false, &nb);
        if (a && b && na == nb) {
            double p = psnr_u8(b, a, na);
            worst = fmin(worst, p);
            CHECK_MSG(p >= 35.0, "%s: bf16 vs fp32 image PSNR %.1f dB < 35", cases[i].name, p);
        }
        free(a);
        free(b);
    }
    fprintf(stderr, "  taesd bf16 (%s): worst decode PSNR vs fp32 %.1f dB\n", k16.gemm_name, worst);
    pd_pool_free(pool);
}

/* ---- memory and arguments ---------------------------------------------------------- */

static bool load_golden(pd_taesd *m, const char *rel, const pd_kernels *kt) {
    char path[1024];
    pd_error err = {0};
    if (pd_taesd_load(m, golden_model(path, sizeof path, rel), kt, &err) != PD_OK) {
        PD_FAIL("%s: %s", path, err.msg);
        return false;
    }
    return true;
}

/* The figures documented in taesd.h (MiB, rounded up); the golden models have the
 * real TAESD widths (64 channels). */
static void test_taesd_scratch_sizes(void) {
    PD_REQUIRE_GOLDEN();
    pd_kernels kt;
    pd_kernels_init(&kt, PD_ISA_AUTO);
    pd_taesd m;
    if (!load_golden(&m, "taesd-random", &kt)) return;
    CHECK_EQ_INT(m.enc.channels, 64);
    CHECK_EQ_INT(m.dec.channels, 64);
    CHECK_EQ_INT(m.latent_channels, 4);
    CHECK_EQ_INT(m.image_channels, 3);
    CHECK_EQ_INT(m.scale, 8);
    CHECK_EQ_INT(m.enc.n_layers, 15);
    CHECK_EQ_INT(m.dec.n_layers, 19);
    const size_t mib = (size_t)1 << 20;
    size_t d512 = pd_taesd_decode_scratch_bytes(&m, 64, 64), d1024 = pd_taesd_decode_scratch_bytes(&m, 128, 128);
    size_t e512 = pd_taesd_encode_scratch_bytes(&m, 512, 512), e1024 = pd_taesd_encode_scratch_bytes(&m, 1024, 1024);
    fprintf(stderr, "  TAESD scratch: decode 512x512 %zu MiB, 1024x1024 %zu MiB; encode 512x512 %zu MiB, "
            "1024x1024 %zu MiB\n", (d512 + mib - 1) / mib, (d1024 + mib - 1) / mib, (e512 + mib - 1) / mib,
            (e1024 + mib - 1) / mib);
    CHECK_EQ_INT((d512 + mib - 1) / mib, 201);
    CHECK_EQ_INT((d1024 + mib - 1) / mib, 777);
    CHECK_EQ_INT((e512 + mib - 1) / mib, 196);
    CHECK_EQ_INT((e1024 + mib - 1) / mib, 781);
    CHECK(d512 >= (size_t)3 * 512 * 512 * 64 * 4);
    CHECK_EQ_INT(pd_taesd_decode_scratch_bytes(&m, 0, 8), 0);

    /* Too small an arena fails up front; bad sizes are argument errors. */
    pd_error err = {0};
    pd_arena scratch;
    pd_arena_init(&scratch, d512 / 2);
    static float z[64 * 64 * 4];
    float *img = calloc((size_t)512 * 512 * 3, sizeof(float));
    pd_nn nn = {.kt = &kt, .pool = NULL};
    CHECK_EQ_INT(pd_taesd_decode(&m, &nn, z, 64, 64, img, &scratch, NULL, &err), PD_ERR_OOM);
    CHECK_STR_CONTAINS(err.msg, "MiB");
    CHECK_STR_CONTAINS(err.msg, "64x64");
    CHECK_EQ_INT(scratch.used, 0);
    CHECK_EQ_INT(pd_taesd_encode(&m, &nn, img, 100, 64, z, &scratch, NULL, &err), PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "multiple of 8");
    CHECK_EQ_INT(pd_taesd_decode(&m, &nn, z, 0, 64, img, &scratch, NULL, &err), PD_ERR_INVALID_ARG);
    free(img);
    pd_arena_free(&scratch);
    pd_taesd_free(&m);
    pd_taesd_free(&m);   /* idempotent */
    pd_taesd_free(NULL);
}

/* One original file alone: a decoder-only / encoder-only model. */
static void test_taesd_one_part(void) {
    PD_REQUIRE_GOLDEN();
    pd_kernels kt;
    pd_kernels_init(&kt, PD_ISA_AUTO);
    char path[1024];
    pd_error err = {0};
    pd_taesd m;
    CHECK_EQ_INT(pd_taesd_load(&m, tmp_path(path, sizeof path, "orig-taesd-random/a.safetensors"), &kt, &err), PD_OK);
    CHECK(m.dec.present && !m.enc.present);
    CHECK_EQ_INT(pd_taesd_encode_scratch_bytes(&m, 64, 64), 0);
    static float img[64 * 64 * 3], lat[8 * 8 * 4];
    pd_arena scratch;
    pd_arena_init(&scratch, 0);
    pd_nn nn = {.kt = &kt, .pool = NULL};
    CHECK_EQ_INT(pd_taesd_encode(&m, &nn, img, 64, 64, lat, &scratch, NULL, &err), PD_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.msg, "no encoder");
    pd_taesd_free(&m);
    CHECK_EQ_INT(pd_taesd_load(&m, tmp_path(path, sizeof path, "orig-taesd-random/b.safetensors"), &kt, &err), PD_OK);
    CHECK(m.enc.present && !m.dec.present);
    CHECK_EQ_INT(pd_taesd_decode(&m, &nn, lat, 8, 8, img, &scratch, NULL, &err), PD_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.msg, "no decoder");
    pd_taesd_free(&m);
    pd_arena_free(&scratch);
}

/* ---- malformed inputs ---------------------------------------------------------------- */

typedef enum edit { EDIT_DROP, EDIT_RESHAPE, EDIT_HUGE, EDIT_ADD } edit;

/* Writes <tmp>/<out> = the diffusers taesd-random file with one edit on tensor `name`. */
static bool write_edited(const char *out, edit e, const char *name) {
    char path[1024];
    pd_error err = {0};
    pd_st_file *f = NULL;
    if (pd_st_open(golden_model(path, sizeof path, "taesd-random/diffusion_pytorch_model.safetensors"), &f, &err) !=
        PD_OK) {
        PD_FAIL("%s", err.msg);
        return false;
    }
    out_tensor *t = calloc((size_t)f->n_tensors + 1, sizeof *t);
    void *junk = calloc(1, (size_t)2000 * 4 * 9 * 2);
    int n = t ? rename_tensors(f, "encoder.layers.", "encoder.layers.", 0, t, f->n_tensors) : 0;
    if (t) n += rename_tensors(f, "decoder.layers.", "decoder.layers.", 0, t + n, f->n_tensors - n);
    int k = -1;
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0) k = i;
    bool ok = t && junk && (k >= 0 || e == EDIT_ADD);
    if (ok && e == EDIT_DROP) {
        t[k] = t[n - 1];
        n--;
    } else if (ok && e == EDIT_RESHAPE) {   /* [64, 64, 3, 3] -> [64, 64, 9, 1] (same bytes) */
        t[k].shape[2] = 9;
        t[k].shape[3] = 1;
    } else if (ok && e == EDIT_HUGE) {      /* [64, 4, 3, 3] -> [2000, 4, 3, 3] */
        t[k].shape[0] = 2000;
        t[k].data = junk;
        t[k].nbytes = (size_t)2000 * 4 * 9 * 2;
    } else if (ok && e == EDIT_ADD) {
        t[n] = t[0];
        snprintf(t[n].name, sizeof t[n].name, "%s", name);
        n++;
    }
    ok = ok && write_st(tmp_path(path, sizeof path, out), t, n);
    CHECK_MSG(ok, "cannot write %s", out);
    free(t);
    free(junk);
    pd_st_close(f);
    return ok;
}

/* Loading rel (under tmp, or an absolute path) fails with code and a message holding want. */
static void expect_fail(const char *rel, pd_status code, const char *want) {
    pd_kernels kt;
    pd_kernels_init(&kt, PD_ISA_AUTO);
    char path[1024];
    const char *p = rel[0] == '/' ? rel : tmp_path(path, sizeof path, rel);
    pd_error err = {0};
    pd_taesd m;
    pd_status st = pd_taesd_load(&m, p, &kt, &err);
    CHECK_MSG(st == code, "%s: status %d, expected %d (%s)", rel, st, code, err.msg);
    CHECK_STR_CONTAINS(err.msg, want);
    CHECK(m.dec.n_layers == 0 && !m.enc.present);   /* cleared on failure */
    if (st == PD_OK) pd_taesd_free(&m);
}

static void test_taesd_malformed(void) {
    PD_REQUIRE_GOLDEN();
    if (write_edited("missing.safetensors", EDIT_DROP, "decoder.layers.7.conv.2.bias"))
        expect_fail("missing.safetensors", PD_ERR_MISSING, "decoder.layers.7.conv.2.bias");
    if (write_edited("shape.safetensors", EDIT_RESHAPE, "encoder.layers.6.weight"))
        expect_fail("shape.safetensors", PD_ERR_SHAPE, "encoder.layers.6.weight");
    if (write_edited("huge.safetensors", EDIT_HUGE, "decoder.layers.0.weight"))
        expect_fail("huge.safetensors", PD_ERR_SHAPE, "decoder.layers.0.weight");
    if (write_edited("extra.safetensors", EDIT_ADD, "decoder.layers.9.skip.weight"))
        expect_fail("extra.safetensors", PD_ERR_UNSUPPORTED, "decoder.layers.9.skip.weight");
    if (write_edited("first.safetensors", EDIT_DROP, "encoder.layers.0.weight"))
        expect_fail("first.safetensors", PD_ERR_MISSING, "encoder.layers.0.weight");
    /* The error names the file too. */
    expect_fail("missing.safetensors", PD_ERR_MISSING, "missing.safetensors");

    /* Truncated copies of a valid file, at several lengths. */
    char src[1024], dst[1024];
    golden_model(src, sizeof src, "taesd-random/diffusion_pytorch_model.safetensors");
    char *data = NULL;
    size_t len = 0;
    pd_error err = {0};
    if (pd_file_read_all(src, (size_t)1 << 26, &data, &len, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return;
    }
    const size_t cuts[] = {0, 4, 8, 100, len / 2, len - 1};
    for (size_t i = 0; i < PD_COUNT(cuts); i++) {
        FILE *f = fopen(tmp_path(dst, sizeof dst, "trunc.safetensors"), "wb");
        if (!f) break;
        fwrite(data, 1, cuts[i], f);
        fclose(f);
        pd_taesd m;
        pd_kernels kt;
        pd_kernels_init(&kt, PD_ISA_AUTO);
        pd_status st = pd_taesd_load(&m, dst, &kt, &err);
        CHECK_MSG(st == PD_ERR_FORMAT || st == PD_ERR_IO, "truncated at %zu: status %d (%s)", cuts[i], st, err.msg);
        CHECK_STR_CONTAINS(err.msg, "trunc.safetensors");
    }
    free(data);

    /* A folder with two decoders: ambiguous. */
    char dir[1024], a[1024], b[1024];
    tmp_path(dir, sizeof dir, "two");
    if (mkdir(dir, 0700) == 0) {
        tmp_path(a, sizeof a, "two/x.safetensors");
        tmp_path(b, sizeof b, "two/y.safetensors");
        CHECK(symlink(tmp_path(src, sizeof src, "orig-taesd-random/a.safetensors"), a) == 0);
        CHECK(symlink(src, b) == 0);
        expect_fail("two", PD_ERR_UNSUPPORTED, "both hold a TAESD decoder");
        unlink(a);
        unlink(b);
        rmdir(dir);
    }
    /* Not a TAESD at all: a KL VAE checkpoint file, a KL VAE folder, an empty folder, nothing. */
    expect_fail(golden_model(src, sizeof src, "tiny-sd15.safetensors"), PD_ERR_FORMAT, "not a TAESD");
    expect_fail(golden_model(src, sizeof src, "tiny-sd15/vae"), PD_ERR_UNSUPPORTED, "AutoencoderKL");
    tmp_path(dir, sizeof dir, "empty");
    if (mkdir(dir, 0700) == 0) {
        expect_fail("empty", PD_ERR_MISSING, "empty");
        rmdir(dir);
    }
    expect_fail("no-such-file.safetensors", PD_ERR_IO, "no-such-file");
}

/* ---- setup --------------------------------------------------------------------------- */

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) != 0) remove_tree(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/pd_test_taesd_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        fprintf(stderr, "cannot create a temporary folder\n");
        return 1;
    }
    if (pd_test_golden_present()) {
        write_original("taesd-random");
        write_original("taesdxl-random");
    }
    PD_RUN(test_taesd_scratch_sizes);
    PD_RUN(test_taesd_one_part);
    PD_RUN(test_taesd_malformed);
    PD_RUN(test_taesd_parity_best);
    PD_RUN(test_taesd_parity_avx2);
    PD_RUN(test_taesd_parity_scalar);
    PD_RUN(test_taesd_bf16);
    remove_tree(tmp_dir);
    return pd_test_summary();
}
