"""What every emulator shares: latency distributions, fault injection, and the control routes
tests use to steer them (``/_emulator/...``).

Faults are either scheduled (``schedule``: the next N sessions or requests get this fault,
deterministic, for tests) or random (``rates``: a probability per session or request, for chaos
and load runs), drawn from a seeded generator so runs are repeatable.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiohttp import web


class Fault(StrEnum):
    #: keep the connection open but send nothing more (a silent provider)
    STALL = "stall"
    #: drop the connection mid-stream, without a close handshake where the transport allows
    DISCONNECT = "disconnect"
    #: HTTP 429 with retry-after (or the vendor's websocket equivalent)
    RATE_LIMIT = "rate_limit"
    #: HTTP 529 / overloaded_error (Anthropic) or the vendor's 5xx equivalent
    OVERLOADED = "overloaded"
    #: a message that is not valid for the protocol
    MALFORMED = "malformed"
    #: reject the credentials
    AUTH = "auth"


@dataclass(frozen=True, kw_only=True)
class LatencyProfile:
    """A log-normal delay with the given median and 95th percentile, in milliseconds.

    Log-normal because service latencies are right-skewed: most requests near the median,
    a long tail. ``median_ms=0`` means no delay.
    """

    median_ms: float
    p95_ms: float

    def __post_init__(self) -> None:
        if self.median_ms < 0 or self.p95_ms < self.median_ms:
            raise ValueError("need 0 <= median_ms <= p95_ms")

    def sample_s(self, rng: random.Random) -> float:
        if self.median_ms == 0:
            return 0.0
        sigma = math.log(self.p95_ms / self.median_ms) / 1.645 if self.p95_ms > self.median_ms else 0.0
        return rng.lognormvariate(math.log(self.median_ms), sigma) / 1000

    async def wait(self, rng: random.Random) -> float:
        """Sleep one sampled delay; returns it in seconds."""
        delay = self.sample_s(rng)
        if delay > 0:
            await asyncio.sleep(delay)
        return delay


NO_DELAY = LatencyProfile(median_ms=0, p95_ms=0)


@dataclass
class FaultInjector:
    """Decides which session or request gets which fault."""

    seed: int = 0
    rates: dict[Fault, float] = field(default_factory=dict)
    _scheduled: deque[Fault] = field(default_factory=deque)
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def schedule(self, fault: Fault, count: int = 1) -> None:
        self._scheduled.extend([fault] * count)

    def next_fault(self) -> Fault | None:
        """The fault for the session or request starting now, if any (counted)."""
        fault: Fault | None = self._scheduled.popleft() if self._scheduled else None
        if fault is None:
            for candidate, rate in self.rates.items():
                if self.rng.random() < rate:
                    fault = candidate
                    break
        if fault is not None:
            self.injected[fault.value] += 1
        return fault

    def clear(self) -> None:
        self._scheduled.clear()
        self.rates.clear()


@dataclass
class EmulatorControl:
    """The knobs of one emulator: its latency profiles by name, its faults, its counters."""

    name: str
    latency: dict[str, LatencyProfile]
    faults: FaultInjector = field(default_factory=FaultInjector)
    stats: Counter[str] = field(default_factory=Counter)

    @property
    def rng(self) -> random.Random:
        return self.faults.rng

    async def delay(self, stage: str) -> float:
        """Wait the sampled latency of ``stage`` (a key of ``latency``)."""
        return await self.latency.get(stage, NO_DELAY).wait(self.rng)

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latency": {k: {"median_ms": v.median_ms, "p95_ms": v.p95_ms} for k, v in self.latency.items()},
            "fault_rates": {k.value: v for k, v in self.faults.rates.items()},
            "faults_injected": dict(self.faults.injected),
            "stats": dict(self.stats),
        }


CONTROL = web.AppKey("emulator_control", EmulatorControl)


async def _get_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[CONTROL].snapshot())


async def _post_faults(request: web.Request) -> web.Response:
    """``{"schedule": [{"fault": "stall", "count": 1}], "rates": {"overloaded": 0.05}, "clear": true}``"""
    control = request.app[CONTROL]
    body = await request.json()
    try:
        if body.get("clear"):
            control.faults.clear()
        for item in body.get("schedule", []):
            control.faults.schedule(Fault(item["fault"]), int(item.get("count", 1)))
        for name, rate in body.get("rates", {}).items():
            control.faults.rates[Fault(name)] = float(rate)
    except (KeyError, ValueError, TypeError) as e:
        raise web.HTTPBadRequest(text=f"bad fault request: {e}") from e
    return web.json_response(control.snapshot())


async def _post_latency(request: web.Request) -> web.Response:
    """``{"llm_first_token": {"median_ms": 350, "p95_ms": 700}}``"""
    control = request.app[CONTROL]
    body = await request.json()
    try:
        for stage, profile in body.items():
            control.latency[stage] = LatencyProfile(
                median_ms=float(profile["median_ms"]), p95_ms=float(profile["p95_ms"])
            )
    except (KeyError, ValueError, TypeError) as e:
        raise web.HTTPBadRequest(text=f"bad latency request: {e}") from e
    return web.json_response(control.snapshot())


def add_control_routes(app: web.Application, control: EmulatorControl) -> None:
    """``GET /_emulator/state``, ``POST /_emulator/faults``, ``POST /_emulator/latency``."""
    app[CONTROL] = control
    app.router.add_get("/_emulator/state", _get_state)
    app.router.add_post("/_emulator/faults", _post_faults)
    app.router.add_post("/_emulator/latency", _post_latency)
