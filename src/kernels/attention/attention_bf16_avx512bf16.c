/*
 * attention_bf16_avx512bf16.c - flash-style attention with bf16 arithmetic on
 * AVX512-BF16 (vdpbf16ps), for machines without AMX (contract: attention.h, pd_attn_args
 * in kernels.h; roundings: attention_bf16_ref.c).
 *
 * Everything is computed with queries in the 16 lanes, so the softmax max and sums over
 * keys are vertical (vmaxps, vdpbf16ps with ones): no horizontal reductions, no
 * broadcasts of per-row values. vdpbf16ps multiplies pairs along its reduction axis, so
 * each operand is stored as dwords holding two bf16 neighbours along that axis:
 *   S^T[key][q] = K Q^T      Q^T: per query block [np][32] dwords (bf16 Q[q, 2p], Q[q, 2p + 1]),
 *                            converted once per chunk; K block [np][bk] dwords (bf16 K[key, 2p],
 *                            K[key, 2p + 1]; 16 x 16 transposes): tile 8 keys x 32 queries
 *                            (16 zmm), per d pair 2 Q^T loads + 8 broadcast K pairs at
 *                            consecutive addresses
 *   P^T = 2^(c S^T - m)      fp32 softmax; P rounded to bf16 and stored as key pairs
 *                            [bk / 2][32] dwords (vcvtne2ps2bf16 + vpermw interleave)
 *   O^T[d][q] += V^T P^T     V block [bk / 2][dim] dwords (bf16 V[2i, d], V[2i + 1, d]);
 *                            tile 12 d x 32 queries (24 zmm), per key pair 2 P^T loads +
 *                            12 broadcast V pairs; O^T lives in a stack accumulator
 *                            [dim][32] per query block and is transposed back at the end.
 * All dwords are read by one broadcast or one 64-byte load, so head_dim needs no padding
 * beyond the even pair (40, 80 and 160 waste nothing; odd dims read a zero partner).
 *
 * Loop nest per head:
 *   for each chunk of qc queries (<= 256; Q^T + O^T + m, l of the chunk fit the arena):
 *     Q^T -> bf16 pairs; O^T, l = 0; m = -inf
 *     for each key block of bk keys (64; 32 from head_dim 235, 16 from 307):
 *       K, V -> bf16 pair layouts (once per chunk and block, reused by every query block);
 *       the next block's fp32 rows are prefetched meanwhile (a cold row otherwise stalls
 *       the conversion for an L3 or memory round trip)
 *       for each block of 32 queries (causal: only keys the block can see):
 *         S^T (register tiles, stored [bk][32]); block max; lazy m update; P^T and l;
 *         O^T += V^T P^T in d groups of <= 12
 *     O[chunk] = transpose(O^T) / l
 * Drivers should pass many rows per call (.inc: 256) so the K, V conversion is amortised.
 *
 * Softmax, in log2 units (as the AMX variant): c = |scale| log2(e) (a negative scale
 * negates Q, exactly); p = 2^(c s - m) as t = fmsub(s, c, m), r = t - floor(t)
 * (vreduceps), 2^r by a degree-3 minimax polynomial (relative error 7.5e-5, far below the
 * bf16 rounding of P), scalef. m is lazy: it moves (and O^T columns and l are rescaled
 * by 2^(m_old - m_new)) only when a block's max exceeds it by more than LAZY = 32, so
 * p <= 2^32 and the fp32 sums stay far from overflow. The rounding of P is relative, so
 * a lazy m changes P only by powers of two (up to each p being one bf16 step off the
 * reference, which rounds against the global max; see attention.h). l sums the rounded
 * P (vdpbf16ps with ones): O is a convex combination of the bf16 V rows.
 * MXCSR gets FTZ | DAZ for the call (restored): 2^t below 2^-126 would be a denormal;
 * vcvtne2ps2bf16 and vdpbf16ps read denormals as zero anyway.
 *
 * Stack: a 160 KiB arena (Q^T, O^T, m, l of the chunk; K, V, S^T, P^T of the block):
 * chunks of 256 queries up to head_dim 80 (one K, V conversion per 256-row call), 96 at
 * 160, 32 at 512.
 *
 * Traps: padding that meets real data must be real zeros (0 * NaN garbage is NaN): the
 * odd partner of the last d pair in Q^T and K, K rows past the block (their scores are
 * masked, but stay finite), the partner of an odd last key in V; keys not visible (causal,
 * block tail) get P = 0 through masks, never through the exp; query lanes past the chunk
 * read zero Q (finite scores) and are never stored; a lane that saw no key keeps
 * m = -inf (alpha = 1 there, not NaN); vcvtne2ps_pbh(a, b) puts b in the low half; GCC 12
 * -O2 drops the calls to a static function that only prefetches (its interprocedural
 * passes find no side effect: no prefetch was left in the object), so the helper is
 * always_inline.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/act/vmath_avx512.h"
#include "kernels/attention/attention.h"
#include "kernels/attention/attention_bf16_x86.h"

#define QT 16                 /* queries per lane tile */
#define QB 32                 /* queries per block: 2 tiles */
#define QC_MAX 256            /* queries per chunk */
#define ND_MAX 12             /* d rows per O^T register tile */
#define ARENA (160 * 1024)    /* stack bytes for the buffers */
#define LAZY 32.0f            /* log2 units the block max may exceed m before m moves */
#define PD_INLINE static inline __attribute__((always_inline))

/* Per-call state: geometry and the arena's buffers. */
typedef struct attn_ctx {
    const pd_attn_args *g;
    int dim, np;        /* np = ceil(dim / 2): d pairs */
    int qc, bk;         /* queries per chunk, keys per block (multiples of 32 and 16) */
    float c;            /* |scale| * log2(e) */
    bool neg;           /* scale < 0: Q is negated on conversion */
    uint32_t *qt;       /* Q^T: block b at b * np * QB, [np][QB] */
    float *ot;          /* O^T: block b at b * dim * QB, [dim][QB] */
    float *m, *l;       /* [qc] running max (log2 units) and sum of P */
    uint32_t *kt;       /* K block, key pairs transposed: [np][bk] */
    uint32_t *vp;       /* V block [bk / 2][dim] */
    float *s;           /* S^T [bk][QB] */
    uint32_t *p;        /* P^T [bk / 2][QB] */
} attn_ctx;

/* 2^t for finite t (FTZ: t < -126 gives 0); lanes outside k give 0. */
PD_INLINE __m512 exp2_lanes(__m512 t, __mmask16 k) {
    __m512 r = _mm512_reduce_ps(t, 0x09);   /* t - floor(t) in [0, 1) */
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(0.0780245227f), r, _mm512_set1_ps(0.226067155f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.695833541f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.999925219f));
    return _mm512_maskz_scalef_ps(k, p, t);   /* p * 2^floor(t) */
}

/* ---- conversions ------------------------------------------------------------------------ */

/* Q^T of chunk rows [c0, c1), head h: block b, pair p, lane q = bf16 pair p of query
 * c0 + 32 b + q (zero past c1, negated when scale < 0). */
__attribute__((noinline)) static void convert_q(const attn_ctx *x, int h, int c0, int c1) {
    const pd_attn_args *g = x->g;
    const float *qh = g->q + (size_t)h * g->q_hs;
    const __m512i sign = _mm512_set1_epi16(x->neg ? (short)0x8000 : 0);
    const int np = x->np;
    for (int i0 = c0; i0 < c1; i0 += QT) {
        const int rows = PD_MIN(QT, c1 - i0), b = (i0 - c0) / QB, t = (i0 - c0) / QT % 2;
        uint32_t *dst = x->qt + (size_t)b * (size_t)np * QB + t * QT;
        for (int p0 = 0; p0 < np; p0 += 16) {
            __m512i r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = i < rows ? _mm512_xor_si512(pd_bf16x_load32(qh + (size_t)(i0 + i) * g->q_ld + 2 * p0, x->dim - 2 * p0), sign)
                                : _mm512_setzero_si512();
            pd_bf16x_transpose16(r);
            for (int i = 0; i < PD_MIN(16, np - p0); i++) _mm512_storeu_si512((void *)(dst + (size_t)(p0 + i) * QB), r[i]);
        }
    }
    /* A block's second tile past c1 is never read (the block runs one tile). */
}

/* K and V rows [j0, j0 + n) of head h into kt (key pairs transposed: kt[p][key], zero
 * for keys past n up to the next multiple of 16) and vp (key pairs; the partner of an odd
 * last key is zero). */
__attribute__((noinline)) static void convert_kv(const attn_ctx *x, int h, int j0, int n) {
    const pd_attn_args *g = x->g;
    const int np = x->np, dim = x->dim, bk = x->bk;
    const float *kh = g->k + (size_t)h * g->k_hs + (size_t)j0 * g->k_ld;
    for (int jg = 0; jg < n; jg += 16) {
        const int rows = PD_MIN(16, n - jg);
        for (int p0 = 0; p0 < np; p0 += 16) {
            __m512i r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = i < rows ? pd_bf16x_load32(kh + (size_t)(jg + i) * g->k_ld + 2 * p0, dim - 2 * p0) : _mm512_setzero_si512();
            pd_bf16x_transpose16(r);
            for (int i = 0; i < PD_MIN(16, np - p0); i++) _mm512_storeu_si512((void *)(x->kt + (size_t)(p0 + i) * (size_t)bk + jg), r[i]);
        }
    }
    const __m512i idx = pd_bf16x_interleave_idx();
    const float *vh = g->v + (size_t)h * g->v_hs + (size_t)j0 * g->v_ld;
    for (int i = 0; 2 * i < n; i++) {
        const float *a = vh + (size_t)(2 * i) * g->v_ld, *b = a + g->v_ld;
        const bool has_b = 2 * i + 1 < n;
        uint32_t *dst = x->vp + (size_t)i * (size_t)dim;
        int d0 = 0;
        if (has_b)
            for (; d0 + 16 <= dim; d0 += 16) {
                __m512 va = _mm512_loadu_ps(a + d0), vb = _mm512_loadu_ps(b + d0);
                _mm512_storeu_si512((void *)(dst + d0), _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(vb, va)));
            }
        for (; d0 < dim; d0 += 16) {
            const __mmask16 k = pd_bf16x_lanes(dim - d0);
            __m512 va = _mm512_maskz_loadu_ps(k, a + d0);
            __m512 vb = has_b ? _mm512_maskz_loadu_ps(k, b + d0) : _mm512_setzero_ps();
            _mm512_mask_storeu_epi32(dst + d0, k, _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(vb, va)));
        }
    }
}

/* ---- register tiles --------------------------------------------------------------------- */

/* S^T rows [0, nk) (keys of kt, row stride bk) x nqt query tiles: s[r][16 t + lane] =
 * sum_p dot2(K pair (p, r), Q^T pair (p, lane)). */
PD_INLINE void s_tile(const uint32_t *qt, const uint32_t *kt, int bk, int np, float *s, const int nqt, const int nk) {
    __m512 acc[16][2];
#pragma GCC unroll 16
    for (int r = 0; r < nk; r++)
#pragma GCC unroll 2
        for (int t = 0; t < nqt; t++) acc[r][t] = _mm512_setzero_ps();
    for (int p = 0; p < np; p++, qt += QB, kt += bk) {
        __m512bh q[2];
#pragma GCC unroll 2
        for (int t = 0; t < nqt; t++) q[t] = (__m512bh)_mm512_loadu_si512((const void *)(qt + t * QT));
#pragma GCC unroll 16
        for (int r = 0; r < nk; r++) {
            const __m512bh kv = (__m512bh)_mm512_set1_epi32((int)kt[r]);
#pragma GCC unroll 2
            for (int t = 0; t < nqt; t++) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], kv, q[t]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < nk; r++)
#pragma GCC unroll 2
        for (int t = 0; t < nqt; t++) _mm512_storeu_ps(s + r * QB + t * QT, acc[r][t]);
}

/* noinline (also convert_q, convert_kv, attend_block): inlined into the driver, GCC ran
 * out of registers and reloaded the tile's pointers from the stack every d pair. */
__attribute__((noinline)) static void s_2x8(const uint32_t *qt, const uint32_t *kt, int bk, int np, float *s) {
    s_tile(qt, kt, bk, np, s, 2, 8);
}
__attribute__((noinline)) static void s_1x16(const uint32_t *qt, const uint32_t *kt, int bk, int np, float *s) {
    s_tile(qt, kt, bk, np, s, 1, 16);
}

/* O^T rows [0, nd) (from vp's column 0) x nqt query tiles += over key pairs i < kp:
 * dot2(V pair (i, d), P^T pair (i, lane)). */
PD_INLINE void pv_tile(const uint32_t *vp, int dim, const uint32_t *p, int kp, float *ot, const int nqt,
                       const int nd) {
    __m512 acc[ND_MAX][2];
#pragma GCC unroll 12
    for (int d = 0; d < nd; d++)
#pragma GCC unroll 2
        for (int t = 0; t < nqt; t++) acc[d][t] = _mm512_loadu_ps(ot + d * QB + t * QT);
    for (int i = 0; i < kp; i++, vp += dim, p += QB) {
        __m512bh pv[2];
#pragma GCC unroll 2
        for (int t = 0; t < nqt; t++) pv[t] = (__m512bh)_mm512_loadu_si512((const void *)(p + t * QT));
#pragma GCC unroll 12
        for (int d = 0; d < nd; d++) {
            const __m512bh vv = (__m512bh)_mm512_set1_epi32((int)vp[d]);
#pragma GCC unroll 2
            for (int t = 0; t < nqt; t++) acc[d][t] = _mm512_dpbf16_ps(acc[d][t], vv, pv[t]);
        }
    }
#pragma GCC unroll 12
    for (int d = 0; d < nd; d++)
#pragma GCC unroll 2
        for (int t = 0; t < nqt; t++) _mm512_storeu_ps(ot + d * QB + t * QT, acc[d][t]);
}

typedef void (*pv_fn)(const uint32_t *vp, int dim, const uint32_t *p, int kp, float *ot);

#define PD_PV_TILE(nqt, nd) \
    static void pv_##nqt##x##nd(const uint32_t *vp, int dim, const uint32_t *p, int kp, float *ot) { \
        pv_tile(vp, dim, p, kp, ot, nqt, nd); \
    }
PD_PV_TILE(1, 1) PD_PV_TILE(1, 2) PD_PV_TILE(1, 3) PD_PV_TILE(1, 4) PD_PV_TILE(1, 5) PD_PV_TILE(1, 6)
PD_PV_TILE(1, 7) PD_PV_TILE(1, 8) PD_PV_TILE(1, 9) PD_PV_TILE(1, 10) PD_PV_TILE(1, 11) PD_PV_TILE(1, 12)
PD_PV_TILE(2, 1) PD_PV_TILE(2, 2) PD_PV_TILE(2, 3) PD_PV_TILE(2, 4) PD_PV_TILE(2, 5) PD_PV_TILE(2, 6)
PD_PV_TILE(2, 7) PD_PV_TILE(2, 8) PD_PV_TILE(2, 9) PD_PV_TILE(2, 10) PD_PV_TILE(2, 11) PD_PV_TILE(2, 12)
#undef PD_PV_TILE

/* [nqt - 1][nd] */
static const pv_fn PV_TILES[2][ND_MAX + 1] = {
    {NULL, pv_1x1, pv_1x2, pv_1x3, pv_1x4, pv_1x5, pv_1x6, pv_1x7, pv_1x8, pv_1x9, pv_1x10, pv_1x11, pv_1x12},
    {NULL, pv_2x1, pv_2x2, pv_2x3, pv_2x4, pv_2x5, pv_2x6, pv_2x7, pv_2x8, pv_2x9, pv_2x10, pv_2x11, pv_2x12},
};

/* ---- one query block against one key block ----------------------------------------------- */

/* Query block b (queries [i0, i0 + nq), nq <= 32) against keys [j0, j0 + nk) of the
 * converted block (nk >= 1: the keys the block can see; causal rows see fewer). */
__attribute__((noinline)) static void attend_block(const attn_ctx *x, int b, int i0, int nq, int j0, int nk) {
    const pd_attn_args *g = x->g;
    const int np = x->np, dim = x->dim, nqt = nq > QT ? 2 : 1;
    const uint32_t *qt = x->qt + (size_t)b * (size_t)np * QB;
    float *ot = x->ot + (size_t)b * (size_t)dim * QB;
    float *m = x->m + b * QB, *l = x->l + b * QB;
    /* S^T for rows [0, nk) rounded up to the tile (K rows past the block are zero). */
    if (nqt == 2)
        for (int r = 0; r < nk; r += 8) s_2x8(qt, x->kt + r, x->bk, np, x->s + r * QB);
    else
        for (int r = 0; r < nk; r += 16) s_1x16(qt, x->kt + r, x->bk, np, x->s + r * QB);
    /* Some lane cannot see some key j < nk only near the causal diagonal. */
    const bool diag = g->causal && j0 + nk - 1 > i0;
    const bool full = !diag && nk % 2 == 0;
    const __m512 neg_inf = _mm512_set1_ps(-INFINITY), vc = _mm512_set1_ps(x->c);
    const __m512i idx = pd_bf16x_interleave_idx();
    const __m512bh ones = (__m512bh)_mm512_set1_epi16(0x3F80);
    for (int t = 0; t < nqt; t++) {
        /* lane: query index - j0, so key row jj is visible iff lane >= jj (causal). */
        const __m512i lane = _mm512_add_epi32(_mm512_set1_epi32(i0 + t * QT - j0),
                                              _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
        const float *s = x->s + t * QT;
        /* Block max over visible keys; m moves only past m + LAZY (log2 units). */
        __m512 mx0 = neg_inf, mx1 = neg_inf;
        if (!diag) {
            int jj = 0;
            for (; jj + 1 < nk; jj += 2) {
                mx0 = _mm512_max_ps(mx0, _mm512_loadu_ps(s + jj * QB));
                mx1 = _mm512_max_ps(mx1, _mm512_loadu_ps(s + (jj + 1) * QB));
            }
            if (jj < nk) mx0 = _mm512_max_ps(mx0, _mm512_loadu_ps(s + jj * QB));
        } else {
            for (int jj = 0; jj < nk; jj++)
                mx0 = _mm512_mask_max_ps(mx0, _mm512_cmp_epi32_mask(lane, _mm512_set1_epi32(jj), _MM_CMPINT_NLT), mx0,
                                         _mm512_loadu_ps(s + jj * QB));
        }
        __m512 mx = _mm512_max_ps(mx0, mx1);
        __m512 mv = _mm512_loadu_ps(m + t * QT);
        const __m512 cand = _mm512_mask_mul_ps(neg_inf, _mm512_cmp_ps_mask(mx, neg_inf, _CMP_NEQ_UQ), mx, vc);
        if (_mm512_cmp_ps_mask(cand, _mm512_add_ps(mv, _mm512_set1_ps(LAZY)), _CMP_GT_OQ)) {
            const __m512 m_new = _mm512_max_ps(mv, cand);
            /* alpha = 2^(m_old - m_new): m_old = -inf gives 0, m_new = -inf keeps 1. */
            const __m512 alpha = _mm512_mask_mov_ps(
                _mm512_set1_ps(1.0f), _mm512_cmp_ps_mask(m_new, neg_inf, _CMP_NEQ_UQ),
                v16_exp(_mm512_mul_ps(_mm512_sub_ps(mv, m_new), _mm512_set1_ps(0.69314718f))));
            for (int d = 0; d < dim; d++) {
                float *o = ot + d * QB + t * QT;
                _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_loadu_ps(o), alpha));
            }
            _mm512_storeu_ps(l + t * QT, _mm512_mul_ps(_mm512_loadu_ps(l + t * QT), alpha));
            _mm512_storeu_ps(m + t * QT, m_new);
            mv = m_new;
        }
        /* P^T = bf16(2^(c s - m)) as key pairs; l += the rounded P. */
        uint32_t *p = x->p + t * QT;
        __m512 lsum0 = _mm512_setzero_ps(), lsum1 = _mm512_setzero_ps();
        if (full) {
            int jj = 0;
            for (; jj + 3 < nk; jj += 4) {
                __m512 e0 = exp2_lanes(_mm512_fmsub_ps(_mm512_loadu_ps(s + jj * QB), vc, mv), 0xFFFF);
                __m512 e1 = exp2_lanes(_mm512_fmsub_ps(_mm512_loadu_ps(s + (jj + 1) * QB), vc, mv), 0xFFFF);
                __m512 e2 = exp2_lanes(_mm512_fmsub_ps(_mm512_loadu_ps(s + (jj + 2) * QB), vc, mv), 0xFFFF);
                __m512 e3 = exp2_lanes(_mm512_fmsub_ps(_mm512_loadu_ps(s + (jj + 3) * QB), vc, mv), 0xFFFF);
                __m512i w0 = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
                __m512i w1 = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(e3, e2));
                _mm512_storeu_si512((void *)(p + (jj / 2) * QB), w0);
                _mm512_storeu_si512((void *)(p + (jj / 2 + 1) * QB), w1);
                lsum0 = _mm512_dpbf16_ps(lsum0, (__m512bh)w0, ones);
                lsum1 = _mm512_dpbf16_ps(lsum1, (__m512bh)w1, ones);
            }
            for (; jj < nk; jj += 2) {
                __m512 e0 = exp2_lanes(_mm512_fmsub_ps(_mm512_loadu_ps(s + jj * QB), vc, mv), 0xFFFF);
                __m512 e1 = exp2_lanes(_mm512_fmsub_ps(_mm512_loadu_ps(s + (jj + 1) * QB), vc, mv), 0xFFFF);
                __m512i w0 = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
                _mm512_storeu_si512((void *)(p + (jj / 2) * QB), w0);
                lsum0 = _mm512_dpbf16_ps(lsum0, (__m512bh)w0, ones);
            }
        } else {
            for (int jj = 0; jj < nk; jj += 2) {
                __mmask16 k0 = diag ? _mm512_cmp_epi32_mask(lane, _mm512_set1_epi32(jj), _MM_CMPINT_NLT) : 0xFFFF;
                __mmask16 k1 = jj + 1 >= nk ? 0
                               : diag       ? _mm512_cmp_epi32_mask(lane, _mm512_set1_epi32(jj + 1), _MM_CMPINT_NLT)
                                            : 0xFFFF;
                __m512 e0 = exp2_lanes(_mm512_fmsub_ps(_mm512_loadu_ps(s + jj * QB), vc, mv), k0);
                __m512 e1 = exp2_lanes(_mm512_fmsub_ps(_mm512_loadu_ps(s + (jj + 1) * QB), vc, mv), k1);
                __m512i w0 = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
                _mm512_storeu_si512((void *)(p + (jj / 2) * QB), w0);
                lsum0 = _mm512_dpbf16_ps(lsum0, (__m512bh)w0, ones);
            }
        }
        _mm512_storeu_ps(l + t * QT, _mm512_add_ps(_mm512_loadu_ps(l + t * QT), _mm512_add_ps(lsum0, lsum1)));
    }
    /* O^T += V^T P^T over the key pairs, d in balanced groups of <= ND_MAX. */
    const int kp = (nk + 1) / 2, ng = (dim + ND_MAX - 1) / ND_MAX, base = dim / ng, extra = dim % ng;
    for (int gi = 0, d0 = 0; gi < ng; gi++) {
        const int nd = base + (gi < extra);
        PV_TILES[nqt - 1][nd](x->vp + d0, dim, x->p, kp, ot + d0 * QB);
        d0 += nd;
    }
}

/* ---- driver ----------------------------------------------------------------------------- */

/* O rows [c0, c1) of head h = (O^T / l)^T; zeros when no key is visible (n_kv = 0). */
static void write_out(const attn_ctx *x, int h, int c0, int c1, bool any) {
    const pd_attn_args *g = x->g;
    const int dim = x->dim;
    float *oh = g->o + (size_t)h * g->o_hs;
    for (int i0 = c0; i0 < c1; i0 += QT) {
        const int rows = PD_MIN(QT, c1 - i0), b = (i0 - c0) / QB, t = (i0 - c0) / QT % 2;
        const float *ot = x->ot + (size_t)b * (size_t)dim * QB + t * QT;
        const __m512 inv = any ? _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_loadu_ps(x->l + (i0 - c0)))
                               : _mm512_setzero_ps();
        for (int d0 = 0; d0 < dim; d0 += 16) {
            __m512i r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = any && d0 + i < dim ? _mm512_castps_si512(_mm512_mul_ps(_mm512_loadu_ps(ot + (d0 + i) * QB), inv))
                                           : _mm512_setzero_si512();
            pd_bf16x_transpose16(r);
            const __mmask16 k = pd_bf16x_lanes(dim - d0);
            for (int i = 0; i < rows; i++)
                _mm512_mask_storeu_ps(oh + (size_t)(i0 + i) * g->o_ld + d0, k, _mm512_castsi512_ps(r[i]));
        }
    }
}

static void attend_chunk(const attn_ctx *x, int h, int c0, int c1) {
    const pd_attn_args *g = x->g;
    const int kv_end = g->causal ? PD_MIN(g->n_kv, c1) : g->n_kv;
    if (kv_end <= 0) {
        write_out(x, h, c0, c1, false);
        return;
    }
    const int nb = (c1 - c0 + QB - 1) / QB;
    convert_q(x, h, c0, c1);
    memset(x->ot, 0, (size_t)nb * (size_t)x->dim * QB * sizeof(float));
    for (int i = 0; i < nb * QB; i++) {
        x->m[i] = -INFINITY;
        x->l[i] = 0.0f;
    }
    for (int j0 = 0; j0 < kv_end; j0 += x->bk) {
        const int n = PD_MIN(x->bk, kv_end - j0);
        convert_kv(x, h, j0, n);
        /* The next block's rows (or the first block's, for the next chunk), spread over
         * the query blocks. */
        const int jn = j0 + x->bk < kv_end ? j0 + x->bk : 0, nn = PD_MIN(x->bk, kv_end - jn);
        for (int b = 0; b < nb; b++) {
            pd_bf16x_prefetch_kv(x->g, x->dim, h, jn + nn * b / nb, nn * (b + 1) / nb - nn * b / nb);
            const int i0 = c0 + b * QB, nq = PD_MIN(QB, c1 - i0);
            const int nk = g->causal ? PD_MIN(n, i0 + nq - j0) : n;
            if (nk > 0) attend_block(x, b, i0, nq, j0, nk);
        }
    }
    write_out(x, h, c0, c1, true);
}

/* Carves the arena (64-byte aligned pieces). */
static void *carve(unsigned char **at, size_t bytes) {
    void *p = *at;
    *at += (bytes + 63) & ~(size_t)63;
    return p;
}

/* Arena bytes per chunk query (Q^T, O^T, m, l) and per block key (K, V, S^T, P^T); each
 * of the 8 pieces may lose up to 64 bytes to alignment. */
static size_t query_bytes(const attn_ctx *x) { return (size_t)x->np * 4 + (size_t)x->dim * 4 + 8; }
static size_t key_bytes(const attn_ctx *x) { return (size_t)x->np * 4 + (size_t)x->dim * 2 + QB * 4 + QB * 2; }

void pd_bf16_attention_32x64__avx512bf16(const pd_attn_args *g) {
    PD_ASSERT(g->head_dim >= 1 && g->head_dim <= PD_ATTN_MAX_HEAD_DIM);
    if (g->q0 >= g->q1 || g->h0 >= g->h1) return;
    attn_ctx x = {.g = g, .dim = g->head_dim, .np = (g->head_dim + 1) / 2};
    /* Key block 64, or 32 / 16 when the chunk would drop below 64 queries (head_dim >= 235). */
    for (x.bk = 64;; x.bk /= 2) {
        const size_t left = ARENA - 8 * 64 - (size_t)x.bk * key_bytes(&x);
        x.qc = PD_MIN(QC_MAX, (int)(left / query_bytes(&x)) & ~(QB - 1));
        if (x.qc >= 2 * QB || x.bk == 16) break;
    }
    PD_ASSERT(x.qc >= QB);
    _Alignas(64) unsigned char arena[ARENA];
    unsigned char *at = arena;
    x.qt = carve(&at, (size_t)x.qc * (size_t)x.np * 4);
    x.ot = carve(&at, (size_t)x.qc * (size_t)x.dim * 4);
    x.m = carve(&at, (size_t)x.qc * 4);
    x.l = carve(&at, (size_t)x.qc * 4);
    x.kt = carve(&at, (size_t)x.bk * (size_t)x.np * 4);
    x.vp = carve(&at, (size_t)(x.bk / 2) * (size_t)x.dim * 4);
    x.s = carve(&at, (size_t)x.bk * QB * 4);
    x.p = carve(&at, (size_t)(x.bk / 2) * QB * 4);
    PD_ASSERT(at <= arena + sizeof arena);
    x.c = fabsf(g->scale) * 1.44269504f;
    x.neg = g->scale < 0.0f;
    const unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040u);   /* FTZ | DAZ */
    for (int h = g->h0; h < g->h1; h++)
        for (int c0 = g->q0; c0 < g->q1; c0 += x.qc) attend_chunk(&x, h, c0, PD_MIN(g->q1, c0 + x.qc));
    _mm_setcsr(csr);
}
