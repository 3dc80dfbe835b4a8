"""What is particular to the Huber loss: its parameter ``delta`` (every value, every backend and
path, checked), its branch point, and PyTorch's semantics.  Everything it shares with the other
losses (reductions, axes, layouts, dtypes, weights, out=, the exact reference at the default
delta, the same bits on every backend) is tested by the table-driven tests."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastl2
import reference as ref

DELTAS = (1e-3, 0.37, 1.0, 2.5, 1e3)


def _data(n, dtype, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(n) * scale).astype(dtype), (rng.standard_normal(n) * scale).astype(dtype),
            rng.uniform(0.1, 2.0, n).astype(dtype))


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", ["mean", "weighted_mean", "sum"])
def test_any_delta_against_the_exact_reference(backend, delta, dtype, weighted, reduction):
    y_true, y_pred, w = _data(8192 + 37, dtype, seed=int(delta * 1000) % 97)
    weights = w if weighted else None
    ulp = ref.loss_ulp(ref.loss_dtype(y_true, y_pred, weights))
    expected = ref.loss("huber", y_true, y_pred, weights, reduction, delta=delta)
    ref.assert_ulp(fastl2.huber(y_true, y_pred, weights, delta=delta, reduction=reduction), expected, ulp)
    expected_grad = ref.grad("huber", y_true, y_pred, weights, reduction, delta=delta)
    grad = fastl2.huber_grad(y_true, y_pred, weights, delta=delta, reduction=reduction)
    ref.assert_ulp(grad, expected_grad, ref.grad_ulp(grad.dtype))
    loss, grad_too = fastl2.huber_and_grad(y_true, y_pred, weights, delta=delta, reduction=reduction)
    assert loss.tobytes() == fastl2.huber(y_true, y_pred, weights, delta=delta, reduction=reduction).tobytes()
    assert grad_too.tobytes() == grad.tobytes()


@pytest.mark.parametrize("delta", DELTAS)
def test_any_delta_along_axes_and_in_any_layout(backend, delta):
    y_true, y_pred, _ = _data(600, np.float64, seed=3)
    y_true, y_pred = y_true.reshape(20, 30), y_pred.reshape(20, 30)
    for axis in (0, 1, (0, 1)):
        expected = ref.loss_axis("huber", y_true, y_pred, None, "mean", axis, delta=delta)
        ref.assert_ulp(fastl2.huber(y_true, y_pred, delta=delta, axis=axis), expected, 2)
        # a transposed (Fortran-ordered) view: the same values, read where they lie
        got = fastl2.huber(y_true.T.copy().T, y_pred.T.copy().T, delta=delta, axis=axis)
        ref.assert_ulp(got, expected, 2)
    elements = fastl2.huber(y_true, y_pred, delta=delta, reduction="none")
    ref.assert_ulp(elements, ref.loss("huber", y_true, y_pred, None, "none", delta=delta), 1)


@settings(max_examples=40, deadline=None)
@given(
    delta=st.floats(1e-6, 1e6),
    values=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=40),
)
def test_every_backend_and_path_gives_the_same_bits_for_any_delta(delta, values):
    y_pred = np.array(values)
    y_true = np.zeros_like(y_pred)
    results = {}
    previous = fastl2.get_backend()
    for backend in fastl2.available_backends():
        fastl2.set_backend(backend)
        try:
            results[backend] = [
                np.asarray(r).tobytes()
                for r in (fastl2.huber(y_true, y_pred, delta=delta),
                          fastl2.huber(y_true, y_pred, delta=np.float64(delta)),  # the planned path
                          *fastl2.huber_and_grad(y_true, y_pred, delta=delta, reduction="none"),
                          fastl2.huber_grad(y_true, y_pred, delta=delta))
            ]
        finally:
            fastl2.set_backend(previous)
    first = next(iter(results.values()))
    assert first[0] == first[1]
    assert all(r == first for r in results.values()), results.keys()
    expected = ref.loss("huber", y_true, y_pred, None, "mean", delta=delta)
    ref.assert_ulp(np.frombuffer(first[0], np.float64)[0], expected, 2)


def test_branch_point_and_special_values(backend):
    delta = 1.5
    y_pred = np.array([1.5, -1.5, 1.4999999999999998, 0.0, -0.0, np.inf, -np.inf, np.nan, 3.0])
    y_true = np.zeros_like(y_pred)
    losses, grad = fastl2.huber_and_grad(y_true, y_pred, delta=delta, reduction="none")
    assert losses[0] == losses[1] == 0.5 * 1.5 * 1.5  # both branches meet at |d| == delta
    assert losses[2] == 0.5 * 1.4999999999999998**2
    assert losses[3] == 0.0 and losses[4] == 0.0
    assert losses[5] == losses[6] == np.inf and np.isnan(losses[7])
    assert losses[8] == delta * (3.0 - 0.5 * delta)
    assert list(grad[[0, 1, 5, 6, 8]]) == [1.5, -1.5, 1.5, -1.5, 1.5]
    assert np.signbit(grad[4]) and not np.signbit(grad[3]) and np.isnan(grad[7])


@pytest.mark.parametrize("function", [fastl2.huber, fastl2.huber_grad, fastl2.huber_and_grad],
                         ids=["huber", "huber_grad", "huber_and_grad"])
@pytest.mark.parametrize("delta, error", [
    (0.0, ValueError), (-1.0, ValueError), (math.nan, ValueError), (math.inf, ValueError),
    (-0.0, ValueError), (1e400, ValueError), ("1.0", TypeError), (True, TypeError), (None, TypeError),
    (np.array([1.0]), TypeError), (1j, TypeError),
])
def test_a_bad_delta_is_refused_naming_it_on_every_backend_and_path(backend, function, delta, error):
    a = np.zeros(16)
    for args in ((a, a), (list(a), list(a))):  # (the fast path's call, and the planned path's)
        with pytest.raises(error, match="delta"):
            function(*args, delta=delta)


def test_int_and_numpy_deltas_are_the_float_they_equal(backend):
    y_true, y_pred, w = _data(100, np.float64, seed=8)
    expected = fastl2.huber(y_true, y_pred, w, delta=2.0).tobytes()
    for delta in (2, np.float32(2.0), np.int64(2), np.float64(2.0)):
        assert fastl2.huber(y_true, y_pred, w, delta=delta).tobytes() == expected


def test_is_pytorchs_huber_loss_and_smooth_l1_loss_over_beta():
    torch = pytest.importorskip("torch", reason="PyTorch is an optional peer (pip install torch)")
    functional = torch.nn.functional
    y_true, y_pred, _ = _data(10_000, np.float64, seed=5)
    for delta in (0.25, 1.0, 4.0):
        prediction = torch.tensor(y_pred, requires_grad=True)
        expected = functional.huber_loss(prediction, torch.tensor(y_true), delta=delta)
        expected.backward()
        loss, grad = fastl2.huber_and_grad(y_true, y_pred, delta=delta)
        assert loss == pytest.approx(expected.item(), rel=1e-13)
        np.testing.assert_allclose(grad, prediction.grad.numpy(), rtol=1e-13, atol=0)
        smooth = functional.smooth_l1_loss(torch.tensor(y_pred), torch.tensor(y_true), beta=delta).item()
        assert fastl2.huber(y_true, y_pred, delta=delta) / delta == pytest.approx(smooth, rel=1e-13)
        per_element = functional.huber_loss(torch.tensor(y_pred), torch.tensor(y_true), delta=delta,
                                            reduction="none").numpy()
        np.testing.assert_array_equal(fastl2.huber(y_true, y_pred, delta=delta, reduction="none"), per_element)
