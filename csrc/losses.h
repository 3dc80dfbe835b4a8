/*
 * The losses: the C side of the declaration in src/fastl2/_losses.py (tests/test_losses.py
 * checks that the two lists agree).  Adding a loss here is one line in FL2_LOSSES and its four
 * element functions below; the block kernels (block_template.h) specialise on each entry.
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
