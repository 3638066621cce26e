/*
 * arena.h - a bump allocator for activations and parse trees.
 *
 * Invariants: every allocation is 64-byte aligned and followed by at least
 * PD_ARENA_TAIL readable bytes inside the block (kernels may read 64 B past the end
 * of an input). Nothing is freed individually: pd_arena_reset() rewinds to a mark,
 * pd_arena_free() releases everything.
 *
 * Two modes:
 *   - fixed (pd_arena_init with cap > 0): one block of cap bytes reserved up front,
 *     so out-of-memory happens at init, in one place. Allocation beyond cap fails
 *     (returns NULL); callers size the arena with pd_<model>_scratch_bytes().
 *   - growing (cap == 0): chained blocks, for parsers whose size is data-dependent.
 */
#ifndef PD_BASE_ARENA_H
#define PD_BASE_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#define PD_ALIGN 64
#define PD_ARENA_TAIL 64

typedef struct pd_arena_block pd_arena_block;

typedef struct pd_arena {
    pd_arena_block *head;  /* current block (chain through ->prev) */
    size_t cap;            /* fixed capacity, or 0 for growing */
    size_t used_peak;      /* high-water mark of bytes handed out */
    size_t used;           /* bytes handed out now (including alignment) */
} pd_arena;

typedef struct pd_arena_mark {
    pd_arena_block *block;
    size_t off;
    size_t used;
} pd_arena_mark;

/* cap > 0: reserve cap bytes now (returns -1 if that allocation fails).
 * cap == 0: growing arena. Returns 0 on success. */
int pd_arena_init(pd_arena *a, size_t cap);
void pd_arena_free(pd_arena *a);   /* NULL-tolerant; leaves *a empty */

/* 64-byte aligned, PD_ARENA_TAIL readable bytes after it. NULL when out of space
 * (fixed) or out of memory (growing), or when n overflows. Not zeroed. */
void *pd_arena_alloc(pd_arena *a, size_t n);
/* Like pd_arena_alloc, zero-filled. count*size overflow returns NULL. */
void *pd_arena_calloc(pd_arena *a, size_t count, size_t size);
/* Copies a NUL-terminated string of length n (not NUL-terminated in src). */
char *pd_arena_strndup(pd_arena *a, const char *src, size_t n);

pd_arena_mark pd_arena_get_mark(const pd_arena *a);
void pd_arena_reset(pd_arena *a, pd_arena_mark m);

/* Bytes needed for an allocation of n bytes (rounded up, with tail), for sizing. */
size_t pd_arena_size_for(size_t n);

/* Grows a malloc'd array *p (capacity *cap elements of elem bytes) to hold at least
 * need elements, doubling from 64. Returns false (leaving *p intact) on overflow or
 * when realloc fails. */
bool pd_grow(void **p, size_t *cap, size_t need, size_t elem);

/* Portable aligned allocation for long-lived buffers (weights). Free with
 * pd_aligned_free. Returns NULL on failure or n == 0 overflow. */
void *pd_aligned_alloc(size_t n);
void pd_aligned_free(void *p);

/* Asks the OS to back the whole 2 MiB pages inside [p, p + n) with transparent huge
 * pages (Linux madvise(MADV_HUGEPAGE); a no-op elsewhere and below 4 MiB). Weights and
 * activations are gigabytes touched in order: 4 KiB pages cost one fault (and a page
 * clear) per 4 KiB at load and a TLB miss per 4 KiB in the kernels. pd_aligned_alloc
 * and the weight packers call it. */
void pd_advise_huge(void *p, size_t n);

#endif
