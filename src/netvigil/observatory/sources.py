"""Long-running sources (the prober, RIS Live) on their own threads, feeding queues.

A source runs in a thread with its own asyncio loop and hands facts to a :class:`QueueSink`,
a thread-safe :class:`~netvigil.model.facts.FactSink` that only *queues*: the store is
closed most of the time (see :mod:`netvigil.observatory.run`), and only the run loop's
thread touches the :class:`~netvigil.pipeline.Pipeline`. Once per bin the loop takes, per
source, every fact up to that source's last ``flush(cursors)`` mark — a consistent point by
the FactSink contract — and writes facts and cursors in one transaction. Facts after the
last mark wait for the next bin, so a restart that resumes from the written cursors neither
skips nor repeats anything.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netvigil.model.facts import Fact

if TYPE_CHECKING:
    from netvigil.observatory.config import BgpConfig, ProbingConfig
    from netvigil.sources.probing.prober import RoundResult


@dataclass(frozen=True)
class _Mark:
    cursors: dict[str, str]


class QueueSink:
    """A FactSink for a source thread: ``emit`` and ``flush`` queue, ``cursor`` answers from
    the cursors read at start-up plus those flushed since."""

    def __init__(self, name: str, cursors: Mapping[str, str]) -> None:
        self.name = name
        self._items: list[Fact | _Mark] = []
        self._cursors = dict(cursors)
        self._lock = threading.Lock()
        self.emitted = 0

    def emit(self, fact: Fact) -> None:
        with self._lock:
            self._items.append(fact)
            self.emitted += 1

    def flush(self, cursors: Mapping[str, str] | None = None) -> None:
        with self._lock:
            mark = dict(cursors or {})
            self._items.append(_Mark(mark))
            self._cursors.update(mark)

    def cursor(self, key: str) -> str | None:
        with self._lock:
            return self._cursors.get(key)

    def waiting(self) -> int:
        """Facts queued and not yet taken (flushed or not)."""
        with self._lock:
            return sum(1 for it in self._items if not isinstance(it, _Mark))

    def take(self) -> tuple[list[Fact], dict[str, str], int]:
        """Facts up to the last flush mark, their merged cursors, and how many facts wait."""
        with self._lock:
            last = max((i for i, it in enumerate(self._items) if isinstance(it, _Mark)),
                       default=-1)
            head, self._items = self._items[: last + 1], self._items[last + 1 :]
            waiting = len(self._items)
        facts: list[Fact] = []
        cursors: dict[str, str] = {}
        for it in head:
            if isinstance(it, _Mark):
                cursors.update(it.cursors)
            else:
                facts.append(it)
        return facts, cursors, waiting


@dataclass
class SourceThread:
    """One source: a coroutine factory run on a private event loop in a daemon thread.

    ``stop()`` asks the coroutine to end (``request_stop``) and, failing that within the
    grace period, cancels it; ``error`` holds what ended it abnormally.
    """

    name: str
    sink: QueueSink
    main: Callable[[], Any]  # returns the coroutine to run
    request_stop: Callable[[], None] | None = None  # None: cancel the task
    finish: Callable[[], None] = lambda: None  # after the loop ends (e.g. close the open bin)
    error: BaseException | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _task: asyncio.Task[Any] | None = field(default=None, repr=False)

    def start(self) -> None:
        ready = threading.Event()

        def body() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._task = loop.create_task(self.main())
                ready.set()
                loop.run_until_complete(self._task)
            except asyncio.CancelledError:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported by the run loop
                self.error = exc
            finally:
                ready.set()
                try:
                    self.finish()
                except BaseException as exc:  # noqa: BLE001
                    self.error = self.error or exc
                loop.close()

        self._thread = threading.Thread(target=body, name=f"netvigil-{self.name}", daemon=True)
        self._thread.start()
        ready.wait(5)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, grace: float = 5.0) -> None:
        if self._thread is None:
            return
        if self.request_stop is not None:
            self.request_stop()
            self._thread.join(grace)
        if self._thread.is_alive() and self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
            self._thread.join(grace)


# ------------------------------------------------------------------ the prober
def probing_source(cfg: ProbingConfig, cursors: Mapping[str, str]) -> SourceThread:
    """The prober of ``netvigil probe run`` (same selection rule, round loop, fact and cursor:
    ``sources.probing.signals.round_fact``, ``runner.cursor_key``), run as a coroutine on the
    source's thread so that stopping it is a task cancel between rounds. Rounds are aligned
    on multiples of ``round_seconds`` (as trinarkular does) so that a restarted observatory
    continues the same grid. The raw socket is opened here, before any thread starts, so a
    missing privilege fails the start-up clearly."""
    import socket

    from netvigil.model import InputError
    from netvigil.sources.probing import icmp
    from netvigil.sources.probing.prober import Prober, ProberConfig
    from netvigil.sources.probing.runner import cursor_key
    from netvigil.sources.probing.signals import round_fact
    from netvigil.sources.probing.targets import SelectionRule, load_targets_csv

    sel = load_targets_csv(cfg.targets, SelectionRule(cfg.min_addresses, cfg.min_availability,
                                                      False))
    if len(sel.targets) == 0:
        raise InputError(str(cfg.targets), None, "no block passes the selection rule "
                         f"(|E(b)| >= {cfg.min_addresses}, A >= {cfg.min_availability})")
    rs = cfg.round_seconds
    pcfg = ProberConfig(round_seconds=float(rs), slices=min(60, 10 * rs),
                        timeout=cfg.timeout or min(3.0, rs / 6), rate=cfg.rate,
                        vantage=cfg.vantage or socket.gethostname(), align=True)
    sock = icmp.open_raw_socket()
    sink = QueueSink("probing", cursors)
    prober = Prober(sel.targets, pcfg, sock=sock)
    key = cursor_key(pcfg.vantage)  # the cursor `netvigil probe run` writes

    def handle(res: RoundResult) -> None:
        sink.emit(round_fact(res, sel.targets))
        sink.flush({key: f"{res.round_start:.3f}"})

    return SourceThread("probing", sink, lambda: prober.run(None, handle), finish=sock.close)


# ------------------------------------------------------------------ RIS Live
def ris_live_source(cfg: BgpConfig, cursors: Mapping[str, str]) -> SourceThread:
    """RIS Live through :class:`~netvigil.sources.bgp.rislive.LiveIngester` (per-bin
    visibility facts, health and resume cursors flushed to the sink). ``stop()`` ends the
    client at its next poll; the ingester then emits the open bin (provisional: a later
    bin's upsert replaces it)."""
    from netvigil.sources.bgp.rislive import LiveIngester, LiveStats, RisLiveClient, RisLiveParams
    from netvigil.sources.bgp.visibility import VisibilityConfig

    sink = QueueSink("ris-live", cursors)
    stats = LiveStats()
    vcfg = VisibilityConfig(ff_v4=cfg.full_feed_v4, ff_v6=cfg.full_feed_v6)
    ingester = LiveIngester(sink, config=vcfg, stats=stats)
    client = RisLiveClient(cfg.ris_live, RisLiveParams(host=cfg.host),
                           on_element=ingester.feed, stats=stats)
    return SourceThread("ris-live", sink, lambda: client.run(), request_stop=client.stop,
                        finish=ingester.close)
