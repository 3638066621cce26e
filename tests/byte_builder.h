/*
 * byte_builder.h - a growable byte buffer for hand-built file images (GGUF tests and
 * the GGUF fuzzer's seeds): raw bytes, little-endian integers, GGUF strings (u64 length
 * + bytes). Out of memory aborts.
 */
#ifndef PD_TESTS_BYTE_BUILDER_H
#define PD_TESTS_BYTE_BUILDER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bb {
    unsigned char *p;
    size_t len, cap;
} bb;

static void bb_raw(bb *b, const void *s, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            fprintf(stderr, "byte_builder: out of memory\n");
            abort();
        }
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void bb_le(bb *b, uint64_t v, int n) {
    unsigned char t[8];
    for (int i = 0; i < n; i++) t[i] = (unsigned char)(v >> (8 * i));
    bb_raw(b, t, (size_t)n);
}

static void bb_strn(bb *b, const char *s, size_t n) {
    bb_le(b, n, 8);
    bb_raw(b, s, n);
}

static void bb_str(bb *b, const char *s) { bb_strn(b, s, strlen(s)); }

#endif
