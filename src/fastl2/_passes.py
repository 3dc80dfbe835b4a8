"""The planned passes, and where results are finished.

A call the fast paths do not answer is planned (fastl2._plan), run by the active backend in
one pass (``run`` for flat arrays, ``run_strided`` for any other layout or an axis), and its
result finished here: divided by the reduction's divisor, rooted, rounded to the result dtype,
warned about (an empty mean) and reshaped, in one place for every loss and backend.  NumPy's
floating-point warnings are off throughout (``quiet``): NaN and inf propagate silently, as in
the compiled kernels.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
import os
import sys
import warnings

import numpy as np

from . import _backends, _exact
from ._losses import LOSSES
from ._exact import _fraction as _exact_fraction
from ._plan import MEAN_REDUCTIONS, Plan, check_axis, check_out, check_reduction, loss_plan, strided_pass


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_empty_mean() -> None:
    """NumPy's ``RuntimeWarning: Mean of empty slice``, attributed to the first frame outside
    fastl2 (the user's call, however many of fastl2's functions lie between)."""
    frame, level = sys._getframe(1), 2  # (level 1: this function)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=level)


def quiet(function):
    """Runs ``function`` with NumPy's floating-point warnings off: NaN and inf propagate
    silently, as in the compiled kernels, whichever backend or path computes."""

    @functools.wraps(function)
    def quiet(*args, **kwargs):
        with np.errstate(all="ignore"):
            return function(*args, **kwargs)

    return quiet

@quiet
def planned_loss(loss, y_true, y_pred, weights, axis, reduction, root, param, divide_by=1.0):
    """The loss call on the general road. ``divide_by`` (internal: fastl2.torch's smooth_l1_loss,
    Huber's loss divided by its delta; a float in [2**-64, 2**64]) divides a reduced result
    (axis None), exactly before its one rounding: the float64 value is divided by the divisor,
    then by ``divide_by`` (one rounding more, within the certificate's bound), the exact value
    by ``divide_by`` itself."""
    check_reduction(reduction)
    param = loss.check_param(param)
    plan = loss_plan(loss, y_true, y_pred, weights, reduction, param)
    axes = check_axis(axis, len(plan.shape), reduction)
    backend = _backends.active()
    if reduction == "none":
        if plan.flat:
            losses = np.empty(plan.n, plan.result_dtype)
            backend.run(plan, False, elementwise=losses)
            return losses.reshape(plan.shape)
        losses = np.empty_like(plan.arrays[1], dtype=plan.result_dtype)  # y_pred's layout
        if plan.n:
            backend.run_strided(strided_pass(plan, elementwise=losses), False)
        return losses
    if axes is not None and len(axes) < len(plan.shape):
        return _reduce_axes(plan, axes, backend, root)
    if plan.flat:
        sums = backend.run(plan, True)
    elif plan.n:
        sums = first_sums(backend.run_strided(strided_pass(plan), True))
    else:
        sums = (0.0, 0.0, 0.0, 0.0)
    value = _reduce(plan, sums, root, divide_by=divide_by)
    # Reducing every axis by naming them gives a 0-d array (docs/api.md: only axis=None gives a scalar).
    return value if axes is None else np.asarray(value)


def first_sums(sums) -> tuple[float, float, float, float]:
    """The first output's sums of a backend's ``run_strided``: (loss, weights, loss's rest,
    weights' rest), as ``run`` gives them."""
    return tuple(float(a[0]) for a in sums)


def _reduce_axes(plan: Plan, axes: tuple[int, ...], backend, root: bool):
    """The loss reduced along ``axes`` only: one value per remaining index, in an ndarray."""
    out_shape = tuple(size for a, size in enumerate(plan.shape) if a not in axes)
    count = math.prod(plan.shape[a] for a in axes)
    outputs = math.prod(out_shape)
    reduce_outputs = getattr(backend, "reduce_outputs", None)
    if plan.n and plan.reduction != "weighted_mean" and reduce_outputs is not None:
        # The backend divides each output's sum as it finishes it, in the result's dtype,
        # and says which values are not certainly the exact value rounded (rare).
        values = np.empty(outputs, plan.result_dtype)
        divisor = float(count) if plan.reduction == "mean" else 1.0
        uncertain = reduce_outputs(strided_pass(plan, axes), values, divisor, root)
        if uncertain.size:
            _exact_outputs(plan, axes, values, uncertain, root)
        return values.reshape(out_shape)
    if plan.n:
        loss_sums, weight_sums, loss_lo, weight_lo = backend.run_strided(strided_pass(plan, axes), True)
    else:
        loss_sums, weight_sums, loss_lo, weight_lo = (np.zeros(outputs) for _ in range(4))
    if plan.result_dtype == np.float64 and not (plan.reduction != "sum" and count == 0):
        cancelled = (_check_weight_sums(plan, axes, weight_sums, out_shape)
                     if plan.reduction == "weighted_mean" else _NONE)
        with np.errstate(divide="ignore", invalid="ignore"):
            values, certain = _exact.finish_float64(
                loss_sums, weight_sums, loss_lo, weight_lo, count, plan.arrays[2] is not None,
                plan.reduction == "weighted_mean", float(count) if plan.reduction == "mean" else 1.0, root)
        certain[cancelled] = False
        uncertain = np.flatnonzero(~certain)
        if uncertain.size:
            _exact_outputs(plan, axes, values, uncertain, root)
        return values.reshape(out_shape)
    values = loss_sums  # divided in place: no temporary beyond the sums and the result
    cancelled = _NONE
    if plan.reduction != "sum" and count == 0:
        warn_empty_mean()
        values[...] = np.nan
    elif plan.reduction == "mean":
        values /= count
    elif plan.reduction == "weighted_mean":
        cancelled = _check_weight_sums(plan, axes, weight_sums, out_shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            values /= weight_sums
        values += 0.0  # (an exact 0 over a negative weight sum: +0.0, not -0.0)
    if root:
        with np.errstate(invalid="ignore"):
            np.sqrt(values, out=values)
    if plan.result_dtype == np.float64:  # (a mean over no elements: nan, in the result's dtype)
        return values.reshape(out_shape)
    return _round_outputs(plan, axes, values, root, cancelled).reshape(out_shape)


_NONE = np.zeros(0, np.intp)  # (no outputs: an index array, where () would index them all)


def _check_weight_sums(plan: Plan, axes: tuple[int, ...], weight_sums: np.ndarray,
                       out_shape: tuple[int, ...]) -> np.ndarray:
    """The error of a "weighted_mean" along axes whose weights sum to 0 at some output; the
    outputs whose kernels' weight sum is 0 where the exact one is not (weights that cancel
    beyond the double-double: a condition number past 2**100), for the exact path."""
    zero = np.flatnonzero(weight_sums == 0)
    kept = [a for a in range(len(plan.shape)) if a not in axes]
    for o in zero:
        at = np.unravel_index(int(o), out_shape)
        index = [slice(None)] * len(plan.shape)
        for a, i in zip(kept, at):
            index[a] = int(i)
        if plan.arrays[2] is None or _exact.exact_weight_sum(plan.arrays[2][tuple(index)]) == 0.0:
            raise ValueError(
                "reduction='weighted_mean' needs weights with a non-zero sum along the reduced "
                f"axes; the weights sum to 0 at output index {tuple(int(i) for i in at)}"
            )
    return zero


def _round_outputs(plan: Plan, axes: tuple[int, ...], values: np.ndarray, root: bool,
                   cancelled=None) -> np.ndarray:
    """The float64 values of a float32 result's outputs (C order of the kept axes) in float32,
    correctly rounded: a value the certificate cannot decide (fastl2._exact), and the
    ``cancelled`` outputs (_check_weight_sums), is computed exactly from its output's
    elements."""
    result = values.astype(np.float32)
    count = math.prod(plan.shape[a] for a in axes)
    certain = _exact.certain_many(values, count)
    if cancelled is not None:
        certain[cancelled] = False
    uncertain = np.flatnonzero(~certain)
    if uncertain.size:
        _exact_outputs(plan, axes, result, uncertain, root)
    return result


def _exact_outputs(plan: Plan, axes: tuple[int, ...], result: np.ndarray, outputs, root: bool) -> None:
    """result[o] = the exact value of output o (flat, C order of the kept axes), rounded once
    (left as it is where there is none: an exact weight sum of 0).  Outputs of integer-valued
    data (of bounded granularity) are summed exactly in int64 in groups (``_exact.dyadic_sums``:
    quantized data often sit exactly on a tie); the others one by one."""
    kept = tuple(a for a in range(len(plan.shape)) if a not in axes)
    out_shape = tuple(plan.shape[a] for a in kept)
    count = math.prod(plan.shape[a] for a in axes)
    moved = [None if a is None else a.transpose(kept + tuple(axes)) for a in plan.arrays]
    outputs = np.asarray(outputs, dtype=np.intp).ravel()
    code, reduction = plan.loss.code, plan.reduction

    dtype = result.dtype  # (float32 or float64)

    def put(flat, loss, weight):
        value = _exact.reduce_exact(loss, weight, count, reduction, root, dtype)
        if value is not None:
            result[flat] = value

    group = max(1, _exact.GROUP // max(count, 1)) if count <= _exact.GROUP else 0
    if any(a is not None and a.dtype.kind in "iu" and _exact._wide(a).any() for a in plan.arrays):
        group = 0  # (integers past 2**53: the groups' float64 copies would round them)
    for start in range(0, outputs.size, group or outputs.size):
        chosen = outputs[start:start + group] if group else outputs
        index = np.unravel_index(chosen, out_shape) if out_shape else ()
        if group:  # (a group of whole outputs, copied: at most GROUP elements)
            rows = [None if a is None else np.asarray(a[index], np.float64).reshape(chosen.size, count)
                    for a in moved]
            # Outputs whose differences are all 0 (y_pred equal to y_true there, or no params)
            # are 0, exactly (a weighted mean: where its weights are >= 0, not all 0)
            zero = (~np.any(rows[1], axis=1) if rows[0] is None else np.all(rows[0] == rows[1], axis=1))
            if reduction == "weighted_mean" and rows[2] is not None:
                zero &= np.all(rows[2] >= 0, axis=1) & np.any(rows[2] > 0, axis=1)
            if zero.any():
                result[chosen[zero]] = 0.0
                chosen = chosen[~zero]
                rows = [None if a is None else a[~zero] for a in rows]
                if not chosen.size:
                    continue
                index = np.unravel_index(chosen, out_shape) if out_shape else ()
            sums = _exact.dyadic_sums(code, *rows, axis=1)
            if sums is not None:
                loss_sums, loss_exponent, weight_sums, weight_exponent = sums
                if not root and (reduction != "weighted_mean" or weight_sums is not None):
                    # exact integer sums: their float64 values and one division (3 roundings
                    # of float64 at most), then the certificate at that bound; the rare
                    # undecided ones in Fractions
                    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                        numerators = np.ldexp(loss_sums.astype(np.float64), loss_exponent)
                        if reduction == "weighted_mean":
                            divisors = np.ldexp(weight_sums.astype(np.float64), weight_exponent)
                        else:
                            divisors = float(count if reduction == "mean" else 1)
                        quotients = numerators / divisors
                    quotients[loss_sums == 0] = 0.0  # (an exact 0 is +0.0, as reduce_exact rounds it: not 0 / -W)
                    decided = (_exact.certain_many(quotients, count, bound=2.0 ** -51) if dtype == np.float32
                               else np.zeros(chosen.size, bool))
                    # ... or exact: a quotient whose product with the divisor is the
                    # numerator exactly (TwoProduct, numerator and divisor exact in float64)
                    # is the exact value, rounded once by the cast (the ties of such data)
                    # (the sums exact in float64: below 2**53, and not rounded into the
                    # subnormals by their exponent; a quotient that is normal, or 0)
                    exact_parts = (np.abs(loss_sums) < 2 ** 53) & (np.ldexp(numerators, -loss_exponent) == loss_sums)
                    exact_parts &= (np.abs(quotients) >= 2.0 ** -1022) | (loss_sums == 0)
                    if reduction == "weighted_mean":
                        exact_parts &= (np.abs(weight_sums) < 2 ** 53) & (
                            np.ldexp(divisors, -weight_exponent) == weight_sums)
                    product, error = _exact._two_product(quotients, divisors)
                    with np.errstate(invalid="ignore"):
                        decided |= exact_parts & (product == numerators) & (error == 0) & np.isfinite(quotients)
                    if reduction == "weighted_mean":
                        decided &= weight_sums != 0
                    result[chosen[decided]] = quotients[decided]
                    undecided = np.flatnonzero(~decided)
                else:
                    undecided = np.arange(chosen.size)
                for j in undecided.tolist():
                    weight = (_exact_fraction(int(weight_sums[j]), weight_exponent) if weight_sums is not None
                              else Fraction(count))
                    put(int(chosen[j]), _exact_fraction(int(loss_sums[j]), loss_exponent), weight)
                continue
        for j, flat in enumerate(chosen.tolist()):
            one = tuple(i[j] for i in index)  # (() for a single output)
            loss, weight, _ = _exact.exact_sums(code, plan.param, *(None if a is None else a[one] for a in moved))
            put(flat, loss, weight)


def exact_outputs(code: int, param: float, y_true, y_pred, axis, reduction: str, values, uncertain) -> None:
    """Writes into ``values`` (float32 or float64, one per output in C order of the kept axes) the exact
    result, rounded once, of each output flagged ``uncertain`` (the compiled axis fast path's
    slow path, for unweighted calls)."""
    loss = LOSSES[code]
    plan = loss_plan(loss, y_true, y_pred, None, reduction, loss.check_param(param))
    axes = check_axis(axis, len(plan.shape), reduction)
    if axes is None:
        axes = tuple(range(len(plan.shape)))
    _exact_outputs(plan, axes, values, np.flatnonzero(uncertain), False)


def exact_loss(code: int, param: float, y_true, y_pred, weights, reduction: str, value: float):
    """The result of a loss call, exact and rounded once (the compiled and numba fast paths'
    slow path, where the certificate of their float64 ``value`` failed)."""
    loss = LOSSES[code]
    plan = loss_plan(loss, y_true, y_pred, weights, reduction, loss.check_param(param))
    return _exact.exact_result(plan, value)


def half_loss(name: str, param: float, y_true, y_pred, weights, reduction: str, value32: float,
              half, divide_by: float = 1.0) -> float:
    """A loss call's reduced result (divided by ``divide_by``, as planned_loss's) rounded once to
    the half-precision ``half`` (float16 or bfloat16, or its name), from ``value32``, the call's
    float32 result (fastl2._exact.half_result: fastl2.torch's results in its inputs' dtype)."""
    loss = next(loss for loss in LOSSES if loss.name == name)
    plan = loss_plan(loss, y_true, y_pred, weights, reduction, loss.check_param(param))
    return _exact.half_result(plan, value32, half, divide_by)


def half_elements(name: str, param: float, y_true, y_pred, weights, values32, half,
                  divide_by: float = 1.0, scale: float = 1.0):
    """A loss call's element losses (``reduction="none"``, times ``scale``, divided by
    ``divide_by``) rounded once each to the half-precision ``half``, from ``values32``, the
    same in float32 (fastl2._exact.half_elements: fastl2.torch's results in its inputs'
    dtype)."""
    loss = next(loss for loss in LOSSES if loss.name == name)
    return _exact.half_elements(loss.code, loss.check_param(param), y_true, y_pred, weights,
                                values32, half, divide_by, scale)


def gradient_weight_sum(plan: Plan, backend, strided: bool) -> tuple[float, float]:
    """The weight sum a "weighted_mean" gradient divides by, as ``(sum, rest)``: with a float64
    result, the exact weight sum rounded once and its rest (the kernels' double-double where
    ``_exact.certain_weight_sum`` says so, else the exact sum's: the float64 gradient divides
    by both, csrc/losses.h fl2_grad_exact); with a float32 result, the float64 kernels' sum
    (within 2**-38 of it: the float32 gradient's elements, within an ulp, are rounded from it)
    and 0."""
    if plan.arrays[2] is None:
        return float(plan.n), 0.0
    if strided:
        _, hi, _, lo = backend.run_strided(strided_pass(plan), False, weights_only=True)
        hi, lo = float(hi[0]), float(lo[0])
    else:
        hi, lo = backend.weight_sum(plan)
    if plan.result_dtype != np.float64 or not math.isfinite(hi):
        return hi, 0.0
    if hi != 0.0 and _exact.certain_weight_sum(hi, lo, plan.n):
        return hi, lo
    # (0: weights that sum to 0, or cancel beyond the double-double; _divisor decides)
    return _exact.exact_weight_sum(plan.arrays[2], rest=True)


def _divisor(plan: Plan, weight_sum: float) -> float:
    """What the sum of element losses is divided by (the reduction's D)."""
    if plan.reduction == "mean":
        return float(plan.n)
    if plan.reduction == "weighted_mean":
        if weight_sum == 0.0 and plan.n:
            # 0 from the kernels' double-double: weights that sum to 0, or that cancel beyond
            # it (a condition number past 2**100): the exact sum decides
            if plan.arrays[2] is not None:
                weight_sum = _exact.exact_weight_sum(plan.arrays[2])
            if weight_sum == 0.0:
                raise ValueError(
                    "reduction='weighted_mean' needs weights with a non-zero sum; "
                    "the weights sum to 0"
                )
        return weight_sum
    return 1.0


def _reduce(plan: Plan, sums, root: bool = False, readable: bool = True, divide_by: float = 1.0):
    """The reduced loss as a NumPy scalar of the result dtype, correctly rounded, from the
    pass's ``sums`` (loss, weights, loss's rest, weights' rest: the backends' ``run``): a value
    the certificate cannot decide (fastl2._exact: ``certain`` for float32, ``finish_float64``
    for float64) is computed exactly from the plan's arrays, unless they are no longer
    ``readable`` (a gradient written over y_pred); divided by ``divide_by`` (planned_loss)
    before that rounding."""
    loss_sum, weight_sum, loss_lo, weight_lo = sums
    if plan.n == 0 and plan.reduction in MEAN_REDUCTIONS:
        warn_empty_mean()
        return plan.result_dtype.type(np.nan)
    divisor = _divisor(plan, weight_sum)
    if plan.reduction == "weighted_mean" and weight_sum == 0.0:
        # weights that cancel beyond the double-double (_divisor): exact, from the arrays
        value = loss_sum / divisor + 0.0
        return _exact.exact_result(plan, value, root, divide_by) if readable else plan.result_dtype.type(value)
    if plan.result_dtype == np.float64:
        value, certain = _exact.finish_float64_scalar(
            loss_sum, weight_sum, loss_lo, weight_lo, plan.n, plan.arrays[2] is not None,
            plan.reduction == "weighted_mean", divisor, root, divide_by)
    else:
        # (+ 0.0: an exact 0 over a negative weight sum is +0.0, the exact value rounded, as
        # float64 results give it; 0 / -W alone is -0.0)
        value = loss_sum / divisor + 0.0
        if divide_by != 1.0:  # (after: divisor * divide_by could overflow)
            value /= divide_by
        if root:
            value = math.sqrt(value) if value >= 0.0 else (value if math.isnan(value) else math.nan)
        certain = _exact.certain(value, plan.n)
    if readable and not certain:
        return _exact.exact_result(plan, value, root, divide_by)
    return plan.result_dtype.type(value)

@quiet
def planned_grad_pass(loss, y_true, y_pred, weights, reduction, out, want_loss, param, divide_by=1.0):
    """The gradient call on the general road; ``divide_by`` divides the loss and the gradient
    (planned_loss; the gradient's scale is the loss's over ``divide_by``)."""
    check_reduction(reduction)
    param = loss.check_param(param)
    plan = loss_plan(loss, y_true, y_pred, weights, reduction, param)
    out = check_out(out, plan)
    backend = _backends.active()
    strided = not flat_output(plan, out)
    # The divisor must be known before the first gradient element is written: with
    # "weighted_mean" that takes a pass over the weights alone.
    if reduction == "weighted_mean" and plan.n:
        weight_sum, rest = gradient_weight_sum(plan, backend, strided)
    else:
        weight_sum, rest = float(plan.n), 0.0
    divisor = _divisor(plan, weight_sum) if plan.n else 1.0
    if divisor != weight_sum:
        rest = 0.0  # (n, or 1 for a sum)
    scale, divisor, rest = _gradient_factors(loss.grad_scale, divisor, rest, divide_by,
                                             plan.grad_dtype == np.float64)
    if strided:
        return _strided_grad_pass(plan, out, backend, scale, divisor, rest, weight_sum, want_loss,
                                  divide_by)
    target, result, copy_back = grad_buffers(plan, out)
    if reduction == "none":
        losses = np.empty(plan.n, plan.result_dtype) if want_loss else None
        backend.run(plan, False, target, scale, divisor, losses, grad_divisor_lo=rest)
        value = losses.reshape(plan.shape) if want_loss else None
    else:
        sums = backend.run(plan, want_loss, target, scale, divisor, grad_divisor_lo=rest)
        value = (_reduce(plan, sums, readable=_spared(plan, out), divide_by=divide_by)
                 if want_loss else None)
    if copy_back:
        np.copyto(result, target.reshape(plan.shape), casting="unsafe")
    return (value, result) if want_loss else result


def _gradient_factors(scale: float, divisor: float, rest: float, divide_by: float, wide: bool):
    """``(scale, divisor, rest)`` of a gradient ``scale * w * l'(d) / ((divisor + rest) *
    divide_by)``: ``divide_by`` (a loss divided by a constant: fastl2.torch's smooth L1, by
    beta) joins the divisor exactly for a float64 result (``wide``), as the product's
    double-double (float64 gradients divide by both parts), where it stays in float64's
    normal range; else it divides the scale."""
    if divide_by == 1.0 or not wide:
        return (scale if divide_by == 1.0 else scale / divide_by), divisor, rest
    product = divisor * divide_by
    if 2.0 ** -1000 < abs(product) < 2.0 ** 1000:
        exact = Fraction(divisor) * Fraction(divide_by) - Fraction(product)
        return scale, product, float(exact) + rest * divide_by
    return scale / divide_by, divisor, rest


def _spared(plan: Plan, out) -> bool:
    """Whether the inputs are still as given after a gradient pass that wrote ``out``."""
    return out is None or not any(
        source is not None and np.may_share_memory(out, source) for source in plan.sources)


def flat_output(plan: Plan, out) -> bool:
    """Whether the 1-d kernels can write the gradient: flat inputs and a C-contiguous (or no)
    ``out``; otherwise the strided pass writes it where it lies."""
    return plan.flat and (out is None or (out.flags.c_contiguous and out.flags.aligned))


def _strided_grad_pass(plan: Plan, out, backend, scale, divisor, rest, weight_sum, want_loss,
                       divide_by=1.0):
    """The gradient pass over arrays in any layout; a fresh gradient takes y_pred's layout.
    The gradient divides by ``divisor + rest`` (its double-double)."""
    pred = plan.arrays[1]
    result = np.empty_like(pred, dtype=plan.grad_dtype) if out is None else out
    # (the kernels write a gradient of y_pred's dtype, float16 included: an ``out`` of
    # another dtype gets a temporary copied in afterwards)
    target = base(result) if result.dtype == pred.dtype else np.empty_like(result, dtype=pred.dtype, subok=False)
    losses = None
    if want_loss and plan.reduction == "none":
        losses = np.empty_like(pred, dtype=plan.result_dtype)
    value = None
    if plan.n:
        sums = backend.run_strided(
            strided_pass(plan, grad=target, elementwise=losses),
            want_loss and losses is None, scale, divisor, grad_divisor_lo=rest,
        )
        if sums is not None:
            value = _reduce(plan, first_sums(sums), readable=_spared(plan, out), divide_by=divide_by)
    elif want_loss and losses is None:
        value = _reduce(plan, (0.0, weight_sum, 0.0, 0.0))
    if losses is not None:
        value = losses
    if target.dtype != result.dtype:
        np.copyto(result, target, casting="unsafe")
    return (value, result) if want_loss else result


def grad_buffers(plan: Plan, out):
    """Where the kernel writes the gradient, what is returned, and whether to copy between.

    The kernel writes 1-D C-contiguous arrays of y_pred's dtype (float16 included: the exact
    gradient rounded once, fastl2._halves); an ``out`` of another dtype gets a temporary that is
    copied in afterwards.
    """
    result = _backends.new_gradient(plan.shape, plan.grad_dtype) if out is None else out
    if result.dtype == plan.y_pred.dtype:
        return base(result).reshape(-1), result, False
    return np.empty(plan.n, plan.y_pred.dtype), result, True


def base(array: np.ndarray) -> np.ndarray:
    """``array`` as a plain ndarray (a view of an ``np.memmap`` or other subclass)."""
    return array if type(array) is np.ndarray else array.view(np.ndarray)
