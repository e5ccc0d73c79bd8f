"""One contract suite for every executor, run against its stand-in over real HTTP.

To plug a platform in (see test_contract_notion.py):

    from tests.integration.contract import ContractSuite, Op, Platform, pytest_generate_tests

    class TestMyPlatform(ContractSuite):
        CASES = [Op("create_x", setup=..., done=..., undone=..., result_keys=("id", "url"))]

        @pytest.fixture
        async def platform(self) -> AsyncIterator[Platform]:
            throttle = CountingThrottle()
            async with MyStandIn() as standin:
                executor = MyExecutor(..., base_url=standin.base_url, throttle=throttle,
                                      timeout=SLOW_TIMEOUT)
                yield Platform(executor, standin, throttle)
                await executor.aclose()

`pytest_generate_tests` must be imported into the test module: it parametrizes `case` over CASES
and `fault` over FAULTS. Each check reads the stand-in's STATE (what really happened), never the
calls made. The executor under test must use a timeout of at most SLOW_TIMEOUT seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from executors.base import (
    JSON,
    AuthError,
    Executor,
    NotReversible,
    PermanentError,
    RateLimited,
    RetryableError,
)
from executors.sandbox.standin import StandIn

SLOW_TIMEOUT = 0.5  # seconds: the executor's timeout in contract tests
SLOW_DELAY = 2.0  # the stand-in's "slow" fault: well beyond SLOW_TIMEOUT

Check = Callable[[Any, JSON, JSON], None]  # (stand-in, data, result) -> asserts on stand-in state


class CountingThrottle:
    """A Throttle that counts: every HTTP request must be preceded by one call."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1


@dataclass(frozen=True)
class Op:
    """One operation with sample data and checks on the stand-in's state.

    setup(standin) seeds what the operation needs (directly in the stand-in's state, no requests)
    and returns the action data. done/undone assert the state after the operation / after its
    compensation; undone=None declares the operation irreversible (compensate must raise
    NotReversible). `required` are the parameters whose absence must be refused before any call.
    """

    type: str
    setup: Callable[[Any], JSON]
    done: Check
    undone: Check | None
    result_keys: tuple[str, ...] = ("id", "url")
    required: tuple[str, ...] = ()
    id: str = ""  # test id; defaults to type

    def __str__(self) -> str:
        return self.id or self.type


@dataclass(frozen=True)
class Fault:
    """A fault switched on the stand-in for every request, and the error it must become."""

    kind: str
    error: type[Exception]
    not_error: type[Exception] | None = None  # a subclass the error must NOT be
    options: dict[str, Any] = field(default_factory=dict)
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.kind


FAULTS = [
    Fault("429", RateLimited, options={"retry_after": 2}, retry_after=2.0),
    Fault("503", RetryableError, not_error=RateLimited),
    Fault("slow", RetryableError, not_error=RateLimited, options={"delay": SLOW_DELAY}),
    Fault("401", AuthError),
    Fault("404", PermanentError, not_error=AuthError, options={"status": 404}),
    Fault("400", PermanentError, not_error=AuthError, options={"status": 400}),
]


@dataclass
class Platform:
    executor: Executor
    standin: StandIn
    throttle: CountingThrottle


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    cls = metafunc.cls
    if cls is None or not issubclass(cls, ContractSuite):
        return
    if "missing" in metafunc.fixturenames:
        pairs = [(case, name) for case in cls.CASES for name in case.required]
        metafunc.parametrize(("case", "missing"), pairs, ids=[f"{c}-{n}" for c, n in pairs])
    elif "case" in metafunc.fixturenames:
        metafunc.parametrize("case", cls.CASES, ids=str)
    if "fault" in metafunc.fixturenames:
        metafunc.parametrize("fault", FAULTS, ids=str)


class ContractSuite:
    """The contract. Subclasses set CASES (FAULT_CASE: the operation faults are tried on) and
    provide a `platform` fixture."""

    CASES: ClassVar[Sequence[Op]] = ()
    FAULT_CASE: ClassVar[int] = 0

    async def test_operation_succeeds_and_compensation_undoes_it(
        self, platform: Platform, case: Op
    ) -> None:
        executor, standin = platform.executor, platform.standin
        data = case.setup(standin)
        before, throttled = len(standin.stats.requests), platform.throttle.calls
        result = await executor.operations[case.type](data)
        for key in case.result_keys:
            assert result.get(key), f"{case}: result lacks {key!r}: {result}"
        case.done(standin, data, result)
        # One throttle call per HTTP request: the platform's limit counts requests, not actions.
        assert platform.throttle.calls - throttled == len(standin.stats.requests) - before
        if case.undone is None:
            assert not executor.reversible(case.type)
            with pytest.raises(NotReversible):
                await executor.compensate(case.type, data, result)
            return
        assert executor.reversible(case.type)
        await executor.compensate(case.type, data, result)
        case.undone(standin, data, result)

    async def test_missing_parameter_is_refused_before_any_request(
        self, platform: Platform, case: Op, missing: str
    ) -> None:
        data = dict(case.setup(platform.standin))
        data.pop(missing, None)
        before = len(platform.standin.stats.requests)
        with pytest.raises(PermanentError) as caught:
            await platform.executor.operations[case.type](data)
        assert missing in str(caught.value)
        assert not isinstance(caught.value, AuthError)
        assert len(platform.standin.stats.requests) == before

    async def test_fault_maps_to_error_type(self, platform: Platform, fault: Fault) -> None:
        case = self.CASES[self.FAULT_CASE]
        data = case.setup(platform.standin)
        platform.standin.faults.set(fault.kind, **fault.options)
        with pytest.raises(fault.error) as caught:
            await platform.executor.operations[case.type](data)
        if fault.not_error is not None:
            assert not isinstance(caught.value, fault.not_error), repr(caught.value)
        if fault.retry_after is not None:
            assert getattr(caught.value, "retry_after", None) == fault.retry_after
        assert getattr(caught.value, "platform", None) == platform.executor.platform

    async def test_check_reports_health(self, platform: Platform) -> None:
        healthy = await platform.executor.check()
        assert healthy.ok, healthy.detail
        platform.standin.faults.set("401")
        broken = await platform.executor.check()
        assert not broken.ok
        assert broken.platform == platform.executor.platform

    async def test_every_operation_is_covered(self, platform: Platform) -> None:
        covered = {case.type for case in self.CASES}
        assert set(platform.executor.operations) <= covered


# Seconds: a callback holding the loop longer than this during the test's call phase fails it.
# Fixture setup is not watched: building an HTTP client loads the CA bundle once (~0.1 s), as the
# runtime does at start-up, before it serves anything.
SLOW_CALLBACK = 0.2


@pytest.fixture
async def no_blocking(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    """asyncio debug mode for the test: any callback or task step that holds the event loop for
    more than SLOW_CALLBACK seconds (a sync SDK call on the loop, say) fails it. Opt in with
    `pytestmark = pytest.mark.usefixtures("no_blocking")` after importing this fixture."""
    loop = asyncio.get_running_loop()
    debug, slow = loop.get_debug(), loop.slow_callback_duration
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_CALLBACK
    caplog.set_level(logging.WARNING, logger="asyncio")
    try:
        yield
    finally:
        loop.set_debug(debug)
        loop.slow_callback_duration = slow
    records = caplog.get_records("call")
    blocked = [
        r.getMessage() for r in records if r.name == "asyncio" and " took " in r.getMessage()
    ]
    assert not blocked, f"event loop blocked: {blocked}"
