/*
 * groupnorm_blocked.c - the ISA-independent driver of the SIMD GroupNorm (contract and
 * scheme: groupnorm.h). It walks blocks of whole groups, chunks their channel run to
 * PD_GN_CHUNK channels, and calls the ISA's two passes (stats over a pixel block, apply
 * over the image) with per-channel shift / delta / scale / beta arrays; group sums live
 * in double here.
 *
 * Traps: the shift of a group is read (x[0, first channel]) before anything of that
 * block is written (in place); a group larger than a chunk spans several chunks, so
 * the per-channel -> per-group fold works on any chunk boundary; gamma/beta NULL mean
 * 1/0.
 */
#include <math.h>
#include <string.h>

#include "kernels/norm/groupnorm.h"

/* Groups per block: their sums are per-group doubles on the stack. */
#define BLOCK_GROUPS 256

/* Folds per-channel sums acc[0..len) of channels [s0, s0+len) into sums[group - ga]. */
static void fold(double *sums, const float *acc, int s0, int len, int cg, int ga) {
    for (int j = 0; j < len;) {
        const int ch = s0 + j, g = ch / cg, end = PD_MIN(len, (g + 1) * cg - s0);
        double s = 0.0;
        for (; j < end; j++) s += acc[j];
        sums[g - ga] += s;
    }
}

/* Per-channel copies of per-group values for channels [s0, s0+len). */
static void spread(float *dst, const float *per_group, int s0, int len, int cg, int ga) {
    for (int j = 0; j < len; j++) dst[j] = per_group[(s0 + j) / cg - ga];
}

void pd_groupnorm_blocked(const pd_groupnorm_passes *p, float *y, const float *x, int hw, int c,
                          int groups, int g0, int g1, const float *gamma, const float *beta,
                          float eps, bool silu) {
    PD_ASSERT(groups >= 1 && c >= groups && c % groups == 0);
    PD_ASSERT(g0 >= 0 && g1 <= groups);
    if (hw <= 0 || g0 >= g1) return;
    const int cg = c / groups;
    const size_t ld = (size_t)c;
    const double count = (double)hw * cg;
    float shift_g[BLOCK_GROUPS], delta_g[BLOCK_GROUPS], rstd_g[BLOCK_GROUPS];
    double sum_g[BLOCK_GROUPS];
    float acc[PD_GN_CHUNK], shift[PD_GN_CHUNK], delta[PD_GN_CHUNK], scale[PD_GN_CHUNK],
        bias[PD_GN_CHUNK];

    for (int ga = g0; ga < g1; ga += BLOCK_GROUPS) {
        const int gb = PD_MIN(g1, ga + BLOCK_GROUPS), ng = gb - ga;
        const int b0 = ga * cg, b1 = gb * cg;
        for (int g = 0; g < ng; g++) {
            shift_g[g] = x[(size_t)(ga + g) * (size_t)cg];
            delta_g[g] = 0.0f;
        }
        /* Passes 1 and 2: sums of (x - shift) - delta (delta = 0 first), then squared. */
        for (int pass = 0; pass < 2; pass++) {
            memset(sum_g, 0, sizeof sum_g);
            for (int s0 = b0; s0 < b1; s0 += PD_GN_CHUNK) {
                const int len = PD_MIN(PD_GN_CHUNK, b1 - s0);
                spread(shift, shift_g, s0, len, cg, ga);
                spread(delta, delta_g, s0, len, cg, ga);
                for (int r0 = 0; r0 < hw; r0 += PD_GN_FLUSH_PIXELS) {
                    const int rows = PD_MIN(PD_GN_FLUSH_PIXELS, hw - r0);
                    p->stats(acc, x + (size_t)r0 * ld + (size_t)s0, ld, rows, len, shift, delta, pass == 1);
                    fold(sum_g, acc, s0, len, cg, ga);
                }
            }
            for (int g = 0; g < ng; g++) {
                if (pass == 0) delta_g[g] = (float)(sum_g[g] / count);
                else rstd_g[g] = (float)(1.0 / sqrt(sum_g[g] / count + (double)eps));
            }
        }
        /* Pass 3: y = d * rstd * gamma + beta (+ SiLU). */
        for (int s0 = b0; s0 < b1; s0 += PD_GN_CHUNK) {
            const int len = PD_MIN(PD_GN_CHUNK, b1 - s0);
            spread(shift, shift_g, s0, len, cg, ga);
            spread(delta, delta_g, s0, len, cg, ga);
            spread(scale, rstd_g, s0, len, cg, ga);
            for (int j = 0; j < len; j++) {
                if (gamma) scale[j] *= gamma[s0 + j];
                bias[j] = beta ? beta[s0 + j] : 0.0f;
            }
            p->apply(y + s0, x + s0, ld, hw, len, shift, delta, scale, bias, silu);
        }
    }
}
