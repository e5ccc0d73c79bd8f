"""`python -m bot run` with no Slack tokens, as a newcomer starts it: the sandbox's console.

One real process in a scratch working directory, its stderr (logs) merged into stdout the way
a terminal shows both: the banner comes after the startup logs with the page, the HTTP API
(on the port really bound when the configured one is taken) and its token, the state folder
and how to stop; no callback-secret warning; Ctrl-C ends with a line saying what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bot.sandbox.run import API_TOKEN

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
WITHIN = 60.0  # seconds for the start (imports, stand-ins, Socket Mode) on a busy machine


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def _env(http_port: int) -> dict[str, str]:
    dropped = ("SLACK_", "OPSBOT_", "NOTION_", "TRELLO_", "GOOGLE_", "DRIVE_", "SHEETS_")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(dropped) and "proxy" not in k.lower()}  # fmt: skip
    env.update(OPSBOT_HTTP_PORT=str(http_port), LOG_LEVEL="INFO",
               PYTHONPATH=str(ROOT))  # fmt: skip
    return env


async def _read_until(stream: asyncio.StreamReader, seen: list[str], pattern: str) -> str:
    """Lines until one matches `pattern` (kept in `seen`); bounded by the caller."""
    while line := (await stream.readline()).decode():
        seen.append(line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"the output ended before {pattern!r}:\n{''.join(seen)}")


async def test_python_m_bot_run_prints_the_banner_last_and_a_stop_line(tmp_path: Path) -> None:
    seen: list[str] = []
    with taken_port() as port:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=tmp_path, env=_env(port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(WITHIN):
                api = await _read_until(proc.stdout, seen, r"HTTP API: ")
                await _read_until(proc.stdout, seen, r"^=+$")  # the end of the block
            real = int(re.findall(r"127\.0\.0\.1:(\d+)", api)[0])
            await _submit_awaiting_approval(real)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(WITHIN):
                rest = (await proc.stdout.read()).decode()
                code = await proc.wait()
    text = "".join(seen)
    assert code == 0, text + rest
    assert real not in (0, port) and f"write token: {API_TOKEN}" in api
    block = text[text.index("opsbot SANDBOX is up") :]
    assert "HTTP API listening" in text[: text.index("opsbot SANDBOX is up")]  # logs first
    assert not re.search(r'^\{"timestamp"', block, re.M)  # no log line inside the block
    assert re.search(r"Page:\s+http://127\.0\.0\.1:\d+/", block)
    assert "var/sandbox/" in block and "Ctrl-C" in block
    assert "OPSBOT_CALLBACK_SECRET" not in text + rest
    last = rest.strip().splitlines()[-1]
    assert last == "opsbot stopped: 1 action still queued, state kept in var/sandbox/", rest


async def _submit_awaiting_approval(port: int) -> None:
    """One action left waiting for a human: it must be counted at the stop."""
    action = {"type": "create_task", "data": {"title": "t"}, "requires_approval": True}
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}/actions", json=action, headers=headers) as r,
    ):
        assert r.status in (200, 201, 202), await r.text()
