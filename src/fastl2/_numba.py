"""The Numba backend: the kernels of csrc/ written with Numba, bit-identical to them.

Every kernel mirrors csrc/block_template.h operation for operation: blocks of BLOCK_SIZE
elements, element i of a block accumulated into float64 lane i % LANES (compensated lanes when
any input is float64), lanes and block partials combined by the same bottom-up pairwise
double-double tree (csrc/internal.h).  No fastmath: it would reorder the sums.

Each combination of (loss, y_true or not, weights or not, what is computed, compensated,
gradient dtype, serial or parallel) is its own function, made on first use by
:func:`_make_kernel` with the choices as closure constants, so no branch is left per element;
Numba compiles it once per dtype combination, with LLVM's SLP vectorizer on.  Inputs from
PARALLEL_THRESHOLD elements on run their blocks on Numba's threads (``prange``); each block
writes its own partial, so the result does not depend on the thread count.  Large gradients
are written with streaming stores, as in C.

Compiled code is cached on disk (``cache=True``) where Numba finds a writable place:
``NUMBA_CACHE_DIR`` if set, else beside this module, else the user's cache directory; with
none, kernels are compiled in memory, silently.

Interface (fastl2._backends): ``run``, ``weight_sum``, ``set_num_threads``, and fast paths for
the functions of FAST_PATH_FUNCTIONS with ``_bind`` / ``_set_fast_path``, as fastl2._core has.
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading

import numba
import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.core import config as numba_config
from numba.extending import intrinsic
from llvmlite import ir

from ._plan import BLOCK_SIZE, Plan

#: Interleaved float64 accumulators inside a block (csrc/fastl2.h: FL2_LANES).
LANES = 16

#: Below this many elements a call never enters Numba's thread pool (as csrc/fastl2.c).
PARALLEL_THRESHOLD = 8 * BLOCK_SIZE

#: Gradients of at least this many bytes are written with streaming (non-temporal) stores on
#: x86-64, past the caches, as csrc/fastl2.c does (FL2_DEFAULT_STREAM_MIN_BYTES).
STREAM_MIN_BYTES = 16 << 20
_STREAMING_STORES = platform.machine().lower() in ("x86_64", "amd64")

#: Serial calls of up to this many blocks keep their block partials on the stack.
STACK_BLOCKS = 16

_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)

# What one kernel computes (csrc/internal.h: fl2_mode).
_SUMS, _SUMS_GRAD, _GRAD, _ELEM, _ELEM_GRAD, _WEIGHTS = range(6)
_MODE_NAMES = ("sums", "sums_grad", "grad", "elem", "elem_grad", "weights")

# ---- threads ----------------------------------------------------------------------------------

_requested_threads = 0  # 0: Numba's own setting (NUMBA_NUM_THREADS, numba.set_num_threads)
_forked_child = False


def _after_fork_in_child() -> None:
    # Numba's thread pool does not survive fork(): after the parent ran parallel work, a child
    # that launches some is terminated by Numba's GNU OpenMP layer ("fork() called from a
    # process already using GNU OpenMP") or waits on threads that no longer exist.  The child
    # stays serial.
    global _forked_child
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_num_threads(n: int) -> None:
    """Use ``n`` of Numba's threads for large inputs from now on (0: Numba's own setting).

    More than ``numba.config.NUMBA_NUM_THREADS`` (the size of Numba's pool) runs with all of
    them; results are the same for every count.
    """
    global _requested_threads
    _requested_threads = max(0, int(n))


def get_num_threads() -> int:
    """The number of threads large inputs run on."""
    if _forked_child:
        return 1
    if _requested_threads:
        return min(_requested_threads, numba_config.NUMBA_NUM_THREADS)
    return numba.get_num_threads()


def in_forked_child() -> bool:
    """True in a fork()ed child, where every kernel runs serially."""
    return _forked_child


# ---- compilation -----------------------------------------------------------------------------

def _jit(function, **options):
    """``njit(cache=True)``, compiled in memory where no cache directory is writable.

    Numba picks the first writable of NUMBA_CACHE_DIR, this package's ``__pycache__`` and the
    user's cache directory, and raises RuntimeError at decoration when none is.
    """
    try:
        return njit(cache=True, **options)(function)
    except RuntimeError:
        return njit(cache=False, **options)(function)


_compile_lock = threading.RLock()


@contextlib.contextmanager
def _slp_vectorized():
    """Compile with LLVM's SLP vectorizer, which Numba leaves off by default.

    The 16 lanes of a block are 16 independent scalar chains after unrolling; only the SLP
    vectorizer turns them into vector instructions (it never reassociates floating-point
    operations, so results do not change).  The switch is read when a function is compiled.
    """
    with _compile_lock:
        previous = numba_config.SLP_VECTORIZE
        numba_config.SLP_VECTORIZE = 1
        try:
            yield
        finally:
            numba_config.SLP_VECTORIZE = previous


@intrinsic
def _stack_buffer(typingctx, count, dtype):
    """A pointer to ``count`` (a literal int) uninitialised values on the stack.

    Lane accumulators on the stack, unlike NumPy arrays, are private to the function, so LLVM
    keeps them in registers.  ``dtype`` is a NumPy float type.
    """
    if not isinstance(count, types.IntegerLiteral) or not isinstance(dtype, types.NumberClass):
        return None
    element = dtype.instance_type
    size = count.literal_value

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(element), size=size)

    return types.CPointer(element)(count, dtype), codegen


@intrinsic
def _stream_store_16(typingctx, array, index, values):
    """array[index:index + 16] = values[:16] (a stack buffer of float64), one streaming store.

    The caller checks that &array[index] is 16-byte aligned; values are rounded to the
    array's dtype exactly as an assignment does.
    """
    if not isinstance(array, types.Array) or not isinstance(array.dtype, types.Float):
        return None

    def codegen(context, builder, signature, args):
        array_type, index_type, _ = signature.args
        data = context.make_array(array_type)(context, builder, args[0]).data
        start = builder.gep(data, [context.cast(builder, args[1], index_type, types.intp)])
        element = context.get_value_type(array_type.dtype)
        vector_type = ir.VectorType(element, 16)
        vector = ir.Constant(vector_type, ir.Undefined)
        for k in range(16):
            value = builder.load(builder.gep(args[2], [ir.IntType(64)(k)]))
            value = context.cast(builder, value, types.float64, array_type.dtype)
            vector = builder.insert_element(vector, value, ir.IntType(32)(k))
        store = builder.store(vector, builder.bitcast(start, vector_type.as_pointer()), align=16)
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
        return context.get_dummy_value()

    return types.void(array, index, values), codegen


@intrinsic
def _store_fence(typingctx):
    """x86 sfence: orders this thread's streaming stores before whatever it does next."""

    def codegen(context, builder, signature, args):
        if _STREAMING_STORES:  # (elsewhere the kernels make no streaming stores)
            sfence = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence"
            )
            builder.call(sfence, [])
        return context.get_dummy_value()

    return types.void(), codegen


# Helpers of the kernels: compiled into each kernel (and cached with it), never called alone.

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


_dd_add = njit(_dd_add)


def _combine_lanes(hi, lo):
    """csrc/internal.h fl2_dd_combine over the LANES pairs (hi[k], lo[k]), in place."""
    step = 1
    while step < LANES:
        for i in range(0, LANES - step, 2 * step):
            hi[i], lo[i] = _dd_add(hi[i], lo[i], hi[i + step], lo[i + step])
        step *= 2
    return hi[0], lo[0]


_combine_lanes = njit(_combine_lanes)


def _combine_partials(partials):
    """csrc/fastl2.c combine_partials: (loss sum, weight sum) of the block partials."""
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


_combine_partials = njit(_combine_partials)


def _make_kernel(absolute, has_true, has_weights, mode, compensated, grad64, parallel):
    """The kernel of one specialisation; every argument is a compile-time constant in it.

    ``kernel(y_true, y_pred, weights, repeat, grad, scale, divisor, elem) -> (loss, weights)``
    where the arrays not used are None.  Numba prunes the branches on these constants before
    it builds the parallel loop, so none is left in the loops.
    """
    want_sums = mode in (_SUMS, _SUMS_GRAD, _WEIGHTS)
    want_grad = mode in (_SUMS_GRAD, _GRAD, _ELEM_GRAD)
    want_elem = mode in (_ELEM, _ELEM_GRAD)
    weights_only = mode == _WEIGHTS
    block_size = BLOCK_SIZE
    lanes = LANES
    stack_blocks = STACK_BLOCKS
    stack_slots = 4 * STACK_BLOCKS
    streaming = _STREAMING_STORES
    stream_min_bytes = STREAM_MIN_BYTES
    # Chunk offsets are unsigned, so indexing needs no negative-index wraparound and the 16
    # loads of a chunk are seen as consecutive.
    u_lanes = np.uint64(LANES)

    def kernel(y_true, y_pred, weights, repeat, grad, scale, divisor, elem):
        n = y_pred.shape[0]
        nblocks = (n + block_size - 1) // block_size
        quotient = scale / divisor
        # Large gradients are written with streaming stores, 16-byte aligned ones as in C.
        stream = False
        if want_grad and streaming:
            stream = n * grad.itemsize >= stream_min_bytes and grad.ctypes.data % 16 == 0
        # Block partials: loss hi, lo, weights hi, lo; on the stack when few (as csrc/fastl2.c).
        if parallel or nblocks > stack_blocks:
            partials = np.empty((nblocks if want_sums else 0, 4))
        else:
            partials = numba.carray(_stack_buffer(stack_slots, np.float64), (nblocks, 4))

        for b in prange(nblocks):
            start = b * block_size
            end = min(start + block_size, n)
            # loss sums, loss errors, weight sums, weight errors: LANES each
            acc = numba.carray(_stack_buffer(64, np.float64), (4, lanes))
            d = numba.carray(_stack_buffer(16, np.float64), lanes)
            wk = numba.carray(_stack_buffer(16, np.float64), lanes)
            g_buffer = _stack_buffer(16, np.float64)  # the chunk's gradient, before its stores
            g = numba.carray(g_buffer, lanes)
            for k in range(lanes):
                acc[0, k] = 0.0
                acc[1, k] = 0.0
                acc[2, k] = 0.0
                acc[3, k] = 0.0
                d[k] = 0.0
                wk[k] = 1.0

            row = 0
            row_end = 0
            if has_weights:
                row = start // repeat
                row_end = (row + 1) * repeat

            def add(s, e, k, x):
                # One compensated (TwoSum) or plain addition of x to lane k of sums s.
                if compensated:
                    t = acc[s, k] + x
                    z = t - acc[s, k]
                    acc[e, k] += (acc[s, k] - (t - z)) + (x - z)
                    acc[s, k] = t
                else:
                    acc[s, k] += x

            def element(i, k, dk, wi):
                # csrc/block_template.h ELEMENT: element i, difference dk, weight wi, lane k;
                # returns the gradient element (before its rounding to grad's dtype).
                gk = 0.0
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
                        add(0, 1, k, wl)
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
                            gk = (scale * gk) / divisor
                        else:
                            gk = quotient * gk
                if has_weights and want_sums:
                    add(2, 3, k, wi)
                return gk

            def run_chunks(nchunks, row, row_end, streamed):
                # The block's whole chunks of LANES elements; streamed is a constant at each call.
                base = np.uint64(start)
                for c in range(nchunks):
                    i = base + np.uint64(c) * u_lanes
                    # All reads of a chunk come before its writes: grad may be y_pred itself.
                    if not weights_only:
                        for k in range(lanes):
                            if has_true:
                                d[k] = np.float64(y_pred[i + np.uint64(k)]) - np.float64(
                                    y_true[i + np.uint64(k)]
                                )
                            else:
                                d[k] = np.float64(y_pred[i + np.uint64(k)])
                    if has_weights:
                        first = start + c * lanes
                        if repeat == 1:
                            for k in range(lanes):
                                wk[k] = np.float64(weights[i + np.uint64(k)])
                        elif first + lanes <= row_end:
                            wr = np.float64(weights[row])
                            for k in range(lanes):
                                wk[k] = wr
                        else:
                            for k in range(lanes):
                                while first + k >= row_end:
                                    row += 1
                                    row_end += repeat
                                wk[k] = np.float64(weights[row])
                    for k in range(lanes):
                        gk = element(i + np.uint64(k), k, d[k], wk[k])
                        if want_grad:
                            if streamed:
                                g[k] = gk
                            else:
                                grad[i + np.uint64(k)] = gk
                    if streamed:
                        _stream_store_16(grad, i, g_buffer)
                return row, row_end

            nchunks = (end - start) // lanes
            if stream:
                row, row_end = run_chunks(nchunks, row, row_end, True)
            else:
                row, row_end = run_chunks(nchunks, row, row_end, False)

            k = 0
            for j in range(start + nchunks * lanes, end):
                dj = 0.0
                if not weights_only:
                    if has_true:
                        dj = np.float64(y_pred[j]) - np.float64(y_true[j])
                    else:
                        dj = np.float64(y_pred[j])
                wj = 1.0
                if has_weights:
                    if repeat == 1:
                        wj = np.float64(weights[j])
                    else:
                        while j >= row_end:
                            row += 1
                            row_end += repeat
                        wj = np.float64(weights[row])
                gj = element(j, k, dj, wj)
                if want_grad:
                    grad[j] = gj
                k += 1
            if stream:
                _store_fence()

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

        if want_sums:
            return _combine_partials(partials)
        return 0.0, 0.0

    # One cache index file per specialisation (the constants are also in each entry's key).
    kernel.__name__ = kernel.__qualname__ = "_".join(
        (
            "absolute" if absolute else "squared",
            "true" if has_true else "penalty",
            "weighted" if has_weights else "unweighted",
            _MODE_NAMES[mode],
            "compensated" if compensated else "plain",
            ("grad64" if grad64 else "grad32") if want_grad else "nograd",
            "parallel" if parallel else "serial",
        )
    )
    dispatcher = _jit(kernel, parallel=parallel, nogil=True, error_model="numpy")
    # Numba's dispatcher calls _compile_for_args for argument types it has no code for yet:
    # that compilation (or cache load) runs with the SLP vectorizer on.
    compile_for_args = dispatcher._compile_for_args

    def _compile_for_args(*args, **kws):
        with _slp_vectorized():
            return compile_for_args(*args, **kws)

    dispatcher._compile_for_args = _compile_for_args
    return dispatcher


_kernels: dict = {}
_parallel_lock = threading.Lock()


def _launch(absolute, has_true, has_weights, mode, compensated, grad64, n, args):
    """Runs the kernel of this specialisation on ``args``; returns (loss sum, weight sum)."""
    threads = 0
    if n >= PARALLEL_THRESHOLD and not _forked_child:
        threads = get_num_threads()
        if threads == 1:
            threads = 0
    key = (absolute, has_true, has_weights, mode, compensated, grad64, threads > 0)
    kernel = _kernels.get(key)
    if kernel is None:
        with _compile_lock:
            kernel = _kernels.get(key)
            if kernel is None:
                kernel = _kernels[key] = _make_kernel(*key)
    if not threads:
        return kernel(*args)
    # One parallel call at a time: Numba's workqueue threading layer (used where OpenMP and
    # TBB are missing) aborts the process when two threads launch parallel work at once.
    with _parallel_lock:
        # numba.set_num_threads applies to the calling thread only: set it for this call.
        previous = numba.get_num_threads()
        if threads != previous:
            numba.set_num_threads(threads)
        try:
            return kernel(*args)
        finally:
            if threads != previous:
                numba.set_num_threads(previous)


# ---- the backend interface --------------------------------------------------------------------

def run(plan: Plan, want_sums: bool, grad=None, grad_scale: float = 0.0, grad_divisor: float = 1.0,
        elementwise=None):
    """One pass: (loss sum, weight sum), filling ``grad`` and ``elementwise`` if given.

    The gradient is ``(grad_scale * (w * l'(d))) / grad_divisor`` for float64 gradients and
    ``(grad_scale / grad_divisor) * (w * l'(d))`` for float32 ones, as in csrc/fastl2.h.
    With ``elementwise`` nothing is summed and (0.0, 0.0) is returned.
    """
    if elementwise is not None:
        mode = _ELEM_GRAD if grad is not None else _ELEM
    elif want_sums:
        mode = _SUMS_GRAD if grad is not None else _SUMS
    elif grad is not None:
        mode = _GRAD
    else:
        return 0.0, 0.0
    n = plan.n
    if n == 0:
        return 0.0, 0.0
    y_true, weights = plan.y_true, plan.weights
    return _launch(
        plan.loss == "absolute",
        y_true is not None,
        weights is not None,
        mode,
        plan.result_dtype == _FLOAT64,
        grad is not None and grad.dtype == _FLOAT64,
        n,
        (y_true, plan.y_pred, weights, plan.weights_repeat, grad, float(grad_scale),
         float(grad_divisor), elementwise),
    )


def weight_sum(plan: Plan) -> float:
    """Sum of the weights over all elements, bit-identical to ``run``'s weight sum."""
    n = plan.n
    if plan.weights is None or n == 0:
        return float(n)
    args = (None, plan.y_pred, plan.weights, plan.weights_repeat, None, 0.0, 1.0, None)
    return _launch(False, False, True, _WEIGHTS, plan.result_dtype == _FLOAT64, False, n, args)[1]


# ---- fast paths ----------------------------------------------------------------------------------
# The common calls -- C-contiguous ndarrays of native float32/float64 of one shape (weights too,
# if any), reduction "mean", "weighted_mean" or "sum", no out= -- go straight to the kernels,
# skipping the plan (a few microseconds), like fastl2._core's fast paths; every other call,
# including every call that must raise, goes to the planned functions given to _bind, which
# compute the same bits.

#: The public functions this module has a fast path for (as fastl2._core.FAST_PATH_FUNCTIONS).
FAST_PATH_FUNCTIONS = ("mse", "mae", "mse_grad", "mae_grad", "mse_and_grad", "mae_and_grad")

#: Allocates fast-path gradients; fastl2._backends hands in the compiled module's, which
#: reuses the memory of the last large gradient freed.
new_gradient = np.empty

_fast_path_enabled = False
_planned: dict = {}
_NOT_FAST = object()
_FLOAT32_TYPE, _FLOAT64_TYPE = np.float32, np.float64


def _bind(fast: bool, functions: dict) -> None:
    """Connect the fast paths to the planned functions, by name (fastl2._api's mse, ...)."""
    global _fast_path_enabled
    _fast_path_enabled = fast
    _planned.update(functions)


def _set_fast_path(enabled: bool) -> None:
    global _fast_path_enabled
    _fast_path_enabled = enabled


def _plain_dtype(x):
    """The itemsize of a native float32/float64 C-contiguous ndarray, else 0."""
    if type(x) is not np.ndarray:
        return 0
    dtype = x.dtype
    if dtype is not _FLOAT64 and dtype is not _FLOAT32 and dtype != _FLOAT64 and dtype != _FLOAT32:
        return 0  # (!= also tells the non-native byte orders apart)
    return dtype.itemsize if x.flags.c_contiguous else 0


def _fast_call(absolute, y_true, y_pred, weights, reduction, want_loss, want_grad):
    """The whole call for the common case, or _NOT_FAST."""
    if not _fast_path_enabled:
        return _NOT_FAST
    if reduction == "mean":
        reduction_code = 0
    elif reduction == "sum":
        reduction_code = 1
    elif reduction == "weighted_mean":
        reduction_code = 2
    else:
        return _NOT_FAST
    pred_size = _plain_dtype(y_pred)
    true_size = _plain_dtype(y_true)
    if not pred_size or not true_size or y_true.shape != y_pred.shape or y_pred.size == 0:
        return _NOT_FAST
    single = pred_size == 4 and true_size == 4
    shape = y_pred.shape
    if weights is not None:
        weights_size = _plain_dtype(weights)
        if not weights_size or weights.shape != shape:
            return _NOT_FAST
        single = single and weights_size == 4
    if len(shape) != 1:
        y_true, y_pred = y_true.reshape(-1), y_pred.reshape(-1)
        if weights is not None:
            weights = weights.reshape(-1)
    n = y_pred.shape[0]
    divisor = 1.0 if reduction_code == 1 else float(n)
    if want_grad and reduction_code == 2 and weights is not None:
        # The gradient's divisor must be known before its first element is written.
        args = (None, y_pred, weights, 1, None, 0.0, 1.0, None)
        divisor = _launch(False, False, True, _WEIGHTS, not single, False, n, args)[1]
        if divisor == 0.0:
            return _NOT_FAST  # the planned path raises the right error
    grad = flat_grad = None
    if want_grad:
        grad = new_gradient(shape, y_pred.dtype)
        flat_grad = grad if len(shape) == 1 else grad.reshape(-1)
    mode = (_SUMS_GRAD if want_grad else _SUMS) if want_loss else _GRAD
    args = (y_true, y_pred, weights, 1, flat_grad, 1.0 if absolute else 2.0, divisor, None)
    loss_sum, weight_sum = _launch(absolute, True, weights is not None, mode, not single,
                                   want_grad and pred_size == 8, n, args)
    if not want_loss:
        return grad
    if reduction_code == 2:
        if weight_sum == 0.0:
            return _NOT_FAST  # the planned path raises the right error
        divisor = weight_sum
    value = (_FLOAT32_TYPE if single else _FLOAT64_TYPE)(loss_sum / divisor)
    return (value, grad) if want_grad else value


def mse(y_true, y_pred, weights=None, *, axis=None, reduction="mean"):
    if axis is None:
        result = _fast_call(False, y_true, y_pred, weights, reduction, True, False)
        if result is not _NOT_FAST:
            return result
    return _planned["mse"](y_true, y_pred, weights, axis=axis, reduction=reduction)


def mae(y_true, y_pred, weights=None, *, axis=None, reduction="mean"):
    if axis is None:
        result = _fast_call(True, y_true, y_pred, weights, reduction, True, False)
        if result is not _NOT_FAST:
            return result
    return _planned["mae"](y_true, y_pred, weights, axis=axis, reduction=reduction)


def mse_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    if out is None:
        result = _fast_call(False, y_true, y_pred, weights, reduction, False, True)
        if result is not _NOT_FAST:
            return result
    return _planned["mse_grad"](y_true, y_pred, weights, reduction=reduction, out=out)


def mae_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    if out is None:
        result = _fast_call(True, y_true, y_pred, weights, reduction, False, True)
        if result is not _NOT_FAST:
            return result
    return _planned["mae_grad"](y_true, y_pred, weights, reduction=reduction, out=out)


def mse_and_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    if out is None:
        result = _fast_call(False, y_true, y_pred, weights, reduction, True, True)
        if result is not _NOT_FAST:
            return result
    return _planned["mse_and_grad"](y_true, y_pred, weights, reduction=reduction, out=out)


def mae_and_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    if out is None:
        result = _fast_call(True, y_true, y_pred, weights, reduction, True, True)
        if result is not _NOT_FAST:
            return result
    return _planned["mae_and_grad"](y_true, y_pred, weights, reduction=reduction, out=out)
