/*
 * bench_kernels.c - every kernel variant (gemm.inc, conv.inc, attention.inc,
 * layernorm.inc, softmax.inc, act.inc, groupnorm.inc, geglu.inc) on real model shapes,
 * with warmup and best-of-N timing.
 *
 *   bench_kernels [--isa NAME] [--op gemm|gemm_bf16|gemm_q|conv|conv_bf16|attention|attention_bf16|
 *                 layernorm|softmax|act|groupnorm|geglu|all] [--quick] [--threads N]
 *                 [--filter SUBSTR] [--cpu-clock] [shapes.txt ...]
 *
 * GEMM and conv shapes come from the .txt files in bench/shapes (default:
 * PD_SOURCE_DIR/bench/shapes), one per line, '#' starts a comment:
 *   "name M N K"                       a GEMM C[M, N] = A[M, K] W[N, K]^T
 *   "conv name H W CIN COUT K STRIDE [PAD_T PAD_L PAD_B PAD_R]"
 *                                      a K x K conv of an H x W x CIN NHWC image
 *                                      (padding K/2 on every side unless given)
 * Attention, norm and activation shapes are the SD 1.5 / SDXL / CLIP ones listed below.
 * Reported: time of the best run, GFLOP/s (2*M*N*K per GEMM; 2*OH*OW*COUT*K*K*CIN per
 * conv, padding taps included; 4*n_q*n_kv*d per head for attention, visible pairs only
 * when causal) and % of this machine's peak for that ISA, measured here with a
 * register-resident FMA loop on one core (x threads). Convs split output rows across
 * threads. Norms and activations report GB/s (bytes read + written once).
 * gemm_bf16 / conv_bf16 (gemm_bf16.inc: AMX and AVX512-BF16 variants, plus the AMX nr = 16
 * GEMM) run on the same GEMM / conv shapes and report % of the measured single-core bf16
 * peak of their ISA: a register-resident _tile_dpbf16ps loop (16 x 16 x 32 x 2 FLOPs per
 * instruction) for AMX, a vdpbf16ps loop (16 x 2 x 2 FLOPs) for AVX512-BF16; --isa amx or
 * --isa avx512 selects one of the two.
 * gemm_q runs pd_q_gemm (quant/quant.h: dequantize chunks of panels into a per-thread
 * scratch, then the table's GEMM) for Q8_0/Q4_0/Q4_1 weights next to the same table's
 * GEMM on its ordinary fp32/bf16 pack, on a few SD 1.5 shapes, for the fp32 table and
 * (with native bf16) the bf16 table of each level; % peak against the table's fp32 or
 * bf16 peak. It also times the table's dequant_panels over the whole weight, chunk by
 * chunk into one PD_Q_CHUNK_BYTES buffer (as pd_q_gemm), and reports GB/s of panels
 * written (and Gelem/s), one thread.
 * attention_bf16 runs the attention_bf16.inc variants on the attention shapes, split
 * into (head, rows-block) tasks as pd_nn_attention does, against the same bf16 peak of
 * their ISA (AMX or vdpbf16ps).
 * Not a test: no thresholds, not run by ctest.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"
#include "base/threadpool.h"
#include "kernels/act/act.h"
#include "kernels/act/geglu.h"
#include "kernels/attention/attention.h"
#include "kernels/conv/conv.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_bf16.h"
#include "kernels/norm/groupnorm.h"
#include "kernels/norm/norm.h"
#include "kernels/quant/quant.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#ifndef PD_SOURCE_DIR
#define PD_SOURCE_DIR "."
#endif

/* ---- variants ----------------------------------------------------------------------- */

static const struct { pd_isa isa; const char *name; void (*fn)(const pd_gemm_args *); int mr, nr; } GEMM[] = {
#define PD_KERNEL(isa, fn, mr, nr) {isa, #fn, fn, mr, nr},
#include "kernels/gemm/gemm.inc"
#undef PD_KERNEL
};
static const struct { pd_isa isa; const char *name; void (*fn)(const pd_conv_args *); int mr, nr; } CONV[] = {
#define PD_KERNEL(isa, fn, mr, nr) {isa, #fn, fn, mr, nr},
#include "kernels/conv/conv.inc"
#undef PD_KERNEL
};
static const struct {
    pd_isa isa;
    const char *name;
    void (*fn)(float *, const float *, int, int, int, int, int, const float *, const float *, float, bool);
} GROUPNORM[] = {
#define PD_KERNEL(isa, fn) {isa, #fn, fn},
#include "kernels/norm/groupnorm.inc"
#undef PD_KERNEL
};
static const struct { pd_isa isa; const char *name; void (*fn)(float *, size_t, const float *, size_t, int, int); } GEGLU[] = {
#define PD_KERNEL(isa, fn) {isa, #fn, fn},
#include "kernels/act/geglu.inc"
#undef PD_KERNEL
};
static const struct { pd_isa isa; const char *name; void (*fn)(const pd_attn_args *); } ATTN[] = {
#define PD_KERNEL(isa, fn) {isa, #fn, fn},
#include "kernels/attention/attention.inc"
#undef PD_KERNEL
};
static const struct {
    pd_isa isa;
    const char *name;
    void (*fn)(float *, size_t, const float *, size_t, int, int, const float *, const float *, float);
} LAYERNORM[] = {
#define PD_KERNEL(isa, fn) {isa, #fn, fn},
#include "kernels/norm/layernorm.inc"
#undef PD_KERNEL
};
static const struct { pd_isa isa; const char *name; void (*fn)(float *, size_t, int, int); } SOFTMAX[] = {
#define PD_KERNEL(isa, fn) {isa, #fn, fn},
#include "kernels/norm/softmax.inc"
#undef PD_KERNEL
};
static const struct { pd_isa isa; const char *name; void (*fn)(float *, const float *, size_t, pd_act); } ACT[] = {
#define PD_KERNEL(isa, fn) {isa, #fn, fn},
#include "kernels/act/act.inc"
#undef PD_KERNEL
};

/* ---- options and timing ---------------------------------------------------------------- */

typedef struct opts {
    int isa;            /* -1: all supported */
    const char *op;     /* "all" or one op */
    const char *filter; /* substring of shape names, or NULL */
    bool amx_asked;     /* --isa amx (o.isa then selects the AVX-512 fp32 kernels) */
    bool quick;
    int threads;
    pd_pool *pool;
    pd_cpu_features cpu;
} opts;

/* CLOCK_MONOTONIC, or the thread's CPU time with --cpu-clock (single thread only):
 * on a shared, loaded machine it leaves out the time the scheduler gave to others. */
static clockid_t g_clock = CLOCK_MONOTONIC;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(g_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best time of one call over N samples; each sample runs enough calls for ~5 ms. Short
 * samples and many of them make the minimum robust on a shared, noisy machine. */
static double time_best(void (*fn)(void *), void *arg, const opts *o) {
    fn(arg);  /* warmup */
    double t0 = now_s();
    fn(arg);
    double one = now_s() - t0;
    int reps = one > 0.005 ? 1 : (int)(0.005 / (one > 1e-7 ? one : 1e-7)) + 1;
    int samples = one > 0.2 ? 2 : one > 0.05 ? 4 : o->quick ? 5 : 15;
    double best = one;
    for (int s = 0; s < samples; s++) {
        t0 = now_s();
        for (int r = 0; r < reps; r++) fn(arg);
        double t = (now_s() - t0) / reps;
        if (t < best) best = t;
    }
    return best;
}

static float *alloc_rand(size_t n) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 64 + 63) & ~(size_t)63);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    uint32_t s = 0x9e3779b9u ^ (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)((double)(s >> 8) / 8388608.0 - 1.0);
    }
    return p;
}

#include "peak.h"

static double g_peak[PD_ISA_NEON + 1];  /* single-core fp32 FLOP/s per ISA (0: unknown) */
static double g_peak_amx_bf16;           /* single-core AMX bf16 FLOP/s (0: unknown) */
static double g_peak_avx512_bf16;        /* single-core vdpbf16ps FLOP/s (0: unknown) */

static bool want_op(const opts *o, const char *op);

static void measure_peaks(const opts *o) {
    g_peak[PD_ISA_SCALAR] = best_of(peak_scalar);
#if defined(__x86_64__)
    if (pd_cpu_supports(&o->cpu, PD_ISA_AVX2)) g_peak[PD_ISA_AVX2] = best_of(peak_avx2);
    if (pd_cpu_supports(&o->cpu, PD_ISA_AVX512)) g_peak[PD_ISA_AVX512] = best_of(peak_avx512);
    g_peak[PD_ISA_AMX] = g_peak[PD_ISA_AVX512];  /* fp32 kernels of an AMX table */
    const bool bf16_ops = want_op(o, "gemm_bf16") || want_op(o, "conv_bf16") || want_op(o, "gemm_q");
    if (pd_cpu_supports(&o->cpu, PD_ISA_AMX) && bf16_ops) g_peak_amx_bf16 = best_of(peak_amx_bf16);
    if (pd_cpu_supports(&o->cpu, PD_ISA_AVX512) && o->cpu.avx512bf16 && bf16_ops)
        g_peak_avx512_bf16 = best_of(peak_avx512_bf16);
#else
    (void)o;
#endif
    printf("# measured single-core fp32 peak:");
    for (int i = PD_ISA_SCALAR; i <= PD_ISA_AVX512; i++)
        if (g_peak[i] > 0) printf(" %s %.1f GFLOP/s", pd_isa_name((pd_isa)i), g_peak[i] * 1e-9);
    printf("\n");
    if (g_peak_amx_bf16 > 0) printf("# measured single-core AMX bf16 peak: %.1f GFLOP/s\n", g_peak_amx_bf16 * 1e-9);
    if (g_peak_avx512_bf16 > 0)
        printf("# measured single-core AVX512-BF16 (vdpbf16ps) peak: %.1f GFLOP/s\n", g_peak_avx512_bf16 * 1e-9);
}

static bool want_isa(const opts *o, pd_isa isa) {
    if (!pd_cpu_supports(&o->cpu, isa)) return false;
    if (o->isa >= 0) return isa == (pd_isa)o->isa;
    return isa != PD_ISA_SCALAR;   /* the references are slow: only on request */
}

static bool want_op(const opts *o, const char *op) { return !strcmp(o->op, "all") || !strcmp(o->op, op); }

static bool want_shape(const opts *o, const char *name) { return !o->filter || strstr(name, o->filter); }

static void report_peak(const char *op, const char *kernel, const char *shape, const char *dims, double t,
                        double flops, double peak) {
    printf("%-9s %-28s %-24s %-22s %9.3f ms %8.1f GFLOP/s", op, kernel, shape, dims, t * 1e3,
           flops / t * 1e-9);
    if (peak > 0) printf(" %5.1f%% peak", 100.0 * flops / t / peak);
    printf("\n");
    fflush(stdout);
}

static void report(const char *op, const char *kernel, const char *shape, const char *dims, double t,
                   double flops, pd_isa isa, const opts *o) {
    report_peak(op, kernel, shape, dims, t, flops, g_peak[isa] * o->threads);
}

/* ---- GEMM ----------------------------------------------------------------------------- */

typedef struct gemm_run {
    void (*fn)(const pd_gemm_args *);
    pd_gemm_args args;
    pd_pool *pool;
} gemm_run;

/* Splits columns by whole panels across the pool's threads. */
static void gemm_task(void *arg, int ith, int nth) {
    const gemm_run *r = arg;
    int nr = r->args.w->nr, panels = (r->args.n1 + nr - 1) / nr;
    int p0 = panels * ith / nth, p1 = panels * (ith + 1) / nth;
    if (p0 >= p1) return;
    pd_gemm_args a = r->args;
    a.n0 = p0 * nr;
    a.n1 = p1 * nr < r->args.n1 ? p1 * nr : r->args.n1;
    r->fn(&a);
}

static void gemm_call(void *arg) {
    gemm_run *r = arg;
    pd_pool_run(r->pool, gemm_task, r);
}

/* ---- bf16 GEMM and conv (AMX, AVX512-BF16) ------------------------------------------------ */

/* gemm_bf16.inc (the scalar references only with --isa scalar) plus the AMX nr = 16
 * GEMM, which no table uses. % peak: of the measured AMX or vdpbf16ps peak. GEMMs split
 * columns by panels across threads (gemm_task), convs output rows (conv_task). */
typedef struct bf16_variant {
    pd_isa isa;
    const char *gemm_name, *conv_name;
    void (*gemm)(const pd_gemm_args *);
    void (*conv)(const pd_conv_args *);
    int nr;
} bf16_variant;

static const bf16_variant BF16_VARIANTS[] = {
#define PD_KERNEL(isa, gemm, conv, nr) {isa, #gemm, #conv, gemm, conv, nr},
#include "kernels/gemm/gemm_bf16.inc"
#undef PD_KERNEL
#if defined(__x86_64__)
    {PD_ISA_AMX, "pd_bf16_gemm_32x16__amx", NULL, pd_bf16_gemm_32x16__amx, NULL, 16},
#endif
};

/* --isa amx: the AMX entries; --isa avx512: the AVX512-BF16 ones; no --isa: both. */
static bool want_bf16(const opts *o, pd_isa isa) {
    if (isa == PD_ISA_AMX && !pd_cpu_supports(&o->cpu, PD_ISA_AMX)) return false;
    if (isa == PD_ISA_AVX512 && !(pd_cpu_supports(&o->cpu, PD_ISA_AVX512) && o->cpu.avx512bf16)) return false;
    if (o->amx_asked) return isa == PD_ISA_AMX;
    if (o->isa >= 0) return isa == (pd_isa)o->isa;
    return isa != PD_ISA_SCALAR;
}

static double bf16_peak(pd_isa isa) {
    return isa == PD_ISA_AMX ? g_peak_amx_bf16 : isa == PD_ISA_AVX512 ? g_peak_avx512_bf16 : 0.0;
}

static void bench_gemm_bf16_shape(const opts *o, const char *name, int m, int n, int k, const float *a,
                                  const float *w, const float *bias, float *c, const char *dims) {
    for (size_t v = 0; v < PD_COUNT(BF16_VARIANTS); v++) {
        const bf16_variant *bv = &BF16_VARIANTS[v];
        if (!want_bf16(o, bv->isa)) continue;
        pd_packed_w pw;
        pd_error err;
        if (pd_bf16_gemm_pack(&pw, bv->nr, w, PD_DTYPE_F32, (size_t)k, n, k, bias, PD_DTYPE_F32, &err) != PD_OK) {
            fprintf(stderr, "pack: %s\n", err.msg);
            continue;
        }
        gemm_run r = {bv->gemm,
                      {.m = m, .n0 = 0, .n1 = n, .a = a, .lda = (size_t)k, .w = &pw, .c = c,
                       .ldc = (size_t)n, .act = PD_ACT_NONE},
                      o->pool};
        double t = time_best(gemm_call, &r, o);
        report_peak("gemm_bf16", bv->gemm_name, name, dims, t, 2.0 * m * n * k, bf16_peak(bv->isa) * o->threads);
        pd_packed_w_free(&pw);
    }
}

static void bench_gemm_shape(const opts *o, const char *name, int m, int n, int k) {
    float *a = alloc_rand((size_t)m * k), *w = alloc_rand((size_t)n * k), *bias = alloc_rand((size_t)n);
    float *c = alloc_rand((size_t)m * n);
    char dims[64];
    snprintf(dims, sizeof dims, "%dx%dx%d", m, n, k);
    for (size_t v = 0; v < PD_COUNT(GEMM); v++) {
        if (!want_op(o, "gemm") || !want_isa(o, GEMM[v].isa)) continue;
        pd_packed_w pw;
        pd_error err;
        if (pd_gemm_pack(&pw, GEMM[v].nr, w, PD_DTYPE_F32, (size_t)k, n, k, bias, PD_DTYPE_F32, &err) != PD_OK) {
            fprintf(stderr, "pack: %s\n", err.msg);
            continue;
        }
        gemm_run r = {GEMM[v].fn,
                      {.m = m, .n0 = 0, .n1 = n, .a = a, .lda = (size_t)k, .w = &pw, .c = c,
                       .ldc = (size_t)n, .act = PD_ACT_NONE},
                      o->pool};
        double t = time_best(gemm_call, &r, o);
        report("gemm", GEMM[v].name, name, dims, t, 2.0 * m * n * k, GEMM[v].isa, o);
        pd_packed_w_free(&pw);
    }
    if (want_op(o, "gemm_bf16")) bench_gemm_bf16_shape(o, name, m, n, k, a, w, bias, c, dims);
    free(a);
    free(w);
    free(bias);
    free(c);
}

/* ---- conv ----------------------------------------------------------------------------- */

typedef struct conv_run {
    void (*fn)(const pd_conv_args *);
    pd_conv_args args;
    pd_pool *pool;
} conv_run;

/* Splits output rows across the pool's threads. */
static void conv_task(void *arg, int ith, int nth) {
    const conv_run *r = arg;
    pd_conv_args a = r->args;
    a.oy0 = r->args.oh * ith / nth;
    a.oy1 = r->args.oh * (ith + 1) / nth;
    if (a.oy0 < a.oy1) r->fn(&a);
}

static void conv_call(void *arg) {
    conv_run *r = arg;
    pd_pool_run(r->pool, conv_task, r);
}

static void bench_conv_shape(const opts *o, const char *name, int h, int w, int cin, int cout, int k,
                             int stride, const int pad[4]) {
    const int oh = (h + pad[0] + pad[2] - k) / stride + 1, ow = (w + pad[1] + pad[3] - k) / stride + 1;
    if (oh <= 0 || ow <= 0) return;
    const size_t kk = (size_t)k * k * cin;
    float *in = alloc_rand((size_t)h * w * cin), *wt = alloc_rand((size_t)cout * kk);
    float *bias = alloc_rand((size_t)cout), *out = alloc_rand((size_t)oh * ow * cout);
    char dims[96];
    snprintf(dims, sizeof dims, "%dx%dx%d>%d k%ds%d", h, w, cin, cout, k, stride);
    const double flops = 2.0 * oh * ow * cout * (double)kk;
    for (size_t v = 0; v < PD_COUNT(CONV) && want_op(o, "conv"); v++) {
        if (!want_isa(o, CONV[v].isa)) continue;
        pd_packed_w pw;
        pd_error err;
        if (pd_conv_pack(&pw, CONV[v].nr, wt, PD_DTYPE_F32, cout, cin, k, k, bias, PD_DTYPE_F32, &err) != PD_OK) {
            fprintf(stderr, "pack: %s\n", err.msg);
            continue;
        }
        conv_run r = {CONV[v].fn,
                      {.ih = h, .iw = w, .cin = cin, .oh = oh, .ow = ow, .kh = k, .kw = k, .stride = stride,
                       .pad_t = pad[0], .pad_l = pad[1], .oy0 = 0, .oy1 = oh, .n0 = 0, .n1 = cout,
                       .in = in, .w = &pw, .out = out, .act = PD_ACT_NONE},
                      o->pool};
        double t = time_best(conv_call, &r, o);
        report("conv", CONV[v].name, name, dims, t, flops, CONV[v].isa, o);
        pd_packed_w_free(&pw);
    }
    for (size_t v = 0; v < PD_COUNT(BF16_VARIANTS) && want_op(o, "conv_bf16"); v++) {
        const bf16_variant *bv = &BF16_VARIANTS[v];
        if (!bv->conv || !want_bf16(o, bv->isa)) continue;
        pd_packed_w pw;
        pd_error err;
        if (pd_bf16_conv_pack(&pw, bv->nr, wt, PD_DTYPE_F32, cout, cin, k, k, bias, PD_DTYPE_F32, &err) != PD_OK) {
            fprintf(stderr, "pack: %s\n", err.msg);
            continue;
        }
        conv_run r = {bv->conv,
                      {.ih = h, .iw = w, .cin = cin, .oh = oh, .ow = ow, .kh = k, .kw = k, .stride = stride,
                       .pad_t = pad[0], .pad_l = pad[1], .oy0 = 0, .oy1 = oh, .n0 = 0, .n1 = cout,
                       .in = in, .w = &pw, .out = out, .act = PD_ACT_NONE},
                      o->pool};
        double t = time_best(conv_call, &r, o);
        report_peak("conv_bf16", bv->conv_name, name, dims, t, flops, bf16_peak(bv->isa) * o->threads);
        pd_packed_w_free(&pw);
    }
    free(in);
    free(wt);
    free(bias);
    free(out);
}

/* One "conv name H W CIN COUT K STRIDE [PAD_T PAD_L PAD_B PAD_R]" line; false if it is
 * not a conv line. */
static bool conv_line(const char *line, const opts *o) {
    char name[64];
    int h, w, cin, cout, k, stride, pad[4];
    int n = sscanf(line, " conv %63s %d %d %d %d %d %d %d %d %d %d", name, &h, &w, &cin, &cout, &k, &stride,
                   &pad[0], &pad[1], &pad[2], &pad[3]);
    if (n < 7) return false;
    if (n < 11) pad[0] = pad[1] = pad[2] = pad[3] = k / 2;
    if ((!want_op(o, "conv") && !want_op(o, "conv_bf16")) || !want_shape(o, name)) return true;
    if (h <= 0 || w <= 0 || cin <= 0 || cout <= 0 || k <= 0 || stride <= 0) return true;
    if (o->quick && 2.0 * h * w * cout * k * k * (double)cin / (stride * stride) > 2e10) return true;
    bench_conv_shape(o, name, h, w, cin, cout, k, stride, pad);
    return true;
}

static int load_shapes(const char *path, const opts *o) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    printf("# shapes: %s\n", path);
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        if (conv_line(line, o)) continue;
        if (!want_op(o, "gemm") && !want_op(o, "gemm_bf16")) continue;
        char name[64];
        int m, n, k;
        if (sscanf(line, "%63s %d %d %d", name, &m, &n, &k) != 4) continue;
        if (m <= 0 || n <= 0 || k <= 0 || !want_shape(o, name)) continue;
        /* --quick: skip the very large shapes (> 20 GFLOP) */
        if (o->quick && 2.0 * m * n * k > 2e10) continue;
        bench_gemm_shape(o, name, m, n, k);
    }
    fclose(f);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int bench_gemm_dir(const opts *o, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "cannot open %s (pass shape files as arguments)\n", dir);
        return 1;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".txt")) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rc |= load_shapes(path, o);
        free(names[i]);
    }
    return rc;
}

/* ---- attention ------------------------------------------------------------------------- */

typedef struct attn_shape {
    const char *name;
    int heads, n_q, n_kv, dim;
    bool causal;
} attn_shape;

static const attn_shape ATTN_SHAPES[] = {
    {"clip_l_self", 12, 77, 77, 64, true},          /* CLIP-L text encoder, 12 heads x 64 */
    {"clip_bigg_self", 20, 77, 77, 64, true},       /* OpenCLIP bigG, 20 heads x 64 */
    {"sd15_64_self", 8, 4096, 4096, 40, false},     /* SD 1.5 UNet 64x64 latent, C=320 */
    {"sd15_64_cross", 8, 4096, 77, 40, false},
    {"sd15_32_self", 8, 1024, 1024, 80, false},     /* 32x32, C=640 */
    {"sd15_32_cross", 8, 1024, 77, 80, false},
    {"sd15_16_self", 8, 256, 256, 160, false},      /* 16x16, C=1280 */
    {"sd15_16_cross", 8, 256, 77, 160, false},
    {"sdxl_64_self", 10, 4096, 4096, 64, false},    /* SDXL 1024px: 64x64, C=640, 10 heads */
    {"sdxl_32_self", 20, 1024, 1024, 64, false},    /* 32x32, C=1280, 20 heads */
    {"vae_64_self", 1, 4096, 4096, 512, false},     /* VAE mid-block: 1 head x 512 (> 256: skipped) */
};

typedef struct attn_run {
    void (*fn)(const pd_attn_args *);
    pd_attn_args args;
    pd_pool *pool;
} attn_run;

static void attn_task(void *arg, int ith, int nth) {
    const attn_run *r = arg;
    pd_attn_args a = r->args;
    int heads = a.h1 - a.h0;
    if (heads >= nth) {
        a.h0 = r->args.h0 + heads * ith / nth;
        a.h1 = r->args.h0 + heads * (ith + 1) / nth;
    } else {
        a.q0 = r->args.n_q * ith / nth;
        a.q1 = r->args.n_q * (ith + 1) / nth;
    }
    r->fn(&a);
}

static void attn_call(void *arg) {
    attn_run *r = arg;
    pd_pool_run(r->pool, attn_task, r);
}

static void bench_attention(const opts *o) {
    for (size_t s = 0; s < PD_COUNT(ATTN_SHAPES); s++) {
        const attn_shape *sh = &ATTN_SHAPES[s];
        if (sh->dim > PD_ATTN_MAX_HEAD_DIM || !want_shape(o, sh->name)) continue;
        /* Q, K, V, O as [tokens, heads * dim] (NHWC); --quick runs 1 head. */
        int heads = o->quick ? 1 : sh->heads;
        size_t ld = (size_t)sh->heads * sh->dim;
        float *q = alloc_rand((size_t)sh->n_q * ld), *k = alloc_rand((size_t)sh->n_kv * ld);
        float *v = alloc_rand((size_t)sh->n_kv * ld), *out = alloc_rand((size_t)sh->n_q * ld);
        double pairs = sh->causal ? 0.5 * sh->n_q * (sh->n_q + 1.0) : (double)sh->n_q * sh->n_kv;
        double flops = 4.0 * pairs * sh->dim * heads;
        char dims[64];
        snprintf(dims, sizeof dims, "%dh %dx%d d%d%s", heads, sh->n_q, sh->n_kv, sh->dim, sh->causal ? " c" : "");
        for (size_t vi = 0; vi < PD_COUNT(ATTN); vi++) {
            if (!want_isa(o, ATTN[vi].isa)) continue;
            attn_run r = {ATTN[vi].fn,
                          {.n_q = sh->n_q, .n_kv = sh->n_kv, .head_dim = sh->dim, .q0 = 0,
                           .q1 = sh->n_q, .h0 = 0, .h1 = heads, .q = q, .q_ld = ld,
                           .q_hs = (size_t)sh->dim, .k = k, .k_ld = ld, .k_hs = (size_t)sh->dim,
                           .v = v, .v_ld = ld, .v_hs = (size_t)sh->dim, .o = out, .o_ld = ld,
                           .o_hs = (size_t)sh->dim, .scale = 1.0f / sqrtf((float)sh->dim),
                           .causal = sh->causal},
                          o->pool};
            double t = time_best(attn_call, &r, o);
            report("attention", ATTN[vi].name, sh->name, dims, t, flops, ATTN[vi].isa, o);
        }
        free(q);
        free(k);
        free(v);
        free(out);
    }
}

/* ---- attention_bf16 (attention_bf16.inc) ------------------------------------------------
 * The bf16 variants on the attention shapes, split like pd_nn_attention: tasks of (head,
 * block of the variant's rows queries), contiguous runs of tasks per thread. FLOPs as
 * for attention (head_dim unpadded); % of the measured bf16 peak of the variant's ISA
 * (AMX or vdpbf16ps) x threads. */

#if defined(__x86_64__)
static const struct { pd_isa isa; const char *name; void (*fn)(const pd_attn_args *); int rows; } ATTN_BF16[] = {
#define PD_KERNEL(isa, fn, rows) {isa, #fn, fn, rows},
#include "kernels/attention/attention_bf16.inc"
#undef PD_KERNEL
    {PD_ISA_SCALAR, NULL, NULL, 0},
};

typedef struct attn_bf16_run {
    void (*fn)(const pd_attn_args *);
    pd_attn_args args;
    int rows, n_qb, n_tasks;
    pd_pool *pool;
} attn_bf16_run;

static void attn_bf16_task(void *arg, int ith, int nth) {
    const attn_bf16_run *r = arg;
    int t0 = (int)((int64_t)r->n_tasks * ith / nth), t1 = (int)((int64_t)r->n_tasks * (ith + 1) / nth);
    for (int t = t0; t < t1; t++) {
        pd_attn_args a = r->args;
        a.h0 = t / r->n_qb;
        a.h1 = a.h0 + 1;
        a.q0 = t % r->n_qb * r->rows;
        a.q1 = PD_MIN(a.q0 + r->rows, a.n_q);
        r->fn(&a);
    }
}

static void attn_bf16_call(void *arg) {
    attn_bf16_run *r = arg;
    pd_pool_run(r->pool, attn_bf16_task, r);
}

/* AVX512-level bf16 variants need avx512bf16 on top of the level. */
static bool attn_bf16_runs(const opts *o, pd_isa isa) {
    return pd_cpu_supports(&o->cpu, isa) && (isa != PD_ISA_AVX512 || o->cpu.avx512bf16) &&
           (o->isa < 0 || isa == (pd_isa)o->isa);
}

static void bench_attention_bf16(const opts *o) {
    for (size_t vi = 0; ATTN_BF16[vi].fn; vi++) {
        if (!attn_bf16_runs(o, ATTN_BF16[vi].isa)) continue;
        if (ATTN_BF16[vi].isa == PD_ISA_AMX && g_peak_amx_bf16 <= 0) {
            g_peak_amx_bf16 = best_of(peak_amx_bf16);
            printf("# measured single-core AMX bf16 peak: %.1f GFLOP/s\n", g_peak_amx_bf16 * 1e-9);
        }
        if (ATTN_BF16[vi].isa == PD_ISA_AVX512 && g_peak_avx512_bf16 <= 0) {
            g_peak_avx512_bf16 = best_of(peak_avx512_bf16);
            printf("# measured single-core AVX512-BF16 (vdpbf16ps) peak: %.1f GFLOP/s\n", g_peak_avx512_bf16 * 1e-9);
        }
    }
    for (size_t s = 0; s < PD_COUNT(ATTN_SHAPES); s++) {
        const attn_shape *sh = &ATTN_SHAPES[s];
        if (!want_shape(o, sh->name)) continue;
        int heads = o->quick ? 1 : sh->heads;
        size_t ld = (size_t)sh->heads * sh->dim;
        float *q = alloc_rand((size_t)sh->n_q * ld), *k = alloc_rand((size_t)sh->n_kv * ld);
        float *v = alloc_rand((size_t)sh->n_kv * ld), *out = alloc_rand((size_t)sh->n_q * ld);
        double pairs = sh->causal ? 0.5 * sh->n_q * (sh->n_q + 1.0) : (double)sh->n_q * sh->n_kv;
        double flops = 4.0 * pairs * sh->dim * heads;
        char dims[64];
        snprintf(dims, sizeof dims, "%dh %dx%d d%d%s", heads, sh->n_q, sh->n_kv, sh->dim, sh->causal ? " c" : "");
        for (size_t vi = 0; ATTN_BF16[vi].fn; vi++) {
            if (!attn_bf16_runs(o, ATTN_BF16[vi].isa)) continue;
            const int rows = ATTN_BF16[vi].rows, n_qb = (sh->n_q + rows - 1) / rows;
            attn_bf16_run r = {ATTN_BF16[vi].fn,
                               {.n_q = sh->n_q, .n_kv = sh->n_kv, .head_dim = sh->dim, .q0 = 0,
                                .q1 = sh->n_q, .h0 = 0, .h1 = heads, .q = q, .q_ld = ld,
                                .q_hs = (size_t)sh->dim, .k = k, .k_ld = ld, .k_hs = (size_t)sh->dim,
                                .v = v, .v_ld = ld, .v_hs = (size_t)sh->dim, .o = out, .o_ld = ld,
                                .o_hs = (size_t)sh->dim, .scale = 1.0f / sqrtf((float)sh->dim),
                                .causal = sh->causal},
                               rows, n_qb, heads * n_qb, o->pool};
            double t = time_best(attn_bf16_call, &r, o);
            report_peak("attn_bf16", ATTN_BF16[vi].name, sh->name, dims, t, flops, bf16_peak(ATTN_BF16[vi].isa) * o->threads);
        }
        free(q);
        free(k);
        free(v);
        free(out);
    }
}
#else
static void bench_attention_bf16(const opts *o) { (void)o; }
#endif

/* ---- layer norm, softmax, activations (single thread, GB/s) ----------------------------- */

typedef struct row_shape {
    const char *name;
    int rows, cols;
} row_shape;

static const row_shape LN_SHAPES[] = {
    {"clip_l", 77, 768}, {"clip_bigg", 77, 1280}, {"sd15_64", 4096, 320}, {"sd15_16", 256, 1280},
};
static const row_shape SM_SHAPES[] = {
    {"clip_scores", 12 * 77, 77}, {"sd15_64_scores", 64, 4096}, {"sd15_cross", 4096, 77},
};
static const row_shape ACT_SHAPES[] = {
    {"geglu_64", 4096, 1280}, {"silu_64x64x320", 4096, 320}, {"clip_fc1", 77, 3072},
};

typedef struct row_run {
    int kind;   /* 0 layernorm, 1 softmax, 2 act */
    size_t v;
    pd_act act;
    float *x, *y, *gamma, *beta;
    int rows, cols;
} row_run;

static void row_call(void *arg) {
    row_run *r = arg;
    if (r->kind == 0)
        LAYERNORM[r->v].fn(r->y, (size_t)r->cols, r->x, (size_t)r->cols, r->rows, r->cols, r->gamma, r->beta, 1e-5f);
    else if (r->kind == 1)
        SOFTMAX[r->v].fn(r->y, (size_t)r->cols, r->rows, r->cols);
    else
        ACT[r->v].fn(r->y, r->x, (size_t)r->rows * r->cols, r->act);
}

static void report_bw(const char *op, const char *kernel, const char *shape, int rows, int cols, double t,
                      double bytes) {
    char dims[64];
    snprintf(dims, sizeof dims, "%dx%d", rows, cols);
    printf("%-9s %-28s %-24s %-22s %9.3f ms %8.1f GB/s %8.1f Melem/s\n", op, kernel, shape, dims,
           t * 1e3, bytes / t * 1e-9, rows * (double)cols / t * 1e-6);
    fflush(stdout);
}

static void bench_rows(const opts *o, int kind) {
    static const char *const OPS[] = {"layernorm", "softmax", "act"};
    const row_shape *shapes = kind == 0 ? LN_SHAPES : kind == 1 ? SM_SHAPES : ACT_SHAPES;
    size_t n_shapes = kind == 0 ? PD_COUNT(LN_SHAPES) : kind == 1 ? PD_COUNT(SM_SHAPES) : PD_COUNT(ACT_SHAPES);
    size_t n_var = kind == 0 ? PD_COUNT(LAYERNORM) : kind == 1 ? PD_COUNT(SOFTMAX) : PD_COUNT(ACT);
    for (size_t s = 0; s < n_shapes; s++) {
        if (!want_shape(o, shapes[s].name)) continue;
        size_t n = (size_t)shapes[s].rows * shapes[s].cols;
        row_run r = {kind, 0, PD_ACT_NONE, alloc_rand(n), alloc_rand(n), alloc_rand((size_t)shapes[s].cols),
                     alloc_rand((size_t)shapes[s].cols), shapes[s].rows, shapes[s].cols};
        for (size_t v = 0; v < n_var; v++) {
            pd_isa isa = kind == 0 ? LAYERNORM[v].isa : kind == 1 ? SOFTMAX[v].isa : ACT[v].isa;
            const char *name = kind == 0 ? LAYERNORM[v].name : kind == 1 ? SOFTMAX[v].name : ACT[v].name;
            if (!want_isa(o, isa)) continue;
            r.v = v;
            for (int a = kind == 2 ? 1 : 0; a < (kind == 2 ? 4 : 1); a++) {
                static const char *const ACT_NAMES[] = {"", "gelu", "quick_gelu", "silu"};
                char label[96];
                snprintf(label, sizeof label, "%s%s%s", shapes[s].name, kind == 2 ? " " : "", ACT_NAMES[a]);
                r.act = (pd_act)a;
                if (kind == 1) memcpy(r.y, r.x, n * sizeof(float));  /* softmax runs in place on y */
                double t = time_best(row_call, &r, o);
                report_bw(OPS[kind], name, label, shapes[s].rows, shapes[s].cols, t, 2.0 * n * sizeof(float));
            }
        }
        free(r.x);
        free(r.y);
        free(r.gamma);
        free(r.beta);
    }
}

/* ---- group norm and GEGLU (single thread, GB/s) ---------------------------------------- */

typedef struct gn_shape {
    const char *name;
    int hw, c, groups;
} gn_shape;

static const gn_shape GN_SHAPES[] = {
    {"sd15_unet_64", 64 * 64, 320, 32},   {"sd15_unet_32", 32 * 32, 640, 32},
    {"sd15_unet_16", 16 * 16, 1280, 32},  {"sd15_unet_8_cat", 8 * 8, 2560, 32},
    {"sd15_vae_64", 64 * 64, 512, 32},    {"sd15_vae_128", 128 * 128, 512, 32},
    {"sd15_vae_256", 256 * 256, 256, 32}, {"sd15_vae_512", 512 * 512, 128, 32},
};

typedef struct gn_run {
    size_t v;
    const gn_shape *sh;
    float *x, *y, *gamma, *beta;
    bool silu;
} gn_run;

static void gn_call(void *arg) {
    gn_run *r = arg;
    GROUPNORM[r->v].fn(r->y, r->x, r->sh->hw, r->sh->c, r->sh->groups, 0, r->sh->groups, r->gamma, r->beta,
                       1e-6f, r->silu);
}

static void bench_groupnorm(const opts *o) {
    for (size_t s = 0; s < PD_COUNT(GN_SHAPES); s++) {
        const gn_shape *sh = &GN_SHAPES[s];
        if (!want_shape(o, sh->name)) continue;
        const size_t n = (size_t)sh->hw * sh->c;
        gn_run r = {0, sh, alloc_rand(n), alloc_rand(n), alloc_rand((size_t)sh->c), alloc_rand((size_t)sh->c), false};
        for (size_t v = 0; v < PD_COUNT(GROUPNORM); v++) {
            if (!want_isa(o, GROUPNORM[v].isa)) continue;
            r.v = v;
            for (int silu = 0; silu < 2; silu++) {
                char label[96];
                snprintf(label, sizeof label, "%s%s", sh->name, silu ? " silu" : "");
                r.silu = silu;
                double t = time_best(gn_call, &r, o);
                report_bw("groupnorm", GROUPNORM[v].name, label, sh->hw, sh->c, t, 2.0 * n * sizeof(float));
            }
        }
        free(r.x);
        free(r.y);
        free(r.gamma);
        free(r.beta);
    }
}

static const row_shape GEGLU_SHAPES[] = {   /* rows x cols of the output (input 2 x cols) */
    {"sd15_64", 4096, 1280}, {"sd15_32", 1024, 2560}, {"sd15_16", 256, 5120}, {"sdxl_32", 1024, 5120},
};

typedef struct geglu_run {
    size_t v;
    float *x, *y;
    int rows, cols;
} geglu_run;

static void geglu_call(void *arg) {
    geglu_run *r = arg;
    GEGLU[r->v].fn(r->y, (size_t)r->cols, r->x, 2 * (size_t)r->cols, r->rows, r->cols);
}

static void bench_geglu(const opts *o) {
    for (size_t s = 0; s < PD_COUNT(GEGLU_SHAPES); s++) {
        const row_shape *sh = &GEGLU_SHAPES[s];
        if (!want_shape(o, sh->name)) continue;
        const size_t n = (size_t)sh->rows * sh->cols;
        geglu_run r = {0, alloc_rand(2 * n), alloc_rand(n), sh->rows, sh->cols};
        for (size_t v = 0; v < PD_COUNT(GEGLU); v++) {
            if (!want_isa(o, GEGLU[v].isa)) continue;
            r.v = v;
            double t = time_best(geglu_call, &r, o);
            report_bw("geglu", GEGLU[v].name, sh->name, sh->rows, sh->cols, t, 3.0 * n * sizeof(float));
        }
        free(r.x);
        free(r.y);
    }
}

/* ---- quantized GEMM (pd_q_gemm) ------------------------------------------------------------ */

typedef struct q_run {
    const pd_kernels *kt;
    pd_gemm_args args;
    char *scratch;      /* per thread: slice bytes each */
    size_t slice;
    pd_pool *pool;
} q_run;

static void q_task(void *arg, int ith, int nth) {
    const q_run *r = arg;
    const int nr = r->args.w->nr, panels = (r->args.n1 + nr - 1) / nr;
    const int p0 = panels * ith / nth, p1 = panels * (ith + 1) / nth;
    if (p0 >= p1) return;
    pd_gemm_args a = r->args;
    a.n0 = p0 * nr;
    a.n1 = p1 * nr < r->args.n1 ? p1 * nr : r->args.n1;
    if (pd_dtype_is_quant(a.w->dtype)) pd_q_gemm(r->kt, &a, r->scratch + r->slice * (size_t)ith, r->slice);
    else r->kt->gemm_f32(&a);
}

static void q_call(void *arg) {
    q_run *r = arg;
    pd_pool_run(r->pool, q_task, r);
}

/* The whole weight, chunk by chunk into one L2-sized buffer (as pd_q_gemm does). */
typedef struct dq_run {
    const pd_kernels *kt;
    const pd_packed_w *q;
    void *dst;
    int per_chunk;
} dq_run;

static void dq_call(void *arg) {
    const dq_run *r = arg;
    const int panels = (r->q->n + r->q->nr - 1) / r->q->nr;
    for (int p = 0; p < panels; p += r->per_chunk)
        r->kt->dequant_panels(r->q, p, p + r->per_chunk < panels ? p + r->per_chunk : panels, r->dst);
}

static void bench_gemm_q_table(const opts *o, const pd_kernels *kt) {
    static const struct { const char *name; int m, n, k; } shapes[] = {
        {"sd15_attn_proj_64x64", 4096, 320, 320},
        {"sd15_conv3x3_16x16_640", 1024, 640, 5760},   /* a 3x3 conv as its im2col GEMM */
        {"clip_l_proj", 77, 768, 768},
    };
    static const pd_dtype qts[] = {PD_DTYPE_Q8_0, PD_DTYPE_Q4_0, PD_DTYPE_Q4_1};
    const bool bf16 = kt->wtype == PD_DTYPE_BF16;
    const double peak = (bf16 ? bf16_peak(kt->isa == PD_ISA_AMX ? PD_ISA_AMX : PD_ISA_AVX512) : g_peak[kt->isa]) *
                        o->threads;
    for (size_t si = 0; si < PD_COUNT(shapes); si++) {
        const int m = shapes[si].m, n = shapes[si].n, k = shapes[si].k;
        if (!want_shape(o, shapes[si].name)) continue;
        float *a = alloc_rand((size_t)m * k), *w = alloc_rand((size_t)n * k), *bias = alloc_rand((size_t)n);
        float *c = alloc_rand((size_t)m * n);
        char dims[64], kname[96];
        snprintf(dims, sizeof dims, "%dx%dx%d", m, n, k);
        const size_t slice = (PD_Q_CHUNK_BYTES + pd_q_scratch_bytes(kt, k) + 63) / 64 * 64;
        char *scratch = aligned_alloc(64, slice * (size_t)o->threads);
        pd_packed_w pw;
        pd_error err;
        if (!scratch || pd_kernels_pack_gemm(kt, &pw, w, PD_DTYPE_F32, (size_t)k, n, k, bias, PD_DTYPE_F32, NULL, &err) != PD_OK) {
            fprintf(stderr, "gemm_q: pack failed\n");
            exit(1);
        }
        q_run r = {kt, {.m = m, .n0 = 0, .n1 = n, .a = a, .lda = (size_t)k, .w = &pw, .c = c, .ldc = (size_t)n},
                   scratch, slice, o->pool};
        double t = time_best(q_call, &r, o);
        snprintf(kname, sizeof kname, "%s %s", bf16 ? "bf16" : "f32", kt->gemm_name);
        report_peak("gemm_q", kname, shapes[si].name, dims, t, 2.0 * m * n * k, peak);
        pd_packed_w_free(&pw);
        for (size_t qi = 0; qi < PD_COUNT(qts); qi++) {
            pd_packed_w qw;
            if (pd_kernels_pack_gemm_q(kt, &qw, qts[qi], w, PD_DTYPE_F32, (size_t)k, n, k, bias, PD_DTYPE_F32, &err) != PD_OK) {
                fprintf(stderr, "gemm_q: %s\n", err.msg);
                exit(1);
            }
            r.args.w = &qw;
            t = time_best(q_call, &r, o);
            snprintf(kname, sizeof kname, "%s %s", pd_dtype_name(qts[qi]), kt->gemm_name);
            report_peak("gemm_q", kname, shapes[si].name, dims, t, 2.0 * m * n * k, peak);
            if (si == 1) {   /* dequant throughput on the big weight, one thread */
                const size_t panels = ((size_t)n + (size_t)kt->gemm_nr - 1) / (size_t)kt->gemm_nr;
                const size_t panel_bytes = (size_t)kt->gemm_nr * (bf16 ? (size_t)qw.kp * 2 : (size_t)k * 4);
                const size_t bytes = panels * panel_bytes;
                const int per = (int)(PD_Q_CHUNK_BYTES / panel_bytes > 0 ? PD_Q_CHUNK_BYTES / panel_bytes : 1);
                dq_run d = {kt, &qw, aligned_alloc(64, ((size_t)per * panel_bytes + 63) / 64 * 64), per};
                if (!d.dst) exit(1);
                opts o1 = *o;
                const double td = time_best(dq_call, &d, &o1);
                printf("%-9s %-28s %-24s %-22s %9.3f ms %8.2f GB/s out %6.2f Gelem/s (%s panels)\n", "dequant",
                       pd_dtype_name(qts[qi]), shapes[si].name, dims, td * 1e3, (double)bytes / td * 1e-9,
                       (double)panels * kt->gemm_nr * k / td * 1e-9, bf16 ? "bf16" : "f32");
                free(d.dst);
            }
            pd_packed_w_free(&qw);
        }
        free(scratch);
        free(a);
        free(w);
        free(bias);
        free(c);
    }
}

static void bench_gemm_q(const opts *o) {
    static const pd_isa levels[] = {PD_ISA_SCALAR, PD_ISA_AVX2, PD_ISA_AVX512, PD_ISA_AMX};
    for (size_t l = 0; l < PD_COUNT(levels); l++) {
        if (!want_isa(o, levels[l]) && !(o->amx_asked && levels[l] == PD_ISA_AMX)) continue;
        for (int prec = PD_PREC_FP32; prec <= PD_PREC_BF16; prec++) {
            pd_kernels kt;
            if (pd_kernels_init_prec(&kt, levels[l], (pd_prec)prec) != levels[l]) continue;
            /* bf16 tables only where the level has native bf16 kernels (not the emulation) */
            if (prec == PD_PREC_BF16 && levels[l] != PD_ISA_SCALAR && kt.gemm_f32 == pd_bf16_gemm__ref) continue;
            if (levels[l] == PD_ISA_AMX && prec == PD_PREC_FP32) continue;   /* = the AVX-512 one */
            bench_gemm_q_table(o, &kt);
        }
    }
}

/* ---- main ----------------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: bench_kernels [--isa scalar|avx2|avx512|amx|neon] [--op gemm|gemm_bf16|gemm_q|conv|conv_bf16|attention|attention_bf16|layernorm|"
            "softmax|act|groupnorm|geglu|all]\n                     [--quick] [--threads N] [--filter SUBSTR] [--cpu-clock]"
            " [shapes.txt ...]\n");
}

int main(int argc, char **argv) {
    opts o = {.isa = -1, .op = "all", .threads = 1};
    const char *files[32];
    int n_files = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            o.isa = pd_isa_from_name(argv[++i]);
            if (o.isa <= 0) {
                usage();
                return 2;
            }
            o.amx_asked = o.isa == PD_ISA_AMX;
            if (o.isa == PD_ISA_AMX) o.isa = PD_ISA_AVX512;  /* AMX tables use the AVX-512 fp32 kernels */
        } else if (!strcmp(argv[i], "--op") && i + 1 < argc) {
            o.op = argv[++i];
        } else if (!strcmp(argv[i], "--filter") && i + 1 < argc) {
            o.filter = argv[++i];
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            o.threads = atoi(argv[++i]);
            if (o.threads < 1) o.threads = 1;
        } else if (!strcmp(argv[i], "--quick")) {
            o.quick = true;
        } else if (!strcmp(argv[i], "--cpu-clock")) {
            g_clock = CLOCK_THREAD_CPUTIME_ID;
        } else if (argv[i][0] == '-') {
            usage();
            return 2;
        } else if (n_files < 32) {
            files[n_files++] = argv[i];
        }
    }
    pd_cpu_detect(&o.cpu);
    char desc[512];
    pd_cpu_describe(desc, sizeof desc);
    if (o.threads > 1) g_clock = CLOCK_MONOTONIC;
    printf("# cpu: %s\n# threads: %d%s, clock: %s\n", desc, o.threads, o.quick ? " (quick)" : "",
           g_clock == CLOCK_MONOTONIC ? "wall" : "thread cpu time");
    if (o.threads > 1) {
        o.pool = pd_pool_new(o.threads);
        if (!o.pool) {
            fprintf(stderr, "cannot start %d threads\n", o.threads);
            return 1;
        }
        o.threads = pd_pool_size(o.pool);
    }
    measure_peaks(&o);
    int rc = 0;
    if (want_op(&o, "gemm") || want_op(&o, "gemm_bf16") || want_op(&o, "conv") || want_op(&o, "conv_bf16")) {
        if (n_files)
            for (int i = 0; i < n_files; i++) rc |= load_shapes(files[i], &o);
        else
            rc |= bench_gemm_dir(&o, PD_SOURCE_DIR "/bench/shapes");
    }
    if (want_op(&o, "gemm_q")) bench_gemm_q(&o);
    if (want_op(&o, "attention")) bench_attention(&o);
    if (want_op(&o, "attention_bf16")) bench_attention_bf16(&o);
    if (o.threads == 1) {
        if (want_op(&o, "layernorm")) bench_rows(&o, 0);
        if (want_op(&o, "softmax")) bench_rows(&o, 1);
        if (want_op(&o, "act")) bench_rows(&o, 2);
        if (want_op(&o, "groupnorm")) bench_groupnorm(&o);
        if (want_op(&o, "geglu")) bench_geglu(&o);
    }
    pd_pool_free(o.pool);
    return rc;
}
