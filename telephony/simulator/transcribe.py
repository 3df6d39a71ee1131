"""Transcribe the bot's utterances as the caller heard them, one at a time, off the tick loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from runtime.audio import split_frames, ulaw_to_pcm
from runtime.speech import SpeechEngineError, SpeechToText

_log = logging.getLogger("telephony.simulator")

#: Utterances waiting for the recogniser; a call has a few dozen at most, so a full queue
#: means the recogniser has stalled and further utterances stay untranscribed.
MAX_PENDING_UTTERANCES = 32


class BotTranscriber:
    """Transcribes finished bot utterances one by one and reports each transcript. Each gets a
    stream of its own: a recogniser's pre-roll would otherwise start every utterance with the
    end of the one before."""

    def __init__(self, stt: SpeechToText, call_sid: str, on_text: Callable[[int, str | None], None]) -> None:
        self._call_sid = call_sid
        self._stt = stt
        self._on_text = on_text
        # One slot beyond the limit, so ``finish`` always fits.
        self._queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(MAX_PENDING_UTTERANCES + 1)

    def submit(self, index: int, ulaw: bytes) -> None:
        """Queue utterance ``index``; its transcript comes back through ``on_text``."""
        if self._queue.qsize() >= MAX_PENDING_UTTERANCES:
            _log.warning("bot utterance not transcribed: queue full", extra={"call_sid": self._call_sid})
            self._on_text(index, None)
            return
        self._queue.put_nowait((index, ulaw))

    def finish(self) -> None:
        """No more utterances: ``run`` returns once the queued ones are done."""
        self._queue.put_nowait(None)

    async def run(self) -> None:
        while (item := await self._queue.get()) is not None:
            index, ulaw = item
            self._on_text(index, await self._transcribe(ulaw))

    async def aclose(self) -> None:
        """Nothing held between utterances: each one's stream is closed once it is transcribed."""

    async def _transcribe(self, ulaw: bytes) -> str | None:
        stream = self._stt.open_stream(self._call_sid)
        try:
            stream.speech_started()
            for frame in split_frames(ulaw):
                stream.push_audio(ulaw_to_pcm(frame))
            return (await stream.finish_utterance()).text
        except SpeechEngineError:
            _log.warning("bot utterance not transcribed", extra={"call_sid": self._call_sid}, exc_info=True)
            return None
        finally:
            await stream.aclose()
