"""The peers: what a user would otherwise write, each as a :class:`Method` fastl2 is timed against.

NumPy (the textbook expression, the baseline, and a one-temporary ``d @ d``), PyTorch on CPU,
scikit-learn, Numba and numexpr. Numba has two peers, the same one-pass ``prange`` loops compiled
two ways: ``numba`` strict (``fastmath=False``: the loop's sum is evaluated in order within each
thread's chunk) and ``numba-fastmath`` as a Numba user writes it for speed (``fastmath=True``:
LLVM may reorder and vectorise the float64 sum). Each factory in :data:`PEERS` imports its
library when called (never on import of this module) and raises :class:`Unavailable` where the
library is missing. The pytest-benchmark suite in ``bench/`` reuses them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import cache
from types import FunctionType, SimpleNamespace
from typing import Any

import numpy as np

from .cases import OPS, Case
from .timing import Call

BASELINE = "numpy"  # the speed-up column is relative to this method: np.mean((a - b) ** 2)


class Unavailable(Exception):
    """A method cannot run here (its library is missing); the message says why."""


@dataclass(frozen=True)
class Method:
    """One way of computing the benchmarked operations.

    ``key`` is a short unique id (``"numpy"``, ``"fastl2-cython"``), ``name`` the row label.
    ``bind(case)`` prepares the inputs (tensors, buffers) outside the timing and returns the call to
    time. ``weighted_reduction`` says what the method's weighted loss divides by ("mean": ``n``;
    "weighted_mean": the sum of the weights), so that its error is measured against the right
    exact value. ``use()`` is entered around binding, warm-up and timing (fastl2 selects a backend).

    ``one_thread()``, for a method that runs on several threads, is a context in which it runs on
    one: the serial estimate a stalled row is judged against (``results.stall_reasons``); None for
    a single-threaded method. ``compile(ops, dtypes)``, for a JIT-compiled method, compiles the
    kernels of those ops and dtypes (or loads them from the JIT's disk cache) before any timing.
    """

    key: str
    name: str
    ops: frozenset[str]
    bind: Callable[[Case], Call]
    describe: dict[str, str]
    weighted_reduction: str = "mean"
    use: Callable[[], AbstractContextManager[Any]] = nullcontext
    one_thread: Callable[[], AbstractContextManager[Any]] | None = None
    compile: Callable[[Sequence[str], Sequence[str]], None] | None = None


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


def _one_thread(get: Callable[[], int], set_: Callable[[int], Any]) -> Callable[[], AbstractContextManager[None]]:
    """A context running a library on one thread (its ``set_``), then on ``get()``'s count again."""

    @contextmanager
    def one_thread() -> Iterator[None]:
        threads = get()
        set_(1)
        try:
            yield
        finally:
            set_(threads)
    return one_thread


def _blas_one_thread() -> Callable[[], AbstractContextManager[Any]] | None:
    """A context limiting NumPy's BLAS (``d @ d`` runs on its threads) to one thread, through
    threadpoolctl (installed with scikit-learn); None without it."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:
        return None
    return lambda: threadpool_limits(1, user_api="blas")


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
        one_thread=_blas_one_thread(),
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

    one_thread = _one_thread(torch.get_num_threads, torch.set_num_threads)

    return Method(
        key="torch",
        name="torch F.mse_loss",
        ops=frozenset(OPS),
        bind=bind,
        one_thread=one_thread,
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


def _njit(numba: Any, function: Callable[..., Any], fastmath: bool) -> Callable[..., Any]:
    """``numba.njit(parallel=True, fastmath=..., cache=True)``, without the cache where it cannot be
    written.

    Numba's disk cache is keyed by the function's name, line and bytecode, not by ``fastmath``: the
    fastmath kernels are copies of the functions under another name (``mse_fastmath``), so that
    the two peers never load each other's compiled code.
    """
    if fastmath:
        function = FunctionType(function.__code__, function.__globals__,
                                f"{function.__name__}_fastmath", function.__defaults__,
                                function.__closure__)
        function.__qualname__ = function.__qualname__.rsplit(".", 1)[0] + "." + function.__name__
    try:
        return numba.njit(parallel=True, fastmath=fastmath, cache=True)(function)
    except RuntimeError:  # no writable cache location (read-only install)
        return numba.njit(parallel=True, fastmath=fastmath)(function)


@cache
def numba_kernels(fastmath: bool = False) -> SimpleNamespace:
    """Plain one-pass Numba ``prange`` loops accumulating in float64, compiled on first call
    (``fastmath=True``: the same loops, compiled with LLVM's fast-math flags)."""
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

    return SimpleNamespace(mse=_njit(numba, mse, fastmath), wmse=_njit(numba, wmse, fastmath),
                           mse_and_grad=_njit(numba, mse_and_grad, fastmath))


def _numba_method(fastmath: bool) -> Method:
    numba = _require("numba")
    kernels = numba_kernels(fastmath)
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

    def compile_kernels(ops: Sequence[str], dtypes: Sequence[str]) -> None:
        """Compile (or load from Numba's cache) each kernel for 1-d C arrays of each dtype."""
        for dtype in dtypes:
            x = np.zeros(2, dtype=dtype)
            if "mse" in ops:
                kernels.mse(x, x)
            if "wmse" in ops:
                kernels.wmse(x, x, x)
            if "grad" in ops:
                kernels.mse_and_grad(x, x, np.empty_like(x))

    flags = "parallel=True, fastmath=True" if fastmath else "parallel=True"
    one_thread = _one_thread(numba.get_num_threads, numba.set_num_threads)

    return Method(
        key="numba-fastmath" if fastmath else "numba",
        name="numba prange fastmath" if fastmath else "numba prange",
        ops=frozenset(OPS),
        bind=bind,
        one_thread=one_thread,
        compile=compile_kernels,
        describe={
            "mse": f"@njit({flags}) one-pass prange loop, float64 accumulator",
            "wmse": f"@njit({flags}), the same loop with w[i] * d * d",
            "grad": f"@njit({flags}), the same loop, also writing grad[i] = 2 d / n into "
                    "np.empty_like(b)",
        },
    )


def numba_peer() -> Method:
    """What a user would write in Numba: one ``prange`` loop per operation (no fastmath)."""
    return _numba_method(fastmath=False)


def numba_fastmath_peer() -> Method:
    """The same ``prange`` loops with ``fastmath=True``, as a Numba user writes them for speed."""
    return _numba_method(fastmath=True)


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

    @contextmanager
    def one_thread() -> Iterator[None]:
        threads = numexpr.set_num_threads(1)  # returns the previous number
        try:
            yield
        finally:
            numexpr.set_num_threads(threads)

    return Method(
        key="numexpr",
        name="numexpr sum((b-a)**2)",
        ops=frozenset(OPS),
        bind=bind,
        one_thread=one_thread,
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
    "numba-fastmath": numba_fastmath_peer,
    "numexpr": numexpr_peer,
}
