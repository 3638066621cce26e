/*
 * conv_blocked.c - the ISA-independent driver of the fp32 NHWC convolution (contract:
 * kernels.h pd_conv_args; scheme and microkernel contract: conv.h).
 *
 * 1x1 stride-1 unpadded convs go to the variant's GEMM. Everything else is an implicit
 * GEMM with indirection: row blocks of mc output pixels x channel panels x k blocks
 * (<= PD_CONV_MAX_TAPS taps x a range of input channels, about w_kblock_bytes of
 * weights) x register tiles of mr pixels. Per row block (and tap chunk / tile height) a
 * table gives, for each tile, its non-padding taps and each pixel's input pixel index
 * for them (-1: padding, read from a static zero row). C is written once, after the last
 * k block, by the ISA's epilogue, so res may alias out.
 *
 * Traps: pixel indices are int32 (asserted: ih * iw < 2^31); the zero row must cover a
 * whole k block (k <= PD_CONV_ZERO_FLOATS); n_taps may be 0 for a tile that lies
 * entirely in the implied bottom/right padding (then it stores bias/act of zero).
 */
#include <stdbool.h>

#include "kernels/conv/conv.h"

static const float ZERO_ROW[PD_CONV_ZERO_FLOATS];

/* The tap table of one row block for tiles of mr pixels and taps [t0, t1). */
typedef struct tap_table {
    int mr, t0;                                   /* what it holds (mr 0: nothing yet) */
    int n_taps[PD_CONV_MAX_TILES];
    int tap[PD_CONV_MAX_TILES][PD_CONV_MAX_TAPS];
    int32_t pix[PD_CONV_MAX_TILES][PD_CONV_MAX_TAPS][PD_CONV_MAX_MR];
} tap_table;

static void build_table(tap_table *tt, const pd_conv_args *a, size_t pb, int block, int mr, int t0,
                        int t1) {
    tt->mr = mr;
    tt->t0 = t0;
    const int n_tiles = (block + mr - 1) / mr;
    for (int i = 0; i < n_tiles; i++) {
        const int rows = PD_MIN(mr, block - i * mr);
        int n = 0;
        for (int tp = t0; tp < t1; tp++) {
            const int ky = tp / a->kw, kx = tp % a->kw;
            bool any = false;
            for (int r = 0; r < PD_CONV_MAX_MR; r++) {
                int32_t idx = -1;
                if (r < rows) {
                    const size_t p = pb + (size_t)(i * mr + r);
                    const int oy = (int)(p / (size_t)a->ow), ox = (int)(p % (size_t)a->ow);
                    const int iy = oy * a->stride + ky - a->pad_t, ix = ox * a->stride + kx - a->pad_l;
                    if (iy >= 0 && iy < a->ih && ix >= 0 && ix < a->iw) idx = (int32_t)(iy * a->iw + ix);
                }
                tt->pix[i][n][r] = idx;
                any |= idx >= 0;
            }
            if (any) tt->tap[i][n++] = tp;
        }
        tt->n_taps[i] = n;
    }
}

/* The weight rows of one k block: per tap, k x nr floats at panel row tap*cin + c0. */
typedef struct wblock {
    int n;
    const char *p[PD_CONV_MAX_TAPS];
    size_t total;   /* bytes */
    size_t bytes;   /* per tap */
} wblock;

static void wblock_set(wblock *wb, const float *panel, int t0, int t1, int cin, int c0, int k, int nr) {
    wb->n = t1 - t0;
    wb->bytes = (size_t)k * (size_t)nr * sizeof(float);
    wb->total = wb->bytes * (size_t)wb->n;
    for (int q = 0; q < wb->n; q++)
        wb->p[q] = (const char *)(panel + ((size_t)(t0 + q) * (size_t)cin + (size_t)c0) * (size_t)nr);
}

/* Prefetches (to L2) share i of n of the block's bytes: spread over the tiles of the
 * current k block, the next block's weights arrive before it starts (on a weight-heavy
 * layer, 16x16 x 1280 channels, the first tile of each block otherwise waits on DRAM). */
static void wblock_prefetch(const wblock *wb, int i, int n) {
    size_t lo = wb->total * (size_t)i / (size_t)n, hi = wb->total * (size_t)(i + 1) / (size_t)n;
    for (size_t off = lo & ~(size_t)63; off < hi; off += 64) {
        const size_t q = off / wb->bytes;
        __builtin_prefetch(wb->p[q] + (off - q * wb->bytes), 0, 2);
    }
}

static int gcd(int x, int y) { return y ? gcd(y, x % y) : x; }

void pd_conv_blocked(const pd_conv_args *a, const pd_conv_blocking *b) {
    pd_conv_check_args(a);
    const pd_packed_w *w = a->w;
    const int nr = b->nr, lanes = b->lanes;
    PD_ASSERT(w->nr == nr && b->mc >= 1 && b->mc * nr <= PD_CONV_ACC_FLOATS);
    PD_ASSERT((int64_t)a->ih * a->iw <= INT32_MAX);
    if (a->oy0 == a->oy1 || a->n0 == a->n1 || a->ow == 0) return;
    const int cin = a->cin, taps = a->kh * a->kw;
    const size_t cout = (size_t)w->n, k_all = (size_t)w->k;

    if (taps == 1 && a->stride == 1 && a->pad_t == 0 && a->pad_l == 0 && a->ow == a->iw &&
        a->oy1 <= a->ih) {
        const size_t p0 = (size_t)a->oy0 * (size_t)a->ow;
        pd_gemm_args g = {
            .m = (a->oy1 - a->oy0) * a->ow, .n0 = a->n0, .n1 = a->n1,
            .a = a->in + p0 * (size_t)cin, .lda = (size_t)cin, .w = w,
            .c = a->out + p0 * cout, .ldc = cout,
            .res = a->res ? a->res + p0 * cout : NULL, .ldres = cout, .act = a->act,
        };
        b->gemm(&g);
        return;
    }

    const size_t p_begin = (size_t)a->oy0 * (size_t)a->ow, p_end = (size_t)a->oy1 * (size_t)a->ow;
    /* Row blocks of equal size (a multiple of every tile height, <= mc): no short last
     * block that would reuse each weight block for only a tile or two. */
    int align = 1;
    for (int nv = 1; nv <= PD_CONV_MAX_NV; nv++)
        if (b->mr[nv]) align = align / gcd(align, b->mr[nv]) * b->mr[nv];
    PD_ASSERT(b->mc % align == 0);
    const size_t n_rb = (p_end - p_begin + (size_t)b->mc - 1) / (size_t)b->mc;
    const size_t mc = ((p_end - p_begin + n_rb - 1) / n_rb + (size_t)align - 1) / (size_t)align * (size_t)align;
    float acc[PD_CONV_ACC_FLOATS] __attribute__((aligned(64)));
    tap_table tt;
    wblock next = {0};
    for (size_t pb = p_begin; pb < p_end; pb += mc) {
        const int block = (int)PD_MIN(mc, p_end - pb);
        tt.mr = 0;
        for (int j = a->n0; j < a->n1; j += nr) {
            const int cols = PD_MIN(nr, a->n1 - j);
            /* The narrowest tile shape that covers the panel's live columns. */
            int nv = (cols + lanes - 1) / lanes;
            while (nv < PD_CONV_MAX_NV && (b->mr[nv] == 0 || nv * lanes > nr)) nv++;
            PD_ASSERT(b->mr[nv] > 0 && nv * lanes <= nr);
            const int mr = b->mr[nv], acc_ld = nv * lanes, n_tiles = (block + mr - 1) / mr;
            /* Weight rows per k block: a tile reads acc_ld floats of each nr-float row
             * (at least a cache line), so narrow tiles get longer k blocks. */
            const size_t row_bytes = PD_MAX((size_t)64, (size_t)acc_ld * sizeof(float));
            const int rows_kb = PD_MAX(1, (int)(b->w_kblock_bytes / row_bytes));
            PD_ASSERT(n_tiles <= PD_CONV_MAX_TILES && mr <= PD_CONV_MAX_MR);
            const float *panel = w->data + (size_t)(j / nr - w->panel0) * k_all * (size_t)nr;
            for (int t0 = 0; t0 < taps; t0 += PD_CONV_MAX_TAPS) {
                const int t1 = PD_MIN(taps, t0 + PD_CONV_MAX_TAPS);
                if (tt.mr != mr || tt.t0 != t0) build_table(&tt, a, pb, block, mr, t0, t1);
                /* k blocks: equal input-channel ranges of about rows_kb weight rows. */
                const int cc_max = PD_MIN(PD_CONV_ZERO_FLOATS, PD_MAX(1, rows_kb / (t1 - t0)));
                const int n_cb = (cin + cc_max - 1) / cc_max, cc = (cin + n_cb - 1) / n_cb;
                for (int c0 = 0; c0 < cin; c0 += cc) {
                    const int k = PD_MIN(cc, cin - c0);
                    const bool first = t0 == 0 && c0 == 0, last = t1 == taps && c0 + k == cin;
                    /* The next k block of this panel (or the next panel's first). */
                    next.n = 0;
                    if (c0 + k < cin) {
                        wblock_set(&next, panel, t0, t1, cin, c0 + k, PD_MIN(cc, cin - c0 - k), nr);
                    } else if (t1 < taps) {
                        const int t2 = PD_MIN(taps, t1 + PD_CONV_MAX_TAPS);
                        const int cc2 = PD_MIN(PD_CONV_ZERO_FLOATS, PD_MAX(1, rows_kb / (t2 - t1)));
                        wblock_set(&next, panel, t1, t2, cin, 0, PD_MIN(cin, cc2), nr);
                    } else if (j + nr < a->n1) {
                        const int cc2 = PD_MIN(PD_CONV_ZERO_FLOATS, PD_MAX(1, rows_kb / PD_MIN(taps, PD_CONV_MAX_TAPS)));
                        wblock_set(&next, panel + k_all * (size_t)nr, 0, PD_MIN(taps, PD_CONV_MAX_TAPS), cin, 0,
                                   PD_MIN(cin, cc2), nr);
                    }
                    for (int i = 0; i < n_tiles; i++) {
                        if (next.n) wblock_prefetch(&next, i, n_tiles);
                        const int rows = PD_MIN(mr, block - i * mr);
                        const float *wt[PD_CONV_MAX_TAPS];
                        for (int q = 0; q < tt.n_taps[i]; q++)
                            wt[q] = panel + ((size_t)tt.tap[i][q] * (size_t)cin + (size_t)c0) * (size_t)nr;
                        float *tacc = acc + (size_t)i * (size_t)mr * (size_t)acc_ld;
                        const pd_conv_tile t = {tt.n_taps[i], k, (size_t)cin, a->in + c0, ZERO_ROW,
                                                &tt.pix[i][0][0], wt, (size_t)nr, tacc, !first};
                        b->tiles[nv][rows](&t);
                        if (last) b->epilogue(a, tacc, acc_ld, pb + (size_t)(i * mr), rows, j, cols);
                    }
                }
            }
        }
    }
}
