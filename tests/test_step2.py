"""Every-other-element views (``a[::2]``) are read in place by the kernels' step-2 loads.

Their sums must have the bits of the same data made contiguous (the blocks, lanes and combine
order do not depend on the layout), on every backend and instruction-set level, and the loads,
which read two elements at a time, must never touch memory past the view's last element.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastl2
from cases import LOSS_FUNCTIONS

core = fastl2._backends.compiled_module()
LEVELS = core.simd_levels_available() if core is not None else []

DTYPES = {
    "float32": (np.float32, np.float32, np.float32),
    "float64": (np.float64, np.float64, np.float64),
    "mixed": (np.float32, np.float64, np.float32),
}


def _strided(dtypes, n, rng):
    """y_true, y_pred, weights: every other element of arrays of 2 * n - 1."""
    return tuple((rng.standard_normal(2 * n - 1) + (k == 2) * 3).astype(t)[::2]
                 for k, t in enumerate(dtypes))


def _sums(t, p, w):
    # Every call that reaches the step-2 sums: the mean of every loss, weighted ones (the
    # weighted mean of mse, the weighted sum of mae, and so on in turn), and the weight sum
    # alone (weighted_mean's divisor), 1-d and along an axis.
    results = []
    for i, name in enumerate(LOSS_FUNCTIONS):
        func = getattr(fastl2, name)
        results += [func(t, p), func(t, p, w, reduction=("weighted_mean", "sum")[i % 2])]
    results.append(fastl2.l2_penalty(p, 0.25))
    rows = t.shape[0] // 100
    shape = (rows, 100)
    t2, p2, w2 = (a[: rows * 100].reshape(shape) for a in (t, p, w))
    results += [fastl2.mse(t2, p2, axis=-1), fastl2.mse(t2, p2, w2, axis=1, reduction="weighted_mean")]
    return [np.asarray(r).tobytes() for r in results]


@pytest.mark.parametrize("dtypes", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("n", [1, 2, 17, 8192 + 1, 3 * 8192 + 77])
def test_step2_views_give_the_bits_of_their_contiguous_copies(backend, dtypes, n, restore_level):
    t, p, w = _strided(dtypes, n, np.random.default_rng(n))
    assert n == 1 or t.strides == (2 * t.itemsize,)
    expected = _sums(*(np.ascontiguousarray(a) for a in (t, p, w)))
    for level in (LEVELS if backend == "cython" else [None]):
        if level is not None:
            core.set_simd_level(level)
        assert _sums(t, p, w) == expected, f"level {level}"


_GUARD_SCRIPT = textwrap.dedent(
    """
    import ctypes, mmap, sys
    import numpy as np
    import fastl2

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = mmap.PAGESIZE
    core = fastl2._backends.compiled_module()
    levels = core.simd_levels_available() if core is not None else [None]

    def before_guard(dtype, count):
        # `count` elements ending exactly where a PROT_NONE page starts
        size = count * np.dtype(dtype).itemsize
        pages = -(-size // page)
        memory = mmap.mmap(-1, (pages + 1) * page)
        base = ctypes.addressof(ctypes.c_char.from_buffer(memory))
        array = np.frombuffer(memory, dtype, count=count, offset=pages * page - size)
        array[:] = np.arange(count) % 7 - 3
        assert libc.mprotect(base + pages * page, page, 0) == 0, ctypes.get_errno()
        return array

    for dtype in (np.float32, np.float64):
        for n in (16, 17, 48, 8192 + 32):  # (whole chunks of 16 up to the end, and not)
            count = 2 * n - 1  # the view's last element is the page's last
            t, p, w = (before_guard(dtype, count)[::2] for _ in range(3))
            fastl2.set_backend("numpy")
            expected = fastl2.mse(t.copy(), p.copy())
            for backend in fastl2.available_backends():
                fastl2.set_backend(backend)
                for level in (levels if backend == "cython" else [None]):
                    if level is not None:
                        core.set_simd_level(level)
                    assert fastl2.mse(t, p) == expected, (backend, level, dtype, n)
                    for name in sys.argv[1:]:  # every loss (cases.LOSS_FUNCTIONS)
                        getattr(fastl2, name)(t, p, w, reduction="weighted_mean")
                    fastl2.l2_penalty(p, 1.0)
                    fastl2.mse(t.reshape(1, -1), p.reshape(1, -1), axis=1)
    print("ok")
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect guard pages: Linux only")
def test_step2_loads_never_read_past_the_view():
    # A read of one element too many faults on the guard page: the child dies with SIGSEGV.
    result = subprocess.run([sys.executable, "-c", _GUARD_SCRIPT, *LOSS_FUNCTIONS], capture_output=True, text=True,
                            env={**os.environ}, timeout=600)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.strip() == "ok"
