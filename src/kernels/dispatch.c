/*
 * dispatch.c - fills the pd_kernels table once, from the variant lists (*.inc).
 *
 * Policy: start from the scalar references, pick the level (PD_ISA env var when the
 * caller asks for AUTO; unknown names are ignored), lower it until the CPU and OS
 * support it (amx -> avx512 -> avx2 -> scalar, neon -> scalar), then for each op take
 * the first variant of the highest ISA at or below that level along the same chain.
 * An fp32 AMX table therefore runs the AVX-512 fp32 kernels (AMX has no fp32 arithmetic)
 * but reports PD_ISA_AMX. A bf16 table (pd_kernels_init_prec) is the fp32 table of the
 * level with the GEMM and conv entries (and their packed format) replaced by the bf16
 * pair of the level (gemm_bf16.inc).
 * The table is plain data afterwards: immutable, shareable between threads.
 */
#include <stdlib.h>

#include "kernels/act/act.h"
#include "kernels/act/geglu.h"
#include "kernels/attention/attention.h"
#include "kernels/conv/conv.h"
#include "kernels/dispatch.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_bf16.h"
#include "kernels/norm/groupnorm.h"
#include "kernels/norm/norm.h"
#include "kernels/quant/quant.h"

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

static const pd_isa BF16_ISA[] = {
#define PD_KERNEL(isa, gemm, conv, nr) isa,
#include "kernels/gemm/gemm_bf16.inc"
#undef PD_KERNEL
};
static void (*const BF16_GEMM_FN[])(const pd_gemm_args *args) = {
#define PD_KERNEL(isa, gemm, conv, nr) gemm,
#include "kernels/gemm/gemm_bf16.inc"
#undef PD_KERNEL
};
static void (*const BF16_CONV_FN[])(const pd_conv_args *args) = {
#define PD_KERNEL(isa, gemm, conv, nr) conv,
#include "kernels/gemm/gemm_bf16.inc"
#undef PD_KERNEL
};
static const char *const BF16_GEMM_NAME[] = {
#define PD_KERNEL(isa, gemm, conv, nr) #gemm,
#include "kernels/gemm/gemm_bf16.inc"
#undef PD_KERNEL
};
static const int BF16_NR[] = {
#define PD_KERNEL(isa, gemm, conv, nr) nr,
#include "kernels/gemm/gemm_bf16.inc"
#undef PD_KERNEL
};

/* A placeholder entry keeps the arrays non-empty when no bf16 attention is built. */
static const pd_isa ATTN_BF16_ISA[] = {
    PD_ISA_AUTO,
#define PD_KERNEL(isa, fn, rows) isa,
#include "kernels/attention/attention_bf16.inc"
#undef PD_KERNEL
};
static void (*const ATTN_BF16_FN[])(const pd_attn_args *args) = {
    NULL,
#define PD_KERNEL(isa, fn, rows) fn,
#include "kernels/attention/attention_bf16.inc"
#undef PD_KERNEL
};
static const int ATTN_BF16_ROWS[] = {
    0,
#define PD_KERNEL(isa, fn, rows) rows,
#include "kernels/attention/attention_bf16.inc"
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

static const pd_isa DEQUANT_ISA[] = {
#define PD_KERNEL(isa, fn, wtype) isa,
#include "kernels/quant/quant.inc"
#undef PD_KERNEL
};
static void (*const DEQUANT_FN[])(const pd_packed_w *q, int p0, int p1, void *dst) = {
#define PD_KERNEL(isa, fn, wtype) fn,
#include "kernels/quant/quant.inc"
#undef PD_KERNEL
};
static const pd_dtype DEQUANT_WTYPE[] = {
#define PD_KERNEL(isa, fn, wtype) wtype,
#include "kernels/quant/quant.inc"
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

/* The dequant_panels variant writing wtype at the highest ISA at or below level. */
static void (*pick_dequant(pd_isa level, pd_dtype wtype))(const pd_packed_w *, int, int, void *) {
    for (pd_isa l = level;; l = lower(l)) {
        for (size_t i = 0; i < PD_COUNT(DEQUANT_ISA); i++)
            if (DEQUANT_ISA[i] == l && DEQUANT_WTYPE[i] == wtype) return DEQUANT_FN[i];
        PD_ASSERT(l != PD_ISA_SCALAR);   /* quant.inc lists a reference per format */
    }
}

static void fill(pd_kernels *kt, pd_isa level) {
    size_t g = pick(GEMM_ISA, PD_COUNT(GEMM_ISA), level);
    kt->isa = level;
    kt->prec = PD_PREC_FP32;
    kt->wtype = PD_DTYPE_F32;
    kt->wquant = PD_DTYPE_INVALID;
    kt->half_rows = false;
    kt->attn_rows = PD_ATTN_ROWS_F32;
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
    kt->dequant_panels = pick_dequant(level, PD_DTYPE_F32);
}

/* The bf16 GEMM/conv pair of the level: AMX, AVX512-BF16 (avx512 level + the
 * extension), else the references (entry 0). */
static size_t pick_bf16(pd_isa level, const pd_cpu_features *f) {
    pd_isa want = level == PD_ISA_AMX ? PD_ISA_AMX
                  : level == PD_ISA_AVX512 && f->avx512bf16 ? PD_ISA_AVX512 : PD_ISA_SCALAR;
    for (size_t i = 1; i < PD_COUNT(BF16_ISA); i++)
        if (BF16_ISA[i] == want) return i;
    if (want == PD_ISA_AMX && f->avx512bf16) return pick_bf16(PD_ISA_AVX512, f);
    return 0;
}

static void fill_bf16(pd_kernels *kt, pd_isa level, const pd_cpu_features *f) {
    fill(kt, level);
    const size_t b = pick_bf16(level, f);
    kt->prec = PD_PREC_BF16;
    kt->wtype = PD_DTYPE_BF16;
    kt->gemm_nr = BF16_NR[b];
    kt->gemm_name = BF16_GEMM_NAME[b];
    kt->gemm_f32 = BF16_GEMM_FN[b];
    kt->conv2d_f32 = BF16_CONV_FN[b];
    kt->dequant_panels = pick_dequant(level, PD_DTYPE_BF16);
    const pd_isa isa_b = BF16_ISA[b];
    for (size_t i = 1; isa_b != PD_ISA_SCALAR && i < PD_COUNT(ATTN_BF16_ISA); i++)
        if (ATTN_BF16_ISA[i] == isa_b) {
            kt->attention_f32 = ATTN_BF16_FN[i];
            kt->attn_rows = ATTN_BF16_ROWS[i];
            break;
        }
}

void pd_kernels_init_ref(pd_kernels *kt) { fill(kt, PD_ISA_SCALAR); }

pd_isa pd_kernels_init_prec_for(pd_kernels *kt, pd_isa want, pd_prec prec, const pd_cpu_features *f) {
    pd_isa level = want == PD_ISA_AUTO ? pd_cpu_best_isa(f) : want;
    while (!pd_cpu_supports(f, level)) level = lower(level);
    /* AUTO: bf16 only where it is faster than fp32. AMX is. AVX512-BF16 is on AMD Zen 4/5
     * (vdpbf16ps at the FMA rate: 236 vs 118 GFLOP/s per core measured on an EPYC Zen 4)
     * but not on the Intel CPUs measured (Sapphire Rapids: half the fp32 FMA rate). */
    const pd_isa bf16_isa = BF16_ISA[pick_bf16(level, f)];
    const bool bf16_faster = bf16_isa == PD_ISA_AMX || (bf16_isa == PD_ISA_AVX512 && f->vendor_amd);
    if (prec == PD_PREC_BF16 || (prec == PD_PREC_AUTO && bf16_faster))
        fill_bf16(kt, level, f);
    else fill(kt, level);
    return level;
}

pd_isa pd_kernels_init_for(pd_kernels *kt, pd_isa want, const pd_cpu_features *f) {
    return pd_kernels_init_prec_for(kt, want, PD_PREC_FP32, f);
}

pd_isa pd_kernels_init_prec(pd_kernels *kt, pd_isa want, pd_prec prec) {
    if (want == PD_ISA_AUTO) {
        int env = pd_isa_from_name(getenv("PD_ISA"));
        if (env > 0) want = (pd_isa)env;
    }
    pd_cpu_features f;
    pd_cpu_detect(&f);
    return pd_kernels_init_prec_for(kt, want, prec, &f);
}

pd_isa pd_kernels_init(pd_kernels *kt, pd_isa want) { return pd_kernels_init_prec(kt, want, PD_PREC_FP32); }

bool pd_quant_eligible(int n, int k, int conv_cin) {
    if (conv_cin > 0) return conv_cin > 8 && n > 8;
    return n >= 1 && k >= 32 && k % 32 == 0;
}

/* A quantized source (GGUF) widened to fp32 rows of k (row stride ld_w elements,
 * a multiple of 32): for layouts the quantized kernels cannot borrow. */
static float *dequant_copy(const void *w, pd_dtype t, size_t ld_w, int n, int k) {
    if (ld_w % 32 || (size_t)k > ld_w) return NULL;
    float *f = malloc((size_t)n * ld_w * sizeof(float) + 1);
    if (!f) return NULL;
    const size_t row = pd_dtype_bytes(t, ld_w);
    for (int r = 0; r < n; r++)
        pd_dequantize_row(t, (const unsigned char *)w + (size_t)r * row, f + (size_t)r * ld_w, ld_w);
    return f;
}

bool pd_kernels_half_rows(const pd_kernels *kt, pd_dtype w_dtype, int n, int k) {
    return kt->half_rows && kt->wtype == PD_DTYPE_F32 && w_dtype == PD_DTYPE_F16 &&
           !(pd_dtype_is_quant(kt->wquant) && pd_quant_eligible(n, k, 0));
}

pd_status pd_kernels_pack_gemm(const pd_kernels *kt, pd_packed_w *out, const void *w,
                               pd_dtype w_dtype, size_t ld_w, int n, int k, const void *bias,
                               pd_dtype bias_dtype, pd_pool *pool, pd_error *err) {
    if (pd_dtype_is_quant(w_dtype)) {
        /* Stored quantized: the rows are used where they lie (bit for bit, no copy). */
        if (ld_w == (size_t)k && k % 32 == 0)
            return pd_q_gemm_wrap(out, kt->gemm_nr, w_dtype, w, n, k, bias, bias_dtype, err);
        float *f = dequant_copy(w, w_dtype, ld_w, n, k);
        if (!f) return pd_error_set(err, PD_ERR_OOM, "cannot widen a %s weight [%d, %d] (row stride %zu)",
                                    pd_dtype_name(w_dtype), n, k, ld_w);
        pd_kernels tk = *kt;
        tk.wquant = w_dtype;   /* requantized to its own type in the kernels' layout */
        pd_status st = pd_kernels_pack_gemm(&tk, out, f, PD_DTYPE_F32, ld_w, n, k, bias, bias_dtype, pool, err);
        free(f);
        return st;
    }
    if (pd_dtype_is_quant(kt->wquant) && pd_quant_eligible(n, k, 0))
        return pd_q_gemm_pack_mt(out, kt->gemm_nr, kt->wquant, w, w_dtype, ld_w, n, k, bias, bias_dtype, pool, err);
    if (pd_kernels_half_rows(kt, w_dtype, n, k) && ld_w == (size_t)k)
        return pd_q_gemm_wrap(out, kt->gemm_nr, PD_DTYPE_F16, w, n, k, bias, bias_dtype, err);
    if (kt->wtype == PD_DTYPE_BF16)
        return pd_bf16_gemm_pack_mt(out, kt->gemm_nr, w, w_dtype, ld_w, n, k, bias, bias_dtype, pool, err);
    return pd_gemm_pack_mt(out, kt->gemm_nr, w, w_dtype, ld_w, n, k, bias, bias_dtype, pool, err);
}

pd_status pd_kernels_pack_conv(const pd_kernels *kt, pd_packed_w *out, const void *w,
                               pd_dtype w_dtype, int cout, int cin, int kh, int kw,
                               const void *bias, pd_dtype bias_dtype, pd_pool *pool, pd_error *err) {
    const int k = cin * kh * kw;
    if (pd_dtype_is_quant(w_dtype)) {
        /* Quantized in PyTorch k order (ci, ky, kx): widened, then packed in ours. */
        float *f = dequant_copy(w, w_dtype, (size_t)k, cout, k);
        if (!f) return pd_error_set(err, PD_ERR_UNSUPPORTED, "a %s conv weight [%d, %d, %d, %d] (rows of %d)",
                                    pd_dtype_name(w_dtype), cout, cin, kh, kw, k);
        pd_kernels tk = *kt;
        tk.wquant = pd_dtype_is_quant(kt->wquant) ? kt->wquant : w_dtype;
        pd_status st = pd_kernels_pack_conv(&tk, out, f, PD_DTYPE_F32, cout, cin, kh, kw, bias, bias_dtype, pool, err);
        free(f);
        return st;
    }
    if (pd_dtype_is_quant(kt->wquant) && pd_quant_eligible(cout, k, cin))
        return pd_q_conv_pack_mt(out, kt->gemm_nr, kt->wquant, w, w_dtype, cout, cin, kh, kw, bias, bias_dtype, pool,
                                 err);
    if (kt->wtype == PD_DTYPE_BF16)
        return pd_bf16_conv_pack_mt(out, kt->gemm_nr, w, w_dtype, cout, cin, kh, kw, bias, bias_dtype, pool, err);
    return pd_conv_pack_mt(out, kt->gemm_nr, w, w_dtype, cout, cin, kh, kw, bias, bias_dtype, pool, err);
}

pd_status pd_kernels_pack_gemm_q(const pd_kernels *kt, pd_packed_w *out, pd_dtype qtype, const void *w,
                                 pd_dtype w_dtype, size_t ld_w, int n, int k, const void *bias,
                                 pd_dtype bias_dtype, pd_error *err) {
    return pd_q_gemm_pack(out, kt->gemm_nr, qtype, w, w_dtype, ld_w, n, k, bias, bias_dtype, err);
}

pd_status pd_kernels_pack_conv_q(const pd_kernels *kt, pd_packed_w *out, pd_dtype qtype, const void *w,
                                 pd_dtype w_dtype, int cout, int cin, int kh, int kw,
                                 const void *bias, pd_dtype bias_dtype, pd_error *err) {
    return pd_q_conv_pack(out, kt->gemm_nr, qtype, w, w_dtype, cout, cin, kh, kw, bias, bias_dtype, err);
}
