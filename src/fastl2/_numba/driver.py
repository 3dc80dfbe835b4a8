"""The numba backend's driver: its table of kernels, the launches on Numba's threads, and the
1-d passes (csrc/fastl2.c: ``run``, ``weight_sum``).

The 1-d kernels are called through their compiled code for the operands' dtypes
(:func:`_entry_point`): no per-call type dispatch, and read-only inputs run the same code as
writable ones.  Inputs from PARALLEL_THRESHOLD elements on run their blocks on Numba's threads
(``prange``); each block writes its own partial, so the result does not depend on the thread
count.  Large gradients are written with streaming stores, as in C.

Ctrl-C: a Numba kernel cannot look for signals, and Python runs signal handlers only on the
main thread between bytecodes.  So a call of the main thread from INTERRUPTIBLE_MIN elements on
runs its kernel (the strided or columns kernel, 1-d calls included: they take a ``cancel``
flag) on a helper thread while the main thread waits where signal handlers run
(:func:`_interruptibly`); an exception out of the wait (KeyboardInterrupt) sets the flag, the
kernel stops between groups of blocks, and the exception is raised.  In a child that a
signal handler fork()ed during the wait, the call raises fastl2._backends.forked_mid_call_error
(the helper thread is the parent's).
"""

from __future__ import annotations

import os
import threading

import numba
import numpy as np
from numba import types

from .._backends import forked_mid_call_error
from .._plan import Plan
from . import config
from .block_columns import _make_columns_kernel
from .cache import _compile_lock, _slp_vectorized
from .config import (_FLOAT32, _FLOAT64, _NOPS, _POOL_SIZE, _WEIGHTS, _WEIGHTS_LOSS,
                     PARALLEL_THRESHOLD, _mode, _wants)
from .kernels import _make_kernel

#: From this many elements a call made on the main thread can be stopped by Ctrl-C (it runs
#: on a helper thread, see the module's docstring): 2**24 elements take 5 ms and more, a
#: thread hand-over some 50 us.
INTERRUPTIBLE_MIN = 1 << 24
#: Zero-length arrays that stand for the operands of the strided and columns kernels: they give
#: the dtype, and only the dtype, so that read-only, unaligned or N-d operands need no code of
#: their own (strided.py, _launch_1d_as_strided).
_DTYPE_OF = {_FLOAT32: np.empty(0, np.float32), _FLOAT64: np.empty(0, np.float64)}
_helper = None  # the helper thread's executor, made on first use (and again after a fork)
_Timeout = None  # concurrent.futures.TimeoutError, imported with it

_kernels: dict = {}
_parallel_lock = threading.Lock()
#: Whether two Python threads may launch parallel work at once: Numba's OpenMP and TBB
#: layers allow it, its workqueue layer aborts the process.  Known after the first launch.
_concurrent_launches = False


def _kernel(key):
    kernel = _kernels.get(key)
    if kernel is None:
        with _compile_lock:
            kernel = _kernels.get(key)
            if kernel is None:
                if len(key) == 7:
                    kernel = _make_kernel(*key)
                elif key[7] == "columns":
                    loss, has_true, has_weights, mode, compensated, _, parallel, _ = key
                    kernel = _make_columns_kernel(loss, has_true, has_weights,
                                                  mode == _WEIGHTS, compensated, parallel)
                else:
                    kernel = _make_kernel(*key[:7], strided=True)
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
        signature = (t[0], t[1], t[2], types.int64, t[3], types.float64, types.float64, t[4],
                     types.float64)
        with _slp_vectorized():  # (compiles, or loads from the cache, once)
            entry = _kernel(key).compile(signature)
        _entry_points[(key, sizes)] = entry
    return entry


def _launch(loss, has_true, has_weights, mode, compensated, grad64, sizes, n, args):
    """Runs the 1-d kernel of this specialisation on ``args``, whose operands have item sizes
    ``sizes`` (see _entry_point); returns (loss sum, weight sum).  Float32 operands of a call
    with a float64 result (``compensated``) go through the strided kernel, which converts
    them per block (strided.py: the kernels are compiled for one dtype per result dtype)."""
    if (n >= INTERRUPTIBLE_MIN and threading.current_thread() is threading.main_thread()) or (
            compensated and 4 in sizes):
        return _launch_1d_as_strided(loss, has_true, has_weights, mode, compensated, grad64, n, args)
    threads = config._requested_threads
    if n < PARALLEL_THRESHOLD or config._forked_child or threads == 1 or _POOL_SIZE == 1:
        key = (loss, has_true, has_weights, mode, compensated, grad64, False)
        return _entry_point(key, sizes)(*args)
    entry = _entry_point((loss, has_true, has_weights, mode, compensated, grad64, True), sizes)
    if not threads and _concurrent_launches:
        # The common case: Numba's own thread count (numba.set_num_threads applies to the
        # calling thread only, and the kernel reads it), a thread-safe layer.
        return entry(*args)
    return _locked_launch(entry, threads, args)


def _launch_strided(kind, loss, has_true, has_weights, mode, compensated, grad64, n, args,
                    cancel=None):
    """_launch for the kernels of run_strided: ``kind`` "strided" or "columns" (its own
    function, so that _launch, on every call's path, stays as short as it can be).  With
    ``cancel`` (the kernel's flag, in its layout) a call from INTERRUPTIBLE_MIN elements on the
    main thread is run by _interruptibly."""
    threads = config._requested_threads
    parallel = not (n < PARALLEL_THRESHOLD or config._forked_child or threads == 1
                    or _POOL_SIZE == 1)
    kernel = _kernel((loss, has_true, has_weights, mode, compensated, grad64, parallel, kind))
    if cancel is not None and n >= INTERRUPTIBLE_MIN and threading.current_thread() is threading.main_thread():
        if parallel:
            # Numba's thread count is per thread: the helper uses the caller's.
            threads = threads or numba.get_num_threads()
            return _interruptibly(lambda: _locked_launch(kernel, threads, args), cancel)
        return _interruptibly(lambda: kernel(*args), cancel)
    if parallel and (threads or not _concurrent_launches):
        return _locked_launch(kernel, threads, args)
    return kernel(*args)  # (serial; or Numba's own thread count, a thread-safe layer)


def _interruptibly(launch, cancel):
    """``launch()`` on the helper thread while this thread (the main one) waits for it where
    Python runs signal handlers.  An exception out of the wait (KeyboardInterrupt, or what
    another handler raises) sets ``cancel[0]``, which the kernel looks at between groups of
    blocks; once the kernel has stopped, the exception is raised.  What the kernel wrote by then
    stays written (a gradient's elements computed so far); nothing it summed is returned."""
    global _helper
    if _helper is None:
        global _Timeout
        from concurrent.futures import ThreadPoolExecutor  # (only for such calls)
        from concurrent.futures import TimeoutError as _Timeout

        _helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastl2-numba")
    cancel[0] = 0
    try:
        done = _helper.submit(launch)
    except RuntimeError:  # (at interpreter shutdown no thread starts: run it here, unstoppable)
        return launch()
    pid = os.getpid()
    try:
        # In slices of 20 ms: a signal that another thread received (any thread may) does not
        # wake a wait on a lock, but the main thread runs its handler as soon as it returns.
        while True:
            try:
                return done.result(timeout=0.02)
            except _Timeout:
                # A handler that fork()ed: the helper thread, and so the kernel, is the
                # parent's; this child would wait forever.
                if os.getpid() != pid:
                    raise forked_mid_call_error() from None
    except BaseException:
        if os.getpid() != pid:
            raise  # (nothing to stop here: the kernel runs in the parent)
        if not done.done():
            cancel[0] = 1
            while True:  # (a second Ctrl-C does not leave the kernel running unseen)
                try:
                    done.exception()
                    break
                except BaseException:
                    continue
        raise


def _after_fork_in_child() -> None:
    # The parent's helper thread does not exist in a fork()ed child: it makes its own.
    global _helper
    _helper = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _launch_1d_as_strided(loss, has_true, has_weights, mode, compensated, grad64, n, args):
    """_launch through the strided kernel (the 1-d kernels take no cancel flag), one output
    of the n elements of the contiguous operands in ``args``: the same blocks, the same
    summation tree, the same bits.  Weights repeated ``repeat`` times each (one per sample
    of rows of ``repeat`` elements) are a second dim of stride 0: (n / repeat, repeat)."""
    y_true, y_pred, weights, repeat, grad, scale, divisor, elem, param = args
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
    loss_sums = np.zeros(1)
    weight_sums = np.zeros(1) if weights is not None else np.empty(0)
    cancel = np.zeros(1, np.uint8)
    layout = (addresses, shape, strides, itemsizes, 0, loss_sums, weight_sums,
              config.get_num_threads(), cancel)
    witness = _witnesses(operands, compensated)
    scale, divisor, grad64 = _converted_gradient(grad, compensated, scale, divisor, grad64)
    _launch_strided("strided", loss, has_true, has_weights, mode, compensated, grad64, n,
                    (witness[0], witness[1], witness[2], layout, witness[3], scale, divisor,
                     witness[4], param), cancel)
    if not want_sums:
        return 0.0, 0.0
    return float(loss_sums[0]), float(weight_sums[0]) if weights is not None else float(n)



def _witnesses(operands, compensated):
    """The zero-length arrays that give the strided kernels the dtype of each operand (None
    where not given): float64 for every operand of a call with a float64 result
    (``compensated``), whatever its own dtype (its float32 elements are converted per block,
    memory._copy_run), else float32.  So the kernels are compiled for two dtype combinations,
    not one per mix of operand dtypes; the arithmetic is float64 either way."""
    witness = _DTYPE_OF[_FLOAT64 if compensated else _FLOAT32]
    return [None if a is None else witness for a in operands]


def _converted_gradient(grad, compensated, scale, divisor, grad64):
    """(scale, divisor, grad64) for the strided kernels of _witnesses: a float32 gradient of a
    call with a float64 result runs the float64 gradient's code, ``(scale * g) / divisor``
    rounded once to float32, with (scale / divisor, 1.0), so that it computes the float32
    gradient's ``(scale / divisor) * g`` exactly as the float32 code does: the same bits."""
    if grad is not None and compensated and not grad64:
        return scale / divisor, 1.0, True
    return scale, divisor, grad64


def _thread_count_functions():
    """(get, set) of the calling thread's Numba thread count, for _locked_launch.

    numba.get_num_threads takes about 0.5 us from Python, a tenth of a 10^5-element call, most
    of it checking that the threading layer has started; once it has (_locked_launch makes
    sure), Numba's own ctypes functions behind it do the same in 0.07 us.  Should a Numba
    version not have them, the public functions serve.
    """
    from numba.np.ufunc import parallel

    get = getattr(parallel, "_get_num_threads", None)
    set_ = getattr(parallel, "_set_num_threads", None)
    if callable(get) and callable(set_):
        return get, set_
    return numba.get_num_threads, numba.set_num_threads


_get_threads = _set_threads = None


def _locked_launch(kernel, threads, args):
    """A parallel launch on ``threads`` threads (0: Numba's setting), one at a time."""
    global _concurrent_launches, _get_threads, _set_threads
    with _parallel_lock:
        if _get_threads is None:
            numba.get_num_threads()  # (starts Numba's threading layer)
            _get_threads, _set_threads = _thread_count_functions()
        previous = _get_threads()
        if threads:
            threads = min(threads, _POOL_SIZE)
        if threads and threads != previous:
            _set_threads(threads)
        try:
            return kernel(*args)
        finally:
            if threads and threads != previous:
                _set_threads(previous)
            if not _concurrent_launches:
                _concurrent_launches = numba.threading_layer() in ("omp", "tbb")


def run(plan: Plan, want_sums: bool, grad=None, grad_scale: float = 0.0, grad_divisor: float = 1.0,
        elementwise=None):
    """One pass: (loss sum, weight sum), filling ``grad`` and ``elementwise`` if given.

    The gradient is ``(grad_scale * (w * l'(d))) / grad_divisor`` for float64 gradients and
    ``(grad_scale / grad_divisor) * (w * l'(d))`` for float32 ones, as in csrc/fastl2.h.
    With ``elementwise`` nothing is summed and (0.0, 0.0) is returned.
    """
    mode = _mode(want_sums, grad, elementwise)
    if mode == _WEIGHTS:  # (nothing asked)
        return 0.0, 0.0
    n = plan.n
    if n == 0:
        return 0.0, 0.0
    y_true, y_pred, weights = plan.y_true, plan.y_pred, plan.weights
    return _launch(
        plan.loss.code,
        y_true is not None,
        weights is not None,
        mode,
        plan.result_dtype == _FLOAT64,
        grad is not None and grad.dtype == _FLOAT64,
        _operand_sizes((y_true, y_pred, weights, grad, elementwise)),
        n,
        (y_true, y_pred, weights, int(plan.weights_repeat), grad, float(grad_scale),
         float(grad_divisor), elementwise, float(plan.param)),
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


def weight_sum(plan: Plan) -> float:
    """Sum of the weights over all elements, bit-identical to ``run``'s weight sum."""
    n = plan.n
    if plan.weights is None or n == 0:
        return float(n)
    args = (None, plan.y_pred, plan.weights, int(plan.weights_repeat), None, 0.0, 1.0, None, 0.0)
    sizes = _operand_sizes(args[:3] + (None, None))
    return _launch(_WEIGHTS_LOSS, False, True, _WEIGHTS, plan.result_dtype == _FLOAT64, False,
                   sizes, n, args)[1]
