/* Whether this build has per-instruction-set kernels with a run-time choice (GCC or clang on
 * x86-64); included before any target pragma, so it must define nothing but macros. */
#ifndef FASTL2_DISPATCH_H
#define FASTL2_DISPATCH_H
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(FL2_NO_DISPATCH)
#define FL2_HAVE_X86_DISPATCH 1
/* ... and a compiler that knows AVX-512 BF16 (GCC 10, clang 11): kernels_avx512bf16.c */
#if (defined(__clang__) && __clang_major__ >= 11) || (!defined(__clang__) && __GNUC__ >= 10)
#define FL2_HAVE_AVX512BF16 1
#endif
#endif
#endif
