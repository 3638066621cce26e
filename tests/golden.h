/*
 * golden.h - reading reference tensors from ../shared/golden/cases in tests.
 *
 * A case is <name>.safetensors (+ <name>.json). golden_open() opens it with the
 * engine's own safetensors reader; golden_f32()/golden_ids() return malloc'd copies
 * (NULL + a test failure when the tensor is absent).
 */
#ifndef PD_TEST_GOLDEN_H
#define PD_TEST_GOLDEN_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "test.h"

static inline pd_st_file *golden_open(const char *case_name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/cases/%s.safetensors", pd_test_golden_dir(), case_name);
    pd_st_file *f = NULL;
    pd_error err = {0};
    if (pd_st_open(path, &f, &err) != PD_OK) PD_FAIL("cannot open golden case %s: %s", case_name, err.msg);
    return f;
}

/* Path of a golden model file or folder. */
static inline const char *golden_model(char *buf, size_t n, const char *rel) {
    snprintf(buf, n, "%s/models/%s", pd_test_golden_dir(), rel);
    return buf;
}

static inline float *golden_f32(const pd_st_file *f, const char *name, int64_t *numel) {
    const pd_st_tensor *t = pd_st_find(f, name);
    if (!t) {
        PD_FAIL("golden tensor '%s' missing", name);
        return NULL;
    }
    float *buf = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
    pd_error err = {0};
    if (!buf || pd_st_to_f32(t, buf, &err) != PD_OK) {
        PD_FAIL("golden tensor '%s': %s", name, err.msg);
        free(buf);
        return NULL;
    }
    if (numel) *numel = t->numel;
    return buf;
}

/* int64 ids -> int32. */
static inline int32_t *golden_ids(const pd_st_file *f, const char *name, int64_t *numel) {
    const pd_st_tensor *t = pd_st_find(f, name);
    if (!t || t->dtype != PD_DTYPE_I64) {
        PD_FAIL("golden tensor '%s' missing or not I64", name);
        return NULL;
    }
    int32_t *ids = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(int32_t));
    if (!ids) return NULL;
    for (int64_t i = 0; i < t->numel; i++) {
        int64_t v;
        memcpy(&v, (const unsigned char *)t->data + i * 8, 8);
        ids[i] = (int32_t)v;
    }
    if (numel) *numel = t->numel;
    return ids;
}

/* Fails the test when |got - ref| / max|ref| > tol; returns the relative error. */
static inline double golden_check(const char *what, const float *got, const float *ref, size_t n,
                                  double tol) {
    size_t worst = 0;
    double e = pd_test_rel_err(got, ref, n, &worst);
    if (!(e <= tol))
        PD_FAIL("%s: relative error %.3g > %.3g (worst at %zu: got %.7g, ref %.7g)", what, e, tol,
                worst, (double)got[worst], (double)ref[worst]);
    return e;
}

/* Compares got [h, w, c] NHWC (its first c_ref channels) with the golden NCHW tensor
 * name of g (golden_check with tol); INFINITY when the tensor is missing or misshapen. */
static inline double golden_check_nhwc(const char *label, const pd_st_file *g, const char *name,
                                       const float *got, int h, int w, int c, int c_ref, double tol) {
    int64_t n = 0;
    float *ref = golden_f32(g, name, &n);
    if (!ref) return INFINITY;
    double e = INFINITY;
    if (n != (int64_t)h * w * c_ref) {
        PD_FAIL("%s %s: %lld values, expected %d x %d x %d", label, name, (long long)n, c_ref, h, w);
    } else {
        float *mine = malloc((size_t)n * sizeof(float));   /* [c_ref, h, w] */
        for (int i = 0; i < c_ref; i++)
            for (int p = 0; p < h * w; p++) mine[(size_t)i * h * w + p] = got[(size_t)p * c + i];
        char what[256];
        snprintf(what, sizeof what, "%s %s", label, name);
        e = golden_check(what, mine, ref, (size_t)n, tol);
        free(mine);
    }
    free(ref);
    return e;
}

/* PSNR (dB) of two 8-bit images: 10 log10(255^2 / MSE); identical images count as 99 dB. */
static inline double golden_psnr_u8(const uint8_t *a, const uint8_t *b, size_t n) {
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)b[i];
        se += d * d;
    }
    if (se == 0) return 99.0;
    return 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

#endif
