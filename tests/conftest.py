"""Suite-wide hooks: prerequisites fail in CI instead of skipping (see tests/prereq.py)."""

from __future__ import annotations

import pytest

from prereq import MARKER, check_markers

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(condition, why): skip locally, fail in CI when condition is false"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    check_markers(item)
