"""The CLI's one error boundary (issue 12, item 2) and store faults (issue 12, defect 7).

Every case runs the real ``netvigil`` in a subprocess against a real DuckDB file, so what is
checked is what a user sees: one ``error: ...`` line on stderr, no traceback, the exit status
of the failure's class (table in ``netvigil/cli/common.py``), and a store left as it was.
Disk-full and read-only media use a tmpfs the test mounts (root only; skipped elsewhere, a
failure in CI, via tests/prereq.py).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from netvigil.cli import common
from netvigil.model import InputError, NetVigilError, StoreError
from prereq import require

GOOD = ("time,entity_type,entity_code,signal,value\n"
        "2022-01-05T00:00:00Z,country,KZ,bgp,10\n2022-01-05T00:05:00Z,country,KZ,bgp,11\n")
CLI = [sys.executable, "-c", "from netvigil.cli.main import main; main()"]


def netvigil(*args: str | Path,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *(str(a) for a in args)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, check=False)


def assert_one_line(proc: subprocess.CompletedProcess[str], status: int, *needles: str) -> None:
    """The boundary's contract: status of the class, exactly one ``error:`` line."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    f = tmp_path / "good.csv"
    f.write_text(GOOD)
    return f


@pytest.fixture
def good_store(tmp_path: Path, csv_file: Path) -> Path:
    store = tmp_path / "nv.duckdb"
    assert netvigil("series", "import", csv_file, "--store", store).returncode == 0
    return store


def _commands(csv_file: Path) -> list[tuple[str, ...]]:
    return [("series", "list"), ("store", "info"), ("events",), ("detect",),
            ("series", "import", str(csv_file))]


@pytest.mark.parametrize("cut", [100, 20_000])
def test_defect7_truncated_store_header_one_line_everywhere(tmp_path: Path, good_store: Path,
                                                           csv_file: Path, cut: int) -> None:
    bad = tmp_path / "cut.duckdb"
    bad.write_bytes(good_store.read_bytes()[:cut])
    before = bad.read_bytes()
    for cmd in _commands(csv_file):
        proc = netvigil(*cmd, "--store", bad)
        assert_one_line(proc, common.EXIT_STORE, "truncated", str(bad))
    assert bad.read_bytes() == before  # a failed open repairs nothing, breaks nothing


def test_defect7_truncated_store_body_one_line(tmp_path: Path, good_store: Path,
                                               csv_file: Path) -> None:
    """Cut inside the data blocks: the open succeeds and the first read of a lost block
    fails (``Could not read enough bytes``) — still one line, still the store class."""
    bad = tmp_path / "cut.duckdb"
    data = good_store.read_bytes()
    bad.write_bytes(data[: len(data) // 6])
    failed = set()
    for cmd in _commands(csv_file):
        proc = netvigil(*cmd, "--store", bad)
        if proc.returncode != 0:
            assert_one_line(proc, common.EXIT_STORE, str(bad))
            failed.add(cmd[:2])
    assert ("series", "list") in failed  # the lost block holds the series table


def test_defect7_foreign_store_file_one_line(tmp_path: Path, csv_file: Path) -> None:
    bad = tmp_path / "notes.duckdb"
    bad.write_text("these are my notes, not a database\n" * 100)
    for cmd in _commands(csv_file):
        assert_one_line(netvigil(*cmd, "--store", bad), common.EXIT_STORE,
                        "not a DuckDB database", str(bad))
    assert bad.read_text().startswith("these are my notes")


def test_debug_flag_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "notes.duckdb"
    bad.write_text("not a database\n")
    proc = netvigil("--debug", "series", "list", "--store", bad)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "StoreError" in proc.stderr


def test_input_error_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(GOOD + "2022-01-05T00:10:00Z,country,KZ,bgp,not-a-number\n")
    proc = netvigil("series", "import", f, "--store", tmp_path / "s.duckdb")
    assert_one_line(proc, common.EXIT_INPUT, f"{f}:4: ")


def test_missing_input_file_is_an_os_error_with_its_name(tmp_path: Path) -> None:
    gone = tmp_path / "gone.csv"
    proc = netvigil("series", "import", gone, "--store", tmp_path / "s.duckdb")
    assert proc.returncode in (common.EXIT_INPUT, common.EXIT_OS), proc.stderr
    assert_one_line(proc, proc.returncode, str(gone))


def test_exit_status_per_class_is_distinct() -> None:
    """One representative per row of the table; the statuses are pairwise different."""
    wal = duckdb.IOException('Could not write file "x.wal": No space left on device')
    cases = {
        "input": InputError("a.csv", 3, "bad value"),
        "project": NetVigilError("unknown entity"),
        "store": StoreError("store s is not a DuckDB database file"),
        "locked": StoreError('Could not set lock on file "s": Conflicting lock is held'),
        "disk": OSError(errno.ENOSPC, "No space left on device", "x"),
        "disk-duckdb": wal,
        "perm": OSError(errno.EACCES, "Permission denied", "x"),
        "rofs": OSError(errno.EROFS, "Read-only file system", "x"),
        "os": OSError(errno.EIO, "Input/output error", "x"),
        "db": duckdb.InternalException("boom"),
    }
    got = {k: common.classify(v) for k, v in cases.items()}
    assert got["input"] == got["project"] == common.EXIT_INPUT
    assert got["disk"] == got["disk-duckdb"] == common.EXIT_DISK_FULL
    assert got["perm"] == got["rofs"] == common.EXIT_PERMISSION
    distinct = {got[k] for k in ("input", "store", "locked", "disk", "perm", "os", "db")}
    assert len(distinct) == 7 and 2 not in distinct  # 2 stays click's usage error
    assert common.classify(KeyError("bug")) is None  # a bug keeps its traceback


def test_error_line_is_one_line_with_file() -> None:
    exc = duckdb.IOException("IO Error: first line\nsecond line")
    line = common.error_line(exc, common.EXIT_DATABASE, Path("/s.duckdb"))
    assert "\n" not in line and line.endswith("(/s.duckdb)") and line.startswith("error: ")


HOLD = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
""")


def _hold_lock(store: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(store), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_lock_held_past_wait_is_one_line(good_store: Path) -> None:
    holder = _hold_lock(good_store, 60)
    try:
        for cmd in (("series", "list"), ("store", "info"), ("events",)):
            proc = netvigil("--wait", "0.2", *cmd, "--store", good_store)
            assert_one_line(proc, common.EXIT_LOCKED, "locked", "--wait")
    finally:
        holder.kill()
        holder.communicate()


def test_reader_waits_for_a_writer_to_finish(good_store: Path) -> None:
    """Bounded wait, not an immediate failure: the holder lets go after 1 s, the reader,
    allowed 60 s, gets the store (``NETVIGIL_LOCK_WAIT`` form of ``--wait``)."""
    holder = _hold_lock(good_store, 1.0)
    try:
        proc = netvigil("series", "list", "--format", "json", "--store", good_store,
                        env={common.LOCK_WAIT_ENV: "60"})
        assert proc.returncode == 0, proc.stderr
        assert [r["entity_code"] for r in json.loads(proc.stdout)] == ["KZ"]
    finally:
        holder.communicate()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs the test owns (2 MiB: a fresh store is ~1.8 MB)."""
    require(os.geteuid() == 0 and shutil.which("mount") is not None,
            "mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                          capture_output=True, text=True, check=False)
    require(done.returncode == 0, f"cannot mount tmpfs: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _snapshot(store: Path) -> tuple[str, str]:
    listed = netvigil("series", "list", "--format", "json", "--store", store)
    info = netvigil("store", "info", "--store", store)
    assert listed.returncode == 0 and info.returncode == 0, (listed.stderr, info.stderr)
    return listed.stdout, info.stdout


def _big_csv(path: Path, n_series: int = 200, n_points: int = 500) -> Path:
    with path.open("w") as f:
        f.write("entity_type,entity_code,signal,time,value\n")
        for c in range(n_series):
            for i in range(n_points):
                f.write(f"asn,{1000 + c},bgp,{1_641_000_000 + 300 * i},{i}\n")
    return path


def test_defect7_disk_full_during_import_one_line_store_unchanged(
        tmpfs: Path, tmp_path: Path, csv_file: Path) -> None:
    store = tmpfs / "nv.duckdb"
    assert netvigil("series", "import", csv_file, "--store", store).returncode == 0
    before = _snapshot(store)
    big = _big_csv(tmp_path / "big.csv")
    proc = netvigil("series", "import", big, "--store", store)
    assert_one_line(proc, common.EXIT_DISK_FULL, "No space left on device")
    assert _snapshot(store) == before
    assert '"points": 2' in before[0]


def test_defect7_read_only_media_reading_commands_work(tmpfs: Path, csv_file: Path) -> None:
    store = tmpfs / "nv.duckdb"
    assert netvigil("series", "import", csv_file, "--store", store).returncode == 0
    remount = subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], capture_output=True,
                             text=True, check=False)
    require(remount.returncode == 0, f"cannot remount read-only: {remount.stderr.strip()}")
    listed = netvigil("series", "list", "--format", "json", "--store", store)
    assert listed.returncode == 0, listed.stderr
    assert [r["entity_code"] for r in json.loads(listed.stdout)] == ["KZ"]
    info = netvigil("store", "info", "--store", store)
    assert info.returncode == 0 and "schema version" in info.stdout, info.stderr
    events = netvigil("events", "--store", store)
    assert events.returncode == 0 and "no events" in events.stdout, events.stderr
    for cmd in (("detect",), ("series", "import", str(csv_file))):
        assert_one_line(netvigil(*cmd, "--store", store), common.EXIT_PERMISSION,
                        "Read-only file system")


def test_read_only_file_and_directory_as_non_root(request: pytest.FixtureRequest,
                                                  good_store: Path) -> None:
    """chmod read-only store and directory, opened by an unprivileged user: reading works,
    writing is one permission line."""
    require(os.geteuid() == 0, "switching to an unprivileged user needs root")
    # pytest's own tmp root is 0700 (root only): the unprivileged user needs a walkable path
    top = Path(tempfile.mkdtemp(prefix="nv-ro-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
    top.chmod(0o755)
    ro = top / "ro"
    ro.mkdir()
    request.addfinalizer(lambda: ro.chmod(0o755))
    store = ro / "nv.duckdb"
    shutil.copy(good_store, store)
    store.chmod(0o444)
    ro.chmod(0o555)
    # import while still root (the interpreter may live under /root), every command's
    # module included (the group imports them on demand), then drop privileges
    code = ("import os, sys, click; from netvigil.cli.main import main, cli, COMMANDS; "
            "import netvigil.store; [cli.get_command(click.Context(cli), n) for n in COMMANDS]; "
            "os.setgid(65534); os.setuid(65534); sys.argv[0] = 'netvigil'; main()")
    env = {**os.environ, "HOME": str(ro)}

    def as_nobody(*args: str, store_arg: bool = True) -> subprocess.CompletedProcess[str]:
        tail = ["--store", str(store)] if store_arg else []
        return subprocess.run([sys.executable, "-c", code, *args, *tail],
                              capture_output=True, text=True, env=env, timeout=120,
                              check=False)

    probe = as_nobody("--help", store_arg=False)
    require(probe.returncode == 0, f"nobody cannot run the venv: {probe.stderr[-200:]}")
    listed = as_nobody("series", "list")
    assert listed.returncode == 0 and "KZ" in listed.stdout, listed.stderr
    info = as_nobody("store", "info")
    assert info.returncode == 0 and "schema version" in info.stdout, info.stderr
    assert_one_line(as_nobody("detect"), common.EXIT_PERMISSION)
