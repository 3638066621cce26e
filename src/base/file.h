/*
 * file.h - read-only file mapping, whole-file reads and small path helpers.
 *
 * pd_mapped_file maps a file read-only (mmap where available, else a heap copy).
 * Mapped bytes are never written. Errors name the path and the OS reason.
 */
#ifndef PD_BASE_FILE_H
#define PD_BASE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct pd_mapped_file {
    const unsigned char *data;
    size_t size;
    bool is_mmap;
} pd_mapped_file;

/* Maps path read-only. An empty file maps to data == NULL, size == 0. */
pd_status pd_file_map(const char *path, pd_mapped_file *out, pd_error *err);
void pd_file_unmap(pd_mapped_file *f);   /* NULL-tolerant, idempotent */

/* Tells the OS that bytes [p, p + n) of a read-only mapping of f will not be needed
 * again (e.g. weights already copied into packed form), so their pages leave the
 * process's resident set; reading them later is still valid (they are re-read from
 * the file). Only whole pages inside the range are released. No-op for heap copies. */
void pd_file_release(const pd_mapped_file *f, const void *p, size_t n);

/* Reads a whole file into a malloc'd buffer with a terminating NUL (not counted in
 * *size). Fails with PD_ERR_FORMAT if the file is larger than max_size. The caller
 * frees *out with free(). */
pd_status pd_file_read_all(const char *path, size_t max_size, char **out, size_t *size,
                           pd_error *err);

bool pd_path_is_dir(const char *path);
bool pd_path_is_file(const char *path);

/* Joins a and b with '/' into buf; returns false if it does not fit. */
bool pd_path_join(char *buf, size_t buf_size, const char *a, const char *b);

/* Copies the directory part of path ("." when there is none) into buf. */
bool pd_path_dirname(char *buf, size_t buf_size, const char *path);

/* Copies path without its last extension (".safetensors") into buf. */
bool pd_path_strip_ext(char *buf, size_t buf_size, const char *path);

/* Pointer to the last path component inside path. */
const char *pd_path_basename(const char *path);

#endif
