"""HTTP status/headers -> the shared error tree."""

from __future__ import annotations

import pytest

from executors.base import AuthError, PermanentError, RateLimited, RetryableError
from executors.http_errors import error_for_status, parse_retry_after


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthError),
        (403, AuthError),
        (429, RateLimited),
        (408, RetryableError),
        (409, RetryableError),
        (500, RetryableError),
        (503, RetryableError),
        (400, PermanentError),
        (404, PermanentError),
        (422, PermanentError),
    ],
)
def test_status_maps_to_error_type(status: int, kind: type[Exception]) -> None:
    error = error_for_status(status, "nope", platform="trello")
    assert type(error) is kind
    assert (error.platform, error.status) == ("trello", status)


def test_rate_limited_carries_retry_after_from_headers() -> None:
    error = error_for_status(429, "", platform="x", headers={"Retry-After": "7"})
    assert isinstance(error, RateLimited) and error.retry_after == 7.0


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=90.0) == 10.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=200.0) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
