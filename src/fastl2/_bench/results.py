"""Running the cells: each method called, checked against the exact value, then timed.

A :class:`Result` is one row of the tables (and of the JSON report): a method on one
(op, dtype, size) cell, with its median time, throughput, speed-up over the baseline and errors.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .cases import Case, Reference, make_case, relative_error, unpack
from .peers import BASELINE, Method
from .timing import DEFAULT_BUDGET_S, time_call


@dataclass
class Result:
    """One row of the tables: a method timed and checked on one cell."""

    op: str
    dtype: str
    n: int
    method: str  # the row label, Method.name
    key: str  # Method.key
    seconds: float = math.nan
    samples: int = 0
    calls_per_sample: int = 0
    gbytes_per_s: float = math.nan
    speedup: float | None = None  # over the baseline method, when it ran
    loss: float = math.nan
    exact: float = math.nan
    rel_error: float = math.nan
    grad_error: float | None = None  # max |grad - exact| / max |exact|, for "grad"
    error: str | None = None  # why the method failed, when it did


def measure(method: Method, case: Case, reference: Reference, budget: float,
            repeat: int | None) -> Result:
    """Call once (JIT compile, first touch) and check the result, then time one method on one case.

    The first result is checked and released before the timing, so that a gradient does not stay
    alive next to the ones the timed calls make.
    """
    result = Result(case.op, case.dtype, case.n, method.name, method.key)
    try:
        with method.use():
            call = method.bind(case)
            _check(call(), case, reference, method, result)
            timing = time_call(call, budget, repeat)
    except Exception as exc:  # one broken method must not end the whole benchmark
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    result.seconds, result.samples = timing.seconds, timing.samples
    result.calls_per_sample = timing.calls_per_sample
    result.gbytes_per_s = case.bytes_moved / timing.seconds / 1e9
    return result


def _check(value: Any, case: Case, reference: Reference, method: Method, result: Result) -> None:
    """Record the loss a method returned, its exact value and the errors in ``result``."""
    loss, grad = unpack(value)
    reduction = method.weighted_reduction if case.op == "wmse" else "mean"
    result.loss, result.exact = loss, reference.loss(reduction)
    result.rel_error = relative_error(loss, result.exact)
    if grad is not None:
        result.grad_error = reference.grad_error(grad)


def run(cells: Sequence[tuple[str, str, int]], methods: Sequence[Method],
        budget: float = DEFAULT_BUDGET_S, repeat: int | None = None,
        progress: Callable[[str], None] | None = None) -> list[Result]:
    """Time every method that supports the cell's op on every (op, dtype, n) cell."""
    results: list[Result] = []
    for index, (op, dtype, n) in enumerate(cells, 1):
        if progress:
            progress(f"[{index}/{len(cells)}] {op} {dtype} n={n} ...")
        case = make_case(op, dtype, n)
        reference = Reference(case)
        rows = [measure(m, case, reference, budget, repeat) for m in methods if op in m.ops]
        baseline = next((r for r in rows if r.key == BASELINE), None)
        for row in rows:
            if baseline is not None and row.error is None and baseline.error is None:
                row.speedup = baseline.seconds / row.seconds
        results.extend(rows)
        del case, reference
        gc.collect()  # free this cell's inputs (and any cycles holding them) before the next one
    return results
