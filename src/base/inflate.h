/*
 * inflate.h - a hostile-input-safe gzip (RFC 1952) / DEFLATE (RFC 1951) decoder.
 *
 * Used to read CLIP's bpe_simple_vocab_16e6.txt.gz. Decodes every member of a
 * multi-member file (like `gzip -d`), verifies each member's CRC32 and ISIZE, and
 * accepts trailing zero padding after the last member; any other trailing bytes,
 * truncation, bad header fields, invalid Huffman tables, distances reaching before
 * the start of the member's output, or output larger than max_out fail with
 * PD_ERR_FORMAT and a message naming the problem and the input offset
 * (PD_ERR_OOM when memory runs out, PD_ERR_INVALID_ARG for NULL arguments).
 */
#ifndef PD_BASE_INFLATE_H
#define PD_BASE_INFLATE_H

#include <stddef.h>

#include "base/error.h"

/* Decompresses the gzip file image data[0, size). On success *out is a malloc'd
 * buffer of *out_size bytes (never NULL, even when empty; the caller frees it with
 * free()). On failure *out is NULL and *out_size 0. */
pd_status pd_gunzip(const unsigned char *data, size_t size, size_t max_out,
                    unsigned char **out, size_t *out_size, pd_error *err);

#endif
