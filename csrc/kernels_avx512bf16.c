/* The bfloat16 kernels again for x86-64 CPUs with AVX-512 and its BF16 extension (Cooper Lake,
 * Sapphire Rapids and later, Zen 4 and later): kernels_avx512.c's, but a gradient is rounded to
 * bfloat16 by VCVTNEPS2BF16 (vectors.h fl2_vstore_bf16), one instruction where the integer code
 * takes eight (the gradient pass of bfloat16 data is bound by those instructions, not by
 * memory).  The same bits: see vectors.h.  config.c puts these two kernels in the AVX-512
 * level's tables where the CPU has the extension. */
#include "dispatch.h"
#if defined(FL2_HAVE_AVX512BF16)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx512bf16,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx512bf16,avx2,fma,f16c,prefer-vector-width=512")
#endif
#define FL2_VWIDTH 8
#define FL2_BF16_INSTRUCTIONS 1
#define FL2_BFLOAT16_ONLY 1
#define FL2_KERNEL_TABLE fl2_kernels_avx512bf16
#include "kernels.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
