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
#endif

#if defined(FL2_HAVE_X86_DISPATCH)
/* Whether the CPU is one where the AVX2 level's float32 1-d kernels beat the AVX-512 level's:
 * AMD's Zen 4 (family 19h: the family's only CPUs with AVX-512), which runs a 512-bit
 * operation as two 256-bit halves.  There a float32 operand's conversion to float64
 * (vcvtps2pd, two per element: y_pred and y_true) bounds the float32 1-d kernels in cache, and
 * the 256-bit conversions go faster than the 512-bit ones: the AVX2 kernels of float32
 * operands took 0.84-0.90x the AVX-512 ones' time at 10^4-10^6 elements (mse, mae, huber,
 * mse_and_grad, l2_penalty; one thread, 2026-12-04), where the weighted float32 kernels,
 * every float64 kernel and the columns and rows kernels took 1.03-2.2x (README "In cache").
 * The only CPU measured; others that split 512-bit operations (some of family 1Ah) are not
 * told apart here and keep the AVX-512 kernels. */
static int prefers_avx2_float32_runs(void)
{
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return 0;
    const int amd = ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u; /* "AuthenticAMD" */
    if (!amd || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    unsigned int family = (eax >> 8) & 0xfu;
    if (family == 0xfu) family += (eax >> 20) & 0xffu;
    return family == 0x19u;
}

/* The AVX-512 level's tables: its own kernels with kernels_avx512bf16.c's two bfloat16 ones
 * where the CPU has the BF16 extension, and a second table of block kernels with the AVX2
 * level's 1-d kernels of float32 operands (for CPUs where they are faster: above, or where
 * fl2_set_float32_runs says so).  Filled once, when the level is first made the one in use
 * (fl2_set_simd_level runs at import, under the GIL), and never written again: a later
 * choice only switches pointers, while other threads may run kernels.  Every level's
 * kernels give the same bits, so the choice is one of speed alone. */
static fl2_block_fn avx512_kernels[FL2_NKERNELS];
static fl2_block_fn avx512_kernels_avx2_float32[FL2_NKERNELS];
static fl2_columns_fn avx512_columns[FL2_NKERNELS];
static fl2_rows_fn avx512_rows[FL2_NKERNELS];
static int float32_runs_choice = -1; /* fl2_set_float32_runs: -1 this CPU's, 0, 1 */

static void fill_avx512_tables(void)
{
    static int filled = 0;
    if (filled) return;
    memcpy(avx512_kernels, fl2_kernels_avx512, sizeof avx512_kernels);
    memcpy(avx512_columns, fl2_kernels_avx512_columns, sizeof avx512_columns);
    memcpy(avx512_rows, fl2_kernels_avx512_rows, sizeof avx512_rows);
#if defined(FL2_HAVE_AVX512BF16)
    if (has_avx512bf16())
        for (int k = 0; k < 2; k++) {
            avx512_kernels[8 + k] = fl2_kernels_avx512bf16[k];
            avx512_columns[8 + k] = fl2_kernels_avx512bf16_columns[k];
            avx512_rows[8 + k] = fl2_kernels_avx512bf16_rows[k];
        }
#endif
    memcpy(avx512_kernels_avx2_float32, avx512_kernels, sizeof avx512_kernels);
    avx512_kernels_avx2_float32[0] = fl2_kernels_avx2[0]; /* float32 operands (fl2_kernel_index) */
    avx512_kernels_avx2_float32[4] = fl2_kernels_avx2[4]; /* the L2 penalty of float32 */
    filled = 1;
}
#endif

static const char *bfloat16_rounding = "integer code";

const char *fl2_bfloat16_rounding(void) { return bfloat16_rounding; }

/* The instruction-set level of the float32 1-d kernels in use (the active level's but where
 * the AVX-512 level runs the AVX2 ones: above). */
const char *fl2_float32_run_level(void)
{
#if defined(FL2_HAVE_X86_DISPATCH)
    if (fl2_active_kernels == avx512_kernels_avx2_float32) return "avx2";
#endif
    return active_level;
}

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

/* Makes levels[i] the one in use: its tables (the AVX-512 level's as above) and its
 * conversions; each table pointer is written once. */
static void activate(int i)
{
    const fl2_block_fn *kernels = levels[i].kernels;
    const fl2_columns_fn *columns = levels[i].columns;
    const fl2_rows_fn *rows = levels[i].rows;
    const char *rounding = "integer code";
#if defined(FL2_HAVE_X86_DISPATCH)
    if (levels[i].kernels == fl2_kernels_avx512) {
        fill_avx512_tables();
        const int avx2_float32 = float32_runs_choice < 0 ? prefers_avx2_float32_runs() : float32_runs_choice;
        kernels = avx2_float32 ? avx512_kernels_avx2_float32 : avx512_kernels;
        columns = avx512_columns;
        rows = avx512_rows;
#if defined(FL2_HAVE_AVX512BF16)
        if (has_avx512bf16()) rounding = "avx512_bf16";
#endif
    }
#endif
    fl2_active_kernels = kernels;
    fl2_active_columns = columns;
    fl2_active_rows = rows;
    active_level = levels[i].name;
    bfloat16_rounding = rounding;
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

/* Which kernels the AVX-512 level runs for float32 operands' 1-d passes: -1 this CPU's
 * choice (the default), 0 its own, 1 the AVX2 level's; applies from the next
 * fl2_set_simd_level.  For tests and measurements: the bits are the same. */
void fl2_set_float32_runs(int choice)
{
#if defined(FL2_HAVE_X86_DISPATCH)
    float32_runs_choice = choice < 0 ? -1 : choice != 0;
#else
    (void)choice;
#endif
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
