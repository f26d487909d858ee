"""``netvigil bench detect``: the scored detection benchmark (issue 8, deliverable 1).

Runs every registered detector (or ``--detector`` NAME …) over the simulator's labelled
scenarios (or ``--scenario`` NAME …) through the one path and prints, per detector and class,
event-level precision, recall, F1, time to detect, start and end error and false alarms per
entity-year (definitions: :mod:`netvigil.scoring.matching`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from netvigil.cli.common import handle_errors
from netvigil.scoring.bench import run_bench
from netvigil.scoring.matching import ScoreRow

COLUMNS = ("detector", "class", "precision", "recall", "f1", "time_to_detect_s",
           "start_error_s", "end_error_s", "false_alarms_per_entity_year")


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def render(rows: list[ScoreRow], fmt: str) -> str:
    """The rows as ``json`` (a list of objects), ``md`` (a Markdown table) or ``table``."""
    data = [r.as_json() for r in rows]
    if fmt == "json":
        return json.dumps(data, indent=1)
    cells = [[_cell(d[c]) for c in COLUMNS] for d in data]
    if fmt == "md":
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(lines)
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c)
              for i, c in enumerate(COLUMNS)]
    out = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


@click.group("bench")
def bench() -> None:
    """Scored benchmarks."""


@bench.command("detect")
@click.option("--detector", "detectors", multiple=True, metavar="NAME",
              help="A registered detector (repeat; default: every one).")
@click.option("--scenario", "scenarios", multiple=True, metavar="NAME",
              help="A scenario of the catalogue (repeat; default: every one).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "md"]), default="table",
              show_default=True)
@click.option("--seed", type=int, default=None,
              help="Replace every scenario's seed (the facts change, the truth does not).")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True,
              help="Scenarios run at once (one process each).")
@click.option("--catalogue", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A scenario catalogue (default: the shipped one).")
@handle_errors
def detect(detectors: tuple[str, ...], scenarios: tuple[str, ...], fmt: str,
           seed: int | None, jobs: int, catalogue: Path | None) -> None:
    """Score detectors on labelled SIMULATIONS (not measured data): precision, recall, F1,
    time to detect, start/end error, false alarms per entity-year, per class of event."""
    result = run_bench(detectors, scenarios, seed=seed, catalogue=catalogue, jobs=jobs,
                       progress=lambda line: click.echo(line, err=True))
    click.echo(render(result.rows, fmt))


def register(group: click.Group) -> None:
    group.add_command(bench)
