/*
 * dispatch.c - fills the pd_kernels table once, from the variant lists (*.inc).
 *
 * Policy: start from the scalar references, pick the level (PD_ISA env var when the
 * caller asks for AUTO; unknown names are ignored), lower it until the CPU and OS
 * support it (amx -> avx512 -> avx2 -> scalar, neon -> scalar), then for each op take
 * the first variant of the highest ISA at or below that level along the same chain.
 * An AMX table therefore runs the AVX-512 fp32 kernels (AMX has no fp32 kernels of
 * its own yet) but reports PD_ISA_AMX, so bf16 users can pick AMX paths by kt->isa.
 * The table is plain data afterwards: immutable, shareable between threads.
 */
#include <stdlib.h>

#include "kernels/act/act.h"
#include "kernels/act/geglu.h"
#include "kernels/attention/attention.h"
#include "kernels/conv/conv.h"
#include "kernels/dispatch.h"
#include "kernels/gemm/gemm.h"
#include "kernels/norm/groupnorm.h"
#include "kernels/norm/norm.h"

/* Each op's variant list, as parallel arrays: ISA, function (and GEMM name, nr). */
static const pd_isa GEMM_ISA[] = {
#define PD_KERNEL(isa, fn, mr, nr) isa,
#include "kernels/gemm/gemm.inc"
#undef PD_KERNEL
};
static void (*const GEMM_FN[])(const pd_gemm_args *args) = {
#define PD_KERNEL(isa, fn, mr, nr) fn,
#include "kernels/gemm/gemm.inc"
#undef PD_KERNEL
};
static const char *const GEMM_NAME[] = {
#define PD_KERNEL(isa, fn, mr, nr) #fn,
#include "kernels/gemm/gemm.inc"
#undef PD_KERNEL
};
static const int GEMM_NR[] = {
#define PD_KERNEL(isa, fn, mr, nr) nr,
#include "kernels/gemm/gemm.inc"
#undef PD_KERNEL
};

static const pd_isa ATTN_ISA[] = {
#define PD_KERNEL(isa, fn) isa,
#include "kernels/attention/attention.inc"
#undef PD_KERNEL
};
static void (*const ATTN_FN[])(const pd_attn_args *args) = {
#define PD_KERNEL(isa, fn) fn,
#include "kernels/attention/attention.inc"
#undef PD_KERNEL
};

static const pd_isa LAYERNORM_ISA[] = {
#define PD_KERNEL(isa, fn) isa,
#include "kernels/norm/layernorm.inc"
#undef PD_KERNEL
};
static void (*const LAYERNORM_FN[])(float *y, size_t ldy, const float *x, size_t ldx, int rows,
                                    int cols, const float *gamma, const float *beta, float eps) = {
#define PD_KERNEL(isa, fn) fn,
#include "kernels/norm/layernorm.inc"
#undef PD_KERNEL
};

static const pd_isa SOFTMAX_ISA[] = {
#define PD_KERNEL(isa, fn) isa,
#include "kernels/norm/softmax.inc"
#undef PD_KERNEL
};
static void (*const SOFTMAX_FN[])(float *x, size_t ld, int rows, int cols) = {
#define PD_KERNEL(isa, fn) fn,
#include "kernels/norm/softmax.inc"
#undef PD_KERNEL
};

static const pd_isa ACT_ISA[] = {
#define PD_KERNEL(isa, fn) isa,
#include "kernels/act/act.inc"
#undef PD_KERNEL
};
static void (*const ACT_FN[])(float *y, const float *x, size_t n, pd_act act) = {
#define PD_KERNEL(isa, fn) fn,
#include "kernels/act/act.inc"
#undef PD_KERNEL
};

static const pd_isa CONV_ISA[] = {
#define PD_KERNEL(isa, fn, mr, nr) isa,
#include "kernels/conv/conv.inc"
#undef PD_KERNEL
};
static void (*const CONV_FN[])(const pd_conv_args *args) = {
#define PD_KERNEL(isa, fn, mr, nr) fn,
#include "kernels/conv/conv.inc"
#undef PD_KERNEL
};
static const int CONV_NR[] = {
#define PD_KERNEL(isa, fn, mr, nr) nr,
#include "kernels/conv/conv.inc"
#undef PD_KERNEL
};

static const pd_isa GROUPNORM_ISA[] = {
#define PD_KERNEL(isa, fn) isa,
#include "kernels/norm/groupnorm.inc"
#undef PD_KERNEL
};
static void (*const GROUPNORM_FN[])(float *y, const float *x, int hw, int c, int groups, int g0,
                                    int g1, const float *gamma, const float *beta, float eps,
                                    bool silu) = {
#define PD_KERNEL(isa, fn) fn,
#include "kernels/norm/groupnorm.inc"
#undef PD_KERNEL
};

static const pd_isa GEGLU_ISA[] = {
#define PD_KERNEL(isa, fn) isa,
#include "kernels/act/geglu.inc"
#undef PD_KERNEL
};
static void (*const GEGLU_FN[])(float *y, size_t ldy, const float *x, size_t ldx, int rows,
                                int cols) = {
#define PD_KERNEL(isa, fn) fn,
#include "kernels/act/geglu.inc"
#undef PD_KERNEL
};

/* The next level down; PD_ISA_SCALAR is the floor. */
static pd_isa lower(pd_isa isa) {
    switch (isa) {
    case PD_ISA_AMX: return PD_ISA_AVX512;
    case PD_ISA_AVX512: return PD_ISA_AVX2;
    case PD_ISA_AVX2:
    case PD_ISA_NEON:
    case PD_ISA_AUTO:
    case PD_ISA_SCALAR: return PD_ISA_SCALAR;
    }
    return PD_ISA_SCALAR;
}

/* Index of the first entry whose isa is the highest one at or below level along the
 * fallback chain; entry 0 (the scalar reference) when none is. */
static size_t pick(const pd_isa *isas, size_t count, pd_isa level) {
    for (pd_isa l = level;; l = lower(l)) {
        for (size_t i = 0; i < count; i++)
            if (isas[i] == l) return i;
        if (l == PD_ISA_SCALAR) return 0;
    }
}

/* pick() restricted to conv variants that read the GEMM's panel width nr (both use the
 * same pd_packed_w); the reference (entry 0, any nr) when none does. */
static size_t pick_conv(pd_isa level, int nr) {
    for (pd_isa l = level;; l = lower(l)) {
        for (size_t i = 1; i < PD_COUNT(CONV_ISA); i++)
            if (CONV_ISA[i] == l && CONV_NR[i] == nr) return i;
        if (l == PD_ISA_SCALAR) return 0;
    }
}

static void fill(pd_kernels *kt, pd_isa level) {
    size_t g = pick(GEMM_ISA, PD_COUNT(GEMM_ISA), level);
    kt->isa = level;
    kt->gemm_nr = GEMM_NR[g];
    kt->gemm_name = GEMM_NAME[g];
    kt->gemm_f32 = GEMM_FN[g];
    kt->attention_f32 = ATTN_FN[pick(ATTN_ISA, PD_COUNT(ATTN_ISA), level)];
    kt->layernorm_f32 = LAYERNORM_FN[pick(LAYERNORM_ISA, PD_COUNT(LAYERNORM_ISA), level)];
    kt->softmax_f32 = SOFTMAX_FN[pick(SOFTMAX_ISA, PD_COUNT(SOFTMAX_ISA), level)];
    kt->act_f32 = ACT_FN[pick(ACT_ISA, PD_COUNT(ACT_ISA), level)];
    kt->conv2d_f32 = CONV_FN[pick_conv(level, kt->gemm_nr)];
    kt->groupnorm_f32 = GROUPNORM_FN[pick(GROUPNORM_ISA, PD_COUNT(GROUPNORM_ISA), level)];
    kt->geglu_f32 = GEGLU_FN[pick(GEGLU_ISA, PD_COUNT(GEGLU_ISA), level)];
}

void pd_kernels_init_ref(pd_kernels *kt) { fill(kt, PD_ISA_SCALAR); }

pd_isa pd_kernels_init_for(pd_kernels *kt, pd_isa want, const pd_cpu_features *f) {
    pd_isa level = want == PD_ISA_AUTO ? pd_cpu_best_isa(f) : want;
    while (!pd_cpu_supports(f, level)) level = lower(level);
    fill(kt, level);
    return level;
}

pd_isa pd_kernels_init(pd_kernels *kt, pd_isa want) {
    if (want == PD_ISA_AUTO) {
        int env = pd_isa_from_name(getenv("PD_ISA"));
        if (env > 0) want = (pd_isa)env;
    }
    pd_cpu_features f;
    pd_cpu_detect(&f);
    return pd_kernels_init_for(kt, want, &f);
}
