"""The numba backend on threads: the same bits for any thread count (within and beyond numba's
pool), at most numba's pool, Numba's own setting by default, the thread-count functions, the
1-d kernels' operand checks, and a fork()ed child that computes after its parent used the
backend's threads (pool.py).
"""
from __future__ import annotations

import multiprocessing
import textwrap

import numpy as np
import pytest

numba = pytest.importorskip("numba", reason="numba is not installed: pip install numba, or pip install '.[numba]' in fastl2's checkout")

import fastl2  # noqa: E402
import numba_cases  # noqa: E402
from fastl2._numba import driver as numba_driver  # noqa: E402
from numba_cases import (F32, HAVE_CYTHON, NO_CYTHON, bits, numba_backend_config,  # noqa: E402
                         numba_backend_module, on, run_python)

switch = numba_cases.switch  # (the fixtures, as this module's)
numba_threads = numba_cases.numba_threads


# --------------------------------------------------------------------------- threads

THREAD_N = 2_000_003
THREAD_CALLS = {
    "mse_float32": lambda d: fastl2.mse(d["t32"], d["p32"]),
    "mse_float64": lambda d: fastl2.mse(d["t64"], d["p64"]),
    "mae_weighted_mean_float32": lambda d: fastl2.mae(d["t32"], d["p32"], d["w32"], reduction="weighted_mean"),
    "mse_and_grad_weighted_float64": lambda d: fastl2.mse_and_grad(d["t64"], d["p64"], d["w64"],
                                                                   reduction="weighted_mean"),
    # (weights of y_true's dtype: the 1-d kernels' float32 / float64 mix, cases.py)
    "mae_and_grad_mixed": lambda d: fastl2.mae_and_grad(d["t64"], d["p32"], d["w64"]),
    "mse_none_float64": lambda d: fastl2.mse(d["t64"], d["p64"], reduction="none"),
    "l2_penalty_float32": lambda d: fastl2.l2_penalty(d["p32"], 0.5),
}


@pytest.fixture(scope="module")
def thread_data():
    rng = np.random.default_rng(99)
    t64, p64, w64 = rng.standard_normal(THREAD_N), rng.standard_normal(THREAD_N), rng.uniform(0, 2, THREAD_N)
    return {"t64": t64, "p64": p64, "w64": w64,
            "t32": t64.astype(F32), "p32": p64.astype(F32), "w32": w64.astype(F32)}


def _thread_counts():
    # Counts beyond numba's pool (NUMBA_NUM_THREADS, fixed at its first use) are not generated
    # here: 7 threads are checked in a subprocess with a pool of 7 (THREADS_SCRIPT below).
    available = numba.config.NUMBA_NUM_THREADS
    return [n for n in (1, 2, 7) if n <= available]


@pytest.mark.parametrize("call", list(THREAD_CALLS))
@pytest.mark.parametrize("threads", _thread_counts())
def test_numba_results_are_bit_identical_for_any_thread_count(switch, numba_threads, thread_data, call, threads):
    switch("numba")
    numba_threads(1)
    one = bits(THREAD_CALLS[call](thread_data))
    numba_threads(threads)
    assert numba_backend_module.get_num_threads() == threads
    assert bits(THREAD_CALLS[call](thread_data)) == one
    assert bits(THREAD_CALLS[call](thread_data)) == one


@pytest.mark.skipif(not HAVE_CYTHON, reason=NO_CYTHON)
@pytest.mark.parametrize("call", ["mse_float64", "mse_and_grad_weighted_float64", "mse_none_float64"])
def test_numba_parallel_results_match_cython(switch, numba_threads, thread_data, call):
    numba_threads(2)
    expected = bits(on(switch, "cython", THREAD_CALLS[call], thread_data))
    assert bits(on(switch, "numba", THREAD_CALLS[call], thread_data)) == expected


THREADS_SCRIPT = textwrap.dedent(
    """
    import hashlib, numba, numpy as np, fastl2, fastl2._numba as nb
    from fastl2 import _backends
    if "numba" in _backends.KNOWN_BACKENDS:
        fastl2.set_backend("numba")
    else:
        _backends._active, _backends._active_name = nb, "numba"
        if _backends.compiled_module() is not None:
            _backends.compiled_module()._set_fast_path(False)
    rng = np.random.default_rng(5)
    t, p, w = rng.standard_normal(1_000_003), rng.standard_normal(1_000_003), rng.uniform(0, 2, 1_000_003)
    for threads in (1, 2, 7):
        nb.set_num_threads(threads)
        assert nb.get_num_threads() == threads, nb.get_num_threads()
        loss, grad = fastl2.mse_and_grad(t, p, w, reduction="weighted_mean")
        mae = fastl2.mae(t.astype(np.float32), p.astype(np.float32))
        digest = hashlib.sha256(np.asarray(loss).tobytes() + grad.tobytes() + np.asarray(mae).tobytes())
        # (fastl2's pool runs the threads: Numba's own count is left as it is)
        assert numba.get_num_threads() == 7, numba.get_num_threads()
        print(threads, digest.hexdigest())
    """
)



def test_numba_results_are_bit_identical_for_1_2_and_7_threads_in_a_pool_of_7():
    proc = run_python(THREADS_SCRIPT, env={"NUMBA_NUM_THREADS": "7"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    digests = dict(zip(lines[::2], lines[1::2]))
    assert set(digests) == {"1", "2", "7"}, proc.stdout
    assert digests["2"] == digests["1"] and digests["7"] == digests["1"]


def test_numba_1d_kernels_refuse_operands_their_compiled_code_does_not_read():
    """The 1-d kernels are called without Numba's type checks, so what run() hands them is
    checked first: a strided y_pred is refused with its name and layout, never read."""
    with pytest.raises(ValueError, match=r"y_pred .*strides \(16,\)"):
        numba_driver._operand_sizes((None, np.arange(6.0)[::2], None, None, None))
    assert numba_driver._operand_sizes(
        (np.zeros(3, np.float32), np.zeros(3), None, np.zeros(3), None)) == (4, 8, None, 8, None)


def test_numbas_count_is_read_without_starting_numbas_threading_layer():
    # fastl2 never runs Numba's threads: reading Numba's count does not start its layer (an
    # OpenMP runtime, here), and once the layer runs (numba.set_num_threads starts it), the
    # calling thread's own count is read.
    proc = run_python(textwrap.dedent("""
        import numpy as np, fastl2, numba
        from numba.np.ufunc import parallel
        from fastl2._numba import config
        fastl2.set_backend("numba")
        n = config.PARALLEL_THRESHOLD + 5
        fastl2.mse(np.zeros(n), np.ones(n))
        print(fastl2.get_num_threads() == numba.config.NUMBA_NUM_THREADS, parallel._is_initialized)
        numba.set_num_threads(1)
        print(config.get_num_threads(), parallel._is_initialized)
    """))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False", "1", "True"], proc.stdout


def test_numba_set_num_threads_caps_at_numbas_pool_and_zero_means_numbas_setting(numba_threads):
    pool = numba.config.NUMBA_NUM_THREADS
    numba_threads(pool + 5)
    assert numba_backend_module.get_num_threads() == pool
    numba_threads(0)
    assert numba_backend_module.get_num_threads() == numba.get_num_threads()


# --------------------------------------------------------------------------- fork


def _child_mse(queue, y_true, y_pred):
    queue.put((float(fastl2.mse(y_true, y_pred)), numba_backend_module.in_forked_child()))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork() on this platform")
def test_forked_child_computes_after_the_parent_used_the_backends_threads(switch, numba_threads):
    switch("numba")
    numba_threads(2)
    rng = np.random.default_rng(1)
    n = numba_backend_config.PARALLEL_THRESHOLD + 1
    y_true, y_pred = rng.standard_normal(n), rng.standard_normal(n)
    expected = float(fastl2.mse(y_true, y_pred))  # the parallel path: the pool's helpers run
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_mse, args=(queue, y_true, y_pred))
    child.start()
    try:
        value, in_child = queue.get(timeout=120)
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    assert in_child
    assert value == expected


# --------------------------------------------------------------------------- the pool (pool.py)


def test_pool_call_ends_on_the_caller_alone_when_no_helper_starts(monkeypatch):
    # A helper the scheduler does not run in time (here: none is ever asked) leaves its chunks
    # to the calling thread, which never waits for it.
    from fastl2._numba import pool

    monkeypatch.setattr(pool, "_ask_helpers", lambda call, helpers: None)
    ran = []
    pool.run_chunks(ran.append, 7, 4, np.zeros(1, np.uint8))
    assert ran == list(range(7))


def test_pool_runs_every_chunk_once_and_raises_what_a_chunk_raised():
    from fastl2._numba import pool

    ran = []
    pool.run_chunks(ran.append, 200, 2, np.zeros(1, np.uint8))  # (list.append: atomic)
    assert sorted(ran) == list(range(200))

    def fail(i):
        if i == 3:
            raise ValueError("chunk 3")

    cancel = np.zeros(1, np.uint8)
    with pytest.raises(ValueError, match="chunk 3"):  # (whichever thread ran chunk 3)
        pool.run_chunks(fail, 64, 2, cancel)
    assert cancel[0] == 1  # the kernels of the other chunks were told to stop
    ran.clear()
    pool.run_chunks(ran.append, 50, 2, np.zeros(1, np.uint8))  # the pool is usable after it
    assert sorted(ran) == list(range(50))


def test_show_config_names_the_numba_backends_threads(switch, capsys):
    switch("numba")
    fastl2.mse(np.zeros(3), np.ones(3))
    fastl2.show_config()
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("numba backend threads")]
    assert line and "fastl2's pool of Python threads" in line[0], line


def test_pool_offers_no_call_to_a_helper_busy_with_a_long_one():
    # A helper busy with another thread's long call is not offered new calls: they once piled
    # up in the helpers' queue, each holding its memory until the long call ended.
    import threading

    from fastl2._numba import pool

    release, running = threading.Event(), []

    def blocking(i):
        running.append(i)
        release.wait(30)

    # Every helper free first: a helper still busy with an earlier test's call (offered it,
    # not yet run by a loaded machine's scheduler) is not offered the long call, and no new
    # helper starts while as many run as it asks for, so its second chunk would wait for the
    # first (.ci/run once: "no helper took the long call's second chunk").
    for _ in range(3000):
        with pool._lock:
            if pool._free == pool._helpers:
                break
        release.wait(0.01)
    long_call = threading.Thread(target=pool.run_chunks, args=(blocking, 2, 2, np.zeros(1, np.uint8)))
    long_call.start()
    try:
        for _ in range(1000):  # (until both chunks run: the caller's and a helper's)
            if len(running) == 2:
                break
            release.wait(0.01)
        assert len(running) == 2, "no helper took the long call's second chunk"
        for _ in range(50):
            ran = []
            pool.run_chunks(ran.append, 4, 2, np.zeros(1, np.uint8))
            assert sorted(ran) == [0, 1, 2, 3]
        assert pool._jobs.qsize() <= pool._helpers
    finally:
        release.set()
        long_call.join()
