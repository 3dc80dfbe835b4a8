# The fast paths: the common call answered without planning.  Included by fastl2/_core.pyx.
#
# A call qualifies when its arrays are exact ndarrays of native float16/32/64 or bfloat16,
# C-contiguous and aligned, of one shape and not empty; weights (if any) are of that shape too; the
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
    if t == cnp.NPY_FLOAT16:  # (read in place: csrc/convert.c, the float16 kernels)
        return FL2_FLOAT16
    if t >= NPY_USERDEF and is_bfloat16(t, a):  # (and ml_dtypes.bfloat16: its own kernels)
        return FL2_BFLOAT16
    return -1


cdef inline bint narrow(int t):
    """Whether an operand of kernel dtype ``t`` keeps a float32 result (float32, float16,
    bfloat16)."""
    return t == FL2_FLOAT32 or t == FL2_FLOAT16 or t == FL2_BFLOAT16


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


cdef object exact_value(fl2_loss loss, double param, object y_true, object y_pred, object weights,
                        object reduction, double value):
    """The float32 result of a call whose certificate failed, exact and rounded once."""
    from fastl2._passes import exact_loss
    return exact_loss(<int>loss, param, y_true, y_pred, weights, reduction, value)


cdef object scalar_of(double value, bint single):
    cdef float value32
    if single:
        value32 = <float>value
        return PyArray_Scalar(&value32, cnp.PyArray_DescrFromType(cnp.NPY_FLOAT), None)
    return PyArray_Scalar(&value, cnp.PyArray_DescrFromType(cnp.NPY_DOUBLE), None)



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
    cdef bint single = narrow(t_true) and narrow(t_pred) and (weights is None or narrow(t_weights))

    # The gradient's divisor must be known before its first element is written.
    divisor = 1.0 if red == RED_SUM else <double>p.n
    if want_grad and red == RED_WEIGHTED_MEAN and weights is not None:
        if p.n >= GIL_RELEASE_MIN:
            with nogil:
                status = fl2_weight_sum(&p, &weight_sum, 0)
        else:
            status = fl2_weight_sum(&p, &weight_sum, 0)
        _check_status(status, "fastl2: no memory for the block partials")
        if weight_sum == 0.0:
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
    _check_status(status, "fastl2: no memory for the block partials")
    if not want_loss:
        return grad
    if red == RED_WEIGHTED_MEAN:
        if sums.weights == 0.0:
            return NOT_FAST  # the planned path raises the right error
        divisor = sums.weights
    cdef double v = sums.loss / divisor
    if single and not fl2_certain_f32(v, fl2_float32_bound(p.n)):
        # Within 2**-38 of a float32 rounding boundary: the exact path decides (a gradient
        # written over y_pred leaves no y_pred to read: there v is rounded, docs/api.md).
        if not want_grad or cnp.PyArray_DATA(grad) != cnp.PyArray_DATA(b):
            value = exact_value(loss, param, y_true, y_pred, weights, reduction, v)
            return (value, grad) if want_grad else value
    value = scalar_of(v, single)
    return (value, grad) if want_grad else value
