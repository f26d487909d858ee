"""Render an :class:`~netvigil.reports.incident.IncidentReport` as Markdown, HTML or PDF.

One document model (a list of blocks: headings, paragraphs, tables, the chart) is built from
the report's facts; each format only lays the blocks out, so the numbers are written by one
function and the three files say the same thing. HTML is self-contained (the chart inlined as
a data URI, no outside request); PDF is drawn with matplotlib, already a dependency for the
charts, rather than a browser or a LaTeX install.
"""

from __future__ import annotations

import base64
import html
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from netvigil.events.classification import is_demand  # noqa: E402
from netvigil.model import EventKind  # noqa: E402
from netvigil.model.times import iso_utc  # noqa: E402
from netvigil.reports.chart import render  # noqa: E402
from netvigil.reports.incident import IncidentReport, level_text  # noqa: E402
from netvigil.reports.netblocks import percent, platform_name  # noqa: E402


@dataclass(frozen=True)
class Block:
    kind: str  # "h1" | "h2" | "p" | "table" | "chart"
    text: str = ""
    rows: tuple[tuple[str, ...], ...] = ()  # tables: the first row is the header


def _t(ts: int | None) -> str:
    return "ongoing" if ts is None else f"{datetime.fromtimestamp(ts, UTC):%Y-%m-%d %H:%M} UTC"


def _usd(x: float) -> str:
    return f"${x / 1e9:,.2f}B" if x >= 1e9 else f"${x / 1e6:,.1f}M"


def _severity_text(rep: IncidentReport) -> str:
    """The severity row. A platform block (or a circumvention-demand event, founded on a
    Tor surge alone) is not a loss of connectivity, so it gets no "share lost" figure."""
    ev = rep.event
    if is_demand(ev):
        return (f"{rep.severity}: circumvention demand (a surge of Tor use), not a measured"
                " loss of connectivity")
    if ev.kind is EventKind.PLATFORM_BLOCK:
        return f"{rep.severity}: platforms blocked, not a measured loss of connectivity"
    return f"{rep.severity}: {percent(rep.share_lost)} of ordinary connectivity lost"


def blocks(rep: IncidentReport) -> list[Block]:
    ev = rep.event
    out: list[Block] = [Block("h1", rep.headline)]
    if rep.reconstruction:
        out.append(Block("p", "RECONSTRUCTION - replayed from a reconstruction built from the "
                              "public timeline, not measured data."))
    out.append(Block("p", rep.summary))
    facts = [("Entity", f"{ev.entity_name} ({ev.entity.fqid})"), ("Start", _t(rep.start)),
             ("End", _t(rep.end))]
    if len(rep.episode) > 1:
        facts.append(("This event", f"{_t(ev.start)} to {_t(ev.end)} (one of "
                                    f"{len(rep.episode)} events in this episode)"))
    facts += [("Scope", ev.scope.value), ("Kind", ev.kind.value),
             ("Severity", _severity_text(rep)),
             ("Lowest level", level_text(ev.min_ratio)),
             ("Confidence", f"{ev.confidence:.2f}"), ("Rank", rep.rank_words),
             ("Event id", ev.id)]
    out.append(Block("table", rows=(("", ""), *facts)))
    out.append(Block("h2", "Timeline"))
    if rep.transitions:
        rows: list[tuple[str, ...]] = [
            (_t(t.time), f"{t.what} {level_text(t.level)}", t.band) for t in rep.transitions]
        out.append(Block("table", rows=(("Time", "Connectivity", "Band"), *rows)))
        out.append(Block("p", f"Levels from the {rep.signal} series, as a share of its median "
                              "over the week before the event."))
    else:
        out.append(Block("p", "No level series for this event."))
    if rep.restorations:
        rows = [(_t(r.start), _t(r.end), f"{r.hours:.1f} h", level_text(r.level))
                for r in rep.restorations]
        out.append(Block("h2", "Restorations"))
        out.append(Block("table", rows=(("From", "Until", "Hours", "Highest level"), *rows)))
    out.append(Block("chart"))
    if rep.affected:
        out.append(Block("h2", "Affected regions and networks"))
        rows = [(f"{e.entity_name} ({e.entity.fqid})", _t(e.start), _t(e.end),
                 level_text(e.min_ratio)) for e in rep.affected]
        out.append(Block("table", rows=(("Entity", "Start", "End", "Lowest level"), *rows)))
    if rep.platforms:
        out.append(Block("h2", "Platform blocking"))
        rows = [(", ".join(sorted({platform_name(s.signal) for s in e.signals
                                   if s.signal.startswith("platform")})) or "-",
                 f"{e.entity_name}", _t(e.start), _t(e.end)) for e in rep.platforms]
        out.append(Block("table", rows=(("Platforms", "Where", "Start", "End"), *rows)))
    out += _impact_blocks(rep)
    out.append(Block("h2", "Methodology and caveats"))
    out += [Block("p", c) for c in rep.caveats]
    out.append(Block("h2", "Data and citations"))
    out += [Block("p", c) for c in rep.citations]
    return out


def _impact_blocks(rep: IncidentReport) -> list[Block]:
    imp = rep.impact
    if imp is None:
        return []
    out = [Block("h2", "Impact")]
    if imp.people_affected is not None:
        out.append(Block("p", f"About {imp.people_affected:,.0f} people affected "
                              f"({imp.person_days or 0:,.0f} person-days over "
                              f"{imp.days:.2f} days)."))
    rows = [(c.name, f"{_usd(c.low_usd)} - {_usd(c.high_usd)}", "; ".join(c.assumptions))
            for c in imp.costs]
    if rows:
        out.append(Block("table", rows=(("Method", "Cost (US$)", "Assumptions"), *rows)))
    if imp.published:
        rows = [(p.source, _usd(p.usd), p.note) for p in imp.published]
        out.append(Block("p", "Published estimates for the same event, for comparison:"))
        out.append(Block("table", rows=(("Source", "Estimate", "Note"), *rows)))
    return out


def chart_png(rep: IncidentReport, path: Path) -> Path | None:
    if not rep.series:
        return None
    label = "RECONSTRUCTION - not measured data" if rep.reconstruction else ""
    return render(list(rep.series), [rep.event], path, title=rep.headline, label=label,
                  baseline_until=rep.event.start)


def to_markdown(rep: IncidentReport, chart: str | None) -> str:
    lines: list[str] = []
    for b in blocks(rep):
        if b.kind == "h1":
            lines += [f"# {b.text}", ""]
        elif b.kind == "h2":
            lines += [f"## {b.text}", ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "chart" and chart:
            lines += [f"![Signals of {rep.event.entity_name}]({chart})", ""]
        elif b.kind == "table":
            head, *body = b.rows
            cell = [[c.replace("|", "\\|") for c in r] for r in b.rows]
            lines.append("| " + " | ".join(cell[0]) + " |")
            lines.append("|" + "---|" * len(head))
            lines += ["| " + " | ".join(r) + " |" for r in cell[1:]]
            lines.append("")
    lines.append(f"_Generated by NetVigil at {iso_utc(int(datetime.now(UTC).timestamp()))}._")
    return "\n".join(lines) + "\n"


def to_html(rep: IncidentReport, chart: bytes | None) -> str:
    e = html.escape
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>{e(rep.headline)}</title><style>body{{font-family:sans-serif;"
             "max-width:60em;margin:2em auto;line-height:1.4}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
             "img{max-width:100%}</style></head><body>"]
    for b in blocks(rep):
        if b.kind in ("h1", "h2"):
            parts.append(f"<{b.kind}>{e(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{e(b.text)}</p>")
        elif b.kind == "chart" and chart:
            data = base64.b64encode(chart).decode()
            parts.append(f"<p><img alt='signals' src='data:image/png;base64,{data}'></p>")
        elif b.kind == "table":
            head, *body = b.rows
            parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in head) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in body]
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def to_pdf(rep: IncidentReport, chart: Path | None, path: Path) -> Path:
    """Text pages (A4 portrait, wrapped monospace-free layout) then the chart page."""
    text: list[tuple[str, str]] = []
    for b in blocks(rep):
        if b.kind in ("h1", "h2", "p"):
            text.append((b.kind, b.text))
        elif b.kind == "table":
            text += [("row", "  ".join(r)) for r in b.rows if any(r)]
    with PdfPages(path) as pdf:
        page = _new_page()
        y = 0.95
        for kind, line in text:
            size, width = {"h1": (13, 70), "h2": (11, 85)}.get(kind, (8, 120))
            for piece in textwrap.wrap(line, width) or [""]:
                if y < 0.05:
                    pdf.savefig(page)
                    plt.close(page)
                    page, y = _new_page(), 0.95
                page.text(0.06, y, piece, fontsize=size,
                          weight="bold" if kind in ("h1", "h2") else "normal")
                y -= 0.022 if kind == "p" or kind == "row" else 0.03
            y -= 0.008
        pdf.savefig(page)
        plt.close(page)
        if chart is not None:
            fig = plt.figure(figsize=(11.69, 8.27))
            fig.figimage(plt.imread(str(chart)), resize=True)
            pdf.savefig(fig)
            plt.close(fig)
    return path


def _new_page() -> Figure:
    return plt.figure(figsize=(8.27, 11.69))


def png_bytes(path: Path | None) -> bytes | None:
    return None if path is None else path.read_bytes()

