"""Faults found in the field (replayed bug reports, fuzzing), each tested as a whole kind.

Every kind runs on every backend, and on the fast paths (plain C-contiguous ndarrays, which
the compiled and numba modules answer themselves) as well as the planned path (any other
call; here also reached directly: fastl2._api's functions with the active backend's fast path
set aside).  The numba disk
cache's kind lives in test_numba_cache.py.
"""
from __future__ import annotations

import math
import subprocess
import sys
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import fastl2
import reference as ref
from cases import AND_GRAD_FUNCTIONS, GRAD_FUNCTIONS, LOSS_FUNCTIONS

try:
    import torch
except ImportError:  # an optional peer: its carriers and tests are not generated without it
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is an optional peer (pip install torch==2.13.0)")

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class DLPackOnly:
    """An object that offers its data through DLPack alone."""

    def __init__(self, array):
        self._array = array

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()

    def __repr__(self):  # (a stable test id)
        return f"DLPackOnly({self._array!r})"


class ArrayLike:
    """An object that offers its data through ``__array__`` alone (as pandas or xarray do)."""

    def __init__(self, array):
        self._array = array

    def __array__(self, dtype=None, copy=None):
        return self._array


CARRIERS = {
    "ndarray-view": lambda a: a.view(),
    "dlpack": DLPackOnly,
    "__array__": ArrayLike,
    "memoryview": memoryview,
}
if torch is not None:
    CARRIERS["torch"] = lambda a: torch.from_numpy(a)


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


def bits_equal(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind != "f":
        return np.array_equal(a, b)
    same_nan = np.isnan(a) == np.isnan(b)
    a_, b_ = np.where(np.isnan(a), 0, a), np.where(np.isnan(b), 0, b)
    return bool(np.all(same_nan) and np.all(a_ == b_) and np.all(np.signbit(a_) == np.signbit(b_)))


# --------------------------------------------------------------------------- 2. out= overlap


@pytest.mark.parametrize("carrier", sorted(CARRIERS))
@pytest.mark.parametrize(  # (the same view of y_pred is the in-place update, tested below)
    "role, view", [("y_true", "transposed"), ("y_true", "same"), ("y_pred", "transposed"),
                   ("weights", "transposed"), ("weights", "same")])
def test_out_overlapping_an_input_of_any_carrier_is_refused(backend, carrier, role, view):
    buf = np.arange(40000.0).reshape(200, 200)
    before = buf.copy()
    overlapping = CARRIERS[carrier](buf.T if view == "transposed" else buf)
    args = {"y_true": np.zeros((200, 200)), "y_pred": np.ones((200, 200)), "weights": None}
    args[role] = overlapping
    for function in (*GRAD_FUNCTIONS, *AND_GRAD_FUNCTIONS):  # every function that takes out=
        with pytest.raises(ValueError, match=f"out overlaps {role}"):
            getattr(fastl2, function)(args["y_true"], args["y_pred"], args["weights"], out=buf)
        np.testing.assert_array_equal(buf, before)


@pytest.mark.parametrize("carrier", sorted(CARRIERS))
def test_out_is_y_pred_in_place_through_any_carrier(backend, carrier):
    rng = np.random.default_rng(3)
    buf = rng.standard_normal((50, 40))
    y_true = rng.standard_normal((50, 40))
    expected = ref.grad("mse", y_true, buf)
    expected_loss = ref.loss("mse", y_true, buf)
    loss, grad = fastl2.mse_and_grad(y_true, CARRIERS[carrier](buf), out=buf)
    assert grad is buf
    ref.assert_ulp(loss, expected_loss, 2)
    ref.assert_ulp(buf, expected, 2)


@needs_torch
def test_field_input_out_overlapping_a_transposed_tensor(backend):
    buf = np.arange(40000.0).reshape(200, 200)
    with pytest.raises(ValueError, match="out overlaps y_true"):
        fastl2.mse_and_grad(torch.from_numpy(buf).t(), np.zeros((200, 200)), out=buf)


@needs_torch
def test_out_overlapping_params_of_another_carrier_is_refused(backend):
    buf = np.arange(100.0).reshape(10, 10)
    with pytest.raises(ValueError, match="out overlaps params"):
        fastl2.l2_penalty_grad(torch.from_numpy(buf).t(), 0.5, out=buf)
    fastl2.l2_penalty_grad(torch.from_numpy(buf), 0.5, out=buf)  # in place
    np.testing.assert_array_equal(buf, np.arange(100.0).reshape(10, 10))


# --------------------------------------------------------------------------- 3. outputs where read


def placed(values: np.ndarray, aligned: bool, layout: str) -> np.ndarray:
    """``values`` copied into fresh memory: aligned or one byte off, C-ordered, Fortran-ordered
    or a reversed view."""
    values = np.asarray(values)
    order = "F" if layout == "F" else "C"
    if aligned:
        array = np.empty(values.shape, values.dtype, order=order)
    else:
        buffer = bytearray(values.nbytes + 1)
        array = np.frombuffer(buffer, values.dtype, values.size, offset=1).reshape(values.shape, order=order)
    if layout == "reversed" and values.ndim:
        array = array[(slice(None, None, -1),) * values.ndim]
    array[...] = values
    return array


shapes = st.integers(0, 3).flatmap(lambda rank: st.tuples(*[st.integers(1, 5)] * rank))


@SETTINGS
@given(
    shape=shapes,
    dtype=st.sampled_from(["float32", "float64"]),
    true_aligned=st.booleans(), pred_aligned=st.booleans(), out_aligned=st.booleans(),
    true_layout=st.sampled_from(["C", "F", "reversed"]), pred_layout=st.sampled_from(["C", "F", "reversed"]),
    out_layout=st.sampled_from([None, "C", "F", "reversed"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_output_is_written_where_the_caller_reads_it(
    backend, shape, dtype, true_aligned, pred_aligned, out_aligned, true_layout, pred_layout, out_layout, seed
):
    rng = np.random.default_rng(seed)
    t = rng.standard_normal(shape).astype(dtype)
    p = rng.standard_normal(shape).astype(dtype)
    y_true, y_pred = placed(t, true_aligned, true_layout), placed(p, pred_aligned, pred_layout)
    out = None if out_layout is None else placed(np.zeros(shape, dtype), out_aligned, out_layout)
    grad = fastl2.mse_grad(y_true, y_pred, out=out)
    assert grad.shape == tuple(shape) and grad.dtype == np.dtype(dtype)
    if out is not None:
        assert grad is out
    ref.assert_ulp(grad, ref.grad("mse", t, p), 2)
    loss, grad = fastl2.mae_and_grad(y_true, y_pred, reduction="none")
    ref.assert_ulp(loss, ref.loss("mae", t, p, reduction="none"), 1)
    ref.assert_ulp(grad, ref.grad("mae", t, p, reduction="none"), 1)
    ref.assert_ulp(fastl2.mse(y_true, y_pred, reduction="none"), ref.loss("mse", t, p, reduction="none"), 1)
    ref.assert_ulp(fastl2.mse(y_true, y_pred), ref.loss("mse", t, p), 2)
    penalty_out = None if out is None else placed(np.zeros(shape, dtype), out_aligned, out_layout)
    ref.assert_ulp(fastl2.l2_penalty_grad(y_pred, 0.75, out=penalty_out), ref.l2_penalty_grad(p, 0.75), 1)


def test_field_input_unaligned_0d(backend):
    yt = np.frombuffer(bytearray(8), np.float32, 1, 1).reshape(())
    yt[...] = 1.5
    assert fastl2.mse_grad(yt, np.array(0.5, np.float32)) == np.float32(-2.0)
    assert fastl2.mse(yt, np.array(0.5, np.float32), reduction="none") == np.float32(1.0)


# --------------------------------------------------------------------------- 4. wide integers


def exact_loss(kind, t, p, w=None, reduction="mean"):
    """The exact loss of Python-int (or float) inputs as a Fraction."""
    t = [Fraction(int(x)) if isinstance(x, (int, np.integer)) else Fraction(float(x)) for x in t]
    p = [Fraction(int(x)) if isinstance(x, (int, np.integer)) else Fraction(float(x)) for x in p]
    w = [Fraction(1)] * len(t) if w is None else [Fraction(float(x)) for x in w]
    terms = [wi * ((pi - ti) ** 2 if kind == "mse" else abs(pi - ti)) for ti, pi, wi in zip(t, p, w)]
    divisor = {"mean": Fraction(len(t)), "sum": Fraction(1), "weighted_mean": sum(w)}[reduction]
    return sum(terms) / divisor


def exact_grad(kind, t, p, reduction="mean"):
    n = len(t) if reduction == "mean" else 1
    out = []
    for ti, pi in zip(t, p):
        d = Fraction(int(pi) if isinstance(pi, (int, np.integer)) else float(pi)) - Fraction(
            int(ti) if isinstance(ti, (int, np.integer)) else float(ti))
        g = 2 * d if kind == "mse" else Fraction((d > 0) - (d < 0))
        out.append(float(g / n))
    return np.array(out)


def test_field_input_nanosecond_timestamps(backend):
    value = fastl2.mae([1_700_000_000_000_000_001, 1_700_000_000_000_000_000], [1_700_000_000_000_000_000] * 2)
    assert value == 0.5


int64s = st.integers(-(2**63), 2**63 - 1)
uint64s = st.integers(0, 2**64 - 1)
near = st.integers(-(2**20), 2**20)


@SETTINGS
@example(base=2**62 + 12345, offsets=[(0, 1), (3, -7), (1, 0)], kind="mae", true_dtype="int64",
         pred_dtype="int64", reduction="mean")
@example(base=2**63 + 99, offsets=[(5, 4)], kind="mse", true_dtype="float64", pred_dtype="uint64", reduction="sum")
@given(
    base=st.one_of(int64s, uint64s), offsets=st.lists(st.tuples(near, near), min_size=1, max_size=40),
    kind=st.sampled_from(["mse", "mae"]), true_dtype=st.sampled_from(["int64", "uint64", "float64"]),
    pred_dtype=st.sampled_from(["int64", "uint64"]), reduction=st.sampled_from(["mean", "sum"]),
)
def test_wide_integers_are_subtracted_exactly(backend, base, offsets, kind, true_dtype, pred_dtype, reduction):
    info = [np.iinfo(np.dtype(true_dtype)) if true_dtype != "float64" else None, np.iinfo(np.dtype(pred_dtype))]
    clip = lambda x, i: min(max(x, i.min), i.max) if i is not None else x
    t = [clip(base + a, info[0]) for a, _ in offsets]
    p = [clip(base + b, info[1]) for _, b in offsets]
    y_true = np.array([float(x) for x in t]) if true_dtype == "float64" else np.array(t, dtype=true_dtype)
    y_pred = np.array(p, dtype=pred_dtype)
    t_exact = y_true.tolist() if true_dtype == "float64" else t  # the inputs as given
    loss = getattr(fastl2, kind)(y_true, y_pred, reduction=reduction)
    ref.assert_ulp(loss, exact_loss(kind, t_exact, p, reduction=reduction), 2)
    grad = getattr(fastl2, f"{kind}_grad")(y_true, y_pred, reduction=reduction)
    assert grad.dtype == np.float64
    ref.assert_ulp(grad, exact_grad(kind, t_exact, p, reduction), 1 if true_dtype != "float64" else 2)
    # the other way round, and as float32 y_pred against integer y_true
    ref.assert_ulp(getattr(fastl2, kind)(y_pred, y_true, reduction=reduction),
                   exact_loss(kind, p, t_exact, reduction=reduction), 2)


def test_wide_integer_weights_and_extremes(backend):
    t = np.array([-(2**63), 0, 2**62, 2**63 - 1, -5], dtype=np.int64)
    p = np.array([2**64 - 1, 2**63, 2**62 + 1, 2**64 - 2, 2**64 - 1], dtype=np.uint64)
    exact = [Fraction(int(b) - int(a)) for a, b in zip(t, p)]
    against_float = [Fraction(float(np.float32(b))) - int(a) for a, b in zip(t, p)]
    for kind in ("mse", "mae"):  # each element's loss, exact before its rounding
        element = (lambda e: e * e) if kind == "mse" else abs
        expected = np.array([to_float(element(e)) for e in exact])
        ref.assert_ulp(getattr(fastl2, kind)(t, p, reduction="none"), expected, 1)
        expected = np.array([to_float(element(e)) for e in against_float])  # int64 against float32
        ref.assert_ulp(getattr(fastl2, kind)(p.astype(np.float32), t, reduction="none"), expected, 1)
    ref.assert_ulp(fastl2.mse_grad(t, p, reduction="sum"), np.array([to_float(2 * e) for e in exact]), 0)
    w = np.array([2**53 + 1, 1, 3, 1, 2], dtype=np.int64)  # rounded once to float64, as documented
    expected = exact_loss("mae", t.tolist(), p.tolist(), [float(x) for x in w], "sum")
    ref.assert_ulp(fastl2.mae(t, p, w, reduction="sum"), expected, 2)


# --------------------------------------------------------------------------- 5. longdouble

needs_wide_longdouble = pytest.mark.skipif(
    np.finfo(np.longdouble).nmant <= 52, reason="np.longdouble is float64 on this platform: nothing is rounded"
)


@needs_wide_longdouble
@pytest.mark.parametrize("role", ["y_true", "y_pred", "weights"])
def test_longdouble_is_refused_not_rounded(backend, role):
    a = np.ones(4, np.longdouble)
    args = {"y_true": np.ones(4), "y_pred": np.ones(4), "weights": None}
    args[role] = a + np.longdouble(2) ** -60
    for function in (*LOSS_FUNCTIONS, *GRAD_FUNCTIONS):
        with pytest.raises(TypeError, match=rf"{role} has dtype float128.*astype\(np.float64\)"):
            getattr(fastl2, function)(args["y_true"], args["y_pred"], args["weights"])


@needs_wide_longdouble
def test_longdouble_params_and_lam_are_refused(backend):
    with pytest.raises(TypeError, match="params has dtype float128"):
        fastl2.l2_penalty(np.ones(3, np.longdouble), 1.0)
    with pytest.raises(TypeError, match="lam has dtype float128"):
        fastl2.l2_penalty(np.ones(3), np.longdouble(0.5))
    with pytest.raises(TypeError, match="lam has dtype float128"):
        fastl2.l2_penalty_grad(np.ones(3), np.array(0.5, np.longdouble))


def test_field_input_longdouble():
    a = np.ones(3, np.longdouble)
    if np.finfo(np.longdouble).nmant <= 52:
        assert fastl2.mae(a, a + np.longdouble(2) ** -60) == 0.0  # exact: the same float64 values
    else:
        with pytest.raises(TypeError, match="y_true has dtype"):
            fastl2.mae(a, a + np.longdouble(2) ** -60)


# --------------------------------------------------------------------------- 6. masked arrays


@pytest.mark.parametrize("role", ["y_true", "y_pred", "weights"])
@pytest.mark.parametrize("function", [*LOSS_FUNCTIONS, "rmse", *GRAD_FUNCTIONS, *AND_GRAD_FUNCTIONS])
def test_masked_arrays_are_refused_with_a_way_out(backend, role, function):
    args = {"y_true": np.array([1.0, 2.0, 3.0]), "y_pred": np.array([1.0, 2.0, 1e6]), "weights": None}
    args[role] = np.ma.masked_array(args[role] if role != "weights" else np.ones(3), mask=[0, 0, 1])
    with pytest.raises(TypeError, match=rf"{role} is a numpy.ma.MaskedArray.*compressed\(\)"):
        getattr(fastl2, function)(args["y_true"], args["y_pred"], args["weights"])


def test_masked_params_and_out_are_refused(backend):
    with pytest.raises(TypeError, match="params is a numpy.ma.MaskedArray"):
        fastl2.l2_penalty(np.ma.masked_array([1.0, 2.0], mask=[0, 1]), 1.0)
    with pytest.raises(TypeError, match="out is a numpy.ma.MaskedArray"):
        fastl2.mse_grad(np.zeros(2), np.ones(2), out=np.ma.masked_array(np.zeros(2), mask=[0, 1]))


def test_masked_arrays_inside_lists_are_refused(backend):
    masked = np.ma.masked_array([1.0, 2.0], mask=[0, 1])
    with pytest.raises(TypeError, match="y_true is a numpy.ma.MaskedArray"):
        fastl2.mse([masked], [[1.0, 5.0]])
    with pytest.raises(TypeError, match="y_pred is a numpy.ma.MaskedArray"):
        fastl2.mae_grad([[1.0, 5.0]], ([masked],))
    with pytest.raises(TypeError, match="weights is a numpy.ma.MaskedArray"):
        fastl2.mse([1.0, 5.0], [1.0, 5.0], [masked[0], masked[1]])


def test_field_input_masked_array(backend):
    with pytest.raises(TypeError, match="MaskedArray"):
        fastl2.mse([1.0, 2.0, 3.0], np.ma.masked_array([1.0, 2.0, 1e6], mask=[0, 0, 1]))


# --------------------------------------------------------------------------- 7. dtypes by carrier


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int32", "int64"])
def test_result_and_gradient_dtypes_follow_the_dtype_not_the_carrier(backend, dtype):
    y_true = np.arange(6).astype(dtype)
    y_pred = (np.arange(6) * 2 + 1).astype(dtype)
    expected_grad = fastl2.mse_grad(y_true, y_pred)
    expected_loss = fastl2.mae(y_true, y_pred)
    for name, carrier in CARRIERS.items():
        grad = fastl2.mse_grad(carrier(y_true.copy()), carrier(y_pred.copy()))
        assert bits_equal(grad, expected_grad), name
        assert bits_equal(fastl2.mae(carrier(y_true.copy()), carrier(y_pred.copy())), expected_loss), name
        if expected_grad.dtype.kind == "f":
            out = np.empty(6, expected_grad.dtype)
            assert fastl2.mse_grad(carrier(y_true.copy()), carrier(y_pred.copy()), out=out) is out
            assert bits_equal(out, expected_grad), name
    assert expected_grad.dtype == (np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.float64)


# --------------------------------------------------------------------------- 8. same bits, warnings, errors


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


@pytest.mark.parametrize("kind", ["memmap", "subclass", "unaligned", "fortran"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_out_of_any_ndarray_kind_is_accepted_on_every_backend(backend, kind, dtype, tmp_path):
    class Sub(np.ndarray):
        pass

    rng = np.random.default_rng(5)
    t, p = rng.standard_normal((30, 4)).astype(dtype), rng.standard_normal((30, 4)).astype(dtype)
    if kind == "memmap":
        out = np.memmap(tmp_path / "out.bin", dtype, "w+", shape=(30, 4))
    elif kind == "subclass":
        out = np.zeros((30, 4), dtype).view(Sub)
    elif kind == "unaligned":
        out = placed(np.zeros((30, 4), dtype), False, "C")
    else:
        out = np.zeros((30, 4), dtype, order="F")
    loss, grad = fastl2.mse_and_grad(t, p, out=out)
    assert grad is out
    assert bits_equal(np.asarray(out).copy(), fastl2.mse_grad(t, p))
    assert fastl2.l2_penalty_grad(p, 0.5, out=out) is out
    ref.assert_ulp(np.asarray(out), ref.l2_penalty_grad(p, 0.5), 1)


def test_nan_and_inf_propagate_silently(backend):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(fastl2.mse([np.inf], [np.inf]))
        assert fastl2.mse(np.array([3e38], np.float32), np.array([-3e38], np.float32)) == np.inf
        assert np.isnan(fastl2.mae_grad([np.nan, 1.0], [1.0, 1.0])[0])
        assert fastl2.mse_grad(np.array([-6e4], np.float16), np.array([6e4], np.float16))[0] == np.inf
        assert fastl2.mse(np.full((2, 2), np.float32(3e38)), np.zeros((2, 2), np.float32), axis=0)[0] == np.inf


# --------------------------------------------------------------------------- 9. messages


def test_a_ragged_list_names_the_argument(backend):
    for role, args in (("y_true", ([[1, 2], [3]], [[1, 2], [3, 4]])), ("y_pred", ([[1, 2], [3, 4]], [[1, 2], [3]]))):
        with pytest.raises(ValueError, match=f"{role} must be an array-like of numbers with one regular shape"):
            fastl2.mse(*args)
    with pytest.raises(ValueError, match="weights must be"):
        fastl2.mse([1.0, 2.0], [1.0, 2.0], [[1.0], [1.0, 2.0]])


def test_the_weights_shape_error_does_not_repeat_itself(backend):
    with pytest.raises(ValueError) as info:
        fastl2.mse(np.ones(6), np.ones(6), np.ones(5))
    assert str(info.value) == "weights must have shape (6,) (one weight per element); got weights of shape (5,)"
    with pytest.raises(ValueError, match=r"\(6, 2\) \(one weight per element\) or \(6,\) \(one weight per sample\)"):
        fastl2.mse(np.ones((6, 2)), np.ones((6, 2)), np.ones(5))


@pytest.mark.parametrize("count, error", [(2**31, ValueError), (1025, ValueError), (0, ValueError), (-1, ValueError),
                                          (1.5, TypeError), ("2", TypeError), (True, ValueError)])
def test_a_bad_thread_count_raises_and_changes_nothing(count, error, restore_num_threads):
    fastl2.set_num_threads(1)
    with pytest.raises(error, match="number of threads must be an int from 1 to 1024"):
        fastl2.set_num_threads(count)
    assert fastl2.get_num_threads() == 1
    core = fastl2._backends.compiled_module()
    if core is not None:
        assert core.get_num_threads() == 1


@needs_torch
def test_bfloat16_tensors_name_the_argument_and_the_accepted_dtypes(backend):
    for role in ("y_true", "y_pred"):
        args = {"y_true": torch.zeros(3), "y_pred": torch.ones(3)}
        args[role] = args[role].to(torch.bfloat16)
        with pytest.raises(TypeError, match=rf"{role} is a Tensor of dtype torch.bfloat16.*accepted: float16.*\.float\(\)"):
            fastl2.mse(args["y_true"], args["y_pred"])


@needs_torch
def test_tensors_that_require_grad_are_read_as_values(backend):
    y_pred = torch.tensor([1.0, 4.0, -2.0], dtype=torch.float64, requires_grad=True)
    y_true = torch.zeros(3, dtype=torch.float64)
    assert fastl2.mse(y_true, y_pred) == 7.0
    np.testing.assert_array_equal(fastl2.mse_grad(y_true, y_pred), [2 / 3, 8 / 3, -4 / 3])
    assert fastl2.l2_penalty([y_pred], torch.tensor(0.5)) == 10.5
    assert y_pred.grad is None


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
    message = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
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


# --------------------------------------------------------------------------- 10. the L2 penalty


def test_field_input_penalty_gradient_without_intermediate_overflow(backend):
    grad = fastl2.l2_penalty_grad([0.0, 0.25, -1e-300], 1e308)
    np.testing.assert_array_equal(grad, [0.0, 5e307, -2e8])
    assert not np.signbit(grad[0])


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("lam", [1e308, 1.7976931348623157e308, 9e307, 1e300, 2.0])
def test_penalty_gradient_is_2_lam_theta_rounded_once(backend, dtype, lam):
    theta = np.array([0.0, -0.0, 1e-300, 0.25, -1.0, 3e-5, 1e4, 5e-324], dtype=dtype)
    exact = [Fraction(2) * Fraction(lam) * Fraction(float(x)) for x in theta]
    expected = np.array([to_float(e) for e in exact])
    for layout in (theta, np.repeat(theta, 2)[::2]):  # flat and strided paths
        grad = fastl2.l2_penalty_grad(layout, lam)
        assert grad.dtype == np.dtype(dtype)
        with np.errstate(over="ignore"):
            ref.assert_ulp(grad, expected.astype(dtype), 0)


def to_float(value: Fraction) -> float:
    """``value`` rounded to float64, inf beyond its range."""
    try:
        return float(value)
    except OverflowError:
        return -math.inf if value < 0 else math.inf


def test_penalty_without_intermediate_overflow(backend):
    params = np.array([1e200, -1e200, 3.0])
    exact = Fraction(1e-300) * sum(Fraction(float(x)) ** 2 for x in params)
    ref.assert_ulp(fastl2.l2_penalty(params, 1e-300), exact, 2)
    assert fastl2.l2_penalty(params, 1.0) == np.inf  # the penalty itself overflows
    assert fastl2.l2_penalty(np.array([1e200, np.inf]), 1e-300) == np.inf
    assert np.isnan(fastl2.l2_penalty(np.array([np.nan, 1e200]), 1e-300))


def test_penalty_over_a_sequence_of_arrays(backend):
    rng = np.random.default_rng(7)
    layers = [rng.standard_normal((3, 4)), rng.standard_normal(5).astype(np.float32), np.array(2.0),
              DLPackOnly(rng.standard_normal((2, 3)))]
    flat = np.concatenate([np.from_dlpack(x).astype(np.float64).ravel() for x in layers])
    ref.assert_ulp(fastl2.l2_penalty(layers, 0.3), ref.l2_penalty(flat, 0.3), 2)
    ref.assert_ulp(fastl2.l2_penalty(tuple(layers), 0.3), ref.l2_penalty(flat, 0.3), 2)
    ref.assert_ulp(fastl2.l2_penalty(iter(layers), 0.3), ref.l2_penalty(flat, 0.3), 2)
    grads = fastl2.l2_penalty_grad(layers, 0.3)
    assert [g.shape for g in grads] == [(3, 4), (5,), (), (2, 3)]
    assert [g.dtype for g in grads] == [np.float64, np.float32, np.float64, np.float64]
    for g, x in zip(grads, layers):
        ref.assert_ulp(g, ref.l2_penalty_grad(np.from_dlpack(x), 0.3), 1)
    outs = [np.empty_like(np.from_dlpack(x)) for x in layers]
    assert fastl2.l2_penalty_grad(layers, 0.3, out=outs) == outs
    assert fastl2.l2_penalty(np.array([1.0, 2.0]), 1.0) == 5.0  # one array, as before
    assert fastl2.l2_penalty([1.0, -2.0, 2.0], 0.5) == 4.5  # a list of numbers is one array
    assert fastl2.l2_penalty([np.float64(1.0), np.float64(2.0)], 1.0) == 5.0
    assert fastl2.l2_penalty([], 1.0) == 0.0
    with pytest.raises(TypeError, match="out must be None or a list of 4 arrays"):
        fastl2.l2_penalty_grad(layers, 0.3, out=outs[:2])
    with pytest.raises(TypeError, match=r"params\[1\] is a numpy.ma.MaskedArray"):
        fastl2.l2_penalty([np.ones(2), np.ma.masked_array([1.0], mask=[1])], 1.0)


LAMS = [np.array(0.5), np.float32(0.5), np.array(1, np.int64), Fraction(1, 2), DLPackOnly(np.array(0.25))]
if torch is not None:
    LAMS += [torch.tensor(0.5), torch.tensor(0.5, dtype=torch.float64)]


def test_penalty_gradients_of_a_sequence_never_write_into_another_array(backend):
    buf = np.arange(12.0)
    params = [buf[:6], buf[6:]]
    before = buf.copy()
    with pytest.raises(ValueError, match=r"out\[0\] overlaps params\[1\]"):
        fastl2.l2_penalty_grad(params, 0.5, out=[buf[6:], np.empty(6)])
    with pytest.raises(ValueError, match=r"out\[1\] overlaps out\[0\]"):
        spare = np.empty(6)
        fastl2.l2_penalty_grad(params, 0.5, out=[spare, spare])
    np.testing.assert_array_equal(buf, before)
    assert fastl2.l2_penalty_grad(params, 0.5, out=params) == params  # each in place
    np.testing.assert_array_equal(buf, before)


@pytest.mark.parametrize("lam", LAMS, ids=repr)
def test_lam_as_a_0d_array_or_tensor(backend, lam):
    value = float(np.from_dlpack(lam)) if isinstance(lam, DLPackOnly) else float(lam)
    assert fastl2.l2_penalty([1.0, 2.0], lam) == value * 5.0
    np.testing.assert_array_equal(fastl2.l2_penalty_grad([1.0, 2.0], lam), [2 * value, 4 * value])


@pytest.mark.parametrize("function", ["l2_penalty", "l2_penalty_grad"])
def test_a_dict_of_params_is_refused_with_the_way_to_pass_it(backend, function):
    with pytest.raises(TypeError, match=r"params must be an array .*; got a dict \(pass params.values\(\)"):
        getattr(fastl2, function)({"a": np.ones(2)}, 1.0)
    assert fastl2.l2_penalty({"a": np.ones(2), "b": np.full(1, 2.0)}.values(), 1.0) == 6.0


@pytest.mark.parametrize("lam", [-0.0, np.float32(-0.0), np.array(-0.0)], ids=repr)
def test_a_negative_zero_lam_is_zero(backend, lam):
    assert bits_equal(fastl2.l2_penalty([1.0, 2.0], lam), np.float64(0.0))
    params = np.array([1.0, -2.0, 0.0])
    assert bits_equal(fastl2.l2_penalty_grad(params, lam), 2 * 0.0 * params)  # as for lam = +0.0


@pytest.mark.parametrize("lam, error", [(np.array([0.5]), TypeError), (DLPackOnly(np.ones(2)), TypeError), (np.array(-1.0), ValueError),
                                        (np.array(True), TypeError), (10**400, ValueError), (float("nan"), ValueError),
                                        ("0.5", TypeError), (np.array(0.5 + 1j), TypeError)])
def test_bad_lam_names_what_is_accepted(backend, lam, error):
    with pytest.raises(error, match="lam must be a real number >= 0"):
        fastl2.l2_penalty([1.0], lam)


# --------------------------------------------------------------------------- 11. gradient memory


needs_core = pytest.mark.skipif(fastl2._backends.compiled_module() is None,
                                reason="only the compiled module keeps gradient memory")


@needs_core
def test_gradient_cache_is_bounded_switchable_and_released():
    core = fastl2._backends.compiled_module()
    limit = fastl2.get_gradient_cache_limit()
    try:
        t, p = np.zeros(1 << 19), np.ones(1 << 19)  # 4 MiB gradients
        fastl2.empty_cache()
        del_me = fastl2.mse_grad(t, p)
        del del_me
        assert core.cached_gradient_bytes() >= 4 << 20
        fastl2.empty_cache()
        assert core.cached_gradient_bytes() == 0
        fastl2.mse_grad(t, p)  # (freed at once)
        assert core.cached_gradient_bytes() >= 4 << 20
        fastl2.set_gradient_cache_limit(1 << 20)  # lower than what is held: freed now
        assert core.cached_gradient_bytes() == 0
        fastl2.mse_grad(t, p)
        assert core.cached_gradient_bytes() == 0
        fastl2.set_gradient_cache_limit(0)
        assert fastl2.get_gradient_cache_limit() == 0
        np.testing.assert_array_equal(fastl2.mse_grad(t, p), np.full(1 << 19, 2.0 / (1 << 19)))
        assert core.cached_gradient_bytes() == 0
    finally:
        fastl2.set_gradient_cache_limit(limit)
    for bad, error in ((-1, ValueError), (1.5, TypeError), (True, ValueError), (2**63, ValueError)):
        with pytest.raises(error, match="nbytes must be an int"):
            fastl2.set_gradient_cache_limit(bad)
    assert fastl2.get_gradient_cache_limit() == limit


@needs_core
def test_gradient_cache_limit_from_the_environment():
    code = "import fastl2; print(fastl2.get_gradient_cache_limit())"
    for value, expected in (("0", 0), ("12345", 12345)):
        env = {**__import__("os").environ, "FASTL2_GRADIENT_CACHE_LIMIT": value}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.strip() == str(expected)
    env = {**__import__("os").environ, "FASTL2_GRADIENT_CACHE_LIMIT": "lots"}
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "FASTL2_GRADIENT_CACHE_LIMIT='lots' ignored" in out.stderr


# --------------------------------------------------------------------------- more members of each kind


@pytest.mark.parametrize("y_true, y_pred", [([1.0], [1]), ([0.0], [0]), ([0], [-0.0]), ([0], [0.0]), ([-0.0], [0]),
                                            (np.array([7], np.uint64), [7.0])])
def test_signed_zeros_of_integer_differences_are_ieee(backend, y_true, y_pred):
    as_float = lambda x: np.asarray(x, np.float64)
    for function in GRAD_FUNCTIONS:
        expected = getattr(fastl2, function)(as_float(y_true), as_float(y_pred))
        got = getattr(fastl2, function)(np.asarray(y_true, np.int64) if np.asarray(y_true).dtype.kind in "iu" else y_true,
                                        np.asarray(y_pred, np.int64) if np.asarray(y_pred).dtype.kind in "iu" else y_pred)
        assert bits_equal(got, expected), (function, got, expected)


@needs_torch
def test_tensors_with_the_negative_bit_are_read_with_their_sign(backend):
    y = torch.tensor([1 + 1j, 2 + 2j]).conj().imag  # a lazily negated view: [-1, -2]
    np.testing.assert_array_equal(fastl2.mse_grad(np.zeros(2), y), [-1.0, -2.0])
    assert fastl2.mae(np.zeros(2), y, reduction="sum") == 3.0


def test_a_masked_array_returned_by_dunder_array_is_refused(backend):
    masked = np.ma.masked_array([1.0, 2.0, 1e6], mask=[0, 0, 1])
    with pytest.raises(TypeError, match="y_pred is a numpy.ma.MaskedArray"):
        fastl2.mse([1.0, 2.0, 3.0], ArrayLike(masked))


def test_out_overlapping_an_input_that_was_converted_is_refused(backend):
    y_true = np.array([1.0, 2.0], np.float16)
    with pytest.raises(ValueError, match="out overlaps y_true"):
        fastl2.mse_grad(y_true, np.zeros(2, np.float16), out=y_true)
    integers = np.array([5, 6])
    with pytest.raises(ValueError, match="out overlaps y_true"):
        fastl2.mse_grad(integers, np.array([1.0, 2.0]), out=integers.view(np.float64))
    np.testing.assert_array_equal(y_true, [1.0, 2.0])
    np.testing.assert_array_equal(integers, [5, 6])
    y_pred = np.array([1.0, 2.0], np.float16)  # a converted y_pred itself: in place
    assert fastl2.mse_grad(np.zeros(2, np.float16), y_pred, out=y_pred) is y_pred
    np.testing.assert_array_equal(y_pred, [1.0, 2.0])


def test_penalty_without_intermediate_underflow(backend):
    ref.assert_ulp(fastl2.l2_penalty([1e-200], 1e300), Fraction(1e300) * Fraction(1e-200) ** 2, 1)
    ref.assert_ulp(fastl2.l2_penalty([3e-170, -4e-170], 1e250), Fraction(1e250) * (Fraction(3e-170) ** 2 + Fraction(4e-170) ** 2), 2)
    assert fastl2.l2_penalty([1e-200], 0.5) == 0.0  # the penalty itself underflows


def _penalty_params(dtype):
    """Arrays of ``dtype`` whose sums of squares fall on either side of the penalty's rescaled
    paths: zeros, subnormals and values whose squares underflow or overflow float64."""
    info = np.finfo(dtype)
    magnitudes = st.sampled_from([0.0, float(info.smallest_subnormal), float(info.tiny), 1e-200, 1e-160, 1.0,
                                  1e160, 1e200, float(info.max)])
    element = st.tuples(magnitudes, st.floats(0.5, 2.0), st.booleans()).map(
        lambda t: (-1.0 if t[2] else 1.0) * t[0] * t[1])
    return st.lists(element, min_size=0, max_size=6).map(lambda xs: np.array(xs, np.float64).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@SETTINGS
@given(data=st.data(), lam=st.sampled_from([0.0, 0.5, 1.0, 2.0, 1e10, 1e250, 1e300]))
def test_penalty_rescaled_paths_for_every_float_dtype(backend, dtype, data, lam):
    # The kind: a sum of squares that overflows, underflows or is zero is taken again at a
    # power-of-two scale; that scaling must not itself overflow (float32 zeros * 2**600 was nan).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (float16 casts of 1e200: inf, dropped below)
        params = data.draw(_penalty_params(dtype))
    params = params[np.isfinite(params)]
    got = fastl2.l2_penalty(params, lam)
    result = np.float64 if dtype == np.float64 else np.float32
    assert got.dtype == result
    ref.assert_ulp(got, ref.l2_penalty(params, lam), 2)
    for split in (params[:1], params[1:]), (params, params[:0]):  # as a sequence of arrays
        ref.assert_ulp(fastl2.l2_penalty(list(split), lam), ref.l2_penalty(params, lam), 2)


@pytest.mark.parametrize("lam", [math.inf, np.float64(np.inf), np.array(np.inf)], ids=repr)
def test_lam_must_be_finite(backend, lam):
    for function in (fastl2.l2_penalty, fastl2.l2_penalty_grad):
        with pytest.raises(ValueError, match=r"lam must be a real number >= 0 \(finite\)"):
            function(np.zeros(2), lam)


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


def test_messages_name_what_was_given(backend):
    with pytest.raises(TypeError, match="given a generator"):
        fastl2.mse(np.zeros(3), (v for v in [1.0, 2.0, 3.0]))
    layers = {"a": np.ones(2), "b": np.full(3, 2.0)}
    assert fastl2.l2_penalty(layers.values(), 1.0) == 14.0


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
