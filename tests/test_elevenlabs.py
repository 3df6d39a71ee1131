"""The ElevenLabs client against the local emulator, over real loopback sockets; the emulator's
wire format against the official SDK (its HTTP client and its message types)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import numpy as np
import pytest
from aiohttp import web
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.types.audio_output_multi import AudioOutputMulti
from elevenlabs.types.final_output_multi import FinalOutputMulti
from websockets.asyncio.client import ClientConnection, connect

from emulators.control import EmulatorControl, Fault, LatencyProfile
from emulators.elevenlabs import alignment, build_app, split_complete_sentences
from runtime.audio import SAMPLE_RATE, duration_ms, ulaw_to_pcm
from runtime.elevenlabs_tts import (
    Alignment,
    AudioMessage,
    ElevenLabsTts,
    ErrorMessage,
    FinalMessage,
    parse_server_message,
    said_by,
)
from runtime.speech import SpeechChunk, SpeechEngineError, TextToSpeech
from runtime.tts import PiperTts, ScriptedTts
from tests.conftest import free_port

KEY = "test-xi-key"
VOICE = "joe"
GREETING = "Thanks for calling Sunrise Realty. How can I help you today?"
QUESTION = "Are you looking to buy or to sell?"
#: Short, so tests run quickly, but not zero: audio must not beat the text it answers.
FIRST_BYTE = LatencyProfile(median_ms=10, p95_ms=20)


@dataclass
class Emulator:
    control: EmulatorControl
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def socket_url(self, route: str, **query: str) -> str:
        params = "&".join(f"{k}={v}" for k, v in {"output_format": "ulaw_8000", **query}.items())
        return f"{self.ws_url}/v1/text-to-speech/{VOICE}/{route}?{params}"


async def start_emulator(synthesiser: TextToSpeech, runners: list[web.AppRunner]) -> Emulator:
    control = EmulatorControl("elevenlabs", {"first_byte": FIRST_BYTE})
    runner = web.AppRunner(build_app(api_key=KEY, synthesiser=synthesiser, control=control), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    runners.append(runner)
    return Emulator(control, port)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    runners: list[web.AppRunner] = []
    yield await start_emulator(ScriptedTts(), runners)
    await runners[0].cleanup()


MakeTts = Callable[..., ElevenLabsTts]


@pytest.fixture
async def make_tts(emulator: Emulator) -> AsyncIterator[MakeTts]:
    clients: list[ElevenLabsTts] = []

    def make(**overrides: Any) -> ElevenLabsTts:
        options: dict[str, Any] = {"api_key": KEY, "voice_id": VOICE, "base_url": emulator.ws_url, **overrides}
        clients.append(ElevenLabsTts(**options))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


async def expected_audio(text: str) -> bytes:
    return await ScriptedTts().render(text)


async def spoken(tts: TextToSpeech, text: str) -> list[SpeechChunk]:
    return [chunk async for chunk in tts.synthesize(text)]


def joined(chunks: list[SpeechChunk]) -> bytes:
    return b"".join(chunk.ulaw for chunk in chunks)


async def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - polls another server's counters: no event to wait on
            await asyncio.sleep(0.01)


def dbfs(ulaw: bytes) -> float:
    pcm = ulaw_to_pcm(ulaw).astype(np.float64)
    return float(20 * np.log10(np.sqrt(np.mean(pcm**2)) / 32768))


# --- wire format ---------------------------------------------------------------------------


def audio_frame(**fields: Any) -> str:
    return json.dumps({"audio": base64.b64encode(b"\xff\x7f").decode(), "contextId": "c1", **fields})


def test_audio_message_alignment_accepts_both_duration_spellings() -> None:
    for key in ("charDurationsMs", "charsDurationsMs"):
        frame = audio_frame(alignment={"chars": ["H", "i"], "charStartTimesMs": [0, 3], key: [3, 4]})
        assert parse_server_message(frame) == AudioMessage(
            context_id="c1",
            audio=b"\xff\x7f",
            alignment=Alignment(chars=("H", "i"), start_ms=(0, 3), duration_ms=(3, 4)),
        )
    assert parse_server_message(audio_frame(alignment=None)) == AudioMessage(
        context_id="c1", audio=b"\xff\x7f", alignment=None
    )


def test_final_and_error_messages() -> None:
    assert parse_server_message('{"isFinal": true, "contextId": "c1"}') == FinalMessage(context_id="c1")
    error = parse_server_message('{"message": "Maximum simultaneous contexts", "error": "max_active_conversations"}')
    assert error == ErrorMessage(
        context_id=None, error="max_active_conversations", message="Maximum simultaneous contexts"
    )


@pytest.mark.parametrize(
    "frame",
    [
        "<html>502</html>",
        "[1, 2]",
        '{"audio": "not base64!", "contextId": "c1"}',
        '{"audio": "/38=", "alignment": {"chars": ["a"], "charStartTimesMs": [null]}}',
        '{"contextId": "c1"}',
    ],
)
def test_malformed_frames_raise_value_error(frame: str) -> None:
    with pytest.raises(ValueError):
        parse_server_message(frame)


def test_emulator_alignment_spreads_characters_over_the_audio() -> None:
    assert alignment("Hi. ", 0, 160, 400) == {
        "chars": ["H", "i"],
        "charStartTimesMs": [0, 100],
        "charDurationsMs": [100, 100],
    }
    assert alignment("Hi. ", 160, 320, 400)["chars"] == [".", " "]
    assert split_complete_sentences("One. Two? Thr") == ("One. Two? ", "Thr")
    assert split_complete_sentences("No end") == ("", "No end")


# --- the client ----------------------------------------------------------------------------


async def test_speaks_the_text_as_phone_audio(emulator: Emulator, make_tts: MakeTts) -> None:
    chunks = await spoken(make_tts(), GREETING)
    assert joined(chunks) == await expected_audio(GREETING)
    assert len(chunks) > 2 and all(len(chunk.ulaw) <= 160 * 8 for chunk in chunks)  # 160 ms messages
    assert chunks[0].engine_ms > 0 and all(chunk.engine_ms == 0 for chunk in chunks[1:])
    seconds = len(joined(chunks)) / SAMPLE_RATE
    assert 0.04 * len(GREETING) < seconds < 0.1 * len(GREETING)
    assert -30 < dbfs(joined(chunks)) < -10
    stats = emulator.control.stats
    await eventually(lambda: stats["contexts_closed"] == 1)
    assert stats["contexts_implicit"] == 0 and stats["errors"] == 0


async def test_turns_and_calls_share_one_warm_connection(emulator: Emulator, make_tts: MakeTts) -> None:
    tts = make_tts()
    for text in (GREETING, QUESTION, GREETING):
        assert joined(await spoken(tts, text)) == await expected_audio(text)
    assert emulator.control.stats["connections"] == 1
    assert emulator.control.stats["contexts"] == 4  # the keep-alive context and three turns


async def test_concurrent_contexts_on_one_connection_stay_separate(emulator: Emulator, make_tts: MakeTts) -> None:
    tts = make_tts()
    texts = [GREETING, QUESTION, "What is your budget?", "When would you like to move?"]
    results = await asyncio.gather(*(spoken(tts, text) for text in texts))
    for text, chunks in zip(texts, results, strict=True):
        assert joined(chunks) == await expected_audio(text)
    assert emulator.control.stats["connections"] == 1


async def test_more_turns_than_a_socket_may_hold_open_another(emulator: Emulator, make_tts: MakeTts) -> None:
    tts = make_tts()
    texts = [f"Caller number {n} is speaking now." for n in range(6)]
    results = await asyncio.gather(*(spoken(tts, text) for text in texts))
    for text, chunks in zip(texts, results, strict=True):
        assert joined(chunks) == await expected_audio(text)
    assert emulator.control.stats["connections"] == 2  # four turns plus the keep-alive fill the first
    assert emulator.control.stats["errors"] == 0


async def test_barge_in_after_audio_drops_the_rest_and_keeps_the_connection(
    emulator: Emulator, make_tts: MakeTts
) -> None:
    tts = make_tts()
    speech = tts.synthesize(GREETING)
    assert isinstance(speech, AsyncGenerator)
    first = await anext(speech)
    await speech.aclose()
    assert first.ulaw == (await expected_audio(GREETING))[: len(first.ulaw)]
    stats = emulator.control.stats
    await eventually(lambda: stats["close_context"] == 1)
    await eventually(lambda: stats["contexts_closed"] == 1)  # the rest was sent, then isFinal, all dropped
    assert joined(await spoken(tts, QUESTION)) == await expected_audio(QUESTION)
    assert stats["connections"] == 1


async def test_barge_in_before_audio_closes_the_context(emulator: Emulator, make_tts: MakeTts) -> None:
    emulator.control.latency["first_byte"] = LatencyProfile(median_ms=1000, p95_ms=1000)
    tts = make_tts()
    received: list[SpeechChunk] = []

    async def listen() -> None:
        async for chunk in tts.synthesize(GREETING):
            received.append(chunk)

    stats = emulator.control.stats
    turn = asyncio.create_task(listen())
    await eventually(lambda: stats["flushes"] == 1)
    turn.cancel()
    await eventually(lambda: stats["close_context"] == 1)
    assert received == []
    await eventually(lambda: stats["contexts_closed"] == 1)  # flushed text is still spoken, and dropped
    emulator.control.latency["first_byte"] = FIRST_BYTE
    assert joined(await spoken(tts, QUESTION)) == await expected_audio(QUESTION)
    assert stats["connections"] == 1


@pytest.mark.parametrize("fault", [None, Fault.AUTH])
async def test_a_rejected_key_fails_at_once(emulator: Emulator, make_tts: MakeTts, fault: Fault | None) -> None:
    if fault is not None:
        emulator.control.faults.schedule(fault)
    tts = make_tts(api_key="wrong-key" if fault is None else KEY)
    with pytest.raises(SpeechEngineError, match="401"):
        await spoken(tts, GREETING)
    assert emulator.control.stats["handshakes"] == 1  # not retried


async def test_a_stalled_vendor_is_left_for_a_fresh_connection(emulator: Emulator, make_tts: MakeTts) -> None:
    emulator.control.faults.schedule(Fault.STALL)
    started = time.perf_counter()
    chunks = await spoken(make_tts(first_byte_timeout_s=0.5), GREETING)
    assert joined(chunks) == await expected_audio(GREETING)
    assert chunks[0].engine_ms >= 500
    assert time.perf_counter() - started >= 0.5
    assert emulator.control.stats["connections"] == 2


async def test_faults_can_be_scheduled_over_http(
    emulator: Emulator, make_tts: MakeTts, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{emulator.http_url}/_emulator/faults", json={"schedule": [{"fault": "stall"}]}) as response:
        assert response.status == 200
    await spoken(make_tts(first_byte_timeout_s=0.5), QUESTION)
    async with http.get(f"{emulator.http_url}/_emulator/state") as response:
        state = await response.json()
    assert state["faults_injected"] == {"stall": 1}
    assert state["stats"]["connections"] == 2


async def test_two_stalls_give_up(emulator: Emulator, make_tts: MakeTts) -> None:
    emulator.control.faults.schedule(Fault.STALL, count=2)
    with pytest.raises(SpeechEngineError, match="no audio within"):
        await spoken(make_tts(first_byte_timeout_s=0.3), GREETING)


async def test_a_dropped_connection_resumes_without_repeating_audio(emulator: Emulator, make_tts: MakeTts) -> None:
    emulator.control.faults.schedule(Fault.DISCONNECT)
    chunks = await spoken(make_tts(), GREETING)
    assert joined(chunks) == await expected_audio(GREETING)
    assert chunks[1].engine_ms > 0  # the first chunk came before the drop, the second after a wait
    assert emulator.control.stats["connections"] == 2
    assert_said_once_in_order(chunks, GREETING)


def assert_said_once_in_order(chunks: list[SpeechChunk], text: str) -> None:
    """Each character of ``text`` comes with the chunk it starts in, once and in order, said by a
    time that only grows over the whole audio (a character may end in the next chunk's audio)."""
    said = "".join(char for chunk in chunks for char, _ in chunk.said_by_ms)
    assert said.strip() == text
    offsets = itertools.accumulate((duration_ms(len(chunk.ulaw)) for chunk in chunks), initial=0.0)
    times = [offset + by_ms for chunk, offset in zip(chunks, offsets, strict=False) for _, by_ms in chunk.said_by_ms]
    assert times == sorted(times) and times[0] > 0
    assert times[-1] <= duration_ms(len(joined(chunks))) + 1


async def test_each_chunk_says_when_its_characters_are_said(emulator: Emulator, make_tts: MakeTts) -> None:
    chunks = await spoken(make_tts(), GREETING)
    assert_said_once_in_order(chunks, GREETING)


def test_alignment_after_audio_already_given_is_shifted_and_cut() -> None:
    """After a retry the audio already given is skipped, and so are the characters said in it."""
    alignment = Alignment(chars=("H", "i", " ", "y", "o"), start_ms=(0, 40, 80, 120, 160), duration_ms=(40,) * 5)
    assert said_by(alignment) == (("H", 40), ("i", 80), (" ", 120), ("y", 160), ("o", 200))
    assert said_by(alignment, skipped_ms=100) == ((" ", 20), ("y", 60), ("o", 100))
    assert said_by(None) == () and said_by(Alignment(chars=("H",), start_ms=(), duration_ms=())) == ()


async def test_a_rate_limited_handshake_is_retried(emulator: Emulator, make_tts: MakeTts) -> None:
    emulator.control.faults.schedule(Fault.RATE_LIMIT)
    assert joined(await spoken(make_tts(), QUESTION)) == await expected_audio(QUESTION)
    assert emulator.control.stats["handshakes"] == 2


async def test_a_malformed_message_is_skipped(emulator: Emulator, make_tts: MakeTts) -> None:
    emulator.control.faults.schedule(Fault.MALFORMED)
    assert joined(await spoken(make_tts(), QUESTION)) == await expected_audio(QUESTION)
    assert emulator.control.stats["connections"] == 1


async def test_render_is_cached_and_shared(emulator: Emulator, make_tts: MakeTts) -> None:
    tts = make_tts()
    renders = await asyncio.gather(*(tts.render(GREETING) for _ in range(3)))
    assert renders == [await expected_audio(GREETING)] * 3
    assert await tts.render(GREETING) == renders[0]
    assert emulator.control.stats["contexts"] == 2  # the keep-alive context and one synthesis


async def test_keepalives_hold_an_idle_connection_open(emulator: Emulator, make_tts: MakeTts) -> None:
    tts = make_tts(inactivity_timeout_s=2)
    await spoken(tts, QUESTION)
    await asyncio.sleep(4.5)
    assert joined(await spoken(tts, QUESTION)) == await expected_audio(QUESTION)
    stats = emulator.control.stats
    assert stats["connections"] == 1 and stats["keepalives"] >= 2 and stats["errors"] == 0


async def test_aclose_leaves_no_tasks(make_tts: MakeTts) -> None:
    before = asyncio.all_tasks()
    tts = make_tts()
    await asyncio.gather(spoken(tts, GREETING), spoken(tts, QUESTION))
    await tts.aclose()
    assert {task for task in asyncio.all_tasks() - before if not task.done()} == set()
    with pytest.raises(SpeechEngineError, match="closed"):
        await spoken(tts, QUESTION)


async def test_blank_text_is_not_sent(emulator: Emulator, make_tts: MakeTts) -> None:
    assert await spoken(make_tts(), "  ") == []
    assert emulator.control.stats["handshakes"] == 0


def test_options_are_validated() -> None:
    with pytest.raises(ValueError):
        ElevenLabsTts(api_key="", voice_id=VOICE)
    with pytest.raises(ValueError):
        ElevenLabsTts(api_key=KEY, voice_id=VOICE, max_contexts_per_connection=1)


@pytest.mark.engines
async def test_piper_behind_the_emulator_gives_phone_audio() -> None:
    runners: list[web.AppRunner] = []
    piper = PiperTts()
    emulator = await start_emulator(piper, runners)
    tts = ElevenLabsTts(api_key=KEY, voice_id=VOICE, base_url=emulator.ws_url, first_byte_timeout_s=10)
    try:
        text = "I am looking to buy a three bedroom house in Austin."
        ulaw = joined(await spoken(tts, text))
        assert 0.04 * len(text) < len(ulaw) / SAMPLE_RATE < 0.1 * len(text)
        assert -35 < dbfs(ulaw) < -3
    finally:
        await tts.aclose()
        await runners[0].cleanup()
        await piper.aclose()


# --- the emulator's wire format ----------------------------------------------------------


async def messages_until_final(socket: ClientConnection) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while not messages or not messages[-1].get("isFinal"):
            messages.append(json.loads(await socket.recv()))
    return messages


async def test_multi_stream_messages_validate_against_the_sdk_types(emulator: Emulator) -> None:
    url = emulator.socket_url("multi-stream-input", auto_mode="true")
    async with connect(url, additional_headers={"xi-api-key": KEY}) as socket:
        await socket.send(json.dumps({"text": " ", "context_id": "c1"}))
        await socket.send(json.dumps({"text": QUESTION + " ", "context_id": "c1"}))
        await socket.send(json.dumps({"context_id": "c1", "flush": True}))
        await socket.send(json.dumps({"context_id": "c1", "close_context": True}))
        *audio, final = await messages_until_final(socket)
    chunks = [AudioOutputMulti.model_validate(message) for message in audio]
    assert FinalOutputMulti.model_validate(final).context_id == "c1"
    assert {chunk.context_id for chunk in chunks} == {"c1"}
    assert b"".join(base64.b64decode(chunk.audio) for chunk in chunks) == await expected_audio(QUESTION)
    chars = [c for chunk in chunks if chunk.alignment is not None for c in chunk.alignment.chars or []]
    assert "".join(chars) == QUESTION + " "


async def test_a_bare_flush_gets_no_final_and_unflushed_text_is_dropped(emulator: Emulator) -> None:
    url = emulator.socket_url("multi-stream-input")
    async with connect(url, additional_headers={"xi-api-key": KEY}) as socket:
        await socket.send(json.dumps({"text": " ", "context_id": "c1"}))
        await socket.send(json.dumps({"text": "Hello. ", "context_id": "c1", "flush": True}))
        await socket.send(json.dumps({"text": "Never spoken. ", "context_id": "c1"}))
        await eventually(lambda: emulator.control.stats["audio_messages"] > 0)
        await asyncio.sleep(0.1)
        assert emulator.control.stats["contexts_closed"] == 0
        await socket.send(json.dumps({"context_id": "c1", "close_context": True}))
        messages = await messages_until_final(socket)
    audio = b"".join(base64.b64decode(message["audio"]) for message in messages[:-1])
    assert audio == await expected_audio("Hello.")


async def test_stream_input_takes_the_key_in_the_first_message(emulator: Emulator) -> None:
    async with connect(emulator.socket_url("stream-input", output_format="pcm_16000")) as socket:
        await socket.send(json.dumps({"text": " ", "xi-api-key": KEY}))
        await socket.send(json.dumps({"text": QUESTION + " ", "try_trigger_generation": True}))
        await socket.send(json.dumps({"text": ""}))
        *audio, final = await messages_until_final(socket)
        await socket.wait_closed()
    assert final == {"isFinal": True} and all(message["isFinal"] is False for message in audio)
    assert socket.close_code == 1000
    pcm = b"".join(base64.b64decode(message["audio"]) for message in audio)
    assert len(pcm) == pytest.approx(4 * len(await expected_audio(QUESTION)), abs=8)  # 16 kHz, 16-bit


async def error_and_close_code(socket: ClientConnection) -> tuple[str, int | None]:
    error = json.loads(await socket.recv())["error"]
    await socket.wait_closed()
    return error, socket.close_code


async def test_a_socket_without_a_key_is_refused(emulator: Emulator) -> None:
    async with connect(emulator.socket_url("stream-input")) as socket:
        await socket.send(json.dumps({"text": " "}))
        assert await error_and_close_code(socket) == ("invalid_api_key", 1008)


async def test_a_sixth_context_closes_the_socket(emulator: Emulator) -> None:
    async with connect(emulator.socket_url("multi-stream-input", authorization=KEY)) as socket:
        for n in range(6):
            await socket.send(json.dumps({"text": " ", "context_id": f"c{n}"}))
        assert await error_and_close_code(socket) == ("max_active_conversations", 1008)


async def test_an_idle_socket_is_closed_after_the_inactivity_timeout(emulator: Emulator) -> None:
    url = emulator.socket_url("multi-stream-input", inactivity_timeout="0.3")
    async with connect(url, additional_headers={"xi-api-key": KEY}) as socket:
        await socket.send(json.dumps({"text": " ", "context_id": "c1"}))
        assert await error_and_close_code(socket) == ("input_timeout_exceeded", 1008)


async def test_the_official_sdk_streams_over_http(emulator: Emulator) -> None:
    async with httpx.AsyncClient() as http:
        client = AsyncElevenLabs(api_key=KEY, base_url=emulator.http_url, httpx_client=http)
        stream = client.text_to_speech.stream(
            VOICE, text=GREETING, output_format="ulaw_8000", model_id="eleven_flash_v2_5"
        )
        assert b"".join([chunk async for chunk in stream]) == await expected_audio(GREETING)
        rejected = AsyncElevenLabs(api_key="wrong-key", base_url=emulator.http_url, httpx_client=http)
        emulator.control.faults.schedule(Fault.DISCONNECT)
        with pytest.raises(httpx.RemoteProtocolError):  # the body ends mid-audio
            [chunk async for chunk in client.text_to_speech.stream(VOICE, text=GREETING, output_format="ulaw_8000")]
        with pytest.raises(ApiError) as error:
            [chunk async for chunk in rejected.text_to_speech.stream(VOICE, text=GREETING, output_format="ulaw_8000")]
    assert error.value.status_code == 401
