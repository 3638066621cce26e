/*
 * json.h - a strict JSON (RFC 8259) parser into an arena-allocated tree.
 *
 * Every input is treated as hostile: the parser never reads past len, limits nesting
 * depth (PD_JSON_MAX_DEPTH), rejects invalid UTF-8 escapes, lone surrogates in
 * \u escapes, control characters in strings, trailing garbage, and numbers that are
 * not RFC 8259 numbers. Errors carry the byte offset. Strings are decoded to UTF-8
 * (NUL-terminated; `len` counts bytes and may include an embedded NUL from \u0000).
 * Duplicate keys are kept in order (pd_json_get returns the first); callers that must
 * reject duplicates use pd_json_has_duplicate_keys.
 *
 * Nodes of an array or object are stored contiguously (items[0..n)), so indexing
 * is O(1) and member lookup is a linear scan.
 */
#ifndef PD_BASE_JSON_H
#define PD_BASE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/error.h"

#define PD_JSON_MAX_DEPTH 64

typedef enum pd_json_type {
    PD_JSON_NULL = 0,
    PD_JSON_FALSE,
    PD_JSON_TRUE,
    PD_JSON_NUMBER,
    PD_JSON_STRING,
    PD_JSON_ARRAY,
    PD_JSON_OBJECT
} pd_json_type;

typedef struct pd_json pd_json;
struct pd_json {
    pd_json_type type;
    const char *key;     /* member name when inside an object, else NULL */
    size_t key_len;
    const char *str;     /* STRING: decoded value; NUMBER: the raw number text */
    size_t len;          /* STRING/NUMBER: bytes in str; ARRAY/OBJECT: item count */
    double num;          /* NUMBER: value as double (strtod of the raw text) */
    pd_json *items;      /* ARRAY/OBJECT: len contiguous children */
};

/* Parses text[0..len) (need not be NUL-terminated). The tree lives in arena. */
pd_status pd_json_parse(const char *text, size_t len, pd_arena *arena, const pd_json **out,
                        pd_error *err);

/* Like pd_json_parse, but also accepts the non-finite numbers NaN, Infinity and
 * -Infinity that Python's json module writes (diffusers saves "lambda_min_clipped":
 * -Infinity in DPM scheduler configs). For model config files only; safetensors
 * headers use the strict parser. */
pd_status pd_json_parse_config(const char *text, size_t len, pd_arena *arena,
                               const pd_json **out, pd_error *err);

/* Member of an object by key (first match), or NULL (also when v is not an object). */
const pd_json *pd_json_get(const pd_json *obj, const char *key);
/* Element i of an array, or NULL when out of range or not an array. */
const pd_json *pd_json_at(const pd_json *arr, size_t i);

/* True and *out set when v is a NUMBER holding an exact integer in int64 range
 * (no fraction, no exponent that makes it non-integral, no overflow). The exact
 * decimal value decides: "1e3" and "1.0" are integers, "1.5" and "1e400" are not. */
bool pd_json_as_int64(const pd_json *v, int64_t *out);
/* True when v is a NUMBER; *out = its value. */
bool pd_json_as_double(const pd_json *v, double *out);
/* The string value, or NULL when v is not a STRING. */
const char *pd_json_as_string(const pd_json *v);
/* True when v is true/false; *out = the value. */
bool pd_json_as_bool(const pd_json *v, bool *out);

/* True when an object directly holds two members with the same key. */
bool pd_json_has_duplicate_keys(const pd_json *obj);

/* Convenience lookups with defaults (also used when the key is absent or of
 * another type). */
int64_t pd_json_get_int(const pd_json *obj, const char *key, int64_t def);
double pd_json_get_double(const pd_json *obj, const char *key, double def);
const char *pd_json_get_string(const pd_json *obj, const char *key, const char *def);

#endif
