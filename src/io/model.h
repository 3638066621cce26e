/*
 * model.h - a checkpoint on disk: its files, layout, family and components.
 *
 * pd_model_open() accepts a single-file checkpoint (original LDM/sgm key names) or a
 * diffusers folder (model_index.json + unet/ vae/ text_encoder/ text_encoder_2/), opens
 * every safetensors file involved (validating each header), detects the layout and
 * the family (SD1.x / SD2.x / SDXL), and assigns each component a key prefix and the
 * files that hold it. Tensor lookups then go through pd_model_find(component, name)
 * with the component's own naming, so models never see layout differences.
 *
 * Configs: settings that tensor shapes cannot tell (attention heads, activation, pad
 * ids) come from, in order: params->config_path, <model>.config.json beside a single
 * file, the diffusers <component>/config.json files, else the family's known values
 * (applied by the model loaders). The JSON trees live in the model's arena.
 *
 * Detection order: key structure first (prefixes present), then configs, then tensor
 * widths; nothing depends on a particular model size.
 */
#ifndef PD_IO_MODEL_H
#define PD_IO_MODEL_H

#include <stdbool.h>

#include "base/arena.h"
#include "base/error.h"
#include "base/json.h"
#include "io/safetensors.h"

typedef enum pd_component {
    PD_COMP_UNET = 0,
    PD_COMP_VAE,
    PD_COMP_TEXT1,   /* CLIP-L (SD1, SDXL first encoder) or OpenCLIP ViT-H (SD2) */
    PD_COMP_TEXT2,   /* SDXL: OpenCLIP ViT-bigG */
    PD_COMP_COUNT
} pd_component;

/* How a text encoder names its tensors. */
typedef enum pd_text_naming {
    PD_TEXT_NAMING_NONE = 0,
    PD_TEXT_NAMING_HF,        /* transformers CLIPTextModel: embeddings.*, encoder.layers.N.* */
    PD_TEXT_NAMING_OPENCLIP   /* open_clip: token_embedding, transformer.resblocks.N.* */
} pd_text_naming;

#define PD_MODEL_MAX_FILES 16
#define PD_COMP_MAX_FILES 8

typedef struct pd_comp_src {
    bool present;
    char prefix[96];                  /* prepended to component-relative names */
    pd_text_naming naming;            /* text encoders only */
    int n_files;
    pd_st_file *files[PD_COMP_MAX_FILES];   /* borrowed from pd_model_src.files */
    const pd_json *config;            /* component config (diffusers config.json or the
                                         matching section of <model>.config.json), or NULL */
} pd_comp_src;

typedef struct pd_model_src {
    char path[512];
    pd_layout layout;
    pd_family family;
    int n_files;
    pd_st_file *files[PD_MODEL_MAX_FILES];
    pd_comp_src comp[PD_COMP_COUNT];
    const pd_json *config_root;   /* the whole <model>.config.json (or --config), or NULL */
    const pd_json *derived;       /* its "derived" section, or NULL */
    const pd_json *scheduler;     /* scheduler config: diffusers scheduler/scheduler_config.json
                                     or the "scheduler" section of the side config; NULL */
    char config_path[512];        /* where config_root came from, or "" */
    pd_arena arena;
} pd_model_src;

/* Opens path (file or folder). config_path may be NULL. */
pd_status pd_model_open(const char *path, const char *config_path, pd_model_src **out,
                        pd_error *err);
void pd_model_close(pd_model_src *m);   /* NULL-tolerant */

/* Opens one safetensors file that holds a single component's tensors under their own
 * names (no key prefix, no config), e.g. a lone TAESD encoder or decoder file: the
 * result has only component c, layout PD_LAYOUT_UNKNOWN and family unknown; names in
 * messages are the tensor names as stored. Free with pd_model_close. */
pd_status pd_model_open_component_file(const char *path, pd_component c, pd_model_src **out,
                                       pd_error *err);

/* Finds prefix + name in the component's files; NULL when absent. */
const pd_st_tensor *pd_model_find(const pd_model_src *m, pd_component c, const char *name);

/* Releases the resident pages of t (a tensor of one of m's files) once it has been
 * copied into packed form; reading it again stays valid. */
void pd_model_release(const pd_model_src *m, const pd_st_tensor *t);

/* pd_model_release for every tensor of component c: drops the pages that weights used in
 * place from the mapping (quantized GGUF rows) hold, when the component is released. */
void pd_model_release_component(const pd_model_src *m, pd_component c);

/* Full checkpoint name of a component-relative name (for messages). */
void pd_model_full_name(const pd_model_src *m, pd_component c, const char *name, char *buf,
                        size_t buf_size);

/* "unet", "vae", "text_encoder", "text_encoder_2". */
const char *pd_component_name(pd_component c);

/* Which component a full tensor name of file f belongs to (PD_COMP_COUNT: none). */
pd_component pd_model_owner(const pd_model_src *m, const pd_st_file *f, const char *name);

#endif
