"""``netvigil tor import``: Tor Metrics userstats CSVs -> tor-users / tor-bridge-users.

The files are written here in the layout metrics.torproject.org serves (comment lines, then
``date,country,users,lower,upper,frac`` or ``date,country,users,frac``); no real copy was
available offline (shared/data has none)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from netvigil.cli.main import cli
from netvigil.model import InputError, signal_kind
from netvigil.sources.ooni.tor_userstats import parse_userstats
from netvigil.store import Store

D0 = 1_641_168_000  # 2022-01-03
DAY = 86400

RELAY = """\
# (c) The Tor Project, Inc. Licensed under CC BY 3.0 US.
# Source: https://metrics.torproject.org/userstats-relay-country.csv
date,country,users,lower,upper,frac
2022-01-03,,2123456,,,93
2022-01-03,kz,1850,1200,2400,93
2022-01-03,??,5000,,,93
2022-01-04,kz,9400,7000,11800,93
2022-01-05,kz,15,,,92
2022-01-06,kz,,,,90
2022-01-03,de,250000,240000,260000,93
"""

BRIDGE = """\
date,country,users,frac
2022-01-03,kz,300,90
2022-01-04,kz,2900,90
2022-01-04,a1,12,90
"""


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def stored(store: Path, signal: str, code: str = "KZ") -> dict[int, float]:
    with Store(store, read_only=True) as s:
        rows = s.connection.execute(
            "SELECT time, value FROM points WHERE entity_type = 'country' AND entity_code = ?"
            " AND signal = ? ORDER BY time", [code, signal]).fetchall()
    return {(int(t) - D0) // DAY: v for t, v in rows}


def test_relay_and_bridge_files_feed_their_series(tmp_path: Path) -> None:
    relay = tmp_path / "userstats-relay-country.csv"
    relay.write_text(RELAY)
    bridge = tmp_path / "userstats-bridge-country.csv.gz"
    bridge.write_bytes(gzip.compress(BRIDGE.encode()))
    store = tmp_path / "s.duckdb"
    res = run("tor", "import", relay, bridge, "--store", store)
    assert res.exit_code == 0, res.output
    assert "7 rows read, 5 tor-users points, 2 without a country" in res.output
    assert "3 rows read, 2 tor-bridge-users points, 1 without a country" in res.output
    users = stored(store, "tor-users")
    assert [users[d] for d in range(3)] == [1850.0, 9400.0, 15.0]
    assert users[3] is None or math.isnan(users[3])  # no estimate: missing, not 0
    assert stored(store, "tor-users", "DE") == {0: 250000.0}
    assert stored(store, "tor-bridge-users") == {0: 300.0, 1: 2900.0}
    with Store(store, read_only=True) as s:
        assert s.connection.execute("SELECT format, rows_read FROM imports ORDER BY id"
                                    ).fetchall() == [("tor-userstats", 7), ("tor-userstats", 3)]
        assert s.connection.execute("SELECT step FROM series WHERE signal = 'tor-users' "
                                    "AND entity_code = 'KZ'").fetchone() == (DAY,)
    again = run("tor", "import", relay, "--store", store)
    assert again.exit_code == 0 and stored(store, "tor-users").keys() == users.keys()


def test_signals_are_known_and_judged_as_counts() -> None:
    for name in ("tor-users", "tor-bridge-users"):
        kind = signal_kind(name)
        assert kind.native_step == DAY and kind.higher_is_better


@pytest.mark.parametrize(("line", "reason"), [
    ("2022-01-07,kz,12", "wrong number of columns"),
    ("2022-13-01,kz,12,,,90", "bad date"),
    ("2022-01-07,kz,-3,,,90", "bad number"),
    ("2022-01-07,kz,nan,,,90", "bad number"),
    ("2022-01-07,kz,١٢,,,90", "bad number"),
    ("2022-01-07,qq,12,,,90", "unknown country"),
    ("2022-01-04,kz,12,,,90", "duplicate row"),
])
def test_bad_rows_fail_with_file_and_line_or_are_counted(tmp_path: Path, line: str,
                                                         reason: str) -> None:
    f = tmp_path / "relay.csv"
    f.write_text(RELAY + line + "\n")
    with pytest.raises(InputError, match=reason) as err:
        parse_userstats(f, "fail")
    assert f"{f}:11" in str(err.value)
    out = parse_userstats(f, "skip")
    assert out.skipped == 1 and len(out.batch) == 5
    store = tmp_path / "s.duckdb"
    res = run("tor", "import", f, "--store", store)
    assert res.exit_code == 1 and reason in res.stderr and not store.exists()


def test_a_header_of_another_format_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("time,entity_type,entity_code,signal,value\n")
    with pytest.raises(InputError, match="header must be date,country,users"):
        parse_userstats(f)
