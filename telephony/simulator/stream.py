"""Twilio's side of one Media Streams socket, with the simulated caller behind it.

One real-time tick loop sends a ``media`` frame every 20 ms at absolute deadlines (so timing
errors never accumulate), advances the playout model and echoes the marks it reaches; a
receiver task feeds the server's ``media``/``mark``/``clear`` into the playout model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from runtime.audio import FRAME_BYTES, FRAME_MS, MULAW_SILENCE
from telephony.media_stream import (
    MediaStreamProtocolError,
    OutMark,
    OutMedia,
    dtmf_message,
    inbound_mark_message,
    inbound_media_message,
    parse_outbound,
    stop_message,
)
from telephony.simulator.events import CallEvent, EndReason
from telephony.simulator.playout import Playout
from telephony.simulator.recording import StereoRecorder
from telephony.simulator.segments import BotSegment, BotSegmenter
from telephony.simulator.turns import ScriptRunner

_log = logging.getLogger("telephony.simulator")

FRAME_S = FRAME_MS / 1000
SILENT_FRAME = bytes([MULAW_SILENCE]) * FRAME_BYTES


@dataclass(slots=True)
class StreamCounters:
    media_sent: int = 0
    media_received: int = 0
    marks_received: int = 0
    marks_echoed: int = 0
    clears: int = 0
    dtmf_sent: int = 0
    protocol_errors: int = 0
    max_tick_lag_ms: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamIds:
    stream_sid: str
    call_sid: str
    account_sid: str


class CallerStream:
    """Runs the media stream of one call until someone hangs up or time runs out.

    Setting ``stop`` ends the stream at the next tick, as Twilio ends it when the call is
    redirected or ended through the REST API.

    Sends need no lock: without compression aiohttp writes each frame synchronously, so
    messages leave in the order they were numbered.
    """

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        ids: StreamIds,
        runner: ScriptRunner,
        *,
        start: float,
        bot_done_gap_s: float,
        max_duration_s: float,
        recorder: StereoRecorder | None,
        on_segment: Callable[[BotSegment], None],
        emit: Callable[[CallEvent], None],
        stop: asyncio.Event | None = None,
    ) -> None:
        self._ws = ws
        self._ids = ids
        self._runner = runner
        self._start = start
        self._max_duration_s = max_duration_s
        self._recorder = recorder
        self._on_segment = on_segment
        self._emit = emit
        self._stop = stop
        self._loop = asyncio.get_running_loop()
        self.playout = Playout(start)
        self._segmenter = BotSegmenter(start=start, gap_s=bot_done_gap_s)
        self.counters = StreamCounters()
        self._sequence = 1  # ``start`` was message 1
        self._peer_gone = False

    async def run(self) -> EndReason:
        """Stream until the call ends; the caller then sends ``stop`` unless the server hung up."""
        receiver = asyncio.create_task(self._receive(), name=f"simulator-receive-{self._ids.call_sid}")
        try:
            return await self._tick_loop(receiver)
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
            self._finish(self._loop.time())

    async def hang_up(self) -> None:
        """Send ``stop``, the last message of the stream."""
        await self._send(
            stop_message(
                stream_sid=self._ids.stream_sid,
                sequence=self._next_sequence(),
                call_sid=self._ids.call_sid,
                account_sid=self._ids.account_sid,
            )
        )

    async def _tick_loop(self, receiver: asyncio.Task[None]) -> EndReason:
        index = 0
        while True:
            index += 1
            deadline = self._start + index * FRAME_S
            # Always yield once, so a loop running behind still lets the receiver in.
            await asyncio.sleep(max(deadline - self._loop.time(), 0))
            now = self._loop.time()
            self.counters.max_tick_lag_ms = max(self.counters.max_tick_lag_ms, (now - deadline) * 1000)
            if receiver.done():
                receiver.result()  # re-raises a crash of the receiver
                return "server_hung_up"
            if self._peer_gone:
                return "server_hung_up"
            if self._stop is not None and self._stop.is_set():
                return "ended_by_twilio"
            await self._tick(index, now)
            if self._runner.finished:
                return "caller_hung_up" if self._runner.hung_up else "script_finished"
            if now - self._start >= self._max_duration_s:
                return "max_duration"

    async def _tick(self, index: int, now: float) -> None:
        marks = self._take_step(now)
        out = self._runner.tick(now)
        await self._echo(marks)
        frame = SILENT_FRAME if out.frame is None else out.frame
        await self._send(
            inbound_media_message(
                stream_sid=self._ids.stream_sid,
                sequence=self._next_sequence(),
                chunk=index,
                timestamp_ms=(index - 1) * FRAME_MS,
                ulaw=frame,
            )
        )
        self.counters.media_sent += 1
        if self._recorder is not None:
            self._recorder.add_caller(frame)
        if out.digit is not None:
            await self._send(
                dtmf_message(stream_sid=self._ids.stream_sid, sequence=self._next_sequence(), digit=out.digit)
            )
            self.counters.dtmf_sent += 1
        for event in out.events:
            self._emit(event)

    def _take_step(self, now: float) -> tuple[str, ...]:
        """Play the bot's audio up to ``now``; return the marks reached, to echo."""
        step = self.playout.advance(now)
        if self._recorder is not None:
            self._recorder.add_bot(step.audio)
        segment = self._segmenter.feed(step, now)
        if segment is not None:
            self._on_segment(segment)
        self._runner.observe(step)
        return step.marks

    async def _receive(self) -> None:
        async for message in self._ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                await self._on_text(message.data)
            elif message.type is aiohttp.WSMsgType.ERROR:
                _log.info("media socket failed", extra={"call_sid": self._ids.call_sid})
                return
            else:
                self._protocol_error("binary_frame")

    async def _on_text(self, text: str) -> None:
        try:
            event = parse_outbound(text)
        except MediaStreamProtocolError as e:
            self._protocol_error(e.kind)
            return
        if event.stream_sid != self._ids.stream_sid:
            self._protocol_error("wrong_stream_sid")
            return
        now = self._loop.time()
        if isinstance(event, OutMedia):
            self.playout.receive_media(event.payload, now)
            self.counters.media_received += 1
        elif isinstance(event, OutMark):
            self.playout.receive_mark(event.name, now)
            self.counters.marks_received += 1
        else:
            await self._on_clear(now)

    async def _on_clear(self, now: float) -> None:
        """Twilio flushes its buffer and echoes the pending marks at once."""
        self.counters.clears += 1
        marks = self._take_step(now) + tuple(self.playout.clear(now))
        segment = self._segmenter.cleared(now)
        if segment is not None:
            self._on_segment(segment)
        barge_in = self._runner.on_clear(now)
        if barge_in is not None:
            self._emit(barge_in)
        await self._echo(marks)

    async def _echo(self, marks: tuple[str, ...]) -> None:
        for name in marks:
            await self._send(
                inbound_mark_message(stream_sid=self._ids.stream_sid, sequence=self._next_sequence(), name=name)
            )
            self.counters.marks_echoed += 1

    def _finish(self, now: float) -> None:
        segment = self._segmenter.flush(now)
        if segment is not None:
            self._on_segment(segment)
        barge_in = self._runner.close()
        if barge_in is not None:
            self._emit(barge_in)

    async def _send(self, text: str) -> None:
        if self._peer_gone:
            return
        try:
            await self._ws.send_str(text)
        except ConnectionError:
            # The server closed the socket under us: the same as hanging up.
            self._peer_gone = True

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def _protocol_error(self, kind: str) -> None:
        self.counters.protocol_errors += 1
        _log.info("invalid message from server", extra={"call_sid": self._ids.call_sid, "kind": kind})
