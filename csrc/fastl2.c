/*
 * The driver of the 1-d passes: splits the n elements into fixed blocks, runs them serially
 * or on OpenMP threads, and combines the block partials in a fixed order.
 */
#include <stdlib.h>

#include "driver.h"

/* ---- one pass ------------------------------------------------------------------------- */

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

    const int nt = fl2_threads_for(n, nblocks, nthreads);
    if (nt <= 1) {
        for (int64_t b = 0; b < nblocks; b++) {
            int64_t start = b * FL2_BLOCK_SIZE, end = start + FL2_BLOCK_SIZE < n ? start + FL2_BLOCK_SIZE : n;
            kernel(p, o, mode, start, end, part ? part + b : NULL);
        }
    }
#ifdef _OPENMP
    else {
        /* Guided: long contiguous runs first (what the prefetchers like), then ever smaller
         * ones, so that on a shared machine a descheduled thread's blocks go to the others
         * instead of stalling the call.  Who computes a block never changes its result. */
#pragma omp parallel for schedule(guided, FL2_BLOCKS_PER_TASK) num_threads(nt)
        for (int64_t b = 0; b < nblocks; b++) {
            int64_t start = b * FL2_BLOCK_SIZE, end = start + FL2_BLOCK_SIZE < n ? start + FL2_BLOCK_SIZE : n;
            kernel(p, o, mode, start, end, part ? part + b : NULL);
        }
    }
#endif

    if (want_sums) {
        fl2_combine_partials(part, nblocks, sums);
        if (part != stack_part) free(part);
    }
    return 0;
}

int fl2_run(const fl2_problem *p, const fl2_outputs *o, fl2_sums *sums, int nthreads)
{
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
    fl2_sums sums;
    if (!p->weights) {
        *weight_sum = (double)p->n;
        return 0;
    }
    int status = run(p, NULL, FL2_MODE_WEIGHTS, &sums, nthreads);
    *weight_sum = sums.weights;
    return status;
}
