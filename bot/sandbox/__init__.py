"""The sandbox: the whole bot on one machine against local stand-ins, and a page to watch it.

`run_sandbox()` is what `opsbot run` does without Slack tokens (or with `--sandbox`);
`running_sandbox()` is the same as an async context manager; `Sandbox` starts the stand-ins only.
"""

from bot.sandbox.run import SandboxRun, default_build, run_sandbox, running_sandbox
from bot.sandbox.standins import SANDBOX_USER, Sandbox

__all__ = ["SANDBOX_USER", "Sandbox", "SandboxRun", "default_build", "run_sandbox",
           "running_sandbox"]  # fmt: skip
