/*
 * gemm_ref.c - scalar reference GEMM against packed weights (the specification).
 *
 * Straight loops over the documented pack layout W[j, kk] = data[(p*k + kk)*nr + c],
 * p = j / nr - panel0, c = j % nr, for any nr. Dot products accumulate in double; bias, the
 * activation (pd_f32_act_scalar) and the residual follow in fp32, in that order.
 */
#include "kernels/gemm/gemm.h"

#include "kernels/act/act.h"

void pd_f32_gemm__ref(const pd_gemm_args *g) {
    const pd_packed_w *w = g->w;
    const int k = w->k, nr = w->nr;
    PD_ASSERT(g->n0 >= 0 && g->n0 <= g->n1 && g->n1 <= w->n);
    PD_ASSERT(g->n0 == 0 || g->n0 % nr == 0);
    PD_ASSERT(g->n0 / nr >= w->panel0);
    for (int i = 0; i < g->m; i++) {
        const float *a = g->a + (size_t)i * g->lda;
        for (int j = g->n0; j < g->n1; j++) {
            const float *col = w->data + (size_t)(j / nr - w->panel0) * k * nr + j % nr;
            double s = 0.0;
            for (int kk = 0; kk < k; kk++) s += (double)a[kk] * col[(size_t)kk * nr];
            float v = (float)s;
            if (w->bias) v += w->bias[j];
            v = pd_f32_act_scalar(v, g->act);
            if (g->res) v += g->res[(size_t)i * g->ldres + j];
            g->c[(size_t)i * g->ldc + j] = v;
        }
    }
}
