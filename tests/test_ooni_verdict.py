"""verdict(measurement): OONI's published logic (anchors §4.1) on real measurements from
2014 to 2025 and on measurements built from ooni/spec's keys where no real one ships
(facebook_messenger, psiphon, blocked telegram)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netvigil.sources.ooni import MECHANISMS, Outcome, verdict
from netvigil.sources.ooni.fingerprints import build_index
from netvigil.sources.ooni.meta import MetaError, read_meta
from netvigil.sources.ooni.verdict import RULES, mechanism_of

FIX = Path(__file__).parent / "fixtures" / "ooni"

# file -> (platform, outcome, mechanisms): read off each measurement's own verdict keys
EXPECTED: dict[str, tuple[str | None, Outcome | None, tuple[str, ...]]] = {
    "20250527233111.802678_ID_webconnectivity_5a37ec909dbf14e3.json":
        (None, Outcome.CONFIRMED, ("http-blockpage",)),
    "web_connectivity_ir_fp.json": ("facebook", Outcome.CONFIRMED, ("dns",)),
    "bug_352.json": (None, Outcome.CONFIRMED, ("dns",)),
    "report1.json": (None, Outcome.OK, ()),
    "report1.json.pretty": (None, Outcome.OK, ()),
    "requests_none.json": (None, Outcome.ANOMALY, ("dns",)),
    "test_keys_none.json": (None, Outcome.FAILURE, ()),
    "web_connectivity_null.json": (None, Outcome.FAILURE, ()),
    "web_connectivity_odd_hdr.json": (None, Outcome.ANOMALY, ("dns",)),
    "web_connectivity_b64_hdr.json": (None, Outcome.ANOMALY, ("http",)),
    "whatsapp.json": ("whatsapp", Outcome.ANOMALY, ("http",)),
    "telegram_nourl.json": ("telegram", Outcome.OK, ()),
    "signal_022.json": ("signal", Outcome.OK, ()),
    "signal_679.json": ("signal", Outcome.ANOMALY, ("dns",)),
    "signal_2627.json": ("signal", Outcome.FAILURE, ()),
    "tor.json": ("tor", Outcome.OK, ()),
    "tor_list.json": ("tor", Outcome.OK, ()),
    "torsf_1.json": ("tor", Outcome.ANOMALY, ("tcp",)),
    "torsf_2.json": ("tor", Outcome.OK, ()),
    "vanilla_tor.json": ("tor", Outcome.ANOMALY, ("tcp",)),
    "vanilla_tor_ok.json": ("tor", Outcome.OK, ()),
    "http_requests_1.json": (None, None, ()),
    "yaml17_0.json": (None, None, ()),
    "browser_web.json": (None, None, ()),
    "meek3.json": (None, None, ()),
}


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIX / name).read_text())
    return doc


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_fixtures_get_their_expected_verdicts(name: str) -> None:
    v = verdict(load(name))
    assert (v.platform, v.outcome, v.mechanisms) == EXPECTED[name], v
    assert v.rule in RULES


def test_every_fixture_measurement_is_covered() -> None:
    shipped = {p.name for p in FIX.iterdir() if p.suffix in (".json", ".pretty")}
    assert shipped == set(EXPECTED)


def test_confirmed_names_the_fingerprint_and_needs_the_expected_country() -> None:
    m = load("web_connectivity_ir_fp.json")
    assert verdict(m).fingerprint == "ooni.ir_10dot10_ipv4_1"
    elsewhere = dict(m, probe_cc="DE")  # the same answer in a country the page is not from
    v = verdict(elsewhere)
    assert v.outcome is Outcome.ANOMALY and v.mechanisms == ("dns",)


def test_fingerprint_scope_outside_nat_isp_is_not_a_confirmation() -> None:
    row = {"name": "x", "pattern": "10.10.34.36", "pattern_type": "full",
           "location_found": "dns", "expected_countries": "IR"}
    m = load("web_connectivity_ir_fp.json")
    assert verdict(m, fingerprints=build_index([dict(row, scope="isp")], [])
                   ).outcome is Outcome.CONFIRMED
    assert verdict(m, fingerprints=build_index([dict(row, scope="prod")], [])
                   ).outcome is Outcome.ANOMALY


def test_http_blockpage_fingerprint_in_a_body() -> None:
    m: dict[str, Any] = {"test_name": "web_connectivity", "probe_cc": "KZ",
                         "input": "https://t.me/x",
         "test_keys": {"blocking": "http-diff", "requests": [
             {"response": {"body": "<html>Access denied by KZ-FILTER</html>",
                           "headers": {"Server": "nginx"}}}]}}
    fps = build_index([], [{"name": "kz.test", "pattern": "KZ-FILTER", "pattern_type":
                            "contains", "location_found": "body", "expected_countries": "KZ",
                            "scope": "nat"}])
    v = verdict(m, fingerprints=fps)
    assert (v.platform, v.outcome, v.mechanisms, v.fingerprint) == (
        "telegram", Outcome.CONFIRMED, ("http-blockpage",), "kz.test")
    m["test_keys"]["requests"][0]["response"]["body"] = "<html>hello</html>"
    assert verdict(m, fingerprints=fps).outcome is Outcome.ANOMALY


def test_https_reset_after_connect_is_tls() -> None:
    m = {"test_name": "web_connectivity", "probe_cc": "KZ", "input": "https://www.whatsapp.com/",
         "test_keys": {"blocking": "http-failure", "http_experiment_failure":
                       "connection_reset"}}
    v = verdict(m)
    assert (v.platform, v.outcome, v.mechanisms) == ("whatsapp", Outcome.ANOMALY, ("tls",))
    m["input"] = "http://www.whatsapp.com/"
    assert verdict(m).mechanisms == ("tcp",)


def _conn(ok: bool) -> dict[str, Any]:
    return {"ip": "149.154.175.50", "port": 443,
            "status": {"success": ok, "failure": None if ok else "generic_timeout_error"}}


def test_telegram_score_from_tcp_http_and_web() -> None:
    tk: dict[str, Any] = {"tcp_connect": [_conn(True)] * 11 + [_conn(False)],
                          "requests": [{"failure": None}], "telegram_web_status": "ok"}
    m = {"test_name": "telegram", "test_keys": tk}
    assert verdict(m).outcome is Outcome.OK  # 1/12 + 0 + 0 <= 0.5
    tk["telegram_web_status"] = "blocked"
    tk["telegram_web_failure"] = "connection_reset"
    v = verdict(m)
    assert v.outcome is Outcome.ANOMALY and set(v.mechanisms) == {"tcp"}
    tk.update(tcp_connect=[_conn(False)] * 12, telegram_web_status="ok",
              requests=[{"failure": "generic_timeout_error"}])
    v = verdict(m)
    assert v.outcome is Outcome.ANOMALY and v.mechanisms == ("tcp",)


def test_whatsapp_endpoints_all_failing_is_tcp_blocking() -> None:
    m: dict[str, Any] = {"test_name": "whatsapp", "test_keys": {
        "whatsapp_endpoints_status": "blocked", "whatsapp_web_status": "ok",
        "registration_server_status": "ok", "tcp_connect": [_conn(False)] * 4}}
    v = verdict(m)
    assert (v.outcome, v.rule, v.mechanisms) == (Outcome.ANOMALY, "whatsapp.endpoints",
                                                 ("tcp",))
    m["test_keys"].update(whatsapp_endpoints_status="ok", tcp_connect=[_conn(True)])
    assert verdict(m).outcome is Outcome.OK


def test_facebook_messenger_half_point_per_bad_key() -> None:
    tk: dict[str, Any] = {f"facebook_{ep}_dns_consistent": True for ep in ("b_api", "edge")}
    tk |= {f"facebook_{ep}_reachable": True for ep in ("b_api", "edge")}
    tk |= {"facebook_dns_blocking": False, "facebook_tcp_blocking": False}
    m = {"test_name": "facebook_messenger", "test_keys": tk}
    assert (verdict(m).platform, verdict(m).outcome) == ("facebook", Outcome.OK)
    tk["facebook_edge_reachable"] = False  # one bad key: 0.5, not > 0.5
    assert verdict(m).outcome is Outcome.OK
    tk["facebook_tcp_blocking"] = True
    v = verdict(m)
    assert (v.outcome, v.mechanisms) == (Outcome.ANOMALY, ("tcp",))
    tk |= {"facebook_dns_blocking": True, "facebook_b_api_dns_consistent": False}
    assert verdict(m).mechanisms == ("dns", "tcp")
    assert verdict({"test_name": "facebook_messenger", "test_keys": {
        "facebook_dns_blocking": None}}).outcome is Outcome.FAILURE


def test_psiphon_bootstrap() -> None:
    ok = {"test_name": "psiphon", "test_keys": {"bootstrap_time": 3.2, "failure": None}}
    bad = {"test_name": "psiphon", "test_keys": {"bootstrap_time": 0,
                                                 "failure": "ssl_failed_handshake"}}
    assert (verdict(ok).platform, verdict(ok).outcome) == ("psiphon", Outcome.OK)
    assert (verdict(bad).outcome, verdict(bad).mechanisms) == (Outcome.ANOMALY, ("tls",))


def test_tor_majority_of_targets() -> None:
    def targets(n_bad: int) -> dict[str, Any]:
        return {"test_name": "tor", "test_keys": {"targets": {
            f"t{i}": {"failure": "connection_reset" if i < n_bad else None,
                      "failed_operation": "tls_handshake"} for i in range(4)}}}
    assert verdict(targets(2)).outcome is Outcome.OK
    v = verdict(targets(3))
    assert (v.outcome, v.mechanisms) == (Outcome.ANOMALY, ("tls",))


def test_signal_without_a_test_version_is_judged() -> None:
    m = {"test_name": "signal", "test_keys": {"signal_backend_status": "blocked",
                                              "signal_backend_failure": "connection_reset",
                                              "failed_operation": "tls_handshake"}}
    assert (verdict(m).outcome, verdict(m).mechanisms) == (Outcome.ANOMALY, ("tls",))


def test_tls_handshake_time_from_t0_and_network_events() -> None:
    tk: dict[str, Any] = {"signal_backend_status": "ok", "tls_handshakes": [
        {"t0": 1.0, "t": 1.2, "failure": None}, {"t0": 2.0, "t": 2.6, "failure": None},
        {"t0": 3.0, "t": 3.1, "failure": None}, {"t0": 4.0, "t": 9.0, "failure": "eof_error"}]}
    v = verdict({"test_name": "signal", "test_version": "0.2.3", "test_keys": tk})
    assert v.tls_handshake_ms == pytest.approx(200.0)
    real = verdict(load("signal_022.json")).tls_handshake_ms
    assert real is not None and 1.0 < real < 2000.0  # from tls_handshake_start/_done


def test_api_rows_use_the_backends_flags() -> None:
    row = {"test_name": "web_connectivity", "input": "https://web.telegram.org/",
           "probe_cc": "BR", "measurement_start_time": "2018-11-01 01:13:15"}
    assert verdict(dict(row, anomaly=True, confirmed=None)).outcome is Outcome.ANOMALY
    assert verdict(dict(row, anomaly=False, confirmed=False)).outcome is Outcome.OK
    assert verdict(dict(row, anomaly=True, confirmed=True)).outcome is Outcome.CONFIRMED
    assert verdict(dict(row, anomaly=None)).outcome is Outcome.FAILURE


def test_mechanism_vocabulary() -> None:
    cases = {("dns_nxdomain_error", None): "dns", ("connection_reset", "tls_handshake"): "tls",
             ("ssl_invalid_hostname", None): "tls", ("generic_timeout_error", "connect"): "tcp",
             ("connection_refused", None): "tcp", ("http_unexpected_status_code", None): "http",
             ("something_new", None): "other"}
    for (failure, op), mech in cases.items():
        assert mechanism_of(failure, op) == mech, failure
    assert set(cases.values()) <= set(MECHANISMS)


def test_odd_shapes_never_raise() -> None:
    odd: tuple[Any, ...] = (None, [], "x", {"blocking": {"a": 1}}, {"targets": "x"},
               {"tcp_connect": "x", "requests": [1, None]}, {"tls_handshakes": [{"t0": "a"}]})
    for tk in odd:
        for name in ("web_connectivity", "telegram", "whatsapp", "signal",
                     "facebook_messenger", "tor", "psiphon", "vanilla_tor", "ndt"):
            v = verdict({"test_name": name, "test_keys": tk})
            assert v.outcome in (None, *Outcome)


def test_base_keys_across_versions() -> None:
    old = read_meta(load("http_requests_1.json"))
    assert (old.test_name, old.cc, old.asn, old.time) == ("http_requests", "AT", 6830,
                                                          1414966067)
    assert read_meta(load("meek3.json")).cc == "ZZ"
    iso = read_meta({"test_name": "x", "measurement_start_time": "2022-01-05T10:00:00Z",
                     "probe_cc": "kz", "probe_asn": 9198})
    assert (iso.cc, iso.asn, iso.time) == ("KZ", 9198, 1641376800)
    for bad in ({"measurement_start_time": "2022-01-05 10:00:00"},
                {"test_name": "x"}, {"test_name": "x", "measurement_start_time": "yesterday"},
                {"test_name": "x", "measurement_start_time": "1999-01-01 00:00:00"},
                {"test_name": "x", "measurement_start_time": "2022-01-05 10:00:00",
                 "probe_cc": "QQ"},
                {"test_name": "x", "measurement_start_time": "2022-01-05 10:00:00",
                 "probe_asn": "ASx"}):
        with pytest.raises(MetaError):
            read_meta(bad)
