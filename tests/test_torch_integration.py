"""fastl2.torch in its surroundings: threads beside PyTorch's, import rules, the training example,
the benchmark script, and the examples of docs/torch.md and of the docstrings."""
from __future__ import annotations

import doctest
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is an optional dependency: pip install 'fastl2[torch]'")

import fastl2  # noqa: E402
import fastl2.torch as ft  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE_PARENT = pathlib.Path(fastl2.__file__).resolve().parent.parent


def run_python(*args, timeout=300):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FASTL2_")}
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_PARENT), environ.get("PYTHONPATH")) if p)
    environ["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run([sys.executable, *args], env=environ, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


# --------------------------------------------------------------------------- threads


@pytest.fixture
def restore_torch_threads():
    previous = torch.get_num_threads()
    try:
        yield previous
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("name", ["mse", "huber"])
def test_training_step_bits_whatever_the_threads(name, restore_num_threads, restore_torch_threads):
    """A fastl2.torch loss inside a training step (PyTorch's threads doing the model's work, then
    fastl2's doing the loss, one after the other) gives the bits of a one-thread fastl2 call, for
    every pair of thread counts: each library runs its own parallel regions, in turn."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64))
    x, y = torch.randn(2048, 32), torch.randn(2048, 64)  # 131,072 loss elements: threaded in fastl2
    loss_fn = ft.nn.MSELoss() if name == "mse" else ft.nn.HuberLoss(delta=0.5)
    numpy_call = fastl2.mse_and_grad if name == "mse" else (lambda a, b: fastl2.huber_and_grad(a, b, delta=0.5))
    assert y.numel() > 65536
    for torch_threads in (1, 2, 4):
        for fastl2_threads in (1, 2, 3):
            torch.set_num_threads(torch_threads)
            fastl2.set_num_threads(fastl2_threads)
            output = model(x)
            output.retain_grad()
            loss = loss_fn(output, y)
            loss.backward()
            fastl2.set_num_threads(1)
            expected, expected_grad = numpy_call(y.numpy(), output.detach().numpy())
            assert loss.item() == expected and loss.detach().numpy().tobytes() == np.float32(expected).tobytes()
            assert np.array_equal(output.grad.numpy(), expected_grad)
            model.zero_grad()


OPENMP_RUNTIMES = (
    "import sys\n"
    "paths = {line.split()[-1] for line in open('/proc/self/maps') if 'libgomp' in line.split()[-1]}\n"
    "print(len(paths), file=sys.stderr)\n"
)


@pytest.mark.skipif("cython" not in fastl2.available_backends(),
                    reason="only the compiled backend reads OpenMP's default (this install has no "
                           "compiled module: the NumPy backend runs on one thread)")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_fastl2_default_threads_beside_torch_set_num_threads():
    """Unless fastl2.set_num_threads (or FASTL2_NUM_THREADS) says otherwise, the compiled backend
    takes OpenMP's default, and torch.set_num_threads sets it: one knob. Built from source, fastl2
    links libgomp.so.1 and the loader keeps one copy beside PyTorch's; a repaired wheel carries
    its own renamed copy (two in the process), but PyTorch loads its libgomp into the global
    symbol scope (torch._load_global_deps), where fastl2's OpenMP calls find it first when torch
    is imported first: one knob again (seen in .ci/run's part 4). fastl2's own setting leaves
    PyTorch's alone (fastl2 passes its count to each call)."""
    code = (
        "import torch, fastl2\n"
        "torch.set_num_threads(1); a = fastl2.get_num_threads()\n"
        "torch.set_num_threads(3); b = fastl2.get_num_threads()\n"
        "fastl2.set_num_threads(2); print(a, b, fastl2.get_num_threads(), torch.get_num_threads())\n"
        + OPENMP_RUNTIMES
    )
    proc = run_python("-c", code)
    runtimes = int(proc.stderr.split()[-1])
    assert proc.stdout.split() == ["1", "3", "2", "3"], f"{proc.stdout} with {runtimes} libgomp in the process"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_fork_beside_torch_openmp_runtime():
    """fastl2 and PyTorch in one process (their OpenMP runtimes one or two, as installed), both
    threaded, then fork(): the child computes with fastl2 and fastl2.torch (its pool started
    over), and the parent goes on; nothing hangs. (PyTorch's own parallel operators are another
    matter: after an OpenMP team ran in the parent, libgomp hangs them in the child; the child
    here calls none.)"""
    code = (
        "import os, sys, numpy as np, torch, fastl2, fastl2.torch as ft\n"
        "torch.set_num_threads(2); fastl2.set_num_threads(2)\n"
        "a = torch.randn(256, 256); (a @ a).sum()\n"
        "x = np.random.default_rng(0).random(1 << 20)\n"
        "expected = fastl2.mse(x, x[::-1].copy())\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = fastl2.mse(x, x[::-1].copy()) == expected\n"
        "    t, r = torch.from_numpy(x), torch.from_numpy(x[::-1].copy())\n"
        "    ok = ok and ft.mse_loss(r, t).item() == expected\n"
        "    os._exit(0 if ok else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "assert os.waitstatus_to_exitcode(status) == 0, status\n"
        "assert fastl2.mse(x, x[::-1].copy()) == expected; (a @ a).sum()\n"
        "print('ok')\n"
    )
    assert run_python("-c", code, timeout=120).stdout.split() == ["ok"]


# --------------------------------------------------------------------------- import rules


def test_import_fastl2_does_not_import_torch_and_fastl2_torch_does():
    code = (
        "import sys, fastl2; assert 'torch' not in sys.modules, 'import fastl2 imported torch'; "
        "import fastl2.torch; assert 'torch' in sys.modules; "
        "print(fastl2.torch.mse_loss.__module__, fastl2.torch.nn.MSELoss.__mro__[1].__module__)"
    )
    assert run_python("-c", code).stdout.split() == ["fastl2.torch._functional", "torch.nn.modules.loss"]


def test_import_fastl2_torch_without_torch_says_how_to_install_it():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # as if torch were not installed
        "import fastl2\n"
        "try:\n"
        "    import fastl2.torch\n"
        "except ImportError as error:\n"
        "    print(error)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    assert 'pip install "fastl2[torch]"' in run_python("-c", code).stdout


def test_the_operator_is_registered_under_the_fastl2_namespace():
    schema = str(torch.ops.fastl2.loss.default._schema)
    assert schema.startswith("fastl2::loss(Tensor input, Tensor target, Tensor? weight, str kind, str reduction")
    assert schema.endswith("-> (Tensor, Tensor)")


# --------------------------------------------------------------------------- example and benchmark


def test_training_example_curves_match(tmp_path):
    path = tmp_path / "curves.json"
    out = run_python("examples/train_regression.py", "--steps", "12", "--samples", "512", "--json", str(path)).stdout
    assert "largest relative difference between the curves" in out and "median step" in out
    curves = json.loads(path.read_text())
    ours, theirs = curves["fastl2"]["losses"], curves["torch"]["losses"]
    assert len(ours) == len(theirs) == 12 and len(curves["fastl2"]["times"]) == 12
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert ours[-1] < ours[0]  # it trains


def test_benchmark_script_runs(tmp_path):
    path = tmp_path / "bench.json"
    run_python("bench/torch_loss.py", "--sizes", "1e3", "--dtypes", "float32", "bfloat16", "--modes", "eager",
               "--budget", "0.01", "--rounds", "1", "--threads", "--threads-size", "1e3", "--json", str(path))
    results = json.loads(path.read_text())
    assert {(r["dtype"], r["op"]) for r in results["losses"]} == {
        (d, op) for d in ("float32", "bfloat16") for op in ("fwd", "fwd+bwd")}
    assert all(r["torch"] > 0 and r["fastl2"] > 0 for r in results["losses"])
    assert results["threads"] and len(results["load"]) == 3


# --------------------------------------------------------------------------- documentation


def _run_examples(text, name):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(doctest.DocTestParser().get_doctest(text, {}, name, None, 0))
    return runner


def test_docs_torch_md_examples_run():
    text = (ROOT / "docs" / "torch.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if ">>>" in b]
    assert blocks
    for number, block in enumerate(blocks):
        assert _run_examples(block, f"docs/torch.md[{number}]").failures == 0


@pytest.mark.parametrize("obj", [ft, ft.mse_loss, ft.l1_loss, ft.huber_loss, ft.smooth_l1_loss],
                         ids=lambda o: getattr(o, "__name__", str(o)))
def test_docstring_examples_run(obj):
    assert ">>>" in obj.__doc__
    assert _run_examples(obj.__doc__, obj.__name__).failures == 0
