/*
 * cpu.c - CPU feature detection (cpuid + xgetbv, AMX permission; HWCAP on aarch64).
 *
 * A feature is reported only when the CPU has it AND the OS saves its register state:
 *   AVX/AVX2/FMA/F16C  need XCR0 bits 1,2   (SSE + YMM state)
 *   AVX-512            need XCR0 bits 5,6,7 (opmask, ZMM_Hi256, Hi16_ZMM)
 *   AMX                need XCR0 bits 17,18 (XTILECFG, XTILEDATA), and on Linux the
 *                      process must ask for XTILEDATA with
 *                      arch_prctl(ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18)
 *                      before touching a tile (else the first tile load is SIGILL).
 * Detection runs once (pthread_once) and is cached; the AMX request is process-wide.
 *
 * Traps:
 *   - cpuid leaf 7 exists only when leaf 0 says max_leaf >= 7; subleaf 1 (AVX512-BF16)
 *     only when leaf 7.0 EAX >= 1.
 *   - xgetbv may only be executed when CPUID.1:ECX.OSXSAVE is set.
 *   - This file is compiled for baseline x86-64: no intrinsics that need -mxsave, so
 *     xgetbv is inline asm.
 * Reference: Intel SDM vol. 1 ch. 13 (XSAVE), vol. 2 CPUID; Linux
 * Documentation/arch/x86/xstate.rst.
 */
#include "base/cpu.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define PD_CPU_X86 1
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#elif defined(__aarch64__)
#define PD_CPU_ARM64 1
#if defined(__linux__)
#include <sys/auxv.h>
#endif
#endif

static pd_cpu_features g_features;   /* written once under pthread_once */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#if defined(PD_CPU_X86)

#define XCR0_SSE_AVX (UINT64_C(1) << 1 | UINT64_C(1) << 2)
#define XCR0_AVX512 (UINT64_C(7) << 5)
#define XCR0_AMX (UINT64_C(3) << 17)

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

static bool request_amx(void) {
#if defined(__linux__) && defined(SYS_arch_prctl)
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

static void detect(pd_cpu_features *f) {
    unsigned a, b, c, d;
    memset(f, 0, sizeof *f);
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    unsigned max_leaf = a;
    f->vendor_amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;   /* "Auth" "enti" "cAMD" */
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    unsigned ecx1 = c;
    f->sse42 = (ecx1 >> 20) & 1;
    bool osxsave = (ecx1 >> 27) & 1;
    uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    bool os_avx = (xcr0 & XCR0_SSE_AVX) == XCR0_SSE_AVX;
    bool os_avx512 = os_avx && (xcr0 & XCR0_AVX512) == XCR0_AVX512;
    bool os_amx = (xcr0 & XCR0_AMX) == XCR0_AMX;

    f->avx = os_avx && ((ecx1 >> 28) & 1);
    f->fma = f->avx && ((ecx1 >> 12) & 1);
    f->f16c = f->avx && ((ecx1 >> 29) & 1);
    if (max_leaf < 7) return;

    __cpuid_count(7, 0, a, b, c, d);
    unsigned max_sub7 = a, ebx7 = b, ecx7 = c, edx7 = d;
    f->avx2 = f->avx && ((ebx7 >> 5) & 1);
    f->avx512f = os_avx512 && ((ebx7 >> 16) & 1);
    f->avx512dq = f->avx512f && ((ebx7 >> 17) & 1);
    f->avx512bw = f->avx512f && ((ebx7 >> 30) & 1);
    f->avx512vl = f->avx512f && ((ebx7 >> 31) & 1);
    f->avx512vnni = f->avx512f && ((ecx7 >> 11) & 1);
    f->avx512fp16 = f->avx512f && ((edx7 >> 23) & 1);
    f->amx_bf16 = os_amx && ((edx7 >> 22) & 1);
    f->amx_tile = os_amx && ((edx7 >> 24) & 1);
    f->amx_int8 = os_amx && ((edx7 >> 25) & 1);
    if (max_sub7 >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        f->avx512bf16 = f->avx512f && ((a >> 5) & 1);
    }
    if (f->amx_tile) f->amx_granted = request_amx();
}

#elif defined(PD_CPU_ARM64)

/* Linux HWCAP bits (arch/arm64/include/uapi/asm/hwcap.h). */
#define PD_HWCAP_ASIMD (1UL << 1)
#define PD_HWCAP_ASIMDHP (1UL << 10)
#define PD_HWCAP_ASIMDDP (1UL << 20)
#define PD_HWCAP2_BF16 (1UL << 14)

static void detect(pd_cpu_features *f) {
    memset(f, 0, sizeof *f);
    f->neon = true;   /* ASIMD is mandatory in ARMv8-A */
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP);
    unsigned long hw2 = getauxval(AT_HWCAP2);
    if (hw & PD_HWCAP_ASIMD) f->neon = true;
    f->neon_fp16 = (hw & PD_HWCAP_ASIMDHP) != 0;
    f->neon_dotprod = (hw & PD_HWCAP_ASIMDDP) != 0;
    f->neon_bf16 = (hw2 & PD_HWCAP2_BF16) != 0;
#endif
}

#else

static void detect(pd_cpu_features *f) { memset(f, 0, sizeof *f); }

#endif

static void detect_once(void) { detect(&g_features); }

void pd_cpu_detect(pd_cpu_features *out) {
    pthread_once(&g_once, detect_once);
    *out = g_features;
}

bool pd_cpu_supports(const pd_cpu_features *f, pd_isa isa) {
    bool avx2 = f->avx2 && f->fma && f->f16c;
    bool avx512 = avx2 && f->avx512f && f->avx512bw && f->avx512dq && f->avx512vl;
    switch (isa) {
    case PD_ISA_AUTO:
    case PD_ISA_SCALAR: return true;
    case PD_ISA_AVX2: return avx2;
    case PD_ISA_AVX512: return avx512;
    /* AMX kernels are built with -mavx512bf16 too, so require it (every AMX CPU has it). */
    case PD_ISA_AMX: return avx512 && f->avx512bf16 && f->amx_tile && f->amx_bf16 && f->amx_granted;
    case PD_ISA_NEON: return f->neon;
    }
    return false;
}

pd_isa pd_cpu_best_isa(const pd_cpu_features *f) {
    static const pd_isa order[] = {PD_ISA_AMX, PD_ISA_AVX512, PD_ISA_AVX2, PD_ISA_NEON};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (pd_cpu_supports(f, order[i])) return order[i];
    return PD_ISA_SCALAR;
}

static const char *const ISA_NAMES[] = {
    [PD_ISA_AUTO] = "auto",     [PD_ISA_SCALAR] = "scalar", [PD_ISA_AVX2] = "avx2",
    [PD_ISA_AVX512] = "avx512", [PD_ISA_AMX] = "amx",       [PD_ISA_NEON] = "neon",
};

const char *pd_isa_name(pd_isa isa) {
    return (unsigned)isa < sizeof ISA_NAMES / sizeof ISA_NAMES[0] ? ISA_NAMES[isa] : "unknown";
}

const char *pd_precision_name(pd_precision p) {
    switch (p) {
    case PD_PRECISION_AUTO: return "auto";
    case PD_PRECISION_FP32: return "fp32";
    case PD_PRECISION_BF16: return "bf16";
    }
    return "unknown";
}

int pd_isa_from_name(const char *s) {
    if (!s || !*s) return PD_ISA_AUTO;
    char buf[16];
    size_t n = strlen(s);
    if (n >= sizeof buf) return -1;
    for (size_t i = 0; i <= n; i++) buf[i] = (char)tolower((unsigned char)s[i]);
    for (size_t i = 0; i < sizeof ISA_NAMES / sizeof ISA_NAMES[0]; i++)
        if (strcmp(buf, ISA_NAMES[i]) == 0) return (int)i;
    return -1;
}

void pd_cpu_describe(char *buf, size_t buf_size) {
    if (!buf || buf_size == 0) return;
    pd_cpu_features f;
    pd_cpu_detect(&f);
    static const struct {
        size_t off;
        const char *name;
    } FLAGS[] = {
#define PD_FLAG(field, name) {offsetof(pd_cpu_features, field), name}
        PD_FLAG(sse42, "sse4.2"),         PD_FLAG(avx, "avx"),
        PD_FLAG(avx2, "avx2"),            PD_FLAG(fma, "fma"),
        PD_FLAG(f16c, "f16c"),            PD_FLAG(avx512f, "avx512f"),
        PD_FLAG(avx512bw, "avx512bw"),    PD_FLAG(avx512dq, "avx512dq"),
        PD_FLAG(avx512vl, "avx512vl"),    PD_FLAG(avx512bf16, "avx512bf16"),
        PD_FLAG(avx512fp16, "avx512fp16"), PD_FLAG(avx512vnni, "avx512vnni"),
        PD_FLAG(amx_tile, "amx-tile"),    PD_FLAG(amx_bf16, "amx-bf16"),
        PD_FLAG(amx_int8, "amx-int8"),    PD_FLAG(neon, "neon"),
        PD_FLAG(neon_fp16, "neon-fp16"),  PD_FLAG(neon_bf16, "neon-bf16"),
        PD_FLAG(neon_dotprod, "neon-dotprod"),
#undef PD_FLAG
    };
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof FLAGS / sizeof FLAGS[0]; i++) {
        bool on;
        memcpy(&on, (const char *)&f + FLAGS[i].off, sizeof on);
        if (!on || len >= buf_size) continue;
        int w = snprintf(buf + len, buf_size - len, "%s%s", len ? " " : "", FLAGS[i].name);
        if (w > 0) len += (size_t)w;
    }
    if (len < buf_size) {
        const char *os = f.amx_tile ? (f.amx_granted ? " (os: amx granted)" : " (os: amx denied)") : "";
        snprintf(buf + len, buf_size - len, "%s%s%s; best: %s", len ? "" : "baseline", os,
                 f.vendor_amd ? " (amd)" : "", pd_isa_name(pd_cpu_best_isa(&f)));
    }
}
