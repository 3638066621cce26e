/*
 * fuzz_json.c - libFuzzer target for the strict JSON parser (src/base/json.c).
 *
 * Input: the raw bytes of one JSON document (so a crashing input is a plain .json
 * file). libFuzzer's comparison tracing finds the grammar's literals on its own; no
 * corpus or dictionary is needed, though any JSON files make a fine corpus.
 *
 * Beyond "no crash, no over-read, no leak", each accepted document is checked against
 * properties that must hold (an abort() here is a finding):
 *   - every string and key is NUL-terminated at len and valid UTF-8 (checked by an
 *     independent decoder below), containers are no deeper than PD_JSON_MAX_DEPTH;
 *   - a NUMBER's double agrees with pd_json_as_int64 whenever that succeeds, and a
 *     short plain integer text always converts, to the strtoll value;
 *   - pd_json_get finds each NUL-free key at or before its own position, pd_json_at
 *     indexes items, pd_json_has_duplicate_keys agrees with a pairwise comparison;
 *   - re-serialising the tree and parsing it again gives an identical tree.
 * Each rejected document must carry a PD_ERR_FORMAT message with its offset.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_json: property violated: %s\n", what);
        abort();
    }
}

/* Independent UTF-8 check: decode each code point and test its range. */
static int utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        unsigned long cp;
        size_t k;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xe0) == 0xc0) k = 2, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0) k = 3, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0) k = 4, cp = c & 0x07;
        else return 0;
        if (n - i < k) return 0;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        unsigned long min = k == 2 ? 0x80 : k == 3 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += k;
    }
    return 1;
}

static void check_number(const pd_json *v) {
    require(v->str && v->len > 0 && v->str[v->len] == '\0' && strlen(v->str) == v->len, "number text");
    double d = 0;
    require(pd_json_as_double(v, &d) && (d == v->num || (d != d && v->num != v->num)), "as_double");
    int64_t x;
    if (pd_json_as_int64(v, &x)) require((double)x == v->num, "as_int64 agrees with the double");
    /* A plain integer of at most 18 digits must convert exactly. */
    size_t digits = v->len - (v->str[0] == '-');
    if (digits <= 18 && strspn(v->str + (v->str[0] == '-'), "0123456789") == digits) {
        require(pd_json_as_int64(v, &x), "short integer converts");
        require(x == strtoll(v->str, NULL, 10), "short integer value");
    }
}

static void check_tree(const pd_json *v, int depth) {
    switch (v->type) {
    case PD_JSON_NULL:
    case PD_JSON_TRUE:
    case PD_JSON_FALSE: {
        bool b;
        require(pd_json_as_bool(v, &b) == (v->type != PD_JSON_NULL), "as_bool");
        break;
    }
    case PD_JSON_NUMBER: check_number(v); break;
    case PD_JSON_STRING:
        require(v->str && v->str[v->len] == '\0', "string NUL-terminated");
        require(utf8_valid((const unsigned char *)v->str, v->len), "string is valid UTF-8");
        require(pd_json_as_string(v) == v->str, "as_string");
        break;
    case PD_JSON_ARRAY:
        require(depth < PD_JSON_MAX_DEPTH, "depth limit");
        require(v->len == 0 || v->items, "array items");
        for (size_t i = 0; i < v->len; i++) {
            require(pd_json_at(v, i) == &v->items[i] && v->items[i].key == NULL, "array element");
            check_tree(&v->items[i], depth + 1);
        }
        require(pd_json_at(v, v->len) == NULL, "pd_json_at past the end");
        break;
    case PD_JSON_OBJECT: {
        require(depth < PD_JSON_MAX_DEPTH, "depth limit");
        bool dup = false;
        for (size_t i = 0; i < v->len; i++) {
            const pd_json *m = &v->items[i];
            require(m->key && m->key[m->key_len] == '\0', "key NUL-terminated");
            require(utf8_valid((const unsigned char *)m->key, m->key_len), "key is valid UTF-8");
            if (strlen(m->key) == m->key_len) {
                const pd_json *g = pd_json_get(v, m->key);
                require(g && g <= m && strcmp(g->key, m->key) == 0, "pd_json_get finds the first match");
            }
            for (size_t j = 0; j < i && !dup && v->len <= 256; j++)
                dup = v->items[j].key_len == m->key_len && memcmp(v->items[j].key, m->key, m->key_len) == 0;
            check_tree(m, depth + 1);
        }
        if (v->len <= 256) require(pd_json_has_duplicate_keys(v) == dup, "duplicate-key detection");
        break;
    }
    default: require(0, "node type");
    }
}

/* ---- re-serialisation ---------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = (b->cap + n) * 2;
        char *np = realloc(b->p, cap);
        require(np != NULL, "out of memory in the fuzzer");
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void put_string(buf *b, const char *s, size_t n) {
    put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(b, esc, 6);
        } else {
            put(b, s + i, 1);
        }
    }
    put(b, "\"", 1);
}

static void serialize(buf *b, const pd_json *v) {
    switch (v->type) {
    case PD_JSON_NULL: put(b, "null", 4); break;
    case PD_JSON_TRUE: put(b, "true", 4); break;
    case PD_JSON_FALSE: put(b, "false", 5); break;
    case PD_JSON_NUMBER: put(b, v->str, v->len); break;
    case PD_JSON_STRING: put_string(b, v->str, v->len); break;
    case PD_JSON_ARRAY:
    case PD_JSON_OBJECT:
        put(b, v->type == PD_JSON_ARRAY ? "[" : "{", 1);
        for (size_t i = 0; i < v->len; i++) {
            if (i) put(b, ",", 1);
            if (v->type == PD_JSON_OBJECT) {
                put_string(b, v->items[i].key, v->items[i].key_len);
                put(b, ":", 1);
            }
            serialize(b, &v->items[i]);
        }
        put(b, v->type == PD_JSON_ARRAY ? "]" : "}", 1);
        break;
    }
}

static int same_bytes(const char *a, size_t na, const char *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na) == 0);
}

static int same_tree(const pd_json *a, const pd_json *b) {
    if (a->type != b->type || a->len != b->len) return 0;
    if ((a->key == NULL) != (b->key == NULL)) return 0;
    if (a->key && !same_bytes(a->key, a->key_len, b->key, b->key_len)) return 0;
    switch (a->type) {
    case PD_JSON_NUMBER:
        return same_bytes(a->str, a->len, b->str, b->len) && memcmp(&a->num, &b->num, sizeof a->num) == 0;
    case PD_JSON_STRING: return same_bytes(a->str, a->len, b->str, b->len);
    case PD_JSON_ARRAY:
    case PD_JSON_OBJECT:
        for (size_t i = 0; i < a->len; i++)
            if (!same_tree(&a->items[i], &b->items[i])) return 0;
        return 1;
    default: return 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pd_arena arena;
    pd_arena_init(&arena, 0);
    pd_error err = {PD_OK, ""};
    const pd_json *root = NULL;
    pd_status st = pd_json_parse((const char *)data, size, &arena, &root, &err);
    if (st == PD_OK) {
        require(root != NULL && root->key == NULL, "root");
        check_tree(root, 0);
        buf b = {NULL, 0, 0};
        serialize(&b, root);
        const pd_json *again = NULL;
        pd_error err2 = {PD_OK, ""};
        require(pd_json_parse(b.p, b.n, &arena, &again, &err2) == PD_OK, "re-serialised tree parses");
        require(same_tree(root, again), "re-serialised tree is identical");
        free(b.p);
    } else {
        require(root == NULL, "no tree on failure");
        require(st == PD_ERR_FORMAT || st == PD_ERR_OOM, "status");
        require(err.code == st && (st == PD_ERR_OOM || strstr(err.msg, "offset") != NULL), "message with offset");
    }
    pd_arena_free(&arena);
    return 0;
}
