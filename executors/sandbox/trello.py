"""Trello REST API stand-in (/1/...): members/me, boards, lists, labels, cards, attachments.

Auth is Trello's `key` and `token` query parameters. Errors are plain text as Trello sends them,
except 429, which Trello answers in JSON. Cards carry every field py-trello's Card.from_json
reads. The seeded board has lists To Do (the default list), Doing, Done and Bugs, and labels
bug, urgent, feature and invoice.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from executors.sandbox.standin import StandIn, retry_headers

API_KEY = "sandbox-trello-key"
TOKEN = "sandbox-trello-token"
BOARD_ID = "5f0000000000000000b0a4d1"
LIST_IDS = {
    "To Do": "5f00000000000000000115a1",
    "Doing": "5f00000000000000000115a2",
    "Done": "5f00000000000000000115a3",
    "Bugs": "5f00000000000000000115a4",
}
DEFAULT_LIST_ID = LIST_IDS["To Do"]
_LABELS = {"bug": "red", "urgent": "orange", "feature": "green", "invoice": "blue"}
_CARD_FIELDS = {"name", "desc", "due", "dueComplete", "idList", "closed", "pos", "start"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TrelloError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class TrelloStandIn(StandIn):
    name = "trello"
    public_prefixes = ("/c/",)

    def initial_state(self) -> dict[str, Any]:
        lists = {
            list_id: {"id": list_id, "name": name, "idBoard": BOARD_ID, "closed": False, "pos": i}
            for i, (name, list_id) in enumerate(LIST_IDS.items())
        }
        labels = {}
        for i, (name, color) in enumerate(_LABELS.items()):
            label_id = f"5f00000000000000001abe1{i}"
            labels[label_id] = {"id": label_id, "idBoard": BOARD_ID, "name": name, "color": color}
        board = {"id": BOARD_ID, "name": "Opsbot board", "closed": False}
        return {
            "boards": {BOARD_ID: board},
            "lists": lists,
            "labels": labels,
            "cards": {},
            "attachments": {},
            "seq": 0,
        }

    def authorize(self, request: web.Request) -> bool:
        return request.query.get("key") == API_KEY and request.query.get("token") == TOKEN

    def error_response(
        self, status: int, message: str, retry_after: float | None = None
    ) -> web.StreamResponse:
        headers = retry_headers(retry_after)
        if status == 429:
            body = {"error": "API_TOKEN_LIMIT_EXCEEDED", "message": message}
            return web.json_response(body, status=status, headers=headers)
        return web.Response(text=message, status=status, headers=headers)

    def routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("GET", "/1/members/me", self._wrap(self._me))
        add("GET", "/1/boards/{id}", self._wrap(self._board))
        add("GET", "/1/boards/{id}/labels", self._wrap(self._board_labels))
        add("GET", "/1/boards/{id}/lists", self._wrap(self._board_lists))
        add("POST", "/1/labels", self._wrap(self._create_label))
        add("GET", "/1/lists/{id}", self._wrap(self._list))
        add("POST", "/1/cards", self._wrap(self._create_card))
        add("GET", "/1/cards/{id}", self._wrap(self._get_card))
        add("PUT", "/1/cards/{id}", self._wrap(self._update_card))
        add("DELETE", "/1/cards/{id}", self._wrap(self._delete_card))
        add("POST", "/1/cards/{id}/idLabels", self._wrap(self._add_label))
        add("DELETE", "/1/cards/{id}/idLabels/{label}", self._wrap(self._remove_label))
        add("GET", "/1/cards/{id}/attachments", self._wrap(self._attachments))
        add("POST", "/1/cards/{id}/attachments", self._wrap(self._attach))
        add("DELETE", "/1/cards/{id}/attachments/{att}", self._wrap(self._detach))
        add("PUT", "/1/cards/{id}/{field}", self._wrap(self._set_field))
        add("GET", "/c/{short}/{n}", self._wrap(self._web_card))

    # -- helpers for tests and the sandbox page ------------------------------------------------
    def cards(self, *, include_closed: bool = False) -> list[dict[str, Any]]:
        cards = self.state["cards"].values()
        return [c for c in cards if include_closed or not c["closed"]]

    def add_card(self, name: str, list_id: str = DEFAULT_LIST_ID, **fields: Any) -> dict[str, Any]:
        """Seed a card directly (no request)."""
        return self._new_card({"name": name, "idList": list_id, **fields})

    def label_id(self, name: str) -> str:
        return str(next(i for i, lb in self.state["labels"].items() if lb["name"] == name))

    def attachments_of(self, card_id: str) -> list[dict[str, Any]]:
        return [a for a in self.state["attachments"].values() if a["idCard"] == card_id]

    # -- handlers ---------------------------------------------------------------------------
    def _wrap(self, handler: Any) -> Any:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                body = await request.json() if request.body_exists else {}
                return web.json_response(await handler(request, body or {}))
            except TrelloError as exc:
                return self.error_response(exc.status, exc.message)
            except ValueError:
                return self.error_response(400, "invalid JSON")

        return run

    async def _me(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"id": "5f000000000000000000ae00", "username": "opsbot", "fullName": "Opsbot"}

    async def _board(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self._find("boards", request.match_info["id"])

    async def _board_labels(self, request: web.Request, body: dict[str, Any]) -> Any:
        board = self._find("boards", request.match_info["id"])["id"]
        return [label for label in self.state["labels"].values() if label["idBoard"] == board]

    async def _board_lists(self, request: web.Request, body: dict[str, Any]) -> Any:
        board = self._find("boards", request.match_info["id"])["id"]
        return [item for item in self.state["lists"].values() if item["idBoard"] == board]

    async def _create_label(self, request: web.Request, body: dict[str, Any]) -> Any:
        board = self._find("boards", str(body.get("idBoard", "")), status=400)["id"]
        label_id = self._next_id()
        label = {"id": label_id, "idBoard": board, "name": body.get("name", ""), "color": None}
        label["color"] = body.get("color")
        self.state["labels"][label_id] = label
        self.changed()
        return label

    async def _list(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self._find("lists", request.match_info["id"])

    async def _create_card(self, request: web.Request, body: dict[str, Any]) -> Any:
        self._find("lists", str(body.get("idList") or ""), status=400)
        card = self._new_card(body)
        self.changed()
        return card

    async def _get_card(self, request: web.Request, body: dict[str, Any]) -> Any:
        card = dict(self._find("cards", request.match_info["id"]))
        if request.query.get("attachments") == "true":
            card["attachments"] = self.attachments_of(card["id"])
        return card

    async def _update_card(self, request: web.Request, body: dict[str, Any]) -> Any:
        card = self._find("cards", request.match_info["id"])
        for field, value in body.items():
            if field in _CARD_FIELDS:
                self._apply(card, field, value)
        return self._touched(card)

    async def _set_field(self, request: web.Request, body: dict[str, Any]) -> Any:
        card = self._find("cards", request.match_info["id"])
        field = request.match_info["field"]
        if field not in _CARD_FIELDS:
            raise TrelloError(404, "Cannot PUT this field")
        self._apply(card, field, body.get("value"))
        return self._touched(card)

    async def _delete_card(self, request: web.Request, body: dict[str, Any]) -> Any:
        card = self._find("cards", request.match_info["id"])
        del self.state["cards"][card["id"]]
        self.changed()
        return {"limits": {}}

    async def _add_label(self, request: web.Request, body: dict[str, Any]) -> Any:
        card = self._find("cards", request.match_info["id"])
        label = self._find("labels", str(body.get("value") or ""), status=400)
        if label["id"] in card["idLabels"]:
            raise TrelloError(400, "that label is already on the card")
        card["idLabels"].append(label["id"])
        self._touched(card)
        return card["idLabels"]

    async def _remove_label(self, request: web.Request, body: dict[str, Any]) -> Any:
        card = self._find("cards", request.match_info["id"])
        label = request.match_info["label"]
        if label not in card["idLabels"]:
            raise TrelloError(404, "The label is not on the card")
        card["idLabels"].remove(label)
        self._touched(card)
        return {"_value": None}

    async def _attachments(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self.attachments_of(self._find("cards", request.match_info["id"])["id"])

    async def _attach(self, request: web.Request, body: dict[str, Any]) -> Any:
        card = self._find("cards", request.match_info["id"])
        if not body.get("url"):
            raise TrelloError(400, "invalid value for url")
        attachment = {
            "id": self._next_id(),
            "idCard": card["id"],
            "name": body.get("name") or body["url"],
            "url": body["url"],
            "mimeType": body.get("mimeType"),
            "date": _now(),
            "isUpload": False,
        }
        self.state["attachments"][attachment["id"]] = attachment
        card["badges"]["attachments"] += 1
        self._touched(card)
        return attachment

    async def _detach(self, request: web.Request, body: dict[str, Any]) -> Any:
        card = self._find("cards", request.match_info["id"])
        attachment = self._find("attachments", request.match_info["att"])
        if attachment["idCard"] != card["id"]:
            raise TrelloError(404, "attachment not found")
        del self.state["attachments"][attachment["id"]]
        card["badges"]["attachments"] -= 1
        self._touched(card)
        return {"limits": {}}

    async def _web_card(self, request: web.Request, body: dict[str, Any]) -> Any:
        """A card's `url`: its JSON, so links from results open in the sandbox."""
        short = request.match_info["short"]
        card = next((c for c in self.cards(include_closed=True) if c["shortLink"] == short), None)
        if card is None:
            raise TrelloError(404, "Card not found")
        return card

    # -- state ------------------------------------------------------------------------------
    def _find(self, kind: str, object_id: str, status: int = 404) -> dict[str, Any]:
        found: dict[str, Any] | None = self.state[kind].get(object_id)
        if found is None:
            text = "The requested resource was not found." if status == 404 else "invalid id"
            raise TrelloError(status, text)
        return found

    def _next_id(self) -> str:
        self.state["seq"] += 1
        return hashlib.sha1(f"{self.state['seq']}".encode()).hexdigest()[:24]

    def _new_card(self, fields: dict[str, Any]) -> dict[str, Any]:
        card_id = self._next_id()
        list_ = self.state["lists"][fields["idList"]]
        labels = fields.get("idLabels") or []
        if isinstance(labels, str):
            labels = [label for label in labels.split(",") if label]
        for label in labels:
            self._find("labels", label, status=400)
        short = card_id[-8:]
        due = fields.get("due")
        card = {
            "id": card_id,
            "name": str(fields.get("name") or ""),
            "desc": str(fields.get("desc") or ""),
            "due": None if due in (None, "null", "") else due,
            "dueComplete": False,
            "closed": False,
            "idList": list_["id"],
            "idBoard": list_["idBoard"],
            "idLabels": list(labels),
            "idMembers": [],
            "idChecklists": [],
            "idShort": self.state["seq"],
            "pos": fields.get("pos") or self.state["seq"] * 1024,
            "shortLink": short,
            "shortUrl": f"{self.base_url}/c/{short}",
            "url": f"{self.base_url}/c/{short}/{self.state['seq']}",
            "badges": {"checkItems": 0, "attachments": 0, "comments": 0},
            "labels": [],
            "customFieldItems": [],
            "dateLastActivity": _now(),
        }
        self.state["cards"][card_id] = card
        return self._touched(card, save=False)

    def _apply(self, card: dict[str, Any], field: str, value: Any) -> None:
        if field == "idList":
            self._find("lists", str(value or ""), status=400)
        if field == "closed":
            value = value in (True, "true")
        if field == "due" and value in ("null", ""):
            value = None
        card[field] = value

    def _touched(self, card: dict[str, Any], save: bool = True) -> dict[str, Any]:
        card["labels"] = [self.state["labels"][label] for label in card["idLabels"]]
        card["dateLastActivity"] = _now()
        if save:
            self.changed()
        return card
