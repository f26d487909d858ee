"""serve's per-request machinery under load (docs/api.md "Load"): the one-write protocol on
a real loopback socket, and kept answers that the garbage collector stops tracking.

``OneWriteProtocol`` is uvicorn's httptools protocol holding a response's head until its
first body message. Checked on a real uvicorn server and real sockets: the bytes on the
wire are exactly those of uvicorn's own protocol, one transport write carries head and
body, a streamed body's later chunks still leave as they come, a HEAD answer is not held
back, and the head of an app that fails after starting its response still leaves before
the connection closes.
"""

from __future__ import annotations

import asyncio
import gc
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from netvigil.serve.app import OneWriteProtocol
from netvigil.serve.cache import CachedAnswer, ResponseCache

BODY = b'{"values":[1.0,2.0,null]}'
CHUNKS = (b"first,", b"second,", b"third")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Plain answer, a streamed one, and one that fails after its head."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i, chunk in enumerate(CHUNKS):
            await send({"type": "http.response.body", "body": chunk,
                        "more_body": i < len(CHUNKS) - 1})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(BODY))]})
    if path == "/fail":
        raise RuntimeError("after the head")
    await send({"type": "http.response.body", "body": BODY})


class _Counting:
    """The real transport, recording each call that sends bytes."""

    def __init__(self, transport: Any, calls: list[bytes]) -> None:
        self._transport = transport
        self._calls = calls

    def write(self, data: bytes) -> None:
        self._calls.append(bytes(data))
        self._transport.write(data)

    def writelines(self, parts: list[bytes]) -> None:
        self._calls.append(b"".join(parts))
        self._transport.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


WRITES: dict[type, list[bytes]] = {}


def _counted(transport: asyncio.Transport, protocol: type) -> asyncio.Transport:
    return cast(asyncio.Transport, _Counting(transport, WRITES.setdefault(protocol, [])))


class CountingOneWrite(OneWriteProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_counted(transport, OneWriteProtocol))


class CountingUvicorn(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_counted(transport, HttpToolsProtocol))


def _serve(protocol: type) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="critical", access_log=False, http=protocol,
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def ports() -> Iterator[dict[type, int]]:
    WRITES.clear()
    one, plain = _serve(CountingOneWrite), _serve(CountingUvicorn)
    yield {OneWriteProtocol: next(one), HttpToolsProtocol: next(plain)}
    for gen in (one, plain):
        next(gen, None)


def _exchange(port: int, request: bytes) -> bytes:
    """Send raw requests on one connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def _asked(method: str, path: str, close: bool = True) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: t\r\n"
            f"{'Connection: close' if close else ''}\r\n\r\n").replace("\r\n\r\n\r\n",
                                                                    "\r\n\r\n").encode()


def _undated(raw: bytes) -> bytes:
    return re.sub(rb"date: [^\r]*\r\n", b"", raw)


@pytest.mark.parametrize("method,path", [("GET", "/json"), ("GET", "/stream"),
                                         ("HEAD", "/json")])
def test_the_wire_carries_uvicorns_bytes(ports: dict[type, int], method: str,
                                         path: str) -> None:
    request = _asked(method, path, close=False) + _asked(method, path)  # keep-alive, then close
    ours = _exchange(ports[OneWriteProtocol], request)
    theirs = _exchange(ports[HttpToolsProtocol], request)
    assert _undated(ours) == _undated(theirs)
    assert ours.count(b"HTTP/1.1 200 OK") == 2


def test_head_and_body_leave_in_one_write(ports: dict[type, int]) -> None:
    for protocol in (OneWriteProtocol, HttpToolsProtocol):
        WRITES.setdefault(protocol, []).clear()  # this test may be the module's first
        _exchange(ports[protocol], _asked("GET", "/json"))
    (ours,) = WRITES[OneWriteProtocol]
    assert ours.startswith(b"HTTP/1.1 200 OK\r\n") and ours.endswith(b"\r\n\r\n" + BODY)
    head, body = WRITES[HttpToolsProtocol]  # uvicorn's own: two writes
    # the two answers may fall in different seconds: compare them without their Date header
    assert _undated(head + body) == _undated(ours) and body == BODY


def test_a_stream_keeps_its_later_chunks_separate(ports: dict[type, int]) -> None:
    WRITES.setdefault(OneWriteProtocol, []).clear()  # this test may be the module's first
    raw = _exchange(ports[OneWriteProtocol], _asked("GET", "/stream"))
    first, *later = WRITES[OneWriteProtocol]
    assert first.startswith(b"HTTP/1.1 200 OK") and first.endswith(b"6\r\nfirst,\r\n")
    assert later == [b"7\r\nsecond,\r\n", b"5\r\nthird\r\n0\r\n\r\n"]
    assert raw.endswith(b"\r\n\r\n6\r\nfirst,\r\n7\r\nsecond,\r\n5\r\nthird\r\n0\r\n\r\n")


def test_a_head_request_is_not_held(ports: dict[type, int]) -> None:
    WRITES.setdefault(OneWriteProtocol, []).clear()  # this test may be the module's first
    raw = _exchange(ports[OneWriteProtocol], _asked("HEAD", "/json"))
    assert raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(b"\r\n\r\n")
    assert len(WRITES[OneWriteProtocol]) == 1


def test_the_head_of_a_failed_answer_still_leaves(ports: dict[type, int]) -> None:
    """uvicorn closes the connection when the app fails after its head; the held head is
    written before the close, as uvicorn's own protocol had written it already."""
    ours = _exchange(ports[OneWriteProtocol], _asked("GET", "/fail", close=False))
    theirs = _exchange(ports[HttpToolsProtocol], _asked("GET", "/fail", close=False))
    assert ours.startswith(b"HTTP/1.1 200 OK") and _undated(ours) == _undated(theirs)
    assert BODY not in ours


def test_kept_answers_leave_the_collectors_view() -> None:
    """A full collection's pause grows with the objects it tracks: kept answers are plain
    tuples of bytes and strings, which CPython stops tracking (a tuple once its items are
    untracked, so the entry a collection after its headers)."""
    cache = ResponseCache()
    for i in range(500):
        cache.put(("v",), ("/api/v1/events", b"entity_code=%d" % i), CachedAnswer(
            200, [(b"content-type", b"application/json")], b"[%d]" % i, "/api/v1/events"))
    gc.collect()  # untracks the headers (their items are bytes)
    gc.collect()  # then the entries holding them
    entries = list(cache._entries.values())
    assert len(entries) == 500 and not any(gc.is_tracked(e) for e in entries)
    found = cache.get(("v",), ("/api/v1/events", b"entity_code=7"))
    assert found == CachedAnswer(200, ((b"content-type", b"application/json"),), b"[7]",
                                 "/api/v1/events")
