/*
 * test_attention.c - attention: the reference against a direct softmax(QK^T)V, and
 * every variant in attention.inc against the reference.
 *
 * Cases: head_dim in {4, 8, 16, 40, 64, 80, 160, 256} and odd ones; n_q != n_kv; n_kv
 * below, at and above the 64-key block and not a multiple of it; n_q above the
 * 512-query chunk; causal and not; two layouts (heads interleaved in a token row as in
 * NHWC [tokens, heads * head_dim], and planar [heads, tokens, head_dim] with padded
 * rows); q0/q1 and h0/h1 sub-ranges (every other O element must stay untouched,
 * including the padding past head_dim); large-magnitude scores; n_kv = 0;
 * misaligned pointers.
 * Tolerance: max |diff| <= (2e-5 + sqrt(head_dim) * 2^-24 * max_ij scale * sum_d |q_d k_d|)
 * * max |ref| per call. The second term is the fp32 rounding of the scores, which
 * softmax turns into a relative error of the weights; it matters only for the
 * large-score cases (a naive fp32 implementation shows the same error).
 */
#include "kernel_test_util.h"
#include "kernels/attention/attention.h"

#define ATTN_TOL 2e-5

static const struct {
    pd_isa isa;
    const char *name;
    void (*fn)(const pd_attn_args *args);
} VARIANTS[] = {
#define PD_KERNEL(isa, fn) {isa, #fn, fn},
#include "kernels/attention/attention.inc"
#undef PD_KERNEL
};

typedef struct attn_case {
    int heads, n_q, n_kv, dim;
    bool causal;
    bool planar;     /* [heads, tokens, dim] with padded rows, else [tokens, heads * dim] */
    int q0, q1, h0, h1;
    float qk_scale;  /* magnitude of Q and K entries */
    int misalign;
} attn_case;

typedef struct attn_bufs {
    float *q, *k, *v, *o_init;
    size_t q_ld, q_hs, kv_ld, kv_hs, o_ld, o_hs;
    size_t q_len, kv_len, o_len;
} attn_bufs;

static void layout(const attn_case *c, int n, size_t *ld, size_t *hs, size_t *len) {
    if (c->planar) {
        *ld = (size_t)c->dim + 3;
        *hs = *ld * (size_t)n + 5;
        *len = *hs * (size_t)c->heads;
    } else {
        *ld = (size_t)c->dim * (size_t)c->heads + 2;
        *hs = (size_t)c->dim;
        *len = *ld * (size_t)n;
    }
}

static void bufs_make(attn_bufs *b, const attn_case *c) {
    layout(c, c->n_q, &b->q_ld, &b->q_hs, &b->q_len);
    layout(c, c->n_kv, &b->kv_ld, &b->kv_hs, &b->kv_len);
    layout(c, c->n_q, &b->o_ld, &b->o_hs, &b->o_len);
    b->q = kt_alloc(b->q_len, c->misalign);
    b->k = kt_alloc(b->kv_len + 1, c->misalign);
    b->v = kt_alloc(b->kv_len + 1, c->misalign);
    b->o_init = kt_alloc(b->o_len, 0);
    kt_fill(b->q, b->q_len, c->qk_scale);
    kt_fill(b->k, b->kv_len + 1, c->qk_scale);
    kt_fill(b->v, b->kv_len + 1, 1.0f);
    kt_fill_value(b->o_init, b->o_len, KT_SENTINEL);
}

static void bufs_free(attn_bufs *b, const attn_case *c) {
    kt_free(b->q, c->misalign);
    kt_free(b->k, c->misalign);
    kt_free(b->v, c->misalign);
    kt_free(b->o_init, 0);
}

static float *run(void (*fn)(const pd_attn_args *), const attn_case *c, const attn_bufs *b) {
    float *o = kt_alloc(b->o_len, c->misalign);
    memcpy(o, b->o_init, b->o_len * sizeof(float));
    pd_attn_args g = {
        .n_q = c->n_q, .n_kv = c->n_kv, .head_dim = c->dim, .q0 = c->q0, .q1 = c->q1,
        .h0 = c->h0, .h1 = c->h1, .q = b->q, .q_ld = b->q_ld, .q_hs = b->q_hs,
        .k = b->k, .k_ld = b->kv_ld, .k_hs = b->kv_hs, .v = b->v, .v_ld = b->kv_ld,
        .v_hs = b->kv_hs, .o = o, .o_ld = b->o_ld, .o_hs = b->o_hs,
        .scale = 1.0f / sqrtf((float)c->dim), .causal = c->causal,
    };
    fn(&g);
    return o;
}

/* The tolerance for case c (see the file comment). */
static double tolerance(const attn_case *c, const attn_bufs *b) {
    double mx = 0.0, scale = 1.0 / sqrt((double)c->dim);
    for (int h = c->h0; h < c->h1; h++)
        for (int i = c->q0; i < c->q1; i++)
            for (int j = 0; j < c->n_kv; j++) {
                double s = 0.0;
                for (int d = 0; d < c->dim; d++)
                    s += fabs((double)b->q[h * b->q_hs + i * b->q_ld + d] * b->k[h * b->kv_hs + j * b->kv_ld + d]);
                if (s * scale > mx) mx = s * scale;
            }
    return ATTN_TOL + sqrt((double)c->dim) * ldexp(1.0, -24) * mx;
}

/* Compares the written rows and checks everything else kept its bits. */
static void compare(const attn_case *c, const attn_bufs *b, const float *got, const float *ref,
                    double tol, const char *name) {
    size_t n = 0, bad_outside = 0;
    float *g = malloc((b->o_len + 1) * sizeof(float)), *r = malloc((b->o_len + 1) * sizeof(float));
    for (size_t e = 0; e < b->o_len; e++) {
        bool inside = false;
        for (int h = c->h0; h < c->h1 && !inside; h++) {
            size_t base = (size_t)h * b->o_hs;
            if (e < base) continue;
            size_t rel = e - base, i = rel / b->o_ld, d = rel % b->o_ld;
            inside = (int)i >= c->q0 && (int)i < c->q1 && (int)d < c->dim;
        }
        if (inside) {
            g[n] = got[e];
            r[n] = ref[e];
            n++;
        } else {
            bad_outside += !kt_same_bits(got[e], b->o_init[e]);
        }
    }
    size_t worst = 0;
    double err = pd_test_rel_err(g, r, n, &worst);
    CHECK_MSG(err <= tol,
              "%s H=%d nq=%d nkv=%d dim=%d causal=%d planar=%d q[%d,%d) h[%d,%d): rel err %.3g > %.3g (%.9g vs %.9g)",
              name, c->heads, c->n_q, c->n_kv, c->dim, c->causal, c->planar, c->q0, c->q1, c->h0,
              c->h1, err, tol, n ? g[worst] : 0.0, n ? r[worst] : 0.0);
    CHECK_MSG(bad_outside == 0, "%s nq=%d nkv=%d dim=%d: %zu elements outside the output changed",
              name, c->n_q, c->n_kv, c->dim, bad_outside);
    free(g);
    free(r);
}

static void check_case(const attn_case *c) {
    attn_bufs b;
    bufs_make(&b, c);
    float *ref = run(pd_f32_attention__ref, c, &b);
    double tol = tolerance(c, &b);
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) {
        if (!kt_isa_supported(VARIANTS[v].isa)) continue;
        float *got = run(VARIANTS[v].fn, c, &b);
        compare(c, &b, got, ref, tol, VARIANTS[v].name);
        kt_free(got, c->misalign);
    }
    kt_free(ref, c->misalign);
    bufs_free(&b, c);
}

static int runnable(void) {
    int n = 0;
    for (size_t v = 1; v < PD_COUNT(VARIANTS); v++) {
        if (kt_isa_supported(VARIANTS[v].isa)) n++;
        else fprintf(stderr, "  SKIP %s: CPU lacks %s\n", VARIANTS[v].name, pd_isa_name(VARIANTS[v].isa));
    }
    return n;
}

/* The reference against an explicit score matrix (small sizes). */
static void test_ref_direct(void) {
    kt_seed(51);
    for (int causal = 0; causal < 2; causal++) {
        attn_case c = {.heads = 2, .n_q = 7, .n_kv = 9, .dim = 5, .causal = causal, .q0 = 0,
                       .q1 = 7, .h0 = 0, .h1 = 2, .qk_scale = 2.0f};
        attn_bufs b;
        bufs_make(&b, &c);
        float *got = run(pd_f32_attention__ref, &c, &b);
        float *want = kt_alloc(b.o_len, 0);
        memcpy(want, b.o_init, b.o_len * sizeof(float));
        double scale = 1.0 / sqrt(5.0);
        for (int h = 0; h < c.heads; h++)
            for (int i = 0; i < c.n_q; i++) {
                double s[9], mx = -INFINITY, sum = 0;
                int nv = causal ? PD_MIN(c.n_kv, i + 1) : c.n_kv;
                for (int j = 0; j < nv; j++) {
                    s[j] = 0;
                    for (int d = 0; d < c.dim; d++)
                        s[j] += (double)b.q[h * b.q_hs + i * b.q_ld + d] * b.k[h * b.kv_hs + j * b.kv_ld + d];
                    s[j] *= scale;
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < nv; j++) sum += exp(s[j] - mx);
                for (int d = 0; d < c.dim; d++) {
                    double o = 0;
                    for (int j = 0; j < nv; j++) o += exp(s[j] - mx) / sum * b.v[h * b.kv_hs + j * b.kv_ld + d];
                    want[h * b.o_hs + i * b.o_ld + d] = (float)o;
                }
            }
        compare(&c, &b, got, want, 1e-6, "ref vs direct");
        kt_free(got, 0);
        kt_free(want, 0);
        bufs_free(&b, &c);
    }
}

static void test_variants_shapes(void) {
    if (!runnable()) PD_SKIP("no SIMD attention variant runs on this CPU");
    static const int dims[] = {4, 8, 16, 40, 64, 80, 160, 256, 1, 3, 17, 33};
    static const int sizes[][2] = {
        {1, 1}, {5, 7}, {7, 5}, {64, 64}, {65, 63}, {13, 64}, {77, 77}, {100, 130}, {3, 200},
        {300, 77}, {40, 129}, {600, 70},
    };
    kt_seed(53);
    int idx = 0;
    for (size_t d = 0; d < PD_COUNT(dims); d++)
        for (size_t s = 0; s < PD_COUNT(sizes); s++, idx++) {
            /* Large sizes with large dims only every few cases, to bound the reference's time. */
            if (dims[d] >= 160 && sizes[s][0] * sizes[s][1] > 10000 && idx % 3) continue;
            int heads = 1 + idx % 3;
            attn_case c = {.heads = heads, .n_q = sizes[s][0], .n_kv = sizes[s][1], .dim = dims[d],
                           .causal = idx % 2 == 1, .planar = (idx / 2) % 2 == 1, .q0 = 0,
                           .q1 = sizes[s][0], .h0 = 0, .h1 = heads, .qk_scale = 1.0f,
                           .misalign = (idx / 4) % 2};
            check_case(&c);
        }
}

static void test_variants_subranges(void) {
    if (!runnable()) PD_SKIP("no SIMD attention variant runs on this CPU");
    kt_seed(55);
    const int ranges[][4] = {
        /* q0, q1, h0, h1 */
        {0, 1, 0, 1}, {3, 9, 1, 3}, {70, 140, 2, 3}, {139, 140, 0, 3}, {10, 10, 0, 3}, {0, 140, 1, 2},
    };
    for (size_t r = 0; r < PD_COUNT(ranges); r++)
        for (int causal = 0; causal < 2; causal++) {
            attn_case c = {.heads = 3, .n_q = 140, .n_kv = 100, .dim = 40, .causal = causal,
                           .planar = r % 2 == 0, .q0 = ranges[r][0], .q1 = ranges[r][1],
                           .h0 = ranges[r][2], .h1 = ranges[r][3], .qk_scale = 1.0f, .misalign = 1};
            check_case(&c);
        }
}

/* Scores of magnitude ~1e3..1e4: the running max must keep exp in range. */
static void test_variants_large_scores(void) {
    if (!runnable()) PD_SKIP("no SIMD attention variant runs on this CPU");
    kt_seed(57);
    const float mags[] = {10.0f, 30.0f, 100.0f};
    for (size_t m = 0; m < PD_COUNT(mags); m++)
        for (int causal = 0; causal < 2; causal++) {
            attn_case c = {.heads = 2, .n_q = 70, .n_kv = 150, .dim = 64, .causal = causal,
                           .q0 = 0, .q1 = 70, .h0 = 0, .h1 = 2, .qk_scale = mags[m]};
            check_case(&c);
        }
}

static void test_variants_no_keys(void) {
    for (size_t v = 0; v < PD_COUNT(VARIANTS); v++) {
        if (!kt_isa_supported(VARIANTS[v].isa)) continue;
        attn_case c = {.heads = 2, .n_q = 5, .n_kv = 0, .dim = 8, .q0 = 0, .q1 = 5, .h0 = 0,
                       .h1 = 2, .qk_scale = 1.0f};
        attn_bufs b;
        bufs_make(&b, &c);
        float *o = run(VARIANTS[v].fn, &c, &b);
        int nonzero = 0;
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 5; i++)
                for (int d = 0; d < 8; d++) nonzero += o[h * b.o_hs + i * b.o_ld + d] != 0.0f;
        CHECK_MSG(nonzero == 0, "%s: n_kv = 0 left %d non-zero outputs", VARIANTS[v].name, nonzero);
        kt_free(o, 0);
        bufs_free(&b, &c);
    }
}

int main(void) {
    PD_RUN(test_ref_direct);
    PD_RUN(test_variants_shapes);
    PD_RUN(test_variants_subranges);
    PD_RUN(test_variants_large_scores);
    PD_RUN(test_variants_no_keys);
    return pd_test_summary();
}
