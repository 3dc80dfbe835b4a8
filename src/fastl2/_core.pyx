# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled backend: the Cython binding of the C kernels in csrc/.

Two kinds of entry point live here:

* ``run`` and ``weight_sum`` execute a plan made by ``fastl2._plan`` (any arguments);
* ``mse``, ``mse_grad`` and ``mse_and_grad`` are the public functions themselves when this
  module is built: the common call (two C-contiguous arrays of one float dtype, default
  arguments) is answered here without any Python-level work, and every other call is
  handed to the planned path in ``fastl2._api``.
"""

cimport numpy as cnp
from libc.stdint cimport int64_t
from libc.string cimport memcmp

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    object PyArray_Scalar(void *data, cnp.dtype descr, object base)

cdef extern from "fastl2.h" nogil:
    enum: FL2_BLOCK_SIZE
    enum: FL2_LANES
    ctypedef enum fl2_dtype:
        FL2_FLOAT32
        FL2_FLOAT64
    ctypedef enum fl2_loss:
        FL2_SQUARED
        FL2_ABSOLUTE
    ctypedef struct fl2_problem:
        fl2_loss loss
        int64_t n
        const void *y_true
        const void *y_pred
        const void *weights
        fl2_dtype true_dtype
        fl2_dtype pred_dtype
        fl2_dtype weights_dtype
        int64_t weights_repeat
    ctypedef struct fl2_outputs:
        void *grad
        double grad_scale
        double grad_divisor
        void *elementwise
    ctypedef struct fl2_sums:
        double loss
        double weights
    int fl2_run(const fl2_problem *p, const fl2_outputs *o, fl2_sums *sums, int nthreads)
    int fl2_weight_sum(const fl2_problem *p, double *weight_sum, int nthreads)
    void fl2_init()
    void fl2_set_num_threads(int nthreads)
    int fl2_get_num_threads()
    int fl2_openmp_enabled()
    int fl2_in_forked_child()
    int64_t fl2_parallel_threshold()
    void fl2_set_parallel_threshold(int64_t n)
    int64_t fl2_stream_threshold()
    void fl2_set_stream_threshold(int64_t bytes)
    const char *fl2_simd_level()
    const char *fl2_simd_levels_available()
    int fl2_set_simd_level(const char *name)
    const char *fl2_compiler()

fl2_init()

BLOCK_SIZE = FL2_BLOCK_SIZE
LANES = FL2_LANES

# Below this many elements a call keeps the GIL: releasing and re-taking it costs more than
# the kernel itself.
cdef int64_t GIL_RELEASE_MIN = 1 << 14

# Set by fastl2._backends: the fast paths below run only while this backend is active.
cdef bint fast_path_enabled = False
# Set by fastl2._api: the planned implementations every other call goes to.
cdef object planned_mse = None
cdef object planned_mse_grad = None
cdef object planned_mse_and_grad = None


def _bind(bint fast, mse, mse_grad, mse_and_grad):
    """Connect the fast paths to the planned path (called by fastl2 at import)."""
    global fast_path_enabled, planned_mse, planned_mse_grad, planned_mse_and_grad
    fast_path_enabled = fast
    planned_mse, planned_mse_grad, planned_mse_and_grad = mse, mse_grad, mse_and_grad


def _set_fast_path(bint enabled):
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


# ---- the planned path -----------------------------------------------------------------

cdef inline fl2_dtype kernel_dtype(cnp.ndarray a):
    return FL2_FLOAT64 if cnp.PyArray_TYPE(a) == cnp.NPY_DOUBLE else FL2_FLOAT32


cdef void fill_problem(fl2_problem *p, plan) except *:
    cdef cnp.ndarray y_pred = plan.y_pred
    p.loss = FL2_ABSOLUTE if plan.loss == "absolute" else FL2_SQUARED
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
        double grad_divisor=1.0, cnp.ndarray elementwise=None):
    """One pass over ``plan``: returns (loss sum, weight sum) and fills the given outputs.

    ``grad`` (``grad_scale * w * l'(d) / grad_divisor``) and ``elementwise`` are C-contiguous
    arrays of ``plan.n`` elements, of ``plan.y_pred``'s dtype and the result dtype.
    """
    cdef fl2_problem p
    cdef fl2_outputs o
    cdef fl2_sums sums
    cdef int status
    fill_problem(&p, plan)
    o.grad = cnp.PyArray_DATA(grad) if grad is not None else NULL
    o.grad_scale = grad_scale
    o.grad_divisor = grad_divisor
    o.elementwise = cnp.PyArray_DATA(elementwise) if elementwise is not None else NULL
    sums.loss = sums.weights = 0.0
    if p.n >= GIL_RELEASE_MIN:
        with nogil:
            status = fl2_run(&p, &o, &sums if want_sums else NULL, 0)
    else:
        status = fl2_run(&p, &o, &sums if want_sums else NULL, 0)
    if status != 0:
        raise MemoryError("fastl2: no memory for the block partials")
    return sums.loss, sums.weights


def weight_sum(plan):
    """The sum of the weights over all elements, exactly as ``run`` computes it."""
    cdef fl2_problem p
    cdef double total = 0.0
    cdef int status
    fill_problem(&p, plan)
    with nogil:
        status = fl2_weight_sum(&p, &total, 0)
    if status != 0:
        raise MemoryError("fastl2: no memory for the block partials")
    return total


# ---- the fast paths --------------------------------------------------------------------

cdef inline bint same_simple_float_arrays(object y_true, object y_pred):
    """Both exact ndarrays, one native float dtype, C-contiguous, aligned, one shape, not empty."""
    if type(y_true) is not cnp.ndarray or type(y_pred) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>y_true, b = <cnp.ndarray>y_pred
    cdef int t = cnp.PyArray_TYPE(b)
    if t != cnp.NPY_DOUBLE and t != cnp.NPY_FLOAT:
        return False
    if cnp.PyArray_TYPE(a) != t:
        return False
    cdef int req = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED
    if (cnp.PyArray_FLAGS(a) & req) != req or (cnp.PyArray_FLAGS(b) & req) != req:
        return False
    if not cnp.PyArray_ISNOTSWAPPED(a) or not cnp.PyArray_ISNOTSWAPPED(b):
        return False
    cdef int nd = cnp.PyArray_NDIM(b)
    if cnp.PyArray_NDIM(a) != nd:
        return False
    if nd and memcmp(cnp.PyArray_DIMS(a), cnp.PyArray_DIMS(b), nd * sizeof(cnp.npy_intp)) != 0:
        return False
    return cnp.PyArray_SIZE(b) > 0


cdef inline void simple_problem(fl2_problem *p, cnp.ndarray y_true, cnp.ndarray y_pred):
    cdef fl2_dtype t = FL2_FLOAT64 if cnp.PyArray_TYPE(y_pred) == cnp.NPY_DOUBLE else FL2_FLOAT32
    p.loss = FL2_SQUARED
    p.n = cnp.PyArray_SIZE(y_pred)
    p.y_true = cnp.PyArray_DATA(y_true)
    p.y_pred = cnp.PyArray_DATA(y_pred)
    p.weights = NULL
    p.true_dtype = p.pred_dtype = p.weights_dtype = t
    p.weights_repeat = 1


cdef object run_simple(fl2_problem *p, fl2_outputs *o, bint want_loss):
    """Runs the kernel; returns the mean loss as a NumPy scalar, or None without want_loss."""
    cdef fl2_sums sums
    cdef int status
    cdef double mean
    cdef float mean32
    if p.n >= GIL_RELEASE_MIN:
        with nogil:
            status = fl2_run(p, o, &sums if want_loss else NULL, 0)
    else:
        status = fl2_run(p, o, &sums if want_loss else NULL, 0)
    if status != 0:
        raise MemoryError("fastl2: no memory for the block partials")
    if not want_loss:
        return None
    mean = sums.loss / <double>p.n
    if p.pred_dtype == FL2_FLOAT64:
        return PyArray_Scalar(&mean, cnp.PyArray_DescrFromType(cnp.NPY_DOUBLE), None)
    mean32 = <float>mean
    return PyArray_Scalar(&mean32, cnp.PyArray_DescrFromType(cnp.NPY_FLOAT), None)


cdef inline cnp.ndarray new_grad_like(cnp.ndarray y_pred):
    return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(y_pred), cnp.PyArray_DIMS(y_pred),
                             cnp.PyArray_TYPE(y_pred), 0)


def mse(y_true, y_pred, weights=None, *, axis=None, reduction="mean"):
    cdef fl2_problem p
    if (fast_path_enabled and weights is None and axis is None and reduction == "mean"
            and same_simple_float_arrays(y_true, y_pred)):
        simple_problem(&p, y_true, y_pred)
        return run_simple(&p, NULL, True)
    return planned_mse(y_true, y_pred, weights, axis=axis, reduction=reduction)


def mse_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    cdef fl2_problem p
    cdef fl2_outputs o
    cdef cnp.ndarray grad
    if (fast_path_enabled and weights is None and out is None and reduction == "mean"
            and same_simple_float_arrays(y_true, y_pred)):
        simple_problem(&p, y_true, y_pred)
        grad = new_grad_like(y_pred)
        o.grad = cnp.PyArray_DATA(grad)
        o.grad_scale = 2.0
        o.grad_divisor = <double>p.n
        o.elementwise = NULL
        run_simple(&p, &o, False)
        return grad
    return planned_mse_grad(y_true, y_pred, weights, reduction=reduction, out=out)


def mse_and_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    cdef fl2_problem p
    cdef fl2_outputs o
    cdef cnp.ndarray grad
    if (fast_path_enabled and weights is None and out is None and reduction == "mean"
            and same_simple_float_arrays(y_true, y_pred)):
        simple_problem(&p, y_true, y_pred)
        grad = new_grad_like(y_pred)
        o.grad = cnp.PyArray_DATA(grad)
        o.grad_scale = 2.0
        o.grad_divisor = <double>p.n
        o.elementwise = NULL
        return run_simple(&p, &o, True), grad
    return planned_mse_and_grad(y_true, y_pred, weights, reduction=reduction, out=out)
