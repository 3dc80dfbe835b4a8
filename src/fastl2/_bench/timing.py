"""The one timer: warm-up, batching, repeated samples and their median.

:func:`time_call` times ``python -m fastl2 bench`` and the scripts in ``bench/`` alike::

    from fastl2._bench.timing import time_call

    call()  # once before: JIT compilation, first touch of buffers
    seconds = time_call(call, budget=0.3, min_samples=7).seconds

Garbage collection is paused while a call is timed; the result of each call is dropped at once.
Every sample is kept (:attr:`Timing.times`), so that the spread of the samples can be shown
(:attr:`Timing.p90`, :attr:`Timing.p99`) and judged (``results.stall_reasons``).
"""

from __future__ import annotations

import gc
import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

DEFAULT_BUDGET_S = 0.05  # the default of python -m fastl2 bench: see cli's docstring for why
MIN_SAMPLE_S = 2e-4  # batch calls until one timed sample lasts at least this long
WARM_UP_S = 0.01  # untimed calls before timing, to wake thread pools up
MIN_SAMPLES = 3  # samples taken at least, whatever the budget
MAX_SAMPLES = 1000

#: A prepared, argument-free call to time; it returns the loss or a ``(loss, grad)`` pair.
Call = Callable[[], Any]


def percentile(times: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-quantile of ``times`` (``q`` in (0, 1]): a time that was measured.

    With 3 samples, the 0.9 and 0.99 quantiles are both the slowest sample.
    """
    if not times:
        return math.nan
    ordered = sorted(times)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


@dataclass(frozen=True)
class Timing:
    """The median time per call over ``samples`` samples of ``calls_per_sample`` calls each.

    ``times`` holds every sample's time per call, in the order taken (empty where a caller built
    a Timing by hand); the quantiles below are taken over it.
    """

    seconds: float
    samples: int
    calls_per_sample: int
    times: tuple[float, ...] = ()

    @property
    def p90(self) -> float:
        return percentile(self.times, 0.9)

    @property
    def p99(self) -> float:
        return percentile(self.times, 0.99)

    @property
    def fastest(self) -> float:
        return min(self.times, default=math.nan)


def format_time(seconds: float) -> str:
    """``seconds`` with three significant digits in ns, µs, ms or s."""
    if math.isnan(seconds):
        return "-"
    for unit, scale in (("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3)):
        if seconds < 1000 * scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _time_batch(call: Call, number: int) -> float:
    start = time.perf_counter()
    for _ in itertools.repeat(None, number):
        call()
    return time.perf_counter() - start


def _warm_up(call: Call) -> float:
    """Call repeatedly for :data:`WARM_UP_S` (at least once); return the fastest call's time.

    A first call after a pause can be milliseconds slower than the next ones (thread pools asleep,
    threads on the same core), so a fast call is repeated until the time is spent and the fastest
    decides the batch size. A call slower than :data:`WARM_UP_S` (10⁸ elements) runs once.
    """
    fastest, spent, calls = math.inf, 0.0, 0
    while calls == 0 or spent < WARM_UP_S:
        elapsed = _time_batch(call, 1)
        fastest, spent, calls = min(fastest, elapsed), spent + elapsed, calls + 1
    return fastest


def _batch_size(call: Call) -> int:
    """Calls per sample: enough that one sample lasts at least :data:`MIN_SAMPLE_S`."""
    fastest = _warm_up(call)
    if fastest >= MIN_SAMPLE_S:
        return 1
    number = math.ceil(MIN_SAMPLE_S / max(fastest, 1e-9))
    elapsed = _time_batch(call, number)
    while elapsed < MIN_SAMPLE_S:  # the warm-up's fastest call was not representative
        number = math.ceil(number * min(max(1.5 * MIN_SAMPLE_S / elapsed, 2.0), 100.0))
        elapsed = _time_batch(call, number)
    return number


def time_call(call: Call, budget: float = DEFAULT_BUDGET_S, repeat: int | None = None, *,
              min_samples: int = MIN_SAMPLES) -> Timing:
    """Time ``call`` (already called once: compiled, buffers touched).

    After a short warm-up, calls are batched so that one sample lasts at least
    :data:`MIN_SAMPLE_S`; then samples are taken until ``budget`` seconds are spent (at least
    ``min_samples``, at most :data:`MAX_SAMPLES`), or exactly ``repeat`` of them. Returns the
    median per call, with every sample's time per call. A method taking seconds per call (10⁸ elements) is thus called 4 times here:
    warm-up and 3 samples.
    """
    with _gc_paused():
        number = _batch_size(call)
        times: list[float] = []
        deadline = time.perf_counter() + budget
        while len(times) < (repeat or MAX_SAMPLES):
            times.append(_time_batch(call, number) / number)
            if repeat is None and len(times) >= min_samples and time.perf_counter() >= deadline:
                break
    return Timing(statistics.median(times), len(times), number, tuple(times))
