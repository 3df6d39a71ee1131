"""The simulated caller: turn-taking and segmentation (sans-IO), then whole calls against a fake
Leadline server that checks signatures, paces a greeting, replies and clears on barge-in."""

from __future__ import annotations

import asyncio
import itertools
import json
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from runtime.audio import FRAME_BYTES, MULAW_SILENCE, Pcm, pcm_to_ulaw, split_frames
from runtime.speech import SpeechChunk, SpeechToText, SttStream, TextToSpeech, Transcript
from telephony import media_stream as ms
from telephony.simulator import (
    HOME_BUYER_SCRIPT,
    BotSpoke,
    CallerLine,
    CallerScript,
    CallerTiming,
    CallEvent,
    CallResult,
    Hangup,
    PressDigits,
    SimulatedCallOptions,
    run_simulated_call,
)
from telephony.simulator.playout import Playout
from telephony.simulator.segments import BotSegmenter
from telephony.simulator.turns import ScriptRunner
from telephony.twiml import connect_stream_twiml

AUTH_TOKEN = "simulator-test-token"
ACCOUNT_SID = "AC" + "a" * 32
STREAM_TOKEN = "v1.test-stream-token"
SILENCE = bytes([MULAW_SILENCE])
LINE_MS = 300  # every fake TTS line is this much tone
PAD_MS = 100  # ... between this much silence on each side, which the caller must trim
REPLY_GAP_S = 0.45  # the fake server's think time: last caller frame -> first reply frame
TIMING = CallerTiming(bot_done_gap_ms=300, reply_timeout_ms=3000, linger_ms=400, clear_timeout_ms=1000)


def tone(ms_: int, amplitude: int = 8000) -> bytes:
    t = np.arange(ms_ * 8) / 8000
    return pcm_to_ulaw((amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.int16))


def is_speech(frame: bytes) -> bool:
    return frame.count(MULAW_SILENCE) < len(frame)


class FakeTts(TextToSpeech):
    """Every line is a fixed-length tone, padded with silence like a real engine's output."""

    async def render(self, text: str) -> bytes:
        pad = SILENCE * (PAD_MS * 8)
        return pad + tone(LINE_MS) + pad

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        yield SpeechChunk(ulaw=await self.render(text), engine_ms=0.0)

    async def aclose(self) -> None:
        """Nothing to release."""


class CountingSttStream(SttStream):
    """Transcribes an utterance as the number of samples pushed since ``speech_started``."""

    def __init__(self) -> None:
        self.samples = 0
        self.closed = False

    def push_audio(self, pcm: Pcm) -> None:
        self.samples += len(pcm)

    def speech_started(self) -> None:
        self.samples = 0

    async def finish_utterance(self) -> Transcript:
        return Transcript(text=f"{self.samples} samples", engine_ms=0.0)

    def speech_paused(self) -> None:
        """No speculative recognition: the caller only transcribes whole utterances."""

    def speech_resumed(self) -> None:
        """Nothing was started at a pause."""

    def discard_utterance(self) -> None:
        self.samples = 0

    async def aclose(self) -> None:
        self.closed = True


class CountingStt(SpeechToText):
    def __init__(self) -> None:
        self.streams: list[CountingSttStream] = []

    def open_stream(self, call_sid: str) -> SttStream:
        self.streams.append(CountingSttStream())
        return self.streams[-1]

    async def aclose(self) -> None:
        """Nothing to release."""


# --- sans-IO: turn-taking policy and bot segmentation --------------------------------------


def test_demo_script_is_a_buyer_who_books_and_cuts_in_once() -> None:
    lines = [step for step in HOME_BUYER_SCRIPT.steps if isinstance(step, CallerLine)]
    text = " ".join(step.text for step in lines)
    for fact in ("buy a house in Austin", "Three bedrooms", "four hundred thousand", "two months", "book it"):
        assert fact in text
    # Long enough for turn detection: no bare "Yes." or "No." (see tests/test_demo_summary.py for
    # what the bot core makes of the lines).
    assert all(len(step.text.split()) >= 4 for step in lines)
    barge_ins = [step for step in lines if step.barge_in_after_ms]
    assert len(barge_ins) == 1


def test_script_steps_validate() -> None:
    with pytest.raises(ValueError):
        PressDigits("12a")
    with pytest.raises(ValueError):
        CallerLine("   ")
    with pytest.raises(ValueError):
        CallerScript(name="x", steps=(Hangup(), CallerLine("hi")))


class Timeline:
    """Drives a ScriptRunner tick by tick against a Playout fed by the test."""

    def __init__(self, script: CallerScript) -> None:
        self.playout = Playout(start=0.0)
        audio = {text: tone(100) for text in script.lines()}
        self.runner = ScriptRunner(script, audio, TIMING, start=0.0)
        self.now = 0.0
        self.spoke: list[tuple[float, bool]] = []  # (time, barge_in) of each line start

    def run_until(self, t: float) -> None:
        while self.now < t - 1e-9:
            self.now = round(self.now + 0.02, 6)
            self.runner.observe(self.playout.advance(self.now))
            out = self.runner.tick(self.now)
            for event in out.events:
                if event.kind == "caller_spoke":
                    self.spoke.append((round(event.at_s, 3), event.barge_in))


def test_ordinary_line_waits_out_pauses_between_the_bots_sentences() -> None:
    timeline = Timeline(CallerScript(name="t", steps=(CallerLine("hello", pause_ms=0),)))
    timeline.playout.receive_media(tone(500), now=0.1)  # greeting sentence 1: 0.1-0.6
    timeline.run_until(0.8)
    timeline.playout.receive_media(tone(400), now=0.8)  # sentence 2 after a 200 ms pause
    timeline.run_until(1.5)
    assert timeline.spoke == [(1.5, False)]  # 1.2 end + 300 ms bot-done gap
    assert timeline.runner.greeting_started_at == 0.1


def test_pause_after_the_bot_counts_from_its_last_audio() -> None:
    timeline = Timeline(CallerScript(name="t", steps=(CallerLine("hello", pause_ms=700),)))
    timeline.playout.receive_media(tone(200), now=0.0)
    timeline.run_until(2.0)
    assert timeline.spoke == [(0.9, False)]


def test_barge_in_line_starts_relative_to_the_reply_start() -> None:
    script = CallerScript(name="t", steps=(CallerLine("stop", barge_in_after_ms=500),))
    timeline = Timeline(script)
    timeline.playout.receive_media(tone(2000), now=0.2)
    timeline.run_until(1.0)
    assert timeline.spoke == [(0.7, True)]
    barge_in = timeline.runner.on_clear(0.75)
    assert barge_in is not None and barge_in.clear_after_ms == pytest.approx(50)


def test_caller_goes_on_when_the_bot_never_replies() -> None:
    timeline = Timeline(CallerScript(name="t", steps=(CallerLine("hello?"),)))
    timeline.run_until(TIMING.reply_timeout_ms / 1000 + 0.1)
    assert timeline.spoke == [(3.0, False)]


def test_reply_latency_is_from_last_caller_frame_to_first_bot_audio() -> None:
    timeline = Timeline(CallerScript(name="t", steps=(CallerLine("hi", pause_ms=0),)))
    timeline.playout.receive_media(tone(100), now=0.0)
    timeline.run_until(0.4)  # speaks at 0.4 for 100 ms: last frame sent at 0.48
    timeline.run_until(0.6)
    timeline.playout.receive_media(tone(100), now=0.613)
    timeline.run_until(0.7)
    action = timeline.runner.actions[0]
    assert action.ended_at == pytest.approx(0.48)
    assert action.reply_started_at == 0.613


def test_segments_split_on_mark_gap_and_clear() -> None:
    playout, segmenter = Playout(start=0.0), BotSegmenter(start=0.0, gap_s=0.3)
    done = []

    def step(now: float) -> None:
        segment = segmenter.feed(playout.advance(now), now)
        if segment is not None:
            done.append(segment)

    playout.receive_media(tone(100), now=0.01)
    playout.receive_mark("a", now=0.01)
    step(0.2)  # ran dry right after the mark: over at once
    playout.receive_media(tone(100), now=0.3)
    step(0.5)
    step(0.71)  # no mark: over once quiet for 300 ms
    playout.receive_media(tone(1000), now=0.8)
    step(0.9)
    playout.clear(0.95)
    cleared = segmenter.cleared(0.95)
    assert [(s.started_at, s.ended_at, len(s.audio), s.interrupted) for s in done] == [
        (0.01, 0.11, 800, False),
        (0.3, 0.4, 800, False),
    ]
    assert cleared is not None and cleared.interrupted and cleared.ended_at == 0.95
    assert done[0].audio == tone(100)


# --- a fake Leadline server ----------------------------------------------------------------


@dataclass
class FakeServer:
    """Just enough of Leadline to converse: greeting, replies, clear on barge-in, hang-up."""

    reply_ms: list[int] = field(default_factory=lambda: [300])
    burst_replies: bool = False  # send each reply at once instead of paced
    hang_up_after_greeting: bool = False
    silent: bool = False  # never say anything
    garbage: bool = False  # precede the greeting with invalid messages
    base_url: str = ""
    voice_requests: list[tuple[bool, dict[str, str]]] = field(default_factory=list)
    status: list[tuple[bool, dict[str, str]]] = field(default_factory=list)
    socket_signature_ok: bool | None = None
    inbound: list[tuple[float, ms.InboundEvent]] = field(default_factory=list)
    sent: list[tuple[float, str, str]] = field(default_factory=list)  # (time, event, mark name)
    speech_ends: list[float] = field(default_factory=list)
    closed_by_client: bool = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/twilio/voice", self.voice)
        app.router.add_post("/twilio/status", self.status_callback)
        app.router.add_get("/twilio/media", self.media)
        return app

    def _valid(self, url: str, params: dict[str, str], request: web.Request) -> bool:
        signature = request.headers.get("X-Twilio-Signature", "")
        return bool(RequestValidator(AUTH_TOKEN).validate(url, params, signature))

    async def voice(self, request: web.Request) -> web.Response:
        params = {k: str(v) for k, v in (await request.post()).items()}
        valid = self._valid(self.base_url + "/twilio/voice", params, request)
        self.voice_requests.append((valid, params))
        if not valid:
            return web.Response(status=403)
        ws_url = self.base_url.replace("http://", "ws://") + "/twilio/media"
        twiml = connect_stream_twiml(ws_url, {"token": STREAM_TOKEN, "from": params["From"]})
        return web.Response(text=twiml, content_type="text/xml")

    async def status_callback(self, request: web.Request) -> web.Response:
        params = {k: str(v) for k, v in (await request.post()).items()}
        self.status.append((self._valid(self.base_url + "/twilio/status", params, request), params))
        return web.Response(status=204)

    async def media(self, request: web.Request) -> web.WebSocketResponse:
        ws_url = self.base_url.replace("http://", "ws://") + "/twilio/media"
        self.socket_signature_ok = self._valid(ws_url, {}, request)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conversation = _Conversation(self, ws)
        talker = asyncio.create_task(conversation.talk())
        try:
            await conversation.listen()
        finally:
            talker.cancel()
            await asyncio.gather(talker, return_exceptions=True)
        return ws


class _Conversation:
    """One socket: ``listen`` parses what the caller sends, ``talk`` speaks."""

    def __init__(self, server: FakeServer, ws: web.WebSocketResponse) -> None:
        self.server = server
        self.ws = ws
        self.loop = asyncio.get_running_loop()
        self.started = asyncio.Event()
        self.stream_sid = ""
        self.turn_ended = asyncio.Queue[float]()
        self.caller_speaking = False
        self.last_speech_at = 0.0
        self.bot_marks_pending: set[str] = set()
        self.greeting_heard = asyncio.Event()

    async def listen(self) -> None:
        async for message in self.ws:
            now = self.loop.time()
            event = ms.parse_inbound(message.data)
            self.server.inbound.append((now, event))
            if isinstance(event, ms.Start):
                assert event.custom_parameters["token"] == STREAM_TOKEN
                self.stream_sid = event.stream_sid
                self.started.set()
            elif isinstance(event, ms.Media):
                await self.on_media(event.payload, now)
            elif isinstance(event, ms.Mark):
                self.bot_marks_pending.discard(event.name)
                if event.name == "greeting":
                    self.greeting_heard.set()
            elif isinstance(event, ms.Dtmf) and event.digit == "#":
                await self.turn_ended.put(now)
        self.server.closed_by_client = True

    async def on_media(self, frame: bytes, now: float) -> None:
        if is_speech(frame):
            if not self.caller_speaking and self.bot_marks_pending:
                await self.send(ms.clear_message(self.stream_sid), "clear", "")  # barge-in
            self.caller_speaking, self.last_speech_at = True, now
        elif self.caller_speaking and now - self.last_speech_at >= 0.2:  # endpointing
            self.caller_speaking = False
            self.server.speech_ends.append(self.last_speech_at)
            await self.turn_ended.put(self.last_speech_at)

    async def send(self, text: str, kind: str, name: str) -> None:
        self.server.sent.append((self.loop.time(), kind, name))
        await self.ws.send_str(text)

    async def speak(self, ulaw: bytes, mark: str, *, burst: bool) -> None:
        t0 = self.loop.time()
        for i, frame in enumerate(split_frames(ulaw)):
            if not burst:  # paced at 20 ms, three frames ahead
                await asyncio.sleep(max(0.0, t0 + (i - 3) * 0.02 - self.loop.time()))
            await self.ws.send_str(ms.media_message(self.stream_sid, frame))
        self.bot_marks_pending.add(mark)
        await self.send(ms.mark_message(self.stream_sid, mark), "mark", mark)

    async def talk(self) -> None:
        await self.started.wait()
        if self.server.silent:
            return
        if self.server.garbage:
            await self.send_garbage()
        await self.speak(tone(500), "greeting", burst=False)
        if self.server.hang_up_after_greeting:
            await self.greeting_heard.wait()
            await self.ws.close()
            return
        for i in range(100):
            last_speech = await self.turn_ended.get()
            await asyncio.sleep(max(0.0, last_speech + REPLY_GAP_S - self.loop.time()))
            length = self.server.reply_ms[min(i, len(self.server.reply_ms) - 1)]
            await self.speak(tone(length), f"reply-{i}", burst=self.server.burst_replies)

    async def send_garbage(self) -> None:
        await self.ws.send_str("not json")
        bad_payload = {"event": "media", "streamSid": self.stream_sid, "media": {"payload": "!!"}}
        await self.ws.send_str(json.dumps(bad_payload))
        await self.ws.send_bytes(b"\x00\x01")
        await self.ws.send_str(ms.media_message("MZ-someone-else", tone(20)))
        await self.ws.send_str(json.dumps({"event": "dance", "streamSid": self.stream_sid}))


RunCall = Callable[..., Awaitable[tuple[CallResult, list[CallEvent]]]]


@pytest.fixture
async def call(tmp_path: Path) -> AsyncIterator[tuple[FakeServer, RunCall]]:
    """A fake server on loopback and a function placing one simulated call against it."""
    server = FakeServer()
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert runner.addresses
    server.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def run(script: CallerScript, **overrides: object) -> tuple[CallResult, list[CallEvent]]:
        events: list[CallEvent] = []
        stt = overrides.pop("stt", None)
        assert stt is None or isinstance(stt, SpeechToText)
        settings: dict[str, object] = {
            "public_url": server.base_url,
            "auth_token": AUTH_TOKEN,
            "account_sid": ACCOUNT_SID,
            "from_number": "+15125550100",
            "to_number": "+15125550199",
            "script": script,
            "output_dir": tmp_path,
            "max_duration_s": 15.0,
            "seed": 7,
            "timing": TIMING,
        }
        options = SimulatedCallOptions(**(settings | overrides))  # type: ignore[arg-type]
        result = await run_simulated_call(options, tts=FakeTts(), stt=stt, on_event=events.append)
        return result, events

    yield server, run
    await runner.cleanup()


def read_wav(path: Path) -> tuple[int, int, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        channels, rate = wav.getnchannels(), wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, channels)
    return channels, rate, data


def loud(samples: np.ndarray) -> bool:
    return bool(np.abs(samples.astype(np.int32)).max(initial=0) > 1000)


def assert_reply_latency(latency_ms: float | None) -> None:
    """The fake replies REPLY_GAP_S after the last caller frame arrived (same host, same loop)."""
    assert latency_ms is not None
    assert REPLY_GAP_S * 1000 - 5 <= latency_ms <= REPLY_GAP_S * 1000 + 40


def inbound_of(server: FakeServer, kind: type) -> list[tuple[float, ms.InboundEvent]]:
    return [(t, e) for t, e in server.inbound if isinstance(e, kind)]


# --- whole calls ---------------------------------------------------------------------------


async def test_full_call_paces_echoes_clears_and_measures(call: tuple[FakeServer, RunCall]) -> None:
    server, run = call
    server.reply_ms = [1000, 3000, 300]
    server.burst_replies = True
    script = CallerScript(
        name="t",
        steps=(
            CallerLine("one", pause_ms=300),
            CallerLine("two", pause_ms=300),
            CallerLine("three", barge_in_after_ms=500),
        ),
    )
    result, events = await run(script)

    # Twilio's HTTP side: signed voice webhook, signed socket, in-progress then completed.
    assert [valid for valid, _ in server.voice_requests] == [True]
    voice = server.voice_requests[0][1]
    assert voice["CallSid"] == result.call_sid and voice["CallStatus"] == "ringing"
    assert voice["AccountSid"] == ACCOUNT_SID and voice["Direction"] == "inbound"
    assert server.socket_signature_ok
    assert [(valid, p["CallStatus"], p["SequenceNumber"]) for valid, p in server.status] == [
        (True, "in-progress", "0"),
        (True, "completed", "1"),
    ]
    assert abs(int(server.status[1][1]["CallDuration"]) - result.duration_s) <= 1
    assert result.end_reason == "script_finished" and result.error is None

    # One media frame every 20 ms on absolute deadlines: no drift over the call.
    media = inbound_of(server, ms.Media)
    assert result.counts.media_sent == len(media)
    first = media[0][0]
    drift = [t - (first + i * 0.02) for i, (t, _) in enumerate(media)]
    assert max(abs(d) for d in drift) < 0.03
    assert abs(len(media) - result.duration_s / 0.02) <= 3
    chunks = [e.chunk for _, e in media if isinstance(e, ms.Media)]
    stamps = [e.timestamp_ms for _, e in media if isinstance(e, ms.Media)]
    assert chunks == list(range(1, len(media) + 1)) and stamps == [20 * (c - 1) for c in chunks]
    sequences = [e.sequence_number for _, e in server.inbound if not isinstance(e, ms.Connected)]
    assert sequences == list(range(1, len(server.inbound)))

    # stop is the last message, and the client closed the socket after it.
    assert isinstance(server.inbound[-1][1], ms.Stop) and server.closed_by_client
    assert len(inbound_of(server, ms.Stop)) == 1

    # Marks come back only once their audio has played...
    sent_marks = {name: t for t, kind, name in server.sent if kind == "mark"}
    echoes = {e.name: t for t, e in inbound_of(server, ms.Mark) if isinstance(e, ms.Mark)}
    assert set(echoes) == {"greeting", "reply-0", "reply-1", "reply-2"}
    assert 0.95 <= echoes["reply-0"] - sent_marks["reply-0"] <= 1.1  # a 1 s burst plays for 1 s
    # Paced greeting: only the 80 ms lead was queued, echoed on the next 20 ms tick.
    assert echoes["greeting"] - sent_marks["greeting"] <= 0.13
    # ...except that clear flushes the 3 s reply and echoes its mark at once.
    (clear_at,) = [t for t, kind, _ in server.sent if kind == "clear"]
    assert 0 <= echoes["reply-1"] - clear_at < 0.05
    assert result.counts.clears == 1 and result.counts.underruns == 0
    assert result.counts.marks_received == result.counts.marks_echoed == 4
    assert result.counts.protocol_errors == 0
    assert result.counts.max_lead_ms >= 2900

    # Latency: last caller frame -> first bot audio played; the fake replies 450 ms later.
    assert [t.caller_text for t in result.turns] == ["one", "two", "three"]
    for turn in result.turns:
        assert_reply_latency(turn.latency_ms)
    assert result.greeting_ms is not None and result.greeting_ms < 60
    # Caller lines are trimmed: the server heard exactly LINE_MS of speech per line.
    for turn in result.turns:
        assert turn.ended_s - turn.started_s == pytest.approx((LINE_MS - 20) / 1000, abs=0.015)

    # Barge-in: the caller spoke 500 ms into the 3 s reply; the bot was cut off there.
    assert [t.barge_in for t in result.turns] == [False, False, True]
    (barge_in,) = result.barge_ins
    assert barge_in.clear_after_ms is not None and 0 <= barge_in.clear_after_ms < 50
    interrupted = [u for u in result.bot_utterances if u.interrupted]
    assert len(interrupted) == 1
    assert interrupted[0].ended_s - interrupted[0].started_s == pytest.approx(0.5, abs=0.04)
    assert len(result.bot_utterances) == 4

    # The recording: full length, caller left, bot right, silence after the clear.
    assert result.wav_path is not None and result.report_path is not None
    channels, rate, data = read_wav(result.wav_path)
    assert (channels, rate) == (2, 8000)
    assert len(data) / 8000 == pytest.approx(result.duration_s, abs=0.05)
    greeting = data[int(0.05 * 8000) : int(0.45 * 8000)]
    assert loud(greeting[:, 1]) and not loud(greeting[:, 0])
    first_line = result.turns[0]
    spoken = data[int(first_line.started_s * 8000) : int(first_line.ended_s * 8000)]
    assert loud(spoken[:, 0]) and not loud(spoken[:, 1])
    after_clear = data[int((interrupted[0].ended_s + 0.01) * 8000) : int((result.turns[2].ended_s) * 8000)]
    assert not loud(after_clear[:, 1]) and loud(after_clear[:, 0])

    # The JSON report is the whole result; events tell the same story live.
    report = json.loads(result.report_path.read_text())
    assert report["call_sid"] == result.call_sid and report["end_reason"] == "script_finished"
    assert len(report["turns"]) == 3 and report["wav_path"] == str(result.wav_path)
    kinds = [e.kind for e in events]
    assert kinds[0] == "call_started" and kinds[-1] == "call_ended"
    assert kinds.count("caller_spoke") == 3 and kinds.count("bot_spoke") == 4
    assert kinds.count("barge_in") == 1
    latencies = [e.latency_ms for e in events if isinstance(e, BotSpoke)]
    assert latencies[0] is None  # the greeting answers no one
    assert latencies[1:] == pytest.approx([t.latency_ms for t in result.turns])


async def test_refused_webhook_is_an_error_result(call: tuple[FakeServer, RunCall]) -> None:
    server, run = call
    result, events = await run(HOME_BUYER_SCRIPT, auth_token="not-the-token")
    assert result.end_reason == "error"
    assert result.error is not None and "403" in result.error
    assert [valid for valid, _ in server.voice_requests] == [False]
    assert server.inbound == [] and server.status == []
    assert result.wav_path is None and result.report_path is not None
    assert json.loads(result.report_path.read_text())["end_reason"] == "error"
    assert [e.kind for e in events] == ["call_ended"]


async def test_server_hanging_up_ends_the_call_without_stop(call: tuple[FakeServer, RunCall]) -> None:
    server, run = call
    server.hang_up_after_greeting = True
    result, _ = await run(CallerScript(name="t", steps=(CallerLine("hello", pause_ms=2000),)))
    assert result.end_reason == "server_hung_up"
    assert inbound_of(server, ms.Stop) == []
    assert [p["CallStatus"] for _, p in server.status] == ["in-progress", "completed"]
    assert result.turns == () and result.greeting_ms is not None
    assert result.counts.marks_echoed == 1


async def test_malformed_server_messages_are_counted_not_fatal(call: tuple[FakeServer, RunCall]) -> None:
    server, run = call
    server.garbage = True
    server.hang_up_after_greeting = True
    result, _ = await run(CallerScript(name="t", steps=(CallerLine("hello", pause_ms=2000),)))
    assert result.end_reason == "server_hung_up"
    assert result.counts.protocol_errors == 5
    assert result.counts.media_received == 25  # the greeting still played in full
    assert len(result.bot_utterances) == 1


async def test_max_duration_ends_a_call_the_bot_never_answers(call: tuple[FakeServer, RunCall]) -> None:
    server, run = call
    server.silent = True
    result, _ = await run(CallerScript(name="t", steps=(CallerLine("hello"),)), max_duration_s=0.5)
    assert result.end_reason == "max_duration"
    assert 24 <= result.counts.media_sent <= 26
    assert isinstance(server.inbound[-1][1], ms.Stop)
    assert result.greeting_ms is None and result.turns == ()


async def test_digits_and_caller_hang_up(call: tuple[FakeServer, RunCall]) -> None:
    server, run = call
    script = CallerScript(name="t", steps=(PressDigits("42#", pause_ms=300), Hangup(after_ms=1000)))
    result, events = await run(script)
    digits = inbound_of(server, ms.Dtmf)
    assert [e.digit for _, e in digits if isinstance(e, ms.Dtmf)] == ["4", "2", "#"]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(digits)]
    assert all(0.24 <= gap <= 0.29 for gap in gaps)
    assert result.end_reason == "caller_hung_up"
    assert isinstance(server.inbound[-1][1], ms.Stop)
    (turn,) = result.turns
    assert turn.action == "dtmf" and turn.caller_text == "42#"
    assert_reply_latency(turn.latency_ms)
    assert any(e.kind == "digits_sent" for e in events)


async def test_bot_utterances_are_transcribed_from_what_played(call: tuple[FakeServer, RunCall]) -> None:
    server, run = call
    stt = CountingStt()
    server.hang_up_after_greeting = True
    result, events = await run(
        CallerScript(name="t", steps=(CallerLine("hello", pause_ms=2000),)), transcribe_bot=True, stt=stt
    )
    (utterance,) = result.bot_utterances
    assert utterance.text is not None
    samples = int(utterance.text.split()[0])
    assert abs(samples - 4000) <= FRAME_BYTES  # the 500 ms greeting, in whole frames
    assert [e.text for e in events if isinstance(e, BotSpoke)] == [utterance.text]
    assert stt.streams[0].closed


async def test_no_tasks_are_left_behind(call: tuple[FakeServer, RunCall]) -> None:
    server, run = call
    server.hang_up_after_greeting = True
    before = asyncio.all_tasks()
    await run(CallerScript(name="t", steps=(CallerLine("hello", pause_ms=2000),)))
    await asyncio.sleep(0.05)  # let the server's handler finish
    assert asyncio.all_tasks() - before == set()
