/*
 * safetensors.c - a validating reader for .safetensors files (contract: safetensors.h).
 *
 * Flow: map the file (pd_st_open) or take caller memory (pd_st_parse); check the
 * 8-byte header length N against the file size and PD_ST_MAX_HEADER; parse the header
 * with the strict JSON parser (base/json.c); validate every entry into a pd_st_tensor;
 * then pd_st_file_finish (st_file.c) sorts by name (binary search, duplicate
 * detection) and sorts the byte ranges by offset to find overlaps. Nothing in the file
 * is trusted before it is checked, and all size arithmetic is overflow-checked in
 * int64/uint64. Tensor data is never copied.
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
 * Traps (see also st_file.c: unaligned data, little-endian host):
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

#include "base/json.h"
#include "io/st_file_internal.h"

#define META_KEY "__metadata__"

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

static bool has_nul(const char *s, size_t len) { return memchr(s, '\0', len) != NULL; }

/* Reads "shape" of tensor `name` into t->shape/ndim/numel. */
static pd_status read_shape(const pd_st_file *f, const char *name, const pd_json *e,
                            pd_st_tensor *t, pd_error *err) {
    const pd_json *shape = pd_json_get(e, "shape");
    if (!shape)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': missing \"shape\"", f->path,
                            PD_ST_NAME_SHOWN, name);
    if (shape->type != PD_JSON_ARRAY)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': \"shape\" is %s, not an array",
                            f->path, PD_ST_NAME_SHOWN, name, json_type_name(shape->type));
    if (shape->len > PD_ST_MAX_DIMS)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': shape has rank %zu, more than the maximum %d",
                            f->path, PD_ST_NAME_SHOWN, name, shape->len, PD_ST_MAX_DIMS);
    t->ndim = (int)shape->len;
    bool any_zero = false;
    for (int i = 0; i < t->ndim; i++) {
        const pd_json *d = &shape->items[i];
        int64_t v;
        if (!pd_json_as_int64(d, &v)) {
            if (d->type == PD_JSON_NUMBER)
                return pd_error_set(err, PD_ERR_FORMAT,
                                    "'%s': tensor '%.*s': shape dimension %d (%.32s) is not an integer",
                                    f->path, PD_ST_NAME_SHOWN, name, i, d->str);
            return pd_error_set(err, PD_ERR_FORMAT,
                                "'%s': tensor '%.*s': shape dimension %d is %s, not an integer",
                                f->path, PD_ST_NAME_SHOWN, name, i, json_type_name(d->type));
        }
        if (v < 0)
            return pd_error_set(err, PD_ERR_FORMAT,
                                "'%s': tensor '%.*s': shape dimension %d is negative (%" PRId64 ")",
                                f->path, PD_ST_NAME_SHOWN, name, i, v);
        t->shape[i] = v;
        any_zero = any_zero || v == 0;
    }
    t->numel = 1;
    if (any_zero) {
        t->numel = 0;
        return PD_OK;
    }
    for (int i = 0; i < t->ndim; i++) {
        if (!pd_st_mul_i64(t->numel, t->shape[i], &t->numel)) {
            char sb[200];
            return pd_error_set(err, PD_ERR_FORMAT,
                                "'%s': tensor '%.*s': shape %s has more than 2^63 elements (overflow)",
                                f->path, PD_ST_NAME_SHOWN, name, pd_st_format_shape(sb, sizeof sb, t->shape, t->ndim));
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
                            f->path, PD_ST_NAME_SHOWN, name);
    if (off->type != PD_JSON_ARRAY)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': \"data_offsets\" is %s, not an array", f->path,
                            PD_ST_NAME_SHOWN, name, json_type_name(off->type));
    if (off->len != 2)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': \"data_offsets\" has %zu entries, expected 2 [begin, end]",
                            f->path, PD_ST_NAME_SHOWN, name, off->len);
    int64_t v[2];
    for (int i = 0; i < 2; i++) {
        const pd_json *d = &off->items[i];
        if (!pd_json_as_int64(d, &v[i]))
            return pd_error_set(err, PD_ERR_FORMAT,
                                "'%s': tensor '%.*s': data_offsets[%d] (%.32s) is not an integer",
                                f->path, PD_ST_NAME_SHOWN, name, i,
                                d->type == PD_JSON_NUMBER ? d->str : json_type_name(d->type));
        if (v[i] < 0)
            return pd_error_set(err, PD_ERR_FORMAT,
                                "'%s': tensor '%.*s': data_offsets[%d] is negative (%" PRId64 ")",
                                f->path, PD_ST_NAME_SHOWN, name, i, v[i]);
    }
    if (v[0] > v[1])
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': data_offsets begin %" PRId64 " > end %" PRId64,
                            f->path, PD_ST_NAME_SHOWN, name, v[0], v[1]);
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
                            f->path, PD_ST_NAME_SHOWN, name);
    t->name = name;
    if (e->type != PD_JSON_OBJECT)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': entry is %s, not an object",
                            f->path, PD_ST_NAME_SHOWN, name, json_type_name(e->type));
    if (pd_json_has_duplicate_keys(e))
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': entry has a duplicate field",
                            f->path, PD_ST_NAME_SHOWN, name);

    const pd_json *dt = pd_json_get(e, "dtype");
    if (!dt)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': missing \"dtype\"", f->path,
                            PD_ST_NAME_SHOWN, name);
    if (dt->type != PD_JSON_STRING)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': \"dtype\" is %s, not a string",
                            f->path, PD_ST_NAME_SHOWN, name, json_type_name(dt->type));
    t->dtype = pd_dtype_from_name(dt->str, dt->len);
    if (t->dtype == PD_DTYPE_INVALID)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': unknown dtype '%.32s'", f->path,
                            PD_ST_NAME_SHOWN, name, dt->str);

    pd_status st = read_shape(f, name, e, t, err);
    if (st != PD_OK) return st;

    int64_t nbytes;
    if (!pd_st_mul_i64(t->numel, (int64_t)pd_dtype_size(t->dtype), &nbytes) ||
        (uint64_t)nbytes > (uint64_t)SIZE_MAX) {
        char sb[200];
        return pd_error_set(err, PD_ERR_FORMAT, "'%s': tensor '%.*s': shape %s x %s overflows the byte size",
                            f->path, PD_ST_NAME_SHOWN, name, pd_st_format_shape(sb, sizeof sb, t->shape, t->ndim),
                            pd_dtype_name(t->dtype));
    }

    int64_t begin = 0, end = 0;
    st = read_offsets(f, name, e, &begin, &end, err);
    if (st != PD_OK) return st;
    if ((uint64_t)end > data_size)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': data_offsets end %" PRId64
                            " is past the end of the data section (%" PRIu64 " bytes)",
                            f->path, PD_ST_NAME_SHOWN, name, end, data_size);
    if (end - begin != nbytes) {
        char sb[200];
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': tensor '%.*s': shape %s x %s needs %" PRId64
                            " bytes but data_offsets [%" PRId64 ", %" PRId64 "] span %" PRId64,
                            f->path, PD_ST_NAME_SHOWN, name, pd_st_format_shape(sb, sizeof sb, t->shape, t->ndim),
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

    return pd_st_file_finish(f, data_section, err);
}

pd_status pd_st_parse(const unsigned char *data, size_t size, const char *name, pd_st_file **out,
                      pd_error *err) {
    if (!out) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_st_parse: out is NULL");
    *out = NULL;
    if (!data && size > 0) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_st_parse: data is NULL");
    pd_st_file *f = NULL;
    pd_status st = pd_st_file_new(name, PD_ST_FORMAT_SAFETENSORS, &f, err);
    if (st != PD_OK) return st;
    st = validate(f, data, size, err);
    if (st != PD_OK) {
        pd_st_close(f);
        return st;
    }
    *out = f;
    return PD_OK;
}

pd_status pd_st_open(const char *path, pd_st_file **out, pd_error *err) {
    if (!out) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_st_open: out is NULL");
    *out = NULL;
    if (!path) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_st_open: path is NULL");
    return pd_st_open_with(path, pd_st_parse, out, err);
}
