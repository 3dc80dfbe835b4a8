"""The NumPy backend: the kernels of csrc/ written with NumPy, used when nothing is compiled.

Inputs are processed in chunks of CHUNK elements (whole blocks), so no temporary is larger
than a chunk (only the outputs are as large as the input).  Sums are the compiled kernels'
operation for operation (csrc/block_template.h), so every result has their bits: element i
of a block goes to float64 lane i % LANES, each lane adds its elements in order (with
TwoSum-compensated lanes when any input is float64, plain ones otherwise), the lanes and then
the block partials are combined by the same pairwise double-double tree (csrc/internal.h).
Each lane's additions in order are NumPy's ``add.accumulate`` (sequential by definition), and
the compensated lanes' errors are TwoSum's, taken from consecutive running sums.

A pass is a Python loop, so signal handlers run in it: one that fork()s ends the pass in the
child with fastl2._backends.forked_mid_call_error, as on the compiled and numba backends
(:func:`_unless_forked`).
"""

from __future__ import annotations

import os

import numpy as np

from ._backends import forked_mid_call_error
from ._halves import fma_array, half_gradient, round_half
from ._losses import diff_err, exact_gradient_array, weigh_err_array
from ._plan import BLOCK_SIZE, Plan

# Elements per chunk: two blocks keep every float64 temporary at 128 KiB.
CHUNK = 2 * BLOCK_SIZE

#: Interleaved float64 accumulators inside a block (csrc/fastl2.h: FL2_LANES).
LANES = 16


def _unless_forked(chunks):
    """The chunks of a pass, raising forked_mid_call_error after one in a child that a signal
    handler fork()ed meanwhile: the outcome of the other backends, whose threads the child
    lacks (a Python loop runs handlers between its chunks)."""
    pid = os.getpid()
    for chunk in chunks:
        yield chunk
        if os.getpid() != pid:
            raise forked_mid_call_error()


def run(plan: Plan, want_sums: bool, grad=None, grad_scale: float = 0.0, grad_divisor: float = 1.0,
        elementwise=None, grad_divisor_lo: float = 0.0):
    """One pass: (loss sum, weight sum, loss sum's rest, weight sum's rest) (double-doubles, as
    ``fastl2._core.run``'s), filling ``grad`` and ``elementwise`` if given.

    The gradient is ``grad_scale * w * l'(d) / (grad_divisor + grad_divisor_lo)`` within an ulp
    for float64 gradients (fastl2._losses.exact_gradient) and ``(grad_scale / grad_divisor) *
    (w * l'(d))`` for float32 ones, as in csrc/fastl2.h.
    """
    n = plan.n
    want_sums = want_sums and elementwise is None
    compensated = _compensated(plan.y_true, plan.y_pred, plan.weights)
    nblocks = -(-n // BLOCK_SIZE)
    if want_sums:
        loss_hi, loss_lo, weight_hi, weight_lo = np.zeros((4, nblocks))
    loss, param = plan.loss, plan.param
    exact = want_sums and compensated
    exact_grad = grad is not None and grad.dtype == np.float64
    step = _chunk(exact or exact_grad)
    for start in _unless_forked(range(0, n, step)):
        stop = min(n, start + step)
        y_true = None if plan.y_true is None else plan.y_true[start:stop]
        d, de = _difference(y_true, plan.y_pred[start:stop], exact or exact_grad)
        w = _chunk_weights(plan, start, stop)
        if want_sums or elementwise is not None:
            losses, errors = _losses(loss, param, d, de, w, exact)
            if elementwise is not None:
                elementwise[start:stop] = losses
            if want_sums:
                blocks = slice(start // BLOCK_SIZE, -(-stop // BLOCK_SIZE))
                loss_hi[blocks], loss_lo[blocks] = _block_sums(losses, compensated, errors)
                if w is not None:
                    weight_hi[blocks], weight_lo[blocks] = _block_sums(w, compensated)
        if grad is not None:
            grad[start:stop] = _gradient(loss, param, d, de, w, grad.dtype, grad_scale, grad_divisor,
                                         grad_divisor_lo)
    if not want_sums:
        return 0.0, 0.0, 0.0, 0.0
    weights = _combine(weight_hi, weight_lo) if plan.weights is not None else (float(n), 0.0)
    loss_sum = _combine(loss_hi, loss_lo)
    return loss_sum[0], weights[0], loss_sum[1], weights[1]


def _difference(t, p, exact: bool):
    """A chunk's differences d = p - t as float64 (t None: p) and, with ``exact``, their
    rounding errors (d + de is p - t exactly: fastl2._losses.diff_err, csrc/losses.h
    fl2_diff_err), else None."""
    p = p.astype(np.float64)
    if t is None:
        return p, None
    if not exact:
        p -= t
        return p, None
    with np.errstate(invalid="ignore", over="ignore"):
        return diff_err(p, t.astype(np.float64, copy=False))


def _losses(loss, param, d, de, w, exact: bool):
    """A chunk's terms w * l(d) and, with ``exact``, their own rounding errors (the float64
    kernels' exact element terms: csrc/block_run.h EXACT), else None: for weighted terms an
    array (xe, ACCUMULATE_E's), for unweighted ones ``(fma(x, y, -l), a, b)`` of the term's
    parts (fastl2._losses value_parts; ACCUMULATE_P)."""
    if not exact:
        losses = loss.value(d, param)
        if w is not None:
            losses *= w
        return losses, None
    de = np.zeros_like(d) if de is None else de
    with np.errstate(invalid="ignore", over="ignore"):
        if w is None:  # the term in parts (csrc/block_template.h ACCUMULATE_P)
            x, y, a, b = loss.value_parts(d, de, param)
            losses = x * y
            rest = np.negative(losses)
            rest = fma_array(x, y, rest)
            return losses, (rest, a, b)
        losses, errors = loss.value_err(d, de, param)
        losses, errors = weigh_err_array(w, losses, errors)
    return losses, errors


def _gradient(loss, param, d, de, w, dtype, grad_scale, grad_divisor, grad_divisor_lo=0.0):
    """One chunk's gradient ``grad_scale * w * l'(d + de) / (grad_divisor + grad_divisor_lo)``
    (de: the difference's rounding error, or None), with the C kernels' operations: a float64
    gradient the exact one within an ulp (fastl2._losses.exact_gradient, csrc/losses.h
    fl2_grad_exact), a float32 one multiplies by the quotient (GRAD_VALUE in
    csrc/block_template.h); a float16 or bfloat16 one is the exact gradient rounded once
    (fastl2._halves)."""
    g = loss.derivative(d, param)
    if dtype == np.float64:
        ge = loss.derivative_err(d, np.zeros_like(d) if de is None else de, param)
        if w is not None:
            g, ge = weigh_err_array(w, g, ge)
        return exact_gradient_array(g, ge, grad_scale, grad_divisor, grad_divisor_lo)
    if w is not None:
        g = g * w
    if dtype.itemsize == 2:
        g = round_half(half_gradient(g, grad_scale, grad_divisor), dtype)
    else:
        g *= grad_scale / grad_divisor
    return g


def weight_sum(plan: Plan) -> tuple[float, float]:
    """Sum of the weights over all elements, blocked and combined as ``run`` does: its
    double-double (the sum rounded once, the rest)."""
    n = plan.n
    if plan.weights is None:
        return float(n), 0.0
    hi, lo = np.zeros((2, -(-n // BLOCK_SIZE)))
    for start in _unless_forked(range(0, n, CHUNK)):
        stop = min(n, start + CHUNK)
        blocks = slice(start // BLOCK_SIZE, -(-stop // BLOCK_SIZE))
        hi[blocks], lo[blocks] = _block_sums(_chunk_weights(plan, start, stop),
                                              _compensated(plan.y_true, plan.y_pred, plan.weights))
    total, rest = _combine(hi, lo)
    return float(total), float(rest)


def _chunk_weights(plan: Plan, start: int, stop: int):
    """The float64 weight of each element in [start, stop), or None without weights."""
    if plan.weights is None:
        return None
    if plan.weights_repeat == 1:
        return plan.weights[start:stop].astype(np.float64)
    rows = np.arange(start, stop, dtype=np.int64) // plan.weights_repeat
    return plan.weights[rows].astype(np.float64)


def _compensated(*arrays) -> bool:
    """Whether the kernels keep compensated lanes: when any input is float64 (csrc/: the
    result is float64)."""
    return any(a is not None and a.dtype == np.float64 for a in arrays)


def _block_sums(values: np.ndarray, compensated: bool, errors=None) -> tuple[np.ndarray, np.ndarray]:
    """Each BLOCK_SIZE run of ``values`` summed as the kernels sum a block: (hi, lo) arrays."""
    return _segment_sums(values, np.arange(0, values.size, BLOCK_SIZE, dtype=np.int64), compensated,
                         errors)


def _combine(hi: np.ndarray, lo: np.ndarray) -> tuple[float, float]:
    """Pairwise double-double sum of block partials, bottom-up: the tree of csrc/internal.h;
    (its value rounded once, its rest)."""
    if hi.size == 0:
        return 0.0, 0.0
    total, rest = _combine_rows(hi.reshape(1, -1), lo.reshape(1, -1))
    return float(total[0]), float(rest[0])


# ---- N-d arrays in any layout ---------------------------------------------------------------

def run_strided(s, want_sums: bool, grad_scale: float = 0.0, grad_divisor: float = 1.0,
                weights_only: bool = False, grad_divisor_lo: float = 0.0):
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
    loss, param = s.loss, s.param
    compensated = _compensated(s.y_true, s.y_pred, s.weights)
    exact = want_sums and compensated
    exact_grad = grad is not None and grad.dtype == np.float64
    for first, last in _unless_forked(_chunks(outputs, reduced, nblocks, _chunk(exact or exact_grad))):
        start, stop = _item_start(first, reduced, nblocks), _item_start(last, reduced, nblocks)
        w = None if s.weights is None else _take(s.weights, start, stop).astype(np.float64)
        if weights_only:
            if w is not None:
                sums[2, first:last], sums[3, first:last] = _segment_sums(
                    w, _segments(first, last, start, reduced, nblocks), compensated)
            continue
        y_true = None if s.y_true is None else _take(s.y_true, start, stop)
        d, de = _difference(y_true, _take(s.y_pred, start, stop), exact or exact_grad)
        if want_sums or elementwise is not None:
            losses, errors = _losses(loss, param, d, de, w, exact)
            if elementwise is not None:
                _put(elementwise, start, stop, losses)
            if want_sums:
                segments = _segments(first, last, start, reduced, nblocks)
                sums[0, first:last], sums[1, first:last] = _segment_sums(losses, segments, compensated,
                                                                         errors)
                if w is not None:
                    sums[2, first:last], sums[3, first:last] = _segment_sums(w, segments, compensated)
        if grad is not None:
            _put(grad, start, stop, _gradient(loss, param, d, de, w, grad.dtype, grad_scale, grad_divisor,
                                              grad_divisor_lo))
    if not (want_sums or weights_only):
        return None
    sums = sums.reshape(4, outputs, nblocks)
    if s.weights is None:
        weight_sums = np.broadcast_to(np.float64(reduced), (outputs,))
        weight_lo = np.broadcast_to(np.float64(0.0), (outputs,))
    else:
        weight_sums, weight_lo = _combine_rows(sums[2], sums[3])
    if weights_only:
        return None, weight_sums, None, weight_lo
    loss_sums, loss_lo = _combine_rows(sums[0], sums[1])
    return loss_sums, weight_sums, loss_lo, weight_lo


def _item_start(item: int, reduced: int, nblocks: int) -> int:
    """The logical index of the first element of work item ``item`` (output, block)."""
    output, block = divmod(item, nblocks)
    return output * reduced + min(block * BLOCK_SIZE, reduced)


def _chunk(exact: bool) -> int:
    """Elements per chunk: one block where the terms' exact errors are computed (their
    temporaries are many: fastl2._losses' value_err forms), else CHUNK."""
    return BLOCK_SIZE if exact else CHUNK


def _chunks(outputs: int, reduced: int, nblocks: int, chunk: int = CHUNK):
    """Ranges of work items of about ``chunk`` elements in all (at least one item each)."""
    items = outputs * nblocks
    # (each item takes a row of LANES-element rows in _segment_sums: short items count whole)
    span = -(-min(reduced, BLOCK_SIZE) // LANES) * LANES
    per_chunk = max(1, chunk // span) if nblocks == 1 else max(1, chunk // BLOCK_SIZE)
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


def _segment_sums(values: np.ndarray, offsets: np.ndarray, compensated: bool,
                  terms_errors=None) -> tuple[np.ndarray, np.ndarray]:
    """The partial (hi, lo) of each run of ``values`` from ``offsets[j]`` to the next offset
    (the last to the end; each at most BLOCK_SIZE long), bit for bit as the kernels' block.

    Element i of a run goes to lane i % LANES; each lane adds its elements in order
    (ACCUMULATE of csrc/block_template.h: TwoSum with the errors summed beside when
    ``compensated``, else a plain sum); a lane that gets no element of a row is left as it
    is.  The LANES (sum, error) pairs are then combined by the double-double tree.
    ``terms_errors`` (the float64 kernels' exact element terms): each value's own rounding
    error, added to its lane's error with the addition's (an array: ACCUMULATE_E's xe), or
    ``(r, a, b)`` of an unweighted term's parts (ACCUMULATE_P: the lane's error takes
    fma(a, b, e + r), e the addition's error).
    """
    nseg = offsets.size
    if nseg == 0:
        return np.zeros(0), np.zeros(0)
    counts = np.diff(offsets, append=values.size)
    rows = int(-(-int(counts.max()) // LANES))
    if rows == 0:
        return np.zeros(nseg), np.zeros(nseg)
    width = rows * LANES
    # A row of zeros first: every lane starts at +0.0 and adds its first element to it, as in
    # the kernels (a lane is never -0.0); after a run's last element, zeros change no lane.
    padded = np.zeros((nseg, rows + 1, LANES))
    parts = () if terms_errors is None else (
        tuple(terms_errors) if isinstance(terms_errors, tuple) else (terms_errors,))
    if np.all(counts == width) and np.array_equal(offsets, np.arange(nseg, dtype=np.int64) * width):
        padded[:, 1:] = values[: nseg * width].reshape(nseg, rows, LANES)  # whole blocks
        extra = [part[: nseg * width].reshape(nseg, rows, LANES) for part in parts]  # (views)
    else:
        extra = [np.zeros((nseg, rows, LANES)) for _ in parts]  # (zeros past a run's end)
        segment = np.repeat(np.arange(nseg), counts)
        position = np.arange(values.size - int(offsets[0]), dtype=np.int64) - np.repeat(offsets - offsets[0], counts)
        padded.reshape(nseg, width + LANES)[segment, position + LANES] = values[int(offsets[0]):]
        for into, part in zip(extra, parts):
            into.reshape(nseg, width)[segment, position] = part[int(offsets[0]):]
    with np.errstate(over="ignore", invalid="ignore"):
        # Each lane's running sums in order: add.accumulate is sequential (running[r] =
        # running[r-1] + x[r]), the kernels' additions exactly.
        running = np.add.accumulate(padded, axis=1)
        if not compensated:
            return _combine_pairs(running[:, -1, :], np.zeros((nseg, LANES)))
        before, sums = running[:, :-1], running[:, 1:]
        # TwoSum's error of each addition, (before - (sums - z)) + (x - z), in place
        z = sums - before
        errors = sums - z
        np.subtract(before, errors, out=errors)
        np.subtract(padded[:, 1:], z, out=z)
        errors += z
        sums = running[:, -1, :].copy()
        del z, before, running, padded
        if len(extra) == 1:
            errors += extra[0]  # ((...) + (x - z)) + xe: ACCUMULATE_E's order
        elif extra:
            errors += extra[0]  # fma(a, b, e + fma(x, y, -l)): ACCUMULATE_P's
            errors = fma_array(extra[1], extra[2], errors)
        errors[:, 0] += 0.0  # (the kernels' error lanes start at +0.0 too)
        np.add.accumulate(errors, axis=1, out=errors)  # added in order, as the kernels do
        errors = errors[:, -1, :]
    return _combine_pairs(sums, errors)


def _combine_pairs(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairwise double-double tree of csrc/internal.h (fl2_dd_combine, fl2_dd_add) over
    each row of (rows, m) pairs: a (hi, lo) pair per row."""
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
    return hi[:, 0], lo[:, 0]


def _combine_rows(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_combine`` of each row of (outputs, blocks) partials: one double-double per output,
    as its value rounded once and its rest (csrc/driver.h fl2_dd_put; the rest 0 where the value
    is not finite)."""
    hi, lo = _combine_pairs(hi, lo)
    with np.errstate(invalid="ignore", over="ignore"):
        total = hi + lo
        return total, np.where(np.isfinite(total), lo - (total - hi), 0.0)
