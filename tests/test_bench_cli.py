"""``netvigil bench detect`` end to end on a tiny catalogue (the one path: facts → Pipeline →
DuckDB → run_detection → events), plus its usage errors. The full catalogue runs in
docs/detection-benchmark.md, not here (minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from netvigil.cli.main import cli
from netvigil.scenarios.simulator import data_dir

KEYS = ["detector", "class", "precision", "recall", "f1", "time_to_detect_s", "start_error_s",
        "end_error_s", "false_alarms_per_entity_year"]


def tiny_catalogue(tmp_path: Path) -> Path:
    """The shipped defaults and one 3-day Myanmar scenario (400 blocks) with a 4-hour national
    cut to 2 % on day 2 (local 12:00-16:00)."""
    shipped = (data_dir() / "catalogue.toml").read_text(encoding="utf-8")
    defaults = shipped[:shipped.index("\n[[scenario]]\n")]
    table = (data_dir() / "asn-ipv4-in-MM.csv").as_posix()
    text = defaults + f'''
[[scenario]]
class = "national-blackout"
[scenario.scenario]
id = "tiny-mm"
title = "tiny"
country = "MM"
country_name = "Myanmar"
start = 2022-02-01T00:00:00Z
end = 2022-02-04T00:00:00Z
utc_offset_hours = 6.5
as_table = "{table}"
sample_blocks = 400
seed = 3
[scenario.outages]
prober_per_30_days = 0.0
collector_per_30_days = 0.0
[[scenario.inject]]
id = "cut"
class = "national-blackout"
target = "country"
level = 0.02
day = 2
from_hour = 12
hours = 4
'''
    path = tmp_path / "catalogue.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def json_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    cat = tiny_catalogue(tmp_path_factory.mktemp("bench"))
    res = CliRunner().invoke(cli, ["bench", "detect", "--detector", "ioda.median", "--catalogue",
                                   str(cat), "--format", "json", "--jobs", "1"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert isinstance(rows, list)
    return rows


def test_json_rows_have_the_issue_keys_and_score_the_cut(json_rows: list[dict[str, object]]
                                                         ) -> None:
    (row,) = json_rows
    assert list(row) == KEYS
    assert (row["detector"], row["class"]) == ("ioda.median", "national-blackout")
    # a 4-hour national cut to 2 % is found by the reference, within an hour of its start
    assert row["recall"] == 1.0
    assert isinstance(row["start_error_s"], float) and row["start_error_s"] <= 3600
    assert isinstance(row["time_to_detect_s"], float) and 0 < row["time_to_detect_s"] <= 3600


def test_unknown_detector_and_scenario_are_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["bench", "detect", "--detector", "nope"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1].startswith("error: unknown detector 'nope'")
    res = runner.invoke(cli, ["bench", "detect", "--scenario", "atlantis"])
    assert res.exit_code == 1
    assert "unknown scenario 'atlantis'" in res.output


def test_markdown_and_table_render_the_same_rows() -> None:
    from netvigil.cli.bench_cmd import render
    from netvigil.scoring.matching import ScoreRow

    rows = [ScoreRow("ioda.median", "curfew", 0.5, 1.0, 2 / 3, 600.0, 0.0, 1200.0, 111.0),
            ScoreRow("ioda.median", "quiet", None, None, None, None, None, None, 3.25)]
    md = render(rows, "md").splitlines()
    assert md[0] == "| " + " | ".join(KEYS) + " |"
    assert md[2] == "| ioda.median | curfew | 0.5 | 1 | 0.667 | 600 | 0 | 1200 | 111 |"
    assert md[3] == "| ioda.median | quiet | – | – | – | – | – | – | 3.25 |"
    table = render(rows, "table").splitlines()
    assert table[0].split() == KEYS and table[2].split()[-1] == "3.25"


def test_a_broken_catalogue_is_a_one_line_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[scenario]]\nclass = \n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["bench", "detect", "--catalogue", str(bad)])
    assert res.exit_code == 1
    last = res.output.strip().splitlines()[-1]
    assert last.startswith(f"error: {bad}: not valid TOML") and "line 2" in last
    missing = tmp_path / "missing.toml"
    missing.write_text('[[scenario]]\nclass = "quiet"\n', encoding="utf-8")
    res = CliRunner().invoke(cli, ["bench", "detect", "--catalogue", str(missing)])
    assert res.exit_code == 1
    assert "scenario #1: missing key 'scenario'" in res.output
