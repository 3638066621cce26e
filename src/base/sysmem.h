/*
 * sysmem.h - the process's memory as the OS counts it (for --verbose reports and
 * benchmarks). Linux reads /proc/self; elsewhere the functions return 0 ("unknown").
 */
#ifndef PD_BASE_SYSMEM_H
#define PD_BASE_SYSMEM_H

#include <stddef.h>

/* Current resident set size in bytes (0 when unknown). */
size_t pd_rss_bytes(void);
/* Peak resident set size so far (VmHWM) in bytes (0 when unknown). */
size_t pd_peak_rss_bytes(void);

#endif
