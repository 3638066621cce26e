/*
 * test_unet_depths.c - UNet transformer depths come from the weights, block by block
 * (SSD-1B and Segmind Vega thin SDXL's transformers unevenly; issue 5). On the golden
 * tiny SDXL (depth 2 everywhere): model A zeroes the output projections (attn1/attn2
 * to_out, ff.net.2) of transformer block 1 at some sites, which makes those blocks the
 * identity; model B drops block 1 at the same sites (depth 1 there, 2 elsewhere, within
 * one level too). Both must give the same image, bit for bit, on the exact fp32 path:
 * B's depths were read from its weights and its remaining blocks wired as A's.
 */
#include <unistd.h>

#include "golden_case.h"
#include "io/gguf.h"
#include "io/tensor_file.h"
#include "pipeline/generate.h"

static const char *const THINNED[] = {"input_blocks.5.1.transformer_blocks.1.", "middle_block.1.transformer_blocks.1.",
                                      "output_blocks.1.1.transformer_blocks.1.", "output_blocks.3.1.transformer_blocks.1."};

static bool thinned(const char *name) {
    for (size_t i = 0; i < PD_COUNT(THINNED); i++)
        if (strstr(name, THINNED[i])) return true;
    return false;
}

static bool output_projection(const char *name) {
    return strstr(name, "attn1.to_out.0.") || strstr(name, "attn2.to_out.0.") || strstr(name, "ff.net.2.");
}

/* Writes src's tensors to out: thinned blocks zeroed (drop = false) or left out. */
static bool write_variant(const pd_st_file *src, const char *out, bool drop) {
    pd_gguf_writer *w = pd_gguf_writer_new();
    pd_error err = {0};
    void **zeros = calloc((size_t)src->n_tensors, sizeof *zeros);
    pd_status st = w && zeros ? PD_OK : PD_ERR_OOM;
    int touched = 0;
    for (int i = 0; st == PD_OK && i < src->n_tensors; i++) {
        const pd_st_tensor *t = &src->tensors[i];
        int64_t one = 1;
        const int ndim = t->ndim ? t->ndim : 1;
        const int64_t *shape = t->ndim ? t->shape : &one;
        if (thinned(t->name)) {
            touched++;
            if (drop) continue;
            if (output_projection(t->name)) {
                zeros[i] = calloc(1, t->nbytes ? t->nbytes : 1);
                st = zeros[i] ? pd_gguf_add_tensor(w, t->name, t->dtype, ndim, shape, zeros[i], t->nbytes, &err) : PD_ERR_OOM;
                continue;
            }
        }
        st = pd_gguf_add_tensor(w, t->name, t->dtype, ndim, shape, t->data, t->nbytes, &err);
    }
    if (st == PD_OK) st = pd_gguf_write(w, out, true, &err);
    if (st != PD_OK) PD_FAIL("%s: %s", out, err.msg);
    CHECK(touched > 40);   /* four sites x ~20 tensors */
    for (int i = 0; zeros && i < src->n_tensors; i++) free(zeros[i]);
    free(zeros);
    pd_gguf_writer_free(w);
    return st == PD_OK;
}

static pd_result *generate(const char *model, const char *config, const char *vocab) {
    pd_ctx_params cp = pd_ctx_default_params();
    cp.precision = PD_PRECISION_FP32;
    cp.config_path = config;
    cp.vocab_path = vocab;
    return golden_image(model, &cp, "a thin model", 2, 17);
}

static void test_uneven_depths(void) {
    PD_REQUIRE_GOLDEN();
    char src_path[1024], config[1024], vocab[1024], dir[64], a_path[128], b_path[128];
    golden_model(src_path, sizeof src_path, "tiny-sdxl.safetensors");
    golden_model(config, sizeof config, "tiny-sdxl.config.json");
    golden_model(vocab, sizeof vocab, "tiny-sdxl/tokenizer");
    snprintf(dir, sizeof dir, "/tmp/pd_depths_XXXXXX");
    if (!mkdtemp(dir)) {
        PD_FAIL("mkdtemp");
        return;
    }
    snprintf(a_path, sizeof a_path, "%s/identity.gguf", dir);
    snprintf(b_path, sizeof b_path, "%s/thin.gguf", dir);
    pd_st_file *src = NULL;
    pd_error err = {0};
    if (pd_tensor_file_open(src_path, &src, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        rmdir(dir);
        return;
    }
    if (write_variant(src, a_path, false) && write_variant(src, b_path, true)) {
        pd_result *a = generate(a_path, config, vocab), *b = generate(b_path, config, vocab);
        pd_result *orig = generate(src_path, NULL, vocab);
        if (a && b && orig) {
            const size_t n = 64 * 64 * 3;
            CHECK_MSG(memcmp(a->images[0].rgb, b->images[0].rgb, n) == 0,
                      "dropping identity blocks changed the image: depths not read per block");
            CHECK_MSG(memcmp(a->images[0].rgb, orig->images[0].rgb, n) != 0,
                      "zeroing block 1's projections changed nothing: the test would not see a wrong depth");
        }
        pd_result_free(a);
        pd_result_free(b);
        pd_result_free(orig);
        /* `info` shows the uneven depths. */
        pd_model_info *info = NULL;
        CHECK_EQ_INT(pd_inspect(b_path, &info, &err), PD_OK);
        if (info) {
            CHECK_EQ_INT(info->n_missing, 0);
            for (int c = 0; c < info->n_components; c++)
                if (!strcmp(info->components[c].name, "unet")) {
                    fprintf(stderr, "  thinned UNet: %s\n", info->components[c].arch);
                    CHECK_STR_CONTAINS(info->components[c].arch, "transformers 0,2/1,2 (mid 1), up ");
                }
        }
        pd_model_info_free(info);
    }
    pd_st_close(src);
    unlink(a_path);
    unlink(b_path);
    rmdir(dir);
}

int main(void) {
    PD_RUN(test_uneven_depths);
    return pd_test_summary();
}
