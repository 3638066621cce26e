/*
 * rng.c - PyTorch's CPU generator (mt19937 + its normal and uniform samplers), bit for bit.
 *
 * What torch 1.13 does (aten/src/ATen/native/cpu/DistributionTemplates.h,
 * ATen/core/DistributionsHelper.h, ATen/core/TransformationHelper.h,
 * ATen/CPUGeneratorImpl.cpp, ATen/core/MT19937RNGEngine.h), reproduced here:
 *   - manual_seed(s): mt19937 init_genrand(s & 0xffffffff); the cached normal samples
 *     are cleared. random() is one 32-bit draw; random64() = (first << 32) | second.
 *   - uniform float: (u32 & (2^24 - 1)) * 2^-24; uniform double: (u64 & (2^53 - 1)) * 2^-53.
 *   - randn float32 with n >= 16 (contiguous): fill n uniform floats, then Box-Muller
 *     on each block of 16 (u1 = 1 - x[j], u2 = x[j+8]) computed in float32; if
 *     n % 16 != 0 the last 16 outputs are recomputed from 16 fresh uniforms. The
 *     goldens come from torch's AVX2 kernel, whose log and sincos are the Cephes-style
 *     polynomials of avx_mathfun.h (Pommier/Garberoglio). That file is written with
 *     separate multiply and add intrinsics, but GCC (which builds torch, in GNU mode
 *     with -mfma) contracts each multiply whose only use is an add into an FMA.
 *     cephes_logf / cephes_sincosf below are a scalar rewrite of those algorithms
 *     with exactly those contractions made explicit (fmaf), so the results match to
 *     the bit: all 121268 golden elements. (For comparison, measured on the goldens:
 *     the same code without the FMAs matches 99.0% of the n >= 16 elements; libm
 *     logf/sinf/cosf 83%; double-precision evaluation rounded to float 62%.)
 *   - randn with n < 16 (and float64 with n < 16): per element, normal_distribution
 *     <double>: if a cached sample exists return it and clear the cache; else
 *     u1 = uniform double, u2 = uniform double, r = sqrt(-2 log(1 - u2)),
 *     theta = 2 pi u1, cache r sin(theta), return r cos(theta); cast to float.
 *   - randn float64 with n >= 16: like float32 but with uniform doubles and libm's
 *     double log/cos/sin (torch's scalar normal_fill).
 *   - rand float32: one uniform float per element.
 * Invariants: the state is a plain value (copy it to fork a stream); no global state.
 * Traps: every other float operation must round on its own (no extra contraction:
 * GCC's ISO mode, -std=c11, does not contract; clang gets the pragma below) and
 * fmaf must be a true fused multiply-add (C99 guarantees it; glibc uses the FMA
 * instruction when the CPU has one); the Box-Muller outputs pass through
 * fmadd(n, 1, 0), which turns -0 into +0; theta uses (float)(2 pi) = 6.2831855f; the
 * double sampler uses u1 for the angle and u2 for the radius; excess precision
 * (x87, FLT_EVAL_METHOD != 0) would break the float path.
 */
#include "base/rng.h"

#include "base/half.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define MT_N 624
#define MT_M 397

/* ---- mt19937 ---------------------------------------------------------------------- */

void pd_rng_seed(pd_rng *r, uint64_t seed) {
    r->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (int i = 1; i < MT_N; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->mti = MT_N;
    r->has_next_double_normal = false;
    r->next_double_normal = 0.0;
}

static void mt_twist(pd_rng *r) {
    uint32_t *mt = r->mt;
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % MT_N] & 0x7fffffffu);
        mt[i] = mt[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    r->mti = 0;
}

uint32_t pd_rng_u32(pd_rng *r) {
    if (r->mti >= MT_N) mt_twist(r);
    uint32_t y = r->mt[r->mti++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t pd_rng_u64(pd_rng *r) {
    uint64_t hi = pd_rng_u32(r);
    uint64_t lo = pd_rng_u32(r);
    return (hi << 32) | lo;
}

static float uniform_float(pd_rng *r) {
    return (float)(pd_rng_u32(r) & 0xffffffu) * 0x1p-24f;
}

static double uniform_double(pd_rng *r) {
    return (double)(pd_rng_u64(r) & ((UINT64_C(1) << 53) - 1)) * 0x1p-53;
}

void pd_rng_rand(pd_rng *r, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = uniform_float(r);
}

/* ---- float32 log and sincos as in torch's AVX2 kernel (Cephes polynomials) ---------- */

/* Natural log for x > 0 (NaN for x <= 0). x = m 2^e with m in [0.5, 1); if m < sqrt(1/2)
 * use f = 2m - 1 and e - 1, else f = m - 1; log = f + poly(f) f^3 - f^2/2 + e ln2 with
 * ln2 split into 0.693359375 - 2.12194440e-4. Each fmaf stands where the compiled torch
 * kernel has a fused multiply-add; every other operation rounds separately. */
static float cephes_logf(float x) {
    const bool invalid = !(x > 0.0f);
    if (x < 0x1p-126f) x = 0x1p-126f;                      /* max(x, FLT_MIN) */
    uint32_t bits = pd_f32_bits(x);
    float e = (float)((int32_t)(bits >> 23) - 127);
    x = pd_bits_f32((bits & ~0x7f800000u) | 0x3f000000u);         /* mantissa in [0.5, 1) */
    e = e + 1.0f;
    float tmp = 0.0f;
    if (x < 0.707106781186547524f) {
        tmp = x;
        e = e - 1.0f;
    }
    x = x - 1.0f;
    x = x + tmp;

    float z = x * x;
    float y = 7.0376836292e-2f;
    y = fmaf(y, x, -1.1514610310e-1f);
    y = fmaf(y, x, 1.1676998740e-1f);
    y = fmaf(y, x, -1.2420140846e-1f);
    y = fmaf(y, x, 1.4249322787e-1f);
    y = fmaf(y, x, -1.6668057665e-1f);
    y = fmaf(y, x, 2.0000714765e-1f);
    y = fmaf(y, x, -2.4999993993e-1f);
    y = fmaf(y, x, 3.3333331174e-1f);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    x = fmaf(e, 0.693359375f, x);
    return invalid ? pd_bits_f32(0xffffffffu) : x;
}

/* sin and cos of x for |x| < 2^31 (used on [0, 2 pi)): reduce by multiples of pi/4
 * (j even, three-part Cody-Waite pi/4), evaluate the cos and sin polynomials on the
 * remainder and pick and sign them by j's bits. fmaf as in cephes_logf. */
static void cephes_sincosf(float x, float *s, float *c) {
    uint32_t sign_sin = pd_f32_bits(x) & 0x80000000u;
    x = fabsf(x);
    float y = x * 1.27323954473516f;                        /* 4 / pi */
    int32_t j = (int32_t)y;
    j = (j + 1) & ~1;
    y = (float)j;
    if (j & 4) sign_sin ^= 0x80000000u;
    bool poly_is_sin = (j & 2) == 0;                        /* for the sine */
    uint32_t sign_cos = ((~(j - 2)) & 4) ? 0x80000000u : 0u;

    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);

    float z = x * x;
    float yc = 2.443315711809948e-5f;                       /* cos polynomial */
    yc = fmaf(yc, z, -1.388731625493765e-3f);
    yc = fmaf(yc, z, 4.166664568298827e-2f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;

    float ys = -1.9515295891e-4f;                           /* sin polynomial */
    ys = fmaf(ys, z, 8.3321608736e-3f);
    ys = fmaf(ys, z, -1.6666654611e-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);

    /* the kernel selects with masks and recombines with adds, which maps -0 to +0 */
    float sin_part_s = poly_is_sin ? ys : 0.0f, sin_part_c = poly_is_sin ? 0.0f : yc;
    float rest_s = ys - sin_part_s, rest_c = yc - sin_part_c;
    float sv = sin_part_c + sin_part_s;
    float cv = rest_c + rest_s;
    *s = pd_bits_f32(pd_f32_bits(sv) ^ sign_sin);
    *c = pd_bits_f32(pd_f32_bits(cv) ^ sign_cos);
}

/* Box-Muller on one block of 16 uniforms, in place (float32, as torch's AVX2 kernel). */
static void normal_fill_16_f32(float *x) {
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - x[j];
        float u2 = x[j + 8];
        float lg = cephes_logf(u1);
        float m2lg = -2.0f * lg;
        float radius = sqrtf(m2lg);
        float theta = two_pi * u2;
        float s, c;
        cephes_sincosf(theta, &s, &c);
        float n1 = radius * c;
        float n2 = radius * s;
        x[j] = n1 * 1.0f + 0.0f;                              /* fmadd(n, std, mean) */
        x[j + 8] = n2 * 1.0f + 0.0f;
    }
}

/* Box-Muller on one block of 16 uniform doubles (torch's scalar normal_fill_16). */
static void normal_fill_16_f64(double *x) {
    const double two_pi = 2.0 * 3.14159265358979323846;
    for (int j = 0; j < 8; j++) {
        double u1 = 1.0 - x[j];
        double u2 = x[j + 8];
        double radius = sqrt(-2.0 * log(u1));
        double theta = two_pi * u2;
        x[j] = radius * cos(theta) * 1.0 + 0.0;
        x[j + 8] = radius * sin(theta) * 1.0 + 0.0;
    }
}

/* at::normal_distribution<double>(0, 1) with the generator's cached second sample. */
static double normal_double(pd_rng *r) {
    if (r->has_next_double_normal) {
        r->has_next_double_normal = false;
        return r->next_double_normal * 1.0 + 0.0;
    }
    double u1 = uniform_double(r);
    double u2 = uniform_double(r);
    double radius = sqrt(-2.0 * log(1.0 - u2));
    double theta = 2.0 * 3.14159265358979323846 * u1;
    r->next_double_normal = radius * sin(theta);
    r->has_next_double_normal = true;
    return radius * cos(theta) * 1.0 + 0.0;
}

void pd_rng_randn(pd_rng *r, float *out, size_t n) {
    if (n < 16) {
        for (size_t i = 0; i < n; i++) out[i] = (float)normal_double(r);
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = uniform_float(r);
    for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16_f32(out + i);
    if (n % 16 != 0) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_float(r);
        normal_fill_16_f32(tail);
    }
}

void pd_rng_randn_f64(pd_rng *r, double *out, size_t n) {
    if (n < 16) {
        for (size_t i = 0; i < n; i++) out[i] = normal_double(r);
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = uniform_double(r);
    for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16_f64(out + i);
    if (n % 16 != 0) {
        double *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_double(r);
        normal_fill_16_f64(tail);
    }
}
