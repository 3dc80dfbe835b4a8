"""The mergeable exact state of a reduced loss: exact sums that any split of the data merges
back into the bits of one call.

An :class:`ExactState` holds, for each output of a loss reduced over some elements, the exact
sum of the element losses ``w * l(y_pred - y_true)`` (of the inputs as given: the difference,
the loss and the weight product unrounded), the exact weight sum, and the element count.
Exact sums add exactly, so computing a state per part of the elements (batches of a stream,
chunks of a Dask array, shards of a data-parallel job) and merging the parts in any order gives
the state of the whole, and :meth:`ExactState.result` rounds its exact reduced value once: the
same bits for every split and order, equal to one call on all the data.

Its plain form (:meth:`to_arrays`, :meth:`from_arrays`) is a few NumPy arrays that any
transport can carry (pickle, ``torch.distributed`` all-gather, MPI, a queue):

- ``"loss"``, ``"weight"``: float64 arrays of shape ``outputs_shape + (k, 2)``, the exact sums
  as *limbs*: output o's sum is ``sum(limbs[o, j, 0] * 2.0**limbs[o, j, 1] for j in range(k))``
  exactly, each ``limbs[o, j, 0]`` an integer of at most 53 bits (exact in float64) and each
  ``limbs[o, j, 1]`` an integer exponent.  Rows of zeros are padding.  A sum needs one limb
  per 53 bits it spans: 2 to 4 for most data (some 8 float64 per output); ``"weight"`` is all
  zeros without weights.  Limbs of two states concatenated along k are the limbs of their
  merge, so a gather of the arrays of many states is already their merged state.
- ``"special"``: float64 of ``outputs_shape + (2,)``: the IEEE sum of the element losses and of
  the weights that are not finite (nan, inf: from non-finite inputs), 0.0 where there are none.
  Such sums do not depend on their order either (any nan gives nan; infinities of both signs
  give nan).
- ``"count"``: the element count per output (int64, 0-d); ``"meta"``: the loss's name, its
  parameter, whether weights were given, and the result dtype (a 0-d object-free record: a
  float64 array ``[code, param, weighted, float32]``).

References: the limbs are the exact integer sums of fastl2._exact (error-free transformations,
Knuth's TwoSum and Dekker's TwoProduct, then integer arithmetic); merging exact sums in any
order, as the superaccumulator of Collange, Defour, Graillat and Iakymchuk ("Numerical
reproducibility for the parallel reduction on multi- and many-core architectures", Parallel
Computing 49, 2015) does, makes the result independent of the reduction's order.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import _exact
from ._losses import LOSSES
from ._plan import check_axis, check_reduction, loss_plan
from ._operands import is_wide_integer

_LIMB = 53  # bits per limb: an integer of 53 bits is exact in float64
#: The largest |exponent| of a limb: exact sums of float64 terms lie between 2**-3300 and
#: 2**3200 (csrc/exact.h), with room to spare.
_EXPONENT_LIMIT = 10000


def _limbs(m: int, e: int) -> list[tuple[int, int]]:
    """The exact m * 2**e as limbs (digit, exponent), digits below 2**53 in magnitude."""
    if m == 0:
        return []
    sign, m = (-1 if m < 0 else 1), abs(m)
    shift = (m & -m).bit_length() - 1  # (trailing zeros: the lowest limb starts at a set bit)
    m, e = m >> shift, e + shift
    out = []
    while m:
        digit = m & ((1 << _LIMB) - 1)
        if digit:
            out.append((sign * digit, e))
        m >>= _LIMB
        e += _LIMB
    return out


def _from_limbs(limbs: np.ndarray) -> tuple[int, int]:
    """The exact sum of limbs (an array of (digit, exponent) rows) as (m, e)."""
    total = (0, 0)
    for digit, exponent in limbs.tolist():  # (checked by from_arrays)
        if digit:
            total = _exact._add(total, (int(digit), int(exponent)))
    return total


class ExactState:
    """The exact sums of a loss per output over some elements (module docstring).

    Create one with :meth:`of` (a call's operands, as :func:`fastl2.mse` takes them), merge with
    :meth:`merge` (or ``+``), and read the result with :meth:`result`.  States are immutable.
    """

    __slots__ = ("code", "param", "weighted", "float32", "shape", "count", "_loss", "_weight", "_special")

    def __init__(self, code, param, weighted, float32, shape, count, loss, weight, special):
        self.code, self.param, self.weighted, self.float32 = code, param, weighted, float32
        self.shape, self.count = shape, count
        self._loss, self._weight, self._special = loss, weight, special  # (lists of (m, e); (n, 2) float64)

    # ------------------------------------------------------------------------------ creating

    @classmethod
    def of(cls, loss: str, y_true, y_pred, weights=None, *, axis=None, delta: float = 1.0) -> "ExactState":
        """The state of ``loss`` ("squared", "absolute" or "huber", the names of
        fastl2._losses) over the elements of ``y_pred - y_true`` (any shape, any real dtype,
        as fastl2.mse takes them; weights of y_pred's shape or one per sample), reduced over
        ``axis`` (None: all; an int or tuple of ints: one output per index of the others).
        ``delta`` is Huber's parameter.  Raises what fastl2.mse raises for the same operands."""
        found = [entry for entry in LOSSES if entry.name == loss]
        if not found:
            raise ValueError(f"loss must be one of {', '.join(repr(e.name) for e in LOSSES)}; got {loss!r}")
        entry = found[0]
        param = entry.check_param(delta)
        plan = loss_plan(entry, y_true, y_pred, weights, "sum", param)
        axes = check_axis(axis, len(plan.shape), "sum")
        axes = tuple(range(len(plan.shape))) if axes is None else axes
        arrays = list(plan.arrays)
        for k in (0, 1):  # (wide integers: the operands as given, not their rounded difference)
            source = plan.sources[k]
            if source is not None and is_wide_integer(source.dtype):
                arrays[0], arrays[1] = np.asarray(plan.sources[0]), np.asarray(plan.sources[1])
        if weights is not None and is_wide_integer(plan.sources[2].dtype):
            arrays[2] = np.broadcast_to(np.asarray(plan.sources[2]).reshape(
                plan.sources[2].shape + (1,) * (len(plan.shape) - plan.sources[2].ndim)), plan.shape)
        kept = tuple(a for a in range(len(plan.shape)) if a not in axes)
        out_shape = tuple(plan.shape[a] for a in kept)
        count = math.prod(plan.shape[a] for a in axes)
        moved = [None if a is None else np.asarray(a).transpose(kept + axes).reshape(out_shape + (count,))
                 for a in arrays]
        n_out = math.prod(out_shape)
        flat = [None if a is None else a.reshape(n_out, count) for a in moved]
        special = np.zeros((n_out, 2))
        finite_rows = np.ones(n_out, bool)
        if count:
            finite_rows = _finite(*(None if a is None else a.reshape(-1) for a in flat)).reshape(n_out, count).all(axis=1)
        totals = [None] * n_out
        if n_out > 1 and finite_rows.any():  # (many outputs: the compiled sums of whole groups of rows)
            chosen = np.flatnonzero(finite_rows)
            pick = lambda a: None if a is None else (a if chosen.size == n_out else a[chosen])  # noqa: E731
            for o, pair in zip(chosen.tolist(), _exact.dyadic_totals_rows(entry.code, param, *map(pick, flat))):
                totals[o] = pair
        loss_sums, weight_sums = [], []
        for o in range(n_out):
            if totals[o] is not None:
                loss_sums.append(totals[o][0])
                weight_sums.append(totals[o][1])
                continue
            t, p, w = (None if a is None else a[o] for a in flat)
            finite = _finite(t, p, w)
            left_weights = None
            if not finite.all():
                special[o] = _special_sums(entry.code, param, t, p, w, ~finite)
                if w is not None:  # (the finite weights of elements whose loss is not finite)
                    left_weights = w[~finite]
                    left_weights = left_weights[_finite(None, left_weights, None)]
                t, p, w = (None if a is None else a[finite] for a in (t, p, w))
            lsum, wsum, _ = _exact.dyadic_totals(entry.code, param, t, p, w)
            if left_weights is not None and left_weights.size:
                wsum = _exact._add(wsum, _exact.dyadic_totals(0, 0.0, None, np.zeros(left_weights.shape),
                                                              left_weights)[1])
            loss_sums.append(lsum)
            weight_sums.append(wsum)
        return cls(entry.code, param, weights is not None, plan.result_dtype == np.float32, out_shape,
                   count, loss_sums, weight_sums, special)

    # ------------------------------------------------------------------------------- merging

    def merge(self, other: "ExactState") -> "ExactState":
        """The state of the elements of both (exact: any order of merges gives the same
        state).  Raises ValueError unless both are of the same loss, parameter, weighting and
        output shape; the result dtype is float32 only where both are."""
        if not isinstance(other, ExactState):
            raise TypeError(f"can only merge an ExactState with another; got {type(other).__name__}")
        mine = (LOSSES[self.code].name, self.param, self.weighted, self.shape)
        theirs = (LOSSES[other.code].name, other.param, other.weighted, other.shape)
        if mine != theirs:
            raise ValueError(
                "states to merge must have the same (loss, parameter, weighted, outputs shape); "
                f"got {mine} and {theirs}")
        with np.errstate(invalid="ignore"):
            special = self._special + other._special
        return ExactState(self.code, self.param, self.weighted, self.float32 and other.float32, self.shape,
                          self.count + other.count, [_exact._add(a, b) for a, b in zip(self._loss, other._loss)],
                          [_exact._add(a, b) for a, b in zip(self._weight, other._weight)], special)

    __add__ = merge

    def __eq__(self, other) -> bool:
        if not isinstance(other, ExactState):
            return NotImplemented
        same = lambda a, b: all(_exact._fraction(*x) == _exact._fraction(*y) for x, y in zip(a, b))  # noqa: E731
        return ((self.code, self.param, self.weighted, self.float32, self.shape, self.count)
                == (other.code, other.param, other.weighted, other.float32, other.shape, other.count)
                and same(self._loss, other._loss) and same(self._weight, other._weight)
                and np.array_equal(self._special, other._special, equal_nan=True))

    __hash__ = None

    def __repr__(self) -> str:
        return (f"ExactState(loss={LOSSES[self.code].name!r}, outputs={self.shape}, count={self.count}, "
                f"weighted={self.weighted})")

    # ------------------------------------------------------------------------------ the result

    def result(self, reduction: str = "mean", *, root: bool = False):
        """The reduced loss of every output, the exact value rounded once (to nearest, ties
        to even) to the result dtype (float32 when every operand was float32 or narrower,
        else float64): the sum, or the sum over the count ("mean") or over the weight sum
        ("weighted_mean"), or that value's square root with ``root`` (rmse: the correctly
        rounded root of the exact mean).  A NumPy scalar for one output (axis None), else an
        array of the outputs' shape.  Non-finite inputs give the IEEE result of their sums
        ("special" in the module docstring).  An empty mean is nan with NumPy's
        ``RuntimeWarning: Mean of empty slice``; a weighted mean whose weights sum to exactly
        0 raises ValueError, as fastl2.mse does."""
        from ._passes import warn_empty_mean  # (not at import: _passes imports the backends)

        check_reduction(reduction, ("mean", "weighted_mean", "sum"))
        if reduction == "weighted_mean" and not self.weighted:
            reduction = "mean"  # (fastl2.mse: weighted_mean without weights is the mean)
        dtype = np.dtype(np.float32 if self.float32 else np.float64)
        n_out = len(self._loss)
        values = np.empty(n_out, dtype)
        empty = reduction != "sum" and self.count == 0
        if empty:  # (fastl2.mse's: nan, with NumPy's warning, for either mean)
            if n_out:
                warn_empty_mean()
            values[...] = np.nan
            return values.reshape(self.shape) if self.shape else values[0]
        for o in range(n_out):
            special_loss, special_weight = self._special[o].tolist()
            if dtype == np.float64 and not root and special_loss == special_weight == 0.0:
                quick = _quotient64(self._loss[o], self._weight[o] if reduction == "weighted_mean" else
                                    (self.count if reduction == "mean" else 1, 0))
                if quick is not None:
                    values[o] = quick
                    continue
            loss = _exact._fraction(*self._loss[o])
            weight = _exact._fraction(*self._weight[o]) if self.weighted else Fraction(self.count)
            if reduction == "weighted_mean" and weight == 0 and special_weight == 0.0:
                if not self.shape:  # (fastl2.mse's messages: pooled, and per output)
                    raise ValueError("reduction='weighted_mean' needs weights with a non-zero sum; "
                                     "the weights sum to 0")
                raise ValueError(
                    "reduction='weighted_mean' needs weights with a non-zero sum along the reduced "
                    f"axes; the weights sum to 0 at output index {tuple(int(i) for i in np.unravel_index(o, self.shape))}")
            if special_loss != 0.0 or special_weight != 0.0:
                values[o] = _ieee(loss, weight, special_loss, special_weight, self.count, reduction, root)
                continue
            values[o] = _exact.reduce_exact(loss, weight, self.count, reduction, root, dtype)
        return values.reshape(self.shape) if self.shape else values[0]

    # -------------------------------------------------------------------------- the plain form

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The state as plain arrays (module docstring): ``loss``, ``weight``, ``special``,
        ``count``, ``meta``."""
        def pack(sums):
            rows = [_limbs(*s) for s in sums]
            k = max((len(r) for r in rows), default=0)
            out = np.zeros((len(rows), k, 2))
            for o, r in enumerate(rows):
                if r:
                    out[o, :len(r)] = r
            return out.reshape(self.shape + (k, 2))

        return {"loss": pack(self._loss), "weight": pack(self._weight) if self.weighted else
                np.zeros(self.shape + (0, 2)), "special": self._special.reshape(self.shape + (2,)).copy(),
                "count": np.asarray(self.count, np.int64),
                "meta": np.array([self.code, self.param, self.weighted, self.float32], np.float64)}

    @classmethod
    def from_arrays(cls, arrays) -> "ExactState":
        """The state of :meth:`to_arrays`' arrays (any mapping with its keys, or a gather of
        several states' arrays: limbs side by side, counts and specials added); ValueError,
        starting "not the arrays of an ExactState", for anything else."""
        def refuse(why):
            return ValueError(f"not the arrays of an ExactState: {why}")

        try:
            meta = np.asarray(arrays["meta"], np.float64)
            loss, weight = (np.asarray(arrays[k], np.float64) for k in ("loss", "weight"))
            special = np.asarray(arrays["special"], np.float64)
            count = np.asarray(arrays["count"])
        except (KeyError, TypeError, ValueError) as error:
            raise refuse(f"{type(error).__name__}: {error}") from None
        if meta.shape != (4,) or not np.isfinite(meta).all():
            raise refuse(f"meta must hold 4 finite numbers; got {meta!r}")
        code, param, weighted, float32 = meta.tolist()
        if code not in range(len(LOSSES)) or weighted not in (0.0, 1.0) or float32 not in (0.0, 1.0):
            raise refuse(f"meta must be [loss code 0..{len(LOSSES) - 1}, parameter, 0 or 1, 0 or 1]; got {meta.tolist()}")
        code = int(code)
        try:
            valid = param == LOSSES[code].check_param(param if LOSSES[code].parameter is not None else 0.0)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise refuse(f"the parameter of loss {LOSSES[code].name!r} cannot be {param!r}")
        if count.shape != () or count.dtype.kind not in "iuf" or not float(count) == int(count) or int(count) < 0:
            raise refuse(f"count must be an integer >= 0; got {count!r}")
        shape = special.shape[:-1]
        if special.ndim < 1 or special.shape[-1] != 2 or ((special != 0) & np.isfinite(special)).any():
            raise refuse("special must have shape outputs + (2,) and hold only 0, nan and inf")
        for name, limbs in (("loss", loss), ("weight", weight)):
            if limbs.ndim != len(shape) + 2 or limbs.shape[:-2] != shape or limbs.shape[-1] != 2:
                raise refuse(f"{name} must have shape {shape} + (k, 2); got {limbs.shape}")
            digits, exponents = limbs[..., 0], limbs[..., 1]
            with np.errstate(invalid="ignore"):
                ok = (np.isfinite(limbs).all(axis=-1) & (np.abs(digits) < 2.0 ** 53) & (digits == np.trunc(digits))
                      & (exponents == np.trunc(exponents)) & (np.abs(exponents) <= _EXPONENT_LIMIT))
            if not ok.all():
                first = tuple(limbs.reshape(-1, 2)[np.argmin(ok.reshape(-1))].tolist())
                raise refuse(f"each {name} limb must be an integer digit below 2**53 and an integer exponent "
                             f"within +-{_EXPONENT_LIMIT}; got the limb {first}")
        if not weighted and weight.size and weight[..., 0].any():
            raise refuse("an unweighted state has no weight limbs")
        n_out = math.prod(shape)
        loss = loss.reshape(n_out, loss.shape[-2], 2)
        weight = weight.reshape(n_out, weight.shape[-2], 2)
        return cls(code, float(param), bool(weighted), bool(float32), tuple(shape), int(count),
                   [_from_limbs(loss[o]) for o in range(n_out)],
                   [_from_limbs(weight[o]) for o in range(n_out)], special.reshape(n_out, 2).copy())

    def __reduce__(self):
        return (ExactState.from_arrays, (self.to_arrays(),))


def _quotient64(numerator: tuple[int, int], divisor: tuple[int, int]) -> float | None:
    """(m * 2**e) / (k * 2**f) rounded once to float64, without Fractions: Python's int / int
    is correctly rounded (to nearest, ties to even), and the power of two then scales it
    exactly where the result is a normal float64; None where it is not (subnormal, overflow,
    or a divisor of 0: the caller's exact road decides those)."""
    (m, e), (k, f) = numerator, divisor
    if k == 0:
        return None
    if m == 0:
        return 0.0
    try:
        q = m / k  # (None below where q itself is subnormal: rounded at less than 53 bits)
        scaled = math.ldexp(q, e - f)
    except OverflowError:
        return None
    return scaled if abs(q) >= 2.0 ** -1022 and 2.0 ** -1022 <= abs(scaled) < math.inf else None


def _finite(t, p, w) -> np.ndarray:
    """Where every operand of an element is finite (integers and bools always are; bfloat16,
    NumPy kind "V", is read as float64)."""
    ok = np.ones(np.shape(p), bool)
    for a in (t, p, w):
        if a is not None and a.dtype.kind == "f":
            ok &= np.isfinite(a)
        elif a is not None and a.dtype.kind not in "iub":  # (bfloat16: as float32, exactly)
            ok &= np.isfinite(np.asarray(a, np.float32))
    return ok


def _special_sums(code, param, t, p, w, where) -> tuple[float, float]:
    """The IEEE sums of the element losses and of the weights of the elements ``where``
    (those with a non-finite operand): order-independent, as they hold only nan and inf
    (a finite loss beside them cannot change them)."""
    loss = LOSSES[code]
    with np.errstate(all="ignore"):
        p64 = np.asarray(p[where], np.float64)  # (exact for every dtype but integers past 2**53,
        # whose rounding cannot change a non-finite sum)
        d = p64 - np.asarray(t[where], np.float64) if t is not None else p64
        value = loss.value(d, param)
        if w is not None:
            weights = np.asarray(w[where], np.float64)
            value = weights * value
        special_loss = float(np.sum(value[~np.isfinite(value)]))
        special_weight = float(np.sum(weights[~np.isfinite(weights)])) if w is not None else 0.0
        special_loss = special_loss if special_loss == special_loss else math.nan  # (one nan)
    return special_loss, special_weight


def _ieee(loss: Fraction, weight: Fraction, special_loss: float, special_weight: float, count: int,
          reduction: str, root: bool) -> float:
    """A result with non-finite sums (or an empty mean): the exact finite parts in float64,
    the non-finite ones added, then the reduction in IEEE arithmetic."""
    with np.errstate(all="ignore"):
        total = np.float64(_exact.round_fraction(loss, np.float64)) + special_loss
        if reduction == "mean":
            total = total / np.float64(count)
        elif reduction == "weighted_mean":
            total = total / (np.float64(_exact.round_fraction(weight, np.float64)) + special_weight)
        return float(np.sqrt(total)) if root else float(total)
