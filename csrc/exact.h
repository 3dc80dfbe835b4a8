/*
 * Exact sums of element losses: a long accumulator fed with exact integer products.
 *
 * fl2_exact_sums adds w * l(y_pred - y_true) over n elements without any rounding: the
 * difference d = y_pred - y_true is split into dh + dl exactly (Knuth's TwoSum), every term
 * of w * l(dh + dl) is a product of two or three float64 values (e.g. w * dh * dh,
 * 2 * w * dh * dl, w * dl * dl for the squared error), each product is formed exactly as an
 * integer from the factors' significands (at most 159 bits), and added, at its exponent, into
 * a fixed-point accumulator of 32-bit digits held in int64 bins that covers every exponent such
 * products and their sums can have (U. Kulisch, "Computer Arithmetic and Validity", 2nd ed., de
 * Gruyter 2013: the exact dot product; D. M. Priest's and Neal's "superaccumulators" are the
 * same idea).  Nothing under- or overflows: subnormals, values near the largest float64 and
 * far-apart exponents are exact.
 *
 * Used by src/fastl2/_exact.py (the slow path of correct rounding, and the exact state of
 * src/fastl2/_state.py); it returns the same exact values as that module's NumPy code.
 */
#ifndef FASTL2_EXACT_H
#define FASTL2_EXACT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The accumulator: bin k holds a multiple of 2**(FL2_EXACT_LOW + 32 k); after
 * fl2_exact_sums, bins 0 .. FL2_EXACT_BINS - 2 lie in [0, 2**32) and the last one holds the
 * sign (the value is sum(bin[k] * 2**(32 k)) * 2**FL2_EXACT_LOW).  Products of three float64
 * have exponents from -3223 (the smallest subnormal cubed, halved) up to 2**3076, and sums of
 * up to 2**63 of them below 2**3140: FL2_EXACT_LOW = -3264 and 208 bins (6656 bits) hold them. */
#define FL2_EXACT_LOW (-3264)
#define FL2_EXACT_BINS 208

/* Adds, into loss_bins (and weight_bins, the weights' sum, when weights is not NULL), the
 * exact sum of w * l(y_pred[i] - y_true[i]) over i < n, for loss `loss` (csrc/losses.h's
 * codes: 0 squared, 1 absolute, 2 Huber with delta `param` > 0); y_true NULL reads as zeros,
 * weights NULL as ones.  Both bin arrays (FL2_EXACT_BINS int64 each) must start as zeros or
 * as the output of an earlier call.  An element whose difference overflows, or with an
 * operand that is not finite, is not added: bad[i] is set to 1 for it (left alone elsewhere)
 * and the count of such elements is returned. */
int64_t fl2_exact_sums(int loss, double param, int64_t n, const double *y_true, const double *y_pred,
                       const double *weights, int64_t *loss_bins, int64_t *weight_bins, unsigned char *bad);

#ifdef __cplusplus
}
#endif
#endif /* FASTL2_EXACT_H */
