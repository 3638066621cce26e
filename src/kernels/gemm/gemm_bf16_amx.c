/*
 * gemm_bf16_amx.c - bf16 GEMM on Intel AMX (contract and packed layout: gemm_bf16.h).
 *
 * Tiles (palette 1, every tile 16 rows x 64 bytes):
 *   tmm0..3  fp32 accumulators C[ra][cb] = tmm(2*ra + cb), 16 x 16 each (2 x NT of them)
 *   tmm4, 5  A: 16 rows x 32 bf16 (rows i..i+15 and i+16..i+31)
 *   tmm6, 7  B: 16 k-pairs x 16 columns (VNNI layout, straight from the packed panel)
 * One k-step (32 k) is 2 + NT tile loads and 2 * NT _tile_dpbf16ps (NT = nr / 16).
 *
 * Blocking: column blocks of NB columns x row blocks of MB rows x k blocks of KC x
 * panels x row tiles of MR = 32 rows. For each (column block, row block, k block) the
 * MB x KC slice of A is converted once (fp32 -> bf16, VCVTNE2PS2BF16 = round to nearest
 * even, masked loads for the k tail, zeros for padding rows/columns) into a stack buffer
 * in the A-tile layout (row stride KC bf16) and reused by every panel of the column
 * block; each panel's KC-slice (from L2, the column block's panels stay there across
 * row blocks) is reused by the block's row tiles from L1. The MB x NB fp32 accumulators
 * live in a stack buffer between k blocks (tiles are stored/reloaded there); after the
 * last k block an AVX-512 epilogue adds bias, applies the activation and the residual
 * and stores with masks (rows < m, columns < n1 only). A row tile of <= 16 rows uses
 * only the first A tile. Stack: 32 KiB (A) + 64 KiB (accumulators) + 64 B (config).
 * Measured here (1 core, KC/NB/MB swept over 128..1024): 20-27% of the AMX peak on
 * CLIP/UNet shapes; the other settings were within the noise or worse.
 *
 * Traps: _tile_loadd/_tile_stored strides are in bytes; tile numbers must be
 * compile-time constants; the config is per thread and must be loaded before any tile
 * op and released at the end; the A k padding must be zero (the packed W padding is
 * zero too, but 0 * NaN garbage would not be); res may alias c, so C is written only in
 * the epilogue after the last k block.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/act/vmath_avx512.h"
#include "kernels/gemm/gemm_bf16.h"

#define MR 32     /* rows of one 2 x NT tile block (2 A tiles) */
#define MB 64     /* rows of a row block: its row tiles reuse each B k block from L1 */
#define KC 256    /* k block (multiple of 32): A buffer MB x KC bf16 = 32 KiB */
#define NB 256    /* column block (multiple of 32): accumulators MB x NB fp32 = 64 KiB */

#define PD_INLINE static inline __attribute__((always_inline))

typedef struct tile_config {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

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

/* abuf[r][0..kc) = bf16(A[r, kb..kb+kc)) for r < rows, zero past k and for rows
 * rows..rows_pad. kc is a multiple of 32. */
static void convert_a(uint16_t *abuf, const pd_gemm_args *g, int i0, int rows, int rows_pad,
                      int kb, int kc) {
    const int k = g->w->k;
    for (int r = 0; r < rows; r++) {
        const float *a = g->a + (size_t)(i0 + r) * g->lda;
        uint16_t *dst = abuf + (size_t)r * KC;
        for (int kk = 0; kk < kc; kk += 32) {
            int left = k - (kb + kk);
            __m512 lo, hi;
            if (left >= 32) {
                lo = _mm512_loadu_ps(a + kb + kk);
                hi = _mm512_loadu_ps(a + kb + kk + 16);
            } else {
                lo = left > 0 ? _mm512_maskz_loadu_ps(v16_tail_mask((size_t)left), a + kb + kk)
                              : _mm512_setzero_ps();
                hi = left > 16 ? _mm512_maskz_loadu_ps(v16_tail_mask((size_t)(left - 16)), a + kb + kk + 16)
                               : _mm512_setzero_ps();
            }
            __m512bh v = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512((void *)(dst + kk), (__m512i)v);
        }
    }
    for (int r = rows; r < rows_pad; r++) memset(abuf + (size_t)r * KC, 0, (size_t)kc * sizeof(uint16_t));
}

/* One panel (NT * 16 columns) x (MA * 16 rows) over a k block: accumulators from acc
 * (row stride NB floats) or zero, k-steps, back to acc. */
PD_INLINE void panel(const uint16_t *abuf, const uint16_t *wp, int nr, float *acc, int kc, int first,
                     int ma, int nt) {
    const size_t acc_stride = NB * sizeof(float);
    const size_t b_stride = (size_t)nr * 4;
    if (first) {
        _tile_zero(0);
        if (nt > 1) _tile_zero(1);
        if (ma > 1) _tile_zero(2);
        if (ma > 1 && nt > 1) _tile_zero(3);
    } else {
        _tile_loadd(0, acc, acc_stride);
        if (nt > 1) _tile_loadd(1, acc + 16, acc_stride);
        if (ma > 1) _tile_loadd(2, acc + 16 * NB, acc_stride);
        if (ma > 1 && nt > 1) _tile_loadd(3, acc + 16 * NB + 16, acc_stride);
    }
    for (int kk = 0; kk < kc; kk += 32) {
        const uint16_t *b = wp + (size_t)kk * (size_t)nr;
        _tile_loadd(4, abuf + kk, KC * sizeof(uint16_t));
        _tile_loadd(6, b, b_stride);
        _tile_dpbf16ps(0, 4, 6);
        if (nt > 1) {
            _tile_loadd(7, b + 32, b_stride);
            _tile_dpbf16ps(1, 4, 7);
        }
        if (ma > 1) {
            _tile_loadd(5, abuf + 16 * KC + kk, KC * sizeof(uint16_t));
            _tile_dpbf16ps(2, 5, 6);
            if (nt > 1) _tile_dpbf16ps(3, 5, 7);
        }
    }
    _tile_stored(0, acc, acc_stride);
    if (nt > 1) _tile_stored(1, acc + 16, acc_stride);
    if (ma > 1) _tile_stored(2, acc + 16 * NB, acc_stride);
    if (ma > 1 && nt > 1) _tile_stored(3, acc + 16 * NB + 16, acc_stride);
}

/* C[i0.., j0..j0+cols) = act(acc + bias) (+ res) for rows rows; acc row stride NB. */
PD_INLINE void epilogue_act(const pd_gemm_args *g, const float *acc, int i0, int rows, int j0,
                            int cols, pd_act act) {
    const float *bias = g->w->bias;
    for (int v = 0; v * 16 < cols; v++) {
        __mmask16 m = v16_tail_mask((size_t)(cols - v * 16));
        __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + j0 + v * 16) : _mm512_setzero_ps();
        size_t col = (size_t)j0 + (size_t)v * 16;
        for (int r = 0; r < rows; r++) {
            __m512 x = _mm512_loadu_ps(acc + (size_t)r * NB + (size_t)v * 16);
            if (bias) x = _mm512_add_ps(x, b);
            x = v16_act(x, act);
            if (g->res)
                x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, g->res + (size_t)(i0 + r) * g->ldres + col));
            _mm512_mask_storeu_ps(g->c + (size_t)(i0 + r) * g->ldc + col, m, x);
        }
    }
}

static void epilogue(const pd_gemm_args *g, const float *acc, int i0, int rows, int j0, int cols) {
    switch (g->act) {
    case PD_ACT_NONE: epilogue_act(g, acc, i0, rows, j0, cols, PD_ACT_NONE); break;
    case PD_ACT_GELU: epilogue_act(g, acc, i0, rows, j0, cols, PD_ACT_GELU); break;
    case PD_ACT_QUICK_GELU: epilogue_act(g, acc, i0, rows, j0, cols, PD_ACT_QUICK_GELU); break;
    case PD_ACT_SILU: epilogue_act(g, acc, i0, rows, j0, cols, PD_ACT_SILU); break;
    }
}

PD_INLINE void gemm(const pd_gemm_args *g, int nt) {
    const pd_packed_w *w = g->w;
    const int nr = nt * 16;
    PD_ASSERT(w->nr == nr && w->dtype == PD_DTYPE_BF16);
    PD_ASSERT(g->n0 >= 0 && g->n0 <= g->n1 && g->n1 <= w->n);
    PD_ASSERT(g->n0 % nr == 0);
    if (g->m <= 0 || g->n0 >= g->n1) return;
    const int kp = w->kp;
    _Alignas(64) uint16_t abuf[MB * KC];
    _Alignas(64) float acc[MB * NB];
    config_tiles();
    for (int jb = g->n0; jb < g->n1; jb += NB) {
        const int jb_end = PD_MIN(jb + NB, g->n1);
        for (int i0 = 0; i0 < g->m; i0 += MB) {
            const int rows_b = PD_MIN(MB, g->m - i0);
            for (int kb = 0; kb < kp; kb += KC) {
                const int kc = PD_MIN(KC, kp - kb);
                convert_a(abuf, g, i0, rows_b, (rows_b + 15) / 16 * 16, kb, kc);
                for (int j = jb; j < jb_end; j += nr) {
                    const uint16_t *wp = w->bf16 + ((size_t)(j / nr) * (size_t)kp + (size_t)kb) * (size_t)nr;
                    const int first = kb == 0;
                    /* The row tiles of the block reuse this panel's k block from L1. */
                    for (int it = 0; it < rows_b; it += MR) {
                        const int ma = rows_b - it > 16 ? 2 : 1;
                        const uint16_t *ab = abuf + (size_t)it * KC;
                        float *ap = acc + (size_t)it * NB + (size_t)(j - jb);
                        if (nt == 2) {
                            if (ma == 2) panel(ab, wp, nr, ap, kc, first, 2, 2);
                            else panel(ab, wp, nr, ap, kc, first, 1, 2);
                        } else {
                            if (ma == 2) panel(ab, wp, nr, ap, kc, first, 2, 1);
                            else panel(ab, wp, nr, ap, kc, first, 1, 1);
                        }
                    }
                }
            }
            epilogue(g, acc, i0, rows_b, jb, jb_end - jb);
        }
    }
    _tile_release();
}

void pd_bf16_gemm_32x32__amx(const pd_gemm_args *args) { gemm(args, 2); }
void pd_bf16_gemm_32x16__amx(const pd_gemm_args *args) { gemm(args, 1); }
