/*
 * band.h - banded convolution, private to src/nn (conv.c defines it; norm.c and
 * resample.c feed it).
 *
 * A banded convolution never holds its whole input: the output rows are produced in
 * bands of a few rows, and for each band a fill callback writes just the input rows
 * that band reads (the receptive field, halo included) into one reused band buffer.
 * The input is then a transform of some other tensor (group norm + SiLU of x, the
 * nearest 2x upsampling of x, or a plain copy of a caller buffer that may lack the
 * kernels' 64-byte readable tail) that is never materialised at full size.
 *
 * Invariants: the band height depends only on the conv geometry and the row size,
 * not on the thread count, so pd_nn_band_bytes is exact and results do not depend on
 * the number of threads. Every output row is computed exactly once, by the same
 * kernel call a full-size convolution would make (bias, act and res included).
 */
#ifndef PD_NN_BAND_H
#define PD_NN_BAND_H

#include "nn/blocks.h"

/* Fills input rows [r0, r1) (row r of the conv input at band[(r - r0) * w * cin]);
 * called once per thread of a pool run, which writes rows [r0 + (r1-r0)*ith/nth, ...). */
typedef void (*pd_nn_fill_fn)(void *ctx, float *band, int r0, int r1, int ith, int nth);

/* Bytes of the band buffer for a conv (k, stride, pad_t) over an input [h, w, cin]
 * (what pd_nn_conv_banded takes from the scratch arena, alignment included). */
size_t pd_nn_band_bytes(int cin, int k, int stride, int pad_t, int pad_b, int h, int w);

/* out [oh, ow, cout] = act(conv(input) + bias) (+ res), input [h, w, c->cin] given
 * band by band by fill. res may alias out. */
void pd_nn_conv_banded(const pd_nn *nn, const pd_conv *c, int h, int w, pd_nn_fill_fn fill,
                       void *ctx, float *out, pd_act act, const float *res, pd_arena *scratch);

/* Splits rows [r0, r1) for thread ith of nth: [*a, *b). */
static inline void pd_nn_split(int r0, int r1, int ith, int nth, int *a, int *b) {
    *a = r0 + (int)((int64_t)(r1 - r0) * ith / nth);
    *b = r0 + (int)((int64_t)(r1 - r0) * (ith + 1) / nth);
}

#endif
