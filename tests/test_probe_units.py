"""The agent's parts that the namespace tests cannot reach cheaply: the DNS wire parser on
hand-built messages (name compression, rcodes, a reply to another query), the verdict keys
when the controls fail, the spool's idempotence and the backoff's bounds."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest
from netvigil_probe import dnsquery, verdict
from netvigil_probe.spool import Spool
from netvigil_probe.upload import Backoff


def _reply(qid: int, rcode: int, answers: list[str], *, compressed: bool = True) -> bytes:
    q = dnsquery.build_query("web.telegram.org", qid)[12:]
    out = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(answers), 0, 0) + q
    for a in answers:
        name = b"\xc0\x0c" if compressed else q[:-4]
        out += name + struct.pack("!HHIH", 1, 1, 300, 4) + socket.inet_aton(a)
    return out


def test_dns_parser_reads_compressed_and_plain_answers_and_rcodes() -> None:
    assert dnsquery.parse_response(_reply(7, 0, ["198.18.0.1", "198.18.0.2"]), 7) == (
        ["198.18.0.1", "198.18.0.2"], None)
    assert dnsquery.parse_response(_reply(7, 0, ["198.18.0.3"], compressed=False), 7) == (
        ["198.18.0.3"], None)
    assert dnsquery.parse_response(_reply(7, 3, []), 7) == ([], "dns_nxdomain_error")
    assert dnsquery.parse_response(_reply(7, 2, []), 7) == ([], "dns_server_failure")
    assert dnsquery.parse_response(_reply(7, 0, []), 7) == ([], "dns_no_answer")
    with pytest.raises(ValueError, match="not a response to our query"):
        dnsquery.parse_response(_reply(8, 0, ["198.18.0.1"]), 7)
    with pytest.raises(ValueError, match="short"):
        dnsquery.parse_response(b"\x00\x07", 7)


def test_failed_controls_make_every_verdict_unknown_not_blocked() -> None:
    layers = {"dns": "ok", "tcp": "tcp.timeout", "tls": None, "http": None}
    assert verdict.summarize(layers, network_up=False) == {
        "blocking": None, "accessible": None, "x_blocking_flags": 0}
    assert verdict.summarize(layers, network_up=True) == {
        "blocking": "tcp_ip", "accessible": False, "x_blocking_flags": 2}
    both_dns_failed = {"dns": "dns.failure", "tcp": None, "tls": None, "http": None}
    assert verdict.summarize(both_dns_failed, network_up=True)["blocking"] is None
    ok = {"dns": "ok", "tcp": "ok", "tls": "ok", "http": "ok"}
    assert verdict.summarize(ok, network_up=True) == {
        "blocking": False, "accessible": True, "x_blocking_flags": 32}


def test_layer_labels_any_success_is_ok_else_the_first_failure() -> None:
    assert verdict.layer_label("tcp", []) is None
    assert verdict.layer_label("tcp", ["connection_reset", None]) == "ok"
    assert verdict.layer_label("tcp", ["generic_timeout_error", "connection_reset"]) == \
        "tcp.timeout"
    assert verdict.layer_label("tls", ["ssl_unknown_authority"]) == "tls.mitm"
    assert verdict.layer_label("http", ["weird_failure"]) == "http.error"


def test_spool_records_content_once_and_keeps_the_last_location(tmp_path: Path) -> None:
    with Spool(tmp_path) as sp:
        a = sp.put("measurement", {"x": 1, "y": [1, 2]})
        b = sp.put("measurement", {"y": [1, 2], "x": 1})  # same content, other key order
        c = sp.put("measurement", {"x": 2})
        assert a == b != c
        assert sp.counts() == {"total": 2, "uploaded": 0, "rejected": 0, "pending": 2}
        sp.mark_failed(a, "refused", next_attempt=100.0)
        assert [i.uid for i in sp.due(50.0)] == [c]
        sp.mark_uploaded(c, 60.0)
        sp.mark_rejected(a, "422: bad")
        assert sp.counts() == {"total": 2, "uploaded": 1, "rejected": 1, "pending": 0}
        assert sp.network()[1] is None
    with Spool(tmp_path) as sp:  # durable across reopen
        assert sp.counts()["total"] == 2


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    b = Backoff(base=2.0, cap=60.0)
    for failures, full in ((1, 2.0), (2, 4.0), (4, 16.0), (10, 60.0)):
        for _ in range(50):
            assert full / 2 <= b.delay(failures) <= full


def test_a_spool_that_is_not_a_database_is_one_line_and_status_1(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "spool.sqlite").write_bytes(b"this is not sqlite" * 100)
    exe = str(Path(sys.executable).with_name("netvigil-probe"))
    proc = subprocess.run([exe, "status", "--spool", str(tmp_path)], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: spool: ") and str(tmp_path) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
