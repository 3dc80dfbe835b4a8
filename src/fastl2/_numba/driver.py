"""The numba backend's driver: its table of kernels, the launches, and the 1-d passes
(csrc/fastl2.c: ``run``, ``weight_sum``).

The 1-d kernels are called through their compiled code for the operands' dtypes
(:func:`_entry_point`): no per-call type dispatch, and read-only inputs run the same code as
writable ones.  They run serial calls.  A call that runs on several threads (from
config.PARALLEL_THRESHOLD elements on), a long call of the main thread (from INTERRUPTIBLE_MIN
elements on: Ctrl-C stops it between chunks) and a call that converts float32 operands to a
float64 result run the strided kernel instead (:func:`_launch_1d_as_strided`: the same blocks,
the same summation tree, the same bits), whose ranges of work items pool.py runs
(:func:`_run_ranges`).  Large gradients are written with streaming stores, as in C.
"""

from __future__ import annotations

import threading

import numpy as np
from numba import types

from .._halves import round_half
from .._plan import BLOCK_SIZE, Plan, without_half
from . import config, pool
from .block_columns import _make_columns_kernel
from .cache import _compile_lock, _slp_vectorized
from .config import (_FLOAT32, _FLOAT64, _NOPS, _POOL_SIZE, _WEIGHTS, _WEIGHTS_LOSS, GRAD_EXACT, GRAD_HALF,
                     GRAD_QUOTIENT, _mode, _wants)
from .kernels import _make_kernel

#: From this many elements a call made on the main thread runs in chunks, between which
#: Ctrl-C stops it (pool.py): 2**24 elements take 5 ms and more.
INTERRUPTIBLE_MIN = 1 << 24
#: Zero-length arrays that stand for the operands of the strided and columns kernels: they give
#: the dtype, and only the dtype, so that read-only, unaligned or N-d operands need no code of
#: their own (strided.py, _launch_1d_as_strided).
_DTYPE_OF = {_FLOAT32: np.empty(0, np.float32), _FLOAT64: np.empty(0, np.float64)}

_kernels: dict = {}


def _kernel(key):
    """The kernel of ``key`` = (loss, has_true, has_weights, mode, compensated, grad64, kind),
    kind "1d", "strided" or "columns", made on first use."""
    kernel = _kernels.get(key)
    if kernel is None:
        with _compile_lock:
            kernel = _kernels.get(key)
            if kernel is None:
                loss, has_true, has_weights, mode, compensated, grad64, kind = key
                if kind == "columns":
                    kernel = _make_columns_kernel(loss, has_true, has_weights,
                                                  mode == _WEIGHTS, compensated)
                else:
                    kernel = _make_kernel(loss, has_true, has_weights, mode, compensated,
                                          grad64, strided=kind == "strided")
                _kernels[key] = kernel
    return kernel


#: How _entry_point types each operand of the 1-d kernels, by item size (None: not given).
_OPERAND_TYPES = {
    None: types.none,
    4: types.Array(types.float32, 1, "C"),
    8: types.Array(types.float64, 1, "C"),
}
_entry_points: dict = {}


def _entry_point(key, sizes):
    """The compiled code of the 1-d kernel ``key`` for operands (y_true, y_pred, weights,
    grad, elementwise) of item sizes ``sizes`` (4 float32, 8 float64, None not given).

    It is called directly, without Numba's dispatch on the arguments' types (a few hundred
    nanoseconds a call), so the caller passes exactly such operands: 1-D, C-contiguous,
    aligned arrays of those dtypes (the compiled code does not check).  Every operand is typed
    writable whatever its flags: the kernels write only grad and elementwise, so a read-only
    input needs no code of its own.
    """
    entry = _entry_points.get((key, sizes))
    if entry is None:
        t = [_OPERAND_TYPES[size] for size in sizes]
        signature = (t[0], t[1], t[2], types.int64, t[3], types.float64, types.float64,
                     types.float64, t[4], types.float64)
        kernel = _kernel(key)

        def compile_():
            with _slp_vectorized():  # (compiles, or loads from the cache, once)
                return kernel.compile(signature)

        entry = pool.compile_aside(compile_)
        _entry_points[(key, sizes)] = entry
    return entry


def threads_for(n):
    """How many threads a call of ``n`` elements runs on: one below config.PARALLEL_THRESHOLD
    (read on every call: tests lower it) and in a fork()ed child, else fastl2's count
    (config.set_num_threads), else the calling thread's Numba count (numba.set_num_threads),
    at most Numba's pool size (NUMBA_NUM_THREADS)."""
    if n < config.PARALLEL_THRESHOLD or config._forked_child or _POOL_SIZE == 1:
        return 1
    threads = config._requested_threads
    if threads:
        return min(threads, _POOL_SIZE)
    return min(config.numba_threads(), _POOL_SIZE)


def _launch(loss, has_true, has_weights, mode, compensated, grad64, sizes, n, args):
    """Runs the 1-d kernel of this specialisation on ``args``, whose operands have item sizes
    ``sizes`` (see _entry_point); returns (loss sum, weight sum, loss lo, weight lo): each sum
    the rounded value of its double-double, each lo the exact rest.  Calls on several threads,
    long calls of the main thread and float32 operands of a call with a float64 result
    (``compensated``: the kernels are compiled for one dtype per result dtype) go through the
    strided kernel (_launch_1d_as_strided)."""
    if (compensated and 4 in sizes) or n >= config.PARALLEL_THRESHOLD and (
            threads_for(n) > 1 or n >= INTERRUPTIBLE_MIN
            and threading.current_thread() is threading.main_thread()):
        return _launch_1d_as_strided(loss, has_true, has_weights, mode, compensated, grad64, n,
                                     args)
    key = (loss, has_true, has_weights, mode, compensated, grad64, "1d")
    return _entry_point(key, sizes)(*args)


def _run_ranges(call, count, item_elements, n, cancel):
    """``call(first, end, finish)`` (a strided or columns kernel on work items [first, end),
    combining the outputs' partials with ``finish``) over ``count`` items of ``item_elements``
    (> 0) elements each, for a call of ``n`` elements: at once when serial; else in chunks on
    the pool (pool.run_chunks: on threads_for(n) threads; a main-thread call from
    INTERRUPTIBLE_MIN elements on, even serial, so that Ctrl-C stops it), then finished."""
    threads = threads_for(n)
    if threads == 1 and (n < INTERRUPTIBLE_MIN
                         or threading.current_thread() is not threading.main_thread()):
        call(0, count, True)
        return
    # Chunks of MIN_CHUNK_ELEMENTS to CHUNK_ELEMENTS, CHUNKS_PER_THREAD per thread between.
    fewest = (pool.MIN_CHUNK_ELEMENTS + item_elements - 1) // item_elements
    most = max(fewest, pool.CHUNK_ELEMENTS // item_elements)
    per = min(max(count // (threads * pool.CHUNKS_PER_THREAD), fewest), most)
    nchunks = (count + per - 1) // per
    if nchunks == 1:
        call(0, count, True)
        return
    pool.run_chunks(lambda i: call(i * per, min(count, i * per + per), False), nchunks, threads,
                    cancel)
    call(0, 0, True)


def _launch_strided(loss, has_true, has_weights, mode, compensated, grad64, n, witnesses, head,
                    scale, divisor, divisor_lo, param, count, item_elements):
    """The strided kernel of this specialisation on the layout ``head`` (strided.py: addresses,
    shape, strides, item sizes, kept dims, loss sums, weight sums, loss lo, weight lo, block
    partials), its
    ``count`` work items of ``item_elements`` elements each run by _run_ranges."""
    kernel = _kernel((loss, has_true, has_weights, mode, compensated, grad64, "strided"))
    cancel = np.zeros(1, np.uint8)
    w_true, w_pred, w_weights, w_grad, w_elem = witnesses

    def call(first, end, finish):
        kernel(w_true, w_pred, w_weights, head + (first, end, finish, cancel), w_grad, scale,
               divisor, divisor_lo, w_elem, param)

    if not kernel.signatures:  # (its first call compiles it: see pool.compile_aside)
        pool.compile_aside(lambda: call(0, 0, False))
    _run_ranges(call, count, item_elements, n, cancel)


def _launch_columns(loss, has_true, has_weights, mode, compensated, n, witnesses, head, count,
                    item_elements):
    """The columns kernel of this specialisation on the layout ``head`` (strided.py), its
    ``count`` blocks of rows of ``item_elements`` elements each run by _run_ranges."""
    kernel = _kernel((loss, has_true, has_weights, mode, compensated, False, "columns"))
    cancel = np.zeros(1, np.uint8)
    w_true, w_pred, w_weights = witnesses[:3]

    def call(first, end, finish):
        kernel(w_true, w_pred, w_weights, head + (first, end, finish, cancel))

    if not kernel.signatures:  # (its first call compiles it: see pool.compile_aside)
        pool.compile_aside(lambda: call(0, 0, False))
    _run_ranges(call, count, item_elements, n, cancel)


def _launch_1d_as_strided(loss, has_true, has_weights, mode, compensated, grad64, n, args):
    """_launch through the strided kernel, one output of the n elements of the contiguous
    operands in ``args``: the same blocks, the same summation tree, the same bits.  Weights
    repeated ``repeat`` times each (one per sample of rows of ``repeat`` elements) are a
    second dim of stride 0: (n / repeat, repeat)."""
    y_true, y_pred, weights, repeat, grad, scale, divisor, divisor_lo, elem, param = args
    want_sums = _wants(mode)[0]
    if mode == _WEIGHTS:
        y_true = y_pred = None  # (as run_strided: only the weights are read)
    operands = (y_true, y_pred, weights, grad, elem)
    shape = np.array([n], np.int64) if repeat == 1 else np.array([n // repeat, repeat], np.int64)
    addresses = np.zeros(_NOPS, np.int64)
    strides = np.zeros((_NOPS, shape.size), np.int64)
    itemsizes = np.zeros(_NOPS, np.int64)
    for k, array in enumerate(operands):
        if array is not None:
            addresses[k] = array.ctypes.data
            itemsizes[k] = array.itemsize
            if repeat == 1:
                strides[k, 0] = array.itemsize
            elif k == 2:  # (the weights)
                strides[k] = (array.itemsize, 0)
            else:
                strides[k] = (repeat * array.itemsize, array.itemsize)
    nblocks = (n + BLOCK_SIZE - 1) // BLOCK_SIZE
    loss_sums = np.zeros(1)
    weight_sums = np.zeros(1) if weights is not None else np.empty(0)
    loss_lo = np.zeros(1)
    weight_lo = np.zeros(1) if weights is not None else np.empty(0)
    partials = np.empty((nblocks if want_sums and nblocks > 1 else 0, 4))
    scale, divisor, grad64 = _converted_gradient(grad, compensated, scale, divisor, grad64)
    _launch_strided(loss, has_true, has_weights, mode, compensated, grad64, n,
                    _witnesses(operands, compensated, grad64),
                    (addresses, shape, strides, itemsizes, 0, loss_sums, weight_sums, loss_lo,
                     weight_lo, partials),
                    scale, divisor, divisor_lo, param, nblocks, min(n, BLOCK_SIZE))
    if not want_sums:
        return 0.0, 0.0, 0.0, 0.0
    if weights is None:
        return float(loss_sums[0]), float(n), float(loss_lo[0]), 0.0
    return float(loss_sums[0]), float(weight_sums[0]), float(loss_lo[0]), float(weight_lo[0])


def _witnesses(operands, compensated, form=GRAD_QUOTIENT):
    """The zero-length arrays that give the strided kernels the dtype of each operand (None
    where not given): float64 for every operand of a call with a float64 result
    (``compensated``), whatever its own dtype (its float32 elements are converted per block,
    memory._copy_run), else float32; and float64 for the float64 gradient of a half one
    (``form`` GRAD_HALF).  So the kernels are compiled for few dtype combinations, not one per
    mix of operand dtypes; the arithmetic is float64 either way."""
    witness = _DTYPE_OF[_FLOAT64 if compensated else _FLOAT32]
    witnesses = [None if a is None else witness for a in operands]
    if form == GRAD_HALF and operands[3] is not None:
        witnesses[3] = _DTYPE_OF[_FLOAT64]
    return witnesses


def _converted_gradient(grad, compensated, scale, divisor, grad64):
    """(scale, divisor, grad64) for the strided kernels of _witnesses: a float32 gradient of a
    call with a float64 result runs the float64 gradient's code, ``(scale * g) / divisor``
    rounded once to float32, with (scale / divisor, 1.0), so that it computes the float32
    gradient's ``(scale / divisor) * g`` exactly as the float32 code does: the same bits."""
    if grad is not None and compensated and grad64 == GRAD_QUOTIENT:
        return scale / divisor, 1.0, True
    return scale, divisor, grad64


def run(plan: Plan, want_sums: bool, grad=None, grad_scale: float = 0.0, grad_divisor: float = 1.0,
        elementwise=None, grad_divisor_lo: float = 0.0):
    """One pass: (loss sum, weight sum, loss lo, weight lo), filling ``grad`` and
    ``elementwise`` if given.  Each sum is the rounded value of its double-double (hi, as
    csrc/ returns it) and each lo the exact rest: hi + lo is the double-double, normalised.
    Without weights the weight sum is n and its lo 0.0.

    The gradient is ``grad_scale * w * l'(d) / (grad_divisor + grad_divisor_lo)`` within an ulp
    for float64 gradients (GRAD_EXACT) and ``(grad_scale / grad_divisor) * (w * l'(d))`` for
    float32 ones, as in csrc/fastl2.h.  With ``elementwise`` nothing is summed and (0.0, 0.0, 0.0, 0.0) is returned.

    Numba has no float16 or bfloat16 on the CPU: such operands are converted to float32 first
    (fastl2._plan.without_half), and such a gradient is computed in float64 (GRAD_HALF) and
    rounded once (fastl2._halves: the compiled backend's bits).
    """
    plan = without_half(plan)
    form = GRAD_EXACT if grad is not None and grad.dtype == _FLOAT64 else GRAD_QUOTIENT
    if grad is not None and grad.dtype.itemsize == 2:
        half, grad, form = grad, np.empty(grad.shape, _FLOAT64), GRAD_HALF
        sums = _run(plan, want_sums, grad, grad_scale, grad_divisor, elementwise, form, 0.0)
        half[...] = round_half(grad, half.dtype)
        return sums
    return _run(plan, want_sums, grad, grad_scale, grad_divisor, elementwise, form, grad_divisor_lo)


def _run(plan, want_sums, grad, grad_scale, grad_divisor, elementwise, form, grad_divisor_lo):
    """run, the half dtypes settled: the gradient computed as ``form`` says (GRAD_*)."""
    mode = _mode(want_sums, grad, elementwise)
    if mode == _WEIGHTS:  # (nothing asked)
        return 0.0, 0.0, 0.0, 0.0
    n = plan.n
    if n == 0:
        return 0.0, 0.0, 0.0, 0.0
    y_true, y_pred, weights = plan.y_true, plan.y_pred, plan.weights
    return _launch(
        plan.loss.code,
        y_true is not None,
        weights is not None,
        mode,
        plan.result_dtype == _FLOAT64,
        form,
        _operand_sizes((y_true, y_pred, weights, grad, elementwise)),
        n,
        (y_true, y_pred, weights, int(plan.weights_repeat), grad, float(grad_scale),
         float(grad_divisor), float(grad_divisor_lo), elementwise, float(plan.param)),
    )


def _operand_sizes(operands):
    """The item sizes of the 1-d kernels' operands (None for those not given), checked to be
    what _entry_point's code reads: 1-D, C-contiguous, aligned, native float32/float64."""
    sizes = []
    for name, array in zip(("y_true", "y_pred", "weights", "grad", "elementwise"), operands):
        if array is None:
            sizes.append(None)
            continue
        flags = array.flags
        if not (type(array) is np.ndarray and array.ndim == 1 and flags.c_contiguous
                and flags.aligned and array.dtype in (_FLOAT32, _FLOAT64)):
            raise ValueError(
                f"fastl2: the numba backend's 1-d kernels take {name} as an aligned, "
                "C-contiguous 1-D native float32/float64 array; got "
                f"{type(array).__name__} of dtype {array.dtype}, shape {array.shape}, "
                f"strides {array.strides}, aligned {flags.aligned}"
            )
        sizes.append(array.itemsize)
    return tuple(sizes)


def weight_sum(plan: Plan) -> tuple[float, float]:
    """Sum of the weights over all elements, bit-identical to ``run``'s weight sum and its
    rest (its double-double)."""
    plan = without_half(plan)
    n = plan.n
    if plan.weights is None or n == 0:
        return float(n), 0.0
    args = (None, plan.y_pred, plan.weights, int(plan.weights_repeat), None, 0.0, 1.0, 0.0, None, 0.0)
    sizes = _operand_sizes(args[:3] + (None, None))
    sums = _launch(_WEIGHTS_LOSS, False, True, _WEIGHTS, plan.result_dtype == _FLOAT64, False,
                   sizes, n, args)
    return sums[1], sums[3]
