#!/usr/bin/env bash
# Install the peer tools the BGP benchmarks compare against (issue 3, item 7).
#   * Debian `bgpdump` (1.6.2 on Debian 12): the C reference and the test oracle;
#   * PyPI `mrtparse` and `pybgpkit-parser==0.6.2` (the last release with glibc-2.36 wheels)
#     into the project virtualenv (the `bench` extra).
# Safe to re-run. Needs root (or sudo) for apt-get.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$here/.venv/bin/python}"
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
if ! command -v bgpdump >/dev/null; then
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends bgpdump
fi
bgpdump -T 2>&1 | head -1 || true
"$py" -m pip install --quiet "mrtparse>=2.2" "pybgpkit-parser==0.6.2" \
    || echo "warning: optional Python peers did not install; the benchmark will skip them" >&2
