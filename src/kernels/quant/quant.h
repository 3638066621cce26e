/*
 * quant.h - 8-bit and 4-bit block-quantized weights (ggml Q8_0, Q4_0, Q4_1) for the
 * GEMM and the convolution: the reference quantizers, the quantized pd_packed_w, its
 * packers, and the drivers that run it on any kernel table.
 *
 * Block formats (base/dtype.h; ggml's bit layout, so GGUF files interchange bit for bit):
 * blocks of 32 consecutive elements of a row,
 *   Q8_0 (34 bytes): fp16 d, int8 q[32];            x = d * q
 *   Q4_0 (18 bytes): fp16 d, uint8 qs[16];          x = d * (nibble - 8)
 *   Q4_1 (20 bytes): fp16 d, fp16 m, uint8 qs[16];  x = d * nibble + m
 * element j < 16 is the low nibble of qs[j], element 16 + j its high nibble. Blocks
 * have no alignment (a block of a mapped file may start at any byte): fp16 fields are
 * read with memcpy. The reference quantizers are ggml's quantize_row_*_ref (the
 * "deterministic creation of model files" ones), re-derived:
 *   Q8_0: amax = max |x|, d = amax / 127, id = d ? 1/d : 0, q = roundf(x * id);
 *   Q4_0: max = the x of largest |x| (first one, sign kept), d = max / -8,
 *         id = d ? 1/d : 0, q = MIN(15, (int8_t)(x * id + 8.5f));
 *   Q4_1: min, max, d = (max - min) / 15, id = d ? 1/d : 0,
 *         q = MIN(15, (int8_t)((x - min) * id + 0.5f)), m = min;
 * in fp32, with d (and m) stored as fp16 rounded to nearest even (pd_f32_to_f16), and
 * id computed from the fp32 d (not the stored one).
 * Dequantization (everywhere: pd_dequantize_row, every dequant_panels variant) is
 * defined as fp32 arithmetic on the widened fp16 fields: v = (float)q * d, and for Q4_1
 * v = ((float)nibble * d) + m with two roundings (no fma; ggml's dequantize_row_q4_1
 * compiled without contraction). Vector code does the same single multiply (and add),
 * so every variant is bit-identical to the reference.
 *
 * Quantized packed weight (pd_packed_w with dtype Q8_0/Q4_0/Q4_1): W [n, k] stored as
 * a GGUF tensor stores it: row j (= output column j) holds k elements zero-padded to
 * kp = kq = k rounded up to 32, i.e. kq / 32 blocks, at q + j * qrow (qrow =
 * kq / 32 * block bytes). A conv weight's row is in the conv's packed k order
 * (k index (ky*kw + kx)*cin + ci, kernels/conv/conv.h). q is either owned (quantized at
 * load by pd_q_gemm_pack / pd_q_conv_pack; freed by pd_packed_w_free) or borrowed
 * (pd_q_gemm_wrap: rows of a read-only mapped file, q_borrowed set, never freed). The
 * bias stays fp32 and owned. nr is the panel width of the table that will run it.
 *
 * Running it: dequantize into cache-resident panels, then the existing kernels.
 * pd_q_gemm / pd_q_conv walk the column range [n0, n1) in chunks of whole panels sized
 * to the caller's scratch (about PD_Q_CHUNK_BYTES, at least one panel), write each
 * chunk into the scratch in the table's own packed format with kt->dequant_panels
 * (F32 panels of kernels.h, or the BF16 "VNNI" panels of gemm/gemm_bf16.h), and call
 * kt->gemm_f32 / kt->conv2d_f32 on the chunk's columns through a view pd_packed_w whose
 * panel0 is the chunk's first panel. So every ISA (AMX included: its tables read the
 * BF16 layout) runs quantized weights with no new microkernels, and the arithmetic is
 * exactly that of the table on the dequantized weight.
 * Cost model: a call dequantizes its n x k weight once (n*k element conversions, about
 * a shuffle-bound transpose per 16 x 16 elements) against m*n*k MACs, so the overhead is
 * ~1/m of the GEMM in element-ops; at m = 77 (CLIP) it is a few percent, at m >= 1024
 * (UNet, VAE) noise. What it buys is 2-4x less weight memory (and bandwidth from DRAM)
 * than bf16/fp32 packs; the dequantized chunk is read from L2 by the kernel. Threads
 * splitting rows (m) each dequantize the same panels: fine while m per thread >> 1.
 * Measured (bench_kernels --op gemm_q, one Zen 4 core): dequant 4.3-4.5 Gelem/s into
 * F32 panels (AVX-512), 2.9-3.3 (AVX2), 4.4-4.9 into BF16 panels; pd_q_gemm within
 * 0-2% of the fp32 pack at m = 4096 and 1024 (5% for bf16 at k = 5760), 15% (fp32) and
 * 25-30% (bf16) slower at m = 77, where dequant is ~1/77 of the work in element-ops.
 *
 * Chunk size: PD_Q_CHUNK_BYTES = 1 MiB, the bf16 drivers' column block (b_l2_bytes):
 * they convert A to bf16 once per call and column block, so smaller chunks redo that
 * work (512 KiB cost a 1024x640x5760 bf16 GEMM 30% on Zen 4; the fp32 kernels read A
 * in place and do not care).
 *
 * Traps: the F32 panel layout has k rows per panel (not kq): the padding of the last
 * block is dropped; the BF16 layout keeps kq = kp rows and they must be zero (Q4_1
 * padding dequantizes to m + d*q, not 0, so every variant writes 0 for k indices >= k,
 * and for columns >= n). (int8_t) of a float out of range is UB in C: the quantizer
 * clamps first (same results for finite inputs; NaN/inf inputs give some defined
 * block instead of UB).
 */
#ifndef PD_KERNELS_QUANT_H
#define PD_KERNELS_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

#define PD_Q_BLOCK 32                    /* elements per block */
#define PD_Q_CHUNK_BYTES (1024u << 10)   /* target dequantized chunk (L2-resident) */

/* Row formats pd_q_gemm runs: the block types, and F16 rows (kernels.h: half_rows),
 * which the dequant_panels variants treat as "blocks" of 32 halves, the last one
 * partial when k % 32 != 0 (unpadded rows: a Linear weight as the file stores it). */
static inline bool pd_q_row_type(pd_dtype t) { return pd_dtype_is_quant(t) || t == PD_DTYPE_F16; }

/* Bytes of block b of a row of t: a block type's block, or 32 halves. */
static inline size_t pd_q_block_bytes(pd_dtype t) { return t == PD_DTYPE_F16 ? 64 : pd_dtype_size(t); }

/* Block b of row `row` (k elements) of t, readable as a whole block: in the row, or for
 * the partial last block of an F16 row (whose bytes end where the row ends, possibly at
 * the end of a mapping) copied into tmp and zero-padded. */
static inline const uint8_t *pd_q_block_at(pd_dtype t, const uint8_t *row, int b, int k, uint8_t tmp[64]) {
    const uint8_t *p = row + (size_t)b * pd_q_block_bytes(t);
    if (t != PD_DTYPE_F16 || (size_t)(b + 1) * PD_Q_BLOCK <= (size_t)k) return p;
    const size_t live = ((size_t)k - (size_t)b * PD_Q_BLOCK) * 2;
    memcpy(tmp, p, live);
    memset(tmp + live, 0, 64 - live);
    return tmp;
}

/* Quantizes x[0..n) (n a multiple of 32, asserted) into n/32 blocks of t (Q8_0, Q4_0,
 * Q4_1) at dst (any alignment), bit for bit as ggml's reference quantizers. */
void pd_quantize_row(pd_dtype t, const float *x, void *dst, size_t n);

/* The variants pd_quantize_row picks from (by pd_cpu_detect, once per call): the scalar
 * reference (the specification) and vector versions that write the same bytes for every
 * input (blocks they cannot prove identical, e.g. with inf/NaN or an infinite 1/d, go to
 * the reference). The vector versions require their ISA. */
void pd_quantize_row__ref(pd_dtype t, const float *x, void *dst, size_t n);
void pd_quantize_row__avx512(pd_dtype t, const float *x, void *dst, size_t n);

/* dst[0..n) = the n elements of the blocks at src (any alignment), n % 32 == 0. */
void pd_dequantize_row(pd_dtype t, const void *src, float *dst, size_t n);

/* Packs W [n, k] (F32/F16/BF16, row stride ld_w elements, any alignment) quantized to
 * qtype, rows zero-padded to kq, plus an optional bias (fp32, owned). Fails with
 * PD_ERR_INVALID_ARG (bad args, naming them) or PD_ERR_OOM; out is zeroed on failure.
 * Free with pd_packed_w_free. */
pd_status pd_q_gemm_pack(pd_packed_w *out, int nr, pd_dtype qtype, const void *w, pd_dtype w_dtype,
                         size_t ld_w, int n, int k, const void *bias, pd_dtype bias_dtype,
                         pd_error *err);
pd_status pd_q_gemm_pack_mt(pd_packed_w *out, int nr, pd_dtype qtype, const void *w, pd_dtype w_dtype,
                            size_t ld_w, int n, int k, const void *bias, pd_dtype bias_dtype,
                            pd_pool *pool, pd_error *err);

/* Packs a PyTorch conv weight [cout, cin, kh, kw] (F32/F16/BF16) quantized to qtype
 * along the conv's k order (tap*cin + ci), zero-padded to kq; optional bias [cout]. */
pd_status pd_q_conv_pack(pd_packed_w *out, int nr, pd_dtype qtype, const void *w, pd_dtype w_dtype,
                         int cout, int cin, int kh, int kw, const void *bias, pd_dtype bias_dtype,
                         pd_error *err);
pd_status pd_q_conv_pack_mt(pd_packed_w *out, int nr, pd_dtype qtype, const void *w, pd_dtype w_dtype,
                            int cout, int cin, int kh, int kw, const void *bias, pd_dtype bias_dtype,
                            pd_pool *pool, pd_error *err);

/* Borrows n pre-quantized rows of k elements (k % 32 == 0, checked), row j at
 * blocks + j * (k/32 * block bytes), e.g. a GGUF tensor in a mapped file; nothing is
 * copied (blocks must outlive out; pd_packed_w_free leaves them alone). The bias is
 * copied to fp32. For a conv the rows must be in the conv's k order. qtype F16: rows
 * of k halves (any k), row j at blocks + j * 2k (F32 tables' half_rows). */
pd_status pd_q_gemm_wrap(pd_packed_w *out, int nr, pd_dtype qtype, const void *blocks, int n, int k,
                         const void *bias, pd_dtype bias_dtype, pd_error *err);

/* Scratch pd_q_gemm / pd_q_conv need with table kt for weights of k <= k_max: one
 * panel in kt's format plus 128 bytes (alignment and the kernels' readable tail). More
 * is used up to about PD_Q_CHUNK_BYTES. */
size_t pd_q_scratch_bytes(const pd_kernels *kt, int k_max);

/* pd_gemm_args / pd_conv_args with a quantized g->w / a->w (w->nr == kt->gemm_nr):
 * the same result as kt->gemm_f32 / kt->conv2d_f32 on the dequantized weight packed for
 * kt. scratch: >= pd_q_scratch_bytes(kt, w->k) bytes, any alignment, private to the
 * calling thread. n0 on a panel boundary (as for the kernels). */
void pd_q_gemm(const pd_kernels *kt, const pd_gemm_args *g, void *scratch, size_t scratch_bytes);
void pd_q_conv(const pd_kernels *kt, const pd_conv_args *a, void *scratch, size_t scratch_bytes);

/* ---- dequant_panels variants (pd_kernels.dequant_panels; list: quant.inc) ----------
 * Panels [p0, p1) of the quantized weight q written to dst (p0 at dst, any alignment
 * of 4 bytes) in the packed format of the name: _f32: kernels.h F32 panels (k rows of
 * q->nr floats per panel); _bf16: gemm_bf16.h VNNI panels (kp = q->kp rows, nr 16/32).
 * Columns >= q->n and k indices >= q->k are +0. Bit-identical to the references. */
void pd_q_dequant_f32__ref(const pd_packed_w *q, int p0, int p1, void *dst);
void pd_q_dequant_bf16__ref(const pd_packed_w *q, int p0, int p1, void *dst);
void pd_q_dequant_f32__avx2(const pd_packed_w *q, int p0, int p1, void *dst);
void pd_q_dequant_f32__avx512(const pd_packed_w *q, int p0, int p1, void *dst);
void pd_q_dequant_bf16__avx512(const pd_packed_w *q, int p0, int p1, void *dst);

#endif
