"""One phone call's pipeline: caller audio -> VAD/turns -> STT -> bot -> TTS -> paced sender.

A handful of tasks in one TaskGroup: the listener (decode, VAD, turn detection), the paced
sender, the silence watchdog, and at most one bot reply at a time. The socket handler feeds
``feed_media``/``on_mark``/``on_dtmf`` without ever waiting; the session closes the socket
itself when the bot hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from analytics.recording import StereoRecorder
from bots.base import Bot, BotAction, CallContext, EndCall, HandedOff, Notice, TransferOutcome, TransferToHuman
from runtime.audio import duration_ms, ulaw_to_pcm
from runtime.clock import Clock
from runtime.compliance import discloses_ai, discloses_recording
from runtime.config import Settings
from runtime.engines import Engines
from runtime.events import (
    BotTalkedOver,
    BotUtterance,
    CallEnded,
    CallerUtterance,
    CallEvent,
    ComplianceCheck,
    CoverPurpose,
    DtmfReceived,
    EventSink,
    FillerPlayed,
    GreetingLatency,
    HandOff,
    Interruption,
    ProtocolViolation,
    ReplyHeard,
    ReplyResumed,
    Silence,
    TransferEvent,
    TurnLatency,
    TurnUnanswered,
    VendorDegraded,
)
from runtime.outbound import OutboundAudio, Send
from runtime.sentences import SentenceSplitter
from runtime.speech import SpeechTiming, TextToSpeech, Transcript
from runtime.turn import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    SpeechSustained,
    TurnDetector,
    TurnEnded,
    TurnSignal,
)

log = logging.getLogger(__name__)

#: Inbound frames buffered between the socket and the listener (5 s). If the listener falls
#: this far behind, the oldest audio is dropped: late audio is worth less than a live turn.
INBOUND_QUEUE_FRAMES = 250
#: Silence watchdog resolution; silence timeouts are seconds long.
WATCHDOG_PERIOD_S = 0.25
#: How long past its expected end we wait for the last mark before hanging up anyway.
HANGUP_GRACE_S = 3.0


@dataclass
class _Sentence:
    mark: str
    text: str
    heard: bool = False
    #: the sentence's audio, kept so an interrupted reply can be resumed without re-synthesis
    audio: list[bytes] = field(default_factory=list)
    #: the sentence's length and, when the engine says, when each character was said
    timing: SpeechTiming = field(default_factory=SpeechTiming)

    @property
    def audio_ms(self) -> float:
        return self.timing.audio_ms


@dataclass(frozen=True)
class _Interruption:
    """A barge-in not yet confirmed by words: if none come, the bot resumes ``sentences``."""

    heard_text: str
    sentences: tuple[_Sentence, ...]


@dataclass
class _Reply:
    """One bot turn being spoken (turn 0 is the greeting).

    A *draft* reply is started at a pause, before the turn is known to be over: it runs the
    bot and TTS but its audio waits behind ``gate`` until the turn ends (commit); if the caller
    goes on instead, it is cancelled and the bot rolled back to ``checkpoint``.
    """

    turn: int
    sentences: list[_Sentence] = field(default_factory=list)
    first_frame_at: float | None = None
    task: asyncio.Task[None] | None = None
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    checkpoint: object | None = None
    #: what this reply took from the caller (given back if it is rolled back)
    transcripts: list[Transcript] = field(default_factory=list)
    interruption: _Interruption | None = None
    probe: _LatencyProbe | None = None
    #: events held until a draft is committed (what the caller said)
    held_events: list[CallEvent] = field(default_factory=list)
    #: the previous reply, which must have unwound (and rolled back) before this one starts
    after: asyncio.Task[None] | None = None
    draft: bool = False
    #: for a draft: the end of the turn, once it came
    turn_ended: TurnEnded | None = None
    #: how many of ``sentences`` are acknowledgements or fillers rather than the answer
    covers: int = 0

    @property
    def answering(self) -> bool:
        """The answer's own audio has started."""
        return len(self.sentences) > self.covers

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)


@dataclass
class _LatencyProbe:
    turn: int
    speech_end_at: float
    turn_end_at: float
    stt_done_at: float
    stt_engine_ms: float
    stt_speculative: bool
    first_text_at: float = 0.0
    first_audio_at: float = 0.0
    tts_engine_ms: float = 0.0
    speculative_reply: bool = False

    def finish(self, first_frame_at: float, started_at: float, cover: tuple[float, float] | None) -> TurnLatency:
        """``cover``: when the first acknowledgement or filler was queued and when its first frame went out."""
        return TurnLatency(
            turn=self.turn,
            speech_end_at=self.speech_end_at - started_at,
            turn_end_at=self.turn_end_at - started_at,
            stt_done_at=self.stt_done_at - started_at,
            first_text_at=self.first_text_at - started_at,
            first_audio_at=self.first_audio_at - started_at,
            first_frame_at=first_frame_at - started_at,
            stt_engine_ms=self.stt_engine_ms,
            stt_speculative=self.stt_speculative,
            filler_queued_at=None if cover is None else cover[0] - started_at,
            filler_frame_at=None if cover is None else cover[1] - started_at,
            bot_ms=(self.first_text_at - self.stt_done_at) * 1000,
            tts_engine_ms=self.tts_engine_ms,
            speculative_reply=self.speculative_reply,
        )


@contextlib.asynccontextmanager
async def _closing(actions: AsyncIterator[BotAction]) -> AsyncIterator[None]:
    """Close the bot's reply stream when we stop reading it (barge-in, hang-up), so a vendor
    request behind it is dropped at once rather than when the generator is collected."""
    try:
        yield
    finally:
        close = getattr(actions, "aclose", None)
        if close is not None:
            await close()


#: Moves the caller to a person (``runtime.transfers``); False when the transfer could not start
#: (not configured, Twilio refused), and the caller is still with the bot.
TransferHook = Callable[[TransferToHuman], Awaitable[bool]]


class CallSession:
    """The pipeline of one call, from Twilio's ``start`` to hang-up (or to a warm transfer).

    ``returning_from_transfer``: this stream is the caller coming back after a transfer that
    ended that way; the bot (kept from the first stream) opens with ``after_transfer``.
    """

    def __init__(
        self,
        *,
        context: CallContext,
        stream_sid: str,
        bot: Bot,
        engines: Engines,
        settings: Settings,
        send: Send,
        sink: EventSink,
        clock: Clock,
        transfer: TransferHook | None = None,
        returning_from_transfer: TransferOutcome | None = None,
        recorder: StereoRecorder | None = None,
        recording_started_at: float | None = None,
    ) -> None:
        self.context = context
        self.bot = bot
        self._engines = engines
        self._settings = settings
        self._sink = sink
        self._clock = clock
        self._vad = engines.vad.open_stream()
        self._stt = engines.stt.open_stream(context.call_sid)
        self._turns = TurnDetector(settings.turn, engines.vad.window_ms)
        self.outbound = OutboundAudio(send, stream_sid, clock, settings.output.lead_ms)
        self.outbound.on_first_frame = self._on_first_frame
        self._recorder = recorder
        if recorder is not None:
            self.outbound.on_frame = self._record_bot_frame
        self._inbound: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue(INBOUND_QUEUE_FRAMES)
        self._group: asyncio.TaskGroup | None = None
        self._ended = asyncio.Event()
        self.end_reason = ""
        #: the bot ended the call (rather than the caller, Twilio or the server)
        self.hung_up = False
        self.started_at = clock.now()
        #: where the recording's timeline starts: this stream, or the call's first stream when
        #: the caller is back after a failed transfer and the recording goes on
        self._recording_base = self.started_at if recording_started_at is None else recording_started_at
        self._reply: _Reply | None = None  # the bot turn being produced
        self._last_reply_task: asyncio.Task[None] | None = None
        self._playing: _Reply | None = None  # the last bot turn that queued audio
        self._turn = 0
        self._unanswered: list[asyncio.Task[Transcript]] = []
        self._probes: dict[str, _LatencyProbe] = {}
        self._by_mark: dict[str, tuple[_Reply, _Sentence]] = {}
        self._last_activity = self.started_at
        self._silence_prompted = False
        self._hangup_reason: str | None = None
        self._interruption: _Interruption | None = None
        self._hangup_request: str | None = None
        self._carried: list[Transcript] = []
        self._transfer = transfer
        self._returning_from = returning_from_transfer
        self._transfer_request: TransferToHuman | None = None
        self._pending_transfer: TransferToHuman | None = None
        #: Twilio is moving the caller to a person: the stream is about to stop
        self.transferring = False
        turn = settings.turn
        tiers: list[tuple[int, tuple[str, ...], CoverPurpose]] = [
            (turn.ack_after_ms, turn.acks, "ack"),
            (turn.filler_after_ms, turn.fillers, "filler"),
        ]
        self._covers = [
            (after_ms, itertools.cycle(phrases), purpose)
            for after_ms, phrases, purpose in sorted(tiers, key=lambda tier: tier[0])
            if after_ms and phrases
        ]
        #: mark of each acknowledgement or filler -> when it was queued
        self._filler_marks: dict[str, float] = {}
        #: turn -> (queued, first frame) of its first acknowledgement or filler
        self._filler_frames: dict[int, tuple[float, float]] = {}
        self.dropped_frames = 0
        self.protocol_errors = 0

    # --- inputs from the socket handler (never block) -------------------------------------

    def feed_media(self, ulaw: bytes) -> None:
        now = self._clock.now()
        if self._recorder is not None:
            self._recorder.caller(ulaw, now - self._recording_base)
        try:
            self._inbound.put_nowait((ulaw, now))
        except asyncio.QueueFull:
            self._inbound.get_nowait()
            self._inbound.put_nowait((ulaw, now))
            self.dropped_frames += 1

    def _record_bot_frame(self, ulaw: bytes, at: float) -> None:
        assert self._recorder is not None
        self._recorder.bot(ulaw, at - self._recording_base)

    def on_mark(self, name: str) -> None:
        """Twilio played everything queued before this mark (or flushed it on ``clear``)."""
        entry = self._by_mark.pop(name, None)
        if entry is None:
            return
        entry[1].heard = True
        reply = entry[0]
        if reply.task is not None and reply.task.done() and all(s.heard for s in reply.sentences):
            self._emit(ReplyHeard(at=self._rel(self._clock.now()), turn=reply.turn))
        if not self.bot_talking:
            self._last_activity = self._clock.now()
            if self._hangup_reason is not None:
                self._hang_up(self._hangup_reason)
            elif self._pending_transfer is not None:
                self._start_transfer()

    def on_dtmf(self, digit: str) -> None:
        self._emit(DtmfReceived(at=self._rel(self._clock.now()), digit=digit))

    def on_protocol_error(self, error: str) -> None:
        self.protocol_errors += 1
        self._emit(ProtocolViolation(at=self._rel(self._clock.now()), error=error))

    def end(self, reason: str) -> None:
        """Finish the call (idempotent); ``run`` returns soon after."""
        if not self._ended.is_set():
            self.end_reason = reason
            self._ended.set()

    def leave_message(self, text: str, reason: str = "voicemail") -> None:
        """An answering machine took the call (Twilio AMD, after the beep): stop whatever the
        bot was saying, say ``text`` once and hang up when it has played."""
        if self._group is None or self._ended.is_set():
            return
        self._turn += 1
        self._start_reply(self._turn, lambda reply: self._leave_message(reply, text, reason))

    async def _leave_message(self, reply: _Reply, text: str, reason: str) -> None:
        self._by_mark.clear()
        self._hangup_reason = None
        await self.outbound.clear()
        await self._say(reply, text, hang_up=reason)

    def _hang_up(self, reason: str) -> None:
        """The bot ends the call (goodbye heard, silence, time limit): the phone call itself
        must end too, not only the stream."""
        if not self._ended.is_set():
            self.hung_up = True
        self.end(reason)

    # --- state ------------------------------------------------------------------------------

    @property
    def bot_talking(self) -> bool:
        """Bot audio is queued here or at Twilio and not yet heard."""
        return bool(self._by_mark) or self.outbound.pending

    def bot_state(self) -> dict[str, Any]:
        return self.bot.snapshot()

    def elapsed(self) -> float:
        """Seconds since the stream started, on the call's event clock (for events emitted
        from outside the session, e.g. how a transfer ended)."""
        return self._rel(self._clock.now())

    def _rel(self, t: float) -> float:
        return t - self.started_at

    def _emit(self, event: CallEvent) -> None:
        self._sink.emit(self.context.call_sid, event)

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> str:
        """Run the call until it ends; returns the reason."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                tasks = [
                    group.create_task(self._listen(), name="listen"),
                    group.create_task(self.outbound.run(), name="send"),
                    group.create_task(self._watch(), name="watch"),
                ]
                self._start_reply(0, self._open)
                await self._ended.wait()
                for task in [*tasks, *self._unanswered]:
                    task.cancel()
                self._cancel_reply()
        except* Exception:
            log.exception("call pipeline failed", extra={"call_sid": self.context.call_sid})
            self.end_reason = self.end_reason or "internal_error"
        finally:
            self._group = None
            self._vad.close()
            await self._stt.aclose()
            self._emit(CallEnded(at=self._rel(self._clock.now()), reason=self.end_reason))
        return self.end_reason

    # --- listening ------------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            ulaw, arrived_at = await self._inbound.get()
            pcm = ulaw_to_pcm(ulaw)
            self._stt.push_audio(pcm)
            for probability in await self._vad.process(pcm):
                signal = self._turns.feed(probability, arrived_at)
                if signal is not None:
                    await self._on_turn_signal(signal)

    async def _on_turn_signal(self, signal: TurnSignal) -> None:
        if self.transferring:
            return  # the caller is on their way to a person; the bot no longer answers
        if isinstance(signal, SpeechStarted):
            self._stt.speech_started()
            self._last_activity = signal.at
            self._silence_prompted = False
        elif isinstance(signal, SpeechPaused):
            self._on_pause(signal)
        elif isinstance(signal, SpeechResumed):
            if self._reply is not None and not self._reply.gate.is_set():
                self._cancel_reply()  # the draft was premature: the caller goes on
                self._stt.speech_continued()  # the first part was taken by the draft's recognition
            else:
                self._stt.speech_resumed()
        elif isinstance(signal, SpeechSustained):
            if self.bot_talking:
                await self._barge_in(signal)
            elif self._reply is not None and self._reply.turn > 0:
                # Still thinking about the last turn and the caller went on talking: answer
                # both parts together once they stop (the transcripts stay in _unanswered).
                self._cancel_reply()
        else:
            self._on_turn_ended(signal)

    def _on_pause(self, signal: SpeechPaused) -> None:
        """Start the reply early (a draft) when the bot can roll back; else only hint the STT."""
        if self.bot_talking or self._reply is not None or self.bot.checkpoint() is None:
            self._stt.speech_paused()
            return
        assert self._group is not None
        self._unanswered.append(self._group.create_task(self._recognise(), name="stt"))
        self._turn += 1
        provisional = TurnEnded(at=signal.at, onset_at=signal.onset_at, speech_end_at=signal.speech_end_at)
        self._start_reply(self._turn, lambda reply: self._answer(reply, provisional), draft=True)

    def _commit(self, reply: _Reply, signal: TurnEnded) -> None:
        """The turn is over: the draft's audio may go out."""
        reply.turn_ended = signal
        if reply.probe is not None:
            reply.probe.turn_end_at = signal.at
        for event in reply.held_events:
            self._emit(event)
        reply.held_events.clear()
        reply.gate.set()

    def _on_turn_ended(self, signal: TurnEnded) -> None:
        self._last_activity = signal.at
        if self._reply is not None and not self._reply.gate.is_set():
            self._commit(self._reply, signal)
            return
        if signal.speech_ms < self._settings.turn.min_utterance_ms:
            self._stt.discard_utterance()
            if self._interruption is not None:
                self._turn += 1
                self._start_reply(self._turn, self._resume)
            return
        assert self._group is not None
        self._unanswered.append(self._group.create_task(self._recognise(), name="stt"))
        self._turn += 1
        self._start_reply(self._turn, lambda reply: self._answer(reply, signal))

    async def _barge_in(self, signal: SpeechSustained) -> None:
        reply = self._playing
        now = self._clock.now()
        self._cancel_reply()
        self._by_mark.clear()  # Twilio echoes the flushed marks, but they were not heard
        self._hangup_reason = None
        clear_at = await self.outbound.clear()
        if self._pending_transfer is not None:
            self._start_transfer()  # the caller spoke over "connecting you": they go all the same
        if reply is None or not reply.answering:
            return  # at most an acknowledgement was cut off: the caller simply went on
        heard_text, heard_ms, total_ms = self._heard(reply, now)
        unheard = tuple(s for s in reply.sentences if not s.heard)
        self._interruption = _Interruption(heard_text, unheard)
        self._emit(
            Interruption(
                at=self._rel(now),
                turn=reply.turn,
                reply_text=reply.text,
                heard_text=heard_text,
                reply_audio_ms=total_ms,
                heard_ms=heard_ms,
                reaction_ms=(clear_at - signal.onset_at) * 1000,
            )
        )

    @staticmethod
    def _heard(reply: _Reply, now: float) -> tuple[str, float, float]:
        """What part of a reply reached the caller: whole sentences by their marks, plus the
        part of the playing sentence estimated from the time since it began."""
        heard_words: list[str] = []
        heard_ms = 0.0
        playing_since = reply.first_frame_at
        for sentence in reply.sentences:
            if sentence.heard:
                heard_words.extend(sentence.text.split())
                heard_ms += sentence.audio_ms
                continue
            if playing_since is not None:
                partial = min(sentence.audio_ms, max(0.0, (now - playing_since) * 1000 - heard_ms))
                heard_words.extend(sentence.timing.heard_words(sentence.text, partial))
                heard_ms += partial
            break
        return " ".join(heard_words), heard_ms, sum(s.audio_ms for s in reply.sentences)

    # --- speaking ---------------------------------------------------------------------------

    def _start_reply(self, turn: int, speech: Callable[[_Reply], Awaitable[None]], *, draft: bool = False) -> None:
        """Cancel the reply in progress (if any) and start ``speech`` as the new one."""
        previous = self._last_reply_task
        self._cancel_reply()
        assert self._group is not None
        reply = _Reply(turn, checkpoint=self.bot.checkpoint() if turn else None, after=previous, draft=draft)
        if not draft:
            reply.gate.set()
        self._reply = reply
        reply.task = self._group.create_task(self._run_reply(reply, speech(reply)), name=f"reply-{turn}")
        self._last_reply_task = reply.task

    def _cancel_reply(self) -> None:
        if self._reply is not None and self._reply.task is not None:
            self._reply.task.cancel()
        self._reply = None

    async def _run_reply(self, reply: _Reply, speech: Awaitable[None]) -> None:
        if reply.after is not None:
            await asyncio.wait([reply.after])  # let it roll back before this reply reads the bot
        try:
            await speech
        except asyncio.CancelledError:
            if not reply.answering:
                self._roll_back(reply)
            raise
        except Exception:
            log.exception("bot turn failed", extra={"call_sid": self.context.call_sid, "turn": reply.turn})
            if reply.turn and not reply.answering:
                self._emit(TurnUnanswered(at=self._rel(self._clock.now()), turn=reply.turn, reason="the bot failed"))
        finally:
            if self._reply is reply:
                self._reply = None
        if reply.sentences:
            self._emit(
                BotUtterance(
                    at=self._rel(self._clock.now()),
                    turn=reply.turn,
                    text=reply.text,
                    audio_ms=sum(s.audio_ms for s in reply.sentences),
                )
            )
        if reply.turn and self._group is not None:
            # Its own task: the next reply waits for this one to finish, never for the store.
            self._group.create_task(self.bot.persist(), name="persist")

    def _roll_back(self, reply: _Reply) -> None:
        """Undo a reply the caller never heard: the bot forgets it, the caller's words wait for
        the next turn, a pending interruption stays pending."""
        if reply.checkpoint is not None:
            self.bot.rollback(reply.checkpoint)
        self._carried = reply.transcripts + self._carried
        if reply.interruption is not None and self._interruption is None:
            self._interruption = reply.interruption
        self._hangup_request = None
        self._transfer_request = None

    async def _open(self, reply: _Reply) -> None:
        """The greeting, or, for a caller back from a failed transfer, the bot's word on it."""
        if self._returning_from is None:
            await self._greet(reply)
            return
        now = self._rel(self._clock.now())
        self._emit(TransferEvent(at=now, phase="returned", outcome=self._returning_from))
        await self._speak(reply, self.bot.after_transfer(self._returning_from), None)

    async def _greet(self, reply: _Reply) -> None:
        text = self.bot.greeting()
        audio = await self._tts().render(text)
        self._queue_audio_sentence(reply, text, audio)
        now = self._rel(self._clock.now())
        self._emit(ComplianceCheck(at=now, rule="ai_disclosure", ok=discloses_ai(text), detail=text))
        if self._recorder is not None:
            said = discloses_recording(text)
            self._emit(ComplianceCheck(at=now, rule="recording_disclosure", ok=said, detail=text))

    async def _answer(self, reply: _Reply, signal: TurnEnded) -> None:
        assert self._group is not None
        turn = reply.turn
        filler: asyncio.Task[None] | None = None
        if self._covers:
            filler = self._group.create_task(self._cover_silence(reply, signal.speech_end_at), name=f"filler-{turn}")
        try:
            reply.transcripts = await self._collect_transcripts()
            stt_done = self._clock.now()
            for transcript in reply.transcripts:
                if transcript.degraded:
                    self._emit(
                        VendorDegraded(at=self._rel(stt_done), turn=turn, stage="stt", reason=transcript.degraded)
                    )
            text = " ".join(t.text for t in reply.transcripts if t.text).strip()
            if not text:
                await reply.gate.wait()
                await self._resume(reply)
                return
            if self._interruption is not None:
                reply.interruption, self._interruption = self._interruption, None
                self.bot.interrupted(reply.interruption.heard_text)
            said = CallerUtterance(
                at=self._rel(stt_done),
                turn=turn,
                text=text,
                speech_ms=signal.speech_ms,
                onset_at=self._rel(signal.onset_at),
                speech_end_at=self._rel(signal.speech_end_at),
            )
            if reply.gate.is_set():
                self._emit(said)
            else:
                reply.held_events.append(said)
            last = reply.transcripts[-1]
            turn_end = reply.turn_ended.at if reply.turn_ended is not None else signal.at
            # A draft's recognition ran before the turn ended: only waiting after the end counts.
            waited_ms = max(0.0, (stt_done - turn_end) * 1000) if reply.turn_ended is not None else 0.0
            engine_ms = min(last.engine_ms, waited_ms) if reply.draft else last.engine_ms
            reply.probe = _LatencyProbe(
                turn, signal.speech_end_at, turn_end, stt_done, engine_ms, last.speculative or reply.draft
            )
            reply.probe.speculative_reply = reply.draft
            await self._speak(reply, self.bot.respond(text), reply.probe)
            if not reply.answering and self._transfer_request is None and self._pending_transfer is None:
                self._emit(TurnUnanswered(at=self._rel(self._clock.now()), turn=turn, reason="the bot said nothing"))
        finally:
            if filler is not None:
                filler.cancel()

    async def _resume(self, reply: _Reply) -> None:
        """The caller's barge-in held no words: say again what they did not hear."""
        interruption, self._interruption = self._interruption, None
        if interruption is None or not interruption.sentences:
            return
        for sentence in interruption.sentences:
            self._queue_audio_sentence(reply, sentence.text, b"".join(sentence.audio))
        text = " ".join(s.text for s in interruption.sentences)
        self._emit(ReplyResumed(at=self._rel(self._clock.now()), turn=reply.turn, text=text))

    async def _cover_silence(self, reply: _Reply, speech_end_at: float) -> None:
        """Keep a late answer from leaving dead air: an acknowledgement when the turn budget is
        about to be missed, then a filler if the answer is much later still. Both are cached
        audio, so they go out at once; the answer follows them."""
        for after_ms, phrases, purpose in self._covers:
            await asyncio.sleep(max(0.0, speech_end_at + after_ms / 1000 - self._clock.now()))
            if reply.answering or self._reply is not reply:
                return
            await reply.gate.wait()
            text = next(phrases)
            audio = await self._tts().render(text)
            if reply.answering or self._reply is not reply:
                return
            self._filler_marks[self._queue_audio_sentence(reply, text, audio)] = self._clock.now()
            reply.covers += 1
            self._emit(FillerPlayed(at=self._rel(self._clock.now()), turn=reply.turn, text=text, purpose=purpose))

    async def _recognise(self) -> Transcript:
        """The turn's transcript; a failing recogniser loses this turn, not the call."""
        try:
            return await self._stt.finish_utterance()
        except Exception:
            log.exception("speech recognition failed", extra={"call_sid": self.context.call_sid})
            return Transcript(text="", engine_ms=0.0)

    async def _collect_transcripts(self) -> list[Transcript]:
        """Every recognition not yet answered, in order.

        Shielded: when this reply is cancelled because the caller went on, the recognitions
        must survive to be answered together with the rest of what the caller says.
        """
        pending = list(self._unanswered)
        transcripts = [await asyncio.shield(task) for task in pending]
        self._unanswered = [t for t in self._unanswered if t not in pending]
        carried, self._carried = self._carried, []
        return carried + transcripts

    async def _say(self, reply: _Reply, text: str, *, hang_up: str | None = None) -> None:
        """A fixed phrase (silence prompt, goodbye), from the TTS cache."""
        self._queue_audio_sentence(reply, text, await self._tts().render(text))
        if hang_up is not None:
            self._hang_up_after_playout(hang_up, reply)

    def _tts(self, voice: str | None = None) -> TextToSpeech:
        """The engine for ``voice``, or for the voice the bot speaks in now."""
        return self._engines.voice(voice or self.bot.voice)

    async def _speak(self, reply: _Reply, actions: AsyncIterator[BotAction], probe: _LatencyProbe | None) -> None:
        splitter = SentenceSplitter()
        hang_up: str | None = None
        async with _closing(actions):
            voice = await self._consume(reply, actions, probe, splitter)
        for sentence in splitter.flush():
            await self._synthesize(reply, sentence, probe, voice)
        if self._hangup_request is not None:
            hang_up, self._hangup_request = self._hangup_request, None
            self._hang_up_after_playout(hang_up, reply)
        elif self._transfer_request is not None:
            self._pending_transfer, self._transfer_request = self._transfer_request, None
            if not self.bot_talking:
                self._start_transfer()

    async def _consume(
        self, reply: _Reply, actions: AsyncIterator[BotAction], probe: _LatencyProbe | None, splitter: SentenceSplitter
    ) -> str | None:
        """Speak the bot's actions as they come; returns the voice the rest in ``splitter`` is in."""
        voice = self.bot.voice
        async for action in actions:
            if isinstance(action, EndCall):
                self._hangup_request = action.reason
                continue
            if isinstance(action, Notice):
                now = self._rel(self._clock.now())
                self._emit(VendorDegraded(at=now, turn=reply.turn, stage=action.stage, reason=action.reason))
                continue
            if isinstance(action, HandedOff):
                self._emit(
                    HandOff(
                        at=self._rel(self._clock.now()),
                        turn=reply.turn,
                        from_bot=action.from_bot,
                        to_bot=action.to_bot,
                        reason=action.reason,
                        latency_ms=action.latency_ms,
                    )
                )
                continue
            if isinstance(action, TransferToHuman):
                self._transfer_request = action
                continue
            if probe is not None and not probe.first_text_at:
                probe.first_text_at = self._clock.now()
            if action.voice is not None and action.voice != voice:
                for sentence in splitter.flush():  # the old voice finishes its words
                    await self._synthesize(reply, sentence, probe, voice)
                voice = action.voice
            for sentence in splitter.feed(action.text):
                await self._synthesize(reply, sentence, probe, voice)
        return voice

    async def _synthesize(self, reply: _Reply, text: str, probe: _LatencyProbe | None, voice: str | None) -> None:
        """Queue the sentence's audio chunk by chunk, as the engine produces it."""
        sentence: _Sentence | None = None
        async for chunk in self._tts(voice).synthesize(text):
            if sentence is None:
                first_audio = probe is not None and not probe.first_audio_at
                if probe is not None and first_audio:
                    probe.first_audio_at = self._clock.now()
                    probe.tts_engine_ms = chunk.engine_ms
                await reply.gate.wait()  # a draft's audio waits for the end of the turn
                sentence = self._open_sentence(reply, text)
                if probe is not None and first_audio:
                    self._probes[sentence.mark] = probe
                if chunk.degraded:
                    self._emit(
                        VendorDegraded(
                            at=self._rel(self._clock.now()), turn=reply.turn, stage="tts", reason=chunk.degraded
                        )
                    )
            self._append_audio(sentence, chunk.ulaw, chunk.said_by_ms)
        if sentence is not None:
            self.outbound.enqueue_mark(sentence.mark)

    def _open_sentence(self, reply: _Reply, text: str) -> _Sentence:
        sentence = _Sentence(f"t{reply.turn}.{len(reply.sentences)}", text)
        reply.sentences.append(sentence)
        self._playing = reply
        self._by_mark[sentence.mark] = (reply, sentence)
        return sentence

    def _append_audio(self, sentence: _Sentence, ulaw: bytes, said_by_ms: tuple[tuple[str, float], ...] = ()) -> None:
        sentence.audio.append(ulaw)
        sentence.timing.add(duration_ms(len(ulaw)), said_by_ms)
        self.outbound.enqueue_audio(sentence.mark, ulaw)

    def _queue_audio_sentence(self, reply: _Reply, text: str, ulaw: bytes) -> str:
        """A sentence whose audio is all there (cached phrases, resumed replies); returns its mark."""
        sentence = self._open_sentence(reply, text)
        self._append_audio(sentence, ulaw)
        self.outbound.enqueue_mark(sentence.mark)
        return sentence.mark

    def _on_first_frame(self, utterance: str, at: float) -> None:
        entry = self._by_mark.get(utterance)
        if entry is not None and entry[0].first_frame_at is None:
            entry[0].first_frame_at = at
            if entry[0].turn and self._turns.speaking:
                self._emit(BotTalkedOver(at=self._rel(at), turn=entry[0].turn))
        if utterance == "t0.0":
            self._emit(GreetingLatency(at=self._rel(at), latency_ms=self._rel(at) * 1000))
        queued_at = self._filler_marks.pop(utterance, None)
        if queued_at is not None:
            self._filler_frames.setdefault(entry[0].turn if entry else -1, (queued_at, at))
        probe = self._probes.pop(utterance, None)
        if probe is not None:
            latency = probe.finish(at, self.started_at, self._filler_frames.pop(probe.turn, None))
            self.bot.note_response_latency(latency.first_audio_ms)
            self._emit(latency)

    def _start_transfer(self) -> None:
        request, self._pending_transfer = self._pending_transfer, None
        if request is None or self._group is None or self._ended.is_set():
            return
        self._group.create_task(self._hand_over(request), name="transfer")

    async def _hand_over(self, request: TransferToHuman) -> None:
        """Everything the bot said has been heard: move the caller to a person. If that cannot
        start, the caller is still here and the bot says so (``after_transfer('failed')``)."""
        self._emit(TransferEvent(at=self._rel(self._clock.now()), phase="requested", reason=request.reason))
        self.transferring = True
        started = self._transfer is not None and await self._transfer(request)
        self._emit(TransferEvent(at=self._rel(self._clock.now()), phase="started" if started else "refused"))
        if started:
            return  # Twilio stops this stream once the caller is in the conference
        self.transferring = False
        self._turn += 1
        self._start_reply(self._turn, lambda reply: self._speak(reply, self.bot.after_transfer("failed"), None))

    def _hang_up_after_playout(self, reason: str, reply: _Reply) -> None:
        self._hangup_reason = reason
        if not self.bot_talking:
            self._hang_up(reason)
            return
        remaining_s = sum(s.audio_ms for s in reply.sentences if not s.heard) / 1000
        self._hangup_deadline = self._clock.now() + remaining_s + HANGUP_GRACE_S

    # --- silence and limits -------------------------------------------------------------------

    _hangup_deadline: float | None = None

    async def _watch(self) -> None:
        silence = self._settings.silence
        while True:
            await asyncio.sleep(WATCHDOG_PERIOD_S)
            now = self._clock.now()
            if now - self.started_at > self._settings.max_call_s:
                self._hang_up("max_duration")
            if self._hangup_reason is not None and self._hangup_deadline and now > self._hangup_deadline:
                self._hang_up(self._hangup_reason)
            if self.bot_talking or self._reply is not None or self._turns.speaking or self._unanswered:
                continue
            if self.transferring or self._pending_transfer is not None:
                continue
            quiet_s = now - self._last_activity
            if not self._silence_prompted and quiet_s >= silence.prompt_after_s:
                self._silence_prompted = True
                self._emit(Silence(at=self._rel(now), action="prompt", silent_s=quiet_s))
                self._turn += 1
                self._start_reply(self._turn, lambda reply: self._say(reply, silence.prompt_text))
            elif self._silence_prompted and quiet_s >= silence.hangup_after_prompt_s:
                self._emit(Silence(at=self._rel(now), action="hangup", silent_s=quiet_s))
                self._turn += 1
                self._last_activity = float("inf")
                self._start_reply(self._turn, lambda reply: self._say(reply, silence.goodbye_text, hang_up="silence"))
