"""The Deepgram client against the emulator over loopback sockets, the emulator's protocol on the
wire, the official SDK against the emulator, and one turn of real speech (Piper -> Whisper).

Audio is pushed faster than real time: the emulator times results by the audio it receives, not
by the clock, so sequencing assertions hold on a loaded box. Waits are bounded polls.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from emulators.control import EmulatorControl, Fault
from emulators.deepgram import DEFAULT_LATENCY, Recogniser, ScriptedRecogniser, WhisperRecogniser, build_app
from runtime import deepgram_stt
from runtime.audio import FRAME_SAMPLES, SAMPLE_RATE, Pcm, pcm_to_ulaw, ulaw_to_pcm
from runtime.deepgram_stt import DeepgramStt, Results, parse_message
from runtime.fallback import CircuitBreaker, FallbackStt
from runtime.speech import SpeechEngineError, SttStream
from runtime.stt import ScriptedStt, WhisperStt
from runtime.tts import speech_like_ulaw
from tests.conftest import free_port

API_KEY = "dg-test-key"
LINES = ("I'm looking to buy a house in Austin", "About four hundred thousand dollars")
QUERY = (
    "model=nova-3&encoding=mulaw&sample_rate=8000&channels=1&interim_results=true"
    "&endpointing=300&utterance_end_ms=1000&vad_events=true"
)


@dataclass
class Emulator:
    base_url: str
    control: EmulatorControl

    def stt(self, **options: Any) -> DeepgramStt:
        options = {"reconnect_backoff_s": 0.1, **options}
        return DeepgramStt(api_key=options.pop("api_key", API_KEY), base_url=self.base_url, **options)

    def schedule(self, fault: Fault, count: int = 1) -> None:
        self.control.faults.schedule(fault, count)


StartEmulator = Callable[..., Any]


@pytest.fixture
async def start_emulator() -> AsyncIterator[Callable[..., Any]]:
    runners: list[web.AppRunner] = []

    async def start(recogniser: Recogniser | None = None, **options: Any) -> Emulator:
        control = EmulatorControl(name="deepgram", latency=dict(DEFAULT_LATENCY))
        app = build_app(api_key=API_KEY, recogniser=recogniser or ScriptedRecogniser(LINES), control=control, **options)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return Emulator(f"ws://127.0.0.1:{port}", control)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def emulator(start_emulator: Callable[..., Any]) -> Emulator:
    started: Emulator = await start_emulator()
    return started


def silence(seconds: float) -> Pcm:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16)


def speech(seconds: float) -> Pcm:
    """Speech-like audio the Silero VAD hears as speech (runtime.tts.ScriptedTts's voice)."""
    return ulaw_to_pcm(speech_like_ulaw(int(seconds * SAMPLE_RATE)))


def frames(pcm: Pcm) -> Iterator[Pcm]:
    for start in range(0, pcm.size, FRAME_SAMPLES):
        yield pcm[start : start + FRAME_SAMPLES]


def push(stream: SttStream, pcm: Pcm) -> None:
    for frame in frames(pcm):
        stream.push_audio(frame)


async def wait_until(condition: Callable[[], bool], within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        # Polls state owned by the code under test, which has no event to wait on.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def caller_turn(stream: SttStream, *, pause: bool = True) -> None:
    """Half a second of silence, 1.5 s of speech, and the pause the turn detector would see."""
    push(stream, silence(0.5))
    stream.speech_started()
    push(stream, speech(1.5))
    push(stream, silence(0.2))
    if pause:
        stream.speech_paused()
    push(stream, silence(0.3))


# --- the emulator on the wire ----------------------------------------------------------------


async def receive_all(ws: ClientConnection) -> list[Any]:
    """Every event until the emulator closes the socket."""
    events: list[Any] = []
    with pytest.raises(ConnectionClosed):
        while True:
            message = await ws.recv()
            assert isinstance(message, str)
            events.append(parse_message(message))
    return events


async def open_raw(emulator: Emulator, query: str = QUERY) -> ClientConnection:
    return await connect(
        f"{emulator.base_url}/v1/listen?{query}", additional_headers={"Authorization": f"Token {API_KEY}"}
    )


async def test_interims_then_a_final_then_utterance_end_on_the_wire(emulator: Emulator) -> None:
    async with await open_raw(emulator) as ws:
        for pcm in (silence(0.5), speech(1.5), silence(1.6)):
            for frame in frames(pcm):
                await ws.send(pcm_to_ulaw(frame))
        await ws.send(json.dumps({"type": "CloseStream"}))
        events = await receive_all(ws)
    kinds = [event.kind for event in events]
    assert kinds[-1] == "metadata"
    started, utterance_end = kinds.index("speech_started"), kinds.index("utterance_end")
    results = [event for event in events if isinstance(event, Results)]
    interims = [r for r in results if not r.is_final and r.transcript]
    speech_final = next(r for r in results if r.speech_final)
    assert interims and started < events.index(interims[0]) < events.index(speech_final) < utterance_end
    assert LINES[0].startswith(interims[0].transcript)
    assert speech_final.transcript == LINES[0] and speech_final.is_final
    finals = [r for r in results if r.is_final]
    for previous, following in itertools.pairwise(finals):
        assert following.start == pytest.approx(previous.end, abs=0.002)  # finals tile the audio
    assert any(r.is_final and not r.transcript for r in finals)  # silence still gets results


async def test_finalize_answers_from_finalize_and_unknown_control_is_an_error(emulator: Emulator) -> None:
    async with await open_raw(emulator) as ws:
        for frame in frames(speech(1.0)):
            await ws.send(pcm_to_ulaw(frame))
        await ws.send(json.dumps({"type": "Finalize"}))
        await ws.send(json.dumps({"type": "Flush"}))
        await ws.send(json.dumps({"type": "CloseStream"}))
        events = await receive_all(ws)
    flushed = next(e for e in events if isinstance(e, Results) and e.from_finalize)
    assert flushed.is_final and flushed.transcript == LINES[0]
    assert any(e.kind == "server_error" for e in events)
    assert ws.close_code == 1000


async def test_a_finalize_inside_an_utterance_does_not_shift_the_scripted_lines(emulator: Emulator) -> None:
    """A client's Finalize at a comma: the utterance's line comes with it, the rest of the
    utterance brings no other line, and the next utterance says the next line."""
    async with await open_raw(emulator) as ws:
        for frame in frames(speech(0.8)):
            await ws.send(pcm_to_ulaw(frame))
        await ws.send(json.dumps({"type": "Finalize"}))
        for pcm in (silence(0.15), speech(0.8), silence(1.6), speech(1.0), silence(1.6)):
            for frame in frames(pcm):
                await ws.send(pcm_to_ulaw(frame))
        await ws.send(json.dumps({"type": "CloseStream"}))
        events = await receive_all(ws)
    said = [r.transcript for r in events if isinstance(r, Results) and r.is_final and r.transcript]
    assert said == [LINES[0], LINES[1]]


async def test_idle_stream_closes_with_net0001(start_emulator: Callable[..., Any]) -> None:
    emulator: Emulator = await start_emulator(idle_timeout_s=0.3)
    async with await open_raw(emulator) as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1011 and ws.close_reason is not None and "NET-0001" in ws.close_reason


async def test_bad_key_and_bad_params_are_refused_before_the_upgrade(emulator: Emulator) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"{emulator.base_url}/v1/listen?{QUERY}", additional_headers={"Authorization": "Token nope"})
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body or b"{}")["err_code"] == "INVALID_AUTH"
    with pytest.raises(InvalidStatus) as refused:
        await open_raw(emulator, "model=nova-3&encoding=flac&sample_rate=8000")
    assert refused.value.response.status_code == 400


async def test_linear16_audio_is_accepted(emulator: Emulator) -> None:
    query = QUERY.replace("encoding=mulaw", "encoding=linear16")
    async with await open_raw(emulator, query) as ws:
        await ws.send(speech(1.0).tobytes() + silence(0.5).tobytes())
        await ws.send(json.dumps({"type": "CloseStream"}))
        events = await receive_all(ws)
    assert any(isinstance(e, Results) and e.transcript == LINES[0] for e in events)


# --- the client ---------------------------------------------------------------------------


async def test_turn_ended_by_speech_final_and_utterance_end(emulator: Emulator) -> None:
    stream = emulator.stt().open_stream("CA1")
    await caller_turn(stream, pause=False)
    push(stream, silence(1.5))
    await wait_until(lambda: emulator.control.stats["sent_UtteranceEnd"] >= 1)
    transcript = await stream.finish_utterance()
    assert transcript.text == LINES[0] and not transcript.speculative
    assert emulator.control.stats["control_Finalize"] == 0  # Deepgram had already finalized it
    await stream.aclose()


async def test_finalize_at_a_pause_gives_a_speculative_transcript(emulator: Emulator) -> None:
    stream = emulator.stt().open_stream("CA1")
    await caller_turn(stream)
    transcript = await stream.finish_utterance()
    assert transcript.text == LINES[0] and transcript.speculative
    assert emulator.control.stats["control_Finalize"] == 1
    await stream.aclose()


async def test_turn_end_sends_finalize_and_waits_for_it(emulator: Emulator) -> None:
    stream = emulator.stt().open_stream("CA1")
    push(stream, silence(0.3))
    stream.speech_started()
    push(stream, speech(1.2))
    push(stream, silence(0.1))  # shorter than endpointing: only a Finalize gets the words out
    transcript = await stream.finish_utterance()
    assert transcript.text == LINES[0] and not transcript.speculative and transcript.engine_ms > 0
    assert emulator.control.stats["control_Finalize"] == 1
    await caller_turn(stream)  # the next turn gets the next line, nothing of the first
    assert (await stream.finish_utterance()).text == LINES[1]
    await stream.aclose()


async def test_discarded_turn_leaves_nothing_behind(emulator: Emulator) -> None:
    stream = emulator.stt().open_stream("CA1")
    await caller_turn(stream, pause=False)
    push(stream, silence(1.5))
    await wait_until(lambda: emulator.control.stats["sent_UtteranceEnd"] >= 1)
    stream.discard_utterance()
    assert (await stream.finish_utterance()).text == ""
    await stream.aclose()


async def test_rejected_key_fails_the_stream_without_retrying(emulator: Emulator) -> None:
    stream = emulator.stt(api_key="wrong").open_stream("CA1")
    await wait_until(lambda: stream.failed)
    stream.push_audio(silence(0.02))  # a failed stream swallows audio
    with pytest.raises(SpeechEngineError, match="401"):
        await stream.finish_utterance()
    assert emulator.control.stats["refused_401"] == 1
    await stream.aclose()


async def test_rate_limited_then_connected_on_the_retry(emulator: Emulator) -> None:
    emulator.schedule(Fault.RATE_LIMIT)
    stream = emulator.stt().open_stream("CA1")
    await caller_turn(stream)  # queued while the client waits out Retry-After
    assert (await stream.finish_utterance()).text == LINES[0]
    assert emulator.control.stats["refused_429"] == 1 and emulator.control.stats["connections"] == 1
    assert not stream.failed and stream.reconnects == 0
    await stream.aclose()


async def test_stall_is_detected_and_the_stream_reconnects(emulator: Emulator) -> None:
    emulator.schedule(Fault.STALL)
    stream = emulator.stt(stall_timeout_s=1.0).open_stream("CA1")
    await caller_turn(stream)
    push(stream, silence(1.0))
    await wait_until(lambda: stream.reconnects == 1)
    with pytest.raises(SpeechEngineError, match="lost"):  # the fallback engine takes this turn
        await stream.finish_utterance()
    await caller_turn(stream)
    assert (await stream.finish_utterance()).text == LINES[0]  # a new connection, a new script
    assert emulator.control.stats["connections"] == 2 and not stream.failed
    await stream.aclose()


async def test_disconnect_mid_turn_reconnects(emulator: Emulator) -> None:
    emulator.schedule(Fault.DISCONNECT)
    stream = emulator.stt().open_stream("CA1")
    await caller_turn(stream)
    await wait_until(lambda: stream.reconnects == 1)
    with pytest.raises(SpeechEngineError, match="lost"):
        await stream.finish_utterance()
    await caller_turn(stream)
    assert (await stream.finish_utterance()).text == LINES[0]
    assert not stream.failed
    await stream.aclose()


async def test_a_lost_turn_is_served_by_the_fallback_engine(emulator: Emulator) -> None:
    emulator.schedule(Fault.DISCONNECT)
    stt = FallbackStt(emulator.stt(), ScriptedStt(["from the local engine"]), CircuitBreaker("deepgram"))
    stream = stt.open_stream("CA1")
    await caller_turn(stream)
    await wait_until(lambda: emulator.control.stats["connections"] == 2)
    transcript = await stream.finish_utterance()
    assert transcript.text == "from the local engine" and "lost" in transcript.degraded
    await caller_turn(stream)
    assert (await stream.finish_utterance()).text == LINES[0]
    await stt.aclose()


async def test_failed_reconnect_fails_the_stream(emulator: Emulator) -> None:
    emulator.schedule(Fault.DISCONNECT)
    emulator.schedule(Fault.AUTH)
    stream = emulator.stt().open_stream("CA1")
    await caller_turn(stream)
    await wait_until(lambda: stream.failed)
    assert stream.reconnects == 1
    with pytest.raises(SpeechEngineError):
        await stream.finish_utterance()
    await stream.aclose()


async def test_malformed_message_is_skipped(emulator: Emulator) -> None:
    emulator.schedule(Fault.MALFORMED)
    stream = emulator.stt().open_stream("CA1")
    await caller_turn(stream)
    assert (await stream.finish_utterance()).text == LINES[0]
    await wait_until(lambda: stream.unrecognised_messages == 1)
    assert not stream.failed and stream.reconnects == 0
    await stream.aclose()


async def test_keepalive_when_no_audio_flows(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deepgram_stt, "KEEPALIVE_AFTER_S", 0.1)
    stream = emulator.stt().open_stream("CA1")
    await wait_until(lambda: emulator.control.stats["control_KeepAlive"] >= 2)
    await stream.aclose()


async def test_aclose_sends_closestream_and_leaks_no_tasks(emulator: Emulator) -> None:
    before = asyncio.all_tasks()
    stt = emulator.stt()
    stream = stt.open_stream("CA1")
    await caller_turn(stream)
    await stream.finish_utterance()
    await stt.aclose()
    assert emulator.control.stats["control_CloseStream"] == 1
    await wait_until(lambda: emulator.control.stats["sent_Metadata"] == 1)

    def leaked() -> set[str]:
        """The client's tasks and the websocket library's (keepalive), not the emulator's VAD."""
        names = {task.get_coro().__qualname__ for task in asyncio.all_tasks() - before}  # type: ignore[union-attr]
        return names - {"_WindowBatcher._run"}

    await wait_until(lambda: not leaked(), within=5)
    await stream.aclose()  # a second close is a no-op


# --- the official SDK against the emulator ------------------------------------------------


# The SDK's websocket client is websockets' legacy one, which warns on import under websockets 17.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_official_sdk_receives_a_final_result(emulator: Emulator) -> None:
    from deepgram import AsyncDeepgramClient
    from deepgram.environment import DeepgramClientEnvironment
    from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results

    http_url = emulator.base_url.replace("ws://", "http://")
    environment = DeepgramClientEnvironment(
        base=http_url, production=emulator.base_url, agent=emulator.base_url, agent_rest=http_url
    )
    client = AsyncDeepgramClient(api_key=API_KEY, environment=environment)
    received: list[Any] = []
    async with client.listen.v1.connect(
        model="nova-3",
        encoding="mulaw",
        sample_rate=8000,
        interim_results="true",
        endpointing=300,
        utterance_end_ms=1000,
        vad_events="true",
    ) as connection:
        await connection.send_media(speech_like_ulaw(12000) + bytes([0xFF]) * 12000)
        await connection.send_close_stream()
        async for message in connection:
            received.append(message)
    finals = [m for m in received if isinstance(m, ListenV1Results) and m.is_final and m.speech_final]
    assert finals and finals[0].channel.alternatives[0].transcript == LINES[0]
    assert isinstance(received[-1], ListenV1Metadata)
    assert {type(m).__name__ for m in received} == {
        "ListenV1Results",
        "ListenV1SpeechStarted",
        "ListenV1UtteranceEnd",
        "ListenV1Metadata",
    }


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_every_message_passes_the_sdks_strict_validation(emulator: Emulator) -> None:
    """The SDK builds its models unchecked, so validate the wire JSON strictly as well."""
    from deepgram.listen.v1.types import (
        ListenV1Error,
        ListenV1Metadata,
        ListenV1Results,
        ListenV1SpeechStarted,
        ListenV1UtteranceEnd,
    )

    models: dict[str, Any] = {
        "Results": ListenV1Results,
        "SpeechStarted": ListenV1SpeechStarted,
        "UtteranceEnd": ListenV1UtteranceEnd,
        "Metadata": ListenV1Metadata,
        "Error": ListenV1Error,
    }
    seen: set[str] = set()
    async with await open_raw(emulator) as ws:
        await ws.send(pcm_to_ulaw(np.concatenate((speech(1.0), silence(1.5), speech(0.6)))))
        await ws.send(json.dumps({"type": "Finalize"}))
        await ws.send(json.dumps({"type": "Nope"}))
        await ws.send(json.dumps({"type": "CloseStream"}))
        with pytest.raises(ConnectionClosed):
            while True:
                data = json.loads(await ws.recv())
                models[data["type"]].model_validate(data)
                seen.add(data["type"])
    assert seen == set(models)


# --- real speech: Piper's voice through the emulator's Whisper -------------------------------


@pytest.mark.engines
async def test_real_speech_through_whisper(
    start_emulator: Callable[..., Any], whisper: WhisperStt, sentence_audio: Pcm
) -> None:
    emulator: Emulator = await start_emulator(WhisperRecogniser(whisper))
    # Whisper runs inside the emulator on this shared box: give the final answer time.
    stream = emulator.stt(finalize_timeout_s=30.0).open_stream("CA1")
    push(stream, silence(0.5))
    stream.speech_started()
    push(stream, sentence_audio)
    push(stream, silence(0.2))
    stream.speech_paused()
    push(stream, silence(0.3))
    transcript = await stream.finish_utterance()
    words = set(re.findall(r"[a-z]+", transcript.text.lower().replace("3", "three")))
    assert {"looking", "buy", "bedroom", "house", "austin"} <= words
    await stream.aclose()
