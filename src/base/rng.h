/*
 * rng.h - a random generator that reproduces PyTorch's CPU generator bit for bit.
 *
 * torch.Generator('cpu').manual_seed(seed) seeds an mt19937 with (seed & 0xffffffff).
 * pd_rng_randn(r, out, n) returns what torch.randn(n, generator=g) (float32) returns,
 * and leaves the generator in the same state, so successive draws (initial noise,
 * then the noise of ancestral sampler steps) match successive torch calls:
 *   - n >= 16: n uniform floats ((u32 & 0xffffff) * 2^-24), then Box-Muller on blocks
 *     of 16 (u1 = 1 - x[j], u2 = x[j+8], r = sqrt(-2 ln u1), x[j] = r cos(2 pi u2),
 *     x[j+8] = r sin(2 pi u2)); if n % 16 != 0 the last 16 values are recomputed from
 *     16 fresh uniforms. Computed in float32 exactly as torch's AVX2 kernel does (its
 *     Cephes log/sincos, with the FMAs GCC puts in them; see rng.c).
 *   - n < 16: per element, at::normal_distribution<double> with the generator's
 *     cached second Box-Muller sample (53-bit doubles from 64-bit draws).
 * pd_rng_randn_f64 is torch.randn(dtype=float64): the same, in double, with libm.
 * Reference: aten/src/ATen/native/cpu/DistributionTemplates.h, CPUGeneratorImpl.cpp.
 * The state is a plain value: copy it to fork a stream; no global state.
 */
#ifndef PD_BASE_RNG_H
#define PD_BASE_RNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pd_rng {
    uint32_t mt[624];
    int mti;
    bool has_next_double_normal;   /* torch's cached second Box-Muller sample */
    double next_double_normal;
} pd_rng;

void pd_rng_seed(pd_rng *r, uint64_t seed);
uint32_t pd_rng_u32(pd_rng *r);
uint64_t pd_rng_u64(pd_rng *r);                    /* torch random64() */
void pd_rng_randn(pd_rng *r, float *out, size_t n);  /* torch.randn float32 */
void pd_rng_rand(pd_rng *r, float *out, size_t n);   /* torch.rand float32 */
void pd_rng_randn_f64(pd_rng *r, double *out, size_t n);  /* torch.randn float64 */

#endif
