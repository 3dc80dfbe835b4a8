/*
 * One block kernel, instantiated once per dtype combination (see kernels.h).
 * The includer defines:
 *   BLOCK_FN      name of the function to define
 *   T_PRED        element type of y_pred
 *   T_TRUE        element type of y_true (left undefined: y_true reads as zeros)
 *   T_WEIGHTS     element type of the weights (left undefined: unweighted)
 *   COMPENSATED   1 when any input is float64: a float64 result needs compensated
 *                 lanes to stay within an ulp or two; a float32 result needs no more than
 *                 plain float64 lanes.
 */

#define LANES FL2_LANES

#ifdef T_TRUE
#define HAS_TRUE 1
#else
#define HAS_TRUE 0
#endif
#ifdef T_WEIGHTS
#define HAS_WEIGHTS 1
#else
#define HAS_WEIGHTS 0
#endif

#if !defined(COMPENSATED)
#error "define COMPENSATED: 1 when any input is float64 (a float64 result)"
#endif

#define BODY_FN FL2_CAT(BLOCK_FN, _body)
/* A float64 gradient divides (one rounding less than by a reciprocal, within an ulp of exact). */
#define GRAD_VALUE(x) (sizeof(T_PRED) == sizeof(double) ? (scale * (x)) / divisor : quotient * (x))
#define FL2_STREAM_STORE(dst, src, count) \
    (sizeof(T_PRED) == sizeof(float) ? fl2_stream_store_f32((float *)(void *)(dst), (const float *)(const void *)(src), count) \
                                     : fl2_stream_store_f64((double *)(void *)(dst), (const double *)(const void *)(src), count))

/* Adds x to lane k.  Compensated lanes keep the plain running sum and, beside it, the sum of
 * the exact rounding errors of its additions (TwoSum, Ogita-Rump-Oishi "Sum2"): neither
 * depends on the other's last value, so the loop-carried chains stay one addition long.
 * The plain sum alone carries inf and nan, as IEEE addition would. */
#define ACCUMULATE(sum, err, k, x)                             \
    do {                                                       \
        if (COMPENSATED) {                                     \
            double t_ = sum[k] + (x);                          \
            double z_ = t_ - sum[k];                           \
            err[k] += (sum[k] - (t_ - z_)) + ((x) - z_);       \
            sum[k] = t_;                                       \
        } else {                                               \
            sum[k] += (x);                                     \
        }                                                      \
    } while (0)

/* ACCUMULATE for a whole vector of lanes. */
#define VACCUMULATE(sum, err, x)                               \
    do {                                                       \
        if (COMPENSATED) {                                     \
            fl2_vd t_ = sum + (x);                             \
            fl2_vd z_ = t_ - sum;                              \
            err += (sum - (t_ - z_)) + ((x) - z_);             \
            sum = t_;                                          \
        } else {                                               \
            sum += (x);                                        \
        }                                                      \
    } while (0)

/* VACCUMULATE in the lanes of `keep` only; the other lanes keep their sums and errors. */
#define VACCUMULATE_KEPT(sum, err, x, keep)                    \
    do {                                                       \
        fl2_vd s_ = sum, e_ = err;                             \
        VACCUMULATE(s_, e_, x);                                \
        sum = fl2_vselect(keep, s_, sum);                      \
        err = fl2_vselect(keep, e_, err);                      \
    } while (0)

/* The lanes' double-double sum by fl2_dd_combine's tree, without its checks for inf and nan
 * (branches that keep the compiler from vectorising the levels); a sum that comes out
 * non-finite is redone with them, which gives the same bits as fl2_dd_combine always. */
FL2_INLINE fl2_dd FL2_CAT(BLOCK_FN, _lanes)(const double *sum, const double *err)
{
    double hi[LANES], lo[LANES];
    for (int k = 0; k < LANES; k++) {
        hi[k] = sum[k];
        lo[k] = COMPENSATED ? err[k] : 0.0;
    }
    FL2_UNROLL
    for (int m = LANES; m > 1; m /= 2) {
        FL2_UNROLL
        for (int i = 0; i < m / 2; i++) {
            const double a = hi[2 * i], b = hi[2 * i + 1];
            const double s = a + b;
            const double bb = s - a;
            double e = (a - (s - bb)) + (b - bb);
            e += lo[2 * i] + lo[2 * i + 1];
            const double h = s + e;
            hi[i] = h;
            lo[i] = e - (h - s);
        }
    }
    fl2_dd r = {hi[0], lo[0]};
    if (!(r.hi - r.hi == 0.0)) {
        fl2_dd lane[LANES];
        for (int k = 0; k < LANES; k++) {
            lane[k].hi = sum[k];
            lane[k].lo = COMPENSATED ? err[k] : 0.0;
        }
        r = fl2_dd_combine(lane, LANES);
    }
    return r;
}

FL2_INLINE void BODY_FN(const fl2_problem *p, const fl2_outputs *o, int64_t start, int64_t end,
                        fl2_partial *out, const fl2_loss loss, const int want_sums,
                        const int want_grad, const int want_elem, const int weights_only,
                        double *raw, const int step, const int64_t *ahead)
{
    typedef T_PRED pred_t;
#if COMPENSATED
    typedef double result_t;
#else
    typedef float result_t;
#endif
    const pred_t *y_pred = (const pred_t *)p->y_pred;
#if HAS_TRUE
    const T_TRUE *y_true = (const T_TRUE *)p->y_true;
#endif
#if HAS_WEIGHTS
    const T_WEIGHTS *w = (const T_WEIGHTS *)p->weights;
    const int64_t repeat = p->weights_repeat;
    int64_t row = start / repeat, row_end = (row + 1) * repeat;
#endif
    pred_t *grad = want_grad ? (pred_t *)o->grad : 0;
    result_t *elem = want_elem ? (result_t *)o->elementwise : 0;
    const double scale = want_grad ? o->grad_scale : 0.0;
    const double divisor = want_grad ? o->grad_divisor : 1.0;
    const double quotient = scale / divisor;
    const double param = p->loss_param;
    (void)quotient; (void)divisor; (void)param;
    /* Streaming stores write large gradients without first reading their lines in. */
    const int stream = want_grad && o->stream && fl2_stream_aligned(grad);

#if FL2_VECTORS
    double loss_sum[LANES], loss_err[LANES]; /* (the vector lanes are copied in) */
    double w_sum[LANES], w_err[LANES];
#else
    double loss_sum[LANES] = {0}, loss_err[LANES] = {0};
    double w_sum[LANES] = {0}, w_err[LANES] = {0};
#endif
    (void)loss_err; (void)w_sum; (void)w_err;

    /* One element: its difference d, weight wk, going to lane k. */
#define ELEMENT(i, k, d, wk, gout)                                                   \
    do {                                                                             \
        if (!weights_only) {                                                         \
            double l_ = fl2_loss_value(loss, d, param);                              \
            double wl_ = HAS_WEIGHTS ? (wk) * l_ : l_;                               \
            if (want_sums) ACCUMULATE(loss_sum, loss_err, k, wl_);      \
            if (want_elem) elem[i] = (result_t)wl_;                                  \
            if (want_grad) {                                                         \
                double g_ = fl2_loss_derivative(loss, d, param);                     \
                gout = (pred_t)GRAD_VALUE(HAS_WEIGHTS ? (wk) * g_ : g_);             \
            }                                                                        \
        }                                                                            \
        if (HAS_WEIGHTS && want_sums) ACCUMULATE(w_sum, w_err, k, wk);     \
    } while (0)

    /* Inputs are read `step` (1, or 2 for a[::2] views: a constant) elements apart; the
     * outputs are contiguous. */
#if HAS_TRUE
#define DIFF(i) ((double)y_pred[step * (i)] - (double)y_true[step * (i)])
#define VDIFF(i) (FL2_VLOAD_STEP(y_pred + step * (i), step) - FL2_VLOAD_STEP(y_true + step * (i), step))
#else
#define DIFF(i) ((double)y_pred[step * (i)])
#define VDIFF(i) FL2_VLOAD_STEP(y_pred + step * (i), step)
#endif

    int64_t i = start;
#if FL2_VECTORS
    {
        /* The same per-lane operations as ELEMENT, a chunk of LANES (NV vectors) at a time. */
        enum { NV = LANES / FL2_VWIDTH };
        const fl2_vd vparam = fl2_vsplat(param);
        fl2_vd v_loss[NV], v_loss_err[NV], v_w[NV], v_w_err[NV];
        for (int h = 0; h < NV; h++) v_loss[h] = v_loss_err[h] = v_w[h] = v_w_err[h] = fl2_vsplat(0.0);
        /* (the step-2 loads read one element past their last: never past the block's) */
        for (; i + LANES + (step == 2) <= end; i += LANES) {
            fl2_vd d[NV], wv[NV];
            pred_t chunk_grad[LANES]; /* the chunk's gradient, when it is streamed */
            if (ahead) { /* the chunk's place in a later row (rows kernel) */
                if (!weights_only) {
                    fl2_prefetch(y_pred + i, ahead[FL2_OP_PRED], LANES * (int64_t)sizeof(pred_t));
#if HAS_TRUE
                    fl2_prefetch(y_true + i, ahead[FL2_OP_TRUE], LANES * (int64_t)sizeof(T_TRUE));
#endif
                }
#if HAS_WEIGHTS
                if (repeat == 1) fl2_prefetch(w + i, ahead[FL2_OP_WEIGHTS], LANES * (int64_t)sizeof(T_WEIGHTS));
#endif
            }
            for (int h = 0; h < NV; h++) {
                d[h] = weights_only ? fl2_vsplat(0.0) : VDIFF(i + h * FL2_VWIDTH);
                wv[h] = fl2_vsplat(1.0);
            }
#if HAS_WEIGHTS
            if (repeat == 1) {
                for (int h = 0; h < NV; h++) wv[h] = FL2_VLOAD_STEP(w + step * (i + h * FL2_VWIDTH), step);
            } else if (i + LANES <= row_end) {
                for (int h = 0; h < NV; h++) wv[h] = fl2_vsplat((double)w[row]);
            } else {
                for (int k = 0; k < LANES; k++) {
                    while (i + k >= row_end) { row++; row_end += repeat; }
                    wv[k / FL2_VWIDTH][k % FL2_VWIDTH] = (double)w[row];
                }
            }
#endif
            for (int h = 0; h < NV; h++) {
                const int64_t at = i + h * FL2_VWIDTH;
                if (!weights_only) {
                    fl2_vd l = fl2_loss_vvalue(loss, d[h], vparam);
                    if (HAS_WEIGHTS) l = wv[h] * l;
                    if (want_sums) VACCUMULATE(v_loss[h], v_loss_err[h], l);
                    if (want_elem) FL2_VSTORE(elem + at, l);
                    if (want_grad) {
                        fl2_vd g = fl2_loss_vderivative(loss, d[h], vparam);
                        if (HAS_WEIGHTS) g = wv[h] * g;
                        g = sizeof(pred_t) == sizeof(double) ? (scale * g) / divisor : quotient * g;
                        FL2_VSTORE(stream ? chunk_grad + h * FL2_VWIDTH : grad + at, g);
                    }
                }
                if (HAS_WEIGHTS && want_sums) VACCUMULATE(v_w[h], v_w_err[h], wv[h]);
            }
            if (stream) FL2_STREAM_STORE(grad + i, chunk_grad, LANES);
        }
#if HAS_WEIGHTS
        if (repeat != 1)
            while (i >= row_end) { row++; row_end += repeat; }
        const int tail_weights = repeat == 1 || end <= row_end;
#else
        const int tail_weights = 1;
#endif
        if (want_sums && !want_grad && !want_elem && step == 1 && i < end && tail_weights) {
            /* The last, partial chunk in the vector lanes too: loads of the elements left
             * (zeros after them), and additions kept in their lanes only.  The lanes then
             * stay in registers; the scalar loop below would store them, add to some and load
             * them all back, a store-forwarding stall per row of a rows pass. */
            for (int h = 0; h < NV && i + h * FL2_VWIDTH < end; h++) {
                const int64_t at = i + h * FL2_VWIDTH;
                const int count = end - at < FL2_VWIDTH ? (int)(end - at) : FL2_VWIDTH;
                const fl2_vbits keep = fl2_vfirst(count);
                fl2_vd wv = fl2_vsplat(1.0);
#if HAS_WEIGHTS
                wv = repeat == 1 ? FL2_VLOADN(w + at, count) : fl2_vsplat((double)w[row]);
#endif
                if (!weights_only) {
#if HAS_TRUE
                    const fl2_vd d = FL2_VLOADN(y_pred + at, count) - FL2_VLOADN(y_true + at, count);
#else
                    const fl2_vd d = FL2_VLOADN(y_pred + at, count);
#endif
                    fl2_vd l = fl2_loss_vvalue(loss, d, vparam);
                    if (HAS_WEIGHTS) l = wv * l;
                    VACCUMULATE_KEPT(v_loss[h], v_loss_err[h], l, keep);
                }
                if (HAS_WEIGHTS) VACCUMULATE_KEPT(v_w[h], v_w_err[h], wv, keep);
            }
            i = end;
        }
        memcpy(loss_sum, v_loss, sizeof v_loss);
        memcpy(loss_err, v_loss_err, sizeof v_loss_err);
        memcpy(w_sum, v_w, sizeof v_w);
        memcpy(w_err, v_w_err, sizeof v_w_err);
    }
#else
    for (; i + LANES <= end; i += LANES) {
        double d[LANES], wk[LANES];
        /* All reads of the chunk come before its writes: the gradient may alias y_pred. */
        if (!weights_only)
            for (int k = 0; k < LANES; k++) d[k] = DIFF(i + k);
#if HAS_WEIGHTS
        if (repeat == 1) {
            for (int k = 0; k < LANES; k++) wk[k] = (double)w[step * (i + k)];
        } else if (i + LANES <= row_end) {
            double wr = (double)w[row];
            for (int k = 0; k < LANES; k++) wk[k] = wr;
        } else {
            for (int k = 0; k < LANES; k++) {
                while (i + k >= row_end) { row++; row_end += repeat; }
                wk[k] = (double)w[row];
            }
        }
#else
        for (int k = 0; k < LANES; k++) wk[k] = 1.0;
#endif
        pred_t g[LANES];
        for (int k = 0; k < LANES; k++) ELEMENT(i + k, k, d[k], wk[k], g[k]);
        if (want_grad) {
            if (stream)
                FL2_STREAM_STORE(grad + i, g, LANES);
            else
                for (int k = 0; k < LANES; k++) grad[i + k] = g[k];
        }
    }
#endif
    for (int k = 0; i < end; i++, k++) {
        double dk = weights_only ? 0.0 : DIFF(i), wk = 1.0;
#if HAS_WEIGHTS
        if (repeat == 1) {
            wk = (double)w[step * i];
        } else {
            while (i >= row_end) { row++; row_end += repeat; }
            wk = (double)w[row];
        }
#endif
        ELEMENT(i, k, dk, wk, grad[i]);
    }

    if (stream) fl2_stream_fence();
    if (want_sums && raw) { /* the lanes themselves, for the caller to combine */
        memcpy(raw, loss_sum, sizeof loss_sum); /* (lanes that can only hold zeros: not) */
        if (COMPENSATED) memcpy(raw + LANES, loss_err, sizeof loss_err);
        if (HAS_WEIGHTS) memcpy(raw + 2 * LANES, w_sum, sizeof w_sum);
        if (HAS_WEIGHTS && COMPENSATED) memcpy(raw + 3 * LANES, w_err, sizeof w_err);
    } else if (want_sums) {
        out->loss = FL2_CAT(BLOCK_FN, _lanes)(loss_sum, loss_err);
#if HAS_WEIGHTS
        out->weights = FL2_CAT(BLOCK_FN, _lanes)(w_sum, w_err);
#else
        out->weights.hi = (double)(end - start);
        out->weights.lo = 0.0;
#endif
    }
#undef ELEMENT
#undef DIFF
#undef VDIFF
}

static void BLOCK_FN(const fl2_problem *p, const fl2_outputs *o, fl2_mode mode, int64_t start,
                     int64_t end, fl2_partial *out)
{
    /* Constant flags (and loss, by FL2_FOR_LOSS) make each call below its own loop without
     * per-element branches. */
#define RUN(loss, sums, grad, elem, wonly, step) \
    BODY_FN(p, o, start, end, out, loss, sums, grad, elem, wonly, NULL, step, NULL)
#define FL2_LOSS_BODY(loss)                                                  \
    switch ((int)mode) {                                                     \
    case FL2_MODE_SUMS: RUN(loss, 1, 0, 0, 0, 1); break;                     \
    case FL2_MODE_SUMS_GRAD: RUN(loss, 1, 1, 0, 0, 1); break;                \
    case FL2_MODE_GRAD: RUN(loss, 0, 1, 0, 0, 1); break;                     \
    case FL2_MODE_ELEM: RUN(loss, 0, 0, 1, 0, 1); break;                     \
    case FL2_MODE_ELEM_GRAD: RUN(loss, 0, 1, 1, 0, 1); break;                \
    /* sums of inputs read every other element (a[::2]), in place */         \
    case FL2_MODE_SUMS | FL2_MODE_STEP2: RUN(loss, 1, 0, 0, 0, 2); break;    \
    default: break;                                                          \
    }
    if (mode == FL2_MODE_WEIGHTS)
        RUN(FL2_SQUARED, 1, 0, 0, 1, 1);
    else if ((int)mode == (FL2_MODE_WEIGHTS | FL2_MODE_STEP2))
        RUN(FL2_SQUARED, 1, 0, 0, 1, 2);
    else
        FL2_FOR_LOSS(p->loss)
#undef FL2_LOSS_BODY
#undef RUN
}

/* Block sums of ncols outputs at once, for runs that are columns: output c's run is column c
 * of a chunk of nrows rows, row r of y_pred at y_pred + r * ld[FL2_OP_PRED] elements (of
 * y_true and the weights likewise), its columns contiguous; w_step is 1 for weights per
 * element, 0 for one weight per row.  Element r of each column goes to lane r % LANES with
 * BODY_FN's operations, so each output's partial has the bits BLOCK_FN gives its run; the
 * rows are read once, in memory order.  scratch: 4 * LANES * ncols doubles. */
FL2_INLINE void FL2_CAT(BLOCK_FN, _columns_body)(const fl2_problem *p, int64_t nrows, int64_t ncols,
                                                 const int64_t *ld, int64_t w_step, double *scratch,
                                                 fl2_partial *out, const fl2_loss loss,
                                                 const int weights_only)
{
    const T_PRED *y_pred = (const T_PRED *)p->y_pred;
#if HAS_TRUE
    const T_TRUE *y_true = (const T_TRUE *)p->y_true;
#endif
#if HAS_WEIGHTS
    const T_WEIGHTS *w = (const T_WEIGHTS *)p->weights;
#endif
    const double param = p->loss_param;
    double *ls = scratch, *le = scratch + LANES * ncols;
    double *ws = scratch + 2 * LANES * ncols, *we = scratch + 3 * LANES * ncols;
    (void)ws; (void)we; (void)w_step;
    int64_t nrows_done = 0;
    memset(scratch, 0, (size_t)4 * LANES * ncols * sizeof(double));
#if FL2_VECTORS
    if (ncols == FL2_VWIDTH) {
        /* A row is one vector: lane k's sums of all columns are one vector each, kept in
         * registers (rows LANES at a time, so each lane's index is a constant), stored into
         * the scratch lanes for the combining below. */
        const fl2_vd vparam = fl2_vsplat(param);
        fl2_vd vs[LANES], ve[LANES], vws[LANES], vwe[LANES];
        for (int k = 0; k < LANES; k++) vs[k] = ve[k] = vws[k] = vwe[k] = fl2_vsplat(0.0);
        for (int64_t r0 = 0; r0 < nrows; r0 += LANES) {
            FL2_UNROLL
            for (int k = 0; k < LANES; k++) {
                const int64_t r = r0 + k;
                if (r >= nrows) break;
#if HAS_WEIGHTS
                const T_WEIGHTS *wr = w + r * ld[FL2_OP_WEIGHTS];
                const fl2_vd wk = w_step ? FL2_VLOAD(wr) : fl2_vsplat((double)wr[0]);
#endif
                if (!weights_only) {
#if HAS_TRUE
                    const fl2_vd d = FL2_VLOAD(y_pred + r * ld[FL2_OP_PRED]) -
                                     FL2_VLOAD(y_true + r * ld[FL2_OP_TRUE]);
#else
                    const fl2_vd d = FL2_VLOAD(y_pred + r * ld[FL2_OP_PRED]);
#endif
                    fl2_vd l = fl2_loss_vvalue(loss, d, vparam);
#if HAS_WEIGHTS
                    l = wk * l;
#endif
                    VACCUMULATE(vs[k], ve[k], l);
                }
#if HAS_WEIGHTS
                VACCUMULATE(vws[k], vwe[k], wk);
#endif
            }
        }
        for (int k = 0; k < LANES; k++) {
            memcpy(ls + k * ncols, &vs[k], sizeof vs[k]);
            memcpy(le + k * ncols, &ve[k], sizeof ve[k]);
            memcpy(ws + k * ncols, &vws[k], sizeof vws[k]);
            memcpy(we + k * ncols, &vwe[k], sizeof vwe[k]);
        }
        nrows_done = nrows;
    }
#endif
    for (int64_t r = nrows_done; r < nrows; r++) {
        const int64_t lane = (r % LANES) * ncols;
        double *s = ls + lane, *e = le + lane;
        const T_PRED *yp = y_pred + r * ld[FL2_OP_PRED];
#if HAS_TRUE
        const T_TRUE *yt = y_true + r * ld[FL2_OP_TRUE];
#endif
#if HAS_WEIGHTS
        const T_WEIGHTS *wr = w + r * ld[FL2_OP_WEIGHTS];
        double *sw = ws + lane, *ew = we + lane;
#endif
        for (int64_t c = 0; c < ncols; c++) {
#if HAS_WEIGHTS
            const double wk = (double)wr[c * w_step];
            if (!weights_only) {
#endif
#if HAS_TRUE
                const double d = (double)yp[c] - (double)yt[c];
#else
                const double d = (double)yp[c];
#endif
                const double l = fl2_loss_value(loss, d, param);
#if HAS_WEIGHTS
                const double wl = wk * l;
#else
                const double wl = l;
#endif
                ACCUMULATE(s, e, c, wl);
#if HAS_WEIGHTS
            }
            ACCUMULATE(sw, ew, c, wk);
#endif
        }
    }
    for (int64_t c = 0; c < ncols; c++) {
        double sum[LANES], err[LANES];
        for (int k = 0; k < LANES; k++) {
            sum[k] = ls[k * ncols + c];
            err[k] = le[k * ncols + c];
        }
        out[c].loss = FL2_CAT(BLOCK_FN, _lanes)(sum, err);
#if HAS_WEIGHTS
        for (int k = 0; k < LANES; k++) {
            sum[k] = ws[k * ncols + c];
            err[k] = we[k * ncols + c];
        }
        out[c].weights = FL2_CAT(BLOCK_FN, _lanes)(sum, err);
#else
        out[c].weights.hi = (double)nrows;
        out[c].weights.lo = 0.0;
#endif
    }
}

static void FL2_CAT(BLOCK_FN, _columns)(const fl2_problem *p, fl2_mode mode, int64_t nrows,
                                        int64_t ncols, const int64_t *ld, int64_t w_step,
                                        double *scratch, fl2_partial *out)
{
#define FL2_LOSS_BODY(loss) \
    FL2_CAT(BLOCK_FN, _columns_body)(p, nrows, ncols, ld, w_step, scratch, out, loss, 0)
    if (mode == FL2_MODE_WEIGHTS)
        FL2_CAT(BLOCK_FN, _columns_body)(p, nrows, ncols, ld, w_step, scratch, out, FL2_SQUARED, 1);
    else
        FL2_FOR_LOSS(p->loss)
#undef FL2_LOSS_BODY
}

/* Block sums of nrows outputs whose runs are rows: output r's run is the row_len (at most
 * FL2_BLOCK_SIZE) contiguous elements at y_pred + r * ld[FL2_OP_PRED] (y_true and weights
 * likewise; w_step 1 for weights per element, 0 for one per row).  Each row goes through
 * BODY_FN; the lane sums of FL2_ROWS_GROUP rows at a time are combined together by the tree
 * of _lanes (with vectors: by even/odd shuffles of the vectors the lanes lie in; without:
 * one row per lane of a transposed copy): the bits of BLOCK_FN on each row. */
#define FL2_ROWS_GROUP 8
/* Each chunk of a row prefetches its place FL2_ROWS_AHEAD rows ahead (rows of up to
 * FL2_ROWS_PREFETCH_MAX_BYTES): between groups the tree leaves the loads idle, and the
 * hardware prefetchers alone kept an axis=-1 pass of (10^5, 100) float32 at about 0.62x the
 * throughput of axis=None here (0.6x again without it today, 0.88-0.92x with it and the
 * rest of the rows kernel).  A prefetch never faults, even past the last row. */
#define FL2_ROWS_AHEAD 16
#define FL2_ROWS_PREFETCH_MAX_BYTES 2048
#if FL2_LANES != 16
#error "the rows kernel's tree has the levels of 16 lanes"
#endif
/* Pairs (2i, 2i+1) of the first m lanes to lane i, for every row of the group at once. */
FL2_INLINE void FL2_CAT(BLOCK_FN, _rows_level)(double hi[][FL2_ROWS_GROUP], double lo[][FL2_ROWS_GROUP],
                                               const int m)
{
    FL2_UNROLL
    for (int i = 0; i < m / 2; i++) {
        for (int j = 0; j < FL2_ROWS_GROUP; j++) {
            const double a = hi[2 * i][j], b = hi[2 * i + 1][j];
            const double s = a + b;
            const double bb = s - a;
            double e = (a - (s - bb)) + (b - bb);
            e += lo[2 * i][j] + lo[2 * i + 1][j];
            const double t = s + e;
            hi[i][j] = t;
            lo[i][j] = e - (t - s);
        }
    }
}
FL2_INLINE void FL2_CAT(BLOCK_FN, _rows_body)(const fl2_problem *p, int64_t nrows, int64_t row_len,
                                              const int64_t *ld, int64_t w_step, fl2_partial *out,
                                              const fl2_loss loss, const int weights_only)
{
    /* raw[j]: row j's lanes of each quantity (loss sums, loss errors, weight sums, weight
     * errors), as BODY_FN leaves them (those it can only leave at zero: not written) */
    double raw[FL2_ROWS_GROUP][4 * LANES];
    int64_t ahead[FL2_NOPS] = {0};
    for (int k = 0; k < FL2_OP_GRAD; k++) ahead[k] = FL2_ROWS_AHEAD * ld[k];
    ahead[FL2_OP_PRED] *= (int64_t)sizeof(T_PRED);
#if HAS_TRUE
    ahead[FL2_OP_TRUE] *= (int64_t)sizeof(T_TRUE);
#endif
#if HAS_WEIGHTS
    ahead[FL2_OP_WEIGHTS] *= (int64_t)sizeof(T_WEIGHTS);
#endif
    const int64_t *pf = row_len * (int64_t)sizeof(T_PRED) <= FL2_ROWS_PREFETCH_MAX_BYTES ? ahead : NULL;
    for (int64_t first = 0; first < nrows; first += FL2_ROWS_GROUP) {
        const int group = nrows - first < FL2_ROWS_GROUP ? (int)(nrows - first) : FL2_ROWS_GROUP;
        for (int j = 0; j < FL2_ROWS_GROUP; j++) {
            if (j < group) {
                const int64_t r = first + j;
                fl2_problem q = *p;
                q.y_pred = (const char *)p->y_pred + r * ld[FL2_OP_PRED] * (int64_t)sizeof(T_PRED);
#if HAS_TRUE
                q.y_true = (const char *)p->y_true + r * ld[FL2_OP_TRUE] * (int64_t)sizeof(T_TRUE);
#endif
#if HAS_WEIGHTS
                q.weights = (const char *)p->weights + r * ld[FL2_OP_WEIGHTS] * (int64_t)sizeof(T_WEIGHTS);
                q.weights_repeat = w_step ? 1 : row_len;
#endif
                BODY_FN(&q, NULL, 0, row_len, NULL, loss, 1, 0, 0, weights_only, raw[j], 1, pf);
            } else {
                memset(raw[j], 0, sizeof raw[j]);
            }
        }
#if FL2_VECTORS
        for (int h = 0; h < (HAS_WEIGHTS ? 4 : 2); h += 2) {
            /* The rows' lanes as they lie in raw, row after row: a level pairs the neighbours
             * (2i, 2i+1) of the whole sequence, which are lanes of one row, with the even and
             * odd lanes of two vectors; after the 4 levels of 16 lanes, lane j of the
             * sequence is row j's sum. */
            enum { NV = LANES / FL2_VWIDTH, NVEC = FL2_ROWS_GROUP * NV };
            fl2_vd hi[NVEC], lo[NVEC];
            FL2_UNROLL
            for (int v = 0; v < NVEC; v++) {
                hi[v] = FL2_VLOAD(&raw[v / NV][h * LANES + (v % NV) * FL2_VWIDTH]);
                lo[v] = COMPENSATED ? FL2_VLOAD(&raw[v / NV][(h + 1) * LANES + (v % NV) * FL2_VWIDTH])
                                    : fl2_vsplat(0.0);
            }
            FL2_UNROLL
            for (int m = NVEC; m > NVEC / LANES; m /= 2) {
                FL2_UNROLL
                for (int i = 0; i < m / 2; i++) {
                    const fl2_vd a = FL2_EVENS(hi[2 * i], hi[2 * i + 1]);
                    const fl2_vd b = FL2_ODDS(hi[2 * i], hi[2 * i + 1]);
                    const fl2_vd s = a + b;
                    const fl2_vd bb = s - a;
                    fl2_vd e = (a - (s - bb)) + (b - bb);
                    e += FL2_EVENS(lo[2 * i], lo[2 * i + 1]) + FL2_ODDS(lo[2 * i], lo[2 * i + 1]);
                    const fl2_vd t = s + e;
                    hi[i] = t;
                    lo[i] = e - (t - s);
                }
            }
            for (int j = 0; j < group; j++) {
                fl2_dd r = {hi[j / FL2_VWIDTH][j % FL2_VWIDTH], lo[j / FL2_VWIDTH][j % FL2_VWIDTH]};
                if (!(r.hi - r.hi == 0.0)) /* inf or nan on the way: the checked tree */
                    r = FL2_CAT(BLOCK_FN, _lanes)(raw[j] + h * LANES, raw[j] + (h + 1) * LANES);
                if (h == 0) out[first + j].loss = r;
                else out[first + j].weights = r;
            }
        }
#else
        for (int h = 0; h < (HAS_WEIGHTS ? 4 : 2); h += 2) {
            /* hi[k][j], lo[k][j]: lane k of row j */
            double hi[LANES][FL2_ROWS_GROUP], lo[LANES][FL2_ROWS_GROUP];
            for (int k = 0; k < LANES; k++)
                for (int j = 0; j < FL2_ROWS_GROUP; j++) {
                    hi[k][j] = raw[j][h * LANES + k];
                    lo[k][j] = COMPENSATED ? raw[j][(h + 1) * LANES + k] : 0.0;
                }
            /* one level of the tree per call, each with constant bounds (unrolled) */
            FL2_CAT(BLOCK_FN, _rows_level)(hi, lo, 16);
            FL2_CAT(BLOCK_FN, _rows_level)(hi, lo, 8);
            FL2_CAT(BLOCK_FN, _rows_level)(hi, lo, 4);
            FL2_CAT(BLOCK_FN, _rows_level)(hi, lo, 2);
            for (int j = 0; j < group; j++) {
                fl2_dd r = {hi[0][j], lo[0][j]};
                if (!(r.hi - r.hi == 0.0)) /* inf or nan on the way: the checked tree */
                    r = FL2_CAT(BLOCK_FN, _lanes)(raw[j] + h * LANES, raw[j] + (h + 1) * LANES);
                if (h == 0) out[first + j].loss = r;
                else out[first + j].weights = r;
            }
        }
#endif
        if (!HAS_WEIGHTS)
            for (int j = 0; j < group; j++) {
                out[first + j].weights.hi = (double)row_len;
                out[first + j].weights.lo = 0.0;
            }
    }
}

static void FL2_CAT(BLOCK_FN, _rows)(const fl2_problem *p, fl2_mode mode, int64_t nrows,
                                     int64_t row_len, const int64_t *ld, int64_t w_step,
                                     fl2_partial *out)
{
#define FL2_LOSS_BODY(loss) FL2_CAT(BLOCK_FN, _rows_body)(p, nrows, row_len, ld, w_step, out, loss, 0)
    if (mode == FL2_MODE_WEIGHTS)
        FL2_CAT(BLOCK_FN, _rows_body)(p, nrows, row_len, ld, w_step, out, FL2_SQUARED, 1);
    else
        FL2_FOR_LOSS(p->loss)
#undef FL2_LOSS_BODY
}

#undef LANES
#undef HAS_TRUE
#undef HAS_WEIGHTS
#undef COMPENSATED
#undef BODY_FN
#undef GRAD_VALUE
#undef FL2_STREAM_STORE
#undef ACCUMULATE
#undef VACCUMULATE
#undef VACCUMULATE_KEPT
#undef BLOCK_FN
#undef T_PRED
#ifdef T_TRUE
#undef T_TRUE
#endif
#ifdef T_WEIGHTS
#undef T_WEIGHTS
#endif
