/*
 * memory.h - the memory plan: what each stage of a run keeps resident, estimated from
 * the model's tensors and the image size before anything is loaded or allocated, and
 * the strategy (--max-memory) that keeps the peak under a budget.
 *
 * Stages and what they hold (W = packed weights, A = activations):
 *   text:    W(resident) + W(text encoders, when staged) + A(text encoders)
 *   denoise: W(resident) + A(UNet pass, or the VAE encoder of img2img) + buffers
 *   decode:  W(resident) + A(decode) + buffers + W(VAE, when staged) + W(UNet, unless staged)
 * where W(resident) = TAESD, and the text encoders and VAE unless staged,
 * plus a fixed overhead (code, tokenizer, thread stacks, allocator slack). With the VAE
 * resident one arena serves both passes (max of the two, same peak); with the VAE
 * staged the run frees the UNet's arena before loading the VAE and its decode arena.
 *
 * Strategies, cheapest first: everything resident; text encoders loaded per encode and
 * released (+ their load time per prompt); the VAE also loaded per decode; the UNet's
 * weights released once a run has denoised, before it decodes (free for one run; the
 * next run on the context loads them again); and, per image size, tiled VAE decoding
 * (bounded activations, slower: 1.3x the decode time in 2x2 tiles at 512x512). The weight type is the user's
 * choice (pd_ctx_params.weight_type), never changed behind their back: when even the
 * last strategy does not fit, the error says what the smallest plan needs.
 *
 * Weight bytes per tensor: GGUF-quantized tensors as stored; tensors that
 * pd_quant_eligible() allows at the quantized weight type; the rest at the compute
 * format (4 bytes fp32, 2 bytes bf16; 1-D tensors fp32). The token embedding is read
 * row by row from the mapping and not counted.
 */
#ifndef PD_PIPELINE_MEMORY_H
#define PD_PIPELINE_MEMORY_H

#include <stdbool.h>
#include <stddef.h>

#include "io/model.h"
#include "kernels/kernels.h"

#define PD_MEM_OVERHEAD ((size_t)96 << 20)

typedef struct pd_mem_plan {
    size_t w_text, w_unet, w_vae, w_taesd;   /* packed weights */
    size_t w_vae_dec;                        /* the VAE decoder alone (what a staged decode loads;
                                                0: take w_vae) */
    size_t a_text;                           /* text encoder activations */
    size_t a_unet, a_dec;                    /* denoise and decode activations + buffers */
    bool stage_text, stage_vae;
    bool stage_unet;                         /* the UNet's weights are released before decoding */
    size_t peak_text, peak_denoise, peak_decode;   /* estimated stage peaks */
} pd_mem_plan;

/* Packed weight bytes of component c of m when packed for kt (kt->wtype, kt->wquant). */
size_t pd_mem_weights(const pd_model_src *m, pd_component c, const pd_kernels *kt);

/* As pd_mem_weights; decoder_only leaves out a VAE's encoder and quant_conv. */
size_t pd_mem_weights_part(const pd_model_src *m, pd_component c, const pd_kernels *kt, bool decoder_only);

/* Chooses the cheapest strategy whose peak fits budget, in order: as the plan's flags
 * are set (the caller may have set them already), + text encoders staged, + VAE staged,
 * + UNet released for the decode, + each decode size of a_dec_tiled[0..n_tiled) (tiled decodes, largest first; the plan's
 * a_dec takes the one chosen). Returns false, with the plan at the last strategy, when
 * none fits. */
bool pd_mem_plan_fit(pd_mem_plan *plan, size_t budget, const size_t *a_dec_tiled, int n_tiled);

/* Fills the stage peaks of plan for its staging flags. */
void pd_mem_plan_peaks(pd_mem_plan *plan);

/* The estimated peak of the plan: the largest stage peak. */
size_t pd_mem_plan_peak(const pd_mem_plan *plan);

/* Formats a byte count as "1.23 GiB" / "456 MiB". */
void pd_mem_str(char *buf, size_t n, size_t bytes);

#endif
