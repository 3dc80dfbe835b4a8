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

import functools
import math
import warnings
from typing import TYPE_CHECKING, overload

import numpy as np

from . import _backends
from ._losses import ABSOLUTE, SQUARED
from ._plan import (
    MEAN_REDUCTIONS,
    Plan,
    check_axis,
    check_lam,
    check_out,
    check_reduction,
    loss_plan,
    penalty_plan,
    strided_pass,
)
from ._plan import _overlaps as overlaps

if TYPE_CHECKING:  # (annotations are strings at run time: nothing more to import)
    from collections.abc import Iterable, Sequence
    from typing import Literal, SupportsFloat

    from ._typing import (
        ArrayLike,
        ArrayObject,
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
    "l2_penalty", "l2_penalty_grad",
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
    unaligned, 0-d), with no copy of float32/float64 data, from ndarrays, ndarray subclasses,
    DLPack producers (PyTorch CPU tensors, read through ``detach()`` when they require grad),
    ``__array__`` objects and buffers alike.

    Returns
    -------
    numpy.float32 or numpy.float64, or ndarray
        A NumPy scalar with ``axis=None``; an ndarray without the reduced axes otherwise, or
        of y_pred's shape with ``reduction="none"``.  float32 when every input is
        float16/float32, else float64.  (A type checker sees ``numpy.floating[Any]`` for
        ``axis=None`` with a reducing reduction, ``NDArray[numpy.floating[Any]]`` for an
        ``axis`` or ``reduction="none"``: literal reductions tell them apart.)

    Raises
    ------
    ValueError
        Shapes that differ, a ragged array-like, an unknown reduction (only ``str`` values),
        ``axis`` with ``reduction="none"``, weights summing to zero with "weighted_mean".
    TypeError
        A dtype fastl2 cannot compute with (complex, object, string, bfloat16), an
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


def _quiet(function):
    """Runs ``function`` with NumPy's floating-point warnings off: NaN and inf propagate
    silently, as in the compiled kernels, whichever backend or path computes."""

    @functools.wraps(function)
    def quiet(*args, **kwargs):
        with np.errstate(all="ignore"):
            return function(*args, **kwargs)

    return quiet


def _fast_param(loss, param):
    """``param`` as the backends' fast paths take it (a float > 0, or 0.0 for a loss without
    one), or None for a value the planned path must judge."""
    if loss.parameter is None:
        return 0.0
    return param if type(param) is float and 0.0 < param < math.inf else None


def _loss(loss, y_true, y_pred, weights, axis, reduction, root=False, param=0.0):
    """A loss (fastl2._losses.Loss) reduced along ``axis``; ``param`` is the loss's parameter,
    as given: the active backend's fast path (if any) or the planned path."""
    fast = _backends.fast_call
    if fast is not None and axis is None and not root:
        p = _fast_param(loss, param)
        if p is not None:
            result = fast(loss.code, p, y_true, y_pred, weights, reduction, True, False)
            if result is not None:
                return result
    return _planned_loss(loss, y_true, y_pred, weights, axis, reduction, root, param)


@_quiet
def _planned_loss(loss, y_true, y_pred, weights, axis, reduction, root, param):
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
        loss_sum, weight_sum = backend.run(plan, True)
    elif plan.n:
        loss_sums, weight_sums = backend.run_strided(strided_pass(plan), True)
        loss_sum, weight_sum = float(loss_sums[0]), float(weight_sums[0])
    else:
        loss_sum = weight_sum = 0.0
    value = _reduce(plan, loss_sum, weight_sum, root)
    # Reducing every axis by naming them gives a 0-d array (docs/api.md: only axis=None gives a scalar).
    return value if axes is None else np.asarray(value)


def _reduce_axes(plan: Plan, axes: tuple[int, ...], backend, root: bool):
    """The loss reduced along ``axes`` only: one value per remaining index, in an ndarray."""
    out_shape = tuple(size for a, size in enumerate(plan.shape) if a not in axes)
    count = math.prod(plan.shape[a] for a in axes)
    outputs = math.prod(out_shape)
    reduce_outputs = getattr(backend, "reduce_outputs", None)
    if plan.n and plan.reduction != "weighted_mean" and reduce_outputs is not None:
        # The backend divides each output's sum as it finishes it, in the result's dtype.
        values = np.empty(outputs, plan.result_dtype)
        divisor = float(count) if plan.reduction == "mean" else 1.0
        reduce_outputs(strided_pass(plan, axes), values, divisor, root)
        return values.reshape(out_shape)
    if plan.n:
        loss_sums, weight_sums = backend.run_strided(strided_pass(plan, axes), True)
    else:
        loss_sums, weight_sums = np.zeros(outputs), np.zeros(outputs)
    values = loss_sums  # divided in place: no temporary beyond the sums and the result
    if plan.reduction != "sum" and count == 0:
        warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=4)
        values[...] = np.nan
    elif plan.reduction == "mean":
        values /= count
    elif plan.reduction == "weighted_mean":
        if not weight_sums.all():
            zero = np.unravel_index(int(np.argmin(weight_sums != 0)), out_shape)
            raise ValueError(
                "reduction='weighted_mean' needs weights with a non-zero sum along the reduced "
                f"axes; the weights sum to 0 at output index {tuple(int(i) for i in zero)}"
            )
        values /= weight_sums
    if root:
        with np.errstate(invalid="ignore"):
            np.sqrt(values, out=values)
    return values.astype(plan.result_dtype, copy=False).reshape(out_shape)


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

def mse_grad(
    y_true: ArrayLike, y_pred: ArrayLike, weights: ArrayLike | None = None, *,
    reduction: Reduction = "mean", out: FloatArray | None = None,
) -> FloatArray:
    """Gradient of :func:`mse` with respect to ``y_pred``: ``2 w (y_pred - y_true) / D``.

    ``D`` is the number of elements ("mean"), the sum of the weights ("weighted_mean") or 1
    ("sum", and "none", which gives the element-wise derivative). Arguments and special
    values as for :func:`mse`.

    Returns an ndarray of y_pred's shape and own float dtype (float16 kept, whatever object
    carried it; float64 for integer y_pred), or ``out`` itself: any writable ndarray of that
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


def _grad_pass(loss, y_true, y_pred, weights, reduction, out, *, want_loss, param=0.0):
    """A loss's gradient (with its value: ``want_loss``): the active backend's fast path (if
    any) or the planned path."""
    fast = _backends.fast_call
    if fast is not None and out is None:
        p = _fast_param(loss, param)
        if p is not None:
            result = fast(loss.code, p, y_true, y_pred, weights, reduction, want_loss, True)
            if result is not None:
                return result
    return _planned_grad_pass(loss, y_true, y_pred, weights, reduction, out, want_loss, param)


@_quiet
def _planned_grad_pass(loss, y_true, y_pred, weights, reduction, out, want_loss, param):
    check_reduction(reduction)
    param = loss.check_param(param)
    plan = loss_plan(loss, y_true, y_pred, weights, reduction, param)
    out = check_out(out, plan)
    backend = _backends.active()
    strided = not _flat_output(plan, out)
    # The divisor must be known before the first gradient element is written: with
    # "weighted_mean" that takes a pass over the weights alone.
    if reduction == "weighted_mean" and plan.n:
        if strided:
            weight_sum = float(backend.run_strided(strided_pass(plan), False, weights_only=True)[1][0])
        else:
            weight_sum = backend.weight_sum(plan)
    else:
        weight_sum = float(plan.n)
    divisor = _divisor(plan, weight_sum) if plan.n else 1.0
    scale = loss.grad_scale
    if strided:
        return _strided_grad_pass(plan, out, backend, scale, divisor, weight_sum, want_loss)
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


def _flat_output(plan: Plan, out) -> bool:
    """Whether the 1-d kernels can write the gradient: flat inputs and a C-contiguous (or no)
    ``out``; otherwise the strided pass writes it where it lies."""
    return plan.flat and (out is None or (out.flags.c_contiguous and out.flags.aligned))


def _strided_grad_pass(plan: Plan, out, backend, scale, divisor, weight_sum, want_loss):
    """The gradient pass over arrays in any layout; a fresh gradient takes y_pred's layout."""
    pred = plan.arrays[1]
    result = np.empty_like(pred, dtype=plan.grad_dtype) if out is None else out
    # float16 gradients are computed in float32, then rounded once into the result.
    target = _base(result) if result.dtype == pred.dtype else np.empty_like(result, dtype=pred.dtype, subok=False)
    losses = None
    if want_loss and plan.reduction == "none":
        losses = np.empty_like(pred, dtype=plan.result_dtype)
    value = None
    if plan.n:
        sums = backend.run_strided(
            strided_pass(plan, grad=target, elementwise=losses),
            want_loss and losses is None, scale, divisor,
        )
        if sums is not None:
            value = _reduce(plan, float(sums[0][0]), weight_sum)
    elif want_loss and losses is None:
        value = _reduce(plan, 0.0, weight_sum)
    if losses is not None:
        value = losses
    if target.dtype != result.dtype:
        np.copyto(result, target, casting="unsafe")
    return (value, result) if want_loss else result


def _grad_buffers(plan: Plan, out):
    """Where the kernel writes the gradient, what is returned, and whether to copy between.

    The kernel writes 1-D C-contiguous arrays of y_pred's kernel dtype; a float16 ``out``
    gets a temporary that is copied in afterwards.
    """
    result = _backends.new_gradient(plan.shape, plan.grad_dtype) if out is None else out
    if result.dtype == plan.y_pred.dtype:
        return _base(result).reshape(-1), result, False
    return np.empty(plan.n, plan.y_pred.dtype), result, True


def _base(array: np.ndarray) -> np.ndarray:
    """``array`` as a plain ndarray (a view of an ``np.memmap`` or other subclass)."""
    return array if type(array) is np.ndarray else array.view(np.ndarray)


# ---- the L2 penalty -----------------------------------------------------------------------

def l2_penalty(params: ArrayLike | Iterable[ArrayLike], lam: SupportsFloat) -> FloatScalar:
    """The L2 regularisation term ``lam * sum(params**2)``, as a NumPy scalar.

    Parameters
    ----------
    params : array_like or sequence of array_like
        One array of any shape and layout, or a list, tuple or iterator of arrays of any
        shapes (``model.parameters()``, a list of layer weights): the penalty over all of
        their elements, in one call.
    lam : float, int, 0-d array or 0-d tensor
        The penalty strength, a real number >= 0.

    Returns
    -------
    numpy.float32 or numpy.float64
        float32 when every array is float32 (or float16), else float64.  The sum of squares
        is accumulated in float64 and rescaled by a power of two where it would overflow, so
        the result is inf only where the penalty itself exceeds the result dtype's range.

    Raises
    ------
    TypeError, ValueError
        For a ``lam`` that is not a real number >= 0, or arrays fastl2 cannot read.

    >>> import fastl2
    >>> fastl2.l2_penalty([1.0, -2.0, 2.0], 0.5)
    np.float64(4.5)
    >>> import numpy as np
    >>> fastl2.l2_penalty([np.ones((2, 2)), np.full(3, 2.0)], 0.5)
    np.float64(8.0)
    """
    return _l2_penalty(params, check_lam(lam))


@_quiet
def _l2_penalty(params, lam: float):
    params, arrays = _parameter_arrays(params)
    plans = [penalty_plan(params)] if arrays is None else [
        penalty_plan(array, f"params[{i}]") for i, array in enumerate(arrays)
    ]
    single = bool(plans) and all(plan.result_dtype == np.float32 for plan in plans)
    backend = _backends.active()
    total = math.fsum(_square_sum(plan, backend) for plan in plans)
    if math.isinf(total):
        # An overflow of the float64 sum itself: sum the squares of params * 2**-600 instead.
        scaled = math.fsum(_square_sum(plan, backend, _PENALTY_SCALE) for plan in plans)
        value = _scaled_product(lam, scaled, 2 * _PENALTY_EXPONENT) if math.isfinite(scaled) else lam * scaled
    elif total < _PENALTY_TINY and lam > 1.0:
        # Squares in (or below) the subnormals, lost or rounded coarsely, that lam may bring
        # back into range: sum the squares of params * 2**600 instead (exact scaling).
        scaled = math.fsum(_square_sum(plan, backend, 1.0 / _PENALTY_SCALE) for plan in plans)
        value = _scaled_product(lam, scaled, -2 * _PENALTY_EXPONENT)
    else:
        value = lam * total
    return (np.float32 if single else np.float64)(value)


#: Where a sum of squares overflows float64 it is taken again of the params times this
#: power of two (exactly, but for squares some 2**-1000 below the largest).
_PENALTY_EXPONENT = 600
_PENALTY_SCALE = 2.0 ** -_PENALTY_EXPONENT
#: Below this a sum of squares may have lost bits to the subnormals (2**-1022 * 2**53).
_PENALTY_TINY = 2.0 ** -969


def _square_sum(plan: Plan, backend, scale: float = 1.0) -> float:
    if not plan.n:
        return 0.0
    if scale != 1.0:
        # In float64, whatever params' dtype: 2**600 is inf in float32 (and 0 * inf is nan).
        plan = penalty_plan(np.multiply(plan.arrays[1], scale, dtype=np.float64))
    if plan.flat:
        return backend.run(plan, True)[0]
    return float(backend.run_strided(strided_pass(plan), True)[0][0])


def _scaled_product(a: float, b: float, exponent: int) -> float:
    """``a * b * 2**exponent`` rounded once (barring subnormal results), overflowing to inf."""
    if a == 0.0 or b == 0.0:
        return 0.0
    (ma, ea), (mb, eb) = math.frexp(a), math.frexp(b)
    try:
        return math.ldexp(ma * mb, ea + eb + exponent)  # (subnormal results: rounded twice)
    except OverflowError:
        return math.inf


@overload
def l2_penalty_grad(  # (an ndarray iterates too: this, the runtime's first test, wins)
    params: ArrayObject, lam: SupportsFloat, *, out: FloatArray | None = None,
) -> FloatArray: ...
@overload
def l2_penalty_grad(  # (a sequence of NumPy scalars is one 1-d array, not a list)
    params: Iterable[np.generic], lam: SupportsFloat, *,
    out: FloatArray | None = None,
) -> FloatArray: ...
@overload
def l2_penalty_grad(
    params: Iterable[ArrayObject], lam: SupportsFloat, *,
    out: Sequence[FloatArray] | None = None,
) -> list[FloatArray]: ...
@overload
def l2_penalty_grad(
    params: ArrayLike, lam: SupportsFloat, *, out: FloatArray | None = None,
) -> FloatArray: ...
@overload
def l2_penalty_grad(
    params: ArrayLike | Iterable[ArrayLike], lam: SupportsFloat, *,
    out: FloatArray | Sequence[FloatArray] | None = None,
) -> FloatArray | list[FloatArray]: ...
def l2_penalty_grad(
    params: ArrayLike | Iterable[ArrayLike], lam: SupportsFloat, *,
    out: FloatArray | Sequence[FloatArray] | None = None,
) -> FloatArray | list[FloatArray]:
    """Gradient of :func:`l2_penalty`: ``2 * lam * params`` (``out=params`` updates in place).

    Parameters
    ----------
    params : array_like or sequence of array_like
        As for :func:`l2_penalty`.
    lam : float, int, 0-d array or 0-d tensor
        The penalty strength, a real number >= 0.
    out : ndarray or list of ndarray, optional
        Where to write the gradient: an array of params' shape and float dtype (params itself
        for an in-place update), or for a sequence of arrays a list (or tuple) of one such
        array each.

    Returns
    -------
    ndarray, or a list of ndarrays for a sequence of arrays
        Shaped like ``params`` (each of them), in its float dtype (float64 for integers).
        ``2 * lam * params`` is computed without an intermediate overflow: it is inf only
        where the gradient itself exceeds the dtype's range.  A sequence of arrays is a list,
        tuple or iterator whose items all are arrays of their own (ndarrays, tensors: objects
        with ``__array__`` or ``__dlpack__``, NumPy scalars excepted); anything else (a list
        of numbers or of NumPy scalars, nested lists) is one array.  Type checkers see the
        same rule: ``NDArray[numpy.floating[Any]]`` for one array,
        ``list[NDArray[numpy.floating[Any]]]`` for a sequence of arrays, their union where
        the items' types do not tell.

    Raises
    ------
    TypeError, ValueError
        As for :func:`l2_penalty`, and for an ``out`` of the wrong type, shape or dtype,
        read-only, or overlapping params other than in place.

    >>> import fastl2
    >>> fastl2.l2_penalty_grad([1.0, -2.0], 0.25)
    array([ 0.5, -1. ])
    """
    lam = check_lam(lam)
    params, arrays = _parameter_arrays(params)
    if arrays is None:
        return _l2_penalty_grad(params, lam, out, "params")
    if out is not None and (not isinstance(out, (list, tuple)) or len(out) != len(arrays)):
        raise TypeError(
            f"out must be None or a list of {len(arrays)} arrays (one per array of params); "
            f"got {type(out).__name__}" + (f" of {len(out)}" if isinstance(out, (list, tuple)) else "")
        )
    if out is not None:
        _check_outs_apart(out, arrays)
    return [
        _l2_penalty_grad(array, lam, None if out is None else out[i], f"params[{i}]")
        for i, array in enumerate(arrays)
    ]


def _check_outs_apart(outs, arrays) -> None:
    """Each ``out[i]`` may overlap ``params[i]`` (in place, checked with it), but no other
    array of params and no other out: the gradients are written one array after the other."""
    read = [penalty_plan(array, f"params[{j}]").arrays[1] for j, array in enumerate(arrays)]
    for i, out in enumerate(outs):
        if not isinstance(out, np.ndarray):
            continue  # (check_out names it)
        others = [(f"params[{j}]", a) for j, a in enumerate(read) if j != i]
        others += [(f"out[{j}]", o) for j, o in enumerate(outs[:i]) if isinstance(o, np.ndarray)]
        for name, other in others:
            if overlaps(out, other):
                raise ValueError(
                    f"out[{i}] overlaps {name} in memory; out[{i}] may be params[{i}] itself "
                    "(in place) but must not overlap any other array of params or out"
                )


@_quiet
def _l2_penalty_grad(params, lam: float, out, name: str):
    plan = penalty_plan(params, name)
    out = check_out(out, plan, name)
    backend = _backends.active()
    scale, divisor = _penalty_grad_factors(lam, plan.arrays[1].dtype)
    if not _flat_output(plan, out):
        pred = plan.arrays[1]
        result = np.empty_like(pred, dtype=plan.grad_dtype) if out is None else out
        target = _base(result) if result.dtype == pred.dtype else np.empty_like(result, dtype=pred.dtype, subok=False)
        if plan.n:
            backend.run_strided(strided_pass(plan, grad=target), False, scale, divisor)
        if target.dtype != result.dtype:
            np.copyto(result, target, casting="unsafe")
        return result
    target, result, copy_back = _grad_buffers(plan, out)
    backend.run(plan, False, target, scale, divisor)
    if copy_back:
        np.copyto(result, target.reshape(plan.shape), casting="unsafe")
    return result


def _penalty_grad_factors(lam: float, kernel_dtype: np.dtype) -> tuple[float, float]:
    """(grad_scale, grad_divisor) for ``2 * lam * theta`` without an intermediate overflow.

    The kernels compute ``(scale * theta) / divisor`` for float64 gradients and
    ``(scale / divisor) * theta`` (rounded to float32) for float32 ones.  Where ``2 * lam``
    overflows, float64 takes ``(lam * theta) / 0.5`` (exact but for the one rounding of
    ``lam * theta``), and float32 a factor of 2**300, which gives every float32 theta the
    same result as 2 * lam would (inf, or 0 for theta = 0).
    """
    if math.isfinite(2.0 * lam):
        return 2.0 * lam, 1.0
    if kernel_dtype == np.float64:
        return lam, 0.5
    return 2.0 ** 300, 1.0


def _is_array_object(value) -> bool:
    """An array of its own (not a Python or NumPy scalar, nor a nested list of numbers)."""
    if isinstance(value, np.generic):
        return False
    return isinstance(value, np.ndarray) or hasattr(value, "__dlpack__") or hasattr(value, "__array__")


def _parameter_arrays(params):
    """``(params, arrays)``: ``arrays`` is the list of arrays when ``params`` is a sequence or
    iterator of arrays (``params`` then the list too), else None."""
    if _is_array_object(params) or isinstance(params, (str, bytes)):
        return params, None
    if isinstance(params, dict):
        raise TypeError(
            f"params must be an array or a sequence or iterator of arrays; got a {type(params).__name__} "
            "(pass params.values() for its arrays)"
        )
    if not isinstance(params, (list, tuple)):
        if not hasattr(params, "__iter__"):
            return params, None
        params = list(params)  # an iterator (model.parameters()) or a view (dict.values())
        if not params:
            return params, []
    if params and all(_is_array_object(item) for item in params):
        return params, list(params)
    return params, None
