"""Alerts (issue 10, deliverable 3): subscriptions by entity, scope and kind; a real webhook
receiver (HTTP on loopback, HMAC checked with the receiver's own code) and a real SMTP server
(aiosmtpd on loopback) each get exactly one message per transition, across a restart and
after failures; secrets never reach logs; Atom feeds global and per country; `netvigil run`
delivers the transitions of the store it watches."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import shutil
import socket
import sqlite3
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from netvigil.alerts import dispatch, load_config, transitions_of
from netvigil.alerts.channels import message_id
from netvigil.alerts.feeds import ATOM, atom_feed
from netvigil.cli.common import open_store
from netvigil.model import InputError
from netvigil.model.entities import EntityRef, EntityType
from netvigil.model.events import Event, EventKind, EventStatus, Scope
from netvigil.serve.app import create_app
from netvigil.store.duck import Store
from test_observatory_support import log_records, start_run, wait_for, write_config

SECRET = "s3cret-hmac-key-do-not-log"
TOKEN = "tok-in-url-do-not-log"
T = 1_641_379_200  # 2022-01-05T10:40:00Z


def _event(code: str, start: int, end: int | None, kind: EventKind = EventKind.OUTAGE,
           etype: EntityType = EntityType.COUNTRY) -> Event:
    ref = EntityRef(etype, code)
    return Event(id=f"{code}-{start}-{kind.value}", entity=ref, entity_name=code, start=start,
                 end=end, status=EventStatus.ENDED if end else EventStatus.ONGOING,
                 scope=Scope.for_entity(ref), kind=kind, score=1.0, confidence=0.9,
                 min_ratio=0.02, signals=(), rules=())


class Receiver(BaseHTTPRequestHandler):
    """A webhook consumer: verifies the HMAC like a receiver would, records deliveries; the
    first ``fail_first`` requests get a 500."""

    got: list[dict[str, Any]]
    fail_first = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        srv: Any = self.server
        if srv.fail_first > 0:
            srv.fail_first -= 1
            self.send_response(500)
            self.end_headers()
            return
        want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        srv.got.append({"body": json.loads(body), "path": self.path,
                        "signature_ok": hmac.compare_digest(
                            want, self.headers.get("X-NetVigil-Signature", "")),
                        "delivery": self.headers.get("X-NetVigil-Delivery")})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[Any]:
    srv: Any = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    srv.got, srv.fail_first = [], 0
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Mailbox]]:
    box = Mailbox()
    with socket.socket() as probe:  # aiosmtpd's Controller needs a concrete port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    yield ctl, box
    ctl.stop()


def _config(tmp: Path, body: str) -> Path:
    path = tmp / "alerts.toml"
    path.write_text(body, encoding="utf-8")
    return path


def _both(tmp: Path, webhook: Any, smtp_port: int, *, entity: str = "country/KZ") -> Path:
    return _config(tmp, f"""
outbox = "outbox.sqlite"
[channel.hook]
type = "webhook"
url = "http://127.0.0.1:{webhook.server_address[1]}/hook?token={TOKEN}"
secret_env = "NV_TEST_HOOK_KEY"
[channel.mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
sender = "netvigil@localhost"
to = ["desk@example.org"]
[[subscription]]
id = "kz"
entity = "{entity}"
channels = ["hook", "mail"]
[[subscription]]
id = "kz-regions-platforms"
entity = "region/KZ-*"
kind = ["platform-block"]
channels = ["hook"]
""")


EVENTS = [
    _event("KZ", T, T + 86_400),  # opened + ended
    _event("KZ", T - 86_400, None, EventKind.PLATFORM_BLOCK),  # opened only (ongoing)
    _event("UZ", T, T + 3600),  # not subscribed
    _event("KZ-75", T, T + 3600, EventKind.PLATFORM_BLOCK, EntityType.REGION),
    _event("KZ-71", T, T + 3600, EventKind.OUTAGE, EntityType.REGION),  # kind filtered out
]


def test_one_message_per_transition_across_a_restart(tmp_path: Path, webhook: Any,
                                                     smtp: tuple[Controller, Mailbox],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NV_TEST_HOOK_KEY", SECRET)
    ctl, box = smtp
    config = load_config(_both(tmp_path, webhook, ctl.port))
    first = dispatch(config, EVENTS, now=T + 90_000)
    # KZ: 3 transitions x 2 channels; KZ-75 platform block: 2 transitions x webhook only
    assert (first.enqueued, first.delivered, first.pending) == (8, 8, 0)
    # a "restart": a new process would open the same outbox file; the events come again
    again = dispatch(load_config(tmp_path / "alerts.toml"), EVENTS, now=T + 100_000)
    assert (again.enqueued, again.delivered) == (0, 0)
    deliveries = [g["delivery"] for g in webhook.got]
    assert len(deliveries) == len(set(deliveries)) == 5
    assert all(g["signature_ok"] for g in webhook.got)
    assert {g["body"]["transition"] for g in webhook.got} == {"opened", "ended"}
    assert sorted(m["Message-ID"] for m in box.messages) == sorted(
        message_id(t.id, "mail") for t in transitions_of(EVENTS[:2]))
    assert all(m["Subject"].startswith("[NetVigil] KZ:") for m in box.messages)
    # a new transition (the platform block ends) is one more message per channel
    ended = [_event("KZ", T - 86_400, T + 7200, EventKind.PLATFORM_BLOCK), *EVENTS[2:],
             EVENTS[0]]
    third = dispatch(config, ended, now=T + 110_000)
    assert (third.enqueued, third.delivered) == (2, 2)
    assert len(box.messages) == 4 and len(webhook.got) == 6


def test_failed_deliveries_are_retried_with_backoff_then_given_up(
        tmp_path: Path, webhook: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NV_TEST_HOOK_KEY", SECRET)
    webhook.fail_first = 2
    cfg = _config(tmp_path, f"""
[channel.hook]
type = "webhook"
url = "http://127.0.0.1:{webhook.server_address[1]}/hook"
secret_env = "NV_TEST_HOOK_KEY"
max_attempts = 5
[channel.dead]
type = "webhook"
url = "http://127.0.0.1:9/nothing-listens-here"
max_attempts = 2
[[subscription]]
entity = "country/UZ"
channels = ["hook", "dead"]
""")
    config = load_config(cfg)
    ev = [EVENTS[2]]
    r1 = dispatch(config, ev, now=T)  # 2 transitions: both 500 on hook, dead unreachable
    assert (r1.delivered, r1.retried, r1.failed, r1.pending) == (0, 4, 0, 4)
    r2 = dispatch(config, ev, now=T + 10)  # nothing due yet (30 s backoff)
    assert (r2.delivered, r2.retried) == (0, 0)
    r3 = dispatch(config, ev, now=T + 31)  # hook answers now; dead gives up at attempt 2
    assert (r3.delivered, r3.failed, r3.pending) == (2, 2, 0)
    assert len(webhook.got) == 2
    with sqlite3.connect(config.outbox) as con:
        errors = [r[0] for r in con.execute("SELECT last_error FROM deliveries "
                                            "WHERE failed_at IS NOT NULL")]
    assert errors and all("127.0.0.1:9/nothing-listens-here unreachable" in e for e in errors)


def test_no_secret_reaches_logs_or_the_outbox(tmp_path: Path, webhook: Any,
                                              caplog: pytest.LogCaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NV_TEST_HOOK_KEY", SECRET)
    webhook.fail_first = 1
    config = load_config(_both(tmp_path, webhook, 9))  # SMTP port 9: refused
    with caplog.at_level(logging.DEBUG):
        dispatch(config, EVENTS[:1], now=T + 90_000)
        dispatch(config, EVENTS[:1], now=T + 200_000)
    text = caplog.text + repr(config)
    with sqlite3.connect(config.outbox) as con:
        text += json.dumps(con.execute("SELECT * FROM deliveries").fetchall())
    assert "will retry" in caplog.text
    assert SECRET not in text and TOKEN not in text


@pytest.mark.parametrize("body, where", [
    ("[channel.a]\ntype = \"webhook\"\nurl = \"ftp://x\"\n", "channel.a.url"),
    ("[[subscription]]\nentity = \"country/KZ\"\nchannels = [\"nope\"]\n", "no channel"),
    ("[channel.a]\ntype=\"webhook\"\nurl=\"http://x\"\n[[subscription]]\nchannels=[\"a\"]\n"
     "scope=[\"planet\"]\n", "subscription[0]"),
    ("[channel.a]\ntype=\"webhook\"\nurl=\"http://x\"\nsecret=\"inline\"\n", "unknown key"),
    ("since = \"yesterday\"\n", "since"),
    ("[[subscription]]\nchannels = []\n", "at least one channel"),
])
def test_bad_configs_are_one_line_errors_naming_the_key(tmp_path: Path, body: str,
                                                        where: str) -> None:
    with pytest.raises(InputError) as err:
        load_config(_config(tmp_path, body))
    assert where in str(err.value) and str(tmp_path / "alerts.toml") in str(err.value)


def test_since_keeps_history_quiet(tmp_path: Path, webhook: Any) -> None:
    cfg = _config(tmp_path, f"""
since = "2022-01-05T12:00:00Z"
[channel.hook]
type = "webhook"
url = "http://127.0.0.1:{webhook.server_address[1]}/hook"
[[subscription]]
channels = ["hook"]
entity = "country/KZ"
""")
    r = dispatch(load_config(cfg), EVENTS[:2], now=T + 90_000)
    assert r.delivered == 1 and webhook.got[0]["body"]["transition"] == "ended"


def test_atom_feed_has_one_stable_entry_per_transition() -> None:
    body = atom_feed(EVENTS, title="t", feed_id="urn:x", self_url="http://h/f", now=T)
    root = ET.fromstring(body)
    ids = [e.findtext(f"{{{ATOM}}}id") for e in root.findall(f"{{{ATOM}}}entry")]
    assert len(ids) == len(set(ids)) == len(transitions_of(EVENTS))
    again = ET.fromstring(atom_feed(EVENTS, title="t", feed_id="urn:x", self_url="", now=T))
    assert ids == [e.findtext(f"{{{ATOM}}}id") for e in again.findall(f"{{{ATOM}}}entry")]


def test_served_feeds_on_the_demo_store(demo_store: Path) -> None:
    with TestClient(create_app(demo_store, open_store=open_store)) as client:
        kz = client.get("/feeds/country/KZ.atom")
        world = client.get("/feeds/events.atom")
        bad = client.get("/feeds/country/K1Z.atom")
    assert kz.status_code == 200 and kz.headers["content-type"].startswith(
        "application/atom+xml")
    titles = [e.findtext(f"{{{ATOM}}}title") for e in
              ET.fromstring(kz.content).findall(f"{{{ATOM}}}entry")]
    assert any(t and t.startswith("Kazakhstan: national connectivity outage from 10:40 UTC "
                                  "on 5 January 2022") for t in titles)
    assert all("Uzbekistan" not in (t or "") for t in titles)
    assert len(ET.fromstring(world.content).findall(f"{{{ATOM}}}entry")) >= len(titles)
    assert bad.status_code == 422 and "alpha-2" in bad.json()["error"]["message"]


def test_netvigil_run_delivers_the_transitions_of_its_store(tmp_path: Path, webhook: Any,
                                                            demo_store: Path) -> None:
    store = tmp_path / "obs.duckdb"
    shutil.copy(demo_store, store)
    _config(tmp_path, f"""
[channel.hook]
type = "webhook"
url = "http://127.0.0.1:{webhook.server_address[1]}/hook"
[[subscription]]
entity = "country/KZ"
scope = ["national"]
channels = ["hook"]
""")
    with Store(store, read_only=True) as s:
        want = {t.id for t in transitions_of(
            e for e in s.read_events(EntityRef(EntityType.COUNTRY, "KZ")))}
    cfg = write_config(tmp_path, f'store = "{store}"\nbin_seconds = 1\n'
                                 '[alerts]\nconfig = "alerts.toml"\n')
    for n in (1, 2):  # the second run is the restart: nothing new to send
        log = tmp_path / f"run{n}.jsonl"
        proc = start_run(cfg, log, "--duration", "3")
        wait_for(lambda log=log: any(r.get("event") == "bin" for r in log_records(log)), 60,
                 "a bin", proc)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert sorted(g["delivery"] for g in webhook.got) == sorted(want)
