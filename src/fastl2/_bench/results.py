"""Running the cells: each method called, checked against the exact value, timed, then judged.

A :class:`Result` is one row of the tables (and of the JSON report): a method on one
(op, dtype, size) cell, with its median time, its p90 and p99, throughput, speed-up over the
baseline, errors, and the reasons, if any, to distrust its time (:func:`stall_reasons`).

**Stalled rows.** On a shared or small machine the scheduler can delay a timed call: a thread of a
parallel call waits for a core (a tick, 4 ms on most Linux kernels), or another process takes the
core away during some samples. Such a time describes the machine, not the method, so the row is
flagged (``!`` in the tables, with a footnote saying why) when either of these holds:

- **spread**: the samples disagree, ``p90 > 2 × median`` (more than a tenth of the samples took
  over twice the median; with 3 samples, the slowest one did);
- **serial estimate**: a method that runs on several threads is slower than it is on one thread,
  ``median > 1.5 × t1``, where ``t1`` is the faster of two calls of the same method, on the same
  inputs, restricted to one thread (``Method.one_thread``) right after the timing. A parallel call
  slower than its own serial run means its threads waited. This is checked where the median is at
  least :data:`SERIAL_CHECK_S` (1 ms, a fraction of a tick): below that no tick-long wait can
  have happened, and there the parallel start-up alone can legitimately exceed one thread's time.

The rule is :func:`stall_reasons`; the time of a flagged row is still shown, but a flagged row
says "rerun" rather than "this is how fast the method is" (``--busy`` makes the machine busy on
purpose: there the flags are the finding).
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .cases import Case, Reference, make_case, relative_error, unpack
from .peers import BASELINE, Method
from .timing import DEFAULT_BUDGET_S, Call, Timing, format_time, percentile, time_call

SPREAD_LIMIT = 2.0  # p90 above this many medians: the samples spread
SERIAL_LIMIT = 1.5  # a parallel median above this many one-thread times: the threads waited
SERIAL_CHECK_S = 1e-3  # the one-thread estimate is taken for medians at least this long
SERIAL_CALLS = 2  # timed one-thread calls; the fastest is kept


@dataclass
class Result:
    """One row of the tables: a method timed and checked on one cell."""

    op: str
    dtype: str
    n: int
    method: str  # the row label, Method.name
    key: str  # Method.key
    seconds: float = math.nan  # the median time per call
    p90: float = math.nan
    p99: float = math.nan
    samples: int = 0
    calls_per_sample: int = 0
    gbytes_per_s: float = math.nan
    speedup: float | None = None  # over the baseline method, when it ran
    loss: float = math.nan
    exact: float = math.nan
    rel_error: float = math.nan
    grad_error: float | None = None  # max |grad - exact| / max |exact|, for "grad"
    serial_seconds: float | None = None  # the one-thread estimate, where it was taken
    stalled: list[str] = field(default_factory=list)  # why the time is not trusted (empty: it is)
    error: str | None = None  # why the method failed, when it did


def stall_reasons(times: Sequence[float], serial: float | None = None) -> list[str]:
    """Why the samples ``times`` (seconds per call) of one row are not a clean measurement.

    Empty when they are. ``serial`` is the same call's time on one thread, where it was measured.
    See the module's docstring for the rule.
    """
    if not times:
        return []
    median = statistics.median(times)
    reasons = []
    p90 = percentile(times, 0.9)
    if median > 0 and p90 > SPREAD_LIMIT * median:
        reasons.append(f"samples spread: p90 {format_time(p90)} is {p90 / median:.1f}x the median")
    if serial is not None and serial > 0 and median > SERIAL_LIMIT * serial:
        reasons.append(f"{median / serial:.1f}x slower than on 1 thread ({format_time(serial)}): "
                       "its threads waited")
    return reasons


def _serial_seconds(method: Method, call: Call, timing: Timing) -> float | None:
    """The fastest of :data:`SERIAL_CALLS` calls on one thread, where the rule asks for it."""
    if method.one_thread is None or timing.seconds < SERIAL_CHECK_S:
        return None
    with method.one_thread():
        fastest = math.inf
        for _ in range(SERIAL_CALLS):
            start = time.perf_counter()
            call()
            fastest = min(fastest, time.perf_counter() - start)
    return fastest


def measure(method: Method, case: Case, reference: Reference, budget: float,
            repeat: int | None) -> Result:
    """Call once (JIT compile, first touch) and check the result, then time one method on one case.

    The first result is checked and released before the timing, so that a gradient does not stay
    alive next to the ones the timed calls make. The row is then judged (:func:`stall_reasons`).
    """
    result = Result(case.op, case.dtype, case.n, method.name, method.key)
    try:
        with method.use():
            call = method.bind(case)
            _check(call(), case, reference, method, result)
            timing = time_call(call, budget, repeat)
            serial = _serial_seconds(method, call, timing)
    except Exception as exc:  # one broken method must not end the whole benchmark
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    result.seconds, result.samples = timing.seconds, timing.samples
    result.p90, result.p99 = timing.p90, timing.p99
    result.calls_per_sample = timing.calls_per_sample
    result.gbytes_per_s = case.bytes_moved / timing.seconds / 1e9
    result.serial_seconds = serial
    result.stalled = stall_reasons(timing.times, serial)
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
        progress: Callable[[str], None] | None = None,
        on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Time every method that supports the cell's op on every (op, dtype, n) cell.

    ``on_result`` is called with each row as soon as it is measured (its ``speedup`` is filled in
    once the cell's last method has run).
    """
    results: list[Result] = []
    for index, (op, dtype, n) in enumerate(cells, 1):
        if progress:
            progress(f"[{index}/{len(cells)}] {op} {dtype} n={n} ...")
        case = make_case(op, dtype, n)
        reference = Reference(case)
        rows = []
        for method in methods:
            if op in method.ops:
                rows.append(measure(method, case, reference, budget, repeat))
                if on_result:
                    on_result(rows[-1])
        baseline = next((r for r in rows if r.key == BASELINE), None)
        for row in rows:
            if baseline is not None and row.error is None and baseline.error is None:
                row.speedup = baseline.seconds / row.seconds
        results.extend(rows)
        del case, reference
        gc.collect()  # free this cell's inputs (and any cycles holding them) before the next one
    return results
