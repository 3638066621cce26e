/*
 * dtype.h - element types of stored tensors: the safetensors set, plus ggml's
 * block-quantized types (GGUF files and quantized packed weights).
 *
 * Block types store blocks of pd_dtype_block() = 32 consecutive elements of a row, in
 * ggml's bit layout (so GGUF files interchange):
 *   Q8_0 (34 bytes): fp16 d, int8 q[32];               x = d * q
 *   Q4_0 (18 bytes): fp16 d, uint8 qs[16];             x = d * (nibble - 8)
 *   Q4_1 (20 bytes): fp16 d, fp16 m, uint8 qs[16];     x = d * nibble + m
 * where element j < 16 is the low nibble of qs[j] and element 16 + j its high nibble.
 */
#ifndef PD_BASE_DTYPE_H
#define PD_BASE_DTYPE_H

#include <stdbool.h>
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
    PD_DTYPE_Q8_0,   /* block types (not safetensors dtypes) */
    PD_DTYPE_Q4_0,
    PD_DTYPE_Q4_1,
    PD_DTYPE_COUNT
} pd_dtype;

/* Bytes per element, or per block of a block type (0 for PD_DTYPE_INVALID). */
size_t pd_dtype_size(pd_dtype dt);
/* Elements per block: 32 for the block types, 1 otherwise. */
int pd_dtype_block(pd_dtype dt);
/* True for Q8_0, Q4_0, Q4_1. */
bool pd_dtype_is_quant(pd_dtype dt);
/* Bytes of n elements (n a multiple of pd_dtype_block(dt)). */
size_t pd_dtype_bytes(pd_dtype dt, size_t n);
/* Safetensors spelling: "F32", "BF16", ...; "Q8_0", "Q4_0", "Q4_1" ("?" for invalid). */
const char *pd_dtype_name(pd_dtype dt);
/* Parses a safetensors dtype string of length len (never a block type);
 * PD_DTYPE_INVALID if unknown. */
pd_dtype pd_dtype_from_name(const char *s, size_t len);

#endif
