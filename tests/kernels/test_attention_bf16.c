/*
 * test_attention_bf16.c - bf16 attention: the bf16 reference against the fp32 one, and
 * every variant in attention_bf16.inc against both references.
 *
 * Cases: head_dim in {1, 8, 40, 64, 80, 160, 512} and odd ones (3, 7, 17, 33, 100); n_q !=
 * n_kv; n_kv below, at and above the key blocks (AMX: 128 keys up to head_dim 32, 96 at
 * 40 and 64, 64 at 80 to 160, 32 at 512; AVX512-BF16: 64, 16 at 512) and not a multiple
 * of them; n_q above the query chunks (AMX: 256 rows up to head_dim 64, 160 at 80, 96 at
 * 160, 32 at 512; AVX512-BF16: 256 up to 80, 96 at 160, 32 at 512), also
 * with sub-ranges starting mid-chunk; causal and not;
 * two layouts (heads interleaved in a token row as in NHWC [tokens, heads * head_dim],
 * and planar [heads, tokens, head_dim] with padded rows); q0/q1 and h0/h1 sub-ranges
 * (every other O element, including the padding past head_dim, must keep its sentinel
 * bits); large-magnitude and growing scores (the lazy running max must move and
 * rescale); negative and zero scale; n_kv = 0; misaligned pointers.
 *
 * Errors are max |got - ref| / max |V| (O is a convex combination of V rows, so max |V|
 * is its natural scale; relative to max |ref| would punish the small averages of random
 * V). Tolerances:
 *   - against pd_bf16_attention__ref (same bf16 roundings of Q, K, V and P):
 *     BF16_TIGHT = 4e-3, plus 2 sqrt(head_dim) 2^-24 max_ij |scale| sum_d |q_d k_d| (fp32
 *     score sums; a score error ds moves O by at most 2 ds max |V|). The variant rounds
 *     each weight against its running max, the reference against the global max, so a
 *     weight may land one bf16 step (up to 2^-7 relative) away: the bound is
 *     2^-7 sum_j w_j |v_j - O| <= 2^-7 max |V|; seen: up to ~2.5e-3 (few keys, causal).
 *   - against pd_f32_attention__ref: BF16_LOOSE = 1e-2 (bf16 V and P, 2^-8 each), plus
 *     2 * 2^-8 * 4 max_ij |scale| sqrt(sum_d (q_d k_d)^2): bf16 Q and K move each score
 *     by a random walk of per-product errors <= 2^-8 |q_d k_d| (4 sigma). At scores of
 *     ~1e2 and more this exceeds 1 and only the tight check means anything; seen:
 *     ~3e-3 at scale 1 / sqrt(head_dim), 7.5e-3 at scale 2.
 */
#include "kernel_test_util.h"
#include "kernels/attention/attention.h"

#define BF16_TIGHT 4e-3
#define BF16_LOOSE 1e-2

static const struct {
    pd_isa isa;
    const char *name;
    void (*fn)(const pd_attn_args *args);
    int rows;
} VARIANTS[] = {
#define PD_KERNEL(isa, fn, rows) {isa, #fn, fn, rows},
#include "kernels/attention/attention_bf16.inc"
#undef PD_KERNEL
    {PD_ISA_SCALAR, NULL, NULL, 0},   /* keeps the array non-empty */
};

/* AVX512-level entries need the avx512bf16 extension on top of the level. */
static bool variant_supported(pd_isa isa) {
    pd_cpu_features f;
    pd_cpu_detect(&f);
    return pd_cpu_supports(&f, isa) && (isa != PD_ISA_AVX512 || f.avx512bf16);
}

typedef struct attn_case {
    int heads, n_q, n_kv, dim;
    bool causal;
    bool planar;     /* [heads, tokens, dim] with padded rows, else [tokens, heads * dim] */
    int q0, q1, h0, h1;
    float qk_scale;  /* magnitude of Q and K entries */
    int misalign;
    float scale;     /* 0: 1 / sqrt(dim); use_scale: exactly this */
    bool use_scale;
} attn_case;

typedef struct attn_bufs {
    float *q, *k, *v, *o_init;
    size_t q_ld, q_hs, kv_ld, kv_hs, o_ld, o_hs;
    size_t q_len, kv_len, o_len;
} attn_bufs;

static float case_scale(const attn_case *c) { return c->use_scale ? c->scale : 1.0f / sqrtf((float)c->dim); }

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
        .scale = case_scale(c), .causal = c->causal,
    };
    fn(&g);
    return o;
}

/* Over the computed rows' visible keys: max_ij |scale| * sum_d |q_d k_d| (*abs_sum,
 * bounds the fp32 rounding of a score) and max_ij |scale| * sqrt(sum_d (q_d k_d)^2)
 * (*rms, the scale of a random walk of per-product roundings). */
static void score_sizes(const attn_case *c, const attn_bufs *b, double *abs_sum, double *rms) {
    double mx = 0.0, mr = 0.0, scale = fabs((double)case_scale(c));
    for (int h = c->h0; h < c->h1; h++)
        for (int i = c->q0; i < c->q1; i++) {
            int n_vis = c->causal ? PD_MIN(c->n_kv, i + 1) : c->n_kv;
            for (int j = 0; j < n_vis; j++) {
                double s = 0.0, s2 = 0.0;
                for (int d = 0; d < c->dim; d++) {
                    double p = (double)b->q[h * b->q_hs + i * b->q_ld + d] * b->k[h * b->kv_hs + j * b->kv_ld + d];
                    s += fabs(p);
                    s2 += p * p;
                }
                mx = fmax(mx, s * scale);
                mr = fmax(mr, sqrt(s2) * scale);
            }
        }
    *abs_sum = mx;
    *rms = mr;
}

/* The tolerances of case c (see the file comment). */
static void tolerances(const attn_case *c, const attn_bufs *b, double *tight, double *loose) {
    double abs_sum, rms;
    score_sizes(c, b, &abs_sum, &rms);
    *tight = BF16_TIGHT + 2.0 * sqrt((double)c->dim) * ldexp(1.0, -24) * abs_sum;
    *loose = BF16_LOOSE + 2.0 * ldexp(1.0, -8) * 4.0 * rms;
}

/* Compares the written rows (max |got - ref| / max |V|) and checks everything else
 * kept its bits. Returns the error. */
static double compare(const attn_case *c, const attn_bufs *b, const float *got, const float *ref,
                      double tol, const char *what) {
    size_t bad_outside = 0, worst = 0;
    double vmax = 0.0, err = 0.0;
    for (size_t e = 0; e < b->kv_len; e++) vmax = fmax(vmax, fabs((double)b->v[e]));
    for (size_t e = 0; e < b->o_len; e++) {
        bool inside = false;
        for (int h = c->h0; h < c->h1 && !inside; h++) {
            size_t base = (size_t)h * b->o_hs;
            if (e < base) continue;
            size_t rel = e - base, i = rel / b->o_ld, d = rel % b->o_ld;
            inside = (int)i >= c->q0 && (int)i < c->q1 && (int)d < c->dim;
        }
        if (inside) {
            double d = fabs((double)got[e] - (double)ref[e]);
            if (!(d <= err)) {   /* also catches NaN */
                err = isnan(d) ? INFINITY : d;
                worst = e;
            }
        } else {
            bad_outside += !kt_same_bits(got[e], b->o_init[e]);
        }
    }
    if (vmax > 0) err /= vmax;
    CHECK_MSG(err <= tol,
              "%s H=%d nq=%d nkv=%d dim=%d causal=%d planar=%d q[%d,%d) h[%d,%d) mag=%g: err %.3g > %.3g "
              "(%.9g vs %.9g)",
              what, c->heads, c->n_q, c->n_kv, c->dim, c->causal, c->planar, c->q0, c->q1, c->h0, c->h1,
              c->qk_scale, err, tol, got[worst], ref[worst]);
    CHECK_MSG(bad_outside == 0, "%s nq=%d nkv=%d dim=%d: %zu elements outside the output changed", what,
              c->n_q, c->n_kv, c->dim, bad_outside);
    return err;
}

static double g_worst_tight, g_worst_loose;   /* largest errors seen, for the log */

static void check_case(const attn_case *c) {
    attn_bufs b;
    bufs_make(&b, c);
    float *ref16 = run(pd_bf16_attention__ref, c, &b);
    float *ref32 = run(pd_f32_attention__ref, c, &b);
    double tight, loose;
    tolerances(c, &b, &tight, &loose);
    compare(c, &b, ref16, ref32, loose, "pd_bf16_attention__ref vs fp32 ref");
    for (size_t v = 0; VARIANTS[v].fn; v++) {
        if (!variant_supported(VARIANTS[v].isa)) continue;
        float *got = run(VARIANTS[v].fn, c, &b);
        char what[160];
        snprintf(what, sizeof what, "%s vs bf16 ref", VARIANTS[v].name);
        double e = compare(c, &b, got, ref16, tight, what);
        if (e > g_worst_tight) g_worst_tight = e;
        snprintf(what, sizeof what, "%s vs fp32 ref", VARIANTS[v].name);
        e = compare(c, &b, got, ref32, loose, what);
        if (e > g_worst_loose && c->qk_scale <= 1.0f) g_worst_loose = e;
        kt_free(got, c->misalign);
    }
    kt_free(ref16, c->misalign);
    kt_free(ref32, c->misalign);
    bufs_free(&b, c);
}

static int runnable(void) {
    int n = 0;
    for (size_t v = 0; VARIANTS[v].fn; v++) {
        if (variant_supported(VARIANTS[v].isa)) n++;
        else
            fprintf(stderr, "  SKIP %s: CPU lacks %s%s\n", VARIANTS[v].name, pd_isa_name(VARIANTS[v].isa),
                    VARIANTS[v].isa == PD_ISA_AVX512 ? " with avx512bf16" : "");
    }
    return n;
}

/* The reference alone (runs everywhere): against fp32 on small cases, and exactly
 * against a hand computation when every input is a bf16 value. */
static void test_ref(void) {
    kt_seed(61);
    for (int causal = 0; causal < 2; causal++) {
        attn_case c = {.heads = 2, .n_q = 9, .n_kv = 11, .dim = 7, .causal = causal, .q0 = 0, .q1 = 9,
                       .h0 = 0, .h1 = 2, .qk_scale = 2.0f, .planar = causal};
        check_case(&c);
    }
    /* One query, two keys, bf16-exact inputs: o = (p0 v0 + p1 v1) / (p0 + p1) with
     * p = bf16(exp(s - max)). */
    float q[2] = {1.0f, 0.5f}, k[4] = {1.0f, 0.0f, 0.0f, 1.0f}, v[4] = {1.0f, 2.0f, 3.0f, -4.0f}, o[2];
    pd_attn_args g = {.n_q = 1, .n_kv = 2, .head_dim = 2, .q0 = 0, .q1 = 1, .h0 = 0, .h1 = 1,
                      .q = q, .q_ld = 2, .k = k, .k_ld = 2, .v = v, .v_ld = 2, .o = o, .o_ld = 2,
                      .scale = 1.0f};
    pd_bf16_attention__ref(&g);
    double p1 = exp(-0.5);   /* s = (1, 0.5): p0 = 1, p1 = bf16(e^-0.5) */
    uint32_t bits;
    float f = (float)p1;
    memcpy(&bits, &f, 4);
    bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &bits, 4);
    CHECK_NEAR(o[0], (1.0 + 3.0 * f) / (1.0 + f), 1e-6);
    CHECK_NEAR(o[1], (2.0 - 4.0 * f) / (1.0 + f), 1e-6);
}

static void test_variants_shapes(void) {
    if (!runnable()) PD_SKIP("no bf16 attention variant runs on this CPU");
    static const int dims[] = {1, 8, 40, 64, 80, 160, 512, 3, 7, 17, 33, 100};
    static const int sizes[][2] = {
        {1, 1}, {5, 7}, {7, 5}, {64, 128}, {65, 129}, {13, 96}, {77, 77}, {100, 130}, {3, 257},
        {300, 77}, {40, 32}, {33, 33}, {600, 70}, {20, 300},
    };
    kt_seed(63);
    int idx = 0;
    for (size_t d = 0; d < PD_COUNT(dims); d++)
        for (size_t s = 0; s < PD_COUNT(sizes); s++, idx++) {
            /* Large sizes with large dims only every few cases, to bound the references' time. */
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
    if (!runnable()) PD_SKIP("no bf16 attention variant runs on this CPU");
    kt_seed(65);
    const int ranges[][4] = {
        /* q0, q1, h0, h1 */
        {0, 1, 0, 1}, {3, 9, 1, 3}, {70, 140, 2, 3}, {139, 140, 0, 3}, {10, 10, 0, 3}, {0, 140, 1, 2},
        {17, 100, 0, 3}, {5, 5, 1, 1},
    };
    for (size_t r = 0; r < PD_COUNT(ranges); r++)
        for (int causal = 0; causal < 2; causal++) {
            attn_case c = {.heads = 3, .n_q = 140, .n_kv = 150, .dim = 40, .causal = causal,
                           .planar = r % 2 == 0, .q0 = ranges[r][0], .q1 = ranges[r][1],
                           .h0 = ranges[r][2], .h1 = ranges[r][3], .qk_scale = 1.0f, .misalign = 1};
            check_case(&c);
        }
    /* Sub-ranges that start mid-chunk and cross chunk and key-block boundaries at the
     * other SD head dims (AVX512-BF16 chunks: 256 queries up to 80, 96 at 160, 32 at 512;
     * key blocks of 64, 16 at 512). */
    const int dims[][5] = {
        /* dim, n_q, n_kv, q0, q1 */
        {64, 300, 200, 37, 290}, {80, 300, 130, 5, 290}, {160, 230, 90, 50, 229}, {512, 80, 45, 3, 71},
        {7, 50, 33, 1, 49},
    };
    for (size_t d = 0; d < PD_COUNT(dims); d++)
        for (int causal = 0; causal < 2; causal++) {
            attn_case c = {.heads = 2, .n_q = dims[d][1], .n_kv = dims[d][2], .dim = dims[d][0], .causal = causal,
                           .planar = d % 2 == 1, .q0 = dims[d][3], .q1 = dims[d][4], .h0 = 1, .h1 = 2,
                           .qk_scale = 1.0f, .misalign = causal};
            check_case(&c);
        }
}

/* Scores of magnitude ~1e1..1e4: the running max must keep exp in range, and the lazy
 * max must rescale when a later block's scores are much larger. */
static void test_variants_large_scores(void) {
    if (!runnable()) PD_SKIP("no bf16 attention variant runs on this CPU");
    kt_seed(67);
    const float mags[] = {3.0f, 10.0f, 30.0f, 100.0f};
    for (size_t m = 0; m < PD_COUNT(mags); m++)
        for (int causal = 0; causal < 2; causal++) {
            attn_case c = {.heads = 2, .n_q = 70, .n_kv = 300, .dim = 64, .causal = causal, .q0 = 0,
                           .q1 = 70, .h0 = 0, .h1 = 2, .qk_scale = mags[m], .planar = causal};
            check_case(&c);
        }
    /* Growing scores: key j scaled by (1 + j / 4), so later blocks raise the max and
     * rescale; 20 queries make one pair per block (its O^T of the previous block must
     * finish before the rescale), 40 make two. */
    for (int nq = 20; nq <= 40; nq += 20) {
        attn_case c = {.heads = 1, .n_q = nq, .n_kv = 400, .dim = 16, .q0 = 0, .q1 = nq, .h0 = 0, .h1 = 1,
                       .qk_scale = 1.0f};
        attn_bufs b;
        bufs_make(&b, &c);
        for (int j = 0; j < c.n_kv; j++)
            for (int d = 0; d < c.dim; d++) b.k[j * b.kv_ld + d] = fabsf(b.k[j * b.kv_ld + d]) * (1.0f + j / 4.0f);
        for (int i = 0; i < c.n_q; i++)
            for (int d = 0; d < c.dim; d++) b.q[i * b.q_ld + d] = fabsf(b.q[i * b.q_ld + d]);
        float *ref16 = run(pd_bf16_attention__ref, &c, &b);
        double tight, loose;
        tolerances(&c, &b, &tight, &loose);
        for (size_t v = 0; VARIANTS[v].fn; v++) {
            if (!variant_supported(VARIANTS[v].isa)) continue;
            float *got = run(VARIANTS[v].fn, &c, &b);
            compare(&c, &b, got, ref16, tight, "growing scores");
            kt_free(got, 0);
        }
        kt_free(ref16, 0);
        bufs_free(&b, &c);
    }
}

static void test_variants_scale(void) {
    if (!runnable()) PD_SKIP("no bf16 attention variant runs on this CPU");
    kt_seed(69);
    const float scales[] = {-0.125f, 0.0f, 1e-3f, 2.0f};
    for (size_t s = 0; s < PD_COUNT(scales); s++) {
        attn_case c = {.heads = 2, .n_q = 50, .n_kv = 140, .dim = 24, .causal = s % 2 == 1, .q0 = 0,
                       .q1 = 50, .h0 = 0, .h1 = 2, .qk_scale = 1.0f, .scale = scales[s], .use_scale = true};
        check_case(&c);
    }
}

static void test_variants_no_keys(void) {
    for (size_t v = 0; VARIANTS[v].fn; v++) {
        if (!variant_supported(VARIANTS[v].isa)) continue;
        for (int causal = 0; causal < 2; causal++) {
            attn_case c = {.heads = 2, .n_q = 5, .n_kv = 0, .dim = 8, .q0 = 0, .q1 = 5, .h0 = 0,
                           .h1 = 2, .qk_scale = 1.0f, .causal = causal};
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
}

/* The bf16 kernel table at a level uses the first entry of that level and its rows:
 * AMX, and AVX-512 with avx512bf16. */
static void check_dispatch(pd_isa level) {
    pd_kernels kt;
    pd_kernels_init_prec(&kt, level, PD_PREC_BF16);
    for (size_t v = 0; VARIANTS[v].fn; v++)
        if (VARIANTS[v].isa == level) {
            CHECK_MSG(kt.attention_f32 == VARIANTS[v].fn, "%s level: bf16 table does not use %s",
                      pd_isa_name(level), VARIANTS[v].name);
            CHECK_EQ_INT(kt.attn_rows, VARIANTS[v].rows);
            break;
        }
}

static void test_dispatch(void) {
    if (!variant_supported(PD_ISA_AVX512)) PD_SKIP("CPU lacks avx512 with avx512bf16");
    check_dispatch(PD_ISA_AVX512);
    if (variant_supported(PD_ISA_AMX)) check_dispatch(PD_ISA_AMX);
}

int main(void) {
    PD_RUN(test_ref);
    PD_RUN(test_variants_shapes);
    PD_RUN(test_variants_subranges);
    PD_RUN(test_variants_large_scores);
    PD_RUN(test_variants_scale);
    PD_RUN(test_variants_no_keys);
    PD_RUN(test_dispatch);
    fprintf(stderr, "  largest errors / max |V|: %.3g vs bf16 ref, %.3g vs fp32 ref (|Q|, |K| <= 1)\n", g_worst_tight,
            g_worst_loose);
    return pd_test_summary();
}
