"""Which backend runs, and with how many threads.

A backend is a module with two functions over plans (fastl2._plan.Plan):
``run(plan, want_sums, grad=None, grad_scale=0.0, grad_divisor=1.0, elementwise=None,
grad_divisor_lo=0.0) -> (loss_sum, weight_sum, loss_rest, weight_rest)`` (each sum a
double-double: its value rounded once and the exact rest, which the float64 certificate needs,
fastl2._exact.finish_float64; a float64 gradient divides by ``grad_divisor + grad_divisor_lo``,
csrc/fastl2.h) and ``weight_sum(plan) -> (sum, rest)``, and ``run_strided(strided, want_sums,
..., grad_divisor_lo=0.0)`` over a
fastl2._plan.Strided pass (the same four, as arrays of one element per output); optionally
``reduce_outputs(strided, values, divisor, root)``, which writes each output's loss sum
divided by ``divisor`` (rooted with ``root``) into ``values`` and returns the indices of the
values that are not certainly the exact value rounded once (fastl2._exact's certificates;
axis reductions use it where a backend has it, else finish the sums ``run_strided`` returns);
optionally ``fast_call(code, param, y_true, y_pred, weights, reduction, want_loss, want_grad)``,
which answers the common call of a loss (``fastl2._losses`` code, checked float parameter) or
returns None (fastl2._api tries it first: :data:`fast_call`).
The compiled one ("cython") is chosen when built, the NumPy one otherwise;
``FASTL2_BACKEND`` or :func:`set_backend` choose explicitly.
"""

from __future__ import annotations

import importlib
import importlib.util
import operator
import os
import threading
import warnings

import numpy as np

#: Every backend fastl2 knows, in the order the automatic choice tries them.
KNOWN_BACKENDS = ("cython", "numba", "numpy")

_INSTALL_HINT = {
    "cython": "the compiled extension is not built: with a C compiler (gcc or clang) installed "
    "and FASTL2_NO_EXT unset, reinstall fastl2 from its source checkout: "
    "pip install --force-reinstall --no-deps . (python -m fastl2 info shows what was built)",
    "numba": "numba is not installed or does not work here: pip install numba "
    "(or, from fastl2's source checkout, pip install '.[numba]')",
}

_core = None  # the compiled module, when it imports
_core_error: Exception | None = None
_loaded: dict[str, object] = {}
_active_name = "numpy"
_active = None
#: The active backend's ``fast_call`` (see above), or None: set with the backend.
fast_call = None


# ---- fork() while another thread holds a lock of fastl2's -----------------------------------
# A child of fork() has only the forking thread, and every lock another thread held stays held
# there for ever: Python's import locks of a module being imported (a backend's first use
# imports numba, seconds of it), numba's compile locks.  So what fastl2 imports on first use is
# imported under _import_lock (import_on_first_use), and fork() waits for each of FORK_LOCKS
# (taken in order, the order a thread takes them: an import may compile, never the other way
# round; the numba backend adds its compile locks), which parent and child release after it.
_import_lock = threading.RLock()
#: The locks fork() waits for, in the order it takes them (fastl2._numba.cache adds its own).
FORK_LOCKS: list = [_import_lock]
_held_over_fork: dict = {}  # forking thread -> the locks it took


def _before_fork() -> None:
    held = _held_over_fork.setdefault(threading.get_ident(), [])
    for lock in FORK_LOCKS:  # (by index: a lock added meanwhile is taken too)
        lock.acquire()  # (should a signal handler raise here, fork goes on with what is held)
        held.append(lock)


def _after_fork() -> None:
    held = _held_over_fork.pop(threading.get_ident(), [])
    while held:
        held.pop().release()


def _wait_at_fork() -> None:
    """Makes fork() wait for FORK_LOCKS (os.register_at_fork; again on each call: see below)."""
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)


_wait_at_fork()
_waits_before_logging = False


def fork_waits():
    """The lock fork() waits for (_import_lock), for code that must not be half done in a child:
    a PyTorch tensor read through DLPack (fastl2._operands).  Forked while another thread was
    inside such a read, a child once waited for ever in its own first read of a bfloat16 tensor,
    in torch's code (tests/test_interrupts.py: 3 hangs in about 90 runs beside a CPU-bound
    process, none in 90 since)."""
    return _import_lock


def import_on_first_use(name: str):
    """``importlib.import_module(name)`` under _import_lock, which fork() waits for: a module
    fastl2 imports on first use (a backend, ml_dtypes) is never half-imported in a child.

    fork() runs the latest registered of its before-hooks first.  logging's takes logging's
    lock, which an import needs (``logging.getLogger`` at import time, as numba's modules do):
    had fork() taken it before waiting for an import that needs it, neither would end.  So
    fork()'s wait is registered once more, after logging's, here (the first registration,
    which it now finds held, still covers logging's own import)."""
    global _waits_before_logging
    with _import_lock:
        if not _waits_before_logging:
            importlib.import_module("logging")
            _wait_at_fork()
            _waits_before_logging = True
        return importlib.import_module(name)


def _load(name: str):
    """The backend module, imported on first use; raises ImportError if it cannot work here."""
    if name in _loaded:
        return _loaded[name]
    if name == "cython":
        if _core is None:
            raise ImportError(f"fastl2 backend 'cython' is not available: {_INSTALL_HINT['cython']} ({_core_error})")
        module = _core
    else:
        try:
            module = import_on_first_use(f"fastl2._{name}")
        except ImportError as exc:
            raise ImportError(f"fastl2 backend {name!r} is not available: {_INSTALL_HINT[name]} ({exc})") from exc
        if name == "numba" and _requested_threads:
            module.set_num_threads(_requested_threads)
    _loaded[name] = module
    return module


def available_backends() -> list[str]:
    """The backends that work in this installation, best first.

    >>> import fastl2
    >>> "numpy" in fastl2.available_backends()
    True
    """
    names = []
    for name in KNOWN_BACKENDS:
        try:
            _load(name)
        except ImportError:
            continue
        names.append(name)
    return names


def get_backend() -> str:
    """The name of the backend that computes: "cython", "numba" or "numpy".

    >>> import fastl2
    >>> fastl2.get_backend() in fastl2.available_backends()
    True
    """
    return _active_name


def set_backend(name: str) -> None:
    """Make ``name`` the backend that computes (``"cython"``, ``"numba"`` or ``"numpy"``).

    Raises ValueError for an unknown name, ImportError for a backend that is not available.

    >>> import fastl2
    >>> previous = fastl2.get_backend()
    >>> fastl2.set_backend("numpy")
    >>> fastl2.mse([0.0, 0.0], [1.0, 3.0])
    np.float64(5.0)
    >>> fastl2.set_backend(previous)
    """
    if name not in KNOWN_BACKENDS:
        raise ValueError(
            f"unknown fastl2 backend {name!r}; known: {', '.join(KNOWN_BACKENDS)}; "
            f"available here: {', '.join(available_backends())}"
        )
    _activate(name, _load(name))


def _activate(name: str, module) -> None:
    """Make the loaded backend ``module`` the one that computes."""
    global _active_name, _active, fast_call
    _active_name, _active = name, module
    fast_call = getattr(module, "fast_call", None)
    if _core is not None:
        _core._set_fast_path(name == "cython")


# ---- gradient memory ---------------------------------------------------------------------

def _count(value, accepted: str, low: int, high: int) -> int:
    """``value`` as an int from ``low`` to ``high``: TypeError for anything not an integer (a
    bool included: an int to Python, but not a count), ValueError out of the range; both
    messages start with ``accepted``."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        count = operator.index(value)
    except TypeError:
        raise TypeError(f"{accepted}; got {value!r} of type {type(value).__name__}") from None
    if not low <= count <= high:
        raise ValueError(f"{accepted}; got {value!r}")
    return count


def set_gradient_cache_limit(nbytes: int) -> None:
    """Keep the memory of the last large gradient freed, up to ``nbytes`` bytes, for reuse.

    A fresh gradient of tens of megabytes costs more in page faults than the kernel takes to
    fill it; a training loop that replaces its gradient every step reuses one buffer
    instead.  Gradients from 1 MiB up to ``nbytes`` are kept (one at most); 0 turns the
    cache off.  The default is 1 GiB, or ``FASTL2_GRADIENT_CACHE_LIMIT`` (bytes) at import.
    Memory held beyond a lowered limit is freed at once.  Only the compiled module keeps
    gradient memory; without it this changes nothing.

    >>> import fastl2
    >>> fastl2.set_gradient_cache_limit(256 << 20)
    >>> fastl2.get_gradient_cache_limit() in (0, 256 << 20)
    True
    >>> fastl2.set_gradient_cache_limit(1 << 30)
    """
    count = _count(nbytes, "nbytes must be an int from 0 to 2**63 - 1", 0, (1 << 63) - 1)
    if _core is not None:
        _core.set_gradient_cache_limit(count)


def get_gradient_cache_limit() -> int:
    """The most bytes of freed gradient memory kept for reuse (0: none, also without the
    compiled module).

    >>> import fastl2
    >>> fastl2.get_gradient_cache_limit() >= 0
    True
    """
    return _core.gradient_cache_limit_bytes() if _core is not None else 0


def empty_cache() -> None:
    """Free the gradient memory kept for reuse now (as ``torch.cuda.empty_cache`` does for
    PyTorch's allocator); later large gradients fill the cache again.

    >>> import fastl2
    >>> fastl2.empty_cache()
    """
    if _core is not None:
        _core.release_cached_gradient_memory()


def active():
    """The module of the backend that computes (the automatic choice of numba loads here)."""
    if _active is None:
        try:
            _activate(_active_name, _load(_active_name))
        except ImportError as exc:
            warnings.warn(f"{exc}; using the numpy backend", RuntimeWarning, stacklevel=3)
            _activate("numpy", _load("numpy"))
    return _active


def compiled_module():
    """fastl2._core if it was built and imports, else None."""
    return _core


def new_gradient(shape: tuple[int, ...], dtype) -> "np.ndarray":
    """An empty gradient array; the compiled module reuses the last large gradient's memory."""
    if _core is not None:
        return _core.new_gradient_array(shape, dtype)
    return np.empty(shape, dtype)


# ---- threads -----------------------------------------------------------------------------

_requested_threads = 0  # 0: OpenMP's default (OMP_NUM_THREADS, threadpoolctl)

#: The most threads set_num_threads accepts (beyond the cores, threads only slow a
#: bandwidth-bound pass; far beyond, creating them fails).
MAX_THREADS = 1024


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (an int from 1 to 1024) for large inputs from now on.

    Results do not depend on it: every thread count gives the same bits.  Raises TypeError
    for a non-integer (a bool included) and ValueError for a count out of range, changing
    nothing.

    >>> import fastl2
    >>> fastl2.set_num_threads(2)
    >>> fastl2.get_num_threads()
    2
    """
    global _requested_threads
    count = _count(n, f"the number of threads must be an int from 1 to {MAX_THREADS}", 1, MAX_THREADS)
    _requested_threads = count
    if _core is not None:
        _core.set_num_threads(count)
    if "numba" in _loaded:
        _loaded["numba"].set_num_threads(count)


def get_num_threads() -> int:
    """The number of threads large inputs use on the active backend: set_num_threads /
    FASTL2_NUM_THREADS, else OpenMP's default (which follows OMP_NUM_THREADS and
    threadpoolctl); on the numba backend at most the size of Numba's pool
    (NUMBA_NUM_THREADS).

    >>> import fastl2
    >>> fastl2.get_num_threads() >= 1
    True
    """
    if _active_name == "numba" and _active is not None:
        return _active.get_num_threads()  # (at most Numba's pool: NUMBA_NUM_THREADS)
    if _core is not None:
        return _core.get_num_threads()
    return _requested_threads or 1


# ---- the choice at import ------------------------------------------------------------------

def forked_mid_call_error() -> RuntimeError:
    """What a call raises, on every backend, path and thread count, in a child that a signal
    handler ``fork()``-ed in the middle of the call's pass.  Threads that had taken part of the
    work (the compiled pool's helpers, the numba backend's stoppable-call thread) do not exist
    in the child (POSIX ``fork``), so such a call cannot finish there; for the same outcome
    everywhere, no call goes on in the child.  Outputs are as after ``KeyboardInterrupt``: each
    element of ``out=`` holds its old value or its final one.  The parent's call is unaffected."""
    return RuntimeError(
        "fastl2: a signal handler fork()ed this process in the middle of this call; the call "
        "does not go on in the child (threads that had taken part of its work do not exist "
        "here): call it again")


def _import_compiled():
    global _core, _core_error
    try:
        if importlib.util.find_spec(f"{__package__}._core") is None:
            raise ImportError(
                "fastl2._core (the compiled extension) is not in this installation: it was "
                "installed without a C compiler or with FASTL2_NO_EXT=1"
            )
        core = importlib.import_module(f"{__package__}._core")
    except ImportError as exc:
        if os.environ.get("FASTL2_REQUIRE_COMPILED") == "1":
            raise ImportError(
                "FASTL2_REQUIRE_COMPILED=1 but fastl2's compiled kernels cannot be loaded: "
                f"{exc}"
            ) from exc
        _core_error = exc
        return
    _core = core


def _configure_from_environment():
    limit = os.environ.get("FASTL2_GRADIENT_CACHE_LIMIT")
    if limit:
        try:
            set_gradient_cache_limit(int(limit))
        except (TypeError, ValueError) as exc:
            warnings.warn(f"FASTL2_GRADIENT_CACHE_LIMIT={limit!r} ignored: {exc}", RuntimeWarning, stacklevel=3)
    simd = os.environ.get("FASTL2_SIMD")
    if simd and _core is not None:
        try:
            _core.set_simd_level(simd)
        except ValueError as exc:
            warnings.warn(f"FASTL2_SIMD={simd!r} ignored: {exc}", RuntimeWarning, stacklevel=3)
    threads = os.environ.get("FASTL2_NUM_THREADS")
    if threads:
        try:
            set_num_threads(int(threads))
        except (TypeError, ValueError):
            warnings.warn(
                f"FASTL2_NUM_THREADS={threads!r} is not an int from 1 to {MAX_THREADS}; ignored",
                RuntimeWarning,
                stacklevel=3,
            )
    wanted = os.environ.get("FASTL2_BACKEND")
    if wanted:
        try:
            set_backend(wanted)
            return
        except (ValueError, ImportError) as exc:
            warnings.warn(f"FASTL2_BACKEND={wanted!r} ignored: {exc}", RuntimeWarning, stacklevel=3)
    _choose_automatically()


def _choose_automatically():
    """cython, else numba, else numpy, without importing numba before its first use."""
    global _active_name, _active
    if _core is not None:
        set_backend("cython")
    elif importlib.util.find_spec("numba") is not None:
        _active_name, _active = "numba", None
    else:
        set_backend("numpy")


_import_compiled()
_configure_from_environment()
