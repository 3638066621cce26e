/*
 * bench_text.c - end-to-end text encoding at full size, through the public API.
 *
 * Writes deterministic random-weight fp16 checkpoints with the real text-encoder shapes
 * in the original single-file layout (no download needed):
 *   sd15: CLIP-L, 12 layers x 768, MLP 3072 (cond_stage_model.transformer.text_model.*)
 *   sdxl: CLIP-L + OpenCLIP bigG, 32 layers x 1280, MLP 5120, projection 1280
 *         (conditioner.embedders.{0,1}.*)
 * then loads each with pd_ctx_load and times pd_encode_text. Reports load time, the
 * median encode time of several runs, GFLOP/s of the encoder matmuls and peak RSS.
 *
 * usage: bench_text [--vocab DIR] [--runs N] [--threads N] [--dir DIR] [sd15|sdxl ...]
 * The vocabulary defaults to ../shared/golden/models/tiny-sd15/tokenizer.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/half.h"
#include "phonediffusion.h"

typedef struct enc_spec {
    const char *prefix;   /* key prefix */
    int openclip;         /* naming */
    int layers, d, ff, proj;
} enc_spec;

typedef struct wtensor {
    char name[200];
    int ndim;
    int64_t shape[2];
    int kind;   /* 0 random, 1 ones, 2 zeros */
} wtensor;

typedef struct tlist {
    wtensor *t;
    int n, cap;
} tlist;

static void add(tlist *l, int kind, int ndim, int64_t s0, int64_t s1, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void add(tlist *l, int kind, int ndim, int64_t s0, int64_t s1, const char *fmt, ...) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->t = realloc(l->t, (size_t)l->cap * sizeof *l->t);
        if (!l->t) abort();
    }
    wtensor *w = &l->t[l->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->name, sizeof w->name, fmt, ap);
    va_end(ap);
    w->ndim = ndim;
    w->shape[0] = s0;
    w->shape[1] = s1;
    w->kind = kind;
}

static void add_encoder(tlist *l, const enc_spec *e) {
    const char *p = e->prefix;
    int d = e->d, ff = e->ff;
    if (!e->openclip) {
        add(l, 0, 2, 49408, d, "%stext_model.embeddings.token_embedding.weight", p);
        add(l, 0, 2, 77, d, "%stext_model.embeddings.position_embedding.weight", p);
        for (int i = 0; i < e->layers; i++) {
            const char *q[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
            for (int j = 0; j < 4; j++) {
                add(l, 0, 2, d, d, "%stext_model.encoder.layers.%d.self_attn.%s.weight", p, i, q[j]);
                add(l, 2, 1, d, 0, "%stext_model.encoder.layers.%d.self_attn.%s.bias", p, i, q[j]);
            }
            add(l, 1, 1, d, 0, "%stext_model.encoder.layers.%d.layer_norm1.weight", p, i);
            add(l, 2, 1, d, 0, "%stext_model.encoder.layers.%d.layer_norm1.bias", p, i);
            add(l, 1, 1, d, 0, "%stext_model.encoder.layers.%d.layer_norm2.weight", p, i);
            add(l, 2, 1, d, 0, "%stext_model.encoder.layers.%d.layer_norm2.bias", p, i);
            add(l, 0, 2, ff, d, "%stext_model.encoder.layers.%d.mlp.fc1.weight", p, i);
            add(l, 2, 1, ff, 0, "%stext_model.encoder.layers.%d.mlp.fc1.bias", p, i);
            add(l, 0, 2, d, ff, "%stext_model.encoder.layers.%d.mlp.fc2.weight", p, i);
            add(l, 2, 1, d, 0, "%stext_model.encoder.layers.%d.mlp.fc2.bias", p, i);
        }
        add(l, 1, 1, d, 0, "%stext_model.final_layer_norm.weight", p);
        add(l, 2, 1, d, 0, "%stext_model.final_layer_norm.bias", p);
    } else {
        add(l, 0, 2, 49408, d, "%stoken_embedding.weight", p);
        add(l, 0, 2, 77, d, "%spositional_embedding", p);
        for (int i = 0; i < e->layers; i++) {
            add(l, 0, 2, 3 * d, d, "%stransformer.resblocks.%d.attn.in_proj_weight", p, i);
            add(l, 2, 1, 3 * d, 0, "%stransformer.resblocks.%d.attn.in_proj_bias", p, i);
            add(l, 0, 2, d, d, "%stransformer.resblocks.%d.attn.out_proj.weight", p, i);
            add(l, 2, 1, d, 0, "%stransformer.resblocks.%d.attn.out_proj.bias", p, i);
            add(l, 1, 1, d, 0, "%stransformer.resblocks.%d.ln_1.weight", p, i);
            add(l, 2, 1, d, 0, "%stransformer.resblocks.%d.ln_1.bias", p, i);
            add(l, 1, 1, d, 0, "%stransformer.resblocks.%d.ln_2.weight", p, i);
            add(l, 2, 1, d, 0, "%stransformer.resblocks.%d.ln_2.bias", p, i);
            add(l, 0, 2, ff, d, "%stransformer.resblocks.%d.mlp.c_fc.weight", p, i);
            add(l, 2, 1, ff, 0, "%stransformer.resblocks.%d.mlp.c_fc.bias", p, i);
            add(l, 0, 2, d, ff, "%stransformer.resblocks.%d.mlp.c_proj.weight", p, i);
            add(l, 2, 1, d, 0, "%stransformer.resblocks.%d.mlp.c_proj.bias", p, i);
        }
        add(l, 1, 1, d, 0, "%sln_final.weight", p);
        add(l, 2, 1, d, 0, "%sln_final.bias", p);
        add(l, 0, 2, d, e->proj, "%stext_projection", p);
    }
}

static int64_t numel(const wtensor *w) { return w->ndim == 1 ? w->shape[0] : w->shape[0] * w->shape[1]; }

static int write_model(const char *path, const tlist *l) {
    size_t cap = 1 << 22, len = 0;
    char *h = malloc(cap);
    if (!h) return -1;
    len += (size_t)snprintf(h + len, cap - len, "{");
    uint64_t off = 0;
    for (int i = 0; i < l->n; i++) {
        const wtensor *w = &l->t[i];
        uint64_t nb = (uint64_t)numel(w) * 2;
        if (w->ndim == 1)
            len += (size_t)snprintf(h + len, cap - len, "%s\"%s\":{\"dtype\":\"F16\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}",
                                    i ? "," : "", w->name, (long long)w->shape[0], (unsigned long long)off,
                                    (unsigned long long)(off + nb));
        else
            len += (size_t)snprintf(h + len, cap - len, "%s\"%s\":{\"dtype\":\"F16\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}",
                                    i ? "," : "", w->name, (long long)w->shape[0], (long long)w->shape[1],
                                    (unsigned long long)off, (unsigned long long)(off + nb));
        off += nb;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    while (len % 8) h[len++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(h);
        return -1;
    }
    uint64_t hl = len;
    fwrite(&hl, 8, 1, f);
    fwrite(h, 1, len, f);
    free(h);
    uint32_t state = 12345;
    enum { CHUNK = 1 << 16 };
    static uint16_t buf[CHUNK];
    const uint16_t one = pd_f32_to_f16(1.0f);
    for (int i = 0; i < l->n; i++) {
        const wtensor *w = &l->t[i];
        int64_t n = numel(w);
        /* uniform(-a, a) with a = 1/sqrt(fan_in): keeps activations O(1) */
        float a = 1.0f / sqrtf((float)(w->ndim == 2 ? w->shape[1] : 1));
        if (strstr(w->name, "embedding")) a = 0.02f;
        for (int64_t j = 0; j < n; j += CHUNK) {
            int c = (int)(n - j < CHUNK ? n - j : CHUNK);
            for (int k = 0; k < c; k++) {
                state = state * 1664525u + 1013904223u;
                float r = ((float)(state >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * a;
                buf[k] = w->kind == 0 ? pd_f32_to_f16(r) : w->kind == 1 ? one : 0;
            }
            if (fwrite(buf, 2, (size_t)c, f) != (size_t)c) {
                fclose(f);
                return -1;
            }
        }
    }
    return fclose(f) == 0 ? 0 : -1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Matmul FLOPs of one 77-token pass through an encoder (+ attention). */
static double encoder_flops(const enc_spec *e) {
    double t = 77, d = e->d, ff = e->ff;
    double per_layer = 2 * t * (4 * d * d + 2 * d * ff) + 2 * 2 * t * t * d;
    return e->layers * per_layer + (e->proj ? 2 * d * e->proj : 0);
}

int main(int argc, char **argv) {
    const char *vocab = PD_SOURCE_DIR "/../shared/golden/models/tiny-sd15/tokenizer";
    const char *dir = "/tmp";
    int runs = 5, threads = 0;
    const char *which[4];
    int n_which = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--vocab") && i + 1 < argc) vocab = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if ((!strcmp(argv[i], "sd15") || !strcmp(argv[i], "sdxl")) && n_which < 4) which[n_which++] = argv[i];
        else {
            fprintf(stderr, "usage: bench_text [--vocab DIR] [--runs N] [--threads N] [--dir DIR] [sd15|sdxl ...]\n");
            return 2;
        }
    }
    if (runs < 1) runs = 1;
    if (!n_which) {
        which[0] = "sd15";
        which[1] = "sdxl";
        n_which = 2;
    }
    const enc_spec clip_l_sd15 = {"cond_stage_model.transformer.", 0, 12, 768, 3072, 0};
    const enc_spec clip_l_sdxl = {"conditioner.embedders.0.transformer.", 0, 12, 768, 3072, 0};
    const enc_spec bigg = {"conditioner.embedders.1.model.", 1, 32, 1280, 5120, 1280};
    for (int w = 0; w < n_which; w++) {
        bool xl = !strcmp(which[w], "sdxl");
        tlist l = {0};
        double flops = 0;
        if (xl) {
            add_encoder(&l, &clip_l_sdxl);
            add_encoder(&l, &bigg);
            flops = encoder_flops(&clip_l_sdxl) + encoder_flops(&bigg);
        } else {
            add_encoder(&l, &clip_l_sd15);
            flops = encoder_flops(&clip_l_sd15);
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/pd_bench_text_%s.safetensors", dir, which[w]);
        double t0 = now_s();
        if (write_model(path, &l) != 0) {
            fprintf(stderr, "cannot write %s\n", path);
            return 1;
        }
        double t_write = now_s() - t0;
        pd_ctx_params cp = pd_ctx_default_params();
        cp.vocab_path = vocab;
        cp.n_threads = threads;
        pd_ctx *ctx = NULL;
        pd_error err = {0};
        t0 = now_s();
        if (pd_ctx_load(path, &cp, &ctx, &err) != PD_OK) {
            fprintf(stderr, "load: %s\n", err.msg);
            return 1;
        }
        double t_load = now_s() - t0;
        pd_text_params tp = pd_text_default_params();
        tp.prompt = "a photograph of an astronaut riding a horse on the moon, highly detailed, 8k";
        double *times = calloc((size_t)runs, sizeof *times);
        int dim = 0;
        for (int r = 0; r < runs + 1; r++) {   /* first run = warmup */
            pd_cond *c = NULL;
            t0 = now_s();
            if (pd_encode_text(ctx, &tp, &c, &err) != PD_OK) {
                fprintf(stderr, "encode: %s\n", err.msg);
                return 1;
            }
            double dt = now_s() - t0;
            if (r > 0) times[r - 1] = dt;
            dim = c->dim;
            pd_cond_free(c);
        }
        qsort(times, (size_t)runs, sizeof *times, cmp_d);
        double med = times[runs / 2];
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("%-5s text encoder(s): %d tensors, context dim %d | write %.1f s | load %.2f s | encode "
               "median %.1f ms (min %.1f, %d runs) = %.1f GFLOP/s | peak RSS %.0f MiB\n",
               which[w], l.n, dim, t_write, t_load, med * 1e3, times[0] * 1e3, runs, flops / med * 1e-9,
               (double)ru.ru_maxrss / 1024.0);
        free(times);
        pd_ctx_free(ctx);
        free(l.t);
        remove(path);
    }
    return 0;
}
