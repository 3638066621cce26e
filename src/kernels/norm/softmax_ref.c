/*
 * softmax_ref.c - scalar reference row softmax (the specification; see norm.h).
 * Max-subtracted, exp and sum in double.
 */
#include <math.h>

#include "kernels/norm/norm.h"

void pd_f32_softmax__ref(float *x, size_t ld, int rows, int cols) {
    if (cols <= 0) return;
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * ld;
        float mx = xr[0];
        for (int c = 1; c < cols; c++) mx = (xr[c] > mx || isnan(xr[c])) ? xr[c] : mx;
        double sum = 0.0;
        for (int c = 0; c < cols; c++) sum += exp((double)xr[c] - mx);
        for (int c = 0; c < cols; c++) xr[c] = (float)(exp((double)xr[c] - mx) / sum);
    }
}
