/* The kernels for x86-64 CPUs with AVX2 and FMA, chosen at run time (config.c). */
#include "dispatch.h"
#if defined(FL2_HAVE_X86_DISPATCH)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif
#define FL2_VWIDTH 4
#define FL2_KERNEL_TABLE fl2_kernels_avx2
#include "kernels.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
