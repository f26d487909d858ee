"""One OONI measurement -> a verdict: ok / anomaly / confirmed / failure, with mechanisms.

``verdict(measurement)`` is a **pure function of one measurement dict** (plus the shipped
fingerprints and platform table): the OONI importer and NetVigil's own probe agent judge
their measurements with it, so a probe measurement and an OONI one mean the same thing.

The rules follow OONI's published logic (anchors §4.1: the probe's verdict keys in
``test_keys``, re-scored as the backend fastpath does — ``anomaly`` when blocking_general
> 0.5, ``failure`` when accuracy < 0.5, ``confirmed`` only on a blockpage fingerprint). Each
outcome carries a stable rule id (:data:`RULES`) so a count can be traced to the rule that
made it. Where OONI publishes no rule we say so in the rule's text (``tor.targets-majority``).

Mechanisms (why a blocked measurement failed; ooni/data ontology §12 collapsed to the layer):
``dns`` (injection, NXDOMAIN, bogus answers), ``tcp`` (reset or timeout on connect),
``tls`` (handshake reset or failure, e.g. on SNI), ``http-blockpage`` (a response that is
not the service's: confirmed by a fingerprint or differing from the control), ``http``
(the HTTP exchange failed after TCP/TLS worked), ``other`` (a failure string we cannot
place). Only blocked outcomes (anomaly, confirmed) carry mechanisms.

``tls_handshake_ms``: median duration of the measurement's successful TLS handshakes (from
``tls_handshakes[].t0/t`` or the ``tls_handshake_start``/``_done`` network events), the
throttling evidence OONI stores but does not judge (anchors §4.4 "throttling not
representable"); ``None`` when the data has no timing.

``speed_ratio``: for NetVigil's own ``sni_throttling`` test only (the probe fetches one
server address with the platform's SNI and with a control SNI), target speed / control
speed, recomputed from the tagged OONI rows (:func:`speed_ratio`); the importer writes it as
``throttling:<platform>`` (docs/ooni.md "Throttling").
"""

from __future__ import annotations

import base64
import binascii
import statistics
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from netvigil.sources.ooni.fingerprints import FingerprintIndex, default_index
from netvigil.sources.ooni.meta import MetaError, parse_cc


class Outcome(StrEnum):
    OK = "ok"
    ANOMALY = "anomaly"
    CONFIRMED = "confirmed"
    FAILURE = "failure"


MECHANISMS = ("dns", "tcp", "tls", "http-blockpage", "http", "other")

#: rule id -> what it means (stable ids; the OONI source of each is in the docstrings below)
RULES: dict[str, str] = {
    "no-test-keys": "test_keys missing or not an object: the test did not run (failure)",
    "api.flags": "an OONI API row: the backend's anomaly/confirmed/failure booleans",
    "no-verdict-logic": "a test name without verdict rules: counted in ooni-volume only",
    "wc.fingerprint.dns": "web_connectivity DNS answer is a national/ISP blockpage IP",
    "wc.fingerprint.http": "web_connectivity response matches a national/ISP blockpage",
    "wc.accessible": "web_connectivity blocking=false",
    "wc.blocking": "web_connectivity blocking names a layer (dns, tcp_ip, http-*)",
    "wc.no-verdict": "web_connectivity blocking null/absent and no fingerprint (accuracy 0)",
    "im.failed": "the IM/circumvention test itself failed to run (test_keys.failure only)",
    "telegram.score": "telegram: tcp share + http share + web blocked > 0.5",
    "telegram.ok": "telegram: score <= 0.5",
    "whatsapp.web-or-registration": "whatsapp web or registration server blocked",
    "whatsapp.endpoints": "whatsapp: every endpoint blocked",
    "whatsapp.ok": "whatsapp: services reachable",
    "signal.blocked": "signal_backend_status=blocked",
    "signal.ok": "signal_backend_status=ok",
    "signal.buggy-version": "signal test_version < 0.2.2 pinned the old Signal CA (accuracy 0)",
    "facebook.score": "facebook_messenger: 0.5 per bad key > 0.5",
    "facebook.ok": "facebook_messenger: at most one bad key",
    "tor.targets-majority": "tor: more than half of the targets failed (our rule; OONI "
                            "publishes none: single bridges fail routinely)",
    "tor.ok": "tor: at most half of the targets failed",
    "bootstrap.failed": "vanilla_tor/torsf/psiphon bootstrap failed (score 1 - 0.004 * progress)",
    "bootstrap.ok": "bootstrap succeeded",
    "throttling.measured": "sni_throttling: target and control SNI both completed (ok; the "
                           "speed ratio goes to throttling:<platform>)",
    "throttling.target-failed": "sni_throttling: the target SNI's handshake failed while the "
                                "control SNI's to the same address completed (tls)",
    "throttling.no-baseline": "sni_throttling: the control SNI failed: no baseline (failure)",
    "throttling.target-incomplete": "sni_throttling: no target handshake row or timing, and "
                                    "no TLS failure (connect failed, data cut): failure",
}
#: NetVigil's own test (the probe agent's; docs/probe.md "SNI throttling"): the same server
#: address fetched with the target SNI and with a control SNI (OONI's method, anchors §6)
SNI_THROTTLING = "sni_throttling"
#: platforms are named by the measured URL for these tests (not by the test name)
URL_PLATFORM_TESTS = ("web_connectivity", SNI_THROTTLING)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judgement of one measurement (module docstring)."""

    test_name: str
    platform: str | None  # platform:<name> series it counts in; None = volume only
    outcome: Outcome | None  # None: no verdict logic for this test name
    rule: str
    mechanisms: tuple[str, ...] = ()
    fingerprint: str | None = None
    tls_handshake_ms: float | None = None
    #: sni_throttling only: target/control speed on the same address (1 = same; module
    #: docstring of :func:`speed_ratio`); None for other tests or without a baseline
    speed_ratio: float | None = None

    @property
    def blocked(self) -> bool:
        return self.outcome in (Outcome.ANOMALY, Outcome.CONFIRMED)


@dataclass(frozen=True)
class PlatformTable:
    tests: dict[str, str]
    domains: dict[str, str]  # domain -> platform

    def for_input(self, url: Any) -> str | None:
        if not isinstance(url, str):
            return None
        try:
            host = (urlsplit(url if "//" in url else f"//{url}").hostname or "").rstrip(".")
        except ValueError:  # "Invalid IPv6 URL" (a stray bracket; fuzz): no platform's domain
            return None
        while host:
            if host in self.domains:
                return self.domains[host]
            _, _, host = host.partition(".")
        return None


@cache
def platform_table() -> PlatformTable:
    raw = (resources.files("netvigil.data") / "ooni" / "platforms.toml").read_text("utf-8")
    data = tomllib.loads(raw)
    domains = {d.lower(): plat for plat, ds in data["domains"].items() for d in ds}
    return PlatformTable(dict(data["tests"]), domains)


def verdict(measurement: dict[str, Any], *, fingerprints: FingerprintIndex | None = None,
            platforms: PlatformTable | None = None) -> Verdict:
    """Judge one raw OONI measurement (module docstring). Never raises on odd shapes:
    unusable test keys give ``failure``; base keys are checked by
    :func:`netvigil.sources.ooni.meta.read_meta`, not here."""
    table = platforms or platform_table()
    name = str(measurement.get("test_name") or "")
    tk = measurement.get("test_keys")
    judge = _JUDGES.get(name)
    platform = (table.for_input(measurement.get("input")) if name in URL_PLATFORM_TESTS
                else table.tests.get(name))
    if judge is None:
        return Verdict(name, None, None, "no-verdict-logic")
    # timing only where it can enter a platform's series (scanning ~100 events costs)
    tls_ms = ratio = None
    if isinstance(tk, dict) and platform is not None:
        if name == SNI_THROTTLING:
            target, control = throttling_legs(tk)
            tls_ms = None if target.handshake_s is None else 1000.0 * target.handshake_s
            ratio = speed_ratio(target, control)
        else:
            tls_ms = _tls_ms(tk)
    if not isinstance(tk, dict):
        flags = _api_flags(measurement)
        if flags is not None:
            return Verdict(name, platform, flags, "api.flags",
                           ("other",) if flags in (Outcome.ANOMALY, Outcome.CONFIRMED) else ())
        return Verdict(name, platform, Outcome.FAILURE, "no-test-keys")
    outcome, rule, found, fp = judge(measurement, tk, fingerprints)
    mechs: tuple[str, ...] = ()
    if outcome in (Outcome.ANOMALY, Outcome.CONFIRMED):
        mechs = tuple(dict.fromkeys(found)) or ("other",)
    return Verdict(name, platform, outcome, rule, mechs, fp, tls_ms, ratio)


_Judged = tuple[Outcome, str, list[str], str | None]


def _api_flags(m: dict[str, Any]) -> Outcome | None:
    """OONI API / fastpath rows carry the backend's verdict as booleans instead of
    ``test_keys``: confirmed > anomaly > failure; ``anomaly: false`` is ok; all null is a
    failure (not scored)."""
    flags = {k: m.get(k) for k in ("confirmed", "anomaly", "failure")}
    if not any(isinstance(v, bool) for v in flags.values()) and "anomaly" not in m:
        return None
    if flags["confirmed"] is True:
        return Outcome.CONFIRMED
    if flags["anomaly"] is True:
        return Outcome.ANOMALY
    if flags["failure"] is True or flags["anomaly"] is None:
        return Outcome.FAILURE
    return Outcome.OK


# -- failure strings -> mechanism (ooni/spec df-007) ---------------------------------------
def mechanism_of(failure: Any, operation: str | None = None) -> str:
    """The layer a failure string points at; ``operation`` (``failed_operation``, the
    network event) decides where the string alone cannot (a reset during a TLS handshake is
    TLS, during connect TCP)."""
    f = str(failure or "").lower()
    op = (operation or "").lower()
    if f.startswith("dns_") or "dns" in f or "resolve" in op or "nxdomain" in f:
        return "dns"
    if "tls" in op or f.startswith("ssl_") or "tls" in f or "certificate" in f:
        return "tls"
    if op in ("connect", "tcp_connect") or f in ("connection_refused", "host_unreachable",
                                                 "network_unreachable"):
        return "tcp"
    if f in ("connection_reset", "generic_timeout_error", "eof_error"):
        return "tcp"
    if f.startswith("http_") or "http" in op:
        return "http"
    return "other"


def _list(tk: dict[str, Any], key: str) -> list[dict[str, Any]]:
    v = tk.get(key)
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _array_mechanisms(tk: dict[str, Any]) -> list[str]:
    """Layers that failed in a measurement's raw arrays (queries, tcp_connect, TLS, HTTP)."""
    out: list[str] = []
    if any(q.get("failure") for q in _list(tk, "queries")):
        out.append("dns")
    if any(_tcp_failure(c) for c in _list(tk, "tcp_connect")):
        out.append("tcp")
    if any(h.get("failure") for h in _list(tk, "tls_handshakes")):
        out.append("tls")
    out += [mechanism_of(r["failure"], "http") for r in _list(tk, "requests")
            if r.get("failure")]
    return out


def _tcp_failure(c: dict[str, Any]) -> Any:
    st = c.get("status")
    return st.get("failure") or st.get("success") is False if isinstance(st, dict) else None


# -- web_connectivity (ooni/spec ts-017; fastpath score_web_connectivity) -------------------
def _text(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and v.get("format") == "base64" and isinstance(v.get("data"), str):
        try:
            return base64.b64decode(v["data"]).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return None
    return None


def _headers(resp: dict[str, Any]) -> dict[str, str]:
    h = resp.get("headers")
    out: dict[str, str] = {}
    if isinstance(h, dict):
        for k, v in h.items():
            if (t := _text(v)) is not None:
                out[str(k).lower()] = t
    return out


def _answers(tk: dict[str, Any]) -> list[str]:
    return [str(a.get("ipv4") or a.get("ipv6")) for q in _list(tk, "queries")
            for a in (q.get("answers") or []) if isinstance(a, dict)
            and (a.get("ipv4") or a.get("ipv6"))]


def _cc(m: dict[str, Any]) -> str:
    try:
        return parse_cc(m.get("probe_cc"))
    except MetaError:
        return "ZZ"


def _judge_web(m: dict[str, Any], tk: dict[str, Any],
               fps: FingerprintIndex | None) -> _Judged:
    index = fps or default_index()
    cc = _cc(m)
    if (name := index.match_dns(cc, _answers(tk))) is not None:
        return Outcome.CONFIRMED, "wc.fingerprint.dns", ["dns"], name
    if cc in index.http:
        for r in _list(tk, "requests"):
            resp = r.get("response")
            if isinstance(resp, dict):
                name = index.match_http(cc, _text(resp.get("body")), _headers(resp))
                if name is not None:
                    return Outcome.CONFIRMED, "wc.fingerprint.http", ["http-blockpage"], name
    blocking = tk.get("blocking")
    if blocking is False:
        return Outcome.OK, "wc.accessible", [], None
    if blocking == "dns":
        return Outcome.ANOMALY, "wc.blocking", ["dns"], None
    if blocking == "tcp_ip":
        return Outcome.ANOMALY, "wc.blocking", ["tcp"], None
    if blocking == "http-diff":
        return Outcome.ANOMALY, "wc.blocking", ["http-blockpage"], None
    if blocking == "http-failure":
        tls_failed = any(h.get("failure") for h in _list(tk, "tls_handshakes"))
        mech = "tls" if tls_failed else mechanism_of(tk.get("http_experiment_failure"))
        mech = "http" if mech == "other" else mech  # the exchange failed, cause unnamed
        if mech == "tcp" and str(m.get("input", "")).startswith("https"):
            mech = "tls"  # a reset/timeout of an HTTPS exchange after connect: TLS (SNI)
        return Outcome.ANOMALY, "wc.blocking", [mech], None
    return Outcome.FAILURE, "wc.no-verdict", [], None


# -- IM tests (ts-020 whatsapp, ts-021 telegram, ts-029 signal, ts-019 facebook) ------------
def _did_not_run(tk: dict[str, Any], keys: Iterable[str]) -> bool:
    return all(tk.get(k) is None for k in keys)


def _judge_telegram(m: dict[str, Any], tk: dict[str, Any],
                    fps: FingerprintIndex | None) -> _Judged:
    conns = _list(tk, "tcp_connect")
    reqs = [r for r in _list(tk, "requests")
            if "web.telegram.org" not in str((r.get("request") or {}).get("url", ""))]
    if conns:
        bad = sum(1 for c in conns if _tcp_failure(c))
        tcp = bad / len(conns)
    elif isinstance(tk.get("telegram_tcp_blocking"), bool):
        tcp = float(tk["telegram_tcp_blocking"])
    else:
        tcp = None
    if reqs:
        http = sum(1 for r in reqs if r.get("failure")) / len(reqs)
    elif isinstance(tk.get("telegram_http_blocking"), bool):
        http = float(tk["telegram_http_blocking"])
    else:
        http = None
    web_blocked = tk.get("telegram_web_status") == "blocked"
    if tcp is None and http is None and tk.get("telegram_web_status") is None:
        return Outcome.FAILURE, "im.failed", [], None
    score = (0.5 if tcp is None else tcp) + (0.5 if http is None else http) + web_blocked
    if score <= 0.5:
        return Outcome.OK, "telegram.ok", [], None
    mechs = (["tcp"] if tcp else []) + _array_mechanisms(tk)
    if web_blocked:
        mechs.append(mechanism_of(tk.get("telegram_web_failure"), "http"))
    return Outcome.ANOMALY, "telegram.score", mechs, None


def _judge_whatsapp(m: dict[str, Any], tk: dict[str, Any],
                    fps: FingerprintIndex | None) -> _Judged:
    keys = ("whatsapp_web_status", "registration_server_status", "whatsapp_endpoints_status")
    if _did_not_run(tk, keys):
        return Outcome.FAILURE, "im.failed", [], None
    mechs: list[str] = []
    if tk.get("whatsapp_web_status") == "blocked":
        mechs.append(mechanism_of(tk.get("whatsapp_web_failure"), "http"))
    if tk.get("registration_server_status") == "blocked":
        mechs.append(mechanism_of(tk.get("registration_server_failure"), "http"))
    if mechs:
        return Outcome.ANOMALY, "whatsapp.web-or-registration", mechs, None
    conns = _list(tk, "tcp_connect")
    if tk.get("whatsapp_endpoints_status") == "blocked" or (
            conns and all(_tcp_failure(c) for c in conns)):
        return Outcome.ANOMALY, "whatsapp.endpoints", ["tcp"], None
    return Outcome.OK, "whatsapp.ok", [], None


def _version(text: Any) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in str(text).split("."))
    except ValueError:
        return ()


def _judge_signal(m: dict[str, Any], tk: dict[str, Any],
                  fps: FingerprintIndex | None) -> _Judged:
    status = tk.get("signal_backend_status")
    if status is None:
        return Outcome.FAILURE, "im.failed", [], None
    if () < _version(m.get("test_version")) < (0, 2, 2):  # only a version that says so
        return Outcome.FAILURE, "signal.buggy-version", [], None
    if status == "blocked":
        return (Outcome.ANOMALY, "signal.blocked",
                [mechanism_of(tk.get("signal_backend_failure"), tk.get("failed_operation"))],
                None)
    return Outcome.OK, "signal.ok", [], None


def _judge_facebook(m: dict[str, Any], tk: dict[str, Any],
                    fps: FingerprintIndex | None) -> _Judged:
    fb = {k: v for k, v in tk.items() if k.startswith("facebook_")}
    if all(v is None for v in fb.values()):
        return Outcome.FAILURE, "im.failed", [], None
    dns_bad = [k for k, v in fb.items() if (k == "facebook_dns_blocking" and v is True)
               or (k.endswith("_dns_consistent") and v is False)]
    tcp_bad = [k for k, v in fb.items() if (k == "facebook_tcp_blocking" and v is True)
               or (k.endswith("_reachable") and v is False)]
    if 0.5 * (len(dns_bad) + len(tcp_bad)) <= 0.5:
        return Outcome.OK, "facebook.ok", [], None
    return (Outcome.ANOMALY, "facebook.score",
            (["dns"] if dns_bad else []) + (["tcp"] if tcp_bad else []), None)


# -- circumvention (ts-023 tor, ts-016 vanilla_tor, torsf, ts-015 psiphon) ------------------
def _judge_tor(m: dict[str, Any], tk: dict[str, Any],
               fps: FingerprintIndex | None) -> _Judged:
    raw = tk.get("targets")  # a dict by address (tor >= 0.3.x) or a list (0.3.1)
    targets = list(raw.values()) if isinstance(raw, dict) else raw
    if not isinstance(targets, list) or not targets:
        return Outcome.FAILURE, "im.failed", [], None
    failed = [t for t in targets if isinstance(t, dict) and t.get("failure")]
    if 2 * len(failed) <= len(targets):
        return Outcome.OK, "tor.ok", [], None
    return (Outcome.ANOMALY, "tor.targets-majority",
            [mechanism_of(t.get("failure"), t.get("failed_operation")) for t in failed], None)


def _judge_bootstrap(m: dict[str, Any], tk: dict[str, Any],
                     fps: FingerprintIndex | None) -> _Judged:
    failure = tk.get("failure")
    if failure or tk.get("success") is False:
        return (Outcome.ANOMALY, "bootstrap.failed",
                [mechanism_of(failure, tk.get("failed_operation"))], None)
    if tk.get("success") is True or (isinstance(tk.get("bootstrap_time"), int | float)
                                     and tk["bootstrap_time"] > 0):
        return Outcome.OK, "bootstrap.ok", [], None
    return Outcome.FAILURE, "im.failed", [], None


# -- sni_throttling (NetVigil's probe; anchors §6) ----------------------------------------
@dataclass(frozen=True)
class Leg:
    """One fetch of an sni_throttling measurement, read from OONI's standard rows tagged
    ``target`` or ``control``: handshake seconds (``tls_handshakes[].t0/t``), body bytes
    received (the last ``bytes_received_cumulative`` network event) and the transfer's
    seconds (``http_transaction_start`` to ``http_transaction_done``)."""

    handshake_s: float | None = None
    handshake_failed: bool = False
    body_bytes: int = 0
    transfer_s: float | None = None

    @property
    def throughput(self) -> float | None:
        """Body bytes per second, None without a timed transfer that received bytes."""
        if self.transfer_s is None or self.transfer_s <= 0 or self.body_bytes <= 0:
            return None
        return self.body_bytes / self.transfer_s


def _tagged(row: dict[str, Any], tag: str) -> bool:
    tags = row.get("tags")
    return isinstance(tags, list) and tag in tags


def _leg(tk: dict[str, Any], tag: str) -> Leg:
    hs = [h for h in _list(tk, "tls_handshakes") if _tagged(h, tag)]
    handshake_s, failed = None, bool(hs) and hs[0].get("failure") is not None
    if hs and not failed:
        t0, t = _num(hs[0].get("t0")), _num(hs[0].get("t"))
        handshake_s = t - t0 if t0 is not None and t is not None and t >= t0 else None
    start = done = None
    body = 0
    for ev in _list(tk, "network_events"):
        if not _tagged(ev, tag):
            continue
        op, t = ev.get("operation"), _num(ev.get("t"))
        if op == "http_transaction_start":
            start = t
        elif op == "http_transaction_done":
            done = t
        elif op == "bytes_received_cumulative":
            n = _num(ev.get("num_bytes"))
            if n is not None and 0 <= n < 2**63:  # not NaN / inf (json.loads reads them)
                body = max(body, int(n))
    transfer = done - start if start is not None and done is not None and done > start \
        else None
    return Leg(handshake_s, failed, body, transfer)


def throttling_legs(tk: dict[str, Any]) -> tuple[Leg, Leg]:
    """(target, control) legs of an sni_throttling measurement."""
    return _leg(tk, "target"), _leg(tk, "control")


def speed_ratio(target: Leg, control: Leg) -> float | None:
    """Target speed / control speed on the same server address (1 = no difference).

    Throughput of the same fixed-size download when both legs have one (Censored Planet's
    Russia-Twitter method: the real SNI beside a scrambled one, anchors §6); else the
    inverse ratio of the handshake times (OONI's Kazakhstan method: "handshake duration
    works as a micro speed test"). None when the control leg has neither (no baseline)."""
    tt, ct = target.throughput, control.throughput
    if tt is not None and ct is not None:
        return tt / ct
    if target.handshake_s and control.handshake_s:
        return control.handshake_s / target.handshake_s
    return None


def _judge_sni_throttling(m: dict[str, Any], tk: dict[str, Any],
                          fps: FingerprintIndex | None) -> _Judged:
    """ok when both SNIs completed (the slowdown is a series, not a block); anomaly (tls)
    when only the target SNI's handshake failed on the same address: SNI blocking."""
    target, control = throttling_legs(tk)
    if control.handshake_s is None:
        return Outcome.FAILURE, "throttling.no-baseline", [], None
    if target.handshake_failed:
        return Outcome.ANOMALY, "throttling.target-failed", ["tls"], None
    if target.handshake_s is None:
        return Outcome.FAILURE, "throttling.target-incomplete", [], None
    return Outcome.OK, "throttling.measured", [], None


_JUDGES = {
    "web_connectivity": _judge_web,
    SNI_THROTTLING: _judge_sni_throttling,
    "telegram": _judge_telegram,
    "whatsapp": _judge_whatsapp,
    "signal": _judge_signal,
    "facebook_messenger": _judge_facebook,
    "tor": _judge_tor,
    "vanilla_tor": _judge_bootstrap,
    "torsf": _judge_bootstrap,
    "psiphon": _judge_bootstrap,
}


# -- TLS handshake time (throttling evidence) -----------------------------------------------
def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _tls_ms(tk: dict[str, Any]) -> float | None:
    """Median successful TLS handshake duration in ms (module docstring), or None."""
    durations = []
    for h in _list(tk, "tls_handshakes"):
        t0, t = _num(h.get("t0")), _num(h.get("t"))
        if h.get("failure") is None and t0 is not None and t is not None and t >= t0:
            durations.append(t - t0)
    if not durations:
        start: float | None = None
        for ev in _list(tk, "network_events"):
            op = ev.get("operation")  # only the two TLS events are looked at further
            if op == "tls_handshake_start":
                start = _num(ev.get("t"))
            elif op == "tls_handshake_done" and start is not None:
                t = _num(ev.get("t"))
                if t is not None and ev.get("failure") is None and t >= start:
                    durations.append(t - start)
                start = None
    return 1000.0 * statistics.median(durations) if durations else None
