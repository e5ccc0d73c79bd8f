"""Workflow operations (issue 5 points 5 and 6) over bot.workflows: list, show, run, status,
runs, rollback, retry-rollback, resolve, export, import, promote, versions.

The live runtime passes its WorkflowRunner in the OpsContext. Without one (the CLI), a runner is
built over the same store and queue only to start and command runs: `start_run` journals the
run and queues its first steps durably; a running opsbot with the workflow runner executes them
and drives the rest (it resumes every active run at start).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from bot.ops.context import BadInput, NotFound, OpsContext, OpsError
from bot.workflows import versions
from bot.workflows.definitions import Workflow
from bot.workflows.validate import WorkflowInvalid

RUNS_LIMIT = 20
# Where a run came from, by the actor's prefix (the front doors name their actors so).
_SOURCES = {"slack": "slack", "cli": "cli", "api": "http", "http": "http",
            "schedule": "schedule", "hook": "hook"}  # fmt: skip


def runner(ctx: OpsContext) -> Any:
    if ctx.runner is None:
        from bot.workflows.loader import load_workflows
        from bot.workflows.runner import WorkflowRunner

        try:
            workflows = load_workflows(ctx.settings.opsbot_workflows)
        except WorkflowInvalid as exc:
            raise BadInput(f"workflow definitions: {exc}") from exc
        ctx.runner = WorkflowRunner(ctx.store, ctx.queue, workflows, ctx.settings, ctx.clock)
    return ctx.runner


def _workflow(ctx: OpsContext, name: str) -> Workflow:
    workflows: dict[str, Workflow] = runner(ctx).workflows
    if name not in workflows:
        known = ", ".join(sorted(workflows)) or "none loaded (OPSBOT_WORKFLOWS)"
        raise NotFound(f"no workflow named {name!r} (known: {known})")
    return workflows[name]


async def listing(ctx: OpsContext) -> list[dict[str, Any]]:
    """Each loaded workflow with its version (registered here when its content is new)."""
    loaded = sorted(runner(ctx).workflows.items())
    now = ctx.clock()
    found = await ctx.store.write(lambda c: [versions.register(c, wf, now) for _, wf in loaded])
    return [
        {"name": name, "enabled": wf.enabled, "transactional": wf.transactional,
         "steps": len(wf.steps), "timeout_s": wf.timeout, "version": info.version,
         "hash": info.hash[:12]}
        for (name, wf), info in zip(loaded, found, strict=True)
    ]  # fmt: skip


async def show(ctx: OpsContext, name: str) -> dict[str, Any]:
    wf = _workflow(ctx, name)
    return {"name": name, "hash": versions.content_hash(wf), "definition": wf.to_dict()}


async def run(ctx: OpsContext, name: str, inputs: dict[str, Any], actor: str,
              key: str | None = None) -> dict[str, Any]:  # fmt: skip
    from bot.workflows.runner import RunRefused

    _workflow(ctx, name)
    try:
        view: dict[str, Any] = await runner(ctx).start_run(
            name, inputs, idempotency_key=key, actor=actor, source=source_of(actor)
        )
    except RunRefused as exc:
        raise BadInput(str(exc)) from exc
    return view


def source_of(actor: str) -> str | None:
    """`slack:U1` -> slack, `cli:ann` -> cli, `api` -> http; None when the actor does not say."""
    return _SOURCES.get(actor.partition(":")[0])


async def status(ctx: OpsContext, run_id: str) -> dict[str, Any]:
    return await _on_run(ctx, run_id, lambda r: r.state(run_id))


async def runs(ctx: OpsContext, name: str | None = None, status_: str | None = None,
               limit: int = RUNS_LIMIT) -> list[dict[str, Any]]:  # fmt: skip
    from bot.workflows.journal import STATUSES

    if status_ is not None and status_ not in STATUSES:
        raise BadInput(f"--status: got {status_!r}, expected one of: {', '.join(STATUSES)}")
    result: list[dict[str, Any]] = await runner(ctx).runs(limit=limit, status=status_, name=name)
    return result


async def rollback(ctx: OpsContext, run_id: str, actor: str, force: bool = False) -> dict[str, Any]:
    return await _on_run(ctx, run_id, lambda r: r.rollback(run_id, actor, force=force))


async def retry_rollback(ctx: OpsContext, run_id: str, actor: str) -> dict[str, Any]:
    return await _on_run(ctx, run_id, lambda r: r.retry_rollback(run_id, actor))


async def resolve(ctx: OpsContext, run_id: str, actor: str, comment: str) -> dict[str, Any]:
    if not comment.strip():
        raise BadInput("resolve needs --comment saying what was done")
    return await _on_run(ctx, run_id, lambda r: r.resolve(run_id, actor, comment))


async def _on_run(ctx: OpsContext, run_id: str, call: Any) -> dict[str, Any]:
    from bot.workflows.runner import RunNotFound, RunRefused

    try:
        result: dict[str, Any] = await call(runner(ctx))
    except RunNotFound as exc:
        raise NotFound(f"no workflow run with id {run_id!r}") from exc
    except RunRefused as exc:
        raise OpsError(str(exc)) from exc
    return result


async def _register_loaded(ctx: OpsContext, name: str) -> int | None:
    """The definition loaded from the files becomes a stored version; its number (None when
    `name` is not loaded here, e.g. only imported). Export and promote default to it."""
    workflows = runner(ctx).workflows
    if name not in workflows:
        return None
    now = ctx.clock()
    info = await ctx.store.write(lambda c: versions.register(c, workflows[name], now))
    return int(info.version)


def _unknown(ctx: OpsContext, name: str, version: int | None, exc: KeyError) -> NotFound:
    """No stored version: name the version asked for, or the workflows known (like `show`)."""
    if version is not None:
        return NotFound(str(exc.args[0]))
    known = ", ".join(sorted(runner(ctx).workflows)) or "none loaded (OPSBOT_WORKFLOWS)"
    return NotFound(f"no workflow named {name!r} (known: {known})")


async def export(ctx: OpsContext, name: str, version: int | None = None) -> dict[str, Any]:
    """The artifact of `version`; by default the loaded definition's (else the latest stored)."""
    loaded = await _register_loaded(ctx, name)
    env, now, wanted = ctx.settings.opsbot_env, ctx.clock(), version or loaded
    try:
        artifact: dict[str, Any] = await ctx.store.write(
            partial(versions.export_artifact, name=name, env=env, now=now, version=wanted)
        )
    except KeyError as exc:
        raise _unknown(ctx, name, version, exc) from exc
    return artifact


async def import_(ctx: OpsContext, artifact: Any) -> dict[str, Any]:
    """Validate an artifact against this installation's executors, then store its version."""
    from bot.ops.platforms import disabled_platforms
    from bot.routing import PLATFORMS

    disabled = await disabled_platforms(ctx.settings)
    available = None if disabled is None else {p for p in (*PLATFORMS, "echo") if p not in disabled}
    now = ctx.clock()
    try:
        info = await ctx.store.write(
            lambda c: versions.import_artifact(c, artifact, now, available)
        )
    except WorkflowInvalid as exc:
        raise BadInput(f"artifact refused: {exc}") from exc
    return {"name": info.name, "version": info.version, "hash": info.hash, "imported": True}


async def promote(
    ctx: OpsContext, name: str, to_env: str, actor: str, *, force: bool = False,
    version: int | None = None, comment: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Promote `version`; by default the loaded definition's (else the latest stored)."""
    loaded = await _register_loaded(ctx, name)
    now, wanted = ctx.clock(), version or loaded
    try:
        result: dict[str, Any] = await ctx.store.write(
            lambda c: versions.promote(c, name, to_env, now=now, actor=actor, version=wanted,
                                       force=force, comment=comment)
        )  # fmt: skip
    except versions.PromotionRefused as exc:
        raise OpsError(str(exc)) from exc
    except KeyError as exc:
        raise _unknown(ctx, name, version, exc) from exc
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    return result


async def history(ctx: OpsContext, name: str) -> list[dict[str, Any]]:
    await _register_loaded(ctx, name)
    found: list[dict[str, Any]] = await ctx.store.read(lambda c: versions.history(c, name))
    if not found:
        raise NotFound(f"no versions of workflow {name!r}")
    return found
