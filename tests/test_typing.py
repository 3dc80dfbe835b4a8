"""The public API's annotations: a type checker sees real types, not Any.

``mypy --strict`` checks tests/typing/user_snippet.py (fastl2 as a user calls it, with
``assert_type`` on every result) and must pass, and tests/typing/user_mistakes.py, where it
must report exactly the errors marked ``# E: <code>``.  The snippet also runs, so that the
types it asserts are the ones fastl2 returns.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import runpy
import subprocess
import sys

import pytest

TYPING_DIR = pathlib.Path(__file__).resolve().parent / "typing"
SNIPPET = TYPING_DIR / "user_snippet.py"
MISTAKES = TYPING_DIR / "user_mistakes.py"

#: mypy's report of one error: ``path:line: error: message  [code]``.
ERROR = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+): error: (?P<message>.*?)\s+\[(?P<code>[a-z0-9-]+)\]$")

needs_mypy = pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None,
    reason="mypy is not installed (pip install mypy, or the 'test' extra: pip install '.[test]')",
)


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory):
    """mypy --strict over both files in one run: {file name: [(line, code, message)]}."""
    cache = tmp_path_factory.mktemp("mypy_cache")
    command = [
        sys.executable, "-m", "mypy", "--strict", "--config-file=", f"--cache-dir={cache}",
        "--show-error-codes", "--no-error-summary", "--no-pretty", "--no-color-output",
        str(SNIPPET), str(MISTAKES),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=TYPING_DIR)
    if proc.returncode not in (0, 1):  # 2: mypy itself failed (a crash, a bad option)
        pytest.fail(f"mypy exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    errors: dict[str, list[tuple[int, str, str]]] = {}
    for line in proc.stdout.splitlines():
        match = ERROR.match(line)
        if match:
            name = pathlib.Path(match["path"]).name
            errors.setdefault(name, []).append((int(match["line"]), match["code"], match["message"]))
        elif ": error:" in line:
            pytest.fail(f"unparsed mypy error: {line}\n{proc.stdout}")
    return errors, proc.stdout


@needs_mypy
def test_user_snippet_type_checks_with_real_types(mypy_errors):
    errors, output = mypy_errors
    assert SNIPPET.name not in errors, output


@needs_mypy
def test_user_mistakes_are_rejected(mypy_errors):
    errors, output = mypy_errors
    expected = sorted(
        (number, match[1])
        for number, text in enumerate(MISTAKES.read_text().splitlines(), start=1)
        if (match := re.search(r"# E: ([a-z0-9-]+)\s*$", text))
    )
    assert len(expected) >= 10
    found = sorted((line, code) for line, code, _ in errors.get(MISTAKES.name, []))
    assert found == expected, output
    assert set(errors) <= {MISTAKES.name}, output  # nothing reported in fastl2 itself


def test_user_snippet_runs_and_its_asserted_types_are_the_returned_ones(backend):
    if sys.version_info < (3, 11):
        pytest.importorskip("typing_extensions", reason="the snippet's assert_type on Python 3.10")
    runpy.run_path(str(SNIPPET), run_name="user_snippet")
