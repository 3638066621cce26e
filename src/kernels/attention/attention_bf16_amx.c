/*
 * attention_bf16_amx.c - flash-style attention with bf16 arithmetic on Intel AMX
 * (contract: attention.h, pd_attn_args in kernels.h).
 *
 * Everything is computed transposed, queries in the 16 lanes / tile columns:
 *   S^T[key, q] = K Q^T       A = K block, bf16 row-major [keys][Dp]; B = Q^T in VNNI
 *                             layout (row p: 16 queries x (d = 2p, 2p + 1))
 *   P^T = 2^(c S^T - m)       AVX-512; one zmm = one key x 16 queries, so the max and the
 *                             sum over keys are plain vmaxps / vdpbf16ps: no horizontal
 *                             reductions, no broadcasts
 *   O^T[d, q] += V^T P^T      A = V^T block (row d: 16 pairs of keys); B = P^T in VNNI
 *                             layout (vcvtne2ps2bf16 + vpermw interleave two key rows)
 * and O = (O^T)^T / l is transposed back once per chunk (16 x 16 blocks).
 *
 * Loop nest per head:
 *   for each chunk of QC queries (Q^T + O^T accumulator <= 100 KiB: QC = 256 up to
 *   head_dim 64, 160 at 80, 96 at 160, 32 at 512):
 *     Q^T -> bf16 B tiles; query norms; m = -inf
 *     tasks (key block of BK keys) x (pair of 16-query tiles), block-major (causal: a
 *     block only with the pairs that see it), run as a software pipeline; iteration t:
 *       AVX-512: softmax of task t; conversion of K, V of the next block
 *       AMX:     O^T of task t-1 (tiles loaded from / stored to the stack accumulator
 *                O^T [Dp16][QC], zeroed instead on the first block), then S^T of t+1
 *       the AMX work is queued as steps of 4 tdpbf16ps (2 x 2 tiles) and run between
 *       the AVX work items (16 keys of a query tile, 32 keys of conversion), so the
 *       out-of-order core overlaps the tile unit with the vector units.
 *     O[chunk] = transpose(O^T) / l
 * Dp = head_dim rounded up to 32 (S k-steps), Dp16 = to 16 (O^T rows: head_dim 40 pays
 * 64 in S but 48 in PV). S^T and P^T are double-buffered by task parity; K and V^T by
 * block parity when that leaves >= 64 keys per block (BK = 128 up to head_dim 32, 96 at
 * 40 and 64, 64 at 80 and 160), else single (head_dim 512: BK = 32) and the pipeline
 * drains at each block end. K, V are converted once per (chunk, block) and reused by
 * every query of the chunk: drivers should pass many rows per call (.inc: 256).
 *
 * Softmax, in log2 units: c = |scale| log2(e) (a negative scale negates Q, exactly);
 * m = running max of c s per query; p = 2^(c s - m) as t = fmsub(s, c, m),
 * r = t - floor(t) (vreduceps), 2^r by a degree-3 minimax polynomial (relative error
 * 7.5e-5, well below the bf16 rounding of P), p = scalef(poly, t). m is lazy: it moves
 * only when a block's max exceeds it by more than LAZY = 32 (so p <= 2^32; sums of 4096
 * such weights times |V| stay far from fp32 overflow), and then the tile's O^T columns
 * and l are rescaled by 2^(m_old - m_new). The block max itself is skipped when the
 * Cauchy-Schwarz bound c |q| max_j |k_j| (norms of the chunk's queries and of the block's
 * keys, rounded up) is within LAZY of m. l sums the bf16-rounded P (vdpbf16ps with
 * ones), so O is a convex combination of the bf16 V rows up to fp32 rounding.
 * MXCSR gets FTZ | DAZ for the duration of the call (restored on return): 2^t below
 * 2^-126 would otherwise be a denormal costing a ~100-cycle microcode assist per vector.
 *
 * Stack: a 192 KiB arena (Q^T + O^T 100 KiB, K, V^T, S^T, P^T 88 KiB, m, l, norms).
 *
 * Traps: tile numbers are compile-time constants and strides are in bytes; the tile
 * config is per thread and released before returning; tile loads carry no memory
 * clobber (GCC), so a compiler barrier precedes every AMX step; zero padding
 * (d >= head_dim in K and Q^T, keys >= n in V^T, queries past the chunk in Q^T) must
 * be real zeros since 0 * NaN garbage is NaN (K rows past n need not be: masked); keys not visible (causal, block
 * tail) get P = 0 through masks, never through the exp (2^(0 - m) of a zero-padded key
 * is not 0); a lane whose keys are all masked keeps m, and m = -inf lanes only go
 * through masked exps; the softmax of a pair rescales its O^T columns, so O^T of the
 * same pair's previous task must finish first (one pair per block); the conversion of
 * block j + 1 overwrites the buffers O^T of block j - 1's last task may still read, and
 * must finish before S^T of block j + 1 starts; vcvtne2ps_pbh(a, b) puts b in the low
 * half; VCVTNE2PS2BF16 and AMX read fp32 / bf16 denormals as zero.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/act/vmath_avx512.h"
#include "kernels/attention/attention.h"
#include "kernels/attention/attention_bf16_x86.h"

#define QT 16             /* queries per tile (lanes) */
#define QP 32             /* queries per pair of tiles (the unit of the pipeline) */
#define QC_MAX 256        /* queries per chunk */
#define BK_MAX 128        /* keys per block */
#define Q_BYTES (100 * 1024)   /* Q^T chunk + O^T accumulator */
#define KV_BYTES (88 * 1024)   /* (1 or 2) x (K block + V^T block) + 2 x (S^T + P^T) */
#define LAZY 32.0f        /* log2 units the block max may exceed m before m moves */
#define PD_INLINE static inline __attribute__((always_inline))

typedef struct tile_config {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Per-call state: geometry and the stack buffers. */
typedef struct attn_ctx {
    const pd_attn_args *g;
    int dim, dp, dp16, nds, ndt;   /* dp: dim rounded up to 32; dp16: to 16; nds = dp / 32; ndt = dp16 / 16 */
    int qc, acs, bk;               /* queries per chunk, O^T row stride (floats), keys per block */
    float c;          /* |scale| * log2(e) */
    bool neg;         /* scale < 0: Q is negated on conversion */
    uint16_t *qt;     /* Q^T chunk: tile (t, ds) at (t * nds + ds) * 512 */
    float *acc;       /* O^T [dp16][acs] */
    bool dbl;         /* K, V^T double-buffered (kb[1], vt[1] used) */
    uint16_t *kb[2];  /* K block [bk][dp] */
    uint16_t *vt[2];  /* V^T block: tile (dt, ks) at (dt * (bk / 32) + ks) * 512 */
    float *s[2];      /* S^T of a pair, double-buffered: [2 tiles][bk][16] */
    uint16_t *p[2];   /* P^T of a pair, double-buffered: [2 tiles][bk / 2][32] (tile ks at ks * 512) */
    float *m, *l;     /* [qc] */
    float *qn;        /* [qc]: c * |bf16 Q row| (upper bound), for the score bound */
    float *kn;        /* [2]: max |bf16 K row| of the block in each K buffer */
} attn_ctx;

static void config_tiles(void) {
    _Alignas(64) tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}

/* sqrt(sum x[i]^2) over i < n, rounded up a little (covers bf16 rounding of x). */
PD_INLINE float norm_up(const float *x, int n) {
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __m512 v = _mm512_maskz_loadu_ps(v16_tail_mask((size_t)(n - i)), x + i);
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    return sqrtf(_mm512_reduce_add_ps(acc)) * 1.01f;
}

/* Q^T B tiles for chunk rows [c0, c1) of head h: for query tile t and d step ds, row p
 * is 16 dwords (bf16(Q[q, 2p + 32 ds]), bf16(Q[q, 2p + 1 + 32 ds])), q = the tile's
 * queries (zero past c1). */
static void convert_q(const attn_ctx *x, int h, int c0, int c1, bool norms) {
    const pd_attn_args *g = x->g;
    const float *qh = g->q + (size_t)h * g->q_hs;
    const __m512i sign = _mm512_set1_epi16(x->neg ? (short)0x8000 : 0);
    for (int t = 0; t * QT < c1 - c0; t++) {
        const int rows = PD_MIN(QT, c1 - c0 - t * QT);
        for (int ds = 0; ds < x->nds; ds++) {
            __m512i r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = i < rows ? _mm512_xor_si512(pd_bf16x_load32(qh + (size_t)(c0 + t * QT + i) * g->q_ld + ds * 32,
                                                                x->dim - ds * 32),
                                                   sign)
                                : _mm512_setzero_si512();
            pd_bf16x_transpose16(r);
            uint16_t *dst = x->qt + (size_t)(t * x->nds + ds) * 512;
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) _mm512_store_si512((void *)(dst + i * 32), r[i]);
        }
    }
    if (norms) {
        for (int i = c0; i < c1; i++) x->qn[i - c0] = x->c * norm_up(qh + (size_t)i * g->q_ld, x->dim);
        for (int i = c1 - c0; i < ((c1 - c0 + QP - 1) & ~(QP - 1)); i++) x->qn[i] = 0.0f;
    }
}

/* One V^T tile from rows v[0..rows) (rows <= 32, zero past rows) and the d lanes in
 * dm: row d of dst is 16 dwords (bf16 v[2i, d], bf16 v[2i + 1, d]), i < 16. */
PD_INLINE void vt_tile(uint16_t *dst, const float *v, size_t ld, int rows, __mmask16 dm, __m512i idx) {
    __m512i r[16];
    if (rows == 32) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            __m512 a = _mm512_maskz_loadu_ps(dm, v + (size_t)(2 * i) * ld);
            __m512 b = _mm512_maskz_loadu_ps(dm, v + (size_t)(2 * i + 1) * ld);
            r[i] = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
        }
    } else {
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            __m512 a = 2 * i < rows ? _mm512_maskz_loadu_ps(dm, v + (size_t)(2 * i) * ld) : _mm512_setzero_ps();
            __m512 b = 2 * i + 1 < rows ? _mm512_maskz_loadu_ps(dm, v + (size_t)(2 * i + 1) * ld) : _mm512_setzero_ps();
            r[i] = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
        }
    }
    pd_bf16x_transpose16(r);
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) _mm512_store_si512((void *)(dst + i * 32), r[i]);
}

/* Keys [32 c, 32 c + 32) of the block of n keys at j0 (head h) into the block buffers:
 * K rows -> kb [bk][dp] bf16 (rows past n keep whatever they hold: their scores are
 * masked), V -> V^T tiles (dt, c) (vt_tile; zero for keys >= n: 0 * NaN is NaN). */
static void convert_chunk(const attn_ctx *x, uint16_t *kb, uint16_t *vt, int h, int j0, int n, int c) {
    const pd_attn_args *g = x->g;
    const int r0 = c * 32, rows = PD_MIN(32, n - r0);
    const float *kh = g->k + (size_t)h * g->k_hs + (size_t)(j0 + r0) * g->k_ld;
    const float *vh = g->v + (size_t)h * g->v_hs + (size_t)(j0 + r0) * g->v_ld;
    const int dp = x->dp, nds = x->nds, dim = x->dim;
    uint16_t *kr = kb + (size_t)r0 * (size_t)dp;
    /* Per-lane max over the rows of the row's partial sums of squares: their sum bounds
     * max_j |K_j|^2 (the max of sums is at most the sum of maxima). */
    __m512 sq = _mm512_setzero_ps();
    for (int j = 0; j < rows; j++, kh += g->k_ld, kr += dp) {
        __m512 acc = _mm512_setzero_ps();
        for (int ds = 0; ds < nds; ds++) {
            const int left = dim - ds * 32;
            __m512 lo = left >= 16 ? _mm512_loadu_ps(kh + ds * 32) : _mm512_maskz_loadu_ps(v16_tail_mask((size_t)left), kh + ds * 32);
            __m512 hi = left >= 32 ? _mm512_loadu_ps(kh + ds * 32 + 16)
                        : left > 16 ? _mm512_maskz_loadu_ps(v16_tail_mask((size_t)(left - 16)), kh + ds * 32 + 16)
                                    : _mm512_setzero_ps();
            acc = _mm512_fmadd_ps(lo, lo, _mm512_fmadd_ps(hi, hi, acc));
            _mm512_store_si512((void *)(kr + ds * 32), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
        sq = _mm512_max_ps(sq, acc);
    }
    const int kbuf = kb == x->kb[0] ? 0 : 1;
    const float kn = sqrtf(_mm512_reduce_add_ps(sq)) * 1.01f;
    x->kn[kbuf] = c == 0 || kn > x->kn[kbuf] ? kn : x->kn[kbuf];
    const __m512i idx = pd_bf16x_interleave_idx();
    const int bks = x->bk / 32;
    for (int dt = 0; dt < x->ndt; dt++)
        vt_tile(vt + (size_t)(dt * bks + c) * 512, vh + dt * 16, g->v_ld, rows,
                v16_tail_mask((size_t)(dim - dt * 16)), idx);
}

/* ---- AMX steps ------------------------------------------------------------------------
 * Tiles: tmm0..3 accumulators (2 x 2: tmm(2a + b)), tmm4, 5 A, tmm6, 7 B. A step uses
 * only these; the accumulators of an S group live from its first to its last d step,
 * those of a PV group from its first to its last key step, and the queue never starts
 * another group in between. */

/* S^T, d step ds of key groups kg (+ kg + 1 when na = 2) x query tiles 0..nb-1:
 * tmm(2a + b) += K[kg + a] Q^T[b]; zeroed at ds = 0, stored to sb after the last. */
PD_INLINE void s_step(const attn_ctx *x, const uint16_t *kb, const uint16_t *qt, float *sb, int kg, int ds, int na,
                      int nb) {
    const size_t kst = (size_t)x->dp * sizeof(uint16_t);
    const uint16_t *k0 = kb + (size_t)kg * 16 * (size_t)x->dp + ds * 32, *k1 = k0 + 16 * (size_t)x->dp;
    if (ds == 0) {
        _tile_zero(0);
        if (nb > 1) _tile_zero(1);
        if (na > 1) _tile_zero(2);
        if (na > 1 && nb > 1) _tile_zero(3);
    }
    _tile_loadd(4, k0, kst);
    _tile_loadd(6, qt + (size_t)ds * 512, 64);
    _tile_dpbf16ps(0, 4, 6);
    if (nb > 1) {
        _tile_loadd(7, qt + (size_t)(x->nds + ds) * 512, 64);
        _tile_dpbf16ps(1, 4, 7);
    }
    if (na > 1) {
        _tile_loadd(5, k1, kst);
        _tile_dpbf16ps(2, 5, 6);
        if (nb > 1) _tile_dpbf16ps(3, 5, 7);
    }
    if (ds == x->nds - 1) {
        float *s0 = sb + (size_t)kg * 256, *s1 = s0 + (size_t)x->bk * 16;
        _tile_stored(0, s0, 64);
        if (nb > 1) _tile_stored(1, s1, 64);
        if (na > 1) _tile_stored(2, s0 + 256, 64);
        if (na > 1 && nb > 1) _tile_stored(3, s1 + 256, 64);
    }
}

/* O^T, key step ks of d tiles dt (+ dt + 1 when na = 2) x query tiles 0..nb-1:
 * tmm(2a + b) += V^T[dt + a][ks] P^T[b][ks]; at ks = 0 zeroed (first block) or loaded
 * from the accumulator columns acc, stored back after the last key step. */
PD_INLINE void pv_step(const attn_ctx *x, const uint16_t *vt, float *acc, const uint16_t *pb, int dt, int ks,
                       int nks, bool first, int na, int nb) {
    const size_t as = (size_t)x->acs * sizeof(float);
    float *o0 = acc + (size_t)dt * 16 * (size_t)x->acs, *o1 = o0 + 16 * (size_t)x->acs;
    if (ks == 0) {
        if (first) {
            _tile_zero(0);
            if (nb > 1) _tile_zero(1);
            if (na > 1) _tile_zero(2);
            if (na > 1 && nb > 1) _tile_zero(3);
        } else {
            _tile_loadd(0, o0, as);
            if (nb > 1) _tile_loadd(1, o0 + QT, as);
            if (na > 1) _tile_loadd(2, o1, as);
            if (na > 1 && nb > 1) _tile_loadd(3, o1 + QT, as);
        }
    }
    const size_t bks = (size_t)(x->bk / 32);
    const uint16_t *v0 = vt + ((size_t)dt * bks + (size_t)ks) * 512, *v1 = v0 + bks * 512;
    const uint16_t *p0 = pb + (size_t)ks * 512, *p1 = p0 + (size_t)x->bk * 16;
    _tile_loadd(4, v0, 64);
    _tile_loadd(6, p0, 64);
    _tile_dpbf16ps(0, 4, 6);
    if (nb > 1) {
        _tile_loadd(7, p1, 64);
        _tile_dpbf16ps(1, 4, 7);
    }
    if (na > 1) {
        _tile_loadd(5, v1, 64);
        _tile_dpbf16ps(2, 5, 6);
        if (nb > 1) _tile_dpbf16ps(3, 5, 7);
    }
    if (ks == nks - 1) {
        _tile_stored(0, o0, as);
        if (nb > 1) _tile_stored(1, o0 + QT, as);
        if (na > 1) _tile_stored(2, o1, as);
        if (na > 1 && nb > 1) _tile_stored(3, o1 + QT, as);
    }
}

/* The AMX work of one pipeline iteration: O^T of one task (n_pv steps), then S^T of
 * another (n_s steps); steps run in order, spread over the AVX work of a third task. */
typedef struct amx_queue {
    const attn_ctx *x;
    const uint16_t *vt;   /* PV: the task's V^T block */
    float *acc;           /* PV: the pair's accumulator columns */
    const uint16_t *pb;   /* PV: the task's P^T */
    int pv_nks, pv_nb, n_pv;
    bool pv_first;
    const uint16_t *kb;   /* S: the task's K block */
    const uint16_t *qt;   /* S: the pair's Q^T tiles */
    float *sb;            /* S: out */
    int s_nkg, s_nb, n_s;
    int done, cap;        /* steps run; steps that may run now */
} amx_queue;

static void amx_step(amx_queue *q) {
    const attn_ctx *x = q->x;
    int i = q->done++;
    __asm__ volatile("" ::: "memory");   /* tile loads read what plain C stores wrote */
    if (i < q->n_pv) {
        const int dt = i / q->pv_nks * 2, ks = i % q->pv_nks;
        const int na = dt + 1 < x->ndt ? 2 : 1;
        if (q->pv_nb > 1) {
            if (na > 1) pv_step(x, q->vt, q->acc, q->pb, dt, ks, q->pv_nks, q->pv_first, 2, 2);
            else pv_step(x, q->vt, q->acc, q->pb, dt, ks, q->pv_nks, q->pv_first, 1, 2);
        } else {
            if (na > 1) pv_step(x, q->vt, q->acc, q->pb, dt, ks, q->pv_nks, q->pv_first, 2, 1);
            else pv_step(x, q->vt, q->acc, q->pb, dt, ks, q->pv_nks, q->pv_first, 1, 1);
        }
        return;
    }
    i -= q->n_pv;
    const int kg = i / x->nds * 2, ds = i % x->nds;
    const int na = kg + 1 < q->s_nkg ? 2 : 1;
    if (q->s_nb > 1) {
        if (na > 1) s_step(x, q->kb, q->qt, q->sb, kg, ds, 2, 2);
        else s_step(x, q->kb, q->qt, q->sb, kg, ds, 1, 2);
    } else {
        if (na > 1) s_step(x, q->kb, q->qt, q->sb, kg, ds, 2, 1);
        else s_step(x, q->kb, q->qt, q->sb, kg, ds, 1, 1);
    }
}

/* Runs queued steps until done >= min(target, cap). */
static void amx_pump(amx_queue *q, int target) {
    target = PD_MIN(target, q->cap);
    while (q->done < target) amx_step(q);
}

/* ---- softmax (AVX-512) -------------------------------------------------------------- */

/* p = 2^t for finite t <= ~8 (FTZ: t < -126 gives 0); lanes outside k give 0. */
PD_INLINE __m512 exp2_lanes(__m512 t, __mmask16 k) {
    __m512 r = _mm512_reduce_ps(t, 0x09);   /* t - floor(t) in [0, 1) */
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(0.0780245227f), r, _mm512_set1_ps(0.226067155f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.695833541f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.999925219f));
    return _mm512_maskz_scalef_ps(k, p, t);   /* p * 2^floor(t) */
}

/* Lanes that see key row jj of the block: jj < n_vis and, when causal, lane >= jj
 * (lane = query index - j0 per lane). */
PD_INLINE __mmask16 vis(__m512i lane, int jj, int n_vis, bool causal) {
    if (jj >= n_vis) return 0;
    return causal ? _mm512_cmp_epi32_mask(lane, _mm512_set1_epi32(jj), _MM_CMPINT_NLT) : (__mmask16)0xFFFF;
}

/* One query tile's part of a key block. */
typedef struct sm_tile {
    const float *s;   /* S^T [rows][16] */
    uint16_t *p;      /* P^T pairs of rows */
    float *m, *l;     /* the tile's 16 running maxima / sums */
    const float *qn;  /* the tile's 16 query norms (times c) */
    float *acc;       /* the tile's O^T columns */
    __m512i lane;     /* query index - j0 per lane */
    bool full;        /* every computed row visible to every lane */
} sm_tile;

/* Block max per lane over rows [0, rows), the lazy update of m (log2 units), and the
 * rescale of the O^T columns and l when m moves (not on the first block). */
static void softmax_max(const attn_ctx *x, const sm_tile *t, int rows, bool first, int n_vis, float kn) {
    const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
    const __m512 vc = _mm512_set1_ps(x->c);
    const float *s = t->s;
    __m512 m = _mm512_loadu_ps(t->m);
    /* Cauchy-Schwarz: c s <= c |q| |k|; within LAZY of m, the block max cannot move m. */
    if (!first && !_mm512_cmp_ps_mask(_mm512_mul_ps(_mm512_loadu_ps(t->qn), _mm512_set1_ps(kn)),
                                      _mm512_add_ps(m, _mm512_set1_ps(LAZY)), _CMP_GT_OQ))
        return;
    __m512 mx0 = neg_inf, mx1 = neg_inf, mx2 = neg_inf, mx3 = neg_inf;
    if (t->full) {
        for (int jj = 0; jj < rows; jj += 4) {
            mx0 = _mm512_max_ps(mx0, _mm512_load_ps(s + jj * 16));
            mx1 = _mm512_max_ps(mx1, _mm512_load_ps(s + jj * 16 + 16));
            mx2 = _mm512_max_ps(mx2, _mm512_load_ps(s + jj * 16 + 32));
            mx3 = _mm512_max_ps(mx3, _mm512_load_ps(s + jj * 16 + 48));
        }
    } else {
        const bool causal = x->g->causal;
        for (int jj = 0; jj < rows; jj++)
            mx0 = _mm512_mask_max_ps(mx0, vis(t->lane, jj, n_vis, causal), mx0, _mm512_load_ps(s + jj * 16));
    }
    __m512 mx = _mm512_max_ps(_mm512_max_ps(mx0, mx1), _mm512_max_ps(mx2, mx3));
    __m512 cand = _mm512_mask_mul_ps(neg_inf, _mm512_cmp_ps_mask(mx, neg_inf, _CMP_NEQ_UQ), mx, vc);
    if (!_mm512_cmp_ps_mask(cand, _mm512_add_ps(m, _mm512_set1_ps(LAZY)), _CMP_GT_OQ)) return;
    __m512 m_new = _mm512_max_ps(m, cand);
    if (!first) {
        /* alpha = 2^(m_old - m_new); m_old = -inf gives 0, m_new = -inf keeps 1. */
        __mmask16 live = _mm512_cmp_ps_mask(m_new, neg_inf, _CMP_NEQ_UQ);
        __m512 alpha = _mm512_mask_mov_ps(_mm512_set1_ps(1.0f), live,
                                          v16_exp(_mm512_mul_ps(_mm512_sub_ps(m, m_new), _mm512_set1_ps(0.69314718f))));
        for (int d = 0; d < x->dp16; d++) {
            float *o = t->acc + (size_t)d * (size_t)x->acs;
            _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_loadu_ps(o), alpha));
        }
        _mm512_storeu_ps(t->l, _mm512_mul_ps(_mm512_loadu_ps(t->l), alpha));
    }
    _mm512_storeu_ps(t->m, m_new);
}

/* P^T = bf16(2^(c s - m)) for rows [r0, r1) (multiples of 4, r1 <= computed rows) as
 * VNNI pairs of keys; returns lsum + the sum of the rounded P per lane. */
static __m512 softmax_exp(const attn_ctx *x, const sm_tile *t, int r0, int r1, int n_vis, __m512 lsum) {
    const __m512 vc = _mm512_set1_ps(x->c);
    const __m512 m = _mm512_loadu_ps(t->m);
    const __m512i idx = pd_bf16x_interleave_idx();
    const __m512bh ones = (__m512bh)_mm512_set1_epi16(0x3F80);
    const float *s = t->s;
    uint16_t *p = t->p;
    __m512 lsum1 = _mm512_setzero_ps();
    if (t->full) {
        for (int jj = r0; jj < r1; jj += 4) {
            __m512 a = exp2_lanes(_mm512_fmsub_ps(_mm512_load_ps(s + jj * 16), vc, m), 0xFFFF);
            __m512 b = exp2_lanes(_mm512_fmsub_ps(_mm512_load_ps(s + jj * 16 + 16), vc, m), 0xFFFF);
            __m512 e = exp2_lanes(_mm512_fmsub_ps(_mm512_load_ps(s + jj * 16 + 32), vc, m), 0xFFFF);
            __m512 f = exp2_lanes(_mm512_fmsub_ps(_mm512_load_ps(s + jj * 16 + 48), vc, m), 0xFFFF);
            __m512i w0 = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
            __m512i w1 = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(f, e));
            _mm512_store_si512((void *)(p + jj * 16), w0);
            _mm512_store_si512((void *)(p + jj * 16 + 32), w1);
            lsum = _mm512_dpbf16_ps(lsum, (__m512bh)w0, ones);
            lsum1 = _mm512_dpbf16_ps(lsum1, (__m512bh)w1, ones);
        }
    } else {
        const bool causal = x->g->causal;
        for (int jj = r0; jj < r1; jj += 2) {
            __m512 a = exp2_lanes(_mm512_fmsub_ps(_mm512_load_ps(s + jj * 16), vc, m), vis(t->lane, jj, n_vis, causal));
            __m512 b = exp2_lanes(_mm512_fmsub_ps(_mm512_load_ps(s + jj * 16 + 16), vc, m),
                                  vis(t->lane, jj + 1, n_vis, causal));
            __m512i w = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
            _mm512_store_si512((void *)(p + jj * 16), w);
            lsum = _mm512_dpbf16_ps(lsum, (__m512bh)w, ones);
        }
    }
    return _mm512_add_ps(lsum, lsum1);
}

/* Spreads the queued AMX steps over n AVX work items: tick() after each. */
typedef struct hooks {
    int h, n;
} hooks;

static void tick(amx_queue *q, hooks *k) {
    k->h++;
    amx_pump(q, (q->n_pv + q->n_s) * k->h / k->n);
}

/* AVX work items of softmax_pair. */
PD_INLINE int softmax_items(int nb, int nkg) { return nb * (nkg + 1); }

/* Softmax of pair (query tiles 0..nb-1 starting at chunk row r, absolute query i0) over
 * the computed rows nkg * 16 of a key block (bk keys from j0), P^T padded with zero
 * rows to nks * 32. */
static void softmax_pair(const attn_ctx *x, amx_queue *q, hooks *k, const float *sb, uint16_t *pb, int r, int i0,
                         int nb, int nkg, int nks, int bk, int j0, bool first, float kn) {
    const pd_attn_args *g = x->g;
    const int rows = nkg * 16;
    for (int b = 0; b < nb; b++) {
        const int qi = i0 + b * QT;
        sm_tile t = {sb + (size_t)b * (size_t)x->bk * 16, pb + (size_t)b * (size_t)x->bk * 16,
                     x->m + r + b * QT, x->l + r + b * QT, x->qn + r + b * QT, x->acc + r + b * QT,
                     _mm512_add_epi32(_mm512_set1_epi32(qi - j0),
                                      _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)),
                     rows <= bk && (!g->causal || j0 + rows - 1 <= qi)};
        softmax_max(x, &t, rows, first, bk, kn);
        tick(q, k);
        __m512 lsum = _mm512_setzero_ps();
        for (int kg = 0; kg < nkg; kg++) {
            lsum = softmax_exp(x, &t, kg * 16, kg * 16 + 16, bk, lsum);
            tick(q, k);
        }
        for (int jj = rows; jj < nks * 32; jj += 2) _mm512_store_si512((void *)(t.p + jj * 16), _mm512_setzero_si512());
        _mm512_storeu_ps(t.l, first ? lsum : _mm512_add_ps(_mm512_loadu_ps(t.l), lsum));
    }
}

/* ---- driver ----------------------------------------------------------------------------- */

/* O rows [c0, c1) of head h = O^T / l (zeros when nothing was visible). */
static void write_out(const attn_ctx *x, int h, int c0, int c1, bool any) {
    const pd_attn_args *g = x->g;
    float *oh = g->o + (size_t)h * g->o_hs;
    for (int t = 0; t * QT < c1 - c0; t++) {
        const int rows = PD_MIN(QT, c1 - c0 - t * QT);
        __m512 inv = any ? _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_loadu_ps(x->l + t * QT)) : _mm512_setzero_ps();
        for (int dt = 0; dt * 16 < x->dim; dt++) {
            __m512i r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = any ? _mm512_castps_si512(_mm512_mul_ps(
                                 _mm512_loadu_ps(x->acc + (size_t)(dt * 16 + i) * (size_t)x->acs + t * QT), inv))
                           : _mm512_setzero_si512();
            pd_bf16x_transpose16(r);
            const __mmask16 dm = v16_tail_mask((size_t)(x->dim - dt * 16));
#pragma GCC unroll 16
            for (int i = 0; i < rows; i++)
                _mm512_mask_storeu_ps(oh + (size_t)(c0 + t * QT + i) * g->o_ld + dt * 16, dm, _mm512_castsi512_ps(r[i]));
        }
    }
}

/* One unit of the pipeline: pair p of the chunk against the key block at j0 (bk keys,
 * nk of them visible to the pair). */
typedef struct task {
    int j0, bk, p, nk;
} task;

/* Keys of a block that pair p (chunk rows [32 p, 32 p + 32) of [c0, c1)) sees. */
PD_INLINE int pair_keys(const attn_ctx *x, int c0, int c1, int p, int j0, int bk) {
    if (!x->g->causal) return bk;
    const int last = PD_MIN(c1, c0 + (p + 1) * QP) - 1;
    return PD_MIN(bk, last - j0 + 1);
}

/* The first task of the block at j0 (false past the last block); causal blocks skip
 * the pairs whose rows all precede j0. */
static bool task_block(const attn_ctx *x, int c0, int c1, int kv_end, int j0, task *t) {
    if (j0 >= kv_end) return false;
    t->j0 = j0;
    t->bk = PD_MIN(x->bk, kv_end - j0);
    t->p = 0;
    while ((t->nk = pair_keys(x, c0, c1, t->p, j0, t->bk)) <= 0) t->p++;
    return true;
}

static bool task_next(const attn_ctx *x, int c0, int c1, int kv_end, const task *cur, task *t) {
    *t = *cur;
    if (c0 + (cur->p + 1) * QP < c1) {
        t->p++;
        t->nk = pair_keys(x, c0, c1, t->p, t->j0, t->bk);
        return true;
    }
    return task_block(x, c0, c1, kv_end, cur->j0 + x->bk, t);
}

PD_INLINE int pair_tiles(int c0, int c1, int p) { return c1 - (c0 + p * QP) > QT ? 2 : 1; }

/* Block buffers of the block at j0. */
PD_INLINE int kv_buf(const attn_ctx *x, int j0) { return x->dbl ? (j0 / x->bk) & 1 : 0; }

/* Queues O^T of task pv (NULL: none; P^T in p[pv_buf]) then S^T of task s (NULL:
 * none; into s[s_buf]). */
static void queue_set(amx_queue *q, const attn_ctx *x, int c0, int c1, const task *pv, int pv_buf, const task *s,
                      int s_buf) {
    q->done = 0;
    q->n_s = q->n_pv = 0;
    if (pv) {
        q->vt = x->vt[kv_buf(x, pv->j0)];
        q->acc = x->acc + (size_t)pv->p * QP;
        q->pb = x->p[pv_buf];
        q->pv_nks = (pv->nk + 31) / 32;
        q->pv_nb = pair_tiles(c0, c1, pv->p);
        q->pv_first = pv->j0 == 0;
        q->n_pv = (x->ndt + 1) / 2 * q->pv_nks;
    }
    if (s) {
        q->kb = x->kb[kv_buf(x, s->j0)];
        q->qt = x->qt + (size_t)(2 * s->p) * (size_t)x->nds * 512;
        q->sb = x->s[s_buf];
        q->s_nkg = (s->nk + 15) / 16;
        q->s_nb = pair_tiles(c0, c1, s->p);
        q->n_s = (q->s_nkg + 1) / 2 * x->nds;
    }
    q->cap = q->n_pv + q->n_s;
}

static void run_all(amx_queue *q) {
    q->cap = q->n_pv + q->n_s;
    amx_pump(q, q->cap);
}

/* Converts chunks [c, c + cnt) of the block of n keys at j0 (head h), ticking k, and
 * prefetches the chunk after them. */
static void convert_chunks(const attn_ctx *x, amx_queue *q, hooks *k, int h, int j0, int n, int c, int cnt) {
    const int b = kv_buf(x, j0);
    for (int i = c; i < c + cnt; i++) {
        convert_chunk(x, x->kb[b], x->vt[b], h, j0, n, i);
        if (k) tick(q, k);
    }
    const int nxt = (c + cnt) * 32 < n ? j0 + (c + cnt) * 32 : j0 + x->bk;
    if (nxt < x->g->n_kv) pd_bf16x_prefetch_kv(x->g, x->dim, h, nxt, 32);
}

/* One chunk of queries [c0, c1) of head h. Tasks (block, pair) run as a pipeline: while
 * the AVX-512 units do the softmax of task t (and convert K, V of the next block), the
 * AMX unit computes O^T of task t - 1 and S^T of task t + 1 (double-buffered S^T, P^T;
 * K, V^T double-buffered when they fit, else the pipeline drains at block ends). */
static void attend_chunk(const attn_ctx *x, int h, int c0, int c1) {
    const pd_attn_args *g = x->g;
    const int kv_end = g->causal ? PD_MIN(g->n_kv, c1) : g->n_kv;
    if (kv_end <= 0) {
        write_out(x, h, c0, c1, false);
        return;
    }
    convert_q(x, h, c0, c1, kv_end > x->bk);   /* the norms serve blocks after the first */
    const int np = (c1 - c0 + QP - 1) / QP;
    for (int i = 0; i < np * QP; i++) x->m[i] = -INFINITY;
    amx_queue q = {.x = x};
    task cur, prev, next;
    task_block(x, c0, c1, kv_end, 0, &cur);
    convert_chunks(x, &q, NULL, h, 0, cur.bk, 0, (cur.bk + 31) / 32);
    queue_set(&q, x, c0, c1, NULL, 0, &cur, 0);
    run_all(&q);
    bool has_prev = false;
    int idx = 0;        /* task sequence number: S^T, P^T buffer parity */
    int conv_left = 0;  /* chunks of the next block not yet converted (double-buffered) */
    for (;;) {
        const bool has_next = task_next(x, c0, c1, kv_end, &cur, &next);
        const bool last_of_block = !has_next || next.j0 != cur.j0;
        const bool first_of_block = !has_prev || prev.j0 != cur.j0;
        if (first_of_block) {
            const int nj = cur.j0 + x->bk;
            conv_left = x->dbl && nj < kv_end ? (PD_MIN(x->bk, kv_end - nj) + 31) / 32 : 0;
        }
        if (has_next && last_of_block && !x->dbl) {
            /* Drain: softmax(cur) with O^T(prev), then O^T(cur), then convert and S^T(next). */
            queue_set(&q, x, c0, c1, has_prev ? &prev : NULL, (idx + 1) & 1, NULL, 0);
            hooks k = {0, softmax_items(pair_tiles(c0, c1, cur.p), (cur.nk + 15) / 16) + 1};
            tick(&q, &k);
            softmax_pair(x, &q, &k, x->s[idx & 1], x->p[idx & 1], cur.p * QP, c0 + cur.p * QP,
                         pair_tiles(c0, c1, cur.p), (cur.nk + 15) / 16, (cur.nk + 31) / 32, cur.bk, cur.j0,
                         cur.j0 == 0, x->kn[kv_buf(x, cur.j0)]);
            run_all(&q);
            queue_set(&q, x, c0, c1, &cur, idx & 1, NULL, 0);
            run_all(&q);
            convert_chunks(x, &q, NULL, h, next.j0, next.bk, 0, (next.bk + 31) / 32);
            queue_set(&q, x, c0, c1, NULL, 0, &next, (idx + 1) & 1);
            run_all(&q);
            has_prev = false;
            cur = next;
            idx++;
            continue;
        }
        queue_set(&q, x, c0, c1, has_prev ? &prev : NULL, (idx + 1) & 1, has_next ? &next : NULL, (idx + 1) & 1);
        /* The softmax rescales the pair's O^T columns: O^T(prev) of the same pair first. */
        if (has_prev && prev.p == cur.p) amx_pump(&q, q.n_pv);
        /* Conversion of the next block: never while O^T(prev) of the block before reads
         * the same buffers (first task of a block), all of it before S^T(next) when next
         * opens that block. */
        int conv_now = 0;
        if (conv_left > 0) {
            if (last_of_block) {
                conv_now = conv_left;
                if (first_of_block && has_prev) amx_pump(&q, q.n_pv);
                q.cap = q.n_pv;
            } else if (!first_of_block) {
                const int iters = (c1 - (c0 + cur.p * QP) + QP - 1) / QP - 1;   /* later non-last tasks */
                conv_now = (conv_left + iters - 1) / PD_MAX(iters, 1);
            }
        }
        hooks k = {0, conv_now + softmax_items(pair_tiles(c0, c1, cur.p), (cur.nk + 15) / 16) + 1};
        tick(&q, &k);
        if (conv_now > 0) {
            const int nj = cur.j0 + x->bk, n = PD_MIN(x->bk, kv_end - nj);
            convert_chunks(x, &q, &k, h, nj, n, (n + 31) / 32 - conv_left, conv_now);
            conv_left -= conv_now;
            q.cap = q.n_pv + q.n_s;
        }
        softmax_pair(x, &q, &k, x->s[idx & 1], x->p[idx & 1], cur.p * QP, c0 + cur.p * QP, pair_tiles(c0, c1, cur.p),
                     (cur.nk + 15) / 16, (cur.nk + 31) / 32, cur.bk, cur.j0, cur.j0 == 0,
                     x->kn[kv_buf(x, cur.j0)]);
        run_all(&q);
        prev = cur;
        has_prev = true;
        idx++;
        if (!has_next) break;
        cur = next;
    }
    queue_set(&q, x, c0, c1, &prev, (idx + 1) & 1, NULL, 0);
    run_all(&q);
    write_out(x, h, c0, c1, true);
}

/* Carves the arena (64-byte aligned pieces). */
static void *carve(unsigned char **at, size_t bytes) {
    void *p = *at;
    *at += (bytes + 63) & ~(size_t)63;
    return p;
}

void pd_bf16_attention_32x128__amx(const pd_attn_args *g) {
    PD_ASSERT(g->head_dim >= 1 && g->head_dim <= PD_ATTN_MAX_HEAD_DIM);
    if (g->q0 >= g->q1 || g->h0 >= g->h1) return;
    attn_ctx x = {.g = g, .dim = g->head_dim};
    x.dp = (x.dim + 31) & ~31;
    x.dp16 = (x.dim + 15) & ~15;
    x.nds = x.dp / 32;
    x.ndt = x.dp16 / 16;
    /* The largest chunk and key block (multiples of 32) whose buffers fit. */
    for (x.qc = QC_MAX;; x.qc -= QP) {
        x.acs = x.qc + (x.qc >= 128 ? 16 : 0);   /* a 4 KiB row stride would alias */
        if ((size_t)x.qc * (size_t)x.dp * 2 + (size_t)x.dp16 * (size_t)x.acs * 4 <= Q_BYTES) break;
    }
    /* Key block: double-buffered K, V^T if that leaves at least 64 keys, else single. */
    const size_t per_key = (size_t)(x.dp + x.dp16) * 2, per_key_sp = 2 * 2 * 16 * (4 + 2);
    x.bk = PD_MIN(BK_MAX, (int)(KV_BYTES / (2 * per_key + per_key_sp)) & ~31);
    x.dbl = x.bk >= 64;
    if (!x.dbl) x.bk = PD_MIN(BK_MAX, (int)(KV_BYTES / (per_key + per_key_sp)) & ~31);
    PD_ASSERT(x.bk >= 32);
    _Alignas(64) unsigned char arena[Q_BYTES + KV_BYTES + 3 * QC_MAX * sizeof(float) + 16 * 64];
    float kn[2] = {0.0f, 0.0f};
    x.kn = kn;
    unsigned char *at = arena;
    x.qt = carve(&at, (size_t)x.qc * (size_t)x.dp * 2);
    x.acc = carve(&at, (size_t)x.dp16 * (size_t)x.acs * 4);
    for (int i = 0; i < (x.dbl ? 2 : 1); i++) {
        x.kb[i] = carve(&at, (size_t)x.bk * (size_t)x.dp * 2);
        x.vt[i] = carve(&at, (size_t)x.bk * (size_t)x.dp16 * 2);
    }
    if (!x.dbl) {
        x.kb[1] = x.kb[0];
        x.vt[1] = x.vt[0];
    }
    for (int i = 0; i < 2; i++) {
        x.s[i] = carve(&at, (size_t)x.bk * 2 * 16 * 4);
        x.p[i] = carve(&at, (size_t)x.bk * 2 * 16 * 2);
    }
    x.m = carve(&at, QC_MAX * sizeof(float));
    x.qn = carve(&at, QC_MAX * sizeof(float));
    x.l = carve(&at, QC_MAX * sizeof(float));
    PD_ASSERT(at <= arena + sizeof arena);
    x.c = fabsf(g->scale) * 1.44269504f;
    x.neg = g->scale < 0.0f;
    const unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040u);   /* FTZ | DAZ */
    config_tiles();
    for (int h = g->h0; h < g->h1; h++)
        for (int c0 = g->q0; c0 < g->q1; c0 += x.qc) attend_chunk(&x, h, c0, PD_MIN(g->q1, c0 + x.qc));
    _tile_release();
    _mm_setcsr(csr);
}
