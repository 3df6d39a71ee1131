"""Whole calls through the real pipeline with the offline engines (Silero, Whisper, Piper)."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from runtime.audio import ulaw_to_pcm
from runtime.engines import Engines
from runtime.events import CallerUtterance, FillerPlayed, Interruption, TurnLatency
from telephony import media_stream as ms
from tests.conftest import AUTH_TOKEN, StartServer
from tests.twilio_driver import StreamDriver

pytestmark = [pytest.mark.engines, pytest.mark.slow]


def bot_audio_since(driver: StreamDriver, index: int) -> bytes:
    return b"".join(e.payload for e in driver.received[index:] if isinstance(e, ms.OutMedia))


async def transcribe(engines: Engines, ulaw: bytes) -> str:
    stream = engines.stt.open_stream("transcriber")
    stream.speech_started()
    stream.push_audio(ulaw_to_pcm(ulaw))
    transcript = await stream.finish_utterance()
    await stream.aclose()
    return transcript.text


async def wait_until_greeting_sent(driver: StreamDriver) -> None:
    """Keep streaming silence (as Twilio does) until the greeting's mark has been sent."""
    for _ in range(600):
        if driver.count(ms.OutMark):
            return
        await driver.send_silence(0.1)
    raise AssertionError("greeting never finished")


async def test_spoken_caller_line_gets_a_spoken_relevant_answer(
    start_server: StartServer, real_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(real_engines)
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await wait_until_greeting_sent(driver)
    greeting = await transcribe(real_engines, bot_audio_since(driver, 0))
    assert "virtual assistant" in greeting.lower()
    await driver.echo_marks()
    before_reply = len(driver.received)
    caller_line = await real_engines.tts.render("Hi, I am looking to buy a three bedroom house in Austin.")
    await driver.send_audio(caller_line)
    for _ in range(60):  # up to 6 s for the reply's first sentence and question (after any acknowledgement)
        await driver.send_silence(0.1)
        report = server.state.reports.get(driver.call_sid)
        covers = sum(isinstance(e, FillerPlayed) for e in report.events) if report else 0
        if sum(isinstance(e, ms.OutMark) for e in driver.received[before_reply:]) >= 2 + covers:
            break
    reply = await transcribe(real_engines, bot_audio_since(driver, before_reply))
    await driver.stop()
    await driver.close()
    words = re.sub(r"[^a-z0-9]+", " ", reply.lower())
    assert "austin" in words and ("three bedroom" in words or "3 bedroom" in words), reply
    assert "budget" in words, reply
    report = server.state.reports.get(driver.call_sid)
    assert report is not None
    heard = [e.text.lower() for e in report.events if isinstance(e, CallerUtterance)]
    assert heard and "austin" in heard[0]
    latency = [e for e in report.events if isinstance(e, TurnLatency)]
    assert len(latency) == 1
    turn = latency[0]
    # The breakdown is ordered in time and adds up. STT started at a pause may finish before the
    # silence has lasted long enough to end the turn (it did in a CI run: 11 ms before).
    assert turn.speech_end_at <= turn.turn_end_at and turn.speech_end_at <= turn.stt_done_at <= turn.first_text_at
    if not turn.stt_speculative:
        assert turn.turn_end_at <= turn.stt_done_at
    assert turn.first_text_at <= turn.first_audio_at <= turn.first_frame_at
    assert turn.endpointing_ms >= 400  # 500 ms of silence, minus at most one VAD window
    assert turn.stt_engine_ms > 0 and turn.tts_engine_ms > 0


async def test_barge_in_clears_the_bot_promptly_and_records_what_was_heard(
    start_server: StartServer, real_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(real_engines)
    driver = await StreamDriver.open(http, server.base_url, AUTH_TOKEN)
    loop = asyncio.get_running_loop()
    await driver.start()
    await driver.send_silence(1.5)  # the greeting is ~7 s long; 1.5 s of it has played
    interruption = await real_engines.tts.render("Sorry, I want to sell my condo.")
    barge_in_at = loop.time()
    await driver.send_audio(interruption)
    await driver.send_silence(2.0)  # time for Whisper on a busy machine
    clears = [t for e, t in zip(driver.received, driver.arrival, strict=True) if isinstance(e, ms.OutClear)]
    assert clears, "no clear after the caller talked over the bot"
    assert clears[0] - barge_in_at < 1.0
    index = next(i for i, e in enumerate(driver.received) if isinstance(e, ms.OutClear))
    greeting_frames_after_clear = [e for e in driver.received[index + 1 :] if isinstance(e, ms.OutMedia)]
    await driver.stop()
    await driver.close()
    report = server.state.reports.get(driver.call_sid)
    assert report is not None
    interruptions = [e for e in report.events if isinstance(e, Interruption)]
    assert len(interruptions) == 1
    event = interruptions[0]
    assert event.turn == 0
    assert 1000 <= event.heard_ms <= 2500  # ~1.5 s played before the caller cut in (plus reaction)
    assert event.heard_ms < event.reply_audio_ms
    assert event.heard_text and event.reply_text.startswith(event.heard_text.split()[0])
    assert 0 < event.reaction_ms < 1000
    # After the clear the greeting does not resume; only the reply to "sell my condo" may follow.
    caller_turns = [e for e in report.events if isinstance(e, CallerUtterance)]
    assert caller_turns and "condo" in caller_turns[0].text.lower()
    assert len(greeting_frames_after_clear) < 200
