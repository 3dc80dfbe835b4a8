"""What is measured: the ops, sizes and dtypes, the inputs of each cell and their exact values.

A cell is one (op, dtype, size). :func:`make_case` makes its inputs once, shared by every method;
:class:`Reference` computes what each method should have returned, exactly, so that the tables
show speed and accuracy side by side.
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

OPS = ("mse", "wmse", "grad")
OP_TITLES = {
    "mse": "mse: unweighted mean squared error, loss only",
    "wmse": "wmse: mean squared error with full-shape weights, loss only",
    "grad": "grad: mse loss and its gradient with respect to y_pred, in one call",
}
DEFAULT_SIZES = (16, 100_000, 10_000_000)  # overhead, in cache, memory bound: see cli's docstring
DEFAULT_DTYPES = ("float32", "float64")
SEED = 0
CHUNK = 1 << 18  # elements per chunk where exact values are computed, to bound their memory


@dataclass(frozen=True)
class Case:
    """The inputs of one benchmark cell (op, dtype, size), made once and shared by every method."""

    op: str
    y_true: np.ndarray
    y_pred: np.ndarray
    weights: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.y_pred.size

    @property
    def dtype(self) -> str:
        return self.y_pred.dtype.name

    @property
    def bytes_moved(self) -> int:
        """Bytes a one-pass kernel must move: every input read once, the gradient written once."""
        arrays = 2 + (self.weights is not None) + (self.op == "grad")
        return arrays * self.y_pred.nbytes


def make_case(op: str, dtype: str, n: int, seed: int = SEED) -> Case:
    """Uniform inputs on [0, 1) (weights on [0.5, 1.5) for ``wmse``), the same for every run.

    Each array is generated in its dtype, with no temporary (10⁸ float64 elements are 800 MB each).
    """
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    rng = np.random.default_rng(seed)
    y_true = rng.random(n, dtype=dtype)
    y_pred = rng.random(n, dtype=dtype)
    weights = None
    if op == "wmse":
        weights = rng.random(n, dtype=dtype)
        weights += np.asarray(0.5, dtype)
    return Case(op, y_true, y_pred, weights)


class Reference:
    """Exact values for one :class:`Case`, each loss computed once and on demand.

    The loss is the exact sum of the float64 element losses ``w * d * d`` with
    ``d = float64(y_pred) - float64(y_true)``, divided by ``n`` ("mean") or by the exact sum of
    ``w`` ("weighted_mean"): exact sums of the rounded float64 products, rounded once (what
    ``math.fsum`` returns, computed by :func:`exact_sum`), then one division. The exact gradient is
    ``d * (2 / n)`` in float64. Everything is computed in chunks of :data:`CHUNK` elements, so
    that no float64 copy of a whole input is ever made.
    """

    def __init__(self, case: Case) -> None:
        self.case = case
        self._sums: dict[str, float] = {}

    def _parts(self) -> Iterator[slice]:
        n = self.case.n
        return (slice(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK))

    def _diff(self, part: slice) -> np.ndarray:
        """``float64(y_pred) - float64(y_true)`` on ``part`` (float32 widens exactly)."""
        return self.case.y_pred[part].astype(np.float64) - self.case.y_true[part]

    def _element_losses(self, part: slice) -> np.ndarray:
        d = self._diff(part)
        weights = self.case.weights
        if weights is None:
            return d * d
        return weights[part].astype(np.float64) * d * d

    def _sum(self, what: str) -> float:
        """The exact sum of the element losses ("losses") or of the weights ("weights")."""
        if what not in self._sums:
            if what == "weights":
                chunks = (self.case.weights[p].astype(np.float64) for p in self._parts())
            else:
                chunks = (self._element_losses(p) for p in self._parts())
            self._sums[what] = math.fsum(itertools.chain.from_iterable(map(exact_parts, chunks)))
        return self._sums[what]

    def loss(self, reduction: str = "mean") -> float:
        """The exact loss for ``reduction`` "mean" or "weighted_mean"."""
        if reduction == "weighted_mean" and self.case.weights is not None:
            return self._sum("losses") / self._sum("weights")
        return self._sum("losses") / self.case.n

    def grad_parts(self) -> Iterator[tuple[slice, np.ndarray]]:
        """The exact float64 gradient of the mean, ``2 d / n``, in ``(slice, values)`` chunks."""
        scale = 2.0 / self.case.n
        for part in self._parts():
            yield part, self._diff(part) * scale

    def grad_error(self, grad: np.ndarray) -> float:
        """``max |grad - exact| / max |exact|`` over all elements (``max |grad|`` if exact is 0)."""
        grad = grad.reshape(-1)
        error = scale = 0.0
        for part, exact in self.grad_parts():
            error = max(error, float(np.max(np.abs(grad[part] - exact))))
            scale = max(scale, float(np.max(np.abs(exact))))
        return error / scale if scale else error


def exact_parts(values: np.ndarray) -> list[float]:
    """A few float64 numbers whose exact sum is the exact sum of the float64 array ``values``.

    ``math.fsum(exact_parts(x))`` is ``math.fsum(x)``, bit for bit, about ten times faster on
    large arrays: Rump, Ogita and Oishi's error-free extraction (*Accurate floating-point
    summation*, 2008). With ``sigma`` a power of two at least ``2 n max|x|``,
    ``q = (sigma + x) - sigma`` is ``x`` rounded to a multiple of ``u = sigma / 2**53``, exactly,
    and ``x - q`` is the rounding error of ``sigma + x``, also exactly; the ``n`` values ``q``
    (multiples of ``u``, each at most ``sigma / 2n``) sum exactly in float64 in any order, so
    ``np.sum(q)`` is exact. The remainders ``x - q`` (at most ``u``) are extracted again until
    none is left, each round about 2**53 / 2n smaller (three to five rounds for the inputs here).
    Non-finite values, and magnitudes near overflow or underflow, go to ``math.fsum`` instead.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[x != 0]
    parts: list[float] = []
    while x.size:
        largest = float(np.max(np.abs(x)))
        bound = 2.0 * x.size * largest
        if not (_TINY <= bound <= _HUGE):  # also nan and inf
            parts.append(math.fsum(x.tolist()))
            break
        sigma = math.ldexp(1.0, math.frexp(bound)[1])  # the power of two above bound
        q = (sigma + x) - sigma
        parts.append(float(np.sum(q)))
        x = x - q
        x = x[x != 0]
    return parts


_TINY = math.ldexp(1.0, -900)  # below, extraction could reach subnormal numbers: fsum instead
_HUGE = math.ldexp(1.0, 1000)  # above, sigma could overflow: fsum instead


def exact_sum(values: np.ndarray) -> float:
    """The exact sum of the float64 array ``values``, rounded once: ``math.fsum(values)``."""
    return math.fsum(exact_parts(values))


def relative_error(value: float, exact: float) -> float:
    """``|value - exact| / |exact|`` (the absolute error where ``exact`` is 0)."""
    error = abs(value - exact)
    return error / abs(exact) if exact != 0 else error


def unpack(value: Any) -> tuple[float, np.ndarray | None]:
    """Turn what a method returned (scalar, tensor, or ``(loss, grad)``) into ``(float, ndarray)``."""
    if isinstance(value, tuple):
        loss, grad = value
        return float(loss), _to_numpy(grad)
    return float(value), None


def _to_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor
        array = array.detach().numpy()
    return np.asarray(array)


def parse_size(text: str) -> int:
    """A positive element count: ``1000``, ``10_000`` or ``1e6``."""
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
        if not number.is_integer():
            raise argparse.ArgumentTypeError(f"not a whole number of elements: {text!r}") from None
        value = int(number)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a size must be at least 1, got {text!r}")
    return value


def split_list(text: str) -> list[str]:
    """The non-empty, stripped items of a comma-separated list (``"16, 1e6,"``: 16 and 1e6)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_sizes(texts: str | Sequence[str]) -> list[int]:
    """Sizes from ``"16,1e6"`` or ``["16", "1e6"]`` (both forms may be mixed)."""
    if isinstance(texts, str):
        texts = [texts]
    return [parse_size(t) for text in texts for t in split_list(text)]
