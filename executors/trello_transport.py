"""The requests adapter py-trello's session sends through. It (1) waits on the platform
throttle before every request and reports the answer back, (2) rewrites the API root to
TRELLO_API_URL, (3) sets the timeout (py-trello sets none) and (4) turns non-200 answers into
the shared errors while the status and Retry-After header are still at hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from executors.base import Answered, answered_by
from executors.http_errors import error_for_status

PLATFORM = "trello"
PRODUCTION = "https://api.trello.com/"


class TrelloAdapter(HTTPAdapter):
    """Throttle, redirect, time-box and classify every request py-trello sends."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.wait: Callable[[], Answered] | None = None  # set once the event loop is known

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        url = str(request.url)
        if url.startswith(PRODUCTION):
            request.url = self.base_url + url[len(PRODUCTION) :]
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        answered = self.wait() if self.wait is not None else None
        try:
            response = super().send(request, **kwargs)
        finally:
            answered_by(answered)
        if response.status_code != 200:
            # The body is Trello's short error text; the URL (with key and token) is left out.
            text = response.text[:200].strip()
            raise error_for_status(
                response.status_code, text, platform=PLATFORM, headers=response.headers
            )
        return response
