/*
 * conv_pack.c - pd_conv_pack: a PyTorch conv weight [cout, cin, kh, kw] (F32/F16/BF16,
 * possibly unaligned) into the GEMM panel layout of [cout, kh*kw*cin] with k index
 * (ky*kw + kx)*cin + ci (kernels.h, conv.h).
 *
 * The source rows [cout, cin*kh*kw] (k index ci*kh*kw + tap) are packed as they are by
 * pd_gemm_pack (so the dtype widening, panel layout, padding, bias and size checks are
 * the GEMM's own); then the K rows of each panel (K x nr floats) are permuted in place
 * to the k index tap*cin + ci, through one panel-sized temporary (at most a few MiB,
 * not a second copy of the weight). For kh == kw == 1 nothing is permuted.
 *
 * pd_conv_pack_mt splits both passes by panels across a pool (pack_mt.h; same bytes).
 *
 * Traps: shapes come from hostile files: K is checked in 64 bits before it is an int.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/conv/conv.h"
#include "kernels/pack_mt.h"

/* Panels [p0, p1): row ci*taps + tap -> row tap*cin + ci, through tmp (one panel). */
typedef struct permute_job {
    float *data;
    size_t n_panels, panel_floats, taps, cin, nr;
    char *scratch;   /* per thread: one panel */
    size_t scratch_stride;
} permute_job;

static void permute_task(void *arg, int ith, int nth) {
    const permute_job *j = arg;
    float *tmp = (float *)(void *)(j->scratch + (size_t)ith * j->scratch_stride);
    const size_t row = j->nr * sizeof(float);
    size_t p0, p1;
    pd_pack_split(j->n_panels, ith, nth, &p0, &p1);
    for (size_t p = p0; p < p1; p++) {
        float *panel = j->data + p * j->panel_floats;
        memcpy(tmp, panel, j->panel_floats * sizeof(float));
        for (size_t ci = 0; ci < j->cin; ci++)
            for (size_t tap = 0; tap < j->taps; tap++)
                memcpy(panel + (tap * j->cin + ci) * j->nr, tmp + (ci * j->taps + tap) * j->nr, row);
    }
}

pd_status pd_conv_pack(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype, int cout,
                       int cin, int kh, int kw, const void *bias, pd_dtype bias_dtype,
                       pd_error *err) {
    return pd_conv_pack_mt(out, nr, w, w_dtype, cout, cin, kh, kw, bias, bias_dtype, NULL, err);
}

pd_status pd_conv_pack_mt(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype, int cout,
                          int cin, int kh, int kw, const void *bias, pd_dtype bias_dtype,
                          pd_pool *pool, pd_error *err) {
    PD_ASSERT(out);
    memset(out, 0, sizeof *out);
    if (cout <= 0 || cin <= 0 || kh <= 0 || kw <= 0)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "conv pack: bad weight shape [%d, %d, %d, %d]",
                            cout, cin, kh, kw);
    const uint64_t taps = (uint64_t)kh * (uint64_t)kw, k64 = taps * (uint64_t)cin;
    if (k64 > INT32_MAX)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "conv pack: [%d, %d, %d, %d] is too large",
                            cout, cin, kh, kw);
    const int k = (int)k64;
    pd_status st = pd_gemm_pack_mt(out, nr, w, w_dtype, (size_t)k, cout, k, bias, bias_dtype, pool, err);
    if (st != PD_OK || taps == 1) return st;
    pool = pd_pack_pool(pool, (uint64_t)cout * k64);
    const int nth = pd_pool_size(pool);
    const size_t panel_floats = (size_t)k * (size_t)nr, stride = pd_pack_line(panel_floats * sizeof(float));
    char *tmp = malloc(stride * (size_t)nth);
    if (!tmp) {
        pd_packed_w_free(out);
        return pd_error_set(err, PD_ERR_OOM, "conv pack: out of memory for [%d, %d, %d, %d] weight",
                            cout, cin, kh, kw);
    }
    permute_job job = {out->data, ((size_t)cout + (size_t)nr - 1) / (size_t)nr, panel_floats, (size_t)taps,
                       (size_t)cin, (size_t)nr, tmp, stride};
    pd_pool_run(pool, permute_task, &job);
    free(tmp);
    return PD_OK;
}
