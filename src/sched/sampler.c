/*
 * sampler.c - Euler, Euler-ancestral, Heun, DPM++ 2M, DDIM and LCM steps with
 * diffusers v0.31 semantics, element by element in float32.
 *
 * Reference: diffusers/src/diffusers/schedulers/scheduling_euler_discrete.py,
 * scheduling_euler_ancestral_discrete.py, scheduling_heun_discrete.py,
 * scheduling_dpmsolver_multistep.py (dpmsolver++, midpoint, order 2),
 * scheduling_ddim.py (eta 0), scheduling_lcm.py; step() and scale_model_input().
 *
 * Invariants: one torch op = one float32 rounding. Scalars (sigmas, alphas, the
 * coefficients) are 0-d float32 tensors in the reference, so they are floats here,
 * each op in its own statement (no FP contraction; see the pragma and schedule.c).
 * Python-number / tensor is torch's reciprocal(tensor) * number (Tensor.__rtruediv__);
 * tensor / 0-d tensor is a true division (no reciprocal trick in torch 1.13's CPU
 * kernel: checked bit for bit against the golden steps).
 *
 * Known difference: DPM++'s lambda = log(alpha) - log(sigma) and exp(-h) use torch's
 * float32 log/exp, which come from MKL VML (not reproducible); libm's logf/expf
 * differ from it by 1 ulp in near-halfway cases, which moves a step's coefficients by
 * an ulp: DPM++ results agree to ~6e-7 relative instead of bit for bit. Every other
 * sampler uses only +, -, *, /, sqrt and matches the reference exactly.
 *
 * Traps:
 *   - Euler/Heun derivative = (x - x0) / sigma, not eps: the float32 round trip
 *     through x0 is part of the reference result.
 *   - Heun's 2nd-order eval predicts x0 with the NEXT sigma, averages the two
 *     derivatives and restarts from the sample stored at its first-order eval.
 *   - DPM++ 2M: first order on the first eval of a run (also an img2img start) and on
 *     the last (final sigma 0: the result is exactly x0); second order in between.
 *   - DDIM's previous timestep is t - N // steps whatever the spacing (a diffusers
 *     quirk kept for parity); below 0 it uses alphas_cumprod[0] (set_alpha_to_one off).
 *   - LCM: no noise at the last eval of the schedule; the result is then "denoised".
 */
#include "sched/sampler.h"

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

struct pd_sampler {
    const pd_sched_plan *plan;
    size_t n;
    int next;             /* next eval index */
    float *x0;            /* [n] last pred_original_sample / denoised */
    float *x0_prev;       /* [n] DPM++: the previous eval's x0 (model_outputs[-2]) */
    bool have_prev;       /* DPM++: lower_order_nums >= 1 */
    float *noise;         /* [n] Euler-a / LCM */
    bool drew_noise;
    /* Heun's first-order state (diffusers: prev_derivative, dt, sample) */
    float *h_deriv;       /* [n] */
    float *h_sample;      /* [n] */
    float h_dt;
    bool h_second;        /* the next step is the 2nd-order correction */
    bool stepped;
};

/* tensor / 0-d tensor in torch's CPU kernel: a true float32 division. */
static inline float tdiv(float a, float b) {
    return a / b;
}

/* python_number / 0-d tensor = reciprocal(tensor) * number. */
static inline float rdiv(float number, float t) {
    float r = 1.0f / t;
    return r * number;
}

pd_status pd_sampler_new(const pd_sched_plan *plan, size_t n, pd_sampler **out, pd_error *err) {
    *out = NULL;
    if (!plan || n == 0)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "sampler needs a plan and n > 0 (n = %zu)", n);
    if (n > ((size_t)1 << 40))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "sampler tensor of %zu floats is too large", n);
    pd_sampler *s = calloc(1, sizeof *s);
    if (!s) return pd_error_set(err, PD_ERR_OOM, "out of memory for a sampler");
    s->plan = plan;
    s->n = n;
    const size_t bytes = n * sizeof(float);
    bool ok = (s->x0 = malloc(bytes)) != NULL;
    switch (plan->kind) {
    case PD_SAMPLER_EULER_A:
    case PD_SAMPLER_LCM: ok = ok && (s->noise = malloc(bytes)) != NULL; break;
    case PD_SAMPLER_DPMPP_2M: ok = ok && (s->x0_prev = malloc(bytes)) != NULL; break;
    case PD_SAMPLER_HEUN:
        ok = ok && (s->h_deriv = malloc(bytes)) != NULL && (s->h_sample = malloc(bytes)) != NULL;
        break;
    default: break;
    }
    if (!ok) {
        pd_sampler_free(s);
        return pd_error_set(err, PD_ERR_OOM, "out of memory for sampler buffers (%zu floats)", n);
    }
    pd_sampler_reset(s);
    *out = s;
    return PD_OK;
}

void pd_sampler_free(pd_sampler *s) {
    if (!s) return;
    free(s->x0);
    free(s->x0_prev);
    free(s->noise);
    free(s->h_deriv);
    free(s->h_sample);
    free(s);
}

void pd_sampler_reset(pd_sampler *s) {
    s->next = s->plan->start;
    s->have_prev = false;
    s->drew_noise = false;
    s->h_second = false;
    s->h_dt = 0.0f;
    s->stepped = false;
}

int pd_sampler_next(const pd_sampler *s) {
    return s->next;
}

const float *pd_sampler_denoised(const pd_sampler *s) {
    return s->stepped ? s->x0 : NULL;
}

const float *pd_sampler_noise(const pd_sampler *s) {
    return s->drew_noise ? s->noise : NULL;
}

bool pd_sampler_draws_noise(const pd_sched_plan *plan, int i) {
    if (plan->kind == PD_SAMPLER_EULER_A) return true;
    if (plan->kind == PD_SAMPLER_LCM) return i != plan->n_steps - 1;
    return false;
}

void pd_sampler_model_input(const pd_sampler *s, int i, const float *x, float *out) {
    const pd_sched_plan *p = s->plan;
    PD_ASSERT(i >= 0 && i < p->n_evals);
    const size_t n = s->n;
    if (p->kind == PD_SAMPLER_EULER || p->kind == PD_SAMPLER_EULER_A ||
        p->kind == PD_SAMPLER_HEUN) {
        const float d = p->in_scale[i];   /* (sigma**2 + 1) ** 0.5 */
        for (size_t j = 0; j < n; j++) out[j] = tdiv(x[j], d);
    } else if (out != x) {
        memcpy(out, x, n * sizeof(float));
    }
}

/* x0 from the model output at noise level sigma, k-diffusion parameterisation
 * (Euler, Euler-a, Heun):
 *   epsilon: x0 = x - sigma * eps
 *   v:       x0 = eps * (-sigma / sqrt(sigma^2 + 1)) + x / (sigma^2 + 1) */
static void kdiff_x0(const pd_sched_plan *p, float sigma, const float *x, const float *eps,
                     size_t n, float *x0) {
    if (p->cfg.prediction == PD_PREDICTION_V) {
        float sq = sigma * sigma;
        float c = sq + 1.0f;
        float root = sqrtf(c);
        float c_out = tdiv(-sigma, root);
        for (size_t j = 0; j < n; j++) {
            float a = eps[j] * c_out;
            float b = tdiv(x[j], c);
            x0[j] = a + b;
        }
    } else {
        for (size_t j = 0; j < n; j++) {
            float t = sigma * eps[j];
            x0[j] = x[j] - t;
        }
    }
}

static void step_euler(pd_sampler *s, int i, const float *x, const float *eps, float *xn) {
    const pd_sched_plan *p = s->plan;
    const float sigma = p->sigmas[i];
    const float sigma_hat = sigma * 1.0f;   /* gamma = 0 (s_churn 0) */
    const float dt = p->sigmas[i + 1] - sigma_hat;
    kdiff_x0(p, sigma_hat, x, eps, s->n, s->x0);
    for (size_t j = 0; j < s->n; j++) {
        float diff = x[j] - s->x0[j];
        float d = tdiv(diff, sigma_hat);
        float step = d * dt;
        xn[j] = x[j] + step;
    }
}

static void step_euler_a(pd_sampler *s, int i, const float *x, const float *eps, pd_rng *rng,
                         float *xn) {
    const pd_sched_plan *p = s->plan;
    const float sigma = p->sigmas[i];
    const float sigma_from = sigma, sigma_to = p->sigmas[i + 1];
    /* sigma_up = (to^2 * (from^2 - to^2) / from^2) ** 0.5 */
    float to2 = sigma_to * sigma_to;
    float from2 = sigma_from * sigma_from;
    float gap = from2 - to2;
    float num = to2 * gap;
    float up2 = tdiv(num, from2);
    const float sigma_up = sqrtf(up2);
    /* sigma_down = (to^2 - up^2) ** 0.5 */
    float upsq = sigma_up * sigma_up;
    float down2 = to2 - upsq;
    const float sigma_down = sqrtf(down2);
    const float dt = sigma_down - sigma;

    kdiff_x0(p, sigma, x, eps, s->n, s->x0);
    PD_ASSERT(rng != NULL);
    pd_rng_randn(rng, s->noise, s->n);
    s->drew_noise = true;
    for (size_t j = 0; j < s->n; j++) {
        float diff = x[j] - s->x0[j];
        float d = tdiv(diff, sigma);
        float step = d * dt;
        float prev = x[j] + step;
        float up = s->noise[j] * sigma_up;
        xn[j] = prev + up;
    }
}

static void step_heun(pd_sampler *s, int i, const float *x, const float *eps, float *xn) {
    const pd_sched_plan *p = s->plan;
    const size_t n = s->n;
    if (!s->h_second) {
        const float sigma = p->sigmas[i];
        const float sigma_next = p->sigmas[i + 1];
        const float sigma_hat = sigma * 1.0f;
        const float dt = sigma_next - sigma_hat;
        kdiff_x0(p, sigma_hat, x, eps, n, s->x0);
        for (size_t j = 0; j < n; j++) {
            float diff = x[j] - s->x0[j];
            float d = tdiv(diff, sigma_hat);
            float step = d * dt;
            s->h_deriv[j] = d;
            s->h_sample[j] = x[j];
            xn[j] = x[j] + step;
        }
        s->h_dt = dt;
        s->h_second = true;
    } else {
        /* 2nd order: sigma = sigmas[i - 1], sigma_next = sigmas[i] */
        const float sigma_next = p->sigmas[i];
        const float dt = s->h_dt;
        kdiff_x0(p, sigma_next, x, eps, n, s->x0);
        for (size_t j = 0; j < n; j++) {
            float diff = x[j] - s->x0[j];
            float d2 = tdiv(diff, sigma_next);
            float sum = s->h_deriv[j] + d2;
            float d = tdiv(sum, 2.0f);
            float step = d * dt;
            xn[j] = s->h_sample[j] + step;
        }
        s->h_second = false;
    }
}

/* _sigma_to_alpha_sigma_t: alpha = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha. */
static void vp_alpha_sigma(float sigma, float *alpha_t, float *sigma_t) {
    float sq = sigma * sigma;
    float c = sq + 1.0f;
    float root = sqrtf(c);
    *alpha_t = rdiv(1.0f, root);
    *sigma_t = sigma * *alpha_t;
}

static float vp_lambda(float alpha_t, float sigma_t) {
    float la = logf(alpha_t);
    float ls = logf(sigma_t);
    return la - ls;
}

static void step_dpmpp_2m(pd_sampler *s, int i, const float *x, const float *eps, float *xn) {
    const pd_sched_plan *p = s->plan;
    const size_t n = s->n;
    /* convert_model_output (dpmsolver++): x0 prediction; keep the previous one */
    float *tmp = s->x0_prev;
    s->x0_prev = s->x0;
    s->x0 = tmp;
    float *m0 = s->x0, *m1 = s->x0_prev;
    {
        float alpha_t, sigma_t;
        vp_alpha_sigma(p->sigmas[i], &alpha_t, &sigma_t);
        if (p->cfg.prediction == PD_PREDICTION_V) {
            for (size_t j = 0; j < n; j++) {
                float a = alpha_t * x[j];
                float b = sigma_t * eps[j];
                m0[j] = a - b;
            }
        } else {
            for (size_t j = 0; j < n; j++) {
                float b = sigma_t * eps[j];
                float a = x[j] - b;
                m0[j] = tdiv(a, alpha_t);
            }
        }
    }
    const bool last = i == p->n_evals - 1;   /* lower_order_final (final sigma 0) */
    float alpha_t, sigma_t, alpha_s0, sigma_s0;
    vp_alpha_sigma(p->sigmas[i + 1], &alpha_t, &sigma_t);
    vp_alpha_sigma(p->sigmas[i], &alpha_s0, &sigma_s0);
    const float lambda_t = vp_lambda(alpha_t, sigma_t);
    const float lambda_s0 = vp_lambda(alpha_s0, sigma_s0);
    const float h = lambda_t - lambda_s0;
    const float ratio = tdiv(sigma_t, sigma_s0);
    float e = expf(-h);
    float em1 = e - 1.0f;
    const float coef = alpha_t * em1;   /* alpha_t * (exp(-h) - 1) */
    if (!s->have_prev || last) {
        /* dpm_solver_first_order_update */
        for (size_t j = 0; j < n; j++) {
            float a = ratio * x[j];
            float b = coef * m0[j];
            xn[j] = a - b;
        }
    } else {
        /* multistep_dpm_solver_second_order_update, midpoint */
        float alpha_s1, sigma_s1;
        vp_alpha_sigma(p->sigmas[i - 1], &alpha_s1, &sigma_s1);
        const float lambda_s1 = vp_lambda(alpha_s1, sigma_s1);
        const float h_0 = lambda_s0 - lambda_s1;
        const float r0 = tdiv(h_0, h);
        const float inv_r0 = rdiv(1.0f, r0);
        const float half_coef = 0.5f * coef;
        for (size_t j = 0; j < n; j++) {
            float dm = m0[j] - m1[j];
            float d1 = inv_r0 * dm;
            float a = ratio * x[j];
            float b = coef * m0[j];
            float c = half_coef * d1;
            float ab = a - b;
            xn[j] = ab - c;
        }
    }
    s->have_prev = true;
}

/* eps / v -> (x0, eps) with alpha-bar parameterisation (DDIM, LCM). */
static void alphabar_x0(const pd_sched_plan *p, float a_t, const float *x, const float *eps,
                        size_t n, float *x0) {
    const float beta_t = 1.0f - a_t;
    const float sa = sqrtf(a_t), sb = sqrtf(beta_t);
    if (p->cfg.prediction == PD_PREDICTION_V) {
        for (size_t j = 0; j < n; j++) {
            float a = sa * x[j];
            float b = sb * eps[j];
            x0[j] = a - b;
        }
    } else {
        for (size_t j = 0; j < n; j++) {
            float b = sb * eps[j];
            float a = x[j] - b;
            x0[j] = tdiv(a, sa);
        }
    }
}

static void step_ddim(pd_sampler *s, int i, const float *x, const float *eps, float *xn) {
    const pd_sched_plan *p = s->plan;
    const int t = p->t_index[i];
    const int prev_t = t - p->n_train / p->n_steps;
    const float a_t = p->alphas_cumprod[t];
    const float a_prev = prev_t >= 0 ? p->alphas_cumprod[prev_t] : p->alphas_cumprod[0];
    const float beta_t = 1.0f - a_t;
    alphabar_x0(p, a_t, x, eps, s->n, s->x0);
    /* pred_sample_direction = (1 - a_prev - std^2) ** 0.5 * pred_eps, std = 0 (eta 0) */
    float c = 1.0f - a_prev;
    c = c - 0.0f;
    const float dir = sqrtf(c);
    const float sa_prev = sqrtf(a_prev);
    const float sa = sqrtf(a_t), sb = sqrtf(beta_t);
    for (size_t j = 0; j < s->n; j++) {
        float pe;
        if (p->cfg.prediction == PD_PREDICTION_V) {
            float u = sa * eps[j];
            float v = sb * x[j];
            pe = u + v;
        } else {
            pe = eps[j];
        }
        float d = dir * pe;
        float a = sa_prev * s->x0[j];
        xn[j] = a + d;
    }
}

static void step_lcm(pd_sampler *s, int i, const float *x, const float *eps, pd_rng *rng,
                     float *xn) {
    const pd_sched_plan *p = s->plan;
    const int t = p->t_index[i];
    const int prev_t = i + 1 < p->n_evals ? p->t_index[i + 1] : t;
    const float a_t = p->alphas_cumprod[t];
    const float a_prev = prev_t >= 0 ? p->alphas_cumprod[prev_t] : p->alphas_cumprod[0];
    const float beta_prev = 1.0f - a_prev;
    /* get_scalings_for_boundary_condition_discrete, sigma_data = 0.5 */
    const float scaled = (float)t * (float)p->cfg.lcm_timestep_scaling;
    float sq = scaled * scaled;
    float d = sq + 0.25f;
    const float c_skip = rdiv(0.25f, d);
    float root = sqrtf(d);
    const float c_out = tdiv(scaled, root);

    alphabar_x0(p, a_t, x, eps, s->n, s->x0);
    for (size_t j = 0; j < s->n; j++) {
        float a = c_out * s->x0[j];
        float b = c_skip * x[j];
        s->x0[j] = a + b;   /* denoised */
    }
    if (pd_sampler_draws_noise(p, i)) {
        PD_ASSERT(rng != NULL);
        pd_rng_randn(rng, s->noise, s->n);
        s->drew_noise = true;
        const float sa_prev = sqrtf(a_prev), sb_prev = sqrtf(beta_prev);
        for (size_t j = 0; j < s->n; j++) {
            float a = sa_prev * s->x0[j];
            float b = sb_prev * s->noise[j];
            xn[j] = a + b;
        }
    } else {
        memcpy(xn, s->x0, s->n * sizeof(float));
    }
}

void pd_sampler_step(pd_sampler *s, int i, const float *x, const float *model_output,
                     pd_rng *rng, float *x_next) {
    const pd_sched_plan *p = s->plan;
    PD_ASSERT(i == s->next && i < p->n_evals);
    PD_ASSERT(x_next != model_output);
    s->drew_noise = false;
    switch (p->kind) {
    case PD_SAMPLER_EULER: step_euler(s, i, x, model_output, x_next); break;
    case PD_SAMPLER_EULER_A: step_euler_a(s, i, x, model_output, rng, x_next); break;
    case PD_SAMPLER_HEUN: step_heun(s, i, x, model_output, x_next); break;
    case PD_SAMPLER_DPMPP_2M: step_dpmpp_2m(s, i, x, model_output, x_next); break;
    case PD_SAMPLER_DDIM: step_ddim(s, i, x, model_output, x_next); break;
    case PD_SAMPLER_LCM: step_lcm(s, i, x, model_output, rng, x_next); break;
    default: PD_ASSERT(!"bad sampler kind");
    }
    s->stepped = true;
    s->next = i + 1;
}

void pd_sched_add_noise(const pd_sched_plan *p, int i, const float *x0, const float *noise,
                        size_t n, float *out) {
    PD_ASSERT(i >= 0 && i < p->n_evals);
    switch (p->kind) {
    case PD_SAMPLER_EULER:
    case PD_SAMPLER_EULER_A:
    case PD_SAMPLER_HEUN: {
        const float sigma = p->sigmas[i];
        for (size_t j = 0; j < n; j++) {
            float b = noise[j] * sigma;
            out[j] = x0[j] + b;
        }
        break;
    }
    case PD_SAMPLER_DPMPP_2M: {
        float alpha_t, sigma_t;
        vp_alpha_sigma(p->sigmas[i], &alpha_t, &sigma_t);
        for (size_t j = 0; j < n; j++) {
            float a = alpha_t * x0[j];
            float b = sigma_t * noise[j];
            out[j] = a + b;
        }
        break;
    }
    default: {   /* DDIM, LCM: alphas_cumprod at the timestep */
        const float ac = p->alphas_cumprod[p->t_index[i]];
        const float sa = sqrtf(ac);
        float om = 1.0f - ac;
        const float sb = sqrtf(om);
        for (size_t j = 0; j < n; j++) {
            float a = sa * x0[j];
            float b = sb * noise[j];
            out[j] = a + b;
        }
        break;
    }
    }
}
