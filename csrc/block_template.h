/*
 * The block kernels of one dtype combination, instantiated once per combination (see kernels.h),
 * one kind per translation unit (FL2_KERNEL_PART):
 *   BLOCK_FN          (block_run.h)      the runs of one output: the 1-d pass, the strided walk
 *   BLOCK_FN_columns  (block_columns.h)  many outputs whose runs are columns
 *   BLOCK_FN_rows     (block_rows.h)     many outputs whose runs are short rows
 * with the shared macros and the lane combine (BLOCK_FN_lanes) here.  kernels.h names them
 * <table>_<true>_<pred>[_w<weights>], e.g. fl2_kernels_avx2_f_f_wd_columns.
 * The includer defines:
 *   BLOCK_FN      name of the function to define
 *   T_PRED        element type of y_pred
 *   T_TRUE        element type of y_true (left undefined: y_true reads as zeros)
 *   T_WEIGHTS     element type of the weights (left undefined: unweighted)
 *   COMPENSATED   1 when any input is float64: a float64 result needs compensated
 *                 lanes to stay within an ulp or two; a float32 result needs no more than
 *                 plain float64 lanes.
 */

#define LANES FL2_LANES

#ifdef T_TRUE
#define HAS_TRUE 1
#else
#define HAS_TRUE 0
#endif
#ifdef T_WEIGHTS
#define HAS_WEIGHTS 1
#else
#define HAS_WEIGHTS 0
#endif

#if !defined(COMPENSATED)
#error "define COMPENSATED: 1 when any input is float64 (a float64 result)"
#endif

#define BODY_FN FL2_CAT(BLOCK_FN, _body)
/* The gradient element of x = w * l'(d) but a float64 gradient's (losses.h fl2_grad_exact,
 * block_run.h exact_grad): a float64 one bound for float32 (grad_plain) divides; a float32 one
 * multiplies by the quotient; a float16 or bfloat16 one (and a float32 or float64 one bound for
 * a half: `half_bound`, block_run.h) multiplies by the quotient in two parts where it is not
 * exact (internal.h), and is rounded once, by the store. */
#define GRAD_VALUE(x) (tail ? fl2_mul_tail((x), tail_q, tail_lo)                               \
                       : sizeof(T_PRED) == sizeof(double) && !half_bound ? (scale * (x)) / divisor \
                                                                         : quotient * (x))
#define FL2_STREAM_STORE(dst, src, count) \
    (sizeof(T_PRED) == sizeof(float) ? fl2_stream_store_f32((float *)(void *)(dst), (const float *)(const void *)(src), count) \
                                     : fl2_stream_store_f64((double *)(void *)(dst), (const double *)(const void *)(src), count))

/* Adds x to lane k.  Compensated lanes keep the plain running sum and, beside it, the sum of
 * the exact rounding errors of its additions (TwoSum, Ogita-Rump-Oishi "Sum2"): neither
 * depends on the other's last value, so the loop-carried chains stay one addition long.
 * The plain sum alone carries inf and nan, as IEEE addition would. */
#define ACCUMULATE(sum, err, k, x)                             \
    do {                                                       \
        if (COMPENSATED) {                                     \
            double t_ = sum[k] + (x);                          \
            double z_ = t_ - sum[k];                           \
            err[k] += (sum[k] - (t_ - z_)) + ((x) - z_);       \
            sum[k] = t_;                                       \
        } else {                                               \
            sum[k] += (x);                                     \
        }                                                      \
    } while (0)

/* ACCUMULATE for a whole vector of lanes. */
#define VACCUMULATE(sum, err, x)                               \
    do {                                                       \
        if (COMPENSATED) {                                     \
            fl2_vd t_ = sum + (x);                             \
            fl2_vd z_ = t_ - sum;                              \
            err += (sum - (t_ - z_)) + ((x) - z_);             \
            sum = t_;                                          \
        } else {                                               \
            sum += (x);                                        \
        }                                                      \
    } while (0)

/* ACCUMULATE and VACCUMULATE of a float64 kernel's term x whose own rounding error xe is known
 * (losses.h, "exact element terms"): the lane's error sum takes both, so that the lanes hold
 * the exact terms' sum to about (m u)**2 of it (src/fastl2/_exact.py, float64_bound). */
#define ACCUMULATE_E(sum, err, k, x, xe)                       \
    do {                                                       \
        double t_ = sum[k] + (x);                              \
        double z_ = t_ - sum[k];                               \
        err[k] += ((sum[k] - (t_ - z_)) + ((x) - z_)) + (xe);  \
        sum[k] = t_;                                           \
    } while (0)
#define VACCUMULATE_E(sum, err, x, xe)                         \
    do {                                                       \
        fl2_vd t_ = sum + (x);                                 \
        fl2_vd z_ = FL2_VSUB_M(t_, sum);                       \
        err += FL2_VADD_M((sum - (t_ - z_)) + FL2_VSUB_M((x), z_), (xe)); \
        sum = t_;                                              \
    } while (0)
/* VACCUMULATE_E of a term x >= 0 into a sum >= 0 (no weights): Dekker's Fast2Sum of the
 * larger and the smaller, exact as TwoSum is (its error: the same real, so the same bits),
 * one operation less; the sum itself is still sum + x. */
#define VACCUMULATE_E_POS(sum, err, x, xe)                     \
    do {                                                       \
        fl2_vd t_ = sum + (x);                                 \
        fl2_vd small_ = fl2_vmin(sum, (x));                    \
        err += FL2_VADD_M(small_ - FL2_VSUB_M(t_, fl2_vmax(sum, (x))), (xe)); \
        sum = t_;                                              \
    } while (0)

/* ACCUMULATE_E of an unweighted float64 term given in parts (losses.h, fl2_loss_parts): the
 * term is X*Y + A*B, l = X*Y rounded goes to the lane's sum, and its error takes
 * fma(A, B, e + fma(X, Y, -l)), e the addition's exact error (TwoSum's).  Every sum and
 * error lane of the unweighted float64 kernels is this sequence of roundings, in every
 * form below (and in the numba and NumPy backends). */
#define ACCUMULATE_P(sum, err, k, X, Y, A, B)                                          \
    do {                                                                               \
        const double pl_ = (X) * (Y), pt_ = sum[k] + pl_, pz_ = pt_ - sum[k];               \
        const double pe_ = (sum[k] - (pt_ - pz_)) + (pl_ - pz_);                            \
        err[k] += fl2_fma((A), (B), pe_ + fl2_fma((X), (Y), -pl_));                      \
        sum[k] = pt_;                                                                   \
    } while (0)
/* ACCUMULATE_P for a whole vector of lanes (sums and terms >= 0: the error by Dekker's
 * Fast2Sum of the larger and the smaller, exact as TwoSum's is). */
#define VACCUMULATE_P(sum, err, X, Y, A, B)                                            \
    do {                                                                               \
        const fl2_vd pl_ = (X) * (Y), pt_ = sum + pl_;                                    \
        const fl2_vd pe_ = fl2_vmin(sum, pl_) - (pt_ - fl2_vmax(sum, pl_));                \
        err += fl2_vfma((A), (B), pe_ + fl2_vfma((X), (Y), -pl_));                       \
        sum = pt_;                                                                      \
    } while (0)
/* VACCUMULATE_P where each lane's sum is at least its term or 0: Fast2Sum with the sum as
 * the larger, t - sum exact, so that fma(X, Y, -(t - sum)) is e + fma(X, Y, -l) rounded
 * once: the same bits, three operations fewer.  Used only where that is checked
 * (block_run.h, the checked stretches). */
#define VACCUMULATE_P_FAST(sum, err, X, Y, A, B)                                       \
    do {                                                                               \
        const fl2_vd pt_ = sum + (X) * (Y);                                             \
        err += fl2_vfma((A), (B), fl2_vfma((X), (Y), -(pt_ - sum)));                    \
        sum = pt_;                                                                      \
    } while (0)

/* VACCUMULATE in the lanes of `keep` only; the other lanes keep their sums and errors. */
#define VACCUMULATE_KEPT(sum, err, x, keep)                    \
    do {                                                       \
        fl2_vd s_ = sum, e_ = err;                             \
        VACCUMULATE(s_, e_, x);                                \
        sum = fl2_vselect(keep, s_, sum);                      \
        err = fl2_vselect(keep, e_, err);                      \
    } while (0)

/* The lanes' double-double sum by fl2_dd_combine's tree, without its checks for inf and nan
 * (branches that keep the compiler from vectorising the levels); a sum that comes out
 * non-finite is redone with them, which gives the same bits as fl2_dd_combine always. */
FL2_INLINE fl2_dd FL2_CAT(BLOCK_FN, _lanes)(const double *sum, const double *err)
{
    double hi[LANES], lo[LANES];
    for (int k = 0; k < LANES; k++) {
        hi[k] = sum[k];
        lo[k] = COMPENSATED ? err[k] : 0.0;
    }
    FL2_UNROLL
    for (int m = LANES; m > 1; m /= 2) {
        FL2_UNROLL
        for (int i = 0; i < m / 2; i++) {
            const double a = hi[2 * i], b = hi[2 * i + 1];
            const double s = a + b;
            const double bb = s - a;
            double e = (a - (s - bb)) + (b - bb);
            e += lo[2 * i] + lo[2 * i + 1];
            const double h = s + e;
            hi[i] = h;
            lo[i] = e - (h - s);
        }
    }
    fl2_dd r = {hi[0], lo[0]};
    if (!(r.hi - r.hi == 0.0)) {
        fl2_dd lane[LANES];
        for (int k = 0; k < LANES; k++) {
            lane[k].hi = sum[k];
            lane[k].lo = COMPENSATED ? err[k] : 0.0;
        }
        r = fl2_dd_combine(lane, LANES);
    }
    return r;
}

/* One kind per translation unit (FL2_KERNEL_PART, see kernels.h). */
#if FL2_KERNEL_PART == FL2_PART_RUN
#include "block_run.h"     /* BLOCK_FN: the runs of one output (1-d and strided) */
#elif FL2_KERNEL_PART == FL2_PART_COLUMNS
#include "block_columns.h" /* BLOCK_FN_columns: many outputs whose runs are columns */
#elif FL2_KERNEL_PART == FL2_PART_ROWS
#include "block_run.h"     /* (its BODY_FN only) */
#include "block_rows.h"    /* BLOCK_FN_rows: many outputs whose runs are short rows */
#else
#error "FL2_KERNEL_PART: FL2_PART_RUN, FL2_PART_COLUMNS or FL2_PART_ROWS"
#endif

#undef LANES
#undef HAS_TRUE
#undef HAS_WEIGHTS
#undef COMPENSATED
#undef BODY_FN
#undef GRAD_VALUE
#undef FL2_STREAM_STORE
#undef ACCUMULATE
#undef VACCUMULATE
#undef VACCUMULATE_KEPT
#undef ACCUMULATE_E
#undef VACCUMULATE_E
#undef VACCUMULATE_E_POS
#undef ACCUMULATE_P
#undef VACCUMULATE_P
#undef VACCUMULATE_P_FAST
#undef BLOCK_FN
#undef T_PRED
#ifdef T_TRUE
#undef T_TRUE
#endif
#ifdef T_WEIGHTS
#undef T_WEIGHTS
#endif
