/*
 * csrc/exact.c on every target: the exact sums of fixed pseudo-random operands (every finite
 * float64 bit pattern, and a grid of small dyadic values), each loss, with and without
 * far-out Huber deltas, hashed (FNV-1a over the accumulator's bins and the count of elements
 * left out).  Exact sums are integers: every compiler and target must print the same hash,
 * tests/c/exact_expected.txt (check_builds.sh compares).  Their exactness itself is tested
 * against Fractions in tests/test_exact_state.py.
 */
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include "exact.h"
static uint64_t s = 88172645463325252ULL;
static uint64_t next(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
static double any_double(void) {  /* every bit pattern but nan and inf */
    for (;;) { uint64_t b = next(); double x; memcpy(&x, &b, 8); if (x - x == 0.0) return x; }
}
int main(void) {
    enum { N = 20000 };
    static double t[N], p[N], w[N]; static unsigned char bad[N];
    uint64_t h = 1469598103934665603ULL;
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < N; i++) {
            t[i] = round % 2 ? any_double() : (double)(int64_t)(next() % 2001) / 1024.0 - 1.0;
            p[i] = any_double(); w[i] = round < 3 ? any_double() : 0.5;
        }
        for (int code = 0; code < 3; code++) {
            int64_t lb[FL2_EXACT_BINS] = {0}, wb[FL2_EXACT_BINS] = {0};
            memset(bad, 0, sizeof bad);
            int64_t k = fl2_exact_sums(code, round ? 1e-300 * round : 1.0, N, t, p, w, lb, wb, bad);
            for (int j = 0; j < FL2_EXACT_BINS; j++) { h ^= (uint64_t)lb[j]; h *= 1099511628211ULL; h ^= (uint64_t)wb[j]; h *= 1099511628211ULL; }
            h ^= (uint64_t)k; h *= 1099511628211ULL;
        }
    }
    printf("%016llx\n", (unsigned long long)h);
    return 0;
}
