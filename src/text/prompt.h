/*
 * prompt.h - AUTOMATIC1111 prompt syntax and 77-token chunking.
 *
 * Parsing follows A1111's parse_prompt_attention (modules/prompt_parser.py):
 *   "(text)" multiplies weights inside by 1.1, "[text]" by 1/1.1, "(text:1.3)" by 1.3,
 *   "\(" "\)" "\[" "\]" "\\" are literal characters, unbalanced openers apply their
 *   multiplier to the rest of the prompt, unmatched closers are literal text, and the
 *   word BREAK (whitespace-delimited, upper case) ends the current chunk. Adjacent
 *   spans with equal weights are merged. Weights are computed in double precision.
 *
 * Chunking follows A1111's tokenize_line: tokens (with weights) fill chunks of 75;
 * when a chunk is full and a comma occurred within its last 20 tokens, the tokens
 * after that comma move to the next chunk. Each chunk becomes 77 ids:
 *   [BOS] + tokens + [EOS] + pad_id...   (diffusers placement: EOS right after the
 *   tokens, then padding), weights 1.0 for BOS/EOS/padding.
 * A prompt with at most 75 tokens and no BREAK gives exactly the diffusers ids.
 * An empty prompt gives one chunk [BOS, EOS, pad...].
 */
#ifndef PD_TEXT_PROMPT_H
#define PD_TEXT_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/error.h"
#include "text/clip_tokenizer.h"

#define PD_CHUNK_TOKENS 75
#define PD_CHUNK_LEN 77

typedef struct pd_prompt_span {
    const char *text;   /* unescaped text (NUL-terminated, in the arena) */
    size_t len;
    double weight;
    bool is_break;      /* a BREAK marker (text is "BREAK") */
} pd_prompt_span;

/* Parses A1111 attention syntax. Never fails except PD_ERR_OOM. */
pd_status pd_prompt_parse(const char *prompt, size_t len, pd_arena *arena,
                          pd_prompt_span **spans, int *n_spans, pd_error *err);

typedef struct pd_token_chunks {
    int n_chunks;
    int32_t *ids;      /* [n_chunks * 77] */
    float *weights;    /* [n_chunks * 77] */
    int n_tokens;      /* BPE tokens in the prompt (before chunking/padding) */
    bool all_unit_weights;  /* every weight is exactly 1.0 */
} pd_token_chunks;

/* Tokenizes prompt into 77-id chunks. parse_weights = false tokenizes the text as is
 * (no attention syntax, no BREAK). max_chunks bounds the output (PD_ERR_INVALID_ARG
 * naming the token count when exceeded). Arrays live in arena. */
pd_status pd_prompt_to_chunks(const pd_tokenizer *tok, const char *prompt,
                              bool parse_weights, int32_t pad_id, int max_chunks,
                              pd_arena *arena, pd_token_chunks *out, pd_error *err);

#endif
