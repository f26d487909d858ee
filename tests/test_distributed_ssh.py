"""``--scheduler ssh:SCHEDULER,WORKER,...``, the deployment recipe of docs/scaling.md section
5, against real OpenSSH servers: network namespaces on one kernel (tests/dask_hosts.py), an
``sshd`` on the scheduler host and on each of two worker hosts, and the real ``netvigil`` CLI
on a driver host whose ``HOME`` holds an ordinary user's SSH setup (a key, ``known_hosts``
and a ``~/.ssh/config`` that moves the port to 2222, so the test also shows that the
user's configuration is read).

Checked: ``bgp ingest`` and ``detect`` with ``--engine dask`` over SSH leave the points,
series, alerts, events and detector states one process leaves; each host's ``sshd`` ran a
command session for the driver's address (the scheduler and the workers ran there, not on
the driver); nothing but ``sshd``
is left running on the hosts afterwards; a host whose key is not in ``known_hosts`` is
refused before anything starts, with the exit status of a permission error and the host
named; malformed ``ssh:`` values are input errors."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dask_hosts import SSHD, Hosts, can_build, ns_pids
from netvigil.distributed.engine import SshHosts, parse_scheduler
from netvigil.model.errors import InputError
from netvigil.store.duck import Store
from prereq import require
from test_distributed_hosts import BGP, MRT, SERIES, _cwd, _invoke, _series_csv, _tables

PORT = 2222
DETECTION = ("alerts", "events", "detector_state")


def _keygen(path: Path) -> list[str]:
    """A new ed25519 key pair at ``path``; returns the public line's (type, key)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
                   check=True, capture_output=True)
    return path.with_suffix(".pub").read_text().split()[:2]


def _sshd_config(base: Path, host: str, address: str) -> Path:
    """Key-only root login on ``address:PORT``, keys and pid file under ``base``. ``StrictModes
    no``: the authorized keys live in pytest's temporary folder, not a home directory."""
    path = base / f"sshd-{host}.conf"
    path.write_text("\n".join([
        f"ListenAddress {address}:{PORT}", f"HostKey {base / 'host_key'}",
        f"AuthorizedKeysFile {base / 'authorized_keys'}", f"PidFile {base / f'{host}.pid'}",
        "StrictModes no", "UsePAM no", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
        "LogLevel VERBOSE", ""]))
    return path


def _home(base: Path, name: str, client: Path, known: list[str]) -> Path:
    """A user's ``HOME`` with the client key, ``known_hosts`` lines ``known`` and a config
    that sends every host of the switch to :data:`PORT` as root."""
    ssh = base / name / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    for suffix in ("", ".pub"):
        shutil.copy(client.with_name(client.name + suffix), ssh / f"id_ed25519{suffix}")
    (ssh / "known_hosts").write_text("".join(line + "\n" for line in known))
    (ssh / "config").write_text(f"Host 10.77.0.*\n    Port {PORT}\n    User root\n")
    return base / name


@pytest.fixture(scope="module")
def ssh_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hosts, Path, Path]]:
    """The hosts with ``sshd`` running on sched, w1 and w2; a ``HOME`` that knows all three
    host keys and one that does not know w2's."""
    ok, why = can_build()
    require(ok, why)
    require(Path(SSHD).is_file(), f"no {SSHD} (apt-get install openssh-server)")
    require(shutil.which("ssh-keygen") is not None, "no ssh-keygen (openssh-client)")
    require(importlib.util.find_spec("asyncssh") is not None,
            "no asyncssh (pip install 'netvigil[ssh]')")
    base = tmp_path_factory.mktemp("ssh")
    hosts = Hosts(base, workers=2)
    try:
        hosts.build(default_route=True)
        kind, key = _keygen(base / "host_key")
        _keygen(base / "client")
        shutil.copy(base / "client.pub", base / "authorized_keys")
        known = {}
        for host in ("sched", *hosts.worker_hosts):
            address = hosts.address(host)
            hosts.start_sshd(host, _sshd_config(base, host, address))
            known[host] = f"[{address}]:{PORT} {kind} {key}"
        home = _home(base, "home", base / "client", list(known.values()))
        stranger = _home(base, "home-w2-unknown", base / "client",
                         [v for h, v in known.items() if h != "w2"])
        yield hosts, home, stranger
    finally:
        hosts.close()


def _ssh_target(hosts: Hosts) -> str:
    return "ssh:" + ",".join(hosts.address(h) for h in ("sched", *hosts.worker_hosts))


def _left_running(hosts: Hosts, host: str) -> list[str]:
    """Command names of the processes in the host's namespace other than ``sshd``."""
    names = []
    for pid in ns_pids(hosts.ns(host)):
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:  # ended since
            continue
    return [n for n in names if n != "sshd"]


def test_ingest_and_detect_over_ssh_equal_one_process(ssh_hosts: tuple[Hosts, Path, Path],
                                                      tmp_path: Path) -> None:
    hosts, home, _ = ssh_hosts
    (tmp_path / "mrt").mkdir()
    for name in BGP[2:4]:  # the updates file and the RIB's first 4,000 entries
        (tmp_path / name).symlink_to(MRT / Path(name).name)
    _series_csv(tmp_path / "series.csv")
    _invoke(["series", "import", str(tmp_path / "series.csv"), "--store",
             str(tmp_path / "one.duckdb")])
    shutil.copy(tmp_path / "one.duckdb", tmp_path / "ssh.duckdb")
    with _cwd(tmp_path):
        _invoke([*BGP, "--store", "one.duckdb"])
        _invoke(["detect", "--store", "one.duckdb"])

    dask = ["--store", "ssh.duckdb", "--engine", "dask", "--scheduler", _ssh_target(hosts)]
    out = {}
    for name, argv in (("bgp", BGP), ("detect", ["detect"])):  # a cluster per command
        proc = hosts.netvigil([*argv, *dask], tmp_path, env={"HOME": str(home)})
        assert proc.returncode == 0, f"{name}: {proc.stderr[-3000:]}\n{hosts.logs()}"
        assert "jupyter-server-proxy" not in proc.stderr, proc.stderr  # Dask's INFO relay
        out[name] = proc.stdout
    assert "epochs 2" in out["bgp"], out["bgp"]
    assert "dask: 2 shard(s)" in out["detect"], out["detect"]  # one per worker host
    names = ("points", "series", *DETECTION)
    one = _tables(tmp_path / "one.duckdb", names)
    assert one["alerts"] and one["events"], "the input must give detection something to find"
    assert len(one["points"]) > len(SERIES) * 8 * 144, "BGP adds points to the CSV's"
    assert _tables(tmp_path / "ssh.duckdb", names) == one

    driver = hosts.address("drv")
    for host in ("sched", *hosts.worker_hosts):  # commands ran there, sent by the driver
        log = hosts.log(host).read_text(errors="replace")
        assert f"Starting session: command for root from {driver}" in log, (host, log[-2000:])
    deadline = time.monotonic() + 10
    while any(_left_running(hosts, h) for h in ("sched", *hosts.worker_hosts)):
        assert time.monotonic() < deadline, {h: _left_running(hosts, h)
                                             for h in ("sched", *hosts.worker_hosts)}
        time.sleep(0.1)


def test_a_host_with_an_unknown_key_is_refused_by_name(ssh_hosts: tuple[Hosts, Path, Path],
                                                        tmp_path: Path) -> None:
    hosts, _, stranger = ssh_hosts
    _series_csv(tmp_path / "series.csv", days=2)
    _invoke(["series", "import", str(tmp_path / "series.csv"), "--store",
             str(tmp_path / "s.duckdb")])
    proc = hosts.netvigil(["detect", "--store", "s.duckdb", "--engine", "dask",
                           "--scheduler", _ssh_target(hosts)], tmp_path,
                          env={"HOME": str(stranger)})
    assert proc.returncode == 6, (proc.returncode, proc.stderr)  # permission (cli/common.py)
    assert f"SSH to {hosts.address('w2')} refused" in proc.stderr, proc.stderr
    assert "not trusted" in proc.stderr, proc.stderr  # asyncssh: "Host key is not trusted"
    assert not any(_left_running(hosts, h) for h in ("sched", *hosts.worker_hosts))
    with Store(tmp_path / "s.duckdb", read_only=True) as store:  # nothing was detected
        assert store.connection.execute("SELECT count(*) FROM detector_state").fetchall() \
            == [(0,)]


@pytest.mark.parametrize(("text", "said"), [
    ("ssh:", "needs a scheduler host and at least one worker host"),
    ("ssh:sched", "needs a scheduler host and at least one worker host"),
    ("ssh:sched,,w1", "needs a scheduler host and at least one worker host"),
    ("sched", "give local:N, ssh:SCHEDULER,WORKER[,...] or a scheduler address"),
])
def test_a_malformed_ssh_scheduler_is_an_input_error(text: str, said: str) -> None:
    with pytest.raises(InputError, match=re.escape(said)):
        parse_scheduler(text)


def test_ssh_hosts_keep_their_order_and_repeats() -> None:
    assert parse_scheduler(" ssh:s.lan, a.lan ,a.lan,b.lan".strip()) == SshHosts(
        "s.lan", ("a.lan", "a.lan", "b.lan"))
