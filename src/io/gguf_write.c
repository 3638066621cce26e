/*
 * gguf_write.c - a streaming GGUF v3 writer (contract: gguf.h).
 *
 * The writer keeps copies of keys, names and string values, and for each tensor its
 * ggml type, ne (innermost first), byte size and either the caller's data pointer or
 * a fill callback. pd_gguf_write lays out the data section (each tensor at the next
 * multiple of 32), writes the header, zero padding and the tensors through one stdio
 * buffer into "<path>.tmp-XXXXXX", fsyncs it and moves it into place: link(2), which
 * fails when path exists (no clobbering, even against a file appearing meanwhile), or
 * rename(2) with overwrite. Any failure unlinks the temporary file.
 *
 * Memory: the kv and tensor tables, plus one buffer the size of the largest tensor
 * that has a fill callback (allocated once at write time); data pointers are streamed
 * from the caller's memory.
 *
 * Traps:
 *  - shape is row-major; GGUF's ne is innermost first: ne[d] = shape[ndim-1-d].
 *  - The block check is on the innermost dim (shape[ndim-1]), not on numel.
 *  - mkstemp creates the file 0600: set 0644 before placing it, as other writers do.
 *  - Filesystems without hard links (FAT, some FUSE) fail link() with EPERM/ENOTSUP:
 *    fall back to "check, then rename" (racy, but only there).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/arena.h"
#include "io/gguf.h"

#define WRITE_ALIGN 32
#define NAME_SHOWN 96

typedef struct wkv {
    char *key;
    uint32_t type;   /* PD_GGUF_TYPE_STRING, U32, I32, F32, BOOL */
    char *str;
    uint32_t bits;   /* the 4 (or 1) value bytes of a scalar */
} wkv;

typedef struct wtensor {
    char *name;
    uint32_t ggml_type;
    int ndim;
    uint64_t ne[PD_GGUF_MAX_DIMS];
    size_t nbytes;
    const void *data;
    pd_gguf_fill_fn fill;
    void *user;
} wtensor;

struct pd_gguf_writer {
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *tensors;
    size_t n_tensors, cap_tensors;
};

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

pd_gguf_writer *pd_gguf_writer_new(void) { return calloc(1, sizeof(pd_gguf_writer)); }

void pd_gguf_writer_free(pd_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].str);
    }
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

/* ---- kvs ------------------------------------------------------------------------- */

static pd_status add_kv(pd_gguf_writer *w, const char *key, uint32_t type, const char *str, uint32_t bits,
                        pd_error *err) {
    if (!w || !key) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_kv: NULL argument");
    size_t len = strlen(key);
    if (len == 0) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_kv: empty key");
    if (len > PD_GGUF_MAX_NAME)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_kv: key '%.64s...' is %zu bytes, more than %d", key,
                            len, PD_GGUF_MAX_NAME);
    if (strcmp(key, PD_GGUF_ALIGNMENT_KEY) == 0)
        return pd_error_set(err, PD_ERR_INVALID_ARG,
                            "pd_gguf_add_kv: '" PD_GGUF_ALIGNMENT_KEY "' is written by the writer (always 32)");
    if (str && strlen(str) > PD_GGUF_MAX_STRING)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_kv: value of key '%.64s' is longer than %" PRIu64
                            " bytes", key, (uint64_t)PD_GGUF_MAX_STRING);
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kvs[i].key, key) == 0)
            return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_kv: duplicate key '%.64s'", key);
    if (!pd_grow((void **)&w->kvs, &w->cap_kv, w->n_kv + 1, sizeof *w->kvs))
        return pd_error_set(err, PD_ERR_OOM, "pd_gguf_add_kv: out of memory");
    wkv *kv = &w->kvs[w->n_kv];
    memset(kv, 0, sizeof *kv);
    kv->key = dup_str(key);
    kv->str = str ? dup_str(str) : NULL;
    if (!kv->key || (str && !kv->str)) {
        free(kv->key);
        free(kv->str);
        return pd_error_set(err, PD_ERR_OOM, "pd_gguf_add_kv: out of memory");
    }
    kv->type = type;
    kv->bits = bits;
    w->n_kv++;
    return PD_OK;
}

pd_status pd_gguf_add_kv_str(pd_gguf_writer *w, const char *key, const char *value, pd_error *err) {
    if (!value) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_kv_str: value is NULL");
    return add_kv(w, key, PD_GGUF_TYPE_STRING, value, 0, err);
}

pd_status pd_gguf_add_kv_u32(pd_gguf_writer *w, const char *key, uint32_t value, pd_error *err) {
    return add_kv(w, key, PD_GGUF_TYPE_U32, NULL, value, err);
}

pd_status pd_gguf_add_kv_i32(pd_gguf_writer *w, const char *key, int32_t value, pd_error *err) {
    return add_kv(w, key, PD_GGUF_TYPE_I32, NULL, (uint32_t)value, err);
}

pd_status pd_gguf_add_kv_f32(pd_gguf_writer *w, const char *key, float value, pd_error *err) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return add_kv(w, key, PD_GGUF_TYPE_F32, NULL, bits, err);
}

pd_status pd_gguf_add_kv_bool(pd_gguf_writer *w, const char *key, bool value, pd_error *err) {
    return add_kv(w, key, PD_GGUF_TYPE_BOOL, NULL, value ? 1u : 0u, err);
}

/* ---- tensors --------------------------------------------------------------------- */

/* Validates and appends a tensor; nbytes is checked when check_nbytes. */
static pd_status add_tensor(pd_gguf_writer *w, const char *name, pd_dtype dtype, int ndim, const int64_t *shape,
                            const void *data, size_t nbytes, bool check_nbytes, pd_gguf_fill_fn fill, void *user,
                            pd_error *err) {
    if (!w || !name || (!shape && ndim > 0))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_tensor: NULL argument");
    size_t len = strlen(name);
    if (len == 0) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_tensor: empty tensor name");
    if (len > PD_GGUF_MAX_NAME)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_tensor: name '%.64s...' is %zu bytes, more than %d",
                            name, len, PD_GGUF_MAX_NAME);
    int type = pd_gguf_type_of(dtype);
    if (type < 0)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_tensor: tensor '%.*s': dtype %s has no GGUF type",
                            NAME_SHOWN, name, pd_dtype_name(dtype));
    if (ndim < 1 || ndim > PD_GGUF_MAX_DIMS)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_tensor: tensor '%.*s': rank %d (must be 1..%d)",
                            NAME_SHOWN, name, ndim, PD_GGUF_MAX_DIMS);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 1)
            return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_tensor: tensor '%.*s': dim %d is %" PRId64
                                " (must be >= 1)", NAME_SHOWN, name, d, shape[d]);
        if (shape[d] > INT64_MAX / numel)
            return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_tensor: tensor '%.*s': element count overflows",
                                NAME_SHOWN, name);
        numel *= shape[d];
    }
    int block = pd_dtype_block(dtype);
    if (shape[ndim - 1] % block != 0)
        return pd_error_set(err, PD_ERR_INVALID_ARG,
                            "pd_gguf_add_tensor: tensor '%.*s': innermost dim %" PRId64 " is not a multiple of the %s "
                            "block size %d", NAME_SHOWN, name, shape[ndim - 1], pd_dtype_name(dtype), block);
    size_t esize = pd_dtype_size(dtype);
    if ((uint64_t)(numel / block) > (uint64_t)(SIZE_MAX / esize))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_tensor: tensor '%.*s': byte size overflows",
                            NAME_SHOWN, name);
    size_t need = pd_dtype_bytes(dtype, (size_t)numel);
    if (check_nbytes && nbytes != need)
        return pd_error_set(err, PD_ERR_INVALID_ARG,
                            "pd_gguf_add_tensor: tensor '%.*s': %zu bytes given, shape and %s need %zu", NAME_SHOWN, name,
                            nbytes, pd_dtype_name(dtype), need);
    if (check_nbytes && !data)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_tensor: tensor '%.*s': data is NULL", NAME_SHOWN,
                            name);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_tensor: duplicate tensor name '%.*s'", NAME_SHOWN,
                                name);
    if (!pd_grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors + 1, sizeof *w->tensors))
        return pd_error_set(err, PD_ERR_OOM, "pd_gguf_add_tensor: out of memory");
    wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->name = dup_str(name))) return pd_error_set(err, PD_ERR_OOM, "pd_gguf_add_tensor: out of memory");
    t->ggml_type = (uint32_t)type;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->ne[d] = (uint64_t)shape[ndim - 1 - d];
    t->nbytes = need;
    t->data = data;
    t->fill = fill;
    t->user = user;
    w->n_tensors++;
    return PD_OK;
}

pd_status pd_gguf_add_tensor(pd_gguf_writer *w, const char *name, pd_dtype dtype, int ndim, const int64_t *shape,
                             const void *data, size_t nbytes, pd_error *err) {
    return add_tensor(w, name, dtype, ndim, shape, data, nbytes, true, NULL, NULL, err);
}

pd_status pd_gguf_add_tensor_fill(pd_gguf_writer *w, const char *name, pd_dtype dtype, int ndim,
                                  const int64_t *shape, pd_gguf_fill_fn fill, void *user, pd_error *err) {
    if (!fill) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_add_tensor_fill: fill is NULL");
    return add_tensor(w, name, dtype, ndim, shape, NULL, 0, false, fill, user, err);
}

/* ---- writing --------------------------------------------------------------------- */

typedef struct out {
    FILE *fp;
    uint64_t pos;
    bool failed;
    int err_no;   /* errno of the first failed fwrite */
} out;

static void put(out *o, const void *p, size_t n) {
    if (o->failed || n == 0) return;
    if (fwrite(p, 1, n, o->fp) != n) {
        o->failed = true;
        o->err_no = errno ? errno : EIO;
    }
    o->pos += n;
}

static void put_u32(out *o, uint32_t v) {
    unsigned char b[4];
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
    put(o, b, 4);
}

static void put_u64(out *o, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    put(o, b, 8);
}

static void put_str(out *o, const char *s) {
    size_t n = strlen(s);
    put_u64(o, n);
    put(o, s, n);
}

static void put_pad(out *o) {
    static const unsigned char zeros[WRITE_ALIGN];
    size_t pad = (size_t)((WRITE_ALIGN - o->pos % WRITE_ALIGN) % WRITE_ALIGN);
    put(o, zeros, pad);
}

static uint64_t align_up(uint64_t x) { return (x + WRITE_ALIGN - 1) / WRITE_ALIGN * WRITE_ALIGN; }

/* Writes the whole file to o. */
static pd_status write_body(const pd_gguf_writer *w, out *o, const char *path, pd_error *err) {
    /* Header. */
    put(o, "GGUF", 4);
    put_u32(o, 3);
    put_u64(o, w->n_tensors);
    put_u64(o, w->n_kv + 1);
    put_str(o, PD_GGUF_ALIGNMENT_KEY);
    put_u32(o, PD_GGUF_TYPE_U32);
    put_u32(o, WRITE_ALIGN);
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kvs[i];
        put_str(o, kv->key);
        put_u32(o, kv->type);
        if (kv->type == PD_GGUF_TYPE_STRING) put_str(o, kv->str);
        else if (kv->type == PD_GGUF_TYPE_BOOL) put(o, &(unsigned char){(unsigned char)kv->bits}, 1);
        else put_u32(o, kv->bits);
    }
    uint64_t off = 0;
    size_t max_fill = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        put_str(o, t->name);
        put_u32(o, (uint32_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) put_u64(o, t->ne[d]);
        put_u32(o, t->ggml_type);
        put_u64(o, off);
        off = align_up(off + t->nbytes);
        if (t->fill && t->nbytes > max_fill) max_fill = t->nbytes;
    }
    put_pad(o);

    /* Data. */
    unsigned char *buf = NULL;
    if (max_fill) {
        buf = pd_aligned_alloc(max_fill);
        if (!buf)
            return pd_error_set(err, PD_ERR_OOM, "'%s': out of memory for a %zu-byte tensor buffer", path, max_fill);
    }
    pd_status st = PD_OK;
    for (size_t i = 0; i < w->n_tensors && !o->failed; i++) {
        const wtensor *t = &w->tensors[i];
        const void *src = t->data;
        if (t->fill) {
            st = t->fill(t->user, buf, t->nbytes, err);
            if (st != PD_OK) {
                pd_error_prefix(err, "'%s': tensor '%.*s'", path, NAME_SHOWN, t->name);
                break;
            }
            src = buf;
        }
        put(o, src, t->nbytes);
        put_pad(o);
    }
    pd_aligned_free(buf);
    return st;
}

/* Places tmp at path: link (fails with EEXIST if path exists) or, with overwrite,
 * rename. Returns 0 or an errno. */
static int place(const char *tmp, const char *path, bool overwrite) {
    if (overwrite) return rename(tmp, path) == 0 ? 0 : errno;
    if (link(tmp, path) == 0) {
        unlink(tmp);
        return 0;
    }
    int e = errno;
    struct stat st;
    if ((e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == EXDEV) && stat(path, &st) != 0)
        return rename(tmp, path) == 0 ? 0 : errno;
    return e;
}

pd_status pd_gguf_write(pd_gguf_writer *w, const char *path, bool overwrite, pd_error *err) {
    if (!w || !path || !*path) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_gguf_write: NULL or empty argument");
    struct stat sb;
    if (!overwrite && stat(path, &sb) == 0)
        return pd_error_set(err, PD_ERR_IO, "'%s' exists; pass overwrite to replace it", path);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return pd_error_set(err, PD_ERR_OOM, "out of memory writing '%s'", path);
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return pd_error_set(err, PD_ERR_IO, "cannot write '%s' (creating a temporary file beside it): %s", path,
                            strerror(e));
    }
    pd_status st = PD_OK;
    out o = {fdopen(fd, "wb"), 0, false, 0};
    if (!o.fp) {
        int e = errno;
        close(fd);
        st = pd_error_set(err, PD_ERR_IO, "cannot write '%s': %s", path, strerror(e));
        goto fail;
    }
    setvbuf(o.fp, NULL, _IOFBF, 1 << 20);
    st = write_body(w, &o, path, err);
    int e = 0;
    if (st == PD_OK && o.failed) e = o.err_no;
    if (st == PD_OK && !e && fflush(o.fp) != 0) e = errno ? errno : EIO;
    if (st == PD_OK && !e && fsync(fileno(o.fp)) != 0) e = errno;
    if (fclose(o.fp) != 0 && st == PD_OK && !e) e = errno ? errno : EIO;
    if (st == PD_OK && e) st = pd_error_set(err, PD_ERR_IO, "cannot write '%s': %s", path, strerror(e));
    if (st != PD_OK) goto fail;
    chmod(tmp, 0644);
    e = place(tmp, path, overwrite);
    if (e) {
        if (e == EEXIST) st = pd_error_set(err, PD_ERR_IO, "'%s' exists; pass overwrite to replace it", path);
        else st = pd_error_set(err, PD_ERR_IO, "cannot write '%s': %s", path, strerror(e));
        goto fail;
    }
    free(tmp);
    return PD_OK;
fail:
    unlink(tmp);
    free(tmp);
    return st;
}
