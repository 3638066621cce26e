/*
 * test_clip.c - the CLIP text encoders against the reference (transformers, fp32).
 *
 * For every clip_* golden case: each hidden state, the last hidden state, the
 * penultimate state with the final layer norm, the pooled output and (bigG) the
 * projected text embeddings, within 1e-4 of max |ref| (issue 2). Both model layouts
 * (single file, diffusers folder) are loaded and must agree exactly with each other.
 */
#include "golden.h"
#include "io/model.h"
#include "kernels/kernels.h"
#include "models/clip.h"

#define TOL 1e-4

typedef struct clip_case {
    const char *name;
    const char *single_file;
    const char *folder;
    pd_component comp;
} clip_case;

static const clip_case CASES[] = {
    {"clip_tiny-sd15_text_encoder", "tiny-sd15.safetensors", "tiny-sd15", PD_COMP_TEXT1},
    {"clip_tiny-sdxl_text_encoder", "tiny-sdxl.safetensors", "tiny-sdxl", PD_COMP_TEXT1},
    {"clip_tiny-sdxl_text_encoder_2", "tiny-sdxl.safetensors", "tiny-sdxl", PD_COMP_TEXT2},
    {"clip_tiny-sdxl_text_encoder_2_pad49407", "tiny-sdxl.safetensors", "tiny-sdxl", PD_COMP_TEXT2},
};

static double worst_err;

/* Runs one request and compares `out` (n floats) with golden tensor `ref_name`. */
static void check_output(const pd_clip *m, const pd_nn *nn, pd_arena *scratch, pd_clip_request req,
                         float *out, const pd_st_file *g, const char *ref_name, const char *label) {
    pd_error err = {0};
    if (pd_clip_forward(m, nn, &req, scratch, &err) != PD_OK) {
        PD_FAIL("%s: forward failed: %s", label, err.msg);
        return;
    }
    int64_t n = 0;
    float *ref = golden_f32(g, ref_name, &n);
    if (!ref) return;
    char what[256];
    snprintf(what, sizeof what, "%s %s", label, ref_name);
    double e = golden_check(what, out, ref, (size_t)n, TOL);
    if (e > worst_err) worst_err = e;
    free(ref);
}

static void run_case(const clip_case *cc, const char *model_path, const pd_kernels *kt, pd_pool *pool,
                     float **last_out) {
    pd_error err = {0};
    pd_model_src *src = NULL;
    if (pd_model_open(model_path, NULL, &src, &err) != PD_OK) {
        PD_FAIL("%s: %s", model_path, err.msg);
        return;
    }
    pd_clip m;
    pd_st_file *g = NULL;
    int32_t *ids = NULL;
    float *buf = NULL;
    pd_arena scratch = {0};
    if (pd_clip_load(&m, src, cc->comp, kt, NULL, &err) != PD_OK) {
        PD_FAIL("%s: load: %s", model_path, err.msg);
        goto done;
    }
    g = golden_open(cc->name);
    if (!g) goto done;
    int64_t n_ids = 0;
    ids = golden_ids(g, "input_ids", &n_ids);
    if (!ids) goto done;
    int n_seq = (int)(n_ids / PD_CLIP_CONTEXT);
    const pd_clip_config *cfg = &m.cfg;
    size_t hidden_n = (size_t)n_ids * cfg->d_model;
    buf = malloc((hidden_n + (size_t)n_seq * (cfg->d_model + cfg->proj_dim + 1)) * sizeof(float));
    if (pd_arena_init(&scratch, pd_clip_scratch_bytes(cfg, n_seq)) != 0 || !buf) {
        PD_FAIL("out of memory");
        goto done;
    }
    pd_nn nn = {.kt = kt, .pool = pool};
    char label[512];
    snprintf(label, sizeof label, "%s [%s]", cc->name, model_path);
    for (int l = 0; l <= cfg->n_layers; l++) {
        char ref_name[64];
        snprintf(ref_name, sizeof ref_name, "hidden_states.%02d", l);
        pd_clip_request req = {.ids = ids, .n_seq = n_seq, .hidden_layer = l, .hidden = buf};
        check_output(&m, &nn, &scratch, req, buf, g, ref_name, label);
    }
    pd_clip_request last = {.ids = ids, .n_seq = n_seq, .hidden_layer = cfg->n_layers,
                            .hidden_final_ln = true, .hidden = buf};
    check_output(&m, &nn, &scratch, last, buf, g, "last_hidden_state", label);
    pd_clip_request pen = {.ids = ids, .n_seq = n_seq, .hidden_layer = cfg->n_layers - 1,
                           .hidden_final_ln = true, .hidden = buf};
    check_output(&m, &nn, &scratch, pen, buf, g, "penultimate_with_final_layer_norm", label);
    pd_clip_request pooled = {.ids = ids, .n_seq = n_seq, .hidden_layer = 0, .pooled = buf};
    check_output(&m, &nn, &scratch, pooled, buf, g, "pooled_output", label);
    if (pd_st_find(g, "text_embeds")) {
        CHECK(cfg->proj_dim > 0);
        pd_clip_request proj = {.ids = ids, .n_seq = n_seq, .hidden_layer = 0, .projected = buf};
        if (cfg->proj_dim > 0) check_output(&m, &nn, &scratch, proj, buf, g, "text_embeds", label);
    }
    /* Keep the last hidden state to compare layouts. */
    if (last_out) {
        pd_clip_forward(&m, &nn, &last, &scratch, &err);
        *last_out = malloc(hidden_n * sizeof(float));
        if (*last_out) memcpy(*last_out, buf, hidden_n * sizeof(float));
    }
done:
    pd_arena_free(&scratch);
    free(buf);
    free(ids);
    pd_st_close(g);
    pd_clip_free(&m);
    pd_model_close(src);
}

static void run_all(pd_isa isa) {
    PD_REQUIRE_GOLDEN();
    pd_kernels kt;
    pd_isa got = pd_kernels_init(&kt, isa);
    if (isa != PD_ISA_AUTO && got != isa) PD_SKIP("%s kernels not available here", pd_isa_name(isa));
    pd_pool *pool = pd_pool_new(2);
    worst_err = 0;
    for (size_t i = 0; i < PD_COUNT(CASES); i++) {
        char p1[1024], p2[1024];
        float *a = NULL, *b = NULL;
        run_case(&CASES[i], golden_model(p1, sizeof p1, CASES[i].single_file), &kt, pool, &a);
        run_case(&CASES[i], golden_model(p2, sizeof p2, CASES[i].folder), &kt, pool, &b);
        if (a && b) {
            pd_st_file *g = golden_open(CASES[i].name);
            const pd_st_tensor *t = g ? pd_st_find(g, "last_hidden_state") : NULL;
            if (t) CHECK_MSG(memcmp(a, b, (size_t)t->numel * sizeof(float)) == 0,
                             "%s: single file and diffusers folder differ", CASES[i].name);
            pd_st_close(g);
        }
        free(a);
        free(b);
    }
    fprintf(stderr, "  clip parity (%s kernels): worst relative error %.3g\n", pd_isa_name(got), worst_err);
    pd_pool_free(pool);
}

static void test_clip_parity_best(void) { run_all(PD_ISA_AUTO); }
static void test_clip_parity_scalar(void) { run_all(PD_ISA_SCALAR); }
static void test_clip_parity_avx2(void) { run_all(PD_ISA_AVX2); }

/* Token ids outside the vocabulary are refused, not read out of bounds. */
static void test_clip_rejects_bad_ids(void) {
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
    pd_clip m;
    if (pd_clip_load(&m, src, PD_COMP_TEXT1, &kt, NULL, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        pd_model_close(src);
        return;
    }
    int32_t ids[PD_CLIP_CONTEXT];
    for (int i = 0; i < PD_CLIP_CONTEXT; i++) ids[i] = 49407;
    ids[3] = 49408;
    float out[PD_CLIP_CONTEXT * 64];
    pd_arena scratch;
    pd_arena_init(&scratch, pd_clip_scratch_bytes(&m.cfg, 1));
    pd_nn nn = {.kt = &kt, .pool = NULL};
    pd_clip_request req = {.ids = ids, .n_seq = 1, .hidden_layer = 1, .hidden = out};
    CHECK_EQ_INT(pd_clip_forward(&m, &nn, &req, &scratch, &err), PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "49408");
    ids[3] = -1;
    CHECK_EQ_INT(pd_clip_forward(&m, &nn, &req, &scratch, &err), PD_ERR_INVALID_ARG);
    req.hidden_layer = m.cfg.n_layers + 1;
    ids[3] = 5;
    CHECK_EQ_INT(pd_clip_forward(&m, &nn, &req, &scratch, &err), PD_ERR_INVALID_ARG);
    pd_arena_free(&scratch);
    pd_clip_free(&m);
    pd_model_close(src);
}

int main(void) {
    PD_RUN(test_clip_parity_best);
    PD_RUN(test_clip_parity_scalar);
    PD_RUN(test_clip_parity_avx2);
    PD_RUN(test_clip_rejects_bad_ids);
    return pd_test_summary();
}
