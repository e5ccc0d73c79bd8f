"""JSON payloads stored as text: compact on the way in, None for an empty column on the way out."""

from __future__ import annotations

import json
from typing import Any

dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def loads(text: str | None) -> Any:
    return json.loads(text) if text else None
