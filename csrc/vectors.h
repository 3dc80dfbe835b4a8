/* Vector helpers of the block kernels; included by kernels.h after the target is set. */
#ifndef FASTL2_VECTORS_H
#define FASTL2_VECTORS_H

#include "internal.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__aarch64__) && defined(__ARM_NEON) && !defined(FL2_NO_VECTORS)
#include <arm_neon.h>
#define FL2_NEON 1 /* arm64: the baseline level's loads of float32 and of every other element */
#endif

/* Vectors of FL2_VWIDTH lanes (GCC and clang vector extensions), the width of the target's
 * registers in doubles: each kernels_<level>.c sets it.
 *
 * A chunk of FL2_LANES elements is FL2_LANES / FL2_VWIDTH such vectors; element k of vector h
 * is lane h * FL2_VWIDTH + k.  Each operation is the lane's own IEEE operation, so the vector
 * loop and the scalar one give the same bits; only the instruction set differs. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(FL2_NO_VECTORS)
#define FL2_VECTORS 1
#ifndef FL2_VWIDTH
#define FL2_VWIDTH 2 /* SSE2 and NEON registers hold two doubles */
#endif
typedef double fl2_vd __attribute__((vector_size(FL2_VWIDTH * sizeof(double))));
typedef float fl2_vf __attribute__((vector_size(FL2_VWIDTH * sizeof(float))));
typedef long long fl2_vbits __attribute__((vector_size(FL2_VWIDTH * sizeof(long long))));

FL2_INLINE fl2_vd fl2_vsplat(double x)
{
    fl2_vd v;
    for (int k = 0; k < FL2_VWIDTH; k++) v[k] = x;
    return v;
}
FL2_INLINE fl2_vd fl2_load_f64(const double *p)
{
    fl2_vd v;
    memcpy(&v, p, sizeof v);
    return v;
}
/* GCC lowers __builtin_convertvector of wide float vectors piecewise (GCC 12: two
 * vcvtps2pd ymm and a shuffle for 8 floats), so the x86 levels use the one instruction. */
FL2_INLINE fl2_vd fl2_load_f32(const float *p)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__)
    return (fl2_vd)_mm512_cvtps_pd(_mm256_loadu_ps(p));
#elif FL2_VWIDTH == 4 && defined(__AVX__)
    return (fl2_vd)_mm256_cvtps_pd(_mm_loadu_ps(p));
#elif FL2_VWIDTH == 2 && defined(__SSE2__)
    return (fl2_vd)_mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(const void *)p)));
#elif FL2_VWIDTH == 2 && defined(FL2_NEON)
    /* one load and one fcvtl (GCC 12 makes two scalar fcvt and three moves of the generic
     * code); memcpy, as p need not be aligned */
    float32x2_t v;
    memcpy(&v, p, sizeof v);
    return (fl2_vd)vcvt_f64_f32(v);
#else
    fl2_vf v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, fl2_vd);
#endif
}
/* float16: F16C's conversion at the x86 levels above the baseline (kernels_avx2.c and
 * kernels_avx512.c enable it), the portable bit code elsewhere (internal.h): the same bits. */
FL2_INLINE fl2_vd fl2_load_f16(const fl2_half *p)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__) && defined(__F16C__)
    return (fl2_vd)_mm512_cvtps_pd(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p)));
#elif FL2_VWIDTH == 4 && defined(__AVX__) && defined(__F16C__)
    return (fl2_vd)_mm256_cvtps_pd(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(const void *)p)));
#else
    fl2_vd v;
    for (int k = 0; k < FL2_VWIDTH; k++) v[k] = fl2_get_fl2_half(p + k);
    return v;
#endif
}
/* bfloat16: its bits in a float32's top half (x86: interleaved with zeros, or widened and
 * shifted), then as float32. */
typedef uint16_t fl2_vh __attribute__((vector_size(FL2_VWIDTH * sizeof(uint16_t))));
typedef uint32_t fl2_vu __attribute__((vector_size(FL2_VWIDTH * sizeof(uint32_t))));
FL2_INLINE fl2_vd fl2_load_bf16(const fl2_bhalf *p)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__)
    const __m256i bits = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)), 16);
    return (fl2_vd)_mm512_cvtps_pd(_mm256_castsi256_ps(bits));
#elif FL2_VWIDTH == 4 && defined(__AVX__)
    const __m128i h = _mm_loadl_epi64((const __m128i *)(const void *)p);
    return (fl2_vd)_mm256_cvtps_pd(_mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h)));
#elif FL2_VWIDTH == 2 && defined(__SSE2__)
    int32_t two;
    memcpy(&two, p, sizeof two);
    const __m128i h = _mm_cvtsi32_si128(two);
    return (fl2_vd)_mm_cvtps_pd(_mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h)));
#else
    fl2_vh h;
    memcpy(&h, p, sizeof h);
    const fl2_vu bits = __builtin_convertvector(h, fl2_vu) << 16;
    float f[FL2_VWIDTH];
    memcpy(f, &bits, sizeof f);
    return fl2_load_f32(f);
#endif
}
#define FL2_VLOAD(p) _Generic((p), const float *: fl2_load_f32, float *: fl2_load_f32, \
                              const double *: fl2_load_f64, double *: fl2_load_f64, \
                              const fl2_half *: fl2_load_f16, fl2_half *: fl2_load_f16, \
                              const fl2_bhalf *: fl2_load_bf16, fl2_bhalf *: fl2_load_bf16)(p)

/* Two vectors of consecutive elements, p[0 .. FL2_VWIDTH) into *a and the next FL2_VWIDTH into
 * *b: FL2_VLOAD twice, but for float16 at the x86 levels above the baseline, where one F16C
 * conversion takes both halves' elements to float32 (a conversion fewer per pair: they, not
 * the loads, bound a float16 pass in cache). */
FL2_INLINE void fl2_load_two_f32(const float *p, fl2_vd *a, fl2_vd *b)
{
    *a = fl2_load_f32(p);
    *b = fl2_load_f32(p + FL2_VWIDTH);
}
FL2_INLINE void fl2_load_two_f64(const double *p, fl2_vd *a, fl2_vd *b)
{
    *a = fl2_load_f64(p);
    *b = fl2_load_f64(p + FL2_VWIDTH);
}
FL2_INLINE void fl2_load_two_f16(const fl2_half *p, fl2_vd *a, fl2_vd *b)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__) && defined(__F16C__)
    const __m512 f = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
    *a = (fl2_vd)_mm512_cvtps_pd(_mm512_castps512_ps256(f));
    *b = (fl2_vd)_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1)));
#elif FL2_VWIDTH == 4 && defined(__AVX__) && defined(__F16C__)
    const __m256 f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
    *a = (fl2_vd)_mm256_cvtps_pd(_mm256_castps256_ps128(f));
    *b = (fl2_vd)_mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
#else
    *a = fl2_load_f16(p);
    *b = fl2_load_f16(p + FL2_VWIDTH);
#endif
}
FL2_INLINE void fl2_load_two_bf16(const fl2_bhalf *p, fl2_vd *a, fl2_vd *b)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__)
    const __m512i bits = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p)), 16);
    *a = (fl2_vd)_mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_castsi512_ps(bits)));
    *b = (fl2_vd)_mm512_cvtps_pd(_mm256_castsi256_ps(_mm512_extracti64x4_epi64(bits, 1)));
#elif FL2_VWIDTH == 4 && defined(__AVX__)
    const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)p), zero = _mm_setzero_si128();
    *a = (fl2_vd)_mm256_cvtps_pd(_mm_castsi128_ps(_mm_unpacklo_epi16(zero, h)));
    *b = (fl2_vd)_mm256_cvtps_pd(_mm_castsi128_ps(_mm_unpackhi_epi16(zero, h)));
#else
    *a = fl2_load_bf16(p);
    *b = fl2_load_bf16(p + FL2_VWIDTH);
#endif
}
#define FL2_VLOAD_TWO(p, a, b) _Generic((p), const float *: fl2_load_two_f32, float *: fl2_load_two_f32, \
                                        const double *: fl2_load_two_f64, double *: fl2_load_two_f64, \
                                        const fl2_half *: fl2_load_two_f16, fl2_half *: fl2_load_two_f16, \
                                        const fl2_bhalf *: fl2_load_two_bf16, fl2_bhalf *: fl2_load_two_bf16)(p, a, b)

/* Every other element: p[0], p[2], ..., p[2 * (FL2_VWIDTH - 1)] (an a[::2] view), by
 * deinterleaving shuffles.  Most levels (AVX2, AVX-512, SSE2 for float32, NEON) load
 * 2 * FL2_VWIDTH elements, one past the last one used: the caller keeps that element inside
 * the array. */
FL2_INLINE fl2_vd fl2_load2_f32(const float *p)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__)
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
    return (fl2_vd)_mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_permutexvar_ps(even, _mm512_loadu_ps(p))));
#elif FL2_VWIDTH == 4 && defined(__AVX2__)
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    return (fl2_vd)_mm256_cvtps_pd(_mm256_castps256_ps128(_mm256_permutevar8x32_ps(_mm256_loadu_ps(p), even)));
#elif FL2_VWIDTH == 2 && defined(__SSE2__)
    const __m128 v = _mm_loadu_ps(p);
    return (fl2_vd)_mm_cvtps_pd(_mm_shuffle_ps(v, v, _MM_SHUFFLE(2, 0, 2, 0)));
#elif FL2_VWIDTH == 2 && defined(FL2_NEON)
    float32x4_t v; /* p[0..3], as the SSE2 load */
    memcpy(&v, p, sizeof v);
    return (fl2_vd)vcvt_f64_f32(vget_low_f32(vuzp1q_f32(v, v)));
#else
    fl2_vd v;
    for (int k = 0; k < FL2_VWIDTH; k++) v[k] = fl2_get_float(p + 2 * k);
    return v;
#endif
}
FL2_INLINE fl2_vd fl2_load2_f64(const double *p)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__)
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    return (fl2_vd)_mm512_permutex2var_pd(_mm512_loadu_pd(p), even, _mm512_loadu_pd(p + 8));
#elif FL2_VWIDTH == 4 && defined(__AVX2__)
    /* (p0 p4 p2 p6) -> (p0 p2 p4 p6) */
    const __m256d pairs = _mm256_unpacklo_pd(_mm256_loadu_pd(p), _mm256_loadu_pd(p + 4));
    return (fl2_vd)_mm256_permute4x64_pd(pairs, _MM_SHUFFLE(3, 1, 2, 0));
#elif FL2_VWIDTH == 2 && defined(__SSE2__)
    double lo, hi; /* (_mm_load_sd dereferences p: undefined for an unaligned p) */
    memcpy(&lo, p, sizeof lo);
    memcpy(&hi, p + 2, sizeof hi);
    return (fl2_vd)_mm_set_pd(hi, lo);
#elif FL2_VWIDTH == 2 && defined(FL2_NEON)
    float64x2_t a, b; /* p[0..3]: one past the last one used */
    memcpy(&a, p, sizeof a);
    memcpy(&b, p + 2, sizeof b);
    return (fl2_vd)vuzp1q_f64(a, b);
#else
    fl2_vd v;
    for (int k = 0; k < FL2_VWIDTH; k++) v[k] = fl2_get_double(p + 2 * k);
    return v;
#endif
}
FL2_INLINE fl2_vd fl2_load2_f16(const fl2_half *p)
{
    fl2_vd v;
    for (int k = 0; k < FL2_VWIDTH; k++) v[k] = fl2_get_fl2_half(p + 2 * k);
    return v;
}
FL2_INLINE fl2_vd fl2_load2_bf16(const fl2_bhalf *p)
{
    fl2_vd v;
    for (int k = 0; k < FL2_VWIDTH; k++) v[k] = fl2_get_fl2_bhalf(p + 2 * k);
    return v;
}
#define FL2_VLOAD2(p) _Generic((p), const float *: fl2_load2_f32, float *: fl2_load2_f32, \
                               const double *: fl2_load2_f64, double *: fl2_load2_f64, \
                               const fl2_half *: fl2_load2_f16, fl2_half *: fl2_load2_f16, \
                               const fl2_bhalf *: fl2_load2_bf16, fl2_bhalf *: fl2_load2_bf16)(p)
/* The first `count` (0 to FL2_VWIDTH) elements at p, zeros after them; nothing past them is
 * read (masked loads, which do not fault on the elements they leave out). */
FL2_INLINE fl2_vd fl2_loadn_f32(const float *p, int count)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__) && defined(__AVX512VL__)
    return (fl2_vd)_mm512_cvtps_pd(_mm256_maskz_loadu_ps((__mmask8)((1u << count) - 1u), p));
#elif FL2_VWIDTH == 4 && defined(__AVX2__)
    const __m128i keep = _mm_cmpgt_epi32(_mm_set1_epi32(count), _mm_setr_epi32(0, 1, 2, 3));
    return (fl2_vd)_mm256_cvtps_pd(_mm_maskload_ps(p, keep));
#else
    fl2_vd v = fl2_vsplat(0.0);
    for (int k = 0; k < count; k++) v[k] = fl2_get_float(p + k);
    return v;
#endif
}
FL2_INLINE fl2_vd fl2_loadn_f64(const double *p, int count)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__)
    return (fl2_vd)_mm512_maskz_loadu_pd((__mmask8)((1u << count) - 1u), p);
#elif FL2_VWIDTH == 4 && defined(__AVX2__)
    const __m256i keep = _mm256_cmpgt_epi64(_mm256_set1_epi64x(count), _mm256_setr_epi64x(0, 1, 2, 3));
    return (fl2_vd)_mm256_maskload_pd(p, keep);
#else
    fl2_vd v = fl2_vsplat(0.0);
    for (int k = 0; k < count; k++) v[k] = fl2_get_double(p + k);
    return v;
#endif
}
FL2_INLINE fl2_vd fl2_loadn_f16(const fl2_half *p, int count)
{
    fl2_vd v = fl2_vsplat(0.0);
    for (int k = 0; k < count; k++) v[k] = fl2_get_fl2_half(p + k);
    return v;
}
FL2_INLINE fl2_vd fl2_loadn_bf16(const fl2_bhalf *p, int count)
{
    fl2_vd v = fl2_vsplat(0.0);
    for (int k = 0; k < count; k++) v[k] = fl2_get_fl2_bhalf(p + k);
    return v;
}
#define FL2_VLOADN(p, count) _Generic((p), const float *: fl2_loadn_f32, float *: fl2_loadn_f32, \
                                      const double *: fl2_loadn_f64, double *: fl2_loadn_f64, \
                                      const fl2_half *: fl2_loadn_f16, fl2_half *: fl2_loadn_f16, \
                                      const fl2_bhalf *: fl2_loadn_bf16, fl2_bhalf *: fl2_loadn_bf16)(p, count)
/* All ones in the first `count` lanes, zeros in the others. */
FL2_INLINE fl2_vbits fl2_vfirst(int count)
{
    fl2_vbits index;
    for (int k = 0; k < FL2_VWIDTH; k++) index[k] = k;
    const fl2_vbits zero = {0};
    return index < zero + (long long)count; /* (count broadcast: lane by lane, GCC stored it) */
}
/* Lanes of a where keep is all ones, of b elsewhere. */
FL2_INLINE fl2_vd fl2_vselect(fl2_vbits keep, fl2_vd a, fl2_vd b)
{
    return (fl2_vd)(((fl2_vbits)a & keep) | ((fl2_vbits)b & ~keep));
}

/* The even and the odd lanes of the concatenation a, b (lanes 0, 2, ... and 1, 3, ...). */
#if defined(__clang__)
#if FL2_VWIDTH == 8
#define FL2_EVENS(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#define FL2_ODDS(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15)
#elif FL2_VWIDTH == 4
#define FL2_EVENS(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6)
#define FL2_ODDS(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7)
#elif FL2_VWIDTH == 2
#define FL2_EVENS(a, b) __builtin_shufflevector(a, b, 0, 2)
#define FL2_ODDS(a, b) __builtin_shufflevector(a, b, 1, 3)
#endif
#else
#if FL2_VWIDTH == 8
#define FL2_EVENS(a, b) __builtin_shuffle(a, b, (fl2_vbits){0, 2, 4, 6, 8, 10, 12, 14})
#define FL2_ODDS(a, b) __builtin_shuffle(a, b, (fl2_vbits){1, 3, 5, 7, 9, 11, 13, 15})
#elif FL2_VWIDTH == 4
#define FL2_EVENS(a, b) __builtin_shuffle(a, b, (fl2_vbits){0, 2, 4, 6})
#define FL2_ODDS(a, b) __builtin_shuffle(a, b, (fl2_vbits){1, 3, 5, 7})
#elif FL2_VWIDTH == 2
#define FL2_EVENS(a, b) __builtin_shuffle(a, b, (fl2_vbits){0, 2})
#define FL2_ODDS(a, b) __builtin_shuffle(a, b, (fl2_vbits){1, 3})
#endif
#endif

/* FL2_VLOAD of elements `step` (1 or 2, a constant) apart. */
#define FL2_VLOAD_STEP(p, step) ((step) == 2 ? FL2_VLOAD2(p) : FL2_VLOAD(p))

FL2_INLINE fl2_vd fl2_vabs(fl2_vd x)
{
    return (fl2_vd)((fl2_vbits)x & ~(fl2_vbits)fl2_vsplat(-0.0)); /* clear the sign bits */
}
/* fma(a, b, c) lane by lane, one rounding (fl2_fma's bits). */
FL2_INLINE fl2_vd fl2_vfma(fl2_vd a, fl2_vd b, fl2_vd c)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__)
    return (fl2_vd)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif FL2_VWIDTH == 4 && defined(__FMA__)
    return (fl2_vd)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#elif FL2_VWIDTH == 2 && defined(__aarch64__)
    return (fl2_vd)vfmaq_f64((float64x2_t)c, (float64x2_t)a, (float64x2_t)b);
#else
    fl2_vd r;
    for (int k = 0; k < FL2_VWIDTH; k++) r[k] = fl2_fma(a[k], b[k], c[k]);
    return r;
#endif
}
/* a + b and a - b, on the multiply-add units where the level has them: fma(a, 1, b) and
 * fma(b, -1, a) are a + b and a - b rounded once, the same bits.  The exact element terms
 * (losses.h) are mostly additions, and x86 cores run additions on two units and fmas on two
 * others: these move some of them across (where measured to help: the lanes' Fast2Sum,
 * block_template.h; in the difference's TwoSum they made mae at 10**7 elements 1.2x slower on
 * Zen 5). */
#if (FL2_VWIDTH == 8 && defined(__AVX512F__)) || (FL2_VWIDTH == 4 && defined(__FMA__))
#define FL2_VADD_M(a, b) fl2_vfma((a), fl2_vsplat(1.0), (b))
#define FL2_VSUB_M(a, b) fl2_vfma((b), fl2_vsplat(-1.0), (a))
#else
#define FL2_VADD_M(a, b) ((a) + (b))
#define FL2_VSUB_M(a, b) ((a) - (b))
#endif
/* Whether any lane of m (a comparison's result: 0 or all ones) is set. */
FL2_INLINE int fl2_vany(fl2_vbits m)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__)
    return _mm512_test_epi64_mask((__m512i)m, (__m512i)m) != 0;
#elif FL2_VWIDTH == 4 && defined(__AVX__)
    return _mm256_movemask_pd((__m256d)m) != 0;
#elif FL2_VWIDTH == 2 && defined(__SSE2__)
    return _mm_movemask_pd((__m128d)m) != 0;
#else
    int any = 0;
    for (int k = 0; k < FL2_VWIDTH; k++) any |= m[k] != 0;
    return any;
#endif
}
/* Whether any lane of x is infinite or nan (AVX-512 DQ: one classification). */
FL2_INLINE int fl2_vany_nonfinite(fl2_vd x)
{
#if FL2_VWIDTH == 8 && defined(__AVX512DQ__)
    return _mm512_fpclass_pd_mask((__m512d)x, 0x99) != 0; /* (nan, +inf, -inf) */
#else
    const fl2_vbits finite = fl2_vabs(x) < fl2_vsplat(INFINITY);
    return fl2_vany(~finite);
#endif
}
/* The larger and the smaller of a and b lane by lane (b where either is nan, and b where
 * both are zeros: what the scalar a > b ? a : b gives, bit for bit). */
FL2_INLINE fl2_vd fl2_vmax(fl2_vd a, fl2_vd b)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__)
    return (fl2_vd)_mm512_max_pd((__m512d)a, (__m512d)b);
#elif FL2_VWIDTH == 4 && defined(__AVX__)
    return (fl2_vd)_mm256_max_pd((__m256d)a, (__m256d)b);
#elif FL2_VWIDTH == 2 && defined(__SSE2__)
    return (fl2_vd)_mm_max_pd((__m128d)a, (__m128d)b);
#else
    return fl2_vselect(a > b, a, b);
#endif
}
FL2_INLINE fl2_vd fl2_vmin(fl2_vd a, fl2_vd b)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__)
    return (fl2_vd)_mm512_min_pd((__m512d)a, (__m512d)b);
#elif FL2_VWIDTH == 4 && defined(__AVX__)
    return (fl2_vd)_mm256_min_pd((__m256d)a, (__m256d)b);
#elif FL2_VWIDTH == 2 && defined(__SSE2__)
    return (fl2_vd)_mm_min_pd((__m128d)a, (__m128d)b);
#else
    return fl2_vselect(a < b, a, b);
#endif
}
/* fl2_mul_tail (internal.h) lane by lane, fma(x, q, x * lo): the same bits. */
FL2_INLINE fl2_vd fl2_vmul_tail(fl2_vd x, double q, double lo)
{
    const fl2_vd c = x * lo;
#if FL2_VWIDTH == 8 && defined(__AVX512F__)
    return (fl2_vd)_mm512_fmadd_pd((__m512d)x, _mm512_set1_pd(q), (__m512d)c);
#elif FL2_VWIDTH == 4 && defined(__FMA__)
    return (fl2_vd)_mm256_fmadd_pd((__m256d)x, _mm256_set1_pd(q), (__m256d)c);
#elif FL2_VWIDTH == 2 && defined(__aarch64__)
    return (fl2_vd)vfmaq_f64((float64x2_t)c, (float64x2_t)x, vdupq_n_f64(q));
#else
    fl2_vd r;
    (void)lo;
    for (int k = 0; k < FL2_VWIDTH; k++) r[k] = fl2_fma(x[k], q, c[k]);
    return r;
#endif
}
/* v rounded to float32 toward zero, its last bit set where that is inexact: rounding to odd
 * (Boldo and Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms using
 * rounding to odd", IEEE Trans. Computers 57(4), 2008).  Rounded once more, to nearest even, to
 * a format of at most 22 significant bits and float32's exponent range or less (float16,
 * bfloat16), it gives v rounded once to that format.  Overflow gives FLT_MAX (so inf once
 * rounded to a half), inf and NaN stay what they are; the same bits as fl2_round_odd_float. */
FL2_INLINE fl2_vf fl2_vround_odd_f32_generic(fl2_vd v)
{
    const fl2_vf f = __builtin_convertvector(v, fl2_vf); /* (to nearest) */
    const fl2_vd back = __builtin_convertvector(f, fl2_vd);
    const fl2_vbits inexact = (fl2_vbits)(back != v) & (fl2_vbits)(v == v);
    const fl2_vbits away = inexact & (fl2_vbits)(fl2_vabs(back) > fl2_vabs(v));
    fl2_vu bits;
    memcpy(&bits, &f, sizeof bits);
    /* rounded away from zero: one step back toward it (the bits of |f| are monotonic, from
     * the subnormals to inf); then the sticky last bit */
    bits = (bits + __builtin_convertvector(away, fl2_vu)) | (__builtin_convertvector(inexact, fl2_vu) & 1u);
    fl2_vf odd;
    memcpy(&odd, &bits, sizeof odd);
    return odd;
}
#if FL2_VWIDTH == 8 && (defined(FL2_BF16_INSTRUCTIONS) || (defined(__AVX512F__) && defined(__AVX512VL__)))
/* (AVX-512) The same where the float32 is not subnormal: the conversion toward zero itself, and
 * the sticky bit from the 29 bits of v's significand that a normal float32 drops (three
 * instructions).  A lane whose float32 is subnormal drops more: its caller checks. */
FL2_INLINE __m256i fl2_vround_odd_f32_normal(fl2_vd v)
{
    const __m512d x = (__m512d)v;
    const __m256i t = _mm256_castps_si256(_mm512_cvt_roundpd_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC));
    const __mmask8 sticky = _mm512_test_epi64_mask(_mm512_castpd_si512(x), _mm512_set1_epi64(0x1fffffff));
    return _mm256_mask_or_epi32(t, sticky, t, _mm256_set1_epi32(1));
}
#endif
#if FL2_VWIDTH == 8 && defined(__AVX512F__) && defined(__AVX512VL__)
FL2_INLINE fl2_vf fl2_vround_odd_f32(fl2_vd v)
{
    const __m256i t = fl2_vround_odd_f32_normal(v);
    if (__builtin_expect(_mm256_fpclass_ps_mask(_mm256_castsi256_ps(t), 0x20) != 0, 0)) /* subnormal */
        return fl2_vround_odd_f32_generic(v);
    return (fl2_vf)_mm256_castsi256_ps(t);
}
#else
FL2_INLINE fl2_vf fl2_vround_odd_f32(fl2_vd v) { return fl2_vround_odd_f32_generic(v); }
#endif
/* A float32 gradient bound for a float16 or bfloat16 array (fastl2.c's converted blocks): v
 * rounded to odd, so that its rounding to the half is v's only one. */
FL2_INLINE void fl2_vstore_f32_odd(float *p, fl2_vd v)
{
    const fl2_vf f = fl2_vround_odd_f32(v);
    memcpy(p, &f, sizeof f);
}
FL2_INLINE void fl2_vstore_f64(double *p, fl2_vd v) { memcpy(p, &v, sizeof v); }
FL2_INLINE void fl2_vstore_f32(float *p, fl2_vd v)
{
    fl2_vf f = __builtin_convertvector(v, fl2_vf);
    memcpy(p, &f, sizeof f);
}
/* (a gradient: v rounded once to float16, through float32 rounded to odd) */
FL2_INLINE void fl2_vstore_f16(fl2_half *p, fl2_vd v)
{
#if FL2_VWIDTH == 8 && defined(__AVX512F__) && defined(__AVX512VL__) && defined(__F16C__)
    /* (a lane whose float32 is subnormal, below 2**-126, is a zero of float16 whatever its
     * last bits: no check) */
    const __m256 x = _mm256_castsi256_ps(fl2_vround_odd_f32_normal(v));
    _mm_storeu_si128((__m128i *)(void *)p, _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
#elif FL2_VWIDTH == 4 && defined(__AVX__) && defined(__F16C__)
    const fl2_vf f = fl2_vround_odd_f32(v);
    __m128 x;
    memcpy(&x, &f, sizeof x);
    _mm_storel_epi64((__m128i *)(void *)p, _mm_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
#else
    const fl2_vf f = fl2_vround_odd_f32(v);
    for (int k = 0; k < FL2_VWIDTH; k++) fl2_put_uint16_t(p + k, fl2_float_to_half(f[k]));
#endif
}
/* (a gradient: v rounded once to bfloat16, through float32 rounded to odd, then by its bits as
 * fl2_float_to_bfloat) */
#if FL2_VWIDTH == 8 && (defined(FL2_BF16_INSTRUCTIONS) || (defined(__AVX512F__) && defined(__AVX512VL__)))
FL2_INLINE void fl2_vstore_bf16_bits(fl2_bhalf *p, __m256i x)
{
    const __m256i top = _mm256_srli_epi32(x, 16);
    const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(top, _mm256_set1_epi32(1)));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(x, bias), 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    const __m256i quiet = _mm256_or_si256(top, _mm256_set1_epi32(0x40));
    _mm_storeu_si128((__m128i *)(void *)p, _mm256_cvtepi32_epi16(_mm256_blendv_epi8(rounded, quiet, nan)));
}
#if defined(FL2_BF16_INSTRUCTIONS)
/* VCVTNEPS2BF16 (kernels_avx512bf16.c) rounds as the integer code does - to nearest even by the
 * same bias, inf and overflow alike, a NaN made quiet by the same bit (Intel SDM,
 * "convert_fp32_to_bfloat16") - except that it reads float32 subnormals as zeros: a vector
 * holding one takes the integer code (tests/c/bf16_rounding.c compares all 2**32 floats). */
FL2_INLINE void fl2_vstore_bf16(fl2_bhalf *p, fl2_vd v)
{
    const __m256 f = _mm256_castsi256_ps(fl2_vround_odd_f32_normal(v));
    if (__builtin_expect(_mm256_fpclass_ps_mask(f, 0x20) != 0, 0)) { /* 0x20: subnormal */
        const fl2_vf odd = fl2_vround_odd_f32_generic(v);
        __m256i x;
        memcpy(&x, &odd, sizeof x);
        fl2_vstore_bf16_bits(p, x);
        return;
    }
    const __m128bh h = _mm256_cvtneps_pbh(f);
    memcpy(p, &h, sizeof h);
}
#else
FL2_INLINE void fl2_vstore_bf16(fl2_bhalf *p, fl2_vd v)
{
    const fl2_vf f = fl2_vround_odd_f32(v);
    __m256i x;
    memcpy(&x, &f, sizeof x);
    fl2_vstore_bf16_bits(p, x);
}
#endif
#elif FL2_VWIDTH == 4 && defined(__AVX2__)
FL2_INLINE void fl2_vstore_bf16(fl2_bhalf *p, fl2_vd v)
{
    const fl2_vf f = fl2_vround_odd_f32(v);
    __m128i x;
    memcpy(&x, &f, sizeof x);
    const __m128i top = _mm_srli_epi32(x, 16);
    const __m128i bias = _mm_add_epi32(_mm_set1_epi32(0x7fff), _mm_and_si128(top, _mm_set1_epi32(1)));
    const __m128i rounded = _mm_srli_epi32(_mm_add_epi32(x, bias), 16);
    const __m128i nan = _mm_cmpgt_epi32(_mm_and_si128(x, _mm_set1_epi32(0x7fffffff)), _mm_set1_epi32(0x7f800000));
    const __m128i quiet = _mm_or_si128(top, _mm_set1_epi32(0x40));
    const __m128i bits = _mm_blendv_epi8(rounded, quiet, nan); /* (each below 2**16: packed exactly) */
    _mm_storel_epi64((__m128i *)(void *)p, _mm_packus_epi32(bits, bits));
}
#else
FL2_INLINE void fl2_vstore_bf16(fl2_bhalf *p, fl2_vd v)
{
    const fl2_vf f = fl2_vround_odd_f32(v);
    fl2_vu x;
    memcpy(&x, &f, sizeof x);
    const fl2_vu rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    const fl2_vu quiet = (x >> 16) | 0x40u;               /* a NaN: quiet, its payload's top */
    const fl2_vu nan = (fl2_vu)((x & 0x7fffffffu) > 0x7f800000u); /* all ones where NaN */
    const fl2_vh h = __builtin_convertvector((quiet & nan) | (rounded & ~nan), fl2_vh);
    memcpy(p, &h, sizeof h);
}
#endif
#define FL2_VSTORE(p, v) _Generic((p), float *: fl2_vstore_f32, double *: fl2_vstore_f64, \
                                  fl2_half *: fl2_vstore_f16, fl2_bhalf *: fl2_vstore_bf16)(p, v)

/* 1, -1, or x * 0 (0 for zeros, nan for nan): the scalar kernels' sign. */
FL2_INLINE fl2_vd fl2_vsign(fl2_vd x)
{
    const fl2_vd zero = fl2_vsplat(0.0);
    fl2_vbits pos = x > zero, neg = x < zero;
    fl2_vbits bits = (pos & (fl2_vbits)fl2_vsplat(1.0)) | (neg & (fl2_vbits)fl2_vsplat(-1.0)) |
                     (~(pos | neg) & (fl2_vbits)(x * zero));
    return (fl2_vd)bits;
}
#endif

#endif /* FASTL2_VECTORS_H */
