/* The kernels for the build's baseline instruction set (SSE2 on x86-64, NEON on arm64). */
#define FL2_KERNEL_TABLE fl2_kernels_baseline
#include "kernels.h"

#if FL2_KERNEL_PART == FL2_PART_RUN
/* What these kernels were compiled for (fl2_baseline_isa): the macros of this file's own
 * compilation, so it cannot disagree with them. */
const char fl2_kernels_baseline_isa[] =
#if !FL2_VECTORS
    "scalar";
#elif defined(FL2_NEON)
    "neon";
#elif defined(__x86_64__) || defined(__SSE2__)
    "sse2";
#else
    "vector extensions";
#endif
#endif
