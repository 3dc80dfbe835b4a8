"""Every backend returns, bit for bit, the stored results of a corpus of calls (see
``result_corpus.py``): a refactor that changes any bit of any result fails here, and
``python tests/result_corpus.py --compare --backend NAME`` lists the cases it changed."""
from __future__ import annotations

import json

import result_corpus


def _numba_share(key: str) -> bool:
    # Numba compiles each kernel variant, and each array type it meets, on first use, 3-12 s
    # apiece: the whole grid would compile several hundred (even its 1-d share takes over 13
    # minutes on a cold cache).  On numba the suite checks the contiguous float32 and float64
    # 1-d cases below the threading threshold, every function, reduction and weights kind of
    # them (variants other tests compile too); the rest of the grid on numba is checked by
    # python tests/result_corpus.py --compare --backend numba.
    parts = key.split("|")
    return parts[1] in ("f32", "f64") and parts[2] in ("n=5", "n=8193") and parts[3] == "c"


def test_every_result_of_the_corpus_has_its_stored_bits(backend):
    stored = json.loads(result_corpus.STORE.read_text())
    keep = _numba_share if backend == "numba" else (lambda key: True)
    got = result_corpus.compute(keep)
    assert set(got) == {key for key in stored if keep(key)}, "the corpus' cases changed: rewrite it with --write"
    differ = sorted(key for key in got if got[key] != stored[key])
    assert not differ, f"{len(differ)} of {len(got)} results changed their bits on {backend}, e.g. {differ[:5]}"
