"""An exact, independent reference for fastl2's losses and gradients.

Nothing here imports fastl2. The ulp assertion and the correct rounding of exact values live in
ulp.py; this module re-exports them (``ref.assert_ulp``, ``ref.ulp_distance``, ``ref.round_exact``,
``ref.round_to``), so that a test needs the one import. The definitions follow docs/api.md:

* ``d = float64(y_pred) - float64(y_true)`` (the one rounding every implementation shares);
* element loss ``w * d * d`` (mse), ``w * |d|`` (mae) or ``w * huber(d)`` (huber:
  ``a * a / 2`` for ``a = |d| < delta``, else ``delta * (a - delta / 2)`` with ``a - delta / 2``
  rounded to float64, the one inner rounding its accuracy promise allows; ``delta`` 1 unless
  given), ``w = 1`` without weights;
* reductions "mean" (sum / n), "weighted_mean" (sum / sum of weights), "sum", "none";
* gradients ``2 w d / D`` (mse), ``w sign(d) / D`` (mae) and ``w clip(d, -delta, delta) / D``
  (huber), ``D = n``, ``sum(w)`` or ``1``.

The products ``w * d * d`` are split into float64 pieces without rounding error (Dekker's
two-product), the pieces are summed with ``math.fsum`` plus the exact residual, so a reduced loss is
an exact ``Fraction`` (to about 2**-106 relative) that is rounded once, to the result dtype, by the
comparison. Element-wise results (reduction "none", gradients) are float64 arrays within a hair of
correctly rounded.

Reductions along axes (``loss_axis``) are exact: each output's pieces are summed without any
rounding by an error-free extraction (``exact_row_sums``, Rump-Ogita-Oishi), vectorised over the
outputs, so that large cases stay cheap; ``round_exact`` (ulp.py) rounds such exact values once,
correctly, to float32 or float64. Inputs must be finite and in a range where squares neither
overflow nor reach the subnormals (|x| within about 1e-100 .. 1e100); the tests only feed such
data here.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

import ulp

# The ulp comparison (ulp.py), reached through this module too: ``ref.assert_ulp`` and the like.
assert_ulp, ulp_distance, round_exact, round_to = ulp.assert_ulp, ulp.ulp_distance, ulp.round_exact, ulp.round_to
is_float = ulp.is_float

REDUCTIONS = ("mean", "weighted_mean", "sum", "none")

# Largest distance, in units in the last place of the result dtype, from the exact value.
_LOSS_ULP = {np.dtype(np.float32): 0, np.dtype(np.float64): 2}  # (float32: correctly rounded)
_GRAD_ULP = {np.dtype(np.float16): 1, np.dtype(np.float32): 1, np.dtype(np.float64): 1}

_FLOAT32_CLASS = (np.dtype(np.float16), np.dtype(np.float32))
_GRAD_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
try:  # ml_dtypes' bfloat16 (the test extras install it): a float32-class dtype, as float16
    import ml_dtypes
except ImportError:
    _BFLOAT16 = None
else:
    _BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
    _FLOAT32_CLASS += (_BFLOAT16,)
    _GRAD_DTYPES += (_BFLOAT16,)
    _GRAD_ULP[_BFLOAT16] = 1


# --------------------------------------------------------------------------- dtype rules


def loss_dtype(*inputs) -> np.dtype:
    """float32 when every given input is float16/float32; float64 otherwise (ints, bools count as float64)."""
    dtypes = [np.asarray(x).dtype for x in inputs if x is not None]
    if dtypes and all(dt in _FLOAT32_CLASS for dt in dtypes):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def grad_dtype(y_pred) -> np.dtype:
    """The gradient keeps y_pred's float dtype; integer and bool y_pred give float64."""
    dt = np.asarray(y_pred).dtype
    return dt if dt in _GRAD_DTYPES else np.dtype(np.float64)


def loss_ulp(dtype) -> int:
    return _LOSS_ULP[np.dtype(dtype)]


def grad_ulp(dtype) -> int:
    return _GRAD_ULP[np.dtype(dtype)]


# --------------------------------------------------------------------------- error-free pieces

_SPLITTER = 134217729.0  # 2**27 + 1


def _split(a):
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def two_product(a, b):
    """(p, e) with p = fl(a*b) and p + e == a*b exactly (Dekker; no FMA needed)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def exact_sum(*pieces) -> Fraction | float:
    """The sum of all elements of the given float64 arrays as an exact Fraction, or the float
    nan/inf.  fsum's correctly rounded sum, then fsum of what it left out, and so on until
    nothing is left: each round takes 53 more bits, and a sum of float64 values has at most
    some 2,100, so it ends (after 2 or 3 rounds for most sums)."""
    arrays = [np.asarray(p, dtype=np.float64).ravel() for p in pieces]
    arrays = [a[a != 0] for a in arrays]  # zeros change nothing; dropping them saves time
    if not arrays:
        return Fraction(0)
    values = np.concatenate(arrays)
    if values.size == 0:
        return Fraction(0)
    if not np.all(np.isfinite(values)):
        with np.errstate(invalid="ignore", over="ignore"):
            return float(np.sum(values))
    as_list = values.tolist()
    total = Fraction(0)
    while as_list:
        part = math.fsum(as_list)
        if part == 0.0:  # (fsum is correctly rounded: 0.0 only for an exact zero)
            break
        total += Fraction(part)
        as_list.append(-part)
    return total


def two_sum(a, b):
    """(s, e) with s = fl(a + b) and s + e == a + b exactly (Knuth); e is 0 where s is not
    finite."""
    s = a + b
    bb = s - a
    with np.errstate(invalid="ignore"):
        e = (a - (s - bb)) + (b - bb)
    return s, np.where(np.isfinite(s), e, 0.0)


def _sign(x):
    return np.sign(x)


# --------------------------------------------------------------------------- broadcasting weights


def broadcast_weights(weights, shape):
    """Weights of the full shape, or 1-D per-sample weights (length shape[0]) broadcast over each row."""
    w = np.asarray(weights).astype(np.float64)
    if w.shape == tuple(shape):
        return w
    if w.ndim == 1 and len(shape) >= 1 and w.shape[0] == shape[0]:
        return np.broadcast_to(w.reshape((-1,) + (1,) * (len(shape) - 1)), shape)
    raise AssertionError(f"reference: weights of shape {w.shape} do not fit {shape}")


def _differences(y_true, y_pred):
    """y_pred - y_true as float64 (rounded once)."""
    return _exact_differences(y_true, y_pred)[0]


def _exact_differences(y_true, y_pred):
    """(d, e): d = fl(y_pred - y_true) in float64 and e its rounding error, d + e ==
    y_pred - y_true exactly (the definition, docs/api.md: the exact value of the inputs as
    given): TwoSum of float operands; integers (past 2**53, where float64 rounds them) in
    Python's integers and Fractions."""
    t_arr, p_arr = np.asarray(y_true), np.asarray(y_pred)
    t = t_arr.astype(np.float64)
    p = p_arr.astype(np.float64)
    assert t.shape == p.shape, (t.shape, p.shape)
    if t_arr.dtype.kind in "iu" or p_arr.dtype.kind in "iu":
        exact = [Fraction(b.item()) - Fraction(a.item()) for a, b in zip(t_arr.ravel(), p_arr.ravel())]
        d = np.array([float(x) for x in exact], dtype=np.float64).reshape(t.shape)
        e = np.array([float(x - Fraction(float(x))) for x in exact], dtype=np.float64).reshape(t.shape)
        assert all(Fraction(float(di)) + Fraction(float(ei)) == x for di, ei, x in zip(d.ravel(), e.ravel(), exact)), \
            "a difference that two float64 do not hold exactly"
        return d, e
    return two_sum(p, -t)


def _product_pieces(pairs):
    """Float64 pieces whose sum is exactly sum(a * b for a, b in pairs); a product that is
    not finite is kept as it is (inf or nan), without its error piece."""
    pieces = []
    for a, b in pairs:
        p, e = two_product(a, b)
        with np.errstate(invalid="ignore"):
            zero = (a == 0) | (b == 0)  # (inf * 0: an exact 0 here, the other piece is inf)
            pieces += [np.where(zero, 0.0, p), np.where(np.isfinite(p) & ~zero, e, 0.0)]
    return pieces


#: Huber's delta where none is given: fastl2.huber's default (the tests call it without delta).
HUBER_DELTA = 1.0


def _weighted(pieces, w):
    """Float64 pieces whose sum is exactly ``w * sum(pieces)`` (``pieces`` without weights)."""
    if w is None:
        return list(pieces)
    return _product_pieces([(w, piece) for piece in pieces])


def _element_pieces(kind, y_true, y_pred, weights, delta=HUBER_DELTA, exact=True):
    """Float64 arrays whose element-wise sum is exactly the element loss of the inputs as
    given (their difference taken exactly: d + e), and the float64 weights.  ``exact=False``:
    of the float64 difference d instead, the definition of float64 element losses
    (``reduction="none"``, docs/api.md; float32 ones are of the exact difference, which
    float64 holds)."""
    d, e = _exact_differences(y_true, y_pred)
    dtypes = (np.asarray(y_true).dtype, np.asarray(y_pred).dtype)
    if not exact and not all(dt in _FLOAT32_CLASS for dt in dtypes):
        e = np.zeros_like(d)
    w = None if weights is None else broadcast_weights(weights, d.shape)
    if exact:  # (elements whose product pieces could reach the subnormals or overflow: Fractions)
        corrections, keep = _extreme_elements(kind, d, e, w, delta)
        if corrections is not None:
            pieces, w_kept = _element_pieces_of(kind, d * keep, e * keep, None if w is None else w * keep, delta)
            return pieces, w, corrections
    pieces, _ = _element_pieces_of(kind, d, e, w, delta)
    return pieces, w, None


#: Elements with a nonzero |d|, |e|, |w| or delta outside [2**-400, 2**400] take the reference's
#: Fraction road: their TwoProduct pieces could fall below 2**-1022, where they are not exact.
_SAFE_LOW, _SAFE_HIGH = 2.0 ** -400, 2.0 ** 400


def _extreme_elements(kind, d, e, w, delta):
    """(corrections, keep): an object array of the exact element losses of the extreme elements
    (0 elsewhere) and a float mask of the others, or (None, None) where there are none."""
    def outside(x):
        a = np.abs(x)
        with np.errstate(invalid="ignore"):
            return np.isfinite(a) & (a != 0) & ((a < _SAFE_LOW) | (a > _SAFE_HIGH))

    extreme = outside(d) | outside(e)
    if w is not None:
        extreme |= outside(w)
    if kind == "huber" and outside(np.float64(delta)):
        extreme |= np.isfinite(d)
    with np.errstate(invalid="ignore"):
        extreme &= np.isfinite(d) & (np.isfinite(w) if w is not None else True)
    if not extreme.any():
        return None, None
    corrections = np.zeros(d.shape, dtype=object)
    for index in zip(*np.nonzero(extreme)):
        a = abs(Fraction(float(d[index])) + Fraction(float(e[index])))
        value = fraction_loss(kind, a, delta)
        corrections[index] = value * Fraction(float(w[index])) if w is not None else value
    return corrections, (~extreme).astype(np.float64)


def _element_pieces_of(kind, d, e, w, delta):
    """_element_pieces from the exact difference d + e."""
    # |d + e| = a + s * e (|e| <= ulp(d) / 2: the sign of d + e is that of d, or e's if d is 0)
    with np.errstate(invalid="ignore"):
        sign = np.where(d < 0, -1.0, 1.0)
    a, ae = np.abs(d), sign * e
    # (d + e)**2 = d*d + 2*d*e + e*e, each product exactly
    square = _product_pieces([(d, d), (2.0 * d, e), (e, e)])
    if kind == "mse":
        return _weighted(square, w), w
    if kind == "mae":
        return _weighted([a, ae], w), w
    if kind == "huber":
        with np.errstate(invalid="ignore", over="ignore"):
            small = (a < delta) | ((a == delta) & (ae < 0))
            # quadratic: (a + ae)**2 / 2; linear: delta * (a + ae - delta / 2), exactly
            s, t = two_sum(a, np.full_like(a, -0.5 * delta))
            linear = _product_pieces([(np.full_like(a, delta), s), (np.full_like(a, delta), t),
                                      (np.full_like(a, delta), ae)])
        pieces = [np.where(small, 0.5 * q, 0.0) for q in square] + [np.where(small, 0.0, q) for q in linear]
        with np.errstate(invalid="ignore"):
            pieces = [np.where(np.isfinite(a), q, np.where(np.isnan(a), a, np.inf if k == 0 else 0.0))
                      for k, q in enumerate(pieces)]
        return _weighted(pieces, w), w
    raise ValueError(kind)


def _divisor(reduction, n, w):
    if reduction == "mean":
        return Fraction(n)
    if reduction == "weighted_mean":
        return Fraction(n) if w is None else exact_sum(w)
    if reduction == "sum":
        return Fraction(1)
    raise ValueError(reduction)


def _sum_pieces_elementwise(pieces):
    """Round the element-wise exact sum of pieces (largest first) to float64."""
    total = pieces[0].copy()
    rest = np.zeros_like(total)
    for p in reversed(pieces[1:]):
        rest = rest + p
    return total + rest


def loss(kind, y_true, y_pred, weights=None, reduction="mean", delta=HUBER_DELTA):
    """Exact loss: a Fraction (or float nan/inf) for reducing reductions, a float64 array for "none".

    kind: "mse", "mae" or "rmse" (rmse only with "mean"/"weighted_mean"; returns a correctly
    rounded Python float).
    """
    if kind == "rmse":
        value = loss("mse", y_true, y_pred, weights, reduction)
        return sqrt_exact(value)
    pieces, w, corrections = _element_pieces(kind, y_true, y_pred, weights, delta, exact=reduction != "none")
    if reduction == "none":
        return _sum_pieces_elementwise(pieces)
    n = pieces[0].size
    total = exact_sum(*pieces)
    if corrections is not None and not isinstance(total, float):
        total += sum(corrections.ravel().tolist(), Fraction(0))
    divisor = _divisor(reduction, n, w)
    if isinstance(total, float) or isinstance(divisor, float):
        return float(total) / float(divisor) if float(divisor) != 0 else math.nan
    if divisor == 0:
        return math.nan  # empty input: NumPy's 0/0
    return total / divisor


def fraction_loss(kind, a: Fraction, delta) -> Fraction:
    """The element loss of |d| = ``a`` exactly (a Fraction >= 0): ``kind`` "mse" or "squared"
    (a**2), "mae" or "absolute" (a), "huber" (a**2 / 2 below delta, else delta (a - delta / 2),
    unrounded)."""
    if kind in ("mse", "squared"):
        return a * a
    if kind in ("mae", "absolute"):
        return a
    delta = Fraction(delta)
    return a * a / 2 if a < delta else delta * (a - delta / 2)


def sqrt_exact(value):
    """The square root of an exact value, as sqrt_fraction gives it (nan stays nan)."""
    return sqrt_fraction(value)


def _divide_elementwise(num_hi, num_lo, divisor):
    """(num_hi + num_lo) / divisor rounded to float64, with one correction step (nearly correctly rounded)."""
    if isinstance(divisor, float):  # nan/inf divisor: no refinement possible
        return (num_hi + num_lo) / divisor
    d_hi = float(divisor)
    d_lo = float(divisor - Fraction(d_hi))
    with np.errstate(invalid="ignore", divide="ignore"):
        q = num_hi / d_hi
        qp, qe = two_product(q, d_hi)
        remainder = ((num_hi - qp) - qe) + num_lo - q * d_lo
        return q + remainder / d_hi


def grad(kind, y_true, y_pred, weights=None, reduction="mean", delta=HUBER_DELTA):
    """The gradient w.r.t. y_pred as a float64 array, y_pred's shape: of the exact difference
    (``_exact_differences``: d + e), times the weight (TwoProduct), over the exact divisor,
    nearly correctly rounded (to about 2**-100 of each element: within an ulp of the
    correctly rounded value, and it where that is not within 2**-100 of a midpoint)."""
    d, e = _exact_differences(y_true, y_pred)
    w = None if weights is None else broadcast_weights(weights, d.shape)
    if kind == "mse":
        g, ge = d, e
        scale = 2.0
    elif kind == "mae":
        g, ge = _sign(d), np.zeros_like(d)  # (d and d + e have one sign)
        scale = 1.0
    elif kind == "huber":
        # clip(d + e): d + e where it lies inside (-delta, delta), exactly decided
        signed = np.where(np.signbit(d), -e, e)
        inside = (np.abs(d) < delta) | ((np.abs(d) == delta) & (signed < 0))
        g = np.where(inside, d, np.clip(d, -delta, delta))
        ge = np.where(inside, e, 0.0)
        scale = 1.0
    else:
        raise ValueError(kind)
    if w is None:
        hi, lo = g, ge
    else:
        hi, lo = two_product(w, g)
        lo = lo + w * ge  # (w * ge: u**2 of the product)
    hi, lo = scale * hi, scale * lo  # (exact: 1 or 2)
    if reduction == "none":
        return hi + lo
    divisor = _divisor(reduction, d.size, w)
    if d.size == 0:
        return np.zeros(d.shape)
    return _divide_elementwise(hi, lo, divisor)


#: (significant bits, exponent of the smallest normal, largest finite) of the half dtypes
_HALF_FORMATS = {np.dtype(np.float16): (11, -14, 65504.0)}
if _BFLOAT16 is not None:
    _HALF_FORMATS[_BFLOAT16] = (8, -126, float(np.finfo(_BFLOAT16).max))


def round_fraction(value: Fraction, dtype) -> float:
    """The exact ``value`` rounded once to nearest even to the half dtype ``dtype`` (float16
    or bfloat16; subnormals, overflow to inf), as a float (exact: every half is a float64)."""
    bits, emin, largest = _HALF_FORMATS[np.dtype(dtype)]
    if value == 0:
        return 0.0
    sign, a = (-1.0 if value < 0 else 1.0), abs(value)
    e = a.numerator.bit_length() - a.denominator.bit_length()  # 2**e <= a < 2**(e + 1)
    if Fraction(2) ** e > a:
        e -= 1
    quantum = Fraction(2) ** (max(e, emin) - bits + 1)
    q = a / quantum
    n = q.numerator // q.denominator
    rest = q - n
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2):
        n += 1
    rounded = n * quantum
    return sign * (math.inf if rounded > largest else float(rounded))


def _exact_grad_element(kind, d, w, divisor, delta):
    """One element of the gradient, exactly: scale * w * l'(d) / divisor (Fractions)."""
    d = Fraction(d)
    if kind == "mse":
        g = 2 * d
    elif kind == "mae":
        g = Fraction((d > 0) - (d < 0))
    else:
        g = max(-Fraction(delta), min(Fraction(delta), d))
    return g * (1 if w is None else Fraction(w)) / divisor


def grad_rounded(kind, y_true, y_pred, weights=None, reduction="mean", dtype=np.float16,
                 delta=HUBER_DELTA):
    """The gradient (of the float64 difference, as fastl2 defines it), its exact value rounded
    once to the half dtype ``dtype``: ``grad``'s float64, rounded by NumPy's or ml_dtypes'
    conversion, and wherever a relative 2**-45 either way could change that, the exact value
    rounded (round_fraction)."""
    dtype = np.dtype(dtype)
    g = grad(kind, y_true, y_pred, weights, reduction, delta)
    with np.errstate(over="ignore", invalid="ignore"):
        out = g.astype(dtype)
        below, above = (g * (1 - 2.0**-45)).astype(dtype), (g * (1 + 2.0**-45)).astype(dtype)
    unsure = np.flatnonzero((below.view(np.uint16) != above.view(np.uint16)) & np.isfinite(g))
    d = _differences(y_true, y_pred).reshape(-1)
    w = None if weights is None else broadcast_weights(weights, g.shape).reshape(-1)
    divisor = Fraction(1) if reduction == "none" else _divisor(reduction, d.size, w)
    # An exact zero (d = 0, w = 0): IEEE's sign of the product w * l'(d) * (scale / divisor),
    # l'(d) carrying d's sign (2 * d, sign(d) as d * 0 at 0, clip(d))
    zero = g.reshape(-1) == 0
    if zero.any():
        negative = np.signbit(d) ^ (False if w is None else np.signbit(w)) ^ (float(divisor) < 0)
        out.reshape(-1)[zero] = np.where(negative[zero], -0.0, 0.0).astype(dtype)
    if unsure.size:
        flat = out.reshape(-1)
        for i in unsure:
            exact = _exact_grad_element(kind, d[i], None if w is None else w[i], divisor, delta)
            flat[i] = round_fraction(exact, dtype)
    return out


def l2_penalty(params, lam):
    """lam * sum(params**2), exact (a Fraction)."""
    x = np.asarray(params).astype(np.float64)
    magnitude = np.abs(x[x != 0])
    if np.all(np.isfinite(x)) and (np.any(magnitude > 2.0 ** 511) or np.any(magnitude < 2.0 ** -460)):
        # Squares beyond float64, or whose TwoProduct errors fall below the subnormals: by Fractions.
        return Fraction(lam) * sum((Fraction(v) ** 2 for v in x.ravel().tolist()), Fraction(0))
    p, e = two_product(x, x)
    total = exact_sum(p, e)
    if isinstance(total, float):
        return lam * total
    return Fraction(lam) * total


def l2_penalty_grad(params, lam):
    """2 * lam * params, float64 (correctly rounded: 2*lam*x is a single product up to a power of 2)."""
    x = np.asarray(params).astype(np.float64)
    return (2.0 * float(lam)) * x


# --------------------------------------------------------------------------- reductions along axes


def exact_row_sums(values) -> list:
    """The exact sum of each row of a 2-D float64 array: a list of Fractions (float nan/inf for rows
    with non-finite values).

    Error-free extraction (Rump, Ogita, Oishi: "Accurate floating-point summation", 2008): with
    ``sigma = 2**(e + M)``, ``|x| < 2**e`` and ``2**(M-1) >= m`` (the row length), ``q = (sigma + x) - sigma``
    and ``r = x - q`` are exact, every ``q`` is a multiple of ``2**(e+M-53)`` and bounded so that any
    sum of them is exact in float64 -- whatever order np.sum adds them in. The residuals ``r`` are
    at most ``2**(e+M-53)`` and go round again until nothing is left. Finite, normal-range data only
    (sigma must not overflow), which is all the tests feed here.
    """
    x = np.asarray(values, dtype=np.float64)
    assert x.ndim == 2, x.shape
    rows, m = x.shape
    if m == 0:
        return [Fraction(0)] * rows
    if m > _SUBROW:
        # Long rows go as several short ones (zero-padded): a smaller M extracts more bits per round.
        k = -(-m // _SUBROW)
        if k * _SUBROW != m:
            padded = np.zeros((rows, k * _SUBROW))
            padded[:, :m] = x
            x = padded
        parts = exact_row_sums(np.ascontiguousarray(x).reshape(rows * k, _SUBROW))
        return [_add_exact(parts[i * k : (i + 1) * k]) for i in range(rows)]
    special = {}
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        with np.errstate(invalid="ignore", over="ignore"):
            for i in np.flatnonzero(~finite).tolist():
                special[i] = float(np.sum(x[i]))
    x = np.where(finite[:, None], x, 0.0)  # our own copy: the rounds below work in place
    q = np.empty_like(x)
    shift = int(math.ceil(math.log2(m))) + 1
    totals = [Fraction(0)] * rows
    live = np.arange(rows)  # the rows of x that still have something left to add
    for _ in range(400):
        amax = np.maximum(np.max(x, axis=1), -np.min(x, axis=1))
        busy = amax > 0
        if not busy.any():
            break
        if not busy.all():  # finished rows leave: later rounds only see what is left
            x, amax, live = x[busy], amax[busy], live[busy]
            q = np.empty_like(x)
        _, exponent = np.frexp(amax)  # amax < 2**exponent
        sigma = np.ldexp(1.0, exponent + shift)[:, None]
        np.add(x, sigma, out=q)
        q -= sigma  # exact: q = fl(sigma + x) - sigma
        x -= q  # exact: the rounding error of sigma + x
        level = np.sum(q, axis=1)  # exact in any order
        for i, value in zip(live.tolist(), level.tolist()):
            if value:
                totals[i] += Fraction(value)
    else:  # pragma: no cover - cannot happen for finite data
        raise AssertionError("exact_row_sums did not converge")
    for i, value in special.items():
        totals[i] = value
    return totals


_SUBROW = 1 << 14


def _add_exact(values):
    """Sum of Fractions, or the float nan/inf if any part is one."""
    specials = [v for v in values if isinstance(v, float)]
    if specials:
        return float(np.sum(specials))
    return sum(values, Fraction(0))


def normalise_axes(axis, ndim) -> tuple[int, ...]:
    """NumPy's axis argument as sorted non-negative axes (None: all of them)."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    result = sorted(int(a) % ndim for a in axes)
    assert len(set(result)) == len(result), f"reference: repeated axis in {axis!r}"
    return tuple(result)


def reduced_shape(shape, axis) -> tuple[int, ...]:
    """The result shape of reducing ``axis`` (no keepdims)."""
    axes = normalise_axes(axis, len(shape))
    return tuple(size for a, size in enumerate(shape) if a not in axes)


def _rows(x, axes):
    """x with the kept axes first (C order) and the reduced ones flattened last: (outputs, count)."""
    kept = [a for a in range(x.ndim) if a not in axes]
    outputs = math.prod(x.shape[a] for a in kept)
    count = math.prod(x.shape[a] for a in axes)
    return np.ascontiguousarray(np.transpose(x, kept + list(axes))).reshape(outputs, count)


def sqrt_fraction(value):
    """The square root of an exact value as a Fraction that rounds as the root does: the root
    itself when it is a dyadic rational of at most 300 bits past its point, else a value
    strictly between two multiples of 2**-k (k >= 300 past the root's leading bit) that hold
    the root (a sticky bit: no float32 or float64 value or midpoint lies strictly between
    them).  nan stays nan; floats are rooted as floats."""
    if isinstance(value, float):
        return math.sqrt(value) if value >= 0 else math.nan
    value = Fraction(value)
    if value < 0:
        return math.nan
    if value == 0:
        return Fraction(0)
    k = 300 + max(0, -(value.numerator.bit_length() - value.denominator.bit_length()) // 2 + 2)
    scaled = value * 4**k
    root = math.isqrt(scaled.numerator // scaled.denominator)
    if Fraction(root * root) == scaled:
        return Fraction(root, 2**k)
    return Fraction(2 * root + 1, 2 ** (k + 1))


def loss_axis(kind, y_true, y_pred, weights=None, reduction="mean", axis=None,
              delta=HUBER_DELTA) -> np.ndarray:
    """The exact loss reduced along ``axis`` (NumPy rules; None: every axis), one value per output.

    Returns an object ndarray of the reduced shape holding Fractions (float nan where a mean
    divides by zero: an empty reduction, or weights summing to 0). Output ``o`` is
    ``sum(w * l(d))`` over its reduced elements, divided by their count ("mean"), by the sum of
    their weights ("weighted_mean") or by 1 ("sum"); "rmse" is the square root of mse's.
    Compare with ``assert_ulp(result, loss_axis(...), ulp)``: each value is rounded once, correctly.
    """
    if kind == "rmse":
        assert reduction in ("mean", "weighted_mean"), reduction
        squared = loss_axis("mse", y_true, y_pred, weights, reduction, axis)
        result = np.empty(squared.shape, dtype=object)
        for index in np.ndindex(squared.shape):
            result[index] = sqrt_fraction(squared[index])
        return result
    assert reduction in ("mean", "weighted_mean", "sum"), reduction
    pieces, w, corrections = _element_pieces(kind, y_true, y_pred, weights, delta)
    shape = pieces[0].shape
    axes = normalise_axes(axis, len(shape))
    out_shape = reduced_shape(shape, axes)
    count = math.prod(shape[a] for a in axes)
    totals = exact_row_sums(np.concatenate([_rows(p, axes) for p in pieces], axis=1))
    if corrections is not None:
        extra = _rows(corrections, axes)
        totals = [t if isinstance(t, float) else t + sum(extra[i].tolist(), Fraction(0)) for i, t in enumerate(totals)]
    if reduction == "sum":
        divisors = [Fraction(1)] * len(totals)
    elif reduction == "weighted_mean" and w is not None:
        divisors = exact_row_sums(_rows(np.asarray(w, dtype=np.float64), axes))
    else:
        divisors = [Fraction(count)] * len(totals)
    result = np.empty(len(totals), dtype=object)
    for i, (total, divisor) in enumerate(zip(totals, divisors)):
        if isinstance(total, float) or isinstance(divisor, float):
            result[i] = float(total) / float(divisor) if float(divisor) != 0 else math.nan
        elif divisor == 0:
            result[i] = math.nan  # NumPy's 0/0 for an empty mean
        else:
            result[i] = total / divisor
    return result.reshape(out_shape)
