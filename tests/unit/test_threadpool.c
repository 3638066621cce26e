/*
 * test_threadpool.c - the persistent thread pool.
 *
 * Every ith is called exactly once per run with the right nth; 10000 consecutive runs;
 * four caller threads sharing one pool; parallel_for covers [0, n) exactly once with
 * grain-aligned range starts for awkward n and grain; NULL pool, pool of 1, default
 * size, nested runs from inside a task, and repeated create/free. Also clean under
 * ThreadSanitizer (build this file and threadpool.c with -fsanitize=thread) and
 * ASan/UBSan.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "test.h"

#define MAX_THREADS 64

typedef struct count_task {
    atomic_int calls[MAX_THREADS];
    atomic_int bad_nth;
    int expect_nth;
} count_task;

static void count_fn(void *arg, int ith, int nth) {
    count_task *t = arg;
    if (nth != t->expect_nth || ith < 0 || ith >= nth || ith >= MAX_THREADS) {
        atomic_fetch_add(&t->bad_nth, 1);
        return;
    }
    atomic_fetch_add(&t->calls[ith], 1);
}

static void check_run_once(pd_pool *pool, int expect_nth) {
    count_task t;
    memset(&t, 0, sizeof t);
    t.expect_nth = expect_nth;
    pd_pool_run(pool, count_fn, &t);
    CHECK_EQ_INT(atomic_load(&t.bad_nth), 0);
    for (int i = 0; i < expect_nth; i++) CHECK_EQ_INT(atomic_load(&t.calls[i]), 1);
}

static void test_sizes(void) {
    CHECK_EQ_INT(pd_pool_size(NULL), 1);
    CHECK(pd_cpu_count() >= 1);
    check_run_once(NULL, 1);
    int sizes[] = {1, 2, 3, 4, 7, 16};
    for (size_t k = 0; k < PD_COUNT(sizes); k++) {
        pd_pool *p = pd_pool_new(sizes[k]);
        CHECK(p != NULL);
        if (!p) continue;
        CHECK_EQ_INT(pd_pool_size(p), sizes[k]);
        for (int r = 0; r < 20; r++) check_run_once(p, sizes[k]);
        pd_pool_free(p);
    }
    pd_pool *p = pd_pool_new(0);   /* default: online CPUs */
    CHECK(p != NULL);
    CHECK_EQ_INT(pd_pool_size(p), pd_cpu_count());
    check_run_once(p, pd_pool_size(p));
    pd_pool_free(p);
    p = pd_pool_new(-3);
    CHECK_EQ_INT(pd_pool_size(p), pd_cpu_count());
    pd_pool_free(p);
    pd_pool_free(NULL);
}

/* Each run adds ith+1 to a per-run slot; the totals prove every part ran exactly once
 * in every run and that a run never overlaps the next. */
typedef struct many_task {
    atomic_long sum;
    atomic_int in_flight;
    atomic_int overlap;
} many_task;

static void many_fn(void *arg, int ith, int nth) {
    many_task *t = arg;
    (void)nth;
    atomic_fetch_add(&t->in_flight, 1);
    atomic_fetch_add(&t->sum, ith + 1);
    atomic_fetch_sub(&t->in_flight, 1);
}

static void test_many_runs(void) {
    pd_pool *p = pd_pool_new(4);
    CHECK(p != NULL);
    if (!p) return;
    many_task t;
    memset(&t, 0, sizeof t);
    const int runs = 10000;
    for (int r = 0; r < runs; r++) {
        pd_pool_run(p, many_fn, &t);
        if (atomic_load(&t.in_flight) != 0) atomic_fetch_add(&t.overlap, 1);
    }
    CHECK_EQ_INT(atomic_load(&t.sum), (long)runs * (1 + 2 + 3 + 4));
    CHECK_EQ_INT(atomic_load(&t.overlap), 0);
    pd_pool_free(p);
}

/* Four threads call pd_pool_run on one pool at once. Runs are serialised: a part of
 * one caller's run never executes while a part of another caller's run does. */
typedef struct caller_ctx {
    pd_pool *pool;
    int id;
    int failures;
} caller_ctx;

typedef struct tagged_task {
    int tag;
    atomic_int calls[MAX_THREADS];
} tagged_task;

static atomic_int g_active[4];   /* parts of each caller's runs executing now */
static atomic_int g_overlap;     /* a part saw a part of another caller's run */

static void tagged_fn(void *arg, int ith, int nth) {
    tagged_task *t = arg;
    (void)nth;
    atomic_fetch_add(&g_active[t->tag], 1);
    for (int other = 0; other < 4; other++)
        if (other != t->tag && atomic_load(&g_active[other]) != 0) atomic_fetch_add(&g_overlap, 1);
    atomic_fetch_add(&t->calls[ith], 1);
    atomic_fetch_sub(&g_active[t->tag], 1);
}

static void *caller_main(void *arg) {
    caller_ctx *c = arg;
    int nth = pd_pool_size(c->pool);
    for (int r = 0; r < 2000; r++) {
        tagged_task t;
        memset(&t, 0, sizeof t);
        t.tag = c->id;
        pd_pool_run(c->pool, tagged_fn, &t);
        for (int i = 0; i < nth; i++)   /* complete when the call returns */
            if (atomic_load(&t.calls[i]) != 1) c->failures++;
    }
    return NULL;
}

static void test_concurrent_callers(void) {
    pd_pool *p = pd_pool_new(3);
    CHECK(p != NULL);
    if (!p) return;
    atomic_store(&g_overlap, 0);
    pthread_t th[4];
    caller_ctx ctx[4];
    for (int i = 0; i < 4; i++) {
        ctx[i] = (caller_ctx){p, i, 0};
        CHECK(pthread_create(&th[i], NULL, caller_main, &ctx[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(ctx[i].failures, 0);
    }
    CHECK_EQ_INT(atomic_load(&g_overlap), 0);
    pd_pool_free(p);
}

/* parallel_for: coverage, grain alignment, number of ranges. */
typedef struct cover_task {
    atomic_int *hits;
    int64_t grain;
    atomic_int ranges;
    atomic_int misaligned;
    atomic_int empty;
} cover_task;

static void cover_fn(void *arg, int64_t begin, int64_t end) {
    cover_task *t = arg;
    if (begin >= end) atomic_fetch_add(&t->empty, 1);
    if (begin % t->grain != 0) atomic_fetch_add(&t->misaligned, 1);
    atomic_fetch_add(&t->ranges, 1);
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&t->hits[i], 1);
}

static void check_cover(pd_pool *pool, int64_t n, int64_t grain) {
    cover_task t;
    memset(&t, 0, sizeof t);
    t.hits = calloc((size_t)(n > 0 ? n : 1), sizeof *t.hits);
    PD_ASSERT(t.hits);
    t.grain = grain < 1 ? 1 : grain;
    pd_pool_parallel_for(pool, n, grain, cover_fn, &t);
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (atomic_load(&t.hits[i]) != 1) bad++;
    CHECK_MSG(bad == 0, "n=%lld grain=%lld: %d indices not covered exactly once", (long long)n,
              (long long)grain, bad);
    CHECK_EQ_INT(atomic_load(&t.misaligned), 0);
    CHECK_EQ_INT(atomic_load(&t.empty), 0);
    CHECK(atomic_load(&t.ranges) <= pd_pool_size(pool));
    if (n == 0) CHECK_EQ_INT(atomic_load(&t.ranges), 0);
    free(t.hits);
}

static void test_parallel_for(void) {
    pd_pool *pools[3] = {NULL, pd_pool_new(1), pd_pool_new(5)};
    CHECK(pools[1] && pools[2]);
    static const int64_t ns[] = {0, 1, 2, 3, 4, 5, 7, 13, 64, 97, 1000, 4099};
    static const int64_t grains[] = {0, 1, 2, 3, 8, 16, 100, 5000};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < PD_COUNT(ns); i++)
            for (size_t g = 0; g < PD_COUNT(grains); g++) check_cover(pools[k], ns[i], grains[g]);
    check_cover(pools[2], -5, 1);   /* negative n: nothing */
    /* 1000 over 5 threads, grain 8: chunks of 200 -> 5 ranges */
    cover_task t;
    memset(&t, 0, sizeof t);
    t.hits = calloc(1000, sizeof *t.hits);
    t.grain = 8;
    pd_pool_parallel_for(pools[2], 1000, 8, cover_fn, &t);
    CHECK_EQ_INT(atomic_load(&t.ranges), 5);
    free(t.hits);
    for (int k = 0; k < 3; k++) pd_pool_free(pools[k]);
}

/* A task that runs the same pool again: must not deadlock, every part once. */
typedef struct nested_task {
    pd_pool *pool;
    atomic_int inner_calls;
    atomic_int outer_calls;
} nested_task;

static void inner_fn(void *arg, int ith, int nth) {
    nested_task *t = arg;
    (void)ith;
    (void)nth;
    atomic_fetch_add(&t->inner_calls, 1);
}

static void outer_fn(void *arg, int ith, int nth) {
    nested_task *t = arg;
    (void)ith;
    (void)nth;
    atomic_fetch_add(&t->outer_calls, 1);
    pd_pool_run(t->pool, inner_fn, t);
}

static void test_nested_run(void) {
    pd_pool *p = pd_pool_new(3);
    CHECK(p != NULL);
    if (!p) return;
    nested_task t;
    memset(&t, 0, sizeof t);
    t.pool = p;
    pd_pool_run(p, outer_fn, &t);
    CHECK_EQ_INT(atomic_load(&t.outer_calls), 3);
    CHECK_EQ_INT(atomic_load(&t.inner_calls), 9);
    check_run_once(p, 3);   /* still usable */
    pd_pool_free(p);
}

static void test_create_free_cycles(void) {
    for (int i = 0; i < 200; i++) {
        pd_pool *p = pd_pool_new(1 + i % 4);
        CHECK(p != NULL);
        if (i % 2) check_run_once(p, 1 + i % 4);
        pd_pool_free(p);   /* also right after creation, before workers first sleep */
    }
}

int main(void) {
    PD_RUN(test_sizes);
    PD_RUN(test_many_runs);
    PD_RUN(test_concurrent_callers);
    PD_RUN(test_parallel_for);
    PD_RUN(test_nested_run);
    PD_RUN(test_create_free_cycles);
    return pd_test_summary();
}
