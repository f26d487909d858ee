"""Request parameters every route shares: times, entities, ranges, and the JSON writer.

Times are accepted as unix seconds or ISO 8601 (UTC when no offset is given), the two
spellings the CLI accepts (``netvigil.cli.common.parse_time``) and IODA's ``from``/``until``
(unix seconds). A bad value is a 422 with the parameter's name, never a silent default.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import HTTPException
from fastapi.responses import Response

from netvigil.model import EntityRef
from netvigil.model.entities import make_ref
from netvigil.model.errors import InvalidEntity


class JSONBody(Response):
    """JSON through orjson: NaN and inf become null (JSON has neither), numpy arrays and
    scalars serialise natively; no per-field validation on the way out (the speed matters
    for long series, bench_serve_load.py)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def parse_when(text: str | None, name: str) -> int | None:
    """``1641254400``, ``1641254400.5``, ``2022-01-04``, ``2022-01-04T00:00:00Z`` → unix s."""
    if text is None or text == "":
        return None
    raw = text.strip()
    try:
        if raw.lstrip("-").replace(".", "", 1).isdigit():
            return int(float(raw))
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(422, f"{name}: expected unix seconds or ISO 8601, "
                                 f"got {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def time_range(start_text: str | None, until_text: str | None) -> tuple[int | None, int | None]:
    start = parse_when(start_text, "from")
    until = parse_when(until_text, "until")
    if start is not None and until is not None and until <= start:
        raise HTTPException(422, f"until ({until}) must be later than from ({start})")
    return start, until


def entity_ref(entity_type: str, code: str) -> EntityRef:
    """A canonical reference from the path, 400 with the model's reason when malformed."""
    try:
        return make_ref(entity_type, code)
    except InvalidEntity as exc:
        raise HTTPException(400, str(exc)) from None
