/*
 * quant_gemm.c - pd_q_gemm and pd_q_conv (quant.h): the column range in chunks of
 * whole panels, each dequantized by kt->dequant_panels into the caller's scratch in the
 * table's packed format and run by the table's own GEMM / conv through a view
 * pd_packed_w (panel0 = the chunk's first panel).
 *
 * Chunks: as many panels as fit min(scratch, PD_Q_CHUNK_BYTES) (at least one): large
 * enough that the kernels' per-call work (the bf16 drivers convert A once per call and
 * column block) is amortised, small enough that the chunk is still in L2 when the
 * kernel reads it.
 *
 * Traps: the view keeps the quantized weight's n, k and bias (indexed by absolute
 * column) and only relocates the panels; the 64 bytes past the chunk are zeroed (the
 * kernels may read there); kp of an F32 view is k, of a BF16 view the quantized kq.
 */
#include <string.h>

#include "kernels/quant/quant.h"

typedef struct chunking {
    pd_packed_w view;
    char *buf;
    size_t panel_bytes;
    int per_chunk;   /* panels per chunk */
} chunking;

static void setup(chunking *ch, const pd_kernels *kt, const pd_packed_w *q, void *scratch, size_t scratch_bytes) {
    PD_ASSERT(q && pd_q_row_type(q->dtype) && q->q && kt->dequant_panels);
    PD_ASSERT(q->nr == kt->gemm_nr);
    PD_ASSERT(scratch && scratch_bytes >= pd_q_scratch_bytes(kt, q->k));
    const bool bf16 = kt->wtype == PD_DTYPE_BF16;
    const size_t nr = (size_t)q->nr;
    ch->panel_bytes = bf16 ? (size_t)q->kp * nr * sizeof(uint16_t) : (size_t)q->k * nr * sizeof(float);
    ch->buf = (char *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    const size_t usable = PD_MIN(scratch_bytes - 128, (size_t)PD_Q_CHUNK_BYTES);
    ch->per_chunk = (int)PD_MAX((size_t)1, usable / ch->panel_bytes);
    memset(&ch->view, 0, sizeof ch->view);
    ch->view.n = q->n;
    ch->view.k = q->k;
    ch->view.nr = q->nr;
    ch->view.dtype = kt->wtype;
    ch->view.kp = bf16 ? q->kp : q->k;
    ch->view.bias = q->bias;
    if (bf16) ch->view.bf16 = (uint16_t *)(void *)ch->buf;
    else ch->view.data = (float *)(void *)ch->buf;
}

/* Dequantizes panels [p, p + count) into the buffer and points the view at them. */
static void load_chunk(chunking *ch, const pd_kernels *kt, const pd_packed_w *q, int p, int count) {
    kt->dequant_panels(q, p, p + count, ch->buf);
    memset(ch->buf + (size_t)count * ch->panel_bytes, 0, 64);
    ch->view.panel0 = p;
}

void pd_q_gemm(const pd_kernels *kt, const pd_gemm_args *g, void *scratch, size_t scratch_bytes) {
    const pd_packed_w *q = g->w;
    chunking ch;
    setup(&ch, kt, q, scratch, scratch_bytes);
    const int nr = q->nr;
    PD_ASSERT(g->n0 >= 0 && g->n0 <= g->n1 && g->n1 <= q->n && g->n0 % nr == 0);
    if (g->m <= 0 || g->n0 == g->n1) return;
    const int p_end = (g->n1 + nr - 1) / nr;
    for (int p = g->n0 / nr; p < p_end; p += ch.per_chunk) {
        const int count = PD_MIN(ch.per_chunk, p_end - p);
        load_chunk(&ch, kt, q, p, count);
        pd_gemm_args a = *g;
        a.w = &ch.view;
        a.n0 = p * nr;
        a.n1 = PD_MIN((p + count) * nr, g->n1);
        kt->gemm_f32(&a);
    }
}

void pd_q_conv(const pd_kernels *kt, const pd_conv_args *a, void *scratch, size_t scratch_bytes) {
    const pd_packed_w *q = a->w;
    chunking ch;
    setup(&ch, kt, q, scratch, scratch_bytes);
    const int nr = q->nr;
    PD_ASSERT(a->n0 >= 0 && a->n0 <= a->n1 && a->n1 <= q->n && a->n0 % nr == 0);
    PD_ASSERT(q->k == a->kh * a->kw * a->cin);
    if (a->oy0 >= a->oy1 || a->ow <= 0 || a->n0 == a->n1) return;
    const int p_end = (a->n1 + nr - 1) / nr;
    for (int p = a->n0 / nr; p < p_end; p += ch.per_chunk) {
        const int count = PD_MIN(ch.per_chunk, p_end - p);
        load_chunk(&ch, kt, q, p, count);
        pd_conv_args c = *a;
        c.w = &ch.view;
        c.n0 = p * nr;
        c.n1 = PD_MIN((p + count) * nr, a->n1);
        kt->conv2d_f32(&c);
    }
}
