"""Runbook operations over single actions: submit, show, and the dead-letter queue.

The queue helper's code does the work (bot.queue, bot.deadletters); these functions validate the
request, map its errors to the ops errors and return plain data.
"""

from __future__ import annotations

from typing import Any

from bot import deadletters
from bot.actions import parse_actions
from bot.ops.context import BadInput, NotFound, OpsContext, OpsError
from bot.queue import ActionNotFound, QueueFull

DLQ_LIST_LIMIT = 50


async def submit(ctx: OpsContext, raw: Any, actor: str) -> list[dict[str, Any]]:
    """Validate one action or a list (ActionInvalid names each bad field) and enqueue them."""
    specs = parse_actions(raw)
    try:
        results = await ctx.queue.submit(specs, actor=actor)
    except QueueFull as exc:
        raise OpsError(str(exc)) from exc
    return [
        {"id": r.id, "status": r.status, "duplicate": r.duplicate, "result": r.result}
        for r in results
    ]


async def action_show(ctx: OpsContext, action_id: str) -> dict[str, Any]:
    """One action in full: fields, attempts with their errors, audit trail."""
    try:
        view: dict[str, Any] = await ctx.queue.get(action_id)
    except ActionNotFound as exc:
        raise NotFound(f"no action with id {action_id!r}") from exc
    return view


async def dlq_list(ctx: OpsContext, limit: int = DLQ_LIST_LIMIT) -> list[dict[str, Any]]:
    if limit < 1:
        raise BadInput(f"limit must be at least 1, got {limit}")
    return await ctx.store.read(lambda conn: deadletters.list_dead(conn, limit))


async def dlq_replay(ctx: OpsContext, ids: list[str] | None, actor: str) -> dict[str, Any]:
    """Queue dead letters again (same idempotency key): the given ids, or all when None."""
    _check_ids(ids)
    now = ctx.clock()
    count = await ctx.store.write(lambda conn: deadletters.replay(conn, ids, now, actor))
    _check_found(ids, count, "replayed")
    if ctx.queue is not None and count:
        ctx.queue.wake()  # in-process workers start at once; others see the commit
    return {"replayed": count, "ids": ids}


async def dlq_purge(ctx: OpsContext, ids: list[str] | None, actor: str) -> dict[str, Any]:
    """Delete dead letters for good: the given ids, or all when None."""
    _check_ids(ids)
    now = ctx.clock()
    count = await ctx.store.write(lambda conn: deadletters.purge(conn, ids, now, actor))
    _check_found(ids, count, "purged")
    return {"purged": count, "ids": ids}


def _check_ids(ids: list[str] | None) -> None:
    if ids is not None and not ids:
        raise BadInput("give dead-letter ids, or --all for every dead letter")


def _check_found(ids: list[str] | None, count: int, verb: str) -> None:
    if ids and count == 0:
        raise NotFound(f"none of {', '.join(ids)} is a dead letter; nothing {verb}")
