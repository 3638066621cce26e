/*
 * convert.c - pd_convert: a checkpoint file (safetensors or GGUF) to a GGUF file with
 * quantized or re-typed weights, tensor by tensor (memory stays at one tensor).
 *
 * Interchange with stable-diffusion.cpp (`sd -M convert`): names are left as stored (the
 * LDM single-file names both tools read), and a tensor is quantized only when
 * stable-diffusion.cpp would quantize it: 2-D or more, not a bias, and a row length
 * (the innermost dimension, ggml's ne[0]) that is a multiple of 32 - except the few
 * PhoneDiffusion keeps at full precision (kept_full: embeddings, text projection;
 * together about 1 % of the weights). Convolutions (rows of 3 or 1 taps) therefore stay
 * in a float type; PhoneDiffusion quantizes them at load to the file's type
 * (pd_weight_type AUTO), in its own k order. Files written by stable-diffusion.cpp, with
 * those tensors quantized too, load as they are. Tensors a quantized target leaves alone
 * keep their stored type; the f16/bf16/f32 targets convert every 2-D+ float tensor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "io/gguf.h"
#include "io/tensor_file.h"
#include "kernels/quant/quant.h"
#include "phonediffusion.h"

pd_convert_params pd_convert_default_params(void) {
    pd_convert_params p;
    memset(&p, 0, sizeof p);
    p.weight_type = PD_WEIGHT_Q8_0;
    return p;
}

static bool is_float(pd_dtype d) { return d == PD_DTYPE_F32 || d == PD_DTYPE_F16 || d == PD_DTYPE_BF16; }

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Tensors PhoneDiffusion keeps at full precision under any weight type (the time and
 * added-condition embeddings, the token and position embeddings, the text projection):
 * written unquantized so that loading the file gives what quantizing at load gives. */
static bool kept_full(const char *name) {
    return strstr(name, "time_embed") || strstr(name, "label_emb") || strstr(name, "embedding") ||
           strstr(name, "text_projection");
}

/* The type tensor t is written as for target type `want`. */
static pd_dtype out_type(const pd_st_tensor *t, pd_dtype want) {
    const bool fl = is_float(t->dtype), q = pd_dtype_is_quant(t->dtype);
    if (!fl && !q) return t->dtype;   /* integer tensors (position ids) as stored */
    if (t->ndim < 2) return t->dtype;
    if (pd_dtype_is_quant(want)) {
        if (t->shape[t->ndim - 1] % 32 == 0 && !ends_with(t->name, ".bias") && !kept_full(t->name)) return want;
        return t->dtype;   /* as stored (an f32 source stays f32: loading gives the same values) */
    }
    return want;
}

typedef struct fill_job {
    const pd_st_tensor *t;
    pd_dtype to;
    float *row;   /* one row in fp32 */
    size_t row_len;
} fill_job;

/* Writes t converted to job->to, row by row (a row = the innermost dimension). */
static pd_status fill(void *user, void *dst, size_t nbytes, pd_error *err) {
    const fill_job *j = user;
    const pd_st_tensor *t = j->t;
    if (t->dtype == j->to) {
        if (nbytes != t->nbytes) return pd_error_set(err, PD_ERR_INTERNAL, "'%s': size mismatch", t->name);
        if (nbytes) memcpy(dst, t->data, nbytes);
        return PD_OK;
    }
    const size_t len = j->row_len, rows = len ? (size_t)t->numel / len : 0;
    const size_t in_row = pd_dtype_bytes(t->dtype, len), out_row = pd_dtype_bytes(j->to, len);
    if (rows * out_row != nbytes) return pd_error_set(err, PD_ERR_INTERNAL, "'%s': size mismatch", t->name);
    for (size_t r = 0; r < rows; r++) {
        const unsigned char *src = (const unsigned char *)t->data + r * in_row;
        unsigned char *out = (unsigned char *)dst + r * out_row;
        if (pd_dtype_is_quant(t->dtype)) pd_dequantize_row(t->dtype, src, j->row, len);
        else pd_to_f32(j->row, src, t->dtype, len);
        if (pd_dtype_is_quant(j->to)) pd_quantize_row(j->to, j->row, out, len);
        else if (j->to == PD_DTYPE_F16) pd_f32_to_f16_row((uint16_t *)(void *)out, j->row, len);
        else if (j->to == PD_DTYPE_BF16) pd_f32_to_bf16_row((uint16_t *)(void *)out, j->row, len);
        else memcpy(out, j->row, len * sizeof(float));
    }
    return PD_OK;
}

pd_status pd_convert(const char *in_path, const char *out_path, const pd_convert_params *params,
                     pd_error *err) {
    pd_convert_params defaults = pd_convert_default_params();
    const pd_convert_params *p = params ? params : &defaults;
    if (!in_path || !out_path) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_convert: NULL path");
    pd_dtype want;
    switch (p->weight_type) {
    case PD_WEIGHT_AUTO:
    case PD_WEIGHT_Q8_0: want = PD_DTYPE_Q8_0; break;
    case PD_WEIGHT_Q4_0: want = PD_DTYPE_Q4_0; break;
    case PD_WEIGHT_Q4_1: want = PD_DTYPE_Q4_1; break;
    case PD_WEIGHT_F16: want = PD_DTYPE_F16; break;
    case PD_WEIGHT_BF16: want = PD_DTYPE_BF16; break;
    case PD_WEIGHT_F32: want = PD_DTYPE_F32; break;
    default: return pd_error_set(err, PD_ERR_INVALID_ARG, "weight type %d is not a pd_weight_type", (int)p->weight_type);
    }
    pd_st_file *f = NULL;
    pd_status st = pd_tensor_file_open(in_path, &f, err);
    if (st != PD_OK) return st;
    pd_gguf_writer *w = pd_gguf_writer_new();
    fill_job *jobs = calloc((size_t)(f->n_tensors ? f->n_tensors : 1), sizeof *jobs);
    size_t max_row = 1;
    if (!w || !jobs) {
        st = pd_error_set(err, PD_ERR_OOM, "out of memory");
        goto done;
    }
    for (int i = 0; i < f->n_tensors; i++) {
        const pd_st_tensor *t = &f->tensors[i];
        size_t len = t->ndim ? (size_t)t->shape[t->ndim - 1] : 1;
        if (len > max_row) max_row = len;
    }
    float *row = malloc(max_row * sizeof(float));
    if (!row) {
        st = pd_error_set(err, PD_ERR_OOM, "out of memory");
        goto done;
    }
    st = pd_gguf_add_kv_str(w, "general.name", pd_path_basename(in_path), err);
    if (st == PD_OK && pd_dtype_is_quant(want)) st = pd_gguf_add_kv_u32(w, "general.quantization_version", 2, err);
    if (st == PD_OK) st = pd_gguf_add_kv_str(w, "phonediffusion.weight_type", pd_weight_type_name(p->weight_type == PD_WEIGHT_AUTO ? PD_WEIGHT_Q8_0 : p->weight_type), err);
    for (int i = 0; st == PD_OK && i < f->n_tensors; i++) {
        const pd_st_tensor *t = &f->tensors[i];
        jobs[i] = (fill_job){t, out_type(t, want), row, t->ndim ? (size_t)t->shape[t->ndim - 1] : 1};
        if (t->ndim > PD_GGUF_MAX_DIMS) {
            st = pd_error_set(err, PD_ERR_UNSUPPORTED, "'%s': tensor '%s' has %d dimensions (GGUF holds at most %d)",
                              in_path, t->name, t->ndim, PD_GGUF_MAX_DIMS);
            break;
        }
        int64_t one = 1;
        st = pd_gguf_add_tensor_fill(w, t->name, jobs[i].to, t->ndim ? t->ndim : 1, t->ndim ? t->shape : &one,
                                     fill, &jobs[i], err);
    }
    if (st == PD_OK) st = pd_gguf_write(w, out_path, p->overwrite, err);
    free(row);
done:
    free(jobs);
    pd_gguf_writer_free(w);
    pd_st_close(f);
    return st;
}
