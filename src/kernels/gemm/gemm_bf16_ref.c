/*
 * gemm_bf16_ref.c - scalar reference bf16 GEMM against the AMX-packed weight (the
 * specification of gemm_bf16.h).
 *
 * Straight loops over the documented layout Wb[j, kk] =
 * data[(p*kp + (kk & ~1))*nr + 2*c + (kk & 1)], p = j / nr - panel0, c = j % nr. A is rounded
 * to bf16 (pd_f32_to_bf16, round to nearest even) element by element; the exact
 * bf16 x bf16 products accumulate in double; bias, the activation (pd_f32_act_scalar)
 * and the residual follow in fp32, in that order. Unlike AMX, denormals are kept.
 */
#include "kernels/gemm/gemm_bf16.h"

#include "base/half.h"
#include "kernels/act/act.h"

void pd_bf16_gemm__ref(const pd_gemm_args *g) {
    const pd_packed_w *w = g->w;
    PD_ASSERT(w->dtype == PD_DTYPE_BF16);
    const int k = w->k, nr = w->nr;
    const size_t kp = (size_t)w->kp;
    PD_ASSERT(g->n0 >= 0 && g->n0 <= g->n1 && g->n1 <= w->n);
    PD_ASSERT(g->n0 == 0 || g->n0 % nr == 0);
    PD_ASSERT(g->n0 / nr >= w->panel0);
    for (int i = 0; i < g->m; i++) {
        const float *a = g->a + (size_t)i * g->lda;
        for (int j = g->n0; j < g->n1; j++) {
            const uint16_t *col = w->bf16 + (size_t)(j / nr - w->panel0) * kp * (size_t)nr + 2 * (size_t)(j % nr);
            double s = 0.0;
            for (int kk = 0; kk < k; kk++) {
                float av = pd_bf16_to_f32(pd_f32_to_bf16(a[kk]));
                float wv = pd_bf16_to_f32(col[((size_t)kk & ~(size_t)1) * (size_t)nr + ((size_t)kk & 1)]);
                s += (double)av * (double)wv;
            }
            float v = (float)s;
            if (w->bias) v += w->bias[j];
            v = pd_f32_act_scalar(v, g->act);
            if (g->res) v += g->res[(size_t)i * g->ldres + j];
            g->c[(size_t)i * g->ldc + j] = v;
        }
    }
}
