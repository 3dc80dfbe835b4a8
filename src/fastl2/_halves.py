"""Half-precision gradients, rounded once: the Python side of csrc/internal.h's
"half-precision gradients" (the bits of the compiled kernels, for the NumPy and Numba backends).

A float16 or bfloat16 gradient is the exact gradient ``x * scale / divisor`` (``x = w * l'(d)``
in float64) rounded once to its dtype.  ``x * (scale / divisor)`` is rounded twice, and can
move a value lying exactly on a midpoint between two halves (a tie, to even) to one side.  So
the quotient comes in two parts, ``q`` rounded toward zero and its tail ``lo`` (quotient_tail),
and each element is ``fma(x, q, x * lo)``: the exact value to about 2**-104, rounded once to
float64.  That float64 goes to float32 rounded to odd, then to the half to nearest even
(round_half): the float64's only rounding (Boldo and Melquiond, "Emulation of FMA and correctly
rounded sums: proved algorithms using rounding to odd", IEEE Trans. Computers 57(4), 2008).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

_FLOAT16 = np.dtype(np.float16)
_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)
_SPLITTER = 134217729.0  # 2**27 + 1: Veltkamp's split
_TAIL_MIN, _TAIL_MAX = 2.0 ** -400, 2.0 ** 400


def _split(a):
    """``(hi, lo)``, ``hi + lo == a`` with 26 and 27 significant bits (Veltkamp's split, for
    Dekker's exact product; floats or arrays)."""
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def _remainder(scale: float, divisor: float, q: float) -> float:
    """``scale - q * divisor`` exactly (Dekker's product; csrc/internal.h fl2_remainder)."""
    q_hi, q_lo = _split(q)
    d_hi, d_lo = _split(divisor)
    p = q * divisor
    e = ((q_hi * d_hi - p) + q_hi * d_lo + q_lo * d_hi) + q_lo * d_lo
    return (scale - p) - e


def quotient_tail(scale: float, divisor: float) -> tuple[float, float]:
    """``(q, lo)``: ``scale / divisor`` as ``q`` rounded toward zero plus ``lo`` (of q's sign,
    below q's ulp), or ``(scale / divisor, 0.0)`` where the quotient is exact or it or the
    divisor is outside [2**-400, 2**400] (csrc/internal.h fl2_quotient_tail, bit for bit; Numba
    compiles this function as it is)."""
    quotient = scale / divisor
    aq, ad = abs(quotient), abs(divisor)
    if not (_TAIL_MIN <= aq <= _TAIL_MAX and _TAIL_MIN <= ad <= _TAIL_MAX):
        return quotient, 0.0
    r = _remainder(scale, divisor, quotient)
    if r == 0.0:
        return quotient, 0.0
    q = quotient
    if (r < 0.0) != ((quotient < 0.0) != (divisor < 0.0)):  # rounded away from zero
        mantissa, exponent = math.frexp(aq)
        gap = math.ldexp(1.0, exponent - (54 if mantissa == 0.5 else 53))  # the ulp below |q|
        q = quotient - gap if quotient > 0.0 else quotient + gap
        r = _remainder(scale, divisor, q)
    return q, r / divisor


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _add_round_to_odd(a, b):
    """a + b rounded to odd (toward zero, the last bit set where inexact), element-wise."""
    s, e = _two_sum(a, b)
    inexact = e != 0.0
    if not inexact.any():
        return s
    # rounded away from zero where the error has the other sign: one step back toward zero
    away = inexact & ((e < 0.0) != (s < 0.0))
    s = np.where(away, np.nextafter(s, 0.0), s)
    bits = s.view(np.int64) | inexact.astype(np.int64)
    return bits.view(np.float64)


def fma_array(a, b, c) -> np.ndarray:
    """``a * b + c`` rounded once to nearest even, element-wise over float64 arrays (NumPy has
    no fma): IEEE 754's fusedMultiplyAdd, the bits of csrc/internal.h's fl2_fma and of the
    Numba backend's, for every input.  a and b are scaled by powers of two to [0.5, 1), c with
    them (exactly, or, far below the product, to a value that rounds the same), the scaled sum
    is Boldo and Melquiond's emulation (Dekker's exact product, TwoSum, one addition rounded to
    odd), and scaled back exactly; the rare elements whose result lies in the subnormal range
    (where scaling back would round a second time) are rounded from their exact rational."""
    a, b, c = np.broadcast_arrays(np.asarray(a, _FLOAT64), np.asarray(b, _FLOAT64),
                                  np.asarray(c, _FLOAT64))
    if a.ndim != 1 or a.size > _FMA_PIECE:  # (in pieces: its temporaries stay small)
        flat = [np.ravel(v) for v in (a, b, c)]
        out = np.empty(flat[0].size)
        for start in range(0, out.size, _FMA_PIECE):
            piece = slice(start, start + _FMA_PIECE)
            out[piece] = _fma_piece(*(v[piece] for v in flat))
        return out.reshape(a.shape)
    return _fma_piece(a, b, c)


_FMA_PIECE = 2048


def _fma_piece(a, b, c):
    with np.errstate(all="ignore"):
        # (an infinite c beside a finite product is c, even where a * b overflows in float64)
        plain = np.where(np.isinf(c) & np.isfinite(a) & np.isfinite(b), c, a * b + c)
        usual = np.isfinite(a) & np.isfinite(b) & np.isfinite(c) & (a != 0.0) & (b != 0.0)
        if not usual.any():
            return plain
        ma, ea = np.frexp(np.where(usual, a, 1.0))
        mb, eb = np.frexp(np.where(usual, b, 1.0))
        e = ea.astype(np.int64) + eb
        mc, ec = np.frexp(np.where(usual, c, 0.0))
        ec = np.where(mc == 0.0, e - 1000, ec)  # (c = 0: below everything)
        # c scaled as the product: exact, unless it lies 2**600 and more below or above it
        shift = np.clip(ec - e, -600, 600)
        cc = np.ldexp(mc, shift)
        hi_a, lo_a = _split(ma)
        hi_b, lo_b = _split(mb)
        uh = ma * mb
        ul = ((hi_a * hi_b - uh) + hi_a * lo_b + lo_a * hi_b) + lo_a * lo_b
        th, tl = _two_sum(cc, uh)
        scaled = th + _add_round_to_odd(tl, ul)
        result = np.where(usual, np.ldexp(scaled, np.where(usual, e, 0)), plain)
        # c far above the product: c + a * b rounds to c (the product < ulp(c) / 2**500)
        result = np.where(usual & (ec - e > 600), c, result)
        tiny = usual & (scaled != 0.0) & (np.abs(result) < 2.0 ** -1021) & (ec - e <= 600)
    for i in np.flatnonzero(tiny.ravel()):
        x, y, z = (float(v.ravel()[i]) for v in (a, b, c))
        result.ravel()[i] = float(Fraction(x) * Fraction(y) + Fraction(z))
    return result


def half_gradient(x: np.ndarray, scale: float, divisor: float) -> np.ndarray:
    """The float64 value of a half-precision gradient (csrc/block_template.h GRAD_VALUE):
    ``fma(x, q, x * lo)``, or ``x * (scale / divisor)`` where the quotient has no tail."""
    q, lo = quotient_tail(scale, divisor)
    with np.errstate(all="ignore"):
        if lo == 0.0:
            return x * q
        return fma_array(x, q, x * lo)


def round_odd_float32(values: np.ndarray) -> np.ndarray:
    """float64 ``values`` rounded to float32 to odd (csrc/vectors.h fl2_vround_odd_f32): toward
    zero, the last bit set where inexact; overflow gives FLT_MAX, inf and NaN stay."""
    values = np.asarray(values, _FLOAT64)
    with np.errstate(over="ignore", invalid="ignore"):
        f = values.astype(_FLOAT32)
        back = f.astype(_FLOAT64)
        inexact = (back != values) & ~np.isnan(values)
        away = inexact & (np.abs(back) > np.abs(values))
    bits = f.view(np.uint32) - away.astype(np.uint32)
    bits |= inexact.astype(np.uint32)
    return bits.view(_FLOAT32)


def round_half(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 ``values`` rounded once to nearest even to ``dtype`` (float16 or bfloat16): a
    half-precision gradient as the compiled kernels store it, through float32 rounded to odd
    (bfloat16 by its bits, as fl2_float_to_bfloat: a NaN stays a NaN, quiet, with its payload's
    top bits)."""
    single = round_odd_float32(values)
    if dtype == _FLOAT16:
        return single.astype(_FLOAT16)
    bits = single.view(np.uint32)
    rounded = ((bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    if nan.any():
        rounded[nan] = ((bits[nan] >> 16) | np.uint32(0x40)).astype(np.uint16)
    return rounded.view(dtype)


def half_values_float32(values32: np.ndarray, half: str) -> np.ndarray:
    """float32 ``values32`` rounded to nearest even to the half dtype named ``half``
    ("float16" or "bfloat16"), as float32 (exactly: every half is a float32), C order; NaN
    stays NaN.  (No ml_dtypes needed: bfloat16 by the bits, as round_half.)"""
    values32 = np.ascontiguousarray(values32, _FLOAT32)
    if half == "float16":
        with np.errstate(over="ignore"):
            return values32.astype(_FLOAT16).astype(_FLOAT32)
    bits = values32.view(np.uint32)
    rounded = ((bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) >> 16) << 16
    nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    return np.where(nan, values32, rounded.astype(np.uint32).view(_FLOAT32))
