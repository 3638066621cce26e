/*
 * ckpt_keys.h - checkpoint key names of each model's tensors, by table.
 *
 * Models never build key strings themselves: they ask for a pd_*_key in a naming and
 * get the component-relative name (which pd_model_find prefixes). The same tables
 * enumerate what a component should contain, for missing/unexpected reports.
 */
#ifndef PD_IO_CKPT_KEYS_H
#define PD_IO_CKPT_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "io/model.h"

/* CLIP text encoder tensors. Per-layer keys take the layer index. */
typedef enum pd_clip_key {
    PD_CLIP_TOKEN_EMB = 0,
    PD_CLIP_POS_EMB,
    PD_CLIP_FINAL_LN_W,
    PD_CLIP_FINAL_LN_B,
    PD_CLIP_PROJ,          /* text projection (bigG); optional */
    PD_CLIP_FIRST_LAYER_KEY,
    PD_CLIP_LN1_W = PD_CLIP_FIRST_LAYER_KEY,
    PD_CLIP_LN1_B,
    PD_CLIP_LN2_W,
    PD_CLIP_LN2_B,
    PD_CLIP_Q_W,           /* HF: separate q/k/v */
    PD_CLIP_Q_B,
    PD_CLIP_K_W,
    PD_CLIP_K_B,
    PD_CLIP_V_W,
    PD_CLIP_V_B,
    PD_CLIP_QKV_W,         /* OpenCLIP: fused in_proj [3d, d] */
    PD_CLIP_QKV_B,
    PD_CLIP_OUT_W,
    PD_CLIP_OUT_B,
    PD_CLIP_FC1_W,
    PD_CLIP_FC1_B,
    PD_CLIP_FC2_W,
    PD_CLIP_FC2_B,
    PD_CLIP_KEY_COUNT
} pd_clip_key;

/* Writes the component-relative name of key (layer ignored for global keys) into buf.
 * Returns false when the naming has no such tensor (e.g. PD_CLIP_Q_W in OpenCLIP). */
bool pd_clip_key_name(pd_text_naming naming, pd_clip_key key, int layer, char *buf,
                      size_t buf_size);

/* True for keys a model may lack (the projection). */
bool pd_clip_key_optional(pd_clip_key key);

/* True for tensors a CLIP component may hold that the engine does not use
 * (position_ids, logit_scale). */
bool pd_clip_key_ignored(pd_text_naming naming, const char *rel_name);

/* Number of transformer layers present (consecutive from 0). */
int pd_clip_count_layers(const pd_model_src *m, pd_component c);

/* Finds a CLIP tensor, also trying HF names without "text_model." (old files). */
const pd_st_tensor *pd_clip_find(const pd_model_src *m, pd_component c, pd_clip_key key,
                                 int layer, char *name_buf, size_t name_size);

/* Enumerates the expected tensor names of component c (full checkpoint names) into a
 * malloc'd array of malloc'd strings. Returns the count, or -1 when the component's
 * structure cannot be read (then nothing is allocated). */
int pd_keys_expected(const pd_model_src *m, pd_component c, char ***names);

/* Tensors outside every component that a checkpoint commonly carries and the engine
 * ignores on purpose (DDPM schedule buffers, EMA copies). */
bool pd_keys_ignored_extra(const char *full_name);

#endif
