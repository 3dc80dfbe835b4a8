"""How the numba backend's kernels are compiled and cached on disk.

Compiled code is cached where Numba finds a writable place: ``NUMBA_CACHE_DIR`` if set, else
beside the module that defines the kernel (this package's ``__pycache__``), else the user's
cache directory; with none, kernels are compiled in memory, silently.  The cache is our own
(:class:`_KeyedCache`, not ``cache=True``), keyed by everything that changes a kernel's code:
its name spells its whole specialisation (loss, y_true or not, weights or not, what it
computes, compensated, gradient dtype, 1-d, strided or columns), Numba's
key adds the operands' types, the target and the hashes of its bytecode and closure
constants, and ours adds :data:`_CODE_FINGERPRINT` (fastl2's version, the source of every
module of this package and of fastl2._plan and fastl2._losses, Numba's and llvmlite's
versions) and the compile options.  Each entry's data file is named by a hash of its whole key
and records the key, which is checked on load (a mismatch is a miss), so processes saving at
once never cross entries.  Every function compiled inside a factory is named after its
specialisation (a block ``block_`` + the name of its 1-d kernel: kernels.py _shared_block),
so no two different codes share a linker symbol when one
process loads kernels that different processes compiled.

Kernels are compiled with LLVM's SLP vectorizer on (:func:`_slp_dispatcher`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading

import llvmlite
import numba
from numba import njit
from numba.core import config as numba_config
from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.core.compiler_lock import global_compiler_lock

from .. import _backends


def _code_fingerprint() -> str:
    """What every cached kernel's key holds of the code it is made from: sha256 of fastl2's
    version, Numba's and llvmlite's, and the bytes of every module of this package (by name)
    and of fastl2._plan, fastl2._losses and fastl2._halves (whose constants and functions the
    kernels hold).  A source that cannot be read, or a package folder that cannot be listed, gives a
    token of this process alone: nothing is then loaded that another process saved."""
    digest = hashlib.sha256()
    top = (__package__ or "").rpartition(".")[0]  # fastl2
    version = getattr(sys.modules.get(top), "__version__", "")
    digest.update(f"fastl2 {version}\0numba {numba.__version__}\0"
                  f"llvmlite {llvmlite.__version__}\0".encode())
    here = os.path.dirname(os.path.abspath(__file__))
    parent = os.path.dirname(here)
    try:
        own = sorted(name for name in os.listdir(here) if name.endswith(".py"))
    except OSError:
        own = []
    if not own:
        digest.update(b"unlisted " + os.urandom(16))
    names = [os.path.join(os.path.basename(here), name) for name in own]
    for name in names + ["_plan.py", "_losses.py", "_halves.py"]:
        try:
            with open(os.path.join(parent, name), "rb") as source:
                data = source.read()
        except OSError:
            data = b"unreadable " + os.urandom(16)
        digest.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


#: See _code_fingerprint: part of the key of every cached kernel.
_CODE_FINGERPRINT = _code_fingerprint()


def _config_key():
    """The Numba settings, read at compile time, that change the code compiled."""
    return tuple(
        (name, repr(getattr(numba_config, name, None)))
        for name in ("OPT", "BOUNDSCHECK", "DEBUGINFO_DEFAULT", "ENABLE_AVX", "CPU_NAME",
                     "CPU_FEATURES", "LOOP_VECTORIZE", "SLP_VECTORIZE", "FASTMATH")
    )


class _KeyedCacheFile(IndexDataCacheFile):
    """Numba's index and data files, but each data file is named by a hash of its entry's
    whole key (not a counter) and holds the key, checked on load.

    Entries are found by their name, not through the index: two processes saving different
    entries at once never hand one entry's data to another key, and an index update that one
    of them loses costs nothing.  The index is still written (Numba's tools read it).
    """

    def __init__(self, cache_path, filename_base, source_stamp):
        super().__init__(cache_path, filename_base, source_stamp)
        self._filename_base = filename_base

    def _name_of(self, key):
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:40]
        return f"{self._filename_base}.{digest}.nbc"

    def save(self, key, data):
        name = self._name_of(key)
        self._save_data(name, (key, data))  # (the data first: an indexed entry is complete)
        overloads = self._load_index()
        if overloads.get(key) != name:
            overloads[key] = name
            self._save_index(overloads)

    def load(self, key):
        try:
            recorded, data = self._load_data(self._name_of(key))
        except Exception:  # absent, unreadable or not ours: a miss (the entry is rewritten)
            return None
        if recorded != key:
            if numba_config.DEBUG_CACHE:
                print(f"[cache] data of another key in {self._name_of(key)!r}: ignored")
            return None
        return data

    def flush(self):
        # (entries are found without the index: flushing removes their data files)
        directory = self._cache_path
        prefix = self._filename_base + "."
        with contextlib.suppress(OSError):
            for name in os.listdir(directory):
                if name.startswith(prefix) and name.endswith(".nbc"):
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(directory, name))
        self._save_index({})


class _KeyedCache(FunctionCache):
    """Numba's FunctionCache of one kernel, keyed also by _CODE_FINGERPRINT, the compile
    options and Numba's code-changing settings, in _KeyedCacheFile's files.

    Raises RuntimeError, as Numba's does, where no cache directory is writable.
    """

    def __init__(self, py_func, options=None):
        super().__init__(py_func)
        self._options = repr(sorted((options or {}).items()))
        self._cache_file = _KeyedCacheFile(
            cache_path=self._cache_path,
            filename_base=self._impl.filename_base,
            source_stamp=self._impl.locator.get_source_stamp(),
        )

    def _index_key(self, sig, codegen):
        # (the qualified name spells the kernel's specialisation, whose constants are not
        # all closure variables of the kernel itself: some are its block's)
        return super()._index_key(sig, codegen) + (
            ("fastl2", self._py_func.__qualname__, _CODE_FINGERPRINT, self._options,
             _config_key()),
        )


def _jit(function, **options):
    """``njit`` with our on-disk cache (_KeyedCache), compiled in memory where no cache
    directory is writable.

    Numba picks the first writable of NUMBA_CACHE_DIR, the ``__pycache__`` beside the module
    that defines ``function`` and the user's cache directory, and raises RuntimeError when
    none is.
    """
    dispatcher = njit(cache=False, **options)(function)
    try:
        dispatcher._cache = _KeyedCache(dispatcher.py_func, options)  # (as enable_caching)
    except RuntimeError:
        pass  # no writable cache directory
    except (AttributeError, TypeError):
        pass  # a Numba whose cache internals differ: correct code first, compiled in memory
    return dispatcher


def _jit_block(function):
    """A kernel's block function: compiled as a function of its own, called once per block.

    Numba inlines closures (inner functions) into their caller before it prunes the branches
    on its constants, so a block written inside each kernel was inlined, whole, at every call,
    even in branches the kernel drops; compiled by itself it is pruned once, and once for the
    two kernels that call it (kernels.py _shared_block): it has its own entry in the on-disk
    cache (_jit), and its code is also inside each kernel's.  So its factory names it after
    everything its code depends on (``block_`` + its 1-d kernel's name): blocks of different
    code never share a symbol.
    """
    return _jit(function, nogil=True, error_model="numpy")


_compile_lock = threading.RLock()


# fork() while another thread compiles: the child would inherit this lock and Numba's compiler
# lock held by a thread that does not exist there, and its first compile would wait forever.
# So fork waits for the compile in progress: both locks join the ones fork() takes (in the order
# a compile takes them, after the import lock: fastl2._backends), released after it.
_backends.FORK_LOCKS.extend([_compile_lock, global_compiler_lock])


@contextlib.contextmanager
def _slp_vectorized():
    """Compile with LLVM's SLP vectorizer, which Numba leaves off by default.

    The 16 lanes of a block are 16 independent scalar chains after unrolling; only the SLP
    vectorizer turns them into vector instructions (it never reassociates floating-point
    operations, so results do not change).  The switch is read when a function is compiled.
    """
    with _compile_lock:
        previous = numba_config.SLP_VECTORIZE
        numba_config.SLP_VECTORIZE = 1
        try:
            yield
        finally:
            numba_config.SLP_VECTORIZE = previous


def _slp_dispatcher(dispatcher):
    """``dispatcher``, compiling (or loading from the cache) with the SLP vectorizer on."""
    # Numba's dispatcher calls _compile_for_args for argument types it has no code for yet.
    compile_for_args = dispatcher._compile_for_args

    def _compile_for_args(*args, **kws):
        with _slp_vectorized():
            return compile_for_args(*args, **kws)

    dispatcher._compile_for_args = _compile_for_args
    return dispatcher

