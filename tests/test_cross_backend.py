"""The compiled and NumPy backends give the same bits, for every function, reduction, dtype and
weights layout, serial and threaded (90,001 elements).

numba is compared with the compiled backend byte for byte on the same grid, with the parallel
size among its sizes, in test_numba_backend_bits.py (which holds the numba specialisations this
grid would compile once more); the exact reference checks each backend's values elsewhere."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastl2
from cases import AND_GRAD_FUNCTIONS, GRAD_FUNCTIONS, LOSS_FUNCTIONS

BACKENDS = [name for name in fastl2.available_backends() if name != "numba"]
PAIRS = list(itertools.combinations(BACKENDS, 2))

# Every loss of the table, rmse, and each loss's <name>_grad and <name>_and_grad.
FUNCS = {
    name: getattr(fastl2, name)
    for name in (*LOSS_FUNCTIONS, "rmse",
                 *(name for pair in zip(GRAD_FUNCTIONS, AND_GRAD_FUNCTIONS) for name in pair))
}


@pytest.fixture
def pair(request):
    if not PAIRS:
        pytest.skip(f"only one backend is available here ({BACKENDS}); nothing to compare")
    previous = fastl2.get_backend()
    try:
        yield request.param
    finally:
        fastl2.set_backend(previous)


def run_on(backend, func, *args, **kwargs):
    fastl2.set_backend(backend)
    return func(*args, **kwargs)


def _data(dtype, weights_kind, seed=11):
    rng = np.random.default_rng(seed)
    shape = (30_001, 3) if weights_kind == "per_sample" else (90_001,)
    y_true = (rng.standard_normal(shape) * 5).astype(dtype)
    y_pred = (rng.standard_normal(shape) * 5).astype(dtype)
    weights = None
    if weights_kind == "full":
        weights = rng.uniform(0, 3, shape).astype(dtype)
    elif weights_kind == "per_sample":
        weights = rng.uniform(0, 3, shape[0]).astype(dtype)
    return y_true, y_pred, weights


def assert_same_bits(a, b):
    parts_a = a if isinstance(a, tuple) else (a,)
    parts_b = b if isinstance(b, tuple) else (b,)
    assert len(parts_a) == len(parts_b)
    for x, y in zip(parts_a, parts_b):
        assert np.asarray(x).dtype == np.asarray(y).dtype and np.shape(x) == np.shape(y)
        assert type(x) is type(y)
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), (x, y)


# Every function with each reduction it has (rmse: only the means).
FUNCTION_REDUCTIONS = [
    (name, reduction)
    for name in FUNCS
    for reduction in ("mean", "weighted_mean", "sum", "none")
    if name != "rmse" or reduction in ("mean", "weighted_mean")
]


@pytest.mark.parametrize("pair", PAIRS or [None], indirect=True, ids=lambda p: "-vs-".join(p) if p else "none")
@pytest.mark.parametrize("weights_kind", ["none", "full", "per_sample"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, reduction", FUNCTION_REDUCTIONS)
def test_backends_give_the_same_bits(pair, name, reduction, dtype, weights_kind):
    y_true, y_pred, weights = _data(dtype, weights_kind)
    first, second = pair
    a = run_on(first, FUNCS[name], y_true, y_pred, weights, reduction=reduction)
    b = run_on(second, FUNCS[name], y_true, y_pred, weights, reduction=reduction)
    assert_same_bits(a, b)


@pytest.mark.parametrize("pair", PAIRS or [None], indirect=True, ids=lambda p: "-vs-".join(p) if p else "none")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backends_give_the_same_l2_bits(pair, dtype):
    params = (np.random.default_rng(3).standard_normal(90_001) * 5).astype(dtype)
    first, second = pair
    assert_same_bits(run_on(first, fastl2.l2_penalty, params, 0.01), run_on(second, fastl2.l2_penalty, params, 0.01))
    assert_same_bits(run_on(first, fastl2.l2_penalty_grad, params, 0.01),
                 run_on(second, fastl2.l2_penalty_grad, params, 0.01))
