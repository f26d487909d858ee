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

import atheris  # type: ignore[import-untyped]

#: modules instrumented for coverage only, without atheris's comparison tracing: in atheris
#: 3.0.0 its hook leaks the result of a comparison that returns a numpy array (``k < nbytes``
#: in ``fastrib._decode_batch``; tracemalloc: ~5 KB per input, RSS past 400 MB after 100k
#: inputs), which would end a long run as a false out-of-memory
NO_DATAFLOW = ("netvigil.sources.bgp.fastrib",)


def _instrumented_imports() -> None:
    """Import NetVigil instrumented: the NO_DATAFLOW modules' dependencies first (fully
    instrumented), then those modules (coverage only), then everything else."""
    from atheris.import_hook import HookManager  # type: ignore[import-untyped]

    with atheris.instrument_imports(include=["netvigil"], exclude=list(NO_DATAFLOW)):
        import netvigil.sources.bgp.mrt  # noqa: F401
    with HookManager(set(NO_DATAFLOW), set(), True, trace_dataflow=False):
        import netvigil.sources.bgp.fastrib  # noqa: F401
    with atheris.instrument_imports(include=["netvigil"]):
        import fuzz.targets  # noqa: F401


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
