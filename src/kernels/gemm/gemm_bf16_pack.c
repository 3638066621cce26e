/*
 * gemm_bf16_pack.c - packs a [n, k] GEMM weight or a [cout, cin, kh, kw] conv weight
 * (F32/F16/BF16) into the AMX B-tile layout of gemm_bf16.h: nr-column panels of bf16
 * k-pairs, k padded with zeros to a multiple of 32, plus an fp32 bias. Both go through
 * one panel filler fed by a row source (a conv row is permuted to k = tap*cin + ci).
 *
 * Each source row is widened once with pd_to_f32 (unaligned-safe: weights often point
 * into a mapped checkpoint) and rounded with pd_f32_to_bf16 (round to nearest even;
 * exact for BF16 sources, since widening is exact).
 *
 * The _mt packers split the panels across a pool (pack_mt.h), each thread with its own
 * row scratch: the same bytes as one thread.
 *
 * Traps: n, k come from hostile files: the packed size is checked in 64 bits (capped)
 * before any allocation; ld_w counts elements, not bytes; the k padding must be zero
 * (the kernels multiply it by zero-padded A, and 0 * garbage may be NaN).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/half.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_bf16.h"
#include "kernels/pack_mt.h"

/* 2^39 bf16 elements (1 TiB): no weight is that large; keeps the size math exact. */
#define MAX_PACKED_ELEMS (UINT64_C(1) << 39)

/* 64-byte aligned with 64 extra readable bytes (zeroed); NULL on overflow or OOM. */
static void *alloc_bytes(size_t bytes) {
    if (bytes > SIZE_MAX - 128) return NULL;
    size_t total = (bytes + 64 + 63) & ~(size_t)63;
    char *p = aligned_alloc(64, total);
    if (p) pd_advise_huge(p, total);
    if (p) memset(p + bytes, 0, total - bytes);
    return p;
}

/* Fills row[0..k) with column c of the weight as fp32 (exact widening); tmp: k floats
 * of the calling thread's scratch. */
typedef void (*row_fn)(float *row, float *tmp, const void *ctx, int c, int k);

typedef struct gemm_src {
    const char *w;
    pd_dtype dtype;
    size_t row_bytes;
} gemm_src;

static void gemm_row(float *row, float *tmp, const void *ctx, int c, int k) {
    const gemm_src *s = ctx;
    (void)tmp;
    pd_to_f32(row, s->w + (size_t)c * s->row_bytes, s->dtype, (size_t)k);
}

/* conv: source row [cin, taps] (k index ci*taps + tap) -> row[tap*cin + ci]. */
typedef struct conv_src {
    gemm_src g;
    int cin, taps;
} conv_src;

static void conv_row(float *row, float *tmp, const void *ctx, int c, int k) {
    const conv_src *s = ctx;
    gemm_row(tmp, NULL, &s->g, c, k);
    for (int ci = 0; ci < s->cin; ci++)
        for (int t = 0; t < s->taps; t++) row[(size_t)t * (size_t)s->cin + (size_t)ci] = tmp[(size_t)ci * (size_t)s->taps + (size_t)t];
}

typedef struct bf16_job {
    uint16_t *data;
    int n, k, nr;
    size_t kp, n_panels;
    row_fn get_row;
    const void *ctx;
    char *scratch;   /* per thread: row (k floats), tmp (k floats), row16 (k + 1 halves) */
    size_t row_bytes, scratch_stride;
} bf16_job;

/* Panels [p0, p1). A panel (kp x nr bf16) is filled column by column while it stays in
 * cache; the padding (columns >= n, k >= k) is zeroed first. */
static void pack_range(const bf16_job *j, char *scratch, size_t p0, size_t p1) {
    float *row = (float *)(void *)scratch, *tmp = (float *)(void *)(scratch + j->row_bytes);
    uint16_t *row16 = (uint16_t *)(void *)(scratch + 2 * j->row_bytes);
    const int nr = j->nr, k = j->k;
    for (size_t p = p0; p < p1; p++) {
        uint16_t *panel = j->data + p * j->kp * (size_t)nr;
        const int cols = PD_MIN(nr, j->n - (int)p * nr);
        if (cols < nr || j->kp != (size_t)k) memset(panel, 0, j->kp * (size_t)nr * sizeof(uint16_t));
        for (int c = 0; c < cols; c++) {
            /* Widen, round the row at once (vectorised), then store k-pairs as words. */
            j->get_row(row, tmp, j->ctx, (int)p * nr + c, k);
            pd_f32_to_bf16_row(row16, row, (size_t)k);
            row16[k] = 0;   /* the pair of an odd k's last element */
            uint32_t *col = (uint32_t *)(void *)panel + c;
            for (size_t q = 0; q < ((size_t)k + 1) / 2; q++) {
                uint32_t pair;
                memcpy(&pair, row16 + 2 * q, sizeof pair);
                col[q * (size_t)nr] = pair;
            }
        }
    }
}

static void pack_task(void *arg, int ith, int nth) {
    const bf16_job *j = arg;
    size_t p0, p1;
    pd_pack_split(j->n_panels, ith, nth, &p0, &p1);
    pack_range(j, j->scratch + (size_t)ith * j->scratch_stride, p0, p1);
}

static pd_status pack(pd_packed_w *out, const char *what, int nr, int n, int k, row_fn get_row,
                      const void *ctx, const void *bias, pd_dtype bias_dtype, pd_pool *pool, pd_error *err) {
    if (nr != 16 && nr != 32)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: panel width nr=%d is not 16 or 32", what, nr);

    const size_t kp = ((size_t)k + PD_BF16_KSTEP - 1) / PD_BF16_KSTEP * PD_BF16_KSTEP;
    const size_t n_panels = ((size_t)n + (size_t)nr - 1) / (size_t)nr;
    const size_t n_pad = n_panels * (size_t)nr;
    if ((uint64_t)n_pad * (uint64_t)kp > MAX_PACKED_ELEMS)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: [%d, %d] is too large", what, n, k);
    pool = pd_pack_pool(pool, (uint64_t)n_pad * (uint64_t)kp);
    const int nth = pd_pool_size(pool);
    const size_t row_bytes = pd_pack_line((size_t)k * sizeof(float));
    const size_t stride = 2 * row_bytes + pd_pack_line(((size_t)k + 1) * sizeof(uint16_t));
    uint16_t *data = alloc_bytes(n_pad * kp * sizeof(uint16_t));
    float *b = bias ? alloc_bytes(n_pad * sizeof(float)) : NULL;
    char *scratch = alloc_bytes(stride * (size_t)nth);
    if (!data || (bias && !b) || !scratch) {
        free(data);
        free(b);
        free(scratch);
        return pd_error_set(err, PD_ERR_OOM, "%s: out of memory for [%d, %d] weight", what, n, k);
    }

    bf16_job job = {data, n, k, nr, kp, n_panels, get_row, ctx, scratch, row_bytes, stride};
    pd_pool_run(pool, pack_task, &job);
    free(scratch);
    if (b) {
        pd_to_f32(b, bias, bias_dtype, (size_t)n);
        memset(b + n, 0, (n_pad - (size_t)n) * sizeof(float));
    }

    out->n = n;
    out->k = k;
    out->kp = (int)kp;
    out->nr = nr;
    out->dtype = PD_DTYPE_BF16;
    out->bf16 = data;
    out->bias = b;
    return PD_OK;
}

pd_status pd_bf16_gemm_pack(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype,
                            size_t ld_w, int n, int k, const void *bias, pd_dtype bias_dtype,
                            pd_error *err) {
    return pd_bf16_gemm_pack_mt(out, nr, w, w_dtype, ld_w, n, k, bias, bias_dtype, NULL, err);
}

pd_status pd_bf16_gemm_pack_mt(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype,
                               size_t ld_w, int n, int k, const void *bias, pd_dtype bias_dtype,
                               pd_pool *pool, pd_error *err) {
    PD_ASSERT(out);
    memset(out, 0, sizeof *out);
    pd_status st = pd_gemm_pack_check("bf16 gemm pack", w, w_dtype, ld_w, n, k, bias, bias_dtype, err);
    if (st != PD_OK) return st;
    const gemm_src src = {w, w_dtype, ld_w * pd_dtype_size(w_dtype)};
    return pack(out, "bf16 gemm pack", nr, n, k, gemm_row, &src, bias, bias_dtype, pool, err);
}

pd_status pd_bf16_conv_pack(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype, int cout,
                            int cin, int kh, int kw, const void *bias, pd_dtype bias_dtype,
                            pd_error *err) {
    return pd_bf16_conv_pack_mt(out, nr, w, w_dtype, cout, cin, kh, kw, bias, bias_dtype, NULL, err);
}

pd_status pd_bf16_conv_pack_mt(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype, int cout,
                               int cin, int kh, int kw, const void *bias, pd_dtype bias_dtype,
                               pd_pool *pool, pd_error *err) {
    PD_ASSERT(out);
    memset(out, 0, sizeof *out);
    if (cout <= 0 || cin <= 0 || kh <= 0 || kw <= 0)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "bf16 conv pack: bad weight shape [%d, %d, %d, %d]",
                            cout, cin, kh, kw);
    const uint64_t taps = (uint64_t)kh * (uint64_t)kw, k64 = taps * (uint64_t)cin;
    if (k64 > INT32_MAX)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "bf16 conv pack: [%d, %d, %d, %d] is too large",
                            cout, cin, kh, kw);
    const int k = (int)k64;
    pd_status st = pd_gemm_pack_check("bf16 conv pack", w, w_dtype, (size_t)k, cout, k, bias, bias_dtype, err);
    if (st != PD_OK) return st;
    const conv_src src = {{w, w_dtype, (size_t)k * pd_dtype_size(w_dtype)}, cin, (int)taps};
    if (taps == 1) return pack(out, "bf16 conv pack", nr, cout, k, gemm_row, &src.g, bias, bias_dtype, pool, err);
    return pack(out, "bf16 conv pack", nr, cout, k, conv_row, &src, bias, bias_dtype, pool, err);
}
