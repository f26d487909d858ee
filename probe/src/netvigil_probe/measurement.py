"""OONI-format measurements (data format 0.2.0 base keys) and their content hash.

Base keys as ooni/spec ``data-formats/df-000-base.md`` lists them (anchors §4.2). The probe's
country and AS are the ones cached from its last successful lookup (:mod:`.spool`,
``network`` table); "ZZ" / "AS0" before any lookup ever succeeded, as OONI writes them.

The **content hash** (SHA-256 of the canonical JSON: sorted keys, no spaces, UTF-8) is the
measurement's identity everywhere: the spool's primary key, the collector's deduplication
key and file name. It covers only what the probe measured, never the upload time, so a
retried upload has the same identity as the first attempt.
"""

from __future__ import annotations

import hashlib
import json
import platform
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from netvigil_probe import SOFTWARE_NAME, __version__

DATA_FORMAT_VERSION = "0.2.0"
TEST_NAME = "web_connectivity"
TEST_VERSION = "0.4.3"
OONI_TIME = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Network:
    """Where the probe is: cached from the last successful lookup."""

    probe_cc: str = "ZZ"
    probe_asn: str = "AS0"
    probe_ip: str = "127.0.0.1"  # OONI's redacted default: the address is not published
    network_name: str = ""


def ooni_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime(OONI_TIME)


def canonical(content: dict[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def content_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(content)).hexdigest()


def report_id(start: datetime, net: Network, test_name: str = TEST_NAME) -> str:
    """A report id in OONI's shape (``<time>_<test>_<cc>_<asn>_n1_<random>``), made locally
    because this agent uses one submit call per measurement (no report/open round trip)."""
    return (f"{start.astimezone(UTC):%Y%m%dT%H%M%SZ}_{test_name.replace('_', '')}_"
            f"{net.probe_cc}_"
            f"{net.probe_asn.removeprefix('AS')}_n1_{secrets.token_hex(8)}")


def build(url: str, test_keys: dict[str, Any], *, measured_at: datetime, test_start: datetime,
          runtime: float, net: Network, resolver_ip: str, rid: str,
          test_name: str = TEST_NAME, test_version: str = TEST_VERSION) -> dict[str, Any]:
    return {
        "annotations": {"engine_name": SOFTWARE_NAME, "engine_version": __version__,
                        "platform": platform.system().lower() or "unknown"},
        "data_format_version": DATA_FORMAT_VERSION,
        "input": url,
        "measurement_start_time": ooni_time(measured_at),
        "probe_asn": net.probe_asn,
        "probe_cc": net.probe_cc,
        "probe_ip": net.probe_ip,
        "probe_network_name": net.network_name,
        "report_id": rid,
        "resolver_asn": "AS0",
        "resolver_ip": resolver_ip,
        "resolver_network_name": "",
        "software_name": SOFTWARE_NAME,
        "software_version": __version__,
        "test_helpers": {},
        "test_keys": test_keys,
        "test_name": test_name,
        "test_runtime": round(runtime, 6),
        "test_start_time": ooni_time(test_start),
        "test_version": test_version,
    }
