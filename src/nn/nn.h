/*
 * nn.h - building blocks shared by the models: threaded linear layers, attention and
 * normalisation over the kernel table, and weight loading from checkpoint tensors.
 *
 * A pd_nn is the execution context of one forward pass: the (immutable) kernel table
 * and the thread pool. Blocks split their work across the pool's threads and call the
 * kernels on disjoint ranges; kernels themselves never spawn threads.
 *
 * Loading helpers check each tensor's dtype and shape against what the model expects
 * and name the tensor (as the checkpoint spells it) in every error.
 */
#ifndef PD_NN_H
#define PD_NN_H

#include <stdint.h>

#include "base/threadpool.h"
#include "io/model.h"
#include "kernels/kernels.h"

typedef struct pd_nn {
    const pd_kernels *kt;
    pd_pool *pool;   /* NULL: single-threaded */
    /* Dequantization scratch for quantized weights (quant/quant.h), split evenly by
     * thread into 64-byte multiples: size it nth * (pd_q_scratch_bytes(kt, k_max) + 64)
     * for the pool's nth threads and the largest k of a quantized weight (more, up to
     * nth * PD_Q_CHUNK_BYTES, lets chunks hold several panels). NULL when no weight is
     * quantized (running one then asserts). */
    void *wscratch;
    size_t wscratch_bytes;
} pd_nn;

/* Thread ith of nth's slice of nn's weight scratch (*bytes: its size). */
void *pd_nn_wscratch(const pd_nn *nn, int ith, int nth, size_t *bytes);

/* y[m, n] = act(x[m, k] . W^T + b) (+ res). res may alias y; x must not. */
void pd_nn_linear(const pd_nn *nn, float *y, size_t ldy, const float *x, size_t ldx, int m,
                  const pd_packed_w *w, pd_act act, const float *res, size_t ldres);

/* Row-wise layer norm over rows x cols (threaded by rows). y may equal x. */
void pd_nn_layernorm(const pd_nn *nn, float *y, size_t ldy, const float *x, size_t ldx,
                     int rows, int cols, const float *gamma, const float *beta, float eps);

/* y[i] = act(x[i]) for i < n (threaded); y may equal x, else they must not overlap. */
void pd_nn_act(const pd_nn *nn, float *y, const float *x, size_t n, pd_act act);

/* Multi-head attention over all heads and query rows of args (h0/h1, q0/q1 ignored):
 * split across threads by (head, query block). */
void pd_nn_attention(const pd_nn *nn, const pd_attn_args *args);

/* ---- loading ------------------------------------------------------------------ */

/* Context for messages: which model component and how to name its tensors; and the
 * pool that packs large weights (NULL: the loading thread alone). */
typedef struct pd_load_ctx {
    const pd_model_src *src;
    pd_component comp;
    pd_pool *pool;
} pd_load_ctx;

/* Checks t (found under rel_name, NULL = missing) has exactly the given shape
 * (ndim dims) and a float dtype (F32/F16/BF16). */
pd_status pd_nn_check(const pd_load_ctx *lc, const pd_st_tensor *t, const char *rel_name,
                      int ndim, const int64_t *shape, pd_error *err);

/* Converts t (already checked) to a new fp32 buffer (pd_aligned_alloc). */
pd_status pd_nn_to_f32(const pd_load_ctx *lc, const pd_st_tensor *t, const char *rel_name,
                       float **out, pd_error *err);

/* Packs a Linear weight W [n, k] (+ optional bias [n]) for kt. transpose = true reads
 * the stored tensor as [k, n] (OpenCLIP's text_projection, used as x @ P). */
pd_status pd_nn_pack(const pd_load_ctx *lc, const pd_kernels *kt, pd_packed_w *out,
                     const pd_st_tensor *w, const char *w_name, const pd_st_tensor *b,
                     const char *b_name, int n, int k, bool transpose, pd_error *err);

/* Whether `count` checked [n, k] tensors can be stacked as stored: all of one block type
 * with k a multiple of 32 (no requantizing), or all F16 kept as F16 rows under kt
 * (pd_kernels_half_rows). */
bool pd_nn_stackable_q(const pd_kernels *kt, const pd_st_tensor *const *parts, int count, int n, int k);

/* Stacks `count` [n, k] tensors (pd_nn_stackable_q) along n into one packed weight
 * [count * n, k] by copying their blocks or halves: the values are exactly the file's
 * (whose pages are then released). bias: fp32 [count * n] or NULL. */
pd_status pd_nn_pack_stacked_q(const pd_load_ctx *lc, const pd_kernels *kt, pd_packed_w *out, const pd_st_tensor *const *parts,
                               int count, int n, int k, const float *bias, pd_error *err);

/* Converts all of t (already checked: float or block type) to fp32 at dst. */
void pd_nn_convert_f32(const pd_st_tensor *t, float *dst);

/* Copies row `row` of a 2-D float tensor (F32/F16/BF16, possibly unaligned) to dst. */
void pd_nn_row_f32(const pd_st_tensor *t, int64_t row, float *dst);

#endif
