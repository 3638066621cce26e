/*
 * bench_e2e.c - end-to-end benchmark of a whole model through the public API: load
 * time, then N image generations reporting the median text encode, UNet evaluation,
 * VAE decode and total (excluding load), peak RSS, and the UNet/VAE throughput against
 * the machine's measured peak (peak.h) for the kernels the context runs.
 *
 *   bench_e2e -m MODEL.safetensors --vocab TOKENIZER_DIR
 *             [--preset lcm4|euler20|sdxl4|turbo1] [-W N -H N] [--steps N] [--cfg X]
 *             [--sampler S] [--spacing leading|linspace|trailing] [--taesd PATH]
 *             [--vae-tiling auto|on|off] [--runs N] [--threads N]
 *             [--precision auto|fp32|bf16] [--isa scalar|avx2|avx512|amx]
 *             [--weight-type auto|f16|bf16|q8_0|q4_0|q4_1] [--max-memory BYTES|--low-memory]
 *             [--psnr-fp32] [-v|--verbose]
 *
 * Memory: peak RSS after load and at the end (VmHWM), and with --max-memory or
 * --low-memory the engine's per-stage report (--verbose prints the log). --psnr-fp32:
 * after the timed runs (and the RSS figures), the first image is made again on the
 * exact fp32 path (no quantization) and the PSNR of the timed image against it is
 * printed: the quality cost of the weight type and precision.
 *
 * Presets: lcm4 = 512x512, lcm sampler, 4 steps, CFG 1 (one UNet pass per step);
 * euler20 = 512x512, euler_a, 20 steps, CFG 7 (two passes per step); sdxl4 =
 * 1024x1024, euler_a with trailing spacing, 4 steps, CFG 1 (an SDXL model; the full
 * VAE, tiled by the automatic policy); turbo1 = 512x512, euler_a trailing, 1 step,
 * CFG 1 (SDXL-Turbo style; pass --taesd for the tiny decoder).
 * The work model (FLOPs = 2 x MACs) is DESIGN.md's, scaled by the pixel count: SD 1.x
 * at 512x512 UNet 0.80 TFLOP per evaluation and VAE decoder 2.5 TFLOP; SDXL at
 * 1024x1024 UNet 6.8 TFLOP and VAE decoder 10.5 TFLOP; TAESD decoder 0.14 TFLOP at
 * 512x512 (tiled decoding does some more work than the model counts). Use full-size
 * models, e.g. written by `phonediffusion make-model --arch sd15|sdxl`.
 * The ISA can also be forced with PD_ISA=...; the first run includes the first-touch
 * page faults of the scratch buffers, so medians of >= 3 runs are what to quote.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/cpu.h"
#include "base/threadpool.h"
#include "peak.h"
#include "phonediffusion.h"

#define MAX_RUNS 32

typedef struct opts {
    const char *model, *vocab, *sampler, *spacing, *taesd;
    pd_vae_tiling_mode tiling;
    int width, height, steps, runs, threads;
    float cfg;
    pd_precision precision;
    pd_isa isa;
    pd_weight_type weight_type;
    int64_t max_memory;
    bool low_memory, psnr_fp32, verbose;
} opts;

static void log_stderr(pd_log_level level, const char *msg, void *user) {
    (void)level;
    (void)user;
    fprintf(stderr, "  [log] %s\n", msg);
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static int usage(void) {
    fprintf(stderr,
            "usage: bench_e2e -m MODEL --vocab DIR [--preset lcm4|euler20|sdxl4|turbo1] [-W N -H N]\n"
            "                 [--steps N] [--cfg X] [--sampler S] [--spacing leading|linspace|trailing]\n"
            "                 [--taesd PATH] [--vae-tiling auto|on|off] [--runs N] [--threads N]\n"
            "                 [--precision auto|fp32|bf16] [--isa scalar|avx2|avx512|amx]\n"
            "                 [--weight-type auto|f16|bf16|q8_0|q4_0|q4_1] [--max-memory BYTES | --low-memory]\n"
            "                 [--psnr-fp32] [-v|--verbose]\n");
    return 2;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static bool parse(int argc, char **argv, opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--low-memory") || !strcmp(a, "--psnr-fp32") || !strcmp(a, "--verbose") || !strcmp(a, "-v")) {
            if (!strcmp(a, "--low-memory")) o->low_memory = true;
            else if (!strcmp(a, "--psnr-fp32")) o->psnr_fp32 = true;
            else o->verbose = true;
            continue;
        }
        if (!v) return false;
        i++;
        if (!strcmp(a, "-m")) o->model = v;
        else if (!strcmp(a, "--vocab")) o->vocab = v;
        else if (!strcmp(a, "--sampler")) o->sampler = v;
        else if (!strcmp(a, "--spacing")) o->spacing = v;
        else if (!strcmp(a, "--taesd")) o->taesd = v;
        else if (!strcmp(a, "--weight-type")) {
            if (!pd_weight_type_from_name(v, &o->weight_type)) return false;
        } else if (!strcmp(a, "--max-memory")) o->max_memory = atoll(v);
        else if (!strcmp(a, "--vae-tiling")) {
            if (!strcmp(v, "auto")) o->tiling = PD_VAE_TILING_AUTO;
            else if (!strcmp(v, "on")) o->tiling = PD_VAE_TILING_ON;
            else if (!strcmp(v, "off")) o->tiling = PD_VAE_TILING_OFF;
            else return false;
        }
        else if (!strcmp(a, "-W")) o->width = atoi(v);
        else if (!strcmp(a, "-H")) o->height = atoi(v);
        else if (!strcmp(a, "--steps")) o->steps = atoi(v);
        else if (!strcmp(a, "--cfg")) o->cfg = (float)atof(v);
        else if (!strcmp(a, "--runs")) o->runs = atoi(v);
        else if (!strcmp(a, "--threads")) o->threads = atoi(v);
        else if (!strcmp(a, "--isa")) {
            int isa = pd_isa_from_name(v);
            if (isa < 0) return false;
            o->isa = (pd_isa)isa;
        } else if (!strcmp(a, "--precision")) {
            if (!strcmp(v, "fp32")) o->precision = PD_PRECISION_FP32;
            else if (!strcmp(v, "bf16")) o->precision = PD_PRECISION_BF16;
            else if (!strcmp(v, "auto")) o->precision = PD_PRECISION_AUTO;
            else return false;
        } else if (!strcmp(a, "--preset")) {
            if (!strcmp(v, "lcm4")) {
                o->sampler = "lcm", o->steps = 4, o->cfg = 1.0f;
            } else if (!strcmp(v, "euler20")) {
                o->sampler = "euler_a", o->steps = 20, o->cfg = 7.0f;
            } else if (!strcmp(v, "sdxl4")) {
                o->sampler = "euler_a", o->spacing = "trailing", o->steps = 4, o->cfg = 1.0f;
                o->width = o->height = 1024;
            } else if (!strcmp(v, "turbo1")) {
                o->sampler = "euler_a", o->spacing = "trailing", o->steps = 1, o->cfg = 1.0f;
                o->width = o->height = 512;
            } else {
                return false;
            }
        } else {
            return false;
        }
    }
    return o->model && o->steps >= 1 && o->runs >= 1 && o->runs <= MAX_RUNS && o->width % 8 == 0 &&
           o->height % 8 == 0 && o->width > 0 && o->height > 0;
}

/* Two-core peak FLOP/s of the arithmetic the context runs (0: unknown). */
static double peak_flops(pd_isa isa, pd_precision prec, int threads) {
    pd_cpu_features f;
    pd_cpu_detect(&f);
    double one = 0;
#if defined(__x86_64__)
    if (prec == PD_PRECISION_BF16 && isa == PD_ISA_AMX) one = best_of(peak_amx_bf16);
    else if (prec == PD_PRECISION_BF16 && isa == PD_ISA_AVX512 && f.avx512bf16) one = best_of(peak_avx512_bf16);
    else if (isa == PD_ISA_AVX512 || isa == PD_ISA_AMX) one = best_of(peak_avx512);
    else if (isa == PD_ISA_AVX2) one = best_of(peak_avx2);
    else one = best_of(peak_scalar);
#else
    (void)isa;
    (void)prec;
    one = best_of(peak_scalar);
#endif
    return one * threads;
}

/* The benchmark's image: the options' size, steps, CFG, sampler, spacing, tiling. */
static pd_gen_params gen_params(const opts *o, int64_t seed) {
    pd_gen_params gp = pd_gen_default_params();
    gp.prompt = "a photograph of an astronaut riding a horse, highly detailed";
    gp.width = o->width;
    gp.height = o->height;
    gp.steps = o->steps;
    gp.cfg_scale = o->cfg;
    gp.sampler = o->sampler;
    gp.timestep_spacing = o->spacing;
    gp.vae_tiling = o->tiling;
    gp.seed = seed;
    return gp;
}

int main(int argc, char **argv) {
    opts o = {.sampler = "lcm", .width = 512, .height = 512, .steps = 4, .runs = 3, .cfg = 1.0f};
    if (!parse(argc, argv, &o)) return usage();
    const int threads = o.threads > 0 ? o.threads : pd_cpu_count();

    pd_ctx_params cp = pd_ctx_default_params();
    cp.n_threads = threads;
    cp.isa = o.isa;
    cp.precision = o.precision;
    cp.vocab_path = o.vocab;
    cp.taesd_path = o.taesd;
    cp.weight_type = o.weight_type;
    cp.max_memory = o.max_memory;
    cp.low_memory = o.low_memory;
    if (o.verbose) cp.log = log_stderr;
    pd_ctx *ctx = NULL;
    pd_error err = {0};
    const double t0 = peak_now_s();
    if (pd_ctx_load(o.model, &cp, &ctx, &err) != PD_OK) {
        fprintf(stderr, "bench_e2e: %s\n", err.msg);
        return 1;
    }
    const double load_s = peak_now_s() - t0;
    const double rss_load = peak_rss_mib();
    uint8_t *first = NULL;   /* run 1's image, for --psnr-fp32 */
    size_t n_px = 0;
    const pd_isa isa = pd_ctx_isa(ctx);
    const pd_precision prec = pd_ctx_precision(ctx);

    double text[MAX_RUNS], unet[MAX_RUNS], decode[MAX_RUNS], total[MAX_RUNS], reload[MAX_RUNS];
    int evals = 0;
    for (int r = 0; r < o.runs; r++) {
        pd_gen_params gp = gen_params(&o, 1 + r);
        pd_result *res = NULL;
        if (pd_generate(ctx, &gp, &res, &err) != PD_OK) {
            fprintf(stderr, "bench_e2e: %s\n", err.msg);
            pd_ctx_free(ctx);
            return 1;
        }
        const pd_timings *t = &res->timings;
        evals = t->unet_evals;
        text[r] = t->text_s;
        unet[r] = t->denoise_s / (t->unet_evals ? t->unet_evals : 1);
        decode[r] = t->decode_s;
        total[r] = t->total_s;
        reload[r] = t->unet_load_s;
        fprintf(stderr, "  run %d: text %.3f s, UNet %.3f s/eval x %d, decode %.3f s, total %.3f s", r + 1, text[r],
                unet[r], evals, decode[r], total[r]);
        if (reload[r] > 0) fprintf(stderr, " (UNet loaded again: %.3f s)", reload[r]);
        fprintf(stderr, "\n");
        if (r == 0 && o.psnr_fp32) {
            n_px = (size_t)res->images[0].width * (size_t)res->images[0].height * 3;
            first = malloc(n_px);
            if (first) memcpy(first, res->images[0].rgb, n_px);
        }
        pd_result_free(res);
    }
    const double rss_end = peak_rss_mib();
    /* (median() sorts: take run 1 and the later runs first) */
    const double total1 = total[0], later = o.runs > 1 ? median(total + 1, o.runs - 1) : 0;
    const double reloaded = o.runs > 1 ? median(reload + 1, o.runs - 1) : 0;
    const pd_family family = pd_ctx_family(ctx);
    pd_ctx_free(ctx);
    double psnr = -1;
    if (first) {
        /* The same first image on the exact path: fp32 arithmetic, unquantized weights. */
        cp.precision = PD_PRECISION_FP32;
        cp.weight_type = PD_WEIGHT_F32;
        cp.max_memory = 0;
        cp.low_memory = false;
        cp.log = NULL;
        pd_gen_params gp = gen_params(&o, 1);
        pd_result *res = NULL;
        if (pd_ctx_load(o.model, &cp, &ctx, &err) != PD_OK || pd_generate(ctx, &gp, &res, &err) != PD_OK) {
            fprintf(stderr, "bench_e2e: fp32 reference: %s\n", err.msg);
        } else {
            double se = 0;
            for (size_t i = 0; i < n_px; i++) {
                const double d = (double)first[i] - (double)res->images[0].rgb[i];
                se += d * d;
            }
            psnr = se == 0 ? 99.0 : 10.0 * log10(255.0 * 255.0 / (se / (double)n_px));
        }
        pd_result_free(res);
        pd_ctx_free(ctx);
        free(first);
    }

    const double m_unet = median(unet, o.runs), m_dec = median(decode, o.runs);
    printf("model %s, %dx%d, %s %d steps, CFG %.1f, %d threads, kernels %s %s, weights %s%s\n", o.model, o.width,
           o.height, o.sampler, o.steps, (double)o.cfg, threads, pd_isa_name(isa), pd_precision_name(prec),
           pd_weight_type_name(o.weight_type), o.low_memory ? ", low memory" : "");
    printf("load          %8.2f s\n", load_s);
    printf("text encode   %8.3f s   (median of %d runs)\n", median(text, o.runs), o.runs);
    printf("UNet eval     %8.3f s   x %d evaluations\n", m_unet, evals);
    printf("%-13s %8.3f s\n", o.taesd ? "TAESD decode" : "VAE decode", m_dec);
    printf("total         %8.3f s   (excluding load; median of %d runs)\n", median(total, o.runs), o.runs);
    if (reloaded > 0) {
        /* The memory plan released the UNet to decode: run 1 used the UNet of the load,
         * each later run loaded it again. */
        printf("  run 1       %8.3f s   (UNet loaded with the context)\n", total1);
        printf("  runs 2..%-3d %8.3f s   (median; each loads the UNet again: %.3f s)\n", o.runs, later, reloaded);
    }
    printf("peak RSS      %8.0f MiB   (%.0f MiB after load)\n", rss_end, rss_load);
    if (psnr >= 0) printf("PSNR vs fp32  %8.1f dB   (first image, same seed, exact fp32 path)\n", psnr);
    /* DESIGN.md's work model, scaled by the pixel count. */
    double unet_flop = 0, vae_flop = 0;
    if (family == PD_FAMILY_SD1) {
        const double scale = (double)o.width * (double)o.height / (512.0 * 512.0);
        unet_flop = 0.80e12 * scale;
        vae_flop = 2.5e12 * scale;
    } else if (family == PD_FAMILY_SDXL) {
        const double scale = (double)o.width * (double)o.height / (1024.0 * 1024.0);
        unet_flop = 6.8e12 * scale;
        vae_flop = 10.5e12 * scale;
    }
    if (o.taesd) vae_flop = 0.14e12 * (double)o.width * (double)o.height / (512.0 * 512.0);
    if (unet_flop > 0) {
        const double peak = peak_flops(isa, prec, threads);
        printf("UNet          %8.0f GFLOP/s", unet_flop / m_unet * 1e-9);
        if (peak > 0) printf("  %5.1f %% of the %d-core peak (%.0f GFLOP/s)", 100.0 * unet_flop / m_unet / peak, threads, peak * 1e-9);
        printf("\n%-13s %8.0f GFLOP/s", o.taesd ? "TAESD decode" : "VAE decode", vae_flop / m_dec * 1e-9);
        if (peak > 0) printf("  %5.1f %% of that peak", 100.0 * vae_flop / m_dec / peak);
        printf("\n");
    }
    return 0;
}
