/*
 * sha256.h - SHA-256 (FIPS 180-4), for the model hash written into image metadata.
 */
#ifndef PD_TOOLS_SHA256_H
#define PD_TOOLS_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t n_bytes;
    unsigned char buf[64];
    size_t n_buf;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, unsigned char out[32]);

/* AUTOMATIC1111's legacy short model hash ("AutoV1"): the first 8 hex digits of the
 * SHA-256 of the 64 KiB at offset 1 MiB of the file. Fast on multi-GB checkpoints.
 * Writes "" when the file cannot be read (or is a folder). */
void model_hash_autov1(const char *path, char out[9]);

#endif
