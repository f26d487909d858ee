"""``netvigil run --config FILE``: the observatory as one long-running process.

The loop itself is :mod:`netvigil.observatory.run`; this module reads the options, builds
the log and hands the loop the lock-aware store opener every command uses.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import click

from netvigil.cli.common import STORE_ENV, default_store_path, handle_errors, open_store


@click.command("run")
@click.option("--config", "config_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Observatory TOML config (docs/observatory.md).")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar=STORE_ENV, default=None,
              help="DuckDB store file; overrides the config's `store` (also NETVIGIL_STORE).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="S", help="Stop cleanly after S seconds (default: until SIGTERM/SIGINT).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Append JSON-line logs to this file instead of stderr.")
@handle_errors
def run(config_path: Path, store_path: Path | None, duration: float | None,
        log_path: Path | None) -> None:
    """Run the observatory: sources, watched folders and detection every bin."""
    from netvigil.observatory.config import load_config
    from netvigil.observatory.log import JsonLog
    from netvigil.observatory.run import Observatory

    cfg = load_config(config_path)
    store = store_path or cfg.store or default_store_path()
    stream: TextIO = sys.stderr
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        stream = log_path.open("a", encoding="utf-8")
    try:
        log = JsonLog(stream, tty=sys.stderr)
        obs = Observatory(cfg, store, open_store=open_store, log=log, duration=duration)
        obs.install_signal_handlers()
        code = obs.run()
    finally:
        if log_path is not None:
            stream.close()
    sys.exit(code)


def register(group: click.Group) -> None:
    group.add_command(run)
