/*
 * test_convert.c - `convert` to GGUF and loading GGUF models (issue 6), on the golden
 * tiny SD 1.5 and SDXL models:
 *   - the GGUF holds every tensor of the source under the same name and shape; tensors
 *     stable-diffusion.cpp quantizes (2-D+, not biases, rows a multiple of 32; minus the
 *     embeddings and text projection PhoneDiffusion keeps) hold exactly pd_quantize_row
 *     of the widened source rows, the others the source values;
 *   - a q8_0 / q4_0 GGUF loads (weight type auto: its quantized tensors used where they
 *     lie, its f16 convolutions quantized to the file's type) and gives bit-identical
 *     images to the safetensors file loaded with --weight-type q8_0 / q4_0;
 *   - GGUF -> GGUF (q8_0 -> f16) and the strict reader on every written file;
 *   - no clobbering, unwritable destinations and garbage inputs fail cleanly.
 */
#include <unistd.h>

#include "base/half.h"
#include "golden_case.h"
#include "io/gguf.h"
#include "io/tensor_file.h"
#include "kernels/quant/quant.h"
#include "pipeline/generate.h"

static char tmpdir[64];

static bool quantized_by_convert(const pd_st_tensor *t) {
    size_t n = strlen(t->name);
    const bool full = strstr(t->name, "time_embed") || strstr(t->name, "label_emb") ||
                      strstr(t->name, "embedding") || strstr(t->name, "text_projection");
    return t->ndim >= 2 && t->shape[t->ndim - 1] % 32 == 0 && !(n >= 5 && !strcmp(t->name + n - 5, ".bias")) &&
           !full;
}

/* Every tensor of src is in out with the same name and shape, converted as documented. */
static void check_tensors(const char *src_path, const char *out_path, pd_dtype want) {
    pd_st_file *a = NULL, *b = NULL;
    pd_error err = {0};
    if (pd_tensor_file_open(src_path, &a, &err) != PD_OK || pd_tensor_file_open(out_path, &b, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        goto done;
    }
    CHECK_EQ_INT(b->format, PD_ST_FORMAT_GGUF);
    CHECK_EQ_INT(a->n_tensors, b->n_tensors);
    int n_quant = 0, bad = 0;
    for (int i = 0; i < a->n_tensors && !bad; i++) {
        const pd_st_tensor *s = &a->tensors[i], *t = pd_st_find(b, s->name);
        if (!t) {
            PD_FAIL("'%s' missing from the GGUF", s->name);
            bad++;
            continue;
        }
        bool same_shape = s->ndim == t->ndim || (s->ndim == 0 && t->ndim == 1);
        for (int d = 0; same_shape && d < s->ndim; d++) same_shape = s->shape[d] == t->shape[d];
        if (!same_shape) {
            PD_FAIL("'%s': shape changed", s->name);
            bad++;
            continue;
        }
        const bool fl = s->dtype == PD_DTYPE_F32 || s->dtype == PD_DTYPE_F16 || s->dtype == PD_DTYPE_BF16;
        if (!fl) {
            bad += !(t->dtype == s->dtype && t->nbytes == s->nbytes && !memcmp(t->data, s->data, s->nbytes));
            continue;
        }
        const size_t len = s->ndim ? (size_t)s->shape[s->ndim - 1] : 1, rows = len ? (size_t)s->numel / len : 0;
        float *x = malloc(len * sizeof(float)), *y = malloc(len * sizeof(float));
        unsigned char *q = malloc(pd_dtype_bytes(PD_DTYPE_Q8_0, len + 32));
        for (size_t r = 0; r < rows && x && y && q; r++) {
            pd_to_f32(x, (const unsigned char *)s->data + r * len * pd_dtype_size(s->dtype), s->dtype, len);
            if (pd_dtype_is_quant(want) && quantized_by_convert(s)) {
                if (t->dtype != want) {
                    bad++;
                    break;
                }
                pd_quantize_row(want, x, q, len);
                const size_t rb = pd_dtype_bytes(want, len);
                if (memcmp(q, (const unsigned char *)t->data + r * rb, rb)) {
                    bad++;
                    break;
                }
                n_quant += r == 0;
            } else {
                pd_to_f32(y, (const unsigned char *)t->data + r * len * pd_dtype_size(t->dtype), t->dtype, len);
                for (size_t c = 0; c < len; c++)   /* as stored, or converted to the float target */
                    if (fabsf(x[c] - y[c]) > 1e-3f * fabsf(x[c]) + 1e-7f) {
                        bad++;
                        break;
                    }
            }
        }
        if (bad) PD_FAIL("'%s' (%s -> %s) does not hold the converted values", s->name, pd_dtype_name(s->dtype),
                         pd_dtype_name(t->dtype));
        free(x);
        free(y);
        free(q);
    }
    if (pd_dtype_is_quant(want)) CHECK(n_quant > 10);
done:
    pd_st_close(a);
    pd_st_close(b);
}

static pd_result *generate(const char *model, const char *config, pd_weight_type wt) {
    char vocab[1024];
    pd_ctx_params cp = pd_ctx_default_params();
    cp.precision = PD_PRECISION_FP32;
    cp.weight_type = wt;
    cp.config_path = config;
    cp.vocab_path = golden_model(vocab, sizeof vocab, strstr(model, "sdxl") ? "tiny-sdxl/tokenizer" : "tiny-sd15/tokenizer");
    return golden_image(model, &cp, "a lighthouse at dusk", 3, 21);
}

static void run_model(const char *name) {
    PD_REQUIRE_GOLDEN();
    char src[1024], config[1024], rel[128];
    snprintf(rel, sizeof rel, "%s.safetensors", name);
    golden_model(src, sizeof src, rel);
    snprintf(rel, sizeof rel, "%s.config.json", name);
    golden_model(config, sizeof config, rel);
    const struct { pd_weight_type wt; pd_dtype dt; } types[] = {{PD_WEIGHT_Q8_0, PD_DTYPE_Q8_0},
                                                               {PD_WEIGHT_Q4_0, PD_DTYPE_Q4_0}};
    for (size_t i = 0; i < PD_COUNT(types); i++) {
        char out[256];
        snprintf(out, sizeof out, "%s/%s_%s.gguf", tmpdir, name, pd_weight_type_name(types[i].wt));
        pd_convert_params cp = pd_convert_default_params();
        cp.weight_type = types[i].wt;
        pd_error err = {0};
        CHECK_EQ_INT(pd_convert(src, out, &cp, &err), PD_OK);
        check_tensors(src, out, types[i].dt);
        pd_result *a = generate(src, NULL, types[i].wt), *b = generate(out, config, PD_WEIGHT_AUTO);
        if (a && b) {
            const size_t n = (size_t)a->images[0].width * (size_t)a->images[0].height * 3;
            CHECK_MSG(memcmp(a->images[0].rgb, b->images[0].rgb, n) == 0,
                      "%s: the %s GGUF gives another image than the safetensors file at --weight-type %s", name,
                      pd_weight_type_name(types[i].wt), pd_weight_type_name(types[i].wt));
        }
        pd_result_free(a);
        pd_result_free(b);
        /* Existing output: refused without overwrite, left as it was. */
        CHECK_EQ_INT(pd_convert(src, out, &cp, &err), PD_ERR_IO);
        CHECK_STR_CONTAINS(err.msg, "exists");
        /* GGUF in, f16 out: the quantized tensors widen, the rest keep their values. */
        char f16[256];
        snprintf(f16, sizeof f16, "%s/%s_%s_f16.gguf", tmpdir, name, pd_weight_type_name(types[i].wt));
        cp.weight_type = PD_WEIGHT_F16;
        CHECK_EQ_INT(pd_convert(out, f16, &cp, &err), PD_OK);
        pd_st_file *f = NULL;
        CHECK_EQ_INT(pd_tensor_file_open(f16, &f, &err), PD_OK);
        if (f)
            for (int t = 0; t < f->n_tensors; t++)
                CHECK(!pd_dtype_is_quant(f->tensors[t].dtype));
        pd_st_close(f);
        unlink(f16);
        unlink(out);
    }
}

/* A GGUF laid out as stable-diffusion.cpp writes it: every 2-D+ tensor with whole-block
 * rows quantized (biases aside), embeddings and text projection included. It loads, and
 * its image stays close to the fp32 one. */
static void run_sdcpp_layout(const char *name) {
    PD_REQUIRE_GOLDEN();
    char src[1024], config[1024], rel[128], out[256];
    snprintf(rel, sizeof rel, "%s.safetensors", name);
    golden_model(src, sizeof src, rel);
    snprintf(rel, sizeof rel, "%s.config.json", name);
    golden_model(config, sizeof config, rel);
    snprintf(out, sizeof out, "%s/%s_sdcpp.gguf", tmpdir, name);
    pd_st_file *f = NULL;
    pd_error err = {0};
    if (pd_tensor_file_open(src, &f, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return;
    }
    pd_gguf_writer *w = pd_gguf_writer_new();
    void **bufs = calloc((size_t)f->n_tensors, sizeof *bufs);
    int n_embed_q = 0;
    pd_status st = w && bufs ? PD_OK : PD_ERR_OOM;
    for (int i = 0; st == PD_OK && i < f->n_tensors; i++) {
        const pd_st_tensor *t = &f->tensors[i];
        const size_t n = strlen(t->name);
        const bool fl = t->dtype == PD_DTYPE_F32 || t->dtype == PD_DTYPE_F16 || t->dtype == PD_DTYPE_BF16;
        int64_t one = 1;
        if (fl && t->ndim >= 2 && t->shape[t->ndim - 1] % 32 == 0 && !(n >= 5 && !strcmp(t->name + n - 5, ".bias"))) {
            const size_t len = (size_t)t->shape[t->ndim - 1], rows = (size_t)t->numel / len;
            const size_t rb = pd_dtype_bytes(PD_DTYPE_Q8_0, len);
            unsigned char *q = malloc(rows * rb);
            float *x = malloc(len * sizeof(float));
            for (size_t r = 0; q && x && r < rows; r++) {
                pd_to_f32(x, (const unsigned char *)t->data + r * len * pd_dtype_size(t->dtype), t->dtype, len);
                pd_quantize_row(PD_DTYPE_Q8_0, x, q + r * rb, len);
            }
            free(x);
            bufs[i] = q;
            n_embed_q += strstr(t->name, "embedding") != NULL;
            st = q ? pd_gguf_add_tensor(w, t->name, PD_DTYPE_Q8_0, t->ndim, t->shape, q, rows * rb, &err) : PD_ERR_OOM;
        } else {
            st = pd_gguf_add_tensor(w, t->name, t->dtype, t->ndim ? t->ndim : 1, t->ndim ? t->shape : &one, t->data,
                                    t->nbytes, &err);
        }
    }
    if (st == PD_OK) st = pd_gguf_write(w, out, false, &err);
    CHECK_EQ_INT(st, PD_OK);
    if (st != PD_OK) PD_FAIL("%s", err.msg);
    CHECK_MSG(n_embed_q > 0, "%s: no embedding was quantized: the layout is not exercised", name);
    for (int i = 0; bufs && i < f->n_tensors; i++) free(bufs[i]);
    free(bufs);
    pd_gguf_writer_free(w);
    pd_st_close(f);
    if (st != PD_OK) return;
    pd_result *a = generate(src, NULL, PD_WEIGHT_F32), *b = generate(out, config, PD_WEIGHT_AUTO);
    if (a && b) {
        const double p = golden_psnr_u8(a->images[0].rgb, b->images[0].rgb, 64 * 64 * 3);
        fprintf(stderr, "  %s, stable-diffusion.cpp layout q8_0 vs fp32: %.1f dB\n", name, p);
        CHECK_MSG(p >= 20.0 && p < 99.0, "%s: PSNR %.1f dB", name, p);
    }
    pd_result_free(a);
    pd_result_free(b);
    unlink(out);
}

static void test_sdcpp_layout(void) { run_sdcpp_layout("tiny-sdxl"); }

static void test_sd15(void) { run_model("tiny-sd15"); }
static void test_sdxl(void) { run_model("tiny-sdxl"); }

static void test_bad_inputs(void) {
    char path[256], src[1024];
    pd_error err = {0};
    pd_convert_params cp = pd_convert_default_params();
    snprintf(path, sizeof path, "%s/garbage.safetensors", tmpdir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs("this is not a model", f);
        fclose(f);
    }
    CHECK(pd_convert(path, "/tmp/never-written.gguf", &cp, &err) != PD_OK);
    CHECK(access("/tmp/never-written.gguf", F_OK) != 0);
    CHECK(pd_convert("/nonexistent/model.safetensors", path, &cp, &err) == PD_ERR_IO);
    if (pd_test_golden_present()) {
        golden_model(src, sizeof src, "tiny-sd15.safetensors");
        CHECK(pd_convert(src, "/nonexistent-dir/x.gguf", &cp, &err) == PD_ERR_IO);
        cp.weight_type = (pd_weight_type)99;
        CHECK_EQ_INT(pd_convert(src, path, &cp, &err), PD_ERR_INVALID_ARG);
    }
    unlink(path);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pd_convert_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    PD_RUN(test_sd15);
    PD_RUN(test_sdxl);
    PD_RUN(test_sdcpp_layout);
    PD_RUN(test_bad_inputs);
    rmdir(tmpdir);
    return pd_test_summary();
}
