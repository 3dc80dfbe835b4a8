/*
 * The driver of the 1-d passes: splits the n elements into fixed blocks, runs them serially
 * or on the thread pool (pool.h), and combines the block partials in a fixed order.
 */
#include <stdlib.h>

#include "driver.h"

/* ---- one pass ------------------------------------------------------------------------- */

typedef struct {
    const fl2_problem *p;
    const fl2_outputs *o;
    fl2_mode mode;
    fl2_block_fn kernel;
    fl2_partial *part;
} block_job;

/* Blocks [first, last) of a pass (a task of fl2_parallel). */
static int run_blocks(void *ctx, int64_t first, int64_t last)
{
    const block_job *job = (const block_job *)ctx;
    const int64_t n = job->p->n;
    for (int64_t b = first; b < last; b++) {
        const int64_t start = b * FL2_BLOCK_SIZE;
        const int64_t end = start + FL2_BLOCK_SIZE < n ? start + FL2_BLOCK_SIZE : n;
        job->kernel(job->p, job->o, job->mode, start, end, job->part ? job->part + b : NULL);
    }
    return 0;
}

static int run(const fl2_problem *p, const fl2_outputs *o, fl2_mode mode, fl2_sums *sums,
               int nthreads)
{
    const int64_t n = p->n;
    const int want_sums = mode == FL2_MODE_SUMS || mode == FL2_MODE_SUMS_GRAD ||
                          mode == FL2_MODE_WEIGHTS;
    if (n <= 0) {
        if (sums) sums->loss = sums->weights = 0.0;
        return 0;
    }
    const int64_t nblocks = (n + FL2_BLOCK_SIZE - 1) / FL2_BLOCK_SIZE;
    const fl2_block_fn kernel = fl2_active_kernels[fl2_kernel_index(p)];

    fl2_partial stack_part[FL2_STACK_BLOCKS], *part = NULL;
    if (want_sums) {
        part = nblocks <= FL2_STACK_BLOCKS ? stack_part
                                            : (fl2_partial *)malloc(nblocks * sizeof(fl2_partial));
        if (!part) return -1;
    }

    const block_job job = {p, o, mode, kernel, part};
    const int nt = fl2_threads_for(n, nblocks, nthreads);
    /* One block a claim while the pass has fewer than 64 blocks a thread (about 10^6
     * elements on two threads), then larger claims, 32 a thread at least and at most 64
     * blocks (2 MiB of each float32 operand): short claims keep the caller
     * from waiting long for a helper the scheduler stops mid-claim, long ones keep the
     * prefetchers on long runs of memory. */
    int64_t grain = nblocks / (32 * (int64_t)nt);
    grain = grain < FL2_BLOCKS_PER_TASK ? FL2_BLOCKS_PER_TASK : grain > 64 ? 64 : grain;
    const int status = fl2_parallel(nblocks, grain, nt, run_blocks, (void *)&job);

    if (want_sums) {
        if (status == 0) fl2_combine_partials(part, nblocks, sums);
        if (part != stack_part) free(part);
    }
    return fl2_driver_status(status);
}

int fl2_run(const fl2_problem *p, const fl2_outputs *o, fl2_sums *sums, int nthreads)
{
    fl2_pool_call_begins();
    const int grad = o && o->grad, elem = o && o->elementwise;
    fl2_outputs outputs;
    if (o) {
        size_t item = p->pred_dtype == FL2_FLOAT64 ? sizeof(double) : sizeof(float);
        outputs = *o;
        outputs.stream = grad && (int64_t)(p->n * item) >= fl2_stream_threshold();
        o = &outputs;
    }
    fl2_mode mode;
    if (elem)
        mode = grad ? FL2_MODE_ELEM_GRAD : FL2_MODE_ELEM;
    else if (sums)
        mode = grad ? FL2_MODE_SUMS_GRAD : FL2_MODE_SUMS;
    else if (grad)
        mode = FL2_MODE_GRAD;
    else
        return 0;
    if (elem && sums) sums->loss = sums->weights = 0.0; /* "none" reduces nothing */
    return run(p, o, mode, elem ? NULL : sums, nthreads);
}

int fl2_weight_sum(const fl2_problem *p, double *weight_sum, int nthreads)
{
    fl2_pool_call_begins();
    fl2_sums sums;
    if (!p->weights) {
        *weight_sum = (double)p->n;
        return 0;
    }
    const int status = run(p, NULL, FL2_MODE_WEIGHTS, &sums, nthreads);
    if (status == 0) *weight_sum = sums.weights;
    return status;
}
