"""The numba backend's fast path: the common calls -- C-contiguous ndarrays of native
float32/float64 of one shape (weights too, if any), reduction "mean", "weighted_mean" or
"sum", no out= -- go straight to the 1-d kernels, skipping the plan (a few microseconds), like
fastl2._core's fast paths; fastl2._api tries :func:`fast_call` first and plans every other
call (including every call that must raise), which computes the same bits.
"""

from __future__ import annotations

import numpy as np

from .. import _exact
from .._backends import new_gradient as _new_gradient
from .._losses import LOSSES
from .config import (_FLOAT32, _FLOAT64, _GRAD, _SUMS, _SUMS_GRAD, _WEIGHTS, _WEIGHTS_LOSS, GRAD_EXACT,
                     GRAD_QUOTIENT)
from .driver import INTERRUPTIBLE_MIN, _entry_point, _launch, _launch_1d_as_strided, threads_for

_FLOAT32_TYPE, _FLOAT64_TYPE = np.float32, np.float64
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_GRAD_SCALES = tuple(loss.grad_scale for loss in LOSSES)


def _plain_dtype(x):
    """The itemsize of a native float32/float64 C-contiguous aligned ndarray, else 0."""
    if type(x) is not np.ndarray:
        return 0
    dtype = x.dtype
    if dtype is not _FLOAT64 and dtype is not _FLOAT32 and dtype != _FLOAT64 and dtype != _FLOAT32:
        return 0  # (!= also tells the non-native byte orders apart)
    flags = x.flags
    return dtype.itemsize if flags.c_contiguous and flags.aligned else 0


_fast_entries: dict = {}


def _fast_entry(loss, mode, true_size, pred_size, weights_size, compensated):
    """_entry_point of the fast paths' kernel, by a flat key of the call's choices (what
    _fast_call looks up first, in _fast_entries; ``compensated`` follows from the sizes)."""
    want_grad = mode != _SUMS
    key = (loss, True, weights_size is not None, mode, compensated,
           GRAD_EXACT if want_grad and pred_size == 8 else GRAD_QUOTIENT, "1d")
    entry = _entry_point(key, (true_size, pred_size, weights_size,
                               pred_size if want_grad else None, None))
    _fast_entries[loss, mode, true_size, pred_size, weights_size] = entry
    return entry


def fast_call(loss, param, y_true, y_pred, weights, reduction, want_loss, want_grad):
    """The whole call for the common case of loss ``loss`` (a fastl2._losses code) with its
    parameter ``param`` (a checked float; 0.0 for losses without one): the loss (a NumPy
    scalar), the gradient (a new array) or both, as ``want_loss`` and ``want_grad`` say; or
    None for a call that is not the common case (fastl2._api then plans it)."""
    pred_size = _plain_dtype(y_pred)
    true_size = _plain_dtype(y_true)
    if not pred_size or not true_size:
        return None
    shape = y_pred.shape
    n = y_pred.size
    if y_true.shape != shape or not n or n >= INTERRUPTIBLE_MIN:
        return None  # (such long calls: driver._launch, which can stop them)
    if weights is None:
        weights_size = None
    else:
        weights_size = _plain_dtype(weights)
        if not weights_size or weights.shape != shape:
            return None
    if not isinstance(reduction, str):  # (an array's == would compare element-wise)
        return None
    divisor_lo = 0.0  # (the weight sum's rest: a float64 gradient's divisor is exact)
    if reduction == "sum":
        divisor = 1.0
    elif reduction == "mean" or reduction == "weighted_mean":
        divisor = float(n)
    else:
        return None
    # float32 result, plain lanes; else float64, compensated lanes (the weight sum's too)
    single = true_size == pred_size == 4 and weights_size != 8
    if not single and (true_size == 4 or pred_size == 4 or weights_size == 4):
        return None  # (float32 beside float64: the strided kernels convert them, driver._launch)
    if len(shape) != 1:
        y_true, y_pred = y_true.reshape(-1), y_pred.reshape(-1)
        if weights is not None:
            weights = weights.reshape(-1)
    if want_grad and weights is not None and reduction == "weighted_mean":
        # The gradient's divisor must be known before its first element is written.
        args = (None, y_pred, weights, 1, None, 0.0, 1.0, 0.0, None, 0.0)
        sums = _launch(_WEIGHTS_LOSS, False, True, _WEIGHTS, not single, False,
                       (None, pred_size, weights_size, None, None), n, args)
        divisor, divisor_lo = sums[1], sums[3]
        if divisor == 0.0:
            return None  # the planned path raises the right error
        if not single and not _exact.certain_weight_sum(divisor, divisor_lo, n):
            # (near a tie: _passes.gradient_weight_sum)
            divisor, divisor_lo = _exact.exact_weight_sum(weights, rest=True)
    grad = flat_grad = None
    if want_grad:
        grad = _new_gradient(shape, y_pred.dtype)
        flat_grad = grad if len(shape) == 1 else grad.reshape(-1)
        mode = _SUMS_GRAD if want_loss else _GRAD
    else:
        mode = _SUMS
    args = (y_true, y_pred, weights, 1, flat_grad, _GRAD_SCALES[loss], divisor,
            divisor_lo if pred_size == 8 else 0.0, None, param)
    if threads_for(n) > 1:  # (on the pool: the strided kernel, as driver._launch sends it)
        loss_sum, weight_sum, loss_lo, weight_lo = _launch_1d_as_strided(
            loss, True, weights_size is not None, mode, not single,
            GRAD_EXACT if want_grad and pred_size == 8 else GRAD_QUOTIENT, n, args)
    else:
        entry = _fast_entries.get((loss, mode, true_size, pred_size, weights_size))
        if entry is None:
            entry = _fast_entry(loss, mode, true_size, pred_size, weights_size, not single)
        loss_sum, weight_sum, loss_lo, weight_lo = entry(*args)
    if not want_loss:
        return grad
    if reduction == "weighted_mean":
        if weight_sum == 0.0:
            return None  # the planned path raises the right error
        divisor = weight_sum
    if single:
        value = loss_sum / divisor + 0.0  # (+ 0.0: an exact 0 over a negative weight sum is +0.0)
        certain = _exact.certain(value, n)
    else:
        value, certain = _exact.finish_float64_scalar(loss_sum, weight_sum, loss_lo, weight_lo, n,
                                                      weights is not None, reduction == "weighted_mean", divisor)
    if not certain:
        # Near a rounding boundary (within 2**-38 of a float32 one, 2**-80 of a float64 one):
        # the exact path decides.
        from .._passes import exact_loss
        value = exact_loss(loss, param, y_true, y_pred, weights, reduction, value)
        return (value, grad) if want_grad else value
    if not single:
        value = _FLOAT64_TYPE(value)
    elif -_FLOAT32_MAX <= value <= _FLOAT32_MAX:
        value = _FLOAT32_TYPE(value)
    else:  # inf or nan as IEEE rounding gives them, silently (as the compiled backend)
        with np.errstate(over="ignore", invalid="ignore"):
            value = _FLOAT32_TYPE(value)
    return (value, grad) if want_grad else value
