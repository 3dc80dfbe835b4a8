/*
 * Checks the AVX-512 BF16 gradient store (csrc/vectors.h fl2_vstore_bf16, as compiled for
 * kernels_avx512bf16.c) against the portable rounding (csrc/internal.h fl2_float_to_bfloat) on
 * every float32 value, as the float64 the kernels hand it (so a signalling NaN arrives quiet):
 * subnormals (the instruction's DAZ: the integer code), NaNs (quiet, payload's top kept), inf,
 * overflow, ties.  The vectors mix neighbouring values, so each holds subnormals beside normal
 * numbers too.  tests/c/check_builds.sh runs it where the CPU has AVX512_BF16.
 *
 * Build: gcc -std=c11 -O2 -ffp-contract=off -Icsrc tests/c/bf16_rounding.c -o bf16_rounding
 * Exit status: 0 all equal, 1 a difference (printed), 77 the CPU lacks AVX512_BF16 (skipped).
 */
#include "dispatch.h"
#if !defined(FL2_HAVE_AVX512BF16)
#include <stdio.h>
int main(void) { puts("bf16_rounding: this compiler has no AVX512_BF16: skipped"); return 77; }
#else
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx512bf16,avx2,fma,f16c")
#define FL2_VWIDTH 8
#define FL2_BF16_INSTRUCTIONS 1
#include <cpuid.h>
#include <stdio.h>
#include "internal.h"
#include "vectors.h"

int main(void)
{
    unsigned int eax, ebx, ecx, edx;
    if (!(__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 5)))) {
        puts("bf16_rounding: this CPU has no AVX512_BF16: skipped");
        return 77;
    }
    uint64_t differences = 0;
    for (uint64_t start = 0; start < (UINT64_C(1) << 32); start += FL2_VWIDTH) {
        fl2_vd v;
        uint16_t got[FL2_VWIDTH];
        for (int k = 0; k < FL2_VWIDTH; k++) v[k] = (double)fl2_bits_float((uint32_t)(start + k));
        fl2_vstore_bf16((fl2_bhalf *)(void *)got, v);
        for (int k = 0; k < FL2_VWIDTH; k++) {
            const uint16_t want = fl2_float_to_bfloat((float)v[k]);
            if (got[k] != want && differences++ < 10)
                printf("bf16_rounding: float bits %08x: 0x%04x, the portable code 0x%04x\n",
                       (unsigned)(start + k), got[k], want);
        }
    }
    printf("bf16_rounding: 2**32 floats, %llu differences\n", (unsigned long long)differences);
    return differences != 0;
}
#endif
