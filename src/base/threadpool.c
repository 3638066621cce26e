/*
 * threadpool.c - persistent worker threads, woken per run by a generation counter.
 *
 * A run: the caller (holding run_lock, so runs from several threads take turns)
 * stores fn/arg, sets pending = nth - 1, bumps `generation` under `mu` and broadcasts
 * `work_cv`; it runs ith = 0 itself, then waits until pending reaches 0. Each worker
 * remembers the last generation it ran; it spins briefly on the atomic counter (not
 * when the pool has more threads than CPUs), then sleeps on `work_cv`; it runs its
 * part of each new generation once, and the last one to finish signals `done_cv`
 * under `mu`. pd_pool_free sets `stop`, bumps the generation and joins.
 * Invariants: a worker sees every generation exactly once (the next run starts only
 * after every worker has decremented pending); fn/arg are written before the release
 * store of generation and read after its acquire load; every wait re-checks its
 * condition under `mu`, and every state change it waits on is made or signalled
 * under `mu`, so no wakeup is lost. Idle workers sleep (the spin is bounded).
 * Traps: a task that calls pd_pool_run on its own pool would deadlock on run_lock;
 * such nested runs are detected (thread-local) and executed inline instead.
 */
#include "base/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

/* Pause iterations (~10-100 us) a worker or the caller spins before sleeping; only
 * when the pool has no more threads than online CPUs (otherwise spinning steals the
 * CPU from the thread being waited for). */
#define SPIN_ITERS 2000

typedef struct worker {
    pd_pool *pool;
    int ith;
    pthread_t thread;
} worker;

struct pd_pool {
    int n_threads;                 /* including the caller */
    int spin_iters;                /* SPIN_ITERS, or 0 when oversubscribed */
    worker *workers;               /* n_threads - 1 */
    pthread_mutex_t run_lock;      /* one run at a time */
    pthread_mutex_t mu;            /* guards the waits below */
    pthread_cond_t work_cv;        /* new generation or stop */
    pthread_cond_t done_cv;        /* pending reached 0 */
    atomic_uint_fast64_t generation;
    atomic_int pending;
    atomic_bool stop;
    pd_task_fn fn;                 /* the current run */
    void *arg;
};

/* The pool whose task this thread is running (NULL when none): nested runs go inline. */
static _Thread_local const pd_pool *tls_running_pool;

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void *worker_main(void *p_) {
    worker *w = p_;
    pd_pool *p = w->pool;
    uint_fast64_t seen = 0;
    tls_running_pool = p;
    for (;;) {
        uint_fast64_t g = atomic_load_explicit(&p->generation, memory_order_acquire);
        for (int i = 0; i < p->spin_iters && g == seen; i++) {
            cpu_relax();
            g = atomic_load_explicit(&p->generation, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen)
                pthread_cond_wait(&p->work_cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        p->fn(p->arg, w->ith, p->n_threads);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

int pd_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) return 1;
    if (n > 4096) return 4096;
    return (int)n;
}

/* Stops and joins the first n_started workers, destroys the primitives, frees p. */
static void pool_destroy(pd_pool *p, int n_started) {
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->stop, true, memory_order_release);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < n_started; i++) pthread_join(p->workers[i].thread, NULL);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->run_lock);
    free(p->workers);
    free(p);
}

pd_pool *pd_pool_new(int n_threads) {
    if (n_threads <= 0) n_threads = pd_cpu_count();
    pd_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    p->spin_iters = n_threads <= pd_cpu_count() ? SPIN_ITERS : 0;
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, false);
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);   /* one spare: never 0 bytes */
    if (!p->workers) {
        free(p);
        return NULL;
    }
    if (pthread_mutex_init(&p->run_lock, NULL) != 0) goto fail_run_lock;
    if (pthread_mutex_init(&p->mu, NULL) != 0) goto fail_mu;
    if (pthread_cond_init(&p->work_cv, NULL) != 0) goto fail_work_cv;
    if (pthread_cond_init(&p->done_cv, NULL) != 0) goto fail_done_cv;
    for (int i = 0; i < n_threads - 1; i++) {
        worker *w = &p->workers[i];
        w->pool = p;
        w->ith = i + 1;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pool_destroy(p, i);
            return NULL;
        }
    }
    return p;

fail_done_cv:
    pthread_cond_destroy(&p->work_cv);
fail_work_cv:
    pthread_mutex_destroy(&p->mu);
fail_mu:
    pthread_mutex_destroy(&p->run_lock);
fail_run_lock:
    free(p->workers);
    free(p);
    return NULL;
}

void pd_pool_free(pd_pool *pool) {
    if (!pool) return;
    pool_destroy(pool, pool->n_threads - 1);
}

int pd_pool_size(const pd_pool *pool) { return pool ? pool->n_threads : 1; }

void pd_pool_run(pd_pool *pool, pd_task_fn fn, void *arg) {
    if (!pool || pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    const int nth = pool->n_threads;
    if (tls_running_pool == pool) {   /* nested run from inside a task: inline */
        for (int i = 0; i < nth; i++) fn(arg, i, nth);
        return;
    }
    pthread_mutex_lock(&pool->run_lock);
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->pending, nth - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->mu);

    const pd_pool *outer = tls_running_pool;
    tls_running_pool = pool;
    fn(arg, 0, nth);
    tls_running_pool = outer;

    for (int i = 0; i < pool->spin_iters; i++) {
        if (atomic_load_explicit(&pool->pending, memory_order_acquire) == 0) break;
        cpu_relax();
    }
    if (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0) {
        pthread_mutex_lock(&pool->mu);
        while (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0)
            pthread_cond_wait(&pool->done_cv, &pool->mu);
        pthread_mutex_unlock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->run_lock);
}

/* ---- parallel_for ------------------------------------------------------------------ */

typedef struct range_task {
    int64_t n, chunk;
    void (*fn)(void *arg, int64_t begin, int64_t end);
    void *arg;
} range_task;

static void range_trampoline(void *arg, int ith, int nth) {
    const range_task *t = arg;
    (void)nth;
    int64_t begin = (int64_t)ith * t->chunk;
    if (begin >= t->n) return;
    int64_t end = t->n - begin > t->chunk ? begin + t->chunk : t->n;
    t->fn(t->arg, begin, end);
}

void pd_pool_parallel_for(pd_pool *pool, int64_t n, int64_t grain,
                          void (*fn)(void *arg, int64_t begin, int64_t end), void *arg) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t nth = pd_pool_size(pool);
    int64_t chunk = n / nth + (n % nth != 0);            /* ceil(n / nth) */
    if (chunk % grain != 0) {                            /* round up to the grain */
        int64_t add = grain - chunk % grain;
        chunk = chunk > INT64_MAX - add ? n : chunk + add;
    }
    if (chunk >= n) {                                    /* a single range: inline */
        fn(arg, 0, n);
        return;
    }
    range_task t = {n, chunk, fn, arg};
    pd_pool_run(pool, range_trampoline, &t);
}
