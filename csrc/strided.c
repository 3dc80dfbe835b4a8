/*
 * The driver of N-d arrays in any layout (fl2_run_strided): each output's run cut into fixed
 * blocks, gathered where they are not contiguous, run through the block kernels (or their
 * columns and rows variants), and each output's partials combined by the fixed tree.
 */
#include <stdlib.h>
#include <string.h>

#include "driver.h"

/* ---- N-d arrays in any layout --------------------------------------------------------- */

/* Where element `index` (C order over shape[0..nd)) of an operand is, from its base. */
static const char *element_at(const char *base, int nd, const int64_t *shape,
                              const int64_t *strides, int64_t index)
{
    for (int d = nd - 1; d >= 0 && index; d--) {
        base += (index % shape[d]) * strides[d];
        index /= shape[d];
    }
    return base;
}

/* Copies `count` elements of `item` bytes, from element `start` (C order over shape[0..nd))
 * of the operand at `base`, to the contiguous `buffer`; or back, with `to_array`.  When the
 * operand's dtype `dt` is not the buffer's `compute` dtype, its elements are converted exactly
 * into the buffer, or rounded once (to nearest even) on their way back (convert.c). */
static void copy_run(char *buffer, char *base, size_t item, int nd, const int64_t *shape,
                     const int64_t *strides, int64_t start, int64_t count, int to_array,
                     fl2_dtype dt, fl2_dtype compute)
{
    int64_t idx[FL2_MAX_DIMS];
    int64_t rest = start;
    char *ptr = base;
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = rest % shape[d];
        rest /= shape[d];
        ptr += idx[d] * strides[d];
    }
    const int last = nd - 1;
    const int64_t step = strides[last];
    const int convert = dt != compute;
    const size_t buffer_item = convert ? fl2_item_size(compute) : item;
    while (count > 0) {
        int64_t run = shape[last] - idx[last];
        if (run > count) run = count;
        if (convert) {
            if (to_array) fl2_store_run(ptr, step, dt, buffer, compute, run);
            else fl2_load_run(buffer, compute, ptr, step, dt, run);
        } else if (step == (int64_t)item) {
            if (to_array) memcpy(ptr, buffer, (size_t)run * item);
            else memcpy(buffer, ptr, (size_t)run * item);
        } else if (item == 2) { /* (float16: the bits as they are) */
            for (int64_t i = 0; i < run; i++) {
                if (to_array) memcpy(ptr + i * step, buffer + 2 * i, 2);
                else memcpy(buffer + 2 * i, ptr + i * step, 2);
            }
        } else if (!to_array && step == 2 * (int64_t)item) {
            /* every other element (a[::2]): a constant stride the compiler vectorises; the
             * operand may be unaligned (the buffer is not), so its elements are memcpy'd */
            if (item == sizeof(float)) {
                float *b = (float *)buffer;
                for (int64_t i = 0; i < run; i++) memcpy(b + i, ptr + 2 * i * sizeof(float), sizeof(float));
            } else {
                double *b = (double *)buffer;
                for (int64_t i = 0; i < run; i++) memcpy(b + i, ptr + 2 * i * sizeof(double), sizeof(double));
            }
        } else if (item == sizeof(float)) {
            float *b = (float *)buffer;
            if (to_array)
                for (int64_t i = 0; i < run; i++) memcpy(ptr + i * step, b + i, sizeof(float));
            else
                for (int64_t i = 0; i < run; i++) memcpy(b + i, ptr + i * step, sizeof(float));
        } else {
            double *b = (double *)buffer;
            if (to_array)
                for (int64_t i = 0; i < run; i++) memcpy(ptr + i * step, b + i, sizeof(double));
            else
                for (int64_t i = 0; i < run; i++) memcpy(b + i, ptr + i * step, sizeof(double));
        }
        buffer += (size_t)run * buffer_item;
        count -= run;
        /* advance the odometer by `run` elements: the last dim ends or the count does */
        idx[last] += run;
        ptr += run * step;
        for (int d = last; d > 0 && idx[d] == shape[d]; d--) {
            ptr -= shape[d] * strides[d];
            idx[d] = 0;
            idx[d - 1]++;
            ptr += strides[d - 1];
        }
    }
}

typedef struct {
    const fl2_problem *p;
    const fl2_layout *l;
    const fl2_outputs *o;
    fl2_mode mode;
    fl2_block_fn kernel;
    size_t item[FL2_NOPS];       /* each operand's own item size */
    fl2_dtype dtype[FL2_NOPS];   /* each operand's own dtype */
    fl2_dtype kernel_dtype[FL2_NOPS]; /* and the kernel's (element losses: the result dtype) */
    fl2_dtype compute;           /* the kernel's dtype of inputs and gradient */
    int convert;                 /* operands of another dtype than the kernel's: see fl2_run_strided */
    const char *base[FL2_NOPS];  /* NULL: operand not used */
    int nr;                      /* reduced dims */
    int64_t nblocks;             /* per output */
    int64_t reduced;             /* elements per output */
} strided_call;

/* Block b of output o: through the kernel, gathered into per-thread buffers (allocated in
 * *memory on first use) where it is not contiguous.  Returns -1 when out of memory. */
static int strided_block(const strided_call *c, int64_t o, int64_t b, char **memory,
                         fl2_partial *part)
{
    const fl2_layout *l = c->l;
    const int nk = l->nkept, nr = c->nr;
    const int64_t *rshape = l->shape + nk;
    const int64_t start = b * FL2_BLOCK_SIZE;
    const int64_t count = c->reduced - start < FL2_BLOCK_SIZE ? c->reduced - start : FL2_BLOCK_SIZE;
    char *at[FL2_NOPS];
    /* The block is one contiguous piece of every operand when it lies in one row of the
     * last dim and every operand steps through that dim by its item size. */
    const int64_t column = start % rshape[nr - 1];
    int direct = column + count <= rshape[nr - 1] && !c->convert;
    /* Sums of inputs that all step by two items in that row (a[::2]) read them in place
     * too, with the kernels' step-2 loads. */
    int step2 = direct && count > 1 && (c->mode == FL2_MODE_SUMS || c->mode == FL2_MODE_WEIGHTS);
    for (int k = 0; k < FL2_NOPS; k++) {
        at[k] = NULL;
        if (!c->base[k]) continue;
        at[k] = (char *)element_at(c->base[k], nk, l->shape, l->strides[k], o);
        const int64_t step = l->strides[k][l->ndim - 1];
        if (step != (int64_t)c->item[k] && count > 1) direct = 0;
        if (step != 2 * (int64_t)c->item[k]) step2 = 0;
    }
    fl2_mode mode = c->mode;
    if (step2) {
        direct = 1;
        mode = (fl2_mode)(mode | FL2_MODE_STEP2);
    }
    fl2_problem q = *c->p;
    fl2_outputs out;
    q.n = count;
    q.weights_repeat = 1;
    if (c->o) out = *c->o;
    else memset(&out, 0, sizeof(out));
    out.stream = 0;
    const void **inputs[3] = {&q.y_true, &q.y_pred, &q.weights};
    void **outputs[2] = {&out.grad, &out.elementwise};
    if (!direct && !*memory) {
        *memory = (char *)malloc((size_t)FL2_NOPS * FL2_BLOCK_SIZE * sizeof(double));
        if (!*memory) return -1;
    }
    for (int k = 0; k < FL2_NOPS; k++) {
        if (!at[k]) continue;
        const int64_t *st = l->strides[k] + nk;
        char *where;
        if (direct) {
            where = (char *)element_at(at[k], nr, rshape, st, start);
        } else {
            where = *memory + (size_t)k * FL2_BLOCK_SIZE * sizeof(double);
            if (k < FL2_OP_GRAD)
                copy_run(where, at[k], c->item[k], nr, rshape, st, start, count, 0, c->dtype[k],
                         c->kernel_dtype[k]);
        }
        if (k < FL2_OP_GRAD) *inputs[k] = where;
        else *outputs[k - FL2_OP_GRAD] = where;
    }
    c->kernel(&q, &out, mode, 0, count, part);
    if (!direct)
        for (int k = FL2_OP_GRAD; k < FL2_NOPS; k++)
            if (at[k])
                copy_run(*memory + (size_t)k * FL2_BLOCK_SIZE * sizeof(double), at[k],
                         c->item[k], nr, rshape, l->strides[k] + nk, start, count, 1, c->dtype[k],
                         c->kernel_dtype[k]);
    return 0;
}

/* Where the outputs' sums go: loss_sums and weight_sums, their rests loss_lo and weight_lo
 * (any may be NULL); with values, each output's value instead of its loss sum.  Output o of
 * the call is at index offset + o. */
typedef struct {
    double *loss_sums, *weight_sums, *loss_lo, *weight_lo;
    const fl2_values *values;
    int64_t offset;
    int weighted;
} sink;

/* Flags output o whose value is not certainly correctly rounded, and writes a double's (kept
 * out of line: rare work, or a double's finish, beside the hot loops that finish outputs). */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static void check_output(const sink *s, int64_t o, double x, const fl2_sums *sums)
{
    const fl2_values *v = s->values;
    if (v->single) {
        if (v->uncertain && !fl2_certain_f32(x, v->bound)) v->uncertain[o] = 1;
        return;
    }
    const fl2_finish f = {v->count, s->weighted, 0, v->divisor, v->root, 1.0};
    const int certain = fl2_finish_f64(sums, &f, &x);
    ((double *)v->values)[o] = x;
    if (!certain && v->uncertain) v->uncertain[o] = 1;
}

static inline void put_output(const sink *s, int64_t o, const fl2_sums *sums)
{
    o += s->offset;
    if (s->values) {
        if (s->values->single) {
            double x = sums->loss / s->values->divisor;
            if (s->values->root) x = sqrt(x);
            ((float *)s->values->values)[o] = (float)x;
            if (s->values->uncertain) check_output(s, o, x, sums);
        } else {
            check_output(s, o, 0.0, sums);
        }
    } else if (s->loss_sums) {
        s->loss_sums[o] = sums->loss;
        if (s->loss_lo) s->loss_lo[o] = sums->loss_lo;
    }
    if (s->weight_sums) s->weight_sums[o] = sums->weights;
    if (s->weight_lo) s->weight_lo[o] = sums->weights_lo;
}

static inline void finish_output(const sink *s, fl2_partial *part, int64_t m, int64_t o)
{
    fl2_sums sums;
    fl2_combine_partials(part, m, &sums);
    put_output(s, o, &sums);
}

/* Runs work items [first, last) (item w: block w % nblocks of output w / nblocks). */
static int strided_items(const strided_call *c, int64_t first, int64_t last, fl2_partial *parts,
                         const sink *out, int want_sums)
{
    char *memory = NULL;
    for (int64_t w = first; w < last; w++) {
        fl2_partial part;
        const int64_t o = w / c->nblocks, b = w % c->nblocks;
        if (strided_block(c, o, b, &memory, want_sums ? (c->nblocks > 1 ? parts + w : &part) : NULL)) {
            free(memory);
            return -1;
        }
        if (want_sums && c->nblocks == 1) finish_output(out, &part, 1, o);
    }
    free(memory);
    return 0;
}

typedef struct {
    const strided_call *c;
    fl2_partial *parts;
    const sink *out;
    int want_sums;
} items_job;

static int items_task(void *ctx, int64_t first, int64_t last)
{
    const items_job *job = (const items_job *)ctx;
    return strided_items(job->c, first, last, job->parts, job->out, job->want_sums);
}

/* Runs that are contiguous columns of rows are summed a block of rows at a time, for up to
 * this many columns at once (their accumulators take 512 bytes per column). */
#define FL2_MAX_COLUMNS 1024

/* Whether the outputs are the contiguous columns of rows (2 dims: outputs, then rows): the
 * layout of a reduction along axis 0 of a C-ordered matrix.  Reading each output's run
 * (a column) by itself would read every row once per output. */
static int columns_apply(const strided_call *c, int64_t outputs)
{
    const fl2_layout *l = c->l;
    if (l->ndim != 2 || l->nkept != 1 || outputs < 2) return 0;
    for (int k = 0; k < FL2_OP_GRAD; k++) {
        if (!c->base[k]) continue;
        const int64_t item = (int64_t)c->item[k];
        const int64_t column_step = l->strides[k][0], row_step = l->strides[k][1];
        if (!(column_step == item || (k == FL2_OP_WEIGHTS && column_step == 0))) return 0;
        if (row_step % item) return 0;
    }
    return 1;
}

/* Rows blocks [first, last) through the columns kernel; partials of output o, block b at
 * parts[o * nblocks + b] (or straight into the sums when there is one block). */
static int columns_items(const strided_call *c, int64_t outputs, int64_t first, int64_t last,
                         fl2_partial *parts, const sink *out)
{
    const fl2_columns_fn columns = fl2_active_columns[fl2_kernel_index(c->p)];
    const fl2_layout *l = c->l;
    double *scratch = (double *)malloc((size_t)4 * FL2_LANES * outputs * sizeof(double));
    fl2_partial *block = (fl2_partial *)malloc((size_t)outputs * sizeof(fl2_partial));
    if (!scratch || !block) {
        free(scratch);
        free(block);
        return -1;
    }
    int64_t ld[FL2_NOPS] = {0};
    for (int k = 0; k < FL2_OP_GRAD; k++)
        if (c->base[k]) ld[k] = l->strides[k][1] / (int64_t)c->item[k];
    const int64_t w_step = c->base[FL2_OP_WEIGHTS] && l->strides[FL2_OP_WEIGHTS][0] ? 1 : 0;
    for (int64_t b = first; b < last; b++) {
        const int64_t start = b * FL2_BLOCK_SIZE;
        const int64_t rows = c->reduced - start < FL2_BLOCK_SIZE ? c->reduced - start : FL2_BLOCK_SIZE;
        fl2_problem q = *c->p;
        const void **inputs[3] = {&q.y_true, &q.y_pred, &q.weights};
        for (int k = 0; k < FL2_OP_GRAD; k++)
            if (c->base[k]) *inputs[k] = c->base[k] + start * l->strides[k][1];
        columns(&q, c->mode, rows, outputs, ld, w_step, scratch, block);
        for (int64_t o = 0; o < outputs; o++) {
            if (c->nblocks == 1)
                finish_output(out, block + o, 1, o);
            else
                parts[o * c->nblocks + b] = block[o];
        }
    }
    free(scratch);
    free(block);
    return 0;
}

typedef struct {
    const strided_call *c;
    int64_t outputs;
    fl2_partial *parts;
    const sink *out;
} columns_job;

static int columns_task(void *ctx, int64_t first, int64_t last)
{
    const columns_job *job = (const columns_job *)ctx;
    return columns_items(job->c, job->outputs, first, last, job->parts, job->out);
}

static int run_column_group(const strided_call *c, int64_t outputs, const sink *out,
                            int nthreads);

/* The columns in groups of FL2_MAX_COLUMNS, each group reading its part of every row. */
static int run_columns(const strided_call *c, int64_t outputs, const sink *out, int nthreads)
{
    for (int64_t first = 0; first < outputs; first += FL2_MAX_COLUMNS) {
        strided_call group = *c;
        for (int k = 0; k < FL2_OP_GRAD; k++)
            if (c->base[k]) group.base[k] = c->base[k] + first * c->l->strides[k][0];
        const int64_t count = outputs - first < FL2_MAX_COLUMNS ? outputs - first : FL2_MAX_COLUMNS;
        sink part = *out;
        part.offset += first;
        const int status = run_column_group(&group, count, &part, nthreads);
        if (status) return status;
    }
    return 0;
}

static int run_column_group(const strided_call *c, int64_t outputs, const sink *out,
                            int nthreads)
{
    fl2_partial *parts = NULL;
    if (c->nblocks > 1) {
        parts = (fl2_partial *)malloc((size_t)(outputs * c->nblocks) * sizeof(fl2_partial));
        if (!parts) return -1;
    }
    int status = 0;
    const int nt = fl2_threads_for(outputs * c->reduced, c->nblocks, nthreads);
    /* A task is a block of rows of every column of the group: claims of one task once the
     * group has 64 columns (a claim is then 2^19 elements or more: about a ms, the interrupt
     * check's granularity), of up to 64 blocks' worth of elements below. */
    int64_t grain = c->nblocks / (4 * (int64_t)nt);
    const int64_t cap = 64 / outputs;
    grain = grain > cap ? cap : grain;
    grain = grain < 1 ? 1 : grain;
    const columns_job job = {c, outputs, parts, out};
    status = fl2_parallel(c->nblocks, grain, nt, columns_task, (void *)&job);
    if (parts) {
        if (status == 0)
            for (int64_t o = 0; o < outputs; o++)
                finish_output(out, parts + o * c->nblocks, c->nblocks, o);
        free(parts);
    }
    return fl2_driver_status(status);
}

/* Whether each output's run is one contiguous row of at most a block (2 dims: outputs,
 * then the row): a reduction along the last axis of a C-ordered matrix.  Such rows are
 * summed FL2_ROWS_GROUP at a time, their lanes combined together. */
static int rows_apply(const strided_call *c)
{
    const fl2_layout *l = c->l;
    if (l->ndim != 2 || l->nkept != 1 || c->nblocks != 1) return 0;
    for (int k = 0; k < FL2_OP_GRAD; k++) {
        if (!c->base[k]) continue;
        const int64_t item = (int64_t)c->item[k];
        const int64_t row_step = l->strides[k][0], element_step = l->strides[k][1];
        if (!(element_step == item || (k == FL2_OP_WEIGHTS && element_step == 0))) return 0;
        if (row_step % item) return 0;
    }
    return 1;
}

/* Rows [first, last) through the rows kernel, their sums straight into the outputs. */
static void rows_items(const strided_call *c, int64_t first, int64_t last, const sink *out)
{
    enum { BATCH = 64 };
    const fl2_rows_fn rows = fl2_active_rows[fl2_kernel_index(c->p)];
    const fl2_layout *l = c->l;
    int64_t ld[FL2_NOPS] = {0};
    for (int k = 0; k < FL2_OP_GRAD; k++)
        if (c->base[k]) ld[k] = l->strides[k][0] / (int64_t)c->item[k];
    const int64_t w_step = c->base[FL2_OP_WEIGHTS] && l->strides[FL2_OP_WEIGHTS][1] ? 1 : 0;
    fl2_partial part[BATCH];
    for (int64_t r = first; r < last; r += BATCH) {
        const int64_t count = last - r < BATCH ? last - r : BATCH;
        fl2_problem q = *c->p;
        const void **inputs[3] = {&q.y_true, &q.y_pred, &q.weights};
        for (int k = 0; k < FL2_OP_GRAD; k++)
            if (c->base[k]) *inputs[k] = c->base[k] + r * l->strides[k][0];
        rows(&q, c->mode, count, c->reduced, ld, w_step, part);
        for (int64_t j = 0; j < count; j++) finish_output(out, part + j, 1, r + j);
    }
}

typedef struct {
    const strided_call *c;
    const sink *out;
} rows_job;

static int rows_task(void *ctx, int64_t first, int64_t last)
{
    const rows_job *job = (const rows_job *)ctx;
    rows_items(job->c, first, last, job->out);
    return 0;
}

static int run_rows(const strided_call *c, int64_t outputs, const sink *out, int nthreads)
{
    const int nt = fl2_threads_for(outputs * c->reduced, outputs, nthreads);
    /* At least 64 rows a claim, at most 64 blocks' worth of elements (rows are at most a
     * block long): claims of about a ms at most, the interrupt check's granularity. */
    int64_t grain = outputs / (8 * (int64_t)nt);
    const int64_t cap = 64 * (int64_t)FL2_BLOCK_SIZE / c->reduced;
    grain = grain > cap ? cap : grain;
    grain = grain < 64 ? 64 : grain;
    const rows_job job = {c, out};
    return fl2_driver_status(fl2_parallel(outputs, grain, nt, rows_task, (void *)&job));
}

int fl2_run_strided(const fl2_problem *p, const fl2_layout *l, const fl2_outputs *o,
                    double *loss_sums, double *weight_sums, double *loss_lo, double *weight_lo,
                    const fl2_values *values, int nthreads)
{
    fl2_pool_call_begins();
    const int grad = o && o->grad, elem = o && o->elementwise;
    strided_call c;
    if (l->ndim < 1 || l->ndim > FL2_MAX_DIMS || l->nkept < 0 || l->nkept >= l->ndim) return -1;
    if (elem)
        c.mode = grad ? FL2_MODE_ELEM_GRAD : FL2_MODE_ELEM;
    else if (loss_sums || values)
        c.mode = grad ? FL2_MODE_SUMS_GRAD : FL2_MODE_SUMS;
    else if (grad)
        c.mode = FL2_MODE_GRAD;
    else
        c.mode = FL2_MODE_WEIGHTS;
    const int want_sums = c.mode == FL2_MODE_SUMS || c.mode == FL2_MODE_SUMS_GRAD ||
                          c.mode == FL2_MODE_WEIGHTS;
    if (!want_sums) {
        loss_sums = weight_sums = loss_lo = weight_lo = NULL;
        values = NULL;
    }
    const sink out = {loss_sums, weight_sums, loss_lo, weight_lo, values, 0, p->weights != NULL};
    c.l = l;
    c.nr = l->ndim - l->nkept;
    int64_t outputs = 1;
    c.reduced = 1;
    for (int d = 0; d < l->ndim; d++) {
        if (d < l->nkept) outputs *= l->shape[d];
        else c.reduced *= l->shape[d];
    }
    c.compute = fl2_compute_dtype(p);
    c.dtype[FL2_OP_TRUE] = p->true_dtype;
    c.dtype[FL2_OP_PRED] = c.dtype[FL2_OP_GRAD] = p->pred_dtype;
    c.dtype[FL2_OP_WEIGHTS] = p->weights_dtype;
    c.dtype[FL2_OP_ELEM] = fl2_result_dtype(p); /* (elementwise losses) */
    for (int k = 0; k < FL2_NOPS; k++) {
        c.item[k] = fl2_item_size(c.dtype[k]);
        c.kernel_dtype[k] = k == FL2_OP_ELEM ? c.dtype[k] : c.compute;
    }
    c.base[FL2_OP_TRUE] = c.mode == FL2_MODE_WEIGHTS ? NULL : (const char *)p->y_true;
    c.base[FL2_OP_PRED] = c.mode == FL2_MODE_WEIGHTS ? NULL : (const char *)p->y_pred;
    c.base[FL2_OP_WEIGHTS] = (const char *)p->weights;
    c.base[FL2_OP_GRAD] = grad ? (const char *)o->grad : NULL;
    c.base[FL2_OP_ELEM] = elem ? (const char *)o->elementwise : NULL;
    /* The kernels are compiled for one dtype per result dtype, and for float16 operands
     * (kernels.h: all of them float16, read in place): operands of another dtype than their
     * kernel's (float32 ones of a float64 result; float16 ones beside others; bfloat16) are
     * read through the kernel of the compute dtype, converted exactly into its buffers block
     * by block (and a gradient of another dtype rounded once on its way back), never a
     * converted copy of the whole array.  The arithmetic
     * is the compute dtype's either way: the same bits.  A float32 gradient of a float64
     * kernel keeps its formula, (scale / divisor) * g: the float64 kernel's
     * (scale * g) / divisor with the quotient as scale and 1 as divisor. */
    fl2_problem converted = *p;
    fl2_outputs converted_outputs;
    c.convert = 0;
    for (int k = 0; k < FL2_OP_ELEM; k++)
        if (c.base[k] && c.dtype[k] != c.compute) c.convert = 1;
    converted.true_dtype = converted.pred_dtype = converted.weights_dtype = c.compute;
    if (o) {
        converted_outputs = *o;
        if (grad && p->pred_dtype == FL2_FLOAT32 && c.compute == FL2_FLOAT64) {
            converted_outputs.grad_scale = o->grad_scale / o->grad_divisor;
            converted_outputs.grad_divisor = 1.0;
            converted_outputs.grad_plain = 1; /* (block_run.h) */
        } else {
            converted_outputs.grad_plain = 0;
        }
        /* A float16 or bfloat16 gradient from a float32 or float64 kernel: its kernel told
         * (block_run.h). */
        converted_outputs.grad_half = grad && p->pred_dtype != c.compute && fl2_item_size(p->pred_dtype) == 2;
        o = &converted_outputs;
    }
    p = &converted;
    c.p = p;
    c.o = o;
    c.kernel = fl2_active_kernels[fl2_kernel_index(p)];
    if (c.mode == FL2_MODE_WEIGHTS && !p->weights) {
        for (int64_t i = 0; weight_sums && i < outputs; i++) weight_sums[i] = (double)c.reduced;
        for (int64_t i = 0; weight_lo && i < outputs; i++) weight_lo[i] = 0.0;
        return 0;
    }
    if (outputs == 0) return 0;
    if (c.reduced == 0) {
        const fl2_sums zero = {0.0, 0.0, 0.0, 0.0};
        for (int64_t i = 0; i < outputs; i++) put_output(&out, i, &zero);
        return 0;
    }
    c.nblocks = (c.reduced + FL2_BLOCK_SIZE - 1) / FL2_BLOCK_SIZE;
    /* The columns and rows kernels sum; they write no gradient. */
    const int sums_only = c.mode == FL2_MODE_SUMS || c.mode == FL2_MODE_WEIGHTS;
    if (sums_only && !c.convert && columns_apply(&c, outputs))
        return run_columns(&c, outputs, &out, nthreads);
    if (sums_only && !c.convert && rows_apply(&c))
        return run_rows(&c, outputs, &out, nthreads);
    const int64_t items = outputs * c.nblocks;
    fl2_partial *parts = NULL;
    if (want_sums && c.nblocks > 1) {
        parts = (fl2_partial *)malloc((size_t)items * sizeof(fl2_partial));
        if (!parts) return -1;
    }
    int status = 0;
    const int nt = fl2_threads_for(outputs * c.reduced, items, nthreads);
    /* Contiguous ranges of work items per claim, at most 64 (a claim is then at most 64
     * blocks: a few ms, the interrupt check's granularity); who computes an item never
     * changes it. */
    int64_t grain = items / (8 * (int64_t)nt);
    grain = grain < 1 ? 1 : grain > 64 ? 64 : grain;
    const items_job job = {&c, parts, &out, want_sums};
    status = fl2_parallel(items, grain, nt, items_task, (void *)&job);
    if (parts) {
        if (status == 0)
            for (int64_t i = 0; i < outputs; i++)
                finish_output(&out, parts + i * c.nblocks, c.nblocks, i);
        free(parts);
    }
    return fl2_driver_status(status);
}
