/*
 * attention_bf16_ref.c - scalar reference for the bf16 attention variants (the
 * specification of their roundings; see attention.h).
 *
 * Per (head, query): Q, K, V rounded to bf16 (round to nearest even, pd_f32_to_bf16,
 * with fp32 denormals read as zero like VCVTNE2PS2BF16); s_j = scale * sum_d q_d k_jd
 * (exact products, summed in double); pass 1 finds the max m over visible keys; pass 2
 * rounds p_j = bf16(exp(s_j - m)) and returns sum_j p_j v_j / sum_j p_j in double.
 * The SIMD variants differ only by fp32 summation order, their exp and where their
 * running max stands when P is rounded (each p_j may land one bf16 step away).
 * O(head_dim) stack, no n_q x n_kv matrix.
 */
#include <math.h>

#include "base/half.h"
#include "kernels/attention/attention.h"

/* bf16(x) as a float, denormals read as zero. */
static float round_bf16(float x) {
    if (x != 0.0f && fabsf(x) < 1.17549435e-38f) x = copysignf(0.0f, x);
    return pd_bf16_to_f32(pd_f32_to_bf16(x));
}

static double score(const pd_attn_args *g, const float *qb, int h, int j) {
    const float *k = g->k + (size_t)h * g->k_hs + (size_t)j * g->k_ld;
    double s = 0.0;
    for (int d = 0; d < g->head_dim; d++) s += (double)qb[d] * round_bf16(k[d]);
    return s * g->scale;
}

void pd_bf16_attention__ref(const pd_attn_args *g) {
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
            float qb[PD_ATTN_MAX_HEAD_DIM];
            for (int d = 0; d < dim; d++) qb[d] = round_bf16(q[d]);
            double mx = -INFINITY;
            for (int j = 0; j < n_vis; j++) mx = fmax(mx, score(g, qb, h, j));
            double acc[PD_ATTN_MAX_HEAD_DIM] = {0};
            double sum = 0.0;
            for (int j = 0; j < n_vis; j++) {
                double p = round_bf16((float)exp(score(g, qb, h, j) - mx));
                const float *v = g->v + (size_t)h * g->v_hs + (size_t)j * g->v_ld;
                sum += p;
                for (int d = 0; d < dim; d++) acc[d] += p * round_bf16(v[d]);
            }
            for (int d = 0; d < dim; d++) o[d] = (float)(acc[d] / sum);
        }
    }
}
