"""The fixed summation trees the numba kernels share (csrc/internal.h, csrc/driver.h,
csrc/block_rows.h): the double-double addition, the compensated lane addition, the combine of
a block's lanes, of several blocks' lanes at once, and of the block partials.

Helpers of the kernels: compiled into each kernel (and cached with it), never called alone.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from .config import _GROUP_LANES, LANE_GROUP, LANES
from .memory import _fma, _stack_buffer


def _dd_add(a_hi, a_lo, b_hi, b_lo):
    """csrc/internal.h fl2_dd_add: error-free sum of two double-doubles, normalised."""
    s = a_hi + b_hi
    if not np.isfinite(s):
        return s, 0.0
    bb = s - a_hi
    e = (a_hi - (s - bb)) + (b_hi - bb)
    e += a_lo + b_lo
    hi = s + e
    return hi, e - (hi - s)


_dd_add = njit(_dd_add)


def _combine_lanes(hi, lo):
    """csrc/internal.h fl2_dd_combine over the LANES pairs (hi[k], lo[k]), in place."""
    step = 1
    while step < LANES:
        for i in range(0, LANES - step, 2 * step):
            hi[i], lo[i] = _dd_add(hi[i], lo[i], hi[i + step], lo[i + step])
        step *= 2
    return hi[0], lo[0]


_combine_lanes = njit(_combine_lanes)


def _rounded_dd(hi, lo):
    """(hi + lo, the rest): the double-double (hi, lo) as its rounded value r = hi + lo (what
    csrc/ returns) and the exact remainder hi + lo - r (TwoSum), so that (r, rest) is the same
    double-double, normalised.  A non-finite r has rest 0.0."""
    r = hi + lo
    if not r - r == 0.0:  # inf or nan
        return r, 0.0
    bb = r - hi
    return r, (hi - (r - bb)) + (lo - bb)


_rounded_dd = njit(inline="always")(_rounded_dd)


def _combine_partials(partials):
    """csrc/driver.h fl2_combine_partials: (loss sum, weight sum, loss lo, weight lo) of the
    block partials: each sum the rounded hi + lo of the combined double-double (the value
    csrc/ returns), each lo its exact rest (_rounded_dd)."""
    m = partials.shape[0]
    step = 1
    while step < m:
        for i in range(0, m - step, 2 * step):
            partials[i, 0], partials[i, 1] = _dd_add(
                partials[i, 0], partials[i, 1], partials[i + step, 0], partials[i + step, 1]
            )
            partials[i, 2], partials[i, 3] = _dd_add(
                partials[i, 2], partials[i, 3], partials[i + step, 2], partials[i + step, 3]
            )
        step *= 2
    loss, loss_lo = _rounded_dd(partials[0, 0], partials[0, 1])
    weights, weights_lo = _rounded_dd(partials[0, 2], partials[0, 3])
    return loss, weights, loss_lo, weights_lo


_combine_partials = njit(_combine_partials)


def _combine_lane_groups(lanes, h, group, out):
    """_combine_lanes of the lane pairs (lanes[h, :, j], lanes[h + 1, :, j]) of blocks j <
    group at once (lanes: (4, LANES, LANE_GROUP)), into out[h, j] (hi) and out[h + 1, j] (lo),
    as csrc/block_rows.h's rows kernel does: the same pairwise tree of fl2_dd_add, level by
    level over all the blocks (vectorised over j), without fl2_dd_add's finiteness test; a
    block whose result is not finite is combined again by the tested tree, so every result has
    _combine_lanes's bits.
    """
    hi = numba.carray(_stack_buffer(_GROUP_LANES, np.float64), (LANES, LANE_GROUP))
    lo = numba.carray(_stack_buffer(_GROUP_LANES, np.float64), (LANES, LANE_GROUP))
    for k in range(LANES):
        for j in range(LANE_GROUP):
            hi[k, j] = lanes[h, k, j]
            lo[k, j] = lanes[h + 1, k, j]
    m = LANES
    while m > 1:
        for i in range(m // 2):
            for j in range(LANE_GROUP):
                a = hi[2 * i, j]
                b = hi[2 * i + 1, j]
                s = a + b
                bb = s - a
                e = (a - (s - bb)) + (b - bb)
                e += lo[2 * i, j] + lo[2 * i + 1, j]
                t = s + e
                hi[i, j] = t
                lo[i, j] = e - (t - s)
        m //= 2
    sums = numba.carray(_stack_buffer(LANES, np.float64), LANES)
    errors = numba.carray(_stack_buffer(LANES, np.float64), LANES)
    for j in range(group):
        result_hi = hi[0, j]
        result_lo = lo[0, j]
        if not result_hi - result_hi == 0.0:  # inf or nan on the way: the tested tree
            for k in range(LANES):
                sums[k] = lanes[h, k, j]
                errors[k] = lanes[h + 1, k, j]
            result_hi, result_lo = _combine_lanes(sums, errors)
        out[h, j] = result_hi
        out[h + 1, j] = result_lo


_combine_lane_groups = njit(_combine_lane_groups)


def _two_sum(sums, errors, k, x):
    """sums[k] += x, compensated: the addition's rounding error goes to errors[k] (TwoSum, as
    csrc/block_template.h ACCUMULATE)."""
    t = sums[k] + x
    z = t - sums[k]
    errors[k] += (sums[k] - (t - z)) + (x - z)
    sums[k] = t


_two_sum = njit(inline="always")(_two_sum)


def _two_sum_e(sums, errors, k, x, xe):
    """_two_sum of a term x whose own rounding error xe goes to errors[k] with the addition's
    (csrc/block_template.h ACCUMULATE_E)."""
    t = sums[k] + x
    z = t - sums[k]
    errors[k] += ((sums[k] - (t - z)) + (x - z)) + xe
    sums[k] = t


_two_sum_e = njit(inline="always")(_two_sum_e)


def _two_sum_parts(sums, errors, k, x, y, a, b):
    """_two_sum of an unweighted float64 term given in parts (fastl2._losses value_parts:
    x * y + a * b; csrc/block_template.h ACCUMULATE_P): x * y rounded goes to sums[k], and
    fma(a, b, e + fma(x, y, -l)) to errors[k], e the addition's exact error."""
    l = x * y
    t = sums[k] + l
    z = t - sums[k]
    e = (sums[k] - (t - z)) + (l - z)
    errors[k] += _fma(a, b, e + _fma(x, y, -l))
    sums[k] = t


_two_sum_parts = njit(inline="always")(_two_sum_parts)


def _combine_outputs(all_partials, nblocks, outputs, loss_sums, weight_sums, loss_lo,
                     weight_lo, want_loss, want_weights):
    """csrc/strided.c finish_output of every output: the nblocks block partials of output o
    (all_partials[o * nblocks : (o + 1) * nblocks]) combined by _combine_partials, into
    loss_sums[o] and loss_lo[o] with ``want_loss`` and weight_sums[o] and weight_lo[o] with
    ``want_weights``."""
    for output in range(outputs):
        output_loss, output_weights, output_loss_lo, output_weights_lo = _combine_partials(
            all_partials[output * nblocks : (output + 1) * nblocks]
        )
        if want_loss:
            loss_sums[output] = output_loss
            loss_lo[output] = output_loss_lo
        if want_weights:
            weight_sums[output] = output_weights
            weight_lo[output] = output_weights_lo


_combine_outputs = njit(inline="always")(_combine_outputs)
