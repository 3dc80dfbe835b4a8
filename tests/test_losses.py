"""The declaration of the losses (fastl2._losses) and its C mirror (csrc/losses.h) agree, and
each loss's element functions give the same bits in every form the backends use."""
from __future__ import annotations

import math
import pathlib
import re

import numpy as np
import pytest

import fastl2
from fastl2 import _losses
from fastl2._losses import LOSSES

LOSSES_H = pathlib.Path(__file__).resolve().parent.parent / "csrc" / "losses.h"


def _c_losses() -> list[tuple[str, str]]:
    """The (NAME, name) entries of FL2_LOSSES(X) in csrc/losses.h, in order."""
    text = LOSSES_H.read_text()
    body = re.search(r"#define FL2_LOSSES\(X\)((?:[^\n]*\\\n)*[^\n]*)", text).group(1)
    return re.findall(r"X\((\w+),\s*(\w+)\)", body)


def test_c_list_and_python_table_agree():
    entries = _c_losses()
    assert [name for _, name in entries] == [loss.name for loss in LOSSES]
    assert all(upper == name.upper() for upper, name in entries)
    assert [loss.code for loss in LOSSES] == list(range(len(LOSSES)))
    for upper, name in entries:  # each entry has its four element functions
        text = LOSSES_H.read_text()
        for suffix in ("value", "derivative", "vvalue", "vderivative"):
            assert f"fl2_{name}_{suffix}(" in text, (name, suffix)


def test_compiled_module_has_the_tables_losses():
    core = fastl2._backends.compiled_module()
    if core is None:
        pytest.skip("the compiled module is not built (FASTL2_NO_EXT=1 install)")
    assert core.loss_names() == tuple(loss.name for loss in LOSSES)


def test_table_is_complete():
    names = [loss.name for loss in LOSSES]
    assert len(set(names)) == len(names)
    assert _losses.BY_NAME == {loss.name: loss for loss in LOSSES}
    for loss in LOSSES:
        assert loss.accuracy in _losses.ACCURACY
        assert loss.grad_scale > 0
        assert callable(getattr(fastl2, loss.function)), loss.function
        assert loss.title and loss.formula and loss.source


# Differences where the element functions' branches and special values lie.
_SPECIAL = np.array(
    [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1e-310, -1e-310, 1e300, -1e300,
     math.inf, -math.inf, math.nan, 3.0 + 2.0**-40, -(1.0 - 2.0**-53), 1e-8, 7.25]
)


def _params(loss):
    if loss.parameter is None:
        return [0.0]
    return [loss.parameter.default, 0.5, 1e-3, 3.0, 1e200]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: loss.name)
def test_numpy_and_scalar_forms_give_the_same_bits(loss):
    """The NumPy backend evaluates ``loss.value`` on arrays, the Numba backend the scalar
    forms: both must be the same IEEE operations (C's are checked through the backends'
    shared result tests)."""
    for p in _params(loss):
        with np.errstate(all="ignore"):
            values = loss.value(_SPECIAL.copy(), p)
            derivatives = loss.derivative(_SPECIAL.copy(), p)
        for d, value, derivative in zip(_SPECIAL, values, derivatives):
            expected_value = np.float64(loss.scalar_value(float(d), p))
            expected_derivative = np.float64(loss.scalar_derivative(float(d), p))
            assert expected_value.tobytes() == np.float64(value).tobytes(), (loss.name, d, p)
            assert expected_derivative.tobytes() == np.float64(derivative).tobytes(), (loss.name, d, p)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: loss.name)
def test_the_parts_form_is_the_value_with_its_error(loss):
    """``value_parts`` (the unweighted float64 sums' form, csrc/losses.h fl2_loss_parts) is the
    same exact term as ``value_err``: x * y rounded is the value's bits and fma(a, b,
    fma(x, y, -l)) its error's; its NumPy and scalar forms give the same bits."""
    rng = np.random.default_rng(3)
    d = np.concatenate([_SPECIAL[np.isfinite(_SPECIAL)], rng.standard_normal(200) * np.exp2(rng.integers(-60, 60, 200))])
    de = np.where(d == 0.0, 0.0, d * 2.0 ** -54 * rng.uniform(-1, 1, d.size))
    fma = _losses._fma  # (exact rationals, rounded once)
    for p in _params(loss):
        with np.errstate(all="ignore"):
            arrays = loss.value_parts(d.copy(), de.copy(), p)
        for i in range(d.size):
            x, y, a, b = loss.scalar_value_parts(float(d[i]), float(de[i]), p)
            l, e = loss.scalar_value_err(float(d[i]), float(de[i]), p)
            assert np.float64(x * y).tobytes() == np.float64(l).tobytes(), (loss.name, d[i], p)
            error = fma(a, b, fma(x, y, -(x * y)))
            assert error == e or (math.isnan(error) and math.isnan(e)), (loss.name, d[i], de[i], p)
            for scalar, array in zip((x, y, a, b), arrays):
                assert np.float64(scalar).tobytes() == np.float64(array[i]).tobytes(), (loss.name, d[i], p)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: loss.name)
def test_element_values_are_not_negative_and_derivative_signs_follow_d(loss):
    for p in _params(loss):
        with np.errstate(all="ignore"):
            values = loss.value(_SPECIAL.copy(), p)
            derivatives = loss.derivative(_SPECIAL.copy(), p)
        finite = np.isfinite(_SPECIAL)
        assert np.all(values[~np.isnan(_SPECIAL)] >= 0)
        assert np.all(np.sign(derivatives[finite]) == np.sign(_SPECIAL[finite]))
        assert np.isnan(values[np.isnan(_SPECIAL)]).all()
        assert np.isnan(derivatives[np.isnan(_SPECIAL)]).all()


@pytest.mark.parametrize("loss", [loss for loss in LOSSES if loss.parameter is not None],
                         ids=lambda loss: loss.name)
@pytest.mark.parametrize("bad, error", [(0.0, ValueError), (-1.0, ValueError), (math.nan, ValueError),
                                        (math.inf, ValueError), ("1", TypeError), (True, TypeError),
                                        (None, TypeError), (np.array([1.0]), TypeError)])
def test_parameter_checks_name_the_parameter(loss, bad, error):
    with pytest.raises(error, match=loss.parameter.name):
        loss.parameter.check(bad)


WIDE_FLOAT = np.longdouble if np.finfo(np.longdouble).nmant > 52 else None


@pytest.mark.skipif(WIDE_FLOAT is None, reason="np.longdouble is float64 on this platform")
@pytest.mark.parametrize("loss", [loss for loss in LOSSES if loss.parameter is not None],
                         ids=lambda loss: loss.name)
def test_a_parameter_wider_than_float64_is_refused_by_every_function(backend, loss):
    """A parameter with more precision than float64 (an x87 longdouble) is refused, as an array
    of it is, never rounded silently; by the check and by every public function of the loss."""
    value = WIDE_FLOAT(1) / WIDE_FLOAT(10)  # 0.1 in 64 bits: float64 would round it
    assert float(value) != value
    with pytest.raises(TypeError, match=f"{loss.parameter.name} is a {value.dtype}.*does not round"):
        loss.parameter.check(value)
    y_true, y_pred = np.zeros(8), np.linspace(-1, 1, 8)
    for name in (loss.function, f"{loss.function}_grad", f"{loss.function}_and_grad"):
        with pytest.raises(TypeError, match=loss.parameter.name):
            getattr(fastl2, name)(y_true, y_pred, **{loss.parameter.name: value})


@pytest.mark.parametrize("loss", [loss for loss in LOSSES if loss.parameter is not None],
                         ids=lambda loss: loss.name)
@pytest.mark.parametrize("bad", [10**400, -(10**400), "x" * 1000, [1.0] * 1000])
def test_a_parameter_error_shows_a_bounded_value(loss, bad):
    """However large the value given, the message quotes it in under ~200 characters."""
    with pytest.raises((TypeError, ValueError), match=loss.parameter.name) as info:
        loss.parameter.check(bad)
    assert len(str(info.value)) < 200
