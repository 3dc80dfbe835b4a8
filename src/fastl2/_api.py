"""The public functions: arguments -> plan (fastl2._plan) -> one backend pass -> result.

Each loss function first offers the call to the active backend's own fast path, if it has one
(numba's ``fast_call``: the common call without a plan), then plans it.  When the compiled
module is built, fastl2 exports its versions of the functions of ``_core.FAST_PATH_FUNCTIONS``
instead, which answer the common call themselves while the compiled backend computes and call
the function of the same name here otherwise: calls flow one way, compiled -> here ->
backend.  Type checkers read the annotated (overloaded) signatures below, whose aliases are
in fastl2._typing; the compiled versions take the same arguments and return the same types.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, overload

from . import _backends
from ._losses import ABSOLUTE, HUBER, SQUARED
from ._passes import planned_grad_pass, planned_loss
from ._plan import MEAN_REDUCTIONS, check_reduction

if TYPE_CHECKING:  # (annotations are strings at run time: nothing more to import)
    from typing import Literal

    from ._typing import (
        ArrayLike,
        Axis,
        FloatArray,
        FloatScalar,
        MeanReduction,
        ReducingAxis,
        ReducingReduction,
        Reduction,
    )

__all__ = [
    "mse", "mae", "rmse", "mse_grad", "mse_and_grad", "mae_grad", "mae_and_grad",
    "huber", "huber_grad", "huber_and_grad",
]


# ---- losses ---------------------------------------------------------------------------

@overload
def mse(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    axis: None = None, reduction: ReducingReduction = "mean",
) -> FloatScalar: ...
@overload
def mse(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    axis: ReducingAxis, reduction: ReducingReduction = "mean",
) -> FloatArray: ...
@overload
def mse(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    axis: None = None, reduction: Literal["none"],
) -> FloatArray: ...
def mse(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    axis: Axis = None, reduction: Reduction = "mean",
) -> FloatScalar | FloatArray:
    """Mean squared error: the mean of ``w * (y_pred - y_true)**2``, in one pass.

    Parameters
    ----------
    y_true, y_pred : array_like
        Arrays of one shape (no broadcasting); float32 inputs give a float32 result.
    weights : array_like, optional
        One weight per element (y_pred's shape) or per sample (1-D, ``len(y_pred)``).
    axis : None, int or tuple of ints
        The axes to reduce (NumPy's rules); None reduces everything and returns a scalar,
        anything else an ndarray without the reduced axes.  ``axis=-1`` gives Keras'
        per-sample losses, ``axis=0`` scikit-learn's per-output ones.
    reduction : {"mean", "weighted_mean", "sum", "none"}
        Divide the sum by the number of elements, by the sum of the weights, by nothing,
        or return the element losses.

    Any memory layout is read where it lies (strided, transposed, broadcast, memory-mapped,
    unaligned, 0-d), with no copy of float16/bfloat16/float32/float64 data, from ndarrays, ndarray
    subclasses, DLPack producers (PyTorch CPU tensors, read through ``detach()`` when they
    require grad; bfloat16 ones as ``ml_dtypes.bfloat16`` arrays), ``__array__`` objects and
    buffers alike.

    Returns
    -------
    numpy.float32 or numpy.float64, or ndarray
        A NumPy scalar with ``axis=None``; an ndarray without the reduced axes otherwise, or
        of y_pred's shape with ``reduction="none"``.  float32 when every input is
        float16/bfloat16/float32, else float64.  (A type checker sees ``numpy.floating[Any]`` for
        ``axis=None`` with a reducing reduction, ``NDArray[numpy.floating[Any]]`` for an
        ``axis`` or ``reduction="none"``: literal reductions tell them apart.)

    Raises
    ------
    ValueError
        Shapes that differ, a ragged array-like, an unknown reduction (only ``str`` values),
        ``axis`` with ``reduction="none"``, weights summing to zero with "weighted_mean".
    TypeError
        A dtype fastl2 cannot compute with (complex, object, string; a bfloat16 tensor without
        ml_dtypes installed), an
        ``np.longdouble`` wider than float64 (never rounded silently: convert it with
        ``.astype(np.float64)``), or a ``numpy.ma.MaskedArray`` (its mask is never dropped).
    numpy.exceptions.AxisError
        An axis out of range.

    Notes
    -----
    NaN and inf propagate as IEEE arithmetic does, silently (no ``RuntimeWarning``) on every
    backend.  Negative weights are used as given (``"weighted_mean"`` divides by their sum).
    Integers and bools are read as float64; for int64/uint64 ``y_true``/``y_pred`` the
    difference ``y_pred - y_true`` is formed exactly before it is rounded, so integers beyond
    2**53 (nanosecond timestamps) lose nothing to a conversion first.

    Examples
    --------
    >>> import numpy as np, fastl2
    >>> fastl2.mse(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    np.float64(1.3333333333333333)
    >>> fastl2.mse([1.0, 2.0], [2.0, 4.0], weights=[3.0, 1.0], reduction="weighted_mean")
    np.float64(1.75)
    >>> y_true = np.zeros((2, 3)); y_pred = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])
    >>> fastl2.mse(y_true, y_pred, axis=-1)
    array([4.66666667, 3.        ])
    >>> fastl2.mse(y_true, y_pred, axis=0)
    array([0.5, 2. , 9. ])
    """
    return _loss(SQUARED, y_true, y_pred, weights, axis, reduction)


@overload
def mae(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    axis: None = None, reduction: ReducingReduction = "mean",
) -> FloatScalar: ...
@overload
def mae(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    axis: ReducingAxis, reduction: ReducingReduction = "mean",
) -> FloatArray: ...
@overload
def mae(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    axis: None = None, reduction: Literal["none"],
) -> FloatArray: ...
def mae(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    axis: Axis = None, reduction: Reduction = "mean",
) -> FloatScalar | FloatArray:
    """Mean absolute error: the mean of ``w * |y_pred - y_true|``, in one pass.

    Arguments, returns (a float32 or float64 NumPy scalar with ``axis=None``, else an
    ndarray) and errors as for :func:`mse`.

    >>> import fastl2
    >>> fastl2.mae([1.0, 2.0, 3.0], [2.0, 2.0, 1.0])
    np.float64(1.0)
    """
    return _loss(ABSOLUTE, y_true, y_pred, weights, axis, reduction)


@overload
def rmse(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    axis: None = None, reduction: MeanReduction = "mean",
) -> FloatScalar: ...
@overload
def rmse(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    axis: ReducingAxis, reduction: MeanReduction = "mean",
) -> FloatArray: ...
def rmse(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    axis: Axis = None, reduction: MeanReduction = "mean",
) -> FloatScalar | FloatArray:
    """Root mean squared error: ``sqrt(mse(...))``; reduction "mean" or "weighted_mean".

    Arguments, returns and errors as for :func:`mse` (the root taken of each reduced value,
    per output with ``axis``), but ``reduction`` must be "mean" or "weighted_mean": any other
    raises ValueError.

    >>> import fastl2
    >>> fastl2.rmse([0.0, 0.0], [3.0, 4.0], reduction="mean")
    np.float64(3.5355339059327378)
    """
    check_reduction(reduction, MEAN_REDUCTIONS)
    return _loss(SQUARED, y_true, y_pred, weights, axis, reduction, root=True)


def _fast(loss, param, y_true, y_pred, weights, reduction, want_loss, want_grad):
    """The active backend's own fast path's answer (numba's ``fast_call``), or None: no fast
    path, a call it does not take, or a parameter the planned path must judge (the fast paths
    take a float > 0, or 0.0 for a loss without a parameter)."""
    fast = _backends.fast_call
    if fast is None:
        return None
    if loss.parameter is None:
        param = 0.0
    elif not (type(param) is float and 0.0 < param < math.inf):
        return None
    return fast(loss.code, param, y_true, y_pred, weights, reduction, want_loss, want_grad)


def _loss(loss, y_true, y_pred, weights, axis, reduction, root=False, param=0.0):
    """A loss (fastl2._losses.Loss) reduced along ``axis``; ``param`` is the loss's parameter,
    as given: the active backend's fast path (if any) or the planned path."""
    if axis is None and not root:
        result = _fast(loss, param, y_true, y_pred, weights, reduction, True, False)
        if result is not None:
            return result
    return planned_loss(loss, y_true, y_pred, weights, axis, reduction, root, param)


# ---- gradients --------------------------------------------------------------------------

def mse_grad(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    reduction: Reduction = "mean", out: FloatArray | None = None,
) -> FloatArray:
    """Gradient of :func:`mse` with respect to ``y_pred``: ``2 w (y_pred - y_true) / D``.

    ``D`` is the number of elements ("mean"), the sum of the weights ("weighted_mean") or 1
    ("sum", and "none", which gives the element-wise derivative). Arguments and special
    values as for :func:`mse`.

    Returns an ndarray of y_pred's shape and own float dtype (float16 and bfloat16 kept,
    whatever object carried them: a bfloat16 one is an ``ml_dtypes.bfloat16`` array; float64
    for integer y_pred), or ``out`` itself: any writable ndarray of that
    shape and dtype (any layout or alignment, ``np.memmap`` included), y_pred itself for an
    in-place update.  Raises as :func:`mse` does, and ValueError for an ``out`` of the wrong
    shape or dtype, read-only, or sharing memory with any input other than as y_pred itself
    (judged on the memory read, whatever object carried each input).

    >>> import fastl2
    >>> fastl2.mse_grad([1.0, 2.0], [2.0, 4.0])
    array([1., 2.])
    """
    return _grad_pass(SQUARED, y_true, y_pred, weights, reduction, out, want_loss=False)


@overload
def mse_and_grad(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    reduction: ReducingReduction = "mean", out: FloatArray | None = None,
) -> tuple[FloatScalar, FloatArray]: ...
@overload
def mse_and_grad(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    reduction: Literal["none"], out: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]: ...
def mse_and_grad(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    reduction: Reduction = "mean", out: FloatArray | None = None,
) -> tuple[FloatScalar | FloatArray, FloatArray]:
    """``(mse(...), mse_grad(...))`` from one pass that reads each input once.

    Arguments and errors as for :func:`mse_grad`.  Returns the tuple ``(loss, grad)``:
    ``loss`` as :func:`mse` with ``axis=None`` gives it (a float32 or float64 NumPy scalar,
    or with ``reduction="none"`` the element losses in an ndarray of y_pred's shape), ``grad``
    as :func:`mse_grad` does (an ndarray of y_pred's shape and float dtype, or ``out``).

    >>> import fastl2
    >>> loss, grad = fastl2.mse_and_grad([1.0, 2.0], [2.0, 4.0])
    >>> loss, grad
    (np.float64(2.5), array([1., 2.]))
    """
    return _grad_pass(SQUARED, y_true, y_pred, weights, reduction, out, want_loss=True)


def mae_grad(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    reduction: Reduction = "mean", out: FloatArray | None = None,
) -> FloatArray:
    """Gradient of :func:`mae` with respect to ``y_pred``: ``w sign(y_pred - y_true) / D``.

    Where ``y_pred == y_true`` the gradient is a zero with the sign of ``y_pred - y_true``
    (IEEE: ``-0.0`` for ``y_pred = -0.0``, ``y_true = 0.0``) times ``w / D``; NaN stays NaN.
    Arguments, returns and errors as for :func:`mse_grad`.

    >>> import fastl2
    >>> fastl2.mae_grad([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 4.0])
    array([ 0.25,  0.  , -0.25,  0.  ])
    """
    return _grad_pass(ABSOLUTE, y_true, y_pred, weights, reduction, out, want_loss=False)


@overload
def mae_and_grad(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    reduction: ReducingReduction = "mean", out: FloatArray | None = None,
) -> tuple[FloatScalar, FloatArray]: ...
@overload
def mae_and_grad(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    reduction: Literal["none"], out: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]: ...
def mae_and_grad(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    reduction: Reduction = "mean", out: FloatArray | None = None,
) -> tuple[FloatScalar | FloatArray, FloatArray]:
    """``(mae(...), mae_grad(...))`` from one pass that reads each input once.

    Arguments, returns and errors as for :func:`mse_and_grad`: ``(loss, grad)``, ``loss`` a
    NumPy scalar (an ndarray with ``reduction="none"``), ``grad`` an ndarray or ``out``.

    >>> import fastl2
    >>> fastl2.mae_and_grad([0.0, 0.0], [1.0, -3.0])
    (np.float64(2.0), array([ 0.5, -0.5]))
    """
    return _grad_pass(ABSOLUTE, y_true, y_pred, weights, reduction, out, want_loss=True)


@overload
def huber(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    delta: float = 1.0, axis: None = None, reduction: ReducingReduction = "mean",
) -> FloatScalar: ...
@overload
def huber(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    delta: float = 1.0, axis: ReducingAxis, reduction: ReducingReduction = "mean",
) -> FloatArray: ...
@overload
def huber(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    delta: float = 1.0, axis: None = None, reduction: Literal["none"],
) -> FloatArray: ...
def huber(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    delta: float = 1.0, axis: Axis = None, reduction: Reduction = "mean",
) -> FloatScalar | FloatArray:
    """Huber loss: the mean of ``w * huber(y_pred - y_true)``, in one pass.

    With ``a = |y_pred - y_true|``, ``huber = a**2 / 2`` where ``a < delta`` and
    ``delta * (a - delta / 2)`` beyond: squared error for small residuals, absolute error
    (robust to outliers) for large ones, continuous with its derivative at ``delta``
    (Huber, "Robust Estimation of a Location Parameter", Ann. Math. Statist. 35(1), 1964).
    The same as ``torch.nn.functional.huber_loss(y_pred, y_true, delta=delta)``; PyTorch's
    ``smooth_l1_loss(y_pred, y_true, beta=b)`` is ``huber(y_true, y_pred, delta=b) / b``.

    Parameters
    ----------
    y_true, y_pred, weights, axis, reduction
        As for :func:`mse`.
    delta : float
        Where the loss turns from quadratic to linear: a finite real number > 0, in the units
        of y_pred (default 1.0, as PyTorch's).

    Returns
    -------
    numpy.float32 or numpy.float64, or ndarray
        As :func:`mse` returns them.

    Raises
    ------
    ValueError, TypeError, numpy.exceptions.AxisError
        As :func:`mse` raises them, and for a ``delta`` that is not a finite real number > 0
        (the message names ``delta``).

    Notes
    -----
    Accuracy (docs/api.md, "Accuracy and determinism"), as every loss's: float32 results
    correctly rounded; float64 sums within about 2**-80 of the terms' magnitudes of the exact sum
    of the exact element losses, both branches' roundings included.

    >>> import fastl2
    >>> fastl2.huber([0.0, 0.0, 0.0], [0.5, -2.0, 4.0], delta=1.0)
    np.float64(1.7083333333333333)
    """
    return _loss(HUBER, y_true, y_pred, weights, axis, reduction, param=delta)


def huber_grad(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    delta: float = 1.0, reduction: Reduction = "mean", out: FloatArray | None = None,
) -> FloatArray:
    """Gradient of :func:`huber` with respect to ``y_pred``: ``w * clip(d, -delta, delta) / D``.

    ``d = y_pred - y_true``; ``D`` as for :func:`mse_grad`.  Arguments, returns and errors as
    for :func:`mse_grad`, and ``delta`` as for :func:`huber`.

    >>> import fastl2
    >>> fastl2.huber_grad([0.0, 0.0, 0.0, 0.0], [0.5, -2.0, 4.0, 0.0], reduction="sum")
    array([ 0.5, -1. ,  1. ,  0. ])
    """
    return _grad_pass(HUBER, y_true, y_pred, weights, reduction, out, want_loss=False, param=delta)


@overload
def huber_and_grad(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    delta: float = 1.0, reduction: ReducingReduction = "mean",
    out: FloatArray | None = None,
) -> tuple[FloatScalar, FloatArray]: ...
@overload
def huber_and_grad(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    delta: float = 1.0, reduction: Literal["none"], out: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]: ...
def huber_and_grad(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    delta: float = 1.0, reduction: Reduction = "mean", out: FloatArray | None = None,
) -> tuple[FloatScalar | FloatArray, FloatArray]:
    """``(huber(...), huber_grad(...))`` from one pass that reads each input once.

    Arguments, returns and errors as for :func:`mse_and_grad`, and ``delta`` as for
    :func:`huber`.

    >>> import fastl2
    >>> fastl2.huber_and_grad([0.0, 0.0], [0.5, -2.0], delta=1.0)
    (np.float64(0.8125), array([ 0.25, -0.5 ]))
    """
    return _grad_pass(HUBER, y_true, y_pred, weights, reduction, out, want_loss=True, param=delta)


def _grad_pass(loss, y_true, y_pred, weights, reduction, out, *, want_loss, param=0.0):
    """A loss's gradient (with its value: ``want_loss``): the active backend's fast path (if
    any) or the planned path."""
    if out is None:
        result = _fast(loss, param, y_true, y_pred, weights, reduction, want_loss, True)
        if result is not None:
            return result
    return planned_grad_pass(loss, y_true, y_pred, weights, reduction, out, want_loss, param)
