/*
 * clip_tokenizer.h - the CLIP byte-level BPE tokenizer (openai/CLIP simple_tokenizer,
 * without ftfy - what Hugging Face's CLIPTokenizer produces when ftfy is absent).
 *
 * Text pipeline (must match the golden ids exactly):
 *   html.unescape twice, strip; collapse runs of whitespace (Python `\s`, Unicode) to
 *   one space; Python str.lower() (full Unicode lowercasing incl. special casing such
 *   as U+0130 -> "i\u0307" and final sigma); split with the CLIP pattern
 *   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 *   (case-insensitive); map each piece's UTF-8 bytes through bytes_to_unicode; BPE
 *   with the merge ranks, the last symbol carrying "</w>"; look up ids in the vocab.
 * Invalid UTF-8 input bytes decode as U+FFFD.
 *
 * Vocabulary sources: a diffusers tokenizer/ folder (vocab.json + merges.txt), a
 * vocab.json path (merges.txt beside it), or openai's bpe_simple_vocab_16e6.txt or
 * .txt.gz (the vocab is then built as CLIP does: 256 byte symbols, the same with
 * "</w>", the first 48894 merges joined, then <|startoftext|>, <|endoftext|>).
 *
 * A loaded tokenizer is read-only and may be used from several threads at once.
 */
#ifndef PD_TEXT_CLIP_TOKENIZER_H
#define PD_TEXT_CLIP_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/error.h"

typedef struct pd_tokenizer pd_tokenizer;

/* path: a folder holding vocab.json + merges.txt (or bpe_simple_vocab_16e6.txt[.gz]),
 * a vocab.json file, or a bpe_simple_vocab_16e6.txt[.gz] file. Errors name the file
 * and, for malformed content, the line or key. */
pd_status pd_tokenizer_load(const char *path, pd_tokenizer **out, pd_error *err);
void pd_tokenizer_free(pd_tokenizer *tok);   /* NULL-tolerant */

/* Looks for a vocabulary for the model at model_path: for a folder, <folder>/tokenizer/
 * then the folder itself; for a file, <stem>.vocab/, <stem>/tokenizer/ (a diffusers
 * folder of the same name), then <dir>/tokenizer/, <dir>/vocab.json,
 * <dir>/bpe_simple_vocab_16e6.txt[.gz] (stem = the path without .safetensors).
 * Writes the first hit into found and returns true; false when none exists. When
 * not found, fills tried (if not NULL) with a short list of the places looked at. */
bool pd_tokenizer_locate(const char *model_path, char *found, size_t found_size,
                         char *tried, size_t tried_size);

int32_t pd_tokenizer_bos(const pd_tokenizer *tok);   /* <|startoftext|>, 49406 */
int32_t pd_tokenizer_eos(const pd_tokenizer *tok);   /* <|endoftext|>, 49407 */
int32_t pd_tokenizer_comma(const pd_tokenizer *tok); /* ",</w>", 267; -1 if absent */
int pd_tokenizer_vocab_size(const pd_tokenizer *tok);
/* Token string of an id (NULL when out of range). */
const char *pd_tokenizer_token(const pd_tokenizer *tok, int32_t id);

/* Tokenizes text[0..len) (UTF-8) into BPE ids, without BOS/EOS/padding. The ids array
 * is allocated in arena. Never fails on any input bytes except PD_ERR_OOM. */
pd_status pd_tokenizer_encode(const pd_tokenizer *tok, const char *text, size_t len,
                              pd_arena *arena, int32_t **ids, int *n_ids, pd_error *err);

#endif
