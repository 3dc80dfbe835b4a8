/* Vector helpers of the block kernels; included by kernels.h after the target is set. */
#ifndef FASTL2_VECTORS_H
#define FASTL2_VECTORS_H

#include "internal.h"
#if defined(__x86_64__)
#include <immintrin.h>
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
#else
    fl2_vf v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, fl2_vd);
#endif
}
#define FL2_VLOAD(p) _Generic((p), const float *: fl2_load_f32, float *: fl2_load_f32, \
                              const double *: fl2_load_f64, double *: fl2_load_f64)(p)

FL2_INLINE void fl2_vstore_f64(double *p, fl2_vd v) { memcpy(p, &v, sizeof v); }
FL2_INLINE void fl2_vstore_f32(float *p, fl2_vd v)
{
    fl2_vf f = __builtin_convertvector(v, fl2_vf);
    memcpy(p, &f, sizeof f);
}
#define FL2_VSTORE(p, v) _Generic((p), float *: fl2_vstore_f32, double *: fl2_vstore_f64)(p, v)

FL2_INLINE fl2_vd fl2_vabs(fl2_vd x)
{
    return (fl2_vd)((fl2_vbits)x & ~(fl2_vbits)fl2_vsplat(-0.0)); /* clear the sign bits */
}
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
