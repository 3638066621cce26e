/*
 * test_model.c - layout/family detection, key-map coverage (pd_inspect) and load
 * errors that name the tensor at fault, on the golden models and on synthetic
 * checkpoints derived from them (a tensor removed, reshaped, retyped, or added).
 */
#include <unistd.h>

#include "golden.h"
#include "io/model.h"
#include "phonediffusion.h"

/* ---- a minimal safetensors writer for synthetic checkpoints --------------------- */

typedef struct out_tensor {
    char name[256];
    const char *dtype;
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
} out_tensor;

static bool write_st(const char *path, const out_tensor *t, int n) {
    size_t cap = 1 << 20, len = 0;
    char *h = malloc(cap);
    if (!h) return false;
    len += (size_t)snprintf(h + len, cap - len, "{");
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(h + len, cap - len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "",
                                t[i].name, t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++)
            len += (size_t)snprintf(h + len, cap - len, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off, off + t[i].nbytes);
        off += t[i].nbytes;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(h);
        return false;
    }
    uint64_t hl = len;
    bool ok = fwrite(&hl, 8, 1, f) == 1 && fwrite(h, 1, len, f) == len;
    for (int i = 0; ok && i < n; i++) ok = t[i].nbytes == 0 || fwrite(t[i].data, 1, t[i].nbytes, f) == t[i].nbytes;
    ok = fclose(f) == 0 && ok;
    free(h);
    return ok;
}

/* Copies the text-encoder tensors of tiny-sd15.safetensors into out (at most max),
 * skipping `drop`; returns the count. */
static int copy_prefix(const pd_st_file *src, const char *prefix, out_tensor *out, int max,
                       const char *drop) {
    int n = 0;
    for (int i = 0; i < src->n_tensors && n < max; i++) {
        const pd_st_tensor *t = &src->tensors[i];
        if (strncmp(t->name, prefix, strlen(prefix)) != 0) continue;
        if (drop && strcmp(t->name, drop) == 0) continue;
        out_tensor *o = &out[n++];
        snprintf(o->name, sizeof o->name, "%s", t->name);
        o->dtype = pd_dtype_name(t->dtype);
        o->ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) o->shape[d] = t->shape[d];
        o->data = t->data;
        o->nbytes = t->nbytes;
    }
    return n;
}

static int copy_text_encoder(const pd_st_file *src, out_tensor *out, int max, const char *drop) {
    return copy_prefix(src, "cond_stage_model.", out, max, drop);
}

static char tmpdir[64];

static const char *tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", tmpdir, name);
    return buf;
}

static pd_status load_with_vocab(const char *path, pd_error *err) {
    char vocab[1024];
    pd_ctx_params cp = pd_ctx_default_params();
    cp.vocab_path = golden_model(vocab, sizeof vocab, "tiny-sd15/tokenizer");
    cp.n_threads = 1;
    pd_ctx *ctx = NULL;
    pd_status st = pd_ctx_load(path, &cp, &ctx, err);
    pd_ctx_free(ctx);
    return st;
}

/* ---- tests ---------------------------------------------------------------------- */

static void check_open(const char *rel, pd_layout layout, pd_family family, bool unet, bool vae,
                       bool t1, bool t2) {
    char path[1024];
    pd_model_src *m = NULL;
    pd_error err = {0};
    if (pd_model_open(golden_model(path, sizeof path, rel), NULL, &m, &err) != PD_OK) {
        PD_FAIL("%s: %s", rel, err.msg);
        return;
    }
    CHECK_MSG(m->layout == layout, "%s: layout %d", rel, (int)m->layout);
    CHECK_MSG(m->family == family, "%s: family %s", rel, pd_family_name(m->family));
    CHECK_MSG(m->comp[PD_COMP_UNET].present == unet, "%s: unet", rel);
    CHECK_MSG(m->comp[PD_COMP_VAE].present == vae, "%s: vae", rel);
    CHECK_MSG(m->comp[PD_COMP_TEXT1].present == t1, "%s: text1", rel);
    CHECK_MSG(m->comp[PD_COMP_TEXT2].present == t2, "%s: text2", rel);
    pd_model_close(m);
}

static void test_detect_golden(void) {
    PD_REQUIRE_GOLDEN();
    check_open("tiny-sd15.safetensors", PD_LAYOUT_LDM_SINGLE_FILE, PD_FAMILY_SD1, true, true, true, false);
    check_open("tiny-sd15", PD_LAYOUT_DIFFUSERS_FOLDER, PD_FAMILY_SD1, true, true, true, false);
    check_open("tiny-sdxl.safetensors", PD_LAYOUT_LDM_SINGLE_FILE, PD_FAMILY_SDXL, true, true, true, true);
    check_open("tiny-sdxl", PD_LAYOUT_DIFFUSERS_FOLDER, PD_FAMILY_SDXL, true, true, true, true);
    check_open("tiny-sd15-inpaint.safetensors", PD_LAYOUT_LDM_SINGLE_FILE, PD_FAMILY_SD1, true, true, true, false);
    check_open("tiny-sd15-inpaint", PD_LAYOUT_DIFFUSERS_FOLDER, PD_FAMILY_SD1, true, true, true, false);
    /* A lone UNet folder opens with only its UNet (its family needs a partner model). */
    char path[1024];
    pd_model_src *m = NULL;
    pd_error err = {0};
    CHECK_EQ_INT(pd_model_open(golden_model(path, sizeof path, "tiny-sd15-lcm-unet"), NULL, &m, &err), PD_OK);
    if (m) {
        CHECK(m->comp[PD_COMP_UNET].present && !m->comp[PD_COMP_TEXT1].present);
        CHECK(pd_model_find(m, PD_COMP_UNET, "time_embedding.cond_proj.weight") != NULL);
    }
    pd_model_close(m);
}

/* The golden models are complete: no missing and no unexpected tensors. */
static void test_inspect_golden_complete(void) {
    PD_REQUIRE_GOLDEN();
    static const char *const models[] = {"tiny-sd15.safetensors", "tiny-sd15", "tiny-sdxl.safetensors",
                                         "tiny-sdxl", "tiny-sd15-inpaint.safetensors"};
    for (size_t i = 0; i < PD_COUNT(models); i++) {
        char path[1024];
        pd_model_info *info = NULL;
        pd_error err = {0};
        if (pd_inspect(golden_model(path, sizeof path, models[i]), &info, &err) != PD_OK) {
            PD_FAIL("%s: %s", models[i], err.msg);
            continue;
        }
        CHECK_MSG(info->n_missing == 0, "%s: %d missing (first %s)", models[i], info->n_missing,
                  info->n_missing ? info->missing[0] : "");
        CHECK_MSG(info->n_unexpected == 0, "%s: %d unexpected (first %s)", models[i], info->n_unexpected,
                  info->n_unexpected ? info->unexpected[0] : "");
        int64_t params = 0;
        for (int c = 0; c < info->n_components; c++) params += info->components[c].n_params;
        CHECK(params > 0);
        CHECK(info->components[2].present);
        CHECK(strstr(info->components[2].arch, "CLIP 3 layers x 24 wide, 3 heads, quick_gelu") != NULL);
        pd_model_info_free(info);
    }
}

static void test_missing_tensor_named(void) {
    PD_REQUIRE_GOLDEN();
    char path[1024], out[1100];
    pd_st_file *src = NULL;
    pd_error err = {0};
    if (pd_st_open(golden_model(path, sizeof path, "tiny-sd15.safetensors"), &src, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return;
    }
    static out_tensor t[200];
    const char *drop = "cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc2.bias";
    int n = copy_text_encoder(src, t, 200, drop);
    CHECK(n > 50);
    CHECK(write_st(tmp_path(out, sizeof out, "missing.safetensors"), t, n));
    pd_model_info *info = NULL;
    CHECK_EQ_INT(pd_inspect(out, &info, &err), PD_OK);
    if (info) {
        CHECK_EQ_INT(info->family, PD_FAMILY_SD1);
        CHECK_EQ_INT(info->n_missing, 1);
        if (info->n_missing == 1) CHECK(strcmp(info->missing[0], drop) == 0);
        CHECK(!info->components[0].present);
        pd_model_info_free(info);
    }
    CHECK_EQ_INT(load_with_vocab(out, &err), PD_ERR_MISSING);
    CHECK_STR_CONTAINS(err.msg, drop);

    /* Wrong shape: fc1.weight of layer 0 declared [24, 96] instead of [96, 24]. */
    n = copy_text_encoder(src, t, 200, NULL);
    for (int i = 0; i < n; i++)
        if (strstr(t[i].name, "layers.0.mlp.fc1.weight")) {
            t[i].shape[0] = 24;
            t[i].shape[1] = 96;
        }
    CHECK(write_st(tmp_path(out, sizeof out, "shape.safetensors"), t, n));
    CHECK_EQ_INT(load_with_vocab(out, &err), PD_ERR_SHAPE);
    CHECK_STR_CONTAINS(err.msg, "layers.0.mlp.fc1.weight");
    CHECK_STR_CONTAINS(err.msg, "[24, 96]");

    /* Wrong dtype: a weight stored as I32 (same byte size as F32). */
    n = copy_text_encoder(src, t, 200, NULL);
    for (int i = 0; i < n; i++)
        if (strstr(t[i].name, "final_layer_norm.weight")) t[i].dtype = "I32";
    CHECK(write_st(tmp_path(out, sizeof out, "dtype.safetensors"), t, n));
    CHECK_EQ_INT(load_with_vocab(out, &err), PD_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.msg, "final_layer_norm.weight");
    CHECK_STR_CONTAINS(err.msg, "I32");

    /* Extra tensors are reported as unexpected; the model still loads. */
    n = copy_text_encoder(src, t, 198, NULL);
    static const float one = 1.0f;
    snprintf(t[n].name, sizeof t[n].name, "cond_stage_model.transformer.text_model.encoder.layers.0.extra");
    t[n].dtype = "F32";
    t[n].ndim = 1;
    t[n].shape[0] = 1;
    t[n].data = &one;
    t[n].nbytes = 4;
    t[n + 1] = t[n];
    snprintf(t[n + 1].name, sizeof t[n + 1].name, "something.else");
    CHECK(write_st(tmp_path(out, sizeof out, "extra.safetensors"), t, n + 2));
    CHECK_EQ_INT(pd_inspect(out, &info, &err), PD_OK);
    if (info) {
        CHECK_EQ_INT(info->n_missing, 0);
        CHECK_EQ_INT(info->n_unexpected, 2);
        pd_model_info_free(info);
    }
    CHECK_EQ_INT(load_with_vocab(out, &err), PD_OK);

    /* No recognisable keys at all: inspect works, load refuses. */
    CHECK(write_st(tmp_path(out, sizeof out, "other.safetensors"), &t[n + 1], 1));
    CHECK_EQ_INT(pd_inspect(out, &info, &err), PD_OK);
    if (info) {
        CHECK_EQ_INT(info->family, PD_FAMILY_UNKNOWN);
        pd_model_info_free(info);
    }
    CHECK_EQ_INT(load_with_vocab(out, &err), PD_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.msg, "other.safetensors");
    pd_st_close(src);
}

/* Missing UNet and VAE tensors are reported by name too (their key tables). */
static void test_missing_unet_vae_tensor(void) {
    PD_REQUIRE_GOLDEN();
    char path[1024], out[1100];
    pd_st_file *src = NULL;
    pd_error err = {0};
    if (pd_st_open(golden_model(path, sizeof path, "tiny-sd15.safetensors"), &src, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return;
    }
    static out_tensor t[1200];
    const char *drop_unet = "model.diffusion_model.output_blocks.4.1.transformer_blocks.0.attn2.to_k.weight";
    const char *drop_vae = "first_stage_model.decoder.up.1.block.2.conv2.bias";
    int n = copy_prefix(src, "", t, 1200, drop_unet);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, drop_vae) != 0) t[m++] = t[i];
    CHECK_EQ_INT(m, src->n_tensors - 2);
    CHECK(write_st(tmp_path(out, sizeof out, "no_unet_vae_tensor.safetensors"), t, m));
    pd_model_info *info = NULL;
    CHECK_EQ_INT(pd_inspect(out, &info, &err), PD_OK);
    if (info) {
        CHECK_EQ_INT(info->n_missing, 2);
        CHECK_EQ_INT(info->components[0].n_missing, 1);
        CHECK_EQ_INT(info->components[1].n_missing, 1);
        bool saw_unet = false, saw_vae = false;
        for (int i = 0; i < info->n_missing; i++) {
            saw_unet |= strcmp(info->missing[i], drop_unet) == 0;
            saw_vae |= strcmp(info->missing[i], drop_vae) == 0;
        }
        CHECK(saw_unet && saw_vae);
        pd_model_info_free(info);
    }
    CHECK_EQ_INT(load_with_vocab(out, &err), PD_ERR_MISSING);
    CHECK_STR_CONTAINS(err.msg, "attn2.to_k.weight");
    pd_st_close(src);
}

/* A diffusers folder without model_index.json / config.json is refused clearly. */
static void test_bad_folder(void) {
    pd_model_src *m = NULL;
    pd_error err = {0};
    CHECK_EQ_INT(pd_model_open(tmpdir, NULL, &m, &err), PD_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.msg, "model_index.json");
    CHECK(m == NULL);
    CHECK_EQ_INT(pd_model_open("", NULL, &m, &err), PD_ERR_INVALID_ARG);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pd_test_model_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    PD_RUN(test_detect_golden);
    PD_RUN(test_inspect_golden_complete);
    PD_RUN(test_missing_tensor_named);
    PD_RUN(test_missing_unet_vae_tensor);
    PD_RUN(test_bad_folder);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return pd_test_summary();
}
