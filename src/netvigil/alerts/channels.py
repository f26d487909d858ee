"""Channels: how a payload leaves. Each send either returns (delivered) or raises
:class:`DeliveryError` with a message safe to log (no secret, no URL query string).

* Webhook: ``POST`` of the JSON payload; ``X-NetVigil-Signature: sha256=<hex>`` is the
  HMAC-SHA256 of the exact body with the channel's key (the scheme GitHub's webhooks use, so
  receivers have libraries for it); ``X-NetVigil-Delivery`` is the transition id for
  de-duplication. Any 2xx is delivered; anything else is retried by the outbox.
* E-mail over SMTP (stdlib ``smtplib``), optional STARTTLS and login; the ``Message-ID`` is
  derived from the transition id, so a repeat is recognisably the same message.
Stdlib clients rather than httpx/aiosmtplib: one request per delivery needs no pool, and the
alerting path then depends on nothing the core does not already install.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from netvigil.alerts.config import Channel
from netvigil.model.errors import NetVigilError

SIGNATURE_HEADER = "X-NetVigil-Signature"
DELIVERY_HEADER = "X-NetVigil-Delivery"


class DeliveryError(NetVigilError):
    pass


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def signature(key: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def safe_url(url: str) -> str:
    """The URL without credentials, query or fragment: what logs may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def send_webhook(channel: Channel, payload: dict[str, Any]) -> None:
    url = channel.settings["url"]
    body = body_of(payload)
    headers = {"Content-Type": "application/json", DELIVERY_HEADER: payload["delivery_id"],
               "User-Agent": "netvigil-alerts"}
    key = channel.secret("secret_env")
    if key:
        headers[SIGNATURE_HEADER] = signature(key, body)
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=float(channel.settings.get("timeout", 10))):
            return
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook {safe_url(url)} answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"webhook {safe_url(url)} unreachable "
                            f"({type(reason).__name__})") from None


def message_id(delivery_id: str, channel: str) -> str:
    """RFC 5322 msg-id from the delivery id (':' is not allowed in its left part)."""
    return f"<{delivery_id.replace(':', '.')}.{channel}@netvigil>"


def send_email(channel: Channel, payload: dict[str, Any]) -> None:
    s = channel.settings
    msg = EmailMessage()
    msg["Subject"] = f"[NetVigil] {payload['headline']}"
    msg["From"] = s["sender"]
    msg["To"] = ", ".join(s["to"])
    msg["Message-ID"] = message_id(payload["delivery_id"], channel.name)
    ev = payload["event"]
    msg.set_content(
        f"{payload['headline']}\n\nTransition: {payload['transition']} at {payload['at']}\n"
        f"Entity: {ev['entity_name']} ({ev['entity_type']}/{ev['entity_code']})\n"
        f"Event: {ev['id']}, {ev['kind']}, {ev['scope']}, start {ev['start']}, "
        f"end {ev['end'] or 'ongoing'}\n\n-- NetVigil\n")
    msg.add_attachment(json.dumps(payload, indent=2).encode(), maintype="application",
                       subtype="json", filename="event.json")
    where = f"smtp {s['host']}:{s.get('port', 25)}"
    try:
        with smtplib.SMTP(s["host"], int(s.get("port", 25)),
                          timeout=float(s.get("timeout", 10))) as smtp:
            if s.get("starttls"):
                smtp.starttls()
            if s.get("username"):
                smtp.login(s["username"], channel.secret("password_env") or "")
            smtp.send_message(msg)
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"{where} refused the message ({exc.smtp_code})") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{where} failed ({type(exc).__name__})") from None


SENDERS = {"webhook": send_webhook, "email": send_email}
