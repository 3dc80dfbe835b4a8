"""The L2 penalty ``lam * sum(params**2)`` and its gradient, over one array or a sequence of
arrays (a model's parameters), without intermediate overflow or underflow."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, overload

import numpy as np

from . import _backends, _exact
from ._passes import base, first_sums, flat_output, grad_buffers, quiet
from ._plan import Plan, check_lam, check_out, penalty_plan, strided_pass
from ._plan import _overlaps as overlaps

if TYPE_CHECKING:  # (annotations are strings at run time: nothing more to import)
    from collections.abc import Iterable, Sequence
    from typing import SupportsFloat

    from ._typing import ArrayLike, ArrayObject, FloatArray, FloatScalar

__all__ = ["l2_penalty", "l2_penalty_grad"]


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


@quiet
def _l2_penalty(params, lam: float):
    params, arrays = _parameter_arrays(params)
    plans = [penalty_plan(params)] if arrays is None else [
        penalty_plan(array, f"params[{i}]") for i, array in enumerate(arrays)
    ]
    single = bool(plans) and all(plan.result_dtype == np.float32 for plan in plans)
    backend = _backends.active()
    parts = [part for plan in plans for part in _square_sums(plan, backend, single)]
    try:
        total = math.fsum(x for part in parts for x in part)  # (the parts' exact sum, rounded once)
    except OverflowError:  # (finite parts whose total is past float64's range: inf, below)
        total = math.inf
    count = sum(plan.n for plan in plans)
    if not single and math.isfinite(total) and lam != 0.0:
        # lam * the sum of squares, certified (fastl2._exact.finish_float64: the parts' exact
        # sum as a double-double, its rest rounded once: within 2**-106 of it, which the
        # bound's spare 1024 u**2 holds), else exact (every param is finite: the sum is).
        # One part is the kernels' double-double already (its value rounded once, the rest).
        if len(parts) == 1 and total == parts[0][0]:
            rest = parts[0][1]
        else:
            rest = float(sum((Fraction(x) for part in parts for x in part), Fraction(0)) - Fraction(total))
        value, certain = _exact.finish_float64_scalar(total, 0.0, rest, 0.0, count, False, False, scale=lam)
        if certain:
            return np.float64(value)
        exact = sum((_exact.exact_sums(0, 0.0, None, plan.arrays[1], None)[0] for plan in plans), Fraction(0))
        return np.float64(_exact.round_fraction(exact * Fraction(lam), np.float64))
    if math.isinf(total):
        # An overflow of the float64 sum itself: sum the squares of params * 2**-600 instead.
        scaled = math.fsum(x for plan in plans for x in _square_sum(plan, backend, _PENALTY_SCALE))
        value = _scaled_product(lam, scaled, 2 * _PENALTY_EXPONENT) if math.isfinite(scaled) else lam * scaled
    elif total < _PENALTY_TINY and lam > 1.0:
        # Squares in (or below) the subnormals, lost or rounded coarsely, that lam may bring
        # back into range: sum the squares of params * 2**600 instead (exact scaling).
        scaled = math.fsum(x for plan in plans for x in _square_sum(plan, backend, 1.0 / _PENALTY_SCALE))
        value = _scaled_product(lam, scaled, -2 * _PENALTY_EXPONENT)
    else:
        value = lam * total
    if single and not _exact.certain(value, count):
        # Within 2**-38 of a float32 rounding boundary: lam * the exact sum, rounded once.
        exact = sum((_exact.exact_sums(0, 0.0, None, plan.arrays[1], None)[0] for plan in plans), Fraction(0))
        return np.float32(_exact.round_fraction(exact * Fraction(lam), np.float32))
    return (np.float32 if single else np.float64)(value)


#: Where a sum of squares overflows float64 it is taken again of the params times this
#: power of two (exactly, but for squares some 2**-1000 below the largest).
_PENALTY_EXPONENT = 600
_PENALTY_SCALE = 2.0 ** -_PENALTY_EXPONENT
#: Below this a sum of squares may have lost bits to the subnormals (2**-1022 * 2**53).
_PENALTY_TINY = 2.0 ** -969


#: Elements per float64 chunk of a float32 array in a float64 penalty (see _square_sums).
_WIDEN_CHUNK = 1 << 16


def _square_sums(plan: Plan, backend, single: bool) -> list[tuple[float, float]]:
    """Sums of squares whose total is that of ``plan``'s array, each a double-double (its
    value rounded once and the rest: the backends' ``run``), each within half an ulp.

    A float32 array's own kernel sums in plain float64 lanes, accurate enough for a float32
    result; in a float64 penalty (a list that mixes float32 and float64 arrays) it is read in
    float64 chunks of _WIDEN_CHUNK elements (cache-sized: no copy of the whole array), whose
    sums the compensated float64 kernel gives within half an ulp.  The caller adds all the
    parts with one math.fsum: parts rounded within half an ulp each, all of one sign, leave
    the total within one ulp (Σ ulp(p_i) / 2 <= ulp(Σ p_i))."""
    if single or plan.result_dtype != np.float32 or plan.n <= 1:
        return [_square_sum(plan, backend)]
    flat = plan.arrays[1].reshape(-1)  # (a view when it can be; a float32 copy otherwise)
    return [
        _square_sum(penalty_plan(flat[start:start + _WIDEN_CHUNK].astype(np.float64)), backend)
        for start in range(0, flat.size, _WIDEN_CHUNK)
    ]


def _square_sum(plan: Plan, backend, scale: float = 1.0) -> tuple[float, float]:
    """The sum of squares of ``plan``'s array (times ``scale``) as a double-double."""
    if not plan.n:
        return 0.0, 0.0
    if scale != 1.0:
        # In float64, whatever params' dtype: 2**600 is inf in float32 (and 0 * inf is nan).
        plan = penalty_plan(np.multiply(plan.arrays[1], scale, dtype=np.float64))
    sums = backend.run(plan, True) if plan.flat else first_sums(backend.run_strided(strided_pass(plan), True))
    return sums[0], sums[2]


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


@quiet
def _l2_penalty_grad(params, lam: float, out, name: str):
    plan = penalty_plan(params, name)
    out = check_out(out, plan, name)
    backend = _backends.active()
    scale, divisor = _penalty_grad_factors(lam, plan.arrays[1].dtype)
    if not flat_output(plan, out):
        pred = plan.arrays[1]
        result = np.empty_like(pred, dtype=plan.grad_dtype) if out is None else out
        target = base(result) if result.dtype == pred.dtype else np.empty_like(result, dtype=pred.dtype, subok=False)
        if plan.n:
            backend.run_strided(strided_pass(plan, grad=target), False, scale, divisor)
        if target.dtype != result.dtype:
            np.copyto(result, target, casting="unsafe")
        return result
    target, result, copy_back = grad_buffers(plan, out)
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
    """An array of its own (not a Python or NumPy scalar, nor a nested list of numbers): an
    ndarray, a DLPack or ``__array__`` producer, or a buffer (memoryview, array.array: read
    whole, never iterated -- a memoryview of an unaligned or 2-d array cannot be)."""
    if isinstance(value, np.generic):
        return False
    if isinstance(value, np.ndarray) or hasattr(value, "__dlpack__") or hasattr(value, "__array__"):
        return True
    try:
        memoryview(value)  # (the buffer protocol)
    except TypeError:
        return False
    return True


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
