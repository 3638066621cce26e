/*
 * phonediffusion.h - the public C API of PhoneDiffusion, the only public header.
 *
 * PhoneDiffusion runs Stable Diffusion (SD 1.x/2.x, SDXL) on the CPU of the device it
 * runs on. This header exposes:
 *   - status codes and a caller-owned error struct (no global error state);
 *   - a context (pd_ctx) holding one loaded model: read-only after load and shareable
 *     between threads;
 *   - model inspection (pd_inspect) that reports what a file or folder holds
 *     without requiring it to be complete;
 *   - the tokenizer and the text encoders (prompt -> conditioning).
 *
 * Conventions (whisper.cpp / SQLite shape):
 *   - *_default_params() return structs by value; the caller overrides fields.
 *   - Every function that can fail returns pd_status and, if err is not NULL, writes a
 *     message naming the file / tensor / value at fault into *err.
 *   - Callbacks live in the params structs, each with its own user pointer.
 *   - Memory returned to the caller is freed with the matching *_free function.
 */
#ifndef PHONEDIFFUSION_H
#define PHONEDIFFUSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PD_VERSION_STRING "0.1.0"

typedef enum pd_status {
    PD_OK = 0,
    PD_ERR_INVALID_ARG,  /* a parameter is out of range or NULL where required */
    PD_ERR_IO,           /* a file cannot be opened, read, mapped or written */
    PD_ERR_FORMAT,       /* a file is malformed (bad header, bad JSON, bad offsets) */
    PD_ERR_UNSUPPORTED,  /* a well-formed input this version cannot handle */
    PD_ERR_MISSING,      /* a required tensor, config or vocabulary is absent */
    PD_ERR_SHAPE,        /* a tensor has the wrong shape or dtype */
    PD_ERR_OOM,          /* an allocation failed */
    PD_ERR_CANCELLED,    /* a progress callback returned false */
    PD_ERR_INTERNAL      /* a bug: please report it */
} pd_status;

/* Caller-owned error detail. msg is always NUL-terminated. */
typedef struct pd_error {
    pd_status code;
    char msg[256];
} pd_error;

/* A short constant description of a status code ("invalid argument", ...). */
const char *pd_status_string(pd_status st);

/* Library version, e.g. "0.1.0". */
const char *pd_version(void);

typedef enum pd_log_level {
    PD_LOG_DEBUG = 0,
    PD_LOG_INFO = 1,
    PD_LOG_WARN = 2,
    PD_LOG_ERROR = 3
} pd_log_level;

typedef void (*pd_log_fn)(pd_log_level level, const char *msg, void *user);

/* Progress report. stage is a constant string: "load" (one unit per component), "text",
 * "denoise" (one unit per sampler step), "decode" (one unit, or one per tile of a tiled
 * VAE decode). */
typedef struct pd_progress {
    const char *stage;
    int step;     /* 0-based index of the unit just finished, or -1 at stage start */
    int n_steps;  /* units in this stage */
    double elapsed_s;
    /* "denoise" steps of a run with pd_gen_params.preview: the current estimate of the
     * final image, 8-bit RGB [preview_height][preview_width][3], valid during the call
     * only; NULL otherwise. */
    const uint8_t *preview;
    int preview_width, preview_height;
} pd_progress;

/* Return false to cancel the operation: it then fails with PD_ERR_CANCELLED and
 * leaves every object it was given usable. */
typedef bool (*pd_progress_fn)(const pd_progress *p, void *user);

/* ---------------------------------------------------------------------------------
 * CPU / kernels
 * ------------------------------------------------------------------------------- */

typedef enum pd_isa {
    PD_ISA_AUTO = 0,  /* best the CPU and OS allow (env PD_ISA overrides) */
    PD_ISA_SCALAR,
    PD_ISA_AVX2,      /* AVX2 + FMA + F16C */
    PD_ISA_AVX512,    /* AVX-512 F/BW/DQ/VL */
    PD_ISA_AMX,       /* AVX-512 + AMX-BF16 */
    PD_ISA_NEON
} pd_isa;

/* Name of an ISA level ("scalar", "avx2", ...). */
const char *pd_isa_name(pd_isa isa);

/* Arithmetic of the matrix products (linear layers, convolutions, attention). */
typedef enum pd_precision {
    PD_PRECISION_AUTO = 0,  /* bf16 where it is faster than fp32 (AMX-BF16), else fp32 */
    PD_PRECISION_FP32,      /* fp32 throughout: matches the reference implementation
                               (diffusers on CPU) to ~1e-5 */
    PD_PRECISION_BF16       /* bf16 inputs with fp32 accumulation (weights packed as bf16:
                               half the memory); emulated, slowly, on CPUs without bf16 */
} pd_precision;

/* "auto", "fp32", "bf16". */
const char *pd_precision_name(pd_precision p);

/* Writes a one-line description of the CPU features found into buf
 * (e.g. "avx2 fma f16c avx512f ... amx-bf16 (os: amx granted)"). */
void pd_cpu_describe(char *buf, size_t buf_size);

/* ---------------------------------------------------------------------------------
 * Model inspection
 * ------------------------------------------------------------------------------- */

typedef enum pd_family {
    PD_FAMILY_UNKNOWN = 0,
    PD_FAMILY_SD1,
    PD_FAMILY_SD2,
    PD_FAMILY_SDXL
} pd_family;

typedef enum pd_layout {
    PD_LAYOUT_UNKNOWN = 0,
    PD_LAYOUT_LDM_SINGLE_FILE,   /* original key names in one .safetensors */
    PD_LAYOUT_DIFFUSERS_FOLDER   /* model_index.json + unet/ vae/ text_encoder/ ... */
} pd_layout;

const char *pd_family_name(pd_family f);
const char *pd_layout_name(pd_layout l);

/* One component of a model ("unet", "vae", "text_encoder", "text_encoder_2"). */
typedef struct pd_component_info {
    const char *name;
    bool present;         /* any of its tensors were found */
    int n_tensors;        /* tensors found for this component */
    int64_t n_params;     /* elements in those tensors */
    int64_t n_bytes;      /* bytes in those tensors as stored */
    char dtypes[48];      /* e.g. "F16" or "F16,F32" */
    int n_missing;        /* expected tensors not found (only for components with a key map) */
    char arch[96];        /* a short architecture summary, e.g. "CLIP-L 12x768 quick_gelu" */
} pd_component_info;

typedef struct pd_model_info {
    pd_family family;
    pd_layout layout;
    char path[512];
    int n_files;               /* safetensors files opened */
    int n_tensors;             /* all tensors in those files */
    int64_t n_bytes;           /* tensor bytes in those files */
    int n_components;
    pd_component_info components[6];
    /* Tensor names expected by the key map but absent ("unet.conv_in.weight" style,
     * with the checkpoint's own name). Owned by the info, freed by pd_model_info_free. */
    int n_missing;
    char **missing;
    /* Tensors present in the files that no component claims. */
    int n_unexpected;
    char **unexpected;
    /* Where the vocabulary was found, or "" if none. */
    char vocab_path[512];
} pd_model_info;

/* Inspects a single-file checkpoint or a diffusers folder. Succeeds for any
 * well-formed safetensors input, even an incomplete or unknown model (check
 * info->family and info->n_missing); fails on unreadable or malformed files.
 * *out is allocated by the library; free it with pd_model_info_free. */
pd_status pd_inspect(const char *path, pd_model_info **out, pd_error *err);
void pd_model_info_free(pd_model_info *info);

/* ---------------------------------------------------------------------------------
 * Context: a loaded model
 * ------------------------------------------------------------------------------- */

typedef struct pd_ctx pd_ctx;

/* How model weights are held in memory. The quantized types are ggml's (blocks of 32
 * values with an fp16 scale; q8_0 8.5 bits per weight, q4_0 4.5, q4_1 5); the kernels
 * dequantize them block by block as they run. Small tensors (biases, norms), the first
 * and last convolutions (<= 8 channels) and the token embedding stay in the compute
 * format. */
typedef enum pd_weight_type {
    PD_WEIGHT_AUTO = 0,   /* as stored (GGUF q8_0/q4_0/q4_1 stay quantized) */
    PD_WEIGHT_F32,        /* everything in the compute format (no quantization) */
    PD_WEIGHT_F16,        /* as F32 at load (there are no fp16 kernels); `convert`
                             writes f16 */
    PD_WEIGHT_BF16,       /* no quantization, bf16 arithmetic (PD_PRECISION_BF16) */
    PD_WEIGHT_Q8_0,
    PD_WEIGHT_Q4_0,
    PD_WEIGHT_Q4_1
} pd_weight_type;

/* "auto", "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1". */
const char *pd_weight_type_name(pd_weight_type t);
/* Parses one of those names; false when unknown. */
bool pd_weight_type_from_name(const char *s, pd_weight_type *out);

typedef struct pd_ctx_params {
    int n_threads;             /* 0 = number of online CPUs */
    pd_isa isa;                /* PD_ISA_AUTO unless forcing a kernel level */
    pd_precision precision;    /* PD_PRECISION_AUTO: bf16 where the CPU runs it faster
                                  than fp32 (AMX; AVX512-BF16 on AMD), else fp32 */
    const char *vocab_path;    /* CLIP vocabulary: a tokenizer/ folder, vocab.json,
                                  or bpe_simple_vocab_16e6.txt[.gz]; NULL = search
                                  next to the model */
    const char *config_path;   /* model config JSON; NULL = <model>.config.json or the
                                  diffusers config.json files, else family defaults */
    const char *unet_path;     /* a UNet to use instead of the model's own (a diffusers
                                  unet folder or a single file holding a UNet, e.g. an
                                  LCM-distilled UNet); NULL = the model's */
    const char *taesd_path;    /* a TAESD / TAESDXL tiny autoencoder (a diffusers
                                  AutoencoderTiny folder or its safetensors file, or the
                                  madebyollin taesd_decoder/_encoder files or their
                                  folder): it then decodes the final images (and encodes
                                  img2img inputs when it has an encoder) instead of the
                                  model's VAE, and makes previews; NULL = none */
    pd_weight_type weight_type; /* how weights are held in memory (see pd_weight_type);
                                  PD_WEIGHT_AUTO = as stored: GGUF-quantized tensors stay
                                  quantized, the rest in the compute format */
    int64_t max_memory;        /* bytes the engine may use (peak resident set, estimated
                                  from the model and the image size); 0 = no limit. The
                                  engine then releases the text encoders after encoding,
                                  loads the VAE only to decode, releases the UNet's weights
                                  while decoding (the next run loads them again) and tiles
                                  the VAE as needed, in that order, and fails with a clear
                                  message when even that cannot fit */
    bool low_memory;           /* always load the text encoders per prompt and the VAE per
                                  decode, and release the UNet to decode (what max_memory
                                  does when the budget needs it): less memory, load time
                                  per image */
    bool text_only;            /* load only the tokenizer and text encoders (for
                                  pd_tokenize / pd_encode_text; pd_generate then fails) */
    pd_log_fn log;             /* NULL = silent */
    void *log_user;
    pd_log_level log_level;    /* minimum level passed to log */
    pd_progress_fn progress;   /* load progress; may cancel. NULL = none */
    void *progress_user;
} pd_ctx_params;

pd_ctx_params pd_ctx_default_params(void);

/* Loads a model (single .safetensors file or diffusers folder). On failure *out is
 * NULL and err says which file/tensor/value is at fault. */
pd_status pd_ctx_load(const char *path, const pd_ctx_params *params, pd_ctx **out,
                      pd_error *err);
void pd_ctx_free(pd_ctx *ctx);

/* Family and layout detected at load. */
pd_family pd_ctx_family(const pd_ctx *ctx);

/* The kernels the context runs: ISA level and precision (never AUTO). */
pd_isa pd_ctx_isa(const pd_ctx *ctx);
pd_precision pd_ctx_precision(const pd_ctx *ctx);

/* ---------------------------------------------------------------------------------
 * Text: tokenizer and text encoders
 * ------------------------------------------------------------------------------- */

#define PD_CLIP_CONTEXT 77   /* tokens per chunk: BOS + 75 + EOS */

/* Tokenizes text with the model's CLIP BPE vocabulary (no prompt-weight parsing, no
 * BOS/EOS/padding). Writes up to max_ids ids and returns the total count in *n_ids
 * (which may exceed max_ids). */
pd_status pd_tokenize(const pd_ctx *ctx, const char *text, int32_t *ids, int max_ids,
                      int *n_ids, pd_error *err);

typedef struct pd_text_params {
    const char *prompt;
    int clip_skip;          /* AUTOMATIC1111 convention: 1 = last layer (default),
                               2 = penultimate, ... (diffusers clip_skip = this - 1) */
    bool prompt_weights;    /* parse "(word:1.2)", "[word]", "\(", BREAK (A1111);
                               default true. false = the text is tokenized as is */
    bool zero_if_empty;     /* SDXL negative prompt: an empty prompt gives all-zero
                               conditioning (diffusers force_zeros_for_empty_prompt) */
    pd_progress_fn progress;
    void *progress_user;
} pd_text_params;

pd_text_params pd_text_default_params(void);

/* Conditioning for one prompt, as the UNet consumes it. */
typedef struct pd_cond {
    int n_tokens;      /* 77 x number of chunks */
    int dim;           /* context width: 768 (SD1), 1024 (SD2), 2048 (SDXL) */
    float *context;    /* [n_tokens, dim] */
    int pooled_dim;    /* SDXL: projection width (1280); 0 otherwise */
    float *pooled;     /* [pooled_dim] or NULL */
    int n_chunks;
    int32_t *ids;      /* [n_chunks * 77] token ids fed to the first encoder */
} pd_cond;

/* Encodes a prompt with the model's text encoder(s), following the family's
 * conventions (SD1: last layer + final LN; SDXL: penultimate layers of both
 * encoders concatenated, pooled from the second). *out is allocated by the
 * library; free with pd_cond_free. */
pd_status pd_encode_text(const pd_ctx *ctx, const pd_text_params *params, pd_cond **out,
                         pd_error *err);
void pd_cond_free(pd_cond *cond);

/* ---------------------------------------------------------------------------------
 * Image generation (txt2img, img2img)
 * ------------------------------------------------------------------------------- */

typedef enum pd_vae_tiling_mode {
    PD_VAE_TILING_AUTO = 0,   /* tiled above a size threshold (SDXL at 1024x1024 and up) */
    PD_VAE_TILING_OFF,
    PD_VAE_TILING_ON
} pd_vae_tiling_mode;

typedef struct pd_gen_params {
    const char *prompt;
    const char *negative_prompt;  /* NULL or "" = none (SD1/SD2 encode "", SDXL uses zeros) */
    int width, height;            /* multiples of 8; 0 = the family's native size */
    int steps;                    /* sampler steps (default 20) */
    float cfg_scale;              /* classifier-free guidance; 1 skips the uncond pass */
    const char *sampler;          /* "euler", "euler_a" (default), "heun", "dpm++2m",
                                     "ddim", "lcm" */
    const char *scheduler;        /* "default" or "karras" */
    const char *timestep_spacing; /* "leading", "linspace" or "trailing"; NULL = the
                                     model's scheduler config ("leading" for SD 1.x/2.x/
                                     SDXL; SD-Turbo/SDXL-Turbo folders ship "trailing",
                                     which their single files cannot tell) */
    int64_t seed;                 /* < 0: random (the seed used is in the result) */
    int batch_count;              /* images made one after another, seeds seed, seed+1... */
    int clip_skip;                /* 1 = last layer (A1111 convention) */
    bool prompt_weights;          /* A1111 (word:1.2) syntax; default true */
    /* img2img: an 8-bit RGB image [init_height][init_width][3]; NULL for txt2img. It
     * must have the output size (width/height 0 take it from the image). */
    const uint8_t *init_image;
    int init_width, init_height;
    float strength;               /* img2img denoising strength in (0, 1]; default 0.75 */
    /* SDXL size conditioning (the UNet's time ids), in pixels; 0 = the reference
     * pipeline's defaults: original and target size = the output size, crop (0, 0).
     * The negative pass uses the same values, as the reference does by default. */
    int original_width, original_height;
    int crop_left, crop_top;
    int target_width, target_height;
    pd_vae_tiling_mode vae_tiling; /* VAE decode in overlapping tiles blended at the seams:
                                     bounded memory at any size (the KL VAE; TAESD is
                                     never tiled) */
    bool preview;                 /* per denoise step, a preview image in pd_progress
                                     (TAESD decode of the denoised estimate; needs
                                     pd_ctx_params.taesd_path) */
    bool taesd_preview_only;      /* with a TAESD loaded: use it for previews only, and
                                     the model's own VAE for the image */
    pd_progress_fn progress;      /* per sampler step ("denoise") and stage; false cancels */
    void *progress_user;
} pd_gen_params;

pd_gen_params pd_gen_default_params(void);

typedef struct pd_image {
    int width, height;   /* 3 channels, 8-bit, rows top to bottom */
    uint8_t *rgb;        /* [height][width][3] */
    int64_t seed;
} pd_image;

typedef struct pd_timings {
    double text_s, denoise_s, decode_s, total_s;   /* total excludes model load */
    int unet_evals;
    double unet_load_s;   /* loading the UNet's weights again (in total): a memory plan that
                             releases them to decode makes the next run reload them */
} pd_timings;

typedef struct pd_result {
    int n_images;
    pd_image *images;
    pd_timings timings;
} pd_result;

/* Generates batch_count images. The context is only read (several threads may call
 * this at once on one context). On cancel the partial result is discarded and the
 * context stays usable. Free the result with pd_result_free. */
pd_status pd_generate(const pd_ctx *ctx, const pd_gen_params *params, pd_result **out,
                      pd_error *err);
void pd_result_free(pd_result *r);

/* ---- converting checkpoints ---------------------------------------------------- */

typedef struct pd_convert_params {
    pd_weight_type weight_type;  /* q8_0 (default; AUTO means q8_0), q4_0, q4_1, f16, bf16, f32 */
    bool overwrite;              /* replace an existing output file (default: refuse) */
} pd_convert_params;

pd_convert_params pd_convert_default_params(void);

/* Writes the tensors of a single-file checkpoint (.safetensors or .gguf) to a GGUF file,
 * names unchanged, quantizing the tensors stable-diffusion.cpp quantizes (2-D or more,
 * not biases, rows a multiple of 32 long); files interchange both ways. The output
 * appears only when complete (written to a temporary name, then linked into place). */
pd_status pd_convert(const char *in_path, const char *out_path, const pd_convert_params *params,
                     pd_error *err);

#ifdef __cplusplus
}
#endif

#endif /* PHONEDIFFUSION_H */
