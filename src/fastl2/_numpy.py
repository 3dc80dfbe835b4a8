"""The NumPy backend: the kernels of csrc/ written with NumPy, used when nothing is compiled.

Inputs are processed in chunks of a few blocks, so no temporary is larger than a chunk
(only the outputs are as large as the input).  Sums use the same fixed blocks as the
compiled kernels and the same pairwise double-double combination of block partials;
inside a block NumPy's own pairwise summation replaces the kernels' lanes, so results agree
with the compiled backend within an ulp or two, not bit for bit.
"""

from __future__ import annotations

import numpy as np

from ._plan import BLOCK_SIZE, Plan

# Elements per chunk: two blocks keep every float64 temporary at 128 KiB.
CHUNK = 2 * BLOCK_SIZE


def run(plan: Plan, want_sums: bool, grad=None, grad_scale: float = 0.0, elementwise=None):
    """One pass: (loss sum, weight sum), filling ``grad`` and ``elementwise`` if given."""
    n = plan.n
    want_sums = want_sums and elementwise is None
    nblocks = -(-n // BLOCK_SIZE)
    loss_partials = np.zeros(nblocks) if want_sums else None
    weight_partials = np.zeros(nblocks) if want_sums else None
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
                offsets = np.arange(0, stop - start, BLOCK_SIZE)
                loss_partials[blocks] = np.add.reduceat(losses, offsets)
                weight_partials[blocks] = (
                    np.add.reduceat(w, offsets) if w is not None else np.diff(offsets, append=stop - start)
                )
        if grad is not None:
            g = np.sign(d) if absolute else d
            if w is not None:
                g = g * w
            g *= grad_scale
            grad[start:stop] = g
    if not want_sums:
        return 0.0, 0.0
    return _combine(loss_partials), _combine(weight_partials)


def weight_sum(plan: Plan) -> float:
    """Sum of the weights over all elements, blocked and combined as ``run`` does."""
    n = plan.n
    if plan.weights is None:
        return float(n)
    partials = np.zeros(-(-n // BLOCK_SIZE))
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        w = _chunk_weights(plan, start, stop)
        partials[start // BLOCK_SIZE : -(-stop // BLOCK_SIZE)] = np.add.reduceat(
            w, np.arange(0, stop - start, BLOCK_SIZE)
        )
    return _combine(partials)


def _chunk_weights(plan: Plan, start: int, stop: int):
    """The float64 weight of each element in [start, stop), or None without weights."""
    if plan.weights is None:
        return None
    if plan.weights_repeat == 1:
        return plan.weights[start:stop].astype(np.float64)
    rows = np.arange(start, stop, dtype=np.int64) // plan.weights_repeat
    return plan.weights[rows].astype(np.float64)


def _combine(partials: np.ndarray) -> float:
    """Pairwise double-double sum of block partials, bottom-up: the tree of csrc/internal.h."""
    if partials.size == 0:
        return 0.0
    hi = partials.astype(np.float64)
    lo = np.zeros_like(hi)
    with np.errstate(invalid="ignore", over="ignore"):
        while hi.size > 1:
            odd = hi.size % 2
            a_hi, b_hi = hi[: hi.size - odd : 2], hi[1::2]
            a_lo, b_lo = lo[: hi.size - odd : 2], lo[1::2]
            s = a_hi + b_hi
            bb = s - a_hi
            e = (a_hi - (s - bb)) + (b_hi - bb) + (a_lo + b_lo)
            new_hi = s + e
            new_lo = e - (new_hi - s)
            finite = np.isfinite(s)
            new_hi = np.where(finite, new_hi, s)
            new_lo = np.where(finite, new_lo, 0.0)
            if odd:
                new_hi = np.append(new_hi, hi[-1])
                new_lo = np.append(new_lo, lo[-1])
            hi, lo = new_hi, new_lo
    return float(hi[0] + lo[0])
