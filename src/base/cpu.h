/*
 * cpu.h - CPU feature detection that also checks what the OS allows.
 *
 * x86-64: cpuid for the instruction sets, xgetbv (XCR0) for the register state the
 * OS saves (YMM for AVX/AVX2, opmask+ZMM for AVX-512, XTILECFG/XTILEDATA for AMX),
 * and on Linux arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) to be granted AMX
 * tile data (once per process; the grant is process-wide by nature).
 * aarch64: NEON (ASIMD) is always present; fp16/bf16 extensions from HWCAP.
 */
#ifndef PD_BASE_CPU_H
#define PD_BASE_CPU_H

#include <stdbool.h>
#include <stddef.h>

#include "phonediffusion.h"

typedef struct pd_cpu_features {
    /* x86-64, each true only when the CPU has it AND the OS enabled its state */
    bool sse42, avx, avx2, fma, f16c;
    bool avx512f, avx512bw, avx512dq, avx512vl, avx512bf16, avx512fp16, avx512vnni;
    bool amx_tile, amx_bf16, amx_int8;   /* CPU + XCR0 support */
    bool amx_granted;                     /* arch_prctl permission obtained */
    bool vendor_amd;                      /* "AuthenticAMD" (Zen 4/5 run vdpbf16ps at the
                                             FMA rate: twice fp32's FLOPs) */
    /* aarch64 */
    bool neon, neon_fp16, neon_bf16, neon_dotprod;
} pd_cpu_features;

/* Detects features. Requests the AMX permission (idempotent) so amx_granted is
 * meaningful. Thread-safe. */
void pd_cpu_detect(pd_cpu_features *out);

/* The best ISA level the features allow. */
pd_isa pd_cpu_best_isa(const pd_cpu_features *f);

/* Whether the features allow running kernels of level isa. */
bool pd_cpu_supports(const pd_cpu_features *f, pd_isa isa);

/* Parses "scalar", "avx2", "avx512", "amx", "neon" (case-insensitive) ->
 * PD_ISA_*; PD_ISA_AUTO for NULL/""/"auto"; -1 when unknown. */
int pd_isa_from_name(const char *s);

#endif
