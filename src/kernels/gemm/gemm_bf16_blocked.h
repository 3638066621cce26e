/*
 * gemm_bf16_blocked.h - the framework / microkernel split of the bf16 GEMM and
 * convolution (contracts: gemm_bf16.h; pd_gemm_args and pd_conv_args in kernels.h).
 *
 * A bf16 GEMM and a bf16 implicit-GEMM convolution differ only in how the bf16 rows of A
 * are produced, so every bf16 variant (AMX, AVX512-BF16) is one driver,
 * pd_bf16_blocked(), plus:
 *   - an A source (pd_bf16_a_src, in gemm_bf16_fill_avx512bf16.c: every AMX machine has
 *     AVX512-BF16): for a row block and a k block it writes bf16 data (round to nearest
 *     even, VCVTNE2PS2BF16) into the driver's buffer and describes it as segments;
 *   - a microkernel (pd_bf16_tile_fn) of the ISA: one panel of nr columns x the row
 *     block's <= 32 rows over one k block, accumulating in fp32;
 *   - the shared epilogue pd_bf16_epilogue (+ bias -> act -> + res, masked stores).
 *
 * Segments: the A rows of a k block are a list of runs of k. Segment s covers packed k
 * indices [koff, koff + len) (len a multiple of 32, koff even): row r < 16 of it is
 * a0 + r * lda, row 16 + r is a1 + r * lda (bf16 elements, k contiguous in a row).
 * Sources:
 *   - block (GEMM, and convs the direct source does not take): the source fills an A
 *     block rows_pad x kc (row stride lda = kc + 32, zero rows past the live ones, zero
 *     k past w->k) and returns one segment (a1 = a0 + 16 lda). The GEMM converts fp32
 *     rows of A (a 1x1 stride-1 conv is a GEMM with lda = cin); the im2col source
 *     gathers each output pixel's taps from the NHWC input;
 *   - direct conv (cin % 32 == 0, ow % 16 == 0): a k block is a channel range
 *     [c0, c0 + cc) of every tap. The source converts the input pixels the block's 32
 *     output pixels read (a "band" of input rows x the columns they span, zero outside
 *     the image) and returns one segment per tap: 16 consecutive output pixels of one
 *     output row read band pixels at a constant step (stride * cc elements), exactly an
 *     AMX tile's row stride. No im2col; with the ring (gemm_bf16_fill_avx512bf16.c)
 *     each input element is converted about once per column block.
 *
 * Driver loops (gemm_bf16_blocked.c): column blocks of NB columns (their packed
 * weights, NB x kp bf16, sized to stay in L2 while the row blocks stream past) x row
 * blocks of PD_BF16_MB = 32 rows (in block_start order when the source sets it) x k
 * blocks (usually one, so the accumulators never leave the tiles/registers) x panels. A
 * k block's A data is produced once per (column block, row block) and read by every
 * panel of the column block. With one k block each panel's result goes from the
 * microkernel to the epilogue through a double-buffered 32 x nr scratch; with several,
 * the 32 x NB accumulators wait in a stack buffer between k blocks. C is written only by
 * the epilogue after the last k block, so res may alias c.
 *
 * Stack: the A buffer (PD_BF16_ABUF bf16, 102 KiB) and the accumulators
 * (PD_BF16_MB x PD_BF16_NB_ACC fp32, 32 KiB): ~140 KiB.
 */
#ifndef PD_KERNELS_GEMM_BF16_BLOCKED_H
#define PD_KERNELS_GEMM_BF16_BLOCKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

#define PD_BF16_MB 32          /* rows per row block: two AMX tiles of 16 */
#define PD_BF16_KC_MAX 1600    /* block sources: k per block (multiple of 32) */
/* A buffer, bf16 elements: a block source's 32 x (KC_MAX + 32) (= 52224), or a direct
 * source's band, e.g. the ring of 3 input rows x 34 pixels x 512 channels of a 3x3 conv
 * (also 52224). */
#define PD_BF16_ABUF (3 * 34 * 512)
#define PD_BF16_NB_ACC 256     /* columns per column block when there are several k blocks */
#define PD_BF16_MAX_SEGS 16    /* segments per k block (direct conv: taps, kh*kw <= 16) */

typedef struct pd_bf16_seg {
    const uint16_t *a0, *a1;   /* rows 0..15 and 16..31 (a1 unused when rows <= 16) */
    int koff, len;
} pd_bf16_seg;

/* An A source. prepare() produces k block kb_i (of n_kb) for rows [r0, r0 + rows)
 * (rows <= PD_BF16_MB, r0 a multiple of 16) into buf (PD_BF16_ABUF elements, 64-byte
 * aligned, kept by the driver between calls), writes its segments (<= PD_BF16_MAX_SEGS)
 * and their row stride in elements, and returns the segment count. block_start(b), when
 * set, is the first row of the b-th row block the driver visits (a permutation of the
 * blocks 0, 32, 64 ...; the direct source walks 32-pixel-wide strips top to bottom so
 * its ring of input rows carries over from block to block). */
typedef struct pd_bf16_a_src pd_bf16_a_src;
struct pd_bf16_a_src {
    int (*prepare)(pd_bf16_a_src *s, uint16_t *buf, int r0, int rows, int kb_i, pd_bf16_seg *seg, size_t *lda);
    int (*block_start)(const pd_bf16_a_src *s, int b);
    int n_kb;                   /* k blocks */
    int k, kc;                  /* block sources: valid k (w->k), k per block (multiple of 32) */
    int row_align;              /* block sources: rows padded with zero rows to a multiple of this */
    const float *a;             /* GEMM: A rows, stride lda floats */
    size_t lda;
    const pd_conv_args *conv;   /* conv: geometry and input; row r = output pixel p0 + r */
    size_t p0;
    int cc;                     /* direct conv: input channels per k block */
    bool ring;                  /* direct conv: strips with a ring of kh input rows (n_kb == 1) */
    int ring_ox, ring_oy;       /* the ring's state: strip and output row it holds (-1: none) */
};

/* The sources (need AVX512-BF16). */
int pd_bf16_prepare_gemm(pd_bf16_a_src *s, uint16_t *buf, int r0, int rows, int kb_i, pd_bf16_seg *seg,
                         size_t *lda);
int pd_bf16_prepare_im2col(pd_bf16_a_src *s, uint16_t *buf, int r0, int rows, int kb_i, pd_bf16_seg *seg,
                           size_t *lda);
int pd_bf16_prepare_direct(pd_bf16_a_src *s, uint16_t *buf, int r0, int rows, int kb_i, pd_bf16_seg *seg,
                           size_t *lda);
int pd_bf16_direct_block_start(const pd_bf16_a_src *s, int b);
/* Sets up s for the direct source (cc, n_kb, ring, block_start) and returns true, or
 * returns false when it cannot take the conv (cin % 32, ow % 16, kh*kw >
 * PD_BF16_MAX_SEGS, a band of 32 channels over the buffer). */
bool pd_bf16_direct_setup(pd_bf16_a_src *s, const pd_conv_args *a);

/* Output side: C row r at c + r * ldc (res likewise), columns are weight columns. */
typedef struct pd_bf16_out {
    float *c;
    size_t ldc;
    const float *res;   /* NULL: none; may alias c */
    size_t ldres;
    const float *bias;  /* NULL: none */
    pd_act act;
} pd_bf16_out;

/* C[r0 + r, j0 + c] = act(acc[r * ldacc + c] + bias[j0 + c]) (+ res) for r < rows,
 * c < cols (cols <= 32); res read before C is written. (AVX-512 code.) */
void pd_bf16_epilogue(const pd_bf16_out *o, const float *acc, size_t ldacc, int r0, int rows, int j0,
                      int cols);

/* One microkernel call: acc[r, c] (+)= sum over segments s, kk < s.len of
 * A_s[r][kk] * Wb[panel column c, s.koff + kk] for r < rows (<= 32), c < nr, with the
 * panel's k-pair row q at b + q * 2 * nr. load: add to acc (a later k block), else
 * start from zero. May write acc rows up to rows rounded up to 16 (AMX). */
typedef struct pd_bf16_tile {
    const pd_bf16_seg *seg;
    int n_seg;
    size_t lda;
    const uint16_t *b;
    int rows;
    float *acc;
    size_t ldacc;
    bool load;
} pd_bf16_tile;

typedef void (*pd_bf16_tile_fn)(const pd_bf16_tile *t);

typedef struct pd_bf16_blocking {
    int nr;            /* panel width the tile function reads (w->nr must match) */
    int row_align;     /* block sources pad A with zero rows to a multiple of this */
    size_t b_l2_bytes; /* packed weight bytes of a column block (NB x kp x 2) */
    pd_bf16_tile_fn tile;
    void (*begin)(void);   /* per call, before any tile (AMX: load the tile config); may be NULL */
    void (*end)(void);     /* after the last tile (AMX: release the tiles); may be NULL */
} pd_bf16_blocking;

typedef struct pd_bf16_problem {
    int m, n0, n1;
    const pd_packed_w *w;
    pd_bf16_a_src src;
    pd_bf16_out out;
} pd_bf16_problem;

void pd_bf16_blocked(const pd_bf16_blocking *b, pd_bf16_problem *p);

/* The variant entry points in terms of the driver: the pd_gemm_args / pd_conv_args
 * checks, the 1x1 stride-1 conv as a GEMM (lda = cin), the direct source where it
 * applies, im2col otherwise. */
void pd_bf16_gemm_blocked(const pd_bf16_blocking *b, const pd_gemm_args *g);
void pd_bf16_conv_blocked(const pd_bf16_blocking *b, const pd_conv_args *a);

#endif
