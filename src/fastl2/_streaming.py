"""Streaming metrics: a loss over data that arrives in batches, or in shards on several
processes, with the bits of one call on all of it.

Each metric keeps the exact sums of :class:`fastl2._state.ExactState` (per output): an update
adds a batch's exact sums, a merge adds another metric's, and :meth:`StreamingMetric.result`
rounds the exact reduced value once.  Exact sums do not depend on the order of their terms, so
any split of the data into updates, merged in any order, on any number of processes, gives
the same bits as ``fastl2.mse(all_y_true, all_y_pred, all_weights, axis=..., reduction=...)``
(and ``mae``, ``rmse``, ``huber``).  Reference: the exact-state argument of Collange, Defour,
Graillat and Iakymchuk, "Numerical reproducibility for the parallel reduction on multi- and
many-core architectures", Parallel Computing 49 (2015).
"""

from __future__ import annotations

import threading

import numpy as np

from ._state import ExactState

__all__ = ["StreamingMetric", "MeanSquaredError", "MeanAbsoluteError", "RootMeanSquaredError", "HuberLoss"]


class StreamingMetric:
    """A loss accumulated over batches: :meth:`update`, :meth:`merge`, :meth:`result`,
    :meth:`reset`.  Use a subclass (:class:`MeanSquaredError`, :class:`MeanAbsoluteError`,
    :class:`RootMeanSquaredError`, :class:`HuberLoss`).

    Parameters
    ----------
    axis : None or 0
        None: one pooled value over every element of every batch; 0: one value per output
        (per index of the other axes: batches are rows of shape (n_i, ...), the same trailing
        shape in every batch).
    reduction : {"mean", "weighted_mean", "sum"}
        As fastl2.mse's: the sum over the element count, over the weight sum, or the sum.

    Updates from several threads are safe: each batch's exact sums are computed outside a lock
    and added under it, and exact sums add in any order to the same state.  A metric pickles
    (its state: a few float64 per output), and :meth:`to_arrays` / :meth:`from_arrays` give
    its state as plain NumPy arrays for any transport (``torch.distributed`` all-gather, MPI,
    a queue).

    >>> import fastl2, pickle
    >>> shard_a = fastl2.MeanSquaredError(axis=0).update([[1.0, 2.0]], [[1.0, 4.0]])
    >>> shard_b = fastl2.MeanSquaredError(axis=0).update([[0.0, 1.0], [2.0, 2.0]], [[3.0, 1.0], [2.0, 3.0]])
    >>> pickle.loads(pickle.dumps(shard_b)).merge(shard_a).result()
    array([3.        , 1.66666667])
    """

    _loss = "squared"
    _root = False

    def __init__(self, *, axis=None, reduction: str = "mean", delta: float = 1.0):
        if axis is not None and (isinstance(axis, bool) or axis != 0):
            raise ValueError(f"axis must be None (pooled) or 0 (one value per output); got {axis!r}")
        if reduction not in ("mean", "weighted_mean", "sum"):
            raise ValueError(f"reduction must be 'mean', 'weighted_mean' or 'sum'; got {reduction!r}")
        if self._root and reduction == "sum":
            raise ValueError("reduction='sum' has no root mean: use 'mean' or 'weighted_mean'")
        self.axis, self.reduction, self.delta = axis, reduction, float(delta)
        self._lock = threading.Lock()
        self._state: ExactState | None = None

    # ---------------------------------------------------------------------------- accumulating

    def update(self, y_true, y_pred, weights=None) -> "StreamingMetric":
        """Adds a batch: ``y_true``, ``y_pred`` of one shape (any real dtype, as fastl2.mse
        takes them), ``weights`` of that shape or one per sample (every update with weights, or
        none).  Returns the metric.  Raises what fastl2.mse raises for the same operands, and
        ValueError for a batch whose outputs or weighting differ from the earlier ones (the
        metric is then unchanged)."""
        batch = ExactState.of(self._loss, y_true, y_pred, weights, axis=self.axis, delta=self.delta)
        with self._lock:
            self._state = batch if self._state is None else self._merged(self._state, batch)
        return self

    def merge(self, other: "StreamingMetric") -> "StreamingMetric":
        """Adds the batches of ``other`` (a metric of the same class, axis, reduction and
        parameter; it is unchanged).  Returns this metric."""
        if type(other) is not type(self):
            raise TypeError(f"can only merge a {type(self).__name__} with another; got {type(other).__name__}")
        if (other.axis, other.reduction, other.delta) != (self.axis, self.reduction, self.delta):
            raise ValueError("metrics to merge must have the same axis, reduction and delta; got "
                             f"{(self.axis, self.reduction, self.delta)} and {(other.axis, other.reduction, other.delta)}")
        with other._lock:
            theirs = other._state
        if theirs is not None:
            with self._lock:
                self._state = theirs if self._state is None else self._merged(self._state, theirs)
        return self

    @staticmethod
    def _merged(mine: ExactState, theirs: ExactState) -> ExactState:
        if mine.weighted != theirs.weighted:
            raise ValueError("every update of a metric must have weights, or none has: a batch "
                             f"{'with' if theirs.weighted else 'without'} weights after batches "
                             f"{'with' if mine.weighted else 'without'}")
        if mine.shape != theirs.shape:
            raise ValueError(f"a batch of outputs of shape {theirs.shape} after batches of outputs "
                             f"of shape {mine.shape}")
        return mine.merge(theirs)

    def reset(self) -> None:
        """Forgets every batch."""
        with self._lock:
            self._state = None

    # ------------------------------------------------------------------------------ the result

    def result(self):
        """The loss of every batch so far, the exact value rounded once to the result dtype
        (float32 where every batch's operands were float32 or narrower, else float64: a batch
        of integers beside float32 ones makes it float64): a NumPy scalar (axis None) or an
        array of the outputs' shape (axis 0).  These are the bits of one fastl2 call on all
        the batches wherever that call is correctly rounded; where it is not (README,
        "Correctly rounded results": a sum that overflows inside the call, weights of mixed
        sign beyond the condition number 1024, integer weights past 2**53, which the call
        rounds to float64 first), this is the exact value, rounded once.  NaN's sign bit is
        not part of the promise.  Before any update, as fastl2's loss of empty arrays: nan
        (0.0 for "sum") with NumPy's ``RuntimeWarning: Mean of empty slice``.  A weighted
        mean whose weights sum to exactly 0 raises ValueError."""
        with self._lock:
            state = self._state
        if state is None:
            state = ExactState.of(self._loss, np.zeros(0), np.zeros(0), delta=self.delta)
        value = state.result(self.reduction, root=self._root)
        return value if self.axis is None else np.asarray(value)  # (axis=0: an array, 0-d for 1-D batches)

    compute = result  # (torchmetrics' name)

    # ---------------------------------------------------------------------- the plain form

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The state as plain NumPy arrays (``fastl2._state`` describes them; an empty dict
        before any update).  The arrays of several metrics, each passed to
        :meth:`from_arrays` and merged, give the merged metric."""
        with self._lock:
            state = self._state
        return {} if state is None else state.to_arrays()

    def from_arrays(self, arrays) -> "StreamingMetric":
        """Replaces the state by the one ``to_arrays`` gave (of a metric of this class, axis
        and parameter).  Returns the metric."""
        state = ExactState.from_arrays(arrays) if len(arrays) else None
        if state is not None:
            probe = ExactState.of(self._loss, np.zeros(1), np.zeros(1), delta=self.delta)
            if (state.code, state.param) != (probe.code, probe.param):
                raise ValueError(f"the arrays are the state of another loss or parameter than this "
                                 f"{type(self).__name__}'s")
            if self.axis is None and state.shape != ():
                raise ValueError(f"the arrays are the state of outputs of shape {state.shape}; this "
                                 f"{type(self).__name__} pools every element (axis=None)")
        with self._lock:
            self._state = state
        return self

    def __getstate__(self):
        return {"axis": self.axis, "reduction": self.reduction, "delta": self.delta,
                "state": self.to_arrays()}

    def __setstate__(self, saved):
        self.axis, self.reduction, self.delta = saved["axis"], saved["reduction"], saved["delta"]
        self._lock = threading.Lock()
        self._state = None
        self.from_arrays(saved["state"])

    def __repr__(self) -> str:
        count = 0 if self._state is None else self._state.count
        return (f"{type(self).__name__}(axis={self.axis!r}, reduction={self.reduction!r}"
                + (f", delta={self.delta!r}" if self._loss == "huber" else "")
                + f"; {count} elements per output)")


class MeanSquaredError(StreamingMetric):
    """Streaming ``fastl2.mse``: the mean (or weighted mean, or sum) of ``w (y_pred - y_true)²``
    over every batch (:class:`StreamingMetric`).

    >>> import fastl2
    >>> metric = fastl2.MeanSquaredError()
    >>> metric.update([1.0, 2.0], [1.5, 2.0]).update([3.0], [5.0]).result()
    np.float64(1.4166666666666667)
    >>> fastl2.mse([1.0, 2.0, 3.0], [1.5, 2.0, 5.0])
    np.float64(1.4166666666666667)
    """

    _loss = "squared"

    def __init__(self, *, axis=None, reduction: str = "mean"):
        super().__init__(axis=axis, reduction=reduction)


class MeanAbsoluteError(StreamingMetric):
    """Streaming ``fastl2.mae`` (:class:`StreamingMetric`).

    >>> import fastl2
    >>> fastl2.MeanAbsoluteError().update([1.0, 2.0], [1.5, 2.0]).update([3.0], [5.0]).result()
    np.float64(0.8333333333333334)
    """

    _loss = "absolute"

    def __init__(self, *, axis=None, reduction: str = "mean"):
        super().__init__(axis=axis, reduction=reduction)


class RootMeanSquaredError(StreamingMetric):
    """Streaming ``fastl2.rmse``: the square root of the exact mean, rounded once
    (:class:`StreamingMetric`; reductions "mean" and "weighted_mean").

    >>> import fastl2
    >>> fastl2.RootMeanSquaredError().update([1.0, 2.0], [1.5, 2.0]).update([3.0], [5.0]).result()
    np.float64(1.1902380714238083)
    """

    _loss = "squared"
    _root = True

    def __init__(self, *, axis=None, reduction: str = "mean"):
        super().__init__(axis=axis, reduction=reduction)


class HuberLoss(StreamingMetric):
    """Streaming ``fastl2.huber`` with threshold ``delta`` (> 0, finite; default 1.0)
    (:class:`StreamingMetric`).

    >>> import fastl2
    >>> fastl2.HuberLoss(delta=1.0).update([1.0, 2.0], [1.5, 2.0]).update([3.0], [5.0]).result()
    np.float64(0.5416666666666666)
    """

    _loss = "huber"

    def __init__(self, *, delta: float = 1.0, axis=None, reduction: str = "mean"):
        super().__init__(axis=axis, reduction=reduction, delta=delta)
