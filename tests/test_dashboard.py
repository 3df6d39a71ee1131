"""The dashboard in headless Chromium (Debian's ``chromium``), driven over the DevTools protocol:
the page loads from the app alone, the charts are drawn from a filled store, a live update
arrives after an event is published on the bus, a call's timeline and recording load. A
screenshot is kept at ``test-artifacts/dashboard.png``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from websockets.asyncio.client import ClientConnection, connect

from analytics.live_bus import MemoryLiveBus
from analytics.records import CallRecord, record_to_json
from analytics.store import open_store
from runtime.call_api import CALL_STORE, LIVE_BUS, CallApiOptions, add_call_api_routes
from runtime.dashboard import add_dashboard_routes
from tests.conftest import on_loopback
from tests.test_call_api import NOW, TOKEN, fill

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

#: The only absolute URL the page's files may hold: SVG's namespace name (never fetched).
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


async def test_dashboard_page_and_assets_are_served_without_outside_references(http: aiohttp.ClientSession) -> None:
    app = web.Application()
    add_dashboard_routes(app)
    async with on_loopback(app) as base_url:
        async with http.get(f"{base_url}/dashboard") as page:
            assert page.status == 200 and page.content_type == "text/html"
            assert "script-src 'self'" in page.headers["Content-Security-Policy"]
            html = await page.text()
        for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert asset.startswith("/dashboard/static/"), asset
            async with http.get(base_url + asset) as response:
                assert response.status == 200, asset
                text = await response.text()
            assert set(re.findall(r"https?://[^\s\"'`]+", html + text)) <= {SVG_NAMESPACE}, asset


class DevTools:
    """A minimal DevTools-protocol client over one page session."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.session = ""
        self.exceptions: list[str] = []
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        await self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(await self.socket.recv())
            if reply.get("method") == "Runtime.exceptionThrown":
                self.exceptions.append(json.dumps(reply["params"]["exceptionDetails"])[:500])
            if reply.get("id") == message_id:
                assert "error" not in reply, reply
                result: dict[str, Any] = reply["result"]
                return result

    async def open_page(self, url: str) -> None:
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        self.session = attached["sessionId"]
        await self.send("Runtime.enable")
        await self.send(
            "Emulation.setDeviceMetricsOverride", width=1280, height=1000, deviceScaleFactor=1, mobile=False
        )
        await self.send("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        reply = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 15.0) -> Any:
        """Polls ``expression`` until it is truthy; fails with the last value seen."""
        value = None
        for _ in range(int(timeout_s / 0.1)):
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"{expression} stayed {value!r}; page exceptions: {self.exceptions}")


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[DevTools]:
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # running as root in the test container
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1",
        f"--user-data-dir={profile}",
        "about:blank",
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        endpoint = await asyncio.wait_for(devtools_endpoint(process), timeout=30)
        async with connect(endpoint, max_size=None) as socket:
            yield DevTools(socket)
    finally:
        process.terminate()
        await process.wait()


async def devtools_endpoint(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    while line := (await process.stderr.readline()).decode():
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        if found:
            return found.group(1)
    raise AssertionError("chromium exited before opening DevTools")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package: chromium)")
async def test_dashboard_draws_the_store_and_follows_the_live_feed(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    store = open_store(None, data_dir=tmp_path)
    await fill(store, recordings)
    bus = MemoryLiveBus()
    requested: list[str] = []

    @web.middleware
    async def log_paths(request: web.Request, handler: Any) -> web.StreamResponse:
        requested.append(request.path_qs)
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(middlewares=[log_paths])
    app[CALL_STORE] = store
    app[LIVE_BUS] = bus
    add_call_api_routes(app, CallApiOptions(token=TOKEN, recordings_dir=recordings, clock=lambda: NOW))
    add_dashboard_routes(app)
    try:
        async with on_loopback(app) as base_url, chromium(tmp_path / "profile") as browser:
            await browser.open_page(f"{base_url}/dashboard#token={TOKEN}&tenant=acme")
            await check_the_page(browser, bus)
            ARTIFACTS.mkdir(exist_ok=True)
            shot = await browser.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            (ARTIFACTS / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))
            assert browser.exceptions == []
    finally:
        await store.aclose()
    assert not any(TOKEN in path for path in requested), "the token never goes into a URL"
    assert "/api/v1/calls/CA1/recording" in requested


async def check_the_page(browser: DevTools, bus: MemoryLiveBus) -> None:
    assert await browser.wait_for("document.querySelectorAll('#calls tbody tr').length") == 3
    assert await browser.evaluate("location.hash") == "", "the token is dropped from the address bar"
    # Latency: six stages of ten buckets; first audio 700, 1250 and 2500 ms, two over budget.
    assert await browser.evaluate("document.querySelectorAll('#latency rect.bar').length") == 60
    first_audio = "[...document.querySelectorAll('#latency rect[data-stage=first_audio_ms]')]"
    assert await browser.evaluate(f"{first_audio}.map(r => +r.dataset.count)") == [0, 0, 0, 1, 0, 0, 1, 0, 1, 0]
    assert await browser.evaluate(f"{first_audio}.filter(r => r.classList.contains('over')).length") == 6
    assert await browser.evaluate(f"{first_audio}[3].getAttribute('height') > 0")
    assert await browser.evaluate("document.querySelectorAll('#latency line.budget').length") == 1
    funnel = "[...document.querySelectorAll('#funnel rect.step')].map(r => +r.dataset.count)"
    assert await browser.evaluate(funnel) == [3, 1, 1, 1]
    # Live: the snapshot's active call, then a published call and event.
    await browser.wait_for("!!document.querySelector('#active tbody tr[data-sid=CA2]')")
    for _ in range(100):
        if bus._subscribers["acme"]:
            break
        await asyncio.sleep(0.05)
    new_call = CallRecord(
        call_sid="CA9",
        tenant="acme",
        direction="inbound",
        from_number="+15125550199",
        to_number="+15125550100",
        state="in-progress",
        started_at=NOW,
    )
    await bus.publish("acme", record_to_json(new_call))
    await bus.publish("acme", {"type": "event", "call_sid": "CA9", "kind": "turn_latency", "seq": 1})
    await browser.wait_for("!!document.querySelector('#active tbody tr[data-sid=CA9]')")
    await browser.wait_for("document.querySelector('#feed li[data-type=event]')?.textContent.includes('CA9')")
    assert await browser.evaluate("document.getElementById('active-count').textContent") == "2"
    # One call: its timeline and its recording.
    await browser.evaluate("document.querySelector('#calls tr[data-sid=CA1]').click()")
    await browser.wait_for("document.querySelectorAll('#timeline rect.speech').length")
    kinds = "[...document.querySelectorAll('#timeline [data-kind]')].map(e => e.dataset.kind)"
    assert await browser.evaluate(kinds) == [
        "bot",
        "caller",
        "caller",
        "interruption",
        "silence",
        "caller",
        "dtmf",
        "call_ended",
    ]
    await browser.wait_for("document.getElementById('player').src.startsWith('blob:')")
    duration = await browser.wait_for("document.getElementById('player').duration")
    assert duration == pytest.approx(2.0, abs=0.01)
    assert await browser.evaluate("document.querySelectorAll('#transcript li').length") == 4
