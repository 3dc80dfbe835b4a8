"""fastl2 against its peers, side by side per op, dtype and size (one benchmark group each).

Run with ``pytest bench/ --benchmark-only`` (``FASTL2_BENCH_SIZES=16,1e5`` for other sizes). The
methods are those of ``python -m fastl2 bench`` (``fastl2._bench``): fastl2 on each available
backend and every installed peer (NumPy forms, PyTorch, scikit-learn, Numba, numexpr); a peer that
is not installed is skipped with the reason. Each benchmark also checks its result against an exact
value: correctness, not timing.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")
_bench = pytest.importorskip("fastl2._bench")

DEFAULT_SIZES = "16,1000,1e5,1e7"
RTOL = {"float32": 1e-5, "float64": 1e-12}

#: Methods whose loss cannot meet RTOL, with the looser tolerance it gets and why (their
#: gradients still must). Measured on 10⁷ elements; the error grows with the size.
KNOWN_LOOSER = {
    ("numpy-dot", "float32"): (1e-3, "BLAS sdot accumulates float32 in float32 (~3e-5 at 1e7)"),
    ("numexpr", "float32"): (0.5, "numexpr's sum() accumulates float32 in float32 (1.4e-2 at 1e7, "
                                  "2.8e-1 at 1e8)"),
}


def bench_sizes() -> list[int]:
    """The sizes to benchmark: ``FASTL2_BENCH_SIZES`` (e.g. ``16,1e6``) or 16, 10³, 10⁵, 10⁷."""
    text = os.environ.get("FASTL2_BENCH_SIZES", DEFAULT_SIZES)
    try:
        return _bench.parse_sizes(text)
    except Exception as exc:
        raise pytest.UsageError(f"FASTL2_BENCH_SIZES={text!r}: {exc}") from None


def _params() -> list:
    methods, skipped = _bench.load_methods()
    sizes = bench_sizes()
    params = []
    for op in _bench.OPS:
        for dtype in _bench.DEFAULT_DTYPES:
            for n in sizes:
                cell = f"{op}-{dtype}-{n}"
                params += [pytest.param(op, dtype, n, m, id=f"{cell}-{m.key}")
                           for m in methods if op in m.ops]
                params += [pytest.param(op, dtype, n, None, id=f"{cell}-{key}",
                                        marks=pytest.mark.skip(reason=reason))
                           for key, reason in skipped.items()]
    return params


@pytest.mark.parametrize(("op", "dtype", "n", "method"), _params())
def test_benchmark(benchmark, cases, op: str, dtype: str, n: int, method: _bench.Method) -> None:
    case, reference = cases.get(op, dtype, n)
    benchmark.group = f"{op} {dtype} n={n}"
    benchmark.name = method.name
    benchmark.extra_info.update(op=op, dtype=dtype, n=n, bytes=case.bytes_moved,
                                computes=method.describe[op])
    with method.use():
        call = method.bind(case)
        call()  # warm-up outside the timing: JIT compilation, first touch of buffers
        value = benchmark(call)

    loss, grad = _bench.unpack(value)
    loss_rtol = KNOWN_LOOSER.get((method.key, dtype), (RTOL[dtype],))[0]
    reduction = method.weighted_reduction if op == "wmse" else "mean"
    exact = reference.loss(reduction)
    benchmark.extra_info["rel_error"] = _bench.relative_error(loss, exact)
    assert loss == pytest.approx(exact, rel=loss_rtol, abs=0)
    if op == "grad":
        assert grad is not None and grad.shape == case.y_pred.shape
        assert grad.dtype == case.y_pred.dtype
        for part, exact in reference.grad_parts():  # chunk by chunk: no full float64 copy
            np.testing.assert_allclose(grad[part], exact, rtol=RTOL[dtype], atol=0)
