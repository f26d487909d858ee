"""Placeholder: replaced by the module's owner."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    pass
