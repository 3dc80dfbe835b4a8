"""The examples in the public docstrings run and print what they show."""

import doctest

import pytest

import fastl2
import fastl2.dask
import fastl2.metrics

PUBLIC = [getattr(fastl2, name) for name in fastl2.__all__ if callable(getattr(fastl2, name))]
PUBLIC += [getattr(fastl2.metrics, name) for name in fastl2.metrics.__all__ if name != "InvalidParameterError"]
PUBLIC += [getattr(fastl2.dask, name) for name in fastl2.dask.__all__]  # (the test extra installs dask)


@pytest.mark.parametrize("function", PUBLIC + [fastl2], ids=lambda f: getattr(f, "__name__", "fastl2"))
def test_docstring_examples_run(function, backend):
    doc = function.__doc__ or ""
    test = doctest.DocTestParser().get_doctest(doc, {}, function.__name__, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0


def test_every_public_function_has_an_example():
    missing = [f.__name__ for f in PUBLIC if ">>>" not in (f.__doc__ or "") and f.__name__ != "show_config"]
    assert not missing


@pytest.mark.parametrize("document", ["README.md", "docs/api.md"])
def test_markdown_examples_run(backend, document):
    """Every `>>>` example of README.md and of the contract prints what it shows, on every backend."""
    import pathlib
    import re

    path = pathlib.Path(__file__).resolve().parent.parent / document
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)
    examples = [block for block in blocks if ">>>" in block]
    assert examples
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for number, block in enumerate(examples):
        runner.run(doctest.DocTestParser().get_doctest(block, {}, f"{document}[{number}]", None, 0))
    assert runner.failures == 0
