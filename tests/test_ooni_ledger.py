"""The series ``netvigil ooni import`` writes are a function of the SET of distinct
measurements ever accepted: any order, any split of the files, re-imports and duplicates
give the same points as one import of everything (the store's ledger of accepted
measurements, ``sources/ooni/ledger.py``).

The measurement set is built here (telegram and signal tests in OONI's raw shape, two
countries, an AS measured in both, a blocking mechanism that first appears in a later
part, a silence longer than two weeks, a measurement without ``report_id`` and copies of
one measurement under another file); the property is checked on seeded random splits and
permutations against the all-at-once import, never against hand-written values.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from netvigil.cli.main import cli
from netvigil.store.duck import Store

T0 = 1_640_995_200  # 2022-01-01 00:00 UTC
H = 3600


def run(*args: str | Path) -> str:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def _doc(test: str, t: int, cc: str, asn: int, blocked: str | None, n: int) -> dict[str, Any]:
    if test == "telegram":
        fail = {"tcp": "connection_reset", "dns": "dns_nxdomain_error"}.get(blocked or "")
        keys: dict[str, Any] = {
            "tcp_connect": [{"ip": "149.154.167.51", "port": 443,
                             "status": {"success": blocked != "tcp",
                                        "failure": fail if blocked == "tcp" else None}}] * 4,
            "requests": [{"failure": fail, "request": {"url": "http://149.154.167.51/"}}] * 2,
            "telegram_web_status": "blocked" if blocked else "ok",
            "telegram_web_failure": fail}
    else:
        keys = {"signal_backend_status": "ok", "signal_backend_failure": None}
    return {"test_name": test, "test_version": "0.3.0" if test == "telegram" else "0.2.4",
            "data_format_version": "0.2.0", "input": None,
            "measurement_start_time": datetime.fromtimestamp(t, UTC).strftime(
                "%Y-%m-%d %H:%M:%S"),
            "probe_cc": cc, "probe_asn": f"AS{asn}", "probe_network_name": f"net{asn}",
            "report_id": f"r{n}", "test_keys": keys}


def measurement_set() -> list[dict[str, Any]]:
    rng = random.Random(7)
    hours = [*range(30), *range(36, 48), *range(24 * 17, 24 * 17 + 6)]  # gaps: 6 h, 15 d
    docs: list[dict[str, Any]] = []
    for h in hours:
        for cc, asn in (("KZ", 9198), ("KZ", 29355), ("UZ", 29355), ("UZ", 8193)):
            if rng.random() < 0.35:
                continue
            test = rng.choice(("telegram", "telegram", "signal"))
            blocked = None
            if test == "telegram" and 10 <= h < 20 and cc == "KZ":
                blocked = "tcp"
            if test == "telegram" and h >= 40 and asn == 8193:
                blocked = "dns"  # a mechanism first seen late
            docs.append(_doc(test, T0 + h * H + rng.randrange(H), cc, asn, blocked,
                             len(docs)))
    nameless = _doc("signal", T0 + 5 * H + 7, "KZ", 9198, None, 0)
    del nameless["report_id"]  # keyed by its content hash
    return [*docs, nameless]


def _write(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def points(store: Path) -> list[tuple[Any, ...]]:
    with Store(store, read_only=True) as s:
        return s.connection.execute(
            "SELECT entity_type, entity_code, signal, time, value FROM points ORDER BY ALL"
        ).fetchall()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]],
                                                                 list[tuple[Any, ...]]]:
    """The all-at-once import, and a re-import of the same file into the same store that
    must change nothing (its points are the reference only if both agree)."""
    tmp = tmp_path_factory.mktemp("ref")
    docs = measurement_set()
    store = tmp / "all.duckdb"
    f = _write(tmp / "all.jsonl", docs)
    run("ooni", "import", f, "--store", store)
    first = points(store)
    out = run("ooni", "import", f, "--store", store)
    assert f"0 new to the store, {len(docs)} stored before" in out, out
    assert points(store) == first
    return docs, first


def test_reference_exercises_what_the_property_is_about(
        reference: tuple[list[dict[str, Any]], list[tuple[Any, ...]]]) -> None:
    _docs, ref = reference
    signals = {(r[0], r[1], r[2]) for r in ref}
    # an AS measured in two countries, both mechanisms, the volume series
    assert ("asn", "29355", "platform:telegram") in signals
    assert {("country", "KZ", "platform-blocked:telegram:tcp"),
            ("country", "UZ", "platform-blocked:telegram:dns")} <= signals
    kz_vol = {r[3]: r[4] for r in ref if r[:3] == ("country", "KZ", "ooni-volume")}
    # silent hours within two weeks after a measurement are 0; beyond them, nothing
    assert kz_vol[T0 + 32 * H] == 0.0 and T0 + 24 * 16 * H not in kz_vol
    # the blocked-by-dns series of a platform starts at 0 in tested hours before the first
    uz_dns = {r[3]: r[4] for r in ref if r[:3] == ("country", "UZ",
                                                   "platform-blocked:telegram:dns")}
    assert min(uz_dns) < T0 + 40 * H and uz_dns[min(uz_dns)] == 0.0


@pytest.mark.parametrize("seed", [1, 2])
def test_any_split_and_order_gives_the_same_points(
        seed: int, reference: tuple[list[dict[str, Any]], list[tuple[Any, ...]]],
        tmp_path: Path) -> None:
    docs, ref = reference
    rng = random.Random(seed)
    shuffled = docs[:]
    rng.shuffle(shuffled)
    cuts = sorted(rng.sample(range(1, len(docs)), rng.randint(1, 3)))
    parts = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(docs)], strict=True)]
    parts.append(rng.sample(docs, 5))  # late copies of measurements already imported
    store = tmp_path / "s.duckdb"
    for i, part in enumerate(parts):
        run("ooni", "import", _write(tmp_path / f"p{i}.jsonl", part), "--store", store)
    assert points(store) == ref
