/*
 * gguf.c - a validating GGUF reader (contract: gguf.h) and the ggml type table.
 *
 * Flow: a bounds-checked cursor (rd) walks the header once: magic, version, counts
 * (bounded by the caps and by what the remaining bytes could hold), the kvs (scalars
 * and strings become metadata text, arrays are walked and dropped), the tensor infos.
 * Then the data section start is the header end rounded up to the alignment, every
 * tensor's [offset, offset + nbytes) is checked against it, and pd_st_file_finish
 * (st_file.c) sorts by name and rejects duplicates and overlaps.
 *
 * Invariants after success: those of pd_st_file_finish, plus for every tensor
 * 0 <= ndim <= 4, every dim >= 1, numel = product of the dims, nbytes =
 * pd_dtype_bytes(dtype, numel) > 0, data != NULL, [data, data + nbytes) inside the
 * image and data - data_section a multiple of the alignment. Metadata keys are
 * distinct. All text (names, keys, values) lives in one arena buffer.
 *
 * Reference: ggml docs/gguf.md (layout, value and tensor types, alignment);
 * ggml src/gguf.cpp (v1 and big-endian rejection, n_dims <= 4 with 0 meaning a
 * scalar, ne[0] a multiple of the block size).
 *
 * Traps:
 *  - ne is innermost first: shape[] is ne reversed. The block check applies to ne[0]
 *    (the row length), i.e. shape[ndim-1].
 *  - n_dims 0 is a scalar (ggml fills ne with 1s); it is kept as ndim 0, numel 1.
 *  - ne values are u64 on disk but int64 in ggml: above INT64_MAX is an error, not a
 *    negative dimension.
 *  - Counts come from the file: never allocate n_tensors or n_kv entries before
 *    checking them against the bytes left (a 24-byte file may claim 2^64 tensors).
 *  - The text buffer grows while pointers are not yet taken: store offsets, and turn
 *    them into pointers only after the last append.
 *  - The version of a big-endian file reads as 0x03000000: say so rather than
 *    "version 50331648 unsupported".
 */
#include "io/gguf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/st_file_internal.h"

#define MIN_KV_BYTES 14       /* key length 8 + 1 key byte + type 4 + a 1-byte value */
#define MIN_TENSOR_BYTES 25   /* name length 8 + 1 name byte + n_dims 4 + type 4 + offset 8 */
#define KEY_SHOWN 64          /* longest key quoted in a message */

/* ---- ggml types ------------------------------------------------------------------ */

static const struct {
    const char *name;
    pd_dtype dtype;   /* PD_DTYPE_INVALID: known but unsupported here */
} GGML_TYPES[] = {
    [0] = {"f32", PD_DTYPE_F32},      [1] = {"f16", PD_DTYPE_F16},      [2] = {"q4_0", PD_DTYPE_Q4_0},
    [3] = {"q4_1", PD_DTYPE_Q4_1},    [6] = {"q5_0", 0},                [7] = {"q5_1", 0},
    [8] = {"q8_0", PD_DTYPE_Q8_0},    [9] = {"q8_1", 0},                [10] = {"q2_K", 0},
    [11] = {"q3_K", 0},               [12] = {"q4_K", 0},               [13] = {"q5_K", 0},
    [14] = {"q6_K", 0},               [15] = {"q8_K", 0},               [16] = {"iq2_xxs", 0},
    [17] = {"iq2_xs", 0},             [18] = {"iq3_xxs", 0},            [19] = {"iq1_s", 0},
    [20] = {"iq4_nl", 0},             [21] = {"iq3_s", 0},              [22] = {"iq2_s", 0},
    [23] = {"iq4_xs", 0},             [24] = {"i8", PD_DTYPE_I8},       [25] = {"i16", PD_DTYPE_I16},
    [26] = {"i32", PD_DTYPE_I32},     [27] = {"i64", PD_DTYPE_I64},     [28] = {"f64", PD_DTYPE_F64},
    [29] = {"iq1_m", 0},              [30] = {"bf16", PD_DTYPE_BF16},   [34] = {"tq1_0", 0},
    [35] = {"tq2_0", 0},              [39] = {"mxfp4", 0},
    /* 4, 5 (q4_2, q4_3), 31-33 (q4_0_4_4 ...), 36-38 (iq4_nl_4_4 ...) were removed. */
};

#define SUPPORTED_TYPES "f32, f16, bf16, q8_0, q4_0, q4_1, i8, i16, i32, i64, f64"

const char *pd_gguf_type_name(uint32_t t) {
    return t < PD_COUNT(GGML_TYPES) ? GGML_TYPES[t].name : NULL;
}

pd_dtype pd_gguf_dtype_of(uint32_t t) {
    return t < PD_COUNT(GGML_TYPES) ? GGML_TYPES[t].dtype : PD_DTYPE_INVALID;
}

int pd_gguf_type_of(pd_dtype dt) {
    if (dt == PD_DTYPE_INVALID) return -1;
    for (size_t i = 0; i < PD_COUNT(GGML_TYPES); i++)
        if (GGML_TYPES[i].name && GGML_TYPES[i].dtype == dt) return (int)i;
    return -1;
}

static const char *const KV_TYPE_NAMES[PD_GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

/* Bytes of one scalar value of type t; 0 for string and array. */
static size_t kv_scalar_size(uint32_t t) {
    static const unsigned char SIZES[PD_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < PD_GGUF_TYPE_COUNT ? SIZES[t] : 0;
}

/* ---- the cursor ------------------------------------------------------------------ */

typedef struct rd {
    const unsigned char *p;
    size_t size;
    size_t pos;
    const char *path;
    const char *ctx;   /* "key 'k' " / "tensor 't' " in truncation messages, or "" */
} rd;

static size_t rd_left(const rd *r) { return r->size - r->pos; }

static uint64_t load_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Reads an n-byte little-endian integer; what names it in the truncation message. */
static pd_status rd_uint(rd *r, int n, uint64_t *v, const char *what, pd_error *err) {
    if (rd_left(r) < (size_t)n)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': truncated at byte %zu reading %s%s (needs %d bytes, %zu left)", r->path,
                            r->pos, r->ctx, what, n, rd_left(r));
    *v = load_le(r->p + r->pos, n);
    r->pos += (size_t)n;
    return PD_OK;
}

static pd_status rd_u32(rd *r, uint32_t *v, const char *what, pd_error *err) {
    uint64_t x = 0;
    pd_status st = rd_uint(r, 4, &x, what, err);
    *v = (uint32_t)x;
    return st;
}

/* Reads a GGUF string header and checks that len <= max and the bytes are present;
 * *s points into the image (not NUL-terminated). */
static pd_status rd_str(rd *r, const unsigned char **s, size_t *len, uint64_t max, const char *what,
                        pd_error *err) {
    uint64_t n = 0;
    pd_status st = rd_uint(r, 8, &n, what, err);
    if (st != PD_OK) return st;
    if (n > max)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': %s%s has length %" PRIu64 ", more than the limit %" PRIu64,
                            r->path, r->ctx, what, n, max);
    if (n > rd_left(r))
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': truncated: %s%s of %" PRIu64 " bytes at byte %zu runs past the end (%zu left)",
                            r->path, r->ctx, what, n, r->pos, rd_left(r));
    *s = r->p + r->pos;
    *len = (size_t)n;
    r->pos += (size_t)n;
    return PD_OK;
}

/* ---- the text buffer ------------------------------------------------------------- */

/* All metadata and name text, NUL-separated; offsets become pointers at the end. */
typedef struct text {
    char *buf;
    size_t len, cap;
} text;

static bool text_add(text *t, const void *s, size_t n, size_t *off) {
    if (n >= SIZE_MAX - t->len - 1) return false;
    if (!pd_grow((void **)&t->buf, &t->cap, t->len + n + 1, 1)) return false;
    *off = t->len;
    if (n) memcpy(t->buf + t->len, s, n);
    t->buf[t->len + n] = '\0';
    t->len += n + 1;
    return true;
}

/* ---- the parse ------------------------------------------------------------------- */

typedef struct key_ref {
    const unsigned char *p;   /* into the image */
    size_t len;
} key_ref;

typedef struct parser {
    pd_st_file *f;
    rd r;
    text txt;
    key_ref *keys;        /* every key, for the duplicate check */
    size_t *meta_off;     /* 2 per listed kv: key offset, value offset in txt */
    size_t *name_off;     /* per tensor */
    uint64_t *offsets;    /* per tensor, relative to the data section */
    uint32_t alignment;
    char ctx[PD_ST_NAME_SHOWN + 16];   /* r.ctx: the key or tensor being read */
} parser;

static int cmp_key(const void *a, const void *b) {
    const key_ref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* Checks a key or tensor name: non-empty, no NUL. what: "key" or "tensor name". */
static pd_status check_name(const parser *ps, const unsigned char *s, size_t len, const char *what,
                            uint64_t index, pd_error *err) {
    if (len == 0)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': %s %" PRIu64 " is empty", ps->f->path, what, index);
    if (memchr(s, '\0', len))
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': %s '%.*s' contains a NUL byte", ps->f->path, what,
                            KEY_SHOWN, (const char *)s);
    return PD_OK;
}

/* The text of a scalar value of type t at p into buf. */
static void scalar_text(char *buf, size_t n, uint32_t t, const unsigned char *p) {
    uint64_t v = load_le(p, (int)kv_scalar_size(t));
    switch (t) {
    case PD_GGUF_TYPE_U8:
    case PD_GGUF_TYPE_U16:
    case PD_GGUF_TYPE_U32:
    case PD_GGUF_TYPE_U64: snprintf(buf, n, "%" PRIu64, v); break;
    case PD_GGUF_TYPE_I8: snprintf(buf, n, "%d", (int)(int8_t)(uint8_t)v); break;
    case PD_GGUF_TYPE_I16: snprintf(buf, n, "%d", (int)(int16_t)(uint16_t)v); break;
    case PD_GGUF_TYPE_I32: snprintf(buf, n, "%" PRId32, (int32_t)(uint32_t)v); break;
    case PD_GGUF_TYPE_I64: snprintf(buf, n, "%" PRId64, (int64_t)v); break;
    case PD_GGUF_TYPE_F32: {
        uint32_t u = (uint32_t)v;
        float f;
        memcpy(&f, &u, sizeof f);
        snprintf(buf, n, "%.9g", (double)f);
        break;
    }
    case PD_GGUF_TYPE_F64: {
        double d;
        memcpy(&d, &v, sizeof d);
        snprintf(buf, n, "%.17g", d);
        break;
    }
    case PD_GGUF_TYPE_BOOL: snprintf(buf, n, "%s", v ? "true" : "false"); break;
    default: snprintf(buf, n, "?"); break;
    }
}

/* Walks the elements of an array value of key k (count already read). */
static pd_status skip_array(parser *ps, const key_ref *k, uint32_t et, uint64_t count, pd_error *err) {
    rd *r = &ps->r;
    const char *path = ps->f->path;
    if (et == PD_GGUF_TYPE_ARRAY)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': key '%.*s': arrays of arrays are not supported", path,
                            (int)PD_MIN(k->len, KEY_SHOWN), (const char *)k->p);
    if (et >= PD_GGUF_TYPE_COUNT)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': key '%.*s': invalid array element type %" PRIu32, path,
                            (int)PD_MIN(k->len, KEY_SHOWN), (const char *)k->p, et);
    size_t es = kv_scalar_size(et);
    uint64_t min_each = es ? es : 8;   /* a string is at least its length field */
    if (count > rd_left(r) / min_each)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': key '%.*s': array of %" PRIu64 " %s runs past the end of the file (%zu bytes left)",
                            path, (int)PD_MIN(k->len, KEY_SHOWN), (const char *)k->p, count, KV_TYPE_NAMES[et],
                            rd_left(r));
    if (es) {
        if (et == PD_GGUF_TYPE_BOOL)
            for (uint64_t i = 0; i < count; i++)
                if (r->p[r->pos + i] > 1)
                    return pd_error_set(err, PD_ERR_FORMAT, "'%s': key '%.*s': bool element %" PRIu64
                                        " is %u, not 0 or 1", path, (int)PD_MIN(k->len, KEY_SHOWN),
                                        (const char *)k->p, i, r->p[r->pos + i]);
        r->pos += (size_t)(count * es);
        return PD_OK;
    }
    for (uint64_t i = 0; i < count; i++) {
        const unsigned char *s;
        size_t len;
        pd_status st = rd_str(r, &s, &len, PD_GGUF_MAX_STRING, "an array string", err);
        if (st != PD_OK) return st;
    }
    return PD_OK;
}

/* Reads kv number i. */
static pd_status read_kv(parser *ps, uint64_t i, size_t *n_meta, size_t *meta_text, pd_error *err) {
    rd *r = &ps->r;
    const char *path = ps->f->path;
    key_ref k;
    pd_status st = rd_str(r, &k.p, &k.len, PD_GGUF_MAX_NAME, "a key", err);
    if (st != PD_OK) return st;
    st = check_name(ps, k.p, k.len, "key", i, err);
    if (st != PD_OK) return st;
    ps->keys[i] = k;
    int kl = (int)PD_MIN(k.len, KEY_SHOWN);
    const char *ks = (const char *)k.p;
    snprintf(ps->ctx, sizeof ps->ctx, "key '%.*s' ", kl, ks);

    uint32_t type = 0;
    st = rd_u32(r, &type, "a value type", err);
    if (st != PD_OK) return st;
    if (type >= PD_GGUF_TYPE_COUNT)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': key '%.*s' has invalid value type %" PRIu32, path, kl, ks,
                            type);
    bool is_alignment = k.len == strlen(PD_GGUF_ALIGNMENT_KEY) && memcmp(ks, PD_GGUF_ALIGNMENT_KEY, k.len) == 0;
    if (is_alignment && type != PD_GGUF_TYPE_U32)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': " PD_GGUF_ALIGNMENT_KEY " has type %s, expected u32", path,
                            KV_TYPE_NAMES[type]);

    if (type == PD_GGUF_TYPE_ARRAY) {
        uint32_t et = 0;
        uint64_t count = 0;
        st = rd_u32(r, &et, "an array element type", err);
        if (st == PD_OK) st = rd_uint(r, 8, &count, "an array count", err);
        if (st != PD_OK) return st;
        return skip_array(ps, &k, et, count, err);
    }

    const unsigned char *val;
    size_t val_len;
    char num[64];
    if (type == PD_GGUF_TYPE_STRING) {
        st = rd_str(r, &val, &val_len, PD_GGUF_MAX_STRING, "a string value", err);
        if (st != PD_OK) return st;
        if (memchr(val, '\0', val_len))
            return pd_error_set(err, PD_ERR_FORMAT, "'%s': string value of key '%.*s' contains a NUL byte", path, kl,
                                ks);
    } else {
        size_t es = kv_scalar_size(type);
        if (rd_left(r) < es)
            return pd_error_set(err, PD_ERR_FORMAT, "'%s': truncated at byte %zu reading the %s value of key '%.*s'"
                                " (%zu left)", path, r->pos, KV_TYPE_NAMES[type], kl, ks, rd_left(r));
        const unsigned char *p = r->p + r->pos;
        r->pos += es;
        if (type == PD_GGUF_TYPE_BOOL && *p > 1)
            return pd_error_set(err, PD_ERR_FORMAT, "'%s': bool value of key '%.*s' is %u, not 0 or 1", path, kl, ks,
                                *p);
        if (is_alignment) {
            uint32_t a = (uint32_t)load_le(p, 4);
            if (a == 0 || (a & (a - 1)) != 0)
                return pd_error_set(err, PD_ERR_FORMAT,
                                    "'%s': " PD_GGUF_ALIGNMENT_KEY " is %" PRIu32 ", not a non-zero power of two",
                                    path, a);
            ps->alignment = a;
        }
        scalar_text(num, sizeof num, type, p);
        val = (const unsigned char *)num;
        val_len = strlen(num);
    }
    *meta_text += k.len + val_len + 2;
    if (*meta_text > PD_GGUF_MAX_META_TEXT)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': metadata text exceeds the limit of %zu bytes (at key '%.*s')",
                            path, PD_GGUF_MAX_META_TEXT, kl, ks);
    size_t *mo = &ps->meta_off[2 * *n_meta];
    if (!text_add(&ps->txt, k.p, k.len, &mo[0]) || !text_add(&ps->txt, val, val_len, &mo[1]))
        return pd_error_set(err, PD_ERR_OOM, "'%s': out of memory for metadata", path);
    (*n_meta)++;
    return PD_OK;
}

/* Reads tensor info number i into t (name offset and data offset into ps). */
static pd_status read_tensor_info(parser *ps, uint64_t i, pd_st_tensor *t, pd_error *err) {
    rd *r = &ps->r;
    const char *path = ps->f->path;
    const unsigned char *nm;
    size_t len;
    pd_status st = rd_str(r, &nm, &len, PD_GGUF_MAX_NAME, "a tensor name", err);
    if (st != PD_OK) return st;
    st = check_name(ps, nm, len, "tensor name", i, err);
    if (st != PD_OK) return st;
    int nl = (int)PD_MIN(len, PD_ST_NAME_SHOWN);
    const char *ns = (const char *)nm;
    snprintf(ps->ctx, sizeof ps->ctx, "tensor '%.*s' ", nl, ns);

    uint32_t n_dims = 0;
    st = rd_u32(r, &n_dims, "n_dims", err);
    if (st != PD_OK) return st;
    if (n_dims > PD_GGUF_MAX_DIMS)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s' has %" PRIu32 " dimensions, more than %d", path, nl,
                            ns, n_dims, PD_GGUF_MAX_DIMS);
    uint64_t ne[PD_GGUF_MAX_DIMS];
    for (uint32_t d = 0; d < n_dims; d++) {
        st = rd_uint(r, 8, &ne[d], "a dimension", err);
        if (st != PD_OK) return st;
    }
    uint32_t type = 0;
    st = rd_u32(r, &type, "the ggml type", err);
    if (st != PD_OK) return st;
    uint64_t offset = 0;
    st = rd_uint(r, 8, &offset, "the data offset", err);
    if (st != PD_OK) return st;

    t->ndim = (int)n_dims;
    t->numel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] == 0)
            return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': ne[%" PRIu32 "] is 0", path, nl, ns, d);
        if (ne[d] > (uint64_t)INT64_MAX)
            return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': ne[%" PRIu32 "] = %" PRIu64 " is too large",
                                path, nl, ns, d, ne[d]);
        t->shape[n_dims - 1 - d] = (int64_t)ne[d];
    }
    for (int d = 0; d < t->ndim; d++) {
        if (!pd_st_mul_i64(t->numel, t->shape[d], &t->numel)) {
            char sb[200];
            return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': shape %s has more than 2^63 elements", path,
                                nl, ns, pd_st_format_shape(sb, sizeof sb, t->shape, t->ndim));
        }
    }

    const char *tname = pd_gguf_type_name(type);
    if (!tname)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s' has unknown ggml type %" PRIu32, path, nl, ns,
                            type);
    t->dtype = pd_gguf_dtype_of(type);
    if (t->dtype == PD_DTYPE_INVALID)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s' has ggml type %s (%" PRIu32 "); supported: %s",
                            path, nl, ns, tname, type, SUPPORTED_TYPES);
    int block = pd_dtype_block(t->dtype);
    int64_t row = n_dims ? (int64_t)ne[0] : 1;
    if (row % block != 0)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': row length ne[0] = %" PRId64 " is not a multiple of the %s block size %d",
                            path, nl, ns, row, tname, block);
    int64_t nbytes;
    if (!pd_st_mul_i64(t->numel / block, (int64_t)pd_dtype_size(t->dtype), &nbytes) ||
        (uint64_t)nbytes > (uint64_t)SIZE_MAX) {
        char sb[200];
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': shape %s x %s overflows the byte size", path, nl,
                            ns, pd_st_format_shape(sb, sizeof sb, t->shape, t->ndim), tname);
    }
    t->nbytes = (size_t)nbytes;
    if (offset % ps->alignment != 0)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': offset %" PRIu64 " is not a multiple of the alignment %" PRIu32, path,
                            nl, ns, offset, ps->alignment);
    ps->offsets[i] = offset;
    if (!text_add(&ps->txt, nm, len, &ps->name_off[i]))
        return pd_error_set(err, PD_ERR_OOM, "'%s': out of memory for tensor names", path);
    return PD_OK;
}

static pd_status parse(parser *ps, pd_error *err) {
    pd_st_file *f = ps->f;
    rd *r = &ps->r;
    const char *path = f->path;
    if (r->size < 4)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': file is %zu bytes, too short for a GGUF header", path, r->size);
    if (memcmp(r->p, "GGUF", 4) != 0) {
        char m[4];
        for (int i = 0; i < 4; i++) m[i] = r->p[i] >= 0x20 && r->p[i] < 0x7f ? (char)r->p[i] : '?';
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': bad magic '%.4s' (expected 'GGUF')", path, m);
    }
    r->pos = 4;
    uint32_t version = 0;
    pd_status st = rd_u32(r, &version, "the version", err);
    if (st != PD_OK) return st;
    if (version == 1)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': GGUF version 1 is not supported (only 2 and 3); re-convert the file",
                            path);
    if (version != 0 && (version & 0xffff) == 0)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': GGUF version 0x%08" PRIx32 " looks byte-swapped: big-endian files are not supported",
                            path, version);
    if (version != 2 && version != 3)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': unsupported GGUF version %" PRIu32 " (only 2 and 3)", path,
                            version);
    uint64_t n_tensors = 0, n_kv = 0;
    st = rd_uint(r, 8, &n_tensors, "the tensor count", err);
    if (st == PD_OK) st = rd_uint(r, 8, &n_kv, "the kv count", err);
    if (st != PD_OK) return st;
    if (n_tensors > PD_GGUF_MAX_TENSORS)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor count %" PRIu64 " exceeds the limit %" PRIu64, path,
                            n_tensors, (uint64_t)PD_GGUF_MAX_TENSORS);
    if (n_kv > PD_GGUF_MAX_KV)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': kv count %" PRIu64 " exceeds the limit %" PRIu64, path, n_kv,
                            (uint64_t)PD_GGUF_MAX_KV);
    /* Both are now small enough that these products cannot overflow. */
    if (n_kv * MIN_KV_BYTES + n_tensors * MIN_TENSOR_BYTES > rd_left(r))
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': %" PRIu64 " kvs and %" PRIu64 " tensors cannot fit in the %zu bytes left", path, n_kv,
                            n_tensors, rd_left(r));

    size_t nk = (size_t)n_kv, nt = (size_t)n_tensors;
    ps->keys = malloc((nk ? nk : 1) * sizeof *ps->keys);
    ps->meta_off = malloc((nk ? nk : 1) * 2 * sizeof *ps->meta_off);
    ps->name_off = malloc((nt ? nt : 1) * sizeof *ps->name_off);
    ps->offsets = malloc((nt ? nt : 1) * sizeof *ps->offsets);
    if (nt) f->tensors = pd_arena_calloc(&f->arena, nt, sizeof *f->tensors);
    if (!ps->keys || !ps->meta_off || !ps->name_off || !ps->offsets || (nt && !f->tensors))
        return pd_error_set(err, PD_ERR_OOM, "'%s': out of memory for %zu kvs and %zu tensors", path, nk, nt);

    ps->alignment = PD_GGUF_DEFAULT_ALIGNMENT;
    size_t n_meta = 0, meta_text = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        ps->ctx[0] = '\0';
        st = read_kv(ps, i, &n_meta, &meta_text, err);
        if (st != PD_OK) return st;
    }
    if (nk > 1) {
        qsort(ps->keys, nk, sizeof *ps->keys, cmp_key);
        for (size_t i = 1; i < nk; i++)
            if (cmp_key(&ps->keys[i - 1], &ps->keys[i]) == 0)
                return pd_error_set(err, PD_ERR_FORMAT, "'%s': duplicate key '%.*s'", path,
                                    (int)PD_MIN(ps->keys[i].len, KEY_SHOWN), (const char *)ps->keys[i].p);
    }

    f->n_tensors = (int)nt;
    for (uint64_t i = 0; i < n_tensors; i++) {
        ps->ctx[0] = '\0';
        st = read_tensor_info(ps, i, &f->tensors[i], err);
        if (st != PD_OK) return st;
    }

    /* The data section starts at the header end rounded up to the alignment. */
    uint64_t a = ps->alignment;
    uint64_t data_start = ((uint64_t)r->pos + a - 1) / a * a;
    if (data_start > r->size && nt > 0)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': truncated: the data section would start at byte %" PRIu64
                            " (header end %zu aligned to %" PRIu64 ") but the file is %zu bytes",
                            path, data_start, r->pos, a, r->size);
    uint64_t data_size = data_start <= r->size ? r->size - data_start : 0;
    const unsigned char *data_section = r->p + (data_start <= r->size ? data_start : r->size);
    for (size_t i = 0; i < nt; i++) {
        pd_st_tensor *t = &f->tensors[i];
        uint64_t off = ps->offsets[i];
        if (off > data_size || t->nbytes > data_size - off)
            return pd_error_set(err, PD_ERR_FORMAT,
                                "'%s': tensor '%.*s': data [%" PRIu64 ", +%zu) is past the end of the data section (%" PRIu64
                                " bytes)",
                                path, PD_ST_NAME_SHOWN, ps->txt.buf + ps->name_off[i], off, t->nbytes, data_size);
        t->data = data_section + off;
    }

    /* Text is final: offsets become pointers into one arena copy. */
    char *txt = NULL;
    if (ps->txt.len) {
        txt = pd_arena_alloc(&f->arena, ps->txt.len);
        if (!txt) return pd_error_set(err, PD_ERR_OOM, "'%s': out of memory for %zu bytes of text", path, ps->txt.len);
        memcpy(txt, ps->txt.buf, ps->txt.len);
    }
    for (size_t i = 0; i < nt; i++) f->tensors[i].name = txt + ps->name_off[i];
    f->n_meta = (int)n_meta;
    if (n_meta) {
        f->meta_keys = pd_arena_calloc(&f->arena, n_meta, sizeof *f->meta_keys);
        f->meta_values = pd_arena_calloc(&f->arena, n_meta, sizeof *f->meta_values);
        if (!f->meta_keys || !f->meta_values)
            return pd_error_set(err, PD_ERR_OOM, "'%s': out of memory for %zu metadata entries", path, n_meta);
        for (size_t i = 0; i < n_meta; i++) {
            f->meta_keys[i] = txt + ps->meta_off[2 * i];
            f->meta_values[i] = txt + ps->meta_off[2 * i + 1];
        }
    }
    return pd_st_file_finish(f, data_section, err);
}

pd_status pd_gguf_parse(const unsigned char *data, size_t size, const char *name, pd_st_file **out,
                        pd_error *err) {
    if (!out) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_parse: out is NULL");
    *out = NULL;
    if (!data && size > 0) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_parse: data is NULL");
    parser ps = {0};
    pd_status st = pd_st_file_new(name, PD_ST_FORMAT_GGUF, &ps.f, err);
    if (st != PD_OK) return st;
    ps.r.p = data;
    ps.r.size = size;
    ps.r.path = ps.f->path;
    ps.r.ctx = ps.ctx;
    st = parse(&ps, err);
    free(ps.txt.buf);
    free(ps.keys);
    free(ps.meta_off);
    free(ps.name_off);
    free(ps.offsets);
    if (st != PD_OK) {
        pd_st_close(ps.f);
        return st;
    }
    *out = ps.f;
    return PD_OK;
}

pd_status pd_gguf_open(const char *path, pd_st_file **out, pd_error *err) {
    if (!out) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_open: out is NULL");
    *out = NULL;
    if (!path) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_open: path is NULL");
    return pd_st_open_with(path, pd_gguf_parse, out, err);
}
