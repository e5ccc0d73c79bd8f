"""What the sandbox page shows of each stand-in: plain JSON read from the stand-ins' state.

Pure functions of the state dicts (no I/O), one per panel, so the page gets small, stable
shapes instead of each platform's full API objects.
"""

from __future__ import annotations

from typing import Any

from executors.sandbox.a1 import Box, read
from executors.sandbox.drive import FOLDER_MIME, SANDBOX_FOLDER_ID
from executors.sandbox.notion import plain_text
from executors.sandbox.sheets import SANDBOX_SPREADSHEET_ID
from executors.sandbox.slack import BOT_USER_ID

JSON = dict[str, Any]
MAX_MESSAGES = 100  # per channel, newest kept
MAX_ROWS = 50  # per sheet, newest kept
FIRST_CHANNELS = ("approvals", "errors", "operations")
LOG_SHEET = "Actions"  # the sandbox's SHEETS_LOG_SHEET


def slack(state: JSON) -> JSON:
    """Channels (the bot's three first, then the rest by name) with their live messages."""
    channels = [c for c in state["channels"].values() if not c.get("is_im")]
    channels.sort(key=lambda c: (_rank(c["name"]), c["name"]))
    users = {
        BOT_USER_ID: "opsbot",
        **{uid: u.get("name", uid) for uid, u in state["users"].items()},
    }
    return {
        "channels": [
            {
                "id": c["id"],
                "name": c["name"],
                "messages": [_message(m) for m in c["messages"] if not m.get("deleted")][
                    -MAX_MESSAGES:
                ],
            }
            for c in channels
        ],
        "users": users,
        "home": state.get("home", {}),  # App Home views by user (views.publish)
    }


def _rank(name: str) -> int:
    return FIRST_CHANNELS.index(name) if name in FIRST_CHANNELS else len(FIRST_CHANNELS)


def _message(m: JSON) -> JSON:
    keys = ("ts", "user", "text", "blocks", "thread_ts", "edited")
    return {k: m.get(k) for k in keys}


def notion(state: JSON) -> JSON:
    """The database's pages (newest first): title, status, priority, link."""
    pages = [p for p in state["pages"].values() if not p.get("in_trash")]
    pages.sort(key=lambda p: p["created_time"], reverse=True)
    title = _first(state["databases"]).get("title", "Notion")
    return {"title": title, "pages": [_page(p) for p in pages]}


def _page(page: JSON) -> JSON:
    props = page["properties"]
    shown: JSON = {}
    for name, value in props.items():
        kind = value.get("type")
        if kind == "title":
            continue
        text = _property_text(value)
        if text:
            shown[name] = text
    title = next((plain_text(v) for v in props.values() if v.get("type") == "title"), "")
    return {"id": page["id"], "title": title, "url": page["url"], "properties": shown,
            "created": page["created_time"]}  # fmt: skip


def _property_text(value: JSON) -> str:
    kind = value.get("type", "")
    inner = value.get(kind)
    if kind in ("title", "rich_text"):
        return plain_text(value)
    if isinstance(inner, dict):
        return str(inner.get("name") or inner.get("start") or "")
    if isinstance(inner, list):
        return ", ".join(str(p.get("name") or p.get("id")) for p in inner if isinstance(p, dict))
    return "" if inner is None else str(inner)


def trello(state: JSON) -> JSON:
    """The board's lists in order, each with its open cards."""
    lists = sorted(state["lists"].values(), key=lambda item: item["pos"])
    labels = state["labels"]
    cards = [c for c in state["cards"].values() if not c["closed"]]
    return {
        "board": _first(state["boards"]).get("name", "Trello"),
        "lists": [
            {
                "id": item["id"],
                "name": item["name"],
                "cards": [
                    {
                        "id": c["id"],
                        "name": c["name"],
                        "desc": c["desc"],
                        "url": c["url"],
                        "labels": [
                            {"name": labels[i]["name"], "color": labels[i]["color"]}
                            for i in c["idLabels"]
                            if i in labels
                        ],
                    }
                    for c in sorted(cards, key=lambda c: c["pos"])
                    if c["idList"] == item["id"]
                ],
            }
            for item in lists
            if not item["closed"]
        ],
    }


def _first(objects: dict[str, JSON]) -> JSON:
    return next(iter(objects.values()), {})


def drive(state: JSON) -> JSON:
    """Files under the sandbox folder (one level of sub-folders shown by path)."""
    files = state["files"]
    shown = []
    for f in files.values():
        if f["id"] == SANDBOX_FOLDER_ID or f.get("trashed"):
            continue
        parents = f.get("parents") or []
        path = "/".join(files[p]["name"] for p in parents if p in files and p != SANDBOX_FOLDER_ID)
        shown.append({
            "id": f["id"], "name": f["name"], "folder": path,
            "is_folder": f.get("mimeType") == FOLDER_MIME, "mime": f.get("mimeType"),
            "link": f.get("webViewLink"), "created": f.get("createdTime"),
            "shared": [p.get("emailAddress") for p in f.get("permissions", [])
                       if p.get("emailAddress")],
        })  # fmt: skip
    shown.sort(key=lambda f: str(f["created"] or ""), reverse=True)
    return {"folder": files.get(SANDBOX_FOLDER_ID, {}).get("name", "opsbot"), "files": shown}


def sheets(state: JSON) -> JSON:
    """Every sheet (tab) of the sandbox spreadsheet that has rows, the action log first, newest
    rows last."""
    book = state["spreadsheets"].get(SANDBOX_SPREADSHEET_ID)
    if book is None:
        return {"title": "", "sheets": []}
    titles = list(dict.fromkeys([*(s["title"] for s in book["sheets"]), *book["grids"]]))
    titles.sort(key=lambda t: t != LOG_SHEET)
    out = []
    for title in titles:
        rows = read(book["grids"].get(title, []), Box(0, 0, None, None))
        rows = [r for r in rows if any(cell not in ("", None) for cell in r)]
        if rows:
            out.append({"title": title, "total": len(rows), "rows": rows[-MAX_ROWS:]})
    return {"title": book.get("properties", {}).get("title", ""), "sheets": out}


def circuits(runtime: Any) -> list[dict[str, Any]]:
    """The live breakers of the runtime (none before it has started)."""
    breakers = getattr(runtime, "breakers", None)
    if breakers is None:
        return []
    return [{k: s.get(k) for k in ("platform", "state", "consecutive_failures", "opened_at")}
            for s in breakers.snapshots()]  # fmt: skip


def brief(view: dict[str, Any]) -> dict[str, Any]:
    """An outcome view of the queue as the Activity panel shows it."""
    keys = ("id", "type", "platform", "status", "event", "attempt", "error", "served_by",
            "fallback_used", "run_id", "step_name")  # fmt: skip
    return {k: view.get(k) for k in keys if view.get(k) is not None}


PANELS = {"slack": slack, "notion": notion, "trello": trello, "drive": drive, "sheets": sheets}
