/*
 * Conversions between an operand's storage dtype and its kernel's (fl2_load_run, fl2_store_run):
 * float16 and bfloat16 operands are read through the float32 kernels (float64 ones when any
 * operand of the call is float64), converted exactly block by block into the kernel's buffers,
 * never as a converted copy of a whole array; a gradient of such a dtype is rounded once on its
 * way back.
 *
 * Half-precision conversions are exact one way (every float16 and bfloat16 is a float32) and
 * round to nearest, ties to even, the other (IEEE 754-2008, 5.4.2; float16 is binary16,
 * bfloat16 the top half of a binary32).  The portable code below works on the bits; on x86-64
 * CPUs with F16C, at every instruction-set level above the baseline (config.c), float16 runs go
 * through its conversion instructions (VCVTPH2PS / VCVTPS2PH, rounding to nearest even).  Both
 * give the same bits for every input, NaNs included: a signalling NaN is quieted on its way in,
 * as VCVTPH2PS does, and a NaN keeps the top bits of its payload and its quiet bit on its way
 * out (tests/test_half_precision.py checks every float16 and a grid of float32 inputs on every
 * level).
 */
#include <string.h>

#include "driver.h"

#if defined(FL2_HAVE_X86_DISPATCH)
#include <immintrin.h>
#endif

int fl2_use_f16c = 0;

/* ---- runs ----------------------------------------------------------------------------- */

#if defined(FL2_HAVE_X86_DISPATCH)
#define FL2_F16C __attribute__((target("avx,f16c")))

FL2_F16C static void halves_to_floats_f16c(float *dst, const char *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(src + 2 * i))));
    for (; i < n; i++) dst[i] = fl2_half_to_float(FL2_GET(uint16_t, src + 2 * i));
}

FL2_F16C static void halves_to_doubles_f16c(double *dst, const char *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(src + 2 * i)));
        _mm256_storeu_pd(dst + i, _mm256_cvtps_pd(_mm256_castps256_ps128(f)));
        _mm256_storeu_pd(dst + i + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)));
    }
    for (; i < n; i++) dst[i] = fl2_half_to_float(FL2_GET(uint16_t, src + 2 * i));
}

FL2_F16C static void floats_to_halves_f16c(char *dst, const float *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(dst + 2 * i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) FL2_PUT(uint16_t, dst + 2 * i, fl2_float_to_half(src[i]));
}

FL2_F16C static void doubles_to_halves_f16c(char *dst, const double *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float odd[8]; /* (rounded to odd: the float16 rounding is the only one) */
        for (int k = 0; k < 8; k++) odd[k] = fl2_round_odd_float(src[i + k]);
        _mm_storeu_si128((__m128i *)(void *)(dst + 2 * i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(odd), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) FL2_PUT(uint16_t, dst + 2 * i, fl2_float_to_half(fl2_round_odd_float(src[i])));
}
#endif

/* The value of one element of dtype dt at p, as a double (exact). */
static inline double load_one(const char *p, fl2_dtype dt)
{
    switch (dt) {
    case FL2_FLOAT64: return FL2_GET(double, p);
    case FL2_FLOAT32: return (double)FL2_GET(float, p);
    case FL2_FLOAT16: return (double)fl2_half_to_float(FL2_GET(uint16_t, p));
    default: return (double)fl2_bfloat_to_float(FL2_GET(uint16_t, p));
    }
}

double fl2_load_one(const void *p, fl2_dtype dt) { return load_one((const char *)p, dt); }

void fl2_load_run(void *dst, fl2_dtype to, const void *from, int64_t step, fl2_dtype dt, int64_t n)
{
    const char *src = (const char *)from;
    const int64_t item = (int64_t)fl2_item_size(dt);
#if defined(FL2_HAVE_X86_DISPATCH)
    if (dt == FL2_FLOAT16 && step == 2 && fl2_use_f16c) {
        if (to == FL2_FLOAT32) halves_to_floats_f16c((float *)dst, src, n);
        else halves_to_doubles_f16c((double *)dst, src, n);
        return;
    }
#endif
    if (to == FL2_FLOAT64) {
        double *d = (double *)dst;
        if (dt == FL2_FLOAT32 && step == item)
            for (int64_t i = 0; i < n; i++) d[i] = (double)FL2_GET(float, src + 4 * i);
        else if (dt == FL2_FLOAT16 && step == item)
            for (int64_t i = 0; i < n; i++) d[i] = (double)fl2_half_to_float(FL2_GET(uint16_t, src + 2 * i));
        else if (dt == FL2_BFLOAT16 && step == item)
            for (int64_t i = 0; i < n; i++) d[i] = (double)fl2_bfloat_to_float(FL2_GET(uint16_t, src + 2 * i));
        else
            for (int64_t i = 0; i < n; i++) d[i] = load_one(src + i * step, dt);
    } else {
        float *f = (float *)dst;
        if (dt == FL2_FLOAT16 && step == item)
            for (int64_t i = 0; i < n; i++) f[i] = fl2_half_to_float(FL2_GET(uint16_t, src + 2 * i));
        else if (dt == FL2_BFLOAT16 && step == item)
            for (int64_t i = 0; i < n; i++) f[i] = fl2_bfloat_to_float(FL2_GET(uint16_t, src + 2 * i));
        else /* (float16, bfloat16 or float32 elements at a step: each exact in float32) */
            for (int64_t i = 0; i < n; i++) f[i] = (float)load_one(src + i * step, dt);
    }
}

void fl2_store_run(void *to, int64_t step, fl2_dtype dt, const void *values, fl2_dtype from, int64_t n)
{
    char *dst = (char *)to;
#if defined(FL2_HAVE_X86_DISPATCH)
    if (dt == FL2_FLOAT16 && step == 2 && fl2_use_f16c) {
        if (from == FL2_FLOAT32) floats_to_halves_f16c(dst, (const float *)values, n);
        else doubles_to_halves_f16c(dst, (const double *)values, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) {
        /* A double to float32 to nearest; to a half, once (fastl2.h): through float32
         * rounded to odd.  float32 values bound for a half come rounded to odd (block_run.h). */
        const double x = from == FL2_FLOAT64 ? ((const double *)values)[i] : 0.0;
        const float f = from == FL2_FLOAT32 ? ((const float *)values)[i]
                        : dt == FL2_FLOAT32 ? (float)x : fl2_round_odd_float(x);
        char *p = dst + i * step;
        switch (dt) {
        case FL2_FLOAT64: FL2_PUT(double, p, ((const double *)values)[i]); break;
        case FL2_FLOAT32: FL2_PUT(float, p, f); break;
        case FL2_FLOAT16: FL2_PUT(uint16_t, p, fl2_float_to_half(f)); break;
        default: FL2_PUT(uint16_t, p, fl2_float_to_bfloat(f)); break;
        }
    }
}
