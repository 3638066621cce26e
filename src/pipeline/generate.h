/*
 * generate.h - the generation pipeline behind pd_generate, with an observer for tests
 * and debugging (the latents after every sampler step, the final latents).
 */
#ifndef PD_PIPELINE_GENERATE_H
#define PD_PIPELINE_GENERATE_H

#include <stddef.h>

#include "pipeline/context.h"

typedef struct pd_gen_observer {
    /* After the step-th model evaluation run for image `image` (0-based; img2img counts
     * from the first kept step): latents [4, h, w] NCHW as they enter the next step. */
    void (*on_step)(void *user, int image, int eval, const float *latents, size_t n);
    /* The final latents before decoding. May be NULL. */
    void (*on_final)(void *user, int image, const float *latents, size_t n);
    void *user;
} pd_gen_observer;

pd_status pd_generate_observed(const pd_ctx *ctx, const pd_gen_params *params,
                               const pd_gen_observer *obs, pd_result **out, pd_error *err);

#endif
