/*
 * attention.h - flash-style scaled dot-product attention: variant declarations and
 * what every variant guarantees beyond pd_attn_args (kernels.h).
 *
 * For heads h in [h0, h1) and query rows i in [q0, q1):
 *   O[h, i, :] = sum_j softmax_j(scale * Q[h, i, :] . K[h, j, :]) V[h, j, :]
 * over visible keys j (all j < n_kv; with causal only j <= i).
 *
 *   - 1 <= head_dim <= PD_ATTN_MAX_HEAD_DIM (asserted); n_q, n_kv >= 0.
 *   - Only O rows [q0, q1) of heads [h0, h1) are written, and only their first
 *     head_dim elements; every other byte of O is untouched. O must not overlap Q, K
 *     or V (the SIMD variants keep their running sums in O).
 *   - n_kv == 0 writes zeros.
 *   - Any strides; no alignment; stack buffers only (no allocation); the AVX-512
 *     and AVX2 variants use ~70 KiB of stack (mostly the transposed key block).
 *   - Numerically stable for large scores: the running max is subtracted before exp.
 *
 * Variants pd_f32_attention_<BQ>x<BK>__<isa> take key blocks of BK keys: the block is
 * transposed once into a [head_dim][BK] stack buffer and reused by every query tile of
 * BQ rows in a chunk of up to 512 queries, so S = Q K^T is a small register-blocked
 * GEMM (keys in vector lanes); then an online softmax (running max m and sum l per
 * row, O rescaled by exp(m_old - m_new)) and O += P V with head_dim in vector lanes.
 * Reference: FlashAttention (Dao et al., 2022), algorithm 1 (forward pass).
 * The reference variant makes two passes over the keys (max, then sums) in double.
 * Accuracy of the fp32 SIMD variants: ~1e-6 relative to max |ref| (tests use 2e-5).
 */
#ifndef PD_KERNELS_ATTENTION_H
#define PD_KERNELS_ATTENTION_H

#include "kernels/kernels.h"

void pd_f32_attention__ref(const pd_attn_args *args);
void pd_f32_attention_6x64__avx2(const pd_attn_args *args);
void pd_f32_attention_6x64__avx512(const pd_attn_args *args);

/* bf16 arithmetic (attention_bf16.inc; the bf16 table's attention_f32): Q, K, V and the
 * softmax weights P rounded to bf16 (round to nearest even, fp32 denormals read as
 * zero), products accumulated in fp32, softmax in fp32, fp32 output. Same contract as
 * above (any head_dim up to 512, tails, causal, sub-ranges, strides, n_kv = 0).
 * The reference rounds p = bf16(exp(s - max)) against the global max and sums in
 * double; the AMX variant (attention_bf16_amx.c) rounds against its running max and
 * normalises by the sum of its rounded weights, so each weight may differ from the
 * reference's by one bf16 step: |O - ref| <= 2^-7 max|V| (seen: ~2.5e-3 max|V|). Versus
 * the fp32 reference: ~1e-2 max|V| (bf16 V and P), plus the bf16 rounding of Q and K
 * moving the scores (2^-8 scale sum_d |q_d k_d| at worst), which dominates only for
 * large scores. The AMX variant needs pd_cpu_supports(PD_ISA_AMX), uses ~192 KiB of
 * stack, and sets MXCSR FTZ|DAZ for the duration of the call (restored). The
 * AVX512-BF16 variant (attention_bf16_avx512bf16.c: same roundings, running max and sum)
 * needs AVX-512 with avx512bf16, uses ~161 KiB of stack, and sets FTZ|DAZ the same way. */
void pd_bf16_attention__ref(const pd_attn_args *args);
void pd_bf16_attention_32x128__amx(const pd_attn_args *args);
void pd_bf16_attention_32x64__avx512bf16(const pd_attn_args *args);

#endif
