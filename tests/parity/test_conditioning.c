/*
 * test_conditioning.c - prompt -> conditioning through the public API, against the
 * text tensors of the golden txt2img cases (diffusers StableDiffusion(XL)Pipeline):
 * positive and negative prompts, clip skip (diffusers clip_skip=1 = our 2, applied to
 * the positive prompt only, as diffusers does), SDXL's zero negative conditioning, and
 * SDXL's pooled text embeddings. Both layouts. Tolerance 1e-4 of max |ref|.
 */
#include "golden.h"
#include "phonediffusion.h"

#define TOL 1e-4

static pd_ctx *load(const char *rel) {
    char path[1024];
    pd_ctx_params cp = pd_ctx_default_params();
    cp.precision = PD_PRECISION_FP32;   /* the exact path */
    cp.n_threads = 2;
    pd_ctx *ctx = NULL;
    pd_error err = {0};
    if (pd_ctx_load(golden_model(path, sizeof path, rel), &cp, &ctx, &err) != PD_OK)
        PD_FAIL("load %s: %s", rel, err.msg);
    return ctx;
}

/* Encodes prompt and compares context (+ pooled, ids) with the golden <side>.* tensors. */
static void check_side(pd_ctx *ctx, const pd_st_file *g, const char *side, const char *prompt,
                       int clip_skip, bool zero_if_empty, const char *label) {
    pd_text_params tp = pd_text_default_params();
    tp.prompt = prompt;
    tp.clip_skip = clip_skip;
    tp.zero_if_empty = zero_if_empty;
    pd_cond *c = NULL;
    pd_error err = {0};
    if (pd_encode_text(ctx, &tp, &c, &err) != PD_OK) {
        PD_FAIL("%s %s: %s", label, side, err.msg);
        return;
    }
    char name[128], what[256];
    snprintf(name, sizeof name, "%s.context", side);
    int64_t n = 0;
    float *ref = golden_f32(g, name, &n);
    if (ref) {
        CHECK_EQ_INT(n, (int64_t)c->n_tokens * c->dim);
        snprintf(what, sizeof what, "%s %s", label, name);
        if (n == (int64_t)c->n_tokens * c->dim) golden_check(what, c->context, ref, (size_t)n, TOL);
        free(ref);
    }
    snprintf(name, sizeof name, "%s.input_ids", side);
    if (pd_st_find(g, name)) {
        int32_t *ids = golden_ids(g, name, &n);
        if (ids) {
            CHECK_EQ_INT(n, c->n_tokens);
            CHECK_MSG(n == c->n_tokens && memcmp(ids, c->ids, (size_t)n * 4) == 0, "%s %s differ", label, name);
        }
        free(ids);
    }
    snprintf(name, sizeof name, "%s.text_embeds", side);
    if (pd_st_find(g, name)) {
        ref = golden_f32(g, name, &n);
        CHECK_EQ_INT(n, c->pooled_dim);
        snprintf(what, sizeof what, "%s %s", label, name);
        if (ref && c->pooled && n == c->pooled_dim) golden_check(what, c->pooled, ref, (size_t)n, TOL);
        free(ref);
    } else {
        CHECK_EQ_INT(c->pooled_dim, 0);
    }
    pd_cond_free(c);
}

static void run_case(const char *case_name, const char *model_rel, bool sdxl) {
    pd_ctx *ctx = load(model_rel);
    pd_st_file *g = golden_open(case_name);
    if (!ctx || !g) goto done;
    const char *prompt = "a photograph of an astronaut riding a horse, highly detailed";
    bool clipskip = strstr(case_name, "clipskip1") != NULL;
    bool noneg = strstr(case_name, "nonegative") != NULL;
    char label[512];
    snprintf(label, sizeof label, "%s [%s]", case_name, model_rel);
    check_side(ctx, g, "cond", prompt, clipskip ? 2 : 1, false, label);
    if (pd_st_find(g, "uncond.context"))
        check_side(ctx, g, "uncond", noneg ? "" : "blurry, low quality", 1, sdxl && noneg, label);
done:
    pd_st_close(g);
    pd_ctx_free(ctx);
}

static const char *const SD15_CASES[] = {
    "txt2img_tiny-sd15_euler_64x64_cfg7.5",
    "txt2img_tiny-sd15_euler_64x64_cfg7.5_clipskip1",
    "txt2img_tiny-sd15_euler_64x64_cfg7.5_nonegative",
    "txt2img_tiny-sd15_euler_64x64_cfg1",
};
static const char *const SDXL_CASES[] = {
    "txt2img_tiny-sdxl_euler_64x64_cfg7.5",
    "txt2img_tiny-sdxl_euler_64x64_cfg7.5_clipskip1",
    "txt2img_tiny-sdxl_euler_64x64_cfg7.5_nonegative",
    "txt2img_tiny-sdxl_euler_64x64_cfg1",
};

static void test_sd15_conditioning(void) {
    PD_REQUIRE_GOLDEN();
    for (size_t i = 0; i < PD_COUNT(SD15_CASES); i++) {
        run_case(SD15_CASES[i], "tiny-sd15.safetensors", false);
        run_case(SD15_CASES[i], "tiny-sd15", false);
    }
}

static void test_sdxl_conditioning(void) {
    PD_REQUIRE_GOLDEN();
    for (size_t i = 0; i < PD_COUNT(SDXL_CASES); i++) {
        run_case(SDXL_CASES[i], "tiny-sdxl.safetensors", true);
        run_case(SDXL_CASES[i], "tiny-sdxl", true);
    }
}

/* Long prompts: more than 75 tokens give several chunks; the first equals the
 * diffusers (truncating) encoding of the same prompt when no comma backtrack moves
 * tokens; weights change the result and (x:1.0) does not. */
static void test_chunks_and_weights(void) {
    PD_REQUIRE_GOLDEN();
    pd_ctx *ctx = load("tiny-sd15.safetensors");
    if (!ctx) return;
    pd_text_params tp = pd_text_default_params();
    pd_error err = {0};
    char longp[2048] = "";
    for (int i = 0; i < 100; i++) strcat(longp, "cat ");
    tp.prompt = longp;
    pd_cond *a = NULL, *b = NULL, *w = NULL, *w1 = NULL;
    CHECK_EQ_INT(pd_encode_text(ctx, &tp, &a, &err), PD_OK);
    if (a) {
        CHECK_EQ_INT(a->n_chunks, 2);
        CHECK_EQ_INT(a->n_tokens, 154);
        CHECK_EQ_INT(a->ids[0], 49406);
        CHECK_EQ_INT(a->ids[76], 49407);
        CHECK_EQ_INT(a->ids[77], 49406);
    }
    tp.prompt = "a (cat:1.5) on a mat";
    CHECK_EQ_INT(pd_encode_text(ctx, &tp, &w, &err), PD_OK);
    tp.prompt = "a (cat:1.0) on a mat";
    CHECK_EQ_INT(pd_encode_text(ctx, &tp, &w1, &err), PD_OK);
    tp.prompt = "a cat on a mat";
    CHECK_EQ_INT(pd_encode_text(ctx, &tp, &b, &err), PD_OK);
    if (w && b && w1) {
        size_t n = (size_t)b->n_tokens * b->dim;
        CHECK(memcmp(w1->context, b->context, n * 4) == 0);
        CHECK(memcmp(w->context, b->context, n * 4) != 0);
        CHECK(memcmp(w->ids, b->ids, 77 * 4) == 0);
    }
    tp.clip_skip = 99;
    pd_cond *bad = NULL;
    CHECK_EQ_INT(pd_encode_text(ctx, &tp, &bad, &err), PD_ERR_INVALID_ARG);
    CHECK(bad == NULL);
    pd_cond_free(a);
    pd_cond_free(b);
    pd_cond_free(w);
    pd_cond_free(w1);
    pd_ctx_free(ctx);
}

static bool cancel_at_start(const pd_progress *p, void *user) {
    (*(int *)user)++;
    return p->step < 0 ? false : true;
}

/* A progress callback that returns false cancels cleanly; the context stays usable. */
static void test_cancel(void) {
    PD_REQUIRE_GOLDEN();
    pd_ctx *ctx = load("tiny-sdxl.safetensors");
    if (!ctx) return;
    int calls = 0;
    pd_text_params tp = pd_text_default_params();
    tp.prompt = "a cat";
    tp.progress = cancel_at_start;
    tp.progress_user = &calls;
    pd_cond *c = NULL;
    pd_error err = {0};
    CHECK_EQ_INT(pd_encode_text(ctx, &tp, &c, &err), PD_ERR_CANCELLED);
    CHECK(c == NULL);
    CHECK(calls == 1);
    tp.progress = NULL;
    CHECK_EQ_INT(pd_encode_text(ctx, &tp, &c, &err), PD_OK);
    pd_cond_free(c);

    /* Load cancellation. */
    char path[1024];
    pd_ctx_params cp = pd_ctx_default_params();
    cp.precision = PD_PRECISION_FP32;   /* the exact path */
    calls = 0;
    cp.progress = cancel_at_start;
    cp.progress_user = &calls;
    pd_ctx *ctx2 = NULL;
    CHECK_EQ_INT(pd_ctx_load(golden_model(path, sizeof path, "tiny-sd15"), &cp, &ctx2, &err), PD_ERR_CANCELLED);
    CHECK(ctx2 == NULL);
    pd_ctx_free(ctx);
}

/* Load errors name what is wrong. */
static void test_load_errors(void) {
    PD_REQUIRE_GOLDEN();
    pd_error err = {0};
    pd_ctx *ctx = NULL;
    CHECK_EQ_INT(pd_ctx_load("/nonexistent/model.safetensors", NULL, &ctx, &err), PD_ERR_IO);
    CHECK_STR_CONTAINS(err.msg, "/nonexistent/model.safetensors");
    char path[1024];
    pd_ctx_params cp = pd_ctx_default_params();
    cp.precision = PD_PRECISION_FP32;   /* the exact path */
    cp.vocab_path = "/nonexistent/vocab";
    CHECK(pd_ctx_load(golden_model(path, sizeof path, "tiny-sd15.safetensors"), &cp, &ctx, &err) != PD_OK);
    CHECK_STR_CONTAINS(err.msg, "/nonexistent/vocab");
    CHECK(ctx == NULL);
    /* A single file with no vocabulary beside it: copy the model alone to a temp dir. */
    char dir[] = "/tmp/pd_novocab_XXXXXX";
    if (!mkdtemp(dir)) return;
    char cmd[4096], copy[1100];
    snprintf(copy, sizeof copy, "%s/m.safetensors", dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", golden_model(path, sizeof path, "tiny-sd15.safetensors"), copy);
    if (system(cmd) == 0) {
        CHECK_EQ_INT(pd_ctx_load(copy, NULL, &ctx, &err), PD_ERR_MISSING);
        CHECK_STR_CONTAINS(err.msg, "--vocab");
        CHECK(ctx == NULL);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    PD_RUN(test_sd15_conditioning);
    PD_RUN(test_sdxl_conditioning);
    PD_RUN(test_chunks_and_weights);
    PD_RUN(test_cancel);
    PD_RUN(test_load_errors);
    return pd_test_summary();
}
