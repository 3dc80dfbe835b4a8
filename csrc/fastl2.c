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

/* Elements start..start+count-1 of an operand of dtype `dt` as dtype `to`: where they lie when
 * it is `to`, else converted (exactly) into `buffer`. */
static const void *as_compute(void *buffer, fl2_dtype to, const void *from, fl2_dtype dt,
                              int64_t start, int64_t count)
{
    const size_t item = fl2_item_size(dt);
    const char *at = (const char *)from + (size_t)start * item;
    if (dt == to) return at;
    fl2_load_run(buffer, to, at, (int64_t)item, dt, count);
    return buffer;
}

/* run_blocks for a problem whose operands are not all of its kernel's dtype (fl2_converting:
 * float32 operands of a float64 result, float16 and bfloat16 ones of any): each block's
 * operands of another dtype converted exactly into buffers (repeated weights one per
 * element; operands of the kernel's dtype read where they lie), run through the kernel of the
 * compute dtype (job->kernel; job->p keeps the caller's dtypes), and a gradient of another
 * dtype rounded once on its way back (a float16 or bfloat16 one: its kernel told, block_run.h).  The arithmetic of dedicated mixed kernels: the same bits. */
static int run_blocks_converting(void *ctx, int64_t first, int64_t last)
{
    const block_job *job = (const block_job *)ctx;
    const fl2_problem *p = job->p; /* (the caller's, its own dtypes) */
    const int64_t n = p->n;
    const int64_t repeat = p->weights_repeat > 1 ? p->weights_repeat : 1;
    const int weights_only = job->mode == FL2_MODE_WEIGHTS;
    const fl2_dtype compute = fl2_compute_dtype(p);
    const size_t citem = fl2_item_size(compute);
    char *memory = (char *)malloc((size_t)4 * FL2_BLOCK_SIZE * citem);
    if (!memory) return -1;
    char *t = memory, *y = memory + FL2_BLOCK_SIZE * citem, *w = memory + 2 * FL2_BLOCK_SIZE * citem;
    char *g = memory + 3 * FL2_BLOCK_SIZE * citem;
    const int grad_converted = job->o && job->o->grad && p->pred_dtype != compute;
    const size_t pred_item = fl2_item_size(p->pred_dtype);
    for (int64_t b = first; b < last; b++) {
        const int64_t start = b * FL2_BLOCK_SIZE;
        const int64_t count = (start + FL2_BLOCK_SIZE < n ? start + FL2_BLOCK_SIZE : n) - start;
        fl2_problem q = *p;
        q.true_dtype = q.pred_dtype = q.weights_dtype = compute;
        q.n = count;
        q.weights_repeat = 1;
        if (!weights_only) {
            if (p->y_true) q.y_true = as_compute(t, compute, p->y_true, p->true_dtype, start, count);
            q.y_pred = as_compute(y, compute, p->y_pred, p->pred_dtype, start, count);
        }
        if (p->weights && repeat == 1) {
            q.weights = as_compute(w, compute, p->weights, p->weights_dtype, start, count);
        } else if (p->weights) { /* (one per element: the kernel's weights_repeat is 1) */
            const size_t witem = fl2_item_size(p->weights_dtype);
            int64_t row = start / repeat, row_end = (row + 1) * repeat;
            double value = fl2_load_one((const char *)p->weights + (size_t)row * witem, p->weights_dtype);
            for (int64_t i = 0; i < count; i++) {
                if (start + i == row_end) {
                    row++;
                    row_end += repeat;
                    value = fl2_load_one((const char *)p->weights + (size_t)row * witem, p->weights_dtype);
                }
                if (compute == FL2_FLOAT64) ((double *)(void *)w)[i] = value;
                else ((float *)(void *)w)[i] = (float)value; /* (exact: a float32 or narrower) */
            }
            q.weights = w;
        }
        fl2_outputs o;
        memset(&o, 0, sizeof o);
        if (job->o) {
            o = *job->o;
            o.stream = 0;
            if (o.grad) o.grad = grad_converted ? (void *)g : (void *)((char *)o.grad + (size_t)start * pred_item);
            if (o.elementwise) o.elementwise = (char *)o.elementwise + (size_t)start * citem; /* (compute) */
            if (grad_converted && compute == FL2_FLOAT64 && p->pred_dtype == FL2_FLOAT32) {
                /* (scale / divisor) * g: see fl2_run_strided */
                o.grad_scale = job->o->grad_scale / job->o->grad_divisor;
                o.grad_divisor = 1.0;
                o.grad_plain = 1;
            }
            o.grad_half = grad_converted && fl2_item_size(p->pred_dtype) == 2; /* (block_run.h) */
        }
        job->kernel(&q, job->o ? &o : NULL, job->mode, 0, count, job->part ? job->part + b : NULL);
        if (grad_converted)
            fl2_store_run((char *)job->o->grad + (size_t)start * pred_item, (int64_t)pred_item,
                          p->pred_dtype, g, compute, count);
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
        if (sums) sums->loss = sums->weights = sums->loss_lo = sums->weights_lo = 0.0;
        return 0;
    }
    const int64_t nblocks = (n + FL2_BLOCK_SIZE - 1) / FL2_BLOCK_SIZE;
    const int convert = fl2_converting(p);
    fl2_problem as_compute_dtype = *p; /* (the kernel's dtypes: the kernel index) */
    as_compute_dtype.true_dtype = as_compute_dtype.pred_dtype = as_compute_dtype.weights_dtype =
        fl2_compute_dtype(p);
    const fl2_block_fn kernel = fl2_active_kernels[fl2_kernel_index(&as_compute_dtype)];

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
        const size_t item = fl2_item_size(p->pred_dtype);
        outputs = *o;
        outputs.stream = grad && (int64_t)(p->n * item) >= fl2_stream_threshold();
        outputs.grad_half = 0;
        outputs.grad_plain = 0;
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
    if (elem && sums) /* "none" reduces nothing */
        sums->loss = sums->weights = sums->loss_lo = sums->weights_lo = 0.0;
    return run(p, o, mode, elem ? NULL : sums, nthreads);
}

int fl2_weight_sum(const fl2_problem *p, double *weight_sum, double *weight_lo, int nthreads)
{
    fl2_pool_call_begins();
    fl2_sums sums;
    if (!p->weights) {
        *weight_sum = (double)p->n;
        if (weight_lo) *weight_lo = 0.0;
        return 0;
    }
    const int status = run(p, NULL, FL2_MODE_WEIGHTS, &sums, nthreads);
    if (status == 0) {
        *weight_sum = sums.weights;
        if (weight_lo) *weight_lo = sums.weights_lo;
    }
    return status;
}
