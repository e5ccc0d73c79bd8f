"""The Google side of the sandbox: throwaway service-account keys and the OAuth token endpoint.

`GoogleTokenStandIn` plays oauth2.googleapis.com: `service_account_key()` returns a key JSON (as
Google issues them) with a freshly generated RSA key whose `token_uri` points at this stand-in.
google-auth posts a JWT-bearer grant to `/token`; the stand-in checks the assertion's signature
against the keys it generated and answers with a bearer token, which the Drive and Sheets
stand-ins accept (`valid(token)`). One token stand-in serves both, as one key does in production.
It is a server of its own, as Google's is, so token requests never count against an API's limit.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as google_exceptions
from google.auth import jwt

from executors.sandbox.standin import StandIn, retry_headers

if TYPE_CHECKING:  # the Drive and Sheets stand-ins import this module
    from executors.sandbox.drive import DriveStandIn
    from executors.sandbox.sheets import SheetsStandIn

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME = 3600
SANDBOX_EMAIL = "opsbot@opsbot-sandbox.iam.gserviceaccount.com"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class GoogleTokenStandIn(StandIn):
    """State: the generated key (reused across restarts) and the access tokens issued."""

    name = "google-oauth"

    def __init__(
        self,
        *,
        state_file: str | Path | None = None,
        port: int = 0,
        token_lifetime: int = TOKEN_LIFETIME,
    ) -> None:
        super().__init__(state_file=state_file, port=port)
        self._lifetime = token_lifetime
        self._certs: dict[str, str] = {}  # private_key_id -> public key PEM

    def initial_state(self) -> dict[str, Any]:
        return {"keys": {}, "tokens": {}}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/token", self._token)

    def error_response(
        self, status: int, message: str, retry_after: float | None = None
    ) -> web.StreamResponse:
        error = "temporarily_unavailable" if status >= 500 else "invalid_grant"
        body = {"error": error, "error_description": message}
        return web.json_response(body, status=status, headers=retry_headers(retry_after))

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def service_account_key(self, email: str = SANDBOX_EMAIL) -> dict[str, Any]:
        """A key JSON whose token requests this stand-in accepts (call after start). A key
        kept in the state file is reused, its token_uri updated to this run's port."""
        for key in self.state["keys"].values():
            if key["client_email"] == email:
                return {**key, "token_uri": self.token_uri, "auth_uri": self.token_uri}
        return self.add_key(make_service_account_key(self.token_uri, email=email))

    def add_key(self, key: dict[str, Any]) -> dict[str, Any]:
        """Accept token requests signed by `key` (made with `make_service_account_key`, which
        callers on the event loop may run in a thread: RSA generation takes a while)."""
        self.state["keys"][key["private_key_id"]] = key
        self.changed()
        return {**key, "token_uri": self.token_uri, "auth_uri": self.token_uri}

    def has_key(self, email: str = SANDBOX_EMAIL) -> bool:
        return any(key["client_email"] == email for key in self.state["keys"].values())

    def valid(self, token: str) -> bool:
        expiry = self.state["tokens"].get(token)
        return expiry is not None and expiry > time.time()

    def revoke_all(self) -> None:
        self.state["tokens"].clear()
        self.changed()

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != JWT_GRANT:
            return _oauth_error("unsupported_grant_type", "expected a JWT bearer grant")
        if self._verify(str(form.get("assertion", ""))) is None:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        token = "ya29.sandbox-" + secrets.token_urlsafe(24)
        now = time.time()
        tokens = self.state["tokens"]
        for old in [t for t, expiry in tokens.items() if expiry <= now]:
            del tokens[old]
        tokens[token] = now + self._lifetime
        self.changed()
        body = {"access_token": token, "expires_in": self._lifetime, "token_type": "Bearer"}
        return web.json_response(body)

    def _verify(self, assertion: str) -> dict[str, Any] | None:
        # Public halves are derived once per key: loading an RSA private key is slow, and the
        # stand-in shares its loop with the code under test.
        for kid, key in self.state["keys"].items():
            if kid not in self._certs:
                self._certs[kid] = public_pem(key["private_key"])
        certs = {kid: self._certs[kid] for kid in self.state["keys"]}
        try:
            claims: dict[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
                assertion, certs=certs
            )
        except (ValueError, google_exceptions.GoogleAuthError):
            return None
        return claims


def make_service_account_key(token_uri: str, *, email: str = SANDBOX_EMAIL) -> dict[str, Any]:
    """A service-account key JSON with a new 2048-bit RSA key. Nothing is written to disk."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "opsbot-sandbox",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": token_uri,
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    }


def public_pem(private_pem: str) -> str:
    # Keys are our own (generated above): skipping the RSA consistency check saves ~80 ms of
    # event-loop time per key.
    private = serialization.load_pem_private_key(
        private_pem.encode(), password=None, unsafe_skip_rsa_key_validation=True
    )
    public = private.public_key()
    encoded = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return encoded.decode()


def bearer(request: web.Request) -> str:
    """The bearer token of a request ('' when there is none)."""
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else ""


def google_error(status: int, message: str, retry_after: float | None = None) -> web.Response:
    """An error answer in the shape of Google's REST APIs (Drive v3, Sheets v4)."""
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if status == 429:
        error["errors"] = [
            {"reason": "rateLimitExceeded", "message": message, "domain": "usageLimits"}
        ]
    return web.json_response({"error": error}, status=status, headers=retry_headers(retry_after))


def _oauth_error(error: str, description: str) -> web.Response:
    body = json.dumps({"error": error, "error_description": description})
    return web.Response(status=400, text=body, content_type="application/json")


@dataclass
class GoogleStandIns:
    """The token, Drive and Sheets stand-ins running together, as the sandbox needs them."""

    tokens: GoogleTokenStandIn
    drive: DriveStandIn
    sheets: SheetsStandIn
    key: dict[str, Any]

    def settings(self) -> dict[str, str]:
        """Settings overrides (field names) pointing opsbot at these stand-ins."""
        from executors.sandbox.drive import SANDBOX_FOLDER_ID
        from executors.sandbox.sheets import SANDBOX_SPREADSHEET_ID

        return {
            "google_service_account_key": json.dumps(self.key),
            "google_drive_api_url": self.drive.base_url,
            "drive_folder_id": SANDBOX_FOLDER_ID,
            "google_sheets_api_url": self.sheets.base_url,
            "sheets_spreadsheet_id": SANDBOX_SPREADSHEET_ID,
        }

    async def stop(self) -> None:
        for standin in (self.drive, self.sheets, self.tokens):
            await standin.stop()


async def start_google_standins(
    state_dir: str | Path | None = None,
    rate_limits: Mapping[str, tuple[int, float]] | None = None,
) -> GoogleStandIns:
    """Start the three Google stand-ins (state in `state_dir` when given, so a restart keeps
    files, rows and the key) with the platforms' limits (`settings.rate_limits`)."""
    from executors.sandbox.drive import DriveStandIn
    from executors.sandbox.sheets import SheetsStandIn

    limits = rate_limits or {}
    folder = Path(state_dir) if state_dir else None
    tokens = GoogleTokenStandIn(state_file=folder / "google-oauth.json" if folder else None)
    await tokens.start()
    if not tokens.has_key():
        tokens.add_key(await asyncio.to_thread(make_service_account_key, tokens.token_uri))
    drive = DriveStandIn(
        tokens,
        rate_limit=limits.get("drive"),
        state_file=folder / "drive.json" if folder else None,
    )
    sheets = SheetsStandIn(
        tokens,
        rate_limit=limits.get("sheets"),
        state_file=folder / "sheets.json" if folder else None,
    )
    await drive.start()
    await sheets.start()
    return GoogleStandIns(tokens, drive, sheets, tokens.service_account_key())
