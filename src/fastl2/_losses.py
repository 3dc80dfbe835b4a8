"""The losses fastl2 computes, each declared once.

A :class:`Loss` holds everything that differs between losses: its name (``csrc/losses.h``
lists the same names in the same order, which is each loss's code), its element function and
derivative (as NumPy code for the NumPy backend and as scalar code that the Numba backend
compiles; the C kernels' are in ``csrc/losses.h``, the same IEEE operations in the same
order), the factor of its gradient, its parameter and its checks, its documentation and the
accuracy it promises.  Everything else (planning, the passes, the reductions, the fast
paths, the tests) is loss-agnostic and reads this table: a new loss is a new entry here, a
line and four element functions in ``csrc/losses.h``, and its public functions.

Nothing here imports Numba: the scalar functions are plain Python that ``fastl2._numba``
compiles when it is first used.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: The accuracy promises of float64 results (docs/api.md, "Accuracy"; float32 results of every
#: loss are correctly rounded, fastl2._exact):
#: "exact": the kernels' float64 sum is within fastl2._exact.float64_bound of the exact sum of
#: the exact element losses of y_pred - y_true (its value_err forms give each term's own
#: rounding error), which the float64 certificate (fastl2._exact.finish_float64) needs: float64
#: results are correctly rounded;
#: "elements": the same, of the element losses as evaluated in float64 (a loss whose formula
#: has roundings that value_err does not recover; none now).
ACCURACY = ("exact", "elements")


@dataclass(frozen=True)
class Parameter:
    """A real parameter of a loss: ``name=default``, checked by :meth:`check`."""

    name: str
    default: float
    doc: str

    def check(self, value) -> float:
        """``value`` as a float, or TypeError/ValueError naming the parameter: a finite real
        number > 0 (a Python or NumPy number, not a bool; not a float wider than float64,
        which would be rounded)."""
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
            raise TypeError(
                f"{self.name} must be a real number > 0; got {_shown(value)} of type "
                f"{type(value).__name__}"
            )
        if isinstance(value, np.floating) and np.finfo(value.dtype).nmant > 52:
            raise TypeError(
                f"{self.name} is a {value.dtype} ({np.finfo(value.dtype).nmant + 1}-bit "
                "significand), more precision than fastl2 computes with (float64), and fastl2 "
                f"does not round it silently; pass float({self.name}) if float64 is enough"
            )
        try:
            result = float(value)
        except OverflowError:
            result = math.inf
        if not 0.0 < result < math.inf:  # (also nan)
            raise ValueError(f"{self.name} must be a finite real number > 0; got {_shown(value)}")
        return result


def _shown(value, limit: int = 60) -> str:
    """``repr(value)``, its middle elided past ``limit`` characters (e.g. an int of 400 digits)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 4:]}"


@dataclass(frozen=True)
class Loss:
    """One loss, ``l(d)`` of the difference ``d = y_pred - y_true`` (float64).

    The element loss is ``w * l(d)`` and the gradient of the reduced loss with respect to
    ``y_pred`` is ``grad_scale * w * derivative(d) / D`` (D: the reduction's divisor).
    """

    name: str  #: csrc/losses.h's FL2_<NAME>, lower case
    code: int  #: its index in LOSSES: the value of FL2_<NAME>
    function: str  #: the public function computing its mean (mse, mae, ...)
    title: str  #: what the public function computes, in words
    formula: str  #: l(d), as the docs write it
    grad_scale: float  #: the constant factor of the gradient
    #: NumPy forms (element-wise over float64 arrays, the parameter as a float)
    value: Callable[[np.ndarray, float], np.ndarray]
    derivative: Callable[[np.ndarray, float], np.ndarray]
    #: scalar forms of the same operations, compiled by the Numba backend
    scalar_value: Callable[[float, float], float]
    scalar_derivative: Callable[[float, float], float]
    #: the value with its rounding error, for the float64 kernels' exact element terms
    #: (csrc/losses.h, "exact element terms"): ``value_err(d, de, p)`` gives ``(l, e)``, l
    #: as ``value`` gives it and ``l + e`` within 16 u**2 of ``l(d + de)`` (de: d's own
    #: rounding error); NumPy and scalar forms
    value_err: Callable[[np.ndarray, np.ndarray, float], tuple[np.ndarray, np.ndarray]]
    scalar_value_err: Callable[[float, float, float], tuple[float, float]]
    #: the same exact term in parts, for the unweighted float64 sums (csrc/losses.h,
    #: fl2_loss_parts): ``value_parts(d, de, p)`` gives ``(x, y, a, b)``, the term is
    #: ``x * y + a * b`` (``x * y`` rounded is ``value``'s l, and value_err's e is
    #: ``fma(a, b, fma(x, y, -l))``); NumPy and scalar forms
    value_parts: Callable[[np.ndarray, np.ndarray, float], tuple[np.ndarray, ...]]
    scalar_value_parts: Callable[[float, float, float], tuple[float, float, float, float]]
    #: the derivative's rest, for the float64 gradients (csrc/losses.h derivative_err):
    #: ``derivative_err(d, de, p)`` gives ``ge`` with ``derivative(d) + ge`` exactly
    #: ``l'(d + de)``; NumPy and scalar forms
    derivative_err: Callable[[np.ndarray, np.ndarray, float], np.ndarray]
    scalar_derivative_err: Callable[[float, float, float], float]
    accuracy: str  #: one of ACCURACY
    parameter: Parameter | None = None
    source: str = ""  #: where the loss and its name come from

    def check_param(self, value) -> float:
        """The checked parameter (0.0 for a loss without one)."""
        return 0.0 if self.parameter is None else self.parameter.check(value)


# ---- element functions (each: the IEEE operations of csrc/losses.h, in its order) ----------

def _squared(d, p):
    return d * d


def _squared_derivative(d, p):
    return d


def _absolute(d, p):
    return abs(d)


def _absolute_derivative_scalar(d, p):
    # 1, -1, or d * 0 (0 for zeros, with their sign; nan for nan)
    if d > 0:
        return 1.0
    if d < 0:
        return -1.0
    return d * 0.0


def _absolute_derivative(d, p):
    return np.where(d == 0, d, np.sign(d))  # (zeros: d * 0 is d; nan: np.sign keeps it)


def _huber(d, p):
    a = abs(d)
    return 0.5 * a * a if a < p else p * (a - 0.5 * p)


def _huber_derivative_scalar(d, p):
    if d < -p:
        return -p
    if d > p:
        return p
    return d


def _huber_array(d, p):
    a = np.abs(d)
    return np.where(a < p, 0.5 * a * a, p * (a - 0.5 * p))


def _huber_derivative(d, p):
    return np.where(d < -p, -p, np.where(d > p, p, d))


# ---- exact element terms (csrc/losses.h, the same operations) ------------------------------
# ``_fma`` is fma(a, b, c), a * b + c rounded once: exact rationals here (these scalar forms
# run in Python only in tests), LLVM's fma where the Numba backend compiles them (it gives
# them its own _fma), fastl2._halves.fma_array in the NumPy forms.


def _fma(a, b, c):
    if math.isfinite(a) and math.isfinite(b) and math.isfinite(c):
        from fractions import Fraction

        exact = Fraction(a) * Fraction(b) + Fraction(c)
        if exact == 0:
            return a * b + c  # (an exact zero's sign: IEEE's)
        try:
            result = float(exact)
        except OverflowError:
            return math.inf if exact > 0 else -math.inf
        return result if result != 0.0 else math.copysign(0.0, exact)
    return a * b + c


def _fma_arrays(a, b, c):
    from ._halves import fma_array

    return fma_array(a, b, c)


def diff_err(a, b):
    """``(d, de)``: d = a - b rounded and its error, d + de == a - b exactly (Knuth's TwoSum of
    a and -b, its last step negated); floats or arrays."""
    d = a - b
    z = d - a
    return d, (a - (d - z)) - (b + z)


def _signed(d, de):
    """de with d's sign bit flipped into it (|d + de| = |d| + this), scalar."""
    return -de if math.copysign(1.0, d) < 0.0 else de


def _squared_err(d, de, p):
    l = d * d
    return l, _fma(2.0 * d, de, _fma(d, d, -l))


def _squared_err_array(d, de, p):
    l = d * d
    return l, _fma_arrays(2.0 * d, de, _fma_arrays(d, d, -l))


def _absolute_err(d, de, p):
    return abs(d), _signed(d, de)


def _absolute_err_array(d, de, p):
    return np.abs(d), np.where(np.signbit(d), -de, de)


def _huber_err(d, de, p):
    a = abs(d)
    ae = _signed(d, de)
    m = a if a < p else p
    h = 0.5 * m
    s = a - h
    se = (a - s) - h
    l = m * s
    return l, _fma(m, se + ae, _fma(m, s, -l))


def _huber_err_array(d, de, p):
    a = np.abs(d)
    ae = np.where(np.signbit(d), -de, de)
    m = np.where(a < p, a, p)
    h = 0.5 * m
    s = a - h
    se = (a - s) - h
    l = m * s
    return l, _fma_arrays(m, se + ae, _fma_arrays(m, s, -l))


def _squared_parts(d, de, p):
    return d, d, d + d, de


def _squared_parts_array(d, de, p):
    return d, d, d + d, de


def _absolute_parts(d, de, p):
    return abs(d), 1.0, 1.0, _signed(d, de)


def _absolute_parts_array(d, de, p):
    return np.abs(d), np.ones_like(d), np.ones_like(d), np.where(np.signbit(d), -de, de)


def _huber_parts(d, de, p):
    a = abs(d)
    ae = _signed(d, de)
    m = a if a < p else p
    h = 0.5 * m
    s = a - h
    return m, s, m, ((a - s) - h) + ae


def _huber_parts_array(d, de, p):
    a = np.abs(d)
    ae = np.where(np.signbit(d), -de, de)
    m = np.where(a < p, a, p)
    h = 0.5 * m
    s = a - h
    return m, s, m, ((a - s) - h) + ae


# ---- the exact derivative and the float64 gradient (csrc/losses.h, the same operations) ----

def _squared_derivative_err(d, de, p):
    return de


def _squared_derivative_err_array(d, de, p):
    return de


def _absolute_derivative_err(d, de, p):
    return 0.0


def _absolute_derivative_err_array(d, de, p):
    return np.zeros_like(d)


def _huber_derivative_err(d, de, p):
    a = abs(d)
    ae = _signed(d, de)
    return de if (a - p) + ae < 0.0 else 0.0


def _huber_derivative_err_array(d, de, p):
    a = np.abs(d)
    ae = np.where(np.signbit(d), -de, de)
    return np.where((a - p) + ae < 0.0, de, 0.0)


def gradient_inverse(divisor):
    """1 / divisor rounded where ``divisor`` lies in [2**-1000, 2**1000], else 0 (the float64
    gradient then divides: exact_gradient; csrc/losses.h fl2_grad_inverse)."""
    return 1.0 / divisor if 2.0 ** -1000 <= abs(divisor) <= 2.0 ** 1000 else 0.0


def exact_gradient(x, xe, scale, divisor, divisor_lo, inverse):
    """A float64 gradient element ``scale * (x + xe) / (divisor + divisor_lo)`` within an ulp
    of its exact value, correctly rounded but within about 2**-100 of a midpoint (csrc/losses.h
    fl2_grad_exact, the same operations: ``s * inverse`` corrected by the remainder, exact by
    fma, times ``inverse`` in one last rounding; the quotients where ``inverse`` is 0; Muller
    et al., Handbook of Floating-Point Arithmetic, 2nd ed., 2018, section 4.4); scalar."""
    s = scale * x
    factor = 1.0
    if abs(s) == math.inf and abs(x) < math.inf and 1.0 < abs(divisor) < math.inf:
        # (scale * x past the range, the quotient perhaps not: x / 2**64, exact here)
        x = 2.0 ** -64 * x
        xe = 2.0 ** -64 * xe
        s = scale * x
        factor = 2.0 ** 64
    se = _fma(scale, xe, _fma(scale, x, -s))
    q = s * inverse if inverse != 0.0 else s / divisor
    if not abs(q) < math.inf:
        q = s / divisor
    if not abs(q) < math.inf or not abs(divisor) < math.inf:
        return factor * q
    r = _fma(-q, divisor_lo, _fma(-q, divisor, s) + se)
    c = r * inverse if inverse != 0.0 else r / divisor
    return factor * math.copysign(q + c, q)


def exact_gradient_array(x, xe, scale, divisor, divisor_lo):
    """exact_gradient over arrays (x, xe; the rest scalars; its inverse computed here), the
    same operations."""
    inverse = gradient_inverse(divisor)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        s = scale * x
        se = _fma_arrays(scale, xe, _fma_arrays(scale, x, -s))
        if inverse != 0.0:
            q = s * inverse
            past = ~(np.abs(q) < math.inf)
            if past.any():
                q[past] = s[past] / divisor
        else:
            q = s / divisor
        r = _fma_arrays(-q, divisor_lo, _fma_arrays(-q, divisor, s) + se)
        c = r * inverse if inverse != 0.0 else r / divisor
        g = np.where(np.abs(q) < math.inf, np.copysign(q + c, q), q)
        if not abs(divisor) < math.inf:
            return q
        rare = (np.abs(s) == math.inf) & (np.abs(x) < math.inf)
        if rare.any() and abs(divisor) > 1.0:  # (the scalar form's rescaled road)
            g[rare] = [exact_gradient(a, b, scale, divisor, divisor_lo, inverse)
                       for a, b in zip(x[rare].tolist(), xe[rare].tolist())]
        return g


def weigh_err(w, l, le):
    """``(x, xe)``: x = w * l rounded, x + xe = w * (l + le) to u**2 of it (scalar)."""
    x = w * l
    return x, _fma(w, le, _fma(w, l, -x))


def weigh_err_array(w, l, le):
    """weigh_err over arrays."""
    x = w * l
    return x, _fma_arrays(w, le, _fma_arrays(w, l, -x))


# ---- the table -------------------------------------------------------------------------------

SQUARED = Loss(
    name="squared",
    code=0,
    function="mse",
    title="mean squared error",
    formula="(y_pred - y_true)**2",
    grad_scale=2.0,
    value=_squared,
    derivative=_squared_derivative,
    scalar_value=_squared,
    scalar_derivative=_squared_derivative,
    value_err=_squared_err_array,
    scalar_value_err=_squared_err,
    value_parts=_squared_parts_array,
    scalar_value_parts=_squared_parts,
    derivative_err=_squared_derivative_err_array,
    scalar_derivative_err=_squared_derivative_err,
    accuracy="exact",
    source="the L2 loss; torch.nn.functional.mse_loss, sklearn.metrics.mean_squared_error",
)

ABSOLUTE = Loss(
    name="absolute",
    code=1,
    function="mae",
    title="mean absolute error",
    formula="|y_pred - y_true|",
    grad_scale=1.0,
    value=_absolute,
    derivative=_absolute_derivative,
    scalar_value=_absolute,
    scalar_derivative=_absolute_derivative_scalar,
    value_err=_absolute_err_array,
    scalar_value_err=_absolute_err,
    value_parts=_absolute_parts_array,
    scalar_value_parts=_absolute_parts,
    derivative_err=_absolute_derivative_err_array,
    scalar_derivative_err=_absolute_derivative_err,
    accuracy="exact",
    source="the L1 loss; torch.nn.functional.l1_loss, sklearn.metrics.mean_absolute_error",
)

HUBER = Loss(
    name="huber",
    code=2,
    function="huber",
    title="Huber loss",
    formula="|d|**2 / 2 where |d| < delta, else delta * (|d| - delta / 2), d = y_pred - y_true",
    grad_scale=1.0,
    value=_huber_array,
    derivative=_huber_derivative,
    scalar_value=_huber,
    scalar_derivative=_huber_derivative_scalar,
    value_err=_huber_err_array,
    scalar_value_err=_huber_err,
    value_parts=_huber_parts_array,
    scalar_value_parts=_huber_parts,
    derivative_err=_huber_derivative_err_array,
    scalar_derivative_err=_huber_derivative_err,
    accuracy="exact",
    parameter=Parameter("delta", 1.0, "where the loss turns from quadratic to linear"),
    source="P. J. Huber, Robust Estimation of a Location Parameter, Ann. Math. Statist. 35(1), "
    "1964; torch.nn.functional.huber_loss",
)

#: Every loss, in the order of csrc/losses.h (a loss's index is its code).
LOSSES: tuple[Loss, ...] = (SQUARED, ABSOLUTE, HUBER)

BY_NAME = {loss.name: loss for loss in LOSSES}
