"""Turn the arguments of a public call into a Plan, once, for every backend.

Every check and every error message of the public API lives here; backends receive plans
whose arrays are already C-contiguous, 1-D, native float32/float64, and never re-validate.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

#: Elements per deterministic reduction block (csrc/fastl2.h: FL2_BLOCK_SIZE).
BLOCK_SIZE = 8192

REDUCTIONS = ("mean", "weighted_mean", "sum", "none")
MEAN_REDUCTIONS = ("mean", "weighted_mean")

_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)


@dataclass(frozen=True)
class Plan:
    """What a backend computes: one pass over ``n`` elements.

    ``y_true`` (None for the L2 penalty), ``y_pred`` and ``weights`` are 1-D C-contiguous
    float32/float64 arrays; each weight applies to ``weights_repeat`` consecutive elements.
    """

    loss: str  # "squared" or "absolute"
    y_true: np.ndarray | None
    y_pred: np.ndarray
    weights: np.ndarray | None
    weights_repeat: int
    shape: tuple[int, ...]  # y_pred's shape: of elementwise losses and of gradients
    reduction: str
    result_dtype: np.dtype  # of losses
    grad_dtype: np.dtype  # of gradients: y_pred's float dtype

    @property
    def n(self) -> int:
        return self.y_pred.size


def _as_float_array(value, name: str) -> tuple[np.ndarray, bool]:
    """``value`` as a float32/float64 array, and whether its own dtype counts as single precision.

    Float16 is read as float32; integers and bools as float64 (both exact).
    """
    if type(value) is np.ndarray:
        array = value
    elif hasattr(value, "__dlpack__") and not hasattr(value, "__array__"):
        array = np.from_dlpack(value)
    else:
        array = np.asarray(value)
    dtype = array.dtype
    kind = dtype.kind
    if kind == "f":
        if dtype.itemsize <= 4:
            single = True
            target = _FLOAT32
        else:
            single = False
            target = _FLOAT64
    elif kind in "biu":
        single, target = False, _FLOAT64
    else:
        raise TypeError(
            f"{name} has dtype {dtype}, which fastl2 cannot compute with; "
            "accepted: float16, float32, float64, integer or bool arrays"
        )
    if dtype != target:  # also normalises a non-native byte order
        array = array.astype(target)
    return array, single


def _flat(array: np.ndarray) -> np.ndarray:
    """A 1-D C-contiguous view of ``array``, copying only arrays that are not C-contiguous."""
    return np.ascontiguousarray(array).reshape(-1)


def check_reduction(reduction, allowed=REDUCTIONS) -> str:
    if not isinstance(reduction, str) or reduction not in allowed:
        options = ", ".join(repr(r) for r in allowed)
        raise ValueError(f"reduction must be one of {options}; got {reduction!r}")
    return reduction


def check_axis(axis, ndim: int, reduction: str) -> None:
    """Validates ``axis``; reductions along axes come in a later release."""
    if axis is None:
        return
    if reduction == "none":
        raise ValueError(
            f"axis={axis!r} cannot be combined with reduction='none', which reduces nothing; "
            "pass axis=None or a reducing reduction"
        )
    axes = axis if isinstance(axis, tuple) else (axis,)
    for a in axes:
        try:
            a = operator.index(a)
        except TypeError:
            raise TypeError(
                f"axis must be None, an int or a tuple of ints; got {axis!r}"
            ) from None
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
    raise NotImplementedError(
        f"axis={axis!r}: reducing along an axis is not implemented yet in this version of "
        "fastl2; use axis=None (reduce everything)"
    )


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
    per_sample = f" or ({shape[0]},) (one weight per sample)" if shape else ""
    raise ValueError(
        f"weights must have shape {shape} (one weight per element){per_sample}; "
        f"got weights of shape {weights.shape}"
    )


def loss_plan(loss: str, y_true, y_pred, weights, reduction: str) -> Plan:
    """The plan of a loss or gradient call (``reduction`` already checked)."""
    true_array, true_single = _as_float_array(y_true, "y_true")
    pred_array, pred_single = _as_float_array(y_pred, "y_pred")
    _check_same_shape(true_array, pred_array)
    single = true_single and pred_single
    repeat = 1
    flat_weights = None
    if weights is not None:
        weights_array, weights_single = _as_float_array(weights, "weights")
        repeat = _weights_layout(weights_array, pred_array.shape)
        flat_weights = _flat(weights_array)
        single = single and weights_single
    return Plan(
        loss=loss,
        y_true=_flat(true_array),
        y_pred=_flat(pred_array),
        weights=flat_weights,
        weights_repeat=repeat,
        shape=pred_array.shape,
        reduction=reduction,
        result_dtype=_FLOAT32 if single else _FLOAT64,
        grad_dtype=_grad_dtype(y_pred, pred_array),
    )


def penalty_plan(params) -> Plan:
    """The plan of ``l2_penalty``: the squared "loss" of ``params`` against zero."""
    array, single = _as_float_array(params, "params")
    return Plan(
        loss="squared",
        y_true=None,
        y_pred=_flat(array),
        weights=None,
        weights_repeat=1,
        shape=array.shape,
        reduction="sum",
        result_dtype=_FLOAT32 if single else _FLOAT64,
        grad_dtype=_grad_dtype(params, array),
    )


def _grad_dtype(original, converted: np.ndarray) -> np.dtype:
    """Gradients keep y_pred's float dtype (float16 included); others get float64."""
    dtype = getattr(original, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.itemsize <= 8:
        return dtype.newbyteorder("=")
    return converted.dtype


def check_lam(lam) -> float:
    """The L2 penalty strength as a float: a real number >= 0."""
    if isinstance(lam, (bool, np.bool_)) or not isinstance(lam, (int, float, np.integer, np.floating)):
        raise TypeError(f"lam must be a real number >= 0; got {lam!r} of type {type(lam).__name__}")
    value = float(lam)
    if not value >= 0.0:  # also rejects nan
        raise ValueError(f"lam must be a real number >= 0; got {lam!r}")
    return value


def check_out(out, plan: Plan, inputs: dict) -> np.ndarray | None:
    """Validates a gradient output array: shape, dtype, writable, no overlap with the inputs.

    ``inputs`` maps argument names to the objects the caller passed; ``out`` may be the
    y_pred (or params) array itself, for an in-place update, but may overlap nothing else.
    """
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array; got {type(out).__name__}")
    if out.shape != plan.shape:
        raise ValueError(f"out must have shape {plan.shape} (the shape of y_pred); got {out.shape}")
    if out.dtype != plan.grad_dtype:
        raise ValueError(
            f"out must have dtype {plan.grad_dtype} (the gradient's dtype); got {out.dtype}"
        )
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writable array")
    for name, value in inputs.items():
        if not isinstance(value, np.ndarray) or not _overlaps(out, value):
            continue
        if name in ("y_pred", "params") and _same_view(out, value):
            continue  # in place
        raise ValueError(
            f"out overlaps {name} in memory; out may be y_pred itself (in place) but "
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
