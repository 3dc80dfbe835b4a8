"""Shared set-up of the pytest-benchmark suite: ``pytest bench/ --benchmark-only``.

The cases are made once per (op, dtype, size) and reused by every method benchmarked on them; the
tests are ordered so that only one case is alive at a time (a 10⁷-element float64 case holds about
240 MB, a 10⁸-element one 2.4 GB).
"""

from __future__ import annotations

import gc
import os

import pytest

try:
    from fastl2 import _bench
except ImportError:  # collected without a usable fastl2: the test module skips itself
    _bench = None


class CaseStore:
    """Hands out the inputs and exact reference of a cell, keeping only the latest one alive."""

    def __init__(self) -> None:
        self._key: tuple[str, str, int] | None = None
        self._value: tuple[_bench.Case, _bench.Reference] | None = None

    def get(self, op: str, dtype: str, n: int) -> tuple[_bench.Case, _bench.Reference]:
        if self._key != (op, dtype, n):
            self._key, self._value = None, None  # free the previous case before making the next
            gc.collect()
            case = _bench.make_case(op, dtype, n)
            self._key, self._value = (op, dtype, n), (case, _bench.Reference(case))
        return self._value


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say when the environment is known to distort the timings (see ``fastl2._bench``)."""
    lines = []
    if not os.environ.get("OMP_PROC_BIND"):
        lines.append("fastl2 bench: OMP_PROC_BIND is not set; on a small virtual machine parallel "
                     "peers (Numba, PyTorch) can stall 4-16 ms per call: set "
                     "OMP_PROC_BIND=spread OMP_PLACES=cores")
    slow_blas = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    if slow_blas:
        lines.append(f"fastl2 bench: {' and '.join(slow_blas)} set: NumPy's BLAS may run slower")
    return lines


@pytest.fixture(scope="session")
def cases() -> CaseStore:
    return CaseStore()
