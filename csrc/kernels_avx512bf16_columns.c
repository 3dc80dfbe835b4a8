/* kernels_avx512bf16.c's kernels of many outputs whose runs are columns (kernels.h: FL2_KERNEL_PART). */
#define FL2_KERNEL_PART FL2_PART_COLUMNS
#include "kernels_avx512bf16.c"
