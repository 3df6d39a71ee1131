"""Many calls in a row must not leak tasks, sessions or memory."""

from __future__ import annotations

import asyncio
import gc

import aiohttp
import psutil
import pytest

from runtime.engines import Engines
from tests.conftest import AUTH_TOKEN, StartServer
from tests.twilio_driver import SILENCE_FRAME, StreamDriver

pytestmark = pytest.mark.slow


async def short_call(http: aiohttp.ClientSession, base_url: str) -> None:
    driver = await StreamDriver.open(http, base_url, AUTH_TOKEN)
    await driver.start()
    await driver.send_audio(SILENCE_FRAME * 5, realtime=False)
    await asyncio.sleep(0.03)
    await driver.stop()
    await driver.close()


async def test_hundred_short_calls_leave_no_tasks_and_flat_memory(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    process = psutil.Process()
    for _ in range(10):  # warm up allocator pools and caches
        await short_call(http, server.base_url)
    await asyncio.sleep(0.1)
    gc.collect()
    tasks_before = len(asyncio.all_tasks())
    rss_before = process.memory_info().rss
    for _ in range(100):
        await short_call(http, server.base_url)
    await asyncio.sleep(0.2)
    gc.collect()
    assert server.state.live == {}
    assert len(server.state.sockets) == 0
    assert len(asyncio.all_tasks()) <= tasks_before
    growth_mb = (process.memory_info().rss - rss_before) / 2**20
    assert growth_mb < 15, f"RSS grew {growth_mb:.1f} MB over 100 calls"
    reports = [server.state.reports.get(sid) for sid in list(server.state.reports._reports)[-100:]]
    assert all(r is not None and r.end_reason == "stream_stopped" for r in reports)
