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
 * Traps: shapes come from hostile files: K is checked in 64 bits before it is an int.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/conv/conv.h"

pd_status pd_conv_pack(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype, int cout,
                       int cin, int kh, int kw, const void *bias, pd_dtype bias_dtype,
                       pd_error *err) {
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
    pd_status st = pd_gemm_pack(out, nr, w, w_dtype, (size_t)k, cout, k, bias, bias_dtype, err);
    if (st != PD_OK || taps == 1) return st;
    const size_t panel_floats = (size_t)k * (size_t)nr;
    float *tmp = malloc(panel_floats * sizeof(float));
    if (!tmp) {
        pd_packed_w_free(out);
        return pd_error_set(err, PD_ERR_OOM, "conv pack: out of memory for [%d, %d, %d, %d] weight",
                            cout, cin, kh, kw);
    }
    const size_t n_panels = ((size_t)cout + (size_t)nr - 1) / (size_t)nr, row = (size_t)nr * sizeof(float);
    for (size_t p = 0; p < n_panels; p++) {
        float *panel = out->data + p * panel_floats;
        memcpy(tmp, panel, panel_floats * sizeof(float));
        /* row ci*taps + tap -> row tap*cin + ci */
        for (size_t ci = 0; ci < (size_t)cin; ci++)
            for (size_t tap = 0; tap < taps; tap++)
                memcpy(panel + (tap * (size_t)cin + ci) * (size_t)nr, tmp + (ci * taps + tap) * (size_t)nr, row);
    }
    free(tmp);
    return PD_OK;
}
