/*
 * tensor_file.h - opens a weights file of either format (safetensors or GGUF) into a
 * pd_st_file, telling them apart by their first bytes: "GGUF" is GGUF, anything else
 * goes to the safetensors reader (whose errors then describe it). A PyTorch zip
 * (.ckpt/.pt, "PK\3\4") is refused with a message saying so.
 */
#ifndef PD_IO_TENSOR_FILE_H
#define PD_IO_TENSOR_FILE_H

#include <stddef.h>

#include "io/gguf.h"
#include "io/safetensors.h"

/* The format the first bytes announce (safetensors when they do not say GGUF). */
pd_st_format pd_tensor_file_sniff(const unsigned char *data, size_t size);

/* Validates an image of either format (pd_st_parse or pd_gguf_parse). */
pd_status pd_tensor_file_parse(const unsigned char *data, size_t size, const char *name, pd_st_file **out,
                               pd_error *err);

/* Maps path and reads it with the reader its first bytes call for. *out is NULL on
 * failure; free with pd_st_close. (*out)->format says which reader it was. */
pd_status pd_tensor_file_open(const char *path, pd_st_file **out, pd_error *err);

#endif
