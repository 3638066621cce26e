/*
 * vmath_coef.h - polynomial coefficients shared by the SIMD exp/GELU (vmath_*.h), so
 * every ISA computes the same approximation.
 *
 * exp(x) = 2^n * e^r, n = round(x / ln2), r = x - n*ln2 (Cody-Waite split of ln2),
 *   e^r ~ P6(r) on |r| <= ln2/2, Chebyshev fit, max abs error 2.0e-9:
 *   mpmath.chebyfit(mpmath.exp, [-ln2/2, ln2/2], 7)
 *
 * GELU(x) = x * Phi(x). With u = |x|, h(u) = Phi(-u) = exp(-u^2/2) * g(u) where
 *   g(u) = 0.5 * erfc(u / sqrt(2)) * exp(u^2 / 2) is smooth and positive. Then
 *   Phi(x) = h for x < 0 and 1 - h for x >= 0: no 1 + erf cancellation in the tail.
 *   g is fitted piecewise on 8 intervals [0,1,2,3,4,6,8,11,16] by degree-7
 *   polynomials in t = u - center (Chebyshev fits, max rel error 4.5e-8):
 *   mpmath.chebyfit(lambda t: g(t + c), [a - c, b - c], 8)
 *   Interval index: min(trunc(u), 4) + (u >= 6) + (u >= 8) + (u >= 11), u clamped to
 *   PD_GELU_U_MAX. u^2 is split exactly (hi + lo via fma) so exp(-u^2/2) keeps its
 *   accuracy for large u.
 */
#ifndef PD_KERNELS_VMATH_COEF_H
#define PD_KERNELS_VMATH_COEF_H

#define PD_EXP_LOG2E 1.44269504088896341f
#define PD_EXP_LN2_HI 0.693145751953125f          /* ln2 with 12 low bits zero */
#define PD_EXP_LN2_LO 1.42860682030941723212e-6f  /* ln2 - PD_EXP_LN2_HI */
/* exp(x) for x < PD_EXP_X_MIN is flushed to 0 (exp(-87) = 1.65e-38 is the smallest
 * result): SIMD math never produces denormals, which cost a ~100-cycle microcode
 * assist per instruction on x86 (masked -inf scores would hit it on every call). */
#define PD_EXP_X_MIN -87.0f
#define PD_EXP_X_MAX 89.0f    /* exp(89) > FLT_MAX: +inf */
#define PD_EXP_C6 1.394110843e-03f
#define PD_EXP_C5 8.375126398e-03f
#define PD_EXP_C4 4.166635290e-02f
#define PD_EXP_C3 1.666641551e-01f
#define PD_EXP_C2 5.000000047e-01f
#define PD_EXP_C1 1.000000038e+00f
#define PD_EXP_C0 1.0f

/* GELU for |x| >= PD_GELU_U_MAX: x (x > 0) or -0 (x < 0; |gelu| < 5e-35 there), so
 * h = Phi(-u) >= 3.7e-36 stays a normal float. */
#define PD_GELU_U_MAX 12.5f

/* Interval centers and coefficients c[j][interval] of g(center + t) = sum_j c[j] t^j. */
static const float PD_GELU_CENTER[8] = {0.5f, 1.5f, 2.5f, 3.5f, 5.0f, 7.0f, 9.5f, 13.5f};
static const float PD_GELU_COEF[8][8] = {
    {3.496188245e-01f, 2.057806661e-01f, 1.413313313e-01f, 1.063451536e-01f,
     7.691930454e-02f, 5.589348240e-02f, 4.154328842e-02f, 2.939173136e-02f},
    {-2.241328600e-01f, -9.027127972e-02f, -4.561395193e-02f, -2.673424268e-02f,
     -1.434575546e-02f, -7.687903313e-03f, -4.281039627e-03f, -2.153903384e-03f},
    {1.187775096e-01f, 3.518698207e-02f, 1.364823877e-02f, 6.387654225e-03f,
     2.595277687e-03f, 1.039080784e-03f, 4.367071817e-04f, 1.570192218e-04f},
    {-5.491530972e-02f, -1.249701735e-02f, -3.831132012e-03f, -1.459153815e-03f,
     -4.564812063e-04f, -1.381154960e-04f, -4.411104097e-05f, -1.138759077e-05f},
    {2.280361882e-02f, 4.108182196e-03f, 1.017340876e-03f, 3.201117687e-04f,
     7.814729194e-05f, 1.806216945e-05f, 4.410395043e-06f, 8.205745110e-07f},
    {-8.692261693e-03f, -1.265745741e-03f, -2.573691405e-04f, -6.771515468e-05f,
     -1.306800423e-05f, -2.327107223e-06f, -4.371447958e-07f, -5.891428543e-08f},
    {3.245274819e-03f, 3.822495376e-04f, 6.399428289e-05f, 1.412180367e-05f,
     2.247848665e-06f, 3.048734059e-07f, 4.482892474e-08f, 4.491009579e-09f},
    {-1.072079940e-03f, -1.054245071e-04f, -1.486995872e-05f, -2.798033066e-06f,
     -3.587503130e-07f, -3.813510873e-08f, -4.360977792e-09f, -3.190861016e-10f},
};

#define PD_QUICK_GELU_K 1.702f

#endif
