"""JSON payloads stored as text: compact on the way in, None for an empty column on the way out."""

from __future__ import annotations

import json
from json import encoder as _encoder
from typing import Any

_slow_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode
_make_c_encoder = getattr(_encoder, "c_make_encoder", None)


def dumps(value: Any) -> str:
    """Compact JSON (non-JSON values as str). Calls the C encoder directly when available:
    JSONEncoder.encode costs about twice as much in Python-level setup per call, and the queue
    encodes one payload per action (fresh `markers` each call keep the circular-reference
    check and leave no state behind after an error)."""
    if _make_c_encoder is None or isinstance(value, str):
        return _slow_dumps(value)
    esc = _encoder.encode_basestring_ascii
    return "".join(_make_c_encoder({}, str, esc, None, ":", ",", False, False, True)(value, 0))


def loads(text: str | None) -> Any:
    return json.loads(text) if text else None
