/*
 * tensor_file.c - format sniffing in front of the safetensors and GGUF readers
 * (contract: tensor_file.h).
 */
#include "io/tensor_file.h"

#include <string.h>

#include "io/st_file_internal.h"

pd_st_format pd_tensor_file_sniff(const unsigned char *data, size_t size) {
    return size >= 4 && memcmp(data, "GGUF", 4) == 0 ? PD_ST_FORMAT_GGUF : PD_ST_FORMAT_SAFETENSORS;
}

pd_status pd_tensor_file_parse(const unsigned char *data, size_t size, const char *name, pd_st_file **out,
                               pd_error *err) {
    if (!out) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_tensor_file_parse: out is NULL");
    *out = NULL;
    if (!data && size > 0) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_tensor_file_parse: data is NULL");
    if (size >= 4 && memcmp(data, "PK\3\4", 4) == 0)
        return pd_error_set(err, PD_ERR_FORMAT,
                            "'%s': a zip archive (PyTorch .ckpt/.pt?), not safetensors or GGUF; convert it first",
                            name ? name : "<memory>");
    if (pd_tensor_file_sniff(data, size) == PD_ST_FORMAT_GGUF) return pd_gguf_parse(data, size, name, out, err);
    return pd_st_parse(data, size, name, out, err);
}

pd_status pd_tensor_file_open(const char *path, pd_st_file **out, pd_error *err) {
    if (!out) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_tensor_file_open: out is NULL");
    *out = NULL;
    if (!path) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_tensor_file_open: path is NULL");
    return pd_st_open_with(path, pd_tensor_file_parse, out, err);
}
