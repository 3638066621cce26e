/*
 * gemm_blocked.c - the ISA-independent blocking driver of the fp32 GEMM (contract:
 * gemm.h). Row blocks of MC rows (their accumulators fit the stack buffer, their MC x kc
 * slice of A fits L2) x panels x k blocks of kc (a kc x NR slice of the panel reused from
 * L2 by the block's row tiles) x row tiles. C is written once, after the last k block,
 * by the ISA's epilogue, so res may alias c.
 */
#include <stdbool.h>

#include "kernels/gemm/gemm.h"

void pd_gemm_blocked(const pd_gemm_args *g, const pd_gemm_blocking *b) {
    const pd_packed_w *w = g->w;
    const int mr = b->mr, nr = b->nr;
    PD_ASSERT(w->nr == nr && b->acc_floats <= PD_GEMM_ACC_FLOATS && b->acc_floats >= mr * nr);
    PD_ASSERT(g->n0 >= 0 && g->n0 <= g->n1 && g->n1 <= w->n && g->n0 % nr == 0);
    PD_ASSERT(g->n0 / nr >= w->panel0);
    if (g->m <= 0 || g->n1 == g->n0) return;
    const int k = w->k;
    /* k blocks of about w_kblock_bytes, equal sized. */
    const int kc_max = PD_MAX(8, (int)(b->w_kblock_bytes / ((size_t)nr * sizeof(float))));
    const int n_kb = (k + kc_max - 1) / kc_max, kc = (k + n_kb - 1) / n_kb;
    /* Rows per block: the accumulators fit acc_floats, an MC x kc block of A fits L2. */
    int mc = PD_MIN(b->acc_floats / nr, (int)(b->a_kblock_bytes / ((size_t)kc * sizeof(float))));
    mc = PD_MAX(mr, mc / mr * mr);
    float acc[PD_GEMM_ACC_FLOATS] __attribute__((aligned(64)));
    for (int i0 = 0; i0 < g->m; i0 += mc) {
        const int i1 = PD_MIN(g->m, i0 + mc);
        for (int j = g->n0; j < g->n1; j += nr) {
            const float *panel = w->data + (size_t)(j / nr - w->panel0) * (size_t)k * (size_t)nr;
            const int cols = PD_MIN(nr, g->n1 - j);
            for (int kb = 0; kb < k; kb += kc) {
                const int kn = PD_MIN(kc, k - kb);
                const bool last = kb + kn == k;
                for (int i = i0; i < i1; i += mr) {
                    const int rows = PD_MIN(mr, i1 - i);
                    float *tacc = acc + (size_t)(i - i0) * (size_t)nr;
                    pd_gemm_tile t = {kn, g->a + (size_t)i * g->lda + (size_t)kb, g->lda,
                                      panel + (size_t)kb * (size_t)nr, tacc, kb > 0};
                    b->tiles[rows](&t);
                    if (last) b->epilogue(g, tacc, nr, i, rows, j, cols);
                }
            }
        }
    }
}
