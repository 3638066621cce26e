/*
 * pd_cli.c - the `phonediffusion` command-line tool. Uses the public API only.
 *
 *   phonediffusion info MODEL                 what a checkpoint holds (exit 1 if unreadable)
 *   phonediffusion tokenize -m MODEL -p TEXT  CLIP token ids of a text
 *   phonediffusion encode -m MODEL -p TEXT    text conditioning (shape, statistics;
 *                                             --dump FILE writes it as .safetensors)
 *   phonediffusion cpu                        CPU features and the kernel level in use
 *
 * Exit status: 0 on success, 1 on a runtime failure (bad file, missing vocabulary...),
 * 2 on a usage error. Messages go to stderr; results to stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "make_model.h"
#include "phonediffusion.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: phonediffusion <command> [options]\n"
            "\n"
            "commands:\n"
            "  generate -m MODEL -p TEXT  make images (also: phonediffusion -m MODEL -p TEXT);\n"
            "                             see `phonediffusion generate --help`\n"
            "  info MODEL                 show what a checkpoint (.safetensors file or diffusers\n"
            "                             folder) holds: family, layout, components, dtypes,\n"
            "                             parameters, missing/unexpected tensors\n"
            "  tokenize -m MODEL -p TEXT  print the CLIP token ids of TEXT\n"
            "  encode -m MODEL -p TEXT    encode a prompt with the model's text encoder(s)\n"
            "  cpu                        show CPU features and the kernel level selected\n"
            "  convert IN OUT.gguf [--weight-type T] [--overwrite]\n"
            "                             write a checkpoint (.safetensors or .gguf) as GGUF with\n"
            "                             q8_0 (default), q4_0, q4_1, f16, bf16 or f32 weights;\n"
            "                             names and quantized tensors as stable-diffusion.cpp\n"
            "  make-model -o FILE         write a random-weight checkpoint (sd15-tiny, sd15, sdxl);\n"
            "                             see `phonediffusion make-model --help`\n"
            "  version                    print the version\n"
            "\n"
            "options (tokenize, encode):\n"
            "  -m, --model PATH           model file or diffusers folder\n"
            "  -p, --prompt TEXT          prompt (A1111 syntax: (word:1.2), [word], BREAK)\n"
            "      --vocab PATH           CLIP vocabulary: tokenizer/ folder, vocab.json or\n"
            "                             bpe_simple_vocab_16e6.txt[.gz] (default: beside the model)\n"
            "      --config PATH          model config JSON (default: <model>.config.json or the\n"
            "                             diffusers config.json files)\n"
            "      --clip-skip N          1 = last layer (default), 2 = penultimate, ...\n"
            "      --no-prompt-weights    tokenize the prompt literally (no A1111 syntax)\n"
            "      --dump FILE            (encode) write context/pooled to FILE (.safetensors);\n"
            "                             an existing FILE is not overwritten without --overwrite\n"
            "      --overwrite            allow --dump to replace an existing file\n"
            "  -t, --threads N            worker threads (default: all CPUs)\n"
            "      --isa LEVEL            force kernels: scalar, avx2, avx512, amx (default: best)\n"
            "      --precision P          fp32 (exact), bf16, or auto (default: bf16 with AMX,\n"
            "                             else fp32)\n"
            "  -v, --verbose              log what is loaded\n"
            "\n"
            "environment: PD_ISA=scalar|avx2|avx512|amx forces a kernel level.\n");
}

typedef struct cli_opts {
    const char *model, *prompt, *vocab, *config, *dump;
    int clip_skip, threads;
    bool no_weights, overwrite, verbose;
    pd_isa isa;
    pd_precision precision;
} cli_opts;

void cli_log_stderr(pd_log_level level, const char *msg, void *user) {
    (void)user;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    fprintf(stderr, "[%s] %s\n", names[level], msg);
}

/* Library messages already name the file/tensor at fault; `what` is the step. */
static int fail(const char *what, const pd_error *err) {
    fprintf(stderr, "phonediffusion: %s failed: %s\n", what, err->msg[0] ? err->msg : pd_status_string(err->code));
    return 1;
}

static void fmt_count(char *buf, size_t n, int64_t v) {
    if (v >= 1000000000) snprintf(buf, n, "%.2fB", (double)v / 1e9);
    else if (v >= 1000000) snprintf(buf, n, "%.2fM", (double)v / 1e6);
    else if (v >= 1000) snprintf(buf, n, "%.1fK", (double)v / 1e3);
    else snprintf(buf, n, "%lld", (long long)v);
}

static void fmt_bytes(char *buf, size_t n, int64_t v) {
    if (v >= ((int64_t)1 << 30)) snprintf(buf, n, "%.2f GiB", (double)v / (double)(1 << 30));
    else if (v >= (1 << 20)) snprintf(buf, n, "%.1f MiB", (double)v / (double)(1 << 20));
    else if (v >= (1 << 10)) snprintf(buf, n, "%.1f KiB", (double)v / 1024.0);
    else snprintf(buf, n, "%lld B", (long long)v);
}

static int cmd_info(const char *path) {
    pd_model_info *info = NULL;
    pd_error err = {0};
    if (pd_inspect(path, &info, &err) != PD_OK) return fail("info", &err);
    char b1[32], b2[32];
    printf("model:      %s\n", info->path);
    printf("family:     %s\n", pd_family_name(info->family));
    printf("layout:     %s (%d file%s)\n", pd_layout_name(info->layout), info->n_files,
           info->n_files == 1 ? "" : "s");
    fmt_bytes(b1, sizeof b1, info->n_bytes);
    printf("tensors:    %d (%s)\n", info->n_tensors, b1);
    printf("components:\n");
    for (int i = 0; i < info->n_components; i++) {
        const pd_component_info *c = &info->components[i];
        if (!c->present) {
            printf("  %-15s absent\n", c->name);
            continue;
        }
        fmt_count(b1, sizeof b1, c->n_params);
        fmt_bytes(b2, sizeof b2, c->n_bytes);
        printf("  %-15s %5d tensors  %9s params  %11s  %-9s", c->name, c->n_tensors, b1, b2, c->dtypes);
        if (c->arch[0]) printf("  %s", c->arch);
        if (c->n_missing) printf("  [%d missing]", c->n_missing);
        printf("\n");
    }
    bool has_text = info->components[2].present || info->components[3].present;
    if (has_text)
        printf("vocabulary: %s\n", info->vocab_path[0] ? info->vocab_path : "not found beside the model (use --vocab)");
    if (info->n_missing) {
        printf("missing tensors (%d):\n", info->n_missing);
        for (int i = 0; i < info->n_missing && i < 50; i++) printf("  %s\n", info->missing[i]);
        if (info->n_missing > 50) printf("  ... and %d more\n", info->n_missing - 50);
    }
    if (info->n_unexpected) {
        printf("unexpected tensors (%d):\n", info->n_unexpected);
        for (int i = 0; i < info->n_unexpected && i < 50; i++) printf("  %s\n", info->unexpected[i]);
        if (info->n_unexpected > 50) printf("  ... and %d more\n", info->n_unexpected - 50);
    }
    int rc = 0;
    if (info->family == PD_FAMILY_UNKNOWN) {
        fprintf(stderr, "phonediffusion: %s: not a recognised Stable Diffusion checkpoint\n", path);
        rc = 1;
    } else if (info->n_missing) {
        fprintf(stderr, "phonediffusion: %s: %d expected tensors are missing\n", path, info->n_missing);
        rc = 1;
    }
    pd_model_info_free(info);
    return rc;
}

static pd_ctx *load(const cli_opts *o, pd_error *err) {
    pd_ctx_params cp = pd_ctx_default_params();
    cp.n_threads = o->threads;
    cp.isa = o->isa;
    cp.precision = o->precision;
    cp.vocab_path = o->vocab;
    cp.config_path = o->config;
    cp.text_only = true;   /* tokenize and encode need only the text side */
    if (o->verbose) cp.log = cli_log_stderr;
    pd_ctx *ctx = NULL;
    if (pd_ctx_load(o->model, &cp, &ctx, err) != PD_OK) return NULL;
    return ctx;
}

static int cmd_tokenize(const cli_opts *o) {
    pd_error err = {0};
    pd_ctx *ctx = load(o, &err);
    if (!ctx) return fail("loading the model", &err);
    int n = 0;
    int32_t *ids = NULL;
    int rc = 0;
    if (pd_tokenize(ctx, o->prompt, NULL, 0, &n, &err) != PD_OK) {
        rc = fail("tokenize", &err);
        goto done;
    }
    ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    if (!ids || pd_tokenize(ctx, o->prompt, ids, n, &n, &err) != PD_OK) {
        rc = fail("tokenize", &err);
        goto done;
    }
    printf("%d tokens:", n);
    for (int i = 0; i < n; i++) printf(" %d", (int)ids[i]);
    printf("\n");
done:
    free(ids);
    pd_ctx_free(ctx);
    return rc;
}

/* Writes a safetensors file (F32 tensors) to path via a temporary file + rename, so a
 * failure never leaves a partial file behind. */
static int write_safetensors(const char *path, bool overwrite, const char *const *names,
                             const float *const *data, const int64_t (*shapes)[3],
                             const int *ndims, int n) {
    FILE *probe = fopen(path, "rb");
    if (probe) {
        fclose(probe);
        if (!overwrite) {
            fprintf(stderr, "phonediffusion: '%s' exists; pass --overwrite to replace it\n", path);
            return 1;
        }
    }
    char header[4096];
    size_t off = 0, pos = 0;
    off += (size_t)snprintf(header + off, sizeof header - off, "{");
    for (int i = 0; i < n; i++) {
        int64_t numel = 1;
        for (int d = 0; d < ndims[i]; d++) numel *= shapes[i][d];
        off += (size_t)snprintf(header + off, sizeof header - off, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[",
                                i ? "," : "", names[i]);
        for (int d = 0; d < ndims[i]; d++)
            off += (size_t)snprintf(header + off, sizeof header - off, "%s%lld", d ? "," : "", (long long)shapes[i][d]);
        off += (size_t)snprintf(header + off, sizeof header - off, "],\"data_offsets\":[%zu,%zu]}", pos,
                                pos + (size_t)numel * 4);
        pos += (size_t)numel * 4;
    }
    off += (size_t)snprintf(header + off, sizeof header - off, "}");
    while (off % 8) header[off++] = ' ';
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
    FILE *f = NULL;
    {
        int fd = mkstemp(tmp);
        if (fd >= 0) f = fdopen(fd, "wb");
    }
    if (!f) {
        fprintf(stderr, "phonediffusion: cannot write '%s': %s\n", path, strerror(errno));
        return 1;
    }
    uint64_t hl = off;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(hl >> (8 * i));
    bool ok = fwrite(le, 1, 8, f) == 8 && fwrite(header, 1, off, f) == off;
    for (int i = 0; ok && i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < ndims[i]; d++) numel *= (size_t)shapes[i][d];
        ok = fwrite(data[i], 4, numel, f) == numel;   /* little-endian hosts only */
    }
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "phonediffusion: cannot write '%s': %s\n", path, strerror(errno));
        remove(tmp);
        return 1;
    }
    return 0;
}

static int cmd_encode(const cli_opts *o) {
    pd_error err = {0};
    pd_ctx *ctx = load(o, &err);
    if (!ctx) return fail("loading the model", &err);
    pd_text_params tp = pd_text_default_params();
    tp.prompt = o->prompt;
    tp.clip_skip = o->clip_skip;
    tp.prompt_weights = !o->no_weights;
    pd_cond *cond = NULL;
    int rc = 0;
    if (pd_encode_text(ctx, &tp, &cond, &err) != PD_OK) {
        rc = fail("encode", &err);
        goto done;
    }
    double sum = 0, sq = 0;
    size_t n = (size_t)cond->n_tokens * (size_t)cond->dim;
    for (size_t i = 0; i < n; i++) {
        sum += cond->context[i];
        sq += (double)cond->context[i] * cond->context[i];
    }
    double mean = sum / (double)n;
    printf("family:   %s\n", pd_family_name(pd_ctx_family(ctx)));
    printf("chunks:   %d (%d tokens)\n", cond->n_chunks, cond->n_tokens);
    printf("context:  [%d, %d] mean %.6f std %.6f\n", cond->n_tokens, cond->dim, mean,
           sqrt(fmax(0.0, sq / (double)n - mean * mean)));
    printf("ids:     ");
    for (int i = 0; i < cond->n_tokens && i < 16; i++) printf(" %d", (int)cond->ids[i]);
    printf("%s\n", cond->n_tokens > 16 ? " ..." : "");
    if (cond->pooled_dim) {
        double ps = 0;
        for (int i = 0; i < cond->pooled_dim; i++) ps += cond->pooled[i];
        printf("pooled:   [%d] mean %.6f\n", cond->pooled_dim, ps / cond->pooled_dim);
    }
    if (o->dump) {
        const char *names[2] = {"context", "pooled"};
        const float *data[2] = {cond->context, cond->pooled};
        int64_t shapes[2][3] = {{1, cond->n_tokens, cond->dim}, {1, cond->pooled_dim, 0}};
        int ndims[2] = {3, 2};
        rc = write_safetensors(o->dump, o->overwrite, names, data, (const int64_t(*)[3])shapes, ndims,
                               cond->pooled_dim ? 2 : 1);
        if (rc == 0) printf("wrote:    %s\n", o->dump);
    }
done:
    pd_cond_free(cond);
    pd_ctx_free(ctx);
    return rc;
}

static int cmd_cpu(const cli_opts *o) {
    char buf[512];
    pd_cpu_describe(buf, sizeof buf);
    printf("cpu: %s\n", buf);
    (void)o;
    return 0;
}

bool cli_parse_size(const char *s, int64_t *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v > 0)) return false;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    default: break;
    }
    if (mul > 1 && (!strcmp(end, "B") || !strcmp(end, "iB"))) end += strlen(end);
    if (*end) return false;
    v *= mul;
    if (v < 1 || v > 1125899906842624.0) return false;
    *out = (int64_t)v;
    return true;
}

int cli_parse_precision(const char *s) {
    static const pd_precision all[] = {PD_PRECISION_AUTO, PD_PRECISION_FP32, PD_PRECISION_BF16};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, pd_precision_name(all[i]))) return (int)all[i];
    return -1;
}

int cli_parse_isa(const char *s) {
    static const struct { const char *name; pd_isa isa; } isas[] = {
        {"auto", PD_ISA_AUTO}, {"scalar", PD_ISA_SCALAR}, {"avx2", PD_ISA_AVX2},
        {"avx512", PD_ISA_AVX512}, {"amx", PD_ISA_AMX}, {"neon", PD_ISA_NEON},
    };
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++)
        if (!strcmp(s, isas[i].name)) return (int)isas[i].isa;
    return -1;
}

static bool parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

/* `convert IN OUT [--weight-type T] [--overwrite]` */
static int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    pd_convert_params cp = pd_convert_default_params();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--overwrite")) {
            cp.overwrite = true;
        } else if (!strcmp(a, "--weight-type") || !strcmp(a, "--type")) {
            if (i + 1 >= argc || !pd_weight_type_from_name(argv[i + 1], &cp.weight_type) ||
                cp.weight_type == PD_WEIGHT_AUTO) {
                fprintf(stderr, "phonediffusion: convert: --weight-type must be q8_0, q4_0, q4_1, f16, bf16 or f32\n");
                return 2;
            }
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "phonediffusion: convert: unknown option '%s'\n", a);
            return 2;
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            fprintf(stderr, "phonediffusion: convert: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "usage: phonediffusion convert IN OUT.gguf [--weight-type q8_0|q4_0|q4_1|f16|bf16|f32] "
                        "[--overwrite]\n");
        return 2;
    }
    pd_error err = {0};
    if (pd_convert(in, out, &cp, &err) != PD_OK) {
        fprintf(stderr, "phonediffusion: convert: %s\n", err.msg);
        return 1;
    }
    printf("%s (%s)\n", out, pd_weight_type_name(cp.weight_type));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "generate")) return cli_generate(argc, argv, 2);
    if (!strcmp(cmd, "make-model")) return cli_make_model(argc, argv, 2);
    if (!strcmp(cmd, "convert")) return cmd_convert(argc, argv);
    if (cmd[0] == '-' && strcmp(cmd, "-h") && strcmp(cmd, "--help") && strcmp(cmd, "--version"))
        return cli_generate(argc, argv, 1);   /* phonediffusion -m MODEL -p PROMPT ... */
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("phonediffusion %s\n", pd_version());
        return 0;
    }
    cli_opts o = {.clip_skip = 1, .isa = PD_ISA_AUTO};
    enum { OPT_VOCAB = 256, OPT_CONFIG, OPT_CLIP_SKIP, OPT_NO_WEIGHTS, OPT_DUMP, OPT_OVERWRITE, OPT_ISA, OPT_PRECISION };
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},
        {"prompt", required_argument, 0, 'p'},
        {"threads", required_argument, 0, 't'},
        {"verbose", no_argument, 0, 'v'},
        {"vocab", required_argument, 0, OPT_VOCAB},
        {"config", required_argument, 0, OPT_CONFIG},
        {"clip-skip", required_argument, 0, OPT_CLIP_SKIP},
        {"no-prompt-weights", no_argument, 0, OPT_NO_WEIGHTS},
        {"dump", required_argument, 0, OPT_DUMP},
        {"overwrite", no_argument, 0, OPT_OVERWRITE},
        {"isa", required_argument, 0, OPT_ISA},
        {"precision", required_argument, 0, OPT_PRECISION},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "m:p:t:vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'p': o.prompt = optarg; break;
        case 't':
            if (!parse_int(optarg, 1, 1024, &o.threads)) {
                fprintf(stderr, "phonediffusion: --threads must be an integer in 1..1024, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'v': o.verbose = true; break;
        case OPT_VOCAB: o.vocab = optarg; break;
        case OPT_CONFIG: o.config = optarg; break;
        case OPT_CLIP_SKIP:
            if (!parse_int(optarg, 1, 64, &o.clip_skip)) {
                fprintf(stderr, "phonediffusion: --clip-skip must be an integer in 1..64, got '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_NO_WEIGHTS: o.no_weights = true; break;
        case OPT_DUMP: o.dump = optarg; break;
        case OPT_OVERWRITE: o.overwrite = true; break;
        case OPT_ISA: {
            int isa = cli_parse_isa(optarg);
            if (isa < 0) {
                fprintf(stderr, "phonediffusion: --isa must be scalar, avx2, avx512, amx, neon or auto, got '%s'\n", optarg);
                return 2;
            }
            o.isa = (pd_isa)isa;
            break;
        }
        case OPT_PRECISION: {
            int prec = cli_parse_precision(optarg);
            if (prec < 0) {
                fprintf(stderr, "phonediffusion: --precision must be fp32, bf16 or auto, got '%s'\n", optarg);
                return 2;
            }
            o.precision = (pd_precision)prec;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!strcmp(cmd, "info")) {
        const char *path = o.model ? o.model : (optind < argc ? argv[optind] : NULL);
        if (!path) {
            fprintf(stderr, "phonediffusion: info needs a model path\n");
            return 2;
        }
        return cmd_info(path);
    }
    if (!strcmp(cmd, "cpu")) return cmd_cpu(&o);
    if (!strcmp(cmd, "tokenize") || !strcmp(cmd, "encode")) {
        if (!o.model) {
            fprintf(stderr, "phonediffusion: %s needs -m/--model PATH\n", cmd);
            return 2;
        }
        if (!o.prompt) {
            fprintf(stderr, "phonediffusion: %s needs -p/--prompt TEXT\n", cmd);
            return 2;
        }
        return !strcmp(cmd, "tokenize") ? cmd_tokenize(&o) : cmd_encode(&o);
    }
    fprintf(stderr, "phonediffusion: unknown command '%s' (try --help)\n", cmd);
    return 2;
}
