/* Where the time of a float32 mse pass in cache goes: the conversions to float64.
 *
 * fastl2 sums the squares of the exact differences y_pred - y_true of float32 operands in
 * float64 lanes (each lane's sum of products and additions, in element order; README "How it
 * works"), so each element converts two float32 values to float64 (vcvtps2pd on x86).  A pass
 * that subtracts in float32 first, rounding the difference, converts one (a less accurate
 * function: the difference's rounding error of up to 2^-24 relative is in every term, and a
 * correctly rounded float32 result could not be certified from it).  This program times, on
 * one thread and in cache, one-pass loops that differ only in what they do per element:
 *
 *   exact, 512-bit:   two conversions (zmm), subtract, multiply, add (16 float64 lanes)
 *   exact, 256-bit:   the same with 256-bit vectors (ymm)
 *   exact, sub on fma: the same, the subtraction as fma(a, 1, -b) (the same bits: fastl2's
 *                     kernels since 2026-12-04, FL2_VSUB_M in csrc/vectors.h), which moves it
 *                     from the units that add and convert to those that multiply
 *   exact, fma:       two conversions (ymm), subtract, one fused multiply-add (different bits)
 *   conversions only: two conversions (ymm) and an addition, no square
 *   rounded diff:     subtract in float32, ONE conversion (zmm), fused multiply-add
 *
 * Build and run (x86-64 with AVX-512; the arguments: elements, calls per phase):
 *   gcc -O3 -march=native -ffp-contract=off bench/conversion_bound.c -o /tmp/conversion_bound
 *   /tmp/conversion_bound 100000 300
 * It prints each loop's median time (best of 5 rounds) and its throughput relative to the
 * rounded-difference loop. */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BLOCK 8192
typedef double (*pass_fn)(const float *a, const float *b, long n);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* A 512-bit pass: 16 float64 lanes in two vectors s0 and s1; CHUNK adds elements i..i+15. */
#define PASS_512(name, CHUNK)                                                               \
    static double name(const float *a, const float *b, long n)                              \
    {                                                                                       \
        double r = 0;                                                                       \
        for (long s = 0; s < n; s += BLOCK) {                                               \
            const long e = s + BLOCK < n ? s + BLOCK : n;                                   \
            __m512d s0 = _mm512_setzero_pd(), s1 = s0;                                      \
            for (long i = s; i + 16 <= e; i += 16) {                                        \
                CHUNK                                                                       \
            }                                                                               \
            r += _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));                               \
        }                                                                                   \
        return r;                                                                           \
    }
#define CVT8(p) _mm512_cvtps_pd(_mm256_loadu_ps(p))
PASS_512(exact_512, {
    const __m512d d0 = _mm512_sub_pd(CVT8(a + i), CVT8(b + i));
    const __m512d d1 = _mm512_sub_pd(CVT8(a + i + 8), CVT8(b + i + 8));
    s0 = _mm512_add_pd(s0, _mm512_mul_pd(d0, d0));
    s1 = _mm512_add_pd(s1, _mm512_mul_pd(d1, d1));
})
/* (the difference rounded to float32, then one conversion per element) */
PASS_512(rounded_difference, {
    const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    const __m512d x0 = _mm512_cvtps_pd(_mm512_castps512_ps256(d));
    const __m512d x1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(d), 1)));
    s0 = _mm512_fmadd_pd(x0, x0, s0);
    s1 = _mm512_fmadd_pd(x1, x1, s1);
})

static double ysum(const __m256d *s)
{
    double q[4];
    _mm256_storeu_pd(q, _mm256_add_pd(_mm256_add_pd(s[0], s[1]), _mm256_add_pd(s[2], s[3])));
    return q[0] + q[1] + q[2] + q[3];
}

/* A 256-bit pass: 16 float64 lanes in four vectors; DIFF(x, y) the difference of the converted
 * operands, STEP(s, d) a lane's accumulation of it. */
#define PASS_256(name, DIFF, STEP)                                                          \
    static double name(const float *a, const float *b, long n)                              \
    {                                                                                       \
        double r = 0;                                                                       \
        for (long s = 0; s < n; s += BLOCK) {                                               \
            const long e = s + BLOCK < n ? s + BLOCK : n;                                   \
            __m256d acc[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), \
                              _mm256_setzero_pd()};                                         \
            for (long i = s; i + 16 <= e; i += 16)                                          \
                for (int k = 0; k < 4; k++) {                                               \
                    const __m256d d = DIFF(_mm256_cvtps_pd(_mm_loadu_ps(a + i + 4 * k)),    \
                                           _mm256_cvtps_pd(_mm_loadu_ps(b + i + 4 * k)));   \
                    acc[k] = STEP(acc[k], d);                                               \
                }                                                                           \
            r += ysum(acc);                                                                 \
        }                                                                                   \
        return r;                                                                           \
    }
#define SUB(x, y) _mm256_sub_pd((x), (y))
#define SUB_ON_FMA(x, y) _mm256_fmsub_pd((x), _mm256_set1_pd(1.0), (y)) /* (x * 1 - y: x - y) */
#define ADD_SQUARE(s, d) _mm256_add_pd((s), _mm256_mul_pd((d), (d)))
#define FMA_SQUARE(s, d) _mm256_fmadd_pd((d), (d), (s))
#define ADD(s, d) _mm256_add_pd((s), (d))
PASS_256(exact_256, SUB, ADD_SQUARE)
PASS_256(exact_256_sub_on_fma, SUB_ON_FMA, ADD_SQUARE)
PASS_256(exact_fma, SUB, FMA_SQUARE)
PASS_256(conversions_only, SUB, ADD)

static int by_value(const void *x, const void *y)
{
    const double u = *(const double *)x, v = *(const double *)y;
    return (u > v) - (u < v);
}

int main(int argc, char **argv)
{
    const long n = argc > 1 ? atol(argv[1]) : 100000;
    const int calls = argc > 2 ? atoi(argv[2]) : 300;
    float *a = aligned_alloc(64, (size_t)(n + 16) * 4), *b = aligned_alloc(64, (size_t)(n + 16) * 4);
    double *times = malloc(sizeof(double) * (size_t)calls);
    if (!a || !b || !times || n < 16 || calls < 1) return 2;
    srand(1);
    for (long i = 0; i < n + 16; i++) {
        a[i] = (float)rand() / RAND_MAX;
        b[i] = (float)rand() / RAND_MAX;
    }
    const pass_fn passes[] = {exact_512, exact_256, exact_256_sub_on_fma, exact_fma, conversions_only,
                              rounded_difference};
    const char *names[] = {"exact, 512-bit", "exact, 256-bit", "exact, sub on fma", "exact, fma",
                           "conversions only", "rounded diff"};
    enum { NPASSES = 6 };
    double best[NPASSES], sink = 0;
    for (int j = 0; j < NPASSES; j++) best[j] = 1e30;
    for (int round = 0; round < 5; round++)
        for (int j = 0; j < NPASSES; j++) {
            for (int k = 0; k < calls; k++) {
                const double t = now();
                sink += passes[j](a, b, n);
                times[k] = now() - t;
            }
            qsort(times, (size_t)calls, sizeof(double), by_value);
            if (times[calls / 2] < best[j]) best[j] = times[calls / 2];
        }
    for (int j = 0; j < NPASSES; j++)
        printf("n %ld  %-17s %9.1f us  %.2fx the rounded difference's throughput\n", n, names[j],
               best[j] * 1e6, best[NPASSES - 1] / best[j]);
    return sink == 0.25; /* (keeps the passes) */
}
