"""The vocabulary: canonical codes, missing-versus-zero series, scopes, signal directions."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import numpy as np
import pytest

from netvigil.detect import detect_series, rule_for
from netvigil.model import (
    KNOWN_SIGNALS,
    Direction,
    EntityRef,
    EntityType,
    InvalidEntity,
    Level,
    Scope,
    Series,
    SourceFamily,
    make_ref,
    signal_kind,
)
from netvigil.model.signals import PLATFORM_PREFIX

SRC = Path(__file__).resolve().parents[1] / "src" / "netvigil"


@pytest.mark.parametrize(
    ("etype", "code", "expected"),
    [
        ("country", "kz", "country/KZ"),
        ("region", "kz-75", "region/KZ-75"),
        ("asn", "AS9198", "asn/9198"),
        ("asn", "9198", "asn/9198"),
        ("block", "2.72.0.7/24", "block/2.72.0.0/24"),
    ],
)
def test_user_spellings_become_one_canonical_fqid(etype: str, code: str, expected: str) -> None:
    assert make_ref(etype, code).fqid == expected


@pytest.mark.parametrize(
    ("etype", "code"),
    [("country", "KAZ"), ("country", "K1"), ("region", "KZ"), ("asn", "ASX"), ("asn", "0"),
     ("block", "2.72.0.0/16"), ("planet", "earth")],
)
def test_malformed_codes_are_rejected_with_a_reason(etype: str, code: str) -> None:
    with pytest.raises(InvalidEntity):
        make_ref(etype, code)


def test_fqid_parses_back_to_the_same_reference() -> None:
    ref = EntityRef.parse("country/kz")
    assert ref == EntityRef(EntityType.COUNTRY, "KZ")
    with pytest.raises(InvalidEntity):
        EntityRef.parse("KZ")


def test_series_from_points_keeps_missing_apart_from_zero() -> None:
    ref = make_ref("country", "KZ")
    s = Series.from_points(ref, "probing", [0, 600, 1800], [5.0, 0.0, 7.0], step=600)
    assert len(s) == 4
    assert s.values[1] == 0.0
    assert math.isnan(s.values[2])
    assert s.present == 3
    assert list(s.times) == [0, 600, 1200, 1800]
    assert s.end == 2400


def test_series_from_no_points_is_empty() -> None:
    s = Series.from_points(make_ref("asn", "1"), "bgp", np.array([]), np.array([]), step=300)
    assert len(s) == 0


def test_known_and_unknown_signals_get_settings() -> None:
    assert signal_kind("bgp").native_step == 300
    assert signal_kind("probing").family is SourceFamily.PROBING
    assert signal_kind("platform:whatsapp").family is SourceFamily.PLATFORM
    assert signal_kind("my-own-signal").family is SourceFamily.GENERIC


def test_scope_follows_entity_type() -> None:
    assert Scope.for_entity(make_ref("country", "KZ")) is Scope.NATIONAL
    assert Scope.for_entity(make_ref("region", "KZ-75")) is Scope.REGIONAL
    assert Scope.for_entity(make_ref("asn", "9198")) is Scope.NETWORK


def test_alert_levels_are_coded_as_watchtower_alert_does() -> None:
    assert [int(level) for level in Level] == [0, 1, 2]
    assert Level.CRITICAL.label == "critical"


# ------------------------------------------------------------------ signals and directions
def test_every_known_signal_states_its_direction() -> None:
    assert all(isinstance(k.direction, Direction) for k in KNOWN_SIGNALS.values())
    assert signal_kind("probing-latency-p90").direction is Direction.HIGHER_IS_WORSE
    assert signal_kind("probing-loss").direction is Direction.HIGHER_IS_WORSE
    state = signal_kind("probing-state")
    assert state.direction is Direction.STATE and not state.judged
    assert not state.higher_is_better
    assert signal_kind("bgp").higher_is_better and signal_kind("bgp").judged
    assert signal_kind("platform:signal").direction is Direction.HIGHER_IS_BETTER


@pytest.mark.parametrize("signal", ["probing-latency", "probing-latency-p90", "probing-state"])
def test_a_fall_of_latency_or_state_never_raises_an_alert(signal: str) -> None:
    """The issue-7 bug: an unknown ``probing-latency-p90`` was judged as a count, so a drop
    of latency raised a critical outage. The same values named ``probing`` do alert."""
    day = 144
    values = np.r_[np.full(2 * day, 120.0), np.full(day // 2, 5.0)]
    series = Series(make_ref("country", "KZ"), signal, 1_641_254_400, 600, values)
    assert rule_for(signal) is None
    assert detect_series(series) == []
    control = Series(series.entity, "probing", series.start, series.step, values)
    assert any(a.level is Level.CRITICAL for a in detect_series(control))


# Packages whose code writes series (sources emit facts, the pipeline turns them into points,
# importers translate wire names, scenarios generate facts).
EMITTING_PACKAGES = ("sources", "pipeline", "series", "scenarios")
# Module-level names that hold signal names: SIGNAL, SIGNAL_*, SIGNALS (a tuple).
_CONSTANT = re.compile(r"^SIGNAL(S|_[A-Z0-9_]+)?$")
# Any literal shaped like a derived signal of a known family ("probing-latency-p90", "bgp-v6").
_DERIVED = re.compile(r"^(bgp|probing|telescope|traffic)-[a-z0-9][a-z0-9-]*$")


def _strings(node: ast.expr | None, consts: dict[str, str]) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in consts:
        return [consts[node.id]]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [v for elt in node.elts for v in _strings(elt, consts)]
    return []


def signal_names_written(path: Path) -> dict[str, str]:
    """Signal names a module writes, ``{name: "file:line"}``: its SIGNAL* constants and any
    literal shaped like a derived signal name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: dict[str, str] = {}
    consts: dict[str, str] = {}
    for stmt in tree.body:
        target, value = None, None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            target, value = stmt.target, stmt.value
        if not isinstance(target, ast.Name):
            continue
        names = _strings(value, consts)
        if len(names) == 1 and isinstance(value, ast.Constant):
            consts[target.id] = names[0]
        if _CONSTANT.match(target.id):
            found.update((n, f"{path}:{stmt.lineno}") for n in names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _DERIVED.match(node.value):
                found.setdefault(node.value, f"{path}:{node.lineno}")
    return found


def _written_by_the_code() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in EMITTING_PACKAGES:
        for path in sorted((SRC / package).rglob("*.py")):
            found.update(signal_names_written(path))
    return found


def _unknown(names: dict[str, str]) -> dict[str, str]:
    return {n: where for n, where in names.items()
            if n not in KNOWN_SIGNALS and not n.startswith(PLATFORM_PREFIX)}


def test_every_signal_the_code_writes_is_a_known_signal() -> None:
    written = _written_by_the_code()
    # The collector must see the names we know are written, or the check below is empty.
    assert {"bgp", "bgp-v6", "probing", "probing-latency-p90", "probing-state"} <= set(written)
    unknown = _unknown(written)
    assert not unknown, f"add these to KNOWN_SIGNALS with their direction: {unknown}"


def test_the_signal_collector_flags_an_unknown_name(tmp_path: Path) -> None:
    module = tmp_path / "emitter.py"
    module.write_text(
        'SIGNAL_UP = "probing"\nSIGNAL_JITTER = "jitter"\nSIGNALS = (SIGNAL_UP, SIGNAL_JITTER)\n'
        'def f(store):\n    store.write("probing-jitter-p99")\n'
    )
    written = signal_names_written(module)
    assert set(written) == {"probing", "jitter", "probing-jitter-p99"}
    assert set(_unknown(written)) == {"jitter", "probing-jitter-p99"}
