"""The public contract end to end: a CSV written by someone else goes through
``series import`` → ``detect`` → ``events --format json`` and yields the documented fields;
a malformed file exits non-zero with its line number and leaves the store unchanged."""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from netvigil.cli.main import cli

EVENT_FIELDS = {
    "id", "entity_type", "entity_code", "entity_name", "start", "end", "status", "scope",
    "kind", "score", "confidence", "min_ratio", "signals",
}
T0 = datetime(2023, 3, 1, tzinfo=UTC)
DROP_START = T0 + timedelta(days=8, hours=6)
DROP_END = DROP_START + timedelta(hours=3)


def _write_third_party_csv(path: Path) -> None:
    """Nine days of 10-minute points for one country and one AS, with a 3-hour cut on day 9.

    Written the way an outside tool would: ISO times with an offset, lower-case codes,
    'AS'-prefixed ASNs, an entity_name column and one missing value.
    """
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "entity_type", "entity_code", "signal", "value", "entity_name"])
        t = T0
        i = 0
        while t < T0 + timedelta(days=9):
            level = 1000 + 80 * math.sin(2 * math.pi * (t.hour * 60 + t.minute) / 1440)
            cut = DROP_START <= t < DROP_END
            local = t.astimezone().isoformat() if i % 2 else t.isoformat().replace("+00:00", "Z")
            value = "" if i == 17 else f"{(level * 0.03 if cut else level):.1f}"
            w.writerow([local, "country", "uz", "probing", value, "Uzbekistan"])
            w.writerow([int(t.timestamp()), "asn", "AS8193", "probing",
                        f"{(200 * 0.02 if cut else 200):.1f}", "Uzbektelecom"])
            t += timedelta(minutes=10)
            i += 1


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_third_party_csv_goes_through_import_detect_and_events(tmp_path: Path) -> None:
    store = str(tmp_path / "s.duckdb")
    src = tmp_path / "theirs.csv"
    _write_third_party_csv(src)

    code, out, err = _run("series", "import", str(src), "--store", store)
    assert code == 0, err
    code, out, _ = _run("series", "list", "--format", "json", "--store", store)
    listed = {(r["entity_type"], r["entity_code"], r["signal"]): r for r in json.loads(out)}
    assert set(listed) == {("country", "UZ", "probing"), ("asn", "8193", "probing")}

    assert _run("detect", "--store", store)[0] == 0
    code, out, err = _run("events", "--format", "json", "--store", store)
    assert code == 0, err
    events = json.loads(out)
    national = [e for e in events if e["entity_type"] == "country" and e["entity_code"] == "UZ"]
    assert national, events
    ev = national[0]
    assert EVENT_FIELDS <= set(ev)
    assert ev["scope"] == "national"
    assert ev["entity_name"] == "Uzbekistan"
    start = datetime.fromisoformat(ev["start"].replace("Z", "+00:00"))
    assert abs((start - DROP_START).total_seconds()) <= 600
    assert ev["end"] is not None
    assert ev["min_ratio"] < 0.1
    network = [e for e in events if e["entity_type"] == "asn"]
    assert network and network[0]["scope"] == "network"

    # Re-running detection over unchanged data changes nothing.
    assert _run("detect", "--store", store)[0] == 0
    assert json.loads(_run("events", "--format", "json", "--store", store)[1]) == events


def test_malformed_file_exits_with_line_number_and_store_is_unchanged(tmp_path: Path) -> None:
    store = str(tmp_path / "s.duckdb")
    good = tmp_path / "good.csv"
    good.write_text("time,entity_type,entity_code,signal,value\n"
                    "2022-01-01T00:00:00Z,country,KZ,probing,10\n"
                    "2022-01-01T00:10:00Z,country,KZ,probing,11\n")
    assert _run("series", "import", str(good), "--store", store)[0] == 0
    before = _run("series", "list", "--format", "json", "--store", store)[1]

    bad = tmp_path / "bad.csv"
    bad.write_text("time,entity_type,entity_code,signal,value\n"
                   "2022-01-01T00:20:00Z,country,KZ,probing,12\n"
                   "2022-01-01T00:30:00Z,country,KZ,probing,twelve\n")
    code, _out, err = _run("series", "import", str(bad), "--store", store)
    assert code != 0
    assert "bad.csv:3" in err
    assert _run("series", "list", "--format", "json", "--store", store)[1] == before
