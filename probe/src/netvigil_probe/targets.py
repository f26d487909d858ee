"""The target list: what the agent measures, and which targets are controls.

A target is a URL and the platform it stands for. Control targets are sites that are very
unlikely to be blocked; when every control fails the network itself is down, and the other
targets' failures are recorded as failures, never as blocking (OONI's control logic, done
on the probe because the agent must judge while cut off from any test helper).

The default list ships in ``data/targets.json``; ``--targets FILE`` replaces it (same shape:
a JSON list of ``{"url", "platform", "control"?, "port"?, "throttling"?}``). ``throttling``
(https only) adds an ``sni_throttling`` measurement of the target (:mod:`.throttling`):
``true``, or ``{"path"?: the download path (default the URL's), "control_sni"?: the baseline
server name (default a scrambled copy of the host)}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit


class TargetError(ValueError):
    """A target file that cannot be used (its path and the entry are in the message)."""


@dataclass(frozen=True)
class Target:
    url: str
    platform: str
    control: bool = False
    port: int | None = None  # override of the URL's port (tests, odd deployments)
    throttling: bool = False  # also measure SNI throttling against a same-server baseline
    download_path: str | None = None  # what the throttling test downloads (default: path)
    control_sni: str | None = None  # its baseline SNI (default: scrambled host)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def https(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    @property
    def path(self) -> str:
        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    @property
    def tcp_port(self) -> int:
        if self.port is not None:
            return self.port
        return urlsplit(self.url).port or (443 if self.https else 80)


def parse_targets(items: object, where: str) -> list[Target]:
    """Validate a decoded target list; :class:`TargetError` names the entry."""
    if not isinstance(items, list) or not items:
        raise TargetError(f"{where}: expected a non-empty JSON list of targets")
    out: list[Target] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise TargetError(f"{where}: entry {i}: expected an object")
        url, platform = item.get("url"), item.get("platform")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetError(f"{where}: entry {i}: 'url' must be an http(s) URL")
        if not isinstance(platform, str) or not platform:
            raise TargetError(f"{where}: entry {i}: 'platform' must be a non-empty string")
        port = item.get("port")
        if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
            raise TargetError(f"{where}: entry {i}: 'port' must be 1..65535")
        out.append(Target(str(url), platform, bool(item.get("control", False)), port,
                          *_throttling(item.get("throttling"), parts.scheme, f"{where}: "
                                       f"entry {i}")))
    return out


def _throttling(spec: object, scheme: str, where: str) -> tuple[bool, str | None, str | None]:
    """(measure?, download path, control SNI) of a target's ``throttling`` key."""
    if spec is None or spec is False:
        return False, None, None
    if scheme != "https":
        raise TargetError(f"{where}: 'throttling' needs an https URL (it compares SNIs)")
    if spec is True:
        return True, None, None
    if not isinstance(spec, dict) or set(spec) - {"path", "control_sni"}:
        raise TargetError(f"{where}: 'throttling' must be true or "
                          '{"path"?, "control_sni"?}')
    path, sni = spec.get("path"), spec.get("control_sni")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise TargetError(f"{where}: 'throttling.path' must start with /")
    if sni is not None and (not isinstance(sni, str) or not sni or "/" in sni):
        raise TargetError(f"{where}: 'throttling.control_sni' must be a host name")
    return True, path, sni


def load_targets(path: Path | None = None) -> list[Target]:
    """The list in ``path``, or the packaged default."""
    if path is None:
        text = resources.files("netvigil_probe").joinpath("data/targets.json").read_text(
            encoding="utf-8")
        return parse_targets(json.loads(text), "default targets")
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TargetError(f"{path}: {exc}") from None
    return parse_targets(items, str(path))
