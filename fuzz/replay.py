"""Replay one input through a fuzz target: ``python -m fuzz.replay TARGET FILE``.

Prints the CPU seconds the input took (``time.process_time``: every thread of the process,
so the RIB reader's decompression thread counts) and exits 1 if it raised anything outside
the target's allowed errors (the traceback is printed). The runner uses it to confirm a
libFuzzer timeout: libFuzzer measures wall time, which a loaded machine stretches, while
a hang is an input that needs more than ``--timeout`` seconds of CPU.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fuzz.targets import checked


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        raise SystemExit("usage: python -m fuzz.replay TARGET FILE")
    one = checked(argv[1])
    data = Path(argv[2]).read_bytes()
    t0 = time.process_time()
    try:
        one(data)
    finally:
        print(f"cpu_seconds={time.process_time() - t0:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
