/*
 * sysmem.c - resident set size from /proc/self (Linux); 0 elsewhere.
 */
#include "base/sysmem.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

size_t pd_rss_bytes(void) {
#ifdef __linux__
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (size_t)resident * (size_t)page : 0;
#else
    return 0;
#endif
}

size_t pd_peak_rss_bytes(void) {
#ifdef __linux__
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long v;
        if (strncmp(line, "VmHWM:", 6) == 0 && sscanf(line + 6, "%lu", &v) == 1) {
            kib = v;
            break;
        }
    }
    fclose(f);
    return kib * 1024;
#else
    return 0;
#endif
}
