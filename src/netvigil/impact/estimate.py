"""People affected and economic cost of one outage, from three named methods (issue 10, d5).

Every figure carries what it rests on: the table and year each input came from, the method id
(``methods.toml``) and its assumptions in words. The three cost methods disagree by two orders
of magnitude on the same event (a same-week GDP share versus NetLoss's long-run per-capita
effect); an estimate shows each as its own range instead of averaging them into false
precision. Published figures for the same event (``published.toml``) sit beside, never inside.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from netvigil.impact.tables import Figure, gdp_usd, internet_share, population
from netvigil.model.entities import EntityType
from netvigil.model.events import Event

DAY = 86_400


@dataclass(frozen=True)
class CostEstimate:
    method: str
    name: str
    low_usd: float
    high_usd: float
    assumptions: tuple[str, ...]
    citation: str


@dataclass(frozen=True)
class Published:
    source: str
    usd: float
    note: str


@dataclass(frozen=True)
class Impact:
    country: str
    start: int
    end: int
    depth: float  # share of ordinary connectivity lost, 0..1
    scope_share: float  # share of the country the entity stands for, 0..1
    population: Figure | None
    internet: Figure | None
    gdp: Figure | None
    people_affected: float | None
    costs: tuple[CostEstimate, ...]
    published: tuple[Published, ...]
    caveats: tuple[str, ...] = field(default=())

    @property
    def days(self) -> float:
        return (self.end - self.start) / DAY

    @property
    def person_days(self) -> float | None:
        return None if self.people_affected is None else self.people_affected * self.days

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["days"] = self.days
        out["person_days"] = self.person_days
        return out


@cache
def _methods() -> dict[str, Any]:
    text = resources.files("netvigil.impact").joinpath("methods.toml").read_text()
    return tomllib.loads(text)


@cache
def _published() -> list[dict[str, Any]]:
    text = resources.files("netvigil.impact").joinpath("published.toml").read_text()
    return list(tomllib.loads(text).get("estimate", []))


def _cost(method_id: str) -> dict[str, Any]:
    for m in _methods()["cost"]:
        if m["id"] == method_id:
            return dict(m)
    raise KeyError(method_id)


def _day_ts(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())


def published_for(country: str, start: int, end: int) -> tuple[Published, ...]:
    """Published estimates whose dates overlap [start, end) for the same country."""
    return tuple(Published(p["source"], float(p["usd"]), p.get("note", ""))
                 for p in _published()
                 if p["country"] == country and _day_ts(p["start"]) < end
                 and _day_ts(p["end"]) + DAY > start)


def _gdp_share(gdp_day: float, loss: float, days: float) -> CostEstimate:
    m = _cost("cost.gdp-share")
    lo, hi = m["digital_share_low"], m["digital_share_high"]
    return CostEstimate(
        m["id"], m["name"], gdp_day * lo * loss * days, gdp_day * hi * loss * days,
        (f"digital economy {lo:.0%}-{hi:.0%} of GDP (no open per-country series)",
         f"affected share of that economy {loss:.0%}", f"{days:.2f} days"), m["citation"])


def _deloitte(gdp_day: float, users: Figure, loss: float, days: float) -> CostEstimate:
    m = _cost("cost.deloitte-tier")
    pct = users.value * 100
    tier = ("high" if pct >= m["tier_high_min_percent"]
            else "medium" if pct >= m["tier_medium_min_percent"] else "low")
    mid = gdp_day * m[f"share_{tier}"] * loss * days
    return CostEstimate(
        m["id"], m["name"], mid * (1 - m["spread"]), mid * (1 + m["spread"]),
        (f"{tier}-connectivity tier ({pct:.0f}% internet users; cut-offs "
         f"{m['tier_high_min_percent']:.0f}% / {m['tier_medium_min_percent']:.0f}% are "
         "NetVigil's assumption)", f"{m[f'share_{tier}']:.1%} of daily GDP per full day",
         f"affected share {loss:.0%}", f"+-{m['spread']:.0%} range"), m["citation"])


def _netloss(people: float, days: float) -> CostEstimate:
    m = _cost("cost.netloss-person-day")
    mid = people * days * m["usd_per_person_day"]
    return CostEstimate(
        m["id"], m["name"], mid * (1 - m["spread"]), mid * (1 + m["spread"]),
        (f"${m['usd_per_person_day']} per affected person per day",
         f"{people:,.0f} people x {days:.2f} days",
         "a long-run GDP-per-capita effect, not a same-week loss", f"+-{m['spread']:.0%} range"),
        m["citation"])


def estimate(country: str, start: int, end: int, *, depth: float,
             scope_share: float = 1.0) -> Impact:
    """Impact of losing ``depth`` of ordinary connectivity over ``scope_share`` of
    ``country`` during [start, end)."""
    if end <= start:
        raise ValueError("an impact needs end > start")
    depth = min(max(depth, 0.0), 1.0)
    year = dt.datetime.fromtimestamp(start, dt.UTC).year
    pop, users, gdp = population(country), internet_share(country, year), gdp_usd(country, year)
    days = (end - start) / DAY
    loss = depth * scope_share
    caveats = [f"missing {name} for {country}"
               for name, fig in (("population", pop), ("internet use", users), ("GDP", gdp))
               if fig is None]
    people = None if pop is None or users is None else pop.value * users.value * loss
    costs: list[CostEstimate] = []
    if gdp is not None:
        costs.append(_gdp_share(gdp.value / 365, loss, days))
        if users is not None:
            costs.append(_deloitte(gdp.value / 365, users, loss, days))
    if pop is not None:
        costs.append(_netloss(pop.value * loss, days))
    return Impact(country, start, end, depth, scope_share, pop, users, gdp, people,
                  tuple(costs), published_for(country, start, end), tuple(caveats))


def country_of(event: Event) -> str | None:
    """The country an event's entity belongs to when its code says so (a country or an
    ISO 3166-2 region); an AS needs the caller to say (``for_event(country=...)``)."""
    if event.entity.type is EntityType.COUNTRY:
        return event.entity.code
    if event.entity.type is EntityType.REGION:
        return event.entity.code.split("-", 1)[0]
    return None


def for_event(event: Event, *, now: int, country: str | None = None,
              scope_share: float | None = None) -> Impact | None:
    """Impact of a stored event (an ongoing one up to ``now``). Depth is the event's deepest
    drop (``1 - min_ratio``): an upper bound on the average loss, said in the caveats. A
    region or AS without a known ``scope_share`` is not costed (None)."""
    cc = country or country_of(event)
    if cc is None:
        return None
    share = scope_share if scope_share is not None else (
        1.0 if event.entity.type is EntityType.COUNTRY else None)
    if share is None:
        return None
    end = event.end if event.end is not None else max(now, event.start + 1)
    ratio = event.min_ratio if event.min_ratio == event.min_ratio else 0.0  # NaN: unknown
    impact = estimate(cc, event.start, end, depth=1.0 - min(max(ratio, 0.0), 1.0),
                      scope_share=share)
    note = "depth is the event's deepest drop (an upper bound on the average loss)"
    return Impact(**{**impact.__dict__, "caveats": (*impact.caveats, note)})
