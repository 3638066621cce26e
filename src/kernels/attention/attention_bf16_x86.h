/*
 * attention_bf16_x86.h - AVX-512 helpers shared by the bf16 attention kernels
 * (attention_bf16_amx.c, attention_bf16_avx512bf16.c; both are compiled with
 * AVX512-BF16 enabled): a 16 x 16 dword transpose, fp32 -> bf16 row loads, the word
 * permutation that makes bf16 pairs, and the K/V row prefetch.
 */
#ifndef PD_KERNELS_ATTENTION_BF16_X86_H
#define PD_KERNELS_ATTENTION_BF16_X86_H

#include <immintrin.h>
#include <stddef.h>

#include "kernels/kernels.h"

#define PD_BF16X_INLINE static inline __attribute__((always_inline))

/* Mask of the first n lanes (n may be <= 0 or > 16). */
PD_BF16X_INLINE __mmask16 pd_bf16x_lanes(int n) {
    return n <= 0 ? 0 : n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

/* In-register transpose of a 16 x 16 matrix of dwords: r[i][j] -> r[j][i]. */
PD_BF16X_INLINE void pd_bf16x_transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) {   /* u[i + c], 128-bit lane L: rows i..i+3 of column 4L + c */
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m512i a0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), a1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xDD);
        __m512i b0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88), b1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_i32x4(a0, b0, 0x88);
        r[8 + c] = _mm512_shuffle_i32x4(a0, b0, 0xDD);
        r[4 + c] = _mm512_shuffle_i32x4(a1, b1, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(a1, b1, 0xDD);
    }
}

/* x[0..n) (n may be <= 0 or > 32; the rest zero) as 32 bf16 (RNE), x[0..16) in the low
 * half: vcvtne2ps2bf16(hi, lo). */
PD_BF16X_INLINE __m512i pd_bf16x_load32(const float *x, int n) {
    __m512 lo, hi;
    if (n >= 32) {
        lo = _mm512_loadu_ps(x);
        hi = _mm512_loadu_ps(x + 16);
    } else {
        lo = _mm512_maskz_loadu_ps(pd_bf16x_lanes(n), x);
        hi = _mm512_maskz_loadu_ps(pd_bf16x_lanes(n - 16), x + 16);
    }
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* Word permutation interleaving the halves of vcvtne2ps2bf16(b, a) = [a0..a15, b0..b15]
 * into dwords (a_i, b_i). */
PD_BF16X_INLINE __m512i pd_bf16x_interleave_idx(void) {
    return _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
                            4, 19, 3, 18, 2, 17, 1, 16, 0);
}

/* Prefetches K and V rows [j, min(j + n, n_kv)) of head h, dim floats each, to L2 (the
 * conversion of a later block reads them; a cold row costs an L3 or memory round trip
 * there). always_inline: GCC 12 dropped every call to the out-of-line version, a
 * function that only prefetches (no prefetch instruction was left in the object). */
PD_BF16X_INLINE void pd_bf16x_prefetch_kv(const pd_attn_args *g, int dim, int h, int j, int n) {
    if (n > g->n_kv - j) n = g->n_kv - j;
    const char *k = (const char *)(g->k + (size_t)h * g->k_hs + (size_t)j * g->k_ld);
    const char *v = (const char *)(g->v + (size_t)h * g->v_hs + (size_t)j * g->v_ld);
    const size_t bytes = (size_t)dim * sizeof(float);
    for (int r = 0; r < n; r++, k += g->k_ld * sizeof(float), v += g->v_ld * sizeof(float)) {
        for (size_t o = 0; o < bytes; o += 64) {
            _mm_prefetch(k + o, _MM_HINT_T1);
            _mm_prefetch(v + o, _MM_HINT_T1);
        }
        _mm_prefetch(k + bytes - 1, _MM_HINT_T1);
        _mm_prefetch(v + bytes - 1, _MM_HINT_T1);
    }
}

#endif
