/*
 * fastl2 kernels: the whole C API, plain C11 and POSIX threads (OpenMP, when available, only
 * for the default thread count), no Python.h.
 *
 * Every call walks the n elements in fixed blocks of FL2_BLOCK_SIZE.  Inside a block,
 * element i is accumulated into float64 lane (i % FL2_LANES); lanes are combined in a
 * fixed order into a double-double block partial, and block partials are combined
 * pairwise in a fixed (bottom-up) tree.  Threads only decide who computes which block,
 * so results are bit-identical for every thread count.
 */
#ifndef FASTL2_H
#define FASTL2_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FL2_BLOCK_SIZE 8192 /* elements per deterministic reduction block */
#define FL2_LANES 16        /* interleaved float64 accumulators inside a block */

/* An operand's dtype.  The kernels compute with one dtype per call, float64 when any operand
 * is float64 and float32 otherwise; operands of another dtype are converted exactly into the
 * kernels' buffers block by block (csrc/convert.c), never as a copy of the whole array.
 * FL2_FLOAT16 is IEEE binary16, FL2_BFLOAT16 the top 16 bits of a binary32. */
typedef enum { FL2_FLOAT32 = 0, FL2_FLOAT64 = 1, FL2_FLOAT16 = 2, FL2_BFLOAT16 = 3 } fl2_dtype;
#include "losses.h" /* fl2_loss: FL2_SQUARED, FL2_ABSOLUTE, ... */

/* What is read.  d = y_pred - y_true, computed in float64. */
typedef struct {
    fl2_loss loss;
    double loss_param;          /* the loss's parameter (huber: delta); 0 when it has none */
    int64_t n;                  /* number of elements */
    const void *y_true;         /* NULL reads as zeros: the L2 penalty of y_pred */
    const void *y_pred;
    const void *weights;        /* NULL: every weight is 1 */
    fl2_dtype true_dtype, pred_dtype, weights_dtype;
    int64_t weights_repeat;     /* consecutive elements sharing one weight (>= 1) */
} fl2_problem;

/* What is written, besides the sums.  Any pointer may be NULL. */
typedef struct {
    void *grad;          /* grad_scale * w * l'(d) / (grad_divisor + grad_divisor_lo), dtype
                            pred_dtype; may alias y_pred.  float64 gradients: of the exact
                            difference, within an ulp (correctly rounded but near
                            midpoints: losses.h fl2_grad_exact); float32 ones multiply by
                            the float64 quotient grad_scale / grad_divisor instead (the
                            float32 rounding hides the difference); float16 and bfloat16
                            ones are the float64 gradient rounded once */
    double grad_scale;   /* the loss's (_losses.py: 2 for squared, 1 for absolute; 2 * lam for
                            the L2 penalty) */
    double grad_divisor; /* the reduction's D: n, the weight sum, or 1 */
    double grad_divisor_lo; /* D's rest (float64 gradients): the exact divisor is
                            grad_divisor + grad_divisor_lo (the weight sum's double-double;
                            0 where D is exact) */
    void *elementwise;   /* w * l(d), float64 if any input is float64, else float32 */
    int stream;          /* set by fl2_run: streaming stores for gradients past the caches */
    int grad_half;       /* set by fl2_run and fl2_run_strided (internal): a float32 or float64
                            gradient bound for a float16 or bfloat16 array (block_run.h) */
    int grad_plain;      /* set by fl2_run and fl2_run_strided (internal): a float64 gradient
                            bound for a float32 array, (grad_scale * g) / grad_divisor plainly
                            (the converted blocks: the float32 kernels' bits) */
} fl2_outputs;

typedef struct {
    double loss;         /* sum of w * l(d), rounded once from the double-double below */
    double weights;      /* sum of w over all n elements (n without weights), the same */
    double loss_lo;      /* the double-double's rest: the sum is loss + loss_lo (exactly), */
    double weights_lo;   /* |loss_lo| <= ulp(loss) / 2; 0 where loss is not finite */
} fl2_sums;

/* What a call returns when the thread pool's interrupt check stopped it (pool.h,
 * FL2_POOL_INTERRUPTED): *sums and the per-output sums are not written, and a gradient or
 * elementwise output holds some elements computed, the others as they were. */
#define FL2_INTERRUPTED (-2)

/* What a call returns in a fork()ed child when a signal handler that its interrupt check ran
 * called fork() (pool.h, FL2_POOL_FORKED): the helper threads that computed part of it do
 * not exist in the child, so the call stops there, with the outputs of FL2_INTERRUPTED. */
#define FL2_FORKED (-3)

/* One pass over the problem: fills *sums (if not NULL) and the outputs in o (if not NULL).
 * Returns 0, -1 if memory for the block partials could not be allocated, FL2_INTERRUPTED or
 * FL2_FORKED. */
int fl2_run(const fl2_problem *p, const fl2_outputs *o, fl2_sums *sums, int nthreads);

/* Sum of the weights over all n elements (each weight counted weights_repeat times),
 * bit-identical to fl2_run's sums->weights (and *weight_lo, where not NULL, to its
 * sums->weights_lo); reads the weights only. */
int fl2_weight_sum(const fl2_problem *p, double *weight_sum, double *weight_lo, int nthreads);

/* ---- N-d arrays in any layout ------------------------------------------------------------
 * The iteration runs over shape[0..ndim); its first nkept dims index the outputs in C order,
 * output o reducing the elements of the remaining dims (in C order of those).  Each operand
 * has its own byte strides (any sign, 0 for broadcast dims); the pointers of fl2_problem and
 * fl2_outputs point at element (0, ..., 0), and weights_repeat is not used.  Each output's
 * run is cut into blocks of FL2_BLOCK_SIZE consecutive elements that go through the same
 * kernels as fl2_run's (gathered into a per-thread buffer where they are not contiguous), and
 * each output's block partials are combined by the same tree: results do not depend on the
 * thread count, and a contiguous run gives fl2_run's bits. */
#define FL2_MAX_DIMS 64
enum { FL2_OP_TRUE = 0, FL2_OP_PRED, FL2_OP_WEIGHTS, FL2_OP_GRAD, FL2_OP_ELEM, FL2_NOPS };

typedef struct {
    int ndim;                                   /* 1 .. FL2_MAX_DIMS */
    int nkept;                                  /* 0 .. ndim - 1 */
    int64_t shape[FL2_MAX_DIMS];
    int64_t strides[FL2_NOPS][FL2_MAX_DIMS];    /* bytes, per operand (FL2_OP_*) */
} fl2_layout;

/* Each output's value instead of its loss sum: the sum divided by `divisor` (1 for a sum),
 * its square root with `root`, stored as float (`single`) or double at values[o].
 * uncertain[o] (unless `uncertain` is NULL) is set to 1 where the value is not certainly the
 * exact value rounded once and left alone elsewhere: a float by fl2_certain_f32 with `bound`
 * (the fl2_float32_bound of an output's element count), a double by fl2_finish_f64 (`count`:
 * an output's element count). */
typedef struct {
    void *values;
    int single;
    int root;
    double divisor;
    unsigned char *uncertain;
    double bound;
    int64_t count;
} fl2_values;

/* ---- correct rounding of float64 results ---------------------------------------------- */

/* The condition number sum(|w * l|) / |sum(w * l)| (and sum(|w|) / |sum(w)|) up to which a
 * weighted float64 result is certified: weights of one sign always are (their condition
 * number is 1); weights of mixed sign up to this one (docs/api.md, "Accuracy"). */
#define FL2_CONDITION 1024.0

/* How a float64 result is made from its sums (fl2_finish_f64). */
typedef struct {
    int64_t count;   /* the elements reduced into the sums */
    int weighted;    /* weights were given (of unknown signs: the margins allow FL2_CONDITION) */
    int by_weights;  /* divide by the weight sum ("weighted_mean"), else by `divisor` */
    double divisor;  /* an exact divisor: the count ("mean") or 1 ("sum") */
    int root;        /* the square root of the quotient */
    double scale;    /* a factor >= 0 of the quotient (the L2 penalty's lam), before the root; 1: none */
} fl2_finish;

/* The float64 result of sums s (their double-doubles): the quotient sum / divisor (or
 * sum / weight sum), times `scale`, rooted with `root`, formed in double-double, written to *value.  Returns
 * 1 when *value is certainly the exact value of the inputs rounded once (to nearest, ties to
 * even): every real within the sums' error bound (src/fastl2/_exact.py, float64_bound, and
 * what the quotient and the root add) rounds to it; non-finite values count as certain (inf
 * or nan inputs, or a sum past the float64 range).  Returns 0 otherwise (within about
 * 2**-80 of a rounding boundary; a value in the subnormals or within a few ulps of overflow, a
 * weight sum outside [2**-900, 2**900] (a loss sum outside [2**-500, 2**500] is scaled by a
 * power of two first, exactly); a zero sum, but for an unweighted mean), with *value the
 * quotient rounded plainly: the caller computes the exact result (fastl2._exact). */
int fl2_finish_f64(const fl2_sums *s, const fl2_finish *f, double *value);

/* The relative error of a float32 result's float64 value, reduced from `count` elements, when
 * every term w * l is >= 0: (2 m + 16) 2**-53 with m = min(count, FL2_BLOCK_SIZE), the longest
 * float64 chain (src/fastl2/_exact.py, float32_bound, derives it; about 2**-39 at the most). */
static inline double fl2_float32_bound(int64_t count)
{
    const int64_t m = count < 1 ? 1 : count < FL2_BLOCK_SIZE ? count : FL2_BLOCK_SIZE;
    return (2.0 * (double)m + 16.0) * (1.0 / 9007199254740992.0);
}

/* Whether every real within `bound` (relative) of x rounds to the same float (inf and nan:
 * yes); then (float)x is the exact value rounded once. */
static inline int fl2_certain_f32(double x, double bound)
{
    if (!(x - x == 0.0)) return 1;
    const double margin = (x < 0 ? -x : x) * bound;
    return (float)(x - margin) == (float)(x + margin);
}

/* What fl2_run does, over a layout: element losses and gradients are written at their
 * strides; loss_sums[o] and weight_sums[o] (either may be NULL) receive each output's sums,
 * rounded once from their double-doubles, loss_lo[o] and weight_lo[o] (either may be NULL)
 * the double-doubles' rests (fl2_sums), or, with `values`, values->values[o] the output's
 * value in place of its loss sum.
 * Without loss_sums, values, elementwise or grad, only the weight sums are computed.
 * Returns 0, -1 when memory for the buffers or block partials could not be allocated, or
 * FL2_INTERRUPTED or FL2_FORKED (then an output's sums or value may or may not be written). */
int fl2_run_strided(const fl2_problem *p, const fl2_layout *layout, const fl2_outputs *o,
                    double *loss_sums, double *weight_sums, double *loss_lo, double *weight_lo,
                    const fl2_values *values, int nthreads);

/* Chooses the best kernels for this CPU and makes a fork()ed child's thread pool start over;
 * call once before anything else. */
void fl2_init(void);

/* Threads: 0 means the default: OpenMP's (OMP_NUM_THREADS, threadpoolctl) when built with
 * OpenMP, else the CPUs online; 1 without POSIX threads (pool.h). */
void fl2_set_num_threads(int nthreads);
int fl2_get_num_threads(void);
int fl2_openmp_enabled(void);      /* 1 if built with OpenMP */
int fl2_in_forked_child(void);     /* 1 in a fork()ed child (its pool started over) */
int64_t fl2_parallel_threshold(void);        /* elements; below it a call stays serial */
void fl2_set_parallel_threshold(int64_t n);
int64_t fl2_stream_threshold(void);          /* gradient bytes; from it on, streaming stores */
void fl2_set_stream_threshold(int64_t bytes);

/* Instruction-set level of the kernels in use. */
const char *fl2_simd_level(void);
const char *fl2_simd_levels_available(void);   /* comma-separated, best last */
int fl2_set_simd_level(const char *name);      /* 0 ok, -1 unknown or unsupported here */
/* How the level in use rounds a bfloat16 gradient: "avx512_bf16" (the AVX-512 level on a CPU
 * with that extension) or "integer code"; the same bits either way. */
const char *fl2_bfloat16_rounding(void);
/* The level of the float32 1-d kernels in use: the level's own, but "avx2" at the AVX-512
 * level on a CPU that runs 512-bit operations in two halves (config.c); the same bits. */
const char *fl2_float32_run_level(void);
/* Which kernels the AVX-512 level runs for float32 1-d passes from the next
 * fl2_set_simd_level: -1 this CPU's choice (the default), 0 its own, 1 the AVX2 level's. */
void fl2_set_float32_runs(int choice);
/* What the "baseline" level's kernels are compiled for: "sse2" (x86-64), "neon" (arm64),
 * "scalar" (-DFL2_NO_VECTORS, or a compiler without vector extensions), or "vector
 * extensions" (GCC/clang's generic vectors on other targets). */
const char *fl2_baseline_isa(void);
const char *fl2_compiler(void);

/* The name of loss `code` (csrc/losses.h, lower case), or NULL for a code out of range. */
const char *fl2_loss_name(int code);

#ifdef __cplusplus
}
#endif
#endif /* FASTL2_H */
