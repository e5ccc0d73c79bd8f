"""Notion executor on notion-client 3.x (async, API 2025-09-03: pages live in data sources).

Operations: create_task (duplicate check first), update_task, add_comment. Every HTTP request
waits on the platform throttle (an httpx transport wrapper), the SDK's own retries are off (the
queue is the one retry layer) and every request has a timeout. Property values may be given in
Notion's request shape or as plain values; see `executors.notion_values`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import httpx
from notion_client import AsyncClient
from notion_client.errors import APIResponseError, HTTPResponseError, RequestTimeoutError

from bot.config import Settings
from executors.base import (
    JSON,
    AuthError,
    CheckResult,
    ExecutorError,
    NotReversible,
    Operation,
    PermanentError,
    PlatformDisabled,
    RateLimited,
    RetryableError,
    Throttle,
    answered_by,
    require,
)
from executors.http_errors import connection_error, error_for_status, parse_retry_after
from executors.notion_values import KEY_PROPERTY, Source, properties_for, restorable

PLATFORM = "notion"
DEFAULT_TIMEOUT = 10.0  # seconds (seed: config/executors.json, notion.timeout)
_AUTH_CODES = {"unauthorized", "restricted_resource"}
_RETRY_CODES = {"internal_server_error", "service_unavailable", "gateway_timeout", "conflict_error"}
_OPEN_EXCLUDED = {"done", "complete", "completed", "archived", "cancelled"}
_UPDATABLE = ("properties", "title", "status", "assignees", "due", "due_date", "priority")
T = TypeVar("T")


class _Throttled(httpx.AsyncBaseTransport):
    """Every request waits on the throttle and reports its answer (or failure) back to it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, throttle: Throttle) -> None:
        self._inner, self._throttle = inner, throttle

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answered = await self._throttle()
        try:
            return await self._inner.handle_async_request(request)
        finally:
            answered_by(answered)

    async def aclose(self) -> None:
        await self._inner.aclose()


class NotionExecutor:
    platform = PLATFORM
    keyed_operations = frozenset({"create_task"})  # duplicate check on the action's key

    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        throttle: Throttle,
        database_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._throttle = throttle
        self._timeout = timeout
        self._database_id = database_id
        self._sources: dict[str, Source] = {}  # data source id -> schema
        self._by_database: dict[str, str] = {}  # database id -> data source id
        self._bot_id: str | None = None  # this integration's user, the author of its pages
        # One schema lookup at a time: concurrent first actions would each fetch the same
        # database and data source (requests that count against Notion's 3/s).
        self._schema_lock = asyncio.Lock()
        http = httpx.AsyncClient(transport=_Throttled(httpx.AsyncHTTPTransport(), throttle))
        self._client = AsyncClient(
            client=http,
            auth=token,
            base_url=base_url.rstrip("/"),
            timeout_ms=int(timeout * 1000),
            retry=False,
            logger=logging.getLogger("opsbot.notion_client"),
        )

    @property
    def operations(self) -> Mapping[str, Operation]:
        return {
            "create_task": self.create_task,
            "update_task": self.update_task,
            "add_comment": self.add_comment,
        }

    def reversible(self, action_type: str) -> bool:
        return action_type in self.operations

    # -- operations -------------------------------------------------------------------------
    async def create_task(self, data: JSON) -> JSON:
        require(data, "title", platform=PLATFORM)
        database_id = data.get("database_id") or self._database_id
        if not database_id:
            raise PermanentError(
                "missing parameter(s): database_id (NOTION_DATABASE_ID is not set)",
                platform=PLATFORM,
                status=400,
            )
        title, key = str(data["title"]), data.get("idempotency_key")
        source = await self._source_of_database(str(database_id))
        existing = await self._find_duplicate(source, title, key)
        if existing is not None:
            matched = "idempotency_key" if key and _key_of(existing) == key else "title"
            return {**_page_result(existing), "duplicate": True, "matched": matched}
        properties = properties_for(source, {**data, "title": title})
        if KEY_PROPERTY in source.types:
            # Also marks the page as opsbot's, which the same-title duplicate check relies on.
            marker = str(key) if key else "opsbot"
            properties[KEY_PROPERTY] = {"rich_text": [{"text": {"content": marker}}]}
        body: JSON = {"parent": {"data_source_id": source.id}, "properties": properties}
        if data.get("description"):
            body["children"] = [_paragraph(str(data["description"]))]
        try:
            page = await self._sdk(self._client.pages.create(**body))
        except PermanentError:
            self._sources.pop(source.id, None)  # the schema may have changed: read it again
            raise
        return {**_page_result(page), "data_source_id": source.id, "duplicate": False}

    async def update_task(self, data: JSON) -> JSON:
        require(data, "page_id", platform=PLATFORM)
        if not any(data.get(name) not in (None, "", {}) for name in _UPDATABLE):
            raise PermanentError(
                f"update_task: nothing to change; give one of {', '.join(_UPDATABLE)}",
                platform=PLATFORM,
                status=400,
            )
        page = await self._sdk(self._client.pages.retrieve(page_id=str(data["page_id"])))
        source = await self._source_of_page(page)
        properties = properties_for(source, data)
        # Recorded before the change: the compensation restores exactly these values.
        previous = {name: restorable(page["properties"].get(name)) for name in properties}
        updated = await self._sdk(
            self._client.pages.update(page_id=page["id"], properties=properties)
        )
        return {**_page_result(updated), "previous": previous, "changed": sorted(properties)}

    async def add_comment(self, data: JSON) -> JSON:
        require(data, "page_id", "text", platform=PLATFORM)
        comment = await self._sdk(
            self._client.comments.create(
                parent={"page_id": str(data["page_id"])},
                rich_text=[{"type": "text", "text": {"content": str(data["text"])}}],
            )
        )
        return {
            "id": comment["id"],
            "page_id": str(data["page_id"]),
            "discussion_id": comment.get("discussion_id"),
        }

    async def compensate(self, action_type: str, data: JSON, result: JSON) -> JSON:
        if action_type == "create_task":
            if result.get("matched") == "title":
                # The page existed before this action (another action's task): leave it.
                return {"skipped": result["id"], "reason": "page was not created by this action"}
            await self._sdk(self._client.pages.update(page_id=result["id"], in_trash=True))
            return {"archived": result["id"]}
        if action_type == "update_task":
            await self._sdk(
                self._client.pages.update(page_id=result["id"], properties=result["previous"])
            )
            return {"restored": result["id"], "properties": sorted(result["previous"])}
        if action_type == "add_comment":
            await self._sdk(self._client.comments.delete(comment_id=result["id"]))
            return {"deleted_comment": result["id"]}
        raise NotReversible(f"notion: {action_type} cannot be undone", platform=PLATFORM)

    async def check(self) -> CheckResult:
        started = time.perf_counter()
        try:
            me = await self._sdk(self._client.users.me())
        except ExecutorError as exc:
            return CheckResult(PLATFORM, False, f"{exc.kind}: {exc.message}")
        latency = (time.perf_counter() - started) * 1000
        return CheckResult(PLATFORM, True, f"authenticated as {me.get('name', me['id'])}", latency)

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- helpers ----------------------------------------------------------------------------
    async def _source_of_database(self, database_id: str) -> Source:
        async with self._schema_lock:
            if database_id not in self._by_database:
                retrieve = self._client.databases.retrieve(database_id=database_id)
                sources = (await self._sdk(retrieve)).get("data_sources") or []
                if not sources:
                    raise PermanentError(
                        f"notion: database {database_id} has no data source", platform=PLATFORM
                    )
                self._by_database[database_id] = sources[0]["id"]
        return await self._source(self._by_database[database_id])

    async def _source_of_page(self, page: JSON) -> Source:
        parent = page.get("parent") or {}
        if parent.get("data_source_id"):
            return await self._source(parent["data_source_id"])
        if parent.get("database_id"):
            return await self._source_of_database(parent["database_id"])
        raise PermanentError(f"notion: page {page['id']} is not in a database", platform=PLATFORM)

    async def _source(self, data_source_id: str) -> Source:
        async with self._schema_lock:
            if data_source_id not in self._sources:
                retrieve = self._client.data_sources.retrieve(data_source_id=data_source_id)
                raw = await self._sdk(retrieve)
                self._sources[data_source_id] = Source.from_schema(raw["id"], raw["properties"])
            return self._sources[data_source_id]

    async def _find_duplicate(self, source: Source, title: str, key: Any) -> JSON | None:
        """An open page with the same idempotency key, or the same title created by opsbot
        (marked in the Opsbot Key property, or else created by this integration's bot user)."""
        same_title: JSON = {"property": source.title, "title": {"equals": title}}
        author: str | None = None
        if KEY_PROPERTY in source.types:
            by_opsbot = {"property": KEY_PROPERTY, "rich_text": {"is_not_empty": True}}
            conditions: list[JSON] = [{"and": [same_title, by_opsbot]}]
            if key:
                conditions.append({"property": KEY_PROPERTY, "rich_text": {"equals": str(key)}})
            query: JSON = {"or": conditions}
        else:
            query, author = same_title, await self._bot_user()
        found = await self._sdk(
            self._client.data_sources.query(data_source_id=source.id, filter=query, page_size=10)
        )
        for page in found.get("results", []):
            mine = author is None or (page.get("created_by") or {}).get("id") == author
            if mine and not page.get("in_trash") and not _is_closed(page, source):
                return dict(page)
        return None

    async def _bot_user(self) -> str:
        if self._bot_id is None:
            me = await self._sdk(self._client.users.me())
            self._bot_id = str(me["id"])
        return self._bot_id

    async def _sdk(self, call: Awaitable[T]) -> T:
        """Await one SDK call, translating its exceptions into the shared error tree."""
        try:
            return await call
        except APIResponseError as exc:
            raise _api_error(exc) from None
        except HTTPResponseError as exc:
            raise error_for_status(exc.status, "", platform=PLATFORM, headers=exc.headers) from None
        except RequestTimeoutError:
            message = f"notion: no answer within {self._timeout:g} s"
            raise RetryableError(message, platform=PLATFORM) from None
        except httpx.TransportError as exc:
            raise connection_error(PLATFORM, exc) from None


def _api_error(exc: APIResponseError) -> ExecutorError:
    code = getattr(exc.code, "value", exc.code)
    message = f"notion: {code}: {exc}"
    if code == "rate_limited":
        retry_after = parse_retry_after(exc.headers.get("retry-after"))
        return RateLimited(message, platform=PLATFORM, status=exc.status, retry_after=retry_after)
    if code in _AUTH_CODES:
        return AuthError(message, platform=PLATFORM, status=exc.status)
    if code in _RETRY_CODES:
        return RetryableError(message, platform=PLATFORM, status=exc.status)
    return PermanentError(message, platform=PLATFORM, status=exc.status)


def _page_result(page: JSON) -> JSON:
    return {"id": page["id"], "url": page.get("url", "")}


def _key_of(page: JSON) -> str:
    value = page.get("properties", {}).get(KEY_PROPERTY) or {}
    return "".join(part.get("plain_text", "") for part in value.get("rich_text") or [])


def _is_closed(page: JSON, source: Source) -> bool:
    if source.status is None:
        return False
    value = page.get("properties", {}).get(source.status) or {}
    state = value.get(value.get("type", "")) or {}
    return str(state.get("name", "")).lower() in _OPEN_EXCLUDED


def _paragraph(text: str) -> JSON:
    rich = [{"type": "text", "text": {"content": text[:2000]}}]
    return {"object": "block", "type": "paragraph", "paragraph": {"rich_text": rich}}


def build(settings: Settings, throttle: Throttle) -> NotionExecutor:
    if settings.notion_api_key is None or not settings.notion_api_key.get_secret_value():
        raise PlatformDisabled("NOTION_API_KEY is not set", platform=PLATFORM)
    return NotionExecutor(
        token=settings.notion_api_key.get_secret_value(),
        base_url=settings.notion_api_url,
        throttle=throttle,
        database_id=settings.notion_database_id,
    )
