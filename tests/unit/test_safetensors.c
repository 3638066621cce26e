/*
 * test_safetensors.c - the hostile-input-safe safetensors reader (src/io/safetensors.c).
 *
 * Files are assembled in memory (8-byte length + header JSON + padding + data) by the
 * helpers below. The malformed cases follow llama.cpp's test-gguf idea: one handcrafted
 * file per rule, each checked for the status and for a message that names the file and
 * the detail at fault. Truncation and byte-flip sweeps (SQLite style) check that every
 * damaged variant of a valid file is either rejected cleanly or still self-consistent.
 * The golden tiny checkpoints are parsed for real, and a half-length copy is rejected.
 */
#include <stdint.h>
#include <unistd.h>

#include "base/half.h"
#include "base/json.h"
#include "io/safetensors.h"
#include "test.h"

#define BAD_NAME "bad.safetensors"

typedef struct image {
    unsigned char *bytes;
    size_t size;
} image;

static void put_u64le(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* 8-byte length (header_len + pad), the header, pad spaces, then data_len bytes of
 * data (a byte pattern when data is NULL). */
static image make_image_n(const char *header, size_t header_len, size_t pad, const void *data,
                          size_t data_len) {
    image im;
    im.size = 8 + header_len + pad + data_len;
    im.bytes = malloc(im.size ? im.size : 1);
    PD_ASSERT(im.bytes != NULL);
    put_u64le(im.bytes, header_len + pad);
    memcpy(im.bytes + 8, header, header_len);
    memset(im.bytes + 8 + header_len, ' ', pad);
    unsigned char *d = im.bytes + 8 + header_len + pad;
    for (size_t i = 0; i < data_len; i++) d[i] = data ? ((const unsigned char *)data)[i] : (unsigned char)(i * 7 + 1);
    return im;
}

static image make_image(const char *header, size_t data_len) {
    return make_image_n(header, strlen(header), 0, NULL, data_len);
}

/* An image whose first 8 bytes claim length n, followed by rest_len bytes. */
static image raw_length_image(uint64_t n, size_t rest_len) {
    image im;
    im.size = 8 + rest_len;
    im.bytes = malloc(im.size);
    PD_ASSERT(im.bytes != NULL);
    put_u64le(im.bytes, n);
    memset(im.bytes + 8, '{', rest_len);
    return im;
}

/* Expects the image to be rejected with code and a message that names BAD_NAME and
 * contains needle. Frees the image. */
static void expect_reject(const char *what, image im, pd_status code, const char *needle) {
    pd_error err = {PD_OK, ""};
    pd_st_file *f = (pd_st_file *)&err;   /* must be reset to NULL */
    pd_status st = pd_st_parse(im.bytes, im.size, BAD_NAME, &f, &err);
    CHECK_MSG(st == code, "%s: status %d (%s), expected %d", what, st, err.msg, code);
    CHECK_MSG(f == NULL, "%s: *out not NULL after a failure", what);
    CHECK_MSG(err.code == code, "%s: err.code %d", what, err.code);
    CHECK_MSG(strstr(err.msg, "'" BAD_NAME "'") != NULL, "%s: message '%s' does not name the file", what, err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, needle);
    if (st == PD_OK) pd_st_close(f);
    free(im.bytes);
}

/* ---- malformed files ---------------------------------------------------------- */

static void test_reject_length_prefix(void) {
    expect_reject("empty file", raw_length_image(0, 0), PD_ERR_FORMAT, "header length is 0");
    image im = {malloc(1), 0};
    expect_reject("zero bytes", im, PD_ERR_FORMAT, "file is 0 bytes, too short");
    im.bytes = malloc(5);
    memcpy(im.bytes, "\x10\0\0\0\0", 5);
    im.size = 5;
    expect_reject("truncated before 8 bytes", im, PD_ERR_FORMAT, "file is 5 bytes, too short");
    expect_reject("header length past EOF", raw_length_image(100, 20), PD_ERR_FORMAT,
                  "header length 100 exceeds the file size 28");
    expect_reject("header length one past EOF", raw_length_image(21, 20), PD_ERR_FORMAT,
                  "header length 21 exceeds the file size 28");
    expect_reject("absurd header length 2^63", raw_length_image((uint64_t)1 << 63, 64), PD_ERR_FORMAT,
                  "header length 9223372036854775808 exceeds the file size 72");
    expect_reject("header length 2^64-1", raw_length_image(UINT64_MAX, 64), PD_ERR_FORMAT,
                  "header length 18446744073709551615");
    expect_reject("header length 2^32+2 (wraps in 32 bits)", raw_length_image(((uint64_t)1 << 32) + 2, 64),
                  PD_ERR_FORMAT, "header length 4294967298");
}

typedef struct bad_header {
    const char *what;
    const char *header;
    size_t data_len;
    const char *needle;
} bad_header;

/* A valid entry to combine with broken ones. */
#define OK_T "\"t\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}"

static const bad_header BAD_HEADERS[] = {
    {"header not JSON", "not json at all", 64, "header: invalid JSON at offset 0"},
    {"header JSON broken mid-way", "{\"t\": {\"dtype\": \"F32\", ", 64, "invalid JSON at offset 23"},
    {"header JSON not an object", "[1, 2, 3]", 64, "header is an array, not a JSON object"},
    {"header JSON a string", "\"{}\"", 64, "header is a string, not a JSON object"},
    {"entry not an object", "{\"t\": [1, 2]}", 64, "tensor 't': entry is an array, not an object"},
    {"entry null", "{" OK_T ", \"u\": null}", 64, "tensor 'u': entry is null, not an object"},
    {"missing dtype", "{\"t\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 64, "tensor 't': missing \"dtype\""},
    {"dtype not a string", "{\"t\": {\"dtype\": 32, \"shape\": [1], \"data_offsets\": [0, 4]}}", 64,
     "tensor 't': \"dtype\" is a number, not a string"},
    {"unknown dtype F17", "{\"t\": {\"dtype\": \"F17\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 64,
     "tensor 't': unknown dtype 'F17'"},
    {"dtype in lower case", "{\"t\": {\"dtype\": \"f32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 64,
     "unknown dtype 'f32'"},
    {"missing shape", "{\"t\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 64, "tensor 't': missing \"shape\""},
    {"shape not an array", "{\"t\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}}", 64,
     "\"shape\" is a number, not an array"},
    {"negative dim", "{\"t\": {\"dtype\": \"F32\", \"shape\": [2, -3], \"data_offsets\": [0, 24]}}", 64,
     "tensor 't': shape dimension 1 is negative (-3)"},
    {"fractional dim", "{\"t\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 64,
     "shape dimension 0 (1.5) is not an integer"},
    {"dim past int64", "{\"t\": {\"dtype\": \"F32\", \"shape\": [9223372036854775808], \"data_offsets\": [0, 4]}}", 64,
     "shape dimension 0 (9223372036854775808) is not an integer"},
    {"string dim", "{\"t\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}", 64,
     "shape dimension 0 is a string, not an integer"},
    {"shape rank 9", "{\"t\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}}", 64,
     "tensor 't': shape has rank 9, more than the maximum 8"},
    {"dims whose product overflows int64",
     "{\"t\": {\"dtype\": \"U8\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 1]}}", 64,
     "shape [4294967296, 4294967296] has more than 2^63 elements"},
    {"shape x dtype size overflows",
     "{\"t\": {\"dtype\": \"F32\", \"shape\": [2305843009213693952, 2], \"data_offsets\": [0, 16]}}", 64,
     "shape [2305843009213693952, 2] x F32 overflows the byte size"},
    {"missing data_offsets", "{\"t\": {\"dtype\": \"F32\", \"shape\": [1]}}", 64, "tensor 't': missing \"data_offsets\""},
    {"data_offsets not an array", "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": \"0,4\"}}", 64,
     "\"data_offsets\" is a string, not an array"},
    {"data_offsets with 1 entry", "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4]}}", 64,
     "\"data_offsets\" has 1 entries, expected 2"},
    {"data_offsets with 3 entries", "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}", 64,
     "\"data_offsets\" has 3 entries, expected 2"},
    {"data_offsets begin > end", "{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [16, 0]}}", 64,
     "tensor 't': data_offsets begin 16 > end 0"},
    {"negative data offset", "{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [-4, 12]}}", 64,
     "data_offsets[0] is negative (-4)"},
    {"fractional data offset", "{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16.5]}}", 64,
     "data_offsets[1] (16.5) is not an integer"},
    {"data offset past int64",
     "{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 18446744073709551616]}}", 64,
     "data_offsets[1] (18446744073709551616) is not an integer"},
    {"data offset null", "{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [null, 16]}}", 64,
     "data_offsets[0] (null) is not an integer"},
    {"end past the data section", "{\"t\": {\"dtype\": \"F32\", \"shape\": [250], \"data_offsets\": [0, 1000]}}", 64,
     "tensor 't': data_offsets end 1000 is past the end of the data section (64 bytes)"},
    {"end one past the data section", "{\"t\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [64, 65]}}", 64,
     "data_offsets end 65 is past the end of the data section (64 bytes)"},
    {"shape x dtype != byte span", "{\"t\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 12]}}", 64,
     "tensor 't': shape [2, 2] x F32 needs 16 bytes but data_offsets [0, 12] span 12"},
    {"0-d tensor with the wrong span", "{\"t\": {\"dtype\": \"F16\", \"shape\": [], \"data_offsets\": [0, 4]}}", 64,
     "shape [] x F16 needs 2 bytes but data_offsets [0, 4] span 4"},
    {"empty tensor with a non-empty span", "{\"t\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [0, 4]}}",
     64, "shape [0, 3] x F32 needs 0 bytes"},
    {"overlapping tensors",
     "{\"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}, " OK_T "}", 64,
     "tensors 't' [0, 16) and 'b' [8, 24) overlap"},
    {"identical ranges",
     "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, " OK_T "}", 64,
     "tensors 'a' [0, 16) and 't' [0, 16) overlap"},
    {"duplicate names", "{" OK_T ", \"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [16, 32]}}", 64,
     "duplicate tensor name 't'"},
    {"duplicate field in an entry",
     "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4], \"dtype\": \"F16\"}}", 64,
     "tensor 't': entry has a duplicate field"},
    {"metadata value not a string", "{\"__metadata__\": {\"format\": 1}, " OK_T "}", 64,
     "metadata value for 'format' is a number, not a string"},
    {"metadata value an object", "{\"__metadata__\": {\"a\": \"x\", \"cfg\": {}}}", 64,
     "metadata value for 'cfg' is an object, not a string"},
    {"metadata not an object", "{\"__metadata__\": \"pt\", " OK_T "}", 64,
     "\"__metadata__\" is a string, not an object"},
    {"duplicate __metadata__", "{\"__metadata__\": {}, " OK_T ", \"__metadata__\": {}}", 64,
     "\"__metadata__\" appears 2 times"},
    {"duplicate metadata key", "{\"__metadata__\": {\"k\": \"a\", \"k\": \"b\"}}", 64,
     "\"__metadata__\" has duplicate keys"},
    {"NUL in a metadata key", "{\"__metadata__\": {\"k\\u0000x\": \"a\"}}", 64, "metadata key 'k' contains a NUL"},
    {"empty name", "{\"\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 64, "empty tensor name"},
    {"NUL in a name", "{\"a\\u0000b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 64,
     "tensor name 'a' contains a NUL character"},
    {"trailing garbage after the JSON", "{" OK_T "} xyz", 64, "unexpected 'x' after the end of the JSON value"},
    {"a second JSON value after the first", "{" OK_T "}{}", 64, "unexpected '{' after the end"},
    {"invalid UTF-8 in a name", "{\"t\xc3\x28\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 64,
     "invalid UTF-8 byte 0xc3 in string"},
    {"overlong UTF-8 in a name", "{\"t\xc0\xae\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 64,
     "invalid UTF-8 byte 0xc0"},
    {"lone surrogate in a name", "{\"t\\ud800\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 64,
     "lone high surrogate"},
    {"number grammar in a header", "{\"t\": {\"dtype\": \"F32\", \"shape\": [01], \"data_offsets\": [0, 4]}}", 64,
     "leading zero"},
};

static void test_reject_headers(void) {
    for (size_t i = 0; i < PD_COUNT(BAD_HEADERS); i++)
        expect_reject(BAD_HEADERS[i].what, make_image(BAD_HEADERS[i].header, BAD_HEADERS[i].data_len), PD_ERR_FORMAT,
                      BAD_HEADERS[i].needle);
    /* Header bytes that a C string cannot hold: NUL padding after the JSON. */
    const char nul_pad[] = "{" OK_T "}\0\0\0";
    expect_reject("NUL padding after the JSON", make_image_n(nul_pad, sizeof nul_pad - 1, 0, NULL, 64), PD_ERR_FORMAT,
                  "unexpected byte 0x00 after the end of the JSON value");
    const char nul_in[] = "{\"t\0\": {}}";
    expect_reject("raw NUL in a name", make_image_n(nul_in, sizeof nul_in - 1, 0, NULL, 64), PD_ERR_FORMAT,
                  "unescaped control character 0x00");
    /* The header length cuts the JSON short: the rest sits in the data section. */
    image im = make_image("{" OK_T "}", 64);
    put_u64le(im.bytes, 22);   /* ends just after "F32", */
    expect_reject("header length cuts the JSON", im, PD_ERR_FORMAT, "header: invalid JSON at offset 22");
    /* Nesting past PD_JSON_MAX_DEPTH inside a field the reader would ignore. */
    char deep[256];
    int n = snprintf(deep, sizeof deep, "{\"t\": {\"x\": ");
    for (int i = 0; i < PD_JSON_MAX_DEPTH - 1; i++) deep[n++] = '[';
    for (int i = 0; i < PD_JSON_MAX_DEPTH - 1; i++) deep[n++] = ']';
    snprintf(deep + n, sizeof deep - (size_t)n, ", \"dtype\": \"F32\"}}");
    expect_reject("deep nesting in an ignored field", make_image(deep, 64), PD_ERR_FORMAT,
                  "nesting deeper than 64 levels");
    printf("%zu table headers + 4 built in code + 8 length-prefix cases rejected\n", PD_COUNT(BAD_HEADERS));
}

/* A temporary file holding bytes[0..n) (sparse up to total bytes); path into buf. */
static bool write_temp(char *buf, size_t buf_size, const void *bytes, size_t n, off_t total) {
    snprintf(buf, buf_size, "/tmp/pd_test_st_XXXXXX");
    int fd = mkstemp(buf);
    if (fd < 0) return false;
    bool ok = write(fd, bytes, n) == (ssize_t)n;
    if (ok && total > (off_t)n) ok = ftruncate(fd, total) == 0;
    close(fd);
    if (!ok) unlink(buf);
    return ok;
}

static void test_open_errors_name_the_path(void) {
    char path[64];
    const char *bad = "{\"t\": {\"dtype\": \"F17\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
    image im = make_image(bad, 4);
    CHECK(write_temp(path, sizeof path, im.bytes, im.size, 0));
    free(im.bytes);
    pd_error err = {PD_OK, ""};
    pd_st_file *f = NULL;
    CHECK(pd_st_open(path, &f, &err) == PD_ERR_FORMAT);
    CHECK(f == NULL);
    CHECK_STR_CONTAINS(err.msg, path);
    CHECK_STR_CONTAINS(err.msg, "unknown dtype 'F17'");
    unlink(path);

    /* A missing file is an I/O error naming the path. */
    CHECK(pd_st_open(path, &f, &err) == PD_ERR_IO);
    CHECK_STR_CONTAINS(err.msg, path);
    /* An empty file. */
    CHECK(write_temp(path, sizeof path, "", 0, 0));
    CHECK(pd_st_open(path, &f, &err) == PD_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.msg, path);
    CHECK_STR_CONTAINS(err.msg, "file is 0 bytes");
    unlink(path);
    /* A header longer than PD_ST_MAX_HEADER, inside a (sparse) file that is larger still. */
    unsigned char len8[8];
    put_u64le(len8, PD_ST_MAX_HEADER + 1);
    CHECK(write_temp(path, sizeof path, len8, 8, (off_t)PD_ST_MAX_HEADER + 4096));
    CHECK(pd_st_open(path, &f, &err) == PD_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.msg, path);
    char want[128];
    snprintf(want, sizeof want, "header length %llu exceeds the limit of %llu bytes",
             (unsigned long long)PD_ST_MAX_HEADER + 1, (unsigned long long)PD_ST_MAX_HEADER);
    CHECK_STR_CONTAINS(err.msg, want);
    unlink(path);
    /* A directory. */
    CHECK(pd_st_open("/tmp", &f, &err) == PD_ERR_IO);
    CHECK_STR_CONTAINS(err.msg, "/tmp");
    CHECK(pd_st_open(NULL, &f, &err) == PD_ERR_INVALID_ARG);
}

/* ---- valid files -------------------------------------------------------------- */

static void put_u16le(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put_f32le(unsigned char *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(u >> (8 * i));
}

static void put_f64le(unsigned char *p, double f) {
    uint64_t u;
    memcpy(&u, &f, 8);
    put_u64le(p, u);
}

#define VALID_DATA_LEN 100
static const char VALID_HEADER[] =
    "{\"__metadata__\": {\"format\": \"pt\", \"note\": \"caf\\u00e9 \\\"q\\\"\"},\n"
    " \"w.f32\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},\n"
    " \"h.f16\": {\"dtype\": \"F16\", \"shape\": [4], \"data_offsets\": [24, 32], \"extra\": {\"ignored\": [1]}},\n"
    " \"b.bf16\": {\"shape\": [2, 2], \"data_offsets\": [32, 40], \"dtype\": \"BF16\"},\n"
    " \"ids\": {\"dtype\": \"I64\", \"shape\": [3], \"data_offsets\": [40, 64]},\n"
    " \"scale\": {\"dtype\": \"F16\", \"shape\": [], \"data_offsets\": [64, 66]},\n"
    " \"empty\": {\"dtype\": \"F32\", \"shape\": [0, 5], \"data_offsets\": [66, 66]},\n"
    " \"huge_empty\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4, 0], \"data_offsets\": [10, 10]},\n"
    " \"d.f64\": {\"dtype\": \"F64\", \"shape\": [2], \"data_offsets\": [66, 82]},\n"
    " \"i32\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [82, 90]},\n"
    " \"mask\": {\"dtype\": \"U8\", \"shape\": [3], \"data_offsets\": [90, 93]},\n"
    " \"\\u00e9t\\u00e9\": {\"dtype\": \"BOOL\", \"shape\": [1, 1], \"data_offsets\": [93, 94]}}";

static void valid_data(unsigned char *d) {
    memset(d, 0xee, VALID_DATA_LEN);   /* bytes 94..99 are an unused gap */
    const float w[6] = {0.0f, 1.0f, -2.5f, 3.25f, 1e-3f, 100.0f};
    for (int i = 0; i < 6; i++) put_f32le(d + 4 * i, w[i]);
    const uint16_t h[4] = {0x3c00, 0xc000, 0x3800, 0x7bff};   /* 1, -2, 0.5, 65504 */
    for (int i = 0; i < 4; i++) put_u16le(d + 24 + 2 * i, h[i]);
    const uint16_t b[4] = {0x3f80, 0xc000, 0x4040, 0x3e20};   /* 1, -2, 3, 0.15625 */
    for (int i = 0; i < 4; i++) put_u16le(d + 32 + 2 * i, b[i]);
    const int64_t ids[3] = {0, 76, -5};
    for (int i = 0; i < 3; i++) put_u64le(d + 40 + 8 * i, (uint64_t)ids[i]);
    put_u16le(d + 64, 0x4400);   /* 4.0 */
    put_f64le(d + 66, 1.5);
    put_f64le(d + 74, -0.25);
    const int32_t i32[2] = {7, -8};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 4; k++) d[82 + 4 * i + k] = (unsigned char)((uint32_t)i32[i] >> (8 * k));
    d[90] = 1, d[91] = 2, d[92] = 3, d[93] = 1;
}

static void check_f32(const pd_st_file *f, const char *name, const float *expect, size_t n) {
    const pd_st_tensor *t = pd_st_find(f, name);
    CHECK_MSG(t != NULL, "tensor '%s' not found", name);
    if (!t) return;
    CHECK_MSG((size_t)t->numel == n, "'%s' numel %lld, expected %zu", name, (long long)t->numel, n);
    float out[8] = {0};
    pd_error err;
    CHECK_MSG(pd_st_to_f32(t, out, &err) == PD_OK, "'%s': %s", name, err.msg);
    for (size_t i = 0; i < n && i < 8; i++)
        CHECK_MSG(out[i] == expect[i], "'%s'[%zu] = %.9g, expected %.9g", name, i, out[i], expect[i]);
}

/* Parses VALID_HEADER + pad spaces + data and checks everything; pad moves the data
 * section to every alignment. */
static void check_valid_image(size_t pad) {
    unsigned char data[VALID_DATA_LEN];
    valid_data(data);
    image im = make_image_n(VALID_HEADER, strlen(VALID_HEADER), pad, data, sizeof data);
    pd_error err = {PD_OK, ""};
    pd_st_file *f = NULL;
    pd_status st = pd_st_parse(im.bytes, im.size, "valid.safetensors", &f, &err);
    CHECK_MSG(st == PD_OK, "pad %zu: %s", pad, err.msg);
    if (st != PD_OK) {
        free(im.bytes);
        return;
    }
    CHECK_EQ_INT(f->n_tensors, 11);
    CHECK(strcmp(f->path, "valid.safetensors") == 0);
    for (int i = 1; i < f->n_tensors; i++)
        CHECK_MSG(strcmp(f->tensors[i - 1].name, f->tensors[i].name) < 0, "not sorted at %d", i);
    const unsigned char *base = im.bytes + 8 + strlen(VALID_HEADER) + pad;

    const pd_st_tensor *t = pd_st_find(f, "w.f32");
    CHECK(t && t->dtype == PD_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    CHECK(t && t->numel == 6 && t->nbytes == 24 && t->data == base);
    t = pd_st_find(f, "scale");
    CHECK(t && t->dtype == PD_DTYPE_F16 && t->ndim == 0 && t->numel == 1 && t->nbytes == 2 && t->data == base + 64);
    t = pd_st_find(f, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 5 && t->numel == 0 && t->nbytes == 0 && !t->data);
    t = pd_st_find(f, "huge_empty");
    CHECK(t && t->numel == 0 && t->nbytes == 0 && t->data == NULL && t->shape[0] == (int64_t)1 << 62);
    t = pd_st_find(f, "\xc3\xa9t\xc3\xa9");
    CHECK(t && t->dtype == PD_DTYPE_BOOL && t->numel == 1 && t->data == base + 93);
    t = pd_st_find(f, "mask");
    CHECK(t && t->dtype == PD_DTYPE_U8 && t->nbytes == 3 && memcmp(t->data, "\1\2\3", 3) == 0);

    const float w[6] = {0.0f, 1.0f, -2.5f, 3.25f, 1e-3f, 100.0f};
    check_f32(f, "w.f32", w, 6);
    const float h[4] = {1.0f, -2.0f, 0.5f, 65504.0f};
    check_f32(f, "h.f16", h, 4);
    const float b[4] = {1.0f, -2.0f, 3.0f, 0.15625f};
    check_f32(f, "b.bf16", b, 4);
    const float ids[3] = {0.0f, 76.0f, -5.0f};
    check_f32(f, "ids", ids, 3);
    const float s[1] = {4.0f};
    check_f32(f, "scale", s, 1);
    const float d64[2] = {1.5f, -0.25f};
    check_f32(f, "d.f64", d64, 2);
    const float i32[2] = {7.0f, -8.0f};
    check_f32(f, "i32", i32, 2);
    float none[1] = {42.0f};
    CHECK(pd_st_to_f32(pd_st_find(f, "empty"), none, &err) == PD_OK && none[0] == 42.0f);
    CHECK(pd_st_to_f32(pd_st_find(f, "mask"), none, &err) == PD_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.msg, "'mask'");
    CHECK_STR_CONTAINS(err.msg, "U8");

    /* Misses: absent names, prefixes, extensions, metadata is not a tensor. */
    const char *misses[] = {"", "w", "w.f3", "w.f32 ", "W.F32", "zzz", "__metadata__", "a", "\xff"};
    for (size_t i = 0; i < PD_COUNT(misses); i++)
        CHECK_MSG(pd_st_find(f, misses[i]) == NULL, "found '%s'", misses[i]);
    /* Every tensor is found by its own name. */
    for (int i = 0; i < f->n_tensors; i++) CHECK(pd_st_find(f, f->tensors[i].name) == &f->tensors[i]);

    CHECK_EQ_INT(f->n_meta, 2);
    CHECK(pd_st_meta(f, "format") && strcmp(pd_st_meta(f, "format"), "pt") == 0);
    CHECK(pd_st_meta(f, "note") && strcmp(pd_st_meta(f, "note"), "caf\xc3\xa9 \"q\"") == 0);
    CHECK(pd_st_meta(f, "missing") == NULL && pd_st_meta(f, "") == NULL);
    pd_st_close(f);
    free(im.bytes);
}

static void test_valid_all_dtypes_and_alignments(void) {
    for (size_t pad = 0; pad < 8; pad++) check_valid_image(pad);
}

static void test_valid_small_cases(void) {
    const char *ok[] = {
        "{}",
        "  {  }  ",
        "{\"__metadata__\": {}}",
        "{\"__metadata__\": {\"a\": \"\"}}",
        /* Gaps between tensors and unused bytes after them are allowed. */
        "{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [10, 12]},"
        " \"b\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]}}",
        /* Adjacent ranges touch but do not overlap; an empty one may sit anywhere. */
        "{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]},"
        " \"b\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [4, 8]},"
        " \"c\": {\"dtype\": \"U8\", \"shape\": [0], \"data_offsets\": [2, 2]},"
        " \"d\": {\"dtype\": \"U8\", \"shape\": [0], \"data_offsets\": [64, 64]}}",
        /* Integers written with exponents are exact integers. */
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1e0, 2.0], \"data_offsets\": [0, 8E0]}}",
        /* Every known dtype. */
        "{\"a\": {\"dtype\": \"F8_E4M3\", \"shape\": [1], \"data_offsets\": [0, 1]},"
        " \"b\": {\"dtype\": \"F8_E5M2\", \"shape\": [1], \"data_offsets\": [1, 2]},"
        " \"c\": {\"dtype\": \"I16\", \"shape\": [1], \"data_offsets\": [2, 4]},"
        " \"d\": {\"dtype\": \"I8\", \"shape\": [1], \"data_offsets\": [4, 5]},"
        " \"e\": {\"dtype\": \"U64\", \"shape\": [1], \"data_offsets\": [8, 16]},"
        " \"f\": {\"dtype\": \"U32\", \"shape\": [1], \"data_offsets\": [16, 20]},"
        " \"g\": {\"dtype\": \"U16\", \"shape\": [1], \"data_offsets\": [20, 22]},"
        " \"h\": {\"dtype\": \"BOOL\", \"shape\": [1], \"data_offsets\": [22, 23]}}",
        /* Rank exactly PD_ST_MAX_DIMS. */
        "{\"a\": {\"dtype\": \"U8\", \"shape\": [1,2,1,2,1,2,1,2], \"data_offsets\": [0, 16]}}",
        /* Whitespace of all four kinds. */
        "\t{\r\n\"a\"\t:\n{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}\r}\n",
    };
    const int counts[] = {0, 0, 0, 0, 2, 4, 1, 8, 1, 1};
    for (size_t i = 0; i < PD_COUNT(ok); i++) {
        image im = make_image(ok[i], 64);
        pd_error err = {PD_OK, ""};
        pd_st_file *f = NULL;
        CHECK_MSG(pd_st_parse(im.bytes, im.size, "ok.safetensors", &f, &err) == PD_OK, "case %zu: %s", i, err.msg);
        if (f) CHECK_EQ_INT(f->n_tensors, counts[i]);
        pd_st_close(f);
        free(im.bytes);
    }
    /* The writers' trailing-space padding, up to many bytes; and no data section. */
    image im = make_image_n("{}", 2, 4094, NULL, 0);
    pd_st_file *f = NULL;
    pd_error err = {PD_OK, ""};
    CHECK_MSG(pd_st_parse(im.bytes, im.size, "pad.safetensors", &f, &err) == PD_OK, "%s", err.msg);
    CHECK(f && f->n_tensors == 0 && f->n_meta == 0 && pd_st_find(f, "x") == NULL && pd_st_meta(f, "x") == NULL);
    pd_st_close(f);
    free(im.bytes);
    /* A NULL name is allowed. */
    im = make_image("{}", 0);
    CHECK(pd_st_parse(im.bytes, im.size, NULL, &f, &err) == PD_OK && f && f->path);
    pd_st_close(f);
    free(im.bytes);
    /* NULL-tolerant helpers. */
    pd_st_close(NULL);
    CHECK(pd_st_find(NULL, "x") == NULL && pd_st_meta(NULL, "x") == NULL);
    CHECK(pd_st_parse(NULL, 0, "n", &f, &err) == PD_ERR_FORMAT && f == NULL);
    CHECK(pd_st_parse(NULL, 9, "n", &f, &err) == PD_ERR_INVALID_ARG);
}

/* Every damaged variant must be rejected cleanly or still satisfy the invariants. */
static bool check_invariants(const pd_st_file *f, const unsigned char *bytes, size_t size) {
    for (int i = 0; i < f->n_tensors; i++) {
        const pd_st_tensor *t = &f->tensors[i];
        if (!t->name || !*t->name) return false;
        if (i > 0 && strcmp(f->tensors[i - 1].name, t->name) >= 0) return false;
        if (t->ndim < 0 || t->ndim > PD_ST_MAX_DIMS || t->numel < 0) return false;
        if (t->nbytes != (size_t)t->numel * pd_dtype_size(t->dtype)) return false;
        if ((t->nbytes == 0) != (t->data == NULL)) return false;
        if (t->data) {
            const unsigned char *p = t->data;
            if (p < bytes + 8 || p > bytes + size || t->nbytes > (size_t)(bytes + size - p)) return false;
        }
        if (pd_st_find(f, t->name) != t) return false;
    }
    return true;
}

static void test_truncation_and_corruption_sweep(void) {
    unsigned char data[VALID_DATA_LEN];
    valid_data(data);
    /* Without the unused gap, every strict prefix loses bytes some tensor needs. */
    image im = make_image_n(VALID_HEADER, strlen(VALID_HEADER), 3, data, 94);
    int rejected = 0;
    for (size_t n = 0; n < im.size; n++) {
        unsigned char *copy = malloc(n ? n : 1);   /* exact size: ASan sees any over-read */
        memcpy(copy, im.bytes, n);
        pd_error err = {PD_OK, ""};
        pd_st_file *f = NULL;
        pd_status st = pd_st_parse(copy, n, "cut.safetensors", &f, &err);
        CHECK_MSG(st == PD_ERR_FORMAT && f == NULL, "prefix of %zu bytes: status %d", n, st);
        CHECK_MSG(strstr(err.msg, "'cut.safetensors'") != NULL, "prefix %zu: '%s'", n, err.msg);
        rejected += st == PD_ERR_FORMAT;
        pd_st_close(f);
        free(copy);
    }
    CHECK_EQ_INT(rejected, (int)im.size);

    /* Overwrite each header byte with a few hostile values. */
    const unsigned char values[] = {0, ' ', '"', '\\', '{', '}', '[', ']', ',', ':', '0', '9', '-', 'e', 0x80, 0xff};
    size_t header_end = 8 + strlen(VALID_HEADER) + 3;
    int ok = 0, bad = 0;
    unsigned char *copy = malloc(im.size);
    for (size_t pos = 0; pos < header_end; pos++) {
        for (size_t v = 0; v < sizeof values; v++) {
            memcpy(copy, im.bytes, im.size);
            copy[pos] = values[v];
            pd_error err = {PD_OK, ""};
            pd_st_file *f = NULL;
            pd_status st = pd_st_parse(copy, im.size, "flip.safetensors", &f, &err);
            if (st == PD_OK) {
                ok++;
                CHECK_MSG(check_invariants(f, copy, im.size), "byte %zu = 0x%02x: invariants broken", pos, values[v]);
            } else {
                bad++;
                CHECK_MSG(st == PD_ERR_FORMAT && err.msg[0] && f == NULL, "byte %zu = 0x%02x: status %d", pos,
                          values[v], st);
            }
            pd_st_close(f);
        }
    }
    CHECK(ok > 0 && bad > 0);
    free(copy);
    free(im.bytes);
}

/* ---- golden checkpoints ------------------------------------------------------- */

static pd_st_file *open_golden(const char *rel) {
    char path[1024];
    pd_test_golden_path(path, sizeof path, rel);
    pd_error err = {PD_OK, ""};
    pd_st_file *f = NULL;
    CHECK_MSG(pd_st_open(path, &f, &err) == PD_OK, "%s: %s", rel, err.msg);
    return f;
}

static void test_golden_sd15(void) {
    PD_REQUIRE_GOLDEN();
    pd_st_file *f = open_golden("models/tiny-sd15.safetensors");
    if (!f) return;
    CHECK_EQ_INT(f->n_tensors, 989);
    CHECK(f->map.data != NULL && f->map.size == 11954212);
    CHECK(pd_st_meta(f, "format") && strcmp(pd_st_meta(f, "format"), "pt") == 0);
    const pd_st_tensor *t = pd_st_find(f, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_INT(t->dtype, PD_DTYPE_F32);
        CHECK_EQ_INT(t->ndim, 2);
        CHECK_EQ_INT(t->shape[0], 49408);
        CHECK_EQ_INT(t->shape[1], 24);
        CHECK_EQ_INT(t->nbytes, 49408 * 24 * 4);
        CHECK(t->data == f->map.data + 8 + 131024 + 20008);
    }
    /* Every tensor converts (F32, F16, I64 here) to finite values. */
    int n_f16 = 0, n_f32 = 0, n_i64 = 0;
    bool finite = true;
    for (int i = 0; i < f->n_tensors; i++) {
        const pd_st_tensor *u = &f->tensors[i];
        n_f16 += u->dtype == PD_DTYPE_F16;
        n_f32 += u->dtype == PD_DTYPE_F32;
        n_i64 += u->dtype == PD_DTYPE_I64;
        float *buf = malloc((size_t)(u->numel ? u->numel : 1) * sizeof(float));
        pd_error err;
        CHECK_MSG(pd_st_to_f32(u, buf, &err) == PD_OK, "%s", err.msg);
        for (int64_t k = 0; k < u->numel && finite; k++) finite = isfinite(buf[k]);
        free(buf);
    }
    CHECK(finite);
    CHECK_EQ_INT(n_f16, 684);
    CHECK_EQ_INT(n_f32, 304);
    CHECK_EQ_INT(n_i64, 1);
    pd_st_close(f);
}

static void test_golden_sdxl(void) {
    PD_REQUIRE_GOLDEN();
    pd_st_file *f = open_golden("models/tiny-sdxl.safetensors");
    if (!f) return;
    CHECK_EQ_INT(f->n_tensors, 1141);
    CHECK(pd_st_meta(f, "format") && strcmp(pd_st_meta(f, "format"), "pt") == 0);
    const pd_st_tensor *t = pd_st_find(f, "conditioner.embedders.1.model.logit_scale");
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_INT(t->dtype, PD_DTYPE_F16);
        CHECK_EQ_INT(t->ndim, 0);
        CHECK_EQ_INT(t->numel, 1);
        CHECK_EQ_INT(t->nbytes, 2);
        float v = NAN;
        CHECK(pd_st_to_f32(t, &v, NULL) == PD_OK && isfinite(v));
    }
    pd_st_close(f);
}

static void test_golden_diffusers_files(void) {
    PD_REQUIRE_GOLDEN();
    const char *rel[] = {
        "models/tiny-sd15/unet/diffusion_pytorch_model.safetensors",
        "models/tiny-sd15/vae/diffusion_pytorch_model.safetensors",
        "models/tiny-sd15/text_encoder/model.safetensors",
        "models/tiny-sd15-inpaint.safetensors",
    };
    for (size_t i = 0; i < PD_COUNT(rel); i++) {
        pd_st_file *f = open_golden(rel[i]);
        CHECK_MSG(f && f->n_tensors > 0, "%s has no tensors", rel[i]);
        pd_st_close(f);
    }
}

static void test_golden_truncated(void) {
    PD_REQUIRE_GOLDEN();
    char src[1024], path[64];
    pd_test_golden_path(src, sizeof src, "models/tiny-sd15.safetensors");
    pd_mapped_file map;
    pd_error err = {PD_OK, ""};
    CHECK_MSG(pd_file_map(src, &map, &err) == PD_OK, "%s", err.msg);
    if (!map.data) return;
    size_t half = map.size / 2;
    bool written = write_temp(path, sizeof path, map.data, half, 0);
    CHECK(written);
    pd_file_unmap(&map);
    if (!written) return;
    pd_st_file *f = NULL;
    CHECK(pd_st_open(path, &f, &err) == PD_ERR_FORMAT);
    CHECK(f == NULL);
    CHECK_STR_CONTAINS(err.msg, path);
    CHECK_STR_CONTAINS(err.msg, "is past the end of the data section");
    unlink(path);
}

int main(void) {
    PD_RUN(test_reject_length_prefix);
    PD_RUN(test_reject_headers);
    PD_RUN(test_open_errors_name_the_path);
    PD_RUN(test_valid_all_dtypes_and_alignments);
    PD_RUN(test_valid_small_cases);
    PD_RUN(test_truncation_and_corruption_sweep);
    PD_RUN(test_golden_sd15);
    PD_RUN(test_golden_sdxl);
    PD_RUN(test_golden_diffusers_files);
    PD_RUN(test_golden_truncated);
    return pd_test_summary();
}
