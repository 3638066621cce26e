/*
 * gemm_bf16.h - bf16 GEMM and convolution against weights pre-packed in the AMX "VNNI"
 * layout (pd_packed_w with dtype BF16): the contract, the packed layout, the packers
 * and the variants (the gemm_f32 / conv2d_f32 entries of BF16 kernel tables; the op
 * contracts are pd_gemm_args and pd_conv_args in kernels.h).
 *
 *   C[i, j] = act(sum_kk bf16(A[i, kk]) * Wb[j, kk] + bias[j]) (+ res[i, j]),
 *   i in [0, m), j in [n0, n1),
 *
 * with A fp32 (rounded to bf16 inside the kernel, round-to-nearest-even like
 * pd_f32_to_bf16), Wb the bf16 weight, fp32 products and sums, and the same fp32
 * epilogue as the fp32 GEMM (kernels.h): + bias -> act -> + res. res may alias c (each
 * element is read before it is written, and C is written once, after the last k);
 * res must not alias a.
 *
 * Packed layout (pd_bf16_gemm_pack; pd_packed_w.bf16), the AMX "VNNI" B-tile layout,
 * which is also the vdpbf16ps (AVX512-BF16) layout of a 16-column B row:
 *   kp = k rounded up to a multiple of 32 (one AMX k-step of 16 bf16 pairs);
 *   panel p (nr = 16 or 32 columns) holds Wb[p*nr + c, kk] at
 *     data[(p*kp + (kk & ~1)) * nr + 2*c + (kk & 1)],
 *   i.e. row q = kk/2 of the panel is nr pairs (W[c, 2q], W[c, 2q+1]) = nr*4 bytes, so a
 *   16-column B tile of k-step s is 16 rows of 64 bytes at stride nr*4 bytes.
 *   Columns >= n and k indices >= k are zero. data is 64-byte aligned (+ 64 readable
 *   zero bytes); bias (fp32, zero-padded to a whole panel) may be NULL.
 * Weights are converted to bf16 with round-to-nearest-even (F32, F16) or copied
 * exactly (BF16); the bias is widened to fp32 exactly.
 *
 * Convolution (pd_bf16_conv_pack): the same layout for the [cout, kh*kw*cin] weight with
 * k index (ky*kw + kx)*cin + ci (as conv.h), padded to kp as a whole (not per tap);
 * the conv variants compute pd_conv_args exactly like the fp32 ones, with A = the
 * implicit im2col rows rounded to bf16 (how they get there: gemm_bf16_blocked.h).
 *
 * Every variant pd_bf16_gemm_<MR>x<NR>__<isa> (and pd_bf16_conv_*):
 *   - requires w->nr == NR, n0 % NR == 0 (or n0 == 0), 0 <= n0 <= n1 <= w->n (asserted);
 *     the reference pd_bf16_gemm__ref reads any nr (16 or 32);
 *   - handles any m >= 0, any k >= 1, any lda/ldc/ldres and pointer alignment; reads A
 *     only inside its rows (masked loads), writes only C[0..m) x [n0..n1); the conv
 *     variants any cin, kernel size, stride, padding and row range [oy0, oy1), reading
 *     the input only inside the image;
 *   - never allocates; uses ~140 KiB of stack (the driver's buffers).
 * AMX variants need pd_cpu_supports(PD_ISA_AMX) (amx_bf16 and the OS permission
 * granted by pd_cpu_detect). They configure the tiles on entry and release them
 * (_tile_release) before returning, so a thread may call anything else in between.
 * AVX512-BF16 variants need AVX-512 (F, BW, VL) and avx512bf16.
 *
 * Accuracy: the reference accumulates exact bf16 products in double; the variants
 * accumulate in fp32 (AMX: pairs, then k-steps; vdpbf16ps: pairs per k-pair).
 * Identical bf16 inputs, so the difference is fp32 summation order only (~1e-6 of
 * max |ref| for k <= 1000; tests use 1e-5). AMX and vdpbf16ps treat bf16 denormals as
 * zero and flush denormal results; the A conversion (VCVTNE2PS2BF16) also treats fp32
 * denormal inputs as zero. Versus the fp32 GEMM the bf16 rounding of A and W (2^-9
 * relative each) dominates: ~1e-2 of max |ref|.
 */
#ifndef PD_KERNELS_GEMM_BF16_H
#define PD_KERNELS_GEMM_BF16_H

#include "kernels/kernels.h"

#define PD_BF16_KSTEP 32   /* bf16 elements of k per AMX tile step (64 bytes per row) */

/* Packs W (n x k, row stride ld_w elements, F32/F16/BF16, may be unaligned) and an
 * optional bias (length n, F32/F16/BF16) in the BF16 format for variants with panel
 * width nr (16 or 32). Fails with PD_ERR_OOM or PD_ERR_INVALID_ARG (naming the problem).
 * Free with pd_packed_w_free. */
pd_status pd_bf16_gemm_pack(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype,
                            size_t ld_w, int n, int k, const void *bias, pd_dtype bias_dtype,
                            pd_error *err);
pd_status pd_bf16_gemm_pack_mt(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype,
                               size_t ld_w, int n, int k, const void *bias, pd_dtype bias_dtype,
                               pd_pool *pool, pd_error *err);

/* Packs a PyTorch conv weight [cout, cin, kh, kw] (F32/F16/BF16, dense, possibly
 * unaligned) and optional bias [cout] in the BF16 format (k index tap*cin + ci). */
pd_status pd_bf16_conv_pack(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype, int cout,
                            int cin, int kh, int kw, const void *bias, pd_dtype bias_dtype,
                            pd_error *err);
pd_status pd_bf16_conv_pack_mt(pd_packed_w *out, int nr, const void *w, pd_dtype w_dtype, int cout,
                               int cin, int kh, int kw, const void *bias, pd_dtype bias_dtype,
                               pd_pool *pool, pd_error *err);

/* References (any nr: 16 or 32). */
void pd_bf16_gemm__ref(const pd_gemm_args *args);
void pd_bf16_conv__ref(const pd_conv_args *args);

/* AMX: 2x2 tiles of 16x16 fp32 (32 rows x 32 columns), nr = 32; 2x1 tiles, nr = 16. */
void pd_bf16_gemm_32x32__amx(const pd_gemm_args *args);
void pd_bf16_gemm_32x16__amx(const pd_gemm_args *args);
void pd_bf16_conv_32x32__amx(const pd_conv_args *args);

/* AVX512-BF16 (vdpbf16ps): 8 rows x 32 columns in 16 zmm accumulators, nr = 32. */
void pd_bf16_gemm_8x32__avx512bf16(const pd_gemm_args *args);
void pd_bf16_conv_8x32__avx512bf16(const pd_conv_args *args);

#endif
