"""The operator surface as one runtime Service: metrics, alerts, health checks, callbacks, HTTP.

The runtime adds it before entering (`runtime.services.append(Surface(runtime))`); `start()` runs
after the runtime has built its store, queue, executors, breakers and pool, and wires them:

- Metrics (own registry) counting the queue's outcome bus, plus the store and limiter
  collectors; the per-attempt log line from the same bus;
- Alerter + AlertRules (bus events, periodic state rules), sinks from ALERT_CHANNELS and the Slack
  poster when the Slack app provides one;
- Health with the live executors' checks every OPSBOT_HEALTH_INTERVAL seconds;
- CallbackDispatcher for actions with a callback_url;
- the HTTP API on OPSBOT_HTTP_PORT (`serve_http=False` for `opsbot worker`: a worker-only
  process logs, alerts, checks and calls back like `opsbot run`, and its counters show on the
  /metrics of the process that serves HTTP, read from the store: bot.metrics_ledger).
`stop()` undoes it in reverse order; every task it created is cancelled and awaited.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from bot.alert_rules import AlertRules
from bot.alert_sinks import SlackPost, sinks_from_settings
from bot.alerts import Alerter
from bot.callbacks import CallbackDispatcher
from bot.health import Health
from bot.logs import log_attempt_view
from bot.metrics import Metrics
from bot.web import WebDeps, WebService
from executors.base import Executor

CHECK_TIMEOUT = 15.0


class Surface:
    def __init__(
        self,
        runtime: Any,
        *,
        slack_post: SlackPost | None = None,
        runner: Any = None,
        host: str = "0.0.0.0",
        port: int | None = None,
        serve_http: bool = True,
    ) -> None:
        self.runtime = runtime
        self.serve_http = serve_http
        self.slack_post = slack_post
        self.runner = runner
        self.host = host
        self.port = port
        self.metrics: Metrics = getattr(runtime, "metrics", None) or Metrics()
        self._unsubscribe: list[Callable[[], None]] = []
        self.web: WebService | None = None
        self.callbacks: CallbackDispatcher | None = None
        self.health: Health | None = None
        self.rules: AlertRules | None = None
        self.alerter: Alerter | None = None

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # the runtime only stops services whose start() returned
            raise

    async def _start(self) -> None:
        rt, settings, clock = self.runtime, self.runtime.settings, self.runtime.clock
        if self.serve_http:  # the scraped process reads every process's work from the store
            await asyncio.to_thread(self.metrics.add_store_collector, rt.store, clock)
        self._unsubscribe.append(self.metrics.bind_queue(rt.queue))
        self._unsubscribe.append(rt.queue.subscribe(log_attempt_view))
        if getattr(rt, "limiters", None) is not None:
            self.metrics.add_limiter_collector(rt.limiters)
        sinks = sinks_from_settings(settings, self.slack_post, clock)
        self.alerter = Alerter(
            rt.store, sinks, threshold=settings.alert_failure_threshold, clock=clock,
            metrics=self.metrics,
        )  # fmt: skip
        self.rules = AlertRules(self.alerter, clock=clock)
        self._unsubscribe.append(rt.queue.subscribe(self.rules.on_outcome))
        self.rules.start()
        self.health = Health(
            rt.store, live_checks(rt.executors, rt.disabled),
            interval=settings.opsbot_health_interval, clock=clock,
            on_auth_failure=self.rules.auth_failure, on_auth_ok=self.rules.auth_ok,
        )  # fmt: skip
        self.health.start()
        secret = settings.opsbot_callback_secret
        self.callbacks = CallbackDispatcher(
            rt.queue, secret.get_secret_value() if secret else None, metrics=self.metrics
        )
        self.callbacks.start()
        if self.serve_http:
            await self._start_web()

    async def _start_web(self) -> None:
        rt, settings = self.runtime, self.runtime.settings
        assert self.health is not None
        ops_ctx = rt.ops_context()
        limiters = getattr(rt, "limiters", None)
        deps = WebDeps(
            settings=settings, queue=rt.queue, ops=ops_ctx, metrics=self.metrics,
            health=self.health.snapshot, runner=self.runner or rt.runner,
            rate_limits=(lambda: _limiter_stats(limiters)) if limiters is not None else None,
        )  # fmt: skip
        self.web = WebService(deps, host=self.host, port=self.port)
        await self.web.start()

    async def stop(self) -> None:
        if self.web is not None:
            await self.web.stop()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for part in (self.callbacks, self.health, self.rules):
            if part is not None:
                await part.stop()
        if self.alerter is not None:
            await self.alerter.aclose()


def live_checks(executors: dict[str, Executor], disabled: dict[str, str]) -> Callable[[], Any]:
    """The running executors' check(), each bounded, disabled platforms saying why."""

    async def one(platform: str, executor: Executor) -> dict[str, Any]:
        try:
            result = await asyncio.wait_for(executor.check(), CHECK_TIMEOUT)
        except TimeoutError:
            return {"platform": platform, "ok": False, "detail": "no answer within 15 s"}
        except Exception as exc:  # a check reports; it never crashes the health loop
            return {"platform": platform, "ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        return {"platform": platform, "ok": result.ok, "detail": result.detail,
                "latency_ms": result.latency_ms}  # fmt: skip

    async def run() -> list[dict[str, Any]]:
        checked = await asyncio.gather(*(one(p, e) for p, e in executors.items()))
        off = [{"platform": p, "ok": False, "detail": f"disabled: {why}"}
               for p, why in disabled.items()]  # fmt: skip
        return [*checked, *off]

    return run


def _limiter_stats(limiters: Any) -> dict[str, Any]:
    return {p: dataclasses.asdict(s) for p, s in limiters.stats().items()}
