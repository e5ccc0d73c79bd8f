"""HMAC-SHA256 signatures for webhooks, both directions.

The scheme (like Slack's request signing): the signed text is `"{timestamp}.{body}"`, sent as
headers `X-Opsbot-Timestamp: <unix seconds>` and `X-Opsbot-Signature: sha256=<hex>`. A receiver
accepts a request only when the signature matches (constant-time compare), the timestamp is within
5 minutes of its clock, and the same signature has not been seen before (replay).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

TIMESTAMP_HEADER = "X-Opsbot-Timestamp"
SIGNATURE_HEADER = "X-Opsbot-Signature"
MAX_SKEW_SECONDS = 300.0


class SignatureInvalid(Exception):
    """Why a signed request was refused (safe to show: it never contains the secret)."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: float) -> dict[str, str]:
    timestamp = int(now)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        "Content-Type": "application/json",
    }


@dataclass
class Verifier:
    """Checks signature, freshness and replay. Keeps seen signatures for the skew window."""

    secret: str
    clock: Callable[[], float] = time.time
    max_skew: float = MAX_SKEW_SECONDS

    def __post_init__(self) -> None:
        self._seen: dict[str, float] = {}

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise SignatureInvalid unless the request is authentic, fresh and new."""
        raw_ts = headers.get(TIMESTAMP_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if not raw_ts or not signature:
            raise SignatureInvalid(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
        try:
            timestamp = int(raw_ts)
        except ValueError:
            raise SignatureInvalid(f"{TIMESTAMP_HEADER} is not a Unix timestamp") from None
        now = self.clock()
        if abs(now - timestamp) > self.max_skew:
            raise SignatureInvalid(
                f"timestamp is {abs(now - timestamp):.0f} s away from now "
                f"(allowed: {self.max_skew:.0f} s)"
            )
        if not hmac.compare_digest(sign(self.secret, timestamp, body), signature):
            raise SignatureInvalid("signature does not match the body")
        self._forget_older_than(now - self.max_skew)
        if signature in self._seen:
            raise SignatureInvalid("replayed request: this signature was already used")
        self._seen[signature] = float(timestamp)

    def _forget_older_than(self, cutoff: float) -> None:
        # A signature older than the window is refused by the timestamp check anyway.
        for key in [k for k, ts in self._seen.items() if ts < cutoff]:
            del self._seen[key]
