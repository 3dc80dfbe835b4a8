"""``python -m fastl2 bench``: its options, the Numba fastmath peer, the stalled-row rule and
``--busy``'s background processes. No timing is asserted: only what the command does."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastl2
from fastl2._bench import cli, machine
from fastl2._bench.cases import exact_parts, exact_sum, make_case, Reference
from fastl2._bench.methods import DEFAULT_METHODS, METHOD_KEYS
from fastl2._bench.peers import PEERS
from fastl2._bench.results import stall_reasons
from fastl2._bench.timing import Timing, percentile

# fastl2's rows in a tiny run: its numba backend, where it is the active one, compiles on first
# use (seconds): leave it out then, the rows of the other methods are what these tests look at
TINY_METHODS = "fastl2,numpy" if fastl2.get_backend() != "numba" else "numpy"
TINY = ["--sizes", "16", "--ops", "mse", "--dtypes", "float32", "--methods", TINY_METHODS,
        "--budget", "0.05"]


def _children() -> set[int]:
    """The ids of this process's living children (from /proc; empty where there is no /proc)."""
    children = set()
    me = os.getpid()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if fields[0] != "Z" and int(fields[1]) == me:
            children.add(int(entry))
    return children


@pytest.fixture
def spinners(monkeypatch):
    """Every busy process ``--busy`` starts in this test, recorded as it is started."""
    started: list[subprocess.Popen] = []
    real = machine.start_spinners

    def record(count):
        processes = real(count)
        started.extend(processes)
        return processes

    monkeypatch.setattr(machine, "start_spinners", record)
    before = _children()
    yield started
    for process in started:  # never leave one behind, even when the test failed
        if process.poll() is None:
            process.kill()
            process.wait()
    assert _children() <= before


def _assert_stopped(started):
    assert started, "no busy process was started"
    assert all(p.returncode is not None for p in started), "a busy process was not reaped"
    assert not {p.pid for p in started} & _children()


# --------------------------------------------------------------------------- options


def test_parser_accepts_the_new_options():
    parser = cli.build_parser()
    args = parser.parse_args([])
    assert args.busy is None and args.methods is None
    assert parser.parse_args(["--busy"]).busy == (os.cpu_count() or 1)
    assert parser.parse_args(["--busy", "3"]).busy == 3
    assert parser.parse_args(["--methods", "numba-fastmath,fastl2-numba"]).methods == [
        "numba-fastmath", "fastl2-numba"]
    assert parser.parse_args(["--methods", "all"]).methods == list(METHOD_KEYS)
    assert parser.parse_args(["--budget", "0.01"]).budget == 0.01


@pytest.mark.parametrize(("argv", "message"), [
    (["--busy", "0"], "must be at least 1"),
    (["--busy", "-2"], "must be at least 1"),
    (["--busy", "two"], "a whole number at least 1"),
    (["--methods", "numba,bogus"], "choose from"),
    (["--methods", ""], "choose from"),
    (["--budget", "0"], "above 0"),
    (["--budget", "fast"], "above 0"),
    (["--threads", "0"], "must be at least 1"),
    (["--repeat", "0"], "must be at least 1"),
    (["--sizes", "0"], "at least 1"),
    (["--sizes", ","], "no size"),
    # (once refused only after the whole benchmark had run, with a traceback)
    (["--json", "/nonexistent-fastl2-folder/results.json"], "the folder /nonexistent-fastl2-folder does not exist"),
])
def test_parser_refuses_bad_values_clearly(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert message in error and "usage:" in error


def test_help_documents_the_defaults_and_the_new_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for words in ("--busy", "numba-fastmath", "fastl2-numba", "stalled rows", "default set"):
        assert words in text


def test_default_set_keeps_every_method_selectable():
    assert "fastl2-numba" not in DEFAULT_METHODS  # compiles for minutes: by option only
    assert set(DEFAULT_METHODS) | {"fastl2-numba"} == set(METHOD_KEYS)
    assert {"numba", "numba-fastmath"} <= set(PEERS) <= set(METHOD_KEYS)


# --------------------------------------------------------------------------- the fastmath peer


def _require_numba():
    try:
        import numba  # noqa: F401
    except ImportError as exc:  # not installed, or an install that does not import
        pytest.skip(f"numba does not import ({exc}): the Numba peers are skipped")


def test_fastmath_peer_computes_the_loss_and_gradient():
    _require_numba()
    method = PEERS["numba-fastmath"]()
    assert method.key == "numba-fastmath" and "fastmath=True" in method.describe["mse"]
    for op in ("mse", "grad"):
        case = make_case(op, "float64", 1000)
        value = method.bind(case)()
        reference = Reference(case)
        if op == "grad":
            loss, grad = value
            assert reference.grad_error(grad) < 1e-15
        else:
            loss = value
        assert math.isclose(loss, reference.loss(), rel_tol=1e-13)


def test_fastmath_kernels_are_cached_apart_from_the_strict_ones():
    _require_numba()
    from fastl2._bench.peers import numba_kernels

    fast, strict = numba_kernels(True), numba_kernels(False)
    assert fast.mse.targetoptions.get("fastmath") and not strict.mse.targetoptions.get("fastmath")
    # Numba's disk cache is named after the function, and its key ignores fastmath
    assert fast.mse.py_func.__qualname__ != strict.mse.py_func.__qualname__


# --------------------------------------------------------------------------- the stall rule


def test_stall_rule_flags_a_stalled_sample_set_and_not_a_clean_one():
    rng = np.random.default_rng(0)
    clean = list(1e-5 * (1 + 0.1 * rng.random(200)))
    assert stall_reasons(clean) == []
    stalled = clean[:150] + [8e-3] * 50  # a quarter of the samples lost a scheduler tick
    assert any("spread" in reason for reason in stall_reasons(stalled))
    # every sample stalled: no spread, but far slower than the same call on one thread
    ticks = [8e-3] * 5
    assert stall_reasons(ticks) == []
    assert any("1 thread" in reason for reason in stall_reasons(ticks, serial=1e-4))
    assert stall_reasons(ticks, serial=7e-3) == []  # as slow as one thread: not a stall
    assert stall_reasons([1e-3, 1e-3, 5e-3]) != []  # 3 samples: the slowest one spread


def test_timing_keeps_its_samples_and_quantiles():
    times = tuple(float(t) for t in range(1, 101))
    timing = Timing(50.5, 100, 1, times)
    assert (timing.p90, timing.p99, timing.fastest) == (90.0, 99.0, 1.0)
    assert percentile([3.0, 1.0, 2.0], 0.99) == 3.0
    assert math.isnan(Timing(1.0, 1, 1).p99)


def test_exact_sum_is_fsum():
    rng = np.random.default_rng(1)
    for scale in (1.0, 1e-30, 1e30):
        x = rng.standard_normal(5000) * scale * 10.0 ** rng.integers(-20, 20, 5000)
        assert exact_sum(x) == math.fsum(x.tolist())
    x = np.array([1e16, 1.0, -1e16, 1e-16])
    assert exact_sum(x) == math.fsum(x.tolist()) and len(exact_parts(x)) >= 1
    assert exact_sum(np.array([])) == 0.0 and math.isnan(exact_sum(np.array([math.nan])))


# --------------------------------------------------------------------------- a run, --busy


def test_run_prints_each_result_then_the_tables(capsys):
    assert cli.main(TINY) == 0
    out = capsys.readouterr().out
    table = out.index("mse: unweighted mean squared error")
    live = [line for line in out[:table].splitlines() if line.startswith("mse  float32")]
    assert len(live) >= len(TINY_METHODS.split(","))  # fastl2: a row per compiled backend
    assert all("p99" in line for line in live)
    assert "p99" in out[table:] and "timings in" in out


def test_busy_starts_and_stops_its_processes(spinners, capsys):
    assert cli.main([*TINY, "--busy", "1"]) == 0
    assert "busy    : 1 CPU-bound background process" in capsys.readouterr().out
    assert len(spinners) == 1
    _assert_stopped(spinners)


def test_busy_stops_its_processes_after_an_exception(spinners, monkeypatch):
    seen = []

    def broken_run(*args, **kwargs):
        seen.extend(p.poll() for p in spinners)  # running while the cells are timed
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "run", broken_run)
    with pytest.raises(RuntimeError, match="boom"):
        cli.main([*TINY, "--busy", "2"])
    assert seen == [None, None]
    _assert_stopped(spinners)


def test_busy_stops_its_processes_on_ctrl_c(spinners, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run", interrupted)
    assert cli.main([*TINY, "--busy", "1"]) == 130
    assert "interrupted" in capsys.readouterr().err
    _assert_stopped(spinners)


@pytest.mark.skipif(not os.path.isdir("/proc"),
                    reason="finds the busy processes in /proc (Linux): SIGINT, then none left")
def test_busy_ctrl_c_from_outside_leaves_no_process(tmp_path):
    """The real Ctrl-C: SIGINT to the benchmark while its busy processes spin."""
    command = [sys.executable, "-m", "fastl2", "bench", "--sizes", "1e5", "--ops", "mse",
               "--dtypes", "float32", "--methods", "numpy", "--budget", "30", "--busy", "2"]
    # SIGINT back to its default in the child: a runner started in the background (``cmd &``)
    # ignores SIGINT, the child would inherit that, and Python would then never raise
    # KeyboardInterrupt (it installs its handler only over SIG_DFL).
    bench = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=_default_sigint)
    try:
        for line in bench.stdout:  # the header's busy line: the spinners are about to start
            if line.startswith("  busy"):
                break
        deadline = time.monotonic() + 20
        spinning: set[int] = set()
        while len(spinning) < 2 and time.monotonic() < deadline:
            spinning = {pid for pid in _pids_with_parent(bench.pid)}
            time.sleep(0.05)
        assert len(spinning) == 2
        bench.send_signal(signal.SIGINT)
        assert bench.wait(timeout=20) == 130
        assert not _pids_with_parent(bench.pid)
        assert not [pid for pid in spinning if _alive(pid)]
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _pids_with_parent(parent: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and fields[0] != "Z":
                found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
