/*
 * st_file.c - what the tensor-file readers share (contract: safetensors.h and
 * st_file_internal.h): creating and closing a pd_st_file, sorting its tensors and
 * checking names and byte ranges, lookup by name, metadata lookup, page release and
 * conversion to fp32.
 *
 * Invariants established by pd_st_file_finish: tensors[] is sorted by strcmp(name),
 * names are distinct, and no two non-empty tensors share a byte of the data section.
 *
 * Traps:
 *  - Data is only 1-byte aligned in safetensors files (and in GGUF images parsed from
 *    caller memory): never dereference it as float* or uint16_t*; pd_st_to_f32 copies
 *    unaligned input through a small aligned buffer.
 *  - Data is little-endian and converted with memcpy: a little-endian host is assumed
 *    (checked at compile time below).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "io/st_file_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "st_file.c assumes a little-endian host"
#endif

#define CONVERT_CHUNK 1024  /* elements per aligned bounce buffer in pd_st_to_f32 */

/* One tensor's byte range, for the overlap check. */
typedef struct span {
    uint64_t begin;
    uint64_t end;
    const char *name;
} span;

const char *pd_st_format_shape(char *buf, size_t n, const int64_t *shape, int ndim) {
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

bool pd_st_mul_i64(int64_t a, int64_t b, int64_t *out) {
    if (a != 0 && b > INT64_MAX / a) return false;
    *out = a * b;
    return true;
}

pd_status pd_st_file_new(const char *name, pd_st_format format, pd_st_file **out, pd_error *err) {
    *out = NULL;
    if (!name) name = "<memory>";
    pd_st_file *f = calloc(1, sizeof *f);
    size_t name_len = strlen(name);
    if (!f || pd_arena_init(&f->arena, 0) != 0 || !(f->path = malloc(name_len + 1))) {
        pd_st_close(f);
        return pd_error_set(err, PD_ERR_OOM, "out of memory opening '%s'", name);
    }
    memcpy(f->path, name, name_len + 1);
    f->format = format;
    *out = f;
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

pd_status pd_st_file_finish(pd_st_file *f, const unsigned char *data_section, pd_error *err) {
    if (f->n_tensors > 1) qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_tensor_name);
    for (int i = 1; i < f->n_tensors; i++) {
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return pd_error_set(err, PD_ERR_FORMAT, "'%s': duplicate tensor name '%.*s'", f->path,
                                PD_ST_NAME_SHOWN, f->tensors[i].name);
    }
    return check_overlaps(f, data_section, err);
}

pd_status pd_st_open_with(const char *path, pd_st_parse_fn parse, pd_st_file **out, pd_error *err) {
    pd_mapped_file map;
    pd_status st = pd_file_map(path, &map, err);
    if (st != PD_OK) return st;
    pd_st_file *f = NULL;
    st = parse(map.data, map.size, path, &f, err);
    if (st != PD_OK) {
        pd_file_unmap(&map);
        return st;
    }
    f->map = map;
    *out = f;
    return PD_OK;
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
                            PD_ST_NAME_SHOWN, t->name ? t->name : "?", pd_dtype_name(dt));
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
