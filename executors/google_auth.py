"""Google service-account credentials and error mapping shared by the Drive and Sheets executors.

`GOOGLE_SERVICE_ACCOUNT_KEY` is a path to the JSON key file or the JSON itself. google-auth sends
the token request to the key's `token_uri`, so the sandbox's local token endpoint works with this
unchanged code. Two google-auth behaviours are switched off on purpose:
- its own retries of the token request (one retry layer: the queue's);
- the background "regional access boundary" lookup, an extra call to the IAM API after every
  refresh that opsbot does not need (and that would leave the machine in the offline sandbox).
Both overrides touch google-auth internals (checked on 2.62): the Sheets tests pin the first
(a failing token endpoint is asked once). Refreshing is blocking HTTP: async callers go through
`TokenSource`, which refreshes in a thread. `RedirectAdapter` sends requests that gspread builds
for the production roots to the configured ones.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import requests
from google.auth import exceptions as google_exceptions
from google.auth.transport.requests import Request
from google.oauth2 import _client, service_account
from requests.adapters import HTTPAdapter

from executors.base import (
    Answered,
    AuthError,
    ExecutorError,
    PermanentError,
    PlatformDisabled,
    RateLimited,
    RetryableError,
)

DRIVE_SCOPES = ("https://www.googleapis.com/auth/drive",)
SHEETS_SCOPES = ("https://www.googleapis.com/auth/spreadsheets",)
TOKEN_TIMEOUT = 10.0
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"}


class ServiceAccountCredentials(service_account.Credentials):  # type: ignore[misc]
    """google-auth's service-account credentials with its token-request retries off."""

    def _perform_refresh_token(self, request: Any) -> None:
        assertion = self._make_authorization_grant_assertion()  # type: ignore[no-untyped-call]
        token, expiry, _ = _client.jwt_grant(  # type: ignore[no-untyped-call]
            request, self._token_uri, assertion, can_retry=False
        )
        self.token = token
        self.expiry = expiry

    def _is_regional_access_boundary_lookup_required(self) -> bool:
        return False


class TimeoutRequest(Request):  # type: ignore[misc]
    """google-auth's requests transport with a bounded timeout (its default is 120 s)."""

    def __init__(self, timeout: float = TOKEN_TIMEOUT) -> None:
        super().__init__()
        self._timeout = timeout

    def __call__(  # type: ignore[override]
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> Any:
        return super().__call__(  # type: ignore[no-untyped-call]
            url, method, body, headers, timeout=self._timeout, **kwargs
        )


class RedirectAdapter(HTTPAdapter):
    """Sends requests meant for a production root (`https://sheets.googleapis.com`) to the
    configured root instead, with a default timeout, after `before_send` (the throttle; what it
    returns is called once the answer came)."""

    def __init__(
        self, roots: Mapping[str, str], *, timeout: float, before_send: Callable[[], Answered]
    ) -> None:
        super().__init__(max_retries=0)
        self._roots = {src.rstrip("/"): dst.rstrip("/") for src, dst in roots.items()}
        self._timeout = timeout
        self._before_send = before_send

    def mount_on(self, session: requests.Session) -> None:
        for root in self._roots:
            session.mount(root, self)

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = request.url or ""
        for src, dst in self._roots.items():
            if url.startswith(src) and src != dst:
                request.url = dst + url[len(src) :]
                # Proxies were chosen for the production host; choose again for the real one.
                proxies = requests.utils.get_environ_proxies(request.url)
                break
        answered = self._before_send()
        try:
            return super().send(
                request,
                stream=stream,
                timeout=timeout if timeout is not None else self._timeout,
                verify=verify,
                cert=cert,
                proxies=proxies,
            )
        finally:
            answered()


def load_key(raw: str) -> dict[str, Any]:
    """The key as a dict, from inline JSON or a file path. Errors never echo the key itself."""
    text = raw.strip()
    if not text.startswith("{"):
        path = Path(text).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PlatformDisabled(
                f"GOOGLE_SERVICE_ACCOUNT_KEY: cannot read key file {path}: {exc.strerror}"
            ) from None
    try:
        info = json.loads(text)
    except ValueError:
        raise PlatformDisabled("GOOGLE_SERVICE_ACCOUNT_KEY is not valid JSON") from None
    if not isinstance(info, dict):
        raise PlatformDisabled("GOOGLE_SERVICE_ACCOUNT_KEY is not a JSON object")
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        raise PlatformDisabled(f"GOOGLE_SERVICE_ACCOUNT_KEY lacks {', '.join(missing)}")
    return info


def load_credentials(raw: str | None, scopes: Iterable[str]) -> ServiceAccountCredentials:
    """Credentials for `scopes`, or PlatformDisabled saying what is wrong with the key."""
    if not raw:
        raise PlatformDisabled("GOOGLE_SERVICE_ACCOUNT_KEY is not set")
    info = load_key(raw)
    try:
        credentials: ServiceAccountCredentials = (
            ServiceAccountCredentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=list(scopes)
            )
        )
    except (ValueError, google_exceptions.GoogleAuthError):
        raise PlatformDisabled(
            "GOOGLE_SERVICE_ACCOUNT_KEY: the private key cannot be loaded"
        ) from None
    return credentials


class TokenSource:
    """Access tokens for async callers: refreshed in a worker thread, one refresh at a time."""

    def __init__(
        self,
        credentials: ServiceAccountCredentials,
        *,
        platform: str,
        timeout: float = TOKEN_TIMEOUT,
    ) -> None:
        self._credentials = credentials
        self._platform = platform
        self.request = TimeoutRequest(timeout)
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if not self._credentials.valid:
            async with self._lock:
                if not self._credentials.valid:
                    await asyncio.to_thread(self.refresh_blocking)
        return str(self._credentials.token)

    def invalidate(self) -> None:
        """Forget the token after a 401 so the next attempt fetches a new one."""
        self._credentials.token = None

    def refresh_blocking(self) -> None:
        try:
            self._credentials.refresh(self.request)  # type: ignore[no-untyped-call]
        except google_exceptions.GoogleAuthError as exc:
            raise refresh_error(exc, self._platform) from None

    def close(self) -> None:
        self.request.session.close()


def refresh_error(exc: Exception, platform: str) -> ExecutorError:
    """A failed token request: the endpoint unreachable is retryable, a refusal is an auth error."""
    if isinstance(exc, google_exceptions.TransportError):
        return RetryableError("Google token endpoint unreachable", platform=platform)
    if isinstance(exc, google_exceptions.RefreshError) and exc.retryable:
        return RetryableError("Google token endpoint failed temporarily", platform=platform)
    return AuthError(
        "Google token request refused (check the service-account key)",
        platform=platform,
        status=401,
    )


def google_error(
    status: int, payload: Any, headers: Mapping[str, str], platform: str
) -> ExecutorError:
    """Map a Google API error answer (`{"error": {code, status, message, errors}}`)."""
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    message = str(error.get("message") or f"HTTP {status}")[:300]
    reasons = {str(e.get("reason")) for e in error.get("errors") or [] if isinstance(e, dict)}
    text = f"{platform}: {message}"
    if (
        status == 429
        or error.get("status") == "RESOURCE_EXHAUSTED"
        or (status == 403 and reasons & _RATE_REASONS)
    ):
        return RateLimited(
            text, platform=platform, status=status, retry_after=_retry_after(headers)
        )
    if status >= 500:
        return RetryableError(
            text, platform=platform, status=status, retry_after=_retry_after(headers)
        )
    if status in (401, 403):
        return AuthError(text, platform=platform, status=status)
    return PermanentError(text, platform=platform, status=status)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
