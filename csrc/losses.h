/*
 * The losses: the C side of the declaration in src/fastl2/_losses.py (tests/test_losses.py
 * checks that the two lists agree).  Adding a loss here is one line in FL2_LOSSES and its eight
 * element functions below (value, value with its error, value in parts, derivative; scalar and
 * vector); the block kernels (block_template.h) specialise on each entry.
 *
 * This file is included twice on purpose: by fastl2.h for the list and the enum alone, and by
 * kernels.h after vectors.h, which adds the element functions (they need the vector types of
 * the instruction-set level being compiled).
 */
#ifndef FASTL2_LOSSES_LIST
#define FASTL2_LOSSES_LIST

/* X(NAME, name): the enum constant FL2_<NAME>, in the order of _losses.LOSSES (its code), and
 * the prefix of its element functions fl2_<name>_value / _derivative / _vvalue / _vderivative.
 * For a difference d = y_pred - y_true (float64) and the loss's parameter p (0 when it has
 * none): value l(d, p) >= 0 and derivative l'(d, p) with respect to y_pred. */
#define FL2_LOSSES(X)      \
    X(SQUARED, squared)    \
    X(ABSOLUTE, absolute)  \
    X(HUBER, huber)

#define FL2_LOSS_ENUM_(NAME, name) FL2_##NAME,
typedef enum { FL2_LOSSES(FL2_LOSS_ENUM_) FL2_NLOSSES } fl2_loss;
#undef FL2_LOSS_ENUM_

#endif /* FASTL2_LOSSES_LIST */

#if defined(FASTL2_VECTORS_H) && !defined(FASTL2_LOSSES_ELEMENTS)
#define FASTL2_LOSSES_ELEMENTS
/* Each element function is the same sequence of IEEE operations in its scalar and its vector
 * form (and in _losses.py's NumPy and Numba forms): every backend and SIMD level gives the
 * same bits. */

/* squared error: d * d, derivative d (the factor 2 is the loss's grad_scale) */
FL2_INLINE double fl2_squared_value(double d, double p) { (void)p; return d * d; }
FL2_INLINE double fl2_squared_derivative(double d, double p) { (void)p; return d; }

/* absolute error: |d|, derivative sign(d): 1, -1, or d * 0 (0 for zeros, nan for nan) */
FL2_INLINE double fl2_absolute_value(double d, double p) { (void)p; return fabs(d); }
FL2_INLINE double fl2_absolute_derivative(double d, double p)
{
    (void)p;
    return d > 0 ? 1.0 : d < 0 ? -1.0 : d * 0.0;
}

/* Huber, parameter p = delta > 0: a * a / 2 for a = |d| < delta, else delta * (a - delta / 2);
 * derivative clip(d, -delta, delta) (nan stays nan) */
FL2_INLINE double fl2_huber_value(double d, double p)
{
    const double a = fabs(d);
    return a < p ? 0.5 * a * a : p * (a - 0.5 * p);
}
FL2_INLINE double fl2_huber_derivative(double d, double p) { return d < -p ? -p : d > p ? p : d; }

#if FL2_VECTORS
FL2_INLINE fl2_vd fl2_squared_vvalue(fl2_vd d, fl2_vd p) { (void)p; return d * d; }
FL2_INLINE fl2_vd fl2_squared_vderivative(fl2_vd d, fl2_vd p) { (void)p; return d; }
FL2_INLINE fl2_vd fl2_absolute_vvalue(fl2_vd d, fl2_vd p) { (void)p; return fl2_vabs(d); }
FL2_INLINE fl2_vd fl2_absolute_vderivative(fl2_vd d, fl2_vd p) { (void)p; return fl2_vsign(d); }
FL2_INLINE fl2_vd fl2_huber_vvalue(fl2_vd d, fl2_vd p)
{
    const fl2_vd a = fl2_vabs(d);
    return fl2_vselect(a < p, 0.5 * a * a, p * (a - 0.5 * p));
}
FL2_INLINE fl2_vd fl2_huber_vderivative(fl2_vd d, fl2_vd p)
{
    return fl2_vselect(d < -p, -p, fl2_vselect(d > p, p, d));
}
#endif

/* ---- exact element terms (the float64 kernels: correct rounding, src/fastl2/_exact.py) ----
 * For the float64 difference d and its rounding error de (d + de is y_pred - y_true exactly),
 * value_err returns the loss value l(d) as value does and sets *e so that l(d) + *e is
 * l(d + de) within 16 u**2 of it (u = 2**-53; barring underflow: an absolute 2**-1072 at the
 * most): Knuth's TwoSum and fma's exact product errors (Ogita, Rump and Oishi, "Accurate sum
 * and dot product", SIAM J. Sci. Comput. 26 (2005)). */

/* d + *de == a - b exactly (Knuth's TwoSum of a and -b, its last step negated); d is a - b
 * rounded. */
FL2_INLINE double fl2_diff_err(double a, double b, double *de)
{
    const double d = a - b, z = d - a;
    *de = (a - (d - z)) - (b + z);
    return d;
}
/* (d + de)**2 = d*d + fma(d, d, -d*d) + 2 d de + de**2: the last term dropped (u**2 d**2) */
FL2_INLINE double fl2_squared_value_err(double d, double de, double p, double *e)
{
    (void)p;
    const double l = d * d;
    *e = fl2_fma(2.0 * d, de, fl2_fma(d, d, -l));
    return l;
}
/* |d + de| = |d| + sign(d) de, exactly (de = 0 where d = 0) */
FL2_INLINE double fl2_absolute_value_err(double d, double de, double p, double *e)
{
    (void)p;
    *e = signbit(d) ? -de : de;
    return fabs(d);
}
/* With a = |d|, ae its error and m = min(a, delta), Huber's value is m (a - m / 2) in both
 * branches (fl2_huber_value's bits: (0.5 a) a = a (a - 0.5 a)).  s + se == a - 0.5 m exactly
 * (Dekker's Fast2Sum: a >= 0.5 m), l = m s, its error fma(m, se + ae, m s - l).  Where a and
 * a + ae lie on either side of delta, the branches differ by 0.5 (a + ae - delta)**2 <=
 * 0.5 ae**2. */
FL2_INLINE double fl2_huber_value_err(double d, double de, double p, double *e)
{
    const double a = fabs(d), ae = signbit(d) ? -de : de, m = a < p ? a : p;
    const double h = 0.5 * m, s = a - h, se = (a - s) - h, l = m * s;
    *e = fl2_fma(m, se + ae, fl2_fma(m, s, -l));
    return l;
}
/* w * (l + le) = x + *xe, x = w * l rounded (w * le's rounding: u**2 of it) */
FL2_INLINE double fl2_weigh_err(double w, double l, double le, double *xe)
{
    const double x = w * l;
    *xe = fl2_fma(w, le, fl2_fma(w, l, -x));
    return x;
}
#if FL2_VECTORS
FL2_INLINE fl2_vd fl2_vdiff_err(fl2_vd a, fl2_vd b, fl2_vd *de)
{
    const fl2_vd d = a - b, z = d - a;
    *de = (a - (d - z)) - (b + z);
    return d;
}
/* de with d's sign bit flipped into it: signbit(d) ? -de : de */
FL2_INLINE fl2_vd fl2_vsign_of(fl2_vd d, fl2_vd de)
{
    return (fl2_vd)((fl2_vbits)de ^ ((fl2_vbits)d & (fl2_vbits)fl2_vsplat(-0.0)));
}
FL2_INLINE fl2_vd fl2_squared_vvalue_err(fl2_vd d, fl2_vd de, fl2_vd p, fl2_vd *e)
{
    (void)p;
    const fl2_vd l = d * d;
    *e = fl2_vfma(2.0 * d, de, fl2_vfma(d, d, -l));
    return l;
}
FL2_INLINE fl2_vd fl2_absolute_vvalue_err(fl2_vd d, fl2_vd de, fl2_vd p, fl2_vd *e)
{
    (void)p;
    *e = fl2_vsign_of(d, de);
    return fl2_vabs(d);
}
FL2_INLINE fl2_vd fl2_huber_vvalue_err(fl2_vd d, fl2_vd de, fl2_vd p, fl2_vd *e)
{
    const fl2_vd a = fl2_vabs(d), ae = fl2_vsign_of(d, de), m = fl2_vmin(a, p);
    const fl2_vd h = 0.5 * m, s = a - h, se = FL2_VSUB_M(a, s) - h, l = m * s;
    *e = fl2_vfma(m, FL2_VADD_M(se, ae), fl2_vfma(m, s, -l));
    return l;
}
FL2_INLINE fl2_vd fl2_vweigh_err(fl2_vd w, fl2_vd l, fl2_vd le, fl2_vd *xe)
{
    const fl2_vd x = w * l;
    *xe = fl2_vfma(w, le, fl2_vfma(w, l, -x));
    return x;
}
#endif
/* ---- the exact element term in parts (the unweighted float64 sums) ----
 * l(d + de) = X*Y + A*B, within value_err's 16 u**2: X*Y rounded is value's l, and value_err's
 * *e is fma(A, B, fma(X, Y, -l)).  The unweighted sums (block_template.h, ACCUMULATE_P) take
 * the term in this form: fma(X, Y, -z) there is the product's error and the lane addition's in
 * one rounding. */
FL2_INLINE void fl2_squared_parts(double d, double de, double p, double *x, double *y, double *a,
                                  double *b)
{
    (void)p;
    *x = *y = d;
    *a = d + d;
    *b = de;
}
FL2_INLINE void fl2_absolute_parts(double d, double de, double p, double *x, double *y, double *a,
                                   double *b)
{
    (void)p;
    *x = fabs(d);
    *y = *a = 1.0;
    *b = signbit(d) ? -de : de;
}
FL2_INLINE void fl2_huber_parts(double d, double de, double p, double *x, double *y, double *a,
                                double *b)
{
    const double ab = fabs(d), ae = signbit(d) ? -de : de, m = ab < p ? ab : p;
    const double h = 0.5 * m, s = ab - h, se = (ab - s) - h;
    *x = *a = m;
    *y = s;
    *b = se + ae;
}
#if FL2_VECTORS
FL2_INLINE void fl2_squared_vparts(fl2_vd d, fl2_vd de, fl2_vd p, fl2_vd *x, fl2_vd *y, fl2_vd *a,
                                   fl2_vd *b)
{
    (void)p;
    *x = *y = d;
    *a = d + d;
    *b = de;
}
FL2_INLINE void fl2_absolute_vparts(fl2_vd d, fl2_vd de, fl2_vd p, fl2_vd *x, fl2_vd *y,
                                    fl2_vd *a, fl2_vd *b)
{
    (void)p;
    *x = fl2_vabs(d);
    *y = *a = fl2_vsplat(1.0);
    *b = fl2_vsign_of(d, de);
}
FL2_INLINE void fl2_huber_vparts(fl2_vd d, fl2_vd de, fl2_vd p, fl2_vd *x, fl2_vd *y, fl2_vd *a,
                                 fl2_vd *b)
{
    const fl2_vd ab = fl2_vabs(d), ae = fl2_vsign_of(d, de), m = fl2_vmin(ab, p);
    const fl2_vd h = 0.5 * m, s = ab - h, se = (ab - s) - h;
    *x = *a = m;
    *y = s;
    *b = se + ae;
}
#endif
#define FL2_LOSS_PARTS_(NAME, name) case FL2_##NAME: fl2_##name##_parts(d, de, p, x, y, a, b); return;
FL2_INLINE void fl2_loss_parts(fl2_loss loss, double d, double de, double p, double *x, double *y,
                               double *a, double *b)
{
    switch (loss) { FL2_LOSSES(FL2_LOSS_PARTS_) default: *x = *y = *a = *b = 0.0; return; }
}
#undef FL2_LOSS_PARTS_
#if FL2_VECTORS
#define FL2_LOSS_VPARTS_(NAME, name) case FL2_##NAME: fl2_##name##_vparts(d, de, p, x, y, a, b); return;
FL2_INLINE void fl2_loss_vparts(fl2_loss loss, fl2_vd d, fl2_vd de, fl2_vd p, fl2_vd *x, fl2_vd *y,
                                fl2_vd *a, fl2_vd *b)
{
    switch (loss) { FL2_LOSSES(FL2_LOSS_VPARTS_) default: *x = *y = *a = *b = d; return; }
}
#undef FL2_LOSS_VPARTS_
#endif
#define FL2_LOSS_VALUE_ERR_(NAME, name) case FL2_##NAME: return fl2_##name##_value_err(d, de, p, e);
FL2_INLINE double fl2_loss_value_err(fl2_loss loss, double d, double de, double p, double *e)
{
    switch (loss) { FL2_LOSSES(FL2_LOSS_VALUE_ERR_) default: *e = 0.0; return 0.0; }
}
#undef FL2_LOSS_VALUE_ERR_
#if FL2_VECTORS
#define FL2_LOSS_VVALUE_ERR_(NAME, name) case FL2_##NAME: return fl2_##name##_vvalue_err(d, de, p, e);
FL2_INLINE fl2_vd fl2_loss_vvalue_err(fl2_loss loss, fl2_vd d, fl2_vd de, fl2_vd p, fl2_vd *e)
{
    switch (loss) { FL2_LOSSES(FL2_LOSS_VVALUE_ERR_) default: *e = d; return d; }
}
#undef FL2_LOSS_VVALUE_ERR_
#endif

/* The element functions of a loss given as a constant: each block kernel is specialised per
 * loss, so the switch is resolved at compile time and leaves one loop per loss. */
#define FL2_LOSS_CASE_(NAME, name, fn) case FL2_##NAME: return fl2_##name##_##fn(d, p);
#define FL2_LOSS_VALUE_(NAME, name) FL2_LOSS_CASE_(NAME, name, value)
#define FL2_LOSS_DERIVATIVE_(NAME, name) FL2_LOSS_CASE_(NAME, name, derivative)
FL2_INLINE double fl2_loss_value(fl2_loss loss, double d, double p)
{
    switch (loss) { FL2_LOSSES(FL2_LOSS_VALUE_) default: return 0.0; }
}
FL2_INLINE double fl2_loss_derivative(fl2_loss loss, double d, double p)
{
    switch (loss) { FL2_LOSSES(FL2_LOSS_DERIVATIVE_) default: return 0.0; }
}
#if FL2_VECTORS
#define FL2_LOSS_VVALUE_(NAME, name) FL2_LOSS_CASE_(NAME, name, vvalue)
#define FL2_LOSS_VDERIVATIVE_(NAME, name) FL2_LOSS_CASE_(NAME, name, vderivative)
FL2_INLINE fl2_vd fl2_loss_vvalue(fl2_loss loss, fl2_vd d, fl2_vd p)
{
    switch (loss) { FL2_LOSSES(FL2_LOSS_VVALUE_) default: return d; }
}
FL2_INLINE fl2_vd fl2_loss_vderivative(fl2_loss loss, fl2_vd d, fl2_vd p)
{
    switch (loss) { FL2_LOSSES(FL2_LOSS_VDERIVATIVE_) default: return d; }
}
#undef FL2_LOSS_VVALUE_
#undef FL2_LOSS_VDERIVATIVE_
#endif
#undef FL2_LOSS_CASE_
#undef FL2_LOSS_VALUE_
#undef FL2_LOSS_DERIVATIVE_

/* Calls BODY(loss) with the loss as a compile-time constant: one specialisation per loss. */
#define FL2_LOSS_DISPATCH_CASE_(NAME, name) case FL2_##NAME: FL2_LOSS_BODY(FL2_##NAME); break;
#define FL2_FOR_LOSS(loss) switch (loss) { FL2_LOSSES(FL2_LOSS_DISPATCH_CASE_) default: break; }

#endif /* FASTL2_LOSSES_ELEMENTS */
