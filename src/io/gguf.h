/*
 * gguf.h - a hostile-input-safe GGUF reader and a streaming GGUF writer.
 *
 * Format (ggml's docs/gguf.md, versions 2 and 3; little-endian; strings are a u64
 * byte length then the bytes, no NUL):
 *   "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv x  { string key, u32 value type, value }        value types: see PD_GGUF_TYPE_*
 *           (array = u32 element type, u64 count, elements; no arrays of arrays here)
 *   n_tensors x { string name, u32 n_dims (0..4), u64 ne[n_dims], u32 ggml type,
 *                 u64 offset (from the data section start, a multiple of the alignment) }
 *   zero padding to the alignment (u32 kv "general.alignment", default 32, a power of two),
 *   the data section.
 * ne[0] is the innermost (contiguous) dimension: the reader reverses it into the
 * row-major pd_st_tensor shape, shape[0] = ne[n_dims-1] ... shape[ndim-1] = ne[0].
 * Version 1 (32-bit counts and lengths) and big-endian files are rejected.
 *
 * The reader fills the same pd_st_file / pd_st_tensor as the safetensors reader
 * (format = PD_ST_FORMAT_GGUF), so pd_st_find, pd_st_meta, pd_st_release, pd_st_close
 * work alike. Supported ggml types: f32, f16, bf16, q8_0, q4_0, q4_1 (PD_DTYPE_Q*),
 * i8, i16, i32, i64, f64; other known types (q5_*, K-quants, IQ types, ...) are
 * rejected with PD_ERR_FORMAT naming the tensor and the type. Metadata: string kvs go
 * to meta_keys/meta_values as they are; numbers and bools as their decimal text
 * ("32", "-1", "0.5", "true"); arrays are validated but not listed.
 *
 * Every file is hostile. Rejected with PD_ERR_FORMAT and a message naming the file
 * (and the key or tensor): truncation anywhere, bad magic, version 0, 1 or > 3, counts
 * that the remaining bytes cannot hold or above the caps below, keys and names empty,
 * longer than PD_GGUF_MAX_NAME or holding a NUL, string values longer than
 * PD_GGUF_MAX_STRING or holding a NUL, unknown kv types, nested arrays, array counts
 * past the end, bool bytes other than 0/1, duplicate keys, general.alignment not a
 * u32 or not a non-zero power of two, n_dims > 4, a dimension of 0 or above INT64_MAX,
 * element counts or byte sizes overflowing, a row length (ne[0]) that is not a
 * multiple of the block size, offsets not a multiple of the alignment, data past the
 * end of the file, overlapping tensors, duplicate tensor names.
 * Header parse memory is bounded by a small multiple of the header bytes read (all
 * text lands in one buffer) and by the caps below.
 */
#ifndef PD_IO_GGUF_H
#define PD_IO_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/error.h"
#include "io/safetensors.h"

#define PD_GGUF_MAX_NAME 65535                        /* bytes in a key or tensor name */
#define PD_GGUF_MAX_STRING ((uint64_t)16 << 20)       /* bytes in one string value */
#define PD_GGUF_MAX_TENSORS ((uint64_t)1 << 18)
#define PD_GGUF_MAX_KV ((uint64_t)1 << 20)
#define PD_GGUF_MAX_META_TEXT ((size_t)64 << 20)      /* key + value text kept for pd_st_meta */
#define PD_GGUF_MAX_DIMS 4
#define PD_GGUF_DEFAULT_ALIGNMENT 32
#define PD_GGUF_ALIGNMENT_KEY "general.alignment"

/* GGUF metadata value types (the u32 after each key). */
enum {
    PD_GGUF_TYPE_U8 = 0,
    PD_GGUF_TYPE_I8 = 1,
    PD_GGUF_TYPE_U16 = 2,
    PD_GGUF_TYPE_I16 = 3,
    PD_GGUF_TYPE_U32 = 4,
    PD_GGUF_TYPE_I32 = 5,
    PD_GGUF_TYPE_F32 = 6,
    PD_GGUF_TYPE_BOOL = 7,
    PD_GGUF_TYPE_STRING = 8,
    PD_GGUF_TYPE_ARRAY = 9,
    PD_GGUF_TYPE_U64 = 10,
    PD_GGUF_TYPE_I64 = 11,
    PD_GGUF_TYPE_F64 = 12,
    PD_GGUF_TYPE_COUNT
};

/* ---- reader ---------------------------------------------------------------------- */

/* Validates a GGUF image in memory (tests, fuzzing). data must outlive the result;
 * name is used in messages. *out is NULL on failure. Free with pd_st_close. */
pd_status pd_gguf_parse(const unsigned char *data, size_t size, const char *name, pd_st_file **out,
                        pd_error *err);

/* Maps path read-only and validates it. Free with pd_st_close. */
pd_status pd_gguf_open(const char *path, pd_st_file **out, pd_error *err);

/* ggml type id of a dtype (F32 -> 0, Q8_0 -> 8, ...), or -1 when GGUF cannot hold it
 * here (F8, unsigned, BOOL). */
int pd_gguf_type_of(pd_dtype dt);

/* The dtype of a ggml type id, or PD_DTYPE_INVALID for unsupported or unknown ids. */
pd_dtype pd_gguf_dtype_of(uint32_t ggml_type);

/* ggml's name of a type id ("q4_K"), or NULL when the id is unknown or removed. */
const char *pd_gguf_type_name(uint32_t ggml_type);

/* ---- writer ---------------------------------------------------------------------- */

/* Builds a GGUF file (version 3, alignment 32, "general.alignment" written as u32 32
 * first) from kvs and tensors added in order; pd_gguf_write streams it out. Tensor
 * bytes are not copied: either the caller's pointer is kept until pd_gguf_write, or a
 * fill callback produces each tensor into a buffer the size of the largest such tensor
 * (so a converter can quantize tensor by tensor; memory stays bounded by one tensor).
 * All strings passed in are copied. Errors: PD_ERR_INVALID_ARG for bad arguments
 * (duplicate key or name, empty or too long name, shape that does not match nbytes,
 * a block type whose innermost dim is not a multiple of 32, rank outside 1..4),
 * PD_ERR_OOM. */
typedef struct pd_gguf_writer pd_gguf_writer;

/* Writes exactly nbytes bytes of the tensor into dst (64-byte aligned). A status other
 * than PD_OK aborts pd_gguf_write with that status (no file is left behind). */
typedef pd_status (*pd_gguf_fill_fn)(void *user, void *dst, size_t nbytes, pd_error *err);

pd_gguf_writer *pd_gguf_writer_new(void);   /* NULL when out of memory */
void pd_gguf_writer_free(pd_gguf_writer *w);   /* NULL-tolerant */

pd_status pd_gguf_add_kv_str(pd_gguf_writer *w, const char *key, const char *value, pd_error *err);
pd_status pd_gguf_add_kv_u32(pd_gguf_writer *w, const char *key, uint32_t value, pd_error *err);
pd_status pd_gguf_add_kv_i32(pd_gguf_writer *w, const char *key, int32_t value, pd_error *err);
pd_status pd_gguf_add_kv_f32(pd_gguf_writer *w, const char *key, float value, pd_error *err);
pd_status pd_gguf_add_kv_bool(pd_gguf_writer *w, const char *key, bool value, pd_error *err);

/* shape is row-major (shape[ndim-1] innermost), ndim 1..4, every dim >= 1; dtype one
 * that pd_gguf_type_of maps; nbytes must equal pd_dtype_bytes(dtype, numel). data
 * (nbytes bytes) must stay valid until pd_gguf_write returns. */
pd_status pd_gguf_add_tensor(pd_gguf_writer *w, const char *name, pd_dtype dtype, int ndim,
                             const int64_t *shape, const void *data, size_t nbytes, pd_error *err);

/* Like pd_gguf_add_tensor, with the bytes produced by fill(user, ...) during
 * pd_gguf_write; user must stay valid until then. */
pd_status pd_gguf_add_tensor_fill(pd_gguf_writer *w, const char *name, pd_dtype dtype, int ndim,
                                  const int64_t *shape, pd_gguf_fill_fn fill, void *user, pd_error *err);

/* Writes the file: to a temporary file beside path ("<path>.tmp-XXXXXX"), then moved
 * into place only when everything succeeded. An existing path is never replaced
 * unless overwrite is true (PD_ERR_IO "... exists"). On any failure no file is left
 * behind. The writer may be written again or freed afterwards. */
pd_status pd_gguf_write(pd_gguf_writer *w, const char *path, bool overwrite, pd_error *err);

#endif
