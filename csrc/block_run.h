/*
 * The 1-d block kernel BLOCK_FN: the elements start..end of one run (the whole array, or
 * one output's run of the strided walk), its partial sums, gradient and elementwise losses.
 * A part of block_template.h, included by it once per dtype combination with its macros
 * (T_PRED, T_TRUE, T_WEIGHTS, COMPENSATED, BODY_FN, ACCUMULATE, ...) defined.
 */

FL2_INLINE void BODY_FN(const fl2_problem *p, const fl2_outputs *o, int64_t start, int64_t end,
                        fl2_partial *out, const fl2_loss loss, const int want_sums,
                        const int want_grad, const int want_elem, const int weights_only,
                        double *raw, const int step, const int64_t *ahead, const int half_c,
                        const int stream_c)
{
    typedef T_PRED pred_t;
#if COMPENSATED
#define T_RESULT double
#else
#define T_RESULT float
#endif
    typedef T_RESULT result_t;
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
    /* A half-precision gradient (internal.h), or a float32 or float64 one on its way to a
     * float16 or bfloat16 array (fastl2.c, strided.c: the blocks of a converted call): the
     * quotient in two parts, and a float32 one rounded to odd (vectors.h), so that its
     * rounding to the half is the only one. */
    const int half_bound = want_grad && half_c == 1; /* (BLOCK_FN: sizeof(pred_t) == 2 || o->grad_half) */
    const int odd = sizeof(pred_t) == sizeof(float) && half_bound;
    double tail_q = quotient, tail_lo = 0.0;
    const int tail = half_bound && fl2_quotient_tail(scale, divisor, quotient, &tail_q, &tail_lo);
    (void)tail;
    /* Streaming stores write large gradients without first reading their lines in (float32
     * and float64 ones: a half-precision gradient is stored as it is converted).  half_c (1: a
     * half-precision gradient; 2: a float64 one bound for float32, o->grad_plain) and stream_c
     * are constants where BLOCK_FN calls (it tells the cases apart, so that each is a loop of
     * its own, without a branch per vector on them). */
    const int stream = want_grad && !weights_only && !half_bound && stream_c;
    const double param = p->loss_param;
    /* A float64 gradient is the exact one within an ulp (losses.h fl2_grad_exact), from the
     * difference's rounding error (exact_grad, a constant of each specialisation); but one on
     * its way to a float32 array (fastl2.c, strided.c: grad_plain, half_c 2) is
     * (scale * g) / divisor, as the float32 kernels' quotient * g. */
    const int exact_grad = COMPENSATED && want_grad && !weights_only && sizeof(pred_t) == sizeof(double) && !half_c;
    const double divisor_lo = exact_grad ? o->grad_divisor_lo : 0.0;
    const double inverse = exact_grad ? fl2_grad_inverse(divisor) : 0.0;
    const int simple_grad = exact_grad && divisor_lo == 0.0 && (scale == 1.0 || scale == 2.0);
    (void)simple_grad;
    (void)quotient; (void)divisor; (void)param; (void)exact_grad; (void)divisor_lo; (void)inverse;

#if FL2_VECTORS
    double loss_sum[LANES], loss_err[LANES]; /* (the vector lanes are copied in) */
    double w_sum[LANES], w_err[LANES];
#else
    double loss_sum[LANES] = {0}, loss_err[LANES] = {0};
    double w_sum[LANES] = {0}, w_err[LANES] = {0};
#endif
    (void)loss_err; (void)w_sum; (void)w_err;

    /* A float64 kernel's sums take each term's exact error too (losses.h, "exact element
     * terms"); EXACT is a constant of each specialisation. */
    const int EXACT = COMPENSATED && want_sums && !weights_only;
    (void)EXACT;
    const int DIFF_EXACT = EXACT || exact_grad; /* (the difference's error: for either) */
    (void)DIFF_EXACT;

    /* One element: its difference d (de: its rounding error, where DIFF_EXACT), weight wk, going
     * to lane k; its gradient to gout. */
#define ELEMENT(i, k, d, de, wk, gout)                                               \
    do {                                                                             \
        if (!weights_only) {                                                         \
            double l_, wl_, le_ = 0.0;                                               \
            if (EXACT && !HAS_WEIGHTS) {                                             \
                double x_, y_, a_, b_;                                               \
                fl2_loss_parts(loss, d, de, param, &x_, &y_, &a_, &b_);              \
                wl_ = x_ * y_;                                                       \
                ACCUMULATE_P(loss_sum, loss_err, k, x_, y_, a_, b_);                 \
                (void)l_; (void)le_;                                                 \
            } else if (EXACT) {                                                      \
                l_ = fl2_loss_value_err(loss, d, de, param, &le_);                   \
                wl_ = HAS_WEIGHTS ? fl2_weigh_err((wk), l_, le_, &le_) : l_;         \
                ACCUMULATE_E(loss_sum, loss_err, k, wl_, le_);                       \
            } else {                                                                 \
                l_ = fl2_loss_value(loss, d, param);                                 \
                wl_ = HAS_WEIGHTS ? (wk) * l_ : l_;                                  \
                if (want_sums) ACCUMULATE(loss_sum, loss_err, k, wl_);               \
            }                                                                        \
            if (want_elem) FL2_PUT(T_RESULT, elem + (i), wl_);                       \
            if (want_grad) {                                                         \
                double g_ = fl2_loss_derivative(loss, d, param);                     \
                if (exact_grad) {                                                    \
                    double x_ = g_, xe_ = fl2_loss_derivative_err(loss, d, de, param); \
                    if (HAS_WEIGHTS) x_ = fl2_weigh_err((wk), g_, xe_, &xe_);         \
                    FL2_PUT(T_PRED, gout, fl2_grad_exact(x_, xe_, scale, divisor, divisor_lo, inverse)); \
                } else if (odd)                                                      \
                    fl2_put_float_odd(gout, GRAD_VALUE(HAS_WEIGHTS ? (wk) * g_ : g_)); \
                else                                                                 \
                    FL2_PUT(T_PRED, gout, GRAD_VALUE(HAS_WEIGHTS ? (wk) * g_ : g_)); \
            }                                                                        \
        }                                                                            \
        if (HAS_WEIGHTS && want_sums) ACCUMULATE(w_sum, w_err, k, wk);     \
    } while (0)

    /* Inputs are read `step` (1, or 2 for a[::2] views: a constant) elements apart; the
     * outputs are contiguous. */
    /* (a - b, and where DIFF_EXACT its error in *de; de is left alone elsewhere) */
#define SUB_E(a, b, de) (DIFF_EXACT ? fl2_diff_err((a), (b), (de)) : (a) - (b))
/* (the plain difference on the multiply-add units, FL2_VSUB_M: a float32 pass in cache is
 * bound by the units that add and convert, which the two conversions per element keep busy;
 * measured: 1.2-1.3x the speed at 10**5-10**6 float32 elements, README "In cache") */
#define VSUB_E(a, b, de) (DIFF_EXACT ? fl2_vdiff_err((a), (b), (de)) : FL2_VSUB_M((a), (b)))
#if HAS_TRUE
#define DIFF(i, de) SUB_E(FL2_GET(T_PRED, y_pred + step * (i)), FL2_GET(T_TRUE, y_true + step * (i)), (de))
#define VDIFF(i, de) VSUB_E(FL2_VLOAD_STEP(y_pred + step * (i), step), FL2_VLOAD_STEP(y_true + step * (i), step), (de))
#else
#define DIFF(i, de) FL2_GET(T_PRED, y_pred + step * (i))
#define VDIFF(i, de) FL2_VLOAD_STEP(y_pred + step * (i), step)
#endif

    int64_t i = start;
#if FL2_VECTORS
    {
        /* The same per-lane operations as ELEMENT, a chunk of LANES (NV vectors) at a time. */
        enum { NV = LANES / FL2_VWIDTH };
        const fl2_vd vparam = fl2_vsplat(param);
        const fl2_vd vscale = fl2_vsplat(scale), vdivisor = fl2_vsplat(divisor);
        const fl2_vd vdivisor_lo = fl2_vsplat(divisor_lo), vinverse = fl2_vsplat(inverse);
        (void)vscale; (void)vdivisor; (void)vdivisor_lo; (void)vinverse;
        fl2_vd v_loss[NV], v_loss_err[NV], v_w[NV], v_w_err[NV];
        for (int h = 0; h < NV; h++) v_loss[h] = v_loss_err[h] = v_w[h] = v_w_err[h] = fl2_vsplat(0.0);
        pred_t chunk_grad[LANES]; /* a chunk's gradient, when it is streamed */
        memset(chunk_grad, 0, sizeof chunk_grad); /* (once a block: what compilers can follow) */
#if !HAS_WEIGHTS
        if (EXACT && !want_grad && !want_elem && !ahead) {
            /* The unweighted float64 sums, STRETCH chunks at a time by VACCUMULATE_P_FAST
             * (block_template.h), three operations an element fewer: exact where each lane's
             * sum is at least each of its terms, or 0.  A term l > s > 0 makes the lane's sum
             * at least 2 s (it only grows), so a stretch whose lanes all end below twice
             * where they began, or at 0, was exact throughout: the bits of VACCUMULATE_P.
             * The other stretches (one that doubles a sum, one with a nan or an infinity)
             * are done again from their start by VACCUMULATE_P; a run's first two, where the
             * sums double, by VACCUMULATE_P alone. */
            enum { STRETCH = 16 };
            while (i + STRETCH * LANES + (step == 2) <= end) {
                fl2_vd s0[NV], e0[NV];
                for (int h = 0; h < NV; h++) { s0[h] = v_loss[h]; e0[h] = v_loss_err[h]; }
#if HAS_TRUE
#define FL2_STRETCH_TRUE(at) fl2_prefetch(y_true + (at), FL2_PREFETCH_AHEAD, LANES * (int64_t)sizeof(T_TRUE))
#else
#define FL2_STRETCH_TRUE(at) ((void)0)
#endif
#define FL2_STRETCH(ACC)                                                                   \
    for (int64_t c_ = 0; c_ < STRETCH; c_++) {                                             \
        const int64_t at_ = i + c_ * LANES;                                                \
        if (step == 1) {                                                                   \
            fl2_prefetch(y_pred + at_, FL2_PREFETCH_AHEAD, LANES * (int64_t)sizeof(pred_t)); \
            FL2_STRETCH_TRUE(at_);                                                         \
        }                                                                                  \
        for (int h = 0; h < NV; h++) {                                                     \
            fl2_vd de_ = fl2_vsplat(0.0), x_, y_, a_, b_;                                  \
            const fl2_vd d_ = VDIFF(at_ + h * FL2_VWIDTH, &de_);                           \
            fl2_loss_vparts(loss, d_, de_, vparam, &x_, &y_, &a_, &b_);                     \
            ACC(v_loss[h], v_loss_err[h], x_, y_, a_, b_);                                 \
        }                                                                                  \
    }
                int redo = 1;
                if (i - start >= 2 * STRETCH * LANES) { /* (a run's first two: VACCUMULATE_P) */
                    FL2_STRETCH(VACCUMULATE_P_FAST)
                    fl2_vbits fine = (v_loss[0] < 2.0 * s0[0]) | (v_loss[0] == 0.0);
                    for (int h = 1; h < NV; h++)
                        fine &= (v_loss[h] < 2.0 * s0[h]) | (v_loss[h] == 0.0);
                    redo = fl2_vany(~fine);
                }
                if (redo) {
                    for (int h = 0; h < NV; h++) { v_loss[h] = s0[h]; v_loss_err[h] = e0[h]; }
                    FL2_STRETCH(VACCUMULATE_P)
                }
#undef FL2_STRETCH
#undef FL2_STRETCH_TRUE
                i += STRETCH * LANES;
            }
        }
#endif
        /* (the step-2 loads read one element past their last: never past the block's) */
        for (; i + LANES + (step == 2) <= end; i += LANES) {
            fl2_vd d[NV], wv[NV], de[NV];
            for (int h = 0; h < NV; h++) de[h] = fl2_vsplat(0.0);

            if (!ahead && step == 1) { /* the chunk FL2_PREFETCH_AHEAD bytes on (internal.h) */
                if (!weights_only) { /* (a weight sum reads the weights alone) */
                    fl2_prefetch(y_pred + i, FL2_PREFETCH_AHEAD, LANES * (int64_t)sizeof(pred_t));
#if HAS_TRUE
                    fl2_prefetch(y_true + i, FL2_PREFETCH_AHEAD, LANES * (int64_t)sizeof(T_TRUE));
#endif
                }
#if HAS_WEIGHTS
                if (repeat == 1) fl2_prefetch(w + i, FL2_PREFETCH_AHEAD, LANES * (int64_t)sizeof(T_WEIGHTS));
#endif
            }
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
            for (int h = 0; h < NV; h++) wv[h] = fl2_vsplat(1.0);
            if (weights_only) {
                for (int h = 0; h < NV; h++) d[h] = fl2_vsplat(0.0);
            } else if (step == 1) { /* (vectors two by two: FL2_VLOAD_TWO; NV is even) */
                for (int h = 0; h < NV; h += 2) {
                    FL2_VLOAD_TWO(y_pred + i + h * FL2_VWIDTH, &d[h], &d[h + 1]);
#if HAS_TRUE
                    fl2_vd t0, t1;
                    FL2_VLOAD_TWO(y_true + i + h * FL2_VWIDTH, &t0, &t1);
                    d[h] = VSUB_E(d[h], t0, &de[h]);
                    d[h + 1] = VSUB_E(d[h + 1], t1, &de[h + 1]);
#endif
                }
            } else {
                for (int h = 0; h < NV; h++) d[h] = VDIFF(i + h * FL2_VWIDTH, &de[h]);
            }
#if HAS_WEIGHTS
            if (repeat == 1 && step == 1) {
                for (int h = 0; h < NV; h += 2) FL2_VLOAD_TWO(w + i + h * FL2_VWIDTH, &wv[h], &wv[h + 1]);
            } else if (repeat == 1) {
                for (int h = 0; h < NV; h++) wv[h] = FL2_VLOAD_STEP(w + step * (i + h * FL2_VWIDTH), step);
            } else if (i + LANES <= row_end) {
                for (int h = 0; h < NV; h++) wv[h] = fl2_vsplat(FL2_GET(T_WEIGHTS, w + row));
            } else {
                for (int k = 0; k < LANES; k++) {
                    while (i + k >= row_end) { row++; row_end += repeat; }
                    wv[k / FL2_VWIDTH][k % FL2_VWIDTH] = FL2_GET(T_WEIGHTS, w + row);
                }
            }
#endif
            for (int h = 0; h < NV; h++) {
                const int64_t at = i + h * FL2_VWIDTH;
                if (!weights_only) {
                    fl2_vd l;
                    if (EXACT) {
#if HAS_WEIGHTS
                        fl2_vd le;
                        l = fl2_loss_vvalue_err(loss, d[h], de[h], vparam, &le);
                        l = fl2_vweigh_err(wv[h], l, le, &le);
                        VACCUMULATE_E(v_loss[h], v_loss_err[h], l, le);
#else
                        fl2_vd x, y, a, b;
                        fl2_loss_vparts(loss, d[h], de[h], vparam, &x, &y, &a, &b);
                        l = x * y;
                        VACCUMULATE_P(v_loss[h], v_loss_err[h], x, y, a, b);
#endif
                    } else {
                        l = fl2_loss_vvalue(loss, d[h], vparam);
                        if (HAS_WEIGHTS) l = wv[h] * l;
                        if (want_sums) VACCUMULATE(v_loss[h], v_loss_err[h], l);
                    }
                    if (want_elem) FL2_VSTORE(elem + at, l);
                    if (want_grad) {
                        fl2_vd g = fl2_loss_vderivative(loss, d[h], vparam);
                        if (exact_grad) {
                            fl2_vd ge = fl2_loss_vderivative_err(loss, d[h], de[h], vparam);
                            if (HAS_WEIGHTS) g = fl2_vweigh_err(wv[h], g, ge, &ge);
                            g = fl2_vgrad_exact(g, ge, vscale, vdivisor, vdivisor_lo, vinverse,
                                                scale, divisor, divisor_lo, inverse, simple_grad);
                        } else {
                            if (HAS_WEIGHTS) g = wv[h] * g;
                            g = tail ? fl2_vmul_tail(g, tail_q, tail_lo)
                                : sizeof(pred_t) == sizeof(double) && !half_bound ? (scale * g) / divisor
                                                                                  : quotient * g;
                        }
                        if (odd)
                            fl2_vstore_f32_odd((float *)(void *)(grad + at), g);
                        else
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
                wv = repeat == 1 ? FL2_VLOADN(w + at, count) : fl2_vsplat(FL2_GET(T_WEIGHTS, w + row));
#endif
                if (!weights_only) {
                    fl2_vd de = fl2_vsplat(0.0);
#if HAS_TRUE
                    const fl2_vd d = VSUB_E(FL2_VLOADN(y_pred + at, count), FL2_VLOADN(y_true + at, count), &de);
#else
                    const fl2_vd d = FL2_VLOADN(y_pred + at, count);
#endif
                    if (EXACT) {
                        fl2_vd s_ = v_loss[h], e_ = v_loss_err[h];
#if HAS_WEIGHTS
                        fl2_vd le, l = fl2_loss_vvalue_err(loss, d, de, vparam, &le);
                        l = fl2_vweigh_err(wv, l, le, &le);
                        VACCUMULATE_E(s_, e_, l, le);
#else
                        fl2_vd x, y, a, b;
                        fl2_loss_vparts(loss, d, de, vparam, &x, &y, &a, &b);
                        VACCUMULATE_P(s_, e_, x, y, a, b);
#endif
                        v_loss[h] = fl2_vselect(keep, s_, v_loss[h]);
                        v_loss_err[h] = fl2_vselect(keep, e_, v_loss_err[h]);
                    } else {
                        fl2_vd l = fl2_loss_vvalue(loss, d, vparam);
                        if (HAS_WEIGHTS) l = wv * l;
                        VACCUMULATE_KEPT(v_loss[h], v_loss_err[h], l, keep);
                    }
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
        double d[LANES], de[LANES] = {0}, wk[LANES];
        /* All reads of the chunk come before its writes: the gradient may alias y_pred. */
        if (!weights_only)
            for (int k = 0; k < LANES; k++) d[k] = DIFF(i + k, &de[k]);
#if HAS_WEIGHTS
        if (repeat == 1) {
            for (int k = 0; k < LANES; k++) wk[k] = FL2_GET(T_WEIGHTS, w + step * (i + k));
        } else if (i + LANES <= row_end) {
            double wr = FL2_GET(T_WEIGHTS, w + row);
            for (int k = 0; k < LANES; k++) wk[k] = wr;
        } else {
            for (int k = 0; k < LANES; k++) {
                while (i + k >= row_end) { row++; row_end += repeat; }
                wk[k] = FL2_GET(T_WEIGHTS, w + row);
            }
        }
#else
        for (int k = 0; k < LANES; k++) wk[k] = 1.0;
#endif
        pred_t g[LANES];
        for (int k = 0; k < LANES; k++) ELEMENT(i + k, k, d[k], de[k], wk[k], &g[k]);
        if (want_grad) {
            if (stream)
                FL2_STREAM_STORE(grad + i, g, LANES);
            else
                memcpy(grad + i, g, sizeof g);
        }
    }
#endif
    for (int k = 0; i < end; i++, k++) {
        double dek = 0.0, dk = weights_only ? 0.0 : DIFF(i, &dek), wk = 1.0;
#if HAS_WEIGHTS
        if (repeat == 1) {
            wk = FL2_GET(T_WEIGHTS, w + step * i);
        } else {
            while (i >= row_end) { row++; row_end += repeat; }
            wk = FL2_GET(T_WEIGHTS, w + row);
        }
#endif
        ELEMENT(i, k, dk, dek, wk, grad + i);
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
#undef T_RESULT
#undef DIFF
#undef VDIFF
#undef SUB_E
#undef VSUB_E
}

#if FL2_KERNEL_PART == FL2_PART_RUN /* (the rows part includes this file for BODY_FN alone) */
static void BLOCK_FN(const fl2_problem *p, const fl2_outputs *o, fl2_mode mode, int64_t start,
                     int64_t end, fl2_partial *out)
{
    /* Constant flags (and loss, by FL2_FOR_LOSS) make each call below its own loop without
     * per-element branches. */
#define BODY(loss, sums, grad, elem, wonly, step, half_c, stream_c) \
    BODY_FN(p, o, start, end, out, loss, sums, grad, elem, wonly, NULL, step, NULL, half_c, stream_c)
#define RUN(loss, sums, g_, elem, wonly, step)                                               \
    do {                                                                                   \
        if (!(g_))                                                                         \
            BODY(loss, sums, 0, elem, wonly, step, 0, 0);                                  \
        else if (sizeof(T_PRED) == 2 || o->grad_half)                                      \
            BODY(loss, sums, 1, elem, wonly, step, 1, 0);                                  \
        else if (sizeof(T_PRED) == sizeof(double) && o->grad_plain)                        \
            BODY(loss, sums, 1, elem, wonly, step, 2, 0);                                  \
        else if (!(wonly) && o->stream && fl2_stream_aligned(o->grad))                     \
            BODY(loss, sums, 1, elem, wonly, step, 0, 1);                                  \
        else                                                                               \
            BODY(loss, sums, 1, elem, wonly, step, 0, 0);                                  \
    } while (0)
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
#undef BODY
}
#endif
