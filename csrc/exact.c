/*
 * Exact sums of element losses (exact.h): TwoSum for the difference, exact integer products,
 * a long accumulator.  Plain C11, no floating-point rounding anywhere but TwoSum's (which is
 * error-free), so every compiler and target gives the same integers.
 */
#include "exact.h"

#include <string.h>

#define DIGIT_MASK 0xFFFFFFFFu
/* Normalise the bins every this many elements: an element adds at most 16 values below 2**32
 * to any one bin, so no bin nears 2**63 in between. */
#define NORMALISE_EVERY (1 << 20)

typedef struct {
    int sign;       /* +1 or -1 */
    uint64_t m;     /* the significand, an integer below 2**53 */
    int exponent;   /* of its last bit: x = sign * m * 2**exponent */
} parts;

/* x (finite, not zero) as sign, integer significand and exponent, from its bits. */
static inline parts split_double(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    parts r;
    const int biased = (int)((bits >> 52) & 0x7FF);
    r.sign = (bits >> 63) ? -1 : 1;
    r.m = bits & ((UINT64_C(1) << 52) - 1);
    if (biased == 0) {
        r.exponent = -1074; /* subnormal */
    } else {
        r.m |= UINT64_C(1) << 52;
        r.exponent = biased - 1075;
    }
    return r;
}

/* out[0 .. na + nb) = a * b, little-endian 32-bit digits (schoolbook; every partial sum
 * (2**32 - 1)**2 + 2 (2**32 - 1) fits in 64 bits). */
static inline void multiply(const uint32_t *a, int na, const uint32_t *b, int nb, uint32_t *out)
{
    for (int k = 0; k < na + nb; k++) out[k] = 0;
    for (int i = 0; i < na; i++) {
        uint64_t carry = 0;
        for (int j = 0; j < nb; j++) {
            const uint64_t t = (uint64_t)a[i] * b[j] + out[i + j] + carry;
            out[i + j] = (uint32_t)(t & DIGIT_MASK);
            carry = t >> 32;
        }
        out[i + nb] = (uint32_t)carry;
    }
}

/* Adds sign * digits * 2**exponent (digits: little-endian 32-bit) into the bins. */
static inline void add_digits(int64_t *bins, int sign, const uint32_t *digits, int count, int exponent)
{
    const int position = exponent - FL2_EXACT_LOW; /* >= 0 for every product (exact.h) */
    const int first = position >> 5, shift = position & 31;
    for (int k = 0; k < count; k++) {
        const uint64_t v = (uint64_t)digits[k] << shift; /* below 2**63 */
        bins[first + k] += sign * (int64_t)(v & DIGIT_MASK);
        bins[first + k + 1] += sign * (int64_t)(v >> 32);
    }
}

/* Adds scale * x * y * z exactly (z == 1.0 for a product of two), scale a power of two
 * 2**scale_exp times sign. */
static inline void add_product(int64_t *bins, int sign, int scale_exp, double x, double y, double z)
{
    if (x == 0.0 || y == 0.0 || z == 0.0) return;
    const parts a = split_double(x), b = split_double(y), c = split_double(z);
    const uint32_t da[2] = {(uint32_t)(a.m & DIGIT_MASK), (uint32_t)(a.m >> 32)};
    const uint32_t db[2] = {(uint32_t)(b.m & DIGIT_MASK), (uint32_t)(b.m >> 32)};
    uint32_t ab[4], abc[6];
    multiply(da, 2, db, 2, ab);
    int s = sign * a.sign * b.sign;
    int exponent = a.exponent + b.exponent + scale_exp;
    if (z == 1.0) {
        add_digits(bins, s, ab, 4, exponent);
        return;
    }
    const uint32_t dc[2] = {(uint32_t)(c.m & DIGIT_MASK), (uint32_t)(c.m >> 32)};
    multiply(ab, 4, dc, 2, abc);
    add_digits(bins, s * c.sign, abc, 6, exponent + c.exponent);
}

/* Carries: bins 0 .. FL2_EXACT_BINS - 2 into [0, 2**32), the rest into the last bin. */
static void normalise(int64_t *bins)
{
    for (int k = 0; k + 1 < FL2_EXACT_BINS; k++) {
        const int64_t low = (int64_t)((uint64_t)bins[k] & DIGIT_MASK); /* (two's complement) */
        bins[k + 1] += (bins[k] - low) / (INT64_C(1) << 32);           /* (exact division) */
        bins[k] = low;
    }
}

static int finite(double x) { return x - x == 0.0; }

int64_t fl2_exact_sums(int loss, double param, int64_t n, const double *y_true, const double *y_pred,
                       const double *weights, int64_t *loss_bins, int64_t *weight_bins, unsigned char *bad)
{
    int64_t skipped = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i && i % NORMALISE_EVERY == 0) {
            normalise(loss_bins);
            if (weights) normalise(weight_bins);
        }
        const double p = y_pred[i], t = y_true ? y_true[i] : 0.0, w = weights ? weights[i] : 1.0;
        /* d = dh + dl exactly (TwoSum; error-free unless dh overflows) */
        const double dh = p - t;
        const double z = dh - p;
        const double dl = (p - (dh - z)) - (t + z);
        if (!(finite(dh) && finite(dl) && finite(w))) {
            bad[i] = 1;
            skipped++;
            continue;
        }
        if (weights) add_product(weight_bins, 1, 0, w, 1.0, 1.0);
        const int sign = dh < 0 ? -1 : 1; /* |d| = sign * (dh + dl): |dl| <= ulp(dh) / 2 */
        switch (loss) {
        case 0: /* w d**2 = w dh dh + 2 w dh dl + w dl dl */
            add_product(loss_bins, 1, 0, dh, dh, w);
            add_product(loss_bins, 1, 1, dh, dl, w);
            add_product(loss_bins, 1, 0, dl, dl, w);
            break;
        case 1: /* w |d| */
            add_product(loss_bins, sign, 0, dh, w, 1.0);
            add_product(loss_bins, sign, 0, dl, w, 1.0);
            break;
        default: { /* Huber: w |d|**2 / 2 below delta, else w delta |d| - w delta**2 / 2 */
            const double a_hi = sign * dh, a_lo = sign * dl; /* (exact: sign changes) */
            if (a_hi < param || (a_hi == param && a_lo < 0)) {
                add_product(loss_bins, 1, -1, dh, dh, w);
                add_product(loss_bins, 1, 0, dh, dl, w);
                add_product(loss_bins, 1, -1, dl, dl, w);
            } else {
                add_product(loss_bins, 1, 0, param, a_hi, w);
                add_product(loss_bins, 1, 0, param, a_lo, w);
                add_product(loss_bins, -1, -1, param, param, w);
            }
            break;
        }
        }
    }
    normalise(loss_bins);
    if (weights) normalise(weight_bins);
    return skipped;
}
