/*
 * threadpool.h - a persistent pool of worker threads for parallel kernels.
 *
 * pd_pool_run(pool, fn, arg) calls fn(arg, ith, nth) once for every ith in [0, nth)
 * where nth = pd_pool_size(pool); the calling thread runs ith = 0 and the call
 * returns when every part has finished. Workers wait on a condition variable between
 * runs (no busy spinning while idle). A NULL pool runs fn(arg, 0, 1) inline.
 * Runs from several threads on one pool are serialised (a mutex), so a pool may be
 * shared by a context used from many threads.
 */
#ifndef PD_BASE_THREADPOOL_H
#define PD_BASE_THREADPOOL_H

#include <stdint.h>

typedef struct pd_pool pd_pool;
typedef void (*pd_task_fn)(void *arg, int ith, int nth);

/* n_threads total including the caller; <= 0 means the number of online CPUs.
 * Returns NULL on failure (thread creation or memory). */
pd_pool *pd_pool_new(int n_threads);
void pd_pool_free(pd_pool *pool);   /* NULL-tolerant; joins the workers */
int pd_pool_size(const pd_pool *pool);  /* 1 for NULL */
void pd_pool_run(pd_pool *pool, pd_task_fn fn, void *arg);

/* Splits [0, n) into pd_pool_size contiguous ranges, rounded to multiples of grain
 * (except the last), and calls fn(arg, begin, end) for each non-empty range. */
void pd_pool_parallel_for(pd_pool *pool, int64_t n, int64_t grain,
                          void (*fn)(void *arg, int64_t begin, int64_t end), void *arg);

/* Number of online CPUs (at least 1). */
int pd_cpu_count(void);

#endif
