"""Fixtures shared by the CLI tests: a clean environment on the test's own database, and the
`opsbot` CLI through typer's CliRunner (a module may override `env`, e.g. to add files)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No OPSBOT_/SLACK_ variables of the machine, and no .env (the cwd is tmp_path)."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("OPSBOT_", "SLACK_"))}
    return {**keep, "OPSBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'ops.db'}", "LOGNAME": "alice"}


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Any:
        return runner.invoke(app, list(args), input=input, env=env)

    return invoke
