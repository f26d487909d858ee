"""One alerting pass: read events, turn new transitions into outbox rows, deliver what is due.

Called by ``netvigil alerts dispatch`` and by the observatory after each bin's detection. The
store is only read (``read_events``), inside the caller's short store session; sending happens
afterwards from the outbox, so a slow receiver never holds the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from netvigil.alerts.channels import SENDERS, DeliveryError
from netvigil.alerts.config import AlertConfig, Channel
from netvigil.alerts.messages import payload
from netvigil.alerts.outbox import Outbox
from netvigil.alerts.transitions import transitions_of
from netvigil.model.events import Event

log = logging.getLogger("netvigil.alerts")
Sender = Callable[[Channel, dict[str, Any]], None]


@dataclass(frozen=True)
class DispatchResult:
    enqueued: int
    delivered: int
    retried: int
    failed: int
    pending: int


def enqueue(config: AlertConfig, outbox: Outbox, events: list[Event], now: int) -> int:
    """Outbox rows for every matching (transition, channel) not enqueued before."""
    rows = []
    for t in transitions_of(events, since=config.since):
        by_channel: dict[str, list[str]] = {}
        for sub in config.subscriptions:
            if sub.matches(t.event):
                for ch in sub.channels:
                    by_channel.setdefault(ch, []).append(sub.id)
        rows += [(t.id, ch, subs, payload(t, subs)) for ch, subs in by_channel.items()]
    return outbox.enqueue(rows, now)


def deliver(config: AlertConfig, outbox: Outbox, now: int,
            senders: Mapping[str, Sender] = SENDERS) -> tuple[int, int, int]:
    delivered = retried = failed = 0
    for p in outbox.due(now):
        channel = config.channels.get(p.channel)
        if channel is None:  # removed from the config: keep it pending, say so
            log.warning("alert %s: channel %s is no longer configured", p.transition_id,
                        p.channel)
            continue
        try:
            senders[channel.type](channel, p.payload)
        except DeliveryError as exc:
            if outbox.retry(p, now, str(exc), max_attempts=channel.max_attempts):
                retried += 1
                log.warning("alert %s via %s: %s; will retry", p.transition_id, p.channel, exc)
            else:
                failed += 1
                log.error("alert %s via %s: %s; gave up", p.transition_id, p.channel, exc)
            continue
        outbox.delivered(p, now)
        delivered += 1
        log.info("alert %s via %s delivered", p.transition_id, p.channel)
    return delivered, retried, failed


def dispatch(config: AlertConfig, events: list[Event], *, now: int | None = None,
             senders: Mapping[str, Sender] = SENDERS) -> DispatchResult:
    now = int(time.time()) if now is None else now
    with Outbox(config.outbox) as outbox:
        new = enqueue(config, outbox, events, now)
        delivered, retried, failed = deliver(config, outbox, now, senders)
        pending = outbox.counts()["pending"]
    return DispatchResult(new, delivered, retried, failed, pending)
