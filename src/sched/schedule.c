/*
 * schedule.c - training schedules, timestep spacing, sigma tables and run plans with
 * diffusers v0.31 semantics (see schedule.h for the precision contract and traps).
 *
 * Reference: diffusers/src/diffusers/schedulers/scheduling_{euler_discrete,
 * euler_ancestral_discrete, heun_discrete, dpmsolver_multistep, ddim, lcm}.py
 * (set_timesteps, _convert_to_karras, _sigma_to_t, init_noise_sigma), numpy's
 * linspace/arange/interp and torch's CPU linspace/cumprod kernels.
 *
 * Every arithmetic step below is written as its own statement on purpose: each line is
 * one rounding of the reference (a numpy float64 op or a torch float32 op), and
 * keeping them apart stops compilers from fusing them (FP contraction).
 */
#include "sched/schedule.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One rounding per reference op: no fused multiply-add contraction, whatever the
 * -std/-march the file is built with. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* ---- names ---------------------------------------------------------------------- */

static const char *const sampler_names[PD_SAMPLER_COUNT] = {
    "euler", "euler_a", "heun", "dpm++2m", "ddim", "lcm",
};

const char *pd_sampler_kind_name(pd_sampler_kind k) {
    return (unsigned)k < PD_SAMPLER_COUNT ? sampler_names[k] : "?";
}

const char *pd_sigma_schedule_name(pd_sigma_schedule s) {
    return s == PD_SIGMAS_KARRAS ? "karras" : s == PD_SIGMAS_DEFAULT ? "default" : "?";
}

const char *pd_spacing_name(pd_spacing s) {
    switch (s) {
    case PD_SPACING_LEADING: return "leading";
    case PD_SPACING_LINSPACE: return "linspace";
    case PD_SPACING_TRAILING: return "trailing";
    }
    return "?";
}

pd_status pd_sampler_kind_parse(const char *name, pd_sampler_kind *out, pd_error *err) {
    if (name) {
        for (int k = 0; k < PD_SAMPLER_COUNT; k++) {
            if (strcmp(name, sampler_names[k]) == 0) {
                *out = (pd_sampler_kind)k;
                return PD_OK;
            }
        }
        if (strcmp(name, "euler_ancestral") == 0) {
            *out = PD_SAMPLER_EULER_A;
            return PD_OK;
        }
        if (strcmp(name, "dpmpp_2m") == 0) {
            *out = PD_SAMPLER_DPMPP_2M;
            return PD_OK;
        }
    }
    return pd_error_set(err, PD_ERR_INVALID_ARG,
                        "unknown sampler '%s' (expected euler, euler_a, heun, dpm++2m, ddim or lcm)",
                        name ? name : "(null)");
}

pd_status pd_sigma_schedule_parse(const char *name, pd_sigma_schedule *out, pd_error *err) {
    if (name && strcmp(name, "default") == 0) {
        *out = PD_SIGMAS_DEFAULT;
        return PD_OK;
    }
    if (name && strcmp(name, "karras") == 0) {
        *out = PD_SIGMAS_KARRAS;
        return PD_OK;
    }
    return pd_error_set(err, PD_ERR_INVALID_ARG,
                        "unknown scheduler '%s' (expected default or karras)",
                        name ? name : "(null)");
}

pd_status pd_spacing_parse(const char *name, pd_spacing *out, pd_error *err) {
    for (int s = PD_SPACING_LEADING; s <= PD_SPACING_TRAILING; s++) {
        if (name && strcmp(name, pd_spacing_name((pd_spacing)s)) == 0) {
            *out = (pd_spacing)s;
            return PD_OK;
        }
    }
    return pd_error_set(err, PD_ERR_INVALID_ARG,
                        "unknown timestep spacing '%s' (expected leading, linspace or trailing)",
                        name ? name : "(null)");
}

pd_status pd_prediction_parse(const char *name, pd_prediction *out, pd_error *err) {
    if (name && strcmp(name, "epsilon") == 0) {
        *out = PD_PREDICTION_EPSILON;
        return PD_OK;
    }
    if (name && strcmp(name, "v_prediction") == 0) {
        *out = PD_PREDICTION_V;
        return PD_OK;
    }
    if (name && strcmp(name, "sample") == 0)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "prediction type 'sample' is not supported");
    return pd_error_set(err, PD_ERR_INVALID_ARG,
                        "unknown prediction type '%s' (expected epsilon or v_prediction)",
                        name ? name : "(null)");
}

bool pd_sampler_supports(pd_sampler_kind k, pd_sigma_schedule s) {
    if ((unsigned)k >= PD_SAMPLER_COUNT) return false;
    if (s == PD_SIGMAS_DEFAULT) return true;
    if (s == PD_SIGMAS_KARRAS)
        return k == PD_SAMPLER_EULER || k == PD_SAMPLER_HEUN || k == PD_SAMPLER_DPMPP_2M;
    return false;
}

/* ---- config ----------------------------------------------------------------------- */

pd_sched_config pd_sched_config_default(pd_family family) {
    (void)family;   /* SD1, SD2 and SDXL ship the same scheduler config */
    pd_sched_config c;
    c.n_train = 1000;
    c.beta_start = 0.00085;
    c.beta_end = 0.012;
    c.beta_schedule = PD_BETAS_SCALED_LINEAR;
    c.prediction = PD_PREDICTION_EPSILON;
    c.spacing = PD_SPACING_LEADING;
    c.steps_offset = 1;
    c.lcm_original_steps = 50;
    c.lcm_timestep_scaling = 10.0;
    return c;
}

pd_status pd_sched_config_check(const pd_sched_config *c, pd_error *err) {
    if (c->n_train < 2 || c->n_train > PD_SCHED_MAX_TRAIN)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "num_train_timesteps %d outside [2, %d]",
                            c->n_train, PD_SCHED_MAX_TRAIN);
    if (!(c->beta_start > 0 && c->beta_start < 1) || !(c->beta_end > 0 && c->beta_end < 1))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "betas %g..%g outside (0, 1)",
                            c->beta_start, c->beta_end);
    if (c->beta_schedule != PD_BETAS_SCALED_LINEAR && c->beta_schedule != PD_BETAS_LINEAR)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "bad beta schedule %d", (int)c->beta_schedule);
    if (c->prediction != PD_PREDICTION_EPSILON && c->prediction != PD_PREDICTION_V)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "bad prediction type %d", (int)c->prediction);
    if ((unsigned)c->spacing > PD_SPACING_TRAILING)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "bad timestep spacing %d", (int)c->spacing);
    if (c->steps_offset < 0 || c->steps_offset >= c->n_train)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "steps_offset %d outside [0, %d)",
                            c->steps_offset, c->n_train);
    if (c->lcm_original_steps < 1 || c->lcm_original_steps > c->n_train)
        return pd_error_set(err, PD_ERR_INVALID_ARG,
                            "original_inference_steps %d outside [1, num_train_timesteps %d]",
                            c->lcm_original_steps, c->n_train);
    if (!(c->lcm_timestep_scaling > 0) || !isfinite(c->lcm_timestep_scaling))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "timestep_scaling %g must be > 0",
                            c->lcm_timestep_scaling);
    return PD_OK;
}

static pd_status json_int_field(const pd_json *obj, const char *key, int *dst, pd_error *err) {
    const pd_json *v = pd_json_get(obj, key);
    if (!v || v->type == PD_JSON_NULL) return PD_OK;
    int64_t x;
    if (!pd_json_as_int64(v, &x) || x < INT32_MIN || x > INT32_MAX)
        return pd_error_set(err, PD_ERR_FORMAT, "scheduler config: %s is not an integer", key);
    *dst = (int)x;
    return PD_OK;
}

static pd_status json_double_field(const pd_json *obj, const char *key, double *dst,
                                   pd_error *err) {
    const pd_json *v = pd_json_get(obj, key);
    if (!v || v->type == PD_JSON_NULL) return PD_OK;
    if (!pd_json_as_double(v, dst))
        return pd_error_set(err, PD_ERR_FORMAT, "scheduler config: %s is not a number", key);
    return PD_OK;
}

pd_status pd_sched_config_from_json(pd_sched_config *cfg, const pd_json *obj, pd_error *err) {
    if (!obj || obj->type != PD_JSON_OBJECT)
        return pd_error_set(err, PD_ERR_FORMAT, "scheduler config is not a JSON object");
    pd_sched_config c = *cfg;
    pd_status st;
    if ((st = json_int_field(obj, "num_train_timesteps", &c.n_train, err)) != PD_OK) return st;
    if ((st = json_double_field(obj, "beta_start", &c.beta_start, err)) != PD_OK) return st;
    if ((st = json_double_field(obj, "beta_end", &c.beta_end, err)) != PD_OK) return st;
    if ((st = json_int_field(obj, "steps_offset", &c.steps_offset, err)) != PD_OK) return st;
    if ((st = json_int_field(obj, "original_inference_steps", &c.lcm_original_steps, err)) != PD_OK)
        return st;
    if ((st = json_double_field(obj, "timestep_scaling", &c.lcm_timestep_scaling, err)) != PD_OK)
        return st;

    const pd_json *tb = pd_json_get(obj, "trained_betas");
    if (tb && tb->type != PD_JSON_NULL)
        return pd_error_set(err, PD_ERR_UNSUPPORTED,
                            "scheduler config: trained_betas is not supported");

    /* settings whose non-default values change the math: refuse rather than ignore */
    static const struct {
        const char *key, *want;
    } fixed_str[] = {
        {"interpolation_type", "linear"},
        {"timestep_type", "discrete"},
        {"final_sigmas_type", "zero"},
    };
    for (size_t i = 0; i < PD_COUNT(fixed_str); i++) {
        const char *v = pd_json_get_string(obj, fixed_str[i].key, NULL);
        if (v && strcmp(v, fixed_str[i].want) != 0)
            return pd_error_set(err, PD_ERR_UNSUPPORTED,
                                "scheduler config: %s '%s' is not supported (only '%s')",
                                fixed_str[i].key, v, fixed_str[i].want);
    }
    static const char *const off_flags[] = {"rescale_betas_zero_snr", "clip_sample", "thresholding",
                                            "use_exponential_sigmas", "use_beta_sigmas"};
    for (size_t i = 0; i < PD_COUNT(off_flags); i++) {
        bool on = false;
        if (pd_json_as_bool(pd_json_get(obj, off_flags[i]), &on) && on)
            return pd_error_set(err, PD_ERR_UNSUPPORTED, "scheduler config: %s is not supported",
                                off_flags[i]);
    }
    static const char *const null_keys[] = {"sigma_min", "sigma_max"};
    for (size_t i = 0; i < PD_COUNT(null_keys); i++) {
        const pd_json *v = pd_json_get(obj, null_keys[i]);
        if (v && v->type != PD_JSON_NULL)
            return pd_error_set(err, PD_ERR_UNSUPPORTED, "scheduler config: %s is not supported",
                                null_keys[i]);
    }

    const char *s = pd_json_get_string(obj, "beta_schedule", NULL);
    if (s) {
        if (strcmp(s, "scaled_linear") == 0) c.beta_schedule = PD_BETAS_SCALED_LINEAR;
        else if (strcmp(s, "linear") == 0) c.beta_schedule = PD_BETAS_LINEAR;
        else
            return pd_error_set(err, PD_ERR_UNSUPPORTED,
                                "scheduler config: beta_schedule '%s' is not supported", s);
    }
    s = pd_json_get_string(obj, "prediction_type", NULL);
    if (s && (st = pd_prediction_parse(s, &c.prediction, err)) != PD_OK) return st;
    s = pd_json_get_string(obj, "timestep_spacing", NULL);
    if (s && (st = pd_spacing_parse(s, &c.spacing, err)) != PD_OK) return st;

    if ((st = pd_sched_config_check(&c, err)) != PD_OK) return st;
    *cfg = c;
    return PD_OK;
}

double pd_sched_strength_from_float(float s) {
    if (!isfinite(s)) return (double)s;
    return round((double)s * 1e6) / 1e6;
}

/* ---- training tables -------------------------------------------------------------- */

/* torch.linspace(a, b, n, dtype=float32) as torch 1.13's AVX2 CPU kernel computes it:
 * step = (b - a) / (n - 1) in float; the first half counts up from a, the second half
 * down from b; whole chunks of 2x8 lanes get an fma'd base per 8 lanes plus k*step per
 * lane, the tail is per element (also fma'd: GCC contracts it in the AVX2 build). */
static void torch_linspace_f32(float a, float b, int n, float *out) {
    if (n == 1) {
        out[0] = a;
        return;
    }
    const float step = (b - a) / (float)(n - 1);
    const int halfway = n / 2;
    const int lanes = 8;
    const int n_vec = (n / (2 * lanes)) * (2 * lanes);
    for (int i = 0; i < n; i++) {
        int idx = i < n_vec ? i - i % lanes : i;   /* vector chunk base or the element */
        float base;
        if (idx < halfway) base = fmaf(step, (float)idx, a);
        else base = fmaf(-step, (float)(n - idx - 1), b);
        out[i] = i == idx ? base : fmaf((float)(i - idx), step, base);
    }
}

pd_status pd_sched_train_tables(const pd_sched_config *cfg, float *betas, float *alphas_cumprod,
                                float *sigmas, pd_error *err) {
    pd_status st = pd_sched_config_check(cfg, err);
    if (st != PD_OK) return st;
    const int n = cfg->n_train;
    float *b = malloc((size_t)n * sizeof(float));
    if (!b) return pd_error_set(err, PD_ERR_OOM, "out of memory for %d betas", n);
    if (cfg->beta_schedule == PD_BETAS_SCALED_LINEAR) {
        torch_linspace_f32((float)sqrt(cfg->beta_start), (float)sqrt(cfg->beta_end), n, b);
        for (int i = 0; i < n; i++) b[i] = b[i] * b[i];
    } else {
        torch_linspace_f32((float)cfg->beta_start, (float)cfg->beta_end, n, b);
    }
    double acc = 1.0;   /* torch.cumprod accumulates float32 input in double */
    for (int i = 0; i < n; i++) {
        float alpha = 1.0f - b[i];
        acc *= (double)alpha;
        float ac = (float)acc;
        if (betas) betas[i] = b[i];
        if (alphas_cumprod) alphas_cumprod[i] = ac;
        if (sigmas) {
            float one_minus = 1.0f - ac;
            float ratio = one_minus / ac;
            sigmas[i] = sqrtf(ratio);
        }
    }
    free(b);
    return PD_OK;
}

/* ---- numpy helpers (float64) ------------------------------------------------------ */

/* np.linspace(start, stop, num, endpoint) in float64. */
static void np_linspace(double start, double stop, int num, bool endpoint, double *out) {
    int div = endpoint ? num - 1 : num;
    double delta = stop - start;
    if (div > 0) {
        double step = delta / div;
        for (int i = 0; i < num; i++) {
            double y;
            if (step == 0) {
                y = (double)i / div;
                y = y * delta;
            } else {
                y = (double)i * step;
            }
            out[i] = y + start;
        }
    } else {
        for (int i = 0; i < num; i++) out[i] = (double)i * delta + start;
    }
    if (endpoint && num > 1) out[num - 1] = stop;
}

/* The first n entries of np.arange(start, 0, -step) (float step): numpy stores start,
 * start - step, then fills start + i * delta with delta = out[1] - out[0]. */
static void np_arange_down(double start, double step, int n, double *out) {
    out[0] = start;
    if (n < 2) return;
    out[1] = start + (-step);
    double delta = out[1] - out[0];
    for (int i = 2; i < n; i++) {
        double d = (double)i * delta;
        out[i] = start + d;
    }
}

/* np.interp(x, arange(len), fp) for one x, fp widened from float32. */
static double np_interp_index(double x, const float *fp, int len) {
    if (x < 0) return fp[0];
    if (x >= len - 1) return fp[len - 1];
    int j = (int)floor(x);
    if ((double)j == x) return fp[j];
    double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    double dx = x - (double)j;
    double y = slope * dx;
    return y + (double)fp[j];
}

/* _convert_to_karras: float64, rho = 7. */
static void karras_sigmas(double sigma_min, double sigma_max, int n, double *out) {
    const double rho = 7.0;
    double min_inv_rho = pow(sigma_min, 1.0 / rho);
    double max_inv_rho = pow(sigma_max, 1.0 / rho);
    double span = min_inv_rho - max_inv_rho;
    np_linspace(0.0, 1.0, n, true, out);   /* ramp */
    for (int i = 0; i < n; i++) {
        double r = out[i] * span;
        double base = max_inv_rho + r;
        out[i] = pow(base, rho);
    }
}

/* np.log of a positive normal float32 as numpy 1.x computes it for float32 arrays on
 * AVX2/AVX-512F machines (its SIMD kernel, not libm): x = m * 2^e with m in [0.5, 1),
 * m <= sqrt(1/2) doubled (e - 1), then log(1 + f) by a 5/5 rational minimax polynomial
 * in fma steps, plus e * ln2 (fma). Its error is up to ~4 ulp, and Karras timesteps
 * (interpolated between log-sigmas) inherit it, so we reproduce it. The coefficients
 * are numpy's NPY_COEFF_{P,Q}{0..5}_LOGf. */
static float np_logf(float x) {
    static const float P[6] = {0.0f, 9.999999999999998702752e-01f, 2.112677543073053063722e+00f,
                               1.480000633576506585156e+00f, 3.808837741388407920751e-01f,
                               2.589979117907922693523e-02f};
    static const float Q[6] = {1.0f, 2.612677543073109236779e+00f, 2.453006071784736363091e+00f,
                               9.864942958519418960339e-01f, 1.546476374983906719538e-01f,
                               5.875095403124574342950e-03f};
    if (!(x >= FLT_MIN) || !isfinite(x)) return logf(x);   /* never hit: sigmas are normal */
    uint32_t u;
    memcpy(&u, &x, 4);
    float e = (float)((int)(u >> 23) - 126);
    u = (u & 0x7fffffu) | (126u << 23);
    float m;
    memcpy(&m, &u, 4);
    if (m <= 0.707106781186547524400844362104849039f) {
        m = m + m;
        e = e - 1.0f;
    }
    float f = m - 1.0f;
    float num = fmaf(P[5], f, P[4]);
    float den = fmaf(Q[5], f, Q[4]);
    for (int k = 3; k >= 0; k--) {
        num = fmaf(num, f, P[k]);
        den = fmaf(den, f, Q[k]);
    }
    float poly = num / den;
    return fmaf(e, 0.693147180559945309417232121458176568f, poly);
}

/* _sigma_to_t(sigma, log_sigmas) under numpy 1.x promotion: log_sigmas is float32, so
 * the comparison and the weight w are float32; (1 - w) * low + w * high is float64. */
static double sigma_to_t(double sigma, const float *log_sigmas, int n_train) {
    double log_sigma_d = log(sigma > 1e-10 ? sigma : 1e-10);
    float log_sigma = (float)log_sigma_d;
    int count = 0;   /* log_sigmas increase, so the dists >= 0 form a prefix */
    while (count < n_train && log_sigma - log_sigmas[count] >= 0.0f) count++;
    int low_idx = count > 0 ? count - 1 : 0;
    if (low_idx > n_train - 2) low_idx = n_train - 2;
    int high_idx = low_idx + 1;
    float low = log_sigmas[low_idx];
    float high = log_sigmas[high_idx];
    float num = low - log_sigma;
    float den = low - high;
    float w = num / den;
    if (w < 0.0f) w = 0.0f;   /* np.clip (NaN passes through) */
    if (w > 1.0f) w = 1.0f;
    float one_minus_w = 1.0f - w;
    double a = (double)one_minus_w * (double)low_idx;
    double b = (double)w * (double)high_idx;
    return a + b;
}

/* ---- the plan --------------------------------------------------------------------- */

/* Timesteps of EulerDiscrete / EulerAncestral / Heun set_timesteps (float32 values). */
static void kdiff_timesteps(const pd_sched_config *c, int n, double *tmp, float *t) {
    const int N = c->n_train;
    switch (c->spacing) {
    case PD_SPACING_LINSPACE:
        np_linspace(0.0, (double)(N - 1), n, true, tmp);
        for (int i = 0; i < n; i++) t[i] = (float)tmp[n - 1 - i];
        break;
    case PD_SPACING_LEADING: {
        int ratio = N / n;
        for (int i = 0; i < n; i++) {
            float v = (float)((double)(n - 1 - i) * ratio);
            t[i] = v + (float)c->steps_offset;
        }
        break;
    }
    case PD_SPACING_TRAILING:
        np_arange_down((double)N, (double)N / n, n, tmp);
        for (int i = 0; i < n; i++) {
            float v = (float)nearbyint(tmp[i]);
            t[i] = v - 1.0f;
        }
        break;
    }
}

/* Integer timesteps of DDIMScheduler.set_timesteps. */
static void ddim_timesteps(const pd_sched_config *c, int n, double *tmp, int32_t *t) {
    const int N = c->n_train;
    switch (c->spacing) {
    case PD_SPACING_LINSPACE:
        np_linspace(0.0, (double)(N - 1), n, true, tmp);
        for (int i = 0; i < n; i++) t[i] = (int32_t)nearbyint(tmp[n - 1 - i]);
        break;
    case PD_SPACING_LEADING: {
        int ratio = N / n;
        for (int i = 0; i < n; i++) t[i] = (int32_t)((n - 1 - i) * ratio + c->steps_offset);
        break;
    }
    case PD_SPACING_TRAILING:
        np_arange_down((double)N, (double)N / n, n, tmp);
        for (int i = 0; i < n; i++) t[i] = (int32_t)nearbyint(tmp[i]) - 1;
        break;
    }
}

/* Integer timesteps of DPMSolverMultistepScheduler.set_timesteps (spacing rules of
 * arXiv:2305.08891 Table 2; lambda_min_clipped = -inf so last_timestep = N). */
static void dpm_timesteps(const pd_sched_config *c, int n, double *tmp, int32_t *t) {
    const int N = c->n_train;
    switch (c->spacing) {
    case PD_SPACING_LINSPACE:
        np_linspace(0.0, (double)(N - 1), n + 1, true, tmp);
        for (int i = 0; i < n; i++) t[i] = (int32_t)nearbyint(tmp[n - i]);
        break;
    case PD_SPACING_LEADING: {
        int ratio = N / (n + 1);
        for (int i = 0; i < n; i++) t[i] = (int32_t)((n - i) * ratio + c->steps_offset);
        break;
    }
    case PD_SPACING_TRAILING:
        np_arange_down((double)N, (double)N / n, n, tmp);
        for (int i = 0; i < n; i++) t[i] = (int32_t)nearbyint(tmp[i]) - 1;
        break;
    }
}

/* Integer timesteps of LCMScheduler.set_timesteps (strength 1: img2img slices the
 * result like every other scheduler). Returns false when LCM rejects n. */
static bool lcm_timesteps(const pd_sched_config *c, int n, double *tmp, int32_t *t) {
    const int orig = c->lcm_original_steps;
    const int k = c->n_train / orig;
    const int len = orig;   /* int(original_steps * 1.0) */
    if (n > orig || len / n < 1) return false;
    np_linspace(0.0, (double)len, n, false, tmp);
    for (int i = 0; i < n; i++) {
        int idx = (int)floor(tmp[i]);
        /* lcm_origin_timesteps reversed: entry idx is (len - idx) * k - 1 */
        t[i] = (int32_t)((len - idx) * k - 1);
    }
    return true;
}

static int max_steps(const pd_sched_config *c, pd_sampler_kind kind) {
    if (kind == PD_SAMPLER_LCM) return c->lcm_original_steps;
    if (kind == PD_SAMPLER_DPMPP_2M && c->spacing == PD_SPACING_LEADING) return c->n_train - 1;
    return c->n_train;
}

pd_status pd_sched_plan_new(const pd_sched_config *cfg, pd_sampler_kind kind,
                            pd_sigma_schedule schedule, int n_steps, double strength,
                            pd_sched_plan **out, pd_error *err) {
    *out = NULL;
    pd_status st = pd_sched_config_check(cfg, err);
    if (st != PD_OK) return st;
    if ((unsigned)kind >= PD_SAMPLER_COUNT)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "bad sampler kind %d", (int)kind);
    if (schedule != PD_SIGMAS_DEFAULT && schedule != PD_SIGMAS_KARRAS)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "bad sigma schedule %d", (int)schedule);
    if (!pd_sampler_supports(kind, schedule))
        return pd_error_set(err, PD_ERR_INVALID_ARG,
                            "sampler %s has no '%s' schedule (karras: euler, heun, dpm++2m)",
                            pd_sampler_kind_name(kind), pd_sigma_schedule_name(schedule));
    const int maxs = max_steps(cfg, kind);
    if (n_steps < 1 || n_steps > maxs)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "steps %d outside [1, %d] for sampler %s%s",
                            n_steps, maxs, pd_sampler_kind_name(kind),
                            kind == PD_SAMPLER_LCM ? " (original_inference_steps)" : "");
    if (!(strength > 0.0 && strength <= 1.0))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "strength %g outside (0, 1]", strength);
    /* diffusers' get_timesteps: init_timestep = min(int(steps * strength), steps) */
    double prod = (double)n_steps * strength;
    int init_timestep = (int)prod;
    if (init_timestep > n_steps) init_timestep = n_steps;
    int t_start = n_steps - init_timestep;
    if (t_start < 0) t_start = 0;
    if (n_steps - t_start < 1)
        return pd_error_set(err, PD_ERR_INVALID_ARG,
                            "strength %g leaves no step of %d (int(%d * %g) = 0); "
                            "raise strength or steps",
                            strength, n_steps, n_steps, strength);

    const int N = cfg->n_train;
    const int order = kind == PD_SAMPLER_HEUN ? 2 : 1;
    const int n_evals = order == 2 ? 2 * n_steps - 1 : n_steps;

    /* one block: struct, then arrays (floats first, then ints) */
    size_t bytes = sizeof(pd_sched_plan);
    bytes += (size_t)n_evals * sizeof(float);         /* timesteps */
    bytes += (size_t)(n_evals + 1) * sizeof(float);   /* sigmas */
    bytes += (size_t)n_evals * sizeof(float);         /* in_scale */
    bytes += (size_t)N * sizeof(float);               /* alphas_cumprod */
    bytes += (size_t)n_evals * sizeof(int32_t);       /* t_index */
    pd_sched_plan *p = calloc(1, bytes);
    size_t tmp_n = (size_t)(N > n_steps + 1 ? N : n_steps + 1);
    double *tmp = malloc(tmp_n * sizeof(double));
    double *sig_d = malloc(tmp_n * sizeof(double));
    float *train_sig = malloc((size_t)N * sizeof(float));
    float *log_sig = malloc((size_t)N * sizeof(float));
    float *t32 = malloc((size_t)(n_steps + 1) * sizeof(float));
    int32_t *ti = malloc((size_t)(n_steps + 1) * sizeof(int32_t));
    if (!p || !tmp || !sig_d || !train_sig || !log_sig || !t32 || !ti) {
        st = pd_error_set(err, PD_ERR_OOM, "out of memory for a %d-step plan", n_steps);
        goto fail;
    }
    float *fp = (float *)(p + 1);
    p->timesteps = fp;
    p->sigmas = p->timesteps + n_evals;
    p->in_scale = p->sigmas + n_evals + 1;
    p->alphas_cumprod = p->in_scale + n_evals;
    p->t_index = (int32_t *)(p->alphas_cumprod + N);
    p->cfg = *cfg;
    p->kind = kind;
    p->schedule = schedule;
    p->n_steps = n_steps;
    p->order = order;
    p->n_evals = n_evals;
    p->t_start = t_start;
    p->start = t_start * order;
    p->n_train = N;

    if ((st = pd_sched_train_tables(cfg, NULL, p->alphas_cumprod, train_sig, err)) != PD_OK)
        goto fail;
    for (int i = 0; i < N; i++) log_sig[i] = np_logf(train_sig[i]);   /* np.log, float32 */

    /* sigma (double) and timestep per step, before Heun's repetition */
    bool int_t = false;
    switch (kind) {
    case PD_SAMPLER_EULER:
    case PD_SAMPLER_EULER_A:
    case PD_SAMPLER_HEUN:
        kdiff_timesteps(cfg, n_steps, tmp, t32);
        for (int i = 0; i < n_steps; i++) sig_d[i] = np_interp_index((double)t32[i], train_sig, N);
        if (schedule == PD_SIGMAS_KARRAS) {
            karras_sigmas(sig_d[n_steps - 1], sig_d[0], n_steps, sig_d);
            for (int i = 0; i < n_steps; i++) t32[i] = (float)sigma_to_t(sig_d[i], log_sig, N);
        }
        break;
    case PD_SAMPLER_DPMPP_2M:
        int_t = true;
        dpm_timesteps(cfg, n_steps, tmp, ti);
        if (schedule == PD_SIGMAS_KARRAS) {
            karras_sigmas((double)train_sig[0], (double)train_sig[N - 1], n_steps, sig_d);
            for (int i = 0; i < n_steps; i++)
                ti[i] = (int32_t)nearbyint(sigma_to_t(sig_d[i], log_sig, N));
        }
        break;
    case PD_SAMPLER_DDIM:
        int_t = true;
        ddim_timesteps(cfg, n_steps, tmp, ti);
        break;
    case PD_SAMPLER_LCM:
        int_t = true;
        if (!lcm_timesteps(cfg, n_steps, tmp, ti)) {
            st = pd_error_set(err, PD_ERR_INVALID_ARG,
                              "steps %d > original_inference_steps %d for sampler lcm", n_steps,
                              cfg->lcm_original_steps);
            goto fail;
        }
        break;
    default:
        break;
    }
    if (int_t) {
        for (int i = 0; i < n_steps; i++) {
            if (ti[i] < 0 || ti[i] > N - 1) {
                st = pd_error_set(err, PD_ERR_INVALID_ARG,
                                  "steps %d with %s spacing gives timestep %d outside [0, %d]",
                                  n_steps, pd_spacing_name(cfg->spacing), (int)ti[i], N - 1);
                goto fail;
            }
            t32[i] = (float)ti[i];
        }
        bool has_sig = kind == PD_SAMPLER_DPMPP_2M && schedule == PD_SIGMAS_KARRAS;
        if (!has_sig)
            for (int i = 0; i < n_steps; i++) sig_d[i] = (double)train_sig[ti[i]];
    } else {
        for (int i = 0; i < n_steps; i++) {
            if (!(t32[i] >= 0.0f && t32[i] <= (float)(N - 1))) {
                st = pd_error_set(err, PD_ERR_INVALID_ARG,
                                  "steps %d with %s spacing gives timestep %g outside [0, %d]",
                                  n_steps, pd_spacing_name(cfg->spacing), (double)t32[i], N - 1);
                goto fail;
            }
        }
    }

    /* expand to evals: Heun repeats every interior timestep and sigma */
    for (int e = 0; e < n_evals; e++) {
        int s = order == 2 ? (e + 1) / 2 : e;
        p->timesteps[e] = t32[s];
        p->sigmas[e] = (float)sig_d[s];
        p->t_index[e] = int_t ? ti[s] : -1;
    }
    p->sigmas[n_evals] = 0.0f;

    /* init_noise_sigma and the model-input scaling */
    if (kind == PD_SAMPLER_EULER || kind == PD_SAMPLER_EULER_A || kind == PD_SAMPLER_HEUN) {
        float mx = 0.0f;
        for (int e = 0; e <= n_evals; e++) mx = p->sigmas[e] > mx ? p->sigmas[e] : mx;
        if (cfg->spacing == PD_SPACING_LEADING) {
            float sq = mx * mx;
            float s1 = sq + 1.0f;
            p->init_noise_sigma = sqrtf(s1);
        } else {
            p->init_noise_sigma = mx;
        }
        for (int e = 0; e < n_evals; e++) {
            float sg = p->sigmas[e];
            float sq = sg * sg;
            float s1 = sq + 1.0f;
            p->in_scale[e] = sqrtf(s1);
        }
    } else {
        p->init_noise_sigma = 1.0f;
        for (int e = 0; e < n_evals; e++) p->in_scale[e] = 1.0f;
    }

    free(tmp);
    free(sig_d);
    free(train_sig);
    free(log_sig);
    free(t32);
    free(ti);
    *out = p;
    return PD_OK;

fail:
    free(p);
    free(tmp);
    free(sig_d);
    free(train_sig);
    free(log_sig);
    free(t32);
    free(ti);
    return st;
}

void pd_sched_plan_free(pd_sched_plan *plan) {
    free(plan);
}
