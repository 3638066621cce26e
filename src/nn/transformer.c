/*
 * transformer.c - spatial transformer (Transformer2DModel / SpatialTransformer): load
 * by prefix (once), forward over a batch of NHWC images (fp32).
 *
 * Invariants:
 *   - GEMMs run over all batch rows at once (m = batch * hw); attention runs per image
 *     (self-attention over the image's hw tokens, cross-attention over its n_ctx
 *     context tokens), every head at once, split by (head, query block).
 *   - The feed-forward runs in chunks of FF_CHUNK rows, so its 2*ff_inner-wide
 *     intermediate never exists for all rows (SDXL: 10240 floats per row).
 *   - Buffers: xs [rows, inner] residual stream; nb [rows, max(c, inner)] norm outputs
 *     and attention outputs; qkv [rows, 3*inner]; kv [batch*n_ctx, 2*inner]; ff
 *     [FF_CHUNK, 2*ff_inner]. Nothing else; the caller's x is read once at the start
 *     (GroupNorm) and written once at the end (proj_out + x).
 * Reference: diffusers models/transformers/transformer_2d.py, models/attention.py.
 *
 * Traps:
 *   - GEGLU: ff.net.0.proj output = [value | gate], out = value * gelu(gate) (exact erf).
 *   - SD1 stores proj_in/proj_out as 1x1 convs [o, i, 1, 1], SD2/SDXL as Linear [o, i]:
 *     the same memory, one GEMM on NHWC rows; only the norm-before-proj order matters
 *     (both: norm, then proj).
 *   - The attention scale is 1/sqrt(head_dim) of the *head*, not of the inner width.
 *   - attn2's k/v read the context (ctx_dim wide); to_q reads the token stream.
 */
#include "nn/transformer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "io/keys_unet.h"

#define FF_CHUNK 512

/* ---- loading ------------------------------------------------------------------ */

typedef struct tf_loader {
    pd_load_ctx lc;
    const pd_kernels *kt;
    const char *prefix;
    char name[384];
} tf_loader;

/* Component-relative name of key (block k) into ld->name; returns the tensor or NULL. */
static const pd_st_tensor *tf_find(tf_loader *ld, pd_unet_tf_key key, int k) {
    char rel[128];
    if (!pd_unet_tf_key_name(key, k, rel, sizeof rel)) {
        ld->name[0] = '\0';
        return NULL;
    }
    snprintf(ld->name, sizeof ld->name, "%s%s", ld->prefix, rel);
    return pd_model_find(ld->lc.src, ld->lc.comp, ld->name);
}

static pd_status load_vec(tf_loader *ld, pd_unet_tf_key key, int k, int n, float **out,
                          pd_error *err) {
    const pd_st_tensor *t = tf_find(ld, key, k);
    int64_t shape[1] = {n};
    pd_status st = pd_nn_check(&ld->lc, t, ld->name, 1, shape, err);
    if (st != PD_OK) return st;
    return pd_nn_to_f32(&ld->lc, t, ld->name, out, err);
}

/* A Linear [n, k] (or 1x1 conv [n, k, 1, 1] when conv_ok) with its bias [n]. */
static pd_status load_linear(tf_loader *ld, pd_unet_tf_key wkey, pd_unet_tf_key bkey, int blk,
                             int n, int k, bool conv_ok, pd_packed_w *out, pd_error *err) {
    const pd_st_tensor *w = tf_find(ld, wkey, blk);
    char wname[384];
    snprintf(wname, sizeof wname, "%s", ld->name);
    int64_t shape[4] = {n, k, 1, 1};
    int ndim = conv_ok && w && w->ndim == 4 ? 4 : 2;
    pd_status st = pd_nn_check(&ld->lc, w, wname, ndim, shape, err);
    if (st != PD_OK) return st;
    const pd_st_tensor *b = tf_find(ld, bkey, blk);
    int64_t bshape[1] = {n};
    st = pd_nn_check(&ld->lc, b, ld->name, 1, bshape, err);
    if (st != PD_OK) return st;
    return pd_nn_pack(&ld->lc, ld->kt, out, w, wname, b, ld->name, n, k, false, err);
}

/* Bias-free Linears [n_i, k] stacked along n into one packed [sum n_i, k] weight. */
static pd_status load_stacked(tf_loader *ld, const pd_unet_tf_key *keys, int count, int blk, int n,
                              int k, pd_packed_w *out, pd_error *err) {
    size_t part = (size_t)n * (size_t)k;
    const pd_st_tensor *parts[3];
    pd_status st = PD_OK;
    PD_ASSERT(count <= 3);
    for (int i = 0; i < count && st == PD_OK; i++) {
        int64_t shape[2] = {n, k};
        parts[i] = tf_find(ld, keys[i], blk);
        st = pd_nn_check(&ld->lc, parts[i], ld->name, 2, shape, err);
    }
    if (st != PD_OK) return st;
    if (pd_nn_stackable_q(ld->kt, parts, count, n, k))   /* the file's blocks / halves as they are */
        return pd_nn_pack_stacked_q(&ld->lc, ld->kt, out, parts, count, n, k, NULL, err);
    float *buf = pd_aligned_alloc((size_t)count * part * sizeof(float));
    if (!buf) return pd_error_set(err, PD_ERR_OOM, "unet: out of memory loading '%s'", ld->prefix);
    for (int i = 0; i < count; i++) {
        pd_nn_convert_f32(parts[i], buf + (size_t)i * part);
        pd_model_release(ld->lc.src, parts[i]);
    }
    if (st == PD_OK)
        st = pd_kernels_pack_gemm(ld->kt, out, buf, PD_DTYPE_F32, (size_t)k, count * n, k, NULL,
                          PD_DTYPE_F32, ld->lc.pool, err);
    pd_aligned_free(buf);
    return st;
}

static pd_status load_block(tf_loader *ld, const pd_transformer *t, int k, pd_transformer_block *b,
                            pd_error *err) {
    static const pd_unet_tf_key qkv[3] = {PD_UNET_TF_Q1, PD_UNET_TF_K1, PD_UNET_TF_V1};
    static const pd_unet_tf_key kv[2] = {PD_UNET_TF_K2, PD_UNET_TF_V2};
    static const pd_unet_tf_key q2[1] = {PD_UNET_TF_Q2};
    const int d = t->inner;
    pd_status st = load_vec(ld, PD_UNET_TF_LN1_W, k, d, &b->ln1_w, err);
    if (st == PD_OK) st = load_vec(ld, PD_UNET_TF_LN1_B, k, d, &b->ln1_b, err);
    if (st == PD_OK) st = load_vec(ld, PD_UNET_TF_LN2_W, k, d, &b->ln2_w, err);
    if (st == PD_OK) st = load_vec(ld, PD_UNET_TF_LN2_B, k, d, &b->ln2_b, err);
    if (st == PD_OK) st = load_vec(ld, PD_UNET_TF_LN3_W, k, d, &b->ln3_w, err);
    if (st == PD_OK) st = load_vec(ld, PD_UNET_TF_LN3_B, k, d, &b->ln3_b, err);
    if (st == PD_OK) st = load_stacked(ld, qkv, 3, k, d, d, &b->qkv, err);
    if (st == PD_OK) st = load_linear(ld, PD_UNET_TF_OUT1_W, PD_UNET_TF_OUT1_B, k, d, d, false, &b->out1, err);
    if (st == PD_OK) st = load_stacked(ld, q2, 1, k, d, d, &b->q2, err);
    if (st == PD_OK) st = load_stacked(ld, kv, 2, k, d, t->ctx_dim, &b->kv2, err);
    if (st == PD_OK) st = load_linear(ld, PD_UNET_TF_OUT2_W, PD_UNET_TF_OUT2_B, k, d, d, false, &b->out2, err);
    if (st == PD_OK)
        st = load_linear(ld, PD_UNET_TF_FF1_W, PD_UNET_TF_FF1_B, k, 2 * t->ff_inner, d, false, &b->ff1, err);
    if (st == PD_OK)
        st = load_linear(ld, PD_UNET_TF_FF2_W, PD_UNET_TF_FF2_B, k, d, t->ff_inner, false, &b->ff2, err);
    return st;
}

/* Reads dimension `dim` of the tensor for key (block 0), checking its rank. */
static pd_status read_dim(tf_loader *ld, pd_unet_tf_key key, int ndim_a, int ndim_b, int dim,
                          int *out, pd_error *err) {
    const pd_st_tensor *t = tf_find(ld, key, 0);
    char full[512];
    pd_model_full_name(ld->lc.src, ld->lc.comp, ld->name, full, sizeof full);
    if (!t)
        return pd_error_set(err, PD_ERR_MISSING, "%s: tensor '%s' is missing",
                            pd_component_name(ld->lc.comp), full);
    if ((t->ndim != ndim_a && t->ndim != ndim_b) || t->shape[dim] < 1 || t->shape[dim] > 65536)
        return pd_error_set(err, PD_ERR_SHAPE, "%s: tensor '%s' has an unexpected shape (rank %d)",
                            pd_component_name(ld->lc.comp), full, t->ndim);
    *out = (int)t->shape[dim];
    return PD_OK;
}

pd_status pd_transformer_load(const pd_load_ctx *lc, const pd_kernels *kt, pd_transformer *out,
                              const char *prefix, int c, int n_heads, int groups, pd_error *err) {
    memset(out, 0, sizeof *out);
    tf_loader ld = {*lc, kt, prefix, ""};
    pd_status st;
    out->c = c;
    out->ln_eps = 1e-5f;

    /* Sizes from the tensors. */
    int ff2 = 0;
    if ((st = read_dim(&ld, PD_UNET_TF_PROJ_IN_W, 2, 4, 0, &out->inner, err)) != PD_OK) return st;
    out->linear_proj = tf_find(&ld, PD_UNET_TF_PROJ_IN_W, 0)->ndim == 2;
    if ((st = read_dim(&ld, PD_UNET_TF_K2, 2, 2, 1, &out->ctx_dim, err)) != PD_OK) return st;
    if ((st = read_dim(&ld, PD_UNET_TF_FF1_W, 2, 2, 0, &ff2, err)) != PD_OK) return st;
    if (ff2 % 2 != 0)
        return pd_error_set(err, PD_ERR_SHAPE, "%s: '%s' has an odd width %d (GEGLU needs value|gate halves)",
                            pd_component_name(lc->comp), ld.name, ff2);
    out->ff_inner = ff2 / 2;
    while (out->depth <= PD_UNET_MAX_DEPTH && tf_find(&ld, PD_UNET_TF_LN1_W, out->depth)) out->depth++;
    if (out->depth < 1 || out->depth > PD_UNET_MAX_DEPTH)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "%s: '%s' has %d transformer blocks (1..%d supported)",
                            pd_component_name(lc->comp), prefix, out->depth, PD_UNET_MAX_DEPTH);
    if (n_heads < 1 || out->inner % n_heads != 0 || out->inner / n_heads > PD_ATTN_MAX_HEAD_DIM)
        return pd_error_set(err, PD_ERR_UNSUPPORTED,
                            "%s: %d attention heads do not divide the width %d of '%s' (head dim <= %d)",
                            pd_component_name(lc->comp), n_heads, out->inner, prefix, PD_ATTN_MAX_HEAD_DIM);
    out->n_heads = n_heads;
    out->head_dim = out->inner / n_heads;

    char wn[384], bn[384];
    char rel[128];
    pd_unet_tf_key_name(PD_UNET_TF_NORM_W, 0, rel, sizeof rel);
    snprintf(wn, sizeof wn, "%s%s", prefix, rel);
    pd_unet_tf_key_name(PD_UNET_TF_NORM_B, 0, rel, sizeof rel);
    snprintf(bn, sizeof bn, "%s%s", prefix, rel);
    st = pd_groupnorm_load(lc, &out->norm, wn, bn, c, groups, 1e-6f, err);
    if (st == PD_OK)
        st = load_linear(&ld, PD_UNET_TF_PROJ_IN_W, PD_UNET_TF_PROJ_IN_B, 0, out->inner, c, true,
                         &out->proj_in, err);
    if (st == PD_OK)
        st = load_linear(&ld, PD_UNET_TF_PROJ_OUT_W, PD_UNET_TF_PROJ_OUT_B, 0, c, out->inner, true,
                         &out->proj_out, err);
    if (st != PD_OK) goto fail;

    out->blocks = calloc((size_t)out->depth, sizeof *out->blocks);
    if (!out->blocks) {
        st = pd_error_set(err, PD_ERR_OOM, "%s: out of memory loading '%s'", pd_component_name(lc->comp), prefix);
        goto fail;
    }
    for (int k = 0; k < out->depth; k++) {
        st = load_block(&ld, out, k, &out->blocks[k], err);
        if (st != PD_OK) goto fail;
    }
    return PD_OK;
fail:
    pd_transformer_free(out);
    return st;
}

void pd_transformer_free(pd_transformer *t) {
    if (!t) return;
    if (t->blocks) {
        for (int k = 0; k < t->depth; k++) {
            pd_transformer_block *b = &t->blocks[k];
            pd_aligned_free(b->ln1_w);
            pd_aligned_free(b->ln1_b);
            pd_aligned_free(b->ln2_w);
            pd_aligned_free(b->ln2_b);
            pd_aligned_free(b->ln3_w);
            pd_aligned_free(b->ln3_b);
            pd_packed_w_free(&b->qkv);
            pd_packed_w_free(&b->out1);
            pd_packed_w_free(&b->q2);
            pd_packed_w_free(&b->kv2);
            pd_packed_w_free(&b->out2);
            pd_packed_w_free(&b->ff1);
            pd_packed_w_free(&b->ff2);
        }
        free(t->blocks);
    }
    pd_groupnorm_free(&t->norm);
    pd_packed_w_free(&t->proj_in);
    pd_packed_w_free(&t->proj_out);
    memset(t, 0, sizeof *t);
}

/* ---- forward ---------------------------------------------------------------- */

size_t pd_transformer_scratch_bytes(int c, int inner, int ff_inner, int batch, int hw, int n_ctx) {
    size_t rows = (size_t)batch * (size_t)hw;
    size_t chunk = rows < FF_CHUNK ? rows : FF_CHUNK;
    size_t wide = (size_t)(c > inner ? c : inner);
    size_t b = 0;
    b += pd_arena_size_for(rows * (size_t)inner * sizeof(float));            /* xs */
    b += pd_arena_size_for(rows * wide * sizeof(float));                     /* nb */
    b += pd_arena_size_for(rows * 3 * (size_t)inner * sizeof(float));        /* qkv */
    b += pd_arena_size_for((size_t)batch * (size_t)n_ctx * 2 * (size_t)inner * sizeof(float)); /* kv */
    b += pd_arena_size_for(chunk * 2 * (size_t)ff_inner * sizeof(float));    /* ff */
    return b;
}

typedef struct geglu_job {
    const pd_kernels *kt;
    float *x;   /* [rows, 2*cols] in, [rows, cols] out with the same row stride */
    int rows, cols;
} geglu_job;

static void geglu_task(void *arg, int ith, int nth) {
    const geglu_job *j = arg;
    int r0 = (int)((int64_t)j->rows * ith / nth), r1 = (int)((int64_t)j->rows * (ith + 1) / nth);
    size_t ld = 2 * (size_t)j->cols;
    if (r0 < r1) j->kt->geglu_f32(j->x + (size_t)r0 * ld, ld, j->x + (size_t)r0 * ld, ld, r1 - r0, j->cols);
}

static void tap_out(const pd_nn_tap *tap, const char *prefix, const char *what, const float *data,
                    int batch, int h, int w, int c) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", prefix, what);
    tap->fn(tap->user, name, data, batch, h, w, c);
}

static void add_inplace(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* One attention over every head of one image: q [n_q, *] (row stride q_ld), k/v
 * [n_kv, *], out o [n_q, inner] (row stride o_ld). */
static void attend(const pd_nn *nn, const pd_transformer *t, int n_q, int n_kv, const float *q,
                   size_t q_ld, const float *k, const float *v, size_t kv_ld, float *o, size_t o_ld) {
    pd_attn_args a = {
        .n_q = n_q, .n_kv = n_kv, .head_dim = t->head_dim, .q0 = 0, .q1 = n_q, .h0 = 0, .h1 = t->n_heads,
        .q = q, .q_ld = q_ld, .q_hs = (size_t)t->head_dim,
        .k = k, .k_ld = kv_ld, .k_hs = (size_t)t->head_dim,
        .v = v, .v_ld = kv_ld, .v_hs = (size_t)t->head_dim,
        .o = o, .o_ld = o_ld, .o_hs = (size_t)t->head_dim,
        .scale = 1.0f / sqrtf((float)t->head_dim), .causal = false,
    };
    pd_nn_attention(nn, &a);
}

void pd_transformer_forward(const pd_nn *nn, const pd_transformer *t, float *x, int batch, int h,
                            int w, const float *ctx, int n_ctx, pd_arena *scratch,
                            const pd_nn_tap *tap, const char *tap_prefix) {
    const int hw = h * w, rows = batch * hw, c = t->c, d = t->inner, ff = t->ff_inner;
    const size_t wide = (size_t)(c > d ? c : d);
    const int chunk = rows < FF_CHUNK ? rows : FF_CHUNK;
    if (tap && !tap->fn) tap = NULL;

    pd_arena_mark mark = pd_arena_get_mark(scratch);
    float *xs = pd_arena_alloc(scratch, (size_t)rows * d * sizeof(float));        /* [rows, d] token stream */
    float *nb = pd_arena_alloc(scratch, (size_t)rows * wide * sizeof(float));     /* [rows, max(c, d)] */
    float *qkv = pd_arena_alloc(scratch, (size_t)rows * 3 * d * sizeof(float));   /* [rows, 3d] */
    float *kv = pd_arena_alloc(scratch, (size_t)batch * n_ctx * 2 * d * sizeof(float)); /* [B*n_ctx, 2d] */
    float *fb = pd_arena_alloc(scratch, (size_t)chunk * 2 * ff * sizeof(float));  /* [chunk, 2ff] */
    PD_ASSERT(xs && nb && qkv && kv && fb);   /* sized by pd_transformer_scratch_bytes */

    /* nb = GroupNorm(x) per image   // [B, hw, c] */
    for (int b = 0; b < batch; b++)
        pd_groupnorm_forward(nn, &t->norm, nb + (size_t)b * hw * c, x + (size_t)b * hw * c, hw, false);
    if (tap) tap_out(tap, tap_prefix, "norm", nb, batch, h, w, c);
    /* xs = proj_in(nb)   // [rows, d] */
    pd_nn_linear(nn, xs, (size_t)d, nb, (size_t)c, rows, &t->proj_in, PD_ACT_NONE, NULL, 0);
    if (tap) tap_out(tap, tap_prefix, "proj_in", xs, batch, h, w, d);

    for (int k = 0; k < t->depth; k++) {
        const pd_transformer_block *B = &t->blocks[k];
        char blk[160] = "";
        if (tap) snprintf(blk, sizeof blk, "%s.transformer_blocks.%d", tap_prefix, k);

        /* --- self-attention: xs += out1(attn(LN1(xs))) --- */
        pd_nn_layernorm(nn, nb, (size_t)d, xs, (size_t)d, rows, d, B->ln1_w, B->ln1_b, t->ln_eps);
        pd_nn_linear(nn, qkv, (size_t)3 * d, nb, (size_t)d, rows, &B->qkv, PD_ACT_NONE, NULL, 0);
        for (int b = 0; b < batch; b++) {
            const float *base = qkv + (size_t)b * hw * 3 * d;   /* [hw, 3d] = q | k | v */
            attend(nn, t, hw, hw, base, (size_t)3 * d, base + d, base + 2 * d, (size_t)3 * d,
                   nb + (size_t)b * hw * d, (size_t)d);
        }
        if (tap) {   /* qkv is dead: holds out1's output [rows, d] */
            pd_nn_linear(nn, qkv, (size_t)d, nb, (size_t)d, rows, &B->out1, PD_ACT_NONE, NULL, 0);
            tap_out(tap, blk, "attn1", qkv, batch, h, w, d);
            add_inplace(xs, qkv, (size_t)rows * d);
        } else {
            pd_nn_linear(nn, xs, (size_t)d, nb, (size_t)d, rows, &B->out1, PD_ACT_NONE, xs, (size_t)d);
        }

        /* --- cross-attention: xs += out2(attn(q2(LN2(xs)), kv2(ctx))) --- */
        pd_nn_layernorm(nn, nb, (size_t)d, xs, (size_t)d, rows, d, B->ln2_w, B->ln2_b, t->ln_eps);
        pd_nn_linear(nn, qkv, (size_t)d, nb, (size_t)d, rows, &B->q2, PD_ACT_NONE, NULL, 0); /* [rows, d] */
        pd_nn_linear(nn, kv, (size_t)2 * d, ctx, (size_t)t->ctx_dim, batch * n_ctx, &B->kv2,
                     PD_ACT_NONE, NULL, 0);                                               /* [B*n_ctx, 2d] */
        for (int b = 0; b < batch; b++) {
            const float *kb = kv + (size_t)b * n_ctx * 2 * d;
            attend(nn, t, hw, n_ctx, qkv + (size_t)b * hw * d, (size_t)d, kb, kb + d, (size_t)2 * d,
                   nb + (size_t)b * hw * d, (size_t)d);
        }
        if (tap) {
            pd_nn_linear(nn, qkv, (size_t)d, nb, (size_t)d, rows, &B->out2, PD_ACT_NONE, NULL, 0);
            tap_out(tap, blk, "attn2", qkv, batch, h, w, d);
            add_inplace(xs, qkv, (size_t)rows * d);
        } else {
            pd_nn_linear(nn, xs, (size_t)d, nb, (size_t)d, rows, &B->out2, PD_ACT_NONE, xs, (size_t)d);
        }

        /* --- feed-forward in row chunks: xs += ff2(geglu(ff1(LN3(xs)))) --- */
        for (int r0 = 0; r0 < rows; r0 += chunk) {
            int n = PD_MIN(chunk, rows - r0);
            float *xr = xs + (size_t)r0 * d, *nr = nb + (size_t)r0 * d;
            pd_nn_layernorm(nn, nr, (size_t)d, xr, (size_t)d, n, d, B->ln3_w, B->ln3_b, t->ln_eps);
            pd_nn_linear(nn, fb, (size_t)2 * ff, nr, (size_t)d, n, &B->ff1, PD_ACT_NONE, NULL, 0);
            geglu_job gj = {nn->kt, fb, n, ff};
            pd_pool_run(nn->pool, geglu_task, &gj);   /* fb[:, :ff] = value * gelu(gate) */
            if (tap)
                pd_nn_linear(nn, nr, (size_t)d, fb, (size_t)2 * ff, n, &B->ff2, PD_ACT_NONE, NULL, 0);
            else
                pd_nn_linear(nn, xr, (size_t)d, fb, (size_t)2 * ff, n, &B->ff2, PD_ACT_NONE, xr, (size_t)d);
        }
        if (tap) {
            tap_out(tap, blk, "ff", nb, batch, h, w, d);
            add_inplace(xs, nb, (size_t)rows * d);
            tap->fn(tap->user, blk, xs, batch, h, w, d);
        }
    }

    /* x = proj_out(xs) + x   // [rows, c] */
    pd_nn_linear(nn, x, (size_t)c, xs, (size_t)d, rows, &t->proj_out, PD_ACT_NONE, x, (size_t)c);
    pd_arena_reset(scratch, mark);
}
