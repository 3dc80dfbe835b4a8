"""The compiled kernels give the same bits on every instruction-set level this CPU has."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastl2
from cases import AND_GRAD_FUNCTIONS, LOSS_FUNCTIONS

core = fastl2._backends.compiled_module()
pytestmark = pytest.mark.skipif(core is None, reason="the compiled kernels are not built (pure-Python install)")


def _inputs(dtype_true, dtype_pred, weighted, n=3 * 8192 + 77):
    rng = np.random.default_rng(7)
    y_true = rng.standard_normal(n).astype(dtype_true)
    y_pred = rng.standard_normal(n).astype(dtype_pred)
    weights = rng.random(n) + 0.5 if weighted else None
    return y_true, y_pred, weights


every_dtype_mix = pytest.mark.parametrize(
    "dtypes,weighted",
    [(dtypes, weighted) for dtypes in ((np.float32, np.float32), (np.float64, np.float64),
                                       (np.float32, np.float64)) for weighted in (False, True)],
    ids=[f"{name}-{w}" for name in ("float32", "float64", "mixed") for w in ("unweighted", "weighted")],
)


def level_variants():
    """(name, level, float32 runs choice) of every SIMD level this CPU has; the AVX-512 level
    twice, with its own float32 1-d kernels and with the AVX2 level's (which it runs on CPUs
    that split 512-bit operations: csrc/config.c), so that both are tested on every CPU."""
    variants = []
    for level in core.simd_levels_available():
        if level == "avx512":
            variants += [("avx512", level, 0), ("avx512 with avx2 float32 runs", level, 1)]
        else:
            variants.append((level, level, -1))
    return variants


@pytest.fixture
def restore_level(restore_level):
    """(and the AVX-512 level's float32 1-d kernels: this CPU's choice again)"""
    yield
    core.set_float32_runs(-1)  # (before the previous level is set again: its tables are refilled)


def assert_same_bits_on_every_level(compute):
    """compute() (a list of result bytes) on the compiled backend at every SIMD level this
    CPU has (level_variants): every one must give the first one's bits."""
    fastl2.set_backend("cython")
    results = {}
    variants = level_variants()
    for name, level, choice in variants:
        core.set_float32_runs(choice)
        core.set_simd_level(level)
        assert core.float32_run_level() == {-1: level, 0: level, 1: "avx2"}[choice]
        results[name] = compute()
    for name, _, _ in variants[1:]:
        assert results[name] == results[variants[0][0]], f"{name} differs from {variants[0][0]}"


def test_the_float32_runs_of_the_level_in_use_are_one_of_its_levels(restore_level):
    # the default: the AVX-512 level's own or, on CPUs where the AVX2 ones are faster, AVX2's
    core.set_float32_runs(-1)
    for level in core.simd_levels_available():
        core.set_simd_level(level)
        expected = {"avx2", "avx512"} if level == "avx512" else {level}
        assert core.float32_run_level() in expected
        assert ("kernels for float32 1-d passes" in fastl2._config.config()["simd level"]) == (
            core.float32_run_level() != level)


@pytest.mark.skipif("avx512" not in (core.simd_levels_available() if core else []),
                    reason="this CPU has no AVX-512 level, the only one with a choice of float32 kernels")
def test_forced_float32_runs_are_used_and_shown(restore_level):
    for choice, expected in ((1, "avx2"), (0, "avx512")):
        core.set_float32_runs(choice)
        core.set_simd_level("avx512")
        assert core.float32_run_level() == expected
        shown = fastl2._config.config()["simd level"]
        assert shown.startswith("avx512") and ("avx2 kernels for float32 1-d passes" in shown) == (choice == 1)
    core.set_float32_runs(1)
    core.set_simd_level("avx2")  # (a level without the choice: its own kernels)
    assert core.float32_run_level() == "avx2" and core.simd_level() == "avx2"


def _everything(y_true, y_pred, weights):
    """Every kernel mode: sums, sums + gradient, gradient, elementwise, of every loss; the L2
    penalty."""
    results = []
    for reduction in ("mean", "weighted_mean", "sum", "none"):
        for name, and_grad_name in zip(LOSS_FUNCTIONS, AND_GRAD_FUNCTIONS):
            results.append(getattr(fastl2, name)(y_true, y_pred, weights, reduction=reduction))
            results.extend(getattr(fastl2, and_grad_name)(y_true, y_pred, weights, reduction=reduction))
    results.append(fastl2.l2_penalty(y_pred, 0.5))
    results.append(fastl2.l2_penalty_grad(y_pred, 0.5))
    return [np.asarray(r).tobytes() for r in results]


@every_dtype_mix
def test_every_simd_level_gives_the_same_bits(dtypes, weighted, restore_level):
    inputs = _inputs(*dtypes, weighted)
    assert_same_bits_on_every_level(lambda: _everything(*inputs))


def test_unknown_simd_level_is_rejected_naming_the_available_ones():
    with pytest.raises(ValueError, match="available"):
        core.set_simd_level("sse9")


def test_fastl2_simd_environment_variable_forces_a_level():
    env = {**os.environ, "FASTL2_SIMD": "baseline"}
    out = subprocess.run(
        [sys.executable, "-c", "import fastl2; print(fastl2._backends.compiled_module().simd_level())"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "baseline"


def _axis_sums(dtypes, weighted):
    """Reductions through the columns kernel (axis=0 of C-ordered matrices of 2 to 9 columns:
    each level's vector width among them), the rows kernel (axis=-1) and step-2 views."""
    rng = np.random.default_rng(11)
    results = []
    for shape, axis in (((3 * 8192 + 5, 2), 0), ((1000, 4), 0), ((20000, 8), 0), ((999, 9), 0),
                        ((300, 100), -1), ((64, 16), -1), ((77, 37), -1)):
        y_true = rng.standard_normal(shape).astype(dtypes[0])
        y_pred = rng.standard_normal(shape).astype(dtypes[1])
        per_row = rng.random(shape[0]) + 0.5
        for weights in ([None, rng.random(shape) + 0.5, per_row] if weighted else [None]):
            reduction = "mean" if weights is None else "weighted_mean"
            for name in LOSS_FUNCTIONS:
                results.append(getattr(fastl2, name)(y_true, y_pred, weights, axis=axis,
                                                     reduction=reduction))
        results.append(fastl2.mse(y_true.reshape(-1)[::2], y_pred.reshape(-1)[::2]))
    return [np.asarray(r).tobytes() for r in results]


@every_dtype_mix
def test_every_simd_level_gives_the_same_bits_along_axes(dtypes, weighted, restore_level):
    assert_same_bits_on_every_level(lambda: _axis_sums(dtypes, weighted))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axis_reductions_with_inf_and_nan_match_one_output_at_a_time(dtype, restore_level):
    # The rows and columns kernels combine their lanes without the finiteness tests, and redo
    # an output whose sum is not finite with them: every output must still have the bits of
    # its own 1-d call, overflowing squares, infs and nans included.
    fastl2.set_backend("cython")
    big = np.finfo(dtype).max / 4
    rng = np.random.default_rng(5)
    y_true = rng.standard_normal((64, 40)).astype(dtype)
    y_pred = rng.standard_normal((64, 40)).astype(dtype)
    y_pred[3, 5] = big  # its square overflows
    y_pred[4, :] = big
    y_pred[5, 7], y_pred[5, 9] = np.inf, -np.inf
    y_pred[6, 1] = np.nan
    y_pred[9, 2], y_true[9, 2] = np.inf, np.inf  # inf - inf
    weights = rng.random((64, 40)).astype(dtype) + 0.5
    weights[7, 3] = np.inf
    for level in core.simd_levels_available():
        core.set_simd_level(level)
        for ncols in (40, 8, 4, 2):  # 8, 4, 2: a row is one vector of some level
            t, p, ww = (np.ascontiguousarray(a[:, :ncols]) for a in (y_true, y_pred, weights))
            for w, reduction in ((None, "mean"), (ww, "weighted_mean")):
                with np.errstate(all="ignore"):
                    rows = fastl2.mse(t, p, w, axis=1, reduction=reduction)
                    columns = fastl2.mse(t, p, w, axis=0, reduction=reduction)
                    one_row = [fastl2.mse(t[i].copy(), p[i].copy(), None if w is None else w[i].copy(),
                                          reduction=reduction) for i in range(64)]
                    one_column = [fastl2.mse(t[:, c].copy(), p[:, c].copy(),
                                             None if w is None else w[:, c].copy(), reduction=reduction)
                                  for c in range(ncols)]
                np.testing.assert_array_equal(rows, np.array(one_row), err_msg=f"{level} rows")
                np.testing.assert_array_equal(columns, np.array(one_column), err_msg=f"{level} columns")
                assert not np.isfinite(rows[[4, 6]]).any()
