"""Faults found in the field (replayed bug reports, fuzzing), each tested as a whole kind: what
fastl2 reads -- wide integers, long doubles, masked arrays, the dtype of any carrier, signed zeros
of integer differences, tensors with the negative bit, the messages that name what was given, and
the L2 penalty's params and lam (no intermediate overflow or underflow, its gradient rounded once,
sequences of arrays, lam as any real number >= 0: 0-d arrays, tensors, -0.0; anything else refused).

Every kind runs on every backend; the other kinds: test_field_faults_outputs.py and
test_field_faults_backends.py.
"""
from __future__ import annotations

import math
import sys
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import fastl2
import reference as ref
from cases import AND_GRAD_FUNCTIONS, GRAD_FUNCTIONS, LOSS_FUNCTIONS
from field_faults import CARRIERS, SETTINGS, ArrayLike, DLPackOnly, bits_equal, needs_torch, to_float, torch


# --------------------------------------------------------------------------- wide integers


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
    ref.assert_ulp(grad, exact_grad(kind, t_exact, p, reduction), 1)
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


@pytest.mark.parametrize("y_true, y_pred", [([1.0], [1]), ([0.0], [0]), ([0], [-0.0]), ([0], [0.0]), ([-0.0], [0]),
                                            (np.array([7], np.uint64), [7.0])])
def test_signed_zeros_of_integer_differences_are_ieee(backend, y_true, y_pred):
    as_float = lambda x: np.asarray(x, np.float64)
    for function in GRAD_FUNCTIONS:
        expected = getattr(fastl2, function)(as_float(y_true), as_float(y_pred))
        got = getattr(fastl2, function)(np.asarray(y_true, np.int64) if np.asarray(y_true).dtype.kind in "iu" else y_true,
                                        np.asarray(y_pred, np.int64) if np.asarray(y_pred).dtype.kind in "iu" else y_pred)
        assert bits_equal(got, expected), (function, got, expected)


# --------------------------------------------------------------------------- longdouble


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


# --------------------------------------------------------------------------- masked arrays


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


def test_a_masked_array_returned_by_dunder_array_is_refused(backend):
    masked = np.ma.masked_array([1.0, 2.0, 1e6], mask=[0, 0, 1])
    with pytest.raises(TypeError, match="y_pred is a numpy.ma.MaskedArray"):
        fastl2.mse([1.0, 2.0, 3.0], ArrayLike(masked))


# --------------------------------------------------------------------------- dtypes by carrier


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


@needs_torch
def test_tensors_with_the_negative_bit_are_read_with_their_sign(backend):
    y = torch.tensor([1 + 1j, 2 + 2j]).conj().imag  # a lazily negated view: [-1, -2]
    np.testing.assert_array_equal(fastl2.mse_grad(np.zeros(2), y), [-1.0, -2.0])
    assert fastl2.mae(np.zeros(2), y, reduction="sum") == 3.0


# --------------------------------------------------------------------------- messages


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


@needs_torch
def test_bfloat16_tensors_are_read_as_bfloat16(backend):
    # (as ml_dtypes.bfloat16 arrays over their memory: the values of the float32 call; the
    # gradient bfloat16, the float32 one rounded once)
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 arrays are ml_dtypes'")
    y_true = torch.tensor([0.5, -3.0, 7.25, 1e-3]).to(torch.bfloat16)
    y_pred = torch.tensor([1.0, 2.0, -0.375, 3e5]).to(torch.bfloat16)
    assert fastl2.mse(y_true, y_pred) == fastl2.mse(y_true.float(), y_pred.float())
    grad = fastl2.mse_grad(y_true, y_pred)
    assert grad.dtype == np.dtype(ml_dtypes.bfloat16)
    expected = fastl2.mse_grad(y_true.float(), y_pred.float()).astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(grad.view(np.uint16), expected.view(np.uint16))


@needs_torch
def test_bfloat16_tensors_without_ml_dtypes_name_the_argument_and_the_package(backend, monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # (its import raises ImportError)
    for role in ("y_true", "y_pred"):
        args = {"y_true": torch.zeros(3), "y_pred": torch.ones(3)}
        args[role] = args[role].to(torch.bfloat16)
        with pytest.raises(TypeError, match=rf"{role} is a Tensor of dtype torch.bfloat16, and reading "
                                            r"bfloat16 needs the ml_dtypes package.*pip install ml_dtypes"
                                            r".*accepted: float16.*\.float\(\)"):
            fastl2.mse(args["y_true"], args["y_pred"])


@needs_torch
def test_tensors_that_require_grad_are_read_as_values(backend):
    y_pred = torch.tensor([1.0, 4.0, -2.0], dtype=torch.float64, requires_grad=True)
    y_true = torch.zeros(3, dtype=torch.float64)
    assert fastl2.mse(y_true, y_pred) == 7.0
    np.testing.assert_array_equal(fastl2.mse_grad(y_true, y_pred), [2 / 3, 8 / 3, -4 / 3])
    assert fastl2.l2_penalty([y_pred], torch.tensor(0.5)) == 10.5
    assert y_pred.grad is None


def test_messages_name_what_was_given(backend):
    with pytest.raises(TypeError, match="given a generator"):
        fastl2.mse(np.zeros(3), (v for v in [1.0, 2.0, 3.0]))
    for name, args in {"y_true": (None, [1.0, 2.0]), "y_pred": ([1.0, 2.0], None)}.items():
        with pytest.raises(TypeError, match=rf"^{name} has dtype object.*\(given None: pass an array"):
            fastl2.mse(*args)
        with pytest.raises(TypeError, match=rf"^{name} has dtype object.*\(given None: pass an array"):
            fastl2.mse_and_grad(*args)
    layers = {"a": np.ones(2), "b": np.full(3, 2.0)}
    assert fastl2.l2_penalty(layers.values(), 1.0) == 14.0


# --------------------------------------------------------------------------- the L2 penalty


@pytest.mark.parametrize("split", [1, 2, 3])
def test_penalty_of_a_list_whose_total_of_squares_overflows(backend, split):
    """Arrays whose squares are finite but whose total is past float64's range: the same value
    however the params are split into a list (math.fsum of the parts raised OverflowError)."""
    x = 1.3e154
    params = np.full(4, x)  # (their squares total 6.8e308; lam brings it back to 1.7e308)
    whole = fastl2.l2_penalty(params, 0.25)
    assert np.isfinite(whole)
    assert whole == float(Fraction(0.25) * 4 * Fraction(x) ** 2)  # (within range: rounded once)
    parts = np.array_split(params, split)
    assert fastl2.l2_penalty(parts, 0.25) == whole


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
