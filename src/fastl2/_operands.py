"""The arguments of a public call read as kernel operands: native float32/float64 ndarrays.

How fastl2 reads what it is given (ndarrays and their subclasses, DLPack producers such as
PyTorch tensors, array-likes), which dtypes it computes with and how, what it refuses (masked
arrays, wider floats than float64), and the exact differences of wide integers.  Used by
``fastl2._plan``, which makes the plan of a call from these operands.
"""

from __future__ import annotations

import sys

import numpy as np

_FLOAT16 = np.dtype(np.float16)
_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)

_ACCEPTED = ("float16, bfloat16 (ml_dtypes), float32, float64, integer or bool arrays (or "
             "array-likes of them)")


def is_bfloat16(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is ``ml_dtypes.bfloat16`` (the top half of a float32), told by its
    name and module so that ml_dtypes is never imported to ask."""
    return (dtype.kind == "V" and dtype.itemsize == 2 and dtype.name == "bfloat16"
            and dtype.type.__module__.partition(".")[0] == "ml_dtypes")


def is_half(dtype: np.dtype) -> bool:
    """Whether the kernels read ``dtype`` as it is and convert it block by block: float16 and
    bfloat16 (csrc/convert.c)."""
    return dtype == _FLOAT16 or is_bfloat16(dtype)


def bfloat16_dtype() -> np.dtype:
    """``ml_dtypes.bfloat16`` as a NumPy dtype (ml_dtypes imported here, when first needed);
    ImportError naming the package when it is not installed."""
    from ._backends import import_on_first_use  # (imported by now: no cycle at import time)

    try:
        ml_dtypes = import_on_first_use("ml_dtypes")  # (under the lock fork() waits for)
    except ImportError:
        raise ImportError(
            "reading bfloat16 needs the ml_dtypes package (NumPy has no bfloat16 of its own): "
            "pip install ml_dtypes (or fastl2[torch])"
        ) from None
    return np.dtype(ml_dtypes.bfloat16)


def _dlpack(value, name: str) -> np.ndarray:
    """A DLPack producer's array, read in place; a PyTorch tensor's while fork() waits
    (fastl2._backends.fork_waits: a child forked during another thread's read of a bfloat16
    tensor once waited for ever in its own first read).  Other producers' code runs without
    the lock: fastl2 does not hold it across code it does not know."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor):
        return np.from_dlpack(value)
    from ._backends import fork_waits  # (imported by now: no cycle at import time)

    with fork_waits():
        if value.dtype == torch.bfloat16:
            return _bfloat16_tensor(value, name)
        return np.from_dlpack(value)


def _bfloat16_tensor(value, name: str) -> np.ndarray:
    """A PyTorch bfloat16 CPU tensor as an ml_dtypes.bfloat16 array over the same memory (its
    bits read as int16 through DLPack: NumPy has no bfloat16 DLPack type)."""
    try:
        dtype = bfloat16_dtype()
    except ImportError as exc:
        raise TypeError(
            f"{name} is a {type(value).__name__} of dtype torch.bfloat16, and {exc}; accepted: "
            f"{_ACCEPTED}; or convert it first (.float())"
        ) from None
    torch = sys.modules["torch"]
    return np.from_dlpack(value.view(torch.int16)).view(dtype)


def read(value, name: str) -> np.ndarray:
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
        refuse_masked(value, name)
        return value.view(np.ndarray)
    if hasattr(value, "__dlpack__") and hasattr(value, "__dlpack_device__"):
        if getattr(value, "requires_grad", False) is True and callable(getattr(value, "detach", None)):
            value = value.detach()  # read its values; autograd needs an autograd op
        is_neg = getattr(value, "is_neg", None)
        if callable(is_neg) and is_neg():  # a PyTorch view whose values are negated lazily:
            value = value.resolve_neg()  # DLPack would hand over the data without the sign
        try:
            return _dlpack(value, name)
        except (BufferError, RuntimeError, ValueError) as exc:
            dlpack_error = exc  # e.g. a device NumPy cannot read: try __array__
        except TypeError as exc:
            if "ml_dtypes" in str(exc):  # (a bfloat16 tensor without ml_dtypes: said as it is)
                raise
            dlpack_error = exc  # e.g. a dtype NumPy cannot read: try __array__
    else:
        dlpack_error = None
    if isinstance(value, (list, tuple)):
        refuse_nested_masked(value, name)
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
        refuse_masked(array, name)
        array = array.view(np.ndarray)
    return array


def refuse_masked(array: np.ndarray, name: str) -> None:
    ma = sys.modules.get("numpy.ma")  # (no masked array exists before numpy.ma is imported)
    if ma is not None and isinstance(array, ma.MaskedArray):
        raise TypeError(
            f"{name} is a numpy.ma.MaskedArray; fastl2 does not apply masks and will not drop "
            f"one silently. Pass the unmasked elements ({name}.compressed(), and the same "
            "elements of the other arrays), or their data with weights=~mask and "
            "reduction='weighted_mean' (where the masked values are finite)"
        )


def refuse_nested_masked(items, name: str) -> None:
    """Refuses a list or tuple holding a masked array at any depth (np.asarray would drop
    its mask); costs nothing before numpy.ma is imported."""
    ma = sys.modules.get("numpy.ma")
    if ma is None:
        return
    pending = [items]
    while pending:
        for item in pending.pop():
            if isinstance(item, ma.MaskedArray):
                refuse_masked(item, name)
            elif isinstance(item, (list, tuple)):
                pending.append(item)


def kernel_dtype(dtype: np.dtype, name: str, half: bool = False) -> tuple[np.dtype, bool]:
    """The dtype the kernels read an array of ``dtype`` as, and whether it is single precision.

    Float16 and bfloat16 (``ml_dtypes.bfloat16``) are read as they are with ``half`` (the
    backends convert them block by block, exactly), else as float32; integers and bools as float64 (exactly up to 2**53, see
    ``fastl2._plan.loss_plan`` for the differences of larger ones).  Floats with more precision than
    float64 (``np.longdouble`` where it is wider) are refused, never rounded silently.
    """
    kind = dtype.kind
    if kind == "f":
        if dtype.itemsize == 2 and half:
            return _FLOAT16, True
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
    if is_bfloat16(dtype):  # (in native byte order: a swapped one is converted, as float16's)
        return (dtype.newbyteorder("=") if half else _FLOAT32), True
    raise TypeError(
        f"{name} has dtype {dtype}, which fastl2 cannot compute with; accepted: {_ACCEPTED}"
    )


def to_kernel(array: np.ndarray, name: str, given=None, half: bool = False) -> tuple[np.ndarray, bool, np.dtype]:
    """``array`` (what ``given`` was read as) as a native float32/float64 array (float16 and
    bfloat16 kept with ``half``), whether its own dtype counts as single precision, and its own dtype in
    native byte order (what gradients keep)."""
    try:
        target, single = kernel_dtype(array.dtype, name, half)
    except TypeError as exc:
        if array.dtype.kind == "O" and array.ndim == 0 and array.item() is None:
            raise TypeError(f"{exc} (given None: pass an array, a list or a tuple of "
                            "numbers)") from None
        if array.dtype.kind == "O" and given is not None and not isinstance(given, (list, tuple, np.ndarray)):
            raise TypeError(f"{exc} (given a {type(given).__name__}, which NumPy reads as one "
                            "object: pass an array, a list or a tuple of numbers)") from None
        raise
    source = array.dtype.newbyteorder("=")
    if array.dtype != target:  # also normalises a non-native byte order
        array = array.astype(target)
    return array, single, source


def is_wide_integer(dtype: np.dtype) -> bool:
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


def exact_difference(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(d, error)``: ``y_pred - y_true`` in float64, from the exact difference of the inputs
    as given, and its rounding error (``d + error``: the exact difference; to about 2**-106 of
    it for an integer beside a float), for the float64 kernels' exact element terms.

    Used when either is int64/uint64 (whose values beyond 2**53 float64 would round before
    the subtraction).  Two integers: the exact difference (up to 2**65) is
    ``dh * 2**32 + dl`` with both terms exact in float64, so one addition rounds it once
    (correctly rounded) and TwoSum gives its error.  An integer and a float: the integer's two
    exact parts are taken from the float with error-free transformations (Knuth's TwoSum) and
    the three remaining terms added smallest first: within one rounding of the exact
    difference.
    """
    t_int, p_int = y_true.dtype.kind in "biu", y_pred.dtype.kind in "biu"
    with np.errstate(over="ignore", invalid="ignore"):
        if t_int and p_int:
            t_hi, t_lo = _split_integer(y_true)
            p_hi, p_lo = _split_integer(y_pred)
            big = (p_hi - t_hi).astype(np.float64)
            big *= _TWO32
            small = (p_lo - t_lo).astype(np.float64)
            d = big + small
            return d, _two_sum_error(big, small, d)
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
        tail = v + e
        d = u + tail
        error = _two_sum_error(u, tail, d) * sign
        d *= sign
        # Where the exact difference is zero or the float is not finite, the IEEE difference
        # y_pred - y_true of the two as floats (exact there) gives its sign of zero, inf, nan.
        as_float = integer.astype(np.float64)
        direct = real - as_float if t_int else as_float - real
        plain = (d == 0) | ~np.isfinite(real)
        return np.where(plain, direct, d), np.where(plain | ~np.isfinite(error), 0.0, error)


def _two_sum_error(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The rounding error of ``s = a + b`` (Knuth's TwoSum): ``a + b == s + error`` exactly."""
    bb = s - a
    return (a - (s - bb)) + (b - bb)
