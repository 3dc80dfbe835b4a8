# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled backend: the Cython binding of the C kernels in csrc/.

Two kinds of entry point live here:

* ``run`` and ``weight_sum`` execute a plan made by ``fastl2._plan`` (any arguments);
* ``mse``, ``mae`` and their ``*_grad`` and ``*_and_grad`` functions are the public functions
  themselves when this module is built (fastl2/__init__.py exports them): while this backend
  computes, the common call (C-contiguous float32/float64 arrays of one shape) is answered
  here without any Python-level work; every other call goes to the function of the same name
  in ``fastl2._api`` (a plain import), which tries the active backend's own fast path (numba)
  and otherwise plans the call.
"""

cimport numpy as cnp
from cpython.ref cimport Py_INCREF
from libc.float cimport DBL_MAX
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp

import numpy as np

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    object PyArray_Scalar(void *data, cnp.dtype descr, object base)
    int PyArray_SetBaseObject(cnp.ndarray arr, object obj) except -1  # steals a reference to obj

cdef extern from "fastl2.h" nogil:
    enum: FL2_BLOCK_SIZE
    enum: FL2_LANES
    ctypedef enum fl2_dtype:
        FL2_FLOAT32
        FL2_FLOAT64
    ctypedef enum fl2_loss:
        FL2_SQUARED
        FL2_ABSOLUTE
        FL2_HUBER
        FL2_NLOSSES
    ctypedef struct fl2_problem:
        fl2_loss loss
        double loss_param
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
    enum: FL2_MAX_DIMS
    enum: FL2_NOPS
    ctypedef struct fl2_layout:
        int ndim
        int nkept
        int64_t shape[FL2_MAX_DIMS]
        int64_t strides[FL2_NOPS][FL2_MAX_DIMS]
    ctypedef struct fl2_values:
        void *values
        int single
        int root
        double divisor
    int fl2_run_strided(const fl2_problem *p, const fl2_layout *layout, const fl2_outputs *o,
                        double *loss_sums, double *weight_sums, const fl2_values *values,
                        int nthreads)
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
    const char *fl2_loss_name(int code)

fl2_init()

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

#: The public functions this module has a fast path for.
FAST_PATH_FUNCTIONS = ("mse", "mae", "mse_grad", "mae_grad", "mse_and_grad", "mae_and_grad",
                       "huber", "huber_grad", "huber_and_grad")

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


cdef inline const void *operand_base(cnp.ndarray operand):
    return cnp.PyArray_DATA(operand)


def run_strided(s, bint want_sums, double grad_scale=0.0, double grad_divisor=1.0,
                bint weights_only=False):
    """One pass over a ``fastl2._plan.Strided``; writes its grad and elementwise operands.

    Returns float64 arrays (loss sums, weight sums) of one element per output when
    ``want_sums``; (None, weight sums) with ``weights_only`` (nothing else is computed);
    otherwise None.
    """
    return run_pass(s, want_sums, grad_scale, grad_divisor, weights_only, None, 1.0, False)


def reduce_outputs(s, cnp.ndarray values, double divisor, bint root):
    """Each output's loss sum of a ``fastl2._plan.Strided``, divided by ``divisor`` (its
    square root with ``root``), written to ``values`` (a C-contiguous float32 or float64
    array of one element per output) as each output is summed: no arrays of sums, no passes
    over them."""
    if (cnp.PyArray_TYPE(values) not in (cnp.NPY_FLOAT, cnp.NPY_DOUBLE)
            or not cnp.PyArray_IS_C_CONTIGUOUS(values) or values.size != s.n_outputs
            or not cnp.PyArray_ISWRITEABLE(values)):
        raise ValueError(
            f"fastl2: reduce_outputs needs values to be a writable C-contiguous float32 or "
            f"float64 array of {s.n_outputs} elements (one per output); got dtype "
            f"{values.dtype}, shape {(<object>values).shape}, C-contiguous "
            f"{bool(values.flags.c_contiguous)}, writable {bool(values.flags.writeable)}")
    run_pass(s, True, 0.0, 1.0, False, values, divisor, root)
    return values


cdef run_pass(s, bint want_sums, double grad_scale, double grad_divisor, bint weights_only,
              cnp.ndarray values, double divisor, bint root):
    cdef fl2_problem p
    cdef fl2_outputs o
    cdef fl2_layout layout
    cdef fl2_values finish
    cdef const fl2_values *finish_ptr = NULL
    cdef int status, d, k
    cdef cnp.ndarray loss_sums = None, weight_sums = None
    cdef double *loss_ptr = NULL
    cdef double *weight_ptr = NULL
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
    if values is not None:
        finish.values = cnp.PyArray_DATA(values)
        finish.single = cnp.PyArray_TYPE(values) == cnp.NPY_FLOAT
        finish.root = root
        finish.divisor = divisor
        finish_ptr = &finish
    elif (want_sums or weights_only) and s.weights is not None:
        weight_sums = np.zeros(s.n_outputs)
        weight_ptr = <double *>cnp.PyArray_DATA(weight_sums)
    elif want_sums or weights_only:  # every output's weight sum is its element count
        weight_sums = np.broadcast_to(np.float64(s.n_reduced), (s.n_outputs,))
    if want_sums and values is None:
        loss_sums = np.zeros(s.n_outputs)
        loss_ptr = <double *>cnp.PyArray_DATA(loss_sums)
    with nogil:
        status = fl2_run_strided(&p, &layout, &o, loss_ptr, weight_ptr, finish_ptr, 0)
    if status != 0:
        raise MemoryError("fastl2: no memory for the block buffers or partials")
    if values is not None:
        return values
    if want_sums:
        return loss_sums, weight_sums
    if weights_only:
        return None, weight_sums
    return None


# ---- the fast paths --------------------------------------------------------------------
#
# A call qualifies when its arrays are exact ndarrays of native float32/float64, C-contiguous
# and aligned, of one shape and not empty; weights (if any) are of that shape too; the
# reduction is "mean", "weighted_mean" or "sum"; ``out`` (if any) is a writable C-contiguous
# array of y_pred's dtype and shape that overlaps no input but y_pred itself.  Anything else -
# including every call that must raise - goes to the planned path, which computes the same
# bits the same way.

cdef object NOT_FAST = object()

cdef enum:
    RED_MEAN = 0
    RED_SUM = 1
    RED_WEIGHTED_MEAN = 2


cdef inline int reduction_code(object reduction):
    if reduction is "mean":
        return RED_MEAN
    if not isinstance(reduction, str):  # (an array's == would compare element-wise)
        return -1
    if reduction == "mean":
        return RED_MEAN
    if reduction == "sum":
        return RED_SUM
    if reduction == "weighted_mean":
        return RED_WEIGHTED_MEAN
    return -1


cdef inline int array_dtype(object x, bint c_contiguous):
    """The kernel dtype of a plain, aligned, native float ndarray (C-contiguous too, with
    ``c_contiguous``), else -1."""
    if type(x) is not cnp.ndarray:
        return -1
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int req = cnp.NPY_ARRAY_ALIGNED | (cnp.NPY_ARRAY_C_CONTIGUOUS if c_contiguous else 0)
    if (cnp.PyArray_FLAGS(a) & req) != req or not cnp.PyArray_ISNOTSWAPPED(a):
        return -1
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_DOUBLE:
        return FL2_FLOAT64
    if t == cnp.NPY_FLOAT:
        return FL2_FLOAT32
    return -1


cdef inline int simple_dtype(object x):
    """The kernel dtype of a plain, C-contiguous, aligned float ndarray, else -1."""
    return array_dtype(x, True)


cdef inline bint same_shape(cnp.ndarray a, cnp.ndarray b):
    cdef int nd = cnp.PyArray_NDIM(a)
    if cnp.PyArray_NDIM(b) != nd:
        return False
    return nd == 0 or memcmp(cnp.PyArray_DIMS(a), cnp.PyArray_DIMS(b), nd * sizeof(cnp.npy_intp)) == 0


cdef inline bint disjoint(cnp.ndarray a, cnp.ndarray b):
    """Whether two C-contiguous arrays share no byte."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    return pa + cnp.PyArray_NBYTES(a) <= pb or pb + cnp.PyArray_NBYTES(b) <= pa


cdef object scalar_of(double value, bint single):
    cdef float value32
    if single:
        value32 = <float>value
        return PyArray_Scalar(&value32, cnp.PyArray_DescrFromType(cnp.NPY_FLOAT), None)
    return PyArray_Scalar(&value, cnp.PyArray_DescrFromType(cnp.NPY_DOUBLE), None)


# ---- gradient buffers ---------------------------------------------------------------------
#
# A fresh gradient of tens of megabytes costs more in page faults (the kernel zeroing new
# pages) than the kernel costs to fill it.  In a training loop each step's gradient replaces
# the last one, so the memory of the last large gradient freed is kept and handed to the next
# gradient of about its size: one buffer at most, of gradient_cache_limit bytes at most
# (fastl2.set_gradient_cache_limit, FASTL2_GRADIENT_CACHE_LIMIT; 0 turns it off), released
# by fastl2.empty_cache().

cdef size_t GRADIENT_CACHE_MIN_BYTES = 1 << 20
cdef size_t gradient_cache_limit = <size_t>1 << 30
cdef void *cached_data = NULL
cdef size_t cached_bytes = 0


cdef class _GradientMemory:
    """Owns the memory of a large gradient array (its ``base``); keeps it for reuse when freed."""
    cdef void *data
    cdef size_t nbytes

    def __dealloc__(self):
        global cached_data, cached_bytes
        if self.data == NULL:
            return
        if self.nbytes > gradient_cache_limit:
            free(self.data)
            return
        if cached_data != NULL:
            free(cached_data)
        cached_data, cached_bytes = self.data, self.nbytes


def release_cached_gradient_memory():
    """Free the memory kept from the last large gradient (see ``new_gradient``)."""
    global cached_data, cached_bytes
    free(cached_data)
    cached_data, cached_bytes = NULL, 0


def cached_gradient_bytes():
    """The bytes of gradient memory held for reuse now."""
    return cached_bytes


def set_gradient_cache_limit(size_t nbytes):
    """Keep freed gradient memory of at most ``nbytes`` for reuse (0: none); frees what is
    held beyond it."""
    global gradient_cache_limit
    gradient_cache_limit = nbytes
    if cached_bytes > nbytes:
        release_cached_gradient_memory()


def gradient_cache_limit_bytes():
    return gradient_cache_limit


def new_gradient_array(tuple shape, dtype):
    """``np.empty(shape, dtype)`` for a gradient, reusing the last large gradient's memory."""
    cdef cnp.dtype descr = np.dtype(dtype)
    cdef cnp.npy_intp dims[32]
    cdef int nd = len(shape), i
    if nd > 32:
        return np.empty(shape, descr)
    for i in range(nd):
        dims[i] = shape[i]
    return new_gradient(nd, dims, descr.type_num, descr.itemsize)


cdef cnp.ndarray new_gradient(int nd, cnp.npy_intp *dims, int typenum, size_t itemsize):
    """An uninitialised C-contiguous array for a gradient."""
    global cached_data, cached_bytes
    cdef size_t nbytes = itemsize
    cdef int i
    for i in range(nd):
        nbytes *= <size_t>dims[i]
    if nbytes < GRADIENT_CACHE_MIN_BYTES:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    cdef _GradientMemory memory = _GradientMemory.__new__(_GradientMemory)
    if cached_data != NULL and nbytes <= cached_bytes <= 2 * nbytes:
        memory.data, memory.nbytes = cached_data, cached_bytes
        cached_data, cached_bytes = NULL, 0
    else:
        memory.data = malloc(nbytes)
        if memory.data == NULL:
            raise MemoryError(f"fastl2: cannot allocate {nbytes} bytes for the gradient")
        memory.nbytes = nbytes
    cdef cnp.ndarray array = cnp.PyArray_SimpleNewFromData(nd, dims, typenum, memory.data)
    Py_INCREF(memory)
    PyArray_SetBaseObject(array, memory)
    return array


cdef object fast_call(fl2_loss loss, double param, object y_true, object y_pred, object weights,
                      object reduction, object out, bint want_loss, bint want_grad):
    """The whole call for the common case, or NOT_FAST."""
    cdef fl2_problem p
    cdef fl2_outputs o
    cdef fl2_sums sums
    cdef int status, red, t_true, t_pred, t_weights = FL2_FLOAT32
    cdef double divisor, weight_sum
    cdef cnp.ndarray a, b, grad = None
    if not fast_path_enabled:
        return NOT_FAST
    red = reduction_code(reduction)
    t_true = simple_dtype(y_true)
    t_pred = simple_dtype(y_pred)
    if red < 0 or t_true < 0 or t_pred < 0:
        return NOT_FAST
    a, b = <cnp.ndarray>y_true, <cnp.ndarray>y_pred
    if not same_shape(a, b) or cnp.PyArray_SIZE(b) == 0:
        return NOT_FAST
    p.loss = loss
    p.loss_param = param
    p.n = cnp.PyArray_SIZE(b)
    p.y_true, p.y_pred = cnp.PyArray_DATA(a), cnp.PyArray_DATA(b)
    p.true_dtype, p.pred_dtype = <fl2_dtype>t_true, <fl2_dtype>t_pred
    p.weights, p.weights_dtype, p.weights_repeat = NULL, FL2_FLOAT64, 1
    if weights is not None:
        t_weights = simple_dtype(weights)
        if t_weights < 0 or not same_shape(<cnp.ndarray>weights, b):
            return NOT_FAST
        p.weights = cnp.PyArray_DATA(<cnp.ndarray>weights)
        p.weights_dtype = <fl2_dtype>t_weights
    if want_grad:
        if out is None:
            grad = new_gradient(cnp.PyArray_NDIM(b), cnp.PyArray_DIMS(b), cnp.PyArray_TYPE(b),
                                cnp.PyArray_ITEMSIZE(b))
        else:
            if (simple_dtype(out) != t_pred or not same_shape(<cnp.ndarray>out, b)
                    or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out)):
                return NOT_FAST
            grad = <cnp.ndarray>out
            if not disjoint(grad, a) or (weights is not None and not disjoint(grad, <cnp.ndarray>weights)):
                return NOT_FAST
            if not disjoint(grad, b) and cnp.PyArray_DATA(grad) != cnp.PyArray_DATA(b):
                return NOT_FAST
    cdef bint single = t_true == FL2_FLOAT32 and t_pred == FL2_FLOAT32 and (
        weights is None or t_weights == FL2_FLOAT32)

    # The gradient's divisor must be known before its first element is written.
    divisor = 1.0 if red == RED_SUM else <double>p.n
    if want_grad and red == RED_WEIGHTED_MEAN and weights is not None:
        if p.n >= GIL_RELEASE_MIN:
            with nogil:
                status = fl2_weight_sum(&p, &weight_sum, 0)
        else:
            status = fl2_weight_sum(&p, &weight_sum, 0)
        if status != 0 or weight_sum == 0.0:
            return NOT_FAST  # the planned path raises the right error
        divisor = weight_sum
    o.grad = cnp.PyArray_DATA(grad) if want_grad else NULL
    o.grad_scale = grad_scales[<int>loss]
    o.grad_divisor = divisor
    o.elementwise = NULL
    sums.loss = sums.weights = 0.0
    if p.n >= GIL_RELEASE_MIN:
        with nogil:
            status = fl2_run(&p, &o, &sums if want_loss else NULL, 0)
    else:
        status = fl2_run(&p, &o, &sums if want_loss else NULL, 0)
    if status != 0:
        raise MemoryError("fastl2: no memory for the block partials")
    if not want_loss:
        return grad
    if red == RED_WEIGHTED_MEAN:
        if sums.weights == 0.0:
            return NOT_FAST  # the planned path raises the right error
        divisor = sums.weights
    value = scalar_of(sums.loss / divisor, single)
    return (value, grad) if want_grad else value


ctypedef struct axis_pass:
    fl2_layout layout        # (strides of y_true and y_pred only)
    const char *y_true       # element (0, ..., 0) of the layout
    const char *y_pred
    int64_t outputs          # elements of the kept dims, and of the reduced ones
    int64_t count
    int nkept                # the kept dims in order (the result's shape)
    cnp.npy_intp kept_shape[FL2_MAX_DIMS]


cdef bint axis_layout(cnp.ndarray a, cnp.ndarray b, object axis, axis_pass *out) except -1:
    """The pass of the planned path (``fastl2._plan.strided_pass``) over y_true ``a`` and
    y_pred ``b`` (one shape, 1 to FL2_MAX_DIMS dims) reducing ``axis``, worked out the same way:
    the kept dims in order, then the reduced ones by decreasing |stride| of y_pred, those of
    negative stride walked backwards; dims of one element dropped; neighbours that both
    arrays step through evenly merged.  False for an axis the planned path must judge (it
    raises for the bad ones) and for ``axis=()``."""
    cdef int nd = cnp.PyArray_NDIM(b), i, j, d, k, nkept, ndims
    cdef int reduced[FL2_MAX_DIMS]
    cdef int order[FL2_MAX_DIMS]
    cdef int64_t st[2][FL2_MAX_DIMS]
    cdef int64_t *dims = out.layout.shape
    cdef cnp.npy_intp *shape = cnp.PyArray_DIMS(b)
    cdef cnp.npy_intp *ast = cnp.PyArray_STRIDES(a)
    cdef cnp.npy_intp *pst = cnp.PyArray_STRIDES(b)
    cdef const char *base_true = <const char *>cnp.PyArray_DATA(a)
    cdef const char *base_pred = <const char *>cnp.PyArray_DATA(b)
    for i in range(nd):
        reduced[i] = axis is None
    if axis is None:
        pass
    elif type(axis) is int:
        if not -nd <= axis < nd:
            return False
        i = axis
        reduced[(i + nd) % nd] = 1
    elif type(axis) is tuple and len(<tuple>axis) > 0:
        for x in <tuple>axis:
            if type(x) is not int or not -nd <= x < nd:
                return False
            i = x
            i = (i + nd) % nd
            if reduced[i]:
                return False  # named twice
            reduced[i] = 1
    else:
        return False
    k = 0  # the kept dims, then the reduced ones (a stable insertion sort)
    for i in range(nd):
        if not reduced[i]:
            order[k] = i
            k += 1
    out.nkept = k
    j = k
    for i in range(nd):
        if reduced[i]:
            d = j
            while d > k and abs(pst[order[d - 1]]) < abs(pst[i]):
                order[d] = order[d - 1]
                d -= 1
            order[d] = i
            j += 1
    out.outputs = out.count = 1
    ndims = nkept = 0
    for i in range(nd):
        d = order[i]
        if i < k:
            out.kept_shape[i] = shape[d]
            out.outputs *= shape[d]
        else:
            out.count *= shape[d]
        if shape[d] == 1:
            continue
        if i >= k and pst[d] < 0:  # walked backwards
            base_true += (shape[d] - 1) * ast[d]
            base_pred += (shape[d] - 1) * pst[d]
            st[0][ndims], st[1][ndims] = -ast[d], -pst[d]
        else:
            st[0][ndims], st[1][ndims] = ast[d], pst[d]
        dims[ndims] = shape[d]
        nkept += i < k
        ndims += 1
    i = ndims - 2
    while i >= 0:
        if ((i < nkept) == (i + 1 < nkept) and st[0][i] == st[0][i + 1] * dims[i + 1]
                and st[1][i] == st[1][i + 1] * dims[i + 1]):
            dims[i] *= dims[i + 1]
            st[0][i], st[1][i] = st[0][i + 1], st[1][i + 1]
            for j in range(i + 1, ndims - 1):
                dims[j] = dims[j + 1]
                st[0][j], st[1][j] = st[0][j + 1], st[1][j + 1]
            ndims -= 1
            if i < nkept:
                nkept -= 1
        i -= 1
    if nkept == ndims:  # nothing left to reduce: each output sums one element
        dims[ndims] = 1
        st[0][ndims] = st[1][ndims] = 0
        ndims += 1
    out.layout.ndim = ndims
    out.layout.nkept = nkept
    for i in range(ndims):
        out.layout.strides[0][i] = st[0][i]
        out.layout.strides[1][i] = st[1][i]
        for j in range(2, FL2_NOPS):
            out.layout.strides[j][i] = 0
    out.y_true, out.y_pred = base_true, base_pred
    return True


def _axis_layout_for_tests(cnp.ndarray y_true, cnp.ndarray y_pred, axis):
    """The axis fast path's pass, as (shape, nkept, strides of y_true, strides of y_pred,
    address of y_true's first element, of y_pred's), or None where it declines."""
    cdef axis_pass s
    if not axis_layout(y_true, y_pred, axis, &s):
        return None
    n = s.layout.ndim
    return (tuple([s.layout.shape[i] for i in range(n)]), s.layout.nkept,
            tuple([s.layout.strides[0][i] for i in range(n)]),
            tuple([s.layout.strides[1][i] for i in range(n)]),
            <size_t>s.y_true, <size_t>s.y_pred)


cdef object axis_fast_call(fl2_loss loss, double param, object y_true, object y_pred, object axis,
                           object reduction):
    """The whole call, unweighted, for "mean" or "sum" along any axes of arrays in any
    layout (or all of them, for arrays that are not C-contiguous), or NOT_FAST: the planned
    path's pass (``axis_layout``), each output divided as it is summed (``reduce_outputs``)."""
    cdef int red, t_true, t_pred, status
    cdef cnp.ndarray a, b, values
    cdef axis_pass s
    cdef fl2_problem p
    cdef fl2_outputs o
    cdef fl2_values finish
    cdef cnp.PyArray_Dims new_shape
    if not fast_path_enabled:
        return NOT_FAST
    red = reduction_code(reduction)
    if red != RED_MEAN and red != RED_SUM:
        return NOT_FAST
    t_true = array_dtype(y_true, False)
    t_pred = array_dtype(y_pred, False)
    if t_true < 0 or t_pred < 0:
        return NOT_FAST
    a, b = <cnp.ndarray>y_true, <cnp.ndarray>y_pred
    if (not 1 <= cnp.PyArray_NDIM(b) <= FL2_MAX_DIMS or cnp.PyArray_SIZE(b) == 0
            or not same_shape(a, b) or not axis_layout(a, b, axis, &s)):
        return NOT_FAST
    cdef bint single = t_true == FL2_FLOAT32 and t_pred == FL2_FLOAT32
    p.loss = loss
    p.loss_param = param
    p.n = cnp.PyArray_SIZE(b)
    p.y_true, p.y_pred = s.y_true, s.y_pred
    p.true_dtype, p.pred_dtype = <fl2_dtype>t_true, <fl2_dtype>t_pred
    p.weights, p.weights_dtype, p.weights_repeat = NULL, FL2_FLOAT64, 1
    o.grad = o.elementwise = NULL
    o.grad_scale, o.grad_divisor = 0.0, 1.0
    cdef cnp.npy_intp outputs = s.outputs
    values = cnp.PyArray_EMPTY(1, &outputs, cnp.NPY_FLOAT if single else cnp.NPY_DOUBLE, 0)
    finish.values = cnp.PyArray_DATA(values)
    finish.single = single
    finish.root = 0
    finish.divisor = <double>s.count if red == RED_MEAN else 1.0
    if p.n >= GIL_RELEASE_MIN:
        with nogil:
            status = fl2_run_strided(&p, &s.layout, &o, NULL, NULL, &finish, 0)
    else:
        status = fl2_run_strided(&p, &s.layout, &o, NULL, NULL, &finish, 0)
    if status != 0:
        raise MemoryError("fastl2: no memory for the block buffers or partials")
    if axis is None:
        return values[0]  # a NumPy scalar
    new_shape.ptr, new_shape.len = s.kept_shape, s.nkept
    return cnp.PyArray_Newshape(values, &new_shape, cnp.NPY_CORDER)


def mse(y_true, y_pred, weights=None, *, axis=None, reduction="mean"):
    if axis is None:
        result = fast_call(FL2_SQUARED, 0.0, y_true, y_pred, weights, reduction, None, True, False)
        if result is not NOT_FAST:
            return result
    if weights is None:
        result = axis_fast_call(FL2_SQUARED, 0.0, y_true, y_pred, axis, reduction)
        if result is not NOT_FAST:
            return result
    return planned("mse")(y_true, y_pred, weights, axis=axis, reduction=reduction)


def mae(y_true, y_pred, weights=None, *, axis=None, reduction="mean"):
    if axis is None:
        result = fast_call(FL2_ABSOLUTE, 0.0, y_true, y_pred, weights, reduction, None, True, False)
        if result is not NOT_FAST:
            return result
    if weights is None:
        result = axis_fast_call(FL2_ABSOLUTE, 0.0, y_true, y_pred, axis, reduction)
        if result is not NOT_FAST:
            return result
    return planned("mae")(y_true, y_pred, weights, axis=axis, reduction=reduction)


def mse_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    result = fast_call(FL2_SQUARED, 0.0, y_true, y_pred, weights, reduction, out, False, True)
    if result is not NOT_FAST:
        return result
    return planned("mse_grad")(y_true, y_pred, weights, reduction=reduction, out=out)


def mae_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    result = fast_call(FL2_ABSOLUTE, 0.0, y_true, y_pred, weights, reduction, out, False, True)
    if result is not NOT_FAST:
        return result
    return planned("mae_grad")(y_true, y_pred, weights, reduction=reduction, out=out)


def mse_and_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    result = fast_call(FL2_SQUARED, 0.0, y_true, y_pred, weights, reduction, out, True, True)
    if result is not NOT_FAST:
        return result
    return planned("mse_and_grad")(y_true, y_pred, weights, reduction=reduction, out=out)


def mae_and_grad(y_true, y_pred, weights=None, *, reduction="mean", out=None):
    result = fast_call(FL2_ABSOLUTE, 0.0, y_true, y_pred, weights, reduction, out, True, True)
    if result is not NOT_FAST:
        return result
    return planned("mae_and_grad")(y_true, y_pred, weights, reduction=reduction, out=out)


cdef inline bint positive_float(object x):
    """Whether ``x`` is a Python float > 0 and finite (anything else: the planned path judges)."""
    return type(x) is float and 0.0 < <double>x <= DBL_MAX


def huber(y_true, y_pred, weights=None, *, delta=1.0, axis=None, reduction="mean"):
    if positive_float(delta):
        if axis is None:
            result = fast_call(FL2_HUBER, delta, y_true, y_pred, weights, reduction, None, True, False)
            if result is not NOT_FAST:
                return result
        if weights is None:
            result = axis_fast_call(FL2_HUBER, delta, y_true, y_pred, axis, reduction)
            if result is not NOT_FAST:
                return result
    return planned("huber")(y_true, y_pred, weights, delta=delta, axis=axis, reduction=reduction)


def huber_grad(y_true, y_pred, weights=None, *, delta=1.0, reduction="mean", out=None):
    if positive_float(delta):
        result = fast_call(FL2_HUBER, delta, y_true, y_pred, weights, reduction, out, False, True)
        if result is not NOT_FAST:
            return result
    return planned("huber_grad")(y_true, y_pred, weights, delta=delta, reduction=reduction, out=out)


def huber_and_grad(y_true, y_pred, weights=None, *, delta=1.0, reduction="mean", out=None):
    if positive_float(delta):
        result = fast_call(FL2_HUBER, delta, y_true, y_pred, weights, reduction, out, True, True)
        if result is not NOT_FAST:
            return result
    return planned("huber_and_grad")(y_true, y_pred, weights, delta=delta, reduction=reduction,
                                     out=out)
