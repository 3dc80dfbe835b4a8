"""Configuration (backends, threads, environment variables), import side effects and the CLI."""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import fastl2

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastl2.__file__)))
COMPILED = "cython" in fastl2.available_backends()
NO_COMPILED_REASON = "the compiled 'cython' backend is not built in this install (pure-Python build)"


def run_python(code, *args, env=None, check=True):
    """Run `python -c code` (or `python -m ...` when args given) in a clean environment that finds fastl2."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FASTL2_")}
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, environ.get("PYTHONPATH")) if p)
    environ["PYTHONDONTWRITEBYTECODE"] = "1"
    environ.update(env or {})
    command = [sys.executable, *args] if args else [sys.executable, "-c", code]
    proc = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


# --------------------------------------------------------------------------- in-process configuration


def test_available_backends_always_include_numpy():
    names = fastl2.available_backends()
    assert "numpy" in names
    assert all(isinstance(name, str) for name in names)
    assert fastl2.get_backend() in names


@pytest.mark.parametrize("name", fastl2.available_backends())
def test_set_backend_then_get_backend_round_trips(name):
    previous = fastl2.get_backend()
    try:
        fastl2.set_backend(name)
        assert fastl2.get_backend() == name
    finally:
        fastl2.set_backend(previous)
    assert fastl2.get_backend() == previous


@pytest.mark.skipif(not COMPILED, reason=NO_COMPILED_REASON)
def test_compiled_backend_is_the_default_when_built():
    assert run_python("import fastl2; print(fastl2.get_backend())").stdout.strip() == "cython"


@pytest.mark.parametrize("n", [1, 3, 7])
def test_set_num_threads_then_get_num_threads_round_trips(n, restore_num_threads):
    fastl2.set_num_threads(n)
    assert fastl2.get_num_threads() == n


def test_get_num_threads_is_a_positive_int():
    n = fastl2.get_num_threads()
    assert isinstance(n, int) and n >= 1


def test_show_config_prints_version_backend_and_threads(capsys):
    fastl2.show_config()
    printed = capsys.readouterr().out
    assert fastl2.__version__ in printed
    assert "backend" in printed.lower()
    assert "threads" in printed.lower()
    for name in fastl2.available_backends():
        assert name in printed


# --------------------------------------------------------------------------- fresh interpreters


def test_import_does_not_import_numba_torch_scipy_or_sklearn():
    code = (
        "import sys, fastl2\n"
        "heavy = sorted(m for m in ('numba', 'torch', 'scipy', 'sklearn') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    assert run_python(code).stdout.strip() == ""


def test_cli_info_prints_version_and_backend_names():
    out = run_python(None, "-m", "fastl2", "info").stdout
    assert fastl2.__version__ in out
    for name in fastl2.available_backends():
        assert name in out


@pytest.mark.parametrize("argv", [["info", "--bogus"], ["info", "--json"], ["bogus"], []],
                         ids=["info-option", "info-json", "unknown-command", "none"])
def test_cli_refuses_what_it_does_not_take_with_usage_and_status_2(argv):
    # (`info --bogus` once printed the information and exited 0, the argument silently ignored)
    proc = run_python(None, "-m", "fastl2", *argv, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "usage: python -m fastl2 {info,bench}" in proc.stdout + proc.stderr
    if argv:
        assert repr(" ".join(argv[1:])) in proc.stderr or repr(argv[0]) in proc.stderr, proc.stderr


def test_fastl2_backend_environment_variable_selects_the_backend():
    code = "import fastl2; print(fastl2.get_backend())"
    assert run_python(code, env={"FASTL2_BACKEND": "numpy"}).stdout.strip() == "numpy"


def test_fastl2_num_threads_environment_variable_sets_the_thread_count():
    code = "import fastl2; print(fastl2.get_num_threads())"
    assert run_python(code, env={"FASTL2_NUM_THREADS": "3"}).stdout.strip() == "3"


@pytest.mark.skipif(not COMPILED, reason=NO_COMPILED_REASON)
def test_require_compiled_imports_fine_when_the_compiled_module_is_present():
    code = "import fastl2, fastl2._core; print(fastl2.get_backend())"
    assert run_python(code, env={"FASTL2_REQUIRE_COMPILED": "1"}).stdout.strip() == "cython"


@pytest.mark.skipif(COMPILED, reason="the compiled module is present; the simulated-absence test covers this")
def test_require_compiled_raises_import_error_when_the_compiled_module_is_absent():
    proc = run_python("import fastl2", env={"FASTL2_REQUIRE_COMPILED": "1"}, check=False)
    assert proc.returncode != 0 and "ImportError" in proc.stderr, proc.stderr


BLOCK_COMPILED = "import sys; sys.modules['fastl2._core'] = None  # makes `import fastl2._core` fail\n"


def test_missing_compiled_module_falls_back_to_numba_then_numpy():
    code = BLOCK_COMPILED + (
        "import sys, fastl2; imported = 'numba' in sys.modules; "
        "print(fastl2.get_backend(), 'cython' in fastl2.available_backends(), imported)"
    )
    expected = "numba" if importlib.util.find_spec("numba") else "numpy"
    # the automatic choice does not import numba before its first use
    assert run_python(code).stdout.split() == [expected, "False", "False"]


def test_missing_compiled_module_and_numba_fall_back_to_numpy():
    code = BLOCK_COMPILED + "sys.modules['numba'] = None\nimport fastl2; print(fastl2.get_backend())"
    assert run_python(code).stdout.split() == ["numpy"]


def test_missing_compiled_module_with_require_compiled_raises_import_error():
    code = BLOCK_COMPILED + "import fastl2"
    proc = run_python(code, env={"FASTL2_REQUIRE_COMPILED": "1"}, check=False)
    assert proc.returncode != 0 and "ImportError" in proc.stderr, proc.stderr


@pytest.mark.skipif(not COMPILED, reason=NO_COMPILED_REASON)
def test_compiled_module_is_importable_when_the_cython_backend_is_listed():
    assert importlib.import_module("fastl2._core").loss_names()


def test_set_backend_affects_the_computation_path_not_the_answer(backend):
    y_true, y_pred = np.arange(5.0), np.arange(5.0)[::-1].copy()
    assert fastl2.get_backend() == backend
    assert fastl2.mse(y_true, y_pred) == 8.0


def _collected(env_backends):
    """The ids of the tests that pytest collects from one test of test_input_layouts.py
    (parametrized by the `backend` fixture) with FASTL2_TEST_BACKENDS=env_backends, and the
    finished process."""
    environ = dict(os.environ, FASTL2_TEST_BACKENDS=env_backends)
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "no:xdist", "-k", "test_read_only_params_work_for_l2",
         os.path.join(here, "test_input_layouts.py")],
        env=environ, capture_output=True, text=True, timeout=120, cwd=here,
    )
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    return ids, proc


def test_fastl2_test_backends_runs_the_backend_fixture_on_the_named_backends_only():
    # (.ci/run's sanitizer part: FASTL2_TEST_BACKENDS=cython)
    only, proc = _collected("numpy")
    assert [i.partition("::")[2] for i in only] == ["test_read_only_params_work_for_l2[numpy]"], (
        proc.stdout + proc.stderr)
    lacking, proc = _collected("numpy, no_such_backend")
    assert proc.returncode != 0 and not lacking
    assert "FASTL2_TEST_BACKENDS names ['no_such_backend']" in proc.stdout + proc.stderr
