"""The compiled backend's thread pool (csrc/pool.c): callers take part, helpers join late or never.

What can break: a call that waits for, or races with, helpers of another call; helpers that take a
process's signals; a pool that a fork()ed child inherits half-alive; results that depend on who
computed which block.  No timings are asserted: the busy-machine behaviour is measured by
``python -m fastl2 bench --busy`` and bench/busy_machine.py.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import threading

import numpy as np
import pytest

import fastl2
from fastl2 import _backends
from forked import run_in_forked_child

core = _backends.compiled_module()
pytestmark = pytest.mark.skipif(core is None, reason="the thread pool is the compiled backend's; it is not built here")

needs_pool = pytest.mark.skipif(core is not None and not core.threads_available(),
                                reason="this build has no POSIX threads: every call is serial")


@pytest.fixture
def compiled(restore_num_threads):
    previous = fastl2.get_backend()
    fastl2.set_backend("cython")
    try:
        yield core
    finally:
        fastl2.set_backend(previous)


def _inputs(n, dtype, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)


# The calls each thread makes: a pass, a pass with a gradient, an axis reduction (the strided
# driver), at sizes on both sides of the parallel threshold.
SIZES = (1_000, 70_000, 300_001)


def _calls(y_true, y_pred):
    loss, grad = fastl2.mse_and_grad(y_true, y_pred)
    rows = fastl2.mse(y_true[: len(y_true) // 8 * 8].reshape(8, -1), y_pred[: len(y_pred) // 8 * 8].reshape(8, -1), axis=0)
    return (np.asarray(fastl2.mse(y_true, y_pred)).tobytes(), np.asarray(loss).tobytes(), grad.tobytes(),
            rows.tobytes(), np.asarray(fastl2.mae(y_true, y_pred)).tobytes())


@needs_pool
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_concurrent_callers_get_the_serial_bits(compiled, dtype):
    """Python threads calling at once share the pool (a call finding it taken runs on its own
    thread): every answer is the serial one, and every thread finishes."""
    data = [_inputs(n, dtype, seed) for seed, n in enumerate(SIZES)]
    fastl2.set_num_threads(1)
    expected = [_calls(*pair) for pair in data]
    fastl2.set_num_threads(4)
    failures: list[str] = []

    def worker(k):
        try:
            for repeat in range(15):
                j = (k + repeat) % len(data)
                if _calls(*data[j]) != expected[j]:
                    failures.append(f"thread {k}, n={SIZES[j]}: bits differ from the serial call")
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(f"thread {k}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a calling thread hung in the pool"
    assert not failures, failures


@needs_pool
def test_more_threads_than_cores_give_the_same_bits_and_a_bounded_pool(compiled):
    y_true, y_pred = _inputs(1_000_003, np.float32, 7)
    started_before = compiled.pool_size()  # (earlier tests in this process may have grown it)
    fastl2.set_num_threads(1)
    expected = _calls(y_true, y_pred)
    for threads in (2, 3, 16, 64):
        fastl2.set_num_threads(threads)
        assert _calls(y_true, y_pred) == expected, f"{threads} threads changed the bits"
    # helpers are started on demand and kept: at most one fewer than the most threads asked for
    assert 1 <= compiled.pool_size() <= max(started_before, 63)


@needs_pool
def test_spinning_or_sleeping_helpers_give_the_same_bits(compiled):
    """Helpers that sleep after every call (spin 0) are woken late, those that spin find the
    next call at once: who computes a block changes nothing."""
    y_true, y_pred = _inputs(500_000, np.float64, 8)
    fastl2.set_num_threads(1)
    expected = _calls(y_true, y_pred)
    fastl2.set_num_threads(2)
    previous = compiled.pool_spin()
    try:
        for spin in (0, 1_000, 1_000_000):
            compiled.set_pool_spin(spin)
            assert compiled.pool_spin() == spin
            for _ in range(5):
                assert _calls(y_true, y_pred) == expected, f"spin {spin} ns changed the bits"
        compiled.set_pool_spin(-5)
        assert compiled.pool_spin() == 0, "a negative spin is not clamped to 0"
    finally:
        compiled.set_pool_spin(previous)


@needs_pool
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the threads' signal masks from /proc (Linux)")
def test_helpers_block_every_signal(compiled):
    """Signals (Ctrl-C's SIGINT, a profiler's SIGPROF) must reach the program's own threads."""
    fastl2.set_num_threads(3)
    fastl2.mse(*_inputs(1_000_000, np.float32, 9))
    assert compiled.pool_size() >= 2
    # every standard signal (SIGKILL and SIGSTOP cannot be blocked)
    standard = 0x7FFFFFFF & ~((1 << (9 - 1)) | (1 << (19 - 1)))
    blocked_all = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/status") as f:
                fields = dict(line.split(":\t", 1) for line in f if ":\t" in line)
        except OSError:  # the thread ended meanwhile
            continue
        if int(fields["SigBlk"].strip(), 16) & standard == standard:
            blocked_all += 1
    assert blocked_all >= compiled.pool_size(), (
        f"{compiled.pool_size()} helpers, but only {blocked_all} threads block every signal")


def _child(conn, y_true, y_pred):
    try:
        fastl2.set_backend("cython")
        started_with = core.pool_size()
        fastl2.set_num_threads(2)
        value = np.asarray(fastl2.mse(y_true, y_pred)).tobytes()
        conn.send(("ok", (started_with, core.pool_size(), core.in_forked_child(), value)))
    except BaseException as exc:  # pragma: no cover - reported by the parent
        conn.send(("error", repr(exc)))
    finally:
        conn.close()


@needs_pool
@pytest.mark.skipif(not hasattr(os, "fork") or "fork" not in multiprocessing.get_all_start_methods(),
                    reason="this platform has no fork()")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_starts_its_own_helpers(compiled):
    """The parent's helpers do not exist in a child: its pool starts empty and grows its own
    (a child that used the parent's would wait for threads that are not there)."""
    y_true, y_pred = _inputs(2_000_000, np.float64, 10)
    fastl2.set_num_threads(2)
    expected = np.asarray(fastl2.mse(y_true, y_pred)).tobytes()
    assert compiled.pool_size() >= 1
    status, payload, _ = run_in_forked_child(_child, (y_true, y_pred), "in the thread pool")
    assert status == "ok", payload
    started_with, grown_to, forked, value = payload
    assert forked
    assert started_with == 0, "the child's pool claims the parent's helpers"
    assert grown_to >= 1, "the child computed a threaded call without helpers of its own"
    assert value == expected
