"""``netvigil-probe``: measure, keep, upload (docs/probe.md).

Commands::

    netvigil-probe run      --spool DIR --collector URL [--rounds N] [--interval S] ...
    netvigil-probe upload   --spool DIR --collector URL [--wait S]
    netvigil-probe forward-rounds FILE... --spool DIR --collector URL --round-seconds N
    netvigil-probe status   --spool DIR

The token comes from ``--token-file`` or ``NETVIGIL_PROBE_TOKEN``, never from the command
line (it would show in ``ps``), and is never printed. Errors are one line, exit status 1
(bad input) or 2 (usage).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import time
import urllib.request
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from netvigil_probe import measurement, throttling
from netvigil_probe.measure import MeasureConfig, finish, measure_target
from netvigil_probe.measurement import Network
from netvigil_probe.spool import Spool
from netvigil_probe.targets import TargetError, load_targets
from netvigil_probe.upload import Backoff, Uploader

log = logging.getLogger("netvigil_probe")
TOKEN_ENV = "NETVIGIL_PROBE_TOKEN"


class UsageError(Exception):
    pass


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            tok = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read the token file: {exc.strerror} "
                             f"({args.token_file})") from None
    else:
        tok = os.environ.get(TOKEN_ENV, "").strip()
    if not tok:
        raise UsageError(f"no upload token: give --token-file or set {TOKEN_ENV}")
    return tok


def lookup_network(url: str, timeout: float, token: str | None = None) -> Network:
    """Ask a geolocation endpoint (the collector's ``/api/v1/collector/whoami`` or any that
    answers ``{"probe_cc", "probe_asn"[, "probe_ip", "probe_network_name"]}``). ``token`` is
    sent only when given (the caller gives it for the collector's own endpoint only)."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}
                                 if token else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        d = json.loads(resp.read(65536))
    cc, asn = str(d["probe_cc"]).upper(), str(d["probe_asn"]).upper()
    if len(cc) != 2 or not cc.isalpha() or not asn.startswith("AS") or \
            not asn[2:].isdigit():
        raise ValueError(f"implausible location {cc!r} {asn!r}")
    if cc == "ZZ":  # the service does not know either: not a successful lookup
        raise ValueError("the location service does not know this address")
    return Network(cc, asn, str(d.get("probe_ip") or "127.0.0.1"),
                   str(d.get("probe_network_name") or ""))


def current_network(spool: Spool, geo_url: str | None, timeout: float,
                    token: str | None = None) -> Network:
    """A fresh lookup if it works (and cache it), else the cached one from the last success."""
    if geo_url:
        try:
            net = lookup_network(geo_url, timeout, token)
        except (OSError, ValueError, KeyError) as exc:
            log.info("location lookup failed (%s); using the cached one", exc)
        else:
            spool.save_network(net, time.time())
            return net
    return spool.network()[0]


def measure_round(spool: Spool, args: argparse.Namespace, cfg: MeasureConfig,
                  token: str) -> int:
    """Measure every target once; each measurement is in the spool before the next starts."""
    targets = load_targets(Path(args.targets) if args.targets else None)
    own = args.geo_url and args.geo_url.startswith(args.collector.rstrip("/") + "/")
    net = current_network(spool, args.geo_url, cfg.timeout, token if own else None)
    test_start = datetime.now(UTC)
    rid = measurement.report_id(test_start, net)
    controls = [t for t in targets if t.control]
    outcomes = []
    for t in controls + [t for t in targets if not t.control]:
        started = datetime.now(UTC)
        outcomes.append((started, measure_target(t, cfg)))
    up = not controls or any(o.all_ok for _s, o in outcomes[:len(controls)])
    n = 0
    for started, o in outcomes:
        content = measurement.build(o.target.url, finish(o, up), measured_at=started,
                                    test_start=test_start, runtime=o.runtime, net=net,
                                    resolver_ip=cfg.resolver, rid=rid)
        uid = spool.put("measurement", content)
        n += 1
        log.info("measured %s: %s (%s)", o.target.url,
                 content["test_keys"]["x_netvigil"]["blocked"] or "ok", uid[:16])
    return n + _throttling_round(spool, targets, cfg, args, net, test_start)


def _throttling_round(spool: Spool, targets: list[Any], cfg: MeasureConfig,
                      args: argparse.Namespace, net: Network, test_start: datetime) -> int:
    """One ``sni_throttling`` measurement per target that asks for it (:mod:`.throttling`),
    each spooled before the next starts. Its own report id: one report per test name."""
    todo = [t for t in targets if t.throttling]
    rid = measurement.report_id(test_start, net, throttling.TEST_NAME)
    tc = throttling.ThrottleConfig(max_download_s=args.max_download_s)
    for t in todo:
        started = datetime.now(UTC)
        keys, runtime = throttling.measure_throttling(t, cfg, tc)
        content = measurement.build(t.url, keys, measured_at=started, test_start=test_start,
                                    runtime=runtime, net=net, resolver_ip=cfg.resolver,
                                    rid=rid, test_name=throttling.TEST_NAME,
                                    test_version=throttling.TEST_VERSION)
        uid = spool.put("measurement", content)
        log.info("throttling %s: %s (%s)", t.url, keys["x_throttling"], uid[:16])
    return len(todo)


def _drain_until(up: Uploader, deadline: float) -> None:
    while True:
        up.drain()
        if up.spool.counts()["pending"] == 0 or time.time() >= deadline:
            return
        nxt = max(up.paused_until, up.spool.next_due() or 0.0)
        time.sleep(max(0.05, min(1.0, nxt - time.time(), deadline - time.time())))


def cmd_run(args: argparse.Namespace) -> int:
    token = _token(args)
    host, _, port = args.resolver.partition(":")
    cfg = MeasureConfig(resolver=host, resolver_port=int(port or 53), timeout=args.timeout,
                        cafile=args.cafile)
    with Spool(Path(args.spool)) as spool:
        up = Uploader(spool, args.collector, token, timeout=args.timeout,
                      backoff=Backoff(args.backoff, args.backoff_cap))
        done = 0
        while args.rounds == 0 or done < args.rounds:
            round_start = time.time()
            n = measure_round(spool, args, cfg, token)
            done += 1
            print(f"round {done}: {n} measurements recorded", flush=True)
            up.drain()
            if args.rounds and done >= args.rounds:
                break
            _drain_until(up, round_start + args.interval)
            time.sleep(max(0.0, round_start + args.interval - time.time()))
        _drain_until(up, time.time() + args.upload_wait)
        print(json.dumps(spool.counts()), flush=True)
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    with Spool(Path(args.spool)) as spool:
        up = Uploader(spool, args.collector, _token(args), timeout=args.timeout,
                      backoff=Backoff(args.backoff, args.backoff_cap))
        _drain_until(up, time.time() + args.wait)
        counts = spool.counts()
        print(json.dumps(counts), flush=True)
    return 0 if counts["pending"] == 0 else 3


def round_contents(lines: Iterable[dict[str, Any]], round_seconds: int
                   ) -> list[dict[str, Any]]:
    """Prober JSONL lines grouped per (vantage, round): one upload each."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for d in lines:
        groups.setdefault((str(d.get("vantage", "")), float(d["round_start"])), []).append(d)
    return [{"vantage": v, "round_start": t, "round_seconds": round_seconds, "lines": ls}
            for (v, t), ls in sorted(groups.items())]


def cmd_forward_rounds(args: argparse.Namespace) -> int:
    lines: list[dict[str, Any]] = []
    for f in args.files:
        try:
            with open(f, encoding="utf-8") as fh:
                for no, raw in enumerate(fh, 1):
                    if raw.strip():
                        try:
                            lines.append(json.loads(raw))
                        except ValueError as exc:
                            raise UsageError(f"bad round line: {exc} ({f}:{no})") from None
        except OSError as exc:
            raise UsageError(f"cannot read: {exc.strerror} ({f})") from None
    token = _token(args)
    with Spool(Path(args.spool)) as spool:
        try:
            contents = round_contents(lines, args.round_seconds)
        except (KeyError, ValueError, TypeError) as exc:
            raise UsageError(f"bad round line: missing or bad {exc}") from None
        for c in contents:
            spool.put("round", c)
        up = Uploader(spool, args.collector, token, timeout=args.timeout,
                      backoff=Backoff(args.backoff, args.backoff_cap))
        _drain_until(up, time.time() + args.wait)
        print(json.dumps(spool.counts()), flush=True)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with Spool(Path(args.spool)) as spool:
        net, at = spool.network()
        print(json.dumps({**spool.counts(), "probe_cc": net.probe_cc,
                          "probe_asn": net.probe_asn, "located_at": at}))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="netvigil-probe", description=__doc__.split("\n")[0])
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser, collector: bool = True) -> None:
        sp.add_argument("--spool", required=True, help="Directory of the durable outbox.")
        if collector:
            sp.add_argument("--collector", required=True, help="Collector base URL.")
            sp.add_argument("--token-file", help=f"File holding the upload token "
                                                 f"(else ${TOKEN_ENV}).")
            sp.add_argument("--timeout", type=float, default=5.0)
            sp.add_argument("--backoff", type=float, default=2.0,
                            help="First retry delay (s); doubles per failure.")
            sp.add_argument("--backoff-cap", type=float, default=600.0)

    r = sub.add_parser("run", help="Measure the targets (and upload).")
    common(r)
    r.add_argument("--targets", help="JSON target list (default: the packaged one).")
    r.add_argument("--resolver", default="1.1.1.1", help="Chosen resolver IP[:port].")
    r.add_argument("--cafile", help="CA bundle for TLS verification (default: system).")
    r.add_argument("--geo-url", help="Location endpoint (e.g. COLLECTOR/api/v1/collector/"
                                     "whoami); its last answer is cached.")
    r.add_argument("--max-download-s", type=float, default=10.0,
                   help="Longest body read of a throttling leg (a speed sample).")
    r.add_argument("--rounds", type=int, default=0, help="Rounds to run (0 = forever).")
    r.add_argument("--interval", type=float, default=3600.0, help="Seconds between rounds.")
    r.add_argument("--upload-wait", type=float, default=0.0,
                   help="After the last round, keep trying uploads this long.")
    r.set_defaults(func=cmd_run)
    u = sub.add_parser("upload", help="Upload what the spool holds.")
    common(u)
    u.add_argument("--wait", type=float, default=0.0, help="Keep retrying this long.")
    u.set_defaults(func=cmd_upload)
    f = sub.add_parser("forward-rounds", help="Spool and upload prober round JSONL files.")
    common(f)
    f.add_argument("files", nargs="+")
    f.add_argument("--round-seconds", type=int, required=True)
    f.add_argument("--wait", type=float, default=0.0)
    f.set_defaults(func=cmd_forward_rounds)
    s = sub.add_parser("status", help="Counts of the spool and the cached location.")
    common(s, collector=False)
    s.set_defaults(func=cmd_status)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (sqlite3.Error, OSError) as exc:  # the spool: disk full, read-only, not a database
        print(f"error: spool: {exc} ({args.spool})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
