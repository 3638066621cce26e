/*
 * fuzz_prompt.c - libFuzzer target for the prompt parser, the CLIP tokenizer and the
 * chunker: arbitrary bytes (invalid UTF-8, NULs, entities, brackets, BREAKs) must
 * never crash, leak or break the output invariants.
 *
 * The golden CLIP vocabulary ($PD_GOLDEN_DIR or PD_GOLDEN_DIR_DEFAULT, then
 * models/tiny-sd15/tokenizer) is loaded once; without it only pd_prompt_parse runs.
 * Invariants (a violation traps): at least one span, span texts NUL-terminated,
 * is_break only on "BREAK" with weight -1; ids inside the vocabulary; every chunk
 * is [BOS] tokens [EOS] pad..., at least one chunk, all_unit_weights consistent,
 * n_tokens equal to the tokens pd_tokenizer_encode gives when weights are not
 * parsed, and max_chunks below the chunk count is refused.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "text/clip_tokenizer.h"
#include "text/prompt.h"

#ifndef PD_GOLDEN_DIR_DEFAULT
#define PD_GOLDEN_DIR_DEFAULT "../shared/golden"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const pd_tokenizer *get_tokenizer(void) {
    static pd_tokenizer *tok;
    static bool tried;
    if (!tried) {
        tried = true;
        const char *dir = getenv("PD_GOLDEN_DIR");
        char path[4096];
        pd_error err = {0};
        snprintf(path, sizeof path, "%s/models/tiny-sd15/tokenizer",
                 dir && *dir ? dir : PD_GOLDEN_DIR_DEFAULT);
        if (pd_tokenizer_load(path, &tok, &err) != PD_OK) {
            fprintf(stderr, "fuzz_prompt: no vocabulary (%s); fuzzing the parser only\n", err.msg);
            tok = NULL;
        }
    }
    return tok;
}

static void require(bool cond) {
    if (!cond) __builtin_trap();
}

static void check_chunks(const pd_tokenizer *tok, const pd_token_chunks *c, int32_t pad) {
    int32_t bos = pd_tokenizer_bos(tok), eos = pd_tokenizer_eos(tok);
    int vocab = pd_tokenizer_vocab_size(tok);
    require(c->n_chunks >= 1 && c->ids && c->weights && c->n_tokens >= 0);
    bool unit = true;
    for (int k = 0; k < c->n_chunks; k++) {
        const int32_t *ids = c->ids + (size_t)k * PD_CHUNK_LEN;
        const float *w = c->weights + (size_t)k * PD_CHUNK_LEN;
        require(ids[0] == bos && w[0] == 1.0f);
        int e = PD_CHUNK_LEN - 1;   /* the EOS after the tokens */
        if (pad != eos)
            while (e > 1 && ids[e] == pad) e--;
        require(ids[e] == eos && w[e] == 1.0f && e >= 1);
        for (int i = 1; i < e; i++) require(ids[i] >= 0 && ids[i] < vocab);
        for (int i = e + 1; i < PD_CHUNK_LEN; i++) require(ids[i] == pad && w[i] == 1.0f);
        for (int i = 0; i < PD_CHUNK_LEN; i++) unit = unit && w[i] == 1.0f;
    }
    require(unit == c->all_unit_weights);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const pd_tokenizer *tok = get_tokenizer();
    const char *text = (const char *)data;
    pd_arena arena;
    pd_error err = {0};
    if (pd_arena_init(&arena, 0) != 0) return 0;

    pd_prompt_span *spans = NULL;
    int n_spans = 0;
    require(pd_prompt_parse(text, size, &arena, &spans, &n_spans, &err) == PD_OK);
    require(n_spans >= 1 && spans);
    for (int i = 0; i < n_spans; i++) {
        require(spans[i].text && spans[i].text[spans[i].len] == '\0');
        if (spans[i].is_break)
            require(spans[i].len == 5 && memcmp(spans[i].text, "BREAK", 5) == 0 &&
                    spans[i].weight == -1.0);
    }
    if (tok) {
        int32_t *ids = NULL;
        int n_ids = 0;
        require(pd_tokenizer_encode(tok, text, size, &arena, &ids, &n_ids, &err) == PD_OK);
        for (int i = 0; i < n_ids; i++) require(ids[i] >= 0 && ids[i] < pd_tokenizer_vocab_size(tok));
        char *z = malloc(size + 1);   /* the chunker takes a C string */
        if (z) {
            memcpy(z, data, size);
            z[size] = '\0';
            size_t zlen = strlen(z);
            int n_plain = n_ids;
            if (zlen != size)
                require(pd_tokenizer_encode(tok, z, zlen, &arena, &ids, &n_plain, &err) == PD_OK);
            for (int pw = 0; pw < 2; pw++) {
                for (int p = 0; p < 2; p++) {
                    int32_t pad = p ? 0 : pd_tokenizer_eos(tok);
                    pd_token_chunks c;
                    require(pd_prompt_to_chunks(tok, z, pw == 1, pad, 0, &arena, &c, &err) == PD_OK);
                    check_chunks(tok, &c, pad);
                    if (pw == 0) require(c.n_tokens == n_plain);
                    if (c.n_chunks > 1) {
                        pd_token_chunks d;
                        require(pd_prompt_to_chunks(tok, z, pw == 1, pad, c.n_chunks - 1, &arena,
                                                    &d, &err) == PD_ERR_INVALID_ARG);
                    }
                }
            }
            free(z);
        }
    }
    pd_arena_free(&arena);
    return 0;
}
