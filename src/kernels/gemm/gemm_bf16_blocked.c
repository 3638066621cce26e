/*
 * gemm_bf16_blocked.c - the ISA-independent driver of the bf16 GEMM and convolution
 * (scheme, sources and microkernel contract: gemm_bf16_blocked.h; op contracts:
 * gemm_bf16.h), and the entry points that pick the A source.
 *
 * Column blocks (packed weights in L2) x row blocks of 32 x k blocks x panels; a k
 * block's A data is produced once per (column block, row block) by the source and read
 * by the microkernel of every panel of the column block. Plain C: the sources, the
 * microkernels and the epilogue are the ISA code, called through pointers (one call per
 * panel and row block, at least one k-step of 32 each: the indirection is noise).
 *
 * Blocking (measured on the SD shapes, bench_kernels --op gemm_bf16 / conv_bf16):
 *   - block sources use one k block up to kp = PD_BF16_KC_MAX (1600) and equal blocks
 *     beyond, the direct conv source as many channels as its band buffer holds: the
 *     accumulators stay in AMX tiles for the whole reduction of most shapes (storing
 *     and reloading them every 256 k, as the first AMX kernel did, cost 15-30%; one k
 *     block instead of two of 640 took a 4096x320x1280 GEMM from ~640 to ~880 GFLOP/s);
 *   - column blocks are as wide as b_l2_bytes of packed weights allows: the weights of
 *     the block are re-read from L2 by every row block (from L3 they would arrive at a
 *     fraction of the rate the tiles consume them), and the A data is produced once per
 *     column block, so wider is better as long as the weights stay in L2;
 *   - a panel's epilogue runs after the next microkernel call (or the next block's
 *     prepare) is issued, so the CPU does it while the AMX unit works through TDPs.
 * Software prefetching of the next block's input (bursts between calls, or spread over
 * the k-steps) was tried and measured no better: it moved the misses' cost into the
 * microkernel (fill buffers shared with the tile loads).
 *
 * Traps: nothing is written to C before the last k block of a panel (res may alias c);
 * a pending epilogue reads the accumulator scratch, so the scratch it uses is not
 * written again before it runs (double buffer, or its own columns of acc); the direct
 * source needs p0 and every row block start to be multiples of 16 output pixels (row
 * blocks of 32 and ow % 16 == 0 give that).
 */
#include "kernels/gemm/gemm_bf16_blocked.h"

#include "kernels/conv/conv.h"

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* A panel whose accumulators wait for the epilogue (acc NULL: none). */
typedef struct pending_epi {
    const float *acc;
    int i0, rows, j;
} pending_epi;

static void flush_epilogue(const pd_bf16_out *o, pending_epi *pe, size_t ldacc, int nr, int n1) {
    if (!pe->acc) return;
    pd_bf16_epilogue(o, pe->acc, ldacc, pe->i0, pe->rows, pe->j, PD_MIN(nr, n1 - pe->j));
    pe->acc = NULL;
}

void pd_bf16_blocked(const pd_bf16_blocking *b, pd_bf16_problem *p) {
    const pd_packed_w *w = p->w;
    const int nr = b->nr;
    PD_ASSERT(w->dtype == PD_DTYPE_BF16 && w->nr == nr && w->bf16);
    PD_ASSERT(p->n0 >= 0 && p->n0 <= p->n1 && p->n1 <= w->n);
    PD_ASSERT(p->n0 % nr == 0 && p->n0 / nr >= w->panel0);
    PD_ASSERT(nr <= 32 && PD_BF16_NB_ACC % nr == 0 && p->src.n_kb >= 1);
    if (p->m <= 0 || p->n0 >= p->n1) return;
    const int kp = w->kp, n_kb = p->src.n_kb;
    PD_ASSERT(kp % 32 == 0 && kp >= w->k);

    /* Column blocks: b_l2_bytes of packed weights (at least a panel), equal widths;
     * with several k blocks also <= the accumulator buffer. */
    const int ncols = p->n1 - p->n0;
    const size_t nb_l2 = b->b_l2_bytes / ((size_t)kp * 2) / (size_t)nr * (size_t)nr;
    int nb = (int)PD_MIN((size_t)round_up(ncols, nr), PD_MAX((size_t)nr, nb_l2));
    if (n_kb > 1) nb = PD_MIN(nb, PD_BF16_NB_ACC);
    const int n_cb = (ncols + nb - 1) / nb;
    nb = round_up((ncols + n_cb - 1) / n_cb, nr);

    _Alignas(64) uint16_t abuf[PD_BF16_ABUF];
    _Alignas(64) float acc[PD_BF16_MB * PD_BF16_NB_ACC];
    const size_t ldacc = n_kb > 1 ? (size_t)PD_BF16_NB_ACC : (size_t)nr;
    pd_bf16_seg seg[PD_BF16_MAX_SEGS];

    /* The epilogue of a panel runs after the NEXT microkernel call (or the next row
     * block's prepare) has been issued: the CPU executes it while the AMX unit works
     * through that call's TDPs instead of between them (the single-k-block scratch is
     * double-buffered for this; with several k blocks each panel has its own columns). */
    pending_epi pend = {NULL, 0, 0, 0};
    int flip = 0;
    if (b->begin) b->begin();
    for (int jb = p->n0; jb < p->n1; jb += nb) {
        const int je = PD_MIN(jb + nb, p->n1);
        const int n_rb = (p->m + PD_BF16_MB - 1) / PD_BF16_MB;
        for (int rb = 0; rb < n_rb; rb++) {
            const int i0 = p->src.block_start ? p->src.block_start(&p->src, rb) : rb * PD_BF16_MB;
            const int rows = PD_MIN(PD_BF16_MB, p->m - i0);
            for (int kb = 0; kb < n_kb; kb++) {
                size_t lda = 0;
                const int n_seg = p->src.prepare(&p->src, abuf, i0, rows, kb, seg, &lda);
                flush_epilogue(&p->out, &pend, ldacc, nr, p->n1);
                for (int j = jb; j < je; j += nr) {
                    float *tacc = n_kb > 1 ? acc + (j - jb) : acc + (size_t)(flip ^= 1) * PD_BF16_MB * (size_t)nr;
                    const pd_bf16_tile t = {
                        .seg = seg, .n_seg = n_seg, .lda = lda,
                        .b = w->bf16 + (size_t)(j / nr - w->panel0) * (size_t)kp * (size_t)nr,
                        .rows = rows, .acc = tacc, .ldacc = ldacc, .load = kb > 0,
                    };
                    b->tile(&t);
                    flush_epilogue(&p->out, &pend, ldacc, nr, p->n1);
                    if (kb == n_kb - 1) pend = (pending_epi){tacc, i0, rows, j};
                }
            }
        }
    }
    flush_epilogue(&p->out, &pend, ldacc, nr, p->n1);
    if (b->end) b->end();
}

/* Block sources: k blocks of <= PD_BF16_KC_MAX, equal, multiples of 32. */
static void set_kblocks(pd_bf16_a_src *s, int kp) {
    s->n_kb = (kp + PD_BF16_KC_MAX - 1) / PD_BF16_KC_MAX;
    s->kc = round_up((kp + s->n_kb - 1) / s->n_kb, 32);
}

void pd_bf16_gemm_blocked(const pd_bf16_blocking *b, const pd_gemm_args *g) {
    const pd_packed_w *w = g->w;
    PD_ASSERT(w && w->dtype == PD_DTYPE_BF16 && w->nr == b->nr);
    PD_ASSERT(g->n0 >= 0 && g->n0 <= g->n1 && g->n1 <= w->n && g->n0 % b->nr == 0);
    pd_bf16_problem p = {
        .m = g->m, .n0 = g->n0, .n1 = g->n1, .w = w,
        .src = {.prepare = pd_bf16_prepare_gemm, .k = w->k, .row_align = b->row_align, .a = g->a, .lda = g->lda},
        .out = {.c = g->c, .ldc = g->ldc, .res = g->res, .ldres = g->ldres, .bias = w->bias, .act = g->act},
    };
    set_kblocks(&p.src, w->kp);
    pd_bf16_blocked(b, &p);
}

void pd_bf16_conv_blocked(const pd_bf16_blocking *b, const pd_conv_args *a) {
    pd_conv_check_args(a);
    const pd_packed_w *w = a->w;
    PD_ASSERT(w->dtype == PD_DTYPE_BF16 && w->nr == b->nr);
    PD_ASSERT((int64_t)a->ih * a->iw <= INT32_MAX && (int64_t)a->oh * a->ow <= INT32_MAX);
    if (a->oy0 == a->oy1 || a->n0 == a->n1 || a->ow == 0) return;
    const size_t cout = (size_t)w->n, p0 = (size_t)a->oy0 * (size_t)a->ow;
    pd_bf16_problem p = {
        .m = (a->oy1 - a->oy0) * a->ow, .n0 = a->n0, .n1 = a->n1, .w = w,
        .src = {.k = w->k, .row_align = b->row_align, .conv = a, .p0 = p0},
        .out = {.c = a->out + p0 * cout, .ldc = cout, .res = a->res ? a->res + p0 * cout : NULL,
                .ldres = cout, .bias = w->bias, .act = a->act},
    };
    if (a->kh == 1 && a->kw == 1 && a->stride == 1 && a->pad_t == 0 && a->pad_l == 0 && a->ow == a->iw &&
        a->oy1 <= a->ih) {
        /* 1x1, stride 1, unpadded, same width: output pixel p reads input pixel p. */
        p.src.prepare = pd_bf16_prepare_gemm;
        p.src.a = a->in + p0 * (size_t)a->cin;
        p.src.lda = (size_t)a->cin;
        set_kblocks(&p.src, w->kp);
    } else if (!pd_bf16_direct_setup(&p.src, a)) {
        p.src.prepare = pd_bf16_prepare_im2col;
        set_kblocks(&p.src, w->kp);
    }
    pd_bf16_blocked(b, &p);
}
