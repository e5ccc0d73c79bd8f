"""Build everything from Settings, run it, and stop it cleanly.

`Runtime` owns the store, queue, intake, flow control, executors and worker pool. Front doors
added by later issues (Slack app, HTTP server, scheduler) plug in as `Service`s: objects with
`async start()` and `async stop()`, started after the pool and stopped before it, in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from bot.config import Settings
from bot.flow.breaker import Breakers
from bot.flow.fallback import FallbackChain
from bot.flow.ratelimit import RateLimiters
from bot.flow.retry import RetryPolicy
from bot.intake import Intake
from bot.routing import PLATFORMS
from bot.store.engine import Store
from bot.worker import WorkerPool
from bot.workflows.rollback import WithCompensation
from executors.base import Executor
from executors.registry import build_executors

if TYPE_CHECKING:
    from bot.ops.context import OpsContext
    from bot.queue import Queue

log = logging.getLogger(__name__)


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Runtime:
    """`async with Runtime(settings) as rt: await rt.run_forever()`."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.services: list[Service] = []  # add before entering; Slack, HTTP, scheduler ...
        self.executors: dict[str, Executor] = {}
        self.disabled: dict[str, str] = {}
        self.store: Store
        self.queue: Queue
        self.intake: Intake
        self.pool: WorkerPool
        self.limiters: RateLimiters
        self.breakers: Breakers
        self.policy: RetryPolicy
        self.fallbacks: FallbackChain
        self.runner: Any = None  # the live WorkflowRunner, set by bot.workflows.service
        self.scheduler: Any = None  # the live Scheduler, set by its service
        self._started: list[Service] = []
        self._stop = asyncio.Event()
        self._signals: list[signal.Signals] = []

    def _catch_signals(self) -> None:
        """SIGINT/SIGTERM ask for a clean stop from the moment the runtime starts: one that
        arrives while services are still starting (workers already running actions) must not
        kill the process with those actions half done."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._stop.set)  # main thread only
                self._signals.append(sig)

    def _release_signals(self) -> None:
        loop = asyncio.get_running_loop()
        while self._signals:
            loop.remove_signal_handler(self._signals.pop())

    async def __aenter__(self) -> Runtime:
        self.store = await asyncio.to_thread(Store, self.settings.opsbot_database_url)
        try:
            self._catch_signals()
            self._build()
            await self.pool.start()
            for service in self.services:
                await service.start()
                self._started.append(service)
        except BaseException:
            await self._shutdown()
            raise
        return self

    def _build(self) -> None:
        from bot.queue import Queue

        settings = self.settings
        self.queue = Queue(self.store, settings, clock=self.clock)
        self.intake = Intake(self.queue)
        self.limiters = RateLimiters.from_settings(settings)
        self.breakers = Breakers(
            PLATFORMS,
            settings.circuit_breaker_threshold,
            settings.circuit_breaker_timeout,
            settings.circuit_breaker_half_open_successes,
            self.clock,
        )
        self.policy = RetryPolicy.from_settings(settings)
        self.fallbacks = FallbackChain(settings.fallbacks)
        executors, self.disabled = build_executors(settings, self.limiters.throttle)
        # Every executor also answers "compensate" actions (workflow rollback steps).
        self.executors = {p: WithCompensation(e) for p, e in executors.items()}
        self.pool = WorkerPool(
            self.queue, self.executors, self.limiters, self.breakers, self.policy,
            self.fallbacks, settings, self.clock, store=self.store, disabled=self.disabled,
        )  # fmt: skip

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        """Services, then the pool (drain), then the queue, executors and store; each part
        only if it was built (a failed start cleans up too)."""
        for service in reversed(self._started):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %r failed", service)
        self._started.clear()
        if hasattr(self, "pool"):
            await self.pool.stop(self.settings.opsbot_drain_timeout)
        if hasattr(self, "queue"):
            await self.queue.close()
        for executor in self.executors.values():
            try:
                await executor.aclose()
            except Exception:
                log.exception("closing the %s executor failed", executor.platform)
        await asyncio.to_thread(self.store.close)
        self._release_signals()

    def ops_context(self) -> OpsContext:
        """The ops layer's view of this process: live breakers, pool, runner and scheduler."""
        from bot.ops.context import OpsContext

        return OpsContext(
            store=self.store, settings=self.settings, queue=self.queue, clock=self.clock,
            breakers=self.breakers, pool=self.pool, disabled=self.disabled,
            runner=self.runner, scheduler=self.scheduler,
        )  # fmt: skip

    def request_stop(self) -> None:
        self._stop.set()

    async def run_forever(self) -> None:
        """Run until SIGINT/SIGTERM (caught from the start, see `_catch_signals`) or
        `request_stop()`."""
        await self._stop.wait()


def run_worker(settings: Settings, drain: bool = False) -> int:
    """`opsbot worker [--drain]`: run the workers alone; with drain, exit once nothing is left.

    A worker-only process holds the run lock (so `opsbot restore` refuses while it runs) and
    carries the workflow runner and the operator surface minus the front doors: the per-attempt
    log line, the alerts (ALERT_CHANNELS; Slack #errors over the Web API when SLACK_BOT_TOKEN is
    set), the periodic health checks and the outcome callbacks. No HTTP server and no Socket
    Mode: its counters show on the /metrics of `opsbot run`, read from the store
    (bot.metrics_ledger)."""

    async def main() -> int:
        runtime = Runtime(settings)
        attach_worker_surface(runtime)
        async with runtime:
            if not drain:
                await runtime.run_forever()
                return 0
            drained = asyncio.create_task(_drained(runtime))
            stopped = asyncio.create_task(runtime.run_forever())
            await asyncio.wait({drained, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for task in (drained, stopped):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return 0

    return asyncio.run(main())


async def _drained(runtime: Runtime) -> None:
    """Nothing left to run here, workflow runs included: a step that just finished may make
    the next one due, so the runner sweeps once more before the pool is asked again."""
    while True:
        await runtime.pool.wait_drained()
        if runtime.runner is None:
            return
        await runtime.runner.sweep()
        if not await runtime.pool.work_left():
            return


def attach_worker_surface(runtime: Runtime) -> None:
    """The run lock first (taken before anything else starts), the workflow runner (runs
    started anywhere advance here too), the headless surface last."""
    from bot.backup import RunLock
    from bot.slack_alert_post import slack_alert_post
    from bot.surface import Surface
    from bot.workflows.service import WorkflowService

    runtime.services.insert(0, RunLock(runtime.settings))
    runtime.services.append(WorkflowService(runtime))
    post = slack_alert_post(runtime.settings)
    runtime.services.append(Surface(runtime, slack_post=post, serve_http=False))


def run_all(settings: Settings) -> int:
    """`opsbot run`: everything in one process (see bot/app.py for what that is)."""
    from bot.app import run_all as run_everything

    return run_everything(settings)
