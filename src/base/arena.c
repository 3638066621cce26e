/*
 * arena.c - bump allocator with 64-byte alignment and readable tail padding.
 */
#include "base/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

struct pd_arena_block {
    pd_arena_block *prev;
    size_t size;   /* usable bytes in data */
    size_t off;    /* next free offset */
    unsigned char *data;  /* 64-byte aligned */
};

#define GROW_MIN ((size_t)64 << 10)

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

size_t pd_arena_size_for(size_t n) {
    if (n > SIZE_MAX - PD_ALIGN - PD_ARENA_TAIL) return SIZE_MAX;
    return round_up(n, PD_ALIGN) + PD_ARENA_TAIL;
}

void *pd_aligned_alloc(size_t n) {
    if (n == 0 || n > SIZE_MAX - PD_ALIGN - PD_ARENA_TAIL) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, PD_ALIGN, round_up(n, PD_ALIGN) + PD_ARENA_TAIL) != 0) return NULL;
    pd_advise_huge(p, n);
    return p;
}

void pd_advise_huge(void *p, size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (!p || n < 2 * huge) return;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    uintptr_t hi = ((uintptr_t)p + n) & ~(huge - 1);
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);   /* advice only */
#else
    (void)p;
    (void)n;
#endif
}

void pd_aligned_free(void *p) { free(p); }

static pd_arena_block *block_new(size_t size) {
    pd_arena_block *b = malloc(sizeof *b);
    if (!b) return NULL;
    b->data = pd_aligned_alloc(size);
    if (!b->data) {
        free(b);
        return NULL;
    }
    b->prev = NULL;
    b->size = size;
    b->off = 0;
    return b;
}

int pd_arena_init(pd_arena *a, size_t cap) {
    memset(a, 0, sizeof *a);
    a->cap = cap;
    if (cap > 0) {
        a->head = block_new(cap);
        if (!a->head) return -1;
    }
    return 0;
}

void pd_arena_free(pd_arena *a) {
    if (!a) return;
    pd_arena_block *b = a->head;
    while (b) {
        pd_arena_block *prev = b->prev;
        pd_aligned_free(b->data);
        free(b);
        b = prev;
    }
    memset(a, 0, sizeof *a);
}

void *pd_arena_alloc(pd_arena *a, size_t n) {
    size_t need = pd_arena_size_for(n);
    if (need == SIZE_MAX) return NULL;
    pd_arena_block *b = a->head;
    /* The tail is readable padding: it may overlap the next allocation but never
     * extends past the block. */
    size_t step = need - PD_ARENA_TAIL;
    if (!b || b->off + need > b->size) {
        if (a->cap > 0) return NULL;
        size_t size = need > GROW_MIN ? need : GROW_MIN;
        pd_arena_block *nb = block_new(size);
        if (!nb) return NULL;
        nb->prev = b;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->off;
    b->off += step;
    a->used += step;
    if (a->used > a->used_peak) a->used_peak = a->used;
    return p;
}

void *pd_arena_calloc(pd_arena *a, size_t count, size_t size) {
    if (size != 0 && count > SIZE_MAX / size) return NULL;
    void *p = pd_arena_alloc(a, count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

char *pd_arena_strndup(pd_arena *a, const char *src, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *p = pd_arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, src, n);
    p[n] = '\0';
    return p;
}

pd_arena_mark pd_arena_get_mark(const pd_arena *a) {
    pd_arena_mark m = {a->head, a->head ? a->head->off : 0, a->used};
    return m;
}

void pd_arena_reset(pd_arena *a, pd_arena_mark m) {
    /* Free blocks allocated after the mark (growing mode). */
    while (a->head && a->head != m.block) {
        pd_arena_block *prev = a->head->prev;
        pd_aligned_free(a->head->data);
        free(a->head);
        a->head = prev;
    }
    if (a->head) a->head->off = m.off;
    a->used = m.used;
}

bool pd_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem) return false;
        n *= 2;
    }
    void *q = realloc(*p, n * elem);
    if (!q) return false;
    *p = q;
    *cap = n;
    return true;
}
