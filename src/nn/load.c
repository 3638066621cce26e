/*
 * load.c - weight loading: dtype/shape checks with named errors, fp32 conversion and
 * GEMM packing from (possibly unaligned) mapped checkpoint data.
 */
#include "nn/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/half.h"
#include "kernels/quant/quant.h"

static void full_name(const pd_load_ctx *lc, const char *rel, char *buf, size_t n) {
    pd_model_full_name(lc->src, lc->comp, rel, buf, n);
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "[");
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
}

pd_status pd_nn_check(const pd_load_ctx *lc, const pd_st_tensor *t, const char *rel_name,
                      int ndim, const int64_t *shape, pd_error *err) {
    char name[384];
    full_name(lc, rel_name, name, sizeof name);
    if (!t)
        return pd_error_set(err, PD_ERR_MISSING, "%s: tensor '%s' is missing",
                            pd_component_name(lc->comp), name);
    if (t->dtype != PD_DTYPE_F32 && t->dtype != PD_DTYPE_F16 && t->dtype != PD_DTYPE_BF16 &&
        !pd_dtype_is_quant(t->dtype))
        return pd_error_set(err, PD_ERR_UNSUPPORTED,
                            "%s: tensor '%s' has dtype %s (expected F32, F16, BF16, Q8_0, Q4_0 or Q4_1)",
                            pd_component_name(lc->comp), name, pd_dtype_name(t->dtype));
    if (pd_dtype_is_quant(t->dtype) && (t->ndim < 1 || t->shape[t->ndim - 1] % 32))
        return pd_error_set(err, PD_ERR_FORMAT, "%s: tensor '%s' is %s with rows that are not whole blocks of 32",
                            pd_component_name(lc->comp), name, pd_dtype_name(t->dtype));
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char have[96], want[96];
        shape_str(have, sizeof have, t->ndim, t->shape);
        shape_str(want, sizeof want, ndim, shape);
        return pd_error_set(err, PD_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s",
                            pd_component_name(lc->comp), name, have, want);
    }
    return PD_OK;
}

/* Converts n elements starting at element `first` of t (dtype already checked; for
 * the block types first and n are whole rows, multiples of 32). */
static void convert_f32(const pd_st_tensor *t, size_t first, size_t n, float *dst) {
    const unsigned char *src = (const unsigned char *)t->data + pd_dtype_bytes(t->dtype, first);
    if (pd_dtype_is_quant(t->dtype)) pd_dequantize_row(t->dtype, src, dst, n);
    else pd_to_f32(dst, src, t->dtype, n);
}

void pd_nn_convert_f32(const pd_st_tensor *t, float *dst) {
    if (t->numel) convert_f32(t, 0, (size_t)t->numel, dst);
}

void pd_nn_row_f32(const pd_st_tensor *t, int64_t row, float *dst) {
    PD_ASSERT(t->ndim == 2 && row >= 0 && row < t->shape[0]);
    size_t cols = (size_t)t->shape[1];
    convert_f32(t, (size_t)row * cols, cols, dst);
}

pd_status pd_nn_to_f32(const pd_load_ctx *lc, const pd_st_tensor *t, const char *rel_name,
                       float **out, pd_error *err) {
    size_t n = (size_t)t->numel;
    float *buf = pd_aligned_alloc(n ? n * sizeof(float) : sizeof(float));
    if (!buf) {
        char name[384];
        full_name(lc, rel_name, name, sizeof name);
        return pd_error_set(err, PD_ERR_OOM, "out of memory converting '%s' (%zu values)", name, n);
    }
    if (n) convert_f32(t, 0, n, buf);
    *out = buf;
    return PD_OK;
}

pd_status pd_nn_pack(const pd_load_ctx *lc, const pd_kernels *kt, pd_packed_w *out,
                     const pd_st_tensor *w, const char *w_name, const pd_st_tensor *b,
                     const char *b_name, int n, int k, bool transpose, pd_error *err) {
    memset(out, 0, sizeof *out);
    float *wf = NULL, *bf = NULL;
    pd_status st;
    if (!transpose) {
        /* Straight from the mapping: the packers widen F16/BF16 rows itself. */
        st = pd_kernels_pack_gemm(kt, out, w->data, w->dtype, (size_t)k, n, k, b ? b->data : NULL,
                          b ? b->dtype : PD_DTYPE_F32, lc->pool, err);
        if (st == PD_OK && !out->q_borrowed) pd_model_release(lc->src, w);   /* the packed copy replaces it */
        goto named;
    }
    st = pd_nn_to_f32(lc, w, w_name, &wf, err);
    if (st != PD_OK) return st;
    if (b) {
        st = pd_nn_to_f32(lc, b, b_name, &bf, err);
        if (st != PD_OK) goto done;
    }
    {
        float *tr = pd_aligned_alloc((size_t)n * (size_t)k * sizeof(float));
        if (!tr) {
            st = pd_error_set(err, PD_ERR_OOM, "out of memory transposing '%s'", w_name);
            goto done;
        }
        for (int r = 0; r < k; r++)
            for (int c = 0; c < n; c++) tr[(size_t)c * (size_t)k + (size_t)r] = wf[(size_t)r * (size_t)n + (size_t)c];
        pd_aligned_free(wf);
        wf = tr;
    }
    st = pd_kernels_pack_gemm(kt, out, wf, PD_DTYPE_F32, (size_t)k, n, k, bf, PD_DTYPE_F32, lc->pool, err);
named:
    if (st != PD_OK) {
        char name[384];
        full_name(lc, w_name, name, sizeof name);
        pd_error_prefix(err, "%s", name);
    }
done:
    pd_aligned_free(wf);
    pd_aligned_free(bf);
    return st;
}

bool pd_nn_stackable_q(const pd_kernels *kt, const pd_st_tensor *const *parts, int count, int n, int k) {
    if (count < 1) return false;
    if (parts[0]->dtype == PD_DTYPE_F16 && !pd_kernels_half_rows(kt, PD_DTYPE_F16, count * n, k)) return false;
    if (parts[0]->dtype != PD_DTYPE_F16 && (k % 32 || !pd_dtype_is_quant(parts[0]->dtype))) return false;
    for (int i = 1; i < count; i++)
        if (parts[i]->dtype != parts[0]->dtype) return false;
    return true;
}

pd_status pd_nn_pack_stacked_q(const pd_load_ctx *lc, const pd_kernels *kt, pd_packed_w *out, const pd_st_tensor *const *parts,
                               int count, int n, int k, const float *bias, pd_error *err) {
    const pd_dtype t = parts[0]->dtype;
    const size_t part = pd_dtype_bytes(t, (size_t)n * (size_t)k);
    unsigned char *buf = malloc((size_t)count * part + 64);
    if (!buf) return pd_error_set(err, PD_ERR_OOM, "out of memory stacking %d quantized weights", count);
    for (int i = 0; i < count; i++) {
        PD_ASSERT(parts[i]->nbytes == part);
        memcpy(buf + (size_t)i * part, parts[i]->data, part);
    }
    memset(buf + (size_t)count * part, 0, 64);
    for (int i = 0; i < count; i++) pd_model_release(lc->src, parts[i]);   /* the copy replaces them */
    pd_status st = pd_q_gemm_wrap(out, kt->gemm_nr, t, buf, count * n, k, bias, PD_DTYPE_F32, err);
    if (st != PD_OK) {
        free(buf);
        return st;
    }
    out->q_borrowed = false;   /* the copy is the weight's own (freed with it) */
    return PD_OK;
}
