"""fastl2's losses and scikit-learn's regression metrics on Dask arrays, correctly rounded.

``fastl2.dask.mse(y_true, y_pred)`` of two ``dask.array`` arrays is ``fastl2.mse`` of the
whole arrays, to the last bit, for every chunking, on any scheduler (threads, processes, a
``distributed`` cluster): the exact value of the inputs reduced once, rounded once.  The
functions compute (they return NumPy values, as ``dask_ml.metrics`` does by default, not
lazy arrays; see "Why eager" below) and need ``dask[array]`` (``pip install 'dask[array]'``, or
``pip install '.[dask]'`` from fastl2's checkout); ``import fastl2`` never imports Dask.

How (one ``dask.array.reduction``):

- **chunk step**: fastl2's kernels on each block (one pass, the block's elements only) give
  the block's loss sum and weight sum as double-doubles (``hi + lo``) and a proven bound on
  their distance from the exact sums (``fastl2._exact.float64_bound`` for float64 results,
  ``float32_bound`` for float32 ones, relative to the sum of the terms' magnitudes, measured
  by a second pass over ``|weights|`` in a block whose weights are not all >= 0);
- **combine step**: two blocks' sums are added in double-double (Knuth's TwoSum), their bounds
  added, plus the addition's own error (``_MERGE_HI``: about 2**-104 of the sums);
- **aggregate** (on the client): every real within the bound of the merged sums, divided by the
  count or the weight sum (and rooted for ``rmse``), is rounded to the result dtype
  (``fractions.Fraction`` arithmetic, exact); if all round to the same value, that value is
  the exact result rounded once, whatever the chunking and the order of the merges, and it is
  returned.  Where they do not (a result within the bound of a rounding boundary: about one
  output in 2**14 for float32 results, far fewer for float64; or a non-finite sum, an empty
  mean, weights whose sum may be 0), a second reduction computes the blocks' exact states
  (:class:`fastl2._state.ExactState`, the streaming metrics' state: exact sums as integers)
  and merges them exactly: slower (some 100 ns an element), the same bits.

The exact states could be the combine step's states every time, but computing one costs some
100 times a kernel pass (exact integer sums of every term), which Dask's own
``((a - b) ** 2).mean()`` beats; the bounded sums cost one pass, and the certificate proves
the same result.  (References: D. E. Knuth, TAOCP vol. 2, 4.2.2, TwoSum; S. M. Rump, T. Ogita
and S. Oishi, "Accurate floating-point summation", SIAM J. Sci. Comput. 31 (2008), for the
error bounds of summation in double-double; the bounds themselves: fastl2._exact.)

Why eager: which of the two reductions runs is decided by the first one's result, which a
lazy Dask graph cannot express.

Values: as ``fastl2.mse`` of the same arrays, computed on one machine (a NumPy scalar of the
result dtype for ``axis=None``, an ndarray for ``axis=0``), wherever that call is correctly
rounded; elsewhere the exact value rounded once (README, "Dask").  Errors: those of ``fastl2.mse``, raised
before anything is computed where they depend on shapes, dtypes and arguments only.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import _backends, _exact
from ._losses import LOSSES
from ._plan import check_axis, check_reduction, loss_plan, strided_pass

__all__ = ["mse", "mae", "rmse", "huber", "mean_squared_error", "root_mean_squared_error",
           "mean_absolute_error"]

#: A block's (or a merge's) sums: double-doubles and their bounds (absolute, >= 0), the count.
SUMMARY = np.dtype([("loss", "f8"), ("loss_lo", "f8"), ("loss_err", "f8"), ("weight", "f8"),
                    ("weight_lo", "f8"), ("weight_err", "f8"), ("count", "i8")])
_SLACK = 1.0 + 2.0 ** -30  # (the bounds' first-order terms, and sum(|terms|) <= |sum| (1 + 2 rel))
#: A double-double addition's error (_add): the sum of the rests and TwoSum's error, rounded
#: twice, at most 2.01 u (|l1| + |l2|) + 1.02 u**2 (|h1| + |h2|) with u = 2**-53 (no
#: assumption on the rests' size), and 2**-1075 per rounding among the subnormals.
_MERGE_HI, _MERGE_LO, _MERGE_ABS = 2.0 ** -100, 2.0 ** -51, 2.0 ** -1070


def _dask():
    try:
        import dask.array as da
    except ImportError as error:  # pragma: no cover (the test extra installs dask)
        raise ImportError("fastl2.dask needs Dask, which is not installed here: pip install 'dask[array]' "
                          "distributed (or, from fastl2's source checkout, pip install '.[dask]')") from error
    return da


# ------------------------------------------------------------------------------ the chunk step


def _sums(plan, per_output: bool):
    """The plan's (loss, weight, loss_lo, weight_lo) sums as float64 arrays of its outputs."""
    backend = _backends.active()
    outputs = plan.shape[1] if per_output else 1
    if plan.n == 0:
        return tuple(np.zeros(outputs) for _ in range(4))
    if per_output:
        return tuple(np.asarray(a, np.float64) for a in backend.run_strided(strided_pass(plan, (0,)), True))
    if plan.flat:
        sums = backend.run(plan, True)
    else:
        sums = tuple(float(a[0]) for a in backend.run_strided(strided_pass(plan), True))
    return tuple(np.array([s], np.float64) for s in sums)


def _summarize(y_true, y_pred, weights, *, code: int, param: float, per_output: bool):
    """A block's SUMMARY: (1,) * ndim (pooled) or (1, columns) (per output, 2-d blocks)."""
    entry = LOSSES[code]
    with np.errstate(all="ignore"):
        plan = loss_plan(entry, y_true, y_pred, weights, "sum", param)
        loss, weight, loss_lo, weight_lo = _sums(plan, per_output)
        count = plan.shape[0] if per_output else plan.n
        weighted = weights is not None
        magnitude, weight_magnitude = np.abs(loss), (np.abs(weight) if weighted else np.full(loss.shape, float(count)))
        if weighted and np.asarray(weights).size and not (np.asarray(weights) >= 0).all():
            # terms of both signs: the bound is relative to the sums of their magnitudes
            plan = loss_plan(entry, y_true, y_pred, np.abs(np.asarray(weights)), "sum", param)
            magnitude, weight_magnitude = (np.abs(a) for a in _sums(plan, per_output)[:2])
        magnitude, weight_magnitude = magnitude * _SLACK, weight_magnitude * _SLACK
        if plan.result_dtype == np.float32:
            rel, absolute = _exact.float32_bound(count), 0.0
        else:
            rel = _exact.float64_bound(count)[0]
            absolute = (weight_magnitude + count) * 2.0 ** -1072
        out = np.empty(loss.shape, SUMMARY)
        out["loss"], out["loss_lo"], out["loss_err"] = loss, loss_lo, (rel * magnitude + absolute) * _SLACK
        out["weight"], out["weight_lo"] = (weight, weight_lo) if weighted else (0.0, 0.0)
        out["weight_err"] = rel * weight_magnitude * _SLACK if weighted else 0.0
        out["count"] = count
    ndim = np.ndim(y_pred)
    return out.reshape((1,) * ndim if not per_output else (1, loss.size))


# ---------------------------------------------------------------------------- the combine step


def _two_sum(a, b):
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


def _add(x, y):
    """The SUMMARY of two summaries' elements (arrays of one shape)."""
    out = np.empty(np.shape(x), SUMMARY)
    with np.errstate(all="ignore"):
        for name in ("loss", "weight"):
            h1, l1, h2, l2 = x[name], x[name + "_lo"], y[name], y[name + "_lo"]
            s, e = _two_sum(h1, h2)
            h, l = _two_sum(s, (l1 + l2) + e)
            out[name], out[name + "_lo"] = h, l
            out[name + "_err"] = (x[name + "_err"] + y[name + "_err"]
                                  + _MERGE_HI * (np.abs(h1) + np.abs(h2)) + _MERGE_LO * (np.abs(l1) + np.abs(l2))
                                  + _MERGE_ABS)
    out["count"] = x["count"] + y["count"]
    return out


def _fold(x, axis, keepdims, add):
    """``x`` (a Dask reduction's block of partial results) added along ``axis`` by ``add`` (of
    two arrays of one shape): Dask's combine and aggregate steps, for both roads."""
    axis = tuple(range(x.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
    kept = tuple(a for a in range(x.ndim) if a not in axis)
    moved = x.transpose(axis + kept).reshape((math.prod(x.shape[a] for a in axis),) + tuple(x.shape[a] for a in kept))
    total = moved[0, ...].copy()  # (a 0-d array where no axis is kept)
    for j in range(1, moved.shape[0]):
        total = add(total, moved[j, ...])
    if keepdims:
        total = total.reshape(tuple(1 if a in axis else x.shape[a] for a in range(x.ndim)))
    return total


def _merge(x, axis=None, keepdims=False, **_):
    """The summaries of ``x`` added along ``axis``."""
    return _fold(x, axis, keepdims, _add)


def _identity(x, axis=None, keepdims=True, **_):
    return x


# --------------------------------------------------------------------------------- the result


def _same(a: float, b: float) -> bool:
    return np.float64(a).tobytes() == np.float64(b).tobytes()


def _certified(summary, reduction: str, root: bool, dtype):
    """The exact result rounded once, or None where the bounds do not decide it."""
    values = [summary[name].item() for name in ("loss", "loss_lo", "loss_err", "weight", "weight_lo", "weight_err")]
    count = int(summary["count"])
    if count == 0 or not all(math.isfinite(v) for v in values):
        return None
    loss, loss_lo, loss_err, weight, weight_lo, weight_err = map(Fraction, values)
    s = loss + loss_lo
    numerators = (s - loss_err, s + loss_err)
    if reduction == "weighted_mean":
        w = weight + weight_lo
        if abs(w) <= weight_err:
            return None  # (the weight sum may be 0, or of either sign)
        divisors = (w - weight_err, w + weight_err)
    else:
        divisors = (Fraction(count) if reduction == "mean" else Fraction(1),)
    quotients = [n / d for n in numerators for d in divisors]
    low, high = min(quotients), max(quotients)
    if root:
        if low < 0:
            return None
        rounded = [_exact.round_sqrt(q, dtype) for q in (low, high)]
    else:
        rounded = [_exact.round_fraction(q, dtype) for q in (low, high)]
    if not _same(*rounded) or rounded[0] == 0.0:  # (an exact 0's sign: the exact road's)
        return None
    return rounded[0]


# ------------------------------------------------------------------------------------ the calls


def _as_dask(value):
    da = _dask()
    if value is None:
        return None
    if isinstance(value, da.Array):
        return value
    array = np.asarray(value)
    return da.from_array(array, chunks=array.shape or ())


def _check(entry, y_true, y_pred, weights, reduction: str, axis, param: float):
    """Checks as fastl2.mse does, on tiny arrays of the operands' dtypes and shapes: the
    errors come before anything is computed.  Returns (per_output, result dtype)."""
    check_reduction(reduction, ("mean", "weighted_mean", "sum"))
    if any(math.isnan(s) for a in (y_true, y_pred, weights) if a is not None for s in a.shape):
        raise ValueError("fastl2.dask needs arrays of known shape (compute_chunk_sizes() first)")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape; got {y_true.shape} and {y_pred.shape}")
    if y_pred.ndim not in (1, 2):
        raise ValueError(f"fastl2.dask takes 1-d or 2-d arrays (samples, outputs); got {y_pred.ndim}-d")
    check_axis(axis, y_pred.ndim, reduction)  # (fastl2.mse's errors for what it refuses too)
    if axis not in (None, 0) or isinstance(axis, bool):
        raise ValueError(f"axis must be None (every element) or 0 (one result per output); got {axis!r}")
    if weights is not None and weights.shape not in (y_pred.shape, y_pred.shape[:1]):
        raise ValueError(f"weights must have y_pred's shape {y_pred.shape} or one weight per sample "
                         f"({y_pred.shape[0]},); got {weights.shape}")
    tiny = [None if a is None else np.zeros((1,) * a.ndim, a.dtype) for a in (y_true, y_pred, weights)]
    plan = loss_plan(entry, *tiny, "sum", param)  # (the dtype errors of fastl2.mse)
    return axis == 0 and y_pred.ndim == 2, plan.result_dtype


def _blocks(function, y_true, y_pred, weights, columns: bool, dtype, **kwargs):
    """The blockwise chunk step: one output block of ``dtype`` per input block, of one element
    per output of the block where ``columns`` (a SUMMARY per column), else of one."""
    da = _dask()
    index = "ij"[:y_pred.ndim]
    args = [y_true, index, y_pred, index]
    args += [None, None] if weights is None else [weights, index[:weights.ndim]]
    adjust = {"i": 1} if columns else {k: 1 for k in index}
    return da.blockwise(function, index, *args, dtype=dtype, adjust_chunks=adjust, align_arrays=True,
                        meta=np.empty((0,) * y_pred.ndim, dtype), **kwargs)


def _reduce(loss: str, y_true, y_pred, weights, reduction: str, axis, param: float, root: bool,
            split_every, exact: bool = False):
    da = _dask()
    entry = next(e for e in LOSSES if e.name == loss)
    param = entry.check_param(param)
    y_true, y_pred, weights = (_as_dask(a) for a in (y_true, y_pred, weights))
    # (a dimension of length 1 in several chunks, some empty: blockwise would broadcast it)
    y_true, y_pred, weights = (None if a is None else a.rechunk(
        {i: -1 for i, size in enumerate(a.shape) if size == 1 and len(a.chunks[i]) > 1})
        for a in (y_true, y_pred, weights))
    per_output, dtype = _check(entry, y_true, y_pred, weights, reduction, axis, param)
    if reduction == "weighted_mean" and weights is None:
        reduction = "mean"  # (fastl2.mse: weighted_mean without weights is the mean)
    axes = (0,) if per_output else tuple(range(y_pred.ndim))
    values = None
    if not exact:
        summaries = _blocks(_summarize, y_true, y_pred, weights, per_output, SUMMARY,
                            code=entry.code, param=param, per_output=per_output)
        merged = da.reduction(summaries, _identity, _merge, combine=_merge, axis=axes, keepdims=False,
                              dtype=SUMMARY, split_every=split_every, concatenate=True,
                              meta=np.empty((0,) * (y_pred.ndim - len(axes)), SUMMARY)).compute()
        merged = np.asarray(merged).reshape(-1)
        values = [_certified(s, reduction, root, dtype) for s in merged]
    if values is None or any(v is None for v in values):
        values = _exact_reduce(entry, y_true, y_pred, weights, reduction, per_output, param, root, split_every)
    if per_output:
        return np.asarray(values, dtype)
    return np.asarray(values[0], dtype) if axis == 0 else dtype.type(values[0])


def _state(y_true, y_pred, weights, *, loss: str, param: float, per_output: bool):
    from ._state import ExactState

    state = ExactState.of(loss, y_true, y_pred, weights, axis=0 if per_output else None, delta=param)
    out = np.empty((1,) * np.ndim(y_pred), object)
    out.reshape(-1)[0] = state
    return out


_merge_pair = np.frompyfunc(lambda a, b: a.merge(b), 2, 1)  # (ExactStates, element by element)


def _merge_states(x, axis=None, keepdims=False, **_):
    """The exact states of ``x`` (an object array) merged along ``axis``."""
    return _fold(x, axis, keepdims, lambda a, b: np.asarray(_merge_pair(a, b), object))


def _exact_reduce(entry, y_true, y_pred, weights, reduction, per_output, param, root, split_every):
    """The result from the blocks' exact states, merged exactly (the slow road)."""
    da = _dask()
    # (one state per block, each covering the block's columns)
    states = _blocks(_state, y_true, y_pred, weights, False, object, loss=entry.name, param=param,
                     per_output=per_output)
    axes = (0,) if per_output else tuple(range(y_pred.ndim))
    merged = da.reduction(states, _identity, _merge_states, combine=_merge_states, axis=axes, keepdims=False,
                          dtype=object, split_every=split_every, concatenate=True,
                          meta=np.empty((0,) * (y_pred.ndim - len(axes)), object)).compute()
    merged = np.asarray(merged, object).reshape(-1)
    values, first = [], 0
    for state in merged:
        try:
            values.append(np.asarray(state.result(reduction, root=root)).reshape(-1))
        except ValueError:  # (a zero weight sum: named by its index among all outputs)
            if not state.shape:
                raise
            zero = [o for o, (m, _) in enumerate(state._weight) if m == 0 and state._special[o][1] == 0.0]
            raise ValueError("reduction='weighted_mean' needs weights with a non-zero sum along the reduced "
                             f"axes; the weights sum to 0 at output index ({first + zero[0]},)") from None
        first += int(np.prod(state.shape))
    return np.concatenate(values) if values else np.zeros(0)


# ------------------------------------------------------------------------------ public losses

_ARGUMENTS = """
    Parameters
    ----------
    y_true, y_pred : dask.array.Array (or array-likes, taken as one chunk), shape (n,) or (n, m)
        Targets and predictions, of one shape and any real dtype ``fastl2.mse`` takes; chunked
        any way (the chunks of the three arrays are unified as ``dask.array.blockwise`` does).
    weights : dask.array.Array or None, shape y_pred's or (n,) (one per sample)
        Element weights, of any sign.
    axis : None or 0
        None: one result over every element; 0 (2-d arrays): one result per output (column).
    reduction : "mean", "weighted_mean" or "sum"
        As ``fastl2.mse``'s ("weighted_mean" without weights is the mean).
    split_every : int or dict, optional
        The tree reduction's fan-in (``dask.array.reduction``); the result does not depend on it.

    Returns
    -------
    numpy scalar (axis=None) or numpy.ndarray of shape (m,) (axis=0; 0-d for 1-d arrays): the
    exact value rounded once to float32 (every operand float32 or narrower) or float64, the
    value of ``fastl2.{name}`` on the computed arrays, bit for bit.

    Raises
    ------
    ValueError, TypeError
        What ``fastl2.{name}`` raises for the same shapes, dtypes and arguments (before anything
        is computed), arrays of unknown chunk sizes, arrays of more than two dimensions or an
        ``axis`` other than None or 0; ValueError when computed, as ``fastl2.{name}`` raises it,
        for a "weighted_mean" whose weights sum to exactly 0.
    ImportError
        Without dask installed.
"""


def mse(y_true, y_pred, weights=None, *, axis=None, reduction="mean", split_every=None):
    return _reduce("squared", y_true, y_pred, weights, reduction, axis, 0.0, False, split_every)


def mae(y_true, y_pred, weights=None, *, axis=None, reduction="mean", split_every=None):
    return _reduce("absolute", y_true, y_pred, weights, reduction, axis, 0.0, False, split_every)


def rmse(y_true, y_pred, weights=None, *, axis=None, reduction="mean", split_every=None):
    check_reduction(reduction, ("mean", "weighted_mean"))
    return _reduce("squared", y_true, y_pred, weights, reduction, axis, 0.0, True, split_every)


def huber(y_true, y_pred, weights=None, *, delta=1.0, axis=None, reduction="mean", split_every=None):
    return _reduce("huber", y_true, y_pred, weights, reduction, axis, delta, False, split_every)


_EXAMPLE = """
    Examples
    --------
    >>> import dask.array as da, numpy as np, fastl2.dask
    >>> y_true = da.from_array(np.array([3.0, -0.5, 2.0, 7.0]), chunks=3)
    >>> y_pred = da.from_array(np.array([2.5, 0.0, 2.0, 8.0]), chunks=2)
    >>> fastl2.dask.{name}(y_true, y_pred)
    {value}
"""
mse.__doc__ = ("The mean squared error ``(1/n) sum w (y_pred - y_true)**2`` of Dask arrays (``fastl2.mse``)."
               + _ARGUMENTS.format(name="mse") + _EXAMPLE.format(name="mse", value="np.float64(0.375)"))
mae.__doc__ = ("The mean absolute error ``(1/n) sum w |y_pred - y_true|`` of Dask arrays (``fastl2.mae``)."
               + _ARGUMENTS.format(name="mae") + _EXAMPLE.format(name="mae", value="np.float64(0.5)"))
rmse.__doc__ = ("The root mean squared error of Dask arrays (``fastl2.rmse``: the correctly rounded root of "
                "the exact mean; reduction \"mean\" or \"weighted_mean\")." + _ARGUMENTS.format(name="rmse")
                + _EXAMPLE.format(name="rmse", value="np.float64(0.6123724356957945)"))
huber.__doc__ = ("The Huber loss of Dask arrays (``fastl2.huber``: ``d**2 / 2`` for ``|d| <= delta``, else "
                 "``delta (|d| - delta / 2)``; ``delta`` a finite float > 0)." + _ARGUMENTS.format(name="huber")
                 + _EXAMPLE.format(name="huber", value="np.float64(0.1875)"))


# ------------------------------------------------------------------- scikit-learn's metrics

def _metric_array(value, dtype, name: str):
    """A target or weight array as fastl2.metrics checks it: a Dask array of ``dtype``, 1-d or
    2-d, not empty (array-likes are checked by fastl2.metrics' own check, then wrapped)."""
    from . import metrics

    da = _dask()
    if not isinstance(value, da.Array):
        return da.from_array(metrics._check_array(value, dtype), chunks=-1)
    if value.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a Dask array of real numbers; got dtype {value.dtype}")
    if value.ndim >= 3:
        raise ValueError(f"Found array with dim {value.ndim}, while dim <= 2 is required.")
    if value.ndim == 0:
        raise TypeError(f"Singleton array {value!r} cannot be considered a valid collection.")
    if any(math.isnan(s) for s in value.shape):
        raise ValueError("fastl2.dask needs arrays of known shape (compute_chunk_sizes() first)")
    if value.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={value.shape}) while a minimum of 1 is required.")
    if value.ndim == 2 and value.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={value.shape}) while a minimum of 1 is required.")
    return value.astype(dtype)


def _metric_targets(function: str, y_true, y_pred, sample_weight, multioutput, check_multioutput=True):
    """fastl2.metrics' target checks, for Dask arrays: nothing is computed (the weights'
    "at least one non-zero" and the finiteness checks run where the result needs them)."""
    from . import metrics

    da = _dask()
    metrics._check_parameters(function, y_true, y_pred, sample_weight, multioutput)
    metrics._check_consistent_length(y_true, y_pred, sample_weight)
    floating = [a.dtype for a in (y_true, y_pred, sample_weight) if isinstance(a, da.Array) and a.dtype.kind == "f"]
    others = [a for a in (y_true, y_pred, sample_weight) if a is not None and not isinstance(a, da.Array)]
    dtype = np.result_type(*floating, metrics._floating_dtype(*others)) if floating and others else (
        np.result_type(*floating) if floating else metrics._floating_dtype(*others))
    y_true, y_pred = _metric_array(y_true, dtype, "y_true"), _metric_array(y_pred, dtype, "y_pred")
    if sample_weight is not None:
        in_memory = not isinstance(sample_weight, da.Array)
        sample_weight = _metric_array(sample_weight, dtype if dtype in (np.float32, np.float64) else np.float64,
                                      "sample_weight")
        in_memory_weights = sample_weight.compute() if in_memory else None  # (one chunk, in memory)
        if sample_weight.ndim != 1:
            raise ValueError(
                f"Sample weights must be 1D array or scalar, got {sample_weight.ndim}D array. "
                f"Expected either a scalar value or a 1D array of length {y_true.shape[0]}.")
        if in_memory and not in_memory_weights.any():  # (given in memory: now, in fastl2.metrics' order)
            raise ValueError("Sample weights must contain at least one non-zero number.")
    y_true, y_pred, multioutput = metrics._check_outputs(y_true, y_pred, multioutput, check_multioutput)
    return y_true, y_pred, sample_weight, multioutput


def _check_all_finite(checked) -> None:
    """fastl2.metrics' checks where a result is not finite: the weights not all zero, then
    each array finite (scikit-learn's order and messages), computed together."""
    da = _dask()
    y_true, y_pred, sample_weight = checked
    arrays = [a for a in (y_true, y_pred, sample_weight) if a is not None]
    flags = da.compute(*[(da.isnan(a).any(), da.isinf(a).any()) for a in arrays],
                       *([(sample_weight != 0).any()] if sample_weight is not None else []))
    if sample_weight is not None and not flags[-1]:
        raise ValueError("Sample weights must contain at least one non-zero number.")
    for (has_nan, has_inf), array, name in zip(flags, arrays, ("", "", "sample_weight")):
        where = f"Input {name} contains" if name else "Input contains"
        if has_nan:
            raise ValueError(f"{where} NaN.")
        if has_inf:
            raise ValueError(f"{where} infinity or a value too large for {array.dtype!r}.")


def _metric_loss(kind: str, y_true, y_pred, sample_weight, axis, checked):
    """fastl2.metrics' ``_loss`` of Dask arrays."""
    from . import metrics

    function = {"squared": mse, "absolute": mae, "root": rmse}[kind]
    kernel = metrics._kernel_dtype(y_true.dtype)
    y_true, y_pred = y_true.astype(kernel), y_pred.astype(kernel)
    if sample_weight is None:
        return function(y_true, y_pred, axis=axis)
    try:
        return function(y_true, y_pred, sample_weight, axis=axis, reduction="weighted_mean")
    except ValueError:  # (the weights sum to exactly 0: the only error left once checked)
        _check_all_finite(checked)
        raise ZeroDivisionError("Weights sum to zero, can't be normalized") from None


def _sklearn_metric(kind: str, function: str, y_true, y_pred, sample_weight, multioutput):
    from . import metrics

    args = _metric_targets(function, y_true, y_pred, sample_weight, multioutput,
                           check_multioutput=kind != "root")
    return metrics._metric(kind, args[:3], *args, loss=_metric_loss, check_all_finite=_check_all_finite)


def mean_squared_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    return _sklearn_metric("squared", "mean_squared_error", y_true, y_pred, sample_weight, multioutput)


def root_mean_squared_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    return _sklearn_metric("root", "root_mean_squared_error", y_true, y_pred, sample_weight, multioutput)


def mean_absolute_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    return _sklearn_metric("absolute", "mean_absolute_error", y_true, y_pred, sample_weight, multioutput)


_METRIC_DOC = """{what} of Dask arrays: ``fastl2.metrics.{name}`` (scikit-learn's
    ``sklearn.metrics.{name}``), computed as fastl2.dask's losses compute (the chunk step's
    kernels, bounded sums merged, the certificate, the exact states where it declines).

    Parameters, returns and errors as ``fastl2.metrics.{name}``'s: ``y_true``, ``y_pred`` of
    shape (n_samples,) or (n_samples, n_outputs), ``sample_weight`` of shape (n_samples,)
    (Dask arrays, chunked any way, or array-likes), ``multioutput`` "raw_values",
    "uniform_average" or an array-like of n_outputs weights; a Python float, or an ndarray of
    shape (n_outputs,) for "raw_values"; the same bits as ``fastl2.metrics.{name}`` of the
    computed arrays.  The shape, dtype and parameter checks run before anything is computed;
    the finiteness checks (``ValueError: Input contains NaN.``) and "Sample weights must
    contain at least one non-zero number" run, in one extra pass, only where the result is not
    finite or the weights sum to 0 (ZeroDivisionError where they sum to exactly 0 and are not
    all 0), as fastl2.metrics does.
"""
_METRIC_EXAMPLE = """
    >>> import dask.array as da, numpy as np, fastl2.dask
    >>> y_true = da.from_array(np.array([[0.5, 1], [-1, 1], [7, -6]]), chunks=(2, 1))
    >>> y_pred = da.from_array(np.array([[0, 2], [-1, 2], [8, -5]]), chunks=(1, 2))
    >>> fastl2.dask.{name}(y_true, y_pred, multioutput="raw_values")
    {raw}
    >>> fastl2.dask.{name}(y_true, y_pred)
    {average}
"""
mean_squared_error.__doc__ = _METRIC_DOC.format(what="Mean squared error", name="mean_squared_error") + \
    _METRIC_EXAMPLE.format(name="mean_squared_error", raw="array([0.41666667, 1.        ])", average="0.7083333333333334")
root_mean_squared_error.__doc__ = _METRIC_DOC.format(what="Root mean squared error", name="root_mean_squared_error") + \
    _METRIC_EXAMPLE.format(name="root_mean_squared_error", raw="array([0.64549722, 1.        ])", average="0.8227486121839513")
mean_absolute_error.__doc__ = _METRIC_DOC.format(what="Mean absolute error", name="mean_absolute_error") + \
    _METRIC_EXAMPLE.format(name="mean_absolute_error", raw="array([0.5, 1. ])", average="0.75")
