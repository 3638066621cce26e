/*
 * safetensors.c - a validating reader for .safetensors files (contract: safetensors.h).
 *
 * Flow: map the file (pd_st_open) or take caller memory (pd_st_parse); check the
 * 8-byte header length N against the file size and PD_ST_MAX_HEADER; parse the header
 * with the strict JSON parser (base/json.c); validate every entry into a pd_st_tensor;
 * sort by name (binary search, duplicate detection); sort the byte ranges by offset
 * to find overlaps. Nothing in the file is trusted before it is checked, and all size
 * arithmetic is overflow-checked in int64/uint64. Tensor data is never copied.
 *
 * Invariants after success: tensors[] is sorted by strcmp(name); names are distinct,
 * non-empty, valid UTF-8 without NUL; for every tensor nbytes == numel * dtype size,
 * data == NULL iff nbytes == 0, and [data, data + nbytes) lies inside the data
 * section; no two non-empty tensors share a byte. Names, the tensor array, the
 * metadata arrays and the parsed header live in f->arena.
 *
 * Reference: the format section of huggingface/safetensors' README (N, JSON header,
 * "__metadata__" of string values, offsets relative to the data section).
 *
 * Traps:
 *  - Data is only 1-byte aligned (N is arbitrary): never dereference it as float* or
 *    uint16_t*; pd_st_to_f32 copies unaligned input through a small aligned buffer.
 *  - Data is little-endian and converted with memcpy: a little-endian host is assumed
 *    (checked at compile time below).
 *  - Writers pad the header with trailing spaces (the JSON parser takes them as
 *    whitespace); NUL padding or anything else after the JSON value is rejected.
 *  - A dim of 0 makes numel 0 even when other dims are huge: test for it before the
 *    overflow-checked product, or [2^62, 4, 0] would be refused as an overflow.
 *  - JSON keys may contain \u0000; such names are rejected because lookup is by C
 *    string, and "a\u0000x" and "a\u0000y" would look like the same name "a".
 *  - A duplicate field inside one entry ("dtype" twice) is rejected rather than
 *    resolved: other readers take the last one, pd_json_get takes the first.
 */
#include "io/safetensors.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "base/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define META_KEY "__metadata__"
#define NAME_MAX_SHOWN 96   /* longest tensor name quoted in a message */
#define CONVERT_CHUNK 1024  /* elements per aligned bounce buffer in pd_st_to_f32 */

/* One tensor's byte range, for the overlap check. */
typedef struct span {
    uint64_t begin;
    uint64_t end;
    const char *name;
} span;

static const char *json_type_name(pd_json_type t) {
    switch (t) {
    case PD_JSON_NULL: return "null";
    case PD_JSON_FALSE: return "false";
    case PD_JSON_TRUE: return "true";
    case PD_JSON_NUMBER: return "a number";
    case PD_JSON_STRING: return "a string";
    case PD_JSON_ARRAY: return "an array";
    case PD_JSON_OBJECT: return "an object";
    }
    return "?";
}

/* "[49408, 24]" into buf (truncated with "..." when it does not fit). */
static const char *format_shape(char *buf, size_t n, const int64_t *shape, int ndim) {
    size_t used = 0;
    int w = snprintf(buf, n, "[");
    used = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < ndim && used < n; i++) {
        w = snprintf(buf + used, n - used, "%s%" PRId64, i ? ", " : "", shape[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
    if (used < n) snprintf(buf + used, n - used, "]");
    return buf;
}

static bool mul_nonneg_i64(int64_t a, int64_t b, int64_t *out) {
    if (a != 0 && b > INT64_MAX / a) return false;
    *out = a * b;
    return true;
}

static bool has_nul(const char *s, size_t len) { return memchr(s, '\0', len) != NULL; }

/* Reads "shape" of tensor `name` into t->shape/ndim/numel. */
static pd_status read_shape(const pd_st_file *f, const char *name, const pd_json *e,
                            pd_st_tensor *t, pd_error *err) {
    const pd_json *shape = pd_json_get(e, "shape");
    if (!shape)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': missing \"shape\"", f->path,
                            NAME_MAX_SHOWN, name);
    if (shape->type != PD_JSON_ARRAY)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': \"shape\" is %s, not an array",
                            f->path, NAME_MAX_SHOWN, name, json_type_name(shape->type));
    if (shape->len > PD_ST_MAX_DIMS)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': shape has rank %zu, more than the maximum %d",
                            f->path, NAME_MAX_SHOWN, name, shape->len, PD_ST_MAX_DIMS);
    t->ndim = (int)shape->len;
    bool any_zero = false;
    for (int i = 0; i < t->ndim; i++) {
        const pd_json *d = &shape->items[i];
        int64_t v;
        if (!pd_json_as_int64(d, &v)) {
            if (d->type == PD_JSON_NUMBER)
                return pd_error_set(err, PD_ERR_FORMAT,
                                    "'%s': tensor '%.*s': shape dimension %d (%.32s) is not an integer",
                                    f->path, NAME_MAX_SHOWN, name, i, d->str);
            return pd_error_set(err, PD_ERR_FORMAT,
                                "'%s': tensor '%.*s': shape dimension %d is %s, not an integer",
                                f->path, NAME_MAX_SHOWN, name, i, json_type_name(d->type));
        }
        if (v < 0)
            return pd_error_set(err, PD_ERR_FORMAT,
                                "'%s': tensor '%.*s': shape dimension %d is negative (%" PRId64 ")",
                                f->path, NAME_MAX_SHOWN, name, i, v);
        t->shape[i] = v;
        any_zero = any_zero || v == 0;
    }
    t->numel = 1;
    if (any_zero) {
        t->numel = 0;
        return PD_OK;
    }
    for (int i = 0; i < t->ndim; i++) {
        if (!mul_nonneg_i64(t->numel, t->shape[i], &t->numel)) {
            char sb[200];
            return pd_error_set(err, PD_ERR_FORMAT,
                                "'%s': tensor '%.*s': shape %s has more than 2^63 elements (overflow)",
                                f->path, NAME_MAX_SHOWN, name, format_shape(sb, sizeof sb, t->shape, t->ndim));
        }
    }
    return PD_OK;
}

/* Reads "data_offsets" of tensor `name` into *begin, *end (begin <= end checked). */
static pd_status read_offsets(const pd_st_file *f, const char *name, const pd_json *e,
                              int64_t *begin, int64_t *end, pd_error *err) {
    const pd_json *off = pd_json_get(e, "data_offsets");
    if (!off)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': missing \"data_offsets\"",
                            f->path, NAME_MAX_SHOWN, name);
    if (off->type != PD_JSON_ARRAY)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': \"data_offsets\" is %s, not an array", f->path,
                            NAME_MAX_SHOWN, name, json_type_name(off->type));
    if (off->len != 2)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': \"data_offsets\" has %zu entries, expected 2 [begin, end]",
                            f->path, NAME_MAX_SHOWN, name, off->len);
    int64_t v[2];
    for (int i = 0; i < 2; i++) {
        const pd_json *d = &off->items[i];
        if (!pd_json_as_int64(d, &v[i]))
            return pd_error_set(err, PD_ERR_FORMAT,
                                "'%s': tensor '%.*s': data_offsets[%d] (%.32s) is not an integer",
                                f->path, NAME_MAX_SHOWN, name, i,
                                d->type == PD_JSON_NUMBER ? d->str : json_type_name(d->type));
        if (v[i] < 0)
            return pd_error_set(err, PD_ERR_FORMAT,
                                "'%s': tensor '%.*s': data_offsets[%d] is negative (%" PRId64 ")",
                                f->path, NAME_MAX_SHOWN, name, i, v[i]);
    }
    if (v[0] > v[1])
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': data_offsets begin %" PRId64 " > end %" PRId64,
                            f->path, NAME_MAX_SHOWN, name, v[0], v[1]);
    *begin = v[0];
    *end = v[1];
    return PD_OK;
}

/* Validates one header entry into t. data_section: start of the data, data_size bytes. */
static pd_status read_tensor(const pd_st_file *f, const pd_json *e, const unsigned char *data_section,
                             uint64_t data_size, pd_st_tensor *t, pd_error *err) {
    const char *name = e->key;
    if (e->key_len == 0)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': empty tensor name in header", f->path);
    if (has_nul(e->key, e->key_len))
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor name '%.*s' contains a NUL character (\\u0000)",
                            f->path, NAME_MAX_SHOWN, name);
    t->name = name;
    if (e->type != PD_JSON_OBJECT)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': entry is %s, not an object",
                            f->path, NAME_MAX_SHOWN, name, json_type_name(e->type));
    if (pd_json_has_duplicate_keys(e))
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': entry has a duplicate field",
                            f->path, NAME_MAX_SHOWN, name);

    const pd_json *dt = pd_json_get(e, "dtype");
    if (!dt)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': missing \"dtype\"", f->path,
                            NAME_MAX_SHOWN, name);
    if (dt->type != PD_JSON_STRING)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': \"dtype\" is %s, not a string",
                            f->path, NAME_MAX_SHOWN, name, json_type_name(dt->type));
    t->dtype = pd_dtype_from_name(dt->str, dt->len);
    if (t->dtype == PD_DTYPE_INVALID)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': unknown dtype '%.32s'", f->path,
                            NAME_MAX_SHOWN, name, dt->str);

    pd_status st = read_shape(f, name, e, t, err);
    if (st != PD_OK) return st;

    int64_t nbytes;
    if (!mul_nonneg_i64(t->numel, (int64_t)pd_dtype_size(t->dtype), &nbytes) ||
        (uint64_t)nbytes > (uint64_t)SIZE_MAX) {
        char sb[200];
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': shape %s x %s overflows the byte size",
                            f->path, NAME_MAX_SHOWN, name, format_shape(sb, sizeof sb, t->shape, t->ndim),
                            pd_dtype_name(t->dtype));
    }

    int64_t begin = 0, end = 0;
    st = read_offsets(f, name, e, &begin, &end, err);
    if (st != PD_OK) return st;
    if ((uint64_t)end > data_size)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': data_offsets end %" PRId64
                            " is past the end of the data section (%" PRIu64 " bytes)",
                            f->path, NAME_MAX_SHOWN, name, end, data_size);
    if (end - begin != nbytes) {
        char sb[200];
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': shape %s x %s needs %" PRId64
                            " bytes but data_offsets [%" PRId64 ", %" PRId64 "] span %" PRId64,
                            f->path, NAME_MAX_SHOWN, name, format_shape(sb, sizeof sb, t->shape, t->ndim),
                            pd_dtype_name(t->dtype), nbytes, begin, end, end - begin);
    }
    t->nbytes = (size_t)nbytes;
    t->data = nbytes > 0 ? data_section + begin : NULL;
    return PD_OK;
}

/* Validates "__metadata__" and fills f->meta_*. */
static pd_status read_metadata(pd_st_file *f, const pd_json *m, pd_error *err) {
    if (m->type != PD_JSON_OBJECT)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': \"" META_KEY "\" is %s, not an object", f->path,
                            json_type_name(m->type));
    if (pd_json_has_duplicate_keys(m))
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': \"" META_KEY "\" has duplicate keys", f->path);
    if (m->len > (size_t)INT32_MAX)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': too many metadata entries (%zu)", f->path, m->len);
    f->n_meta = (int)m->len;
    if (m->len == 0) return PD_OK;
    f->meta_keys = pd_arena_calloc(&f->arena, m->len, sizeof *f->meta_keys);
    f->meta_values = pd_arena_calloc(&f->arena, m->len, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values)
        return pd_error_set(err, PD_ERR_OOM, "'%s': out of memory for %zu metadata entries", f->path, m->len);
    for (size_t i = 0; i < m->len; i++) {
        const pd_json *v = &m->items[i];
        if (has_nul(v->key, v->key_len))
            return pd_error_set(err, PD_ERR_FORMAT, "'%s': metadata key '%.64s' contains a NUL character",
                                f->path, v->key);
        if (v->type != PD_JSON_STRING)
            return pd_error_set(err, PD_ERR_FORMAT,
                                "'%s': metadata value for '%.64s' is %s, not a string", f->path, v->key,
                                json_type_name(v->type));
        f->meta_keys[i] = v->key;
        f->meta_values[i] = v->str;
    }
    return PD_OK;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const pd_st_tensor *)a)->name, ((const pd_st_tensor *)b)->name);
}

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Rejects two non-empty tensors sharing a byte. */
static pd_status check_overlaps(const pd_st_file *f, const unsigned char *data_section, pd_error *err) {
    if (f->n_tensors < 2) return PD_OK;
    span *spans = malloc((size_t)f->n_tensors * sizeof *spans);
    if (!spans)
        return pd_error_set(err, PD_ERR_OOM, "'%s': out of memory checking %d tensors", f->path, f->n_tensors);
    size_t n = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const pd_st_tensor *t = &f->tensors[i];
        if (t->nbytes == 0) continue;   /* an empty range overlaps nothing */
        uint64_t b = (uint64_t)((const unsigned char *)t->data - data_section);
        spans[n].begin = b;
        spans[n].end = b + t->nbytes;
        spans[n].name = t->name;
        n++;
    }
    qsort(spans, n, sizeof *spans, cmp_span);
    pd_status st = PD_OK;
    for (size_t i = 1; i < n; i++) {
        if (spans[i].begin < spans[i - 1].end) {
            st = pd_error_set(err, PD_ERR_FORMAT,
                              "'%s': tensors '%.*s' [%" PRIu64 ", %" PRIu64 ") and '%.*s' [%" PRIu64 ", %" PRIu64
                              ") overlap",
                              f->path, 64, spans[i - 1].name, spans[i - 1].begin, spans[i - 1].end, 64,
                              spans[i].name, spans[i].begin, spans[i].end);
            break;
        }
    }
    free(spans);
    return st;
}

/* Validates the file image data[0..size) into f (path and arena already set). */
static pd_status validate(pd_st_file *f, const unsigned char *data, size_t size, pd_error *err) {
    if (size < 8)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': file is %zu bytes, too short for a safetensors header (needs 8 or more)",
                            f->path, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | data[i];
    if (n == 0) return pd_error_set(err, PD_ERR_FORMAT, "'%s': header length is 0", f->path);
    if (n > (uint64_t)(size - 8))
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': header length %" PRIu64 " exceeds the file size %zu",
                            f->path, n, size);
    if (n > PD_ST_MAX_HEADER)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': header length %" PRIu64 " exceeds the limit of %" PRIu64 " bytes", f->path,
                            n, (uint64_t)PD_ST_MAX_HEADER);
    const unsigned char *data_section = data + 8 + n;
    uint64_t data_size = (uint64_t)(size - 8 - (size_t)n);

    const pd_json *root = NULL;
    pd_status st = pd_json_parse((const char *)data + 8, (size_t)n, &f->arena, &root, err);
    if (st != PD_OK) {
        pd_error_prefix(err, "'%s': header", f->path);
        return st;
    }
    if (root->type != PD_JSON_OBJECT)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': header is %s, not a JSON object", f->path,
                            json_type_name(root->type));
    if (root->len > (size_t)INT32_MAX)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': too many header entries (%zu)", f->path, root->len);

    size_t n_meta = 0;
    const pd_json *meta = NULL;
    for (size_t i = 0; i < root->len; i++) {
        const pd_json *e = &root->items[i];
        if (e->key_len == strlen(META_KEY) && memcmp(e->key, META_KEY, e->key_len) == 0) {
            meta = e;
            n_meta++;
        }
    }
    if (n_meta > 1)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': \"" META_KEY "\" appears %zu times", f->path, n_meta);
    if (meta) {
        st = read_metadata(f, meta, err);
        if (st != PD_OK) return st;
    }

    f->n_tensors = (int)(root->len - n_meta);
    if (f->n_tensors > 0) {
        f->tensors = pd_arena_calloc(&f->arena, (size_t)f->n_tensors, sizeof *f->tensors);
        if (!f->tensors)
            return pd_error_set(err, PD_ERR_OOM, "'%s': out of memory for %d tensors", f->path, f->n_tensors);
    }
    int k = 0;
    for (size_t i = 0; i < root->len; i++) {
        const pd_json *e = &root->items[i];
        if (e == meta) continue;
        st = read_tensor(f, e, data_section, data_size, &f->tensors[k++], err);
        if (st != PD_OK) return st;
    }

    if (f->n_tensors > 1) qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_tensor_name);
    for (int i = 1; i < f->n_tensors; i++) {
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return pd_error_set(err, PD_ERR_FORMAT, "'%s': duplicate tensor name '%.*s'", f->path,
                                NAME_MAX_SHOWN, f->tensors[i].name);
    }
    return check_overlaps(f, data_section, err);
}

pd_status pd_st_parse(const unsigned char *data, size_t size, const char *name, pd_st_file **out,
                      pd_error *err) {
    if (!out) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_st_parse: out is NULL");
    *out = NULL;
    if (!data && size > 0) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_st_parse: data is NULL");
    if (!name) name = "<memory>";
    pd_status st = PD_OK;
    pd_st_file *f = calloc(1, sizeof *f);
    size_t name_len = strlen(name);
    if (!f || pd_arena_init(&f->arena, 0) != 0 || !(f->path = malloc(name_len + 1))) {
        st = pd_error_set(err, PD_ERR_OOM, "out of memory opening '%s'", name);
        goto fail;
    }
    memcpy(f->path, name, name_len + 1);
    st = validate(f, data, size, err);
    if (st != PD_OK) goto fail;
    *out = f;
    return PD_OK;
fail:
    pd_st_close(f);
    return st;
}

pd_status pd_st_open(const char *path, pd_st_file **out, pd_error *err) {
    if (!out) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_st_open: out is NULL");
    *out = NULL;
    if (!path) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_st_open: path is NULL");
    pd_mapped_file map;
    pd_status st = pd_file_map(path, &map, err);
    if (st != PD_OK) return st;
    pd_st_file *f = NULL;
    st = pd_st_parse(map.data, map.size, path, &f, err);
    if (st != PD_OK) goto fail;
    f->map = map;
    *out = f;
    return PD_OK;
fail:
    pd_file_unmap(&map);
    return st;
}

void pd_st_close(pd_st_file *f) {
    if (!f) return;
    pd_arena_free(&f->arena);
    pd_file_unmap(&f->map);
    free(f->path);
    free(f);
}

const pd_st_tensor *pd_st_find(const pd_st_file *f, const char *name) {
    if (!f || !name) return NULL;
    int lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->tensors[mid].name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

void pd_st_release(const pd_st_file *f, const pd_st_tensor *t) {
    if (f && t) pd_file_release(&f->map, t->data, t->nbytes);
}

const char *pd_st_meta(const pd_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

/* Converts n elements of src (any alignment) to fp32; dt is one of the supported set. */
static void convert_chunk(float *dst, const unsigned char *src, size_t n, pd_dtype dt) {
    switch (dt) {
    case PD_DTYPE_F32: memcpy(dst, src, n * sizeof(float)); break;
    case PD_DTYPE_F16:
    case PD_DTYPE_BF16: {
        uint16_t tmp[CONVERT_CHUNK];
        memcpy(tmp, src, n * sizeof(uint16_t));
        if (dt == PD_DTYPE_F16) pd_f16_to_f32_row(dst, tmp, n);
        else pd_bf16_to_f32_row(dst, tmp, n);
        break;
    }
    case PD_DTYPE_F64:
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, src + i * sizeof v, sizeof v);
            dst[i] = (float)v;
        }
        break;
    case PD_DTYPE_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, src + i * sizeof v, sizeof v);
            dst[i] = (float)v;
        }
        break;
    case PD_DTYPE_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, src + i * sizeof v, sizeof v);
            dst[i] = (float)v;
        }
        break;
    default: PD_ASSERT(!"unsupported dtype in convert_chunk");
    }
}

pd_status pd_st_to_f32(const pd_st_tensor *t, float *dst, pd_error *err) {
    if (!t || (!dst && t->numel > 0))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_st_to_f32: NULL argument");
    pd_dtype dt = t->dtype;
    if (dt != PD_DTYPE_F32 && dt != PD_DTYPE_F16 && dt != PD_DTYPE_BF16 && dt != PD_DTYPE_F64 &&
        dt != PD_DTYPE_I64 && dt != PD_DTYPE_I32)
        return pd_error_set(err, PD_ERR_UNSUPPORTED, "tensor '%.*s': cannot convert %s to F32",
                            NAME_MAX_SHOWN, t->name ? t->name : "?", pd_dtype_name(dt));
    if (t->nbytes == 0) return PD_OK;
    size_t esize = pd_dtype_size(dt), n = (size_t)t->numel;
    const unsigned char *src = t->data;
    if (dt == PD_DTYPE_F32) {
        memcpy(dst, src, n * esize);
    } else if (dt == PD_DTYPE_F16 && (uintptr_t)src % sizeof(uint16_t) == 0) {
        pd_f16_to_f32_row(dst, (const uint16_t *)(const void *)src, n);
    } else if (dt == PD_DTYPE_BF16 && (uintptr_t)src % sizeof(uint16_t) == 0) {
        pd_bf16_to_f32_row(dst, (const uint16_t *)(const void *)src, n);
    } else {
        for (size_t i = 0; i < n; i += CONVERT_CHUNK) {
            size_t m = n - i < CONVERT_CHUNK ? n - i : CONVERT_CHUNK;
            convert_chunk(dst + i, src + i * esize, m, dt);
        }
    }
    return PD_OK;
}
