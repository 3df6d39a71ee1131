"""Shared fixtures: engines loaded once per test session, and a real server on loopback."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bots.base import BotFactory
from runtime.app_state import STATE, ServerState
from runtime.audio import Pcm, ulaw_to_pcm
from runtime.bot_config import BotCoreOptions
from runtime.config import Settings, SilenceOptions
from runtime.engines import EngineOptions, Engines, load_engines
from runtime.server import create_app
from runtime.storage_config import StorageOptions
from runtime.stt import WhisperStt
from runtime.tts import PiperTts

AUTH_TOKEN = "test-auth-token"
API_TOKEN = "test-api-token"


@pytest.fixture(scope="session")
def scripted_engines() -> Iterator[Engines]:
    """Silero VAD plus scripted STT/TTS: the runtime without model inference."""
    yield load_engines(EngineOptions(stt="scripted", tts="scripted"))


@pytest.fixture(scope="session")
def real_engines() -> Iterator[Engines]:
    """The offline defaults (Silero, Whisper tiny.en, Piper), loaded once for the whole run."""
    yield load_engines(EngineOptions(stt="whisper", tts="piper"))


#: A caller's line the offline engines must get right (Piper speaks it, Whisper hears it).
SENTENCE = "I am looking to buy a three bedroom house in Austin."


@pytest.fixture(scope="module")
async def whisper() -> AsyncIterator[WhisperStt]:
    engine = WhisperStt()
    yield engine
    await engine.aclose()


@pytest.fixture(scope="module")
async def sentence_audio() -> AsyncIterator[Pcm]:
    """Piper on the phone path: 22.05 kHz -> 8 kHz -> mu-law -> decoded, as Twilio delivers it."""
    tts = PiperTts()
    ulaw = await tts.render(SENTENCE)
    await tts.aclose()
    yield ulaw_to_pcm(ulaw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RunningServer:
    app: web.Application
    base_url: str
    settings: Settings

    @property
    def state(self) -> ServerState:
        return self.app[STATE]


def make_settings(port: int, **overrides: Any) -> Settings:
    """Settings of a test server. Its calls get the minimal three-question Lead bot unless a test
    asks for another: the pipeline's tests want a conversation that never branches, and the bot
    core's whole calls are tested on their own (tests/test_qualifier_calls.py). Nothing is kept
    beyond the in-memory reports unless a test asks (tests/test_call_keeping.py)."""
    base = Settings.from_env(
        {},
        twilio_auth_token=AUTH_TOKEN,
        api_token=API_TOKEN,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        silence=SilenceOptions(prompt_after_s=30, hangup_after_prompt_s=30),
        bot_core=BotCoreOptions(core="lead"),
        # Calls are kept (store, bus, recordings) only by the tests about keeping them.
        storage=StorageOptions(keep_calls=False),
    )
    return dataclasses.replace(base, **overrides)


StartServer = Callable[..., Awaitable[RunningServer]]
#: The time of day test servers see: 1 pm on a Monday in Austin (9 am in Honolulu, 2 pm in New
#: York), inside TCPA's calling hours all over the US, so dialling tests pass whenever they run.
DAYTIME = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """Start real servers on loopback with preloaded engines; all are stopped afterwards."""
    runners: list[web.AppRunner] = []

    async def start(
        preloaded: Engines | None,
        bots: BotFactory | None = None,
        load: Callable[[EngineOptions], Engines] = load_engines,
        wall_clock: Callable[[], datetime] = lambda: DAYTIME,
        **overrides: Any,
    ) -> RunningServer:
        port = free_port()
        settings = make_settings(port, **overrides)
        app = create_app(settings, preloaded, bots, load)
        app[STATE].wall_clock = wall_clock
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return RunningServer(app, f"http://127.0.0.1:{port}", settings)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@contextlib.asynccontextmanager
async def on_loopback(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` (an emulator) on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
