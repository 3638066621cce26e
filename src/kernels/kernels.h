/*
 * kernels.h - the kernel dispatch table and the contracts of every op in it.
 *
 * Dispatch happens once: pd_kernels_init() fills a table with the scalar references
 * (`*_ref`, the specification of each op), then overrides entries with the best ISA
 * that cpuid AND the OS allow, capped by the requested level. The environment variable
 * PD_ISA=scalar|avx2|avx512|amx|neon forces a level when the caller asks for
 * PD_ISA_AUTO. The table is immutable afterwards and may be shared by threads.
 *
 * Common contract (BLIS/XNNPACK style):
 *   - Kernels never allocate, spawn threads or log. Callers split work (row/column or
 *     head ranges in the args) across threads.
 *   - Inputs may be read up to 64 bytes past their last element (arena buffers have a
 *     64-byte readable tail); outputs are never written outside their range.
 *   - No alignment is required of any pointer or leading dimension.
 *   - fp32 variants match the scalar reference to ~1e-5 relative to max |ref|.
 */
#ifndef PD_KERNELS_H
#define PD_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/cpu.h"
#include "base/dtype.h"
#include "base/error.h"
#include "base/threadpool.h"

typedef enum pd_act {
    PD_ACT_NONE = 0,
    PD_ACT_GELU,        /* x * 0.5 * (1 + erf(x / sqrt(2)))  (torch gelu, exact) */
    PD_ACT_QUICK_GELU,  /* x * sigmoid(1.702 x)               (OpenAI CLIP) */
    PD_ACT_SILU,        /* x * sigmoid(x) */
    PD_ACT_RELU         /* max(x, 0), NaN kept (TAESD) */
} pd_act;

#define PD_ACT_COUNT 5     /* number of pd_act values (tests loop over them) */

/* ---- GEMM against pre-packed weights --------------------------------------------
 * C[i, j] = act(sum_kk A[i, kk] * W[j, kk] + bias[j]) (+ res[i, j])
 * for i in [0, m), j in [n0, n1). A, C and res are fp32. W is [n, k] row-major (a
 * PyTorch Linear weight, or a conv weight flattened to [out, in*kh*kw]) packed once at
 * load, in the format of the kernel table that will run it (pd_kernels.wtype):
 *   F32:  data = panels of nr columns: panel p holds W[p*nr + c, kk] at
 *         data[(p*k + kk)*nr + c], zero-filled for p*nr + c >= n (pd_gemm_pack).
 *   BF16: bf16 = the AMX/AVX512-BF16 "VNNI" layout of gemm/gemm_bf16.h: k padded with
 *         zeros to kp (a multiple of 32), panel p holds W[p*nr + c, kk] at
 *         bf16[(p*kp + (kk & ~1))*nr + 2*c + (kk & 1)] (pd_bf16_gemm_pack). Kernels
 *         of BF16 tables round A to bf16 and accumulate in fp32.
 *   Q8_0/Q4_0/Q4_1: q = ggml blocks, row j (k elements zero-padded to kp) at
 *         q + j * qrow (quant/quant.h); run through pd_q_gemm / pd_q_conv, never
 *         directly by gemm_f32 / conv2d_f32.
 *   F16 (half_rows tables, F32 only): q = row j of k fp16 values at q + j * qrow
 *         (qrow = 2k: a Linear weight as safetensors stores it, borrowed from the
 *         mapping), run through pd_q_gemm like the block types; kp = k rounded up to 32.
 * panel0: panel p of data/bf16 is stored at index p - panel0 (0 for a whole weight;
 * pd_q_gemm's views of a dequantized chunk of panels set it), so n0 / nr >= panel0.
 * n0 must be a multiple of w->nr (the caller splits columns by whole panels) or n0 == 0;
 * n1 <= w->n. res may alias c (in-place residual add) but not a. */
typedef struct pd_packed_w {
    int n, k;
    int nr;          /* panel width, = the gemm kernel's nr of the table that packed it */
    pd_dtype dtype;  /* F32 (data), BF16 (bf16) or a block type (q) */
    int kp;          /* BF16 and block types: k rounded up to a multiple of 32; F32: k */
    int panel0;      /* first panel held by data/bf16 (views of a chunk); 0 otherwise */
    float *data;     /* F32 layout; owned, 64-byte aligned; NULL otherwise */
    uint16_t *bf16;  /* BF16 layout; owned, 64-byte aligned; NULL otherwise */
    const uint8_t *q;   /* block types: n rows of kp/32 blocks, any alignment; F16 rows
                           (pd_packed_w_rows): n rows of k halves */
    size_t qrow;        /* block types and F16 rows: bytes per row */
    bool q_borrowed;    /* q points into caller memory (a mapped file): not freed */
    float *bias;     /* [n] fp32 or NULL; owned */
} pd_packed_w;

typedef struct pd_gemm_args {
    int m;
    int n0, n1;
    const float *a;
    size_t lda;
    const pd_packed_w *w;
    float *c;
    size_t ldc;
    const float *res;   /* NULL: no residual */
    size_t ldres;
    pd_act act;
} pd_gemm_args;

/* ---- attention (flash-style) ----------------------------------------------------
 * For each head h in [h0, h1) and query row i in [q0, q1):
 *   s_j = scale * dot(Q[h, i, :], K[h, j, :])   for visible keys j
 *   O[h, i, :] = sum_j softmax(s)_j V[h, j, :]
 * with element (h, row, d) of X at x[h * x_hs + row * x_ld + d]. Causal: key j is
 * visible to query i iff j <= i. Never materialises the n_q x n_kv score matrix: keys
 * are processed in blocks with an online (running max/sum) softmax.
 * head_dim <= PD_ATTN_MAX_HEAD_DIM. O must not overlap Q, K or V. n_kv == 0 gives zeros. */
typedef struct pd_attn_args {
    int n_q, n_kv, head_dim;
    int q0, q1;
    int h0, h1;
    const float *q;
    size_t q_ld, q_hs;
    const float *k;
    size_t k_ld, k_hs;
    const float *v;
    size_t v_ld, v_hs;
    float *o;
    size_t o_ld, o_hs;
    float scale;
    bool causal;
} pd_attn_args;

#define PD_ATTN_MAX_HEAD_DIM 512   /* the SD VAE mid-block: one head of 512 */
#define PD_ATTN_ROWS_F32 32        /* query rows per call for the fp32 kernels */

/* ---- 2-D convolution (NHWC, implicit GEMM against packed weights) -----------------
 * For one image, output rows oy in [oy0, oy1), channels co in [n0, n1):
 *   out[oy, ox, co] = act(bias[co] + sum_{ky, kx, ci} in[iy, ix, ci] * W[co, ci, ky, kx])
 *                     (+ res[oy, ox, co])
 *   iy = oy * stride + ky - pad_t, ix = ox * stride + kx - pad_l; taps outside the input
 *   read as zero (so any bottom/right padding is implied by oh/ow).
 * Tensors are dense NHWC: in [ih, iw, cin], out and res [oh, ow, cout] with cout = w->n.
 * The weight is packed by pd_conv_pack as a GEMM weight [cout, kh*kw*cin] with k index
 * (ky * kw + kx) * cin + ci. n0 is a multiple of w->nr (or 0). res may alias out (then
 * each element is read before it is written); in must not overlap out. A 1x1 stride-1
 * convolution is exactly a GEMM with m = h*w. */
typedef struct pd_conv_args {
    int ih, iw, cin;
    int oh, ow;
    int kh, kw, stride, pad_t, pad_l;
    int oy0, oy1;
    int n0, n1;
    const float *in;
    const pd_packed_w *w;
    float *out;
    const float *res;
    pd_act act;
} pd_conv_args;

/* Arithmetic of the GEMM-shaped ops (GEMM, convolution, attention). */
typedef enum pd_prec {
    PD_PREC_FP32 = 0,   /* fp32 everywhere: the exact path */
    PD_PREC_BF16,       /* bf16 GEMM inputs (weights and activations), fp32 accumulation */
    PD_PREC_AUTO        /* request only: BF16 where the level has native bf16 kernels, else FP32 */
} pd_prec;

typedef struct pd_kernels {
    pd_isa isa;             /* the level this table was built for */
    pd_prec prec;           /* arithmetic of gemm_f32, conv2d_f32, attention_f32 */
    pd_dtype wtype;         /* packed weight format gemm_f32/conv2d_f32 read: F32 or BF16 */
    pd_dtype wquant;        /* Q8_0/Q4_0/Q4_1: pd_kernels_pack_* quantize the weights that
                               pd_quant_eligible() allows to this type; INVALID (the
                               default): weights are packed in wtype */
    bool half_rows;         /* F32 tables: GEMM weights stored F16 (rows of k, unquantized by
                               wquant) stay F16 as stored, borrowed from the mapping, and are
                               widened a panel chunk at a time like the block types: half
                               the memory of an fp32 pack, the same arithmetic (widening is
                               exact) */
    int gemm_nr;            /* panel width gemm_f32 expects in pd_packed_w */
    int attn_rows;          /* query rows per attention_f32 call drivers should aim for */
    const char *gemm_name;  /* e.g. "pd_f32_gemm_4x32__avx512" */
    void (*gemm_f32)(const pd_gemm_args *args);
    void (*attention_f32)(const pd_attn_args *args);
    /* y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * gamma + beta, biased variance,
     * for r in [0, rows). y may equal x. */
    void (*layernorm_f32)(float *y, size_t ldy, const float *x, size_t ldx, int rows,
                          int cols, const float *gamma, const float *beta, float eps);
    /* In-place row softmax of x[r, 0..cols) for r in [0, rows). */
    void (*softmax_f32)(float *x, size_t ld, int rows, int cols);
    /* y[i] = act(x[i]) for i in [0, n); y may equal x. */
    void (*act_f32)(float *y, const float *x, size_t n, pd_act act);
    /* See pd_conv_args. */
    void (*conv2d_f32)(const pd_conv_args *args);
    /* GroupNorm of one NHWC image x [hw, c] (dense): group g holds channels
     * [g*c/groups, (g+1)*c/groups); mean and biased variance over hw x c/groups values;
     * y = (x - mean) / sqrt(var + eps) * gamma[ch] + beta[ch], then SiLU when silu.
     * Only groups [g0, g1) are computed (callers split groups across threads).
     * y may equal x. c % groups == 0. */
    void (*groupnorm_f32)(float *y, const float *x, int hw, int c, int groups, int g0, int g1,
                          const float *gamma, const float *beta, float eps, bool silu);
    /* GEGLU (diffusers GEGLU, exact-erf GELU): for r < rows, j < cols:
     * y[r * ldy + j] = x[r * ldx + j] * gelu(x[r * ldx + cols + j]). y may equal x. */
    void (*geglu_f32)(float *y, size_t ldy, const float *x, size_t ldx, int rows, int cols);
    /* Panels [p0, p1) of a quantized weight q (q->nr == gemm_nr) written to dst in this
     * table's packed format (wtype), for pd_q_gemm / pd_q_conv (quant/quant.h). */
    void (*dequant_panels)(const pd_packed_w *q, int p0, int p1, void *dst);
} pd_kernels;

/* Whether w is stored as rows (block types, or F16 rows of a half_rows table) that
 * pd_q_gemm / pd_q_conv widen per panel chunk, rather than packed panels. */
static inline bool pd_packed_w_rows(const pd_packed_w *w) {
    return w->q != NULL;
}

/* Whether pd_kernels_pack_gemm keeps a GEMM weight [n, k] stored as w_dtype in F16 rows
 * (kt->half_rows, an F32 table, F16 storage, not quantized by kt->wquant). */
bool pd_kernels_half_rows(const pd_kernels *kt, pd_dtype w_dtype, int n, int k);

/* Whether a weight is quantized under kt->wquant: a Linear [n, k] with k a multiple of 32
 * (rows of whole blocks: what stable-diffusion.cpp quantizes, so a GGUF and quantizing
 * at load agree), or a conv with more than 8 input and output channels (the first and last convs of the
 * UNet and VAE, which touch the latents and pixels directly, keep full precision). */
bool pd_quant_eligible(int n, int k, int conv_cin);

/* Fills kt for the requested level (PD_ISA_AUTO: best available, PD_ISA env var
 * honoured), fp32 arithmetic. A level the CPU/OS does not allow falls back to the best
 * one below it. Returns the level actually used (also kt->isa). */
pd_isa pd_kernels_init(pd_kernels *kt, pd_isa want);

/* As pd_kernels_init with the given arithmetic. PD_PREC_BF16 picks, at the level:
 * AMX bf16 kernels (amx), AVX512-BF16 kernels (avx512 with avx512_bf16), else the bf16
 * scalar references for the GEMM-shaped ops (emulation: slow, for tests on machines
 * without bf16) with the level's fp32 kernels for the rest. PD_PREC_AUTO gives BF16 where
 * it is faster than fp32 (the AMX level) and FP32 elsewhere. kt->prec tells which. */
pd_isa pd_kernels_init_prec(pd_kernels *kt, pd_isa want, pd_prec prec);

/* Packs a GEMM weight (as pd_gemm_pack) in kt's format (kt->wtype, kt->gemm_nr); large
 * weights are split across pool's threads (NULL: the caller alone; the same bytes either
 * way). Call it outside pool tasks. */
pd_status pd_kernels_pack_gemm(const pd_kernels *kt, pd_packed_w *out, const void *w,
                               pd_dtype w_dtype, size_t ld_w, int n, int k, const void *bias,
                               pd_dtype bias_dtype, pd_pool *pool, pd_error *err);

/* Packs a conv weight (as pd_conv_pack) in kt's format; pool as pd_kernels_pack_gemm. */
pd_status pd_kernels_pack_conv(const pd_kernels *kt, pd_packed_w *out, const void *w,
                               pd_dtype w_dtype, int cout, int cin, int kh, int kw,
                               const void *bias, pd_dtype bias_dtype, pd_pool *pool, pd_error *err);

/* Quantized packs (pd_q_gemm_pack / pd_q_conv_pack, quant/quant.h) for kt's panel
 * width; run them with pd_q_gemm / pd_q_conv and this kt. */
pd_status pd_kernels_pack_gemm_q(const pd_kernels *kt, pd_packed_w *out, pd_dtype qtype, const void *w,
                                 pd_dtype w_dtype, size_t ld_w, int n, int k, const void *bias,
                                 pd_dtype bias_dtype, pd_error *err);
pd_status pd_kernels_pack_conv_q(const pd_kernels *kt, pd_packed_w *out, pd_dtype qtype, const void *w,
                                 pd_dtype w_dtype, int cout, int cin, int kh, int kw,
                                 const void *bias, pd_dtype bias_dtype, pd_error *err);

/* The scalar reference table (the specification), for tests and benchmarks. */
void pd_kernels_init_ref(pd_kernels *kt);

/* Packs W (n x k, row-major, element stride 1, row stride ld_w elements, dtype F32, F16
 * or BF16) and an optional bias (length n, same dtype choices) in the F32 format for
 * kernel tables whose gemm_nr == nr. Fails with PD_ERR_OOM or PD_ERR_INVALID_ARG (naming the problem). */
pd_status pd_gemm_pack(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype,
                       size_t ld_w, int n, int k, const void *bias, pd_dtype bias_dtype,
                       pd_error *err);
/* The same pack (the same bytes) with large weights split across pool's threads
 * (NULL: the caller alone); called outside pool tasks. Every packer has such a _mt twin. */
pd_status pd_gemm_pack_mt(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype,
                          size_t ld_w, int n, int k, const void *bias, pd_dtype bias_dtype,
                          pd_pool *pool, pd_error *err);
void pd_packed_w_free(pd_packed_w *w);   /* NULL-tolerant; leaves borrowed q alone */

/* Packs a PyTorch conv weight [cout, cin, kh, kw] (F32/F16/BF16, dense, possibly
 * unaligned) and optional bias [cout] in the F32 format for conv2d_f32 of tables with
 * gemm_nr == nr. The BF16 twins are in gemm/gemm_bf16.h. */
pd_status pd_conv_pack(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype, int cout,
                       int cin, int kh, int kw, const void *bias, pd_dtype bias_dtype,
                       pd_error *err);
pd_status pd_conv_pack_mt(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype, int cout,
                          int cin, int kh, int kw, const void *bias, pd_dtype bias_dtype,
                          pd_pool *pool, pd_error *err);

#endif
