"""Every platform stand-in on 127.0.0.1, with its state (and its port) kept under one folder.

`Sandbox(state_dir)` starts the Slack (Web API + Socket Mode), Notion, Trello and Google (token,
Drive, Sheets) stand-ins from executors/sandbox/ - the same ones the test suite uses - seeds the
example content the bundled workflows need, and says how opsbot must be configured to use them
(`overrides()`: Settings field names). Each stand-in's state lives in `<state_dir>/<name>.json`
and its port in `<state_dir>/ports.json`: a restart reuses the ports, so the links stored in
pages, cards and messages keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from bot.config import DEFAULT_RATE_LIMITS
from executors.sandbox import notion as notion_standin
from executors.sandbox import slack as slack_standin
from executors.sandbox import trello as trello_standin
from executors.sandbox.drive import DriveStandIn
from executors.sandbox.google import GoogleStandIns, GoogleTokenStandIn, make_service_account_key
from executors.sandbox.notion import NotionStandIn
from executors.sandbox.sheets import SANDBOX_SPREADSHEET_ID, SheetsStandIn
from executors.sandbox.slack import SlackStandIn
from executors.sandbox.standin import StandIn
from executors.sandbox.trello import TrelloStandIn

log = logging.getLogger("opsbot.sandbox")

SANDBOX_USER = "U0SANDBOX"  # the person using the sandbox page: approver and admin
SANDBOX_USER_NAME = "you"
EXTRA_CHANNELS = ("finance", "bugs")  # used by the example workflows
EXTRA_SHEETS = ("Invoices", "Bugs")
NOTION_EXTRA_PROPERTIES = {"Attendees": {"id": "at", "type": "rich_text", "rich_text": {}}}
PLATFORMS = ("slack", "notion", "trello", "drive", "sheets")
# The limits the stand-ins enforce. Notion's is "an average of three requests per second, some
# bursts allowed": one task takes several requests (schema, duplicate check, create), so a strict
# 3-per-second window would answer 429 to nearly every first attempt.
STANDIN_LIMITS = {**DEFAULT_RATE_LIMITS, "notion": (30, 10.0)}
HOST = "127.0.0.1"
S = TypeVar("S", bound=StandIn)


class Sandbox:
    """`async with Sandbox(dir) as sb: settings = load_settings(**sb.overrides())`."""

    def __init__(self, state_dir: str | Path, *, remember_ports: bool = True) -> None:
        self.state_dir = Path(state_dir)
        self.remember_ports = remember_ports
        self.ports: dict[str, int] = {}
        self.slack: SlackStandIn
        self.notion: NotionStandIn
        self.trello: TrelloStandIn
        self.google: GoogleStandIns
        self.off: set[str] = set()
        self._started: list[StandIn] = []

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> Self:
        await asyncio.to_thread(self.state_dir.mkdir, parents=True, exist_ok=True)
        self.ports = await asyncio.to_thread(self._load_ports)
        try:
            await self._start_all()
        except BaseException:
            await self.stop()
            raise
        self._seed()
        await asyncio.to_thread(self._save_ports)
        return self

    async def _start_all(self) -> None:
        limits = STANDIN_LIMITS
        # Slack's real limits are per method; the seed's 1/s is opsbot's own pacing, enforced by
        # its limiter. The stand-in stays unlimited so cards and answers are never refused.
        self.slack = await self._start(SlackStandIn(**self._where("slack")))
        self.notion = await self._start(
            NotionStandIn(rate_limit=limits["notion"], **self._where("notion"))
        )
        self.trello = await self._start(
            TrelloStandIn(rate_limit=limits["trello"], **self._where("trello"))
        )
        tokens = await self._start(GoogleTokenStandIn(**self._where("google-oauth")))
        if not tokens.has_key():
            tokens.add_key(await asyncio.to_thread(make_service_account_key, tokens.token_uri))
        drive = await self._start(
            DriveStandIn(tokens, rate_limit=limits["drive"], **self._where("drive"))
        )
        sheets = await self._start(
            SheetsStandIn(tokens, rate_limit=limits["sheets"], **self._where("sheets"))
        )
        self.google = GoogleStandIns(tokens, drive, sheets, tokens.service_account_key())

    async def stop(self) -> None:
        for standin in reversed(self._started):
            try:
                await _stop(standin)
            except Exception:
                log.exception("stopping the %s stand-in failed", standin.name)
        self._started.clear()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _start(self, standin: S) -> S:
        await standin.start()
        self._started.append(standin)
        self.ports[standin.name] = int(standin.base_url.rsplit(":", 1)[1])
        return standin

    def _where(self, name: str) -> dict[str, Any]:
        """State file and port for one stand-in: the remembered port when it is still free."""
        port = self.ports.get(name, 0) if self.remember_ports else 0
        if port and not port_free(port):
            log.warning("sandbox: port %s of the %s stand-in is taken; links to it break", port,
                        name)  # fmt: skip
            port = 0
        return {"state_file": self.state_dir / f"{name}.json", "port": port or _any_port()}

    def _load_ports(self) -> dict[str, int]:
        path = self.state_dir / "ports.json"
        if not self.remember_ports or not path.exists():
            return {}
        return {str(k): int(v) for k, v in json.loads(path.read_text("utf-8")).items()}

    async def remember_port(self, name: str, port: int) -> None:
        self.ports[name] = port
        await asyncio.to_thread(self._save_ports)

    def _save_ports(self) -> None:
        if self.remember_ports:
            text = json.dumps(self.ports, indent=1, sort_keys=True)
            (self.state_dir / "ports.json").write_text(text, "utf-8")

    # -- content -----------------------------------------------------------------------------
    def _seed(self) -> None:
        """What the example workflows need, added once (a restart keeps what is there)."""
        slack = self.slack
        for name in EXTRA_CHANNELS:
            slack.add_channel(name)
        if SANDBOX_USER not in slack.users:
            slack.add_user(SANDBOX_USER, SANDBOX_USER_NAME)
        book = self.google.sheets.state["spreadsheets"][SANDBOX_SPREADSHEET_ID]
        for title in EXTRA_SHEETS:
            if title not in book["grids"]:
                book["sheets"].append({"sheetId": len(book["sheets"]), "title": title})
                book["grids"][title] = []
        for source in self.notion.state["data_sources"].values():
            for name, spec in NOTION_EXTRA_PROPERTIES.items():
                source["properties"].setdefault(name, dict(spec))
        for standin in (slack, self.google.sheets, self.notion):
            standin.changed()

    def overrides(self) -> dict[str, Any]:
        """Settings (field names) that point the real bot at the stand-ins."""
        return {
            "slack_bot_token": slack_standin.BOT_TOKEN,
            "slack_app_token": slack_standin.APP_TOKEN,
            "slack_api_url": self.slack.api_url,
            "slack_approval_channel": "#approvals",
            "slack_error_channel": "#errors",
            "slack_notification_channel": "#operations",
            "ops_approvers": SANDBOX_USER,
            "ops_admins": SANDBOX_USER,
            "notion_api_key": notion_standin.TOKEN,
            "notion_database_id": notion_standin.DATABASE_ID,
            "notion_api_url": self.notion.base_url,
            "trello_api_key": trello_standin.API_KEY,
            "trello_token": trello_standin.TOKEN,
            "trello_board_id": trello_standin.BOARD_ID,
            "trello_default_list_id": trello_standin.DEFAULT_LIST_ID,
            "trello_api_url": self.trello.base_url,
            **self.google.settings(),
            "sheets_log_sheet": "Actions",
            "opsbot_database_url": f"sqlite:///{self.state_dir / 'opsbot.db'}",
            "opsbot_env": "sandbox",
        }

    # -- fault switches ----------------------------------------------------------------------
    def standin(self, platform: str) -> StandIn:
        """The server behind one platform (Google's token server is shared by Drive and
        Sheets, so their switches act on their own servers only)."""
        table: dict[str, StandIn] = {
            "slack": self.slack, "notion": self.notion, "trello": self.trello,
            "drive": self.google.drive, "sheets": self.google.sheets,
        }  # fmt: skip
        if platform not in table:
            raise ValueError(f"unknown platform {platform!r}: one of {', '.join(PLATFORMS)}")
        return table[platform]

    async def set_fault(self, platform: str, kind: str, **options: Any) -> None:
        """`kind`: 503, 429, 401 (bad credentials), slow, off (connection refused), clear."""
        standin = self.standin(platform)
        if kind == "off":
            if platform not in self.off:
                self.off.add(platform)
                await _stop(standin)  # state saved; the port is kept for the restart
        elif kind == "clear":
            standin.faults.clear()
            if platform in self.off:
                self.off.discard(platform)
                await standin.start()
        else:
            if kind == "slow":
                options.setdefault("delay", 5.0)
            if kind == "429":
                options.setdefault("retry_after", 2.0)
            standin.faults.set(kind, **options)

    def faults(self) -> dict[str, list[dict[str, Any]]]:
        shown: dict[str, list[dict[str, Any]]] = {}
        for platform in PLATFORMS:
            switches = self.standin(platform).faults.snapshot()
            if platform in self.off:
                switches.append({"kind": "off"})
            shown[platform] = switches
        return shown


async def _stop(standin: StandIn) -> None:
    """Stop a stand-in and save its state once, after the last request. (Its own stop() saves
    with a fixed temporary file name, which races a save that a request still in flight
    schedules; so saving is switched off while it stops, and done here afterwards.)"""
    path, standin.state_file = standin.state_file, None
    try:
        await standin.stop()
    finally:
        standin.state_file = path
    if path is not None:
        text = json.dumps(standin.state, sort_keys=True)
        await asyncio.to_thread(_write_atomic, path, text)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(path)


def port_free(port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _any_port() -> int:
    """A free port chosen now, so the stand-in knows it and can be stopped and restarted on it
    (the "off" fault switch) without links changing."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])
