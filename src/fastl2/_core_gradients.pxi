# Gradient buffers: included by fastl2/_core.pyx.
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
