/* The kernels for the build's baseline instruction set (SSE2 on x86-64, NEON on arm64). */
#define FL2_KERNEL_TABLE fl2_kernels_baseline
#include "kernels.h"
