"""Correct rounding of reduced results: the certificate, and the exact slow path behind it.

A reduced float32 result is computed in float64 by the kernels (``v``: the loss sum divided by
the reduction's divisor, perhaps rooted, perhaps times the penalty's lam).  When every term
``w * l`` is >= 0 (no weights, or non-negative weights), its relative error is below
``float32_bound(count)`` for a result reduced from ``count`` elements, with u = 2**-53 and
m = min(count, BLOCK_SIZE = 8192):

- each term is within 5u of its exact value (relative; float32 inputs are exact in float64):
  the float64 difference (u), its square or absolute value (2u), Huber's linear branch
  ``delta * (a - delta / 2)`` (the subtraction at most doubles a's error, a >= delta: 4u), the
  weight product (u);
- a float64 chain adds at most m terms (an accumulator only adds elements of one output, and
  the block scheme at most BLOCK_SIZE of them): (m - 1)u of the chain's sum, non-negative
  terms, to first order (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed.,
  4.2);
- the lanes and blocks are combined in double-double (docs/architecture.md, "The determinism
  scheme"), and the double-double is rounded once to float64: below 2u together;
- the weight sum (weighted_mean) has the chains' (m - 1)u and its rounding u; the division u;
  the root halves the error and adds u; lam's product u; a ``divide_by`` (a second division,
  fastl2._passes.planned_loss: smooth_l1_loss's beta) u.

In all, below (2m + 11)u plus second-order terms; ``float32_bound`` is (2m + 16)u (about
2**-39 at the most).  If every real within it of ``v`` rounds to the same float32, that float32 is the
exact value rounded once (``certain``); if not (``v`` lies within the bound of a float32
rounding boundary: about 2 * bound / 2**-24 of random values, one call in 2**14 at the most),
the result is recomputed exactly here (``exact_result``): every element's loss as a sum of
float64 pieces that is exact (error-free transformations: Knuth's TwoSum, Dekker's TwoProduct
with Veltkamp's splitting), the pieces summed exactly as integers, and the exact rational
rounded once to nearest, ties to even.

A reduced float64 result is certified the same way on the kernels' double-double sums
(``finish_float64``: their bound ``float64_bound``, carried through the quotient, the root and
lam's product, each formed in double-double), and the same exact slow path decides what it
cannot.

References: D. E. Knuth, TAOCP vol. 2, 4.2.2 (TwoSum); T. J. Dekker, "A floating-point technique
for extending the available precision", Numer. Math. 18 (1971) (TwoProduct, splitting);
IEEE 754-2019, 4.3.1 (roundTiesToEven).
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np

from ._halves import half_values_float32
from ._plan import BLOCK_SIZE  # (the determinism scheme's block: the longest chain)

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_FORMATS = {_F32: (24, -126, 127), _F64: (53, -1022, 1023)}  # (precision, emin, emax)
#: The half-precision formats, by dtype name (bfloat16: ml_dtypes', not imported here).
_HALF_FORMATS = {"float16": (11, -14, 15), "bfloat16": (8, -126, 127)}


def _format(dtype) -> tuple[int, int, int]:
    """(precision, emin, emax) of a dtype, or of a half-precision one's name."""
    if isinstance(dtype, str) and dtype in _HALF_FORMATS:
        return _HALF_FORMATS[dtype]
    dtype = np.dtype(dtype)
    return _HALF_FORMATS[dtype.name] if dtype.itemsize == 2 else _FORMATS[dtype]


# ----------------------------------------------------------------------------- the certificate


def float32_bound(count: int) -> float:
    """The relative error of a float32 result's float64 value reduced from ``count`` elements
    with no negative term (module docstring): (2 min(count, 8192) + 16) * 2**-53."""
    m = min(max(int(count), 1), BLOCK_SIZE)
    return (2.0 * m + 16.0) * 2.0 ** -53


def float64_bound(count: int, weight_magnitude: float | None = None) -> tuple[float, float]:
    """``(relative, absolute)``: the float64 kernels' sums (their double-double before its last
    rounding) lie within ``relative * sum(|w * l|) + absolute`` of the exact sum of the exact
    terms ``w * l(y_pred - y_true)`` (terms that overflow on their own aside: inf or nan, as
    IEEE), for a sum over ``count`` elements whose weights' magnitudes sum to
    ``weight_magnitude`` (None: unweighted, ``count``), with u = 2**-53 and
    m = min(count, BLOCK_SIZE):

    - each term carries its own rounding error (csrc/losses.h, "exact element terms": TwoSum
      for the difference, fma for the products' errors): ``x + xe`` within 16 u**2 of the
      exact term (the dropped second-order pieces and the roundings of the error terms);
    - a lane adds at most m terms by TwoSum, whose errors (each below u times the lane's
      running sum, at most u * sum(|x|) of the lane) are added with the terms' own errors in
      plain float64: at most m additions, (m - 1) u of the sum of their magnitudes, and two
      roundings per term where an addition's error meets the term's error terms (unweighted:
      block_template.h ACCUMULATE_P), below (m + 17) m u**2 of sum(|w * l|) (Ogita, Rump and
      Oishi, "Accurate sum and dot product", SIAM J. Sci. Comput. 26 (2005), Sum2's proof);
    - the lanes and the blocks are combined in double-double (fewer than 64 levels, each
      within 4 u**2 of its sum's magnitude): under 1024 u**2;
    - an error term that falls below 2**-1022 is rounded to the subnormals' grid (2**-1074)
      before the weight multiplies it: an absolute (|w| + 1) 2**-1072 per element at the most
      (its fmas' roundings there, each at most 2**-1075, times the weight).

    So relative = (m (m + 17) + 1024) u**2 (1.003 * 2**-80 at the most) and absolute =
    (sum(|w|) + count) * 2**-1072.  int64/uint64 operands reach the kernels as their exact
    difference's rounded value and its rounding error (fastl2._operands.exact_difference,
    against zeros before), which the exact terms carry as they carry TwoSum's."""
    m = min(max(int(count), 1), BLOCK_SIZE)
    count = max(int(count), 1)
    weights = float(count) if weight_magnitude is None else float(weight_magnitude)
    return (m * (m + 17) + 1024) * 2.0 ** -106, (weights + count) * 2.0 ** -1072


def certain(value: float, count: int) -> bool:
    """Whether every real within ``float32_bound(count)`` (relative) of ``value`` rounds to the
    same float32 (nan and inf are certain: they come from nan or inf inputs, or overflow)."""
    if not math.isfinite(value):
        return True
    margin = abs(value) * float32_bound(count)
    with np.errstate(over="ignore"):
        return bool(np.float32(value - margin) == np.float32(value + margin))


def certain_many(values: np.ndarray, count: int, bound: float | None = None) -> np.ndarray:
    """``certain`` for each element of a 1-d float64 array of outputs reduced from ``count``
    elements each (or within ``bound``, relative, of their exact values), in chunks: few
    temporaries."""
    bound = float32_bound(count) if bound is None else bound
    result = np.empty(values.shape, bool)
    step = 1 << 12  # (its temporaries: some 70 KB)
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, values.size, step):
            chunk = values[start:start + step]
            margin = np.abs(chunk) * bound
            low = (chunk - margin).astype(np.float32)
            high = (chunk + margin).astype(np.float32)
            result[start:start + step] = (low == high) | ~np.isfinite(chunk)
    return result


#: csrc/fastl2.h FL2_CONDITION: the condition number up to which weighted float64 results
#: are certified (weights of one sign: always; their condition number is 1).
CONDITION = 1024.0
_DD_ERR = 2.0 ** -100  # (a double-double operation's relative error, generously)
_SLACK = 1.0 + 2.0 ** -40
_RANGE_LOW, _RANGE_HIGH = 2.0 ** -900, 2.0 ** 900  # (where the double-double steps are exact)
#: csrc/finish.c: loss sums outside [2**-500, 2**500] are scaled by 2**600 or 2**-600 first.
_SCALE_BELOW, _SCALE_ABOVE, _SCALE_BY, _SCALED_ABS = 2.0 ** -500, 2.0 ** 500, 600, 2.0 ** -580


def finish_float64(loss, weights, loss_lo, weights_lo, count: int, weighted: bool, by_weights: bool,
                   divisor=1.0, root: bool = False, divide_by: float = 1.0, scale: float = 1.0):
    """The float64 results of sums given as double-doubles (``loss + loss_lo``, ``weights +
    weights_lo``: float64 scalars or arrays of one output each, as the backends' ``run`` and
    ``run_strided`` give them), and whether each is certainly the exact value of the inputs
    rounded once: ``(values, certain)`` (float64 and bool, arrays or NumPy scalars).

    The value is ``scale * (loss / D) / divide_by``, rooted with ``root``, where D is the
    weight sum (``by_weights``: "weighted_mean") or ``divisor`` (exact: the count for "mean",
    1 for "sum"); ``scale`` is the L2 penalty's lam.  It is formed in double-double (the
    quotient ``q + (r + lo - q W_lo) / W`` with ``r = loss - q W`` exact; the root
    ``s + (Q - s**2) / (2 s)``; products by TwoProduct; each within 2**-100 of its value),
    and the margin around it is what the sums may differ from the exact sums
    (``float64_bound(count)``: relative ``rel * sum(|w l|)``, with ``sum(|w l|) <= C |sum|``
    and ``sum(|w|) <= C |W|`` for C = ``CONDITION`` where ``weighted`` (1 otherwise: terms of one
    sign), and absolute ``(sum(|w|) + count) 2**-1072``), carried through the quotient (first
    order: ``(e_S + |Q| e_W) / |W|``, times 1 + 2**-40 for what is dropped), halved by the
    root, plus the double-double's own error.  The value is certain when every real within
    that margin rounds to the same float64 (it is then the double-double's rounding), or when
    it is inf or nan (csrc/finish.c says why).  A loss sum outside [2**-500, 2**500] is scaled
    by 2**600 or 2**-600 first (exactly; the absolute part of the margin with it), and the value
    scaled back at the end.  It is not certain where the scaled sum, the weight sum or the
    quotient lies outside [2**-900, 2**900] in magnitude (the products' error terms would reach
    the subnormals), where the value is subnormal or past the range, or where a loss sum is 0
    (each term below 2**-1075 and the sum of many perhaps not: certain only for an unweighted
    mean, whose mean is below it too); there the value is the plain quotient (``loss / D``,
    rooted), for the caller's exact path.

    csrc/finish.c (``fl2_finish_f64``, without ``divide_by``) is the same in C: the same
    operations, so the same values and the same decisions (tests/test_float64_rounding.py
    checks both against each other and against exact rationals)."""
    sh, sl, wh, wl = (np.asarray(a, dtype=np.float64) for a in (loss, loss_lo, weights, weights_lo))
    dh = wh if by_weights else np.float64(divisor)
    dl = wl if by_weights else np.float64(0.0)
    with np.errstate(all="ignore"):
        q = sh / dh
        plain = q / divide_by if divide_by != 1.0 else q
        plain = plain * scale if scale != 1.0 else plain
        if root:
            plain = np.where(plain >= 0.0, np.sqrt(np.abs(plain)), np.where(np.isnan(plain), plain, np.nan))
        finite = np.isfinite(q)
        condition = CONDITION if weighted else 1.0
        rel = float64_bound(count)[0] * condition * _SLACK
        magnitude = condition * np.abs(wh) * _SLACK if weighted else float(count)
        e_abs = (magnitude + float(count)) * 2.0 ** -1072
        # a loss sum far from 1 scaled by 2**k (exactly; even, for the root), the result back
        k = np.where(np.abs(sh) < _SCALE_BELOW, _SCALE_BY, np.where(np.abs(sh) > _SCALE_ABOVE, -_SCALE_BY, 0))
        hs, ls = np.ldexp(sh, k), np.ldexp(sl, k)
        e_sum = rel * np.abs(hs) + np.where(k < 0, _SCALED_ABS, np.ldexp(e_abs, k))
        e_div = rel * np.abs(dh) if by_weights else 0.0
        qs = hs / dh
        ok = finite & _in_range(hs) & _in_range(dh) & _in_range(qs)
        p, pe = _two_product(qs, dh)
        r = (hs - p) - pe  # (exact: the remainder of a rounded quotient)
        h, l = _fast_two_sum(qs, ((r + ls) - qs * dl) / dh)
        e = (e_sum + np.abs(qs) * e_div) / (np.abs(dh) * (1.0 - 2.0 ** -50)) * _SLACK + _DD_ERR * np.abs(qs)
        if divide_by != 1.0:  # (h + l) / divide_by, as the quotient above with W_lo = 0
            q2 = h / divide_by
            p, pe = _two_product(q2, np.full_like(q2, divide_by))
            h, l = _fast_two_sum(q2, (((h - p) - pe) + l) / divide_by)
            e = e / divide_by * _SLACK + _DD_ERR * np.abs(h)
            ok &= _in_range(h)
        if scale != 1.0:  # scale * (h + l)
            p, pe = _two_product(h, np.full_like(h, scale))
            h, l = _fast_two_sum(p, pe + l * scale)
            e = e * scale * _SLACK + _DD_ERR * np.abs(h)
            ok &= _in_range(h)
        if root:
            negative = ok & (h < 0.0)
            sure_negative = negative & (-h - np.abs(l) > e)
            ok &= (h > 0.0) & (e <= 2.0 ** -40 * h)
            rh = np.sqrt(np.abs(h))
            p, pe = _two_product(rh, rh)
            h, l = _fast_two_sum(rh, (((h - p) - pe) + l) / (2.0 * rh))
            e = e / (2.0 * rh) * (1.0 + 2.0 ** -38) + _DD_ERR * rh
        ok &= _in_range(h) & _rounds_to(h, l, e)
        h = np.ldexp(h, -k // 2 if root else -k)
        ok &= (np.abs(h) >= 2.0 ** -1022) & np.isfinite(h)  # (subnormal or past the range: rounded)
        values = np.where(ok, h, plain)
        certain = ok | ~finite
        if root:
            values = np.where(sure_negative, np.nan, values)
            certain |= sure_negative
        zero = finite & (sh == 0.0)
        if not weighted and not by_weights and not root and divisor == count and scale == 1.0 and divide_by == 1.0:
            certain |= zero
    return values, certain


def finish_float64_scalar(loss: float, weights: float, loss_lo: float, weights_lo: float, count: int,
                          weighted: bool, by_weights: bool, divisor: float = 1.0, root: bool = False,
                          divide_by: float = 1.0, scale: float = 1.0) -> tuple[float, bool]:
    """``finish_float64`` of one output, as Python ``(float, bool)``: csrc/finish.c's where
    the compiled module is built (0.1 us against some 15 us of NumPy scalars) and there is no
    ``divide_by``, else ``finish_float64``'s (the same decisions: the same bits)."""
    if divide_by == 1.0:
        core = _compiled()
        if core is not None:
            return core.finish_float64(loss, weights, loss_lo, weights_lo, count, weighted, by_weights,
                                       divisor, root, scale)
    value, certain = finish_float64(loss, weights, loss_lo, weights_lo, count, weighted, by_weights, divisor,
                                    root, divide_by, scale)
    return float(value), bool(certain)


def certain_weight_sum(hi: float, lo: float, count: int) -> bool:
    """Whether ``hi``, a float64 kernel's weight sum (``hi + lo`` its double-double), is
    certainly the exact weight sum rounded once: ``finish_float64``'s certificate of a "sum",
    with the weights' margins (a condition number Σ|w| / |Σw| up to ``CONDITION``); the
    gradient of a "weighted_mean" divides by it (csrc: _core_fast_paths.pxi
    certain_weight_sum, the same test)."""
    value, certain = finish_float64_scalar(hi, 0.0, lo, 0.0, count, True, False, 1.0)
    return certain and value == hi


def exact_weight_sum(weights, rest: bool = False):
    """The exact sum of ``weights`` (any shape and real dtype; a broadcast view is summed as it
    reads) rounded once to float64, to nearest: ``math.fsum`` of the float64 values (exact for
    every float dtype; correctly rounded, Shewchuk's algorithm as CPython implements it), Python
    integers for integer dtypes (exact past 2**53), in chunks of _CHUNK elements.  With
    ``rest``: ``(sum, rest)``, the rest the exact sum's remainder ``W - sum`` rounded once (0
    where the sum is infinite): the double-double a float64 gradient divides by
    (csrc/losses.h fl2_grad_exact)."""
    w = np.asarray(weights)

    def pieces():
        return (np.asarray(w[index]).reshape(-1) for index in _chunks(w.shape))

    def rounded(total):  # an exact int or Fraction: (rounded, its remainder rounded)
        try:
            hi = float(total)
        except OverflowError:
            return (math.inf if total > 0 else -math.inf), 0.0
        return hi, (float(total - Fraction(hi)) if math.isfinite(hi) else 0.0)

    if w.dtype.kind in "iu":
        hi, lo = rounded(sum(sum(piece.tolist()) for piece in pieces()))  # (ties to even)
        return (hi, lo) if rest else hi
    try:
        hi = math.fsum(x for piece in pieces() for x in piece.astype(np.float64).tolist())
        if not rest:
            return hi
        lo = 0.0
        if math.isfinite(hi):
            lo = math.fsum(itertools.chain((x for piece in pieces() for x in piece.astype(np.float64).tolist()),
                                           (-hi,)))
        return hi, lo
    except OverflowError:  # (a partial sum past float64's range: the total may not be)
        values = [x for piece in pieces() for x in piece.astype(np.float64).tolist()]
        special = [x for x in values if not math.isfinite(x)]
        if special:  # (nan or inf: IEEE's sum, which no finite weight changes, in any order)
            total = float(np.sum(special))
            return (total, 0.0) if rest else total
        total = sum((Fraction(x) for x in values), Fraction(0))
        hi, lo = rounded(total)
        return (hi, lo) if rest else hi


def _in_range(x):
    a = np.abs(x)
    return (a >= _RANGE_LOW) & (a <= _RANGE_HIGH)


def _fast_two_sum(a, b):
    """(s, e): s = fl(a + b), e = a + b - s exactly, for |a| >= |b| (Dekker)."""
    s = a + b
    return s, b - (s - a)


def _rounds_to(h, l, e):
    """Whether every real within e of h + l (normalised) rounds to h (csrc/finish.c)."""
    a = np.abs(h)
    b = np.where(h < 0, -l, l)
    up = np.nextafter(a, np.inf) - a
    down = a - np.nextafter(a, 0.0)
    return (b + e < 0.5 * up) & (b - e > -0.5 * down)


# ----------------------------------------------------------------- error-free transformations


def _two_sum(a, b):
    """s + e == a + b exactly, s = fl(a + b) (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a):
    """hi + lo == a, each with at most 26 significant bits (Veltkamp)."""
    c = 134217729.0 * a  # 2**27 + 1
    hi = c - (c - a)
    return hi, a - hi


def _two_product(a, b):
    """p + e == a * b exactly, p = fl(a * b) (Dekker), barring overflow and underflow."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _times(pieces, w):
    """The pieces of sum(pieces) * w."""
    out = []
    for piece in pieces:
        out.extend(_two_product(piece, w))
    return out


def _element_pieces(code: int, y_true, y_pred, weights, param: float):
    """Float64 arrays whose element-wise exact sum is w * l(y_pred - y_true), for float32
    inputs (as float64: every product below is exact, far from overflow and underflow)."""
    d_hi, d_lo = _two_sum(y_pred, -y_true) if y_true is not None else (y_pred, np.zeros_like(y_pred))
    if code == 1 or code == 2:  # |d|: the sign of d is that of d_hi (|d_lo| <= ulp(d_hi) / 2)
        sign = np.where(d_hi < 0, -1.0, 1.0)
        a_hi, a_lo = d_hi * sign, d_lo * sign
    if code == 0:  # d * d = d_hi**2 + 2 d_hi d_lo + d_lo**2
        pieces = [*_two_product(d_hi, d_hi), *_two_product(2.0 * d_hi, d_lo), *_two_product(d_lo, d_lo)]
    elif code == 1:
        pieces = [a_hi, a_lo]
    else:  # Huber: a * a / 2 below delta, delta * (a - delta / 2) from it
        inside = (a_hi < param) | ((a_hi == param) & (a_lo < 0))
        half = [*_two_product(a_hi, a_hi), *_two_product(2.0 * a_hi, a_lo), *_two_product(a_lo, a_lo)]
        half = [0.5 * p for p in half]
        s, e = _two_sum(a_hi, np.full_like(a_hi, -0.5 * param))
        linear = [*_two_product(s, np.full_like(s, param)), *_two_product(e, np.full_like(e, param)),
                  *_two_product(a_lo, np.full_like(a_lo, param))]
        pieces = [np.where(inside, p, 0.0) for p in half] + [np.where(inside, 0.0, p) for p in linear]
    if weights is not None:
        pieces = _times(pieces, weights)
    return pieces


# ------------------------------------------------------------------------- exact sums as integers


def exact_sum(pieces, offsets=None) -> tuple[int, int]:
    """(m, e) with m * 2**e the exact sum of ``pieces[j] * 2**offsets[j]`` over finite float64
    arrays (``offsets``: int64 arrays of the same shapes, or None for 0): each value is an
    integer mantissa times a power of two, and the mantissas of one exponent are added in int64
    (in two 26-bit halves: no overflow below 2**36 values), then the exponents' sums as Python
    integers."""
    if not pieces:
        return 0, 0
    values = np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in pieces])
    shift = None
    if offsets is not None:
        shift = np.concatenate([np.broadcast_to(np.asarray(o, dtype=np.int64), np.shape(p)).ravel()
                                for p, o in zip(pieces, offsets)])
        shift = shift[values != 0]
    values = values[values != 0]
    if not values.size:
        return 0, 0
    fraction, exponent = np.frexp(values)
    mantissa = (fraction * 2.0 ** 53).astype(np.int64)  # exact: |fraction| < 1, 53 bits
    exponent = exponent.astype(np.int64) - 53
    if shift is not None:
        exponent += shift
    lowest = int(exponent.min())
    exponent -= lowest
    total = 0
    # Per exponent, the mantissas' 27-bit high and 26-bit low halves summed by bincount in
    # float64: exact, as no sum of 2**25 halves reaches 2**53.
    step = 1 << 25
    for start in range(0, values.size, step):
        at = exponent[start:start + step]
        part = mantissa[start:start + step]
        high = np.bincount(at, weights=(part >> 26).astype(np.float64))
        low = np.bincount(at, weights=(part & ((1 << 26) - 1)).astype(np.float64))
        for e in np.flatnonzero((high != 0) | (low != 0)).tolist():
            total += ((int(high[e]) << 26) + int(low[e])) << e
    return total, lowest


#: Scaled pieces nearer 0 than this (but not 0) take the per-element path: their products could
#: reach the subnormals, where a product's error is not a float64.
_TINY = 2.0 ** -300


def _difference(y_true, y_pred):
    """d = y_pred - y_true exactly, as float64 (hi, lo) with |lo| <= ulp(hi) / 2, and where that
    fails: float64 operands (or integers up to 2**53) whose difference overflows, and integers
    past 2**53 (a boolean mask; its elements' hi and lo are 0)."""
    bad = np.zeros(np.shape(y_pred), bool)
    arrays = []
    for a in (y_true, y_pred):
        if a is None:
            arrays.append(None)
            continue
        a = np.asarray(a)
        bad |= _wide(a)  # (beyond 2**53 float64 rounds them)
        arrays.append(np.asarray(a, dtype=np.float64))
    t, p = arrays
    if t is None:
        return p.copy(), np.zeros_like(p), bad
    with np.errstate(over="ignore", invalid="ignore"):
        hi, lo = _two_sum(p, -t)
        bad |= ~np.isfinite(hi)
    hi[bad], lo[bad] = 0.0, 0.0
    return hi, lo, bad


def _scaled_pieces(code: int, param: float, y_true, y_pred, weights):
    """Float64 pieces and int64 exponents whose exact sum ``sum(piece * 2**exponent)`` is the
    sum of ``w * l(d)`` over the elements (1-d arrays, weights as float64 of the same shape,
    every value finite), d = y_pred - y_true exact; and a mask of the elements left out of
    them, for ``_element_fraction`` (rare: see below).

    Every element's d is scaled by the power of two that brings it to [1/2, 1) (exactly), so
    that its error-free pieces (TwoSum, TwoProduct) neither overflow nor reach the subnormals,
    whatever the inputs' range; its exponent goes beside them.  An element whose scaled pieces
    would reach 2**-300 (a difference's tail below 2**-300 of it, a Huber delta below 2**-300
    of |d|), or whose difference overflows, or that holds an integer past 2**53, is left out."""
    hi, lo, bad = _difference(y_true, y_pred)
    _, e = np.frexp(hi)
    e = e.astype(np.int64)
    h = np.ldexp(hi, -e)  # (exact: into [1/2, 1); 0 stays 0)
    low = np.ldexp(lo, -e)
    bad |= (np.ldexp(low, e) != lo) | ((low != 0) & (np.abs(low) < _TINY))
    if code == 0 or code == 2:
        square = [*_two_product(h, h), *_two_product(2.0 * h, low), *_two_product(low, low)]
    if code == 0:
        pieces, shift = square, 2 * e
    elif code == 1:  # |d|: the sign of d is that of hi
        sign = np.where(hi < 0, -1.0, 1.0)
        pieces, shift = [h * sign, low * sign], e
    else:  # Huber: a * a / 2 below delta, delta * (a - delta / 2) from it
        a_hi, a_lo = np.abs(hi), np.where(hi < 0, -lo, lo)
        inside = (a_hi < param) | ((a_hi == param) & (a_lo < 0))
        half = np.ldexp(np.full_like(h, param), -e - 1)  # delta / 2, scaled as d
        bad |= ~inside & (np.ldexp(half, e + 1) != param)
        s, s_lo = _two_sum(np.abs(h), -half)
        bad |= ~inside & (s_lo != 0) & (np.abs(s_lo) < _TINY)
        m, k = math.frexp(param)  # delta = m * 2**k
        a_low = np.where(hi < 0, -low, low)  # (the scaled a = |h| + a_low)
        linear = [*_two_product(s, np.full_like(s, m)), *_two_product(s_lo, np.full_like(s, m)),
                  *_two_product(a_low, np.full_like(s, m))]
        pieces = [np.where(inside, x, 0.0) for x in square] + [np.where(inside, 0.0, x) for x in linear]
        shift = np.where(inside, 2 * e - 1, e + k)
    if weights is not None:
        fraction, w_e = np.frexp(weights)  # (w = fraction * 2**w_e exactly)
        pieces = _times(pieces, fraction)
        shift = shift + w_e.astype(np.int64)
    pieces = [np.where(bad, 0.0, x) for x in pieces]
    return pieces, [shift] * len(pieces), bad


def _element_fraction(code: int, param: float, t, p, w) -> Fraction:
    """w * l(p - t) exactly, for one element (Python numbers: floats or ints)."""
    d = abs(Fraction(p) - Fraction(t if t is not None else 0))
    if code == 0:
        value = d * d
    elif code == 1:
        value = d
    else:
        delta = Fraction(param)
        value = d * d / 2 if d < delta else delta * (d - delta / 2)
    return value * Fraction(w) if w is not None else value


def _fraction(m: int, e: int) -> Fraction:
    return Fraction(m << e) if e >= 0 else Fraction(m, 1 << -e)


# ------------------------------------------------------------------------------ correct rounding


def round_fraction(q: Fraction, dtype) -> float:
    """The rational ``q`` rounded to nearest, ties to even, in float32 or float64 (or float16,
    bfloat16) (a Python float holding that value; inf past the largest finite value)."""
    precision, emin, emax = _format(dtype)
    if q == 0:
        return 0.0
    negative = q < 0
    num, den = abs(q.numerator), q.denominator
    e = num.bit_length() - den.bit_length()  # 2**e <= num/den < 2**(e + 1) after the fix
    if (num << max(0, -e)) < (den << max(0, e)):
        e -= 1
    shift = precision - 1 - max(e, emin)  # the last place's exponent is -shift
    if shift >= 0:
        num <<= shift
    else:
        den <<= -shift
    m, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and m & 1):
        m += 1
    if m.bit_length() + (-shift) > emax + 1:
        value = math.inf
    else:
        value = math.ldexp(float(m), -shift)  # exact: m has at most precision + 1 bits
    return -value if negative else value


def round_sqrt(q: Fraction, dtype) -> float:
    """sqrt(q) for a rational q >= 0, rounded to nearest, ties to even."""
    precision, emin, _ = _FORMATS[np.dtype(dtype)]
    if q == 0:
        return 0.0
    num, den = q.numerator, q.denominator
    e = num.bit_length() - den.bit_length()
    if (num << max(0, -e)) < (den << max(0, e)):
        e -= 1
    shift = precision - 1 - max(e // 2, emin)  # sqrt(q) * 2**shift has `precision` bits
    scaled = Fraction(num, den) * Fraction(4) ** shift if shift >= 0 else Fraction(num, den) / Fraction(4) ** -shift
    m = math.isqrt(scaled.numerator // scaled.denominator)  # floor(sqrt(scaled))
    # round: compare scaled with (m + 1/2)**2
    twice = 4 * scaled - (2 * m + 1) ** 2
    if twice > 0 or (twice == 0 and m & 1):
        m += 1
    try:
        value = math.ldexp(float(m), -shift)  # (exact: m has at most precision + 1 bits)
    except OverflowError:  # (the root of a sum past float64's range)
        return math.inf
    return value if value <= float(np.finfo(dtype).max) else math.inf


# ---------------------------------------------------------------------------- the exact results


def _as_float64(array):
    return None if array is None else np.asarray(array, dtype=np.float64)


#: Elements per chunk of the slow path (its float64 pieces: some 100 bytes an element, 1.6 MB).
_CHUNK = 1 << 14
#: Elements per group of whole outputs in the slow path of many outputs (copied as float64,
#: then int64: some 50 bytes an element, 0.4 MB).
GROUP = 1 << 13


def _chunks(shape: tuple[int, ...]):
    """Index tuples that cut an array of ``shape`` into pieces of about _CHUNK elements."""
    if not shape:
        yield ()
        return
    inner = math.prod(shape[1:])
    if inner > _CHUNK and len(shape) > 1:
        for i in range(shape[0]):
            for rest in _chunks(shape[1:]):
                yield (i,) + rest
        return
    step = max(1, _CHUNK // max(inner, 1))
    for start in range(0, shape[0], step):
        yield (slice(start, start + step),)


def _scale(*arrays) -> int:
    """A k such that every value of the (finite, float64) arrays is an integer multiple of
    2**k: 0 or -24 where that holds (integers; float32 values in [0, 1) of a 2**-24 grid:
    one cheap check each), else the lowest set bit of any of their significands."""
    for k in (0, -24):
        with np.errstate(over="ignore", invalid="ignore"):
            if all(np.array_equal(scaled := a * 2.0 ** -k if k else a, np.trunc(scaled)) for a in arrays):
                return k
    lowest = None
    for a in arrays:
        values = a[a != 0]
        if not values.size:
            continue
        fraction, exponent = np.frexp(values)
        mantissa = np.abs((fraction * 2.0 ** 53).astype(np.int64))  # (exact: 53 bits)
        low = np.frexp((mantissa & -mantissa).astype(np.float64))[1] - 1  # (its lowest set bit)
        k = int(np.min(exponent.astype(np.int64) - 53 + low))
        lowest = k if lowest is None else min(lowest, k)
    return 0 if lowest is None else lowest


def dyadic_sums(code: int, y_true, y_pred, weights, axis=None):
    """The exact loss sums and weight sums along ``axis`` (None: all) of float64 operands as
    integers times powers of two, ``(loss_sums, loss_exponent, weight_sums or None,
    weight_exponent)`` (int64 arrays or scalars), computed in int64 arithmetic: when the
    inputs, scaled by a power of two, are integers small enough that no product or sum
    overflows (well below 2**62); None when not, or for a loss other than squared and absolute
    error.  The slow path's fast case: data of bounded granularity (quantized values, pixels,
    float32 values in [0, 1)), whose results often sit exactly on a float32 tie."""
    if code not in (0, 1):
        return None
    for a in (y_true, y_pred, weights):
        if a is not None and a.size and not np.isfinite(a).all():
            return None
    ys = [a for a in (y_true, y_pred) if a is not None]
    k_y = _scale(*ys)
    k_w = _scale(weights) if weights is not None else 0
    if not (-900 < k_y < 900 and -900 < k_w < 900):
        return None  # (a granularity this fine or coarse: no int64 sum holds the data)
    limit = 2.0 ** 61
    y_max = max((float(np.max(np.abs(a))) for a in ys if a.size), default=0.0) * 2.0 ** -k_y
    w_max = float(np.max(np.abs(weights))) * 2.0 ** -k_w if weights is not None and weights.size else 1.0
    d_max = 2 * y_max
    term_max = (d_max * d_max if code == 0 else d_max) * w_max
    n = max(y_pred.size if axis is None else y_pred.shape[axis], 1)
    if not (d_max < 2.0 ** 30 and term_max * n < limit and w_max * n < limit):
        return None
    def as_int(a, k):  # (exact: integers below 2**61; a power of two scales exactly)
        return (a if k == 0 else a * 2.0 ** -k).astype(np.int64)

    d = as_int(y_pred, k_y) - (as_int(y_true, k_y) if y_true is not None else 0)
    term = d * d if code == 0 else np.abs(d)
    loss_exponent = 2 * k_y if code == 0 else k_y
    weight_sums = None
    if weights is not None:
        w = as_int(weights, k_w)
        term = term * w
        loss_exponent += k_w
        weight_sums = w.sum(axis)
    return term.sum(axis), loss_exponent, weight_sums, k_w


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """The sum of two exact values m * 2**e."""
    (ma, ea), (mb, eb) = a, b
    e = min(ea, eb)
    return (ma << (ea - e)) + (mb << (eb - e)), e


def exact_sums(code: int, param: float, y_true, y_pred, weights) -> tuple[Fraction, Fraction, int]:
    """The exact sum of w * l over all elements, the exact weight sum (the count without
    weights) and the count (``dyadic_totals`` as Fractions)."""
    loss, weight, count = dyadic_totals(code, param, y_true, y_pred, weights)
    return _fraction(*loss), (_fraction(*weight) if weights is not None else Fraction(count)), count


def _plain(a) -> np.ndarray:
    """An operand as float64, or as it is where float64 would round it (int64 or uint64
    values past 2**53)."""
    a = np.asarray(a)
    if a.dtype.kind in "iu" and a.dtype.itemsize >= 8 and _wide(a).any():
        return a
    return np.asarray(a, dtype=np.float64)


def _dyadic(q: Fraction) -> tuple[int, int]:
    """A dyadic rational as (m, e), m * 2**e."""
    return q.numerator, -(q.denominator.bit_length() - 1)


def _wide(a: np.ndarray) -> np.ndarray:
    """Where an integer array holds values float64 would round (|x| > 2**53)."""
    if a.dtype.kind not in "iu":
        return np.zeros(a.shape, bool)
    return (a > 2 ** 53) | (a < -2 ** 53) if a.dtype.kind == "i" else a > 2 ** 53


def dyadic_totals(code: int, param: float, y_true, y_pred, weights):
    """``((m, e), (m_w, e_w), count)``: the exact sum of w * l(y_pred - y_true) over all
    elements as m * 2**e, the exact weight sum as m_w * 2**e_w ((0, 0) without weights) and the
    element count, for finite operands of one shape (weights broadcast to it) of any real dtype
    (float16 to float64, integers of any width, bool), in chunks of about _CHUNK elements (the
    memory of the pieces stays bounded).  Chunks of data of bounded granularity are summed in
    int64 (``dyadic_sums``); the others by csrc/exact.c's long accumulator where the compiled
    module is built, else as error-free pieces (``_scaled_pieces``); chunks holding integers
    past 2**53 as pieces; the rare elements either leaves out one by one in Fractions."""
    with np.errstate(all="ignore"):  # (the pieces' checks catch what under- or overflows)
        return _dyadic_totals(code, param, y_true, y_pred, weights)


def _compiled():
    """The compiled module (its exact sums: csrc/exact.c), or None where it is not built."""
    try:
        from . import _core
    except ImportError:
        return None
    return _core


def _from_bins(bins: np.ndarray) -> int:
    """The integer sum(bins[k] * 2**(32 k)) of csrc/exact.c's normalised bins (all but the
    last in [0, 2**32))."""
    return (int.from_bytes(bins[:-1].astype("<u4").tobytes(), "little")
            + (int(bins[-1]) << (32 * (bins.size - 1))))


def _dyadic_totals(code: int, param: float, y_true, y_pred, weights):
    y_pred = np.asarray(y_pred)
    count = int(y_pred.size)
    loss, weight = (0, 0), (0, 0)
    core = _compiled()
    try_dyadic = True
    if core is not None:
        loss_bins, weight_bins = np.zeros((1, core.EXACT_BINS), np.int64), np.zeros((1, core.EXACT_BINS), np.int64)
    for index in _chunks(y_pred.shape):
        t, p, w = (None if a is None else _plain(a[index]) for a in (y_true, y_pred, weights))
        if _zero_terms(t, p) and (w is None or w.dtype == _F64 or not _wide(w).any()):
            # (every difference 0: no loss, only weights; the common case of a certificate
            # that declines a zero sum, y_pred equal to y_true, at the cost of a comparison)
            if w is not None:
                weight = _add(weight, exact_sum([np.asarray(w, dtype=np.float64)]))
            continue
        if not any(a is not None and a.dtype.kind in "iu" for a in (t, p, w)):
            # (the int64 sums where the data's granularity allows them; after one chunk that
            # does not, the compiled sums for the rest: both exact, so the same total)
            dyadic = dyadic_sums(code, t, p, w) if try_dyadic or core is None else None
            try_dyadic = dyadic is not None
            if dyadic is not None:
                loss = _add(loss, (int(dyadic[0]), dyadic[1]))
                if w is not None:
                    weight = _add(weight, (int(dyadic[2]), dyadic[3]))
                continue
            if core is not None:  # (the compiled long accumulator: the same exact sums, faster)
                flat = [None if a is None else np.ascontiguousarray(a.reshape(1, -1), np.float64) for a in (t, p, w)]
                bad = np.zeros(flat[1].shape, np.uint8)
                if core.exact_sums(code, param, flat[0], flat[1], flat[2], loss_bins, weight_bins, bad):
                    flat = [None if a is None else a[0] for a in flat]
                    left = np.flatnonzero(bad)  # (differences that overflow)
                    pick = lambda a: [None] * left.size if a is None else a[left].tolist()  # noqa: E731
                    loss = _add(loss, _dyadic(sum((_element_fraction(code, param, *e) for e in zip(
                        pick(flat[0]), pick(flat[1]), pick(flat[2]))), Fraction(0))))
                    if w is not None:
                        weight = _add(weight, exact_sum([flat[2][left]]))
                continue
        t, p = (None if a is None else a.ravel() for a in (t, p))
        w_plain = w_bad = None
        if w is not None:
            w_plain = w.ravel()
            w_bad = _wide(w_plain)
            w = np.where(w_bad, 0.0, np.asarray(w_plain, dtype=np.float64))
        pieces, shifts, bad = _scaled_pieces(code, param, t, p, w)
        if w_bad is not None and w_bad.any():
            pieces = [np.where(w_bad, 0.0, x) for x in pieces]
            bad = bad | w_bad
        loss = _add(loss, exact_sum(pieces, shifts))
        left = np.flatnonzero(bad)
        if left.size:  # (Python numbers: an int64 past 2**53 stays exact)
            pick = lambda a: [None] * left.size if a is None else a[left].tolist()  # noqa: E731
            total = sum((_element_fraction(code, param, ti, pi, wi)
                         for ti, pi, wi in zip(pick(t), pick(p), pick(w_plain))), Fraction(0))
            loss = _add(loss, _dyadic(total))
        if w is not None:
            weight = _add(weight, exact_sum([w]))
            if w_bad.any():
                weight = _add(weight, (sum(w_plain[w_bad].tolist()), 0))
    if core is not None:
        loss = _add(loss, (_from_bins(loss_bins[0]), core.EXACT_LOW))
        weight = _add(weight, (_from_bins(weight_bins[0]), core.EXACT_LOW))
    return _normal(loss), _normal(weight), count


def _zero_terms(t, p) -> bool:
    """Whether every element's difference ``p - t`` (or ``p``, without ``t``) is exactly 0
    (operands as ``_plain`` gives them)."""
    if t is None:
        return not np.count_nonzero(p)
    return t.dtype == p.dtype and bool(np.array_equal(t, p))


def dyadic_totals_rows(code: int, param: float, y_true, y_pred, weights) -> list:
    """``dyadic_totals`` of each row of 2-d operands (rows, count) of one shape, as a list of
    ``(loss, weight)`` pairs of (m, e): many short rows (the outputs of an axis) in a few
    calls of the compiled sums, in groups of rows of at most _CHUNK elements; row by row where
    the compiled module is not built, or a row holds an integer past 2**53 or an element the
    compiled sums leave out."""
    rows, count = np.shape(y_pred)
    core = _compiled()
    arrays = [None if a is None else np.asarray(a) for a in (y_true, y_pred, weights)]
    if core is None or count == 0 or any(a is not None and a.dtype.kind in "iu" and a.dtype.itemsize >= 8
                                         and _wide(a).any() for a in arrays):
        return [dyadic_totals(code, param, *(None if a is None else a[r] for a in arrays))[:2] for r in range(rows)]
    out = []
    step = max(1, _CHUNK // count)
    with np.errstate(all="ignore"):
        for start in range(0, rows, step):
            part = [None if a is None else np.ascontiguousarray(a[start:start + step], np.float64) for a in arrays]
            k = part[1].shape[0]
            loss_bins, weight_bins = np.zeros((k, core.EXACT_BINS), np.int64), np.zeros((k, core.EXACT_BINS), np.int64)
            bad = np.zeros(part[1].shape, np.uint8)
            core.exact_sums(code, param, part[0], part[1], part[2], loss_bins, weight_bins, bad)
            redo = bad.any(axis=1)
            for r in range(k):
                if redo[r]:
                    out.append(dyadic_totals(code, param, *(None if a is None else a[start + r] for a in arrays))[:2])
                else:
                    out.append((_normal((_from_bins(loss_bins[r]), core.EXACT_LOW)),
                                _normal((_from_bins(weight_bins[r]), core.EXACT_LOW))))
    return out


def _normal(value: tuple[int, int]) -> tuple[int, int]:
    """(m, e) with m odd (or (0, 0)): the same value, its integer as short as it can be."""
    m, e = value
    if m == 0:
        return 0, 0
    zeros = (m & -m).bit_length() - 1
    return m >> zeros, e + zeros


def reduce_exact(loss: Fraction, weight: Fraction, count: int, reduction: str, root: bool, dtype,
                 divide_by: float = 1.0):
    """The exact reduced value rounded once to ``dtype`` (a Python float): the sum, or the
    sum divided by the count ("mean") or the weight sum ("weighted_mean"), or its root, divided
    by ``divide_by`` (fastl2._passes.planned_loss); None where the exact weight sum is 0
    (weights of mixed sign whose float64 sum is not: there is no exact value, and the caller
    keeps its float64 one)."""
    if divide_by != 1.0:
        loss = loss / Fraction(divide_by)
    if reduction == "mean":
        loss = loss / count
    elif reduction == "weighted_mean":
        if weight == 0:
            return None
        loss = loss / weight
    if root:
        return round_sqrt(loss, dtype) if loss >= 0 else math.nan
    return round_fraction(loss, dtype)


def is_midpoint(value: float, dtype) -> bool:
    """Whether the float ``value`` lies exactly halfway between two neighbouring values of the
    half-precision ``dtype`` (float16, bfloat16, or their names), or halfway past its largest
    (toward inf)."""
    precision, emin, _ = _format(dtype)
    if value == 0.0 or not math.isfinite(value):
        return False
    exponent = math.frexp(abs(value))[1] - 1  # 2**exponent <= |value| < 2**(exponent + 1)
    last = max(exponent, emin) - (precision - 1)  # the exponent of dtype's last place there
    halves = math.ldexp(abs(value), 1 - last)  # |value| in half units of that place (exact)
    return halves.is_integer() and int(halves) % 2 == 1


def _near_midpoints(values32: np.ndarray, half, ulps: int) -> np.ndarray:
    """Where the float32 ``values32`` lie within ``ulps`` float32 ulps of a midpoint between
    two neighbouring values of the half-precision ``half`` (or on one), by element.  By the
    bits where the half's last place is a fixed number of float32 places (bfloat16: 16
    everywhere; float16: 13 from its smallest normal, 2**-14, on), by the values below."""
    precision, emin, _ = _format(half)
    bits = np.ascontiguousarray(values32, _F32).view(np.uint32)
    dropped = 24 - precision  # float32 places below the half's last one, where both are normal
    low = bits & np.uint32((1 << dropped) - 1)
    near = (low - np.uint32((1 << (dropped - 1)) - ulps)) <= np.uint32(2 * ulps)  # (unsigned)
    magnitude = bits & np.uint32(0x7FFFFFFF)
    near &= magnitude < np.uint32(0x7F800000)  # (inf and NaN: none)
    if emin > -126:  # float16: below its smallest normal, the last place is fixed, 2**-24
        small = np.flatnonzero((magnitude < np.uint32((emin + 127) << 23)) & (magnitude > 0))
        if small.size:
            v = np.abs(values32.reshape(-1)[small].astype(_F64))
            halves = np.ldexp(v, 1 - (emin - (precision - 1)))  # in halves of 2**-24 (exact)
            distance = np.abs(halves - (2.0 * np.floor(halves / 2.0) + 1.0))
            spacing = np.spacing(v.astype(_F32)).astype(_F64)
            near.reshape(-1)[small] = distance <= ulps * np.ldexp(spacing, 1 - (emin - (precision - 1)))
    return near.reshape(np.shape(values32))


def half_elements(code: int, param: float, y_true, y_pred, weights, values32: np.ndarray,
                  half: str, divide_by: float = 1.0, scale: float = 1.0) -> np.ndarray:
    """Element losses ``scale * w * l(d) / divide_by`` of the arrays (NumPy, any layout;
    weights broadcast to y_pred's shape), each the exact value rounded once to the
    half-precision dtype named ``half`` ("float16", "bfloat16"), as a float32 array (C order,
    each a value of ``half``), from ``values32``: the same element losses in float32, each
    within a few float32 ulps of the exact one.

    Rounding ``values32`` again is right unless an element and its exact value lie on two
    sides of a midpoint of the half grid, or on one.  Every midpoint is a float32 (and a
    float64): an element rounded to float64, then to float32 (times a power of two) keeps its
    exact value's side (rounding is monotonic) or lands on the midpoint, so only elements on a
    midpoint need their exact value (about one in 2**13 for float16, 2**16 for bfloat16, more
    where the values have few bits); an element divided by a ``divide_by`` other than a power
    of two after its rounding may cross one, so there every element within four float32 ulps
    of a midpoint does (many more: the time of a Python pass).  Those get the side of the
    midpoint their exact value lies on (error-free pieces, _exact_signs)."""
    out = half_values_float32(values32, half)
    exact_division = math.frexp(divide_by)[0] == 0.5  # (a power of two)
    flagged = np.flatnonzero(_near_midpoints(values32, half, 0 if exact_division else 4))
    if flagged.size:
        at = np.unravel_index(flagged, values32.shape)
        shape = np.shape(y_pred)
        pick = lambda a: None if a is None else _as_float64(np.broadcast_to(a, shape)[at])  # noqa: E731
        pieces = _element_pieces(code, pick(y_true), pick(y_pred), pick(weights), param)
        # The midpoint m of each (or the one it lies nearest), and the sign of the exact
        # value - m = (sum of pieces) * scale / divide_by - m, from the error-free pieces of
        # scale * pieces - m * divide_by (scale: 0, 1/2 or 1, exact).
        v32 = values32.reshape(-1)[flagged].astype(_F32)
        m = _nearest_midpoints(v32, half)
        p, e = _two_product(m, np.full_like(m, float(divide_by)))
        sign = _exact_signs(np.stack([q * float(scale) for q in pieces] + [-p, -e], axis=1))
        # on the midpoint: ties to even; beside it: the half on that side (m nudged by 2**-14
        # of itself, less than half the way to either neighbour, float16's included, and more
        # than a float32 step, bfloat16's subnormals included, rounds there)
        nudged = (m * (1.0 + sign * np.sign(m) * 2.0**-14)).astype(_F32)
        out.reshape(-1)[flagged] = half_values_float32(nudged, half)
    return out


def _nearest_midpoints(values32: np.ndarray, half) -> np.ndarray:
    """The midpoint of the half grid nearest each float32 (finite, non-zero), as float64."""
    precision, emin, _ = _format(half)
    v = values32.astype(_F64)
    exponent = np.frexp(np.abs(v))[1] - 1
    last = np.maximum(exponent, emin) - (precision - 1)
    halves = np.ldexp(np.abs(v), 1 - last)
    odd = 2.0 * np.floor(halves / 2.0) + 1.0
    return np.sign(v) * np.ldexp(odd, last - 1)


def _exact_signs(rows: np.ndarray) -> np.ndarray:
    """The sign (-1.0, 0.0, 1.0) of each row's exact sum (finite float64 values): TwoSum
    passes over the row (error-free: the exact sum stays the same) until none changes it,
    when the values no longer overlap and the last non-zero one has the sum's sign (Rump,
    Ogita and Oishi, "Accurate floating-point summation part I", SIAM J. Sci. Comput. 31(1),
    2008: distillation)."""
    rows = rows[:, np.any(rows != 0.0, axis=0)]  # (columns of zeros only: none)
    active = np.arange(rows.shape[0])
    # Each pass takes the rows the one before changed.  Finite rows settle in a few passes;
    # the bound is for what never settles (a NaN compares unequal to itself): no hang.
    passes = 0
    while active.size and rows.shape[1] > 1 and passes < 4096:
        part = rows[active]
        before = part.copy()
        for i in range(1, part.shape[1]):
            part[:, i], part[:, i - 1] = _two_sum(part[:, i], part[:, i - 1])
        rows[active] = part
        active = active[np.any(part != before, axis=1)]
        passes += 1
    sign = np.zeros(rows.shape[0])
    for i in range(rows.shape[1]):  # (the last non-zero value decides)
        sign = np.where(rows[:, i] != 0.0, np.sign(rows[:, i]), sign)
    return sign


def half_result(plan, value32: float, half, divide_by: float = 1.0) -> float:
    """The reduced result of ``plan`` rounded once to the half-precision ``half`` (float16 or
    bfloat16, or its name), from ``value32``, the same result correctly rounded to float32 (a
    Python float).

    Rounding ``value32`` again is right unless it lies on a midpoint of the half grid: every
    such midpoint is a float32, so rounding to float32 keeps the exact value's side of any other
    (rounding is monotonic), but may land on the midpoint itself. There the exact value decides
    (``exact_sums``), as it must in about one result in 2**13 (float16) or 2**16 (bfloat16)."""
    if not is_midpoint(value32, half):
        return round_fraction(Fraction(value32), half) if math.isfinite(value32) else value32
    y_true, y_pred, weights = plan.arrays
    loss, weight, count = exact_sums(plan.loss.code, plan.param, y_true, y_pred, weights)
    exact = reduce_exact(loss, weight, count, plan.reduction, False, half, divide_by)
    return round_fraction(Fraction(value32), half) if exact is None else exact


def exact_result(plan, value: float, root: bool = False, divide_by: float = 1.0):
    """The reduced result of ``plan`` (float32 operands; fastl2._plan.Plan), exact and rounded
    once to the plan's result dtype, as a NumPy scalar (divided by ``divide_by`` first,
    reduce_exact); ``value`` (the float64 one, rounded) where there is no exact one."""
    y_true, y_pred, weights = plan.arrays
    if _all_zero_terms(y_true, y_pred) and (plan.reduction != "weighted_mean" or weights is None or (
            bool(np.all(weights >= 0)) and bool(np.any(weights > 0)))):
        # (every difference 0, y_pred equal to y_true: the exact value is 0, without the
        # exact weight sum; a weighted mean where the weights' exact sum is not 0)
        return plan.result_dtype.type(0.0)
    loss, weight, count = exact_sums(plan.loss.code, plan.param, y_true, y_pred, weights)
    exact = reduce_exact(loss, weight, count, plan.reduction, root, plan.result_dtype, divide_by)
    return plan.result_dtype.type(value if exact is None else exact)


def _all_zero_terms(y_true, y_pred) -> bool:
    """Whether every difference ``y_pred - y_true`` (or ``y_pred``) is exactly 0: one comparison
    of arrays of one dtype; in chunks of ``_plain`` operands otherwise (an int64 past 2**53 is
    not its float64 rounding)."""
    p = np.asarray(y_pred)
    if y_true is None:
        return not np.any(p)
    t = np.asarray(y_true)
    if t.dtype == p.dtype:
        return bool(np.array_equal(t, p))
    return all(_zero_terms(_plain(t[index]), _plain(p[index])) for index in _chunks(p.shape))
