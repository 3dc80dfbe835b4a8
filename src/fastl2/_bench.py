"""Time fastl2 against the libraries a user would otherwise pick: ``python -m fastl2 bench``.

Three operations are timed for each dtype and size:

``mse``
    the unweighted mean squared error (loss only);
``wmse``
    the mean squared error with full-shape positive weights (loss only);
``grad``
    the loss and its gradient with respect to ``y_pred``, ``2 (y_pred - y_true) / n``.

Every method is checked against an exact value of what *that method* computes (``math.fsum`` over
float64 products), so the table shows speed and accuracy side by side. The peers are defined once,
in :data:`PEERS`; the pytest-benchmark suite in ``bench/`` reuses them.

The machine's read bandwidth is measured once per run (:func:`measure_read_bandwidth`) and printed
above the tables; ``--plot FILE.png`` draws every method's throughput against the size, with that
bandwidth as a reference line (matplotlib: ``pip install matplotlib``, or ``pip install '.[plot]'`` in fastl2's checkout).

Run ``python -m fastl2 bench --help`` for the options. Three environment notes:

- Unset ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` where a machine sets them: they slow NumPy.
- On small virtual machines, OpenMP threads that are not bound to cores can stall each parallel
  call by a scheduler tick (rows of exactly 4, 8 or 16 ms, for fastl2, Numba and PyTorch alike);
  ``OMP_PROC_BIND=spread OMP_PLACES=cores`` avoids it. It must be set before Python starts.
- With ``OMP_PROC_BIND`` set, the OpenMP runtime pins the main thread to one core as soon as fastl2
  is imported, and thread pools started later inherit that core (Numba would size its pool to 1
  thread, numexpr would run all its threads on one core). :func:`load_methods` therefore imports
  the peers and starts their pools with the main thread allowed on every CPU (:func:`all_cpus`).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from functools import cache
from importlib import metadata
from types import SimpleNamespace
from typing import Any

import numpy as np

OPS = ("mse", "wmse", "grad")
OP_TITLES = {
    "mse": "mse: unweighted mean squared error, loss only",
    "wmse": "wmse: mean squared error with full-shape weights, loss only",
    "grad": "grad: mse loss and its gradient with respect to y_pred, in one call",
}
DEFAULT_SIZES = (16, 1_000, 100_000, 10_000_000)
DEFAULT_DTYPES = ("float32", "float64")
DEFAULT_BUDGET_S = 0.1
BASELINE = "numpy"  # the speed-up column is relative to this method: np.mean((a - b) ** 2)
MIN_SAMPLE_S = 2e-4  # batch calls until one timed sample lasts at least this long
WARM_UP_S = 0.01  # untimed calls before timing, to wake thread pools up
MAX_SAMPLES = 1000
SEED = 0
CHUNK = 1 << 18  # elements per chunk where exact values are computed, to bound their memory
PROBE_BYTES = 100_000_000  # the array read by the bandwidth probe: far past any last-level cache
PLOT_EXTRA_HINT = "pip install matplotlib (from fastl2's checkout: pip install '.[plot]')"

#: A prepared, argument-free call to time; it returns the loss or a ``(loss, grad)`` pair.
Call = Callable[[], Any]


class Unavailable(Exception):
    """A method cannot run here (its library is missing); the message says why."""


# --------------------------------------------------------------------------------------------
# Inputs and exact values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """The inputs of one benchmark cell (op, dtype, size), made once and shared by every method."""

    op: str
    y_true: np.ndarray
    y_pred: np.ndarray
    weights: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.y_pred.size

    @property
    def dtype(self) -> str:
        return self.y_pred.dtype.name

    @property
    def bytes_moved(self) -> int:
        """Bytes a one-pass kernel must move: every input read once, the gradient written once."""
        arrays = 2 + (self.weights is not None) + (self.op == "grad")
        return arrays * self.y_pred.nbytes


def make_case(op: str, dtype: str, n: int, seed: int = SEED) -> Case:
    """Uniform inputs on [0, 1) (weights on [0.5, 1.5) for ``wmse``), the same for every run.

    Each array is generated in its dtype, with no temporary (10⁸ float64 elements are 800 MB each).
    """
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    rng = np.random.default_rng(seed)
    y_true = rng.random(n, dtype=dtype)
    y_pred = rng.random(n, dtype=dtype)
    weights = None
    if op == "wmse":
        weights = rng.random(n, dtype=dtype)
        weights += np.asarray(0.5, dtype)
    return Case(op, y_true, y_pred, weights)


class Reference:
    """Exact values for one :class:`Case`, each loss computed once and on demand.

    The loss is ``math.fsum`` over the float64 element losses ``w * d * d`` with
    ``d = float64(y_pred) - float64(y_true)``, divided by ``n`` ("mean") or by ``fsum(w)``
    ("weighted_mean"): exact sums of the rounded float64 products, one rounding each, then one
    division. The exact gradient is ``d * (2 / n)`` in float64. Everything is computed in chunks of
    :data:`CHUNK` elements, so that no float64 copy of a whole input is ever made.
    """

    def __init__(self, case: Case) -> None:
        self.case = case
        self._sums: dict[str, float] = {}

    def _parts(self) -> Iterator[slice]:
        n = self.case.n
        return (slice(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK))

    def _diff(self, part: slice) -> np.ndarray:
        """``float64(y_pred) - float64(y_true)`` on ``part`` (float32 widens exactly)."""
        return self.case.y_pred[part].astype(np.float64) - self.case.y_true[part]

    def _element_losses(self, part: slice) -> np.ndarray:
        d = self._diff(part)
        weights = self.case.weights
        if weights is None:
            return d * d
        return weights[part].astype(np.float64) * d * d

    def _sum(self, what: str) -> float:
        """The exact sum of the element losses ("losses") or of the weights ("weights")."""
        if what not in self._sums:
            if what == "weights":
                chunks = (self.case.weights[p].astype(np.float64).tolist() for p in self._parts())
            else:
                chunks = (self._element_losses(p).tolist() for p in self._parts())
            self._sums[what] = math.fsum(itertools.chain.from_iterable(chunks))
        return self._sums[what]

    def loss(self, reduction: str = "mean") -> float:
        """The exact loss for ``reduction`` "mean" or "weighted_mean"."""
        if reduction == "weighted_mean" and self.case.weights is not None:
            return self._sum("losses") / self._sum("weights")
        return self._sum("losses") / self.case.n

    def grad_parts(self) -> Iterator[tuple[slice, np.ndarray]]:
        """The exact float64 gradient of the mean, ``2 d / n``, in ``(slice, values)`` chunks."""
        scale = 2.0 / self.case.n
        for part in self._parts():
            yield part, self._diff(part) * scale

    def grad_error(self, grad: np.ndarray) -> float:
        """``max |grad - exact| / max |exact|`` over all elements (``max |grad|`` if exact is 0)."""
        grad = grad.reshape(-1)
        error = scale = 0.0
        for part, exact in self.grad_parts():
            error = max(error, float(np.max(np.abs(grad[part] - exact))))
            scale = max(scale, float(np.max(np.abs(exact))))
        return error / scale if scale else error


def relative_error(value: float, exact: float) -> float:
    """``|value - exact| / |exact|`` (the absolute error where ``exact`` is 0)."""
    error = abs(value - exact)
    return error / abs(exact) if exact != 0 else error


def unpack(value: Any) -> tuple[float, np.ndarray | None]:
    """Turn what a method returned (scalar, tensor, or ``(loss, grad)``) into ``(float, ndarray)``."""
    if isinstance(value, tuple):
        loss, grad = value
        return float(loss), _to_numpy(grad)
    return float(value), None


def _to_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor
        array = array.detach().numpy()
    return np.asarray(array)


# --------------------------------------------------------------------------------------------
# Methods: fastl2 and its peers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """One way of computing the benchmarked operations.

    ``key`` is a short unique id (``"numpy"``, ``"fastl2-cython"``), ``name`` the row label.
    ``bind(case)`` prepares the inputs (tensors, buffers) outside the timing and returns the call to
    time. ``weighted_reduction`` says what the method's weighted loss divides by ("mean": ``n``;
    "weighted_mean": the sum of the weights), so that its error is measured against the right
    exact value. ``use()`` is entered around binding, warm-up and timing (fastl2 selects a backend).
    """

    key: str
    name: str
    ops: frozenset[str]
    bind: Callable[[Case], Call]
    describe: dict[str, str]
    weighted_reduction: str = "mean"
    use: Callable[[], AbstractContextManager[Any]] = nullcontext


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # also catches a broken install, which raises an ImportError subclass
        raise Unavailable(f"{module} is not installed ({exc})") from None


def numpy_mean_peer() -> Method:
    """The textbook NumPy expression, ``np.mean((y_pred - y_true) ** 2)``: the baseline."""

    def bind(case: Case) -> Call:
        a, b, w, n = case.y_true, case.y_pred, case.weights, case.n
        if case.op == "mse":
            return lambda: np.mean((b - a) ** 2)
        if case.op == "wmse":
            return lambda: np.mean(w * (b - a) ** 2)
        return lambda: (np.mean((b - a) ** 2), (2.0 / n) * (b - a))

    return Method(
        key="numpy",
        name="np.mean((a-b)**2)",
        ops=frozenset(OPS),
        bind=bind,
        describe={
            "mse": "np.mean((b - a) ** 2)",
            "wmse": "np.mean(w * (b - a) ** 2)",
            "grad": "np.mean((b - a) ** 2), (2 / n) * (b - a)",
        },
    )


def numpy_dot_peer() -> Method:
    """NumPy with a single temporary: ``d = y_pred - y_true; d @ d / n``."""

    def bind(case: Case) -> Call:
        a, b, w, n = case.y_true, case.y_pred, case.weights, case.n
        if case.op == "mse":
            def mse() -> Any:
                d = b - a
                return d @ d / n
            return mse
        if case.op == "wmse":
            def wmse() -> Any:
                d = b - a
                return (w * d) @ d / n
            return wmse

        def mse_and_grad() -> tuple[Any, np.ndarray]:
            d = b - a
            loss = d @ d / n
            d *= 2.0 / n  # the temporary becomes the gradient: still one allocation
            return loss, d
        return mse_and_grad

    return Method(
        key="numpy-dot",
        name="numpy d@d/n",
        ops=frozenset(OPS),
        bind=bind,
        describe={
            "mse": "d = b - a; d @ d / n",
            "wmse": "d = b - a; (w * d) @ d / n",
            "grad": "d = b - a; loss = d @ d / n; d *= 2 / n (in place)",
        },
    )


def torch_peer() -> Method:
    """PyTorch on CPU, on ``torch.from_numpy`` views of the inputs (made outside the timing)."""
    torch = _require("torch")
    functional = torch.nn.functional

    def bind(case: Case) -> Call:
        a, b = torch.from_numpy(case.y_true), torch.from_numpy(case.y_pred)
        if case.op == "mse":
            return lambda: functional.mse_loss(b, a)
        if case.op == "wmse":
            w = torch.from_numpy(case.weights)
            return lambda: torch.mean(w * (b - a) ** 2)

        def mse_and_grad() -> tuple[Any, Any]:
            x = b.detach().requires_grad_(True)
            loss = functional.mse_loss(x, a)
            loss.backward()
            return loss.detach(), x.grad
        return mse_and_grad

    return Method(
        key="torch",
        name="torch F.mse_loss",
        ops=frozenset(OPS),
        bind=bind,
        describe={
            "mse": "torch.nn.functional.mse_loss(b, a)",
            "wmse": "torch.mean(w * (b - a) ** 2)",
            "grad": "x = b.requires_grad_(); mse_loss(x, a).backward(); x.grad",
        },
    )


def sklearn_peer() -> Method:
    """scikit-learn's ``mean_squared_error``; its weighted form divides by the sum of the weights."""
    metrics = _require("sklearn.metrics")
    mean_squared_error = metrics.mean_squared_error

    def bind(case: Case) -> Call:
        a, b, w = case.y_true, case.y_pred, case.weights
        if case.op == "mse":
            return lambda: mean_squared_error(a, b)
        return lambda: mean_squared_error(a, b, sample_weight=w)

    return Method(
        key="sklearn",
        name="sklearn mean_squared_error",
        ops=frozenset({"mse", "wmse"}),
        bind=bind,
        weighted_reduction="weighted_mean",
        describe={
            "mse": "sklearn.metrics.mean_squared_error(a, b)",
            "wmse": "mean_squared_error(a, b, sample_weight=w): divides by sum(w)",
        },
    )


def _njit(numba: Any, function: Callable[..., Any]) -> Callable[..., Any]:
    """``numba.njit(parallel=True, cache=True)``, without the cache where it cannot be written."""
    try:
        return numba.njit(parallel=True, fastmath=False, cache=True)(function)
    except RuntimeError:  # no writable cache location (read-only install)
        return numba.njit(parallel=True, fastmath=False)(function)


@cache
def numba_kernels() -> SimpleNamespace:
    """Plain one-pass Numba ``prange`` loops accumulating in float64, compiled on first call."""
    numba = _require("numba")
    prange = numba.prange

    def mse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        total = 0.0
        for i in prange(y_pred.shape[0]):
            d = np.float64(y_pred[i]) - np.float64(y_true[i])
            total += d * d
        return total / y_pred.shape[0]

    def wmse(y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray) -> float:
        total = 0.0
        for i in prange(y_pred.shape[0]):
            d = np.float64(y_pred[i]) - np.float64(y_true[i])
            total += np.float64(weights[i]) * d * d
        return total / y_pred.shape[0]

    def mse_and_grad(y_true: np.ndarray, y_pred: np.ndarray, grad: np.ndarray) -> float:
        n = y_pred.shape[0]
        scale = 2.0 / n
        total = 0.0
        for i in prange(n):
            d = np.float64(y_pred[i]) - np.float64(y_true[i])
            total += d * d
            grad[i] = scale * d
        return total / n

    return SimpleNamespace(
        mse=_njit(numba, mse), wmse=_njit(numba, wmse), mse_and_grad=_njit(numba, mse_and_grad)
    )


def numba_peer() -> Method:
    """What a user would write in Numba: one ``prange`` loop per operation (no fastmath)."""
    kernels = numba_kernels()
    tiny = np.zeros(2)
    kernels.mse(tiny, tiny)  # starts Numba's thread pool now, inside load_methods' all_cpus()

    def bind(case: Case) -> Call:
        a, b, w = case.y_true, case.y_pred, case.weights
        if case.op == "mse":
            return lambda: kernels.mse(a, b)
        if case.op == "wmse":
            return lambda: kernels.wmse(a, b, w)

        def mse_and_grad() -> tuple[float, np.ndarray]:
            # NumPy allocates, as for fastl2 and NumPy: an np.empty_like inside @njit (Numba's
            # own allocator) made the call 2-3 times slower at 10^7 elements on the test machine
            grad = np.empty_like(b)
            return kernels.mse_and_grad(a, b, grad), grad
        return mse_and_grad

    return Method(
        key="numba",
        name="numba prange",
        ops=frozenset(OPS),
        bind=bind,
        describe={
            "mse": "@njit(parallel=True) one-pass prange loop, float64 accumulator",
            "wmse": "the same loop with w[i] * d * d",
            "grad": "the same loop, also writing grad[i] = 2 d / n into np.empty_like(b)",
        },
    )


def numexpr_peer() -> Method:
    """numexpr's one-pass expression evaluation: ``sum(...)`` for the loss, a second expression for
    the gradient. Its ``sum`` accumulates in the input dtype (float32 for float32 inputs)."""
    numexpr = _require("numexpr")
    evaluate = numexpr.evaluate

    def bind(case: Case) -> Call:
        n = case.n
        names = {"a": case.y_true, "b": case.y_pred, "w": case.weights, "n": n}
        if case.op == "mse":
            return lambda: evaluate("sum((b - a) ** 2)", local_dict=names) / n
        if case.op == "wmse":
            return lambda: evaluate("sum(w * (b - a) ** 2)", local_dict=names) / n

        def mse_and_grad() -> tuple[Any, np.ndarray]:
            loss = evaluate("sum((b - a) ** 2)", local_dict=names) / n
            return loss, evaluate("2 * (b - a) / n", local_dict=names)
        return mse_and_grad

    return Method(
        key="numexpr",
        name="numexpr sum((b-a)**2)",
        ops=frozenset(OPS),
        bind=bind,
        describe={
            "mse": 'numexpr.evaluate("sum((b - a) ** 2)") / n',
            "wmse": 'numexpr.evaluate("sum(w * (b - a) ** 2)") / n',
            "grad": 'the mse loss, then numexpr.evaluate("2 * (b - a) / n"): two passes',
        },
    )


#: The peers, by key: each factory returns a :class:`Method` or raises :class:`Unavailable`.
PEERS: dict[str, Callable[[], Method]] = {
    "numpy": numpy_mean_peer,
    "numpy-dot": numpy_dot_peer,
    "torch": torch_peer,
    "sklearn": sklearn_peer,
    "numba": numba_peer,
    "numexpr": numexpr_peer,
}


@contextmanager
def using_backend(name: str) -> Iterator[None]:
    """Select fastl2's backend ``name`` for the duration of the block."""
    import fastl2

    previous = fastl2.get_backend()
    fastl2.set_backend(name)
    try:
        yield
    finally:
        fastl2.set_backend(previous)


def fastl2_method(backend: str, *, out: bool = False) -> Method:
    """fastl2 on ``backend``; with ``out=True`` the gradient goes into a buffer made beforehand."""
    import fastl2

    def bind(case: Case) -> Call:
        a, b, w = case.y_true, case.y_pred, case.weights
        if case.op == "mse":
            return lambda: fastl2.mse(a, b)
        if case.op == "wmse":
            return lambda: fastl2.mse(a, b, w)
        if out:
            buffer = np.empty_like(b)
            return lambda: fastl2.mse_and_grad(a, b, out=buffer)
        return lambda: fastl2.mse_and_grad(a, b)

    return Method(
        key=f"fastl2-{backend}" + ("-out" if out else ""),
        name=f"fastl2[{backend}]" + (" out=" if out else ""),
        ops=frozenset({"grad"} if out else OPS),
        bind=bind,
        use=lambda: using_backend(backend),
        describe={
            "mse": "fastl2.mse(a, b)",
            "wmse": "fastl2.mse(a, b, w)",
            "grad": "fastl2.mse_and_grad(a, b" + (", out=buffer)" if out else ")"),
        },
    )


def fastl2_methods() -> list[Method]:
    """fastl2 on its active backend, then on each other compiled backend that is available.

    The NumPy backend gets a row only when it is the active one (no compiled backend, or chosen).
    The active backend also gets an ``out=`` row for the gradient.
    """
    import fastl2

    active = fastl2.get_backend()
    others = [b for b in fastl2.available_backends() if b not in ("numpy", active)]
    return [fastl2_method(active), fastl2_method(active, out=True)] + [
        fastl2_method(b) for b in others
    ]


def load_methods(keys: Sequence[str] | None = None) -> tuple[list[Method], dict[str, str]]:
    """The methods selected by ``keys`` ("fastl2" and :data:`PEERS` keys; all when None).

    Returns the methods that can run here and, for each one that cannot, the reason. The peers'
    libraries are imported, and their thread pools started, inside :func:`all_cpus`.
    """
    keys = list(keys) if keys is not None else ["fastl2", *PEERS]
    unknown = sorted(set(keys) - {"fastl2", *PEERS})
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {['fastl2', *PEERS]}")
    methods: list[Method] = []
    skipped: dict[str, str] = {}
    with all_cpus():
        import fastl2

        fastl2.available_backends()  # imports the Numba backend, and Numba, if installed
        for key in keys:
            try:
                methods.extend(fastl2_methods() if key == "fastl2" else [PEERS[key]()])
            except Unavailable as exc:
                skipped[key] = str(exc)
    return methods, skipped


def _binds_threads() -> bool:
    return os.environ.get("OMP_PROC_BIND", "false").strip().lower() not in ("", "false")


@contextmanager
def all_cpus() -> Iterator[None]:
    """Let the main thread, and the threads started in the block, run on every online CPU.

    With ``OMP_PROC_BIND`` set, the OpenMP runtime pins the main thread to its first place when
    fastl2 loads; a library imported afterwards sizes its thread pool from that one-CPU affinity
    (Numba) or starts threads that inherit it (numexpr). Outside that case, and where the affinity
    cannot be changed, this does nothing. The main thread's affinity is restored on exit.
    """
    if not (_binds_threads() and hasattr(os, "sched_setaffinity")):
        yield
        return
    pinned = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    except OSError:  # a CPU set the process may not widen: leave it as it is
        pinned = None
    try:
        yield
    finally:
        if pinned is not None:
            os.sched_setaffinity(0, pinned)


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """The median time per call over ``samples`` samples of ``calls_per_sample`` calls each."""

    seconds: float
    samples: int
    calls_per_sample: int


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


def time_call(call: Call, budget: float = DEFAULT_BUDGET_S, repeat: int | None = None) -> Timing:
    """Time ``call`` (already called once: compiled, buffers touched).

    After a short warm-up, calls are batched so that one sample lasts at least
    :data:`MIN_SAMPLE_S`; then samples are taken until ``budget`` seconds are spent (at least 3,
    at most :data:`MAX_SAMPLES`), or exactly ``repeat`` of them. Returns the median per call.
    A method taking seconds per call (10⁸ elements) is thus called 4 times here: warm-up and 3
    samples.
    """
    with _gc_paused():
        fastest = _warm_up(call)
        number = 1
        if fastest < MIN_SAMPLE_S:
            number = math.ceil(MIN_SAMPLE_S / max(fastest, 1e-9))
            elapsed = _time_batch(call, number)
            while elapsed < MIN_SAMPLE_S:  # the warm-up's fastest call was not representative
                number = math.ceil(number * min(max(1.5 * MIN_SAMPLE_S / elapsed, 2.0), 100.0))
                elapsed = _time_batch(call, number)
        times: list[float] = []
        deadline = time.perf_counter() + budget
        while len(times) < (repeat or MAX_SAMPLES):
            times.append(_time_batch(call, number) / number)
            if repeat is None and len(times) >= 3 and time.perf_counter() >= deadline:
                break
    return Timing(statistics.median(times), len(times), number)


# --------------------------------------------------------------------------------------------
# Running the cells
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The machine's read bandwidth: the reference line of the plot
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadBandwidth:
    """Bytes read per second by a probe over :data:`PROBE_BYTES` bytes.

    ``probe`` names the call in a few words (the plot's legend), ``how`` describes it fully.
    """

    gbytes_per_s: float
    bytes_read: int
    probe: str
    how: str

    @property
    def label(self) -> str:
        return f"read bandwidth {self.gbytes_per_s:.1f} GB/s: {self.how}"

    @property
    def short_label(self) -> str:
        return f"read bandwidth {self.gbytes_per_s:.1f} GB/s ({self.probe})"


def _bandwidth_probe() -> tuple[Call, int, str, str]:
    """The call that reads memory, the bytes it reads per call, its short and long descriptions.

    With a compiled fastl2 backend, ``fastl2.l2_penalty(x, 1.0)`` reads a float32 array exactly
    once and writes nothing: the closest to a pure multithreaded read. Otherwise ``np.copyto``
    (single-threaded, and it writes as many bytes as it reads) gives a portable lower estimate.
    """
    import fastl2

    megabytes = f"{PROBE_BYTES / 1e6:.0f} MB"
    backend = fastl2.get_backend()
    if backend != "numpy":
        x = np.ones(PROBE_BYTES // 4, dtype=np.float32)
        return (lambda: fastl2.l2_penalty(x, 1.0), x.nbytes,
                f"fastl2.l2_penalty, {megabytes} float32",
                f"fastl2.l2_penalty of a {megabytes} float32 array ({backend} backend, "
                f"threads {fastl2.get_num_threads()}), bytes read once / median time")
    source = np.ones(PROBE_BYTES // 8)
    target = np.zeros_like(source)
    return (lambda: np.copyto(target, source), source.nbytes, f"np.copyto, {megabytes}",
            f"np.copyto of {megabytes} (one thread; it also writes as many bytes), "
            "bytes read / median time")


def measure_read_bandwidth(budget: float = DEFAULT_BUDGET_S) -> ReadBandwidth:
    """Time the probe of :func:`_bandwidth_probe` the way methods are timed."""
    call, bytes_read, probe, how = _bandwidth_probe()
    call()  # first touch
    timing = time_call(call, budget)
    return ReadBandwidth(bytes_read / timing.seconds / 1e9, bytes_read, probe, how)


# --------------------------------------------------------------------------------------------
# Machine description and output
# --------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


#: Environment variables that change the timings (thread pools, BLAS, backends): shown and saved.
_TIMING_ENVIRONMENT = ("OMP_", "GOMP_", "KMP_", "OPENBLAS_", "MKL_", "NUMBA_", "FASTL2_")


def timing_environment() -> dict[str, str]:
    """The environment variables that change timings (take it before the peers' imports edit it)."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(_TIMING_ENVIRONMENT)}


#: The libraries whose versions are shown and saved.
_PEER_LIBRARIES = ("numpy", "torch", "numba", "scikit-learn", "numexpr")


def machine_info(environment: dict[str, str] | None = None) -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, fastl2's configuration and the peers' versions."""
    import fastl2

    try:  # the main thread's CPUs: fewer than all where OMP_PROC_BIND pinned it at start-up
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = list(range(os.cpu_count() or 1))
    module = sys.modules.get
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "main_thread_cpus": affinity,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "fastl2": getattr(fastl2, "__version__", "unknown"),
        "backend": fastl2.get_backend(),
        "backends": list(fastl2.available_backends()),
        "threads": fastl2.get_num_threads(),
        "numpy": np.__version__,
        "torch": getattr(module("torch"), "__version__", None) or _version("torch"),
        "numba": getattr(module("numba"), "__version__", None) or _version("numba"),
        "scikit-learn": _version("scikit-learn"),
        "numexpr": getattr(module("numexpr"), "__version__", None) or _version("numexpr"),
        "environment": timing_environment() if environment is None else environment,
    }


def format_header(info: dict[str, Any], skipped: dict[str, str],
                  bandwidth: ReadBandwidth | None = None) -> str:
    """The lines printed above the tables."""
    versions = ", ".join(f"{name} {info[name]}" for name in _PEER_LIBRARIES if info.get(name))
    lines = [
        f"fastl2 {info['fastl2']} benchmark, {info['date']}",
        f"  machine : {info['cpu']}, {info['cores']} cores, {info['platform']}",
        f"  fastl2  : backend {info['backend']} (available: {', '.join(info['backends'])}),"
        f" threads {info['threads']}",
        f"  python  : {info['python']}; {versions}",
    ]
    if bandwidth is not None:
        lines.append(f"  memory  : {bandwidth.label}")
    if len(info["main_thread_cpus"]) < (info["cores"] or 0):
        lines.append(f"  affinity: main thread on CPUs {info['main_thread_cpus']}")
    if info["environment"]:
        lines.append("  env     : " + " ".join(f"{k}={v}" for k, v in info["environment"].items()))
    lines += [f"  skipped : {key}: {reason}" for key, reason in skipped.items()]
    slow_blas = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in info["environment"]]
    if slow_blas:
        lines.append(f"  warning : {' and '.join(slow_blas)} set: NumPy's BLAS may run slower")
    return "\n".join(lines)


def format_time(seconds: float) -> str:
    """``seconds`` with three significant digits in ns, µs, ms or s."""
    if math.isnan(seconds):
        return "-"
    for unit, scale in (("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3)):
        if seconds < 1000 * scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def _format_error(error: float | None) -> str:
    if error is None or math.isnan(error):
        return "-"
    return "0" if error == 0 else f"{error:.1e}"


def format_table(op: str, results: Sequence[Result], methods: Sequence[Method]) -> str:
    """One op's results as an aligned text table, a blank line between cells, then a legend."""
    headers = ["size", "dtype", "method", "time", f"vs {BASELINE}", "GB/s", "rel. error"]
    if op == "grad":
        headers.append("grad error")
    rows: list[list[str] | None] = []
    previous_cell = None
    for r in results:
        cell = (r.n, r.dtype)
        if previous_cell is not None and cell != previous_cell:
            rows.append(None)
        size, dtype = (f"{r.n:,}", r.dtype) if cell != previous_cell else ("", "")
        previous_cell = cell
        if r.error is not None:
            rows.append([size, dtype, r.method, f"failed: {r.error}"])
            continue
        row = [size, dtype, r.method, format_time(r.seconds),
               "-" if r.speedup is None else f"{r.speedup:.2f}x",
               f"{r.gbytes_per_s:.2f}", _format_error(r.rel_error)]
        if op == "grad":
            row.append(_format_error(r.grad_error))
        rows.append(row)
    widths = [len(h) for h in headers]
    for row in rows:
        if row is not None and not row[3].startswith("failed"):
            widths = [max(w, len(c)) for w, c in zip(widths, row)]
    right = {0, 3, 4, 5, 6, 7}

    def line(cells: Sequence[str]) -> str:
        if len(cells) < len(headers):  # a failed method: the message runs on
            return "  ".join(c.ljust(w) for c, w in zip(cells[:3], widths)) + "  " + cells[3]
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [OP_TITLES[op], line(headers), "  ".join("-" * w for w in widths)]
    out += ["" if row is None else line(row) for row in rows]
    out.append("")
    out += [f"  {m.name:<{widths[2]}}  {m.describe[op]}" for m in methods if op in m.ops]
    out.append("  (a = y_true, b = y_pred, w = weights, n = size; GB/s counts inputs read once"
               + (" and the gradient written once)" if op == "grad" else ")"))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Plot (matplotlib, imported only for --plot)
# --------------------------------------------------------------------------------------------

PLOT_TITLES = {
    "mse": "mse (loss)",
    "wmse": "weighted mse (loss)",
    "grad": "mse_and_grad (loss and gradient)",
}
_MARKERS = "osD^vP<>Xh*p"


def require_matplotlib() -> Any:
    """matplotlib's ``Figure`` class, or :class:`Unavailable` saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise Unavailable(
            f"--plot needs matplotlib, which is not installed ({exc}): {PLOT_EXTRA_HINT}"
        ) from None
    return Figure


def check_plot_target(path: str) -> None:
    """Fail before the benchmark runs, not after it: matplotlib, the folder and the file format."""
    require_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise Unavailable(f"--plot {path}: the folder {folder} does not exist")
    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        raise Unavailable(f"--plot {path}: use one of the extensions {', '.join(formats)}")


@dataclass(frozen=True)
class Line:
    """How one method is drawn, the same in every subplot."""

    label: str
    color: str
    marker: str
    width: float

    @classmethod
    def for_methods(cls, results: Sequence[Result]) -> dict[str, Line]:
        """A line per method key: fastl2's first and thick, then the peers, thin, in run order."""
        names = {r.key: r.method for r in results}
        keys = sorted(names, key=lambda key: not key.startswith("fastl2"))  # a stable sort
        return {key: cls(names[key], f"C{i % 10}", _MARKERS[i % len(_MARKERS)],
                         2.2 if key.startswith("fastl2") else 1.2)
                for i, key in enumerate(keys)}


def plot_title(info: dict[str, Any]) -> str:
    """What, when and with which fastl2; the machine and the thread settings; what GB/s counts."""
    env = " ".join(f"{k}={v}" for k, v in info["environment"].items() if k.startswith("OMP_"))
    return (f"fastl2 {info['fastl2']}: throughput against size, {info['date']}\n"
            f"{info['cpu']}, {info['cores']} cores; fastl2 backend {info['backend']}, "
            f"{info['threads']} threads; numpy {info['numpy']}" + (f"; {env}" if env else "")
            + "\nGB/s = bytes moved / median time: each input read once (and, for mse_and_grad, "
            "the gradient written once)")


def plot_throughput(results: Sequence[Result], info: dict[str, Any],
                    bandwidth: ReadBandwidth | None, path: str) -> None:
    """Save GB/s against n, log-log, one subplot per (op, dtype) and one line per method."""
    Figure = require_matplotlib()
    ops = [op for op in OPS if any(r.op == op for r in results)]
    dtypes = [d for d in DEFAULT_DTYPES if any(r.dtype == d for r in results)]
    lines = Line.for_methods(results)
    figure = Figure(figsize=(1.5 + 5.5 * len(dtypes), 2.2 + 3.6 * len(ops)), layout="constrained")
    axes = figure.subplots(len(ops), len(dtypes), sharex=True, sharey=True, squeeze=False)
    for row, op in enumerate(ops):
        for column, dtype in enumerate(dtypes):
            cell = [r for r in results if r.op == op and r.dtype == dtype and r.error is None]
            _plot_cell(axes[row][column], cell, lines, bandwidth)
            axes[row][column].set_title(f"{PLOT_TITLES[op]}, {dtype}")
        axes[row][0].set_ylabel("GB/s (bytes moved / median time)")
    for axis in axes[-1]:
        axis.set_xlabel("n (elements per array)")
    handles: dict[str, Any] = {}
    for axis in axes.flat:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    order = [line.label for line in lines.values()]  # the run's order, fastl2 first
    labels = sorted(handles, key=lambda label: order.index(label) if label in order else len(order))
    figure.legend([handles[label] for label in labels], labels, loc="outside lower center",
                  ncol=3, fontsize="small", frameon=False)
    figure.suptitle(plot_title(info), fontsize="medium")
    figure.savefig(path, dpi=110, bbox_inches="tight")


def _plot_cell(axis: Any, cell: Sequence[Result], lines: dict[str, Line],
               bandwidth: ReadBandwidth | None) -> None:
    for key, line in lines.items():
        points = sorted((r.n, r.gbytes_per_s) for r in cell if r.key == key)
        if points:
            sizes, rates = zip(*points)
            axis.plot(sizes, rates, label=line.label, color=line.color, marker=line.marker,
                      linewidth=line.width, markersize=3 + line.width)
    if bandwidth is not None:
        axis.axhline(bandwidth.gbytes_per_s, color="0.25", linestyle="--", linewidth=1.2,
                     label=bandwidth.short_label)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.grid(True, which="major", alpha=0.35)
    axis.grid(True, which="minor", alpha=0.1)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """A positive element count: ``1000``, ``10_000`` or ``1e6``."""
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
        if not number.is_integer():
            raise argparse.ArgumentTypeError(f"not a whole number of elements: {text!r}") from None
        value = int(number)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a size must be at least 1, got {text!r}")
    return value


def parse_sizes(texts: str | Sequence[str]) -> list[int]:
    """Sizes from ``"16,1e6"`` or ``["16", "1e6"]`` (both forms may be mixed)."""
    if isinstance(texts, str):
        texts = [texts]
    return [parse_size(t) for text in texts for t in text.split(",") if t.strip()]


def _choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}; got {text!r}")
        return values
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastl2 bench",
        description="Time fastl2's mse, weighted mse and mse_and_grad against NumPy, PyTorch, "
        "scikit-learn, Numba and numexpr, and check every result against an exact value.",
        epilog="Rows of exactly 4, 8 or 16 ms for parallel methods on a small virtual machine: "
        "rerun with OMP_PROC_BIND=spread OMP_PLACES=cores set.",
    )
    parser.add_argument("--sizes", nargs="+", default=[",".join(map(str, DEFAULT_SIZES))],
                        metavar="N", help="element counts, e.g. 16,1e6 "
                        f"(default: {','.join(map(str, DEFAULT_SIZES))})")
    parser.add_argument("--dtypes", type=_choices(DEFAULT_DTYPES), default=list(DEFAULT_DTYPES),
                        help="float32,float64 (default: both)")
    parser.add_argument("--ops", type=_choices(OPS), default=list(OPS),
                        help="mse,wmse,grad (default: all)")
    parser.add_argument("--methods", type=_choices(["fastl2", *PEERS]), default=None,
                        help=f"{','.join(['fastl2', *PEERS])} (default: all that are installed; "
                        "fastl2 is every available backend)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="threads for fastl2 (set_num_threads), PyTorch, Numba and numexpr")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="SECONDS",
                        help="time spent timing each method on each cell (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=None, metavar="K",
                        help="take exactly K samples per method and cell instead of --budget")
    parser.add_argument("--json", metavar="FILE", help="also write the machine and all results")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw GB/s against size per op and dtype, with the measured read "
                        f"bandwidth (needs matplotlib: {PLOT_EXTRA_HINT})")
    return parser


def set_threads(threads: int, methods: Sequence[Method]) -> None:
    """Give fastl2 and the threaded peers among ``methods`` (PyTorch, Numba, numexpr) ``threads``
    threads."""
    import fastl2

    fastl2.set_num_threads(threads)
    keys = {m.key for m in methods}
    if "torch" in keys:
        importlib.import_module("torch").set_num_threads(threads)
    if "numba" in keys:
        numba = importlib.import_module("numba")
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if "numexpr" in keys:
        importlib.import_module("numexpr").set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        sizes = parse_sizes(args.sizes)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--sizes: {exc}")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.plot:
        try:
            check_plot_target(args.plot)
        except Unavailable as exc:
            parser.error(str(exc))

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    environment = timing_environment()  # scikit-learn's import sets KMP_* variables
    methods, skipped = load_methods(args.methods)
    if args.threads is not None:
        with all_cpus():  # pools grown here must not inherit the main thread's single core
            set_threads(args.threads, methods)
    info = machine_info(environment)
    progress("measuring the read bandwidth ...")
    bandwidth = measure_read_bandwidth(args.budget)
    print(format_header(info, skipped, bandwidth), flush=True)
    cells = [(op, dtype, n) for op in args.ops for dtype in args.dtypes for n in sizes]
    results = run(cells, methods, args.budget, args.repeat, progress)
    elapsed = time.perf_counter() - started

    for op in args.ops:
        print()
        print(format_table(op, [r for r in results if r.op == op], methods))
    print(f"\n{len(results)} timings in {elapsed:.1f} s")
    if args.json:
        report = {"machine": info, "settings": {**vars(args), "sizes": sizes},
                  "read_bandwidth": {**asdict(bandwidth), "label": bandwidth.label},
                  "elapsed_s": elapsed, "results": [_json_row(r) for r in results]}
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2, allow_nan=False)
        progress(f"wrote {args.json}")
    if args.plot:
        plot_throughput(results, info, bandwidth, args.plot)
        progress(f"wrote {args.plot}")
    return 1 if any(r.error for r in results) else 0


def _json_row(result: Result) -> dict[str, Any]:
    """A result as JSON-ready values: NaN (a failed method's time) becomes null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v
            for k, v in asdict(result).items()}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
