"""The Numba backend: the kernels of csrc/ written with Numba, bit-identical to them.

Every kernel mirrors csrc/block_template.h operation for operation: blocks of BLOCK_SIZE
elements, element i of a block accumulated into float64 lane i % 16 (with compensated lanes
when any input is float64), lanes and block partials combined by the same bottom-up pairwise
double-double tree (csrc/internal.h).  No fastmath: it would reorder the sums.

Each combination of (loss, y_true or not, weights or not, what is computed, compensated,
gradient dtype, serial or parallel) is its own compiled function, made on first use by
:func:`_kernel` with the choices as closure constants, so that no branch is left per element.
Large inputs run the blocks on Numba's threads (``prange``); each block writes its own
partial, so the result does not depend on the thread count.  Compiled code is cached on disk
(``cache=True``), where Numba finds a writable place; otherwise it is compiled in memory.
"""

from __future__ import annotations

import os
import threading

import numba
import numpy as np
from numba import njit, prange

from ._plan import BLOCK_SIZE, Plan

#: Interleaved float64 accumulators inside a block (csrc/fastl2.h: FL2_LANES).
LANES = 16

#: Below this many elements a call never enters Numba's thread pool (csrc: 16 blocks).
PARALLEL_THRESHOLD = 16 * BLOCK_SIZE

# What one kernel computes (csrc/internal.h: fl2_mode).
_SUMS, _SUMS_GRAD, _GRAD, _ELEM, _ELEM_GRAD, _WEIGHTS = range(6)

_requested_threads = 0  # 0: Numba's own setting (NUMBA_NUM_THREADS, numba.set_num_threads)
_forked_child = False  # set in a fork()ed child: its thread pool state is not to be trusted


def _after_fork_in_child() -> None:
    """A forked child runs serially: the parent's OpenMP pool does not survive fork()."""
    global _forked_child
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_num_threads(n: int) -> None:
    """Use ``n`` of Numba's threads for large inputs (0: Numba's own setting)."""
    global _requested_threads
    _requested_threads = max(0, int(n))


def get_num_threads() -> int:
    """The number of threads large inputs use."""
    if _forked_child:
        return 1
    if _requested_threads:
        return min(_requested_threads, numba.config.NUMBA_NUM_THREADS)
    return numba.get_num_threads()


def in_forked_child() -> bool:
    """True in a fork()ed child, where the kernels run serially."""
    return _forked_child


# ---- compilation --------------------------------------------------------------------------

_jit_lock = threading.Lock()


def _jit(function, **options):
    """``njit(cache=True)``, compiled in memory where no cache directory is writable.

    Numba caches next to the module (``__pycache__``), else in the user's cache directory,
    or in ``NUMBA_CACHE_DIR`` when that is set; it raises RuntimeError when none is writable.
    """
    try:
        return njit(cache=True, **options)(function)
    except RuntimeError:
        return njit(cache=False, **options)(function)


def _dd_add(a_hi, a_lo, b_hi, b_lo):
    """csrc/internal.h fl2_dd_add: error-free sum of two double-doubles, normalised."""
    s = a_hi + b_hi
    if not np.isfinite(s):
        return s, 0.0
    bb = s - a_hi
    e = (a_hi - (s - bb)) + (b_hi - bb)
    e += a_lo + b_lo
    hi = s + e
    return hi, e - (hi - s)


_dd_add = _jit(_dd_add, inline="always")


def _combine_lanes(hi, lo):
    """csrc/internal.h fl2_dd_combine over LANES pairs, in place; returns the total pair."""
    step = 1
    while step < LANES:
        for i in range(0, LANES - step, 2 * step):
            hi[i], lo[i] = _dd_add(hi[i], lo[i], hi[i + step], lo[i + step])
        step *= 2
    return hi[0], lo[0]


_combine_lanes = _jit(_combine_lanes, inline="always")


def _combine_partials(partials):
    """csrc/fastl2.c combine_partials: (loss, weight sum) of the per-block partials."""
    m = partials.shape[0]
    step = 1
    while step < m:
        for i in range(0, m - step, 2 * step):
            partials[i, 0], partials[i, 1] = _dd_add(
                partials[i, 0], partials[i, 1], partials[i + step, 0], partials[i + step, 1]
            )
            partials[i, 2], partials[i, 3] = _dd_add(
                partials[i, 2], partials[i, 3], partials[i + step, 2], partials[i + step, 3]
            )
        step *= 2
    return partials[0, 0] + partials[0, 1], partials[0, 2] + partials[0, 3]


_combine_partials = _jit(_combine_partials, nogil=True)


def _make_kernel(absolute, has_true, has_weights, mode, compensated, grad64, parallel):
    """The kernel of one specialisation: every argument is a compile-time constant in it."""
    want_sums = mode in (_SUMS, _SUMS_GRAD, _WEIGHTS)
    want_grad = mode in (_SUMS_GRAD, _GRAD, _ELEM_GRAD)
    want_elem = mode in (_ELEM, _ELEM_GRAD)
    weights_only = mode == _WEIGHTS
    block_size = BLOCK_SIZE
    lanes = LANES

    def kernel(y_true, y_pred, weights, repeat, grad, scale, divisor, elem, partials, nthreads):
        n = y_pred.shape[0]
        nblocks = (n + block_size - 1) // block_size
        quotient = scale / divisor
        if parallel:
            previous_threads = numba.get_num_threads()
            if nthreads > 0:
                numba.set_num_threads(nthreads)
        for b in prange(nblocks):
            start = b * block_size
            end = min(start + block_size, n)
            acc = np.zeros((4, lanes))  # loss sums, loss errors, weight sums, weight errors
            d = np.zeros(lanes)
            wk = np.ones(lanes)
            g = np.zeros(lanes)
            row = 0
            row_end = 0
            if has_weights:
                row = start // repeat
                row_end = (row + 1) * repeat
            i = start
            while i + lanes <= end:
                # All reads of the chunk come before its writes: grad may be y_pred.
                if not weights_only:
                    for k in range(lanes):
                        if has_true:
                            d[k] = np.float64(y_pred[i + k]) - np.float64(y_true[i + k])
                        else:
                            d[k] = np.float64(y_pred[i + k])
                if has_weights:
                    if repeat == 1:
                        for k in range(lanes):
                            wk[k] = np.float64(weights[i + k])
                    elif i + lanes <= row_end:
                        wr = np.float64(weights[row])
                        for k in range(lanes):
                            wk[k] = wr
                    else:
                        for k in range(lanes):
                            while i + k >= row_end:
                                row += 1
                                row_end += repeat
                            wk[k] = np.float64(weights[row])
                for k in range(lanes):
                    if not weights_only:
                        dk = d[k]
                        if absolute:
                            l = abs(dk)
                        else:
                            l = dk * dk
                        if has_weights:
                            wl = wk[k] * l
                        else:
                            wl = l
                        if want_sums:
                            if compensated:
                                t = acc[0, k] + wl
                                z = t - acc[0, k]
                                acc[1, k] += (acc[0, k] - (t - z)) + (wl - z)
                                acc[0, k] = t
                            else:
                                acc[0, k] += wl
                        if want_elem:
                            elem[i + k] = wl
                        if want_grad:
                            if absolute:
                                if dk > 0:
                                    gk = 1.0
                                elif dk < 0:
                                    gk = -1.0
                                else:
                                    gk = dk * 0.0
                            else:
                                gk = dk
                            if has_weights:
                                gk = wk[k] * gk
                            if grad64:
                                g[k] = (scale * gk) / divisor
                            else:
                                g[k] = quotient * gk
                    if has_weights and want_sums:
                        x = wk[k]
                        if compensated:
                            t = acc[2, k] + x
                            z = t - acc[2, k]
                            acc[3, k] += (acc[2, k] - (t - z)) + (x - z)
                            acc[2, k] = t
                        else:
                            acc[2, k] += x
                if want_grad:
                    for k in range(lanes):
                        grad[i + k] = g[k]
                i += lanes
            k = 0
            while i < end:
                dk = 0.0
                if not weights_only:
                    if has_true:
                        dk = np.float64(y_pred[i]) - np.float64(y_true[i])
                    else:
                        dk = np.float64(y_pred[i])
                wi = 1.0
                if has_weights:
                    if repeat == 1:
                        wi = np.float64(weights[i])
                    else:
                        while i >= row_end:
                            row += 1
                            row_end += repeat
                        wi = np.float64(weights[row])
                if not weights_only:
                    if absolute:
                        l = abs(dk)
                    else:
                        l = dk * dk
                    if has_weights:
                        wl = wi * l
                    else:
                        wl = l
                    if want_sums:
                        if compensated:
                            t = acc[0, k] + wl
                            z = t - acc[0, k]
                            acc[1, k] += (acc[0, k] - (t - z)) + (wl - z)
                            acc[0, k] = t
                        else:
                            acc[0, k] += wl
                    if want_elem:
                        elem[i] = wl
                    if want_grad:
                        if absolute:
                            if dk > 0:
                                gk = 1.0
                            elif dk < 0:
                                gk = -1.0
                            else:
                                gk = dk * 0.0
                        else:
                            gk = dk
                        if has_weights:
                            gk = wi * gk
                        if grad64:
                            grad[i] = (scale * gk) / divisor
                        else:
                            grad[i] = quotient * gk
                if has_weights and want_sums:
                    if compensated:
                        t = acc[2, k] + wi
                        z = t - acc[2, k]
                        acc[3, k] += (acc[2, k] - (t - z)) + (wi - z)
                        acc[2, k] = t
                    else:
                        acc[2, k] += wi
                i += 1
                k += 1
            if want_sums:
                if not compensated:
                    for k in range(lanes):
                        acc[1, k] = 0.0
                        acc[3, k] = 0.0
                partials[b, 0], partials[b, 1] = _combine_lanes(acc[0], acc[1])
                if has_weights:
                    partials[b, 2], partials[b, 3] = _combine_lanes(acc[2], acc[3])
                else:
                    partials[b, 2] = np.float64(end - start)
                    partials[b, 3] = 0.0
        if parallel:
            numba.set_num_threads(previous_threads)

    return _jit(kernel, parallel=parallel, nogil=True, error_model="numpy")


_kernels: dict = {}


def _kernel(key):
    function = _kernels.get(key)
    if function is None:
        with _jit_lock:
            function = _kernels.get(key)
            if function is None:
                function = _kernels[key] = _make_kernel(*key)
    return function


# ---- the backend interface ------------------------------------------------------------------

def _threads_for(n: int) -> int:
    """0 for the serial kernel, else the thread count to run the parallel one with."""
    if _forked_child or n < PARALLEL_THRESHOLD:
        return 0
    if _requested_threads:
        return min(_requested_threads, numba.config.NUMBA_NUM_THREADS)
    return numba.get_num_threads()


def _pass(plan: Plan, mode: int, grad, scale: float, divisor: float, elementwise):
    n = plan.n
    y_pred = plan.y_pred
    y_true = plan.y_true
    weights = plan.weights
    compensated = plan.result_dtype == np.float64
    threads = _threads_for(n)
    if mode == _WEIGHTS:
        y_true = None
        key = (False, False, True, mode, compensated, False, threads > 0)
    else:
        key = (
            plan.loss == "absolute",
            y_true is not None,
            weights is not None,
            mode,
            compensated,
            grad is not None and grad.dtype == np.float64,
            threads > 0,
        )
    partials = None
    if mode in (_SUMS, _SUMS_GRAD, _WEIGHTS):
        partials = np.empty((-(-n // BLOCK_SIZE), 4))
    _kernel(key)(
        y_true, y_pred, weights, plan.weights_repeat, grad, scale, divisor, elementwise, partials,
        threads,
    )
    return partials


def run(plan: Plan, want_sums: bool, grad=None, grad_scale: float = 0.0, grad_divisor: float = 1.0,
        elementwise=None):
    """One pass: (loss sum, weight sum), filling ``grad`` and ``elementwise`` if given.

    The gradient is ``(grad_scale * (w * l'(d))) / grad_divisor`` for float64 gradients and
    ``(grad_scale / grad_divisor) * (w * l'(d))`` for float32 ones, as in csrc/fastl2.h.
    """
    if elementwise is not None:
        mode = _ELEM_GRAD if grad is not None else _ELEM
    elif want_sums:
        mode = _SUMS_GRAD if grad is not None else _SUMS
    elif grad is not None:
        mode = _GRAD
    else:
        return 0.0, 0.0
    if plan.n == 0:
        return 0.0, 0.0
    partials = _pass(plan, mode, grad, float(grad_scale), float(grad_divisor), elementwise)
    if partials is None:
        return 0.0, 0.0
    loss_sum, weight_sum = _combine_partials(partials)
    return float(loss_sum), float(weight_sum)


def weight_sum(plan: Plan) -> float:
    """Sum of the weights over all elements, bit-identical to ``run``'s weight sum."""
    if plan.weights is None or plan.n == 0:
        return float(plan.n)
    partials = _pass(plan, _WEIGHTS, None, 0.0, 1.0, None)
    return float(_combine_partials(partials)[1])
