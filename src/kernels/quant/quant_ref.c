/*
 * quant_ref.c - the scalar references of quant.h: ggml's block quantizers (re-derived
 * from the format, bit for bit), the row dequantizer, and dequant_panels into both
 * packed formats (F32 panels of kernels.h, BF16 VNNI panels of gemm/gemm_bf16.h).
 *
 * Every dequantized value is computed by deq() below: (float)q * d, and for Q4_1 that
 * product rounded, plus m, in separate statements (no contraction into an fma even by
 * compilers that contract within an expression). The vector variants do the same ops.
 *
 * Traps: (int8_t)(float) is UB outside [-128, 127] (NaN/inf inputs): to_i8 clamps
 * first, which changes nothing for the values ggml's formulas produce from finite
 * input (they lie in [-127.5, 127.5] and [0, 16.5]).
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "base/half.h"
#include "kernels/quant/quant.h"

/* (int8_t)v for v in range (truncation toward zero), clamped otherwise; NaN -> 0. */
static int to_i8(float v) {
    if (!(v == v)) return 0;
    if (v >= 127.0f) return 127;
    if (v <= -128.0f) return -128;
    return (int)(int8_t)v;
}

static void put_f16(uint8_t *p, float v) {
    const uint16_t h = pd_f32_to_f16(v);
    memcpy(p, &h, sizeof h);
}

static float get_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return pd_f16_to_f32(h);
}

static void quant_q8_0(const float *x, uint8_t *y) {
    float amax = 0.0f;
    for (int j = 0; j < PD_Q_BLOCK; j++) {
        const float a = fabsf(x[j]);
        amax = amax > a ? amax : a;   /* ggml: MAX(amax, fabsf(v)) */
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(y, d);
    for (int j = 0; j < PD_Q_BLOCK; j++) {
        const float r = roundf(x[j] * id);
        y[2 + j] = (uint8_t)(int8_t)to_i8(r);
    }
}

static void quant_q4_0(const float *x, uint8_t *y) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < PD_Q_BLOCK; j++) {
        const float v = x[j];
        if (amax < fabsf(v)) {
            amax = fabsf(v);
            max = v;
        }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(y, d);
    for (int j = 0; j < PD_Q_BLOCK / 2; j++) {
        const int q0 = PD_MIN(15, to_i8(x[j] * id + 8.5f));
        const int q1 = PD_MIN(15, to_i8(x[PD_Q_BLOCK / 2 + j] * id + 8.5f));
        y[2 + j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
    }
}

static void quant_q4_1(const float *x, uint8_t *y) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < PD_Q_BLOCK; j++) {
        const float v = x[j];
        if (v < min) min = v;
        if (v > max) max = v;
    }
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(y, d);
    put_f16(y + 2, min);
    for (int j = 0; j < PD_Q_BLOCK / 2; j++) {
        const int q0 = PD_MIN(15, to_i8((x[j] - min) * id + 0.5f));
        const int q1 = PD_MIN(15, to_i8((x[PD_Q_BLOCK / 2 + j] - min) * id + 0.5f));
        y[4 + j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
    }
}

void pd_quantize_row__ref(pd_dtype t, const float *x, void *dst, size_t n) {
    PD_ASSERT(pd_dtype_is_quant(t) && n % PD_Q_BLOCK == 0);
    const size_t bs = pd_dtype_size(t);
    uint8_t *y = dst;
    for (size_t b = 0; b < n / PD_Q_BLOCK; b++, x += PD_Q_BLOCK, y += bs) {
        if (t == PD_DTYPE_Q8_0) quant_q8_0(x, y);
        else if (t == PD_DTYPE_Q4_0) quant_q4_0(x, y);
        else quant_q4_1(x, y);
    }
}

/* The 32 values of one block (the definition every variant reproduces). */
static void deq_block(pd_dtype t, const uint8_t *blk, float *v) {
    if (t == PD_DTYPE_F16) {   /* F16 rows: 32 halves, widened exactly */
        for (int j = 0; j < PD_Q_BLOCK; j++) v[j] = get_f16(blk + 2 * j);
        return;
    }
    const float d = get_f16(blk);
    if (t == PD_DTYPE_Q8_0) {
        for (int j = 0; j < PD_Q_BLOCK; j++) v[j] = (float)(int8_t)blk[2 + j] * d;
    } else if (t == PD_DTYPE_Q4_0) {
        for (int j = 0; j < PD_Q_BLOCK / 2; j++) {
            v[j] = (float)((blk[2 + j] & 15) - 8) * d;
            v[PD_Q_BLOCK / 2 + j] = (float)((blk[2 + j] >> 4) - 8) * d;
        }
    } else {
        const float m = get_f16(blk + 2);
        for (int j = 0; j < PD_Q_BLOCK / 2; j++) {
            const float p0 = (float)(blk[4 + j] & 15) * d;
            const float p1 = (float)(blk[4 + j] >> 4) * d;
            v[j] = p0 + m;
            v[PD_Q_BLOCK / 2 + j] = p1 + m;
        }
    }
}

void pd_dequantize_row(pd_dtype t, const void *src, float *dst, size_t n) {
    PD_ASSERT(pd_dtype_is_quant(t) && n % PD_Q_BLOCK == 0);
    const size_t bs = pd_dtype_size(t);
    const uint8_t *blk = src;
    for (size_t b = 0; b < n / PD_Q_BLOCK; b++, blk += bs, dst += PD_Q_BLOCK) deq_block(t, blk, dst);
}

static void check_q(const pd_packed_w *q, int p0, int p1) {
    PD_ASSERT(q && pd_q_row_type(q->dtype) && q->q && q->nr >= 1);
    PD_ASSERT(q->kp % PD_Q_BLOCK == 0 && q->kp >= q->k && q->k >= 1);
    PD_ASSERT(p0 >= 0 && p0 <= p1 && (int64_t)p1 * q->nr < (int64_t)q->n + q->nr);
}

void pd_q_dequant_f32__ref(const pd_packed_w *q, int p0, int p1, void *dst) {
    check_q(q, p0, p1);
    const size_t nr = (size_t)q->nr, k = (size_t)q->k;
    float col[PD_Q_BLOCK];
    uint8_t tmp[64];
    float *out = dst;
    for (int p = p0; p < p1; p++) {
        float *panel = out + (size_t)(p - p0) * k * nr;
        for (size_t c = 0; c < nr; c++) {
            const int j = p * (int)nr + (int)c;
            for (size_t b = 0; b < (size_t)q->kp / PD_Q_BLOCK; b++) {
                if (j < q->n) deq_block(q->dtype, pd_q_block_at(q->dtype, q->q + (size_t)j * q->qrow, (int)b, q->k, tmp), col);
                else memset(col, 0, sizeof col);
                for (size_t t = 0; t < PD_Q_BLOCK && b * PD_Q_BLOCK + t < k; t++)
                    panel[(b * PD_Q_BLOCK + t) * nr + c] = col[t];
            }
        }
    }
}

void pd_q_dequant_bf16__ref(const pd_packed_w *q, int p0, int p1, void *dst) {
    check_q(q, p0, p1);
    const size_t nr = (size_t)q->nr, kp = (size_t)q->kp;
    float col[PD_Q_BLOCK];
    uint8_t tmp[64];
    uint16_t *out = dst;
    for (int p = p0; p < p1; p++) {
        uint16_t *panel = out + (size_t)(p - p0) * kp * nr;
        for (size_t c = 0; c < nr; c++) {
            const int j = p * (int)nr + (int)c;
            for (size_t b = 0; b < kp / PD_Q_BLOCK; b++) {
                if (j < q->n) deq_block(q->dtype, pd_q_block_at(q->dtype, q->q + (size_t)j * q->qrow, (int)b, q->k, tmp), col);
                else memset(col, 0, sizeof col);
                for (size_t t = 0; t < PD_Q_BLOCK; t++) {
                    const size_t kk = b * PD_Q_BLOCK + t;
                    const float v = kk < (size_t)q->k ? col[t] : 0.0f;
                    panel[(kk & ~(size_t)1) * nr + 2 * c + (kk & 1)] = pd_f32_to_bf16(v);
                }
            }
        }
    }
}
