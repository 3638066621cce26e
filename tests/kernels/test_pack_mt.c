/*
 * test_pack_mt.c - the threaded weight packers (kernels/pack_mt.h) write the same bytes
 * as one thread.
 *
 * Every packer (fp32, bf16 and quantized Q8_0/Q4_0/Q4_1; GEMM and conv; through its _mt
 * entry and through pd_kernels_pack_gemm / _conv) runs with no pool and with pools of 2
 * and 3 threads, and the packed data, bias and shape fields are compared byte for byte.
 * Shapes are above PD_PACK_MT_MIN (so the pool is used) and include fewer panels (or
 * rows) than threads (1 and 2 panels), panel tails (n % nr != 0), odd k (bf16 pairs,
 * quant padding to 32), 3x3 and 1x1 convs, F32/F16/BF16 sources; plus one shape below
 * the threshold.
 */
#include "base/half.h"
#include "base/threadpool.h"
#include "kernel_test_util.h"
#include "kernels/conv/conv.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_bf16.h"
#include "kernels/pack_mt.h"
#include "kernels/quant/quant.h"

typedef enum fmt { FMT_F32, FMT_BF16, FMT_Q8_0, FMT_Q4_0, FMT_Q4_1, FMT_COUNT } fmt;

static const char *const FMT_NAME[] = {"f32", "bf16", "q8_0", "q4_0", "q4_1"};

static pd_dtype fmt_qtype(fmt f) {
    return f == FMT_Q8_0 ? PD_DTYPE_Q8_0 : f == FMT_Q4_0 ? PD_DTYPE_Q4_0 : PD_DTYPE_Q4_1;
}

/* A weight [n, k] (conv: [cout = n, cin, kh, kw], k = cin*kh*kw) and its bias. */
typedef struct shape {
    int n, cin, kh, kw;   /* kh == 0: a GEMM weight with k = cin */
} shape;

static int shape_k(const shape *s) { return s->kh ? s->cin * s->kh * s->kw : s->cin; }

static pd_status pack(fmt f, int nr, const shape *s, const void *w, pd_dtype wdt, const float *bias, pd_pool *pool,
                      pd_packed_w *out) {
    pd_error err;
    const int k = shape_k(s);
    pd_status st;
    if (!s->kh) {
        switch (f) {
        case FMT_F32: st = pd_gemm_pack_mt(out, nr, w, wdt, (size_t)k, s->n, k, bias, PD_DTYPE_F32, pool, &err); break;
        case FMT_BF16:
            st = pd_bf16_gemm_pack_mt(out, nr, w, wdt, (size_t)k, s->n, k, bias, PD_DTYPE_F32, pool, &err);
            break;
        default:
            st = pd_q_gemm_pack_mt(out, nr, fmt_qtype(f), w, wdt, (size_t)k, s->n, k, bias, PD_DTYPE_F32, pool, &err);
            break;
        }
    } else {
        switch (f) {
        case FMT_F32:
            st = pd_conv_pack_mt(out, nr, w, wdt, s->n, s->cin, s->kh, s->kw, bias, PD_DTYPE_F32, pool, &err);
            break;
        case FMT_BF16:
            st = pd_bf16_conv_pack_mt(out, nr, w, wdt, s->n, s->cin, s->kh, s->kw, bias, PD_DTYPE_F32, pool, &err);
            break;
        default:
            st = pd_q_conv_pack_mt(out, nr, fmt_qtype(f), w, wdt, s->n, s->cin, s->kh, s->kw, bias, PD_DTYPE_F32,
                                   pool, &err);
            break;
        }
    }
    CHECK_MSG(st == PD_OK, "%s pack [%d, %d]: %s", FMT_NAME[f], s->n, k, err.msg);
    return st;
}

/* Whether a and b hold the same packed bytes (and fields). */
static bool same_pack(const pd_packed_w *a, const pd_packed_w *b) {
    if (a->n != b->n || a->k != b->k || a->kp != b->kp || a->nr != b->nr || a->dtype != b->dtype || a->qrow != b->qrow)
        return false;
    const size_t n_pad = ((size_t)a->n + (size_t)a->nr - 1) / (size_t)a->nr * (size_t)a->nr;
    if ((a->bias == NULL) != (b->bias == NULL) || (a->bias && memcmp(a->bias, b->bias, n_pad * sizeof(float))))
        return false;
    if (a->dtype == PD_DTYPE_F32) return memcmp(a->data, b->data, n_pad * (size_t)a->k * sizeof(float)) == 0;
    if (a->dtype == PD_DTYPE_BF16) return memcmp(a->bf16, b->bf16, n_pad * (size_t)a->kp * sizeof(uint16_t)) == 0;
    return memcmp(a->q, b->q, a->qrow * (size_t)a->n) == 0;
}

/* The weight (n*k values in [-1, 1), a few exact zeros) in dtype dt and a bias. */
static void *make_weight(const shape *s, pd_dtype dt, float **bias) {
    const size_t count = (size_t)s->n * (size_t)shape_k(s);
    float *f = malloc(count * sizeof(float) + 64);
    *bias = malloc((size_t)s->n * sizeof(float));
    if (!f || !*bias) abort();
    kt_fill(f, count, 1.0f);
    for (size_t i = 0; i < count; i += 97) f[i] = 0.0f;
    kt_fill(*bias, (size_t)s->n, 1.0f);
    if (dt == PD_DTYPE_F32) return f;
    uint16_t *h = malloc(count * sizeof(uint16_t) + 64);
    if (!h) abort();
    if (dt == PD_DTYPE_F16) pd_f32_to_f16_row(h, f, count);
    else pd_f32_to_bf16_row(h, f, count);
    free(f);
    return h;
}

static const shape SHAPES[] = {
    {20, 16384, 0, 0},     /* GEMM: 2 panels of 16 (fewer than 3 threads), a tail of 4 */
    {1, 300000, 0, 0},     /* one row: 1 panel, k % 32 == 0 */
    {900, 301, 0, 0},      /* many panels, n % nr != 0, odd k (bf16 pair, quant padding) */
    {2, 150016, 0, 0},     /* quant: 2 rows for 3 threads */
    {3, 10000, 3, 3},      /* conv 3x3: 1 panel */
    {70, 450, 3, 3},       /* conv 3x3: tails */
    {40, 8000, 1, 1},      /* conv 1x1 */
    {33, 9001, 0, 0},      /* k % 32 != 0 */
    {7, 100, 3, 3},        /* below PD_PACK_MT_MIN: the caller alone */
};

static void test_packers(void) {
    pd_pool *pools[2] = {pd_pool_new(2), pd_pool_new(3)};
    CHECK(pools[0] && pools[1]);
    if (!pools[0] || !pools[1]) return;
    static const pd_dtype wdts[] = {PD_DTYPE_F16, PD_DTYPE_F32, PD_DTYPE_BF16};
    kt_seed(7);
    for (size_t si = 0; si < PD_COUNT(SHAPES); si++) {
        const shape *s = &SHAPES[si];
        const pd_dtype wdt = wdts[si % PD_COUNT(wdts)];
        if (si + 1 < PD_COUNT(SHAPES))
            CHECK((uint64_t)s->n * (uint64_t)shape_k(s) >= PD_PACK_MT_MIN);   /* else no thread runs */
        float *bias = NULL;
        void *w = make_weight(s, wdt, &bias);
        for (int f = 0; f < FMT_COUNT; f++) {
            const int nrs[2] = {f == FMT_F32 ? 64 : f == FMT_BF16 ? 32 : 16, f == FMT_F32 ? 24 : 16};
            for (int ni = 0; ni < 2; ni++) {
                pd_packed_w one;
                if (pack((fmt)f, nrs[ni], s, w, wdt, (si & 1) ? bias : NULL, NULL, &one) != PD_OK) continue;
                for (int pi = 0; pi < 2; pi++) {
                    pd_packed_w many;
                    if (pack((fmt)f, nrs[ni], s, w, wdt, (si & 1) ? bias : NULL, pools[pi], &many) != PD_OK) continue;
                    CHECK_MSG(same_pack(&one, &many), "%s %s [%d, %d (cin %d, %dx%d)] %s nr %d, %d threads: bytes differ",
                              s->kh ? "conv" : "gemm", FMT_NAME[f], s->n, shape_k(s), s->cin, s->kh, s->kw,
                              pd_dtype_name(wdt), nrs[ni], pd_pool_size(pools[pi]));
                    pd_packed_w_free(&many);
                }
                pd_packed_w_free(&one);
            }
        }
        free(w);
        free(bias);
    }
    pd_pool_free(pools[0]);
    pd_pool_free(pools[1]);
}

/* pd_kernels_pack_gemm / _conv pass the pool on, for every table here and weight type. */
static void test_dispatch(void) {
    pd_pool *pool = pd_pool_new(3);
    CHECK(pool);
    if (!pool) return;
    pd_kernels tables[8];
    const int n_tables = kt_tables(tables, 8);
    const shape g = {130, 4096, 0, 0}, c = {64, 640, 3, 3};
    float *bg = NULL, *bc = NULL;
    kt_seed(9);
    void *wg = make_weight(&g, PD_DTYPE_F16, &bg), *wc = make_weight(&c, PD_DTYPE_F16, &bc);
    static const pd_dtype wq[] = {PD_DTYPE_INVALID, PD_DTYPE_Q8_0, PD_DTYPE_Q4_1};
    for (int t = 0; t < n_tables; t++)
        for (size_t q = 0; q < PD_COUNT(wq); q++) {
            pd_kernels kt = tables[t];
            kt.wquant = wq[q];
            pd_packed_w a, b;
            CHECK(pd_kernels_pack_gemm(&kt, &a, wg, PD_DTYPE_F16, (size_t)g.cin, g.n, g.cin, bg, PD_DTYPE_F32, NULL,
                                       NULL) == PD_OK);
            CHECK(pd_kernels_pack_gemm(&kt, &b, wg, PD_DTYPE_F16, (size_t)g.cin, g.n, g.cin, bg, PD_DTYPE_F32, pool,
                                       NULL) == PD_OK);
            CHECK_MSG(same_pack(&a, &b), "%s wquant %s: gemm bytes differ", kt.gemm_name, pd_dtype_name(wq[q]));
            pd_packed_w_free(&a);
            pd_packed_w_free(&b);
            CHECK(pd_kernels_pack_conv(&kt, &a, wc, PD_DTYPE_F16, c.n, c.cin, 3, 3, bc, PD_DTYPE_F32, NULL, NULL) ==
                  PD_OK);
            CHECK(pd_kernels_pack_conv(&kt, &b, wc, PD_DTYPE_F16, c.n, c.cin, 3, 3, bc, PD_DTYPE_F32, pool, NULL) ==
                  PD_OK);
            CHECK_MSG(same_pack(&a, &b), "%s wquant %s: conv bytes differ", kt.gemm_name, pd_dtype_name(wq[q]));
            pd_packed_w_free(&a);
            pd_packed_w_free(&b);
        }
    free(wg);
    free(wc);
    free(bg);
    free(bc);
    pd_pool_free(pool);
}

int main(void) {
    PD_RUN(test_packers);
    PD_RUN(test_dispatch);
    return pd_test_summary();
}
