"""Ctrl-C in long calls, and fork() at any moment.

What can break: a long call that ignores SIGINT until it ends (hours for a broadcast input); an
interrupted call that leaves the thread pool unusable, returns a partial result or writes
``out=`` elements that are neither their old nor their new value; a fork()ed child that inherits
a compile lock held by a thread it does not have, or a thread pool in the middle of a call.

Each case runs in a child process (a SIGINT outside the call must not hit the test runner).  No
latency is asserted (the suite has no timing assertions): a call that is not interrupted runs
on for seconds to minutes and prints "finished", and the 60 s limit only keeps a failure from
hanging the suite.  The measured
latencies are in README.md ("Stopping a long call").
"""
from __future__ import annotations

import importlib.util
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import fastl2
from forked import run_in_forked_child

# (Windows has no SIGINT to send to a child, no SIGUSR1 and no fork(): there a console's Ctrl-C
# is CTRL_C_EVENT to a process group, not tested here)
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals (SIGINT, SIGUSR1) and fork()s")

HERE = Path(__file__).parent
COMPILED = "cython" in fastl2.available_backends()
NUMBA = "numba" in fastl2.available_backends()


def _interrupted_child(backend, threads, case, fork=False):
    child = subprocess.Popen([sys.executable, str(HERE / "interrupt_child.py"), backend, str(threads), case]
                             + (["fork"] if fork else []),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    early = b""
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(0.3)
        if fork:  # (SIGINT once the handler has forked: pending together, SIGINT's runs first)
            child.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 60
            while b"fork-done\n" not in early:  # (read unbuffered: communicate reads so too)
                if not select.select([child.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    raise subprocess.TimeoutExpired(child.args, 60)
                chunk = os.read(child.stdout.fileno(), 1 << 16)
                if not chunk:
                    break
                early += chunk
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        out = early.decode() + out
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"{backend}, {case}: the call went on for 60 s after SIGINT (or SIGUSR1)\n"
                    f"{early.decode()}{out}\n{err}")
    assert child.returncode == 0, out + err
    return out.split() if not fork else (out.splitlines(), err)


# (backend, case): every driver path of the compiled and numba backends (the numba backend's
# 1-d calls run through its strided kernel then); the NumPy backend's Python loop.
DRIVER_PATHS = ("broadcast", "columns", "narrow_columns", "rows", "contiguous", "per_sample", "gradient")
CASES = ([("cython", case) for case in DRIVER_PATHS] if COMPILED else []) + (
    [("numba", case) for case in DRIVER_PATHS] if NUMBA else []) + [("numpy", "broadcast")]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend, case", CASES)
def test_sigint_stops_a_long_call_and_the_next_call_works(backend, case, threads):
    words = _interrupted_child(backend, threads, case)
    assert words[0] == "interrupted", words
    if case == "gradient":
        assert words[1] == "0", (f"{words[1]} elements of out= hold neither their old value nor their new "
                                 "one, or changed after the call returned")
    assert words[-1] == "1.0", words


# A handler runs mid-call in the compiled pool's interrupt check (every driver path, serial
# or on helpers), between the numba backend's chunks on the calling thread or in its wait for
# its helpers' (one mechanism for every kernel, _numba/pool.py: its strided and columns
# kernels, and out=), and between the NumPy backend's chunks (its strided loop, and its 1-d
# one: "contiguous").
FORK_CASES = ([("cython", case, threads) for case in DRIVER_PATHS for threads in (1, 2)] if COMPILED else []) + (
    [("numba", case, 2) for case in ("broadcast", "narrow_columns", "gradient")] if NUMBA else []) + [
    ("numpy", "broadcast", 1), ("numpy", "contiguous", 1)]


@pytest.mark.parametrize("backend, case, threads", FORK_CASES)
def test_a_call_that_a_signal_handler_forks_stops_in_the_child(backend, case, threads):
    # A handler that fork()s mid-call (the check of a long call runs handlers): the pool's
    # helpers (or numba's stoppable-call thread) are not in the child, whose call once returned
    # a wrong value silently (3.99984 for 4.0) or waited forever.  Now the child's call raises
    # the same RuntimeError on every backend, path and thread count, out= elements are old or
    # final, and the child's next call is exact; the parent's call goes on (until its SIGINT).
    for attempt in range(5):  # (a fork that landed outside the compiled loop: again)
        lines, err = _interrupted_child(backend, threads, case, fork=True)
        forked = [line.split()[1:] for line in lines if line.startswith("forked ")]
        if forked[:1] != [["outside-call"]]:
            break
    own = [line.split() for line in lines if not line.startswith("fork")]
    exits = [line.split()[1] for line in lines if line.startswith("forked-exit")]
    said = f"{lines}\n{err}"  # (the stderr of a forked process that hung: its traceback)
    assert exits == ["0"], said
    assert forked[0] == ["forked-mid-call"], said
    assert own[0] == ["interrupted"], said
    if case == "gradient":
        assert forked[1] == ["0"] and own[1] == ["0"], (
            f"elements of out= hold neither their old value nor their new one: {said}")
    assert forked[-1] == ["1.0"] and own[-1] == ["1.0"], said


def _child_computes(conn, y_true, y_pred, expected):
    try:
        fastl2.set_num_threads(2)
        conn.send(("ok", np.asarray(fastl2.mse(y_true, y_pred)).tobytes() == expected))
    except BaseException as error:  # (reported to the parent)
        conn.send(("error", repr(error)))


# (every backend: the NumPy one's call runs on the calling thread alone, and a pure install
# has no other, so a fork beside it is tested there too)
@pytest.mark.parametrize("backend", fastl2.available_backends())
def test_fork_during_a_threaded_call(backend, restore_num_threads):
    previous = fastl2.get_backend()
    fastl2.set_backend(backend)
    try:
        fastl2.set_num_threads(2)
        rng = np.random.default_rng(5)
        y_true, y_pred = rng.standard_normal((2, 1_000_003)).astype(np.float32)
        expected = np.asarray(fastl2.mse(y_true, y_pred)).tobytes()
        long_true = np.broadcast_to(np.float32(1.0), (3 * 10**8,))
        long_pred = np.broadcast_to(np.float32(3.0), (3 * 10**8,))
        results = []
        caller = threading.Thread(target=lambda: results.append(fastl2.mse(long_true, long_pred)))
        caller.start()
        time.sleep(0.05)  # (the call is running: it takes ~0.5 s)
        status, same_bits, exitcode = run_in_forked_child(_child_computes, (y_true, y_pred, expected),
                                                          "after a fork during a threaded call")
        caller.join()
    finally:
        fastl2.set_backend(previous)
    assert status == "ok", same_bits
    assert same_bits and exitcode == 0
    assert results == [np.float32(4.0)]


FORK_WHILE_COMPILING = textwrap.dedent("""
    import os, sys, tempfile, threading, time
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp()  # nothing cached: the call compiles (seconds)
    import numpy as np
    import fastl2
    fastl2.set_backend("numba")
    x = np.linspace(0.0, 1.0, 1000)
    y = x[::-1].copy()
    compiling = threading.Thread(target=lambda: fastl2.huber(x, y, delta=0.5))
    compiling.start()
    time.sleep(0.5)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if fastl2.huber(x, y, delta=0.5) == fastl2.huber(x.tolist(), y.tolist(), delta=0.5) else 3)
    compiling.join()
    for _ in range(600):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print("child", os.waitstatus_to_exitcode(status))
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        print("child hung")
""")


@pytest.mark.skipif(not NUMBA, reason="numba is not installed: no compiles")
def test_fork_while_another_thread_compiles_a_numba_kernel():
    result = run_fork_script(FORK_WHILE_COMPILING)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["child", "0"], result.stdout + result.stderr


# A fork() at some moment of another thread's first call of a fresh process: the first call
# does more than compile (Numba's typeof imports numpy.ma lazily, once; a child forked inside
# that import inherited a half-imported module, and every numba call in it raised
# RecursionError).  The child's calls must compute, whatever the moment.
FORK_DURING_FIRST_CALL = textwrap.dedent("""
    import os, sys, threading, time
    import numpy as np
    import fastl2
    fastl2.set_backend(sys.argv[1])
    x, y = np.ones(10**6, np.float32), np.full(10**6, 2, np.float32)
    threading.Thread(target=fastl2.mse, args=(x, y[::-1])).start()  # (a strided first call)
    time.sleep(float(sys.argv[2]))
    pid = os.fork()
    if pid == 0:
        print("child", fastl2.mse(x, y[::-1]), fastl2.mse(x[::2], 3 * y[1::2]), flush=True)
        os._exit(0)
    print("parent", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
""")


def run_fork_script(script: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Runs a script that forks, in a session of its own.  Should it not end in time, each of
    its processes (the parent and the child forked from it) prints every thread's Python stack
    to stderr (faulthandler on SIGUSR1, registered before the fork and so in both) before the
    session is killed, and the test fails with those stacks: where a hang is, not only that one
    was (.ci/run once saw this test's child hang: 0.02 s, numpy backend; 1,800 local runs under
    load did not)."""
    preamble = "import faulthandler, signal; faulthandler.register(signal.SIGUSR1, all_threads=True)\n"
    process = subprocess.Popen([sys.executable, "-c", preamble + script, *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGUSR1)
        time.sleep(2)
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"the script did not end in {timeout} s; stdout: {stdout!r}; the Python stacks "
                    f"of its processes:\n{stderr}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("backend", fastl2.available_backends())
@pytest.mark.parametrize("delay", [0.0, 0.001, 0.002, 0.005, 0.02])
def test_fork_during_another_threads_first_call(backend, delay):
    result = run_fork_script(FORK_DURING_FIRST_CALL, backend, str(delay), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["child", "1.0", "25.0", "parent", "0"], result.stdout + result.stderr


# A fork() while another thread imports what fastl2 imports on first use: numba (the numba
# backend's first set_backend, seconds of imports) and ml_dtypes (a first bfloat16 tensor).  A
# child forked inside an import inherits Python's lock of the module being imported, held by a
# thread it does not have, and its own import of it waited for ever; fork() now waits for the
# import (fastl2._backends.import_on_first_use).
FORK_DURING_FIRST_USE = textwrap.dedent("""
    import os, signal, sys, threading, time
    import numpy as np
    import fastl2
    case, delay = sys.argv[1], float(sys.argv[2])
    if case == "numba":
        first = lambda: fastl2.set_backend("numba")
        def use():
            fastl2.set_backend("numba")
            return fastl2.mse(np.zeros(3), np.array([1.0, 2.0, 2.0]))
    else:
        import torch
        x = torch.tensor([1.0, 2.0, 2.0], dtype=torch.bfloat16)
        first = lambda: fastl2.mse(torch.zeros_like(x), x)
        use = first
    threading.Thread(target=first).start()
    time.sleep(delay)
    pid = os.fork()
    if pid == 0:
        print("child", float(use()), flush=True)
        os._exit(0)
    for _ in range(600):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print("parent", os.waitstatus_to_exitcode(status), flush=True)
            break
        time.sleep(0.1)
    else:
        # (its Python stacks to stderr first: faulthandler on SIGUSR1, registered before the fork)
        os.kill(pid, signal.SIGUSR1)
        time.sleep(2)
        os.kill(pid, 9)
        print("child hung", flush=True)
""")
FIRST_USES = ((["numba"] if NUMBA else [])
              + (["ml_dtypes"] if importlib.util.find_spec("torch") and importlib.util.find_spec("ml_dtypes") else []))


#: .ci/run's sanitizer part preloads AddressSanitizer's runtime into Python: every allocation
#: of every library (torch's, numba's threads included) goes through its allocator, which GCC
#: 12's libasan does not lock around fork(); a child forked while another thread allocates can
#: hang inside it (seen once there: "child hung", ml_dtypes at 0.01 s; 24 runs pass without it)
UNDER_ASAN_PRELOAD = "libasan" in os.environ.get("LD_PRELOAD", "")


@pytest.mark.skipif(UNDER_ASAN_PRELOAD, reason="a fork beside allocating threads can hang in "
                    "AddressSanitizer's allocator itself (not fork-safe in GCC 12's libasan); "
                    "this test runs in .ci/run's other parts")
@pytest.mark.parametrize("case", FIRST_USES)
@pytest.mark.parametrize("delay", [0.0, 0.001, 0.01, 0.1])
def test_fork_while_another_thread_imports_on_first_use(case, delay):
    result = run_fork_script(FORK_DURING_FIRST_USE, case, str(delay))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["child", "3.0", "parent", "0"], result.stdout + result.stderr


def _numba_calls(y_true, y_pred, weights):
    loss, grad = fastl2.mse_and_grad(y_true, y_pred, weights, reduction="weighted_mean")
    return [np.asarray(fastl2.mse(y_true.astype(np.float32), y_pred.astype(np.float32))).tobytes(),
            np.asarray(loss).tobytes(), grad.tobytes(),
            fastl2.mae_grad(y_true.astype(np.float32), y_pred.astype(np.float32), reduction="sum").tobytes(),
            fastl2.huber(y_true, y_pred, weights, delta=0.7, reduction="none").tobytes(),
            np.asarray(fastl2.l2_penalty(y_pred, 0.3)).tobytes()]


@pytest.mark.skipif(not NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("weights_kind", ["full", "per_sample"])
@pytest.mark.parametrize("threads", [1, 2])
def test_numba_calls_that_can_be_stopped_give_the_bits_of_the_others(monkeypatch, restore_num_threads, threads,
                                                                     weights_kind):
    # Long main-thread calls of the numba backend run through the strided kernel in chunks
    # (_numba/driver.py _launch_1d_as_strided; per-sample weights as a dim of stride 0);
    # lowering the threshold to 0 sends every call there, and each must keep its bits.
    from fastl2._numba import config, driver, fast_paths

    previous = fastl2.get_backend()
    fastl2.set_backend("numba")
    try:
        fastl2.set_num_threads(threads)
        rng = np.random.default_rng(9)
        # (past the parallel threshold: with 2 threads the chunks run on the pool's helpers too)
        y_true, y_pred = rng.standard_normal((2, config.PARALLEL_THRESHOLD + 3 * 8192 + 77))
        weights = rng.random(y_true.size)
        if weights_kind == "per_sample":  # (rows of 7: weights repeated 7 times in the 1-d pass)
            y_true, y_pred = y_true[:y_true.size // 7 * 7].reshape(-1, 7), y_pred[:y_pred.size // 7 * 7].reshape(-1, 7)
            weights = weights[:len(y_true)]
        expected = _numba_calls(y_true, y_pred, weights)
        monkeypatch.setattr(driver, "INTERRUPTIBLE_MIN", 0)
        monkeypatch.setattr(fast_paths, "INTERRUPTIBLE_MIN", 0)
        rerouted = []
        launch = driver._launch_1d_as_strided
        monkeypatch.setattr(driver, "_launch_1d_as_strided", lambda *args: rerouted.append(1) or launch(*args))
        got = _numba_calls(y_true, y_pred, weights)
    finally:
        fastl2.set_backend(previous)
    assert len(rerouted) >= 6  # every call (and the weight sum) went the stoppable way
    assert got == expected


COMPILE_INTERRUPTED = textwrap.dedent("""
    import signal, sys, time
    import numpy as np
    import fastl2

    armed = False

    def stop(signum, frame):
        if armed:
            raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, stop)
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(5000), rng.standard_normal(5000)
    m, p = rng.standard_normal((300, 8)), rng.standard_normal((300, 8))
    calls = {  # one kernel of each kind: 1-d, strided (a step-2 slice), columns (axis=0)
        "1d": lambda: fastl2.huber(a, b, delta=0.5),
        "strided": lambda: fastl2.mae_grad(a[::2], b[::2]),
        "columns": lambda: fastl2.mse(m, p, axis=0),
    }
    fastl2.set_backend("numpy")
    expected = {name: np.asarray(call()).tobytes() for name, call in calls.items()}
    fastl2.set_backend("numba")
    first, delay = sys.argv[1], float(sys.argv[2])  # (delay 0: not stopped, timed)
    armed = delay > 0
    signal.setitimer(signal.ITIMER_REAL, delay)
    start = time.perf_counter()
    try:
        calls[first]()
        stopped = False
    except KeyboardInterrupt:
        stopped = True
    took = time.perf_counter() - start
    armed = False
    signal.setitimer(signal.ITIMER_REAL, 0)
    # Numba's first compile or cache load in this process, stopped anywhere: every kernel
    # still compiles or loads after it, and computes the NumPy backend's bits.
    print(stopped, took, all(np.asarray(c()).tobytes() == expected[n] for n, c in calls.items()))
""")


@pytest.mark.skipif(not NUMBA, reason="numba is not installed: no compiles")
def test_ctrl_c_while_a_kernel_compiles_or_loads_leaves_numba_working(tmp_path):
    # A KeyboardInterrupt raised inside Numba's cache loader on the main thread once left Numba
    # unable to load any kernel in that process ("duplicate registration for UnicodeType", or
    # "generator raised StopIteration").  The first call of each kind of kernel in a fresh
    # process is stopped 0.05 s in (the first process: in its compile, from an empty cache; the
    # others: in Numba's first cache load, which the old code broke here), then at fractions
    # of its load from the cache.
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))

    def run(first, delay):
        result = subprocess.run([sys.executable, "-c", COMPILE_INTERRUPTED, first, str(delay)],
                                env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{first} stopped after {delay} s: {result.stderr}"
        stopped, took, works = result.stdout.split()
        assert works == "True", f"{first} stopped after {delay} s: {result.stdout}"
        return stopped == "True", float(took)

    assert run("1d", 0.05)[0]  # (a compile from an empty cache takes seconds)
    for first in ("strided", "columns"):
        run(first, 0.05)
    for first in ("1d", "strided", "columns"):
        load = run(first, 0)[1]  # (the first call of a process, from the cache: no stop)
        for fraction in (0.2, 0.5, 0.8, 0.95):
            run(first, round(load * fraction, 4))
