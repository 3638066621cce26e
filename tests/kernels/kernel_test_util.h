/*
 * kernel_test_util.h - helpers shared by the kernel tests: a deterministic RNG,
 * padded buffers with sentinels, and ISA availability.
 *
 * Buffers are malloc'd with 64 bytes of readable tail (the kernels' contract) and an
 * optional 1-float misalignment; sentinel fill lets a test prove that a kernel wrote
 * nothing outside its output range. kt_tables lists the kernel tables this CPU can run.
 */
#ifndef PD_KERNEL_TEST_UTIL_H
#define PD_KERNEL_TEST_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/kernels.h"
#include "test.h"

#define KT_SENTINEL (-12345.678f)

static uint32_t kt_rng = 0x12345678u;

static inline void kt_seed(uint32_t s) { kt_rng = s ? s : 1u; }

/* Uniform in [-1, 1). */
static inline float kt_rand(void) {
    kt_rng ^= kt_rng << 13;
    kt_rng ^= kt_rng >> 17;
    kt_rng ^= kt_rng << 5;
    return (float)((double)(kt_rng >> 8) / 8388608.0 - 1.0);
}

static inline void kt_fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = kt_rand() * scale;
}

static inline void kt_fill_value(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

/* n floats + 64 readable bytes, offset by `misalign` floats from a 64-byte boundary.
 * Free with kt_free(ptr, misalign). */
static inline float *kt_alloc(size_t n, int misalign) {
    float *p = aligned_alloc(64, ((n + (size_t)misalign) * sizeof(float) + 64 + 63) & ~(size_t)63);
    if (!p) abort();
    return p + misalign;
}

static inline void kt_free(float *p, int misalign) {
    if (p) free(p - misalign);
}

static inline bool kt_same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static inline bool kt_isa_supported(pd_isa isa) {
    pd_cpu_features f;
    pd_cpu_detect(&f);
    return pd_cpu_supports(&f, isa);
}

/* Every distinct kernel table this machine runs (each ISA level x fp32/bf16, levels the
 * CPU lacks skipped): fills up to max tables, returns the count. */
static inline int kt_tables(pd_kernels *out, int max) {
    static const pd_isa levels[] = {PD_ISA_SCALAR, PD_ISA_AVX2, PD_ISA_AVX512, PD_ISA_AMX};
    int n = 0;
    for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++)
        for (int prec = PD_PREC_FP32; prec <= PD_PREC_BF16; prec++) {
            if (n >= max) return n;
            pd_kernels kt;
            if (pd_kernels_init_prec(&kt, levels[l], (pd_prec)prec) != levels[l]) continue;
            bool dup = false;
            for (int i = 0; i < n; i++)
                dup |= out[i].gemm_f32 == kt.gemm_f32 && out[i].conv2d_f32 == kt.conv2d_f32 &&
                       out[i].dequant_panels == kt.dequant_panels;
            if (!dup) out[n++] = kt;
        }
    return n;
}

#endif
