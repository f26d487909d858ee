"""The entity registry: every country, ISO 3166-2 region and named AS, searchable by code and name.

Why these sources: countries and regions come from ``pycountry`` (the ISO 3166-1/-2 tables
Debian's iso-codes maintains), so codes change when ISO changes them, not when we remember to.
AS names and registered countries come from pyasn's ``asnames.json.gz`` (2021-08-30, built from
the RIR/CIDR-report AS name list), shipped in ``netvigil/data/geo``: the snapshot nearest the
2022 Kazakhstan event. Values look like ``"KAZTELECOM-AS JSC Kazakhtelecom, KZ"``; the trailing
two-letter code is the registered country (the AS's parent), the rest is the name.

Relations: region → country (``Entity.parent``; a region's parent *subdivision*, such as
GB-CAM's GB-ENG, is kept in ``attrs`` as ``parent_region``); AS → registered country.

Everything loads lazily on first use and once per registry; :func:`default_registry` is the
process-wide instance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache

import pycountry

from netvigil.geo.refdata import load_shipped_asnames
from netvigil.model.entities import Entity, EntityRef, EntityType, make_ref
from netvigil.model.errors import InvalidEntity

AsNames = dict[int, tuple[str, str | None]]


class EntityRegistry:
    """Countries, regions and ASes with names and parents; lazy, cached, read-only."""

    def __init__(self, asnames_loader: Callable[[], AsNames] = load_shipped_asnames) -> None:
        self._asnames_loader = asnames_loader
        self._lock = threading.Lock()
        self._tables: dict[EntityType, dict[str, Entity]] = {}
        self._children: dict[EntityRef, list[EntityRef]] | None = None
        self._asnames: AsNames | None = None
        self._asnames_lock = threading.Lock()  # taken inside _lock by _load_asns
        self._loaders: dict[EntityType, Callable[[], dict[str, Entity]]] = {
            EntityType.COUNTRY: self._load_countries,
            EntityType.REGION: self._load_regions,
            EntityType.ASN: self._load_asns,
        }

    # ------------------------------------------------------------------ loading

    def _table(self, entity_type: EntityType) -> dict[str, Entity]:
        """One type's entities, loaded on first use (AS names cost ~0.5 s, countries ~0)."""
        table = self._tables.get(entity_type)
        if table is None:
            with self._lock:
                table = self._tables.get(entity_type)
                if table is None:
                    table = self._loaders[entity_type]()
                    self._tables[entity_type] = table
        return table

    def _load_countries(self) -> dict[str, Entity]:
        countries: dict[str, Entity] = {}
        for c in pycountry.countries:
            ref = EntityRef(EntityType.COUNTRY, c.alpha_2)
            attrs = [("alpha_3", c.alpha_3), ("numeric", c.numeric)]
            if getattr(c, "official_name", None):
                attrs.append(("official_name", c.official_name))
            if getattr(c, "common_name", None):
                attrs.append(("common_name", c.common_name))
            countries[c.alpha_2] = Entity(ref, c.name, None, tuple(attrs))
        return countries

    def _load_regions(self) -> dict[str, Entity]:
        regions: dict[str, Entity] = {}
        for s in pycountry.subdivisions:
            code = s.code.upper()
            attrs = [("kind", s.type)]
            if s.parent_code:
                attrs.append(("parent_region", s.parent_code.upper()))
            parent = EntityRef(EntityType.COUNTRY, s.country_code.upper())
            regions[code] = Entity(EntityRef(EntityType.REGION, code), s.name, parent,
                                   tuple(attrs))
        return regions

    def _raw_asnames(self) -> AsNames:
        """The loader's table, once (names alone need no 77k Entity objects, see name)."""
        raw = self._asnames
        if raw is None:
            with self._asnames_lock:
                raw = self._asnames
                if raw is None:
                    raw = self._asnames = self._asnames_loader()
        return raw

    def _load_asns(self) -> dict[str, Entity]:
        asns: dict[str, Entity] = {}
        parents: dict[str, EntityRef] = {}  # one shared ref per country: 77k ASes, ~250 parents
        for asn, (name, cc) in self._raw_asnames().items():
            parent = None
            if cc:
                parent = parents.get(cc) or parents.setdefault(
                    cc, EntityRef(EntityType.COUNTRY, cc)
                )
            code = str(asn)
            asns[code] = Entity(EntityRef(EntityType.ASN, code), name, parent)
        return asns

    def _children_index(self) -> dict[EntityRef, list[EntityRef]]:
        if self._children is None:
            children: dict[EntityRef, list[EntityRef]] = {}
            for t in (EntityType.REGION, EntityType.ASN):
                for ent in self._table(t).values():
                    if ent.parent is not None:
                        children.setdefault(ent.parent, []).append(ent.ref)
            for refs in children.values():
                refs.sort(key=_sort_key)
            self._children = children
        return self._children

    # ------------------------------------------------------------------ queries

    def get(self, ref: EntityRef) -> Entity | None:
        """The entity for ``ref``; blocks are synthesised (name = CIDR), unknown codes → None."""
        if ref.type is EntityType.BLOCK:
            return Entity(ref, ref.code)
        return self._table(ref.type).get(ref.code)

    def name(self, ref: EntityRef) -> str:
        """Human name, falling back to the code (``AS64500`` for unnamed ASes).

        An AS is named from the loader's table without building the AS entities (~0.4 s
        for 77k ASes) when they are not built yet: ``netvigil detect`` names the entities
        of its new events and nothing else."""
        if ref.type is EntityType.ASN and EntityType.ASN not in self._tables:
            code = ref.code
            canonical = code.isascii() and code.isdigit() and str(int(code)) == code
            found = self._raw_asnames().get(int(code)) if canonical else None
            return found[0] if found is not None else f"AS{code}"
        ent = self.get(ref)
        if ent is not None:
            return ent.name
        return f"AS{ref.code}" if ref.type is EntityType.ASN else ref.code

    def parent(self, ref: EntityRef) -> EntityRef | None:
        ent = self.get(ref)
        return ent.parent if ent is not None else None

    def children(self, ref: EntityRef, entity_type: EntityType | None = None) -> list[Entity]:
        """Regions of a country and ASes registered in it (optionally one type), sorted."""
        refs = self._children_index().get(ref, [])
        out = [self._table(r.type)[r.code] for r in refs]
        if entity_type is not None:
            out = [e for e in out if e.type is entity_type]
        return out

    def count(self, entity_type: EntityType) -> int:
        return len(self._table(entity_type)) if entity_type in self._loaders else 0

    def search(
        self, query: str, entity_type: EntityType | str | None = None, limit: int = 20
    ) -> list[Entity]:
        """Exact code matches first, then case-insensitive name substring matches.

        ``"AS9198"``, ``"9198"``, ``"kz"``, ``"KZ-75"`` hit codes; ``"Almaty"`` hits names
        (regions and ASes alike). Within the name matches, names starting with the query
        come first, then shorter names, then codes: a reader typing "Kazakh" wants
        Kazakhstan before "JSC Kazakhtelecom".
        """
        q = query.strip()
        if not q or limit <= 0:
            return []
        etype = _as_type(entity_type)
        if etype is EntityType.BLOCK:  # blocks are not enumerated; a valid /24 finds itself
            try:
                return [Entity(make_ref(etype, q), make_ref(etype, q).code)]
            except InvalidEntity:
                return []
        types = [etype] if etype else [EntityType.COUNTRY, EntityType.REGION, EntityType.ASN]
        tables = {t: self._table(t) for t in types}
        exact: list[Entity] = []
        for t in types:
            try:
                code = make_ref(t, q).code
            except InvalidEntity:
                continue
            ent = tables[t].get(code)
            if ent is not None:
                exact.append(ent)
        if _is_alpha3(q) and EntityType.COUNTRY in tables:
            c = pycountry.countries.get(alpha_3=q.upper())
            if c is not None and tables[EntityType.COUNTRY][c.alpha_2] not in exact:
                exact.append(tables[EntityType.COUNTRY][c.alpha_2])
        seen = {e.ref for e in exact}
        needle = q.casefold()
        named: list[tuple[tuple[int, int, int, str], Entity]] = []
        for rank, t in enumerate(types):
            for ent in tables[t].values():
                if ent.ref in seen:
                    continue
                hay = ent.name.casefold()
                pos = hay.find(needle)
                if pos < 0:
                    continue
                named.append(((0 if pos == 0 else 1, rank, len(hay), ent.code), ent))
        named.sort(key=lambda item: item[0])
        return (exact + [e for _, e in named])[:limit]


def _is_alpha3(text: str) -> bool:
    return len(text) == 3 and text.isascii() and text.isalpha()


def _as_type(value: EntityType | str | None) -> EntityType | None:
    if value is None or isinstance(value, EntityType):
        return value
    try:
        return EntityType(value.strip().lower())
    except ValueError:
        raise InvalidEntity(f"unknown entity type {value!r}") from None


def _sort_key(ref: EntityRef) -> tuple[str, int, str]:
    if ref.type is EntityType.ASN:
        return (ref.type.value, int(ref.code), "")
    return (ref.type.value, 0, ref.code)


@lru_cache(maxsize=1)
def default_registry() -> EntityRegistry:
    """The process-wide registry over pycountry and the shipped AS names."""
    return EntityRegistry()
