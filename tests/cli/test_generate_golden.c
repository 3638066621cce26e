/*
 * test_generate_golden.c - `phonediffusion generate` reproduces the reference images:
 * runs the built CLI on golden txt2img and img2img cases (the init image is written as a
 * PNG first) and compares the PNG it writes with the reference image_u8 (+-1 on at
 * least 99.9 % of values), and checks the A1111 metadata.
 */
#include <unistd.h>

#include "golden.h"
#include "png_io.h"

static char tmpdir[64];

static int run(const char *args) {
    char cmd[8192];
    const char *wrap = getenv("PD_EXEC_WRAPPER");
    snprintf(cmd, sizeof cmd, "%s '%s' %s", wrap ? wrap : "", PD_CLI_BIN, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void compare_png(const char *png, const pd_st_file *g, const char *label) {
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    char err[512];
    if (png_read_rgb(png, &rgb, &w, &h, err, sizeof err) != 0) {
        PD_FAIL("%s: %s", label, err);
        return;
    }
    const pd_st_tensor *t = pd_st_find(g, "image_u8");
    CHECK(t && t->ndim == 3 && t->shape[0] == h && t->shape[1] == w && t->shape[2] == 3);
    if (t && t->nbytes == (size_t)w * h * 3) {
        const uint8_t *ref = t->data;
        size_t off = 0;
        for (size_t i = 0; i < t->nbytes; i++) off += abs((int)rgb[i] - (int)ref[i]) > 1;
        CHECK_MSG(off * 1000 <= t->nbytes, "%s: %zu of %zu values differ by more than 1", label, off, t->nbytes);
    }
    free(rgb);
}

static void test_txt2img_cli(void) {
    PD_REQUIRE_GOLDEN();
    const char *cases[] = {"txt2img_tiny-sd15_euler_64x64_cfg7.5", "txt2img_tiny-sdxl_dpm++2m_karras_64x64_cfg7.5"};
    const char *models[] = {"tiny-sd15.safetensors", "tiny-sdxl"};
    const char *sampler[][2] = {{"euler", "default"}, {"dpm++2m", "karras"}};
    for (int i = 0; i < 2; i++) {
        char model[1024], out[256], args[4096];
        snprintf(out, sizeof out, "%s/t%d.png", tmpdir, i);
        snprintf(args, sizeof args,
                 "generate -m '%s' -p 'a photograph of an astronaut riding a horse, highly detailed' "
                 "-n 'blurry, low quality' -W 64 -H 64 --steps 4 --cfg-scale 7.5 --sampler %s "
                 "--scheduler %s -s 42 --no-prompt-weights --precision fp32 -q -o '%s' >/dev/null 2>&1",
                 golden_model(model, sizeof model, models[i]), sampler[i][0], sampler[i][1], out);
        CHECK_EQ_INT(run(args), 0);
        pd_st_file *g = golden_open(cases[i]);
        if (g) compare_png(out, g, cases[i]);
        pd_st_close(g);
        char *params = png_read_parameters(out);
        CHECK_STR_CONTAINS(params, "a photograph of an astronaut riding a horse, highly detailed\nNegative prompt: blurry, low quality\nSteps: 4, Sampler: ");
        CHECK_STR_CONTAINS(params, "CFG scale: 7.5, Seed: 42, Size: 64x64");
        CHECK_STR_CONTAINS(params, "Version: phonediffusion");
        free(params);
    }
}

static void test_img2img_cli(void) {
    PD_REQUIRE_GOLDEN();
    const char *name = "img2img_tiny-sd15_euler_a_64x96_strength0.5";
    pd_st_file *g = golden_open(name);
    if (!g) return;
    const pd_st_tensor *init = pd_st_find(g, "init_image_u8");
    CHECK(init && init->ndim == 3);
    char init_png[256], out[256], model[1024], args[4096], err[256];
    snprintf(init_png, sizeof init_png, "%s/init.png", tmpdir);
    snprintf(out, sizeof out, "%s/i2i.png", tmpdir);
    if (init && png_write_rgb(init_png, init->data, (int)init->shape[1], (int)init->shape[0], NULL, false, err, sizeof err) == 0) {
        snprintf(args, sizeof args,
                 "generate -m '%s' -p 'a photograph of an astronaut riding a horse, highly detailed' "
                 "-n 'blurry, low quality' --init-image '%s' --strength 0.5 --steps 8 --cfg-scale 7.5 "
                 "--sampler euler_a -s 1234 --no-prompt-weights --precision fp32 -q -o '%s' >/dev/null 2>&1",
                 golden_model(model, sizeof model, "tiny-sd15"), init_png, out);
        CHECK_EQ_INT(run(args), 0);
        compare_png(out, g, name);
        char *params = png_read_parameters(out);
        CHECK_STR_CONTAINS(params, "Denoising strength: 0.5");
        CHECK_STR_CONTAINS(params, "Sampler: Euler a");
        free(params);
    } else {
        PD_FAIL("cannot write %s: %s", init_png, err);
    }
    pd_st_close(g);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pd_cli_gen_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    PD_RUN(test_txt2img_cli);
    PD_RUN(test_img2img_cli);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return pd_test_summary();
}
