/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors reader (src/io/safetensors.c).
 *
 * Input layout (the first byte picks a mode, so the fuzzer reaches deep checks even
 * with no corpus):
 *   mode 0  data[1..]: a whole file image, 8-byte length prefix included;
 *   mode 1  data[1..]: the header JSON only; the target adds a correct length prefix
 *           and a 256-byte data section;
 *   mode 2  data[1] picks one of the valid seed files built below, data[2] sets a
 *           truncation (>= 0xf0: cut the image to (data[2] - 0xf0)/16 of its length),
 *           and each following 3 bytes (pos lo, pos hi, value) overwrite one byte.
 * The mode is data[0] % 3. A crashing input can be replayed with the same binary.
 *
 * Every image is parsed with pd_st_parse from an exactly sized heap copy, so ASan sees
 * any over-read. When it is accepted, every tensor is touched: pd_st_find by name
 * must return it, its data range must lie inside the image and match numel * dtype
 * size, small tensors are converted with pd_st_to_f32, and every metadata key is
 * looked up with pd_st_meta. A rejected image must come with a message naming it.
 * A violated property calls abort(), which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "st_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.safetensors"
#define DATA_LEN 256

static const char *const SEEDS[] = {
    "{\"__metadata__\": {\"format\": \"pt\"},"
    " \"a.weight\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},"
    " \"a.bias\": {\"dtype\": \"F16\", \"shape\": [3], \"data_offsets\": [24, 30]},"
    " \"b\": {\"dtype\": \"BF16\", \"shape\": [2, 2], \"data_offsets\": [30, 38]},"
    " \"ids\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [38, 54]},"
    " \"s\": {\"dtype\": \"F16\", \"shape\": [], \"data_offsets\": [54, 56]},"
    " \"e\": {\"dtype\": \"F32\", \"shape\": [0, 4], \"data_offsets\": [56, 56]}}    ",
    "{\"x\": {\"dtype\": \"F64\", \"shape\": [2], \"data_offsets\": [0, 16]},"
    " \"y\": {\"dtype\": \"I32\", \"shape\": [1, 1, 2], \"data_offsets\": [16, 24]},"
    " \"z\": {\"dtype\": \"U8\", \"shape\": [3], \"data_offsets\": [24, 27]},"
    " \"w\": {\"dtype\": \"BOOL\", \"shape\": [1], \"data_offsets\": [27, 28]}}",
    "{\"__metadata__\": {\"k\": \"v\", \"caf\\u00e9\": \"\\ud83d\\ude00\"},"
    " \"model.diffusion_model.input_blocks.0.0.weight\": {\"dtype\": \"F16\", \"shape\": [4, 1, 3, 3],"
    " \"data_offsets\": [0, 72]}}",
    "{}",
};

static void require(bool cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_safetensors: property violated: %s\n", what);
        abort();
    }
}

static void touch(const pd_st_file *f, const unsigned char *img, size_t size) {
    st_check_file(f, img, size, 8, require);   /* data after the 8-byte length */
}

static void run_image(const unsigned char *img, size_t size) {
    /* An exactly sized copy, so that reading one byte past the end is caught. */
    unsigned char *copy = malloc(size ? size : 1);
    require(copy != NULL, "out of memory in the fuzzer");
    if (size) memcpy(copy, img, size);
    pd_error err = {PD_OK, ""};
    pd_st_file *f = NULL;
    pd_status st = pd_st_parse(copy, size, NAME, &f, &err);
    st_check_result(st, f, &err, NAME, copy, size, touch, require);
    pd_st_close(f);
    free(copy);
}

/* 8-byte length + header + DATA_LEN pattern bytes, into a malloc'd image. */
static unsigned char *build_image(const void *header, size_t n, size_t *size) {
    *size = 8 + n + DATA_LEN;
    unsigned char *img = malloc(*size);
    require(img != NULL, "out of memory in the fuzzer");
    for (int i = 0; i < 8; i++) img[i] = (unsigned char)((uint64_t)n >> (8 * i));
    if (n) memcpy(img + 8, header, n);
    for (size_t i = 0; i < DATA_LEN; i++) img[8 + n + i] = (unsigned char)(i * 37 + 11);
    return img;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) {
        run_image(data, 0);
        return 0;
    }
    int mode = data[0] % 3;
    if (mode == 0) {
        run_image(data + 1, size - 1);
        return 0;
    }
    size_t img_size = 0;
    unsigned char *img;
    if (mode == 1) {
        img = build_image(data + 1, size - 1, &img_size);
    } else {
        const char *seed = SEEDS[(size > 1 ? data[1] : 0) % (sizeof SEEDS / sizeof SEEDS[0])];
        img = build_image(seed, strlen(seed), &img_size);
        if (size > 2 && data[2] >= 0xf0) img_size = img_size * (size_t)(data[2] - 0xf0) / 16;
        for (size_t i = 3; i + 3 <= size && img_size > 0; i += 3) {
            size_t pos = ((size_t)data[i] | (size_t)data[i + 1] << 8) % img_size;
            img[pos] = data[i + 2];
        }
    }
    run_image(img, img_size);
    free(img);
    return 0;
}
