"""A corpus of fastl2 results, hashed: the guard that a refactor changes no bit.

Every public function is called over a fixed grid of dtypes, reductions, weights, axes, memory
layouts and sizes (across the deterministic block and the threading thresholds), on fixed
random data.  Each call's result is reduced to a short digest of its dtype, shape and bytes
(NaNs made canonical: their sign and payload bits are unspecified, see README).  The digests
are backend-independent, because every backend returns the same bits.

``tests/data/result_corpus.json`` holds the digests of the code as it is.  ``test_result_corpus``
recomputes them on every backend and compares.  A change meant to alter results (say, a more
accurate sum) rewrites the file, and its diff names every case whose bits changed::

    python tests/result_corpus.py --write      # recompute and store (on the active backend)
    python tests/result_corpus.py --compare    # list the cases that differ from the stored file
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from fastl2._losses import LOSSES as DECLARED

STORE = Path(__file__).parent / "data" / "result_corpus.json"

# Every declared loss (fastl2._losses), called with its parameter's default, and rmse.
TABLE_LOSSES = tuple(loss.function for loss in DECLARED)
LOSSES = TABLE_LOSSES + ("rmse",)
GRADIENTS = tuple(f"{name}{suffix}" for suffix in ("_grad", "_and_grad") for name in TABLE_LOSSES)
REDUCTIONS = ("mean", "weighted_mean", "sum", "none")
# (y_true, y_pred, weights) dtypes
DTYPES = {
    "f32": ("float32", "float32", "float32"),
    "f64": ("float64", "float64", "float64"),
    "f32_f64": ("float32", "float64", "float32"),
    "f16_i32": ("float16", "int32", "float64"),
    "i64_f32": ("int64", "float32", "int64"),
}
# 1-d sizes: tiny (the fast paths), across the 8192-element block, and past the threading threshold
SIZES = (5, 8193, 300_007)
# name -> (shape, axes tried)
SHAPES = {
    "2d": ((1031, 7), (None, 0, 1, -1, (0, 1))),
    "3d": ((19, 23, 5), (None, 0, 2, (0, 2), (1, 2))),
}
LAYOUTS = ("c", "f", "strided", "reversed")


def _data(seed: int, dtype: str, shape) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-50, 51, size=shape).astype(dtype)
    return (rng.standard_normal(shape) * 4.0).astype(dtype)


def _laid_out(array: np.ndarray, layout: str) -> np.ndarray:
    """The same values in another memory layout (never a copy of other values)."""
    if layout == "c":
        return array
    if layout == "f":
        return np.asfortranarray(array)
    if layout == "strided":
        wide = np.zeros(array.shape[:-1] + (array.shape[-1] * 2,), array.dtype)
        wide[..., ::2] = array
        return wide[..., ::2]
    if layout == "reversed":
        return np.ascontiguousarray(array[::-1])[::-1]
    raise ValueError(layout)


def digest(result) -> str:
    """dtype, shape and bytes of a result (or of each part of a tuple / list), NaNs canonical."""
    parts = result if isinstance(result, (tuple, list)) else (result,)
    h = hashlib.sha256()
    for part in parts:
        array = np.asarray(part)
        h.update(f"{array.dtype.str}{array.shape}|".encode())
        if array.dtype.kind == "f":
            array = np.where(np.isnan(array), np.array(np.nan, array.dtype), array)
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def cases():
    """Yield (case id, zero-argument callable) for the whole grid."""
    import fastl2

    seed = itertools.count(1)
    for dtypes_name, (t_dtype, p_dtype, w_dtype) in DTYPES.items():
        # 1-d: every function, reduction and weights kind
        for n in SIZES:
            y_true = _data(next(seed), t_dtype, n)
            y_pred = _data(next(seed), p_dtype, n)
            w = np.abs(_data(next(seed), w_dtype, n)) + np.array(1, w_dtype)
            for layout in ("c", "strided", "reversed") if n < 100_000 else ("c", "strided"):
                t, p = _laid_out(y_true, layout), _laid_out(y_pred, layout)
                for name in LOSSES + GRADIENTS:
                    for reduction in REDUCTIONS:
                        if name == "rmse" and reduction in ("sum", "none"):
                            continue
                        for weights in (None, w):
                            if reduction == "weighted_mean" and weights is None:
                                continue
                            key = f"{name}|{dtypes_name}|n={n}|{layout}|{reduction}|w={weights is not None}"
                            yield key, (lambda f=getattr(fastl2, name), t=t, p=p, w=weights, r=reduction:
                                        f(t, p, w, reduction=r))
        # N-d: losses along axes, gradients, per-element and per-sample weights
        for shape_name, (shape, axes) in SHAPES.items():
            y_true = _data(next(seed), t_dtype, shape)
            y_pred = _data(next(seed), p_dtype, shape)
            full = np.abs(_data(next(seed), w_dtype, shape)) + np.array(1, w_dtype)
            per_sample = np.abs(_data(next(seed), w_dtype, shape[0])) + np.array(1, w_dtype)
            for layout in LAYOUTS:
                t, p = _laid_out(y_true, layout), _laid_out(y_pred, layout)
                for weights_name, weights in (("none", None), ("full", _laid_out(full, layout)),
                                              ("per_sample", per_sample)):
                    for reduction in ("mean", "weighted_mean", "sum"):
                        if reduction == "weighted_mean" and weights is None:
                            continue
                        for name in LOSSES if reduction != "sum" else TABLE_LOSSES:
                            for axis in axes:
                                key = f"{name}|{dtypes_name}|{shape_name}|{layout}|{reduction}|w={weights_name}|axis={axis}"
                                yield key, (lambda f=getattr(fastl2, name), t=t, p=p, w=weights, r=reduction, a=axis:
                                            f(t, p, w, axis=a, reduction=r))
                        for name in GRADIENTS:
                            key = f"{name}|{dtypes_name}|{shape_name}|{layout}|{reduction}|w={weights_name}"
                            yield key, (lambda f=getattr(fastl2, name), t=t, p=p, w=weights, r=reduction:
                                        f(t, p, w, reduction=r))
    # the L2 penalty: one array, a sequence of arrays, every float dtype and layout
    for dtype in ("float16", "float32", "float64", "int32"):
        params = [_data(next(seed), dtype, shape) for shape in ((300_007,), (1031, 7), (5,))]
        for layout in ("c", "strided"):
            laid = [_laid_out(a, layout) for a in params]
            for lam in (0.0, 1e-3, 2.5):
                yield f"l2_penalty|{dtype}|{layout}|lam={lam}", (lambda x=laid, l=lam: fastl2.l2_penalty(x, l))
                yield f"l2_penalty_one|{dtype}|{layout}|lam={lam}", (lambda x=laid[1], l=lam: fastl2.l2_penalty(x, l))
                yield f"l2_penalty_grad|{dtype}|{layout}|lam={lam}", (lambda x=laid, l=lam: fastl2.l2_penalty_grad(x, l))


def compute(keep=lambda key: True) -> dict[str, str]:
    """The digest of every case (for which ``keep(key)``), on the active backend and thread count."""
    return {key: digest(call()) for key, call in cases() if keep(key)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help=f"store the digests in {STORE}")
    group.add_argument("--compare", action="store_true", help="list the cases whose digests differ")
    parser.add_argument("--backend", help="the backend to compute on (default: fastl2's choice)")
    args = parser.parse_args(argv)
    import fastl2

    if args.backend:
        fastl2.set_backend(args.backend)
    got = compute()
    if args.write:
        STORE.parent.mkdir(exist_ok=True)
        STORE.write_text(json.dumps(got, indent=0, sort_keys=True) + "\n")
        print(f"{len(got)} digests written to {STORE} ({fastl2.get_backend()} backend)")
        return 0
    stored = json.loads(STORE.read_text())
    differ = sorted(k for k in stored.keys() | got.keys() if stored.get(k) != got.get(k))
    for key in differ:
        print(f"{key}: stored {stored.get(key)}, now {got.get(key)}")
    print(f"{len(differ)} of {len(stored)} cases differ ({fastl2.get_backend()} backend)")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
