"""NetVigil: an open internet-shutdown observatory."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

#: NumPy's documented switch for its transparent-hugepage advice (``madvise(MADV_HUGEPAGE)``
#: on every array of 4 MiB and more; numpy.org, "Global state"). Off unless the user set
#: it: where the kernel's THP ``defrag`` is ``madvise`` (Debian's default), each such
#: array's first touch may compact memory synchronously, and on our 2-core VM that was most
#: of a big detection's CPU: a 41.5 M-point shard took 9.7-11.6 s of system time with the
#: advice and 1.6-1.9 s without, user time unchanged (docs/architecture.md decision 55).
#: Set in the environment, so processes we start (Dask workers, serve workers, import
#: jobs) inherit it; NumPy reads it when first imported.
HUGEPAGE_ENV = "NUMPY_MADVISE_HUGEPAGE"


def _no_hugepage_advice() -> None:
    if HUGEPAGE_ENV in _os.environ:
        return  # the user's choice
    _os.environ[HUGEPAGE_ENV] = "0"
    if "numpy" in _sys.modules:  # imported before us (a script, pytest): switch it now
        from numpy._core import multiarray

        toggle = getattr(multiarray, "_set_madvise_hugepage", None)
        if toggle is not None:
            toggle(False)


_no_hugepage_advice()
