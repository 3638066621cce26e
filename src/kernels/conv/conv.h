/*
 * conv.h - NHWC 2-D convolution as an implicit GEMM against packed weights: variant
 * declarations and the microkernel notes (the op's contract is pd_conv_args in
 * kernels.h).
 *
 *   out[oy, ox, co] = act(bias[co] + sum_{ky, kx, ci} in[iy, ix, ci] * W[co, ci, ky, kx])
 *                     (+ res[oy, ox, co]),   oy in [oy0, oy1), co in [n0, n1),
 *   iy = oy * stride + ky - pad_t, ix = ox * stride + kx - pad_l (outside: zero).
 *
 * Weights (pd_conv_pack): the GEMM pack layout of [cout, K], K = kh * kw * cin, with
 * k index kk = (ky * kw + kx) * cin + ci, i.e. panel p holds W[p*nr + c, kk] at
 * data[(p*K + kk)*nr + c]. So the weight rows of one tap (ky, kx) are the contiguous
 * panel slice [(ky*kw + kx) * cin, +cin), and a 1x1 stride-1 conv is a GEMM with
 * m = h * w, lda = cin (the variants call their GEMM directly).
 *
 * Every variant pd_f32_conv_<MR>x<NR>__<isa>:
 *   - requires w->nr == NR; the reference pd_f32_conv__ref reads any nr;
 *   - requires n0 % NR == 0 (or n0 == 0), 0 <= n0 <= n1 <= w->n, w->k == kh*kw*cin,
 *     0 <= oy0 <= oy1 <= oh (asserted);
 *   - a 1x1, stride-1, unpadded conv (ow == iw, oy1 <= ih) is handed to the variant's
 *     GEMM (m = pixels, lda = cin), which has the same pack and epilogue;
 *   - otherwise runs pd_conv_blocked (below), an implicit GEMM with indirection
 *     (XNNPACK igemm): a register tile is MR consecutive output pixels (flattened over
 *     [oy0*ow, oy1*ow), so a tile may cross output rows: an 8-wide image still fills
 *     6-pixel tiles) x NV vectors of channels. For each tap (ky, kx) a pixel's A row is
 *     the contiguous run in[iy, ix, c0..c0+k) of NHWC input, or a static zero row when
 *     (iy, ix) is padding; taps that are padding for every pixel of the tile are
 *     dropped. The pixel indices are computed once per row block (not in the k loop),
 *     so borders cost no branches in the inner loop: padding is FMAs on zeros;
 *   - the accumulators stay in registers across all taps of a k block; C is written
 *     once after the last k block (bias -> act -> + res, masked: columns >= n1 never
 *     written, res read before out, so res may alias out);
 *   - narrow channel counts (cout 3/4/8 of conv_out, or the last partial panel) use
 *     narrower tiles with more pixels (8 pixels x 8 or 16 channels): a 128 -> 3 conv
 *     computes 8 lanes per pixel instead of a 64-wide panel, and its k blocks count
 *     the cache lines it really reads of each panel row;
 *   - uses up to ~90 KiB of stack (accumulators 64 KiB, tap table 25 KiB); reads in[]
 *     only inside the image (never the 64-byte tail).
 *
 * Accuracy: fp32 accumulation (per lane, k-block by k-block, tap-major inside); the
 * reference accumulates in double. Tests use 1e-5 of max |ref|.
 */
#ifndef PD_KERNELS_CONV_H
#define PD_KERNELS_CONV_H

#include <stdint.h>

#include "kernels/gemm/gemm.h"
#include "kernels/kernels.h"

void pd_f32_conv__ref(const pd_conv_args *args);
void pd_f32_conv_6x16__avx2(const pd_conv_args *args);
void pd_f32_conv_6x64__avx512(const pd_conv_args *args);

/* Shared argument checks of every variant (asserts). */
void pd_conv_check_args(const pd_conv_args *a);

/* ---- the framework / microkernel split (as gemm.h) ---------------------------------
 * pd_conv_blocked() is the ISA-independent driver:
 *   row blocks of mc output pixels x channel panels x k blocks x tiles, where a k block
 *   is a chunk of <= PD_CONV_MAX_TAPS taps x a range [c0, c0+k) of input channels,
 *   sized so its weight rows (taps * k * nr floats) are about w_kblock_bytes (reused
 *   from L2 by the row block's tiles).
 * Each ISA file supplies register tiles and a store epilogue:
 *   tile(t): acc[r][0..nv*lanes) (+)= sum_{i < n_taps} sum_{kk < k} A_i[r][kk] * w[i][kk*nr + ..]
 *            for r < rows, where A_i[r] = in + pix[i][r] * cin (already offset by c0) or
 *            zero when pix[i][r] < 0; starts from t->acc when t->load, else from zero;
 *            writes rows x nv*lanes accumulators back to t->acc (row stride nv*lanes).
 *            tiles[nv][rows] handles `rows` rows, rows in 1..mr[nv].
 *   epilogue(a, acc, acc_ld, p, rows, j, cols): out[(p + r) * cout + j + c] =
 *            act(acc[r * acc_ld + c] + bias[j + c]) (+ res[...]) for c < cols. */
#define PD_CONV_MAX_MR 8       /* pixels per tile */
#define PD_CONV_MAX_TAPS 9     /* taps per k block (3x3 in one) */
#define PD_CONV_MAX_NV 8       /* channel groups (of `lanes`) per tile row */
#define PD_CONV_MAX_TILES 80   /* tiles per row block */
#define PD_CONV_ZERO_FLOATS 2048   /* the zero row: input channels per k block, at most */
#define PD_CONV_ACC_FLOATS 16384   /* stack accumulators of one row block (64 KiB) */

typedef struct pd_conv_tile {
    int n_taps;
    int k;                   /* input channels of this k block */
    size_t cin;              /* floats per input pixel */
    const float *in;         /* the input + c0 */
    const float *zero;       /* >= k zeros */
    const int32_t *pix;      /* [n_taps][PD_CONV_MAX_MR]: input pixel iy*iw + ix, or -1 */
    const float *const *w;   /* [n_taps]: weight row (tap*cin + c0) of the panel */
    size_t nr;               /* panel row stride in floats */
    float *acc;              /* rows x nv*lanes, row stride nv*lanes */
    int load;                /* continue from acc (a later k block) instead of zero */
} pd_conv_tile;

typedef void (*pd_conv_tile_fn)(const pd_conv_tile *t);
typedef void (*pd_conv_epilogue_fn)(const pd_conv_args *a, const float *acc, int acc_ld, size_t p,
                                    int rows, int j, int cols);

typedef struct pd_conv_blocking {
    int nr, lanes;                                   /* panel width, channels per group nv counts */
    int mr[PD_CONV_MAX_NV + 1];                      /* pixels per tile for nv groups; 0: none */
    const pd_conv_tile_fn *tiles[PD_CONV_MAX_NV + 1];  /* tiles[nv][rows], rows 1..mr[nv] */
    int mc;              /* pixels per row block: a multiple of every mr, mc * nr <= ACC_FLOATS */
    size_t w_kblock_bytes;
    pd_conv_epilogue_fn epilogue;
    void (*gemm)(const pd_gemm_args *g);             /* the 1x1 stride-1 path (same nr) */
} pd_conv_blocking;

void pd_conv_blocked(const pd_conv_args *a, const pd_conv_blocking *b);

#endif
