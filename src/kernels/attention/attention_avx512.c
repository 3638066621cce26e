/*
 * attention_avx512.c - flash-style attention for AVX-512 (contract: attention.h).
 *
 * Loop nest per head:
 *   for each chunk of up to QC queries:          running max m / sum l per row on stack
 *     for each block of up to BK = 64 keys:      (causal: only keys any row can see)
 *       transpose K[block] into kt[d][BK]         (once per chunk and block)
 *       for each tile of up to BQ = 6 queries:
 *         S = Q_tile K_block^T                    6 x 4 zmm accumulators, keys in lanes
 *         online softmax per row: m_new, alpha = exp(m_old - m_new), P = exp(S - m_new)
 *         O_tile = alpha * O_tile + P V_block     head_dim in lanes, 64 columns at a time
 *     O[chunk rows] /= l
 * O itself holds the unnormalised accumulator between key blocks, so the stack only
 * needs the transposed block (64 KiB at head_dim 256).
 *
 * Traps: the first key block of a tile initialises O (no read of the old contents:
 * alpha * garbage could be NaN); masked scores are -inf, and a row whose keys in a
 * block are all masked keeps m (m is finite after the first block because key 0 is
 * visible to every query); kt columns past the block are zeroed (0 * q stays finite).
 */
#include <math.h>

#include "kernels/act/vmath_avx512.h"
#include "kernels/attention/attention.h"

#define BK 64
#define BQ 6
#define QC 512
#define PD_INLINE static inline __attribute__((always_inline))

/* S tile: s[r][jj] = sum_d q[r, d] * kt[d][jj] for r < bq, jj < 16 * nvk. */
typedef struct s_job {
    int dim;
    const float *q;   /* Q[h, i0, 0] */
    size_t q_ld;
    const float *kt;  /* [dim][BK] */
    float *s;         /* out: [bq][BK] */
} s_job;

PD_INLINE void s_tile(const s_job *t, int bq, int nvk) {
    __m512 acc[BQ][BK / 16];
#pragma GCC unroll 6
    for (int r = 0; r < bq; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nvk; v++) acc[r][v] = _mm512_setzero_ps();
    const float *q = t->q;
    const size_t q_ld = t->q_ld;
    const float *kt = t->kt;
    for (int d = 0; d < t->dim; d++, kt += BK) {
        __m512 kv[BK / 16];
#pragma GCC unroll 4
        for (int v = 0; v < nvk; v++) kv[v] = _mm512_loadu_ps(kt + v * 16);
#pragma GCC unroll 6
        for (int r = 0; r < bq; r++) {
            __m512 qb = _mm512_set1_ps(q[(size_t)r * q_ld + (size_t)d]);
#pragma GCC unroll 4
            for (int v = 0; v < nvk; v++) acc[r][v] = _mm512_fmadd_ps(qb, kv[v], acc[r][v]);
        }
    }
    float *s = t->s;
#pragma GCC unroll 6
    for (int r = 0; r < bq; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nvk; v++) _mm512_storeu_ps(s + r * BK + v * 16, acc[r][v]);
}

/* O tile columns [0, cols) (cols <= 64): o = (first ? 0 : alpha * o) + P V. */
typedef struct pv_job {
    int n_keys;
    const float *p;      /* [bq][BK] */
    const float *v;      /* V[h, j0, d0] */
    size_t v_ld;
    float *o;            /* O[h, i0, d0] */
    size_t o_ld;
    const float *alpha;  /* [bq] */
    int first;
    int cols;
} pv_job;

PD_INLINE void pv_tile(const pv_job *t, int bq, int nvd) {
    __mmask16 m[4];
    __m512 acc[BQ][4];
#pragma GCC unroll 4
    for (int c = 0; c < nvd; c++) m[c] = v16_tail_mask((size_t)PD_MAX(t->cols - c * 16, 0));
#pragma GCC unroll 6
    for (int r = 0; r < bq; r++)
#pragma GCC unroll 4
        for (int c = 0; c < nvd; c++)
            acc[r][c] = t->first ? _mm512_setzero_ps()
                                 : _mm512_mul_ps(_mm512_maskz_loadu_ps(m[c], t->o + (size_t)r * t->o_ld + c * 16),
                                                 _mm512_set1_ps(t->alpha[r]));
    const float *v = t->v;
    for (int jj = 0; jj < t->n_keys; jj++, v += t->v_ld) {
        __m512 vv[4];
#pragma GCC unroll 4
        for (int c = 0; c < nvd; c++) vv[c] = _mm512_maskz_loadu_ps(m[c], v + c * 16);
#pragma GCC unroll 6
        for (int r = 0; r < bq; r++) {
            __m512 pb = _mm512_set1_ps(t->p[r * BK + jj]);
#pragma GCC unroll 4
            for (int c = 0; c < nvd; c++) acc[r][c] = _mm512_fmadd_ps(pb, vv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < bq; r++)
#pragma GCC unroll 4
        for (int c = 0; c < nvd; c++) _mm512_mask_storeu_ps(t->o + (size_t)r * t->o_ld + c * 16, m[c], acc[r][c]);
}

typedef void (*s_fn)(const s_job *t);
typedef void (*pv_fn)(const pv_job *t);

#define PD_S_TILE(bq, nvk) \
    static void s_##bq##x##nvk(const s_job *t) { s_tile(t, bq, nvk); }
#define PD_PV_TILE(bq, nvd) \
    static void pv_##bq##x##nvd(const pv_job *t) { pv_tile(t, bq, nvd); }
PD_S_TILE(1, 1) PD_S_TILE(2, 1) PD_S_TILE(3, 1) PD_S_TILE(4, 1) PD_S_TILE(5, 1) PD_S_TILE(6, 1)
PD_S_TILE(1, 2) PD_S_TILE(2, 2) PD_S_TILE(3, 2) PD_S_TILE(4, 2) PD_S_TILE(5, 2) PD_S_TILE(6, 2)
PD_S_TILE(1, 3) PD_S_TILE(2, 3) PD_S_TILE(3, 3) PD_S_TILE(4, 3) PD_S_TILE(5, 3) PD_S_TILE(6, 3)
PD_S_TILE(1, 4) PD_S_TILE(2, 4) PD_S_TILE(3, 4) PD_S_TILE(4, 4) PD_S_TILE(5, 4) PD_S_TILE(6, 4)
PD_PV_TILE(1, 1) PD_PV_TILE(2, 1) PD_PV_TILE(3, 1) PD_PV_TILE(4, 1) PD_PV_TILE(5, 1) PD_PV_TILE(6, 1)
PD_PV_TILE(1, 2) PD_PV_TILE(2, 2) PD_PV_TILE(3, 2) PD_PV_TILE(4, 2) PD_PV_TILE(5, 2) PD_PV_TILE(6, 2)
PD_PV_TILE(1, 3) PD_PV_TILE(2, 3) PD_PV_TILE(3, 3) PD_PV_TILE(4, 3) PD_PV_TILE(5, 3) PD_PV_TILE(6, 3)
PD_PV_TILE(1, 4) PD_PV_TILE(2, 4) PD_PV_TILE(3, 4) PD_PV_TILE(4, 4) PD_PV_TILE(5, 4) PD_PV_TILE(6, 4)
#undef PD_S_TILE
#undef PD_PV_TILE

/* [nvk - 1][bq] and [nvd - 1][bq]. */
static const s_fn S_TILES[4][BQ + 1] = {
    {NULL, s_1x1, s_2x1, s_3x1, s_4x1, s_5x1, s_6x1},
    {NULL, s_1x2, s_2x2, s_3x2, s_4x2, s_5x2, s_6x2},
    {NULL, s_1x3, s_2x3, s_3x3, s_4x3, s_5x3, s_6x3},
    {NULL, s_1x4, s_2x4, s_3x4, s_4x4, s_5x4, s_6x4},
};
static const pv_fn PV_TILES[4][BQ + 1] = {
    {NULL, pv_1x1, pv_2x1, pv_3x1, pv_4x1, pv_5x1, pv_6x1},
    {NULL, pv_1x2, pv_2x2, pv_3x2, pv_4x2, pv_5x2, pv_6x2},
    {NULL, pv_1x3, pv_2x3, pv_3x3, pv_4x3, pv_5x3, pv_6x3},
    {NULL, pv_1x4, pv_2x4, pv_3x4, pv_4x4, pv_5x4, pv_6x4},
};

/* kt[d][jj] = K[j0 + jj, d] for jj < n_keys; zero up to the next multiple of 16. */
static void transpose_keys(float *kt, const float *k, size_t k_ld, int n_keys, int dim) {
    int padded = (n_keys + 15) & ~15;
    for (int jj = 0; jj < n_keys; jj++) {
        const float *kr = k + (size_t)jj * k_ld;
        for (int d = 0; d < dim; d++) kt[d * BK + jj] = kr[d];
    }
    for (int d = 0; d < dim; d++)
        for (int jj = n_keys; jj < padded; jj++) kt[d * BK + jj] = 0.0f;
}

/* Online softmax over one tile's scores (in place: s becomes P). Row r is query
 * i0 + r; its visible keys in the block are jj < lim_r. Updates m, l; alpha[r] is the
 * factor for the row's previous accumulator. */
static void softmax_tile(float *s, int bq, int n_keys, int i0, int j0, const pd_attn_args *g,
                         float *m_run, float *l_run, float *alpha) {
    const int nvk = (n_keys + 15) / 16;
    const __m512 scale = _mm512_set1_ps(g->scale);
    const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
    float m_from[BQ], m_to[BQ], sums[BQ];
    for (int r = 0; r < bq; r++) {
        int lim = g->causal ? PD_MIN(n_keys, i0 + r - j0 + 1) : n_keys;
        float *sr = s + r * BK;
        __m512 x[BK / 16];
        __m512 mx = neg_inf;
        for (int v = 0; v < nvk; v++) {
            __mmask16 vis = v16_tail_mask((size_t)PD_MAX(lim - v * 16, 0));
            x[v] = _mm512_mask_mul_ps(neg_inf, vis, _mm512_loadu_ps(sr + v * 16), scale);
            mx = _mm512_max_ps(mx, x[v]);
        }
        float m_old = m_run[r];
        float m_new = fmaxf(m_old, _mm512_reduce_max_ps(mx));
        if (m_new == -INFINITY) {   /* nothing visible yet (defensive): alpha = 1, P = 0 */
            m_from[r] = m_to[r] = sums[r] = 0.0f;
            for (int v = 0; v < nvk; v++) _mm512_storeu_ps(sr + v * 16, _mm512_setzero_ps());
            continue;
        }
        __m512 vm = _mm512_set1_ps(m_new);
        __m512 sum = _mm512_setzero_ps();
        for (int v = 0; v < nvk; v++) {
            __m512 p = v16_exp(_mm512_sub_ps(x[v], vm));
            _mm512_storeu_ps(sr + v * 16, p);
            sum = _mm512_add_ps(sum, p);
        }
        m_from[r] = m_old;
        m_to[r] = m_new;
        sums[r] = _mm512_reduce_add_ps(sum);
        m_run[r] = m_new;
    }
    /* alpha = exp(m_old - m_new) for all rows at once (m_old = -inf gives 0; tiny
     * factors are flushed by v16_exp, so O never holds denormals); l = l * alpha + sum. */
    const __mmask16 rows = v16_tail_mask((size_t)bq);
    __m512 a = v16_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(rows, m_from), _mm512_maskz_loadu_ps(rows, m_to)));
    _mm512_mask_storeu_ps(alpha, rows, a);
    __m512 l = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(rows, l_run), a, _mm512_maskz_loadu_ps(rows, sums));
    _mm512_mask_storeu_ps(l_run, rows, l);
}

static void attend_chunk(const pd_attn_args *g, int h, int c0, int c1, float *kt) {
    const int dim = g->head_dim;
    const float *qh = g->q + (size_t)h * g->q_hs;
    const float *kh = g->k + (size_t)h * g->k_hs;
    const float *vh = g->v + (size_t)h * g->v_hs;
    float *oh = g->o + (size_t)h * g->o_hs;
    float m_run[QC], l_run[QC];
    float s[BQ * BK] __attribute__((aligned(64)));
    float alpha[BQ];
    for (int r = 0; r < c1 - c0; r++) {
        m_run[r] = -INFINITY;
        l_run[r] = 0.0f;
    }
    const int kv_end = g->causal ? PD_MIN(g->n_kv, c1) : g->n_kv;
    for (int j0 = 0; j0 < kv_end; j0 += BK) {
        const int bk = PD_MIN(BK, kv_end - j0);
        transpose_keys(kt, kh + (size_t)j0 * g->k_ld, g->k_ld, bk, dim);
        for (int i0 = c0; i0 < c1; i0 += BQ) {
            const int bq = PD_MIN(BQ, c1 - i0);
            /* Keys this tile can see: causal rows see j <= i0 + bq - 1. */
            const int nk = g->causal ? PD_MIN(bk, i0 + bq - j0) : bk;
            if (nk <= 0) continue;
            s_job sj = {dim, qh + (size_t)i0 * g->q_ld, g->q_ld, kt, s};
            S_TILES[(nk + 15) / 16 - 1][bq](&sj);
            softmax_tile(s, bq, nk, i0, j0, g, m_run + (i0 - c0), l_run + (i0 - c0), alpha);
            for (int d0 = 0; d0 < dim; d0 += 64) {
                int cols = PD_MIN(64, dim - d0);
                pv_job pj = {nk, s, vh + (size_t)j0 * g->v_ld + d0, g->v_ld,
                             oh + (size_t)i0 * g->o_ld + d0, g->o_ld, alpha, j0 == 0, cols};
                PV_TILES[(cols + 15) / 16 - 1][bq](&pj);
            }
        }
    }
    for (int i = c0; i < c1; i++) {
        float *o = oh + (size_t)i * g->o_ld;
        __m512 inv = _mm512_set1_ps(kv_end > 0 ? 1.0f / l_run[i - c0] : 0.0f);
        for (int d = 0; d < dim; d += 16) {
            __mmask16 m = v16_tail_mask((size_t)(dim - d));
            __m512 x = kv_end > 0 ? _mm512_maskz_loadu_ps(m, o + d) : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(o + d, m, _mm512_mul_ps(x, inv));
        }
    }
}

void pd_f32_attention_6x64__avx512(const pd_attn_args *g) {
    PD_ASSERT(g->head_dim >= 1 && g->head_dim <= PD_ATTN_MAX_HEAD_DIM);
    float kt[PD_ATTN_MAX_HEAD_DIM * BK] __attribute__((aligned(64)));
    for (int h = g->h0; h < g->h1; h++)
        for (int c0 = g->q0; c0 < g->q1; c0 += QC) attend_chunk(g, h, c0, PD_MIN(g->q1, c0 + QC), kt);
}
