/*
 * conv_ref.c - scalar reference NHWC convolution (the specification; see kernels.h
 * pd_conv_args and conv.h).
 *
 * Direct loops over output pixels, channels and taps, reading the packed weight
 * through its documented layout (any nr, F32 or BF16 format: kernels.h), with
 * kk = (ky*kw + kx)*cin + ci. The bf16 reference rounds each input to bf16 first. Sums in double; bias, the
 * activation (pd_f32_act_scalar) and the residual follow in fp32, in that order, as
 * the GEMM reference does. Every output element reads its residual before writing.
 */
#include "kernels/conv/conv.h"

#include "base/half.h"
#include "kernels/act/act.h"
#include "kernels/gemm/gemm_bf16.h"

void pd_conv_check_args(const pd_conv_args *a) {
    const pd_packed_w *w = a->w;
    PD_ASSERT(w && a->in && a->out);
    PD_ASSERT(a->ih >= 1 && a->iw >= 1 && a->cin >= 1 && a->oh >= 0 && a->ow >= 0);
    PD_ASSERT(a->kh >= 1 && a->kw >= 1 && a->stride >= 1 && a->pad_t >= 0 && a->pad_l >= 0);
    PD_ASSERT(w->k == a->kh * a->kw * a->cin);
    PD_ASSERT(a->n0 >= 0 && a->n0 <= a->n1 && a->n1 <= w->n);
    PD_ASSERT(a->n0 == 0 || a->n0 % w->nr == 0);
    PD_ASSERT(a->n0 / w->nr >= w->panel0);
    PD_ASSERT(a->oy0 >= 0 && a->oy0 <= a->oy1 && a->oy1 <= a->oh);
}

/* W[co, kk] of either packed format (kernels.h). */
static float weight_at(const pd_packed_w *w, int co, int kk) {
    const size_t p = (size_t)(co / w->nr - w->panel0), c = (size_t)(co % w->nr), nr = (size_t)w->nr;
    if (w->dtype == PD_DTYPE_BF16)
        return pd_bf16_to_f32(w->bf16[(p * (size_t)w->kp + ((size_t)kk & ~(size_t)1)) * nr + 2 * c + ((size_t)kk & 1)]);
    return w->data[(p * (size_t)w->k + (size_t)kk) * nr + c];
}

/* bf16: the input is rounded to bf16 (round to nearest even) as the fast kernels do. */
static void conv_ref(const pd_conv_args *a, bool bf16) {
    pd_conv_check_args(a);
    const pd_packed_w *w = a->w;
    PD_ASSERT(w->dtype == (bf16 ? PD_DTYPE_BF16 : PD_DTYPE_F32));
    const int cin = a->cin, cout = w->n;
    for (int oy = a->oy0; oy < a->oy1; oy++)
        for (int ox = 0; ox < a->ow; ox++) {
            const size_t o = ((size_t)oy * (size_t)a->ow + (size_t)ox) * (size_t)cout;
            for (int co = a->n0; co < a->n1; co++) {
                double s = 0.0;
                for (int ky = 0; ky < a->kh; ky++) {
                    const int iy = oy * a->stride + ky - a->pad_t;
                    if (iy < 0 || iy >= a->ih) continue;
                    for (int kx = 0; kx < a->kw; kx++) {
                        const int ix = ox * a->stride + kx - a->pad_l;
                        if (ix < 0 || ix >= a->iw) continue;
                        const float *x = a->in + ((size_t)iy * (size_t)a->iw + (size_t)ix) * (size_t)cin;
                        const int k0 = (ky * a->kw + kx) * cin;
                        for (int ci = 0; ci < cin; ci++) {
                            const float xv = bf16 ? pd_bf16_to_f32(pd_f32_to_bf16(x[ci])) : x[ci];
                            s += (double)xv * weight_at(w, co, k0 + ci);
                        }
                    }
                }
                float v = (float)s;
                if (w->bias) v += w->bias[co];
                v = pd_f32_act_scalar(v, a->act);
                if (a->res) v += a->res[o + (size_t)co];
                a->out[o + (size_t)co] = v;
            }
        }
}

void pd_f32_conv__ref(const pd_conv_args *a) { conv_ref(a, false); }
void pd_bf16_conv__ref(const pd_conv_args *a) { conv_ref(a, true); }
