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

#endif
