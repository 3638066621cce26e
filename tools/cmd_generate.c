/*
 * cmd_generate.c - `phonediffusion generate` (also `phonediffusion -m ... -p ...`):
 * txt2img and img2img to PNG files with AUTOMATIC1111-style metadata.
 *
 * Output naming: -o/--output (default output.png). With --batch-count N > 1, a "%d" in
 * the name is replaced by the image number (1..N); without one, image 1 keeps the name
 * and image i > 1 gets "-i" before the extension (output.png, output-2.png, ...).
 * Every output name is checked before any work starts: an existing file is refused
 * unless --overwrite is given. Files are written atomically (temp file + link/rename).
 *
 * stderr gets a progress bar (step i/N, s/it, ETA) when it is a terminal and --quiet is
 * not given, and always the final line
 *   timings: load=1.23s text=0.05s denoise=2.10s decode=0.80s total=2.95s unet_evals=4
 * (total excludes load). Exit: 0 ok, 1 runtime failure, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "phonediffusion.h"
#include "png_io.h"
#include "sha256.h"

#define MAX_SIDE 8192
#define MAX_BATCH 1000

typedef struct gen_opts {
    pd_gen_params gp;
    const char *model, *vocab, *config, *output, *init_path, *unet, *taesd, *preview;
    int threads;
    pd_isa isa;
    pd_precision precision;
    pd_weight_type weight_type;
    int64_t max_memory;
    bool low_memory;
    bool quiet, overwrite, verbose;
} gen_opts;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- progress bar ------------------------------------------------------------------ */

typedef struct bar_state {
    bool enabled;
    int image, n_images;
    int denoised, decoded;      /* images whose denoising / decoding has started */
    double t_start;
    const char *preview_path;   /* --preview: rewritten at every denoise step */
    bool preview_failed;
} bar_state;

static bool on_progress(const pd_progress *p, void *user) {
    bar_state *b = user;
    /* A call with several images denoises them all, then decodes them. */
    if (p->step < 0 && !strcmp(p->stage, "denoise")) b->image = ++b->denoised;
    if (p->step < 0 && !strcmp(p->stage, "decode")) b->image = ++b->decoded;
    if (p->preview && b->preview_path && !b->preview_failed) {
        char err[256];
        if (png_write_rgb(b->preview_path, p->preview, p->preview_width, p->preview_height, NULL, true, err,
                          sizeof err) != 0) {
            fprintf(stderr, "phonediffusion: --preview: %s (no more previews)\n", err);
            b->preview_failed = true;
        }
    }
    if (b->enabled && !strcmp(p->stage, "decode") && p->n_steps > 1 && p->step >= 0) {
        fprintf(stderr, "\r[%d/%d] VAE decode: tile %d/%d   ", b->image, b->n_images, p->step + 1, p->n_steps);
        if (p->step + 1 == p->n_steps) fprintf(stderr, "\n");
        return true;
    }
    if (!b->enabled || strcmp(p->stage, "denoise") != 0) return true;
    if (p->step < 0) {
        b->t_start = now_s();
        return true;
    }
    int done = p->step + 1, n = p->n_steps > 0 ? p->n_steps : 1;
    double el = now_s() - b->t_start;
    double per = el / done, eta = per * (n - done);
    int width = 30, fill = done * width / n;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%d/%d] |%s| %d/%d  %.2fs/it  ETA %.1fs   ", b->image, b->n_images, bar, done, n, per, eta);
    if (done == n) fprintf(stderr, "\n");
    return true;
}

/* ---- metadata ------------------------------------------------------------------ */

static const char *sampler_display(const char *s) {
    static const struct { const char *id, *name; } names[] = {
        {"euler", "Euler"}, {"euler_a", "Euler a"}, {"heun", "Heun"},
        {"dpm++2m", "DPM++ 2M"}, {"ddim", "DDIM"}, {"lcm", "LCM"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].id)) return names[i].name;
    return s;
}

static char *parameters_text(const gen_opts *o, const pd_image *img, const char *model_name,
                             const char *hash) {
    const pd_gen_params *g = &o->gp;
    size_t cap = strlen(g->prompt) + (g->negative_prompt ? strlen(g->negative_prompt) : 0) + 1024;
    char *t = malloc(cap);
    if (!t) return NULL;
    size_t n = 0;
    n += (size_t)snprintf(t + n, cap - n, "%s\n", g->prompt);
    if (g->negative_prompt && *g->negative_prompt)
        n += (size_t)snprintf(t + n, cap - n, "Negative prompt: %s\n", g->negative_prompt);
    n += (size_t)snprintf(t + n, cap - n, "Steps: %d, Sampler: %s, ", g->steps, sampler_display(g->sampler));
    if (strcmp(g->scheduler, "default") != 0)
        n += (size_t)snprintf(t + n, cap - n, "Schedule type: %c%s, ", g->scheduler[0] - 32 * (g->scheduler[0] >= 'a' && g->scheduler[0] <= 'z'),
                              g->scheduler + 1);
    n += (size_t)snprintf(t + n, cap - n, "CFG scale: %g, Seed: %lld, Size: %dx%d, ", (double)g->cfg_scale,
                          (long long)img->seed, img->width, img->height);
    if (hash[0]) n += (size_t)snprintf(t + n, cap - n, "Model hash: %s, ", hash);
    n += (size_t)snprintf(t + n, cap - n, "Model: %s, ", model_name);
    if (g->clip_skip > 1) n += (size_t)snprintf(t + n, cap - n, "Clip skip: %d, ", g->clip_skip);
    if (g->init_image) n += (size_t)snprintf(t + n, cap - n, "Denoising strength: %g, ", (double)g->strength);
    snprintf(t + n, cap - n, "Version: phonediffusion %s", pd_version());
    return t;
}

static void model_stem(const char *path, char *out, size_t n) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    const char *base = path;
    for (size_t i = 0; i < len; i++)
        if (path[i] == '/') base = path + i + 1;
    size_t bl = (size_t)(path + len - base);
    const char *ext = ".safetensors";
    size_t el = strlen(ext);
    if (bl > el && strncmp(base + bl - el, ext, el) == 0) bl -= el;
    snprintf(out, n, "%.*s", (int)bl, base);
}

/* Output name of image i (1-based) of n. */
static bool output_name(const char *pattern, int i, int n, char *out, size_t size) {
    const char *pct = strstr(pattern, "%d");
    int w;
    if (pct) {
        w = snprintf(out, size, "%.*s%d%s", (int)(pct - pattern), pattern, i, pct + 2);
    } else if (n == 1 || i == 1) {
        w = snprintf(out, size, "%s", pattern);
    } else {
        const char *slash = strrchr(pattern, '/');
        const char *dot = strrchr(pattern, '.');
        if (!dot || (slash && dot < slash)) dot = pattern + strlen(pattern);
        w = snprintf(out, size, "%.*s-%d%s", (int)(dot - pattern), pattern, i, dot);
    }
    return w > 0 && (size_t)w < size;
}

/* ---- argument parsing ------------------------------------------------------------- */

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "phonediffusion: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (try --help)\n");
    return 2;
}

static bool parse_long(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* "WxH" (or "W,H" with sep ',') with both parts in 1..65536 (0 allowed when zero_ok). */
static bool parse_pair(const char *s, char sep, bool zero_ok, int *a, int *b) {
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || end == s || *end != sep) return false;
    const char *s2 = end + 1;
    long y = strtol(s2, &end, 10);
    long lo = zero_ok ? 0 : 1;
    if (errno || end == s2 || *end || x < lo || y < lo || x > 65536 || y > 65536) return false;
    *a = (int)x;
    *b = (int)y;
    return true;
}

static bool parse_float(const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
    *out = (float)v;
    return true;
}

void cli_generate_usage(FILE *f) {
    fprintf(f,
            "  generate -m MODEL -p PROMPT [options]   (also: phonediffusion -m MODEL -p PROMPT)\n"
            "      -n, --negative-prompt TEXT\n"
            "      -W, --width N / -H, --height N   multiples of 8 (default: 512 SD1, 768 SD2, 1024 SDXL)\n"
            "      --steps N                        sampler steps (default 20)\n"
            "      --cfg-scale X                    guidance scale (default 7; 1 = no negative pass)\n"
            "      --sampler NAME                   euler, euler_a (default), heun, dpm++2m, ddim, lcm\n"
            "      --scheduler NAME                 default or karras\n"
            "      --timestep-spacing S             leading, linspace or trailing (default: the model's\n"
            "                                       scheduler config, else leading; Turbo: trailing)\n"
            "      -s, --seed N                     -1 = random (default; the seed is printed)\n"
            "      --batch-count N                  images with seeds seed, seed+1, ...\n"
            "      --clip-skip N                    1 = last layer (default)\n"
            "      --init-image PNG --strength X    img2img (strength in (0, 1], default 0.75)\n"
            "      --unet PATH                      use this UNet (e.g. an LCM diffusers unet folder)\n"
            "      --taesd PATH                     decode (and encode) with TAESD/TAESDXL: a diffusers\n"
            "                                       AutoencoderTiny folder or file, or taesd_decoder files\n"
            "      --preview FILE                   with --taesd: write a preview PNG at every step\n"
            "      --taesd-preview-only             with --taesd: the model's VAE makes the image\n"
            "      --vae-tiling / --no-vae-tiling   decode in tiles (default: tiles above 768x768)\n"
            "      --original-size WxH              SDXL size conditioning (default: the output size)\n"
            "      --target-size WxH                SDXL size conditioning (default: the output size)\n"
            "      --crop X,Y                       SDXL crop conditioning, left,top (default 0,0)\n"
            "      --precision P                    fp32 (exact), bf16, auto (default: bf16 where it is\n"
            "                                       faster: AMX, or AVX512-BF16 on AMD)\n"
            "      --weight-type T                  weights in memory: auto (as stored), f32, f16, bf16,\n"
            "                                       q8_0, q4_0, q4_1 (quantized at load)\n"
            "      --max-memory SIZE                stay under SIZE (e.g. 1.5G): release the text encoders\n"
            "                                       after encoding, load the VAE to decode, release the\n"
            "                                       UNet to decode, tile the VAE (as far as needed)\n"
            "      --low-memory                     always load the text encoders and VAE per use and\n"
            "                                       release the UNet to decode\n"
            "      -o, --output FILE                default output.png; %%d = image number\n"
            "      --overwrite                      replace existing output files\n"
            "      -q, --quiet                      no progress bar\n");
}

int cli_generate(int argc, char **argv, int first) {
    gen_opts o;
    memset(&o, 0, sizeof o);
    o.gp = pd_gen_default_params();
    o.output = "output.png";
    o.isa = PD_ISA_AUTO;
    enum { O_STEPS = 300, O_CFG, O_SAMPLER, O_SCHED, O_BATCH, O_CLIP, O_INIT, O_STRENGTH, O_VOCAB,
           O_CONFIG, O_OVERWRITE, O_ISA, O_NOW, O_UNET, O_PRECISION, O_SPACING, O_ORIG_SIZE,
           O_TARGET_SIZE, O_CROP, O_TAESD, O_PREVIEW, O_TILING, O_NO_TILING, O_TAESD_PREVIEW,
           O_WTYPE, O_MAXMEM, O_LOWMEM };
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"negative-prompt", required_argument, 0, 'n'}, {"width", required_argument, 0, 'W'},
        {"height", required_argument, 0, 'H'}, {"steps", required_argument, 0, O_STEPS},
        {"cfg-scale", required_argument, 0, O_CFG}, {"sampler", required_argument, 0, O_SAMPLER},
        {"scheduler", required_argument, 0, O_SCHED}, {"seed", required_argument, 0, 's'},
        {"batch-count", required_argument, 0, O_BATCH}, {"clip-skip", required_argument, 0, O_CLIP},
        {"init-image", required_argument, 0, O_INIT}, {"strength", required_argument, 0, O_STRENGTH},
        {"threads", required_argument, 0, 't'}, {"vocab", required_argument, 0, O_VOCAB},
        {"config", required_argument, 0, O_CONFIG}, {"output", required_argument, 0, 'o'},
        {"overwrite", no_argument, 0, O_OVERWRITE}, {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'}, {"isa", required_argument, 0, O_ISA},
        {"no-prompt-weights", no_argument, 0, O_NOW}, {"help", no_argument, 0, 'h'},
        {"unet", required_argument, 0, O_UNET}, {"precision", required_argument, 0, O_PRECISION},
        {"timestep-spacing", required_argument, 0, O_SPACING},
        {"original-size", required_argument, 0, O_ORIG_SIZE},
        {"target-size", required_argument, 0, O_TARGET_SIZE}, {"crop", required_argument, 0, O_CROP},
        {"taesd", required_argument, 0, O_TAESD}, {"preview", required_argument, 0, O_PREVIEW},
        {"vae-tiling", no_argument, 0, O_TILING}, {"no-vae-tiling", no_argument, 0, O_NO_TILING},
        {"taesd-preview-only", no_argument, 0, O_TAESD_PREVIEW},
        {"weight-type", required_argument, 0, O_WTYPE}, {"max-memory", required_argument, 0, O_MAXMEM},
        {"low-memory", no_argument, 0, O_LOWMEM},
        {0, 0, 0, 0},
    };
    optind = first;
    int c;
    long long v;
    while ((c = getopt_long(argc, argv, "m:p:n:W:H:s:t:o:qvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'p': o.gp.prompt = optarg; break;
        case 'n': o.gp.negative_prompt = optarg; break;
        case 'W':
        case 'H':
            if (!parse_long(optarg, 1, MAX_SIDE, &v) || v % 8)
                return usage_error("width and height must be multiples of 8 in 8..8192, got '%s'", optarg);
            if (c == 'W') o.gp.width = (int)v;
            else o.gp.height = (int)v;
            break;
        case O_STEPS:
            if (!parse_long(optarg, 1, 1000, &v)) return usage_error("--steps must be in 1..1000, got '%s'", optarg);
            o.gp.steps = (int)v;
            break;
        case O_CFG:
            if (!parse_float(optarg, 0.0, 100.0, &o.gp.cfg_scale))
                return usage_error("--cfg-scale must be a number in 0..100, got '%s'", optarg);
            break;
        case O_SAMPLER: o.gp.sampler = optarg; break;
        case O_SCHED: o.gp.scheduler = optarg; break;
        case O_SPACING:
            if (strcmp(optarg, "leading") && strcmp(optarg, "linspace") && strcmp(optarg, "trailing"))
                return usage_error("--timestep-spacing must be leading, linspace or trailing, got '%s'", optarg);
            o.gp.timestep_spacing = optarg;
            break;
        case O_ORIG_SIZE:
            if (!parse_pair(optarg, 'x', false, &o.gp.original_width, &o.gp.original_height))
                return usage_error("--original-size must be WxH with sizes in 1..65536, got '%s'", optarg);
            break;
        case O_TARGET_SIZE:
            if (!parse_pair(optarg, 'x', false, &o.gp.target_width, &o.gp.target_height))
                return usage_error("--target-size must be WxH with sizes in 1..65536, got '%s'", optarg);
            break;
        case O_CROP:
            if (!parse_pair(optarg, ',', true, &o.gp.crop_left, &o.gp.crop_top))
                return usage_error("--crop must be X,Y (left,top) in 0..65536, got '%s'", optarg);
            break;
        case 's':
            if (!parse_long(optarg, -1, INT64_MAX, &v)) return usage_error("--seed must be -1 or a non-negative integer, got '%s'", optarg);
            o.gp.seed = v;
            break;
        case O_BATCH:
            if (!parse_long(optarg, 1, MAX_BATCH, &v)) return usage_error("--batch-count must be in 1..1000, got '%s'", optarg);
            o.gp.batch_count = (int)v;
            break;
        case O_CLIP:
            if (!parse_long(optarg, 1, 64, &v)) return usage_error("--clip-skip must be in 1..64, got '%s'", optarg);
            o.gp.clip_skip = (int)v;
            break;
        case O_INIT: o.init_path = optarg; break;
        case O_STRENGTH:
            if (!parse_float(optarg, 0.0, 1.0, &o.gp.strength) || o.gp.strength <= 0.0f)
                return usage_error("--strength must be in (0, 1], got '%s'", optarg);
            break;
        case 't':
            if (!parse_long(optarg, 1, 1024, &v)) return usage_error("--threads must be in 1..1024, got '%s'", optarg);
            o.threads = (int)v;
            break;
        case O_VOCAB: o.vocab = optarg; break;
        case O_CONFIG: o.config = optarg; break;
        case O_UNET: o.unet = optarg; break;
        case O_TAESD: o.taesd = optarg; break;
        case O_PREVIEW: o.preview = optarg; break;
        case O_TAESD_PREVIEW: o.gp.taesd_preview_only = true; break;
        case O_TILING: o.gp.vae_tiling = PD_VAE_TILING_ON; break;
        case O_NO_TILING: o.gp.vae_tiling = PD_VAE_TILING_OFF; break;
        case 'o': o.output = optarg; break;
        case O_OVERWRITE: o.overwrite = true; break;
        case 'q': o.quiet = true; break;
        case 'v': o.verbose = true; break;
        case O_NOW: o.gp.prompt_weights = false; break;
        case O_ISA: {
            int isa = cli_parse_isa(optarg);
            if (isa < 0) return usage_error("--isa must be scalar, avx2, avx512, amx, neon or auto, got '%s'", optarg);
            o.isa = (pd_isa)isa;
            break;
        }
        case O_PRECISION: {
            int prec = cli_parse_precision(optarg);
            if (prec < 0) return usage_error("--precision must be fp32, bf16 or auto, got '%s'", optarg);
            o.precision = (pd_precision)prec;
            break;
        }
        case O_WTYPE:
            if (!pd_weight_type_from_name(optarg, &o.weight_type))
                return usage_error("--weight-type must be auto, f32, f16, bf16, q8_0, q4_0 or q4_1, got '%s'", optarg);
            break;
        case O_MAXMEM:
            if (!cli_parse_size(optarg, &o.max_memory))
                return usage_error("--max-memory must be a size such as 1500M or 2.5G, got '%s'", optarg);
            break;
        case O_LOWMEM: o.low_memory = true; break;
        case 'h':
            printf("usage: phonediffusion generate -m MODEL -p PROMPT [options]\n");
            cli_generate_usage(stdout);
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (!o.model) return usage_error("%sgenerate needs -m/--model PATH", "");
    if (!o.gp.prompt) return usage_error("%sgenerate needs -p/--prompt TEXT", "");
    if (o.gp.batch_count < 1) o.gp.batch_count = 1;
    if (o.gp.strength != 0.75f && !o.init_path)
        return usage_error("%s--strength needs --init-image", "");
    if (o.preview && !o.taesd) return usage_error("%s--preview needs --taesd", "");
    if (o.gp.taesd_preview_only && !o.taesd) return usage_error("%s--taesd-preview-only needs --taesd", "");
    o.gp.preview = o.preview != NULL;
    if (o.preview) {
        struct stat st;
        if (!o.overwrite && stat(o.preview, &st) == 0) {
            fprintf(stderr, "phonediffusion: '%s' exists; pass --overwrite to replace it or choose another --preview\n", o.preview);
            return 1;
        }
    }

    /* All output names first: nothing is computed when one would be refused. */
    int n_out = o.gp.batch_count;
    for (int i = 1; i <= n_out; i++) {
        char name[4096];
        struct stat st;
        if (!output_name(o.output, i, n_out, name, sizeof name)) return usage_error("output name too long: '%s'", o.output);
        if (!o.overwrite && stat(name, &st) == 0) {
            fprintf(stderr, "phonediffusion: '%s' exists; pass --overwrite to replace it or choose another -o\n", name);
            return 1;
        }
    }

    uint8_t *init = NULL;
    char err[512];
    if (o.init_path) {
        int iw, ih;
        if (png_read_rgb(o.init_path, &init, &iw, &ih, err, sizeof err) != 0) {
            fprintf(stderr, "phonediffusion: --init-image: %s\n", err);
            return 1;
        }
        o.gp.init_image = init;
        o.gp.init_width = iw;
        o.gp.init_height = ih;
    }

    double t0 = now_s();
    pd_ctx_params cp = pd_ctx_default_params();
    cp.n_threads = o.threads;
    cp.isa = o.isa;
    cp.precision = o.precision;
    cp.weight_type = o.weight_type;
    cp.max_memory = o.max_memory;
    cp.low_memory = o.low_memory;
    cp.vocab_path = o.vocab;
    cp.config_path = o.config;
    cp.unet_path = o.unet;
    cp.taesd_path = o.taesd;
    if (o.verbose) cp.log = cli_log_stderr;
    pd_ctx *ctx = NULL;
    pd_error perr = {0};
    int rc = 0;
    pd_result *res = NULL;
    if (pd_ctx_load(o.model, &cp, &ctx, &perr) != PD_OK) {
        fprintf(stderr, "phonediffusion: loading the model failed: %s\n", perr.msg);
        rc = 1;
        goto done;
    }
    double t_load = now_s() - t0;

    bar_state bar = {!o.quiet && isatty(STDERR_FILENO), 1, n_out, 0, 0, 0, o.preview, false};
    o.gp.progress = on_progress;
    o.gp.progress_user = &bar;
    pd_timings sum = {0};
    char model_name[256], hash[9];
    model_stem(o.model, model_name, sizeof model_name);
    model_hash_autov1(o.model, hash);
    int64_t seed = o.gp.seed;
    /* One image per call, so each is written as soon as it is done; except with a memory
     * budget, which may release the UNet to decode: one call then denoises every image
     * before decoding them and loads the UNet once. */
    const int per_call = o.max_memory > 0 || o.low_memory ? n_out : 1;
    for (int i0 = 1; i0 <= n_out && rc == 0; i0 += per_call) {
        pd_gen_params call = o.gp;
        call.batch_count = per_call;
        call.seed = seed < 0 ? -1 : seed + (i0 - 1);
        bar.denoised = bar.decoded = i0 - 1;
        if (pd_generate(ctx, &call, &res, &perr) != PD_OK) {
            fprintf(stderr, "phonediffusion: generation failed: %s\n", perr.msg);
            rc = 1;
            break;
        }
        if (seed < 0 && i0 == 1) seed = res->images[0].seed;   /* later images: seed+1, ... */
        for (int k = 0; k < res->n_images && rc == 0; k++) {
            const pd_image *img = &res->images[k];
            char name[4096];
            output_name(o.output, i0 + k, n_out, name, sizeof name);
            char *params = parameters_text(&o, img, model_name, hash);
            if (!params ||
                png_write_rgb(name, img->rgb, img->width, img->height, params, o.overwrite, err, sizeof err) != 0) {
                fprintf(stderr, "phonediffusion: %s\n", params ? err : "out of memory");
                rc = 1;
            } else {
                printf("%s (seed %lld)\n", name, (long long)img->seed);
            }
            free(params);
        }
        sum.text_s += res->timings.text_s;
        sum.denoise_s += res->timings.denoise_s;
        sum.decode_s += res->timings.decode_s;
        sum.total_s += res->timings.total_s;
        sum.unet_evals += res->timings.unet_evals;
        sum.unet_load_s += res->timings.unet_load_s;
        pd_result_free(res);
        res = NULL;
    }
    fprintf(stderr, "timings: load=%.2fs text=%.2fs denoise=%.2fs decode=%.2fs total=%.2fs unet_evals=%d",
            t_load, sum.text_s, sum.denoise_s, sum.decode_s, sum.total_s, sum.unet_evals);
    if (sum.unet_load_s > 0) fprintf(stderr, " unet_reload=%.2fs", sum.unet_load_s);
    fprintf(stderr, "\n");
done:
    pd_result_free(res);
    pd_ctx_free(ctx);
    free(init);
    return rc;
}
