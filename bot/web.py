"""The HTTP surface (issue 6 point 2): health, metrics, runbook views, action intake, hooks.

`create_app(deps)` builds the aiohttp application from its collaborators only, so tests run it
alone on 127.0.0.1:0 against a real store and queue; `WebService` starts and stops it for the
runtime. Every answer is JSON except /metrics. Writes need `Authorization: Bearer
<OPSBOT_API_TOKEN>` (constant-time compare); with no token configured they are refused (403),
never open. Inbound hooks are authenticated by their HMAC signature instead (bot.signing).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot import ops
from bot.actions import CALLBACK_URL_EXPECTED, ActionInvalid, is_callback_url, parse_actions
from bot.config import Settings
from bot.metrics import CONTENT_TYPE, Metrics
from bot.signing import SIGNATURE_HEADER, SignatureInvalid, Verifier

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSONish = dict[str, Any] | list[Any]


@dataclass
class WebDeps:
    """What the HTTP surface works on. `runner` and `rate_limits` are optional."""

    settings: Settings
    queue: Any  # bot.queue.Queue
    ops: ops.OpsContext
    metrics: Metrics
    health: Callable[[], Awaitable[dict[str, Any]]]
    runner: Any = None  # bot.workflows.runner.WorkflowRunner: start_run(...) / state(run_id)
    rate_limits: Callable[[], dict[str, Any]] | None = None  # limiter stats per platform
    verifier: Verifier | None = field(default=None)


def json_response(data: JSONish, status: int = 200, **kw: Any) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=str), status=status, content_type="application/json", **kw
    )


def error(status: int, message: str, **extra: Any) -> web.Response:
    return json_response({"error": message, **extra}, status)


def json_errors(max_body: int) -> Any:
    """Every failure answers JSON with a message; internal errors never show their text."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return error(413, f"request body too large: the limit is {max_body} bytes")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error(exc.status, exc.reason)
        except Exception:
            log.exception("HTTP %s %s failed", request.method, request.path)
            return error(500, "internal error (see the opsbot log)")

    return middleware


class Api:
    def __init__(self, deps: WebDeps) -> None:
        self.d = deps
        token = deps.settings.opsbot_api_token
        self.token = token.get_secret_value().encode() if token else None

    # -- auth and bodies ------------------------------------------------------------------------

    def refuse_writer(self, request: web.Request) -> web.Response | None:
        """None when the request may write; else the refusal to send."""
        if self.token is None:
            return error(403, "disabled: set OPSBOT_API_TOKEN")
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.token
        ):
            headers = {"WWW-Authenticate": 'Bearer realm="opsbot"'}
            return json_response({"error": "missing or wrong bearer token"}, 401, headers=headers)
        return None

    @staticmethod
    async def body_json(request: web.Request) -> tuple[Any, web.Response | None]:
        raw = await request.read()  # raises HTTPRequestEntityTooLarge over client_max_size
        if not raw.strip():
            return None, error(400, "empty body: expected JSON")
        try:
            return json.loads(raw), None
        except (ValueError, UnicodeDecodeError) as exc:
            return None, error(400, f"malformed JSON: {exc}")

    # -- reads ----------------------------------------------------------------------------------

    async def health(self, _request: web.Request) -> web.Response:
        report = await self.d.health()
        return json_response(report, 503 if report.get("status") == "unhealthy" else 200)

    async def metrics(self, _request: web.Request) -> web.Response:
        body = await asyncio.to_thread(self.d.metrics.render)  # reads the store: not on the loop
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def queue(self, _request: web.Request) -> web.Response:
        return json_response(await ops.queue_status(self.d.ops))

    async def circuits(self, _request: web.Request) -> web.Response:
        return json_response({"circuits": await ops.circuits(self.d.ops)})

    async def recent_errors(self, request: web.Request) -> web.Response:
        raw = request.query.get("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= 500:
            return error(400, f"limit: got {raw!r}, expected a whole number from 1 to 500")
        return json_response({"errors": await ops.recent_errors(self.d.ops, int(raw))})

    async def rate_limits(self, _request: web.Request) -> web.Response:
        configured = {
            p: {"limit": n, "window_s": w} for p, (n, w) in self.d.settings.rate_limits.items()
        }
        live = self.d.rate_limits() if self.d.rate_limits else {}
        return json_response({"configured": configured, "live": live})

    async def get_action(self, request: web.Request) -> web.Response:
        action_id = request.match_info["id"]
        try:
            return json_response(await self.d.queue.get(action_id))
        except KeyError:  # bot.queue.ActionNotFound
            return error(404, f"no action with id {action_id!r}")

    # -- writes ---------------------------------------------------------------------------------

    async def post_actions(self, request: web.Request) -> web.Response:
        refusal = self.refuse_writer(request)
        if refusal is not None:
            return refusal
        raw, bad = await self.body_json(request)
        if bad is not None:
            return bad
        try:
            specs = parse_actions(raw)
        except ActionInvalid as exc:
            return json_response(exc.as_dict(), 400)
        from bot.queue import QueueFull

        try:
            results = await self.d.queue.submit(specs, actor="api")
        except QueueFull as exc:
            return json_response({"error": str(exc)}, 503, headers={"Retry-After": "5"})
        actions = [{"id": r.id, "status": r.status, "duplicate": r.duplicate} for r in results]
        body: dict[str, Any] = {"ids": [a["id"] for a in actions], "actions": actions}
        if not isinstance(raw, list):
            body["id"] = actions[0]["id"]
        return json_response(body, 202)

    async def post_run(self, request: web.Request) -> web.Response:
        refusal = self.refuse_writer(request)
        if refusal is not None:
            return refusal
        raw, bad = await self.body_json(request)
        if bad is not None:
            return bad
        problem = _run_request_problem(raw)
        if problem:
            return error(400, problem)
        return await self._start_run(
            request.match_info["name"], raw.get("input") or {}, actor="api",
            key=raw.get("idempotency_key"), source="http", callback_url=raw.get("callback_url"),
        )  # fmt: skip

    async def get_run(self, request: web.Request) -> web.Response:
        if self.d.runner is None:
            return _no_workflows()
        try:
            return json_response(await self.d.runner.state(request.match_info["id"]))
        except KeyError:  # RunNotFound
            return error(404, f"no workflow run {request.match_info['id']!r}")

    async def post_hook(self, request: web.Request) -> web.Response:
        if self.d.verifier is None:
            return error(403, "disabled: set OPSBOT_HOOK_SECRET")
        body = await request.read()
        try:
            self.d.verifier.verify(request.headers, body)
        except SignatureInvalid as exc:
            return error(401, f"signature refused: {exc}")
        name = request.match_info["name"]
        workflow = hooks_map(self.d.settings).get(name)
        if workflow is None:
            return error(404, f"no hook named {name!r} (configure OPSBOT_HOOKS)")
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            return error(400, f"malformed JSON: {exc}")
        data = payload if isinstance(payload, dict) else {"payload": payload}
        # Keyed by the signature: one run per signed delivery, even across processes.
        key = f"hook:{name}:{request.headers.get(SIGNATURE_HEADER)}"
        return await self._start_run(workflow, data, actor=f"hook:{name}", key=key, source="hook")

    async def _start_run(
        self, name: str, data: dict[str, Any], *, actor: str, key: str | None, source: str,
        callback_url: str | None = None,
    ) -> web.Response:  # fmt: skip
        runner = self.d.runner
        if runner is None:
            return _no_workflows()
        if name not in getattr(runner, "workflows", {name: None}):
            return error(404, f"no workflow named {name!r}")
        try:
            run = await runner.start_run(
                name, data, idempotency_key=key, actor=actor, source=source,
                callback_url=callback_url,
            )  # fmt: skip
        except ValueError as exc:  # RunRefused: written for people (missing input, disabled)
            return error(400, str(exc))
        return json_response(run, 202)  # a repeat (idempotency key) is 202 with the same run


_RUN_FIELDS = ("input", "idempotency_key", "callback_url")


def _run_request_problem(raw: Any) -> str | None:
    """POST /workflows/{name}/runs takes {"input": {...}, "idempotency_key": "...",
    "callback_url": "https://..."}."""
    if not isinstance(raw, dict):
        return 'body: expected a JSON object like {"input": {...}}'
    unknown = sorted(set(raw) - set(_RUN_FIELDS))
    if unknown:
        return f"unknown field(s): {', '.join(unknown)} (known: {', '.join(_RUN_FIELDS)})"
    url = raw.get("callback_url")
    if url is not None and (not isinstance(url, str) or not is_callback_url(url)):
        return f"callback_url: got {str(url)[:80]!r}, expected {CALLBACK_URL_EXPECTED}"
    if not isinstance(raw.get("input", {}), dict):
        return "input: expected a JSON object"
    key = raw.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not key.strip()):
        return "idempotency_key: expected a non-empty string"
    return None


def _no_workflows() -> web.Response:
    return error(501, "workflows are not available in this process (no workflow runner)")


def hooks_map(settings: Settings) -> dict[str, str]:
    """OPSBOT_HOOKS: `hook=workflow[,...]`."""
    pairs = (item.partition("=") for item in settings.opsbot_hooks.split(",") if "=" in item)
    return {k.strip(): v.strip() for k, _, v in pairs if k.strip() and v.strip()}


def create_app(deps: WebDeps) -> web.Application:
    if deps.verifier is None and deps.settings.opsbot_hook_secret is not None:
        deps.verifier = Verifier(deps.settings.opsbot_hook_secret.get_secret_value())
    limit = deps.settings.opsbot_max_body_bytes
    app = web.Application(client_max_size=limit, middlewares=[json_errors(limit)])
    api = Api(deps)
    app.add_routes(
        [
            web.get("/health", api.health),
            web.get("/metrics", api.metrics),
            web.get("/queue", api.queue),
            web.get("/circuit-breakers", api.circuits),
            web.get("/recent-errors", api.recent_errors),
            web.get("/rate-limits", api.rate_limits),
            web.post("/actions", api.post_actions),
            web.get("/actions/{id}", api.get_action),
            web.post("/workflows/{name}/runs", api.post_run),
            web.get("/runs/{id}", api.get_run),
            web.post("/hooks/{name}", api.post_hook),
        ]
    )
    return app


class WebService:
    """Runs the app on host:port (port 0 picks a free one; `port` tells which after start)."""

    def __init__(self, deps: WebDeps, host: str = "0.0.0.0", port: int | None = None) -> None:
        self.deps = deps
        self.host = host
        self.port = deps.settings.opsbot_http_port if port is None else port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(create_app(self.deps), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self._runner.addresses:
            self.port = self._runner.addresses[0][1]
        log.info("HTTP API listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
