/*
 * gemm_bf16_pack.c - packs a [n, k] weight (F32/F16/BF16) into the AMX B-tile layout
 * of gemm_bf16.h: nr-column panels of bf16 k-pairs, k padded with zeros to a multiple
 * of 32, plus an fp32 bias.
 *
 * Each source row is widened once with pd_to_f32 (unaligned-safe: weights often point
 * into a mapped checkpoint) and rounded with pd_f32_to_bf16 (round to nearest even;
 * exact for BF16 sources, since widening is exact).
 *
 * Traps: n, k come from hostile files: the packed size is checked in 64 bits (capped)
 * before any allocation; ld_w counts elements, not bytes; the k padding must be zero
 * (the kernels multiply it by zero-padded A, and 0 * garbage may be NaN).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_bf16.h"

/* 2^39 bf16 elements (1 TiB): no weight is that large; keeps the size math exact. */
#define MAX_PACKED_ELEMS (UINT64_C(1) << 39)

/* 64-byte aligned with 64 extra readable bytes (zeroed); NULL on overflow or OOM. */
static void *alloc_bytes(size_t bytes) {
    if (bytes > SIZE_MAX - 128) return NULL;
    size_t total = (bytes + 64 + 63) & ~(size_t)63;
    char *p = aligned_alloc(64, total);
    if (p) memset(p + bytes, 0, total - bytes);
    return p;
}

pd_status pd_bf16_gemm_pack(pd_packed_bf16 *out, int nr, const void *w, pd_dtype w_dtype,
                            size_t ld_w, int n, int k, const void *bias, pd_dtype bias_dtype,
                            pd_error *err) {
    PD_ASSERT(out);
    memset(out, 0, sizeof *out);
    pd_status st = pd_gemm_pack_check("bf16 gemm pack", w, w_dtype, ld_w, n, k, bias, bias_dtype, err);
    if (st != PD_OK) return st;
    if (nr != 16 && nr != 32)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "bf16 gemm pack: panel width nr=%d is not 16 or 32", nr);

    const size_t kp = ((size_t)k + PD_BF16_KSTEP - 1) / PD_BF16_KSTEP * PD_BF16_KSTEP;
    const size_t n_panels = ((size_t)n + (size_t)nr - 1) / (size_t)nr;
    const size_t n_pad = n_panels * (size_t)nr;
    if ((uint64_t)n_pad * (uint64_t)kp > MAX_PACKED_ELEMS)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "bf16 gemm pack: [%d, %d] is too large", n, k);
    uint16_t *data = alloc_bytes(n_pad * kp * sizeof(uint16_t));
    float *b = bias ? alloc_bytes(n_pad * sizeof(float)) : NULL;
    float *row = alloc_bytes((size_t)k * sizeof(float));
    if (!data || (bias && !b) || !row) {
        free(data);
        free(b);
        free(row);
        return pd_error_set(err, PD_ERR_OOM, "bf16 gemm pack: out of memory for [%d, %d] weight", n, k);
    }

    /* A panel (kp x nr bf16) is filled column by column while it stays in cache; the
     * padding (columns >= n, k >= k) is zeroed first. */
    const size_t row_bytes = ld_w * pd_dtype_size(w_dtype);
    for (size_t p = 0; p < n_panels; p++) {
        uint16_t *panel = data + p * kp * (size_t)nr;
        const int cols = PD_MIN(nr, n - (int)p * nr);
        if (cols < nr || kp != (size_t)k) memset(panel, 0, kp * (size_t)nr * sizeof(uint16_t));
        const char *rows = (const char *)w + p * (size_t)nr * row_bytes;
        for (int c = 0; c < cols; c++) {
            pd_to_f32(row, rows + (size_t)c * row_bytes, w_dtype, (size_t)k);
            for (int kk = 0; kk < k; kk++)
                panel[((size_t)kk & ~(size_t)1) * (size_t)nr + 2 * (size_t)c + ((size_t)kk & 1)] =
                    pd_f32_to_bf16(row[kk]);
        }
    }
    free(row);
    if (b) {
        pd_to_f32(b, bias, bias_dtype, (size_t)n);
        memset(b + n, 0, (n_pad - (size_t)n) * sizeof(float));
    }

    out->n = n;
    out->k = k;
    out->kp = (int)kp;
    out->nr = nr;
    out->data = data;
    out->bias = b;
    return PD_OK;
}

void pd_packed_bf16_free(pd_packed_bf16 *w) {
    if (!w) return;
    free(w->data);
    free(w->bias);
    w->data = NULL;
    w->bias = NULL;
}
