"""Google Drive: the v3 REST API over aiohttp with google-auth service-account credentials.

Plain aiohttp rather than google-api-python-client: that client forces https for uploads (so it
cannot reach a local stand-in) and is blocking. Paths follow `GOOGLE_DRIVE_API_URL`:
`/drive/v3/files`, `/upload/drive/v3/files?uploadType=multipart`,
`/drive/v3/files/{id}/permissions`.
Every request awaits the throttle first and has a timeout; there is no retry here (the queue's).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.config import Settings
from executors.base import (
    JSON,
    CheckResult,
    ExecutorError,
    Operation,
    PermanentError,
    RetryableError,
    Throttle,
    answered_by,
    require,
)
from executors.google_auth import DRIVE_SCOPES, TokenSource, google_error, load_credentials

log = logging.getLogger(__name__)
PLATFORM = "drive"
FOLDER_MIME = "application/vnd.google-apps.folder"
FILE_FIELDS = "id,name,mimeType,parents,webViewLink"
_ROLES = ("reader", "commenter", "writer")


class DriveExecutor:
    platform = PLATFORM

    def __init__(
        self, settings: Settings, tokens: TokenSource, throttle: Throttle, *, timeout: float = 30.0
    ) -> None:
        self._base = settings.google_drive_api_url.rstrip("/")
        self._folder_id = settings.drive_folder_id
        self._share_with = settings.drive_share_with
        self._tokens = tokens
        self._throttle = throttle
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def operations(self) -> Mapping[str, Operation]:
        return {
            "upload_file": self.upload_file,
            "create_folder": self.create_folder,
            "organize_attachments": self.organize_attachments,
            "share": self.share,
            "get_link": self.get_link,
        }

    def reversible(self, action_type: str) -> bool:
        return action_type in self.operations

    # -- operations ---------------------------------------------------------------------------

    async def upload_file(self, data: JSON) -> JSON:
        require(data, "name", "content", platform=PLATFORM)
        content = _content_bytes(data)
        parent = data.get("folder_id") or self._folder_id
        return await self._upload(str(data["name"]), content, _mime(data), parent)

    async def create_folder(self, data: JSON) -> JSON:
        require(data, "name", platform=PLATFORM)
        parent = data.get("parent_id") or self._folder_id
        return await self._create_folder(str(data["name"]), parent)

    async def organize_attachments(self, data: JSON) -> JSON:
        """A folder and several files in it. On a partial failure the folder goes too, so the
        queue's retry starts clean instead of leaving a half-filled duplicate behind."""
        require(data, "folder_name", "files", platform=PLATFORM)
        files = data["files"]
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            raise PermanentError(
                "files: expected a list of {name, content}", platform=PLATFORM, status=400
            )
        for index, item in enumerate(files):
            if item.get("name") in (None, "") or item.get("content") is None:
                raise PermanentError(
                    f"files[{index}]: name and content are required", platform=PLATFORM, status=400
                )
        payloads = [(str(f["name"]), _content_bytes(f), _mime(f)) for f in files]
        parent = data.get("parent_id") or self._folder_id
        folder = await self._create_folder(str(data["folder_name"]), parent)
        uploaded: list[JSON] = []
        try:
            for name, content, mime in payloads:
                uploaded.append(await self._upload(name, content, mime, folder["file_id"]))
        except ExecutorError:
            await self._delete_quietly([*(f["file_id"] for f in uploaded), folder["file_id"]])
            raise
        return {**folder, "parent_id": parent, "folder_id": folder["file_id"], "files": uploaded}

    async def share(self, data: JSON) -> JSON:
        require(data, "file_id", platform=PLATFORM)
        permission = self._permission(data)
        params = {
            "sendNotificationEmail": str(bool(data.get("notify", False))).lower(),
            "fields": "id,type,role,emailAddress,domain",
            "supportsAllDrives": "true",
        }
        file_id = str(data["file_id"])
        answer = await self._call(
            "POST", f"{_file_path(file_id)}/permissions", params=params, json_body=permission
        )
        return {"file_id": file_id, "permission_id": answer.get("id"), **permission}

    async def get_link(self, data: JSON) -> JSON:
        require(data, "file_id", platform=PLATFORM)
        answer = await self._call(
            "GET", _file_path(data["file_id"]), params={"fields": FILE_FIELDS}
        )
        return _file_result(answer)

    # -- compensation and health --------------------------------------------------------------

    async def compensate(self, action_type: str, data: JSON, result: JSON) -> JSON:
        if action_type in ("upload_file", "create_folder"):
            await self._delete(str(result["file_id"]))
            return {"deleted": [result["file_id"]]}
        if action_type == "organize_attachments":
            ids = [str(f["file_id"]) for f in result.get("files", [])] + [str(result["file_id"])]
            for file_id in ids:
                await self._delete(file_id)
            return {"deleted": ids}
        if action_type == "share":
            permission_id = quote(str(result["permission_id"]), safe="")
            path = f"{_file_path(result['file_id'])}/permissions/{permission_id}"
            await self._call("DELETE", path, missing_ok=True)
            return {"removed_permission": result["permission_id"]}
        if action_type == "get_link":
            return {"noop": "get_link only reads"}
        raise PermanentError(f"unknown drive operation {action_type!r}", platform=PLATFORM)

    async def check(self) -> CheckResult:
        started = time.perf_counter()
        try:
            answer = await self._call("GET", "/drive/v3/about", params={"fields": "user"})
        except ExecutorError as exc:
            return CheckResult(PLATFORM, False, f"{exc.kind}: {exc.message}")
        user = answer.get("user") or {}
        latency = (time.perf_counter() - started) * 1000
        return CheckResult(PLATFORM, True, f"as {user.get('emailAddress', '?')}", latency)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await asyncio.to_thread(self._tokens.close)

    # -- helpers ------------------------------------------------------------------------------

    async def _upload(self, name: str, content: bytes, mime: str, parent: str | None) -> JSON:
        metadata: JSON = {"name": name, "mimeType": mime}
        if parent:
            metadata["parents"] = [parent]
        with aiohttp.MultipartWriter("related") as body:
            body.append_json(metadata)
            body.append(content, {"Content-Type": mime})
        params = {"uploadType": "multipart", "fields": FILE_FIELDS, "supportsAllDrives": "true"}
        answer = await self._call("POST", "/upload/drive/v3/files", params=params, body=body)
        return _file_result(answer)

    async def _create_folder(self, name: str, parent: str | None) -> JSON:
        metadata: JSON = {"name": name, "mimeType": FOLDER_MIME}
        if parent:
            metadata["parents"] = [parent]
        params = {"fields": FILE_FIELDS, "supportsAllDrives": "true"}
        answer = await self._call("POST", "/drive/v3/files", params=params, json_body=metadata)
        return _file_result(answer)

    async def _delete(self, file_id: str) -> None:
        # Already gone counts as undone: compensation must be safe to repeat.
        await self._call(
            "DELETE",
            _file_path(file_id),
            params={"supportsAllDrives": "true"},
            missing_ok=True,
        )

    async def _delete_quietly(self, file_ids: list[str]) -> None:
        for file_id in file_ids:
            try:
                await self._delete(file_id)
            except ExecutorError as exc:
                log.warning("drive: cleanup of %s failed: %s", file_id, exc.message)

    def _permission(self, data: JSON) -> JSON:
        role = str(data.get("role", "reader"))
        if role not in _ROLES:
            raise PermanentError(
                f"role: got {role!r}, expected one of {', '.join(_ROLES)}",
                platform=PLATFORM,
                status=400,
            )
        if data.get("domain"):
            return {"type": "domain", "role": role, "domain": str(data["domain"])}
        target = data.get("email") or self._share_with
        if not target:
            raise PermanentError(
                "missing parameter(s): email or domain (or DRIVE_SHARE_WITH)",
                platform=PLATFORM,
                status=400,
            )
        target = str(target)
        if "@" in target:
            return {"type": "user", "role": role, "emailAddress": target}
        return {"type": "domain", "role": role, "domain": target}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: JSON | None = None,
        body: Any = None,
        missing_ok: bool = False,
    ) -> JSON:
        token = await self._tokens.token()  # before the grant: the token endpoint is not Drive
        headers = {"Authorization": f"Bearer {token}"}
        answered = await self._throttle()
        try:
            async with self._client().request(
                method,
                self._base + path,
                params=params,
                json=json_body,
                data=body,
                headers=headers,
            ) as response:
                raw = await response.read()
                status, answer_headers = response.status, response.headers
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise RetryableError(
                f"drive: {type(exc).__name__} on {method} {path}", platform=PLATFORM
            ) from None
        finally:
            answered_by(answered)
        payload = _json(raw)
        if status == 404 and missing_ok:
            return {}
        if status >= 400:
            if status == 401:
                self._tokens.invalidate()
            raise google_error(status, payload, answer_headers, PLATFORM)
        return payload if isinstance(payload, dict) else {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def _file_path(file_id: object) -> str:
    # Ids come from action data: quoted, so one can never reach another endpoint.
    return "/drive/v3/files/" + quote(str(file_id), safe="")


def _content_bytes(data: JSON) -> bytes:
    content = data["content"]
    if data.get("encoding", "text") == "base64":
        try:
            return base64.b64decode(str(content), validate=True)
        except (binascii.Error, ValueError):
            raise PermanentError(
                "content: not valid base64", platform=PLATFORM, status=400
            ) from None
    if data.get("encoding", "text") != "text":
        raise PermanentError("encoding: expected 'text' or 'base64'", platform=PLATFORM, status=400)
    return str(content).encode("utf-8")


def _mime(data: JSON) -> str:
    return str(data.get("mime_type") or "text/plain")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def _file_result(answer: JSON) -> JSON:
    parents = answer.get("parents") or []
    return {
        "file_id": answer.get("id"),
        "name": answer.get("name"),
        "mime_type": answer.get("mimeType"),
        "web_view_link": answer.get("webViewLink"),
        "folder_id": parents[0] if parents else None,
    }


def build(settings: Settings, throttle: Throttle) -> DriveExecutor:
    credentials = load_credentials(settings.google_service_account_key, DRIVE_SCOPES)
    return DriveExecutor(settings, TokenSource(credentials, platform=PLATFORM), throttle)
