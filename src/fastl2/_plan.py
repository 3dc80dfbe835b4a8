"""Turn the arguments of a public call into a Plan, once, for every backend.

Every check and every error message of the public API lives here; backends never re-validate.
A Plan's arrays are native float32/float64.  When they are all C-contiguous (and nothing is
reduced along an axis) the backends run their 1-d kernels over flat views (``Plan.flat``);
every other layout and every axis reduction is described by a :class:`Strided` pass over the
arrays as they are in memory, without copies.
"""

from __future__ import annotations

import math
import numbers
import operator
import sys
from dataclasses import dataclass

from numpy.lib.stride_tricks import as_strided

import numpy as np

from ._losses import SQUARED, Loss

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


_ACCEPTED = "float16, float32, float64, integer or bool arrays (or array-likes of them)"


def _read(value, name: str) -> np.ndarray:
    """The ndarray that ``value`` holds, read where it lies whenever NumPy can.

    Plain ndarrays are used as they are and ndarray subclasses through a base-class view
    (``np.memmap``, ``np.matrix``: their data is their meaning); DLPack producers such as
    PyTorch CPU tensors are read in place (a tensor that requires grad is read through
    ``detach()``, as a metric reads it); anything else goes through ``np.asarray``.  Masked
    arrays are refused: their meaning is not their data.
    """
    if type(value) is np.ndarray:
        return value
    if isinstance(value, np.ndarray):
        _refuse_masked(value, name)
        return value.view(np.ndarray)
    if hasattr(value, "__dlpack__") and hasattr(value, "__dlpack_device__"):
        if getattr(value, "requires_grad", False) is True and callable(getattr(value, "detach", None)):
            value = value.detach()  # read its values; autograd needs an autograd op
        is_neg = getattr(value, "is_neg", None)
        if callable(is_neg) and is_neg():  # a PyTorch view whose values are negated lazily:
            value = value.resolve_neg()  # DLPack would hand over the data without the sign
        try:
            return np.from_dlpack(value)
        except (BufferError, TypeError, RuntimeError, ValueError) as exc:
            dlpack_error = exc  # e.g. a dtype or device NumPy cannot read: try __array__
    else:
        dlpack_error = None
    if isinstance(value, (list, tuple)):
        _refuse_nested_masked(value, name)
    try:
        array = np.asanyarray(value)  # (keeps a subclass that __array__ returns, to judge it)
    except (TypeError, ValueError, RuntimeError, BufferError) as exc:
        dtype = getattr(value, "dtype", None)
        if dtype is not None and not isinstance(dtype, np.dtype):  # e.g. torch.bfloat16
            raise TypeError(
                f"{name} is a {type(value).__name__} of dtype {dtype}, which fastl2 cannot read "
                f"({exc}); accepted: {_ACCEPTED}, dense and in CPU memory; convert it first "
                f"(for a PyTorch tensor: .float() or .double(), .cpu(), .to_dense())"
            ) from (dlpack_error or exc)
        raise ValueError(
            f"{name} must be an array-like of numbers with one regular shape; got a "
            f"{type(value).__name__} that NumPy cannot make one array of ({exc})"
        ) from exc
    if isinstance(array, np.ndarray) and type(array) is not np.ndarray:  # an __array__ subclass
        _refuse_masked(array, name)
        array = array.view(np.ndarray)
    return array


def _refuse_masked(array: np.ndarray, name: str) -> None:
    ma = sys.modules.get("numpy.ma")  # (no masked array exists before numpy.ma is imported)
    if ma is not None and isinstance(array, ma.MaskedArray):
        raise TypeError(
            f"{name} is a numpy.ma.MaskedArray; fastl2 does not apply masks and will not drop "
            f"one silently. Pass the unmasked elements ({name}.compressed(), and the same "
            "elements of the other arrays), or their data with weights=~mask and "
            "reduction='weighted_mean' (where the masked values are finite)"
        )


def _refuse_nested_masked(items, name: str) -> None:
    """Refuses a list or tuple holding a masked array at any depth (np.asarray would drop
    its mask); costs nothing before numpy.ma is imported."""
    ma = sys.modules.get("numpy.ma")
    if ma is None:
        return
    pending = [items]
    while pending:
        for item in pending.pop():
            if isinstance(item, ma.MaskedArray):
                _refuse_masked(item, name)
            elif isinstance(item, (list, tuple)):
                pending.append(item)


def _kernel_dtype(dtype: np.dtype, name: str) -> tuple[np.dtype, bool]:
    """The dtype the kernels read an array of ``dtype`` as, and whether it is single precision.

    Float16 is read as float32; integers and bools as float64 (exactly up to 2**53, see
    ``loss_plan`` for the differences of larger ones).  Floats with more precision than
    float64 (``np.longdouble`` where it is wider) are refused, never rounded silently.
    """
    kind = dtype.kind
    if kind == "f":
        if dtype.itemsize <= 4:
            return _FLOAT32, True
        if np.finfo(dtype).nmant <= 52:
            return _FLOAT64, False
        raise TypeError(
            f"{name} has dtype {dtype} ({np.finfo(dtype).nmant + 1}-bit significand), more "
            "precision than fastl2 computes with (float64), and fastl2 does not round it "
            f"silently; pass {name}.astype(np.float64) if float64 precision is enough"
        )
    if kind in "biu":
        return _FLOAT64, False
    raise TypeError(
        f"{name} has dtype {dtype}, which fastl2 cannot compute with; accepted: {_ACCEPTED}"
    )


def _to_kernel(array: np.ndarray, name: str, given=None) -> tuple[np.ndarray, bool, np.dtype]:
    """``array`` (what ``given`` was read as) as a native float32/float64 array, whether its
    own dtype counts as single precision, and its own dtype in native byte order (what
    gradients keep)."""
    try:
        target, single = _kernel_dtype(array.dtype, name)
    except TypeError as exc:
        if array.dtype.kind == "O" and given is not None and not isinstance(given, (list, tuple, np.ndarray)):
            raise TypeError(f"{exc} (given a {type(given).__name__}, which NumPy reads as one "
                            "object: pass an array, a list or a tuple of numbers)") from None
        raise
    source = array.dtype.newbyteorder("=")
    if array.dtype != target:  # also normalises a non-native byte order
        array = array.astype(target)
    return array, single, source


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


def _is_wide_integer(dtype: np.dtype) -> bool:
    """Integers that float64 does not hold exactly beyond 2**53: int64 and uint64."""
    return dtype.kind in "iu" and dtype.itemsize > 4


_TWO32 = 4294967296.0


def _split_integer(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integers as ``hi * 2**32 + lo`` with int64 ``hi`` (|hi| <= 2**32) and ``lo`` in
    [0, 2**32): every int64 and uint64 exactly."""
    if array.dtype.kind == "u":
        array = array.astype(np.uint64)
        return (array >> np.uint64(32)).astype(np.int64), (array & np.uint64(0xFFFFFFFF)).astype(np.int64)
    array = array.astype(np.int64)
    return array >> 32, array & 0xFFFFFFFF


def _exact_difference(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """``y_pred - y_true`` in float64, from the exact difference of the inputs as given.

    Used when either is int64/uint64 (whose values beyond 2**53 float64 would round before
    the subtraction).  Two integers: the exact difference (up to 2**65) is
    ``dh * 2**32 + dl`` with both terms exact in float64, so one addition rounds it once
    (correctly rounded).  An integer and a float: the integer's two exact parts are taken
    from the float with error-free transformations (Knuth's TwoSum) and the three remaining
    terms added smallest first: within one rounding of the exact difference.
    """
    t_int, p_int = y_true.dtype.kind in "biu", y_pred.dtype.kind in "biu"
    with np.errstate(over="ignore", invalid="ignore"):
        if t_int and p_int:
            t_hi, t_lo = _split_integer(y_true)
            p_hi, p_lo = _split_integer(y_pred)
            d = (p_hi - t_hi).astype(np.float64)
            d *= _TWO32
            d += (p_lo - t_lo).astype(np.float64)
            return d
        integer, real, sign = (y_true, y_pred, 1.0) if t_int else (y_pred, y_true, -1.0)
        hi, lo = _split_integer(integer)
        real = real.astype(np.float64)
        big = hi.astype(np.float64) * _TWO32
        # real - big = s + e exactly, then s - lo = u + v exactly: d = u + (v + e)
        s = real - big
        e = _two_sum_error(real, -big, s)
        small = lo.astype(np.float64)
        u = s - small
        v = _two_sum_error(s, -small, u)
        d = (u + (v + e)) * sign
        # Where the exact difference is zero or the float is not finite, the IEEE difference
        # y_pred - y_true of the two as floats (exact there) gives its sign of zero, inf, nan.
        as_float = integer.astype(np.float64)
        direct = real - as_float if t_int else as_float - real
        return np.where((d == 0) | ~np.isfinite(real), direct, d)


def _two_sum_error(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The rounding error of ``s = a + b`` (Knuth's TwoSum): ``a + b == s + error`` exactly."""
    bb = s - a
    return (a - (s - bb)) + (b - bb)


def loss_plan(loss: Loss, y_true, y_pred, weights, reduction: str, param: float = 0.0) -> Plan:
    """The plan of a loss or gradient call (``reduction`` and ``param`` already checked)."""
    true_raw, pred_raw = _read(y_true, "y_true"), _read(y_pred, "y_pred")
    true_array, true_single, _ = _to_kernel(true_raw, "y_true", y_true)
    pred_array, pred_single, pred_source = _to_kernel(pred_raw, "y_pred", y_pred)
    _check_same_shape(true_array, pred_array)
    if _is_wide_integer(true_raw.dtype) or _is_wide_integer(pred_raw.dtype):
        # Every loss and gradient depends on y_pred - y_true only: pass that difference,
        # exact before its one rounding, against zeros.
        pred_array = _exact_difference(true_raw, pred_raw)
        true_array = np.zeros(pred_array.shape)
    single = true_single and pred_single
    shape = pred_array.shape
    repeat = 1
    weights_array = full_weights = weights_raw = None
    if weights is not None:
        weights_raw = _read(weights, "weights")
        weights_array, weights_single, _ = _to_kernel(weights_raw, "weights", weights)
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
    raw = _read(params, name)
    array, single, source = _to_kernel(raw, name, params)
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


def _grad_dtype(source: np.dtype) -> np.dtype:
    """Gradients keep y_pred's own float dtype (float16 included, whatever object carried
    it); integer and bool y_pred give float64."""
    return source if source.kind == "f" else _FLOAT64


def check_lam(lam) -> float:
    """The L2 penalty strength as a float: a real number >= 0 (a Python or NumPy number, or
    a 0-d array or tensor of a real dtype)."""
    value = lam
    if not isinstance(lam, (numbers.Real, np.generic)) and (
        isinstance(lam, np.ndarray) or hasattr(lam, "__dlpack__") or hasattr(lam, "__array__")
    ):
        array = _read(lam, "lam")
        if array.ndim != 0 or array.dtype.kind not in "iuf":
            raise TypeError(
                "lam must be a real number >= 0 (a number, or a 0-d array or tensor of a real "
                f"dtype); got a {type(lam).__name__} of shape {array.shape} and dtype {array.dtype}"
            )
        _kernel_dtype(array.dtype, "lam")  # no silent rounding of a longdouble
        value = array[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
        raise TypeError(
            "lam must be a real number >= 0 (a number, or a 0-d array or tensor); "
            f"got {lam!r} of type {type(lam).__name__}"
        )
    if isinstance(value, np.floating):
        _kernel_dtype(value.dtype, "lam")
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
    _refuse_masked(out, "out")
    if out.shape != plan.shape:
        raise ValueError(f"out must have shape {plan.shape} (the shape of {pred_name}); got {out.shape}")
    if out.dtype != plan.grad_dtype:
        raise ValueError(
            f"out must have dtype {plan.grad_dtype} (the gradient's dtype: {pred_name}'s); "
            f"got {out.dtype}"
        )
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writable array")
    names = ("y_true", pred_name, "weights")
    for name, read, source in zip(names, plan.arrays, plan.sources):
        # both the memory read (a view of the input, or a converted copy) and the input's own
        overlapping = [a for a in (read, source) if a is not None and _overlaps(out, a)]
        if not overlapping:
            continue
        if name == pred_name and all(_same_view(out, a) for a in overlapping):
            continue  # in place: each element is read before it is written
        raise ValueError(
            f"out overlaps {name} in memory; out may be {pred_name} itself (in place) but "
            "must not overlap any other input"
        )
    return out


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
