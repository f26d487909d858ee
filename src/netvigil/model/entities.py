"""Entities NetVigil measures: countries, regions, autonomous systems and /24 blocks.

Codes follow the registries users already know, so that a code typed by a journalist
(``KZ``), a researcher (``KZ-75``) or an operator (``9198``) means one thing everywhere:

* country: ISO 3166-1 alpha-2, upper case (``KZ``);
* region: ISO 3166-2 subdivision code (``KZ-75``), parent = its country;
* asn: the AS number in decimal without the ``AS`` prefix (``9198``), parent = registered country;
* block: an IPv4 /24 in CIDR form (``2.72.0.0/24``).

The fully qualified id (``fqid``) is ``type/code`` as IODA writes locations (``country/KZ``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from netvigil.model.errors import InvalidEntity


class EntityType(StrEnum):
    COUNTRY = "country"
    REGION = "region"
    ASN = "asn"
    BLOCK = "block"


@dataclass(frozen=True, order=True)
class EntityRef:
    """A reference to an entity by type and canonical code; cheap, hashable, sortable."""

    type: EntityType
    code: str

    @property
    def fqid(self) -> str:
        return f"{self.type.value}/{self.code}"

    @classmethod
    def parse(cls, text: str) -> EntityRef:
        """Parse ``type/code`` (``country/KZ``, ``asn/9198``, ``region/KZ-75``)."""
        kind, sep, code = text.partition("/")
        if not sep or not code:
            raise InvalidEntity(f"expected TYPE/CODE such as country/KZ, got {text!r}")
        return make_ref(kind, code)

    def __str__(self) -> str:
        return self.fqid


def canonical_code(entity_type: EntityType, code: str) -> str:
    """Normalise a code as users type it into the canonical spelling, or raise InvalidEntity."""
    raw = code.strip()
    if entity_type is EntityType.COUNTRY:
        up = raw.upper()
        if len(up) != 2 or not up.isalpha() or not up.isascii():
            raise InvalidEntity(f"country code must be ISO 3166-1 alpha-2 (e.g. KZ), got {code!r}")
        return up
    if entity_type is EntityType.REGION:
        up = raw.upper()
        cc, sep, sub = up.partition("-")
        if not sep or len(cc) != 2 or not cc.isalpha() or not sub or not sub.isalnum():
            raise InvalidEntity(f"region code must be ISO 3166-2 (e.g. KZ-75), got {code!r}")
        return up
    if entity_type is EntityType.ASN:
        digits = raw.upper().removeprefix("AS")
        if not digits.isdigit() or not digits.isascii():
            raise InvalidEntity(f"ASN must be a number such as 9198 or AS9198, got {code!r}")
        value = int(digits)
        if not 0 < value < 2**32:
            raise InvalidEntity(f"ASN out of range 1..4294967295: {code!r}")
        return str(value)
    if entity_type is EntityType.BLOCK:
        import ipaddress

        try:
            net = ipaddress.IPv4Network(raw, strict=False)
        except ValueError as exc:
            raise InvalidEntity(f"block must be an IPv4 /24 such as 2.72.0.0/24: {exc}") from exc
        if net.prefixlen != 24:
            raise InvalidEntity(f"block must be a /24, got /{net.prefixlen} in {code!r}")
        return str(net)
    raise InvalidEntity(f"unknown entity type {entity_type!r}")  # pragma: no cover


def parse_entity_type(text: str) -> EntityType:
    try:
        return EntityType(text.strip().lower())
    except ValueError:
        allowed = ", ".join(t.value for t in EntityType)
        raise InvalidEntity(f"entity type must be one of {allowed}, got {text!r}") from None


def make_ref(entity_type: str | EntityType, code: str) -> EntityRef:
    """Build a canonical EntityRef from user spelling, raising InvalidEntity on bad input."""
    etype = entity_type if isinstance(entity_type, EntityType) else parse_entity_type(entity_type)
    return EntityRef(etype, canonical_code(etype, code))


@dataclass(frozen=True)
class Entity:
    """An entity with its human name and parent (region -> country, AS -> registered country)."""

    ref: EntityRef
    name: str
    parent: EntityRef | None = None
    attrs: tuple[tuple[str, str], ...] = field(default=())

    @property
    def type(self) -> EntityType:
        return self.ref.type

    @property
    def code(self) -> str:
        return self.ref.code
