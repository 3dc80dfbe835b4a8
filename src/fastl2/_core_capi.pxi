# The C API of csrc/fastl2.h, as the compiled backend (fastl2/_core.pyx) sees it.

cdef extern from "numpy/arrayobject.h":
    object PyArray_Scalar(void *data, cnp.dtype descr, object base)
    int PyArray_SetBaseObject(cnp.ndarray arr, object obj) except -1  # steals a reference to obj

cdef extern from "fastl2.h" nogil:
    enum: FL2_INTERRUPTED
    enum: FL2_FORKED
    enum: FL2_BLOCK_SIZE
    enum: FL2_LANES
    ctypedef enum fl2_dtype:
        FL2_FLOAT32
        FL2_FLOAT64
        FL2_FLOAT16
        FL2_BFLOAT16
    ctypedef enum fl2_loss:  # (each loss's code is declared beside its entry points, _core.pyx)
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
        double grad_divisor_lo
        void *elementwise
    ctypedef struct fl2_sums:
        double loss
        double weights
        double loss_lo
        double weights_lo
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
        unsigned char *uncertain
        double bound
        int64_t count
    ctypedef struct fl2_finish:
        int64_t count
        int weighted
        int by_weights
        double divisor
        int root
        double scale
    bint fl2_certain_f32(double x, double bound)
    double fl2_float32_bound(int64_t count)
    int fl2_finish_f64(const fl2_sums *s, const fl2_finish *f, double *value)
    int fl2_run_strided(const fl2_problem *p, const fl2_layout *layout, const fl2_outputs *o,
                        double *loss_sums, double *weight_sums, double *loss_lo, double *weight_lo,
                        const fl2_values *values, int nthreads)
    int fl2_weight_sum(const fl2_problem *p, double *weight_sum, double *weight_lo, int nthreads)
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
    const char *fl2_bfloat16_rounding()
    const char *fl2_float32_run_level()
    void fl2_set_float32_runs(int choice)
    const char *fl2_compiler()
    const char *fl2_baseline_isa()
    const char *fl2_loss_name(int code)

cdef extern from "pool.h" nogil:
    void fl2_pool_set_interrupt_check(int (*check)() noexcept nogil)
    int fl2_pool_available()
    int fl2_pool_size()
    void fl2_pool_set_spin(int64_t ns)
    int64_t fl2_pool_spin()

cdef extern from "exact.h" nogil:
    enum: FL2_EXACT_LOW
    enum: FL2_EXACT_BINS
    int64_t fl2_exact_sums(int loss, double param, int64_t n, const double *y_true,
                           const double *y_pred, const double *weights, int64_t *loss_bins,
                           int64_t *weight_bins, unsigned char *bad)
