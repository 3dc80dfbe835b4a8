"""Type aliases of fastl2's annotations (private: the public API's signatures use them).

fastl2's modules import this one only under ``typing.TYPE_CHECKING``: at run time their
annotations stay strings (``from __future__ import annotations``), so importing fastl2 imports
neither this module nor ``numpy.typing``.  It imports at run time all the same (its aliases are
real objects), for tools that resolve the annotations.  Not public: users annotate with
``numpy.typing`` and ``typing.Literal`` themselves.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, SupportsIndex, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ArrayLike", "NDArray", "Reduction", "ReducingReduction", "MeanReduction", "Axis",
    "ReducingAxis", "FloatScalar", "FloatArray", "ArrayObject",
]

#: Every ``reduction`` of the losses and gradients.
Reduction: TypeAlias = Literal["mean", "weighted_mean", "sum", "none"]
#: The reductions that reduce (to a scalar, or along ``axis``).
ReducingReduction: TypeAlias = Literal["mean", "weighted_mean", "sum"]
#: The reductions of :func:`fastl2.rmse`.
MeanReduction: TypeAlias = Literal["mean", "weighted_mean"]

#: ``axis`` as NumPy takes it (any ``operator.index``-able int, or a tuple of them), or None.
ReducingAxis: TypeAlias = SupportsIndex | tuple[SupportsIndex, ...]
Axis: TypeAlias = SupportsIndex | tuple[SupportsIndex, ...] | None

#: A loss or penalty: ``numpy.float32`` or ``numpy.float64`` (float32 for float16/float32 inputs).
FloatScalar: TypeAlias = np.floating[Any]
#: Losses per output or element, and gradients: float16, float32 or float64 ndarrays.
FloatArray: TypeAlias = NDArray[np.floating[Any]]


class ArrayObject(Protocol):
    """What fastl2 reads as one array of its own, not as a sequence of arrays: an object with
    ``__array__`` (an ndarray, a tensor; a NumPy scalar too, read as a 0-d array, which
    l2_penalty_grad's overloads take apart).  ``ArrayLike`` takes every such object; fastl2
    also reads objects with only ``__dlpack__``, which ``ArrayLike`` does not describe."""

    def __array__(self, *args: Any, **kwargs: Any) -> Any: ...
