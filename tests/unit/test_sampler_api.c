/*
 * test_sampler_api.c - the schedule/sampler API without golden data: argument checks
 * (steps 0 / negative / too many, strength 0 / 1 / out of range / too small, unknown
 * names, Karras where a sampler has none), plan shapes (Heun's 2 evals per step,
 * img2img starts, the trailing-spacing edge), config parsing, the RNG draw pattern,
 * the exact final steps (DPM++ and LCM return x0), add_noise, v-prediction against
 * epsilon-prediction, and reset/determinism.
 */
#include <stdint.h>

#include "base/json.h"
#include "sched/sampler.h"
#include "test.h"

static pd_sched_config sd_cfg(void) {
    return pd_sched_config_default(PD_FAMILY_SD1);
}

/* Expects plan creation to fail with code and a message containing needle. */
static void expect_plan_error(pd_sched_config cfg, pd_sampler_kind k, pd_sigma_schedule s,
                              int steps, double strength, pd_status code, const char *needle) {
    pd_sched_plan *p = (pd_sched_plan *)&cfg;   /* must be reset to NULL on failure */
    pd_error err = {0};
    pd_status st = pd_sched_plan_new(&cfg, k, s, steps, strength, &p, &err);
    CHECK_MSG(st == code, "%s steps %d strength %g: status %d, want %d (%s)",
              pd_sampler_kind_name(k), steps, strength, (int)st, (int)code, err.msg);
    CHECK(p == NULL);
    CHECK_STR_CONTAINS(err.msg, needle);
    pd_sched_plan_free(p);
}

static pd_sched_plan *plan_ok(pd_sched_config cfg, pd_sampler_kind k, pd_sigma_schedule s,
                              int steps, double strength) {
    pd_sched_plan *p = NULL;
    pd_error err = {0};
    if (pd_sched_plan_new(&cfg, k, s, steps, strength, &p, &err) != PD_OK)
        PD_FAIL("%s %d steps strength %g: %s", pd_sampler_kind_name(k), steps, strength, err.msg);
    return p;
}

static void test_steps_out_of_range(void) {
    pd_sched_config c = sd_cfg();
    for (int k = 0; k < PD_SAMPLER_COUNT; k++) {
        expect_plan_error(c, (pd_sampler_kind)k, PD_SIGMAS_DEFAULT, 0, 1.0, PD_ERR_INVALID_ARG,
                          "steps 0");
        expect_plan_error(c, (pd_sampler_kind)k, PD_SIGMAS_DEFAULT, -3, 1.0, PD_ERR_INVALID_ARG,
                          "steps -3");
        expect_plan_error(c, (pd_sampler_kind)k, PD_SIGMAS_DEFAULT, 1001, 1.0, PD_ERR_INVALID_ARG,
                          "steps 1001");
        expect_plan_error(c, (pd_sampler_kind)k, PD_SIGMAS_DEFAULT, INT32_MAX, 1.0,
                          PD_ERR_INVALID_ARG, "steps");
    }
    /* LCM: at most original_inference_steps */
    expect_plan_error(c, PD_SAMPLER_LCM, PD_SIGMAS_DEFAULT, 51, 1.0, PD_ERR_INVALID_ARG, "steps 51");
    pd_sched_plan_free(plan_ok(c, PD_SAMPLER_LCM, PD_SIGMAS_DEFAULT, 50, 1.0));
    /* DPM++ leading: N // (steps + 1) must stay >= 1 */
    expect_plan_error(c, PD_SAMPLER_DPMPP_2M, PD_SIGMAS_DEFAULT, 1000, 1.0, PD_ERR_INVALID_ARG,
                      "steps 1000");
    expect_plan_error(c, PD_SAMPLER_DPMPP_2M, PD_SIGMAS_DEFAULT, 999, 1.0, PD_ERR_INVALID_ARG,
                      "timestep 1000");
    pd_sched_plan_free(plan_ok(c, PD_SAMPLER_DPMPP_2M, PD_SIGMAS_DEFAULT, 998, 1.0));
    /* leading + steps_offset 1 at 1000 steps would use timestep 1000 */
    expect_plan_error(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, 1000, 1.0, PD_ERR_INVALID_ARG,
                      "timestep 1000");
    expect_plan_error(c, PD_SAMPLER_DDIM, PD_SIGMAS_DEFAULT, 1000, 1.0, PD_ERR_INVALID_ARG,
                      "timestep 1000");
    /* the largest valid counts of the other spacings work */
    c.spacing = PD_SPACING_TRAILING;
    for (int k = 0; k < PD_SAMPLER_COUNT; k++) {
        if (k == PD_SAMPLER_LCM) continue;
        pd_sched_plan *p = plan_ok(c, (pd_sampler_kind)k, PD_SIGMAS_DEFAULT, 1000, 1.0);
        if (p) CHECK_EQ_INT(p->timesteps[p->n_evals - 1], 0);
        pd_sched_plan_free(p);
    }
}

static void test_strength(void) {
    pd_sched_config c = sd_cfg();
    expect_plan_error(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, 20, 0.0, PD_ERR_INVALID_ARG,
                      "strength 0");
    expect_plan_error(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, 20, -0.5, PD_ERR_INVALID_ARG,
                      "strength -0.5");
    expect_plan_error(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, 20, 1.5, PD_ERR_INVALID_ARG,
                      "strength 1.5");
    expect_plan_error(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, 20, NAN, PD_ERR_INVALID_ARG,
                      "strength nan");
    /* int(20 * 0.04) = 0: nothing left to run */
    expect_plan_error(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, 20, 0.04, PD_ERR_INVALID_ARG,
                      "strength 0.04 leaves no step");
    pd_sched_plan *p = plan_ok(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, 20, 0.05);   /* 1 step */
    if (p) {
        CHECK_EQ_INT(p->t_start, 19);
        CHECK_EQ_INT(pd_sched_plan_evals_to_run(p), 1);
    }
    pd_sched_plan_free(p);
    p = plan_ok(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, 20, 1.0);
    if (p) CHECK_EQ_INT(p->start, 0);
    pd_sched_plan_free(p);
    /* diffusers' float64 product: int(10 * 0.7) = 7, int(100 * 0.29) = 28 */
    p = plan_ok(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, 10, 0.7);
    if (p) CHECK_EQ_INT(p->t_start, 3);
    pd_sched_plan_free(p);
    p = plan_ok(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, 100, 0.29);
    if (p) CHECK_EQ_INT(p->t_start, 72);
    pd_sched_plan_free(p);
    /* a float strength widened naively loses a step; the helper restores the decimal */
    CHECK_EQ_INT((int)(10 * (double)0.7f), 6);
    CHECK(pd_sched_strength_from_float(0.7f) == 0.7);
    CHECK(pd_sched_strength_from_float(1.0f) == 1.0);
    CHECK(pd_sched_strength_from_float(0.75f) == 0.75);
    /* Heun: the start is t_start * 2 and lands on a first-order eval */
    p = plan_ok(c, PD_SAMPLER_HEUN, PD_SIGMAS_DEFAULT, 8, 0.5);
    if (p) {
        CHECK_EQ_INT(p->n_evals, 15);
        CHECK_EQ_INT(p->t_start, 4);
        CHECK_EQ_INT(p->start, 8);
        CHECK_EQ_INT(pd_sched_plan_evals_to_run(p), 7);
    }
    pd_sched_plan_free(p);
}

static void test_names(void) {
    pd_error err = {0};
    pd_sampler_kind k;
    for (int i = 0; i < PD_SAMPLER_COUNT; i++) {
        CHECK(pd_sampler_kind_parse(pd_sampler_kind_name((pd_sampler_kind)i), &k, &err) == PD_OK);
        CHECK_EQ_INT(k, i);
    }
    CHECK(pd_sampler_kind_parse("euler_ancestral", &k, &err) == PD_OK && k == PD_SAMPLER_EULER_A);
    CHECK(pd_sampler_kind_parse("dpmpp_2m", &k, &err) == PD_OK && k == PD_SAMPLER_DPMPP_2M);
    const char *bad[] = {"", "Euler", "euler a", "dpm++", "plms", "lcm "};
    for (size_t i = 0; i < PD_COUNT(bad); i++) {
        CHECK(pd_sampler_kind_parse(bad[i], &k, &err) == PD_ERR_INVALID_ARG);
        CHECK_STR_CONTAINS(err.msg, "unknown sampler");
        CHECK_STR_CONTAINS(err.msg, "dpm++2m");
    }
    CHECK(pd_sampler_kind_parse(NULL, &k, &err) == PD_ERR_INVALID_ARG);
    pd_sigma_schedule s;
    CHECK(pd_sigma_schedule_parse("karras", &s, &err) == PD_OK && s == PD_SIGMAS_KARRAS);
    CHECK(pd_sigma_schedule_parse("default", &s, &err) == PD_OK && s == PD_SIGMAS_DEFAULT);
    CHECK(pd_sigma_schedule_parse("exponential", &s, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "'exponential'");
    pd_spacing sp;
    CHECK(pd_spacing_parse("trailing", &sp, &err) == PD_OK && sp == PD_SPACING_TRAILING);
    CHECK(pd_spacing_parse("middle", &sp, &err) == PD_ERR_INVALID_ARG);
    pd_prediction pr;
    CHECK(pd_prediction_parse("v_prediction", &pr, &err) == PD_OK && pr == PD_PREDICTION_V);
    CHECK(pd_prediction_parse("sample", &pr, &err) == PD_ERR_UNSUPPORTED);
    CHECK(pd_prediction_parse("x", &pr, &err) == PD_ERR_INVALID_ARG);

    /* Karras only where diffusers has it */
    pd_sched_config c = sd_cfg();
    const pd_sampler_kind no_karras[] = {PD_SAMPLER_EULER_A, PD_SAMPLER_DDIM, PD_SAMPLER_LCM};
    for (size_t i = 0; i < PD_COUNT(no_karras); i++)
        expect_plan_error(c, no_karras[i], PD_SIGMAS_KARRAS, 20, 1.0, PD_ERR_INVALID_ARG, "karras");
    expect_plan_error(c, (pd_sampler_kind)99, PD_SIGMAS_DEFAULT, 20, 1.0, PD_ERR_INVALID_ARG,
                      "sampler");
}

static void test_config_json(void) {
    static const char *json =
        "{\"_class_name\": \"EulerDiscreteScheduler\", \"beta_end\": 0.012, \"beta_schedule\": "
        "\"scaled_linear\", \"beta_start\": 0.00085, \"num_train_timesteps\": 1000, "
        "\"prediction_type\": \"v_prediction\", \"steps_offset\": 1, \"timestep_spacing\": "
        "\"trailing\", \"trained_betas\": null, \"rescale_betas_zero_snr\": false}";
    pd_arena arena = {0};
    pd_arena_init(&arena, 0);
    const pd_json *root = NULL;
    pd_error err = {0};
    CHECK(pd_json_parse(json, strlen(json), &arena, &root, &err) == PD_OK);
    pd_sched_config c = sd_cfg();
    CHECK(pd_sched_config_from_json(&c, root, &err) == PD_OK);
    CHECK_EQ_INT(c.prediction, PD_PREDICTION_V);
    CHECK_EQ_INT(c.spacing, PD_SPACING_TRAILING);
    CHECK_EQ_INT(c.n_train, 1000);

    static const struct {
        const char *json, *needle;
        pd_status code;
    } bad[] = {
        {"{\"trained_betas\": [0.1, 0.2]}", "trained_betas", PD_ERR_UNSUPPORTED},
        {"{\"beta_schedule\": \"squaredcos_cap_v2\"}", "squaredcos_cap_v2", PD_ERR_UNSUPPORTED},
        {"{\"rescale_betas_zero_snr\": true}", "zero_snr", PD_ERR_UNSUPPORTED},
        {"{\"timestep_spacing\": \"sideways\"}", "sideways", PD_ERR_INVALID_ARG},
        {"{\"num_train_timesteps\": 1.5}", "num_train_timesteps", PD_ERR_FORMAT},
        {"{\"num_train_timesteps\": 1}", "num_train_timesteps 1", PD_ERR_INVALID_ARG},
        {"{\"beta_start\": -1}", "betas", PD_ERR_INVALID_ARG},
        {"[1, 2]", "not a JSON object", PD_ERR_FORMAT},
        {"{\"interpolation_type\": \"log_linear\"}", "log_linear", PD_ERR_UNSUPPORTED},
        {"{\"timestep_type\": \"continuous\"}", "continuous", PD_ERR_UNSUPPORTED},
        {"{\"final_sigmas_type\": \"sigma_min\"}", "sigma_min", PD_ERR_UNSUPPORTED},
        {"{\"clip_sample\": true}", "clip_sample", PD_ERR_UNSUPPORTED},
        {"{\"sigma_max\": 80.0}", "sigma_max", PD_ERR_UNSUPPORTED},
        {"{\"prediction_type\": \"sample\"}", "sample", PD_ERR_UNSUPPORTED},
    };
    for (size_t i = 0; i < PD_COUNT(bad); i++) {
        pd_sched_config c2 = sd_cfg();
        CHECK(pd_json_parse(bad[i].json, strlen(bad[i].json), &arena, &root, &err) == PD_OK);
        pd_status st = pd_sched_config_from_json(&c2, root, &err);
        CHECK_MSG(st == bad[i].code, "%s: status %d", bad[i].json, (int)st);
        CHECK_STR_CONTAINS(err.msg, bad[i].needle);
        CHECK_EQ_INT(c2.n_train, 1000);   /* unchanged on failure */
    }
    pd_arena_free(&arena);
}

static void test_plan_shapes(void) {
    pd_sched_config c = sd_cfg();
    /* Heun: 2 * steps - 1 evals, interior timesteps repeated, sigmas end at 0 */
    pd_sched_plan *p = plan_ok(c, PD_SAMPLER_HEUN, PD_SIGMAS_DEFAULT, 4, 1.0);
    if (p) {
        CHECK_EQ_INT(p->n_evals, 7);
        CHECK_EQ_INT(p->order, 2);
        const float want[7] = {751, 501, 501, 251, 251, 1, 1};
        for (int i = 0; i < 7; i++) CHECK(p->timesteps[i] == want[i]);
        CHECK(p->sigmas[1] == p->sigmas[2] && p->sigmas[7] == 0.0f);
    }
    pd_sched_plan_free(p);
    /* the README's rules: leading Euler 1 step uses t = 1; DPM++ 4 steps are 801..201;
     * Turbo trailing 1 and 4 steps */
    p = plan_ok(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, 1, 1.0);
    if (p) CHECK(p->timesteps[0] == 1.0f);
    pd_sched_plan_free(p);
    p = plan_ok(c, PD_SAMPLER_DPMPP_2M, PD_SIGMAS_DEFAULT, 4, 1.0);
    if (p) CHECK(p->timesteps[0] == 801.0f && p->timesteps[3] == 201.0f && p->init_noise_sigma == 1.0f);
    pd_sched_plan_free(p);
    c.spacing = PD_SPACING_TRAILING;
    p = plan_ok(c, PD_SAMPLER_EULER_A, PD_SIGMAS_DEFAULT, 4, 1.0);
    if (p) {
        const float want[4] = {999, 749, 499, 249};
        for (int i = 0; i < 4; i++) CHECK(p->timesteps[i] == want[i]);
        CHECK(p->init_noise_sigma == p->sigmas[0]);   /* sigma_max, not sqrt(s^2 + 1) */
    }
    pd_sched_plan_free(p);
    /* trailing at 61 steps: numpy's arange would add a 62nd entry (timestep -1); we keep
     * 61, all in range and strictly decreasing */
    int odd[] = {61, 103, 998};
    for (size_t k = 0; k < PD_COUNT(odd); k++) {
        p = plan_ok(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, odd[k], 1.0);
        if (!p) continue;
        CHECK_EQ_INT(p->n_evals, odd[k]);
        for (int i = 1; i < p->n_evals; i++) CHECK(p->timesteps[i] < p->timesteps[i - 1]);
        CHECK(p->timesteps[p->n_evals - 1] >= 0.0f);
        pd_sched_plan_free(p);
    }
    /* Karras sigmas decrease from sigma_max and reach sigma_min */
    c = sd_cfg();
    p = plan_ok(c, PD_SAMPLER_DPMPP_2M, PD_SIGMAS_KARRAS, 30, 1.0);
    if (p) {
        for (int i = 1; i < p->n_evals; i++) CHECK(p->sigmas[i] < p->sigmas[i - 1]);
        CHECK_NEAR(p->sigmas[0], 14.6146, 1e-3);
        CHECK_NEAR(p->sigmas[p->n_evals - 1], 0.0291675, 1e-6);
        CHECK(p->sigmas[p->n_evals] == 0.0f);
    }
    pd_sched_plan_free(p);
}

static void fill(float *v, size_t n, uint64_t seed) {
    pd_rng r;
    pd_rng_seed(&r, seed);
    pd_rng_randn(&r, v, n);
}

/* Runs a whole schedule with a fake model (eps = 0.1 * x + c) and returns the number
 * of model evaluations and steps that drew noise. */
static void run_fake(const pd_sched_plan *p, pd_sampler *s, float *x, size_t n, pd_rng *rng,
                     int *evals, int *draws) {
    float *in = malloc(n * sizeof(float)), *eps = malloc(n * sizeof(float));
    *evals = *draws = 0;
    for (int i = p->start; i < p->n_evals; i++) {
        pd_sampler_model_input(s, i, x, in);
        for (size_t j = 0; j < n; j++) eps[j] = 0.1f * in[j] + 0.01f * (float)(j % 7);
        pd_sampler_step(s, i, x, eps, rng, x);
        (*evals)++;
        *draws += pd_sampler_noise(s) != NULL;
        CHECK(pd_sampler_draws_noise(p, i) == (pd_sampler_noise(s) != NULL));
    }
    free(in);
    free(eps);
}

static void test_eval_and_draw_counts(void) {
    const size_t n = 37;   /* not a multiple of 16: exercises the RNG tail rule */
    pd_sched_config c = sd_cfg();
    for (int k = 0; k < PD_SAMPLER_COUNT; k++) {
        pd_sched_plan *p = plan_ok(c, (pd_sampler_kind)k, PD_SIGMAS_DEFAULT, 6, 1.0);
        pd_sampler *s = NULL;
        pd_error err = {0};
        if (!p || pd_sampler_new(p, n, &s, &err) != PD_OK) {
            PD_FAIL("setup %d: %s", k, err.msg);
            pd_sched_plan_free(p);
            continue;
        }
        float x[37], x2[37];
        fill(x, n, 1);
        for (size_t j = 0; j < n; j++) x[j] *= p->init_noise_sigma;
        memcpy(x2, x, sizeof x);
        pd_rng rng, rng_ref;
        pd_rng_seed(&rng, 5);
        rng_ref = rng;
        int evals, draws;
        run_fake(p, s, x, n, &rng, &evals, &draws);
        CHECK_EQ_INT(evals, k == PD_SAMPLER_HEUN ? 11 : 6);
        int want_draws = k == PD_SAMPLER_EULER_A ? 6 : k == PD_SAMPLER_LCM ? 5 : 0;
        CHECK_EQ_INT(draws, want_draws);
        /* the generator advanced by exactly want_draws tensors of n normals */
        float tmp[37];
        for (int d = 0; d < want_draws; d++) pd_rng_randn(&rng_ref, tmp, n);
        CHECK(memcmp(rng.mt, rng_ref.mt, sizeof rng.mt) == 0 && rng.mti == rng_ref.mti);
        for (size_t j = 0; j < n; j++) CHECK(isfinite(x[j]));
        /* reset + same inputs = same result, bit for bit */
        pd_sampler_reset(s);
        CHECK_EQ_INT(pd_sampler_next(s), p->start);
        pd_rng_seed(&rng, 5);
        run_fake(p, s, x2, n, &rng, &evals, &draws);
        CHECK(memcmp(x, x2, sizeof x) == 0);
        pd_sampler_free(s);
        pd_sched_plan_free(p);
    }
}

/* DPM++ (final sigma 0) and LCM (no noise at the end) return their x0 exactly. */
static void test_final_step_is_x0(void) {
    const size_t n = 20;
    pd_sched_config c = sd_cfg();
    const pd_sampler_kind kinds[] = {PD_SAMPLER_DPMPP_2M, PD_SAMPLER_LCM, PD_SAMPLER_EULER};
    for (size_t k = 0; k < PD_COUNT(kinds); k++) {
        pd_sched_plan *p = plan_ok(c, kinds[k], PD_SIGMAS_DEFAULT, 3, 1.0);
        pd_sampler *s = NULL;
        pd_error err = {0};
        if (!p || pd_sampler_new(p, n, &s, &err) != PD_OK) {
            pd_sched_plan_free(p);
            PD_FAIL("setup");
            continue;
        }
        CHECK(pd_sampler_denoised(s) == NULL);
        float x[20], eps[20];
        fill(x, n, 3);
        fill(eps, n, 4);
        pd_rng rng;
        pd_rng_seed(&rng, 9);
        for (int i = 0; i < p->n_evals; i++) pd_sampler_step(s, i, x, eps, &rng, x);
        CHECK(memcmp(x, pd_sampler_denoised(s), sizeof x) == 0);
        pd_sampler_free(s);
        pd_sched_plan_free(p);
    }
}

static void test_add_noise(void) {
    pd_sched_config c = sd_cfg();
    float x0[3] = {1.0f, -2.0f, 0.5f}, noise[3] = {0.25f, 1.0f, -1.0f}, out[3];
    pd_sched_plan *p = plan_ok(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, 10, 0.6);
    if (p) {
        pd_sched_add_noise(p, p->start, x0, noise, 3, out);
        for (int j = 0; j < 3; j++) CHECK(out[j] == x0[j] + noise[j] * p->sigmas[p->start]);
    }
    pd_sched_plan_free(p);
    p = plan_ok(c, PD_SAMPLER_DDIM, PD_SIGMAS_DEFAULT, 10, 0.6);
    if (p) {
        float a = p->alphas_cumprod[p->t_index[p->start]];
        pd_sched_add_noise(p, p->start, x0, noise, 3, out);
        for (int j = 0; j < 3; j++)
            CHECK_NEAR(out[j], sqrt(a) * x0[j] + sqrt(1.0 - a) * noise[j], 1e-6);
    }
    pd_sched_plan_free(p);
    p = plan_ok(c, PD_SAMPLER_DPMPP_2M, PD_SIGMAS_DEFAULT, 10, 0.6);
    if (p) {
        double sg = p->sigmas[p->start], al = 1.0 / sqrt(sg * sg + 1.0);
        memcpy(out, x0, sizeof out);
        pd_sched_add_noise(p, p->start, out, noise, 3, out);   /* in place */
        for (int j = 0; j < 3; j++) CHECK_NEAR(out[j], al * x0[j] + sg * al * noise[j], 1e-6);
    }
    pd_sched_plan_free(p);
}

/* max |a - b| / max |b| (plain loops: aarch64 GCC 12 crashes vectorising an fmax
 * reduction here) */
static double rel_diff(const float *a, const float *b, size_t n) {
    double scale = 0, diff = 0;
    for (size_t j = 0; j < n; j++) {
        double m = fabs((double)b[j]), d = fabs((double)a[j] - (double)b[j]);
        if (m > scale) scale = m;
        if (d > diff) diff = d;
    }
    return scale > 0 ? diff / scale : diff;
}

/* A v-predicting model that is the exact conversion of an epsilon model must give the
 * same trajectory (up to float rounding), for every sampler. */
static void test_v_prediction(void) {
    const size_t n = 64;
    for (int k = 0; k < PD_SAMPLER_COUNT; k++) {
        pd_sched_config ce = sd_cfg(), cv = sd_cfg();
        cv.prediction = PD_PREDICTION_V;
        pd_sched_plan *pe = plan_ok(ce, (pd_sampler_kind)k, PD_SIGMAS_DEFAULT, 5, 1.0);
        pd_sched_plan *pv = plan_ok(cv, (pd_sampler_kind)k, PD_SIGMAS_DEFAULT, 5, 1.0);
        pd_sampler *se = NULL, *sv = NULL;
        pd_error err = {0};
        if (!pe || !pv || pd_sampler_new(pe, n, &se, &err) != PD_OK ||
            pd_sampler_new(pv, n, &sv, &err) != PD_OK) {
            PD_FAIL("setup");
            goto next;
        }
        float xe[64], xv[64], eps[64], v[64], in[64];
        fill(xe, n, 11);
        for (size_t j = 0; j < n; j++) xe[j] *= pe->init_noise_sigma;
        memcpy(xv, xe, sizeof xe);
        pd_rng re, rv;
        pd_rng_seed(&re, 3);
        pd_rng_seed(&rv, 3);
        double worst = 0;
        for (int i = 0; i < pe->n_evals; i++) {
            pd_sampler_model_input(se, i, xe, in);
            fill(eps, n, 100 + (uint64_t)i);
            /* the model's view: x_t = in = sqrt(a) x0 + sqrt(1 - a) eps, with a from the
             * plan (sigma for the k-diffusion samplers, alphas_cumprod for DDIM/LCM) */
            double a;
            if (pe->t_index[i] >= 0 && k != PD_SAMPLER_DPMPP_2M) {
                a = pe->alphas_cumprod[pe->t_index[i]];
            } else {
                double sg = pe->sigmas[i];
                a = 1.0 / (sg * sg + 1.0);
            }
            for (size_t j = 0; j < n; j++) {
                double x0 = (in[j] - sqrt(1.0 - a) * eps[j]) / sqrt(a);
                v[j] = (float)(sqrt(a) * eps[j] - sqrt(1.0 - a) * x0);
            }
            pd_sampler_step(se, i, xe, eps, &re, xe);
            pd_sampler_step(sv, i, xv, v, &rv, xv);
            worst = fmax(worst, rel_diff(xv, xe, n));
        }
        CHECK_MSG(worst < 1e-4, "%s: v-prediction differs from epsilon by %.3g",
                  pd_sampler_kind_name((pd_sampler_kind)k), worst);
    next:
        pd_sampler_free(se);
        pd_sampler_free(sv);
        pd_sched_plan_free(pe);
        pd_sched_plan_free(pv);
    }
}

static void test_sampler_new_errors(void) {
    pd_sched_config c = sd_cfg();
    pd_sched_plan *p = plan_ok(c, PD_SAMPLER_EULER, PD_SIGMAS_DEFAULT, 4, 1.0);
    pd_sampler *s = (pd_sampler *)p;
    pd_error err = {0};
    CHECK(pd_sampler_new(p, 0, &s, &err) == PD_ERR_INVALID_ARG);
    CHECK(s == NULL);
    CHECK(pd_sampler_new(NULL, 4, &s, &err) == PD_ERR_INVALID_ARG);
    pd_sampler_free(NULL);
    pd_sched_plan_free(NULL);
    /* model input of DDIM/LCM/DPM is the latents themselves */
    pd_sched_plan *pd = plan_ok(c, PD_SAMPLER_DDIM, PD_SIGMAS_DEFAULT, 4, 1.0);
    if (pd && pd_sampler_new(pd, 3, &s, &err) == PD_OK) {
        float x[3] = {1, 2, 3}, o[3];
        pd_sampler_model_input(s, 0, x, o);
        CHECK(memcmp(x, o, sizeof x) == 0);
        pd_sampler_free(s);
    }
    pd_sched_plan_free(pd);
    pd_sched_plan_free(p);
}

int main(void) {
    PD_RUN(test_steps_out_of_range);
    PD_RUN(test_strength);
    PD_RUN(test_names);
    PD_RUN(test_config_json);
    PD_RUN(test_plan_shapes);
    PD_RUN(test_eval_and_draw_counts);
    PD_RUN(test_final_step_is_x0);
    PD_RUN(test_add_noise);
    PD_RUN(test_v_prediction);
    PD_RUN(test_sampler_new_errors);
    return pd_test_summary();
}
