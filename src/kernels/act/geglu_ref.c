/*
 * geglu_ref.c - scalar reference GEGLU (the specification; see geglu.h):
 * y = value * gelu(gate), gelu by pd_f32_act_scalar (double erfc), product in fp32.
 */
#include "kernels/act/act.h"
#include "kernels/act/geglu.h"

void pd_f32_geglu__ref(float *y, size_t ldy, const float *x, size_t ldx, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        for (int j = 0; j < cols; j++) yr[j] = xr[j] * pd_f32_act_scalar(xr[cols + j], PD_ACT_GELU);
    }
}
