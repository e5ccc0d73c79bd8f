"""One Slack message per workflow run, updated in place as the run moves.

`RunProgress` posts a run's message when it first sees the run (to the channel where `/ops run`
was typed, `claim()`, else SLACK_NOTIFICATION_CHANNEL) and edits it with chat.update as steps
finish, roll back and the run ends. It learns about changes from the queue's outcome bus (step
actions carry `run_id`) and the runner's status watch, and looks at the store's active runs each
round (runs started by another process). Rounds are at least `interval` apart, so a burst of step
outcomes becomes one chat.update per run per interval, and a message is edited only when what it
shows changed. Where each message lives is kept in the `meta` table, so after a restart the same
message is edited. Slack failing never touches the run: the round logs, backs off and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlalchemy import Connection, delete, insert, select

from bot.slack_app import FrontDoor
from bot.store.tables import MetaRow
from bot.workflows import journal as j
from bot.workflows.runner import FINAL, RunNotFound
from handlers.run_blocks import run_progress, run_text

log = logging.getLogger("opsbot.slack")
RUN_KEY = "slack_run:"  # meta table: run id -> {"channel", "ts", "shown"} of its message
MAX_BACKOFF_S = 60.0
GONE = ("message_not_found", "channel_not_found", "is_archived", "not_in_channel",
        "cant_update_message", "msg_too_long", "invalid_blocks")  # fmt: skip
_META = MetaRow.__table__  # type: ignore[attr-defined]


def _load_open(conn: Connection) -> dict[str, dict[str, Any]]:
    """Messages of runs that were not final when last shown (they need a last update)."""
    rows = conn.execute(select(_META).where(_META.c.key.like(RUN_KEY + "%")))
    found = {r.key.removeprefix(RUN_KEY): json.loads(r.value) for r in rows}
    return {run: m for run, m in found.items() if m.get("shown") not in FINAL}


def _load_one(run_id: str) -> Callable[[Connection], dict[str, Any] | None]:
    def read(conn: Connection) -> dict[str, Any] | None:
        row = conn.execute(select(_META.c.value).where(_META.c.key == RUN_KEY + run_id)).first()
        return json.loads(row.value) if row is not None else None

    return read


def _save(run_id: str, message: dict[str, Any]) -> Callable[[Connection], None]:
    def write(conn: Connection) -> None:
        key = RUN_KEY + run_id
        conn.execute(delete(_META).where(_META.c.key == key))
        conn.execute(insert(_META).values(key=key, value=json.dumps(message)))

    return write


class RunProgress:
    def __init__(
        self,
        door: FrontDoor,
        runner: Any,  # bot.workflows.runner.WorkflowRunner: state(run_id), watch(callback)
        *,
        interval: float = 1.0,
        claim_grace: float = 5.0,
    ) -> None:
        self.door, self.runner = door, runner
        self.interval, self.claim_grace = interval, claim_grace
        self._messages: dict[str, dict[str, Any]] = {}  # run -> {"channel", "ts", "shown"}
        self._shown: dict[str, str] = {}  # run -> the blocks last sent (JSON), to skip no-ops
        self._claims: dict[str, str] = {}  # run -> channel id where `/ops run` was typed
        self._dirty: set[str] = set()
        self._gone: set[str] = set()  # runs whose message Slack refuses for good
        self._failures = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: list[Callable[[], None]] = []

    async def start(self) -> None:
        self._messages = await self.door.ops.store.read(_load_open)
        self._dirty.update(self._messages)
        self._unsubscribe = [
            self.door.queue.subscribe(self._on_outcome),
            self.runner.watch(self._on_status),
        ]
        self._task = asyncio.create_task(self._loop(), name="opsbot-run-progress")

    async def stop(self, grace: float = 5.0) -> None:
        """Let a round in progress finish (a message posted but not yet recorded would be
        posted again after a restart), then stop."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        self._stopping.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=grace)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    def claim(self, run_id: str, channel: str) -> None:
        """`/ops run` started this run in `channel`: its message goes there."""
        self._claims[run_id] = channel
        self._mark(run_id)

    # -- change signals (sync: they run inside the queue's and the runner's callbacks) -------

    def _on_outcome(self, view: dict[str, Any]) -> None:
        if view.get("run_id"):
            self._mark(str(view["run_id"]))

    def _on_status(self, run_id: str, status: str) -> None:
        self._mark(run_id)

    def _mark(self, run_id: str) -> None:
        self._dirty.add(run_id)

    # -- rounds ------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sync()
                self._failures = 0
            except Exception as exc:  # Slack or the store hiccupped: the runs go on regardless
                self._failures += 1
                log.warning("updating workflow run messages failed (%s): %s",
                            type(exc).__name__, exc)  # fmt: skip
            pause = min(MAX_BACKOFF_S, self.interval * 2 ** min(self._failures, 8))
            # The pause is the coalescing window: whatever happens meanwhile is one update.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)

    async def sync(self) -> None:
        """One round: show every changed or active run as it is now. A transient failure
        (Slack down) ends the round and leaves the rest for the next one."""
        self._dirty.update(await self.door.ops.store.read(j.active_runs))
        pending, self._dirty = sorted(self._dirty - self._gone), set()
        for index, run_id in enumerate(pending):
            try:
                await self._show(run_id)
            except RunNotFound:  # purged: nothing to show
                continue
            except SlackApiError as exc:
                if exc.response.get("error") not in GONE:
                    self._dirty.update(pending[index:])
                    raise
                # The message or channel is gone (deleted, archived): stop trying for this run.
                log.warning("run %s: Slack says %s; its progress is no longer shown",
                            run_id, exc.response.get("error"))  # fmt: skip
                self._gone.add(run_id)
            except Exception:
                self._dirty.update(pending[index:])
                raise

    async def _show(self, run_id: str) -> None:
        view = await self.runner.state(run_id)
        message = self._messages.get(run_id) or await self.door.ops.store.read(_load_one(run_id))
        if message is None:
            await self._post(run_id, view)
            return
        self._claims.pop(run_id, None)
        if run_id not in self._shown and message.get("shown") == view["status"] in FINAL:
            return  # shown final before a restart; nothing new
        body = run_progress(view)
        rendered = json.dumps(body, sort_keys=True)
        if rendered == self._shown.get(run_id):
            return
        await self.door.client.chat_update(
            channel=message["channel"], ts=message["ts"], text=run_text(view), blocks=body
        )
        self._shown[run_id] = rendered
        await self._remember(run_id, {**message, "shown": view["status"]})

    async def _post(self, run_id: str, view: dict[str, Any]) -> None:
        channel = self._claims.get(run_id)
        if channel is None and await self._claim_expected(run_id, view):
            self._dirty.add(run_id)  # the `/ops run` handler names the channel in a moment
            return
        body = run_progress(view)
        response = await self.door.client.chat_postMessage(
            channel=channel or self.door.settings.slack_notification_channel,
            text=run_text(view),
            blocks=body,
        )
        self._shown[run_id] = json.dumps(body, sort_keys=True)
        self._claims.pop(run_id, None)
        message = {"channel": response["channel"], "ts": response["ts"]}
        await self._remember(run_id, {**message, "shown": view["status"]})

    async def _claim_expected(self, run_id: str, view: dict[str, Any]) -> bool:
        """A run requested from Slack just now: its `/ops run` answer is on the way."""
        if self.door.clock() - float(view["created_at"]) > self.claim_grace:
            return False
        run = await self.door.ops.store.read(lambda c: j.load_run(c, run_id))
        return run is not None and str(run.get("requested_by") or "").startswith("slack:")

    async def _remember(self, run_id: str, message: dict[str, Any]) -> None:
        if message["shown"] in FINAL:
            self._messages.pop(run_id, None)  # stays in meta: a later forced rollback edits it
            self._shown.pop(run_id, None)
        else:
            self._messages[run_id] = message
        await self.door.ops.store.write(_save(run_id, message))
