/*
 * gemm_pack.c - packs a [n, k] weight (F32/F16/BF16) into nr-wide fp32 panels.
 *
 * Layout (kernels.h): panel p holds W[p*nr + c, kk] at data[(p*k + kk)*nr + c], zero
 * for p*nr + c >= n. data is 64-byte aligned with 64 readable bytes past its end;
 * bias (if any) is converted to fp32 and zero-padded to a whole panel (kernels still
 * only read bias[0..n)).
 * F16/BF16 values are widened exactly (pd_f16_to_f32 / pd_bf16_to_f32), so packing a
 * half-precision checkpoint loses nothing.
 *
 * With a pool, large weights are split by panels across its threads (pack_mt.h): the
 * same bytes as the single-threaded pack.
 *
 * Traps: n, k come from hostile files: the packed size is checked (in 64 bits, capped
 * at 1 TiB) before any allocation; ld_w counts elements, not bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/half.h"
#include "kernels/gemm/gemm.h"
#include "kernels/pack_mt.h"

/* 2^38 floats (1 TiB): no weight is that large; also keeps the size math exact. */
#define MAX_PACKED_FLOATS (UINT64_C(1) << 38)

/* 64-byte aligned, with 64 extra readable bytes (zeroed). Not otherwise zeroed: the
 * packing loop writes every element, so fresh pages are touched once. NULL on
 * overflow or OOM. */
static float *alloc_floats(size_t count) {
    if (count > (SIZE_MAX - 128) / sizeof(float)) return NULL;
    size_t bytes = (count * sizeof(float) + 64 + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (p) pd_advise_huge(p, bytes);
    if (p) memset(p + count, 0, bytes - count * sizeof(float));
    return p;
}

static bool dtype_ok(pd_dtype dt) {
    return dt == PD_DTYPE_F32 || dt == PD_DTYPE_F16 || dt == PD_DTYPE_BF16;
}

pd_status pd_gemm_pack_check(const char *what, const void *w, pd_dtype w_dtype, size_t ld_w,
                             int n, int k, const void *bias, pd_dtype bias_dtype, pd_error *err) {
    if (!w) return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: weight pointer is NULL", what);
    if (n <= 0 || k <= 0)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: bad weight shape [%d, %d]", what, n, k);
    if (ld_w < (size_t)k)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: row stride %zu < k=%d", what, ld_w, k);
    if (!dtype_ok(w_dtype))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: weight dtype %s not F32/F16/BF16", what,
                            pd_dtype_name(w_dtype));
    if (bias && !dtype_ok(bias_dtype))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: bias dtype %s not F32/F16/BF16", what,
                            pd_dtype_name(bias_dtype));
    return PD_OK;
}

/* Panels [p0, p1) of a pack: each source row is widened once (vectorised,
 * unaligned-safe), then scattered into its panel column; a panel (k x nr floats) stays
 * in cache while it is filled. Padding columns of the last panel are zeroed. */
typedef struct f32_job {
    float *data;
    const char *w;
    pd_dtype dtype;
    size_t row_bytes;
    int n, k, nr;
    size_t n_panels;
    char *scratch;   /* per thread: one row of k floats */
    size_t scratch_stride;
} f32_job;

static void pack_range(const f32_job *j, float *row, size_t p0, size_t p1) {
    const int nr = j->nr, k = j->k;
    for (size_t p = p0; p < p1; p++) {
        int cols = PD_MIN(nr, j->n - (int)p * nr);
        float *panel = j->data + p * (size_t)k * (size_t)nr;
        const char *rows = j->w + p * (size_t)nr * j->row_bytes;
        for (int c = 0; c < cols; c++) {
            pd_to_f32(row, rows + (size_t)c * j->row_bytes, j->dtype, (size_t)k);
            for (int kk = 0; kk < k; kk++) panel[(size_t)kk * (size_t)nr + (size_t)c] = row[kk];
        }
        if (cols < nr)
            for (int kk = 0; kk < k; kk++)
                memset(panel + (size_t)kk * (size_t)nr + (size_t)cols, 0, (size_t)(nr - cols) * sizeof(float));
    }
}

static void pack_task(void *arg, int ith, int nth) {
    const f32_job *j = arg;
    size_t p0, p1;
    pd_pack_split(j->n_panels, ith, nth, &p0, &p1);
    pack_range(j, (float *)(void *)(j->scratch + (size_t)ith * j->scratch_stride), p0, p1);
}

pd_status pd_gemm_pack(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype,
                       size_t ld_w, int n, int k, const void *bias, pd_dtype bias_dtype,
                       pd_error *err) {
    return pd_gemm_pack_mt(out, nr, w, w_dtype, ld_w, n, k, bias, bias_dtype, NULL, err);
}

pd_status pd_gemm_pack_mt(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype,
                          size_t ld_w, int n, int k, const void *bias, pd_dtype bias_dtype,
                          pd_pool *pool, pd_error *err) {
    PD_ASSERT(out);
    memset(out, 0, sizeof *out);
    pd_status st = pd_gemm_pack_check("gemm pack", w, w_dtype, ld_w, n, k, bias, bias_dtype, err);
    if (st != PD_OK) return st;
    if (nr <= 0 || nr > 1024)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "gemm pack: bad panel width nr=%d", nr);

    size_t n_panels = ((size_t)n + (size_t)nr - 1) / (size_t)nr;
    size_t n_pad = n_panels * (size_t)nr;
    if ((uint64_t)n_pad * (uint64_t)k > MAX_PACKED_FLOATS)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "gemm pack: [%d, %d] is too large", n, k);
    pool = pd_pack_pool(pool, (uint64_t)n_pad * (uint64_t)k);
    const int nth = pd_pool_size(pool);
    const size_t stride = pd_pack_line((size_t)k * sizeof(float));
    float *data = alloc_floats(n_pad * (size_t)k);
    float *b = bias ? alloc_floats(n_pad) : NULL;
    float *scratch = alloc_floats(stride / sizeof(float) * (size_t)nth);
    if (!data || (bias && !b) || !scratch) {
        free(data);
        free(b);
        free(scratch);
        return pd_error_set(err, PD_ERR_OOM, "gemm pack: out of memory for [%d, %d] weight", n, k);
    }

    f32_job job = {data, w, w_dtype, ld_w * pd_dtype_size(w_dtype), n, k, nr, n_panels, (char *)scratch, stride};
    pd_pool_run(pool, pack_task, &job);
    free(scratch);
    if (b) {
        pd_to_f32(b, bias, bias_dtype, (size_t)n);
        memset(b + n, 0, (n_pad - (size_t)n) * sizeof(float));
    }

    out->n = n;
    out->k = k;
    out->nr = nr;
    out->dtype = PD_DTYPE_F32;
    out->kp = k;
    out->data = data;
    out->bias = b;
    return PD_OK;
}

void pd_packed_w_free(pd_packed_w *w) {
    if (!w) return;
    free(w->data);
    free(w->bf16);
    if (!w->q_borrowed) free((void *)w->q);
    free(w->bias);
    w->data = NULL;
    w->bf16 = NULL;
    w->q = NULL;
    w->bias = NULL;
}
