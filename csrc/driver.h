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

/* The bytes of one element of dtype dt. */
FL2_INLINE size_t fl2_item_size(fl2_dtype dt)
{
    return dt == FL2_FLOAT64 ? 8 : dt == FL2_FLOAT32 ? 4 : 2;
}

/* The dtype of the problem's result (and element losses): float64 when any operand is
 * float64, else float32. */
FL2_INLINE fl2_dtype fl2_result_dtype(const fl2_problem *p)
{
    const int wide = p->pred_dtype == FL2_FLOAT64 || (p->y_true && p->true_dtype == FL2_FLOAT64) ||
                     (p->weights && p->weights_dtype == FL2_FLOAT64);
    return wide ? FL2_FLOAT64 : FL2_FLOAT32;
}

/* The dtype of the operands the problem's kernel reads: float16 (bfloat16) when every one is
 * float16 (bfloat16) (y_true given: kernels.h has no half-precision penalty), else the result
 * dtype. */
FL2_INLINE fl2_dtype fl2_compute_dtype(const fl2_problem *p)
{
    const fl2_dtype d = p->pred_dtype;
    if ((d == FL2_FLOAT16 || d == FL2_BFLOAT16) && p->y_true && p->true_dtype == d &&
        (!p->weights || p->weights_dtype == d))
        return d;
    return fl2_result_dtype(p);
}

/* Whether an operand's dtype is not its kernel's: then its blocks are converted (convert.c). */
FL2_INLINE int fl2_converting(const fl2_problem *p)
{
    const fl2_dtype c = fl2_compute_dtype(p);
    return p->pred_dtype != c || (p->y_true && p->true_dtype != c) || (p->weights && p->weights_dtype != c);
}

/* convert.c: n elements of dtype dt at `from` (byte step `step`, any address) into dst as
 * dtype `to` (float32 or float64), exactly; and n values of dtype `from` (float32 or float64)
 * into `to` (step bytes apart) as dtype dt, rounded once to nearest even (float32 values bound
 * for a float16 or bfloat16: rounded to odd, block_run.h).  fl2_load_one: one element as a
 * double. */
void fl2_load_run(void *dst, fl2_dtype to, const void *from, int64_t step, fl2_dtype dt, int64_t n);
void fl2_store_run(void *to, int64_t step, fl2_dtype dt, const void *values, fl2_dtype from, int64_t n);
double fl2_load_one(const void *p, fl2_dtype dt);
/* Whether float16 runs use the F16C instructions (config.c: the levels above the baseline on
 * CPUs that have them; the same bits either way). */
extern int fl2_use_f16c;

/* The index of the problem's kernel in the tables (kernels.h: by result dtype), for a
 * problem whose operands all have one dtype (fl2_run_strided converts the others). */
FL2_INLINE int fl2_kernel_index(const fl2_problem *p)
{
    const int pred = p->pred_dtype == FL2_FLOAT64;
    if (!p->y_true) return 4 + pred;
    if (p->pred_dtype == FL2_FLOAT16) return 6 + (p->weights != NULL);
    if (p->pred_dtype == FL2_BFLOAT16) return 8 + (p->weights != NULL);
    return pred * 2 + (p->weights != NULL);
}

/* A double-double as its value rounded once (*hi) and the rest (*lo, exact: Fast2Sum); a
 * non-finite value with *lo = 0. */
FL2_INLINE void fl2_dd_put(fl2_dd x, double *hi, double *lo)
{
    const double s = x.hi + x.lo;
    *hi = s;
    *lo = s - s == 0.0 ? x.lo - (s - x.hi) : 0.0;
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
    fl2_dd_put(part[0].loss, &sums->loss, &sums->loss_lo);
    fl2_dd_put(part[0].weights, &sums->weights, &sums->weights_lo);
}

#endif /* FASTL2_DRIVER_H */
