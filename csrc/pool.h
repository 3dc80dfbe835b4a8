/* The thread pool of the driver (pool.c): work claiming with the calling thread taking part.
 *
 * A call is cut into tasks [0, ntasks) that the calling thread claims `grain` at a time, in
 * order, while up to nthreads - 1 helper threads are woken to claim them too.  A helper joins
 * only while tasks are left: one the scheduler has not run yet by then never joins, and the
 * call returns as soon as every claimed task is done.  So a call never waits for a thread
 * that has not started (OpenMP's fork/join does: on a busy machine, a scheduler time slice
 * per call).  Which thread computes a task never changes its result. */
#ifndef FASTL2_POOL_H
#define FASTL2_POOL_H

#include <stdint.h>

/* Computes tasks [first, last); returns 0, or nonzero on failure (kept, OR-ed).  Any
 * partition of [0, ntasks) into ranges must give the same result (each task writes only its
 * own outputs). */
typedef int (*fl2_task_fn)(void *ctx, int64_t first, int64_t last);

/* What fl2_parallel returns for a call its interrupt check stopped (never an OR of task
 * results: those are 0, 1 and -1). */
#define FL2_POOL_INTERRUPTED (-2)

/* What fl2_parallel returns in a fork()ed child when the fork happened during the call (a
 * signal handler that the interrupt check ran called fork()): the parent's helpers do not
 * exist in the child, so tasks they had claimed are never finished there.  (A call without
 * helpers could finish, but stops as well: the same outcome for every path.) */
#define FL2_POOL_FORKED (-3)

/* Runs fn over [0, ntasks) in claims of `grain` tasks on the calling thread and up to
 * nthreads - 1 helpers; returns the OR of fn's results.  With nthreads <= 1, no helper
 * threads on this platform, or the pool busy with another thread's call, the calling thread
 * computes every task itself.
 *
 * With an interrupt check set (fl2_pool_set_interrupt_check), the calling thread runs it
 * between its claims about every FL2_INTERRUPT_CHECK_NS; when it returns nonzero no task is
 * claimed any more, the tasks already claimed finish, and the call returns
 * FL2_POOL_INTERRUPTED: some tasks have run, some not.  In a child that the check's signal
 * handler fork()ed, the call stops and returns FL2_POOL_FORKED, on helpers or not. */
int fl2_parallel(int64_t ntasks, int64_t grain, int nthreads, fl2_task_fn fn, void *ctx);

/* Starts the interrupt check's clock of the calling thread: drivers call it first, so that
 * the fl2_parallel calls of one driver call are timed together. */
void fl2_pool_call_begins(void);

/* How often (nanoseconds) the calling thread of a long call runs the interrupt check. */
#define FL2_INTERRUPT_CHECK_NS 20000000 /* (a monotonic clock; without POSIX, C11's timespec_get) */

/* Sets the interrupt check (NULL: none, the default).  It is called on the thread that
 * called fl2_parallel, never on a helper, from code that may hold no lock of the caller's
 * language runtime: the Python module's takes the GIL and runs PyErr_CheckSignals. */
void fl2_pool_set_interrupt_check(int (*check)(void));

/* Whether this build has helper threads (POSIX threads and GCC/clang atomics). */
int fl2_pool_available(void);

/* The helper threads started so far (they are started on first use, and kept). */
int fl2_pool_size(void);

/* How long (nanoseconds; default 1 ms) a helper spins for the next job before it sleeps, and
 * a caller for its helpers to finish before it sleeps. */
void fl2_pool_set_spin(int64_t ns);
int64_t fl2_pool_spin(void);

/* Called in a fork()ed child: the parent's helpers do not exist there, so the pool starts
 * over empty (and starts helpers of its own when a call needs them). */
void fl2_pool_after_fork_in_child(void);

#endif /* FASTL2_POOL_H */
