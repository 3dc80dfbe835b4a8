"""Shared set-up of the pytest-benchmark suite: ``pytest bench/ --benchmark-only``.

The cases are made once per (op, dtype, size) and reused by every method benchmarked on them; the
tests are ordered so that only one case is alive at a time (a 10⁷-element float64 case holds about
240 MB).
"""

from __future__ import annotations

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
            case = _bench.make_case(op, dtype, n)
            self._key, self._value = (op, dtype, n), (case, _bench.Reference(case))
        return self._value


@pytest.fixture(scope="session")
def cases() -> CaseStore:
    return CaseStore()
