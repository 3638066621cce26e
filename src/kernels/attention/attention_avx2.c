/*
 * attention_avx2.c - flash-style attention for AVX2 + FMA (contract: attention.h).
 *
 * Same loop nest as attention_avx512.c (chunks of QC queries, key blocks of BK = 64
 * transposed once into kt[d][BK], query tiles of BQ = 6 rows, online softmax with O as
 * the accumulator), sized for 16 ymm registers:
 *   S tile: 6 rows x 16 keys (12 accumulators + 2 key vectors + 1 broadcast), repeated
 *           over the block's 16-key groups;
 *   P V:    6 rows x 16 head_dim columns at a time.
 *
 * Traps: the first key block of a tile initialises O (no read of the old contents:
 * alpha * garbage could be NaN); masked scores are -inf, and a row whose keys in a
 * block are all masked keeps m (m is finite after the first block because key 0 is
 * visible to every query); kt columns past the block are zeroed (0 * q stays finite).
 */
#include <math.h>

#include "kernels/act/vmath_avx2.h"
#include "kernels/attention/attention.h"

#define BK 64
#define BQ 6
#define QC 512
#define PD_INLINE static inline __attribute__((always_inline))

/* S tile: s[r][jj] = sum_d q[r, d] * kt[d][jj] for r < bq, jj < 16 * n_groups. */
typedef struct s_job {
    int dim;
    int n_groups;     /* 16-key groups */
    const float *q;   /* Q[h, i0, 0] */
    size_t q_ld;
    const float *kt;  /* [dim][BK] */
    float *s;         /* out: [bq][BK] */
} s_job;

PD_INLINE void s_tile(const s_job *t, int bq) {
    const float *q = t->q;
    const size_t q_ld = t->q_ld;
    for (int g = 0; g < t->n_groups; g++) {
        __m256 acc[BQ][2];
#pragma GCC unroll 6
        for (int r = 0; r < bq; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        const float *kt = t->kt + g * 16;
        for (int d = 0; d < t->dim; d++, kt += BK) {
            __m256 k0 = _mm256_loadu_ps(kt), k1 = _mm256_loadu_ps(kt + 8);
#pragma GCC unroll 6
            for (int r = 0; r < bq; r++) {
                __m256 qb = _mm256_broadcast_ss(q + (size_t)r * q_ld + (size_t)d);
                acc[r][0] = _mm256_fmadd_ps(qb, k0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(qb, k1, acc[r][1]);
            }
        }
#pragma GCC unroll 6
        for (int r = 0; r < bq; r++) {
            _mm256_storeu_ps(t->s + r * BK + g * 16, acc[r][0]);
            _mm256_storeu_ps(t->s + r * BK + g * 16 + 8, acc[r][1]);
        }
    }
}

/* O tile columns [0, cols) (cols <= 16): o = (first ? 0 : alpha * o) + P V. */
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
    __m256i m[2];
    __m256 acc[BQ][2];
#pragma GCC unroll 2
    for (int c = 0; c < nvd; c++) m[c] = v8_tail_mask((size_t)PD_MAX(t->cols - c * 8, 0));
#pragma GCC unroll 6
    for (int r = 0; r < bq; r++)
#pragma GCC unroll 2
        for (int c = 0; c < nvd; c++)
            acc[r][c] = t->first ? _mm256_setzero_ps()
                                 : _mm256_mul_ps(_mm256_maskload_ps(t->o + (size_t)r * t->o_ld + c * 8, m[c]),
                                                 _mm256_set1_ps(t->alpha[r]));
    const float *v = t->v;
    for (int jj = 0; jj < t->n_keys; jj++, v += t->v_ld) {
        __m256 vv[2];
#pragma GCC unroll 2
        for (int c = 0; c < nvd; c++) vv[c] = _mm256_maskload_ps(v + c * 8, m[c]);
#pragma GCC unroll 6
        for (int r = 0; r < bq; r++) {
            __m256 pb = _mm256_broadcast_ss(t->p + r * BK + jj);
#pragma GCC unroll 2
            for (int c = 0; c < nvd; c++) acc[r][c] = _mm256_fmadd_ps(pb, vv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < bq; r++)
#pragma GCC unroll 2
        for (int c = 0; c < nvd; c++) _mm256_maskstore_ps(t->o + (size_t)r * t->o_ld + c * 8, m[c], acc[r][c]);
}

typedef void (*s_fn)(const s_job *t);
typedef void (*pv_fn)(const pv_job *t);

#define PD_S_TILE(bq) \
    static void s_##bq(const s_job *t) { s_tile(t, bq); }
#define PD_PV_TILE(bq, nvd) \
    static void pv_##bq##x##nvd(const pv_job *t) { pv_tile(t, bq, nvd); }
PD_S_TILE(1) PD_S_TILE(2) PD_S_TILE(3) PD_S_TILE(4) PD_S_TILE(5) PD_S_TILE(6)
PD_PV_TILE(1, 1) PD_PV_TILE(2, 1) PD_PV_TILE(3, 1) PD_PV_TILE(4, 1) PD_PV_TILE(5, 1) PD_PV_TILE(6, 1)
PD_PV_TILE(1, 2) PD_PV_TILE(2, 2) PD_PV_TILE(3, 2) PD_PV_TILE(4, 2) PD_PV_TILE(5, 2) PD_PV_TILE(6, 2)
#undef PD_S_TILE
#undef PD_PV_TILE

/* [bq] and [nvd - 1][bq]. */
static const s_fn S_TILES[BQ + 1] = {NULL, s_1, s_2, s_3, s_4, s_5, s_6};
static const pv_fn PV_TILES[2][BQ + 1] = {
    {NULL, pv_1x1, pv_2x1, pv_3x1, pv_4x1, pv_5x1, pv_6x1},
    {NULL, pv_1x2, pv_2x2, pv_3x2, pv_4x2, pv_5x2, pv_6x2},
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
    const int nvk = (n_keys + 7) / 8;
    const __m256 scale = _mm256_set1_ps(g->scale);
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    float m_from[BQ], m_to[BQ], sums[BQ];
    for (int r = 0; r < bq; r++) {
        int lim = g->causal ? PD_MIN(n_keys, i0 + r - j0 + 1) : n_keys;
        float *sr = s + r * BK;
        __m256 x[BK / 8];
        __m256 mx = neg_inf;
        for (int v = 0; v < nvk; v++) {
            __m256 vis = _mm256_castsi256_ps(v8_tail_mask((size_t)PD_MAX(lim - v * 8, 0)));
            x[v] = _mm256_blendv_ps(neg_inf, _mm256_mul_ps(_mm256_loadu_ps(sr + v * 8), scale), vis);
            mx = _mm256_max_ps(mx, x[v]);
        }
        float m_old = m_run[r];
        float m_new = fmaxf(m_old, v8_hmax(mx));
        if (m_new == -INFINITY) {   /* nothing visible yet (defensive): alpha = 1, P = 0 */
            m_from[r] = m_to[r] = sums[r] = 0.0f;
            for (int v = 0; v < nvk; v++) _mm256_storeu_ps(sr + v * 8, _mm256_setzero_ps());
            continue;
        }
        __m256 vm = _mm256_set1_ps(m_new);
        __m256 sum = _mm256_setzero_ps();
        for (int v = 0; v < nvk; v++) {
            __m256 p = v8_exp(_mm256_sub_ps(x[v], vm));
            _mm256_storeu_ps(sr + v * 8, p);
            sum = _mm256_add_ps(sum, p);
        }
        m_from[r] = m_old;
        m_to[r] = m_new;
        sums[r] = v8_hsum(sum);
        m_run[r] = m_new;
    }
    /* alpha = exp(m_old - m_new) for all rows at once (m_old = -inf gives 0; tiny
     * factors are flushed by v8_exp, so O never holds denormals); l = l * alpha + sum. */
    const __m256i rows = v8_tail_mask((size_t)bq);
    __m256 a = v8_exp(_mm256_sub_ps(_mm256_maskload_ps(m_from, rows), _mm256_maskload_ps(m_to, rows)));
    _mm256_maskstore_ps(alpha, rows, a);
    __m256 l = _mm256_fmadd_ps(_mm256_maskload_ps(l_run, rows), a, _mm256_maskload_ps(sums, rows));
    _mm256_maskstore_ps(l_run, rows, l);
}

static void attend_chunk(const pd_attn_args *g, int h, int c0, int c1, float *kt) {
    const int dim = g->head_dim;
    const float *qh = g->q + (size_t)h * g->q_hs;
    const float *kh = g->k + (size_t)h * g->k_hs;
    const float *vh = g->v + (size_t)h * g->v_hs;
    float *oh = g->o + (size_t)h * g->o_hs;
    float m_run[QC], l_run[QC];
    float s[BQ * BK] __attribute__((aligned(32)));
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
            s_job sj = {dim, (nk + 15) / 16, qh + (size_t)i0 * g->q_ld, g->q_ld, kt, s};
            S_TILES[bq](&sj);
            softmax_tile(s, bq, nk, i0, j0, g, m_run + (i0 - c0), l_run + (i0 - c0), alpha);
            for (int d0 = 0; d0 < dim; d0 += 16) {
                int cols = PD_MIN(16, dim - d0);
                pv_job pj = {nk, s, vh + (size_t)j0 * g->v_ld + d0, g->v_ld,
                             oh + (size_t)i0 * g->o_ld + d0, g->o_ld, alpha, j0 == 0, cols};
                PV_TILES[(cols + 7) / 8 - 1][bq](&pj);
            }
        }
    }
    for (int i = c0; i < c1; i++) {
        float *o = oh + (size_t)i * g->o_ld;
        __m256 inv = _mm256_set1_ps(kv_end > 0 ? 1.0f / l_run[i - c0] : 0.0f);
        for (int d = 0; d < dim; d += 8) {
            __m256i m = v8_tail_mask((size_t)(dim - d));
            __m256 x = kv_end > 0 ? _mm256_maskload_ps(o + d, m) : _mm256_setzero_ps();
            _mm256_maskstore_ps(o + d, m, _mm256_mul_ps(x, inv));
        }
    }
}

void pd_f32_attention_6x64__avx2(const pd_attn_args *g) {
    PD_ASSERT(g->head_dim >= 1 && g->head_dim <= PD_ATTN_MAX_HEAD_DIM);
    float kt[PD_ATTN_MAX_HEAD_DIM * BK] __attribute__((aligned(64)));
    for (int h = g->h0; h < g->h1; h++)
        for (int c0 = g->q0; c0 < g->q1; c0 += QC) attend_chunk(g, h, c0, PD_MIN(g->q1, c0 + QC), kt);
}
