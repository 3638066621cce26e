/*
 * test_gguf.c - the GGUF reader and writer (src/io/gguf.c, gguf_write.c) and the
 * format sniffing in front of both readers (src/io/tensor_file.c).
 *
 * Images are built byte by byte by the bb_* helpers below, independently of the
 * writer, from the layout in ggml's docs/gguf.md. The malformed cases follow
 * llama.cpp's test-gguf: one handcrafted file per rule, each checked for
 * PD_ERR_FORMAT and for a message naming the file and the detail at fault. Truncation
 * and byte-overwrite sweeps (SQLite style) check that every damaged variant is
 * rejected cleanly or still self-consistent. The writer is checked by round trip
 * through the strict reader, and for no-clobber and no-leftover behaviour.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

#include "io/gguf.h"
#include "io/tensor_file.h"
#include "byte_builder.h"
#include "test.h"

#define BAD_NAME "bad.gguf"

/* ---- GGUF pieces on the byte builder ------------------------------------------------ */

static void bb_u8(bb *b, unsigned v) { bb_le(b, v, 1); }
static void bb_u32(bb *b, uint32_t v) { bb_le(b, v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_le(b, v, 8); }

static void bb_hdr(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_raw(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}

static void bb_kv(bb *b, const char *key, uint32_t type) {
    bb_str(b, key);
    bb_u32(b, type);
}

static void bb_kv_u32(bb *b, const char *key, uint32_t v) {
    bb_kv(b, key, PD_GGUF_TYPE_U32);
    bb_u32(b, v);
}

static void bb_kv_str(bb *b, const char *key, const char *v) {
    bb_kv(b, key, PD_GGUF_TYPE_STRING);
    bb_str(b, v);
}

/* Tensor info with ne innermost first, as on disk. */
static void bb_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, offset);
}

static void bb_pad(bb *b, size_t align) {
    while (b->len % align) bb_u8(b, 0);
}

/* n pattern bytes. */
static void bb_data(bb *b, size_t n) {
    for (size_t i = 0; i < n; i++) bb_u8(b, (unsigned)(i * 7 + 3) & 0xff);
}

/* A whole one-tensor file: v3, no kvs, one 2-d tensor [ne1, ne0] of type at offset,
 * padding to 32 and data_len bytes of data. */
static bb one_tensor(const char *name, uint64_t ne0, uint64_t ne1, uint32_t type, uint64_t offset, size_t data_len) {
    bb b = {0};
    bb_hdr(&b, 3, 1, 0);
    uint64_t ne[2] = {ne0, ne1};
    bb_tensor(&b, name, 2, ne, type, offset);
    bb_pad(&b, 32);
    bb_data(&b, data_len);
    return b;
}

/* ---- checks ------------------------------------------------------------------------ */

/* Invariants of an accepted file (as in the fuzz target). */
static bool check_invariants(const pd_st_file *f, const unsigned char *bytes, size_t size) {
    for (int i = 0; i < f->n_tensors; i++) {
        const pd_st_tensor *t = &f->tensors[i];
        if (!t->name || !*t->name) return false;
        if (i > 0 && strcmp(f->tensors[i - 1].name, t->name) >= 0) return false;
        if (t->ndim < 0 || t->ndim > PD_GGUF_MAX_DIMS || t->numel < 1) return false;
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 1) return false;
            numel *= t->shape[d];
        }
        if (numel != t->numel) return false;
        if (t->nbytes != pd_dtype_bytes(t->dtype, (size_t)t->numel) || t->nbytes == 0 || !t->data) return false;
        const unsigned char *p = t->data;
        if (p < bytes + 24 || p > bytes + size || t->nbytes > (size_t)(bytes + size - p)) return false;
        if (pd_st_find(f, t->name) != t) return false;
    }
    for (int i = 0; i < f->n_meta; i++)
        if (!f->meta_keys[i] || !f->meta_values[i] || pd_st_meta(f, f->meta_keys[i]) != f->meta_values[i]) return false;
    return true;
}

/* Expects b to be rejected with PD_ERR_FORMAT and a message that names BAD_NAME and
 * contains needle. Frees b. */
static void expect_reject(const char *what, bb b, const char *needle) {
    unsigned char *copy = malloc(b.len ? b.len : 1);   /* exact size: ASan sees over-reads */
    if (b.len) memcpy(copy, b.p, b.len);
    pd_error err = {PD_OK, ""};
    pd_st_file *f = (pd_st_file *)&err;   /* must be reset to NULL */
    pd_status st = pd_gguf_parse(copy, b.len, BAD_NAME, &f, &err);
    CHECK_MSG(st == PD_ERR_FORMAT, "%s: status %d (%s), expected PD_ERR_FORMAT", what, st, err.msg);
    CHECK_MSG(f == NULL, "%s: *out not NULL after a failure", what);
    if (st == PD_OK) pd_st_close(f);
    CHECK_MSG(err.code == PD_ERR_FORMAT, "%s: err.code %d", what, err.code);
    CHECK_MSG(strstr(err.msg, "'" BAD_NAME "'") != NULL, "%s: message '%s' does not name the file", what, err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, needle);
    free(copy);
    free(b.p);
}

/* ---- malformed files ---------------------------------------------------------------- */

static void test_reject_header(void) {
    bb b = {0};
    expect_reject("empty file", b, "file is 0 bytes, too short");
    b = (bb){0};
    bb_raw(&b, "GGU", 3);
    expect_reject("3 bytes", b, "file is 3 bytes, too short");
    b = (bb){0};
    bb_raw(&b, "GGUX", 4);
    bb_u32(&b, 3);
    expect_reject("bad magic", b, "bad magic 'GGUX' (expected 'GGUF')");
    b = (bb){0};
    bb_raw(&b, "\x00\x01GU", 4);
    expect_reject("bad magic, unprintable", b, "bad magic '??GU'");
    b = (bb){0};
    bb_hdr(&b, 1, 0, 0);
    expect_reject("version 1", b, "GGUF version 1 is not supported");
    b = (bb){0};
    bb_hdr(&b, 0, 0, 0);
    expect_reject("version 0", b, "unsupported GGUF version 0 (only 2 and 3)");
    b = (bb){0};
    bb_hdr(&b, 4, 0, 0);
    expect_reject("version 4", b, "unsupported GGUF version 4");
    b = (bb){0};
    bb_hdr(&b, 0x03000000, 0, 0);
    expect_reject("big-endian version", b, "looks byte-swapped: big-endian files are not supported");
    b = (bb){0};
    bb_raw(&b, "GGUF\3\0", 6);
    expect_reject("cut in the version", b, "truncated at byte 4 reading the version");
    b = (bb){0};
    bb_raw(&b, "GGUF\3\0\0\0\1\0\0", 11);
    expect_reject("cut in the tensor count", b, "reading the tensor count");
    b = (bb){0};
    bb_raw(&b, "GGUF\3\0\0\0", 8);
    bb_u64(&b, 0);
    bb_raw(&b, "\1\0", 2);
    expect_reject("cut in the kv count", b, "reading the kv count");
    b = (bb){0};
    bb_hdr(&b, 3, UINT64_MAX, 0);
    expect_reject("tensor count 2^64-1", b, "tensor count 18446744073709551615 exceeds the limit");
    b = (bb){0};
    bb_hdr(&b, 3, 0, (uint64_t)1 << 63);
    expect_reject("kv count 2^63", b, "kv count 9223372036854775808 exceeds the limit");
    b = (bb){0};
    bb_hdr(&b, 3, 1000, 0);
    bb_data(&b, 100);
    expect_reject("1000 tensors in 100 bytes", b, "0 kvs and 1000 tensors cannot fit in the 100 bytes left");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 100);
    bb_kv_u32(&b, "a", 1);
    expect_reject("100 kvs in 17 bytes", b, "100 kvs and 0 tensors cannot fit");
}

static void test_reject_kvs(void) {
    bb b = {0};
    bb_hdr(&b, 3, 0, 1);
    bb_u64(&b, 1000);
    bb_raw(&b, "general.name", 12);
    bb_u32(&b, 8);
    expect_reject("key past EOF", b, "a key of 1000 bytes at byte 32 runs past the end");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_u64(&b, (uint64_t)1 << 40);
    bb_data(&b, 40);
    expect_reject("key length 2^40", b, "a key has length 1099511627776, more than the limit 65535");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv_u32(&b, "", 5);
    expect_reject("empty key", b, "key 0 is empty");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_strn(&b, "ab\0c", 4);
    bb_u32(&b, PD_GGUF_TYPE_U8);
    bb_u8(&b, 1);
    expect_reject("NUL in a key", b, "key 'ab' contains a NUL byte");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, "k", 13);
    bb_u32(&b, 0);
    expect_reject("kv type 13", b, "key 'k' has invalid value type 13");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, "k", 0xffffffffu);
    bb_u32(&b, 0);
    expect_reject("kv type 2^32-1", b, "invalid value type 4294967295");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, "k", PD_GGUF_TYPE_STRING);
    bb_u64(&b, PD_GGUF_MAX_STRING + 1);
    bb_data(&b, 16);
    expect_reject("string value over 16 MiB", b, "key 'k' a string value has length 16777217, more than the limit");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, "k", PD_GGUF_TYPE_STRING);
    bb_u64(&b, 50);
    bb_data(&b, 20);
    expect_reject("string value past EOF", b, "key 'k' a string value of 50 bytes at byte 45 runs past the end");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, "k", PD_GGUF_TYPE_STRING);
    bb_strn(&b, "x\0y", 3);
    expect_reject("NUL in a string value", b, "string value of key 'k' contains a NUL byte");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, "flag", PD_GGUF_TYPE_BOOL);
    bb_u8(&b, 2);
    expect_reject("bool 2", b, "bool value of key 'flag' is 2, not 0 or 1");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, "big", PD_GGUF_TYPE_U64);
    bb_u32(&b, 7);
    bb_u8(&b, 0);   /* 13 bytes left after the counts, the u64 needs 8 of the last 5 */
    expect_reject("u64 value cut", b, "reading the u64 value of key 'big'");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, "arr", PD_GGUF_TYPE_ARRAY);
    bb_u32(&b, PD_GGUF_TYPE_ARRAY);
    bb_u64(&b, 1);
    bb_u32(&b, PD_GGUF_TYPE_U8);
    bb_u64(&b, 0);
    expect_reject("nested array", b, "key 'arr': arrays of arrays are not supported");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, "arr", PD_GGUF_TYPE_ARRAY);
    bb_u32(&b, 13);
    bb_u64(&b, 0);
    expect_reject("array element type 13", b, "key 'arr': invalid array element type 13");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, "arr", PD_GGUF_TYPE_ARRAY);
    bb_u32(&b, PD_GGUF_TYPE_U64);
    bb_u64(&b, (uint64_t)1 << 61);   /* x 8 bytes wraps to 0 in 64 bits */
    bb_data(&b, 8);
    expect_reject("array count x size wraps", b, "key 'arr': array of 2305843009213693952 u64 runs past the end");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, "arr", PD_GGUF_TYPE_ARRAY);
    bb_u32(&b, PD_GGUF_TYPE_F32);
    bb_u64(&b, 3);
    bb_data(&b, 11);
    expect_reject("array one byte short", b, "array of 3 f32 runs past the end of the file (11 bytes left)");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, "tokens", PD_GGUF_TYPE_ARRAY);
    bb_u32(&b, PD_GGUF_TYPE_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "hello");
    bb_u64(&b, 9);
    bb_raw(&b, "world", 5);
    expect_reject("array string past EOF", b, "key 'tokens' an array string of 9 bytes");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, "flags", PD_GGUF_TYPE_ARRAY);
    bb_u32(&b, PD_GGUF_TYPE_BOOL);
    bb_u64(&b, 3);
    bb_raw(&b, "\1\5\0", 3);
    expect_reject("array bool 5", b, "key 'flags': bool element 1 is 5, not 0 or 1");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 3);
    bb_kv_u32(&b, "a", 1);
    bb_kv_str(&b, "b", "x");
    bb_kv_str(&b, "a", "y");
    expect_reject("duplicate keys", b, "duplicate key 'a'");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv(&b, PD_GGUF_ALIGNMENT_KEY, PD_GGUF_TYPE_U64);
    bb_u64(&b, 32);
    expect_reject("alignment u64", b, "general.alignment has type u64, expected u32");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv_str(&b, PD_GGUF_ALIGNMENT_KEY, "32");
    expect_reject("alignment string", b, "general.alignment has type string, expected u32");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv_u32(&b, PD_GGUF_ALIGNMENT_KEY, 0);
    expect_reject("alignment 0", b, "general.alignment is 0, not a non-zero power of two");
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv_u32(&b, PD_GGUF_ALIGNMENT_KEY, 24);
    expect_reject("alignment 24", b, "general.alignment is 24, not a non-zero power of two");
}

static void test_reject_tensors(void) {
    const uint64_t ne2[2] = {4, 2};
    bb b = {0};
    bb_hdr(&b, 3, 1, 0);
    bb_u64(&b, 100);
    bb_raw(&b, "w", 1);
    bb_data(&b, 30);
    expect_reject("name past EOF", b, "a tensor name of 100 bytes");
    b = (bb){0};
    bb_hdr(&b, 3, 1, 0);
    bb_tensor(&b, "", 2, ne2, 0, 0);
    expect_reject("empty name", b, "tensor name 0 is empty");
    b = (bb){0};
    bb_hdr(&b, 3, 1, 0);
    bb_strn(&b, "a\0b", 3);
    bb_u32(&b, 1);
    bb_u64(&b, 4);
    bb_u32(&b, 0);
    bb_u64(&b, 0);
    expect_reject("NUL in a name", b, "tensor name 'a' contains a NUL byte");
    b = (bb){0};
    bb_hdr(&b, 3, 1, 0);
    const uint64_t ne5[5] = {1, 1, 1, 1, 1};
    bb_tensor(&b, "w", 5, ne5, 0, 0);
    expect_reject("5 dims", b, "tensor 'w' has 5 dimensions, more than 4");
    expect_reject("a dim of 0", one_tensor("w", 4, 0, 0, 0, 64), "tensor 'w': ne[1] is 0");
    expect_reject("dim 2^63", one_tensor("w", (uint64_t)1 << 63, 1, 0, 0, 64),
                  "tensor 'w': ne[0] = 9223372036854775808 is too large");
    expect_reject("elements overflow", one_tensor("w", (uint64_t)1 << 32, (uint64_t)1 << 31, 0, 0, 64),
                  "shape [2147483648, 4294967296] has more than 2^63 elements");
    expect_reject("bytes overflow", one_tensor("w", (uint64_t)1 << 61, 2, 28, 0, 64),
                  "shape [2, 2305843009213693952] x f64 overflows the byte size");
    expect_reject("unknown type 99", one_tensor("w", 4, 2, 99, 0, 64), "tensor 'w' has unknown ggml type 99");
    expect_reject("removed type 4", one_tensor("w", 32, 1, 4, 0, 64), "tensor 'w' has unknown ggml type 4");
    expect_reject("removed type 31", one_tensor("w", 32, 1, 31, 0, 64), "unknown ggml type 31");
    expect_reject("q4_K", one_tensor("w", 256, 1, 12, 0, 256),
                  "tensor 'w' has ggml type q4_K (12); supported: f32, f16, bf16, q8_0, q4_0, q4_1");
    expect_reject("q5_0", one_tensor("w", 32, 1, 6, 0, 64), "has ggml type q5_0 (6)");
    expect_reject("iq2_xxs", one_tensor("w", 256, 1, 16, 0, 256), "has ggml type iq2_xxs (16)");
    expect_reject("tq1_0", one_tensor("w", 256, 1, 34, 0, 256), "has ggml type tq1_0 (34)");
    expect_reject("q8_0 row of 33", one_tensor("w", 33, 2, 8, 0, 200),
                  "tensor 'w': row length ne[0] = 33 is not a multiple of the q8_0 block size 32");
    expect_reject("q4_1 row of 16", one_tensor("w", 16, 4, 3, 0, 200), "ne[0] = 16 is not a multiple of the q4_1");
    b = (bb){0};
    bb_hdr(&b, 3, 1, 0);
    bb_tensor(&b, "s", 0, NULL, 2, 0);
    bb_pad(&b, 32);
    bb_data(&b, 32);
    expect_reject("q4_0 scalar", b, "tensor 's': row length ne[0] = 1 is not a multiple of the q4_0 block size 32");
    expect_reject("offset 4", one_tensor("w", 4, 2, 0, 4, 64),
                  "tensor 'w': offset 4 is not a multiple of the alignment 32");
    b = (bb){0};
    bb_hdr(&b, 3, 1, 1);
    bb_kv_u32(&b, PD_GGUF_ALIGNMENT_KEY, 64);
    bb_tensor(&b, "w", 2, ne2, 0, 32);
    bb_pad(&b, 64);
    bb_data(&b, 128);
    expect_reject("offset 32 with alignment 64", b, "offset 32 is not a multiple of the alignment 64");
    expect_reject("data past the end", one_tensor("w", 4, 2, 0, 0, 31),
                  "tensor 'w': data [0, +32) is past the end of the data section (31 bytes)");
    expect_reject("data at an offset past the end", one_tensor("w", 4, 2, 0, 64, 64), "data [64, +32) is past the end");
    expect_reject("offset near 2^64", one_tensor("w", 4, 2, 0, UINT64_MAX - 31, 64), "is past the end of the data section");
    b = (bb){0};
    bb_hdr(&b, 3, 1, 0);
    bb_tensor(&b, "w", 2, ne2, 0, 0);
    expect_reject("no padding, no data", b, "the data section would start at byte 96");
    b = (bb){0};
    bb_hdr(&b, 3, 2, 0);
    const uint64_t ne16[1] = {16};
    bb_tensor(&b, "a", 1, ne16, 0, 0);    /* [0, 64) */
    bb_tensor(&b, "b", 1, ne2, 0, 32);    /* [32, 48) */
    bb_pad(&b, 32);
    bb_data(&b, 128);
    expect_reject("overlap", b, "tensors 'a' [0, 64) and 'b' [32, 48) overlap");
    b = (bb){0};
    bb_hdr(&b, 3, 2, 0);
    bb_tensor(&b, "w", 2, ne2, 0, 0);
    bb_tensor(&b, "w", 2, ne2, 0, 32);
    bb_pad(&b, 32);
    bb_data(&b, 64);
    expect_reject("duplicate names", b, "duplicate tensor name 'w'");
    b = one_tensor("w", 4, 2, 0, 0, 32);
    b.len = 24 + 9 + 4 + 12;
    expect_reject("cut in a dimension", b, "truncated at byte 45 reading tensor 'w' a dimension");
    b = one_tensor("w", 4, 2, 0, 0, 32);
    b.len = 24 + 9 + 4 + 16 + 4 + 3;
    expect_reject("cut in the offset", b, "reading tensor 'w' the data offset");
}

/* n_dims cut: the count check needs 25 bytes per tensor, so only a file that claims
 * one tensor and then ends inside n_dims reaches the cursor's message. */
static void test_reject_cut_n_dims(void) {
    bb b = {0};
    bb_hdr(&b, 3, 1, 0);
    bb_strn(&b, "w2345678901234567", 17);
    bb_raw(&b, "\2\0", 2);
    expect_reject("cut in n_dims", b, "reading tensor 'w2345678901234567' n_dims (needs 4 bytes, 2 left)");
}

static void test_reject_zip(void) {
    pd_error err = {PD_OK, ""};
    pd_st_file *f = NULL;
    const unsigned char zip[] = "PK\3\4 rest of a zip";
    CHECK(pd_tensor_file_parse(zip, sizeof zip - 1, "model.ckpt", &f, &err) == PD_ERR_FORMAT && f == NULL);
    CHECK_STR_CONTAINS(err.msg, "'model.ckpt': a zip archive");
    /* Not GGUF: the safetensors reader answers. */
    CHECK(pd_tensor_file_parse((const unsigned char *)"GGU", 3, "x", &f, &err) == PD_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.msg, "too short for a safetensors header");
}

/* ---- valid hand-built files ---------------------------------------------------------- */

static void test_hand_built(void) {
    /* v2, default alignment (no kv), an array kv (validated, not listed), a string kv,
     * a 2-d f32 tensor with ne = [3, 2] -> shape [2, 3], a 3-d q8_0 and an f16 scalar. */
    const uint64_t ne_w[2] = {3, 2}, ne_q[3] = {32, 1, 2};
    bb b = {0};
    bb_hdr(&b, 2, 3, 2);
    bb_kv(&b, "tokens", PD_GGUF_TYPE_ARRAY);
    bb_u32(&b, PD_GGUF_TYPE_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "a");
    bb_str(&b, "");
    bb_kv_str(&b, "general.name", "tiny \xc3\xa9");
    bb_tensor(&b, "w", 2, ne_w, 0, 0);       /* [0, 24) */
    bb_tensor(&b, "q", 3, ne_q, 8, 32);      /* [32, 100) */
    bb_tensor(&b, "s", 0, NULL, 1, 128);     /* [128, 130) */
    size_t header_end = b.len;
    bb_pad(&b, 32);
    size_t data_start = b.len;
    bb_data(&b, 130);
    pd_error err = {PD_OK, ""};
    pd_st_file *f = NULL;
    CHECK_MSG(pd_gguf_parse(b.p, b.len, "hand.gguf", &f, &err) == PD_OK, "%s", err.msg);
    CHECK(data_start > header_end && data_start % 32 == 0);
    if (f) {
        CHECK_EQ_INT(f->format, PD_ST_FORMAT_GGUF);
        CHECK_EQ_INT(f->n_tensors, 3);
        const pd_st_tensor *t = pd_st_find(f, "w");
        CHECK(t && t->dtype == PD_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
        CHECK(t && t->numel == 6 && t->nbytes == 24 && t->data == b.p + data_start);
        t = pd_st_find(f, "q");
        CHECK(t && t->dtype == PD_DTYPE_Q8_0 && t->ndim == 3 && t->shape[0] == 2 && t->shape[1] == 1 &&
              t->shape[2] == 32 && t->numel == 64 && t->nbytes == 68 && t->data == b.p + data_start + 32);
        t = pd_st_find(f, "s");
        CHECK(t && t->dtype == PD_DTYPE_F16 && t->ndim == 0 && t->numel == 1 && t->nbytes == 2 &&
              t->data == b.p + data_start + 128);
        CHECK_EQ_INT(f->n_meta, 1);
        CHECK(pd_st_meta(f, "general.name") && strcmp(pd_st_meta(f, "general.name"), "tiny \xc3\xa9") == 0);
        CHECK(pd_st_meta(f, "tokens") == NULL);
        CHECK(check_invariants(f, b.p, b.len));
    }
    pd_st_close(f);

    /* Every truncation is rejected (the last tensor ends at EOF). */
    int rejected = 0;
    for (size_t n = 0; n < b.len; n++) {
        unsigned char *copy = malloc(n ? n : 1);
        memcpy(copy, b.p, n);
        pd_st_file *g = NULL;
        pd_status st = pd_gguf_parse(copy, n, "cut.gguf", &g, &err);
        CHECK_MSG(st == PD_ERR_FORMAT && g == NULL, "prefix of %zu bytes: status %d", n, st);
        CHECK_MSG(strstr(err.msg, "'cut.gguf'") != NULL, "prefix %zu: '%s'", n, err.msg);
        rejected += st == PD_ERR_FORMAT;
        pd_st_close(g);
        free(copy);
    }
    CHECK_EQ_INT(rejected, (int)b.len);
    free(b.p);

    /* Scalars of every type as text; alignment 64 and a v3 file without tensors. */
    b = (bb){0};
    bb_hdr(&b, 3, 1, 11);
    bb_kv(&b, "u8", PD_GGUF_TYPE_U8);
    bb_u8(&b, 200);
    bb_kv(&b, "i8", PD_GGUF_TYPE_I8);
    bb_u8(&b, 0x80);
    bb_kv(&b, "u16", PD_GGUF_TYPE_U16);
    bb_le(&b, 65535, 2);
    bb_kv(&b, "i16", PD_GGUF_TYPE_I16);
    bb_le(&b, 0xfffe, 2);
    bb_kv(&b, "i32", PD_GGUF_TYPE_I32);
    bb_u32(&b, 0xffffffffu);
    bb_kv(&b, "f32", PD_GGUF_TYPE_F32);
    bb_u32(&b, 0x3f000000u);
    bb_kv(&b, "b", PD_GGUF_TYPE_BOOL);
    bb_u8(&b, 0);
    bb_kv(&b, "u64", PD_GGUF_TYPE_U64);
    bb_u64(&b, UINT64_MAX);
    bb_kv(&b, "i64", PD_GGUF_TYPE_I64);
    bb_u64(&b, (uint64_t)INT64_MIN);
    bb_kv(&b, "f64", PD_GGUF_TYPE_F64);
    bb_u64(&b, 0xbff8000000000000ull);
    bb_kv_u32(&b, PD_GGUF_ALIGNMENT_KEY, 64);
    const uint64_t ne1[1] = {5};
    bb_tensor(&b, "ids", 1, ne1, 26, 64);   /* i32 [5] at 64 */
    bb_pad(&b, 64);
    data_start = b.len;
    bb_data(&b, 84);
    f = NULL;
    CHECK_MSG(pd_gguf_parse(b.p, b.len, "scalars.gguf", &f, &err) == PD_OK, "%s", err.msg);
    if (f) {
        const char *want[][2] = {{"u8", "200"},          {"i8", "-128"},
                                 {"u16", "65535"},       {"i16", "-2"},
                                 {"i32", "-1"},          {"f32", "0.5"},
                                 {"b", "false"},         {"u64", "18446744073709551615"},
                                 {"i64", "-9223372036854775808"}, {"f64", "-1.5"},
                                 {PD_GGUF_ALIGNMENT_KEY, "64"}};
        CHECK_EQ_INT(f->n_meta, 11);
        for (size_t i = 0; i < PD_COUNT(want); i++) {
            const char *v = pd_st_meta(f, want[i][0]);
            CHECK_MSG(v && strcmp(v, want[i][1]) == 0, "meta %s = '%s', expected '%s'", want[i][0], v ? v : "(null)",
                      want[i][1]);
        }
        const pd_st_tensor *t = pd_st_find(f, "ids");
        CHECK(t && t->dtype == PD_DTYPE_I32 && t->ndim == 1 && t->shape[0] == 5 && t->data == b.p + data_start + 64);
    }
    pd_st_close(f);
    free(b.p);

    /* No tensors and no padding at all: a metadata-only file is fine. */
    b = (bb){0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv_str(&b, "k", "v");
    f = NULL;
    CHECK_MSG(pd_gguf_parse(b.p, b.len, "meta.gguf", &f, &err) == PD_OK, "%s", err.msg);
    CHECK(f && f->n_tensors == 0 && f->n_meta == 1 && pd_st_find(f, "k") == NULL);
    pd_st_close(f);
    free(b.p);

    /* Tensors may come in any order and leave gaps, as long as they are aligned. */
    b = (bb){0};
    bb_hdr(&b, 3, 2, 0);
    bb_tensor(&b, "z", 1, ne1, 24, 96);   /* i8 [5] */
    bb_tensor(&b, "a", 1, ne1, 30, 0);    /* bf16 [5] */
    bb_pad(&b, 32);
    bb_data(&b, 101);
    f = NULL;
    CHECK_MSG(pd_gguf_parse(b.p, b.len, "order.gguf", &f, &err) == PD_OK, "%s", err.msg);
    CHECK(f && f->n_tensors == 2 && strcmp(f->tensors[0].name, "a") == 0 && f->tensors[0].dtype == PD_DTYPE_BF16);
    CHECK(f && f->tensors[1].dtype == PD_DTYPE_I8 && f->tensors[1].nbytes == 5);
    pd_st_close(f);
    free(b.p);

    pd_st_close(NULL);
    CHECK(pd_gguf_parse(NULL, 10, "n", &f, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_gguf_parse(NULL, 0, "n", &f, &err) == PD_ERR_FORMAT && f == NULL);
    CHECK(pd_gguf_open(NULL, &f, &err) == PD_ERR_INVALID_ARG);
}

/* Overwrites each header byte of a valid image with a few values. */
static void test_overwrite_sweep(void) {
    bb b = {0};
    bb_hdr(&b, 3, 3, 4);
    bb_kv_u32(&b, PD_GGUF_ALIGNMENT_KEY, 32);
    bb_kv_str(&b, "general.name", "sweep");
    bb_kv(&b, "arr", PD_GGUF_TYPE_ARRAY);
    bb_u32(&b, PD_GGUF_TYPE_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "ab");
    bb_str(&b, "c");
    bb_kv(&b, "f", PD_GGUF_TYPE_BOOL);
    bb_u8(&b, 1);
    const uint64_t ne_a[2] = {32, 2}, ne_b[1] = {8}, ne_c[3] = {2, 2, 2};
    bb_tensor(&b, "a", 2, ne_a, 2, 0);    /* q4_0: 2 blocks, 36 bytes */
    bb_tensor(&b, "b", 1, ne_b, 1, 64);   /* f16: 16 bytes */
    bb_tensor(&b, "c", 3, ne_c, 0, 96);   /* f32: 32 bytes */
    size_t header_end = b.len;
    bb_pad(&b, 32);
    bb_data(&b, 128);
    pd_error err = {PD_OK, ""};
    pd_st_file *f = NULL;
    CHECK_MSG(pd_gguf_parse(b.p, b.len, "sweep.gguf", &f, &err) == PD_OK, "%s", err.msg);
    pd_st_close(f);
    const unsigned char values[] = {0, 1, 2, 3, 4, 8, 9, 12, 13, 31, 32, 0x7f, 0x80, 0xfe, 0xff};
    int ok = 0, bad = 0;
    unsigned char *copy = malloc(b.len);
    for (size_t pos = 0; pos < header_end; pos++) {
        for (size_t v = 0; v < sizeof values; v++) {
            memcpy(copy, b.p, b.len);
            copy[pos] = values[v];
            f = NULL;
            pd_status st = pd_gguf_parse(copy, b.len, "flip.gguf", &f, &err);
            if (st == PD_OK) {
                ok++;
                CHECK_MSG(check_invariants(f, copy, b.len), "byte %zu = 0x%02x: invariants broken", pos, values[v]);
            } else {
                bad++;
                CHECK_MSG(st == PD_ERR_FORMAT && f == NULL && strstr(err.msg, "'flip.gguf'"),
                          "byte %zu = 0x%02x: status %d '%s'", pos, values[v], st, err.msg);
            }
            pd_st_close(f);
        }
    }
    CHECK(ok > 0 && bad > 0);
    printf("overwrite sweep: %zu header bytes x %zu values: %d accepted, %d rejected\n", header_end, sizeof values, ok,
           bad);
    free(copy);
    free(b.p);
}

/* ---- the writer ----------------------------------------------------------------------- */

static char g_dir[64];

static void make_dir(void) {
    if (g_dir[0]) return;
    snprintf(g_dir, sizeof g_dir, "/tmp/pd_test_gguf_XXXXXX");
    PD_ASSERT(mkdtemp(g_dir) != NULL);
}

/* Number of entries in g_dir other than . and .. */
static int dir_entries(void) {
    DIR *d = opendir(g_dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void remove_dir(void) {
    DIR *d = opendir(g_dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(g_dir);
}

typedef struct fill_ctx {
    int calls;
    int fail_at;   /* fail on this call (1-based), 0: never */
    unsigned char seed;
} fill_ctx;

static pd_status fill_pattern(void *user, void *dst, size_t n, pd_error *err) {
    fill_ctx *c = user;
    c->calls++;
    if (c->fail_at && c->calls == c->fail_at) return pd_error_set(err, PD_ERR_CANCELLED, "quantizer cancelled");
    for (size_t i = 0; i < n; i++) ((unsigned char *)dst)[i] = (unsigned char)(c->seed + i * 13);
    return PD_OK;
}

typedef struct wt {
    const char *name;
    pd_dtype dtype;
    int ndim;
    int64_t shape[4];
} wt;

static const wt ROUND_TRIP[] = {
    {"model.f32", PD_DTYPE_F32, 2, {2, 3}},
    {"model.f16", PD_DTYPE_F16, 1, {5}},
    {"model.bf16", PD_DTYPE_BF16, 3, {2, 1, 3}},
    {"blk.0.q8_0", PD_DTYPE_Q8_0, 2, {3, 64}},
    {"blk.0.q4_0", PD_DTYPE_Q4_0, 3, {2, 1, 32}},
    {"blk.1.q4_1", PD_DTYPE_Q4_1, 4, {1, 2, 3, 32}},
    {"ids.i32", PD_DTYPE_I32, 1, {7}},
    {"d.f64", PD_DTYPE_F64, 2, {1, 1}},
    {"m.i8", PD_DTYPE_I8, 1, {3}},
    {"m.i16", PD_DTYPE_I16, 1, {3}},
    {"m.i64", PD_DTYPE_I64, 1, {2}},
};

static size_t wt_bytes(const wt *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return pd_dtype_bytes(t->dtype, (size_t)n);
}

static void test_writer_round_trip(void) {
    make_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/rt.gguf", g_dir);
    pd_gguf_writer *w = pd_gguf_writer_new();
    PD_ASSERT(w != NULL);
    pd_error err = {PD_OK, ""};
    unsigned char *data[PD_COUNT(ROUND_TRIP)];
    for (size_t i = 0; i < PD_COUNT(ROUND_TRIP); i++) {
        const wt *t = &ROUND_TRIP[i];
        size_t n = wt_bytes(t);
        data[i] = malloc(n);
        for (size_t k = 0; k < n; k++) data[i][k] = (unsigned char)(i * 31 + k * 7);
        CHECK_MSG(pd_gguf_add_tensor(w, t->name, t->dtype, t->ndim, t->shape, data[i], n, &err) == PD_OK, "%s",
                  err.msg);
    }
    fill_ctx fc = {0, 0, 5};
    const int64_t fshape[2] = {4, 96};
    CHECK_MSG(pd_gguf_add_tensor_fill(w, "filled.q8_0", PD_DTYPE_Q8_0, 2, fshape, fill_pattern, &fc, &err) == PD_OK,
              "%s", err.msg);
    CHECK(pd_gguf_add_kv_str(w, "general.name", "round trip \xc3\xa9", &err) == PD_OK);
    CHECK(pd_gguf_add_kv_u32(w, "sd.steps", 7, &err) == PD_OK);
    CHECK(pd_gguf_add_kv_i32(w, "sd.clip_skip", -2, &err) == PD_OK);
    CHECK(pd_gguf_add_kv_f32(w, "sd.scale", 0.18215f, &err) == PD_OK);
    CHECK(pd_gguf_add_kv_bool(w, "sd.v_pred", true, &err) == PD_OK);
    CHECK(pd_gguf_add_kv_bool(w, "sd.xl", false, &err) == PD_OK);
    CHECK(pd_gguf_add_kv_str(w, "empty", "", &err) == PD_OK);
    CHECK_MSG(pd_gguf_write(w, path, false, &err) == PD_OK, "%s", err.msg);
    CHECK_EQ_INT(fc.calls, 1);
    CHECK_EQ_INT(dir_entries(), 1);   /* no temporary file left */

    pd_st_file *f = NULL;
    CHECK_MSG(pd_tensor_file_open(path, &f, &err) == PD_OK, "%s", err.msg);
    if (f) {
        CHECK_EQ_INT(f->format, PD_ST_FORMAT_GGUF);
        CHECK_EQ_INT(f->n_tensors, (int)PD_COUNT(ROUND_TRIP) + 1);
        CHECK(check_invariants(f, f->map.data, f->map.size));
        for (size_t i = 0; i < PD_COUNT(ROUND_TRIP); i++) {
            const wt *e = &ROUND_TRIP[i];
            const pd_st_tensor *t = pd_st_find(f, e->name);
            CHECK_MSG(t != NULL, "tensor '%s' missing", e->name);
            if (!t) continue;
            CHECK_MSG(t->dtype == e->dtype && t->ndim == e->ndim, "'%s': dtype %s ndim %d", e->name,
                      pd_dtype_name(t->dtype), t->ndim);
            for (int d = 0; d < e->ndim; d++) CHECK_MSG(t->shape[d] == e->shape[d], "'%s' dim %d", e->name, d);
            CHECK(t->nbytes == wt_bytes(e) && memcmp(t->data, data[i], t->nbytes) == 0);
            CHECK_MSG(((const unsigned char *)t->data - f->map.data) % 32 == 0, "'%s' not aligned", e->name);
        }
        const pd_st_tensor *t = pd_st_find(f, "filled.q8_0");
        CHECK(t && t->dtype == PD_DTYPE_Q8_0 && t->shape[0] == 4 && t->shape[1] == 96 && t->nbytes == 4 * 3 * 34);
        if (t) {
            unsigned char *expect = malloc(t->nbytes);
            fill_ctx fc2 = {0, 0, 5};
            fill_pattern(&fc2, expect, t->nbytes, &err);
            CHECK(memcmp(t->data, expect, t->nbytes) == 0);
            free(expect);
        }
        const char *want[][2] = {{PD_GGUF_ALIGNMENT_KEY, "32"}, {"general.name", "round trip \xc3\xa9"},
                                 {"sd.steps", "7"},              {"sd.clip_skip", "-2"},
                                 {"sd.scale", "0.182150006"},    {"sd.v_pred", "true"},
                                 {"sd.xl", "false"},             {"empty", ""}};
        CHECK_EQ_INT(f->n_meta, (int)PD_COUNT(want));
        for (size_t i = 0; i < PD_COUNT(want); i++) {
            const char *v = pd_st_meta(f, want[i][0]);
            CHECK_MSG(v && strcmp(v, want[i][1]) == 0, "meta %s = '%s'", want[i][0], v ? v : "(null)");
        }
        /* The first kv is general.alignment, version 3. */
        CHECK(memcmp(f->map.data, "GGUF\3\0\0\0", 8) == 0);
        CHECK(memcmp(f->map.data + 24 + 8, PD_GGUF_ALIGNMENT_KEY, strlen(PD_GGUF_ALIGNMENT_KEY)) == 0);
        CHECK(f->map.size % 32 == 0);

        /* Every prefix shorter than the end of the last tensor's data is rejected. */
        size_t last_end = 0;
        for (int i = 0; i < f->n_tensors; i++) {
            size_t end = (size_t)((const unsigned char *)f->tensors[i].data - f->map.data) + f->tensors[i].nbytes;
            if (end > last_end) last_end = end;
        }
        for (size_t n = 0; n < f->map.size; n++) {
            unsigned char *copy = malloc(n ? n : 1);
            memcpy(copy, f->map.data, n);
            pd_st_file *g = NULL;
            pd_status st = pd_gguf_parse(copy, n, "cut.gguf", &g, &err);
            if (n < last_end) CHECK_MSG(st == PD_ERR_FORMAT && g == NULL, "prefix %zu accepted", n);
            else CHECK_MSG(st == PD_OK && check_invariants(g, copy, n), "prefix %zu: %s", n, err.msg);
            pd_st_close(g);
            free(copy);
        }
    }
    pd_st_close(f);

    /* The same file through pd_gguf_open. */
    CHECK_MSG(pd_gguf_open(path, &f, &err) == PD_OK, "%s", err.msg);
    pd_st_close(f);

    /* No clobbering: the file is untouched, then replaced with overwrite. */
    struct stat before, after;
    CHECK(stat(path, &before) == 0);
    pd_gguf_writer *w2 = pd_gguf_writer_new();
    CHECK(pd_gguf_add_kv_u32(w2, "k", 1, &err) == PD_OK);
    CHECK(pd_gguf_write(w2, path, false, &err) == PD_ERR_IO);
    CHECK_STR_CONTAINS(err.msg, path);
    CHECK_STR_CONTAINS(err.msg, "exists; pass overwrite to replace it");
    CHECK(stat(path, &after) == 0 && after.st_size == before.st_size);
    CHECK_EQ_INT(dir_entries(), 1);
    CHECK_MSG(pd_gguf_write(w2, path, true, &err) == PD_OK, "%s", err.msg);
    CHECK(stat(path, &after) == 0 && after.st_size < before.st_size);
    CHECK((after.st_mode & 0777) == 0644);
    CHECK_EQ_INT(dir_entries(), 1);
    CHECK(pd_tensor_file_open(path, &f, &err) == PD_OK && f && f->n_tensors == 0 && pd_st_meta(f, "k"));
    pd_st_close(f);
    pd_gguf_writer_free(w2);
    unlink(path);

    for (size_t i = 0; i < PD_COUNT(ROUND_TRIP); i++) free(data[i]);
    pd_gguf_writer_free(w);
}

static void test_writer_failures(void) {
    make_dir();
    pd_error err = {PD_OK, ""};
    pd_gguf_writer *w = pd_gguf_writer_new();
    PD_ASSERT(w != NULL);
    unsigned char buf[4096] = {0};
    const int64_t s23[2] = {2, 3}, s33[2] = {2, 33}, s0[2] = {2, 0}, s5[5] = {1, 1, 1, 1, 1};
    CHECK(pd_gguf_add_tensor(w, "a", PD_DTYPE_F32, 2, s23, buf, 24, &err) == PD_OK);
    CHECK(pd_gguf_add_tensor(w, "a", PD_DTYPE_F32, 2, s23, buf, 24, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "duplicate tensor name 'a'");
    CHECK(pd_gguf_add_tensor(w, "b", PD_DTYPE_F32, 2, s23, buf, 20, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "tensor 'b': 20 bytes given, shape and F32 need 24");
    CHECK(pd_gguf_add_tensor(w, "q", PD_DTYPE_Q8_0, 2, s33, buf, 136, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "innermost dim 33 is not a multiple of the Q8_0 block size 32");
    CHECK(pd_gguf_add_tensor(w, "z", PD_DTYPE_F32, 2, s0, buf, 0, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "dim 1 is 0");
    CHECK(pd_gguf_add_tensor(w, "r", PD_DTYPE_F32, 5, s5, buf, 4, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "rank 5");
    CHECK(pd_gguf_add_tensor(w, "r", PD_DTYPE_F32, 0, s5, buf, 4, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_gguf_add_tensor(w, "u", PD_DTYPE_U8, 2, s23, buf, 6, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "dtype U8 has no GGUF type");
    CHECK(pd_gguf_add_tensor(w, "", PD_DTYPE_F32, 2, s23, buf, 24, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_gguf_add_tensor(w, "n", PD_DTYPE_F32, 2, s23, NULL, 24, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_gguf_add_kv_u32(w, PD_GGUF_ALIGNMENT_KEY, 64, &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "written by the writer");
    CHECK(pd_gguf_add_kv_u32(w, "k", 1, &err) == PD_OK);
    CHECK(pd_gguf_add_kv_str(w, "k", "x", &err) == PD_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "duplicate key 'k'");
    CHECK(pd_gguf_add_kv_str(w, "", "x", &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_gguf_add_kv_str(w, "s", NULL, &err) == PD_ERR_INVALID_ARG);

    /* Unwritable destinations: a missing folder, a path through a regular file. */
    char path[160];
    snprintf(path, sizeof path, "%s/no/such/dir/x.gguf", g_dir);
    CHECK(pd_gguf_write(w, path, false, &err) == PD_ERR_IO);
    CHECK_STR_CONTAINS(err.msg, path);
    CHECK_STR_CONTAINS(err.msg, "No such file or directory");
    snprintf(path, sizeof path, "%s/file", g_dir);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (fp) fclose(fp);
    snprintf(path, sizeof path, "%s/file/x.gguf", g_dir);
    CHECK(pd_gguf_write(w, path, true, &err) == PD_ERR_IO);
    CHECK_STR_CONTAINS(err.msg, "Not a directory");
    CHECK_EQ_INT(dir_entries(), 1);
    snprintf(path, sizeof path, "%s/file", g_dir);
    unlink(path);

    /* A fill callback failing on the second tensor leaves nothing behind. */
    fill_ctx fc = {0, 2, 1};
    const int64_t s64[1] = {64};
    CHECK(pd_gguf_add_tensor_fill(w, "f1", PD_DTYPE_Q4_0, 1, s64, fill_pattern, &fc, &err) == PD_OK);
    CHECK(pd_gguf_add_tensor_fill(w, "f2", PD_DTYPE_Q4_1, 1, s64, fill_pattern, &fc, &err) == PD_OK);
    CHECK(pd_gguf_add_tensor_fill(w, "f3", PD_DTYPE_F16, 1, s64, NULL, &fc, &err) == PD_ERR_INVALID_ARG);
    snprintf(path, sizeof path, "%s/fail.gguf", g_dir);
    CHECK(pd_gguf_write(w, path, false, &err) == PD_ERR_CANCELLED);
    CHECK_STR_CONTAINS(err.msg, "tensor 'f2'");
    CHECK_STR_CONTAINS(err.msg, "quantizer cancelled");
    CHECK_EQ_INT(fc.calls, 2);
    CHECK_EQ_INT(dir_entries(), 0);
    /* The same writer succeeds once the callback does. */
    fc.fail_at = 0;
    CHECK_MSG(pd_gguf_write(w, path, false, &err) == PD_OK, "%s", err.msg);
    pd_st_file *f = NULL;
    CHECK(pd_gguf_open(path, &f, &err) == PD_OK && f && f->n_tensors == 3);
    pd_st_close(f);
    unlink(path);
    CHECK(pd_gguf_write(NULL, path, false, &err) == PD_ERR_INVALID_ARG);
    pd_gguf_writer_free(w);
    pd_gguf_writer_free(NULL);
}

static void test_sniff(void) {
    make_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/x.safetensors", g_dir);
    const char hdr[] = "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
    FILE *fp = fopen(path, "wb");
    PD_ASSERT(fp != NULL);
    unsigned char len8[8] = {(unsigned char)(sizeof hdr - 1)};
    fwrite(len8, 1, 8, fp);
    fwrite(hdr, 1, sizeof hdr - 1, fp);
    fwrite("\0\0\x80\x3f", 1, 4, fp);
    fclose(fp);
    pd_error err = {PD_OK, ""};
    pd_st_file *f = NULL;
    CHECK_MSG(pd_tensor_file_open(path, &f, &err) == PD_OK, "%s", err.msg);
    CHECK(f && f->format == PD_ST_FORMAT_SAFETENSORS && f->n_tensors == 1);
    pd_st_close(f);
    CHECK(pd_gguf_open(path, &f, &err) == PD_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.msg, "bad magic");
    unlink(path);
    CHECK(pd_tensor_file_open(path, &f, &err) == PD_ERR_IO && f == NULL);
    CHECK_STR_CONTAINS(err.msg, path);
    CHECK(pd_tensor_file_sniff((const unsigned char *)"GGUF", 4) == PD_ST_FORMAT_GGUF);
    CHECK(pd_tensor_file_sniff((const unsigned char *)"GGU", 3) == PD_ST_FORMAT_SAFETENSORS);
    CHECK(pd_gguf_type_of(PD_DTYPE_Q4_1) == 3 && pd_gguf_type_of(PD_DTYPE_BF16) == 30 && pd_gguf_type_of(PD_DTYPE_U8) < 0);
    CHECK(pd_gguf_dtype_of(8) == PD_DTYPE_Q8_0 && pd_gguf_dtype_of(12) == PD_DTYPE_INVALID);
    CHECK(pd_gguf_type_name(14) && strcmp(pd_gguf_type_name(14), "q6_K") == 0 && pd_gguf_type_name(5) == NULL);
}

int main(void) {
    PD_RUN(test_reject_header);
    PD_RUN(test_reject_kvs);
    PD_RUN(test_reject_tensors);
    PD_RUN(test_reject_cut_n_dims);
    PD_RUN(test_reject_zip);
    PD_RUN(test_hand_built);
    PD_RUN(test_overwrite_sweep);
    PD_RUN(test_writer_round_trip);
    PD_RUN(test_writer_failures);
    PD_RUN(test_sniff);
    remove_dir();
    return pd_test_summary();
}
