/*
 * clip.c - CLIP text encoder: load (key map -> struct, once) and forward (fp32).
 *
 * Forward, per token row (pre-LN transformer, causal self-attention):
 *   x = tok_emb[id] + pos_emb[pos]
 *   for each layer: x += out(attn(ln1(x)));  x += fc2(act(fc1(ln2(x))))
 *   last_hidden = final_ln(x)
 * Reference: transformers/models/clip/modeling_clip.py (CLIPTextTransformer),
 * open_clip/transformer.py (TextTransformer; in_proj = [q; k; v] stacked).
 *
 * Traps:
 *   - OpenCLIP's text_projection is stored [d, proj] and used as x @ P; the HF one is
 *     [proj, d] and used as x @ W^T. pd_nn_pack(transpose) handles the first.
 *   - The pooled row is found by argmax over ids (the first EOS), not by the last
 *     non-pad position: with pad id 49407 (= EOS) both agree, with pad 0 too.
 *   - HF scales q before the dot product, OpenCLIP (torch MHA) too; the kernel's
 *     scale argument does the same up to rounding.
 */
#include "models/clip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ckpt_keys.h"

/* ---- configuration -------------------------------------------------------------- */

static const char *derived_prefix(pd_component c) {
    return c == PD_COMP_TEXT2 ? "text_encoder_2" : "text_encoder";
}

static const pd_json *derived_get(const pd_model_src *src, pd_component c, const char *what) {
    if (!src->derived) return NULL;
    char key[96];
    snprintf(key, sizeof key, "%s_%s", derived_prefix(c), what);
    return pd_json_get(src->derived, key);
}

static pd_status resolve_config(pd_clip_config *cfg, const pd_model_src *src, pd_component c,
                                pd_error *err) {
    const pd_json *jc = src->comp[c].config;
    int64_t v;

    /* heads: config, derived, else head_dim 64 (every released CLIP text model). */
    int64_t heads = jc ? pd_json_get_int(jc, "num_attention_heads", 0) : 0;
    if (heads <= 0 && pd_json_as_int64(derived_get(src, c, "num_heads"), &v)) heads = v;
    if (heads <= 0) heads = cfg->d_model / 64 > 0 ? cfg->d_model / 64 : 1;
    if (heads > cfg->d_model || cfg->d_model % heads != 0 ||
        cfg->d_model / heads > PD_ATTN_MAX_HEAD_DIM)
        return pd_error_set(err, PD_ERR_UNSUPPORTED,
                            "%s: %lld attention heads do not divide width %d (head dim <= %d)",
                            pd_component_name(c), (long long)heads, cfg->d_model,
                            PD_ATTN_MAX_HEAD_DIM);
    cfg->n_heads = (int)heads;

    /* activation */
    const char *act = jc ? pd_json_get_string(jc, "hidden_act", NULL) : NULL;
    if (!act) act = pd_json_as_string(derived_get(src, c, "activation"));
    if (!act) act = (cfg->naming == PD_TEXT_NAMING_OPENCLIP || c == PD_COMP_TEXT2) ? "gelu" : "quick_gelu";
    if (strcmp(act, "quick_gelu") == 0) cfg->act = PD_ACT_QUICK_GELU;
    else if (strcmp(act, "gelu") == 0) cfg->act = PD_ACT_GELU;
    else
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "%s: activation \"%s\" is not supported "
                            "(quick_gelu or gelu)", pd_component_name(c), act);

    cfg->eps = jc ? (float)pd_json_get_double(jc, "layer_norm_eps", 1e-5) : 1e-5f;

    /* pad id: OpenCLIP tokenizers pad with 0 (SD2, SDXL's second encoder), CLIP-L with
     * EOS, which every CLIP vocabulary puts last (49407 in the real one of 49408 rows;
     * 513 in make-model's 514-token sd15-tiny vocabulary). */
    int64_t pad = (c == PD_COMP_TEXT2 || src->family == PD_FAMILY_SD2) ? 0 : cfg->n_vocab - 1;
    if (pd_json_as_int64(derived_get(src, c, "pad_token_id"), &v)) pad = v;
    if (pad < 0 || pad >= cfg->n_vocab)
        return pd_error_set(err, PD_ERR_FORMAT, "%s: pad token id %lld outside the vocabulary",
                            pd_component_name(c), (long long)pad);
    cfg->pad_id = (int32_t)pad;
    return PD_OK;
}

/* ---- loading ------------------------------------------------------------------ */

typedef struct loader {
    pd_load_ctx lc;
    const pd_kernels *kt;
    int layer;
    char name[256];
    char bname[256];
} loader;

static const pd_st_tensor *find(loader *ld, pd_clip_key key, char *buf) {
    return pd_clip_find(ld->lc.src, ld->lc.comp, key, ld->layer, buf, 256);
}

/* Loads a 1-D (n0) or 2-D (n0 x n1) float tensor as fp32; n1 <= 0 means 1-D. */
static pd_status load_vec(loader *ld, pd_clip_key key, int64_t n0, int64_t n1, float **out,
                          pd_error *err) {
    const pd_st_tensor *t = find(ld, key, ld->name);
    if (!t && !pd_clip_key_name(ld->lc.src->comp[ld->lc.comp].naming, key, ld->layer, ld->name, 256))
        snprintf(ld->name, sizeof ld->name, "(key %d)", (int)key);
    int64_t shape[2] = {n0, n1};
    pd_status st = pd_nn_check(&ld->lc, t, ld->name, n1 > 0 ? 2 : 1, shape, err);
    if (st != PD_OK) return st;
    return pd_nn_to_f32(&ld->lc, t, ld->name, out, err);
}

static pd_status load_linear(loader *ld, pd_clip_key wkey, pd_clip_key bkey, int n, int k,
                             pd_packed_w *out, pd_error *err) {
    const pd_st_tensor *w = find(ld, wkey, ld->name);
    const pd_st_tensor *b = find(ld, bkey, ld->bname);
    int64_t wshape[2] = {n, k}, bshape[1] = {n};
    pd_status st = pd_nn_check(&ld->lc, w, ld->name, 2, wshape, err);
    if (st == PD_OK) st = pd_nn_check(&ld->lc, b, ld->bname, 1, bshape, err);
    if (st == PD_OK) st = pd_nn_pack(&ld->lc, ld->kt, out, w, ld->name, b, ld->bname, n, k, false, err);
    return st;
}

/* HF q/k/v (three [d, d] + biases) stacked into one [3d, d] projection. */
static pd_status load_qkv_split(loader *ld, int d, pd_packed_w *out, pd_error *err) {
    static const pd_clip_key wk[3] = {PD_CLIP_Q_W, PD_CLIP_K_W, PD_CLIP_V_W};
    static const pd_clip_key bk[3] = {PD_CLIP_Q_B, PD_CLIP_K_B, PD_CLIP_V_B};
    size_t dd = (size_t)d * (size_t)d;
    /* Stored quantized (GGUF): the file's blocks are stacked as they are, so the weights
     * are not widened; only the biases are read. */
    const pd_st_tensor *parts[3];
    char name[256];
    for (int i = 0; i < 3; i++) {
        parts[i] = find(ld, wk[i], name);
        int64_t shape[2] = {d, d};
        pd_status cs = pd_nn_check(&ld->lc, parts[i], name, 2, shape, err);
        if (cs != PD_OK) return cs;
    }
    const bool stacked = pd_nn_stackable_q(ld->kt, parts, 3, d, d);
    float *w = stacked ? NULL : pd_aligned_alloc(3 * dd * sizeof(float));
    float *b = pd_aligned_alloc(3 * (size_t)d * sizeof(float));
    pd_status st = PD_OK;
    if ((!stacked && !w) || !b) {
        st = pd_error_set(err, PD_ERR_OOM, "%s: out of memory loading layer %d attention",
                          pd_component_name(ld->lc.comp), ld->layer);
        goto done;
    }
    for (int i = 0; i < 3 && st == PD_OK; i++) {
        float *part = NULL;
        if (!stacked) {
            st = load_vec(ld, wk[i], d, d, &part, err);
            if (st != PD_OK) break;
            memcpy(w + (size_t)i * dd, part, dd * sizeof(float));
            pd_aligned_free(part);
        }
        st = load_vec(ld, bk[i], d, 0, &part, err);
        if (st != PD_OK) break;
        memcpy(b + (size_t)i * (size_t)d, part, (size_t)d * sizeof(float));
        pd_aligned_free(part);
    }
    if (st == PD_OK) {
        if (stacked)
            st = pd_nn_pack_stacked_q(&ld->lc, ld->kt, out, parts, 3, d, d, b, err);
        else st = pd_kernels_pack_gemm(ld->kt, out, w, PD_DTYPE_F32, (size_t)d, 3 * d, d, b, PD_DTYPE_F32,
                                       ld->lc.pool, err);
    }
done:
    pd_aligned_free(w);
    pd_aligned_free(b);
    return st;
}

static pd_status load_layer(loader *ld, pd_clip_layer *L, const pd_clip_config *cfg,
                            pd_error *err) {
    int d = cfg->d_model, ff = cfg->d_ff;
    pd_status st = load_vec(ld, PD_CLIP_LN1_W, d, 0, &L->ln1_w, err);
    if (st == PD_OK) st = load_vec(ld, PD_CLIP_LN1_B, d, 0, &L->ln1_b, err);
    if (st == PD_OK) st = load_vec(ld, PD_CLIP_LN2_W, d, 0, &L->ln2_w, err);
    if (st == PD_OK) st = load_vec(ld, PD_CLIP_LN2_B, d, 0, &L->ln2_b, err);
    if (st != PD_OK) return st;
    if (cfg->naming == PD_TEXT_NAMING_OPENCLIP)
        st = load_linear(ld, PD_CLIP_QKV_W, PD_CLIP_QKV_B, 3 * d, d, &L->qkv, err);
    else
        st = load_qkv_split(ld, d, &L->qkv, err);
    if (st == PD_OK) st = load_linear(ld, PD_CLIP_OUT_W, PD_CLIP_OUT_B, d, d, &L->out, err);
    if (st == PD_OK) st = load_linear(ld, PD_CLIP_FC1_W, PD_CLIP_FC1_B, ff, d, &L->fc1, err);
    if (st == PD_OK) st = load_linear(ld, PD_CLIP_FC2_W, PD_CLIP_FC2_B, d, ff, &L->fc2, err);
    return st;
}

pd_status pd_clip_read_config(pd_clip_config *cfg, const pd_model_src *src, pd_component c,
                              pd_error *err) {
    memset(cfg, 0, sizeof *cfg);
    const pd_comp_src *cs = &src->comp[c];
    if (!cs->present)
        return pd_error_set(err, PD_ERR_MISSING, "'%s' has no %s", src->path, pd_component_name(c));
    loader ld = {{src, c, NULL}, NULL, 0, "", ""};
    cfg->naming = cs->naming;
    const pd_st_tensor *tok = find(&ld, PD_CLIP_TOKEN_EMB, ld.name);
    if (!tok || tok->ndim != 2 || tok->shape[0] < 1 || tok->shape[1] < 1 ||
        tok->shape[0] > (1 << 24) || tok->shape[1] > 65536) {
        char full[384];
        pd_model_full_name(src, c, ld.name, full, sizeof full);
        return tok ? pd_error_set(err, PD_ERR_SHAPE, "%s: token embedding '%s' must be 2-D [vocab, width]",
                                  pd_component_name(c), full)
                   : pd_error_set(err, PD_ERR_MISSING, "%s: tensor '%s' is missing",
                                  pd_component_name(c), full);
    }
    cfg->n_vocab = (int)tok->shape[0];
    cfg->d_model = (int)tok->shape[1];
    const pd_st_tensor *pos = find(&ld, PD_CLIP_POS_EMB, ld.name);
    cfg->n_ctx = pos && pos->ndim == 2 ? (int)PD_MIN(pos->shape[0], 4096) : PD_CLIP_CONTEXT;
    cfg->n_layers = pd_clip_count_layers(src, c);
    if (cfg->n_layers == 0)
        return pd_error_set(err, PD_ERR_MISSING, "%s: no transformer layers found (looked for '%s%s')",
                            pd_component_name(c), cs->prefix,
                            cs->naming == PD_TEXT_NAMING_OPENCLIP ? "transformer.resblocks.0.ln_1.weight"
                                                                  : "text_model.encoder.layers.0.layer_norm1.weight");
    const pd_st_tensor *fc1 = find(&ld, PD_CLIP_FC1_W, ld.name);
    cfg->d_ff = fc1 && fc1->ndim == 2 ? (int)PD_MIN(fc1->shape[0], 1 << 20) : 4 * cfg->d_model;
    const pd_st_tensor *proj = find(&ld, PD_CLIP_PROJ, ld.name);
    if (proj && proj->ndim == 2)
        cfg->proj_dim = (int)PD_MIN(cfg->naming == PD_TEXT_NAMING_OPENCLIP ? proj->shape[1] : proj->shape[0], 65536);
    return resolve_config(cfg, src, c, err);
}

pd_status pd_clip_load(pd_clip *out, const pd_model_src *src, pd_component c,
                       const pd_kernels *kt, pd_pool *pool, pd_error *err) {
    memset(out, 0, sizeof *out);
    loader ld = {{src, c, pool}, kt, 0, "", ""};
    pd_clip_config *cfg = &out->cfg;
    pd_status st = pd_clip_read_config(cfg, src, c, err);
    if (st != PD_OK) return st;
    const pd_st_tensor *tok = find(&ld, PD_CLIP_TOKEN_EMB, ld.name);
    int64_t shape2[2] = {tok->shape[0], tok->shape[1]};
    st = pd_nn_check(&ld.lc, tok, ld.name, 2, shape2, err);   /* dtype */
    if (st != PD_OK) return st;
    out->tok_emb = tok;
    cfg->proj_dim = 0;   /* set again once the projection is loaded */

    st = load_vec(&ld, PD_CLIP_POS_EMB, cfg->n_ctx, cfg->d_model, &out->pos_emb, err);
    if (st == PD_OK) st = load_vec(&ld, PD_CLIP_FINAL_LN_W, cfg->d_model, 0, &out->final_ln_w, err);
    if (st == PD_OK) st = load_vec(&ld, PD_CLIP_FINAL_LN_B, cfg->d_model, 0, &out->final_ln_b, err);
    if (st != PD_OK) goto fail;
    if (cfg->n_ctx < PD_CLIP_CONTEXT) {
        st = pd_error_set(err, PD_ERR_SHAPE, "%s: %d positions, at least %d needed",
                          pd_component_name(c), cfg->n_ctx, PD_CLIP_CONTEXT);
        goto fail;
    }

    out->layers = calloc((size_t)cfg->n_layers, sizeof *out->layers);
    if (!out->layers) {
        st = pd_error_set(err, PD_ERR_OOM, "%s: out of memory", pd_component_name(c));
        goto fail;
    }
    for (int l = 0; l < cfg->n_layers; l++) {
        ld.layer = l;
        st = load_layer(&ld, &out->layers[l], cfg, err);
        if (st != PD_OK) goto fail;
    }

    ld.layer = 0;
    const pd_st_tensor *proj = find(&ld, PD_CLIP_PROJ, ld.name);
    if (proj) {
        bool stored_transposed = cfg->naming == PD_TEXT_NAMING_OPENCLIP;  /* [d, proj] */
        if (proj->ndim != 2) {
            st = pd_error_set(err, PD_ERR_SHAPE, "%s: text projection must be 2-D", pd_component_name(c));
            goto fail;
        }
        int64_t pdim = stored_transposed ? proj->shape[1] : proj->shape[0];
        int64_t want[2] = {stored_transposed ? cfg->d_model : pdim, stored_transposed ? pdim : cfg->d_model};
        if (pdim < 1 || pdim > 65536) {
            st = pd_error_set(err, PD_ERR_SHAPE, "%s: text projection width %lld", pd_component_name(c), (long long)pdim);
            goto fail;
        }
        st = pd_nn_check(&ld.lc, proj, ld.name, 2, want, err);
        if (st == PD_OK)
            st = pd_nn_pack(&ld.lc, kt, &out->proj, proj, ld.name, NULL, NULL, (int)pdim,
                            cfg->d_model, stored_transposed, err);
        if (st != PD_OK) goto fail;
        cfg->proj_dim = (int)pdim;
    }
    return PD_OK;
fail:
    pd_clip_free(out);
    return st;
}

void pd_clip_free(pd_clip *m) {
    if (!m) return;
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            pd_clip_layer *L = &m->layers[l];
            pd_aligned_free(L->ln1_w);
            pd_aligned_free(L->ln1_b);
            pd_aligned_free(L->ln2_w);
            pd_aligned_free(L->ln2_b);
            pd_packed_w_free(&L->qkv);
            pd_packed_w_free(&L->out);
            pd_packed_w_free(&L->fc1);
            pd_packed_w_free(&L->fc2);
        }
        free(m->layers);
    }
    pd_aligned_free(m->pos_emb);
    pd_aligned_free(m->final_ln_w);
    pd_aligned_free(m->final_ln_b);
    pd_packed_w_free(&m->proj);
    memset(m, 0, sizeof *m);
}

/* ---- forward ---------------------------------------------------------------- */

size_t pd_clip_scratch_bytes(const pd_clip_config *cfg, int n_seq) {
    size_t t = (size_t)n_seq * PD_CLIP_CONTEXT, d = (size_t)cfg->d_model;
    size_t b = 0;
    b += pd_arena_size_for(t * d * sizeof(float));         /* x */
    b += pd_arena_size_for(t * d * sizeof(float));         /* h */
    b += pd_arena_size_for(t * 3 * d * sizeof(float));     /* qkv */
    b += pd_arena_size_for(t * (size_t)cfg->d_ff * sizeof(float));  /* ff */
    b += pd_arena_size_for((size_t)n_seq * d * sizeof(float));      /* pooled */
    return b;
}

static void final_ln_rows(const pd_clip *m, const pd_nn *nn, float *dst, const float *src, int rows) {
    pd_nn_layernorm(nn, dst, (size_t)m->cfg.d_model, src, (size_t)m->cfg.d_model, rows,
                    m->cfg.d_model, m->final_ln_w, m->final_ln_b, m->cfg.eps);
}

pd_status pd_clip_forward(const pd_clip *m, const pd_nn *nn, const pd_clip_request *req,
                          pd_arena *scratch, pd_error *err) {
    const pd_clip_config *cfg = &m->cfg;
    const int T = PD_CLIP_CONTEXT, d = cfg->d_model, hd = d / cfg->n_heads;
    const int rows = req->n_seq * T;
    if (req->n_seq < 1 || req->hidden_layer < 0 || req->hidden_layer > cfg->n_layers)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "clip: hidden layer %d outside 0..%d",
                            req->hidden_layer, cfg->n_layers);
    if (req->projected && m->proj.n == 0)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "clip: this text encoder has no projection");
    for (int i = 0; i < rows; i++)
        if (req->ids[i] < 0 || req->ids[i] >= cfg->n_vocab)
            return pd_error_set(err, PD_ERR_INVALID_ARG, "clip: token id %d at position %d outside the vocabulary (%d)",
                                (int)req->ids[i], i % T, cfg->n_vocab);

    pd_arena_mark mark = pd_arena_get_mark(scratch);
    float *x = pd_arena_alloc(scratch, (size_t)rows * d * sizeof(float));    /* [rows, d] residual */
    float *h = pd_arena_alloc(scratch, (size_t)rows * d * sizeof(float));    /* [rows, d] */
    float *qkv = pd_arena_alloc(scratch, (size_t)rows * 3 * d * sizeof(float)); /* [rows, 3d] */
    float *ff = pd_arena_alloc(scratch, (size_t)rows * cfg->d_ff * sizeof(float)); /* [rows, ff] */
    float *pooled = pd_arena_alloc(scratch, (size_t)req->n_seq * d * sizeof(float)); /* [n_seq, d] */
    if (!x || !h || !qkv || !ff || !pooled) {
        pd_arena_reset(scratch, mark);
        return pd_error_set(err, PD_ERR_OOM, "clip: scratch arena too small (%zu bytes needed)",
                            pd_clip_scratch_bytes(cfg, req->n_seq));
    }

    /* x = token embedding + position embedding   // [rows, d] */
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * d;
        pd_nn_row_f32(m->tok_emb, req->ids[r], xr);
        const float *pr = m->pos_emb + (size_t)(r % T) * d;
        for (int j = 0; j < d; j++) xr[j] += pr[j];
    }

    bool need_all = req->pooled || req->projected;
    int last = need_all ? cfg->n_layers : req->hidden_layer;
    if (req->hidden && req->hidden_layer == 0) {
        if (req->hidden_final_ln) final_ln_rows(m, nn, req->hidden, x, rows);
        else memcpy(req->hidden, x, (size_t)rows * d * sizeof(float));
    }
    for (int l = 0; l < last; l++) {
        const pd_clip_layer *L = &m->layers[l];
        /* self-attention block */
        pd_nn_layernorm(nn, h, (size_t)d, x, (size_t)d, rows, d, L->ln1_w, L->ln1_b, cfg->eps);
        pd_nn_linear(nn, qkv, (size_t)3 * d, h, (size_t)d, rows, &L->qkv, PD_ACT_NONE, NULL, 0);
        for (int s = 0; s < req->n_seq; s++) {
            const float *base = qkv + (size_t)s * T * 3 * d;   /* [T, 3d] = q | k | v */
            pd_attn_args a = {
                .n_q = T, .n_kv = T, .head_dim = hd, .q0 = 0, .q1 = T, .h0 = 0, .h1 = cfg->n_heads,
                .q = base, .q_ld = (size_t)3 * d, .q_hs = (size_t)hd,
                .k = base + d, .k_ld = (size_t)3 * d, .k_hs = (size_t)hd,
                .v = base + 2 * d, .v_ld = (size_t)3 * d, .v_hs = (size_t)hd,
                .o = h + (size_t)s * T * d, .o_ld = (size_t)d, .o_hs = (size_t)hd,
                .scale = 1.0f / sqrtf((float)hd), .causal = true,
            };
            pd_nn_attention(nn, &a);   /* h = attention output   // [T, d] */
        }
        pd_nn_linear(nn, x, (size_t)d, h, (size_t)d, rows, &L->out, PD_ACT_NONE, x, (size_t)d);
        /* MLP block */
        pd_nn_layernorm(nn, h, (size_t)d, x, (size_t)d, rows, d, L->ln2_w, L->ln2_b, cfg->eps);
        pd_nn_linear(nn, ff, (size_t)cfg->d_ff, h, (size_t)d, rows, &L->fc1, cfg->act, NULL, 0);
        pd_nn_linear(nn, x, (size_t)d, ff, (size_t)cfg->d_ff, rows, &L->fc2, PD_ACT_NONE, x, (size_t)d);

        if (req->hidden && l + 1 == req->hidden_layer) {
            if (req->hidden_final_ln) final_ln_rows(m, nn, req->hidden, x, rows);
            else memcpy(req->hidden, x, (size_t)rows * d * sizeof(float));
        }
    }

    if (need_all) {
        for (int s = 0; s < req->n_seq; s++) {
            const int32_t *ids = req->ids + (size_t)s * T;
            int eos = 0;
            for (int i = 1; i < T; i++)
                if (ids[i] > ids[eos]) eos = i;
            final_ln_rows(m, nn, pooled + (size_t)s * d, x + ((size_t)s * T + eos) * d, 1);
        }
        if (req->pooled) memcpy(req->pooled, pooled, (size_t)req->n_seq * d * sizeof(float));
        if (req->projected)
            pd_nn_linear(nn, req->projected, (size_t)cfg->proj_dim, pooled, (size_t)d, req->n_seq,
                         &m->proj, PD_ACT_NONE, NULL, 0);
    }
    pd_arena_reset(scratch, mark);
    return PD_OK;
}
