"""Memory, the GIL and fork(): no O(n) temporaries, the GIL is released, forked children work."""
from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import tracemalloc

import numpy as np
import pytest

import fastl2
from forked import run_in_forked_child

MB = 1 << 20


# --------------------------------------------------------------------------- memory


def _memory_inputs(kind):
    n = 10**7
    rng = np.random.default_rng(0)
    if kind == "contiguous_float32":
        return rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32), None
    if kind == "contiguous_float32_weighted":
        return (rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32),
                rng.random(n, dtype=np.float32))
    if kind == "strided_float32":
        return rng.random(2 * n, dtype=np.float32)[::2], rng.random(2 * n, dtype=np.float32)[::-2], None
    if kind == "mixed_float32_float64":
        return rng.random(n, dtype=np.float32), rng.random(n), None
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "contiguous_float32",
        "contiguous_float32_weighted",
        "strided_float32",
        "mixed_float32_float64",
    ],
)
def test_mse_allocates_no_temporaries_proportional_to_n(backend, kind):
    y_true, y_pred, weights = _memory_inputs(kind)
    fastl2.mse(y_true, y_pred, weights, reduction="mean")  # first call outside: JIT compilation, lazy imports
    tracemalloc.start()
    try:
        fastl2.mse(y_true, y_pred, weights, reduction="mean")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # (80 MB of operands: an O(n) temporary is 40 MB or more; a float64 block's temporaries on
    # the NumPy backend, its exact terms' parts among them, some 1 MB)
    assert peak < 1.5 * MB, f"fastl2.mse on 10**7 elements ({kind}) peaked at {peak / MB:.1f} MB of traced memory"


# --------------------------------------------------------------------------- GIL


@pytest.fixture
def compiled_backend():
    """The compiled backend, active for the test (the GIL test is meaningful only for it:
    NumPy's ufuncs release the GIL too, so a NumPy-backend regression would not show)."""
    if "cython" not in fastl2.available_backends():
        pytest.skip("the compiled kernels are not built (pure-Python install)")
    previous = fastl2.get_backend()
    fastl2.set_backend("cython")
    try:
        yield
    finally:
        fastl2.set_backend(previous)


def test_compiled_kernels_release_the_gil(compiled_backend, restore_num_threads):
    """While one thread is inside a long fastl2 call, another Python thread keeps running.

    The switch interval is made huge so that the interpreter never forces a GIL hand-over: the main
    thread can run while the worker is inside mse_and_grad only if the call releases the GIL itself.
    """
    fastl2.set_num_threads(1)  # leave a core free for the main thread
    rng = np.random.default_rng(1)
    y_true = rng.standard_normal(20_000_000)
    y_pred = rng.standard_normal(20_000_000)
    state = {"in_call": False, "error": None}
    started = threading.Event()

    def worker():
        try:
            state["in_call"] = True
            started.set()
            for _ in range(3):
                fastl2.mse_and_grad(y_true, y_pred)
        except BaseException as exc:  # pragma: no cover - reported below
            state["error"] = exc
        finally:
            state["in_call"] = False
            started.set()

    target = 100_000
    progress = 0
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(60.0)
    try:
        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        started.wait(timeout=60)
        while state["in_call"] and progress < target:
            progress += 1
        thread.join(timeout=120)
    finally:
        sys.setswitchinterval(old_interval)
    assert not thread.is_alive(), "the worker thread did not finish"
    assert state["error"] is None, f"the worker failed: {state['error']!r}"
    assert progress >= target, (
        f"the main thread ran only {progress} loop iterations while mse_and_grad ran in another thread: "
        "the call holds the GIL"
    )


# --------------------------------------------------------------------------- fork


def _child_mse(conn, y_true, y_pred):
    try:
        fastl2.set_num_threads(2)
        conn.send(("ok", np.asarray(fastl2.mse(y_true, y_pred)).tobytes()))
    except BaseException as exc:  # pragma: no cover - reported by the parent
        conn.send(("error", repr(exc)))
    finally:
        conn.close()


@pytest.mark.skipif(not hasattr(os, "fork") or "fork" not in multiprocessing.get_all_start_methods(),
                    reason="this platform has no fork()")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_computes_after_parent_used_the_thread_pool(backend, restore_num_threads):
    rng = np.random.default_rng(2)
    y_true = rng.standard_normal(2_000_000)
    y_pred = rng.standard_normal(2_000_000)
    fastl2.set_num_threads(2)
    expected = np.asarray(fastl2.mse(y_true, y_pred)).tobytes()  # the parent's thread pool is now up

    status, payload, exitcode = run_in_forked_child(
        _child_mse, (y_true, y_pred), "computing mse after the parent had used the thread pool")
    assert status == "ok", f"the forked child failed: {payload}"
    assert exitcode == 0
    assert payload == expected, "the forked child's mse differs from the parent's"
