"""The observatory config: the example of the issue parses; every mistake is ``file: key:
reason``; paths are relative to the config file; the CLI reports config errors, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from netvigil.model import ErrorPolicy, InputError
from netvigil.observatory.config import load_config, parse_config
from test_observatory_support import cli

EXAMPLE = """
store = "observatory.duckdb"
[watch]
dirs = ["incoming"]
[probing]
targets = "targets.csv"
round_seconds = 600
rate = 8000
[bgp]
ris_live = "wss://ris-live.ripe.net/v1/ws/"
"""


def test_the_issue_example_parses_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    cfg = parse_config(EXAMPLE, tmp_path / "sub" / "obs.toml")
    base = (tmp_path / "sub").resolve()
    assert cfg.store == base / "observatory.duckdb"
    assert cfg.bin_seconds == 300  # default
    assert cfg.watch is not None and cfg.watch.dirs == (base / "incoming",)
    assert cfg.watch.on_error is ErrorPolicy.FAIL and cfg.watch.settle_seconds == 2.0
    assert cfg.probing is not None and cfg.probing.targets == base / "targets.csv"
    assert (cfg.probing.round_seconds, cfg.probing.rate) == (600, 8000.0)
    assert cfg.bgp is not None and cfg.bgp.ris_live.startswith("wss://")
    assert cfg.sources == ("bgp", "probing", "watch")


def test_every_section_is_optional(tmp_path: Path) -> None:
    cfg = parse_config("", tmp_path / "c.toml")
    assert (cfg.store, cfg.watch, cfg.probing, cfg.bgp, cfg.sources) == (None, None, None,
                                                                         None, ())


@pytest.mark.parametrize(("text", "message"), [
    ("stor = 'x'", "stor: unknown key"),
    ("[watch]\ndirs = ['a']\nsettle = 1", "watch.settle: unknown key"),
    ("bin_seconds = 0", "bin_seconds: must be > 0"),
    ("bin_seconds = '300'", "bin_seconds: must be an integer"),
    ("[probing]\ntargets = 't.csv'\nrate = true", "probing.rate: must be a number"),
    ("[probing]\nround_seconds = 60", "probing.targets: required in [probing]"),
    ("[watch]\ndirs = 'incoming'", "watch.dirs: must be a list of string paths"),
    ("[watch]\ndirs = ['a']\non_error = 'ignore'", "watch.on_error: must be one of fail, skip"),
    ("[bgp]\nris_live = 'https://x'", "bgp.ris_live: must start with ws:// or wss://"),
    ("watch = 1", "watch: must be a [watch] table"),
])
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    with pytest.raises(InputError) as err:
        parse_config(text, path)
    assert str(err.value) == f"{path}: {message}" or str(err.value).startswith(
        f"{path}: {message}")


def test_toml_syntax_errors_carry_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("store = 'a'\n[watch\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_config(path)
    assert err.value.line == 2 and "not valid TOML" in err.value.reason


def test_cli_reports_a_bad_config_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[watch]\ndirs = ['in']\nsettle_secs = 1\n", encoding="utf-8")
    res = cli("run", "--config", str(path), "--duration", "1")
    assert res.returncode == 1
    assert f"error: {path}: watch.settle_secs: unknown key" in res.stderr
    assert not (tmp_path / "in").exists()  # nothing started
