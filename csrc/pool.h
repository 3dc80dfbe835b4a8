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

/* Computes tasks [first, last); returns 0, or nonzero on failure (kept, OR-ed). */
typedef int (*fl2_task_fn)(void *ctx, int64_t first, int64_t last);

/* Runs fn over [0, ntasks) in claims of `grain` tasks on the calling thread and up to
 * nthreads - 1 helpers; returns the OR of fn's results.  With nthreads <= 1, no helper
 * threads on this platform, or the pool busy with another thread's call, the calling thread
 * computes every task itself. */
int fl2_parallel(int64_t ntasks, int64_t grain, int nthreads, fl2_task_fn fn, void *ctx);

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
