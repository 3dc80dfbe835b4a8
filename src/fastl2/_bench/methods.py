"""The methods a run times: fastl2 on each of its backends, and the peers that can run here.

:func:`load_methods` selects them by key (:data:`METHOD_KEYS`: "fastl2", "fastl2-numba" and the
keys of :data:`~.peers.PEERS`), imports the peers' libraries and starts their thread pools with
every CPU allowed (:func:`~.machine.all_cpus`); :func:`set_threads` gives fastl2 and the threaded
peers the same number of threads.

"fastl2" is fastl2 on its active backend (with an ``out=`` row for the gradient) and on each
other compiled backend except Numba; "fastl2-numba" is fastl2 on its numba backend, which is not
in :data:`DEFAULT_METHODS`: it compiles a kernel per op, dtype and size class on first use, about
95 s in all for the default cells on a 2-core machine with a cold cache (measured 2026-11-30),
more than the rest of the default run. Where Numba is fastl2's *active* backend (no compiled
module), "fastl2" is that backend, compiled on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from .cases import OPS, Case
from .machine import all_cpus
from .peers import PEERS, Method, Unavailable
from .timing import Call


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


@contextmanager
def _fastl2_threads(threads: int) -> Iterator[None]:
    """fastl2 on ``threads`` threads for the duration of the block."""
    import fastl2

    previous = fastl2.get_num_threads()
    fastl2.set_num_threads(threads)
    try:
        yield
    finally:
        fastl2.set_num_threads(previous)


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
        one_thread=lambda: _fastl2_threads(1),
        describe={
            "mse": "fastl2.mse(a, b)",
            "wmse": "fastl2.mse(a, b, w)",
            "grad": "fastl2.mse_and_grad(a, b" + (", out=buffer)" if out else ")"),
        },
    )


#: Every method key: fastl2, fastl2 on its numba backend, then the peers.
METHOD_KEYS = ("fastl2", "fastl2-numba", *PEERS)
#: What ``python -m fastl2 bench`` times unless ``--methods`` says otherwise: all but fastl2's
#: numba backend (see the module's docstring).
DEFAULT_METHODS = ("fastl2", *PEERS)


def fastl2_methods(numba: bool = True) -> list[Method]:
    """fastl2 on its active backend, then on each other compiled backend that is available.

    The NumPy backend gets a row only when it is the active one (no compiled backend, or chosen).
    The active backend also gets an ``out=`` row for the gradient. ``numba=False`` leaves out the
    numba backend unless it is the active one.
    """
    import fastl2

    active = fastl2.get_backend()
    others = [b for b in fastl2.available_backends()
              if b not in ("numpy", active) and (numba or b != "numba")]
    return [fastl2_method(active), fastl2_method(active, out=True)] + [
        fastl2_method(b) for b in others
    ]


def _fastl2_numba() -> list[Method]:
    """fastl2 on its numba backend, the "fastl2-numba" key."""
    import fastl2

    if "numba" not in fastl2.available_backends():
        raise Unavailable("fastl2's numba backend is not available (pip install numba)")
    if fastl2.get_backend() == "numba":
        raise Unavailable("fastl2's numba backend is its active one: the fastl2 rows time it")
    return [fastl2_method("numba")]


def load_methods(keys: Sequence[str] | None = None) -> tuple[list[Method], dict[str, str]]:
    """The methods selected by ``keys`` (:data:`METHOD_KEYS`; all of them when None).

    Returns the methods that can run here and, for each one that cannot, the reason. The peers'
    libraries are imported, and their thread pools started, inside :func:`all_cpus`.
    """
    keys = list(keys) if keys is not None else list(METHOD_KEYS)
    unknown = sorted(set(keys) - set(METHOD_KEYS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(METHOD_KEYS)}")
    methods: list[Method] = []
    skipped: dict[str, str] = {}
    with all_cpus():
        import fastl2

        fastl2.available_backends()  # imports the Numba backend, and Numba, if installed
        for key in keys:
            try:
                if key == "fastl2":
                    methods.extend(fastl2_methods(numba=False))
                elif key == "fastl2-numba":
                    methods.extend(_fastl2_numba())
                else:
                    methods.append(PEERS[key]())
            except Unavailable as exc:
                skipped[key] = str(exc)
    return methods, skipped


def set_threads(threads: int, methods: Sequence[Method]) -> None:
    """Give fastl2 and the threaded peers among ``methods`` (PyTorch, Numba, numexpr) ``threads``
    threads."""
    import fastl2

    fastl2.set_num_threads(threads)
    keys = {m.key for m in methods}
    if "torch" in keys:
        importlib.import_module("torch").set_num_threads(threads)
    if keys & {"numba", "numba-fastmath"}:
        numba = importlib.import_module("numba")
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if "numexpr" in keys:
        importlib.import_module("numexpr").set_num_threads(threads)
