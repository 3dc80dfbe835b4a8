/*
 * The rows kernel BLOCK_FN_rows: the partial sums of many outputs whose runs are short rows.
 * A part of block_template.h, included by it once per dtype combination with its macros
 * defined.
 */

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
                BODY_FN(&q, NULL, 0, row_len, NULL, loss, 1, 0, 0, weights_only, raw[j], 1, pf, 0, 0);
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
