/*
 * test_sched.c - schedule tables against diffusers v0.31 (golden sched_* cases).
 *
 * sched_base: the training betas and alphas_cumprod (bit-exact) and the train sigmas
 * (the golden computes them in float64 from the float32 alphas_cumprod, diffusers -
 * and we - in float32 torch ops: within 1 ulp).
 * sched_<sampler>[_karras]_<spacing>: for 1, 4, 20 and 50 steps, the plan's timesteps,
 * sigmas (Heun: repeated), init_noise_sigma and (DDIM/LCM) alphas_cumprod at the
 * timesteps, each within MAX_ULP float32 ulps (expected: bit-exact). The scheduler
 * config is read from the case's JSON params through pd_sched_config_from_json.
 * Heun-Karras timesteps are float64 in the reference; the UNet receives them as
 * float32, which is what the plan holds, so they are compared after that cast.
 */
#include <stdint.h>

#include "base/file.h"
#include "golden.h"
#include "sched/schedule.h"

#define MAX_ULP 1

static int worst_ulp;

static int64_t ulp_diff(float a, float b) {
    if (a == b) return 0;
    if (isnan(a) || isnan(b)) return INT64_MAX;
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    int64_t la = ia < 0 ? (int64_t)INT32_MIN - ia : ia;   /* monotone integer line */
    int64_t lb = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return la > lb ? la - lb : lb - la;
}

/* Compares n floats within max_ulp; returns the worst ulp distance. */
static int64_t check_ulp(const char *what, const float *got, const float *ref, int64_t n,
                         int64_t max_ulp) {
    int64_t worst = 0, wi = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t d = ulp_diff(got[i], ref[i]);
        if (d > worst) {
            worst = d;
            wi = i;
        }
    }
    if (worst > max_ulp)
        PD_FAIL("%s: %lld ulp at [%lld]: got %.9g, ref %.9g", what, (long long)worst,
                (long long)wi, (double)got[wi], (double)ref[wi]);
    if (worst > worst_ulp && worst < INT32_MAX) worst_ulp = (int)worst;
    return worst;
}

/* Reads <case>.json into arena; returns its "params" object or NULL. */
static const pd_json *case_params(const char *case_name, pd_arena *arena) {
    char path[1024];
    snprintf(path, sizeof path, "%s/cases/%s.json", pd_test_golden_dir(), case_name);
    char *text = NULL;
    size_t size = 0;
    pd_error err = {0};
    if (pd_file_read_all(path, 16 << 20, &text, &size, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return NULL;
    }
    /* Python's json writes lambda_min_clipped = -Infinity (DPM cases), which RFC 8259
     * has no spelling for; it is not a field we read, so blank it to null. */
    for (char *q = text; (q = strstr(q, "-Infinity")) != NULL;) memcpy(q, "     null", 9);
    const pd_json *root = NULL;
    pd_status st = pd_json_parse(text, size, arena, &root, &err);
    free(text);
    if (st != PD_OK) {
        PD_FAIL("%s: %s", path, err.msg);
        return NULL;
    }
    const pd_json *params = pd_json_get(root, "params");
    if (!params) PD_FAIL("%s: no params", path);
    return params;
}

static void test_base_tables(void) {
    PD_REQUIRE_GOLDEN();
    pd_st_file *g = golden_open("sched_base");
    if (!g) return;
    pd_arena arena = {0};
    pd_arena_init(&arena, 0);
    const pd_json *params = case_params("sched_base", &arena);
    pd_sched_config cfg = pd_sched_config_default(PD_FAMILY_SD1);
    pd_error err = {0};
    if (params && pd_sched_config_from_json(&cfg, params, &err) != PD_OK)
        PD_FAIL("config: %s", err.msg);
    float *betas = malloc(1000 * sizeof(float)), *ac = malloc(1000 * sizeof(float));
    float *sig = malloc(1000 * sizeof(float));
    CHECK_EQ_INT(cfg.n_train, 1000);
    CHECK(pd_sched_train_tables(&cfg, betas, ac, sig, &err) == PD_OK);
    float *gb = golden_f32(g, "betas", NULL), *gac = golden_f32(g, "alphas_cumprod", NULL);
    float *gs = golden_f32(g, "train_sigmas", NULL);
    if (gb && gac && gs) {
        check_ulp("betas", betas, gb, 1000, 0);
        check_ulp("alphas_cumprod", ac, gac, 1000, 0);
        check_ulp("train_sigmas", sig, gs, 1000, 1);
    }
    free(gb);
    free(gac);
    free(gs);
    free(betas);
    free(ac);
    free(sig);
    pd_st_close(g);
    pd_arena_free(&arena);
}

static const char *const SAMPLERS[] = {"euler", "euler_a", "heun", "dpm++2m", "ddim", "lcm"};
static const char *const SPACINGS[] = {"leading", "linspace", "trailing"};
static const int STEPS[] = {1, 4, 20, 50};

/* One sched_* case: every step count it holds. */
static void run_table_case(const char *sampler, bool karras, const char *spacing) {
    char name[128];
    snprintf(name, sizeof name, "sched_%s%s_%s", sampler, karras ? "_karras" : "", spacing);
    char path[1024];
    snprintf(path, sizeof path, "%s/cases/%s.safetensors", pd_test_golden_dir(), name);
    struct stat sb;
    if (stat(path, &sb) != 0) return;   /* not every combination exists (lcm: leading) */

    pd_arena arena = {0};
    pd_arena_init(&arena, 0);
    pd_st_file *g = golden_open(name);
    const pd_json *params = case_params(name, &arena);
    pd_error err = {0};
    pd_sched_config cfg = pd_sched_config_default(PD_FAMILY_SD1);
    pd_sampler_kind kind;
    if (!g || !params) goto done;
    if (pd_sched_config_from_json(&cfg, params, &err) != PD_OK) {
        PD_FAIL("%s: config: %s", name, err.msg);
        goto done;
    }
    CHECK(pd_sampler_kind_parse(sampler, &kind, &err) == PD_OK);
    bool uk = false;
    pd_json_as_bool(pd_json_get(params, "use_karras_sigmas"), &uk);
    CHECK(uk == karras);
    for (size_t k = 0; k < PD_COUNT(STEPS); k++) {
        int n = STEPS[k];
        char tn[64], what[192];
        snprintf(tn, sizeof tn, "steps%d.timesteps", n);
        if (!pd_st_find(g, tn)) continue;
        pd_sched_plan *p = NULL;
        if (pd_sched_plan_new(&cfg, kind, karras ? PD_SIGMAS_KARRAS : PD_SIGMAS_DEFAULT, n, 1.0,
                              &p, &err) != PD_OK) {
            PD_FAIL("%s %d steps: %s", name, n, err.msg);
            continue;
        }
        int64_t nt = 0;
        float *ref = golden_f32(g, tn, &nt);
        if (ref) {
            CHECK_EQ_INT(nt, p->n_evals);
            snprintf(what, sizeof what, "%s %s", name, tn);
            if (nt == p->n_evals) check_ulp(what, p->timesteps, ref, nt, MAX_ULP);
            free(ref);
        }
        snprintf(tn, sizeof tn, "steps%d.sigmas", n);
        if (pd_st_find(g, tn) && (ref = golden_f32(g, tn, &nt))) {
            CHECK_EQ_INT(nt, p->n_evals + 1);
            snprintf(what, sizeof what, "%s %s", name, tn);
            if (nt == p->n_evals + 1) check_ulp(what, p->sigmas, ref, nt, MAX_ULP);
            free(ref);
        }
        snprintf(tn, sizeof tn, "steps%d.init_noise_sigma", n);
        if ((ref = golden_f32(g, tn, NULL))) {
            snprintf(what, sizeof what, "%s %s", name, tn);
            check_ulp(what, &p->init_noise_sigma, ref, 1, MAX_ULP);
            free(ref);
        }
        snprintf(tn, sizeof tn, "steps%d.alphas_cumprod_at_timesteps", n);
        if (pd_st_find(g, tn) && (ref = golden_f32(g, tn, &nt))) {
            float *got = malloc((size_t)p->n_evals * sizeof(float));
            for (int i = 0; i < p->n_evals; i++) got[i] = p->alphas_cumprod[p->t_index[i]];
            snprintf(what, sizeof what, "%s %s", name, tn);
            if (nt == p->n_evals) check_ulp(what, got, ref, nt, 0);
            free(got);
            free(ref);
        }
        pd_sched_plan_free(p);
    }
done:
    pd_st_close(g);
    pd_arena_free(&arena);
}

static void test_tables(void) {
    PD_REQUIRE_GOLDEN();
    worst_ulp = 0;
    for (size_t s = 0; s < PD_COUNT(SAMPLERS); s++)
        for (int karras = 0; karras <= 1; karras++)
            for (size_t sp = 0; sp < PD_COUNT(SPACINGS); sp++)
                run_table_case(SAMPLERS[s], karras, SPACINGS[sp]);
    fprintf(stderr, "  worst table error: %d ulp\n", worst_ulp);
}

/* The sampler cases and the pipelines carry the same tables: check them too. */
static void test_pipeline_tables(void) {
    PD_REQUIRE_GOLDEN();
    static const struct {
        const char *name;
        const char *sampler;
        bool karras;
        pd_spacing spacing;
        int steps;
        double strength;
    } cases[] = {
        {"txt2img_tiny-sd15_euler_a_64x64_cfg7.5", "euler_a", false, PD_SPACING_LEADING, 4, 1.0},
        {"turbo_txt2img_tiny-sd15_euler_a_trailing_64x64_cfg0_4steps", "euler_a", false,
         PD_SPACING_TRAILING, 4, 1.0},
        {"turbo_txt2img_tiny-sd15_euler_a_trailing_64x64_cfg0_1step", "euler_a", false,
         PD_SPACING_TRAILING, 1, 1.0},
        {"img2img_tiny-sd15_euler_a_64x64_strength0.5", "euler_a", false, PD_SPACING_LEADING, 8, 0.5},
        {"img2img_tiny-sd15_heun_64x64_strength0.5", "heun", false, PD_SPACING_LEADING, 8, 0.5},
        {"img2img_tiny-sd15_dpm++2m_karras_64x64_strength0.5", "dpm++2m", true, PD_SPACING_LEADING,
         8, 0.5},
        {"img2img_tiny-sd15_lcm_64x64_strength0.5", "lcm", false, PD_SPACING_LEADING, 8, 0.5},
        {"img2img_tiny-sd15_ddim_64x64_strength0.5", "ddim", false, PD_SPACING_LEADING, 8, 0.5},
        {"inpaint_tiny-sd15_euler_a_64x64_strength0.75", "euler_a", false, PD_SPACING_LEADING, 8,
         0.75},
        {"txt2img_tiny-sd15_dpm++2m_karras_64x64_cfg7.5_20steps", "dpm++2m", true,
         PD_SPACING_LEADING, 20, 1.0},
        {"lcm_txt2img_tiny-sd15-lcm-unet_64x64_gs8_4steps", "lcm", false, PD_SPACING_LEADING, 4, 1.0},
    };
    for (size_t c = 0; c < PD_COUNT(cases); c++) {
        pd_st_file *g = golden_open(cases[c].name);
        if (!g) continue;
        pd_sched_config cfg = pd_sched_config_default(PD_FAMILY_SD1);
        cfg.spacing = cases[c].spacing;
        pd_sampler_kind kind;
        pd_error err = {0};
        pd_sched_plan *p = NULL;
        CHECK(pd_sampler_kind_parse(cases[c].sampler, &kind, &err) == PD_OK);
        if (pd_sched_plan_new(&cfg, kind, cases[c].karras ? PD_SIGMAS_KARRAS : PD_SIGMAS_DEFAULT,
                              cases[c].steps, cases[c].strength, &p, &err) != PD_OK) {
            PD_FAIL("%s: %s", cases[c].name, err.msg);
            pd_st_close(g);
            continue;
        }
        char what[192];
        int64_t n = 0;
        float *ref = golden_f32(g, "timesteps", &n);
        if (ref) {
            CHECK_EQ_INT(n, pd_sched_plan_evals_to_run(p));
            snprintf(what, sizeof what, "%s timesteps", cases[c].name);
            if (n == pd_sched_plan_evals_to_run(p)) check_ulp(what, p->timesteps + p->start, ref, n, 0);
            free(ref);
        }
        if (pd_st_find(g, "scheduler.sigmas") && (ref = golden_f32(g, "scheduler.sigmas", &n))) {
            CHECK_EQ_INT(n, p->n_evals + 1);
            snprintf(what, sizeof what, "%s sigmas", cases[c].name);
            if (n == p->n_evals + 1) check_ulp(what, p->sigmas, ref, n, 0);
            free(ref);
        }
        if (pd_st_find(g, "init_noise_sigma") && (ref = golden_f32(g, "init_noise_sigma", NULL))) {
            snprintf(what, sizeof what, "%s init_noise_sigma", cases[c].name);
            check_ulp(what, &p->init_noise_sigma, ref, 1, 0);
            free(ref);
        }
        if (pd_st_find(g, "t_start") && (ref = golden_f32(g, "t_start", NULL))) {
            CHECK_EQ_INT(p->t_start, (int)ref[0]);
            free(ref);
        }
        pd_sched_plan_free(p);
        pd_st_close(g);
    }
}

/* The shipped scheduler configs of the golden models parse to the family defaults. */
static void test_model_configs(void) {
    PD_REQUIRE_GOLDEN();
    static const char *const models[] = {"tiny-sd15", "tiny-sdxl"};
    for (size_t m = 0; m < PD_COUNT(models); m++) {
        char rel[256], path[1024];
        snprintf(rel, sizeof rel, "%s/scheduler/scheduler_config.json", models[m]);
        golden_model(path, sizeof path, rel);
        char *text = NULL;
        size_t size = 0;
        pd_error err = {0};
        pd_arena arena = {0};
        pd_arena_init(&arena, 0);
        const pd_json *root = NULL;
        if (pd_file_read_all(path, 1 << 20, &text, &size, &err) != PD_OK ||
            pd_json_parse(text, size, &arena, &root, &err) != PD_OK) {
            PD_FAIL("%s: %s", path, err.msg);
        } else {
            pd_sched_config def = pd_sched_config_default(m ? PD_FAMILY_SDXL : PD_FAMILY_SD1);
            pd_sched_config c = def;
            c.n_train = 0;   /* must be read from the file */
            c.steps_offset = 0;
            if (pd_sched_config_from_json(&c, root, &err) != PD_OK) PD_FAIL("%s: %s", path, err.msg);
            CHECK_EQ_INT(c.n_train, def.n_train);
            CHECK(c.beta_start == def.beta_start && c.beta_end == def.beta_end);
            CHECK_EQ_INT(c.beta_schedule, def.beta_schedule);
            CHECK_EQ_INT(c.prediction, def.prediction);
            CHECK_EQ_INT(c.spacing, def.spacing);
            CHECK_EQ_INT(c.steps_offset, def.steps_offset);
        }
        free(text);
        pd_arena_free(&arena);
    }
}

int main(void) {
    PD_RUN(test_model_configs);
    PD_RUN(test_base_tables);
    PD_RUN(test_tables);
    PD_RUN(test_pipeline_tables);
    return pd_test_summary();
}
