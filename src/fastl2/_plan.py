"""Turn the arguments of a public call into a Plan, once, for every backend.

The checks of shapes, reductions, axes and ``out`` live here (how each argument is read:
``fastl2._operands``); backends never re-validate.
A Plan's arrays are native float32/float64, or float16/bfloat16 (a loss's operands: read as they are,
converted block by block by the backends; :func:`without_half` for a backend that cannot).
When they are all C-contiguous (and nothing is
reduced along an axis) the backends run their 1-d kernels over flat views (``Plan.flat``);
every other layout and every axis reduction is described by a :class:`Strided` pass over the
arrays as they are in memory, without copies.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass, replace

from numpy.lib.stride_tricks import as_strided

import numpy as np

from ._losses import SQUARED, Loss
from ._operands import (exact_difference, is_bfloat16, is_half, is_wide_integer, kernel_dtype, read,
                        refuse_masked, to_kernel)

#: Elements per deterministic reduction block (csrc/fastl2.h: FL2_BLOCK_SIZE).
BLOCK_SIZE = 8192

REDUCTIONS = ("mean", "weighted_mean", "sum", "none")
MEAN_REDUCTIONS = ("mean", "weighted_mean")

_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)


@dataclass(frozen=True)
class Plan:
    """What a backend computes: one pass over ``n`` elements.

    ``arrays`` holds y_true (None for the L2 penalty), y_pred and weights (None without) as
    N-d arrays of ``shape``, per-sample weights broadcast to it (a zero stride, no copy).
    When ``flat``, ``y_true``, ``y_pred`` and ``weights`` are also 1-D C-contiguous views, each
    weight applying to ``weights_repeat`` consecutive elements; otherwise they are None.
    """

    loss: Loss  # (fastl2._losses)
    y_true: np.ndarray | None
    y_pred: np.ndarray | None
    weights: np.ndarray | None
    weights_repeat: int
    shape: tuple[int, ...]  # y_pred's shape: of elementwise losses and of gradients
    reduction: str
    result_dtype: np.dtype  # of losses
    grad_dtype: np.dtype  # of gradients: y_pred's float dtype
    arrays: tuple  # (y_true, y_pred, weights), N-d, of ``shape``
    flat: bool = True
    #: (y_true, y_pred, weights) as given (before any conversion): the memory out= must spare
    sources: tuple = (None, None, None)
    param: float = 0.0  # the loss's parameter, checked (0.0 for losses without one)

    @property
    def n(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Strided:
    """A pass over N-d arrays in any layout, reducing all dims but the first ``nkept``.

    Every array is a view of ``shape`` (at least one dim) into the caller's memory, with any
    strides (negative, or zero for broadcast dims).  The first ``nkept`` dims index the outputs
    in C order; output ``o`` sums the ``n_reduced`` elements of the remaining dims, in C order
    of those.  Sums use blocks of BLOCK_SIZE consecutive elements of each output's run,
    combined as in the 1-d kernels, so results do not depend on the thread count.  ``grad``
    and ``elementwise`` (if any) are written element by element where they lie.
    """

    loss: Loss
    shape: tuple[int, ...]
    nkept: int
    y_true: np.ndarray | None  # None: the L2 penalty of y_pred
    y_pred: np.ndarray
    weights: np.ndarray | None
    grad: np.ndarray | None = None
    elementwise: np.ndarray | None = None
    param: float = 0.0

    @property
    def n(self) -> int:
        return math.prod(self.shape)

    @property
    def n_outputs(self) -> int:
        return math.prod(self.shape[: self.nkept])

    @property
    def n_reduced(self) -> int:
        return math.prod(self.shape[self.nkept:])


def _is_c_contiguous(array: np.ndarray | None) -> bool:
    return array is None or (array.flags.c_contiguous and array.flags.aligned)


def check_reduction(reduction, allowed=REDUCTIONS) -> str:
    if not isinstance(reduction, str) or reduction not in allowed:
        options = ", ".join(repr(r) for r in allowed)
        raise ValueError(f"reduction must be one of {options}; got {reduction!r}")
    return reduction


def check_axis(axis, ndim: int, reduction: str) -> tuple[int, ...] | None:
    """The axes to reduce, as sorted non-negative ints, or None for all of them.

    NumPy's rules: an int or a tuple of ints, negative ones counting from the end, each at
    most once; out-of-range axes raise ``AxisError``.
    """
    if axis is None:
        return None
    if reduction == "none":
        raise ValueError(
            f"axis={axis!r} cannot be combined with reduction='none', which reduces nothing; "
            "pass axis=None or a reducing reduction"
        )
    axes = axis if isinstance(axis, tuple) else (axis,)
    normalised = []
    for a in axes:
        if isinstance(a, (bool, np.bool_)):
            raise TypeError(f"axis must be None, an int or a tuple of ints; got {axis!r}")
        try:
            a = operator.index(a)
        except TypeError:
            raise TypeError(
                f"axis must be None, an int or a tuple of ints; got {axis!r}"
            ) from None
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
        a %= ndim
        if a in normalised:
            raise ValueError(f"axis {axis!r} names axis {a} more than once")
        normalised.append(a)
    return tuple(sorted(normalised))


def _check_same_shape(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape; got y_true {y_true.shape} and "
            f"y_pred {y_pred.shape} (fastl2 does not broadcast: reshape one of them)"
        )


def _weights_layout(weights: np.ndarray, shape: tuple[int, ...]) -> int:
    """How many consecutive elements share one weight; raises for any other shape."""
    if weights.shape == shape:
        return 1
    if weights.ndim == 1 and len(shape) >= 1 and weights.shape[0] == shape[0]:
        return max(1, int(np.prod(shape[1:], dtype=np.int64)))
    if len(shape) > 1:
        accepted = f"{shape} (one weight per element) or ({shape[0]},) (one weight per sample)"
    else:
        accepted = f"{shape} (one weight per element)"
    raise ValueError(f"weights must have shape {accepted}; got weights of shape {weights.shape}")


def loss_plan(loss: Loss, y_true, y_pred, weights, reduction: str, param: float = 0.0) -> Plan:
    """The plan of a loss or gradient call (``reduction`` and ``param`` already checked)."""
    true_raw, pred_raw = read(y_true, "y_true"), read(y_pred, "y_pred")
    true_array, true_single, _ = to_kernel(true_raw, "y_true", y_true, half=True)
    pred_array, pred_single, pred_source = to_kernel(pred_raw, "y_pred", y_pred, half=True)
    _check_same_shape(true_array, pred_array)
    if is_wide_integer(true_raw.dtype) or is_wide_integer(pred_raw.dtype):
        # Every loss and gradient depends on y_pred - y_true only: pass that difference,
        # exact before its one rounding, against minus its rounding error (the kernels'
        # difference is the rounded one, and their exact element terms carry the error).
        pred_array, error = exact_difference(true_raw, pred_raw)
        true_array = np.where(error == 0.0, 0.0, -error)  # (+0: d - 0 keeps d's zero sign)
    single = true_single and pred_single
    shape = pred_array.shape
    repeat = 1
    weights_array = full_weights = weights_raw = None
    if weights is not None:
        weights_raw = read(weights, "weights")
        weights_array, weights_single, _ = to_kernel(weights_raw, "weights", weights, half=True)
        repeat = _weights_layout(weights_array, shape)
        single = single and weights_single
        full_weights = weights_array
        if weights_array.shape != shape:  # one weight per sample: a zero-stride view
            full_weights = np.broadcast_to(
                weights_array.reshape((shape[0],) + (1,) * (len(shape) - 1)), shape
            )
    flat = all(_is_c_contiguous(a) for a in (true_array, pred_array, weights_array))
    return Plan(
        loss=loss,
        y_true=true_array.reshape(-1) if flat else None,
        y_pred=pred_array.reshape(-1) if flat else None,
        weights=weights_array.reshape(-1) if flat and weights_array is not None else None,
        weights_repeat=repeat,
        shape=shape,
        reduction=reduction,
        result_dtype=_FLOAT32 if single else _FLOAT64,
        grad_dtype=_grad_dtype(pred_source),
        arrays=(true_array, pred_array, full_weights),
        flat=flat,
        sources=(true_raw, pred_raw, weights_raw),
        param=param,
    )


def penalty_plan(params, name: str = "params") -> Plan:
    """The plan of ``l2_penalty``: the squared "loss" of ``params`` against zero."""
    raw = read(params, name)
    array, single, source = to_kernel(raw, name, params)
    flat = _is_c_contiguous(array)
    return Plan(
        loss=SQUARED,
        y_true=None,
        y_pred=array.reshape(-1) if flat else None,
        weights=None,
        weights_repeat=1,
        shape=array.shape,
        reduction="sum",
        result_dtype=_FLOAT32 if single else _FLOAT64,
        grad_dtype=_grad_dtype(source),
        arrays=(None, array, None),
        flat=flat,
        sources=(None, raw, None),
    )


def strided_pass(plan: Plan, axes: tuple[int, ...] | None = None, grad: np.ndarray | None = None,
                 elementwise: np.ndarray | None = None) -> Strided:
    """The pass of ``plan`` reducing ``axes`` (None: all), over the arrays as they lie in memory.

    ``grad`` and ``elementwise`` are arrays of ``plan.shape`` to write (any layout).  The
    reduced dims are visited in y_pred's memory order (largest stride first, negative strides
    walked backwards), and neighbouring dims that every array steps through evenly are merged,
    so that C- and Fortran-ordered, transposed and reversed arrays become one run.
    """
    shape = plan.shape
    ndim = len(shape)
    reduced = tuple(range(ndim)) if axes is None else axes
    kept = [a for a in range(ndim) if a not in reduced]
    nkept = len(kept)
    pred = plan.arrays[1]
    # Memory order of y_pred among the reduced dims (stable: C order among equal strides).
    order = kept + sorted(reduced, key=lambda a: -abs(pred.strides[a]))
    flip = tuple(
        slice(None, None, -1) if i >= nkept and pred.strides[a] < 0 else slice(None)
        for i, a in enumerate(order)
    )
    # (``[..., ]`` keeps a 0-d array a view: ``a[()]`` would be a scalar copy)
    flip += (Ellipsis,)
    views = [None if a is None else a.transpose(order)[flip] for a in list(plan.arrays) + [grad, elementwise]]
    # Drop dims of one element, then merge neighbours every array steps through evenly.
    keep = [i for i in range(ndim) if shape[order[i]] != 1]
    dims = [shape[order[i]] for i in keep]
    strides = [None if v is None else [v.strides[i] for i in keep] for v in views]
    nkept = sum(1 for i in keep if i < nkept)
    i = len(dims) - 2
    while i >= 0:
        same_group = (i < nkept) == (i + 1 < nkept)
        if same_group and all(st is None or st[i] == st[i + 1] * dims[i + 1] for st in strides):
            dims[i : i + 2] = [dims[i] * dims[i + 1]]
            for st in strides:
                if st is not None:
                    st[i : i + 2] = [st[i + 1]]
            if i < nkept:
                nkept -= 1
        i -= 1
    if nkept == len(dims):  # nothing left to reduce: each output sums one element
        dims.append(1)
        for st in strides:
            if st is not None:
                st.append(0)
    operands = [
        None if v is None else as_strided(v, shape=tuple(dims), strides=tuple(st))
        for v, st in zip(views, strides)
    ]
    return Strided(
        loss=plan.loss,
        shape=tuple(dims),
        nkept=nkept,
        y_true=operands[0],
        y_pred=operands[1],
        weights=operands[2],
        grad=operands[3],
        elementwise=operands[4],
        param=plan.param,
    )


def as_float32(array: np.ndarray | None) -> np.ndarray | None:
    """A float16 or bfloat16 array as float32 (exactly), for a backend that does not read
    them; any other array (or None) as it is.  Broadcast dims (zero strides) stay broadcast:
    only the elements in memory are converted, never a copy of the whole broadcast shape."""
    if array is None or not is_half(array.dtype):
        return array
    zero = [stride == 0 and size > 1 for stride, size in zip(array.strides, array.shape)]
    if not any(zero):
        return array.astype(_FLOAT32)
    core = array[tuple(slice(0, 1) if z else slice(None) for z in zero)].astype(_FLOAT32)
    return as_strided(core, array.shape, tuple(0 if z else st for z, st in zip(zero, core.strides)))


def without_half(plan: Plan) -> Plan:
    """``plan`` with its float16 and bfloat16 operands as float32 (as_float32): the same
    values, so the same bits from a backend that reads float32 only."""
    if not any(a is not None and is_half(a.dtype) for a in plan.arrays):
        return plan
    arrays = tuple(as_float32(a) for a in plan.arrays)  # (each operand converted once)
    if not plan.flat:
        return replace(plan, arrays=arrays)
    # The flat views are views of those (C-contiguous, as the plan's are), except weights of one
    # per sample, whose N-d array is a broadcast view: their own few values are converted.
    true, pred, weights = arrays
    return replace(
        plan, arrays=arrays,
        y_true=None if true is None else true.reshape(-1), y_pred=pred.reshape(-1),
        weights=(None if weights is None else weights.reshape(-1) if plan.weights_repeat == 1
                 else as_float32(plan.weights)),
    )


def strided_without_half(s: Strided) -> Strided:
    """``s`` with its float16 and bfloat16 inputs as float32 (as_float32); its outputs as they
    are."""
    if not any(a is not None and is_half(a.dtype) for a in (s.y_true, s.y_pred, s.weights)):
        return s
    return replace(s, y_true=as_float32(s.y_true), y_pred=as_float32(s.y_pred),
                               weights=as_float32(s.weights))


def _grad_dtype(source: np.dtype) -> np.dtype:
    """Gradients keep y_pred's own float dtype (float16 and bfloat16 included, whatever object
    carried it); integer and bool y_pred give float64."""
    return source if source.kind == "f" or is_bfloat16(source) else _FLOAT64


def check_lam(lam) -> float:
    """The L2 penalty strength as a float: a real number >= 0 (a Python or NumPy number, or
    a 0-d array or tensor of a real dtype)."""
    value = lam
    if not isinstance(lam, (numbers.Real, np.generic)) and (
        isinstance(lam, np.ndarray) or hasattr(lam, "__dlpack__") or hasattr(lam, "__array__")
    ):
        array = read(lam, "lam")
        if array.ndim != 0 or array.dtype.kind not in "iuf":
            raise TypeError(
                "lam must be a real number >= 0 (a number, or a 0-d array or tensor of a real "
                f"dtype); got a {type(lam).__name__} of shape {array.shape} and dtype {array.dtype}"
            )
        kernel_dtype(array.dtype, "lam")  # no silent rounding of a longdouble
        value = array[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
        raise TypeError(
            "lam must be a real number >= 0 (a number, or a 0-d array or tensor); "
            f"got {lam!r} of type {type(lam).__name__}"
        )
    if isinstance(value, np.floating):
        kernel_dtype(value.dtype, "lam")
    try:
        result = float(value)
    except OverflowError:
        raise ValueError(f"lam must be a real number >= 0 within float64's range; got {lam!r}") from None
    if not 0.0 <= result < math.inf:  # also rejects nan
        raise ValueError(f"lam must be a real number >= 0 (finite); got {lam!r}")
    return result + 0.0  # (-0.0 as +0.0: no negative-zero penalty or flipped gradient zeros)


def check_out(out, plan: Plan, pred_name: str = "y_pred") -> np.ndarray | None:
    """Validates a gradient output array: shape, dtype, writable, no overlap with the inputs.

    Overlap is judged on the memory the kernels actually read (``plan.arrays``: the views
    NumPy, DLPack or the buffer protocol gave of each input, whatever object carried it);
    ``out`` may be exactly the y_pred (or params) array that is read, for an in-place update,
    but may share no byte with anything else read.  Returns ``out`` itself (an ndarray
    subclass such as ``np.memmap`` is written through a base-class view).
    """
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array (or None); got {type(out).__name__}")
    refuse_masked(out, "out")
    if out.shape != plan.shape:
        raise ValueError(f"out must have shape {plan.shape} (the shape of {pred_name}); got {out.shape}")
    if out.dtype != plan.grad_dtype:
        raise ValueError(
            f"out must have dtype {plan.grad_dtype} (the gradient's dtype: {pred_name}'s); "
            f"got {out.dtype}"
        )
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writable array")
    if _overlaps_itself(out):
        raise ValueError(
            f"out has elements that share memory (shape {out.shape}, strides {out.strides}): "
            "each gradient element needs a place of its own; pass an array such as "
            f"np.empty_like({pred_name})"
        )
    names = ("y_true", pred_name, "weights")
    for name, memory, source in zip(names, plan.arrays, plan.sources):
        # both the memory read (a view of the input, or a converted copy) and the input's own
        overlapping = [a for a in (memory, source) if a is not None and _overlaps(out, a)]
        if not overlapping:
            continue
        if name == pred_name and all(_same_view(out, a) for a in overlapping):
            continue  # in place: each element is read before it is written
        raise ValueError(
            f"out overlaps {name} in memory; out may be {pred_name} itself (in place) but "
            "must not overlap any other input"
        )
    return out


def _overlaps_itself(a: np.ndarray) -> bool:
    """Whether two elements of ``a`` share a byte (e.g. a zero stride, as np.broadcast_to
    makes).  Dims taken by increasing |stride|, each must step past everything the smaller
    ones span (the layouts NumPy makes); a layout that interleaves its dims otherwise is judged
    exactly, by its element offsets (up to 2**22 elements; beyond, it counts as overlapping)."""
    if a.size <= 1:
        return False
    dims = sorted((abs(stride), n) for stride, n in zip(a.strides, a.shape) if n > 1)
    span = a.itemsize
    for stride, n in dims:
        if stride < span:
            break
        span += stride * (n - 1)
    else:
        return False
    if a.size > 1 << 22:
        return True
    offsets = np.zeros(1, np.int64)
    for stride, n in dims:
        offsets = (offsets[:, None] + stride * np.arange(n, dtype=np.int64)).ravel()
    offsets.sort()
    return bool(np.any(np.diff(offsets) < a.itemsize))


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=10_000))
    except np.exceptions.TooHardError:
        return True


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.dtype == b.dtype
        and a.shape == b.shape
    )
