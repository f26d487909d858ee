"""CLI: ``netvigil entities search|show`` and ``netvigil geo lookup`` through click's runner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from netvigil.cli.main import cli


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("NETVIGIL_MMDB", raising=False)
    monkeypatch.delenv("NETVIGIL_ASN_TABLE", raising=False)
    return CliRunner()


def test_entities_search_table_lists_almaty_first(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["entities", "search", "Almaty", "--type", "region"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["id", "name", "parent"]
    assert lines[2].startswith("region/KZ-75") and "country/KZ" in lines[2]


def test_entities_search_json_finds_as9198(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["entities", "search", "AS9198", "--format", "json",
                                 "--limit", "1"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows == [{"id": "asn/9198", "type": "asn", "code": "9198",
                     "name": "KAZTELECOM-AS JSC Kazakhtelecom", "parent": "country/KZ"}]


def test_entities_show_country_counts_children(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["entities", "show", "country/kz", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["name"] == "Kazakhstan" and data["parent"] is None
    assert data["children"]["region"] == 20 and data["children"]["asn"] > 50


def test_entities_show_region_table_names_parent(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["entities", "show", "region/KZ-75"])
    assert result.exit_code == 0, result.output
    assert "country/KZ (Kazakhstan)" in result.output


def test_entities_show_unknown_and_malformed_exit_1(runner: CliRunner) -> None:
    unknown = runner.invoke(cli, ["entities", "show", "asn/4294967000"])
    assert unknown.exit_code == 1 and "unknown entity" in unknown.output
    bad = runner.invoke(cli, ["entities", "show", "kz"])
    assert bad.exit_code == 1 and "TYPE/CODE" in bad.output


def test_geo_lookup_kcell_at_blackout_date(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["geo", "lookup", "2.72.0.1", "--at", "2022-01-05T10:40:00Z",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["country"] == "KZ" and data["asn"] == 29355
    assert data["snapshot_date"] == "2022-01-04"
    assert data["country_source"] == "country-ip-blocks 2022-01-04"


def test_geo_lookup_prefix_table_output(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["geo", "lookup", "2.132.0.0/14", "--at", "2022-01-05"])
    assert result.exit_code == 0, result.output
    assert "Kazakhtelecom" in result.output and "KZ" in result.output


def test_geo_lookup_bad_address_exits_1(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["geo", "lookup", "not-an-ip"])
    assert result.exit_code == 1
    assert "not an IP address" in result.output


def test_geo_lookup_bad_date_is_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["geo", "lookup", "2.72.0.1", "--at", "yesterday"])
    assert result.exit_code == 2
