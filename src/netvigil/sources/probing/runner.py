"""Run the prober: every round becomes a :class:`ProbeRound` fact for a FactSink, plus JSONL.

The CLI (``netvigil probe run``), the observatory and the tests call :func:`run` so that all
exercise the same path from socket to store: the prober emits facts (counts), the sink —
normally :class:`netvigil.pipeline.Pipeline` — derives beliefs, states and series and writes
them with the round's cursor ``probing.vantage.<name>.last_round`` in one transaction.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from netvigil.model.facts import FactSink
from netvigil.sources.probing import icmp
from netvigil.sources.probing.prober import Prober, ProberConfig, RoundResult, loss_share
from netvigil.sources.probing.signals import round_fact, write_round_jsonl
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


def cursor_key(vantage: str) -> str:
    return f"probing.vantage.{vantage}.last_round"


def run(targets: TargetList, config: ProberConfig, rounds: int | None, *,
        out: Path | None = None, sink: FactSink | None = None,
        sock: socket.socket | None = None,
        on_round: Callable[[RoundResult, dict[str, Any]], None] | None = None) -> RunSummary:
    """Probe ``rounds`` rounds; after each, append JSONL and hand the fact to ``sink``."""
    summary = RunSummary()
    own_sock = sock is None
    if sock is None:
        sock = icmp.open_raw_socket()  # fail before anything else if not privileged
    fh: IO[str] | None = out.open("a", encoding="utf-8") if out is not None else None
    prober = Prober(targets, config, sock=sock)

    def handle(res: RoundResult) -> None:
        if fh is not None:
            write_round_jsonl(fh, res, targets)
        if sink is not None:
            sink.emit(round_fact(res, targets))
            sink.flush({cursor_key(config.vantage): f"{res.round_start:.3f}"})
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
