/*
 * attention_ref.c - scalar reference attention (the specification; see attention.h).
 *
 * Per (head, query): pass 1 finds the max score over visible keys, pass 2 sums
 * exp(s - max) and exp(s - max) * V in double. O(head_dim) stack, no n_q x n_kv matrix.
 */
#include <math.h>

#include "kernels/attention/attention.h"

static double score(const pd_attn_args *g, const float *q, int h, int j) {
    const float *k = g->k + (size_t)h * g->k_hs + (size_t)j * g->k_ld;
    double s = 0.0;
    for (int d = 0; d < g->head_dim; d++) s += (double)q[d] * k[d];
    return s * g->scale;
}

void pd_f32_attention__ref(const pd_attn_args *g) {
    PD_ASSERT(g->head_dim >= 1 && g->head_dim <= PD_ATTN_MAX_HEAD_DIM);
    const int dim = g->head_dim;
    for (int h = g->h0; h < g->h1; h++) {
        for (int i = g->q0; i < g->q1; i++) {
            const float *q = g->q + (size_t)h * g->q_hs + (size_t)i * g->q_ld;
            float *o = g->o + (size_t)h * g->o_hs + (size_t)i * g->o_ld;
            int n_vis = g->causal ? PD_MIN(g->n_kv, i + 1) : g->n_kv;
            if (n_vis <= 0) {
                for (int d = 0; d < dim; d++) o[d] = 0.0f;
                continue;
            }
            double mx = -INFINITY;
            for (int j = 0; j < n_vis; j++) mx = fmax(mx, score(g, q, h, j));
            double acc[PD_ATTN_MAX_HEAD_DIM] = {0};
            double sum = 0.0;
            for (int j = 0; j < n_vis; j++) {
                double p = exp(score(g, q, h, j) - mx);
                const float *v = g->v + (size_t)h * g->v_hs + (size_t)j * g->v_ld;
                sum += p;
                for (int d = 0; d < dim; d++) acc[d] += p * v[d];
            }
            for (int d = 0; d < dim; d++) o[d] = (float)(acc[d] / sum);
        }
    }
}
