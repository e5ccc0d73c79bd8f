"""The workflow runner as a runtime Service, for `opsbot run` and `opsbot worker` alike: loads
OPSBOT_WORKFLOWS, resumes every active run at start and advances runs as their steps finish.

Any number of processes may run one: a run's status writes are conditional and each step is
submitted under its own idempotency key (`run:<id>:<step>`), so two runners advancing the same
run submit each step once. Runs finishing are counted on /metrics from the audit trail
(bot.metrics_ledger), whichever process finished them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot.workflows.loader import load_workflows
from bot.workflows.runner import WorkflowRunner


class WorkflowService:
    def __init__(self, runtime: Any) -> None:  # bot.runtime.Runtime
        self.runtime = runtime
        self.runner: WorkflowRunner | None = None

    async def start(self) -> None:
        rt = self.runtime
        workflows = await asyncio.to_thread(load_workflows, rt.settings.opsbot_workflows)
        self.runner = WorkflowRunner(rt.store, rt.queue, workflows, rt.settings, rt.clock)
        rt.runner = self.runner
        await self.runner.start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.stop()
