"""The vocabulary: canonical codes, missing-versus-zero series, scopes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from netvigil.model import (
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
