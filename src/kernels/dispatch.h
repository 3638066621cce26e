/*
 * dispatch.h - internal entry of the kernel dispatch, for tests: builds a table for a
 * given feature set instead of the detected one (kernels.h has the public entries).
 */
#ifndef PD_KERNELS_DISPATCH_H
#define PD_KERNELS_DISPATCH_H

#include "kernels/kernels.h"

/* pd_kernels_init with the CPU/OS features f (the PD_ISA env var is NOT read): want
 * is capped at what f supports, falling back amx -> avx512 -> avx2 -> scalar and
 * neon -> scalar; PD_ISA_AUTO picks pd_cpu_best_isa(f). Returns kt->isa. */
pd_isa pd_kernels_init_for(pd_kernels *kt, pd_isa want, const pd_cpu_features *f);

/* The same with the given arithmetic (pd_kernels_init_prec). */
pd_isa pd_kernels_init_prec_for(pd_kernels *kt, pd_isa want, pd_prec prec, const pd_cpu_features *f);

#endif
