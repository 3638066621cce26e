/*
 * test_half.c - fp16 / bf16 <-> fp32 conversion.
 *
 * Exhaustive over all 65536 fp16 and bf16 patterns (widen then narrow is the identity
 * for non-NaN, NaN stays NaN with its sign); every rounding boundary between adjacent
 * finite 16-bit values (the exact midpoint ties to even, one f32 ulp either side goes
 * to the nearer value); overflow, underflow, max finite, subnormals; the row functions
 * against the scalar ones; and, where the compiler has _Float16, a sweep against the
 * compiler's own conversion.
 */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "base/error.h"
#include "base/half.h"
#include "test.h"

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int is_f16_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu); }
static int is_bf16_nan(uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu); }

/* Independent value of an fp16 pattern, computed in double. */
static double f16_value(uint16_t h) {
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (h & 0x8000u) ? -v : v;
}

static void test_f16_exhaustive(void) {
    int bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = pd_f16_to_f32(h);
        uint16_t back = pd_f32_to_f16(f);
        if (is_f16_nan(h)) {
            if (!isnan(f) || !is_f16_nan(back) || (back & 0x8000u) != (h & 0x8000u) ||
                !(f32_bits(f) & 0x400000u) || !(back & 0x200u) ||
                (back & 0x1ffu) != (h & 0x1ffu))
                bad++;
            continue;
        }
        if (back != h) bad++;
        if ((h & 0x7c00u) == 0x7c00u) {
            if (!isinf(f) || (signbit(f) != 0) != ((h & 0x8000u) != 0)) bad++;
        } else if ((double)f != f16_value(h) || (signbit(f) != 0) != ((h & 0x8000u) != 0)) {
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_bf16_exhaustive(void) {
    int bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t b = (uint16_t)i;
        float f = pd_bf16_to_f32(b);
        uint16_t back = pd_f32_to_bf16(f);
        if (is_bf16_nan(b)) {
            if (!isnan(f) || !is_bf16_nan(back) || (back & 0x8000u) != (b & 0x8000u) ||
                !(f32_bits(f) & 0x400000u))
                bad++;
            continue;
        }
        if (back != b) bad++;
        if (f32_bits(f) != (uint32_t)b << 16) bad++;   /* widening is a shift */
    }
    CHECK_EQ_INT(bad, 0);
}

/* For every pair of adjacent positive finite fp16 values lo < hi: the midpoint (exact
 * in f32) rounds to the even one, one f32 ulp below/above goes to lo/hi. */
static void test_f16_rounding_boundaries(void) {
    int bad = 0;
    for (uint16_t lo = 0; lo < 0x7bffu; lo++) {
        uint16_t hi = (uint16_t)(lo + 1);
        float mid = (float)((f16_value(lo) + f16_value(hi)) / 2);
        CHECK((double)mid == (f16_value(lo) + f16_value(hi)) / 2);
        uint16_t even = (lo & 1u) ? hi : lo;
        float below = nextafterf(mid, 0.0f), above = nextafterf(mid, INFINITY);
        if (pd_f32_to_f16(mid) != even) bad++;
        if (pd_f32_to_f16(below) != lo) bad++;
        if (pd_f32_to_f16(above) != hi) bad++;
        if (pd_f32_to_f16(-mid) != (uint16_t)(even | 0x8000u)) bad++;
        if (pd_f32_to_f16(-below) != (uint16_t)(lo | 0x8000u)) bad++;
        if (pd_f32_to_f16(-above) != (uint16_t)(hi | 0x8000u)) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_bf16_rounding_boundaries(void) {
    int bad = 0;
    for (uint32_t lo = 0; lo < 0x7f7fu; lo++) {
        uint32_t mid_bits = (lo << 16) | 0x8000u;     /* exact midpoint of lo, lo+1 */
        uint16_t even = (uint16_t)((lo & 1u) ? lo + 1 : lo);
        if (pd_f32_to_bf16(bits_f32(mid_bits)) != even) bad++;
        if (pd_f32_to_bf16(bits_f32(mid_bits - 1)) != lo) bad++;
        if (pd_f32_to_bf16(bits_f32(mid_bits + 1)) != lo + 1) bad++;
        if (pd_f32_to_bf16(bits_f32(mid_bits | 0x80000000u)) != (even | 0x8000u)) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_f16_special_cases(void) {
    CHECK_EQ_INT(pd_f32_to_f16(65504.0f), 0x7bff);             /* max finite */
    CHECK_EQ_INT(pd_f32_to_f16(65519.99f), 0x7bff);            /* just below the tie */
    CHECK_EQ_INT(pd_f32_to_f16(65520.0f), 0x7c00);             /* tie rounds to even = inf */
    CHECK_EQ_INT(pd_f32_to_f16(1e6f), 0x7c00);
    CHECK_EQ_INT(pd_f32_to_f16(-1e6f), 0xfc00);
    CHECK_EQ_INT(pd_f32_to_f16(3.4e38f), 0x7c00);
    CHECK_EQ_INT(pd_f32_to_f16(INFINITY), 0x7c00);
    CHECK_EQ_INT(pd_f32_to_f16(-INFINITY), 0xfc00);
    CHECK_EQ_INT(pd_f32_to_f16(0.0f), 0x0000);
    CHECK_EQ_INT(pd_f32_to_f16(-0.0f), 0x8000);
    CHECK_EQ_INT(pd_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(pd_f32_to_f16(-2.0f), 0xc000);
    CHECK_EQ_INT(pd_f32_to_f16(0.1f), 0x2e66);
    CHECK_EQ_INT(pd_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);      /* tie -> even (down) */
    CHECK_EQ_INT(pd_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);  /* tie -> even (up) */
    CHECK_EQ_INT(pd_f32_to_f16(0x1p-14f), 0x0400);             /* min normal */
    CHECK_EQ_INT(pd_f32_to_f16(0x1p-24f), 0x0001);             /* min subnormal */
    CHECK_EQ_INT(pd_f32_to_f16(0x1p-25f), 0x0000);             /* tie -> even zero */
    CHECK_EQ_INT(pd_f32_to_f16(-0x1p-25f), 0x8000);
    CHECK_EQ_INT(pd_f32_to_f16(nextafterf(0x1p-25f, 1.0f)), 0x0001);
    CHECK_EQ_INT(pd_f32_to_f16(0x1.8p-24f), 0x0002);           /* 1.5 units: tie -> 2 */
    CHECK_EQ_INT(pd_f32_to_f16(0x1p-26f), 0x0000);
    CHECK_EQ_INT(pd_f32_to_f16(1e-30f), 0x0000);
    CHECK_EQ_INT(pd_f32_to_f16(-1e-30f), 0x8000);
    CHECK_EQ_INT(pd_f32_to_f16(bits_f32(1)), 0x0000);          /* f32 subnormal */
    CHECK_EQ_INT(pd_f32_to_f16(0x1.ffcp-15f), 0x0400);         /* tie above the top subnormal -> min normal */
    CHECK_EQ_INT(pd_f32_to_f16(0x1.ff8p-15f), 0x03ff);         /* top subnormal, exact */
    CHECK_EQ_INT(pd_f32_to_f16(0x1.ff0p-15f), 0x03fe);
    CHECK(pd_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(pd_f16_to_f32(0x03ff) == 0x1.ff8p-15f);
    CHECK(pd_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(isinf(pd_f16_to_f32(0x7c00)) && pd_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(pd_f16_to_f32(0xfc00)) && pd_f16_to_f32(0xfc00) < 0);
    /* NaN: quiet, sign kept, in both directions */
    uint16_t h = pd_f32_to_f16(NAN);
    CHECK(is_f16_nan(h) && (h & 0x200u) && !(h & 0x8000u));
    h = pd_f32_to_f16(-NAN);
    CHECK(is_f16_nan(h) && (h & 0x8000u));
    h = pd_f32_to_f16(bits_f32(0x7f800001u));                  /* signalling, low payload */
    CHECK(is_f16_nan(h) && (h & 0x200u));
    float f = pd_f16_to_f32(0xfc01);                            /* signalling fp16 NaN */
    CHECK(isnan(f) && signbit(f) && (f32_bits(f) & 0x400000u));
}

static void test_bf16_special_cases(void) {
    CHECK_EQ_INT(pd_f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(pd_f32_to_bf16(-0.0f), 0x8000);
    CHECK_EQ_INT(pd_f32_to_bf16(3.38953139e38f), 0x7f7f);       /* max finite bf16 */
    CHECK_EQ_INT(pd_f32_to_bf16(bits_f32(0x7f7f7fffu)), 0x7f7f);
    CHECK_EQ_INT(pd_f32_to_bf16(bits_f32(0x7f7f8000u)), 0x7f80); /* tie to even -> inf */
    CHECK_EQ_INT(pd_f32_to_bf16(FLT_MAX), 0x7f80);
    CHECK_EQ_INT(pd_f32_to_bf16(INFINITY), 0x7f80);
    CHECK_EQ_INT(pd_f32_to_bf16(-INFINITY), 0xff80);
    CHECK_EQ_INT(pd_f32_to_bf16(bits_f32(0x00000001u)), 0x0000); /* tiny subnormal -> 0 */
    CHECK_EQ_INT(pd_f32_to_bf16(bits_f32(0x00008000u)), 0x0000); /* tie -> even 0 */
    CHECK_EQ_INT(pd_f32_to_bf16(bits_f32(0x00018000u)), 0x0002); /* tie -> even 2 */
    CHECK_EQ_INT(pd_f32_to_bf16(bits_f32(0x00008001u)), 0x0001); /* subnormal bf16 */
    CHECK_EQ_INT(pd_f32_to_bf16(bits_f32(0x807fffffu)), 0x8080); /* rounds up to -min normal */
    uint16_t b = pd_f32_to_bf16(bits_f32(0x7f800001u));         /* payload only in low bits */
    CHECK(is_bf16_nan(b) && (b & 0x40u) && !(b & 0x8000u));
    b = pd_f32_to_bf16(bits_f32(0xffffffffu));
    CHECK(is_bf16_nan(b) && (b & 0x8000u));
    float f = pd_bf16_to_f32(0xff81);
    CHECK(isnan(f) && signbit(f) && (f32_bits(f) & 0x400000u));
}

/* Row functions (SIMD variants where the CPU has them) against the scalar ones:
 * every 16-bit pattern, and for f32 every high half-word with 24 low half-words that
 * sit on or next to the fp16/bf16 rounding boundaries; at every length 0..40 and odd
 * offsets (tails). */
static void test_rows_match_scalar(void) {
    enum { N = 65536 };
    static const uint16_t lows[] = {0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000,
                                    0x2001, 0x3000, 0x5000, 0x7fff, 0x8000, 0x8001, 0x9000,
                                    0xafff, 0xb000, 0xc123, 0xdfff, 0xe000, 0xe001, 0xefff,
                                    0xf000, 0xfffe, 0xffff};
    uint16_t *h = malloc(N * sizeof *h), *o16 = malloc(N * sizeof *o16);
    float *f = malloc(N * sizeof *f), *o32 = malloc(N * sizeof *o32);
    PD_ASSERT(h && o16 && f && o32);
    int bad = 0;
    for (uint32_t i = 0; i < N; i++) h[i] = (uint16_t)i;
    pd_f16_to_f32_row(o32, h, N);
    for (uint32_t i = 0; i < N; i++)
        if (f32_bits(o32[i]) != f32_bits(pd_f16_to_f32(h[i]))) bad++;
    pd_bf16_to_f32_row(o32, h, N);
    for (uint32_t i = 0; i < N; i++)
        if (f32_bits(o32[i]) != f32_bits(pd_bf16_to_f32(h[i]))) bad++;
    CHECK_EQ_INT(bad, 0);
    for (size_t k = 0; k < PD_COUNT(lows); k++) {
        for (uint32_t i = 0; i < N; i++) f[i] = bits_f32(i << 16 | lows[k]);
        pd_f32_to_f16_row(o16, f, N);
        for (uint32_t i = 0; i < N; i++)
            if (o16[i] != pd_f32_to_f16(f[i])) bad++;
        pd_f32_to_bf16_row(o16, f, N);
        for (uint32_t i = 0; i < N; i++)
            if (o16[i] != pd_f32_to_bf16(f[i])) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* short rows and tails, at an odd offset */
    uint32_t s = 12345;
    for (int i = 0; i < 64; i++) {
        s = s * 1664525u + 1013904223u;
        h[i] = (uint16_t)(s >> 16);
        f[i] = bits_f32(s * 2654435761u);
    }
    for (size_t n = 0; n <= 40; n++) {
        pd_f16_to_f32_row(o32 + 1, h + 3, n);
        for (size_t i = 0; i < n; i++)
            if (f32_bits(o32[1 + i]) != f32_bits(pd_f16_to_f32(h[3 + i]))) bad++;
        pd_bf16_to_f32_row(o32 + 1, h + 3, n);
        for (size_t i = 0; i < n; i++)
            if (f32_bits(o32[1 + i]) != f32_bits(pd_bf16_to_f32(h[3 + i]))) bad++;
        o16[1 + n] = 0xabcd;   /* sentinel: nothing written past n */
        pd_f32_to_f16_row(o16 + 1, f + 3, n);
        for (size_t i = 0; i < n; i++)
            if (o16[1 + i] != pd_f32_to_f16(f[3 + i])) bad++;
        pd_f32_to_bf16_row(o16 + 1, f + 3, n);
        for (size_t i = 0; i < n; i++)
            if (o16[1 + i] != pd_f32_to_bf16(f[3 + i])) bad++;
        if (o16[1 + n] != 0xabcd) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    free(h);
    free(o16);
    free(f);
    free(o32);
}

/* Cross-check against the compiler's own conversion where it has one (x86-64 GCC 12+,
 * clang 15+, aarch64): one f32 in every 251 patterns, NaN excluded. */
static void test_against_compiler(void) {
#if defined(__FLT16_MAX__)
    int bad = 0;
    for (uint64_t u = 0; u <= 0xffffffffu; u += 251) {
        float f = bits_f32((uint32_t)u);
        if (isnan(f)) continue;
        _Float16 c = (_Float16)f;
        uint16_t cb;
        memcpy(&cb, &c, sizeof cb);
        if (pd_f32_to_f16(f) != cb) bad++;
    }
    CHECK_EQ_INT(bad, 0);
#else
    PD_SKIP("compiler has no _Float16");
#endif
}

int main(void) {
    PD_RUN(test_f16_exhaustive);
    PD_RUN(test_bf16_exhaustive);
    PD_RUN(test_f16_rounding_boundaries);
    PD_RUN(test_bf16_rounding_boundaries);
    PD_RUN(test_f16_special_cases);
    PD_RUN(test_bf16_special_cases);
    PD_RUN(test_rows_match_scalar);
    PD_RUN(test_against_compiler);
    return pd_test_summary();
}
