"""Issue 12, defects 6, 9 and 10: hostile series files through the real CLI.

Every case goes through ``netvigil series import FILE --store S`` (the one path real files
take) and checks the three promises of the error boundary: no traceback, the file and line
(or JSON path) in the error, and the store exactly as it was before (under ``fail``), or the
bad row counted per reason with its first line (under ``skip``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from netvigil.cli.main import cli
from netvigil.model.signals import KNOWN_SIGNALS
from netvigil.series import rules
from netvigil.store import Store

HEADER = "time,entity_type,entity_code,signal,value,entity_name\n"
GOOD_ROW = "1641340800,country,KZ,bgp,10,Kazakhstan\n"
SEPARATORS = ["\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85"]


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store already holding one series (so "unchanged" is not just "empty")."""
    p = tmp_path / "store" / "nv.duckdb"
    seed = tmp_path / "seed.csv"
    seed.write_text("time,entity_type,entity_code,signal,value\n"
                    "1641340800,country,UA,bgp,5\n1641341100,country,UA,bgp,6\n",
                    encoding="utf-8")
    res = run("series", "import", seed, "--store", p)
    assert res.exit_code == 0, res.output
    return p


def snapshot(store_path: Path) -> tuple[Any, ...]:
    with Store(store_path) as s:
        con = s.connection
        points = con.execute("SELECT * FROM points ORDER BY ALL").fetchall()
        series = con.execute("SELECT * FROM series ORDER BY ALL").fetchall()
        entities = con.execute("SELECT * FROM entities ORDER BY ALL").fetchall()
        imports = con.execute("SELECT count(*) FROM imports").fetchall()
    return points, series, entities, imports


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def assert_refused(res: Result, where: str, *needles: str) -> None:
    """Exit non-zero, one short error line naming ``where``, no traceback."""
    out = res.output
    assert res.exit_code != 0, out
    assert "Traceback" not in out and not isinstance(res.exception, ValueError | RecursionError
                                                     | OverflowError), out
    assert where in out, out
    for n in needles:
        assert n in out, out
    assert len(out.strip().splitlines()) == 1 and len(out) < 400, out
    assert not rules.CONTROL_RE.search(out.rstrip("\n")), repr(out)  # no raw control chars


def csv_file(tmp_path: Path, bad_row: str) -> Path:
    """Header (line 1), a good row (line 2), the bad row (line 3), a good row (line 4)."""
    return write(tmp_path, "x.csv", HEADER + GOOD_ROW + bad_row + "\n"
                 + "1641341100,country,KZ,bgp,11,Kazakhstan\n")


def check_csv(tmp_path: Path, store_path: Path, bad_row: str, category: str) -> None:
    f = csv_file(tmp_path, bad_row)
    before = snapshot(store_path)
    res = run("series", "import", f, "--store", store_path)
    assert_refused(res, f"{f}:3", category)
    assert snapshot(store_path) == before
    res = CliRunner().invoke(cli, ["series", "import", str(f), "--on-error", "skip",
                                   "--store", str(store_path)])
    assert res.exit_code == 0, res.output
    assert f"{category}: 1 (first at 3)" in res.stderr, res.stderr
    assert "3 rows read, 2 written" in res.stdout, res.stdout


# ---------------------------------------------------------------- defect 6: huge numbers

HUGE_TIMES = ["1e308", "99999999999999999999", "-9223372036854775809", "1" + "0" * 4300,
              "1e12", "253402300800"]


@pytest.mark.parametrize("raw", HUGE_TIMES, ids=lambda r: r[:24])
def test_defect6_huge_times_in_csv_are_refused_with_the_line(
        tmp_path: Path, store_path: Path, raw: str) -> None:
    cat = "bad time" if len(raw) > 4000 else "time out of range"
    check_csv(tmp_path, store_path, f"{raw},country,KZ,bgp,1,", cat)


@pytest.mark.parametrize("raw", ["1e400", "9" * 4301, "-1e400"], ids=lambda r: r[:12])
def test_defect6_huge_values_in_csv_are_refused_with_the_line(
        tmp_path: Path, store_path: Path, raw: str) -> None:
    check_csv(tmp_path, store_path, f"1641341400,country,KZ,my-index,{raw},", "non-finite value")


def ioda(series: list[dict[str, Any]] | str) -> str:
    return series if isinstance(series, str) else json.dumps({"type": "signals", "data": series})


def one(**kw: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"entityType": "country", "entityCode": "KZ", "datasource": "bgp",
                         "from": 1641340800, "step": 300, "values": [1, 2]}
    s.update(kw)
    return s


def check_ioda(tmp_path: Path, store_path: Path, text: str, where: str, category: str) -> None:
    f = write(tmp_path, "x.json", text)
    before = snapshot(store_path)
    res = run("series", "import", f, "--store", store_path)
    assert_refused(res, where, category, str(f))
    assert snapshot(store_path) == before
    res = CliRunner().invoke(cli, ["series", "import", str(f), "--on-error", "skip",
                                   "--store", str(store_path)])
    assert res.exit_code == 0, res.output
    assert f"{category}: 1 (first at {where})" in res.stderr, res.stderr


@pytest.mark.parametrize(("text", "where", "category"), [
    (ioda([one(), one(entityCode="UA", **{"from": 10**19})]), "data[1].from",
     "time out of range"),
    (ioda([one(), one(entityCode="UA", step=10**30)]), "data[1].from", "time out of range"),
    (ioda([one(), one(entityCode="UA", step=-300)]), "data[1].step", "bad series"),
    (ioda([one()])[:-2] + ', {"entityType": "country", "entityCode": "UA", "datasource":'
     ' "bgp", "from": ' + "1" * 4301 + ', "step": 300, "values": [1]}]}',
     "data[1].from", "bad series"),
    (ioda([one()])[:-2] + ', {"entityType": "country", "entityCode": "UA", "datasource":'
     ' "bgp", "from": 1641340800, "step": 300, "values": [' + "1" * 4301 + "]}]}",
     "data[1].values[0]", "bad value"),
    (ioda([one()])[:-2] + ', {"entityType": "country", "entityCode": "UA", "datasource":'
     ' "bgp", "from": 1641340800, "step": 300, "values": [1e400]}]}',
     "data[1].values[0]", "bad value"),
], ids=["from-1e19", "step-1e30", "step-negative", "from-4301-digits", "value-4301-digits",
        "value-1e400"])
def test_defect6_huge_numbers_in_ioda_json_are_refused_with_the_path(
        tmp_path: Path, store_path: Path, text: str, where: str, category: str) -> None:
    check_ioda(tmp_path, store_path, text, where, category)


@pytest.mark.parametrize("depth", [100_000, rules.MAX_JSON_DEPTH + 1])
@pytest.mark.parametrize("policy", ["fail", "skip"])
def test_defect6_deeply_nested_json_is_refused_whole_file(
        tmp_path: Path, store_path: Path, depth: int, policy: str) -> None:
    f = write(tmp_path, "deep.json", '{"data": ' + "[" * depth + "]" * depth + "}")
    before = snapshot(store_path)
    res = run("series", "import", f, "--on-error", policy, "--store", store_path)
    assert_refused(res, str(f), "JSON too deep")
    assert snapshot(store_path) == before


def test_defect6_json_at_the_depth_bound_still_parses(tmp_path: Path, store_path: Path) -> None:
    """The bound is not off by one: an IODA envelope nested within the bound imports (the
    extra nesting sits in a value, refused as one bad value)."""
    # envelope, data, series, values: 4 levels, so the inner list may nest MAX - 4 deep
    inner = "[" * (rules.MAX_JSON_DEPTH - 4) + "]" * (rules.MAX_JSON_DEPTH - 4)
    text = ioda([one()])[:-2] + (', {"entityType": "country", "entityCode": "UA", '
                                 '"datasource": "bgp", "from": 1641340800, "step": 300, '
                                 f'"values": [{inner}, 4]}}]}}')
    f = write(tmp_path, "ok.json", text)
    res = CliRunner().invoke(cli, ["series", "import", str(f), "--on-error", "skip",
                                   "--store", str(store_path)])
    assert res.exit_code == 0, res.output
    assert "bad value: 1 (first at data[1].values[0])" in res.stderr, res.stderr


# ------------------------------------------------------- defect 9: Unicode line separators

@pytest.mark.parametrize("sep", SEPARATORS, ids=lambda s: f"U+{ord(s):04X}")
@pytest.mark.parametrize("quoted", [False, True])
def test_defect9_unicode_separators_do_not_split_records_or_shift_lines(
        tmp_path: Path, store_path: Path, sep: str, quoted: bool) -> None:
    """The separator stays inside its field (so the record is refused as a whole by rule
    control-name, at its own line) and the lines after it keep their numbers."""
    name = f'"Kaz{sep}akhstan"' if quoted else f"Kaz{sep}akhstan"
    f = write(tmp_path, "sep.csv", HEADER + f"1641340800,country,KZ,bgp,10,{name}\n"
              + "1641341100,country,KZ,bgp,11,Kazakhstan\n"
              + "1641341400,country,KZ,bgp,x,Kazakhstan\n")
    res = CliRunner().invoke(cli, ["series", "import", str(f), "--on-error", "skip",
                                   "--store", str(store_path)])
    assert res.exit_code == 0, res.output
    assert "control character: 1 (first at 2)" in res.stderr, res.stderr
    assert "non-numeric value: 1 (first at 4)" in res.stderr, res.stderr
    assert "3 rows read, 1 written" in res.stdout, res.stdout
    with Store(store_path) as s:
        names = [r[0] for r in s.connection.execute("SELECT name FROM entities").fetchall()]
    assert "Kaz" not in names and "Kazakhstan" in names
    before = snapshot(store_path)
    res = run("series", "import", f, "--store", store_path)
    assert_refused(res, f"{f}:2", "control character")
    assert snapshot(store_path) == before


@pytest.mark.parametrize("sep", SEPARATORS, ids=lambda s: f"U+{ord(s):04X}")
def test_defect9_separator_in_the_header_does_not_split_it(tmp_path: Path,
                                                           store_path: Path, sep: str) -> None:
    f = write(tmp_path, "h.csv", f"time,entity_type,entity_code,signal,value{sep}x\n"
              + "1641340800,country,KZ,bgp,10\n")
    res = run("series", "import", f, "--store", store_path)
    assert_refused(res, f"{f}:1", "unknown column")


# ----------------------------------------------------- defect 10: implausible values

RULE_CASES = [
    ("1641341400,country,XX,bgp,1,", "unknown entity code"),
    ("1641341400,region,KZ-99,bgp,1,", "unknown entity code"),
    ("1641341400,region,XX-99,bgp,1,", "unknown entity code"),
    ("1641341400,country,KZ,bgp,-5,", "negative count"),
    ("1641341400,country,KZ,bgp-v6,-1,", "negative count"),
    ("1641341400,country,KZ,probing,-0.5,", "negative count"),
    ("1641341400,country,KZ,telescope,-1,", "negative count"),
    ("\u0661\u0666\u0664\u0661\u0663\u0664\u0661\u0664\u0660\u0660,country,KZ,bgp,1,",
     "non-ASCII time"),
    ("\uff12\uff10\uff12\uff12-01-05T00:10:00Z,country,KZ,bgp,1,", "non-ASCII time"),
    ("1641341400,country,KZ,bgp,\uff11\uff12,", "non-ASCII value"),
    ("1641341400,country,KZ,my-index,\u0661\u0662,", "non-ASCII value"),
    ("1641341400,country,KZ,b\x01gp,1,", "control character"),
    ("1641341400,country,KZ,bgp\x7f,1,", "control character"),
    ("1641341400,country,KZ,bgp,1,Kaz\x00akhstan", "control character"),
    ("1641341400,country,KZ,bgp,1,\"Kazakh\tstan\"", "control character"),
    ("1641341400,country,KZ," + "s" * (rules.MAX_SIGNAL_LEN + 1) + ",1,", "signal name too long"),
    ("1641341400,country,KZ," + "s" * 10_000 + ",1,", "signal name too long"),
]


@pytest.mark.parametrize(("row", "category"), RULE_CASES, ids=lambda x: repr(x)[:30])
def test_defect10_implausible_rows_are_refused_by_rule(
        tmp_path: Path, store_path: Path, row: str, category: str) -> None:
    check_csv(tmp_path, store_path, row, category)


def test_defect10_unknown_parent_country_of_an_as_is_refused(tmp_path: Path,
                                                            store_path: Path) -> None:
    f = write(tmp_path, "p.csv", "time,entity_type,entity_code,signal,value,parent\n"
              "1641340800,asn,AS9198,bgp,1,KZ\n1641340800,asn,AS1,bgp,1,XX\n")
    before = snapshot(store_path)
    res = run("series", "import", f, "--store", store_path)
    assert_refused(res, f"{f}:3", "unknown entity code", "parent 'XX'")
    assert snapshot(store_path) == before


def test_defect10_skip_counts_each_rule_with_its_first_lines(tmp_path: Path,
                                                             store_path: Path) -> None:
    rows = [r for r, _ in RULE_CASES]
    f = write(tmp_path, "all.csv", HEADER + GOOD_ROW + "\n".join(rows) + "\n")
    res = CliRunner().invoke(cli, ["series", "import", str(f), "--on-error", "skip",
                                   "--store", str(store_path)])
    assert res.exit_code == 0, res.output
    expected: dict[str, list[int]] = {}
    for i, (_, cat) in enumerate(RULE_CASES):
        expected.setdefault(cat, []).append(i + 3)
    for cat, lines in expected.items():
        first = ", ".join(map(str, lines[:5]))
        assert f"{cat}: {len(lines)} (first at {first})" in res.stderr, res.stderr
    assert f"{len(rows) + 1} rows read, 1 written" in res.stdout, res.stdout


def test_defect10_plausible_edges_are_accepted(tmp_path: Path, store_path: Path) -> None:
    """What the rules must NOT refuse: the user-assigned XK, real regions, negative values of
    signals that are not counts, a signal at the length bound, non-Latin names (and the
    zero-width non-joiner of Persian names, a format character, not a control)."""
    rows = [
        "1641340800,country,XK,bgp,3,Kosovo",
        "1641340800,region,KZ-75,bgp,3,Almaty",
        "1641340800,country,KZ,my-index,-3,\u049a\u0430\u0437\u0430\u049b\u0441\u0442\u0430\u043d",
        "1641340800,country,IR,probing-latency-delta,-2.5,\u0627\u06cc\u0631\u0627\u0646\u200c",
        "1641340800,country,KZ," + "s" * rules.MAX_SIGNAL_LEN + ",1,",
        "1641340800,country,KZ,bgp,0,",
    ]
    f = write(tmp_path, "ok.csv", HEADER + "\n".join(rows) + "\n")
    res = run("series", "import", f, "--store", store_path)
    assert res.exit_code == 0, res.output
    assert f"{len(rows)} rows read, {len(rows)} written" in res.output, res.output


def test_defect10_ioda_json_follows_the_same_rules(tmp_path: Path, store_path: Path) -> None:
    doc = ioda([
        one(entityCode="XX"),
        one(entityType="region", entityCode="KZ-99"),
        one(datasource="ping-slash24", values=[5, -1]),
        one(entityCode="UA", datasource="b\x01gp"),
        one(entityCode="UA", datasource="s" * (rules.MAX_SIGNAL_LEN + 1)),
        one(entityCode="UA", entityName="Ukr\u2028aine", datasource="telescope"),
        one(entityCode="XK", datasource="merit-nt", values=[7, 8]),
    ])
    f = write(tmp_path, "rules.json", doc)
    before = snapshot(store_path)
    res = run("series", "import", f, "--store", store_path)
    assert_refused(res, "data[0].entityCode", "unknown entity code")
    assert snapshot(store_path) == before
    res = CliRunner().invoke(cli, ["series", "import", str(f), "--on-error", "skip",
                                   "--store", str(store_path)])
    assert res.exit_code == 0, res.output
    err = res.stderr
    assert "unknown entity code: 2 (first at data[0].entityCode, data[1].entityCode)" in err, err
    assert "negative count: 1 (first at data[2].values[1])" in err, err
    assert ("control character: 2 (first at data[3].datasource, data[5].entityName)"
            in err), err
    assert "signal name too long: 1 (first at data[4].datasource)" in err, err
    assert "3 written" in res.stdout, res.stdout  # KZ probing 5, XK telescope 7 and 8


def test_defect10_rules_table_has_stable_ids_and_count_signals_from_the_model() -> None:
    assert len(rules.RULES) == len({r.id for r in rules.RULES.values()})
    assert all(r.category and r.text for r in rules.RULES.values())
    counts = {n for n, k in KNOWN_SIGNALS.items() if k.direction.value == "higher-is-better"
              and k.family.value in ("bgp", "probing", "telescope")}
    assert rules.COUNT_SIGNALS == counts
    assert {"bgp", "bgp-v6", "probing", "telescope"} <= rules.COUNT_SIGNALS
    assert not rules.COUNT_SIGNALS & {"probing-loss", "probing-latency", "probing-state"}
    assert rules.known_code("country", "XK") and not rules.known_code("country", "XX")
    assert rules.known_code("region", "KZ-75") and not rules.known_code("region", "KZ-99")
