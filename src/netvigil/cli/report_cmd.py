"""``netvigil report EVENT_ID``: a NetBlocks-style incident report (Markdown, HTML or PDF)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from netvigil.cli.common import handle_errors, open_store, store_option


@click.command("report")
@store_option
@click.argument("event_id")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "pdf"]), default="md",
              show_default=True, help="Report format.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file (default: report-<EVENT_ID>.<format>; Markdown writes its "
                   "chart beside it as <name>.png).")
@handle_errors
def report(store_path: Path, event_id: str, fmt: str, out: Path | None) -> None:
    """Write an incident report for one stored event: headline, timeline of transitions as a
    share of ordinary levels, restorations, affected regions and networks, blocked platforms,
    impact (people and cost, three methods), rank among the entity's events, caveats and
    citations. Event ids are listed by `netvigil events`."""
    from netvigil.reports.incident import build_report
    from netvigil.reports.render import chart_png, to_html, to_markdown, to_pdf

    out = out if out is not None else Path(f"report-{event_id}.{fmt}")
    with open_store(store_path, read_only=True) as store:
        rep = build_report(store, event_id)
    tmp_dir = Path(tempfile.mkdtemp(prefix="netvigil-report-"))
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "md":
        chart = chart_png(rep, out.with_suffix(".png"))
        _atomic_write(out, to_markdown(rep, chart.name if chart else None).encode())
    elif fmt == "html":
        chart = chart_png(rep, tmp_dir / "chart.png")
        _atomic_write(out, to_html(rep, chart.read_bytes() if chart else None).encode())
    else:
        chart = chart_png(rep, tmp_dir / "chart.png")
        part = out.with_name(out.name + ".part")
        to_pdf(rep, chart, part)
        part.replace(out)
    click.echo(f"{rep.headline}\nReport: {out}")


def _atomic_write(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    part.replace(path)


def register(group: click.Group) -> None:
    group.add_command(report)
