/*
 * st_check.h - invariants every accepted tensor file (pd_st_file, safetensors or GGUF)
 * must hold, for the fuzzers: names non-empty, sorted and distinct and found by
 * pd_st_find; rank, numel = the product of the shape, nbytes = pd_dtype_bytes; data NULL
 * iff empty and inside the image at or after `data_floor` (both ends read, so ASan
 * checks them); pd_st_to_f32 either converts or says unsupported; metadata keys distinct
 * and found; misses miss. `require(cond, what)` reports a broken invariant (the fuzzers
 * abort).
 */
#ifndef PD_TESTS_ST_CHECK_H
#define PD_TESTS_ST_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

#define ST_CHECK_MAX_CONVERT ((int64_t)1 << 16)   /* tensors converted to fp32 per file */

static void st_check_file(const pd_st_file *f, const unsigned char *img, size_t size, size_t data_floor,
                          void (*require)(bool cond, const char *what)) {
    for (int i = 0; i < f->n_tensors; i++) {
        const pd_st_tensor *t = &f->tensors[i];
        require(t->name && t->name[0], "non-empty name");
        require(i == 0 || strcmp(f->tensors[i - 1].name, t->name) < 0, "sorted, distinct names");
        require(pd_st_find(f, t->name) == t, "pd_st_find finds each tensor");
        require(t->ndim >= 0 && t->ndim <= PD_ST_MAX_DIMS && t->numel >= 0, "rank and numel");
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            require(t->shape[d] >= 0, "non-negative dims");
            numel = t->shape[d] == 0 || numel == 0 ? 0 : numel * t->shape[d];   /* checked at parse */
        }
        require(numel == t->numel, "numel is the product of the shape");
        require(t->nbytes == pd_dtype_bytes(t->dtype, (size_t)t->numel), "nbytes");
        require((t->nbytes == 0) == (t->data == NULL), "data NULL iff empty");
        if (t->data) {
            const unsigned char *p = t->data;
            require(p >= img + data_floor && p <= img + size && t->nbytes <= (size_t)(img + size - p),
                    "data in bounds");
            volatile unsigned char sink = p[0] ^ p[t->nbytes - 1];   /* ASan checks both ends */
            (void)sink;
        }
        if (t->numel <= ST_CHECK_MAX_CONVERT) {
            float *dst = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
            require(dst != NULL, "out of memory in the fuzzer");
            pd_error err;
            pd_status st = pd_st_to_f32(t, dst, &err);
            require(st == PD_OK || st == PD_ERR_UNSUPPORTED, "pd_st_to_f32 status");
            free(dst);
        }
    }
    require(f->n_meta >= 0 && (f->n_meta == 0 || (f->meta_keys && f->meta_values)), "metadata arrays");
    for (int i = 0; i < f->n_meta; i++) {
        require(f->meta_keys[i] && f->meta_values[i], "metadata strings");
        require(pd_st_meta(f, f->meta_keys[i]) == f->meta_values[i], "pd_st_meta finds each key (distinct keys)");
    }
    require(pd_st_find(f, "\x01 not a tensor") == NULL, "miss");
    require(pd_st_meta(f, "\x01 not a key") == NULL, "meta miss");
}

/* The outcome of parsing a hostile image named `name`: a file and its invariants on
 * success (touch: the format's checks, st_check_file among them), else no file, a
 * format (or out-of-memory) status and a message that names the file. */
static void st_check_result(pd_status st, const pd_st_file *f, const pd_error *err, const char *name,
                            const unsigned char *img, size_t size,
                            void (*touch)(const pd_st_file *f, const unsigned char *img, size_t size),
                            void (*require)(bool cond, const char *what)) {
    char quoted[128];
    snprintf(quoted, sizeof quoted, "'%s'", name);
    if (st == PD_OK) {
        require(f != NULL, "file on success");
        touch(f, img, size);
    } else {
        require(f == NULL, "no file on failure");
        require(st == PD_ERR_FORMAT || st == PD_ERR_OOM, "status");
        require(err->code == st && strstr(err->msg, quoted) != NULL, "message names the file");
    }
}

#endif
