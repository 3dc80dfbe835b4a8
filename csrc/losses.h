/*
 * The losses: the C side of the declaration in src/fastl2/_losses.py (tests/test_losses.py
 * checks that the two lists agree).  Adding a loss here is one line in FL2_LOSSES and its ten
 * element functions below (value, value with its error, value in parts, derivative, the
 * derivative's error; scalar and vector); the block kernels (block_template.h) specialise on each entry.
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
    /* (fl2_vmin(p, d) is p < d ? p : d, fl2_vmax likewise: the scalar form's bits, nan and
     * zeros' signs included, in two operations) */
    return fl2_vmax(-p, fl2_vmin(p, d));
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
/* ---- the exact derivative (float64 gradients: fl2_grad_exact, below) ----
 * derivative_err returns the rest ge of the derivative: l'(d + de) = l'(d) + ge exactly (d + de
 * the exact difference, as above).  Squared: de.  Absolute: 0 (d and d + de have one sign:
 * a difference rounds to 0 only where it is 0).  Huber: de where d + de lies inside
 * (-delta, delta), |d| + ae < delta (ae: de signed as d), 0 where it is clipped: that is
 * |d| < delta, or |d| = delta and de points inward (the only place where d and d + de lie on
 * either side), and (|d| - delta) + ae < 0 says it in two roundings that cannot change the
 * sign: |d| - delta is exact from delta / 2 to 2 delta (Sterbenz) and |ae| <= ulp(d) / 2,
 * below |d| - delta unless that is 0; elsewhere |d| - delta is at least delta / 2 either
 * way. */
FL2_INLINE double fl2_squared_derivative_err(double d, double de, double p)
{
    (void)d; (void)p;
    return de;
}
FL2_INLINE double fl2_absolute_derivative_err(double d, double de, double p)
{
    (void)d; (void)de; (void)p;
    return 0.0;
}
FL2_INLINE double fl2_huber_derivative_err(double d, double de, double p)
{
    const double a = fabs(d), ae = signbit(d) ? -de : de;
    return (a - p) + ae < 0.0 ? de : 0.0;
}
#if FL2_VECTORS
FL2_INLINE fl2_vd fl2_squared_vderivative_err(fl2_vd d, fl2_vd de, fl2_vd p)
{
    (void)d; (void)p;
    return de;
}
FL2_INLINE fl2_vd fl2_absolute_vderivative_err(fl2_vd d, fl2_vd de, fl2_vd p)
{
    (void)d; (void)de; (void)p;
    return fl2_vsplat(0.0);
}
FL2_INLINE fl2_vd fl2_huber_vderivative_err(fl2_vd d, fl2_vd de, fl2_vd p)
{
    const fl2_vd a = fl2_vabs(d), ae = fl2_vsign_of(d, de), zero = fl2_vsplat(0.0);
    return fl2_vselect((a - p) + ae < zero, de, zero);
}
#endif
#define FL2_LOSS_DERIVATIVE_ERR_(NAME, name) case FL2_##NAME: return fl2_##name##_derivative_err(d, de, p);
FL2_INLINE double fl2_loss_derivative_err(fl2_loss loss, double d, double de, double p)
{
    switch (loss) { FL2_LOSSES(FL2_LOSS_DERIVATIVE_ERR_) default: return 0.0; }
}
#undef FL2_LOSS_DERIVATIVE_ERR_
#if FL2_VECTORS
#define FL2_LOSS_VDERIVATIVE_ERR_(NAME, name) case FL2_##NAME: return fl2_##name##_vderivative_err(d, de, p);
FL2_INLINE fl2_vd fl2_loss_vderivative_err(fl2_loss loss, fl2_vd d, fl2_vd de, fl2_vd p)
{
    switch (loss) { FL2_LOSSES(FL2_LOSS_VDERIVATIVE_ERR_) default: (void)d; return fl2_vsplat(0.0); }
}
#undef FL2_LOSS_VDERIVATIVE_ERR_
#endif

/* A float64 gradient element (block_run.h, `exact_grad`): scale * (x + xe) / (divisor +
 * divisor_lo), x + xe the exact w * l'(y_pred - y_true) (xe: the derivative's rest,
 * derivative_err, and the weight's product error), within an ulp of its exact value, and
 * correctly rounded unless it lies within about 2**-100 of a midpoint (relative); where
 * w * l' falls under 2**-969 (its product's error, 2**-53 of it, under 2**-1022: subnormal
 * weights) or the remainder below under 2**-1022, to those
 * roundings; for "weighted_mean", within the bound of the weight sum's rest (below).  s + se
 * is scale * (x + xe) (TwoProduct, se rounded once); q = s * inverse, inverse = 1 / divisor
 * rounded (fl2_grad_inverse), within an ulp or two of s / divisor; its remainder
 * s - q * divisor by fma (exact where q is within an ulp of s / divisor: the remainder of
 * such a quotient is a float64, barring underflow, Muller et al., Handbook of Floating-Point
 * Arithmetic, 2nd ed., 2018, section 4.4; else rounded once, about 2**-52 of an ulp of the
 * result); the correction (remainder + se - q * divisor_lo) * inverse added in one last
 * rounding, with q's sign (a zero keeps the sign the quotient alone gives it; a result that
 * is not 0 has it anyway: q + c lies within an ulp or two of s / divisor).  divisor_lo, the
 * weight sum's rest, is the kernels' (within their bound, about 2**-80 of the weights'
 * magnitudes: _exact.float64_bound) where their sum is certified, else exact.
 * Where the divisor lies outside [2**-1000, 2**1000] (inverse 0: its reciprocal would lose
 * bits or overflow) q is the quotient s / divisor and the correction divides too; where
 * s * inverse is not finite (past the range, or s infinite or nan) q is the quotient; where
 * that, or the divisor, is not finite it stands (IEEE's overflow and nan); where s alone
 * overflows (|divisor| > 1) the element is computed from x / 2**64.  The vector form does the same operations lane
 * by lane (the rare lanes above by this function); every backend does them (numba, NumPy:
 * fastl2._losses exact_gradient). */
FL2_INLINE double fl2_grad_inverse(double divisor)
{
    const double a = fabs(divisor);
    return a >= 0x1p-1000 && a <= 0x1p1000 ? 1.0 / divisor : 0.0;
}
FL2_INLINE double fl2_grad_exact(double x, double xe, double scale, double divisor,
                                 double divisor_lo, double inverse)
{
    double s = scale * x, factor = 1.0;
    if (fabs(s) == INFINITY && fabs(x) < INFINITY && fabs(divisor) > 1.0 && fabs(divisor) < INFINITY) {
        /* (scale * x past the range, the quotient perhaps not: x / 2**64 and xe / 2**64,
         * exact at such sizes, and the result times 2**64, exact or past the range) */
        x *= 0x1p-64;
        xe *= 0x1p-64;
        s = scale * x;
        factor = 0x1p64;
    }
    const double se = fl2_fma(scale, xe, fl2_fma(scale, x, -s));
    double q = inverse != 0.0 ? s * inverse : s / divisor;
    if (!(fabs(q) < INFINITY)) q = s / divisor; /* (s * inverse past the range) */
    if (!(fabs(q) < INFINITY) || !(fabs(divisor) < INFINITY)) return factor * q;
    const double r = fl2_fma(-q, divisor_lo, fl2_fma(-q, divisor, s) + se);
    const double c = inverse != 0.0 ? r * inverse : r / divisor;
    return factor * copysign(q + c, q);
}
#if FL2_VECTORS
/* (the lanes where q is not finite, and every lane where inverse is 0, rare: done again by
 * fl2_grad_exact, lane by lane) */
FL2_INLINE fl2_vd fl2_vgrad_exact(fl2_vd x, fl2_vd xe, fl2_vd scale, fl2_vd divisor,
                                  fl2_vd divisor_lo, fl2_vd inverse, double scale1,
                                  double divisor1, double divisor_lo1, double inverse1,
                                  const int simple)
{
    const fl2_vd s = scale * x, q = s * inverse;
    fl2_vd r;
    if (simple) /* (scale 1 or 2 and divisor_lo 0, block_run.h: scale * x and scale * xe are
                 * exact and fma(-q, 0, r) is r, so the same bits, but for zeros' signs, which
                 * the result does not take from r) */
        r = fl2_vfma(-q, divisor, s) + scale * xe;
    else
        r = fl2_vfma(-q, divisor_lo, fl2_vfma(-q, divisor, s) + fl2_vfma(scale, xe, fl2_vfma(scale, x, -s)));
    const fl2_vd c = r * inverse, sign = fl2_vsplat(-0.0);
    fl2_vd g = (fl2_vd)(((fl2_vbits)(q + c) & ~(fl2_vbits)sign) | ((fl2_vbits)q & (fl2_vbits)sign));
    if (__builtin_expect(inverse1 == 0.0 || fl2_vany_nonfinite(q), 0))
        for (int k = 0; k < FL2_VWIDTH; k++)
            g[k] = fl2_grad_exact(x[k], xe[k], scale1, divisor1, divisor_lo1, inverse1);
    return g;
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
