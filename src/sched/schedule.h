/*
 * schedule.h - noise schedules: training betas/alphas, timestep spacing, sigma tables
 * (default and Karras) and the plan of model evaluations for one run.
 *
 * Semantics are those of diffusers v0.31 (EulerDiscreteScheduler,
 * EulerAncestralDiscreteScheduler, HeunDiscreteScheduler, DPMSolverMultistepScheduler
 * with algorithm dpmsolver++ / solver_order 2 / lower_order_final, DDIMScheduler with
 * eta 0, LCMScheduler), reproduced to the bit where the reference is deterministic
 * (see "Precision" below). Reference: diffusers/src/diffusers/schedulers/scheduling_*.py.
 *
 * Usage (the pipeline):
 *
 *   pd_sched_config cfg = pd_sched_config_default(PD_FAMILY_SD1);   // or _from_json
 *   pd_sched_plan *plan;
 *   pd_sched_plan_new(&cfg, PD_SAMPLER_EULER_A, PD_SIGMAS_DEFAULT, steps, strength,
 *                     &plan, &err);
 *   pd_sampler *s;
 *   pd_sampler_new(plan, n_latent_floats, &s, &err);       // sampler.h
 *   // txt2img: latents = noise * plan->init_noise_sigma
 *   // img2img: latents = pd_sched_add_noise(plan, plan->start, init_latents, noise)
 *   for (int i = plan->start; i < plan->n_evals; i++) {
 *       pd_sampler_model_input(s, i, latents, unet_in);     // sampler.h
 *       eps = unet(unet_in, plan->timesteps[i]);
 *       pd_sampler_step(s, i, latents, eps, &rng, latents);
 *   }
 *
 * One entry of the plan is one model evaluation ("eval"). For every sampler but Heun,
 * evals == steps. Heun (2nd order) evaluates the model twice per step except the last:
 * n_evals = 2 * steps - 1, and timesteps/sigmas repeat the interior values exactly as
 * diffusers' HeunDiscreteScheduler.timesteps does. Indices into the plan are absolute
 * (img2img starts at plan->start, not 0).
 *
 * Precision (what diffusers computes and how we match it):
 *   - betas: torch.linspace(sqrt(b0), sqrt(b1), N, float32)**2, reproduced with the
 *     AVX2 kernel's arithmetic (8-lane chunks, fused multiply-add bases, "halfway"
 *     split); alphas_cumprod: torch.cumprod (accumulates in double, rounds each
 *     prefix to float32); train sigmas: sqrt((1 - a) / a) in float32 torch ops.
 *   - timestep spacing and sigma interpolation: float64 numpy (np.linspace, np.arange
 *     with its start + i*delta fill, np.interp, round-half-even), cast to float32.
 *   - Karras sigmas: float64 (pow), then float32. Their timesteps (_sigma_to_t) follow
 *     numpy 1.x promotion: log-sigmas and the interpolation weight in float32, the
 *     final blend in float64; the float32 log-sigmas are numpy's own SIMD log (up to
 *     4 ulp from libm's), reproduced because the timesteps inherit its errors.
 *     Heun-Karras timesteps are float64 in diffusers; the plan holds them as float32,
 *     which is what the UNet receives (its embedding calls .float()).
 *   - init_noise_sigma and every per-step scalar: float32, one rounding per torch op.
 *   Deliberate float64 in this module: only where numpy computes in float64 (above).
 *   Result: every sched_* golden table (timesteps, sigmas, init_noise_sigma,
 *   alphas_cumprod) is reproduced bit for bit.
 *
 * Traps:
 *   - "leading" adds steps_offset (SD: 1, so one Euler step runs at t = 1, not 0);
 *     DPM-Solver has its own leading rule (N // (steps + 1)): 4 steps are 801..201.
 *   - init_noise_sigma is sqrt(sigma_max^2 + 1) with "leading" spacing but sigma_max
 *     with "linspace"/"trailing" (Turbo), and 1 for DPM/DDIM/LCM.
 *   - DPM++ with Karras ignores the spacing: sigmas span the whole training range and
 *     the timesteps are the rounded inverse of the sigmas.
 *   - img2img keeps t_start = steps - int(steps * strength) steps off the front, where
 *     steps * strength is a float64 product (pass strength as the decimal's double;
 *     see pd_sched_strength_from_float).
 *   - Deviation: for some step counts (61, 103, 121, ...) numpy's arange makes
 *     diffusers' "trailing" schedule one entry too long, ending at timestep -1; we
 *     keep exactly `steps` entries (the same first entries).
 */
#ifndef PD_SCHED_SCHEDULE_H
#define PD_SCHED_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/json.h"

typedef enum pd_sampler_kind {
    PD_SAMPLER_EULER = 0,   /* "euler":   EulerDiscreteScheduler */
    PD_SAMPLER_EULER_A,     /* "euler_a": EulerAncestralDiscreteScheduler */
    PD_SAMPLER_HEUN,        /* "heun":    HeunDiscreteScheduler */
    PD_SAMPLER_DPMPP_2M,    /* "dpm++2m": DPMSolverMultistepScheduler (dpmsolver++, order 2) */
    PD_SAMPLER_DDIM,        /* "ddim":    DDIMScheduler, eta 0 */
    PD_SAMPLER_LCM,         /* "lcm":     LCMScheduler */
    PD_SAMPLER_COUNT
} pd_sampler_kind;

typedef enum pd_sigma_schedule {
    PD_SIGMAS_DEFAULT = 0,  /* "default": what diffusers does for the sampler */
    PD_SIGMAS_KARRAS        /* "karras": use_karras_sigmas=True (euler, heun, dpm++2m) */
} pd_sigma_schedule;

typedef enum pd_beta_schedule {
    PD_BETAS_SCALED_LINEAR = 0,  /* linspace(sqrt(b0), sqrt(b1), N)^2 (all SD models) */
    PD_BETAS_LINEAR              /* linspace(b0, b1, N) */
} pd_beta_schedule;

typedef enum pd_prediction {
    PD_PREDICTION_EPSILON = 0,   /* the model predicts the noise */
    PD_PREDICTION_V              /* v-prediction (SD 2.x 768-v models) */
} pd_prediction;

typedef enum pd_spacing {
    PD_SPACING_LEADING = 0,      /* SD default (with steps_offset 1) */
    PD_SPACING_LINSPACE,
    PD_SPACING_TRAILING          /* SD-Turbo / SDXL-Turbo */
} pd_spacing;

#define PD_SCHED_MAX_TRAIN 10000   /* largest num_train_timesteps accepted */

/* A model's scheduler configuration (the fields of diffusers' scheduler_config.json
 * that matter here). */
typedef struct pd_sched_config {
    int n_train;                    /* num_train_timesteps (1000) */
    double beta_start, beta_end;    /* 0.00085, 0.012 */
    pd_beta_schedule beta_schedule;
    pd_prediction prediction;
    pd_spacing spacing;
    int steps_offset;               /* added to "leading" timesteps (1) */
    int lcm_original_steps;         /* LCM original_inference_steps (50) */
    double lcm_timestep_scaling;    /* LCM timestep_scaling (10.0) */
} pd_sched_config;

/* The shipped scheduler config of SD 1.x, SD 2.x and SDXL (all identical: scaled
 * linear 0.00085..0.012, 1000 steps, leading, steps_offset 1, epsilon). SD 2.x 768-v
 * models need prediction = PD_PREDICTION_V, which the family alone cannot tell. */
pd_sched_config pd_sched_config_default(pd_family family);

/* Overrides the fields of *cfg found in a diffusers scheduler_config.json object
 * (num_train_timesteps, beta_start, beta_end, beta_schedule, prediction_type,
 * timestep_spacing, steps_offset, original_inference_steps, timestep_scaling). Keys
 * that pick a sampler variant (solver_order, use_karras_sigmas, ...) are ignored: the
 * caller chooses the sampler and schedule. Values this module does not implement fail
 * with PD_ERR_UNSUPPORTED naming the key: trained_betas, beta_schedule
 * squaredcos_cap_v2, prediction_type "sample", rescale_betas_zero_snr, clip_sample,
 * thresholding, use_exponential/beta_sigmas, sigma_min/max, interpolation_type other
 * than linear, timestep_type other than discrete, final_sigmas_type other than zero.
 * *cfg is unchanged on failure. (Python writes DPM's lambda_min_clipped as -Infinity,
 * which a strict JSON parser rejects before this is reached.) */
pd_status pd_sched_config_from_json(pd_sched_config *cfg, const pd_json *obj, pd_error *err);

/* Checks ranges (n_train, betas, offsets); PD_ERR_INVALID_ARG naming the field. */
pd_status pd_sched_config_check(const pd_sched_config *cfg, pd_error *err);

/* Name parsing. Unknown names fail with PD_ERR_INVALID_ARG and a message listing the
 * accepted names. Samplers: "euler", "euler_a", "heun", "dpm++2m", "ddim", "lcm"
 * (ComfyUI's "euler_ancestral" and "dpmpp_2m" are accepted too). Schedules:
 * "default", "karras". Spacing: "leading", "linspace", "trailing". Prediction:
 * "epsilon", "v_prediction". */
pd_status pd_sampler_kind_parse(const char *name, pd_sampler_kind *out, pd_error *err);
pd_status pd_sigma_schedule_parse(const char *name, pd_sigma_schedule *out, pd_error *err);
pd_status pd_spacing_parse(const char *name, pd_spacing *out, pd_error *err);
pd_status pd_prediction_parse(const char *name, pd_prediction *out, pd_error *err);
const char *pd_sampler_kind_name(pd_sampler_kind k);
const char *pd_sigma_schedule_name(pd_sigma_schedule s);
const char *pd_spacing_name(pd_spacing s);

/* True when the sampler supports the schedule (Karras: euler, heun, dpm++2m). */
bool pd_sampler_supports(pd_sampler_kind k, pd_sigma_schedule s);

/* Training tables of cfg, each [cfg->n_train] float32: betas, alphas_cumprod and the
 * train sigmas sqrt((1 - a) / a) (any output may be NULL). */
pd_status pd_sched_train_tables(const pd_sched_config *cfg, float *betas, float *alphas_cumprod,
                                float *sigmas, pd_error *err);

/* The plan of one run. All arrays are owned by the plan (one allocation). */
typedef struct pd_sched_plan {
    pd_sched_config cfg;
    pd_sampler_kind kind;
    pd_sigma_schedule schedule;
    int n_steps;             /* sampler steps asked for */
    int order;               /* 2 for Heun, else 1 */
    int n_evals;             /* model evaluations of the whole schedule */
    int t_start;             /* img2img: steps dropped from the front (0 for strength 1) */
    int start;               /* first eval to run: t_start * order */
    float init_noise_sigma;  /* txt2img: initial latents = noise * init_noise_sigma */
    float *timesteps;        /* [n_evals] the timestep the UNet receives (float32) */
    float *sigmas;           /* [n_evals + 1] noise level before each eval, then the
                                final one (0). DDIM/LCM do not use sigmas: theirs are
                                sqrt((1 - a) / a) at the timesteps, for display. */
    float *in_scale;         /* [n_evals] model input = latents / in_scale[i] (1 for
                                DPM/DDIM/LCM) */
    int32_t *t_index;        /* [n_evals] integer timestep (DPM/DDIM/LCM), else -1 */
    int n_train;
    float *alphas_cumprod;   /* [n_train] */
} pd_sched_plan;

/* Builds the plan for n_steps sampler steps and an img2img strength in (0, 1]
 * (1 = txt2img: start = 0; otherwise t_start = n_steps - int(n_steps * strength)).
 * Steps supported: 1..n_train, fewer where a timestep would leave [0, n_train - 1]
 * (SD's leading spacing with steps_offset 1: at most 999 steps, 998 for DPM++), at
 * most original_inference_steps (50) for LCM. Errors (PD_ERR_INVALID_ARG, the message
 * names the value): steps out of range, strength outside (0, 1] or so small that no
 * step remains, Karras with a sampler that has none, a bad kind or config. The caller
 * frees *out with pd_sched_plan_free; *out is NULL on failure. */
pd_status pd_sched_plan_new(const pd_sched_config *cfg, pd_sampler_kind kind,
                            pd_sigma_schedule schedule, int n_steps, double strength,
                            pd_sched_plan **out, pd_error *err);
void pd_sched_plan_free(pd_sched_plan *plan);   /* NULL-tolerant */

/* Number of evals an img2img/txt2img run performs: n_evals - start. */
static inline int pd_sched_plan_evals_to_run(const pd_sched_plan *p) {
    return p->n_evals - p->start;
}

/* The double closest to the 6-decimal value of a float strength (0.7f -> 0.7), so
 * int(steps * strength) matches what diffusers computes from the same decimal. */
double pd_sched_strength_from_float(float s);

#endif
