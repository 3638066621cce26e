/*
 * make_model.c - `phonediffusion make-model`: writes a deterministic random-weight
 * Stable Diffusion checkpoint in the original single-file layout (the key names and
 * shapes of downloaded LDM / sgm .safetensors files), so the demo, the tests and the
 * benchmarks have full-size and tiny models without any download.
 *
 *   phonediffusion make-model --arch ARCH -o FILE.safetensors [--dtype f16|f32|bf16]
 *                             [--seed N] [--overwrite] [--quiet]
 *
 * Architectures. Nothing needs a config file: every setting the tensor shapes cannot
 * tell follows the real SD conventions (SD1: 8 UNet heads at every level, CLIP heads =
 * width/64, quick-GELU; SDXL: UNet head dim 64; GroupNorm 32 groups everywhere).
 *   sd15-tiny  UNet 32/64/64, 1 ResNet per level, cross-attention transformers (depth
 *              1, 8 heads) at the middle level and in the middle block only (none at
 *              full latent resolution, like SDXL: 1024-token attention with head dim 4
 *              took 3/4 of the time), context 64; VAE 32/32/64/64, 1 ResNet per
 *              level; CLIP 4 layers x 64 (1 head), MLP 256, vocabulary 514; the DDPM
 *              buffers. ~2.7M parameters, 5.2 MiB in f16; 256x256 with the defaults
 *              (20 steps, CFG) in about a second. Also writes its vocabulary to
 *              <FILE without .safetensors>/tokenizer/ (vocab.json + merges.txt), where
 *              the engine looks for it.
 *   sd15       SD 1.5: UNet 320/640/1280/1280, 2 ResNets per level, depth 1, context
 *              768, conv proj_in/proj_out; VAE 128/256/512/512; CLIP-L 12 x 768, MLP
 *              3072, vocabulary 49408; the DDPM buffers. 1.066B parameters, 2.0 GiB.
 *   sdxl       SDXL base: UNet 320/640/1280, depth [0, 2, 10] (middle 10), context
 *              2048, label_emb from 2816, linear proj_in/proj_out; the SD VAE; CLIP-L
 *              (conditioner.embedders.0, HF names) + OpenCLIP bigG 32 x 1280, MLP 5120,
 *              text_projection [1280, 1280] (conditioner.embedders.1, OpenCLIP names).
 *              3.469B parameters, 6.5 GiB.
 * The full-size models need the real CLIP vocabulary at generation time (--vocab).
 *
 * Weights, from --seed only: linear/conv weights uniform in +-1/sqrt(fan_in) (fan_in =
 * in_channels*k*k for convs), norm weights 1, biases 0, embeddings uniform in +-0.02,
 * OpenCLIP logit_scale ln(1/0.07), position_ids 0..76 (I64), DDPM buffers as LDM
 * computes them (F32). Element i of a tensor comes from a counter-based generator
 * (splitmix64's finalizer over key(seed, tensor name) + i/2), so a tensor's values do
 * not depend on the other tensors, the write order or the chunking.
 *
 * File: 8-byte little-endian header length, the JSON header (padded with spaces to a
 * multiple of 8), then the data in header order, grouped by element size (8, 4, 2
 * bytes) so every tensor is aligned to its element size. Streamed (two 8 MiB buffers,
 * never the whole model in memory) to "<FILE>.tmp-XXXXXX", space reserved up front
 * (posix_fallocate: a full disk fails before any data is written), then linked into
 * place (an existing FILE is never replaced without --overwrite); the temporary file
 * is removed on failure or SIGINT/SIGTERM/SIGHUP. No fsync: the file can be made again
 * from the same seed.
 *
 * Traps:
 *   - SD1's proj_in/proj_out are 1x1 convs [C, C, 1, 1], SDXL's are linear [C, C].
 *   - LDM's decoder.up.N counts from the full-resolution level (up.0 is the last run).
 *   - OpenCLIP's text_projection is [width, proj] (used as x @ P), not [proj, width].
 *   - The tiny vocabulary has 514 ids (EOS 513): the CLIP pad id must default to EOS,
 *     not to CLIP-L's 49407 (src/models/clip.c).
 *   - O_DIRECT writes must be whole aligned blocks: buffers are handed over only when
 *     full, the last one is padded and the file truncated afterwards.
 */
#define _GNU_SOURCE   /* O_DIRECT */
#include "make_model.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NAME_MAX_LEN 160
#define CHUNK_ELEMS (1 << 16)          /* elements generated per step (even) */
#define OUT_BUF_BYTES (8u << 20)       /* bytes buffered per write() */
#define CLIP_POSITIONS 77
#define TINY_VOCAB 514                 /* 256 bytes, 256 bytes + "</w>", BOS, EOS */

/* ---- tensor list --------------------------------------------------------------------- */

typedef enum mm_dtype { MM_F32, MM_F16, MM_BF16, MM_I64 } mm_dtype;
static const char *const DTYPE_NAME[] = {"F32", "F16", "BF16", "I64"};
static const int DTYPE_SIZE[] = {4, 2, 2, 8};

typedef enum mm_init {
    INIT_UNIFORM,   /* +-value */
    INIT_CONST,     /* value (0 for biases, 1 for norm weights) */
    INIT_ARANGE,    /* 0, 1, 2, ... (position_ids) */
    INIT_DDPM,      /* schedule buffer number `ddpm` */
} mm_init;

typedef struct mm_tensor {
    char name[NAME_MAX_LEN];
    int ndim;
    int64_t shape[4];
    mm_dtype dtype;
    mm_init init;
    float value;
    int ddpm;
    uint64_t begin, end;   /* data offsets */
} mm_tensor;

typedef struct mm_list {
    mm_tensor *t;
    int n, cap;
    mm_dtype wdtype;   /* dtype of weights, norms and embeddings */
    bool failed;       /* out of memory or a name too long */
} mm_list;

static int64_t numel(const mm_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

/* Appends tensor "<mod>.<suffix>" (or "<mod>" when suffix is NULL). */
static mm_tensor *add(mm_list *l, const char *mod, const char *suffix, mm_init init, float value,
                      mm_dtype dt, int ndim, int64_t s0, int64_t s1, int64_t s2, int64_t s3) {
    if (l->failed || !mod[0]) {   /* mod "": mname() truncated a name */
        l->failed = true;
        return NULL;
    }
    if (l->n == l->cap) {
        int ncap = l->cap ? l->cap * 2 : 512;
        mm_tensor *nt = realloc(l->t, (size_t)ncap * sizeof *nt);
        if (!nt) {
            l->failed = true;
            return NULL;
        }
        l->t = nt;
        l->cap = ncap;
    }
    mm_tensor *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    int k = suffix ? snprintf(t->name, sizeof t->name, "%s.%s", mod, suffix)
                   : snprintf(t->name, sizeof t->name, "%s", mod);
    if (k <= 0 || (size_t)k >= sizeof t->name) {
        l->failed = true;
        return NULL;
    }
    int64_t s[4] = {s0, s1, s2, s3};
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = s[d];
    t->dtype = dt;
    t->init = init;
    t->value = value;
    l->n++;
    return t;
}

/* Module name: printf into buf. */
static const char *mname(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const char *mname(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (k <= 0 || (size_t)k >= size) buf[0] = '\0';   /* too long: add() refuses "" */
    return buf;
}

static float bound(int64_t fan_in) { return (float)(1.0 / sqrt((double)fan_in)); }

/* mod.weight [out, in] (+ mod.bias [out]). */
static void t_linear(mm_list *l, const char *mod, int64_t out, int64_t in, bool bias) {
    add(l, mod, "weight", INIT_UNIFORM, bound(in), l->wdtype, 2, out, in, 0, 0);
    if (bias) add(l, mod, "bias", INIT_CONST, 0.0f, l->wdtype, 1, out, 0, 0, 0);
}

/* mod.weight [out, in, k, k] + mod.bias [out]. */
static void t_conv(mm_list *l, const char *mod, int64_t out, int64_t in, int k) {
    add(l, mod, "weight", INIT_UNIFORM, bound(in * k * k), l->wdtype, 4, out, in, k, k);
    add(l, mod, "bias", INIT_CONST, 0.0f, l->wdtype, 1, out, 0, 0, 0);
}

/* GroupNorm / LayerNorm: weight 1, bias 0. */
static void t_norm(mm_list *l, const char *mod, int64_t c) {
    add(l, mod, "weight", INIT_CONST, 1.0f, l->wdtype, 1, c, 0, 0, 0);
    add(l, mod, "bias", INIT_CONST, 0.0f, l->wdtype, 1, c, 0, 0, 0);
}

/* ---- UNet (LDM openaimodel.py / sgm names) ------------------------------------------- */

typedef struct unet_spec {
    int model_channels, n_levels, mult[4], layers;
    int depth[4];      /* transformer depth per level (0: no attention there) */
    int mid_depth;
    int context, adm;  /* adm 0: no label_emb */
    bool linear_proj;  /* proj_in/proj_out linear (SDXL) instead of 1x1 conv (SD1) */
} unet_spec;

#define UNET "model.diffusion_model."

static void unet_resblock(mm_list *l, const char *p, int cin, int cout, int temb) {
    char m[NAME_MAX_LEN];
    t_norm(l, mname(m, sizeof m, "%s.in_layers.0", p), cin);
    t_conv(l, mname(m, sizeof m, "%s.in_layers.2", p), cout, cin, 3);
    t_linear(l, mname(m, sizeof m, "%s.emb_layers.1", p), cout, temb, true);
    t_norm(l, mname(m, sizeof m, "%s.out_layers.0", p), cout);
    t_conv(l, mname(m, sizeof m, "%s.out_layers.3", p), cout, cout, 3);
    if (cin != cout) t_conv(l, mname(m, sizeof m, "%s.skip_connection", p), cout, cin, 1);
}

static void unet_proj(mm_list *l, const char *mod, int c, bool linear) {
    if (linear) t_linear(l, mod, c, c, true);
    else t_conv(l, mod, c, c, 1);
}

/* SpatialTransformer: GroupNorm, proj_in, `depth` BasicTransformerBlocks (self-attn,
 * cross-attn to `ctx`, GEGLU feed-forward 4C), proj_out. */
static void unet_transformer(mm_list *l, const char *p, int c, int depth, int ctx, bool linear) {
    char m[NAME_MAX_LEN];
    t_norm(l, mname(m, sizeof m, "%s.norm", p), c);
    unet_proj(l, mname(m, sizeof m, "%s.proj_in", p), c, linear);
    for (int d = 0; d < depth; d++) {
        char b[NAME_MAX_LEN];
        mname(b, sizeof b, "%s.transformer_blocks.%d", p, d);
        for (int a = 1; a <= 2; a++) {
            int kv = a == 1 ? c : ctx;
            t_linear(l, mname(m, sizeof m, "%s.attn%d.to_q", b, a), c, c, false);
            t_linear(l, mname(m, sizeof m, "%s.attn%d.to_k", b, a), c, kv, false);
            t_linear(l, mname(m, sizeof m, "%s.attn%d.to_v", b, a), c, kv, false);
            t_linear(l, mname(m, sizeof m, "%s.attn%d.to_out.0", b, a), c, c, true);
        }
        t_linear(l, mname(m, sizeof m, "%s.ff.net.0.proj", b), 8 * c, c, true);   /* GEGLU: 2 x 4C */
        t_linear(l, mname(m, sizeof m, "%s.ff.net.2", b), c, 4 * c, true);
        for (int n = 1; n <= 3; n++) t_norm(l, mname(m, sizeof m, "%s.norm%d", b, n), c);
    }
    unet_proj(l, mname(m, sizeof m, "%s.proj_out", p), c, linear);
}

static void add_unet(mm_list *l, const unet_spec *s) {
    char m[NAME_MAX_LEN];
    const int mc = s->model_channels, temb = 4 * mc, L = s->layers;
    t_conv(l, UNET "input_blocks.0.0", mc, 4, 3);
    t_linear(l, UNET "time_embed.0", temb, mc, true);
    t_linear(l, UNET "time_embed.2", temb, temb, true);
    if (s->adm) {
        t_linear(l, UNET "label_emb.0.0", temb, s->adm, true);
        t_linear(l, UNET "label_emb.0.2", temb, temb, true);
    }
    int skip[64], n_skip = 0, ch = mc, idx = 1;
    skip[n_skip++] = ch;
    for (int lv = 0; lv < s->n_levels; lv++) {
        int cout = s->mult[lv] * mc;
        for (int j = 0; j < L; j++, idx++) {
            unet_resblock(l, mname(m, sizeof m, UNET "input_blocks.%d.0", idx), ch, cout, temb);
            ch = cout;
            if (s->depth[lv])
                unet_transformer(l, mname(m, sizeof m, UNET "input_blocks.%d.1", idx), ch, s->depth[lv],
                                 s->context, s->linear_proj);
            skip[n_skip++] = ch;
        }
        if (lv < s->n_levels - 1) {
            t_conv(l, mname(m, sizeof m, UNET "input_blocks.%d.0.op", idx++), ch, ch, 3);
            skip[n_skip++] = ch;
        }
    }
    unet_resblock(l, UNET "middle_block.0", ch, ch, temb);
    unet_transformer(l, UNET "middle_block.1", ch, s->mid_depth, s->context, s->linear_proj);
    unet_resblock(l, UNET "middle_block.2", ch, ch, temb);
    idx = 0;
    for (int lv = s->n_levels - 1; lv >= 0; lv--) {
        int cout = s->mult[lv] * mc;
        for (int i = 0; i <= L; i++, idx++) {
            int cin = ch + skip[--n_skip];
            unet_resblock(l, mname(m, sizeof m, UNET "output_blocks.%d.0", idx), cin, cout, temb);
            ch = cout;
            int part = 1;
            if (s->depth[lv])
                unet_transformer(l, mname(m, sizeof m, UNET "output_blocks.%d.%d", idx, part++), ch,
                                 s->depth[lv], s->context, s->linear_proj);
            if (lv > 0 && i == L)
                t_conv(l, mname(m, sizeof m, UNET "output_blocks.%d.%d.conv", idx, part), ch, ch, 3);
        }
    }
    t_norm(l, UNET "out.0", ch);
    t_conv(l, UNET "out.2", 4, ch, 3);
}

/* ---- VAE (LDM autoencoder names) ----------------------------------------------------- */

typedef struct vae_spec {
    int ch, n_levels, mult[4], layers, z;
} vae_spec;

#define VAE "first_stage_model."

static void vae_resblock(mm_list *l, const char *p, int cin, int cout) {
    char m[NAME_MAX_LEN];
    t_norm(l, mname(m, sizeof m, "%s.norm1", p), cin);
    t_conv(l, mname(m, sizeof m, "%s.conv1", p), cout, cin, 3);
    t_norm(l, mname(m, sizeof m, "%s.norm2", p), cout);
    t_conv(l, mname(m, sizeof m, "%s.conv2", p), cout, cout, 3);
    if (cin != cout) t_conv(l, mname(m, sizeof m, "%s.nin_shortcut", p), cout, cin, 1);
}

/* mid: block_1, attn_1 (norm, q/k/v/proj_out as 1x1 convs), block_2. */
static void vae_mid(mm_list *l, const char *side, int c) {
    char m[NAME_MAX_LEN];
    vae_resblock(l, mname(m, sizeof m, VAE "%s.mid.block_1", side), c, c);
    t_norm(l, mname(m, sizeof m, VAE "%s.mid.attn_1.norm", side), c);
    static const char *const parts[] = {"q", "k", "v", "proj_out"};
    for (int i = 0; i < 4; i++) t_conv(l, mname(m, sizeof m, VAE "%s.mid.attn_1.%s", side, parts[i]), c, c, 1);
    vae_resblock(l, mname(m, sizeof m, VAE "%s.mid.block_2", side), c, c);
}

static void add_vae(mm_list *l, const vae_spec *s) {
    char m[NAME_MAX_LEN];
    const int n = s->n_levels;
    int cin = s->ch;
    t_conv(l, VAE "encoder.conv_in", s->ch, 3, 3);
    for (int lv = 0; lv < n; lv++) {
        int cout = s->ch * s->mult[lv];
        for (int j = 0; j < s->layers; j++, cin = cout)
            vae_resblock(l, mname(m, sizeof m, VAE "encoder.down.%d.block.%d", lv, j), cin, cout);
        if (lv < n - 1) t_conv(l, mname(m, sizeof m, VAE "encoder.down.%d.downsample.conv", lv), cin, cin, 3);
    }
    vae_mid(l, "encoder", cin);
    t_norm(l, VAE "encoder.norm_out", cin);
    t_conv(l, VAE "encoder.conv_out", 2 * s->z, cin, 3);
    t_conv(l, VAE "quant_conv", 2 * s->z, 2 * s->z, 1);
    t_conv(l, VAE "post_quant_conv", s->z, s->z, 1);
    cin = s->ch * s->mult[n - 1];
    t_conv(l, VAE "decoder.conv_in", cin, s->z, 3);
    vae_mid(l, "decoder", cin);
    for (int lv = n - 1; lv >= 0; lv--) {   /* LDM: up.<lv> counts from full resolution */
        int cout = s->ch * s->mult[lv];
        for (int j = 0; j <= s->layers; j++, cin = cout)
            vae_resblock(l, mname(m, sizeof m, VAE "decoder.up.%d.block.%d", lv, j), cin, cout);
        if (lv > 0) t_conv(l, mname(m, sizeof m, VAE "decoder.up.%d.upsample.conv", lv), cin, cin, 3);
    }
    t_norm(l, VAE "decoder.norm_out", cin);
    t_conv(l, VAE "decoder.conv_out", 3, cin, 3);
}

/* ---- text encoders --------------------------------------------------------------------- */

typedef struct clip_spec {
    int layers, width, mlp, vocab, proj;   /* proj 0: no text_projection */
} clip_spec;

/* transformers CLIPTextModel names under prefix (ends with '.'). */
static void add_clip_hf(mm_list *l, const char *prefix, const clip_spec *s) {
    char m[NAME_MAX_LEN], b[NAME_MAX_LEN];
    const int d = s->width;
    add(l, mname(m, sizeof m, "%stext_model.embeddings.position_ids", prefix), NULL, INIT_ARANGE, 0.0f,
        MM_I64, 2, 1, CLIP_POSITIONS, 0, 0);
    add(l, mname(m, sizeof m, "%stext_model.embeddings.token_embedding.weight", prefix), NULL, INIT_UNIFORM,
        0.02f, l->wdtype, 2, s->vocab, d, 0, 0);
    add(l, mname(m, sizeof m, "%stext_model.embeddings.position_embedding.weight", prefix), NULL,
        INIT_UNIFORM, 0.02f, l->wdtype, 2, CLIP_POSITIONS, d, 0, 0);
    for (int i = 0; i < s->layers; i++) {
        mname(b, sizeof b, "%stext_model.encoder.layers.%d", prefix, i);
        t_norm(l, mname(m, sizeof m, "%s.layer_norm1", b), d);
        static const char *const qkvo[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
        for (int k = 0; k < 4; k++) t_linear(l, mname(m, sizeof m, "%s.self_attn.%s", b, qkvo[k]), d, d, true);
        t_norm(l, mname(m, sizeof m, "%s.layer_norm2", b), d);
        t_linear(l, mname(m, sizeof m, "%s.mlp.fc1", b), s->mlp, d, true);
        t_linear(l, mname(m, sizeof m, "%s.mlp.fc2", b), d, s->mlp, true);
    }
    t_norm(l, mname(m, sizeof m, "%stext_model.final_layer_norm", prefix), d);
}

/* open_clip TextTransformer names under prefix (ends with '.'). */
static void add_openclip(mm_list *l, const char *prefix, const clip_spec *s) {
    char m[NAME_MAX_LEN], b[NAME_MAX_LEN];
    const int d = s->width;
    add(l, mname(m, sizeof m, "%stoken_embedding.weight", prefix), NULL, INIT_UNIFORM, 0.02f, l->wdtype, 2,
        s->vocab, d, 0, 0);
    add(l, mname(m, sizeof m, "%spositional_embedding", prefix), NULL, INIT_UNIFORM, 0.02f, l->wdtype, 2,
        CLIP_POSITIONS, d, 0, 0);
    for (int i = 0; i < s->layers; i++) {
        mname(b, sizeof b, "%stransformer.resblocks.%d", prefix, i);
        t_norm(l, mname(m, sizeof m, "%s.ln_1", b), d);
        add(l, mname(m, sizeof m, "%s.attn.in_proj_weight", b), NULL, INIT_UNIFORM, bound(d), l->wdtype, 2,
            3 * d, d, 0, 0);
        add(l, mname(m, sizeof m, "%s.attn.in_proj_bias", b), NULL, INIT_CONST, 0.0f, l->wdtype, 1, 3 * d, 0,
            0, 0);
        t_linear(l, mname(m, sizeof m, "%s.attn.out_proj", b), d, d, true);
        t_norm(l, mname(m, sizeof m, "%s.ln_2", b), d);
        t_linear(l, mname(m, sizeof m, "%s.mlp.c_fc", b), s->mlp, d, true);
        t_linear(l, mname(m, sizeof m, "%s.mlp.c_proj", b), d, s->mlp, true);
    }
    t_norm(l, mname(m, sizeof m, "%sln_final", prefix), d);
    if (s->proj)   /* [width, proj], used as x @ P */
        add(l, mname(m, sizeof m, "%stext_projection", prefix), NULL, INIT_UNIFORM, bound(d), l->wdtype, 2, d,
            s->proj, 0, 0);
    add(l, mname(m, sizeof m, "%slogit_scale", prefix), NULL, INIT_CONST, (float)log(1.0 / 0.07), l->wdtype,
        0, 0, 0, 0, 0);
}

/* ---- DDPM schedule buffers (LDM DDPM.register_schedule, scaled_linear 0.00085..0.012) - */

static const char *const DDPM_NAMES[] = {
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
    "posterior_mean_coef1", "posterior_mean_coef2",
};
#define DDPM_STEPS 1000

static void add_ddpm(mm_list *l) {
    for (int i = 0; i < (int)(sizeof DDPM_NAMES / sizeof DDPM_NAMES[0]); i++) {
        mm_tensor *t = add(l, DDPM_NAMES[i], NULL, INIT_DDPM, 0.0f, MM_F32, 1, DDPM_STEPS, 0, 0, 0);
        if (t) t->ddpm = i;
    }
}

/* out[0..1000) = schedule buffer `which`, computed in double like the float64 numpy
 * original, then rounded to float. */
static void ddpm_buffer(float *out, int which) {
    const double b0 = sqrt(0.00085), b1 = sqrt(0.012);
    double ac = 1.0;
    for (int t = 0; t < DDPM_STEPS; t++) {
        double s = b0 + (b1 - b0) * (double)t / (double)(DDPM_STEPS - 1);
        double beta = s * s, alpha = 1.0 - beta, prev = ac;
        ac *= alpha;
        double pv = beta * (1.0 - prev) / (1.0 - ac), v = 0.0;
        switch (which) {
        case 0: v = beta; break;
        case 1: v = ac; break;
        case 2: v = prev; break;
        case 3: v = sqrt(ac); break;
        case 4: v = sqrt(1.0 - ac); break;
        case 5: v = log(1.0 - ac); break;
        case 6: v = sqrt(1.0 / ac); break;
        case 7: v = sqrt(1.0 / ac - 1.0); break;
        case 8: v = pv; break;
        case 9: v = log(pv > 1e-20 ? pv : 1e-20); break;
        case 10: v = beta * sqrt(prev) / (1.0 - ac); break;
        default: v = (1.0 - prev) * sqrt(alpha) / (1.0 - ac); break;
        }
        out[t] = (float)v;
    }
}

/* ---- architectures --------------------------------------------------------------------- */

typedef enum mm_arch { ARCH_SD15_TINY, ARCH_SD15, ARCH_SDXL, ARCH_COUNT } mm_arch;
static const char *const ARCH_NAME[ARCH_COUNT] = {"sd15-tiny", "sd15", "sdxl"};

static void build(mm_list *l, mm_arch arch) {
    static const vae_spec sd_vae = {128, 4, {1, 2, 4, 4}, 2, 4};
    static const clip_spec clip_l = {12, 768, 3072, 49408, 0};
    switch (arch) {
    case ARCH_SD15_TINY: {
        static const unet_spec u = {32, 3, {1, 2, 2}, 1, {0, 1, 0}, 1, 64, 0, false};
        static const vae_spec v = {32, 4, {1, 1, 2, 2}, 1, 4};
        static const clip_spec c = {4, 64, 256, TINY_VOCAB, 0};
        add_unet(l, &u);
        add_vae(l, &v);
        add_clip_hf(l, "cond_stage_model.transformer.", &c);
        add_ddpm(l);
        break;
    }
    case ARCH_SD15: {
        static const unet_spec u = {320, 4, {1, 2, 4, 4}, 2, {1, 1, 1, 0}, 1, 768, 0, false};
        add_unet(l, &u);
        add_vae(l, &sd_vae);
        add_clip_hf(l, "cond_stage_model.transformer.", &clip_l);
        add_ddpm(l);
        break;
    }
    case ARCH_SDXL:
    default: {
        static const unet_spec u = {320, 3, {1, 2, 4}, 2, {0, 2, 10}, 10, 2048, 2816, true};
        static const clip_spec big_g = {32, 1280, 5120, 49408, 1280};
        add_unet(l, &u);
        add_vae(l, &sd_vae);
        add_clip_hf(l, "conditioner.embedders.0.transformer.", &clip_l);
        add_openclip(l, "conditioner.embedders.1.model.", &big_g);
        break;
    }
    }
}

/* ---- value generation ------------------------------------------------------------------ */

#define GOLDEN 0x9E3779B97F4A7C15ull

static uint64_t mix64(uint64_t z) {   /* splitmix64's finalizer */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t tensor_key(uint64_t seed, const char *name) {
    uint64_t h = 0xCBF29CE484222325ull;   /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 0x100000001B3ull;
    return mix64(h ^ mix64(seed + GOLDEN));
}

/* dst[0..n) = elements i0.. (i0 even) of a uniform tensor: 32 random bits each, as a
 * signed integer scaled into [-b, b). */
static void gen_uniform(float *dst, uint64_t key, int64_t i0, int64_t n, float b) {
    const float scale = b * 0x1p-31f;
    uint64_t q = key + (uint64_t)(i0 / 2) * GOLDEN;
    int64_t i = 0;
    for (; i + 1 < n; i += 2, q += GOLDEN) {
        uint64_t r = mix64(q);
        dst[i] = (float)(int32_t)(uint32_t)r * scale;
        dst[i + 1] = (float)(int32_t)(uint32_t)(r >> 32) * scale;
    }
    if (i < n) dst[i] = (float)(int32_t)(uint32_t)mix64(q) * scale;
}

/* IEEE binary16, round to nearest even. */
static uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7FFFFFFFu;
    if (x > 0x7F800000u) return sign | 0x7E00u;         /* NaN */
    if (x >= 0x477FF000u) return sign | 0x7C00u;        /* >= 65520: inf */
    if (x >= 0x38800000u) {                             /* normal */
        x += 0xFFFu + ((x >> 13) & 1u);
        return (uint16_t)(sign | ((x - 0x38000000u) >> 13));
    }
    return (uint16_t)(sign | (uint16_t)lrintf(fabsf(f) * 0x1p24f));   /* subnormal: m * 2^-24 */
}

static uint16_t f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

/* Little-endian element stores. */
static void put16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* ---- output ------------------------------------------------------------------------------ */

/* The temporary file, removed if the process is interrupted. */
static char g_tmp_path[4096];
static volatile sig_atomic_t g_tmp_live;

static void on_signal(int sig) {
    if (g_tmp_live) unlink(g_tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Double-buffered output: the main thread fills buf[cur] while a writer thread hands
 * the other buffer to pwrite(), so generating and writing overlap. Big files are
 * written with O_DIRECT where the filesystem allows it (the page-cache copy and the
 * dirty-page writeback cost more than generating the values): every write is then a
 * whole number of 4 KiB blocks from 4 KiB-aligned buffers; the last one is padded with
 * zeros and the file truncated to its size afterwards. */
#define DIRECT_ALIGN 4096

typedef struct writer {
    int fd;
    unsigned char *buf[2];   /* OUT_BUF_BYTES each, DIRECT_ALIGN-aligned */
    size_t len;              /* bytes filled in buf[cur] */
    int cur;
    uint64_t file_off;       /* file offset of buf[cur] */
    bool direct;             /* O_DIRECT on (only touched by the writer thread once started) */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;             /* buffer handed to the writer thread, -1: none */
    size_t pending_len;
    uint64_t pending_off;
    bool stop;
    int err;                 /* errno of the first failed write */
    uint64_t written, total;
    bool progress;
    int last_pct;
} writer;

static bool pwrite_all(int fd, const unsigned char *p, size_t n, uint64_t off, int *err) {
    while (n > 0) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0) {
            if (errno == EINTR) continue;
            *err = errno;
            return false;
        }
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return true;
}

static bool write_all(int fd, const unsigned char *p, size_t n, int *err) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            *err = errno;
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static bool set_direct(int fd, bool on) {
#ifdef O_DIRECT
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && fcntl(fd, F_SETFL, on ? fl | O_DIRECT : fl & ~O_DIRECT) == 0;
#else
    (void)fd;
    return !on;
#endif
}

/* Writes buf[0..n) at off; in direct mode padded to whole blocks (buf has the room).
 * Falls back to ordinary writes when the filesystem refuses O_DIRECT. */
static bool write_block(writer *w, unsigned char *buf, size_t n, uint64_t off, int *err) {
    if (w->direct) {
        size_t padded = (n + DIRECT_ALIGN - 1) / DIRECT_ALIGN * DIRECT_ALIGN;
        memset(buf + n, 0, padded - n);
        if (pwrite_all(w->fd, buf, padded, off, err)) return true;
        if (*err != EINVAL) return false;
        *err = 0;
        w->direct = false;
        set_direct(w->fd, false);
    }
    return pwrite_all(w->fd, buf, n, off, err);
}

static void *writer_main(void *arg) {
    writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->pending < 0 && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
        if (w->pending < 0) break;
        int idx = w->pending, e = 0;
        size_t n = w->pending_len;
        uint64_t off = w->pending_off;
        bool ok = w->err == 0;
        pthread_mutex_unlock(&w->mu);
        if (ok) write_block(w, w->buf[idx], n, off, &e);
        pthread_mutex_lock(&w->mu);
        if (e && !w->err) w->err = e;
        w->written += n;
        w->pending = -1;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static bool writer_start(writer *w) {
    w->pending = -1;
    if (pthread_mutex_init(&w->mu, NULL) != 0) return false;
    if (pthread_cond_init(&w->cv, NULL) != 0) {
        pthread_mutex_destroy(&w->mu);
        return false;
    }
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        return false;
    }
    w->started = true;
    return true;
}

/* Waits for the writer thread to finish and stops it. Returns false on a write error. */
static bool writer_finish(writer *w) {
    if (!w->started) return w->err == 0;
    pthread_mutex_lock(&w->mu);
    while (w->pending >= 0) pthread_cond_wait(&w->cv, &w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    w->started = false;
    return w->err == 0;
}

/* Hands buf[cur] to the writer thread (after the previous one is written) and
 * continues in the other buffer. */
static bool flush(writer *w) {
    pthread_mutex_lock(&w->mu);
    while (w->pending >= 0) pthread_cond_wait(&w->cv, &w->mu);
    bool ok = w->err == 0;
    if (ok && w->len) {
        w->pending = w->cur;
        w->pending_len = w->len;
        w->pending_off = w->file_off;
        pthread_cond_broadcast(&w->cv);
    }
    uint64_t written = w->written;
    pthread_mutex_unlock(&w->mu);
    if (!ok) return false;
    if (w->len) w->cur ^= 1;
    w->file_off += w->len;
    w->len = 0;
    if (w->progress && w->total) {
        int pct = (int)(100 * written / w->total);
        if (pct != w->last_pct) {
            fprintf(stderr, "\rwriting %3d%%", pct);
            w->last_pct = pct;
        }
    }
    return true;
}

/* Space for up to max_elems elements of es bytes at the end of the buffer (flushing a
 * full one first); *n_out receives how many fit. Buffers are handed over only when
 * full, so every write but the last is whole blocks: the data is ordered by element
 * size and OUT_BUF_BYTES is a multiple of 8, so an element never straddles buffers. */
static unsigned char *space(writer *w, size_t es, int64_t max_elems, int64_t *n_out) {
    if (w->len == OUT_BUF_BYTES && !flush(w)) return NULL;
    int64_t k = (int64_t)((OUT_BUF_BYTES - w->len) / es);
    *n_out = k < max_elems ? k : max_elems;
    unsigned char *p = w->buf[w->cur] + w->len;
    w->len += (size_t)*n_out * es;
    return p;
}

static bool emit_bytes(writer *w, const unsigned char *src, size_t n) {
    while (n > 0) {
        int64_t k;
        unsigned char *p = space(w, 1, (int64_t)n, &k);
        if (!p) return false;
        memcpy(p, src, (size_t)k);
        src += k;
        n -= (size_t)k;
    }
    return true;
}

static bool emit_f32(writer *w, const float *v, int64_t n, mm_dtype dt) {
    while (n > 0) {
        int64_t k;
        unsigned char *p = space(w, (size_t)DTYPE_SIZE[dt], n, &k);
        if (!p) return false;
        if (dt == MM_F32) {
            for (int64_t i = 0; i < k; i++) {
                uint32_t u;
                memcpy(&u, &v[i], sizeof u);
                put32(p + 4 * i, u);
            }
        } else if (dt == MM_F16) {
            for (int64_t i = 0; i < k; i++) put16(p + 2 * i, f32_to_f16(v[i]));
        } else {
            for (int64_t i = 0; i < k; i++) put16(p + 2 * i, f32_to_bf16(v[i]));
        }
        v += k;
        n -= k;
    }
    return true;
}

static bool emit_arange_i64(writer *w, int64_t n) {
    for (int64_t i0 = 0; i0 < n;) {
        int64_t k;
        unsigned char *p = space(w, 8, n - i0, &k);
        if (!p) return false;
        for (int64_t i = 0; i < k; i++) put64(p + 8 * i, (uint64_t)(i0 + i));
        i0 += k;
    }
    return true;
}

static bool emit_tensor(writer *w, const mm_tensor *t, uint64_t seed, float *fbuf) {
    const int64_t n = numel(t);
    switch (t->init) {
    case INIT_UNIFORM: {
        uint64_t key = tensor_key(seed, t->name);
        for (int64_t i0 = 0; i0 < n; i0 += CHUNK_ELEMS) {
            int64_t k = n - i0 < CHUNK_ELEMS ? n - i0 : CHUNK_ELEMS;
            gen_uniform(fbuf, key, i0, k, t->value);
            if (!emit_f32(w, fbuf, k, t->dtype)) return false;
        }
        return true;
    }
    case INIT_CONST:
        for (int64_t i = 0; i < (n < CHUNK_ELEMS ? n : CHUNK_ELEMS); i++) fbuf[i] = t->value;
        for (int64_t i0 = 0; i0 < n; i0 += CHUNK_ELEMS)
            if (!emit_f32(w, fbuf, n - i0 < CHUNK_ELEMS ? n - i0 : CHUNK_ELEMS, t->dtype)) return false;
        return true;
    case INIT_DDPM:
        ddpm_buffer(fbuf, t->ddpm);
        return emit_f32(w, fbuf, n, t->dtype);
    case INIT_ARANGE:
    default: return emit_arange_i64(w, n);
    }
}

/* A growing string. */
typedef struct strbuf {
    char *s;
    size_t len, cap;
    bool oom;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...) {
    for (int tries = 0; tries < 2 && !b->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->s && b->len + (size_t)k < b->cap) {
            b->len += (size_t)k;
            return;
        }
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->len + (size_t)k + 1) ncap *= 2;
        char *ns = realloc(b->s, ncap);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = ncap;
    }
}

/* Orders the data by element size (8, 4, 2 bytes, stable) and assigns offsets; writes
 * the header (length + JSON, space-padded to a multiple of 8) into hdr. */
static bool layout(mm_list *l, mm_arch arch, uint64_t seed, mm_dtype wdtype, strbuf *hdr, uint64_t *data_size) {
    mm_tensor *sorted = malloc((size_t)l->n * sizeof *sorted);
    if (!sorted) return false;
    int k = 0;
    for (int size = 8; size >= 1; size /= 2)
        for (int i = 0; i < l->n; i++)
            if (DTYPE_SIZE[l->t[i].dtype] == size) sorted[k++] = l->t[i];
    memcpy(l->t, sorted, (size_t)l->n * sizeof *sorted);
    free(sorted);

    sb_printf(hdr, "01234567{\"__metadata__\":{\"format\":\"pt\",\"generator\":\"phonediffusion make-model\","
              "\"arch\":\"%s\",\"seed\":\"%llu\",\"weights_dtype\":\"%s\"}",
              ARCH_NAME[arch], (unsigned long long)seed, DTYPE_NAME[wdtype]);
    uint64_t off = 0;
    for (int i = 0; i < l->n; i++) {
        mm_tensor *t = &l->t[i];
        t->begin = off;
        off += (uint64_t)numel(t) * (uint64_t)DTYPE_SIZE[t->dtype];
        t->end = off;
        sb_printf(hdr, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, DTYPE_NAME[t->dtype]);
        for (int d = 0; d < t->ndim; d++) sb_printf(hdr, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        sb_printf(hdr, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)t->begin,
                  (unsigned long long)t->end);
    }
    sb_printf(hdr, "}");
    while (!hdr->oom && hdr->len % 8) sb_printf(hdr, " ");
    if (hdr->oom) return false;
    put64((unsigned char *)hdr->s, (uint64_t)(hdr->len - 8));
    *data_size = off;
    return true;
}

/* Places tmp at path: link (fails if path appeared meanwhile) or, with overwrite, rename. */
static int place(const char *tmp, const char *path, bool overwrite) {
    if (overwrite) return rename(tmp, path) == 0 ? 0 : errno;
    if (link(tmp, path) == 0) {
        unlink(tmp);
        return 0;
    }
    int e = errno;
    struct stat st;
    /* Filesystems without hard links (FAT, some FUSE): check, then rename. */
    if ((e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == EXDEV) && stat(path, &st) != 0)
        return rename(tmp, path) == 0 ? 0 : errno;
    return e;
}

static void report_place_error(const char *path, int e) {
    if (e == EEXIST) fprintf(stderr, "phonediffusion: '%s' exists; pass --overwrite to replace it\n", path);
    else fprintf(stderr, "phonediffusion: cannot write '%s': %s\n", path, strerror(e));
}

static void fmt_bytes(char *buf, size_t n, double v) {
    if (v >= 1073741824.0) snprintf(buf, n, "%.2f GiB", v / 1073741824.0);
    else if (v >= 1048576.0) snprintf(buf, n, "%.1f MiB", v / 1048576.0);
    else snprintf(buf, n, "%.1f KiB", v / 1024.0);
}

static void fmt_count(char *buf, size_t n, int64_t v) {
    if (v >= 1000000000) snprintf(buf, n, "%.3fB", (double)v / 1e9);
    else if (v >= 1000000) snprintf(buf, n, "%.2fM", (double)v / 1e6);
    else snprintf(buf, n, "%.1fK", (double)v / 1e3);
}

/* ---- the tiny vocabulary ------------------------------------------------------------------ */

/* CLIP's bytes_to_unicode in dict order: printable bytes map to themselves, then the
 * others to 256, 257, ... */
static void byte_symbols(uint32_t cp[256]) {
    int k = 0, extra = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
            if (printable && pass == 0) cp[k++] = (uint32_t)b;
            if (!printable && pass == 1) cp[k++] = (uint32_t)(256 + extra++);
        }
}

static void sb_utf8(strbuf *b, uint32_t c) {
    if (c == '"' || c == '\\') sb_printf(b, "\\%c", (char)c);
    else if (c < 0x80) sb_printf(b, "%c", (char)c);
    else sb_printf(b, "%c%c", (char)(0xC0 | (c >> 6)), (char)(0x80 | (c & 0x3F)));   /* c < 0x800 */
}

/* vocab.json: ids 0..255 the byte symbols, 256..511 the same + "</w>", 512
 * <|startoftext|>, 513 <|endoftext|> (openai's order, with no merges). */
static bool tiny_vocab_json(strbuf *b) {
    uint32_t cp[256];
    byte_symbols(cp);
    sb_printf(b, "{");
    for (int id = 0; id < 512; id++) {
        sb_printf(b, "%s\"", id ? "," : "");
        sb_utf8(b, cp[id & 255]);
        sb_printf(b, "%s\":%d", id < 256 ? "" : "</w>", id);
    }
    sb_printf(b, ",\"<|startoftext|>\":512,\"<|endoftext|>\":513}\n");
    return !b->oom;
}

static const char TINY_MERGES[] = "#version: 0.2\n";

/* Writes data to path unless an identical file is there; a different one is replaced
 * only with overwrite. Returns 0, or 1 after printing the error. */
static int write_small_file(const char *path, const char *data, size_t len, bool overwrite) {
    FILE *f = fopen(path, "rb");
    if (f) {
        bool same = true;
        char buf[4096];
        size_t pos = 0, k;
        while (same && (k = fread(buf, 1, sizeof buf, f)) > 0) {
            same = pos + k <= len && memcmp(buf, data + pos, k) == 0;
            pos += k;
        }
        fclose(f);
        if (same && pos == len) return 0;
        if (!overwrite) {
            fprintf(stderr, "phonediffusion: '%s' exists; pass --overwrite to replace it\n", path);
            return 1;
        }
    }
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp) {
        fprintf(stderr, "phonediffusion: path too long: '%s'\n", path);
        return 1;
    }
    int fd = mkstemp(tmp);
    int e = 0;
    if (fd < 0) e = errno;
    else {
        write_all(fd, (const unsigned char *)data, len, &e);
        if (close(fd) != 0 && !e) e = errno;
        if (!e) {
            chmod(tmp, 0644);
            e = place(tmp, path, overwrite);
        }
        if (e) unlink(tmp);
    }
    if (e) {
        report_place_error(path, e);
        return 1;
    }
    return 0;
}

static int make_dir(const char *path) {
    struct stat st;
    if (mkdir(path, 0755) == 0 || (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))) return 0;
    fprintf(stderr, "phonediffusion: cannot create the folder '%s': %s\n", path,
            errno == EEXIST ? "a file of that name exists" : strerror(errno));
    return 1;
}

/* <stem>/tokenizer/{vocab.json,merges.txt}; dir receives the tokenizer folder. */
static int write_tiny_vocab(const char *stem, bool overwrite, char *dir, size_t dir_size) {
    char path[4200];
    strbuf vj = {0};
    int rc = 1;
    if (snprintf(dir, dir_size, "%s/tokenizer", stem) >= (int)dir_size) {
        fprintf(stderr, "phonediffusion: path too long: '%s'\n", stem);
        return 1;
    }
    if (make_dir(stem) || make_dir(dir)) return 1;
    if (!tiny_vocab_json(&vj)) {
        fprintf(stderr, "phonediffusion: out of memory\n");
        goto done;
    }
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    if (write_small_file(path, vj.s, vj.len, overwrite)) goto done;
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    if (write_small_file(path, TINY_MERGES, sizeof TINY_MERGES - 1, overwrite)) goto done;
    rc = 0;
done:
    free(vj.s);
    return rc;
}

/* ---- the command ---------------------------------------------------------------------------- */

void cli_make_model_usage(FILE *f) {
    fprintf(f,
            "usage: phonediffusion make-model [--arch ARCH] -o FILE.safetensors [options]\n"
            "  writes a deterministic random-weight checkpoint in the original single-file layout\n"
            "      --arch ARCH        sd15-tiny (default; 256x256 in about a second, writes its own\n"
            "                         vocabulary to <FILE without .safetensors>/tokenizer/),\n"
            "                         sd15 (the real SD 1.5 shapes, ~1.07B parameters),\n"
            "                         sdxl (the real SDXL base shapes, ~3.5B parameters)\n"
            "  -o, --output FILE      the .safetensors file to write\n"
            "      --dtype T          f16 (default), bf16 or f32 weights\n"
            "      --seed N           weights seed, 0 .. 2^64-1 (default 0)\n"
            "      --overwrite        replace an existing FILE\n"
            "  -q, --quiet            no progress\n"
            "  sd15 and sdxl need the real CLIP vocabulary when used: pass --vocab with a\n"
            "  tokenizer/ folder (vocab.json + merges.txt) or bpe_simple_vocab_16e6.txt.gz.\n");
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Parameters per component, by key prefix. */
static void print_summary(const mm_list *l, mm_arch arch, const char *path, uint64_t bytes, double secs) {
    static const struct {
        const char *prefix, *name;
    } comps[] = {
        {"model.diffusion_model.", "unet"},
        {"first_stage_model.", "vae"},
        {"cond_stage_model.", "text_encoder"},
        {"conditioner.embedders.0.", "text_encoder"},
        {"conditioner.embedders.1.", "text_encoder_2"},
    };
    int64_t per[5] = {0}, total = 0;
    for (int i = 0; i < l->n; i++) {
        const mm_tensor *t = &l->t[i];
        if (t->init == INIT_ARANGE || t->init == INIT_DDPM) continue;   /* buffers */
        total += numel(t);
        for (int c = 0; c < 5; c++)
            if (strncmp(t->name, comps[c].prefix, strlen(comps[c].prefix)) == 0) per[c] += numel(t);
    }
    char b1[32], b2[32];
    fmt_count(b1, sizeof b1, total);
    fmt_bytes(b2, sizeof b2, (double)bytes);
    printf("wrote %s: %s, %d tensors, %s parameters, %s in %.2f s\n", path, ARCH_NAME[arch], l->n, b1, b2, secs);
    for (int c = 0; c < 5; c++)
        if (per[c]) {
            fmt_count(b1, sizeof b1, per[c]);
            printf("  %-15s %s\n", comps[c].name, b1);
        }
}

int cli_make_model(int argc, char **argv, int first) {
    mm_arch arch = ARCH_SD15_TINY;
    mm_dtype wdtype = MM_F16;
    uint64_t seed = 0;
    const char *out = NULL;
    bool overwrite = false, quiet = false;
    enum { OPT_ARCH = 256, OPT_DTYPE, OPT_SEED, OPT_OVERWRITE };
    static const struct option longopts[] = {
        {"arch", required_argument, 0, OPT_ARCH},
        {"output", required_argument, 0, 'o'},
        {"dtype", required_argument, 0, OPT_DTYPE},
        {"seed", required_argument, 0, OPT_SEED},
        {"overwrite", no_argument, 0, OPT_OVERWRITE},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    optind = first;
    int c;
    while ((c = getopt_long(argc, argv, "o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_ARCH: {
            int a = 0;
            while (a < ARCH_COUNT && strcmp(optarg, ARCH_NAME[a])) a++;
            if (a == ARCH_COUNT) {
                fprintf(stderr, "phonediffusion: --arch must be sd15-tiny, sd15 or sdxl, got '%s'\n", optarg);
                return 2;
            }
            arch = (mm_arch)a;
            break;
        }
        case 'o': out = optarg; break;
        case OPT_DTYPE:
            if (!strcmp(optarg, "f16") || !strcmp(optarg, "fp16")) wdtype = MM_F16;
            else if (!strcmp(optarg, "bf16")) wdtype = MM_BF16;
            else if (!strcmp(optarg, "f32") || !strcmp(optarg, "fp32")) wdtype = MM_F32;
            else {
                fprintf(stderr, "phonediffusion: --dtype must be f16, bf16 or f32, got '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || optarg[0] == '+') {
                fprintf(stderr, "phonediffusion: --seed must be an integer in 0..2^64-1, got '%s'\n", optarg);
                return 2;
            }
            seed = (uint64_t)v;
            break;
        }
        case OPT_OVERWRITE: overwrite = true; break;
        case 'q': quiet = true; break;
        case 'h': cli_make_model_usage(stdout); return 0;
        default: cli_make_model_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "phonediffusion: make-model: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!out || !*out) {
        fprintf(stderr, "phonediffusion: make-model needs -o/--output FILE.safetensors\n");
        return 2;
    }
    if (!ends_with(out, ".safetensors") || strlen(out) == strlen(".safetensors") || ends_with(out, "/.safetensors")) {
        fprintf(stderr, "phonediffusion: make-model: the output name must end in .safetensors, got '%s'\n", out);
        return 2;
    }
    if (strlen(out) + 32 > sizeof g_tmp_path) {
        fprintf(stderr, "phonediffusion: output path too long\n");
        return 2;
    }
    struct stat st;
    if (!overwrite && stat(out, &st) == 0) {
        fprintf(stderr, "phonediffusion: '%s' exists; pass --overwrite to replace it\n", out);
        return 1;
    }

    double t0 = now_s();
    mm_list l = {.wdtype = wdtype};
    strbuf hdr = {0};
    writer w = {.fd = -1, .last_pct = -1};
    float *fbuf = NULL;
    uint64_t data_size = 0;
    int rc = 1, fe, pe;
    char vocab_dir[4096] = "";
    struct sigaction sa, old_int, old_term, old_hup;
    build(&l, arch);
    if (l.failed || !layout(&l, arch, seed, wdtype, &hdr, &data_size)) {
        fprintf(stderr, "phonediffusion: cannot build the tensor list (out of memory)\n");
        goto done;
    }
    for (int i = 0; i < 2; i++)
        if (posix_memalign((void **)&w.buf[i], DIRECT_ALIGN, OUT_BUF_BYTES) != 0) w.buf[i] = NULL;
    fbuf = malloc(CHUNK_ELEMS * sizeof(float));
    if (!w.buf[0] || !w.buf[1] || !fbuf) {
        fprintf(stderr, "phonediffusion: out of memory\n");
        goto done;
    }

    /* The temporary file first: an unwritable folder fails before anything is made. */
    snprintf(g_tmp_path, sizeof g_tmp_path, "%s.tmp-XXXXXX", out);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    w.fd = mkstemp(g_tmp_path);
    if (w.fd < 0) {
        fprintf(stderr, "phonediffusion: cannot write '%s': %s\n", out, strerror(errno));
        goto restore;
    }
    g_tmp_live = 1;
    w.total = hdr.len + data_size;
    fe = posix_fallocate(w.fd, 0, (off_t)w.total);
    if (fe == ENOSPC || fe == EFBIG) {
        char b[32];
        fmt_bytes(b, sizeof b, (double)w.total);
        fprintf(stderr, "phonediffusion: cannot write '%s': %s (the model needs %s)\n", out, strerror(fe), b);
        goto restore;
    }

    if (arch == ARCH_SD15_TINY) {
        char stem[4096];
        snprintf(stem, sizeof stem, "%.*s", (int)(strlen(out) - strlen(".safetensors")), out);
        if (write_tiny_vocab(stem, overwrite, vocab_dir, sizeof vocab_dir)) goto restore;
    }

    w.progress = !quiet && isatty(2) && w.total > (64u << 20);
    w.direct = w.total > (64u << 20) && set_direct(w.fd, true);
    if (!writer_start(&w)) {
        fprintf(stderr, "phonediffusion: cannot start the writer thread\n");
        goto restore;
    }
    if (!emit_bytes(&w, (const unsigned char *)hdr.s, hdr.len)) goto write_error;
    for (int i = 0; i < l.n; i++)
        if (!emit_tensor(&w, &l.t[i], seed, fbuf)) goto write_error;
    if (!flush(&w) || !writer_finish(&w)) goto write_error;
    if (w.progress) fprintf(stderr, "\n");
    if (ftruncate(w.fd, (off_t)w.total) != 0) {   /* drops the direct-mode padding */
        w.err = errno;
        goto write_error;
    }
    if (close(w.fd) != 0) {
        w.fd = -1;
        w.err = errno;
        goto write_error;
    }
    w.fd = -1;
    chmod(g_tmp_path, 0644);   /* mkstemp makes 0600 */
    pe = place(g_tmp_path, out, overwrite);
    if (pe) {
        report_place_error(out, pe);
        goto restore;
    }
    g_tmp_live = 0;
    print_summary(&l, arch, out, w.total, now_s() - t0);
    if (vocab_dir[0])
        printf("vocabulary: %s (%d tokens)\n", vocab_dir, TINY_VOCAB);
    else
        printf("vocabulary: none written; pass --vocab (a CLIP tokenizer/ folder or "
               "bpe_simple_vocab_16e6.txt.gz) when using this model\n");
    rc = 0;
    goto restore;
write_error:
    writer_finish(&w);
    if (w.progress) fprintf(stderr, "\n");
    fprintf(stderr, "phonediffusion: cannot write '%s': %s\n", out, strerror(w.err ? w.err : EIO));
restore:
    writer_finish(&w);
    if (w.fd >= 0) close(w.fd);
    if (g_tmp_live) unlink(g_tmp_path);
    g_tmp_live = 0;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
done:
    free(l.t);
    free(hdr.s);
    free(w.buf[0]);
    free(w.buf[1]);
    free(fbuf);
    return rc;
}
