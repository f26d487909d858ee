"""Build the full-size 2010 RIB (issue 7) as a real gzip TABLE_DUMP_V2 MRT file.

Input: the golden ``bgpdump -m`` text of the RIS bview of 2010-07-01 07:59 (rrc06, DIX-IE),
``tests/fixtures/mrt/text/bview.20100701.0759.gz.bgp.gz`` (RIPE-NCC/bgpdump
``test_expect/``): 641,957 routes,
323,487 IPv4 prefixes, two full tables (AS4777 and AS2497) and a few partial peers. The
binary bview is not distributed, so it is rebuilt with :mod:`netvigil.testing.mrt_encode`:

* every prefix keeps its real AS paths (AS_SETs kept as AS_SET segments), ORIGIN, NEXT_HOP
  and communities, in the text's record order;
* **30 peers**: peer ``i`` carries the table of the real full-table peer ``i % 2`` (AS4777 for
  even ``i``, AS2497 for odd) with its own peer address ``198.51.100.(i+1)``, and drops a
  deterministic 1.2 % of those routes (``crc32(prefix|i) % 1000 < 12``), so tables differ
  slightly as real peers' do. That is 9.51 M routes, the size the issue measured;
* record timestamp 1277971200 (the text's second), file name ``bview.20100701.0759.gz`` under
  a ``rrc06`` directory, so ``netvigil bgp ingest`` names the collector as for the real file.

Deterministic: the same bytes on every run (gzip mtime 0). The output goes to a cache
directory (default ``$XDG_CACHE_HOME/netvigil-bench`` or ``~/.cache/netvigil-bench``), never
into the repository; an existing file with the expected size stamp is reused.

    .venv/bin/python benchmarks/make_full_rib.py [--out DIR] [--peers 30]
"""

from __future__ import annotations

import argparse
import gzip
import ipaddress
import os
import struct
import sys
import time
import zlib
from pathlib import Path

from netvigil.testing.mrt_encode import peer_index_table, record

SOURCE = Path(__file__).resolve().parents[1] / "tests/fixtures/mrt/text/" \
    "bview.20100701.0759.gz.bgp.gz"
TS = 1277971200
REAL_PEERS = ("202.249.2.20", "202.249.2.169")  # AS4777, AS2497: the two full tables
DROP_PER_MILLE = 12
_ORIGIN = {"IGP": 0, "EGP": 1, "INCOMPLETE": 2}
_HDR = struct.Struct("!IHHI")
_ENT = struct.Struct("!HIH")


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "netvigil-bench"


def _attr(code: int, value: bytes, flags: int = 0x40) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def _as_path(text: str) -> bytes:
    """bgpdump's AS path text (``1 2 {3,4}``) → AS_PATH value: AS_SEQUENCE / AS_SET segments."""
    segs: list[bytes] = []
    seq: list[int] = []
    for tok in text.replace("{", " {").replace("}", "} ").split():
        if tok.startswith("{"):
            if seq:
                segs.append(struct.pack("!BB", 2, len(seq)) + struct.pack(f"!{len(seq)}I", *seq))
                seq = []
            members = [int(x) for x in tok.strip("{}").split(",") if x]
            segs.append(struct.pack("!BB", 1, len(members))
                        + struct.pack(f"!{len(members)}I", *members))
        else:
            seq.append(int(tok))
    if seq:
        segs.append(struct.pack("!BB", 2, len(seq)) + struct.pack(f"!{len(seq)}I", *seq))
    return b"".join(segs)


def attributes(fields: list[str]) -> bytes:
    """Path attributes of one ``bgpdump -m`` RIB line (ORIGIN, AS_PATH, NEXT_HOP, COMMUNITIES)."""
    out = _attr(1, bytes((_ORIGIN.get(fields[7], 2),))) + _attr(2, _as_path(fields[6]))
    out += _attr(3, ipaddress.IPv4Address(fields[8]).packed)
    comms = fields[11].split() if len(fields) > 11 else []
    if comms:
        val = b"".join(struct.pack("!HH", *map(int, c.split(":"))) for c in comms if ":" in c)
        if val:
            out += _attr(8, val, 0xC0)
    return out


def read_table(source: Path) -> list[tuple[str, dict[str, bytes]]]:
    """(prefix, {real peer ip: attributes}) in record order."""
    table: list[tuple[str, dict[str, bytes]]] = []
    last = ""
    with gzip.open(source, "rt") as f:
        for line in f:
            fields = line.rstrip("\n").split("|")
            peer, prefix = fields[3], fields[5]
            if peer not in REAL_PEERS:
                continue
            if prefix != last:
                table.append((prefix, {}))
                last = prefix
            table[-1][1][peer] = attributes(fields)
    return table


def build(out: Path, n_peers: int = 30) -> tuple[Path, int]:
    table = read_table(SOURCE)
    peers = [(f"198.51.100.{i + 1}", (4777, 2497)[i % 2]) for i in range(n_peers)]
    routes = 0
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6,
                                               mtime=0) as f:
        f.write(record(TS, 13, 1, peer_index_table("193.0.4.28", peers)))
        chunk: list[bytes] = []
        for seq, (prefix, by_peer) in enumerate(table):
            net = ipaddress.IPv4Network(prefix)
            nbytes = (net.prefixlen + 7) // 8
            parts = [b""]
            n = 0
            for i in range(n_peers):
                attrs = by_peer.get(REAL_PEERS[i % 2])
                if attrs is None or zlib.crc32(f"{prefix}|{i}".encode()) % 1000 < DROP_PER_MILLE:
                    continue
                parts.append(_ENT.pack(i, TS - 86400, len(attrs)))
                parts.append(attrs)
                n += 1
            if n == 0:
                continue
            parts[0] = (struct.pack("!IB", seq, net.prefixlen)
                        + net.network_address.packed[:nbytes] + struct.pack("!H", n))
            body = b"".join(parts)
            chunk.append(_HDR.pack(TS, 13, 2, len(body)))
            chunk.append(body)
            routes += n
            if len(chunk) >= 20_000:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))
    tmp.replace(out)
    return out, routes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=default_dir())
    ap.add_argument("--peers", type=int, default=30)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    target = a.out / f"full2010-{a.peers}peers" / "rrc06" / "bview.20100701.0759.gz"
    stamp = target.with_name(target.name + ".routes")
    if target.exists() and stamp.exists() and not a.force:
        print(f"{target} (cached, {stamp.read_text().strip()} routes)")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path, routes = build(target, a.peers)
    stamp.write_text(f"{routes}\n")
    print(f"{path}: {routes} routes, {a.peers} peers, {path.stat().st_size} bytes, "
          f"built in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
