/*
 * test_quant.c - block-quantized weights (kernels/quant/quant.h).
 *
 *   - pd_quantize_row against blocks derived by hand from ggml's reference formulas
 *     (each expected byte explained next to it), zero blocks, blocks of one value, a
 *     negative and a positive max for Q4_0 (the clamp to 15), fp16 rounding of d;
 *   - round trips of random rows within the format's error bound;
 *   - every vector quantizer (and the dispatcher) byte for byte against the scalar
 *     reference on many blocks: random rows at scales from 1e-37 to 3e38, exact ties of
 *     roundf and the q4 truncations, signed zeros as the extremes, +-max pairs,
 *     subnormals, +-FLT_MAX, inf/NaN, raw bit patterns; unaligned rows;
 *   - every dequant_panels variant of quant.inc this CPU runs, bit-identical to the
 *     reference of its format, and the references against pd_dequantize_row read
 *     through the documented layouts, on awkward shapes (n = 1, 3, 33, 320; k = 32,
 *     64, 96, 2880 and a padded 36; panel widths 16, 24, 32, 64; panel sub-ranges);
 *   - pd_q_gemm / pd_q_conv on every kernel table here (fp32 and bf16, each level)
 *     against the table precision's reference (pd_f32_gemm__ref / pd_bf16_gemm__ref,
 *     the conv twins) run on the weight dequantized by pd_dequantize_row and packed
 *     normally: tails of m and n, k up to 2880, 3x3 stride 1/2 with padding, 1x1, odd
 *     images, a scratch of exactly one panel and a large one, n0/n1 sub-ranges on panel
 *     boundaries (as threads call it), bias/act/residual; borrowed rows at an odd
 *     address (same bits as the owned pack); the conv pack's k order against the fp32
 *     conv of the original weight; bad arguments rejected with a message;
 *   - F16 rows (half_rows): every dequant variant bit-identical to the reference on k
 *     not a multiple of 32 from exact-size buffers, and pd_q_gemm on borrowed F16 rows
 *     bit for bit the fp32 pack of the same weight on every fp32 table.
 */
#include <float.h>

#include "base/half.h"
#include "kernel_test_util.h"
#include "kernels/conv/conv.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_bf16.h"
#include "kernels/quant/quant.h"

#define TOL 1e-5   /* fp32 and bf16 tables alike: identical weights, summation order differs */

static const pd_dtype QTYPES[] = {PD_DTYPE_Q8_0, PD_DTYPE_Q4_0, PD_DTYPE_Q4_1};

typedef struct dq_variant {
    pd_isa isa;
    const char *name;
    void (*fn)(const pd_packed_w *q, int p0, int p1, void *dst);
    pd_dtype wtype;
} dq_variant;

static const dq_variant DQ[] = {
#define PD_KERNEL(isa, fn, wtype) {isa, #fn, fn, wtype},
#include "kernels/quant/quant.inc"
#undef PD_KERNEL
};

static uint16_t f16_bits_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return h;
}

/* ---- the quantizers by hand --------------------------------------------------- */

static void test_q8_0_hand(void) {
    float x[32] = {0};
    uint8_t y[34];
    /* amax = 127: d = 1 (fp16 0x3c00), id = 1, q = roundf(x) (halves away from zero). */
    x[0] = 127.0f;   /* 127 = 0x7f */
    x[1] = -127.0f;  /* -127 = 0x81 */
    x[2] = 2.5f;     /* 3 */
    x[3] = -2.5f;    /* -3 = 0xfd */
    x[4] = 0.5f;     /* 1 */
    x[5] = 1.4f;     /* 1 */
    x[6] = -0.4f;    /* -0 -> 0 */
    pd_quantize_row(PD_DTYPE_Q8_0, x, y, 32);
    static const uint8_t want[9] = {0x00, 0x3c, 0x7f, 0x81, 0x03, 0xfd, 0x01, 0x01, 0x00};
    CHECK(memcmp(y, want, sizeof want) == 0);
    for (int j = 7; j < 32; j++) CHECK_EQ_INT(y[2 + j], 0);

    /* amax = 1: d = 1/127 = 0.0078740157 = 2^-7 * 1.0078740; mantissa 0.0078740 * 1024
     * = 8.06 -> 8: fp16 0x2000 | 8 = 0x2008 (exp 8 = -7 + 15). id = 1/d(fp32) ~ 127:
     * x = 1 -> 127, 0.25 -> roundf(31.75) = 32, -0.1 -> roundf(-12.7) = -13 = 0xf3. */
    memset(x, 0, sizeof x);
    x[0] = 1.0f;
    x[1] = 0.25f;
    x[2] = -0.1f;
    pd_quantize_row(PD_DTYPE_Q8_0, x, y, 32);
    CHECK_EQ_INT(f16_bits_at(y), 0x2008);
    CHECK_EQ_INT(y[2], 127);
    CHECK_EQ_INT(y[3], 32);
    CHECK_EQ_INT(y[4], 0xf3);

    /* zeros: d = 0, id = 0, every q 0. */
    memset(x, 0, sizeof x);
    pd_quantize_row(PD_DTYPE_Q8_0, x, y, 32);
    for (int i = 0; i < 34; i++) CHECK_EQ_INT(y[i], 0);

    /* 32 x 3.0: d = 3/127 = 0.0236220 = 2^-6 * 1.5118110, mantissa 0.5118 * 1024 = 524.09
     * -> 524 = 0x20c, exp 9 -> 0x2400 | 0x20c = 0x260c; q = roundf(3 * 127/3) = 127. */
    kt_fill_value(x, 32, 3.0f);
    pd_quantize_row(PD_DTYPE_Q8_0, x, y, 32);
    CHECK_EQ_INT(f16_bits_at(y), 0x260c);
    for (int j = 0; j < 32; j++) CHECK_EQ_INT(y[2 + j], 127);
}

static void test_q4_0_hand(void) {
    float x[32] = {0}, v[32];
    uint8_t y[18];
    /* Negative max: max = -8 (largest |x|, sign kept), d = -8 / -8 = 1 (0x3c00), id = 1,
     * q = MIN(15, (int8)(x + 8.5)): -8 -> 0, 4 -> 12, 7 -> 15, 1 -> 9, 0 -> 8,
     * x[16] = -4 -> 4, x[17] = 3.9 -> (int8)12.4 = 12. qs[j] = q[j] | q[16 + j] << 4. */
    x[0] = -8.0f;
    x[1] = 4.0f;
    x[2] = 7.0f;
    x[3] = 1.0f;
    x[16] = -4.0f;
    x[17] = 3.9f;
    pd_quantize_row(PD_DTYPE_Q4_0, x, y, 32);
    static const uint8_t want[6] = {0x00, 0x3c, 0x40 /* 0 | 4 << 4 */, 0xcc /* 12 | 12 << 4 */,
                                    0x8f /* 15 | 8 << 4 */, 0x89 /* 9 | 8 << 4 */};
    CHECK(memcmp(y, want, sizeof want) == 0);
    for (int j = 4; j < 16; j++) CHECK_EQ_INT(y[2 + j], 0x88);
    /* back: (q - 8) * 1: -8, 4, 7, 1, ..., -4, 4 */
    pd_dequantize_row(PD_DTYPE_Q4_0, y, v, 32);
    CHECK(v[0] == -8.0f && v[1] == 4.0f && v[2] == 7.0f && v[3] == 1.0f && v[16] == -4.0f && v[17] == 4.0f);

    /* Positive max: max = 8, d = -1 (0xbc00), id = -1: 8 -> (int8)0.5 = 0; -8 -> 16.5 ->
     * 16, clamped to 15 (back: (15 - 8) * -1 = -7: the one value Q4_0 cannot reach);
     * 2 -> 6.5 -> 6. */
    memset(x, 0, sizeof x);
    x[0] = 8.0f;
    x[1] = -8.0f;
    x[2] = 2.0f;
    pd_quantize_row(PD_DTYPE_Q4_0, x, y, 32);
    CHECK_EQ_INT(f16_bits_at(y), 0xbc00);
    CHECK_EQ_INT(y[2], 0x80);   /* 0 | 8 << 4 */
    CHECK_EQ_INT(y[3], 0x8f);
    CHECK_EQ_INT(y[4], 0x86);
    pd_dequantize_row(PD_DTYPE_Q4_0, y, v, 32);
    CHECK(v[0] == 8.0f && v[1] == -7.0f && v[2] == 2.0f);

    /* zeros: max = 0, d = 0 / -8 = -0 (fp16 0x8000), id = 0, q = (int8)8.5 = 8. */
    memset(x, 0, sizeof x);
    pd_quantize_row(PD_DTYPE_Q4_0, x, y, 32);
    CHECK_EQ_INT(f16_bits_at(y), 0x8000);
    for (int j = 0; j < 16; j++) CHECK_EQ_INT(y[2 + j], 0x88);

    /* 32 x 3.0: d = 3 / -8 = -0.375 (fp16 0xb600), id = -8/3: 3 * id + 8.5 = 0.5 -> 0;
     * back (0 - 8) * -0.375 = 3 exactly. */
    kt_fill_value(x, 32, 3.0f);
    pd_quantize_row(PD_DTYPE_Q4_0, x, y, 32);
    CHECK_EQ_INT(f16_bits_at(y), 0xb600);
    for (int j = 0; j < 16; j++) CHECK_EQ_INT(y[2 + j], 0x00);
    pd_dequantize_row(PD_DTYPE_Q4_0, y, v, 32);
    for (int j = 0; j < 32; j++) CHECK(v[j] == 3.0f);
}

static void test_q4_1_hand(void) {
    float x[32] = {0}, v[32];
    uint8_t y[20];
    /* min = -1, max = 14: d = 15/15 = 1 (0x3c00), m = -1 (0xbc00), id = 1,
     * q = MIN(15, (int8)(x + 1 + 0.5)): -1 -> 0, 14 -> 15, 2.4 -> 3, 0 -> 1,
     * x[16] = 2.6 -> 4. */
    x[0] = -1.0f;
    x[1] = 14.0f;
    x[2] = 2.4f;
    x[16] = 2.6f;
    pd_quantize_row(PD_DTYPE_Q4_1, x, y, 32);
    static const uint8_t want[7] = {0x00, 0x3c, 0x00, 0xbc, 0x40 /* 0 | 4 << 4 */,
                                    0x1f /* 15 | 1 << 4 */, 0x13 /* 3 | 1 << 4 */};
    CHECK(memcmp(y, want, sizeof want) == 0);
    for (int j = 3; j < 16; j++) CHECK_EQ_INT(y[4 + j], 0x11);
    pd_dequantize_row(PD_DTYPE_Q4_1, y, v, 32);   /* q * 1 + -1 */
    CHECK(v[0] == -1.0f && v[1] == 14.0f && v[2] == 2.0f && v[3] == 0.0f && v[16] == 3.0f);

    /* zeros: min = max = 0, d = 0, m = 0, q = (int8)0.5 = 0: all bytes 0. */
    memset(x, 0, sizeof x);
    pd_quantize_row(PD_DTYPE_Q4_1, x, y, 32);
    for (int i = 0; i < 20; i++) CHECK_EQ_INT(y[i], 0);

    /* 32 x 3.0: d = 0, m = 3 (fp16 0x4200), q = 0; back 0 * 0 + 3 = 3. */
    kt_fill_value(x, 32, 3.0f);
    pd_quantize_row(PD_DTYPE_Q4_1, x, y, 32);
    CHECK_EQ_INT(f16_bits_at(y), 0);
    CHECK_EQ_INT(f16_bits_at(y + 2), 0x4200);
    for (int j = 0; j < 16; j++) CHECK_EQ_INT(y[4 + j], 0);
    pd_dequantize_row(PD_DTYPE_Q4_1, y, v, 32);
    for (int j = 0; j < 32; j++) CHECK(v[j] == 3.0f);
}

/* ---- vector quantizers: the same bytes as the reference ---------------------------- */

typedef struct q_variant {
    pd_isa isa;
    const char *name;
    void (*fn)(pd_dtype t, const float *x, void *dst, size_t n);
} q_variant;

static const q_variant QV[] = {
#if defined(__x86_64__) || defined(_M_X64)
    {PD_ISA_AVX512, "pd_quantize_row__avx512", pd_quantize_row__avx512},
#endif
    {PD_ISA_SCALAR, "pd_quantize_row", pd_quantize_row},   /* the dispatcher */
};

static uint32_t rand_u32(void) {
    (void)kt_rand();
    return kt_rng;
}

/* Block kind `kind` (of QB_KINDS) into x[0..32): random rows at many scales, exact ties
 * of roundf and of the q4 truncations, signed zeros as extremes (first element wins),
 * +-max pairs in both orders, subnormals (1/d infinite), FLT_MAX, inf/NaN, raw bits. */
enum { QB_KINDS = 16 };
static void quant_block_kind(float *x, int kind) {
    static const float scales[] = {1.0f, 1e-3f, 300.0f, 1e-20f, 1e20f, 3e38f, 1e-37f};
    switch (kind) {
    case 0: case 1: case 2: case 3: case 4: case 5: case 6:
        kt_fill(x, 32, scales[kind]);
        break;
    case 7:   /* integers and halves: q8 d = 1 (amax 127) makes x*id the value itself */
        for (int j = 0; j < 32; j++) x[j] = (float)((int)(rand_u32() % 509) - 254) * 0.5f;
        x[rand_u32() % 32] = (rand_u32() & 1) ? 127.0f : -127.0f;
        break;
    case 8:   /* q4_0 d = +-1, q4_1 d = 1: every x*id + 8.5 / + 0.5 on or next to an integer */
        for (int j = 0; j < 32; j++) x[j] = (float)((int)(rand_u32() % 33) - 16) * 0.5f;
        x[rand_u32() % 32] = (rand_u32() & 1) ? 8.0f : -8.0f;
        break;
    case 9:   /* signed zeros only, or zeros and one sign (a zero is the max or the min) */
        for (int j = 0; j < 32; j++) x[j] = (rand_u32() & 1) ? 0.0f : -0.0f;
        if (rand_u32() & 1)
            for (int j = 0; j < 32; j += 3) x[j] = (rand_u32() & 1) ? kt_rand() : -fabsf(kt_rand());
        break;
    case 10:   /* +a and -a both present, in random order (the first is Q4_0's max) */
        kt_fill(x, 32, 0.5f);
        x[rand_u32() % 32] = 0.75f;
        x[rand_u32() % 32] = -0.75f;
        break;
    case 11:   /* subnormals and the smallest normals, with zeros */
        for (int j = 0; j < 32; j++) x[j] = kt_rand() * ((rand_u32() & 1) ? 1e-39f : 2e-38f);
        x[rand_u32() % 32] = 0.0f;   /* 0 * an infinite id is NaN */
        x[rand_u32() % 32] = -0.0f;
        break;
    case 12:   /* +-FLT_MAX (Q4_1: max - min overflows) */
        kt_fill(x, 32, 1e38f);
        x[rand_u32() % 32] = FLT_MAX;
        x[rand_u32() % 32] = -FLT_MAX;
        break;
    case 13:   /* one inf or NaN */
        kt_fill(x, 32, 1.0f);
        x[rand_u32() % 32] = (rand_u32() & 1) ? INFINITY : (rand_u32() & 1) ? -INFINITY : NAN;
        break;
    case 14:   /* one value repeated (d from one element), sometimes negative */
        kt_fill_value(x, 32, kt_rand() * 10.0f);
        break;
    default:   /* raw bit patterns: everything, NaNs included */
        for (int j = 0; j < 32; j++) {
            uint32_t u = rand_u32();
            memcpy(&x[j], &u, sizeof u);
        }
        break;
    }
}

static void test_quantize_variants(void) {
    enum { BLOCKS = 4096, N = BLOCKS * 32 };
    float *x = kt_alloc(N, 1);   /* loads at 4 bytes past a 64-byte boundary */
    uint8_t *want = malloc((size_t)N / 32 * 34), *got = malloc((size_t)N / 32 * 34);
    CHECK(want && got);
    int ran = 0;
    for (size_t v = 0; v < PD_COUNT(QV); v++) {
        if (!kt_isa_supported(QV[v].isa)) continue;
        ran += QV[v].isa != PD_ISA_SCALAR;
        for (int rep = 0; rep < 4; rep++) {
            kt_seed(100u + (uint32_t)rep);
            for (int b = 0; b < BLOCKS; b++) quant_block_kind(x + (size_t)b * 32, (b + rep) % QB_KINDS);
            for (size_t t = 0; t < PD_COUNT(QTYPES); t++) {
                const size_t bytes = (size_t)N / 32 * pd_dtype_size(QTYPES[t]);
                memset(want, 0xa5, bytes);
                memset(got, 0x5a, bytes);
                pd_quantize_row__ref(QTYPES[t], x, want, N);
                QV[v].fn(QTYPES[t], x, got, N);
                size_t bad = bytes;
                for (size_t i = 0; i < bytes && bad == bytes; i++)
                    if (want[i] != got[i]) bad = i;
                CHECK_MSG(bad == bytes, "%s %s: byte %zu (block %zu, kind %d) %02x, want %02x", QV[v].name,
                          pd_dtype_name(QTYPES[t]), bad, bad / pd_dtype_size(QTYPES[t]),
                          (int)((bad / pd_dtype_size(QTYPES[t]) + (size_t)rep) % QB_KINDS),
                          bad < bytes ? got[bad] : 0, bad < bytes ? want[bad] : 0);
            }
        }
    }
    free(want);
    free(got);
    kt_free(x, 1);
    if (!ran) PD_SKIP("no vector quantizer runs here (only the dispatcher was checked)");
}

/* Round trips: per block, |x - deq| <= d/2 plus the fp16 rounding of d (and m): d16
 * differs from d by <= 2^-11 d (2^-25 absolute where d is an fp16 subnormal, as tiny
 * weights give), times |q| <= 127 (Q8_0), 8 (Q4_0), 15 (Q4_1), and m16 from m likewise. Q4_0's one unreachable value (x*id >= 7.5, clamped to
 * q = 15) is off by up to d. */
static void test_round_trip(void) {
    kt_seed(11);
    enum { N = 32 * 64 };
    float x[N], v[N];
    uint8_t y[N / 32 * 34];
    for (size_t t = 0; t < PD_COUNT(QTYPES); t++) {
        const pd_dtype qt = QTYPES[t];
        for (int scale_i = 0; scale_i < 3; scale_i++) {
            const float scale = scale_i == 0 ? 1.0f : scale_i == 1 ? 1e-3f : 300.0f;
            kt_fill(x, N, scale);
            for (int b = 0; b < N / 32; b += 5) x[b * 32 + 7] += 2.0f * scale;   /* offset blocks (Q4_1's m) */
            pd_quantize_row(qt, x, y, N);
            pd_dequantize_row(qt, y, v, N);
            int bad = 0;
            for (int b = 0; b < N / 32; b++) {
                const float *xb = x + b * 32;
                float amax = 0, smax = 0, mn = xb[0], mx = xb[0];
                for (int j = 0; j < 32; j++) {
                    if (fabsf(xb[j]) > amax) {
                        amax = fabsf(xb[j]);
                        smax = xb[j];
                    }
                    mn = fminf(mn, xb[j]);
                    mx = fmaxf(mx, xb[j]);
                }
                const double d = qt == PD_DTYPE_Q8_0 ? amax / 127.0 : qt == PD_DTYPE_Q4_0 ? amax / 8.0 : (mx - mn) / 15.0;
                const double qmax = qt == PD_DTYPE_Q8_0 ? 127 : qt == PD_DTYPE_Q4_0 ? 8 : 15;
                /* fp16 keeps 11 bits, or absolute 2^-25 below 2^-14 (subnormals) */
                const double d16_err = fmax(d / 2048.0, 0x1p-25), m16_err = fmax(fabs(mn) / 2048.0, 0x1p-25);
                const double slack = qmax * d16_err + (qt == PD_DTYPE_Q4_1 ? m16_err : 0.0) + 1e-6 * amax;
                for (int j = 0; j < 32; j++) {
                    const double err = fabs((double)xb[j] - v[b * 32 + j]);
                    /* Q4_0: x of the opposite sign to max with |x| >= 7.5 d clamps to -7 d */
                    const bool clamped = qt == PD_DTYPE_Q4_0 && (double)xb[j] * smax < 0 && fabs(xb[j]) >= 7.49 * d;
                    bad += err > (clamped ? d : 0.5 * d) + slack;
                }
            }
            CHECK_MSG(bad == 0, "%s scale %g: %d elements past the bound", pd_dtype_name(qt), (double)scale, bad);
        }
    }
}

/* ---- dequant_panels ------------------------------------------------------------ */

static bool dq_supported(const dq_variant *v) { return kt_isa_supported(v->isa); }

/* Random [n, k] weight quantized to qt with panel width nr (caller frees). */
static pd_packed_w make_q(pd_dtype qt, int nr, int n, int k) {
    float *w = kt_alloc((size_t)n * (size_t)k, 0);
    kt_fill(w, (size_t)n * (size_t)k, 1.0f);
    for (int j = 0; j < n; j += 3) w[(size_t)j * (size_t)k] += 1.5f;   /* Q4_1 offsets, Q4_0 signs */
    pd_packed_w q;
    pd_error err = {0};
    if (pd_q_gemm_pack(&q, nr, qt, w, PD_DTYPE_F32, (size_t)k, n, k, NULL, PD_DTYPE_F32, &err) != PD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        abort();
    }
    kt_free(w, 0);
    return q;
}

static size_t panels_bytes(const pd_packed_w *q, pd_dtype wtype, int count) {
    return wtype == PD_DTYPE_BF16 ? (size_t)count * (size_t)q->kp * (size_t)q->nr * 2
                                  : (size_t)count * (size_t)q->k * (size_t)q->nr * 4;
}

/* The reference panels against pd_dequantize_row through the documented layouts. */
static void check_ref_layout(const pd_packed_w *q) {
    const int n_panels = (q->n + q->nr - 1) / q->nr;
    float *f = malloc(panels_bytes(q, PD_DTYPE_F32, n_panels));
    uint16_t *h = malloc(panels_bytes(q, PD_DTYPE_BF16, n_panels));
    float *row = malloc((size_t)q->kp * sizeof(float));
    if (!f || !h || !row) abort();
    pd_q_dequant_f32__ref(q, 0, n_panels, f);
    pd_q_dequant_bf16__ref(q, 0, n_panels, h);
    const size_t nr = (size_t)q->nr, k = (size_t)q->k, kp = (size_t)q->kp;
    int bad = 0;
    for (int j = 0; j < n_panels * q->nr; j++) {
        if (j < q->n) pd_dequantize_row(q->dtype, q->q + (size_t)j * q->qrow, row, kp);
        const size_t p = (size_t)j / nr, c = (size_t)j % nr;
        for (size_t kk = 0; kk < kp; kk++) {
            const float want = j < q->n && kk < k ? row[kk] : 0.0f;
            if (kk < k) bad += !kt_same_bits(f[(p * k + kk) * nr + c], want);
            bad += h[(p * kp + (kk & ~(size_t)1)) * nr + 2 * c + (kk & 1)] != pd_f32_to_bf16(want);
        }
    }
    CHECK_MSG(bad == 0, "%s n=%d k=%d nr=%d: %d reference elements off the layout", pd_dtype_name(q->dtype), q->n,
              q->k, q->nr, bad);
    free(f);
    free(h);
    free(row);
}

static void test_dequant_variants(void) {
    kt_seed(3);
    static const int ns[] = {1, 3, 33, 320};
    static const int ks[] = {32, 64, 96, 36, 2880};
    static const int nrs[] = {16, 24, 32, 64};
    int n_var = 0;
    for (size_t v = 0; v < PD_COUNT(DQ); v++) n_var += dq_supported(&DQ[v]);
    for (size_t t = 0; t < PD_COUNT(QTYPES); t++)
        for (size_t ni = 0; ni < PD_COUNT(ns); ni++)
            for (size_t ki = 0; ki < PD_COUNT(ks); ki++)
                for (size_t ri = 0; ri < PD_COUNT(nrs); ri++) {
                    const int n = ns[ni], k = ks[ki], nr = nrs[ri];
                    if (k == 2880 && n > 33 && nr != 32) continue;   /* keep the big case to one nr */
                    pd_packed_w q = make_q(QTYPES[t], nr, n, k);
                    if (nr == 24 || (k == 2880 && n > 33)) check_ref_layout(&q);
                    const int n_panels = (n + nr - 1) / nr;
                    /* all panels, and a sub-range [p0, n_panels) when there are several */
                    const int p0s[2] = {0, n_panels / 2};
                    for (int s = 0; s < (n_panels > 1 ? 2 : 1); s++) {
                        const int p0 = p0s[s], cnt = n_panels - p0;
                        for (int wt = 0; wt < 2; wt++) {
                            const pd_dtype wtype = wt ? PD_DTYPE_BF16 : PD_DTYPE_F32;
                            const size_t bytes = panels_bytes(&q, wtype, cnt);
                            uint8_t *want = malloc(bytes + 64), *got = malloc(bytes + 64 + 4);
                            if (!want || !got) abort();
                            (wt ? pd_q_dequant_bf16__ref : pd_q_dequant_f32__ref)(&q, p0, n_panels, want);
                            for (size_t v = 0; v < PD_COUNT(DQ); v++) {
                                if (DQ[v].wtype != wtype || !dq_supported(&DQ[v])) continue;
                                memset(got, 0xa5, bytes + 68);
                                DQ[v].fn(&q, p0, n_panels, got + 4);   /* 4-byte aligned only */
                                CHECK_MSG(memcmp(got + 4, want, bytes) == 0, "%s %s n=%d k=%d nr=%d p0=%d: not bit-identical",
                                          DQ[v].name, pd_dtype_name(q.dtype), n, k, nr, p0);
                                bool tail = true;
                                for (size_t i = 0; i < 4; i++) tail &= got[i] == 0xa5;
                                for (size_t i = 0; i < 64; i++) tail &= got[4 + bytes + i] == 0xa5;
                                CHECK_MSG(tail, "%s wrote outside its panels", DQ[v].name);
                            }
                            free(want);
                            free(got);
                        }
                    }
                    pd_packed_w_free(&q);
                }
    if (n_var <= 2) PD_SKIP("no SIMD dequant variant runs here (only the references were checked)");
}

/* ---- F16 rows (kernels.h half_rows) ------------------------------------------------ */

/* n x k random halves in a buffer of exactly that size (a read past a row end is an
 * ASan error): normals of both signs, signed zeros, subnormals, +-inf, +-65504. */
static uint16_t *f16_weight(int n, int k) {
    uint16_t *h = malloc((size_t)n * (size_t)k * sizeof *h);
    if (!h) abort();
    static const uint16_t special[] = {0x0000, 0x8000, 0x0001, 0x83ff, 0x7c00, 0xfc00, 0x7bff, 0xfbff};
    for (size_t i = 0; i < (size_t)n * (size_t)k; i++)
        h[i] = i % 97 == 5 ? special[(i / 97) % 8] : pd_f32_to_f16(kt_rand());
    return h;
}

/* Every dequant variant on F16 rows, bit-identical to the reference, which equals
 * pd_to_f32 of the halves read through the layout; rows of k % 32 != 0 read nothing past
 * their end (exact-size buffers). */
static void test_f16_dequant(void) {
    kt_seed(9);
    static const int ns[] = {1, 3, 33};
    static const int ks[] = {1, 7, 32, 33, 77, 1283};
    static const int nrs[] = {16, 24, 32, 64};
    for (size_t ni = 0; ni < PD_COUNT(ns); ni++)
        for (size_t ki = 0; ki < PD_COUNT(ks); ki++)
            for (size_t ri = 0; ri < PD_COUNT(nrs); ri++) {
                const int n = ns[ni], k = ks[ki], nr = nrs[ri];
                uint16_t *h = f16_weight(n, k);
                pd_packed_w q;
                pd_error err = {0};
                CHECK(pd_q_gemm_wrap(&q, nr, PD_DTYPE_F16, h, n, k, NULL, PD_DTYPE_F32, &err) == PD_OK);
                CHECK(q.q_borrowed && q.qrow == (size_t)k * 2 && q.kp % 32 == 0);
                const int n_panels = (n + nr - 1) / nr;
                for (int wt = 0; wt < 2; wt++) {
                    const pd_dtype wtype = wt ? PD_DTYPE_BF16 : PD_DTYPE_F32;
                    const size_t bytes = panels_bytes(&q, wtype, n_panels);
                    uint8_t *want = malloc(bytes), *got = malloc(bytes + 64 + 4);
                    if (!want || !got) abort();
                    (wt ? pd_q_dequant_bf16__ref : pd_q_dequant_f32__ref)(&q, 0, n_panels, want);
                    int bad = 0;
                    for (int j = 0; j < n_panels * nr; j++)
                        for (int kk = 0; kk < (wt ? q.kp : k); kk++) {
                            const float v = j < n && kk < k ? pd_f16_to_f32(h[(size_t)j * (size_t)k + (size_t)kk]) : 0.0f;
                            const size_t p = (size_t)j / (size_t)nr, c = (size_t)j % (size_t)nr;
                            if (wt) {
                                uint16_t b;
                                memcpy(&b, want + 2 * ((p * (size_t)q.kp + ((size_t)kk & ~(size_t)1)) * (size_t)nr +
                                                       2 * c + ((size_t)kk & 1)), 2);
                                bad += b != pd_f32_to_bf16(v);
                            } else {
                                float f;
                                memcpy(&f, want + 4 * ((p * (size_t)k + (size_t)kk) * (size_t)nr + c), 4);
                                bad += !kt_same_bits(f, v);
                            }
                        }
                    CHECK_MSG(bad == 0, "F16 ref %s n=%d k=%d nr=%d: %d elements off", wt ? "bf16" : "f32", n, k, nr, bad);
                    for (size_t v = 0; v < PD_COUNT(DQ); v++) {
                        if (DQ[v].wtype != wtype || !dq_supported(&DQ[v])) continue;
                        memset(got, 0xa5, bytes + 68);
                        DQ[v].fn(&q, 0, n_panels, got + 4);
                        CHECK_MSG(memcmp(got + 4, want, bytes) == 0, "%s F16 n=%d k=%d nr=%d: not bit-identical",
                                  DQ[v].name, n, k, nr);
                        bool tail = true;
                        for (size_t i = 0; i < 64; i++) tail &= got[4 + bytes + i] == 0xa5;
                        CHECK_MSG(tail, "%s wrote outside its panels", DQ[v].name);
                    }
                    free(want);
                    free(got);
                }
                pd_packed_w_free(&q);
                free(h);
            }
}

/* pd_kernels_pack_gemm with half_rows keeps an F16 weight as borrowed rows, and
 * pd_q_gemm on it is bit for bit the fp32 pack of the same weight (widening is exact and
 * the kernel the same), on every fp32 table: tails, sub-ranges, a one-panel scratch. */
static void test_f16_rows_gemm(void) {
    kt_seed(10);
    pd_kernels kts[8];
    const int n_kt = kt_tables(kts, 8);
    for (int t = 0; t < n_kt; t++) {
        pd_kernels kt = kts[t];
        if (kt.wtype != PD_DTYPE_F32) {
            kt.half_rows = true;   /* bf16 tables pack as before */
            CHECK(!pd_kernels_half_rows(&kt, PD_DTYPE_F16, 64, 64));
            continue;
        }
        const int nr = kt.gemm_nr;
        const struct { int m, n, k, n0, n1; bool one_panel; } cases[] = {
            {1, 1, 1, 0, 1, false},       {77, 3, 7, 0, 3, true},          {5, nr + 1, 77, 0, nr + 1, true},
            {77, 3 * nr - 1, 768 + 5, nr, 3 * nr - 1, false},           {33, 2 * nr, 40, 0, 2 * nr, true},
        };
        for (size_t i = 0; i < PD_COUNT(cases); i++) {
            const int m = cases[i].m, n = cases[i].n, k = cases[i].k;
            uint16_t *h = f16_weight(n, k);
            float *bias = kt_alloc((size_t)n, 0);
            kt_fill(bias, (size_t)n, 1.0f);
            pd_packed_w rows, packed;
            pd_error err = {0};
            kt.half_rows = true;
            CHECK(pd_kernels_half_rows(&kt, PD_DTYPE_F16, n, k) && !pd_kernels_half_rows(&kt, PD_DTYPE_F32, n, k));
            CHECK(pd_kernels_pack_gemm(&kt, &rows, h, PD_DTYPE_F16, (size_t)k, n, k, bias, PD_DTYPE_F32, NULL, &err) == PD_OK);
            CHECK(rows.dtype == PD_DTYPE_F16 && rows.q_borrowed && pd_packed_w_rows(&rows));
            kt.half_rows = false;
            CHECK(pd_kernels_pack_gemm(&kt, &packed, h, PD_DTYPE_F16, (size_t)k, n, k, bias, PD_DTYPE_F32, NULL, &err) == PD_OK);
            CHECK(packed.dtype == PD_DTYPE_F32 && !pd_packed_w_rows(&packed));
            const size_t lda = (size_t)k + 1, ldc = (size_t)n + 3;
            float *a = kt_alloc((size_t)m * lda, 1), *got = kt_alloc((size_t)m * ldc, 0), *want = kt_alloc((size_t)m * ldc, 0);
            kt_fill(a, (size_t)m * lda, 1.0f);
            for (int pass = 0; pass < 2; pass++) {
                const int n0 = pass ? cases[i].n0 : 0, n1 = pass ? cases[i].n1 : n;
                kt_fill_value(got, (size_t)m * ldc, KT_SENTINEL);
                kt_fill_value(want, (size_t)m * ldc, KT_SENTINEL);
                pd_gemm_args g = {.m = m, .n0 = n0, .n1 = n1, .a = a, .lda = lda, .w = &rows, .c = got, .ldc = ldc,
                                  .act = pass ? PD_ACT_GELU : PD_ACT_NONE};
                const size_t sb = cases[i].one_panel ? pd_q_scratch_bytes(&kt, k) : (size_t)2 << 20;
                char *scratch = malloc(sb + 8);
                if (!scratch) abort();
                pd_q_gemm(&kt, &g, scratch + 8, sb);
                g.w = &packed;
                g.c = want;
                kt.gemm_f32(&g);
                CHECK_MSG(memcmp(got, want, (size_t)m * ldc * sizeof(float)) == 0,
                          "%s F16 rows m=%d n=%d k=%d [%d,%d): not bit-identical to the fp32 pack", kt.gemm_name, m, n,
                          k, n0, n1);
                free(scratch);
            }
            kt_free(a, 1);
            kt_free(got, 0);
            kt_free(want, 0);
            kt_free(bias, 0);
            pd_packed_w_free(&rows);
            pd_packed_w_free(&packed);
            free(h);
        }
        /* quantizing (wquant) wins over F16 rows; block packers refuse F16 */
        kt.half_rows = true;
        kt.wquant = PD_DTYPE_Q8_0;
        CHECK(!pd_kernels_half_rows(&kt, PD_DTYPE_F16, 64, 64) && pd_kernels_half_rows(&kt, PD_DTYPE_F16, 64, 40));
    }
    pd_packed_w q;
    pd_error err = {0};
    float w[64] = {0};
    CHECK(pd_q_gemm_pack(&q, 16, PD_DTYPE_F16, w, PD_DTYPE_F32, 32, 2, 32, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
}

/* ---- pd_q_gemm ------------------------------------------------------------------ */

/* The weight of q as fp32 [n, k] (the reference's input). */
static float *dequant_weight(const pd_packed_w *q) {
    float *w = kt_alloc((size_t)q->n * (size_t)q->k, 0);
    float *row = malloc((size_t)q->kp * sizeof(float));
    if (!row) abort();
    for (int j = 0; j < q->n; j++) {
        pd_dequantize_row(q->dtype, q->q + (size_t)j * q->qrow, row, (size_t)q->kp);
        memcpy(w + (size_t)j * (size_t)q->k, row, (size_t)q->k * sizeof(float));
    }
    free(row);
    return w;
}

/* The dequantized weight packed for the table's precision, and that precision's
 * reference GEMM and conv. */
static void ref_pack(const pd_kernels *kt, const pd_packed_w *q, pd_packed_w *out) {
    float *w = dequant_weight(q);
    pd_error err = {0};
    pd_status st = kt->wtype == PD_DTYPE_BF16
                       ? pd_bf16_gemm_pack(out, 32, w, PD_DTYPE_F32, (size_t)q->k, q->n, q->k, q->bias, PD_DTYPE_F32, &err)
                       : pd_gemm_pack(out, 16, w, PD_DTYPE_F32, (size_t)q->k, q->n, q->k, q->bias, PD_DTYPE_F32, &err);
    if (st != PD_OK) abort();
    kt_free(w, 0);
}

typedef struct gcase {
    int m, n, k;
    int n0, n1;          /* -1: full */
    bool one_panel;      /* scratch of exactly pd_q_scratch_bytes (one panel per chunk) */
    pd_act act;
    bool res;
} gcase;

static void gemm_case(const pd_kernels *kt, pd_dtype qt, const gcase *c) {
    float *w = kt_alloc((size_t)c->n * (size_t)c->k, 0), *bias = kt_alloc((size_t)c->n, 0);
    kt_fill(w, (size_t)c->n * (size_t)c->k, 1.0f);
    kt_fill(bias, (size_t)c->n, 1.0f);
    pd_packed_w q, rw;
    pd_error err = {0};
    CHECK(pd_kernels_pack_gemm_q(kt, &q, qt, w, PD_DTYPE_F32, (size_t)c->k, c->n, c->k, bias, PD_DTYPE_F32, &err) == PD_OK);
    ref_pack(kt, &q, &rw);
    const size_t lda = (size_t)c->k + 3, ldc = (size_t)c->n + 5;
    float *a = kt_alloc((size_t)c->m * lda, 1), *res = kt_alloc((size_t)c->m * ldc, 0);
    float *got = kt_alloc((size_t)c->m * ldc, 0), *want = kt_alloc((size_t)c->m * ldc, 0);
    kt_fill(a, (size_t)c->m * lda, 1.0f);
    kt_fill(res, (size_t)c->m * ldc, 1.0f);
    kt_fill_value(got, (size_t)c->m * ldc, KT_SENTINEL);
    kt_fill_value(want, (size_t)c->m * ldc, KT_SENTINEL);
    const int n0 = c->n0 < 0 ? 0 : c->n0, n1 = c->n1 < 0 ? c->n : c->n1;
    pd_gemm_args g = {.m = c->m, .n0 = n0, .n1 = n1, .a = a, .lda = lda, .w = &q, .c = got, .ldc = ldc,
                      .res = c->res ? res : NULL, .ldres = ldc, .act = c->act};
    const size_t sb = c->one_panel ? pd_q_scratch_bytes(kt, c->k) : (size_t)2 << 20;
    char *scratch = malloc(sb + 8);
    if (!scratch) abort();
    pd_q_gemm(kt, &g, scratch + 8, sb);   /* misaligned scratch */
    pd_gemm_args r = g;
    r.w = &rw;
    r.c = want;
    (kt->wtype == PD_DTYPE_BF16 ? pd_bf16_gemm__ref : pd_f32_gemm__ref)(&r);
    double maxref = 0, maxdiff = 0;
    int outside = 0;
    for (int i = 0; i < c->m; i++)
        for (int j = 0; j < (int)ldc; j++) {
            const float gv = got[(size_t)i * ldc + j], wv = want[(size_t)i * ldc + j];
            if (j < n0 || j >= n1) {
                outside += !kt_same_bits(gv, KT_SENTINEL);
                continue;
            }
            maxref = fmax(maxref, fabs(wv));
            maxdiff = fmax(maxdiff, fabs((double)gv - wv));
        }
    CHECK_MSG(maxdiff <= TOL * maxref && outside == 0,
              "%s %s m=%d n=%d k=%d [%d,%d) one_panel=%d: diff %.3g of %.3g, %d written outside", kt->gemm_name,
              pd_dtype_name(qt), c->m, c->n, c->k, n0, n1, c->one_panel, maxdiff, maxref, outside);
    free(scratch);
    kt_free(a, 1);
    kt_free(res, 0);
    kt_free(got, 0);
    kt_free(want, 0);
    kt_free(w, 0);
    kt_free(bias, 0);
    pd_packed_w_free(&q);
    pd_packed_w_free(&rw);
}

static void test_q_gemm(void) {
    kt_seed(5);
    pd_kernels kts[8];
    const int n_kt = kt_tables(kts, 8);
    for (int t = 0; t < n_kt; t++) {
        const pd_kernels *kt = &kts[t];
        fprintf(stderr, "  table %s (dequant %s)\n", kt->gemm_name,
                kt->wtype == PD_DTYPE_BF16 ? "bf16" : "f32");
        const int nr = kt->gemm_nr;
        const gcase cases[] = {
            {1, 40, 64, -1, -1, false, PD_ACT_NONE, false},
            {7, 100, 320, -1, -1, true, PD_ACT_GELU, true},
            {33, 320, 64, -1, -1, true, PD_ACT_NONE, true},
            {33, 320, 320, nr, 320 - 7, false, PD_ACT_SILU, false},
            {7, 100, 2880, -1, -1, true, PD_ACT_NONE, false},
            {33, 40, 2880, -1, -1, false, PD_ACT_NONE, true},
            {7, 320, 96, 2 * nr, -1, true, PD_ACT_NONE, false},
        };
        for (size_t qi = 0; qi < PD_COUNT(QTYPES); qi++)
            for (size_t i = 0; i < PD_COUNT(cases); i++) {
                /* the scalar bf16 reference is slow: skip its biggest case */
                if (kt->isa == PD_ISA_SCALAR && cases[i].k == 2880 && cases[i].m > 7) continue;
                gemm_case(kt, QTYPES[qi], &cases[i]);
            }
    }
}

/* ---- pd_q_conv ------------------------------------------------------------------ */

typedef struct ccase {
    int h, w, cin, cout, k, stride, pad;
    int n0;              /* first channel (a panel boundary) */
    bool one_panel;
} ccase;

static void conv_case(const pd_kernels *kt, pd_dtype qt, const ccase *c) {
    const int kk = c->k * c->k * c->cin;
    const int oh = (c->h + 2 * c->pad - c->k) / c->stride + 1, ow = (c->w + 2 * c->pad - c->k) / c->stride + 1;
    float *w = kt_alloc((size_t)c->cout * (size_t)kk, 0), *bias = kt_alloc((size_t)c->cout, 0);
    kt_fill(w, (size_t)c->cout * (size_t)kk, 1.0f);
    kt_fill(bias, (size_t)c->cout, 1.0f);
    pd_packed_w q, rw;
    pd_error err = {0};
    CHECK(pd_kernels_pack_conv_q(kt, &q, qt, w, PD_DTYPE_F32, c->cout, c->cin, c->k, c->k, bias, PD_DTYPE_F32,
                                 &err) == PD_OK);
    ref_pack(kt, &q, &rw);   /* q's rows are already in the conv's k order */
    const size_t in_n = (size_t)c->h * (size_t)c->w * (size_t)c->cin, out_n = (size_t)oh * (size_t)ow * (size_t)c->cout;
    float *in = kt_alloc(in_n, 0), *got = kt_alloc(out_n, 0), *want = kt_alloc(out_n, 0);
    kt_fill(in, in_n, 1.0f);
    kt_fill_value(got, out_n, KT_SENTINEL);
    kt_fill_value(want, out_n, KT_SENTINEL);
    pd_conv_args a = {.ih = c->h, .iw = c->w, .cin = c->cin, .oh = oh, .ow = ow, .kh = c->k, .kw = c->k,
                      .stride = c->stride, .pad_t = c->pad, .pad_l = c->pad, .oy0 = 0, .oy1 = oh,
                      .n0 = c->n0, .n1 = c->cout, .in = in, .w = &q, .out = got, .res = NULL, .act = PD_ACT_NONE};
    const size_t sb = c->one_panel ? pd_q_scratch_bytes(kt, kk) : (size_t)2 << 20;
    char *scratch = malloc(sb);
    if (!scratch) abort();
    pd_q_conv(kt, &a, scratch, sb);
    pd_conv_args r = a;
    r.w = &rw;
    r.out = want;
    (kt->wtype == PD_DTYPE_BF16 ? pd_bf16_conv__ref : pd_f32_conv__ref)(&r);
    double maxref = 0, maxdiff = 0;
    int outside = 0;
    for (size_t i = 0; i < out_n; i++) {
        if ((int)(i % (size_t)c->cout) < c->n0) {
            outside += !kt_same_bits(got[i], KT_SENTINEL);
            continue;
        }
        maxref = fmax(maxref, fabs(want[i]));
        maxdiff = fmax(maxdiff, fabs((double)got[i] - want[i]));
    }
    CHECK_MSG(maxdiff <= TOL * maxref && outside == 0,
              "%s %s conv %dx%dx%d -> %d k%d s%d p%d n0=%d: diff %.3g of %.3g, %d written outside", kt->gemm_name,
              pd_dtype_name(qt), c->h, c->w, c->cin, c->cout, c->k, c->stride, c->pad, c->n0, maxdiff, maxref, outside);
    free(scratch);
    kt_free(in, 0);
    kt_free(got, 0);
    kt_free(want, 0);
    kt_free(w, 0);
    kt_free(bias, 0);
    pd_packed_w_free(&q);
    pd_packed_w_free(&rw);
}

static void test_q_conv(void) {
    kt_seed(9);
    pd_kernels kts[8];
    const int n_kt = kt_tables(kts, 8);
    for (int t = 0; t < n_kt; t++) {
        const pd_kernels *kt = &kts[t];
        const int nr = kt->gemm_nr;
        const ccase cases[] = {
            {9, 7, 4, 40, 3, 1, 1, 0, true},     /* k = 36: padded to 64 */
            {9, 7, 64, 100, 3, 2, 1, 0, false},
            {9, 7, 64, 100, 3, 1, 1, nr, true},
            {8, 8, 64, 40, 1, 1, 0, 0, true},    /* 1x1: the GEMM path */
            {5, 6, 4, 33, 3, 1, 0, 0, false},
            {16, 16, 32, 64, 3, 1, 1, 0, false}, /* the bf16 direct source (cin % 32, ow % 16) */
        };
        for (size_t qi = 0; qi < PD_COUNT(QTYPES); qi++)
            for (size_t i = 0; i < PD_COUNT(cases); i++) conv_case(kt, QTYPES[qi], &cases[i]);
    }
}

/* The conv pack's k order: a Q8_0 conv is within quantization error (~1% of max |out|)
 * of the fp32 conv of the original weight; a wrong tap/channel order is not. */
static void test_conv_pack_order(void) {
    kt_seed(13);
    pd_kernels kt;
    pd_kernels_init_ref(&kt);
    const int h = 6, w = 5, cin = 8, cout = 20, k = 3, oh = 6, ow = 5, kk = k * k * cin;
    float *wt = kt_alloc((size_t)cout * (size_t)kk, 0), *in = kt_alloc((size_t)h * w * cin, 0);
    float *o1 = kt_alloc((size_t)oh * ow * cout, 0), *o2 = kt_alloc((size_t)oh * ow * cout, 0);
    kt_fill(wt, (size_t)cout * (size_t)kk, 1.0f);
    kt_fill(in, (size_t)h * w * cin, 1.0f);
    pd_packed_w q, f;
    pd_error err = {0};
    CHECK(pd_q_conv_pack(&q, kt.gemm_nr, PD_DTYPE_Q8_0, wt, PD_DTYPE_F32, cout, cin, k, k, NULL, PD_DTYPE_F32, &err) == PD_OK);
    CHECK(pd_conv_pack(&f, kt.gemm_nr, wt, PD_DTYPE_F32, cout, cin, k, k, NULL, PD_DTYPE_F32, &err) == PD_OK);
    pd_conv_args a = {.ih = h, .iw = w, .cin = cin, .oh = oh, .ow = ow, .kh = k, .kw = k, .stride = 1, .pad_t = 1,
                      .pad_l = 1, .oy0 = 0, .oy1 = oh, .n0 = 0, .n1 = cout, .in = in, .w = &q, .out = o1};
    char scratch[1 << 16];
    pd_q_conv(&kt, &a, scratch, sizeof scratch);
    a.w = &f;
    a.out = o2;
    pd_f32_conv__ref(&a);
    size_t worst;
    const double e = pd_test_rel_err(o1, o2, (size_t)oh * ow * cout, &worst);
    CHECK_MSG(e < 1e-2, "Q8_0 conv vs fp32 conv: %.3g of max |ref|", e);
    kt_free(wt, 0);
    kt_free(in, 0);
    kt_free(o1, 0);
    kt_free(o2, 0);
    pd_packed_w_free(&q);
    pd_packed_w_free(&f);
}

/* Borrowed rows at an odd address give the same bits as the owned pack. */
static void test_wrap_unaligned(void) {
    kt_seed(17);
    pd_kernels kts[8];
    const int n_kt = kt_tables(kts, 8);
    const int m = 9, n = 70, k = 96;
    for (int t = 0; t < n_kt; t++)
        for (size_t qi = 0; qi < PD_COUNT(QTYPES); qi++) {
            const pd_kernels *kt = &kts[t];
            float *w = kt_alloc((size_t)n * k, 0), *bias = kt_alloc((size_t)n, 0), *a = kt_alloc((size_t)m * k, 0);
            float *c1 = kt_alloc((size_t)m * n, 0), *c2 = kt_alloc((size_t)m * n, 0);
            kt_fill(w, (size_t)n * k, 1.0f);
            kt_fill(bias, (size_t)n, 1.0f);
            kt_fill(a, (size_t)m * k, 1.0f);
            pd_packed_w own, bor;
            pd_error err = {0};
            CHECK(pd_kernels_pack_gemm_q(kt, &own, QTYPES[qi], w, PD_DTYPE_F32, k, n, k, bias, PD_DTYPE_F32, &err) == PD_OK);
            const size_t bytes = own.qrow * (size_t)n;
            uint8_t *file = malloc(bytes + 3);   /* "mapped file": the tensor at offset 3 */
            if (!file) abort();
            memcpy(file + 3, own.q, bytes);
            CHECK(pd_q_gemm_wrap(&bor, kt->gemm_nr, QTYPES[qi], file + 3, n, k, bias, PD_DTYPE_F32, &err) == PD_OK);
            CHECK(bor.q_borrowed && bor.q == file + 3 && bor.qrow == own.qrow);
            const size_t sb = pd_q_scratch_bytes(kt, k);
            char *scratch = malloc(sb);
            if (!scratch) abort();
            pd_gemm_args g = {.m = m, .n0 = 0, .n1 = n, .a = a, .lda = k, .w = &own, .c = c1, .ldc = n};
            pd_q_gemm(kt, &g, scratch, sb);
            g.w = &bor;
            g.c = c2;
            pd_q_gemm(kt, &g, scratch, sb);
            CHECK_MSG(memcmp(c1, c2, (size_t)m * n * sizeof(float)) == 0, "%s %s: borrowed != owned", kt->gemm_name,
                      pd_dtype_name(QTYPES[qi]));
            pd_packed_w_free(&bor);   /* must not free file + 3 (ASan would say) */
            CHECK(bor.q == NULL);
            free(file);
            free(scratch);
            pd_packed_w_free(&own);
            kt_free(w, 0);
            kt_free(bias, 0);
            kt_free(a, 0);
            kt_free(c1, 0);
            kt_free(c2, 0);
        }
}

static void test_bad_args(void) {
    float w[64 * 4] = {0};
    uint8_t blocks[34 * 8] = {0};
    pd_packed_w q;
    pd_error err = {0};
    CHECK(pd_q_gemm_pack(&q, 16, PD_DTYPE_F32, w, PD_DTYPE_F32, 64, 4, 64, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "not a block type");
    CHECK(q.q == NULL);
    CHECK(pd_q_gemm_pack(&q, 0, PD_DTYPE_Q8_0, w, PD_DTYPE_F32, 64, 4, 64, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "nr=0");
    CHECK(pd_q_gemm_pack(&q, 16, PD_DTYPE_Q8_0, NULL, PD_DTYPE_F32, 64, 4, 64, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "NULL");
    CHECK(pd_q_gemm_pack(&q, 16, PD_DTYPE_Q4_0, w, PD_DTYPE_F32, 64, 0, 64, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "shape");
    CHECK(pd_q_gemm_pack(&q, 16, PD_DTYPE_Q4_0, w, PD_DTYPE_F32, 32, 4, 64, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "row stride");
    CHECK(pd_q_gemm_pack(&q, 16, PD_DTYPE_Q4_1, w, PD_DTYPE_I8, 64, 4, 64, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_q_gemm_pack(&q, 16, PD_DTYPE_Q4_1, w, PD_DTYPE_F32, 64, 4, 64, w, PD_DTYPE_I32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "bias dtype");
    CHECK(pd_q_gemm_pack(&q, 16, PD_DTYPE_Q8_0, w, PD_DTYPE_F32, (size_t)1 << 31, 1 << 30, 1 << 30, NULL, PD_DTYPE_F32,
                         &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "too large");
    CHECK(pd_q_conv_pack(&q, 16, PD_DTYPE_Q8_0, w, PD_DTYPE_F32, 4, 4, 0, 3, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "shape");
    CHECK(pd_q_conv_pack(&q, 16, PD_DTYPE_Q8_0, w, PD_DTYPE_F32, 4, 1 << 30, 3, 3, NULL, PD_DTYPE_F32, &err) ==
          PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "too large");
    CHECK(pd_q_gemm_wrap(&q, 16, PD_DTYPE_Q8_0, blocks, 4, 36, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "multiple of 32");
    CHECK(pd_q_gemm_wrap(&q, 16, PD_DTYPE_Q8_0, NULL, 4, 64, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_q_gemm_wrap(&q, 16, PD_DTYPE_BF16, blocks, 4, 64, NULL, PD_DTYPE_F32, &err) == PD_ERR_INVALID_ARG);
    pd_packed_w_free(&q);   /* zeroed on failure: a no-op */
    /* NULL err is allowed */
    CHECK(pd_q_gemm_wrap(&q, 16, PD_DTYPE_Q8_0, blocks, 4, 36, NULL, PD_DTYPE_F32, NULL) == PD_ERR_INVALID_ARG);
}

int main(void) {
    PD_RUN(test_q8_0_hand);
    PD_RUN(test_q4_0_hand);
    PD_RUN(test_q4_1_hand);
    PD_RUN(test_round_trip);
    PD_RUN(test_quantize_variants);
    PD_RUN(test_dequant_variants);
    PD_RUN(test_f16_dequant);
    PD_RUN(test_f16_rows_gemm);
    PD_RUN(test_q_gemm);
    PD_RUN(test_q_conv);
    PD_RUN(test_conv_pack_order);
    PD_RUN(test_wrap_unaligned);
    PD_RUN(test_bad_args);
    return pd_test_summary();
}
