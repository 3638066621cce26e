/*
 * fuzz_inflate.c - libFuzzer target for pd_gunzip (gzip + DEFLATE decoding).
 *
 * Any input must return PD_OK or an error with a message, never crash, hang or
 * leak; the output is capped at 1 MiB. On success the output size is checked
 * against the limit and every byte is read (so ASan sees the whole buffer).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/inflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    unsigned char *out = NULL;
    size_t out_size = 0;
    pd_error err = {0};
    pd_status st = pd_gunzip(data, size, (size_t)1 << 20, &out, &out_size, &err);
    if (st == PD_OK) {
        if (!out || out_size > ((size_t)1 << 20)) abort();
        unsigned sum = 0;
        for (size_t i = 0; i < out_size; i++) sum += out[i];
        if (sum == 0xffffffffu) abort();   /* unreachable: keeps the reads */
    } else if (out || out_size || err.msg[0] == '\0') {
        abort();
    }
    free(out);
    return 0;
}
