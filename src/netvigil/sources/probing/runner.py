"""Run the prober and persist every round: JSONL facts, block states and entity series.

The CLI (``netvigil probe run``) and the tests call :func:`run` so that both exercise the
same path from socket to store.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from netvigil.sources.probing import icmp
from netvigil.sources.probing.prober import Prober, ProberConfig, RoundResult, loss_share
from netvigil.sources.probing.signals import (
    EntityMap,
    build_entity_map,
    result_entity_round,
    write_block_states,
    write_entity_rounds,
    write_round_jsonl,
)
from netvigil.sources.probing.targets import TargetList


@dataclass
class RunSummary:
    rounds: list[dict[str, Any]] = field(default_factory=list)  # one dict per round


def _round_summary(res: RoundResult) -> dict[str, Any]:
    return {
        "round": res.index,
        "round_start": res.round_start,
        "up": int((res.states == 1).sum()),
        "down": int((res.states == 0).sum()),
        "uncertain": int((res.states == -1).sum()),
        "unprobed": int((res.states == -2).sum()),
        "probes": int(res.sent.sum()),
        "loss": loss_share(res),
        "backlog": res.backlog,
    }


def run(targets: TargetList, config: ProberConfig, rounds: int | None, *,
        out: Path | None = None, store: Any | None = None, emap: EntityMap | None = None,
        sock: socket.socket | None = None, block_states: bool = True,
        min_coverage: float = 1.0,
        on_round: Callable[[RoundResult, dict[str, Any]], None] | None = None) -> RunSummary:
    """Probe ``rounds`` rounds; after each, append JSONL and write the store (if given)."""
    step = max(1, int(round(config.round_seconds)))
    if store is not None and emap is None:
        emap = build_entity_map(targets)
    summary = RunSummary()
    own_sock = sock is None
    if sock is None:
        sock = icmp.open_raw_socket()  # fail before anything else if not privileged
    fh: IO[str] | None = out.open("a", encoding="utf-8") if out is not None else None
    prober = Prober(targets, config, sock=sock)

    def handle(res: RoundResult) -> None:
        if fh is not None:
            write_round_jsonl(fh, res, targets)
        if store is not None and emap is not None:
            with store.transaction():
                write_entity_rounds(store, [result_entity_round(res, emap,
                                                                min_coverage=min_coverage)],
                                    emap, step)
                if block_states:
                    write_block_states(store, targets, res.states, res.round_start, step)
                store.set_state(f"probing.vantage.{config.vantage}.last_round",
                                f"{res.round_start:.3f}")
        info = _round_summary(res)
        summary.rounds.append(info)
        if on_round is not None:
            on_round(res, info)

    try:
        asyncio.run(prober.run(rounds, handle))
    finally:
        if fh is not None:
            fh.close()
        if own_sock:
            sock.close()
    return summary
