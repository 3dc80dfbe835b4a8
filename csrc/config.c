/*
 * The driver's configuration: the kernels for this CPU (instruction-set levels), threads,
 * the thresholds, and the names of the losses.
 */
#define _POSIX_C_SOURCE 200809L /* pthreads, clock_gettime, sysconf under -std=c11 */
#if defined(__APPLE__)
#define _DARWIN_C_SOURCE 1 /* (_POSIX_C_SOURCE alone hides sysconf's _SC_NPROCESSORS_ONLN on macOS) */
#endif

#include <stdlib.h>
#include <string.h>

#include "driver.h"
#if defined(FL2_HAVE_X86_DISPATCH)
#include <cpuid.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <unistd.h>
#define FL2_HAVE_ATFORK 1
#endif

/* Below this many elements a call never enters the thread pool: measured with
 * bench/tune_thresholds.py (2 cores, AVX-512: threads lose 10-15% at 32768 elements and win
 * 35-45% at 65536, float32 and float64, loss and gradient). */
#ifndef FL2_DEFAULT_PARALLEL_THRESHOLD
#define FL2_DEFAULT_PARALLEL_THRESHOLD (8 * FL2_BLOCK_SIZE)
#endif

/* Gradients from this size on are written with streaming stores: past the caches, reading
 * each line in before overwriting it only costs bandwidth.  Measured with
 * bench/tune_thresholds.py (32 MiB L3): 1.15x slower at 8 MiB, 0.95x at 16 MiB, 0.8x from
 * 32 MiB on. */
#ifndef FL2_DEFAULT_STREAM_MIN_BYTES
#define FL2_DEFAULT_STREAM_MIN_BYTES ((int64_t)16 << 20)
#endif

const fl2_block_fn *fl2_active_kernels = fl2_kernels_baseline;
const fl2_columns_fn *fl2_active_columns = fl2_kernels_baseline_columns;
const fl2_rows_fn *fl2_active_rows = fl2_kernels_baseline_rows;
static const char *active_level = "baseline";
static int requested_threads = 0; /* 0: the default (OpenMP's, else the CPUs) */
static volatile int forked_child = 0;
static int64_t parallel_threshold = FL2_DEFAULT_PARALLEL_THRESHOLD;
static int64_t stream_min_bytes = FL2_DEFAULT_STREAM_MIN_BYTES;

/* ---- instruction-set levels -------------------------------------------------------- */

typedef struct {
    const char *name;
    const fl2_block_fn *kernels;
    const fl2_columns_fn *columns;
    const fl2_rows_fn *rows;
    int (*supported)(void);
} fl2_level;

static int always(void) { return 1; }

#if defined(FL2_HAVE_X86_DISPATCH)
static int has_f16c(void);
static int has_avx2(void) /* (and F16C, which every AVX2 CPU has: the kernels' float16 loads) */
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
}
static int has_avx512(void)
{
    __builtin_cpu_init();
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
}
/* CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports does not know "f16c"); asked only
 * at the AVX2 and AVX-512 levels, whose checks found the OS saving AVX state. */
static int has_f16c(void)
{
    unsigned int eax, ebx, ecx, edx;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
}
#endif

#if defined(FL2_HAVE_AVX512BF16)
/* CPUID leaf 7, sub-leaf 1, EAX bit 5: AVX512_BF16 (asked only where the AVX-512 level is). */
static int has_avx512bf16(void)
{
    unsigned int eax, ebx, ecx, edx;
    return __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 5)) != 0;
}

/* The AVX-512 level's tables with kernels_avx512bf16.c's two bfloat16 kernels in them, filled
 * once (fl2_set_simd_level runs at import, under the GIL, and when a test forces a level). */
static fl2_block_fn avx512bf16_kernels[FL2_NKERNELS];
static fl2_columns_fn avx512bf16_columns[FL2_NKERNELS];
static fl2_rows_fn avx512bf16_rows[FL2_NKERNELS];

static void fill_avx512bf16_tables(void)
{
    memcpy(avx512bf16_kernels, fl2_kernels_avx512, sizeof avx512bf16_kernels);
    memcpy(avx512bf16_columns, fl2_kernels_avx512_columns, sizeof avx512bf16_columns);
    memcpy(avx512bf16_rows, fl2_kernels_avx512_rows, sizeof avx512bf16_rows);
    for (int k = 0; k < 2; k++) {
        avx512bf16_kernels[8 + k] = fl2_kernels_avx512bf16[k];
        avx512bf16_columns[8 + k] = fl2_kernels_avx512bf16_columns[k];
        avx512bf16_rows[8 + k] = fl2_kernels_avx512bf16_rows[k];
    }
}
#endif

static const char *bfloat16_rounding = "integer code";

const char *fl2_bfloat16_rounding(void) { return bfloat16_rounding; }

/* float16 conversions by F16C at the levels above the baseline, where the CPU has it
 * (convert.c: the same bits as the portable code). */
static void choose_conversions(int level)
{
#if defined(FL2_HAVE_X86_DISPATCH)
    fl2_use_f16c = level > 0 && has_f16c();
#else
    (void)level;
#endif
}

/* Worst first. */
static const fl2_level levels[] = {
    {"baseline", fl2_kernels_baseline, fl2_kernels_baseline_columns, fl2_kernels_baseline_rows, always},
#if defined(FL2_HAVE_X86_DISPATCH)
    {"avx2", fl2_kernels_avx2, fl2_kernels_avx2_columns, fl2_kernels_avx2_rows, has_avx2},
    {"avx512", fl2_kernels_avx512, fl2_kernels_avx512_columns, fl2_kernels_avx512_rows, has_avx512},
#endif
};
#define FL2_NLEVELS ((int)(sizeof(levels) / sizeof(levels[0])))

/* Makes levels[i] the one in use: its tables (the AVX-512 level's with the BF16 extension's
 * bfloat16 kernels where the CPU has it) and its conversions. */
static void activate(int i)
{
    fl2_active_kernels = levels[i].kernels;
    fl2_active_columns = levels[i].columns;
    fl2_active_rows = levels[i].rows;
    active_level = levels[i].name;
    bfloat16_rounding = "integer code";
#if defined(FL2_HAVE_AVX512BF16)
    if (levels[i].kernels == fl2_kernels_avx512 && has_avx512bf16()) {
        fill_avx512bf16_tables();
        fl2_active_kernels = avx512bf16_kernels;
        fl2_active_columns = avx512bf16_columns;
        fl2_active_rows = avx512bf16_rows;
        bfloat16_rounding = "avx512_bf16";
    }
#endif
    choose_conversions(i);
}

const char *fl2_simd_level(void) { return active_level; }

const char *fl2_baseline_isa(void) { return fl2_kernels_baseline_isa; }

const char *fl2_simd_levels_available(void)
{
    static char names[64];
    names[0] = '\0';
    for (int i = 0; i < FL2_NLEVELS; i++) {
        if (!levels[i].supported()) continue;
        if (names[0]) strcat(names, ",");
        strcat(names, levels[i].name);
    }
    return names;
}

int fl2_set_simd_level(const char *name)
{
    for (int i = 0; i < FL2_NLEVELS; i++) {
        if (strcmp(levels[i].name, name) == 0 && levels[i].supported()) {
            activate(i);
            return 0;
        }
    }
    return -1;
}

const char *fl2_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#elif defined(_MSC_VER)
    return "msvc";
#else
    return "unknown";
#endif
}

/* ---- threads ------------------------------------------------------------------------ */

#ifdef FL2_HAVE_ATFORK
/* The pool's helpers do not survive fork(): the child's pool starts over empty. */
static void after_fork_in_child(void)
{
    forked_child = 1;
    fl2_pool_after_fork_in_child();
}
#endif

void fl2_init(void)
{
    static int done = 0;
    if (done) return;
    done = 1;
    for (int i = FL2_NLEVELS - 1; i >= 0; i--) {
        if (levels[i].supported()) {
            activate(i);
            break;
        }
    }
#ifdef FL2_HAVE_ATFORK
    pthread_atfork(NULL, NULL, after_fork_in_child);
#endif
}

int fl2_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fl2_in_forked_child(void) { return forked_child; }

void fl2_set_num_threads(int nthreads) { requested_threads = nthreads > 0 ? nthreads : 0; }

int fl2_get_num_threads(void)
{
    if (requested_threads > 0) return requested_threads;
    if (!fl2_pool_available()) return 1;
#ifdef _OPENMP
    /* OpenMP's default follows OMP_NUM_THREADS and threadpoolctl; reading it starts no
     * OpenMP threads (fastl2's own are the pool's). */
    return omp_get_max_threads();
#elif defined(_SC_NPROCESSORS_ONLN)
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 1 ? (int)cpus : 1;
#else
    return 1;
#endif
}

int64_t fl2_parallel_threshold(void) { return parallel_threshold; }

void fl2_set_parallel_threshold(int64_t n) { parallel_threshold = n > 0 ? n : 0; }

int64_t fl2_stream_threshold(void) { return stream_min_bytes; }

void fl2_set_stream_threshold(int64_t bytes) { stream_min_bytes = bytes > 0 ? bytes : 0; }

int fl2_threads_for(int64_t n, int64_t nblocks, int nthreads)
{
    if (!fl2_pool_available() || n < parallel_threshold) return 1;
    if (nthreads <= 0) nthreads = fl2_get_num_threads();
    return nblocks < nthreads ? (int)nblocks : nthreads;
}

#define FL2_LOSS_NAME_(NAME, name) #name,
static const char *const loss_names[FL2_NLOSSES] = {FL2_LOSSES(FL2_LOSS_NAME_)};
#undef FL2_LOSS_NAME_

const char *fl2_loss_name(int code)
{
    return code >= 0 && code < FL2_NLOSSES ? loss_names[code] : NULL;
}
