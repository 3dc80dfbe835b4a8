/*
 * C-level test harness of fastl2's kernels (the csrc/ sources linked in directly, no Python).
 *
 * It generates its inputs with its own integer PRNG (splitmix64 at a counter: the same values on
 * every platform, compiler and build), runs a broad set of cases through fl2_run,
 * fl2_weight_sum and fl2_run_strided, and prints one line per case: the case's name, the hex
 * bits of its sums (or a hash of an array of per-output sums/values) and a 64-bit hash (FNV-1a
 * over whole elements) of the bits of its gradient and elementwise outputs, element by element in
 * C order of the logical shape.  NaNs are made canonical before they are
 * printed or hashed: their sign and payload are unspecified (README, docs/api.md), and x86-64
 * and arm64 make different default NaNs.  Two builds that agree print the same lines:
 * tests/c/check_builds.sh diffs them.
 *
 * Within one build it checks, and exits 1 with a message on the first failure:
 *   - every SIMD level available (fl2_simd_levels_available) and nthreads 1 and 3 give the
 *     same line;
 *   - fl2_run_strided gives, for each output, the bits of fl2_run on that output's run gathered
 *     into contiguous arrays (sums, values, gradient, elementwise; fastl2.h promises it), and
 *     writes nothing between the elements of its outputs;
 *   - fl2_run's modes agree with each other (sums of "sums" and "sums + gradient", gradient of
 *     "gradient" alone, ...), weights_repeat r with the weights repeated r times, the penalty
 *     (y_true NULL) with y_true all zeros, a gradient written over y_pred with one written
 *     elsewhere, fl2_weight_sum with the pass's weight sum.
 *
 * Build (from the repository root; tests/c/check_builds.sh makes four builds and compares them):
 *   cc -std=c11 -O3 -ffp-contract=off -fno-math-errno -pthread -Icsrc <every .c file of csrc>
 *      tests/c/harness.c -o harness -lm
 * Usage: harness [--raw-nan] [--filter SUBSTRING] [--quick]
 *   --raw-nan  print and hash NaNs as they are, to see where builds make different NaNs (implies
 *              --quick: the levels and modes of one build differ in them too; the checks
 *              within the build still compare NaNs as NaNs)
 *   --filter   run only the cases whose name contains SUBSTRING
 *   --quick    only the first SIMD level and nthreads 1 for each case (no cross-level check)
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fastl2.h"
#include "pool.h" /* fl2_pool_available */

/* ---- deterministic values --------------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* splitmix64's output number i + 1 of a generator seeded with `seed` */
static uint64_t rnd(uint64_t seed, uint64_t i) { return mix64(seed + (i + 1) * 0x9E3779B97F4A7C15ull); }
static double u01(uint64_t h) { return (double)(h >> 11) * 0x1p-53; } /* exact: [0, 1) */

static double from_bits(uint64_t b)
{
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}
/* x * 2^e for -1622 <= e <= 1023 (ldexp without libm's cost): exact, or one rounding into the
 * subnormals (the first product, 2^-53 <= |x| < 2, stays normal) */
static double scale2(double x, int e)
{
    if (e >= -1022) return x * from_bits((uint64_t)(e + 1023) << 52);
    return x * from_bits((uint64_t)(e + 600 + 1023) << 52) * 0x1p-600;
}
static uint64_t bits_of(double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}
static uint32_t fbits_of(float x)
{
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

enum { K_NORMAL, K_WIDE, K_SPECIAL, K_NONAN, K_EXTREME, K_TINY, NKINDS };
static const char *const kind_names[NKINDS] = {"normal", "wide", "special", "nonan", "extreme", "tiny"};

/* The special values (hex floats: exact in every compiler): first the NaNs (quiet, negative
 * with a payload, signalling), then the infinities (set from their bits in special()). */
#define NSPECIAL_NAN 3
static const double special_table[] = {
    0.0, 0.0, 0.0, 0.0, 0.0, /* nan, -nan, snan, inf, -inf */
    0.0, -0.0, 0x1p-1074, -0x1p-1074, 0x1.8p-1030, -0x1.234p-1060, 0x1p-149, -0x1p-140,
    0x1.4p-130, 0x1.fffffffffffffp+1023, -0x1.fffffffffffffp+1023, 0x1.fffffep+127,
    -0x1p+128, 0x1p+1000, -0x1.5p+600, 0x1p+513, 0x1p-600, -0x1p-540, 0x1p-1022, 1.0, -1.0,
    0x1p+64, -0x1p+200, 0x1.fffffcp+127, 0x1.000001p+0,
};
#define NSPECIAL ((int)(sizeof special_table / sizeof special_table[0]))
static double special(int k)
{
    switch (k) {
    case 0: return from_bits(0x7ff8000000000000ull);
    case 1: return from_bits(0xfff8000000000001ull);
    case 2: return from_bits(0x7ff0000000000001ull);
    case 3: return from_bits(0x7ff0000000000000ull);
    case 4: return from_bits(0xfff0000000000000ull);
    default: return special_table[k];
    }
}

/* Element i of an operand: role 0 y_true, 1 y_pred, 2 weights.  y_pred is y_true's value
 * plus a difference of varied scale, so that huber meets both of its sides. */
static double value_of(int kind, int role, uint64_t seed, uint64_t i)
{
    const uint64_t h = rnd(seed, i), g = mix64(h ^ 0x5bd1e995u);
    const double u = u01(h);
    if (role == 2) { /* weights */
        switch (kind) {
        case K_NORMAL:
            if ((g & 15) == 0) return 0.0;
            if ((g & 15) == 1) return 1.0;
            return 2.0 * u;
        case K_WIDE: return scale2(2.0 * u - 1.0, (int)(g % 81) - 40);
        case K_SPECIAL:
            if ((g & 31) == 0) return special((int)((g >> 8) % NSPECIAL));
            return 2.0 * u;
        case K_NONAN:
            if ((g & 31) == 0) return special(NSPECIAL_NAN + (int)((g >> 8) % (NSPECIAL - NSPECIAL_NAN)));
            return 2.0 * u;
        case K_EXTREME: return (g & 1) ? scale2(1.0 + u, 400 + (int)((g >> 1) % 600)) : scale2(u, -1000);
        default: return scale2(1.0 + u, -(int)((g >> 1) % 1100));
        }
    }
    const uint64_t ht = rnd(seed ^ 0xabcdefull, i), gt = mix64(ht ^ 0x5bd1e995u);
    double t = scale2(2.0 * u01(ht) - 1.0, (int)(gt % 7) - 3); /* the shared "true" value */
    switch (kind) {
    case K_NORMAL:
        return role == 0 ? t : t + scale2(2.0 * u - 1.0, (int)(g % 11) - 8);
    case K_WIDE: /* independent, random signs, 2^-80 .. 2^80 */
        return scale2(2.0 * u - 1.0, (int)(g % 161) - 80);
    case K_SPECIAL:
        if ((g & 15) == 0) return special((int)((g >> 8) % NSPECIAL));
        return role == 0 ? t : t + scale2(2.0 * u - 1.0, (int)(g % 11) - 8);
    case K_NONAN:
        if ((g & 15) == 0) return special(NSPECIAL_NAN + (int)((g >> 8) % (NSPECIAL - NSPECIAL_NAN)));
        return role == 0 ? t : t + scale2(2.0 * u - 1.0, (int)(g % 11) - 8);
    case K_EXTREME: { /* huge (squares overflow) and tiny, in both dtypes' ranges */
        const double s = (g & 2) ? -1.0 : 1.0;
        switch ((g >> 2) & 3) {
        case 0: return s * scale2(1.0 + u, 500 + (int)((g >> 4) % 524));
        case 1: return s * scale2(1.0 + u, 60 + (int)((g >> 4) % 68));
        case 2: return s * scale2(u, -1022 - (int)((g >> 4) % 52));
        default: return s * scale2(1.0 + u, -150 + (int)((g >> 4) % 30));
        }
    }
    default: { /* K_TINY: subnormal and near-subnormal values, squares underflow */
        const double s = (g & 2) ? -1.0 : 1.0;
        return (g & 4) ? s * scale2(u, -1022 - (int)((g >> 3) % 40))
                       : s * scale2(1.0 + u, -155 + (int)((g >> 3) % 40));
    }
    }
}

/* ---- elements at any address ---------------------------------------------------------- */

static double get_el(const char *p, int dt)
{
    if (dt == FL2_FLOAT64) {
        double v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}
static void put_el(char *p, int dt, double x)
{
    if (dt == FL2_FLOAT64) {
        memcpy(p, &x, sizeof x);
    } else {
        float f = (float)x;
        memcpy(p, &f, sizeof f);
    }
}
static int item_of(int dt) { return dt == FL2_FLOAT64 ? 8 : 4; }

static int raw_nan = 0;

/* The bits of element p as an integer, NaNs canonical (el_bits_c: always; el_bits and dbits,
 * what the lines print: unless --raw-nan). */
static uint64_t el_bits_c(const char *p, int dt)
{
    if (dt == FL2_FLOAT64) {
        double v;
        memcpy(&v, p, sizeof v);
        return v != v ? 0x7ff8000000000000ull : bits_of(v);
    }
    float v;
    memcpy(&v, p, sizeof v);
    return v != v ? 0x7fc00000u : fbits_of(v);
}
static uint64_t dbits_c(double v) { return v != v ? 0x7ff8000000000000ull : bits_of(v); }
static uint64_t el_bits(const char *p, int dt)
{
    if (!raw_nan) return el_bits_c(p, dt);
    if (dt == FL2_FLOAT64) return bits_of(get_el(p, dt));
    uint32_t b;
    memcpy(&b, p, sizeof b);
    return b;
}
static uint64_t dbits(double v) { return raw_nan ? bits_of(v) : dbits_c(v); }

#define FNV_START 0xcbf29ce484222325ull
/* FNV-1a over whole elements (the element's bits as one word, not byte by byte) */
static uint64_t fnv(uint64_t h, uint64_t x, int nbytes)
{
    (void)nbytes;
    return (h ^ x) * 0x100000001b3ull;
}

/* ---- failure reporting ---------------------------------------------------------------- */

static const char *current_case = "";
static const char *current_level = "";
static int current_threads = 0;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "\nHARNESS FAILURE in case %s (SIMD level %s, nthreads %d):\n  ", current_case,
            current_level, current_threads);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "harness: out of memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}

/* ---- the SIMD levels and thread counts ------------------------------------------------- */

static char level_names[8][32];
static int nlevels = 0;
static int quick = 0;
static const int thread_counts[] = {1, 3};
#define NTHREAD_COUNTS 2

static void set_level(int l)
{
    if (fl2_set_simd_level(level_names[l]) != 0) {
        fprintf(stderr, "harness: fl2_set_simd_level(\"%s\") failed\n", level_names[l]);
        exit(2);
    }
    current_level = level_names[l];
}

/* Runs `fn` for every level and thread count and checks that each gives the first one's line;
 * `check` (if not NULL) runs once, after the first. */
typedef void (*case_fn)(void *ctx, int nthreads, char *line, size_t size);
typedef void (*check_fn)(void *ctx);

static int64_t cases_run = 0;
static const char *filter = NULL;

static void run_case(const char *name, case_fn fn, check_fn check, void *ctx)
{
    static char first[4096], line[4096];
    if (filter && !strstr(name, filter)) return;
    current_case = name;
    int any = 0;
    for (int l = 0; l < nlevels; l++) {
        set_level(l);
        for (int t = 0; t < NTHREAD_COUNTS; t++) {
            current_threads = thread_counts[t];
            char *out = any ? line : first;
            out[0] = '\0';
            fn(ctx, thread_counts[t], out, sizeof first);
            if (!any) {
                if (check) check(ctx);
                any = 1;
            } else if (strcmp(first, line) != 0) {
                fail("results differ between SIMD levels / thread counts:\n    %s nthreads 1: %s\n"
                     "    %s nthreads %d: %s",
                     level_names[0], first, level_names[l], thread_counts[t], line);
            }
            if (quick) break;
        }
        if (quick) break;
    }
    set_level(nlevels - 1);
    printf("%s %s\n", name, first);
    cases_run++;
}

/* ---- operands in any layout -------------------------------------------------------------- */

#define MAXD 4
typedef struct {
    int order[MAXD]; /* memory order: order[0] the outermost logical dim, ... */
    int step;        /* the innermost dim's stride in items (1 or 2; 0 means 1) */
    unsigned flip;   /* logical dims walked backwards (negative strides) */
    unsigned bcast;  /* logical dims of stride 0 (inputs only) */
    int pad;         /* bytes added to each outer stride (misaligns rows when not a multiple of the item) */
    int misalign;    /* bytes from an aligned address */
} opspec;

typedef struct {
    char *alloc;
    size_t size;
    char *base;    /* element (0, ..., 0) */
    int dt;
    int64_t strides[MAXD];
    int64_t *offs; /* byte offset from base of each logical element, in C order */
} operand;

/* Walks the C-order indices of shape: idx[] advances like an odometer. */
static void odometer_next(int nd, const int64_t *shape, int64_t *idx)
{
    for (int d = nd - 1; d >= 0; d--) {
        if (++idx[d] < shape[d]) return;
        idx[d] = 0;
    }
}

static int64_t total_of(int nd, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= shape[d];
    return n;
}

/* Logical element `index` (C order over the shape) of the operand. */
#define AT(op, index) ((op)->base + (op)->offs[index])

#define GAP_INPUT 0xff  /* a NaN in either dtype: an element read by mistake shows */
#define GAP_OUTPUT 0x5a

static void make_operand(operand *op, int nd, const int64_t *shape, const opspec *sp, int dt,
                         int gap)
{
    const int item = item_of(dt);
    int64_t s = (int64_t)item * (sp->step ? sp->step : 1);
    int order[MAXD];
    int has_order = 0;
    for (int j = 0; j < nd; j++) has_order |= sp->order[j];
    for (int j = 0; j < nd; j++) order[j] = has_order ? sp->order[j] : j;
    int empty = 0;
    for (int d = 0; d < nd; d++) empty |= shape[d] == 0;
    for (int j = nd - 1; j >= 0; j--) {
        const int d = order[j];
        if (sp->bcast & (1u << d)) {
            op->strides[d] = 0;
            continue;
        }
        op->strides[d] = s;
        s = s * (shape[d] > 0 ? shape[d] : 1) + sp->pad;
    }
    int64_t span = item, offset = 0;
    for (int d = 0; d < nd; d++) {
        if (shape[d] > 0) span += (shape[d] - 1) * op->strides[d];
        if (sp->flip & (1u << d)) {
            if (shape[d] > 0) offset += (shape[d] - 1) * op->strides[d];
            op->strides[d] = -op->strides[d];
        }
    }
    op->size = (size_t)span + (size_t)sp->misalign + 64;
    op->alloc = (char *)xmalloc(op->size);
    memset(op->alloc, gap, op->size);
    op->base = op->alloc + sp->misalign + offset;
    op->dt = dt;
    const int64_t n = empty ? 0 : total_of(nd, shape);
    op->offs = (int64_t *)xmalloc((size_t)(n ? n : 1) * sizeof(int64_t));
    int64_t idx[MAXD] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < nd; d++) off += idx[d] * op->strides[d];
        op->offs[i] = off;
        odometer_next(nd, shape, idx);
    }
}

/* Element i of the operand: value i of its role, of the index with the broadcast dims' set
 * to 0 (so that every write to one address writes one value). */
static void fill_operand(operand *op, int nd, const int64_t *shape, unsigned bcast, int kind,
                         int role, uint64_t seed)
{
    const int64_t n = total_of(nd, shape);
    int64_t idx[MAXD] = {0}, mul[MAXD], m = 1;
    for (int d = nd - 1; d >= 0; d--) {
        mul[d] = (bcast & (1u << d)) ? 0 : m;
        m *= shape[d];
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t v = 0;
        for (int d = 0; d < nd; d++) v += idx[d] * mul[d];
        put_el(AT(op, i), op->dt, value_of(kind, role, seed, (uint64_t)v));
        odometer_next(nd, shape, idx);
    }
}

/* Hash of the operand's elements in logical C order; checks the bytes between them still
 * hold the gap pattern. */
static uint64_t hash_operand(const operand *op, int nd, const int64_t *shape, int gap,
                             const char *what)
{
    const int64_t n = total_of(nd, shape);
    const int item = item_of(op->dt);
    uint64_t h = FNV_START;
    char *copy = (char *)xmalloc(op->size);
    memcpy(copy, op->alloc, op->size);
    for (int64_t i = 0; i < n; i++) {
        const char *p = AT(op, i);
        h = fnv(h, el_bits(p, op->dt), item);
        memset(copy + (p - op->alloc), gap, (size_t)item);
    }
    for (size_t b = 0; b < op->size; b++)
        if ((unsigned char)copy[b] != gap)
            fail("%s: byte %zd from element (0, ..., 0) was written, between or outside the elements",
                 what, (ptrdiff_t)b - (op->base - op->alloc));
    free(copy);
    return h;
}

static void free_operand(operand *op)
{
    free(op->alloc);
    free(op->offs);
    op->alloc = NULL;
    op->offs = NULL;
}

/* ---- the problem's parameters ----------------------------------------------------------- */

static const char *dt_name(int dt) { return dt < 0 ? "-" : dt == FL2_FLOAT64 ? "d" : "f"; }

/* The gradient factor of each loss (_losses.py: squared 2, absolute 1, huber 1) */
static double grad_scale_of(int loss, int penalty)
{
    if (penalty) return 2.0 * 0.375; /* 2 * lam */
    return loss == FL2_SQUARED ? 2.0 : 1.0;
}
static const double huber_deltas[] = {1.0, 0.25, 3.0, 0x1p-10};

static double param_of(int loss, int i) { return loss == FL2_HUBER ? huber_deltas[i % 4] : 0.0; }

/* ---- 1-d cases: fl2_run and fl2_weight_sum --------------------------------------------- */

enum { M_SUMS = 1, M_GRAD = 2, M_ELEM = 4, M_WEIGHTS = 8 };
static const char *mode_name(int m)
{
    switch (m) {
    case M_SUMS: return "sums";
    case M_SUMS | M_GRAD: return "sums+grad";
    case M_GRAD: return "grad";
    case M_ELEM: return "elem";
    case M_ELEM | M_GRAD: return "elem+grad";
    case M_WEIGHTS: return "weightsum";
    default: return "?";
    }
}

typedef struct {
    int loss;
    double param;
    int tdt, pdt, wdt; /* -1: absent */
    int64_t wrep;
    int64_t n;
    int kind;
    int mode;
    int divisor_kind; /* 0: 1, 1: n, 2: the weight sum (fl2_weight_sum), 3: 3.0 */
    int misalign;
    int alias;        /* the gradient over y_pred */
    int stream;       /* streaming stores for every gradient */
    double grad_scale;
    uint64_t seed;
    /* inputs, built once */
    char *tbuf, *pbuf, *wbuf, *palloc, *talloc, *walloc;
    int64_t nw;
} case1d;

static int result_dt(int tdt, int pdt, int wdt)
{
    return (pdt == FL2_FLOAT64 || tdt == FL2_FLOAT64 || wdt == FL2_FLOAT64) ? FL2_FLOAT64 : FL2_FLOAT32;
}

static char *make_input(char **alloc, int64_t n, int dt, int kind, int role, uint64_t seed, int misalign)
{
    const int item = item_of(dt);
    *alloc = (char *)xmalloc((size_t)n * item + 16 + (size_t)misalign);
    char *p = *alloc + misalign;
    double *vals = (double *)xmalloc((size_t)(n ? n : 1) * sizeof(double)); /* memcpy'd in */
    for (int64_t i = 0; i < n; i++) vals[i] = value_of(kind, role, seed, (uint64_t)i);
    for (int64_t i = 0; i < n; i++) put_el(p + i * item, dt, vals[i]);
    free(vals);
    return p;
}

static void build_1d(case1d *c)
{
    c->nw = c->wdt < 0 ? 0 : (c->n + c->wrep - 1) / c->wrep;
    c->tbuf = c->tdt < 0 ? NULL : make_input(&c->talloc, c->n, c->tdt, c->kind, 0, c->seed, c->misalign);
    c->pbuf = make_input(&c->palloc, c->n, c->pdt, c->kind, 1, c->seed, c->misalign);
    c->wbuf = c->wdt < 0 ? NULL : make_input(&c->walloc, c->nw, c->wdt, c->kind, 2, c->seed, c->misalign);
}

static void free_1d(case1d *c)
{
    free(c->talloc);
    free(c->palloc);
    free(c->walloc);
    c->talloc = c->palloc = c->walloc = NULL;
}

static fl2_problem problem_1d(const case1d *c)
{
    fl2_problem p;
    memset(&p, 0, sizeof p);
    p.loss = (fl2_loss)c->loss;
    p.loss_param = c->param;
    p.n = c->n;
    p.y_true = c->tbuf;
    p.y_pred = c->pbuf;
    p.weights = c->wbuf;
    p.true_dtype = c->tdt == FL2_FLOAT64 ? FL2_FLOAT64 : FL2_FLOAT32;
    p.pred_dtype = (fl2_dtype)c->pdt;
    p.weights_dtype = c->wdt == FL2_FLOAT64 ? FL2_FLOAT64 : FL2_FLOAT32;
    p.weights_repeat = c->wrep;
    if (c->tdt < 0) p.true_dtype = FL2_FLOAT64; /* (as the Python layer leaves it) */
    if (c->wdt < 0) p.weights_dtype = FL2_FLOAT64;
    return p;
}

/* What one 1-d call gave. */
typedef struct {
    fl2_sums sums;
    double wsum;
    uint64_t grad_hash, elem_hash;
    char *grad, *elem; /* the outputs, kept for comparisons (caller frees) */
} result1d;

static double divisor_1d(const case1d *c, int nthreads)
{
    switch (c->divisor_kind) {
    case 0: return 1.0;
    case 1: return c->n > 0 ? (double)c->n : 1.0;
    case 2:
        if (c->wdt >= 0) {
            fl2_problem p = problem_1d(c);
            double w = 0.0;
            if (fl2_weight_sum(&p, &w, NULL, nthreads) != 0) fail("fl2_weight_sum failed");
            return w;
        }
        return c->n > 0 ? (double)c->n : 1.0;
    default: return 3.0;
    }
}

static uint64_t hash_array(const char *p, int64_t n, int dt)
{
    uint64_t h = FNV_START;
    const int item = item_of(dt);
    for (int64_t i = 0; i < n; i++) h = fnv(h, el_bits(p + i * item, dt), item);
    return h;
}

/* One fl2_run (or fl2_weight_sum) call of case c in `mode`; the gradient over y_pred with
 * `alias` (y_pred is rebuilt afterwards). */
static void call_1d(case1d *c, int mode, int alias, int nthreads, result1d *r)
{
    memset(r, 0, sizeof *r);
    fl2_problem p = problem_1d(c);
    fl2_set_stream_threshold(c->stream ? 0 : ((int64_t)16 << 20));
    if (mode == M_WEIGHTS) {
        if (fl2_weight_sum(&p, &r->wsum, NULL, nthreads) != 0) fail("fl2_weight_sum failed");
        return;
    }
    const int pitem = item_of(c->pdt), rdt = result_dt(c->tdt, c->pdt, c->wdt);
    fl2_outputs o;
    memset(&o, 0, sizeof o);
    char *galloc = NULL, *ealloc = NULL;
    if (mode & M_GRAD) {
        if (alias) {
            o.grad = c->pbuf;
        } else {
            galloc = (char *)xmalloc((size_t)c->n * pitem + 16 + (size_t)c->misalign);
            memset(galloc, GAP_OUTPUT, (size_t)c->n * pitem + 16 + (size_t)c->misalign);
            o.grad = galloc + c->misalign;
        }
        o.grad_scale = c->grad_scale;
        o.grad_divisor = divisor_1d(c, nthreads);
    }
    if (mode & M_ELEM) {
        const size_t size = (size_t)c->n * item_of(rdt) + 16 + (size_t)c->misalign;
        ealloc = (char *)xmalloc(size);
        memset(ealloc, GAP_OUTPUT, size);
        o.elementwise = ealloc + c->misalign;
    }
    fl2_sums sums = {-1.0, -1.0, -1.0, -1.0};
    const int status = fl2_run(&p, &o, (mode & M_SUMS) ? &sums : NULL, nthreads);
    if (status != 0) fail("fl2_run returned %d", status);
    r->sums = sums;
    if (mode & M_GRAD) {
        r->grad = (char *)xmalloc((size_t)c->n * pitem);
        memcpy(r->grad, o.grad, (size_t)c->n * pitem);
        r->grad_hash = hash_array(r->grad, c->n, c->pdt);
        if (!alias)
            for (size_t b = (size_t)c->n * pitem + c->misalign; b < (size_t)c->n * pitem + 16 + c->misalign; b++)
                if ((unsigned char)galloc[b] != GAP_OUTPUT) fail("fl2_run wrote past the gradient");
    }
    if (mode & M_ELEM) {
        const int item = item_of(rdt);
        r->elem = (char *)xmalloc((size_t)c->n * item);
        memcpy(r->elem, o.elementwise, (size_t)c->n * item);
        r->elem_hash = hash_array(r->elem, c->n, rdt);
        for (size_t b = (size_t)c->n * item + c->misalign; b < (size_t)c->n * item + 16 + c->misalign; b++)
            if ((unsigned char)ealloc[b] != GAP_OUTPUT) fail("fl2_run wrote past the elementwise output");
    }
    free(galloc);
    free(ealloc);
    if (alias) { /* y_pred was overwritten: back to the case's values */
        free(c->palloc);
        c->pbuf = make_input(&c->palloc, c->n, c->pdt, c->kind, 1, c->seed, c->misalign);
    }
}

static void free_result(result1d *r)
{
    free(r->grad);
    free(r->elem);
    r->grad = r->elem = NULL;
}

static void format_1d(const case1d *c, const result1d *r, char *line, size_t size)
{
    if (c->mode == M_WEIGHTS) {
        snprintf(line, size, "wsum=%016llx", (unsigned long long)dbits(r->wsum));
        return;
    }
    char s[80] = "-", g[32] = "-", e[32] = "-";
    if (c->mode & M_SUMS)
        snprintf(s, sizeof s, "%016llx,%016llx,%016llx,%016llx", (unsigned long long)dbits(r->sums.loss),
                 (unsigned long long)dbits(r->sums.weights), (unsigned long long)dbits(r->sums.loss_lo),
                 (unsigned long long)dbits(r->sums.weights_lo));
    if (c->mode & M_GRAD) snprintf(g, sizeof g, "%016llx", (unsigned long long)r->grad_hash);
    if (c->mode & M_ELEM) snprintf(e, sizeof e, "%016llx", (unsigned long long)r->elem_hash);
    snprintf(line, size, "sums=%s grad=%s elem=%s", s, g, e);
}

static void case_1d_fn(void *ctx, int nthreads, char *line, size_t size)
{
    case1d *c = (case1d *)ctx;
    result1d r;
    call_1d(c, c->mode, c->alias, nthreads, &r);
    format_1d(c, &r, line, size);
    free_result(&r);
}

static void same_bits(const char *what, double a, double b)
{
    if (dbits_c(a) != dbits_c(b))
        fail("%s: %016llx (%.17g) != %016llx (%.17g)", what, (unsigned long long)bits_of(a), a,
             (unsigned long long)bits_of(b), b);
}
static void same_array(const char *what, const char *a, const char *b, int64_t n, int dt)
{
    const int item = item_of(dt);
    for (int64_t i = 0; i < n; i++) {
        const uint64_t x = el_bits_c(a + i * item, dt), y = el_bits_c(b + i * item, dt);
        if (x != y)
            fail("%s: element %lld: %llx (%.17g) != %llx (%.17g)", what, (long long)i,
                 (unsigned long long)x, get_el(a + i * item, dt), (unsigned long long)y,
                 get_el(b + i * item, dt));
    }
}

/* The checks of a 1-d case against other calls that must give its bits. */
static void compare_results(const case1d *c, int mode, const result1d *a, const result1d *b,
                            const char *what)
{
    char buf[256];
    const int rdt = result_dt(c->tdt, c->pdt, c->wdt);
    if (mode & M_SUMS) {
        snprintf(buf, sizeof buf, "%s: loss sum", what);
        same_bits(buf, a->sums.loss, b->sums.loss);
        snprintf(buf, sizeof buf, "%s: weight sum", what);
        same_bits(buf, a->sums.weights, b->sums.weights);
        snprintf(buf, sizeof buf, "%s: loss sum's rest", what);
        same_bits(buf, a->sums.loss_lo, b->sums.loss_lo);
        snprintf(buf, sizeof buf, "%s: weight sum's rest", what);
        same_bits(buf, a->sums.weights_lo, b->sums.weights_lo);
    }
    if (mode & M_GRAD) {
        snprintf(buf, sizeof buf, "%s: gradient", what);
        same_array(buf, a->grad, b->grad, c->n, c->pdt);
    }
    if (mode & M_ELEM) {
        snprintf(buf, sizeof buf, "%s: elementwise", what);
        same_array(buf, a->elem, b->elem, c->n, rdt);
    }
    if (mode == M_WEIGHTS) {
        snprintf(buf, sizeof buf, "%s: weight sum", what);
        same_bits(buf, a->wsum, b->wsum);
    }
}

/* One more call, of `variant` (the case `c` changed in a way that must not change its bits), on
 * one thread, checked against `base`. */
static void check_variant(const case1d *c, int mode, const result1d *base, case1d *variant,
                          const char *what)
{
    result1d r;
    call_1d(variant, mode, 0, 1, &r);
    compare_results(c, mode, base, &r, what);
    free_result(&r);
}

static void case_1d_check(void *ctx)
{
    case1d *c = (case1d *)ctx;
    result1d base;
    call_1d(c, c->mode, c->alias, 1, &base);
    const int mode = c->mode;
    /* the modes of one call against each other */
    if (mode == (M_SUMS | M_GRAD) || mode == (M_ELEM | M_GRAD)) {
        result1d part;
        call_1d(c, mode & ~M_GRAD, 0, 1, &part);
        compare_results(c, mode & ~M_GRAD, &base, &part, "combined call vs the call without the gradient");
        free_result(&part);
        call_1d(c, M_GRAD, 0, 1, &part);
        compare_results(c, M_GRAD, &base, &part, "combined call vs the gradient alone");
        free_result(&part);
    }
    /* the weight sum of the pass, and fl2_weight_sum */
    if ((mode & M_SUMS) && c->wdt >= 0) {
        result1d w;
        call_1d(c, M_WEIGHTS, 0, 1, &w);
        same_bits("fl2_run's weight sum vs fl2_weight_sum", base.sums.weights, w.wsum);
    }
    /* the gradient over y_pred against one elsewhere, and the other way round */
    if (mode & M_GRAD) {
        result1d other;
        call_1d(c, mode, !c->alias, 1, &other);
        compare_results(c, mode, &base, &other, "gradient over y_pred vs in its own array");
        free_result(&other);
    }
    /* weights_repeat r against the weights repeated r times */
    if (c->wdt >= 0 && c->wrep > 1) {
        case1d full = *c;
        full.wrep = 1;
        full.tbuf = c->tbuf;
        full.pbuf = c->pbuf;
        full.walloc = (char *)xmalloc((size_t)(c->n ? c->n : 1) * item_of(c->wdt) + 16 + (size_t)c->misalign);
        full.wbuf = full.walloc + c->misalign;
        const int item = item_of(c->wdt);
        for (int64_t i = 0; i < c->n; i++) memcpy(full.wbuf + i * item, c->wbuf + (i / c->wrep) * item, (size_t)item);
        full.palloc = NULL; /* (not rebuilt: no alias below) */
        full.alias = 0;
        check_variant(c, mode, &base, &full, "weights_repeat vs the weights repeated");
        free(full.walloc);
    }
    /* the penalty (no y_true) against y_true all zeros */
    if (c->tdt < 0 && mode != M_WEIGHTS) {
        case1d zeros = *c;
        zeros.tdt = c->pdt;
        zeros.talloc = (char *)xmalloc((size_t)(c->n ? c->n : 1) * item_of(c->pdt) + 16 + (size_t)c->misalign);
        memset(zeros.talloc, 0, (size_t)(c->n ? c->n : 1) * item_of(c->pdt) + 16 + (size_t)c->misalign);
        zeros.tbuf = zeros.talloc + c->misalign;
        zeros.alias = 0;
        check_variant(c, mode, &base, &zeros, "penalty vs y_true all zeros");
        free(zeros.talloc);
    }
    free_result(&base);
}

/* ---- strided cases: fl2_run_strided ------------------------------------------------------ */

enum { S_SUMS = 1, S_VALUES = 2, S_WEIGHTS = 3, S_SUMS_GRAD = 4, S_GRAD = 5, S_ELEM = 6, S_ELEM_GRAD = 7 };
static const char *smode_name(int m)
{
    static const char *const names[] = {"?", "sums", "values", "weightsums", "sums+grad", "grad", "elem", "elem+grad"};
    return names[m];
}
static int smode_1d(int m) /* the fl2_run mode of the reference */
{
    switch (m) {
    case S_SUMS: case S_VALUES: return M_SUMS;
    case S_WEIGHTS: return M_WEIGHTS;
    case S_SUMS_GRAD: return M_SUMS | M_GRAD;
    case S_GRAD: return M_GRAD;
    case S_ELEM: return M_ELEM;
    default: return M_ELEM | M_GRAD;
    }
}

typedef struct {
    char name[200];
    int nd, nkept;
    int64_t shape[MAXD];
    opspec spec[FL2_NOPS];
    int loss;
    double param;
    int tdt, pdt, wdt;
    int kind;
    int smode;
    int single, root; /* S_VALUES */
    double divisor;   /* S_VALUES; and the gradient's */
    uint64_t seed;
    operand op[FL2_NOPS];
    int64_t outputs, reduced;
    /* the results of the last call */
    double *loss_sums, *weight_sums, *loss_lo, *weight_lo;
    char *values;
    uint64_t grad_hash, elem_hash;
} casend;

static void build_nd(casend *c)
{
    memset(c->op, 0, sizeof c->op);
    c->outputs = c->reduced = 1;
    for (int d = 0; d < c->nd; d++) {
        if (d < c->nkept) c->outputs *= c->shape[d];
        else c->reduced *= c->shape[d];
    }
    const int dts[3] = {c->tdt, c->pdt, c->wdt};
    for (int k = 0; k < 3; k++) {
        if (dts[k] < 0) continue;
        make_operand(&c->op[k], c->nd, c->shape, &c->spec[k], dts[k], GAP_INPUT);
        fill_operand(&c->op[k], c->nd, c->shape, c->spec[k].bcast, c->kind, k, c->seed);
    }
    const size_t n = (size_t)(c->outputs > 0 ? c->outputs : 1);
    c->loss_sums = (double *)xmalloc(n * sizeof(double));
    c->weight_sums = (double *)xmalloc(n * sizeof(double));
    c->loss_lo = (double *)xmalloc(n * sizeof(double));
    c->weight_lo = (double *)xmalloc(n * sizeof(double));
    c->values = (char *)xmalloc(n * sizeof(double));
}

static void free_nd(casend *c)
{
    for (int k = 0; k < FL2_NOPS; k++) free_operand(&c->op[k]);
    free(c->loss_sums);
    free(c->weight_sums);
    free(c->loss_lo);
    free(c->weight_lo);
    free(c->values);
}

static fl2_problem problem_nd(const casend *c)
{
    fl2_problem p;
    memset(&p, 0, sizeof p);
    p.loss = (fl2_loss)c->loss;
    p.loss_param = c->param;
    p.n = total_of(c->nd, c->shape);
    p.y_true = c->tdt < 0 ? NULL : c->op[FL2_OP_TRUE].base;
    p.y_pred = c->op[FL2_OP_PRED].base;
    p.weights = c->wdt < 0 ? NULL : c->op[FL2_OP_WEIGHTS].base;
    p.true_dtype = c->tdt == FL2_FLOAT32 ? FL2_FLOAT32 : FL2_FLOAT64;
    p.pred_dtype = (fl2_dtype)c->pdt;
    p.weights_dtype = c->wdt == FL2_FLOAT32 ? FL2_FLOAT32 : FL2_FLOAT64;
    p.weights_repeat = 1;
    return p;
}

static void call_nd(casend *c, int nthreads)
{
    fl2_problem p = problem_nd(c);
    fl2_layout l;
    memset(&l, 0, sizeof l);
    l.ndim = c->nd;
    l.nkept = c->nkept;
    const int rdt = result_dt(c->tdt, c->pdt, c->wdt);
    const int want_grad = c->smode == S_SUMS_GRAD || c->smode == S_GRAD || c->smode == S_ELEM_GRAD;
    const int want_elem = c->smode == S_ELEM || c->smode == S_ELEM_GRAD;
    free_operand(&c->op[FL2_OP_GRAD]);
    free_operand(&c->op[FL2_OP_ELEM]);
    if (want_grad) make_operand(&c->op[FL2_OP_GRAD], c->nd, c->shape, &c->spec[FL2_OP_GRAD], c->pdt, GAP_OUTPUT);
    if (want_elem) make_operand(&c->op[FL2_OP_ELEM], c->nd, c->shape, &c->spec[FL2_OP_ELEM], rdt, GAP_OUTPUT);
    for (int d = 0; d < c->nd; d++) {
        l.shape[d] = c->shape[d];
        for (int k = 0; k < FL2_NOPS; k++) l.strides[k][d] = c->op[k].alloc ? c->op[k].strides[d] : 0;
    }
    fl2_outputs o;
    memset(&o, 0, sizeof o);
    o.grad = want_grad ? c->op[FL2_OP_GRAD].base : NULL;
    o.elementwise = want_elem ? c->op[FL2_OP_ELEM].base : NULL;
    o.grad_scale = grad_scale_of(c->loss, c->tdt < 0);
    o.grad_divisor = c->divisor;
    const size_t n = (size_t)(c->outputs > 0 ? c->outputs : 1);
    for (size_t i = 0; i < n; i++) c->loss_sums[i] = c->weight_sums[i] = c->loss_lo[i] = c->weight_lo[i] = -7.0;
    memset(c->values, GAP_OUTPUT, n * sizeof(double));
    fl2_values v = {c->values, c->single, c->root, c->divisor, NULL, 0.0, 0};
    v.count = 1;
    for (int d = c->nkept; d < c->nd; d++) v.count *= c->shape[d];
    int status;
    switch (c->smode) {
    case S_SUMS: case S_SUMS_GRAD:
        status = fl2_run_strided(&p, &l, &o, c->loss_sums, c->weight_sums, c->loss_lo, c->weight_lo, NULL,
                                 nthreads);
        break;
    case S_VALUES:
        status = fl2_run_strided(&p, &l, &o, NULL, NULL, NULL, NULL, &v, nthreads);
        break;
    case S_WEIGHTS:
        status = fl2_run_strided(&p, &l, NULL, NULL, c->weight_sums, NULL, c->weight_lo, NULL, nthreads);
        break;
    default:
        status = fl2_run_strided(&p, &l, &o, NULL, NULL, NULL, NULL, NULL, nthreads);
        break;
    }
    if (status != 0) fail("fl2_run_strided returned %d", status);
    c->grad_hash = want_grad ? hash_operand(&c->op[FL2_OP_GRAD], c->nd, c->shape, GAP_OUTPUT, "gradient") : 0;
    c->elem_hash = want_elem ? hash_operand(&c->op[FL2_OP_ELEM], c->nd, c->shape, GAP_OUTPUT, "elementwise") : 0;
    (void)rdt;
}

static void case_nd_fn(void *ctx, int nthreads, char *line, size_t size)
{
    casend *c = (casend *)ctx;
    call_nd(c, nthreads);
    const int64_t m = c->outputs;
    uint64_t hl = FNV_START, hw = FNV_START, hv = FNV_START;
    for (int64_t i = 0; i < m; i++) {
        hl = fnv(hl, dbits(c->loss_sums[i]), 8);
        hl = fnv(hl, dbits(c->loss_lo[i]), 8);
        hw = fnv(hw, dbits(c->weight_sums[i]), 8);
        hw = fnv(hw, dbits(c->weight_lo[i]), 8);
        hv = c->single ? fnv(hv, el_bits(c->values + 4 * i, FL2_FLOAT32), 4)
                       : fnv(hv, el_bits(c->values + 8 * i, FL2_FLOAT64), 8);
    }
    char s[96] = "-", g[32] = "-", e[32] = "-";
    const unsigned long long first_l = m ? (unsigned long long)dbits(c->loss_sums[0]) : 0;
    const unsigned long long first_w = m ? (unsigned long long)dbits(c->weight_sums[0]) : 0;
    switch (c->smode) {
    case S_SUMS: case S_SUMS_GRAD:
        snprintf(s, sizeof s, "%016llx,%016llx#%016llx,%016llx", first_l, first_w,
                 (unsigned long long)hl, (unsigned long long)hw);
        break;
    case S_VALUES:
        snprintf(s, sizeof s, "values#%016llx", (unsigned long long)hv);
        break;
    case S_WEIGHTS:
        snprintf(s, sizeof s, "weights:%016llx#%016llx", first_w, (unsigned long long)hw);
        break;
    default: break;
    }
    if (c->op[FL2_OP_GRAD].alloc) snprintf(g, sizeof g, "%016llx", (unsigned long long)c->grad_hash);
    if (c->op[FL2_OP_ELEM].alloc) snprintf(e, sizeof e, "%016llx", (unsigned long long)c->elem_hash);
    snprintf(line, size, "outputs=%lld sums=%s grad=%s elem=%s", (long long)m, s, g, e);
}

/* Each output against fl2_run on its run gathered into contiguous arrays. */
static void case_nd_check(void *ctx)
{
    casend *c = (casend *)ctx;
    call_nd(c, 1);
    const int mode = smode_1d(c->smode);
    const int rdt = result_dt(c->tdt, c->pdt, c->wdt);
    const int64_t red = c->reduced;
    case1d r;
    memset(&r, 0, sizeof r);
    r.loss = c->loss;
    r.param = c->param;
    r.tdt = c->tdt;
    r.pdt = c->pdt;
    r.wdt = c->wdt;
    r.wrep = 1;
    r.n = red;
    const int dts[3] = {c->tdt, c->pdt, c->wdt};
    char *bufs[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++)
        if (dts[k] >= 0) bufs[k] = (char *)xmalloc((size_t)(red ? red : 1) * 8);
    char *gref = (char *)xmalloc((size_t)(red ? red : 1) * 8), *eref = (char *)xmalloc((size_t)(red ? red : 1) * 8);
    for (int64_t o = 0; o < c->outputs; o++) {
        for (int k = 0; k < 3; k++) {
            if (!bufs[k]) continue;
            const int item = item_of(dts[k]);
            for (int64_t i = 0; i < red; i++)
                memcpy(bufs[k] + i * item, AT(&c->op[k], o * red + i), (size_t)item);
        }
        r.tbuf = bufs[0];
        r.pbuf = bufs[1];
        r.wbuf = bufs[2];
        result1d ref;
        memset(&ref, 0, sizeof ref);
        {
            fl2_problem p = problem_1d(&r);
            fl2_outputs out;
            memset(&out, 0, sizeof out);
            if (mode & M_GRAD) {
                out.grad = gref;
                out.grad_scale = grad_scale_of(c->loss, c->tdt < 0);
                out.grad_divisor = c->divisor;
            }
            if (mode & M_ELEM) out.elementwise = eref;
            fl2_set_stream_threshold((int64_t)16 << 20);
            if (mode == M_WEIGHTS) {
                if (fl2_weight_sum(&p, &ref.wsum, NULL, 1) != 0) fail("fl2_weight_sum failed");
            } else if (fl2_run(&p, &out, (mode & M_SUMS) ? &ref.sums : NULL, 1) != 0) {
                fail("fl2_run failed");
            }
        }
        char what[160];
        switch (c->smode) {
        case S_SUMS: case S_SUMS_GRAD:
            snprintf(what, sizeof what, "output %lld: loss sum vs fl2_run of its run", (long long)o);
            same_bits(what, c->loss_sums[o], ref.sums.loss);
            snprintf(what, sizeof what, "output %lld: weight sum vs fl2_run of its run", (long long)o);
            same_bits(what, c->weight_sums[o], ref.sums.weights);
            snprintf(what, sizeof what, "output %lld: sums' rests vs fl2_run of its run", (long long)o);
            same_bits(what, c->loss_lo[o], ref.sums.loss_lo);
            same_bits(what, c->weight_lo[o], ref.sums.weights_lo);
            break;
        case S_VALUES: {
            double x = ref.sums.loss / c->divisor;
            if (c->root) x = sqrt(x);
            if (!c->single) { /* (a double: fl2_finish_f64's) */
                const fl2_finish f = {red, c->wdt >= 0, 0, c->divisor, c->root, 1.0};
                fl2_finish_f64(&ref.sums, &f, &x);
            }
            snprintf(what, sizeof what, "output %lld: value vs fl2_run's sum / divisor%s", (long long)o,
                     c->root ? ", square root" : "");
            if (c->single) {
                float f = (float)x, g;
                memcpy(&g, c->values + 4 * o, 4);
                same_bits(what, g, f);
            } else {
                double g;
                memcpy(&g, c->values + 8 * o, 8);
                same_bits(what, g, x);
            }
            break;
        }
        case S_WEIGHTS:
            snprintf(what, sizeof what, "output %lld: weight sum vs fl2_weight_sum of its run", (long long)o);
            same_bits(what, c->weight_sums[o], c->wdt < 0 ? (double)red : ref.wsum);
            break;
        default: break;
        }
        if (mode & M_GRAD) {
            const int item = item_of(c->pdt);
            for (int64_t i = 0; i < red; i++) {
                const char *g = AT(&c->op[FL2_OP_GRAD], o * red + i);
                if (el_bits_c(g, c->pdt) != el_bits_c(gref + i * item, c->pdt))
                    fail("output %lld, element %lld of its run: gradient %.17g vs fl2_run's %.17g",
                         (long long)o, (long long)i, get_el(g, c->pdt), get_el(gref + i * item, c->pdt));
            }
        }
        if (mode & M_ELEM) {
            const int item = item_of(rdt);
            for (int64_t i = 0; i < red; i++) {
                const char *e = AT(&c->op[FL2_OP_ELEM], o * red + i);
                if (el_bits_c(e, rdt) != el_bits_c(eref + i * item, rdt))
                    fail("output %lld, element %lld of its run: elementwise %.17g vs fl2_run's %.17g",
                         (long long)o, (long long)i, get_el(e, rdt), get_el(eref + i * item, rdt));
            }
        }
    }
    for (int k = 0; k < 3; k++) free(bufs[k]);
    free(gref);
    free(eref);
}

/* ---- the cases ------------------------------------------------------------------------- */

static const char *const loss_label[] = {"squared", "absolute", "huber"};

/* (y_true, y_pred, weights, weights_repeat) combinations: 4 dtype pairs x {no weights,
 * float32, float64, float32 repeated, float64 repeated}, then the penalties */
typedef struct { int tdt, pdt, wdt; int64_t wrep; } combo;
static int combos(combo *out, int with_repeat)
{
    int m = 0;
    for (int t = 0; t < 2; t++)
        for (int p = 0; p < 2; p++) {
            const int wdts[5] = {-1, FL2_FLOAT32, FL2_FLOAT64, FL2_FLOAT32, FL2_FLOAT64};
            for (int w = 0; w < (with_repeat ? 5 : 3); w++) {
                combo c = {t, p, wdts[w], w >= 3 ? (w == 3 ? 3 : 8192 + 7) : 1};
                out[m++] = c;
            }
        }
    for (int p = 0; p < 2; p++) {
        combo c = {-1, p, -1, 1};
        out[m++] = c;
    }
    return m;
}

static char names_buf[256];

static void cases_1d(void)
{
    static const int64_t sizes[] = {0, 1, 15, 16, 17, 8191, 8192, 8193, 3 * 8192 + 5, 100003};
    enum { NSIZES = sizeof sizes / sizeof sizes[0] };
    static const int modes[] = {M_SUMS, M_SUMS | M_GRAD, M_GRAD, M_ELEM, M_ELEM | M_GRAD, M_WEIGHTS};
    combo cs[32];
    const int ncombos = combos(cs, 1);
    int serial = 0;
    for (int loss = 0; loss < FL2_NLOSSES; loss++)
        for (int ci = 0; ci < ncombos; ci++)
            for (int si = 0; si < NSIZES; si++)
                for (int mi = 0; mi < 6; mi++) {
                    const combo cb = cs[ci];
                    const int mode = modes[mi];
                    if (mode == M_WEIGHTS && (cb.wdt < 0 || loss != 0)) continue; /* (no loss in it) */
                    /* every mode at the sizes up to 3 blocks; one mode a combination at the
                     * large sizes, in turn */
                    if (si >= 8 && mi != (loss + ci + si) % 6) continue;
                    serial++;
                    case1d c;
                    memset(&c, 0, sizeof c);
                    c.loss = loss;
                    c.param = param_of(loss, ci + si);
                    c.tdt = cb.tdt;
                    c.pdt = cb.pdt;
                    c.wdt = cb.wdt;
                    c.wrep = cb.wrep;
                    c.n = sizes[si];
                    c.kind = (ci + 3 * si + 5 * mi + loss) % NKINDS;
                    c.mode = mode;
                    c.divisor_kind = (ci + si + loss) % 4;
                    c.misalign = (ci + si + mi) % 3 == 0;
                    c.alias = (mode & M_GRAD) && (si + loss + ci) % 4 == 1;
                    c.stream = (mode & M_GRAD) && (si + mi + ci) % 5 == 2;
                    c.seed = 0x1000u + (uint64_t)serial;
                    c.grad_scale = grad_scale_of(loss, c.tdt < 0);
                    snprintf(names_buf, sizeof names_buf, "run/%s%s/t%s.p%s.w%s%s/n%lld/%s/%s/div%d%s%s%s",
                             loss_label[loss], loss == FL2_HUBER ? (c.param == 1.0 ? "1" : c.param == 0.25 ? ".25" : c.param == 3.0 ? "3" : "2^-10") : "",
                             dt_name(c.tdt), dt_name(c.pdt), dt_name(c.wdt),
                             c.wrep > 1 ? (c.wrep == 3 ? "x3" : "x8199") : "", (long long)c.n,
                             mode_name(mode), kind_names[c.kind], c.divisor_kind,
                             c.misalign ? "/unaligned" : "", c.alias ? "/inplace" : "",
                             c.stream ? "/stream" : "");
                    if (filter && !strstr(names_buf, filter)) continue;
                    build_1d(&c);
                    run_case(names_buf, case_1d_fn, case_1d_check, &c);
                    free_1d(&c);
                }
    /* more than 64 blocks (the partials on the heap, longer claims) */
    for (int pdt = 0; pdt < 2; pdt++)
        for (int mi = 0; mi < 2; mi++) {
            case1d c;
            memset(&c, 0, sizeof c);
            c.loss = FL2_SQUARED;
            c.tdt = pdt;
            c.pdt = pdt;
            c.wdt = pdt ? FL2_FLOAT32 : -1;
            c.wrep = 1;
            c.n = 97 * 8192 + 11;
            c.kind = K_NORMAL;
            c.mode = mi ? (M_SUMS | M_GRAD) : M_SUMS;
            c.divisor_kind = 2;
            c.seed = 0x77u + (uint64_t)(pdt * 2 + mi);
            c.grad_scale = 2.0;
            snprintf(names_buf, sizeof names_buf, "run/squared/t%s.p%s.w%s/n%lld/%s/normal/div2",
                     dt_name(c.tdt), dt_name(c.pdt), dt_name(c.wdt), (long long)c.n, mode_name(c.mode));
            if (filter && !strstr(names_buf, filter)) continue;
            build_1d(&c);
            run_case(names_buf, case_1d_fn, case_1d_check, &c);
            free_1d(&c);
        }
}

/* A layout family: name, logical shape, nkept, and the specs of each operand. */
typedef struct {
    const char *name;
    int nd, nkept;
    int64_t shape[MAXD];
    opspec in;      /* y_true and y_pred (and weights unless wspec_set) */
    opspec pred;    /* y_pred's own, when pred_set */
    opspec w;       /* the weights' own, when w_set */
    opspec out;     /* grad and elementwise */
    int pred_set, w_set;
} layout_def;

#define ORDER(...) {__VA_ARGS__}

static void cases_nd(void)
{
    /* opspec: {order}, step, flip, bcast, pad, misalign */
    static const layout_def layouts[] = {
        /* reductions of the last dim of a C-ordered matrix (the rows kernel for sums) */
        {"rows", 2, 1, {37, 15}, {{0}, 1, 0, 0, 0, 0}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"rows", 2, 1, {70, 17}, {{0}, 1, 0, 0, 0, 1}, {{0}}, {{0}}, {{0}, 1, 0, 0, 0, 1}, 0, 0},
        {"rows", 2, 1, {9, 100}, {{0}}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"rows", 2, 1, {130, 16}, {{0}}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"rows", 2, 1, {65, 1}, {{0}}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"rows", 2, 1, {3, 8192}, {{0}}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"rows", 2, 1, {2, 8193}, {{0}}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"rows/wrow", 2, 1, {21, 33}, {{0}}, {{0}}, {{0}, 1, 0, 2, 0, 0}, {{0}}, 0, 1},
        {"rows/pad1", 2, 1, {19, 23}, {{0}, 1, 0, 0, 1, 0}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"rows/pad8", 2, 1, {19, 23}, {{0}, 1, 0, 0, 8, 0}, {{0}}, {{0}}, {{0}, 1, 0, 0, 4, 0}, 0, 0},
        /* reductions of the first dim of a C-ordered matrix: iteration (columns, rows), the
         * columns contiguous (the columns kernel for sums; 2, 4, 8 columns: its vector path) */
        {"columns", 2, 1, {2, 1000}, {{1, 0}}, {{0}}, {{0}}, {{1, 0}}, 0, 0},
        {"columns", 2, 1, {4, 333}, {{1, 0}}, {{0}}, {{0}}, {{1, 0}}, 0, 0},
        {"columns", 2, 1, {8, 131}, {{1, 0}, 1, 0, 0, 0, 1}, {{0}}, {{0}}, {{1, 0}}, 0, 0},
        {"columns", 2, 1, {3, 17}, {{1, 0}}, {{0}}, {{0}}, {{1, 0}}, 0, 0},
        {"columns", 2, 1, {5, 8193}, {{1, 0}}, {{0}}, {{0}}, {{1, 0}}, 0, 0},
        {"columns", 2, 1, {33, 1}, {{1, 0}}, {{0}}, {{0}}, {{1, 0}}, 0, 0},
        {"columns", 2, 1, {1030, 20}, {{1, 0}}, {{0}}, {{0}}, {{1, 0}}, 0, 0},
        {"columns/wrow", 2, 1, {4, 77}, {{1, 0}}, {{0}}, {{1, 0}, 1, 0, 1, 0, 0}, {{1, 0}}, 0, 1},
        {"columns/wrow", 2, 1, {7, 40}, {{1, 0}}, {{0}}, {{1, 0}, 1, 0, 1, 0, 0}, {{1, 0}}, 0, 1},
        {"columns/pad4", 2, 1, {4, 50}, {{1, 0}, 1, 0, 0, 4, 0}, {{0}}, {{0}}, {{1, 0}}, 0, 0},
        /* transposed (Fortran order): the gathered path */
        {"transposed", 2, 1, {40, 31}, {{1, 0}}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"transposed", 2, 0, {101, 97}, {{1, 0}}, {{0}}, {{0}}, {{1, 0}}, 0, 0},
        {"transposed", 2, 1, {3, 9000}, {{1, 0}, 1, 0, 0, 0, 1}, {{0}}, {{0}}, {{0}}, 0, 0},
        /* every other element (a[:, ::2]): the step-2 loads for sums */
        {"step2", 2, 1, {11, 37}, {{0}, 2, 0, 0, 0, 0}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"step2", 2, 1, {3, 8200}, {{0}, 2, 0, 0, 0, 1}, {{0}}, {{0}}, {{0}, 2, 0, 0, 0, 0}, 0, 0},
        {"step2", 1, 0, {20011}, {{0}, 2, 0, 0, 0, 0}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"step2", 1, 0, {17}, {{0}, 2, 0, 0, 0, 0}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"step2/pred-only", 2, 1, {5, 64}, {{0}}, {{0}, 2, 0, 0, 0, 0}, {{0}}, {{0}}, 1, 0},
        /* negative strides */
        {"negative/last", 2, 1, {13, 50}, {{0}, 1, 2, 0, 0, 0}, {{0}}, {{0}}, {{0}, 1, 2, 0, 0, 0}, 0, 0},
        {"negative/first", 2, 1, {13, 50}, {{0}, 1, 1, 0, 0, 0}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"negative/both", 2, 0, {9, 9000}, {{0}, 1, 3, 0, 0, 1}, {{0}}, {{0}}, {{0}, 1, 3, 0, 0, 0}, 0, 0},
        {"negative/1d", 1, 0, {30000}, {{0}, 1, 1, 0, 0, 0}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"negative/step2", 2, 1, {6, 40}, {{0}, 2, 2, 0, 0, 0}, {{0}}, {{0}}, {{0}}, 0, 0},
        /* broadcasts (stride 0): y_true along the rows, weights per row */
        {"broadcast/true", 2, 1, {12, 45}, {{0}, 1, 0, 1, 0, 0}, {{0}}, {{0}}, {{0}}, 1, 0},
        {"broadcast/true-cols", 2, 1, {6, 45}, {{1, 0}, 1, 0, 2, 0, 0}, {{1, 0}}, {{1, 0}}, {{1, 0}}, 1, 1},
        {"broadcast/w-all", 2, 0, {30, 700}, {{0}}, {{0}}, {{0}, 1, 0, 3, 0, 0}, {{0}}, 0, 1},
        /* 3-d, one or two dims kept, memory in other orders */
        {"3d", 3, 1, {5, 7, 9}, {{0}}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"3d", 3, 2, {5, 7, 9}, {{0}}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"3d/order102", 3, 1, {6, 5, 40}, {{1, 0, 2}}, {{0}}, {{0}}, {{2, 0, 1}}, 0, 0},
        {"3d/order201", 3, 2, {4, 6, 30}, {{2, 0, 1}, 1, 0, 0, 0, 1}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"3d/order021", 3, 1, {3, 4100, 3}, {{0, 2, 1}}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"3d/mixed", 3, 1, {4, 9, 11}, {{0}, 1, 4, 0, 0, 0}, {{2, 1, 0}, 2, 1, 0, 0, 1}, {{1, 2, 0}, 1, 0, 0, 3, 0}, {{0}, 1, 2, 0, 0, 0}, 1, 1},
        /* empty */
        {"empty/reduced", 2, 1, {5, 0}, {{0}}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"empty/outputs", 2, 1, {0, 5}, {{0}}, {{0}}, {{0}}, {{0}}, 0, 0},
        /* contiguous: fl2_run's bits */
        {"contiguous", 1, 0, {100003}, {{0}}, {{0}}, {{0}}, {{0}}, 0, 0},
        {"contiguous", 2, 1, {2, 30000}, {{0}, 1, 0, 0, 0, 1}, {{0}}, {{0}}, {{0}}, 0, 0},
    };
    enum { NLAYOUTS = sizeof layouts / sizeof layouts[0] };
    static const int smodes[] = {S_SUMS, S_VALUES, S_WEIGHTS, S_SUMS_GRAD, S_GRAD, S_ELEM, S_ELEM_GRAD};
    combo cs[32];
    const int ncombos = combos(cs, 0); /* 12 dtype combinations, 2 penalties */
    int serial = 0;
    for (int li = 0; li < NLAYOUTS; li++) {
        const layout_def *L = &layouts[li];
        const int64_t total = total_of(L->nd, L->shape);
        for (int ci = 0; ci < ncombos; ci++)
            for (int mi = 0; mi < 7; mi++) {
                const combo cb = cs[ci];
                const int smode = smodes[mi];
                if (smode == S_WEIGHTS && cb.wdt < 0 && (ci + li) % 4) continue;
                /* every mode of small layouts, two of the large ones, in turn */
                if (total > 6000 && mi != (ci + li) % 7 && mi != (ci + li + 3) % 7) continue;
                serial++;
                casend *c = (casend *)calloc(1, sizeof(casend));
                c->nd = L->nd;
                c->nkept = L->nkept;
                memcpy(c->shape, L->shape, sizeof c->shape);
                c->spec[FL2_OP_TRUE] = L->in;
                c->spec[FL2_OP_PRED] = L->pred_set ? L->pred : L->in;
                c->spec[FL2_OP_WEIGHTS] = L->w_set ? L->w : L->in;
                c->spec[FL2_OP_GRAD] = L->out;
                c->spec[FL2_OP_ELEM] = L->out;
                c->spec[FL2_OP_ELEM].misalign = (ci + mi) % 3 == 1;
                c->spec[FL2_OP_PRED].bcast = 0; /* (only y_true and the weights broadcast) */
                if (!L->w_set) c->spec[FL2_OP_WEIGHTS].bcast = 0;
                c->loss = (ci + mi + li) % FL2_NLOSSES;
                c->param = param_of(c->loss, ci + li);
                c->tdt = cb.tdt;
                c->pdt = cb.pdt;
                c->wdt = cb.wdt;
                c->kind = (ci + 2 * mi + li) % NKINDS;
                c->smode = smode;
                c->single = (ci + li) & 1;
                c->root = ((ci + li) >> 1) & 1;
                c->divisor = (mi + li) % 2 ? 3.0 : (double)(total ? total : 1);
                c->seed = 0x900000u + (uint64_t)serial;
                snprintf(c->name, sizeof c->name, "strided/%s/%lld", L->name, (long long)L->shape[0]);
                for (int d = 1; d < L->nd; d++)
                    snprintf(c->name + strlen(c->name), sizeof c->name - strlen(c->name), "x%lld", (long long)L->shape[d]);
                snprintf(c->name + strlen(c->name), sizeof c->name - strlen(c->name), "/keep%d/%s%s/t%s.p%s.w%s/%s%s/%s",
                         L->nkept, loss_label[c->loss],
                         c->loss == FL2_HUBER ? (c->param == 1.0 ? "1" : c->param == 0.25 ? ".25" : c->param == 3.0 ? "3" : "2^-10") : "",
                         dt_name(c->tdt), dt_name(c->pdt), dt_name(c->wdt), smode_name(smode),
                         smode == S_VALUES ? (c->single ? (c->root ? "(single,root)" : "(single)") : (c->root ? "(root)" : "")) : "",
                         kind_names[c->kind]);
                if (filter && !strstr(c->name, filter)) {
                    free(c);
                    continue;
                }
                build_nd(c);
                run_case(c->name, case_nd_fn, case_nd_check, c);
                free_nd(c);
                free(c);
            }
    }
}

/* ---- main -------------------------------------------------------------------------------- */

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--raw-nan")) raw_nan = quick = 1;
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--raw-nan] [--quick] [--filter SUBSTRING]\n", argv[0]);
            return 2;
        }
    }
    const double t0 = seconds();
    fl2_init();
    fl2_set_parallel_threshold(0); /* nthreads 3 runs on three threads even for small calls */
    char names[256];
    snprintf(names, sizeof names, "%s", fl2_simd_levels_available());
    for (char *tok = strtok(names, ","); tok && nlevels < 8; tok = strtok(NULL, ","))
        snprintf(level_names[nlevels++], sizeof level_names[0], "%s", tok);
    if (nlevels == 0) {
        fprintf(stderr, "harness: no SIMD level available\n");
        return 2;
    }
    for (int code = 0; code < FL2_NLOSSES; code++)
        if (!fl2_loss_name(code) || strcmp(fl2_loss_name(code), loss_label[code]) != 0) {
            fprintf(stderr, "harness: loss %d is %s, the harness knows it as %s: update loss_label\n",
                    code, fl2_loss_name(code) ? fl2_loss_name(code) : "(none)", code < 3 ? loss_label[code] : "?");
            return 2;
        }
    if (fl2_loss_name(FL2_NLOSSES) != NULL) {
        fprintf(stderr, "harness: fastl2 has more losses than the harness knows\n");
        return 2;
    }
    fprintf(stderr, "harness: %s; SIMD levels %s (baseline: %s); %s\n", fl2_compiler(),
            fl2_simd_levels_available(), fl2_baseline_isa(),
            fl2_pool_available() ? "with threads" : "serial");
    cases_1d();
    cases_nd();
    fflush(stdout);
    if (quick)
        fprintf(stderr, "harness: %lld cases on SIMD level %s, nthreads 1, %.1f s\n", (long long)cases_run,
                level_names[0], seconds() - t0);
    else
        fprintf(stderr, "harness: %lld cases, every SIMD level (%s) and nthreads 1 and 3 agree, %.1f s\n",
                (long long)cases_run, fl2_simd_levels_available(), seconds() - t0);
    return 0;
}
