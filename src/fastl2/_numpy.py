"""The NumPy backend: the kernels of csrc/ written with NumPy, used when nothing is compiled.

Inputs are processed in chunks of a few blocks, so no temporary is larger than a chunk
(only the outputs are as large as the input).  Sums use the same fixed blocks as the
compiled kernels and the same pairwise double-double combination of block partials.
Inside a block, an error-free split replaces the kernels' compensated lanes (see
``_block_sums``), so results agree with the compiled backend to the last bit or two.
"""

from __future__ import annotations

import math

import numpy as np

from ._plan import BLOCK_SIZE, Plan

# Elements per chunk: two blocks keep every float64 temporary at 128 KiB.
CHUNK = 2 * BLOCK_SIZE

# Up to this many elements (less than a block), a block's sum is math.fsum's.
_SMALL = 256


def run(plan: Plan, want_sums: bool, grad=None, grad_scale: float = 0.0, grad_divisor: float = 1.0,
        elementwise=None):
    """One pass: (loss sum, weight sum), filling ``grad`` and ``elementwise`` if given.

    The gradient is ``(grad_scale * (w * l'(d))) / grad_divisor`` for float64 gradients and
    ``(grad_scale / grad_divisor) * (w * l'(d))`` for float32 ones, as in csrc/fastl2.h.
    """
    divide = grad is not None and grad.dtype == np.float64
    quotient = grad_scale / grad_divisor
    n = plan.n
    want_sums = want_sums and elementwise is None
    nblocks = -(-n // BLOCK_SIZE)
    if want_sums:
        loss_hi, loss_lo, weight_hi, weight_lo = np.zeros((4, nblocks))
    absolute = plan.loss == "absolute"
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        d = plan.y_pred[start:stop].astype(np.float64)
        if plan.y_true is not None:
            d -= plan.y_true[start:stop]
        w = _chunk_weights(plan, start, stop)
        if want_sums or elementwise is not None:
            losses = np.abs(d) if absolute else np.square(d)
            if w is not None:
                losses *= w
            if elementwise is not None:
                elementwise[start:stop] = losses
            if want_sums:
                blocks = slice(start // BLOCK_SIZE, -(-stop // BLOCK_SIZE))
                loss_hi[blocks], loss_lo[blocks] = _block_sums(losses)
                if w is not None:
                    weight_hi[blocks], weight_lo[blocks] = _block_sums(w)
        if grad is not None:
            g = _sign(d) if absolute else d
            if w is not None:
                g = g * w
            if divide:
                g = g * grad_scale
                g /= grad_divisor
            else:
                g *= quotient
            grad[start:stop] = g
    if not want_sums:
        return 0.0, 0.0
    weights = _combine(weight_hi, weight_lo) if plan.weights is not None else float(n)
    return _combine(loss_hi, loss_lo), weights


def weight_sum(plan: Plan) -> float:
    """Sum of the weights over all elements, blocked and combined as ``run`` does."""
    n = plan.n
    if plan.weights is None:
        return float(n)
    hi, lo = np.zeros((2, -(-n // BLOCK_SIZE)))
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        blocks = slice(start // BLOCK_SIZE, -(-stop // BLOCK_SIZE))
        hi[blocks], lo[blocks] = _block_sums(_chunk_weights(plan, start, stop))
    return _combine(hi, lo)


def _chunk_weights(plan: Plan, start: int, stop: int):
    """The float64 weight of each element in [start, stop), or None without weights."""
    if plan.weights is None:
        return None
    if plan.weights_repeat == 1:
        return plan.weights[start:stop].astype(np.float64)
    rows = np.arange(start, stop, dtype=np.int64) // plan.weights_repeat
    return plan.weights[rows].astype(np.float64)


def _block_sums(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums of each BLOCK_SIZE run of ``values`` as normalised double-doubles (hi, lo).

    Each value is split without error into a high part, on a grid coarse enough that a
    block's high parts add up exactly in float64, and the small rest; only the sum of the
    rests rounds, some 2**-39 below the block's largest value.  Blocks holding inf, nan or
    values near overflow are summed plainly, which propagates them as IEEE addition does.
    """
    if values.size <= _SMALL:  # one block: an exactly rounded sum is cheaper than the split
        try:
            total = math.fsum(values.tolist())
        except (OverflowError, ValueError):  # inf - inf, or an intermediate overflow
            with np.errstate(over="ignore", invalid="ignore"):
                total = float(np.add.reduce(values))
        return np.array([total]), np.zeros(1)
    return _segment_sums(values, np.arange(0, values.size, BLOCK_SIZE))


def _combine(hi: np.ndarray, lo: np.ndarray) -> float:
    """Pairwise double-double sum of block partials, bottom-up: the tree of csrc/internal.h."""
    if hi.size == 0:
        return 0.0
    return float(_combine_rows(hi.reshape(1, -1), lo.reshape(1, -1))[0])


# ---- N-d arrays in any layout ---------------------------------------------------------------

def run_strided(s, want_sums: bool, grad_scale: float = 0.0, grad_divisor: float = 1.0,
                weights_only: bool = False):
    """One pass over a ``fastl2._plan.Strided``, as ``fastl2._core.run_strided``.

    The arrays are read where they lie, a chunk of whole blocks at a time: basic slices of one
    row of the last dim where a chunk fits in one, else the chunk's elements gathered by index.
    Each output's run is cut into blocks of BLOCK_SIZE elements, summed as ``run`` sums a
    block and combined by the same tree.
    """
    outputs, reduced = s.n_outputs, s.n_reduced
    elementwise, grad = s.elementwise, s.grad
    want_sums = want_sums and elementwise is None
    if not (want_sums or weights_only or grad is not None or elementwise is not None):
        return None
    nblocks = -(-reduced // BLOCK_SIZE)
    items = outputs * nblocks
    sums = np.zeros((4, items))  # loss hi, lo, weights hi, lo per (output, block)
    divide = grad is not None and grad.dtype == np.float64
    quotient = grad_scale / grad_divisor
    absolute = s.loss == "absolute"
    for first, last in _chunks(outputs, reduced, nblocks):
        start, stop = _item_start(first, reduced, nblocks), _item_start(last, reduced, nblocks)
        w = None if s.weights is None else _take(s.weights, start, stop).astype(np.float64)
        if weights_only:
            if w is not None:
                sums[2, first:last], sums[3, first:last] = _segment_sums(
                    w, _segments(first, last, start, reduced, nblocks))
            continue
        d = _take(s.y_pred, start, stop).astype(np.float64)
        if s.y_true is not None:
            d -= _take(s.y_true, start, stop)
        if want_sums or elementwise is not None:
            losses = np.abs(d) if absolute else np.square(d)
            if w is not None:
                losses *= w
            if elementwise is not None:
                _put(elementwise, start, stop, losses)
            if want_sums:
                segments = _segments(first, last, start, reduced, nblocks)
                sums[0, first:last], sums[1, first:last] = _segment_sums(losses, segments)
                if w is not None:
                    sums[2, first:last], sums[3, first:last] = _segment_sums(w, segments)
        if grad is not None:
            g = _sign(d) if absolute else d
            if w is not None:
                g = g * w
            if divide:
                g = g * grad_scale
                g /= grad_divisor
            else:
                g *= quotient
            _put(grad, start, stop, g)
    if not (want_sums or weights_only):
        return None
    sums = sums.reshape(4, outputs, nblocks)
    if s.weights is None:
        weight_sums = np.broadcast_to(np.float64(reduced), (outputs,))
    else:
        weight_sums = _combine_rows(sums[2], sums[3])
    if weights_only:
        return None, weight_sums
    return _combine_rows(sums[0], sums[1]), weight_sums


def _item_start(item: int, reduced: int, nblocks: int) -> int:
    """The logical index of the first element of work item ``item`` (output, block)."""
    output, block = divmod(item, nblocks)
    return output * reduced + min(block * BLOCK_SIZE, reduced)


def _chunks(outputs: int, reduced: int, nblocks: int):
    """Ranges of work items of about CHUNK elements in all (at least one item each)."""
    items = outputs * nblocks
    per_chunk = max(1, CHUNK // min(reduced, BLOCK_SIZE)) if nblocks == 1 else max(1, CHUNK // BLOCK_SIZE)
    for first in range(0, items, per_chunk):
        yield first, min(items, first + per_chunk)


def _segments(first: int, last: int, start: int, reduced: int, nblocks: int) -> np.ndarray:
    """Offsets, within the chunk starting at logical index ``start``, of items first..last-1."""
    items = np.arange(first, last, dtype=np.int64)
    output, block = np.divmod(items, nblocks)
    return output * reduced + np.minimum(block * BLOCK_SIZE, reduced) - start


def _take(view: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Elements [start, stop) of ``view`` in C order, without touching the others."""
    if view.ndim == 1:
        return view[start:stop]
    inner = view.shape[-1]
    row, column = divmod(start, inner)
    if column + (stop - start) <= inner:  # one row of the last dim: a basic slice
        return view[np.unravel_index(row, view.shape[:-1])][column : column + stop - start]
    return view[np.unravel_index(np.arange(start, stop, dtype=np.int64), view.shape)]


def _put(view: np.ndarray, start: int, stop: int, values: np.ndarray) -> None:
    """Writes ``values`` to elements [start, stop) of ``view`` in C order."""
    if view.ndim == 1:
        view[start:stop] = values
        return
    inner = view.shape[-1]
    row, column = divmod(start, inner)
    if column + (stop - start) <= inner:
        view[np.unravel_index(row, view.shape[:-1])][column : column + stop - start] = values
    else:
        view[np.unravel_index(np.arange(start, stop, dtype=np.int64), view.shape)] = values


def _segment_sums(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums of the runs of ``values`` starting at ``offsets`` (each at most BLOCK_SIZE long),
    as normalised double-doubles, exactly as ``_block_sums`` sums blocks."""
    if offsets.size == 1 and values.size <= _SMALL:  # one short run: math.fsum's sum
        return _block_sums(values)
    if values.size == 0:
        return np.zeros(offsets.size), np.zeros(offsets.size)
    counts = np.diff(offsets, append=values.size)
    nonempty = counts > 0
    starts = offsets[nonempty]
    total_out = np.zeros(offsets.size)
    lo_out = np.zeros(offsets.size)
    with np.errstate(over="ignore", invalid="ignore"):
        peak = np.maximum.reduceat(np.abs(values), starts)
        grid = np.ldexp(1.0, np.frexp(peak)[1] + 14)
        per_element = np.repeat(grid, counts[nonempty])
        high = (values + per_element) - per_element
        hi = np.add.reduceat(high, starts)
        lo = np.add.reduceat(values - high, starts)
        total = hi + lo
        lo = lo - (total - hi)
        plain = ~(np.isfinite(grid) & np.isfinite(peak))
        if plain.any():
            total[plain] = np.add.reduceat(values, starts)[plain]
            lo[plain] = 0.0
    total_out[nonempty], lo_out[nonempty] = total, lo
    return total_out, lo_out


def _combine_rows(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """``_combine`` of each row of (outputs, blocks) partials: one float per output."""
    hi = hi.astype(np.float64)
    lo = lo.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        while hi.shape[1] > 1:
            m = hi.shape[1]
            odd = m % 2
            a_hi, b_hi = hi[:, : m - odd : 2], hi[:, 1::2]
            a_lo, b_lo = lo[:, : m - odd : 2], lo[:, 1::2]
            s = a_hi + b_hi
            bb = s - a_hi
            e = (a_hi - (s - bb)) + (b_hi - bb) + (a_lo + b_lo)
            new_hi = s + e
            new_lo = e - (new_hi - s)
            finite = np.isfinite(s)
            new_hi = np.where(finite, new_hi, s)
            new_lo = np.where(finite, new_lo, 0.0)
            if odd:
                new_hi = np.concatenate([new_hi, hi[:, -1:]], axis=1)
                new_lo = np.concatenate([new_lo, lo[:, -1:]], axis=1)
            hi, lo = new_hi, new_lo
        return hi[:, 0] + lo[:, 0]


def _sign(d: np.ndarray) -> np.ndarray:
    """-1, +1, or d itself where d is a zero (of either sign) or nan: the compiled kernels'
    sign (csrc/vectors.h fl2_vsign), so that mae_grad at y_pred == y_true is a zero with the
    sign of y_pred - y_true on every backend."""
    return np.where(d == 0, d, np.sign(d))
