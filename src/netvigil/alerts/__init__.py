"""Alerts: subscriptions, transitions, channels (webhook, e-mail, Atom) and a durable outbox
(issue 10, deliverable 3). A tier between the surfaces and events: it reads events and never
writes the store; its own state is the outbox file beside it.
"""

from netvigil.alerts.config import AlertConfig, Channel, Subscription, load_config
from netvigil.alerts.dispatch import DispatchResult, dispatch
from netvigil.alerts.transitions import Transition, transitions_of

__all__ = ["AlertConfig", "Channel", "DispatchResult", "Subscription", "Transition",
           "dispatch", "load_config", "transitions_of"]
