"""The methods a run times: fastl2 on each of its backends, and the peers that can run here.

:func:`load_methods` selects them by key ("fastl2" and the keys of :data:`~.peers.PEERS`),
imports the peers' libraries and starts their thread pools with every CPU allowed
(:func:`~.machine.all_cpus`); :func:`set_threads` gives fastl2 and the threaded peers the same
number of threads.
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
