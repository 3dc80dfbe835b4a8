"""Results are bit-identical for any thread count and from call to call, on every backend."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import fastl2
from cases import LOSS_FUNCTIONS

N = 3_000_007  # a few million, not a multiple of the block size
THREAD_COUNTS = (1, 2, 7)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2024)
    t64 = rng.standard_normal(N) * 3
    p64 = rng.standard_normal(N) * 3
    w64 = rng.uniform(0.1, 2.0, N)
    return {
        "t32": t64.astype(np.float32), "p32": p64.astype(np.float32), "w32": w64.astype(np.float32),
        "t64": t64, "p64": p64, "w64": w64,
    }


def _loss_calls(name):
    """The calls of every loss (cases.LOSS_FUNCTIONS): float32, a weighted float64 sum, and the
    loss with its gradient."""
    loss, and_grad = getattr(fastl2, name), getattr(fastl2, f"{name}_and_grad")
    return {
        f"{name}_float32": lambda d: loss(d["t32"], d["p32"]),
        f"{name}_weighted_sum_float64": lambda d: loss(d["t64"], d["p64"], d["w64"], reduction="sum"),
        f"{name}_and_grad_float32": lambda d: and_grad(d["t32"], d["p32"]),
    }


CALLS = {
    **{call: run for name in LOSS_FUNCTIONS for call, run in _loss_calls(name).items()},
    "mse_float64": lambda d: fastl2.mse(d["t64"], d["p64"]),
    "weighted_mse_mean": lambda d: fastl2.mse(d["t64"], d["p64"], d["w64"], reduction="mean"),
    "weighted_mse_weighted_mean": lambda d: fastl2.mse(d["t32"], d["p32"], d["w32"], reduction="weighted_mean"),
    "mse_and_grad_weighted_float64": lambda d: fastl2.mse_and_grad(d["t64"], d["p64"], d["w64"],
                                                                   reduction="weighted_mean"),
    "l2_penalty_float64": lambda d: fastl2.l2_penalty(d["p64"], 0.125),
    "l2_penalty_float32": lambda d: fastl2.l2_penalty(d["p32"], 0.125),
}


def bits(result):
    """The exact bytes (and dtypes) of a result or of each part of a (loss, grad) tuple."""
    parts = result if isinstance(result, tuple) else (result,)
    return tuple((np.asarray(p).dtype.str, np.asarray(p).shape, np.asarray(p).tobytes()) for p in parts)


@pytest.mark.parametrize("call", list(CALLS))
def test_results_are_bit_identical_for_1_2_and_7_threads_and_across_calls(backend, data, call, restore_num_threads):
    results = {}
    for threads in THREAD_COUNTS:
        fastl2.set_num_threads(threads)
        # (the numba backend runs at most its pool's threads, and says so)
        pool = sys.modules["numba"].config.NUMBA_NUM_THREADS if backend == "numba" else threads
        assert fastl2.get_num_threads() == min(threads, pool)
        first = bits(CALLS[call](data))
        again = bits(CALLS[call](data))
        assert first == again, f"{call}: two calls with {threads} threads differ"
        results[threads] = first
    for threads in THREAD_COUNTS[1:]:
        assert results[threads] == results[1], f"{call}: {threads} threads differ from 1 thread"
