/*
 * test_memory.c - the memory plan (pipeline/memory.h) and --max-memory on the golden
 * tiny SD 1.5 model: a budget that forces the text encoders and the VAE to be loaded
 * per use gives bit-identical conditioning and images (txt2img and img2img, so both VAE
 * halves are staged); budgets that cannot hold the UNet or a run fail cleanly before any
 * work; the stage reports reach the log; a tiled decode reports (and can be cancelled)
 * per tile.
 */
#include "golden_case.h"
#include "pipeline/context.h"
#include "pipeline/generate.h"

typedef struct log_capture {
    int memory_lines, unet_loads;
    bool saw_text, saw_decode;
} log_capture;

static void capture(pd_log_level level, const char *msg, void *user) {
    log_capture *c = user;
    (void)level;
    if (strstr(msg, "memory after")) c->memory_lines++;
    if (strstr(msg, "memory after text encoding")) c->saw_text = true;
    if (strstr(msg, "memory after decode")) c->saw_decode = true;
    if (strstr(msg, "UNet loaded again")) c->unet_loads++;
}

static pd_result *run_batch(pd_ctx *ctx, const uint8_t *init, int batch) {
    pd_gen_params gp = pd_gen_default_params();
    gp.batch_count = batch;
    gp.prompt = "a red fox";
    gp.negative_prompt = "blurry";
    gp.width = gp.height = 64;
    gp.steps = 3;
    gp.seed = 11;
    if (init) {
        gp.init_image = init;
        gp.init_width = gp.init_height = 64;
        gp.strength = 0.6f;
    }
    pd_result *r = NULL;
    pd_error err = {0};
    if (pd_generate(ctx, &gp, &r, &err) != PD_OK) PD_FAIL("generate: %s", err.msg);
    return r;
}

static pd_result *run(pd_ctx *ctx, const uint8_t *init) { return run_batch(ctx, init, 1); }

static void test_staged_equals_resident(void) {
    PD_REQUIRE_GOLDEN();
    char path[1024];
    golden_model(path, sizeof path, "tiny-sd15.safetensors");
    pd_ctx_params cp = pd_ctx_default_params();
    pd_ctx *full = NULL, *staged = NULL;
    pd_error err = {0};
    if (pd_ctx_load(path, &cp, &full, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return;
    }
    CHECK(!full->mem.stage_text && !full->mem.stage_vae);
    CHECK(full->mem.w_unet > 0 && full->mem.w_text > 0 && full->mem.w_vae > 0);
    log_capture lc = {0};
    cp.low_memory = true;
    cp.max_memory = (int64_t)16 << 30;   /* the per-stage reports need a budget */
    cp.log = capture;
    cp.log_user = &lc;
    CHECK_EQ_INT(pd_ctx_load(path, &cp, &staged, &err), PD_OK);
    if (!staged) {
        PD_FAIL("%s", err.msg);
        pd_ctx_free(full);
        return;
    }
    CHECK(staged->mem.stage_text && staged->mem.stage_vae && staged->mem.stage_unet);
    CHECK(staged->text1.layers == NULL);   /* weights dropped after validation */
    CHECK(staged->unet->w != NULL);        /* the UNet stays until a run has denoised */

    pd_text_params tp = pd_text_default_params();
    tp.prompt = "a (red:1.2) fox";
    pd_cond *a = NULL, *b = NULL;
    CHECK_EQ_INT(pd_encode_text(full, &tp, &a, &err), PD_OK);
    CHECK_EQ_INT(pd_encode_text(staged, &tp, &b, &err), PD_OK);
    if (a && b) {
        CHECK_EQ_INT(a->n_tokens, b->n_tokens);
        CHECK(memcmp(a->context, b->context, (size_t)a->n_tokens * (size_t)a->dim * sizeof(float)) == 0);
    }
    pd_cond_free(a);
    pd_cond_free(b);

    pd_result *ra = run(full, NULL), *rb = run(staged, NULL);
    if (ra && rb) {
        CHECK(memcmp(ra->images[0].rgb, rb->images[0].rgb, 64 * 64 * 3) == 0);
        CHECK(rb->timings.unet_load_s == 0);   /* loaded with the context */
    }
    CHECK(lc.saw_text && lc.saw_decode);
    CHECK(full->unet->w != NULL && staged->unet->w == NULL);   /* released to decode */
    CHECK_EQ_INT(staged->unet->users, 0);
    uint8_t *init = ra ? ra->images[0].rgb : NULL;
    pd_result *ia = init ? run(full, init) : NULL, *ib = init ? run(staged, init) : NULL;
    if (ia && ib) {
        CHECK(memcmp(ia->images[0].rgb, ib->images[0].rgb, 64 * 64 * 3) == 0);
        CHECK(ib->timings.unet_load_s > 0 && ib->timings.unet_load_s <= ib->timings.total_s);   /* loaded again */
        CHECK(ia->timings.unet_load_s == 0);
    }
    pd_result_free(ia);
    pd_result_free(ib);
    /* A batch denoises every image before the UNet goes, then decodes: one load, and the
     * images (seeds 11, 12, 13) those of the resident context. */
    const int loads = lc.unet_loads;
    ia = run_batch(full, NULL, 3);
    ib = run_batch(staged, NULL, 3);
    CHECK_EQ_INT(lc.unet_loads, loads + 1);
    if (ia && ib) {
        CHECK_EQ_INT(ib->n_images, 3);
        for (int i = 0; i < 3 && i < ib->n_images; i++) {
            CHECK_EQ_INT(ia->images[i].seed, ib->images[i].seed);
            CHECK(memcmp(ia->images[i].rgb, ib->images[i].rgb, 64 * 64 * 3) == 0);
        }
        if (ra) CHECK(memcmp(ia->images[0].rgb, ra->images[0].rgb, 64 * 64 * 3) == 0);
        CHECK(ib->timings.unet_load_s > 0);
    }
    CHECK(staged->unet->w == NULL);
    pd_result_free(ia);
    pd_result_free(ib);
    pd_result_free(ra);
    pd_result_free(rb);

    pd_ctx_free(staged);

    /* The smallest budget the native-size plan accepts loads, and a much larger run is
     * then refused before any work. */
    pd_mem_plan p = full->mem;
    p.stage_text = p.stage_vae = true;
    pd_mem_plan_peaks(&p);
    cp.low_memory = false;
    cp.log = NULL;
    cp.max_memory = (int64_t)pd_mem_plan_peak(&p);
    CHECK_EQ_INT(pd_ctx_load(path, &cp, &staged, &err), PD_OK);
    if (staged) {
        CHECK(pd_mem_plan_peak(&staged->mem) <= (size_t)cp.max_memory);
        pd_gen_params big = pd_gen_default_params();
        big.prompt = "x";
        big.width = big.height = 4096;
        pd_result *r = NULL;
        CHECK_EQ_INT(pd_generate(staged, &big, &r, &err), PD_ERR_OOM);
        CHECK_STR_CONTAINS(err.msg, "--max-memory");
        CHECK_STR_CONTAINS(err.msg, "4096x4096");
        CHECK(r == NULL);
        pd_ctx_free(staged);
        staged = NULL;
    }

    /* A budget below the UNet's weights: a clear error at load. */
    cp.max_memory = (int64_t)(PD_MEM_OVERHEAD + full->mem.w_unet / 2);
    CHECK_EQ_INT(pd_ctx_load(path, &cp, &staged, &err), PD_ERR_OOM);
    CHECK_STR_CONTAINS(err.msg, "too small");
    CHECK(staged == NULL);
    cp.max_memory = -1;
    CHECK_EQ_INT(pd_ctx_load(path, &cp, &staged, &err), PD_ERR_INVALID_ARG);
    pd_ctx_free(full);
}

/* The strategy order on synthetic figures (MiB): text staged first, then the VAE, then
 * the UNet released to decode (only while the decode is the largest stage), then
 * smaller tiled decodes; the peak is the largest stage. */
static void test_plan_fit(void) {
    const size_t M = (size_t)1 << 20, O = PD_MEM_OVERHEAD;
    pd_mem_plan base = {.w_text = 300 * M, .w_unet = 1600 * M, .w_vae = 160 * M, .w_vae_dec = 100 * M,
                        .a_text = 16 * M, .a_unet = 300 * M, .a_dec = 900 * M};
    const size_t tiled[] = {600 * M, 400 * M, 250 * M};
    pd_mem_plan p = base;
    pd_mem_plan_peaks(&p);
    const size_t all = pd_mem_plan_peak(&p);
    CHECK_EQ_INT(all, O + (1600 + 300 + 160 + 900) * M);   /* decode dominates */
    CHECK(pd_mem_plan_fit(&p, all, tiled, 3) && !p.stage_text && !p.stage_vae && !p.stage_unet);
    p = base;
    CHECK(pd_mem_plan_fit(&p, all - 300 * M, tiled, 3));
    CHECK(p.stage_text && !p.stage_vae && !p.stage_unet && p.a_dec == 900 * M);
    /* VAE staged: the decode still needs the VAE's decoder and the UNet beside its
     * activations. */
    p = base;
    CHECK(pd_mem_plan_fit(&p, O + (1600 + 900 + 100) * M, tiled, 3));
    CHECK(p.stage_text && p.stage_vae && !p.stage_unet && p.a_dec == 900 * M);
    /* Then the UNet goes before the decode: the whole decode fits beside the VAE alone, and
     * the peak is the text stage (a first run encodes with the UNet resident). */
    p = base;
    CHECK(pd_mem_plan_fit(&p, O + 1950 * M, tiled, 3));
    CHECK(p.stage_text && p.stage_vae && p.stage_unet && p.a_dec == 900 * M);
    CHECK_EQ_INT(p.peak_decode, O + (900 + 100) * M);
    CHECK_EQ_INT(pd_mem_plan_peak(&p), O + (1600 + 300 + 16) * M);
    /* A decode too large even then is tiled as well. */
    p = base;
    p.a_dec = 2500 * M;
    CHECK(pd_mem_plan_fit(&p, O + 1950 * M, tiled, 3));
    CHECK(p.stage_unet && p.a_dec == 600 * M);
    p = base;
    CHECK(!pd_mem_plan_fit(&p, O + 1700 * M, tiled, 3));
    CHECK(p.stage_text && p.stage_vae && p.stage_unet && p.a_dec == 250 * M);
    /* When denoising is the largest stage, releasing the UNet to decode gains nothing. */
    p = base;
    p.a_unet = 2000 * M;
    CHECK(!pd_mem_plan_fit(&p, O + 3000 * M, tiled, 3));
    CHECK(p.stage_text && p.stage_vae && !p.stage_unet);
}

/* Weight estimates follow the packed format and the quantized type. */
static void test_weight_estimates(void) {
    PD_REQUIRE_GOLDEN();
    char path[1024];
    golden_model(path, sizeof path, "tiny-sd15.safetensors");
    pd_model_src *m = NULL;
    pd_error err = {0};
    if (pd_model_open(path, NULL, &m, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return;
    }
    pd_kernels kt;
    pd_kernels_init_prec(&kt, PD_ISA_AUTO, PD_PREC_FP32);
    size_t f32 = pd_mem_weights(m, PD_COMP_UNET, &kt);
    kt.wquant = PD_DTYPE_Q8_0;
    size_t q8 = pd_mem_weights(m, PD_COMP_UNET, &kt);
    kt.wquant = PD_DTYPE_Q4_0;
    size_t q4 = pd_mem_weights(m, PD_COMP_UNET, &kt);
    CHECK(f32 > 0 && q8 < f32 && q4 < q8);
    CHECK_EQ_INT(pd_mem_weights(m, PD_COMP_TEXT2, &kt), 0);   /* SD 1.5: none */
    pd_model_close(m);
}

/* The fp32 text encoders keep F16-stored Linear weights as F16 rows (half_rows): the
 * conditioning is bit for bit that of the fp32 pack (tiny SDXL: both encoders, pooled). */
static void test_half_rows_text(void) {
    PD_REQUIRE_GOLDEN();
    char path[1024];
    golden_model(path, sizeof path, "tiny-sdxl.safetensors");
    pd_ctx_params cp = pd_ctx_default_params();
    pd_ctx *ctx = NULL;
    pd_error err = {0};
    if (pd_ctx_load(path, &cp, &ctx, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return;
    }
    CHECK(ctx->text1.layers[0].fc1.dtype == PD_DTYPE_F16 && ctx->text1.layers[0].fc1.q_borrowed);
    CHECK(ctx->text1.layers[0].qkv.dtype == PD_DTYPE_F16 && !ctx->text1.layers[0].qkv.q_borrowed);   /* stacked copy */
    CHECK(ctx->text2.layers[0].qkv.dtype == PD_DTYPE_F16);
    /* the plan counts them at 2 bytes: the 2-D F16 tensors of the encoders (token
     * embeddings aside: read from the mapping, not counted) at 4 bytes less 2 */
    pd_kernels est = ctx->kt_exact;
    const size_t t16 = pd_mem_weights(ctx->src, PD_COMP_TEXT2, &est);
    est.half_rows = false;
    const size_t t32 = pd_mem_weights(ctx->src, PD_COMP_TEXT2, &est);
    size_t lin = 0;
    const pd_model_src *m = ctx->src;
    for (int f = 0; f < m->n_files; f++)
        for (int i = 0; i < m->files[f]->n_tensors; i++) {
            const pd_st_tensor *t = &m->files[f]->tensors[i];
            if (t->ndim == 2 && t->dtype == PD_DTYPE_F16 && pd_model_owner(m, m->files[f], t->name) == PD_COMP_TEXT2 &&
                !strstr(t->name, "token_embedding") && !strstr(t->name, "embed_tokens"))
                lin += (size_t)t->numel;
        }
    CHECK(lin > 0);
    CHECK_EQ_INT(t32 - t16, 2 * lin);
    pd_kernels packed = ctx->kt_exact;
    packed.half_rows = false;
    pd_clip e[2];
    memset(e, 0, sizeof e);
    CHECK_EQ_INT(pd_clip_load(&e[0], ctx->src, PD_COMP_TEXT1, &packed, ctx->pool, &err), PD_OK);
    CHECK_EQ_INT(pd_clip_load(&e[1], ctx->src, PD_COMP_TEXT2, &packed, ctx->pool, &err), PD_OK);
    if (e[0].layers && e[1].layers) {
        CHECK(e[0].layers[0].fc1.dtype == PD_DTYPE_F32);
        pd_text_params tp = pd_text_default_params();
        tp.prompt = "a (red:1.3) fox in the snow, BREAK oil painting";
        tp.clip_skip = 2;
        pd_cond *a = NULL, *b = NULL;
        CHECK_EQ_INT(pd_encode_text_with(ctx, &ctx->text1, &ctx->text2, &tp, &a, &err), PD_OK);
        CHECK_EQ_INT(pd_encode_text_with(ctx, &e[0], &e[1], &tp, &b, &err), PD_OK);
        if (a && b) {
            CHECK_EQ_INT(a->n_tokens, b->n_tokens);
            CHECK(memcmp(a->context, b->context, (size_t)a->n_tokens * (size_t)a->dim * sizeof(float)) == 0);
            CHECK(a->pooled_dim > 0 && memcmp(a->pooled, b->pooled, (size_t)a->pooled_dim * sizeof(float)) == 0);
        }
        pd_cond_free(a);
        pd_cond_free(b);
    }
    pd_clip_free(&e[0]);
    pd_clip_free(&e[1]);
    pd_ctx_free(ctx);
}

/* A tiled decode reports each tile as a "decode" step, and a callback can stop it. */
typedef struct tile_seen {
    int starts, steps, total, stop_at;
} tile_seen;

static bool on_decode(const pd_progress *p, void *user) {
    tile_seen *t = user;
    if (strcmp(p->stage, "decode") != 0) return true;
    if (p->step < 0) {
        t->starts++;
        t->total = p->n_steps;
        return true;
    }
    CHECK_EQ_INT(p->step, t->steps);
    CHECK_EQ_INT(p->n_steps, t->total);
    t->steps++;
    return t->stop_at == 0 || t->steps < t->stop_at;
}

static void test_tile_progress(void) {
    PD_REQUIRE_GOLDEN();
    pd_ctx *ctx = golden_ctx("tiny-sd15.safetensors", NULL);
    pd_error err = {0};
    if (!ctx) return;
    pd_gen_params gp = pd_gen_default_params();
    gp.prompt = "a long banner";
    gp.width = 704;   /* 88 latents: two fitted tiles across */
    gp.height = 64;
    gp.steps = 1;
    gp.seed = 5;
    gp.vae_tiling = PD_VAE_TILING_ON;
    tile_seen ts = {0, 0, 0, 0};
    gp.progress = on_decode;
    gp.progress_user = &ts;
    pd_result *r = NULL;
    CHECK_EQ_INT(pd_generate(ctx, &gp, &r, &err), PD_OK);
    CHECK_EQ_INT(ts.starts, 1);
    CHECK_EQ_INT(ts.total, 2);
    CHECK_EQ_INT(ts.steps, 2);
    pd_result_free(r);
    r = NULL;
    ts = (tile_seen){0, 0, 0, 1};
    CHECK_EQ_INT(pd_generate(ctx, &gp, &r, &err), PD_ERR_CANCELLED);
    CHECK_STR_CONTAINS(err.msg, "tile 1 of 2");
    CHECK(r == NULL);
    pd_ctx_free(ctx);
}

int main(void) {
    PD_RUN(test_staged_equals_resident);
    PD_RUN(test_plan_fit);
    PD_RUN(test_weight_estimates);
    PD_RUN(test_half_rows_text);
    PD_RUN(test_tile_progress);
    return pd_test_summary();
}
