"""One fuzz target under atheris (libFuzzer): ``python -m fuzz.run_target NAME [libFuzzer
flags] [corpus dirs]``.

NetVigil's modules are imported under ``atheris.instrument_imports`` so libFuzzer gets
their branch coverage (numpy, DuckDB and the stdlib are not instrumented: their coverage
would drown ours). An exception outside the target's allowed errors propagates to atheris,
which prints it, writes the input as ``crash-<sha1>`` and exits; an input that runs longer
than ``-timeout`` seconds is written as ``timeout-<sha1>``.
"""

from __future__ import annotations

import sys
from types import FunctionType, ModuleType

import atheris  # type: ignore[import-untyped]

#: modules instrumented for coverage only, without atheris's comparison tracing: in atheris
#: 3.0.0 its hook leaks the result of a comparison that returns a numpy array (``k < nbytes``
#: in ``fastrib._decode_batch``, ``arr == NL`` in ``scan_file``, ``is6 == 1`` in
#: ``visibility``; tracemalloc points there; RSS grew to 674 MB in 228k RIB inputs and 475 MB
#: in 1M CSV inputs), which would end a long run as a false out-of-memory
NO_DATAFLOW = ("netvigil.sources.bgp.fastrib", "netvigil.series.scan",
               "netvigil.sources.bgp.visibility")


def _coverage_only(module: ModuleType) -> None:
    """Give every function and method defined in ``module`` (nested code included) atheris's
    branch coverage without comparison tracing."""
    from atheris.instrument_bytecode import patch_code  # type: ignore[import-untyped]

    path = getattr(module, "__file__", None)
    found = list(vars(module).values())
    found += [v for cls in found if isinstance(cls, type) for v in vars(cls).values()]
    for obj in found:
        fn = obj.__func__ if isinstance(obj, staticmethod | classmethod) else obj
        if isinstance(fn, FunctionType) and fn.__code__.co_filename == path:
            fn.__code__ = patch_code(fn.__code__, False)


def _instrumented_imports() -> None:
    """Import NetVigil instrumented; the NO_DATAFLOW modules load plain and are then given
    coverage-only instrumentation."""
    with atheris.instrument_imports(include=["netvigil"], exclude=list(NO_DATAFLOW)):
        import fuzz.targets  # noqa: F401
    for name in NO_DATAFLOW:
        _coverage_only(sys.modules[name])


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m fuzz.run_target NAME [libFuzzer flags] [dirs]")
    name = argv[1]
    _instrumented_imports()
    from fuzz.targets import TARGETS, checked

    if name not in TARGETS:
        raise SystemExit(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    atheris.Setup([argv[0], *argv[2:]], checked(name))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
