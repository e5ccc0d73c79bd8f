"""The Google side of the sandbox: throwaway service-account keys and an OAuth token endpoint.

`make_service_account_key(token_uri)` returns a key JSON (as Google issues them) with a freshly
generated RSA key whose `token_uri` points at a stand-in. The stand-ins mount
`TokenIssuer.handle` at `/token`: google-auth posts a JWT-bearer grant there, the issuer checks
the assertion's signature against the keys it generated and answers with a bearer token that the
Drive and Sheets stand-ins then accept. One issuer can serve both stand-ins (one key for both).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as google_exceptions
from google.auth import jwt

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME = 3600


class TokenIssuer:
    """Knows the public half of every key it generated; issues and recognises access tokens."""

    def __init__(self, token_lifetime: int = TOKEN_LIFETIME) -> None:
        self._public_keys: dict[str, str] = {}  # private_key_id -> public key PEM
        self._tokens: dict[str, float] = {}  # access token -> expiry (epoch seconds)
        self._lifetime = token_lifetime
        self.issued = 0

    def make_key(
        self, token_uri: str, *, email: str = "opsbot@sandbox.iam.gserviceaccount.com"
    ) -> dict[str, Any]:
        """A service-account key JSON whose token requests this issuer will accept."""
        key, key_id = make_service_account_key(token_uri, email=email)
        self._public_keys[key_id] = public_pem(key["private_key"])
        return key

    def valid(self, token: str) -> bool:
        expiry = self._tokens.get(token)
        return expiry is not None and expiry > time.time()

    def revoke_all(self) -> None:
        self._tokens.clear()

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != JWT_GRANT:
            return _oauth_error("unsupported_grant_type", "expected a JWT bearer grant")
        claims = self._verify(str(form.get("assertion", "")))
        if claims is None:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        token = "ya29.sandbox-" + secrets.token_urlsafe(24)
        self._tokens[token] = time.time() + self._lifetime
        self.issued += 1
        body = {"access_token": token, "expires_in": self._lifetime, "token_type": "Bearer"}
        return web.json_response(body)

    def _verify(self, assertion: str) -> dict[str, Any] | None:
        try:
            claims: dict[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
                assertion, certs=self._public_keys
            )
        except (ValueError, google_exceptions.GoogleAuthError):
            return None
        return claims


def make_service_account_key(
    token_uri: str, *, email: str = "opsbot@sandbox.iam.gserviceaccount.com"
) -> tuple[dict[str, Any], str]:
    """(key JSON, private_key_id) with a new 2048-bit RSA key. Nothing is written to disk."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key_id = secrets.token_hex(20)
    key = {
        "type": "service_account",
        "project_id": "opsbot-sandbox",
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": token_uri,
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    }
    return key, key_id


def public_pem(private_pem: str) -> str:
    private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def bearer(request: web.Request) -> str:
    """The bearer token of a request ('' when there is none)."""
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else ""


def google_error_body(code: int, status: str, message: str, reason: str = "") -> dict[str, Any]:
    """The JSON error shape of Google's REST APIs."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason:
        error["errors"] = [{"reason": reason, "message": message, "domain": "global"}]
    return {"error": error}


def _oauth_error(error: str, description: str) -> web.Response:
    body = json.dumps({"error": error, "error_description": description})
    return web.Response(status=400, text=body, content_type="application/json")
