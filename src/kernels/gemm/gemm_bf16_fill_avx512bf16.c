/*
 * gemm_bf16_fill_avx512bf16.c - the A sources and the epilogue shared by every bf16
 * GEMM/conv variant (scheme and contracts: gemm_bf16_blocked.h). AVX-512 + AVX512-BF16:
 * linked into both the AMX and the AVX512-BF16 variants (every AMX machine has
 * AVX512-BF16). All conversions are VCVTNE2PS2BF16 / VCVTNEPS2BF16: round to nearest
 * even, fp32 denormal inputs read as zero.
 *
 * Block sources (A block rows_pad x kc, row stride kc + 32):
 *   - GEMM: row r is A[r0 + r, kb .. kb + kc), zero past k;
 *   - im2col (convs the direct source does not take: cin % 32 != 0 as conv_in's 3/4,
 *     ow % 16 != 0 as the 8x8 UNet level, > 16 taps): row r is output pixel p0 + r0 + r,
 *     k index (ky*kw + kx)*cin + ci. For one kernel row ky the valid taps kx in
 *     [kx_lo, kx_hi) read consecutive input pixels, so their k range is ONE contiguous
 *     run of (kx_hi - kx_lo)*cin floats of the input (whatever the stride); everything
 *     else (rows outside the image, taps left/right of it, k >= K) is zero. A row is
 *     written front to back by a cursor: zero runs and converted runs clipped to
 *     [kb, kb + kc).
 * Direct source (cin % 32 == 0, ow % 16 == 0): a band of bf16 input pixels, one
 * segment per tap reading 16 output pixels at a constant step (stride * cc):
 *   - ring (ow % 32 == 0 and kh x (31*stride + kw) x cin fits the buffer, so all
 *     channels are in one k block): the driver visits 32-pixel strips top to bottom
 *     (pd_bf16_direct_block_start), input row iy lives in band slot iy mod kh, and a
 *     block continuing the previous one (same strip, next output row) converts only the
 *     `stride` rows it adds: each input element is converted ~1.06 times per column
 *     block instead of kh*kw = 9 times (im2col) or kh = 3 times (band per block);
 *     measured +10-15% on the VAE and UNet 64x64 shapes over a band per block;
 *   - otherwise a band per block: the kh (+ stride, when the halves are in two output
 *     rows) input rows x the columns the block spans, for a channel range [c0, c0 + cc)
 *     sized to the buffer (k block = that range of every tap).
 * Runs of any length and offset: full 32-element conversions, then 16-element masked
 * loads/stores (masked loads never touch memory outside the run).
 *
 * Epilogue: + bias -> act -> + res, masked stores of C (columns < cols only), the
 * activation switch hoisted out of the loops.
 *
 * Traps: an im2col run is contiguous only within one kernel row (iy changes between
 * rows); the input is read only inside the image (masked tails), never its 64-byte
 * tail; the ring is valid only while the driver keeps the buffer and visits blocks in
 * block_start order (ring_ox/ring_oy say what it holds); res may alias c (each element
 * is read before it is stored).
 */
#include <immintrin.h>

#include "kernels/act/vmath_avx512.h"
#include "kernels/gemm/gemm_bf16_blocked.h"

#define PD_INLINE static inline __attribute__((always_inline))

/* dst[0..n) = bf16(src[0..n)), n >= 0. */
PD_INLINE void cvt_run(uint16_t *dst, const float *src, int n) {
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 lo = _mm512_loadu_ps(src + i), hi = _mm512_loadu_ps(src + i + 16);
        _mm512_storeu_si512((void *)(dst + i), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
    for (; i < n; i += 16) {
        const __mmask16 m = v16_tail_mask((size_t)(n - i));
        const __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
        _mm256_mask_storeu_epi16((void *)(dst + i), m, (__m256i)h);
    }
}

/* dst[0..n) = 0, n >= 0. */
PD_INLINE void zero_run(uint16_t *dst, int n) {
    int i = 0;
    for (; i + 32 <= n; i += 32) _mm512_storeu_si512((void *)(dst + i), _mm512_setzero_si512());
    if (i < n) _mm512_mask_storeu_epi16((void *)(dst + i), (__mmask32)((1u << (n - i)) - 1u), _mm512_setzero_si512());
}

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* ---- block sources ------------------------------------------------------------------ */

/* The block of k block kb_i: kb, kc, the zero-padded row count and the one segment. */
static int block_segment(const pd_bf16_a_src *s, uint16_t *buf, int rows, int kb_i, pd_bf16_seg *seg,
                         size_t *lda, int *kb, int *kc, int *rows_pad) {
    const int kp = round_up(s->k, 32);
    *kb = kb_i * s->kc;
    *kc = PD_MIN(s->kc, kp - *kb);
    *rows_pad = round_up(rows, s->row_align);
    *lda = (size_t)s->kc + 32;
    PD_ASSERT(*kb < kp && (size_t)*rows_pad * *lda <= PD_BF16_ABUF);
    seg[0] = (pd_bf16_seg){buf, buf + 16 * *lda, *kb, *kc};
    return 1;
}

int pd_bf16_prepare_gemm(pd_bf16_a_src *s, uint16_t *buf, int r0, int rows, int kb_i, pd_bf16_seg *seg,
                         size_t *lda) {
    int kb, kc, rows_pad;
    const int n = block_segment(s, buf, rows, kb_i, seg, lda, &kb, &kc, &rows_pad);
    const int nv = PD_MIN(kc, s->k - kb);
    for (int r = 0; r < rows; r++) {
        uint16_t *d = buf + (size_t)r * *lda;
        cvt_run(d, s->a + (size_t)(r0 + r) * s->lda + (size_t)kb, nv);
        zero_run(d + nv, kc - nv);
    }
    for (int r = rows; r < rows_pad; r++) zero_run(buf + (size_t)r * *lda, kc);
    return n;
}

int pd_bf16_prepare_im2col(pd_bf16_a_src *s, uint16_t *buf, int r0, int rows, int kb_i, pd_bf16_seg *seg,
                           size_t *lda) {
    int kb, kc, rows_pad;
    const int n = block_segment(s, buf, rows, kb_i, seg, lda, &kb, &kc, &rows_pad);
    const pd_conv_args *a = s->conv;
    const int cin = a->cin, kw = a->kw, row_k = a->kw * a->cin, kend = kb + kc;
    const size_t p_first = s->p0 + (size_t)r0;
    int oy = (int)(p_first / (size_t)a->ow), ox = (int)(p_first % (size_t)a->ow);
    for (int r = 0; r < rows; r++) {
        uint16_t *row = buf + (size_t)r * *lda;
        const int iy0 = oy * a->stride - a->pad_t, ix0 = ox * a->stride - a->pad_l;
        const int kx_lo = PD_MIN(kw, PD_MAX(0, -ix0)), kx_hi = PD_MAX(kx_lo, PD_MIN(kw, a->iw - ix0));
        int k = kb;   /* the cursor: row[k - kb] is the next element to write */
        for (int ky = kb / row_k; ky < a->kh && ky * row_k < kend; ky++) {
            const int iy = iy0 + ky;
            if (iy < 0 || iy >= a->ih || kx_hi == kx_lo) continue;
            const int s0 = ky * row_k + kx_lo * cin, s1 = ky * row_k + kx_hi * cin;
            if (s1 <= k) continue;
            const int z_end = PD_MIN(PD_MAX(s0, k), kend);
            zero_run(row + (k - kb), z_end - k);
            k = z_end;
            if (k >= kend) break;
            const int e = PD_MIN(s1, kend);
            const float *src = a->in + ((size_t)iy * (size_t)a->iw + (size_t)(ix0 + kx_lo)) * (size_t)cin;
            cvt_run(row + (k - kb), src + (k - s0), e - k);
            k = e;
        }
        zero_run(row + (k - kb), kend - k);
        if (++ox == a->ow) {
            ox = 0;
            oy++;
        }
    }
    for (int r = rows; r < rows_pad; r++) zero_run(buf + (size_t)r * *lda, kc);
    return n;
}

/* ---- the direct conv source --------------------------------------------------------- */

static int mod(int x, int m) {
    const int r = x % m;
    return r < 0 ? r + m : r;
}

/* dst[cx * cc + c] = bf16(in[iy, ix_lo + cx, c0 + c]) for cx < bcols, c < cc; zero
 * outside the image. */
static void band_row(const pd_conv_args *a, uint16_t *dst, int iy, int ix_lo, int bcols, int c0, int cc) {
    const int x0 = PD_MAX(ix_lo, 0), x1 = PD_MAX(x0, PD_MIN(ix_lo + bcols, a->iw));
    if (iy < 0 || iy >= a->ih || x1 == x0) {
        zero_run(dst, bcols * cc);
        return;
    }
    zero_run(dst, (x0 - ix_lo) * cc);
    const float *src = a->in + ((size_t)iy * (size_t)a->iw + (size_t)x0) * (size_t)a->cin + (size_t)c0;
    if (cc == a->cin) {
        cvt_run(dst + (size_t)(x0 - ix_lo) * (size_t)cc, src, (x1 - x0) * cc);
    } else {
        for (int x = x0; x < x1; x++)
            cvt_run(dst + (size_t)(x - ix_lo) * (size_t)cc, src + (size_t)(x - x0) * (size_t)a->cin, cc);
    }
    zero_run(dst + (size_t)(x1 - ix_lo) * (size_t)cc, (ix_lo + bcols - x1) * cc);
}

bool pd_bf16_direct_setup(pd_bf16_a_src *s, const pd_conv_args *a) {
    if (a->cin % 32 || a->ow % 16 || a->kh * a->kw > PD_BF16_MAX_SEGS) return false;
    const size_t cols32 = (size_t)(31 * a->stride + a->kw);
    s->prepare = pd_bf16_prepare_direct;
    s->ring_ox = s->ring_oy = -1;
    if (a->ow % 32 == 0 && (size_t)a->kh * cols32 * (size_t)a->cin <= PD_BF16_ABUF) {
        /* Both 16-pixel halves of a block in one output row, all channels in the band:
         * strips of 32 output columns, top to bottom, with a ring of kh input rows. */
        s->ring = true;
        s->block_start = pd_bf16_direct_block_start;
        s->cc = a->cin;
        s->n_kb = 1;
        return true;
    }
    /* Bound of any block's band: one output row (ow % 32 == 0), or two consecutive ones
     * spanning up to the whole width. */
    const size_t px = a->ow % 32 == 0 ? (size_t)a->kh * cols32
                                      : (size_t)(a->kh + a->stride) * (size_t)((a->ow - 1) * a->stride + a->kw);
    const size_t cc_max = (size_t)PD_BF16_ABUF / px / 32 * 32;
    if (cc_max < 32) return false;
    s->ring = false;
    s->block_start = NULL;
    s->n_kb = (a->cin + (int)PD_MIN(cc_max, (size_t)a->cin) - 1) / (int)PD_MIN(cc_max, (size_t)a->cin);
    s->cc = round_up((a->cin + s->n_kb - 1) / s->n_kb, 32);
    return true;
}

int pd_bf16_direct_block_start(const pd_bf16_a_src *s, int b) {
    const pd_conv_args *a = s->conv;
    const int n_rows = a->oy1 - a->oy0;
    return (b % n_rows) * a->ow + (b / n_rows) * 32;
}

/* The geometry of a direct block: halves, input window. */
typedef struct direct_geo {
    int n_half, oy[2], ox[2], iy_lo, iy_hi, ix_lo, ix_hi;
} direct_geo;

static void direct_geometry(const pd_bf16_a_src *s, int r0, int rows, direct_geo *g) {
    const pd_conv_args *a = s->conv;
    const int st = a->stride;
    g->n_half = rows > 16 ? 2 : 1;
    g->iy_lo = g->ix_lo = INT32_MAX;
    g->iy_hi = g->ix_hi = INT32_MIN;
    for (int h = 0; h < g->n_half; h++) {
        const size_t p = s->p0 + (size_t)r0 + (size_t)(16 * h);
        g->oy[h] = (int)(p / (size_t)a->ow);
        g->ox[h] = (int)(p % (size_t)a->ow);
        PD_ASSERT(g->ox[h] + 16 <= a->ow);
        g->iy_lo = PD_MIN(g->iy_lo, g->oy[h] * st - a->pad_t);
        g->iy_hi = PD_MAX(g->iy_hi, g->oy[h] * st - a->pad_t + a->kh);
        g->ix_lo = PD_MIN(g->ix_lo, g->ox[h] * st - a->pad_l);
        g->ix_hi = PD_MAX(g->ix_hi, (g->ox[h] + 15) * st - a->pad_l + a->kw);
    }
}

/* The first input row prepare converts for this block: all of them, or in the ring
 * those the block adds to the previous one's. */
static int direct_first_row(const pd_bf16_a_src *s, const direct_geo *g) {
    const pd_conv_args *a = s->conv;
    if (s->ring && s->ring_ox == g->ox[0] && s->ring_oy == g->oy[0] - 1)
        return PD_MAX(g->iy_lo, g->iy_lo - a->stride + a->kh);
    return g->iy_lo;
}

int pd_bf16_prepare_direct(pd_bf16_a_src *s, uint16_t *buf, int r0, int rows, int kb_i, pd_bf16_seg *seg,
                           size_t *lda) {
    const pd_conv_args *a = s->conv;
    const int st = a->stride, cin = a->cin, kh = a->kh, c0 = kb_i * s->cc, cc = PD_MIN(s->cc, cin - c0);
    PD_ASSERT(rows <= 32 && rows % 16 == 0 && c0 < cin && cc % 32 == 0);
    /* The halves (16 output pixels of one row each) and the input window they read. */
    direct_geo g;
    direct_geometry(s, r0, rows, &g);
    const int n_half = g.n_half, iy_lo = g.iy_lo, iy_hi = g.iy_hi, ix_lo = g.ix_lo;
    const int *oy = g.oy, *ox = g.ox;
    const int bcols = g.ix_hi - ix_lo;
    const size_t row_elems = (size_t)bcols * (size_t)cc;
    /* Band rows: in the ring, input row iy lives in slot iy mod kh and a block that
     * continues the previous one (same strip, next output row) converts only the rows
     * it adds; otherwise slot iy - iy_lo. */
    int slot_base = iy_lo, n_slots = iy_hi - iy_lo;
    if (s->ring) {
        PD_ASSERT(n_half == 2 && oy[0] == oy[1] && ox[0] % 32 == 0 && n_slots == kh);
        for (int iy = direct_first_row(s, &g); iy < iy_hi; iy++) band_row(a, buf + (size_t)mod(iy, kh) * row_elems, iy, ix_lo, bcols, c0, cc);
        s->ring_ox = ox[0];
        s->ring_oy = oy[0];
    } else {
        PD_ASSERT((size_t)n_slots * row_elems <= PD_BF16_ABUF);
        for (int iy = iy_lo; iy < iy_hi; iy++) band_row(a, buf + (size_t)(iy - iy_lo) * row_elems, iy, ix_lo, bcols, c0, cc);
    }
    /* One segment per tap: pixel r of half h reads band column (ox[h] + r) * st + kx - ... */
    *lda = (size_t)st * (size_t)cc;
    int n = 0;
    for (int ky = 0; ky < kh; ky++)
        for (int kx = 0; kx < a->kw; kx++) {
            const uint16_t *ah[2] = {buf, buf};
            for (int h = 0; h < n_half; h++) {
                const int iy = oy[h] * st - a->pad_t + ky, cx = ox[h] * st - a->pad_l + kx - ix_lo;
                const int slot = s->ring ? mod(iy, kh) : iy - slot_base;
                ah[h] = buf + (size_t)slot * row_elems + (size_t)cx * (size_t)cc;
            }
            seg[n++] = (pd_bf16_seg){ah[0], n_half > 1 ? ah[1] : ah[0], (ky * a->kw + kx) * cin + c0, cc};
        }
    return n;
}

/* ---- epilogue --------------------------------------------------------------------------- */

PD_INLINE void epilogue_act(const pd_bf16_out *o, const float *acc, size_t ldacc, int r0, int rows, int j0,
                            int cols, pd_act act) {
    const __mmask16 m0 = v16_tail_mask((size_t)cols), m1 = v16_tail_mask((size_t)PD_MAX(0, cols - 16));
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    if (o->bias) {
        b0 = _mm512_maskz_loadu_ps(m0, o->bias + j0);
        b1 = _mm512_maskz_loadu_ps(m1, o->bias + j0 + 16);
    }
    for (int r = 0; r < rows; r++) {
        const float *ar = acc + (size_t)r * ldacc;
        float *c = o->c + (size_t)(r0 + r) * o->ldc + (size_t)j0;
        const float *res = o->res ? o->res + (size_t)(r0 + r) * o->ldres + (size_t)j0 : NULL;
        __m512 x0 = _mm512_maskz_loadu_ps(m0, ar);
        if (o->bias) x0 = _mm512_add_ps(x0, b0);
        x0 = v16_act(x0, act);
        if (res) x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(m0, res));
        if (cols > 16) {
            __m512 x1 = _mm512_maskz_loadu_ps(m1, ar + 16);
            if (o->bias) x1 = _mm512_add_ps(x1, b1);
            x1 = v16_act(x1, act);
            if (res) x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(m1, res + 16));
            _mm512_mask_storeu_ps(c + 16, m1, x1);
        }
        _mm512_mask_storeu_ps(c, m0, x0);
    }
}

void pd_bf16_epilogue(const pd_bf16_out *o, const float *acc, size_t ldacc, int r0, int rows, int j0, int cols) {
    switch (o->act) {
    case PD_ACT_NONE: epilogue_act(o, acc, ldacc, r0, rows, j0, cols, PD_ACT_NONE); break;
    case PD_ACT_GELU: epilogue_act(o, acc, ldacc, r0, rows, j0, cols, PD_ACT_GELU); break;
    case PD_ACT_QUICK_GELU: epilogue_act(o, acc, ldacc, r0, rows, j0, cols, PD_ACT_QUICK_GELU); break;
    case PD_ACT_SILU: epilogue_act(o, acc, ldacc, r0, rows, j0, cols, PD_ACT_SILU); break;
    case PD_ACT_RELU: epilogue_act(o, acc, ldacc, r0, rows, j0, cols, PD_ACT_RELU); break;
    }
}
