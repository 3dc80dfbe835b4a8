"""The Numba backend: the kernels of csrc/ written with Numba, bit-identical to them.

Every kernel mirrors csrc/block_template.h operation for operation: blocks of BLOCK_SIZE
elements, element i of a block accumulated into float64 lane i % LANES (compensated lanes when
any input is float64), lanes and block partials combined by the same bottom-up pairwise
double-double tree (csrc/internal.h).  No fastmath: it would reorder the sums.

Each combination of (loss, y_true or not, weights or not, what is computed, compensated,
gradient dtype, serial or parallel) is its own function, made on first use by
:func:`_make_kernel` with the choices as closure constants, so no branch is left per element;
Numba compiles it once per dtype combination, with LLVM's SLP vectorizer on.  A kernel's block
code is a function of its own, called once per block (compiled in about half the time of a
kernel that inlines it), and the 1-d kernels are called through their compiled code for the
operands' dtypes (:func:`_entry_point`): no per-call type dispatch, and read-only inputs run
the same code as writable ones.  Inputs from PARALLEL_THRESHOLD elements on run their blocks
on Numba's threads (``prange``); each block writes its own partial, so the result does not
depend on the thread count.  Large gradients are written with streaming stores, as in C.

N-d arrays in any layout and reductions along axes (``run_strided``, csrc/strided.c
fl2_run_strided) go through the same block code: each output's run is cut into blocks that
are read where they lie when contiguous, else gathered into per-task buffers by address and
byte strides (never a copy of a whole array); outputs that are the columns of rows have a
kernel of their own that reads the rows once (as C's).

Compiled code is cached on disk where Numba finds a writable place: ``NUMBA_CACHE_DIR`` if
set, else beside this module, else the user's cache directory; with none, kernels are compiled
in memory, silently.  The cache is our own (:class:`_KeyedCache`, not ``cache=True``), keyed by
everything that changes a kernel's code: its name spells its whole specialisation (loss, y_true
or not, weights or not, what it computes, compensated, gradient dtype, serial or parallel, 1-d,
strided or columns), Numba's key adds the operands' types, the target and the hashes of its
bytecode and closure constants, and ours adds :data:`_CODE_FINGERPRINT` (fastl2's version, the
source of this module and of fastl2._plan, Numba's and llvmlite's versions) and the compile
options.  Each entry's data file is named by a hash of its whole key and records the key, which
is checked on load (a mismatch is a miss), so processes saving at once never cross entries.
Every function compiled inside a factory is named after its specialisation (a kernel's block
``block_`` + the kernel's name), so no two different codes share a linker symbol when one
process loads kernels that different processes compiled.

Interface (fastl2._backends): ``run``, ``weight_sum``, ``run_strided``, ``set_num_threads``,
and ``fast_call``, the common call of any loss without a plan (as fastl2._core's fast paths).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import platform
import sys
import threading
from types import FunctionType

import llvmlite
import numba
import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.core import config as numba_config
from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.extending import intrinsic
from llvmlite import ir

from ._backends import new_gradient as _new_gradient
from ._losses import LOSSES, SQUARED
from ._plan import BLOCK_SIZE, Plan

#: Interleaved float64 accumulators inside a block (csrc/fastl2.h: FL2_LANES).
LANES = 16

#: Below this many elements a call never enters Numba's thread pool (as csrc/config.c).
PARALLEL_THRESHOLD = 8 * BLOCK_SIZE

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
#: (csrc/block_template.h: FL2_ROWS_GROUP): the same tree, far shorter chains.
LANE_GROUP = 8
_GROUP_LANES = LANES * LANE_GROUP

_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)

# What one kernel computes (csrc/internal.h: fl2_mode).
_SUMS, _SUMS_GRAD, _GRAD, _ELEM, _ELEM_GRAD, _WEIGHTS = range(6)
_MODE_NAMES = ("sums", "sums_grad", "grad", "elem", "elem_grad", "weights")
#: The loss code of the weight-sum kernels, which read no loss: one kernel for every loss.
_WEIGHTS_LOSS = SQUARED.code

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

def _code_fingerprint() -> str:
    """What every cached kernel's key holds of the code it is made from: sha256 of fastl2's
    version, Numba's and llvmlite's, and the bytes of this module and of fastl2._plan (whose
    constants the kernels hold).  A source that cannot be read gives a token of this process
    alone: nothing is then loaded that another process saved."""
    digest = hashlib.sha256()
    version = getattr(sys.modules.get(__package__ or ""), "__version__", "")
    digest.update(f"fastl2 {version}\0numba {numba.__version__}\0"
                  f"llvmlite {llvmlite.__version__}\0".encode())
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("_numba.py", "_plan.py", "_losses.py"):
        try:
            with open(os.path.join(here, name), "rb") as source:
                data = source.read()
        except OSError:
            data = b"unreadable " + os.urandom(16)
        digest.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


#: See _code_fingerprint: part of the key of every cached kernel.
_CODE_FINGERPRINT = _code_fingerprint()


def _config_key():
    """The Numba settings, read at compile time, that change the code compiled."""
    return tuple(
        (name, repr(getattr(numba_config, name, None)))
        for name in ("OPT", "BOUNDSCHECK", "DEBUGINFO_DEFAULT", "ENABLE_AVX", "CPU_NAME",
                     "CPU_FEATURES", "LOOP_VECTORIZE", "SLP_VECTORIZE", "FASTMATH")
    )


class _KeyedCacheFile(IndexDataCacheFile):
    """Numba's index and data files, but each data file is named by a hash of its entry's
    whole key (not a counter) and holds the key, checked on load.

    Entries are found by their name, not through the index: two processes saving different
    entries at once never hand one entry's data to another key, and an index update that one
    of them loses costs nothing.  The index is still written (Numba's tools read it).
    """

    def __init__(self, cache_path, filename_base, source_stamp):
        super().__init__(cache_path, filename_base, source_stamp)
        self._filename_base = filename_base

    def _name_of(self, key):
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:40]
        return f"{self._filename_base}.{digest}.nbc"

    def save(self, key, data):
        name = self._name_of(key)
        self._save_data(name, (key, data))  # (the data first: an indexed entry is complete)
        overloads = self._load_index()
        if overloads.get(key) != name:
            overloads[key] = name
            self._save_index(overloads)

    def load(self, key):
        try:
            recorded, data = self._load_data(self._name_of(key))
        except Exception:  # absent, unreadable or not ours: a miss (the entry is rewritten)
            return None
        if recorded != key:
            if numba_config.DEBUG_CACHE:
                print(f"[cache] data of another key in {self._name_of(key)!r}: ignored")
            return None
        return data

    def flush(self):
        # (entries are found without the index: flushing removes their data files)
        directory = self._cache_path
        prefix = self._filename_base + "."
        with contextlib.suppress(OSError):
            for name in os.listdir(directory):
                if name.startswith(prefix) and name.endswith(".nbc"):
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(directory, name))
        self._save_index({})


class _KeyedCache(FunctionCache):
    """Numba's FunctionCache of one kernel, keyed also by _CODE_FINGERPRINT, the compile
    options and Numba's code-changing settings, in _KeyedCacheFile's files.

    Raises RuntimeError, as Numba's does, where no cache directory is writable.
    """

    def __init__(self, py_func, options=None):
        super().__init__(py_func)
        self._options = repr(sorted((options or {}).items()))
        self._cache_file = _KeyedCacheFile(
            cache_path=self._cache_path,
            filename_base=self._impl.filename_base,
            source_stamp=self._impl.locator.get_source_stamp(),
        )

    def _index_key(self, sig, codegen):
        # (the qualified name spells the kernel's specialisation, whose constants are not
        # all closure variables of the kernel itself: some are its block's)
        return super()._index_key(sig, codegen) + (
            ("fastl2", self._py_func.__qualname__, _CODE_FINGERPRINT, self._options,
             _config_key()),
        )


def _jit(function, **options):
    """``njit`` with our on-disk cache (_KeyedCache), compiled in memory where no cache
    directory is writable.

    Numba picks the first writable of NUMBA_CACHE_DIR, this package's ``__pycache__`` and the
    user's cache directory, and raises RuntimeError when none is.
    """
    dispatcher = njit(cache=False, **options)(function)
    try:
        dispatcher._cache = _KeyedCache(dispatcher.py_func, options)  # (as enable_caching)
    except RuntimeError:
        pass  # no writable cache directory
    except (AttributeError, TypeError):
        pass  # a Numba whose cache internals differ: correct code first, compiled in memory
    return dispatcher


def _jit_block(function):
    """A kernel's block function: compiled as a function of its own, called once per block.

    Numba inlines closures (inner functions) into their caller before it prunes the branches
    on its constants, so a block written inside each kernel was inlined, whole, at every call,
    even in branches the kernel drops; compiled by itself it is pruned once.  It is compiled
    with (and cached inside) each kernel that calls it, so its factory names it after that
    kernel (``block_`` + the kernel's name): blocks of different kernels never share a symbol.
    """
    return njit(nogil=True, error_model="numpy")(function)


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


# Raw memory access for the strided kernels (run_strided): arrays in any layout are read and
# written where they lie, through the address of their element (0, ..., 0) and byte strides,
# as csrc/strided.c does.  ``like`` (an array) only gives the element type.

@intrinsic
def _load(typingctx, address, like):
    """The value of ``like``'s dtype at byte address ``address`` (any alignment)."""
    if not isinstance(address, types.Integer) or not isinstance(like, types.Array):
        return None
    element = like.dtype

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], context.get_value_type(element).as_pointer())
        return builder.load(pointer, align=1)

    return element(address, like), codegen


@intrinsic
def _store(typingctx, address, value):
    """Stores ``value`` (a float, in its own type) at byte address ``address`` (any alignment)."""
    if not isinstance(address, types.Integer) or not isinstance(value, types.Float):
        return None

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], context.get_value_type(value).as_pointer())
        builder.store(args[1], pointer, align=1)
        return context.get_dummy_value()

    return types.void(address, value), codegen


@intrinsic
def _pointer(typingctx, address, like):
    """``address`` as a pointer to ``like``'s dtype (for numba.carray; aligned addresses only)."""
    if not isinstance(address, types.Integer) or not isinstance(like, types.Array):
        return None
    element = like.dtype

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(element).as_pointer())

    return types.CPointer(element)(address, like), codegen


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
    """csrc/driver.h fl2_combine_partials: (loss sum, weight sum) of the block partials."""
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


def _combine_lane_groups(lanes, h, group, out):
    """_combine_lanes of the lane pairs (lanes[h, :, j], lanes[h + 1, :, j]) of blocks j <
    group at once (lanes: (4, LANES, LANE_GROUP)), into out[h, j] (hi) and out[h + 1, j] (lo),
    as csrc/block_template.h's rows kernel does: the same pairwise tree of fl2_dd_add, level by
    level over all the blocks (vectorised over j), without fl2_dd_add's finiteness test; a
    block whose result is not finite is combined again by the tested tree, so every result has
    _combine_lanes's bits.
    """
    hi = numba.carray(_stack_buffer(_GROUP_LANES, np.float64), (LANES, LANE_GROUP))
    lo = numba.carray(_stack_buffer(_GROUP_LANES, np.float64), (LANES, LANE_GROUP))
    for k in range(LANES):
        for j in range(LANE_GROUP):
            hi[k, j] = lanes[h, k, j]
            lo[k, j] = lanes[h + 1, k, j]
    m = LANES
    while m > 1:
        for i in range(m // 2):
            for j in range(LANE_GROUP):
                a = hi[2 * i, j]
                b = hi[2 * i + 1, j]
                s = a + b
                bb = s - a
                e = (a - (s - bb)) + (b - bb)
                e += lo[2 * i, j] + lo[2 * i + 1, j]
                t = s + e
                hi[i, j] = t
                lo[i, j] = e - (t - s)
        m //= 2
    sums = numba.carray(_stack_buffer(LANES, np.float64), LANES)
    errors = numba.carray(_stack_buffer(LANES, np.float64), LANES)
    for j in range(group):
        result_hi = hi[0, j]
        result_lo = lo[0, j]
        if not result_hi - result_hi == 0.0:  # inf or nan on the way: the tested tree
            for k in range(LANES):
                sums[k] = lanes[h, k, j]
                errors[k] = lanes[h + 1, k, j]
            result_hi, result_lo = _combine_lanes(sums, errors)
        out[h, j] = result_hi
        out[h + 1, j] = result_lo


_combine_lane_groups = njit(_combine_lane_groups)


def _element_at(address, shape, strides, first, end, index):
    """csrc/strided.c element_at: the address of element ``index`` (C order over the dims
    first..end-1 of ``shape``) of an operand whose element at index 0 is at ``address``."""
    dim = end - 1
    while dim >= first and index:
        address += (index % shape[dim]) * strides[dim]
        index //= shape[dim]
        dim -= 1
    return address


_element_at = njit(_element_at)


def _copy_run(buffer, address, shape, strides, first, start, count, to_array):
    """csrc/strided.c copy_run: elements start..start+count-1 (C order over the dims first..
    of ``shape``) of the operand at ``address`` into ``buffer[:count]``; or back, ``to_array``."""
    nd = shape.shape[0]
    index = numba.carray(_stack_buffer(_MAX_DIMS, np.int64), _MAX_DIMS)
    rest = start
    at = address
    for dim in range(nd - 1, first - 1, -1):
        index[dim] = rest % shape[dim]
        rest //= shape[dim]
        at += index[dim] * strides[dim]
    last = nd - 1
    step = strides[last]
    position = 0
    while count > 0:
        run = min(shape[last] - index[last], count)
        if to_array:
            for i in range(run):
                _store(at + i * step, buffer[position + i])
        else:
            for i in range(run):
                buffer[position + i] = _load(at + i * step, buffer)
        position += run
        count -= run
        # Advance the odometer by ``run`` elements: the last dim ends or the count does.
        index[last] += run
        at += run * step
        dim = last
        while dim > first and index[dim] == shape[dim]:
            at -= shape[dim] * strides[dim]
            index[dim] = 0
            index[dim - 1] += 1
            at += strides[dim - 1]
            dim -= 1


_copy_run = njit(_copy_run)


def _kernel_name(loss, has_true, has_weights, mode, compensated, grad64, parallel,
                 strided=False):
    """The name (and qualified name) of _make_kernel's kernel of this specialisation: one
    name per code (grad64 counts only with a gradient)."""
    want_grad = mode in (_SUMS_GRAD, _GRAD, _ELEM_GRAD)
    return "_".join(
        (
            LOSSES[loss].name,
            "true" if has_true else "penalty",
            "weighted" if has_weights else "unweighted",
            _MODE_NAMES[mode],
            "compensated" if compensated else "plain",
            ("grad64" if grad64 else "grad32") if want_grad else "nograd",
            "parallel" if parallel else "serial",
        )
        + (("strided",) if strided else ())
    )


def _columns_name(loss, has_true, has_weights, weights_only, compensated, parallel):
    """The name of _make_columns_kernel's kernel of this specialisation."""
    return "_".join(
        (
            LOSSES[loss].name,
            "true" if has_true else "penalty",
            "weighted" if has_weights else "unweighted",
            "weights" if weights_only else "sums",
            "compensated" if compensated else "plain",
            "parallel" if parallel else "serial",
            "columns",
        )
    )


def _element_globals(loss):
    """The globals of a kernel function of loss ``loss`` (a code): this module's, and
    ``_loss_value`` / ``_loss_derivative``, the loss's scalar element functions
    (fastl2._losses), compiled to be inlined.  (Globals, not closure variables: Numba's cache
    keys hold the pickled closure variables, and a pickled dispatcher differs in every
    process.)"""
    functions = _element_functions.get(loss)
    if functions is None:
        declared = LOSSES[loss]
        functions = _element_functions[loss] = (
            njit(inline="always")(declared.scalar_value),
            njit(inline="always")(declared.scalar_derivative),
        )
    return dict(globals(), _loss_value=functions[0], _loss_derivative=functions[1])


_element_functions: dict = {}


def _with_globals(function, namespace):
    """``function`` with the globals ``namespace`` (and its name and closure)."""
    made = FunctionType(function.__code__, namespace, function.__name__, function.__defaults__,
                        function.__closure__)
    made.__qualname__ = function.__qualname__
    return made


def _make_kernel(loss, has_true, has_weights, mode, compensated, grad64, parallel,
                 strided=False):
    """The kernel of one specialisation; every argument is a compile-time constant in it.

    ``kernel(y_true, y_pred, weights, repeat, grad, scale, divisor, elem, param) -> (loss,
    weights)`` where the arrays not used are None and ``param`` is the loss's parameter.  Numba prunes the branches on these constants before
    it builds the parallel loop, so none is left in the loops.

    With ``strided`` (csrc/strided.c fl2_run_strided) the arrays only give the operands' dtypes
    (see run_strided) and ``repeat`` is the layout instead (an argument of its own, even one
    with a default, would slow every call of the 1-d kernels): ``(addresses, shape, strides,
    itemsizes, nkept, loss_sums, weight_sums, threads)``, where the operands are (byte address
    of element (0, ...), byte strides and item size per operand, 0 for those not used) and how
    many threads the work is split for.  It returns (0.0, 0.0) and fills loss_sums[o] (but with
    weights_only) and weight_sums[o] (with weights) per output.  Both kinds run each block
    through ``block``.
    """
    want_sums = mode in (_SUMS, _SUMS_GRAD, _WEIGHTS)
    want_grad = mode in (_SUMS_GRAD, _GRAD, _ELEM_GRAD)
    want_elem = mode in (_ELEM, _ELEM_GRAD)
    weights_only = mode == _WEIGHTS
    grad64 = bool(grad64 and want_grad)  # (no gradient: one code, whatever grad64 says)
    name = _kernel_name(loss, has_true, has_weights, mode, compensated, grad64, parallel,
                        strided)
    read_true = has_true and not weights_only
    block_size = BLOCK_SIZE
    lanes = LANES
    stack_blocks = STACK_BLOCKS
    stack_slots = 4 * STACK_BLOCKS
    streaming = _STREAMING_STORES
    stream_min_bytes = STREAM_MIN_BYTES
    nops = _NOPS
    tasks_per_thread = _TASKS_PER_THREAD
    lane_group = LANE_GROUP
    # Chunk offsets are unsigned, so indexing needs no negative-index wraparound and the 16
    # loads of a chunk are seen as consecutive.
    u_lanes = np.uint64(LANES)

    def block(t_arr, p_arr, w_arr, w_repeat, g_arr, e_arr, start, end, stream, partials, b,
              keep_lanes, lanes_out, scale, divisor, quotient, param):
        # csrc/block_template.h: elements start..end-1 of the arrays, one block; its
        # partial (loss hi, lo, weights hi, lo) goes to partials[b], or with keep_lanes (a
        # constant at each call) its uncombined lanes to lanes_out[:, :, b].
        # loss sums, loss errors, weight sums, weight errors: LANES each
        acc0 = numba.carray(_stack_buffer(16, np.float64), lanes)
        acc1 = numba.carray(_stack_buffer(16, np.float64), lanes)
        acc2 = numba.carray(_stack_buffer(16, np.float64), lanes)
        acc3 = numba.carray(_stack_buffer(16, np.float64), lanes)
        d = numba.carray(_stack_buffer(16, np.float64), lanes)
        wk = numba.carray(_stack_buffer(16, np.float64), lanes)
        g_buffer = _stack_buffer(16, np.float64)  # the chunk's gradient, before its stores
        g = numba.carray(g_buffer, lanes)
        for k in range(lanes):
            acc0[k] = 0.0
            acc1[k] = 0.0
            acc2[k] = 0.0
            acc3[k] = 0.0
            d[k] = 0.0
            wk[k] = 1.0

        row = 0
        row_end = 0
        if has_weights:
            row = start // w_repeat
            row_end = (row + 1) * w_repeat

        def add(s, e, k, x):
            # One compensated (TwoSum) or plain addition of x to lane k of sums s, errors e.
            if compensated:
                t = s[k] + x
                z = t - s[k]
                e[k] += (s[k] - (t - z)) + (x - z)
                s[k] = t
            else:
                s[k] += x

        def element(i, k, dk, wi):
            # csrc/block_template.h ELEMENT: element i, difference dk, weight wi, lane k;
            # returns the gradient element (before its rounding to grad's dtype).
            gk = 0.0
            if not weights_only:
                l = _loss_value(dk, param)
                if has_weights:
                    wl = wi * l
                else:
                    wl = l
                if want_sums:
                    add(acc0, acc1, k, wl)
                if want_elem:
                    e_arr[i] = wl
                if want_grad:
                    gk = _loss_derivative(dk, param)
                    if has_weights:
                        gk = wi * gk
                    if grad64:
                        gk = (scale * gk) / divisor
                    else:
                        gk = quotient * gk
            if has_weights and want_sums:
                add(acc2, acc3, k, wi)
            return gk

        def run_chunks(t_arr, p_arr, w_arr, g_arr, nchunks, row, row_end, streamed):
            # The block's whole chunks of LANES elements; streamed is a constant at each call.
            # (The arrays are parameters: an inlined closure's reads of its enclosing
            # function's arrays would each take and drop a reference, in the loop.)
            base = np.uint64(start)
            for c in range(nchunks):
                i = base + np.uint64(c) * u_lanes
                # All reads of a chunk come before its writes: grad may be y_pred itself.
                if not weights_only:
                    for k in range(lanes):
                        if has_true:
                            d[k] = np.float64(p_arr[i + np.uint64(k)]) - np.float64(
                                t_arr[i + np.uint64(k)]
                            )
                        else:
                            d[k] = np.float64(p_arr[i + np.uint64(k)])
                if has_weights:
                    first = start + c * lanes
                    if w_repeat == 1:
                        for k in range(lanes):
                            wk[k] = np.float64(w_arr[i + np.uint64(k)])
                    elif first + lanes <= row_end:
                        wr = np.float64(w_arr[row])
                        for k in range(lanes):
                            wk[k] = wr
                    else:
                        for k in range(lanes):
                            while first + k >= row_end:
                                row += 1
                                row_end += w_repeat
                            wk[k] = np.float64(w_arr[row])
                for k in range(lanes):
                    gk = element(i + np.uint64(k), k, d[k], wk[k])
                    if want_grad:
                        if streamed:
                            g[k] = gk
                        else:
                            g_arr[i + np.uint64(k)] = gk
                if streamed:
                    _stream_store_16(g_arr, i, g_buffer)
            return row, row_end

        nchunks = (end - start) // lanes
        if want_grad and stream:  # (want_grad first: the branch is dropped without it)
            row, row_end = run_chunks(t_arr, p_arr, w_arr, g_arr, nchunks, row, row_end, True)
        else:
            row, row_end = run_chunks(t_arr, p_arr, w_arr, g_arr, nchunks, row, row_end,
                                       False)

        k = 0
        for j in range(start + nchunks * lanes, end):
            dj = 0.0
            if not weights_only:
                if has_true:
                    dj = np.float64(p_arr[j]) - np.float64(t_arr[j])
                else:
                    dj = np.float64(p_arr[j])
            wj = 1.0
            if has_weights:
                if w_repeat == 1:
                    wj = np.float64(w_arr[j])
                else:
                    while j >= row_end:
                        row += 1
                        row_end += w_repeat
                    wj = np.float64(w_arr[row])
            gj = element(j, k, dj, wj)
            if want_grad:
                g_arr[j] = gj
            k += 1
        if stream:
            _store_fence()

        if want_sums:
            if not compensated:
                for k in range(lanes):
                    acc1[k] = 0.0
                    acc3[k] = 0.0
            if keep_lanes:
                for k in range(lanes):
                    lanes_out[0, k, b] = acc0[k]
                    lanes_out[1, k, b] = acc1[k]
                    if has_weights:
                        lanes_out[2, k, b] = acc2[k]
                        lanes_out[3, k, b] = acc3[k]
            else:
                partials[b, 0], partials[b, 1] = _combine_lanes(acc0, acc1)
                if has_weights:
                    partials[b, 2], partials[b, 3] = _combine_lanes(acc2, acc3)
                else:
                    partials[b, 2] = np.float64(end - start)
                    partials[b, 3] = 0.0

    # Named after the kernel: its symbol (qualified name and Numba's per-process counter) is
    # linked into the kernel's cached code, where no other block may have the same one.
    block.__name__ = block.__qualname__ = "block_" + name
    block_dispatcher = _jit_block(_with_globals(block, _element_globals(loss)))

    def kernel(y_true, y_pred, weights, repeat, grad, scale, divisor, elem, param):
        quotient = scale / divisor

        if strided:
            # csrc/strided.c fl2_run_strided: work item w is block w % nblocks of output
            # w // nblocks; each block is gathered into the task's buffers (or read where it
            # lies when it is one contiguous, aligned piece of every operand), run through
            # ``block`` and its gradient and element losses scattered back.  The lanes of
            # LANE_GROUP items at a time are combined together (_combine_lane_groups).
            addresses, shape, strides, itemsizes, nkept, loss_sums, weight_sums, threads = repeat
            ndim = shape.shape[0]
            last = ndim - 1
            outputs = 1
            for dim in range(nkept):
                outputs *= shape[dim]
            reduced = 1
            for dim in range(nkept, ndim):
                reduced *= shape[dim]
            nblocks = (reduced + block_size - 1) // block_size
            items = outputs * nblocks
            many = nblocks > 1
            # Block partials of every item when outputs have several blocks; else each group
            # of items finishes its outputs at once.
            all_partials = np.empty((items if want_sums and many else 0, 4))
            if not parallel:
                threads = 1
            # Contiguous ranges of work items per task, several tasks per thread (as C).
            per_task = max(1, items // (tasks_per_thread * max(1, threads)))
            ntasks = (items + per_task - 1) // per_task
            for task in prange(ntasks):
                first_item = task * per_task
                end_item = min(first_item + per_task, items)
                # The task's buffers, of each operand's dtype.
                if read_true:
                    true_buffer = np.empty(block_size, y_true.dtype)
                if not weights_only:
                    pred_buffer = np.empty(block_size, y_pred.dtype)
                if has_weights:
                    weights_buffer = np.empty(block_size, weights.dtype)
                if want_grad:
                    grad_buffer = np.empty(block_size, grad.dtype)
                if want_elem:
                    elem_buffer = np.empty(block_size, elem.dtype)
                group_lanes = np.zeros((4, lanes, lane_group))
                group_counts = np.empty(lane_group)
                group_sums = np.empty((4, lane_group))
                # each operand's element (o, 0, ..., 0) and the block's first element
                bases = numba.carray(_stack_buffer(nops, np.int64), nops)
                heres = numba.carray(_stack_buffer(nops, np.int64), nops)
                group_first = first_item
                while group_first < end_item:
                    group = min(lane_group, end_item - group_first)
                    for j in range(group):
                        w = group_first + j
                        if many:
                            o = w // nblocks
                            b = w - o * nblocks
                        else:
                            o = w
                            b = 0
                        start = b * block_size
                        count = min(block_size, reduced - start)
                        group_counts[j] = count
                        # The index of o in the kept dims (the first of them needs no
                        # division: o < outputs).
                        for k in range(nops):
                            bases[k] = addresses[k]
                        rest = o
                        for dim in range(nkept - 1, 0, -1):
                            index = rest % shape[dim]
                            rest //= shape[dim]
                            for k in range(nops):
                                bases[k] += index * strides[k, dim]
                        if nkept:
                            for k in range(nops):
                                bases[k] += rest * strides[k, 0]
                        # One contiguous piece of every operand: the block lies in one row of
                        # the last dim, which every operand steps through by its item size.
                        direct = (start % shape[last] if start else 0) + count <= shape[last]
                        for k in range(nops):
                            size = itemsizes[k]
                            if size and direct:
                                at = bases[k]
                                if start:
                                    at = _element_at(at, shape, strides[k], nkept, ndim, start)
                                heres[k] = at
                                if (strides[k, last] != size and count > 1) or at & (size - 1):
                                    direct = False
                        if read_true:
                            if direct:
                                t_arr = numba.carray(_pointer(heres[0], y_true), count)
                            else:
                                _copy_run(true_buffer, bases[0], shape, strides[0], nkept, start,
                                          count, False)
                                t_arr = true_buffer
                        else:
                            t_arr = y_true
                        if not weights_only:
                            if direct:
                                p_arr = numba.carray(_pointer(heres[1], y_pred), count)
                            else:
                                _copy_run(pred_buffer, bases[1], shape, strides[1], nkept, start,
                                          count, False)
                                p_arr = pred_buffer
                        else:
                            p_arr = y_pred
                        if has_weights:
                            if direct:
                                w_arr = numba.carray(_pointer(heres[2], weights), count)
                            else:
                                _copy_run(weights_buffer, bases[2], shape, strides[2], nkept,
                                          start, count, False)
                                w_arr = weights_buffer
                        else:
                            w_arr = weights
                        if want_grad:
                            if direct:
                                g_arr = numba.carray(_pointer(heres[3], grad), count)
                            else:
                                g_arr = grad_buffer
                        else:
                            g_arr = grad
                        if want_elem:
                            if direct:
                                e_arr = numba.carray(_pointer(heres[4], elem), count)
                            else:
                                e_arr = elem_buffer
                        else:
                            e_arr = elem
                        _block(t_arr, p_arr, w_arr, 1, g_arr, e_arr, 0, count, False,
                               all_partials, j, True, group_lanes, scale, divisor, quotient,
                               param)
                        if not direct:
                            if want_grad:
                                _copy_run(grad_buffer, bases[3], shape, strides[3], nkept, start,
                                          count, True)
                            if want_elem:
                                _copy_run(elem_buffer, bases[4], shape, strides[4], nkept, start,
                                          count, True)
                    if want_sums:
                        _combine_lane_groups(group_lanes, 0, group, group_sums)
                        if has_weights:
                            _combine_lane_groups(group_lanes, 2, group, group_sums)
                        else:
                            for j in range(group):
                                group_sums[2, j] = group_counts[j]
                                group_sums[3, j] = 0.0
                        for j in range(group):
                            w = group_first + j
                            if many:
                                for h in range(4):
                                    all_partials[w, h] = group_sums[h, j]
                            else:
                                # (csrc/strided.c finish_output of one partial: hi + lo)
                                if not weights_only:
                                    loss_sums[w] = group_sums[0, j] + group_sums[1, j]
                                if has_weights:
                                    weight_sums[w] = group_sums[2, j] + group_sums[3, j]
                    group_first += group
            if want_sums and many:
                for output in range(outputs):
                    output_loss, output_weights = _combine_partials(
                        all_partials[output * nblocks : (output + 1) * nblocks]
                    )
                    if not weights_only:
                        loss_sums[output] = output_loss
                    if has_weights:
                        weight_sums[output] = output_weights
            return 0.0, 0.0

        n = y_pred.shape[0]
        nblocks = (n + block_size - 1) // block_size
        # Large gradients are written with streaming stores, 16-byte aligned ones as in C.
        stream = False
        if want_grad and streaming:
            stream = n * grad.itemsize >= stream_min_bytes and grad.ctypes.data % 16 == 0
        # Block partials: loss hi, lo, weights hi, lo; on the stack when few (as csrc/driver.h).
        if parallel or nblocks > stack_blocks:
            partials = np.empty((nblocks if want_sums else 0, 4))
        else:
            partials = numba.carray(_stack_buffer(stack_slots, np.float64), (nblocks, 4))

        no_lanes = numba.carray(_stack_buffer(4, np.float64), (4, 1, 1))  # (not written)
        for b in prange(nblocks):
            start = b * block_size
            end = min(start + block_size, n)
            _block(y_true, y_pred, weights, repeat, grad, elem, start, end, stream, partials, b,
                   False, no_lanes, scale, divisor, quotient, param)

        if want_sums:
            return _combine_partials(partials)
        return 0.0, 0.0

    # One cache index file per specialisation (the constants are also in each entry's key).
    kernel.__name__ = kernel.__qualname__ = name
    # ``_block`` is a global of the kernel, not a closure variable: Numba's cache keys hold the
    # pickled closure variables, and a pickled dispatcher differs in every process.
    kernel = FunctionType(kernel.__code__, dict(globals(), _block=block_dispatcher),
                          kernel.__name__, kernel.__defaults__, kernel.__closure__)
    kernel.__qualname__ = kernel.__name__
    return _slp_dispatcher(_jit(kernel, parallel=parallel, nogil=True, error_model="numpy"))


def _slp_dispatcher(dispatcher):
    """``dispatcher``, compiling (or loading from the cache) with the SLP vectorizer on."""
    # Numba's dispatcher calls _compile_for_args for argument types it has no code for yet.
    compile_for_args = dispatcher._compile_for_args

    def _compile_for_args(*args, **kws):
        with _slp_vectorized():
            return compile_for_args(*args, **kws)

    dispatcher._compile_for_args = _compile_for_args
    return dispatcher


def _make_columns_kernel(loss, has_true, has_weights, weights_only, compensated, parallel):
    """The kernel of run_strided's column layout, one specialisation (csrc/block_template.h
    _columns): the outputs are the contiguous columns of rows (a reduction along axis 0 of a
    C-ordered matrix).  Reading each column by itself would read every row once per output;
    this reads the rows once, in memory order, a block of BLOCK_SIZE rows at a time, and adds
    element r of each column to lane r % LANES of that column with ``block``'s operations, so
    each output's block partial has the bits ``block`` gives its run.

    ``columns(y_true, y_pred, weights, layout)``, the arrays giving the dtypes (as for the
    strided kernels); ``layout = (addresses, row_steps, weights_step, nrows, ncols, loss_sums,
    weight_sums, threads, param)``, param the loss's parameter: row_steps[k] is operand k's row stride in elements, weights_step
    1 for weights per element and 0 for one weight per row.  Modes sums and weights only.
    """
    block_size = BLOCK_SIZE
    lanes = LANES
    tasks_per_thread = 16  # (numba splits the tasks evenly, statically: small ones balance)

    def columns(y_true, y_pred, weights, layout):
        addresses, row_steps, weights_step, nrows, ncols, loss_sums, weight_sums, threads, param = layout
        nblocks = (nrows + block_size - 1) // block_size
        many = nblocks > 1
        all_partials = np.empty((ncols * nblocks if many else 0, 4))
        if not parallel:
            threads = 1
        per_task = max(1, nblocks // (tasks_per_thread * max(1, threads)))
        ntasks = (nblocks + per_task - 1) // per_task
        for task in prange(ntasks):
            first_block = task * per_task
            end_block = min(first_block + per_task, nblocks)
            # lanes of each column: loss sums, loss errors, weight sums, weight errors
            scratch = np.empty((lanes, 4, ncols))
            sums = np.empty(lanes)
            errors = np.empty(lanes)
            # bytes from one row to the next
            true_step = pred_step = weights_step_bytes = 0
            if has_true:
                true_step = row_steps[0] * y_true.itemsize
            if not weights_only:
                pred_step = row_steps[1] * y_pred.itemsize
            if has_weights:
                weights_step_bytes = row_steps[2] * weights.itemsize
            for b in range(first_block, end_block):
                start = b * block_size
                rows = min(block_size, nrows - start)
                scratch[:] = 0.0
                true_at = addresses[0] + start * true_step
                pred_at = addresses[1] + start * pred_step
                weights_at = addresses[2] + start * weights_step_bytes
                for r in range(rows):
                    lane = r % lanes
                    if not weights_only:
                        yp = numba.carray(_pointer(pred_at, y_pred), ncols)
                        pred_at += pred_step
                        if has_true:
                            yt = numba.carray(_pointer(true_at, y_true), ncols)
                            true_at += true_step
                    if has_weights:
                        wr = numba.carray(_pointer(weights_at, weights),
                                          ncols if weights_step else 1)
                        weights_at += weights_step_bytes
                    acc = scratch[lane]
                    loss_sum = acc[0]
                    loss_err = acc[1]
                    w_sum = acc[2]
                    w_err = acc[3]
                    for c in range(ncols):
                        wk = 1.0
                        if has_weights:
                            wk = np.float64(wr[c * weights_step])
                        if not weights_only:
                            if has_true:
                                d = np.float64(yp[c]) - np.float64(yt[c])
                            else:
                                d = np.float64(yp[c])
                            l = _loss_value(d, param)
                            if has_weights:
                                wl = wk * l
                            else:
                                wl = l
                            if compensated:
                                t = loss_sum[c] + wl
                                z = t - loss_sum[c]
                                loss_err[c] += (loss_sum[c] - (t - z)) + (wl - z)
                                loss_sum[c] = t
                            else:
                                loss_sum[c] += wl
                        if has_weights:
                            if compensated:
                                t = w_sum[c] + wk
                                z = t - w_sum[c]
                                w_err[c] += (w_sum[c] - (t - z)) + (wk - z)
                                w_sum[c] = t
                            else:
                                w_sum[c] += wk
                for c in range(ncols):
                    at = c * nblocks + b
                    for k in range(lanes):
                        sums[k] = scratch[k, 0, c]
                        errors[k] = scratch[k, 1, c] if compensated else 0.0
                    loss_hi, loss_lo = _combine_lanes(sums, errors)
                    weights_hi = np.float64(rows)
                    weights_lo = 0.0
                    if has_weights:
                        for k in range(lanes):
                            sums[k] = scratch[k, 2, c]
                            errors[k] = scratch[k, 3, c] if compensated else 0.0
                        weights_hi, weights_lo = _combine_lanes(sums, errors)
                    if many:
                        all_partials[at, 0] = loss_hi
                        all_partials[at, 1] = loss_lo
                        all_partials[at, 2] = weights_hi
                        all_partials[at, 3] = weights_lo
                    else:
                        if not weights_only:
                            loss_sums[c] = loss_hi + loss_lo
                        if has_weights:
                            weight_sums[c] = weights_hi + weights_lo
        if many:
            for c in range(ncols):
                output_loss, output_weights = _combine_partials(
                    all_partials[c * nblocks : (c + 1) * nblocks]
                )
                if not weights_only:
                    loss_sums[c] = output_loss
                if has_weights:
                    weight_sums[c] = output_weights
        return 0.0, 0.0

    columns.__name__ = columns.__qualname__ = _columns_name(
        loss, has_true, has_weights, weights_only, compensated, parallel
    )
    columns = _with_globals(columns, _element_globals(loss))
    return _slp_dispatcher(_jit(columns, parallel=parallel, nogil=True, error_model="numpy"))


_kernels: dict = {}
_parallel_lock = threading.Lock()
#: Numba's pool size: with one thread, nothing is ever launched on it.
_POOL_SIZE = numba_config.NUMBA_NUM_THREADS
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
    ``sizes`` (see _entry_point); returns (loss sum, weight sum)."""
    threads = _requested_threads
    if n < PARALLEL_THRESHOLD or _forked_child or threads == 1 or _POOL_SIZE == 1:
        key = (loss, has_true, has_weights, mode, compensated, grad64, False)
        return _entry_point(key, sizes)(*args)
    entry = _entry_point((loss, has_true, has_weights, mode, compensated, grad64, True), sizes)
    if not threads and _concurrent_launches:
        # The common case: Numba's own thread count (numba.set_num_threads applies to the
        # calling thread only, and the kernel reads it), a thread-safe layer.
        return entry(*args)
    return _locked_launch(entry, threads, args)


def _launch_strided(kind, loss, has_true, has_weights, mode, compensated, grad64, n, args):
    """_launch for the kernels of run_strided: ``kind`` "strided" or "columns" (its own
    function, so that _launch, on every call's path, stays as short as it can be)."""
    threads = _requested_threads
    if n < PARALLEL_THRESHOLD or _forked_child or threads == 1 or _POOL_SIZE == 1:
        return _kernel(
            (loss, has_true, has_weights, mode, compensated, grad64, False, kind)
        )(*args)
    kernel = _kernel((loss, has_true, has_weights, mode, compensated, grad64, True, kind))
    if not threads and _concurrent_launches:
        # The common case: Numba's own thread count (numba.set_num_threads applies to the
        # calling thread only, and the kernel reads it), a thread-safe layer.
        return kernel(*args)
    return _locked_launch(kernel, threads, args)


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
    return _launch(_WEIGHTS_LOSS, False, True, _WEIGHTS, plan.result_dtype == _FLOAT64, False, sizes, n,
                   args)[1]


#: Zero-length arrays that stand for the operands of run_strided in its kernels: they give
#: the dtype, and only the dtype, so that read-only, unaligned or N-d operands need no code of
#: their own.
_DTYPE_OF = {_FLOAT32: np.empty(0, np.float32), _FLOAT64: np.empty(0, np.float64)}


def _operand_dtype(array, name):
    dtype = array.dtype
    if dtype != _FLOAT32 and dtype != _FLOAT64:
        raise TypeError(f"fastl2: {name} must be native float32 or float64; got {dtype}")
    return dtype


def run_strided(s, want_sums: bool, grad_scale: float = 0.0, grad_divisor: float = 1.0,
                weights_only: bool = False):
    """One pass over a ``fastl2._plan.Strided``; writes its grad and elementwise operands.

    As fastl2._core.run_strided (csrc/strided.c fl2_run_strided), bit for bit: returns float64
    arrays (loss sums, weight sums) of one element per output when ``want_sums``; (None,
    weight sums) with ``weights_only`` (nothing else is computed); otherwise None.

    The arrays are read and written where they lie, never copied whole: the kernels get each
    operand's address of element (0, ..., 0) and its byte strides (any sign, zero, even not a
    multiple of the item size), as the C driver does, and a zero-length array of its dtype, so
    that no layout, alignment or read-only flag needs code of its own.  Each work item (one
    block of one output) is read where it lies when it is one contiguous aligned piece of
    every operand, else gathered into buffers of BLOCK_SIZE elements per task (and its
    gradient and element losses scattered back); outputs that are the columns of rows go to
    the columns kernel (sums only, as in C).
    """
    shape = tuple(int(size) for size in s.shape)
    ndim = len(shape)
    if not 1 <= ndim <= _MAX_DIMS:
        raise ValueError(f"fastl2: arrays of up to {_MAX_DIMS} dimensions are supported")
    nkept = int(s.nkept)
    if not 0 <= nkept < ndim:
        raise ValueError(f"fastl2: nkept must be in [0, {ndim}); got {nkept}")
    outputs = math.prod(shape[:nkept])
    reduced = math.prod(shape[nkept:])
    y_true, y_pred, weights, grad, elem = s.y_true, s.y_pred, s.weights, s.grad, s.elementwise
    if y_true is None:
        weights = None  # as csrc/: the L2 penalty's kernels read no weights
    if elem is not None:
        mode = _ELEM_GRAD if grad is not None else _ELEM
    elif want_sums:
        mode = _SUMS_GRAD if grad is not None else _SUMS
    elif grad is not None:
        mode = _GRAD
    else:
        mode = _WEIGHTS
    loss_sums = np.zeros(outputs) if want_sums else None
    weight_sums = None
    if (want_sums or weights_only) and weights is not None:
        weight_sums = np.zeros(outputs)
    elif want_sums or weights_only:  # every output's weight sum is its element count (as C)
        weight_sums = np.broadcast_to(np.float64(reduced), (outputs,))

    def result():
        if want_sums:
            return loss_sums, weight_sums
        if weights_only:
            return None, weight_sums
        return None

    pred_dtype = _operand_dtype(y_pred, "y_pred")
    single = pred_dtype == _FLOAT32
    if y_true is not None:
        single = _operand_dtype(y_true, "y_true") == _FLOAT32 and single
    if weights is not None:
        single = _operand_dtype(weights, "weights") == _FLOAT32 and single
    if mode == _WEIGHTS:
        if not weights_only:
            return result()  # nothing is computed, nothing returned
        if weights is None:
            return result()
        y_true = y_pred = None
    if grad is not None and grad.dtype != pred_dtype:
        raise ValueError(
            f"fastl2: the gradient must have y_pred's dtype {pred_dtype}; got {grad.dtype}"
        )
    if elem is not None and elem.dtype != (_FLOAT32 if single else _FLOAT64):
        raise ValueError(
            f"fastl2: elementwise losses must be {'float32' if single else 'float64'} here; "
            f"got {elem.dtype}"
        )
    if outputs == 0 or reduced == 0:
        return result()  # sums of nothing: zeros

    operands = (y_true, y_pred, weights, grad, elem)
    addresses = np.zeros(_NOPS, np.int64)
    strides = np.zeros((_NOPS, ndim), np.int64)
    itemsizes = np.zeros(_NOPS, np.int64)
    for k, array in enumerate(operands):
        if array is not None:
            if array.shape != shape:
                raise ValueError(
                    f"fastl2: every operand must have shape {shape}; got {array.shape}"
                )
            addresses[k] = array.__array_interface__["data"][0]
            strides[k] = array.strides
            itemsizes[k] = array.itemsize
    witnesses = [None if a is None else _DTYPE_OF[a.dtype] for a in operands]
    sums = (loss_sums if loss_sums is not None else np.empty(0),
            weight_sums if weight_sums is not None and weights is not None else np.empty(0))
    n = outputs * reduced
    loss, has_true, has_weights = s.loss.code, y_true is not None, weights is not None
    if mode == _WEIGHTS:
        loss = _WEIGHTS_LOSS  # (one kernel for weight sums, whatever the loss)
    # (the arrays stay referenced here while the kernels read and write them by address)
    if mode in (_SUMS, _WEIGHTS) and _columns_apply(ndim, nkept, outputs, addresses, strides,
                                                     itemsizes):
        if (reduced + BLOCK_SIZE - 1) // BLOCK_SIZE == 1:
            n = 0  # one block of rows: nothing to share between threads
        row_steps = strides[:3, 1] // np.maximum(itemsizes[:3], 1)
        layout = (addresses, row_steps, 1 if strides[2, 0] else 0, reduced, outputs) + sums + (
            get_num_threads(), float(s.param))
        _launch_strided("columns", loss, has_true, has_weights, mode, not single, False, n,
                        (witnesses[0], witnesses[1], witnesses[2], layout))
        return result()
    if outputs * ((reduced + BLOCK_SIZE - 1) // BLOCK_SIZE) == 1:
        n = 0  # one work item: nothing to share between threads
    layout = (addresses, np.array(shape, np.int64), strides, itemsizes, nkept) + sums + (
        get_num_threads(),)
    args = (witnesses[0], witnesses[1], witnesses[2], layout, witnesses[3], float(grad_scale),
            float(grad_divisor), witnesses[4], float(s.param))
    _launch_strided("strided", loss, has_true, has_weights, mode, not single,
                    grad is not None and pred_dtype == _FLOAT64, n, args)
    return result()


def _columns_apply(ndim, nkept, outputs, addresses, strides, itemsizes):
    """Whether run_strided's outputs are the contiguous columns of rows, for the columns
    kernel (csrc/strided.c columns_apply, and aligned: its rows are read as arrays)."""
    if ndim != 2 or nkept != 1 or not 2 <= outputs <= _MAX_COLUMNS:
        return False
    for k in range(3):  # y_true, y_pred, weights
        size = int(itemsizes[k])
        if not size:
            continue
        column_step, row_step = int(strides[k, 0]), int(strides[k, 1])
        if not (column_step == size or (k == 2 and column_step == 0)):
            return False
        if row_step % size or int(addresses[k]) % size:
            return False
    return True


# ---- the fast path ---------------------------------------------------------------------------------
# The common calls -- C-contiguous ndarrays of native float32/float64 of one shape (weights too,
# if any), reduction "mean", "weighted_mean" or "sum", no out= -- go straight to the kernels,
# skipping the plan (a few microseconds), like fastl2._core's fast paths; fastl2._api tries
# fast_call first and plans every other call (including every call that must raise), which
# computes the same bits.

_FLOAT32_TYPE, _FLOAT64_TYPE = np.float32, np.float64
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_GRAD_SCALES = tuple(loss.grad_scale for loss in LOSSES)


def _plain_dtype(x):
    """The itemsize of a native float32/float64 C-contiguous aligned ndarray, else 0."""
    if type(x) is not np.ndarray:
        return 0
    dtype = x.dtype
    if dtype is not _FLOAT64 and dtype is not _FLOAT32 and dtype != _FLOAT64 and dtype != _FLOAT32:
        return 0  # (!= also tells the non-native byte orders apart)
    flags = x.flags
    return dtype.itemsize if flags.c_contiguous and flags.aligned else 0


_fast_entries: dict = {}


def _fast_entry(loss, mode, true_size, pred_size, weights_size, parallel, compensated):
    """_entry_point of the fast paths' kernel, by a flat key of the call's choices (what
    _fast_call looks up first, in _fast_entries; ``compensated`` follows from the sizes)."""
    want_grad = mode != _SUMS
    key = (loss, True, weights_size is not None, mode, compensated,
           want_grad and pred_size == 8, parallel)
    entry = _entry_point(key, (true_size, pred_size, weights_size,
                               pred_size if want_grad else None, None))
    _fast_entries[loss, mode, true_size, pred_size, weights_size, parallel] = entry
    return entry


def fast_call(loss, param, y_true, y_pred, weights, reduction, want_loss, want_grad):
    """The whole call for the common case of loss ``loss`` (a fastl2._losses code) with its
    parameter ``param`` (a checked float; 0.0 for losses without one): the loss (a NumPy
    scalar), the gradient (a new array) or both, as ``want_loss`` and ``want_grad`` say; or
    None for a call that is not the common case (fastl2._api then plans it)."""
    pred_size = _plain_dtype(y_pred)
    true_size = _plain_dtype(y_true)
    if not pred_size or not true_size:
        return None
    shape = y_pred.shape
    n = y_pred.size
    if y_true.shape != shape or not n:
        return None
    if weights is None:
        weights_size = None
    else:
        weights_size = _plain_dtype(weights)
        if not weights_size or weights.shape != shape:
            return None
    if not isinstance(reduction, str):  # (an array's == would compare element-wise)
        return None
    if reduction == "sum":
        divisor = 1.0
    elif reduction == "mean" or reduction == "weighted_mean":
        divisor = float(n)
    else:
        return None
    # float32 result, plain lanes; else float64, compensated lanes (the weight sum's too)
    single = true_size == pred_size == 4 and weights_size != 8
    if len(shape) != 1:
        y_true, y_pred = y_true.reshape(-1), y_pred.reshape(-1)
        if weights is not None:
            weights = weights.reshape(-1)
    if want_grad and weights is not None and reduction == "weighted_mean":
        # The gradient's divisor must be known before its first element is written.
        args = (None, y_pred, weights, 1, None, 0.0, 1.0, None, 0.0)
        divisor = _launch(_WEIGHTS_LOSS, False, True, _WEIGHTS, not single, False,
                          (None, pred_size, weights_size, None, None), n, args)[1]
        if divisor == 0.0:
            return None  # the planned path raises the right error
    grad = flat_grad = None
    if want_grad:
        grad = _new_gradient(shape, y_pred.dtype)
        flat_grad = grad if len(shape) == 1 else grad.reshape(-1)
        mode = _SUMS_GRAD if want_loss else _GRAD
    else:
        mode = _SUMS
    args = (y_true, y_pred, weights, 1, flat_grad, _GRAD_SCALES[loss], divisor, None, param)
    threads = _requested_threads
    parallel = not (n < PARALLEL_THRESHOLD or _forked_child or threads == 1 or _POOL_SIZE == 1)
    entry = _fast_entries.get((loss, mode, true_size, pred_size, weights_size, parallel))
    if entry is None:
        entry = _fast_entry(loss, mode, true_size, pred_size, weights_size, parallel,
                            not single)
    if parallel and (threads or not _concurrent_launches):
        loss_sum, weight_sum = _locked_launch(entry, threads, args)
    else:
        loss_sum, weight_sum = entry(*args)
    if not want_loss:
        return grad
    if reduction == "weighted_mean":
        if weight_sum == 0.0:
            return None  # the planned path raises the right error
        divisor = weight_sum
    value = loss_sum / divisor
    if not single:
        value = _FLOAT64_TYPE(value)
    elif -_FLOAT32_MAX <= value <= _FLOAT32_MAX:
        value = _FLOAT32_TYPE(value)
    else:  # inf or nan as IEEE rounding gives them, silently (as the compiled backend)
        with np.errstate(over="ignore", invalid="ignore"):
            value = _FLOAT32_TYPE(value)
    return (value, grad) if want_grad else value
