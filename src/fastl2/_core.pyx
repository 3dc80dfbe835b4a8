# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled backend: the Cython binding of the C kernels in csrc/.

Two kinds of entry point live here:

* ``run`` and ``weight_sum`` execute a plan made by ``fastl2._plan`` (any arguments);
* ``mse``, ``mae``, ``huber`` and their ``*_grad`` and ``*_and_grad`` functions (one set per loss
  of fastl2._losses, ``FAST_PATH_FUNCTIONS``) are the public functions
  themselves when this module is built (fastl2/__init__.py exports them): while this backend
  computes, the common call (C-contiguous float32/float64 arrays of one shape) is answered
  here without any Python-level work; every other call goes to the function of the same name
  in ``fastl2._api`` (a plain import), which tries the active backend's own fast path (numba)
  and otherwise plans the call.
"""

cimport numpy as cnp
from cpython.exc cimport PyErr_Occurred
from cpython.ref cimport Py_INCREF
from libc.float cimport DBL_MAX
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcmp

import numpy as np

from fastl2 import _operands

cnp.import_array()

include "_core_capi.pxi"

fl2_init()


# ---- Ctrl-C in long calls --------------------------------------------------------------------
# The thread pool (csrc/pool.h) runs this check on the calling thread of a long call every
# 20 ms or so.  Python runs signal handlers only on the main thread: there it takes the GIL and
# runs them (PyErr_CheckSignals), and a handler's exception (KeyboardInterrupt for Ctrl-C) stops
# the call; _check_status raises it.  Elsewhere it does nothing and takes no lock.

cdef extern from "Python.h":
    # (declared without an except clause: it returns -1 with the handler's exception set)
    int _run_signal_handlers "PyErr_CheckSignals" ()
    unsigned long PyThread_get_thread_ident() nogil

import threading

cdef unsigned long _main_thread = threading.main_thread().ident


def _main_thread_after_fork():
    # In a child forked from another thread, that thread is the child's main thread.
    global _main_thread
    _main_thread = PyThread_get_thread_ident()


import os as _os

if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_main_thread_after_fork)


cdef int _interrupt_check() noexcept nogil:
    if PyThread_get_thread_ident() != _main_thread:
        return 0
    with gil:
        return _run_signal_handlers() != 0


fl2_pool_set_interrupt_check(_interrupt_check)


cdef int _check_status(int status, str no_memory) except -1:
    """Raises what a driver's nonzero ``status`` means: MemoryError(no_memory), the exception
    a signal handler raised while the call ran (csrc/fastl2.h FL2_INTERRUPTED), or, in a child
    that a signal handler fork()ed mid-call (FL2_FORKED), fastl2._backends'
    forked_mid_call_error (unless the handler also raised: then its exception)."""
    if status == 0:
        return 0
    if status == FL2_INTERRUPTED or status == FL2_FORKED:
        if PyErr_Occurred() != NULL:
            return -1  # (the handler's exception, already set)
        if status == FL2_FORKED:
            from fastl2._backends import forked_mid_call_error
            raise forked_mid_call_error()
        raise KeyboardInterrupt
    raise MemoryError(no_memory)

from fastl2 import _losses


def loss_names():
    """The losses of csrc/losses.h, in the order of their codes."""
    return tuple([fl2_loss_name(code).decode() for code in range(FL2_NLOSSES)])


if loss_names() != tuple([loss.name for loss in _losses.LOSSES]):
    raise ImportError(
        f"fastl2._core was built with the losses {loss_names()}, but fastl2._losses declares "
        f"{tuple([loss.name for loss in _losses.LOSSES])}: rebuild the extension"
    )

# Each loss's gradient factor, by code (fastl2._losses.Loss.grad_scale).
cdef double grad_scales[FL2_NLOSSES]
for _loss in _losses.LOSSES:
    grad_scales[<int>_loss.code] = _loss.grad_scale

BLOCK_SIZE = FL2_BLOCK_SIZE
LANES = FL2_LANES

# Below this many elements a call keeps the GIL: releasing and re-taking it costs more than
# the kernel itself.
cdef int64_t GIL_RELEASE_MIN = 1 << 14

# Set by fastl2._backends.set_backend: the fast paths below run only while this backend is
# active.
cdef bint fast_path_enabled = False

# fastl2._api, where every call the fast paths do not answer goes (imported on first use:
# fastl2._api imports this module).
cdef object api = None


cdef object planned(str name):
    """fastl2._api's function ``name``."""
    global api
    if api is None:
        import fastl2._api
        api = fastl2._api
    return getattr(api, name)


def _set_fast_path(bint enabled):
    """Whether the fast paths answer calls (while this backend is the active one)."""
    global fast_path_enabled
    fast_path_enabled = enabled


# ---- configuration --------------------------------------------------------------------

def set_num_threads(int n):
    fl2_set_num_threads(n)

def get_num_threads():
    return fl2_get_num_threads()

def openmp_enabled():
    return bool(fl2_openmp_enabled())

def in_forked_child():
    return bool(fl2_in_forked_child())

def threads_available():
    """Whether this build has the thread pool (POSIX threads; csrc/pool.h)."""
    return bool(fl2_pool_available())

def pool_size():
    """Helper threads started so far."""
    return fl2_pool_size()

def pool_spin():
    return fl2_pool_spin()

def set_pool_spin(int64_t ns):
    """Nanoseconds an idle helper spins before it sleeps (bench/tune_thresholds.py)."""
    fl2_pool_set_spin(ns)

def parallel_threshold():
    return fl2_parallel_threshold()

def set_parallel_threshold(int64_t n):
    """Elements from which calls use threads (bench/tune_thresholds.py measures it)."""
    fl2_set_parallel_threshold(n)

def stream_threshold():
    return fl2_stream_threshold()

def set_stream_threshold(int64_t nbytes):
    """Gradient bytes from which streaming stores are used (bench/tune_thresholds.py)."""
    fl2_set_stream_threshold(nbytes)

def simd_level():
    return fl2_simd_level().decode()

def bfloat16_rounding():
    return fl2_bfloat16_rounding().decode()

def float32_run_level():
    return fl2_float32_run_level().decode()

def set_float32_runs(int choice):
    """Tests and benchmarks: the kernels of float32 1-d passes at the AVX-512 level from the
    next set_simd_level (-1: this CPU's choice, 0: the level's own, 1: the AVX2 level's)."""
    fl2_set_float32_runs(choice)


def simd_levels_available():
    return fl2_simd_levels_available().decode().split(",")

def set_simd_level(str name):
    if fl2_set_simd_level(name.encode()) != 0:
        raise ValueError(
            f"SIMD level {name!r} is not available on this CPU; "
            f"available: {', '.join(simd_levels_available())}"
        )

def compiler():
    return fl2_compiler().decode()

def baseline_isa():
    """What the "baseline" level is compiled for: "sse2", "neon", "scalar", ..."""
    return fl2_baseline_isa().decode()


# ---- the planned path -----------------------------------------------------------------

# ml_dtypes.bfloat16's NumPy type number (a user type: registered when ml_dtypes is imported),
# once an array of it has been seen.
cdef int bfloat16_type = -1

cdef extern from "numpy/ndarraytypes.h":
    int NPY_USERDEF  # (the first user type number)


cdef inline bint is_bfloat16(int t, cnp.ndarray a) except -1:
    global bfloat16_type
    if t == bfloat16_type:
        return True
    if bfloat16_type < 0 and t >= NPY_USERDEF and _operands.is_bfloat16(a.dtype):
        bfloat16_type = t
        return True
    return False


cdef inline fl2_dtype kernel_dtype(cnp.ndarray a) except *:
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_DOUBLE:
        return FL2_FLOAT64
    if t == cnp.NPY_FLOAT:
        return FL2_FLOAT32
    if t == cnp.NPY_FLOAT16:  # (read as it is: csrc/convert.c)
        return FL2_FLOAT16
    if is_bfloat16(t, a):
        return FL2_BFLOAT16
    raise TypeError(f"fastl2: the kernels read native float16, bfloat16, float32 or float64 arrays; "
                    f"got {a.dtype}")


cdef void fill_problem(fl2_problem *p, plan) except *:
    cdef cnp.ndarray y_pred = plan.y_pred
    p.loss = <fl2_loss><int>plan.loss.code
    p.loss_param = plan.param
    p.n = cnp.PyArray_SIZE(y_pred)
    p.y_pred = cnp.PyArray_DATA(y_pred)
    p.pred_dtype = kernel_dtype(y_pred)
    p.y_true = NULL
    p.true_dtype = FL2_FLOAT64
    p.weights = NULL
    p.weights_dtype = FL2_FLOAT64
    p.weights_repeat = 1
    if plan.y_true is not None:
        p.y_true = cnp.PyArray_DATA(<cnp.ndarray>plan.y_true)
        p.true_dtype = kernel_dtype(plan.y_true)
    if plan.weights is not None:
        p.weights = cnp.PyArray_DATA(<cnp.ndarray>plan.weights)
        p.weights_dtype = kernel_dtype(plan.weights)
        p.weights_repeat = plan.weights_repeat


def run(plan, bint want_sums, cnp.ndarray grad=None, double grad_scale=0.0,
        double grad_divisor=1.0, cnp.ndarray elementwise=None, double grad_divisor_lo=0.0):
    """One pass over ``plan``: returns (loss sum, weight sum, loss sum's rest, weight sum's
    rest) (each sum a double-double: its value rounded once and the exact rest, fl2_sums) and
    fills the given outputs.

    ``grad`` (``grad_scale * w * l'(d) / (grad_divisor + grad_divisor_lo)``: csrc/fastl2.h) and
    ``elementwise`` are C-contiguous arrays of ``plan.n`` elements, of ``plan.y_pred``'s dtype
    and the result dtype.
    """
    cdef fl2_problem p
    cdef fl2_outputs o
    cdef fl2_sums sums
    cdef int status
    fill_problem(&p, plan)
    o.grad = cnp.PyArray_DATA(grad) if grad is not None else NULL
    o.grad_scale = grad_scale
    o.grad_divisor = grad_divisor
    o.grad_divisor_lo = grad_divisor_lo
    o.elementwise = cnp.PyArray_DATA(elementwise) if elementwise is not None else NULL
    sums.loss = sums.weights = sums.loss_lo = sums.weights_lo = 0.0
    if p.n >= GIL_RELEASE_MIN:
        with nogil:
            status = fl2_run(&p, &o, &sums if want_sums else NULL, 0)
    else:
        status = fl2_run(&p, &o, &sums if want_sums else NULL, 0)
    _check_status(status, "fastl2: no memory for the block partials")
    return sums.loss, sums.weights, sums.loss_lo, sums.weights_lo


def weight_sum(plan):
    """The sum of the weights over all elements, exactly as ``run`` computes it: its
    double-double (the sum rounded once, the rest)."""
    cdef fl2_problem p
    cdef double total = 0.0, rest = 0.0
    cdef int status
    fill_problem(&p, plan)
    with nogil:
        status = fl2_weight_sum(&p, &total, &rest, 0)
    _check_status(status, "fastl2: no memory for the block partials")
    return total, rest


cdef inline const void *operand_base(cnp.ndarray operand):
    return cnp.PyArray_DATA(operand)


def run_strided(s, bint want_sums, double grad_scale=0.0, double grad_divisor=1.0,
                bint weights_only=False, double grad_divisor_lo=0.0):
    """One pass over a ``fastl2._plan.Strided``; writes its grad and elementwise operands.

    Returns float64 arrays (loss sums, weight sums, loss sums' rests, weight sums' rests) of
    one element per output when ``want_sums`` (double-doubles, as ``run``'s); (None, weight
    sums, None, their rests) with ``weights_only`` (nothing else is computed); otherwise None.
    """
    return run_pass(s, want_sums, grad_scale, grad_divisor, weights_only, None, 1.0, False, None,
                    grad_divisor_lo)


EXACT_LOW = FL2_EXACT_LOW  #: the exponent of exact_sums' bin 0 (csrc/exact.h)
EXACT_BINS = FL2_EXACT_BINS  #: its bins


def exact_sums(int code, double param, y_true, cnp.ndarray y_pred, weights, cnp.ndarray loss_bins,
               cnp.ndarray weight_bins, cnp.ndarray bad):
    """Adds into ``loss_bins[r]`` and ``weight_bins[r]`` (int64, (rows, FL2_EXACT_BINS), C
    order) the exact sums of w * l(y_pred - y_true) and of w over row r of 2-d C-contiguous
    float64 arrays (rows, n) (y_true, weights: or None), flags in ``bad`` (uint8, (rows, n))
    the elements left out (a difference that overflows, a non-finite operand) and returns their
    count (csrc/exact.h)."""
    cdef cnp.ndarray t = y_true, w = weights
    for name, a, dtype in (("y_pred", y_pred, np.float64), ("y_true", t, np.float64), ("weights", w, np.float64),
                           ("loss_bins", loss_bins, np.int64), ("weight_bins", weight_bins, np.int64),
                           ("bad", bad, np.uint8)):
        if a is not None and (a.dtype != dtype or a.ndim != 2 or not a.flags.c_contiguous):
            raise ValueError(f"{name} must be a 2-d C-contiguous {np.dtype(dtype)} array")
    cdef int64_t rows = y_pred.shape[0], n = y_pred.shape[1]
    for a in (t, w, bad):
        if a is not None and (a.shape[0] != rows or a.shape[1] != n):
            raise ValueError("y_true, weights and bad must have y_pred's shape")
    if (loss_bins.shape[0] != rows or loss_bins.shape[1] != FL2_EXACT_BINS
            or weight_bins.shape[0] != rows or weight_bins.shape[1] != FL2_EXACT_BINS):
        raise ValueError(f"the bins must have shape (rows, {FL2_EXACT_BINS})")
    if not 0 <= code < FL2_NLOSSES:
        raise ValueError(f"no loss has code {code}")
    cdef const double *tp = <const double *>cnp.PyArray_DATA(t) if t is not None else NULL
    cdef const double *wp = <const double *>cnp.PyArray_DATA(w) if w is not None else NULL
    cdef const double *pp = <const double *>cnp.PyArray_DATA(y_pred)
    cdef int64_t *lb = <int64_t *>cnp.PyArray_DATA(loss_bins)
    cdef int64_t *wb = <int64_t *>cnp.PyArray_DATA(weight_bins)
    cdef unsigned char *bp = <unsigned char *>cnp.PyArray_DATA(bad)
    cdef int64_t skipped = 0, r
    with nogil:
        for r in range(rows):
            skipped += fl2_exact_sums(code, param, n, tp + r * n if tp != NULL else NULL, pp + r * n,
                                      wp + r * n if wp != NULL else NULL, lb + r * FL2_EXACT_BINS,
                                      wb + r * FL2_EXACT_BINS, bp + r * n)
    return skipped


def float32_bound(int64_t count):
    """fl2_float32_bound: the C side of fastl2._exact.float32_bound (tests check they agree)."""
    return fl2_float32_bound(count)


def finish_float64(double loss, double weights, double loss_lo, double weights_lo, int64_t count,
                   bint weighted, bint by_weights, double divisor, bint root, double scale=1.0):
    """fl2_finish_f64: (value, certain), the C side of fastl2._exact.finish_float64 (tests
    check that they agree)."""
    cdef fl2_sums s
    cdef fl2_finish f
    cdef double value
    s.loss, s.weights, s.loss_lo, s.weights_lo = loss, weights, loss_lo, weights_lo
    f.count, f.weighted, f.by_weights, f.divisor, f.root = count, weighted, by_weights, divisor, root
    f.scale = scale
    certain = fl2_finish_f64(&s, &f, &value)
    return value, bool(certain)


def reduce_outputs(s, cnp.ndarray values, double divisor, bint root):
    """Each output's loss sum of a ``fastl2._plan.Strided``, divided by ``divisor`` (its
    square root with ``root``), written to ``values`` (a C-contiguous float32 or float64
    array of one element per output) as each output is summed: no arrays of sums, no passes
    over them.  Returns the indices of the values that are not certainly the exact value
    rounded once (fastl2._exact's certificates: fl2_certain_f32, fl2_finish_f64), an intp
    array, empty where every one is."""
    if (cnp.PyArray_TYPE(values) not in (cnp.NPY_FLOAT, cnp.NPY_DOUBLE)
            or not cnp.PyArray_IS_C_CONTIGUOUS(values) or values.size != s.n_outputs
            or not cnp.PyArray_ISWRITEABLE(values)):
        raise ValueError(
            f"fastl2: reduce_outputs needs values to be a writable C-contiguous float32 or "
            f"float64 array of {s.n_outputs} elements (one per output); got dtype "
            f"{values.dtype}, shape {(<object>values).shape}, C-contiguous "
            f"{bool(values.flags.c_contiguous)}, writable {bool(values.flags.writeable)}")
    cdef cnp.ndarray uncertain = np.zeros(values.size, np.uint8)
    run_pass(s, True, 0.0, 1.0, False, values, divisor, root, uncertain)
    return np.flatnonzero(uncertain)


cdef run_pass(s, bint want_sums, double grad_scale, double grad_divisor, bint weights_only,
              cnp.ndarray values, double divisor, bint root, cnp.ndarray uncertain,
              double grad_divisor_lo=0.0):
    cdef fl2_problem p
    cdef fl2_outputs o
    cdef fl2_layout layout
    cdef fl2_values finish
    cdef const fl2_values *finish_ptr = NULL
    cdef int status, d, k
    cdef cnp.ndarray loss_sums = None, weight_sums = None, loss_lo = None, weight_lo = None
    cdef double *loss_ptr = NULL
    cdef double *weight_ptr = NULL
    cdef double *loss_lo_ptr = NULL
    cdef double *weight_lo_ptr = NULL
    shape = s.shape
    if not 1 <= len(shape) <= FL2_MAX_DIMS:
        raise ValueError(f"fastl2: arrays of up to {FL2_MAX_DIMS} dimensions are supported")
    layout.ndim = len(shape)
    layout.nkept = s.nkept
    operands = (s.y_true, s.y_pred, s.weights, s.grad, s.elementwise)
    for d in range(layout.ndim):
        layout.shape[d] = shape[d]
        for k in range(FL2_NOPS):
            layout.strides[k][d] = operands[k].strides[d] if operands[k] is not None else 0
    p.loss = <fl2_loss><int>s.loss.code
    p.loss_param = s.param
    p.n = s.n
    p.y_pred = operand_base(s.y_pred)
    p.pred_dtype = kernel_dtype(s.y_pred)
    p.y_true, p.true_dtype = NULL, FL2_FLOAT64
    p.weights, p.weights_dtype = NULL, FL2_FLOAT64
    p.weights_repeat = 1
    if s.y_true is not None:
        p.y_true = operand_base(s.y_true)
        p.true_dtype = kernel_dtype(s.y_true)
    if s.weights is not None:
        p.weights = operand_base(s.weights)
        p.weights_dtype = kernel_dtype(s.weights)
    o.grad = <void *>operand_base(s.grad) if s.grad is not None else NULL
    o.elementwise = <void *>operand_base(s.elementwise) if s.elementwise is not None else NULL
    o.grad_scale = grad_scale
    o.grad_divisor = grad_divisor
    o.grad_divisor_lo = grad_divisor_lo
    if values is not None:
        finish.values = cnp.PyArray_DATA(values)
        finish.single = cnp.PyArray_TYPE(values) == cnp.NPY_FLOAT
        finish.root = root
        finish.divisor = divisor
        finish.uncertain = <unsigned char *>cnp.PyArray_DATA(uncertain) if uncertain is not None else NULL
        finish.bound = fl2_float32_bound(s.n_reduced)
        finish.count = s.n_reduced
        finish_ptr = &finish
    elif (want_sums or weights_only) and s.weights is not None:
        weight_sums, weight_lo = np.zeros(s.n_outputs), np.zeros(s.n_outputs)
        weight_ptr = <double *>cnp.PyArray_DATA(weight_sums)
        weight_lo_ptr = <double *>cnp.PyArray_DATA(weight_lo)
    elif want_sums or weights_only:  # every output's weight sum is its element count
        weight_sums = np.broadcast_to(np.float64(s.n_reduced), (s.n_outputs,))
        weight_lo = np.broadcast_to(np.float64(0.0), (s.n_outputs,))
    if want_sums and values is None:
        loss_sums, loss_lo = np.zeros(s.n_outputs), np.zeros(s.n_outputs)
        loss_ptr = <double *>cnp.PyArray_DATA(loss_sums)
        loss_lo_ptr = <double *>cnp.PyArray_DATA(loss_lo)
    with nogil:
        status = fl2_run_strided(&p, &layout, &o, loss_ptr, weight_ptr, loss_lo_ptr, weight_lo_ptr,
                                 finish_ptr, 0)
    _check_status(status, "fastl2: no memory for the block buffers or partials")
    if values is not None:
        return values
    if want_sums:
        return loss_sums, weight_sums, loss_lo, weight_lo
    if weights_only:
        return None, weight_sums, None, weight_lo
    return None


# ---- the fast paths ----------------------------------------------------------------------

include "_core_gradients.pxi"
include "_core_fast_paths.pxi"
include "_core_axis.pxi"


# ---- the public functions ------------------------------------------------------------------
#
# Each answers the common call here and hands every other call, unchanged, to fastl2._api's
# function of the same name.  ``param`` is the loss's parameter as given (0.0 for a loss
# without one): the fast paths take a Python float > 0 and finite, the planned path judges
# anything else.

# Each loss's parameter name by code (None: the loss has no parameter).
PARAMETER_NAMES = tuple([None if loss.parameter is None else loss.parameter.name
                         for loss in _losses.LOSSES])


cdef bint has_parameter[FL2_NLOSSES]
for _code, _name in enumerate(PARAMETER_NAMES):
    has_parameter[_code] = _name is not None


cdef inline bint fast_param(fl2_loss loss, object param):
    return not has_parameter[<int>loss] or (
        type(param) is float and 0.0 < <double>param <= DBL_MAX)


cdef object planned_call(fl2_loss loss, str name, object param, tuple args, dict kwargs):
    if has_parameter[<int>loss]:
        kwargs[PARAMETER_NAMES[<int>loss]] = param
    return planned(name)(*args, **kwargs)


cdef object loss_value(fl2_loss loss, str name, object param, object y_true, object y_pred,
                       object weights, object axis, object reduction):
    cdef object result = NOT_FAST
    if fast_param(loss, param):
        if axis is None:
            result = fast_call(loss, param, y_true, y_pred, weights, reduction, None, True, False)
        if result is NOT_FAST and weights is None:
            result = axis_fast_call(loss, param, y_true, y_pred, axis, reduction)
    if result is NOT_FAST:
        result = planned_call(loss, name, param, (y_true, y_pred, weights),
                              {"axis": axis, "reduction": reduction})
    return result


cdef object loss_grad(fl2_loss loss, str name, object param, object y_true, object y_pred,
                      object weights, object reduction, object out, bint want_loss):
    cdef object result = NOT_FAST
    if fast_param(loss, param):
        result = fast_call(loss, param, y_true, y_pred, weights, reduction, out, want_loss, True)
    if result is NOT_FAST:
        result = planned_call(loss, name, param, (y_true, y_pred, weights),
                              {"reduction": reduction, "out": out})
    return result


cdef extern from "fastl2.h" nogil:
    # The codes (csrc/losses.h) of the losses with entry points below.
    const fl2_loss FL2_SQUARED
    const fl2_loss FL2_ABSOLUTE
    const fl2_loss FL2_HUBER


def mse(y_true, y_pred, weights=None, *, axis=None, reduction="mean"):
    return loss_value(FL2_SQUARED, "mse", 0.0, y_true, y_pred, weights, axis, reduction)


def mae(y_true, y_pred, weights=None, *, axis=None, reduction="mean"):
    return loss_value(FL2_ABSOLUTE, "mae", 0.0, y_true, y_pred, weights, axis, reduction)


def huber(y_true, y_pred, weights=None, *, delta=1.0, axis=None, reduction="mean"):
    return loss_value(FL2_HUBER, "huber", delta, y_true, y_pred, weights, axis, reduction)


def mse_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    return loss_grad(FL2_SQUARED, "mse_grad", 0.0, y_true, y_pred, weights, reduction, out, False)


def mae_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    return loss_grad(FL2_ABSOLUTE, "mae_grad", 0.0, y_true, y_pred, weights, reduction, out, False)


def huber_grad(y_true, y_pred, weights=None, *, delta=1.0, reduction="mean", out=None):
    return loss_grad(FL2_HUBER, "huber_grad", delta, y_true, y_pred, weights, reduction, out, False)


def mse_and_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    return loss_grad(FL2_SQUARED, "mse_and_grad", 0.0, y_true, y_pred, weights, reduction, out, True)


def mae_and_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    return loss_grad(FL2_ABSOLUTE, "mae_and_grad", 0.0, y_true, y_pred, weights, reduction, out, True)


def huber_and_grad(y_true, y_pred, weights=None, *, delta=1.0, reduction="mean", out=None):
    return loss_grad(FL2_HUBER, "huber_and_grad", delta, y_true, y_pred, weights, reduction, out, True)


#: The public functions this module has a fast path for (fastl2/__init__.py exports them).
FAST_PATH_FUNCTIONS = tuple([name for loss in _losses.LOSSES
                             for name in (loss.function, loss.function + "_grad",
                                          loss.function + "_and_grad")
                             if name in globals()])
