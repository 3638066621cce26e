/*
 * peak.h - single-core peak FLOP/s of this machine per instruction family, measured
 * with register-resident loops (the denominators of every "% of peak" the benchmarks
 * print): scalar and AVX2/AVX-512 fp32 FMA, AMX bf16 (_tile_dpbf16ps) and AVX512-BF16
 * (vdpbf16ps). Header-only: each benchmark includes it once.
 */
#ifndef PD_BENCH_PEAK_H
#define PD_BENCH_PEAK_H

#include <stdint.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double peak_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- peak FLOP/s --------------------------------------------------------------------- */

/* Each peak loop runs PEAK_ITERS iterations (~10 ms); the best of PEAK_RUNS counts. */
#define PEAK_ITERS 2000000L
#define PEAK_RUNS 10

static volatile float g_sink;  /* keeps the peak loops' results alive */

static double peak_scalar(void) {
    float a[16], b = 0.999999f, c = 1e-7f;
    for (int i = 0; i < 16; i++) a[i] = g_sink + (float)i;
    double t0 = peak_now_s();
    for (long it = 0; it < PEAK_ITERS; it++)
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) a[i] = a[i] * b + c;
    double t = peak_now_s() - t0;
    for (int i = 0; i < 16; i++) g_sink += a[i];
    return (double)PEAK_ITERS * 16 * 2 / t;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static double peak_avx2(void) {
    __m256 acc[12];
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    double t0 = peak_now_s();
    for (long it = 0; it < PEAK_ITERS; it++)
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], b, c);
    double t = peak_now_s() - t0;
    for (int i = 0; i < 12; i++) g_sink += _mm256_cvtss_f32(acc[i]);
    return (double)PEAK_ITERS * 12 * 8 * 2 / t;
}

__attribute__((target("avx512f"))) static double peak_avx512(void) {
    __m512 acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps((float)i);
    const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    double t0 = peak_now_s();
    for (long it = 0; it < PEAK_ITERS; it++)
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) acc[i] = _mm512_fmadd_ps(acc[i], b, c);
    double t = peak_now_s() - t0;
    for (int i = 0; i < 16; i++) g_sink += _mm512_cvtss_f32(acc[i]);
    return (double)PEAK_ITERS * 16 * 16 * 2 / t;
}
#endif


#if defined(__x86_64__)
/* 4 independent accumulator tiles fed by 2 A and 2 B tiles that stay in registers. */
__attribute__((target("amx-tile,amx-bf16"))) static double peak_amx_bf16(void) {
    struct {
        uint8_t palette_id, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } __attribute__((aligned(64))) cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    static float buf[16 * 16] __attribute__((aligned(64)));
    for (int i = 0; i < 16 * 16; i++) buf[i] = g_sink + 0.5f;
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, buf, 64);
    _tile_loadd(5, buf, 64);
    _tile_loadd(6, buf, 64);
    _tile_loadd(7, buf, 64);
    const long iters = PEAK_ITERS / 8;
    double t0 = peak_now_s();
    for (long it = 0; it < iters; it++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    double t = peak_now_s() - t0;
    _tile_stored(0, buf, 64);
    _tile_release();
    g_sink += buf[0];
    return (double)iters * 4 * 16 * 16 * 32 * 2 / t;
}

/* 24 independent accumulators (vdpbf16ps: 16 lanes x 2 products x 2 FLOPs). */
__attribute__((target("avx512f,avx512bf16"))) static double peak_avx512_bf16(void) {
    __m512 acc[24];
    for (int i = 0; i < 24; i++) acc[i] = _mm512_set1_ps((float)i);
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16((short)(0x3f80 + (int)g_sink));
    const long iters = PEAK_ITERS / 2;
    double t0 = peak_now_s();
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < 24; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
        __asm__ volatile("" : "+v"(a));
    }
    double t = peak_now_s() - t0;
    for (int i = 0; i < 24; i++) g_sink += _mm512_cvtss_f32(acc[i]);
    return (double)iters * 24 * 16 * 4 / t;
}
#endif

static double best_of(double (*fn)(void)) {
    double best = 0;
    for (int r = 0; r < PEAK_RUNS; r++) {
        double p = fn();
        if (p > best) best = p;
    }
    return best;
}

#endif
