"""Faults found in the field (replayed bug reports, fuzzing), each tested as a whole kind: every
backend and path gives the same bits, warnings and errors (the planned path here also reached
directly: fastl2._api's functions with the active backend's fast path set aside); the thread count,
a missing compiled module and the install hints.

The other kinds: test_field_faults_outputs.py and test_field_faults_inputs.py.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastl2
from cases import AND_GRAD_FUNCTIONS, GRAD_FUNCTIONS, LOSS_FUNCTIONS
from field_faults import bits_equal


def planned(name):
    """The planned-path version of a public function (no fast path): fastl2._api's function,
    called with the active backend's fast path (fastl2._backends.fast_call) set aside."""
    function = getattr(fastl2._api, name)

    def call(*args, **kwargs):
        fast, fastl2._backends.fast_call = fastl2._backends.fast_call, None
        try:
            return function(*args, **kwargs)
        finally:
            fastl2._backends.fast_call = fast

    return call


# --------------------------------------------------------------------------- same bits, warnings, errors


SPECIAL = [0.0, -0.0, 1.0, -2.5, 0.1, np.inf, -np.inf, np.nan, 3e38, -3e38, 1e308, -1e308, 1e-310, 5e-324]
# Every loss of the table, rmse, and each loss's gradient functions.
FUNCTIONS = [*LOSS_FUNCTIONS, "rmse", *GRAD_FUNCTIONS, *AND_GRAD_FUNCTIONS]


def outcome(function, *args, **kwargs):
    """(result, None) or (None, (exception type, message)); warnings are errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return function(*args, **kwargs), None
        except Exception as exc:  # noqa: BLE001 - compared, not swallowed
            return None, (type(exc), str(exc))


def same_outcome(a, b) -> bool:
    (ra, ea), (rb, eb) = a, b
    if ea or eb:
        return ea == eb
    if isinstance(ra, tuple):
        return isinstance(rb, tuple) and all(bits_equal(x, y) for x, y in zip(ra, rb))
    return bits_equal(ra, rb) and type(ra) is type(rb)


@settings(max_examples=80 * len(FUNCTIONS) // 7, deadline=None)  # (80 for mse's and mae's 7: as many per function)
@given(
    function=st.sampled_from(FUNCTIONS),
    dtype=st.sampled_from(["float32", "float64"]),
    values=st.lists(st.tuples(st.sampled_from(SPECIAL), st.sampled_from(SPECIAL)), min_size=1, max_size=20),
    weighted=st.booleans(),
    reduction=st.sampled_from(["mean", "weighted_mean", "sum", "none"]),
    strided=st.booleans(),
)
def test_every_backend_and_path_gives_the_same_bits_warnings_and_errors(function, dtype, values, weighted, reduction, strided):
    if function == "rmse" and reduction not in ("mean", "weighted_mean"):
        reduction = "mean"
    with np.errstate(over="ignore"):  # (1e308 as float32 is inf: one of the cases)
        t = np.array([a for a, _ in values], dtype=dtype)
        p = np.array([b for _, b in values], dtype=dtype)
        w = np.abs(np.array([b for _, b in values][::-1], dtype=dtype)) if weighted else None
    if strided:  # not C-contiguous: the planned path on every backend
        t, p = np.repeat(t, 2)[::2], np.repeat(p, 2)[::2]
    outcomes = {}
    previous = fastl2.get_backend()
    try:
        for backend in fastl2.available_backends():
            fastl2.set_backend(backend)
            outcomes[backend, "public"] = outcome(getattr(fastl2, function), t, p, w, reduction=reduction)
            outcomes[backend, "planned"] = outcome(planned(function), t, p, w, reduction=reduction)
    finally:
        fastl2.set_backend(previous)
    first_key, first = next(iter(outcomes.items()))
    for key, other in outcomes.items():
        assert same_outcome(first, other), (first_key, first, key, other)
    assert first[1] is None or first[1][0] is ValueError, first  # no warning turned error


@pytest.mark.parametrize("reduction", [np.array(["sum"]), np.array("sum"), b"sum", None, "Sum", ["sum"]])
@pytest.mark.parametrize("function", [*LOSS_FUNCTIONS, *GRAD_FUNCTIONS, *AND_GRAD_FUNCTIONS])
def test_a_reduction_that_is_not_a_str_is_refused_on_every_path(backend, reduction, function):
    for f in (getattr(fastl2, function), planned(function)):
        with pytest.raises(ValueError, match="reduction must be one of"):
            f(np.ones(3), np.ones(3), reduction=reduction)


def test_a_str_subclass_reduction_is_accepted(backend):
    assert fastl2.mse(np.zeros(2), np.ones(2), reduction=np.str_("sum")) == 2.0


@pytest.mark.parametrize("zero_true, zero_pred", [(0.0, -0.0), (-0.0, 0.0), (0.0, 0.0), (-0.0, -0.0)])
@pytest.mark.parametrize("n", [1, 20, 70_000])
def test_mae_grad_at_equal_values_is_the_same_signed_zero_everywhere(zero_true, zero_pred, n):
    outcomes = set()
    previous = fastl2.get_backend()
    try:
        for backend in fastl2.available_backends():
            fastl2.set_backend(backend)
            for f in (fastl2.mae_grad, planned("mae_grad")):
                g = f(np.full(n, zero_true), np.full(n, zero_pred))
                outcomes.add(tuple(np.unique(np.signbit(g))))
                assert np.all(g == 0)
    finally:
        fastl2.set_backend(previous)
    assert outcomes == {(math.copysign(1, zero_pred - zero_true) < 0,)}


def test_nan_and_inf_propagate_silently(backend):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(fastl2.mse([np.inf], [np.inf]))
        assert fastl2.mse(np.array([3e38], np.float32), np.array([-3e38], np.float32)) == np.inf
        assert np.isnan(fastl2.mae_grad([np.nan, 1.0], [1.0, 1.0])[0])
        assert fastl2.mse_grad(np.array([-6e4], np.float16), np.array([6e4], np.float16))[0] == np.inf
        assert fastl2.mse(np.full((2, 2), np.float32(3e38)), np.zeros((2, 2), np.float32), axis=0)[0] == np.inf


AGREEING_FUNCTIONS = [*LOSS_FUNCTIONS, *AND_GRAD_FUNCTIONS, "l2_penalty"]


@settings(max_examples=40 * len(AGREEING_FUNCTIONS) // 5, deadline=None)  # (40 for 5: as many per function)
@given(
    n=st.one_of(st.integers(1, 40), st.integers(8180, 8200), st.integers(16380, 16400)),
    dtypes=st.sampled_from([("float32", "float32"), ("float64", "float64"), ("float32", "float64")]),
    weighted=st.booleans(), layout=st.sampled_from(["flat", "reversed", "columns"]),
    function=st.sampled_from(AGREEING_FUNCTIONS),
    reduction=st.sampled_from(["mean", "weighted_mean", "sum"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_backends_agree_bit_for_bit_on_random_data(n, dtypes, weighted, layout, function, reduction, seed):
    """Rounding ties included (values of wildly different scales, cancelling signs): the NumPy
    backend sums in the compiled kernels' lanes, so every backend returns the same bits."""
    rng = np.random.default_rng(seed)
    scale = rng.choice([1e-12, 1.0, 2.0**-53, 1e12], n)
    t = (rng.standard_normal(n) * scale).astype(dtypes[0])
    p = (rng.standard_normal(n) * scale).astype(dtypes[1])
    w = rng.choice([0.5, 1.0, 3.0, 2.0**-30], n) if weighted else None
    if layout == "reversed":
        t, p = t[::-1], p[::-1]
    kwargs = {}
    if layout == "columns" and n % 2 == 0 and function in LOSS_FUNCTIONS:
        t, p, w, kwargs = t.reshape(-1, 2), p.reshape(-1, 2), None if w is None else w[: n // 2], {"axis": 0}
    results = []
    previous = fastl2.get_backend()
    try:
        for backend in fastl2.available_backends():
            fastl2.set_backend(backend)
            if function == "l2_penalty":
                results.append(fastl2.l2_penalty(p, 0.75))
            else:
                results.append(getattr(fastl2, function)(t, p, w, reduction=reduction, **kwargs))
    finally:
        fastl2.set_backend(previous)
    for other in results[1:]:
        assert same_outcome((results[0], None), (other, None)), (results[0], other)


# --------------------------------------------------------------------------- threads, the compiled module


@pytest.mark.parametrize("count, error", [(2**31, ValueError), (1025, ValueError), (0, ValueError), (-1, ValueError),
                                          (1.5, TypeError), ("2", TypeError), (True, TypeError)])
def test_a_bad_thread_count_raises_and_changes_nothing(count, error, restore_num_threads):
    fastl2.set_num_threads(1)
    with pytest.raises(error, match="number of threads must be an int from 1 to 1024"):
        fastl2.set_num_threads(count)
    assert fastl2.get_num_threads() == 1
    core = fastl2._backends.compiled_module()
    if core is not None:
        assert core.get_num_threads() == 1


@pytest.mark.skipif("numba" not in fastl2.available_backends(), reason="numba is not installed")
def test_the_thread_count_reported_is_the_one_the_kernels_use(restore_num_threads):
    import numba

    previous = fastl2.get_backend()
    try:
        fastl2.set_backend("numba")
        fastl2.set_num_threads(1024)
        assert fastl2.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    finally:
        fastl2.set_backend(previous)


def test_a_missing_compiled_module_is_reported_as_missing():
    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'fastl2._core' else real(name, *a)\n"
        "import fastl2\n"
        "try:\n"
        "    fastl2.set_backend('cython')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "FASTL2_REQUIRE_COMPILED"}  # (.ci/run sets it)
    message = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=environ).stdout
    assert "not in this installation" in message and "circular import" not in message
    assert "pip install --force-reinstall --no-deps ." in message and "--no-binary" not in message


def test_install_hints_work_from_a_checkout():
    import pathlib

    root = pathlib.Path(fastl2.__file__).parent
    for path in [*root.glob("*.py"), pathlib.Path(__file__).parents[1] / "README.md"]:
        if not path.exists():
            continue
        text = path.read_text()
        assert "--no-binary fastl2" not in text, path
        assert "pip install 'fastl2[" not in text and 'pip install "fastl2[' not in text, path
