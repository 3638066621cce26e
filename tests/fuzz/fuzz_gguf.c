/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader (src/io/gguf.c) and the format
 * sniffing in front of it (src/io/tensor_file.c).
 *
 * Input layout (the first byte picks a mode, so the fuzzer reaches deep checks even
 * with no corpus):
 *   mode 0  data[1..]: a whole file image, read with pd_tensor_file_parse (so
 *           safetensors and zip sniffing are exercised too);
 *   mode 1  data[1..]: everything after "GGUF" and version 3, read with pd_gguf_parse;
 *   mode 2  data[1] picks one of the valid seed files built below, data[2] sets a
 *           truncation (>= 0xf0: cut the image to (data[2] - 0xf0)/16 of its length),
 *           and each following 3 bytes (pos lo, pos hi, value) overwrite one byte.
 * The mode is data[0] % 3. A crashing input can be replayed with the same binary.
 *
 * Every image is parsed from an exactly sized heap copy, so ASan sees any over-read.
 * When it is accepted, every tensor is checked: names sorted, distinct and found by
 * pd_st_find, numel the product of the shape (dims >= 1, rank <= 4), nbytes ==
 * pd_dtype_bytes(dtype, numel), data inside the image (both ends touched), GGUF data
 * aligned to 32 bytes relative to the image when the alignment is the default, small
 * tensors converted with pd_st_to_f32; every metadata key is looked up. A rejected
 * image must come with a message naming it. A violated property calls abort().
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "io/tensor_file.h"
#include "byte_builder.h"
#include "st_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.gguf"

static void require(bool cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_gguf: property violated: %s\n", what);
        abort();
    }
}

/* ---- seed images ------------------------------------------------------------------- */

static void bb_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    bb_str(b, name);
    bb_le(b, n_dims, 4);
    for (uint32_t d = 0; d < n_dims; d++) bb_le(b, ne[d], 8);
    bb_le(b, type, 4);
    bb_le(b, off, 8);
}

static void bb_finish(bb *b, size_t align, size_t data_len) {
    while (b->len % align) bb_le(b, 0, 1);
    for (size_t i = 0; i < data_len; i++) bb_le(b, (i * 37 + 11) & 0xff, 1);
}

/* Seed 0: kvs of several types, an array of strings, q8_0/f16/f32/i32 tensors. */
static bb seed0(void) {
    bb b = {0};
    bb_raw(&b, "GGUF", 4);
    bb_le(&b, 3, 4);
    bb_le(&b, 4, 8);
    bb_le(&b, 5, 8);
    bb_str(&b, "general.alignment");
    bb_le(&b, 4, 4);
    bb_le(&b, 32, 4);
    bb_str(&b, "general.name");
    bb_le(&b, 8, 4);
    bb_str(&b, "seed");
    bb_str(&b, "tok");
    bb_le(&b, 9, 4);
    bb_le(&b, 8, 4);
    bb_le(&b, 2, 8);
    bb_str(&b, "a");
    bb_str(&b, "bc");
    bb_str(&b, "f");
    bb_le(&b, 6, 4);
    bb_le(&b, 0x3f800000, 4);
    bb_str(&b, "v");
    bb_le(&b, 7, 4);
    bb_le(&b, 1, 1);
    const uint64_t q[2] = {64, 2}, h[1] = {8}, w[3] = {2, 2, 2}, s[1] = {3};
    bb_tensor(&b, "blk.q", 2, q, 8, 0);    /* 136 bytes */
    bb_tensor(&b, "h", 1, h, 1, 160);      /* 16 */
    bb_tensor(&b, "w", 3, w, 0, 192);      /* 32 */
    bb_tensor(&b, "ids", 1, s, 26, 224);   /* 12 */
    bb_finish(&b, 32, 236);
    return b;
}

/* Seed 1: v2, alignment 64, q4_0 / q4_1 / bf16 / scalar f64. */
static bb seed1(void) {
    bb b = {0};
    bb_raw(&b, "GGUF", 4);
    bb_le(&b, 2, 4);
    bb_le(&b, 4, 8);
    bb_le(&b, 1, 8);
    bb_str(&b, "general.alignment");
    bb_le(&b, 4, 4);
    bb_le(&b, 64, 4);
    const uint64_t a[2] = {32, 2}, c[4] = {32, 1, 1, 1}, d[1] = {4};
    bb_tensor(&b, "a", 2, a, 2, 0);      /* 36 */
    bb_tensor(&b, "c", 4, c, 3, 64);     /* 20 */
    bb_tensor(&b, "d", 1, d, 30, 128);   /* 8 */
    bb_tensor(&b, "e", 0, NULL, 28, 192);  /* 8 */
    bb_finish(&b, 64, 200);
    return b;
}

/* ---- checks ------------------------------------------------------------------------ */

static void touch(const pd_st_file *f, const unsigned char *img, size_t size) {
    st_check_file(f, img, size, 0, require);
    if (f->format != PD_ST_FORMAT_GGUF) return;
    for (int i = 0; i < f->n_tensors; i++) {
        const pd_st_tensor *t = &f->tensors[i];
        require(t->ndim <= PD_GGUF_MAX_DIMS && t->numel >= 1 && t->data, "GGUF tensors are non-empty");
        require(t->ndim == 0 || t->shape[t->ndim - 1] % pd_dtype_block(t->dtype) == 0, "whole blocks per row");
        if (!pd_st_meta(f, PD_GGUF_ALIGNMENT_KEY))
            require(((const unsigned char *)t->data - img) % PD_GGUF_DEFAULT_ALIGNMENT == 0, "default-aligned data");
    }
}

/* must_accept: the image is an unmodified seed. */
static void run_image(const unsigned char *img, size_t size, bool sniff, bool must_accept) {
    unsigned char *copy = malloc(size ? size : 1);
    require(copy != NULL, "out of memory in the fuzzer");
    if (size) memcpy(copy, img, size);
    pd_error err = {PD_OK, ""};
    pd_st_file *f = NULL;
    pd_status st = sniff ? pd_tensor_file_parse(copy, size, NAME, &f, &err) : pd_gguf_parse(copy, size, NAME, &f, &err);
    if (must_accept && st != PD_OK) fprintf(stderr, "fuzz_gguf: seed rejected: %s\n", err.msg);
    require(!must_accept || st == PD_OK, "an unmodified seed is accepted");
    st_check_result(st, f, &err, NAME, copy, size, touch, require);
    pd_st_close(f);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) {
        run_image(data, 0, true, false);
        return 0;
    }
    int mode = data[0] % 3;
    if (mode == 0) {
        run_image(data + 1, size - 1, true, false);
        return 0;
    }
    bb img = {0};
    bool pristine = false;
    if (mode == 1) {
        bb_raw(&img, "GGUF\3\0\0\0", 8);
        bb_raw(&img, data + 1, size - 1);
    } else {
        img = (size > 1 && data[1] % 2) ? seed1() : seed0();
        pristine = size <= 3 && !(size > 2 && data[2] >= 0xf0);
        if (size > 2 && data[2] >= 0xf0) img.len = img.len * (size_t)(data[2] - 0xf0) / 16;
        for (size_t i = 3; i + 3 <= size && img.len > 0; i += 3) {
            size_t pos = ((size_t)data[i] | (size_t)data[i + 1] << 8) % img.len;
            img.p[pos] = data[i + 2];
        }
    }
    run_image(img.p, img.len, false, pristine);
    free(img.p);
    return 0;
}
