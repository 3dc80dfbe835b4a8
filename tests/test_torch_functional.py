"""fastl2.torch's functions against torch.nn.functional (values and gradients) and against the exact
reference: every loss and reduction, weights or not, layouts, shapes 0-d..3-d, float32/float64,
the half dtypes through float32, and random cases (hypothesis)."""
from __future__ import annotations

import bisect
import math
from fractions import Fraction

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is an optional dependency: pip install 'fastl2[torch]'")

import numpy as np  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import fastl2  # noqa: E402
import fastl2.torch as ft  # noqa: E402
import reference as ref  # noqa: E402

FUNCTIONS = {"mse": ft.mse_loss, "l1": ft.l1_loss, "huber": ft.huber_loss, "smooth_l1": ft.smooth_l1_loss}
REFERENCE = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss, "smooth_l1": F.smooth_l1_loss}
WEIGHTED = ("mse", "l1", "huber")
NAME_WEIGHTED = [(n, False) for n in FUNCTIONS] + [(n, True) for n in WEIGHTED]
REDUCTIONS = ("mean", "sum", "none")
TOLERANCE = {torch.float32: dict(rtol=2e-6, atol=1e-6), torch.float64: dict(rtol=1e-13, atol=1e-14)}
SHAPE_LAYOUTS = [((), "contiguous"), ((7,), "sliced"), ((6, 5), "contiguous"), ((5, 4), "transposed"),
                 ((3, 4, 5), "sliced"), ((3, 4, 5), "transposed")]


def layout(kind, shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    if kind == "contiguous":
        return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    if kind == "transposed":
        base = torch.randn(tuple(reversed(shape)), generator=g, dtype=torch.float64).to(dtype)
        return base.permute(tuple(reversed(range(len(shape)))))
    big = torch.randn(tuple(2 * s + 1 for s in shape), generator=g, dtype=torch.float64).to(dtype)
    return big[tuple(slice(1, None, 2) for _ in shape)]  # "sliced": steps and an offset


def inputs(shape, dtype, kind="contiguous", seed=0, scale=2.0):
    x = (layout(kind, shape, dtype, seed) * scale).requires_grad_()
    t = (layout(kind, shape, dtype, seed + 1) * scale).requires_grad_()
    w = layout(kind, shape, dtype, seed + 2).abs() + 0.25
    return x, t, w


def kwargs_for(name, reduction, weight=None, delta=0.75, beta=0.5):
    kwargs = {"reduction": reduction}
    if weight is not None:
        kwargs["weight"] = weight
    if name == "huber":
        kwargs["delta"] = delta
    if name == "smooth_l1":
        kwargs["beta"] = beta
    return kwargs


def value_and_grads(function, x, t, **kwargs):
    x, t = x.detach().requires_grad_(), t.detach().requires_grad_()
    value = function(x, t, **kwargs)
    value.backward(torch.ones_like(value))
    return value.detach(), x.grad, t.grad


# --------------------------------------------------------------------------- against torch.nn.functional


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape, kind", SHAPE_LAYOUTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, weighted", NAME_WEIGHTED)
def test_matches_torch_values_and_gradients(name, weighted, reduction, shape, kind, dtype):
    x, t, w = inputs(shape, dtype, kind)
    kwargs = kwargs_for(name, reduction, w if weighted else None)
    ours = value_and_grads(FUNCTIONS[name], x, t, **kwargs)
    theirs = value_and_grads(REFERENCE[name], x, t, **kwargs)
    assert ours[0].dtype == dtype and ours[0].shape == theirs[0].shape
    assert ours[0].shape == (shape if reduction == "none" else ())
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **TOLERANCE[dtype])
    if reduction == "none":  # laid out like the input (what the fake kernel promises)
        assert ours[0].stride() == torch.empty_like(x).stride()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, weighted", NAME_WEIGHTED)
def test_bits_are_fastl2s(name, weighted, reduction):
    """The loss is fastl2's NumPy result, bit for bit; the gradient is fastl2's gradient."""
    x, t, w = inputs((9, 4), torch.float32, "transposed")
    value, grad, target_grad = value_and_grads(FUNCTIONS[name], x, t, **kwargs_for(name, reduction, w if weighted else None))
    fl2_reduction = "weighted_mean" if (weighted and reduction == "mean" and name != "huber") else reduction
    call = {"mse": fastl2.mse_and_grad, "l1": fastl2.mae_and_grad}.get(name)
    args = (t.detach().numpy(), x.detach().numpy(), w.numpy() if weighted else None)
    if call is None:  # huber, and smooth_l1 = huber(delta=beta) / beta (beta = 0.5: exact)
        delta = 0.75 if name == "huber" else 0.5
        expected, expected_grad = fastl2.huber_and_grad(*args, delta=delta, reduction=fl2_reduction)
        if name == "smooth_l1":
            expected, expected_grad = expected / np.float32(0.5), expected_grad / np.float32(0.5)
    else:
        expected, expected_grad = call(*args, reduction=fl2_reduction)
    assert np.array_equal(value.numpy(), expected) and np.array_equal(grad.numpy(), expected_grad)
    assert torch.equal(target_grad, -grad)


# --------------------------------------------------------------------------- the exact reference


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, weighted", NAME_WEIGHTED)
def test_against_the_exact_reference(name, weighted, reduction, dtype):
    x, t, w = inputs((5, 6, 3), dtype, "sliced", seed=3)
    beta = 2.0  # a power of two: dividing by it is exact
    kwargs = kwargs_for(name, reduction, w if weighted else None, beta=beta)
    value, grad, _ = value_and_grads(FUNCTIONS[name], x, t, **kwargs)
    ref_kind = {"mse": "mse", "l1": "mae", "huber": "huber", "smooth_l1": "huber"}[name]
    delta = {"huber": 0.75, "smooth_l1": beta}.get(name, 1.0)
    fl2_reduction = "weighted_mean" if (weighted and reduction == "mean" and name != "huber") else reduction
    args = (t.detach().numpy(), x.detach().numpy(), w.numpy() if weighted else None, fl2_reduction)
    expected = ref.loss(ref_kind, *args, delta=delta)
    expected_grad = ref.grad(ref_kind, *args, delta=delta)
    if name == "smooth_l1":
        expected, expected_grad = expected / beta, expected_grad / beta
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    ref.assert_ulp(value.numpy(), expected, ref.loss_ulp(np_dtype))
    ref.assert_ulp(grad.numpy(), expected_grad, ref.grad_ulp(np_dtype))


# --------------------------------------------------------------------------- half precision


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, weighted", NAME_WEIGHTED)
def test_half_dtypes_compute_in_float32(name, weighted, reduction, dtype):
    """float16/bfloat16: the float32 computation of the same values, rounded once to the dtype
    (results and gradients); close to PyTorch's own half-precision loss."""
    x, t, w = inputs((8, 5), dtype, "transposed", scale=1.0)
    kwargs = kwargs_for(name, reduction, w if weighted else None, beta=2.0)
    value, grad, target_grad = value_and_grads(FUNCTIONS[name], x, t, **kwargs)
    kwargs32 = kwargs_for(name, reduction, w.float() if weighted else None, beta=2.0)
    value32, grad32, _ = value_and_grads(FUNCTIONS[name], x.float(), t.float(), **kwargs32)
    assert value.dtype == grad.dtype == target_grad.dtype == dtype
    assert torch.equal(value, value32.to(dtype)) and torch.equal(grad, grad32.to(dtype))
    theirs = value_and_grads(REFERENCE[name], x, t, **kwargs)
    for a, b in zip((value, grad), theirs[:2]):
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-3)


# --------------------------------------------------------------------------- half precision, correctly rounded

HALF_GRID = {}


def _round_to_half(q, dtype):
    """The rational ``q`` rounded to nearest, ties to even, in the half dtype: by search among
    all of its finite values (independent of fastl2._exact's rounding by bits)."""
    if dtype not in HALF_GRID:
        values = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16).view(dtype)
        finite = values[torch.isfinite(values)].double().unique()  # (sorted; -0 and 0 as one)
        HALF_GRID[dtype] = finite.tolist()
    grid = HALF_GRID[dtype]
    i = bisect.bisect_left(grid, float(q))
    below, above = grid[max(0, i - 1)], grid[min(len(grid) - 1, i)]
    candidates = sorted({below, above, grid[max(0, i - 2)], grid[min(len(grid) - 1, i + 1)]},
                        key=lambda v: abs(Fraction(v) - q))
    best, second = candidates[0], candidates[1]
    if abs(Fraction(best) - q) == abs(Fraction(second) - q):  # a tie: the even one
        best = min(best, second, key=lambda v: torch.tensor(v, dtype=dtype).view(torch.int16).item() & 1)
    return best


# Sums whose float32 value lies exactly on a midpoint of the half grid while the exact value
# lies just above it (or, where the even neighbour is the upper one, just below): float32 then
# rounded again gives the other neighbour. (kind, y_true, y_pred, dtype)
MIDPOINTS = [
    ("mse", [0, 0, 0, 0], [1, 2.0**-4, 2.0**-20, 0], torch.bfloat16),  # 1 + 2**-8 + 2**-40
    ("l1", [0, 2.0**-40], [1, 3 * 2.0**-8], torch.bfloat16),  # 1 + 3 * 2**-8 - 2**-40
    ("l1", [0, -(2.0**-24)], [1, 2.0**-11], torch.float16),  # 1 + 2**-11 + 2**-24
    ("l1", [0, 2.0**-24], [1, 3 * 2.0**-11], torch.float16),  # 1 + 3 * 2**-11 - 2**-24
]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("kind, y_true, y_pred, dtype", MIDPOINTS)
def test_half_results_beside_a_midpoint_are_rounded_once(kind, y_true, y_pred, dtype, reduction):
    t, x = torch.tensor(y_true, dtype=dtype), torch.tensor(y_pred, dtype=dtype)
    exact = ref.loss("mse" if kind == "mse" else "mae", t.double().numpy(), x.double().numpy(),
                     None, reduction)
    expected = _round_to_half(exact, dtype)
    twice = torch.tensor(float(exact), dtype=torch.float32).to(dtype).item()
    assert expected != twice  # (the case is one: rounding twice is wrong here)
    got = FUNCTIONS[kind](x, t, reduction=reduction)
    assert got.dtype == dtype and got.item() == expected


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_half_results_are_the_exact_value_rounded_once(data):
    dtype = data.draw(st.sampled_from([torch.float16, torch.bfloat16]))
    n = data.draw(st.integers(1, 40))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    spread = data.draw(st.sampled_from([0.0, 4.0, 10.0]))
    t = (torch.randn(n, generator=g, dtype=torch.float64) * 2 ** (spread * torch.rand(n, generator=g))).to(dtype)
    x = (torch.randn(n, generator=g, dtype=torch.float64) * 2 ** (spread * torch.rand(n, generator=g))).to(dtype)
    kind = data.draw(st.sampled_from(["mse", "l1", "huber"]))
    reduction = data.draw(st.sampled_from(["sum", "mean"]))
    kwargs = {"delta": 1.0} if kind == "huber" else {}
    got = FUNCTIONS[kind](x, t, reduction=reduction, **kwargs)
    exact = ref.loss({"mse": "mse", "l1": "mae", "huber": "huber"}[kind], t.double().numpy(), x.double().numpy(),
                     None, reduction, **kwargs)
    assert got.dtype == dtype
    assert got.item() == _round_to_half(exact, dtype) or (math.isinf(got.item()) and abs(float(exact)) > 6e4)


#: The half dtypes and their NumPy dtypes (bfloat16: ml_dtypes', which the torch extra installs).
HALF_NUMPY = {torch.float16: np.dtype(np.float16)}
if ref._BFLOAT16 is not None:
    HALF_NUMPY[torch.bfloat16] = ref._BFLOAT16


def _element_fraction(name, d: Fraction, w, parameter: Fraction) -> Fraction:
    """One element loss of ``name`` (PyTorch's definitions), exactly."""
    a = abs(d)
    if name == "mse":
        value = d * d
    elif name == "l1":
        value = a
    else:
        value = _huber_fraction(d, parameter)
        if name == "smooth_l1":
            value /= parameter
    return value * (1 if w is None else Fraction(w))


def _derivative_fraction(name, d: Fraction, w, parameter: Fraction) -> Fraction:
    if name == "mse":
        g = 2 * d
    elif name == "l1":
        g = Fraction((d > 0) - (d < 0))
    else:
        g = max(-parameter, min(parameter, d))
        if name == "smooth_l1":
            g /= parameter
    return g * (1 if w is None else Fraction(w))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_half_element_losses_and_gradients_are_exact_values_rounded_once(data):
    """float16/bfloat16, reduction "none" and "sum": each element loss (not the float32 one
    rounded again: that moves the ones whose float32 lies on a midpoint of the half grid) and
    each gradient element is the exact value rounded once to the dtype; weights or not."""
    dtype = data.draw(st.sampled_from(list(HALF_NUMPY)))
    name = data.draw(st.sampled_from(list(FUNCTIONS)))
    n = data.draw(st.integers(1, 40))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    spread = data.draw(st.sampled_from([0.0, 4.0, 10.0]))
    x = (torch.randn(n, generator=g, dtype=torch.float64) * 2 ** (spread * torch.rand(n, generator=g))).to(dtype)
    t = (torch.randn(n, generator=g, dtype=torch.float64) * 2 ** (spread * torch.rand(n, generator=g))).to(dtype)
    w = (torch.rand(n, generator=g, dtype=torch.float64) * 4).to(dtype) if (
        name in WEIGHTED and data.draw(st.booleans())) else None
    parameter = data.draw(st.sampled_from([0.75, 2.0, 0.1]))
    reduction = data.draw(st.sampled_from(["none", "sum"]))
    kwargs = kwargs_for(name, reduction, w, delta=parameter, beta=parameter)
    value, grad, _ = value_and_grads(FUNCTIONS[name], x, t, **kwargs)
    assert value.dtype == grad.dtype == dtype
    b = Fraction(float(torch.tensor(parameter, dtype=torch.float64)))
    ws = [None] * n if w is None else w.double().tolist()
    d = [Fraction(p) - Fraction(q) for p, q in zip(x.double().tolist(), t.double().tolist())]
    elements = [_element_fraction(name, di, wi, b) for di, wi in zip(d, ws)]
    half = HALF_NUMPY[dtype]  # (tests/reference.py's rounding: overflow to inf included)
    if reduction == "none":
        expected = [ref.round_fraction(e, half) for e in elements]
        assert value.double().tolist() == expected
    expected = [ref.round_fraction(_derivative_fraction(name, di, wi, b), half) for di, wi in zip(d, ws)]
    if name == "smooth_l1" and math.frexp(parameter)[0] != 0.5:
        # (its gradient's scale, 1 / beta, is rounded to float64 first: a near-tie may go to the
        # other neighbour, one step, docs/torch.md; found by a CI run's NumPy backend)
        steps = _half_steps(grad, torch.tensor(expected, dtype=torch.float64).to(dtype))
        assert steps.max().item() <= 1
    else:
        assert grad.double().tolist() == expected


def _half_steps(a, b):
    """How many steps of their half dtype apart the elements of a and b are (both zeros: 0)."""
    def ordinal(t):
        bits = t.view(torch.int16).to(torch.int32)
        return torch.where(bits < 0, -(bits & 0x7FFF), bits)
    return (ordinal(a) - ordinal(b)).abs()


def test_a_half_element_loss_whose_float32_lies_on_a_midpoint_is_rounded_once():
    # (1 + 2**-12)**2 = 1 + 2**-11 + 2**-24: float32 ties it to 1 + 2**-11, a float16 midpoint,
    # which ties to 1; the exact value lies above it: 1 + 2**-10
    x = torch.tensor([1.0], dtype=torch.float16)
    t = torch.tensor([-(2.0**-12)], dtype=torch.float16)
    twice = torch.tensor((1 + 2.0**-12) ** 2, dtype=torch.float32).to(torch.float16).item()
    assert twice == 1.0
    assert ft.mse_loss(x, t, reduction="none").item() == 1 + 2.0**-10


# --------------------------------------------------------------------------- empty inputs


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 2, 2)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, weighted", NAME_WEIGHTED)
def test_empty_inputs_as_pytorch(name, weighted, reduction, shape, recwarn):
    """A mean of nothing is NaN, silently (PyTorch's answer; fastl2's NumPy API warns), a sum 0."""
    x, t, w = inputs(shape, torch.float32)
    kwargs = kwargs_for(name, reduction, w if weighted else None)
    ours = value_and_grads(FUNCTIONS[name], x, t, **kwargs)
    theirs = value_and_grads(REFERENCE[name], x, t, **kwargs)
    assert not [w for w in recwarn if "fastl2" in str(w.filename) or "Mean of empty" in str(w.message)]
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, equal_nan=True)
    if reduction == "mean":
        assert torch.isnan(ours[0])


# --------------------------------------------------------------------------- random cases


@st.composite
def cases(draw):
    shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    finite = st.floats(-1e3, 1e3, width=32)
    x = draw(hnp.arrays(dtype, shape, elements=finite))
    t = draw(hnp.arrays(dtype, shape, elements=finite))
    name = draw(st.sampled_from(list(FUNCTIONS)))
    weighted = name in WEIGHTED and draw(st.booleans())
    w = draw(hnp.arrays(dtype, shape, elements=st.floats(0.125, 4.0, width=32))) if weighted else None
    reduction = draw(st.sampled_from(REDUCTIONS))
    parameter = draw(st.sampled_from([0.25, 1.0, 3.0]))
    return name, torch.from_numpy(x), torch.from_numpy(t), w if w is None else torch.from_numpy(w), reduction, parameter


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_random_cases_match_torch(case):
    name, x, t, w, reduction, parameter = case
    kwargs = kwargs_for(name, reduction, w, delta=parameter, beta=parameter)
    ours = value_and_grads(FUNCTIONS[name], x, t, **kwargs)
    theirs = value_and_grads(REFERENCE[name], x, t, **kwargs)
    # float32: PyTorch rounds d = x - t to float32 first, fastl2 does not; gradients at l1's and
    # Huber's kinks agree (both take sign(0) = 0 and the quadratic side at |d| = delta).
    tolerance = dict(rtol=1e-5, atol=1e-3) if x.dtype == torch.float32 else dict(rtol=1e-12, atol=1e-9)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, equal_nan=True, **tolerance)


def _huber_fraction(d: Fraction, delta: Fraction) -> Fraction:
    a = abs(d)
    return a * a / 2 if a < delta else delta * (a - delta / 2)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_smooth_l1_is_huber_divided_by_beta_then_rounded_once(data):
    """smooth_l1_loss(beta) is Huber's loss (delta = beta) divided by beta: its reduced result is
    that exact value rounded once to the dtype (not Huber's rounded result times a rounded
    1 / beta: fastl2._passes divide_by), float32, float16 and bfloat16 (float64: within its 2
    ulp); its gradient within its dtype's ulps of exact (1; float64 2: reference.grad_ulp)."""
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
    n = data.draw(st.integers(1, 30))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    beta = data.draw(st.sampled_from([3.0, 0.1, 0.75, 1e-3, 7.5, 2.0]))
    x = (torch.randn(n, generator=g, dtype=torch.float64) * data.draw(st.sampled_from([0.1, 1.0, 5.0]))).to(dtype)
    t = torch.randn(n, generator=g, dtype=torch.float64).to(dtype)
    reduction = data.draw(st.sampled_from(["mean", "sum"]))
    x.requires_grad_()
    got = ft.smooth_l1_loss(x, t, reduction=reduction, beta=beta)
    got.backward()
    b = Fraction(beta)
    d = [Fraction(p) - Fraction(q) for p, q in zip(x.detach().double().tolist(), t.double().tolist())]
    exact = sum((_huber_fraction(di, b) / b for di in d), Fraction(0)) / (n if reduction == "mean" else 1)
    assert got.dtype == dtype
    if dtype in (torch.float16, torch.bfloat16):
        assert got.item() == _round_to_half(exact, dtype)
    elif dtype == torch.float32:
        assert got.item() == ref.round_to(exact, np.float32)
    else:  # (float64 results: within 2 ulp, as every float64 result, docs/api.md)
        ref.assert_ulp(got.detach().numpy(), exact, 2)
    divisor = n if reduction == "mean" else 1
    grad = [max(-b, min(b, di)) / b / divisor for di in d]
    if dtype in (torch.float16, torch.bfloat16):
        expected = [_round_to_half(q, dtype) for q in grad]
        ulps = (x.grad.double() - torch.tensor(expected, dtype=torch.float64)).abs()
        spacing = torch.tensor([abs(v) for v in expected], dtype=torch.float64).clamp_min(2.0 ** -24)
        assert bool((ulps <= spacing * 2.0 ** (-10 if dtype == torch.float16 else -7)).all())
    else:
        np_dtype = np.dtype(np.float32 if dtype == torch.float32 else np.float64)
        # (float64: the scale 1 / beta is rounded, then the product and the quotient: 4 ulp, one
        # more than a CI run's NumPy backend showed)
        ulp = ref.grad_ulp(np_dtype) if dtype == torch.float32 else 4
        ref.assert_ulp(x.grad.numpy(), np.array([float(q) for q in grad]), ulp, dtype=np_dtype)


def test_smooth_l1_beta_3_of_bfloat16_rounds_once():
    # (the case found: a bfloat16 loss of 0.1 with beta=3 was Huber's result rounded to
    # bfloat16, times 1/3, rounded again: one bfloat16 ulp off, and its gradient too)
    x = torch.tensor([0.1, 0.0, 0.0], dtype=torch.bfloat16, requires_grad=True)
    loss = ft.smooth_l1_loss(x, torch.zeros(3, dtype=torch.bfloat16), beta=3.0)
    loss.backward()
    d = Fraction(x[0].item())
    assert loss.item() == _round_to_half(d * d / 2 / 3 / 3, torch.bfloat16)
    assert x.grad[0].item() == _round_to_half(d / 3 / 3, torch.bfloat16)
