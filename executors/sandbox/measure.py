"""What a stand-in measures and how it fails on purpose: fault switches, the request record,
the sliding-window limit it enforces. Used by `executors.sandbox.standin.StandIn`."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

FAULT_KINDS = {"503": 503, "429": 429, "401": 401, "slow": None}
# What a long sandbox run keeps in memory: the newest records only. Well above one benchmark
# run (300-600 requests per platform, every arrival time needed).
KEPT = 10_000
KEPT_PATHS = 1_000  # per-path arrival times: paths with ids in them are many
T = TypeVar("T")


class Recent(list[T]):
    """A list that keeps its newest `maxlen` items: an append past the bound drops the oldest.
    Still a list for its readers (len, [-1], slices, == [])."""

    def __init__(self, maxlen: int = KEPT, items: Iterable[T] = ()) -> None:
        super().__init__(items)
        self.maxlen = maxlen
        self._trim()

    def append(self, item: T) -> None:
        super().append(item)
        self._trim()

    def _trim(self) -> None:
        if len(self) > self.maxlen:
            del self[: len(self) - self.maxlen]


@dataclass
class Fault:
    """One switch: answer `status` (None: only delay) to the next `count` matching requests."""

    kind: str
    count: int | None = None  # None: every request until cleared
    path: str = ""  # path prefix; "" matches every path
    retry_after: float = 1.0  # for 429
    delay: float = 0.0  # seconds to wait before answering (the "slow" kind, or with any kind)
    status: int | None = None

    def __post_init__(self) -> None:
        if self.status is None and self.kind.isdigit():
            self.status = int(self.kind)  # "404", "500", ...: answer that status
        elif self.status is None and self.kind not in FAULT_KINDS:
            raise ValueError(
                f"fault kind {self.kind!r}: expected one of {', '.join(FAULT_KINDS)} "
                "or an HTTP status"
            )
        elif self.status is None:
            self.status = FAULT_KINDS[self.kind]


class Faults:
    """Run-time fault switches. The first matching switch applies and spends one of its count."""

    def __init__(self) -> None:
        self._switches: list[Fault] = []
        self.injected = 0

    def set(self, kind: str, **options: Any) -> Fault:
        fault = Fault(kind, **options)
        self._switches.append(fault)
        return fault

    def clear(self) -> None:
        self._switches.clear()

    def take(self, path: str) -> Fault | None:
        for fault in self._switches:
            if path.startswith(fault.path):
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._switches.remove(fault)
                self.injected += 1
                return fault
        return None

    def snapshot(self) -> list[dict[str, Any]]:
        return [asdict(fault) for fault in self._switches]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any  # parsed JSON when the request carried JSON, else text (or None)
    at: float


@dataclass
class Stats:
    """What the stand-in saw: the newest KEPT requests, per-path times (the newest KEPT of
    each of the KEPT_PATHS latest paths), answers by status, 429s sent, requests in all."""

    requests: list[Recorded] = field(default_factory=Recent)
    times: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    rate_limited: int = 0  # 429s answered by the enforced limit (not injected faults)
    served: list[float] = field(default_factory=Recent)  # arrival times of answers below 400
    received: int = 0  # every request since the start (`requests` keeps the newest only)

    def record(self, request: Recorded) -> None:
        self.received += 1
        self.requests.append(request)
        stamps = self.times.pop(request.path, None)  # re-inserted: the newest path goes last
        if stamps is None:
            stamps = Recent()
            while len(self.times) >= KEPT_PATHS:
                del self.times[next(iter(self.times))]
        stamps.append(request.at)
        self.times[request.path] = stamps

    def per_second(self, path_prefix: str = "") -> dict[int, int]:
        """Requests per whole second (epoch seconds -> count), for rate graphs and benchmarks."""
        buckets: dict[int, int] = {}
        for path, stamps in self.times.items():
            if path.startswith(path_prefix):
                for stamp in stamps:
                    buckets[int(stamp)] = buckets.get(int(stamp), 0) + 1
        return buckets

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[Recorded]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and r.path.startswith(path_prefix)
        ]

    def max_in_window(self, window: float) -> int:
        """The most requests served (answered below 400) in any `window` seconds: compare it
        with the platform's limit to show the limit was never exceeded."""
        stamps, best, start = sorted(self.served), 0, 0
        for end, stamp in enumerate(stamps):
            while stamps[start] <= stamp - window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def summary(self) -> dict[str, Any]:
        busiest = max(self.per_second().values(), default=0)
        return {
            "requests": self.received,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "rate_limited": self.rate_limited,
            "busiest_second": busiest,
        }


class SlidingWindow:
    """At most `limit` admitted requests in any `window` seconds; `admit` says how long to wait."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._admitted: deque[float] = deque()

    def admit(self) -> float:
        now = self._clock()
        while self._admitted and self._admitted[0] <= now - self.window:
            self._admitted.popleft()
        if len(self._admitted) < self.limit:
            self._admitted.append(now)
            return 0.0
        return self._admitted[0] + self.window - now
