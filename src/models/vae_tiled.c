/*
 * vae_tiled.c - tiled VAE decoding: bounded decode memory for large images.
 *
 * The latent is cut into a grid of equal tiles that overlap; each tile goes through
 * pd_vae_decode on its own (per-tile GroupNorm statistics and attention, as diffusers'
 * AutoencoderKL.tiled_decode does), and its pixels are added into the image with
 * weights that cross-fade linearly over the pixels neighbouring tiles share.
 *
 * Per axis (n latent pixels, tile T, overlap O, step S = T - O):
 *   n <= T:  one tile [0, n)
 *   n >  T:  k = 1 + ceil((n - T) / S) tiles of T, start(i) = round(i (n - T) / (k - 1)):
 *            0 first, n - T last, neighbours sharing >= O (the rounded step is <= S).
 * Weights, per axis and in image pixels: tile i covers [lo, hi); next to a neighbour
 * with which it shares e pixels its ramp is (d + 0.5) / e at distance d from its own
 * edge (capped at 1); edges on the image border have no ramp. A pixel's weight for
 * tile (i, j) is ry_i(y) rx_j(x) / (sum_i' ry_i'(y) * sum_j' rx_j'(x)): the sum over the
 * grid tiles covering the pixel factors into the two axes, so the normalisation needs
 * no image-sized weight buffer. Where only two tiles meet the ramps already sum to 1
 * (diffusers blend_v/blend_h); rounded starts can make three tiles meet, which the
 * normalisation covers.
 *
 * Invariants: all tiles have one size (min(T, lat_h) x min(T, lat_w)), so the scratch
 * is one pd_vae_decode plan plus three small buffers, whatever the image size. A single
 * tile is a plain pd_vae_decode into the image (bit-identical to untiled).
 *
 * Traps:
 *   - z rows of a tile are not contiguous in the caller's latent: the tile is copied.
 *   - The image is accumulated (+=), so it is cleared first; a failing tile leaves it
 *     partial.
 *   - Overlap and tile are latent pixels; the ramps run over image pixels (x scale).
 */
#include "models/vae.h"

#include <string.h>

#define VAE_MAX_SIDE 16384   /* image pixels per side, as pd_vae_decode */

/* ---- placement ------------------------------------------------------------------- */

typedef struct tile_axis {
    int n;       /* latent pixels on this axis */
    int len;     /* tile length: min(tile, n) */
    int k;       /* tiles */
    int scale;   /* image pixels per latent pixel */
} tile_axis;

static bool tiling_ok(const pd_vae_tiling *t) {
    return t->tile >= 2 && t->overlap >= 1 && t->overlap < t->tile &&
           (t->tile_w == 0 || (t->tile_w >= 2 && t->overlap < t->tile_w));
}

pd_vae_tiling pd_vae_tiling_axis(const pd_vae_tiling *t, bool width) {
    return (pd_vae_tiling){width && t->tile_w ? t->tile_w : t->tile, t->overlap, 0};
}

static int count_tiles(int n, const pd_vae_tiling *t) {
    if (n <= t->tile) return 1;
    const int step = t->tile - t->overlap;
    return 1 + (n - t->tile + step - 1) / step;
}

static int start_of(int n, int len, int k, int i) {
    if (k == 1) return 0;
    /* round(i (n - len) / (k - 1)), halves up */
    int64_t num = 2 * (int64_t)i * (int64_t)(n - len) + (k - 1);
    return (int)(num / (2 * (int64_t)(k - 1)));
}

static tile_axis make_axis(int n, const pd_vae_tiling *t, int scale) {
    tile_axis a = {n, PD_MIN(n, t->tile), count_tiles(n, t), scale};
    return a;
}

static int ax_start(const tile_axis *a, int i) { return start_of(a->n, a->len, a->k, i); }

/* The pixels tiles i and i + 1 share, [*w0, *w0 + *width) in image pixels: the window
 * over which one fades into the other. (Fading over only the middle half, which drops
 * each tile's outer quarter, measured within +-0.5 dB on the tiny models: the per-tile
 * statistics, not the tile borders, dominate the difference from an untiled decode.) */
static void window(const tile_axis *a, int i, int *w0, int *width) {
    *w0 = ax_start(a, i + 1) * a->scale;
    *width = (ax_start(a, i) + a->len) * a->scale - *w0;
}

/* Unnormalised weight of tile i at image pixel p (p inside tile i): its left ramp
 * rises from 0 to 1 across the window it shares with tile i - 1, (d + 0.5) / width at
 * d pixels from the window's start, its right ramp falls likewise across the window
 * shared with i + 1; edges on the image border have no ramp. */
static float ramp(const tile_axis *a, int i, int p) {
    float w = 1.0f;
    int w0, width;
    if (i > 0) {
        window(a, i - 1, &w0, &width);
        const float r = ((float)(p - w0) + 0.5f) / (float)width;
        w = r < w ? r : w;
    }
    if (i < a->k - 1) {
        window(a, i, &w0, &width);
        const float r = ((float)(w0 + width - p) - 0.5f) / (float)width;
        w = r < w ? r : w;
    }
    return w > 0.0f ? w : 0.0f;
}

static bool covers(const tile_axis *a, int i, int p) {
    const int lo = ax_start(a, i) * a->scale;
    return p >= lo && p < lo + a->len * a->scale;
}

/* Tile i's share of image pixel p (p inside tile i): its ramp over the sum of the ramps
 * of the tiles covering p (a contiguous run of indices around i: starts and ends both
 * increase with the index). The sum is positive: the last tile j whose left ramp is
 * positive at p has its right ramp at 1 there (the ramps of one window sum to 1). */
static float share(const tile_axis *a, int i, int p) {
    const float w = ramp(a, i, p);
    float sum = w;
    for (int j = i - 1; j >= 0 && covers(a, j, p); j--) sum += ramp(a, j, p);
    for (int j = i + 1; j < a->k && covers(a, j, p); j++) sum += ramp(a, j, p);
    return w == sum ? 1.0f : w / sum;
}

/* ---- API --------------------------------------------------------------------------- */

pd_vae_tiling pd_vae_tiling_default(const pd_vae_config *cfg) {
    const int s = cfg->scale > 0 ? cfg->scale : 8;
    pd_vae_tiling t = {PD_MAX(512 / s, 2), PD_MAX(128 / s, 1), 0};
    if (t.overlap >= t.tile) t.overlap = t.tile - 1;
    return t;
}

pd_vae_tiling pd_vae_tiling_fit(const pd_vae_config *cfg, int lat_h, int lat_w) {
    const int s = cfg->scale > 0 ? cfg->scale : 8;
    const pd_vae_tiling max = {PD_MAX(640 / s, 2), PD_MIN(PD_MAX(128 / s, 1), PD_MAX(640 / s, 2) - 1), 0};
    pd_vae_tiling t = max;
    if (lat_h < 1 || lat_w < 1) return t;
    t.tile = 0;
    const int n[2] = {lat_h, lat_w};
    for (int a = 0; a < 2; a++) {
        if (n[a] <= max.tile) {
            t.tile = PD_MAX(t.tile, n[a]);
            continue;
        }
        const int k = count_tiles(n[a], &max);   /* as few as tiles of max.tile allow */
        t.tile = PD_MAX(t.tile, (n[a] + (k - 1) * max.overlap + k - 1) / k);
    }
    t.tile = PD_MAX(t.tile, max.overlap + 1);
    return t;
}

pd_vae_tiling pd_vae_tiling_split(const pd_vae_config *cfg, int lat_h, int lat_w, int ny, int nx) {
    const pd_vae_tiling fit = pd_vae_tiling_fit(cfg, lat_h, lat_w);
    if (ny < 1 || nx < 1 || lat_h < 2 || lat_w < 2) return fit;
    /* The fitted overlap, lowered until it is at most a quarter of every split side. */
    for (int o = fit.overlap; o >= 1; o--) {
        const int th = ny == 1 ? lat_h : (lat_h + (ny - 1) * o + ny - 1) / ny;
        const int tw = nx == 1 ? lat_w : (lat_w + (nx - 1) * o + nx - 1) / nx;
        if ((ny > 1 && 4 * o > th) || (nx > 1 && 4 * o > tw) || o >= PD_MIN(th, tw)) continue;
        if ((int64_t)th * tw >= (int64_t)PD_MIN(fit.tile, lat_h) * PD_MIN(fit.tile, lat_w)) return fit;
        return (pd_vae_tiling){th, o, tw == th ? 0 : tw};
    }
    return fit;
}

bool pd_vae_tiling_auto(const pd_vae_config *cfg, int lat_h, int lat_w) {
    const int64_t s = cfg->scale;
    return (int64_t)lat_h * s * (int64_t)lat_w * s > (int64_t)768 * 768;
}

pd_status pd_vae_tiling_check(const pd_vae_tiling *t, pd_error *err) {
    if (!tiling_ok(t))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "vae tiling: tile %d, overlap %d latent pixels (the tile "
                            "must be >= 2 and the overlap between 1 and tile - 1)", t->tile, t->overlap);
    return PD_OK;
}

int pd_vae_tile_count(int n, const pd_vae_tiling *t) {
    if (n < 1 || !tiling_ok(t)) return 0;
    return count_tiles(n, t);
}

int pd_vae_tile_start(int n, const pd_vae_tiling *t, int i) {
    if (n < 1 || !tiling_ok(t)) return 0;
    const int k = count_tiles(n, t);
    if (i < 0 || i >= k) return 0;
    return start_of(n, PD_MIN(n, t->tile), k, i);
}

size_t pd_vae_decode_tiled_scratch_bytes(const pd_vae_config *cfg, int lat_h, int lat_w,
                                         const pd_vae_tiling *t) {
    pd_vae_tiling def = pd_vae_tiling_default(cfg);
    if (!t) t = &def;
    if (lat_h < 1 || lat_w < 1 || !tiling_ok(t)) return 0;
    const pd_vae_tiling tx = pd_vae_tiling_axis(t, true);
    const int th = PD_MIN(lat_h, t->tile), tw = PD_MIN(lat_w, tx.tile), s = cfg->scale;
    if (count_tiles(lat_h, t) == 1 && count_tiles(lat_w, &tx) == 1)   /* plain decode */
        return pd_vae_decode_scratch_bytes(cfg, lat_h, lat_w);
    const size_t dec = pd_vae_decode_scratch_bytes(cfg, th, tw);
    const size_t z_tile = (size_t)th * (size_t)tw * (size_t)cfg->arch.latent_channels;
    const size_t img_tile = (size_t)th * (size_t)s * (size_t)tw * (size_t)s * (size_t)cfg->arch.out_channels;
    return pd_arena_size_for(z_tile * sizeof(float)) + pd_arena_size_for(img_tile * sizeof(float)) +
           pd_arena_size_for((size_t)tw * (size_t)s * sizeof(float)) + dec;
}

pd_status pd_vae_decode_tiled(const pd_vae *m, const pd_nn *nn, const float *z, int lat_h, int lat_w,
                              float *image, const pd_vae_tiling *t, pd_arena *scratch, pd_error *err) {
    return pd_vae_decode_tiled_cb(m, nn, z, lat_h, lat_w, image, t, scratch, NULL, NULL, err);
}

pd_status pd_vae_decode_tiled_cb(const pd_vae *m, const pd_nn *nn, const float *z, int lat_h, int lat_w,
                                 float *image, const pd_vae_tiling *t, pd_arena *scratch, pd_vae_tile_fn on_tile,
                                 void *user, pd_error *err) {
    const pd_vae_config *cfg = &m->cfg;
    const int s = cfg->scale, lc = cfg->arch.latent_channels, oc = cfg->arch.out_channels;
    pd_vae_tiling def = pd_vae_tiling_default(cfg);
    if (!t) t = &def;
    pd_status st = pd_vae_tiling_check(t, err);
    if (st != PD_OK) return st;
    if (lat_h < 1 || lat_w < 1 || lat_h > VAE_MAX_SIDE / s || lat_w > VAE_MAX_SIDE / s)
        return pd_error_set(err, PD_ERR_INVALID_ARG, "vae tiled decode: latent size %dx%d outside 1..%d",
                            lat_w, lat_h, VAE_MAX_SIDE / s);
    const pd_vae_tiling t_w = pd_vae_tiling_axis(t, true);
    const tile_axis ay = make_axis(lat_h, t, s), ax = make_axis(lat_w, &t_w, s);
    if (ay.k == 1 && ax.k == 1) return pd_vae_decode(m, nn, z, lat_h, lat_w, image, scratch, NULL, err);

    const size_t need = pd_vae_decode_tiled_scratch_bytes(cfg, lat_h, lat_w, t);
    const size_t avail = scratch->cap - PD_MIN(scratch->used, scratch->cap);
    if (scratch->cap > 0 && avail < need)
        return pd_error_set(err, PD_ERR_OOM, "vae: tiled decode of latent %dx%d (tiles %dx%d) needs %zu MiB of "
                            "scratch memory, the arena has %zu MiB free", lat_w, lat_h, ax.len, ay.len,
                            (need + (1 << 20) - 1) >> 20, avail >> 20);
    const int th = ay.len, tw = ax.len;
    const size_t img_w = (size_t)lat_w * (size_t)s, tile_pw = (size_t)tw * (size_t)s;
    pd_arena_mark mark = pd_arena_get_mark(scratch);
    float *zt = pd_arena_alloc(scratch, (size_t)th * (size_t)tw * (size_t)lc * sizeof(float));    // [th, tw, lc]
    float *it = pd_arena_alloc(scratch, (size_t)th * s * tile_pw * (size_t)oc * sizeof(float));   // [th*s, tw*s, oc]
    float *wx = pd_arena_alloc(scratch, tile_pw * sizeof(float));                                  // [tw*s]
    if (!zt || !it || !wx) {
        st = pd_error_set(err, PD_ERR_OOM, "vae: out of memory for the tiles of a tiled decode (%dx%d latents)",
                          tw, th);
        goto done;
    }
    memset(image, 0, (size_t)lat_h * (size_t)s * img_w * (size_t)oc * sizeof(float));

    for (int ty = 0; ty < ay.k; ty++) {
        const int y0 = ax_start(&ay, ty);
        for (int tx = 0; tx < ax.k; tx++) {
            const int x0 = ax_start(&ax, tx);
            for (int r = 0; r < th; r++)   /* z crop   // [th, tw, lc] */
                memcpy(zt + (size_t)r * tw * lc, z + ((size_t)(y0 + r) * (size_t)lat_w + (size_t)x0) * (size_t)lc,
                       (size_t)tw * (size_t)lc * sizeof(float));
            st = pd_vae_decode(m, nn, zt, th, tw, it, scratch, NULL, err);
            if (st != PD_OK) {
                pd_error_prefix(err, "tile (%d, %d) of %dx%d", ty, tx, ay.k, ax.k);
                goto done;
            }
            for (size_t c = 0; c < tile_pw; c++) wx[c] = share(&ax, tx, x0 * s + (int)c);
            for (int r = 0; r < th * s; r++) {
                const int y = y0 * s + r;
                const float wy = share(&ay, ty, y);
                const float *src = it + (size_t)r * tile_pw * (size_t)oc;              // [tw*s, oc]
                float *dst = image + ((size_t)y * img_w + (size_t)x0 * s) * (size_t)oc;  // [tw*s, oc]
                for (size_t c = 0; c < tile_pw; c++) {
                    const float w = wy * wx[c];
                    for (int ch = 0; ch < oc; ch++) dst[c * oc + ch] += w * src[c * oc + ch];
                }
            }
            const int done = ty * ax.k + tx + 1;
            if (on_tile && !on_tile(user, done, ay.k * ax.k)) {
                st = pd_error_set(err, PD_ERR_CANCELLED, "VAE decode cancelled after tile %d of %d", done,
                                  ay.k * ax.k);
                goto done;
            }
        }
    }
done:
    pd_arena_reset(scratch, mark);
    return st;
}
