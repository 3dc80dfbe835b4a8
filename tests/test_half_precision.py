"""float16 and bfloat16 operands read as they are: two bytes an element, converted exactly block
by block (csrc/convert.c), never as a float32 copy of the whole array.  (bfloat16 is
``ml_dtypes.bfloat16``, the NumPy dtype of JAX and of PyTorch tensors read by fastl2; its cases
run where ml_dtypes is installed, as it is by the test extras.)

What can break: a conversion that is not exact on the way in (subnormals, signed zeros, inf,
NaN), or not rounded once to nearest even on the way out (a half-precision gradient is the
exact gradient rounded once: ties, near-ties, subnormals, overflow; rounded through float32,
or multiplied by a rounded quotient, it is twice); a SIMD level (F16C) or backend that
converts differently from another; a layout (stepped, reversed, broadcast, unaligned, axes)
or a mix with float32/float64 operands that reads the wrong elements; an input written; a
whole-array copy after all.  The contract checked: a call with half-precision operands gives
the bits of the same call with those operands converted to float32, and a half-precision
gradient is the exact gradient rounded once (tests/reference.py grad_rounded), on every
backend.
"""
from __future__ import annotations

import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastl2
import reference as ref
from cases import AND_GRAD_FUNCTIONS, GRAD_FUNCTIONS, LOSS_FUNCTIONS
from conftest import BACKENDS

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
core = fastl2._backends.compiled_module()

try:
    import ml_dtypes
except ImportError:  # (not generated without it; the test extras install it)
    HALVES = [F16]
else:
    HALVES = [F16, np.dtype(ml_dtypes.bfloat16)]


@pytest.fixture(params=HALVES, ids=lambda d: d.name)
def half(request):
    """A half-precision dtype: float16, and bfloat16 where ml_dtypes is installed."""
    return request.param


def every(half):
    """Every bit pattern of ``half``, as values."""
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(half)


def _bits(a):
    """The bits of a result (scalar or array), NaNs as one pattern (their payloads are not
    part of the contract)."""
    a = np.asarray(a)
    out = a.copy()
    if a.dtype.kind == "f" or a.dtype in HALVES:
        out[np.isnan(a)] = np.nan
    return out.tobytes(), out.dtype


def _levels(backend):
    """The compiled backend's SIMD levels (F16C above the baseline), one after another; one
    pass for the other backends (they have no levels)."""
    if backend != "cython":
        yield None
        return
    for level in core.simd_levels_available():
        core.set_simd_level(level)
        yield level


def test_every_half_is_read_exactly(backend, half, restore_level):
    # |v| of every bit pattern, reduction="none": float32 losses of the exact values (mae's
    # element loss is |y_pred - y_true| against zeros: the value itself, exactly)
    values = every(half)
    zeros = np.zeros_like(values)
    expected = np.abs(values.astype(F32))
    both = np.empty(2 * values.size, half)  # (y_true at a stride: every other element)
    both[::2] = values
    both[1::2] = 0
    for level in _levels(backend):
        got = fastl2.mae(zeros, values, reduction="none")
        assert got.dtype == F32
        assert _bits(got) == _bits(expected), level
        got = fastl2.mae(both[::2], zeros, reduction="none")
        assert _bits(got) == _bits(expected), level


def test_half_gradients_are_the_exact_gradient_rounded_once(backend, half, restore_level):
    # Every finite value as y_pred against zeros, mean over a count that is not a power of
    # two: 2 * v / n rounded once to the half dtype (subnormal, normal and overflowing
    # results); and ties, which a second rounding breaks the wrong way.
    values = every(half)
    finite = values[np.isfinite(values)]
    zeros = np.zeros_like(finite)
    expected = _bits(ref.grad_rounded("mse", zeros, finite, None, "mean", half))
    cases = _sum_ties(half) + _mean_ties(half) + _near_ties(half)
    for level in _levels(backend):
        got = fastl2.mse_grad(zeros, finite)
        assert got.dtype == half
        assert _bits(got) == expected, level
        for t, y_pred, weights, reduction, tied in cases:
            got = fastl2.mse_grad(t, y_pred, weights, reduction=reduction)
            assert _bits(got) == tied, (level, t.dtype, reduction, weights is None)


def test_half_gradients_at_the_extremes_are_rounded_once_alike(backend, half):
    # float64 differences beyond 2**900 (the emulated fma's split would overflow: scaled),
    # products below 2**-900 (its error is not exact: a zero of the right sign), and the
    # gradients that overflow the half: the exact value rounded once, on every backend
    cases = [
        (np.array([-1e305, 0.0, 0.0]), np.zeros(3, half), None),
        (np.array([1e305, -3e300, 2.0]), np.zeros(3, half), None),
        (np.array([np.inf, -np.inf, 2e300]), np.zeros(3, half), None),  # (with inf: no recursion)
        (np.full(3, 0.25), np.zeros(3, half), np.full(3, 5e-324)),
        (np.full(3, -0.25), np.zeros(3, half), np.full(3, 1e-310)),
    ]
    for t, y_pred, weights in cases:
        for name in ("mse", "mae", "huber"):
            got = getattr(fastl2, name + "_grad")(t, y_pred, weights)
            expected = []
            for k in range(3):  # (exactly: reference.grad's float64 pieces overflow here)
                if not np.isfinite(t[k]):  # (d = -t: inf; mse's gradient too, the others' +-1/3)
                    sign = -np.sign(t[k])
                    expected.append(sign * np.inf if name == "mse" else ref.round_fraction(Fraction(int(sign), 3), half))
                    continue
                d = Fraction(float(y_pred[k])) - Fraction(float(t[k]))
                w = Fraction(1) if weights is None else Fraction(float(weights[k]))
                g = {"mse": 2 * d, "mae": Fraction((d > 0) - (d < 0)),
                     "huber": max(Fraction(-1), min(Fraction(1), d))}[name]
                value = ref.round_fraction(w * g / 3, half)
                # (a zero: the sign of w * l'(d), l'(d) carrying d's, as the kernels' IEEE products)
                negative = (d < 0 or (d == 0 and np.signbit(float(y_pred[k]) - float(t[k])))) != (w < 0)
                expected.append((-0.0 if negative else 0.0) if value == 0 else value)
            assert _bits(got) == _bits(np.array(expected).astype(half)), (name, t, weights)


def _sum_ties(half):
    """Ties: gradients 2 * (0 - t) = h exactly halfway between two neighbouring values (and
    halfway past the largest, to inf: float16's 65520, and past it), from float32 and float64
    y_true, so both the float32 kernel and the float64 one round them to even:
    (y_true, y_pred, weights, reduction, the expected bits)."""
    values = every(half)
    ordered = np.unique(values[np.isfinite(values)].astype(F64))
    top = float(ordered[-1])
    # (halfway: 12 significant bits for float16, 9 for bfloat16: exact in float32; the step
    # past the largest value is the one below it)
    beyond = top + (top - ordered[-2]) / 2
    halfway = np.concatenate([(ordered[:-1] + ordered[1:]) / 2, [beyond, -beyond]])
    if half == F16:
        halfway = np.concatenate([halfway, [65519.0, 65536.0]])
    zeros = np.zeros(halfway.size, half)
    with np.errstate(over="ignore"):  # (halfway past the largest and beyond: inf, as it should)
        expected = _bits(halfway.astype(F32).astype(half))
    return [((-halfway / 2).astype(dtype), zeros, None, "sum", expected) for dtype in (F32, F64)]


def _near_ties(half):
    """Near-ties: gradients 2 * d / 3 a float64 ulp or two either side of a midpoint between
    two halves (float64 y_true, so that d holds them), which the exact value's rounding sends
    away from the midpoint, and a product by the rounded quotient 2 / 3 onto it (then to even,
    the wrong way half the time): (y_true, y_pred, weights, reduction, the expected bits)."""
    values = every(half)
    finite = values[np.isfinite(values)].astype(F64)
    ordered = np.unique(finite[finite > 0])
    mids = (ordered[:-1] + ordered[1:]) / 2
    mids = np.random.default_rng(8).choice(mids[(mids > 2.0 ** -10) & (mids < 2.0 ** 10)], 200)
    cases = []
    for m in mids:
        for k in (-2, -1, 1, 2):
            d = 1.5 * m + k * np.spacing(1.5 * m)
            t = np.array([-d, 0.0, 0.0])
            exact = ref.round_fraction(Fraction(2) * Fraction(d) / 3, half)
            cases.append((t, np.zeros(3, half), None, "mean", _bits(np.array([exact, 0.0, 0.0]).astype(half))))
    return cases


def _mean_ties(half):
    """Ties of a mean over n = 3, 5, 6, 7 elements and of weighted means: gradients 2 * w * d / D
    exactly halfway between two neighbouring halves, d = y_pred - y_true with y_pred and y_true
    of the half dtype (their difference holds the few more bits a tie needs).  The quotient
    2 / D is not exact: multiplied by its rounding, a tie moves a float64 ulp, off the tie
    (cases of (y_true, y_pred, weights, reduction, the expected bits))."""
    values = every(half)
    finite = values[np.isfinite(values)].astype(F64)
    ordered = np.unique(finite[finite > 0])
    mids = (ordered[:-1] + ordered[1:]) / 2
    mids = mids[(mids > 2.0 ** -10) & (mids < 2.0 ** 10)]  # (normal, away from overflow)
    rng = np.random.default_rng(7)
    mids = rng.choice(mids, 400, replace=False) * rng.choice([-1.0, 1.0], 400)
    cases = []
    for n, weight in ((3, None), (5, None), (6, None), (7, None), (3, 3.0), (5, 0.75)):
        # 2 * w * d / D = m: d = m * D / (2 * w), split into y_pred (its leading bits, a half)
        # and -y_true (the rest, a half too)
        divisor, w0 = (float(n), 1.0) if weight is None else (3.0 * weight, weight)
        d = mids * divisor / (2.0 * w0)
        y_pred = d.astype(half)
        y_true = (y_pred.astype(F64) - d).astype(half)
        keep = (y_pred.astype(F64) - y_true.astype(F64)) == d  # (d exactly: most of them)
        y_pred, y_true, tied = y_pred[keep], y_true[keep], mids[keep]
        # n elements per call: the tie first, then n - 1 elements of gradient 0
        count = tied.size
        t = np.zeros((count, n), half)
        p = np.zeros((count, n), half)
        t[:, 0], p[:, 0] = y_true, y_pred
        if weight is None:
            w, reduction = None, "mean"
        else:  # weights summing to 3 * weight: D = 3 * weight, the tie's weight `weight`
            w = np.full((count, n), 2.0 * weight / (n - 1), half)
            w[:, 0] = weight
            reduction = "weighted_mean"
            assert np.all(w.astype(F64).sum(axis=1) == 3.0 * weight), n
        expected = np.zeros((count, n), half)
        expected[:, 0] = tied.astype(F32).astype(half)  # (the tie, rounded to even)
        for k in range(count):
            cases.append((t[k], p[k], None if w is None else w[k], reduction, _bits(expected[k])))
    return cases


@pytest.mark.skipif(core is None, reason="the compiled kernels are not built (pure-Python install)")
def test_every_simd_level_converts_halves_alike(half, restore_level):
    results = {}
    rng = np.random.default_rng(3)
    n = 3 * 8192 + 77  # (whole blocks and a tail that is not a multiple of 8)
    y_true = (rng.standard_normal(n) * 100).astype(half)
    y_pred = every(half)[rng.integers(0, 1 << 16, n)]
    w = rng.random(n).astype(half)
    for level in core.simd_levels_available():
        core.set_simd_level(level)
        fastl2.set_backend("cython")
        out = []
        for name, grad_name in zip(LOSS_FUNCTIONS, AND_GRAD_FUNCTIONS):
            for weights in (None, w):
                out.append(getattr(fastl2, name)(y_true, y_pred, weights, reduction="none"))
                out.extend(getattr(fastl2, grad_name)(y_true, y_pred, weights, reduction="sum"))
                out.extend(getattr(fastl2, grad_name)(y_true[::-1], y_pred[::2].repeat(2)[:n], weights))
        results[level] = [_bits(r) for r in out]
    first = next(iter(results.values()))
    for level, bits in results.items():
        assert bits == first, f"{level} differs"


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # (the backend: set once)
@given(data=st.data())
def test_half_results_are_the_exact_value_rounded_once(backend, data):
    # Against the exact reference (Fractions, tests/reference.py) on the inputs' exact values:
    # every reduced result, float32, correctly rounded; gradients, the exact gradient rounded
    # once to the half dtype.
    half = data.draw(st.sampled_from(HALVES))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n = data.draw(st.sampled_from([1, 5, 33, 300, 20000]))
    spread = data.draw(st.sampled_from([0.0, 6.0, 12.0]))
    y_true = (rng.standard_normal(n) * 2.0 ** rng.uniform(-spread, spread, n)).astype(half)
    y_pred = (y_true.astype(F64) + rng.standard_normal(n) * 2.0 ** rng.uniform(-spread, spread, n)).astype(half)
    weights = rng.uniform(0, 4, n).astype(half) if data.draw(st.booleans()) else None
    kind = data.draw(st.sampled_from(["mse", "mae", "huber", "rmse"]))
    reduction = data.draw(st.sampled_from(["mean", "sum", "weighted_mean"] if kind != "rmse" else
                                          ["mean", "weighted_mean"]))
    if reduction == "weighted_mean" and weights is not None and not np.any(weights.astype(F64)):
        weights = None
    exact = [None if a is None else a.astype(F64) for a in (y_true, y_pred, weights)]  # (exactly)
    got = getattr(fastl2, kind)(y_true, y_pred, weights, reduction=reduction)
    assert np.asarray(got).dtype == F32
    ref.assert_ulp(got, ref.loss(kind, *exact, reduction=reduction), 0)
    if kind != "rmse":
        grad = getattr(fastl2, kind + "_grad")(y_true, y_pred, weights, reduction=reduction)
        assert grad.dtype == half
        expected = ref.grad_rounded(kind, *exact, reduction=reduction, dtype=half)
        assert _bits(grad) == _bits(expected), (kind, reduction)


def _layout(array, kind):
    """``array`` (1-d or 2-d, half precision) in another layout with the same values."""
    if kind == "contiguous":
        return array
    if kind == "reversed":
        return np.ascontiguousarray(array[::-1])[::-1]
    if kind == "stepped":
        wide = np.zeros((2,) + array.shape, array.dtype)
        wide[0] = array
        return np.moveaxis(wide, 0, -1)[..., 0]
    if kind == "unaligned":
        raw = np.zeros(array.nbytes + 1, np.uint8)
        view = raw[1:].view(array.dtype).reshape(array.shape)
        view[...] = array
        return view
    if kind == "fortran":
        return np.asfortranarray(array)
    raise ValueError(kind)


LAYOUTS = ("contiguous", "reversed", "stepped", "unaligned", "fortran")


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_half_calls_give_the_bits_of_float32_calls_and_exact_gradients(data):
    # Any half dtype, loss, reduction, axis, layout, weights (half or other) and dtype mix: the
    # call on half-precision operands equals the call on the same values as float32, and its
    # gradient is the exact one rounded once, on every backend.
    half = data.draw(st.sampled_from(HALVES))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    rows = data.draw(st.sampled_from([1, 3, 40]))
    cols = data.draw(st.sampled_from([1, 7, 8200]))
    shape = data.draw(st.sampled_from([(rows * cols,), (rows, cols)]))
    # (a mix of the two half dtypes, or with float32/float64: the converting road)
    true_dtype = data.draw(st.sampled_from([half, half, *HALVES, F32, F64]))
    y_true = (rng.standard_normal(shape) * data.draw(st.sampled_from([1e-6, 1.0, 300.0]))).astype(true_dtype)
    y_pred = (rng.standard_normal(shape) * 3).astype(half)
    weights_kind = data.draw(st.sampled_from(["none", "full", "per_sample"]))
    weights = None
    if weights_kind == "full":
        weights = rng.random(shape).astype(data.draw(st.sampled_from([half, *HALVES, F32, F64])))
    elif weights_kind == "per_sample":
        weights = rng.random(shape[0]).astype(data.draw(st.sampled_from([half, F32])))
    layout = data.draw(st.sampled_from(LAYOUTS))
    y_true_l, y_pred_l = _layout(y_true, layout), _layout(y_pred, layout)
    as32 = lambda a: None if a is None else (a.astype(F32) if a.dtype in HALVES else a)  # noqa: E731
    kind = data.draw(st.sampled_from(["loss", "grad", "and_grad"]))
    index = data.draw(st.integers(0, len(LOSS_FUNCTIONS) - 1))
    reduction = data.draw(st.sampled_from(["mean", "sum", "weighted_mean", "none"]))
    axis = None
    if kind == "loss" and len(shape) == 2 and reduction != "none":
        axis = data.draw(st.sampled_from([None, 0, 1, -1]))
    if kind != "loss":  # (the gradient: the exact one rounded once)
        exact_grad = _bits(ref.grad_rounded(LOSS_FUNCTIONS[index], y_true, y_pred, weights,
                                            reduction, half))
    for backend in BACKENDS:
        fastl2.set_backend(backend)
        if kind == "loss":
            name = LOSS_FUNCTIONS[index]
            got = getattr(fastl2, name)(y_true_l, y_pred_l, weights, axis=axis, reduction=reduction)
            expected = getattr(fastl2, name)(as32(y_true), as32(y_pred), as32(weights), axis=axis, reduction=reduction)
            assert _bits(got) == _bits(expected), (backend, name, layout)
            continue
        name = (GRAD_FUNCTIONS if kind == "grad" else AND_GRAD_FUNCTIONS)[index]
        got = getattr(fastl2, name)(y_true_l, y_pred_l, weights, reduction=reduction)
        expected = getattr(fastl2, name)(as32(y_true), as32(y_pred), as32(weights), reduction=reduction)
        if kind == "grad":
            got, expected = (None, got), (None, expected)
        assert got[1].dtype == half
        assert _bits(got[1]) == exact_grad, (backend, name, layout)
        assert _bits(got[0]) == _bits(expected[0]), (backend, name, layout)
    np.testing.assert_array_equal(y_pred_l, y_pred)  # (nothing written to an input)


@pytest.mark.parametrize("layout", LAYOUTS + ("broadcast", "step2"))
@pytest.mark.parametrize("weights_kind", ["none", "full", "per_sample"])
def test_every_half_layout_and_output_gives_the_bits_of_float32_and_exact_gradients(backend, half, layout, weights_kind):
    # Every operand of one half dtype (the compiled backend's half kernels, read in place or
    # gathered), every layout, every output: losses of every reduction and axis (element
    # losses included) as from float32 operands, gradients (the exact ones rounded once),
    # losses with gradients.
    rng = np.random.default_rng(11)
    shape = (24, 700)
    y_true, y_pred = ((rng.standard_normal(shape) * 4).astype(half) for _ in range(2))
    if layout == "broadcast":
        y_true = np.broadcast_to(y_true[:1], shape)
    elif layout == "step2":  # (a[::2] of the last axis: the kernels' step-2 loads)
        y_true, y_pred = (np.repeat(a, 2, axis=1)[:, ::2] for a in (y_true, y_pred))
    else:
        y_true, y_pred = _layout(y_true, layout), _layout(y_pred, layout)
    weights = {"none": None, "full": rng.random(shape).astype(half),
               "per_sample": rng.random(shape[0]).astype(half)}[weights_kind]
    as32 = lambda a: None if a is None else a.astype(F32)  # noqa: E731
    for index, name in enumerate(LOSS_FUNCTIONS):
        for reduction in ("mean", "sum", "weighted_mean", "none"):
            for axis in ([None] if reduction == "none" else [None, 0, 1]):
                got = getattr(fastl2, name)(y_true, y_pred, weights, axis=axis, reduction=reduction)
                expected = getattr(fastl2, name)(as32(y_true), as32(y_pred), as32(weights), axis=axis,
                                                 reduction=reduction)
                assert _bits(got) == _bits(expected), (name, reduction, axis)
            loss, grad = getattr(fastl2, AND_GRAD_FUNCTIONS[index])(y_true, y_pred, weights, reduction=reduction)
            loss32, grad32 = getattr(fastl2, AND_GRAD_FUNCTIONS[index])(as32(y_true), as32(y_pred), as32(weights),
                                                                        reduction=reduction)
            assert _bits(loss) == _bits(loss32), (name, reduction)
            assert _bits(grad) == _bits(ref.grad_rounded(name, y_true, y_pred, weights, reduction, half)), (
                name, reduction)
            alone = getattr(fastl2, GRAD_FUNCTIONS[index])(y_true, y_pred, weights, reduction=reduction)
            assert _bits(alone) == _bits(grad), (name, reduction)


def test_a_half_gradient_written_over_y_pred(backend, half):
    # out=y_pred: each block is read before its gradient is written over it
    rng = np.random.default_rng(5)
    y_true = (rng.standard_normal(20000)).astype(half)
    y_pred = (rng.standard_normal(20000)).astype(half)
    expected = ref.grad_rounded("mse", y_true, y_pred, None, "mean", half)
    out = fastl2.mse_grad(y_true, y_pred, out=y_pred)
    assert out is y_pred
    assert _bits(out) == _bits(expected)


# The backends that read half precision in place (numba has none on the CPU: it converts).
IN_PLACE = [name for name in BACKENDS if name != "numba"]


if IN_PLACE:  # (FASTL2_TEST_BACKENDS=numba alone: no backend of this test)
    @pytest.mark.parametrize("backend", IN_PLACE, indirect=True)
    @pytest.mark.parametrize("call", ["mse", "mse_and_grad", "mse_axis"])
    def test_no_float32_copy_of_a_half_array(backend, half, call):
        # NumPy reports its allocations to tracemalloc: a float32 copy of 2**21 elements would be
        # 8 MiB; the result, the gradient (half: 4 MiB) and the chunks are all there is.
        n = 1 << 21
        y_true = np.zeros(n, half)
        y_pred = np.ones(n, half)
        run = {
            "mse": lambda: fastl2.mse(y_true, y_pred),
            "mse_and_grad": lambda: fastl2.mse_and_grad(y_true, y_pred),
            "mse_axis": lambda: fastl2.mse(y_true.reshape(1024, -1), y_pred.reshape(1024, -1), axis=1),
        }[call]
        run()  # (first-call setup outside the measurement)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            run()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        gradient = 2 * n if call == "mse_and_grad" else 0
        assert peak < gradient + (1 << 20), peak


if "numba" in BACKENDS:
    @pytest.mark.parametrize("backend", ["numba"], indirect=True)
    @pytest.mark.parametrize("weights_kind", [None, "per element", "per sample"])
    def test_numba_converts_each_half_operand_once(backend, half, weights_kind):
        # Numba reads no half precision on the CPU: its plan converts each operand to float32,
        # once (its flat views are views of those copies, not copies of their own): some 4 bytes
        # an element of each operand, and not twice that.
        rows, cols = 512, 2048
        n = rows * cols
        y_true = np.zeros((rows, cols), half)
        y_pred = np.ones((rows, cols), half)
        weights = {None: None, "per element": np.ones((rows, cols), half),
                   "per sample": np.ones(rows, half)}[weights_kind]
        fastl2.mse(y_true, y_pred, weights)  # (compiled, and first-call setup, outside)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            value = fastl2.mse(y_true, y_pred, weights)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        operands = 3 if weights_kind == "per element" else 2
        assert peak < 4 * n * operands + (1 << 20), peak
        assert value == 1.0
