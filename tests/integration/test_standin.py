"""The stand-in base: credentials, faults (Python and HTTP), rate limit, stats, persistence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from executors.sandbox.standin import StandIn, Stats


class Counter(StandIn):
    """A minimal platform: GET /count reads, POST /count increments; bearer token `good`."""

    name = "counter"

    def initial_state(self) -> dict[str, Any]:
        return {"count": 0}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/count", self._get)
        app.router.add_post("/count", self._post)

    def authorize(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == "Bearer good"

    async def _get(self, request: web.Request) -> web.Response:
        return web.json_response(self.state)

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.state["count"] += int(body.get("by", 1))
        self.changed()
        return web.json_response(self.state)


AUTH = {"Authorization": "Bearer good"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_serves_state_and_records_requests(http: aiohttp.ClientSession) -> None:
    async with Counter() as standin:
        assert standin.base_url.startswith("http://127.0.0.1:")
        async with http.post(f"{standin.base_url}/count", json={"by": 2}, headers=AUTH) as r:
            assert r.status == 200
        assert standin.state == {"count": 2}
        [call] = standin.stats.calls("POST", "/count")
        assert call.body == {"by": 2}
        assert sum(standin.stats.per_second().values()) == 1


async def test_rejects_bad_credentials_without_running_handler(
    http: aiohttp.ClientSession,
) -> None:
    async with Counter() as standin:
        async with http.post(f"{standin.base_url}/count", json={}) as response:
            assert response.status == 401
        assert standin.state["count"] == 0


async def test_fault_switches_count_down_and_match_path(http: aiohttp.ClientSession) -> None:
    async with Counter() as standin:
        standin.faults.set("503", count=2, path="/count")
        standin.faults.set("429", count=1, retry_after=3)
        url = f"{standin.base_url}/count"
        statuses = []
        for _ in range(4):
            async with http.get(url, headers=AUTH) as response:
                statuses.append((response.status, response.headers.get("Retry-After")))
        assert statuses == [(503, None), (503, None), (429, "3"), (200, None)]
        assert standin.faults.injected == 3
        assert standin.stats.rate_limited == 0  # injected 429s are not the enforced limit


async def test_admin_route_sets_and_clears_faults(http: aiohttp.ClientSession) -> None:
    async with Counter() as standin:
        admin = f"{standin.base_url}/_standin/faults"
        async with http.post(admin, json={"kind": "401"}) as response:
            assert response.status == 201
        async with http.get(f"{standin.base_url}/count", headers=AUTH) as response:
            assert response.status == 401
        async with http.post(admin, json={"kind": "bogus"}) as response:
            assert response.status == 400
        async with http.post(admin, json={"kind": "clear"}) as response:
            assert (await response.json()) == {"faults": []}
        async with http.post(admin, json={"kind": "404", "count": 1, "path": "/count"}):
            pass
        statuses = []
        for _ in range(2):
            async with http.get(f"{standin.base_url}/count", headers=AUTH) as response:
                statuses.append(response.status)
        assert statuses == [404, 200]


async def test_slow_fault_delays_then_answers(http: aiohttp.ClientSession) -> None:
    async with Counter() as standin:
        standin.faults.set("slow", delay=5, count=1)
        timeout = aiohttp.ClientTimeout(total=0.2)
        with pytest.raises(TimeoutError):
            async with http.get(f"{standin.base_url}/count", headers=AUTH, timeout=timeout):
                pass
        async with http.get(f"{standin.base_url}/count", headers=AUTH) as response:
            assert response.status == 200


async def test_sliding_window_rate_limit_answers_429(http: aiohttp.ClientSession) -> None:
    now = [100.0]
    async with Counter(rate_limit=(2, 10.0), clock=lambda: now[0]) as standin:
        url = f"{standin.base_url}/count"
        statuses = []
        for _ in range(3):
            async with http.get(url, headers=AUTH) as response:
                statuses.append((response.status, response.headers.get("Retry-After")))
        now[0] += 10.0
        async with http.get(url, headers=AUTH) as response:
            statuses.append((response.status, None))
        assert statuses == [(200, None), (200, None), (429, "10"), (200, None)]
        assert standin.stats.rate_limited == 1
        assert standin.stats.summary()["statuses"] == {"200": 3, "429": 1}
        async with http.get(f"{standin.base_url}/_standin/stats") as response:
            stats = await response.json()
        # Served requests arrive within real seconds here (the fake clock only drives the limit).
        assert (stats["limit"], stats["served_max_in_window"]) == ([2, 10.0], 3)


async def test_state_survives_restart_through_file(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    state_file = tmp_path / "counter.json"
    async with Counter(state_file=state_file) as first:
        url = f"{first.base_url}/count"
        async with http.post(url, json={"by": 5}, headers=AUTH) as response:
            assert response.status == 200
    async with Counter(state_file=state_file) as second:
        url = f"{second.base_url}/_standin/state"
        async with http.get(url) as response:
            assert (await response.json()) == {"count": 5}


def test_max_in_window_counts_any_sliding_interval() -> None:
    stats = Stats(served=[0.0, 0.5, 1.0, 1.2, 2.5])
    assert stats.max_in_window(1.0) == 3  # 0.5, 1.0, 1.2
    assert stats.max_in_window(0.1) == 1
