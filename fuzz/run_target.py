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


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m fuzz.run_target NAME [libFuzzer flags] [dirs]")
    name = argv[1]
    with atheris.instrument_imports(include=["netvigil"]):
        from fuzz.targets import TARGETS, checked
    if name not in TARGETS:
        raise SystemExit(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    atheris.Setup([argv[0], *argv[2:]], checked(name))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
