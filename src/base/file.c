/*
 * file.c - mmap-based read-only file access and path helpers (POSIX).
 */
#define _POSIX_C_SOURCE 200809L
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

pd_status pd_file_map(const char *path, pd_mapped_file *out, pd_error *err) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pd_error_set(err, PD_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return pd_error_set(err, PD_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return pd_error_set(err, PD_ERR_IO, "'%s' is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return PD_OK;
    }
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return pd_error_set(err, PD_ERR_IO, "'%s' is too large to map", path);
    }
    size_t size = (size_t)st.st_size;
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return pd_error_set(err, PD_ERR_IO, "cannot map '%s' (%zu bytes): %s", path, size, strerror(e));
    out->data = p;
    out->size = size;
    out->is_mmap = true;
    return PD_OK;
}

void pd_file_unmap(pd_mapped_file *f) {
    if (!f) return;
    if (f->data && f->is_mmap) munmap((void *)f->data, f->size);
    else free((void *)f->data);
    f->data = NULL;
    f->size = 0;
    f->is_mmap = false;
}

void pd_file_release(const pd_mapped_file *f, const void *p, size_t n) {
    if (!f || !f->is_mmap || !p || n == 0) return;
    const unsigned char *b = p;
    if (b < f->data || b + n > f->data + f->size) return;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return;
    uintptr_t start = ((uintptr_t)b + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t end = ((uintptr_t)b + n) & ~((uintptr_t)page - 1);
    if (end > start) madvise((void *)start, end - start, MADV_DONTNEED);
}

pd_status pd_file_read_all(const char *path, size_t max_size, char **out, size_t *size,
                           pd_error *err) {
    *out = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return pd_error_set(err, PD_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(fp);
        return pd_error_set(err, PD_ERR_OOM, "out of memory reading '%s'", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap >= max_size) {
                free(buf);
                fclose(fp);
                return pd_error_set(err, PD_ERR_FORMAT, "'%s' is larger than %zu bytes", path, max_size);
            }
            size_t ncap = cap * 2 > max_size ? max_size : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                fclose(fp);
                return pd_error_set(err, PD_ERR_OOM, "out of memory reading '%s'", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return pd_error_set(err, PD_ERR_IO, "error reading '%s'", path);
    }
    if (n == cap && cap == max_size) {
        /* exactly max_size bytes read; that is allowed */
    }
    buf[n] = '\0';
    *out = buf;
    *size = n;
    return PD_OK;
}

bool pd_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool pd_path_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool pd_path_join(char *buf, size_t buf_size, const char *a, const char *b) {
    size_t la = strlen(a);
    bool slash = la > 0 && a[la - 1] != '/';
    int n = snprintf(buf, buf_size, "%s%s%s", a, slash ? "/" : "", b);
    return n >= 0 && (size_t)n < buf_size;
}

bool pd_path_dirname(char *buf, size_t buf_size, const char *path) {
    const char *slash = strrchr(path, '/');
    int n;
    if (!slash) n = snprintf(buf, buf_size, ".");
    else if (slash == path) n = snprintf(buf, buf_size, "/");
    else n = snprintf(buf, buf_size, "%.*s", (int)(slash - path), path);
    return n >= 0 && (size_t)n < buf_size;
}

bool pd_path_strip_ext(char *buf, size_t buf_size, const char *path) {
    const char *base = pd_path_basename(path);
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - path) : strlen(path);
    if (len >= buf_size) return false;
    memcpy(buf, path, len);
    buf[len] = '\0';
    return true;
}

const char *pd_path_basename(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}
