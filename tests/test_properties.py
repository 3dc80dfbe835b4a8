"""Property tests (hypothesis): random arrays, weights and reductions against the exact reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastl2
import reference as ref
from cases import AND_GRAD_FUNCTIONS, BLOCK_SIZE, GRAD_FUNCTIONS, LOSS_FUNCTIONS

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,  # write nothing outside the test run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Exponent ranges that keep squares and weighted squares finite and normal in float64 and the
# float32 results finite: moderate (|x| < 1e6) most of the time, tiny and huge exponents as well.
SCALES = {
    np.dtype(np.float32): st.sampled_from([1.0, 1.0, 1.0, 1e-15, 1e-6, 1e6, 1e15]),
    np.dtype(np.float64): st.sampled_from([1.0, 1.0, 1.0, 1e-90, 1e-20, 1e20, 1e90]),
}
REDUCING = ("mean", "weighted_mean", "sum")


def _flush_tiny(x):
    """Zero the magnitudes below 1e-30: their squares would land in float64's subnormals, where the
    reference's error-free products stop being exact."""
    x = x.copy()
    x[np.abs(x) < 1e-30] = 0
    return x


def _atol(dtype, n):
    """Room for results that underflow into the subnormals of the result dtype."""
    return 4 * float(np.finfo(dtype).tiny) * max(n, 1)


@st.composite
def problems(draw, with_weights=None):
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=40))
    scale = draw(SCALES[dtype])
    elements = st.floats(-1e6, 1e6, width=dtype.itemsize * 8, allow_nan=False, allow_infinity=False)
    y_true = _flush_tiny(draw(hnp.arrays(dtype, shape, elements=elements)))
    y_pred = _flush_tiny(draw(hnp.arrays(dtype, shape, elements=elements)))
    y_true = (y_true * dtype.type(scale / 1e6)).astype(dtype) if scale != 1.0 else y_true
    y_pred = (y_pred * dtype.type(scale / 1e6)).astype(dtype) if scale != 1.0 else y_pred
    weighted = draw(st.booleans()) if with_weights is None else with_weights
    weights = None
    if weighted:
        per_sample = len(shape) == 2 and draw(st.booleans())
        w_shape = (shape[0],) if per_sample else shape
        w_elements = st.floats(2.0**-10, 2.0**10, width=dtype.itemsize * 8)
        weights = draw(hnp.arrays(dtype, w_shape, elements=w_elements))
    reduction = draw(st.sampled_from(ref.REDUCTIONS))
    return y_true, y_pred, weights, reduction


def _assert_every_loss_matches(problem, names, reference, max_ulp):
    """Each loss's public function ``names[i]`` against ``reference`` (ref.loss or ref.grad)."""
    y_true, y_pred, weights, reduction = problem
    for kind, name in zip(LOSS_FUNCTIONS, names):
        expected = reference(kind, y_true, y_pred, weights, reduction)
        ref.assert_ulp(getattr(fastl2, name)(y_true, y_pred, weights, reduction=reduction), expected, max_ulp)


@PROPERTY_SETTINGS
@given(problem=problems())
def test_every_loss_matches_the_exact_reference(backend, problem):
    dtype = ref.loss_dtype(*problem[:3])
    _assert_every_loss_matches(problem, LOSS_FUNCTIONS, ref.loss, ref.loss_ulp(dtype))


@PROPERTY_SETTINGS
@given(problem=problems())
def test_gradients_match_the_exact_reference(backend, problem):
    g_dtype = ref.grad_dtype(problem[1])
    _assert_every_loss_matches(problem, GRAD_FUNCTIONS, ref.grad, ref.grad_ulp(g_dtype))


@PROPERTY_SETTINGS
@given(problem=problems())
def test_loss_and_grad_is_bit_identical_to_separate_calls(backend, problem):
    y_true, y_pred, weights, reduction = problem
    for both, loss_f, grad_f in (
        (getattr(fastl2, both), getattr(fastl2, loss), getattr(fastl2, grad))
        for both, loss, grad in zip(AND_GRAD_FUNCTIONS, LOSS_FUNCTIONS, GRAD_FUNCTIONS)
    ):
        loss, grad = both(y_true, y_pred, weights, reduction=reduction)
        separate_loss = loss_f(y_true, y_pred, weights, reduction=reduction)
        separate_grad = grad_f(y_true, y_pred, weights, reduction=reduction)
        assert type(loss) is type(separate_loss)
        assert np.asarray(loss).tobytes() == np.asarray(separate_loss).tobytes()
        assert grad.dtype == separate_grad.dtype and grad.tobytes() == separate_grad.tobytes()


@PROPERTY_SETTINGS
@given(problem=problems())
def test_loss_is_symmetric_in_y_true_and_y_pred(backend, problem):
    y_true, y_pred, weights, reduction = problem
    for func in (getattr(fastl2, name) for name in LOSS_FUNCTIONS):  # (every loss is even: l(-d) = l(d))
        a = func(y_true, y_pred, weights, reduction=reduction)
        b = func(y_pred, y_true, weights, reduction=reduction)
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


@PROPERTY_SETTINGS
@given(problem=problems())
def test_rmse_squared_is_mse(backend, problem):
    y_true, y_pred, weights, reduction = problem
    reduction = "weighted_mean" if reduction == "weighted_mean" else "mean"
    rmse = fastl2.rmse(y_true, y_pred, weights, reduction=reduction)
    mse = fastl2.mse(y_true, y_pred, weights, reduction=reduction)
    assert type(rmse) is type(mse)
    eps = np.finfo(mse.dtype).eps
    np.testing.assert_allclose(np.float64(rmse) ** 2, np.float64(mse), rtol=8 * eps,
                               atol=_atol(mse.dtype, y_pred.size))


@PROPERTY_SETTINGS
@given(problem=problems())
def test_sum_is_mean_times_n(backend, problem):
    y_true, y_pred, weights, _ = problem
    for func in (getattr(fastl2, name) for name in LOSS_FUNCTIONS):
        total = func(y_true, y_pred, weights, reduction="sum")
        mean = func(y_true, y_pred, weights, reduction="mean")
        eps = np.finfo(total.dtype).eps
        np.testing.assert_allclose(np.float64(mean) * y_pred.size, np.float64(total), rtol=8 * eps,
                                   atol=_atol(total.dtype, y_pred.size))


@PROPERTY_SETTINGS
@given(problem=problems(with_weights=True))
def test_weighted_mean_is_sum_divided_by_weight_sum(backend, problem):
    y_true, y_pred, weights, _ = problem
    total = fastl2.mse(y_true, y_pred, weights, reduction="sum")
    weighted_mean = fastl2.mse(y_true, y_pred, weights, reduction="weighted_mean")
    weight_sum = float(np.sum(ref.broadcast_weights(weights, y_pred.shape), dtype=np.float64))
    eps = np.finfo(total.dtype).eps
    np.testing.assert_allclose(np.float64(weighted_mean) * weight_sum, np.float64(total), rtol=8 * eps,
                               atol=_atol(total.dtype, y_pred.size) * 1e3)


@PROPERTY_SETTINGS
@given(problem=problems(), lam=st.one_of(st.just(0.0), st.floats(1e-10, 1e3)))
def test_l2_penalty_matches_the_exact_reference(backend, problem, lam):
    params = problem[1]
    dtype = ref.loss_dtype(params)
    ref.assert_ulp(fastl2.l2_penalty(params, lam), ref.l2_penalty(params, lam), ref.loss_ulp(dtype))
    ref.assert_ulp(fastl2.l2_penalty_grad(params, lam), ref.l2_penalty_grad(params, lam), ref.grad_ulp(params.dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_large_random_inputs_cross_block_boundaries_correctly(backend, dtype, data):
    """Sizes up to a few blocks, with the data from a drawn seed (cheap to generate at this size)."""
    n = data.draw(st.integers(BLOCK_SIZE - 3, 4 * BLOCK_SIZE + 3), label="n")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    reduction = data.draw(st.sampled_from(ref.REDUCTIONS), label="reduction")
    rng = np.random.default_rng(seed)
    y_true = (rng.standard_normal(n) * 100).astype(dtype)
    y_pred = (rng.standard_normal(n) * 100).astype(dtype)
    weights = rng.uniform(0.01, 10, n).astype(dtype)
    loss, grad = fastl2.mse_and_grad(y_true, y_pred, weights, reduction=reduction)
    dtype_ = np.dtype(dtype)
    ref.assert_ulp(loss, ref.loss("mse", y_true, y_pred, weights, reduction), ref.loss_ulp(dtype_))
    ref.assert_ulp(grad, ref.grad("mse", y_true, y_pred, weights, reduction), ref.grad_ulp(dtype_))
