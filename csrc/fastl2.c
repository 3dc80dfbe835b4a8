/*
 * The driver: picks the kernels for this CPU, splits the work into fixed blocks, runs them
 * serially or on OpenMP threads, and combines the block partials in a fixed order.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(_OPENMP) && (defined(__unix__) || defined(__APPLE__))
#include <pthread.h>
#define FL2_HAVE_ATFORK 1
#endif

/* Below this many elements a call never enters the thread pool: measured with
 * bench/tune_thresholds.py (2 cores, AVX-512: threads lose 10-15% at 32768 elements and win
 * 35-45% at 65536, float32 and float64, loss and gradient). */
#ifndef FL2_DEFAULT_PARALLEL_THRESHOLD
#define FL2_DEFAULT_PARALLEL_THRESHOLD (8 * FL2_BLOCK_SIZE)
#endif

/* Gradients from this size on are written with streaming stores: past the caches, reading
 * each line in before overwriting it only costs bandwidth.  Measured with
 * bench/tune_thresholds.py (32 MiB L3): 1.15x slower at 8 MiB, 0.95x at 16 MiB, 0.8x from
 * 32 MiB on. */
#ifndef FL2_DEFAULT_STREAM_MIN_BYTES
#define FL2_DEFAULT_STREAM_MIN_BYTES ((int64_t)16 << 20)
#endif

/* The fewest blocks a thread takes at a time. */
#define FL2_BLOCKS_PER_TASK 4

/* Block partials of calls up to this many blocks live on the stack. */
#define FL2_STACK_BLOCKS 64

static const fl2_block_fn *active_kernels = fl2_kernels_baseline;
static const char *active_level = "baseline";
static int requested_threads = 0; /* 0: OpenMP's default */
static volatile int forked_child = 0;
static int64_t parallel_threshold = FL2_DEFAULT_PARALLEL_THRESHOLD;
static int64_t stream_min_bytes = FL2_DEFAULT_STREAM_MIN_BYTES;

/* ---- instruction-set levels -------------------------------------------------------- */

typedef struct {
    const char *name;
    const fl2_block_fn *kernels;
    int (*supported)(void);
} fl2_level;

static int always(void) { return 1; }

#if defined(FL2_HAVE_X86_DISPATCH)
static int has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static int has_avx512(void)
{
    __builtin_cpu_init();
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
}
#endif

/* Worst first. */
static const fl2_level levels[] = {
    {"baseline", fl2_kernels_baseline, always},
#if defined(FL2_HAVE_X86_DISPATCH)
    {"avx2", fl2_kernels_avx2, has_avx2},
    {"avx512", fl2_kernels_avx512, has_avx512},
#endif
};
#define FL2_NLEVELS ((int)(sizeof(levels) / sizeof(levels[0])))

const char *fl2_simd_level(void) { return active_level; }

const char *fl2_simd_levels_available(void)
{
    static char names[64];
    names[0] = '\0';
    for (int i = 0; i < FL2_NLEVELS; i++) {
        if (!levels[i].supported()) continue;
        if (names[0]) strcat(names, ",");
        strcat(names, levels[i].name);
    }
    return names;
}

int fl2_set_simd_level(const char *name)
{
    for (int i = 0; i < FL2_NLEVELS; i++) {
        if (strcmp(levels[i].name, name) == 0 && levels[i].supported()) {
            active_kernels = levels[i].kernels;
            active_level = levels[i].name;
            return 0;
        }
    }
    return -1;
}

const char *fl2_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#elif defined(_MSC_VER)
    return "msvc";
#else
    return "unknown";
#endif
}

/* ---- threads ------------------------------------------------------------------------ */

#ifdef FL2_HAVE_ATFORK
/* GNU libgomp's pool does not survive fork(): a child entering a parallel region after the
 * parent used one waits forever for threads that no longer exist.  The child stays serial. */
static void after_fork_in_child(void) { forked_child = 1; }
#endif

void fl2_init(void)
{
    static int done = 0;
    if (done) return;
    done = 1;
    for (int i = FL2_NLEVELS - 1; i >= 0; i--) {
        if (levels[i].supported()) {
            active_kernels = levels[i].kernels;
            active_level = levels[i].name;
            break;
        }
    }
#ifdef FL2_HAVE_ATFORK
    pthread_atfork(NULL, NULL, after_fork_in_child);
#endif
}

int fl2_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fl2_in_forked_child(void) { return forked_child; }

void fl2_set_num_threads(int nthreads) { requested_threads = nthreads > 0 ? nthreads : 0; }

int fl2_get_num_threads(void)
{
    if (requested_threads > 0) return requested_threads;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int64_t fl2_parallel_threshold(void) { return parallel_threshold; }

void fl2_set_parallel_threshold(int64_t n) { parallel_threshold = n > 0 ? n : 0; }

int64_t fl2_stream_threshold(void) { return stream_min_bytes; }

void fl2_set_stream_threshold(int64_t bytes) { stream_min_bytes = bytes > 0 ? bytes : 0; }

static int threads_for(int64_t n, int64_t nblocks, int nthreads)
{
#ifdef _OPENMP
    if (forked_child || n < parallel_threshold) return 1;
    if (nthreads <= 0) nthreads = fl2_get_num_threads();
    return nblocks < nthreads ? (int)nblocks : nthreads;
#else
    (void)n; (void)nblocks; (void)nthreads;
    return 1;
#endif
}

/* ---- one pass ----------------------------------------------------------------------- */

static int kernel_index(const fl2_problem *p)
{
    int pred = p->pred_dtype == FL2_FLOAT64;
    if (!p->y_true) return 12 + pred;
    int weights = p->weights ? 1 + (p->weights_dtype == FL2_FLOAT64) : 0;
    return ((p->true_dtype == FL2_FLOAT64) * 2 + pred) * 3 + weights;
}

static void combine_partials(fl2_partial *part, int64_t m, fl2_sums *sums)
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
    const fl2_block_fn kernel = active_kernels[kernel_index(p)];

    fl2_partial stack_part[FL2_STACK_BLOCKS], *part = NULL;
    if (want_sums) {
        part = nblocks <= FL2_STACK_BLOCKS ? stack_part
                                            : (fl2_partial *)malloc(nblocks * sizeof(fl2_partial));
        if (!part) return -1;
    }

    const int nt = threads_for(n, nblocks, nthreads);
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
        combine_partials(part, nblocks, sums);
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
        outputs.stream = grad && (int64_t)(p->n * item) >= stream_min_bytes;
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
