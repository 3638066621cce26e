/*
 * quant_pack.c - the quantized pd_packed_w (quant.h): pd_q_gemm_pack and
 * pd_q_conv_pack quantize F32/F16/BF16 weights at load with the reference quantizer
 * (rows widened to fp32, permuted to the conv's k order, zero-padded to kq);
 * pd_q_gemm_wrap borrows GGUF-style rows without copying.
 *
 * The _mt packers split the rows across a pool (pack_mt.h), each thread with its own
 * row scratch: the same bytes as one thread.
 *
 * Traps: shapes come from hostile files: sizes are checked in 64 bits (capped) before
 * anything is allocated; a borrowed q is never written or freed; out is zeroed first,
 * so pd_packed_w_free is safe after any failure.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "kernels/gemm/gemm.h"
#include "kernels/pack_mt.h"
#include "kernels/quant/quant.h"
#if defined(PD_ARCH_X86)
#include "base/cpu.h"
#endif

/* The fastest variant the CPU (and OS) allow; all write the same bytes. pd_cpu_detect
 * runs cpuid once per process and then copies its cached result. */
void pd_quantize_row(pd_dtype t, const float *x, void *dst, size_t n) {
#if defined(PD_ARCH_X86)
    pd_cpu_features f;
    pd_cpu_detect(&f);
    if (pd_cpu_supports(&f, PD_ISA_AVX512)) {
        pd_quantize_row__avx512(t, x, dst, n);
        return;
    }
#endif
    pd_quantize_row__ref(t, x, dst, n);
}

/* 1 TiB of blocks: no weight is that large; keeps the size math exact. */
#define MAX_Q_BYTES (UINT64_C(1) << 40)

static size_t round_up32(int k) { return ((size_t)k + PD_Q_BLOCK - 1) / PD_Q_BLOCK * PD_Q_BLOCK; }

/* Shape, nr, qtype and size checks shared by the packers; sets *qrow. */
static pd_status check_common(const char *what, int nr, pd_dtype qtype, int n, int k, size_t *qrow,
                              pd_error *err) {
    if (!pd_q_row_type(qtype))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: %s is not a block type (Q8_0/Q4_0/Q4_1) or F16", what,
                            pd_dtype_name(qtype));
    if (nr <= 0 || nr > 1024)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: bad panel width nr=%d", what, nr);
    if (n <= 0 || k <= 0)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: bad weight shape [%d, %d]", what, n, k);
    if (k > INT32_MAX - PD_Q_BLOCK)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: k=%d is too large", what, k);
    *qrow = qtype == PD_DTYPE_F16 ? (size_t)k * 2 : round_up32(k) / PD_Q_BLOCK * pd_dtype_size(qtype);
    if ((uint64_t)*qrow * (uint64_t)n > MAX_Q_BYTES)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: [%d, %d] is too large", what, n, k);
    return PD_OK;
}

/* The fp32 bias, zero-padded to whole panels (as pd_gemm_pack), or NULL when none. */
static pd_status make_bias(const char *what, float **out, int nr, int n, const void *bias, pd_dtype bias_dtype,
                           pd_error *err) {
    *out = NULL;
    if (!bias) return PD_OK;
    if (bias_dtype != PD_DTYPE_F32 && bias_dtype != PD_DTYPE_F16 && bias_dtype != PD_DTYPE_BF16)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: bias dtype %s not F32/F16/BF16", what,
                            pd_dtype_name(bias_dtype));
    const size_t n_pad = ((size_t)n + (size_t)nr - 1) / (size_t)nr * (size_t)nr;
    float *b = aligned_alloc(64, (n_pad * sizeof(float) + 64 + 63) & ~(size_t)63);
    if (!b) return pd_error_set(err, PD_ERR_OOM, "%s: out of memory for a bias of %d", what, n);
    pd_to_f32(b, bias, bias_dtype, (size_t)n);
    memset(b + n, 0, (n_pad - (size_t)n) * sizeof(float));
    *out = b;
    return PD_OK;
}

static void set_out(pd_packed_w *out, int nr, pd_dtype qtype, int n, int k, const uint8_t *q, size_t qrow,
                    bool borrowed, float *bias) {
    out->n = n;
    out->k = k;
    out->nr = nr;
    out->dtype = qtype;
    out->kp = (int)round_up32(k);
    out->panel0 = 0;
    out->q = q;
    out->qrow = qrow;
    out->q_borrowed = borrowed;
    out->bias = bias;
}

/* Source rows: row j of the weight as fp32 into row[0..k). */
typedef struct src_rows {
    const char *w;
    pd_dtype dtype;
    size_t row_bytes;
    int cin, taps;   /* conv: source row [cin, taps], permuted to [taps, cin]; taps 1: none */
} src_rows;

/* tmp: k floats of the calling thread's scratch (conv only). */
static void get_row(const src_rows *s, int j, float *row, float *tmp, int k) {
    const char *src = s->w + (size_t)j * s->row_bytes;
    if (s->taps == 1) {
        pd_to_f32(row, src, s->dtype, (size_t)k);
        return;
    }
    pd_to_f32(tmp, src, s->dtype, (size_t)k);
    for (int ci = 0; ci < s->cin; ci++)
        for (int t = 0; t < s->taps; t++)
            row[(size_t)t * (size_t)s->cin + (size_t)ci] = tmp[(size_t)ci * (size_t)s->taps + (size_t)t];
}

typedef struct q_job {
    uint8_t *q;
    size_t qrow, kq;
    pd_dtype qtype;
    const src_rows *s;
    int n, k;
    char *scratch;   /* per thread: row (kq floats), tmp (k floats) */
    size_t row_bytes, scratch_stride;
} q_job;

/* Rows [r0, r1): widened (and permuted), zero-padded to kq, quantized. */
static void quantize_task(void *arg, int ith, int nth) {
    const q_job *j = arg;
    char *scratch = j->scratch + (size_t)ith * j->scratch_stride;
    float *row = (float *)(void *)scratch, *tmp = (float *)(void *)(scratch + j->row_bytes);
    size_t r0, r1;
    pd_pack_split((size_t)j->n, ith, nth, &r0, &r1);
    for (size_t kk = (size_t)j->k; kk < j->kq; kk++) row[kk] = 0.0f;
    for (size_t r = r0; r < r1; r++) {
        get_row(j->s, (int)r, row, tmp, j->k);
        pd_quantize_row(j->qtype, row, j->q + r * j->qrow, j->kq);
    }
}

static pd_status quantize_all(pd_packed_w *out, const char *what, int nr, pd_dtype qtype, const src_rows *s,
                              int n, int k, const void *bias, pd_dtype bias_dtype, pd_pool *pool, pd_error *err) {
    if (!pd_dtype_is_quant(qtype))   /* F16 rows are borrowed (pd_q_gemm_wrap), never made */
        return pd_error_set(err, PD_ERR_INVALID_ARG, "%s: %s is not a block type (Q8_0/Q4_0/Q4_1)", what,
                            pd_dtype_name(qtype));
    size_t qrow = 0;
    pd_status st = check_common(what, nr, qtype, n, k, &qrow, err);
    if (st != PD_OK) return st;
    const size_t kq = round_up32(k);
    float *b = NULL;
    st = make_bias(what, &b, nr, n, bias, bias_dtype, err);
    if (st != PD_OK) return st;
    pool = pd_pack_pool(pool, (uint64_t)n * (uint64_t)kq);
    const int nth = pd_pool_size(pool);
    const size_t row_bytes = pd_pack_line(kq * sizeof(float));
    const size_t stride = row_bytes + (s->taps > 1 ? pd_pack_line((size_t)k * sizeof(float)) : 0);
    uint8_t *q = malloc(qrow * (size_t)n + 64);
    char *scratch = aligned_alloc(64, stride * (size_t)nth);
    if (!q || !scratch) {
        free(q);
        free(scratch);
        free(b);
        return pd_error_set(err, PD_ERR_OOM, "%s: out of memory for [%d, %d] weight", what, n, k);
    }
    memset(q + qrow * (size_t)n, 0, 64);
    q_job job = {q, qrow, kq, qtype, s, n, k, scratch, row_bytes, stride};
    pd_pool_run(pool, quantize_task, &job);
    free(scratch);
    set_out(out, nr, qtype, n, k, q, qrow, false, b);
    return PD_OK;
}

pd_status pd_q_gemm_pack(pd_packed_w *out, int nr, pd_dtype qtype, const void *w, pd_dtype w_dtype,
                         size_t ld_w, int n, int k, const void *bias, pd_dtype bias_dtype,
                         pd_error *err) {
    return pd_q_gemm_pack_mt(out, nr, qtype, w, w_dtype, ld_w, n, k, bias, bias_dtype, NULL, err);
}

pd_status pd_q_gemm_pack_mt(pd_packed_w *out, int nr, pd_dtype qtype, const void *w, pd_dtype w_dtype,
                            size_t ld_w, int n, int k, const void *bias, pd_dtype bias_dtype,
                            pd_pool *pool, pd_error *err) {
    PD_ASSERT(out);
    memset(out, 0, sizeof *out);
    pd_status st = pd_gemm_pack_check("quant gemm pack", w, w_dtype, ld_w, n, k, bias, bias_dtype, err);
    if (st != PD_OK) return st;
    const src_rows s = {w, w_dtype, ld_w * pd_dtype_size(w_dtype), 1, 1};
    return quantize_all(out, "quant gemm pack", nr, qtype, &s, n, k, bias, bias_dtype, pool, err);
}

pd_status pd_q_conv_pack(pd_packed_w *out, int nr, pd_dtype qtype, const void *w, pd_dtype w_dtype,
                         int cout, int cin, int kh, int kw, const void *bias, pd_dtype bias_dtype,
                         pd_error *err) {
    return pd_q_conv_pack_mt(out, nr, qtype, w, w_dtype, cout, cin, kh, kw, bias, bias_dtype, NULL, err);
}

pd_status pd_q_conv_pack_mt(pd_packed_w *out, int nr, pd_dtype qtype, const void *w, pd_dtype w_dtype,
                            int cout, int cin, int kh, int kw, const void *bias, pd_dtype bias_dtype,
                            pd_pool *pool, pd_error *err) {
    PD_ASSERT(out);
    memset(out, 0, sizeof *out);
    if (cout <= 0 || cin <= 0 || kh <= 0 || kw <= 0)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "quant conv pack: bad weight shape [%d, %d, %d, %d]",
                            cout, cin, kh, kw);
    const uint64_t taps = (uint64_t)kh * (uint64_t)kw, k64 = taps * (uint64_t)cin;
    if (k64 > INT32_MAX - PD_Q_BLOCK)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "quant conv pack: [%d, %d, %d, %d] is too large",
                            cout, cin, kh, kw);
    const int k = (int)k64;
    pd_status st = pd_gemm_pack_check("quant conv pack", w, w_dtype, (size_t)k, cout, k, bias, bias_dtype, err);
    if (st != PD_OK) return st;
    const src_rows s = {w, w_dtype, (size_t)k * pd_dtype_size(w_dtype), cin, (int)taps};
    return quantize_all(out, "quant conv pack", nr, qtype, &s, cout, k, bias, bias_dtype, pool, err);
}

pd_status pd_q_gemm_wrap(pd_packed_w *out, int nr, pd_dtype qtype, const void *blocks, int n, int k,
                         const void *bias, pd_dtype bias_dtype, pd_error *err) {
    PD_ASSERT(out);
    memset(out, 0, sizeof *out);
    if (!blocks) return pd_error_set(err, PD_ERR_INVALID_ARG, "quant gemm wrap: block pointer is NULL");
    size_t qrow = 0;
    pd_status st = check_common("quant gemm wrap", nr, qtype, n, k, &qrow, err);
    if (st != PD_OK) return st;
    if (k % PD_Q_BLOCK != 0 && qtype != PD_DTYPE_F16)
        return pd_error_set(err, PD_ERR_INVALID_ARG,
                            "quant gemm wrap: k=%d is not a multiple of %d (pre-quantized rows are unpadded)", k,
                            PD_Q_BLOCK);
    float *b = NULL;
    st = make_bias("quant gemm wrap", &b, nr, n, bias, bias_dtype, err);
    if (st != PD_OK) return st;
    set_out(out, nr, qtype, n, k, blocks, qrow, true, b);
    return PD_OK;
}

size_t pd_q_scratch_bytes(const pd_kernels *kt, int k_max) {
    PD_ASSERT(k_max >= 1 && kt->gemm_nr >= 1);
    const size_t nr = (size_t)kt->gemm_nr;
    const size_t panel = kt->wtype == PD_DTYPE_BF16 ? round_up32(k_max) * nr * sizeof(uint16_t)
                                                    : (size_t)k_max * nr * sizeof(float);
    return panel + 128;
}
