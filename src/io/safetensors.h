/*
 * safetensors.h - a hostile-input-safe reader for .safetensors files.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 *   {name: {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {string: string}}
 * then the data section; offsets are relative to its start (8 + N).
 *
 * Every header is hostile. Rejected with PD_ERR_FORMAT and a message naming the file
 * and the tensor: N past EOF or absurd (> 16 MiB; real SD/SDXL headers are 0.1-0.3 MiB, and
 * a hostile header costs about 60x its size in parse-tree memory), invalid JSON, a non-object
 * header, duplicate names, unknown dtype, rank > PD_ST_MAX_DIMS, negative or
 * overflowing dims, shape x dtype size != end - begin, begin > end, end past the
 * data section, overlapping tensors, missing or mistyped fields, a non-string
 * metadata value. The file is mmap'd read-only; tensor data pointers point into it.
 * Data may be unaligned (the data section starts at 8 + N): read it with memcpy or
 * convert it, never through a cast to float* without care.
 *
 * pd_st_file and pd_st_tensor are also what the GGUF reader (gguf.h) produces, so the
 * model loader treats both formats alike; tensor_file.h opens either by sniffing.
 */
#ifndef PD_IO_SAFETENSORS_H
#define PD_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/dtype.h"
#include "base/error.h"
#include "base/file.h"

#define PD_ST_MAX_DIMS 8
#define PD_ST_MAX_HEADER ((uint64_t)16 << 20)

/* Which reader produced a pd_st_file (both fill the same structures). */
typedef enum pd_st_format {
    PD_ST_FORMAT_SAFETENSORS = 0,
    PD_ST_FORMAT_GGUF,
} pd_st_format;

typedef struct pd_st_tensor {
    const char *name;
    pd_dtype dtype;
    int ndim;
    int64_t shape[PD_ST_MAX_DIMS];
    int64_t numel;
    const void *data;   /* into the mapping; NULL when nbytes == 0 */
    size_t nbytes;      /* pd_dtype_bytes(dtype, numel) */
} pd_st_tensor;

typedef struct pd_st_file {
    char *path;               /* owned copy (or the name given to pd_st_parse) */
    pd_st_format format;
    pd_mapped_file map;       /* empty when parsed from caller memory */
    int n_tensors;
    pd_st_tensor *tensors;    /* sorted by name (strcmp) */
    int n_meta;
    const char **meta_keys;   /* __metadata__ entries (GGUF: scalar key/values as text) */
    const char **meta_values;
    pd_arena arena;           /* owns names, arrays and the parsed header */
} pd_st_file;

/* Opens and validates path. *out is NULL on failure. Free with pd_st_close. */
pd_status pd_st_open(const char *path, pd_st_file **out, pd_error *err);

/* Validates a file image already in memory (tests, fuzzing). data must outlive the
 * result; name is used in messages. */
pd_status pd_st_parse(const unsigned char *data, size_t size, const char *name,
                      pd_st_file **out, pd_error *err);

/* The functions below serve files from either reader (safetensors.c, gguf.c); they
 * live in st_file.c. */
void pd_st_close(pd_st_file *f);   /* NULL-tolerant */

/* Binary search by exact name; NULL when absent. */
const pd_st_tensor *pd_st_find(const pd_st_file *f, const char *name);

/* __metadata__ value for key, or NULL. */
const char *pd_st_meta(const pd_st_file *f, const char *key);

/* Releases the resident pages of a tensor whose data will not be read again (see
 * pd_file_release). t must belong to f. */
void pd_st_release(const pd_st_file *f, const pd_st_tensor *t);

/* Copies a tensor's elements to fp32 (F32, F16, BF16 sources; also F64/I64/I32 for
 * small buffers). dst holds t->numel floats. PD_ERR_UNSUPPORTED for other dtypes. */
pd_status pd_st_to_f32(const pd_st_tensor *t, float *dst, pd_error *err);

#endif
