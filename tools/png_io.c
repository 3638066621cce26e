/*
 * png_io.c - PNG read/write with libpng (see png_io.h).
 *
 * Traps: libpng reports errors by longjmp to the setjmp point; every object touched
 * after setjmp and freed in the error path is volatile or owned by the png structs.
 * Text over 1000 bytes or non-ASCII goes into an uncompressed iTXt chunk (A1111 writes
 * "parameters" as tEXt/iTXt; readers accept both).
 */
#include "png_io.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct err_ctx {
    char *buf;
    size_t size;
    const char *path;
} err_ctx;

static void on_error(png_structp png, png_const_charp msg) {
    err_ctx *e = png_get_error_ptr(png);
    if (e && e->buf) snprintf(e->buf, e->size, "'%s': %s", e->path, msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

int png_read_rgb(const char *path, uint8_t **rgb, int *w, int *h, char *err, size_t err_size) {
    *rgb = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, err_size, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    unsigned char sig[8];
    if (fread(sig, 1, 8, fp) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        snprintf(err, err_size, "'%s' is not a PNG file", path);
        fclose(fp);
        return -1;
    }
    err_ctx ec = {err, err_size, path};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ec, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile data = NULL;
    png_bytep *volatile rows = NULL;
    if (!png || !info) {
        snprintf(err, err_size, "'%s': out of memory", path);
        goto fail;
    }
    if (setjmp(png_jmpbuf(png))) goto fail;
    png_set_user_limits(png, 16384, 16384);
    png_init_io(png, fp);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)width * 3) {
        snprintf(err, err_size, "'%s': unsupported PNG layout", path);
        goto fail;
    }
    data = malloc((size_t)width * height * 3);
    rows = malloc(height * sizeof *rows);
    if (!data || !rows) {
        snprintf(err, err_size, "'%s': out of memory for %ux%u pixels", path, (unsigned)width, (unsigned)height);
        goto fail;
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = data + (size_t)y * width * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    free(rows);
    *rgb = data;
    *w = (int)width;
    *h = (int)height;
    return 0;
fail:
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    free(data);
    free(rows);
    return -1;
}

static bool is_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return false;
    return true;
}

/* Writes the PNG stream to fp; 0 or -1 (message in err). */
static int write_stream(FILE *fp, const char *path, const uint8_t *rgb, int w, int h,
                        const char *parameters, char *err, size_t err_size) {
    err_ctx ec = {err, err_size, path};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ec, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        snprintf(err, err_size, "'%s': out of memory", path);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (parameters) {
        png_text t;
        memset(&t, 0, sizeof t);
        t.key = (png_charp) "parameters";
        t.text = (png_charp)parameters;
        t.text_length = strlen(parameters);
        t.compression = is_ascii(parameters) ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
        png_set_text(png, info, &t, 1);
    }
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * (size_t)w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int png_write_rgb(const char *path, const uint8_t *rgb, int w, int h, const char *parameters,
                  bool overwrite, char *err, size_t err_size) {
    struct stat st;
    if (!overwrite && stat(path, &st) == 0) {
        snprintf(err, err_size, "'%s' exists; pass --overwrite to replace it", path);
        return -1;
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp) {
        snprintf(err, err_size, "output path too long");
        return -1;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, err_size, "cannot write '%s': %s", path, strerror(errno));
        return -1;
    }
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        snprintf(err, err_size, "cannot write '%s': %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    int rc = write_stream(fp, path, rgb, w, h, parameters, err, err_size);
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
        if (rc == 0) snprintf(err, err_size, "cannot write '%s': %s", path, strerror(errno));
        rc = -1;
    }
    if (fclose(fp) != 0 && rc == 0) {
        snprintf(err, err_size, "cannot write '%s': %s", path, strerror(errno));
        rc = -1;
    }
    if (rc == 0) {
        /* Mode 0644 like a normal file (mkstemp makes 0600). */
        chmod(tmp, 0644);
        if (overwrite) {
            if (rename(tmp, path) != 0) {
                snprintf(err, err_size, "cannot write '%s': %s", path, strerror(errno));
                rc = -1;
            }
        } else if (link(tmp, path) != 0) {
            int e = errno;
            struct stat st2;
            /* Filesystems without hard links (FAT, some FUSE): check, then rename. */
            if ((e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == EXDEV) && stat(path, &st2) != 0) {
                if (rename(tmp, path) != 0) {
                    snprintf(err, err_size, "cannot write '%s': %s", path, strerror(errno));
                    rc = -1;
                }
            } else {
                if (e == EEXIST) snprintf(err, err_size, "'%s' exists; pass --overwrite to replace it", path);
                else snprintf(err, err_size, "cannot write '%s': %s", path, strerror(e));
                rc = -1;
            }
        }
    }
    unlink(tmp);
    return rc;
}

char *png_read_parameters(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char err[256];
    err_ctx ec = {err, sizeof err, path};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ec, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    char *volatile out = NULL;
    if (!png || !info) goto done;
    if (setjmp(png_jmpbuf(png))) goto done;
    png_init_io(png, fp);
    png_read_info(png, info);
    png_textp text = NULL;
    int n = 0;
    png_get_text(png, info, &text, &n);
    for (int i = 0; i < n; i++)
        if (strcmp(text[i].key, "parameters") == 0) {
            out = strdup(text[i].text);
            break;
        }
done:
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    return out;
}
