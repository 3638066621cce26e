/*
 * clip.h - the CLIP text encoder: OpenAI CLIP ViT-L/14 (SD1.x, SDXL's first encoder;
 * quick-GELU) and OpenCLIP ViT-H/14 / ViT-bigG/14 (SD2.x; SDXL's second encoder;
 * GELU, text projection), fp32.
 *
 * Reference: transformers CLIPTextModel(WithProjection) (pre-LN transformer, causal
 * self-attention, no padding mask), open_clip TextTransformer.
 *
 * Sizes come from the tensors (width, layers, MLP width, vocabulary, positions,
 * projection); what shapes cannot tell (heads, activation, pad id) comes from the
 * model's config, else from the known values of the family (head_dim 64; quick-GELU
 * for OpenAI CLIP, GELU for OpenCLIP; pad 49407 for CLIP-L, 0 for OpenCLIP).
 *
 * Hidden-state indexing follows transformers: hidden 0 is the embedding output, hidden
 * i the output of layer i, hidden n_layers the last layer (before the final norm).
 * The pooled output is the final-normed last layer at the first position holding the
 * largest id (the EOS token, as transformers does for these configs).
 */
#ifndef PD_MODELS_CLIP_H
#define PD_MODELS_CLIP_H

#include "base/arena.h"
#include "io/model.h"
#include "nn/nn.h"

typedef struct pd_clip_config {
    int n_layers, d_model, n_heads, d_ff, n_vocab, n_ctx, proj_dim;
    pd_act act;
    float eps;
    int32_t pad_id;
    pd_text_naming naming;
} pd_clip_config;

typedef struct pd_clip_layer {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    pd_packed_w qkv;   /* [3d, d]: q, k, v stacked */
    pd_packed_w out;   /* [d, d] */
    pd_packed_w fc1;   /* [ff, d] */
    pd_packed_w fc2;   /* [d, ff] */
} pd_clip_layer;

typedef struct pd_clip {
    pd_clip_config cfg;
    const pd_st_tensor *tok_emb;   /* [n_vocab, d] in the mapping; rows converted on use */
    float *pos_emb;                /* [n_ctx, d] */
    pd_clip_layer *layers;
    float *final_ln_w, *final_ln_b;
    pd_packed_w proj;              /* [proj_dim, d]; data NULL when the model has none */
} pd_clip;

/* Reads the configuration of component c from tensor shapes and configs, without
 * loading weights. */
pd_status pd_clip_read_config(pd_clip_config *cfg, const pd_model_src *src, pd_component c,
                              pd_error *err);

/* Loads component c (PD_COMP_TEXT1 or PD_COMP_TEXT2) of src. The model keeps a pointer
 * into src's mapping (token embeddings): src must outlive it. pool (NULL: this thread
 * alone) packs the large weights; call it outside pool tasks. */
pd_status pd_clip_load(pd_clip *out, const pd_model_src *src, pd_component c,
                       const pd_kernels *kt, pd_pool *pool, pd_error *err);
void pd_clip_free(pd_clip *m);   /* NULL-tolerant */

typedef struct pd_clip_request {
    const int32_t *ids;   /* [n_seq, n_ctx] */
    int n_seq;
    int hidden_layer;     /* 0..n_layers: which hidden state goes to `hidden` */
    bool hidden_final_ln; /* apply the final layer norm to it */
    float *hidden;        /* [n_seq, n_ctx, d] or NULL */
    float *pooled;        /* [n_seq, d] or NULL */
    float *projected;     /* [n_seq, proj_dim] or NULL (needs a projection) */
} pd_clip_request;

/* Scratch bytes pd_clip_forward needs for n_seq sequences. */
size_t pd_clip_scratch_bytes(const pd_clip_config *cfg, int n_seq);

/* Runs the encoder. Ids outside [0, n_vocab) are rejected (PD_ERR_INVALID_ARG). */
pd_status pd_clip_forward(const pd_clip *m, const pd_nn *nn, const pd_clip_request *req,
                          pd_arena *scratch, pd_error *err);

#endif
