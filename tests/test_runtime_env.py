"""NumPy's hugepage advice is off in every netvigil process unless the user chose
(``netvigil/__init__.py``, docs/architecture.md decision 55)."""

from __future__ import annotations

import os
import subprocess
import sys

# numpy first, as a script or pytest does; ``_set_madvise_hugepage`` returns the state it
# replaces, so printing its result reads the state netvigil left
_PROBE = ("import numpy, os; import netvigil; from numpy._core import multiarray as m;"
          " print(os.environ.get('NUMPY_MADVISE_HUGEPAGE'), m._set_madvise_hugepage(True))")


def _run(env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.split()


def test_advice_off_by_default_and_inherited() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    assert _run(env) == ["0", "False"]


def test_user_choice_kept() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    env["NUMPY_MADVISE_HUGEPAGE"] = "1"
    assert _run(env) == ["1", "True"]
