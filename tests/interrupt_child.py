"""A child process for tests/test_interrupts.py: starts one long fastl2 call, is sent SIGINT
while it runs, and says what happened.

Usage: python interrupt_child.py BACKEND THREADS CASE [fork]

It prints ``ready`` just before the call, then ``interrupted`` (KeyboardInterrupt came out of
the call), ``forked-mid-call`` (fastl2._backends.forked_mid_call_error came out) or
``finished``, then, for the case ``gradient``, how many elements of ``out=`` hold neither
their previous value nor their final one or change after the call returned, and finally the
value of a next call (which must work and be exact: ``1.0``).

With ``fork``, SIGUSR1 (sent first) runs a handler that fork()s in the middle of the call
and prints ``fork-done``; SIGINT is to come after that line.  The forked process prints the
same lines, each prefixed ``forked``, then exits; the process that was sent the signals
prints, after its own lines, ``forked-exit`` and the forked process's exit code (a forked
process that hangs prints its traceback and exits with 1 after 20 s).  A forked process whose
fork landed outside the compiled loop of a call prints ``forked outside-call`` instead and
exits (see ``outside_call``): the test runs the case again.
"""
from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time

import numpy as np

import fastl2

# (a runner started with SIGINT ignored, as a background job of a script is, passes that on:
# the call would never see the test's SIGINT)
signal.signal(signal.SIGINT, signal.default_int_handler)

backend, threads, case = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fork_mode = sys.argv[4:] == ["fork"]
fastl2.set_backend(backend)
fastl2.set_num_threads(threads)

LONG = 3 * 10**10  # broadcast elements: 5-30 s of work, no memory but 120 MB of block partials
out = expected = None
active = False  # whether a call of fastl2 is running (see calling)


class OutsideCall(BaseException):
    """The forked process was not forked in the middle of a call's loop (see outside_call)."""


def outside_call(signum=None, frame=None):
    raise OutsideCall


def calling(function):
    """``function()``, one call of fastl2, with ``active`` set while it runs: the test wants its
    fork inside a call, not before one or between two.  ``active`` narrows the moments, but a
    handler also runs in the Python code of fastl2's API before the compiled loop starts, and
    after it returns (a signal that arrives in a call's last check period is handled then):
    a forked process went on computing until its 20 s deadline, a flaky failure (CI, once in
    ~30 runs).  So a forked process that starts another call, or is still in its first one 5 s
    after the fork (the check of a call forked mid-loop ends it within milliseconds), was not
    forked mid-loop: it says so (``outside_call``) and the test tries again."""
    global active
    if prefix:
        outside_call()
    active = True
    try:
        return function()
    finally:
        active = False


if case == "broadcast":  # 1-d, zero strides: the strided driver's work items
    y_true = np.broadcast_to(np.float32(1.0), (LONG,))
    y_pred = np.broadcast_to(np.float32(1.5), (LONG,))
    call = lambda: calling(lambda: fastl2.mse(y_true, y_pred))
elif case == "columns":  # axis 0 of a C-ordered matrix: groups of columns
    y_true = np.broadcast_to(np.ones((1, 10**5), np.float32), (3 * 10**6, 10**5))  # 3e11
    call = lambda: calling(lambda: fastl2.mse(y_true, y_true, axis=0))
elif case == "narrow_columns":  # up to 1024 columns: one group (numba's columns kernel)
    y_true = np.broadcast_to(np.ones((1, 1000), np.float32), (3 * 10**8, 1000))  # 3e11
    call = lambda: calling(lambda: fastl2.mse(y_true, y_true, axis=0))
elif case == "rows":  # the last axis of rows up to a block: 8e10 elements, 40 MB of outputs
    # (rows of 1000, 3e9 elements, took 0.15-0.3 s once the rows kernel ran in cache: the call
    # could end before the test's SIGINT; these take seconds)
    y_true = np.broadcast_to(np.ones((1, 8000), np.float32), (10**7, 8000))
    call = lambda: calling(lambda: fastl2.mae(y_true, y_true, axis=-1))
elif case == "contiguous":  # the 1-d driver: 8 GB of never-written zeros (the zero page)
    y_true = np.zeros(2 * 10**9, np.float32)
    call = lambda: [calling(lambda: fastl2.mse(y_true, y_true)) for _ in range(1000)]
elif case == "per_sample":  # the 1-d driver, weights repeated along rows of 1000
    y_true = np.zeros((2 * 10**6, 1000), np.float32)
    weights = np.ones(2 * 10**6, np.float32)
    call = lambda: [calling(lambda: fastl2.mse(y_true, y_true, weights)) for _ in range(1000)]
elif case == "gradient":  # out= of gradient calls (~0.1 s each), until one is interrupted
    n = 4 * 10**7
    y_true = np.broadcast_to(np.float64(1.0), (n,))
    y_pred = np.arange(n, dtype=np.float64) / n
    expected = fastl2.mse_grad(y_true, y_pred, reduction="sum")
    out = np.empty(n)

    def call():
        while True:
            out.fill(np.nan)
            calling(lambda: fastl2.mse_grad(y_true, y_pred, reduction="sum", out=out))
else:
    raise SystemExit(f"unknown case {case!r}")

prefix = ""
forked = None


def in_call():
    # In a call (see calling); the gradient case's, once out= is partly written (blocks are
    # claimed in order: the first element is written first, the last one last).
    return active and (case != "gradient" or not (np.isnan(out[0]) or not np.isnan(out[-1])))


def fork_in_the_call(signum, frame):
    global prefix, forked
    if not in_call():  # (before a call or between two: again a moment later)
        signal.signal(signal.SIGALRM, fork_in_the_call)
        signal.setitimer(signal.ITIMER_REAL, 0.005)
        return
    forked = os.fork()
    if forked == 0:
        prefix = "forked "
        faulthandler.dump_traceback_later(20, exit=True)  # (a hang: where, and exit code 1)
        signal.signal(signal.SIGALRM, outside_call)  # (timers are not inherited by a fork)
        signal.setitimer(signal.ITIMER_REAL, 5)
    else:
        say("fork-done")  # (the parent's call goes on: the test sends SIGINT now)


def stop(signum, frame):
    raise KeyboardInterrupt


if fork_mode:
    # The call once first, stopped 0.1 s into its pass: a numba kernel compiles (minutes,
    # when nothing is cached) before this, so that the fork lands in the pass, not the compile.
    signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        call()
    except KeyboardInterrupt:
        pass
    for thread in threading.enumerate():  # (the numba backend goes on compiling after Ctrl-C)
        if thread.name == "fastl2-numba-compile":
            thread.join()
    signal.signal(signal.SIGUSR1, fork_in_the_call)


def say(*words):
    # One write of the whole line: the forked process writes to the same pipe.
    os.write(1, (prefix + " ".join(str(word) for word in words) + "\n").encode())


def _hung():
    faulthandler.dump_traceback(all_threads=True)
    os._exit(1)


print("ready", flush=True)
# A hang: every thread's traceback on stderr and exit code 1 before the test's 60 s run out.
# (A thread, not faulthandler.dump_traceback_later: a fork()ed child that calls that again
# waits forever for the parent's watchdog thread, which it does not have.)
watchdog = threading.Timer(45, _hung)
watchdog.daemon = True
watchdog.start()
try:
    call()
    say("finished")
except KeyboardInterrupt:
    say("interrupted")
except RuntimeError as error:
    signal.setitimer(signal.ITIMER_REAL, 0)
    if "fork()ed this process in the middle of this call" not in str(error):
        raise
    say("forked-mid-call")
except OutsideCall:
    say("outside-call")
    os._exit(0)
if out is not None:
    snapshot = out.copy()
    time.sleep(0.2)  # nothing may write to out= once the call has returned
    say(int(np.count_nonzero(~(np.isnan(out) | (out == expected)))) +
        int(np.count_nonzero((out != snapshot) & ~np.isnan(snapshot))))
say(fastl2.mse(np.ones(300_001, np.float32), np.zeros(300_001, np.float32)))
if forked == 0:
    os._exit(0)
if forked:
    say("forked-exit", os.waitstatus_to_exitcode(os.waitpid(forked, 0)[1]))
