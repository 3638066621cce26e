/*
 * dtype.c - names and sizes of tensor element types.
 */
#include "base/dtype.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} DTYPES[PD_DTYPE_COUNT] = {
    [PD_DTYPE_INVALID] = {"?", 0},     [PD_DTYPE_F64] = {"F64", 8},
    [PD_DTYPE_F32] = {"F32", 4},       [PD_DTYPE_F16] = {"F16", 2},
    [PD_DTYPE_BF16] = {"BF16", 2},     [PD_DTYPE_F8_E4M3] = {"F8_E4M3", 1},
    [PD_DTYPE_F8_E5M2] = {"F8_E5M2", 1}, [PD_DTYPE_I64] = {"I64", 8},
    [PD_DTYPE_I32] = {"I32", 4},       [PD_DTYPE_I16] = {"I16", 2},
    [PD_DTYPE_I8] = {"I8", 1},         [PD_DTYPE_U64] = {"U64", 8},
    [PD_DTYPE_U32] = {"U32", 4},       [PD_DTYPE_U16] = {"U16", 2},
    [PD_DTYPE_U8] = {"U8", 1},         [PD_DTYPE_BOOL] = {"BOOL", 1},
    [PD_DTYPE_Q8_0] = {"Q8_0", 34},    [PD_DTYPE_Q4_0] = {"Q4_0", 18},
    [PD_DTYPE_Q4_1] = {"Q4_1", 20},
};

size_t pd_dtype_size(pd_dtype dt) {
    return (unsigned)dt < PD_DTYPE_COUNT ? DTYPES[dt].size : 0;
}

bool pd_dtype_is_quant(pd_dtype dt) {
    return dt == PD_DTYPE_Q8_0 || dt == PD_DTYPE_Q4_0 || dt == PD_DTYPE_Q4_1;
}

int pd_dtype_block(pd_dtype dt) { return pd_dtype_is_quant(dt) ? 32 : 1; }

size_t pd_dtype_bytes(pd_dtype dt, size_t n) {
    return n / (size_t)pd_dtype_block(dt) * pd_dtype_size(dt);
}

const char *pd_dtype_name(pd_dtype dt) {
    return (unsigned)dt < PD_DTYPE_COUNT ? DTYPES[dt].name : "?";
}

pd_dtype pd_dtype_from_name(const char *s, size_t len) {
    for (int i = 1; i < PD_DTYPE_Q8_0; i++) {
        const char *n = DTYPES[i].name;
        if (strlen(n) == len && memcmp(n, s, len) == 0) return (pd_dtype)i;
    }
    return PD_DTYPE_INVALID;
}
