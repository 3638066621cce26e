/*
 * test_tokenizer.c - the CLIP BPE tokenizer against the golden ids and hostile files.
 *
 * Golden parity: every prompt of cases/tokenizer.json must give exactly
 * bpe_ids_without_ftfy (or bpe_ids where ftfy changes nothing), and the 77-id rows
 * [BOS] + bpe[:75] + [EOS] + padding must equal the safetensors tensors
 * input_ids_pad49407_without_ftfy (all prompts) and input_ids_pad0 (prompts ftfy
 * leaves alone). The tricky-text cases were produced by the Python reference
 * (simple_tokenizer.py minus ftfy, Python 3.11, regex module) on the same vocab.
 * Vocabulary formats (vocab.json + merges.txt, bpe_simple_vocab_16e6.txt, .txt.gz)
 * must agree id for id. Malformed files must fail with messages naming the file and
 * the line or key.
 */
#include <stdint.h>
#include <unistd.h>

#include "base/arena.h"
#include "base/file.h"
#include "base/json.h"
#include "io/safetensors.h"
#include "test.h"
#include "text/clip_tokenizer.h"

typedef struct tricky_case {
    const char *text;
    size_t len;
    int n;
    int32_t ids[80];
} tricky_case;

/* Expected ids from the Python reference (openai simple_tokenizer without ftfy). */
static const tricky_case tricky[] = {
    /* html.unescape twice, numeric rules (0x80 -> euro, 0 -> U+FFFD, surrogate ->
     * U+FFFD, 1 -> nothing, > U+10FFFF -> U+FFFD), legacy names without ';' */
    {"&amp;lt;b&amp;gt; &#x41;&#65 &#128;&#x80; &#0;|&#xD800;|&#1;|&#x110000;", 71, 12, {283, 321, 285, 3894, 34919, 6309, 47356, 91, 47356, 91, 91, 39802}},
    {"&ampxyz &notit; &NotEqualTilde; &unknown; &#; &#x; & amp; &AMP&LT &lt", 69, 27, {261, 20023, 345, 126, 361, 585, 282, 22684, 224, 136, 372, 261, 8685, 282, 5, 2, 282, 5, 258, 343, 282, 261, 6259, 282, 5, 283, 283}},
    /* final sigma, case-ignorable characters */
    {"\316\243\316\221\316\243 \316\243 a\316\243' \316\243\316\243\316\243 \341\274\210\316\243\315\205 x\316\243\302\255a", 36, 28, {139, 225, 138, 109, 139, 480, 139, 481, 64, 139, 480, 262, 139, 225, 139, 225, 139, 480, 157, 120, 222, 139, 480, 87, 139, 481, 22618, 320}},
    /* U+0345 matches no alternative of the split pattern */
    {"a\315\205b x\315\205 \315\205\315\205 !\315\205!", 18, 5, {320, 321, 343, 256, 256}},
    /* U+001C..U+001F: stripped at the ends, not collapsed inside */
    {"\034a\034 b\035\036  \037", 10, 3, {320, 472, 321}},
    /* IGNORECASE: long s matches 's; only exact specials map to BOS/EOS */
    {"it'\305\277 <|\305\277tartoftext|> '\305\277 'S 'LL ''s", 37, 20, {585, 6, 129, 379, 27, 91, 129, 123, 2002, 6659, 18169, 91, 285, 6, 129, 379, 568, 1342, 8445, 338}},
    {"!<|endoftext|> a<|endoftext|>b <|ENDOFTEXT|> <|startoftext|><|endoftext|>", 73, 13, {0, 27, 347, 40786, 4160, 91, 285, 320, 49407, 321, 49407, 49406, 49407}},
    /* special lowercasing, letters vs numbers vs symbols */
    {"\304\260I\304\261 \341\272\236 \342\204\246 \342\204\252 \342\222\266\342\223\220 \342\205\240\342\205\260 \302\275\302\262", 36, 20, {328, 16384, 72, 41901, 127, 509, 38065, 330, 27400, 238, 27400, 494, 158, 227, 364, 158, 227, 364, 33613, 41175}},
    {"caf\303\251", 5, 1, {15304}},
    /* Unicode whitespace */
    {"\343\200\200full\343\200\200width\342\200\250line\342\200\251para\302\205nel\302\240nb", 38, 6, {1476, 23571, 1148, 8976, 2693, 6813}},
    {"\360\237\230\200\360\237\221\251\342\200\215\360\237\222\273  \363\240\200\201", 21, 7, {12832, 26304, 18135, 175, 254, 222, 479}},
    /* invalid UTF-8: one U+FFFD per maximal subpart */
    {"bad \377\376 utf8 \303( \342\202 \360\237\230 \355\240\200 \300\257 \364\220\200\200 end", 37, 20, {2103, 47356, 39802, 1419, 325, 279, 47356, 263, 39802, 39802, 47356, 47356, 39802, 47356, 39802, 47356, 47356, 47356, 39802, 806}},
    {"nul\000inside \000 x", 14, 6, {1156, 331, 444, 2912, 444, 343}},
};

static const char *tok_dir(char *buf, size_t n) {
    return pd_test_golden_path(buf, n, "models/tiny-sd15/tokenizer");
}

static pd_tokenizer *load_golden(void) {
    char p[1024];
    pd_error err = {0};
    pd_tokenizer *tok = NULL;
    if (pd_tokenizer_load(tok_dir(p, sizeof p), &tok, &err) != PD_OK) {
        PD_FAIL("load %s: %s", p, err.msg);
        return NULL;
    }
    return tok;
}

/* Compares ids with the expected list; reports the first mismatch. */
static bool same_ids(const char *what, int idx, const int32_t *got, int n_got, const int32_t *exp,
                     int n_exp) {
    int n = n_got < n_exp ? n_got : n_exp;
    for (int i = 0; i < n; i++) {
        if (got[i] != exp[i]) {
            PD_FAIL("%s %d: first mismatch at position %d: got %d, expected %d", what, idx, i,
                    got[i], exp[i]);
            return false;
        }
    }
    if (n_got != n_exp) {
        PD_FAIL("%s %d: got %d ids, expected %d", what, idx, n_got, n_exp);
        return false;
    }
    return true;
}

typedef struct golden_prompt {
    const char *text;
    size_t len;
    int n_exp;
    int32_t exp[400];
    bool ftfy_changes;
} golden_prompt;

/* Reads cases/tokenizer.json's prompts (expected ids without ftfy). */
static int read_golden_prompts(pd_arena *arena, golden_prompt *gp, int cap) {
    char p[1024];
    char *text = NULL;
    size_t size = 0;
    pd_error err = {0};
    const pd_json *root = NULL;
    int n = -1;
    pd_test_golden_path(p, sizeof p, "cases/tokenizer.json");
    if (pd_file_read_all(p, 16 << 20, &text, &size, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return -1;
    }
    if (pd_json_parse(text, size, arena, &root, &err) != PD_OK) {
        PD_FAIL("%s: %s", p, err.msg);
        goto done;
    }
    const pd_json *prompts = pd_json_get(root, "prompts");
    CHECK(prompts && prompts->type == PD_JSON_ARRAY);
    if (!prompts) goto done;
    n = 0;
    for (size_t i = 0; i < prompts->len && n < cap; i++) {
        const pd_json *pr = pd_json_at(prompts, i);
        const pd_json *s = pd_json_get(pr, "prompt");
        const pd_json *ids = pd_json_get(pr, "bpe_ids_without_ftfy");
        bool changes = false;
        pd_json_as_bool(pd_json_get(pr, "ftfy_changes_ids"), &changes);
        if (!ids || ids->type != PD_JSON_ARRAY) ids = pd_json_get(pr, "bpe_ids");
        CHECK(s && s->type == PD_JSON_STRING && ids && ids->type == PD_JSON_ARRAY);
        if (!s || !ids || ids->len > 400) continue;
        gp[n].text = s->str;
        gp[n].len = s->len;
        gp[n].ftfy_changes = changes;
        gp[n].n_exp = (int)ids->len;
        for (size_t k = 0; k < ids->len; k++) {
            int64_t v = -1;
            pd_json_as_int64(pd_json_at(ids, k), &v);
            gp[n].exp[k] = (int32_t)v;
        }
        n++;
    }
done:
    free(text);
    return n;
}

static golden_prompt g_prompts[32];

static void test_golden_json(void) {
    PD_REQUIRE_GOLDEN();
    pd_arena arena;
    pd_arena_init(&arena, 0);
    pd_tokenizer *tok = load_golden();
    int n = read_golden_prompts(&arena, g_prompts, 32);
    CHECK_EQ_INT(n, 26);
    int exact = 0;
    for (int i = 0; tok && i < n; i++) {
        int32_t *ids = NULL;
        int n_ids = 0;
        pd_error err = {0};
        CHECK(pd_tokenizer_encode(tok, g_prompts[i].text, g_prompts[i].len, &arena, &ids, &n_ids,
                                  &err) == PD_OK);
        exact += same_ids("prompt", i, ids, n_ids, g_prompts[i].exp, g_prompts[i].n_exp);
    }
    fprintf(stderr, "  golden prompts exact: %d/%d\n", exact, n);
    CHECK_EQ_INT(pd_tokenizer_bos(tok), 49406);
    CHECK_EQ_INT(pd_tokenizer_eos(tok), 49407);
    CHECK_EQ_INT(pd_tokenizer_comma(tok), 267);
    CHECK_EQ_INT(pd_tokenizer_vocab_size(tok), 49408);
    CHECK(pd_tokenizer_token(tok, 320) && strcmp(pd_tokenizer_token(tok, 320), "a</w>") == 0);
    CHECK(pd_tokenizer_token(tok, 49406) && strcmp(pd_tokenizer_token(tok, 49406), "<|startoftext|>") == 0);
    CHECK(pd_tokenizer_token(tok, -1) == NULL && pd_tokenizer_token(tok, 49408) == NULL);
    pd_tokenizer_free(tok);
    pd_arena_free(&arena);
}

/* Checks a [26, 77] I64 tensor against [BOS] + bpe[:75] + [EOS] + pad. */
static void check_rows(const pd_st_file *f, const char *name, int32_t pad, bool skip_ftfy, int n,
                       const pd_tokenizer *tok, pd_arena *arena) {
    const pd_st_tensor *t = pd_st_find(f, name);
    CHECK_MSG(t != NULL, "tensor %s missing", name);
    if (!t) return;
    CHECK(t->dtype == PD_DTYPE_I64 && t->ndim == 2 && t->shape[0] == n && t->shape[1] == 77);
    if (t->dtype != PD_DTYPE_I64 || t->numel != (int64_t)n * 77) return;
    for (int i = 0; i < n; i++) {
        if (skip_ftfy && g_prompts[i].ftfy_changes) continue;
        int32_t *ids = NULL;
        int n_ids = 0;
        pd_error err = {0};
        CHECK(pd_tokenizer_encode(tok, g_prompts[i].text, g_prompts[i].len, arena, &ids, &n_ids,
                                  &err) == PD_OK);
        int32_t row[77];
        int k = 0;
        row[k++] = 49406;
        for (int j = 0; j < n_ids && j < 75; j++) row[k++] = ids[j];
        row[k++] = 49407;
        while (k < 77) row[k++] = pad;
        int32_t exp[77];
        for (int j = 0; j < 77; j++) {
            int64_t v;
            memcpy(&v, (const char *)t->data + ((size_t)i * 77 + (size_t)j) * 8, 8);
            exp[j] = (int32_t)v;
        }
        same_ids(name, i, row, 77, exp, 77);
    }
}

static void test_golden_safetensors(void) {
    PD_REQUIRE_GOLDEN();
    char p[1024];
    pd_error err = {0};
    pd_st_file *f = NULL;
    pd_arena arena;
    pd_arena_init(&arena, 0);
    pd_tokenizer *tok = load_golden();
    int n = read_golden_prompts(&arena, g_prompts, 32);
    pd_test_golden_path(p, sizeof p, "cases/tokenizer.safetensors");
    if (pd_st_open(p, &f, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
    } else if (tok && n == 26) {
        check_rows(f, "input_ids_pad49407_without_ftfy", 49407, false, n, tok, &arena);
        check_rows(f, "input_ids_pad0", 0, true, n, tok, &arena);
        check_rows(f, "input_ids_pad49407", 49407, true, n, tok, &arena);
    }
    pd_st_close(f);
    pd_tokenizer_free(tok);
    pd_arena_free(&arena);
}

static void test_tricky_text(void) {
    PD_REQUIRE_GOLDEN();
    pd_arena arena;
    pd_arena_init(&arena, 0);
    pd_tokenizer *tok = load_golden();
    for (size_t i = 0; tok && i < PD_COUNT(tricky); i++) {
        int32_t *ids = NULL;
        int n_ids = 0;
        pd_error err = {0};
        CHECK(pd_tokenizer_encode(tok, tricky[i].text, tricky[i].len, &arena, &ids, &n_ids, &err) ==
              PD_OK);
        same_ids("tricky", (int)i, ids, n_ids, tricky[i].ids, tricky[i].n);
    }
    pd_tokenizer_free(tok);
    pd_arena_free(&arena);
}

/* ---- temporary files ------------------------------------------------------------ */

static char g_tmp[256];

static const char *tmp_dir(void) {
    if (!g_tmp[0]) {
        snprintf(g_tmp, sizeof g_tmp, "/tmp/pd_test_tok_XXXXXX");
        if (!mkdtemp(g_tmp)) g_tmp[0] = '\0';
    }
    return g_tmp;
}

static const char *tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", tmp_dir(), name);
    return buf;
}

static bool write_file(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return false;
    bool ok = fwrite(data, 1, n, fp) == n;
    return fclose(fp) == 0 && ok;
}

static bool write_str(const char *path, const char *s) { return write_file(path, s, strlen(s)); }

static void cleanup_tmp(void) {
    if (!g_tmp[0]) return;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", g_tmp);
}

/* ---- vocabulary formats -------------------------------------------------------- */

static void test_vocab_formats(void) {
    PD_REQUIRE_GOLDEN();
    char src[1024], txt[512], gz[512], cmd[1200], vj[1024];
    char *merges = NULL;
    size_t msize = 0;
    pd_error err = {0};
    pd_arena arena;
    pd_arena_init(&arena, 0);
    pd_tokenizer *a = load_golden(), *b = NULL, *c = NULL, *d = NULL;
    int n = read_golden_prompts(&arena, g_prompts, 32);
    /* bpe_simple_vocab_16e6.txt has the same layout as merges.txt: a version line,
     * then one merge per line (the real one continues past the used 48894). */
    pd_test_golden_path(src, sizeof src, "models/tiny-sd15/tokenizer/merges.txt");
    CHECK(pd_file_read_all(src, 16 << 20, &merges, &msize, &err) == PD_OK);
    tmp_path(txt, sizeof txt, "bpe_simple_vocab_16e6.txt");
    CHECK(merges && write_file(txt, merges, msize));
    CHECK_MSG(pd_tokenizer_load(txt, &b, &err) == PD_OK, "%s", err.msg);
    /* a vocab.json path (merges.txt beside it) */
    pd_test_golden_path(vj, sizeof vj, "models/tiny-sd15/tokenizer/vocab.json");
    CHECK_MSG(pd_tokenizer_load(vj, &d, &err) == PD_OK, "%s", err.msg);
    tmp_path(gz, sizeof gz, "bpe_simple_vocab_16e6.txt.gz");
    snprintf(cmd, sizeof cmd, "gzip -c -9 '%s' > '%s' 2>/dev/null", txt, gz);
    bool have_gzip = system("gzip --version > /dev/null 2>&1") == 0;
    if (have_gzip) {
        CHECK(system(cmd) == 0);
        CHECK_MSG(pd_tokenizer_load(gz, &c, &err) == PD_OK, "%s", err.msg);
    } else {
        fprintf(stderr, "  gzip not found: .txt.gz check skipped\n");
    }
    pd_tokenizer *others[3] = {b, c, d};
    for (int o = 0; a && o < 3; o++) {
        pd_tokenizer *t = others[o];
        if (!t) continue;
        CHECK_EQ_INT(pd_tokenizer_vocab_size(t), pd_tokenizer_vocab_size(a));
        CHECK_EQ_INT(pd_tokenizer_bos(t), 49406);
        CHECK_EQ_INT(pd_tokenizer_eos(t), 49407);
        CHECK_EQ_INT(pd_tokenizer_comma(t), 267);
        int bad = 0;
        for (int32_t id = 0; id < pd_tokenizer_vocab_size(a); id++) {
            const char *x = pd_tokenizer_token(a, id), *y = pd_tokenizer_token(t, id);
            if (!x || !y || strcmp(x, y) != 0) {
                if (bad++ < 3) PD_FAIL("format %d: token %d differs: %s vs %s", o, id, x, y);
            }
        }
        for (int i = 0; i < n; i++) {
            int32_t *ia = NULL, *ib = NULL;
            int na = 0, nb = 0;
            pd_tokenizer_encode(a, g_prompts[i].text, g_prompts[i].len, &arena, &ia, &na, &err);
            pd_tokenizer_encode(t, g_prompts[i].text, g_prompts[i].len, &arena, &ib, &nb, &err);
            same_ids("format equivalence, prompt", i, ib, nb, ia, na);
        }
    }
    /* a folder holding only the .txt.gz */
    if (have_gzip) {
        char sub[512], mv[2048];
        pd_tokenizer *e = NULL;
        tmp_path(sub, sizeof sub, "gzonly");
        snprintf(mv, sizeof mv, "mkdir -p '%s' && cp '%s' '%s/'", sub, gz, sub);
        CHECK(system(mv) == 0);
        CHECK_MSG(pd_tokenizer_load(sub, &e, &err) == PD_OK, "%s", err.msg);
        CHECK(e && pd_tokenizer_vocab_size(e) == 49408);
        pd_tokenizer_free(e);
    }
    free(merges);
    pd_tokenizer_free(a);
    pd_tokenizer_free(b);
    pd_tokenizer_free(c);
    pd_tokenizer_free(d);
    pd_arena_free(&arena);
}

/* ---- a handcrafted vocabulary: exact BPE semantics --------------------------------- */

static const char *k_small_vocab =
    "{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"b\": 2, \"c\": 3, \"d</w>\": 4,"
    " \"bc\": 5, \"bcb\": 6, \",</w>\": 7, \"a\": 8, \"a</w>\": 9, \"aa\": 10, \"aaa</w>\": 11}";
/* rank 0 (bc, b) can only form after rank 1 (b, c) has merged: the reference merges
 * every (b, c) first, so "bcbcd" is bc|bc|d</w>, not bcb|c|d</w>. */
static const char *k_small_merges = "#version: 0.2\nbc b\nb c\na a\naa a</w>\n\n";

static void test_small_vocab(void) {
    char dir[512], p[600];
    pd_tokenizer *tok = NULL;
    pd_error err = {0};
    pd_arena arena;
    pd_arena_init(&arena, 0);
    tmp_path(dir, sizeof dir, "small");
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    CHECK(write_str(p, k_small_vocab));
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    CHECK(write_str(p, k_small_merges));
    CHECK_MSG(pd_tokenizer_load(dir, &tok, &err) == PD_OK, "%s", err.msg);
    if (tok) {
        static const struct {
            const char *text;
            int n;
            int32_t ids[8];
        } cases[] = {
            {"bcbcd", 3, {5, 5, 4}},
            {"aaa", 1, {11}},
            {"aaaa", 3, {10, 8, 9}},   /* (a a) merges left to right: aa a a</w> */
            {"a, zz", 4, {9, 7, 1, 1}},  /* z is not in the vocab: unk = <|endoftext|> */
            {"", 0, {0}},
        };
        CHECK_EQ_INT(pd_tokenizer_comma(tok), 7);
        for (size_t i = 0; i < PD_COUNT(cases); i++) {
            int32_t *ids = NULL;
            int n = 0;
            CHECK(pd_tokenizer_encode(tok, cases[i].text, strlen(cases[i].text), &arena, &ids, &n,
                                      &err) == PD_OK);
            same_ids("small vocab case", (int)i, ids, n, cases[i].ids, cases[i].n);
        }
    }
    pd_tokenizer_free(tok);
    pd_arena_free(&arena);
}

/* ---- hostile files ---------------------------------------------------------------- */

typedef struct bad_case {
    const char *vocab;    /* NULL: no vocab.json */
    const char *merges;   /* NULL: no merges.txt */
    pd_status code;
    const char *needle;   /* must appear in the message */
} bad_case;

static void test_malformed(void) {
    static const char *good_vocab = "{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"a</w>\": 2}";
    static const char *good_merges = "#version: 0.2\n";
    static const bad_case cases[] = {
        {"{\"a\": 1,", "#v\n", PD_ERR_FORMAT, "vocab.json"},
        {"[1, 2]", "#v\n", PD_ERR_FORMAT, "JSON object"},
        {"{}", "#v\n", PD_ERR_FORMAT, "0 tokens"},
        {"", "#v\n", PD_ERR_FORMAT, "empty"},
        {"{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"x\": \"2\"}", "#v\n", PD_ERR_FORMAT, "key \"x\""},
        {"{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"x\": 1.5}", "#v\n", PD_ERR_FORMAT, "not an integer"},
        {"{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"x\": 3}", "#v\n", PD_ERR_FORMAT, "out of range"},
        {"{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"x\": -1}", "#v\n", PD_ERR_FORMAT, "key \"x\""},
        {"{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"x\": 1}", "#v\n", PD_ERR_FORMAT, "share id 1"},
        {"{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"<|endoftext|>\": 2}", "#v\n", PD_ERR_FORMAT, "duplicate key"},
        {"{\"<|startoftext|>\": 0, \"x\": 1}", "#v\n", PD_ERR_FORMAT, "<|endoftext|>"},
        {"{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"x\": 2}", NULL, PD_ERR_MISSING, "merges.txt"},
        {"{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"x\": 2}", "", PD_ERR_FORMAT, "empty"},
        {"{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"x\": 2}", "a b\n", PD_ERR_FORMAT, "#version"},
        {"{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"x\": 2}", "#v\na b\nc d e\n", PD_ERR_FORMAT, "line 3"},
        {"{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"x\": 2}", "#v\na b\n\nc d\n", PD_ERR_FORMAT, "line 3"},
        {"{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"x\": 2}", "#v\nab\n", PD_ERR_FORMAT, "found 1"},
        {"{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"x\": 2}", "#v\na \377\n", PD_ERR_FORMAT, "invalid UTF-8"},
        {NULL, NULL, PD_ERR_MISSING, "no vocabulary"},
    };
    char dir[512], p[600];
    for (size_t i = 0; i < PD_COUNT(cases); i++) {
        snprintf(p, sizeof p, "bad%zu", i);
        tmp_path(dir, sizeof dir, p);
        mkdir(dir, 0700);
        if (cases[i].vocab) {
            snprintf(p, sizeof p, "%s/vocab.json", dir);
            CHECK(write_str(p, cases[i].vocab));
        }
        if (cases[i].merges) {
            snprintf(p, sizeof p, "%s/merges.txt", dir);
            CHECK(write_str(p, cases[i].merges));
        }
        pd_tokenizer *tok = NULL;
        pd_error err = {0};
        pd_status st = pd_tokenizer_load(dir, &tok, &err);
        CHECK_MSG(st == cases[i].code, "case %zu: status %d, expected %d (%s)", i, (int)st,
                  (int)cases[i].code, err.msg);
        CHECK_MSG(tok == NULL, "case %zu: tokenizer returned on failure", i);
        CHECK_STR_CONTAINS(err.msg, cases[i].needle);
        if (cases[i].vocab || cases[i].merges) CHECK_STR_CONTAINS(err.msg, dir);
        pd_tokenizer_free(tok);
    }
    /* the good pair loads */
    tmp_path(dir, sizeof dir, "good");
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    CHECK(write_str(p, good_vocab));
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    CHECK(write_str(p, good_merges));
    pd_tokenizer *tok = NULL;
    pd_error err = {0};
    CHECK_MSG(pd_tokenizer_load(dir, &tok, &err) == PD_OK, "%s", err.msg);
    CHECK(tok && pd_tokenizer_comma(tok) == -1);
    pd_tokenizer_free(tok);
    tok = NULL;

    /* bpe_simple_vocab files: wrong field counts, empty, a corrupt .gz, missing path */
    static const struct {
        const char *name, *content;
        const char *needle;
    } txt_cases[] = {
        {"bpe_a.txt", "#version: 0.2\ni n\nt h e\n", "line 3"},
        {"bpe_b.txt", "", "empty"},
        {"bpe_c.txt", "   \n\n", "empty"},
        {"bpe_d.txt.gz", "\037\213\010\000garbage", "bpe_d.txt.gz"},
    };
    for (size_t i = 0; i < PD_COUNT(txt_cases); i++) {
        tmp_path(p, sizeof p, txt_cases[i].name);
        CHECK(write_file(p, txt_cases[i].content, i == 3 ? 11 : strlen(txt_cases[i].content)));
        pd_status st = pd_tokenizer_load(p, &tok, &err);
        CHECK_MSG(st == PD_ERR_FORMAT, "txt case %zu: status %d (%s)", i, (int)st, err.msg);
        CHECK(tok == NULL);
        CHECK_STR_CONTAINS(err.msg, txt_cases[i].needle);
        CHECK_STR_CONTAINS(err.msg, p);
    }
    CHECK(pd_tokenizer_load("/nonexistent/pd/vocab.json", &tok, &err) == PD_ERR_MISSING);
    CHECK_STR_CONTAINS(err.msg, "/nonexistent/pd/vocab.json");
    CHECK(pd_tokenizer_load("", &tok, &err) == PD_ERR_INVALID_ARG);
    pd_tokenizer_free(NULL);
}

/* ---- pathological inputs ----------------------------------------------------------- */

static void test_pathological(void) {
    PD_REQUIRE_GOLDEN();
    pd_tokenizer *tok = load_golden();
    if (!tok) return;
    pd_arena arena;
    pd_arena_init(&arena, 0);
    size_t n = 100000;
    char *s = malloc(n);
    pd_error err = {0};
    int32_t *ids = NULL;
    int n_ids = 0;
    /* one 100 KB word: the tokens concatenate back to the word */
    for (size_t i = 0; i < n; i++) s[i] = (char)('a' + (i * 7 + i / 13) % 26);
    CHECK(pd_tokenizer_encode(tok, s, n, &arena, &ids, &n_ids, &err) == PD_OK);
    size_t pos = 0;
    bool ok = n_ids > 0;
    for (int i = 0; ok && i < n_ids; i++) {
        const char *t = pd_tokenizer_token(tok, ids[i]);
        size_t tl = t ? strlen(t) : 0;
        if (i == n_ids - 1) {
            ok = tl >= 4 && strcmp(t + tl - 4, "</w>") == 0;
            tl -= 4;
        }
        ok = ok && t && pos + tl <= n && memcmp(s + pos, t, tl) == 0;
        pos += tl;
    }
    CHECK_MSG(ok && pos == n, "100 KB word does not round-trip (%zu of %zu bytes)", pos, n);
    /* repeated letters, ampersands, sigmas, apostrophes, invalid bytes */
    static const char *const fills[] = {"a", "&", "&#", "\316\243", "'", "\377", "<|", " ", "&amp;"};
    for (size_t f = 0; f < PD_COUNT(fills); f++) {
        size_t fl = strlen(fills[f]);
        for (size_t i = 0; i < n; i++) s[i] = fills[f][i % fl];
        CHECK(pd_tokenizer_encode(tok, s, n, &arena, &ids, &n_ids, &err) == PD_OK);
        CHECK(n_ids >= 0);
    }
    free(s);
    pd_tokenizer_free(tok);
    pd_arena_free(&arena);
}

/* ---- locate ------------------------------------------------------------------------ */

static void test_locate(void) {
    PD_REQUIRE_GOLDEN();
    char model[1024], exp[1024], found[1024], tried[2048], p[600];
    /* a diffusers folder -> its tokenizer/ */
    pd_test_golden_path(model, sizeof model, "models/tiny-sd15");
    pd_test_golden_path(exp, sizeof exp, "models/tiny-sd15/tokenizer");
    CHECK(pd_tokenizer_locate(model, found, sizeof found, tried, sizeof tried));
    CHECK(strcmp(found, exp) == 0);
    /* the tokenizer folder itself */
    CHECK(pd_tokenizer_locate(exp, found, sizeof found, NULL, 0));
    CHECK(strcmp(found, exp) == 0);
    /* the single file beside its diffusers folder of the same name -> <stem>/tokenizer */
    pd_test_golden_path(model, sizeof model, "models/tiny-sd15.safetensors");
    CHECK(pd_tokenizer_locate(model, found, sizeof found, tried, sizeof tried));
    CHECK(strcmp(found, exp) == 0);
    pd_tokenizer *tok = NULL;
    pd_error err = {0};
    CHECK_MSG(pd_tokenizer_load(found, &tok, &err) == PD_OK, "%s", err.msg);
    pd_tokenizer_free(tok);
    /* a loose component file: nothing beside it */
    pd_test_golden_path(model, sizeof model, "models/taesd-random/diffusion_pytorch_model.safetensors");
    CHECK(!pd_tokenizer_locate(model, found, sizeof found, tried, sizeof tried));
    CHECK_STR_CONTAINS(tried, "taesd-random/tokenizer");
    CHECK_STR_CONTAINS(tried, "vocab.json");
    CHECK_STR_CONTAINS(tried, "bpe_simple_vocab_16e6.txt");
    /* a single file with a vocab.json beside it, then with a .txt.gz */
    char dir[512];
    tmp_path(dir, sizeof dir, "loc");
    mkdir(dir, 0700);
    snprintf(model, sizeof model, "%s/model.safetensors", dir);
    CHECK(write_str(model, "x"));
    CHECK(!pd_tokenizer_locate(model, found, sizeof found, NULL, 0));
    snprintf(p, sizeof p, "%s/bpe_simple_vocab_16e6.txt.gz", dir);
    CHECK(write_str(p, "x"));
    CHECK(pd_tokenizer_locate(model, found, sizeof found, NULL, 0) && strcmp(found, p) == 0);
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    CHECK(write_str(p, "{}"));
    CHECK(pd_tokenizer_locate(model, found, sizeof found, NULL, 0) && strcmp(found, p) == 0);
    /* found too small, bad arguments */
    CHECK(!pd_tokenizer_locate(model, found, 4, NULL, 0));
    CHECK(!pd_tokenizer_locate(NULL, found, sizeof found, NULL, 0));
    CHECK(!pd_tokenizer_locate("/nonexistent/x.safetensors", found, sizeof found, tried, sizeof tried));
    CHECK_STR_CONTAINS(tried, "/nonexistent/tokenizer");
}

int main(void) {
    PD_RUN(test_golden_json);
    PD_RUN(test_golden_safetensors);
    PD_RUN(test_tricky_text);
    PD_RUN(test_vocab_formats);
    PD_RUN(test_small_vocab);
    PD_RUN(test_malformed);
    PD_RUN(test_pathological);
    PD_RUN(test_locate);
    cleanup_tmp();
    return pd_test_summary();
}
