/* Shared between the driver (config.c, fastl2.c, strided.c) and the per-instruction-set kernel files. */
#ifndef FASTL2_INTERNAL_H
#define FASTL2_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dispatch.h"
#include "fastl2.h"

#if defined(__GNUC__) || defined(__clang__)
#define FL2_INLINE static inline __attribute__((always_inline))
#define FL2_PREFETCH(address) __builtin_prefetch((address))
#else
#define FL2_INLINE static inline
#define FL2_PREFETCH(address) ((void)0)
#endif

#ifndef FL2_CAT
#define FL2_CAT_(a, b) a##b
#define FL2_CAT(a, b) FL2_CAT_(a, b)
#endif

/* ---- one element at any address --------------------------------------------------------
 * NumPy arrays need not be aligned to their element size (np.frombuffer at an odd offset, a
 * packed structured dtype's field, an unaligned memory map); C makes a plain `*p` of such an
 * address undefined.  The kernels read and write single elements through these: memcpy of
 * one element, which compilers turn into the same single move.  T is float, double or uint16_t
 * (a token: FL2_GET(T_PRED, p) names fl2_get_float or fl2_get_double). */
FL2_INLINE double fl2_get_float(const void *p)
{
    float v;
    memcpy(&v, p, sizeof v);
    return (double)v;
}
FL2_INLINE double fl2_get_double(const void *p)
{
    double v;
    memcpy(&v, p, sizeof v);
    return v;
}
FL2_INLINE void fl2_put_float(void *p, double x)
{
    const float v = (float)x;
    memcpy(p, &v, sizeof v);
}
FL2_INLINE void fl2_put_double(void *p, double x) { memcpy(p, &x, sizeof x); }
/* (the bits of a float16 or bfloat16: csrc/convert.c) */
FL2_INLINE uint16_t fl2_get_uint16_t(const void *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
FL2_INLINE void fl2_put_uint16_t(void *p, uint16_t x) { memcpy(p, &x, sizeof x); }

/* ---- float16 ----------------------------------------------------------------------------
 * IEEE binary16, converted exactly to float32 and rounded to nearest, ties to even, from it
 * (IEEE 754-2008, 5.4.2) by its bits: the portable code of every level; the x86 levels above
 * the baseline use F16C's instructions instead, which give the same bits for every input (a
 * signalling NaN quieted on its way in; a NaN keeps its payload's top bits on its way out). */
typedef struct {
    uint16_t bits;
} fl2_half; /* (a type of its own: the kernels' loads and stores are chosen by _Generic) */

FL2_INLINE float fl2_bits_float(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
FL2_INLINE uint32_t fl2_float_bits(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}
FL2_INLINE double fl2_bits_double(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}
FL2_INLINE uint64_t fl2_double_bits(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return bits;
}
/* The float32 of float16 bits h (exact; a signalling NaN quieted). */
FL2_INLINE float fl2_half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    if (exponent == 0x1f) /* inf, or NaN with its payload and the quiet bit set */
        return fl2_bits_float(sign | 0x7f800000u | (mantissa << 13) | (mantissa ? 0x400000u : 0u));
    if (exponent) return fl2_bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
    /* zero or subnormal: mantissa * 2**-24, exact in float32 */
    return fl2_bits_float(sign | fl2_float_bits((float)mantissa * 5.9604644775390625e-08f));
}
/* The float16 bits of f rounded to nearest, ties to even (overflow to inf; a NaN keeps its
 * payload's top bits and is quiet). */
FL2_INLINE uint16_t fl2_float_to_half(float f)
{
    const uint32_t x = fl2_float_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* from 65520 on: inf */
    if (a >= 0x38800000u) {                                 /* a normal float16 */
        const uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);
        return (uint16_t)(sign | ((rounded - (112u << 23)) >> 13));
    }
    /* below 2**-14: a subnormal float16 (or its smallest normal, or zero), in units of 2**-24 */
    const int e = (int)(a >> 23);
    if (e < 102) return sign; /* below 2**-25, or exactly it (a tie to the even zero) */
    const uint32_t m = (a & 0x7fffffu) | 0x800000u;
    const int shift = 126 - e; /* 14 .. 24 */
    uint32_t q = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}
/* ---- half-precision gradients -----------------------------------------------------------
 * A float16 or bfloat16 gradient is the exact gradient x * scale / divisor (x = w * l'(d), in
 * float64) rounded once to the half.  x * quotient, the quotient scale / divisor rounded, is
 * not: its two roundings can move a value that lies exactly on a midpoint between two halves
 * (a tie, to even) a float64 ulp off it, to one side.  A division per element is exact enough
 * but slow (three times the time of the pass), so the quotient comes in two parts, q rounded
 * toward zero and its tail lo = (scale - q * divisor) / divisor (of q's sign, below its ulp),
 * and each element is fma(x, q, x * lo): x * scale / divisor to about 2**-104, rounded once
 * to float64, so that a tie stays one and rounding to odd (below) keeps the rest on their
 * side of it.  (The same sign for q and lo keeps an infinite x infinite.)
 * Veltkamp's split of a into hi + lo, 26 and 27 bits, for Dekker's exact product
 * ("A floating-point technique for extending the available precision", Numer. Math. 18, 1971). */
FL2_INLINE void fl2_split(double a, double *hi, double *lo)
{
    const double c = 134217729.0 * a; /* 2**27 + 1 */
    *hi = c - (c - a);
    *lo = a - *hi;
}
/* scale - q * divisor, exactly (Dekker's product; the difference is representable where q is
 * scale / divisor rounded either way and nothing underflows: fl2_quotient_tail's range). */
FL2_INLINE double fl2_remainder(double scale, double divisor, double q)
{
    double q_hi, q_lo, d_hi, d_lo;
    fl2_split(q, &q_hi, &q_lo);
    fl2_split(divisor, &d_hi, &d_lo);
    const double p = q * divisor;
    const double e = ((q_hi * d_hi - p) + q_hi * d_lo + q_lo * d_hi) + q_lo * d_lo;
    return (scale - p) - e; /* (scale - p: exact by Sterbenz's lemma) */
}
/* The quotient scale / divisor as q (toward zero) + lo (above); 0 (and q = quotient) where
 * quotient is exact, or outside [2**-400, 2**400] with the divisor (then the product is the
 * only rounding: a tie needs an exact quotient there). Python: fastl2._plan.quotient_tail. */
FL2_INLINE int fl2_quotient_tail(double scale, double divisor, double quotient, double *q,
                                 double *lo)
{
    *q = quotient;
    *lo = 0.0;
    const double aq = fabs(quotient), ad = fabs(divisor);
    if (!(aq >= 0x1p-400 && aq <= 0x1p400 && ad >= 0x1p-400 && ad <= 0x1p400)) return 0;
    double r = fl2_remainder(scale, divisor, quotient);
    if (r == 0.0) return 0;
    if ((r < 0.0) != ((quotient < 0.0) != (divisor < 0.0))) { /* rounded away from zero */
        *q = fl2_bits_double(fl2_double_bits(quotient) - 1); /* one step toward it */
        r = fl2_remainder(scale, divisor, *q);
    }
    *lo = r / divisor;
    return 1;
}
/* x * (q + lo) as above: fma(x, q, x * lo), one rounding (the instruction where the level
 * has it, libm's correctly rounded fma where not: the same bits). */
FL2_INLINE double fl2_fma(double a, double b, double c)
{
#if defined(__FMA__) || defined(__aarch64__) || defined(__clang__)
    /* (clang: the instruction where the function's target has FMA, a call of fma where not) */
    return __builtin_fma(a, b, c);
#else
    return fma(a, b, c);
#endif
}
FL2_INLINE double fl2_mul_tail(double x, double q, double lo) { return fl2_fma(x, q, x * lo); }

/* x rounded to float32 to odd (toward zero, the last bit set where inexact: vectors.h
 * fl2_vround_odd_f32, whose bits these are): a double's only rounding to a half-precision
 * dtype is then the float32's rounding to it. */
FL2_INLINE float fl2_round_odd_float(double x)
{
    const float f = (float)x;
    const double back = (double)f;
    if (back == x || x != x) return f;
    uint32_t bits = fl2_float_bits(f);
    if (fabs(back) > fabs(x)) bits--; /* rounded away from zero: one step back */
    return fl2_bits_float(bits | 1u);
}
/* (a float32 gradient bound for a half: block_run.h's `odd`) */
FL2_INLINE void fl2_put_float_odd(void *p, double x)
{
    const float f = fl2_round_odd_float(x);
    memcpy(p, &f, sizeof f);
}
FL2_INLINE double fl2_get_fl2_half(const void *p) { return (double)fl2_half_to_float(fl2_get_uint16_t(p)); }
/* A gradient element: x rounded once to float16 (fastl2.h: the float64 gradient rounded once). */
FL2_INLINE void fl2_put_fl2_half(void *p, double x) { fl2_put_uint16_t(p, fl2_float_to_half(fl2_round_odd_float(x))); }

/* ---- bfloat16 ---------------------------------------------------------------------------
 * The top half of a binary32: converted exactly to float32 by a shift, rounded to nearest,
 * ties to even, from it by its bits (a NaN: quiet, with its payload's top bits), the same
 * code at every level. */
typedef struct {
    uint16_t bits;
} fl2_bhalf;

FL2_INLINE float fl2_bfloat_to_float(uint16_t b) { return fl2_bits_float((uint32_t)b << 16); }
FL2_INLINE uint16_t fl2_float_to_bfloat(float f)
{
    const uint32_t x = fl2_float_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
FL2_INLINE double fl2_get_fl2_bhalf(const void *p) { return (double)fl2_bfloat_to_float(fl2_get_uint16_t(p)); }
/* (a gradient element: x rounded once to bfloat16, as a float16 one) */
FL2_INLINE void fl2_put_fl2_bhalf(void *p, double x) { fl2_put_uint16_t(p, fl2_float_to_bfloat(fl2_round_odd_float(x))); }

/* p[0] as a double (T: float, double, fl2_half, fl2_bhalf; uint16_t gives the bits) */
#define FL2_GET(T, p) FL2_CAT(fl2_get_, T)(p)
/* p[0] = x, rounded once to T */
#define FL2_PUT(T, p, x) FL2_CAT(fl2_put_, T)((p), (x))

/* Prefetches the nbytes from address + offset, a place computed as an integer: it may lie
 * past the array, where a prefetch does nothing (it never faults). */
/* How far ahead the runs kernel prefetches its operands (bytes, each operand): the hardware
 * prefetchers alone left the exact float64 kernels (some 16 vector operations an element) and
 * the float32 ones short of the memory's speed; 4096 bytes ahead measured best of 2048, 4096
 * and 8192 (README, "Prefetching").  A prefetch past an array's end is harmless: it reads
 * nothing and cannot fault. */
#define FL2_PREFETCH_AHEAD 4096

FL2_INLINE void fl2_prefetch(const void *address, int64_t offset, int64_t nbytes)
{
    const uintptr_t start = (uintptr_t)address + (uintptr_t)offset;
    for (int64_t at = 0; at < nbytes; at += 64)
        FL2_PREFETCH((const void *)(start + (uintptr_t)at));
}

/* ---- streaming (non-temporal) stores of FL2_LANES gradient elements ---------------------
 * 16-byte SSE2 stores: every x86-64 CPU has them, and NumPy's allocations are 16-byte
 * aligned, so no peeling is needed; elsewhere these are plain stores. */
#if defined(__SSE2__)
#include <emmintrin.h>
#include <stdint.h>
FL2_INLINE int fl2_stream_aligned(const void *p) { return ((uintptr_t)p & 15) == 0; }
/* count: a multiple of 4 */
FL2_INLINE void fl2_stream_store_f32(float *dst, const float *src, int count)
{
    for (int k = 0; k < count; k += 4) _mm_stream_ps(dst + k, _mm_loadu_ps(src + k));
}
FL2_INLINE void fl2_stream_store_f64(double *dst, const double *src, int count)
{
    for (int k = 0; k < count; k += 2) _mm_stream_pd(dst + k, _mm_loadu_pd(src + k));
}
/* Orders this thread's streaming stores before whatever it does next. */
FL2_INLINE void fl2_stream_fence(void) { _mm_sfence(); }
#else
FL2_INLINE int fl2_stream_aligned(const void *p) { (void)p; return 0; }
FL2_INLINE void fl2_stream_store_f32(float *dst, const float *src, int count)
{
    memcpy(dst, src, (size_t)count * sizeof *src);
}
FL2_INLINE void fl2_stream_store_f64(double *dst, const double *src, int count)
{
    memcpy(dst, src, (size_t)count * sizeof *src);
}
FL2_INLINE void fl2_stream_fence(void) {}
#endif

/* Fully unrolled lane loops are what the SLP vectoriser turns into vector code. */
#if defined(__clang__)
#define FL2_UNROLL _Pragma("clang loop unroll(full)")
#elif defined(__GNUC__)
#define FL2_UNROLL _Pragma("GCC unroll 16")
#else
#define FL2_UNROLL
#endif

/* A sum kept as an unevaluated pair hi + lo (|lo| <= ulp(hi)/2 after normalisation). */
typedef struct { double hi, lo; } fl2_dd;

typedef struct { fl2_dd loss, weights; } fl2_partial;

/* What one block kernel call does; each is its own specialised loop. */
typedef enum {
    FL2_MODE_SUMS = 0,       /* loss and weight sums */
    FL2_MODE_SUMS_GRAD,      /* sums and the gradient, one pass */
    FL2_MODE_GRAD,           /* the gradient alone */
    FL2_MODE_ELEM,           /* per-element losses (reduction "none") */
    FL2_MODE_ELEM_GRAD,      /* per-element losses and the gradient */
    FL2_MODE_WEIGHTS,        /* the weight sum alone */
    /* A flag on FL2_MODE_SUMS and FL2_MODE_WEIGHTS: the inputs are read every other
     * element (their element i at 2 * i), in place; the block kernels only. */
    FL2_MODE_STEP2 = 8,
} fl2_mode;

/* Computes elements [start, end) of one block; start is a multiple of FL2_BLOCK_SIZE. */
typedef void (*fl2_block_fn)(const fl2_problem *p, const fl2_outputs *o, fl2_mode mode,
                             int64_t start, int64_t end, fl2_partial *out);

/* Block sums of ncols outputs whose runs are the contiguous columns of nrows rows (the
 * kernels' _columns variant; modes FL2_MODE_SUMS and FL2_MODE_WEIGHTS only): see
 * block_template.h.  ld: row strides in elements, indexed by FL2_OP_*. */
typedef void (*fl2_columns_fn)(const fl2_problem *p, fl2_mode mode, int64_t nrows, int64_t ncols,
                               const int64_t *ld, int64_t w_step, double *scratch,
                               fl2_partial *out);

/* Block sums of nrows outputs whose runs are contiguous rows of row_len <= FL2_BLOCK_SIZE
 * elements (the kernels' _rows variant; modes FL2_MODE_SUMS and FL2_MODE_WEIGHTS only). */
typedef void (*fl2_rows_fn)(const fl2_problem *p, fl2_mode mode, int64_t nrows, int64_t row_len,
                            const int64_t *ld, int64_t w_step, fl2_partial *out);

/* One kernel per result dtype and operands (all float32, all float64, all float16 or all
 * bfloat16: the last two a float32 result; other mixes are converted block by block,
 * convert.c): index pred * 2 + weighted, 4 + pred for problems without y_true (the L2
 * penalty), 6 + weighted for float16, 8 + weighted for bfloat16 (fl2_kernel_index). */
#define FL2_NKERNELS 10

extern const fl2_block_fn fl2_kernels_baseline[FL2_NKERNELS];
extern const fl2_columns_fn fl2_kernels_baseline_columns[FL2_NKERNELS];
extern const fl2_rows_fn fl2_kernels_baseline_rows[FL2_NKERNELS];
extern const char fl2_kernels_baseline_isa[]; /* kernels_baseline.c: "sse2", "neon", "scalar", ... */
#if defined(FL2_HAVE_X86_DISPATCH)
extern const fl2_block_fn fl2_kernels_avx2[FL2_NKERNELS];
extern const fl2_columns_fn fl2_kernels_avx2_columns[FL2_NKERNELS];
extern const fl2_rows_fn fl2_kernels_avx2_rows[FL2_NKERNELS];
extern const fl2_block_fn fl2_kernels_avx512[FL2_NKERNELS];
extern const fl2_columns_fn fl2_kernels_avx512_columns[FL2_NKERNELS];
extern const fl2_rows_fn fl2_kernels_avx512_rows[FL2_NKERNELS];
#if defined(FL2_HAVE_AVX512BF16)
/* kernels_avx512bf16.c: the AVX-512 level's two bfloat16 kernels (indices 8 and 9) again, their
 * gradients rounded by the BF16 extension's instruction */
extern const fl2_block_fn fl2_kernels_avx512bf16[2];
extern const fl2_columns_fn fl2_kernels_avx512bf16_columns[2];
extern const fl2_rows_fn fl2_kernels_avx512bf16_rows[2];
#endif
#endif

/* Error-free sum of two double-doubles, normalised.  Non-finite sums propagate as IEEE
 * addition would (the error terms would otherwise turn inf into nan). */
FL2_INLINE fl2_dd fl2_dd_add(fl2_dd a, fl2_dd b)
{
    double s = a.hi + b.hi;
    if (!isfinite(s)) {
        fl2_dd r = {s, 0.0};
        return r;
    }
    double bb = s - a.hi;
    double e = (a.hi - (s - bb)) + (b.hi - bb);
    e += a.lo + b.lo;
    fl2_dd r;
    r.hi = s + e;
    r.lo = e - (r.hi - s);
    return r;
}

/* Pairwise combination of v[0..m) in place, bottom-up: the tree depends on m only. */
FL2_INLINE fl2_dd fl2_dd_combine(fl2_dd *v, int64_t m)
{
    for (int64_t step = 1; step < m; step *= 2)
        for (int64_t i = 0; i + step < m; i += 2 * step)
            v[i] = fl2_dd_add(v[i], v[i + step]);
    return v[0];
}

#endif /* FASTL2_INTERNAL_H */
