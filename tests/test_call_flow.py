"""Calls flow one way: the compiled entry points (when built) -> fastl2._api's function of the
same name -> the active backend's own fast path (numba's ``fast_call``) or the plan.  No module
rebinds another's names; numba's fast path answers the common call whenever numba computes,
with the compiled module or without it."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fastl2
from fastl2 import _api, _backends, _passes
from cases import AND_GRAD_FUNCTIONS, GRAD_FUNCTIONS, LOSS_FUNCTIONS

HAVE_NUMBA = "numba" in fastl2.available_backends()
PUBLIC = LOSS_FUNCTIONS + GRAD_FUNCTIONS + AND_GRAD_FUNCTIONS


def test_fastl2_api_keeps_its_own_functions():
    """Importing fastl2 rebinds nothing in fastl2._api: its functions are its own, whatever
    fastl2 exports (the compiled entry points, where built, wrap them)."""
    for name in PUBLIC + ("rmse",):
        function = getattr(_api, name)
        assert function.__module__ == "fastl2._api", name
        exported = getattr(fastl2, name)
        assert exported is function or exported.__wrapped__ is function, name


def _refuse_planning(monkeypatch):
    def plan_must_not_run(*args, **kwargs):
        raise AssertionError("a common call was planned")

    monkeypatch.setattr(_passes, "loss_plan", plan_must_not_run)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed (pip install numba)")
@pytest.mark.parametrize("name", PUBLIC)
def test_numba_answers_the_common_call_without_a_plan(name, monkeypatch):
    previous = fastl2.get_backend()
    fastl2.set_backend("numba")
    try:
        _refuse_planning(monkeypatch)
        y_true, y_pred = np.zeros(16), np.arange(16.0)
        for reduction in ("mean", "sum"):
            getattr(fastl2, name)(y_true, y_pred, reduction=reduction)  # (through _core, where built)
            getattr(_api, name)(y_true, y_pred, reduction=reduction)    # (what fastl2 exports without it)
    finally:
        fastl2.set_backend(previous)


def test_without_the_compiled_module_numba_answers_a_16_element_mse_without_a_plan():
    """An installation without fastl2._core (FASTL2_NO_EXT=1) and with numba: numba is the
    backend, and a 16-element mse goes through its fast path, never through the plan."""
    if not HAVE_NUMBA:
        pytest.skip("numba is not installed (pip install numba)")
    code = (
        "import sys; sys.modules['fastl2._core'] = None\n"
        "import numpy as np, fastl2\n"
        "from fastl2 import _api, _backends, _passes\n"
        "assert fastl2._backends.compiled_module() is None\n"
        "assert fastl2.mse is _api.mse and fastl2.huber is _api.huber\n"
        "calls = []\n"
        "y_true, y_pred = np.zeros(16), np.arange(16.0)\n"
        "first = fastl2.mse(y_true, y_pred)  # loads numba (the automatic choice)\n"
        "fast = _backends.fast_call\n"
        "assert fastl2.get_backend() == 'numba' and fast is not None\n"
        "_backends.fast_call = lambda *args: calls.append(args[0]) or fast(*args)\n"
        "def refuse(*args, **kwargs): raise AssertionError('planned')\n"
        "fastl2._passes.loss_plan = refuse\n"
        "value = fastl2.mse(y_true, y_pred)\n"
        "grad = fastl2.mse_grad(y_true, y_pred)\n"
        "loss, _ = fastl2.huber_and_grad(y_true, y_pred, delta=2.0)\n"
        "assert calls == [0, 0, 2], calls\n"
        "assert value == first == np.mean(np.arange(16.0) ** 2)\n"
        "print('ok')\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FASTL2_")}
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(fastl2.__file__)))
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, environ.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.parametrize("name", PUBLIC)
def test_the_compiled_entry_points_answer_the_common_call_themselves(name, monkeypatch):
    core = _backends.compiled_module()
    if core is None:
        pytest.skip("the compiled module is not built (FASTL2_NO_EXT=1 install)")
    previous = fastl2.get_backend()
    fastl2.set_backend("cython")
    try:
        def must_not_run(*args, **kwargs):
            raise AssertionError(f"fastl2._api.{name} ran for a common call")

        monkeypatch.setattr(_api, name, must_not_run)
        y_true, y_pred = np.zeros(16), np.arange(16.0)
        getattr(fastl2, name)(y_true, y_pred)
        monkeypatch.undo()
        # and every other call goes to fastl2._api's function, by name
        seen = []
        monkeypatch.setattr(_api, name, lambda *args, **kwargs: seen.append(name) or "planned")
        assert getattr(fastl2, name)(list(y_true), list(y_pred)) == "planned" and seen == [name]
    finally:
        fastl2.set_backend(previous)
