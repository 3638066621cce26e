/*
 * clip_tokenizer.c - CLIP byte-level BPE (openai/CLIP simple_tokenizer.py without
 * ftfy; the contract is in clip_tokenizer.h).
 *
 * Pipeline over code points (UTF-32), mirroring the Python reference step by step:
 *   UTF-8 decode (errors="replace": one U+FFFD per maximal invalid subpart)
 *   -> html.unescape twice -> str.strip() -> regex \s+ -> ' ' -> str.strip()
 *   -> str.lower() -> CLIP split pattern (regex module, IGNORECASE) -> per piece:
 *   UTF-8 bytes -> bytes_to_unicode symbols -> BPE -> vocab ids.
 *
 * BPE: the reference repeatedly takes the adjacent pair with the lowest merge rank
 * and merges all its occurrences left to right. Here that runs on a linked list with
 * a min-heap of (rank, position): all entries of the lowest rank are popped in
 * position order as one round, and pairs created during a round are pushed only after
 * it (a hostile merges file may create a lower-ranked pair; the reference would also
 * see it only in its next iteration). O(n log n) per word, so a 100 KB word is fine.
 *
 * Vocabulary: symbols (token strings) are interned in one hash table; merges map a
 * (left, right) symbol pair to its rank and the joined symbol. Token ids come from
 * vocab.json, or are built as CLIP's bpe_simple_vocab_16e6 loader does (256 byte
 * symbols, the same with "</w>", the joined merges, the two specials; a later
 * duplicate token string takes the id, like Python's dict). Both the Hugging Face and
 * the openai loaders use at most 48894 merges after the first line; so do we.
 *
 * Deviations from the reference (documented, intentional):
 *  - a symbol missing from the vocab maps to <|endoftext|> (Hugging Face's unk;
 *    openai raises KeyError), never happens with real CLIP files;
 *  - "&#<more than 4300 digits>;" gives U+FFFD (Python >= 3.11 raises ValueError);
 *  - merges files must start with a '#' header line and every used line must hold
 *    exactly two symbols (the references silently accept malformed lines);
 *    trailing empty lines are ignored.
 *
 * Traps: the regex module's \s (collapse, split) excludes U+001C..U+001F, but
 * str.strip() removes them; U+0345 matches no alternative of the split pattern under
 * IGNORECASE and is dropped; "'ſ" and "<|ſtartoftext|>" match case-insensitively
 * but only the exact special strings map to BOS/EOS; a punctuation run swallows a
 * following "<|" so "!<|endoftext|>" is not the EOS token; final sigma looks at the
 * text before lowercasing.
 */
#include "text/clip_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/inflate.h"
#include "base/json.h"
#include "text/unicode.h"

#define MAX_MERGES (49152 - 256 - 2)             /* lines[1 : 49152-256-2+1] */
#define MAX_VOCAB_FILE ((size_t)64 << 20)
#define MAX_TEXT_BYTES ((size_t)1 << 30)
#define BPE_TXT_NAME "bpe_simple_vocab_16e6.txt"

/* ---- small growable buffers ---------------------------------------------------- */


typedef struct cp_buf {
    uint32_t *v;
    size_t n, cap;
} cp_buf;

static bool cp_push(cp_buf *b, uint32_t c) {
    if (b->n == b->cap && !pd_grow((void **)&b->v, &b->cap, b->n + 1, sizeof(uint32_t))) return false;
    b->v[b->n++] = c;
    return true;
}

/* ---- UTF-8 --------------------------------------------------------------------- */

/* Decodes s[0..n) into out (appending), one U+FFFD per maximal invalid subpart. */
static bool utf8_decode(const unsigned char *s, size_t n, cp_buf *out) {
    if (!pd_grow((void **)&out->v, &out->cap, out->n + n + 1, sizeof(uint32_t))) return false;
    for (size_t i = 0; i < n;) i += pd_utf8_decode_one(s + i, n - i, &out->v[out->n++]);
    return true;
}

static int utf8_encode(uint32_t c, unsigned char *o) {
    if (c < 0x80) {
        o[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | (c >> 6));
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (c >> 12));
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (c >> 18));
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 prefix of s[0..n). */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t c;
        size_t k = pd_utf8_decode_one(s + i, n - i, &c);
        if (c == PD_UNI_REPLACEMENT && !(k == 3 && s[i] == 0xEF)) return i;
        i += k;
    }
    return n;
}

/* ---- html.unescape --------------------------------------------------------------- */

static bool is_ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }

static int hex_value(uint32_t c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

/* Python's _replace_charref for a numeric reference; num is saturated at 0x110000.
 * Returns the code point, or -1 for "emit nothing". */
static int64_t charref_value(uint32_t num) {
    for (int i = 0; i < pd_html_charref_remap_count; i++)
        if (pd_html_charref_remap[i].num == num) return pd_html_charref_remap[i].cp;
    if ((num >= 0xD800 && num <= 0xDFFF) || num > PD_UNI_MAX) return PD_UNI_REPLACEMENT;
    for (int i = 0; i < pd_html_invalid_cp_count; i++)
        if (num >= pd_html_invalid_cp[i].lo && num <= pd_html_invalid_cp[i].hi) return -1;
    return num;
}

static bool name_char(uint32_t c) {   /* [^\t\n\f <&#;] */
    return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' &&
           c != ';';
}

/* One pass of html.unescape: s[0..n) -> out. */
static bool html_unescape(const uint32_t *s, size_t n, cp_buf *out) {
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c != '&' || i + 1 >= n) {
            if (!cp_push(out, c)) return false;
            continue;
        }
        size_t j = i + 1;
        if (s[j] == '#') {
            size_t k = j + 1;
            uint32_t num = 0;
            bool ok = false;
            if (k < n && is_ascii_digit(s[k])) {
                for (; k < n && is_ascii_digit(s[k]); k++) {
                    num = num * 10 + (s[k] - '0');
                    if (num > PD_UNI_MAX) num = PD_UNI_MAX + 1;
                }
                ok = true;
            } else if (k + 1 < n && (s[k] == 'x' || s[k] == 'X') && hex_value(s[k + 1]) >= 0) {
                for (k++; k < n && hex_value(s[k]) >= 0; k++) {
                    num = num * 16 + (uint32_t)hex_value(s[k]);
                    if (num > PD_UNI_MAX) num = PD_UNI_MAX + 1;
                }
                ok = true;
            }
            if (!ok) {   /* no alternative matches: '&' stays literal */
                if (!cp_push(out, c)) return false;
                continue;
            }
            if (k < n && s[k] == ';') k++;
            int64_t v = charref_value(num);
            if (v >= 0 && !cp_push(out, (uint32_t)v)) return false;
            i = k - 1;
            continue;
        }
        size_t m = 0;
        char name[PD_HTML_MAX_NAME + 2];
        while (m < PD_HTML_MAX_NAME && j + m < n && name_char(s[j + m])) {
            uint32_t ch = s[j + m];
            name[m] = (char)(ch < 0x80 && ch != 0 ? ch : 0x01);   /* never in a name */
            m++;
        }
        if (m == 0) {
            if (!cp_push(out, c)) return false;
            continue;
        }
        size_t len = m;
        if (j + m < n && s[j + m] == ';') name[len++] = ';';
        const pd_html_entity *e = pd_html_entity_find(name, len);
        size_t x = len;
        for (size_t p = len - 1; !e && p >= 2; p--) {
            e = pd_html_entity_find(name, p);
            if (e) x = p;
        }
        if (!e) {   /* '&' + name stays as it is */
            if (!cp_push(out, c)) return false;
            continue;
        }
        if (!cp_push(out, e->cp[0])) return false;
        if (e->cp[1] && !cp_push(out, e->cp[1])) return false;
        for (size_t p = x; p < len; p++)   /* the rest after a legacy prefix */
            if (!cp_push(out, s[j + p])) return false;
        i = j + len - 1;
    }
    return true;
}

/* ---- whitespace, lowercase ------------------------------------------------------- */

static bool has_flag(uint32_t c, unsigned f) { return (pd_uni_flags(c) & f) != 0; }

/* strip (str.isspace) -> collapse runs of regex \s to ' ' -> strip; in place. */
static void clean_whitespace(cp_buf *b) {
    size_t lo = 0, hi = b->n, o = 0;
    while (lo < hi && has_flag(b->v[lo], PD_UNI_PYSPACE)) lo++;
    while (hi > lo && has_flag(b->v[hi - 1], PD_UNI_PYSPACE)) hi--;
    for (size_t i = lo; i < hi;) {
        if (has_flag(b->v[i], PD_UNI_WS)) {
            while (i < hi && has_flag(b->v[i], PD_UNI_WS)) i++;
            b->v[o++] = ' ';
        } else {
            b->v[o++] = b->v[i++];
        }
    }
    size_t start = 0;
    while (start < o && has_flag(b->v[start], PD_UNI_PYSPACE)) start++;
    while (o > start && has_flag(b->v[o - 1], PD_UNI_PYSPACE)) o--;
    memmove(b->v, b->v + start, (o - start) * sizeof(uint32_t));
    b->n = o - start;
}

/* Python's handle_capital_sigma: final when preceded by a cased character and not
 * followed by one (case-ignorable characters skipped on both sides). */
static bool final_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    unsigned f = 0;
    while (j > 0) {
        f = pd_uni_flags(s[--j]);
        if (!(f & PD_UNI_CASE_IGNORABLE)) break;
        f = 0;
    }
    if (!(f & PD_UNI_CASED)) return false;
    for (j = i + 1; j < n; j++) {
        f = pd_uni_flags(s[j]);
        if (!(f & PD_UNI_CASE_IGNORABLE)) return !(f & PD_UNI_CASED);
    }
    return true;
}

static bool lower_text(const uint32_t *s, size_t n, cp_buf *out) {
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        bool ok;
        if (c == 0x3A3) {
            ok = cp_push(out, final_sigma(s, n, i) ? 0x3C2 : 0x3C3);
        } else if (c == 0x130) {
            ok = cp_push(out, 'i') && cp_push(out, 0x307);
        } else {
            ok = cp_push(out, c < 0x80 ? (c >= 'A' && c <= 'Z' ? c + 32 : c) : pd_uni_lower_simple(c));
        }
        if (!ok) return false;
    }
    return true;
}

/* ---- symbols and merges -------------------------------------------------------- */

typedef struct sym_table {
    char *pool;            /* NUL-terminated strings */
    size_t pool_len, pool_cap;
    uint32_t *off, *len;
    int32_t *vocab_id;     /* -1 when the string has no id */
    int n, cap;
    int32_t *slots;        /* open addressing, -1 = empty */
    uint32_t mask;
} sym_table;

struct pd_tokenizer {
    sym_table syms;
    int n_vocab;
    int32_t *id_sym;       /* [n_vocab] */
    int n_merges;
    int32_t *merge_result; /* [n_merges] joined symbol per rank */
    uint64_t *pair_keys;   /* open addressing, UINT64_MAX = empty */
    int32_t *pair_rank;
    uint32_t pair_mask;
    int32_t byte_sym[256], byte_sym_end[256];
    int32_t bos, eos, comma, unk;
};

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static uint32_t pow2_at_least(size_t n) {
    uint32_t p = 16;
    while (p < n && p < (1u << 30)) p <<= 1;
    return p;
}

static bool syms_init(sym_table *t, size_t max_syms) {
    if (max_syms > (1u << 28)) return false;
    uint32_t nslots = pow2_at_least(max_syms * 2);
    t->cap = (int)max_syms;
    t->off = malloc(max_syms * sizeof(uint32_t));
    t->len = malloc(max_syms * sizeof(uint32_t));
    t->vocab_id = malloc(max_syms * sizeof(int32_t));
    t->slots = malloc(nslots * sizeof(int32_t));
    if (!t->off || !t->len || !t->vocab_id || !t->slots) return false;
    memset(t->slots, 0xFF, nslots * sizeof(int32_t));
    t->mask = nslots - 1;
    return true;
}

static void syms_free(sym_table *t) {
    free(t->pool);
    free(t->off);
    free(t->len);
    free(t->vocab_id);
    free(t->slots);
}

static int32_t syms_find(const sym_table *t, const char *s, size_t n) {
    uint32_t h = (uint32_t)hash_bytes(s, n) & t->mask;
    for (;; h = (h + 1) & t->mask) {
        int32_t k = t->slots[h];
        if (k < 0) return -1;
        if (t->len[k] == n && memcmp(t->pool + t->off[k], s, n) == 0) return k;
    }
}

/* Interns a . b (b may be NULL); returns the symbol or -1 when out of memory or the
 * table is full. */
static int32_t syms_intern2(sym_table *t, const char *a, size_t na, const char *b, size_t nb) {
    char stack[256];
    char *key = stack;
    size_t n = na + nb;
    if (n >= sizeof stack) {
        key = malloc(n + 1);
        if (!key) return -1;
    }
    memcpy(key, a, na);
    if (nb) memcpy(key + na, b, nb);
    int32_t result = -1;
    uint32_t h = (uint32_t)hash_bytes(key, n) & t->mask;
    for (;; h = (h + 1) & t->mask) {
        int32_t k = t->slots[h];
        if (k < 0) break;
        if (t->len[k] == n && memcmp(t->pool + t->off[k], key, n) == 0) {
            result = k;
            goto done;
        }
    }
    if (t->n >= t->cap || n > UINT32_MAX / 2 || t->pool_len + n + 1 > UINT32_MAX) goto done;
    if (!pd_grow((void **)&t->pool, &t->pool_cap, t->pool_len + n + 1, 1)) goto done;
    memcpy(t->pool + t->pool_len, key, n);
    t->pool[t->pool_len + n] = '\0';
    t->off[t->n] = (uint32_t)t->pool_len;
    t->len[t->n] = (uint32_t)n;
    t->vocab_id[t->n] = -1;
    t->pool_len += n + 1;
    t->slots[h] = t->n;
    result = t->n++;
done:
    if (key != stack) free(key);
    return result;
}

static int32_t pair_rank(const pd_tokenizer *tok, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t h = (uint32_t)hash_u64(key) & tok->pair_mask;
    for (;; h = (h + 1) & tok->pair_mask) {
        if (tok->pair_keys[h] == UINT64_MAX) return -1;
        if (tok->pair_keys[h] == key) return tok->pair_rank[h];
    }
}

static void pair_set(pd_tokenizer *tok, int32_t a, int32_t b, int32_t rank) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t h = (uint32_t)hash_u64(key) & tok->pair_mask;
    while (tok->pair_keys[h] != UINT64_MAX && tok->pair_keys[h] != key) h = (h + 1) & tok->pair_mask;
    tok->pair_keys[h] = key;
    tok->pair_rank[h] = rank;   /* a later duplicate wins, like dict(zip(merges, ranks)) */
}

/* CLIP's bytes_to_unicode: map[b] is the code point standing for byte b; order[] is
 * the dict order (printable bytes first, then the others). */
static void bytes_to_unicode(uint32_t map[256], uint8_t order[256]) {
    int k = 0, extra = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        if (printable) {
            map[b] = (uint32_t)b;
            order[k++] = (uint8_t)b;
        }
    }
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        if (!printable) {
            map[b] = (uint32_t)(256 + extra++);
            order[k++] = (uint8_t)b;
        }
    }
}

/* ---- loading ------------------------------------------------------------------- */

typedef struct merge_ref {
    const char *a, *b;
    uint32_t na, nb;
} merge_ref;

/* Copies up to 40 bytes of s for a message, replacing unprintable bytes by '?'. */
static void printable_copy(char *dst, size_t cap, const char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap && i < 40; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[o++] = (c >= 0x20 && c != 0x7F) ? (char)c : '?';
    }
    if (n > 40 && o + 4 < cap) dst[o++] = '.', dst[o++] = '.', dst[o++] = '.';
    dst[o] = '\0';
}

static bool is_ascii_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F);
}

/* Splits the merge lines of text[0..size): line 0 (the "#version" header) is
 * skipped, then up to MAX_MERGES lines each holding exactly two symbols separated by
 * str.isspace() characters. hf_strip: strip the whole text first (Hugging Face's
 * .strip()); otherwise only trailing empty lines are dropped (openai). The refs
 * point into text. */
static pd_status parse_merges(const char *text, size_t size, const char *fname, bool hf_strip,
                              merge_ref **out, int *n_out, pd_error *err) {
    *out = NULL;
    *n_out = 0;
    merge_ref *m = NULL;
    size_t cap = 0, begin = 0, end = size;
    int n = 0, line = 1;
    pd_status st = PD_OK;
    size_t valid = utf8_valid_prefix((const unsigned char *)text, size);
    if (valid < size) {
        for (size_t i = 0; i < valid; i++) line += text[i] == '\n';
        st = pd_error_set(err, PD_ERR_FORMAT, "'%s' line %d: invalid UTF-8", fname, line);
        goto fail;
    }
    while (hf_strip && begin < end && is_ascii_space((unsigned char)text[begin]))
        line += text[begin++] == '\n';
    while (end > begin && is_ascii_space((unsigned char)text[end - 1])) end--;
    if (end == begin) {
        st = pd_error_set(err, PD_ERR_FORMAT, "'%s' is empty", fname);
        goto fail;
    }
    size_t p = begin;
    if (end - p >= 3 && memcmp(text + p, "\xEF\xBB\xBF", 3) == 0) p += 3;   /* BOM */
    if (text[p] != '#') {
        st = pd_error_set(err, PD_ERR_FORMAT, "'%s' line %d: expected a '#version' header line",
                          fname, line);
        goto fail;
    }
    const char *nl = memchr(text + p, '\n', end - p);
    p = nl ? (size_t)(nl - text) + 1 : end;
    while (p < end && n < MAX_MERGES) {
        line++;
        nl = memchr(text + p, '\n', end - p);
        size_t e = nl ? (size_t)(nl - text) : end;
        const char *f[2] = {NULL, NULL};
        size_t fl[2] = {0, 0};
        int nf = 0;
        bool in_field = false;
        for (size_t q = p; q < e;) {   /* split on str.isspace() characters */
            uint32_t c;
            size_t cl = pd_utf8_decode_one((const unsigned char *)text + q, e - q, &c);
            if (has_flag(c, PD_UNI_PYSPACE)) {
                in_field = false;
            } else {
                if (!in_field) {
                    if (nf < 2) f[nf] = text + q;
                    nf++;
                }
                if (nf <= 2) fl[nf - 1] += cl;
                in_field = true;
            }
            q += cl;
        }
        if (nf != 2) {
            st = pd_error_set(err, PD_ERR_FORMAT, "'%s' line %d: expected 2 symbols, found %d",
                              fname, line, nf);
            goto fail;
        }
        if (!pd_grow((void **)&m, &cap, (size_t)n + 1, sizeof(merge_ref))) {
            st = pd_error_set(err, PD_ERR_OOM, "out of memory reading '%s'", fname);
            goto fail;
        }
        m[n].a = f[0];
        m[n].na = (uint32_t)fl[0];
        m[n].b = f[1];
        m[n].nb = (uint32_t)fl[1];
        n++;
        p = e + 1;
    }
    *out = m;
    *n_out = n;
    return PD_OK;
fail:
    free(m);
    return st;
}

static pd_tokenizer *tokenizer_new(size_t max_syms, int n_vocab, int n_merges) {
    pd_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return NULL;
    uint32_t pslots = pow2_at_least((size_t)n_merges * 2);
    tok->n_vocab = n_vocab;
    tok->n_merges = n_merges;
    tok->id_sym = malloc(((size_t)n_vocab + 1) * sizeof(int32_t));
    tok->merge_result = malloc(((size_t)n_merges + 1) * sizeof(int32_t));
    tok->pair_keys = malloc(pslots * sizeof(uint64_t));
    tok->pair_rank = malloc(pslots * sizeof(int32_t));
    tok->pair_mask = pslots - 1;
    if (!syms_init(&tok->syms, max_syms) || !tok->id_sym || !tok->merge_result || !tok->pair_keys ||
        !tok->pair_rank) {
        pd_tokenizer_free(tok);
        return NULL;
    }
    memset(tok->pair_keys, 0xFF, pslots * sizeof(uint64_t));
    for (int i = 0; i < n_vocab; i++) tok->id_sym[i] = -1;
    return tok;
}

void pd_tokenizer_free(pd_tokenizer *tok) {
    if (!tok) return;
    syms_free(&tok->syms);
    free(tok->id_sym);
    free(tok->merge_result);
    free(tok->pair_keys);
    free(tok->pair_rank);
    free(tok);
}

/* Interns the byte symbols, the merges, and resolves the special ids. */
static pd_status finish_tokenizer(pd_tokenizer *tok, const merge_ref *m, int n_merges,
                                  const char *fname, pd_error *err) {
    uint32_t map[256];
    uint8_t order[256];
    bytes_to_unicode(map, order);
    for (int b = 0; b < 256; b++) {
        unsigned char u[4];
        int ul = utf8_encode(map[b], u);
        tok->byte_sym[b] = syms_intern2(&tok->syms, (const char *)u, (size_t)ul, NULL, 0);
        tok->byte_sym_end[b] = syms_intern2(&tok->syms, (const char *)u, (size_t)ul, "</w>", 4);
        if (tok->byte_sym[b] < 0 || tok->byte_sym_end[b] < 0) goto oom;
    }
    for (int r = 0; r < n_merges; r++) {
        int32_t a = syms_intern2(&tok->syms, m[r].a, m[r].na, NULL, 0);
        int32_t b = syms_intern2(&tok->syms, m[r].b, m[r].nb, NULL, 0);
        int32_t ab = syms_intern2(&tok->syms, m[r].a, m[r].na, m[r].b, m[r].nb);
        if (a < 0 || b < 0 || ab < 0) goto oom;
        pair_set(tok, a, b, r);
        tok->merge_result[r] = ab;
    }
    int32_t s = syms_find(&tok->syms, "<|startoftext|>", 15);
    int32_t e = syms_find(&tok->syms, "<|endoftext|>", 13);
    int32_t c = syms_find(&tok->syms, ",</w>", 5);
    tok->bos = s >= 0 ? tok->syms.vocab_id[s] : -1;
    tok->eos = e >= 0 ? tok->syms.vocab_id[e] : -1;
    tok->comma = c >= 0 ? tok->syms.vocab_id[c] : -1;
    tok->unk = tok->eos;
    if (tok->bos < 0 || tok->eos < 0)
        return pd_error_set(err, PD_ERR_FORMAT, "'%s' has no %s token", fname,
                            tok->bos < 0 ? "<|startoftext|>" : "<|endoftext|>");
    return PD_OK;
oom:
    return pd_error_set(err, PD_ERR_OOM, "out of memory building the vocabulary of '%s'", fname);
}

static pd_status load_json_vocab(const char *vocab_path, const char *vtext, size_t vsize,
                                 const char *merges_path, pd_tokenizer **out, pd_error *err) {
    pd_arena arena;
    pd_arena_init(&arena, 0);
    char *mtext = NULL;
    size_t msize = 0;
    merge_ref *m = NULL;
    int n_merges = 0;
    pd_tokenizer *tok = NULL;
    const pd_json *root = NULL;
    char kb[64];
    pd_status st = pd_json_parse(vtext, vsize, &arena, &root, err);
    if (st != PD_OK) {
        pd_error_prefix(err, "'%s'", vocab_path);
        goto fail;
    }
    if (root->type != PD_JSON_OBJECT) {
        st = pd_error_set(err, PD_ERR_FORMAT, "'%s': expected a JSON object of token -> id",
                          vocab_path);
        goto fail;
    }
    if (root->len == 0 || root->len > (1u << 24)) {
        st = pd_error_set(err, PD_ERR_FORMAT, "'%s': %zu tokens (expected 1 .. %u)", vocab_path,
                          root->len, 1u << 24);
        goto fail;
    }
    if (!pd_path_is_file(merges_path)) {
        st = pd_error_set(err, PD_ERR_MISSING, "'%s' not found (needed beside '%s')", merges_path,
                          vocab_path);
        goto fail;
    }
    st = pd_file_read_all(merges_path, MAX_VOCAB_FILE, &mtext, &msize, err);
    if (st != PD_OK) goto fail;
    st = parse_merges(mtext, msize, merges_path, true, &m, &n_merges, err);
    if (st != PD_OK) goto fail;
    int n_vocab = (int)root->len;
    tok = tokenizer_new((size_t)n_vocab + 512 + 3 * (size_t)n_merges + 4, n_vocab, n_merges);
    if (!tok) {
        st = pd_error_set(err, PD_ERR_OOM, "out of memory loading '%s'", vocab_path);
        goto fail;
    }
    for (size_t i = 0; i < root->len; i++) {
        const pd_json *v = &root->items[i];
        int64_t id;
        printable_copy(kb, sizeof kb, v->key, v->key_len);
        if (!pd_json_as_int64(v, &id)) {
            st = pd_error_set(err, PD_ERR_FORMAT, "'%s': key \"%s\": id is not an integer",
                              vocab_path, kb);
            goto fail;
        }
        if (id < 0 || id >= n_vocab) {
            st = pd_error_set(err, PD_ERR_FORMAT,
                              "'%s': key \"%s\": id %lld out of range [0, %d)", vocab_path, kb,
                              (long long)id, n_vocab);
            goto fail;
        }
        int32_t s = syms_intern2(&tok->syms, v->key, v->key_len, NULL, 0);
        if (s < 0) {
            st = pd_error_set(err, PD_ERR_OOM, "out of memory loading '%s'", vocab_path);
            goto fail;
        }
        if (tok->syms.vocab_id[s] >= 0) {
            st = pd_error_set(err, PD_ERR_FORMAT, "'%s': duplicate key \"%s\"", vocab_path, kb);
            goto fail;
        }
        if (tok->id_sym[id] >= 0) {
            char kb2[64];
            int32_t o = tok->id_sym[id];
            printable_copy(kb2, sizeof kb2, tok->syms.pool + tok->syms.off[o], tok->syms.len[o]);
            st = pd_error_set(err, PD_ERR_FORMAT, "'%s': keys \"%s\" and \"%s\" share id %lld",
                              vocab_path, kb2, kb, (long long)id);
            goto fail;
        }
        tok->syms.vocab_id[s] = (int32_t)id;
        tok->id_sym[id] = s;
    }
    st = finish_tokenizer(tok, m, n_merges, vocab_path, err);
    if (st != PD_OK) goto fail;
    *out = tok;
    tok = NULL;
fail:
    pd_tokenizer_free(tok);
    free(m);
    free(mtext);
    pd_arena_free(&arena);
    return st;
}

/* openai's bpe_simple_vocab_16e6.txt (already decompressed). */
static pd_status load_bpe_txt(const char *path, const char *text, size_t size,
                              pd_tokenizer **out, pd_error *err) {
    merge_ref *m = NULL;
    int n_merges = 0;
    pd_tokenizer *tok = NULL;
    pd_status st = parse_merges(text, size, path, false, &m, &n_merges, err);
    if (st != PD_OK) goto fail;
    int n_vocab = 512 + n_merges + 2;
    tok = tokenizer_new((size_t)n_vocab + 512 + 3 * (size_t)n_merges + 4, n_vocab, n_merges);
    if (!tok) {
        st = pd_error_set(err, PD_ERR_OOM, "out of memory loading '%s'", path);
        goto fail;
    }
    uint32_t map[256];
    uint8_t order[256];
    bytes_to_unicode(map, order);
    for (int id = 0; id < n_vocab; id++) {
        unsigned char u[4];
        int32_t s;
        if (id < 512) {
            int ul = utf8_encode(map[order[id & 255]], u);
            s = syms_intern2(&tok->syms, (const char *)u, (size_t)ul, id < 256 ? NULL : "</w>",
                             id < 256 ? 0 : 4);
        } else if (id < 512 + n_merges) {
            const merge_ref *r = &m[id - 512];
            s = syms_intern2(&tok->syms, r->a, r->na, r->b, r->nb);
        } else {
            const char *sp = id == n_vocab - 2 ? "<|startoftext|>" : "<|endoftext|>";
            s = syms_intern2(&tok->syms, sp, strlen(sp), NULL, 0);
        }
        if (s < 0) {
            st = pd_error_set(err, PD_ERR_OOM, "out of memory loading '%s'", path);
            goto fail;
        }
        tok->syms.vocab_id[s] = id;   /* a later duplicate takes the string (dict) */
        tok->id_sym[id] = s;
    }
    st = finish_tokenizer(tok, m, n_merges, path, err);
    if (st != PD_OK) goto fail;
    *out = tok;
    tok = NULL;
fail:
    pd_tokenizer_free(tok);
    free(m);
    return st;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static pd_status load_file(const char *path, pd_tokenizer **out, pd_error *err) {
    char *data = NULL;
    unsigned char *plain = NULL;
    size_t size = 0, plain_size = 0;
    char merges[4096], dir[4096];
    pd_status st = pd_file_read_all(path, MAX_VOCAB_FILE, &data, &size, err);
    if (st != PD_OK) goto done;
    if (size == 0) {
        st = pd_error_set(err, PD_ERR_FORMAT, "'%s' is empty", path);
        goto done;
    }
    if (size >= 2 && (unsigned char)data[0] == 0x1F && (unsigned char)data[1] == 0x8B) {
        st = pd_gunzip((const unsigned char *)data, size, MAX_VOCAB_FILE, &plain, &plain_size, err);
        if (st != PD_OK) {
            pd_error_prefix(err, "'%s'", path);
            goto done;
        }
        st = load_bpe_txt(path, (const char *)plain, plain_size, out, err);
        goto done;
    }
    size_t k = 0;
    while (k < size && is_ascii_space((unsigned char)data[k])) k++;
    if (ends_with(path, ".json") || (k < size && data[k] == '{')) {
        if (!pd_path_dirname(dir, sizeof dir, path) ||
            !pd_path_join(merges, sizeof merges, dir, "merges.txt")) {
            st = pd_error_set(err, PD_ERR_INVALID_ARG, "path too long: '%s'", path);
            goto done;
        }
        st = load_json_vocab(path, data, size, merges, out, err);
        goto done;
    }
    st = load_bpe_txt(path, data, size, out, err);
done:
    free(plain);
    free(data);
    return st;
}

pd_status pd_tokenizer_load(const char *path, pd_tokenizer **out, pd_error *err) {
    char p[4096], sub[4096];
    if (!out) return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_tokenizer_load: out is NULL");
    *out = NULL;
    if (!path || !*path) return pd_error_set(err, PD_ERR_INVALID_ARG, "no vocabulary path given");
    if (pd_path_is_file(path)) return load_file(path, out, err);
    if (!pd_path_is_dir(path))
        return pd_error_set(err, PD_ERR_MISSING, "vocabulary '%s' does not exist", path);
    static const char *const names[] = {"vocab.json", BPE_TXT_NAME ".gz", BPE_TXT_NAME};
    for (size_t i = 0; i < PD_COUNT(names); i++) {
        if (!pd_path_join(p, sizeof p, path, names[i]))
            return pd_error_set(err, PD_ERR_INVALID_ARG, "path too long: '%s'", path);
        if (pd_path_is_file(p)) return load_file(p, out, err);
    }
    if (pd_path_join(sub, sizeof sub, path, "tokenizer") && pd_path_is_dir(sub) &&
        pd_path_join(p, sizeof p, sub, "vocab.json") && pd_path_is_file(p))
        return load_file(p, out, err);
    return pd_error_set(err, PD_ERR_MISSING,
                        "no vocabulary in '%s' (looked for vocab.json + merges.txt, "
                        BPE_TXT_NAME "[.gz], tokenizer/)", path);
}

/* ---- locating ------------------------------------------------------------------ */

static bool dir_has_vocab(const char *dir) {
    char p[4096];
    static const char *const names[] = {"vocab.json", BPE_TXT_NAME ".gz", BPE_TXT_NAME};
    if (!pd_path_is_dir(dir)) return false;
    for (size_t i = 0; i < PD_COUNT(names); i++)
        if (pd_path_join(p, sizeof p, dir, names[i]) && pd_path_is_file(p)) return true;
    return false;
}

static void tried_add(char *tried, size_t tried_size, const char *what) {
    if (!tried || tried_size == 0) return;
    size_t n = strlen(tried);
    snprintf(tried + n, tried_size - n, "%s%s", n ? ", " : "", what);
}

bool pd_tokenizer_locate(const char *model_path, char *found, size_t found_size, char *tried,
                         size_t tried_size) {
    char cand[8][4096];
    bool is_dir_cand[8];
    int n = 0;
    char dir[4096], stem[4096];
    if (tried && tried_size) tried[0] = '\0';
    if (!model_path || !*model_path || !found || found_size == 0) return false;
    if (pd_path_is_dir(model_path)) {
        /* a diffusers folder, or the tokenizer folder itself */
        if (pd_path_join(cand[n], sizeof cand[n], model_path, "tokenizer")) is_dir_cand[n++] = true;
        snprintf(cand[n], sizeof cand[n], "%s", model_path);
        is_dir_cand[n++] = true;
    } else {
        if (!pd_path_dirname(dir, sizeof dir, model_path) ||
            !pd_path_strip_ext(stem, sizeof stem, model_path))
            return false;
        /* Model-specific places first (<stem>.vocab/, <stem>/tokenizer/), then the
         * folder's shared ones, so a model never picks up a neighbour's vocabulary. */
        static const char *const files[] = {"vocab.json", BPE_TXT_NAME ".gz", BPE_TXT_NAME};
        if ((size_t)snprintf(cand[n], sizeof cand[n], "%s.vocab", stem) < sizeof cand[n])
            is_dir_cand[n++] = true;
        if (pd_path_join(cand[n], sizeof cand[n], stem, "tokenizer")) is_dir_cand[n++] = true;
        if (pd_path_join(cand[n], sizeof cand[n], dir, "tokenizer")) is_dir_cand[n++] = true;
        for (size_t i = 0; i < PD_COUNT(files); i++)
            if (pd_path_join(cand[n], sizeof cand[n], dir, files[i])) is_dir_cand[n++] = false;
    }
    for (int i = 0; i < n; i++) {
        bool ok = is_dir_cand[i] ? dir_has_vocab(cand[i]) : pd_path_is_file(cand[i]);
        if (ok && strlen(cand[i]) < found_size) {
            memcpy(found, cand[i], strlen(cand[i]) + 1);
            return true;
        }
        tried_add(tried, tried_size, cand[i]);
    }
    return false;
}

/* ---- accessors ----------------------------------------------------------------- */

int32_t pd_tokenizer_bos(const pd_tokenizer *tok) { return tok->bos; }
int32_t pd_tokenizer_eos(const pd_tokenizer *tok) { return tok->eos; }
int32_t pd_tokenizer_comma(const pd_tokenizer *tok) { return tok->comma; }
int pd_tokenizer_vocab_size(const pd_tokenizer *tok) { return tok->n_vocab; }

const char *pd_tokenizer_token(const pd_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || id >= tok->n_vocab || tok->id_sym[id] < 0) return NULL;
    return tok->syms.pool + tok->syms.off[tok->id_sym[id]];
}

/* ---- encoding ------------------------------------------------------------------ */

typedef struct work {
    cp_buf a, b;
    unsigned char *bytes;
    size_t bytes_cap;
    int32_t *sym, *prev, *next;
    size_t sym_cap, prev_cap, next_cap;
    uint64_t *heap, *pend;
    size_t heap_n, heap_cap, pend_n, pend_cap;
    int32_t *ids;
    size_t n_ids, ids_cap;
} work;

static void work_free(work *w) {
    free(w->a.v);
    free(w->b.v);
    free(w->bytes);
    free(w->sym);
    free(w->prev);
    free(w->next);
    free(w->heap);
    free(w->pend);
    free(w->ids);
}

static bool emit_id(work *w, int32_t id) {
    if (w->n_ids == w->ids_cap && !pd_grow((void **)&w->ids, &w->ids_cap, w->n_ids + 1, sizeof(int32_t)))
        return false;
    w->ids[w->n_ids++] = id;
    return true;
}

static void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent] <= v) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (v <= h[c]) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = v;
    return top;
}

static bool pend_pair(const pd_tokenizer *tok, work *w, int32_t left) {
    if (left < 0 || w->next[left] < 0) return true;
    int32_t right = w->next[left];
    int32_t r = pair_rank(tok, w->sym[left], w->sym[right]);
    if (r < 0) return true;
    if (w->pend_n == w->pend_cap &&
        !pd_grow((void **)&w->pend, &w->pend_cap, w->pend_n + 1, sizeof(uint64_t)))
        return false;
    w->pend[w->pend_n++] = ((uint64_t)(uint32_t)r << 32) | (uint32_t)left;
    return true;
}

/* BPE of one piece (its UTF-8 bytes), ids appended to w->ids. */
static bool bpe_piece(const pd_tokenizer *tok, work *w, const unsigned char *p, size_t n) {
    if (n == 15 && memcmp(p, "<|startoftext|>", 15) == 0) return emit_id(w, tok->bos);
    if (n == 13 && memcmp(p, "<|endoftext|>", 13) == 0) return emit_id(w, tok->eos);
    if (!pd_grow((void **)&w->sym, &w->sym_cap, n, sizeof(int32_t)) ||
        !pd_grow((void **)&w->prev, &w->prev_cap, n, sizeof(int32_t)) ||
        !pd_grow((void **)&w->next, &w->next_cap, n, sizeof(int32_t)))
        return false;
    /* heap holds at most n-1 initial pairs plus two per merge */
    if (!pd_grow((void **)&w->heap, &w->heap_cap, 3 * n + 1, sizeof(uint64_t))) return false;
    for (size_t i = 0; i < n; i++) {
        w->sym[i] = (i + 1 == n ? tok->byte_sym_end : tok->byte_sym)[p[i]];
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r = pair_rank(tok, w->sym[i], w->sym[i + 1]);
        if (r >= 0) heap_push(w->heap, &w->heap_n, ((uint64_t)(uint32_t)r << 32) | (uint32_t)i);
    }
    while (w->heap_n > 0) {
        uint32_t round = (uint32_t)(w->heap[0] >> 32);
        w->pend_n = 0;
        while (w->heap_n > 0 && (uint32_t)(w->heap[0] >> 32) == round) {
            int32_t pos = (int32_t)(uint32_t)heap_pop(w->heap, &w->heap_n);
            int32_t j = w->next[pos];
            if (w->sym[pos] < 0 || j < 0 || pair_rank(tok, w->sym[pos], w->sym[j]) != (int32_t)round)
                continue;
            w->sym[pos] = tok->merge_result[round];
            w->next[pos] = w->next[j];
            if (w->next[j] >= 0) w->prev[w->next[j]] = pos;
            w->sym[j] = -1;
            if (!pend_pair(tok, w, w->prev[pos]) || !pend_pair(tok, w, pos)) return false;
        }
        if (!pd_grow((void **)&w->heap, &w->heap_cap, w->heap_n + w->pend_n, sizeof(uint64_t)))
            return false;
        for (size_t i = 0; i < w->pend_n; i++) heap_push(w->heap, &w->heap_n, w->pend[i]);
    }
    for (int32_t i = 0; i >= 0; i = w->next[i]) {
        int32_t id = tok->syms.vocab_id[w->sym[i]];
        if (!emit_id(w, id >= 0 ? id : tok->unk)) return false;
    }
    return true;
}

/* Case-insensitive match of an ASCII pattern at s[i..) (the regex module's simple
 * case folding: only 's' has a non-ASCII equivalent, U+017F). */
static bool ci_match(const uint32_t *s, size_t n, size_t i, const char *pat) {
    for (size_t k = 0; pat[k]; k++) {
        if (i + k >= n) return false;
        uint32_t c = s[i + k], p = (unsigned char)pat[k];
        bool eq = c == p || (p >= 'a' && p <= 'z' && c == p - 32) || (p == 's' && c == 0x17F);
        if (!eq) return false;
    }
    return true;
}

/* Length of the CLIP pattern match at s[i], or 0 when no alternative matches. */
static size_t clip_match(const uint32_t *s, size_t n, size_t i) {
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    if (s[i] == '<') {
        if (ci_match(s, n, i, "<|startoftext|>")) return 15;
        if (ci_match(s, n, i, "<|endoftext|>")) return 13;
    } else if (s[i] == '\'') {
        for (size_t k = 0; k < PD_COUNT(contractions); k++)
            if (ci_match(s, n, i, contractions[k])) return strlen(contractions[k]);
    }
    unsigned f = pd_uni_flags(s[i]);
    size_t j = i + 1;
    if (f & PD_UNI_L) {
        while (j < n && (pd_uni_flags(s[j]) & PD_UNI_L)) j++;
        return j - i;
    }
    if (f & PD_UNI_N) return 1;
    const unsigned other = PD_UNI_L | PD_UNI_N | PD_UNI_WS | PD_UNI_CLIP_DROP;
    if (f & other) return 0;
    while (j < n && !(pd_uni_flags(s[j]) & other)) j++;
    return j - i;
}

static pd_status encode_text(const pd_tokenizer *tok, work *w, const char *text, size_t len) {
    if (!utf8_decode((const unsigned char *)text, len, &w->a)) return PD_ERR_OOM;
    if (!html_unescape(w->a.v, w->a.n, &w->b) || !html_unescape(w->b.v, w->b.n, &w->a))
        return PD_ERR_OOM;
    clean_whitespace(&w->a);
    if (!lower_text(w->a.v, w->a.n, &w->b)) return PD_ERR_OOM;
    const uint32_t *s = w->b.v;
    size_t n = w->b.n;
    for (size_t i = 0; i < n;) {
        size_t m = clip_match(s, n, i);
        if (m == 0) {
            i++;
            continue;
        }
        if (m > (size_t)INT32_MAX / 8) return PD_ERR_OOM;
        if (!pd_grow((void **)&w->bytes, &w->bytes_cap, 4 * m, 1)) return PD_ERR_OOM;
        size_t nb = 0;
        for (size_t k = 0; k < m; k++) nb += (size_t)utf8_encode(s[i + k], w->bytes + nb);
        if (!bpe_piece(tok, w, w->bytes, nb)) return PD_ERR_OOM;
        i += m;
    }
    return PD_OK;
}

pd_status pd_tokenizer_encode(const pd_tokenizer *tok, const char *text, size_t len,
                              pd_arena *arena, int32_t **ids, int *n_ids, pd_error *err) {
    work w;
    memset(&w, 0, sizeof w);
    PD_ASSERT(tok && arena && ids && n_ids && (text || len == 0));
    *ids = NULL;
    *n_ids = 0;
    pd_status st = PD_OK;
    if (len > MAX_TEXT_BYTES) {
        st = pd_error_set(err, PD_ERR_OOM, "text of %zu bytes is too long to tokenize", len);
        goto done;
    }
    st = encode_text(tok, &w, text, len);
    if (st != PD_OK) {
        st = pd_error_set(err, PD_ERR_OOM, "out of memory tokenizing %zu bytes", len);
        goto done;
    }
    int32_t *out = pd_arena_alloc(arena, (w.n_ids ? w.n_ids : 1) * sizeof(int32_t));
    if (!out) {
        st = pd_error_set(err, PD_ERR_OOM, "out of memory for %zu token ids", w.n_ids);
        goto done;
    }
    if (w.n_ids) memcpy(out, w.ids, w.n_ids * sizeof(int32_t));
    *ids = out;
    *n_ids = (int)w.n_ids;
done:
    work_free(&w);
    return st;
}
