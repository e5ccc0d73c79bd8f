"""Headless Chromium driven over the Chrome DevTools Protocol with aiohttp (no new dependency).

async with Browser.launch(tmp_dir) as browser:
    await browser.goto(url)
    await browser.wait_js("document.title === 'x'")
    png = await browser.screenshot()
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--remote-debugging-port=0", "--window-size=1500,1400",
)  # fmt: skip
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class CdpError(RuntimeError):
    pass


class Browser:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, profile: Path, within: float = 30.0) -> AsyncIterator[Browser]:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        try:
            browser_ws = await asyncio.wait_for(_devtools_url(proc), within)
            port = browser_ws.split(":")[2].split("/")[0]
            async with aiohttp.ClientSession() as http:
                page_ws = await _page_target(http, port, within)
                async with http.ws_connect(page_ws, max_msg_size=0) as ws:
                    yield cls(ws)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # chromium and its helper processes
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            shutil.rmtree(profile, ignore_errors=True)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        call_id = next(self._ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params or {}})
        async for msg in self.ws:
            data = json.loads(msg.data)
            if data.get("id") == call_id:
                if "error" in data:
                    raise CdpError(f"{method}: {data['error']}")
                result: dict[str, Any] = data["result"]
                return result
        raise CdpError("the browser closed the connection")

    async def goto(self, url: str) -> None:
        await self.send("Page.enable")
        await self.send("Page.navigate", {"url": url})

    async def js(self, expression: str) -> Any:
        """Evaluate in the page (promises awaited); the value, or CdpError with the exception."""
        answer = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in answer:
            raise CdpError(json.dumps(answer["exceptionDetails"])[:800])
        return answer["result"].get("value")

    async def wait_js(self, condition: str, within: float = 15.0) -> Any:
        """Wait (in the page, bounded) until `condition` is truthy; return its value."""
        poll = (
            "new Promise((resolve) => { const end = Date.now() + MS;"
            " (function poll() { let v = null; try { v = (COND); } catch (e) { v = null; }"
            " if (v || Date.now() > end) resolve(v || null); else setTimeout(poll, 50); })(); })"
        )
        poll = poll.replace("MS", str(int(within * 1000))).replace("COND", condition)
        value = await self.js(poll)
        if not value:
            raise TimeoutError(f"page condition not met in {within:g} s: {condition}")
        return value

    async def screenshot(self) -> bytes:
        shot = await self.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        return base64.b64decode(shot["data"])


async def _devtools_url(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    while line := await proc.stderr.readline():
        found = _LISTENING.search(line.decode(errors="replace"))
        if found:
            return found.group(1)
    raise CdpError(f"chromium exited ({await proc.wait()}) before DevTools listened")


async def _page_target(http: aiohttp.ClientSession, port: str, within: float) -> str:
    async with asyncio.timeout(within):
        while True:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
            await asyncio.sleep(0.05)
