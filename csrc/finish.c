/*
 * Correct rounding of float64 results: the quotient of the sums' double-doubles, its root, and
 * the certificate that the double-double's rounding is the exact value's (fl2_finish_f64).
 * src/fastl2/_exact.py, finish_float64, is the same in NumPy (its docstring derives the
 * margins); the bits of a certain value do not depend on which one decided it.
 */
#include <math.h>

#include "fastl2.h"

#define FL2_U2 (1.0 / 81129638414606681695789005144064.0) /* 2**-106 = u**2 */
#define FL2_DD_ERR (64.0 * FL2_U2)                        /* a double-double operation's, 2**-100 */
#define FL2_SLACK (1.0 + 1.0 / 1099511627776.0)           /* 1 + 2**-40 */
#define FL2_TINY 0x1p-900
#define FL2_HUGE 0x1p900
#define FL2_SUBNORMAL_STEP 0x1p-1072                     /* src/fastl2/_exact.py, float64_bound */
/* Loss sums outside [2**-500, 2**500] are scaled by 2**600 or 2**-600 before the quotient; the
 * absolute part of the bound, at most 2**1088 * 2**-1072 * 2**-600, is then below this. */
#define FL2_SCALE_BELOW 0x1p-500
#define FL2_SCALE_ABOVE 0x1p500
#define FL2_SCALE_BY 600
#define FL2_SCALED_ABS 0x1p-580

/* The relative part of the sums' bound over `count` elements (_exact.float64_bound). */
static double sums_bound(int64_t count)
{
    const double m = (double)(count < 1 ? 1 : count < FL2_BLOCK_SIZE ? count : FL2_BLOCK_SIZE);
    return (m * (m + 17.0) + 1024.0) * FL2_U2;
}

static int in_range(double x)
{
    const double a = fabs(x);
    return a >= FL2_TINY && a <= FL2_HUGE;
}

/* (h, l) = hi + lo, normalised (Fast2Sum: |hi| >= |lo|). */
static void normalise(double hi, double lo, double *h, double *l)
{
    *h = hi + lo;
    *l = lo - (*h - hi);
}

/* Whether every real within e of h + l (normalised, h in range) rounds to h. */
static int rounds_to(double h, double l, double e)
{
    const double a = fabs(h), b = h < 0 ? -l : l;
    const double up = nextafter(a, INFINITY) - a, down = a - nextafter(a, 0.0);
    return b + e < 0.5 * up && b - e > -0.5 * down;
}

int fl2_finish_f64(const fl2_sums *s, const fl2_finish *f, double *value)
{
    const double sh = s->loss, sl = s->loss_lo;
    const double dh = f->by_weights ? s->weights : f->divisor;
    const double dl = f->by_weights ? s->weights_lo : 0.0;
    const double q = sh / dh, scale = f->scale, plain = scale != 1.0 ? q * scale : q;
    if (!(q - q == 0.0)) {  /* (inf or nan: -inf rooted is nan) */
        *value = f->root ? sqrt(plain) : plain;
        return 1;
    }
    /* the plain value: the answer where the certificate declines */
    *value = !f->root ? plain : plain >= 0.0 ? sqrt(plain) : NAN;
    const double condition = f->weighted ? FL2_CONDITION : 1.0;
    const double rel = sums_bound(f->count) * condition * FL2_SLACK;
    if (sh == 0.0)  /* every term's exact value is below 2**-1075, and so is their mean */
        return !f->weighted && !f->by_weights && !f->root && f->divisor == (double)f->count && scale == 1.0;
    /* The sums' bound (sum(|w|) <= condition * |W| where weighted, the count otherwise). */
    const double magnitude = f->weighted ? condition * fabs(s->weights) * FL2_SLACK : (double)f->count;
    const double e_abs = (magnitude + (double)f->count) * FL2_SUBNORMAL_STEP;
    /* A loss sum far from 1 is scaled by 2**k first (exactly: a power of two, even for the
     * root), the result scaled back at the end (exactly where it is normal). */
    const int k = fabs(sh) < FL2_SCALE_BELOW ? FL2_SCALE_BY : fabs(sh) > FL2_SCALE_ABOVE ? -FL2_SCALE_BY : 0;
    const double hs = ldexp(sh, k), ls = ldexp(sl, k);
    const double e_sum = rel * fabs(hs) + (k < 0 ? FL2_SCALED_ABS : ldexp(e_abs, k));
    const double e_div = f->by_weights ? rel * fabs(dh) : 0.0;
    const double qs = hs / dh;
    if (!in_range(hs) || !in_range(dh) || !in_range(qs)) return 0;
    /* The quotient in double-double: q + (r + sl - q dl) / dh, r = sh - q dh exactly. */
    const double r = fma(-qs, dh, hs);
    double h, l;
    normalise(qs, ((r + ls) - qs * dl) / dh, &h, &l);
    double e = (e_sum + fabs(qs) * e_div) / (fabs(dh) * (1.0 - 0x1p-50)) * FL2_SLACK + FL2_DD_ERR * fabs(qs);
    if (scale != 1.0) { /* scale * (h + l), the product by TwoProduct */
        const double p = h * scale, pe = fma(h, scale, -p);
        normalise(p, pe + l * scale, &h, &l);
        e = e * scale * FL2_SLACK + FL2_DD_ERR * fabs(h);
        if (!in_range(h)) return 0;
    }
    if (f->root) {
        if (h < 0.0) {  /* a negative quotient (weights of mixed sign): nan, if certainly */
            *value = NAN;
            return -h - fabs(l) > e;
        }
        if (e > 0x1p-40 * h) return 0;
        const double rh = sqrt(h);
        const double rr = fma(-rh, rh, h); /* (exact) */
        normalise(rh, (rr + l) / (2.0 * rh), &h, &l);
        e = e / (2.0 * rh) * (1.0 + 0x1p-38) + FL2_DD_ERR * rh;
    }
    if (!in_range(h)) return 0;
    if (!rounds_to(h, l, e)) return 0;
    const double x = ldexp(h, f->root ? -k / 2 : -k);
    if (!(fabs(x) >= 0x1p-1022 && fabs(x) <= 0x1.fffffffffffffp+1023)) return 0; /* (subnormal or past the range) */
    *value = x;
    return 1;
}
