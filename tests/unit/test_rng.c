/*
 * test_rng.c - the torch CPU generator against golden data, bit for bit.
 *
 * The golden case rng_torch_cpu (torch 1.13, AVX2 CPU) holds, by tensor name:
 *   randn_f32.seed<S>.<shape>, randn_f64.seed<S>.<shape>, rand_f32.seed<S>.<shape>:
 *       one call on a freshly seeded generator;
 *   sequence.seed<S>.call<K>.<shape>: the K-th randn float32 call on one generator;
 *   generator_state.seed<S>: torch's get_state() right after manual_seed (5056 bytes:
 *       u64 seed, i32 left, i32 seeded, u64 next, u64 state[624], ...).
 * Every tensor in the file is checked (unknown names fail the test) and every element
 * must be bit-identical: the float32 path reproduces torch's AVX2 log/sincos exactly.
 * Independent checks: the C++ standard's mt19937 value (10000th output 4123659995),
 * random64 word order, state copies, and the 16-element tail rule.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "io/safetensors.h"
#include "test.h"

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void test_mt19937_standard_value(void) {
    pd_rng r;
    pd_rng_seed(&r, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = pd_rng_u32(&r);
    CHECK_EQ_INT(v, 4123659995u);   /* C++11 [rand.predef] */
}

static void test_seed_uses_low_32_bits_and_resets_cache(void) {
    pd_rng a, b;
    pd_rng_seed(&a, 42);
    pd_rng_seed(&b, (UINT64_C(1) << 32) + 42);
    CHECK(memcmp(a.mt, b.mt, sizeof a.mt) == 0);
    float x[3], y[3];
    pd_rng_randn(&a, x, 3);   /* leaves a cached sample */
    CHECK(a.has_next_double_normal);
    pd_rng_seed(&a, 42);
    CHECK(!a.has_next_double_normal);
    pd_rng_randn(&a, x, 3);
    pd_rng_randn(&b, y, 3);
    CHECK(memcmp(x, y, sizeof x) == 0);
}

static void test_u64_order_and_copy(void) {
    pd_rng a, b;
    pd_rng_seed(&a, 7);
    b = a;   /* the state is a value */
    uint32_t hi = pd_rng_u32(&b), lo = pd_rng_u32(&b);
    CHECK(pd_rng_u64(&a) == ((uint64_t)hi << 32 | lo));
    for (int i = 0; i < 2000; i++) CHECK_EQ_INT(pd_rng_u32(&a), pd_rng_u32(&b));
    float fa[40], fb[40];
    pd_rng c = a;
    pd_rng_randn(&a, fa, 40);
    pd_rng_randn(&c, fb, 40);
    CHECK(memcmp(fa, fb, sizeof fa) == 0);
}

/* n % 16 != 0: the first n-16 outputs equal those of the n-rounded-down call's blocks,
 * the last 16 come from fresh uniforms (n + 16 draws in all). */
static void test_tail_rule(void) {
    pd_rng a, b;
    float x[33], y[32];
    pd_rng_seed(&a, 3);
    pd_rng_seed(&b, 3);
    pd_rng_randn(&a, x, 33);
    pd_rng_randn(&b, y, 32);
    CHECK(memcmp(x, y, 16 * sizeof(float)) == 0);   /* block 0 identical */
    /* a drew 33 + 16 uniforms, b drew 32: b is 17 draws behind */
    for (int i = 0; i < 17; i++) pd_rng_u32(&b);
    CHECK_EQ_INT(pd_rng_u32(&a), pd_rng_u32(&b));
    /* rand: one 24-bit uniform per element */
    pd_rng_seed(&a, 5);
    pd_rng_seed(&b, 5);
    float u[10];
    pd_rng_rand(&a, u, 10);
    for (int i = 0; i < 10; i++) {
        float want = (float)(pd_rng_u32(&b) & 0xffffff) / 16777216.0f;
        CHECK(u[i] == want && u[i] >= 0.0f && u[i] < 1.0f);
    }
}

/* Spot checks that do not need the golden files: torch.randn(3, seed 0) and (1, seed 42)
 * as torch prints them. */
static void test_known_values(void) {
    pd_rng r;
    float x[3];
    pd_rng_seed(&r, 0);
    pd_rng_randn(&r, x, 3);
    CHECK_NEAR(x[0], 1.5409961, 1e-6);
    CHECK_NEAR(x[1], -0.2934289, 1e-6);
    CHECK_NEAR(x[2], -2.1787894, 1e-6);
    pd_rng_seed(&r, 42);
    pd_rng_randn(&r, x, 1);
    CHECK_NEAR(x[0], 0.3367, 1e-4);
}

/* ---- golden ------------------------------------------------------------------------ */

typedef struct tally {
    long tensors, elements, exact, ulp1, worse;
} tally;

static int64_t ulp_distance_f32(float a, float b) {
    int32_t ia = (int32_t)f32_bits(a), ib = (int32_t)f32_bits(b);
    if (ia < 0) ia = (int32_t)0x80000000 - ia;
    if (ib < 0) ib = (int32_t)0x80000000 - ib;
    int64_t d = (int64_t)ia - ib;
    return d < 0 ? -d : d;
}

static void compare_f32(tally *t, const char *name, const float *got, const pd_st_tensor *ref) {
    int reported = 0;
    for (int64_t i = 0; i < ref->numel; i++) {
        float want;
        memcpy(&want, (const unsigned char *)ref->data + i * 4, 4);
        int64_t d = ulp_distance_f32(got[i], want);
        t->elements++;
        if (f32_bits(got[i]) == f32_bits(want)) {
            t->exact++;
            continue;
        }
        if (d <= 1) t->ulp1++;
        else t->worse++;
        if (reported++ < 3)
            PD_FAIL("%s[%" PRId64 "]: got %.9g (0x%08x), want %.9g (0x%08x), %" PRId64 " ulp", name, i,
                    (double)got[i], f32_bits(got[i]), (double)want, f32_bits(want), d);
    }
}

static void compare_f64(tally *t, const char *name, const double *got, const pd_st_tensor *ref) {
    int reported = 0;
    for (int64_t i = 0; i < ref->numel; i++) {
        double want;
        memcpy(&want, (const unsigned char *)ref->data + i * 8, 8);
        t->elements++;
        if (memcmp(&want, &got[i], 8) == 0) {
            t->exact++;
            continue;
        }
        t->worse++;
        if (reported++ < 3)
            PD_FAIL("%s[%" PRId64 "]: got %.17g, want %.17g", name, i, got[i], want);
    }
}

/* Parses "<prefix>.seed<S>.<rest>"; returns a pointer to <rest> or NULL. */
static const char *parse_seed(const char *name, const char *prefix, uint64_t *seed) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0 || strncmp(name + n, ".seed", 5) != 0) return NULL;
    char *end;
    *seed = strtoull(name + n + 5, &end, 10);
    if (end == name + n + 5) return NULL;
    return *end == '.' ? end + 1 : end;
}

static void check_fresh(tally *t, const pd_st_tensor *ts, const char *kind, uint64_t seed) {
    size_t n = (size_t)ts->numel;
    pd_rng r;
    pd_rng_seed(&r, seed);
    if (strcmp(kind, "randn_f64") == 0) {
        CHECK_MSG(ts->dtype == PD_DTYPE_F64, "%s: dtype", ts->name);
        double *got = malloc((n ? n : 1) * sizeof(double));
        PD_ASSERT(got);
        pd_rng_randn_f64(&r, got, n);
        compare_f64(t, ts->name, got, ts);
        free(got);
        return;
    }
    CHECK_MSG(ts->dtype == PD_DTYPE_F32, "%s: dtype", ts->name);
    float *got = malloc((n ? n : 1) * sizeof(float));
    PD_ASSERT(got);
    if (strcmp(kind, "rand_f32") == 0) pd_rng_rand(&r, got, n);
    else pd_rng_randn(&r, got, n);
    compare_f32(t, ts->name, got, ts);
    free(got);
}

/* Replays sequence.seed<S>.call0.., all on one generator. */
static void check_sequence(tally *t, const pd_st_file *f, uint64_t seed, int *n_checked) {
    pd_rng r;
    pd_rng_seed(&r, seed);
    for (int k = 0;; k++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "sequence.seed%" PRIu64 ".call%d.", seed, k);
        const pd_st_tensor *ts = NULL;
        for (int i = 0; i < f->n_tensors; i++)
            if (strncmp(f->tensors[i].name, prefix, strlen(prefix)) == 0) ts = &f->tensors[i];
        if (!ts) break;
        size_t n = (size_t)ts->numel;
        float *got = malloc((n ? n : 1) * sizeof(float));
        PD_ASSERT(got);
        pd_rng_randn(&r, got, n);
        compare_f32(t, ts->name, got, ts);
        free(got);
        t->tensors++;
        (*n_checked)++;
    }
}

static void check_state(tally *t, const pd_st_tensor *ts, uint64_t seed) {
    CHECK_EQ_INT(ts->nbytes, 5056);
    if (ts->nbytes < 24 + 624 * 8) return;
    const unsigned char *p = ts->data;
    uint64_t s0;
    int32_t left, seeded;
    memcpy(&s0, p, 8);
    memcpy(&left, p + 8, 4);
    memcpy(&seeded, p + 12, 4);
    CHECK(s0 == seed);
    CHECK_EQ_INT(left, 1);      /* torch: the next draw regenerates the block */
    CHECK_EQ_INT(seeded, 1);
    pd_rng r;
    pd_rng_seed(&r, seed);
    int bad = 0;
    for (int i = 0; i < 624; i++) {
        uint64_t w;
        memcpy(&w, p + 24 + 8 * i, 8);
        if (w != r.mt[i]) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(r.mti, 624);
    t->tensors++;
}

static void test_golden_rng_torch_cpu(void) {
    PD_REQUIRE_GOLDEN();
    char path[1024];
    pd_test_golden_path(path, sizeof path, "cases/rng_torch_cpu.safetensors");
    pd_st_file *f = NULL;
    pd_error err = {0};
    if (pd_st_open(path, &f, &err) != PD_OK) {
        PD_FAIL("%s", err.msg);
        return;
    }
    tally t = {0};
    int n_checked = 0;
    static const char *fresh_kinds[] = {"randn_f32", "randn_f64", "rand_f32"};
    for (int i = 0; i < f->n_tensors; i++) {
        const pd_st_tensor *ts = &f->tensors[i];
        uint64_t seed;
        bool done = false;
        for (size_t k = 0; k < PD_COUNT(fresh_kinds) && !done; k++) {
            if (parse_seed(ts->name, fresh_kinds[k], &seed)) {
                check_fresh(&t, ts, fresh_kinds[k], seed);
                t.tensors++;
                n_checked++;
                done = true;
            }
        }
        if (done) continue;
        const char *rest = parse_seed(ts->name, "sequence", &seed);
        if (rest) {
            if (strncmp(rest, "call0.", 6) == 0) check_sequence(&t, f, seed, &n_checked);
            continue;   /* later calls are checked by their call0 */
        }
        if (parse_seed(ts->name, "generator_state", &seed)) {
            check_state(&t, ts, seed);
            n_checked++;
            continue;
        }
        PD_FAIL("unrecognised golden tensor '%s'", ts->name);
    }
    /* every tensor was checked exactly once (sequence calls via their call0) */
    CHECK_EQ_INT(n_checked, f->n_tensors);
    CHECK(t.tensors >= 100);
    CHECK(t.elements > 100000);
    fprintf(stderr, "  rng golden: %ld tensors, %ld elements: %ld exact, %ld 1-ulp, %ld worse\n",
            t.tensors, t.elements, t.exact, t.ulp1, t.worse);
    CHECK_EQ_INT(t.exact, t.elements);
    pd_st_close(f);
}

int main(void) {
    PD_RUN(test_mt19937_standard_value);
    PD_RUN(test_seed_uses_low_32_bits_and_resets_cache);
    PD_RUN(test_u64_order_and_copy);
    PD_RUN(test_tail_rule);
    PD_RUN(test_known_values);
    PD_RUN(test_golden_rng_torch_cpu);
    return pd_test_summary();
}
