/*
 * gemm_bf16_amx.c - bf16 GEMM and convolution on Intel AMX: the microkernel and the
 * variant entry points (contracts and packed layout: gemm_bf16.h; driver, A sources and
 * epilogue, shared with the AVX512-BF16 variants: gemm_bf16_blocked.h).
 *
 * Tiles (palette 1, every tile 16 rows x 64 bytes):
 *   tmm0..3  fp32 accumulators C[ra][cb] = tmm(2*ra + cb), 16 x 16 each (2 x NT of them)
 *   tmm4, 5  A: 16 rows x 32 bf16 (rows 0..15 from a segment's a0, 16..31 from a1)
 *   tmm6, 7  B: 16 k-pairs x 16 columns (VNNI layout, straight from the packed panel)
 * One k-step (32 k) is 2 + NT tile loads and 2 * NT _tile_dpbf16ps (NT = nr / 16).
 *
 * A call runs one panel over the row block's <= 32 rows (one A tile when <= 16 rows):
 * zero or load the accumulators, every k-step of every segment back to back, store the
 * accumulators to the driver's scratch. The driver keeps the whole reduction in one
 * call for most SD shapes (one k block), so the accumulators never leave the tiles.
 * The k-steps are software-pipelined: AMX does not rename tiles, so a load into a tile
 * waits for the TDPs reading it; loading each operand for the next k-step right after
 * its last reader keeps the TDPs back to back (measured 10-20% over loading all four
 * operands before the TDPs, on an A tile from L1 and B from L2).
 *
 * Measured here (1 core of a shared 2-vCPU Sapphire-Rapids-class VM whose AMX unit is
 * often shared; peak of a register-resident TDP loop ~2.3 TFLOP/s; best of several
 * bench_kernels --op conv_bf16/gemm_bf16 runs): 3x3 convs VAE 64x64x512 1230 GFLOP/s
 * (53%), 128x128x512 1120-1160, 256x256x256 1200, 512x512x256->128 1200, 512x512x128
 * 1040-1060 (45%); UNet 64x64x320 1530 (66%), 32x32x640 1050, 16x16x1280 730-745
 * (weight-heavy: 32-column blocks of weights in L2, the band converted per block),
 * 8x8x1280 410 (im2col); 1x1 64x64x640->320 840. GEMMs 700-1000 (4096x320x320 720,
 * 4096x960x320 890, 4096x2560x320 950, 4096x320x1280 960, 1024x5120x640 910,
 * 256x1280x5120 460): the fp32 A read from L3 and the fp32 C write bound the small-k
 * ones. The first kernel (k blocks of 256, accumulators stored and reloaded, A
 * refilled per 64 rows) reached 410-630 on the same GEMMs; convs then ran the scalar
 * reference (~16 GFLOP/s).
 *
 * Traps: _tile_loadd/_tile_stored strides are in bytes; tile numbers must be
 * compile-time constants; the config is per thread and must be loaded before any tile
 * op and released at the end (begin/end of the driver), and it is a static object
 * (GCC does not see ldtilecfg read a local one and drops the stores that fill it); A
 * rows past the live rows and k past w->k are zero in the A block (the packed W padding
 * is zero too, but 0 * NaN garbage would not be).
 */
#include <immintrin.h>

#include "kernels/gemm/gemm_bf16.h"
#include "kernels/gemm/gemm_bf16_blocked.h"

#define PD_INLINE static inline __attribute__((always_inline))

#define B_L2_BYTES (1u << 20)    /* packed weights per column block */

typedef struct tile_config {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* A static config: GCC does not model ldtilecfg's read of the 64 bytes, so a config
 * built in a local array can lose its stores to dead-store elimination. */
static const _Alignas(64) tile_config TILE_CONFIG = {
    .palette_id = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

static void config_tiles(void) { _tile_loadconfig(&TILE_CONFIG); }

static void release_tiles(void) { _tile_release(); }

/* MA x NT tiles (16 x 16 fp32 each) over one k block: accumulators from acc (row
 * stride ldacc floats) or zero, every k-step of every segment, back to acc. */
PD_INLINE void tile_block(const pd_bf16_tile *t, int ma, int nt) {
    const size_t a_stride = t->lda * sizeof(uint16_t), acc_stride = t->ldacc * sizeof(float);
    const size_t b_stride = (size_t)nt * 64, nr = (size_t)nt * 16;
    float *acc = t->acc, *acc1 = t->acc + 16 * t->ldacc;
    if (t->load) {
        _tile_loadd(0, acc, acc_stride);
        if (nt > 1) _tile_loadd(1, acc + 16, acc_stride);
        if (ma > 1) _tile_loadd(2, acc1, acc_stride);
        if (ma > 1 && nt > 1) _tile_loadd(3, acc1 + 16, acc_stride);
    } else {
        _tile_zero(0);
        if (nt > 1) _tile_zero(1);
        if (ma > 1) _tile_zero(2);
        if (ma > 1 && nt > 1) _tile_zero(3);
    }
    /* Software-pipelined k-steps: each operand tile is reloaded for the next k-step
     * right after its last reader of this one (tiles are not renamed, so a load into a
     * tile waits for the TDPs reading it; this order keeps the TDPs back to back while
     * the next operands arrive, 10-20% over load-all-then-compute). The k-steps of all
     * segments form one sequence. */
    int si = 0, kk = 0;
    const pd_bf16_seg *sg = &t->seg[0];
    const uint16_t *bk = t->b + (size_t)sg->koff * nr;
    _tile_loadd(4, sg->a0, a_stride);
    _tile_loadd(6, bk, b_stride);
    if (nt > 1) _tile_loadd(7, bk + 32, b_stride);
    if (ma > 1) _tile_loadd(5, sg->a1, a_stride);
    for (;;) {
        /* The next k-step (NULL sg: none). */
        int nkk = kk + 32, nsi = si;
        if (nkk >= sg->len) {
            nkk = 0;
            nsi++;
        }
        const pd_bf16_seg *ns = nsi < t->n_seg ? &t->seg[nsi] : NULL;
        _tile_dpbf16ps(0, 4, 6);
        if (nt > 1) _tile_dpbf16ps(1, 4, 7);
        if (!ns) {
            if (ma > 1) {
                _tile_dpbf16ps(2, 5, 6);
                if (nt > 1) _tile_dpbf16ps(3, 5, 7);
            }
            break;
        }
        const uint16_t *nb = t->b + ((size_t)ns->koff + (size_t)nkk) * nr;
        _tile_loadd(4, ns->a0 + nkk, a_stride);
        if (ma > 1) _tile_dpbf16ps(2, 5, 6);
        _tile_loadd(6, nb, b_stride);
        if (ma > 1 && nt > 1) _tile_dpbf16ps(3, 5, 7);
        if (nt > 1) _tile_loadd(7, nb + 32, b_stride);
        if (ma > 1) _tile_loadd(5, ns->a1 + nkk, a_stride);
        si = nsi;
        kk = nkk;
        sg = ns;
    }
    _tile_stored(0, acc, acc_stride);
    if (nt > 1) _tile_stored(1, acc + 16, acc_stride);
    if (ma > 1) _tile_stored(2, acc1, acc_stride);
    if (ma > 1 && nt > 1) _tile_stored(3, acc1 + 16, acc_stride);
}

static void tile_nr32(const pd_bf16_tile *t) {
    if (t->rows > 16) tile_block(t, 2, 2);
    else tile_block(t, 1, 2);
}

static void tile_nr16(const pd_bf16_tile *t) {
    if (t->rows > 16) tile_block(t, 2, 1);
    else tile_block(t, 1, 1);
}

static const pd_bf16_blocking BLOCKING_32 = {
    .nr = 32, .row_align = 16, .b_l2_bytes = B_L2_BYTES, .tile = tile_nr32,
    .begin = config_tiles, .end = release_tiles,
};
static const pd_bf16_blocking BLOCKING_16 = {
    .nr = 16, .row_align = 16, .b_l2_bytes = B_L2_BYTES, .tile = tile_nr16,
    .begin = config_tiles, .end = release_tiles,
};

void pd_bf16_gemm_32x32__amx(const pd_gemm_args *args) { pd_bf16_gemm_blocked(&BLOCKING_32, args); }
void pd_bf16_gemm_32x16__amx(const pd_gemm_args *args) { pd_bf16_gemm_blocked(&BLOCKING_16, args); }
void pd_bf16_conv_32x32__amx(const pd_conv_args *args) { pd_bf16_conv_blocked(&BLOCKING_32, args); }
