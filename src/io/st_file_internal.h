/*
 * st_file_internal.h - helpers shared by the tensor-file readers (safetensors.c,
 * gguf.c); not for other modules. Implemented in st_file.c.
 */
#ifndef PD_IO_ST_FILE_INTERNAL_H
#define PD_IO_ST_FILE_INTERNAL_H

#include "io/safetensors.h"

#define PD_ST_NAME_SHOWN 96   /* longest tensor name quoted in a message */

/* A new empty file named name ("<memory>" when NULL), with its arena ready. */
pd_status pd_st_file_new(const char *name, pd_st_format format, pd_st_file **out, pd_error *err);

/* Sorts f->tensors by name, rejects duplicate names, then rejects two non-empty
 * tensors sharing a byte (offsets taken relative to data_section). */
pd_status pd_st_file_finish(pd_st_file *f, const unsigned char *data_section, pd_error *err);

/* Maps path and validates it with parse (pd_st_parse or pd_gguf_parse); on success the
 * file owns the mapping. */
typedef pd_status (*pd_st_parse_fn)(const unsigned char *data, size_t size, const char *name,
                                    pd_st_file **out, pd_error *err);
pd_status pd_st_open_with(const char *path, pd_st_parse_fn parse, pd_st_file **out, pd_error *err);

/* "[49408, 24]" into buf (cut short when it does not fit). */
const char *pd_st_format_shape(char *buf, size_t n, const int64_t *shape, int ndim);

/* *out = a * b for non-negative a, b; false on int64 overflow. */
bool pd_st_mul_i64(int64_t a, int64_t b, int64_t *out);

#endif
