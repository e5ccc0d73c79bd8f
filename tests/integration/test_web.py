"""The HTTP API running on 127.0.0.1 (ephemeral port) over a real SQLite store and queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.config import Settings
from bot.health import Health
from bot.metrics import Metrics
from bot.ops import OpsContext
from bot.signing import SignatureInvalid, Verifier, signed_headers
from bot.store.engine import Store
from bot.web import WebDeps, WebService
from bot.workflows.definitions import Workflow
from bot.workflows.runner import WorkflowRunner
from tests.conftest import FakeClock

TOKEN = "api-token-for-tests"
HOOK_SECRET = "hook-secret-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ECHO = {"type": "echo", "data": {"say": "hi"}}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "opsbot_api_token": TOKEN,
        "opsbot_hook_secret": HOOK_SECRET,
        "opsbot_hooks": "deploy=release",
        "opsbot_max_body_bytes": 4096,
        "queue_max_size": 5,
    }


RELEASE = Workflow("release", inputs=("version",)).add_step(
    "build", {"type": "echo", "data": {"version": "{{ input.version }}"}}
)


async def count_runs(store: Store) -> int:
    return int(await store.read(lambda c: c.exec_driver_sql("SELECT COUNT(*) FROM workflow_runs")
                                .scalar()))  # fmt: skip


def make_deps(
    settings: Settings, store: Store, queue: Any, clock: FakeClock, runner: Any = None
) -> WebDeps:
    metrics = Metrics()
    metrics.add_store_collector(store, clock)
    health = Health(store, clock=clock)
    return WebDeps(
        settings=settings,
        queue=queue,
        ops=OpsContext(store=store, settings=settings, queue=queue, clock=clock),
        metrics=metrics,
        health=health.snapshot,
        runner=runner,
        verifier=Verifier(HOOK_SECRET, clock=clock),
    )


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    services: list[WebService] = []

    async def start(deps: WebDeps) -> str:
        service = WebService(deps, host="127.0.0.1", port=0)
        await service.start()
        services.append(service)
        return f"http://127.0.0.1:{service.port}"

    yield start
    for service in services:
        await service.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def runner(store: Store, queue: Any, settings: Settings, clock: FakeClock) -> WorkflowRunner:
    """The real workflow runner (no worker pool: runs start and their first step is queued)."""
    return WorkflowRunner(store, queue, {"release": RELEASE}, settings, clock)


@pytest.fixture
async def base(
    serve: Any,
    settings: Settings,
    store: Store,
    queue: Any,
    clock: FakeClock,
    runner: WorkflowRunner,
) -> str:
    url: str = await serve(make_deps(settings, store, queue, clock, runner))
    return url


async def count_actions(store: Store) -> int:
    return int(await store.read(lambda c: c.exec_driver_sql("SELECT COUNT(*) FROM actions")
                                .scalar()))  # fmt: skip


async def call(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.request(method, url, **kw) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


# -- auth -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Bearer"}],
)
async def test_writes_without_the_right_token_are_refused(
    http: aiohttp.ClientSession, base: str, store: Store, headers: dict[str, str]
) -> None:
    status, body = await call(http, "POST", f"{base}/actions", json=ECHO, headers=headers)
    assert status == 401 and "bearer token" in body["error"]
    assert await count_actions(store) == 0


async def test_without_a_configured_token_writes_are_disabled(
    http: aiohttp.ClientSession,
    serve: Any,
    settings: Settings,
    store: Store,
    queue: Any,
    clock: FakeClock,
) -> None:
    open_settings = settings.model_copy(update={"opsbot_api_token": None})
    url = await serve(make_deps(open_settings, store, queue, clock))
    for path in ("/actions", "/workflows/release/runs"):
        status, body = await call(http, "POST", url + path, json=ECHO, headers=AUTH)
        assert (status, body["error"]) == (403, "disabled: set OPSBOT_API_TOKEN")
    assert await count_actions(store) == 0


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"type": "echo",', 400, "malformed JSON"),
        (b"", 400, "empty body"),
        (b"\xff\xfe not utf-8", 400, "malformed JSON"),
        (json.dumps({**ECHO, "data": {"say": "x" * 5000}}).encode(), 413, "limit is 4096 bytes"),
    ],
)
async def test_bad_bodies_get_a_clear_4xx_and_store_nothing(
    http: aiohttp.ClientSession, base: str, store: Store, body: bytes, status: int, message: str
) -> None:
    got, answer = await call(http, "POST", f"{base}/actions", data=body, headers=AUTH)
    assert got == status and message in answer["error"]
    assert await count_actions(store) == 0


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ({"type": "echo", "data": "not an object"}, {"data"}),
        ({"type": "echo", "priority": 5, "notify": "yes"}, {"priority", "notify"}),
        ({"type": "nope"}, {"type"}),
        ({"type": "create_task", "data": {}, "colour": "red"}, {"data.title", "colour"}),
        ([ECHO, {"type": "echo", "data": []}], {"data"}),  # one bad item refuses the whole list
        ("just a string", {"action"}),
    ],
)
async def test_wrong_types_name_every_bad_field_and_store_nothing(
    http: aiohttp.ClientSession, base: str, store: Store, action: Any, fields: set[str]
) -> None:
    status, body = await call(http, "POST", f"{base}/actions", json=action, headers=AUTH)
    assert status == 400 and body["error"] == "invalid action"
    named = {p["field"].split(".", 1)[-1] if p["field"].startswith("[") else p["field"]
             for p in body["problems"]}  # fmt: skip
    assert fields <= named
    assert await count_actions(store) == 0


# -- intake -----------------------------------------------------------------------------------


async def test_a_submitted_action_is_stored_and_visible(
    http: aiohttp.ClientSession, base: str, store: Store
) -> None:
    status, body = await call(http, "POST", f"{base}/actions", json=ECHO, headers=AUTH)
    assert status == 202 and body["ids"] == [body["id"]]
    assert body["actions"][0]["status"] == "queued"
    status, view = await call(http, "GET", f"{base}/actions/{body['id']}")
    assert status == 200 and view["id"] == body["id"] and view["type"] == "echo"
    assert await count_actions(store) == 1


async def test_idempotent_repeat_returns_the_same_id_with_202(
    http: aiohttp.ClientSession, base: str, store: Store
) -> None:
    action = {**ECHO, "idempotency_key": "agent-42"}
    first = await call(http, "POST", f"{base}/actions", json=action, headers=AUTH)
    second = await call(http, "POST", f"{base}/actions", json=action, headers=AUTH)
    assert first[0] == second[0] == 202
    assert first[1]["id"] == second[1]["id"] and second[1]["actions"][0]["duplicate"] is True
    assert await count_actions(store) == 1


async def test_a_list_is_accepted_and_a_full_queue_answers_503(
    http: aiohttp.ClientSession, base: str, store: Store
) -> None:
    status, body = await call(http, "POST", f"{base}/actions", json=[ECHO] * 5, headers=AUTH)
    assert status == 202 and len(set(body["ids"])) == 5 and "id" not in body
    async with http.post(f"{base}/actions", json=ECHO, headers=AUTH) as response:
        assert response.status == 503 and response.headers["Retry-After"]
        assert "queue full" in (await response.json())["error"]
    assert await count_actions(store) == 5


async def test_unknown_action_is_404(http: aiohttp.ClientSession, base: str) -> None:
    status, body = await call(http, "GET", f"{base}/actions/act_missing")
    assert status == 404 and "act_missing" in body["error"]


# -- views ------------------------------------------------------------------------------------


async def test_runbook_views_answer_json(http: aiohttp.ClientSession, base: str) -> None:
    await call(http, "POST", f"{base}/actions", json=ECHO, headers=AUTH)
    status, queue = await call(http, "GET", f"{base}/queue")
    assert status == 200 and queue["by_priority"]["normal"] == 1
    status, circuits = await call(http, "GET", f"{base}/circuit-breakers")
    assert status == 200 and isinstance(circuits["circuits"], list)
    status, errors = await call(http, "GET", f"{base}/recent-errors?limit=5")
    assert status == 200 and errors["errors"] == []
    status, limits = await call(http, "GET", f"{base}/rate-limits")
    assert status == 200 and limits["configured"]["notion"] == {"limit": 3, "window_s": 1.0}
    status, body = await call(http, "GET", f"{base}/recent-errors?limit=lots")
    assert status == 400 and "limit" in body["error"]
    status, body = await call(http, "GET", f"{base}/nowhere")
    assert status == 404 and body["error"]


async def test_health_is_healthy_then_unhealthy_with_503(
    http: aiohttp.ClientSession,
    serve: Any,
    base: str,
    settings: Settings,
    store: Store,
    queue: Any,
    clock: FakeClock,
) -> None:
    status, body = await call(http, "GET", f"{base}/health")
    assert status == 200 and body["status"] == "healthy" and body["database"]["ok"]

    async def all_failing() -> list[dict[str, Any]]:
        return [{"platform": p, "ok": False, "detail": "HTTP 503"} for p in ("echo", "notion")]

    health = Health(store, all_failing, clock=clock)
    await health.run_checks()
    deps = make_deps(settings, store, queue, clock)
    deps.health = health.snapshot
    status, body = await call(http, "GET", f"{await serve(deps)}/health")
    assert status == 503 and body["status"] == "unhealthy"
    assert body["platforms"]["notion"]["ok"] is False


# -- workflows and hooks ----------------------------------------------------------------------


async def test_workflow_runs_start_once_per_key_and_are_visible(
    http: aiohttp.ClientSession, base: str, store: Store
) -> None:
    request = {"input": {"version": "1.2"}, "idempotency_key": "release-1.2"}
    url = f"{base}/workflows/release/runs"
    status, run = await call(http, "POST", url, json=request, headers=AUTH)
    assert status == 202 and run["workflow"] == "release" and run["status"] == "running"
    status, again = await call(http, "POST", url, json=request, headers=AUTH)
    assert status == 202 and again["id"] == run["id"] and again["duplicate"] is True
    status, seen = await call(http, "GET", f"{base}/runs/{run['id']}")
    assert status == 200 and seen["current"] == ["build"]
    assert await count_runs(store) == 1
    assert await count_actions(store) == 1  # the first step is in the queue


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/workflows/nope/runs", {}, 404, "no workflow named 'nope'"),
        ("/workflows/release/runs", {}, 400, "missing input(s): version"),
        ("/workflows/release/runs", {"version": "1"}, 400, "unknown field(s): version"),
        ("/workflows/release/runs", {"input": [1]}, 400, "input: expected a JSON object"),
        ("/workflows/release/runs", [], 400, "expected a JSON object"),
    ],
)
async def test_bad_run_requests_are_refused(
    http: aiohttp.ClientSession,
    base: str,
    store: Store,
    path: str,
    body: Any,
    status: int,
    message: str,
) -> None:
    got, answer = await call(http, "POST", base + path, json=body, headers=AUTH)
    assert got == status and message in answer["error"]
    assert await count_runs(store) == 0


async def test_unknown_run_is_404(http: aiohttp.ClientSession, base: str) -> None:
    status, body = await call(http, "GET", f"{base}/runs/run_missing")
    assert status == 404 and "run_missing" in body["error"]


async def test_without_a_runner_workflow_endpoints_answer_501(
    http: aiohttp.ClientSession,
    serve: Any,
    settings: Settings,
    store: Store,
    queue: Any,
    clock: FakeClock,
) -> None:
    url = await serve(make_deps(settings, store, queue, clock, runner=None))
    status, body = await call(http, "POST", f"{url}/workflows/x/runs", json={}, headers=AUTH)
    assert status == 501 and "no workflow runner" in body["error"]
    assert (await call(http, "GET", f"{url}/runs/r1"))[0] == 501


async def test_signed_hook_starts_its_workflow_once(
    http: aiohttp.ClientSession, base: str, store: Store, clock: FakeClock
) -> None:
    body = json.dumps({"version": "2.0"}).encode()
    headers = signed_headers(HOOK_SECRET, body, clock())
    status, run = await call(http, "POST", f"{base}/hooks/deploy", data=body, headers=headers)
    assert status == 202 and run["workflow"] == "release" and run["input"] == {"version": "2.0"}
    status, refused = await call(http, "POST", f"{base}/hooks/deploy", data=body, headers=headers)
    assert status == 401 and "replayed" in refused["error"]
    assert await count_runs(store) == 1


@pytest.mark.parametrize(
    ("secret", "skew", "tamper", "reason"),
    [
        ("wrong-secret", 0, False, "does not match"),
        (HOOK_SECRET, -400, False, "away from now"),
        (HOOK_SECRET, 0, True, "does not match"),
    ],
)
async def test_badly_signed_hooks_are_refused(
    http: aiohttp.ClientSession,
    base: str,
    store: Store,
    clock: FakeClock,
    secret: str,
    skew: int,
    tamper: bool,
    reason: str,
) -> None:
    body = b'{"version": "3.0"}'
    headers = signed_headers(secret, body, clock() + skew)
    sent = body.replace(b"3.0", b"6.6") if tamper else body
    status, answer = await call(http, "POST", f"{base}/hooks/deploy", data=sent, headers=headers)
    assert status == 401 and reason in answer["error"]
    assert await count_runs(store) == 0


async def test_unknown_hook_is_404_after_verification(
    http: aiohttp.ClientSession, base: str, clock: FakeClock
) -> None:
    headers = signed_headers(HOOK_SECRET, b"{}", clock())
    status, body = await call(http, "POST", f"{base}/hooks/other", data=b"{}", headers=headers)
    assert status == 404 and "OPSBOT_HOOKS" in body["error"]
    unsigned = await call(http, "POST", f"{base}/hooks/other", data=b"{}")
    assert unsigned[0] == 401


async def test_hooks_are_disabled_without_a_secret(
    http: aiohttp.ClientSession,
    serve: Any,
    settings: Settings,
    store: Store,
    queue: Any,
    clock: FakeClock,
) -> None:
    plain = settings.model_copy(update={"opsbot_hook_secret": None})
    deps = make_deps(plain, store, queue, clock)
    deps.verifier = None
    status, body = await call(http, "POST", f"{await serve(deps)}/hooks/deploy", data=b"{}")
    assert (status, body["error"]) == (403, "disabled: set OPSBOT_HOOK_SECRET")


# -- end to end: the runtime with the surface mounted -----------------------------------------


class Receiver:
    """A callback endpoint on 127.0.0.1 that checks our signature; can fail the first N calls."""

    def __init__(self, secret: str, fail_first: int = 0) -> None:
        self.verifier = Verifier(secret)
        self.fail_first = fail_first
        self.calls = 0
        self.received: list[dict[str, Any]] = []
        self.got = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.read()
        try:
            self.verifier.verify(request.headers, body)
        except SignatureInvalid as exc:
            return web.Response(status=401, text=str(exc))
        if self.calls <= self.fail_first:
            return web.Response(status=503)
        self.received.append(json.loads(body))
        self.got.set()
        return web.Response(status=204)


@pytest.fixture
async def receiver_url() -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(receiver: Receiver) -> str:
        app = web.Application()
        app.router.add_post("/done", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/done"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_submitted_action_is_executed_and_its_callback_is_signed(
    http: aiohttp.ClientSession, settings: Settings, receiver_url: Any
) -> None:
    from bot.runtime import Runtime
    from bot.surface import Surface

    secret = SecretStr("cb-secret-for-tests")
    settings = settings.model_copy(update={"opsbot_callback_secret": secret})
    receiver = Receiver("cb-secret-for-tests")
    callback = await receiver_url(receiver)
    runtime = Runtime(settings)
    surface = Surface(runtime, host="127.0.0.1", port=0)
    runtime.services.append(surface)
    async with runtime:
        base = f"http://127.0.0.1:{surface.web.port}"
        action = {**ECHO, "callback_url": callback}
        status, body = await call(http, "POST", f"{base}/actions", json=action, headers=AUTH)
        assert status == 202
        await asyncio.wait_for(receiver.got.wait(), 10)
        (payload,) = receiver.received
        assert payload["id"] == body["id"] and payload["status"] == "succeeded"
        status, view = await call(http, "GET", f"{base}/actions/{body['id']}")
        assert view["status"] == "succeeded"
        status, metrics = await call(http, "GET", f"{base}/metrics")
        assert (
            'opsbot_actions_total{outcome="succeeded",platform="echo",type="echo"} 1.0' in metrics
        )


async def test_callback_is_retried_with_backoff_then_delivered(
    store: Store, queue: Any, receiver_url: Any
) -> None:
    from bot.callbacks import CallbackDispatcher, Delivery

    receiver = Receiver("s3cret-value", fail_first=2)
    url = await receiver_url(receiver)
    delays: list[float] = []

    async def no_sleep(seconds: float) -> None:
        delays.append(seconds)

    dispatcher = CallbackDispatcher(queue, "s3cret-value", sleep=no_sleep, base_delay=1.0)
    payload = {"id": "act_1", "status": "succeeded", "result": {"ok": True}}
    await dispatcher.submit([Delivery(("action", "act_1", "succeeded", 1.0), url, payload)])
    await dispatcher.flush()
    await dispatcher.stop()
    assert receiver.calls == 3 and delays == [1.0, 2.0]
    assert receiver.received[0]["result"] == {"ok": True}
