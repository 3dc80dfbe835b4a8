/*
 * The driver's thread pool (pool.h): helpers that claim tasks beside the calling thread.
 *
 * One job at a time is open for helpers to join (a call from a second thread while one is
 * open computes on its own thread).  The caller fills in the job, opens it and wakes sleeping
 * helpers, then claims tasks itself; a helper joins (by compare-and-swap on the job's state
 * word) only while the job is open, and the caller closes it as soon as no task is left, then
 * waits only for the helpers that joined: they are running, and a claim is one block.  A
 * helper the scheduler has not run by then never joins.
 *
 * After a job a helper spins for the next one (1 ms, fl2_pool_set_spin), so that the calls of
 * a training loop find it awake, unless it finds that it lost its core meanwhile: then the
 * core is wanted by other work, and the helper sleeps between jobs for the next 0.1 s.
 */
#if defined(__linux__)
#define _GNU_SOURCE /* POSIX and sched_getcpu, pthread_{get,set}affinity_np under -std=c11 */
#else
#define _POSIX_C_SOURCE 200809L /* pthreads, clock_gettime, sysconf under -std=c11 */
#endif

#include <stdlib.h>

#include "pool.h"

#if (defined(__unix__) || defined(__APPLE__)) && (defined(__GNUC__) || defined(__clang__))
#define FL2_HAVE_POOL 1
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#else
#define FL2_HAVE_POOL 0
#endif

#include <time.h>

int fl2_pool_available(void) { return FL2_HAVE_POOL; }

static int64_t now_ns(void)
{
    struct timespec t;
#if FL2_HAVE_POOL
    clock_gettime(CLOCK_MONOTONIC, &t);
#else
    timespec_get(&t, TIME_UTC); /* C11 */
#endif
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The interrupt check (pool.h), or NULL. */
typedef int (*check_fn)(void);
static check_fn interrupt_check;
#if defined(__GNUC__) || defined(__clang__)
#define CHECK_LOAD() __atomic_load_n(&interrupt_check, __ATOMIC_SEQ_CST)
#define CHECK_STORE(f) __atomic_store_n(&interrupt_check, (f), __ATOMIC_SEQ_CST)
#else /* (set once, at import, before any call) */
#define CHECK_LOAD() interrupt_check
#define CHECK_STORE(f) (interrupt_check = (f))
#endif

void fl2_pool_set_interrupt_check(int (*check)(void)) { CHECK_STORE(check); }

/* When the calling thread's next interrupt check is due (0: not timed yet in this driver
 * call, fl2_pool_call_begins): per thread, so that a driver call made of many short
 * fl2_parallel calls (a group of columns each) is checked as one long call. */
#if defined(_MSC_VER)
#define FL2_THREAD_LOCAL __declspec(thread) /* (MSVC without /std:c11 has no _Thread_local) */
#else
#define FL2_THREAD_LOCAL _Thread_local
#endif
static FL2_THREAD_LOCAL int64_t check_due;

void fl2_pool_call_begins(void) { check_due = 0; }

/* Runs the check if it is due (the first look only starts the clock); 1: stop. */
static int interrupted_now(check_fn check)
{
    const int64_t now = now_ns();
    if (!check_due) {
        check_due = now + FL2_INTERRUPT_CHECK_NS;
        return 0;
    }
    if (now < check_due) return 0;
    if (check()) return 1;
    check_due = now_ns() + FL2_INTERRUPT_CHECK_NS;
    return 0;
}

/* How many times this process is a fork()ed child of a process that had the pool
 * (fl2_pool_after_fork_in_child): a call that finds it changed was forked mid-call. */
static uint64_t fork_generation;
#if defined(__GNUC__) || defined(__clang__)
#define FORK_GENERATION() __atomic_load_n(&fork_generation, __ATOMIC_SEQ_CST)
#else /* (no fork() without the pool) */
#define FORK_GENERATION() fork_generation
#endif

/* Tasks [0, ntasks) on the calling thread alone: in one go without an interrupt check, else
 * `grain` tasks at a time (the claims of fl2_parallel), with a look at the check after each
 * (every 4th for claims of fewer than 4 tasks, as `work`) and at the end.  A check whose
 * signal handler fork()ed this process ends the call in the child (FL2_POOL_FORKED), as on
 * helpers: a call does not go on in a child, whichever path it took. */
static int serial(int64_t ntasks, int64_t grain, fl2_task_fn fn, void *ctx)
{
    const check_fn check = CHECK_LOAD();
    if (!check) return fn(ctx, 0, ntasks);
    if (grain < 1) grain = 1;
    const int every = grain >= 4 ? 1 : 4;
    const uint64_t generation = FORK_GENERATION();
    int status = 0;
    int64_t k = 1;
    for (int64_t first = 0; first < ntasks; first += grain, k++) {
        const int64_t last = ntasks - first > grain ? first + grain : ntasks;
        status |= fn(ctx, first, last);
        if (k % every == 0 || last == ntasks) {
            const int interrupted = interrupted_now(check);
            if (FORK_GENERATION() != generation) return FL2_POOL_FORKED;
            if (interrupted) return FL2_POOL_INTERRUPTED;
        }
    }
    return status;
}

#if FL2_HAVE_POOL

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

/* The most helpers (set_num_threads accepts 1024 threads). */
#define FL2_MAX_HELPERS 1023

/* The job's state word: its number (which job this is), whether it is open for helpers to
 * join, and how many joined.  Helpers join by compare-and-swap on it, never by a lock: a
 * lock the caller holds for a moment would put a joining helper to sleep. */
#define JOINED_BITS 11
#define JOINED_MASK ((uint64_t)(1 << JOINED_BITS) - 1)
#define OPEN_BIT ((uint64_t)1 << JOINED_BITS)
#define NUMBER_SHIFT (JOINED_BITS + 1)

/* A gap this long between two looks at the clock while spinning: the helper was descheduled,
 * so its core is wanted by other work. */
#define FL2_PREEMPTED_NS 500000
/* How often a spinning helper yields its core. */
#define FL2_YIELD_NS 10000
/* How long a helper that found its core wanted sleeps between jobs instead of spinning. */
#define FL2_BUSY_BACKOFF_NS 100000000

/* The one job (static: a helper that looks at it late finds another number, never freed
 * memory).  One caller at a time owns it; the others compute alone. */
static struct {
    int owned;           /* a caller owns the job (atomic) */
    uint64_t state;      /* number, open, joined (atomic) */
    fl2_task_fn fn;      /* the job, written by its owner before it opens */
    void *ctx;
    int64_t ntasks, grain;
    int helpers;         /* how many may join */
    int64_t next;        /* the first task not claimed yet (atomic) */
    int status;          /* OR of the tasks' results (atomic) */
    int finished;        /* helpers that joined and finished (atomic) */
    int waiting;         /* the owner sleeps until `finished` counts all (atomic) */
    int caller_cpu;      /* the CPU the owner opened the job on, or -1 (atomic) */
} job;

static struct {
    pthread_mutex_t lock; /* for sleeping only: `wake` and `done` */
    pthread_cond_t wake;  /* helpers sleep here between jobs */
    pthread_cond_t done;  /* the owner sleeps here for its helpers */
    int size;             /* helpers started (under the lock) */
    int sleeping;         /* helpers asleep on `wake` (atomic; changed under the lock) */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

/* Nanoseconds a helper spins after a job (and a caller for its helpers) before sleeping. */
static int64_t spin_ns = 1000000;

void fl2_pool_set_spin(int64_t ns) { STORE(spin_ns, ns > 0 ? ns : 0); }
int64_t fl2_pool_spin(void) { return LOAD(spin_ns); }

/* Claims and computes the job's tasks until none is left.  The caller passes its interrupt
 * check (helpers NULL) and looks at it after each claim (every 4th for claims of fewer than
 * 4 tasks: a clock read is 20-30 ns, a block 2 us and more); when it says stop, or when its
 * signal handler fork()ed this process (the fork generation is no longer `generation`), no
 * task is claimed any more, and work returns 1. */
static int work(check_fn check, uint64_t generation)
{
    int status = 0, interrupted = 0;
    const int every = job.grain >= 4 ? 1 : 4;
    for (int k = 1;; k++) {
        const int64_t first = __atomic_fetch_add(&job.next, job.grain, __ATOMIC_RELAXED);
        if (first >= job.ntasks) {
            /* (and once at the end: a driver call may be many short fl2_parallel calls) */
            interrupted = check && interrupted_now(check);
            break;
        }
        const int64_t last = job.ntasks - first > job.grain ? first + job.grain : job.ntasks;
        status |= job.fn(job.ctx, first, last);
        if (check && k % every == 0 &&
            (interrupted_now(check) || FORK_GENERATION() != generation)) {
            STORE(job.next, job.ntasks); /* helpers claim nothing more */
            interrupted = 1;
            break;
        }
    }
    if (status) __atomic_fetch_or(&job.status, status, __ATOMIC_RELAXED);
    return interrupted;
}

/* Spins while the job's number is `number`: returns 1 when it changed, 0 after spin_ns, -1
 * when the thread finds it was descheduled meanwhile.  Every FL2_YIELD_NS it yields: a
 * thread waiting for this core (another library's thread team, say) runs at once instead of
 * a time slice later; with none waiting, the system call returns at once. */
static int spin_for_job(uint64_t number)
{
    const int64_t limit = LOAD(spin_ns);
    if (limit <= 0) return (LOAD(job.state) >> NUMBER_SHIFT) != number;
    int64_t last = now_ns(), yielded = last;
    const int64_t until = last + limit;
    for (int k = 0;; k++) {
        if ((LOAD(job.state) >> NUMBER_SHIFT) != number) return 1;
        if ((k & 15) == 15) {
            const int64_t now = now_ns();
            if (now - last > FL2_PREEMPTED_NS) return -1;
            if (now >= until) return 0;
            last = now;
            if (now - yielded > FL2_YIELD_NS) {
                sched_yield();
                yielded = now;
            }
        }
        CPU_RELAX();
    }
}

/* Joins the open job numbered `number`, if it still takes helpers. */
static int join(uint64_t number)
{
    uint64_t state = LOAD(job.state);
    while ((state >> NUMBER_SHIFT) == number && (state & OPEN_BIT) &&
           (int)(state & JOINED_MASK) < LOAD(job.helpers)) {
        if (__atomic_compare_exchange_n(&job.state, &state, state + 1, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return 1;
    }
    return 0;
}

/* A helper that joins a job on the CPU its caller runs on would take turns with the caller
 * there while another CPU idles: a helper woken by the caller can be placed on the caller's
 * CPU, and one that then spins there stays, as the scheduler does not move a task that keeps
 * running (measured: two-thread calls of 3e5 float32 elements at the one-thread time for
 * whole phases of 200 calls, the helper on the caller's CPU).  Such a helper moves off it:
 * its allowed CPUs without the caller's for a moment (the system migrates it at once), then
 * all of them again.  (Linux; a process allowed one CPU only stays.) */
static void leave_callers_cpu(void)
{
#if defined(__linux__)
    const int caller = LOAD(job.caller_cpu);
    if (caller < 0 || caller >= CPU_SETSIZE || sched_getcpu() != caller) return;
    cpu_set_t allowed, others;
    if (pthread_getaffinity_np(pthread_self(), sizeof allowed, &allowed)) return;
    others = allowed;
    CPU_CLR(caller, &others);
    if (CPU_COUNT(&others) == 0 || pthread_setaffinity_np(pthread_self(), sizeof others, &others)) return;
    pthread_setaffinity_np(pthread_self(), sizeof allowed, &allowed);
#endif
}

static void *helper_main(void *arg)
{
    (void)arg;
    uint64_t seen = LOAD(job.state) >> NUMBER_SHIFT;
    int64_t spin_from = 0; /* no spinning before this time: the core was wanted */
    for (;;) {
        if ((LOAD(job.state) >> NUMBER_SHIFT) == seen && now_ns() >= spin_from &&
            spin_for_job(seen) < 0)
            spin_from = now_ns() + FL2_BUSY_BACKOFF_NS;
        if ((LOAD(job.state) >> NUMBER_SHIFT) == seen) {
            pthread_mutex_lock(&pool.lock);
            __atomic_add_fetch(&pool.sleeping, 1, __ATOMIC_SEQ_CST);
            while ((LOAD(job.state) >> NUMBER_SHIFT) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
            __atomic_sub_fetch(&pool.sleeping, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&pool.lock);
            leave_callers_cpu(); /* (woken by the caller: placed beside it, maybe) */
        }
        seen = LOAD(job.state) >> NUMBER_SHIFT;
        if (!join(seen)) continue;
        leave_callers_cpu();
        work(NULL, 0);
        __atomic_add_fetch(&job.finished, 1, __ATOMIC_SEQ_CST);
        if (LOAD(job.waiting)) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_broadcast(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

/* Starts helpers until there are `wanted` (under the lock); fewer if the system refuses. */
static void grow(int wanted)
{
    if (wanted > FL2_MAX_HELPERS) wanted = FL2_MAX_HELPERS;
    if (pool.size >= wanted) return;
    /* Helpers take no signals: they go to the threads of the program. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (pool.size < wanted) {
        pthread_t thread;
        if (pthread_create(&thread, &attr, helper_main, NULL)) break;
        pool.size++;
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int fl2_parallel(int64_t ntasks, int64_t grain, int nthreads, fl2_task_fn fn, void *ctx)
{
    if (grain < 1) grain = 1;
    const int64_t claims = (ntasks + grain - 1) / grain;
    if (nthreads <= 1 || claims <= 1) return serial(ntasks, grain, fn, ctx);
    int unowned = 0;
    if (!__atomic_compare_exchange_n(&job.owned, &unowned, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return serial(ntasks, grain, fn, ctx); /* another thread's call has the helpers */

    int helpers = claims - 1 < nthreads - 1 ? (int)(claims - 1) : nthreads - 1;
    pthread_mutex_lock(&pool.lock);
    grow(helpers);
    if (helpers > pool.size) helpers = pool.size;
    pthread_mutex_unlock(&pool.lock);

    job.fn = fn;
    job.ctx = ctx;
    job.ntasks = ntasks;
    job.grain = grain;
    STORE(job.helpers, helpers);
    STORE(job.next, 0);
    STORE(job.status, 0);
    STORE(job.finished, 0);
    STORE(job.waiting, 0);
#if defined(__linux__)
    STORE(job.caller_cpu, sched_getcpu());
#else
    STORE(job.caller_cpu, -1);
#endif
    const uint64_t generation = FORK_GENERATION();
    const uint64_t number = (LOAD(job.state) >> NUMBER_SHIFT) + 1;
    STORE(job.state, number << NUMBER_SHIFT | OPEN_BIT); /* open: helpers may join */
    if (LOAD(pool.sleeping) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }

    const int interrupted = work(CHECK_LOAD(), generation);

    /* Closed: no helper joins from now on; wait only for those that did. */
    const int joined = (int)(__atomic_fetch_and(&job.state, ~OPEN_BIT, __ATOMIC_SEQ_CST) & JOINED_MASK);
    const int64_t until = now_ns() + LOAD(spin_ns);
    for (int k = 0; LOAD(job.finished) < joined; k++) {
        if ((k & 15) == 15 && now_ns() >= until) {
            pthread_mutex_lock(&pool.lock);
            STORE(job.waiting, 1);
            while (LOAD(job.finished) < joined) pthread_cond_wait(&pool.done, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
            break;
        }
        CPU_RELAX();
    }
    const int status = LOAD(job.status);
    __atomic_store_n(&job.owned, 0, __ATOMIC_RELEASE);
    /* Forked during the call (only the interrupt check, that is a signal handler, runs
     * code of the caller's mid-call): the helpers that had joined do not exist here, and
     * the tasks they had claimed were never finished. */
    if (FORK_GENERATION() != generation) return FL2_POOL_FORKED;
    return interrupted ? FL2_POOL_INTERRUPTED : status;
}

int fl2_pool_size(void)
{
    pthread_mutex_lock(&pool.lock);
    const int size = pool.size;
    pthread_mutex_unlock(&pool.lock);
    return size;
}

void fl2_pool_after_fork_in_child(void)
{
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.size = 0;
    pool.sleeping = 0;
    /* a call of the forking thread's parent may have owned the job: none does here */
    job.owned = 0;
    job.state &= ~(OPEN_BIT | JOINED_MASK);
    fork_generation++;
}

#else /* no helper threads: every call runs on the calling thread */

int fl2_parallel(int64_t ntasks, int64_t grain, int nthreads, fl2_task_fn fn, void *ctx)
{
    (void)nthreads;
    return serial(ntasks, grain, fn, ctx);
}

int fl2_pool_size(void) { return 0; }
void fl2_pool_set_spin(int64_t ns) { (void)ns; }
int64_t fl2_pool_spin(void) { return 0; }
void fl2_pool_after_fork_in_child(void) {}

#endif
