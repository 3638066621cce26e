/*
 * json.c - a strict RFC 8259 parser into an arena tree (the contract is in json.h).
 *
 * Design: one pass over the input, no recursion. Open containers sit on a fixed stack
 * of PD_JSON_MAX_DEPTH frames. Finished values wait on a heap "pending" vector; when
 * a container closes, its children (the top of that vector) are copied once into one
 * contiguous arena array. Every node is therefore copied a bounded number of times
 * and parsing is linear in the input (a 1.6 MB CLIP vocab.json or a multi-MB
 * safetensors header parse in one sweep). Decoded strings and number texts are packed
 * byte-aligned into large arena chunks instead of one 64-byte-aligned allocation each.
 *
 * Invariants: the parser never reads text[len] or beyond; every string handed out is
 * NUL-terminated and valid UTF-8 (it may contain NUL bytes from \u0000, counted in
 * len); a NUMBER's str is exactly the RFC 8259 number text it was parsed from.
 *
 * Integers (pd_json_as_int64): a NUMBER counts as an integer when its exact decimal
 * value is an integer in [INT64_MIN, INT64_MAX], whatever the spelling: "1000",
 * "1e3", "1.0E+3" and "10000e-1" all give 1000, "-0" gives 0; "1.5", "1e-3", "1e400"
 * and "9223372036854775808" are rejected. The value is computed from the text with
 * integer arithmetic, never from the double.
 *
 * Doubles: Clinger's fast path (<= 15 significant digits, |exponent| <= 22, exact in
 * binary64 arithmetic) is used where it is exact, otherwise strtod; both round
 * correctly, so num equals what a correctly rounding strtod gives.
 *
 * Traps:
 *  - strtod reads LC_NUMERIC: under a locale with ',' as decimal point it stops at '.'.
 *    The fallback substitutes the locale's decimal point before calling it.
 *  - UTF-8 must be validated per sequence (Unicode 15, table 3-7): overlong forms
 *    (C0 AF, E0 80 AF), encoded surrogates (ED A0 80) and code points above U+10FFFF
 *    (F4 90 80 80) are all invalid even though their bit patterns look fine.
 *  - \uD83D\uDE00 is one code point (U+1F600): a high surrogate must be followed by
 *    an escaped low one; either half alone is rejected.
 *  - Keys and strings may hold NUL (\u0000): compare with len, not strlen, where the
 *    distinction matters (pd_json_has_duplicate_keys does).
 */
#include "base/json.h"

#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_CHUNK ((size_t)32 << 10)

typedef struct frame {
    pd_json_type type;     /* PD_JSON_ARRAY or PD_JSON_OBJECT */
    const char *key;       /* key of the container itself in its parent */
    size_t key_len;
    size_t first;          /* index in pending of its first child */
    size_t open_pos;       /* offset of the '[' or '{' */
} frame;

typedef struct parser {
    const unsigned char *s;
    size_t len;
    size_t pos;
    pd_arena *arena;
    pd_error *err;
    char *pool;            /* current string chunk */
    size_t pool_left;
    pd_json *pending;      /* finished values whose container is still open */
    size_t n_pending;
    size_t cap_pending;
    const char *key;       /* key for the next value pushed (objects) */
    size_t key_len;
    int depth;
    bool allow_nonfinite;  /* accept NaN, Infinity, -Infinity (Python's json output) */
    frame stack[PD_JSON_MAX_DEPTH];
} parser;

/* ---- errors ------------------------------------------------------------------- */

static pd_status fail(parser *p, size_t at, const char *fmt, ...) PD_PRINTF(3, 4);

static pd_status fail(parser *p, size_t at, const char *fmt, ...) {
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return pd_error_set(p->err, PD_ERR_FORMAT, "invalid JSON at offset %zu: %s", at, what);
}

static pd_status oom(parser *p) {
    return pd_error_set(p->err, PD_ERR_OOM, "out of memory parsing JSON (%zu bytes)", p->len);
}

/* "'x'" for printable ASCII, "byte 0xNN" otherwise, "end of input" past the end. */
static const char *describe_at(const parser *p, size_t at, char *buf, size_t n) {
    if (at >= p->len) snprintf(buf, n, "end of input");
    else if (p->s[at] >= 0x20 && p->s[at] < 0x7f) snprintf(buf, n, "'%c'", p->s[at]);
    else snprintf(buf, n, "byte 0x%02x", p->s[at]);
    return buf;
}

/* ---- storage ------------------------------------------------------------------ */

/* n bytes of string space (committed later with pool_commit). */
static char *pool_reserve(parser *p, size_t n) {
    if (p->pool_left < n) {
        size_t size = n > POOL_CHUNK ? n : POOL_CHUNK;
        p->pool = pd_arena_alloc(p->arena, size);
        p->pool_left = p->pool ? size : 0;
    }
    return p->pool;
}

static void pool_commit(parser *p, size_t used) {
    p->pool += used;
    p->pool_left -= used;
}

static pd_status push_node(parser *p, const pd_json *node) {
    if (p->n_pending == p->cap_pending) {
        size_t cap = p->cap_pending ? p->cap_pending * 2 : 256;
        if (cap > SIZE_MAX / sizeof(pd_json)) return oom(p);
        pd_json *np = realloc(p->pending, cap * sizeof(pd_json));
        if (!np) return oom(p);
        p->pending = np;
        p->cap_pending = cap;
    }
    p->pending[p->n_pending++] = *node;
    return PD_OK;
}

/* A fresh node carrying the pending object key (if any), which it consumes. */
static pd_json new_node(parser *p, pd_json_type type) {
    pd_json n;
    memset(&n, 0, sizeof n);
    n.type = type;
    n.key = p->key;
    n.key_len = p->key_len;
    p->key = NULL;
    p->key_len = 0;
    return n;
}

/* ---- lexing ------------------------------------------------------------------- */

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Four hex digits at s[0..4) (caller checked bounds); -1 when not all hex. */
static long hex4(const unsigned char *s) {
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(s[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Length of the valid UTF-8 sequence at s[0..n) (s[0] >= 0x80), or 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;   /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) need = 2;
    else if (c == 0xe0) { need = 3; lo = 0xa0; }
    else if (c >= 0xe1 && c <= 0xec) need = 3;
    else if (c == 0xed) { need = 3; hi = 0x9f; }
    else if (c >= 0xee && c <= 0xef) need = 3;
    else if (c == 0xf0) { need = 4; lo = 0x90; }
    else if (c >= 0xf1 && c <= 0xf3) need = 4;
    else if (c == 0xf4) { need = 4; hi = 0x8f; }
    else return 0;
    if (n < need) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return need;
}

static size_t utf8_encode(char *dst, unsigned long cp) {
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xc0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xe0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        dst[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    dst[0] = (char)(0xf0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    dst[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the \u escape at s[i] ('\\') into dst; *consumed = input bytes used. */
static pd_status decode_u_escape(parser *p, size_t i, size_t end, char *dst, size_t *written,
                                 size_t *consumed) {
    const unsigned char *s = p->s;
    if (end - i < 6) return fail(p, i, "truncated \\u escape (needs 4 hex digits)");
    long cp = hex4(s + i + 2);
    if (cp < 0) return fail(p, i, "invalid \\u escape '%.6s' (needs 4 hex digits)", (const char *)s + i);
    *consumed = 6;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return fail(p, i, "lone low surrogate \\u%04lX without a preceding high surrogate", cp);
    if (cp >= 0xd800 && cp <= 0xdbff) {
        long lo = -1;
        if (end - i >= 12 && s[i + 6] == '\\' && s[i + 7] == 'u') lo = hex4(s + i + 8);
        if (lo < 0xdc00 || lo > 0xdfff)
            return fail(p, i, "lone high surrogate \\u%04lX not followed by a \\uDC00-\\uDFFF escape", cp);
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        *consumed = 12;
    }
    *written = utf8_encode(dst, (unsigned long)cp);
    return PD_OK;
}

/* Parses the string starting at s[pos] == '"' into the pool (NUL-terminated). */
static pd_status parse_string(parser *p, const char **out, size_t *out_len) {
    const unsigned char *s = p->s;
    size_t open = p->pos, start = p->pos + 1, end = start;
    /* Pass 1: find the closing quote (a backslash always consumes the next byte). */
    for (;;) {
        if (end >= p->len) return fail(p, open, "unterminated string");
        unsigned char c = s[end];
        if (c == '"') break;
        end += c == '\\' ? 2 : 1;
    }
    /* Pass 2: validate and decode; the output is never longer than the input. */
    char *dst = pool_reserve(p, end - start + 1);
    if (!dst) return oom(p);
    size_t n = 0, i = start;
    while (i < end) {
        unsigned char c = s[i];
        if (c == '\\') {
            unsigned char e = s[i + 1];   /* i + 1 < end: pass 1 skipped it as a pair */
            char simple = 0;
            switch (e) {
            case '"': simple = '"'; break;
            case '\\': simple = '\\'; break;
            case '/': simple = '/'; break;
            case 'b': simple = '\b'; break;
            case 'f': simple = '\f'; break;
            case 'n': simple = '\n'; break;
            case 'r': simple = '\r'; break;
            case 't': simple = '\t'; break;
            case 'u': {
                size_t w = 0, used = 0;
                pd_status st = decode_u_escape(p, i, end, dst + n, &w, &used);
                if (st != PD_OK) return st;
                n += w;
                i += used;
                continue;
            }
            default: {
                char d[16];
                return fail(p, i, "invalid escape '\\' followed by %s in string",
                            describe_at(p, i + 1, d, sizeof d));
            }
            }
            dst[n++] = simple;
            i += 2;
        } else if (c < 0x20) {
            return fail(p, i, "unescaped control character 0x%02x in string", c);
        } else if (c < 0x80) {
            dst[n++] = (char)c;
            i++;
        } else {
            size_t k = utf8_seq_len(s + i, end - i);
            if (k == 0) return fail(p, i, "invalid UTF-8 byte 0x%02x in string", c);
            memcpy(dst + n, s + i, k);
            n += k;
            i += k;
        }
    }
    dst[n] = '\0';
    pool_commit(p, n + 1);
    *out = dst;
    *out_len = n;
    p->pos = end + 1;
    return PD_OK;
}

/* ---- numbers ------------------------------------------------------------------ */

/* strtod of s[0..n), with '.' replaced by the locale's decimal point. */
static double strtod_c_locale(const char *s, size_t n) {
    const char *dp = localeconv()->decimal_point;
    const char *dot = memchr(s, '.', n);
    if (!dot || !dp || (dp[0] == '.' && dp[1] == '\0')) return strtod(s, NULL);
    size_t dpl = strlen(dp), pre = (size_t)(dot - s);
    char small[128];
    char *buf = n + dpl < sizeof small ? small : malloc(n + dpl);
    if (!buf) return strtod(s, NULL);   /* out of memory: best effort */
    memcpy(buf, s, pre);
    memcpy(buf + pre, dp, dpl);
    memcpy(buf + pre + dpl, dot + 1, n - pre - 1);
    buf[n - 1 + dpl] = '\0';
    double v = strtod(buf, NULL);
    if (buf != small) free(buf);
    return v;
}

/* Value of a validated RFC 8259 number text s[0..n) (NUL-terminated). */
static double number_value(const char *s, size_t n) {
#if FLT_EVAL_METHOD == 0
    static const double k_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    bool neg = s[0] == '-';
    if (neg) i++;
    uint64_t m = 0;
    int nd = 0;            /* significant digits accumulated in m */
    long e10 = 0;
    bool exact = true;
    for (; i < n && is_digit((unsigned char)s[i]); i++) {
        if (m == 0 && s[i] == '0') continue;
        if (nd < 19) m = m * 10 + (uint64_t)(s[i] - '0'), nd++;
        else exact = false;
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && is_digit((unsigned char)s[i]); i++) {
            if (m == 0 && s[i] == '0') { e10--; continue; }
            if (nd < 19) m = m * 10 + (uint64_t)(s[i] - '0'), nd++, e10--;
            else exact = false;
        }
    }
    if (i < n) {   /* exponent */
        i++;
        bool eneg = s[i] == '-';
        if (s[i] == '-' || s[i] == '+') i++;
        long ev = 0;
        for (; i < n; i++)
            if (ev < 100000) ev = ev * 10 + (s[i] - '0');
        e10 += eneg ? -ev : ev;
    }
    if (exact && m == 0) return neg ? -0.0 : 0.0;
    if (exact && nd <= 15 && e10 >= -22 && e10 <= 22) {
        double d = (double)m;   /* exact: m < 10^15 < 2^53 */
        d = e10 >= 0 ? d * k_pow10[e10] : d / k_pow10[-e10];
        return neg ? -d : d;
    }
#endif
    return strtod_c_locale(s, n);
}

static pd_status parse_number(parser *p) {
    const unsigned char *s = p->s;
    size_t start = p->pos, i = p->pos;
    if (s[i] == '-') i++;
    if (i >= p->len || !is_digit(s[i])) {
        char d[16];
        return fail(p, i, "invalid number: expected a digit after '-', found %s",
                    describe_at(p, i, d, sizeof d));
    }
    if (s[i] == '0') {
        i++;
        if (i < p->len && is_digit(s[i])) return fail(p, start, "invalid number: leading zero");
    } else {
        while (i < p->len && is_digit(s[i])) i++;
    }
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || !is_digit(s[i])) {
            char d[16];
            return fail(p, i, "invalid number: expected a digit after '.', found %s",
                        describe_at(p, i, d, sizeof d));
        }
        while (i < p->len && is_digit(s[i])) i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || !is_digit(s[i])) {
            char d[16];
            return fail(p, i, "invalid number: expected a digit in the exponent, found %s",
                        describe_at(p, i, d, sizeof d));
        }
        while (i < p->len && is_digit(s[i])) i++;
    }
    size_t n = i - start;
    char *dst = pool_reserve(p, n + 1);
    if (!dst) return oom(p);
    memcpy(dst, s + start, n);
    dst[n] = '\0';
    pool_commit(p, n + 1);
    pd_json node = new_node(p, PD_JSON_NUMBER);
    node.str = dst;
    node.len = n;
    node.num = number_value(dst, n);
    p->pos = i;
    return push_node(p, &node);
}

/* ---- values and containers ---------------------------------------------------- */

static pd_status parse_literal(parser *p, const char *word, pd_json_type type) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) {
        char d[16];
        return fail(p, p->pos, "unexpected %s, expected a value", describe_at(p, p->pos, d, sizeof d));
    }
    p->pos += n;
    pd_json node = new_node(p, type);
    return push_node(p, &node);
}

/* A value that is not a container, at s[pos] (pos < len). */
static pd_status parse_scalar(parser *p) {
    unsigned char c = p->s[p->pos];
    if (c == '"') {
        pd_json node = new_node(p, PD_JSON_STRING);
        pd_status st = parse_string(p, &node.str, &node.len);
        if (st != PD_OK) return st;
        return push_node(p, &node);
    }
    if (p->allow_nonfinite) {
        static const struct { const char *word; double value; } nonfinite[] = {
            {"NaN", NAN}, {"Infinity", INFINITY}, {"-Infinity", -INFINITY}};
        for (size_t i = 0; i < sizeof nonfinite / sizeof nonfinite[0]; i++) {
            size_t n = strlen(nonfinite[i].word);
            if (p->len - p->pos >= n && memcmp(p->s + p->pos, nonfinite[i].word, n) == 0) {
                p->pos += n;
                pd_json node = new_node(p, PD_JSON_NUMBER);
                node.str = nonfinite[i].word;   /* never an integer: as_int64 rejects it */
                node.len = n;
                node.num = nonfinite[i].value;
                return push_node(p, &node);
            }
        }
    }
    if (c == '-' || is_digit(c)) return parse_number(p);
    if (c == 't') return parse_literal(p, "true", PD_JSON_TRUE);
    if (c == 'f') return parse_literal(p, "false", PD_JSON_FALSE);
    if (c == 'n') return parse_literal(p, "null", PD_JSON_NULL);
    char d[16];
    return fail(p, p->pos, "unexpected %s, expected a value", describe_at(p, p->pos, d, sizeof d));
}

/* "key" : (whitespace allowed around); sets p->key. */
static pd_status parse_member_key(parser *p) {
    char d[16];
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != '"') {
        if (p->pos < p->len && p->s[p->pos] == '}')
            return fail(p, p->pos, "trailing comma before '}' in object");
        return fail(p, p->pos, "expected a string key in object, found %s",
                    describe_at(p, p->pos, d, sizeof d));
    }
    const char *key = NULL;
    size_t key_len = 0;
    pd_status st = parse_string(p, &key, &key_len);
    if (st != PD_OK) return st;
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ':')
        return fail(p, p->pos, "expected ':' after object key, found %s",
                    describe_at(p, p->pos, d, sizeof d));
    p->pos++;
    p->key = key;
    p->key_len = key_len;
    return PD_OK;
}

static pd_status open_container(parser *p, pd_json_type type) {
    if (p->depth >= PD_JSON_MAX_DEPTH)
        return fail(p, p->pos, "nesting deeper than %d levels", PD_JSON_MAX_DEPTH);
    frame *f = &p->stack[p->depth++];
    f->type = type;
    f->key = p->key;
    f->key_len = p->key_len;
    f->first = p->n_pending;
    f->open_pos = p->pos;
    p->key = NULL;
    p->key_len = 0;
    p->pos++;
    return PD_OK;
}

/* Moves the children of the innermost container into the arena and pushes it. */
static pd_status close_container(parser *p) {
    frame *f = &p->stack[--p->depth];
    size_t n = p->n_pending - f->first;
    pd_json node;
    memset(&node, 0, sizeof node);
    node.type = f->type;
    node.key = f->key;
    node.key_len = f->key_len;
    node.len = n;
    if (n > 0) {
        node.items = pd_arena_alloc(p->arena, n * sizeof(pd_json));
        if (!node.items) return oom(p);
        memcpy(node.items, p->pending + f->first, n * sizeof(pd_json));
    }
    p->n_pending = f->first;
    p->pos++;
    return push_node(p, &node);
}

static pd_status parse_document(parser *p) {
    char d[16];
    for (;;) {
        /* Expecting a value. */
        skip_ws(p);
        if (p->pos >= p->len) {
            if (p->depth == 0) return fail(p, p->pos, "empty input, expected a value");
            return fail(p, p->pos, "unexpected end of input, expected a value");
        }
        unsigned char c = p->s[p->pos];
        if (c == '{' || c == '[') {
            pd_json_type type = c == '{' ? PD_JSON_OBJECT : PD_JSON_ARRAY;
            pd_status st = open_container(p, type);
            if (st != PD_OK) return st;
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == (c == '{' ? '}' : ']')) {
                st = close_container(p);
                if (st != PD_OK) return st;
            } else {
                if (type == PD_JSON_OBJECT) {
                    st = parse_member_key(p);
                    if (st != PD_OK) return st;
                }
                continue;
            }
        } else if (c == ']' && p->depth > 0 && p->stack[p->depth - 1].type == PD_JSON_ARRAY) {
            return fail(p, p->pos, "trailing comma before ']' in array");
        } else {
            pd_status st = parse_scalar(p);
            if (st != PD_OK) return st;
        }
        /* After a value: close finished containers until a ',' asks for another. */
        for (;;) {
            skip_ws(p);
            if (p->depth == 0) {
                if (p->pos != p->len)
                    return fail(p, p->pos, "unexpected %s after the end of the JSON value",
                                describe_at(p, p->pos, d, sizeof d));
                return PD_OK;
            }
            const frame *f = &p->stack[p->depth - 1];
            bool obj = f->type == PD_JSON_OBJECT;
            if (p->pos >= p->len)
                return fail(p, p->pos, "unexpected end of input inside the %s opened at offset %zu",
                            obj ? "object" : "array", f->open_pos);
            c = p->s[p->pos];
            if (c == ',') {
                p->pos++;
                if (obj) {
                    pd_status st = parse_member_key(p);
                    if (st != PD_OK) return st;
                }
                break;
            }
            if (c == (obj ? '}' : ']')) {
                pd_status st = close_container(p);
                if (st != PD_OK) return st;
                continue;
            }
            return fail(p, p->pos, "expected ',' or '%c' in the %s opened at offset %zu, found %s",
                        obj ? '}' : ']', obj ? "object" : "array", f->open_pos,
                        describe_at(p, p->pos, d, sizeof d));
        }
    }
}

static pd_status parse_with(const char *text, size_t len, pd_arena *arena, const pd_json **out,
                            bool allow_nonfinite, pd_error *err);

pd_status pd_json_parse(const char *text, size_t len, pd_arena *arena, const pd_json **out,
                        pd_error *err) {
    return parse_with(text, len, arena, out, false, err);
}

pd_status pd_json_parse_config(const char *text, size_t len, pd_arena *arena,
                               const pd_json **out, pd_error *err) {
    return parse_with(text, len, arena, out, true, err);
}

static pd_status parse_with(const char *text, size_t len, pd_arena *arena, const pd_json **out,
                            bool allow_nonfinite, pd_error *err) {
    if (out) *out = NULL;
    if (!arena || !out || (!text && len > 0))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "pd_json_parse: NULL argument");
    parser p;
    memset(&p, 0, sizeof p);
    p.s = (const unsigned char *)text;
    p.len = len;
    p.arena = arena;
    p.err = err;
    p.allow_nonfinite = allow_nonfinite;
    pd_status st = parse_document(&p);
    if (st != PD_OK) goto fail;
    PD_ASSERT(p.n_pending == 1 && p.depth == 0);
    pd_json *root = pd_arena_alloc(arena, sizeof *root);
    if (!root) {
        st = oom(&p);
        goto fail;
    }
    *root = p.pending[0];
    *out = root;
fail:
    free(p.pending);
    return st;
}

/* ---- queries ------------------------------------------------------------------ */

const pd_json *pd_json_get(const pd_json *obj, const char *key) {
    if (!obj || !key || obj->type != PD_JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->len; i++) {
        const pd_json *m = &obj->items[i];
        if (m->key_len == n && memcmp(m->key, key, n) == 0) return m;
    }
    return NULL;
}

const pd_json *pd_json_at(const pd_json *arr, size_t i) {
    if (!arr || arr->type != PD_JSON_ARRAY || i >= arr->len) return NULL;
    return &arr->items[i];
}

/* Digit k of the concatenation ip[0..ni) || fp. */
static char digit_at(const char *ip, size_t ni, const char *fp, size_t k) {
    return k < ni ? ip[k] : fp[k - ni];
}

/* Exact integer value of a validated number text (see the file comment). */
static bool text_to_int64(const char *s, size_t n, int64_t *out) {
    size_t i = 0;
    bool neg = n > 0 && s[0] == '-';
    if (neg) i++;
    const char *ip = s + i;   /* integer digits */
    size_t ni = 0;
    while (i < n && is_digit((unsigned char)s[i])) i++, ni++;
    const char *fp = s + i;   /* fraction digits */
    size_t nf = 0;
    if (i < n && s[i] == '.') {
        fp = s + ++i;
        while (i < n && is_digit((unsigned char)s[i])) i++, nf++;
    }
    int64_t exp = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = i < n && s[i] == '-';
        if (i < n && (s[i] == '-' || s[i] == '+')) i++;
        for (; i < n && is_digit((unsigned char)s[i]); i++)
            if (exp < ((int64_t)1 << 40)) exp = exp * 10 + (s[i] - '0');
        if (eneg) exp = -exp;
    }
    /* The digit string d = ip || fp, value = d * 10^(exp - nf). */
    size_t total = ni + nf, lead = 0;
    while (lead < total && digit_at(ip, ni, fp, lead) == '0') lead++;
    if (lead == total) {
        *out = 0;
        return true;
    }
    size_t last = total - 1;
    while (digit_at(ip, ni, fp, last) == '0') last--;
    if (nf > ((size_t)1 << 40) || total > ((size_t)1 << 40)) return false;
    int64_t e = exp - (int64_t)nf + (int64_t)(total - 1 - last);
    size_t ndig = last - lead + 1;
    if (e < 0 || (int64_t)ndig + e > 19) return false;
    uint64_t u = 0;
    for (size_t k = lead; k <= last; k++) u = u * 10 + (uint64_t)(digit_at(ip, ni, fp, k) - '0');
    for (int64_t k = 0; k < e; k++) u *= 10;   /* < 10^19 < 2^64: no wrap */
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (u > limit) return false;
    if (neg) *out = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
    else *out = (int64_t)u;
    return true;
}

bool pd_json_as_int64(const pd_json *v, int64_t *out) {
    if (!v || v->type != PD_JSON_NUMBER || !v->str || !isfinite(v->num)) return false;
    int64_t x;
    if (!text_to_int64(v->str, v->len, &x)) return false;
    if (out) *out = x;
    return true;
}

bool pd_json_as_double(const pd_json *v, double *out) {
    if (!v || v->type != PD_JSON_NUMBER) return false;
    if (out) *out = v->num;
    return true;
}

const char *pd_json_as_string(const pd_json *v) {
    return v && v->type == PD_JSON_STRING ? v->str : NULL;
}

bool pd_json_as_bool(const pd_json *v, bool *out) {
    if (!v || (v->type != PD_JSON_TRUE && v->type != PD_JSON_FALSE)) return false;
    if (out) *out = v->type == PD_JSON_TRUE;
    return true;
}

static int cmp_key(const void *a, const void *b) {
    const pd_json *x = *(const pd_json *const *)a, *y = *(const pd_json *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    if (c != 0) return c;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static bool same_key(const pd_json *x, const pd_json *y) {
    return x->key_len == y->key_len && (x->key_len == 0 || memcmp(x->key, y->key, x->key_len) == 0);
}

bool pd_json_has_duplicate_keys(const pd_json *obj) {
    if (!obj || obj->type != PD_JSON_OBJECT || obj->len < 2) return false;
    size_t n = obj->len;
    const pd_json **idx = n <= 8 ? NULL : malloc(n * sizeof *idx);
    if (!idx) {
        /* Small objects (or no memory for the index): pairwise comparison. */
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (same_key(&obj->items[i], &obj->items[j])) return true;
        return false;
    }
    for (size_t i = 0; i < n; i++) idx[i] = &obj->items[i];
    qsort(idx, n, sizeof *idx, cmp_key);   /* O(n log n) whatever the keys */
    bool dup = false;
    for (size_t i = 1; i < n && !dup; i++) dup = same_key(idx[i - 1], idx[i]);
    free(idx);
    return dup;
}

int64_t pd_json_get_int(const pd_json *obj, const char *key, int64_t def) {
    int64_t v;
    return pd_json_as_int64(pd_json_get(obj, key), &v) ? v : def;
}

double pd_json_get_double(const pd_json *obj, const char *key, double def) {
    double v;
    return pd_json_as_double(pd_json_get(obj, key), &v) ? v : def;
}

const char *pd_json_get_string(const pd_json *obj, const char *key, const char *def) {
    const char *s = pd_json_as_string(pd_json_get(obj, key));
    return s ? s : def;
}
