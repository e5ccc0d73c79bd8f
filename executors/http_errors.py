"""HTTP status and headers -> the shared error tree. One table for every REST executor.

401/403 -> AuthError; 429 -> RateLimited (with Retry-After); 408, 409, 425 and 5xx ->
RetryableError; any other 4xx -> PermanentError. Messages never carry request URLs or headers,
which may hold tokens (Trello sends key and token in the query string).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from executors.base import AuthError, ExecutorError, PermanentError, RateLimited, RetryableError

_RETRYABLE_4XX = {408, 409, 425}


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def error_for_status(
    status: int,
    message: str,
    *,
    platform: str,
    headers: Mapping[str, str] | None = None,
) -> ExecutorError:
    """The error for an HTTP answer `status`; `message` should already be free of secrets."""
    text = f"{platform}: HTTP {status}: {message}" if message else f"{platform}: HTTP {status}"
    if status in (401, 403):
        return AuthError(text, platform=platform, status=status)
    if status == 429:
        retry_after = parse_retry_after((headers or {}).get("Retry-After"))
        return RateLimited(text, platform=platform, status=status, retry_after=retry_after)
    if status >= 500 or status in _RETRYABLE_4XX:
        return RetryableError(text, platform=platform, status=status)
    return PermanentError(text, platform=platform, status=status)


def timeout_error(platform: str, seconds: float) -> RetryableError:
    return RetryableError(f"{platform}: no answer within {seconds:g} s", platform=platform)


def connection_error(platform: str, exc: BaseException) -> RetryableError:
    # The exception's text can contain the URL (and Trello's query-string token): use its type.
    return RetryableError(
        f"{platform}: connection failed ({type(exc).__name__})", platform=platform
    )
