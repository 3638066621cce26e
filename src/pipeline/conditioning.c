/*
 * conditioning.c - prompt -> UNet conditioning (context, pooled), per family.
 *
 *   SD1.x: context = final_ln(hidden[L - (skip - 1)]) of CLIP-L            [77k, 768]
 *   SD2.x: context = final_ln(hidden[L - skip]) of OpenCLIP ViT-H (the original
 *          "penultimate" layer) when the file holds all 24 layers (single file);
 *          diffusers folders store 23 layers, so there it is final_ln(hidden[L - (skip-1)])
 *   SDXL:  context = [hidden[L1 - skip] of CLIP-L | hidden[L2 - skip] of bigG], no final
 *          LN (the penultimate layers at skip 1)                          [77k, 2048]
 *          pooled = bigG final-LN last layer at EOS, projected, from the first chunk.
 * skip is AUTOMATIC1111's clip skip (1 = default); diffusers' clip_skip = skip - 1.
 *
 * Long prompts are split into 77-token chunks (A1111), each encoded separately and
 * concatenated along the token axis. Weighted tokens ("(word:1.2)") scale their
 * embedding rows, then each chunk is rescaled to keep its original mean (A1111
 * "emphasis: original"); all-unit-weight prompts are left untouched, so plain prompts
 * equal the diffusers reference exactly.
 *
 * Reference: diffusers StableDiffusion(XL)Pipeline.encode_prompt; A1111
 * modules/sd_hijack_clip.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/context.h"
#include "text/prompt.h"

#define MAX_CHUNKS 32

pd_text_params pd_text_default_params(void) {
    pd_text_params p;
    memset(&p, 0, sizeof p);
    p.prompt = "";
    p.clip_skip = 1;
    p.prompt_weights = true;
    p.zero_if_empty = false;
    return p;
}

void pd_cond_free(pd_cond *c) {
    if (!c) return;
    free(c->context);
    free(c->pooled);
    free(c->ids);
    free(c);
}

/* A1111 emphasis: multiply rows by their weights, then restore the chunk's mean. */
static void apply_weights(float *z, int rows, int d, const float *w) {
    double mean0 = 0, mean1 = 0;
    size_t n = (size_t)rows * (size_t)d;
    for (size_t i = 0; i < n; i++) mean0 += z[i];
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < d; j++) z[(size_t)r * d + j] *= w[r];
    for (size_t i = 0; i < n; i++) mean1 += z[i];
    if (mean1 == 0) return;
    float s = (float)(mean0 / mean1);
    for (size_t i = 0; i < n; i++) z[i] *= s;
}

typedef struct enc_job {
    const pd_clip *m;
    int hidden_layer;
    bool final_ln;
    bool want_projected;
} enc_job;

/* Encodes all chunks with one encoder: hidden -> dst (row stride ld, column offset
 * col), and the first chunk's projection -> projected. */
static pd_status run_encoder(const pd_ctx *ctx, const enc_job *job, const pd_token_chunks *ch,
                             float *dst, int ld, int col, float *projected, pd_error *err) {
    const pd_clip_config *cfg = &job->m->cfg;
    int n = ch->n_chunks, d = cfg->d_model;
    size_t rows = (size_t)n * PD_CLIP_CONTEXT;
    pd_arena scratch;
    float *hidden = malloc(rows * (size_t)d * sizeof(float));
    float *proj_all = job->want_projected ? malloc((size_t)n * (size_t)cfg->proj_dim * sizeof(float)) : NULL;
    if (!hidden || (job->want_projected && !proj_all) ||
        pd_arena_init(&scratch, pd_clip_scratch_bytes(cfg, n)) != 0) {
        free(hidden);
        free(proj_all);
        return pd_error_set(err, PD_ERR_OOM, "out of memory encoding %d prompt chunks", n);
    }
    pd_nn nn = pd_ctx_nn(ctx, &ctx->kt_exact);
    pd_clip_request req = {.ids = ch->ids, .n_seq = n, .hidden_layer = job->hidden_layer,
                           .hidden_final_ln = job->final_ln, .hidden = hidden,
                           .projected = proj_all};
    pd_status st = pd_clip_forward(job->m, &nn, &req, &scratch, err);
    if (st == PD_OK) {
        if (!ch->all_unit_weights)
            for (int c = 0; c < n; c++)
                apply_weights(hidden + (size_t)c * PD_CLIP_CONTEXT * d, PD_CLIP_CONTEXT, d,
                              ch->weights + (size_t)c * PD_CLIP_CONTEXT);
        for (size_t r = 0; r < rows; r++)
            memcpy(dst + r * (size_t)ld + col, hidden + r * (size_t)d, (size_t)d * sizeof(float));
        if (projected) memcpy(projected, proj_all, (size_t)cfg->proj_dim * sizeof(float));
    }
    pd_arena_free(&scratch);
    free(hidden);
    free(proj_all);
    return st;
}

static pd_status layer_for_skip(const pd_clip *m, int from_end, int *layer, pd_error *err) {
    int l = m->cfg.n_layers - from_end;
    if (l < 0 || l > m->cfg.n_layers)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "clip skip reaches past the %d layers of the text encoder",
                            m->cfg.n_layers);
    *layer = l;
    return PD_OK;
}

static bool progress(const pd_text_params *p, int step, int n) {
    if (!p->progress) return true;
    pd_progress pr = {.stage = "text", .step = step, .n_steps = n};
    return p->progress(&pr, p->progress_user);
}

pd_status pd_encode_text(const pd_ctx *ctx, const pd_text_params *params, pd_cond **out,
                         pd_error *err) {
    *out = NULL;
    if (!ctx) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_encode_text: NULL context");
    pd_clip tmp[2];
    const pd_clip *e1, *e2;
    pd_status st = pd_ctx_text_acquire(ctx, tmp, &e1, &e2, err);
    if (st == PD_OK) st = pd_encode_text_with(ctx, e1, e2, params, out, err);
    pd_ctx_text_release(ctx, tmp);
    return st;
}

pd_status pd_encode_text_with(const pd_ctx *ctx, const pd_clip *enc1, const pd_clip *enc2,
                              const pd_text_params *params, pd_cond **out, pd_error *err) {
    *out = NULL;
    pd_text_params defaults = pd_text_default_params();
    const pd_text_params *p = params ? params : &defaults;
    if (!ctx) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_encode_text: NULL context");
    if (!ctx->has_text1 && !ctx->has_text2)
        return pd_error_set(err, PD_ERR_MISSING, "'%s' has no text encoder", ctx->src->path);
    if (p->clip_skip < 0 || p->clip_skip > 64)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "clip skip %d outside 1..64", p->clip_skip);
    const char *prompt = p->prompt ? p->prompt : "";
    int skip = p->clip_skip < 1 ? 1 : p->clip_skip;

    pd_arena arena;
    if (pd_arena_init(&arena, 0) != 0) return pd_error_set(err, PD_ERR_OOM, "out of memory");
    pd_cond *c = calloc(1, sizeof *c);
    pd_status st = PD_OK;
    if (!c) {
        st = pd_error_set(err, PD_ERR_OOM, "out of memory");
        goto fail;
    }
    bool sdxl = ctx->family == PD_FAMILY_SDXL;
    const pd_clip *e1 = enc1;
    const pd_clip *e2 = sdxl ? enc2 : NULL;
    if (sdxl && !e2) {
        st = pd_error_set(err, PD_ERR_MISSING, "SDXL model without its second (bigG) text encoder");
        goto fail;
    }
    if (!e1 && !sdxl) {
        st = pd_error_set(err, PD_ERR_MISSING, "model without a text encoder");
        goto fail;
    }

    pd_token_chunks ch1 = {0}, ch2 = {0};
    const pd_clip *first = e1 ? e1 : e2;
    st = pd_prompt_to_chunks(ctx->tok, prompt, p->prompt_weights, first->cfg.pad_id, MAX_CHUNKS,
                             &arena, &ch1, err);
    if (st == PD_OK && e1 && e2)
        st = pd_prompt_to_chunks(ctx->tok, prompt, p->prompt_weights, e2->cfg.pad_id, MAX_CHUNKS,
                                 &arena, &ch2, err);
    if (st != PD_OK) goto fail;

    int n = ch1.n_chunks;
    c->n_chunks = n;
    c->n_tokens = n * PD_CLIP_CONTEXT;
    c->dim = (e1 ? e1->cfg.d_model : 0) + (e2 ? e2->cfg.d_model : 0);
    c->pooled_dim = e2 ? e2->cfg.proj_dim : 0;
    c->context = calloc((size_t)c->n_tokens * (size_t)c->dim, sizeof(float));
    c->ids = malloc((size_t)c->n_tokens * sizeof(int32_t));
    c->pooled = c->pooled_dim ? calloc((size_t)c->pooled_dim, sizeof(float)) : NULL;
    if (!c->context || !c->ids || (c->pooled_dim && !c->pooled)) {
        st = pd_error_set(err, PD_ERR_OOM, "out of memory for the text conditioning");
        goto fail;
    }
    memcpy(c->ids, ch1.ids, (size_t)c->n_tokens * sizeof(int32_t));
    if (e2 && c->pooled_dim == 0) {
        st = pd_error_set(err, PD_ERR_MISSING, "SDXL second text encoder has no text projection");
        goto fail;
    }

    if (p->zero_if_empty && prompt[0] == '\0') {
        /* diffusers force_zeros_for_empty_prompt: all-zero context and pooled. */
        goto done;
    }

    int n_enc = (int)(e1 != NULL) + (int)(e2 != NULL), k = 0;
    if (!progress(p, -1, n_enc)) goto cancelled;
    if (!sdxl) {
        /* SD2 single files hold all 24 OpenCLIP layers; the model used the penultimate. */
        int from_end = skip - 1 + (ctx->family == PD_FAMILY_SD2 && e1->cfg.naming == PD_TEXT_NAMING_OPENCLIP);
        enc_job job = {e1, 0, true, false};
        st = layer_for_skip(e1, from_end, &job.hidden_layer, err);
        if (st == PD_OK) st = run_encoder(ctx, &job, &ch1, c->context, c->dim, 0, NULL, err);
        if (st != PD_OK) goto fail;
        if (!progress(p, k++, n_enc)) goto cancelled;
    } else {
        int col = 0;
        if (e1) {
            enc_job job = {e1, 0, false, false};
            st = layer_for_skip(e1, skip, &job.hidden_layer, err);
            if (st == PD_OK) st = run_encoder(ctx, &job, &ch1, c->context, c->dim, 0, NULL, err);
            if (st != PD_OK) goto fail;
            col = e1->cfg.d_model;
            if (!progress(p, k++, n_enc)) goto cancelled;
        }
        enc_job job = {e2, 0, false, true};
        st = layer_for_skip(e2, skip, &job.hidden_layer, err);
        if (st == PD_OK)
            st = run_encoder(ctx, &job, e1 ? &ch2 : &ch1, c->context, c->dim, col, c->pooled, err);
        if (st != PD_OK) goto fail;
        if (!progress(p, k++, n_enc)) goto cancelled;
    }
done:
    pd_arena_free(&arena);
    *out = c;
    return PD_OK;
cancelled:
    st = pd_error_set(err, PD_ERR_CANCELLED, "text encoding cancelled");
fail:
    pd_arena_free(&arena);
    pd_cond_free(c);
    return st;
}
