/* What the driver's files share: config.c chooses the kernels and holds the settings;
 * fastl2.c (the 1-d passes) and strided.c (N-d arrays in any layout) run them. */
#ifndef FASTL2_DRIVER_H
#define FASTL2_DRIVER_H

#include "internal.h"
#include "pool.h"

/* The fewest blocks a thread claims at a time (pool.h). */
#define FL2_BLOCKS_PER_TASK 1

/* Block partials of calls up to this many blocks live on the stack. */
#define FL2_STACK_BLOCKS 64

/* The kernels of the instruction-set level in use (config.c). */
extern const fl2_block_fn *fl2_active_kernels;
extern const fl2_columns_fn *fl2_active_columns;
extern const fl2_rows_fn *fl2_active_rows;

/* How many threads a call of n elements in nblocks blocks runs on (1: serially). */
int fl2_threads_for(int64_t n, int64_t nblocks, int nthreads);

/* A driver's result (fastl2.h) for fl2_parallel's: 0, -1 (a task failed: out of memory),
 * FL2_INTERRUPTED or FL2_FORKED. */
FL2_INLINE int fl2_driver_status(int pool_status)
{
    return pool_status == FL2_POOL_INTERRUPTED ? FL2_INTERRUPTED
           : pool_status == FL2_POOL_FORKED    ? FL2_FORKED
           : pool_status                       ? -1
                                               : 0;
}

/* The index of the problem's kernel in the tables (kernels.h: by result dtype), for a
 * problem whose operands all have one dtype (fl2_run_strided converts the others). */
FL2_INLINE int fl2_kernel_index(const fl2_problem *p)
{
    const int pred = p->pred_dtype == FL2_FLOAT64;
    if (!p->y_true) return 4 + pred;
    return pred * 2 + (p->weights != NULL);
}

/* The m block partials combined by the fixed pairwise tree, into *sums. */
FL2_INLINE void fl2_combine_partials(fl2_partial *part, int64_t m, fl2_sums *sums)
{
    for (int64_t step = 1; step < m; step *= 2) {
        for (int64_t i = 0; i + step < m; i += 2 * step) {
            part[i].loss = fl2_dd_add(part[i].loss, part[i + step].loss);
            part[i].weights = fl2_dd_add(part[i].weights, part[i + step].weights);
        }
    }
    sums->loss = part[0].loss.hi + part[0].loss.lo;
    sums->weights = part[0].weights.hi + part[0].weights.lo;
}

#endif /* FASTL2_DRIVER_H */
