/* The kernels for x86-64 CPUs with AVX-512 (F, VL, DQ, BW), chosen at run time (config.c). */
#include "dispatch.h"
#if defined(FL2_HAVE_X86_DISPATCH)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,f16c,prefer-vector-width=512")
#endif
#define FL2_VWIDTH 8
#define FL2_KERNEL_TABLE fl2_kernels_avx512
#include "kernels.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
