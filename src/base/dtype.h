/*
 * dtype.h - element types of stored tensors (the safetensors set).
 */
#ifndef PD_BASE_DTYPE_H
#define PD_BASE_DTYPE_H

#include <stddef.h>

typedef enum pd_dtype {
    PD_DTYPE_INVALID = 0,
    PD_DTYPE_F64,
    PD_DTYPE_F32,
    PD_DTYPE_F16,
    PD_DTYPE_BF16,
    PD_DTYPE_F8_E4M3,
    PD_DTYPE_F8_E5M2,
    PD_DTYPE_I64,
    PD_DTYPE_I32,
    PD_DTYPE_I16,
    PD_DTYPE_I8,
    PD_DTYPE_U64,
    PD_DTYPE_U32,
    PD_DTYPE_U16,
    PD_DTYPE_U8,
    PD_DTYPE_BOOL,
    PD_DTYPE_COUNT
} pd_dtype;

/* Bytes per element (0 for PD_DTYPE_INVALID). */
size_t pd_dtype_size(pd_dtype dt);
/* Safetensors spelling: "F32", "BF16", ... ("?" for invalid). */
const char *pd_dtype_name(pd_dtype dt);
/* Parses a safetensors dtype string of length len; PD_DTYPE_INVALID if unknown. */
pd_dtype pd_dtype_from_name(const char *s, size_t len);

#endif
