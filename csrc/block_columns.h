/*
 * The columns kernel BLOCK_FN_columns: the partial sums of many outputs whose runs are
 * columns, read row by row.  A part of block_template.h, included by it once per dtype
 * combination with its macros defined.
 */

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
                const fl2_vd wk = w_step ? FL2_VLOAD(wr) : fl2_vsplat(FL2_GET(T_WEIGHTS, wr));
#endif
                if (!weights_only) {
                    fl2_vd de = fl2_vsplat(0.0);
#if HAS_TRUE
                    const fl2_vd yp = FL2_VLOAD(y_pred + r * ld[FL2_OP_PRED]);
                    const fl2_vd yt = FL2_VLOAD(y_true + r * ld[FL2_OP_TRUE]);
                    const fl2_vd d = COMPENSATED ? fl2_vdiff_err(yp, yt, &de) : FL2_VSUB_M(yp, yt);
#else
                    const fl2_vd d = FL2_VLOAD(y_pred + r * ld[FL2_OP_PRED]);
#endif
                    if (COMPENSATED) { /* (exact element terms: block_run.h) */
#if HAS_WEIGHTS
                        fl2_vd le;
                        fl2_vd l = fl2_loss_vvalue_err(loss, d, de, vparam, &le);
                        l = fl2_vweigh_err(wk, l, le, &le);
                        VACCUMULATE_E(vs[k], ve[k], l, le);
#else
                        fl2_vd x, y, a, b;
                        fl2_loss_vparts(loss, d, de, vparam, &x, &y, &a, &b);
                        VACCUMULATE_P(vs[k], ve[k], x, y, a, b);
#endif
                    } else {
                        fl2_vd l = fl2_loss_vvalue(loss, d, vparam);
#if HAS_WEIGHTS
                        l = wk * l;
#endif
                        VACCUMULATE(vs[k], ve[k], l);
                    }
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
            const double wk = FL2_GET(T_WEIGHTS, wr + c * w_step);
            if (!weights_only) {
#endif
                double de = 0.0;
#if HAS_TRUE
                const double a = FL2_GET(T_PRED, yp + c), b = FL2_GET(T_TRUE, yt + c);
                const double d = COMPENSATED ? fl2_diff_err(a, b, &de) : a - b;
#else
                const double d = FL2_GET(T_PRED, yp + c);
#endif
                if (COMPENSATED) {
#if HAS_WEIGHTS
                    double le;
                    double wl = fl2_loss_value_err(loss, d, de, param, &le);
                    wl = fl2_weigh_err(wk, wl, le, &le);
                    ACCUMULATE_E(s, e, c, wl, le);
#else
                    double x, y, a, b;
                    fl2_loss_parts(loss, d, de, param, &x, &y, &a, &b);
                    ACCUMULATE_P(s, e, c, x, y, a, b);
#endif
                } else {
                    const double l = fl2_loss_value(loss, d, param);
#if HAS_WEIGHTS
                    const double wl = wk * l;
#else
                    const double wl = l;
#endif
                    ACCUMULATE(s, e, c, wl);
                }
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
