/*
 * test_samplers.c - every sampler, step by step, against diffusers v0.31 (golden
 * sampler_<name>_{4,20}steps cases).
 *
 * Each case: initial_latents = randn(seed 7) * init_noise_sigma; eval i feeds
 * model_output (a golden INPUT, randn(seed 1000 + i)) to the step; noise drawn inside
 * steps comes from the seed-7 generator after the initial draw. We chain our own
 * latents (not the golden ones) through all evals and compare, at every eval: the
 * timestep, scale_model_input, the noise drawn (noise0), pred_original_sample (LCM:
 * denoised) and prev_sample, within TOL of max |ref| and, for every sampler but
 * DPM++ (see want_exact), bit for bit; the count of inexact values is printed.
 * Then img2img runs of every sampler (pipeline cases): the generator's draws,
 * add_noise to the first kept timestep, and every step from plan->start on, fed
 * with the reference model output (after CFG).
 */
#include <stdint.h>

#include "base/file.h"
#include "golden.h"
#include "sched/sampler.h"

#define TOL 1e-6

static double worst_rel;
static size_t n_inexact, n_compared;
/* Set while checking a sampler whose reference arithmetic is only IEEE +, -, *, /,
 * sqrt (and the bit-exact RNG): then every value must match bit for bit. DPM++ also
 * calls torch's log/exp, which come from MKL's VML and differ from libm by an ulp in
 * a few cases, so it is held to TOL only. */
static bool want_exact;

static void cmp(const char *what, const float *got, const float *ref, size_t n) {
    double e = golden_check(what, got, ref, n, TOL);
    if (e > worst_rel) worst_rel = e;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp(&got[i], &ref[i], 4) != 0;
    if (bad && getenv("PD_TEST_VERBOSE"))
        fprintf(stderr, "    %s: %zu/%zu not bit-exact\n", what, bad, n);
    if (bad && want_exact)
        PD_FAIL("%s: %zu of %zu values not bit-exact (expected exact: check op order and "
                "FP contraction)", what, bad, n);
    n_inexact += bad;
    n_compared += n;
}

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
    /* Python's json writes -Infinity (DPM lambda_min_clipped); RFC 8259 cannot. */
    for (char *q = text; (q = strstr(q, "-Infinity")) != NULL;) memcpy(q, "     null", 9);
    const pd_json *root = NULL;
    pd_status st = pd_json_parse(text, size, arena, &root, &err);
    free(text);
    if (st != PD_OK) {
        PD_FAIL("%s: %s", path, err.msg);
        return NULL;
    }
    return pd_json_get(root, "params");
}

static void run_case(const char *name) {
    pd_arena arena = {0};
    pd_arena_init(&arena, 0);
    pd_st_file *g = golden_open(name);
    const pd_json *params = case_params(name, &arena);
    pd_sched_plan *plan = NULL;
    pd_sampler *s = NULL;
    float *x = NULL, *in = NULL, *ref = NULL;
    pd_error err = {0};
    if (!g || !params) goto done;

    char sampler[32];
    snprintf(sampler, sizeof sampler, "%s", pd_json_get_string(params, "sampler", ""));
    bool karras = false;
    char *suffix = strstr(sampler, "_karras");
    if (suffix) {
        *suffix = '\0';
        karras = true;
    }
    pd_sampler_kind kind;
    if (pd_sampler_kind_parse(sampler, &kind, &err) != PD_OK) {
        PD_FAIL("%s: %s", name, err.msg);
        goto done;
    }
    pd_sched_config cfg = pd_sched_config_default(PD_FAMILY_SD1);
    if (pd_sched_config_from_json(&cfg, pd_json_get(params, "scheduler_config"), &err) != PD_OK) {
        PD_FAIL("%s: %s", name, err.msg);
        goto done;
    }
    int steps = (int)pd_json_get_int(params, "steps", 0);
    want_exact = kind != PD_SAMPLER_DPMPP_2M;
    if (pd_sched_plan_new(&cfg, kind, karras ? PD_SIGMAS_KARRAS : PD_SIGMAS_DEFAULT, steps, 1.0,
                          &plan, &err) != PD_OK) {
        PD_FAIL("%s: %s", name, err.msg);
        goto done;
    }
    int64_t n = 0;
    float *init = golden_f32(g, "initial_latents", &n);
    if (!init) goto done;
    if (pd_sampler_new(plan, (size_t)n, &s, &err) != PD_OK) {
        PD_FAIL("%s: %s", name, err.msg);
        free(init);
        goto done;
    }
    x = malloc((size_t)n * sizeof(float));
    in = malloc((size_t)n * sizeof(float));
    pd_rng rng;
    pd_rng_seed(&rng, 7);
    pd_rng_randn(&rng, x, (size_t)n);
    for (int64_t j = 0; j < n; j++) x[j] = x[j] * plan->init_noise_sigma;
    char what[160];
    snprintf(what, sizeof what, "%s initial_latents", name);
    cmp(what, x, init, (size_t)n);
    free(init);

    int64_t nt = 0;
    float *ts = golden_f32(g, "timesteps", &nt);
    if (ts) {
        CHECK_EQ_INT(nt, plan->n_evals);
        for (int i = 0; i < plan->n_evals && i < nt; i++)
            CHECK_MSG(ts[i] == plan->timesteps[i], "%s: timestep %d: %g vs %g", name, i,
                      (double)plan->timesteps[i], (double)ts[i]);
        free(ts);
    }

    for (int i = 0; i < plan->n_evals; i++) {
        char tn[96];
        snprintf(tn, sizeof tn, "step%03d.model_output", i);
        float *eps = golden_f32(g, tn, NULL);
        if (!eps) break;
        CHECK_EQ_INT(pd_sampler_next(s), i);
        pd_sampler_model_input(s, i, x, in);
        snprintf(tn, sizeof tn, "step%03d.scaled_model_input", i);
        if ((ref = golden_f32(g, tn, NULL))) {
            snprintf(what, sizeof what, "%s %s", name, tn);
            cmp(what, in, ref, (size_t)n);
            free(ref);
        }
        pd_sampler_step(s, i, x, eps, &rng, x);
        free(eps);

        snprintf(tn, sizeof tn, "step%03d.noise0", i);
        bool want_noise = pd_st_find(g, tn) != NULL;
        CHECK_MSG(want_noise == (pd_sampler_noise(s) != NULL), "%s eval %d: noise drawn %d, ref %d",
                  name, i, pd_sampler_noise(s) != NULL, want_noise);
        CHECK(want_noise == pd_sampler_draws_noise(plan, i));
        if (want_noise && pd_sampler_noise(s) && (ref = golden_f32(g, tn, NULL))) {
            snprintf(what, sizeof what, "%s %s", name, tn);
            cmp(what, pd_sampler_noise(s), ref, (size_t)n);
            free(ref);
        }
        const char *x0_names[] = {"pred_original_sample", "denoised"};
        for (int k = 0; k < 2; k++) {
            snprintf(tn, sizeof tn, "step%03d.%s", i, x0_names[k]);
            if (pd_st_find(g, tn) && (ref = golden_f32(g, tn, NULL))) {
                snprintf(what, sizeof what, "%s %s", name, tn);
                cmp(what, pd_sampler_denoised(s), ref, (size_t)n);
                free(ref);
            }
        }
        snprintf(tn, sizeof tn, "step%03d.prev_sample", i);
        if ((ref = golden_f32(g, tn, NULL))) {
            snprintf(what, sizeof what, "%s %s", name, tn);
            cmp(what, x, ref, (size_t)n);
            free(ref);
        }
    }
    CHECK_EQ_INT(pd_sampler_next(s), plan->n_evals);

done:
    free(x);
    free(in);
    pd_sampler_free(s);
    pd_sched_plan_free(plan);
    pd_st_close(g);
    pd_arena_free(&arena);
}

static void test_sampler_cases(void) {
    PD_REQUIRE_GOLDEN();
    static const char *const names[] = {"euler", "euler_a", "heun", "dpm++2m", "dpm++2m_karras",
                                        "ddim", "lcm"};
    worst_rel = 0;
    n_inexact = n_compared = 0;
    for (size_t k = 0; k < PD_COUNT(names); k++) {
        for (int steps = 4; steps <= 20; steps += 16) {
            char name[96];
            snprintf(name, sizeof name, "sampler_%s_%dsteps", names[k], steps);
            run_case(name);
        }
    }
    fprintf(stderr, "  samplers: worst relative error %.3g, %zu of %zu values not bit-exact\n",
            worst_rel, n_inexact, n_compared);
}

/* img2img: latents.start = add_noise(init_latents, initial_noise, timesteps[0]), then the
 * run starts at plan->start (DPM++: first order there). Golden pipeline cases give the
 * inputs of the first step's scheduler call: latents.start, step000.eps. */
static void test_img2img_start(void) {
    PD_REQUIRE_GOLDEN();
    static const struct {
        const char *name, *sampler;
        bool karras;
    } cases[] = {
        {"img2img_tiny-sd15_euler_64x64_strength0.5", "euler", false},
        {"img2img_tiny-sd15_euler_a_64x64_strength0.5", "euler_a", false},
        {"img2img_tiny-sd15_heun_64x64_strength0.5", "heun", false},
        {"img2img_tiny-sd15_dpm++2m_64x64_strength0.5", "dpm++2m", false},
        {"img2img_tiny-sd15_dpm++2m_karras_64x64_strength0.5", "dpm++2m", true},
        {"img2img_tiny-sd15_ddim_64x64_strength0.5", "ddim", false},
        {"img2img_tiny-sd15_lcm_64x64_strength0.5", "lcm", false},
        {"img2img_tiny-sdxl_euler_a_64x96_strength0.5", "euler_a", false},
    };
    worst_rel = 0;
    n_inexact = n_compared = 0;
    for (size_t c = 0; c < PD_COUNT(cases); c++) {
        pd_st_file *g = golden_open(cases[c].name);
        if (!g) continue;
        pd_sched_config cfg = pd_sched_config_default(PD_FAMILY_SD1);
        pd_sampler_kind kind;
        pd_error err = {0};
        pd_sched_plan *p = NULL;
        pd_sampler *s = NULL;
        CHECK(pd_sampler_kind_parse(cases[c].sampler, &kind, &err) == PD_OK);
        want_exact = kind != PD_SAMPLER_DPMPP_2M;
        int64_t n = 0;
        float *init = golden_f32(g, "init_latents", &n), *noise = golden_f32(g, "initial_noise", NULL);
        float *start = golden_f32(g, "latents.start", NULL);
        float *x = malloc((size_t)(n ? n : 1) * sizeof(float));
        if (!init || !noise || !start ||
            pd_sched_plan_new(&cfg, kind, cases[c].karras ? PD_SIGMAS_KARRAS : PD_SIGMAS_DEFAULT, 8,
                              0.5, &p, &err) != PD_OK ||
            pd_sampler_new(p, (size_t)n, &s, &err) != PD_OK) {
            PD_FAIL("%s: setup: %s", cases[c].name, err.msg);
            goto next;
        }
        CHECK_EQ_INT(p->t_start, 4);
        pd_sched_add_noise(p, p->start, init, noise, (size_t)n, x);
        char what[192];
        snprintf(what, sizeof what, "%s latents.start", cases[c].name);
        cmp(what, x, start, (size_t)n);
        /* the generator: seed 42, draws vae_encode.eps, then initial_noise, then the
         * scheduler noise of the steps */
        pd_arena arena = {0};
        pd_arena_init(&arena, 0);
        const pd_json *params = case_params(cases[c].name, &arena);
        pd_rng rng;
        pd_rng_seed(&rng, (uint64_t)pd_json_get_int(params, "seed", 42));
        pd_arena_free(&arena);
        float *vae_eps = golden_f32(g, "vae_encode.eps", NULL);
        if (vae_eps) {
            pd_rng_randn(&rng, x, (size_t)n);
            snprintf(what, sizeof what, "%s vae_encode.eps (rng)", cases[c].name);
            cmp(what, x, vae_eps, (size_t)n);
            free(vae_eps);
        }
        pd_rng_randn(&rng, x, (size_t)n);
        snprintf(what, sizeof what, "%s initial_noise (rng)", cases[c].name);
        cmp(what, x, noise, (size_t)n);
        pd_sched_add_noise(p, p->start, init, noise, (size_t)n, x);
        for (int i = p->start, k = 0; i < p->n_evals; i++, k++) {
            char tn[64];
            snprintf(tn, sizeof tn, "step%03d.model_input", k);
            float *mi = golden_f32(g, tn, NULL);
            snprintf(tn, sizeof tn, "step%03d.eps", k);
            float *eps = golden_f32(g, tn, NULL);
            snprintf(tn, sizeof tn, "step%03d.latents", k);
            float *lat = golden_f32(g, tn, NULL);
            if (mi && eps && lat) {
                float *in = malloc((size_t)n * sizeof(float));
                pd_sampler_model_input(s, i, x, in);
                snprintf(what, sizeof what, "%s step%03d.model_input", cases[c].name, k);
                cmp(what, in, mi, (size_t)n);
                free(in);
                pd_sampler_step(s, i, x, eps, &rng, x);
                snprintf(tn, sizeof tn, "scheduler_noise%03d", k);
                CHECK_MSG((pd_st_find(g, tn) != NULL) == (pd_sampler_noise(s) != NULL),
                          "%s eval %d: noise drawn %d", cases[c].name, i, pd_sampler_noise(s) != NULL);
                float *rn = pd_sampler_noise(s) ? golden_f32(g, tn, NULL) : NULL;
                if (rn) {
                    snprintf(what, sizeof what, "%s %s", cases[c].name, tn);
                    cmp(what, pd_sampler_noise(s), rn, (size_t)n);
                    free(rn);
                }
                snprintf(what, sizeof what, "%s step%03d.latents", cases[c].name, k);
                cmp(what, x, lat, (size_t)n);
            }
            free(mi);
            free(eps);
            free(lat);
        }
        CHECK_EQ_INT(pd_sampler_next(s), p->n_evals);
    next:
        free(init);
        free(noise);
        free(start);
        free(x);
        pd_sampler_free(s);
        pd_sched_plan_free(p);
        pd_st_close(g);
    }
    fprintf(stderr, "  img2img: worst relative error %.3g, %zu of %zu values not bit-exact\n",
            worst_rel, n_inexact, n_compared);
}

int main(void) {
    PD_RUN(test_sampler_cases);
    PD_RUN(test_img2img_start);
    return pd_test_summary();
}
