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
    """The result of a call whose certificate failed, exact and rounded once."""
    from fastl2._passes import exact_loss
    return exact_loss(<int>loss, param, y_true, y_pred, weights, reduction, value)


cdef tuple exact_weight_sum(object weights):
    """(the exact weight sum rounded once, its rest rounded once): _exact.exact_weight_sum."""
    from fastl2._exact import exact_weight_sum as exact_sum
    return exact_sum(weights, rest=True)


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
    cdef int red, t_true, t_pred, t_weights = FL2_FLOAT32
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
    return fast_run(&p, red, single, grad, want_loss, want_grad, (y_true, y_pred, weights), reduction,
                    want_grad and cnp.PyArray_DATA(grad) == cnp.PyArray_DATA(b))


cdef bint certain_weight_sum(double hi, double lo, int64_t count) noexcept nogil:
    """Whether the weight sum's double-double rounded (hi) is certainly the exact weight sum
    rounded once: fl2_finish_f64's certificate of a "sum" with weights' margins
    (fastl2._exact.certain_weight_sum is the same test)."""
    cdef fl2_sums s
    cdef fl2_finish f
    cdef double v
    s.loss, s.loss_lo, s.weights, s.weights_lo = hi, lo, 0.0, 0.0
    f.count, f.weighted, f.by_weights, f.divisor, f.root, f.scale = count, 1, 0, 1.0, 0, 1.0
    return fl2_finish_f64(&s, &f, &v) == 1 and v == hi


cdef object fast_run(fl2_problem *p, int red, bint single, cnp.ndarray grad, bint want_loss,
                     bint want_grad, object operands, object reduction, bint grad_over_pred):
    """fast_call's run of the kernel on the problem it set up, and its result; ``operands``:
    (y_true, y_pred, weights) as arrays, or a function that returns them (wanted only by the
    exact path)."""
    cdef fl2_outputs o
    cdef fl2_sums sums
    cdef int status
    cdef double divisor, divisor_lo = 0.0, weight_sum, weight_lo
    # The gradient's divisor must be known before its first element is written (and, for a
    # float64 gradient, its rest: csrc/losses.h fl2_grad_exact).
    divisor = 1.0 if red == RED_SUM else <double>p.n
    if want_grad and red == RED_WEIGHTED_MEAN and p.weights != NULL:
        if p.n >= GIL_RELEASE_MIN:
            with nogil:
                status = fl2_weight_sum(p, &weight_sum, &weight_lo, 0)
        else:
            status = fl2_weight_sum(p, &weight_sum, &weight_lo, 0)
        _check_status(status, "fastl2: no memory for the block partials")
        if weight_sum == 0.0:
            return NOT_FAST  # the planned path raises the right error
        divisor = weight_sum
        if not single:
            divisor_lo = weight_lo
        if not single and not certain_weight_sum(weight_sum, weight_lo, p.n):
            # near a tie: the exact weight sum rounded once (_passes.gradient_weight_sum)
            if not isinstance(operands, tuple):
                operands = operands()
            divisor, divisor_lo = exact_weight_sum(operands[2])
    o.grad = cnp.PyArray_DATA(grad) if want_grad else NULL
    o.grad_scale = grad_scales[<int>p.loss]
    o.grad_divisor = divisor
    o.grad_divisor_lo = divisor_lo
    o.elementwise = NULL
    sums.loss = sums.weights = sums.loss_lo = sums.weights_lo = 0.0
    if p.n >= GIL_RELEASE_MIN:
        with nogil:
            status = fl2_run(p, &o, &sums if want_loss else NULL, 0)
    else:
        status = fl2_run(p, &o, &sums if want_loss else NULL, 0)
    _check_status(status, "fastl2: no memory for the block partials")
    if not want_loss:
        return grad
    if red == RED_WEIGHTED_MEAN:
        if sums.weights == 0.0:
            return NOT_FAST  # the planned path raises the right error
        divisor = sums.weights
    cdef double v
    cdef bint certain
    cdef fl2_finish finish
    if single:
        v = sums.loss / divisor + 0.0  # (+ 0.0: an exact 0 over a negative weight sum is +0.0)
        certain = fl2_certain_f32(v, fl2_float32_bound(p.n))
    else:
        finish.count, finish.weighted, finish.root = p.n, p.weights != NULL, False
        finish.by_weights, finish.divisor, finish.scale = red == RED_WEIGHTED_MEAN, divisor, 1.0
        certain = fl2_finish_f64(&sums, &finish, &v)
    if not certain:
        # Near a rounding boundary (within 2**-38 of a float32 one, 2**-80 of a float64 one):
        # the exact path decides (a gradient written over y_pred leaves no y_pred to read:
        # there v is rounded, docs/api.md).
        if not grad_over_pred:
            if not isinstance(operands, tuple):
                operands = operands()
            value = exact_value(p.loss, p.loss_param, operands[0], operands[1], operands[2],
                                reduction, v)
            return (value, grad) if want_grad else value
    value = scalar_of(v, single)
    return (value, grad) if want_grad else value


def loss_at(int code, size_t true_address, size_t pred_address, object shape, cnp.dtype dtype,
            object reduction, bint want_grad, object operands):
    """The fast path for memory that is not an ndarray (fastl2.torch's common call: contiguous
    CPU tensors, without the cost of their NumPy views): loss ``code`` (no parameter: squared or
    absolute error) of ``y_true`` and ``y_pred``, C-contiguous, aligned, of ``shape`` and one
    ``dtype`` (float32, float64, float16, or ml_dtypes' bfloat16 once the fast path has seen an
    array of it), at those addresses, which the caller keeps alive and readable; reduction
    "mean" or "sum". Returns fast_call's result (the loss: a float32 one for the half dtypes,
    or (loss, gradient of ``shape`` and ``dtype``)), or None where it does not apply;
    ``operands()`` must return the ndarrays (y_true, y_pred, None) over that memory if the exact
    path wants them."""
    cdef fl2_problem p
    cdef cnp.npy_intp dims[32]
    cdef int nd = len(shape), i, red = reduction_code(reduction), t = dtype.type_num, kind
    cdef cnp.ndarray grad = None
    if t == cnp.NPY_DOUBLE:
        kind = FL2_FLOAT64
    elif t == cnp.NPY_FLOAT:
        kind = FL2_FLOAT32
    elif t == cnp.NPY_FLOAT16:
        kind = FL2_FLOAT16
    elif t == bfloat16_type and t >= 0:
        kind = FL2_BFLOAT16
    else:
        return None
    if (not fast_path_enabled or nd > 32 or code < 0 or code >= FL2_NLOSSES
            or has_parameter[code] or red < 0 or red == RED_WEIGHTED_MEAN):
        return None
    p.n = 1
    for i in range(nd):
        dims[i] = shape[i]
        p.n *= dims[i]
    if p.n <= 0:
        return None
    p.loss = <fl2_loss>code
    p.loss_param = 0.0
    p.y_true, p.y_pred = <void *>true_address, <void *>pred_address
    p.true_dtype = p.pred_dtype = <fl2_dtype>kind
    p.weights, p.weights_dtype, p.weights_repeat = NULL, FL2_FLOAT64, 1
    if want_grad:
        grad = new_gradient(nd, dims, t, dtype.itemsize)
    result = fast_run(&p, red, narrow(kind), grad, True, want_grad, operands, reduction, False)
    return None if result is NOT_FAST else result
