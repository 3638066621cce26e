/*
 * png_io.h - PNG files for the tools (libpng): read any PNG as 8-bit RGB, write 8-bit
 * RGB with an AUTOMATIC1111-style "parameters" text chunk.
 *
 * Writes are atomic and never clobber: the image goes to a temporary file in the same
 * folder, is flushed, then linked into place (link() fails if the name exists, so a file
 * that appears meanwhile is not replaced) or renamed over the target when overwrite is
 * allowed. On any failure the temporary is removed and the target is untouched.
 */
#ifndef PD_TOOLS_PNG_IO_H
#define PD_TOOLS_PNG_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads path into a malloc'd RGB buffer [h][w][3] (gray, palette, alpha and 16-bit
 * inputs are converted; alpha is dropped). Returns 0, or -1 with a message in err. */
int png_read_rgb(const char *path, uint8_t **rgb, int *w, int *h, char *err, size_t err_size);

/* Writes rgb [h][w][3] to path with an optional "parameters" tEXt/iTXt chunk (UTF-8).
 * overwrite = false refuses an existing path. Returns 0, or -1 with a message. */
int png_write_rgb(const char *path, const uint8_t *rgb, int w, int h, const char *parameters,
                  bool overwrite, char *err, size_t err_size);

/* Reads the "parameters" text of a PNG (malloc'd, NULL when absent). For tests. */
char *png_read_parameters(const char *path);

#endif
