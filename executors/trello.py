"""Trello executor on py-trello (sync), run in a small thread pool so the event loop never blocks.

py-trello hard-codes https://api.trello.com/1/ and sends requests without a timeout: its
`http_service` is a requests.Session with our adapter (executors.trello_transport), which
throttles, redirects, time-boxes and classifies every request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from trello import Board, Card, Label, List, TrelloClient

from bot.config import Settings
from executors.base import (
    JSON,
    CheckResult,
    ExecutorError,
    NotReversible,
    Operation,
    PermanentError,
    PlatformDisabled,
    Throttle,
    blocking_throttle,
    require,
    run_blocking,
)
from executors.http_errors import connection_error, timeout_error
from executors.trello_transport import PRODUCTION, TrelloAdapter

PLATFORM = "trello"
DEFAULT_TIMEOUT = 8.0  # seconds (seed: config/executors.json, trello.timeout)
_CARD_FIELDS = {"name": "name", "desc": "desc", "description": "desc", "due": "due",
                "due_complete": "dueComplete", "pos": "pos", "list_id": "idList"}  # fmt: skip
T = TypeVar("T")


class TrelloExecutor:
    platform = PLATFORM

    def __init__(
        self,
        *,
        api_key: str,
        token: str,
        base_url: str,
        throttle: Throttle,
        board_id: str | None = None,
        default_list_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        threads: int = 4,
    ) -> None:
        self._throttle, self._timeout = throttle, timeout
        self._board_id, self._default_list = board_id, default_list_id
        self._adapter = TrelloAdapter(base_url, timeout)
        session = requests.Session()
        session.mount(PRODUCTION, self._adapter)
        if urlsplit(base_url).hostname in ("127.0.0.1", "localhost"):
            session.trust_env = False  # a proxy from the environment must not catch local calls
        self._session = session
        # Key and token travel as query parameters (Trello's REST auth), hence api_secret=token.
        self._client = TrelloClient(api_key=api_key, api_secret=token, http_service=session)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="trello")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._labels: dict[str, dict[str, str]] = {}  # board id -> lower-cased name -> label id

    @property
    def operations(self) -> Mapping[str, Operation]:
        return {
            "create_card": self.create_card,
            "move_card": self.move_card,
            "add_label": self.add_label,
            "update_card": self.update_card,
            "attach_file": self.attach_file,
            "archive_card": self.archive_card,
        }

    def reversible(self, action_type: str) -> bool:
        return action_type in self.operations

    # -- operations (validated on the loop, run in a thread) ----------------------------------
    async def create_card(self, data: JSON) -> JSON:
        require(data, "name", platform=PLATFORM)
        list_id = data.get("list_id") or data.get("listId") or self._default_list
        if not list_id:
            raise PermanentError(
                "missing parameter(s): list_id (TRELLO_DEFAULT_LIST_ID is not set)",
                platform=PLATFORM,
                status=400,
            )
        return await self._run(self._create_card, data, str(list_id))

    async def move_card(self, data: JSON) -> JSON:
        require(data, "card_id", "list_id", platform=PLATFORM)
        return await self._run(self._move, str(data["card_id"]), str(data["list_id"]))

    async def add_label(self, data: JSON) -> JSON:
        require(data, "card_id", "label", platform=PLATFORM)
        return await self._run(self._add_label, str(data["card_id"]), str(data["label"]))

    async def update_card(self, data: JSON) -> JSON:
        require(data, "card_id", platform=PLATFORM)
        fields = {_CARD_FIELDS[k]: v for k, v in data.items() if k in _CARD_FIELDS}
        if not fields:
            raise PermanentError(
                f"update_card: nothing to change; give one of {', '.join(sorted(_CARD_FIELDS))}",
                platform=PLATFORM,
                status=400,
            )
        return await self._run(self._update, str(data["card_id"]), fields)

    async def attach_file(self, data: JSON) -> JSON:
        require(data, "card_id", "url", platform=PLATFORM)
        return await self._run(self._attach, data)

    async def archive_card(self, data: JSON) -> JSON:
        require(data, "card_id", platform=PLATFORM)
        return await self._run(self._archive, str(data["card_id"]))

    async def compensate(self, action_type: str, data: JSON, result: JSON) -> JSON:
        undo = {
            "create_card": self._undo_create,
            "move_card": self._undo_move,
            "add_label": self._undo_label,
            "update_card": self._undo_update,
            "attach_file": self._undo_attach,
            "archive_card": self._undo_archive,
        }.get(action_type)
        if undo is None:
            raise NotReversible(f"trello: {action_type} cannot be undone", platform=PLATFORM)
        return await self._run(undo, result)

    async def check(self) -> CheckResult:
        started = time.perf_counter()
        try:
            me = await self._run(self._client.fetch_json, "/members/me")
        except ExecutorError as exc:
            return CheckResult(PLATFORM, False, f"{exc.kind}: {exc.message}")
        latency = (time.perf_counter() - started) * 1000
        return CheckResult(PLATFORM, True, f"authenticated as {me.get('username')}", latency)

    async def aclose(self) -> None:
        # The worker pool has drained by now; a call abandoned by a timeout is not waited for.
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # the adapter's threads hand throttle waits to this loop
            self._loop, self._adapter.wait = loop, blocking_throttle(self._throttle, loop)
        try:
            return await run_blocking(self._pool, partial(fn, *args))
        except requests.Timeout:
            raise timeout_error(PLATFORM, self._timeout) from None
        except requests.RequestException as exc:
            raise connection_error(PLATFORM, exc) from None

    # -- sync bodies (worker threads) -------------------------------------------------------
    def _card(self, card_id: str) -> Card:
        return Card(Board(client=self._client), card_id)

    def _get(self, card_id: str) -> JSON:
        card: JSON = self._client.fetch_json(f"/cards/{card_id}")
        return card

    def _create_card(self, data: JSON, list_id: str) -> JSON:
        labels = _names(data.get("labels"))
        board_id = data.get("board_id") or self._board_id
        if labels and not board_id:
            board_id = self._client.fetch_json(f"/lists/{list_id}")["idBoard"]
        board = Board(client=self._client, board_id=board_id)
        label_objs = [self._label(board, name) for name in labels]
        card = List(board, list_id).add_card(
            str(data["name"]),
            desc=data.get("desc") or data.get("description"),
            labels=label_objs,
            due=str(data.get("due") or "null"),
        )
        return {"id": card.id, "url": card.url, "list_id": list_id, "board_id": card.idBoard,
                "label_ids": [label.id for label in label_objs]}  # fmt: skip

    def _move(self, card_id: str, list_id: str) -> JSON:
        before = self._get(card_id)
        self._card(card_id).change_list(list_id)
        return {"id": card_id, "url": before["url"], "list_id": list_id,
                "previous_list_id": before["idList"]}  # fmt: skip

    def _add_label(self, card_id: str, name: str) -> JSON:
        before = self._get(card_id)
        label = self._label(Board(client=self._client, board_id=before["idBoard"]), name)
        present = label.id in before["idLabels"]
        if not present:
            self._card(card_id).add_label(label)
        return {"id": card_id, "url": before["url"], "label_id": label.id,
                "already_present": present}  # fmt: skip

    def _update(self, card_id: str, fields: JSON) -> JSON:
        before = self._get(card_id)
        # Recorded before the change: the compensation writes exactly these values back.
        previous = {field: before.get(field) for field in fields}
        self._client.fetch_json(f"/cards/{card_id}", http_method="PUT", post_args=fields)
        return {"id": card_id, "url": before["url"], "previous": previous}

    def _attach(self, data: JSON) -> JSON:
        card_id = str(data["card_id"])
        attachment = self._card(card_id).attach(
            name=data.get("name"), mimeType=data.get("mime_type"), url=str(data["url"])
        )
        return {"id": card_id, "attachment_id": attachment["id"],
                "attachment_url": attachment.get("url")}  # fmt: skip

    def _archive(self, card_id: str) -> JSON:
        before = self._get(card_id)
        self._card(card_id).set_closed(True)
        return {"id": card_id, "url": before["url"], "was_closed": bool(before["closed"])}

    def _label(self, board: Board, name: str) -> Label:
        """A board label by id or name (case-insensitive); created when the board lacks it."""
        known = self._labels.get(board.id)
        if known is None or (name not in known.values() and name.lower() not in known):
            known = {label.name.lower(): label.id for label in board.get_labels()}
            self._labels[board.id] = known
        if name in known.values():
            return Label(self._client, name, name)
        if name.lower() in known:
            return Label(self._client, known[name.lower()], name)
        created: Label = board.add_label(name, None)
        known[name.lower()] = created.id
        return created

    def _undo_create(self, result: JSON) -> JSON:
        self._card(result["id"]).delete()
        return {"deleted_card": result["id"]}

    def _undo_move(self, result: JSON) -> JSON:
        self._card(result["id"]).change_list(result["previous_list_id"])
        return {"moved_back": result["id"], "list_id": result["previous_list_id"]}

    def _undo_label(self, result: JSON) -> JSON:
        if not result["already_present"]:
            label = Label(self._client, result["label_id"], "")
            self._card(result["id"]).remove_label(label)
        return {"label_removed": not result["already_present"], "id": result["id"]}

    def _undo_update(self, result: JSON) -> JSON:
        previous = {
            k: ("null" if k == "due" and v is None else v) for k, v in result["previous"].items()
        }
        self._client.fetch_json(f"/cards/{result['id']}", http_method="PUT", post_args=previous)
        return {"restored": result["id"], "fields": sorted(previous)}

    def _undo_attach(self, result: JSON) -> JSON:
        self._card(result["id"]).remove_attachment(result["attachment_id"])
        return {"deleted_attachment": result["attachment_id"]}

    def _undo_archive(self, result: JSON) -> JSON:
        if not result["was_closed"]:
            self._card(result["id"]).set_closed(False)
        return {"reopened": not result["was_closed"], "id": result["id"]}


def _names(labels: Any) -> list[str]:
    if not labels:
        return []
    items = labels.split(",") if isinstance(labels, str) else labels
    return [str(item).strip() for item in items if str(item).strip()]


def build(settings: Settings, throttle: Throttle) -> TrelloExecutor:
    key, token = settings.trello_api_key, settings.trello_token
    if key is None or token is None or not key.get_secret_value() or not token.get_secret_value():
        missing = [
            name
            for name, value in (("TRELLO_API_KEY", key), ("TRELLO_TOKEN", token))
            if value is None or not value.get_secret_value()
        ]
        verb = "is" if len(missing) == 1 else "are"
        raise PlatformDisabled(f"{' and '.join(missing)} {verb} not set", platform=PLATFORM)
    return TrelloExecutor(
        api_key=key.get_secret_value(),
        token=token.get_secret_value(),
        base_url=settings.trello_api_url,
        throttle=throttle,
        board_id=settings.trello_board_id,
        default_list_id=settings.trello_default_list_id,
    )
