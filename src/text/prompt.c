/*
 * prompt.c - AUTOMATIC1111 attention syntax and 77-token chunking (contract in
 * prompt.h). References: modules/prompt_parser.py parse_prompt_attention (v1.6+,
 * with `:\s*([+-]?[.\d]+)\s*\)`) and modules/sd_hijack_clip.py tokenize_line
 * (comma_padding_backtrack = 20, chunk_length = 75), with diffusers' EOS placement.
 *
 * Parsing runs A1111's regex alternation by hand over code points (the prompt is
 * decoded once; span texts are copied from the original bytes, so invalid UTF-8
 * passes through to the tokenizer unchanged):
 *   \( \) \[ \] \\  -> the escaped character, weight 1.0
 *   \ (alone)       -> an empty entry (the backslash disappears, as in A1111)
 *   ( [             -> push the current entry count
 *   :<num>)         -> with an open '(' multiply its range by float(num)
 *   ) ]             -> with an open bracket multiply its range by 1.1 or 1/1.1
 *   anything else   -> text, split by \s*\bBREAK\b\s* into parts with a BREAK marker
 *                      (text "BREAK", weight -1) between them
 * Unclosed '(' then '[' multiply to the end (outermost first), an empty result is
 * [("", 1)], and adjacent entries with equal weights merge. Weights are doubles
 * multiplied in A1111's order, so they are bit-identical to Python's.
 *
 * Traps (all replicated on purpose):
 *  - multiply_range also scales BREAK markers: inside brackets a marker's weight is
 *    no longer -1 and A1111 then tokenizes it as the word "break" with that weight.
 *    So is_break is decided after all multiplications and merging: text == "BREAK"
 *    and weight == -1.
 *  - \b and \s are Python `re` (Unicode) classes: \w = str.isalnum() or '_',
 *    \s = str.isspace(); \d = Unicode decimal digits, which float() accepts.
 *  - ":1.5)" without an open '(' is plain text; a number float() rejects ("1.2.3",
 *    ".") would make A1111 raise: here the whole match is plain text instead.
 *  - the BREAK split works on each text run alone, so "(BREAK)" has a marker at the
 *    run's start; the parser itself is O(entries x open brackets), as in A1111
 *    (a 100 KB "(a(a(a..." prompt takes about 0.4 s).
 *
 * Conventions: BREAK spans keep A1111's weight -1. max_chunks <= 0 means no limit.
 * Not handled here (A1111 resolves them before this step): prompt editing
 * [a:b:when], alternation [a|b], AND, textual-inversion embeddings; such text is
 * parsed as plain attention syntax.
 */
#include "text/prompt.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/unicode.h"

#define COMMA_BACKTRACK 20

/* ---- parsing ------------------------------------------------------------------- */

typedef struct entry {
    size_t end;      /* text is out[previous entry's end .. end) */
    double weight;
} entry;

typedef struct parser {
    const char *src;
    const uint32_t *cp;   /* decoded prompt */
    const size_t *off;    /* byte offset of each code point, off[n] = byte length */
    size_t n;
    char *out;            /* concatenated entry texts */
    size_t out_len, out_cap;
    entry *e;
    size_t n_e, cap_e;
    size_t *round, *square;
    size_t n_round, n_square, cap_round, cap_square;
} parser;


static bool add_entry(parser *ps, const char *text, size_t len, double weight) {
    if (!pd_grow((void **)&ps->out, &ps->out_cap, ps->out_len + len, 1) ||
        !pd_grow((void **)&ps->e, &ps->cap_e, ps->n_e + 1, sizeof(entry)))
        return false;
    if (len) memcpy(ps->out + ps->out_len, text, len);
    ps->out_len += len;
    ps->e[ps->n_e].end = ps->out_len;
    ps->e[ps->n_e].weight = weight;
    ps->n_e++;
    return true;
}

static void multiply_range(parser *ps, size_t start, double m) {
    for (size_t p = start; p < ps->n_e; p++) ps->e[p].weight *= m;
}

static bool push_pos(size_t **stack, size_t *n, size_t *cap, size_t v) {
    if (!pd_grow((void **)stack, cap, *n + 1, sizeof(size_t))) return false;
    (*stack)[(*n)++] = v;
    return true;
}

static bool is_word(uint32_t c) { return c == '_' || (pd_uni_flags(c) & PD_UNI_ALNUM); }
static bool is_space(uint32_t c) { return (pd_uni_flags(c) & PD_UNI_PYSPACE) != 0; }

/* Bytes of code points [a, b). */
static bool add_cps(parser *ps, size_t a, size_t b, double weight) {
    return add_entry(ps, ps->src + ps->off[a], ps->off[b] - ps->off[a], weight);
}

/* Plain text [a, b): re.split(r"\s*\bBREAK\b\s*") with markers between the parts.
 * \b is evaluated inside the run only (the run is its own string in A1111). */
static bool plain_text(parser *ps, size_t a, size_t b) {
    const uint32_t *c = ps->cp;
    size_t start = a;
    for (size_t i = a; i + 5 <= b; i++) {
        if (c[i] != 'B' || c[i + 1] != 'R' || c[i + 2] != 'E' || c[i + 3] != 'A' || c[i + 4] != 'K')
            continue;
        if (i > a && is_word(c[i - 1])) continue;
        if (i + 5 < b && is_word(c[i + 5])) continue;
        size_t ms = i, me = i + 5;
        while (ms > start && is_space(c[ms - 1])) ms--;
        while (me < b && is_space(c[me])) me++;
        if (!add_cps(ps, start, ms, 1.0) || !add_entry(ps, "BREAK", 5, -1.0)) return false;
        start = me;
        i = me - 1;
    }
    return add_cps(ps, start, b, 1.0);
}

/* Python float() of a [+-]?[.\d]+ match: valid with at most one '.' and a digit.
 * The text is rewritten as "<sign><digits>e-<fraction digits>" (Unicode digits as
 * ASCII) so that strtod rounds it correctly without reading the locale's decimal
 * point (localeconv is neither thread-safe nor wanted in a library). */
static bool parse_weight(const uint32_t *c, size_t a, size_t b, double *out) {
    char stack[96];
    char *buf = stack;
    size_t n = 0, frac = 0;
    int dots = 0, digits = 0;
    for (size_t i = a; i < b; i++) {
        dots += c[i] == '.';
        digits += c[i] != '.' && c[i] != '+' && c[i] != '-';
    }
    if (dots > 1 || digits == 0) return false;
    size_t cap = (b - a) + 32;
    if (cap > sizeof stack) {
        buf = malloc(cap);
        if (!buf) return false;
    }
    bool after_dot = false;
    for (size_t i = a; i < b; i++) {
        if (c[i] == '+' || c[i] == '-') {
            buf[n++] = (char)c[i];
        } else if (c[i] == '.') {
            after_dot = true;
        } else {
            buf[n++] = (char)('0' + pd_uni_decimal_value(c[i]));
            frac += after_dot;
        }
    }
    n += (size_t)snprintf(buf + n, cap - n, "e-%zu", frac);
    char *end = NULL;
    *out = strtod(buf, &end);
    bool ok = end == buf + n;
    if (buf != stack) free(buf);
    return ok;
}

/* Matches :\s*([+-]?[.\d]+)\s*\) at c[p] == ':'. Returns the end (after ')') or 0,
 * and the number's code point range. */
static size_t match_weight(const parser *ps, size_t p, size_t *na, size_t *nb) {
    const uint32_t *c = ps->cp;
    size_t q = p + 1, n = ps->n;
    while (q < n && is_space(c[q])) q++;
    *na = q;
    if (q < n && (c[q] == '+' || c[q] == '-')) q++;
    size_t digits_start = q;
    while (q < n && (c[q] == '.' || (pd_uni_flags(c[q]) & PD_UNI_DECIMAL))) q++;
    if (q == digits_start) return 0;
    *nb = q;
    while (q < n && is_space(c[q])) q++;
    if (q >= n || c[q] != ')') return 0;
    return q + 1;
}

static bool is_special(uint32_t c) {
    return c == '\\' || c == '(' || c == ')' || c == '[' || c == ']' || c == ':';
}

static bool parse_all(parser *ps) {
    const uint32_t *c = ps->cp;
    size_t n = ps->n, i = 0;
    const double round_mult = 1.1, square_mult = 1 / 1.1;
    while (i < n) {
        uint32_t ch = c[i];
        bool ok = true;
        if (ch == '\\') {
            if (i + 1 < n && (c[i + 1] == '(' || c[i + 1] == ')' || c[i + 1] == '[' ||
                              c[i + 1] == ']' || c[i + 1] == '\\')) {
                ok = add_cps(ps, i + 1, i + 2, 1.0);
                i += 2;
            } else {
                ok = add_entry(ps, "", 0, 1.0);
                i++;
            }
        } else if (ch == '(') {
            ok = push_pos(&ps->round, &ps->n_round, &ps->cap_round, ps->n_e);
            i++;
        } else if (ch == '[') {
            ok = push_pos(&ps->square, &ps->n_square, &ps->cap_square, ps->n_e);
            i++;
        } else if (ch == ':') {
            size_t na = 0, nb = 0, end = match_weight(ps, i, &na, &nb);
            double w = 0;
            if (end && ps->n_round > 0 && parse_weight(c, na, nb, &w)) {
                multiply_range(ps, ps->round[--ps->n_round], w);
                i = end;
            } else if (end) {
                ok = plain_text(ps, i, end);
                i = end;
            } else {
                ok = plain_text(ps, i, i + 1);
                i++;
            }
        } else if (ch == ')' && ps->n_round > 0) {
            multiply_range(ps, ps->round[--ps->n_round], round_mult);
            i++;
        } else if (ch == ']' && ps->n_square > 0) {
            multiply_range(ps, ps->square[--ps->n_square], square_mult);
            i++;
        } else if (ch == ')' || ch == ']') {
            ok = plain_text(ps, i, i + 1);
            i++;
        } else {
            size_t j = i + 1;
            while (j < n && !is_special(c[j])) j++;
            ok = plain_text(ps, i, j);
            i = j;
        }
        if (!ok) return false;
    }
    for (size_t k = 0; k < ps->n_round; k++) multiply_range(ps, ps->round[k], round_mult);
    for (size_t k = 0; k < ps->n_square; k++) multiply_range(ps, ps->square[k], square_mult);
    if (ps->n_e == 0 && !add_entry(ps, "", 0, 1.0)) return false;
    return true;
}

static void parser_free(parser *ps) {
    free((void *)ps->cp);
    free((void *)ps->off);
    free(ps->out);
    free(ps->e);
    free(ps->round);
    free(ps->square);
}

pd_status pd_prompt_parse(const char *prompt, size_t len, pd_arena *arena, pd_prompt_span **spans,
                          int *n_spans, pd_error *err) {
    parser ps;
    memset(&ps, 0, sizeof ps);
    PD_ASSERT(arena && spans && n_spans && (prompt || len == 0));
    *spans = NULL;
    *n_spans = 0;
    pd_status st = PD_OK;
    uint32_t *cp = NULL;
    size_t *off = NULL;
    if (len >= SIZE_MAX / sizeof(size_t) - 1 || len > (size_t)1 << 30) goto oom;
    cp = malloc((len + 1) * sizeof(uint32_t));
    off = malloc((len + 1) * sizeof(size_t));
    ps.cp = cp;
    ps.off = off;
    if (!cp || !off) goto oom;
    ps.src = prompt;
    for (size_t i = 0; i < len;) {
        off[ps.n] = i;
        i += pd_utf8_decode_one((const unsigned char *)prompt + i, len - i, &cp[ps.n]);
        ps.n++;
    }
    off[ps.n] = len;
    if (!parse_all(&ps)) goto oom;

    /* merge runs of identical weights (== on doubles, as in Python) */
    size_t m = 0;
    for (size_t k = 0; k < ps.n_e; k++) {
        if (m > 0 && ps.e[m - 1].weight == ps.e[k].weight) ps.e[m - 1].end = ps.e[k].end;
        else ps.e[m++] = ps.e[k];
    }
    if (m > (size_t)INT32_MAX) goto oom;
    pd_prompt_span *sp = pd_arena_alloc(arena, m * sizeof(pd_prompt_span));
    char *text = pd_arena_alloc(arena, ps.out_len + m);
    if (!sp || !text) goto oom;
    size_t begin = 0, o = 0;
    for (size_t k = 0; k < m; k++) {
        size_t tl = ps.e[k].end - begin;
        if (tl) memcpy(text + o, ps.out + begin, tl);
        text[o + tl] = '\0';
        sp[k].text = text + o;
        sp[k].len = tl;
        sp[k].weight = ps.e[k].weight;
        sp[k].is_break = tl == 5 && memcmp(text + o, "BREAK", 5) == 0 && ps.e[k].weight == -1.0;
        o += tl + 1;
        begin = ps.e[k].end;
    }
    *spans = sp;
    *n_spans = (int)m;
    goto done;
oom:
    st = pd_error_set(err, PD_ERR_OOM, "out of memory parsing a prompt of %zu bytes", len);
done:
    parser_free(&ps);
    return st;
}

/* ---- chunking ------------------------------------------------------------------ */

typedef struct chunker {
    int32_t tokens[PD_CHUNK_TOKENS];
    float mults[PD_CHUNK_TOKENS];
    int n;                 /* tokens in the current chunk */
    int last_comma;        /* index in the current chunk, -1 when none */
    int32_t *ids;          /* finished chunks */
    float *weights;
    size_t n_chunks, cap_ids, cap_w;
    int32_t bos, eos, pad;
} chunker;

/* A1111 next_chunk: [BOS] + tokens + [EOS] + pad, weights 1 outside the tokens. */
static bool next_chunk(chunker *ck) {
    size_t need = (ck->n_chunks + 1) * PD_CHUNK_LEN;
    if (!pd_grow((void **)&ck->ids, &ck->cap_ids, need, sizeof(int32_t)) ||
        !pd_grow((void **)&ck->weights, &ck->cap_w, need, sizeof(float)))
        return false;
    int32_t *ids = ck->ids + ck->n_chunks * PD_CHUNK_LEN;
    float *w = ck->weights + ck->n_chunks * PD_CHUNK_LEN;
    ids[0] = ck->bos;
    w[0] = 1.0f;
    for (int k = 0; k < ck->n; k++) {
        ids[1 + k] = ck->tokens[k];
        w[1 + k] = ck->mults[k];
    }
    ids[1 + ck->n] = ck->eos;
    w[1 + ck->n] = 1.0f;
    for (int k = ck->n + 2; k < PD_CHUNK_LEN; k++) {
        ids[k] = ck->pad;
        w[k] = 1.0f;
    }
    ck->n_chunks++;
    ck->n = 0;
    ck->last_comma = -1;
    return true;
}

/* double -> float without relying on out-of-range conversion (C leaves it undefined
 * without Annex F): beyond FLT_MAX gives infinity, as IEEE rounding would. */
static float to_float(double w) {
    if (w > FLT_MAX) return w >= 0x1.ffffffp127 ? INFINITY : FLT_MAX;
    if (w < -FLT_MAX) return w <= -0x1.ffffffp127 ? -INFINITY : -FLT_MAX;
    return (float)w;
}

/* One token of tokenize_line's inner loop. */
static bool add_token(chunker *ck, int32_t token, float weight, int32_t comma) {
    if (token == comma) {
        ck->last_comma = ck->n;
    } else if (ck->n == PD_CHUNK_TOKENS && ck->last_comma != -1 &&
               ck->n - ck->last_comma <= COMMA_BACKTRACK) {
        int at = ck->last_comma + 1, moved = ck->n - at;
        int32_t reloc[PD_CHUNK_TOKENS];
        float reloc_w[PD_CHUNK_TOKENS];
        memcpy(reloc, ck->tokens + at, (size_t)moved * sizeof(int32_t));
        memcpy(reloc_w, ck->mults + at, (size_t)moved * sizeof(float));
        ck->n = at;
        if (!next_chunk(ck)) return false;
        memcpy(ck->tokens, reloc, (size_t)moved * sizeof(int32_t));
        memcpy(ck->mults, reloc_w, (size_t)moved * sizeof(float));
        ck->n = moved;
    }
    if (ck->n == PD_CHUNK_TOKENS && !next_chunk(ck)) return false;
    ck->tokens[ck->n] = token;
    ck->mults[ck->n] = weight;
    ck->n++;
    return true;
}

pd_status pd_prompt_to_chunks(const pd_tokenizer *tok, const char *prompt, bool parse_weights,
                              int32_t pad_id, int max_chunks, pd_arena *arena,
                              pd_token_chunks *out, pd_error *err) {
    PD_ASSERT(tok && arena && out);
    memset(out, 0, sizeof *out);
    chunker ck;
    memset(&ck, 0, sizeof ck);
    ck.last_comma = -1;
    ck.bos = pd_tokenizer_bos(tok);
    ck.eos = pd_tokenizer_eos(tok);
    ck.pad = pad_id;
    int32_t comma = pd_tokenizer_comma(tok);
    if (comma < 0) comma = INT32_MIN;   /* never equal to a token */
    const char *text = prompt ? prompt : "";
    size_t len = strlen(text);
    pd_arena_mark mark = pd_arena_get_mark(arena);
    pd_prompt_span one = {text, len, 1.0, false};
    pd_prompt_span *spans = &one;
    int n_spans = 1;
    long long n_tokens = 0;
    pd_status st = PD_OK;
    if (parse_weights) {
        st = pd_prompt_parse(text, len, arena, &spans, &n_spans, err);
        if (st != PD_OK) goto done;
    }
    for (int s = 0; s < n_spans; s++) {
        if (spans[s].is_break) {
            if (!next_chunk(&ck)) goto oom;
            continue;
        }
        int32_t *ids = NULL;
        int n_ids = 0;
        st = pd_tokenizer_encode(tok, spans[s].text, spans[s].len, arena, &ids, &n_ids, err);
        if (st != PD_OK) goto done;
        for (int k = 0; k < n_ids; k++)
            if (!add_token(&ck, ids[k], to_float(spans[s].weight), comma)) goto oom;
        n_tokens += n_ids;
    }
    if (ck.n > 0 || ck.n_chunks == 0) {
        if (!next_chunk(&ck)) goto oom;
    }
    if (max_chunks > 0 && ck.n_chunks > (size_t)max_chunks) {
        st = pd_error_set(err, PD_ERR_INVALID_ARG,
                          "prompt has %lld tokens in %zu chunks of %d; at most %d chunks (%d "
                          "tokens) are allowed",
                          n_tokens, ck.n_chunks, PD_CHUNK_TOKENS, max_chunks,
                          max_chunks * PD_CHUNK_TOKENS);
        goto done;
    }
    if (ck.n_chunks > (size_t)INT32_MAX / PD_CHUNK_LEN || n_tokens > INT32_MAX) goto oom;
    pd_arena_reset(arena, mark);   /* drop the spans and per-span ids */
    size_t total = ck.n_chunks * PD_CHUNK_LEN;
    out->ids = pd_arena_alloc(arena, total * sizeof(int32_t));
    out->weights = pd_arena_alloc(arena, total * sizeof(float));
    if (!out->ids || !out->weights) goto oom;
    memcpy(out->ids, ck.ids, total * sizeof(int32_t));
    memcpy(out->weights, ck.weights, total * sizeof(float));
    out->n_chunks = (int)ck.n_chunks;
    out->n_tokens = (int)n_tokens;
    out->all_unit_weights = true;
    for (size_t k = 0; k < total; k++)
        if (ck.weights[k] != 1.0f) out->all_unit_weights = false;
    goto done;
oom:
    st = pd_error_set(err, PD_ERR_OOM, "out of memory tokenizing a prompt of %zu bytes", len);
done:
    if (st != PD_OK) {
        memset(out, 0, sizeof *out);
        pd_arena_reset(arena, mark);
    }
    free(ck.ids);
    free(ck.weights);
    return st;
}
