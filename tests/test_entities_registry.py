"""EntityRegistry: pycountry countries and regions, pyasn AS names, relations, search."""

from __future__ import annotations

import pytest

from netvigil.geo.entities import EntityRegistry, default_registry
from netvigil.model import EntityType, InvalidEntity, make_ref


@pytest.fixture(scope="module")
def registry() -> EntityRegistry:
    return default_registry()


def small_registry() -> EntityRegistry:
    return EntityRegistry(lambda: {
        9198: ("KAZTELECOM-AS JSC Kazakhtelecom", "KZ"),
        29355: ("KCELL-AS \"KCell\" JSC", "KZ"),
        64500: ("NO-COUNTRY-NET", None),
    })


def test_every_iso_3166_1_country_is_present(registry: EntityRegistry) -> None:
    assert registry.count(EntityType.COUNTRY) == 249
    assert registry.name(make_ref("country", "kz")) == "Kazakhstan"
    attrs = dict(registry.get(make_ref("country", "KZ")).attrs)  # type: ignore[union-attr]
    assert attrs["alpha_3"] == "KAZ"


def test_almaty_region_kz_75_has_parent_kz(registry: EntityRegistry) -> None:
    almaty = registry.get(make_ref("region", "kz-75"))
    assert almaty is not None and almaty.name == "Almaty"
    assert almaty.parent == make_ref("country", "KZ")
    assert registry.parent(make_ref("region", "KZ-75")) == make_ref("country", "KZ")


def test_kazakhtelecom_9198_registered_in_kz(registry: EntityRegistry) -> None:
    ent = registry.get(make_ref("asn", "AS9198"))
    assert ent is not None
    assert "Kazakhtelecom" in ent.name
    assert ent.parent == make_ref("country", "KZ")


def test_kz_children_are_its_20_regions_and_registered_ases(registry: EntityRegistry) -> None:
    kz = make_ref("country", "KZ")
    regions = registry.children(kz, EntityType.REGION)
    assert len(regions) == 20 and regions[0].code == "KZ-10"
    ases = registry.children(kz, EntityType.ASN)
    assert any(e.code == "9198" for e in ases)
    assert [int(e.code) for e in ases] == sorted(int(e.code) for e in ases)
    assert len(registry.children(kz)) == len(regions) + len(ases)


def test_nested_subdivision_keeps_country_parent_and_records_parent_region(
    registry: EntityRegistry,
) -> None:
    cam = registry.get(make_ref("region", "GB-CAM"))
    assert cam is not None and cam.parent == make_ref("country", "GB")
    assert dict(cam.attrs)["parent_region"] == "GB-ENG"


def test_as_without_country_has_no_parent() -> None:
    reg = small_registry()
    ent = reg.get(make_ref("asn", "64500"))
    assert ent is not None and ent.parent is None and ent.name == "NO-COUNTRY-NET"
    assert reg.parent(make_ref("asn", "64500")) is None


def test_name_falls_back_to_code() -> None:
    reg = small_registry()
    assert reg.name(make_ref("asn", "64511")) == "AS64511"
    assert reg.name(make_ref("region", "ZZ-99")) == "ZZ-99"
    assert reg.get(make_ref("country", "ZZ")) is None
    assert reg.name(make_ref("block", "2.72.0.0/24")) == "2.72.0.0/24"


def test_as_name_before_the_as_table_is_built_is_the_entity_name() -> None:
    """``name`` reads the loader's table without building AS entities; same answer."""
    lazy, built = small_registry(), small_registry()
    built.get(make_ref("asn", "9198"))  # builds the AS table
    for code in ("9198", "64500", "64511"):
        assert lazy.name(make_ref("asn", code)) == built.name(make_ref("asn", code))
    assert lazy.name(make_ref("asn", "9198")) == "KAZTELECOM-AS JSC Kazakhtelecom"
    assert lazy.count(EntityType.ASN) == 3  # the table still builds afterwards


@pytest.mark.parametrize(
    ("query", "first"),
    [("AS9198", "asn/9198"), ("9198", "asn/9198"), ("kz", "country/KZ"),
     ("KZ-75", "region/KZ-75"), ("Almaty", "region/KZ-75"), ("KAZ", "country/KZ"),
     ("kazakhstan", "country/KZ")],
)
def test_search_exact_code_first_then_name(
    registry: EntityRegistry, query: str, first: str
) -> None:
    assert registry.search(query)[0].ref.fqid == first


def test_search_name_substring_is_case_insensitive_and_typed(registry: EntityRegistry) -> None:
    hits = registry.search("almaty", entity_type="region")
    assert [e.code for e in hits][:2] == ["KZ-75", "KZ-19"]
    assert all(e.type is EntityType.REGION for e in hits)
    asn_hits = registry.search("kazakhtelecom", entity_type=EntityType.ASN, limit=50)
    assert "9198" in {e.code for e in asn_hits}


def test_search_respects_limit_and_empty_query(registry: EntityRegistry) -> None:
    assert len(registry.search("a", limit=3)) == 3
    assert registry.search("   ") == []
    assert registry.search("no-such-entity-name-xyz") == []


def test_search_block_type_finds_only_valid_slash24() -> None:
    reg = small_registry()
    assert [e.code for e in reg.search("2.72.0.9/24", "block")] == ["2.72.0.0/24"]
    assert reg.search("nonsense", "block") == []


def test_search_unknown_type_raises() -> None:
    with pytest.raises(InvalidEntity):
        small_registry().search("kz", "planet")


def test_default_registry_is_one_instance() -> None:
    assert default_registry() is default_registry()
