/*
 * test_json.c - the strict JSON parser (src/base/json.c): valid documents of every
 * type, string decoding (escapes, surrogate pairs, raw UTF-8), nesting up to and past
 * PD_JSON_MAX_DEPTH, every rejection rule with an informative message, exact int64
 * conversion, lookups, duplicate keys, and a large CLIP vocab.json from the golden data.
 */
#include <locale.h>
#include <stdint.h>

#include "base/json.h"
#include "test.h"

/* Parses text (strlen) into a fresh arena kept by the caller. */
static pd_status parse_str(pd_arena *a, const char *text, const pd_json **out, pd_error *err) {
    pd_arena_init(a, 0);
    return pd_json_parse(text, strlen(text), a, out, err);
}

/* Expects text[0..len) to be rejected with PD_ERR_FORMAT and a message holding needle
 * and "offset". */
static void expect_reject_n(const char *text, size_t len, const char *needle) {
    pd_arena a;
    pd_arena_init(&a, 0);
    pd_error err = {PD_OK, ""};
    const pd_json *root = (const pd_json *)&a;   /* must be reset to NULL */
    pd_status st = pd_json_parse(text, len, &a, &root, &err);
    CHECK_MSG(st == PD_ERR_FORMAT, "'%.*s' parsed with status %d, expected PD_ERR_FORMAT", (int)len, text, st);
    CHECK_MSG(root == NULL, "'%.*s': *out not NULL on failure", (int)len, text);
    CHECK_MSG(err.code == PD_ERR_FORMAT, "'%.*s': err.code %d", (int)len, text, err.code);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "'%.*s': message '%s' lacks '%s'", (int)len, text, err.msg, needle);
    CHECK_MSG(strstr(err.msg, "offset") != NULL, "'%.*s': message '%s' lacks the offset", (int)len, text, err.msg);
    pd_arena_free(&a);
}

static void expect_reject(const char *text, const char *needle) { expect_reject_n(text, strlen(text), needle); }

static void test_scalars(void) {
    pd_arena a;
    pd_error err;
    const pd_json *v;
    CHECK(parse_str(&a, "null", &v, &err) == PD_OK && v->type == PD_JSON_NULL);
    pd_arena_free(&a);
    bool b = false;
    CHECK(parse_str(&a, " true ", &v, &err) == PD_OK && pd_json_as_bool(v, &b) && b);
    pd_arena_free(&a);
    CHECK(parse_str(&a, "\t\r\nfalse\n", &v, &err) == PD_OK && pd_json_as_bool(v, &b) && !b);
    pd_arena_free(&a);
    CHECK(parse_str(&a, "\"hi\"", &v, &err) == PD_OK);
    CHECK(v && v->type == PD_JSON_STRING && v->len == 2 && strcmp(pd_json_as_string(v), "hi") == 0);
    CHECK(v && v->key == NULL);
    pd_arena_free(&a);
    CHECK(parse_str(&a, "\"\"", &v, &err) == PD_OK && v->len == 0 && strcmp(v->str, "") == 0);
    pd_arena_free(&a);

    struct {
        const char *text;
        double value;
    } nums[] = {
        {"0", 0.0},          {"-0", -0.0},        {"1", 1.0},         {"-1", -1.0},
        {"1.5", 1.5},        {"-0.25", -0.25},    {"1e3", 1000.0},    {"1E+2", 100.0},
        {"2.5e-3", 2.5e-3},  {"0.1", 0.1},        {"123456789012345678901234567890", 1.2345678901234568e29},
        {"1e400", INFINITY}, {"-1e400", -INFINITY}, {"1e-400", 0.0},  {"3.141592653589793238462643", 3.141592653589793},
        {"0.000001", 1e-6},  {"9007199254740993", 9007199254740992.0}, {"1.7976931348623157e308", 1.7976931348623157e308},
        /* 17 significant digits: two roundings ((double)m, then * 10^e) would be wrong. */
        {"61792032895582771e-12", 61792032895582771e-12}, {"2520487.3080688653", 2520487.3080688653},
        {"95203984662462588e14", 95203984662462588e14},   {"79953072419543.602", 79953072419543.602},
    };
    for (size_t i = 0; i < PD_COUNT(nums); i++) {
        CHECK_MSG(parse_str(&a, nums[i].text, &v, &err) == PD_OK, "'%s': %s", nums[i].text, err.msg);
        double d = NAN;
        CHECK_MSG(v && pd_json_as_double(v, &d) && d == nums[i].value, "'%s' -> %.17g, expected %.17g",
                  nums[i].text, d, nums[i].value);
        /* num equals a correctly rounded strtod of the raw text, which is kept verbatim. */
        CHECK_MSG(v && strcmp(v->str, nums[i].text) == 0 && v->len == strlen(nums[i].text), "'%s' raw text", nums[i].text);
        CHECK_MSG(v && d == strtod(nums[i].text, NULL), "'%s' differs from strtod", nums[i].text);
        CHECK(!pd_json_as_string(v));
        pd_arena_free(&a);
    }
    CHECK(parse_str(&a, "-0", &v, &err) == PD_OK && signbit(v->num));
    pd_arena_free(&a);
}

static void test_containers(void) {
    pd_arena a;
    pd_error err;
    const pd_json *v;
    const char *doc =
        "{ \"name\" : \"fox\", \"n\": 3, \"pi\": 3.25, \"ok\": true, \"no\": false, \"nil\": null,\n"
        "  \"list\": [1, [2, 3], {\"k\": \"v\"}, [], {}], \"empty\": {} }";
    CHECK_MSG(parse_str(&a, doc, &v, &err) == PD_OK, "%s", err.msg);
    CHECK(v->type == PD_JSON_OBJECT && v->len == 8);
    CHECK(strcmp(v->items[0].key, "name") == 0 && v->items[0].key_len == 4);
    CHECK(strcmp(pd_json_get_string(v, "name", "?"), "fox") == 0);
    CHECK_EQ_INT(pd_json_get_int(v, "n", -1), 3);
    CHECK_NEAR(pd_json_get_double(v, "pi", 0), 3.25, 0);
    CHECK_NEAR(pd_json_get_double(v, "n", 0), 3.0, 0);
    bool b = false;
    CHECK(pd_json_as_bool(pd_json_get(v, "ok"), &b) && b);
    CHECK(pd_json_as_bool(pd_json_get(v, "no"), &b) && !b);
    CHECK(pd_json_get(v, "nil") && pd_json_get(v, "nil")->type == PD_JSON_NULL);
    CHECK(!pd_json_as_bool(pd_json_get(v, "nil"), &b));
    /* Defaults: missing keys and wrong types. */
    CHECK_EQ_INT(pd_json_get_int(v, "missing", -7), -7);
    CHECK_EQ_INT(pd_json_get_int(v, "name", -7), -7);
    CHECK_EQ_INT(pd_json_get_int(v, "pi", -7), -7);
    CHECK_NEAR(pd_json_get_double(v, "name", 2.5), 2.5, 0);
    CHECK(strcmp(pd_json_get_string(v, "n", "dflt"), "dflt") == 0);
    CHECK(pd_json_get_string(v, "missing", NULL) == NULL);
    CHECK(pd_json_get(v, "") == NULL);
    CHECK(pd_json_get(v, "nam") == NULL && pd_json_get(v, "names") == NULL);

    const pd_json *list = pd_json_get(v, "list");
    CHECK(list && list->type == PD_JSON_ARRAY && list->len == 5);
    CHECK(pd_json_at(list, 0) && pd_json_at(list, 0)->key == NULL);
    CHECK_EQ_INT(pd_json_at(list, 0) ? (int64_t)pd_json_at(list, 0)->num : -1, 1);
    const pd_json *inner = pd_json_at(list, 1);
    int64_t x = 0;
    CHECK(inner && inner->len == 2 && pd_json_as_int64(pd_json_at(inner, 1), &x) && x == 3);
    CHECK(strcmp(pd_json_get_string(pd_json_at(list, 2), "k", "?"), "v") == 0);
    CHECK(pd_json_at(list, 3)->type == PD_JSON_ARRAY && pd_json_at(list, 3)->len == 0);
    CHECK(pd_json_at(list, 4)->type == PD_JSON_OBJECT && pd_json_at(list, 4)->len == 0);
    CHECK(pd_json_at(list, 5) == NULL);
    CHECK(pd_json_at(list, SIZE_MAX) == NULL);
    CHECK(pd_json_at(v, 0) == NULL);          /* an object is not an array */
    CHECK(pd_json_get(list, "k") == NULL);    /* an array is not an object */
    CHECK(pd_json_get(NULL, "k") == NULL && pd_json_at(NULL, 0) == NULL);
    CHECK(!pd_json_as_int64(NULL, &x) && !pd_json_as_double(NULL, NULL) && !pd_json_as_string(NULL));
    const pd_json *empty = pd_json_get(v, "empty");
    CHECK(empty && empty->type == PD_JSON_OBJECT && empty->len == 0 && !pd_json_has_duplicate_keys(empty));
    pd_arena_free(&a);

    CHECK(parse_str(&a, "[]", &v, &err) == PD_OK && v->type == PD_JSON_ARRAY && v->len == 0);
    pd_arena_free(&a);
    CHECK(parse_str(&a, " { } ", &v, &err) == PD_OK && v->type == PD_JSON_OBJECT && v->len == 0);
    pd_arena_free(&a);
    /* Keys are set on members, including on containers. */
    CHECK(parse_str(&a, "{\"a\":{\"b\":[{\"c\":1}]}}", &v, &err) == PD_OK);
    const pd_json *c = pd_json_get(pd_json_at(pd_json_get(pd_json_get(v, "a"), "b"), 0), "c");
    CHECK(c && strcmp(c->key, "c") == 0 && pd_json_get_int(pd_json_at(pd_json_get(pd_json_get(v, "a"), "b"), 0), "c", 0) == 1);
    CHECK(strcmp(pd_json_get(v, "a")->key, "a") == 0 && strcmp(pd_json_get(pd_json_get(v, "a"), "b")->key, "b") == 0);
    pd_arena_free(&a);
}

static void test_string_escapes(void) {
    pd_arena a;
    pd_error err;
    const pd_json *v;
    CHECK(parse_str(&a, "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", &v, &err) == PD_OK);
    CHECK(v && strcmp(v->str, "\" \\ / \b \f \n \r \t") == 0);
    pd_arena_free(&a);

    struct {
        const char *json;
        const char *utf8;
        size_t len;
    } cases[] = {
        {"\"\\u0041\"", "A", 1},
        {"\"\\u00e9\"", "\xc3\xa9", 2},
        {"\"\\u00E9t\\u00e9\"", "\xc3\xa9t\xc3\xa9", 5},
        {"\"\\u20AC\"", "\xe2\x82\xac", 3},
        {"\"\\u07ff\\u0800\\uffff\"", "\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 8},
        {"\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80", 4},           /* U+1F600 */
        {"\"\\ud800\\udc00\"", "\xf0\x90\x80\x80", 4},           /* U+10000 */
        {"\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4},           /* U+10FFFF */
        {"\"a\\u0000b\"", "a\0b", 3},                           /* embedded NUL */
        {"\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\xa6\x8a\"", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\xa6\x8a", 14},
        {"\"\xf4\x8f\xbf\xbf\"", "\xf4\x8f\xbf\xbf", 4},         /* raw U+10FFFF */
        {"\"\xed\x9f\xbf\"", "\xed\x9f\xbf", 3},                 /* raw U+D7FF */
    };
    for (size_t i = 0; i < PD_COUNT(cases); i++) {
        CHECK_MSG(parse_str(&a, cases[i].json, &v, &err) == PD_OK, "case %zu: %s", i, err.msg);
        CHECK_MSG(v && v->len == cases[i].len && memcmp(v->str, cases[i].utf8, cases[i].len) == 0 &&
                      v->str[v->len] == '\0',
                  "case %zu (%s) decoded wrongly (len %zu)", i, cases[i].json, v ? v->len : 0);
        pd_arena_free(&a);
    }
    /* Escaped keys decode too. */
    CHECK(parse_str(&a, "{\"\\u0041b\": 1, \"x\\ny\": 2}", &v, &err) == PD_OK);
    CHECK_EQ_INT(pd_json_get_int(v, "Ab", 0), 1);
    CHECK_EQ_INT(pd_json_get_int(v, "x\ny", 0), 2);
    pd_arena_free(&a);
}

static void test_reject_structure(void) {
    expect_reject("", "empty input");
    expect_reject("   \n ", "empty input");
    expect_reject("{} x", "after the end");
    expect_reject("1 2", "after the end");
    expect_reject("[1] ]", "after the end");
    expect_reject("{\"a\":1}{}", "after the end");
    expect_reject("[1, 2,]", "trailing comma");
    expect_reject("{\"a\": 1,}", "trailing comma");
    expect_reject("[,1]", "expected a value");
    expect_reject("{\"a\" 1}", "expected ':'");
    expect_reject("{\"a\": 1 \"b\": 2}", "expected ',' or '}'");
    expect_reject("[1 2]", "expected ',' or ']'");
    expect_reject("{a: 1}", "expected a string key");
    expect_reject("{'a': 1}", "expected a string key");
    expect_reject("['a']", "unexpected ''', expected a value");
    expect_reject("{1: 2}", "expected a string key");
    expect_reject("[1, 2", "end of input inside the array opened at offset 0");
    expect_reject("{\"a\": [1, {\"b\": 2}", "end of input inside the array opened at offset 6");
    expect_reject("{\"a\":", "end of input");
    expect_reject("[}", "unexpected '}'");
    expect_reject("{]", "expected a string key");
    expect_reject("tru", "expected a value");
    expect_reject("nul", "expected a value");
    expect_reject("True", "unexpected 'T'");
    expect_reject("nulls", "after the end");
    expect_reject("// c\n1", "unexpected '/'");
    expect_reject("[1] // c", "unexpected '/'");
    expect_reject("\xef\xbb\xbf{}", "byte 0xef");   /* a BOM is not JSON */
    expect_reject("\x0c" "1", "byte 0x0c");          /* form feed is not JSON whitespace */
    expect_reject_n("[1,\0 2]", 7, "byte 0x00");
    /* The offset is the position of the fault. */
    expect_reject("[1, 2, x]", "offset 7");
    expect_reject("{\"key\": [true, fals]}", "offset 15");
}

static void test_reject_strings(void) {
    expect_reject("\"abc", "unterminated string");
    expect_reject("\"abc\\\"", "unterminated string");
    expect_reject("[\"a\nb\"]", "unescaped control character 0x0a");
    expect_reject("\"a\tb\"", "unescaped control character 0x09");
    expect_reject("\"\x01\"", "control character 0x01");
    expect_reject("\"\x1f\"", "control character 0x1f");
    expect_reject_n("\"a\0b\"", 5, "control character 0x00");
    expect_reject("\"\\x41\"", "invalid escape");
    expect_reject("\"\\U0041\"", "invalid escape");
    expect_reject("\"\\'\"", "invalid escape");
    expect_reject("\"\\u12\"", "truncated \\u escape");
    expect_reject("\"\\u12G4\"", "invalid \\u escape");
    expect_reject("\"\\u-123\"", "invalid \\u escape");
    expect_reject("\"\\uD83D\"", "lone high surrogate \\uD83D");
    expect_reject("\"\\uD83Dx\"", "lone high surrogate");
    expect_reject("\"\\uD83D\\u0041\"", "lone high surrogate");
    expect_reject("\"\\uD83D\\uD83D\"", "lone high surrogate");
    expect_reject("\"\\uDE00\"", "lone low surrogate \\uDE00");
    expect_reject("\"\\uDE00\\uD83D\"", "lone low surrogate");
    /* Invalid UTF-8 in raw string bytes. */
    expect_reject("\"\xff\"", "invalid UTF-8 byte 0xff");
    expect_reject("\"\x80\"", "invalid UTF-8 byte 0x80");                 /* stray continuation */
    expect_reject("\"\xc0\xaf\"", "invalid UTF-8 byte 0xc0");             /* overlong '/' */
    expect_reject("\"\xc1\xbf\"", "invalid UTF-8 byte 0xc1");
    expect_reject("\"\xe0\x80\xaf\"", "invalid UTF-8 byte 0xe0");         /* overlong 3-byte */
    expect_reject("\"\xf0\x80\x80\xaf\"", "invalid UTF-8 byte 0xf0");     /* overlong 4-byte */
    expect_reject("\"\xed\xa0\x80\"", "invalid UTF-8 byte 0xed");         /* encoded surrogate */
    expect_reject("\"\xf4\x90\x80\x80\"", "invalid UTF-8 byte 0xf4");     /* > U+10FFFF */
    expect_reject("\"\xf5\x80\x80\x80\"", "invalid UTF-8 byte 0xf5");
    expect_reject("\"\xe2\x82\"", "invalid UTF-8 byte 0xe2");             /* truncated before the quote */
    expect_reject("\"\xe2\x82", "unterminated string");
    expect_reject("\"\xc3\"", "invalid UTF-8 byte 0xc3");
    expect_reject("{\"k\xfe\": 1}", "invalid UTF-8 byte 0xfe");           /* in a key */
    expect_reject("\xc3\xa9", "byte 0xc3");                               /* outside strings */
}

static void test_reject_numbers(void) {
    expect_reject("01", "leading zero");
    expect_reject("-01", "leading zero");
    expect_reject("[00]", "leading zero");
    expect_reject("+1", "unexpected '+'");
    expect_reject(".5", "unexpected '.'");
    expect_reject("[-.5]", "expected a digit after '-'");
    expect_reject("1.", "expected a digit after '.'");
    expect_reject("1.e3", "expected a digit after '.'");
    expect_reject("-", "expected a digit after '-'");
    expect_reject("- 1", "expected a digit after '-'");
    expect_reject("1e", "expected a digit in the exponent");
    expect_reject("1e+", "expected a digit in the exponent");
    expect_reject("[1E-]", "expected a digit in the exponent");
    expect_reject("NaN", "unexpected 'N'");
    expect_reject("[Infinity]", "unexpected 'I'");
    expect_reject("-Infinity", "expected a digit after '-'");
    expect_reject("0x10", "after the end");
    expect_reject("1.5.2", "after the end");
    expect_reject("[1e5e5]", "expected ',' or ']'");
}

static void test_depth(void) {
    char buf[2 * (PD_JSON_MAX_DEPTH + 1) + 1];
    pd_arena a;
    pd_error err;
    const pd_json *v;
    /* Exactly PD_JSON_MAX_DEPTH levels parse. */
    int d = PD_JSON_MAX_DEPTH;
    for (int i = 0; i < d; i++) buf[i] = '[', buf[2 * d - 1 - i] = ']';
    buf[2 * d] = '\0';
    CHECK_MSG(parse_str(&a, buf, &v, &err) == PD_OK, "depth %d: %s", d, err.msg);
    int depth = 0;
    for (const pd_json *n = v; n && n->type == PD_JSON_ARRAY; n = pd_json_at(n, 0)) depth++;
    CHECK_EQ_INT(depth, d);
    pd_arena_free(&a);
    /* One more level fails with a message naming the limit. */
    d = PD_JSON_MAX_DEPTH + 1;
    for (int i = 0; i < d; i++) buf[i] = '[', buf[2 * d - 1 - i] = ']';
    buf[2 * d] = '\0';
    expect_reject(buf, "nesting deeper than 64 levels");
    /* Objects count too. */
    char obj[16 * (PD_JSON_MAX_DEPTH + 2)];
    size_t n = 0;
    for (int i = 0; i < PD_JSON_MAX_DEPTH + 1; i++) n += (size_t)snprintf(obj + n, sizeof obj - n, "{\"a\":");
    snprintf(obj + n, sizeof obj - n, "1");
    expect_reject(obj, "nesting deeper");
    /* Very deep input is refused early, without recursion (no stack overflow). */
    size_t big = 1000000;
    char *deep = malloc(big);
    CHECK(deep != NULL);
    if (!deep) return;
    memset(deep, '[', big);
    expect_reject_n(deep, big, "offset 64");
    free(deep);
}

static void test_int64(void) {
    struct {
        const char *text;
        bool ok;
        int64_t value;
    } cases[] = {
        {"0", true, 0},
        {"-0", true, 0},
        {"42", true, 42},
        {"-42", true, -42},
        {"9223372036854775807", true, INT64_MAX},
        {"-9223372036854775808", true, INT64_MIN},
        {"9223372036854775808", false, 0},
        {"-9223372036854775809", false, 0},
        {"18446744073709551616", false, 0},
        {"99999999999999999999999", false, 0},
        {"1.5", false, 0},
        {"-0.5", false, 0},
        {"1e-3", false, 0},
        {"1e400", false, 0},
        {"1e19", false, 0},
        {"1e18", true, 1000000000000000000},
        {"1e3", true, 1000},
        {"1E+3", true, 1000},
        {"1.0", true, 1},
        {"1.000", true, 1},
        {"2.50e1", true, 25},
        {"10000e-1", true, 1000},
        {"100e-2", true, 1},
        {"100e-3", false, 0},
        {"12345678901234567890e-1", true, 1234567890123456789},
        {"0.0e99999999999999999999", true, 0},
        {"0e-5", true, 0},
        {"9.223372036854775807e18", true, INT64_MAX},
        {"9.223372036854775808e18", false, 0},
        {"-9.223372036854775808e18", true, INT64_MIN},
        {"1e99999999999999999999", false, 0},
        {"1e-99999999999999999999", false, 0},
        {"0.00000000000000000000000000000001e32", true, 1},
    };
    pd_arena a;
    pd_error err;
    const pd_json *v;
    for (size_t i = 0; i < PD_COUNT(cases); i++) {
        CHECK_MSG(parse_str(&a, cases[i].text, &v, &err) == PD_OK, "'%s': %s", cases[i].text, err.msg);
        int64_t x = 12345;
        bool ok = pd_json_as_int64(v, &x);
        CHECK_MSG(ok == cases[i].ok, "as_int64('%s') returned %d", cases[i].text, ok);
        if (ok && cases[i].ok) {
            CHECK_MSG(x == cases[i].value, "as_int64('%s') = %lld, expected %lld", cases[i].text, (long long)x,
                      (long long)cases[i].value);
            CHECK_MSG((double)x == v->num, "'%s': the double %.17g disagrees with %lld", cases[i].text, v->num,
                      (long long)x);
        }
        if (!ok) CHECK_MSG(x == 12345, "as_int64('%s') wrote *out on failure", cases[i].text);
        pd_arena_free(&a);
    }
    CHECK(parse_str(&a, "[\"1\", true, null]", &v, &err) == PD_OK);
    int64_t x;
    for (size_t i = 0; i < 3; i++) CHECK(!pd_json_as_int64(pd_json_at(v, i), &x));
    pd_arena_free(&a);
}

static void test_duplicate_keys(void) {
    pd_arena a;
    pd_error err;
    const pd_json *v;
    CHECK(parse_str(&a, "{\"a\": 1, \"b\": 2, \"a\": 3}", &v, &err) == PD_OK);
    CHECK(pd_json_has_duplicate_keys(v));
    CHECK_EQ_INT(pd_json_get_int(v, "a", 0), 1);   /* the first one wins */
    CHECK_EQ_INT(v->len, 3);
    pd_arena_free(&a);
    CHECK(parse_str(&a, "{\"a\": 1, \"b\": 2, \"ab\": 3, \"\": 4}", &v, &err) == PD_OK);
    CHECK(!pd_json_has_duplicate_keys(v));
    CHECK_EQ_INT(pd_json_get_int(v, "", 0), 4);
    pd_arena_free(&a);
    /* Keys that differ only after an embedded NUL are different keys. */
    CHECK(parse_str(&a, "{\"a\\u0000b\": 1, \"a\\u0000c\": 2, \"a\": 3, \"a\\u0000\": 4}", &v, &err) == PD_OK);
    CHECK(!pd_json_has_duplicate_keys(v));
    pd_arena_free(&a);
    CHECK(parse_str(&a, "{\"a\\u0000b\": 1, \"x\": 0, \"a\\u0000b\": 2}", &v, &err) == PD_OK);
    CHECK(pd_json_has_duplicate_keys(v));
    pd_arena_free(&a);
    /* Duplicates only count directly inside the object. */
    CHECK(parse_str(&a, "{\"a\": {\"x\": 1}, \"b\": {\"x\": 2}}", &v, &err) == PD_OK);
    CHECK(!pd_json_has_duplicate_keys(v));
    pd_arena_free(&a);
    CHECK(parse_str(&a, "[1, 1]", &v, &err) == PD_OK && !pd_json_has_duplicate_keys(v));
    pd_arena_free(&a);
    CHECK(!pd_json_has_duplicate_keys(NULL));

    /* Large objects (the sorted path): unique keys, then one duplicate far apart. */
    size_t n = 5000, cap = n * 24 + 64, len = 0;
    char *doc = malloc(cap);
    CHECK(doc != NULL);
    if (!doc) return;
    for (int pass = 0; pass < 2; pass++) {
        len = 0;
        doc[len++] = '{';
        for (size_t i = 0; i < n; i++) {
            size_t id = pass == 1 && i == n - 1 ? 17 : i;
            len += (size_t)snprintf(doc + len, cap - len, "%s\"k%zu\": %zu", i ? "," : "", id, i);
        }
        doc[len++] = '}';
        pd_arena_init(&a, 0);
        CHECK(pd_json_parse(doc, len, &a, &v, &err) == PD_OK);
        CHECK_EQ_INT(v->len, n);
        CHECK_EQ_INT(pd_json_has_duplicate_keys(v), pass == 1);
        CHECK_EQ_INT(pd_json_get_int(v, "k17", -1), 17);
        CHECK_EQ_INT(pd_json_get_int(v, "k4998", -1), 4998);
        pd_arena_free(&a);
    }
    free(doc);
}

static void test_not_nul_terminated(void) {
    /* The input is read only up to len: a value cut off by len is incomplete. */
    const char text[] = "[12345]";
    pd_arena a;
    pd_error err;
    const pd_json *v;
    pd_arena_init(&a, 0);
    CHECK(pd_json_parse(text, 4, &a, &v, &err) == PD_ERR_FORMAT);   /* "[123" */
    CHECK_STR_CONTAINS(err.msg, "end of input");
    CHECK(pd_json_parse(text + 1, 3, &a, &v, &err) == PD_OK && v->num == 123.0);   /* "123" */
    CHECK(pd_json_parse("truex", 4, &a, &v, &err) == PD_OK && v->type == PD_JSON_TRUE);
    CHECK(pd_json_parse("\"ab\"", 3, &a, &v, &err) == PD_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.msg, "unterminated string");
    CHECK(pd_json_parse("\"\\u00411\"", 7, &a, &v, &err) == PD_ERR_FORMAT);   /* "\u0041 without closing quote */
    CHECK(pd_json_parse(NULL, 0, &a, &v, &err) == PD_ERR_FORMAT);
    CHECK(pd_json_parse(NULL, 5, &a, &v, &err) == PD_ERR_INVALID_ARG);
    CHECK(pd_json_parse("1", 1, &a, &v, NULL) == PD_OK);   /* NULL err is allowed */
    CHECK(pd_json_parse("x", 1, &a, &v, NULL) == PD_ERR_FORMAT);
    pd_arena_free(&a);
}

static void test_large_array(void) {
    /* 200k elements: the contiguous items survive the pending-vector growth. */
    size_t n = 200000, cap = n * 8 + 16, len = 0;
    char *doc = malloc(cap);
    CHECK(doc != NULL);
    if (!doc) return;
    doc[len++] = '[';
    for (size_t i = 0; i < n; i++) len += (size_t)snprintf(doc + len, cap - len, "%s%zu", i ? "," : "", i % 1000);
    doc[len++] = ']';
    pd_arena a;
    pd_error err;
    const pd_json *v;
    pd_arena_init(&a, 0);
    CHECK(pd_json_parse(doc, len, &a, &v, &err) == PD_OK);
    CHECK_EQ_INT(v->len, n);
    bool all = true;
    for (size_t i = 0; i < n && all; i++) {
        int64_t x;
        all = pd_json_as_int64(pd_json_at(v, i), &x) && x == (int64_t)(i % 1000);
    }
    CHECK(all);
    pd_arena_free(&a);
    free(doc);
}

static void test_locale_independent(void) {
    /* Under a locale whose decimal point is ',' strtod alone would stop at '.'. */
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "ru_RU.UTF-8"};
    const char *got = NULL;
    for (size_t i = 0; i < PD_COUNT(names) && !got; i++) got = setlocale(LC_NUMERIC, names[i]);
    if (!got) PD_SKIP("no locale with a ',' decimal point installed");
    pd_arena a;
    pd_error err;
    const pd_json *v;
    CHECK(parse_str(&a, "[1.5, 3.14159265358979323846264338, 2.5e-300]", &v, &err) == PD_OK);
    CHECK(pd_json_at(v, 0)->num == 1.5);
    CHECK_NEAR(pd_json_at(v, 1)->num, 3.141592653589793, 1e-15);
    CHECK_NEAR(pd_json_at(v, 2)->num / 2.5e-300, 1.0, 1e-15);
    pd_arena_free(&a);
    setlocale(LC_NUMERIC, "C");
}

static void test_golden_vocab(void) {
    PD_REQUIRE_GOLDEN();
    char path[1024];
    pd_test_golden_path(path, sizeof path, "models/tiny-sd15/tokenizer/vocab.json");
    FILE *fp = fopen(path, "rb");
    CHECK_MSG(fp != NULL, "cannot open %s", path);
    if (!fp) return;
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)size);
    CHECK(buf && fread(buf, 1, (size_t)size, fp) == (size_t)size);
    fclose(fp);
    if (!buf) return;
    pd_arena a;
    pd_error err = {PD_OK, ""};
    const pd_json *v = NULL;
    pd_arena_init(&a, 0);
    CHECK_MSG(pd_json_parse(buf, (size_t)size, &a, &v, &err) == PD_OK, "%s", err.msg);
    if (v) {
        CHECK_EQ_INT(v->type, PD_JSON_OBJECT);
        CHECK_EQ_INT(v->len, 49408);
        CHECK_EQ_INT(pd_json_get_int(v, "!", -1), 0);
        CHECK_EQ_INT(pd_json_get_int(v, "hello</w>", -1), 3306);
        CHECK_EQ_INT(pd_json_get_int(v, "<|endoftext|>", -1), 49407);
        CHECK(!pd_json_has_duplicate_keys(v));
        /* Every value is a token id in range. */
        bool ok = true;
        for (size_t i = 0; i < v->len && ok; i++) {
            int64_t id;
            ok = pd_json_as_int64(&v->items[i], &id) && id >= 0 && id < 49408;
        }
        CHECK(ok);
    }
    pd_arena_free(&a);
    free(buf);
}

/* Config files written by Python may hold NaN/Infinity: accepted by the config parser
 * only, never by the strict one (safetensors headers). */
static void test_config_nonfinite(void) {
    const char *doc = "{\"lambda_min_clipped\": -Infinity, \"a\": Infinity, \"b\": NaN, \"c\": 3}";
    pd_arena a;
    pd_arena_init(&a, 0);
    const pd_json *root = NULL;
    pd_error err = {0};
    CHECK(pd_json_parse(doc, strlen(doc), &a, &root, &err) == PD_ERR_FORMAT);
    CHECK(pd_json_parse_config(doc, strlen(doc), &a, &root, &err) == PD_OK);
    if (root) {
        double d = 0;
        int64_t i = 0;
        CHECK(pd_json_as_double(pd_json_get(root, "lambda_min_clipped"), &d) && isinf(d) && d < 0);
        CHECK(pd_json_as_double(pd_json_get(root, "a"), &d) && isinf(d) && d > 0);
        CHECK(pd_json_as_double(pd_json_get(root, "b"), &d) && isnan(d));
        CHECK(!pd_json_as_int64(pd_json_get(root, "a"), &i));
        CHECK(!pd_json_as_int64(pd_json_get(root, "lambda_min_clipped"), &i));
        CHECK(pd_json_as_int64(pd_json_get(root, "c"), &i) && i == 3);
    }
    const char *bad = "{\"x\": -Inf}";
    CHECK(pd_json_parse_config(bad, strlen(bad), &a, &root, &err) == PD_ERR_FORMAT);
    pd_arena_free(&a);
}

int main(void) {
    PD_RUN(test_config_nonfinite);
    PD_RUN(test_scalars);
    PD_RUN(test_containers);
    PD_RUN(test_string_escapes);
    PD_RUN(test_reject_structure);
    PD_RUN(test_reject_strings);
    PD_RUN(test_reject_numbers);
    PD_RUN(test_depth);
    PD_RUN(test_int64);
    PD_RUN(test_duplicate_keys);
    PD_RUN(test_not_nul_terminated);
    PD_RUN(test_large_array);
    PD_RUN(test_locale_independent);
    PD_RUN(test_golden_vocab);
    return pd_test_summary();
}
