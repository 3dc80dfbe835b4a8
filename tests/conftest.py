"""Shared fixtures: every computing test runs once per available backend."""
from __future__ import annotations

import os
import sys

import pytest

# The helper modules (reference.py, cases.py) live beside this file; make them importable under
# any pytest import mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastl2  # noqa: E402

if os.environ.get("FASTL2_TEST_INSTALLED") == "1":
    # .ci/run's wheel part: the tests must exercise the installed wheel, not a source tree
    assert os.sep + "site-packages" + os.sep in fastl2.__file__, f"fastl2 imported from {fastl2.__file__}"

BACKENDS = list(fastl2.available_backends())
# FASTL2_TEST_BACKENDS=cython (a comma-separated list) runs the `backend` fixture's tests on
# those backends only: .ci/run's sanitizer part, whose instrumented code is the compiled
# kernels, and its installed-wheel part, whose wheel changes only them (the NumPy backend runs
# none of it; the whole suite runs it in part 1).  Tests that
# compare backends with each other still use every available one.
_ONLY = list(dict.fromkeys(  # (in the order given, each once)
    name.strip() for name in os.environ.get("FASTL2_TEST_BACKENDS", "").split(",") if name.strip()))
if _ONLY:
    _missing = [name for name in _ONLY if name not in BACKENDS]
    if _missing:
        raise pytest.UsageError(
            f"FASTL2_TEST_BACKENDS names {_missing}, which this install lacks; available: {BACKENDS}"
        )
    BACKENDS = _ONLY


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Make `request.param` the active backend for the test; restore the previous one afterwards."""
    previous = fastl2.get_backend()
    fastl2.set_backend(request.param)
    try:
        yield request.param
    finally:
        fastl2.set_backend(previous)


@pytest.fixture
def restore_num_threads():
    """Tests that change the thread count get the previous one back afterwards."""
    previous = fastl2.get_num_threads()
    try:
        yield previous
    finally:
        fastl2.set_num_threads(previous)



@pytest.fixture
def restore_level():
    """Tests that change the compiled kernels' SIMD level get the previous one back afterwards."""
    core = fastl2._backends.compiled_module()
    level = core.simd_level() if core is not None else None
    try:
        yield level
    finally:
        if core is not None:
            core.set_simd_level(level)
