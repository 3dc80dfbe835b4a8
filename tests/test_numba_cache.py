"""The numba backend's on-disk cache: every cached kernel is keyed by everything that changes its
code, and no two different codes share a linker symbol, whichever processes compiled them.

The fault this guards against: processes that each compile a different kernel give those
kernels' block functions the same symbol (Numba names a function ``qualname$uid``, uid a
per-process counter), and a process that loads both kernels from the cache links the first
definition for both (mae_grad came back as mse_grad / 2).  Phase 1 compiles each variant in a
fresh process of its own (so each compiles its first kernel with the same counters), two at a
time into one cache; phase 2 loads them all in one process, in both orders, and checks every
result bit for bit against the numpy backend (bit-identical to numba's by design).
"""
from __future__ import annotations

import concurrent.futures
import itertools
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba", reason="numba is not installed: pip install numba, or pip install '.[numba]' in fastl2's checkout")

from numba import types  # noqa: E402
from numba.core import config as numba_config  # noqa: E402
from numba.core.registry import cpu_target  # noqa: E402

import fastl2  # noqa: E402
from cases import LOSS_FUNCTIONS  # noqa: E402
from fastl2._losses import ABSOLUTE, LOSSES  # noqa: E402

pytest.importorskip("fastl2._numba", reason="fastl2._numba does not import with this numba")
from fastl2._numba import block_columns as nb_columns  # noqa: E402
from fastl2._numba import cache as nb_cache  # noqa: E402
from fastl2._numba import config as nb_config  # noqa: E402
from fastl2._numba import kernels as nb_kernels  # noqa: E402

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastl2.__file__)))

# Each variant is one call; together they cover every part of a kernel's key: every loss (the
# loss and its gradient, cases.LOSS_FUNCTIONS); sums, sums + gradient, gradient only,
# elementwise, weight sum (weighted_mean gradient); float64, float32, mixed; weighted or not;
# 1-d contiguous, strided (a step-2 slice) and columns (axis=0 of C-ordered rows).  (Calls on
# several threads run the strided kernel: threads are not part of a kernel's key.)
VARIANTS = {
    **{f"{name}_f64": f"fastl2.{name}(t, p)" for name in LOSS_FUNCTIONS},
    **{f"{name}_grad_f64": f"fastl2.{name}_grad(t, p)" for name in LOSS_FUNCTIONS},
    "mae_and_grad_f32": "fastl2.mae_and_grad(t32, p32)",
    "mse_none_f64": "fastl2.mse(t, p, reduction='none')",
    "mae_grad_weighted_mean": "fastl2.mae_grad(t, p, w, reduction='weighted_mean')",
    "mse_weighted_mixed": "fastl2.mse(t32, p32, w, reduction='weighted_mean')",
    "mae_step2": "fastl2.mae(t[::2], p[::2])",
    "mse_columns_f32": "fastl2.mse(m32, m32b, axis=0)",
}

PROBE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import fastl2
    from fastl2._numba import driver

    fastl2.set_num_threads(2)
    rng = np.random.default_rng(7)
    t, p, w = rng.standard_normal(1000), rng.standard_normal(1000), rng.random(1000)
    t32, p32 = t.astype(np.float32), p.astype(np.float32)
    m32, m32b = rng.standard_normal((300, 8), np.float32), rng.standard_normal((300, 8), np.float32)
    VARIANTS = json.loads(sys.argv[1])
    names = json.loads(sys.argv[2])

    def bits(result):
        parts = result if isinstance(result, tuple) else (result,)
        return [np.asarray(x).tobytes().hex() + str(np.asarray(x).dtype) for x in parts]

    fastl2.set_backend("numba")
    got = {name: bits(eval(VARIANTS[name])) for name in names}
    stats = [driver._kernels[key].stats for key in driver._kernels]
    hits = sum(sum(s.cache_hits.values()) for s in stats)
    misses = sum(sum(s.cache_misses.values()) for s in stats)
    fastl2.set_backend("numpy")
    bad = [name for name in names if bits(eval(VARIANTS[name])) != got[name]]
    print(json.dumps({"mismatches": bad, "hits": hits, "misses": misses,
                      "kernels": len(stats)}))
    """
)


def _probe(cache_dir, names):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(
        NUMBA_CACHE_DIR=str(cache_dir),
        NUMBA_NUM_THREADS="2",
        FASTL2_BACKEND="numba",
        PYTHONPATH=os.pathsep.join([PACKAGE_PARENT] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
    )
    return subprocess.Popen(
        [sys.executable, "-c", PROBE, json.dumps(VARIANTS), json.dumps(names)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _result(proc):
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


def _run_all(cache_dir, groups, at_once=2):
    def one(names):
        return _result(_probe(cache_dir, names))

    with concurrent.futures.ThreadPoolExecutor(at_once) as pool:
        return list(pool.map(one, groups))


def test_kernels_compiled_by_different_processes_load_together_correctly(tmp_path):
    cache = tmp_path / "cache"
    names = list(VARIANTS)
    # Phase 1: one fresh process per variant, two at a time, all into one cache.
    for name, result in zip(names, _run_all(cache, [[name] for name in names])):
        assert result["mismatches"] == [], (name, result)
        assert result["misses"] >= 1 and result["hits"] == 0, (name, result)
    assert len(list(cache.rglob("*.nbc"))) >= len(names)
    # Phase 2: every variant in one process, in both orders, all kernels from the cache.
    for result in _run_all(cache, [names, names[::-1]]):
        assert result["mismatches"] == [], result
        assert result["misses"] == 0, f"a kernel was compiled again, not loaded: {result}"
        assert result["hits"] >= result["kernels"] >= len(names), result


def test_a_block_loaded_from_the_cache_and_compiled_again_in_one_process(tmp_path):
    # The 1-d and strided kernels of one code share its block (kernels.py _shared_block): a
    # process that loads one of them from the cache (the block inside it) and compiles the
    # other (the block again, under the same symbol) gets right results.
    cache = tmp_path / "cache"
    first = _result(_probe(cache, ["mae_f64"]))
    assert first["mismatches"] == [] and first["misses"] >= 1, first
    second = _result(_probe(cache, ["mae_f64", "mae_step2"]))
    assert second["mismatches"] == [], second
    assert second["hits"] >= 1 and second["misses"] >= 1, second
    # ... and the two kernels call it with one signature: one compiled block, cached once
    # (a literal or unsigned argument in one kernel's call would compile it again)
    blocks = sorted(path.name for path in cache.rglob("*.nbc")
                    if ".block_absolute_true_unweighted_sums_compensated_nograd-" in path.name)
    assert len(blocks) == 1, blocks


# --------------------------------------------------------------------------- keys and names

def _modes():
    return range(len(nb_config._MODE_NAMES))


#: The loss codes of the kernels' keys (fastl2._losses: every loss of the table).
LOSS_CODES = [loss.code for loss in LOSSES]


def test_every_specialisation_has_names_of_its_own():
    kernels, blocks, seen = {}, {}, set()
    for loss, has_true, has_weights, mode, compensated, grad64, strided in (
        itertools.product(LOSS_CODES, [False, True], [False, True], _modes(), [False, True],
                          [False, True], [False, True])
    ):
        want_grad = mode in (nb_config._SUMS_GRAD, nb_config._GRAD, nb_config._ELEM_GRAD)
        code = (loss, has_true, has_weights, mode, compensated, grad64 and want_grad,
                strided)  # (without a gradient, grad64 changes no code)
        name = nb_kernels._kernel_name(loss, has_true, has_weights, mode, compensated, grad64,
                                       strided)
        assert kernels.setdefault(name, code) == code, f"{name} names two codes"
        seen.add(code)
        # the block, shared by the 1-d and strided kernels of its code
        block = "block_" + nb_kernels._block_name(loss, has_true, has_weights, mode,
                                                  compensated, grad64 and want_grad)
        assert blocks.setdefault(block, code[:6]) == code[:6], f"{block} names two codes"
        assert name.startswith(block[len("block_"):])
    columns = {
        nb_columns._columns_name(*key): key
        for key in itertools.product(LOSS_CODES, *[[False, True]] * 4)
    }
    assert len(columns) == 16 * len(LOSS_CODES)
    names = list(kernels) + list(columns) + list(blocks)
    assert len(blocks) == len(seen) // 2
    assert len(set(names)) == len(names) == len(seen) + len(blocks) + 16 * len(LOSS_CODES)


def test_factories_name_every_function_they_compile(tmp_path, monkeypatch):
    monkeypatch.setattr(numba_config, "CACHE_DIR", str(tmp_path))
    # (no compilation: only the dispatchers are made)
    qualnames = []
    for key in [*[(code, True, False, nb_config._GRAD, True, True) for code in LOSS_CODES],
                (ABSOLUTE.code, True, True, nb_config._SUMS, False, False)]:
        for strided in (False, True):
            kernel = nb_kernels._make_kernel(*key, strided=strided)
            name = nb_kernels._kernel_name(*key, strided=strided)
            block = kernel.py_func.__globals__["_block"]
            assert kernel.py_func.__qualname__ == name
            assert block.py_func.__qualname__ == "block_" + nb_kernels._block_name(*key)
            # (one block for the 1-d and strided kernels of its code)
            assert block is nb_kernels._make_kernel(*key, strided=not strided
                                                    ).py_func.__globals__["_block"]
            assert isinstance(kernel._cache, nb_cache._KeyedCache)
            qualnames.append(kernel.py_func.__qualname__)
            if not strided:
                qualnames.append(block.py_func.__qualname__)
    for code in LOSS_CODES:
        columns = nb_columns._make_columns_kernel(code, True, False, False, True)
        assert columns.py_func.__qualname__ == nb_columns._columns_name(code, True, False, False, True)
        qualnames.append(columns.py_func.__qualname__)
    assert len(set(qualnames)) == len(qualnames)
    assert all("<locals>" not in name for name in qualnames)


def test_the_index_key_holds_the_code_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setattr(numba_config, "CACHE_DIR", str(tmp_path))
    kernel = nb_kernels._make_kernel(ABSOLUTE.code, True, False, nb_config._GRAD, True, True, False)
    cache = kernel._cache
    array = types.Array(types.float64, 1, "C")
    # (y_true, y_pred, weights, repeat, grad, scale, divisor, elem, param)
    sig = (array, array, types.none, types.int64, array, types.float64, types.float64, types.none,
           types.float64)
    codegen = cpu_target.target_context.codegen()
    key = cache._index_key(sig, codegen)
    assert nb_cache._CODE_FINGERPRINT in repr(key)
    assert cache._index_key(sig, codegen) == key
    monkeypatch.setattr(nb_cache, "_CODE_FINGERPRINT", "another fastl2")
    other = cache._index_key(sig, codegen)
    assert other != key
    assert cache._cache_file._name_of(other) != cache._cache_file._name_of(key)
    # The same code of another loss (its block differs: squared's, and every other loss's)
    # has a key of its own.
    for code in LOSS_CODES:
        if code != ABSOLUTE.code:
            kernel = nb_kernels._make_kernel(code, True, False, nb_config._GRAD, True, True, False)
            assert kernel._cache._index_key(sig, codegen) != other, LOSSES[code].name


# --------------------------------------------------------------------------- data of another key

def _twice(x):
    return 2.0 * x


def _thrice(x):
    return 3.0 * x


def test_a_data_file_of_another_key_is_a_miss(tmp_path, monkeypatch):
    monkeypatch.setattr(numba_config, "CACHE_DIR", str(tmp_path))
    sig = (types.float64,)
    codegen = cpu_target.target_context.codegen()

    twice = nb_cache._jit(_twice)
    assert twice(1.5) == 3.0
    path = os.path.join(twice._cache.cache_path,
                        twice._cache._cache_file._name_of(twice._cache._index_key(sig, codegen)))
    assert os.path.exists(path)
    again = nb_cache._jit(_twice)
    assert again(1.5) == 3.0 and sum(again.stats.cache_hits.values()) == 1  # (a hit)

    thrice = nb_cache._jit(_thrice)
    assert thrice(1.5) == 4.5
    thrice_path = os.path.join(
        thrice._cache.cache_path,
        thrice._cache._cache_file._name_of(thrice._cache._index_key(sig, codegen)),
    )
    with open(thrice_path, "rb") as source, open(path, "wb") as target:
        target.write(source.read())  # _twice's entry now holds _thrice's code and key
    fresh = nb_cache._jit(_twice)
    assert fresh(1.5) == 3.0
    assert sum(fresh.stats.cache_hits.values()) == 0
    assert sum(fresh.stats.cache_misses.values()) == 1
    assert nb_cache._jit(_twice)(1.5) == 3.0  # (and the entry is its own again)
