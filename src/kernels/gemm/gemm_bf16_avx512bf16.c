/*
 * gemm_bf16_avx512bf16.c - bf16 GEMM and convolution with AVX512-BF16 (vdpbf16ps), for
 * machines without AMX (contracts and packed layout: gemm_bf16.h; driver, A sources and
 * epilogue: gemm_bf16_blocked.h, shared with the AMX variants).
 *
 * Microkernel 8 x 32: 8 rows x 32 columns of fp32 accumulators in 16 zmm (acc[r][h],
 * columns 16h..16h+15). Per k-pair q of a segment: the two 64-byte halves of the
 * packed panel's row q (the VNNI layout is exactly vdpbf16ps's: lane c holds the pair
 * (W[c, 2q], W[c, 2q + 1])) and, per row, the pair (A[r, 2q], A[r, 2q + 1]) broadcast as
 * one 32-bit word: 2 loads + 8 broadcasts for 16 vdpbf16ps (32 products each). The
 * driver pads A blocks with zero rows to a multiple of 8 (row_align) and the direct
 * conv source hands out 16 or 32 rows, so every microtile is a full 8 rows (acc rows
 * past the live ones are scratch the epilogue never reads); the 32 rows of a call are
 * four microtiles, each over every segment, the accumulators in registers throughout.
 *
 * Throughput: vdpbf16ps zmm issues once per 2 cycles on the Sapphire Rapids measured
 * here (latency ~8 cycles), i.e. 64 FLOP/cycle: the same FLOP rate as ONE fp32 FMA port,
 * half of what the two FMA ports give the fp32 kernels. On such a core this variant is
 * slower than fp32 AVX-512 (it halves weight bytes, nothing else); cores with full-rate
 * vdpbf16ps double it. 16 accumulators cover the latency at either rate.
 *
 * Traps: the A pair is read as a 32-bit word at an even k index (segments start at
 * even k and have even lengths); B row q of a panel is 2 * nr = 64 bf16 (128 bytes).
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/gemm/gemm_bf16.h"
#include "kernels/gemm/gemm_bf16_blocked.h"


#define MR 8
#define NR 32

/* Rows [r0, r0 + 8) (within one 16-row half) over every segment. */
static void microtile(const pd_bf16_tile *t, int r0) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) {
        float *c = t->acc + (size_t)(r0 + r) * t->ldacc;
        acc[r][0] = t->load ? _mm512_loadu_ps(c) : _mm512_setzero_ps();
        acc[r][1] = t->load ? _mm512_loadu_ps(c + 16) : _mm512_setzero_ps();
    }
    for (int si = 0; si < t->n_seg; si++) {
        const pd_bf16_seg *sg = &t->seg[si];
        const uint16_t *a = (r0 < 16 ? sg->a0 + (size_t)r0 * t->lda : sg->a1 + (size_t)(r0 - 16) * t->lda);
        const uint16_t *b = t->b + (size_t)sg->koff * NR;
        const size_t lda = t->lda;
        for (int kk = 0; kk < sg->len; kk += 2, b += 2 * NR) {
            const __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)b);
            const __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(b + NR));
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) {
                int32_t pair;
                memcpy(&pair, a + (size_t)r * lda + (size_t)kk, sizeof pair);
                const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
            }
        }
    }
    for (int r = 0; r < MR; r++) {
        float *c = t->acc + (size_t)(r0 + r) * t->ldacc;
        _mm512_storeu_ps(c, acc[r][0]);
        _mm512_storeu_ps(c + 16, acc[r][1]);
    }
}

static void tile(const pd_bf16_tile *t) {
    for (int r0 = 0; r0 < t->rows; r0 += MR) microtile(t, r0);
}

static const pd_bf16_blocking BLOCKING = {
    .nr = NR, .row_align = MR, .b_l2_bytes = 1u << 20, .tile = tile, .begin = NULL, .end = NULL,
};

void pd_bf16_gemm_8x32__avx512bf16(const pd_gemm_args *args) { pd_bf16_gemm_blocked(&BLOCKING, args); }
void pd_bf16_conv_8x32__avx512bf16(const pd_conv_args *args) { pd_bf16_conv_blocked(&BLOCKING, args); }
