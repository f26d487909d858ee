"""Test prerequisites: skip on a developer machine, fail in CI (issue 7).

A test that needs root, network namespaces, nftables/netem or the ``geoip`` extra used to
skip silently when they were missing, so CI could be green while covering nothing (ooni/data's
integration tests warn of exactly this). Here a missing prerequisite is a skip with its reason
locally and a failure when ``CI`` is set to true (GitHub Actions, GitLab and most runners
set it; ``.ci/run`` installs what these tests need and fails loudly if it cannot).

Three forms:

* ``require(condition, why)`` inside a test or fixture;
* ``missing(why)`` where the code already knows the prerequisite is absent (``NoReturn``);
* ``pytestmark = requires(condition, why)`` or ``@requires(condition, why)`` for a module or
  a test: a ``prerequisite`` marker that ``tests/conftest.py`` checks before setup.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

MARKER = "prerequisite"


def in_ci() -> bool:
    """True when the ``CI`` environment variable says so (``true``/``1``/``yes``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing(why: str) -> NoReturn:
    """Stop the test for a missing prerequisite: fail in CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"prerequisite missing in CI (CI=true): {why}", pytrace=False)
    pytest.skip(why)


def require(condition: bool, why: str) -> None:
    """Continue if ``condition`` holds, else :func:`missing` (fail in CI, skip elsewhere)."""
    if not condition:
        missing(why)


def requires(condition: bool, why: str) -> pytest.MarkDecorator:
    """Marker form of :func:`require`, for ``pytestmark`` or a decorator."""
    return getattr(pytest.mark, MARKER)(condition, why)


def check_markers(item: pytest.Item) -> None:
    """Called by conftest before each test's setup: apply every ``prerequisite`` marker."""
    for mark in item.iter_markers(name=MARKER):
        condition, why = mark.args
        require(bool(condition), str(why))
