"""The public functions: arguments -> plan (fastl2._plan) -> one backend pass -> result.

When the compiled module is built, the functions of ``_core.FAST_PATH_FUNCTIONS`` exported by
fastl2 are its fast-path versions, which answer the common call directly and hand every
other call to the functions below.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from . import _backends
from ._plan import (
    MEAN_REDUCTIONS,
    Plan,
    check_axis,
    check_lam,
    check_out,
    check_reduction,
    loss_plan,
    penalty_plan,
)

__all__ = [
    "mse", "mae", "rmse", "mse_grad", "mse_and_grad", "mae_grad", "mae_and_grad",
    "l2_penalty", "l2_penalty_grad",
]


# ---- losses ---------------------------------------------------------------------------

def mse(y_true, y_pred, weights=None, *, axis=None, reduction: str = "mean"):
    """Mean squared error: the mean of ``w * (y_pred - y_true)**2``, in one pass.

    Parameters
    ----------
    y_true, y_pred : array_like
        Arrays of one shape (no broadcasting); float32 inputs give a float32 result.
    weights : array_like, optional
        One weight per element (y_pred's shape) or per sample (1-D, ``len(y_pred)``).
    axis : None
        Only None (reduce everything) in this version.
    reduction : {"mean", "weighted_mean", "sum", "none"}
        Divide the sum by the number of elements, by the sum of the weights, by nothing,
        or return the element losses.

    Examples
    --------
    >>> import numpy as np, fastl2
    >>> fastl2.mse(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    np.float64(1.3333333333333333)
    >>> fastl2.mse([1.0, 2.0], [2.0, 4.0], weights=[3.0, 1.0], reduction="weighted_mean")
    np.float64(1.75)
    """
    return _loss("squared", y_true, y_pred, weights, axis, reduction)


def mae(y_true, y_pred, weights=None, *, axis=None, reduction: str = "mean"):
    """Mean absolute error: the mean of ``w * |y_pred - y_true|``, in one pass.

    Arguments as for :func:`mse`.

    >>> import fastl2
    >>> fastl2.mae([1.0, 2.0, 3.0], [2.0, 2.0, 1.0])
    np.float64(1.0)
    """
    return _loss("absolute", y_true, y_pred, weights, axis, reduction)


def rmse(y_true, y_pred, weights=None, *, axis=None, reduction: str = "mean"):
    """Root mean squared error: ``sqrt(mse(...))``; reduction "mean" or "weighted_mean".

    >>> import fastl2
    >>> fastl2.rmse([0.0, 0.0], [3.0, 4.0], reduction="mean")
    np.float64(3.5355339059327378)
    """
    check_reduction(reduction, MEAN_REDUCTIONS)
    return _loss("squared", y_true, y_pred, weights, axis, reduction, root=True)


def _loss(loss, y_true, y_pred, weights, axis, reduction, root=False):
    check_reduction(reduction)
    plan = loss_plan(loss, y_true, y_pred, weights, reduction)
    check_axis(axis, len(plan.shape), reduction)
    backend = _backends.active()
    if reduction == "none":
        losses = np.empty(plan.n, plan.result_dtype)
        backend.run(plan, False, elementwise=losses)
        return losses.reshape(plan.shape)
    loss_sum, weight_sum = backend.run(plan, True)
    return _reduce(plan, loss_sum, weight_sum, root)


def _divisor(plan: Plan, weight_sum: float) -> float:
    """What the sum of element losses is divided by (the reduction's D)."""
    if plan.reduction == "mean":
        return float(plan.n)
    if plan.reduction == "weighted_mean":
        if weight_sum == 0.0 and plan.n:
            raise ValueError(
                "reduction='weighted_mean' needs weights with a non-zero sum; "
                "the weights sum to 0"
            )
        return weight_sum
    return 1.0


def _reduce(plan: Plan, loss_sum: float, weight_sum: float, root: bool = False):
    """The reduced loss as a NumPy scalar of the result dtype."""
    if plan.n == 0 and plan.reduction in MEAN_REDUCTIONS:
        warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=4)
        return plan.result_dtype.type(np.nan)
    value = loss_sum / _divisor(plan, weight_sum)
    if root:
        value = math.sqrt(value) if value >= 0.0 else (value if math.isnan(value) else math.nan)
    return plan.result_dtype.type(value)


# ---- gradients --------------------------------------------------------------------------

def mse_grad(y_true, y_pred, weights=None, *, reduction: str = "mean", out=None):
    """Gradient of :func:`mse` with respect to ``y_pred``: ``2 w (y_pred - y_true) / D``.

    ``D`` is the number of elements ("mean"), the sum of the weights ("weighted_mean") or 1
    ("sum", and "none", which gives the element-wise derivative). The gradient has y_pred's
    float dtype and shape; ``out`` may be given to write into (y_pred itself for in place).

    >>> import fastl2
    >>> fastl2.mse_grad([1.0, 2.0], [2.0, 4.0])
    array([1., 2.])
    """
    return _grad_pass("squared", y_true, y_pred, weights, reduction, out, want_loss=False)


def mse_and_grad(y_true, y_pred, weights=None, *, reduction: str = "mean", out=None):
    """``(mse(...), mse_grad(...))`` from one pass that reads each input once.

    >>> import fastl2
    >>> loss, grad = fastl2.mse_and_grad([1.0, 2.0], [2.0, 4.0])
    >>> loss, grad
    (np.float64(2.5), array([1., 2.]))
    """
    return _grad_pass("squared", y_true, y_pred, weights, reduction, out, want_loss=True)


def mae_grad(y_true, y_pred, weights=None, *, reduction: str = "mean", out=None):
    """Gradient of :func:`mae` with respect to ``y_pred``: ``w sign(y_pred - y_true) / D``.

    The gradient is 0 where ``y_pred == y_true``.

    >>> import fastl2
    >>> fastl2.mae_grad([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 4.0])
    array([ 0.25,  0.  , -0.25,  0.  ])
    """
    return _grad_pass("absolute", y_true, y_pred, weights, reduction, out, want_loss=False)


def mae_and_grad(y_true, y_pred, weights=None, *, reduction: str = "mean", out=None):
    """``(mae(...), mae_grad(...))`` from one pass that reads each input once.

    >>> import fastl2
    >>> fastl2.mae_and_grad([0.0, 0.0], [1.0, -3.0])
    (np.float64(2.0), array([ 0.5, -0.5]))
    """
    return _grad_pass("absolute", y_true, y_pred, weights, reduction, out, want_loss=True)


def _grad_pass(loss, y_true, y_pred, weights, reduction, out, *, want_loss):
    check_reduction(reduction)
    plan = loss_plan(loss, y_true, y_pred, weights, reduction)
    out = check_out(out, plan, {"y_true": y_true, "y_pred": y_pred, "weights": weights})
    backend = _backends.active()
    # The divisor must be known before the first gradient element is written: with
    # "weighted_mean" that takes a pass over the weights alone.
    weight_sum = backend.weight_sum(plan) if reduction == "weighted_mean" and plan.n else float(plan.n)
    divisor = _divisor(plan, weight_sum) if plan.n else 1.0
    scale = 2.0 if loss == "squared" else 1.0
    target, result, copy_back = _grad_buffers(plan, out)
    if reduction == "none":
        losses = np.empty(plan.n, plan.result_dtype) if want_loss else None
        backend.run(plan, False, target, scale, divisor, losses)
        value = losses.reshape(plan.shape) if want_loss else None
    else:
        loss_sum, _ = backend.run(plan, want_loss, target, scale, divisor)
        value = _reduce(plan, loss_sum, weight_sum) if want_loss else None
    if copy_back:
        np.copyto(result, target.reshape(plan.shape), casting="unsafe")
    return (value, result) if want_loss else result


def _grad_buffers(plan: Plan, out):
    """Where the kernel writes the gradient, what is returned, and whether to copy between.

    The kernel writes 1-D C-contiguous arrays of y_pred's kernel dtype; a float16 or
    non-contiguous ``out`` gets a temporary that is copied in afterwards.
    """
    result = _backends.new_gradient(plan.shape, plan.grad_dtype) if out is None else out
    if result.dtype == plan.y_pred.dtype and result.flags.c_contiguous:
        return result.reshape(-1), result, False
    return np.empty(plan.n, plan.y_pred.dtype), result, True


# ---- the L2 penalty -----------------------------------------------------------------------

def l2_penalty(params, lam):
    """The L2 regularisation term ``lam * sum(params**2)``, as a NumPy scalar.

    >>> import fastl2
    >>> fastl2.l2_penalty([1.0, -2.0, 2.0], 0.5)
    np.float64(4.5)
    """
    lam = check_lam(lam)
    plan = penalty_plan(params)
    square_sum, _ = _backends.active().run(plan, True)
    return plan.result_dtype.type(lam * square_sum)


def l2_penalty_grad(params, lam, *, out=None):
    """Gradient of :func:`l2_penalty`: ``2 * lam * params`` (``out=params`` updates in place).

    >>> import fastl2
    >>> fastl2.l2_penalty_grad([1.0, -2.0], 0.25)
    array([ 0.5, -1. ])
    """
    lam = check_lam(lam)
    plan = penalty_plan(params)
    out = check_out(out, plan, {"params": params})
    target, result, copy_back = _grad_buffers(plan, out)
    _backends.active().run(plan, False, target, 2.0 * lam)
    if copy_back:
        np.copyto(result, target.reshape(plan.shape), casting="unsafe")
    return result


# ---- the compiled fast paths ----------------------------------------------------------------

def _compiled_fast_paths():
    """Replaces the functions with a compiled fast path by the compiled module's versions."""
    core = _backends.compiled_module()
    if core is None:
        return
    module = globals()
    planned = {name: module[name] for name in core.FAST_PATH_FUNCTIONS}
    _backends.register_planned(planned)
    for name, function in planned.items():
        fast = getattr(core, name)
        fast.__doc__ = function.__doc__
        fast.__wrapped__ = function  # inspect.signature and help() show the planned signature
        fast.__module__ = "fastl2"
        module[name] = fast


_compiled_fast_paths()
