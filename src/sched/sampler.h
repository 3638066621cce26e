/*
 * sampler.h - the samplers' stepping interface (the model stays with the caller).
 *
 * A pd_sampler holds what a sampler remembers between model evaluations (DPM++ 2M:
 * the previous x0 prediction; Heun: the first-order sample, derivative and dt) plus
 * its noise buffer; everything is allocated once in pd_sampler_new, so stepping never
 * allocates. It borrows the plan (schedule.h), which must outlive it.
 *
 *   pd_sampler *s;
 *   pd_sampler_new(plan, n, &s, &err);              // n = floats per latent tensor
 *   latents = ...;                                  // noise * init_noise_sigma, or
 *                                                   // pd_sched_add_noise(plan, plan->start, ...)
 *   for (int i = plan->start; i < plan->n_evals; i++) {
 *       pd_sampler_model_input(s, i, latents, x_in);           // scale_model_input
 *       model(x_in, plan->timesteps[i]) -> eps                 // + CFG, by the caller
 *       pd_sampler_step(s, i, latents, eps, &rng, latents);    // in place is fine
 *   }
 *   pd_sampler_free(s);
 *
 * Exactly one pd_sampler_step per model evaluation, in order (i = start, start+1, ...;
 * asserted). That reproduces diffusers' evaluation count and order: Heun evaluates
 * twice per step except the last (its odd evals are the 2nd-order corrections), DPM++
 * 2M runs first order on the first and the last step. RNG draws happen inside the step,
 * from the caller's generator, in diffusers' order: Euler-a draws one tensor of n
 * normals at every eval (also the last, where it is multiplied by 0); LCM draws one at
 * every eval but the last of the schedule; the others never draw (rng may be NULL).
 *
 * Precision: every element is computed as the reference's float32 torch ops on
 * float32 tensors with float32 scalars (one rounding per op, see sampler.c): bit-exact
 * against diffusers for Euler, Euler-a, Heun, DDIM and LCM; DPM++ 2M within ~6e-7
 * relative (torch's log/exp are MKL's).
 * Reference: diffusers v0.31 scheduling_*.py step() and scale_model_input().
 */
#ifndef PD_SCHED_SAMPLER_H
#define PD_SCHED_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "base/rng.h"
#include "sched/schedule.h"

typedef struct pd_sampler pd_sampler;

/* n: floats per latent tensor (batch included: the noise of a step is one torch.randn
 * of that many elements). Frees with pd_sampler_free. */
pd_status pd_sampler_new(const pd_sched_plan *plan, size_t n, pd_sampler **out, pd_error *err);
void pd_sampler_free(pd_sampler *s);   /* NULL-tolerant */

/* Forgets the history; the next step is plan->start again. */
void pd_sampler_reset(pd_sampler *s);

/* The eval the next pd_sampler_step expects (plan->n_evals when finished). */
int pd_sampler_next(const pd_sampler *s);

/* scale_model_input for eval i: out = x / sqrt(sigma_i^2 + 1) for Euler/Euler-a/Heun,
 * a copy of x otherwise. out may equal x. */
void pd_sampler_model_input(const pd_sampler *s, int i, const float *x, float *out);

/* One scheduler step for eval i (== pd_sampler_next(s), asserted): x is the current
 * latents, model_output the model's prediction for pd_sampler_model_input(x) at
 * plan->timesteps[i] (epsilon or v, per plan->cfg.prediction). Writes the next
 * latents to x_next, which may equal x (not model_output). rng: the pipeline's
 * generator; required (asserted) for Euler-a and LCM, else unused and may be NULL. */
void pd_sampler_step(pd_sampler *s, int i, const float *x, const float *model_output,
                     pd_rng *rng, float *x_next);

/* The last step's prediction of the clean latents [n] (diffusers' pred_original_sample;
 * DPM++: the converted model output x0; LCM: "denoised", which the last LCM step
 * returns as its latents), for previews. NULL before the first step. */
const float *pd_sampler_denoised(const pd_sampler *s);

/* The noise the last step drew [n], or NULL when it drew none. */
const float *pd_sampler_noise(const pd_sampler *s);

/* True when eval i's step draws noise (Euler-a: always; LCM: all but the last eval). */
bool pd_sampler_draws_noise(const pd_sched_plan *plan, int i);

/* scheduler.add_noise for img2img/inpainting: out = x0 noised to the level of eval i
 * (i = plan->start for the initial latents; the inpainting blend after eval i uses
 * i + 1). Euler/Euler-a/Heun: x0 + noise * sigma_i; DPM++: alpha_i * x0 + sigma'_i *
 * noise with alpha = 1/sqrt(sigma^2+1), sigma' = sigma * alpha; DDIM/LCM:
 * sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise. out may equal x0 or noise. */
void pd_sched_add_noise(const pd_sched_plan *plan, int i, const float *x0, const float *noise,
                        size_t n, float *out);

#endif
