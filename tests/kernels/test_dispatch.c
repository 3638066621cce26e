/*
 * test_dispatch.c - CPU feature detection, ISA names and the kernel dispatch policy.
 *
 * The policy is tested on synthetic feature sets (pd_kernels_init_for), so fallbacks
 * are exercised whatever this CPU has; pd_kernels_init is tested with PD_ISA forced to
 * each level (setenv), expecting that level when this CPU supports it and the next
 * supported one below otherwise. Every table built is also run (a small GEMM, layer
 * norm, softmax, activation and attention against the reference table).
 */
#include "kernel_test_util.h"
#include "kernels/dispatch.h"
#include "kernels/gemm/gemm.h"

static void test_isa_names(void) {
    CHECK(strcmp(pd_isa_name(PD_ISA_SCALAR), "scalar") == 0);
    CHECK(strcmp(pd_isa_name(PD_ISA_AVX512), "avx512") == 0);
    CHECK(strcmp(pd_isa_name((pd_isa)99), "unknown") == 0);
    for (int i = PD_ISA_AUTO; i <= PD_ISA_NEON; i++) CHECK_EQ_INT(pd_isa_from_name(pd_isa_name((pd_isa)i)), i);
    CHECK_EQ_INT(pd_isa_from_name("AVX2"), PD_ISA_AVX2);
    CHECK_EQ_INT(pd_isa_from_name("Amx"), PD_ISA_AMX);
    CHECK_EQ_INT(pd_isa_from_name(NULL), PD_ISA_AUTO);
    CHECK_EQ_INT(pd_isa_from_name(""), PD_ISA_AUTO);
    CHECK_EQ_INT(pd_isa_from_name("sse9"), -1);
    CHECK_EQ_INT(pd_isa_from_name("avx512-but-much-longer-than-any-name"), -1);
}

static void test_cpu_detect(void) {
    pd_cpu_features a, b;
    pd_cpu_detect(&a);
    pd_cpu_detect(&b);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    CHECK(pd_cpu_supports(&a, PD_ISA_SCALAR));
    CHECK(pd_cpu_supports(&a, pd_cpu_best_isa(&a)));
    /* Implications the detection must respect. */
    if (a.avx2) CHECK(a.avx);
    if (a.avx512bw || a.avx512vl || a.avx512dq) CHECK(a.avx512f);
    if (a.amx_granted) CHECK(a.amx_tile);
    char buf[512];
    pd_cpu_describe(buf, sizeof buf);
    CHECK_STR_CONTAINS(buf, "best:");
    CHECK_STR_CONTAINS(buf, pd_isa_name(pd_cpu_best_isa(&a)));
    fprintf(stderr, "  cpu: %s\n", buf);
    char tiny[8];
    pd_cpu_describe(tiny, sizeof tiny);
    CHECK(strlen(tiny) < sizeof tiny);
    pd_cpu_describe(NULL, 0);
}

static bool has(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

static const struct { pd_isa isa; const char *name; int nr; } GEMM[] = {
#define PD_KERNEL(isa, fn, mr, nr) {isa, #fn, nr},
#include "kernels/gemm/gemm.inc"
#undef PD_KERNEL
};

/* The GEMM variant dispatch must pick for ISA isa: the first one listed. */
static int first_gemm(pd_isa isa) {
    for (size_t i = 0; i < PD_COUNT(GEMM); i++)
        if (GEMM[i].isa == isa) return (int)i;
    return -1;
}

static void test_policy_synthetic(void) {
    pd_kernels kt;
    pd_cpu_features none = {0};
    for (int w = PD_ISA_AUTO; w <= PD_ISA_NEON; w++)
        CHECK_EQ_INT(pd_kernels_init_for(&kt, (pd_isa)w, &none), PD_ISA_SCALAR);
    CHECK(has(kt.gemm_name, "__ref") && kt.gemm_nr == PD_GEMM_REF_NR);

    pd_cpu_features avx2 = {.sse42 = true, .avx = true, .avx2 = true, .fma = true, .f16c = true};
    CHECK_EQ_INT(pd_kernels_init_for(&kt, PD_ISA_AUTO, &avx2), PD_ISA_AVX2);
    CHECK_EQ_INT(pd_kernels_init_for(&kt, PD_ISA_AMX, &avx2), PD_ISA_AVX2);
    CHECK_EQ_INT(pd_kernels_init_for(&kt, PD_ISA_AVX512, &avx2), PD_ISA_AVX2);
    CHECK_EQ_INT(pd_kernels_init_for(&kt, PD_ISA_SCALAR, &avx2), PD_ISA_SCALAR);
    CHECK_EQ_INT(pd_kernels_init_for(&kt, PD_ISA_NEON, &avx2), PD_ISA_SCALAR);

    pd_cpu_features no_fma = avx2;
    no_fma.fma = false;
    CHECK_EQ_INT(pd_kernels_init_for(&kt, PD_ISA_AVX2, &no_fma), PD_ISA_SCALAR);

    pd_cpu_features avx512 = avx2;
    avx512.avx512f = avx512.avx512bw = avx512.avx512dq = avx512.avx512vl = true;
    CHECK_EQ_INT(pd_kernels_init_for(&kt, PD_ISA_AUTO, &avx512), PD_ISA_AVX512);
    pd_cpu_features no_bw = avx512;
    no_bw.avx512bw = false;
    CHECK_EQ_INT(pd_kernels_init_for(&kt, PD_ISA_AVX512, &no_bw), PD_ISA_AVX2);

    /* AMX needs the OS grant: without it, AVX-512. */
    pd_cpu_features amx = avx512;
    amx.avx512bf16 = amx.amx_tile = amx.amx_bf16 = amx.amx_int8 = true;
    CHECK_EQ_INT(pd_kernels_init_for(&kt, PD_ISA_AUTO, &amx), PD_ISA_AVX512);
    amx.amx_granted = true;
    CHECK_EQ_INT(pd_kernels_init_for(&kt, PD_ISA_AUTO, &amx), PD_ISA_AMX);
    CHECK_EQ_INT(kt.isa, PD_ISA_AMX);
#if defined(__x86_64__)
    /* AMX tables run the AVX-512 fp32 kernels: the first AVX-512 GEMM of gemm.inc. */
    int g5 = first_gemm(PD_ISA_AVX512), g2 = first_gemm(PD_ISA_AVX2);
    CHECK(g5 >= 0 && g2 >= 0);
    if (g5 >= 0 && g2 >= 0) {
        CHECK(strcmp(kt.gemm_name, GEMM[g5].name) == 0);
        CHECK_EQ_INT(kt.gemm_nr, GEMM[g5].nr);
        CHECK_EQ_INT(pd_kernels_init_for(&kt, PD_ISA_AVX2, &amx), PD_ISA_AVX2);
        CHECK(strcmp(kt.gemm_name, GEMM[g2].name) == 0);
        CHECK_EQ_INT(kt.gemm_nr, GEMM[g2].nr);
    }
#endif

#if defined(__x86_64__)
    /* AUTO precision: bf16 where it is faster than fp32 (AMX; AVX512-BF16 on AMD only). */
    CHECK_EQ_INT(pd_kernels_init_prec_for(&kt, PD_ISA_AUTO, PD_PREC_AUTO, &amx), PD_ISA_AMX);
    CHECK_EQ_INT(kt.prec, PD_PREC_BF16);
    pd_cpu_features bf16 = avx512;
    bf16.avx512bf16 = true;
    CHECK_EQ_INT(pd_kernels_init_prec_for(&kt, PD_ISA_AUTO, PD_PREC_AUTO, &bf16), PD_ISA_AVX512);
    CHECK_EQ_INT(kt.prec, PD_PREC_FP32);
    bf16.vendor_amd = true;
    CHECK_EQ_INT(pd_kernels_init_prec_for(&kt, PD_ISA_AUTO, PD_PREC_AUTO, &bf16), PD_ISA_AVX512);
    CHECK_EQ_INT(kt.prec, PD_PREC_BF16);
    CHECK_EQ_INT(pd_kernels_init_prec_for(&kt, PD_ISA_AUTO, PD_PREC_FP32, &bf16), PD_ISA_AVX512);
    CHECK_EQ_INT(kt.prec, PD_PREC_FP32);
    CHECK_EQ_INT(pd_kernels_init_prec_for(&kt, PD_ISA_AVX2, PD_PREC_AUTO, &bf16), PD_ISA_AVX2);
    CHECK_EQ_INT(kt.prec, PD_PREC_FP32);   /* no bf16 kernels below AVX-512 */
    CHECK_EQ_INT(pd_kernels_init_prec_for(&kt, PD_ISA_AUTO, PD_PREC_AUTO, &avx512), PD_ISA_AVX512);
    CHECK_EQ_INT(kt.prec, PD_PREC_FP32);
#endif

    pd_cpu_features neon = {.neon = true};
    CHECK_EQ_INT(pd_kernels_init_for(&kt, PD_ISA_AUTO, &neon), PD_ISA_NEON);
    CHECK_EQ_INT(pd_kernels_init_for(&kt, PD_ISA_AVX2, &neon), PD_ISA_SCALAR);
    CHECK(kt.gemm_f32 && kt.attention_f32 && kt.layernorm_f32 && kt.softmax_f32 && kt.act_f32);
}

/* Runs each op of kt on small inputs and compares with the reference table. */
static void smoke(const pd_kernels *kt) {
    pd_kernels ref;
    pd_kernels_init_ref(&ref);
    kt_seed(61);
    enum { M = 9, N = 40, K = 33 };
    float a[M * K], w[N * K], bias[N], c1[M * N], c2[M * N];
    kt_fill(a, M * K, 1.0f);
    kt_fill(w, N * K, 1.0f);
    kt_fill(bias, N, 1.0f);
    pd_packed_w p1, p2;
    CHECK(pd_gemm_pack(&p1, kt->gemm_nr, w, PD_DTYPE_F32, K, N, K, bias, PD_DTYPE_F32, NULL) == PD_OK);
    CHECK(pd_gemm_pack(&p2, ref.gemm_nr, w, PD_DTYPE_F32, K, N, K, bias, PD_DTYPE_F32, NULL) == PD_OK);
    pd_gemm_args g = {.m = M, .n0 = 0, .n1 = N, .a = a, .lda = K, .w = &p1, .c = c1, .ldc = N,
                      .act = PD_ACT_GELU};
    kt->gemm_f32(&g);
    g.w = &p2;
    g.c = c2;
    ref.gemm_f32(&g);
    CHECK_MSG(pd_test_rel_err(c1, c2, M * N, NULL) <= 1e-5, "%s gemm", kt->gemm_name);
    pd_packed_w_free(&p1);
    pd_packed_w_free(&p2);

    float x1[3 * 50], x2[3 * 50];
    kt_fill(x1, 150, 3.0f);
    memcpy(x2, x1, sizeof x1);
    kt->layernorm_f32(x1, 50, x1, 50, 3, 50, NULL, NULL, 1e-5f);
    ref.layernorm_f32(x2, 50, x2, 50, 3, 50, NULL, NULL, 1e-5f);
    CHECK(pd_test_rel_err(x1, x2, 150, NULL) <= 1e-5);
    kt->softmax_f32(x1, 50, 3, 50);
    ref.softmax_f32(x2, 50, 3, 50);
    CHECK(pd_test_rel_err(x1, x2, 150, NULL) <= 1e-5);
    kt->act_f32(x1, x1, 150, PD_ACT_SILU);
    ref.act_f32(x2, x2, 150, PD_ACT_SILU);
    CHECK(pd_test_rel_err(x1, x2, 150, NULL) <= 1e-5);

    float q[20 * 16], o1[20 * 16], o2[20 * 16];
    kt_fill(q, 320, 1.0f);
    pd_attn_args at = {.n_q = 20, .n_kv = 20, .head_dim = 16, .q0 = 0, .q1 = 20, .h0 = 0, .h1 = 1,
                       .q = q, .q_ld = 16, .k = q, .k_ld = 16, .v = q, .v_ld = 16, .o = o1,
                       .o_ld = 16, .scale = 0.25f, .causal = true};
    kt->attention_f32(&at);
    at.o = o2;
    ref.attention_f32(&at);
    CHECK(pd_test_rel_err(o1, o2, 320, NULL) <= 2e-5);
}

static void test_init_env(void) {
    pd_cpu_features f;
    pd_cpu_detect(&f);
    pd_kernels kt;
    const char *old = getenv("PD_ISA");
    char saved[64] = "";
    if (old) snprintf(saved, sizeof saved, "%s", old);

    unsetenv("PD_ISA");
    CHECK_EQ_INT(pd_kernels_init(&kt, PD_ISA_AUTO), pd_cpu_best_isa(&f));
    smoke(&kt);
    const pd_isa levels[] = {PD_ISA_SCALAR, PD_ISA_AVX2, PD_ISA_AVX512, PD_ISA_AMX, PD_ISA_NEON};
    for (size_t i = 0; i < PD_COUNT(levels); i++) {
        pd_isa want = levels[i], expect = want;
        pd_kernels_init_for(&kt, want, &f);
        expect = kt.isa;  /* the supported level at or below want */
        if (pd_cpu_supports(&f, want)) CHECK_EQ_INT(expect, want);
        setenv("PD_ISA", pd_isa_name(want), 1);
        pd_isa got = pd_kernels_init(&kt, PD_ISA_AUTO);
        CHECK_MSG(got == expect, "PD_ISA=%s: got %s, want %s", pd_isa_name(want), pd_isa_name(got),
                  pd_isa_name(expect));
        CHECK_EQ_INT(kt.isa, got);
        fprintf(stderr, "  PD_ISA=%s -> %s (%s, nr %d)\n", pd_isa_name(want), pd_isa_name(got),
                kt.gemm_name, kt.gemm_nr);
        smoke(&kt);
    }
    /* Case-insensitive; unknown names are ignored; an explicit level ignores the env. */
    setenv("PD_ISA", "SCALAR", 1);
    CHECK_EQ_INT(pd_kernels_init(&kt, PD_ISA_AUTO), PD_ISA_SCALAR);
    CHECK_EQ_INT(pd_kernels_init(&kt, PD_ISA_AVX2), pd_cpu_supports(&f, PD_ISA_AVX2) ? PD_ISA_AVX2 : PD_ISA_SCALAR);
    setenv("PD_ISA", "bogus", 1);
    CHECK_EQ_INT(pd_kernels_init(&kt, PD_ISA_AUTO), pd_cpu_best_isa(&f));
    setenv("PD_ISA", "auto", 1);
    CHECK_EQ_INT(pd_kernels_init(&kt, PD_ISA_AUTO), pd_cpu_best_isa(&f));

    if (old) setenv("PD_ISA", saved, 1);
    else unsetenv("PD_ISA");
}

static void test_init_ref(void) {
    pd_kernels kt;
    pd_kernels_init_ref(&kt);
    CHECK_EQ_INT(kt.isa, PD_ISA_SCALAR);
    CHECK_EQ_INT(kt.gemm_nr, PD_GEMM_REF_NR);
    CHECK(has(kt.gemm_name, "pd_f32_gemm__ref"));
    smoke(&kt);
}

int main(void) {
    PD_RUN(test_isa_names);
    PD_RUN(test_cpu_detect);
    PD_RUN(test_policy_synthetic);
    PD_RUN(test_init_ref);
    PD_RUN(test_init_env);
    return pd_test_summary();
}
