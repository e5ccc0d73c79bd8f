"""Webhook signatures: HMAC-SHA256 of timestamp + body, 5-minute window, no replays."""

from __future__ import annotations

import pytest

from bot.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureInvalid,
    Verifier,
    sign,
    signed_headers,
)
from tests.conftest import FakeClock

SECRET = "hook-secret-123"
BODY = b'{"ref": "main"}'


def test_a_fresh_correct_signature_is_accepted_once(clock: FakeClock) -> None:
    verifier = Verifier(SECRET, clock=clock)
    headers = signed_headers(SECRET, BODY, clock())
    verifier.verify(headers, BODY)
    with pytest.raises(SignatureInvalid, match="replayed"):
        verifier.verify(headers, BODY)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h, b: (h, b + b" "), "does not match"),  # body changed
        (lambda h, b: ({**h, SIGNATURE_HEADER: "sha256=" + "0" * 64}, b), "does not match"),
        (lambda h, b: ({k: v for k, v in h.items() if k != SIGNATURE_HEADER}, b), "missing"),
        (lambda h, b: ({k: v for k, v in h.items() if k != TIMESTAMP_HEADER}, b), "missing"),
        (lambda h, b: ({**h, TIMESTAMP_HEADER: "yesterday"}, b), "not a Unix timestamp"),
    ],
)
def test_tampered_or_incomplete_requests_are_refused(
    clock: FakeClock, change: object, reason: str
) -> None:
    headers, body = change(signed_headers(SECRET, BODY, clock()), BODY)  # type: ignore[operator]
    with pytest.raises(SignatureInvalid, match=reason):
        Verifier(SECRET, clock=clock).verify(headers, body)


def test_a_signature_made_with_another_secret_is_refused(clock: FakeClock) -> None:
    with pytest.raises(SignatureInvalid, match="does not match"):
        Verifier(SECRET, clock=clock).verify(signed_headers("other", BODY, clock()), BODY)


@pytest.mark.parametrize("skew", [-301, 301])
def test_timestamps_outside_five_minutes_are_refused(clock: FakeClock, skew: int) -> None:
    headers = signed_headers(SECRET, BODY, clock() + skew)
    with pytest.raises(SignatureInvalid, match="away from now"):
        Verifier(SECRET, clock=clock).verify(headers, BODY)


def test_edges_of_the_window_are_accepted(clock: FakeClock) -> None:
    verifier = Verifier(SECRET, clock=clock)
    verifier.verify(signed_headers(SECRET, BODY, clock() - 300), BODY)
    verifier.verify(signed_headers(SECRET, BODY, clock() + 300), BODY)


def test_replay_memory_is_pruned_but_old_requests_stay_refused(clock: FakeClock) -> None:
    verifier = Verifier(SECRET, clock=clock)
    headers = signed_headers(SECRET, BODY, clock())
    verifier.verify(headers, BODY)
    clock.advance(301)
    verifier.verify(signed_headers(SECRET, b"{}", clock()), b"{}")  # prunes the old entry
    assert len(verifier._seen) == 1
    with pytest.raises(SignatureInvalid, match="away from now"):
        verifier.verify(headers, BODY)  # too old now, so no replay is possible


def test_the_signed_text_is_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1_700_000_000, BODY) == "sha256=" + expected
