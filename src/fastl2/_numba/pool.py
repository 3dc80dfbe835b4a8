"""The numba backend's thread pool (as csrc/pool.c): the calling thread works through a call's
chunks itself, helper threads claim chunks only if they start in time, and the call returns as
soon as every chunk is done.

Why not Numba's own threads (``prange``)?  Its fork/join launch waits at the join for every
thread of the team, also one the scheduler has not run yet (a whole time slice on a busy
machine: issue 15), its launches from two Python threads at once abort its workqueue layer, and
its parallel lowering took three times the compile time of the serial code, per kernel.  Here
the kernels are serial functions of a range of work (strided kernels: items; columns kernels:
blocks of rows) that release the GIL (``nogil``), and the pool only decides which thread runs
which range: every block writes its own partial, combined afterwards in a fixed order, so the
result does not depend on the thread count (nor on who ran what).

A chunk is claimed under a lock and run by whichever thread claimed it; the caller waits only
for chunks a helper has claimed (running, so they end), never for a helper that has not
started: one that starts late finds nothing left and goes back to wait.

Ctrl-C: Python runs signal handlers on the main thread between bytecodes.  A call of the main
thread runs its chunks itself (with or without helpers), so a handler runs between two of its
chunks (each at most CHUNK_ELEMENTS elements, or one work item where that is larger: a block of
rows of up to 1024 columns for the columns kernel; a few milliseconds), or in its wait for the
helpers' chunks (in slices of 20 ms: a signal that another thread received does not wake a wait
on a lock).  An exception out of either (KeyboardInterrupt) sets the kernels' ``cancel`` flag,
which stops the helpers' chunks between groups of blocks, waits for them, and is raised:
nothing the call summed is returned; what it wrote (gradient elements) stays written.

fork(): the helpers are not in a child; it makes its own.  A call that was running in the
parent when a signal handler fork()ed raises fastl2._backends.forked_mid_call_error in the
child (its helpers' chunks would never end there), whatever its thread count.
"""

from __future__ import annotations

import os
import queue
import threading

from .._backends import forked_mid_call_error

#: The most elements of one chunk: the longest a main-thread call runs before a signal handler
#: can run (a few milliseconds), and a fine enough split for a busy machine.
CHUNK_ELEMENTS = 1 << 20
#: The fewest elements of one chunk (but the last): each chunk is a kernel call from Python
#: (its dispatch holds the GIL for about 4 us) that a woken thread may start 50-200 us late.
MIN_CHUNK_ELEMENTS = 1 << 18
#: Chunks per thread of a call (when its work allows): a helper that starts late, or runs
#: slowly, leaves its share to the others.
CHUNKS_PER_THREAD = 8

_lock = threading.Lock()
_jobs = None  # queue.SimpleQueue of the calls that helpers may join (one entry per helper asked)
_helpers = 0  # helper threads started in this process
_free = 0  # of them, those waiting for a call (see _ask_helpers)


class _Call:
    """One call's chunks: ``run(i)`` runs chunk i; claimed in order under ``lock``."""

    __slots__ = ("run", "nchunks", "next", "done", "helping", "cancelled", "finished", "lock", "pid",
                 "error")

    def __init__(self, run, nchunks):
        self.run = run
        self.nchunks = nchunks
        self.next = 0  # the next chunk to claim
        self.done = 0  # chunks finished
        self.helping = 0  # chunks that helpers are running
        self.cancelled = False
        self.finished = threading.Event()  # set by whoever finishes the last chunk
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.error = None  # what a helper's chunk raised (the caller raises it)


def _help(call):
    """A helper's part of ``call``: chunks until none is left (or the call is cancelled)."""
    lock = call.lock
    while True:
        with lock:
            i = call.next
            if call.cancelled or i >= call.nchunks:
                return
            call.next = i + 1
            call.helping += 1
        try:
            call.run(i)
        except BaseException as error:  # (the caller raises it; this helper goes on)
            call.error = error
            call.cancelled = True
        finally:
            with lock:
                call.helping -= 1
                call.done += 1
                if call.done == call.nchunks or (call.cancelled and not call.helping):
                    call.finished.set()


def _helper_main(jobs):
    global _free
    while True:
        _help(jobs.get())
        with _lock:
            _free += 1


def _ask_helpers(call, helpers):
    """Offers ``call`` to up to ``helpers`` helper threads: those free (not offered a call they
    have not finished), then new ones while fewer than ``helpers`` run.  Busy helpers are not
    offered it: the queue never holds more calls than there are helpers to take them, and no
    finished call waits there, holding its memory, for a helper busy with a long one."""
    global _jobs, _helpers, _free
    with _lock:
        if _jobs is None:
            _jobs = queue.SimpleQueue()
        jobs = _jobs
        offers = min(helpers, _free)
        _free -= offers
        while offers < helpers and _helpers < helpers:
            thread = threading.Thread(target=_helper_main, args=(jobs,), daemon=True,
                                      name=f"fastl2-numba-{_helpers + 1}")
            try:
                thread.start()
            except RuntimeError:  # (no thread starts at interpreter shutdown: fewer helpers)
                break
            _helpers += 1
            offers += 1
        for _ in range(offers):
            jobs.put(call)


def run_chunks(run, nchunks, threads, cancel):
    """Runs ``run(0)``, ..., ``run(nchunks - 1)`` (each a kernel call on its own range of
    work) on this thread and up to ``threads - 1`` helpers, and returns once all have run.

    ``cancel``, the kernels' one-element uint8 flag, is set when an exception (Ctrl-C) stops
    the call; the exception is raised once no helper runs a chunk of it any more.
    """
    call = _Call(run, nchunks)
    if threads > 1 and nchunks > 1:
        _ask_helpers(call, min(threads, nchunks) - 1)
    lock = call.lock
    pid = call.pid
    try:
        while True:
            with lock:
                i = call.next
                if i >= nchunks or call.cancelled:  # (cancelled: a helper's chunk raised)
                    break
                call.next = i + 1
            run(i)
            with lock:
                call.done += 1
                if call.done == nchunks:
                    call.finished.set()
            if os.getpid() != pid:  # (a signal handler fork()ed: see the module's docstring)
                raise forked_mid_call_error()
        while not call.finished.wait(0.02):
            if os.getpid() != pid:
                raise forked_mid_call_error()
        if call.error is not None:
            raise call.error
    except BaseException:
        call.cancelled = True
        cancel[0] = 1
        if os.getpid() == pid:  # (in a fork()ed child the helpers are the parent's)
            while True:  # (a second Ctrl-C does not leave a helper's chunk running unseen)
                try:
                    with lock:
                        if not call.helping:
                            break
                        call.finished.clear()
                    call.finished.wait(0.02)
                except BaseException:
                    continue
        raise


def compile_aside(function):
    """``function()`` (a kernel's first call, which compiles it or loads it from the cache) on a
    thread of its own while this thread waits where signal handlers run, when this is the main
    thread; its result.  An exception out of the wait (Ctrl-C) is raised at once, and the
    compile goes on to its end on its thread (the next call finds the kernel, or waits for it
    under the compile lock): an exception raised inside Numba's compiler or cache loader (a
    signal handler runs between any two bytecodes of the main thread) can leave Numba unable
    to compile anything in this process again."""
    if threading.current_thread() is not threading.main_thread():
        return function()
    done = threading.Event()
    outcome = []

    def target():
        try:
            outcome.append((True, function()))
        except BaseException as error:  # (raised on the waiting thread)
            outcome.append((False, error))
        finally:
            done.set()

    try:
        # (not a daemon: the interpreter waits for it at exit, never stopping LLVM mid-compile)
        threading.Thread(target=target, name="fastl2-numba-compile", daemon=False).start()
    except RuntimeError:  # (no thread starts at interpreter shutdown: here, unprotected)
        return function()
    pid = os.getpid()
    while not done.wait(0.02):
        if os.getpid() != pid:  # (a signal handler fork()ed: the compile is the parent's)
            raise forked_mid_call_error()
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return value


def _after_fork_in_child() -> None:
    # The parent's helpers do not exist in a fork()ed child (its queue may be mid-put): the
    # child starts its own.
    global _lock, _jobs, _helpers, _free
    _lock = threading.Lock()
    _jobs = None
    _helpers = _free = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
