/*
 * linear.c - threaded drivers: linear layers (GEMM against packed weights), layer norm,
 * attention and elementwise activations, splitting work into disjoint ranges per thread.
 *
 * GEMM split: by whole weight panels when there are at least as many panels as threads
 * (every thread streams a disjoint part of W once), else by rows of x.
 */
#include "nn/nn.h"

#include "kernels/quant/quant.h"

void *pd_nn_wscratch(const pd_nn *nn, int ith, int nth, size_t *bytes) {
    const size_t slice = nn->wscratch ? nn->wscratch_bytes / (size_t)nth / 64 * 64 : 0;
    *bytes = slice;
    return slice ? (char *)nn->wscratch + slice * (size_t)ith : NULL;
}

typedef struct linear_job {
    const pd_nn *nn;
    pd_gemm_args args;
} linear_job;

static void linear_task(void *arg, int ith, int nth) {
    const linear_job *job = arg;
    pd_gemm_args a = job->args;
    const pd_packed_w *w = a.w;
    int nr = w->nr;
    int n_panels = (w->n + nr - 1) / nr;
    if (n_panels >= nth) {
        int p0 = (int)((int64_t)n_panels * ith / nth);
        int p1 = (int)((int64_t)n_panels * (ith + 1) / nth);
        if (p0 == p1) return;
        a.n0 = p0 * nr;
        a.n1 = PD_MIN(p1 * nr, w->n);
    } else {
        int r0 = (int)((int64_t)a.m * ith / nth);
        int r1 = (int)((int64_t)a.m * (ith + 1) / nth);
        if (r0 == r1) return;
        a.a += (size_t)r0 * a.lda;
        a.c += (size_t)r0 * a.ldc;
        if (a.res) a.res += (size_t)r0 * a.ldres;
        a.m = r1 - r0;
    }
    const pd_kernels *kt = job->nn->kt;
    if (pd_packed_w_rows(w)) {
        size_t bytes;
        void *scratch = pd_nn_wscratch(job->nn, ith, nth, &bytes);
        PD_ASSERT(scratch && bytes >= pd_q_scratch_bytes(kt, w->k));
        pd_q_gemm(kt, &a, scratch, bytes);
    } else {
        kt->gemm_f32(&a);
    }
}

void pd_nn_linear(const pd_nn *nn, float *y, size_t ldy, const float *x, size_t ldx, int m,
                  const pd_packed_w *w, pd_act act, const float *res, size_t ldres) {
    PD_ASSERT(w->nr == nn->kt->gemm_nr);
    linear_job job = {nn,
                      {.m = m, .n0 = 0, .n1 = w->n, .a = x, .lda = ldx, .w = w, .c = y,
                       .ldc = ldy, .res = res, .ldres = ldres, .act = act}};
    if (m <= 0) return;
    pd_pool_run(nn->pool, linear_task, &job);
}

typedef struct ln_job {
    const pd_kernels *kt;
    float *y;
    size_t ldy;
    const float *x;
    size_t ldx;
    int rows, cols;
    const float *gamma, *beta;
    float eps;
} ln_job;

static void ln_task(void *arg, int ith, int nth) {
    const ln_job *j = arg;
    int r0 = (int)((int64_t)j->rows * ith / nth), r1 = (int)((int64_t)j->rows * (ith + 1) / nth);
    if (r0 < r1)
        j->kt->layernorm_f32(j->y + (size_t)r0 * j->ldy, j->ldy, j->x + (size_t)r0 * j->ldx,
                             j->ldx, r1 - r0, j->cols, j->gamma, j->beta, j->eps);
}

void pd_nn_layernorm(const pd_nn *nn, float *y, size_t ldy, const float *x, size_t ldx,
                     int rows, int cols, const float *gamma, const float *beta, float eps) {
    ln_job j = {nn->kt, y, ldy, x, ldx, rows, cols, gamma, beta, eps};
    pd_pool_run(nn->pool, ln_task, &j);
}

typedef struct act_job {
    const pd_kernels *kt;
    float *y;
    const float *x;
    size_t n;
    pd_act act;
} act_job;

/* Ranges start on multiples of 16 floats (one cache line) so threads never share a
 * line of y. */
static void act_task(void *arg, int ith, int nth) {
    const act_job *j = arg;
    size_t blocks = (j->n + 15) / 16;
    size_t i0 = blocks * (size_t)ith / (size_t)nth * 16, i1 = blocks * (size_t)(ith + 1) / (size_t)nth * 16;
    if (i1 > j->n) i1 = j->n;
    if (i0 < i1) j->kt->act_f32(j->y + i0, j->x + i0, i1 - i0, j->act);
}

void pd_nn_act(const pd_nn *nn, float *y, const float *x, size_t n, pd_act act) {
    if (n == 0) return;
    act_job j = {nn->kt, y, x, n, act};
    pd_pool_run(nn->pool, act_task, &j);
}

typedef struct attn_job {
    const pd_kernels *kt;
    const pd_attn_args *args;
    int rows;      /* query rows per task */
    int n_qb;      /* query blocks per head */
    int n_tasks;   /* heads * n_qb */
} attn_job;

static void attn_task(void *arg, int ith, int nth) {
    const attn_job *j = arg;
    int t0 = (int)((int64_t)j->n_tasks * ith / nth), t1 = (int)((int64_t)j->n_tasks * (ith + 1) / nth);
    for (int t = t0; t < t1; t++) {
        pd_attn_args a = *j->args;
        int h = t / j->n_qb, qb = t % j->n_qb;
        a.h0 = h;
        a.h1 = h + 1;
        a.q0 = qb * j->rows;
        a.q1 = PD_MIN(a.q0 + j->rows, a.n_q);
        j->kt->attention_f32(&a);
    }
}

void pd_nn_attention(const pd_nn *nn, const pd_attn_args *args) {
    int n_heads = args->h1;   /* caller passes h0 = 0, h1 = number of heads */
    const int rows = PD_MAX(1, nn->kt->attn_rows);
    int n_qb = (args->n_q + rows - 1) / rows;
    attn_job j = {nn->kt, args, rows, n_qb, n_heads * n_qb};
    if (j.n_tasks <= 0) return;
    pd_pool_run(nn->pool, attn_task, &j);
}
