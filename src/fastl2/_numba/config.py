"""The numba backend's settings (as csrc/config.c): its sizes and thresholds, what one kernel
computes, and how many threads large inputs run on (a fork()ed child: one).

The thread count is read by the launches (driver.py, fast_paths.py) on every call, as
``config._requested_threads`` and ``config._forked_child``: set here, never copied.
"""

from __future__ import annotations

import os
import platform

import numba
import numpy as np
from numba.core import config as numba_config

from .._losses import SQUARED
from .._plan import BLOCK_SIZE

#: Interleaved float64 accumulators inside a block (csrc/fastl2.h: FL2_LANES).
LANES = 16

#: Below this many elements a call runs on the calling thread alone (csrc/config.c has its own,
#: 8 blocks: its pool's threads spin briefly and take blocks without a Python call each).  Two
#: threads of pool.py gain from here on; below, waking a Python thread (some 50-200 us on a VM)
#: and the chunks' kernel calls from Python cost more than they save.  Measured (2 cores,
#: mse, median us, 1 thread -> 2): 2**20 float32 250 -> 336, float64 1280 -> 767; 2**21
#: float32 1272 -> 540, float64 2313 -> 1799 (bench: README, "The numba backend's threads").
PARALLEL_THRESHOLD = 256 * BLOCK_SIZE

#: Gradients of at least this many bytes are written with streaming (non-temporal) stores on
#: x86-64, past the caches, as csrc/config.c does (FL2_DEFAULT_STREAM_MIN_BYTES).
STREAM_MIN_BYTES = 16 << 20
_STREAMING_STORES = platform.machine().lower() in ("x86_64", "amd64")

#: Serial calls of up to this many blocks keep their block partials on the stack.
STACK_BLOCKS = 16

#: run_strided: the most dims (csrc/fastl2.h FL2_MAX_DIMS), the operands (y_true, y_pred,
#: weights, grad, elementwise: FL2_OP_*), and the tasks (ranges of work items) per thread.
_MAX_DIMS = 64
_NOPS = 5
#: The most outputs the columns kernel sums at once (csrc/strided.c FL2_MAX_COLUMNS): its
#: accumulators take 512 bytes per output.
_MAX_COLUMNS = 1024
_TASKS_PER_THREAD = 8

#: The lanes of this many blocks are combined at once, one block per vector lane
#: (csrc/block_rows.h: FL2_ROWS_GROUP): the same tree, far shorter chains.
LANE_GROUP = 8
_GROUP_LANES = LANES * LANE_GROUP

_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)

# What one kernel computes (csrc/internal.h: fl2_mode).
_SUMS, _SUMS_GRAD, _GRAD, _ELEM, _ELEM_GRAD, _WEIGHTS = range(6)
_MODE_NAMES = ("sums", "sums_grad", "grad", "elem", "elem_grad", "weights")
#: How a kernel computes its gradient (its ``grad64`` constant): the float32 gradient's
#: ``quotient * g``; ``(scale * g) / divisor``, the float64 code of a float32 gradient of a
#: call with a float64 result (driver._converted_gradient: the float32 one's bits); a float16
#: or bfloat16 one's float64 value, ``fma(g, q, g * lo)`` with the quotient's two parts
#: (fastl2._halves), written to a float64 buffer and rounded once to the half by the driver;
#: and the float64 gradient, the exact one within an ulp (fastl2._losses.exact_gradient,
#: csrc/losses.h fl2_grad_exact).
GRAD_QUOTIENT, GRAD_DIVIDE, GRAD_HALF, GRAD_EXACT = 0, 1, 2, 3
#: The loss code of the weight-sum kernels, which read no loss: one kernel for every loss.
_WEIGHTS_LOSS = SQUARED.code


def _wants(mode):
    """(want_sums, want_grad, want_elem, weights_only) of a kernel of mode ``mode``."""
    return (mode in (_SUMS, _SUMS_GRAD, _WEIGHTS), mode in (_SUMS_GRAD, _GRAD, _ELEM_GRAD),
            mode in (_ELEM, _ELEM_GRAD), mode == _WEIGHTS)


def _mode(want_sums, grad, elementwise):
    """What a pass computes: elementwise losses (and a gradient), sums (and a gradient), a
    gradient alone; _WEIGHTS where it asks for none of them."""
    if elementwise is not None:
        return _ELEM_GRAD if grad is not None else _ELEM
    if want_sums:
        return _SUMS_GRAD if grad is not None else _SUMS
    return _GRAD if grad is not None else _WEIGHTS


# ---- threads ----------------------------------------------------------------------------------

_requested_threads = 0  # 0: Numba's own setting (NUMBA_NUM_THREADS, numba.set_num_threads)
_forked_child = False
#: Numba's pool size, the most threads a call runs on (pool.py's helpers are fastl2's own).
_POOL_SIZE = numba_config.NUMBA_NUM_THREADS


def _after_fork_in_child() -> None:
    # A fork()ed child stays serial, as the compiled backend's does (pool.py makes its own
    # helpers, but a child of a process that forks while it computes is best kept simple).
    global _forked_child
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_num_threads(n: int) -> None:
    """Run large inputs on ``n`` threads from now on (0, which only fastl2's tests pass: as many
    as Numba's own setting for the calling thread, numba.set_num_threads; fastl2.set_num_threads
    takes 1 to 1024).  The threads are the calling one and helpers of
    pool.py, not Numba's; more than ``numba.config.NUMBA_NUM_THREADS`` (the size of Numba's
    pool, which fastl2 keeps as its limit) runs on that many.  Results are the same for every
    count.
    """
    global _requested_threads
    _requested_threads = max(0, int(n))


def get_num_threads() -> int:
    """The number of threads large inputs run on."""
    if _forked_child:
        return 1
    if _requested_threads:
        return min(_requested_threads, _POOL_SIZE)
    return min(numba_threads(), _POOL_SIZE)


_get_numba_threads = None  # Numba's own per-thread count, once its threading layer has started


def numba_threads() -> int:
    """Numba's thread count for the calling thread (numba.get_num_threads), without starting
    Numba's threading layer: fastl2 never runs Numba's threads, and an OpenMP runtime started
    for nothing is one more thing a fork() must get past.  Until the layer has started (by
    numba.set_num_threads, numba.get_num_threads or a ``parallel=True`` function: nothing of
    fastl2's) the count is NUMBA_NUM_THREADS; then it is Numba's per-thread value, read through
    the function behind numba.get_num_threads (0.07 us, against its 0.5)."""
    global _get_numba_threads
    if _get_numba_threads is None:
        from numba.np.ufunc import parallel

        if not getattr(parallel, "_is_initialized", True):
            return _POOL_SIZE
        get = getattr(parallel, "_get_num_threads", None)
        _get_numba_threads = get if callable(get) else numba.get_num_threads
    return _get_numba_threads()


def in_forked_child() -> bool:
    """True in a fork()ed child, where every kernel runs serially."""
    return _forked_child

