"""A local Google Drive (v3 REST): files, folders, permissions, multipart uploads.

Serves the paths the Drive executor uses (`/drive/v3/about`, `/drive/v3/files`,
`/upload/drive/v3/files?uploadType=multipart`, `/drive/v3/files/{id}/permissions`) with Google's
answer and error shapes. Bearer tokens must come from the `GoogleTokenStandIn` given. State:
`files` by id (folders are files with the folder mime type; content kept base64, permissions
inline). A seeded folder (`SANDBOX_FOLDER_ID`) stands for `DRIVE_FOLDER_ID`.

A file's `webViewLink` points at the stand-in, as Notion's and Trello's links do, so the links
in results, sheets and messages open in the sandbox: `GET /file/d/{id}/view` serves the file's
content (text as text/plain), `GET /drive/folders/{id}` lists a folder.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from executors.sandbox.google import GoogleTokenStandIn, bearer, google_error
from executors.sandbox.standin import StandIn

FOLDER_MIME = "application/vnd.google-apps.folder"
SANDBOX_FOLDER_ID = "sandbox-folder"
GOOGLE_LINKS = "https://drive.google.com/"
_PUBLIC = ("id", "name", "mimeType", "parents", "webViewLink", "createdTime", "size")


class DriveStandIn(StandIn):
    name = "drive"
    public_prefixes = ("/file/d/", "/drive/folders/")  # the web links, not the API

    def __init__(
        self,
        tokens: GoogleTokenStandIn,
        *,
        rate_limit: tuple[int, float] | None = None,
        state_file: str | Path | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(rate_limit=rate_limit, state_file=state_file, port=port)
        self.tokens = tokens

    def initial_state(self) -> dict[str, Any]:
        folder = _new_file(SANDBOX_FOLDER_ID, "opsbot", FOLDER_MIME, [])
        return {"files": {SANDBOX_FOLDER_ID: folder}}

    async def start(self) -> Self:
        await super().start()
        # State saved before links pointed here: its drive.google.com links open nothing.
        for record in self.files.values():
            if str(record.get("webViewLink", "")).startswith(GOOGLE_LINKS):
                del record["webViewLink"]
                record["webViewLink"] = self.web_link(record)
        return self

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/drive/v3/about", self._about)
        app.router.add_get("/drive/v3/files", self._list)
        app.router.add_post("/drive/v3/files", self._create)
        app.router.add_post("/upload/drive/v3/files", self._upload)
        app.router.add_get("/drive/v3/files/{id}", self._get)
        app.router.add_delete("/drive/v3/files/{id}", self._delete)
        app.router.add_get("/drive/v3/files/{id}/permissions", self._permissions)
        app.router.add_post("/drive/v3/files/{id}/permissions", self._share)
        app.router.add_delete("/drive/v3/files/{id}/permissions/{pid}", self._unshare)
        app.router.add_get("/file/d/{id}/view", self._view_file)
        app.router.add_get("/drive/folders/{id}", self._view_folder)

    def authorize(self, request: web.Request) -> bool:
        return self.tokens.valid(bearer(request))

    def error_response(
        self, status: int, message: str, retry_after: float | None = None
    ) -> web.StreamResponse:
        return google_error(status, message, retry_after)

    # -- reading state (tests, the sandbox page) --------------------------------------------
    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.state["files"]  # type: ignore[no-any-return]

    def children(self, folder_id: str) -> list[dict[str, Any]]:
        return [f for f in self.files.values() if folder_id in f.get("parents", [])]

    def content(self, file_id: str) -> bytes:
        return base64.b64decode(self.files[file_id].get("content", ""))

    def web_link(self, record: dict[str, Any]) -> str:
        """Where a file opens in a browser: on this stand-in (a stored link wins)."""
        if record.get("webViewLink"):
            return str(record["webViewLink"])
        if record.get("mimeType") == FOLDER_MIME:
            return f"{self.base_url}/drive/folders/{record['id']}"
        return f"{self.base_url}/file/d/{record['id']}/view"

    # -- web links -----------------------------------------------------------------------------
    async def _view_file(self, request: web.Request) -> web.StreamResponse:
        record = self.files.get(request.match_info["id"])
        if record is None or record.get("mimeType") == FOLDER_MIME:
            return web.Response(status=404, text="No such file in the sandbox's Drive.")
        content = self.content(record["id"])
        mime = str(record.get("mimeType") or "application/octet-stream")
        try:  # text shows in the browser whatever it claims to be (an "Invoice PDF" string)
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            return web.Response(body=content, content_type=mime)
        return web.Response(text=text, content_type="text/plain")

    async def _view_folder(self, request: web.Request) -> web.Response:
        record = self.files.get(request.match_info["id"])
        if record is None or record.get("mimeType") != FOLDER_MIME:
            return web.Response(status=404, text="No such folder in the sandbox's Drive.")
        inside = [
            {"name": f["name"], "link": self.web_link(f)} for f in self.children(record["id"])
        ]
        return web.json_response({"name": record["name"], "files": inside})

    # -- handlers ----------------------------------------------------------------------------
    async def _about(self, request: web.Request) -> web.Response:
        user = {"kind": "drive#user", "displayName": "opsbot", "emailAddress": "opsbot@sandbox"}
        return web.json_response({"user": user})

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "")
        files = [f for f in self.files.values() if _matches(f, query)]
        return web.json_response({"files": [self._public(f) for f in files]})

    async def _get(self, request: web.Request) -> web.Response:
        found = self._file(request.match_info["id"])
        if isinstance(found, web.Response):
            return found
        return web.json_response(self._public(found))

    async def _create(self, request: web.Request) -> web.Response:
        metadata = await _json(request)
        return self._store(metadata, b"")

    async def _upload(self, request: web.Request) -> web.Response:
        if request.query.get("uploadType") != "multipart":
            return google_error(400, "the stand-in supports uploadType=multipart only")
        parts = _multipart(request.headers.get("Content-Type", ""), await request.read())
        if len(parts) != 2:
            return google_error(400, "multipart upload: expected metadata and media parts")
        try:
            metadata = json.loads(parts[0])
        except ValueError:
            return google_error(400, "multipart upload: metadata is not JSON")
        return self._store(metadata, parts[1])

    async def _delete(self, request: web.Request) -> web.Response:
        found = self._file(request.match_info["id"])
        if isinstance(found, web.Response):
            return found
        # Like Drive for the owner: deleting a folder deletes what is inside it.
        doomed, frontier = {found["id"]}, [found["id"]]
        while frontier:
            parent = frontier.pop()
            for child in self.children(parent):
                if child["id"] not in doomed:
                    doomed.add(child["id"])
                    frontier.append(child["id"])
        for file_id in doomed:
            del self.files[file_id]
        self.changed()
        return web.Response(status=204)

    async def _permissions(self, request: web.Request) -> web.Response:
        found = self._file(request.match_info["id"])
        if isinstance(found, web.Response):
            return found
        return web.json_response({"permissions": found["permissions"]})

    async def _share(self, request: web.Request) -> web.Response:
        found = self._file(request.match_info["id"])
        if isinstance(found, web.Response):
            return found
        body = await _json(request)
        kind, role = body.get("type"), body.get("role")
        if kind not in ("user", "group", "domain", "anyone") or role not in (
            "reader",
            "commenter",
            "writer",
            "owner",
        ):
            return google_error(400, "Invalid permission type or role.")
        target = body.get("domain") if kind == "domain" else body.get("emailAddress")
        if kind != "anyone" and not target:
            return google_error(400, "The permission's emailAddress or domain is required.")
        permission = {"kind": "drive#permission", "id": _new_id(), **body}
        found["permissions"].append(permission)
        self.changed()
        return web.json_response(permission)

    async def _unshare(self, request: web.Request) -> web.Response:
        found = self._file(request.match_info["id"])
        if isinstance(found, web.Response):
            return found
        pid = request.match_info["pid"]
        kept = [p for p in found["permissions"] if p["id"] != pid]
        if len(kept) == len(found["permissions"]):
            return google_error(404, f"Permission not found: {pid}.")
        found["permissions"] = kept
        self.changed()
        return web.Response(status=204)

    # -- helpers -----------------------------------------------------------------------------
    def _file(self, file_id: str) -> dict[str, Any] | web.Response:
        found = self.files.get(file_id)
        if found is None:
            return google_error(404, f"File not found: {file_id}.")
        return found

    def _store(self, metadata: dict[str, Any], content: bytes) -> web.Response:
        if not metadata.get("name"):
            return google_error(400, "A file name is required.")
        parents = metadata.get("parents") or []
        for parent in parents:
            folder = self.files.get(parent)
            if folder is None or folder["mimeType"] != FOLDER_MIME:
                return google_error(404, f"File not found: {parent}.")
        mime = str(metadata.get("mimeType") or "application/octet-stream")
        record = _new_file(_new_id(), str(metadata["name"]), mime, list(parents))
        record["webViewLink"] = self.web_link(record)
        record["content"] = base64.b64encode(content).decode()
        record["size"] = str(len(content))
        self.files[record["id"]] = record
        self.changed()
        return web.json_response(self._public(record))

    def _public(self, record: dict[str, Any]) -> dict[str, Any]:
        shown = {k: record[k] for k in _PUBLIC if k in record}
        return {"kind": "drive#file", **shown, "webViewLink": self.web_link(record)}


def _multipart(content_type: str, raw: bytes) -> list[bytes]:
    """The parts of a multipart/related body. The email parser, because the base middleware
    has already consumed the stream that aiohttp's multipart reader would read."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    if not message.is_multipart():
        return []
    payloads = (part.get_payload(decode=True) for part in message.iter_parts())
    return [p if isinstance(p, bytes) else b"" for p in payloads]


def _new_id() -> str:
    return "1" + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")


def _new_file(file_id: str, name: str, mime: str, parents: list[str]) -> dict[str, Any]:
    """A file record without its web link (the stand-in's `web_link` says where it opens)."""
    return {
        "id": file_id,
        "name": name,
        "mimeType": mime,
        "parents": parents,
        "createdTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "permissions": [],
    }


def _matches(record: dict[str, Any], query: str) -> bool:
    """The one query form the sandbox page needs: `'<folder id>' in parents`."""
    if " in parents" not in query:
        return True
    folder = query.split(" in parents")[0].strip().strip("'")
    return folder in record.get("parents", [])


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
