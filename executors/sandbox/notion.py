"""Notion API stand-in (version 2025-09-03 shapes): users/me, databases -> data sources, query,
pages, comments. Bearer-token auth; errors as {"object": "error", "status", "code", "message"}.

The seeded database (DATABASE_ID) has one data source with Name (title), Status (status),
Assignee (people), Due (date), Priority (select) and Opsbot Key (rich_text) properties.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from executors.sandbox.standin import StandIn, retry_headers

TOKEN = "secret_sandbox_notion"
DATABASE_ID = "5b1f6a3e-9c1d-4f00-8a11-0000000000db"
DATA_SOURCE_ID = "5b1f6a3e-9c1d-4f00-8a11-0000000000d5"
BOT_USER_ID = "5b1f6a3e-9c1d-4f00-8a11-00000000b07a"
PERSON_ID = "5b1f6a3e-9c1d-4f00-8a11-0000000ae501"  # the author of pages seeded by add_page

_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "restricted_resource",
    404: "object_not_found",
    409: "conflict_error",
    429: "rate_limited",
    500: "internal_server_error",
    503: "service_unavailable",
    504: "gateway_timeout",
}

SCHEMA: dict[str, dict[str, Any]] = {
    "Name": {"id": "title", "type": "title", "title": {}},
    "Status": {
        "id": "st",
        "type": "status",
        "status": {"options": [{"name": n} for n in ("To Do", "In Progress", "Done")]},
    },
    "Assignee": {"id": "as", "type": "people", "people": {}},
    "Due": {"id": "du", "type": "date", "date": {}},
    "Priority": {"id": "pr", "type": "select", "select": {"options": []}},
    "Opsbot Key": {"id": "ok", "type": "rich_text", "rich_text": {}},
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plain_text(value: dict[str, Any]) -> str:
    """The text of a title / rich_text property value (request or stored shape)."""
    kind = value.get("type") or ("title" if "title" in value else "rich_text")
    parts = value.get(kind) or []
    return "".join(p.get("plain_text") or p.get("text", {}).get("content", "") for p in parts)


class NotionError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class NotionStandIn(StandIn):
    name = "notion"
    public_prefixes = ("/p/",)

    def initial_state(self) -> dict[str, Any]:
        return {
            "databases": {DATABASE_ID: {"title": "Opsbot tasks", "data_sources": [DATA_SOURCE_ID]}},
            "data_sources": {
                DATA_SOURCE_ID: {"database_id": DATABASE_ID, "properties": copy.deepcopy(SCHEMA)}
            },
            "pages": {},
            "comments": {},
        }

    def authorize(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    def error_response(
        self, status: int, message: str, retry_after: float | None = None
    ) -> web.StreamResponse:
        code = _CODES.get(status, "internal_server_error" if status >= 500 else "invalid_request")
        body = {"object": "error", "status": status, "code": code, "message": message}
        return web.json_response(body, status=status, headers=retry_headers(retry_after))

    def routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("GET", "/v1/users/me", self._wrap(self._me))
        add("GET", "/v1/databases/{id}", self._wrap(self._database))
        add("GET", "/v1/data_sources/{id}", self._wrap(self._data_source))
        add("POST", "/v1/data_sources/{id}/query", self._wrap(self._query))
        add("POST", "/v1/pages", self._wrap(self._create_page))
        add("GET", "/v1/pages/{id}", self._wrap(self._get_page))
        add("PATCH", "/v1/pages/{id}", self._wrap(self._update_page))
        add("POST", "/v1/comments", self._wrap(self._create_comment))
        add("GET", "/v1/comments", self._wrap(self._list_comments))
        add("DELETE", "/v1/comments/{id}", self._wrap(self._delete_comment))
        add("GET", "/p/{hex}", self._wrap(self._web_page))

    # -- helpers for tests and the sandbox page ------------------------------------------------
    def pages(self, *, include_archived: bool = False) -> list[dict[str, Any]]:
        pages = self.state["pages"].values()
        return [p for p in pages if include_archived or not p["in_trash"]]

    def add_page(self, title: str, **properties: dict[str, Any]) -> dict[str, Any]:
        """Seed a page directly (no request), with property values in request shape."""
        props = {"Name": {"title": [{"text": {"content": title}}]}, **properties}
        return self._new_page(DATA_SOURCE_ID, props, author=PERSON_ID)

    # -- handlers ---------------------------------------------------------------------------
    def _wrap(self, handler: Any) -> Any:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return web.json_response(await handler(request))
            except NotionError as exc:
                return self.error_response(exc.status, exc.message)

        return run

    async def _me(self, request: web.Request) -> dict[str, Any]:
        return {"object": "user", "id": BOT_USER_ID, "type": "bot", "name": "opsbot", "bot": {}}

    async def _database(self, request: web.Request) -> dict[str, Any]:
        db_id = request.match_info["id"]
        db = self._find("databases", db_id)
        sources = [{"id": ds, "name": db["title"]} for ds in db["data_sources"]]
        title = [{"type": "text", "plain_text": db["title"], "text": {"content": db["title"]}}]
        return {"object": "database", "id": db_id, "title": title, "data_sources": sources}

    async def _data_source(self, request: web.Request) -> dict[str, Any]:
        ds_id = request.match_info["id"]
        source = self._find("data_sources", ds_id)
        return {"object": "data_source", "id": ds_id, "properties": source["properties"]}

    async def _query(self, request: web.Request) -> dict[str, Any]:
        ds_id = request.match_info["id"]
        self._find("data_sources", ds_id)
        body = await request.json() if request.body_exists else {}
        condition = body.get("filter")
        results = [
            page
            for page in self.pages()
            if page["parent"].get("data_source_id") == ds_id
            and (condition is None or _matches(page, condition))
        ]
        return {"object": "list", "results": results, "has_more": False, "next_cursor": None}

    async def _create_page(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        parent = body.get("parent") or {}
        ds_id = parent.get("data_source_id")
        if ds_id is None and parent.get("database_id"):
            ds_id = self._find("databases", parent["database_id"])["data_sources"][0]
        if ds_id is None:
            raise NotionError(400, "body.parent should be a data_source_id or database_id")
        self._find("data_sources", ds_id)
        page = self._new_page(ds_id, body.get("properties") or {})
        self.changed()
        return page

    async def _get_page(self, request: web.Request) -> dict[str, Any]:
        return dict(self._find("pages", request.match_info["id"]))

    async def _update_page(self, request: web.Request) -> dict[str, Any]:
        page = self._find("pages", request.match_info["id"])
        body = await request.json()
        schema = self.state["data_sources"][page["parent"]["data_source_id"]]["properties"]
        page["properties"].update(_properties(schema, body.get("properties") or {}))
        for flag in ("archived", "in_trash"):
            if flag in body:
                page["archived"] = page["in_trash"] = bool(body[flag])
        page["last_edited_time"] = _now()
        self.changed()
        return dict(page)

    async def _create_comment(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        page_id = (body.get("parent") or {}).get("page_id", "")
        self._find("pages", page_id)
        if not body.get("rich_text"):
            raise NotionError(400, "body.rich_text should be defined")
        comment = {
            "object": "comment",
            "id": str(uuid.uuid4()),
            "parent": {"type": "page_id", "page_id": page_id},
            "discussion_id": str(uuid.uuid4()),
            "created_time": _now(),
            "rich_text": _rich_text(body["rich_text"]),
        }
        self.state["comments"][comment["id"]] = comment
        self.changed()
        return comment

    async def _list_comments(self, request: web.Request) -> dict[str, Any]:
        block = request.query.get("block_id")
        found = [c for c in self.state["comments"].values() if c["parent"]["page_id"] == block]
        return {"object": "list", "results": found, "has_more": False, "next_cursor": None}

    async def _delete_comment(self, request: web.Request) -> dict[str, Any]:
        comment = self._find("comments", request.match_info["id"])
        del self.state["comments"][comment["id"]]
        self.changed()
        return comment

    async def _web_page(self, request: web.Request) -> dict[str, Any]:
        """A page's `url`: its JSON, so links from results open in the sandbox."""
        wanted = request.match_info["hex"]
        page = next(
            (p for p in self.pages(include_archived=True) if p["url"].endswith(wanted)), None
        )
        if page is None:
            raise NotionError(404, f"Could not find page {wanted}.")
        return dict(page)

    def _find(self, kind: str, object_id: str) -> dict[str, Any]:
        found: dict[str, Any] | None = self.state[kind].get(object_id)
        if found is None:
            raise NotionError(404, f"Could not find {kind[:-1]} with ID: {object_id}.")
        return found

    def _new_page(
        self, ds_id: str, properties: dict[str, Any], author: str = BOT_USER_ID
    ) -> dict[str, Any]:
        schema = self.state["data_sources"][ds_id]["properties"]
        page_id = str(uuid.uuid4())
        stamp = _now()
        values = {name: _empty(spec) for name, spec in schema.items()}
        values.update(_properties(schema, properties))
        page = {
            "object": "page",
            "id": page_id,
            "created_time": stamp,
            "created_by": {"object": "user", "id": author},
            "last_edited_time": stamp,
            "parent": {"type": "data_source_id", "data_source_id": ds_id},
            "archived": False,
            "in_trash": False,
            "properties": values,
            "url": f"{self.base_url}/p/{page_id.replace('-', '')}",
        }
        self.state["pages"][page_id] = page
        return page


def _empty(spec: dict[str, Any]) -> dict[str, Any]:
    kind = spec["type"]
    blank: Any = [] if kind in ("title", "rich_text", "people") else None
    return {"id": spec["id"], "type": kind, kind: blank}


def _properties(schema: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Validate request-shaped property values against the schema; return stored shapes."""
    stored = {}
    for name, value in given.items():
        spec = schema.get(name)
        if spec is None:
            raise NotionError(400, f"{name} is not a property that exists.")
        kind = spec["type"]
        if not isinstance(value, dict) or kind not in value:
            raise NotionError(400, f"body.properties.{name}.{kind} should be defined")
        inner = value[kind]
        if kind in ("title", "rich_text"):
            inner = _rich_text(inner)
        stored[name] = {"id": spec["id"], "type": kind, kind: inner}
    return stored


def _rich_text(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for part in parts:
        content = part.get("plain_text") or part.get("text", {}).get("content", "")
        out.append({"type": "text", "text": {"content": content}, "plain_text": content})
    return out


def _matches(page: dict[str, Any], condition: dict[str, Any]) -> bool:
    """The subset of Notion filters opsbot uses: and/or, equals/does_not_equal/is_not_empty."""
    if "and" in condition:
        return all(_matches(page, c) for c in condition["and"])
    if "or" in condition:
        return any(_matches(page, c) for c in condition["or"])
    value = page["properties"].get(condition.get("property", ""))
    if value is None:
        raise NotionError(400, f"Could not find property with name or id: {condition}")
    kind = value["type"]
    test = condition.get(kind) or {}
    actual: Any = plain_text(value) if kind in ("title", "rich_text") else value[kind]
    if isinstance(actual, dict):
        actual = actual.get("name")
    if "equals" in test:
        return bool(actual == test["equals"])
    if "does_not_equal" in test:
        return bool(actual != test["does_not_equal"])
    if "is_not_empty" in test:
        return bool(actual)
    raise NotionError(400, f"unsupported filter: {condition}")
