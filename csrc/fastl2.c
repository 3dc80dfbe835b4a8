/*
 * The driver of the 1-d passes: splits the n elements into fixed blocks, runs them serially
 * or on the thread pool (pool.h), and combines the block partials in a fixed order.
 */
#include <stdlib.h>
#include <string.h>

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

/* Whether the problem has float32 operands and a float64 result: the kernels are compiled
 * for one dtype per result dtype (kernels.h), and such operands are converted block by block
 * (run_blocks_converting). */
static int converting(const fl2_problem *p)
{
    const int has_true = p->y_true != NULL, has_weights = p->weights != NULL;
    const int single = p->pred_dtype == FL2_FLOAT32 && (!has_true || p->true_dtype == FL2_FLOAT32) &&
                       (!has_weights || p->weights_dtype == FL2_FLOAT32);
    const int any_single = p->pred_dtype == FL2_FLOAT32 || (has_true && p->true_dtype == FL2_FLOAT32) ||
                           (has_weights && p->weights_dtype == FL2_FLOAT32);
    return !single && any_single;
}

/* Elements start..start+count-1 of an operand of dtype `dt` as doubles: where they lie when
 * float64, else converted (exactly) into `buffer`. */
static const double *as_doubles(double *buffer, const void *from, fl2_dtype dt, int64_t start,
                                int64_t count)
{
    if (dt == FL2_FLOAT64) return (const double *)from + start;
    const float *f = (const float *)from + start;
    for (int64_t i = 0; i < count; i++) buffer[i] = FL2_GET(float, f + i);
    return buffer;
}

/* run_blocks for a problem with float32 operands and a float64 result (converting): each
 * block's float32 operands converted exactly into buffers of doubles (repeated weights one
 * per element; float64 operands read where they lie), run through the float64 kernel
 * (job->kernel; job->p keeps the caller's dtypes), and a float32 gradient rounded once on its
 * way back.  The float64 arithmetic of dedicated mixed kernels: the same bits. */
static int run_blocks_converting(void *ctx, int64_t first, int64_t last)
{
    const block_job *job = (const block_job *)ctx;
    const fl2_problem *p = job->p; /* (the caller's, its own dtypes) */
    const int64_t n = p->n;
    const int64_t repeat = p->weights_repeat > 1 ? p->weights_repeat : 1;
    const int weights_only = job->mode == FL2_MODE_WEIGHTS;
    double *memory = (double *)malloc((size_t)4 * FL2_BLOCK_SIZE * sizeof(double));
    if (!memory) return -1;
    double *t = memory, *y = memory + FL2_BLOCK_SIZE, *w = memory + 2 * FL2_BLOCK_SIZE;
    double *g = memory + 3 * FL2_BLOCK_SIZE;
    const int grad32 = job->o && job->o->grad && p->pred_dtype == FL2_FLOAT32;
    for (int64_t b = first; b < last; b++) {
        const int64_t start = b * FL2_BLOCK_SIZE;
        const int64_t count = (start + FL2_BLOCK_SIZE < n ? start + FL2_BLOCK_SIZE : n) - start;
        fl2_problem q = *p;
        q.true_dtype = q.pred_dtype = q.weights_dtype = FL2_FLOAT64;
        q.n = count;
        q.weights_repeat = 1;
        if (!weights_only) {
            if (p->y_true) q.y_true = as_doubles(t, p->y_true, p->true_dtype, start, count);
            q.y_pred = as_doubles(y, p->y_pred, p->pred_dtype, start, count);
        }
        if (p->weights && repeat == 1) {
            q.weights = as_doubles(w, p->weights, p->weights_dtype, start, count);
        } else if (p->weights) { /* (one per element: the kernel's weights_repeat is 1) */
            int64_t row = start / repeat, row_end = (row + 1) * repeat;
            for (int64_t i = 0; i < count; i++) {
                if (start + i == row_end) {
                    row++;
                    row_end += repeat;
                }
                w[i] = p->weights_dtype == FL2_FLOAT64 ? FL2_GET(double, (const double *)p->weights + row)
                                                       : (double)FL2_GET(float, (const float *)p->weights + row);
            }
            q.weights = w;
        }
        fl2_outputs o;
        memset(&o, 0, sizeof o);
        if (job->o) {
            o = *job->o;
            o.stream = 0;
            if (o.grad)
                o.grad = grad32 ? (void *)g : (void *)((double *)o.grad + start);
            if (o.elementwise) o.elementwise = (double *)o.elementwise + start; /* (float64) */
            if (grad32) { /* (scale / divisor) * g: see fl2_run_strided */
                o.grad_scale = job->o->grad_scale / job->o->grad_divisor;
                o.grad_divisor = 1.0;
            }
        }
        job->kernel(&q, job->o ? &o : NULL, job->mode, 0, count, job->part ? job->part + b : NULL);
        if (grad32) {
            float *out = (float *)job->o->grad + start;
            for (int64_t i = 0; i < count; i++) FL2_PUT(float, out + i, g[i]);
        }
    }
    free(memory);
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
    const int convert = converting(p);
    fl2_problem as_float64 = *p; /* (the float64 kernel's dtypes: the kernel index) */
    as_float64.true_dtype = as_float64.pred_dtype = as_float64.weights_dtype = FL2_FLOAT64;
    const fl2_block_fn kernel = fl2_active_kernels[fl2_kernel_index(convert ? &as_float64 : p)];

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
    const int status = fl2_parallel(nblocks, grain, nt, convert ? run_blocks_converting : run_blocks,
                                    (void *)&job);

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
