# The axis fast path: an unweighted "mean" or "sum" along any axes of arrays in any layout.
# Included by fastl2/_core.pyx, after _core_fast_paths.pxi.

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
    cdef bint single = narrow(t_true) and narrow(t_pred)
    p.loss = loss
    p.loss_param = param
    p.n = cnp.PyArray_SIZE(b)
    p.y_true, p.y_pred = s.y_true, s.y_pred
    p.true_dtype, p.pred_dtype = <fl2_dtype>t_true, <fl2_dtype>t_pred
    p.weights, p.weights_dtype, p.weights_repeat = NULL, FL2_FLOAT64, 1
    o.grad = o.elementwise = NULL
    o.grad_scale, o.grad_divisor, o.grad_divisor_lo = 0.0, 1.0, 0.0
    cdef cnp.npy_intp outputs = s.outputs
    values = cnp.PyArray_EMPTY(1, &outputs, cnp.NPY_FLOAT if single else cnp.NPY_DOUBLE, 0)
    # (a value that is not certainly the exact one rounded: the planned path's exact one; one
    # flag per output, on the stack for one output)
    cdef unsigned char one_flag = 0
    cdef cnp.ndarray uncertain = None
    if outputs > 1:
        uncertain = cnp.PyArray_ZEROS(1, &outputs, cnp.NPY_UINT8, 0)
    finish.values = cnp.PyArray_DATA(values)
    finish.single = single
    finish.bound = fl2_float32_bound(s.count)
    finish.count = s.count
    finish.uncertain = <unsigned char *>cnp.PyArray_DATA(uncertain) if outputs > 1 else &one_flag
    finish.root = 0
    finish.divisor = <double>s.count if red == RED_MEAN else 1.0
    if p.n >= GIL_RELEASE_MIN:
        with nogil:
            status = fl2_run_strided(&p, &s.layout, &o, NULL, NULL, NULL, NULL, &finish, 0)
    else:
        status = fl2_run_strided(&p, &s.layout, &o, NULL, NULL, NULL, NULL, &finish, 0)
    _check_status(status, "fastl2: no memory for the block buffers or partials")
    if one_flag or (uncertain is not None and memchr(cnp.PyArray_DATA(uncertain), 1, outputs) != NULL):
        # Values near a rounding boundary (within 2**-38 for float32, 2**-80 for float64, or
        # a float64 sum the certificate cannot judge): the exact path decides them.
        from fastl2._passes import exact_outputs
        exact_outputs(<int>loss, param, y_true, y_pred, axis, reduction, values,
                      np.ones(1, bool) if uncertain is None else uncertain.view(bool))
    if axis is None:
        return values[0]  # a NumPy scalar
    new_shape.ptr, new_shape.len = s.kept_shape, s.nkept
    return cnp.PyArray_Newshape(values, &new_shape, cnp.NPY_CORDER)
