/*
 * memory.c - weight estimates from the model's tensors and stage peaks (memory.h).
 */
#include "pipeline/memory.h"

#include <stdio.h>
#include <string.h>

static bool is_token_embedding(const char *name) {
    return strstr(name, "token_embedding") != NULL || strstr(name, "embed_tokens") != NULL;
}

static size_t tensor_bytes(const pd_st_tensor *t, const pd_kernels *kt) {
    if (is_token_embedding(t->name)) return 0;
    if (pd_dtype_is_quant(t->dtype)) return t->nbytes;
    size_t numel = (size_t)t->numel;
    if (t->ndim < 2) return numel * sizeof(float);
    int64_t n = t->shape[0], k = numel / (size_t)(n ? n : 1);
    int cin = t->ndim == 4 ? (int)t->shape[1] : 0;
    if (pd_dtype_is_quant(kt->wquant) && n <= INT32_MAX && k <= INT32_MAX &&
        pd_quant_eligible((int)n, (int)k, cin)) {
        size_t kq = ((size_t)k + 31) / 32 * 32;
        return pd_dtype_bytes(kt->wquant, (size_t)n * kq);
    }
    /* F16 Linear weights an fp32 table keeps as stored. Not exact either way by a few MiB:
     * 1x1-conv projections, kept the same way, count 4 bytes; position embeddings and
     * OpenCLIP's transposed text projection, widened to fp32, count 2 (inside the
     * overhead) */
    if (t->ndim == 2 && n <= INT32_MAX && k <= INT32_MAX && pd_kernels_half_rows(kt, t->dtype, (int)n, (int)k))
        return numel * 2;
    return numel * (kt->wtype == PD_DTYPE_BF16 ? 2 : 4);
}

static bool vae_encoder_tensor(const char *name) {
    return strstr(name, "encoder.") || (strstr(name, "quant_conv") && !strstr(name, "post_quant_conv"));
}

size_t pd_mem_weights(const pd_model_src *m, pd_component c, const pd_kernels *kt) {
    return pd_mem_weights_part(m, c, kt, false);
}

size_t pd_mem_weights_part(const pd_model_src *m, pd_component c, const pd_kernels *kt, bool decoder_only) {
    if (!m || !m->comp[c].present) return 0;
    size_t total = 0;
    const pd_comp_src *cs = &m->comp[c];
    for (int f = 0; f < cs->n_files; f++) {
        const pd_st_file *sf = cs->files[f];
        for (int i = 0; i < sf->n_tensors; i++)
            if (pd_model_owner(m, sf, sf->tensors[i].name) == c &&
                !(decoder_only && vae_encoder_tensor(sf->tensors[i].name)))
                total += tensor_bytes(&sf->tensors[i], kt);
    }
    return total;
}

void pd_mem_plan_peaks(pd_mem_plan *p) {
    size_t resident = PD_MEM_OVERHEAD + p->w_taesd + (p->stage_text ? 0 : p->w_text) +
                      (p->stage_vae ? 0 : p->w_vae);
    /* The text stage counts the UNet: a context's first run encodes with it resident. */
    p->peak_text = resident + p->w_unet + p->a_text + (p->stage_text ? p->w_text : 0);
    p->peak_denoise = resident + p->w_unet + p->a_unet;
    p->peak_decode = resident + (p->stage_unet ? 0 : p->w_unet) + p->a_dec +
                     (p->stage_vae ? (p->w_vae_dec ? p->w_vae_dec : p->w_vae) : 0);
}

size_t pd_mem_plan_peak(const pd_mem_plan *p) {
    size_t m = p->peak_text > p->peak_denoise ? p->peak_text : p->peak_denoise;
    return m > p->peak_decode ? m : p->peak_decode;
}

void pd_mem_str(char *buf, size_t n, size_t bytes) {
    if (bytes >= ((size_t)1 << 30)) snprintf(buf, n, "%.2f GiB", (double)bytes / (double)(1 << 30));
    else snprintf(buf, n, "%.0f MiB", (double)bytes / (double)(1 << 20));
}

bool pd_mem_plan_fit(pd_mem_plan *p, size_t budget, const size_t *a_dec_tiled, int n_tiled) {
    pd_mem_plan_peaks(p);
    if (pd_mem_plan_peak(p) <= budget) return true;
    if (p->w_text) {
        p->stage_text = true;
        pd_mem_plan_peaks(p);
        if (pd_mem_plan_peak(p) <= budget) return true;
    }
    if (p->w_vae) {
        p->stage_vae = true;
        pd_mem_plan_peaks(p);
        if (pd_mem_plan_peak(p) <= budget) return true;
    }
    if (p->w_unet && p->peak_decode > PD_MAX(p->peak_text, p->peak_denoise)) {
        p->stage_unet = true;
        pd_mem_plan_peaks(p);
        if (pd_mem_plan_peak(p) <= budget) return true;
    }
    for (int i = 0; i < n_tiled; i++) {
        if (a_dec_tiled[i] >= p->a_dec) continue;
        p->a_dec = a_dec_tiled[i];
        pd_mem_plan_peaks(p);
        if (pd_mem_plan_peak(p) <= budget) return true;
    }
    return false;
}
